/**
 * The restore engine, in process, on a local store with hand-made metas (saveMeta): order,
 * attributes, dedupe, resume, conflicts, --only, simulate, damaged objects, hostile metas.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { formatLock } from "../../format/lock_file.ts";
import type { RecordedEntry as Entry } from "../../format/meta.ts";
import { acquireLock } from "../../repo/lock.ts";
import { openBackup as openForRestore } from "../../repo/open_backup.ts";
import {
  createRepository,
  encryptSmallObject,
  type Repository,
  saveMeta,
} from "../../repo/repository.ts";
import { LocalStore } from "../../store/local_store.ts";
import { WrongPasswordError } from "../../util/errors.ts";
import { StoreWrapper } from "../../../test/store_wrapper.ts";
import { exists, names } from "../../../test/tree.ts";
import { checkTarget, restore, type RestoreEvent, type RestoreOptions } from "./restore.ts";
import { normalizeOnly } from "./plan.ts";

const te = new TextEncoder();
const md5 = (b: Uint8Array | string) => createHash("md5").update(b).digest("hex");
const T = 1_700_000_000_123;
const IS_ROOT = Deno.uid() === 0;

/** Counts loads of each object. */
class CountingStore extends StoreWrapper {
  loads = new Map<string, number>();
  override load(name: string) {
    this.loads.set(name, (this.loads.get(name) ?? 0) + 1);
    return this.inner.load(name);
  }
}

interface Fixture {
  dir: string;
  bucket: string;
  store: CountingStore;
  repo: Repository;
  /** Stores a content; returns its MD5. */
  put(content: string | Uint8Array): Promise<string>;
  /** Saves a meta with these entries; returns its key. */
  meta(
    entries: Entry[],
    key?: string,
    header?: { host?: string; source?: string },
  ): Promise<string>;
  target: string;
}

async function fixture(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-restore-" });
  const bucket = `${dir}/bucket`;
  await Deno.mkdir(bucket);
  const local = new LocalStore(bucket);
  const repo0 = await createRepository(local, te.encode("pw"));
  const store = new CountingStore(local);
  const repo = { ...repo0, store };
  let n = 0;
  return {
    dir,
    bucket,
    store,
    repo,
    target: `${dir}/target`,
    async put(content) {
      const data = typeof content === "string" ? te.encode(content) : content;
      const m = md5(data);
      await local.save(m, await encryptSmallObject(repo, data));
      return m;
    },
    async meta(entries, key, header = {}) {
      const k = key ?? `meta_t_2030010${1 + n++}T000000Z`;
      await saveMeta(repo, k, {
        time: new Date(),
        host: header.host ?? "h",
        source: header.source ?? "/src",
        name: "t",
      }, entries);
      return k;
    },
  };
}

const d = (path: string, mode = 0o755, mtimeMs = T): Entry => ({
  type: "d",
  path,
  mode,
  uid: null,
  gid: null,
  size: 0,
  mtimeMs,
});

async function f(
  fx: Fixture,
  path: string,
  content: string | Uint8Array,
  mode = 0o644,
  mtimeMs = T,
) {
  const e: Entry = {
    type: "f",
    path,
    md5: await fx.put(content),
    mode,
    uid: null,
    gid: null,
    size: typeof content === "string" ? te.encode(content).length : content.length,
    mtimeMs,
  };
  return e;
}

/** A file entry for content that is not stored (or stored under another name). */
function fx0(path: string, content: string): Entry {
  return {
    type: "f",
    path,
    md5: md5(content),
    mode: 0o644,
    uid: null,
    gid: null,
    size: te.encode(content).length,
    mtimeMs: T,
  };
}

const l = (path: string, target: string, mtimeMs = T): Entry => ({
  type: "l",
  path,
  target,
  mode: 0o777,
  uid: null,
  gid: null,
  size: 0,
  mtimeMs,
});

async function run(fx: Fixture, entries: Entry[], opts: Partial<RestoreOptions> = {}) {
  const key = await fx.meta(entries);
  const events: RestoreEvent[] = [];
  const summary = await restore(fx.repo, { header: header(), entries }, {
    target: fx.target,
    metaKey: key,
    simulate: false,
    overwrite: false,
    ...opts,
  }, (e) => events.push(e));
  const warnings = events.filter((e) => e.type === "warning") as {
    path: string;
    message: string;
  }[];
  return { summary, events, warnings };
}

