import assert from "node:assert/strict";
import type { FileResult } from "./file_reader.ts";
import { HardLinks } from "./hard_links.ts";
import type { WalkItem } from "./walk.ts";

const item = (path: string, ino: number | null, nlink: number | null): WalkItem => ({
  path,
  abs: `/src/${path}`,
  type: "f",
  info: { ino, nlink, dev: 1 } as Deno.FileInfo,
});
const result = { md5: "5d41402abc4b2a76b9719d911017c592", size: 5, where: "data" } as FileResult;

Deno.test("hard links: the first name of an inode, its links, forgotten once all names went by", () => {
  const h = new HardLinks();
  assert.equal(h.firstOf(item("solo", 7, 1)), null, "one link: not remembered");
  assert.equal(h.firstOf(item("nolinks", null, null)), null, "no inode numbers (Windows)");
  const a = item("a", 9, 3);
  assert.equal(h.firstOf(a), null, "the first");
  h.recorded(a, result);
  const b = h.firstOf(item("b", 9, 3));
  assert.deepEqual(b, { linkOf: "a", inode: "1:9" });
  assert.equal(h.take(b!), result);
  const c = h.firstOf(item("c", 9, 3))!;
  assert.equal(h.take(c), result, "the third and last name");
  assert.equal(h.firstOf(item("d", 9, 3)), null, "forgotten: a later name starts anew");
  const x = item("x", 11, 2);
  assert.equal(h.firstOf(x), null);
  const y = h.firstOf(item("y", 11, 2))!;
  assert.equal(h.take(y), null, "the first was skipped (never recorded)");
});
