import assert from "node:assert/strict";
import { Attributes, distinctWhenFolded, TargetDirs } from "./target.ts";

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

Deno.test("Attributes.fix: owner and mode go to what was lstat'ed, never to what was swapped in", async () => {
  if (Deno.build.os === "windows") return;
  const root = await Deno.makeTempDir({ prefix: "s3backup-fix-" });
  try {
    const attrs = new Attributes(false);
    const entry = (path: string, mode: number) => ({
      type: "d" as const,
      path,
      mode,
      size: 0,
      uid: null,
      gid: null,
      mtimeMs: 1_700_000_000_123,
    });
    const modeOf = (p: string) => Deno.lstatSync(p).mode! & 0o7777;
    // In place: mode and mtime set.
    await Deno.mkdir(`${root}/d`, { mode: 0o700 });
    let st = Deno.lstatSync(`${root}/d`);
    assert.equal(await attrs.fix(`${root}/d`, entry("d", 0o751), st), null);
    assert.equal(modeOf(`${root}/d`), 0o751);
    assert.equal(Deno.lstatSync(`${root}/d`).mtime?.getTime(), 1_700_000_000_123);
    // Swapped for a symlink to another folder after the lstat: refused, the other folder as it was.
    await Deno.mkdir(`${root}/victim`, { mode: 0o700 });
    await Deno.mkdir(`${root}/e`, { mode: 0o700 });
    st = Deno.lstatSync(`${root}/e`);
    await Deno.remove(`${root}/e`);
    await Deno.symlink(`${root}/victim`, `${root}/e`);
    assert.match((await attrs.fix(`${root}/e`, entry("e", 0o777), st))!, /cannot set owner\/mode/);
    assert.equal(modeOf(`${root}/victim`), 0o700);
    // Swapped for another folder: refused too.
    await Deno.mkdir(`${root}/f`, { mode: 0o700 });
    st = Deno.lstatSync(`${root}/f`);
    await Deno.rename(`${root}/f`, `${root}/f.old`);
    await Deno.mkdir(`${root}/f`, { mode: 0o700 });
    assert.match((await attrs.fix(`${root}/f`, entry("f", 0o777), st))!, /replaced/);
    assert.equal(modeOf(`${root}/f`), 0o700);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Attributes.times: a symlink's mtime to the millisecond, before 1970 too", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-times-" });
  try {
    const p = `${dir}/link`;
    Deno.symlinkSync("nowhere", p);
    const e = { type: "l" as const, path: "link", mode: 0o777, uid: null, gid: null, size: 0 };
    // 17106572.641 s is 17106572.640999999... as a float: node's lutimes set .640 from it.
    // Before 1970 too (lutimes took those for "now").
    for (const mtimeMs of [17106572641, 1699913600123, 1764260700999, 0, -1500, -86_400_000_250]) {
      await new Attributes(false).times(p, { ...e, mtimeMs }, null, true);
      assert.equal(Deno.lstatSync(p).mtime?.getTime(), mtimeMs);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
