/**
 * The S3 servers the test suite runs against, from the environment that `scripts/test.sh`
 * sets up:
 *
 * - `S3BACKUP_TEST_S3_ENDPOINT`: a moto_server (label "moto", any credentials). Required:
 *   without it every S3 test fails, unless `S3BACKUP_TEST_NO_S3=1` (then no S3 test runs).
 * - `S3BACKUP_TEST_CEPH_ENDPOINT` (optional, `WITH_CEPH=1 bash scripts/test.sh`): a Ceph RADOS
 *   Gateway (label "ceph") with `S3BACKUP_TEST_CEPH_ACCESS_KEY_ID` /
 *   `S3BACKUP_TEST_CEPH_SECRET_ACCESS_KEY`.
 *
 * Tests never rely on the ambient AWS_* variables: each target carries its own credentials,
 * and `childEnv()` builds a child process's environment with every ambient AWS_* variable
 * removed (AWS_CA_BUNDLE included: the endpoints are plain-http loopback).
 */

import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { LocalStore } from "../src/store/local_store.ts";
import { S3Store } from "../src/store/s3_store.ts";
import type { Store } from "../src/store/store.ts";

export interface S3Target {
  label: string;
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Set when the target is required but not configured: every test using it must fail. */
  error?: string;
}

const NOT_CONFIGURED = "S3BACKUP_TEST_S3_ENDPOINT is not set: " +
  "run the suite with bash scripts/test.sh (it starts moto_server), " +
  "or set S3BACKUP_TEST_NO_S3=1 to skip the S3 tests";

function env(name: string): string | undefined {
  return Deno.env.get(name) || undefined;
}

/** The S3 servers to test against (see the module doc). */
export function s3Targets(): S3Target[] {
  if (env("S3BACKUP_TEST_NO_S3") === "1") return [];
  const targets: S3Target[] = [];
  const moto = env("S3BACKUP_TEST_S3_ENDPOINT");
  targets.push({
    label: "moto",
    endpoint: moto ?? "",
    accessKeyId: "test",
    secretAccessKey: "test",
    region: "us-east-1",
    ...(moto ? {} : { error: NOT_CONFIGURED }),
  });
  const ceph = env("S3BACKUP_TEST_CEPH_ENDPOINT");
  if (ceph) {
    const accessKeyId = env("S3BACKUP_TEST_CEPH_ACCESS_KEY_ID") ?? "";
    const secretAccessKey = env("S3BACKUP_TEST_CEPH_SECRET_ACCESS_KEY") ?? "";
    targets.push({
      label: "ceph",
      endpoint: ceph,
      accessKeyId,
      secretAccessKey,
      region: "us-east-1",
      ...(accessKeyId && secretAccessKey ? {} : {
        error: "S3BACKUP_TEST_CEPH_ENDPOINT is set but S3BACKUP_TEST_CEPH_ACCESS_KEY_ID / " +
          "S3BACKUP_TEST_CEPH_SECRET_ACCESS_KEY are not",
      }),
    });
  }
  return targets;
}

/** Throws the target's configuration error, if any (call it first in every S3 test). */
export function requireTarget(target: S3Target): void {
  if (target.error) throw new Error(target.error);
}

