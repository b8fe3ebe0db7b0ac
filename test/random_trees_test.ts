/**
 * Seeded random trees, restored by both readers exactly. Names of any character but `/` and NUL
 * (control characters, backslashes, newlines, non-ASCII, names that differ only in case), empty,
 * small, large and sparse files, hard links, symlinks dangling and absolute, set-id and sticky
 * modes, owners (as root), mtimes before 1970 and after 2038. Each tree is backed up, changed,
 * backed up again with small packs, pruned to the last backup with every pack repacked, and
 * verified with --read-data; each backup is restored by the binary and by the kit (its fast lane
 * and its checked one) and must equal its source: content, type, mode, owner, mtime, link target
 * and hard-link groups.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { PASSWORD, s3backup, seeded } from "./faults/harness.ts";
import { runKit } from "./kit_runner.ts";
import { exists, unlock } from "./tree.ts";

const ROOT = Deno.uid() === 0;
const CHARS = [..."abcXYZab019 _-.~!#$%&()[]{};,'\"`=+", "\n", "\t", "\r", "\\", "é", "日", "🎉"]
  .concat(["\x01", "\x7f", "ß", "K"]);
/** Whole milliseconds; some before 1970, one with a fraction of a second there. */
const MTIMES = [
  1_600_000_000_123,
  1_700_000_000_999,
  946_684_800_000,
  2_200_000_000_500,
  -1_000_250,
];

/** Builds a random tree under `root` from `rand`; the files' paths, for links and changes. */
function makeTree(root: string, rand: () => number): string[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const files: string[] = [];
  const name = () => {
    for (;;) {
      const n = Array.from({ length: pick([1, 2, 5, 12, 40]) }, () => pick(CHARS)).join("");
      if (n !== "." && n !== "..") return n;
    }
  };
  const fill = (dir: string, depth: number) => {
    const count = depth === 0 ? 24 : Math.floor(rand() * (depth < 3 ? 9 : 4));
    for (let i = 0; i < count; i++) {
      const p = `${dir}/${name()}`;
      if (exists(p)) continue;
      const k = rand();
      if (k < 0.55) {
        Deno.writeFileSync(p, content(pick([0, 1, 100, 511, 512, 4096, 70_000, 3_000_000]), rand));
        Deno.chmodSync(p, pick([0o644, 0o600, 0o755, 0o444, ROOT ? 0o000 : 0o400, 0o4755, 0o1644]));
        files.push(p);
      } else if (k < 0.7 && depth < 4) {
        Deno.mkdirSync(p);
        fill(p, depth + 1);
        Deno.chmodSync(p, pick([0o755, 0o700, 0o555, 0o1777, 0o2755]));
      } else if (k < 0.82) {
        Deno.symlinkSync(pick([`../${name()}`, name(), "/etc/passwd", "/nonexistent/x", "."]), p);
      } else if (files.length > 0) {
        Deno.linkSync(pick(files), p);
      } else {
        Deno.mkdirSync(p);
      }
    }
  };
  fill(root, 0);
  for (const n of ["Case", "case"]) Deno.writeTextFileSync(`${root}/${n}`, `${n}\n`);
  const sparse = `${root}/sparse`;
  Deno.writeFileSync(sparse, new Uint8Array(0));
  Deno.truncateSync(sparse, 8_000_000);
  using f = Deno.openSync(sparse, { write: true });
  f.seekSync(4_000_000, Deno.SeekMode.Start);
  f.writeSync(new TextEncoder().encode("data in the middle of a hole"));
  files.push(sparse);
  setAttributes(root, rand);
  return files;
}

/** `n` bytes: random, text, or one byte repeated. */
function content(n: number, rand: () => number): Uint8Array {
  const k = rand();
  if (k < 0.3) return Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
  if (k < 0.6) {
    return new TextEncoder().encode(`line ${n} of text\n`.repeat(n / 16 + 1)).slice(0, n);
  }
  return new Uint8Array(n).fill(Math.floor(rand() * 4));
}

/** Owners (as root) and mtimes of everything below `dir`, deepest first. */
function setAttributes(dir: string, rand: () => number): void {
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) setAttributes(p, rand);
    const t = new Date(MTIMES[Math.floor(rand() * MTIMES.length)]!);
    if (e.isSymlink) {
      // (Deno has no lutime of its own; node's takes a time before 1970 for "now".)
      const args = ["-h", "-d", t.toISOString(), "--", p];
      assert.ok(new Deno.Command("touch", { args }).outputSync().success, `touch -h ${p}`);
      continue;
    }
    if (ROOT) Deno.chownSync(p, [0, 1000, 65534][Math.floor(rand() * 3)]!, 1000);
    Deno.utimeSync(p, t, t);
  }
}

/** Changes some files (appended, removed) and adds some; then new owners and mtimes. */
function change(root: string, files: string[], rand: () => number): void {
  for (const p of files) {
    const k = rand();
    try {
      if (k < 0.15) {
        Deno.chmodSync(p, 0o644);
        Deno.writeTextFileSync(p, "appended\n", { append: true });
      } else if (k < 0.25) Deno.removeSync(p);
      else if (k < 0.35) Deno.writeFileSync(`${p}.new`, content(5000, rand));
    } catch {
      // removed already (a link of it), or (not as root) in a read-only folder
    }
  }
  setAttributes(root, rand);
}

