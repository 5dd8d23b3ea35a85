// Owns the embedded PostgreSQL: PGlite persisted in one directory, served to postgres.js over the wire protocol on 127.0.0.1.
//
// Findings behind the choices here are in docs/design/embedded-findings.md. In short:
// - PGlite is ONE PostgreSQL session. pglite-socket multiplexes every TCP connection onto it message by
//   message, so two live connections share prepared statements, portals, SET, temp tables and error state:
//   with a pool of N>1 concurrent queries silently return other connections' results. Hence one
//   connection (maxConnections 1 here, `max: 1` in the pool); a further connection is dropped unanswered.
// - Because the session outlives each connection, every new connection first gets a fresh session
//   (ROLLBACK of an abandoned transaction, DISCARD ALL): otherwise each reconnect of postgres.js would leak
//   its named prepared statements, and SET/LISTEN/temp tables would survive into the next connection.
// - A new directory starts from a prepared, already migrated image (src/db/embedded-image.ts) rather than
//   initdb, which inside WebAssembly takes ~10 s and peaks near 1 GB; an image made from another sql/
//   is not used (initdb + migrate instead), so no stale schema is ever started.
// - shared_buffers is lowered from PostgreSQL's 128 MB: PGlite touches all of it at start, and it was
//   most of the process's memory. The host's own page cache still holds the files.
// - `bun build --compile` does not embed PGlite's wasm and data files (PGlite reads them relative to
//   import.meta.url), so they are imported `with { type: "file" }` (Bun embeds those) and handed to PGlite.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, realpathSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
// TypeScript has no declarations for these non-code package exports; Bun resolves them to a file path
// (node_modules/… when run from source, /$bunfs/… inside a compiled binary).
// @ts-ignore TS2307
import pgliteWasmPath from "@electric-sql/pglite/pglite.wasm" with { type: "file" };
// @ts-ignore TS2307
import initdbWasmPath from "@electric-sql/pglite/initdb.wasm" with { type: "file" };
// @ts-ignore TS2307
import fsBundlePath from "@electric-sql/pglite/pglite.data" with { type: "file" };
// @ts-ignore TS2307
import imagePath from "./embedded-image.tar.zst" with { type: "file" };
import imageManifest from "./embedded-image.json" with { type: "json" };
import { unpackImage, type ImageManifest } from "./embedded-image.ts";
import { openPool } from "./pool.ts";
import { migrate, schemaFingerprint } from "./schema.ts";

export type EmbeddedDatabase = {
  url: string;
  /** How the directory came to be: unpacked from the image, made by initdb, or already there (null). */
  created: "image" | "initdb" | null;
  close(): Promise<void>;
};

/** A prepared data directory to start new databases from (see src/db/embedded-image.ts). */
export type DatabaseImage = { path: string; manifest: ImageManifest };

/** The image built into the program (scripts/embedded-image.ts regenerates it when sql/ changes). */
export const BUILTIN_IMAGE: DatabaseImage = { path: imagePath as string, manifest: imageManifest };

export type EmbeddedOptions = {
  /** What a new directory starts from; null runs initdb. Default BUILTIN_IMAGE. */
  image?: DatabaseImage | null;
};

/**
 * PostgreSQL's shared buffer pool inside the wasm heap. At the default 128 MB a restart settled near
 * 300 MB RSS; at 16 MB near 160 MB. A small host's working set fits, and reads that miss it are served
 * by the operating system's page cache (the files are plain files under the data directory).
 */
const SHARED_BUFFERS = "16MB";

/**
 * The postgres.js options the app must use against the embedded database (spread into its pool options):
 * - max 1: PGlite has a single session; the socket server accepts one connection at a time, and a second
 *   one would corrupt the first (see above). Concurrent `sql.begin()` calls then queue in postgres.js and
 *   run one after another, which keeps them isolated. Nothing else may connect while the pool is open:
 *   not a second pool, not `sql.listen()` (its extra connection is dropped and postgres.js retries forever;
 *   NOTIFY would not reach it anyway).
 * - prepare true: named prepared statements work on one connection and halve the per-query cost; the
 *   reset on connect frees them when postgres.js reconnects.
 * - startupParams {}: PGlite ignores startup parameters (application_name, jit, …): harmless, but useless.
 */
export const EMBEDDED_POOL_OPTIONS: Readonly<{ max: 1; prepare: boolean; startupParams: Record<string, string> }> =
  Object.freeze({ max: 1, prepare: true, startupParams: Object.freeze({}) });

const LOCK_FILE = "embedded.lock";

/** Data directories this process has open (a second PGlite on the same files would corrupt them). */
const openDirs = new Set<string>();

const compiled = new Map<string, Promise<WebAssembly.Module>>();

