/**
 * Crashes: SIGKILL of the backup at each of its writes (first and nightly), mid-multipart and
 * right before its meta, each once a request is held or hangs (never at a guessed time);
 * SIGKILL of a restore and of the kit; SIGTERM of the kit while it fetches its first packs
 * (phase 1: it must leave no work folder). After each, the next run completes, the newest meta
 * restores identically, no half-written object is visible, and the abandoned multipart upload
 * is aborted (by the next backup once it is a day old: the test moves that backup's clock).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { backup } from "../../src/ops/backup/backup.ts";
import { openRepository } from "../../src/repo/repository.ts";
import { pendingUploads, type S3Target, s3Targets, targetStore } from "../s3_env.ts";
import { snapshot } from "../tree.ts";
import { PASSWORD, s3backup, start, until } from "./harness.ts";
import { type ProxiedFixture, proxiedFixture } from "./proxied_fixture.ts";

const moto = s3Targets().find((t) => t.label === "moto");
const KIT = new URL("../../restore-kit/", import.meta.url).pathname;
const DAY = 24 * 3600 * 1000;

const fixture = (target: S3Target) => proxiedFixture(target);
type Fixture = ProxiedFixture;

/**
 * The kit restoring `spec` of the fixture's repository into `out`, with only /usr/bin and /bin
 * and `tmp` as its TMPDIR; with `signal`, a deadline.
 */
function kitRestore(
  f: Fixture,
  spec: string,
  out: string,
  tmp: string,
  signal?: AbortSignal,
  env: Record<string, string> = {},
) {
  return new Deno.Command("bash", {
    args: [`${KIT}restore.sh`, f.repo, spec, out],
    env: {
      ...f.env,
      S3BACKUP_PASSWORD: PASSWORD,
      PATH: "/usr/bin:/bin",
      HOME: f.dir,
      TMPDIR: tmp,
      ...env,
    },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    ...(signal ? { signal } : {}),
  });
}

/** Starts a backup and SIGKILLs it once `when` holds (a request hangs); it must die of it. */
async function killedBackup(f: Fixture, what: string, when: () => boolean): Promise<void> {
  const p = start(["backup", "-f", f.src, "-b", f.repo, "-n", "t", "-c"], { env: f.env });
  await until(what, when, 60_000);
  p.child.kill("SIGKILL");
  assert.equal((await p.done).code, 137, `killed once ${what}`);
}

/** Every meta restores identically (or none exists yet), and a new backup completes. */
async function assertWhole(f: Fixture, label: string): Promise<void> {
  f.proxy.setRules([]);
  const v = await s3backup(["verify", "-b", f.repo], { env: f.env });
  assert.ok(
    v.code === 0 || /No s3backup repository/.test(v.stderr),
    `${label}: verify ${v.stderr}`,
  );
  const b = await s3backup(["backup", "-f", f.src, "-b", f.repo, "-n", "t", "-c"], { env: f.env });
  assert.equal(b.code, 0, `${label}: next backup: ${b.stderr}`);
  // No temporary files cache a killed run left: the next one removed it.
  const caches = `${f.dir}/cache/s3backup/files`;
  for (const repo of [...Deno.readDirSync(caches)].filter((e) => e.isDirectory)) {
    const tmp = [...Deno.readDirSync(`${caches}/${repo.name}`)].filter((e) => /\.tmp/.test(e.name));
    assert.deepEqual(tmp, [], `${label}: left in the cache folder`);
  }
  const out = `${f.dir}/out-${label.replace(/\W+/g, "-")}`;
  const r = await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", out, "-c"], {
    env: f.env,
  });
  assert.equal(r.code, 0, `${label}: restore: ${r.stderr}`);
  assert.deepEqual(snapshot(out), snapshot(f.src), `${label}: restored tree`);
}

/**
 * Backs up into `repo(n)` killed at its (n+1)th write (the PUT held by the proxy), for n = 0, 1,
 * ... until a run makes fewer writes (each run has a new file, `<tag>-<n>`, to store); after
 * each kill, `after` must find everything whole. The kills' phases (the keys held, ids and
 * times left out).
 */
