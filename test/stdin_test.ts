/**
 * `backup --stdin` and `--stdin-from-command`: a stream stored as one file, restored
 * byte-identical by the binary and the kit; a command that fails (exit status, signal) leaves
 * no meta and says which command and how; a backup killed mid-stream leaves a spool that the
 * next one removes. Local-directory repositories (the stream's path to the store is any file's).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { PASSWORD, s3backup, s3backupArgv, start, until } from "./faults/harness.ts";
import { runKit } from "./kit_runner.ts";
import { childEnv } from "./s3_env.ts";

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

/** A temp folder with a repository folder and a cache folder; removed after `fn`. */
async function withDirs(fn: (dir: string, env: Record<string, string>) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-stdin-test-" });
  try {
    await Deno.mkdir(`${dir}/repo`);
    await fn(dir, { XDG_CACHE_HOME: `${dir}/cache`, HOME: dir });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The spool folders left under the cache's `stdin/` (none once a run has ended). */
function spools(dir: string): string[] {
  try {
    return [...Deno.readDirSync(`${dir}/cache/s3backup/stdin`)].map((e) => e.name);
  } catch {
    return [];
  }
}

const metas = (dir: string) =>
  [...Deno.readDirSync(`${dir}/repo`)].map((e) => e.name).filter((n) => n.startsWith("meta_"));

Deno.test("stdin: a command's output is one file, restored byte-identical by binary and kit", async () => {
  await withDirs(async (dir, env) => {
    const data = crypto.getRandomValues(new Uint8Array(65536)); // 1 MiB: 16 of these
    const one = `${dir}/chunk`;
    await Deno.writeFile(one, data);
    const script = `for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do cat "$0"; done`;
    const b = await s3backup([
      "backup",
      "-b",
      `${dir}/repo`,
      "-c",
      "--stdin-filename",
      "dump.sql",
      "--stdin-from-command",
      "--",
      "sh",
      "-c",
      script,
      one,
    ], { env });
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(spools(dir), [], "the spool is removed");
    const want = md5(new Uint8Array(Array(16).fill([...data]).flat()));
    const list = await s3backup(["list", "-b", `${dir}/repo`, "--tsv"], { env });
    assert.match(list.stdout, /\tdump\.sql\t.*\t<command sh>\t1\t/, list.stdout);
    assert.doesNotMatch(list.stdout, /for i in/, "the command's arguments are not recorded");
    const r = await s3backup(
      ["restore", "-b", `${dir}/repo`, "-n", "dump.sql", "-f", `${dir}/bin`],
      {
        env,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(md5(await Deno.readFile(`${dir}/bin/dump.sql`)), want);
    assert.deepEqual([...Deno.readDirSync(`${dir}/bin`)].map((e) => e.name), ["dump.sql"]);
    const k = await runKit("restore.sh", [`${dir}/repo`, "dump.sql", `${dir}/kit`], PASSWORD);
    assert.equal(k.code, 0, k.stderr);
    assert.equal(md5(await Deno.readFile(`${dir}/kit/dump.sql`)), want);
  });
});

Deno.test("stdin: standard input, named by --stdin-filename (default stdin)", async () => {
  await withDirs(async (dir, env) => {
    const data = new Uint8Array(300_000);
    for (let i = 0; i < data.length; i += 65536) {
      crypto.getRandomValues(data.subarray(i, Math.min(i + 65536, data.length)));
    }
    for (const named of [true, false]) {
      const args = ["backup", "-b", `${dir}/repo`, "-c", "--stdin"];
      const argv = s3backupArgv(named ? [...args, "--stdin-filename", "in.bin"] : args);
      const child = new Deno.Command(argv[0]!, {
        args: argv.slice(1),
        env: childEnv({ S3BACKUP_PASSWORD: PASSWORD, ...env }),
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = child.stdin.getWriter();
      await w.write(data);
      await w.close();
      const out = await child.output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    }
    for (const name of ["in.bin", "stdin"]) {
      const r = await s3backup([
        "restore",
        "-b",
        `${dir}/repo`,
        "-n",
        name,
        "-f",
        `${dir}/${name}.d`,
      ], {
        env,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(md5(await Deno.readFile(`${dir}/${name}.d/${name}`)), md5(data));
    }
  });
});

Deno.test("stdin: a command that fails leaves no meta and says how it ended", async () => {
  await withDirs(async (dir, env) => {
    const cases: [string[], RegExp][] = [
      [["sh", "-c", "head -c 100000 /dev/zero; exit 3"], /sh ended with exit status 3/],
      [["sh", "-c", "head -c 100000 /dev/zero; kill -9 $$"], /sh ended with signal SIGKILL/],
      [["no-such-command-s3backup"], /Cannot run no-such-command-s3backup/],
    ];
    for (const [cmd, said] of cases) {
      const b = await s3backup(
        ["backup", "-b", `${dir}/repo`, "-c", "--stdin-from-command", "--", ...cmd],
        { env },
      );
      assert.equal(b.code, 1, b.stderr);
      assert.match(b.stderr, said);
      const lines = b.stderr.trim().split("\n").filter((l) => !l.includes("created repository"));
      assert.equal(lines.length, 1, b.stderr);
      assert.deepEqual(spools(dir), []);
    }
    assert.ok(Deno.statSync(`${dir}/repo/s3backup.key`).isFile, "the repository was made");
    assert.deepEqual(metas(dir), [], "no meta written");
  });
});

Deno.test("stdin: a backup killed mid-stream leaves a spool the next one removes", async () => {
  await withDirs(async (dir, env) => {
    // A sleep found by its unique duration (what `exec` leaves of the command line).
    const marker = `sleep 30.${crypto.getRandomValues(new Uint32Array(1))[0]}`;
    const run = start([
      "backup",
      "-b",
      `${dir}/repo`,
      "-c",
      "--stdin-from-command",
      "--",
      "sh",
      "-c",
      `head -c 2000000 /dev/zero; exec ${marker}`,
    ], { env });
    const spooled = () => {
      const s = spools(dir);
      if (s.length !== 1) return false;
      try {
        return Deno.statSync(`${dir}/cache/s3backup/stdin/${s[0]}/sh.out`).size >= 1_000_000;
      } catch {
        return false;
      }
    };
    await until("the stream spooled", spooled);
    run.child.kill("SIGKILL");
    // The orphaned command holds our stderr pipe (it inherits it) until it ends.
    new Deno.Command("pkill", { args: ["-f", marker] }).outputSync();
    assert.equal((await run.done).code, 137);
    assert.equal(spools(dir).length, 1, "left by the killed run");
    const b = await s3backup(
      ["backup", "-b", `${dir}/repo`, "-c", "--stdin-from-command", "--", "echo", "hello"],
      { env },
    );
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(spools(dir), [], "the next backup removed it");
    assert.equal(metas(dir).length, 1, "only the second backup's meta");
  });
});

Deno.test("stdin: refused with one line: --skip-if-unchanged, a spool that cannot be made, a terminal", async () => {
  await withDirs(async (dir, env) => {
    const stream = ["backup", "-b", `${dir}/repo`, "-c"];
    const skip = await s3backup([...stream, "--skip-if-unchanged", "--stdin"], { env });
    assert.equal(skip.code, 2, skip.stderr);
    assert.match(skip.stderr, /--skip-if-unchanged needs a folder's files cache/);
    Deno.writeTextFileSync(`${dir}/not-a-folder`, "");
    const cmd = ["--stdin-from-command", "--", "echo", "hello"];
    const spool = await s3backup([...stream, "--cache-dir", `${dir}/not-a-folder`, ...cmd], {
      env,
    });
    assert.equal(spool.code, 1, spool.stderr);
    assert.match(spool.stderr, /^s3backup: Cannot spool the stream in .*not-a-folder\/stdin: /m);
    assert.deepEqual(metas(dir), []);
    // A terminal on standard input (util-linux script(1) gives one): nothing was piped in.
    if (Deno.build.os !== "linux") return;
    const argv = s3backupArgv([...stream, "--stdin"]).map((w) => `'${w}'`).join(" ");
    const tty = new Deno.Command("script", {
      args: ["-qec", argv, "/dev/null"],
      env: childEnv({ S3BACKUP_PASSWORD: PASSWORD, ...env }),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    const said = new TextDecoder().decode(tty.stdout);
    assert.equal(tty.code, 2, said);
    assert.match(said, /--stdin: standard input is a terminal: pipe the stream in/);
  });
});