/** Compiles a wasm file once per process (reopening reuses it); initdb's only when a directory needs it. */
function wasmModule(path: string): Promise<WebAssembly.Module> {
  let module = compiled.get(path);
  if (!module) {
    module = (async () => WebAssembly.compile(await Bun.file(path).arrayBuffer()))();
    compiled.set(path, module);
    module.catch(() => compiled.delete(path));
  }
  return module;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes `dir/embedded.lock` (our pid) so that no other process opens the same files; PGlite itself keeps
 * no postmaster.pid. A lock left by a dead process (or by an earlier run with our own pid, as with pid 1
 * in a container) is taken over.
 */
function takeLock(dir: string): () => void {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return () => {
        try {
          if (readFileSync(path, "utf8").trim() === String(process.pid)) unlinkSync(path);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw err;
      let pid = NaN;
      try {
        pid = Number.parseInt(readFileSync(path, "utf8").trim(), 10);
      } catch {
        // vanished or unreadable: treat as stale
      }
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
        throw new Error(`embedded database ${dir} is in use by process ${pid} (remove ${path} if it is not)`);
      }
      try {
        unlinkSync(path);
      } catch {
        // someone else removed it first; the next openSync decides
      }
    }
  }
}

/** A simple-query protocol message. */
function queryMessage(text: string): Uint8Array {
  const body = new TextEncoder().encode(`${text}\0`);
  const msg = new Uint8Array(5 + body.length);
  msg[0] = 0x51; // 'Q'
  new DataView(msg.buffer).setInt32(1, 4 + body.length);
  msg.set(body, 5);
  return msg;
}

/**
 * Gives a newly accepted connection a fresh session: rolls back a transaction its predecessor left open and
 * runs DISCARD ALL (prepared statements, portals, SET, LISTEN, temp tables, advisory locks). Safe only
 * because at most one connection exists. Called from the server's "connection" event, before the socket's
 * first message can be processed: both go through PGlite's FIFO query mutex and the socket's data is
 * handled on a later tick, so the reset is queued first.
 */
function resetSession(db: PGlite): Promise<void> {
  return db
    .runExclusive(async () => {
      if (db.isInTransaction()) await db.execProtocol(queryMessage("ROLLBACK"));
      await db.execProtocol(queryMessage("DISCARD ALL"));
    })
    .catch(() => {
      // Best effort: correctness of the next connection does not depend on it, only memory and hygiene.
    });
}

/**
 * Opens the PGlite database in `dataDir` and serves it on 127.0.0.1 on a free port. A directory without
 * a database is first filled from the image when it matches the current sql/ (then it is already
 * migrated), else by initdb (several seconds, about 1 GB). The returned URL is for postgres.js with
 * EMBEDDED_POOL_OPTIONS. `close()` ends the pool's connection if still open, then stops the server and
 * closes PGlite cleanly.
 */
export async function startEmbeddedDatabase(dataDir: string, opts: EmbeddedOptions = {}): Promise<EmbeddedDatabase> {
  const image = opts.image === undefined ? BUILTIN_IMAGE : opts.image;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const dir = realpathSync(dataDir);
  if (openDirs.has(dir)) throw new Error(`embedded database ${dir} is already open in this process`);
  openDirs.add(dir);
  let releaseLock: (() => void) | null = null;
  let db: PGlite | null = null;
  let server: PGLiteSocketServer | null = null;
  const cleanUp = async () => {
    await server?.stop().catch(() => {});
    if (db && !db.closed) await db.close().catch(() => {});
    releaseLock?.();
    openDirs.delete(dir);
  };
  try {
    releaseLock = takeLock(dir);
    // Compiling (on JavaScriptCore's threads) overlaps the unpacking, which is mostly file creation.
    const pgliteWasmModule = wasmModule(pgliteWasmPath);
    let created: EmbeddedDatabase["created"] = null;
    if (!existsSync(join(dir, "PG_VERSION"))) {
      // Unpacked before PGlite starts, so the decoder's buffers and PGlite's memory are never needed at once.
      if (image && image.manifest.fingerprint === schemaFingerprint()) {
        await unpackImage(image.path, dir);
        created = "image";
      } else created = "initdb";
    }
    db = await PGlite.create(dir, {
      pgliteWasmModule: await pgliteWasmModule,
      initdbWasmModule: created === "initdb" ? await wasmModule(initdbWasmPath) : undefined,
      fsBundle: Bun.file(fsBundlePath),
      startParams: [...PGlite.defaultStartParams, "-c", `shared_buffers=${SHARED_BUFFERS}`],
    });
    const pg = db;
    server = new PGLiteSocketServer({ db: pg, host: "127.0.0.1", port: 0, maxConnections: 1 });
    server.addEventListener("connection", () => void resetSession(pg));
    await server.start();
    const port = Number(server.getServerConn().split(":").pop());
    if (!Number.isInteger(port) || port <= 0) {
      throw new Error(`embedded database server has no port: ${server.getServerConn()}`);
    }
    let closing: Promise<void> | null = null;
    return {
      // sslmode=disable: the server refuses SSL, and this keeps a PGSSL* environment from asking for it.
      url: `postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable`,
      created,
      close: () => (closing ??= cleanUp()),
    };
  } catch (err) {
    await cleanUp();
    throw err;
  }
}

/** Opens (creating it if new) the embedded database in `dataDir`, applies sql/ and closes it again. */
export async function migrateEmbeddedDatabase(dataDir: string, opts: EmbeddedOptions = {}): Promise<void> {
  const db = await startEmbeddedDatabase(dataDir, opts);
  const sql = openPool({ url: db.url, ...EMBEDDED_POOL_OPTIONS });
  try {
    await migrate(sql);
  } finally {
    await sql.end({ timeout: 5 });
    await db.close();
  }
}
