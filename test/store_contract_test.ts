import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
/**
 * The Store contract (src/store/store.ts), one suite run against every backend: the local
 * directory store and each S3 server of test/s3_env.ts (moto always, Ceph RGW with
 * WITH_CEPH=1). Then a few S3-only checks (error mapping, DeleteObjects fallback, the
 * environment a child process gets).
 */

import assert from "node:assert/strict";
import * as path from "node:path";
import { LocalStore } from "../src/store/local_store.ts";
import { S3Store } from "../src/store/s3_store.ts";
import { FaultProxy } from "./faults/fault_proxy.ts";
import type { Store } from "../src/store/store.ts";
import { readAll } from "../src/util/bytes.ts";
import {
  ObjectExistsError,
  ObjectNotFoundError,
  RepositoryNotFoundError,
  S3BackupError,
} from "../src/util/errors.ts";
import {
  childEnv,
  makeBucket,
  pendingUploads,
  removeBucket,
  requireTarget,
  type S3Target,
  s3Targets,
  targetStore,
  uniqueBucketName,
} from "./s3_env.ts";

// ---------------------------------------------------------------- backends

interface Backend {
  label: string;
  /** Deno's resource/op sanitizers (off for S3: the SDK keeps connections alive). */
  sanitize: boolean;
  /** A fresh, empty store at its own location; `root`: at a new bucket's root / a new dir. */
  fresh(opts?: { root?: boolean }): Promise<Store>;
  /** A store at `sub` (a relative path) under `store`'s location. */
  under(store: Store, sub: string): Promise<Store>;
  /** A store whose bucket / directory does not exist. */
  missing(): Store;
  /** Keys with pending multipart uploads below `store` (S3 only). */
  pending?(store: Store): Promise<string[]>;
  /** Everything in `store`'s location, bypassing list()'s filters (temp files included). */
  raw?(store: Store): Promise<string[]>;
  /** Whether a save given the wrong MD5 fails (moto does not check Content-MD5: S3, Ceph do). */
  checksMd5: boolean;
  /** Called by a last test: closes clients, removes buckets / dirs. */
  cleanup(): Promise<void>;
}

function localBackend(): Backend {
  let base: string | undefined;
  let n = 0;
  const baseDir = async () => base ??= await Deno.makeTempDir({ prefix: "s3backup-store-test-" });
  return {
    label: "local",
    sanitize: true,
    checksMd5: true,
    async fresh() {
      const dir = path.join(await baseDir(), `s${n++}`);
      await Deno.mkdir(dir);
      return new LocalStore(dir);
    },
    async under(store, sub) {
      const dir = path.join((store as LocalStore).dir, sub);
      await Deno.mkdir(dir, { recursive: true });
      return new LocalStore(dir);
    },
    missing() {
      return new LocalStore(`/nonexistent-s3backup-test-${crypto.randomUUID()}/repo`);
    },
    async raw(store) {
      const out: string[] = [];
      const walk = async (dir: string, rel: string) => {
        for await (const e of Deno.readDir(dir)) {
          const name = rel ? `${rel}/${e.name}` : e.name;
          if (e.isDirectory) await walk(path.join(dir, e.name), name);
          else out.push(name);
        }
      };
      await walk((store as LocalStore).dir, "");
      return out;
    },
    async cleanup() {
      if (base) await Deno.remove(base, { recursive: true });
    },
  };
}

function s3Backend(target: S3Target): Backend {
  let shared: Promise<string> | undefined;
  const buckets: string[] = [];
  const stores: S3Store[] = [];
  let n = 0;
  const track = (s: S3Store) => (stores.push(s), s);
  const newBucket = async () => {
    const { bucket } = await makeBucket(target);
    buckets.push(bucket);
    return bucket;
  };
  return {
    label: target.label,
    sanitize: false,
    checksMd5: target.label !== "moto",
    async fresh(opts) {
      requireTarget(target);
      if (opts?.root) return track(targetStore(target, await newBucket()));
      const bucket = await (shared ??= newBucket());
      return track(targetStore(target, bucket, `t${n++}-${Date.now().toString(36)}`));
    },
    under(store, sub) {
      const s = store as S3Store;
      return Promise.resolve(
        track(targetStore(target, s.bucket, s.prefix ? `${s.prefix}/${sub}` : sub)),
      );
    },
    missing() {
      return track(targetStore(target, uniqueBucketName("missing")));
    },
    pending(store) {
      const s = store as S3Store;
      return pendingUploads(target, s.bucket, s.prefix);
    },
    async cleanup() {
      for (const s of stores) s.close();
      await Promise.all(buckets.map((b) => removeBucket(target, b)));
    },
  };
}