async function killAtEachWrite(
  f: Fixture,
  tag: string,
  repo: (n: number) => string,
  after: (n: number, phase: string) => Promise<void>,
): Promise<string[]> {
  const phases: string[] = [];
  for (let n = 0; n < 80; n++) {
    // Something new each run (a small file, packed), so that every run writes a pack.
    await Deno.writeTextFile(`${f.src}/${tag}-${n}`, `${tag} ${n} `.repeat(40));
    f.proxy.setRules([
      { fault: "stall", kinds: ["put", "put-part", "multipart"], share: 1, after: n, max: 1 },
    ]);
    const p = start(["backup", "-f", f.src, "-b", repo(n), "-n", "t", "-c"], {
      env: f.env,
      deadlineMs: 90_000,
    });
    const held = await Promise.race([
      p.done.then(() => false),
      until(`write ${n + 1} held`, () => f.proxy.injected[0] === 1, 60_000).then(() => true),
    ]);
    if (!held) {
      const r = await p.done; // fewer than n+1 writes: every write has had its kill
      f.proxy.setRules([]);
      assert.equal(r.code, 0, r.stderr);
      return phases;
    }
    const phase = f.proxy.faults[0]!.replace(/^stall \S+ r[^/]*\//, "")
      .replace(/[0-9a-f]{32}/g, "<id>").replace(/\d{8}T\d{6}Z$/, "<time>");
    p.child.kill("SIGKILL");
    const r = await p.done;
    assert.equal(r.code, 137, `write ${n + 1} (${phase}): died of SIGKILL: ${r.stderr}`);
    phases.push(phase);
    f.proxy.setRules([]);
    await after(n, phase);
  }
  throw new Error("more than 80 writes");
}

Deno.test({
  name: "crash [moto]: SIGKILL at each write of a nightly backup and of the first one: " +
    "it died of it, nothing half-visible, the next run completes",
  ignore: moto === undefined,
  fn: async () => {
    const f = await fixture(moto!);
    try {
      // The first backup, which creates the repository: a new prefix for each kill.
      const fresh = (n: number) => `${f.repo}-new${n}`;
      const first = await killAtEachWrite(f, "first", fresh, async (n, phase) => {
        const label = `first backup killed at write ${n + 1} (${phase})`;
        const b = await s3backup(["backup", "-f", f.src, "-b", fresh(n), "-n", "t", "-c"], {
          env: f.env,
        });
        assert.equal(b.code, 0, `${label}: the next backup: ${b.stderr}`);
        const out = `${f.dir}/first-${n}`;
        const r = await s3backup(["restore", "-b", fresh(n), "-m", "latest", "-f", out, "-c"], {
          env: f.env,
        });
        assert.equal(r.code, 0, `${label}: restore: ${r.stderr}`);
        assert.deepEqual(snapshot(out), snapshot(f.src), `${label}: restored tree`);
      });
      for (const step of ["s3backup.key", "s3backup.conf", "restore-kit/", "meta_t_<time>"]) {
        assert.ok(first.some((p) => p.startsWith(step)), `no kill at ${step}: ${first.join(", ")}`);
      }
      // Nightly: the repository exists; its lock, packs, index and meta.
      const b = await s3backup(["backup", "-f", f.src, "-b", f.repo, "-n", "t", "-c"], {
        env: f.env,
      });
      assert.equal(b.code, 0, b.stderr);
      const nightly = await killAtEachWrite(
        f,
        "nightly",
        () => f.repo,
        (n, phase) => assertWhole(f, `nightly killed at write ${n + 1} (${phase})`),
      );
      for (const step of ["locks/", "packs/<id>", "index/<id>", "meta_t_<time>"]) {
        assert.ok(
          nightly.some((p) => p.startsWith(step)),
          `no kill at ${step}: ${nightly.join(", ")}`,
        );
      }
    } finally {
      await f.cleanup();
    }
  },
});

Deno.test({
  name: "crash [moto]: SIGKILL mid-multipart and before the meta; the upload is aborted later",
  ignore: moto === undefined,
  fn: async () => {
    const f = await fixture(moto!);
    try {
      // Mid-multipart: parts hang; kill while they do.
      f.proxy.setRules([{ fault: "stall", kinds: ["put-part"], share: 1 }]);
      await killedBackup(f, "a part upload hangs", () => f.proxy.injected[0]! > 0);
      assert.ok((f.proxy.seen.get("put-part") ?? 0) > 0, "a part upload was under way");
      assert.equal((await pendingUploads(moto!, f.bucket, "r/")).length, 1, "the upload is left");
      // A backup a day later aborts what the killed run left, before it uploads anything.
      f.proxy.setRules([]);
      const store = targetStore(moto!, f.bucket, "r");
      const repo = await openRepository(store, new TextEncoder().encode(PASSWORD));
      const s = await backup(store, repo, {
        source: f.src,
        name: "t",
        host: "h",
        simulate: false,
        kit: new Map(),
        now: () => new Date(Date.now() + 2 * DAY),
      });
      assert.equal(s.uploadsAborted, 1);
      assert.deepEqual(await pendingUploads(moto!, f.bucket, "r/"), []);
      const metas = async () => {
        const out: string[] = [];
        for await (const o of store.list("meta_")) out.push(o.name);
        return out.sort();
      };
      const before = await metas();
      // Right before the meta: every data object is stored, the meta PUT hangs; kill.
      await Deno.writeTextFile(`${f.src}/new`, "new content for the killed run");
      f.proxy.setRules([{ fault: "stall", kinds: ["put"], key: /meta_/, share: 1 }]);
      await killedBackup(f, "the meta's PUT hangs", () => f.proxy.injected[0]! > 0);
      assert.ok(f.proxy.injected[0]! > 0, "the meta PUT was reached");
      assert.deepEqual(await metas(), before, "the killed run recorded no meta");
      store.close();
      // (The newest meta is the one dated two days ahead: the tree it holds, without "new".)
      await Deno.remove(`${f.src}/new`);
      await assertWhole(f, "after the kills");
    } finally {
      await f.cleanup();
    }
  },
});

Deno.test({
  name: "crash [moto]: SIGKILL of a restore and of the kit: the rerun completes and cleans up",
  ignore: moto === undefined,
  fn: async () => {
    const f = await fixture(moto!);
    try {
      const b = await s3backup(["backup", "-f", f.src, "-b", f.repo, "-c"], { env: f.env });
      assert.equal(b.code, 0, b.stderr);
      // The binary: killed while the big object downloads (it hangs).
      f.proxy.setRules([{
        fault: "stall",
        kinds: ["get"],
        key: /[0-9a-f]{32}$/,
        share: 1,
        max: 1,
      }]);
      const out = `${f.dir}/out`;
      const p = start(["restore", "-b", f.repo, "-m", "latest", "-f", out, "-c"], { env: f.env });
      await until("the big object's download hangs", () => f.proxy.faults.length > 0, 60_000);
      p.child.kill("SIGKILL");
      assert.equal((await p.done).code, 137, "killed mid-download");
      f.proxy.setRules([]);
      const again = await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", out, "-c"], {
        env: f.env,
      });
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(snapshot(out), snapshot(f.src), "binary rerun");
      // The kit: killed mid-way, it leaves its work folder and its temp folder; the rerun
      // removes both and restores identically.
      const kout = `${f.dir}/kit-out`;
      const tmp = `${f.dir}/tmp`;
      await Deno.mkdir(tmp);
      f.proxy.setRules([{
        fault: "stall",
        kinds: ["get"],
        key: /[0-9a-f]{32}$/,
        share: 1,
        max: 1,
      }]);
      const kit = kitRestore(f, "latest", kout, tmp).spawn();
      await until("the kit's download hangs", () => f.proxy.faults.length > 0, 60_000);
      // Kill the whole kit (bash and the aws CLI it runs), as a reboot would.
      new Deno.Command("pkill", { args: ["-KILL", "-f", kout] }).outputSync();
      kit.kill("SIGKILL");
      await kit.output();
      const left = [...Deno.readDirSync(tmp)].map((e) => e.name);
      assert.ok(left.some((n) => n.startsWith("s3backup-kit.")), `temp folder left: ${left}`);
      f.proxy.setRules([]);
      const rerun = await kitRestore(f, "latest", kout, tmp, AbortSignal.timeout(120_000)).output();
      assert.equal(rerun.code, 0, new TextDecoder().decode(rerun.stderr));
      assert.deepEqual([...Deno.readDirSync(tmp)], [], "the killed run's temp folder is gone");
      assert.deepEqual(snapshot(kout), snapshot(f.src), "kit rerun");
    } finally {
      await f.cleanup();
    }
  },
});

