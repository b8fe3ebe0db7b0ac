import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  type CacheRecord,
  type CacheState,
  filesCachePath,
  FilesCacheWriter,
  openFilesCache,
  RACY_MS,
  recordOf,
  rememberedRepository,
  rememberRepository,
} from "./files_cache.ts";
import type { FileStat } from "./source_file.ts";

const MD5 = "0123456789abcdef0123456789abcdef";
const OTHER = "fedcba9876543210fedcba9876543210";
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

/** The record of `st()`. */
const RECORD: CacheRecord = {
  md5: MD5,
  size: 10,
  mtimeMs: 1_700_000_000_123,
  ctimeMs: 1_700_000_000_456,
  ino: 42,
  dev: 7,
};

/** Writes a cache of `records` (in walk order) at `path`. */
function save(path: string, records: [string, CacheRecord][], state: CacheState = {}) {
  const w = FilesCacheWriter.create(path, "abcd");
  for (const [p, r] of records) w.add(p, r);
  w.commit(state);
}

async function withDir(fn: (dir: string) => Promise<void> | void) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("files cache: round trip in walk order, nasty paths, a hit only when every fact matches", () =>
  withDir((dir) => {
    const path = `${dir}/c/abcd/key`;
    const nasty = "dir/a file\nwith newline";
    const state = { meta: "meta_a b_20260101T000000Z", sweptMs: 5, conditional: true };
    // Walk order: a directory's contents before a sibling whose name continues it.
    const records: [string, CacheRecord][] = [
      ["a/b", RECORD],
      ["a/c", { ...RECORD, md5: OTHER }],
      ["a b", RECORD],
      [nasty, RECORD],
      ["z", RECORD],
    ];
    save(path, records, state);
    const c = openFilesCache(path, "abcd");
    assert.deepEqual(c.state, state);
    assert.equal(c.records, 5);
    assert.equal(c.lookup.md5Of("a", st()), null, "not a record: the cursor stays");
    assert.equal(c.lookup.md5Of("a/b", st()), MD5);
    assert.equal(c.lookup.md5Of("a/c", st()), OTHER);
    assert.equal(c.lookup.md5Of("a b", st({ size: 11 })), null, "a fact changed");
    assert.equal(c.lookup.md5Of("dir/a", st()), null, "a new file between records");
    assert.equal(c.lookup.md5Of(nasty, st()), MD5);
    assert.equal(c.lookup.md5Of("z", st()), MD5, "after a skipped record");
    assert.equal(c.lookup.md5Of("zz", st()), null);
    c.lookup.close();
    for (const change of [{ size: 11 }, { mtimeMs: 1 }, { ctimeMs: 1 }, { ino: 43 }, { dev: 8 }]) {
      const again = openFilesCache(path, "abcd");
      assert.equal(again.lookup.md5Of("a/b", st(change)), null, JSON.stringify(change));
      again.lookup.close();
    }
    save(path, [["a", RECORD]]);
    assert.deepEqual(openFilesCache(path, "abcd").state, {});
  }));

Deno.test("files cache: a file modified within RACY_MS of the walk is not recorded", () => {
  const old = { ctimeMs: 1_699_999_990_000 };
  const walked = 1_700_000_000_123 + RACY_MS;
  assert.equal(recordOf(MD5, st(old), walked), null, "racy mtime");
  assert.deepEqual(recordOf(MD5, st(old), walked + 1), { ...RECORD, ...old });
  assert.equal(recordOf(MD5, st({ ...old, ino: NaN }), walked + 1), null, "a fact unknown");
  // An edit that set the mtime back: only the ctime (whole seconds, as Deno has it) is recent.
  const setBack = { mtimeMs: 1_600_000_000_000, ctimeMs: 1_700_000_000_000 };
  const end = setBack.ctimeMs + 999 + RACY_MS;
  assert.equal(recordOf(MD5, st(setBack), end), null, "racy ctime, to the end of its second");
  assert.deepEqual(recordOf(MD5, st(setBack), end + 1), { ...RECORD, ...setBack });
});

Deno.test("files cache: another repository's, a truncated, garbled or older one is not used", () =>
  withDir((dir) => {
    const path = `${dir}/c/abcd/key`;
    save(path, [["a", RECORD], ["b", RECORD]], { meta: "m" });
    const good = Deno.readTextFileSync(path);
    const unused = (text: string, repo = "abcd", why = "") => {
      Deno.writeTextFileSync(path, text);
      const c = openFilesCache(path, repo);
      assert.equal(c.records, 0, why);
      assert.deepEqual(c.state, {}, why);
      assert.equal(c.lookup.md5Of("a", st()), null, why);
    };
    unused(good, "other", "another repository");
    unused(good.slice(0, -3), "abcd", "truncated");
    unused(good.replace(/\n[^\n]*\nend/, "\nend"), "abcd", "state line gone");
    unused(good.replace(MD5, OTHER), "abcd", "an MD5 changed: the checksum says so");
    unused(good.replace(" 10 ", " 11 "), "abcd", "a size changed");
    unused(good.replace("meta=m", "meta=%E0%A4%A"), "abcd", "bad escape");
    unused(good + "garbage\n", "abcd", "something after the end");
    unused(good.replace(" 3 abcd", " 2 abcd"), "abcd", "version 2");
    const v2 = `s3backup-files-cache 2 abcd\nstate\n${MD5} 10 1 2 3 4 a\n`;
    unused(v2, "abcd", "a version 2 file");
  }));

