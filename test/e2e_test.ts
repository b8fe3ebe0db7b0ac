/**
 * End to end, the user's story: the s3backup program backs up a nasty tree into a bucket (a
 * local directory, and S3 over HTTP: moto, and Ceph RGW in CI); the restore kit, fetched from
 * the bucket and run with only bash, coreutils, aws and openssl on PATH, restores it
 * identically, with AWS CLI v1 and v2.
 */
import { RUN_FLAGS } from "../scripts/permissions.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { makeNastyTree, NASTY_NAMES, SECRET_MARKER, snapshot, unlock } from "./tree.ts";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import {
  childEnv,
  makeBucket,
  removeBucket,
  type S3Target,
  s3Targets,
  targetClient,
} from "./s3_env.ts";

const MAIN = new URL("../src/main.ts", import.meta.url).pathname;
const PASSWORD = "correct horse battery staple";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function exec(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  cwd?: string,
): Promise<Run> {
  const out = await new Deno.Command(cmd, {
    signal: AbortSignal.timeout(300_000), // a deadline: a hung child fails the test
    args,
    env,
    clearEnv: true,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const td = new TextDecoder();
  return { code: out.code, stdout: td.decode(out.stdout), stderr: td.decode(out.stderr) };
}

/** Runs the s3backup program (as `deno run`, the code the binary is compiled from). */
function s3backup(args: string[], env: Record<string, string>, cwd: string): Promise<Run> {
  return exec(Deno.execPath(), ["run", ...RUN_FLAGS, "--quiet", MAIN, ...args], env, cwd);
}

/**
 * A bin directory holding only bash, the coreutils programs, openssl, tar and gzip (format 3)
 * and `aws` (if given).
 */
function restrictedBin(dir: string, aws?: string): string {
  const bin = `${dir}/bin`;
  Deno.mkdirSync(bin);
  const list = new TextDecoder().decode(
    new Deno.Command("dpkg", { args: ["-L", "coreutils"], stdout: "piped" }).outputSync().stdout,
  );
  const progs = list.split("\n").filter((p) => /\/s?bin\/[^/]+$/.test(p));
  for (const p of [...progs, "/usr/bin/bash", "/usr/bin/openssl", "/bin/tar", "/bin/gzip"]) {
    const name = p.split("/").pop()!;
    try {
      Deno.symlinkSync(p, `${bin}/${name}`);
    } catch {
      // listed twice (/bin and /usr/bin)
    }
  }
  if (aws) Deno.symlinkSync(aws, `${bin}/aws`);
  return bin;
}

function awsV1(): string {
  const out = new Deno.Command("bash", {
    signal: AbortSignal.timeout(300_000), // a deadline: a hung child fails the test
    args: ["-c", "pyenv which aws 2>/dev/null || command -v aws"],
    stdout: "piped",
  }).outputSync();
  return new TextDecoder().decode(out.stdout).trim();
}

const AWS_V2 = "/usr/bin/aws";

function storeObjects(dir: string): string[] {
  const out: string[] = [];
  const visit = (abs: string, rel: string) => {
    for (const e of Deno.readDirSync(abs)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) visit(`${abs}/${e.name}`, r);
      else out.push(r);
    }
  };
  visit(dir, "");
  return out.sort();
}

/** The objects holding contents (format 3: packs and data/ objects). */
const dataObjects = (names: string[]) =>
  names.filter((n) => /^(packs\/[0-9a-f]{32}|data\/[0-9a-f]{32}(\.gz)?)$/.test(n));
const metas = (names: string[]) => names.filter((n) => n.startsWith("meta_"));

function assertNoPlaintext(name: string, data: Uint8Array) {
  const hay = new TextDecoder("latin1").decode(data);
  assert.ok(!hay.includes(SECRET_MARKER), `${name} holds file content in plaintext`);
  for (const n of NASTY_NAMES) {
    if (n.length < 6 || n.startsWith("-")) continue;
    // names as UTF-8 bytes, viewed as latin1 like the haystack
    const needle = new TextDecoder("latin1").decode(new TextEncoder().encode(n));
    assert.ok(!hay.includes(needle), `${name} holds the file name ${JSON.stringify(n)}`);
  }
}

interface Fixture {
  dir: string;
  src: string;
  cwd: string;
  env: Record<string, string>;
}

function fixture(): Fixture {
  const dir = Deno.makeTempDirSync({ prefix: "s3backup-e2e-" });
  const src = `${dir}/src`;
  const cwd = `${dir}/cwd`;
  Deno.mkdirSync(src);
  Deno.mkdirSync(cwd);
  makeNastyTree(src);
  return { dir, src, cwd, env: childEnv({ S3BACKUP_PASSWORD: PASSWORD }) };
}

function cleanup(f: Fixture) {
  unlock(f.dir);
  Deno.removeSync(f.dir, { recursive: true });
}

/** Restores with the kit under a PATH of bash, coreutils, openssl (and aws) only. */
async function kitRestore(
  kitDir: string,
  args: string[],
  env: Record<string, string>,
  bin: string,
): Promise<Run> {
  return await exec(`${bin}/bash`, [`${kitDir}/restore.sh`, ...args], {
    ...env,
    PATH: bin,
    HOME: env.HOME ?? "/tmp",
  });
}

Deno.test("local store: backup, kit restore with only bash/coreutils/openssl/tar/gzip, dedup, wrong password", async () => {
  const f = fixture();
  try {
    const bucket = `${f.dir}/bucket`;
    Deno.mkdirSync(bucket);
    const before = snapshot(f.src);

    const r1 = await s3backup(
      ["-f", f.src, "-b", bucket, "-a", "backup", "-c", "-n", "nightly"],
      f.env,
      f.cwd,
    );
    assert.equal(r1.code, 0, r1.stderr);
    assert.match(r1.stdout, /^backup meta_nightly_\d{8}T\d{6}Z: \d+ files/m);
    assert.deepEqual(snapshot(f.src), before, "the source folder was changed");

    const objs1 = storeObjects(bucket);
    for (const name of objs1) assertNoPlaintext(name, Deno.readFileSync(`${bucket}/${name}`));
    // every distinct content is stored once (stats counts them from the metas)
    const distinct = new Set(before.filter((e) => e.type === "f").map((e) => e.md5));
    const st = await s3backup(["stats", "-b", bucket, "--json"], f.env, f.cwd);
    assert.equal(JSON.parse(st.stdout).contents, distinct.size, st.stderr);
    assert.ok(dataObjects(objs1).length >= 1);

    // The kit, as kept in the bucket, restores with bash, coreutils and openssl only.
    const bin = restrictedBin(f.dir);
    const target = `${f.dir}/restored`;
    const kr = await kitRestore(`${bucket}/restore-kit`, [bucket, "latest", target], f.env, bin);
    assert.equal(kr.code, 0, kr.stderr);
    assert.deepEqual(snapshot(target), before);

    // A second backup of the unchanged tree uploads no data object.
    const r2 = await s3backup(
      ["backup", "-f", f.src, "-b", bucket, "-c", "-n", "nightly"],
      f.env,
      f.cwd,
    );
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stdout, / 0 new objects, 0 B uploaded/);
    const objs2 = storeObjects(bucket);
    assert.deepEqual(dataObjects(objs2), dataObjects(objs1));
    assert.equal(metas(objs2).length, 2);

    // One changed file uploads exactly one object.
    Deno.writeTextFileSync(`${f.src}/private`, `${SECRET_MARKER} changed\n`);
    const r3 = await s3backup(
      ["backup", "-f", f.src, "-b", bucket, "-c", "-n", "nightly"],
      f.env,
      f.cwd,
    );
    assert.equal(r3.code, 0, r3.stderr);
    assert.match(r3.stdout, / 1 new object,/);
    assert.equal(dataObjects(storeObjects(bucket)).length, dataObjects(objs1).length + 1);

    // Wrong password: clear error, exit 4, nothing written to the store or the target.
    const snapStore = storeObjects(bucket);
    const bad = { ...f.env, S3BACKUP_PASSWORD: "wrong" };
    const w1 = await s3backup(["backup", "-f", f.src, "-b", bucket, "-c"], bad, f.cwd);
    assert.equal(w1.code, 4);
    assert.equal(
      w1.stderr.trim(),
      "s3backup: Wrong password: it does not open this repository's key (s3backup.key)",
    );
    assert.deepEqual(storeObjects(bucket), snapStore);
    const wt = `${f.dir}/wrong-target`;
    const w2 = await kitRestore(`${bucket}/restore-kit`, [bucket, "latest", wt], bad, bin);
    assert.notEqual(w2.code, 0);
    assert.match(w2.stderr, /password/i);
    assert.throws(() => Deno.lstatSync(wt), Deno.errors.NotFound);

    // list: every backup, with the password also the file counts
    const l = await s3backup(["-a", "list", "-b", bucket], f.env, f.cwd);
    assert.equal(l.code, 0, l.stderr);
    const lines = l.stdout.trim().split("\n");
    assert.equal(lines.length, 3);
    // meta, name, time, host, folder, files, dirs, links, bytes
    assert.match(
      lines[0]!,
      /^meta_nightly_\S+\tnightly\t\d{4}-\d\d-\d\dT\S+Z\t[^\t]+\t\/[^\t]+\t\d+\t\d+\t\d+\t\d+$/,
    );
  } finally {
    cleanup(f);
  }
});