function header() {
  return { time: new Date(), host: "h", source: "/src", name: "t", wrappedKey: new Uint8Array() };
}

const read = (p: string) => Deno.readTextFileSync(p);
const mode = (p: string) => (Deno.lstatSync(p).mode ?? 0) & 0o7777;
const mtime = (p: string) => Deno.lstatSync(p).mtime?.getTime();
function cleanup(dir: string) {
  new Deno.Command("chmod", { args: ["-R", "u+rwx", dir] }).outputSync();
  Deno.removeSync(dir, { recursive: true });
}

Deno.test("restore: dirs, files, links with their modes and mtimes; dirs set last", async () => {
  const fx = await fixture();
  try {
    const entries = [
      d("ro", 0o555, T + 1000),
      await f(fx, "ro/inside", "inside a read-only dir", 0o444, T + 5),
      d("ro/sub", 0o700, T + 2000),
      await f(fx, "ro/sub/x", "x", 0o600, T + 7),
      d("empty", 0o711, T + 3000),
      await f(fx, "run.sh", "#!/bin/sh\n", 0o755, T - 86_400_000),
      await f(fx, "suid", "s", 0o4755, T),
      await f(fx, " sp\nace\t\\% ", "odd name"),
      l("link", "ro/inside", T + 11),
      l("dangling", "../no where ", T + 12),
    ];
    const { summary, warnings } = await run(fx, entries);
    assert.deepEqual(warnings, []);
    assert.equal(summary.failed, 0);
    assert.equal(summary.files, 5);
    assert.equal(summary.dirs, 3);
    assert.equal(summary.links, 2);
    const t = fx.target;
    assert.deepEqual(names(t), [
      " sp\nace\t\\% ",
      "dangling",
      "empty",
      "link",
      "ro",
      "run.sh",
      "suid",
    ]);
    assert.equal(read(`${t}/ro/inside`), "inside a read-only dir");
    assert.equal(mode(`${t}/ro`), 0o555);
    assert.equal(mtime(`${t}/ro`), T + 1000);
    assert.equal(mode(`${t}/ro/sub`), 0o700);
    assert.equal(mtime(`${t}/ro/sub`), T + 2000);
    assert.equal(mode(`${t}/ro/inside`), 0o444);
    assert.equal(mtime(`${t}/ro/inside`), T + 5);
    assert.equal(mode(`${t}/empty`), 0o711);
    assert.equal(mode(`${t}/run.sh`), 0o755);
    assert.equal(mtime(`${t}/run.sh`), T - 86_400_000);
    assert.equal(mode(`${t}/suid`), 0o4755);
    assert.equal(Deno.readLinkSync(`${t}/dangling`), "../no where ");
    assert.equal(mtime(`${t}/dangling`), T + 12);
    assert.equal(mtime(`${t}/link`), T + 11);
    assert.equal(read(`${t}/ sp\nace\t\\% `), "odd name");
    // No temporary file left behind.
    assert.deepEqual(names(`${t}/ro`), ["inside", "sub"]);
  } finally {
    cleanup(fx.dir);
  }
});

Deno.test({
  name: "restore: owners are set when running as root",
  ignore: !IS_ROOT,
  fn: async () => {
    const fx = await fixture();
    try {
      const e = { ...(await f(fx, "owned", "o", 0o4750)), uid: 1234, gid: 4321 };
      const dir = { ...d("dir", 0o2775), uid: 1235, gid: 4322 };
      const link = { ...l("dir/ln", "../owned"), uid: 1236, gid: 4323 };
      const { warnings } = await run(fx, [e, dir, link]);
      assert.deepEqual(warnings, []);
      const st = Deno.lstatSync(`${fx.target}/owned`);
      assert.deepEqual([st.uid, st.gid, (st.mode ?? 0) & 0o7777], [1234, 4321, 0o4750]);
      const sd = Deno.lstatSync(`${fx.target}/dir`);
      assert.deepEqual([sd.uid, sd.gid, (sd.mode ?? 0) & 0o7777], [1235, 4322, 0o2775]);
      const sl = Deno.lstatSync(`${fx.target}/dir/ln`);
      assert.deepEqual([sl.uid, sl.gid], [1236, 4323]);
    } finally {
      cleanup(fx.dir);
    }
  },
});

