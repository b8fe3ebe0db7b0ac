/**
 * How many S3 requests a backup makes, counted by a proxy in front of moto (real HTTP): an
 * unchanged tree of any size costs at most 6 requests besides the lock, the meta and a sample
 * of 32 HEADs (no full listing: the files cache and the meta it was made for vouch for the
 * objects, the sample checks that they are there; `restore-kit/` is listed); a few new
 * contents are looked up by HEAD; without a cache, and with nothing to vouch
 * (--force-rehash), one listing. The kit restores a format 3 backup with one listing, the
 * descriptor, the key, the meta and its packs.
 */
import assert from "node:assert/strict";
import { createRepository } from "../../src/repo/repository.ts";
import { childEnv, makeBucket, removeBucket, s3Targets, targetStore } from "../s3_env.ts";
import { FaultProxy } from "./fault_proxy.ts";
import { kitFiles } from "../../src/cli/kit.ts";
import { PASSWORD, s3backup, start, until } from "./harness.ts";

const moto = s3Targets().find((t) => t.label === "moto");

/**
 * The requests of one run under the prefix `r/`, without the lock's: its put, read-back and
 * listing under locks/, and its removal (a DeleteObjects: "delete " with the names in the body).
 */
function besidesLock(log: string[]): string[] {
  return log.map((l) => l.replace(/^(\w+(?:-\w+)?) r\//, "$1 "))
    .filter((l) => !/^(put|get|head|delete|list) locks\//.test(l) && l !== "delete ");
}

/**
 * A bucket on moto behind a counting proxy, a folder, and the environment a run through the
 * proxy gets (its cache in the folder); all removed after `fn`.
 */
async function proxied(
  prefix: string,
  fn: (t: {
    bucket: string;
    proxy: FaultProxy;
    dir: string;
    runEnv: Record<string, string>;
  }) => Promise<void>,
): Promise<void> {
  const { bucket, env } = await makeBucket(moto!);
  const proxy = new FaultProxy(moto!.endpoint);
  const dir = await Deno.makeTempDir({ prefix });
  try {
    const runEnv = { ...env, AWS_ENDPOINT_URL: proxy.endpoint, XDG_CACHE_HOME: `${dir}/cache` };
    await fn({ bucket, proxy, dir, runEnv });
  } finally {
    await proxy.close();
    await Deno.remove(dir, { recursive: true });
    await removeBucket(moto!, bucket);
  }
}

/** A format 2 repository at `s3://bucket/r` (the format 2 writer's requests). */
async function format2(bucket: string): Promise<void> {
  const store = targetStore(moto!, bucket, "r");
  await createRepository(store, new TextEncoder().encode(PASSWORD), { format: 2 });
  store.close?.();
}

/** 2,500 files of a few bytes in 25 folders, older than the racy window. */
async function tree(src: string): Promise<void> {
  const old = new Date(Date.now() - 60_000); // not racy (files_cache.ts)
  for (let d = 0; d < 25; d++) {
    await Deno.mkdir(`${src}/d${d}`, { recursive: true });
    for (let i = 0; i < 100; i++) {
      const p = `${src}/d${d}/f${i}`;
      await Deno.writeTextFile(p, `file ${d} ${i}\n`);
      await Deno.utime(p, old, old);
    }
  }
  await new Promise((r) => setTimeout(r, 3_000)); // past the racy ctimes: all recorded
}

Deno.test({
  name: "requests [moto, format 3]: 2,500 files in a few requests; a no-op lists, puts nothing",
  ignore: moto === undefined,
  fn: () =>
    proxied("s3backup-requests3-", async ({ bucket, proxy, dir, runEnv }) => {
      const src = `${dir}/src`;
      await tree(src);
      const backup = async () => {
        proxy.log.length = 0;
        const r = await s3backup(["backup", "-f", src, "-b", `s3://${bucket}/r`, "-c"], {
          env: runEnv,
        });
        assert.equal(r.code, 0, r.stderr);
        return besidesLock(proxy.log).filter((l) => !/^put (meta_|restore-kit\/)/.test(l));
      };
      const puts = (l: string[]) => l.filter((x) => x.startsWith("put ")).map((x) => x.slice(4));
      const first = await backup();
      const stored = puts(first).filter((n) => !/^s3backup\.(key|conf)$/.test(n));
      assert.deepEqual(stored.map((n) => n.replace(/[0-9a-f]{32}/, "X")), ["packs/X", "index/X"]);
      assert.ok(first.length <= 20, `${first.length} requests:\n${first.join("\n")}`);
      const noop = await backup();
      assert.deepEqual(puts(noop), [], noop.join("\n"));
      for (const p of ["meta_", "packs/", "data/", "index/", "restore-kit/"]) {
        assert.ok(noop.includes(`list ${p}`), `${p} listed:\n${noop.join("\n")}`);
      }
      assert.ok(!noop.some((l) => l.startsWith("get index/")), "indexes come from the cache");
      assert.ok(noop.length <= 10, `${noop.length} requests:\n${noop.join("\n")}`);
      await Deno.writeTextFile(`${src}/new`, "new");
      const one = await backup();
      assert.deepEqual(puts(one).map((n) => n.replace(/[0-9a-f]{32}/, "X")), [
        "packs/X",
        "index/X",
      ]);
      // Without the cache: the indexes are fetched once more, nothing is stored.
      await Deno.remove(`${dir}/cache`, { recursive: true });
      const cold = await backup();
      assert.deepEqual(puts(cold), [], cold.join("\n"));
      assert.equal(cold.filter((l) => l.startsWith("get index/")).length, 2, cold.join("\n"));

      // The kit: the descriptor (its first request: no HeadBucket), one listing of everything (the
      // backups and the archived objects, made meanwhile), then (a small store: early_batch) the
      // key, the meta and each pack by one aws call, which lists the store once more.
      const kit = async (script: string, ...args: string[]) => {
        proxy.log.length = 0;
        const out = await new Deno.Command("bash", {
          args: [new URL(`../../restore-kit/${script}`, import.meta.url).pathname, ...args],
          env: childEnv({ ...runEnv, S3BACKUP_PASSWORD: PASSWORD }),
          clearEnv: true,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        return besidesLock(proxy.log).map((n) => n.replace(/[0-9a-f]{32}|_\d{8}T\d{6}Z/g, "X"));
      };
      const restore = await kit("restore.sh", `s3://${bucket}/r`, "latest", `${dir}/kit-out`);
      assert.deepEqual(restore.sort(), [
        "get meta_srcX",
        "get packs/X", // the tree's
        "get packs/X", // "new"
        "get s3backup.conf",
        "get s3backup.key",
        "list ",
        "list ", // (the aws call's own: aws s3 cp --recursive)
      ]);
      // The binary: the bucket looked at, then the key, the descriptor and the backups asked at
      // once (no HEAD of the key first), the meta, the packs; the locks are listed beside them.
      proxy.log.length = 0;
      const out = `${dir}/bin-out`;
      const r = await s3backup(["restore", "-b", `s3://${bucket}/r`, "-m", "latest", "-f", out], {
        env: runEnv,
      });
      assert.equal(r.code, 0, r.stderr);
      const bin = proxy.log.map((n) => n.replace(/[0-9a-f]{32}|_\d{8}T\d{6}Z/g, "X"));
      assert.deepEqual(bin.filter((l) => !l.startsWith("get r/packs/")).sort(), [
        "get r/meta_srcX",
        "get r/s3backup.conf",
        "get r/s3backup.key",
        "head ",
        "list r/locks/",
        "list r/meta_",
      ], proxy.log.join("\n"));
      const list = await kit("list.sh", `s3://${bucket}/r`);
      assert.deepEqual(list.sort(), [
        ...Array(4).fill("get meta_srcX"), // each backup's meta, for its summary
        "get s3backup.conf",
        "get s3backup.key",
        "list meta_",
      ]);
    }),
});

Deno.test({
  name: "requests [moto, format 3]: the first listings, and the kit's PUTs, are in flight at once",
  ignore: moto === undefined,
  fn: () =>
    proxied("s3backup-requests-at-once-", async ({ bucket, proxy, dir, runEnv }) => {
      const src = `${dir}/src`;
      await Deno.mkdir(src);
      await Deno.writeTextFile(`${src}/f`, "one file\n");
      const repo = `s3://${bucket}/r`;
      assert.equal((await s3backup(["init", "-b", repo, "-c"], { env: runEnv })).code, 0);
      // Past the lock's own listing, the listings of meta_, packs/, data/ and index/ are held
      // until all four are in flight, then the kit's PUTs until all of them are: a run that
      // made them one after another would wait on the first one held, and fail here.
      const kitPuts = kitFiles({}).size;
      proxy.setRules([
        { fault: "hold", kinds: ["list"], share: 1, after: 1, max: 4 },
        { fault: "hold", kinds: ["put"], key: /^r\/restore-kit\//, share: 1, max: kitPuts },
      ]);
      const run = start(["backup", "-f", src, "-b", repo, "-c"], { env: runEnv });
      await until("the four listings in flight at once", () => proxy.held === 4, 60_000);
      proxy.releaseHeld();
      await until(
        `the ${kitPuts} kit PUTs in flight at once`,
        () => proxy.held === kitPuts,
        60_000,
      );
      proxy.releaseHeld();
      const r = await run.done;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(proxy.injected, [4, kitPuts]);
    }),
});

Deno.test({
  name:
    "requests [moto, format 2]: a no-op backup of 2,500 files: at most 6 besides lock, meta and sample",
  ignore: moto === undefined,
  fn: () =>
    proxied("s3backup-requests-", async ({ bucket, proxy, dir, runEnv }) => {
      const src = `${dir}/src`;
      await tree(src);
      await format2(bucket);
      const repo = `s3://${bucket}/r`;
      const backup = async () => {
        proxy.log.length = 0;
        const r = await s3backup(["backup", "-f", src, "-b", repo, "-c"], { env: runEnv });
        assert.equal(r.code, 0, r.stderr);
        return besidesLock(proxy.log);
      };
      const first = await backup();
      assert.ok(first.filter((l) => l.startsWith("put ")).length >= 2500, "every object put");

      const noop = await backup();
      const meta = new Set(noop.filter((l) => /^put meta_/.test(l)));
      assert.equal(meta.size, 1, noop.join("\n"));
      const sample = noop.filter((l) => /^head [0-9a-f]{32}$/.test(l));
      assert.ok(sample.length >= 1 && sample.length <= 32, `${sample.length} sampled`);
      const rest = noop.filter((l) => !/^put meta_/.test(l) && !sample.includes(l));
      assert.ok(rest.length <= 6, `${rest.length} requests:\n${rest.join("\n")}`);
      assert.ok(rest.includes("list restore-kit/"), `the kit listed:\n${rest.join("\n")}`);
      assert.ok(!rest.includes("list "), `no full listing:\n${rest.join("\n")}`);

      // Three new contents: looked up by HEAD, not by a listing of everything.
      for (let i = 0; i < 3; i++) await Deno.writeTextFile(`${src}/new${i}`, `new ${i}`);
      const few = await backup();
      // Distinct objects (an SDK retry repeats a request, not a decision).
      const data = (l: string[], kind: string) => [
        ...new Set(l.filter((x) => new RegExp(`^${kind} [0-9a-f]{32}$`).test(x))),
      ];
      assert.equal(data(few, "put").length, 3, few.join("\n"));
      const puts = data(few, "put").map((l) => l.slice(4));
      const heads = data(few, "head").map((l) => l.slice(5));
      assert.ok(puts.every((m) => heads.includes(m)), few.join("\n"));
      assert.ok(heads.length - 3 <= 32, `the 3 new and a sample:\n${few.join("\n")}`);
      assert.ok(!few.includes("list "), `no full listing:\n${few.join("\n")}`);

      // Without the cache every file is read (no meta stands in): one listing, nothing stored.
      await Deno.remove(`${dir}/cache`, { recursive: true });
      const cold = await backup();
      assert.equal(cold.filter((l) => l === "list ").length, 3, `one listing:\n${cold.join("\n")}`);
      assert.equal(data(cold, "put").length, 0);
      assert.ok(cold.includes("list-uploads "), "no cache: stale uploads swept");
      assert.ok(!noop.includes("list-uploads "), "with the cache: swept at most weekly");

      // --force-rehash: nothing vouched for, one listing of everything (3 pages of 1,000).
      proxy.log.length = 0;
      const r = await s3backup(["backup", "-f", src, "-b", repo, "-c", "--force-rehash"], {
        env: runEnv,
      });
      assert.equal(r.code, 0, r.stderr);
      const forced = besidesLock(proxy.log);
      assert.equal(forced.filter((l) => l === "list ").length, 3, forced.join("\n"));
      assert.equal(data(forced, "put").length, 0);
    }),
});