Deno.test("local store: the kit restores format 3 with bsdtar (macOS's tar) as tar, and with --only", async () => {
  const f = fixture();
  try {
    const bucket = `${f.dir}/bucket`;
    Deno.mkdirSync(bucket);
    // Incompressible contents, 150 KiB of them: whole gzip members of stored blocks and fixed
    // Huffman codes (format/dense_gzip.ts), which bsdtar's zlib reads as GNU gzip does.
    Deno.mkdirSync(`${f.src}/dense`);
    for (let i = 0; i < 100; i++) {
      Deno.writeFileSync(`${f.src}/dense/r${i}`, crypto.getRandomValues(new Uint8Array(1536)));
    }
    const before = snapshot(f.src);
    const r = await s3backup(["backup", "-f", f.src, "-b", bucket, "-c"], f.env, f.cwd);
    assert.equal(r.code, 0, r.stderr);
    const bin = restrictedBin(f.dir);
    Deno.removeSync(`${bin}/tar`);
    Deno.symlinkSync("/usr/bin/bsdtar", `${bin}/tar`);
    const target = `${f.dir}/restored`;
    const kr = await kitRestore(`${bucket}/restore-kit`, [bucket, "latest", target], f.env, bin);
    assert.equal(kr.code, 0, kr.stderr);
    assert.deepEqual(snapshot(target), before);
    // --only one file: its pack fetched (a local store: read in place) and only it written.
    const one = before.find((e) => e.path === "script.sh")!;
    const only = `${f.dir}/only`;
    const ko = await kitRestore(
      `${bucket}/restore-kit`,
      ["--only", one.path, bucket, "latest", only],
      f.env,
      bin,
    );
    assert.equal(ko.code, 0, ko.stderr);
    assert.deepEqual(snapshot(only).filter((e) => e.type === "f").map((e) => e.path), [one.path]);
  } finally {
    cleanup(f);
  }
});