// ---------------------------------------------------------------- helpers

const enc = new TextEncoder();
const dec = new TextDecoder();
const MiB = 1024 * 1024;

async function text(store: Store, name: string): Promise<string> {
  return dec.decode(await readAll(await store.load(name)));
}

async function names(store: Store, prefix?: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list(prefix)) out.push(o.name);
  return out.sort();
}

async function sha256(data: Uint8Array | ReadableStream<Uint8Array>): Promise<string> {
  const bytes = data instanceof Uint8Array ? data : await readAll(data);
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

/** A stream of `data` in chunks of odd sizes (to cross part boundaries unevenly). */
function chunked(data: Uint8Array, chunk = 1_000_003): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= data.byteLength) return c.close();
      c.enqueue(data.slice(off, off + chunk));
      off += chunk;
    },
  });
}

/** A stream that yields `before` bytes in 1 MiB chunks, then errors with `err`. */
function failingStream(before: number, err: Error): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(c) {
      if (sent >= before) return c.error(err);
      const n = Math.min(MiB, before - sent);
      c.enqueue(new Uint8Array(n).fill(7));
      sent += n;
    },
  });
}

async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

async function assertAbsent(b: Backend, store: Store, name: string): Promise<void> {
  assert.equal(await store.stat(name), null, `${name} should not exist`);
  assert.ok(!(await names(store)).includes(name), `${name} should not be listed`);
  if (b.pending) assert.deepEqual(await b.pending(store), [], "no pending multipart upload");
  if (b.raw) {
    const stray = (await b.raw(store)).filter((n) => n.includes(".tmp-"));
    assert.deepEqual(stray, [], "no temp file left");
  }
}

// ---------------------------------------------------------------- the contract

