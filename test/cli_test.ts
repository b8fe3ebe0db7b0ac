/**
 * Claims of the README checked through the real program (local repositories, no S3 needed):
 * exit codes that only show at the command line, where settings come from, and what both
 * readers do with an unknown format or a lost descriptor.
 */
import assert from "node:assert/strict";
import { formatLockName } from "../src/format/layout.ts";
import { formatLock } from "../src/format/lock_file.ts";
import { acquireLock } from "../src/repo/lock.ts";
import { TargetDirs } from "../src/ops/restore/target.ts";
import { LocalStore } from "../src/store/local_store.ts";
import { ExitCode } from "../src/util/errors.ts";
import { PASSWORD, s3backup, s3backupArgv, start, until } from "./faults/harness.ts";
import { runKit } from "./kit_runner.ts";
import { childEnv } from "./s3_env.ts";

async function withRepo(fn: (f: { dir: string; src: string; repo: string }) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-cli-" });
  const src = `${dir}/src`, repo = `${dir}/repo`;
  await Deno.mkdir(src);
  await Deno.mkdir(repo);
  await Deno.writeTextFile(`${src}/a.txt`, "A");
  try {
    const b = await s3backup(["backup", "-f", src, "-b", repo, "-n", "n", "-c"]);
    assert.equal(b.code, 0, b.stderr);
    await fn({ dir, src, repo });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const kit = (script: string, args: string[], env: Record<string, string> = {}) =>
  runKit(script, args, PASSWORD, env);

Deno.test("cli: prune beside a running backup removes no data and exits 3", () =>
  withRepo(async ({ repo }) => {
    const lock = await acquireLock(new LocalStore(repo), "backup", "elsewhere");
    try {
      const p = await s3backup(["prune", "-b", repo, "--keep-last", "1", "-c"]);
      assert.equal(p.code, 3, p.stdout + p.stderr);
      assert.match(p.stdout, /no data object removed \(a backup is running\)/);
    } finally {
      await lock.release();
    }
  }));

Deno.test("cli: a backup that could not read everything exits 3 and says what", () =>
  withRepo(async ({ src, repo }) => {
    const mk = new Deno.Command("bash", { args: ["-c", `: > "$1/"$'bad\\xffname'`, "_", src] })
      .outputSync();
    assert.equal(mk.code, 0);
    const b = await s3backup(["backup", "-f", src, "-b", repo, "-n", "n", "-c"]);
    assert.equal(b.code, 3, b.stderr);
    assert.match(b.stderr, /not valid UTF-8/);
    assert.match(b.stdout, /1 skipped/);
  }));

Deno.test("cli: an unknown format is refused by both readers; a lost s3backup.conf is not", () =>
  withRepo(async ({ dir, repo }) => {
    const conf = `${repo}/s3backup.conf`;
    const original = await Deno.readTextFile(conf);
    await Deno.writeTextFile(conf, original.replace(/format=\d+/, "format=99"));
    const r = await s3backup(["restore", "-b", repo, "-m", "latest", "-f", `${dir}/o1`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Repository format 99 is not supported by this version/);
    const k = await kit("restore.sh", [repo, "latest", `${dir}/k1`]);
    assert.notEqual(k.code, 0, k.stderr);
    assert.match(k.stderr, /format/);
    await Deno.remove(conf);
    const r2 = await s3backup(["restore", "-b", repo, "-m", "latest", "-f", `${dir}/o2`, "-c"]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(await Deno.readTextFile(`${dir}/o2/a.txt`), "A");
    const k2 = await kit("restore.sh", [repo, "latest", `${dir}/k2`]);
    assert.equal(k2.code, 0, k2.stderr);
    assert.equal(await Deno.readTextFile(`${dir}/k2/a.txt`), "A");
  }));

Deno.test("cli: the password comes from --password-file, then S3BACKUP_PASSWORD, then the ini", () =>
  withRepo(async ({ dir, repo }) => {
    const cwd = `${dir}/work`;
    await Deno.mkdir(cwd);
    const right = `${dir}/right`, wrong = `${dir}/wrong`;
    await Deno.writeTextFile(right, `${PASSWORD}\n`);
    await Deno.writeTextFile(wrong, "wrong\n");
    const list = (env: Record<string, string>, extra: string[] = []) =>
      s3backup(["verify", "-b", repo, ...extra], { env, cwd });
    const ini = (pw: string) =>
      Deno.writeTextFile(`${cwd}/s3backup.ini`, `[main]\npassword = ${pw}\n`, { mode: 0o600 });
    await ini("wrong");
    assert.equal((await list({ S3BACKUP_PASSWORD: PASSWORD })).code, 0, "env before ini");
    assert.equal((await list({ S3BACKUP_PASSWORD: "wrong" }, ["--password-file", right])).code, 0);
    assert.equal((await list({ S3BACKUP_PASSWORD: PASSWORD }, ["--password-file", wrong])).code, 4);
    await ini(PASSWORD);
    assert.equal((await list({ S3BACKUP_PASSWORD: "" })).code, 0, "the ini when nothing else");
    assert.equal((await list({ S3BACKUP_PASSWORD: "wrong" })).code, 4, "env before ini");
  }));

Deno.test("cli: endpoint and region: the flag, then the AWS variables, then the ini", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-cli-" });
  try {
    await Deno.writeTextFile(
      `${dir}/s3backup.ini`,
      "[s3]\nendpoint = http://ini.example:1\nregion = ini-region\n",
    );
    const conf = async (env: Record<string, string>, flags: string[] = []) => {
      const out = `${dir}/kit-${crypto.randomUUID()}`;
      const r = await s3backup(["kit", "-o", out, "-b", "s3://bucket/p", ...flags], {
        env,
        cwd: dir,
      });
      assert.equal(r.code, 0, r.stderr);
      const text = await Deno.readTextFile(`${out}/kit.conf`);
      return [/^endpoint_url=(.*)$/m.exec(text)?.[1], /^region=(.*)$/m.exec(text)?.[1]];
    };
    assert.deepEqual(await conf({}), ["http://ini.example:1", "ini-region"]);
    const env = { AWS_ENDPOINT_URL: "http://env.example:2", AWS_DEFAULT_REGION: "env-region" };
    assert.deepEqual(await conf(env), ["http://env.example:2", "env-region"]);
    assert.deepEqual(
      await conf({ ...env, AWS_ENDPOINT_URL_S3: "http://env-s3.example:3", AWS_REGION: "env-r" }),
      ["http://env-s3.example:3", "env-r"],
    );
    assert.deepEqual(
      await conf(env, ["--endpoint-url", "http://flag.example:4", "--region", "flag-region"]),
      ["http://flag.example:4", "flag-region"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: a --timeout below a second, or not a duration, is a usage error", () =>
  withRepo(async ({ repo }) => {
    for (
      const [t, msg] of [["0", /use at least 1s/], ["soon", /Invalid duration "soon"/]] as const
    ) {
      const r = await s3backup(["list", "-b", "s3://some-bucket", "--timeout", t]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, msg);
    }
    assert.equal((await s3backup(["list", "-b", repo, "--timeout", "5s"])).code, 0);
  }));

Deno.test("cli: the README's ini with inline comments opens the repository; -v names it", () =>
  withRepo(async ({ dir, repo }) => {
    const cwd = `${dir}/work`;
    await Deno.mkdir(cwd);
    // The ini is found in the parent of the working folder, as the original looked for it.
    const ini = `${dir}/s3backup.ini`;
    await Deno.writeTextFile(
      ini,
      `[main]\npassword = ${PASSWORD}   ; the repository's password\ncolour = blue\n`,
      { mode: 0o600 },
    );
    const v = await s3backup(["verify", "-b", repo, "-v"], { env: { S3BACKUP_PASSWORD: "" }, cwd });
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stderr, new RegExp(`config: ${ini}\n`));
    assert.match(v.stderr, /unknown key colour in \[main\], ignored/);
    assert.ok(!v.stderr.includes(PASSWORD), "the password is never shown");
  }));

Deno.test("cli: --dry-run writes nothing; an option a command does not take is exit 2", () =>
  withRepo(async ({ dir, src, repo }) => {
    await Deno.writeTextFile(`${src}/new.txt`, "new");
    const before = [...Deno.readDirSync(repo)].map((e) => e.name).sort();
    const b = await s3backup(["backup", "-f", src, "-b", repo, "-n", "n", "--dry-run", "-c"]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /would upload: new\.txt/);
    const r = await s3backup([
      "restore",
      "-b",
      repo,
      "-m",
      "latest",
      "-f",
      `${dir}/o`,
      "--dry-run",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...Deno.readDirSync(repo)].map((e) => e.name).sort(), before);
    assert.throws(() => Deno.statSync(`${dir}/o`), Deno.errors.NotFound, "nothing restored");
    const bad = await s3backup([
      "backup",
      "-f",
      src,
      "-b",
      repo,
      "--keep-last",
      "3",
      "--overwrite",
    ]);
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr,
      "s3backup: backup does not take --keep-last (see s3backup backup --help)\n",
    );
    assert.deepEqual([...Deno.readDirSync(repo)].map((e) => e.name).sort(), before);
  }));

Deno.test("cli: bad endpoint, an uncreatable target, a bucket name that is a folder here, | head", () =>
  withRepo(async ({ dir, repo }) => {
    const e = await s3backup(["list", "-b", "bkt-x", "--endpoint-url", "localhost:9000"]);
    assert.equal(e.code, 2, e.stderr);
    assert.equal(
      e.stderr,
      's3backup: Invalid S3 endpoint "localhost:9000": use http://host[:port] or https://host\n',
    );
    await Deno.writeTextFile(`${dir}/file`, "x");
    const t = await s3backup(["restore", "-b", repo, "-m", "latest", "-f", `${dir}/file/sub`]);
    assert.equal(t.code, 2, t.stderr);
    assert.match(t.stderr, /^s3backup: Cannot restore into .*file\/sub: Not a directory/);
    assert.equal(t.stderr.split("\n").length, 2, "one line");
    await Deno.mkdir(`${dir}/mybucket`);
    const w = await s3backup(["list", "-b", "mybucket", "--endpoint-url", "http://127.0.0.1:9"], {
      cwd: dir,
      deadlineMs: 60_000,
    });
    assert.match(
      w.stderr,
      /-b mybucket is the S3 bucket mybucket; for the folder here write -b \.\/mybucket/,
    );
    // A closed stdout ends the run quietly, as SIGPIPE does (exit 141).
    const pipe = await new Deno.Command("bash", {
      args: [
        "-c",
        `"$@" | true; echo "\${PIPESTATUS[0]}"`,
        "_",
        ...s3backupArgv([
          "restore",
          "-b",
          repo,
          "-m",
          "latest",
          "-f",
          `${dir}/sim`,
          "-s",
        ]),
      ],
      env: { S3BACKUP_PASSWORD: PASSWORD },
      stderr: "piped",
      stdout: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(pipe.stderr), "", "no BrokenPipe message");
    assert.equal(new TextDecoder().decode(pipe.stdout), "141\n");
  }));

Deno.test("cli: a backup of / keeps /proc, /sys and /dev as empty folders (exit 0); none is a source or a target", () =>
  withRepo(async ({ dir, repo }) => {
    if (Deno.build.os !== "linux") return;
    // The README's backup of /, cut down to the three (every other top folder left out).
    const only = [
      "--exclude",
      "/*",
      "--exclude",
      "!/proc",
      "--exclude",
      "!/sys",
      "--exclude",
      "!/dev",
    ];
    for (const extra of [["--one-file-system"], []]) {
      const b = await s3backup([
        "backup",
        "-f",
        "/",
        "-b",
        repo,
        "-n",
        "root",
        "-c",
        ...only,
        ...extra,
      ], { deadlineMs: 60_000 }); // (were /proc read, /proc/kcore alone would take days)
      assert.equal(b.code, 0, b.stderr);
      assert.equal(b.stderr, "", "no warning");
      assert.match(b.stdout, /: 0 files, 3 dirs, 0 links/);
    }
    const ls = await s3backup(["ls", "-b", repo, "-m", "latest", "-c"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.deepEqual(ls.stdout.trim().split("\n").map((l) => l.split(/\s+/).pop()), [
      "dev",
      "proc",
      "sys",
    ]);
    const sys = await s3backup(["backup", "-f", "/sys/kernel", "-b", repo, "-c"]);
    assert.equal(sys.code, 2, sys.stderr);
    assert.equal(
      sys.stderr,
      "s3backup: Cannot back up /sys/kernel: /sys is a kernel file system (its files are the " +
        "kernel's state, not data: s3backup reads none)\n",
    );
    const into = `/dev/s3backup-test-${Date.now()}`;
    const r = await s3backup(["restore", "-b", repo, "-m", "latest", "-f", `${into}/x`, "-c"]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      r.stderr,
      `s3backup: Cannot restore into ${into}/x: /dev is a kernel file system (s3backup writes ` +
        "nothing there)\n",
    );
    assert.equal(await Deno.lstat(into).then(() => true, () => false), false, "nothing made");
    // The kit too, given the folder through a symlink.
    await Deno.symlink("/dev", `${dir}/devlink`);
    const k = await kit("restore.sh", [repo, "latest", `${dir}/devlink/s3backup-test/x`]);
    assert.equal(k.code, 2, k.stderr);
    assert.match(
      k.stderr,
      /cannot restore into .*devlink\/s3backup-test\/x: \/dev is a kernel file system/,
    );
    assert.equal(await Deno.lstat("/dev/s3backup-test").then(() => true, () => false), false);
  }));

Deno.test("cli: the README's exit-code table is the code's, and --help says the same codes", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const table = [...readme.matchAll(/^\| (\d+) \| /gm)].map((m) => Number(m[1]));
  const codes = [...new Set(Object.values(ExitCode))].sort((a, b) => a - b);
  assert.deepEqual(table, codes);
  const help = (await s3backup(["--help"])).stdout;
  for (const c of codes.filter((c) => c !== 0)) {
    assert.match(help, new RegExp(`\\b${c} [a-z]`), String(c));
  }
});

Deno.test("cli: S3BACKUP_PASSWORD_FILE, --password-command and S3BACKUP_PASSWORD_COMMAND", () =>
  withRepo(async ({ dir, repo }) => {
    const right = `${dir}/right`;
    await Deno.writeTextFile(right, `${PASSWORD}\n`);
    const verify = (env: Record<string, string>, extra: string[] = []) =>
      s3backup(["verify", "-b", repo, ...extra], { env: { S3BACKUP_PASSWORD: "wrong", ...env } });
    assert.equal((await verify({ S3BACKUP_PASSWORD_FILE: right })).code, 0, "file before env");
    const cmd = `printf '%s\\n' '${PASSWORD}' "second line"`;
    assert.equal((await verify({}, ["--password-command", cmd])).code, 0, "first line of stdout");
    assert.equal((await verify({ S3BACKUP_PASSWORD_COMMAND: cmd })).code, 0);
    const both = await verify({}, ["--password-command", cmd, "--password-file", right]);
    assert.equal(both.code, 2, both.stderr);
    const failing = await verify({}, ["--password-command", "sh -c 'echo oops >&2; exit 3'"]);
    assert.equal(failing.code, 1, failing.stderr);
    assert.match(
      failing.stderr,
      /s3backup: The password command sh failed \(exit 3\); no password\n$/,
    );
    assert.ok(!failing.stderr.includes(PASSWORD));
    // No shell: a `;` is an argument, not a second command.
    const noShell = await verify({}, [
      "--password-command",
      `printf ${PASSWORD.split(" ")[0]}; echo`,
    ]);
    assert.equal(noShell.code, 4, noShell.stderr);
  }));

Deno.test("cli: --log-file appends stamped lines: warnings, the summary, the error it ends with", () =>
  withRepo(async ({ dir, src, repo }) => {
    const log = `${dir}/s3backup.log`;
    const b = await s3backup(["backup", "-f", src, "-b", repo, "-n", "n", "-q", "--log-file", log]);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.stdout + b.stderr, "", "-q: nothing on the terminal, the log has it");
    const bad = await s3backup(["verify", "-b", `${dir}/nowhere`, "--log-file", log]);
    assert.equal(bad.code, 5, bad.stderr);
    const lines = (await Deno.readTextFile(log)).trimEnd().split("\n");
    assert.equal(lines.length, 2, lines.join("\n"));
    assert.match(
      lines[0]!,
      /^\d{4}-\d\d-\d\dT[\d:.]+Z backup: backup meta_n_\d{8}T\d{6}Z: 1 file,/,
    );
    assert.match(lines[1]!, /^\S+Z verify: s3backup: Directory not found: .*nowhere$/);
    assert.equal((Deno.statSync(log).mode ?? 0) & 0o777, 0o600);
    assert.ok(!lines.join("\n").includes(PASSWORD));
  }));

Deno.test("cli: list: host and folder, counts; what a meta said is cached; no password says so", () =>
  withRepo(async ({ dir, src, repo }) => {
    const cache = ["--cache-dir", `${dir}/cache`];
    const l = await s3backup(["list", "-b", repo, ...cache]);
    assert.equal(l.code, 0, l.stderr);
    const rows = l.stdout.trimEnd().split("\n").map((r) => r.split("\t"));
    assert.equal(rows.length, 1);
    const [key, name, time, host, folder, files, dirs, links, bytes] = rows[0]!;
    assert.match(key!, /^meta_n_\d{8}T\d{6}Z$/);
    assert.equal(name, "n");
    assert.match(time!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(host, Deno.hostname());
    assert.equal(folder, src);
    assert.deepEqual([files, dirs, links, bytes], ["1", "0", "0", "1"]);
    // Opened once: a meta spoilt at the same size is listed from the cache, not opened again.
    const size = Deno.statSync(`${repo}/${key}`).size;
    await Deno.writeFile(`${repo}/${key}`, new Uint8Array(size));
    const again = await s3backup(["list", "-b", repo, ...cache]);
    assert.equal(again.stdout, l.stdout);
    const fresh = await s3backup(["list", "-b", repo, "--cache-dir", `${dir}/other`]);
    assert.match(fresh.stdout.split("\t").at(-1)!, /^cannot open: /);
    const noPw = await s3backup(["list", "-b", repo], { env: { S3BACKUP_PASSWORD: "" } });
    assert.equal(noPw.code, 0, noPw.stderr);
    assert.match(noPw.stderr, /no password given: counts, host and folder/);
    assert.deepEqual(noPw.stdout.replace(/\n$/, "").split("\t").slice(3), ["", "", "", "", "", ""]);
  }));

Deno.test("cli: --json: one object on stdout, with exactly the keys the README's table says", () =>
  withRepo(async ({ dir, src, repo }) => {
    const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
    const documented = new Map<string, string[]>();
    for (
      const m of readme.matchAll(/^\| `(s3backup\.\w+\.v1)`( backups\[\])? \| ([\w, ]+) \|$/gm)
    ) {
      documented.set(m[1]! + (m[2] ?? ""), m[3]!.split(", ").sort());
    }
    assert.equal(documented.size, 11, [...documented.keys()].join(" "));
    const json = async (args: string[], code = 0) => {
      const r = await s3backup([...args, "--json"]);
      assert.equal(r.code, code, r.stderr);
      const lines = r.stdout.split("\n");
      assert.equal(lines.length, 2, r.stdout);
      return JSON.parse(lines[0]!) as Record<string, unknown>;
    };
    const check = (o: Record<string, unknown>, schema: string) => {
      assert.equal(o.schema, schema);
      assert.deepEqual(Object.keys(o).sort(), documented.get(schema));
    };
    await Deno.writeTextFile(`${src}/b.txt`, "B");
    const b = await json(["backup", "-f", src, "-b", repo, "-n", "n"]);
    check(b, "s3backup.backup.v1");
    assert.equal(b.files, 2);
    assert.equal(b.newObjects, 1);
    assert.match(b.metaKey as string, /^meta_n_/);
    const r = await json(["restore", "-b", repo, "-m", "latest", "-f", `${dir}/out`]);
    check(r, "s3backup.restore.v1");
    assert.equal(r.files, 2);
    for (const o of [b, r]) assert.ok(Number.isInteger(o.durationMs), `whole ms: ${o.durationMs}`);
    const l = await json(["list", "-b", repo]);
    check(l, "s3backup.list.v1");
    const backups = l.backups as Record<string, unknown>[];
    assert.equal(backups.length, 2);
    for (const x of backups) {
      assert.deepEqual(Object.keys(x).sort(), documented.get("s3backup.list.v1 backups[]"));
    }
    assert.equal(backups[1]!.files, 2);
    assert.equal(backups[1]!.source, src);
    const v = await json(["verify", "-b", repo]);
    check(v, "s3backup.verify.v1");
    assert.equal(v.problems, 0);
    check(await json(["ls", "-b", repo, "-m", "latest"]), "s3backup.ls.v1");
    check(await json(["find", "-b", repo, "*.txt"]), "s3backup.find.v1");
    const metaKeys = backups.map((x) => x.meta as string);
    check(await json(["diff", "-b", repo, metaKeys[0]!, metaKeys[1]!]), "s3backup.diff.v1");
    check(await json(["stats", "-b", repo]), "s3backup.stats.v1");
    check(await json(["kit", "--verify", "-b", repo]), "s3backup.kit.v1");
    const p = await json(["prune", "-b", repo, "--keep-last", "1", "--dry-run"]);
    check(p, "s3backup.prune.v1");
    assert.deepEqual(p.metasRemoved, [backups[0]!.meta]);
  }));

Deno.test("cli: a -m that names no backup is exit 1 with one line, in restore and verify alike", () =>
  withRepo(async ({ dir, repo }) => {
    for (const args of [["restore", "-f", `${dir}/o`], ["verify"]]) {
      const r = await s3backup([
        args[0]!,
        "-b",
        repo,
        "-m",
        "meta_nope_20200101T000000Z",
        ...args.slice(1),
      ]);
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.equal(r.stderr.split("\n").length, 2, r.stderr);
      assert.match(r.stderr, /meta_nope_20200101T000000Z/);
    }
  }));

Deno.test("cli: ls, find, diff and stats over backups with renamed, changed and deleted files", () =>
  withRepo(async ({ src, repo }) => {
    // The first backup (withRepo's): a.txt. The second: a.txt changed, b.txt and d/c.txt new.
    await Deno.writeTextFile(`${src}/a.txt`, "A changed");
    await Deno.writeTextFile(`${src}/b.txt`, "B");
    await Deno.mkdir(`${src}/d`);
    await Deno.writeTextFile(`${src}/d/c.txt`, "C");
    const b2 = await s3backup(["backup", "-f", src, "-b", repo, "-n", "n", "-c"]);
    assert.equal(b2.code, 0, b2.stderr);
    // The third: b.txt renamed to d/b2.txt (same content), a.txt deleted, d's mode changed.
    await Deno.rename(`${src}/b.txt`, `${src}/d/b2.txt`);
    await Deno.remove(`${src}/a.txt`);
    await Deno.chmod(`${src}/d`, 0o700);
    await new Promise((r) => setTimeout(r, 1100)); // a meta name a second later
    const b3 = await s3backup(["backup", "-f", src, "-b", repo, "-n", "n", "-c"]);
    assert.equal(b3.code, 0, b3.stderr);
    const metas = (await s3backup(["list", "-b", repo])).stdout.trim().split("\n")
      .map((l) => l.split("\t")[0]!);
    assert.equal(metas.length, 3);

    const ls = await s3backup(["ls", "-b", repo, "-m", "latest", "d"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.deepEqual(ls.stdout.trim().split("\n").map((l) => l.split(" ").at(-1)), [
      "d",
      "d/b2.txt",
      "d/c.txt",
    ]);
    assert.match(ls.stdout, /^d 0700 /);
    const found = await s3backup(["find", "-b", repo, "*.txt", "--json"]);
    const hits = (JSON.parse(found.stdout).found as { meta: string; path: string }[])
      .map((h) => `${h.meta.slice(-9, -1)} ${h.path}`);
    const [t1, t2, t3] = metas.map((m) => m.slice(-9, -1));
    assert.deepEqual(hits, [
      `${t3} d/b2.txt`,
      `${t3} d/c.txt`,
      `${t2} a.txt`,
      `${t2} b.txt`,
      `${t2} d/c.txt`,
      `${t1} a.txt`,
    ], "newest backup first");
    const diff = await s3backup(["diff", "-b", repo, metas[1]!, "latest"]);
    assert.equal(diff.code, 0, diff.stderr);
    assert.deepEqual(diff.stdout.trim().split("\n"), [
      "- a.txt",
      "- b.txt",
      "M d (mode)",
      "+ d/b2.txt",
    ]);
    const first = await s3backup(["diff", "-b", repo, metas[0]!, metas[1]!]);
    assert.match(first.stdout, /^M a\.txt \(content(, mtime)?\)$/m);
    const stats = await s3backup(["stats", "-b", repo, "--json"]);
    const s = JSON.parse(stats.stdout);
    assert.equal(s.schema, "s3backup.stats.v1");
    assert.deepEqual([s.backups, s.files, s.contents], [3, 6, 4], "A, A changed, B, C");
    const stored = [...Deno.readDirSync(`${repo}/packs`)].length;
    assert.equal(s.objects, stored, "packs (each backup's new contents in one)");
    const none = await s3backup(["find", "-b", repo]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /find needs a PATTERN/);
  }));

Deno.test("cli: a SIGKILLed backup's lock is taken over by the next writer on this host at once", () =>
  withRepo(async ({ src, repo }) => {
    for (let i = 0; i < 3000; i++) await Deno.writeTextFile(`${src}/f${i}`, `file ${i}`);
    const run = start(["backup", "-f", src, "-b", repo, "-n", "n", "-c", "--force-rehash"]);
    // Lock objects only (not the local store's temporary file of one being written).
    const locks = () => {
      try {
        return [...Deno.readDirSync(`${repo}/locks`)]
          .filter((e) => /^backup-\d{8}T\d{6}Z-[0-9a-f]{8}$/.test(e.name)).length;
      } catch {
        return 0;
      }
    };
    const deadline = Date.now() + 60_000;
    while (locks() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    run.child.kill("SIGKILL");
    await run.done;
    assert.equal(locks(), 1, "the killed backup left its lock");
    const p = await s3backup(["prune", "-b", repo, "--keep-last", "1"]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(
      p.stderr,
      /took over the lock of a backup that is no longer running \(pid \d+ on this host/,
    );
    assert.equal(locks(), 0);
  }));

Deno.test("cli: a backup that meets a prune waits, then completes; --lock-wait 0 exits 6 naming it", () =>
  withRepo(async ({ src, repo }) => {
    const store = new LocalStore(repo);
    const prune = await acquireLock(store, "prune", "pruner", { pid: 4711 });
    let released = false;
    try {
      const now = await s3backup(["backup", "-f", src, "-b", repo, "-c", "--lock-wait", "0"]);
      assert.equal(now.code, ExitCode.locked, now.stderr);
      assert.match(
        now.stderr,
        /^s3backup: Cannot start a backup: a prune is running on .*: prune \(host pruner, pid 4711, started \S+Z, \d+ s ago, locks\/prune-\S+\); wait for it \(--lock-wait\), or see s3backup unlock\n$/,
      );
      // Released once the backup says it waits (its log file has the line as it is said).
      const log = `${repo}/../wait.log`;
      const run = start([
        "backup",
        "-f",
        src,
        "-b",
        repo,
        "-n",
        "n",
        "-c",
        "--lock-wait",
        "1m",
        "--log-file",
        log,
      ]);
      const said = () =>
        Deno.readTextFile(log).then((t) => /waiting up to 1m for prune/.test(t), () => false);
      await until("the backup says it waits", said, 60_000);
      await prune.release();
      released = true;
      const r = await run.done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /waiting up to 1m for prune \(host pruner, pid 4711/);
      assert.match(r.stdout, /^backup meta_n_/);
      assert.deepEqual([...Deno.readDirSync(`${repo}/locks`)], [], "no lock left");
    } finally {
      if (!released) await prune.release();
    }
  }));

Deno.test("cli: unlock removes stale locks, keeps a live one (naming it) unless --force", () =>
  withRepo(async ({ repo }) => {
    const store = new LocalStore(repo);
    const old = new Date(Date.now() - 3 * 3600_000);
    const staleKey = formatLockName("backup", old);
    await store.save(
      staleKey,
      new TextEncoder().encode(formatLock({ kind: "backup", host: "gone", pid: 5, time: old })),
    );
    const live = await acquireLock(store, "prune", "busy", { pid: 99 });
    try {
      const u = await s3backup(["unlock", "-b", repo]);
      assert.equal(u.code, 0, u.stderr);
      assert.match(u.stdout, new RegExp(`^removed stale lock ${staleKey}: backup \\(host gone`));
      assert.match(
        u.stderr,
        /kept the lock of a running prune: prune \(host busy, pid 99.*--force/,
      );
      assert.deepEqual([...Deno.readDirSync(`${repo}/locks`)].map((e) => e.name), [
        live.key.slice("locks/".length),
      ]);
      const f = await s3backup(["unlock", "-b", repo, "--force"]);
      assert.equal(f.code, 0, f.stderr);
      assert.match(f.stderr, /removing the lock of a running prune: prune \(host busy, pid 99/);
      assert.deepEqual([...Deno.readDirSync(`${repo}/locks`)], []);
      const none = await s3backup(["unlock", "-b", repo]);
      assert.match(none.stdout, /^no locks on /);
    } finally {
      await live.release().catch(() => {});
    }
  }));

Deno.test("cli: --limit-upload and --limit-download hold a backup and a restore to the rate", () =>
  withRepo(async ({ dir, src, repo }) => {
    await Deno.writeFile(
      `${src}/big.bin`,
      crypto.getRandomValues(new Uint8Array(60_000)).map((b, i) => b ^ i),
    );
    for (let i = 0; i < 9; i++) {
      await Deno.writeFile(`${src}/r${i}.bin`, crypto.getRandomValues(new Uint8Array(60_000)));
    }
    // The same backup and restore unlimited, then limited, side by side (each into a repository
    // and a target of its own): 600 KB at 200 KiB/s adds some 2.6 s (the first 64 KiB go at
    // once), whatever the machine's load adds to both.
    const run = async (limit: string[], n: number) => {
      const to = `${dir}/repo-${n}`;
      await Deno.mkdir(to);
      const b = await s3backup(["backup", "-f", src, "-b", to, "-n", "n", "-c", ...limit]);
      assert.equal(b.code, 0, b.stderr);
      const down = limit.length === 0 ? [] : ["--limit-download", "200K"];
      const out = `${dir}/out-${n}`;
      const r = await s3backup(["restore", "-b", to, "-m", "latest", "-f", out, "-c", ...down]);
      assert.equal(r.code, 0, r.stderr);
      return { backup: b.ms, restore: r.ms };
    };
    const free = await run([], 1);
    const held = await run(["--limit-upload", "200K"], 2);
    assert.ok(
      held.backup - free.backup >= 2000,
      `backup: ${held.backup.toFixed(0)} ms limited, ${free.backup.toFixed(0)} ms not`,
    );
    assert.ok(
      held.restore - free.restore >= 2000,
      `restore: ${held.restore.toFixed(0)} ms limited, ${free.restore.toFixed(0)} ms not`,
    );
    const bad = await s3backup(["backup", "-f", src, "-b", repo, "--limit-upload", "fast"]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /^s3backup: --limit-upload "fast": use a rate such as 500K, 2M or 1.5M/,
    );
    const wrong = await s3backup(["backup", "-f", src, "-b", repo, "--limit-download", "1M"]);
    assert.match(wrong.stderr, /backup does not take --limit-download/);
  }));

Deno.test("cli: the new options' bad values and misuses are one line and exit 2, before anything runs", () =>
  withRepo(async ({ src, repo }) => {
    const before = [...Deno.readDirSync(repo)].map((e) => e.name).sort();
    const cases: [string[], RegExp][] = [
      [
        ["backup", "-f", src, "--retain", "1d"],
        /--retain needs an S3 bucket with Object Lock; .* is a local directory/,
      ],
      [["backup", "-f", src, "--retain", "1h"], /--retain 1h: use at least 1d/],
      [["backup", "-f", src, "--retain-mode", "compliance"], /--retain-mode needs --retain/],
      [
        ["backup", "-f", src, "--exclude-if-present", "a/b"],
        /--exclude-if-present "a\/b": give a file name/,
      ],
      [["backup", "-f", src, "--lock-wait", "soon"], /Invalid duration "soon"/],
      [
        ["restore", "-m", "latest", "-f", `${src}-x`, "--as-of", "2026-12-01"],
        /--as-of needs a versioned S3 bucket; .* is a local directory/,
      ],
      [["list", "--as-of", "yesterday"], /--as-of "yesterday": use a time such as 2026-11-30/],
      [
        ["restore", "-m", "latest", "-f", `${src}-x`, "--restore-tier", "Fast"],
        /--restore-tier "Fast": use Bulk, Standard or Expedited/,
      ],
      [["verify", "--restore-days", "0"], /--restore-days "0": use 1 to 365/],
      // A negative number is the option's value, judged as one (not "argument is ambiguous").
      [["verify", "--restore-days", "-1"], /--restore-days "-1": use 1 to 365/],
      [["verify", "--check-retention", "long"], /Invalid duration "long"/],
    ];
    for (const [args, re] of cases) {
      const r = await s3backup([...args, "-b", repo, "-c"]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^s3backup: ${re.source}`), args.join(" "));
      assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
    }
    const kit = await s3backup(["kit", "--verify"]);
    assert.equal(kit.code, 2);
    assert.match(kit.stderr, /^s3backup: kit needs -b <bucket>/);
    assert.deepEqual([...Deno.readDirSync(repo)].map((e) => e.name).sort(), before);
  }));

Deno.test("cli: a --log-file that cannot be written is a usage error, before anything runs", () =>
  withRepo(async ({ dir, src, repo }) => {
    const before = [...Deno.readDirSync(repo)].length;
    const r = await s3backup(["backup", "-f", src, "-b", repo, "--log-file", `${dir}/no/such/log`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^s3backup: Cannot write the log file .*no\/such\/log: /);
    assert.equal(r.stderr.split("\n").length, 2, "one line");
    assert.equal([...Deno.readDirSync(repo)].length, before, "no backup ran");
  }));

Deno.test("cli: an empty listing and a find without a match say so on stderr; ls and restore default to the latest", () =>
  withRepo(async ({ dir, repo }) => {
    const empty = `${dir}/empty`;
    await Deno.mkdir(empty);
    const l = await s3backup(["list", "-b", empty]);
    assert.equal(l.code, 0, l.stderr);
    assert.equal(l.stdout, "");
    assert.match(l.stderr, /no backups in \S+empty\n$/);
    const f = await s3backup(["find", "-b", repo, "nothing-like-it"]);
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stderr, /no path matches nothing-like-it in the backups\n$/);
    const ls = await s3backup(["ls", "-b", repo]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /a\.txt/);
    const r = await s3backup(["restore", "-b", repo, "-f", `${dir}/out`, "-c"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await Deno.readTextFile(`${dir}/out/a.txt`), "A");
  }));

Deno.test("cli: the repository from -b, else S3BACKUP_REPOSITORY, else [main] bucket; -v says which of the two", () =>
  withRepo(async ({ dir, repo }) => {
    const meta = (out: string) => /meta_n_\d{8}T\d{6}Z/.test(out);
    const env = await s3backup(["list", "-v"], { env: { S3BACKUP_REPOSITORY: repo } });
    assert.equal(env.code, 0, env.stderr);
    assert.ok(meta(env.stdout), env.stdout);
    assert.match(env.stderr, new RegExp(`repository: ${repo} \\(from S3BACKUP_REPOSITORY\\)`));
    const cwd = `${dir}/work`;
    await Deno.mkdir(cwd);
    await Deno.writeTextFile(`${cwd}/s3backup.ini`, `[main]\nbucket = ${repo}\n`);
    const ini = await s3backup(["list", "-v"], { cwd });
    assert.equal(ini.code, 0, ini.stderr);
    assert.ok(meta(ini.stdout), ini.stdout);
    assert.match(ini.stderr, /repository: \S+ \(from \S+s3backup\.ini \[main\] bucket\)/);
    await Deno.mkdir(`${dir}/other`);
    const flag = await s3backup(["list", "-v", "-b", `${dir}/other`], {
      cwd,
      env: { S3BACKUP_REPOSITORY: repo },
    });
    assert.doesNotMatch(flag.stderr, /repository:/, "-b is said on the command line already");
    assert.ok(!meta(flag.stdout), "-b wins");
    const none = await s3backup(["list"], { cwd: dir });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^s3backup: list needs -b <bucket> \(or S3BACKUP_REPOSITORY/);
  }));

Deno.test("cli: the backup that creates a repository says so once: the password, the kit, the ini read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-cli-create-" });
  try {
    // The original usage: s3backup.ini in the parent of the working folder holds the password.
    await Deno.mkdir(`${dir}/work/src`, { recursive: true });
    await Deno.mkdir(`${dir}/repo`);
    await Deno.writeTextFile(`${dir}/work/src/a.txt`, "A");
    await Deno.writeTextFile(`${dir}/s3backup.ini`, "[main]\npassword=from the ini\n");
    await Deno.chmod(`${dir}/s3backup.ini`, 0o600);
    const env = { S3BACKUP_PASSWORD: "" };
    const args = ["-f", "src", "-b", `${dir}/repo`, "-a", "backup"];
    const first = await s3backup(args, { cwd: `${dir}/work`, env });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /created repository [0-9a-f]+ at .*: keep the password safe/);
    assert.match(first.stderr, new RegExp(`settings read from ${dir}/s3backup\\.ini`));
    const second = await s3backup(args, { cwd: `${dir}/work`, env });
    assert.equal(second.code, 0, second.stderr);
    assert.doesNotMatch(second.stderr, /created repository|keep the password/, "once");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: errors say what happened in words, not Deno's (no os error codes, no spawn jargon)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-cli-words-" });
  try {
    const b = await s3backup(["backup", "-f", `${dir}/nonexistent`, "-b", dir]);
    assert.equal(b.code, 2, b.stderr);
    assert.equal(
      b.stderr,
      `s3backup: Cannot back up ${dir}/nonexistent: No such file or directory\n`,
    );
    await Deno.mkdir(`${dir}/repo`);
    const p = await s3backup(["init", "-b", `${dir}/repo`, "--password-command", "nosuchcmd"], {
      env: { S3BACKUP_PASSWORD: "" },
    });
    assert.equal(p.code, 2, p.stderr);
    assert.equal(p.stderr, "s3backup: Cannot run the password command nosuchcmd: not found\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: dump writes a file to stdout, or a folder as a tar (GNU tar and bsdtar read it), checked", () =>
  withRepo(async ({ dir, src, repo }) => {
    const big = "a log line that repeats, for a data/ object of its own\n".repeat(100_000); // 5 MB
    await Deno.mkdir(`${src}/logs/deeper`, { recursive: true });
    await Deno.writeTextFile(`${src}/logs/big.log`, big);
    const long = `${"n".repeat(150)} ünï`; // a pax path
    await Deno.writeTextFile(`${src}/logs/deeper/${long}`, "long\n");
    await Deno.symlink("../big.log", `${src}/logs/deeper/link`);
    await Deno.utime(`${src}/logs/big.log`, 1_700_000_000, 1_700_000_000);
    const b = await s3backup(["backup", "-f", src, "-b", repo, "-n", "n", "-c"]);
    assert.equal(b.code, 0, b.stderr);
    const small = await s3backup(["dump", "-b", repo, "a.txt"]);
    assert.equal(small.code, 0, small.stderr);
    assert.equal(small.stdout, "A", "a pack member");
    const large = await s3backup(["dump", "-b", repo, "-n", "n", "./logs/big.log"]);
    assert.equal(large.code, 0, large.stderr);
    assert.ok(large.stdout === big, "a data/ object, gunzipped");
    // A folder: a tar stream, bytes as they come.
    const tar = await new Deno.Command(s3backupArgv([])[0]!, {
      args: [...s3backupArgv(["dump", "-b", repo, "logs"]).slice(1)],
      env: childEnv({ S3BACKUP_PASSWORD: PASSWORD }),
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(tar.code, 0, new TextDecoder().decode(tar.stderr));
    await Deno.writeFile(`${dir}/logs.tar`, tar.stdout);
    for (const t of ["tar", "bsdtar"]) {
      const out = `${dir}/x-${t}`;
      await Deno.mkdir(out);
      const x = new Deno.Command(t, { args: ["-xf", `${dir}/logs.tar`], cwd: out }).outputSync();
      if (!x.success && t === "bsdtar") continue; // scripts/test.sh installs it
      assert.equal(x.success, true, `${t}: ${new TextDecoder().decode(x.stderr)}`);
      assert.equal(await Deno.readTextFile(`${out}/logs/big.log`), big, t);
      assert.equal((await Deno.stat(`${out}/logs/big.log`)).mtime?.getTime(), 1_700_000_000_000);
      assert.equal(await Deno.readTextFile(`${out}/logs/deeper/${long}`), "long\n", t);
      assert.equal(await Deno.readLink(`${out}/logs/deeper/link`), "../big.log", t);
    }
    for (const [path, why] of [["logs/deeper/link", /a symbolic link/], ["nope", /no nope in/]]) {
      const r = await s3backup(["dump", "-b", repo, path as string]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, why as RegExp);
      assert.equal(r.stderr.split("\n").length, 2, r.stderr);
    }
  }));

Deno.test("cli: the kit, into /, writes nothing in /proc, /sys or /dev (FORMAT.md 5.3.9), as the binary", async () => {
  if (Deno.build.os === "windows") return;
  const kitPath = new URL("../restore-kit/restore.sh", import.meta.url).pathname;
  const md5 = "0123456789abcdef0123456789abcdef";
  const lines = [
    `- d 0555 0 0 0 1700000000 - proc`,
    `- d 0755 0 0 0 1700000000 - dev`,
    `${md5} f 0644 0 0 1 1700000000 - proc/sys/kernel/core_pattern`,
    `- l 0777 0 0 0 1700000000 /tmp sys`,
    `- d 0755 0 0 0 1700000000 - dev/shm`,
    `${md5} f 0644 0 0 1 1700000000 - procs/ordinary`,
    `${md5} h 0644 0 0 1 1700000000 -/proc/kcore linked`, // (its first would be read to check it)
  ];
  // parse_entry of restore.sh (sourced: main runs only when it is the script), TARGET=/.
  const script = `. "$1"; shift; TARGET=/ META_VERSION=3
    for l in "$@"; do if parse_entry "$l"; then echo "ok $E_PATH"; else echo "refused $E_ERR"; fi; done`;
  const out = await new Deno.Command("bash", {
    args: ["-c", script, "_", kitPath, ...lines],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(out.stderr), "");
  assert.deepEqual(new TextDecoder().decode(out.stdout).trim().split("\n"), [
    "ok proc", // (left as it is: restore_dir)
    "ok dev",
    "refused in /proc, a kernel file system: not written",
    "refused in /sys, a kernel file system: not written",
    "refused in /dev, a kernel file system: not written",
    "ok procs/ordinary",
    "refused not restored: proc/kcore, the file it is a hard link of, was not",
  ]);
  // The binary says the same of the same paths (target.ts).
  const root = new TargetDirs("/");
  assert.equal(
    root.examine("proc/sys/kernel/core_pattern", true),
    "in /proc, a kernel file system: not written",
  );
  assert.equal(root.examine("sys", true), "in /sys, a kernel file system: not written");
});
