/**
 * Hard links (FORMAT.md §5.1 `h` entries): link groups of two names, of three across folders,
 * and one with a name excluded come back as the same groups (inode equality, link counts) by
 * the binary and by the kit, whole and with `--only` subsets (of the names whose first is not
 * selected, the first is a file of its own and the others its links); `ls` and `diff` show
 * them; a no-op backup (the files cache) records them again; a target on another file system
 * (tmpfs) gets them too.
 */
import assert from "node:assert/strict";
import { PASSWORD, s3backup } from "./faults/harness.ts";
import { runKit } from "./kit_runner.ts";
import { linkFile } from "../src/ops/restore/file_writer.ts";
import { Attributes } from "../src/ops/restore/target.ts";

/** The link groups under `root`: sorted lists of paths sharing an inode (files only). */
function groups(root: string): string[][] {
  const byInode = new Map<string, string[]>();
  const visit = (rel: string) => {
    for (const e of Deno.readDirSync(rel === "" ? root : `${root}/${rel}`)) {
      const p = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory) visit(p);
      else if (e.isFile) {
        const st = Deno.statSync(`${root}/${p}`);
        const key = `${st.dev}:${st.ino}`;
        byInode.set(key, [...byInode.get(key) ?? [], p]);
        assert.ok(st.nlink !== null);
      }
    }
  };
  visit("");
  return [...byInode.values()].map((g) => g.sort()).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
}

/** The tree: its files' contents by path. */
function makeTree(src: string): void {
  for (const d of ["a", "b", "c"]) Deno.mkdirSync(`${src}/${d}`, { recursive: true });
  Deno.writeTextFileSync(`${src}/a/x`, "two names\n");
  Deno.linkSync(`${src}/a/x`, `${src}/a/y`);
  Deno.writeTextFileSync(`${src}/a/p`, "three names in three folders\n");
  Deno.linkSync(`${src}/a/p`, `${src}/b/q`);
  Deno.linkSync(`${src}/a/p`, `${src}/c/r with space`);
  Deno.writeTextFileSync(`${src}/solo`, "one name excluded\n");
  Deno.linkSync(`${src}/solo`, `${src}/a/solo2`);
  Deno.linkSync(`${src}/solo`, `${src}/b/left.tmp`);
  Deno.writeTextFileSync(`${src}/plain`, "two names\n"); // the same content, not a link
  // Names a stand-in (FORMAT.md §5.3) is written back in: a space, a newline, a backslash.
  Deno.writeTextFileSync(`${src}/a/f1`, "nasty names\n");
  Deno.linkSync(`${src}/a/f1`, `${src}/b/sp ace\nnl`);
  Deno.linkSync(`${src}/a/f1`, `${src}/c/z\\bs`);
}

const NASTY = ["a/f1", "b/sp ace\nnl", "c/z\\bs"];
const WHOLE = [
  NASTY,
  ["a/p", "b/q", "c/r with space"],
  ["a/solo2", "solo"],
  ["a/x", "a/y"],
  ["plain"],
];

async function restoreBoth(repo: string, out: string, only: string[] = []): Promise<void> {
  const flags = only.flatMap((o) => ["--only", o]);
  const r = await s3backup(["restore", "-b", repo, "-m", "latest", "-f", `${out}-bin`, ...flags]);
  assert.equal(r.code, 0, r.stderr);
  const k = await runKit("restore.sh", [...flags, repo, "latest", `${out}-kit`], PASSWORD);
  assert.equal(k.code, 0, k.stderr);
}