Deno.test("usage errors, missing bucket and empty lists have documented exit codes", async () => {
  const f = fixture();
  try {
    const r = await s3backup(["-f", f.src, "-a", "backup"], f.env, f.cwd);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      "s3backup: backup needs -b <bucket> (or S3BACKUP_REPOSITORY, or [main] bucket in " +
        "s3backup.ini; see s3backup backup --help)\n",
    );
    const m = await s3backup(
      ["-f", f.src, "-b", `${f.dir}/nope`, "-a", "backup", "-c"],
      f.env,
      f.cwd,
    );
    assert.equal(m.code, 5);
    assert.equal(m.stderr.split("\n").length, 2, m.stderr);
    const empty = `${f.dir}/empty-bucket`;
    Deno.mkdirSync(empty);
    const l = await s3backup(["list", "-b", empty], f.env, f.cwd);
    assert.equal(l.code, 0, l.stderr);
    assert.equal(l.stdout, "");
    const noPw = await s3backup(["backup", "-f", f.src, "-b", empty, "-c"], childEnv(), f.cwd);
    assert.equal(noPw.code, 2);
    assert.match(noPw.stderr, /^s3backup: No password: /);
    assert.deepEqual(storeObjects(empty), []);
  } finally {
    cleanup(f);
  }
});

Deno.test("simulate (-s) reads and reports but writes nothing anywhere", async () => {
  const f = fixture();
  try {
    const bucket = `${f.dir}/bucket`;
    Deno.mkdirSync(bucket);
    const s = await s3backup(["-f", f.src, "-b", bucket, "-a", "backup", "-s", "-c"], f.env, f.cwd);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /^would upload: big\.bin /m);
    assert.match(s.stdout, /simulated backup \(nothing written\)/);
    assert.deepEqual(storeObjects(bucket), []);
  } finally {
    cleanup(f);
  }
});

