// Programs a few test files need besides PostgreSQL itself: redis-server, openssl, PostgreSQL's
// server binaries (a private cluster) and, as root, runuser. Where one is missing the file's tests
// are skipped with a line saying so; FMSG_TEST_REQUIRE_TOOLS=1 (CI sets it) makes that a failure.
import { existsSync } from "node:fs";
import { basename } from "node:path";

/** Whether every program is here (a name on PATH, or a path). */
export function toolsPresent(file: string, tools: string[]): boolean {
  const missing = tools.filter((t) => (t.includes("/") ? !existsSync(t) : Bun.which(t) === null));
  if (missing.length === 0) return true;
  const what = `${basename(file)} needs ${missing.join(", ")}, not found on this machine`;
  if (process.env.FMSG_TEST_REQUIRE_TOOLS === "1") throw new Error(`${what} (FMSG_TEST_REQUIRE_TOOLS=1)`);
  console.warn(`skipped: ${what}`);
  return false;
}
