import assert from "node:assert/strict";
import { distinctWhenFolded } from "./target.ts";

Deno.test("distinctWhenFolded: paths a case- or form-folding file system could take for one", () => {
  assert.equal(distinctWhenFolded(["a/b", "a/c", "A/d", "é"]), true);
  assert.equal(distinctWhenFolded(["a/b", "a/b"]), false); // named twice
  assert.equal(distinctWhenFolded(["dir/File.txt", "dir/file.TXT"]), false); // case
  assert.equal(distinctWhenFolded(["caf\u00e9", "cafe\u0301"]), false); // NFC and NFD
  assert.equal(distinctWhenFolded(["\u212a", "k"]), false); // Kelvin sign and k
  assert.equal(distinctWhenFolded(["a/file", "a/FILE"]), false); // the folded one first
  assert.equal(distinctWhenFolded(["a/File", "a/FILE", "b"]), false); // neither folded
  assert.equal(distinctWhenFolded(["A/x", "a/X", "É", "é"]), false);
  assert.equal(distinctWhenFolded(["ÉTÉ", "Été/x", "README", "readme.md"]), true);
  assert.equal(distinctWhenFolded([]), true);
});
