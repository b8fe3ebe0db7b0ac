/**
 * "Ransomware" against a bucket with Object Lock and versioning, using the backup host's own
 * credentials: the key and every meta overwritten with garbage, delete markers on everything.
 * The retained versions are still there: `list`, `verify` and `restore --as-of <before>`
 * restore the last good backup identically (the binary and the kit).
 */
import assert from "node:assert/strict";
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { PASSWORD, s3backup } from "./faults/harness.ts";
import { runKit } from "./kit_runner.ts";
import { makeBucket, s3Targets, targetClient } from "./s3_env.ts";
import { snapshot } from "./tree.ts";

for (const target of s3Targets()) {
  Deno.test({
    name:
      `attack (${target.label}): garbage over the key and metas, delete markers on all; --as-of restores`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "s3backup-attack-" });
      const { bucket, env } = await makeBucket(target, { objectLock: true });
      const client = targetClient(target);
      const url = `s3://${bucket}`;
      const src = `${dir}/src`;
      const run = (args: string[]) => s3backup([...args, "-b", url], { env });
      try {
        await Deno.mkdir(`${src}/sub`, { recursive: true });
        await Deno.writeTextFile(`${src}/a.txt`, "the first file\n");
        await Deno.writeFile(`${src}/sub/b.bin`, crypto.getRandomValues(new Uint8Array(60_000)));
        for (const round of [1, 2]) {
          if (round === 2) await Deno.writeTextFile(`${src}/a.txt`, "the file, changed\n");
          const b = await run(["backup", "-f", src, "-n", "nightly", "-c", "--retain", "1d"]);
          assert.equal(b.code, 0, b.stderr);
        }
        // Versions carry whole seconds: the attack comes in a later one.
        await new Promise((r) => setTimeout(r, 1500));
        const good = new Date().toISOString();
        await new Promise((r) => setTimeout(r, 1500));

        const keys =
          ((await client.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? [])
            .map((o) => o.Key!);
        for (const k of keys.filter((k) => k === "s3backup.key" || k.startsWith("meta_"))) {
          await client.send(
            new PutObjectCommand({ Bucket: bucket, Key: k, Body: "encrypted by us, pay" }),
          );
        }
        for (const k of keys) {
          await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: k }));
        }
        const after = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
        assert.deepEqual(after.Contents ?? [], [], "the bucket looks empty");

        const lost = await run(["restore", "-m", "latest", "-f", `${dir}/lost`, "-c"]);
        assert.notEqual(lost.code, 0, "without --as-of there is nothing to restore");
        const list = await run(["list", "--as-of", good, "--tsv"]);
        assert.equal(list.code, 0, list.stderr);
        assert.equal(list.stdout.trim().split("\n").length, 2, list.stdout);
        const v = await run(["verify", "--as-of", good, "--read-data"]);
        assert.equal(v.code, 0, v.stdout + v.stderr);
        const r = await run(["restore", "--as-of", good, "-m", "latest", "-f", `${dir}/bin`, "-c"]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(snapshot(`${dir}/bin`), snapshot(src));
        const k = await runKit(
          "restore.sh",
          ["--as-of", good, url, "latest", `${dir}/kit`],
          PASSWORD,
          { ...env, PATH: "/usr/bin:/bin:/usr/local/bin" },
        );
        assert.equal(k.code, 0, k.stderr);
        assert.deepEqual(snapshot(`${dir}/kit`), snapshot(src));
        const kl = await runKit("list.sh", ["--as-of", good, url], PASSWORD, {
          ...env,
          PATH: "/usr/bin:/bin:/usr/local/bin",
        });
        assert.equal(kl.code, 0, kl.stderr);
        assert.equal(kl.stdout.match(/^meta_nightly_/gm)?.length, 2, kl.stdout);
        const w = await run(["backup", "-f", src, "--as-of", good]);
        assert.equal(w.code, 2, "backup does not take --as-of");
        const plain = await makeBucket(target);
        const nv = await s3backup(["list", "--as-of", good, "-b", `s3://${plain.bucket}`], { env });
        assert.equal(nv.code, 2, nv.stderr);
        assert.match(
          nv.stderr,
          /^s3backup: --as-of: the bucket of s3:\/\/\S+ does not keep versions\n$/,
        );
      } finally {
        client.destroy();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
