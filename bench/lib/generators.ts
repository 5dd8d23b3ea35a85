// Load-generator processes for the long-lived scenarios (waiters, WebSockets): spawn, await READY and RESULT lines.
import { spawnChild, type Child } from "./procs.ts";

export type Generators<R> = {
  children: Child[];
  /** Every generator has opened its connections (or one died first: rejects with its output). */
  ready: Promise<void>;
  /** Every generator's RESULT line (or one died without one: rejects with its output). */
  results: Promise<R[]>;
  stop(): Promise<void>;
};

/**
 * Starts `processes` copies of `script`, splitting `total` connections between them; `optsFor`
 * gives each its JSON argument. A generator prints `READY …` once its connections are open and
 * `RESULT <json>` at the end.
 */
export async function spawnGenerators<R>(
  label: string,
  script: string,
  total: number,
  processes: number,
  optsFor: (first: number, count: number) => object,
): Promise<Generators<R>> {
  const per = Math.ceil(total / processes);
  const ready: Promise<void>[] = [];
  const results: Promise<R>[] = [];
  const children: Child[] = [];
  const got: boolean[] = [];
  for (let g = 0; g < processes; g++) {
    const first = g * per;
    const count = Math.min(per, total - first);
    let onReady: () => void = () => {};
    let onResult: (r: R) => void = () => {};
    ready.push(new Promise((r) => (onReady = r)));
    results.push(new Promise((r) => (onResult = r)));
    children.push(
      await spawnChild(`${label}-${g}`, ["bun", script, JSON.stringify(optsFor(first, count))], {}, {
        onStdoutLine: (line) => {
          if (line.startsWith("READY ")) onReady();
          else if (line.startsWith("RESULT ")) {
            got[g] = true;
            onResult(JSON.parse(line.slice(7)) as R);
          }
        },
      }),
    );
  }
  const failed = new Promise<never>((_, reject) => {
    children.forEach((child, i) => {
      void child.finished.then((code) => {
        if (!got[i]) reject(new Error(`${label} generator ${i} exited (${code}) without a result:\n${child.output()}`));
      });
    });
  });
  failed.catch(() => {});
  return {
    children,
    ready: Promise.race([Promise.all(ready).then(() => {}), failed]),
    results: Promise.race([Promise.all(results), failed]),
    stop: async () => {
      await Promise.all(children.map((c) => c.stop()));
    },
  };
}