Deno.test("files cache: saved 0600 in a 0700 folder; the old one stays until commit", () =>
  withDir((dir) => {
    const path = filesCachePath(`${dir}/cache`, "abcd", "host", "/srv/data");
    assert.notEqual(path, filesCachePath(`${dir}/cache`, "abcd", "host", "/srv/other"));
    save(path, [["a", RECORD]], { sweptMs: 7 });
    assert.equal((Deno.statSync(path).mode ?? 0) & 0o777, 0o600);
    assert.equal((Deno.statSync(`${dir}/cache/abcd`).mode ?? 0) & 0o777, 0o700);
    const loaded = () => {
      const c = openFilesCache(path, "abcd");
      const hit = c.lookup.md5Of("a", st());
      c.lookup.close();
      return { state: c.state, records: c.records, hit };
    };
    const whole = { state: { sweptMs: 7 }, records: 1, hit: MD5 };
    assert.deepEqual(loaded(), whole);
    // A run that fails or crashes mid-write leaves the old cache in place.
    const w = FilesCacheWriter.create(path, "abcd");
    w.add("a", { ...RECORD, md5: OTHER });
    assert.deepEqual(loaded(), whole, "the new one is not in place before commit");
    w.discard();
    assert.deepEqual([...Deno.readDirSync(`${dir}/cache/abcd`)].length, 1, "its temp file gone");
    assert.deepEqual(loaded(), whole);
    assert.equal(openFilesCache(`${dir}/missing`, "abcd").records, 0);
    // A killed run's temporary file (its process gone) is removed by the next writer; a live
    // process's is left.
    const base = path.slice(path.lastIndexOf("/") + 1);
    const dead = `${path}.tmp-4194999-0a0b0c0d0e0f`, live = `${path}.tmp-1-0a0b0c0d0e0f`;
    // And those earlier versions left (no process id) once a day old.
    const old = `${path}.0a0b0c0d0e0f.tmp`, recent = `${path}.1a0b0c0d0e0f.tmp`;
    for (const f of [dead, live, old, recent]) Deno.writeTextFileSync(f, "partial");
    Deno.utimeSync(
      old,
      new Date(Date.now() - 2 * 86_400_000),
      new Date(Date.now() - 2 * 86_400_000),
    );
    FilesCacheWriter.create(path, "abcd").discard();
    const left = [...Deno.readDirSync(`${dir}/cache/abcd`)].map((e) => e.name).sort();
    assert.deepEqual(left, [base, `${base}.1a0b0c0d0e0f.tmp`, `${base}.tmp-1-0a0b0c0d0e0f`]);
  }));

Deno.test("files cache folder: remembers where each repository lives, by location and endpoint", () =>
  withDir((dir) => {
    const aws = "s3://backups/host1 at AWS", b2 = "s3://backups/host1 at https://s3.example";
    assert.equal(rememberedRepository(`${dir}/none`, aws), null, "no folder: none");
    rememberRepository(dir, "aaaa", aws);
    rememberRepository(dir, "aaaa", aws); // unchanged: not rewritten
    assert.equal(rememberedRepository(dir, aws), "aaaa");
    assert.equal(rememberedRepository(dir, b2), null, "one bucket name on two providers");
    rememberRepository(dir, "bbbb", b2);
    assert.equal(rememberedRepository(dir, b2), "bbbb");
    assert.equal((Deno.statSync(`${dir}/aaaa/location`).mode ?? 0) & 0o777, 0o600);
  }));

Deno.test("files cache: an older cache's kit= state field is read and ignored", () =>
  withDir((dir) => {
    const path = `${dir}/c/abcd/key`;
    save(path, [["a", RECORD]], { meta: "m" });
    const lines = Deno.readTextFileSync(path).split("\n").slice(0, -2); // without end and ""
    lines[lines.length - 1] = "state meta=m kit=ab12";
    const body = lines.map((l) => l + "\n").join("");
    const sum = createHash("sha256").update(body).digest("hex");
    Deno.writeTextFileSync(path, `${body}end 1 ${sum}\n`);
    const c = openFilesCache(path, "abcd");
    assert.deepEqual([c.state, c.records], [{ meta: "m" }, 1]);
    c.lookup.close();
  }));