Deno.test("restore: each distinct object is downloaded once", async () => {
  const fx = await fixture();
  try {
    const entries = [
      d("a"),
      await f(fx, "a/one", "same"),
      await f(fx, "two", "same", 0o600, T + 1),
      await f(fx, "a/three", "same", 0o640, T + 2),
      await f(fx, "other", "other"),
    ];
    const { summary, warnings } = await run(fx, entries, { concurrency: 4 });
    assert.deepEqual(warnings, []);
    assert.equal(summary.objectsDownloaded, 2);
    assert.equal(fx.store.loads.get(md5("same")), 1);
    for (const p of ["a/one", "two", "a/three"]) assert.equal(read(`${fx.target}/${p}`), "same");
    assert.equal(mode(`${fx.target}/two`), 0o600);
    assert.equal(mtime(`${fx.target}/a/three`), T + 2);
  } finally {
    cleanup(fx.dir);
  }
});

Deno.test("restore: a rerun keeps identical files, fixes their attributes, reports conflicts", async () => {
  const fx = await fixture();
  try {
    const entries = [
      d("dir", 0o555),
      await f(fx, "dir/a", "aaa"),
      await f(fx, "b", "bbb", 0o600),
      await f(fx, "c", "ccc"),
      l("ln", "b"),
    ];
    await run(fx, entries);
    const t = fx.target;
    // Interrupted-looking state: one file gone, one with other attributes, one changed, and
    // the temporary file of a killed restore.
    Deno.removeSync(`${t}/dir/a`, {});
    Deno.chmodSync(`${t}/b`, 0o644);
    Deno.utimeSync(`${t}/b`, 1, 1);
    Deno.writeTextFileSync(`${t}/c`, "changed");
    Deno.writeTextFileSync(`${t}/.s3backup-restore-0123456789ab.tmp`, "partial");
    fx.store.loads.clear();
    const r2 = await run(fx, entries);
    assert.equal(r2.summary.unchanged, 1); // b
    assert.equal(r2.summary.failed, 1); // c
    assert.deepEqual(r2.warnings.map((w) => w.path), ["c"]);
    assert.match(r2.warnings[0]!.message, /other content.*--overwrite/);
    assert.equal(read(`${t}/c`), "changed");
    assert.equal(read(`${t}/dir/a`), "aaa");
    assert.equal(mode(`${t}/b`), 0o600);
    assert.equal(mtime(`${t}/b`), T);
    assert.equal(mode(`${t}/dir`), 0o555);
    assert.equal(fx.store.loads.get(md5("bbb")), undefined);
    assert.ok(!exists(`${t}/.s3backup-restore-0123456789ab.tmp`));

    const r3 = await run(fx, entries, { overwrite: true });
    assert.deepEqual(r3.warnings, []);
    assert.equal(read(`${t}/c`), "ccc");
    assert.equal(r3.summary.unchanged, 2); // dir/a and b; c replaced
    // A symlink in the place of a file is a conflict too; with --overwrite it is replaced.
    Deno.removeSync(`${t}/b`);
    Deno.symlinkSync("c", `${t}/b`);
    const r4 = await run(fx, entries);
    assert.deepEqual(r4.warnings.map((w) => w.path), ["b"]);
    assert.ok(Deno.lstatSync(`${t}/b`).isSymlink);
    await run(fx, entries, { overwrite: true });
    assert.ok(Deno.lstatSync(`${t}/b`).isFile);
    assert.equal(read(`${t}/b`), "bbb");
  } finally {
    cleanup(fx.dir);
  }
});

Deno.test("restore: only folders this restore made are taken as empty", async () => {
  const fx = await fixture();
  try {
    // The target holds old/c; new/ is made by this restore (its files are not looked for).
    Deno.mkdirSync(`${fx.target}/old`, { recursive: true });
    Deno.writeTextFileSync(`${fx.target}/old/c`, "other");
    Deno.writeTextFileSync(`${fx.target}/top`, "other");
    const entries = [
      d("new", 0o755),
      d("old", 0o755),
      await f(fx, "new/a", "aaa"),
      await f(fx, "new/b", "bbb"),
      await f(fx, "old/c", "ccc"),
      await f(fx, "top", "ttt"),
    ];
    const r = await run(fx, entries);
    assert.deepEqual(r.warnings.map((w) => w.path).sort(), ["old/c", "top"]);
    assert.match(r.warnings[0]!.message, /other content.*--overwrite/);
    assert.equal(read(`${fx.target}/new/a`), "aaa");
    assert.equal(read(`${fx.target}/old/c`), "other");
    assert.equal(read(`${fx.target}/top`), "other");
  } finally {
    cleanup(fx.dir);
  }
});

