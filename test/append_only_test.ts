/**
 * An append-only host: its credentials may list, read and write, and delete only under locks/
 * (README "Ransomware protection", the backup host's IAM policy). Backups (first, unchanged,
 * changed, a new name) still work there, through a store that refuses every other delete and the
 * multipart sweep as S3 would (AccessDenied).
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

Deno.test({
  name: "append-only [ceph]: under a real user policy denying deletes outside locks/, backups work",
  ignore: ceph === undefined || appendKeys.accessKeyId === "",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const host: S3Target = { ...ceph!, ...appendKeys, label: "ceph-append" };
    const { bucket, env } = await makeBucket(host, { objectLock: true });
    const client = targetClient(host);
    const dir = await Deno.makeTempDir({ prefix: "s3backup-append-ceph-" });
    const res = (p: string) => `arn:aws:s3:::${bucket}/${p}`;
    try {
      await userPolicy(ceph!, {
        Version: "2012-10-17",
        Statement: [{
          Effect: "Deny",
          Action: ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"],
          Resource: [
            ..."0123456789abcdef".split("").map((c) => res(`${c}*`)),
            ...["meta_*", "s3backup.*", "restore-kit/*", "passwd/*"].map(res),
          ],
        }],
      });
      // The policy holds: this host cannot delete a data object.
      const probe = "0123456789abcdef0123456789abcdef";
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: probe, Body: "x" }));
      await assert.rejects(client.send(new DeleteObjectCommand({ Bucket: bucket, Key: probe })));

      const src = `${dir}/src`;
      await Deno.mkdir(src);
      await Deno.writeTextFile(`${src}/a`, "a\n");
      const url = `s3://${bucket}`;
      const run = (args: string[]) => s3backup([...args, "-b", url, "-c"], { env });
      for (const round of [1, 2]) {
        if (round === 2) await Deno.writeTextFile(`${src}/b`, "b\n");
        const b = await run(["backup", "-f", src, "--retain", "1d"]);
        assert.equal(b.code, 0, b.stderr);
      }
      const left = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: "locks/" }),
      );
      assert.deepEqual(left.Contents ?? [], [], "the locks were removed");
      const r = await run(["restore", "-m", "latest", "-f", `${dir}/out`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(snapshot(`${dir}/out`), snapshot(src));
    } finally {
      await userPolicy(ceph!, null).catch(() => {});
      client.destroy();
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
