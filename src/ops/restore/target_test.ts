import assert from "node:assert/strict";
import { distinctWhenFolded, TargetDirs } from "./target.ts";

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

Deno.test("TargetDirs: into /, nothing is written in /proc, /sys or /dev (refused before any look)", () => {
  if (Deno.build.os === "windows") return;
  const root = new TargetDirs("/");
  for (const rel of ["proc/sys/kernel/core_pattern", "sys/kernel/x", "dev/shm/x", "proc"]) {
    const k = `/${rel.split("/")[0]}`;
    assert.equal(root.examine(rel, false), `in ${k}, a kernel file system: not written`, rel);
    assert.equal(root.examine(rel, true), `in ${k}, a kernel file system: not written`, rel);
  }
  assert.equal(root.kernelRoot("proc"), root.abs("proc")); // the folder itself: left as it is
  assert.equal(root.kernelRoot("procs/x"), null);
  // Into any other folder, a path named proc/... is an ordinary one.
  assert.equal(new TargetDirs("/srv/restore").kernelRoot("proc/x"), null);
});
