/**
 * Restore with the s3backup program (run as `deno run src/main.ts`, the code the binary is
 * compiled from), end to end, against a local store and S3 over HTTP (moto, Ceph in CI):
 *
 * - a nasty tree backed up by the program is restored by the program and by the restore kit,
 *   and both are identical to the source: bytes, modes, mtimes (ms), link targets, entries;
 * - reruns, an interrupted restore, --only, -s, conflicts and --overwrite;
 * - wrong password (exit 4, target not even created), damaged objects (exit 3, named);
 * - a hand-crafted hostile meta writes nothing outside the target, by the program and the kit;
 * - a format 1 bucket (s3backup.py) built with the openssl CLI is listed and restored by the
 *   program and by restore-kit/restore-legacy.sh.
 */
import { RUN_FLAGS } from "../scripts/permissions.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { RecordedEntry as Entry } from "../src/format/meta.ts";
import { listRepository } from "../src/repo/listing.ts";
import {
  createRepository,
  encryptSmallObject,
  loadMeta,
  openRepository,
  saveMeta,
} from "../src/repo/repository.ts";
import { packMember, sealPack } from "../src/format/pack.ts";
import { LocalStore } from "../src/store/local_store.ts";
import {
  childEnv,
  makeBucket,
  removeBucket,
  type S3Target,
  s3Targets,
  targetStore,
} from "./s3_env.ts";
import { encryptLegacy } from "./legacy_bucket.ts";
import { exists, makeNastyTree, names, snapshot, unlock } from "./tree.ts";

