/**
 * passwd: the change itself (local store and each S3 server of test/s3_env.ts), and an
 * interruption after every single write or delete, each followed by the checks that every
 * backup still opens and that running passwd again completes.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { backup } from "./backup/backup.ts";
import { encodeDescriptor } from "../format/descriptor.ts";
import { unwrapDataKey, wrapDataKey } from "../format/key_wrap.ts";
import { DESCRIPTOR_NAME, KEY_NAME, KEY_NEXT_NAME, KEY_PREV_NAME } from "../format/layout.ts";
import type { Meta } from "../format/meta.ts";
import { acquireLock, LockedError } from "../repo/lock.ts";
import {
  checkPasswordUnchanged,
  createRepository,
  loadMeta,
  openRepository,
  PasswordChangePendingError,
  type Repository,
} from "../repo/repository.ts";
import { LocalStore } from "../store/local_store.ts";
import type { SaveOptions, Store } from "../store/store.ts";
import { readAll } from "../util/bytes.ts";
import { exitCodeOf, UsageError, WrongPasswordError } from "../util/errors.ts";
import { storeBackends } from "../../test/s3_env.ts";
import { runKit } from "../../test/kit_runner.ts";
import { StoreWrapper } from "../../test/store_wrapper.ts";
import { changePassword, replaceWrappedKey } from "./change_password.ts";
import { verify } from "./verify.ts";

const te = new TextEncoder();
const OLD = te.encode("old password");
const NEW = te.encode("new password ✓");
const OTHER = te.encode("yet another one");
const HOST = "test-host";

/** Every object of the store: name -> bytes. */
async function snapshot(store: Store): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const o of store.list()) out.set(o.name, await readAll(await store.load(o.name)));
  return out;
}

function metaKeys(objects: Map<string, Uint8Array>): string[] {
  return [...objects.keys()].filter((k) => k.startsWith("meta_")).sort();
}

/** A meta as comparable data (the wrapped key left out). */
function plain(m: Meta): unknown {
  return { ...m, header: { ...m.header, wrappedKey: undefined } };
}

async function twoBackups(store: Store, repo: Repository): Promise<void> {
  const src = await Deno.makeTempDir({ prefix: "s3backup-passwd-src-" });
  try {
    await Deno.writeTextFile(path.join(src, "a.txt"), "alpha");
    const opts = { source: src, name: "docs", host: HOST, simulate: false, kit: new Map() };
    await backup(store, repo, { ...opts, now: () => new Date("2026-01-01T00:00:00Z") });
    await Deno.writeTextFile(path.join(src, "b.txt"), "beta");
    await backup(store, repo, {
      ...opts,
      name: "more",
      now: () => new Date("2026-01-02T00:00:00Z"),
    });
  } finally {
    await Deno.remove(src, { recursive: true });
  }
}

const backends = () => storeBackends("passwd");

Deno.test("replaceWrappedKey changes that header line only", () => {
  const text = "s3backup-meta 2\ntime T\nwrapped-key AAAA\nx y\nentries\nwrapped-key zz\nend 1\n";
  assert.equal(
    replaceWrappedKey(text, new Uint8Array([1, 2, 3])),
    "s3backup-meta 2\ntime T\nwrapped-key AQID\nx y\nentries\nwrapped-key zz\nend 1\n",
  );
});