Deno.test("restore: --only restores a subtree or a file, with the dirs above", async () => {
  const fx = await fixture();
  try {
    const entries = [
      d("a", 0o750, T + 1),
      d("a/b", 0o700, T + 2),
      await f(fx, "a/b/x", "x"),
      d("a/b/c"),
      await f(fx, "a/b/c/y", "y"),
      await f(fx, "a/z", "z"),
      await f(fx, "top", "top"),
      d("a/bb"),
      await f(fx, "a/bb/no", "no"),
    ];
    assert.equal(normalizeOnly("./a/b//"), "a/b");
    const r = await run(fx, entries, { only: ["./a/b/", "top", "missing/path"] });
    assert.deepEqual(r.warnings.map((w) => [w.path, w.message]), [
      ["missing/path", `--only: no such path in ${r.summary.metaKey}`],
    ]);
    assert.deepEqual(names(fx.target), ["a", "top"]);
    assert.deepEqual(names(`${fx.target}/a`), ["b"]);
    assert.deepEqual(names(`${fx.target}/a/b`), ["c", "x"]);
    assert.equal(mode(`${fx.target}/a`), 0o750);
    assert.equal(mtime(`${fx.target}/a/b`), T + 2);
  } finally {
    cleanup(fx.dir);
  }
});

Deno.test("restore: simulate lists what would be written and writes nothing", async () => {
  const fx = await fixture();
  try {
    const entries = [
      d("a"),
      await f(fx, "a/x", "x"),
      fx0("gone", "never stored"),
      l("ln", "a/x"),
    ];
    const r = await run(fx, entries, { simulate: true });
    assert.ok(!exists(fx.target));
    const acts = r.events.filter((e) => e.type === "entry").map((e) =>
      e.type === "entry" ? `${e.action} ${e.entryType} ${e.path}` : ""
    );
    assert.deepEqual(acts, ["create d a", "create f a/x", "create l ln"]);
    assert.deepEqual(r.warnings.map((w) => [w.path, w.message]), [
      ["gone", `missing object ${md5("never stored")}`],
    ]);
    assert.equal(fx.store.loads.size, 0); // nothing downloaded
  } finally {
    cleanup(fx.dir);
  }
});

Deno.test("restore: missing and corrupt objects are named, the rest is restored", async () => {
  const fx = await fixture();
  try {
    const good = await f(fx, "good", "good content");
    const bad = await f(fx, "bad", "bad content");
    const bad2 = { ...bad, path: "bad copy" };
    const missing = fx0("missing", "not stored");
    // Flip one byte of the ciphertext: bad padding or a wrong MD5, never silently written.
    const p = `${fx.bucket}/${bad.md5}`;
    const body = Deno.readFileSync(p);
    body[20] = body[20]! ^ 0x01;
    Deno.writeFileSync(p, body);
    // And a content stored under another content's name: decrypts fine, wrong MD5.
    const swapped = fx0("swapped", "real content");
    Deno.copyFileSync(`${fx.bucket}/${good.md5}`, `${fx.bucket}/${swapped.md5}`);
    const r = await run(fx, [good, bad, bad2, missing, swapped]);
    assert.equal(r.summary.failed, 4);
    const byPath = new Map(r.warnings.map((w) => [w.path, w.message]));
    assert.match(byPath.get("bad")!, /corrupt object/);
    assert.match(byPath.get("bad copy")!, /corrupt object/);
    assert.equal(byPath.get("missing"), `missing object ${missing.md5}`);
    assert.match(byPath.get("swapped")!, /MD5 mismatch/);
    assert.deepEqual(names(fx.target), ["good"]);
    assert.equal(fx.store.loads.get(bad.md5!), 1); // not downloaded again for the copy
  } finally {
    cleanup(fx.dir);
  }
});

