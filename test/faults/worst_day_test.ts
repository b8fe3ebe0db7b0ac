/**
 * The worst day, round two: backups that used to exit 0 with the wrong bytes or nothing at all.
 * A lost files cache, an edit in the scan's second, a prune with a clock 3 hours fast, a lock
 * removed under a running backup, a deleted kit, a damaged meta under --skip-if-unchanged, a
 * wiped repository, contents deleted under a vouching cache. Each is run through the program
 * (or the engine, where a race must land in one second) against a local repository, and what
 * is restored afterwards is compared byte for byte.
 */
import assert from "node:assert/strict";
import { backup } from "../../src/ops/backup/backup.ts";
import { SourceFile } from "../../src/ops/backup/source_file.ts";
import { openRepository } from "../../src/repo/repository.ts";
import { LocalStore } from "../../src/store/local_store.ts";
import { PASSWORD, type Run, s3backup, s3backupArgv, start, until } from "./harness.ts";
import { childEnv } from "../s3_env.ts";

interface Fixture {
  dir: string;
  src: string;
  repo: string;
  cache: string;
  /** s3backup with `-b repo --cache-dir cache` added. */
  run: (args: string[], env?: Record<string, string>) => Promise<Run>;
  /** The restored `latest` backup's file `rel`. */
  restored: (rel: string) => Promise<string>;
  cleanup: () => Promise<void>;
}