for (const b of backends()) {
  Deno.test({
    name: `passwd [${b.label}]: the old password stops working, the new one opens everything`,
    sanitizeOps: b.sanitize,
    sanitizeResources: b.sanitize,
    fn: () =>
      b.run(async (store) => {
        const repo = await createRepository(store, OLD);
        await twoBackups(store, repo);
        const before = await snapshot(store);
        const metas = metaKeys(before);
        assert.equal(metas.length, 2);
        const oldMetas = await Promise.all(metas.map((m) => loadMeta(repo, m)));

        // Refusals write nothing.
        await assert.rejects(changePassword(store, NEW, OTHER, { host: HOST }), WrongPasswordError);
        await assert.rejects(changePassword(store, OLD, OLD, { host: HOST }), UsageError);
        const lock = await acquireLock(store, "backup", "elsewhere");
        await assert.rejects(changePassword(store, OLD, NEW, { host: HOST }), LockedError);
        await lock.release();
        assert.deepEqual(await snapshot(store), before);

        const phases: string[] = [];
        const s = await changePassword(store, OLD, NEW, { host: HOST }, (e) => {
          if (e.type === "phase") phases.push(e.phase);
        });
        assert.deepEqual(phases, ["prepare", "switch", "cleanup"]);
        assert.equal(s.metas, 2);
        assert.equal(s.finishedInterrupted, false);
        assert.equal(s.restarted, false);

        const err = await openRepository(store, OLD).catch((e) => e);
        assert.ok(err instanceof WrongPasswordError);
        assert.equal(exitCodeOf(err), 4);
        await assert.rejects(openRepository(store, OLD), WrongPasswordError);
        const repo2 = await openRepository(store, NEW);
        assert.deepEqual(repo2.dataKey, repo.dataKey);
        for (const [i, m] of metas.entries()) {
          const meta = await loadMeta(repo2, m); // plain reader, no fallback
          assert.deepEqual(plain(meta), plain(oldMetas[i]!));
          assert.deepEqual(meta.header.wrappedKey, repo2.wrappedKey);
          await assert.rejects(loadMeta({ ...repo2, password: OLD }, m));
        }
        // Same object names; data objects and everything else byte for byte the same.
        const after = await snapshot(store);
        assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
        for (const [name, bytes] of before) {
          if (name === KEY_NAME || name.startsWith("meta_")) continue;
          assert.deepEqual(after.get(name), bytes, name);
        }
        const v = await verify(repo2, { readData: true });
        assert.equal(v.problems, 0);
        assert.equal(v.objectsRead, 2);
        await checkPasswordUnchanged(repo2.store, repo2);
        await assert.rejects(checkPasswordUnchanged(repo.store, repo), /was changed while/);
      }),
  });
}

// ------------------------------------------------------------------ interruptions

/** Fails every write and delete after the first `budget`; records those that went through. */
class FailingStore extends StoreWrapper {
  readonly log: string[] = [];
  constructor(inner: Store, public budget: number) {
    super(inner);
  }
  #spend(what: string) {
    if (this.budget <= 0) throw new Error(`injected failure before ${what}`);
    this.budget--;
    this.log.push(what);
  }
  override save(name: string, data: Uint8Array | ReadableStream<Uint8Array>, opts?: SaveOptions) {
    this.#spend(`save ${name.replace(/^locks\/.*/, "locks/…")}`);
    return this.inner.save(name, data, opts);
  }
  override remove(names: string[]) {
    this.#spend(`remove ${names.map((n) => n.replace(/^locks\/.*/, "locks/…")).join(",")}`);
    return this.inner.remove(names);
  }
}

/** A repository whose key-iter is 1000 (a legal descriptor value): fast KDFs for many runs. */
async function fastRepository(store: Store): Promise<Repository> {
  const repo = await createRepository(store, OLD);
  const descriptor = { ...repo.descriptor, keyIter: 1000 };
  await store.save(DESCRIPTOR_NAME, te.encode(encodeDescriptor(descriptor)));
  const dataKey = new TextDecoder().decode(repo.dataKey);
  const wrappedKey = await wrapDataKey(dataKey, OLD, 1000);
  await store.save(KEY_NAME, wrappedKey);
  return { ...repo, descriptor, wrappedKey };
}