Deno.test({
  name: "hard links: the same link groups back, by binary and kit, whole and in parts",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-hardlinks-" });
    try {
      const src = `${dir}/src`, repo = `${dir}/repo`;
      makeTree(src);
      Deno.mkdirSync(repo);
      const b = await s3backup(["backup", "-f", src, "-b", repo, "-c", "--exclude", "*.tmp"]);
      assert.equal(b.code, 0, b.stderr);
      const ls = await s3backup(["ls", "-b", repo, "-m", "latest"]);
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, /^h .* b\/q => a\/p$/m);
      assert.match(ls.stdout, /^h .* c\/r with space => a\/p$/m);
      assert.match(ls.stdout, /^h .* a\/y => a\/x$/m);
      assert.match(ls.stdout, /^h .* solo => a\/solo2$/m);
      assert.match(ls.stdout, /^f .* plain$/m);
      assert.doesNotMatch(ls.stdout, /left\.tmp/);

      await restoreBoth(repo, `${dir}/whole`);
      for (const side of ["bin", "kit"]) {
        const out = `${dir}/whole-${side}`;
        assert.deepEqual(groups(out), WHOLE, side);
        assert.equal(Deno.statSync(`${out}/c/r with space`).nlink, 3, side);
        assert.equal(Deno.readTextFileSync(`${out}/b/q`), "three names in three folders\n");
      }
      // --only: b alone (its names' firsts are in a: files of their own); a and c (linked); b and
      // c (their first, a/p, left out: c's name a link of b's, the first of them).
      await restoreBoth(repo, `${dir}/b`, ["b"]);
      await restoreBoth(repo, `${dir}/ac`, ["a", "c"]);
      await restoreBoth(repo, `${dir}/bc`, ["b", "c"]);
      for (const side of ["bin", "kit"]) {
        assert.deepEqual(groups(`${dir}/bc-${side}`), [
          ["b/q", "c/r with space"],
          NASTY.slice(1),
        ], side);
        assert.equal(Deno.readTextFileSync(`${dir}/bc-${side}/${NASTY[2]}`), "nasty names\n");
        assert.equal(Deno.statSync(`${dir}/bc-${side}/c/r with space`).nlink, 2, side);
        assert.deepEqual(groups(`${dir}/b-${side}`), [["b/q"], [NASTY[1]!]], side);
        assert.equal(
          Deno.readTextFileSync(`${dir}/b-${side}/b/q`),
          "three names in three folders\n",
        );
        assert.deepEqual(groups(`${dir}/ac-${side}`), [
          [NASTY[0]!, NASTY[2]!],
          ["a/p", "c/r with space"],
          ["a/solo2"],
          ["a/x", "a/y"],
        ], side);
      }

      // Again from the files cache (nothing read): the same entries.
      const again = await s3backup(["backup", "-f", src, "-b", repo, "-c", "--exclude", "*.tmp"]);
      assert.equal(again.code, 0, again.stderr);
      const ls2 = await s3backup(["ls", "-b", repo, "-m", "latest"]);
      const strip = (s: string) => s.replace(/ \d{4}-\d\d-\d\dT\S+ /g, " ");
      assert.equal(strip(ls2.stdout), strip(ls.stdout));

      // a/y no longer a link: diff says so.
      Deno.removeSync(`${src}/a/y`);
      Deno.writeTextFileSync(`${src}/a/y`, "two names\n");
      const third = await s3backup(["backup", "-f", src, "-b", repo, "-c", "--exclude", "*.tmp"]);
      assert.equal(third.code, 0, third.stderr);
      const list = await s3backup(["list", "-b", repo, "--tsv"]);
      const [m2, m3] = list.stdout.trim().split("\n").map((l) => l.split("\t")[0]!).slice(-2);
      const diff = await s3backup(["diff", "-b", repo, m2!, m3!]);
      assert.equal(diff.code, 0, diff.stderr);
      assert.match(diff.stdout, /a\/y.*hard link/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "hard links: a first that is not restored (other content in the way) fails its links",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-hardlinks-" });
    try {
      makeTree(`${dir}/src`);
      Deno.mkdirSync(`${dir}/repo`);
      const b = await s3backup(["backup", "-f", `${dir}/src`, "-b", `${dir}/repo`, "-c"]);
      assert.equal(b.code, 0, b.stderr);
      Deno.mkdirSync(`${dir}/out/a`, { recursive: true });
      Deno.writeTextFileSync(`${dir}/out/a/x`, "older\n"); // left: no --overwrite
      const r = await s3backup([
        "restore",
        "-b",
        `${dir}/repo`,
        "-m",
        "latest",
        "-f",
        `${dir}/out`,
      ]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /a\/x: exists with other content/);
      assert.match(r.stderr, /a\/y: not restored: a\/x, the file it is a hard link of, was not/);
      assert.throws(() => Deno.statSync(`${dir}/out/a/y`), Deno.errors.NotFound);
      assert.deepEqual(groups(`${dir}/out`).find((g) => g.includes("a/p")), [
        "a/p",
        "b/q",
        "c/r with space",
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "hard links: the kit does not link to an older file left where a first that failed (a damaged pack) should be",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-hardlinks-" });
    try {
      makeTree(`${dir}/src`);
      Deno.mkdirSync(`${dir}/repo`);
      const b = await s3backup(["backup", "-f", `${dir}/src`, "-b", `${dir}/repo`, "-c"]);
      assert.equal(b.code, 0, b.stderr);
      // The one pack damaged mid-way: none of its contents (a/x's among them) can be restored.
      const [pack] = [...Deno.readDirSync(`${dir}/repo/packs`)].map((e) => e.name);
      const p = `${dir}/repo/packs/${pack}`;
      const bytes = Deno.readFileSync(p);
      bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
      Deno.writeFileSync(p, bytes);
      Deno.mkdirSync(`${dir}/out/a`, { recursive: true });
      Deno.writeTextFileSync(`${dir}/out/a/x`, "older\n"); // not replaced: a/x fails
      const k = await runKit("restore.sh", [`${dir}/repo`, "latest", `${dir}/out`], PASSWORD);
      assert.equal(k.code, 3, k.stderr);
      assert.match(k.stderr, /a\/x: (missing member|MD5 mismatch)/);
      assert.match(k.stderr, /a\/y: not restored: a\/x, the file it is a hard link of, was not/);
      assert.equal(Deno.readTextFileSync(`${dir}/out/a/x`), "older\n");
      assert.throws(() => Deno.statSync(`${dir}/out/a/y`), Deno.errors.NotFound);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Mounts a small tmpfs at `at` (as root, where the container lets us); false when it cannot. */
function mountTmpfs(at: string): boolean {
  const args = ["-t", "tmpfs", "-o", "size=16m", "tmpfs", at];
  return new Deno.Command("mount", { args, stdout: "null", stderr: "null" }).outputSync().success;
}

Deno.test({
  name: "hard links: a target on another file system (a tmpfs) gets the links",
  ignore: Deno.build.os !== "linux" || Deno.uid() !== 0,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-hardlinks-" });
    const mnt = `${dir}/mnt`;
    Deno.mkdirSync(mnt);
    const mounted = mountTmpfs(mnt);
    try {
      if (!mounted) {
        return void await t.step({
          name: "mount -t tmpfs refused here",
          ignore: true,
          fn: () => {},
        });
      }
      assert.notEqual(Deno.statSync(mnt).dev, Deno.statSync(dir).dev, "another file system");
      makeTree(`${dir}/src`);
      Deno.mkdirSync(`${dir}/repo`);
      const b = await s3backup(["backup", "-f", `${dir}/src`, "-b", `${dir}/repo`, "-c"]);
      assert.equal(b.code, 0, b.stderr);
      await restoreBoth(`${dir}/repo`, `${mnt}/t`);
      const all = [NASTY, ["a/p", "b/q", "c/r with space"], ["a/solo2", "b/left.tmp", "solo"]];
      for (const side of ["bin", "kit"]) {
        assert.deepEqual(groups(`${mnt}/t-${side}`), [...all, ["a/x", "a/y"], ["plain"]], side);
      }
      // Where the file system refuses the link (here: across file systems, EXDEV; FAT and
      // Windows shares refuse all), the binary's linkFile makes a copy with the entry's attributes.
      const e = { type: "f" as const, path: "copy", mode: 0o640, uid: null, gid: null, size: 10 };
      const entry = { ...e, mtimeMs: 1_700_000_000_000, md5: "x", linkTo: "a/x" };
      const opts = {
        attrs: new Attributes(false),
        existing: null,
        onRemoved: () => {},
        warn: (m: string) => assert.fail(m),
      };
      assert.equal(linkFile(`${dir}/src/a/x`, `${mnt}/copy`, entry, opts), "copied");
      const st = Deno.statSync(`${mnt}/copy`);
      assert.equal(Deno.readTextFileSync(`${mnt}/copy`), "two names\n");
      assert.equal(st.mode! & 0o7777, 0o640);
      assert.equal(st.mtime!.getTime(), 1_700_000_000_000);
      // A first path swapped for a symlink (to a file the restore never wrote) is not copied.
      Deno.symlinkSync(`${dir}/src/a/x`, `${dir}/swapped`);
      assert.throws(() => linkFile(`${dir}/swapped`, `${mnt}/copy2`, entry, opts), /cannot copy/);
      assert.deepEqual([...Deno.readDirSync(mnt)].map((x) => x.name).sort(), [
        "copy",
        "t-bin",
        "t-kit",
      ]);
    } finally {
      if (mounted) new Deno.Command("umount", { args: [mnt] }).outputSync();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
