/**
 * Tests of the restore kit (restore-kit/*.sh), the second, independent reader of FORMAT.md.
 *
 * The fixture repositories are built here by hand with the openssl CLI, following FORMAT.md
 * only (no code from src/), which also checks that the format can be implemented from its
 * description. Run: deno test -A test/kit_test.ts
 *
 * The S3 cases run on S3BACKUP_TEST_S3_ENDPOINT (moto_server) and, when set, on
 * S3BACKUP_TEST_CEPH_ENDPOINT (a Ceph RGW, with its own keys): scripts/test.sh provides them.
 * Set S3BACKUP_TEST_NO_S3=1 to skip them.
 */

import { createHash } from "node:crypto";

const KIT_DIR = new URL("../restore-kit/", import.meta.url).pathname;
const PASSWORD = "correct horse ✓ battery staple";
const KEY_ITER = 600000;
const NO_S3 = Deno.env.get("S3BACKUP_TEST_NO_S3") === "1";
const IS_ROOT = Deno.uid() === 0;
const MIB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

function fail(msg: string): never {
  throw new Error(msg);
}

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) fail(msg);
}

function assertEquals(actual: unknown, expected: unknown, msg = "values differ"): void {
  const norm = (_k: string, v: unknown) => v instanceof Map ? [...v.entries()] : v;
  const a = JSON.stringify(actual, norm, 1);
  const e = JSON.stringify(expected, norm, 1);
  if (a !== e) fail(`${msg}\nactual:   ${a}\nexpected: ${e}`);
}

