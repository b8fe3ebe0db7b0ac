import assert from "node:assert/strict";
import {
  cachedMd5,
  cacheFromMeta,
  encodeFilesCache,
  type FilesCache,
  filesCachePath,
  loadFilesCache,
  parseFilesCache,
  RACY_MS,
  recordOf,
  saveFilesCache,
} from "./files_cache.ts";
import type { FileStat } from "./source_file.ts";

const MD5 = "0123456789abcdef0123456789abcdef";
const st = (over: Partial<FileStat> = {}): FileStat => ({
  isFile: true,
  size: 10,
  mtimeMs: 1_700_000_000_123,
  ctimeMs: 1_700_000_000_456,
  ino: 42,
  dev: 7,
  mode: 0o100644,
  uid: 0,
  gid: 0,
  ...over,
});

/** A record with a fact of each kind. */
const SMALL = { md5: MD5, size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4, dev: 5 };

/** The record of `st()`. */
const RECORD = {
  md5: MD5,
  size: 10,
  mtimeMs: 1_700_000_000_123,
  ctimeMs: 1_700_000_000_456,
  ino: 42,
  dev: 7,
};

Deno.test("files cache: round trip, nasty paths, and a hit only when every fact matches", () => {
  const cache: FilesCache = new Map([["dir/a file\nwith newline", RECORD]]);
  const state = { meta: "meta_a b_20260101T000000Z", kit: "ab12", sweptMs: 5, conditional: true };
  const text = encodeFilesCache(cache, "abcd", state);
  assert.deepEqual(parseFilesCache(text, "abcd"), { records: cache, state });
  assert.deepEqual(parseFilesCache(encodeFilesCache(cache, "abcd", {}), "abcd")?.state, {});
  const p = "dir/a file\nwith newline";
  assert.equal(cachedMd5(cache, p, st()), MD5);
  for (const change of [{ size: 11 }, { mtimeMs: 1 }, { ctimeMs: 1 }, { ino: 43 }, { dev: 8 }]) {
    assert.equal(cachedMd5(cache, p, st(change)), null, JSON.stringify(change));
  }
  assert.equal(cachedMd5(cache, "other", st()), null);
});

Deno.test("files cache: a file modified within RACY_MS of the walk is not recorded", () => {
  const walked = 1_700_000_000_123 + RACY_MS;
  assert.equal(recordOf(MD5, st(), walked), null, "racy");
  assert.deepEqual(recordOf(MD5, st(), walked + 1), RECORD);
  assert.equal(recordOf(MD5, st({ ino: NaN }), walked + 1), null, "a fact unknown");
});

Deno.test("files cache: another repository's, a truncated or a garbled one is dropped whole", () => {
  const cache: FilesCache = new Map([["a", SMALL]]);
  const text = encodeFilesCache(cache, "abcd", { meta: "m" });
  assert.equal(parseFilesCache(text, "other"), null);
  assert.equal(parseFilesCache(text.replace("meta=m", "meta=%E0%A4%A"), "abcd"), null);
  assert.equal(parseFilesCache(text.replace("meta=m", "what=m"), "abcd"), null);
  assert.equal(parseFilesCache(text.replace(" 2 abcd", " 1 abcd"), "abcd"), null, "version 1");
  assert.equal(parseFilesCache(text.slice(0, -3), "abcd"), null);
  assert.equal(parseFilesCache(text.replace(MD5, "nothex"), "abcd"), null);
  assert.equal(parseFilesCache(text.replace(" 1 2 ", " 1 x "), "abcd"), null);
  assert.equal(parseFilesCache(text + "garbage\n", "abcd"), null);
});

Deno.test("files cache: from a meta (size and mtime only); saved 0600 in a 0700 folder", async () => {
  const file = (path: string, mtimeMs: number) => ({
    type: "f" as const,
    path,
    md5: MD5,
    mode: 0o644,
    uid: null,
    gid: null,
    size: 10,
    mtimeMs,
  });
  const fromMeta = cacheFromMeta({
    header: {
      time: new Date(1_700_000_010_000),
      host: "h",
      source: "/s",
      name: "n",
      wrappedKey: new Uint8Array(),
    },
    entries: [
      file("a", 1_700_000_000_123),
      { type: "d", path: "d", mode: 0o755, uid: null, gid: null, size: 0, mtimeMs: 0 },
      file("racy", 1_700_000_008_500), // within RACY_MS of the backup: not vouched for
    ],
  });
  assert.equal(cachedMd5(fromMeta, "a", st({ ctimeMs: 5, ino: 6, dev: 9 })), MD5);
  assert.equal(cachedMd5(fromMeta, "a", st({ mtimeMs: 5 })), null);
  assert.deepEqual([...fromMeta.keys()], ["a"]);
  const dir = await Deno.makeTempDir();
  try {
    const path = filesCachePath(`${dir}/cache`, "abcd", "host", "/srv/data");
    assert.notEqual(path, filesCachePath(`${dir}/cache`, "abcd", "host", "/srv/other"));
    const cache: FilesCache = new Map([["a", SMALL]]);
    await saveFilesCache(path, "abcd", cache, { sweptMs: 7 });
    assert.equal((Deno.statSync(path).mode ?? 0) & 0o777, 0o600);
    assert.equal((Deno.statSync(`${dir}/cache/abcd`).mode ?? 0) & 0o777, 0o700);
    const loaded = { records: cache, state: { sweptMs: 7 } };
    assert.deepEqual(await loadFilesCache(path, "abcd"), loaded);
    const empty = { records: new Map(), state: {} };
    assert.deepEqual(await loadFilesCache(path, "efgh"), empty, "dropped for another repository");
    // A crash mid-write leaves a temporary file beside it, never a half-written cache.
    await Deno.writeTextFile(`${path}.deadbeef0000.tmp`, "s3backup-files-cache 2 abcd\n" + MD5);
    assert.deepEqual(await loadFilesCache(path, "abcd"), loaded);
    assert.deepEqual(await loadFilesCache(`${dir}/missing`, "abcd"), empty);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
