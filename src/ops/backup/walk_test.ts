import assert from "node:assert/strict";
import { compareWalkOrder, walk } from "./walk.ts";

Deno.test("walk: depth first, names sorted; compareWalkOrder is the same order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const d of ["a", "a/b", "a b", "a-b", "a0", "é"]) Deno.mkdirSync(`${dir}/${d}`);
    for (const f of ["a/b/x", "a/a", "a/b x", "a b/y", "a-b/z", "A", "a0/q", "é/ü", "~"]) {
      Deno.writeTextFileSync(`${dir}/${f}`, f);
    }
    const paths = Array.from(walk(dir, () => {}), (i) => i.path);
    assert.deepEqual(paths, [
      "A",
      "a",
      "a/a",
      "a/b",
      "a/b/x",
      "a/b x",
      "a b",
      "a b/y",
      "a-b",
      "a-b/z",
      "a0",
      "a0/q",
      "~",
      "é",
      "é/ü",
    ]);
    assert.deepEqual([...paths].reverse().sort(compareWalkOrder), paths);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("walk: from /, /proc, /sys and /dev are kept as empty folders, never read", () => {
  if (Deno.build.os !== "linux") return;
  const warnings: string[] = [], excluded: [string, string][] = [];
  // Everything at the top left out but the three (a gitignore filter, as --exclude gives).
  const filter = {
    excluded: (rel: string) => /^(proc|sys|dev)(\/|$)/.test(rel) ? null : "left out here",
    emptied: () => null,
  };
  const items = [...walk("/", (w) => warnings.push(`${w.path}: ${w.message}`), filter, (p, r) => {
    if (!r.startsWith("left out")) excluded.push([p, r]);
  })];
  assert.deepEqual(warnings, []);
  assert.deepEqual(items.map((i) => `${i.type} ${i.path}`), ["d dev", "d proc", "d sys"]);
  assert.deepEqual(excluded, [
    ["dev/", "contents left out: a kernel file system (/dev): never read"],
    ["proc/", "contents left out: a kernel file system (/proc): never read"],
    ["sys/", "contents left out: a kernel file system (/sys): never read"],
  ]);
  // Its real mode and mtime are recorded (lstat is allowed), as for --one-file-system.
  assert.ok(items.every((i) => i.info.isDirectory && i.info.mtime !== null));
});
