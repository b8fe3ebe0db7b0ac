import assert from "node:assert/strict";
import { UsageError } from "../util/errors.ts";
import { LocalStore } from "./local_store.ts";
import { bucketNameProblem, openStore, parseStoreUrl } from "./open_store.ts";
import { S3Store } from "./s3_store.ts";

const env = { home: "/home/u", cwd: "/work/dir" };

Deno.test("parseStoreUrl: s3:// URLs", () => {
  assert.deepEqual(parseStoreUrl("s3://my-bucket", env), {
    kind: "s3",
    bucket: "my-bucket",
    prefix: "",
  });
  assert.deepEqual(parseStoreUrl("s3://my-bucket/", env), {
    kind: "s3",
    bucket: "my-bucket",
    prefix: "",
  });
  assert.deepEqual(parseStoreUrl("s3://my.bucket/some/prefix/", env), {
    kind: "s3",
    bucket: "my.bucket",
    prefix: "some/prefix",
  });
  assert.deepEqual(parseStoreUrl("s3://b42//x//", env), { kind: "s3", bucket: "b42", prefix: "x" });
  assert.deepEqual(parseStoreUrl("S3://abc/p", env), { kind: "s3", bucket: "abc", prefix: "p" });
});

Deno.test("parseStoreUrl: a plain bucket name", () => {
  assert.deepEqual(parseStoreUrl("backups-2026", env), {
    kind: "s3",
    bucket: "backups-2026",
    prefix: "",
  });
  assert.deepEqual(parseStoreUrl("a.b-c", env), { kind: "s3", bucket: "a.b-c", prefix: "" });
});

Deno.test("parseStoreUrl: local directories", () => {
  assert.deepEqual(parseStoreUrl("/srv/backup", env), { kind: "local", path: "/srv/backup" });
  assert.deepEqual(parseStoreUrl("/srv/backup/", env), { kind: "local", path: "/srv/backup" });
  assert.deepEqual(parseStoreUrl("./repo", env), { kind: "local", path: "/work/dir/repo" });
  assert.deepEqual(parseStoreUrl("../repo", env), { kind: "local", path: "/work/repo" });
  assert.deepEqual(parseStoreUrl(".", env), { kind: "local", path: "/work/dir" });
  assert.deepEqual(parseStoreUrl("~/bk", env), { kind: "local", path: "/home/u/bk" });
  assert.deepEqual(parseStoreUrl("~", env), { kind: "local", path: "/home/u" });
  assert.deepEqual(parseStoreUrl("file:///mnt/usb%20disk/bk", env), {
    kind: "local",
    path: "/mnt/usb disk/bk",
  });
  assert.deepEqual(parseStoreUrl("file:///tmp/a/../b", env), { kind: "local", path: "/tmp/b" });
});

Deno.test("parseStoreUrl: errors are one-line UsageErrors", () => {
  const bad = [
    "",
    "ab", // too short
    "x".repeat(64),
    "My_Bucket",
    "-bucket",
    "bucket-",
    "a..b",
    "192.168.1.1",
    "relative/dir",
    "s3://",
    "s3:///prefix",
    "s3://UPPER/x",
    "s3://b_ad",
    "s3://bucket/a/../b",
    "file://host/dir",
    "file:relative",
    "file:///bad%zzescape",
    "gs://bucket",
    "https://s3.amazonaws.com/bucket",
  ];
  for (const s of bad) {
    assert.throws(
      () => parseStoreUrl(s, env),
      (err: unknown) => err instanceof UsageError && !err.message.includes("\n"),
      `should refuse ${JSON.stringify(s)}`,
    );
  }
  assert.throws(() => parseStoreUrl("~/x", { cwd: "/", home: "" }), UsageError);
});

Deno.test("bucketNameProblem", () => {
  assert.equal(bucketNameProblem("abc"), null);
  assert.equal(bucketNameProblem("a".repeat(63)), null);
  assert.match(bucketNameProblem("a".repeat(64)) ?? "", /3 to 63/);
  assert.match(bucketNameProblem("Abc") ?? "", /a-z/);
  assert.match(bucketNameProblem("10.0.0.1") ?? "", /IP address/);
});

Deno.test("openStore: the right Store for each kind", () => {
  const local = openStore("/tmp/some/repo");
  assert.ok(local instanceof LocalStore);
  assert.equal(local.kind, "local");
  assert.equal(local.location, "/tmp/some/repo");

  const s3 = openStore("s3://bucket-x/a/b/", {
    endpoint: "http://127.0.0.1:9",
    region: "eu-west-3",
    credentials: { accessKeyId: "a", secretAccessKey: "b" },
  });
  assert.ok(s3 instanceof S3Store);
  assert.equal(s3.kind, "s3");
  assert.equal(s3.location, "s3://bucket-x/a/b");
  assert.equal(s3.key("meta_x_20261127T163140Z"), "a/b/meta_x_20261127T163140Z");
  s3.close();

  const root = openStore("bucket-y", {
    endpoint: "http://127.0.0.1:9",
    credentials: { accessKeyId: "a", secretAccessKey: "b" },
  }) as S3Store;
  assert.equal(root.location, "s3://bucket-y");
  assert.equal(root.key("s3backup.conf"), "s3backup.conf");
  root.close();
});

Deno.test("S3Store: a custom endpoint means path style and checksums when required", async () => {
  const custom = new S3Store({
    bucket: "b-1",
    prefix: "",
    endpoint: "http://127.0.0.1:9",
    credentials: { accessKeyId: "a", secretAccessKey: "b" },
  });
  assert.equal(await custom.client.config.forcePathStyle, true);
  assert.equal(await custom.client.config.requestChecksumCalculation(), "WHEN_REQUIRED");
  assert.equal(await custom.client.config.responseChecksumValidation(), "WHEN_REQUIRED");
  custom.close();

  const tuned = new S3Store({
    bucket: "b-1",
    prefix: "",
    endpoint: "http://127.0.0.1:9",
    checksums: "when_supported",
    forcePathStyle: false,
    credentials: { accessKeyId: "a", secretAccessKey: "b" },
  });
  assert.equal(await tuned.client.config.forcePathStyle, false);
  assert.equal(await tuned.client.config.requestChecksumCalculation(), "WHEN_SUPPORTED");
  tuned.close();

  const aws = new S3Store({
    bucket: "b-1",
    prefix: "",
    region: "eu-west-1",
    endpoint: "",
    credentials: { accessKeyId: "a", secretAccessKey: "b" },
  });
  // endpoint "" falls back to AWS_ENDPOINT_URL(_S3) when set, else AWS itself.
  if (!Deno.env.get("AWS_ENDPOINT_URL") && !Deno.env.get("AWS_ENDPOINT_URL_S3")) {
    assert.equal(aws.endpoint, "https://s3.eu-west-1.amazonaws.com");
    assert.equal(await aws.client.config.forcePathStyle, false);
    assert.equal(await aws.client.config.requestChecksumCalculation(), "WHEN_SUPPORTED");
  }
  assert.equal(await aws.client.config.region(), "eu-west-1");
  aws.close();
});
