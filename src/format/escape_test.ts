import assert from "node:assert/strict";
import { escapeText, unescapeText } from "./escape.ts";

const nasty = [
  "plain.txt",
  " leading and trailing ",
  "new\nline",
  "cr\rhere",
  "tab\there",
  "back\\slash\\n",
  "100%done %s %b",
  "-rf",
  "ünïcödé 日本 🎉",
  "\x01\x1f\x7f",
  "\\x41",
];

Deno.test("escapeText round-trips nasty names in both modes", () => {
  for (const s of nasty) {
    for (const mode of ["text", "field"] as const) {
      const e = escapeText(s, mode);
      assert.deepEqual(e.includes("\n") || e.includes("\r"), false, e);
      if (mode === "field") assert.deepEqual(e.includes(" "), false, e);
      assert.deepEqual(unescapeText(e), s);
    }
  }
});

Deno.test("escapeText writes the documented escapes", () => {
  assert.deepEqual(escapeText("a\\b\nc\rd\te\x01 f"), "a\\\\b\\nc\\rd\\te\\x01 f");
  assert.deepEqual(escapeText("a b", "field"), "a\\x20b");
  assert.deepEqual(escapeText(" x "), " x ");
});

Deno.test("unescapeText rejects escapes the format never writes", () => {
  assert.throws(() => unescapeText("a\\c"), SyntaxError);
  assert.throws(() => unescapeText("a\\x4"), SyntaxError);
  assert.throws(() => unescapeText("a\\"), SyntaxError);
});

Deno.test("bash printf %b undoes escapeText exactly", async () => {
  const input = nasty.map((s) => escapeText(s)).join("\n") + "\n";
  // Each decoded value is written NUL-terminated so newlines inside survive.
  const script = `while IFS= read -r l; do printf -v d '%b' "$l"; printf '%s\\0' "$d"; done`;
  const cmd = new Deno.Command("bash", { args: ["-c", script], stdin: "piped", stdout: "piped" });
  const child = cmd.spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  const out = await child.output();
  const decoded = new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
  assert.deepEqual(decoded, nasty);
});