const MAIN = new URL("../src/main.ts", import.meta.url).pathname;
const KIT = new URL("../restore-kit/", import.meta.url).pathname;
const PASSWORD = "restore ✓ password";
const te = new TextEncoder();
const md5 = (b: Uint8Array | string) => createHash("md5").update(b).digest("hex");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function exec(cmd: string, args: string[], env: Record<string, string>): Promise<Run> {
  const out = await new Deno.Command(cmd, {
    signal: AbortSignal.timeout(300_000), // a deadline: a hung child fails the test
    args,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const td = new TextDecoder();
  return { code: out.code, stdout: td.decode(out.stdout), stderr: td.decode(out.stderr) };
}

function s3backup(args: string[], env: Record<string, string>): Promise<Run> {
  return exec(Deno.execPath(), ["run", ...RUN_FLAGS, "--quiet", MAIN, ...args], env);
}

function kit(script: string, args: string[], env: Record<string, string>): Promise<Run> {
  return exec("bash", [`${KIT}/${script}`, ...args], env);
}

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
  return r;
}

interface Fx {
  dir: string;
  env: Record<string, string>;
  /** The repository as -b takes it. */
  repo: string;
  cleanup(): Promise<void>;
}

/** Where `name` is on PATH ("" when it is not). */
function which(name: string): string {
  return new TextDecoder().decode(
    new Deno.Command("bash", { args: ["-c", `command -v ${name}`], stdout: "piped" }).outputSync()
      .stdout,
  ).trim();
}

/** A scratch dir and a repository: a local directory, or a fresh bucket on an S3 target. */
async function fx(target?: S3Target): Promise<Fx> {
  const env = childEnv({ S3BACKUP_PASSWORD: PASSWORD });
  if (!target) {
    const dir = Deno.makeTempDirSync({ prefix: "s3backup-restore-e2e-" });
    Deno.mkdirSync(`${dir}/bucket`);
    return {
      dir,
      env,
      repo: `${dir}/bucket`,
      cleanup: () => {
        unlock(dir);
        Deno.removeSync(dir, { recursive: true });
        return Promise.resolve();
      },
    };
  }
  const { bucket, env: s3env } = await makeBucket(target);
  const dir = Deno.makeTempDirSync({ prefix: "s3backup-restore-e2e-" });
  return {
    dir,
    env: { ...env, ...s3env },
    repo: `s3://${bucket}/pre fix`.replace(" ", "-"),
    cleanup: async () => {
      unlock(dir);
      Deno.removeSync(dir, { recursive: true });
      await removeBucket(target, bucket);
    },
  };
}

const stores: { label: string; target?: S3Target }[] = [
  { label: "local" },
  ...s3Targets().map((t) => ({ label: t.label, target: t })),
];

// ---------------------------------------------------------------------------------------------
// The nasty tree: program and kit give the same result as the source
// ---------------------------------------------------------------------------------------------

for (const { label, target } of stores) {
  Deno.test(`restore (${label}): program and kit restore the nasty tree identically`, async () => {
    const f = await fx(target);
    try {
      const src = `${f.dir}/src`;
      Deno.mkdirSync(src);
      makeNastyTree(src, 20 * 1024 * 1024 + 5);
      const expected = snapshot(src);
      ok(await s3backup(["backup", "-f", src, "-b", f.repo, "-c", "-n", "nasty"], f.env), "backup");

      const out1 = `${f.dir}/by program`;
      const r1 = ok(
        await s3backup(["-a", "restore", "-b", f.repo, "-m", "latest", "-f", out1, "-c"], f.env),
        "restore -a",
      );
      assert.match(r1.stdout, /^restored meta_nasty_\S+ into .*: \d+ files, 4 dirs, 3 links/m);
      assert.equal(r1.stderr, "");
      assert.deepEqual(snapshot(out1), expected);

      const out2 = `${f.dir}/by kit`;
      ok(await kit("restore.sh", [f.repo, "latest", out2], f.env), "kit");
      assert.deepEqual(snapshot(out2), expected);
      // Its checked lane alone (what a target that is not empty gets) too.
      const out3 = `${f.dir}/by kit, checked lane`;
      ok(
        await kit("restore.sh", [f.repo, "latest", out3], { ...f.env, S3BACKUP_KIT_FAST: "0" }),
        "kit",
      );
      assert.deepEqual(snapshot(out3), expected);

      // A rerun downloads nothing: every file is there with the right content.
      const r2 = ok(
        await s3backup(["restore", "-b", f.repo, "-m", "nasty", "-f", out1, "-c"], f.env),
        "rerun",
      );
      assert.match(r2.stdout, / 0 objects downloaded \(0 B\)/);
      assert.deepEqual(snapshot(out1), expected);

      // The program resumes over the kit's result too, and fixes what differs.
      Deno.removeSync(`${out2}/big.bin`);
      Deno.chmodSync(`${out2}/private`, 0o666);
      const r3 = ok(
        await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", out2, "-c"], f.env),
        "resume over the kit",
      );
      assert.match(r3.stdout, / 1 object downloaded/);
      assert.deepEqual(snapshot(out2), expected);
    } finally {
      await f.cleanup();
    }
  });
}

/** `n` bytes of a log: lines that repeat in shape, with counters and ids that do not. */
function logText(n: number, seed: number): Uint8Array {
  const parts: string[] = [];
  let x = seed, len = 0;
  for (let i = 0; len < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const line = `2026-12-06T20:${String(i % 60).padStart(2, "0")}:00Z web${x % 4} GET /items/` +
      `${x % 100_000} 200 id=${x.toString(16)} ms=${(x >>> 8) % 2000}\n`;
    parts.push(line);
    len += line.length;
  }
  return te.encode(parts.join("")).subarray(0, n);
}

for (const { label, target } of stores) {
  Deno.test(`restore (${label}): large logs (gzip members deflated by Workers, or on the main thread) come back from the program and the kit`, async () => {
    // data/<md5>.gz: a 5 MiB log gzipped on the main thread, a 33 MiB one by the Workers
    // (packer.ts PARALLEL_GZIP), each as gzip members of 1 MiB (FORMAT.md 4.2).
    const f = await fx(target);
    try {
      const src = `${f.dir}/src`;
      Deno.mkdirSync(src);
      Deno.writeFileSync(`${src}/small.log`, logText(5 * 1024 * 1024 + 17, 1));
      Deno.writeFileSync(`${src}/big.log`, logText(33 * 1024 * 1024 + 5, 2));
      const expected = snapshot(src);
      ok(await s3backup(["backup", "-f", src, "-b", f.repo, "-n", "logs"], f.env), "backup");
      const store = target
        ? targetStore(target, f.repo.slice(5).split("/")[0]!, "pre-fix")
        : new LocalStore(f.repo);
      const repo = await openRepository(store, te.encode(PASSWORD));
      const meta = await loadMeta(repo, (await listRepository(store, "meta_")).metas[0]!.key);
      assert.deepEqual(meta.entries.filter((e) => e.type === "f").map((e) => e.where), [
        "data.gz",
        "data.gz",
      ]);
      const out1 = `${f.dir}/by program`;
      ok(await s3backup(["restore", "-b", f.repo, "-m", "logs", "-f", out1], f.env), "restore");
      assert.deepEqual(snapshot(out1), expected);
      const out2 = `${f.dir}/by kit`;
      ok(await kit("restore.sh", [f.repo, "logs", out2], f.env), "kit");
      assert.deepEqual(snapshot(out2), expected);
    } finally {
      await f.cleanup();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Local store: interrupted restore, options, errors
// ---------------------------------------------------------------------------------------------

/** A small tree and its backup in a local repository. */
async function smallBackup(f: Fx, name = "small"): Promise<{ src: string; files: string[] }> {
  const src = `${f.dir}/src`;
  Deno.mkdirSync(`${src}/dir/sub`, { recursive: true });
  const files = ["a.txt", "dir/b.txt", "dir/sub/c.txt", "dir/same.txt", "same.txt"];
  for (const p of files) {
    Deno.writeTextFileSync(`${src}/${p}`, p.includes("same") ? "same" : `content of ${p}`);
  }
  Deno.symlinkSync("a.txt", `${src}/link`);
  ok(await s3backup(["backup", "-f", src, "-b", f.repo, "-c", "-n", name], f.env), "backup");
  return { src, files };
}

Deno.test("restore: an interrupted restore (SIGINT) leaves no temp file; a rerun completes", async () => {
  const f = await fx();
  try {
    const src = `${f.dir}/src`;
    Deno.mkdirSync(src);
    for (let i = 0; i < 400; i++) Deno.writeTextFileSync(`${src}/f${i}`, `file ${i}`);
    Deno.writeFileSync(`${src}/big`, new Uint8Array(64 * 1024 * 1024).fill(7));
    ok(await s3backup(["backup", "-f", src, "-b", f.repo, "-c"], f.env), "backup");
    const expected = snapshot(src);
    const target = `${f.dir}/target`;
    const child = new Deno.Command(Deno.execPath(), {
      // The binary's permissions, as every run of the suite (not -A).
      args: [
        "run",
        ...RUN_FLAGS,
        "--quiet",
        MAIN,
        "restore",
        "-b",
        f.repo,
        "-m",
        "latest",
        "-f",
        target,
      ],
      env: f.env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    // Every wait has a deadline: a restore that never starts or never stops fails the test.
    const until = Date.now() + 60_000;
    while (!exists(target) || names(target).filter((n) => !n.startsWith(".")).length < 5) {
      if (Date.now() > until) {
        child.kill("SIGKILL");
        await output;
        throw new Error("the restore wrote nothing within 60 s");
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill("SIGINT");
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const o = await output;
    clearTimeout(killer);
    assert.notEqual(o.signal, "SIGKILL", "the restore did not stop within 30 s of SIGINT");
    assert.equal(o.code, 130, new TextDecoder().decode(o.stderr));
    const left = names(target);
    assert.ok(left.length < expected.length, "the restore was not interrupted");
    assert.ok(left.every((n) => !n.startsWith(".")), `temp files left: ${left.join(" ")}`);
    const r = ok(
      await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", target, "-c"], f.env),
      "rerun",
    );
    assert.match(r.stdout, /: 401 files/);
    assert.deepEqual(snapshot(target), expected);
  } finally {
    await f.cleanup();
  }
});

Deno.test("restore: --only, -s, conflicts and --overwrite, the source folder", async () => {
  const f = await fx();
  try {
    const { src } = await smallBackup(f);
    // -s: lists, writes nothing (not even the target).
    const t = `${f.dir}/target`;
    const s = ok(
      await s3backup(
        ["restore", "-b", f.repo, "-m", "latest", "-f", t, "-s", "--only", "dir"],
        f.env,
      ),
      "simulate",
    );
    assert.deepEqual(s.stdout.trim().split("\n").slice(0, -1), [
      "would create dir: dir",
      "would create dir: dir/sub",
      "would create file: dir/b.txt",
      "would create file: dir/same.txt",
      "would create file: dir/sub/c.txt",
    ]);
    assert.match(s.stdout, /simulated restore .* \(nothing written\)/);
    assert.ok(!exists(t));
    // --only: a folder's subtree and a file.
    ok(
      await s3backup(
        ["restore", "-b", f.repo, "-m", "latest", "-f", t, "--only", "dir/sub/", "--only", "link"],
        f.env,
      ),
      "--only",
    );
    assert.deepEqual(names(t), ["dir", "link"]);
    assert.deepEqual(names(`${t}/dir`), ["sub"]);
    // A changed file is a conflict: named, left alone, exit 3; --overwrite replaces it.
    Deno.writeTextFileSync(`${t}/dir/sub/c.txt`, "mine");
    const c = await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", t, "-c"], f.env);
    assert.equal(c.code, 3, c.stderr);
    assert.equal(
      c.stderr,
      "s3backup: warning: dir/sub/c.txt: exists with other content: not replaced (use --overwrite)\n",
    );
    assert.equal(Deno.readTextFileSync(`${t}/dir/sub/c.txt`), "mine");
    ok(
      await s3backup(
        ["restore", "-b", f.repo, "-m", "latest", "-f", t, "-c", "--overwrite"],
        f.env,
      ),
      "--overwrite",
    );
    assert.deepEqual(snapshot(t), snapshot(src));
    // The backed-up folder itself, on this host: refused without --overwrite.
    const own = await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", src], f.env);
    assert.equal(own.code, 2);
    assert.match(own.stderr, /is the folder this backup was taken from on this host/);
    const over = await s3backup(
      ["restore", "-b", f.repo, "-m", "latest", "-f", src, "--overwrite", "-c"],
      f.env,
    );
    assert.equal(over.code, 0, over.stderr);
    assert.match(over.stdout, /: 5 files, 2 dirs, 1 link, .* 5 unchanged, 0 objects downloaded/);
    // Without -m: the latest backup.
    const u = await s3backup(["restore", "-b", f.repo, "-f", `${t}-latest`, "-c"], f.env);
    assert.equal(u.code, 0, u.stderr);
    assert.match(u.stdout, /^restored meta_\S+ into /);
  } finally {
    await f.cleanup();
  }
});

Deno.test("restore: wrong password exits 4 before the target is created", async () => {
  const f = await fx();
  try {
    await smallBackup(f);
    const t = `${f.dir}/never`;
    const bad = { ...f.env, S3BACKUP_PASSWORD: "wrong" };
    const r = await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", t], bad);
    assert.equal(r.code, 4);
    assert.equal(
      r.stderr,
      "s3backup: Wrong password: it does not open this repository's key (s3backup.key)\n",
    );
    assert.ok(!exists(t));
    const none = await s3backup(["restore", "-b", f.repo, "-m", "nope", "-f", t], f.env);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /No backup named "nope"/);
    assert.ok(!exists(t));
  } finally {
    await f.cleanup();
  }
});

Deno.test("restore, format 2: a corrupt and a missing object are named, the rest restored, exit 3", async () => {
  const f = await fx();
  try {
    await createRepository(new LocalStore(f.repo), te.encode(PASSWORD), { format: 2 });
    await smallBackup(f);
    const flip = `${f.repo}/${md5("content of dir/b.txt")}`;
    const body = Deno.readFileSync(flip);
    body[body.length - 20] = body[body.length - 20]! ^ 0x40;
    Deno.writeFileSync(flip, body);
    Deno.removeSync(`${f.repo}/${md5("same")}`);
    const t = `${f.dir}/target`;
    const r = await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", t, "-c"], f.env);
    assert.equal(r.code, 3, r.stderr);
    const lines = r.stderr.trim().split("\n").sort();
    assert.deepEqual(lines, [
      `s3backup: warning: dir/b.txt: object ${
        md5("content of dir/b.txt")
      } does not decrypt (corrupt object)`,
      `s3backup: warning: dir/same.txt: missing object ${md5("same")}`,
      `s3backup: warning: same.txt: missing object ${md5("same")}`,
    ]);
    assert.equal(Deno.readTextFileSync(`${t}/a.txt`), "content of a.txt");
    assert.equal(Deno.readTextFileSync(`${t}/dir/sub/c.txt`), "content of dir/sub/c.txt");
    assert.ok(!exists(`${t}/dir/b.txt`) && !exists(`${t}/same.txt`));
    assert.equal(Deno.readLinkSync(`${t}/link`), "a.txt");
    assert.ok(names(`${t}/dir`).every((n) => !n.startsWith(".")));
  } finally {
    await f.cleanup();
  }
});

// ---------------------------------------------------------------------------------------------
// A hostile meta: nothing outside the target, by the program and by the kit
// ---------------------------------------------------------------------------------------------

Deno.test("restore: a hand-crafted hostile meta writes nothing outside the target (program and kit)", async () => {
  const f = await fx();
  try {
    await smallBackup(f);
    const outside = `${f.dir}/outside`;
    Deno.mkdirSync(outside);
    const abs = `${outside}/abs`;
    const repo = await openRepository(new LocalStore(f.repo), te.encode(PASSWORD));
    const m = md5("same");
    const good = (await listRepository(repo.store, "meta_")).metas[0]!;
    const where = (await loadMeta(repo, good.key)).entries.find((e) => e.md5 === m)!.where;
    const file = (path: string): Entry => ({
      type: "f",
      path,
      md5: m,
      where,
      mode: 0o644,
      uid: null,
      gid: null,
      size: 4,
      mtimeMs: 1_700_000_000_000,
    });
    const link = (path: string, target: string): Entry => ({
      type: "l",
      path,
      target,
      mode: 0o777,
      uid: null,
      gid: null,
      size: 0,
      mtimeMs: 1_700_000_000_000,
    });
    const dir = (path: string): Entry => ({
      type: "d",
      path,
      mode: 0o755,
      uid: null,
      gid: null,
      size: 0,
      mtimeMs: 1_700_000_000_000,
    });
    const entries: Entry[] = [
      file("../evil"),
      file(abs),
      file("a/../b"),
      dir("../evil-dir"),
      link("a", outside),
      file("a/evil"),
      link("b", outside),
      dir("b/sub"),
      file("b/sub/evil"),
      file("pre/evil"),
      file("ok.txt"),
    ];
    const key = "meta_evil_20300101T000000Z";
    const header = { version: 3 as const, time: new Date(), host: "x", source: "/x", name: "evil" };
    await saveMeta(repo, key, header, entries);

    for (const who of ["program", "kit"] as const) {
      for (const overwrite of [false, true]) {
        const t = `${f.dir}/t-${who}-${overwrite}`;
        Deno.mkdirSync(t);
        // A symlink already in the target, pointing out: never written through.
        Deno.symlinkSync(outside, `${t}/pre`);
        const args = who === "program"
          ? [
            "restore",
            "-b",
            f.repo,
            "-m",
            key,
            "-f",
            t,
            "-c",
            ...(overwrite ? ["--overwrite"] : []),
          ]
          : [f.repo, key, t];
        if (who === "kit" && overwrite) continue; // the kit always replaces
        const r = who === "program"
          ? await s3backup(args, f.env)
          : await kit("restore.sh", args, f.env);
        assert.equal(r.code, 3, `${who}: ${r.stderr}`);
        assert.deepEqual(names(outside), [], `${who} wrote outside the target`);
        assert.ok(
          !exists(`${f.dir}/evil`) && !exists(`${f.dir}/evil-dir`) && !exists(`${f.dir}/b`),
        );
        assert.equal(Deno.readTextFileSync(`${t}/ok.txt`), "same");
        for (const p of ["../evil", abs, "a/../b", "../evil-dir", "pre/evil"]) {
          assert.ok(r.stderr.includes(`${p}: `), `${who}: ${p} not reported:\n${r.stderr}`);
        }
      }
    }
  } finally {
    await f.cleanup();
  }
});

Deno.test("restore: the kit's fast lane (an empty target) hands every line it does not take to its checked lane", async () => {
  // In an empty target the kit builds the tree in its work folder, places a pack's files there
  // by one tar a chunk without looking, and renames the tree's top entries into the target
  // (restore.sh, "The fast lane"); a line out of its shape goes to the checked lane, and so does
  // each line of a chunk whose tar failed. Both lanes must end where the checked lane alone ends
  // (S3BACKUP_KIT_FAST=0).
  const f = await fx();
  try {
    await smallBackup(f);
    const outside = `${f.dir}/outside`;
    Deno.mkdirSync(outside);
    const repo = await openRepository(new LocalStore(f.repo), te.encode(PASSWORD));
    const m = md5("same");
    const good = (await listRepository(repo.store, "meta_")).metas[0]!;
    const where = (await loadMeta(repo, good.key)).entries.find((e) => e.md5 === m)!.where;
    assert.match(where ?? "", /^[0-9a-f]{32}(\.gz)?$/, "the content is a pack member");
    const file = (path: string, mode = 0o644, mtimeMs = 1_700_000_000_250): Entry => ({
      type: "f",
      path,
      md5: m,
      where,
      mode,
      uid: null,
      gid: null,
      size: 4,
      mtimeMs,
    });
    const dir = (path: string, mode = 0o755, mtimeMs = 1_700_000_000_000): Entry => ({
      type: "d",
      path,
      mode,
      uid: null,
      gid: null,
      size: 0,
      mtimeMs,
    });
    const entries: Entry[] = [
      // Folders: their mtimes set by one tar (format 3), a mode that shuts writes out set last,
      // a mtime before 1970 by touch, a name that needs an escape.
      dir("ro", 0o500, 1_600_000_000_125),
      file("ro/inside"),
      dir("ro/sub", 0o700, 1_500_000_000_000),
      dir("old", 0o750, -86_400_000),
      dir("nl\ndir"),
      file("nl\ndir/f"),
      file("../evil"),
      file(`${outside}/abs`),
      file("a/../b"),
      dir("d"),
      file("d/x"),
      file("neg", 0o600, -86_400_500), // before 1970: the checked lane sets it
      file("new\nline\\back"),
      file(" lead space", 0o640),
      file("ok.txt", 0o4755),
      file("z/deep/in/folders.txt"), // folders the meta does not name: made by tar, or the lane
    ];
    const key = "meta_lanes_20300101T000000Z";
    const header = {
      version: 3 as const,
      time: new Date(),
      host: "x",
      source: "/x",
      name: "lanes",
    };
    await saveMeta(repo, key, header, entries);
    const results: string[] = [];
    const lanes: Record<string, string>[] = [
      { S3BACKUP_KIT_FAST: "0" },
      {},
      { S3BACKUP_KIT_CHUNK_FAST: "2" },
    ];
    for (const env of lanes) {
      const t = `${f.dir}/t-${results.length}`;
      const r = await kit("restore.sh", [f.repo, key, t], { ...f.env, ...env });
      assert.equal(r.code, 3, `${JSON.stringify(env)}: ${r.stderr}`);
      assert.deepEqual(names(outside), [], "written outside the target");
      assert.ok(!exists(`${f.dir}/evil`) && !exists(`${f.dir}/b`));
      for (
        const want of [
          "../evil: path with an empty",
          "/abs: absolute path: refused",
          "a/../b: path with an empty",
          "restored 8 files, 5 dirs, 0 links, 3 failed",
        ]
      ) {
        assert.ok(r.stderr.includes(want), `${JSON.stringify(env)}: ${want}:\n${r.stderr}`);
      }
      assert.equal(Deno.statSync(`${t}/neg`).mtime!.getTime(), -86_400_500);
      assert.equal(Deno.statSync(`${t}/ok.txt`).mode! & 0o7777, 0o4755);
      assert.equal(Deno.statSync(`${t}/ok.txt`).mtime!.getTime(), 1_700_000_000_250);
      assert.equal(Deno.readTextFileSync(`${t}/new\nline\\back`), "same");
      assert.ok(Deno.statSync(`${t}/d`).isDirectory);
      for (
        const [path, mode, mtime] of [
          ["ro", 0o500, 1_600_000_000_125],
          ["ro/sub", 0o700, 1_500_000_000_000],
          ["old", 0o750, -86_400_000],
          ["nl\ndir", 0o755, 1_700_000_000_000],
        ] as const
      ) {
        const st = Deno.lstatSync(`${t}/${path}`);
        assert.equal(st.mode! & 0o7777, mode, `${path}: mode`);
        assert.equal(st.mtime!.getTime(), mtime, `${path}: mtime`);
      }
      assert.equal(names(t).filter((n) => n.startsWith(".s3backup")).length, 0, "work left");
      // (The folders the meta does not name are made when the restore runs: their mtime is then.)
      const made = (e: { path: string; type: string }) => e.type === "d" && e.path.startsWith("z");
      results.push(JSON.stringify(snapshot(t).map((e) => made(e) ? { ...e, mtimeMs: 0 } : e)));
    }
    assert.equal(results[1], results[0], "fast lane and checked lane differ");
    assert.equal(results[2], results[0], "fast lane with chunks of 2 and checked lane differ");

    // A tar that stops halfway through its stream (a full disk, a kill): what the fast lane's tar
    // wrote is removed before its lines go to the checked lane, whose tar fails too; no file is
    // left with other bytes (the tree is renamed into the target whole), each is named failed.
    const shim = `${f.dir}/shim`;
    Deno.mkdirSync(shim);
    const tar = which("tar"), mv = which("mv"), mkdir = which("mkdir");
    /** The kit restoring into `target` with `tool` replaced by `script` (in front of PATH). */
    const shimmed = async (tool: string, script: string, target: string) => {
      Deno.writeTextFileSync(`${shim}/${tool}`, `#!/bin/bash\n${script}`, { mode: 0o755 });
      try {
        return await kit("restore.sh", [f.repo, key, target], {
          ...f.env,
          PATH: `${shim}:${f.env.PATH}`,
        });
      } finally {
        Deno.removeSync(`${shim}/${tool}`);
      }
    };
    const cut = `${f.dir}/t-cut`;
    const rc = await shimmed(
      "tar",
      `s=${shim}/stream.$$ && cat >"$s" || exit 1
if grep -q 'path=./' "$s"; then head -c "$(($(wc -c <"$s") / 2))" "$s" | ${tar} "$@"; exit 2; fi
${tar} "$@" <"$s"
`,
      cut,
    );
    assert.equal(rc.code, 3, rc.stderr);
    const files = snapshot(cut).filter((e) => e.type === "f");
    for (const e of files) assert.equal(Deno.readTextFileSync(`${cut}/${e.path}`), "same", e.path);
    assert.ok(rc.stderr.includes("cannot unpack into place"), rc.stderr);
    const failed = Number(/(\d+) failed$/m.exec(rc.stderr)?.[1]);
    assert.equal(files.length + failed, 11, rc.stderr);
    assert.equal(names(cut).filter((n) => n.startsWith(".s3backup")).length, 0, "work left");

    // The tree cannot be renamed into the target (a name taken meanwhile): the restore stops in
    // one line, and leaves nothing of the tree, half in place or in a work folder.
    const taken = `${f.dir}/t-taken`;
    const rt = await shimmed(
      "mv",
      `case "$PWD" in */.s3backup-work.*/m) echo "mv: cannot move $3: Directory not empty" >&2; exit 1 ;; esac
exec ${mv} "$@"
`,
      taken,
    );
    assert.equal(rt.code, 1, rt.stderr);
    assert.match(rt.stderr, /cannot move what was restored from .*\/m into /, rt.stderr);
    assert.deepEqual(names(taken), [], "left in the target");

    // The tree's folder in the work folder cannot be made: one line, exit 1, nothing left.
    const nodir = `${f.dir}/t-nodir`;
    const rd = await shimmed(
      "mkdir",
      `case "\${@: -1}" in */.s3backup-work.*/m) echo "mkdir: no" >&2; exit 1 ;; esac
exec ${mkdir} "$@"
`,
      nodir,
    );
    assert.equal(rd.code, 1, rd.stderr);
    assert.match(rd.stderr, /cannot create .*\.s3backup-work\.[^/]*\/m$/m, rd.stderr);
    assert.deepEqual(names(nodir), [], "left in the target");
  } finally {
    await f.cleanup();
  }
});

/**
 * A `tar` in `dir` that runs `tar` and logs each stream it reads into `log`: "bulk" (the fast
 * lane's bulk headers: a path behind slashes) or "line", and its exit code; with CUT_BULK set,
 * each bulk stream is cut halfway.
 */
function tarShim(dir: string, tar: string, log: string): void {
  Deno.writeTextFileSync(
    `${dir}/tar`,
    `#!/bin/bash
s=$(mktemp) && cat >"$s" || exit 1
b=line; if grep -aq 'path=\.//' "$s"; then b=bulk; fi
if [ "$b" = bulk ] && [ -n "\${CUT_BULK:-}" ]; then
  head -c "$(($(wc -c <"$s") / 2))" "$s" | ${tar} "$@"; rc=2
else ${tar} "$@" <"$s"; rc=$?; fi
rm -f "$s"; echo "$b $rc" >>${log}; exit $rc
`,
    { mode: 0o755 },
  );
}

Deno.test("restore: the kit's fast lane makes a batch's records in bulk, as line by line, with GNU tar and bsdtar", async () => {
  // Lines of the common shape: the fast lane makes their pax records by one printf a chunk
  // (restore.sh, fast_bulk): fixed widths, each path behind slashes, the pad before the next
  // header. Each tar run is logged: the bulk streams (a path behind slashes) must all unpack,
  // not fall back to the checked lane, and every lane must give the source back.
  const f = await fx();
  try {
    const src = `${f.dir}/src`;
    const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));
    const deep = `${"a folder/".repeat(20)}deep`; // a path of ~200 bytes
    Deno.mkdirSync(`${src}/${deep}`, { recursive: true });
    Deno.mkdirSync(`${src}/café ✓`);
    const files: [string, Uint8Array, number, number][] = [
      ["empty", new Uint8Array(0), 0o644, 1_700_000_000_000],
      ["one byte", rnd(1), 0o600, 1_700_000_000_001],
      [" lead space", rnd(511), 0o640, 1_650_000_000_500],
      ["block", rnd(512), 0o755, 1_600_000_000_000],
      ["block and one", rnd(513), 0o444, 1_500_000_000_123],
      ["café ✓/naïve ✓.txt", rnd(1024), 0o644, 1_400_000_000_999],
      ["café ✓/setuid", rnd(4097), 0o4755, 1_300_000_000_010],
      [`${deep}/in the deep end.bin`, rnd(3000), 0o644, 631_152_000_000], // 1990
      ["same-a", te.encode("same bytes\n"), 0o644, 1_700_000_001_000],
      ["same-b", te.encode("same bytes\n"), 0o600, 1_700_000_002_500],
    ];
    for (let i = 0; i < 30; i++) {
      files.push([`many/f ${i}`, rnd(i * 97), 0o644, 1_700_000_000_000 + i]);
    }
    Deno.mkdirSync(`${src}/many`);
    for (const [p, data, mode, mtime] of files) {
      Deno.writeFileSync(`${src}/${p}`, data);
      Deno.chmodSync(`${src}/${p}`, mode);
      Deno.utimeSync(`${src}/${p}`, mtime / 1000, mtime / 1000);
    }
    ok(await s3backup(["backup", "-f", src, "-b", f.repo, "-c"], f.env), "backup");
    const want = snapshot(src).filter((e) => e.type === "f");
    const shim = `${f.dir}/shim`, log = `${f.dir}/tar.log`;
    Deno.mkdirSync(shim);
    const tars = [which("tar"), which("bsdtar")].filter((t) => t !== "");
    assert.ok(
      tars.length === 2 || !Deno.env.get("CI"),
      "bsdtar missing (scripts/test.sh installs it)",
    );
    for (const tar of tars) {
      tarShim(shim, tar, log);
      const lanes: Record<string, string>[] = [
        {},
        { S3BACKUP_KIT_CHUNK_FAST: "3" },
        { S3BACKUP_KIT_BULK: "0" },
        // Each bulk stream cut halfway (a full disk, a kill): the files its tar wrote are
        // removed and its lines placed again by the checked lane.
        { S3BACKUP_KIT_CHUNK_FAST: "7", CUT_BULK: "1" },
      ];
      for (const env of lanes) {
        const what = `${tar} ${JSON.stringify(env)}`;
        const t = `${f.dir}/t-${crypto.randomUUID()}`;
        Deno.writeTextFileSync(log, "");
        const r = await kit("restore.sh", [f.repo, "latest", t], {
          ...f.env,
          ...env,
          PATH: `${shim}:${f.env.PATH}`,
        });
        assert.equal(r.code, 0, `${what}: ${r.stderr}`);
        assert.deepEqual(snapshot(t).filter((e) => e.type === "f"), want, what);
        const runs = Deno.readTextFileSync(log).trim().split("\n");
        const bulk = runs.filter((l) => l.startsWith("bulk"));
        const failed = runs.filter((l) => !l.endsWith(" 0"));
        assert.deepEqual(failed, env.CUT_BULK ? bulk : [], `${what}: ${runs.join(", ")}`);
        const chunk = Number(env.S3BACKUP_KIT_CHUNK_FAST ?? 512);
        const chunks = env.S3BACKUP_KIT_BULK ? 0 : Math.ceil(files.length / chunk);
        assert.equal(bulk.length, chunks, `${what}: ${runs.join(", ")}`);
      }
    }
  } finally {
    await f.cleanup();
  }
});

/**
 * `openssl enc ARGS` of `input` with the password in `env` (FORMAT.md §5: a meta's container;
 * §3.2: the key's), `iter` iterations.
 */
async function openssl(
  args: string[],
  input: Uint8Array,
  env: Record<string, string>,
  iter = 600_000,
): Promise<Uint8Array> {
  const p = new Deno.Command("openssl", {
    args: ["enc", ...args, "-aes-256-cbc", "-pbkdf2", "-iter", String(iter), "-md", "sha256"]
      .concat(["-pass", "env:S3BACKUP_PASSWORD"]),
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  // (Read while it is written: a meta larger than the pipes would otherwise stall both.)
  const [out] = await Promise.all([p.output(), w.write(input).then(() => w.close())]);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return out.stdout;
}

Deno.test("restore: the kit's fast lane leaves a batch whose fields its widths do not hold to the line-by-line lane", async () => {
  // FORMAT.md §5 lets a meta hold what the binary never writes: a fraction of more than 9
  // digits, a leading zero, an owner '-' (a Windows writer's). fast_bulk writes numbers at fixed
  // widths (and printf would read a leading zero as octal): such a batch must go line by line,
  // with the same result.
  const f = await fx();
  try {
    const src = `${f.dir}/src`;
    Deno.mkdirSync(src);
    for (let i = 0; i < 5; i++) {
      Deno.writeFileSync(`${src}/f${i}`, crypto.getRandomValues(new Uint8Array(100 * i + 1)));
      Deno.utimeSync(`${src}/f${i}`, 1_700_000_000 + i, 1_700_000_000 + i);
    }
    ok(await s3backup(["backup", "-f", src, "-n", "odd", "-b", f.repo, "-c"], f.env), "backup");
    const good = [...Deno.readDirSync(f.repo)].find((e) => e.name.startsWith("meta_odd_"))!.name;
    const plain = new TextDecoder().decode(
      await openssl(["-d"], Deno.readFileSync(`${f.repo}/${good}`), f.env),
    );
    /** The meta with f1's fields i (0-based) changed as `edit` says. */
    const odd = async (n: number, edit: Record<number, string>) => {
      const lines = plain.split("\n").map((l) => {
        if (!l.endsWith(" f1")) return l;
        const w = l.split(" ");
        for (const [i, v] of Object.entries(edit)) w[Number(i)] = v;
        return w.join(" ");
      });
      assert.notEqual(lines.join("\n"), plain, "f1's line");
      const name = `meta_odd_2030010${n}T000000Z`;
      const enc = await openssl(["-e"], new TextEncoder().encode(lines.join("\n")), f.env);
      Deno.writeFileSync(`${f.repo}/${name}`, enc);
      return name;
    };
    const cases: [string, string, number][] = [
      [good, "bulk", 1_700_000_001_000],
      [await odd(1, { 6: "1700000001.1234567891" }), "line", 1_700_000_001_123],
      [await odd(2, { 6: "01700000001.5" }), "line", 1_700_000_001_500],
    ];
    // (An owner '-' keeps the bulk lane unless the kit runs as root, which writes owners.)
    if (Deno.uid() === 0) cases.push([await odd(3, { 3: "-", 4: "-" }), "line", 1_700_000_001_000]);
    const shim = `${f.dir}/shim`, log = `${f.dir}/tar.log`;
    Deno.mkdirSync(shim);
    tarShim(shim, which("tar"), log);
    const want = snapshot(src, { mtimes: false });
    for (const [meta, lane, mtime] of cases) {
      const t = `${f.dir}/t-${meta}`;
      Deno.writeTextFileSync(log, "");
      const r = await kit("restore.sh", [f.repo, meta, t], {
        ...f.env,
        PATH: `${shim}:${f.env.PATH}`,
      });
      assert.equal(r.code, 0, `${meta}: ${r.stderr}`);
      assert.deepEqual(snapshot(t, { mtimes: false }), want, meta);
      assert.equal(Deno.statSync(`${t}/f1`).mtime?.getTime(), mtime, meta);
      const runs = Deno.readTextFileSync(log).trim().split("\n");
      // (The folders' attributes go by tar streams of their own, line by line.)
      const said = `${meta}: ${runs.join(", ")}`;
      assert.ok(runs.every((l) => l.endsWith(" 0")), said);
      assert.equal(runs.includes("bulk 0"), lane === "bulk", said);
    }
  } finally {
    await f.cleanup();
  }
});

Deno.test("restore: a pack member whose bytes are not its name's is refused by both lanes of the kit, and by the binary", async () => {
  // The kit checks a pack's members by one md5sum and compares the sums with the names in bulk
  // (restore.sh, ready_members); a member that does not match must fail its file, by name.
  const f = await fx();
  try {
    await smallBackup(f);
    const repo = await openRepository(new LocalStore(f.repo), te.encode(PASSWORD));
    const good = te.encode("good bytes\n"), same = te.encode("same");
    const sealed = await encryptSmallObject(
      repo,
      sealPack([packMember(md5(good), good), packMember(md5(same), te.encode("evil"))]),
    );
    const pack = md5(sealed);
    await repo.store.save(`packs/${pack}`, sealed);
    const file = (path: string, content: Uint8Array, size: number): Entry => ({
      type: "f",
      path,
      md5: md5(content),
      where: pack,
      mode: 0o644,
      uid: null,
      gid: null,
      size,
      mtimeMs: 1_700_000_000_000,
    });
    const key = "meta_members_20300101T000000Z";
    await saveMeta(repo, key, {
      version: 3,
      time: new Date(),
      host: "x",
      source: "/x",
      name: "members",
    }, [file("good.txt", good, good.length), file("bad.txt", same, 4)]);
    const lanes: Record<string, string>[] = [{}, { S3BACKUP_KIT_FAST: "0" }];
    for (const env of lanes) {
      const t = `${f.dir}/t-${Object.keys(env).length}`;
      const r = await kit("restore.sh", [f.repo, key, t], { ...f.env, ...env });
      assert.equal(r.code, 3, `${JSON.stringify(env)}: ${r.stderr}`);
      assert.match(r.stderr, /bad\.txt: MD5 mismatch for member/, r.stderr);
      assert.deepEqual(names(t), ["good.txt"], JSON.stringify(env));
      assert.equal(Deno.readTextFileSync(`${t}/good.txt`), "good bytes\n");
    }
    const b = await s3backup(
      ["restore", "-b", f.repo, "-m", key, "-f", `${f.dir}/t-bin`, "-c"],
      f.env,
    );
    assert.equal(b.code, 3, b.stderr);
    assert.deepEqual(names(`${f.dir}/t-bin`), ["good.txt"]);
  } finally {
    await f.cleanup();
  }
});

// ---------------------------------------------------------------------------------------------
// Format 1 (s3backup.py) buckets, built with the openssl CLI
// ---------------------------------------------------------------------------------------------

const LEGACY_PW = "old pässword";

/** A format 1 object: `openssl enc -aes-256-cbc -md md5` (what s3backup.py wrote). */
const opensslLegacy = (data: Uint8Array) => encryptLegacy(data, LEGACY_PW);

const LEGACY_FILES: [string, string][] = [
  ["notes.txt", "my notes\n"],
  ["photos/2016/beach.jpg", "JPEG beach"],
  ["photos/2016/copy of beach.jpg", "JPEG beach"],
  ["photos/with space /odd\tname %s", "odd"],
  ["photos/new\nline", "newline in the name"],
  ["-dash", "dash"],
];

for (const { label, target } of stores) {
  Deno.test(`legacy (${label}): an s3backup.py bucket is listed and restored by the program and restore-legacy.sh`, async () => {
    const f = await fx(target);
    try {
      const objects = new Map<string, Uint8Array>();
      let meta = "";
      for (const [path, content] of LEGACY_FILES) {
        const m = md5(content);
        objects.set(m, await opensslLegacy(te.encode(content)));
        meta += `${m} ${path}\n`;
      }
      // An older backup without a name, with the absolute paths of the first version.
      let oldMeta = "";
      for (const [path, content] of LEGACY_FILES.slice(0, 2)) {
        oldMeta += `${md5(content)} /home/ann/${path}\n`;
      }
      objects.set("meta_2016-05-01_1462060800000", await opensslLegacy(te.encode(oldMeta)));
      objects.set("meta_photos_2016-06-01_1464739200000", await opensslLegacy(te.encode(meta)));
      if (target) {
        const store = targetStore(target, f.repo.slice(5).split("/")[0]!, "pre-fix");
        for (const [k, v] of objects) await store.save(k, v);
      } else {
        for (const [k, v] of objects) Deno.writeFileSync(`${f.repo}/${k}`, v);
      }
      const env = { ...f.env, S3BACKUP_PASSWORD: LEGACY_PW };

      const l = ok(await s3backup(["list", "-b", f.repo], env), "list");
      const rows = l.stdout.trim().split("\n").map((r) => r.split("\t"));
      assert.deepEqual(rows.map((r) => [r[0], r[1], r[5]]), [
        ["meta_2016-05-01_1462060800000", "", "2"],
        ["meta_photos_2016-06-01_1464739200000", "photos", "6"],
      ]);

      const t1 = `${f.dir}/program`;
      const r1 = ok(
        await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", t1, "-c"], env),
        "restore",
      );
      assert.match(r1.stdout, /: 6 files, 3 dirs, 0 links.*5 objects downloaded/);
      for (const [path, content] of LEGACY_FILES) {
        assert.equal(Deno.readTextFileSync(`${t1}/${path}`), content);
      }
      const t2 = `${f.dir}/kit`;
      ok(await kit("restore-legacy.sh", [f.repo, "photos", t2], env), "restore-legacy.sh");
      assert.deepEqual(snapshot(t2, { mtimes: false }), snapshot(t1, { mtimes: false }));
      assert.equal((Deno.statSync(`${t1}/notes.txt`).mode ?? 0) & 0o777, 0o644);
      assert.equal((Deno.statSync(`${t1}/photos/2016`).mode ?? 0) & 0o777, 0o755);

      // The old one: absolute paths land under the target (as tar does), with a notice.
      const t3 = `${f.dir}/old-program`;
      const r3 = ok(
        await s3backup(
          ["restore", "-b", f.repo, "-m", "meta_2016-05-01_1462060800000", "-f", t3, "-c"],
          env,
        ),
        "restore old",
      );
      assert.match(r3.stderr, /2 paths were absolute/);
      assert.equal(Deno.readTextFileSync(`${t3}/home/ann/notes.txt`), "my notes\n");
      const t4 = `${f.dir}/old-kit`;
      const r4 = ok(
        await kit("restore-legacy.sh", [f.repo, "meta_2016-05-01_1462060800000", t4], env),
        "kit old",
      );
      assert.match(r4.stderr, /absolute/);
      assert.deepEqual(snapshot(t4, { mtimes: false }), snapshot(t3, { mtimes: false }));

      // A backup into a format 1 bucket is refused before anything is written.
      const b = await s3backup(["backup", "-f", t1, "-b", f.repo, "-c"], env);
      assert.equal(b.code, 2, b.stderr);
      assert.match(b.stderr, /original s3backup\.py \(format 1\): back up to a new bucket/);
      const after = ok(await s3backup(["list", "-b", f.repo], env), "list after");
      assert.equal(after.stdout, l.stdout);

      // Wrong password: exit 4, nothing created, for both.
      const bad = { ...env, S3BACKUP_PASSWORD: "wrong" };
      const w1 = await s3backup(
        ["restore", "-b", f.repo, "-m", "latest", "-f", `${f.dir}/w1`],
        bad,
      );
      assert.equal(w1.code, 4, w1.stderr);
      const w2 = await kit("restore-legacy.sh", [f.repo, "latest", `${f.dir}/w2`], bad);
      assert.equal(w2.code, 4, w2.stderr);
      assert.ok(!exists(`${f.dir}/w1`) && !exists(`${f.dir}/w2`));

      // A rerun of the kit keeps everything; a changed file is a conflict, then --overwrite.
      Deno.writeTextFileSync(`${t2}/notes.txt`, "changed");
      const k2 = await kit("restore-legacy.sh", [f.repo, "latest", t2], env);
      assert.equal(k2.code, 3, k2.stderr);
      assert.match(k2.stderr, /notes\.txt: exists with other content/);
      ok(await kit("restore-legacy.sh", ["--overwrite", f.repo, "latest", t2], env), "overwrite");
      assert.deepEqual(snapshot(t2, { mtimes: false }), snapshot(t1, { mtimes: false }));
    } finally {
      await f.cleanup();
    }
  });
}

Deno.test("restore, format 3: a damaged pack loses the files of its damaged gzip member (the kit: from there on), a missing data/ object its file; both readers", async () => {
  const f = await fx();
  try {
    const src = `${f.dir}/src`;
    Deno.mkdirSync(src);
    // 100 files of 3 KiB in the tar: a pack of 5 gzip members (FORMAT.md §4.1).
    for (let i = 0; i < 100; i++) Deno.writeTextFileSync(`${src}/f${i}`, `file ${i} `.repeat(300));
    Deno.writeFileSync(`${src}/big`, new Uint8Array(5 * 1024 * 1024).fill(3));
    ok(await s3backup(["backup", "-f", src, "-b", f.repo, "-c"], f.env), "backup");
    const pack = `${f.repo}/packs/${[...Deno.readDirSync(`${f.repo}/packs`)][0]!.name}`;
    const body = Deno.readFileSync(pack);
    body[Math.floor(body.length / 2)]! ^= 0x40;
    Deno.writeFileSync(pack, body);
    Deno.removeSync(`${f.repo}/data`, { recursive: true });
    for (const who of ["program", "kit"] as const) {
      const t = `${f.dir}/t-${who}`;
      const r = who === "program"
        ? await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", t, "-c"], f.env)
        : await kit("restore.sh", [f.repo, "latest", t], f.env);
      assert.equal(r.code, 3, `${who}: ${r.stderr}`);
      assert.match(r.stderr, /big: missing object data\/[0-9a-f]{32}/, who);
      const lost = snapshot(src).filter((e) => e.type === "f" && !exists(`${t}/${e.path}`))
        .filter((e) => e.path !== "big").length;
      // The program resumes at the next gzip member; the kit's gzip -dc stops at the damage.
      const most = who === "program" ? 25 : 80;
      assert.ok(lost >= 1 && lost <= most, `${who}: ${lost} files lost`);
      for (const e of snapshot(t).filter((e) => e.type === "f")) {
        assert.equal(
          md5(Deno.readTextFileSync(`${t}/${e.path}`)),
          md5(Deno.readTextFileSync(`${src}/${e.path}`)),
          `${who}: ${e.path} restored with other bytes`,
        );
      }
    }
  } finally {
    await f.cleanup();
  }
});

for (const target of s3Targets()) {
  Deno.test(`restore, format 3 (${target.label}): the kit opens the key during the second call and the target before the meta; a meta that does not open leaves no target; another key-iter is derived again`, async () => {
    // From S3 the kit's first call fetches s3backup.key; its key derivation (the format's
    // key-iter, 600,000) runs while the second call fetches the descriptor, the meta and a
    // small store's packs; then the target is opened and the packs unpacked while the meta's key
    // is derived (restore.sh early_target). A meta that then does not open must leave the target
    // as it was; a descriptor with another key-iter must have the key derived again.
    const f = await fx(target);
    try {
      const { src } = await smallBackup(f);
      const expected = snapshot(src);
      const t = `${f.dir}/t`;
      ok(await kit("restore.sh", [f.repo, "latest", t], f.env), "kit restore");
      assert.deepEqual(snapshot(t), expected);
      const store = targetStore(
        target,
        f.repo.split("/")[2]!,
        f.repo.split("/").slice(3).join("/"),
      );
      try {
        const load = async (name: string) =>
          new Uint8Array(await new Response(await store.load(name)).arrayBuffer());
        const meta = (await listRepository(store, "meta_")).metas[0]!.key;
        const body = await load(meta);
        // The meta is decrypted as soon as it is there at its listed size, while the call still
        // fetches the packs (restore.sh meta_ahead). An aws CLI that wrote a download in place
        // would show a meta of that size with other bytes first: here one byte flipped, which
        // still decrypts (CBC: the block after it has that byte flipped, its own block is noise),
        // to other entries. That plaintext is not the meta's: the meta is decrypted again.
        const inPlace = `${f.dir}/in-place`;
        Deno.mkdirSync(inPlace);
        const plain = new TextDecoder("latin1").decode(await openssl(["-d"], body, f.env));
        const decoy = body.slice(); // (byte k of the ciphertext flips byte k of the plaintext)
        decoy[plain.indexOf("\nentries\n") + 40]! ^= 0x40; // (the noise in the first entry)
        Deno.writeFileSync(`${inPlace}/decoy`, decoy);
        Deno.writeTextFileSync(
          `${inPlace}/aws`,
          `#!/bin/bash
set -u
case " $* " in *" s3 cp "*) ;; *) exec ${which("aws")} "$@" ;; esac
out="" args=() side=${inPlace}/side.$$
for a in "$@"; do
  case "$a" in s3://*) args+=("$a") ;; */) out=\${a%/} && args+=("$side/") ;; *) args+=("$a") ;; esac
done
${which("aws")} "\${args[@]}"
rc=$?
cp ${inPlace}/decoy "$out/${meta}" && cp "$side/s3backup.conf" "$out/" && sleep 2
cat "$side/${meta}" >"$out/${meta}" && rm -f "$side/${meta}" && cp -R "$side/." "$out/"
touch ${inPlace}/ran
exit "$rc"
`,
          { mode: 0o755 },
        );
        const tp = `${f.dir}/tp`;
        ok(
          await kit("restore.sh", [f.repo, "latest", tp], {
            ...f.env,
            PATH: `${inPlace}:${f.env.PATH}`,
          }),
          "kit restore, the meta written in place",
        );
        assert.ok(exists(`${inPlace}/ran`), "the in-place aws was not run");
        assert.deepEqual(snapshot(tp), expected);
        // A newer meta whose first block is damaged: it does not open with the right password.
        const bad = body.slice();
        bad[20]! ^= 0x01;
        await store.save("meta_small_20991231T000000Z", bad);
        const gone = `${f.dir}/gone`;
        const rg = await kit("restore.sh", [f.repo, "latest", gone], f.env);
        assert.equal(rg.code, 4, rg.stderr);
        assert.match(rg.stderr, /meta_small_20991231T000000Z: wrong password \(or corrupt meta\)/);
        assert.ok(!exists(gone), "a target made for a meta that does not open");
        const empty = `${f.dir}/empty`;
        Deno.mkdirSync(empty);
        const re = await kit("restore.sh", [f.repo, "latest", empty], f.env);
        assert.equal(re.code, 4, re.stderr);
        assert.deepEqual(names(empty), [], "left in the target");
        await store.remove(["meta_small_20991231T000000Z"]);

        // The descriptor says 1,000 iterations and the meta is made with them, but the key (and
        // the meta's copy of it) is still wrapped with 600,000: the binary refuses (it derives
        // the key with the descriptor's count), and so must the kit, although its first
        // derivation (600,000) opened that key.
        const iter = 1000;
        const conf = new TextDecoder().decode(await load("s3backup.conf"));
        assert.match(conf, /^key-iter=600000$/m);
        await store.save(
          "s3backup.conf",
          te.encode(conf.replace(/^key-iter=\d+$/m, `key-iter=${iter}`)),
        );
        const text = new TextDecoder().decode(await openssl(["-d"], body, f.env));
        await store.save(meta, await openssl(["-e"], te.encode(text), f.env, iter));
        const mixed = `${f.dir}/mixed`;
        const bin = await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", mixed], f.env);
        assert.equal(bin.code, 4, bin.stderr);
        const km = await kit("restore.sh", [f.repo, "latest", mixed], f.env);
        assert.equal(km.code, 4, km.stderr);
        assert.ok(!exists(mixed));
        // The key and the meta's copy of it wrapped again with 1,000 iterations: both restore.
        const key = await openssl(
          ["-e"],
          await openssl(["-d"], await load("s3backup.key"), f.env),
          f.env,
          iter,
        );
        await store.save("s3backup.key", key);
        assert.match(text, /^wrapped-key \S+$/m);
        const wrapped = `wrapped-key ${btoa(String.fromCharCode(...key))}`;
        await store.save(
          meta,
          await openssl(
            ["-e"],
            te.encode(text.replace(/^wrapped-key \S+$/m, wrapped)),
            f.env,
            iter,
          ),
        );
        const t2 = `${f.dir}/t2`;
        ok(await kit("restore.sh", [f.repo, "latest", t2], f.env), "kit restore, key-iter 1000");
        assert.deepEqual(snapshot(t2), expected);
        const t3 = `${f.dir}/t3`;
        ok(await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", t3], f.env), "restore");
        assert.deepEqual(snapshot(t3), expected);
      } finally {
        store.close?.();
      }
    } finally {
      await f.cleanup();
    }
  });

  Deno.test(`restore, format 3 (${target.label}): the kit fetches a batch of packs by one aws call, or a batch while it places one; a missing and a damaged pack cost only their files`, async () => {
    const f = await fx(target);
    try {
      const src = `${f.dir}/src`;
      Deno.mkdirSync(src);
      // 600 files of 4 KiB that do not shrink: packs of 512 KiB, about five of them.
      let x = 7;
      for (let i = 0; i < 600; i++) {
        const b = new Uint8Array(4096).map(() => (x = (x * 1103515245 + 12345) >>> 0) >>> 24);
        Deno.writeFileSync(`${src}/f${i}`, b);
      }
      ok(
        await s3backup(["backup", "-f", src, "-b", f.repo, "-c", "--pack-size", "512K"], f.env),
        "backup",
      );
      const store = targetStore(
        target,
        f.repo.split("/")[2]!,
        f.repo.split("/").slice(3).join("/"),
      );
      try {
        const packs: string[] = [];
        for await (const o of store.list("packs/")) packs.push(o.name);
        packs.sort();
        assert.ok(packs.length >= 4, `${packs.length} packs`);
        await store.remove([packs[0]!]);
        const body = new Uint8Array(await new Response(await store.load(packs[1]!)).arrayBuffer());
        body[Math.floor(body.length / 2)]! ^= 0x40;
        await store.save(packs[1]!, body);
        // The aws CLI the kit runs, behind a shim that writes down each call.
        const shim = `${f.dir}/shim`;
        Deno.mkdirSync(shim);
        const aws = new TextDecoder().decode(
          new Deno.Command("bash", { args: ["-c", "command -v aws"], stdout: "piped" }).outputSync()
            .stdout,
        ).trim();
        Deno.writeTextFileSync(
          `${shim}/aws`,
          `#!/bin/bash\nprintf '%s\\n' "$*" >>${shim}/calls\nexec ${aws} "$@"\n`,
          { mode: 0o755 },
        );
        const t = `${f.dir}/t`;
        const r = await kit("restore.sh", [f.repo, "latest", t], {
          ...f.env,
          PATH: `${shim}:${f.env.PATH}`,
          S3BACKUP_KIT_JOBS: "2", // (more packs than workers: one aws call for them)
          S3BACKUP_KIT_EARLY_BYTES: "0", // (not with the meta: early_batch, below)
        });
        assert.equal(r.code, 3, r.stderr);
        for (const p of packs.slice(0, 2)) {
          assert.ok(r.stderr.includes(p), `${p} named:\n${r.stderr}`);
        }
        const calls = Deno.readTextFileSync(`${shim}/calls`).trimEnd().split("\n");
        assert.equal(
          calls.filter((c) => / s3 cp .*\/packs\/ /.test(c)).length,
          1,
          calls.join("\n"),
        );
        // A GET for the missing pack alone (which tells it is missing; once more, as ever).
        const gets = calls.filter((c) => /get-object .*packs\//.test(c));
        assert.ok(gets.length > 0 && gets.every((c) => c.includes(packs[0]!)), gets.join("\n"));
        const same = (t: string, r: Run) => {
          const restored = snapshot(t).filter((e) => e.type === "f");
          for (const e of restored) {
            assert.equal(
              md5(Deno.readFileSync(`${t}/${e.path}`)),
              md5(Deno.readFileSync(`${src}/${e.path}`)),
              `${e.path} restored with other bytes`,
            );
          }
          // The other packs' files, every one (each pack holds 100-130 of the 600).
          const failed = Number(/(\d+) failed$/m.exec(r.stderr)?.[1]);
          assert.equal(restored.length + failed, 600, r.stderr);
          assert.ok(failed >= 100 && failed <= 300, `${failed} failed`);
          return restored.length;
        };
        const n = same(t, r);
        // Batches of 2 packs, a GET each: each batch's packs fetched while the one before is
        // placed. The same files.
        const r2 = await kit("restore.sh", [f.repo, "latest", `${t}2`], {
          ...f.env,
          S3BACKUP_KIT_BATCH_OBJECTS: "2",
          S3BACKUP_KIT_JOBS: "2",
        });
        assert.equal(r2.code, 3, r2.stderr);
        assert.equal(same(`${t}2`, r2), n);
        // A small store: the descriptor, the meta and every pack by one aws call once the backup
        // is picked (early_batch), besides the key and the listing (the first calls); the missing
        // pack then by a GET of its own, which tells it is missing. The same files.
        Deno.removeSync(`${shim}/calls`);
        const r3 = await kit("restore.sh", [f.repo, "latest", `${t}3`], {
          ...f.env,
          PATH: `${shim}:${f.env.PATH}`,
        });
        assert.equal(r3.code, 3, r3.stderr);
        assert.equal(same(`${t}3`, r3), n);
        const calls3 = Deno.readTextFileSync(`${shim}/calls`).trimEnd().split("\n");
        const what = calls3.map((c) =>
          / s3 cp /.test(c)
            ? `cp ${[...c.matchAll(/--include (\S+)/g)].map((m) => m[1]).sort().join(" ")}`
            : / list-objects-v2 /.test(c)
            ? "list"
            : (/ (get|head)-object .*--key \S*?((?:packs\/)?[^/ ]+) /.exec(c) ?? [c, c, c])
              .slice(1).join(" ")
        );
        const cp = what.filter((w) => w.startsWith("cp "));
        assert.equal(cp.length, 1, what.join("\n"));
        // (the listing made at restore time: the deleted pack is not in it)
        const got = cp[0]!.split(" ").slice(1);
        assert.deepEqual(
          got.filter((w) => !/^meta_src_\d{8}T\d{6}Z$/.test(w)),
          [...packs.slice(1), "s3backup.conf"].sort(),
        );
        assert.equal(got.length, packs.length + 1, got.join(" "));
        assert.deepEqual(
          what.filter((w) => !w.startsWith("cp ") && !w.endsWith(packs[0]!)).sort(),
          ["get s3backup.key", "list"],
        );
      } finally {
        store.close?.();
      }
    } finally {
      await f.cleanup();
    }
  });
}
