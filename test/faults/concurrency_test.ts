/**
 * Concurrency through the real CLI: two hosts making the first backup into one new prefix at
 * once (a proxy holds both PUTs of the key until both are in flight: one key, both restore), two backups of one name at the same moment (two metas),
 * two restores into one target (one is refused clearly, the other completes; the kit takes the
 * same lock). Backup racing prune is in test/prune_e2e_test.ts.
 */
import assert from "node:assert/strict";
import { makeBucket, removeBucket, s3Targets, targetStore } from "../s3_env.ts";
import { snapshot } from "../tree.ts";
import { FaultProxy } from "./fault_proxy.ts";
import { PASSWORD, s3backup, start, until } from "./harness.ts";

const moto = s3Targets().find((t) => t.label === "moto");
const KIT = new URL("../../restore-kit/", import.meta.url).pathname;

async function trees(dir: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const src = `${dir}/host${i}`;
    await Deno.mkdir(`${src}/sub`, { recursive: true });
    for (let j = 0; j < 20; j++) await Deno.writeTextFile(`${src}/f${j}`, `host ${i} file ${j}\n`);
    await Deno.writeFile(
      `${src}/sub/bin`,
      new Uint8Array(300_000).map((_, k) => (k * (i + 3)) & 0xff),
    );
    out.push(src);
  }
  return out;
}

Deno.test({
  name: "concurrency [moto]: two hosts make the first backup at once: one key, both restore",
  ignore: moto === undefined,
  fn: async () => {
    const { bucket, env } = await makeBucket(moto!);
    const dir = await Deno.makeTempDir({ prefix: "s3backup-race-" });
    const proxy = new FaultProxy(moto!.endpoint);
    try {
      const [a, b] = await trees(dir, 2);
      const repo = `s3://${bucket}/shared`;
      // A real race: the proxy holds each run's PUT of the key until both have sent theirs.
      // (max 2: the winner then PUTs the key again, to learn whether the store honours If-None-Match.)
      proxy.setRules([{ fault: "hold", kinds: ["put"], key: /s3backup\.key$/, share: 1, max: 2 }]);
      const via = { ...env, AWS_ENDPOINT_URL: proxy.endpoint };
      const first = start(["backup", "-f", a!, "-b", repo, "-n", "a", "-c"], { env: via });
      const second = start(["backup", "-f", b!, "-b", repo, "-n", "b", "-c"], { env: via });
      await until("both key PUTs in flight at once", () => proxy.held === 2, 60_000);
      proxy.releaseHeld();
      const [ra, rb] = await Promise.all([first.done, second.done]);
      assert.equal(ra.code, 0, ra.stderr);
      assert.equal(rb.code, 0, rb.stderr);
      assert.equal(proxy.injected[0], 2, "the two runs raced for the key");
      for (const [name, src] of [["a", a!], ["b", b!]] as const) {
        const out = `${dir}/out-${name}`;
        const r = await s3backup([
          "restore",
          "-b",
          repo,
          "-n",
          name,
          "-m",
          "latest",
          "-f",
          out,
          "-c",
        ], {
          env,
        });
        assert.equal(r.code, 0, `restore ${name}: ${r.stderr}`);
        assert.deepEqual(snapshot(out), snapshot(src), `backup ${name} restores identically`);
      }
      const v = await s3backup(["verify", "-b", repo, "--read-data"], { env });
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      await proxy.close();
      await Deno.remove(dir, { recursive: true });
      await removeBucket(moto!, bucket);
    }
  },
});

Deno.test({
  name: "concurrency [moto]: two backups of one name at the same moment: two metas, both whole",
  ignore: moto === undefined,
  fn: async () => {
    const { bucket, env } = await makeBucket(moto!);
    const dir = await Deno.makeTempDir({ prefix: "s3backup-race-" });
    try {
      const [a, b] = await trees(dir, 2);
      const repo = `s3://${bucket}/r`;
      const init = await s3backup(["backup", "-f", a!, "-b", repo, "-n", "other", "-c"], { env });
      assert.equal(init.code, 0, init.stderr);
      const runs = [a!, b!].map((src) =>
        start(["backup", "-f", src, "-b", repo, "-n", "nightly", "-c"], { env })
      );
      const results = await Promise.all(runs.map((r) => r.done));
      for (const r of results) assert.equal(r.code, 0, r.stderr);
      const store = targetStore(moto!, bucket, "r");
      const metas: string[] = [];
      for await (const o of store.list("meta_nightly_")) metas.push(o.name);
      store.close();
      assert.equal(metas.length, 2, `two metas: ${metas}`);
      const sources = new Set<string>();
      for (const m of metas) {
        const out = `${dir}/out-${m}`;
        const r = await s3backup(["restore", "-b", repo, "-m", m, "-f", out, "-c"], { env });
        assert.equal(r.code, 0, r.stderr);
        const snap = JSON.stringify(snapshot(out));
        sources.add(
          snap === JSON.stringify(snapshot(a!))
            ? "a"
            : snap === JSON.stringify(snapshot(b!))
            ? "b"
            : "?",
        );
      }
      assert.deepEqual([...sources].sort(), ["a", "b"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
      await removeBucket(moto!, bucket);
    }
  },
});

Deno.test("concurrency: two restores into one target: one refused clearly, the other whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-race-" });
  try {
    const [src] = await trees(dir, 1);
    const repo = `${dir}/repo`;
    await Deno.mkdir(repo);
    const b = await s3backup(["backup", "-f", src!, "-b", repo, "-c"]);
    assert.equal(b.code, 0, b.stderr);
    const target = `${dir}/target`;
    await Deno.mkdir(target);
    // Another restore holds the target (a live process: this test's own pid).
    const host = Deno.hostname();
    await Deno.writeTextFile(`${target}/.s3backup-restore.lock`, `${Deno.pid} ${host}\n`);
    const busy = await s3backup(["restore", "-b", repo, "-m", "latest", "-f", target, "-c"]);
    assert.equal(busy.code, 1, busy.stderr);
    assert.match(busy.stderr, /^s3backup: Another restore is writing into .* \(pid \d+ on /);
    const kit = await new Deno.Command("bash", {
      signal: AbortSignal.timeout(300_000), // a deadline: a hung child fails the test
      args: [`${KIT}restore.sh`, repo, "latest", target],
      env: { S3BACKUP_PASSWORD: PASSWORD, PATH: "/usr/bin:/bin", HOME: dir },
      clearEnv: true,
      stdin: "null",
      stderr: "piped",
      stdout: "null",
    }).output();
    assert.notEqual(kit.code, 0);
    assert.match(new TextDecoder().decode(kit.stderr), /another restore is writing into/);
    assert.deepEqual([...Deno.readDirSync(target)].map((e) => e.name), [".s3backup-restore.lock"]);
    // The holder is gone (a pid that is not running): its lock is taken over.
    await Deno.writeTextFile(`${target}/.s3backup-restore.lock`, `999999999 ${host}\n`);
    const r = await s3backup(["restore", "-b", repo, "-m", "latest", "-f", target, "-c"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(snapshot(target), snapshot(src!), "no lock left, the tree whole");
    // Two at once for real: one of them may be refused, none writes a wrong file.
    const out = `${dir}/both`;
    const both = await Promise.all(
      [1, 2].map(() => s3backup(["restore", "-b", repo, "-m", "latest", "-f", out, "-c"])),
    );
    for (const x of both) {
      assert.ok(x.code === 0 || /Another restore is writing/.test(x.stderr), x.stderr);
    }
    assert.ok(both.some((x) => x.code === 0));
    assert.deepEqual(snapshot(out), snapshot(src!));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