for (const target of s3Targets()) {
  Deno.test({
    name:
      `S3 (${target.label}): backup, then the kit from the bucket restores with AWS CLI v1 and v2`,
    ignore: false,
    fn: async () => {
      await s3RoundTrip(target);
    },
  });
}

async function s3RoundTrip(target: S3Target) {
  const f = fixture();
  const { bucket, env: s3env } = await makeBucket(target);
  try {
    const env = { ...f.env, ...s3env };
    const url = `s3://${bucket}/backups/host1`;
    const r1 = await s3backup(["-f", f.src, "-b", url, "-a", "backup", "-c"], env, f.cwd);
    assert.equal(r1.code, 0, r1.stderr);
    const r2 = await s3backup(["-f", f.src, "-b", url, "-a", "backup", "-c"], env, f.cwd);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stdout, / 0 new objects, 0 B uploaded/);

    const expected = snapshot(f.src);
    for (const [label, aws] of [["v1", awsV1()], ["v2", AWS_V2]] as const) {
      const work = `${f.dir}/${label}`;
      Deno.mkdirSync(work);
      const bin = restrictedBin(work, aws);
      const version = await exec(`${bin}/aws`, ["--version"], { ...env, PATH: bin });
      assert.match(
        version.stdout + version.stderr,
        label === "v1" ? /aws-cli\/1\./ : /aws-cli\/2\./,
      );
      // Fetch the kit from the bucket with the aws CLI, as a user would.
      const kitDir = `${work}/kit`;
      const get = await exec(`${bin}/aws`, [
        "s3",
        "cp",
        "--recursive",
        "--only-show-errors",
        "--endpoint-url",
        target.endpoint,
        `s3://${bucket}/backups/host1/restore-kit/`,
        kitDir,
      ], { ...env, PATH: bin });
      assert.equal(get.code, 0, get.stderr);
      // No object in the bucket holds plaintext content or names.
      const dump = `${work}/dump`;
      const all = await exec(`${bin}/aws`, [
        "s3",
        "cp",
        "--recursive",
        "--only-show-errors",
        "--endpoint-url",
        target.endpoint,
        `s3://${bucket}/`,
        dump,
      ], { ...env, PATH: bin });
      assert.equal(all.code, 0, all.stderr);
      for (const name of storeObjects(dump)) {
        assertNoPlaintext(name, Deno.readFileSync(`${dump}/${name}`));
      }
      const restoreTarget = `${work}/restored`;
      const kr = await kitRestore(kitDir, [url, "latest", restoreTarget], env, bin);
      assert.equal(kr.code, 0, kr.stderr);
      assert.deepEqual(snapshot(restoreTarget), expected);
      // the md5 of the big file, once more, by hand
      const big = Deno.readFileSync(`${restoreTarget}/big.bin`);
      assert.equal(
        createHash("md5").update(big).digest("hex"),
        expected.find((e) => e.path === "big.bin")!.md5,
      );
    }
  } finally {
    cleanup(f);
    await removeBucket(target, bucket);
  }
}

Deno.test("the password never shows in output; `kit -o` writes a kit without secrets", async () => {
  const f = fixture();
  try {
    const bucket = `${f.dir}/bucket`;
    Deno.mkdirSync(bucket);
    const pwFile = `${f.dir}/pw`;
    Deno.writeTextFileSync(pwFile, `${PASSWORD}\n`);
    const env = childEnv();
    const b = await s3backup(
      ["backup", "-f", f.src, "-b", bucket, "--password-file", pwFile, "-n", "x"],
      env,
      f.cwd,
    );
    assert.equal(b.code, 0, b.stderr);
    const l = await s3backup(["list", "-b", bucket, "--password-file", pwFile], env, f.cwd);
    assert.equal(l.code, 0, l.stderr);
    const kitDir = `${f.dir}/kit`;
    const k = await s3backup(["kit", "-o", kitDir, "-b", "s3://some-bucket/pre/fix"], {
      ...env,
      AWS_ENDPOINT_URL: "http://127.0.0.1:1",
    }, f.cwd);
    assert.equal(k.code, 0, k.stderr);
    for (const out of [b, l, k]) {
      assert.ok(!(out.stdout + out.stderr).includes(PASSWORD));
    }
    // Every object the backup wrote (it knew the password), the kit it keeps there included.
    const objects = storeObjects(bucket);
    assert.ok(objects.some((n) => n.startsWith("restore-kit/")), objects.join());
    const needle = new TextEncoder().encode(PASSWORD);
    for (const name of objects) {
      const data = Deno.readFileSync(`${bucket}/${name}`);
      const at = data.findIndex((_, i) => needle.every((c, j) => data[i + j] === c));
      assert.equal(at, -1, `${name} holds the password`);
    }
    const conf = Deno.readTextFileSync(`${kitDir}/kit.conf`);
    assert.match(conf, /^store=s3:\/\/some-bucket\/pre\/fix$/m);
    assert.match(conf, /^endpoint_url=http:\/\/127\.0\.0\.1:1$/m);
    for (const name of ["restore.sh", "list.sh", "common.sh", "README.md", "kit.conf"]) {
      const text = Deno.readTextFileSync(`${kitDir}/${name}`);
      assert.ok(!text.includes(PASSWORD), name);
      if (name.endsWith(".sh")) {
        assert.equal(Deno.statSync(`${kitDir}/${name}`).mode! & 0o777, 0o755);
      }
    }
  } finally {
    cleanup(f);
  }
});

