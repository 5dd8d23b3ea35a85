// The zero-configuration default (README "Quick start"): ./fmsg-data with its own database folder and secret.
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { resolve } from "node:path";

export const EMBEDDED_DATA_DIR = "fmsg-data";
const SECRET_FILE = "jwt-secret";
/** PGlite's folder inside the data directory; a domain always has a dot or is localhost, so no clash. */
export const EMBEDDED_DB_FOLDER = "pglite";
export const SAMPLE_ADDRESS = "@alice@example.com";

export type EmbeddedDefaults = { dataDir: string; jwtSecret: string; databaseDir: string };

/** Creates ./fmsg-data and a random secret (mode 0600) on first use; reuses both afterwards. */
export async function prepareEmbeddedDefaults(cwd = process.cwd()): Promise<EmbeddedDefaults> {
  const dataDir = resolve(cwd, EMBEDDED_DATA_DIR);
  await mkdir(dataDir, { recursive: true, mode: 0o750 });
  const secretPath = resolve(dataDir, SECRET_FILE);
  let secret: string;
  try {
    secret = (await readFile(secretPath, "utf8")).trim();
  } catch {
    secret = "";
  }
  if (secret === "") {
    secret = `base64:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;
    await writeFile(secretPath, `${secret}\n`, { mode: 0o600 });
  }
  await chmod(secretPath, 0o600);
  return { dataDir, jwtSecret: secret, databaseDir: resolve(dataDir, EMBEDDED_DB_FOLDER) };
}
