/**
 * Archive storage classes against moto (which enforces GLACIER: a GET is InvalidObjectState
 * until a RestoreObject, and implements RestoreObject, completing it at once): data objects go
 * in the class, metas/key/descriptor/kit stay STANDARD (HeadObject); restore and verify
 * --read-data ask for exactly the objects they need, say so, exit 7, and a rerun restores
 * what became readable; --wait does it in one run; the kit does the same.
 *
 * Ceph RGW knows only the storage classes its zonegroup defines: moto only.
 */
import assert from "node:assert/strict";
import { HeadObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { ExitCode } from "../src/util/errors.ts";
import { PASSWORD, s3backup } from "./faults/harness.ts";
import { runKit } from "./kit_runner.ts";
import { makeBucket, removeBucket, s3Targets, targetClient } from "./s3_env.ts";
import { snapshot } from "./tree.ts";

/** The objects holding contents (format 3): packs and data/ objects. */
const DATA = /^(packs\/[0-9a-f]{32}|data\/[0-9a-f]{32}(\.gz)?)$/;

for (const target of s3Targets().filter((t) => t.label === "moto")) {
  Deno.test(`archive (${target.label}): GLACIER data objects are thawed on demand, by the binary and the kit`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-archive-" });
    const { bucket, env } = await makeBucket(target);
    const client = targetClient(target);
    const src = `${dir}/src`;
    const url = `s3://${bucket}`;
    const run = (args: string[]) => s3backup([...args, "-b", url], { env });
    const kit = (args: string[], opts: string[] = [], more: Record<string, string> = {}) =>
      runKit("restore.sh", [...opts, url, ...args], PASSWORD, {
        ...more,
        ...env,
        PATH: "/usr/bin:/bin:/usr/local/bin",
      });
    /** Objects of the bucket by storage class, as HeadObject says (no header: STANDARD). */
    const classes = async () => {
      const out = new Map<string, string>();
      const list = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      for (const o of list.Contents ?? []) {
        const h = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: o.Key! }));
        out.set(o.Key!, h.StorageClass ?? "STANDARD");
      }
      return out;
    };
    /** Adds `n` files of new content; backs them up in GLACIER. */
    let round = 0;
    const addAndBackUp = async (n: number) => {
      round++;
      await Deno.mkdir(`${src}/r${round}`, { recursive: true });
      for (let i = 0; i < n; i++) {
        await Deno.writeTextFile(`${src}/r${round}/f${i}`, `round ${round} file ${i}\n`);
      }
      const b = await run(["backup", "-f", src, "-n", "cold", "-c", "--storage-class", "GLACIER"]);
      assert.equal(b.code, 0, b.stderr);
    };
    try {
      await addAndBackUp(3);
      const c = await classes();
      const data = [...c.keys()].filter((k) => DATA.test(k));
      assert.equal(data.length, 1, "the three files in one pack");
      for (const k of data) assert.equal(c.get(k), "GLACIER", k);
      const others = [...c.keys()].filter((k) => !DATA.test(k));
      assert.ok(others.some((k) => k.startsWith("meta_")) && others.includes("s3backup.key"));
      assert.ok(
        others.some((k) => k.startsWith("restore-kit/")) && others.includes("s3backup.conf"),
      );
      for (const k of others) assert.equal(c.get(k), "STANDARD", k);

      // Restore: the pack is asked for, nothing is written for its files, exit 7.
      const first = await run([
        "restore",
        "-m",
        "latest",
        "-f",
        `${dir}/r1`,
        "--restore-tier",
        "Bulk",
      ]);
      assert.equal(first.code, ExitCode.archived, first.stderr);
      assert.match(
        first.stderr,
        /1 objects? needed \(\S+ \S+\) (is|are) in GLACIER: 0 readable, 0 being restored, 1 \(\S+ \S+\) to request now, tier Bulk, kept 3 days/,
      );
      assert.match(
        first.stderr,
        /3 files not restored yet: .*\(1 requested by this run\); run the same command again in 5-12 hours, or use --wait/,
      );
      assert.deepEqual(snapshot(`${dir}/r1`).filter((e) => e.type === "f"), []);
      // moto has made the copies at once: the rerun restores everything, GETs as usual.
      const second = await run(["restore", "-m", "latest", "-f", `${dir}/r1`]);
      assert.equal(second.code, 0, second.stderr);
      assert.doesNotMatch(second.stderr, /archive|GLACIER/, "readable copies: plain GETs");
      assert.deepEqual(snapshot(`${dir}/r1`), snapshot(src));

      // --wait: asked for and polled in one run.
      await addAndBackUp(2);
      const waited = await run([
        "restore",
        "-m",
        "latest",
        "-f",
        `${dir}/r2`,
        "--wait",
        "--restore-days",
        "1",
      ]);
      assert.equal(waited.code, 0, waited.stderr);
      assert.match(waited.stderr, /1 \(\S+ \S+\) to request now, tier Standard, kept 1 day/);
      assert.deepEqual(snapshot(`${dir}/r2`), snapshot(src));

      // verify --read-data: the same for the objects it reads.
      await addAndBackUp(2);
      const v1 = await run(["verify", "--read-data"]);
      assert.equal(v1.code, ExitCode.archived, v1.stdout + v1.stderr);
      assert.match(v1.stderr, /1 archived objects? not read yet/);
      const v2 = await run(["verify", "--read-data"]);
      assert.equal(v2.code, 0, v2.stdout + v2.stderr);

      // The kit: asks with restore-object, exits 7; the rerun restores it all.
      await addAndBackUp(2);
      const k1 = await kit(["latest", `${dir}/k1`], ["--restore-tier", "Bulk"]);
      assert.equal(k1.code, 7, k1.stderr);
      assert.match(
        k1.stderr,
        /4 objects needed are in an archive storage class: 3 readable, 0 being restored, 1 to request now \(tier Bulk, 3 days;/,
      );
      assert.match(k1.stderr, /run the same command again later, or use --wait/);
      // In batches of 1 object, thawed GLACIER packs included.
      const k2 = await kit(["latest", `${dir}/k1`], [], { S3BACKUP_KIT_BATCH_OBJECTS: "1" });
      assert.equal(k2.code, 0, k2.stderr);
      assert.deepEqual(snapshot(`${dir}/k1`), snapshot(src));
      await addAndBackUp(1);
      const k3 = await kit(["latest", `${dir}/k3`], ["--wait"]);
      assert.equal(k3.code, 0, k3.stderr);
      assert.deepEqual(snapshot(`${dir}/k3`), snapshot(src));
    } finally {
      client.destroy();
      await removeBucket(target, bucket);
      await Deno.remove(dir, { recursive: true });
    }
  });
}

for (const target of s3Targets().filter((t) => t.label === "moto")) {
  Deno.test(`archive (${target.label}): --as-of cannot thaw: archived files fail by name, the rest restores`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-archive-asof-" });
    const { bucket, env } = await makeBucket(target, { objectLock: true });
    const url = `s3://${bucket}`;
    const run = (args: string[]) => s3backup([...args, "-b", url], { env });
    try {
      await Deno.mkdir(`${dir}/src`);
      await Deno.writeTextFile(`${dir}/src/cold.txt`, "in the archive\n");
      const b = await run(["backup", "-f", `${dir}/src`, "-c", "--storage-class", "GLACIER"]);
      assert.equal(b.code, 0, b.stderr);
      const asOf = new Date(Date.now() + 60_000).toISOString();
      const r = await run(["restore", "--as-of", asOf, "-m", "latest", "-f", `${dir}/out`, "-c"]);
      assert.equal(r.code, ExitCode.partial, r.stderr);
      assert.match(
        r.stderr,
        /cold\.txt: Object packs\/[0-9a-f]{32} is archived: it must be restored/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