Deno.test("restore: hostile paths and symlinked parents never write outside the target", async () => {
  const fx = await fixture();
  const outside = `${fx.dir}/outside`;
  await Deno.mkdir(outside);
  try {
    const evil = await f(fx, "x", "evil");
    const entries: Entry[] = [
      { ...evil, path: "../evil" },
      { ...evil, path: `${outside}/abs` },
      { ...evil, path: "a/../b" },
      { ...evil, path: "./dot" },
      { ...evil, path: "a//b" },
      d("../up"),
      l("../uplink", "/etc/passwd"),
      l("s", outside),
      { ...evil, path: "s/evil" },
      l("s2", outside),
      d("s2/sub"),
      { ...evil, path: "s2/sub/evil" },
      { ...evil, path: "pre/evil" },
      d("pre2"),
      { ...evil, path: "pre2/evil" },
    ];
    await Deno.mkdir(fx.target);
    Deno.symlinkSync(outside, `${fx.target}/pre`);
    Deno.symlinkSync(outside, `${fx.target}/pre2`);
    for (const overwrite of [false, true]) {
      const r = await run(fx, entries, { overwrite });
      assert.ok(r.summary.failed >= 8, `failed ${r.summary.failed}`);
      assert.deepEqual(names(outside), []);
      assert.ok(!exists(`${fx.dir}/evil`) && !exists(`${fx.dir}/up`) && !exists(`${fx.dir}/b`));
      assert.ok(!exists(`${fx.dir}/uplink`));
    }
    const fails = (await run(fx, entries)).warnings.map((w) => w.path);
    for (const p of ["../evil", `${outside}/abs`, "a/../b", "./dot", "a//b", "../up"]) {
      assert.ok(fails.includes(p), p);
    }
    // s/evil was written into a real directory s (created for it), and the link s refused.
    assert.ok(Deno.lstatSync(`${fx.target}/s`).isDirectory);
    assert.equal(read(`${fx.target}/s/evil`), "evil");
  } finally {
    cleanup(fx.dir);
  }
});

Deno.test("restore: an abort mid-file removes the file being written; a rerun completes", async () => {
  const fx = await fixture();
  try {
    const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
    const entries = [await f(fx, "a", "a"), await f(fx, "big", big), await f(fx, "c", "c")];
    const ac = new AbortController();
    let sawTemp: string[] = [];
    // The abort lands while `big` is being written: after its object's first chunk is read.
    class AbortMidway extends StoreWrapper {
      override async load(name: string) {
        const body = await this.inner.load(name);
        if (name !== entries[1]!.md5) return body;
        let chunks = 0;
        return body.pipeThrough(
          new TransformStream({
            transform(chunk, c) {
              if (++chunks === 2) {
                sawTemp = names(fx.target).filter((n) => n.startsWith(".s3backup-restore-"));
                ac.abort(new Error("stop"));
              }
              c.enqueue(chunk);
            },
          }),
        );
      }
    }
    const repo = { ...fx.repo, store: new AbortMidway(fx.repo.store) };
    const key = await fx.meta(entries);
    await assert.rejects(
      restore(repo, { header: header(), entries }, {
        target: fx.target,
        metaKey: key,
        simulate: false,
        overwrite: false,
        concurrency: 1,
        signal: ac.signal,
      }),
      /stop/,
    );
    assert.equal(sawTemp.length, 1, "the abort landed while big was written to its temp file");
    assert.ok(names(fx.target).every((n) => !n.startsWith(".s3backup")), names(fx.target).join());
    assert.ok(!names(fx.target).includes("big"));
    const r = await run(fx, entries);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(names(fx.target), ["a", "big", "c"]);
    assert.equal(Deno.readFileSync(`${fx.target}/big`).length, big.length);
  } finally {
    cleanup(fx.dir);
  }
});

Deno.test("restore: an mtime no date can hold is reported, never set to 0", async () => {
  const fx = await fixture();
  try {
    const entries = [await f(fx, "far", "far", 0o644, 9e18), await f(fx, "ok", "ok")];
    const r = await run(fx, entries);
    assert.equal(r.summary.failed, 0);
    assert.deepEqual(r.warnings.map((w) => `${w.path}: ${w.message}`), [
      "far: cannot set owner/mode/mtime: mtime 9000000000000000 s is out of range: not set",
    ]);
    assert.notEqual(mtime(`${fx.target}/far`), 0);
    assert.equal(read(`${fx.target}/far`), "far");
  } finally {
    cleanup(fx.dir);
  }
});