/** A raw SDK client for a target (path-style, checksums only when required). */
export function targetClient(target: S3Target): S3Client {
  requireTarget(target);
  return new S3Client({
    endpoint: target.endpoint,
    region: target.region,
    forcePathStyle: true,
    credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** An S3Store on a target (explicit endpoint and credentials, no ambient AWS_* needed). */
export function targetStore(target: S3Target, bucket: string, prefix = ""): S3Store {
  requireTarget(target);
  return new S3Store({
    bucket,
    prefix,
    endpoint: target.endpoint,
    region: target.region,
    credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
  });
}

let counter = 0;

/** A bucket name no other test (or earlier run) uses. */
export function uniqueBucketName(label = "t"): string {
  const rand = crypto.getRandomValues(new Uint32Array(1))[0]!.toString(36);
  return `s3bt-${label}-${Date.now().toString(36)}-${(counter++).toString(36)}-${rand}`
    .toLowerCase().slice(0, 63);
}

/**
 * Creates a fresh, uniquely named bucket on the target. `env` holds what a child process
 * (the s3backup binary, the restore kit's aws CLI) needs to reach it; pass it through
 * `childEnv()`.
 */
export async function makeBucket(
  target: S3Target,
  opts: { objectLock?: boolean } = {},
): Promise<{ bucket: string; env: Record<string, string> }> {
  requireTarget(target);
  const bucket = uniqueBucketName(target.label);
  const client = targetClient(target);
  try {
    await client.send(
      new CreateBucketCommand({
        Bucket: bucket,
        ...(opts.objectLock ? { ObjectLockEnabledForBucket: true } : {}),
      }),
    );
  } finally {
    client.destroy();
  }
  return {
    bucket,
    env: {
      AWS_ACCESS_KEY_ID: target.accessKeyId,
      AWS_SECRET_ACCESS_KEY: target.secretAccessKey,
      AWS_REGION: target.region,
      AWS_DEFAULT_REGION: target.region,
      AWS_ENDPOINT_URL: target.endpoint,
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_PAGER: "",
    },
  };
}

/**
 * A complete environment for a child process (use with `clearEnv: true`): the current one
 * without any AWS_* variable (AWS_CA_BUNDLE, AWS_PROFILE, AWS_SESSION_TOKEN, ...), plus `extra`.
 * AWS_CA_BUNDLE is deliberately absent: the test endpoints are plain-http loopback, and a
 * bundle path from the host must not leak into what is being tested. Put it in `extra` to test
 * it.
 */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("AWS_")) out[k] = v;
  }
  return { ...out, ...extra };
}

/** Keys with a pending (not completed, not aborted) multipart upload under `prefix`. */
export async function pendingUploads(
  target: S3Target,
  bucket: string,
  prefix = "",
): Promise<string[]> {
  const client = targetClient(target);
  try {
    const out = await client.send(
      new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }),
    );
    return (out.Uploads ?? []).map((u) => u.Key ?? "");
  } finally {
    client.destroy();
  }
}

/** Best effort: empties and deletes a test bucket (Ceph keeps data between runs). */
export async function removeBucket(target: S3Target, bucket: string): Promise<void> {
  if (target.error) return;
  const client = targetClient(target);
  try {
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    for (const u of uploads.Uploads ?? []) {
      await client.send(
        new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }),
      ).catch(() => {});
    }
    // Delete page by page from the start until nothing is left (no continuation token:
    // the listing changes under it).
    for (let i = 0; i < 1000; i++) {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length === 0) break;
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
    }
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } catch {
    // best effort
  } finally {
    client.destroy();
  }
}

/** A store to run a test against: the local directory store, then every S3 target. */
export interface Backend {
  label: string;
  /** Whether Deno's resource sanitizers can stay on (the SDK keeps connections open). */
  sanitize: boolean;
  run(fn: (store: Store) => Promise<void>): Promise<void>;
}

/** The local store and one store per S3 target (fresh bucket, prefix `name`), cleaned up after. */
export function storeBackends(name: string): Backend[] {
  const out: Backend[] = [{
    label: "local",
    sanitize: true,
    async run(fn) {
      const dir = await Deno.makeTempDir({ prefix: `s3backup-${name}-store-` });
      try {
        await fn(new LocalStore(dir));
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  }];
  for (const t of s3Targets()) {
    out.push({
      label: t.label,
      sanitize: false,
      async run(fn) {
        requireTarget(t);
        const { bucket } = await makeBucket(t);
        const store = targetStore(t, bucket, name);
        try {
          await fn(store);
        } finally {
          store.close();
          await removeBucket(t, bucket);
        }
      },
    });
  }
  return out;
}
