// postinstall: makes sure node_modules holds the patched dependencies of package.json's
// "patchedDependencies" (docs/decisions/postgres-js-crash.md). `bun install` applies them itself;
// `npm install` does not know the field, so after an npm install this runs `bun install` (Bun is a
// dev dependency, on PATH in npm scripts), which brings node_modules to bun.lock with the patches.
// A patch counts as applied when every line it adds is in the file it changes.
import { readFileSync } from "node:fs";
import { join } from "node:path";

type Patched = Record<string, string>;

const root = join(import.meta.dir, "..");
const patched: Patched = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).patchedDependencies ?? {};

/** "postgres@3.4.9" → "postgres"; "@scope/name@1.0.0" → "@scope/name". */
const packageName = (spec: string) => spec.slice(0, spec.lastIndexOf("@"));

function missing(): string[] {
  const out: string[] = [];
  for (const [spec, patchFile] of Object.entries(patched)) {
    const added = new Map<string, string[]>();
    let file = "";
    for (const line of readFileSync(join(root, patchFile), "utf8").split("\n")) {
      if (line.startsWith("+++ ")) file = line.slice(4).replace(/^b\//, "");
      else if (line.startsWith("+") && file) (added.get(file) ?? added.set(file, []).get(file)!).push(line.slice(1));
    }
    for (const [f, lines] of added) {
      let text: string;
      try {
        text = readFileSync(join(root, "node_modules", packageName(spec), f), "utf8");
      } catch {
        out.push(`${spec}: ${f} is missing`);
        continue;
      }
      if (lines.some((l) => !text.includes(l))) out.push(`${spec}: ${f} lacks ${patchFile}`);
    }
  }
  return out;
}

if (missing().length > 0) {
  console.log("applying patchedDependencies with bun install (npm does not apply them)");
  const run = Bun.spawnSync(["bun", "install", "--frozen-lockfile"], { cwd: root, stdout: "inherit", stderr: "inherit" });
  const still = missing();
  if (run.exitCode !== 0 || still.length > 0) {
    console.error(`patched dependencies are not in place:\n  ${still.join("\n  ")}\nrun: bun install --frozen-lockfile`);
    process.exit(1);
  }
}