Deno.test("openForRestore: latest, backup names, meta names; wrong password; lost key", async () => {
  const fx = await fixture();
  try {
    const e = await f(fx, "x", "x");
    await fx.meta([e], "meta_a_20300101T000000Z");
    await fx.meta([e, { ...e, path: "y" }], "meta_b_20300102T000000Z");
    await fx.meta([e], "meta_a_20300103T000000Z");
    await fx.meta([e], "meta_c_20290101T000000Z");
    const local = new LocalStore(fx.bucket);
    const pw = te.encode("pw");
    assert.equal((await openForRestore(local, pw, "latest")).metaKey, "meta_a_20300103T000000Z");
    assert.equal(
      (await openForRestore(local, pw, "latest", "b")).metaKey,
      "meta_b_20300102T000000Z",
    );
    assert.equal((await openForRestore(local, pw, "c")).metaKey, "meta_c_20290101T000000Z");
    const plan = await openForRestore(local, pw, "meta_b_20300102T000000Z");
    assert.equal(plan.meta.entries.length, 2);
    await assert.rejects(openForRestore(local, pw, "nope"), /No backup named "nope"/);
    await assert.rejects(openForRestore(local, pw, "meta_z_20300101T000000Z"), /No backup meta_z/);
    await assert.rejects(openForRestore(local, te.encode("wrong"), "latest"), WrongPasswordError);
    // The password is judged first, though the meta is opened beside the key.
    await assert.rejects(openForRestore(local, te.encode("wrong"), "nope"), WrongPasswordError);
    // s3backup.key lost: the meta's copy of it opens the data objects.
    Deno.removeSync(`${fx.bucket}/s3backup.key`);
    const lost = await openForRestore(local, pw, "latest");
    assert.equal(lost.metaKey, "meta_a_20300103T000000Z");
    assert.match(lost.notes[0]!, /s3backup.key is missing/);
    const r = await restore(lost.repo, lost.meta, {
      target: fx.target,
      metaKey: lost.metaKey,
      simulate: false,
      overwrite: false,
    });
    assert.equal(r.failed, 0);
    assert.equal(read(`${fx.target}/x`), "x");
    await assert.rejects(openForRestore(local, te.encode("wrong"), "latest"), WrongPasswordError);
  } finally {
    cleanup(fx.dir);
  }
});

Deno.test("checkTarget: the backup's own folder needs --overwrite, and no running backup", async () => {
  const fx = await fixture();
  try {
    const src = `${fx.dir}/src`;
    await Deno.mkdir(src);
    const meta = { header: { ...header(), host: "me", source: src }, entries: [] };
    const local = new LocalStore(fx.bucket);
    await checkTarget(local, meta, `${fx.dir}/elsewhere`, "me", false);
    await checkTarget(local, meta, src, "other-host", false);
    await assert.rejects(checkTarget(local, meta, src, "me", false), /--overwrite/);
    await assert.rejects(checkTarget(local, meta, `${fx.bucket}/x`, "me", true), /repository/);
    await checkTarget(local, meta, `${src}/`, "me", true);
    await local.save(
      "locks/backup-20300101T000000Z-0123abcd",
      te.encode(formatLock({ kind: "backup", host: "me", pid: 1, time: new Date() })),
    );
    await assert.rejects(
      checkTarget(local, meta, src, "me", true),
      /backup from this host is running/,
    );
    await checkTarget(local, meta, `${fx.dir}/elsewhere`, "me", true);
  } finally {
    cleanup(fx.dir);
  }
});

Deno.test("checkTarget: never into or over the folder a backup on this host is reading", async () => {
  const fx = await fixture();
  try {
    const live = `${fx.dir}/live`;
    await Deno.mkdir(`${live}/sub`, { recursive: true });
    // an old meta from elsewhere: only the running backup's lock makes these targets unsafe
    const meta = { header: { ...header(), host: "other", source: "/x" }, entries: [] };
    const local = new LocalStore(fx.bucket);
    const lock = await acquireLock(local, "backup", "me", { source: live });
    try {
      for (const t of [live, `${live}/sub`, fx.dir]) {
        await assert.rejects(
          checkTarget(local, meta, t, "me", true),
          /A backup of .* is running on this host/,
          t,
        );
      }
      await checkTarget(local, meta, `${fx.dir}/elsewhere`, "me", false);
      await checkTarget(local, meta, `${fx.dir}/live2`, "me", false);
      await checkTarget(local, meta, live, "another-host", false);
    } finally {
      await lock.release();
    }
    await checkTarget(local, meta, `${live}/sub`, "me", false);
  } finally {
    cleanup(fx.dir);
  }
});
