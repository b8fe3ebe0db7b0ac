import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { backup, type BackupEvent, SMALL_FILE } from "./backup.ts";
import { filesCachePath, RACY_MS } from "./files_cache.ts";
import { SourceFile } from "./source_file.ts";
import {
  createRepository,
  decryptObject,
  loadMeta,
  PasswordChangePendingError,
  type Repository,
} from "../../repo/repository.ts";
import { LocalStore } from "../../store/local_store.ts";
import type { SaveOptions, Store } from "../../store/store.ts";
import { wrapDataKey } from "../../format/key_wrap.ts";
import { KEY_NAME, KEY_NEXT_NAME } from "../../format/layout.ts";
import { acquireLock, LockedError } from "../../repo/lock.ts";
import { readAll } from "../../util/bytes.ts";
import { WrongPasswordError } from "../../util/errors.ts";
import { StoreWrapper } from "../../../test/store_wrapper.ts";

const te = new TextEncoder();
const md5 = (b: Uint8Array | string) => createHash("md5").update(b).digest("hex");

/** A repository (format 3; 2 for the tests of the format 2 writer, which hook its names). */
async function setup(format = 3) {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-engine-" });
  const src = `${dir}/src`;
  await Deno.mkdir(src);
  await Deno.mkdir(`${dir}/bucket`);
  const store = new LocalStore(`${dir}/bucket`);
  const repo = await createRepository(store, te.encode("pw"), { format });
  return { dir, src, store, repo };
}

async function run(store: Store, repo: Repository, src: string, on?: (e: BackupEvent) => void) {
  const events: BackupEvent[] = [];
  const summary = await backup(store, repo, {
    source: src,
    name: "t",
    host: "h",
    simulate: false,
    kit: new Map(),
  }, (e) => {
    events.push(e);
    on?.(e);
  });
  return { summary, events, warnings: events.filter((e) => e.type === "warning") };
}

async function objectPlain(repo: Repository, name: string): Promise<Uint8Array> {
  return await readAll((await repo.store.load(name)).pipeThrough(decryptObject(repo)));
}

/** A store that calls `hook` before the first save of a data object, once. */
class HookStore extends StoreWrapper {
  constructor(inner: Store, readonly hook: (name: string) => void) {
    super(inner);
  }
  override save(name: string, data: Uint8Array | ReadableStream<Uint8Array>, opts?: SaveOptions) {
    if (/^[0-9a-f]{32}$/.test(name)) this.hook(name);
    return this.inner.save(name, data, opts);
  }
}