export function storeContract(b: Backend): void {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({
      name: `store[${b.label}] ${name}`,
      sanitizeOps: b.sanitize,
      sanitizeResources: b.sanitize,
      fn,
    });

  test("save/load round trip: bytes, empty object, empty stream", async () => {
    const s = await b.fresh({ root: true });
    await s.checkExists();
    const bytes = randomBytes(100_000);
    await s.save("0123456789abcdef0123456789abcdef", bytes);
    assert.equal(
      await sha256(await s.load("0123456789abcdef0123456789abcdef")),
      await sha256(bytes),
    );
    await s.save("empty", new Uint8Array(0));
    assert.equal((await readAll(await s.load("empty"))).byteLength, 0);
    assert.equal((await s.stat("empty"))?.size, 0);
    await s.save("empty-stream", new ReadableStream({ start: (c) => c.close() }), { size: 0 });
    assert.equal((await readAll(await s.load("empty-stream"))).byteLength, 0);
    await s.save("small-stream", chunked(enc.encode("hello world"), 3));
    assert.equal(await text(s, "small-stream"), "hello world");
    assert.deepEqual(await names(s), [
      "0123456789abcdef0123456789abcdef",
      "empty",
      "empty-stream",
      "small-stream",
    ]);
  });

  test("a 40 MiB stream (multipart) round trips", async () => {
    const s = await b.fresh();
    const data = randomBytes(40 * MiB);
    await s.save("big", chunked(data), { size: data.byteLength });
    assert.equal((await s.stat("big"))?.size, data.byteLength);
    assert.equal(await sha256(await s.load("big")), await sha256(data));
    // and without a known size
    await s.save("big2", chunked(data, 65536));
    assert.equal(await sha256(await s.load("big2")), await sha256(data));
    if (b.pending) assert.deepEqual(await b.pending(s), []);
  });

  test("save overwrites", async () => {
    const s = await b.fresh();
    await s.save("o", enc.encode("one"));
    await s.save("o", enc.encode("second, longer"));
    assert.equal(await text(s, "o"), "second, longer");
    await s.save("o", chunked(enc.encode("3"), 1));
    assert.equal(await text(s, "o"), "3");
    assert.deepEqual(await names(s), ["o"]);
  });

  test("ifAbsent creates once: a second create fails and changes nothing", async () => {
    const s = await b.fresh();
    await s.save("s3backup.key", enc.encode("first"), { ifAbsent: true });
    await assert.rejects(
      s.save("s3backup.key", enc.encode("second"), { ifAbsent: true }),
      (err) => err instanceof ObjectExistsError && err.objectName === "s3backup.key",
    );
    assert.equal(await text(s, "s3backup.key"), "first");
    // Of several racing creates exactly one wins.
    const results = await Promise.allSettled(
      ["a", "b", "c", "d"].map((v) => s.save("meta_x", enc.encode(v), { ifAbsent: true })),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
    assert.ok(
      results.every((r) => r.status === "fulfilled" || r.reason instanceof ObjectExistsError),
    );
    assert.deepEqual(await names(s), ["meta_x", "s3backup.key"]);
    if (b.raw) assert.deepEqual((await b.raw(s)).filter((n) => n.includes(".tmp-")), []);
    // A stream creates once too (of known size; a store may read it whole first).
    await s.save("meta_y", chunked(enc.encode("streamed"), 3), { ifAbsent: true, size: 8 });
    await assert.rejects(
      s.save("meta_y", chunked(enc.encode("again"), 2), { ifAbsent: true, size: 5 }),
      ObjectExistsError,
    );
    assert.equal(await text(s, "meta_y"), "streamed");
  });

  test("stat: size and mtime; null when absent", async () => {
    const s = await b.fresh();
    const before = Date.now();
    await s.save("s3backup.conf", enc.encode("format=2\n"));
    const info = await s.stat("s3backup.conf");
    assert.ok(info);
    assert.equal(info.name, "s3backup.conf");
    assert.equal(info.size, 9);
    assert.ok(info.mtime instanceof Date);
    assert.ok(Math.abs(info.mtime.getTime() - before) < 10 * 60_000, `mtime ${info.mtime}`);
    assert.equal(await s.stat("nope"), null);
    assert.equal(await s.stat("no/such/dir"), null);
    const listed = [];
    for await (const o of s.list()) listed.push(o);
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.size, 9);
  });

  test("list: prefix filter", async () => {
    const s = await b.fresh();
    for (const n of ["meta_a_20261127T163140Z", "meta_b_20261128T000000Z", "s3backup.conf", "m"]) {
      await s.save(n, enc.encode(n));
    }
    assert.deepEqual(await names(s, "meta_"), [
      "meta_a_20261127T163140Z",
      "meta_b_20261128T000000Z",
    ]);
    assert.deepEqual(await names(s, "m"), [
      "m",
      "meta_a_20261127T163140Z",
      "meta_b_20261128T000000Z",
    ]);
    assert.deepEqual(await names(s, "zzz"), []);
    assert.equal((await names(s)).length, 4);
    assert.deepEqual(await names(s, ""), await names(s));
  });

  test("list paginates (1100 objects) and remove batches them", async () => {
    const s = await b.fresh();
    const all = Array.from({ length: 1100 }, (_, i) => `many_${String(i).padStart(4, "0")}`);
    await pool(all, 32, (n) => s.save(n, enc.encode(n)));
    await s.save("other", enc.encode("x"));
    const listed = await names(s, "many_");
    assert.equal(listed.length, 1100);
    assert.deepEqual(listed, all);
    assert.equal((await names(s)).length, 1101);
    await s.remove([...all, "absent-1", "absent-2"]);
    assert.deepEqual(await names(s), ["other"]);
  });

  test("remove: several names, absent names are fine, empty list is a no-op", async () => {
    const s = await b.fresh();
    for (const n of ["a", "b", "c", "d/e"]) await s.save(n, enc.encode(n));
    await s.remove(["a", "c", "never-there", "d/e", "x/y/z"]);
    assert.deepEqual(await names(s), ["b"]);
    await s.remove([]);
    await s.remove(["a"]);
    assert.deepEqual(await names(s), ["b"]);
  });

  test("load of a missing object: ObjectNotFoundError", async () => {
    const s = await b.fresh();
    const err = await assertRejectsWith(
      () => s.load("d41d8cd98f00b204e9800998ecf8427e"),
      ObjectNotFoundError,
    );
    assert.equal(err.objectName, "d41d8cd98f00b204e9800998ecf8427e");
    assert.equal(err.message, "Object not found: d41d8cd98f00b204e9800998ecf8427e");
    await assertRejectsWith(() => s.load("no/such/thing"), ObjectNotFoundError);
  });

  test("missing bucket / directory: RepositoryNotFoundError", async () => {
    const s = b.missing();
    await assertRejectsWith(() => s.checkExists(), RepositoryNotFoundError);
    await assertRejectsWith(() => names(s), RepositoryNotFoundError);
    await assertRejectsWith(() => names(s, "meta_"), RepositoryNotFoundError);
    await assertRejectsWith(() => s.load("s3backup.conf"), RepositoryNotFoundError);
    await assertRejectsWith(
      () => s.save("s3backup.conf", enc.encode("x")),
      RepositoryNotFoundError,
    );
    await assertRejectsWith(() => s.remove(["x"]), RepositoryNotFoundError);
    assert.equal(await s.stat("s3backup.conf"), null);
  });

  test("a stream that errors after > 1 part leaves no object and no pending upload", async () => {
    const s = await b.fresh();
    const boom = new Error("disk read failed");
    const err = await assertRejectsWith(
      () => s.save("broken", failingStream(36 * MiB, boom)),
      Error,
    );
    assert.equal(err, boom, "the stream's error is rethrown unchanged");
    await assertAbsent(b, s, "broken");
    // With a known size too, and over an existing object: the old content stays.
    await s.save("kept", enc.encode("old content"));
    const err2 = await assertRejectsWith(
      () => s.save("kept", failingStream(20 * MiB, boom), { size: 40 * MiB }),
      Error,
    );
    assert.equal(err2, boom);
    assert.equal(await text(s, "kept"), "old content");
    if (b.pending) assert.deepEqual(await b.pending(s), []);
    // Before the first part is full (no multipart upload started yet).
    const err3 = await assertRejectsWith(() => s.save("early", failingStream(MiB, boom)), Error);
    assert.equal(err3, boom);
    await assertAbsent(b, s, "early");
  });

  test("a save given its bytes' MD5 stores them; bytes of another MD5 store nothing", async () => {
    const s = await b.fresh();
    const data = randomBytes(3 * MiB);
    const md5 = createHash("md5").update(data).digest("base64");
    await s.save("spooled", chunked(data), { size: data.length, md5, deferSync: true });
    await s.flush?.();
    assert.equal(await sha256(await s.load("spooled")), await sha256(data));
    await s.save("bytes", data, { md5 });
    assert.equal(await sha256(await s.load("bytes")), await sha256(data));
    if (!b.checksMd5) return;
    const other = data.slice();
    other[5]! ^= 1;
    await assertRejectsWith(
      () => s.save("bad", chunked(other), { size: other.length, md5 }),
      S3BackupError,
    );
    await assertAbsent(b, s, "bad");
    await assertRejectsWith(() => s.save("bad", other, { md5 }), S3BackupError);
    await assertAbsent(b, s, "bad");
  });

  test("a stream of the wrong size, or an aborted save, stores nothing", async () => {
    const s = await b.fresh();
    await assertRejectsWith(
      () => s.save("short", chunked(new Uint8Array(10)), { size: 11 }),
      S3BackupError,
    );
    await assertRejectsWith(
      () => s.save("long", chunked(new Uint8Array(20 * MiB)), { size: 17 * MiB }),
      S3BackupError,
    );
    await assertRejectsWith(() => s.save("bytes", new Uint8Array(10), { size: 9 }), S3BackupError);
    for (const n of ["short", "long", "bytes"]) await assertAbsent(b, s, n);

    // Aborted as the first part is cut (its create in flight), as it uploads, and later.
    let ac = new AbortController();
    for (const at of [16, 17, 20, 33]) {
      ac = new AbortController();
      let sent = 0;
      const slow = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent === at * MiB) ac.abort(new Error("user pressed Ctrl-C"));
          c.enqueue(new Uint8Array(MiB));
          sent += MiB;
        },
      });
      const err = await assertRejectsWith(
        () => s.save(`aborted-${at}`, slow, { signal: ac.signal }),
        Error,
      );
      assert.equal(err.message, "user pressed Ctrl-C");
      await assertAbsent(b, s, `aborted-${at}`);
    }
    await assertRejectsWith(
      () => s.save("pre-aborted", enc.encode("x"), { signal: ac.signal }),
      Error,
    );
    await assertAbsent(b, s, "pre-aborted");
  });

  test("names with /", async () => {
    const s = await b.fresh();
    await s.save("restore-kit/restore.sh", enc.encode("#!/bin/sh\n"));
    await s.save("restore-kit/README.txt", chunked(enc.encode("read me"), 2));
    await s.save("a/b/c/d", enc.encode("deep"));
    await s.save("restore-kitten", enc.encode("not in the folder"));
    assert.equal(await text(s, "restore-kit/restore.sh"), "#!/bin/sh\n");
    assert.equal(await text(s, "a/b/c/d"), "deep");
    assert.equal((await s.stat("restore-kit/README.txt"))?.size, 7);
    assert.deepEqual(await names(s, "restore-kit/"), [
      "restore-kit/README.txt",
      "restore-kit/restore.sh",
    ]);
    assert.deepEqual(await names(s, "restore-kit"), [
      "restore-kit/README.txt",
      "restore-kit/restore.sh",
      "restore-kitten",
    ]);
    assert.deepEqual(await names(s, "restore-kit/re"), ["restore-kit/restore.sh"]);
    assert.deepEqual(await names(s, "a/b"), ["a/b/c/d"]);
    await s.remove(["restore-kit/restore.sh", "a/b/c/d"]);
    assert.deepEqual(await names(s), ["restore-kit/README.txt", "restore-kitten"]);
  });

  test("a prefixed store sees only its prefix", async () => {
    const root = await b.fresh();
    await root.save("pre/fix/a", enc.encode("a"));
    await root.save("pre/fix/b/c", enc.encode("bc"));
    await root.save("pre/fixed", enc.encode("not mine"));
    await root.save("top", enc.encode("not mine"));
    const p = await b.under(root, "pre/fix");
    await p.checkExists();
    assert.deepEqual(await names(p), ["a", "b/c"]);
    assert.deepEqual(await names(p, "b"), ["b/c"]);
    assert.equal(await text(p, "a"), "a");
    assert.equal(await p.stat("top"), null);
    assert.equal(await p.stat("fixed"), null);
    await assertRejectsWith(() => p.load("top"), ObjectNotFoundError);
    await p.save("new", enc.encode("new"));
    assert.equal(await text(root, "pre/fix/new"), "new");
    await p.remove(["a", "top"]);
    assert.deepEqual(await names(root), ["pre/fix/b/c", "pre/fix/new", "pre/fixed", "top"]);
    assert.match(p.location, /pre\/fix$/);
  });

  test("invalid names are refused", async () => {
    const s = await b.fresh();
    for (const bad of ["", "/abs", "a//b", "a/../b", "..", "./x", "trailing/", "back\\slash"]) {
      await assertRejectsWith(() => s.save(bad, enc.encode("x")), S3BackupError);
    }
    assert.deepEqual(await names(s), []);
  });

  Deno.test({
    name: `store[${b.label}] cleanup`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => b.cleanup(),
  });
}

