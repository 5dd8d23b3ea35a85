// The embedded database (PGlite over pglite-socket): persistence, isolation with EMBEDDED_POOL_OPTIONS, compiled binary.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { BUILTIN_IMAGE, EMBEDDED_POOL_OPTIONS, startEmbeddedDatabase } from "../../src/db/embedded.ts";
import { compareAddressesForNewMessage, insertDraft } from "../../src/db/drafts.ts";
import { migrate, missingTables, REQUIRED_TABLES, schemaFingerprint } from "../../src/db/schema.ts";

let root: string;
/** An initialised data directory, copied for each test. */
let template: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "fmsg-embedded-test-"));
  template = join(root, "template", "pglite"); // does not exist yet: created with its parents
  const db = await startEmbeddedDatabase(template);
  await db.close();
}, { timeout: 120_000 });

/** A new, empty place for a data directory (startEmbeddedDatabase creates it). */
function newDir(): string {
  return join(root, `new-${++copies}`, "pglite");
}

/** Creates a draft as the API does (msg row with fmsgd's triggers) and returns its id. */
async function createDraft(sql: postgres.Sql, topic: string): Promise<number> {
  const from = "@alice@example.com";
  // This pool reads int8 as a string (the app's parses it).
  const id = Number((await compareAddressesForNewMessage(sql, from, from, [])).id);
  await sql.begin((tx) =>
    insertDraft(tx, id, { version: 1, pid: null, noReply: false, important: false, from, topic, type: "text/plain", size: 5, filepath: `${id}/message` }, []),
  );
  return id;
}

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

let copies = 0;
function freshDir(): string {
  const dir = join(root, `db-${++copies}`);
  cpSync(template, dir, { recursive: true });
  return dir;
}

function pool(url: string): postgres.Sql {
  return postgres(url, {
    max: EMBEDDED_POOL_OPTIONS.max,
    prepare: EMBEDDED_POOL_OPTIONS.prepare,
    connection: { ...EMBEDDED_POOL_OPTIONS.startupParams },
    onnotice: () => {},
  });
}