Deno.test("a big file that changes while uploaded is never stored under a wrong name", async () => {
  const { dir, src, store, repo } = await setup();
  try {
    const big = `${src}/big`;
    const first = new Uint8Array(SMALL_FILE + 100).fill(1);
    await Deno.writeFile(big, first);
    let changed = false;
    const hooked = new HookStore(store, () => {
      if (changed) return;
      changed = true;
      // Between the hash pass and the upload pass, the file changes (same size).
      Deno.writeFileSync(big, new Uint8Array(SMALL_FILE + 100).fill(2));
    });
    const { summary, warnings } = await run(hooked, repo, src);
    assert.equal(warnings.length, 0);
    assert.equal(summary.skipped, 0);
    assert.equal(summary.files, 1);
    const meta = await loadMeta(repo, summary.metaKey!);
    const entry = meta.entries[0]!;
    const now = await Deno.readFile(big);
    assert.equal(entry.md5, md5(now));
    // Every data object's content hashes to its name.
    for await (const o of store.list()) {
      if (!/^[0-9a-f]{32}$/.test(o.name)) continue;
      assert.equal(md5(await objectPlain(repo, o.name)), o.name);
    }
    assert.equal(await store.stat(md5(first)), null, "the old content was half-stored");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("format 2: a file that keeps changing is skipped with a warning: partial", async () => {
  const { dir, src, store, repo } = await setup(2);
  try {
    const big = `${src}/churn`;
    await Deno.writeFile(big, new Uint8Array(SMALL_FILE + 10));
    await Deno.writeTextFile(`${src}/calm`, "calm\n");
    let n = 0;
    const hooked = new HookStore(store, (name) => {
      if (name === md5("calm\n")) return;
      Deno.writeFileSync(big, new Uint8Array(SMALL_FILE + 10).fill(++n));
    });
    const { summary, warnings } = await run(hooked, repo, src);
    assert.equal(summary.skipped, 1);
    assert.equal(warnings.length, 1);
    assert.match((warnings[0] as { message: string }).message, /changed while it was read 3 times/);
    assert.equal(n, 3, "read 3 times, then skipped");
    const meta = await loadMeta(repo, summary.metaKey!);
    assert.deepEqual(meta.entries.map((e) => e.path), ["calm"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("format 2: a file that changes twice is stored as the third read finds it", async () => {
  const { dir, src, store, repo } = await setup(2);
  try {
    const big = `${src}/churn`;
    await Deno.writeFile(big, new Uint8Array(SMALL_FILE + 10));
    let n = 0;
    const hooked = new HookStore(store, () => {
      if (n < 2) Deno.writeFileSync(big, new Uint8Array(SMALL_FILE + 10).fill(++n));
    });
    const { summary, warnings } = await run(hooked, repo, src);
    assert.deepEqual(warnings, []);
    const meta = await loadMeta(repo, summary.metaKey!);
    assert.equal(meta.entries[0]!.md5, md5(new Uint8Array(SMALL_FILE + 10).fill(2)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Whether this file system takes a name that is not UTF-8 (APFS, on macOS, refuses one: the
 * cases that need one are left out there, by this name).
 */
const NON_UTF8_NAMES = (() => {
  const d = Deno.makeTempDirSync();
  try {
    return new Deno.Command("bash", { args: ["-c", `: > "$1/"$'\\xff'`, "_", d], stderr: "null" })
      .outputSync().success;
  } finally {
    Deno.removeSync(d, { recursive: true });
  }
})();

/** `n` bytes of a log (gzips to about a quarter), different for each `seed`. */
function logBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed, at = 0;
  while (at < n) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    at += te.encodeInto(`GET /items/${x % 100_000} 200 id=${x.toString(16)}\n`, out.subarray(at))
      .written;
    if (at >= n - 64) break;
  }
  return out;
}

Deno.test("format 3: big logs are read once (a spool file each); one content stored once, as data.gz", async () => {
  const { dir, src, store, repo } = await setup();
  try {
    const log = logBytes(SMALL_FILE + 5 * 1024 * 1024, 1);
    await Deno.writeFile(`${src}/a.log`, log);
    await Deno.writeFile(`${src}/b.log`, log);
    const { summary, warnings } = await run(store, repo, src);
    assert.deepEqual(warnings, []);
    const meta = await loadMeta(repo, summary.metaKey!);
    assert.deepEqual(meta.entries.map((e) => [e.path, e.md5, e.where]), [
      ["a.log", md5(log), "data.gz"],
      ["b.log", md5(log), "data.gz"],
    ]);
    const names: string[] = [];
    for await (const o of store.list("data/")) names.push(o.name);
    assert.deepEqual(names, [`data/${md5(log)}.gz`]);
    const plain = await objectPlain(repo, names[0]!);
    assert.equal(md5(gunzipSync(plain)), md5(log));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("format 3: a big log that grows while it is read once is read again, then skipped; nothing of it stored", async () => {
  const { dir, src, store, repo } = await setup();
  try {
    const big = `${src}/live.log`;
    await Deno.writeFile(big, logBytes(SMALL_FILE + 4 * 1024 * 1024, 2));
    await Deno.writeTextFile(`${src}/calm`, "calm\n");
    const f = await Deno.open(big, { append: true });
    const grow = setInterval(() => f.writeSync(te.encode("one more line\n")), 1);
    let result;
    try {
      result = await run(store, repo, src);
    } finally {
      clearInterval(grow);
      f.close();
    }
    assert.equal(result.summary.skipped, 1);
    const warning = result.warnings[0] as { path: string; message: string };
    assert.deepEqual([warning.path, warning.message], [
      "live.log",
      "changed while it was read 3 times; skipped",
    ]);
    const meta = await loadMeta(repo, result.summary.metaKey!);
    assert.deepEqual(meta.entries.map((e) => e.path), ["calm"]);
    for await (const o of store.list("data/")) assert.fail(`stored ${o.name}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vanished files, FIFOs and undecodable names: warnings, meta still written", async () => {
  const { dir, src, store, repo } = await setup();
  try {
    await Deno.writeTextFile(`${src}/keep`, "keep\n");
    await Deno.writeTextFile(`${src}/vanish`, "vanish\n");
    const bad = NON_UTF8_NAMES ? ` && : > "$1/"$'bad\\xffname'` : "";
    const mk = new Deno.Command("bash", {
      args: ["-c", `mkfifo "$1/fifo"${bad}`, "_", src],
    }).outputSync();
    assert.equal(mk.code, 0);
    const { summary, warnings } = await run(store, repo, src, (e) => {
      if (e.type === "walked") Deno.removeSync(`${src}/vanish`);
    });
    const msgs = warnings.map((w) => (w as { message: string }).message).sort();
    assert.equal(msgs.length, NON_UTF8_NAMES ? 3 : 2, JSON.stringify(warnings));
    assert.match(msgs.join("|"), /cannot open/);
    assert.match(msgs.join("|"), /skipped FIFO/);
    if (NON_UTF8_NAMES) assert.match(msgs.join("|"), /not valid UTF-8/);
    assert.equal(
      summary.skipped,
      NON_UTF8_NAMES ? 2 : 1,
      "the FIFO is skipped on purpose; the others are partial",
    );
    const meta = await loadMeta(repo, summary.metaKey!);
    assert.deepEqual(meta.entries.map((e) => e.path), ["keep"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("entries carry mode, mtime, owner, symlink targets and empty dirs in walk order", async () => {
  const { dir, src, store, repo } = await setup();
  try {
    await Deno.mkdir(`${src}/d/e`, { recursive: true });
    await Deno.writeTextFile(`${src}/d/f`, "x");
    await Deno.chmod(`${src}/d/f`, 0o640);
    await Deno.utime(`${src}/d/f`, 1_700_000_000.123, 1_700_000_000.123);
    await Deno.symlink("../nowhere target", `${src}/d/l`);
    const { summary } = await run(store, repo, src);
    const meta = await loadMeta(repo, summary.metaKey!);
    assert.deepEqual(meta.entries.map((e) => `${e.type} ${e.path}`), [
      "d d",
      "d d/e",
      "f d/f",
      "l d/l",
    ]);
    const f = meta.entries[2]!;
    assert.equal(f.mode, 0o640);
    assert.equal(f.mtimeMs, 1_700_000_000_123);
    assert.equal(f.uid, Deno.uid());
    assert.equal(meta.entries[3]!.target, "../nowhere target");
    assert.equal(meta.header.source, src);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A store on which a foreign key lands right after the first save whose name `after` matches. */
class Racing extends StoreWrapper {
  constructor(inner: Store, readonly foreign: Uint8Array, readonly after: RegExp) {
    super(inner);
  }
  override async save(
    name: string,
    data: Uint8Array | ReadableStream<Uint8Array>,
    opts?: SaveOptions,
  ) {
    await this.inner.save(name, data, opts);
    if (this.after.test(name)) await this.inner.save(KEY_NAME, this.foreign);
  }
}

for (const format of [2, 3]) {
  Deno.test(`format ${format}: a key replaced by a foreign one during a backup: its uploads go, nothing recorded`, async () => {
    const { dir, src, store, repo } = await setup(format);
    try {
      for (let i = 0; i < 5; i++) await Deno.writeTextFile(`${src}/f${i}`, `content ${i}`);
      await Deno.writeFile(`${src}/big`, new Uint8Array(SMALL_FILE + 10).fill(7));
      // Another creator's key lands while this backup uploads (a store ignoring If-None-Match).
      const foreign = await wrapDataKey("cd".repeat(32), te.encode("pw"), repo.descriptor.keyIter);
      const stored = format === 2 ? /^[0-9a-f]{32}$/ : /^(packs|data)\//;
      await assert.rejects(
        run(new Racing(store, foreign, stored), repo, src),
        /was replaced during this backup.*removed/,
      );
      const left: string[] = [];
      for await (const o of store.list()) left.push(o.name);
      const ours = (n: string) => stored.test(n) || n.startsWith("index/") || n.startsWith("meta_");
      assert.deepEqual(left.filter(ours), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("two backups of one name in the same second get two meta names", async () => {
  const { dir, src, store, repo } = await setup();
  try {
    await Deno.writeTextFile(`${src}/a`, "a");
    const src2 = `${dir}/src2`;
    await Deno.mkdir(src2);
    await Deno.writeTextFile(`${src2}/b`, "b");
    const now = () => new Date("2026-06-01T02:00:00.250Z");
    const opts = { name: "nightly", host: "h", simulate: false, kit: new Map(), now };
    const [one, two] = await Promise.all([
      backup(store, repo, { ...opts, source: src }),
      backup(store, repo, { ...opts, source: src2 }),
    ]);
    assert.deepEqual(
      [one.metaKey, two.metaKey].sort(),
      ["meta_nightly_20260601T020000Z", "meta_nightly_20260601T020001Z"],
    );
    const paths = async (k: string) => (await loadMeta(repo, k)).entries.map((e) => e.path);
    assert.deepEqual(await paths(one.metaKey!), ["a"]);
    assert.deepEqual(await paths(two.metaKey!), ["b"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a file replaced by a FIFO after the walk is skipped at once, never waited on", async () => {
  const { dir, src, store, repo } = await setup();
  try {
    await Deno.writeTextFile(`${src}/a`, "a\n");
    await Deno.writeTextFile(`${src}/swapped`, "a regular file when walked\n");
    const swap = () => {
      Deno.removeSync(`${src}/swapped`);
      const mk = new Deno.Command("mkfifo", { args: [`${src}/swapped`] }).outputSync();
      assert.equal(mk.code, 0);
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the backup waits on the FIFO")), 20_000);
    });
    try {
      const { summary, warnings } = await Promise.race([
        run(store, repo, src, (e) => {
          if (e.type === "walked") swap();
        }),
        hang,
      ]);
      assert.deepEqual(
        warnings.map((w) => w.type === "warning" ? `${w.path}: ${w.message}` : ""),
        ["swapped: is no longer a regular file; skipped"],
      );
      assert.equal(summary.skipped, 1);
      assert.deepEqual((await loadMeta(repo, summary.metaKey!)).entries.map((e) => e.path), ["a"]);
    } finally {
      clearTimeout(timer);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "two names that read as one (not UTF-8 next to U+FFFD): one entry, one warning",
  ignore: !NON_UTF8_NAMES, // APFS refuses the name
}, async () => {
  const { dir, src, store, repo } = await setup();
  try {
    const mk = new Deno.Command("bash", {
      args: [
        "-c",
        `printf valid > "$1/dup"$'\\xef\\xbf\\xbd' && printf lossy > "$1/dup"$'\\xff'`,
        "_",
        src,
      ],
    }).outputSync();
    assert.equal(mk.code, 0, new TextDecoder().decode(mk.stderr));
    const { summary, warnings } = await run(store, repo, src);
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match((warnings[0] as { message: string }).message, /not valid UTF-8/);
    assert.equal(summary.skipped, 1);
    const meta = await loadMeta(repo, summary.metaKey!);
    assert.deepEqual(meta.entries.map((e) => e.path), ["dup\u{FFFD}"]);
    assert.equal(meta.entries[0]!.md5, md5("valid"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a backup does not start while a password change is pending, nor beside a prune", async () => {
  const { dir, src, store, repo } = await setup();
  try {
    await Deno.writeTextFile(`${src}/a`, "a");
    const objects = async () => {
      const out: string[] = [];
      for await (const o of store.list()) out.push(o.name);
      return out.filter((n) =>
        /^[0-9a-f]{32}$/.test(n) || n.startsWith("meta_") || n.startsWith("locks/")
      );
    };
    await store.save(KEY_NEXT_NAME, new Uint8Array([1]));
    await assert.rejects(run(store, repo, src), PasswordChangePendingError);
    assert.deepEqual(await objects(), [], "nothing uploaded, no lock left");
    await store.remove([KEY_NEXT_NAME]);
    const prune = await acquireLock(store, "prune", "other-host");
    try {
      await assert.rejects(
        run(store, repo, src),
        (e) => e instanceof LockedError && /a prune is running/.test(e.message),
      );
      assert.deepEqual((await objects()).filter((n) => !n.startsWith("locks/prune-")), []);
    } finally {
      await prune.release();
    }
    const { summary } = await run(store, repo, src);
    assert.ok(summary.metaKey);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Records the names each call of a store asks for, as `<call> <name or prefix>`. */
class AskedStore extends StoreWrapper {
  readonly asked: string[] = [];
  override save(name: string, data: Uint8Array | ReadableStream<Uint8Array>, opts?: SaveOptions) {
    this.asked.push(`save ${name}`);
    return super.save(name, data, opts);
  }
  override load(name: string) {
    this.asked.push(`load ${name}`);
    return super.load(name);
  }
  override stat(name: string) {
    this.asked.push(`stat ${name}`);
    return super.stat(name);
  }
  override list(prefix?: string) {
    this.asked.push(`list ${prefix ?? ""}`);
    return super.list(prefix);
  }
}

Deno.test("a repository still opening: the lock is taken, then the store listed meanwhile; a wrong password is told first, and ends a lock wait", async () => {
  const { dir, src, store: inner, repo } = await setup();
  const store = new AskedStore(inner);
  const locks = async () => (await Array.fromAsync(store.list("locks/"))).map((o) => o.name);
  const opts = { source: src, name: "t", host: "h", simulate: false, kit: new Map() };
  try {
    await Deno.writeTextFile(`${src}/a`, "a");
    // Opened while the lock is written: the lock is there before the repository opens, and
    // the store is listed (after the lock, before the key opens).
    let opened!: (r: Repository) => void;
    const opening = new Promise<Repository>((r) => opened = r);
    const descriptor = Promise.resolve(repo.descriptor);
    const running = backup(store, { descriptor, repository: opening }, opts);
    const early = ["list meta_", "list packs/", "list data/", "list index/", "load s3backup.key"];
    const until = Date.now() + 10_000;
    while (!early.every((a) => store.asked.includes(a)) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const lockPut = store.asked.findIndex((a) => a.startsWith("save locks/"));
    assert.ok(lockPut >= 0, store.asked.join("\n"));
    for (const a of [...early, `stat ${KEY_NEXT_NAME}`]) {
      assert.ok(
        store.asked.indexOf(a) > lockPut,
        `${a} after the lock:\n${store.asked.join("\n")}`,
      );
    }
    opened(repo);
    assert.ok((await running).metaKey);
    assert.deepEqual(await locks(), []);
    // A prune holds the lock and the backup would wait a minute: the wrong password ends it.
    const prune = await acquireLock(store, "prune", "other-host");
    try {
      const started = Date.now();
      const wrong = new Promise<Repository>((_, reject) =>
        setTimeout(() => reject(new WrongPasswordError("Wrong password")), 200)
      );
      await assert.rejects(
        backup(store, { descriptor: Promise.resolve(repo.descriptor), repository: wrong }, {
          ...opts,
          lock: { waitMs: 60_000 },
        }),
        WrongPasswordError,
      );
      assert.ok(Date.now() - started < 10_000, "the lock's wait went on");
      assert.deepEqual((await locks()).filter((n) => !n.startsWith("locks/prune-")), []);
    } finally {
      await prune.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Waits until files written before it are no longer racy (ctime: files_cache.ts RACY_MS). */
function settle(): Promise<void> {
  return new Promise((r) => setTimeout(r, RACY_MS + 1_000));
}

/**
 * Records (as `name` gives them) the files backups open, streamed or whole, until `restore`:
 * each file once, also when its read as walked falls back to the reads after it.
 */
function spyOpens(name: (p: string) => string): { opened: string[]; restore: () => void } {
  const opened: string[] = [];
  const { open, readWholeSync, readAsWalkedSync } = SourceFile;
  let fellBack: string | null = null; // a read as walked that gave way to the others
  const record = (p: string) => {
    if (p !== fellBack) opened.push(name(p));
    fellBack = null;
  };
  SourceFile.readAsWalkedSync = (p, walked) => {
    record(p);
    const r = readAsWalkedSync.call(SourceFile, p, walked);
    fellBack = r === null ? p : null;
    return r;
  };
  SourceFile.open = (p: string) => (record(p), open.call(SourceFile, p));
  SourceFile.readWholeSync = (p, limit) => (record(p), readWholeSync.call(SourceFile, p, limit));
  const restore = () => Object.assign(SourceFile, { open, readWholeSync, readAsWalkedSync });
  return { opened, restore };
}

Deno.test("files cache: an unchanged file is not opened; a changed one is, even with size and mtime kept", async () => {
  const { dir, src, store, repo } = await setup();
  const { opened, restore } = spyOpens((p) => p.slice(src.length + 1));
  try {
    const old = new Date(Date.now() - 60_000); // not racy (files_cache.ts RACY_MS)
    for (let i = 0; i < 5; i++) {
      await Deno.writeTextFile(`${src}/f${i}`, `content ${i}`);
      await Deno.utime(`${src}/f${i}`, old, old);
    }
    await settle();
    const filesCache = { dir: `${dir}/cache` };
    const go = async (extra: { forceRehash?: boolean } = {}) => {
      opened.length = 0;
      return (await backup(store, repo, {
        source: src,
        name: "t",
        host: "h",
        simulate: false,
        kit: new Map(),
        filesCache: { ...filesCache, ...extra },
      })).filesFromCache;
    };
    assert.equal(await go(), 0);
    assert.equal(opened.length, 5);
    assert.equal(await go(), 5);
    assert.deepEqual(opened, [], "nothing opened when nothing changed");
    // Same size, mtime set back: the ctime still tells.
    const before = Deno.statSync(`${src}/f2`).mtime!;
    await new Promise((r) => setTimeout(r, 1100)); // ctime is compared in whole seconds
    await Deno.writeTextFile(`${src}/f2`, "CONTENT 2");
    await Deno.utime(`${src}/f2`, before, before);
    assert.equal(await go(), 4);
    assert.deepEqual(opened, ["f2"]);
    const latest = async () => {
      let last = "";
      for await (const o of store.list("meta_")) if (o.name > last) last = o.name;
      return await loadMeta(repo, last);
    };
    assert.equal((await latest()).entries.find((e) => e.path === "f2")!.md5, md5("CONTENT 2"));
    assert.equal(await go({ forceRehash: true }), 0);
    assert.equal(opened.length, 5, "--force-rehash reads every file");
    // No cache: every file is read (a meta knows no ctime or inode), nothing is stored again.
    await Deno.remove(`${dir}/cache`, { recursive: true });
    assert.equal(await go(), 0);
    assert.equal(opened.length, 5);
    for await (const e of Deno.readDir(src)) {
      assert.match(e.name, /^f\d$/, "the source is not written");
    }
  } finally {
    restore();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("files cache: no stand-in from another source's meta of the name; racy files read again", async () => {
  const { dir, src, store, repo } = await setup();
  const { opened, restore } = spyOpens((p) => p.slice(p.lastIndexOf("/") + 1));
  try {
    // Two sources whose files agree in path, size and mtime but not in content.
    const other = `${dir}/other`;
    await Deno.mkdir(other);
    const old = new Date(Date.now() - 60_000);
    for (const [root, text] of [[src, "mine"], [other, "ours"]] as const) {
      await Deno.writeTextFile(`${root}/f`, text);
      await Deno.utime(`${root}/f`, old, old);
    }
    await settle();
    await Deno.writeTextFile(`${src}/fresh`, "just written"); // racy: mtime now
    const go = async (source: string, host = "h") => {
      opened.length = 0;
      const s = await backup(store, repo, {
        source,
        name: "t",
        host,
        simulate: false,
        kit: new Map(),
        filesCache: { dir: `${dir}/cache-${host}` },
      });
      return (await loadMeta(repo, s.metaKey!)).entries.find((e) => e.path === "f")!.md5;
    };
    assert.equal(await go(other), md5("ours"));
    assert.equal(await go(src), md5("mine"), "the other source's meta is not a stand-in");
    assert.deepEqual(opened.sort(), ["f", "fresh"]);
    assert.equal(await go(src), md5("mine"));
    assert.deepEqual(opened, ["fresh"], "a file modified as the walk began is read again");
    assert.equal(await go(other, "h2"), md5("ours"), "nor another host's");
    assert.deepEqual(opened, ["f"]);
  } finally {
    restore();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("format 2: an object cut short in the store (a crash before the flush) is saved again", async () => {
  const { dir, src, store, repo } = await setup(2);
  try {
    const old = new Date(Date.now() - 60_000);
    const write = async (name: string, text: string) => {
      await Deno.writeTextFile(`${src}/${name}`, text);
      await Deno.utime(`${src}/${name}`, old, old);
    };
    const go = (forceRehash = false) =>
      backup(store, repo, {
        source: src,
        name: "t",
        host: "h",
        simulate: false,
        kit: new Map(),
        filesCache: { dir: `${dir}/cache`, forceRehash },
      });
    await write("a", "first");
    await go();
    const cacheFile = filesCachePath(`${dir}/cache`, repo.descriptor.id, "h", src);
    const before = await Deno.readFile(cacheFile);
    // A run that stores b and dies before its meta: its object may be cut short (no fsync yet).
    await write("b", "some content");
    const crashed = await go();
    await store.remove([crashed.metaKey!]);
    await Deno.writeFile(cacheFile, before);
    const object = `${dir}/bucket/${md5("some content")}`;
    const whole = await Deno.readFile(object);
    for (const [cut, force] of [[0, false], [16, false], [whole.length - 1, true]] as const) {
      await Deno.truncate(object, cut);
      const s = await go(force);
      assert.equal(s.newObjects, 1, `cut to ${cut}: saved again (${force ? "listing" : "HEAD"})`);
      assert.equal(Deno.statSync(object).size, whole.length);
      await store.remove([s.metaKey!]);
      await Deno.writeFile(cacheFile, before);
    }
    assert.equal((await go()).newObjects, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("files cache: one that cannot be written is a warning; the backup is recorded", async () => {
  const { dir, src, store, repo } = await setup();
  try {
    await Deno.writeTextFile(`${src}/a`, "a");
    await Deno.writeTextFile(`${dir}/not-a-folder`, "x");
    const events: BackupEvent[] = [];
    const s = await backup(store, repo, {
      source: src,
      name: "t",
      host: "h",
      simulate: false,
      kit: new Map(),
      filesCache: { dir: `${dir}/not-a-folder/cache` },
    }, (e) => events.push(e));
    assert.ok(s.metaKey);
    assert.equal(s.skipped, 0, "not partial");
    const w = events.filter((e) => e.type === "warning") as { message: string }[];
    assert.equal(w.length, 1);
    assert.match(w[0]!.message, /^cannot write the files cache: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--skip-if-unchanged: no meta while the entries are the last meta's; one when they change", async () => {
  const { dir, src, store, repo } = await setup();
  try {
    await Deno.writeTextFile(`${src}/a`, "a\n");
    const past = new Date(Date.now() - 60_000); // not racy: the cache vouches for it
    Deno.utimeSync(`${src}/a`, past, past);
    const once = (skipIfUnchanged: boolean, name = "t") =>
      backup(store, repo, {
        source: src,
        name,
        host: "h",
        simulate: false,
        kit: new Map(),
        skipIfUnchanged,
        filesCache: { dir: `${dir}/cache` },
      });
    const metas = async () => (await Array.fromAsync(store.list("meta_"))).length;
    const first = await once(true);
    assert.equal(first.unchangedSince, null, "no meta yet: one is written");
    assert.equal(await metas(), 1);
    const same = await once(true);
    assert.equal(same.unchangedSince, first.metaKey);
    assert.equal(same.metaKey, null);
    assert.equal(await metas(), 1, "nothing written");
    assert.equal((await once(false)).unchangedSince, null, "without the flag: a meta each run");
    assert.equal(await metas(), 2);
    assert.equal((await once(true, "other")).unchangedSince, null, "another name: its own meta");
    await Deno.chmod(`${src}/a`, 0o600); // a mode change alone is a change
    const changed = await once(true, "other");
    assert.equal(changed.unchangedSince, null);
    assert.equal(await metas(), 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("format 3: a pack cut short in the store (a crash before the flush) is stored again", async () => {
  const { dir, src, store, repo } = await setup();
  try {
    const go = () =>
      backup(store, repo, {
        source: src,
        name: "t",
        host: "h",
        simulate: false,
        kit: new Map(),
        filesCache: { dir: `${dir}/cache`, forceRehash: true },
      });
    await Deno.writeTextFile(`${src}/a`, "first ".repeat(100));
    await Deno.writeTextFile(`${src}/b`, "second");
    assert.equal((await go()).newObjects, 1, "one pack");
    const pack = [...Deno.readDirSync(`${dir}/bucket/packs`)][0]!.name;
    const path = `${dir}/bucket/packs/${pack}`;
    const whole = Deno.statSync(path).size;
    for (const cut of [0, 16, whole - 16]) {
      Deno.truncateSync(path, cut);
      const s = await go();
      assert.equal(s.newObjects, 1, `cut to ${cut}: its contents stored again, in a new pack`);
      const meta = await loadMeta(repo, s.metaKey!);
      assert.ok(
        meta.entries.every((e) => !e.where?.startsWith(pack)),
        "the new meta names the new pack",
      );
      Deno.writeFileSync(path, new Uint8Array(whole)); // the same size again: vouched by size
      await store.remove(
        [...Deno.readDirSync(`${dir}/bucket/packs`)].map((e) => `packs/${e.name}`).filter((n) =>
          n !== `packs/${pack}`
        ),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