const enc = new TextEncoder();
const dec = new TextDecoder();

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; clearEnv?: boolean; cwd?: string } = {},
): Promise<RunResult> {
  const out = await new Deno.Command(cmd, {
    signal: AbortSignal.timeout(300_000), // a deadline: a hung child fails the test
    args,
    env: opts.env,
    clearEnv: opts.clearEnv ?? false,
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function runOk(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; clearEnv?: boolean } = {},
): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) fail(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r;
}

function md5hex(data: Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

function randomHex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function readDirNames(p: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(p)) names.push(e.name);
  return names.sort();
}

/** Removes a tree even when it holds read-only directories. */
function removeTreeSync(p: string): void {
  try {
    new Deno.Command("chmod", { args: ["-R", "u+rwx", "--", p] }).outputSync();
    Deno.removeSync(p, { recursive: true });
  } catch {
    // best effort
  }
}

const BASE = await Deno.makeTempDir({ prefix: "s3backup-kit-test-" });
if (Deno.env.get("S3BACKUP_TEST_KEEP") === "1") console.error(`kit test files kept in ${BASE}`);
else globalThis.addEventListener("unload", () => removeTreeSync(BASE));
let tmpCounter = 0;
/** A fresh path under BASE (not created). */
function tmpPath(label: string): string {
  tmpCounter++;
  return `${BASE}/${label}-${tmpCounter}`;
}

// ---------------------------------------------------------------------------------------------
// FORMAT.md, written by hand: escaping (5.2), openssl container (3.1), key, metas
// ---------------------------------------------------------------------------------------------

/** Text mode escaping, FORMAT.md 5.2. */
function escapeText(s: string): string {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out;
}

/** Field mode: text mode plus space as \x20. */
function escapeField(s: string): string {
  return escapeText(s).replaceAll(" ", "\\x20");
}

/** openssl enc -aes-256-cbc -pbkdf2 -iter ITER -md sha256 -pass env:VAR, FORMAT.md 3.1. */
async function encryptFile(inFile: string, outFile: string, pass: string, iter: number) {
  await runOk("openssl", [
    "enc",
    "-aes-256-cbc",
    "-pbkdf2",
    "-iter",
    String(iter),
    "-md",
    "sha256",
    "-pass",
    "env:FIXTURE_PASS",
    "-in",
    inFile,
    "-out",
    outFile,
  ], { env: { FIXTURE_PASS: pass } });
}

async function encryptBytes(data: Uint8Array, outFile: string, pass: string, iter: number) {
  const plain = tmpPath("plain");
  await Deno.writeFile(plain, data);
  await encryptFile(plain, outFile, pass, iter);
  await Deno.remove(plain);
}

interface Repo {
  dir: string;
  dataKey: string;
  /** base64 of the exact bytes of s3backup.key */
  wrappedB64: string;
}

/** A repository directory with s3backup.conf and s3backup.key (FORMAT.md 2, 3.2). */
async function makeRepo(password = PASSWORD): Promise<Repo> {
  const dir = tmpPath("repo");
  await Deno.mkdir(dir);
  await Deno.writeTextFile(
    `${dir}/s3backup.conf`,
    [
      "# s3backup repository - see FORMAT.md",
      "format=2",
      `id=${randomHex(8)}`,
      "cipher=aes-256-cbc",
      "kdf=pbkdf2",
      "digest=sha256",
      `key-iter=${KEY_ITER}`,
      "data-iter=1",
      "some-future-key=ignored",
      "",
    ].join("\n"),
  );
  const dataKey = randomHex(32);
  const wrappedB64 = await wrapKey(dataKey, password, `${dir}/s3backup.key`);
  return { dir, dataKey, wrappedB64 };
}

/** Writes `file` = the data key wrapped with `password` (FORMAT.md 3.2); returns its base64. */
async function wrapKey(dataKey: string, password: string, file: string): Promise<string> {
  await encryptBytes(enc.encode(`s3backup-key 2\n${dataKey}\n`), file, password, KEY_ITER);
  const keyBytes = await Deno.readFile(file);
  let bin = "";
  for (const b of keyBytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Stores one content as data object <md5> (FORMAT.md 4); returns the md5. */
async function putObject(repo: Repo, data: Uint8Array): Promise<string> {
  const md5 = md5hex(data);
  const path = `${repo.dir}/${md5}`;
  if (!(await exists(path))) await encryptBytes(data, path, repo.dataKey, 1);
  return md5;
}

/**
 * Writes meta_<name>_<ts> with the given entry lines (FORMAT.md 5), or under `opts.object`
 * (e.g. "passwd/prev/meta_...", folders created). `opts.wrappedB64`: the wrapped-key header
 * (default the repository's; null: no header).
 */
async function putMeta(
  repo: Repo,
  name: string,
  ts: string,
  lines: string[],
  opts: {
    password?: string;
    trailer?: number;
    source?: string;
    wrappedB64?: string | null;
    object?: string;
    version?: 2 | 3;
  } = {},
): Promise<string> {
  const meta = `meta_${name}_${ts}`;
  const wrapped = opts.wrappedB64 === undefined ? repo.wrappedB64 : opts.wrappedB64;
  const text = [
    `s3backup-meta ${opts.version ?? 2}`,
    "time 2025-01-01T00:00:00.000Z",
    "host test\\thost",
    `source ${escapeText(opts.source ?? "/srv/data with space")}`,
    `name ${name}`,
    "x-future-header some value",
    ...(wrapped === null ? [] : [`wrapped-key ${wrapped}`]),
    "entries",
    ...lines,
    `end ${opts.trailer ?? lines.length}`,
    "",
  ].join("\n");
  const object = opts.object ?? meta;
  if (object.includes("/")) {
    await Deno.mkdir(`${repo.dir}/${object.slice(0, object.lastIndexOf("/"))}`, {
      recursive: true,
    });
  }
  await encryptBytes(
    enc.encode(text),
    `${repo.dir}/${object}`,
    opts.password ?? PASSWORD,
    KEY_ITER,
  );
  return meta;
}

function mtimeField(ms: number): string {
  const sec = Math.floor(ms / 1000);
  const frac = ms - sec * 1000;
  if (frac === 0) return String(sec);
  return `${sec}.${String(frac).padStart(3, "0").replace(/0+$/, "")}`;
}

function modeField(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

// ---------------------------------------------------------------------------------------------
// Source trees
// ---------------------------------------------------------------------------------------------

type Spec =
  | { type: "d"; path: string; mode: number; mtime: number }
  | { type: "f"; path: string; mode: number; mtime: number; data: Uint8Array; owner?: number }
  | { type: "l"; path: string; target: string; mtime: number };

const bigCache = new Map<number, Uint8Array>();
/** Deterministic pseudo-random bytes (xorshift32). */
function bigData(size: number): Uint8Array {
  const cached = bigCache.get(size);
  if (cached) return cached;
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = 2463534242;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  const buf = new Uint8Array(words.buffer, 0, size);
  bigCache.set(size, buf);
  return buf;
}

const T0 = 1700000000_000; // ms
const text = (s: string) => enc.encode(s);

const NASTY_NAMES = [
  "  spaces at both ends  ",
  "new\nline",
  "trailing newline\n",
  "cr\rname",
  "tab\tname",
  "back\\slash",
  "100% done %s %b %%",
  "-leading-dash",
  "--",
  "ünïcødé ✓ 日本語",
  "\\n",
  "\\x41 and \\c stop",
  "ctl\x01\x1f\x7fdel",
  "glob*?[ab]{x,y}",
  'quote\'s "double" `tick` $HOME',
];

function mainSpec(): Spec[] {
  const s: Spec[] = [
    { type: "f", path: "empty.txt", mode: 0o644, mtime: T0 + 500, data: new Uint8Array() },
    { type: "f", path: "also-empty", mode: 0o600, mtime: T0, data: new Uint8Array() },
    { type: "f", path: "secret.txt", mode: 0o600, mtime: T0 + 123, data: text("secret\n") },
    {
      type: "f",
      path: "run.sh",
      mode: 0o755,
      mtime: 86400_000,
      data: text("#!/bin/sh\necho hi\n"),
    },
    { type: "f", path: "readonly.txt", mode: 0o444, mtime: T0 - 1000, data: text("ro") },
    { type: "f", path: "dup1.txt", mode: 0o644, mtime: T0, data: text("same content\n") },
    { type: "d", path: "dir with trailing space ", mode: 0o755, mtime: T0 + 2000 },
    {
      type: "f",
      path: "dir with trailing space /line\nbreak",
      mode: 0o640,
      mtime: T0,
      data: text("hello"),
    },
    {
      type: "f",
      path: "dir with trailing space /dup2.txt",
      mode: 0o600,
      mtime: T0 + 7,
      data: text("same content\n"),
    },
    { type: "d", path: "ro-dir", mode: 0o555, mtime: T0 + 3000 },
    { type: "f", path: "ro-dir/inside.txt", mode: 0o644, mtime: T0, data: text("inside ro dir") },
    { type: "d", path: "ro-dir/sub", mode: 0o700, mtime: T0 + 4000 },
    { type: "f", path: "ro-dir/sub/deep.txt", mode: 0o644, mtime: T0, data: text("deep") },
    { type: "d", path: "empty-dir", mode: 0o755, mtime: T0 + 5000 },
    { type: "d", path: "deep", mode: 0o755, mtime: T0 },
    { type: "d", path: "deep/a", mode: 0o750, mtime: T0 + 1 },
    { type: "d", path: "deep/a/b", mode: 0o700, mtime: T0 + 2 },
    { type: "d", path: "deep/a/b/empty", mode: 0o711, mtime: T0 + 3 },
    { type: "d", path: "nasty", mode: 0o755, mtime: T0 + 6000 },
    { type: "f", path: "big.bin", mode: 0o644, mtime: T0 + 999, data: bigData(21 * MIB + 17) },
    { type: "l", path: "link to spaced", target: "../some target/with spaces ", mtime: T0 },
    { type: "l", path: "dangling", target: "does/not/exist", mtime: T0 + 10 },
    { type: "l", path: "nasty/rel-link", target: "../dup1.txt", mtime: T0 + 20 },
    { type: "l", path: "odd target", target: "-x\tab\\back\nnl", mtime: T0 + 30 },
    { type: "l", path: "dirlink", target: "deep/a", mtime: T0 + 40 },
  ];
  NASTY_NAMES.forEach((n, i) => {
    s.push({
      type: "f",
      path: `nasty/${n}`,
      mode: 0o644,
      mtime: T0 + i * 1000,
      data: text(`#${i}:${n}`),
    });
  });
  s.push({ type: "d", path: "nasty/ dir \\ %b ", mode: 0o755, mtime: T0 + 7000 });
  s.push({ type: "d", path: "nasty/dir\nwith newlines\n", mode: 0o750, mtime: T0 + 8000 });
  s.push({
    type: "f",
    path: "nasty/dir\nwith newlines\n/file\n",
    mode: 0o600,
    mtime: T0 + 9000,
    data: text("in a dir with newlines"),
  });
  s.push({ type: "f", path: "nasty/ dir \\ %b /-f", mode: 0o644, mtime: T0, data: text("dash f") });
  if (IS_ROOT) {
    s.push({
      type: "f",
      path: "owned.txt",
      mode: 0o4755,
      mtime: T0,
      data: text("owned"),
      owner: 1234,
    });
  }
  return s;
}

/** Builds a source tree from a spec: content, modes, owners, mtimes (dirs last, deepest first). */
async function buildTree(root: string, spec: Spec[]): Promise<void> {
  await Deno.mkdir(root, { recursive: true });
  for (const e of spec) {
    const p = `${root}/${e.path}`;
    if (e.type === "d") await Deno.mkdir(p);
    else if (e.type === "f") {
      await Deno.writeFile(p, e.data);
      if (e.owner !== undefined) await Deno.chown(p, e.owner, e.owner + 1);
      await Deno.chmod(p, e.mode);
      await Deno.utime(p, e.mtime / 1000, e.mtime / 1000);
    } else {
      await Deno.symlink(e.target, p);
      // An ISO 8601 date with its fraction, which GNU and BSD (macOS) touch -d both read; GNU's
      // -d @SECONDS is GNU's alone.
      await runOk("touch", ["-h", "-d", new Date(e.mtime).toISOString(), "--", p]);
    }
  }
  const dirs = spec.filter((e) => e.type === "d").sort((a, b) => b.path.length - a.path.length);
  for (const d of dirs) {
    const p = `${root}/${d.path}`;
    await Deno.chmod(p, d.mode);
    await Deno.utime(p, d.mtime / 1000, d.mtime / 1000);
  }
}

interface Node {
  type: "f" | "d" | "l";
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  md5?: string;
  size?: number;
  target?: string;
}

/** Walks a tree without following symlinks: relative path -> node (walk order kept). */
async function walk(root: string): Promise<Map<string, Node>> {
  const out = new Map<string, Node>();
  async function rec(rel: string): Promise<void> {
    const names: string[] = [];
    for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) names.push(e.name);
    names.sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const p = `${root}/${r}`;
      const st = await Deno.lstat(p);
      const base = {
        mode: (st.mode ?? 0) & 0o7777,
        uid: st.uid ?? -1,
        gid: st.gid ?? -1,
        mtimeMs: st.mtime?.getTime() ?? 0,
      };
      if (st.isSymlink) {
        out.set(r, { type: "l", ...base, mode: 0o777, target: await Deno.readLink(p) });
      } else if (st.isDirectory) {
        out.set(r, { type: "d", ...base });
        await rec(r);
      } else {
        const data = await Deno.readFile(p);
        out.set(r, { type: "f", ...base, md5: md5hex(data), size: data.length });
      }
    }
  }
  await rec("");
  return out;
}

/** Entry lines (FORMAT.md 5.1) for a source tree; stores its contents in the repo. */
async function entriesOf(repo: Repo, root: string): Promise<string[]> {
  const lines: string[] = [];
  for (const [rel, n] of await walk(root)) {
    const common = `${modeField(n.mode)} ${n.uid} ${n.gid}`;
    const path = escapeText(rel);
    if (n.type === "d") lines.push(`- d ${common} 0 ${mtimeField(n.mtimeMs)} - ${path}`);
    else if (n.type === "l") {
      lines.push(`- l ${common} 0 ${mtimeField(n.mtimeMs)} ${escapeField(n.target ?? "")} ${path}`);
    } else {
      const md5 = await putObject(repo, await Deno.readFile(`${root}/${rel}`));
      lines.push(`${md5} f ${common} ${n.size} ${mtimeField(n.mtimeMs)} - ${path}`);
    }
  }
  return lines;
}

function describe(n: Node | undefined): string {
  return JSON.stringify(n);
}

/** The restored tree must equal the source: types, bytes, modes, mtimes, owners, targets. */
async function assertSameTree(
  restored: string,
  source: string,
  opts: { skip?: (p: string) => boolean; only?: (p: string) => boolean } = {},
): Promise<void> {
  const a = await walk(restored);
  const b = await walk(source);
  const problems: string[] = [];
  const keys = new Set([...a.keys(), ...b.keys()]);
  for (const k of keys) {
    if (opts.skip?.(k)) continue;
    if (opts.only && !opts.only(k)) {
      if (a.has(k) && b.get(k)?.type !== "d") {
        problems.push(`${JSON.stringify(k)}: not selected but restored`);
      }
      continue;
    }
    const x = a.get(k);
    const y = b.get(k);
    if (!x || !y) {
      problems.push(`${JSON.stringify(k)}: restored=${describe(x)} source=${describe(y)}`);
      continue;
    }
    const same = x.type === y.type && x.md5 === y.md5 && x.target === y.target &&
      (x.type === "l" || x.mode === y.mode) && x.mtimeMs === y.mtimeMs &&
      (!IS_ROOT || (x.uid === y.uid && x.gid === y.gid));
    if (!same) problems.push(`${JSON.stringify(k)}: restored=${describe(x)} source=${describe(y)}`);
  }
  if (problems.length) fail(`restored tree differs from the source:\n${problems.join("\n")}`);
}

// ---------------------------------------------------------------------------------------------
// Running the kit
// ---------------------------------------------------------------------------------------------

const COREUTILS = (
  "[ arch b2sum base32 basename basenc cat chcon chgrp chmod chown chroot cksum comm cp " +
  "csplit cut date dd df dir dircolors dirname du echo env expand expr factor false fmt fold " +
  "groups head hostid id install join link ln logname ls md5sum mkdir mkfifo mknod mktemp mv " +
  "nice nl nohup nproc numfmt od paste pathchk pinky pr printenv printf ptx pwd readlink " +
  "realpath rm rmdir runcon seq sha1sum sha224sum sha256sum sha384sum sha512sum shred shuf " +
  "sleep sort split stat stdbuf stty sum sync tac tail tee test timeout touch tr true truncate " +
  "tty uname unexpand uniq unlink users vdir wc who whoami yes"
).split(" ");

async function which(name: string): Promise<string> {
  const r = await run("bash", ["-c", 'command -v -- "$1"', "bash", name]);
  const p = r.stdout.trim();
  if (r.code !== 0 || !p) fail(`${name} not found on PATH`);
  return p;
}

/**
 * A bin directory holding only symlinks to bash, the coreutils programs, openssl, tar and gzip
 * (format 3) and (when given) aws. No base64 (the kit must use openssl base64); no md5sum when
 * noMd5sum.
 */
async function restrictedBin(opts: { aws?: string; noMd5sum?: boolean } = {}): Promise<string> {
  const bin = tmpPath("bin");
  await Deno.mkdir(bin);
  const progs = COREUTILS.filter((p) => !(opts.noMd5sum && p === "md5sum"));
  for (const p of [...progs, "bash", "openssl", "tar", "gzip"]) {
    const real = await run("bash", ["-c", 'type -P -- "$1"', "bash", p]);
    const target = real.stdout.trim();
    if (real.code === 0 && target) await Deno.symlink(target, `${bin}/${p}`);
  }
  if (opts.aws) await Deno.symlink(opts.aws, `${bin}/aws`);
  return bin;
}

interface KitOpts {
  path?: string;
  password?: string | null;
  env?: Record<string, string>;
  kitDir?: string;
}

/** Runs a kit script with a clean environment (PATH, HOME, the password, opts.env only). */
function kit(script: string, args: string[], opts: KitOpts = {}): Promise<RunResult> {
  const env: Record<string, string> = {
    PATH: opts.path ?? Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    TMPDIR: BASE,
    LANG: "C.UTF-8",
    ...opts.env,
  };
  const pw = opts.password === undefined ? PASSWORD : opts.password;
  if (pw !== null) env.S3BACKUP_PASSWORD = pw;
  return run(`${opts.kitDir ?? KIT_DIR}${script}`, args, { env, clearEnv: true });
}

function assertExit(r: RunResult, code: number, what: string): void {
  if (r.code !== code) {
    fail(`${what}: exit ${r.code}, expected ${code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The shared fixture: one source tree, one repository with three backups
// ---------------------------------------------------------------------------------------------

interface Fixture {
  repo: Repo;
  source: string;
  oldSource: string;
  otherSource: string;
  spec: Spec[];
  metaLatest: string;
  metaOld: string;
  metaOther: string;
  counts: Map<string, number>;
}

let fixturePromise: Promise<Fixture> | undefined;

function fixture(): Promise<Fixture> {
  fixturePromise ??= (async () => {
    const repo = await makeRepo();
    const spec = mainSpec();
    const source = tmpPath("source");
    await buildTree(source, spec);
    const oldSource = tmpPath("old-source");
    await buildTree(oldSource, [
      { type: "f", path: "old.txt", mode: 0o644, mtime: T0, data: text("old backup") },
    ]);
    const otherSource = tmpPath("other-source");
    await buildTree(otherSource, [
      { type: "d", path: "w", mode: 0o755, mtime: T0 },
      { type: "f", path: "w/weekly.txt", mode: 0o600, mtime: T0 + 1, data: text("weekly") },
    ]);
    const main = await entriesOf(repo, source);
    const old = await entriesOf(repo, oldSource);
    const other = await entriesOf(repo, otherSource);
    // Times: latest overall is nightly 2025-06; "weekly_x" (a name holding "_") is older.
    const metaOld = await putMeta(repo, "nightly", "20240101T000000Z", old);
    const metaLatest = await putMeta(repo, "nightly", "20250601T120000Z", main);
    const metaOther = await putMeta(repo, "weekly_x", "20250101T000000Z", other);
    const counts = new Map([[metaOld, old.length], [metaLatest, main.length], [
      metaOther,
      other.length,
    ]]);
    return { repo, source, oldSource, otherSource, spec, metaLatest, metaOld, metaOther, counts };
  })();
  return fixturePromise;
}

/** A copy of a repository directory (to damage it). */
async function copyRepo(repo: Repo): Promise<Repo> {
  const dir = tmpPath("repo-copy");
  await runOk("cp", ["-a", "--", repo.dir, dir]);
  return { ...repo, dir };
}

// ---------------------------------------------------------------------------------------------
// Local directory store
// ---------------------------------------------------------------------------------------------

Deno.test("kit: shell scripts are shellcheck-clean", async () => {
  const sc = await run("bash", ["-c", "command -v shellcheck"]);
  if (sc.code !== 0) fail("shellcheck is not installed");
  const r = await run("shellcheck", ["-x", "restore.sh", "list.sh", "common.sh"], { cwd: KIT_DIR });
  assertExit(r, 0, `shellcheck\n${r.stdout}`);
});

Deno.test("kit: full local restore with a PATH of only bash, coreutils, openssl", async () => {
  const fx = await fixture();
  const bin = await restrictedBin();
  const target = tmpPath("restored");
  const r = await kit("restore.sh", [fx.repo.dir, "latest", target], { path: bin });
  assertExit(r, 0, "restore.sh");
  assert(r.stderr.includes(fx.metaLatest), `meta not named: ${r.stderr}`);
  const files = fx.spec.filter((e) => e.type === "f").length;
  const dirs = fx.spec.filter((e) => e.type === "d").length;
  const links = fx.spec.filter((e) => e.type === "l").length;
  assert(
    r.stderr.includes(`restored ${files} files, ${dirs} dirs, ${links} links, 0 failed`),
    `summary: ${r.stderr}`,
  );
  await assertSameTree(target, fx.source);

  // Restoring again over the restored tree (read-only dirs and files in place) is idempotent.
  const again = await kit("restore.sh", [fx.repo.dir, "latest", target], { path: bin });
  assertExit(again, 0, "second restore.sh");
  await assertSameTree(target, fx.source);
});

Deno.test("kit: openssl md5 fallback, password file with CRLF, relative target", async () => {
  const fx = await fixture();
  const bin = await restrictedBin({ noMd5sum: true });
  const pwfile = tmpPath("pw");
  await Deno.writeTextFile(pwfile, `${PASSWORD}\r\nsecond line\n`);
  const cwd = tmpPath("cwd");
  await Deno.mkdir(cwd);
  const r = await new Deno.Command(`${KIT_DIR}restore.sh`, {
    signal: AbortSignal.timeout(300_000), // a deadline: a hung child fails the test
    args: [
      "--password-file",
      pwfile,
      "--only",
      "nasty",
      "--only",
      "big.bin",
      "--",
      fx.repo.dir,
      "nightly",
      "-rel target",
    ],
    cwd,
    clearEnv: true,
    env: { PATH: bin, HOME: "/tmp", TMPDIR: BASE, S3BACKUP_PASSWORD: "wrong, the file wins" },
    stdin: "null",
  }).output();
  assertExit(
    { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) },
    0,
    "restore.sh",
  );
  const sel = (p: string) => p === "big.bin" || p === "nasty" || p.startsWith("nasty/");
  await assertSameTree(`${cwd}/-rel target`, fx.source, { only: sel });
});

Deno.test("kit: meta name, backup name and latest select the right backup", async () => {
  const fx = await fixture();
  const t1 = tmpPath("t");
  assertExit(await kit("restore.sh", [fx.repo.dir, fx.metaOld, t1]), 0, "restore old");
  await assertSameTree(t1, fx.oldSource);
  const t2 = tmpPath("t");
  assertExit(await kit("restore.sh", [fx.repo.dir, "weekly_x", t2]), 0, "restore weekly_x");
  await assertSameTree(t2, fx.otherSource);
  const t3 = tmpPath("t");
  const r = await kit("restore.sh", [fx.repo.dir, "no-such-name", t3]);
  assertExit(r, 1, "unknown backup name");
  assert(!(await exists(t3)), "target created for an unknown backup");
  const t4 = tmpPath("t");
  assertExit(
    await kit("restore.sh", [fx.repo.dir, "meta_nightly_20990101T000000Z", t4]),
    1,
    "missing meta",
  );
  assert(!(await exists(t4)), "target created for a missing meta");
  assertExit(await kit("restore.sh", [fx.repo.dir, "latest"]), 2, "usage");
  assertExit(await kit("restore.sh", ["--bogus", fx.repo.dir, "latest", t4]), 2, "usage");
});

Deno.test("kit: --only restores the selected paths and their parents", async () => {
  const fx = await fixture();
  const target = tmpPath("only");
  const sel = ["dir with trailing space ", "nasty/new\nline", "ro-dir/sub/deep.txt"];
  const r = await kit("restore.sh", [
    "--only",
    sel[0] ?? "",
    "--only",
    sel[1] ?? "",
    `--only=${sel[2]}`,
    fx.repo.dir,
    "latest",
    target,
  ]);
  assertExit(r, 0, "restore.sh --only");
  const isSel = (p: string) => sel.some((s) => p === s || p.startsWith(`${s}/`));
  const isParent = (p: string) => sel.some((s) => s.startsWith(`${p}/`));
  await assertSameTree(target, fx.source, { only: (p) => isSel(p) || isParent(p) });
  assertEquals(await readDirNames(target), ["dir with trailing space ", "nasty", "ro-dir"]);
  assertEquals(await readDirNames(`${target}/nasty`), ["new\nline"]);
  // A path that is not in the backup: reported, exit 3.
  const t2 = tmpPath("only");
  const r2 = await kit("restore.sh", [
    "--only",
    "nasty/nope",
    "--only",
    "./empty.txt",
    fx.repo.dir,
    "latest",
    t2,
  ]);
  assertExit(r2, 3, "restore.sh --only with an unknown path");
  assert(r2.stderr.includes("restore.sh: nasty/nope: --only: no such path"), r2.stderr);
  assertEquals(await readDirNames(t2), ["empty.txt", "nasty"]);
  assertEquals(await readDirNames(`${t2}/nasty`), []);
});

Deno.test("kit: wrong password, truncated meta: exit non-zero, target untouched", async () => {
  const fx = await fixture();
  // Missing target: not created.
  const t1 = tmpPath("wrong");
  const r1 = await kit("restore.sh", [fx.repo.dir, "latest", t1], { password: "not the password" });
  assertExit(r1, 4, "wrong password");
  assert(/wrong password/i.test(r1.stderr), `message: ${r1.stderr}`);
  assert(!(await exists(t1)), "target created with a wrong password");
  // Existing empty target: still empty.
  const t2 = tmpPath("wrong");
  await Deno.mkdir(t2);
  const r2 = await kit("restore.sh", [fx.repo.dir, "latest", t2], { password: "not the password" });
  assertExit(r2, 4, "wrong password");
  assertEquals(await readDirNames(t2), []);
  // No password and no terminal: usage error, no prompt.
  // In a session of its own (no controlling terminal): perl's setsid, as macOS has no setsid(1).
  const r3 = await run("perl", [
    "-MPOSIX",
    "-e",
    "POSIX::setsid(); exec @ARGV or die",
    "bash",
    `${KIT_DIR}restore.sh`,
    fx.repo.dir,
    "latest",
    t1,
  ], {
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: "/tmp" },
    clearEnv: true,
  });
  assertExit(r3, 2, "no password");
  assert(!(await exists(t1)), "target created without a password");
  // A truncated meta (trailer count wrong) is refused before anything is written.
  const repo = await copyRepo(fx.repo);
  const lines = await entriesOf(repo, fx.oldSource);
  await putMeta(repo, "trunc", "20300101T000000Z", [...lines, ...lines], { trailer: 1 });
  const r4 = await kit("restore.sh", [repo.dir, "latest", t1]);
  assertExit(r4, 1, "truncated meta");
  assert(/truncated/.test(r4.stderr), `message: ${r4.stderr}`);
  assert(!(await exists(t1)), "target created for a truncated meta");
  // A meta encrypted with another password (right magic under that password): refused.
  await Deno.remove(`${repo.dir}/meta_trunc_20300101T000000Z`);
  await putMeta(repo, "other-pw", "20300101T000000Z", lines, { password: "another" });
  assertExit(await kit("restore.sh", [repo.dir, "latest", t1]), 4, "meta of another password");
  assert(!(await exists(t1)), "target created");
});

Deno.test("kit: corrupt and missing objects are reported, the rest restored, exit 3", async () => {
  const fx = await fixture();
  const repo = await copyRepo(fx.repo);
  const secret = md5hex(text("secret\n"));
  const hello = md5hex(text("hello"));
  const big = md5hex(bigData(21 * MIB + 17));
  // Flip a byte in the middle of the big object (CBC: garbles two blocks, padding intact).
  const bigPath = `${repo.dir}/${big}`;
  const data = await Deno.readFile(bigPath);
  const mid = Math.floor(data.length / 2);
  data[mid] = (data[mid] ?? 0) ^ 0x55;
  await Deno.writeFile(bigPath, data);
  // Flip the last byte of another (padding check fails), remove a third.
  const secretPath = `${repo.dir}/${secret}`;
  const sdata = await Deno.readFile(secretPath);
  sdata[sdata.length - 1] = (sdata[sdata.length - 1] ?? 0) ^ 1;
  await Deno.writeFile(secretPath, sdata);
  await Deno.remove(`${repo.dir}/${hello}`);

  const bin = await restrictedBin();
  const target = tmpPath("partial");
  const r = await kit("restore.sh", [repo.dir, fx.metaLatest, target], { path: bin });
  assertExit(r, 3, "restore with damaged objects");
  for (const p of ["big.bin", "secret.txt", "dir with trailing space /line\\nbreak"]) {
    assert(r.stderr.includes(`restore.sh: ${p}: `), `${p} not reported: ${r.stderr}`);
  }
  assert(r.stderr.includes("3 failed"), `summary: ${r.stderr}`);
  const bad = new Set(["big.bin", "secret.txt", "dir with trailing space /line\nbreak"]);
  await assertSameTree(target, fx.source, {
    skip: (p) => bad.has(p) || p === "dir with trailing space ",
  });
  for (const p of bad) assert(!(await exists(`${target}/${p}`)), `${p} written`);
  // No temporary file left behind.
  for (const [p] of await walk(target)) assert(!p.includes(".s3backup-"), `leftover ${p}`);
});

Deno.test("kit: its work folders cannot be made: each file fails (exit 3), or the kit stops (exit 1)", async () => {
  const fx = await fixture();
  const files = fx.spec.filter((e) => e.type === "f").length;
  // A mkdir that cannot make a chunk's folder of decrypted objects (`<work>/chunk.*.d`: a full
  // file system), then a split that cannot cut the list into chunks: the kit's own tools fail.
  const bin = await restrictedBin();
  await Deno.remove(`${bin}/mkdir`);
  const realMkdir = (await run("bash", ["-c", "type -P mkdir"])).stdout.trim();
  await Deno.writeTextFile(
    `${bin}/mkdir`,
    [
      "#!/bin/bash",
      'for a in "$@"; do',
      '  case $a in */chunk.*.d) echo "mkdir: $a: No space left on device" >&2; exit 1;; esac',
      "done",
      `exec ${realMkdir} "$@"`,
      "",
    ].join("\n"),
  );
  await Deno.chmod(`${bin}/mkdir`, 0o755);
  const target = tmpPath("no-chunk-folder");
  const r = await kit("restore.sh", [fx.repo.dir, fx.metaLatest, target], { path: bin });
  assertExit(r, 3, "restore without its chunk folders");
  assert(r.stderr.includes("cannot create the folder "), r.stderr);
  assert(r.stderr.includes(`${files} failed`), `every file failed: ${r.stderr}`);
  for (const [p, n] of await walk(target)) assert(n.type !== "f", `${p} written`);

  await Deno.remove(`${bin}/split`);
  await Deno.writeTextFile(`${bin}/split`, "#!/bin/bash\necho 'split: write error' >&2\nexit 1\n");
  await Deno.chmod(`${bin}/split`, 0o755);
  const stopped = await kit("restore.sh", [fx.repo.dir, fx.metaLatest, tmpPath("no-split")], {
    path: bin,
  });
  assertExit(stopped, 1, "restore whose list cannot be split");
  assert(/restore\.sh: cannot split .* into chunks/.test(stopped.stderr), stopped.stderr);
});

Deno.test("kit: a malicious meta writes nothing outside the target", async () => {
  const fx = await fixture();
  const repo = await copyRepo(fx.repo);
  const outside = tmpPath("outside");
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/victim.txt`, "original");
  const evil = await putObject(repo, text("evil"));
  const ok = await putObject(repo, text("fine"));
  const f = (path: string, md5 = evil) => `${md5} f 0644 - - 4 1700000000 - ${path}`;
  const lines = [
    f("../escape"),
    f(escapeText(`${outside}/abs-evil`)),
    f("/etc/s3backup-kit-test-evil"),
    f("a/../b"),
    f("./dot"),
    f("x//y"),
    f("trailing/"),
    f("nul\\x00/../../nul-evil"),
    f(""),
    `- l 0777 - - 0 1700000000 ${escapeField(outside)} a`,
    f("a/evil"),
    `- l 0777 - - 0 1700000000 ${escapeField(outside)} lnk`,
    `- l 0777 - - 0 1700000000 ../.. lnk/sub`,
    f("lnk/evil"),
    f("victim", ok),
    f("victim-dir", ok),
    f("pre/evil"),
    `- l 0777 - - 0 1700000000 ${escapeField(outside)} l2`,
    `- l 0777 - - 0 1700000000 pwned l2/x`,
    "- d 0755 - - 0 1700000000 - sub",
    f("sub/evil"),
    "garbage line",
    `${ok} f 0644 - - 4 1700000000 - ok.txt`,
  ];
  await putMeta(repo, "evil", "20300101T000000Z", lines);
  const target = tmpPath("evil-target");
  await Deno.mkdir(target);
  // Pre-existing symlinks in the target pointing outside: replaced, never followed.
  await Deno.symlink(`${outside}/victim.txt`, `${target}/victim`);
  await Deno.symlink(outside, `${target}/sub`);
  await Deno.symlink(outside, `${target}/victim-dir`);
  await Deno.symlink(outside, `${target}/pre`);
  const outsideBefore = await walk(outside);
  const parentBefore = await readDirNames(`${target}/..`);

  const r = await kit("restore.sh", [repo.dir, "latest", target]);
  assertExit(r, 3, "malicious meta");
  assertEquals(await walk(outside), outsideBefore, "outside directory changed");
  assertEquals(await readDirNames(`${target}/..`), parentBefore, "target's parent changed");
  assert(!(await exists("/etc/s3backup-kit-test-evil")), "absolute path written");
  assertEquals(await Deno.readTextFile(`${outside}/victim.txt`), "original");
  const got = await walk(target);
  assertEquals(got.get("ok.txt")?.md5, md5hex(text("fine")));
  assertEquals(got.get("victim")?.type, "f", "victim symlink not replaced by a file");
  assertEquals(got.get("sub")?.type, "d", "sub symlink not replaced by a directory");
  assertEquals(got.get("sub/evil")?.type, "f");
  assertEquals(got.get("victim-dir")?.type, "f", "victim-dir symlink not replaced by a file");
  assertEquals(got.get("pre")?.type, "l", "pre: symlink left alone");
  assertEquals(got.get("l2")?.type, "l", "l2 is a symlink");
  assertEquals(got.get("a")?.type, "d", "a/evil's parent must be a real directory");
  assertEquals(got.get("lnk")?.type, "d", "lnk/evil's parent must be a real directory");
  for (const p of got.keys()) {
    assert(!p.includes("escape") && !p.includes("nul-evil"), `unexpected ${p}`);
  }
  for (
    const p of ["../escape", "/etc/", "a/../b", "./dot", "x//y", "garbage line", "pre/evil", "l2/x"]
  ) {
    assert(r.stderr.includes(p), `${p} not reported: ${r.stderr}`);
  }
});

Deno.test("kit: format 3 file lines its first phase passes on unchecked are checked where they are restored", async () => {
  // Phase 1 checks only the fields that name the object to fetch (MD5, where); a worker checks
  // the rest of each line as phase 1 checks the others, before anything is written.
  const fx = await fixture();
  const repo = await copyRepo(fx.repo);
  const outside = tmpPath("outside3");
  await Deno.mkdir(outside);
  const evil = await putObject(repo, text("evil"));
  const ok = await putObject(repo, text("fine"));
  const f = (path: string, fields = "0644 - - 4 1700000000", md5 = evil) =>
    `${md5} f ${fields} - ${path}`;
  const lines = [
    f("../escape"),
    f(escapeText(`${outside}/abs-evil`)),
    f("a/../b"),
    f("x//y"),
    f("bad-mode", "0989 - - 4 1700000000"),
    f("bad-uid", "0644 x1 - 4 1700000000"),
    f("bad-size", "0644 - - 4k 1700000000"),
    f("bad-mtime", "0644 - - 4 1.2.3"),
    `${evil} f 0644 - - 4 1700000000 ../../${evil} bad-where`,
    f("ok.txt", "0640 - - 4 1700000000.5", ok),
  ];
  await putMeta(repo, "evil3", "20300101T000000Z", lines, { version: 3 });
  const target = tmpPath("evil3-target");
  const r = await kit("restore.sh", [repo.dir, "latest", target]);
  assertExit(r, 3, "format 3 hostile lines");
  assertEquals([...(await walk(outside)).keys()], [], "outside written");
  const got = await walk(target);
  assertEquals([...got.keys()].sort(), ["ok.txt"]);
  assertEquals(got.get("ok.txt")?.md5, md5hex(text("fine")));
  const st = await Deno.stat(`${target}/ok.txt`);
  assertEquals(st.mode! & 0o7777, 0o640);
  assertEquals(st.mtime!.getTime(), 1700000000500);
  for (
    const want of [
      "../escape: path with an empty, '.' or '..' component: refused",
      "a/../b: path with an empty, '.' or '..' component: refused",
      "x//y: path with an empty, '.' or '..' component: refused",
      "bad-mode: bad mode '0989'",
      "bad-uid: bad uid 'x1'",
      "bad-size: bad size '4k'",
      "bad-mtime: bad mtime '1.2.3'",
      `bad-where: bad where field '../../${evil}'`,
      "restored 1 files",
    ]
  ) {
    assert(r.stderr.includes(want), `${want} not said: ${r.stderr}`);
  }
  assert(r.stderr.includes("/abs-evil: absolute path: refused"), r.stderr);
});

Deno.test("kit: list.sh with and without a password", async () => {
  const fx = await fixture();
  const bin = await restrictedBin();
  const metas = [fx.metaOld, fx.metaOther, fx.metaLatest]; // oldest first
  const r1 = await kit("list.sh", [fx.repo.dir], { path: bin, password: null });
  assertExit(r1, 0, "list.sh without password");
  const rows1 = r1.stdout.trimEnd().split("\n").slice(1);
  assertEquals(rows1.map((l) => l.split(/ +/)[0]), metas);
  assert(!/ENTRIES/.test(r1.stdout), "entries shown without a password");
  for (const m of metas) {
    const size = (await Deno.stat(`${fx.repo.dir}/${m}`)).size;
    const row = rows1.find((l) => l.startsWith(m)) ?? "";
    assert(row.includes(` ${size}`), `size ${size} missing in ${row}`);
  }
  assert(
    rows1[1]?.includes("weekly_x") && rows1[1]?.includes("2025-01-01 00:00:00"),
    rows1[1] ?? "",
  );

  const r2 = await kit("list.sh", [fx.repo.dir], { path: bin });
  assertExit(r2, 0, "list.sh with password");
  assert(/ENTRIES/.test(r2.stdout), r2.stdout);
  for (const m of metas) {
    const row = r2.stdout.split("\n").find((l) => l.startsWith(m)) ?? "";
    assert(row.trimEnd().endsWith(` ${fx.counts.get(m)}`), `count of ${m}: ${row}`);
  }
  const r3 = await kit("list.sh", [fx.repo.dir], { password: "wrong" });
  assertExit(r3, 4, "list.sh wrong password");
  const empty = tmpPath("empty-store");
  await Deno.mkdir(empty);
  assertExit(await kit("list.sh", [empty], { password: null }), 1, "list.sh no backups");
  assertExit(await kit("list.sh", [tmpPath("nope")], { password: null }), 1, "list.sh no dir");
});

// ---------------------------------------------------------------------------------------------
// An interrupted password change (FORMAT.md 7): either password opens every backup
// ---------------------------------------------------------------------------------------------

const OLD_PW = PASSWORD;
const NEW_PW = "the néw password";
const THIRD_PW = "neither old nor new";

interface PasswdFixture {
  repo: Repo;
  source: string;
  oldSource: string;
  /** Top-level metas, oldest first, with their entry counts. */
  counts: Map<string, number>;
  metaLatest: string;
  metaNoKey: string;
  /** The copies' options (password, wrapped-key) of putMeta for OLD_PW and NEW_PW. */
  oldOpts: { password: string; wrappedB64: string };
  newOpts: { password: string; wrappedB64: string };
}

/**
 * A repository caught in a password change from OLD_PW to NEW_PW, laid out as `s3backup passwd`
 * leaves it (FORMAT.md 7), by hand:
 * - "prepared": step (a) done. s3backup.key old, s3backup.key.next new; every meta M old, with
 *   passwd/next/M = M re-encrypted with the new password (its wrapped-key header the new key).
 * - "switched": step (b) done and cleanup begun (passwd/next/ already deleted). s3backup.key
 *   new, .next new, .prev old; every M new, with passwd/prev/M = the old M.
 * Plus: meta_nokey_* without a wrapped-key header (the key comes from s3backup.key, .next or
 * .prev), and a newer orphan passwd/next/meta_* that "latest" must not pick.
 */
async function passwdFixture(stage: "prepared" | "switched"): Promise<PasswdFixture> {
  const repo = await makeRepo(OLD_PW);
  const source = tmpPath("pw-source");
  await buildTree(source, [
    { type: "d", path: "dir", mode: 0o750, mtime: T0 + 100 },
    { type: "f", path: "dir/a.txt", mode: 0o644, mtime: T0 + 1, data: text("a\n") },
    { type: "f", path: "b with space.txt", mode: 0o600, mtime: T0 + 2, data: text("bee") },
    { type: "l", path: "link", target: "dir/a.txt", mtime: T0 + 3 },
  ]);
  const oldSource = tmpPath("pw-old-source");
  await buildTree(oldSource, [
    { type: "f", path: "old.txt", mode: 0o644, mtime: T0, data: text("older backup") },
  ]);
  const decoySource = tmpPath("pw-decoy-source");
  await buildTree(decoySource, [
    { type: "f", path: "decoy.txt", mode: 0o644, mtime: T0, data: text("not a backup") },
  ]);
  const lines = await entriesOf(repo, source);
  const oldLines = await entriesOf(repo, oldSource);
  const decoyLines = await entriesOf(repo, decoySource);
  const oldB64 = repo.wrappedB64;
  const newB64 = await wrapKey(repo.dataKey, NEW_PW, `${repo.dir}/s3backup.key.next`);
  if (stage === "switched") {
    await Deno.copyFile(`${repo.dir}/s3backup.key`, `${repo.dir}/s3backup.key.prev`);
    await Deno.copyFile(`${repo.dir}/s3backup.key.next`, `${repo.dir}/s3backup.key`);
  }
  const oldOpts = { password: OLD_PW, wrappedB64: oldB64 };
  const newOpts = { password: NEW_PW, wrappedB64: newB64 };
  // Top-level M with one password, the copy with the other.
  const [top, copy, dir] = stage === "prepared"
    ? [oldOpts, newOpts, "passwd/next"]
    : [newOpts, oldOpts, "passwd/prev"];
  const counts = new Map<string, number>();
  const both = async (name: string, ts: string, l: string[], noKey = false) => {
    const w = noKey ? { wrappedB64: null } : {};
    const m = await putMeta(repo, name, ts, l, { ...top, ...w });
    await putMeta(repo, name, ts, l, { ...copy, ...w, object: `${dir}/${m}` });
    counts.set(m, l.length);
    return m;
  };
  const metaNoKey = await both("nokey", "20230101T000000Z", oldLines, true);
  await both("nightly", "20240101T000000Z", oldLines);
  const metaLatest = await both("nightly", "20250601T120000Z", lines);
  // An orphan copy, newer than everything, under each password: never "latest", never listed.
  await putMeta(repo, "nightly", "20990101T000000Z", decoyLines, {
    ...newOpts,
    object: "passwd/next/meta_nightly_20990101T000000Z",
  });
  await putMeta(repo, "nightly", "20990101T000000Z", decoyLines, {
    ...oldOpts,
    object: "passwd/prev/meta_nightly_20990101T000000Z",
  });
  return { repo, source, oldSource, counts, metaLatest, metaNoKey, oldOpts, newOpts };
}

/**
 * Restores and lists `fx` with the old and the new password; a third one fails, writes nothing.
 * `brief`: not the meta without wrapped-key, nor the third password into an existing target.
 */
async function checkInterruptedChange(
  fx: PasswdFixture,
  stage: "prepared" | "switched",
  opts: { store?: string; path?: string; env?: Record<string, string>; brief?: boolean } = {},
): Promise<void> {
  const store = opts.store ?? fx.repo.dir;
  const runKit = (script: string, args: string[], password: string) =>
    kit(script, args, { path: opts.path, env: opts.env, password });
  // The password that needs the copies (the other opens the top-level metas), and where they are.
  const [copyPw, copyDir] = stage === "prepared"
    ? [NEW_PW, "passwd/next/"]
    : [OLD_PW, "passwd/prev/"];
  for (const pw of [OLD_PW, NEW_PW]) {
    const what = `${stage}, ${pw === OLD_PW ? "old" : "new"} password`;
    const t1 = tmpPath("pw-latest");
    const r1 = await runKit("restore.sh", [store, "latest", t1], pw);
    assertExit(r1, 0, `restore latest (${what})`);
    assert(r1.stderr.includes(`restoring ${fx.metaLatest} `), `${what}: ${r1.stderr}`);
    await assertSameTree(t1, fx.source);
    assertEquals(
      r1.stderr.includes(`reading its copy ${copyDir}${fx.metaLatest}`),
      pw === copyPw,
      `${what}: copy note: ${r1.stderr}`,
    );
    if (!opts.brief) {
      // No wrapped-key header: the key comes from s3backup.key or, failing that, .next / .prev.
      const t2 = tmpPath("pw-nokey");
      const r2 = await runKit("restore.sh", [store, fx.metaNoKey, t2], pw);
      assertExit(r2, 0, `restore a meta without wrapped-key (${what})`);
      await assertSameTree(t2, fx.oldSource);
    }
    const l = await runKit("list.sh", [store], pw);
    assertExit(l, 0, `list.sh (${what})`);
    const rows = l.stdout.trimEnd().split("\n").slice(1);
    assertEquals(rows.map((x) => x.split(/ +/)[0]), [...fx.counts.keys()], `${what}: rows`);
    for (const [m, n] of fx.counts) {
      const row = rows.find((x) => x.startsWith(m)) ?? "";
      assert(row.trimEnd().endsWith(` ${n}`), `${what}: count of ${m}: ${row}`);
    }
    assertEquals(/passwd\//.test(l.stderr), pw === copyPw, `${what}: list.sh note: ${l.stderr}`);
  }

  // A third password: exit 4, nothing written, whether the target exists or not.
  const t4 = tmpPath("pw-third");
  const r4 = await runKit("restore.sh", [store, "latest", t4], THIRD_PW);
  assertExit(r4, 4, `${stage}: restore with a third password`);
  assert(/wrong password/i.test(r4.stderr), r4.stderr);
  assert(!(await exists(t4)), `${stage}: target created with a third password`);
  const t5 = tmpPath("pw-third");
  await Deno.mkdir(t5);
  for (const spec of opts.brief ? [] : ["latest", fx.metaNoKey]) {
    assertExit(await runKit("restore.sh", [store, spec, t5], THIRD_PW), 4, `${stage}: ${spec}`);
    assertEquals(await readDirNames(t5), [], `${stage}: ${spec}: target written`);
  }
  assertExit(await runKit("list.sh", [store], THIRD_PW), 4, `${stage}: list.sh, third password`);
}

Deno.test("kit: interrupted password change, new metas + passwd/prev/: both passwords", async () => {
  const fx = await passwdFixture("switched");
  await checkInterruptedChange(fx, "switched", { path: await restrictedBin() });
  // M truncated (it does not check out under the new password): its copy under passwd/prev/
  // opens with the old one; with the new one, M's own error, exit 1, nothing written.
  const repo = await copyRepo(fx.repo);
  const lines = await entriesOf(repo, fx.source);
  const trunc = await putMeta(repo, "trunc", "20240601T000000Z", [...lines, ...lines], {
    ...fx.newOpts,
    trailer: 1,
  });
  await putMeta(repo, "trunc", "20240601T000000Z", lines, {
    ...fx.oldOpts,
    object: `passwd/prev/${trunc}`,
  });
  const t1 = tmpPath("pw-trunc");
  assertExit(await kit("restore.sh", [repo.dir, trunc, t1], { password: OLD_PW }), 0, "trunc old");
  await assertSameTree(t1, fx.source);
  const t2 = tmpPath("pw-trunc");
  const r2 = await kit("restore.sh", [repo.dir, trunc, t2], { password: NEW_PW });
  assertExit(r2, 1, "truncated meta, new password");
  assert(r2.stderr.includes(`${trunc}: truncated meta`), r2.stderr);
  assert(!(await exists(t2)), "target created for a truncated meta");
  // Without the copies, the old password opens nothing: exit 4, target untouched.
  await Deno.remove(`${repo.dir}/passwd`, { recursive: true });
  const t = tmpPath("pw-gone");
  const r = await kit("restore.sh", [repo.dir, "latest", t], { password: OLD_PW });
  assertExit(r, 4, "old password without passwd/prev/");
  assert(!(await exists(t)), "target created");
});

Deno.test("kit: interrupted password change, old metas + passwd/next/: both passwords", async () => {
  const fx = await passwdFixture("prepared");
  await checkInterruptedChange(fx, "prepared");
});

// ---------------------------------------------------------------------------------------------
// S3: every case on moto (S3BACKUP_TEST_S3_ENDPOINT) and, when scripts/test.sh starts it, on
// a Ceph RGW (S3BACKUP_TEST_CEPH_*), through AWS CLI v1 and v2
// ---------------------------------------------------------------------------------------------

/** An S3 server the kit cases run against, with its own credentials. */
interface KitS3 {
  label: string;
  endpoint: string;
  keyId: string;
  secret: string;
}

function kitTargets(): KitS3[] {
  const env = (k: string) => Deno.env.get(k) ?? "";
  const out: KitS3[] = [{
    label: "moto",
    endpoint: env("S3BACKUP_TEST_S3_ENDPOINT"),
    keyId: "test",
    secret: "test",
  }];
  if (env("S3BACKUP_TEST_CEPH_ENDPOINT")) {
    out.push({
      label: "ceph",
      endpoint: env("S3BACKUP_TEST_CEPH_ENDPOINT"),
      keyId: env("S3BACKUP_TEST_CEPH_ACCESS_KEY_ID"),
      secret: env("S3BACKUP_TEST_CEPH_SECRET_ACCESS_KEY"),
    });
  }
  return out;
}

function s3Env(t: KitS3): Record<string, string> {
  const env = Deno.env.toObject();
  env.AWS_ACCESS_KEY_ID = t.keyId;
  env.AWS_SECRET_ACCESS_KEY = t.secret;
  delete env.AWS_SESSION_TOKEN;
  delete env.AWS_CA_BUNDLE;
  delete env.AWS_ENDPOINT_URL;
  delete env.AWS_ENDPOINT_URL_S3;
  delete env.S3BACKUP_PASSWORD;
  env.AWS_PAGER = "";
  env.AWS_REQUEST_CHECKSUM_CALCULATION = "when_required";
  env.AWS_RESPONSE_CHECKSUM_VALIDATION = "when_required";
  env.AWS_DEFAULT_REGION ??= "us-east-1";
  return env;
}

/** The AWS CLI v1 (pyenv) program path, resolved through pyenv's shim. */
async function awsV1(): Promise<string> {
  const p = await run("pyenv", ["which", "aws"]).catch(() => undefined);
  if (p && p.code === 0 && p.stdout.trim()) return p.stdout.trim();
  return await which("aws");
}

/**
 * The AWS CLI v2: Debian's package puts it in /usr/bin, its installer (GitHub's runners) in
 * /usr/local/bin. Looked up when an S3 case first needs it, not when the module loads.
 */
let awsV2Path: string | undefined;
function awsV2(): string {
  awsV2Path ??= ["/usr/local/bin/aws", "/usr/bin/aws"].find((p) => {
    try {
      const out = new Deno.Command(p, { args: ["--version"], stdout: "piped", stderr: "piped" })
        .outputSync();
      return /aws-cli\/2\./.test(dec.decode(out.stdout) + dec.decode(out.stderr));
    } catch {
      return false;
    }
  }) ?? "/usr/bin/aws";
  return awsV2Path;
}

async function aws(t: KitS3, awsBin: string, args: string[]): Promise<RunResult> {
  const r = await run(awsBin, ["--endpoint-url", t.endpoint, ...args], {
    env: s3Env(t),
    clearEnv: true,
  });
  if (r.code !== 0) fail(`aws ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r;
}

/** A fresh bucket holding the fixture repository under PREFIX, plus keys readers ignore. */
async function s3Fixture(t: KitS3, awsBin: string, prefix: string): Promise<string> {
  const fx = await fixture();
  const upload = tmpPath("upload");
  await runOk("cp", ["-a", "--", fx.repo.dir, upload]);
  await Deno.mkdir(`${upload}/restore-kit`);
  await Deno.writeTextFile(`${upload}/restore-kit/README.md`, "not a meta");
  await Deno.mkdir(`${upload}/locks`);
  await Deno.writeTextFile(`${upload}/locks/meta_x_20990101T000000Z`, "not a meta");
  const bucket = `kit-${randomHex(6)}`;
  await aws(t, awsBin, ["s3api", "create-bucket", "--bucket", bucket]);
  const dest = prefix ? `s3://${bucket}/${prefix}/` : `s3://${bucket}/`;
  await aws(t, awsBin, ["s3", "cp", "--recursive", "--only-show-errors", upload, dest]);
  return bucket;
}

function s3Test(name: string, fn: (t: KitS3) => Promise<void>): void {
  for (const t of kitTargets()) {
    Deno.test({
      name: `${name} [${t.label}]`,
      ignore: !t.endpoint && NO_S3,
      fn: async () => {
        if (!t.endpoint) {
          fail(
            "S3BACKUP_TEST_S3_ENDPOINT is not set: run the suite via `bash scripts/test.sh` " +
              "(which provides an S3 endpoint), or set S3BACKUP_TEST_NO_S3=1 to skip the S3 cases",
          );
        }
        await fn(t);
      },
    });
  }
}

/** What the kit is given to reach the server: its credentials alone. */
function s3KitEnv(t: KitS3): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: t.keyId, AWS_SECRET_ACCESS_KEY: t.secret };
}

s3Test("kit: S3 restore with AWS CLI v1, prefix, kit.conf endpoint, small batches", async (t) => {
  const fx = await fixture();
  const v1 = await awsV1();
  const ver = await run(v1, ["--version"], { env: s3Env(t), clearEnv: true });
  assert(
    /aws-cli\/1\./.test(ver.stdout + ver.stderr),
    `not AWS CLI v1: ${v1}: ${ver.stdout}${ver.stderr}`,
  );
  const bucket = await s3Fixture(t, v1, "backups/host1");
  // A copy of the kit with a kit.conf, as the tool writes it.
  const kitDir = tmpPath("kit") + "/";
  await Deno.mkdir(kitDir);
  for (const f of ["restore.sh", "list.sh", "common.sh"]) {
    await Deno.copyFile(`${KIT_DIR}${f}`, `${kitDir}${f}`);
    await Deno.chmod(`${kitDir}${f}`, 0o755);
  }
  await Deno.writeTextFile(
    `${kitDir}kit.conf`,
    `# written by s3backup\nendpoint_url=${t.endpoint}\nregion=us-east-1\n`,
  );
  const bin = await restrictedBin({ aws: v1 });
  const store = `s3://${bucket}/backups/host1/`;
  const target = tmpPath("s3v1");
  const r = await kit("restore.sh", [store, "latest", target], {
    path: bin,
    kitDir,
    // More objects than a batch: 16 batches by first hex digit, each downloaded while the
    // one before is restored; small chunks and 3 workers: several waves of them.
    env: {
      ...s3KitEnv(t),
      S3BACKUP_KIT_BATCH: "12",
      S3BACKUP_KIT_CHUNK: "2",
      S3BACKUP_KIT_JOBS: "3",
    },
  });
  assertExit(r, 0, "restore.sh from S3 with AWS CLI v1");
  assert(!/failed|warn/.test(r.stderr.replace(/, 0 failed$/m, "")), r.stderr);
  await assertSameTree(target, fx.source);
  const l = await kit("list.sh", [store], { path: bin, kitDir, env: s3KitEnv(t), password: null });
  assertExit(l, 0, "list.sh S3 v1");
  assertEquals(
    l.stdout.trimEnd().split("\n").slice(1).map((x) => x.split(/ +/)[0]),
    [fx.metaOld, fx.metaOther, fx.metaLatest],
  );
  // With the password each meta is opened, the next one fetched meanwhile (list.sh next_meta):
  // the rows of the local listing of the same repository, entry counts and all.
  const lp = await kit("list.sh", [store], { path: bin, kitDir, env: s3KitEnv(t) });
  assertExit(lp, 0, "list.sh S3 v1, with the password");
  const local = await kit("list.sh", [fx.repo.dir], { path: bin });
  assertExit(local, 0, "list.sh of the local repository, with the password");
  assertEquals(lp.stdout, local.stdout);
  assert(/ENTRIES/.test(lp.stdout) && !/\?/.test(lp.stdout), lp.stdout);
});

s3Test(
  "kit: S3 restore with AWS CLI v2, bucket root, --endpoint-url, missing object",
  async (t) => {
    const fx = await fixture();
    const ver = await run(awsV2(), ["--version"], { env: s3Env(t), clearEnv: true });
    assert(
      /aws-cli\/2\./.test(ver.stdout + ver.stderr),
      `not AWS CLI v2: ${ver.stdout}${ver.stderr}`,
    );
    const bucket = await s3Fixture(t, awsV2(), "");
    const bin = await restrictedBin({ aws: awsV2() });
    const env = { ...s3KitEnv(t), AWS_DEFAULT_REGION: "us-east-1" };
    const store = `s3://${bucket}`;
    const target = tmpPath("s3v2");
    const r = await kit("restore.sh", ["--endpoint-url", t.endpoint, store, "latest", target], {
      path: bin,
      env,
    });
    assertExit(r, 0, "restore.sh from S3 with AWS CLI v2");
    await assertSameTree(target, fx.source);

    const l = await kit("list.sh", ["--endpoint-url", t.endpoint, store], { path: bin, env });
    assertExit(l, 0, "list.sh S3 v2");
    for (const [m, n] of fx.counts) {
      const row = l.stdout.split("\n").find((x) => x.startsWith(m)) ?? "";
      assert(row.trimEnd().endsWith(` ${n}`), `count of ${m}: ${row}`);
    }

    // The endpoint from AWS_ENDPOINT_URL; one object deleted: reported, exit 3.
    await aws(t, awsV2(), ["s3", "rm", `s3://${bucket}/${md5hex(text("hello"))}`]);
    const t2 = tmpPath("s3v2-missing");
    const r2 = await kit("restore.sh", [
      "--only",
      "dir with trailing space ",
      "--only",
      "empty.txt",
      store,
      "nightly",
      t2,
    ], { path: bin, env: { ...env, AWS_ENDPOINT_URL: t.endpoint } });
    assertExit(r2, 3, "restore.sh with a missing object");
    assert(
      r2.stderr.includes("restore.sh: dir with trailing space /line\\nbreak: missing object"),
      r2.stderr,
    );
    assertEquals(await readDirNames(t2), ["dir with trailing space ", "empty.txt"]);
    assertEquals(await readDirNames(`${t2}/dir with trailing space `), ["dup2.txt"]);
  },
);

s3Test(
  "kit: S3, interrupted password change: both passwords, passwd/ not listed",
  async (t) => {
    const fx = await passwdFixture("switched");
    const bucket = `kit-${randomHex(6)}`;
    await aws(t, awsV2(), ["s3api", "create-bucket", "--bucket", bucket]);
    await aws(t, awsV2(), [
      "s3",
      "cp",
      "--recursive",
      "--only-show-errors",
      fx.repo.dir,
      `s3://${bucket}/pfx/`,
    ]);
    await checkInterruptedChange(fx, "switched", {
      store: `s3://${bucket}/pfx`,
      path: await restrictedBin({ aws: awsV2() }),
      env: { ...s3KitEnv(t), AWS_DEFAULT_REGION: "us-east-1", AWS_ENDPOINT_URL: t.endpoint },
      brief: true,
    });
  },
);
