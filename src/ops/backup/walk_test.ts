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