type Snap = Map<string, string>;

/** Every entry below `root` as one comparable line, and the hard-link groups. */
function snapshot(root: string): { entries: Snap; links: string[] } {
  const entries: Snap = new Map(), byInode = new Map<number, string[]>();
  const visit = (abs: string, rel: string) => {
    for (const e of Deno.readDirSync(abs)) {
      if (e.name.startsWith(".s3backup-")) continue;
      const a = `${abs}/${e.name}`, r = rel === "" ? e.name : `${rel}/${e.name}`;
      const st = Deno.lstatSync(a);
      const owner = ROOT ? ` ${st.uid}:${st.gid}` : "";
      if (st.isSymlink) {
        entries.set(r, `l ${st.mtime?.getTime()} -> ${Deno.readLinkSync(a)}${owner}`);
      } else {
        const head = `${(st.mode! & 0o7777).toString(8)}${owner} ${st.mtime?.getTime()}`;
        if (st.isDirectory) {
          entries.set(r, `d ${head}`);
          visit(a, r);
        } else {
          const md5 = createHash("md5").update(Deno.readFileSync(a)).digest("hex");
          entries.set(r, `f ${head} ${st.size} ${md5}`);
          byInode.set(st.ino!, [...byInode.get(st.ino!) ?? [], JSON.stringify(r)]);
        }
      }
    }
  };
  visit(root, "");
  const links = [...byInode.values()].filter((g) => g.length > 1).map((g) => g.sort().join(" "));
  return { entries, links: links.sort() };
}

/** Asserts that `got` holds what `want` holds, entry by entry (the first few differences). */
function assertSame(
  want: ReturnType<typeof snapshot>,
  got: ReturnType<typeof snapshot>,
  what: string,
) {
  const diffs: string[] = [];
  for (const k of new Set([...want.entries.keys(), ...got.entries.keys()])) {
    const a = want.entries.get(k), b = got.entries.get(k);
    if (a !== b) diffs.push(`${JSON.stringify(k)}: ${a} != ${b}`);
  }
  assert.deepEqual(diffs.slice(0, 5), [], `${what}: ${diffs.length} entries differ`);
  assert.deepEqual(got.links, want.links, `${what}: hard-link groups`);
}

/** Restores `meta` of `repo` by the binary and the kit's two lanes, each compared to `want`. */
async function restoreAll(
  repo: string,
  meta: string,
  out: string,
  want: ReturnType<typeof snapshot>,
) {
  const r = await s3backup(["restore", "-b", repo, "-m", meta, "-f", `${out}-bin`, "-c"]);
  assert.equal(r.code, 0, r.stderr);
  assertSame(want, snapshot(`${out}-bin`), `${meta}, the binary`);
  for (const fast of ["1", "0"]) {
    const env = { S3BACKUP_KIT_FAST: fast, TMPDIR: `${out}-tmp` };
    Deno.mkdirSync(env.TMPDIR, { recursive: true });
    const k = await runKit("restore.sh", [repo, meta, `${out}-kit${fast}`], PASSWORD, env);
    assert.equal(k.code, 0, k.stderr);
    assertSame(want, snapshot(`${out}-kit${fast}`), `${meta}, the kit (fast lane ${fast})`);
  }
}

for (const seed of [7, 18]) {
  Deno.test({
    name: `random tree ${seed}: backed up, changed, pruned and repacked; every restore exact`,
    ignore: Deno.build.os === "windows",
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "s3backup-random-" });
      const src = `${dir}/src`, repo = `${dir}/repo`;
      try {
        Deno.mkdirSync(src);
        Deno.mkdirSync(repo);
        const rand = seeded(seed);
        const files = makeTree(src, rand);
        const b1 = await s3backup(["backup", "-f", src, "-b", repo, "-n", "t", "-c"]);
        assert.equal(b1.code, 0, b1.stderr);
        await restoreAll(repo, "latest", `${dir}/one`, snapshot(src));

        change(src, files, rand);
        const again = ["backup", "-f", src, "-b", repo, "-n", "t", "--pack-size", "1M"];
        const b2 = await s3backup(again);
        assert.equal(b2.code, 0, b2.stderr);
        const after = snapshot(src);
        await restoreAll(repo, "latest", `${dir}/two`, after);

        const pruned = await s3backup(
          ["prune", "-b", repo, "--keep-last", "1", "--grace", "0", "--max-unused", "0"],
        );
        assert.equal(pruned.code, 0, pruned.stderr);
        assert.match(pruned.stdout, /removed 1;.*repacked [1-9]/);
        const verified = await s3backup(["verify", "-b", repo, "--read-data"]);
        assert.equal(verified.code, 0, verified.stdout + verified.stderr);
        await restoreAll(repo, "latest", `${dir}/three`, after);
      } finally {
        unlock(dir);
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
