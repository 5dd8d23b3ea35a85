// Start-up removes temporary files a crash left in the data directory, and nothing else.
import { expect, test } from "bun:test";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestServer } from "../helpers/server.ts";

test("stray .tmp-* files are swept; real files stay", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "fmsg-sweep-"));
  const dir = join(dataDir, "example.com", "alice", "out", "7", "attach");
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, ".tmp-report.pdf-1234"), "half an upload");
  await writeFile(join(dir, "report.pdf"), "a committed attachment");
  await writeFile(join(dataDir, "example.com", "alice", "out", "7", ".tmp-data.txt-99"), "half a body");
  const s = await startTestServer({ env: { FMSG_DATA_DIR: dataDir } });
  try {
    expect(await readdir(dir)).toEqual(["report.pdf"]);
    expect(await readdir(join(dataDir, "example.com", "alice", "out", "7"))).toEqual(["attach"]);
  } finally {
    await s.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