/** Which metas open with `pw` through the fallback readers (null: the key does not open). */
async function opening(store: Store, pw: Uint8Array, metas: string[]): Promise<string[] | null> {
  let repo: Repository;
  try {
    repo = await openRepository(store, pw);
  } catch (err) {
    if (err instanceof WrongPasswordError) return null;
    throw err;
  }
  const ok: string[] = [];
  for (const m of metas) {
    try {
      const meta = await loadMeta(repo, m);
      // Its own wrapped key opens with the same password (what the restore kit uses).
      const key = await unwrapDataKey(meta.header.wrappedKey, pw, repo.descriptor.keyIter);
      assert.equal(key, new TextDecoder().decode(repo.dataKey));
      ok.push(m);
    } catch (err) {
      if (!(err instanceof Error && err.name === "CorruptDataError")) throw err;
    }
  }
  return ok;
}

Deno.test("passwd: interrupted after every write or delete, every backup still opens and a rerun completes", async () => {
  const base = await Deno.makeTempDir({ prefix: "s3backup-passwd-cut-" });
  try {
    const template = path.join(base, "template");
    await Deno.mkdir(template);
    const tStore = new LocalStore(template);
    const repo = await fastRepository(tStore);
    await twoBackups(tStore, repo);
    const before = await snapshot(tStore);
    const metas = metaKeys(before);
    const oldMetas = await Promise.all(metas.map((m) => loadMeta(repo, m)));

    // The full sequence of writes and deletes, uninterrupted.
    const full = new FailingStore(new LocalStore(path.join(base, "full")), 1e9);
    await Deno.mkdir(path.join(base, "full"));
    for (const [n, bytes] of before) await full.inner.save(n, bytes);
    await changePassword(full, OLD, NEW, { host: HOST, concurrency: 1 });
    const seq = full.log;
    assert.deepEqual(seq, [
      "save locks/…",
      `save ${KEY_NEXT_NAME}`,
      ...metas.map((m) => `save passwd/next/${m}`),
      `save ${KEY_PREV_NAME}`,
      `save ${KEY_NAME}`,
      ...metas.flatMap((m) => [`save passwd/prev/${m}`, `save ${m}`]),
      `remove ${metas.map((m) => `passwd/next/${m}`).join(",")}`,
      `remove ${metas.map((m) => `passwd/prev/${m}`).join(",")}`,
      `remove ${KEY_PREV_NAME}`,
      `remove ${KEY_NEXT_NAME}`,
      "remove locks/…",
    ]);
    const prepared = seq.indexOf(`save ${KEY_PREV_NAME}`); // writes done once (a) is complete
    const prevGone = seq.findIndex((s) => s.startsWith("remove passwd/prev/")) + 1;

    for (let cut = 0; cut < seq.length; cut++) {
      const dir = path.join(base, `cut${cut}`);
      await Deno.mkdir(dir);
      const plainStore = new LocalStore(dir);
      for (const [n, bytes] of before) await plainStore.save(n, bytes);
      const failing = new FailingStore(plainStore, cut);
      await assert.rejects(
        changePassword(failing, OLD, NEW, { host: HOST, concurrency: 1 }),
        /injected failure/,
        `cut ${cut}`,
      );
      const withOld = await opening(plainStore, OLD, metas);
      const withNew = await opening(plainStore, NEW, metas);
      const where = `cut ${cut} (after: ${seq[cut - 1] ?? "nothing"})`;
      for (const m of metas) {
        assert.ok(
          withOld?.includes(m) || withNew?.includes(m),
          `${where}: ${m} opens with neither`,
        );
      }
      if (cut < prevGone) assert.deepEqual(withOld, metas, `${where}: old password`);
      if (cut >= prepared) assert.deepEqual(withNew, metas, `${where}: new password`);
      // The restore kit, the second reader, opens the same state the same way.
      for (const [pw, opened] of [[OLD, withOld], [NEW, withNew]] as const) {
        if (opened?.length !== metas.length) continue;
        const pwText = new TextDecoder().decode(pw);
        const list = await runKit("list.sh", [dir], pwText);
        assert.equal(list.code, 0, `${where}: kit list.sh: ${list.stderr}`);
        for (const m of metas) assert.match(list.stdout, new RegExp(`^${m} .* \\d+$`, "m"), where);
        const out = path.join(base, `kit-out-${cut}`);
        const r = await runKit("restore.sh", [dir, "latest", out], pwText);
        assert.equal(r.code, 0, `${where}: kit restore.sh: ${r.stderr}`);
        await Deno.remove(out, { recursive: true });
      }

      // A crashed run's lock stays until stale (2 h): what a rerun later finds is without it.
      const locks: string[] = [];
      for await (const o of plainStore.list("locks/")) locks.push(o.name);
      await plainStore.remove(locks);

      // Rerunning the same command completes the change.
      const s = await changePassword(plainStore, OLD, NEW, { host: HOST });
      const keySaved = seq.indexOf(`save ${KEY_NAME}`),
        nextRemoved = seq.indexOf(`remove ${KEY_NEXT_NAME}`);
      assert.equal(s.finishedInterrupted, cut > keySaved && cut <= nextRemoved, where);
      assert.equal(s.alreadyChanged, cut > nextRemoved, where);
      const after = await snapshot(plainStore);
      assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), where);
      for (const [name, bytes] of before) {
        if (name === KEY_NAME || name.startsWith("meta_")) continue;
        assert.deepEqual(after.get(name), bytes, `${where}: ${name}`);
      }
      await assert.rejects(openRepository(plainStore, OLD), WrongPasswordError, where);
      const r2 = await openRepository(plainStore, NEW);
      for (const [i, m] of metas.entries()) {
        const meta = await loadMeta(r2, m);
        assert.deepEqual(plain(meta), plain(oldMetas[i]!), `${where}: ${m}`);
        assert.deepEqual(meta.header.wrappedKey, r2.wrappedKey, `${where}: ${m} wrapped-key`);
      }
      await Deno.remove(dir, { recursive: true });
    }
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("passwd: an interrupted change is restarted to another password until it takes effect, not after", async () => {
  const base = await Deno.makeTempDir({ prefix: "s3backup-passwd-other-" });
  try {
    const store = new LocalStore(base);
    const repo = await fastRepository(store);
    await twoBackups(store, repo);
    const metas = metaKeys(await snapshot(store));
    const clearLocks = async () => {
      const locks: string[] = [];
      for await (const o of store.list("locks/")) locks.push(o.name);
      await store.remove(locks);
    };

    // Interrupted in (a): backups and prunes refuse to start; nothing has taken effect.
    await assert.rejects(
      changePassword(new FailingStore(store, 3), OLD, NEW, { host: HOST, concurrency: 1 }),
      /injected/,
    );
    await clearLocks();
    await assert.rejects(checkPasswordUnchanged(repo.store, repo), PasswordChangePendingError);
    // ... so another new password may be chosen.
    let s = await changePassword(store, OLD, OTHER, { host: HOST });
    assert.equal(s.restarted, true);
    assert.equal(s.finishedInterrupted, false);
    assert.equal(await opening(store, NEW, metas), null);
    assert.deepEqual(await opening(store, OTHER, metas), metas);

    // Interrupted after the key switched (OTHER -> NEW): only NEW can finish it...
    const cut = 1 + 1 + metas.length + 2 + 1; // lock, .next, next/*, .prev, key, first prev/
    await assert.rejects(
      changePassword(new FailingStore(store, cut), OTHER, NEW, { host: HOST, concurrency: 1 }),
      /injected/,
    );
    await clearLocks();
    await assert.rejects(
      changePassword(store, OTHER, OLD, { host: HOST }),
      PasswordChangePendingError,
    );
    // ... also given as the current password, then changed again.
    s = await changePassword(store, NEW, OLD, { host: HOST });
    assert.equal(s.finishedInterrupted, true);
    assert.deepEqual(await opening(store, OLD, metas), metas);
    assert.equal(await opening(store, NEW, metas), null);
    assert.equal(await opening(store, OTHER, metas), null);
    await checkPasswordUnchanged(store, await openRepository(store, OLD));
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