async function assertRejectsWith<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  cls: new (...args: any[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof cls) return err;
    throw new assert.AssertionError({
      message: `expected ${cls.name}, got ${
        err instanceof Error ? `${err.name}: ${err.message}` : err
      }`,
    });
  }
  throw new assert.AssertionError({ message: `expected ${cls.name}, but it resolved` });
}

// ---------------------------------------------------------------- run it

storeContract(localBackend());
for (const target of s3Targets()) storeContract(s3Backend(target));

// ---------------------------------------------------------------- S3 only

for (const target of s3Targets()) {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({
      name: `s3[${target.label}] ${name}`,
      sanitizeOps: false,
      sanitizeResources: false,
      fn,
    });

  test("DeleteObjects refused by the store: falls back to single deletes", async () => {
    const { bucket } = await makeBucket(target);
    const s = targetStore(target, bucket, "x");
    try {
      for (const n of ["a", "b", "c/d"]) await s.save(n, enc.encode(n));
      let refused = 0;
      s.client.middlewareStack.add(
        (next, context) => (args) => {
          if (context.commandName === "DeleteObjectsCommand") {
            refused++;
            throw Object.assign(new Error("x-amz-checksum-crc32 is not supported"), {
              name: "NotImplemented",
              $metadata: { httpStatusCode: 501 },
            });
          }
          return next(args);
        },
        { step: "initialize", name: "refuseDeleteObjects" },
      );
      await s.remove(["a", "c/d", "absent"]);
      assert.equal(refused, 1);
      assert.ok(s.usesSingleDeletes);
      assert.deepEqual(await names(s), ["b"]);
      await s.remove(["b"]);
      assert.equal(refused, 1, "remembered for the session");
      assert.deepEqual(await names(s), []);
    } finally {
      s.close();
      await removeBucket(target, bucket);
    }
  });

  test("a stream that opens again goes as it reads; a retry opens it again", async () => {
    const data = randomBytes(3 * MiB + 7);
    const md5 = createHash("md5").update(data).digest("base64");
    const crc = new Uint8Array(4);
    new DataView(crc.buffer).setUint32(0, crc32(data) >>> 0);
    const { bucket } = await makeBucket(target);
    const proxy = new FaultProxy(target.endpoint);
    try {
      for (const checksums of ["when_required", "when_supported"] as const) {
        // The first PUT fails (500): the SDK's retry sends a stream opened again.
        proxy.setRules([{ fault: "500", kinds: ["put"], share: 1, max: 1 }]);
        const s = new S3Store({
          bucket,
          prefix: checksums,
          endpoint: proxy.endpoint,
          region: target.region,
          credentials: {
            accessKeyId: target.accessKeyId!,
            secretAccessKey: target.secretAccessKey!,
          },
          checksums,
        });
        let opens = 0;
        const reopen = () => (opens++, Promise.resolve(chunked(data, 65536)));
        await s.save("pack", chunked(data, 65536), { size: data.length, md5, reopen });
        assert.equal(proxy.injected[0], 1);
        // The retry; on AWS's checksums also the reading that counts the CRC32.
        assert.equal(opens, checksums === "when_supported" ? 2 : 1);
        const sent = proxy.putHeaders.at(-1)!;
        assert.equal(sent.get("x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
        assert.equal(sent.get("content-md5"), md5);
        assert.equal(sent.get("content-length"), String(data.length));
        assert.equal(
          sent.get("x-amz-checksum-crc32"),
          checksums === "when_supported" ? btoa(String.fromCharCode(...crc)) : null,
        );
        assert.equal(await sha256(await s.load("pack")), await sha256(data));
        // A stream that fails as it is sent (here: short) fails the save at once, with its
        // error (the SDK hears none of its body's errors: left alone, the PUT would wait).
        const short = () => Promise.resolve(chunked(data.subarray(0, data.length - 1), 65536));
        await assert.rejects(
          async () => s.save("short", await short(), { size: data.length, md5, reopen: short }),
          (err: Error) => err instanceof S3BackupError && /Size mismatch/.test(err.message),
        );
        assert.equal(await s.stat("short"), null);
        // A read error of the file: one line naming the object and the error.
        const eio = () => Promise.resolve(failingStream(MiB, new Error("EIO: i/o error")));
        await assert.rejects(
          async () => s.save("eio", await eio(), { size: data.length, md5, reopen: eio }),
          (err: Error) =>
            err instanceof S3BackupError &&
            err.message === "Cannot read eio to store it: EIO: i/o error",
        );
        assert.equal(await s.stat("eio"), null);
        // Bytes that are not the MD5's: refused on every try, nothing stored (moto checks no
        // MD5 of a streamed body: Ceph does).
        if (target.label !== "moto") {
          proxy.setRules([]);
          const other = data.slice();
          other[9]! ^= 1;
          const bad = () => Promise.resolve(chunked(other, 65536));
          await assertRejectsWith(
            async () => s.save("bad", await bad(), { size: data.length, md5, reopen: bad }),
            S3BackupError,
          );
          assert.equal(await s.stat("bad"), null);
        }
        s.close();
      }
    } finally {
      await proxy.close();
      await removeBucket(target, bucket);
    }
  });

  test("a child process reaches the bucket with makeBucket's env alone", async () => {
    const { bucket, env } = await makeBucket(target);
    try {
      const code = `
        import { openStore } from ${
        JSON.stringify(import.meta.resolve("../src/store/open_store.ts"))
      };
        const s = openStore("s3://${bucket}/pre");
        await s.checkExists();
        await s.save("hello", new TextEncoder().encode("hi"));
        for await (const o of s.list()) console.log(o.name, o.size);
      `;
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["eval", "--config", new URL("../deno.json", import.meta.url).pathname, code],
        env: childEnv(env),
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(dec.decode(out.stderr), "");
      assert.equal(out.code, 0);
      assert.equal(dec.decode(out.stdout), "hello 2\n");
      const s = targetStore(target, bucket);
      assert.equal(await text(s, "pre/hello"), "hi");
      s.close();
    } finally {
      await removeBucket(target, bucket);
    }
  });

  if (target.label === "ceph") {
    // moto accepts any credentials; Ceph checks them.
    test("wrong credentials: one clear line, no secret", async () => {
      const { bucket } = await makeBucket(target);
      const secret = "not-the-secret-0123456789";
      for (
        const creds of [
          { accessKeyId: target.accessKeyId, secretAccessKey: secret },
          { accessKeyId: "UNKNOWNKEY0000000000", secretAccessKey: secret },
        ]
      ) {
        const s = new S3Store({
          bucket,
          prefix: "",
          endpoint: target.endpoint,
          credentials: creds,
        });
        for (
          const op of [
            () => s.checkExists(),
            () => names(s),
            () => s.save("x", enc.encode("x")),
            () => s.load("x"),
            () => s.stat("x"),
          ]
        ) {
          const err = await assertRejectsWith(op, S3BackupError);
          assert.ok(!(err instanceof RepositoryNotFoundError), err.message);
          assert.ok(!err.message.includes("\n"), err.message);
          assert.ok(!err.message.includes(secret), err.message);
          assert.match(err.message, /secret access key is wrong|access key ID|access denied/);
        }
        s.close();
      }
      await removeBucket(target, bucket);
    });
  }
}

Deno.test("s3: an unreachable endpoint is one line naming it", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close(); // nothing listens there now
  const endpoint = `http://127.0.0.1:${port}`;
  const s = new S3Store({
    bucket: "some-bucket",
    prefix: "",
    endpoint,
    maxAttempts: 2,
    credentials: { accessKeyId: "a", secretAccessKey: "b" },
  });
  try {
    for (const op of [() => s.checkExists(), () => names(s), () => s.load("x")]) {
      const err = await assertRejectsWith(op, S3BackupError);
      assert.match(err.message, new RegExp(`^Cannot reach ${endpoint}: .*ECONNREFUSED`));
      assert.ok(!err.message.includes("\n"));
    }
  } finally {
    s.close();
  }
});

Deno.test("s3: a download cut short is an error, never a short object", async () => {
  // A fake S3 that announces 100 bytes, sends 50 and closes the connection.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serve = (async () => {
    for await (const conn of listener) {
      const buf = new Uint8Array(65536);
      await conn.read(buf);
      const head =
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: application/octet-stream\r\n" +
        'Last-Modified: Thu, 26 Nov 2026 10:00:00 GMT\r\nETag: "x"\r\n\r\n';
      await conn.write(enc.encode(head));
      await conn.write(new Uint8Array(50).fill(1));
      conn.close();
    }
  })().catch(() => {});
  const endpoint = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  const s = new S3Store({
    bucket: "some-bucket",
    prefix: "",
    endpoint,
    maxAttempts: 1,
    credentials: { accessKeyId: "a", secretAccessKey: "b" },
  });
  try {
    const err = await assertRejectsWith(async () => readAll(await s.load("obj")), S3BackupError);
    assert.match(
      err.message,
      /^Download of s3:\/\/some-bucket\/obj interrupted: |ended after 50 of 100/,
    );
  } finally {
    s.close();
    listener.close();
    await serve;
  }
});
