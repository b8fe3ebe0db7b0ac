/**
 * The README's first command, `bash scripts/demo.sh`, as a new user runs it: twice in a row (the
 * second run makes its bucket anew where the first one's was).
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("demo: scripts/demo.sh runs twice in a row, its restored trees identical each time", async () => {
  for (const run of [1, 2]) {
    const out = await new Deno.Command("bash", {
      args: ["scripts/demo.sh"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `run ${run}: ${text.slice(-2000)}`);
    assert.match(text, /demo: both restored trees are identical to the source/);
  }
  await Deno.remove(`${ROOT}demo`, { recursive: true });
});
