/**
 * An append-only host: its credentials may list, read and write, and delete only under locks/
 * (README "Ransomware protection", the backup host's IAM policy). Backups (first, unchanged,
 * changed, a new name) still work there, through a store that refuses every other delete and the
 * multipart sweep as S3 would (AccessDenied); and on Ceph RGW as a user that does not own the
 * bucket, under README's policy exactly, its refused deletes counted by a proxy.
 */
import assert from "node:assert/strict";
import { kitFiles } from "../src/cli/kit.ts";
import { LOCK_PREFIX } from "../src/format/layout.ts";
import { backup } from "../src/ops/backup/backup.ts";
import { createRepository } from "../src/repo/repository.ts";
import { LocalStore } from "../src/store/local_store.ts";
import type { RemoveOptions } from "../src/store/store.ts";
import { S3BackupError } from "../src/util/errors.ts";
import { StoreWrapper } from "./store_wrapper.ts";
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { s3backup } from "./faults/harness.ts";
import { FaultProxy } from "./faults/fault_proxy.ts";
import { childEnv, makeBucket, type S3Target, s3Targets, targetClient } from "./s3_env.ts";
import { snapshot } from "./tree.ts";
import { restore } from "../src/ops/restore/restore.ts";
import { loadMeta } from "../src/repo/repository.ts";

class AppendOnly extends StoreWrapper {
  refused: string[] = [];
  override remove(names: string[], opts?: RemoveOptions): Promise<void> {
    const outside = names.filter((n) => !n.startsWith(LOCK_PREFIX));
    if (outside.length > 0) {
      this.refused.push(...outside);
      return Promise.reject(new S3BackupError(`S3 DeleteObjects: AccessDenied (${outside[0]})`));
    }
    return this.inner.remove(names, opts);
  }
  override abortUploads(): Promise<number> {
    this.refused.push("(multipart sweep)");
    return Promise.reject(new S3BackupError("S3 ListMultipartUploads: AccessDenied"));
  }
}

