import assert from "node:assert/strict";
import { nativePath, windowsNameProblem } from "./native_path.ts";
import { planRestore } from "./plan.ts";

Deno.test("native paths: Windows names refused with the reason; others pass", () => {
  for (
    const ok of ["a", "dir/file.txt", "ü/€ x", "CONSOLE", "con-1", "a.b/c d", ".hidden", "COM0"]
  ) {
    assert.equal(windowsNameProblem(ok), null, ok);
  }
  const cases: [string, RegExp][] = [
    ["CON", /"CON" is a device name on Windows/],
    ["dir/nul.txt", /"nul.txt" is a device name/],
    ["x/COM1", /device name/],
    ["LPT9.log", /device name/],
    ["COM\u00b9", /device name/],
    ["a/b.", /ends in a dot or a space/],
    ["trailing /x", /ends in a dot or a space/],
    ["a:b", /holds ":", which Windows does not allow/],
    ["back\\slash", /holds "\\"/],
    ["q?", /holds "\?"/],
    ["star*", /holds "\*"/],
    ['"quoted"', /holds """/],
    ["<>", /holds "<"/],
    ["pipe|", /holds "\|"/],
    ["tab\there", /holds a control character/],
  ];
  for (const [p, re] of cases) assert.match(windowsNameProblem(p) ?? "(none)", re, p);
});

Deno.test("native paths: a meta path under a root, on POSIX and on Windows", () => {
  assert.equal(nativePath("/srv/out", "a/b c/d", false), "/srv/out/a/b c/d");
  assert.equal(nativePath("/srv/out/", "a", false), "/srv/out/a");
  assert.equal(nativePath("/", "etc/x", false), "/etc/x");
  assert.equal(nativePath("/srv/out", "", false), "/srv/out");
  assert.equal(nativePath("C:\\restore", "a/b/c.txt", true), "C:\\restore\\a\\b\\c.txt");
  assert.equal(nativePath("C:\\restore\\", "a", true), "C:\\restore\\a");
  assert.equal(nativePath("D:/out/", "x/y", true), "D:/out\\x\\y");
});

Deno.test("native paths: the planner refuses on Windows what Windows cannot hold, nothing else", () => {
  const e = (path: string, type: "f" | "d" = "f") => ({
    type,
    path,
    mode: 0o644,
    uid: null,
    gid: null,
    size: 1,
    mtimeMs: 0,
    ...(type === "f" ? { md5: "0".repeat(32) } : {}),
  });
  const entries = [e("ok", "d"), e("ok/a.txt"), e("aux", "d"), e("aux/x"), e("b:c"), e("d.")];
  const win = planRestore(entries, [], "m", true);
  assert.deepEqual(win.files.map((f) => f.path), ["ok/a.txt"]);
  assert.deepEqual(win.dirs.map((f) => f.path), ["ok"]);
  assert.deepEqual(
    win.problems.map((p) => p.path),
    ["aux", "aux/x", "b:c", "d."],
  );
  assert.match(win.problems[0]!.message, /^cannot be restored on Windows: "aux" is a device name/);
  const posix = planRestore(entries, [], "m", false);
  assert.deepEqual(posix.problems, []);
  assert.equal(posix.files.length, 4);
});