describe("embedded database", () => {
  test("data persists across close and restart", async () => {
    const dir = freshDir();
    let db = await startEmbeddedDatabase(dir);
    expect(db.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres/);
    let sql = pool(db.url);
    await sql`create table notes (id serial primary key, body text not null)`;
    await sql`insert into notes (body) values ('one'), ('two')`;
    await sql.begin(async (tx) => {
      await tx`insert into notes (body) values ('three')`;
    });
    await sql.end();
    await db.close();
    expect(existsSync(join(dir, "embedded.lock"))).toBe(false);

    db = await startEmbeddedDatabase(dir);
    sql = pool(db.url);
    const rows = await sql`select body from notes order by id`;
    expect(rows.map((r) => r.body)).toEqual(["one", "two", "three"]);
    await sql.end();
    await db.close();
  });

  test("concurrent transactions are isolated with EMBEDDED_POOL_OPTIONS", async () => {
    const db = await startEmbeddedDatabase(freshDir());
    const sql = pool(db.url);
    try {
      await sql`create table counter (id int primary key, n int not null)`;
      await sql`create table log (who text not null)`;
      await sql`insert into counter values (1, 0)`;
      // Read-modify-write with a pause in between: overlapping transactions would lose updates, and a
      // rolled-back one would leave rows behind if statements from different transactions interleaved.
      const results = await Promise.allSettled(
        Array.from({ length: 12 }, (_, i) =>
          sql.begin(async (tx) => {
            const [row] = await tx`select n from counter where id = 1`;
            await tx`insert into log values (${`t${i}`})`;
            await Bun.sleep(5);
            await tx`update counter set n = ${row!.n + 1} where id = 1`;
            if (i % 3 === 0) throw new Error(`t${i} rolls back`);
          }),
        ),
      );
      expect(results.filter((r) => r.status === "rejected")).toHaveLength(4);
      const [{ n }] = (await sql`select n from counter where id = 1`) as unknown as [{ n: number }];
      expect(n).toBe(8);
      const logged = await sql`select who from log order by who`;
      expect(logged.map((r) => r.who).sort()).toEqual(
        Array.from({ length: 12 }, (_, i) => `t${i}`)
          .filter((_, i) => i % 3 !== 0)
          .sort(),
      );
      // Plain queries pipelined alongside transactions, with errors mixed in, get their own results.
      const mixed = await Promise.allSettled(
        Array.from({ length: 60 }, (_, i) =>
          i % 10 === 0 ? sql`select nosuchcolumn from counter where id = ${i}` : sql`select ${i}::int as i`,
        ),
      );
      mixed.forEach((r, i) => {
        if (i % 10 === 0) expect(r.status).toBe("rejected");
        else expect(r.status === "fulfilled" && r.value[0]?.i).toBe(i);
      });
    } finally {
      await sql.end();
      await db.close();
    }
  });

  test("multi-statement DDL with plpgsql and deferred constraint triggers", async () => {
    const db = await startEmbeddedDatabase(freshDir());
    const sql = pool(db.url);
    try {
      await sql.unsafe(`
        create table item (id serial primary key, qty int not null);
        create function item_check() returns trigger language plpgsql as $$
        begin
          if (select qty from item where id = new.id) < 0 then
            raise exception 'qty must not be negative' using errcode = 'check_violation';
          end if;
          return null;
        end $$;
        create constraint trigger item_check after insert or update on item
          deferrable initially deferred for each row execute function item_check();
      `);
      // Deferred: a negative value fixed before commit passes; one left negative fails at commit.
      await sql.begin(async (tx) => {
        await tx`insert into item (qty) values (-1)`;
        await tx`update item set qty = 1`;
      });
      const failed = await sql
        .begin(async (tx) => {
          await tx`insert into item (qty) values (-5)`;
        })
        .then(
          () => null,
          (e: { code?: string }) => e.code,
        );
      expect(failed).toBe("23514");
      expect((await sql`select qty from item`).map((r) => r.qty)).toEqual([1]);
    } finally {
      await sql.end();
      await db.close();
    }
  });

  test("each connection gets a fresh session; a second concurrent connection is refused", async () => {
    const db = await startEmbeddedDatabase(freshDir());
    try {
      for (let i = 0; i < 3; i++) {
        const sql = pool(db.url);
        const [s] = await sql`select current_setting('statement_timeout') t, count(*)::int p from pg_prepared_statements`;
        expect(s!.t).toBe("0");
        expect(s!.p).toBeLessThan(5); // this connection's own statements only, none leaked from earlier ones
        await sql.unsafe("set statement_timeout = '4321'");
        await sql`select ${i}::int`;
        await sql.end();
      }

      const sql = pool(db.url);
      await sql`select 1`; // holds the only connection
      const port = Number(new URL(db.url).port);
      const outcome = await new Promise<string>((resolve) => {
        const sock = connect(port, "127.0.0.1");
        let got = "";
        sock.on("data", (d) => (got += d.toString("latin1")));
        sock.on("connect", () => {
          // A StartupMessage (protocol 3.0, user postgres).
          const body = Buffer.from("user\0postgres\0database\0postgres\0\0");
          const head = Buffer.alloc(8);
          head.writeInt32BE(8 + body.length, 0);
          head.writeInt32BE(196608, 4);
          sock.write(Buffer.concat([head, body]));
        });
        sock.on("close", () => resolve(got.startsWith("R") ? "served" : "refused"));
        sock.on("error", () => {});
        setTimeout(() => {
          sock.destroy();
          resolve("hung");
        }, 5000);
      });
      expect(outcome).toBe("refused");
      expect((await sql`select 2 as x`)[0]!.x).toBe(2); // the pool's connection is unaffected
      await sql.end();
    } finally {
      await db.close();
    }
  });

  test("a data directory cannot be opened twice", async () => {
    const dir = freshDir();
    const db = await startEmbeddedDatabase(dir);
    try {
      await expect(startEmbeddedDatabase(dir)).rejects.toThrow(/already open/);
      const other = Bun.spawnSync(
        [process.execPath, "-e", `import { startEmbeddedDatabase as s } from ${JSON.stringify(join(import.meta.dir, "../../src/db/embedded.ts"))};
          s(${JSON.stringify(dir)}).then(() => console.log("opened"), (e) => console.log(e.message));`],
        { timeout: 60_000 },
      );
      expect(other.stdout.toString()).toMatch(/in use by process \d+/);
    } finally {
      await db.close();
    }
    // After close the next opener succeeds.
    const again = await startEmbeddedDatabase(dir);
    await again.close();
  }, { timeout: 60_000 });

  /** Compiles a probe that opens the data directory given as argv[2] and prints `output`'s JSON; runs it elsewhere. */
  function runCompiledProbe(name: string, query: string, output: string, prepareDir: (elsewhere: string) => void): unknown {
    const work = mkdtempSync(join(root, `${name}-`));
    const script = join(work, "probe.ts");
    writeFileSync(
      script,
      `import postgres from ${JSON.stringify(Bun.resolveSync("postgres", import.meta.dir))};
import { EMBEDDED_POOL_OPTIONS, startEmbeddedDatabase } from ${JSON.stringify(join(import.meta.dir, "../../src/db/embedded.ts"))};
const db = await startEmbeddedDatabase(process.argv[2]!);
const sql = postgres(db.url, { max: EMBEDDED_POOL_OPTIONS.max, prepare: EMBEDDED_POOL_OPTIONS.prepare, onnotice: () => {} });
const [row] = await sql\`${query}\`;
console.log(JSON.stringify(${output}));
await sql.end();
await db.close();
`,
    );
    const binary = join(work, "probe-bin");
    const build = Bun.spawnSync([process.execPath, "build", script, "--compile", "--minify", "--outfile", binary], { cwd: work, timeout: 120_000 });
    expect(build.exitCode, build.stderr.toString()).toBe(0);
    const elsewhere = mkdtempSync(join(root, "run-"));
    prepareDir(elsewhere);
    const run = Bun.spawnSync([binary, "data"], { cwd: elsewhere, timeout: 60_000 });
    expect(run.exitCode, run.stderr.toString()).toBe(0);
    rmSync(binary, { force: true });
    return JSON.parse(run.stdout.toString());
  }

  test("works inside a bun build --compile binary run from another directory", () => {
    const out = runCompiledProbe("compile", "select 1 as one", "row", (elsewhere) => cpSync(template, join(elsewhere, "data"), { recursive: true }));
    expect(out).toEqual({ one: 1 });
  }, { timeout: 180_000 });

  test("the binary starts a new data directory from the image built into it", () => {
    const out = runCompiledProbe("compile-image", "select fingerprint from fmsg_api_schema_version", "{ created: db.created, ...row }", () => {});
    expect(out).toEqual({ created: "image", fingerprint: schemaFingerprint() });
  }, { timeout: 180_000 });
});