Deno.test("append-only: backups run with deletes refused outside locks/", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-append-" });
  try {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await Deno.mkdir(`${dir}/repo`);
    await Deno.writeTextFile(`${src}/a`, "a\n");
    const store = new AppendOnly(new LocalStore(`${dir}/repo`));
    const repo = await createRepository(store, new TextEncoder().encode("pw"));
    const run = (name: string) =>
      backup(store, repo, {
        source: src,
        name,
        host: "h",
        simulate: false,
        kit: kitFiles({}),
        filesCache: { dir: `${dir}/cache` },
      });
    const first = await run("n");
    assert.ok(first.metaKey);
    const same = await run("n");
    await Deno.writeTextFile(`${src}/b`, "b\n");
    await Deno.writeTextFile(`${src}/a`, "a, changed\n");
    const changed = await run("n");
    const other = await run("other");
    for (const s of [same, changed, other]) assert.ok(s.metaKey, "each backup recorded");
    assert.equal(changed.newObjects, 1, "one pack holding both new contents");
    // Only the sweep was refused (and tolerated); nothing else tried to delete.
    assert.deepEqual([...new Set(store.refused)], ["(multipart sweep)"]);
    const out = `${dir}/out`;
    await restore(repo, await loadMeta(repo, changed.metaKey!), {
      target: out,
      metaKey: changed.metaKey!,
      simulate: false,
      overwrite: false,
    });
    assert.deepEqual(snapshot(out), snapshot(src));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const ceph = s3Targets().find((t) => t.label === "ceph");
const appendKeys = {
  accessKeyId: Deno.env.get("S3BACKUP_TEST_CEPH_APPEND_ACCESS_KEY_ID") ?? "",
  secretAccessKey: Deno.env.get("S3BACKUP_TEST_CEPH_APPEND_SECRET_ACCESS_KEY") ?? "",
};

/** Puts (or, with null, deletes) the append-only user's IAM policy, as the Ceph admin user. */
async function userPolicy(target: S3Target, policy: object | null): Promise<void> {
  const args = ["--endpoint-url", target.endpoint, "iam"];
  args.push(
    ...(policy === null
      ? ["delete-user-policy", "--user-name", "appendonly", "--policy-name", "append"]
      : [
        "put-user-policy",
        "--user-name",
        "appendonly",
        "--policy-name",
        "append",
        "--policy-document",
        JSON.stringify(policy),
      ]),
  );
  const out = await new Deno.Command("aws", {
    args,
    env: childEnv({
      AWS_ACCESS_KEY_ID: target.accessKeyId,
      AWS_SECRET_ACCESS_KEY: target.secretAccessKey,
      AWS_DEFAULT_REGION: target.region,
    }),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

/** README's policy for the backup host, exactly, with its bucket and prefix put in. */
async function readmeHostPolicy(bucket: string, prefix: string): Promise<object> {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const block = [...readme.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!)
    .find((b) => b.includes('"OwnLocks"'));
  assert.ok(block, "README has the backup host's policy");
  return JSON.parse(
    block.replaceAll("arn:aws:s3:::my-bucket", `arn:aws:s3:::${bucket}`)
      .replaceAll("/host1/", `/${prefix}/`),
  );
}

Deno.test({
  name:
    "append-only [ceph]: README's backup-host policy on a user that does not own the bucket: backups work, no delete outside locks/ tried; a prune there is refused and loses nothing",
  ignore: ceph === undefined || appendKeys.accessKeyId === "",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // The bucket is the admin's (another user); the backup host is the append-only user.
    const { bucket, env: ownerEnv } = await makeBucket(ceph!, { objectLock: true });
    const proxy = new FaultProxy(ceph!.endpoint);
    const env = {
      ...ownerEnv,
      AWS_ACCESS_KEY_ID: appendKeys.accessKeyId,
      AWS_SECRET_ACCESS_KEY: appendKeys.secretAccessKey,
      AWS_ENDPOINT_URL: proxy.endpoint,
    };
    // The host's own client goes through the proxy too: its refused delete is counted.
    const client = targetClient({ ...ceph!, ...appendKeys, endpoint: proxy.endpoint });
    const dir = await Deno.makeTempDir({ prefix: "s3backup-append-ceph-" });
    try {
      await userPolicy(ceph!, await readmeHostPolicy(bucket, "host1"));
      // The policy bites: this host cannot delete a data object's name, nor outside host1/.
      const probe = "host1/0123456789abcdef0123456789abcdef";
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: probe, Body: "x" }));
      await assert.rejects(client.send(new DeleteObjectCommand({ Bucket: bucket, Key: probe })));
      await assert.rejects(
        client.send(new PutObjectCommand({ Bucket: bucket, Key: "x", Body: "" })),
      );
      assert.deepEqual(proxy.refusedDeletes, [`${probe} 403`], "the proxy counts refusals");
      proxy.log.length = 0;

      const src = `${dir}/src`;
      await Deno.mkdir(src);
      await Deno.writeTextFile(`${src}/a`, "a\n");
      const url = `s3://${bucket}/host1`;
      const run = (args: string[]) => s3backup([...args, "-b", url, "-c"], { env });
      for (const round of [1, 2]) {
        if (round === 2) await Deno.writeTextFile(`${src}/b`, "b\n");
        const b = await run(["backup", "-f", src, "--retain", "1d"]);
        assert.equal(b.code, 0, b.stderr);
      }
      // Deletes tried: only the runs' own locks, none refused.
      assert.deepEqual(proxy.refusedDeletes, [`${probe} 403`]);
      const deletes = proxy.log.filter((l) => l.startsWith("delete "));
      assert.ok(deletes.length >= 2, "each backup removed its lock");
      for (const d of deletes) assert.match(d, /^delete (host1\/locks\/|$)/);
      const left = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: "host1/locks/" }),
      );
      assert.deepEqual(left.Contents ?? [], [], "the locks were removed");

      // A prune from this host is refused at its first step (listing versions), before any
      // delete; it removes its own lock and nothing else; every backup is still there.
      const p = await run(["prune", "--keep-last", "1", "--grace", "0"]);
      assert.equal(p.code, 1, p.stdout);
      assert.match(p.stderr, /ListObjectVersions .*access denied \(AccessDenied\)/);
      assert.deepEqual(proxy.refusedDeletes, [`${probe} 403`], "only the probe was refused");
      for (const d of proxy.log.filter((l) => l.startsWith("delete "))) {
        assert.match(d, /^delete (host1\/locks\/|$)/);
      }
      const l = await run(["list"]);
      assert.equal(l.stdout.trim().split("\n").length, 2, l.stdout);
      const r = await run(["restore", "-m", "latest", "-f", `${dir}/out`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(snapshot(`${dir}/out`), snapshot(src));
    } finally {
      await userPolicy(ceph!, null).catch(() => {});
      client.destroy();
      await proxy.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("README: the backup host's policy denies s3:BypassGovernanceRetention explicitly", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const blocks = [...readme.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]!));
  type Statement = {
    Sid?: string;
    Effect: string;
    Action: string | string[];
    Resource: string | string[];
  };
  const list = (x: string | string[]) => (Array.isArray(x) ? x : [x]);
  const host = blocks.find((b) => (b.Statement as Statement[]).some((s) => s.Sid === "OwnLocks"));
  assert.ok(host, "the backup host's policy is in README");
  const statements = host.Statement as Statement[];
  const deny = statements.find((s) =>
    s.Effect === "Deny" && list(s.Action).includes("s3:BypassGovernanceRetention")
  );
  assert.ok(deny, "an explicit Deny of s3:BypassGovernanceRetention");
  assert.ok(list(deny.Resource).includes("arn:aws:s3:::my-bucket/*"), "on every object");
  for (const s of statements.filter((s) => s.Effect === "Allow")) {
    for (const a of list(s.Action)) {
      assert.ok(!a.includes("*") && a !== "s3:BypassGovernanceRetention", `allows ${a}`);
    }
  }
  assert.match(readme, /Governance mode \(the default of `--retain-mode`\) protects only/);
});
