/**
 * An archive that takes its time. moto makes a readable copy the moment RestoreObject is asked,
 * so "being restored", "asks for nothing twice", the `--wait` back-off and a
 * RestoreAlreadyInProgress answer never happen against it. Here a fault proxy in front of moto
 * (FaultProxy.thawHeads) keeps each object it saw asked for "being restored" for its next 3
 * HEADs, as S3 does for hours, and answers RestoreAlreadyInProgress where asked (another client
 * asked between our HEAD and our request). DEEP_ARCHIVE runs too. Binary and kit alike.
 */
import assert from "node:assert/strict";
import { HeadObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { ExitCode } from "../src/util/errors.ts";
import { FaultProxy } from "./faults/fault_proxy.ts";
import { PASSWORD, s3backup } from "./faults/harness.ts";
import { runKit } from "./kit_runner.ts";
import { makeBucket, removeBucket, s3Targets, targetClient } from "./s3_env.ts";
import { snapshot } from "./tree.ts";

/** How the binary and the kit count what is archived, before asking. */
const COUNTS = {
  binary: (ready: string, ongoing: number, ask: number) =>
    new RegExp(
      `${ready} readable, ${ongoing} being restored, ${ask} \\(\\S+ \\S+\\) to request now`,
    ),
  kit: (ready: string, ongoing: number, ask: number) =>
    new RegExp(`${ready} readable, ${ongoing} being restored, ${ask} to request now`),
};

/** The pauses between looks, in the order said: `next look in 2 s` (binary), `2s` (kit). */
function pauses(stderr: string): number[] {
  return [...stderr.matchAll(/next look in (\d+) ?s\)/g)].map((m) => Number(m[1]));
}