describe("a new data directory", () => {
  test("the image built into the program matches sql/ and the installed PGlite", () => {
    // Fails after a change to sql/ until `bun scripts/embedded-image.ts` is run (new users would get initdb).
    const pglite = JSON.parse(readFileSync(join(import.meta.dir, "../../node_modules/@electric-sql/pglite/package.json"), "utf8")) as { version: string };
    expect({ fingerprint: BUILTIN_IMAGE.manifest.fingerprint, pglite: BUILTIN_IMAGE.manifest.pglite }).toEqual({
      fingerprint: schemaFingerprint(),
      pglite: pglite.version,
    });
  });

  test("starts from the image: the current schema is there without migrating, and a draft can be created", async () => {
    const db = await startEmbeddedDatabase(newDir());
    const sql = pool(db.url);
    try {
      expect(db.created).toBe("image");
      expect(await missingTables(sql)).toEqual([]);
      const versions = await sql`select fingerprint from fmsg_api_schema_version`;
      expect(versions.map((r) => r.fingerprint)).toEqual([schemaFingerprint()]);
      const id = await createDraft(sql, "hello");
      const [draft] = await sql`select topic, time_sent from msg where id = ${id}`;
      expect(draft).toEqual({ topic: "hello", time_sent: null });
    } finally {
      await sql.end();
      await db.close();
    }
  });

  test("data written after starting from the image persists across a restart", async () => {
    const dir = newDir();
    let db = await startEmbeddedDatabase(dir);
    let sql = pool(db.url);
    const id = await createDraft(sql, "kept");
    await sql.end();
    await db.close();

    db = await startEmbeddedDatabase(dir);
    sql = pool(db.url);
    try {
      expect(db.created).toBe(null);
      expect((await sql`select topic from msg where id = ${id}`).map((r) => r.topic)).toEqual(["kept"]);
      expect(await createDraft(sql, "next")).toBeGreaterThan(id);
    } finally {
      await sql.end();
      await db.close();
    }
  });

  test("an unpack cut short is redone: files left without PG_VERSION are overwritten", async () => {
    const dir = newDir();
    mkdirSync(join(dir, "global"), { recursive: true });
    writeFileSync(join(dir, "global", "pg_control"), "half written");
    const db = await startEmbeddedDatabase(dir);
    const sql = pool(db.url);
    try {
      expect(db.created).toBe("image");
      expect(await missingTables(sql)).toEqual([]);
    } finally {
      await sql.end();
      await db.close();
    }
  });

  test("an image made from other sql/ is not used: initdb, then migrate brings the current schema", async () => {
    const stale = { ...BUILTIN_IMAGE, manifest: { ...BUILTIN_IMAGE.manifest, fingerprint: "0123456789ab" } };
    const db = await startEmbeddedDatabase(newDir(), { image: stale });
    const sql = pool(db.url);
    try {
      expect(db.created).toBe("initdb");
      expect(await missingTables(sql)).toEqual([...REQUIRED_TABLES]); // an empty database, not the image's
      await migrate(sql);
      expect(await missingTables(sql)).toEqual([]);
      expect(await createDraft(sql, "after migrate")).toBeGreaterThan(0);
    } finally {
      await sql.end();
      await db.close();
    }
  }, { timeout: 120_000 });
});
