// Regenerates the embedded database image (src/db/embedded-image.tar.zst + .json): initdb, migrate, pack.
//
//   bun scripts/embedded-image.ts           rebuild it when it no longer matches sql/ or the installed PGlite
//   bun scripts/embedded-image.ts --force   rebuild it anyway (each build differs: initdb stamps an identifier)
//   bun scripts/embedded-image.ts --check   exit 1 when it no longer matches sql/ or the installed PGlite
//
// The program unpacks the image into a new data directory instead of running initdb (which peaks near 1 GB RSS inside WebAssembly; docs/footprint.md); an
// image that does not match sql/ is ignored at run time, and tests/db/embedded.test.ts fails on it.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrateEmbeddedDatabase } from "../src/db/embedded.ts";
import { packImage, type ImageManifest } from "../src/db/embedded-image.ts";
import { schemaFingerprint } from "../src/db/schema.ts";

const root = join(import.meta.dir, "..");
const imageFile = join(root, "src/db/embedded-image.tar.zst");
const manifestFile = join(root, "src/db/embedded-image.json");

function installedPglite(): string {
  const pkg = JSON.parse(readFileSync(join(root, "node_modules/@electric-sql/pglite/package.json"), "utf8")) as { version: string };
  return pkg.version;
}

const manifest = JSON.parse(readFileSync(manifestFile, "utf8")) as ImageManifest;
const want = { fingerprint: schemaFingerprint(), pglite: installedPglite() };
const current = manifest.fingerprint === want.fingerprint && manifest.pglite === want.pglite;
if (process.argv.includes("--check")) {
  if (!current) {
    process.stderr.write(`embedded image is stale (image ${JSON.stringify(manifest)}, now ${JSON.stringify(want)}): run bun scripts/embedded-image.ts\n`);
    process.exit(1);
  }
  process.stdout.write(`embedded image matches sql/ (${want.fingerprint}) and PGlite ${want.pglite}\n`);
  process.exit(0);
}
if (current && !process.argv.includes("--force")) {
  process.stdout.write(`embedded image already matches sql/ (${want.fingerprint}) and PGlite ${want.pglite}; --force rebuilds it\n`);
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), "fmsg-image-"));
try {
  const dir = join(work, "pgdata");
  await migrateEmbeddedDatabase(dir, { image: null });
  const bytes = packImage(dir, imageFile, ["embedded.lock"]);
  const made: ImageManifest = { ...want, bytes };
  writeFileSync(manifestFile, `${JSON.stringify(made, null, 2)}\n`);
  process.stdout.write(`wrote ${imageFile} (${statSync(imageFile).size} bytes, ${bytes} unpacked) for schema ${made.fingerprint}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
