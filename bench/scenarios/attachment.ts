// Scenario 5 — attachment memory (issue #3): upload a 200 MiB file (curl, streamed multipart) and
// download it back, sampling the server's VmRSS every 50 ms from before to after.
import { randomFillSync } from "node:crypto";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { createDraft } from "../lib/api.ts";
import { mib, table, type Ctx, type Figure, type ScenarioResult } from "../lib/context.ts";
import { memoryOf, startServer } from "../lib/procs.ts";
import { log, median, run, sleep } from "../lib/util.ts";

export const ATTACH_GOAL_BYTES = 32 * 1024 * 1024;
const SAMPLE_MS = 50;

async function makeFile(path: string, bytes: number): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  const fh = await open(path, "wx", 0o600);
  const chunk = Buffer.alloc(1024 * 1024);
  try {
    for (let left = bytes; left > 0; left -= chunk.length) {
      const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
      randomFillSync(part);
      hasher.update(part);
      await fh.write(part);
    }
  } finally {
    await fh.close();
  }
  return hasher.digest("hex");
}

async function sha256(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) hasher.update(chunk);
  return hasher.digest("hex");
}

export async function attachmentScenario(ctx: Ctx, dataDir: string): Promise<ScenarioResult> {
  const bytes = ctx.settings.attachMiB * 1024 * 1024;
  const env = ctx.serverEnv(dataDir, { FMSG_API_MAX_ATTACH_SIZE: "256", FMSG_API_MAX_MSG_SIZE: "512", FMSG_API_MAX_DATA_SIZE: "10" });
  const server = await startServer("ours-attach", ["bun", "src/main.ts", "serve"], env, "/readyz");
  const upload = join(ctx.tmp, "upload.bin");
  const download = join(ctx.tmp, "download.bin");
  try {
    log(`scenario 5: generating a ${ctx.settings.attachMiB} MiB file`);
    const digest = await makeFile(upload, bytes);
    const owner = "@attach.owner@bench.example";
    const token = ctx.token(owner);
    const id = await createDraft(server.url, token, { from: owner, to: ["@attach.reader@bench.example"], topic: "big file" });

    const samples: { t: number; rss: number; phase: string }[] = [];
    let phase = "before";
    const started = performance.now();
    const sample = () => samples.push({ t: performance.now() - started, rss: memoryOf(server.pid).rss, phase });
    const timer = setInterval(sample, SAMPLE_MS);
    sample();
    const hwmBefore = memoryOf(server.pid).hwm;
    await sleep(1000);

    phase = "upload";
    const auth = `Authorization: Bearer ${token}`;
    const t0 = performance.now();
    const up = await run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", auth, "-F", `file=@${upload};filename=big.bin;type=application/octet-stream`, `${server.url}/fmsg/${id}/attach`]);
    const uploadSeconds = (performance.now() - t0) / 1000;
    if (up !== "201") throw new Error(`upload answered ${up}`);

    phase = "download";
    const t1 = performance.now();
    const down = await run(["curl", "-sS", "-o", download, "-w", "%{http_code}", "-H", auth, `${server.url}/fmsg/${id}/attach/big.bin`]);
    const downloadSeconds = (performance.now() - t1) / 1000;
    if (down !== "200") throw new Error(`download answered ${down}`);

    phase = "after";
    await sleep(1000);
    clearInterval(timer);
    sample();
    const hwmAfter = memoryOf(server.pid).hwm;

    const size = (await stat(download)).size;
    const back = await sha256(download);
    const intact = size === bytes && back === digest;
    if (!intact) throw new Error(`download differs: ${size} bytes, sha256 ${back} (expected ${bytes}, ${digest})`);

    const baseline = median(samples.filter((s) => s.phase === "before").map((s) => s.rss));
    const peakSample = samples.reduce((a, s) => (s.rss > a.rss ? s : a));
    // The kernel's high-water mark catches a peak between two samples (if it rose during the test).
    const peak = Math.max(peakSample.rss, hwmAfter > hwmBefore ? hwmAfter : 0);
    const rise = peak - baseline;
    const peakOf = (p: string) => Math.max(...samples.filter((s) => s.phase === p).map((s) => s.rss));
    const pass = rise < ATTACH_GOAL_BYTES;
    log(`scenario 5: baseline ${mib(baseline).toFixed(1)} MiB, peak ${mib(peak).toFixed(1)} MiB (+${mib(rise).toFixed(1)} MiB), upload ${uploadSeconds.toFixed(2)} s, download ${downloadSeconds.toFixed(2)} s`);
    const figures: Figure[] = [
      {
        scenario: "5 Attachment memory",
        figure: "peak RSS − baseline",
        conns: `${ctx.settings.attachMiB} MiB up + down`,
        ours: `+${mib(rise).toFixed(1)} MiB (peak ${mib(peak).toFixed(1)} MiB)`,
        baseline: `RSS before ${mib(baseline).toFixed(1)} MiB`,
        ratio: `${(rise / bytes).toFixed(3)} of file`,
        goal: "< 32 MiB",
        result: pass ? "PASS" : "MISS",
        shortfall: pass ? undefined : `attachment memory: peak rose ${mib(rise).toFixed(1)} MiB over baseline, goal < 32 MiB`,
      },
    ];
    const markdown = [
      `Server with \`FMSG_API_MAX_ATTACH_SIZE=256\`, \`FMSG_API_MAX_MSG_SIZE=512\`, \`FMSG_API_MAX_DATA_SIZE=10\`. A ${ctx.settings.attachMiB} MiB random file uploaded with \`curl -F file=@…\` (streamed multipart) to a draft, then downloaded with curl to a file and verified (size and sha256 match). VmRSS sampled from \`/proc/<pid>/status\` every ${SAMPLE_MS} ms (${samples.length} samples); VmHWM (the kernel's high-water mark) read before and after.`,
      "",
      table(
        ["Measure", "Value"],
        [
          ["RSS before (median of 1 s)", `${mib(baseline).toFixed(1)} MiB`],
          ["peak during upload / download / after", `${mib(peakOf("upload")).toFixed(1)} / ${mib(peakOf("download")).toFixed(1)} / ${mib(peakOf("after")).toFixed(1)} MiB`],
          ["VmHWM before → after", `${mib(hwmBefore).toFixed(1)} → ${mib(hwmAfter).toFixed(1)} MiB`],
          ["peak − baseline", `${mib(rise).toFixed(1)} MiB`],
          ["upload / download time", `${uploadSeconds.toFixed(2)} s (${(ctx.settings.attachMiB / uploadSeconds).toFixed(0)} MiB/s) / ${downloadSeconds.toFixed(2)} s (${(ctx.settings.attachMiB / downloadSeconds).toFixed(0)} MiB/s)`],
          ["round trip", intact ? `intact (${bytes} bytes, sha256 ${digest.slice(0, 16)}…)` : "CORRUPT"],
        ],
      ),
    ];
    return {
      id: "attachment",
      title: "5. Attachment memory",
      figures,
      markdown: markdown.join("\n"),
      data: { bytes, baseline, peak, peakSample, rise, hwmBefore, hwmAfter, uploadSeconds, downloadSeconds, intact, samples },
    };
  } finally {
    await server.stop();
  }
}