async function fixture(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-worst-" });
  const src = `${dir}/src`, repo = `${dir}/repo`, cache = `${dir}/cache`;
  await Deno.mkdir(src);
  await Deno.mkdir(repo);
  let n = 0;
  const run = (args: string[], env: Record<string, string> = {}) =>
    s3backup([...args, "-b", repo, "--cache-dir", cache], { env });
  return {
    dir,
    src,
    repo,
    cache,
    run,
    restored: async (rel) => {
      const out = `${dir}/out${n++}`;
      const r = await run(["restore", "-m", "latest", "-f", out, "-c"]);
      assert.equal(r.code, 0, r.stderr);
      return await Deno.readTextFile(`${out}/${rel}`);
    },
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

const OLD = new Date("2020-01-01T00:00:00Z");

async function write(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text);
  await Deno.utime(path, OLD, OLD); // the mtime set back: only the ctime tells
}

async function backupOk(f: Fixture, extra: string[] = []): Promise<Run> {
  const r = await f.run(["backup", "-f", f.src, "-c", ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return r;
}

/** The objects holding contents (format 3: packs/ and data/; format 2: `<md5>`). */
async function dataObjects(repo: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(repo)) if (/^[0-9a-f]{32}$/.test(e.name)) out.push(e.name);
  for (const dir of ["packs", "data"]) {
    try {
      for await (const e of Deno.readDir(`${repo}/${dir}`)) out.push(`${dir}/${e.name}`);
    } catch { /* none yet */ }
  }
  return out.sort();
}

async function metas(repo: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(repo)) if (e.name.startsWith("meta_")) out.push(e.name);
  return out.sort();
}

Deno.test("worst day 1: a lost files cache does not launder a stale content", async () => {
  const f = await fixture();
  try {
    await write(`${f.src}/f`, "AAAA");
    await backupOk(f);
    await Deno.remove(f.cache, { recursive: true });
    await write(`${f.src}/f`, "BBBB"); // same size, same mtime
    await backupOk(f);
    await backupOk(f);
    assert.equal(await f.restored("f"), "BBBB");
  } finally {
    await f.cleanup();
  }
});

Deno.test("worst day 2: an edit in the second of the scan that sets the mtime back is read", async () => {
  const f = await fixture();
  const store = new LocalStore(f.repo);
  try {
    await backupOk(f); // the repository
    const repo = await openRepository(store, new TextEncoder().encode(PASSWORD));
    const once = () =>
      backup(store, repo, {
        source: f.src,
        name: "racy",
        host: "h",
        simulate: false,
        kit: new Map(),
        filesCache: { dir: `${f.cache}/files` },
      });
    // The edit lands right after the file is read, in the second of the walk's lstat (Deno
    // reports ctime in whole seconds): started at the beginning of a second, all of it fits.
    // (Small files are read as the walk saw them, else whole: the edit follows either read.)
    const { readWholeSync, readAsWalkedSync } = SourceFile;
    let edited = false;
    const edit = <T>(p: string, got: T): T => {
      if (!edited) {
        edited = true;
        Deno.writeTextFileSync(p, "BBBB");
        Deno.utimeSync(p, OLD, OLD);
      }
      return got;
    };
    SourceFile.readWholeSync = (p, limit) => edit(p, readWholeSync.call(SourceFile, p, limit));
    SourceFile.readAsWalkedSync = (p, w) => edit(p, readAsWalkedSync.call(SourceFile, p, w));
    try {
      await new Promise((r) => setTimeout(r, 1000 - Date.now() % 1000));
      await write(`${f.src}/f`, "AAAA");
      await once();
    } finally {
      Object.assign(SourceFile, { readWholeSync, readAsWalkedSync });
    }
    assert.ok(edited);
    await once();
    assert.equal(await f.restored("f"), "BBBB");
  } finally {
    await f.cleanup();
  }
});

/**
 * A tree whose backup takes seconds at 256 KiB/s: small files first, then ten of 300 KB (the
 * rate is paid after each save: the later files wait for the earlier ones). With packs of 512K
 * (slowBackup) the 300 KB files are data/ objects, stored one by one as the backup runs.
 */
async function slowTree(src: string, seed = 0): Promise<void> {
  for (let i = 0; i < 7; i++) await write(`${src}/a${i}`, `small file ${i}\n`);
  for (let i = 0; i < 10; i++) {
    const big = new Uint8Array(300_000).map((_, j) => (j * 31 + i * 7 + seed) * 2654435761 >>> 24);
    await Deno.writeFile(`${src}/z${i}`, big);
  }
}

/** A backup that runs for seconds, started; resolves once it stored three contents. */
async function slowBackup(f: Fixture) {
  const before = (await dataObjects(f.repo)).length;
  const b = start(
    [
      "backup",
      "-f",
      f.src,
      "-b",
      f.repo,
      "--cache-dir",
      f.cache,
      "-c",
      "--limit-upload",
      "256K",
      "--pack-size",
      "512K",
    ],
    { deadlineMs: 120_000 },
  );
  await until(
    "three contents stored",
    async () => (await dataObjects(f.repo)).length >= before + 3,
  );
  return b;
}

Deno.test("worst day 3: a prune with a clock 3 hours fast deletes nothing a running backup stored", async () => {
  const f = await fixture();
  try {
    await write(`${f.src}/first`, "the first backup");
    await f.run(["backup", "-f", f.src, "-n", "other", "-c"]);
    await Deno.remove(`${f.src}/first`);
    await slowTree(f.src);
    const b = await slowBackup(f);
    // The prune runs under faketime: its own clock 3 hours ahead.
    const argv = s3backupArgv([
      "prune",
      "-b",
      f.repo,
      "--keep-last",
      "1",
      "-c",
    ]);
    const prune = await new Deno.Command("faketime", {
      args: ["+3 hours", ...argv],
      env: childEnv({ S3BACKUP_PASSWORD: PASSWORD }),
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const pruneErr = new TextDecoder().decode(prune.stderr);
    const backupRun = await b.done;
    assert.equal(backupRun.code, 0, backupRun.stderr);
    assert.equal(prune.code, 3, `prune: a backup was running, no data removed\n${pruneErr}`);
    assert.match(pruneErr + new TextDecoder().decode(prune.stdout), /backup/);
    const v = await f.run(["verify", "--read-data"]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.equal(await f.restored("a3"), "small file 3\n");
  } finally {
    await f.cleanup();
  }
});

Deno.test("worst day 3b: a backup whose lock is removed under it records nothing and says why", async () => {
  const f = await fixture();
  try {
    await slowTree(f.src);
    await backupOk(f, ["-n", "first"]); // a files cache that vouches for what is stored
    await slowTree(f.src, 1); // new contents to store, slowly
    await write(`${f.src}/a0`, "changed!!!!!!\n");
    const before = await metas(f.repo);
    const b = start(
      ["backup", "-f", f.src, "-b", f.repo, "--cache-dir", f.cache, "-c", "--limit-upload", "256K"],
    );
    await until("the lock", async () => {
      for await (const _ of Deno.readDir(`${f.repo}/locks`)) return true;
      return false;
    });
    const u = await f.run(["unlock", "--force"]);
    assert.equal(u.code, 0, u.stderr);
    const r = await b.done;
    assert.equal(r.code, 1, `${u.stdout}${u.stderr}\n${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /lock locks\/backup-\S+ lapsed while it ran \(it was removed/);
    assert.match(r.stderr, /nothing was recorded; run the backup again/);
    assert.deepEqual(await metas(f.repo), before);
    // The cache that vouched for objects a prune may have removed is gone: all is read again.
    const again = await backupOk(f);
    assert.doesNotMatch(again.stdout, /unchanged \(not read\)/, "every file read");
    assert.equal(await f.restored("a0"), "changed!!!!!!\n");
  } finally {
    await f.cleanup();
  }
});

Deno.test("worst day 4: a deleted or replaced restore kit is put back by the next backup", async () => {
  const f = await fixture();
  try {
    await write(`${f.src}/f`, "x");
    await backupOk(f);
    const kit = `${f.repo}/restore-kit`;
    const restoreSh = await Deno.readFile(`${kit}/restore.sh`);
    const common = await Deno.readFile(`${kit}/common.sh`);
    await Deno.remove(`${kit}/restore.sh`);
    await Deno.writeTextFile(`${kit}/common.sh`, "#!/bin/sh\necho swapped\n");
    await backupOk(f);
    assert.deepEqual(await Deno.readFile(`${kit}/restore.sh`), restoreSh);
    assert.deepEqual(await Deno.readFile(`${kit}/common.sh`), common);
    const k = await f.run(["kit", "--verify"]);
    assert.equal(k.code, 0, k.stdout + k.stderr);
  } finally {
    await f.cleanup();
  }
});

Deno.test("worst day 5: --skip-if-unchanged writes a new meta when the last one no longer opens", async () => {
  const f = await fixture();
  try {
    await write(`${f.src}/f`, "x");
    await backupOk(f, ["--skip-if-unchanged"]);
    const [m] = await metas(f.repo);
    await Deno.writeFile(`${f.repo}/${m}`, crypto.getRandomValues(new Uint8Array(200)));
    const r = await backupOk(f, ["--skip-if-unchanged"]);
    assert.match(r.stderr, new RegExp(`${m}: does not open .*a new meta is written`));
    assert.equal((await metas(f.repo)).length, 2);
    assert.equal(await f.restored("f"), "x");
  } finally {
    await f.cleanup();
  }
});

Deno.test("worst day 6: a wiped repository is refused, not silently made anew; init makes one", async () => {
  const f = await fixture();
  try {
    await write(`${f.src}/f`, "x");
    await backupOk(f);
    for await (const e of Deno.readDir(f.repo)) {
      await Deno.remove(`${f.repo}/${e.name}`, { recursive: true });
    }
    const r = await f.run(["backup", "-f", f.src, "-c"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^s3backup: The repository \S+ \(id [0-9a-f]+\) is gone: .*`s3backup init -b \S+` creates/,
    );
    assert.deepEqual([...Deno.readDirSync(f.repo)], [], "nothing written");
    const i = await f.run(["init"]);
    assert.equal(i.code, 0, i.stderr);
    assert.match(i.stdout, /created repository [0-9a-f]+ at /);
    await backupOk(f);
    assert.equal(await f.restored("f"), "x");
    const again = await f.run(["init"]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /holds a repository already: nothing was written/);
  } finally {
    await f.cleanup();
  }
});

for (const format of [2, 3]) {
  Deno.test(`worst day 7 (format ${format}): contents deleted under a vouching files cache are found and stored again`, async () => {
    const f = await fixture();
    try {
      const init = await f.run(["init"]);
      assert.equal(init.code, 0, init.stderr);
      const conf = `${f.repo}/s3backup.conf`;
      Deno.writeTextFileSync(
        conf,
        Deno.readTextFileSync(conf).replace(/format=3/, `format=${format}`),
      );
      for (let i = 0; i < 40; i++) await write(`${f.src}/f${i}`, `content ${i}`);
      await new Promise((r) => setTimeout(r, 3_000)); // past the racy window: all recorded
      await backupOk(f);
      for (const o of await dataObjects(f.repo)) await Deno.remove(`${f.repo}/${o}`);
      const r = await backupOk(f);
      assert.match(
        r.stderr,
        format === 2
          ? /\d+ of \d+ sampled contents the files cache vouches for are missing/
          : /40 contents the indexes name are missing from the store .*stored again/,
      );
      // Format 2 stores each content under its own name again, which heals the older backup
      // too; a format 3 meta names the pack that is gone: that backup stays damaged (verify
      // says so), the new one is whole.
      const v = await f.run(["verify", "--read-data", ...(format === 3 ? ["-m", "latest"] : [])]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      if (format === 3) assert.equal((await f.run(["verify"])).code, 3, "the first backup");
      assert.equal(await f.restored("f39"), "content 39");
    } finally {
      await f.cleanup();
    }
  });
}