Deno.test({
  name: "crash [moto]: SIGTERM of the kit while its first packs download (with the meta; in " +
    "phase 1): no work folder, no temp folder left; the rerun restores",
  ignore: moto === undefined,
  fn: async () => {
    const f = await fixture(moto!);
    try {
      // Small files only: the kit fetches the first packs while it reads the entries.
      const small = `${f.dir}/small`;
      for (let d = 0; d < 3; d++) {
        Deno.mkdirSync(`${small}/d${d}`, { recursive: true });
        for (let i = 0; i < 40; i++) {
          Deno.writeTextFileSync(`${small}/d${d}/f${i}.txt`, `file ${d}/${i}\n`.repeat(i + 1));
        }
      }
      const b = await s3backup(["backup", "-f", small, "-b", f.repo, "-n", "small"], {
        env: f.env,
      });
      assert.equal(b.code, 0, b.stderr);
      f.proxy.setRules([{ fault: "stall", kinds: ["get"], key: /packs\/[0-9a-f]{32}$/, share: 1 }]);
      const kout = `${f.dir}/kit-term`;
      const tmp = `${f.dir}/tmp-term`;
      await Deno.mkdir(tmp);
      // A small store: the packs come with the key and the meta (early_batch), before the target
      // is touched; stopped then, the kit leaves no temp folder, and no target.
      let child = kitRestore(f, "small", kout, tmp).spawn();
      await until("the kit's early packs hang", () => f.proxy.faults.length > 0, 60_000);
      child.kill("SIGTERM");
      let stopped = await child.output();
      assert.equal(stopped.code, 143, new TextDecoder().decode(stopped.stderr));
      assert.deepEqual([...Deno.readDirSync(tmp)], [], "no temp folder left");
      assert.ok(!existsSync(kout), "the target untouched");
      // Without it (S3BACKUP_KIT_EARLY_BYTES=0): the first packs in phase 1.
      const faults = f.proxy.faults.length;
      child = kitRestore(f, "small", kout, tmp, undefined, { S3BACKUP_KIT_EARLY_BYTES: "0" })
        .spawn();
      await until(
        "the kit's first pack download hangs",
        () => f.proxy.faults.length > faults,
        60_000,
      );
      child.kill("SIGTERM");
      stopped = await child.output();
      assert.equal(stopped.code, 143, new TextDecoder().decode(stopped.stderr));
      const left = [...Deno.readDirSync(kout)].map((e) => e.name);
      assert.ok(!left.some((n) => n.startsWith(".s3backup-work")), `work folder left: ${left}`);
      assert.deepEqual([...Deno.readDirSync(tmp)], [], "no temp folder left");
      new Deno.Command("pkill", { args: ["-KILL", "-f", kout] }).outputSync(); // the stalled aws
      f.proxy.setRules([]);
      const rerun = await kitRestore(f, "small", kout, tmp, AbortSignal.timeout(120_000))
        .output();
      assert.equal(rerun.code, 0, new TextDecoder().decode(rerun.stderr));
      assert.deepEqual(snapshot(kout), snapshot(small), "kit rerun");
    } finally {
      await f.cleanup();
    }
  },
});