for (const target of s3Targets().filter((t) => t.label === "moto")) {
  Deno.test(`archive (${target.label} behind a slow thaw): being restored, nothing asked twice, --wait backs off, RestoreAlreadyInProgress, DEEP_ARCHIVE`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-thaw-" });
    const { bucket, env: direct } = await makeBucket(target);
    const proxy = new FaultProxy(target.endpoint);
    const client = targetClient(target);
    const env = { ...direct, AWS_ENDPOINT_URL: proxy.endpoint };
    const src = `${dir}/src`;
    const url = `s3://${bucket}`;
    const run = (args: string[]) => s3backup([...args, "-b", url], { env });
    const restore = (to: string, more: string[] = []) =>
      run(["restore", "-m", "latest", "-f", `${dir}/${to}`, ...more]);
    const kit = (to: string, opts: string[] = []) =>
      runKit("restore.sh", [...opts, url, "latest", `${dir}/${to}`], PASSWORD, {
        ...env,
        PATH: "/usr/bin:/bin:/usr/local/bin",
      });
    /** RestoreObject requests since the last look (the proxy's log, then cleared). */
    const asked = () => {
      const n = proxy.log.filter((l) => l.startsWith("restore-object ")).length;
      proxy.log.length = 0;
      return n;
    };
    const backUp = async (name: string, storageClass: string, files: number) => {
      await Deno.mkdir(`${src}/${name}`, { recursive: true });
      for (let i = 0; i < files; i++) {
        await Deno.writeTextFile(`${src}/${name}/f${i}`, `${name} file ${i}\n`);
      }
      const b = await run(["backup", "-f", src, "-c", "--storage-class", storageClass]);
      assert.equal(b.code, 0, b.stderr);
      asked();
    };
    try {
      // The binary: asks once, then sees "being restored" and asks nothing, then waits.
      proxy.thawHeads = 3;
      await backUp("b", "GLACIER", 3);
      const b1 = await restore("b1");
      assert.equal(b1.code, ExitCode.archived, b1.stderr);
      assert.match(b1.stderr, COUNTS.binary("0", 0, 1));
      assert.equal(asked(), 1);
      const b2 = await restore("b1");
      assert.equal(b2.code, ExitCode.archived, b2.stderr);
      assert.match(b2.stderr, COUNTS.binary("0", 1, 0));
      assert.match(b2.stderr, /3 files not restored yet: .*\(0 requested by this run\)/);
      assert.equal(asked(), 0, "an object being restored is not asked for again");
      assert.deepEqual(snapshot(`${dir}/b1`).filter((e) => e.type === "f"), []);
      const b3 = await restore("b1", ["--wait"]);
      assert.equal(b3.code, 0, b3.stderr);
      assert.deepEqual(pauses(b3.stderr), [2, 4], b3.stderr); // two more "ongoing" HEADs
      assert.equal(asked(), 0);
      assert.deepEqual(snapshot(`${dir}/b1`), snapshot(src));

      // RestoreAlreadyInProgress (asked by someone else meanwhile): not an error, not counted.
      proxy.thawHeads = 0;
      await backUp("c", "GLACIER", 2);
      proxy.setRules([{ fault: "restore-in-progress", kinds: ["restore-object"], share: 1 }]);
      const c1 = await restore("c1");
      assert.equal(c1.code, ExitCode.archived, c1.stderr);
      assert.deepEqual(proxy.faults.length, 1);
      assert.doesNotMatch(c1.stderr, /error|cannot/i);
      assert.match(c1.stderr, /2 files not restored yet: .*\(0 requested by this run\)/);
      proxy.setRules([]);
      const c2 = await restore("c1", ["--wait"]);
      assert.equal(c2.code, 0, c2.stderr);
      assert.deepEqual(snapshot(`${dir}/c1`), snapshot(src));

      // DEEP_ARCHIVE: stored in it, its wait said (Bulk: about 48 hours), asked for, restored.
      await backUp("d", "DEEP_ARCHIVE", 2);
      const list = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      const classes = await Promise.all(
        (list.Contents ?? []).filter((o) => /^packs\//.test(o.Key!)).map(async (o) =>
          (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: o.Key! })))
            .StorageClass
        ),
      );
      assert.deepEqual(classes.sort(), ["DEEP_ARCHIVE", "GLACIER", "GLACIER"]);
      const d1 = await restore("d1", ["--restore-tier", "Bulk"]);
      assert.equal(d1.code, ExitCode.archived, d1.stderr);
      // (The GLACIER packs read as usual: the binary looks only at what a GET refuses.)
      assert.match(d1.stderr, /1 object needed \(\S+ B\) is in DEEP_ARCHIVE: 0 readable, /);
      assert.match(d1.stderr, /run the same command again in about 48 hours/);
      assert.equal(asked(), 1);
      const d2 = await restore("d1");
      assert.equal(d2.code, 0, d2.stderr);
      assert.deepEqual(snapshot(`${dir}/d1`), snapshot(src));

      // The kit: the same three turns, and RestoreAlreadyInProgress taken as "being restored".
      proxy.thawHeads = 3;
      await backUp("k", "DEEP_ARCHIVE", 2);
      const k1 = await kit("k1");
      assert.equal(k1.code, 7, k1.stderr);
      assert.match(k1.stderr, COUNTS.kit("3", 0, 1));
      assert.equal(asked(), 1);
      const k2 = await kit("k1");
      assert.equal(k2.code, 7, k2.stderr);
      assert.match(k2.stderr, COUNTS.kit("3", 1, 0));
      assert.equal(asked(), 0, "an object being restored is not asked for again");
      const k3 = await kit("k1", ["--wait"]);
      assert.equal(k3.code, 0, k3.stderr);
      assert.deepEqual(pauses(k3.stderr), [2, 4], k3.stderr);
      assert.equal(asked(), 0);
      assert.deepEqual(snapshot(`${dir}/k1`), snapshot(src));
      proxy.thawHeads = 0;
      await backUp("l", "GLACIER", 1);
      proxy.setRules([{ fault: "restore-in-progress", kinds: ["restore-object"], share: 1 }]);
      const l1 = await kit("l1");
      assert.equal(l1.code, 7, l1.stderr);
      assert.equal(proxy.faults.length, 1);
      assert.doesNotMatch(l1.stderr, /cannot request/);
      proxy.setRules([]);
      const l2 = await kit("l1", ["--wait"]);
      assert.equal(l2.code, 0, l2.stderr);
      assert.deepEqual(snapshot(`${dir}/l1`), snapshot(src));
    } finally {
      client.destroy();
      await proxy.close();
      await removeBucket(target, bucket);
      await Deno.remove(dir, { recursive: true });
    }
  });
}