Deno.test("a backup killed midway records nothing; the next run completes and restores", async () => {
  const f = fixture();
  try {
    const bucket = `${f.dir}/bucket`;
    Deno.mkdirSync(bucket);
    // Enough data that the first object lands well before the end.
    for (let i = 0; i < 6; i++) {
      Deno.writeFileSync(`${f.src}/bulk-${i}.bin`, new Uint8Array(16 * 1024 * 1024).fill(i + 1));
    }
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...RUN_FLAGS, "--quiet", MAIN, "backup", "-f", f.src, "-b", bucket, "-c"],
      env: f.env,
      clearEnv: true,
      cwd: f.cwd,
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 60_000;
    while (dataObjects(storeObjects(bucket)).length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGKILL");
    const st = await child.status;
    assert.equal(st.signal, "SIGKILL", "the backup finished before it could be killed");
    assert.deepEqual(metas(storeObjects(bucket)), [], "a killed backup left a meta");

    const r = await s3backup(["backup", "-f", f.src, "-b", bucket, "-c"], f.env, f.cwd);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(metas(storeObjects(bucket)).length, 1);
    const bin = restrictedBin(f.dir);
    const target = `${f.dir}/restored`;
    const kr = await kitRestore(`${bucket}/restore-kit`, [bucket, "latest", target], f.env, bin);
    assert.equal(kr.code, 0, kr.stderr);
    assert.deepEqual(snapshot(target), snapshot(f.src));
  } finally {
    cleanup(f);
  }
});

// moto only: a Ceph RGW knows only the storage classes its zonegroup placement defines
// (STANDARD by default), so STANDARD_IA is refused there by design.
for (const target of s3Targets().filter((t) => t.label === "moto")) {
  Deno.test(`S3 (${target.label}): [s3] storage_class applies to data objects only`, async () => {
    const f = fixture();
    const { bucket, env: s3env } = await makeBucket(target);
    try {
      Deno.writeTextFileSync(`${f.cwd}/s3backup.ini`, "[s3]\nstorage_class = STANDARD_IA\n");
      const small = `${f.dir}/small`;
      Deno.mkdirSync(small);
      Deno.writeTextFileSync(`${small}/a`, "a\n");
      Deno.writeTextFileSync(`${small}/b`, "b\n");
      const env = { ...f.env, ...s3env };
      const r = await s3backup(["backup", "-f", small, "-b", bucket, "-c"], env, f.cwd);
      assert.equal(r.code, 0, r.stderr);
      const bad = await s3backup(
        ["backup", "-f", small, "-b", bucket, "-c", "--storage-class", "cold please"],
        env,
        f.cwd,
      );
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /^s3backup: Invalid storage class "cold please" in --storage-class/);
      const client = targetClient(target);
      try {
        const out = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
        const classes = new Map((out.Contents ?? []).map((o) => [o.Key!, o.StorageClass]));
        const data = dataObjects([...classes.keys()]);
        assert.equal(data.length, 1, "a and b in one pack");
        assert.ok([...classes.keys()].some((k) => k.startsWith("index/")), "the index: STANDARD");
        for (const k of data) assert.equal(classes.get(k), "STANDARD_IA", k);
        for (const [k, c] of classes) {
          if (!data.includes(k)) assert.equal(c, "STANDARD", k);
        }
      } finally {
        client.destroy();
      }
    } finally {
      cleanup(f);
      await removeBucket(target, bucket);
    }
  });
}
