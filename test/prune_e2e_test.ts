/**
 * prune end to end, on the local store and each S3 server of test/s3_env.ts: the policy keeps
 * exactly what it says, a prune racing a backup loses nothing that backup needs, refusals
 * delete nothing. Then the binary itself (verify / check, prune, passwd) and its exit codes.
 */
import { RUN_FLAGS } from "../scripts/permissions.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as path from "node:path";
import { KEY_NEXT_NAME } from "../src/format/layout.ts";
import { backup } from "../src/ops/backup/backup.ts";
import { prune, type PruneEvent } from "../src/ops/prune/prune.ts";
import { verify } from "../src/ops/verify.ts";
import { acquireLock, LockedError } from "../src/repo/lock.ts";
import { readIndex } from "../src/repo/pack_index_store.ts";
import {
  createRepository,
  openRepository,
  PasswordChangePendingError,
  type Repository,
} from "../src/repo/repository.ts";
import { LocalStore } from "../src/store/local_store.ts";
import { S3Store } from "../src/store/s3_store.ts";
import type { RemoveOptions, SaveOptions, Store } from "../src/store/store.ts";
import { readAll } from "../src/util/bytes.ts";
import { CorruptDataError, S3BackupError } from "../src/util/errors.ts";
import { childEnv, storeBackends } from "./s3_env.ts";
import { StoreWrapper } from "./store_wrapper.ts";

const te = new TextEncoder();
const PASSWORD = "prune test password";
const PW = te.encode(PASSWORD);
const HOST = "prune-test";
const MAIN = new URL("../src/main.ts", import.meta.url).pathname;

function md5(s: string): string {
  return createHash("md5").update(s).digest("hex");
}

const backends = () => storeBackends("prune");

/** Backs up a folder holding exactly `files` (name -> content) as backup `name` at `time`. */
async function backupOf(
  store: Store,
  repo: Repository,
  name: string,
  time: string,
  files: Record<string, string>,
): Promise<string> {
  return (await backupRun(store, repo, name, time, files)).metaKey!;
}

/** backupOf's run, its summary. */
async function backupRun(
  store: Store,
  repo: Repository,
  name: string,
  time: string,
  files: Record<string, string>,
) {
  const src = await Deno.makeTempDir({ prefix: "s3backup-prune-src-" });
  try {
    for (const [f, content] of Object.entries(files)) {
      await Deno.writeTextFile(path.join(src, f), content);
    }
    const s = await backup(store, repo, {
      source: src,
      name,
      host: HOST,
      simulate: false,
      kit: new Map(),
      now: () => new Date(time),
    });
    return s;
  } finally {
    await Deno.remove(src, { recursive: true });
  }
}

async function names(store: Store, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list(prefix)) out.push(o.name);
  return out.sort();
}

const DOCS = [
  "2026-03-01T10:00:00Z",
  "2026-03-01T22:00:00Z",
  "2026-03-02T10:00:00Z",
  "2026-03-09T10:00:00Z",
  "2026-03-20T10:00:00Z",
  "2026-04-01T10:00:00Z",
  "2026-04-02T10:00:00Z",
];

for (const b of backends()) {
  Deno.test({
    name: `prune [${b.label}]: format 2: keeps exactly what the policy says, dry run first`,
    sanitizeOps: b.sanitize,
    sanitizeResources: b.sanitize,
    fn: () =>
      b.run(async (store) => {
        const repo = await createRepository(store, PW, { format: 2 });
        const metas: string[] = [];
        for (const t of DOCS) {
          metas.push(await backupOf(store, repo, "docs", t, { "shared.txt": "S", "at.txt": t }));
        }
        const other = await backupOf(store, repo, "other", "2026-01-01T00:00:00Z", { o: "O" });
        const before = await names(store);
        const policy = { daily: 2, monthly: 2 };
        const keep = [metas[4]!, metas[5]!, metas[6]!, other];
        const gone = [metas[0]!, metas[1]!, metas[2]!, metas[3]!];
        const goneObjects = DOCS.slice(0, 4).map(md5).sort();

        const events: PruneEvent[] = [];
        const dry = await prune(
          repo,
          { policy, dryRun: true, graceMs: 0, host: HOST },
          (e) => events.push(e),
        );
        assert.deepEqual(dry.metasRemoved, gone);
        assert.equal(dry.metasKept, 4);
        assert.equal(dry.objectsRemoved, 4);
        assert.deepEqual(
          events.flatMap((e) => e.type === "object" ? [e.name] : []),
          goneObjects,
        );
        assert.deepEqual(
          events.flatMap((e) =>
            e.type === "meta" && e.decision.keep
              ? [`${e.decision.meta.key} ${e.decision.reasons}`]
              : []
          ),
          [
            `${other} daily,monthly`,
            `${metas[4]} monthly`,
            `${metas[5]} daily`,
            `${metas[6]} daily,monthly`,
          ],
        );
        assert.deepEqual(await names(store), before); // nothing deleted, no lock taken

        // With the default grace period, these fresh objects stay.
        let s = await prune(repo, { policy, dryRun: true, host: HOST });
        assert.equal(s.objectsRemoved, 0);
        assert.equal(s.objectsTooYoung, 4);

        s = await prune(repo, { policy, dryRun: false, graceMs: 0, host: HOST });
        assert.deepEqual(s.metasRemoved, gone);
        assert.equal(s.objectsRemoved, 4);
        assert.equal(s.bytesRemoved, dry.bytesRemoved);
        assert.equal(s.dataSkipped, false);
        const after = await names(store);
        assert.deepEqual(
          after,
          before.filter((n) => !gone.includes(n) && !goneObjects.includes(n)),
        );
        assert.deepEqual(after.filter((n) => n.startsWith("meta_")), keep.sort());
        assert.deepEqual(await names(store, "locks/"), []);
        const v = await verify(repo, { readData: true });
        assert.equal(v.problems, 0);
        assert.equal(v.metas, 4);
        // Idempotent.
        s = await prune(repo, { policy, dryRun: false, graceMs: 0, host: HOST });
        assert.deepEqual([s.metasRemoved.length, s.objectsRemoved], [0, 0]);
        if (store instanceof S3Store) {
          // moto takes DeleteObjects as the SDK sends it (no fallback to single deletes).
          assert.equal(store.usesSingleDeletes, false);
        }
      }),
  });

  Deno.test({
    name: `prune [${b.label}]: format 2: racing a backup loses nothing the backup needs`,
    sanitizeOps: b.sanitize,
    sanitizeResources: b.sanitize,
    fn: () =>
      b.run(async (store) => {
        const repo = await createRepository(store, PW, { format: 2 });
        // x1's content is used by no kept meta once x1 goes: an orphan, older than any grace.
        const x1 = await backupOf(store, repo, "x", "2026-01-01T00:00:00Z", { a: "x1 content" });
        await backupOf(store, repo, "x", "2026-01-02T00:00:00Z", { a: "x2 content" });

        // Backup y reuses the orphan and uploads a new object, then stops before its meta.
        const hook = new PauseBeforeMeta(store);
        const running = backupOf(hook, { ...repo, store: hook }, "y", "2026-01-03T00:00:00Z", {
          reused: "x1 content",
          fresh: "y content",
        });
        await hook.reached;
        assert.ok((await names(store)).includes(md5("y content")));

        // A prune meanwhile, with a clock 90 minutes ahead: every object is past the grace.
        const later = () => new Date(Date.now() + 90 * 60_000);
        let s = await prune(repo, { policy: { last: 1 }, dryRun: false, host: HOST, now: later });
        assert.equal(s.dataSkipped, true);
        assert.deepEqual(s.backupLocks.map((l) => l.host), [HOST]); // backup()'s own lock
        assert.deepEqual(s.metasRemoved, [x1]); // metas may go
        assert.equal(s.objectsRemoved, 0);
        assert.ok((await names(store)).includes(md5("x1 content")));
        assert.ok((await names(store)).includes(md5("y content")));

        hook.resume();
        const y = await running;
        assert.deepEqual(await names(store, "locks/"), []);
        let v = await verify(repo, { readData: true });
        assert.equal(v.problems, 0);
        assert.equal(v.metas, 2);

        // Without a lock (a writer whose lock went stale), the grace period still keeps what
        // a running backup uploaded; the backup finds its lock gone and records nothing.
        const hook2 = new PauseBeforeMeta(store, { hideLocks: true });
        const running2 = backupOf(hook2, { ...repo, store: hook2 }, "z", "2026-01-04T00:00:00Z", {
          fresh: "z content",
        });
        await hook2.reached;
        s = await prune(repo, { policy: { last: 1 }, dryRun: false, host: HOST });
        assert.equal(s.dataSkipped, false);
        assert.equal(s.objectsRemoved, 0);
        assert.ok(s.objectsTooYoung >= 1);
        hook2.resume();
        await assert.rejects(
          running2,
          /lock locks\/backup-\S+ lapsed while it ran \(it was removed/,
        );
        v = await verify(repo, { readData: true });
        assert.equal(v.problems, 0);
        assert.equal(v.metas, 2);
        assert.ok(y.startsWith("meta_y_"));

        // And now, nothing running and a late clock: x2 content is still used, nothing goes.
        s = await prune(repo, { policy: { last: 1 }, dryRun: false, host: HOST, now: later });
        assert.equal(s.objectsRemoved, 0);
        assert.equal((await verify(repo, { readData: true })).problems, 0);
      }),
  });

  Deno.test({
    name: `prune [${b.label}]: format 2: refusals delete nothing`,
    sanitizeOps: b.sanitize,
    sanitizeResources: b.sanitize,
    fn: () =>
      b.run(async (store) => {
        const repo = await createRepository(store, PW, { format: 2 });
        await backupOf(store, repo, "x", "2026-01-01T00:00:00Z", { a: "one" });
        const keptMeta = await backupOf(store, repo, "x", "2026-01-02T00:00:00Z", { a: "two" });
        const before = await names(store);
        const opts = { policy: { last: 1 }, dryRun: false, graceMs: 0, host: HOST };

        // A kept meta that does not open: its references are unknown.
        const good = await readAll(await store.load(keptMeta));
        await store.save(keptMeta, good.subarray(0, good.length - 16));
        await assert.rejects(prune(repo, opts), (err) => {
          assert.ok(err instanceof CorruptDataError);
          assert.match(err.message, /^Cannot prune: .*Nothing was deleted$/);
          return true;
        });
        assert.deepEqual(await names(store), before);
        await store.save(keptMeta, good);

        // Something named like a meta that is not one.
        await store.save("meta_junk", te.encode("?"));
        await assert.rejects(prune(repo, opts), /Cannot prune: meta_junk looks like a meta/);
        await store.remove(["meta_junk"]);

        // A password change in progress, or another prune.
        await store.save(KEY_NEXT_NAME, te.encode("x"));
        await assert.rejects(prune(repo, opts), PasswordChangePendingError);
        await store.remove([KEY_NEXT_NAME]);
        const other = await acquireLock(store, "prune", "elsewhere");
        await assert.rejects(prune(repo, opts), LockedError);
        await other.release();
        assert.deepEqual(await names(store), before);

        // The password changed between opening and locking.
        const stale = { ...repo, wrappedKey: new Uint8Array(repo.wrappedKey.length) };
        await assert.rejects(prune(stale, opts), S3BackupError);
        assert.deepEqual(await names(store), before);

        // Its lock removed while it ran (unlock --force elsewhere): metas may go, no data.
        const unlocked = new LocksGoWithMetas(store);
        await assert.rejects(
          prune({ ...repo, store: unlocked }, opts),
          /Cannot finish the prune: its lock locks\/prune-\S+ lapsed \(it was removed .*no data object was deleted/,
        );
        const after = await names(store);
        assert.deepEqual(
          after.filter((n) => /^[0-9a-f]{32}$/.test(n)),
          before.filter((n) => /^[0-9a-f]{32}$/.test(n)),
        );
        assert.ok(!after.some((n) => n.startsWith("locks/")));
      }),
  });
}

/** A store where removing a meta removes every lock too: a prune's lock taken away mid-run. */
class LocksGoWithMetas extends StoreWrapper {
  override async remove(names: string[], opts?: RemoveOptions) {
    await this.inner.remove(names, opts);
    if (names.some((n) => n.startsWith("meta_"))) {
      const locks: string[] = [];
      for await (const o of this.inner.list("locks/")) locks.push(o.name);
      await this.inner.remove(locks);
    }
  }
}

/** Random text of `n` characters (hex: gzip halves it, no more). */
function noise(n: number): string {
  const b = crypto.getRandomValues(new Uint8Array(Math.ceil(n / 2)));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("").slice(0, n);
}

/** Day 1: a (big), b in pack P1. Day 2: b, c (c in P2). Returns the metas and the packs. */
async function twoDays(store: Store, repo: Repository) {
  const a = noise(40_000);
  const m1 = await backupOf(store, repo, "x", "2026-01-01T00:00:00Z", { a, b: "B" });
  const m2 = await backupOf(store, repo, "x", "2026-01-02T00:00:00Z", { b: "B", c: "C2" });
  return { a, m1, m2, packs: await names(store, "packs/") };
}

/** The size of each object under `prefix`. */
async function sizes(store: Store, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of store.list(prefix)) out.set(o.name, o.size);
  return out;
}

for (const b of backends()) {
  Deno.test({
    name:
      `prune [${b.label}, format 3]: --max-unused repacks a pack in place; what is kept restores`,
    sanitizeOps: b.sanitize,
    sanitizeResources: b.sanitize,
    fn: () =>
      b.run(async (store) => {
        const repo = await createRepository(store, PW);
        const { a, m1, m2, packs } = await twoDays(store, repo);
        const before = await sizes(store, "packs/");
        const policy = { last: 1 };
        // unlimited: the pack holding a (unused now) and b (used) stays as it is.
        let s = await prune(repo, {
          policy,
          dryRun: false,
          graceMs: 0,
          host: HOST,
          maxUnused: null,
        });
        assert.deepEqual(s.metasRemoved, [m1]);
        assert.equal(s.packsRepacked, 0);
        assert.ok(s.bytesUnused > 40_000 / 2, `the unused bytes are reported: ${s.bytesUnused}`);
        assert.deepEqual(await sizes(store, "packs/"), before);
        // A dry run says what would go, and changes nothing.
        s = await prune(repo, { policy, dryRun: true, graceMs: 0, host: HOST });
        assert.equal(s.packsRepacked, 1);
        assert.deepEqual(await sizes(store, "packs/"), before);
        // The default (5%): the pack is rewritten under its name, without a.
        const events: PruneEvent[] = [];
        s = await prune(
          repo,
          { policy, dryRun: false, graceMs: 0, host: HOST },
          (e) => events.push(e),
        );
        assert.equal(s.packsRepacked, 1);
        assert.deepEqual(s.packsDamaged, []);
        assert.ok(s.bytesRepacked > 40_000 / 2, `freed ${s.bytesRepacked}`);
        const after = await sizes(store, "packs/");
        assert.deepEqual([...after.keys()].sort(), packs, "the same pack names");
        const changed = packs.filter((p) => after.get(p) !== before.get(p));
        assert.equal(changed.length, 1);
        assert.ok(after.get(changed[0]!)! < before.get(changed[0]!)! - 40_000 / 2);
        assert.ok(events.some((e) => e.type === "repack" && e.name === changed[0]));
        assert.equal((await verify(repo, { readData: true })).problems, 0, "day 2 reads whole");
        // The indexes say what the pack now holds: b and c are known, a is stored again.
        const entries = (await Promise.all((await names(store, "index/")).map((n) =>
          readIndex(repo, n, null).then((i) => i.entries)
        ))).flat();
        assert.deepEqual(
          entries.map((e) =>
            e.md5
          ).sort(),
          [md5("B"), md5("C2")].sort(),
        );
        const bs = await backupRun(store, repo, "x", "2026-01-03T00:00:00Z", {
          a,
          b: "B",
          c: "C2",
        });
        assert.equal(bs.newObjects, 1, "one new pack, for a alone");
        assert.equal((await verify(repo, { readData: true })).problems, 0);
        assert.ok((await names(store, "meta_")).includes(m2));
        // Nothing more to do: a second prune repacks nothing.
        s = await prune(repo, { policy: { last: 2 }, dryRun: false, graceMs: 0, host: HOST });
        assert.equal(s.packsRepacked + s.packsReindexed, 0);
      }),
  });
}

/** Fails the `at`-th save or remove of an object other than a lock, as a SIGKILL would stop it. */
class CutAt extends StoreWrapper {
  calls = 0;
  constructor(inner: Store, readonly at: number) {
    super(inner);
  }
  #step(name: string) {
    if (name.startsWith("locks/")) return;
    if (++this.calls === this.at) throw new Error(`cut before ${name}`);
  }
  override save(name: string, data: Uint8Array | ReadableStream<Uint8Array>, opts?: SaveOptions) {
    this.#step(name);
    return super.save(name, data, opts);
  }
  override remove(names: string[], opts?: RemoveOptions) {
    for (const n of names) this.#step(n);
    return super.remove(names, opts);
  }
}

Deno.test("prune [local, format 3]: cut at each step of a repack, every kept backup reads whole; the next prune finishes", async () => {
  for (let at = 1;; at++) {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-prune-cut-" });
    try {
      const store = new LocalStore(dir);
      const repo = await createRepository(store, PW);
      await twoDays(store, repo);
      const cut = new CutAt(store, at);
      const policy = { last: 1 };
      let finished = true;
      try {
        await prune(await openRepository(cut, PW), {
          policy,
          dryRun: false,
          graceMs: 0,
          host: HOST,
        });
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith("cut before")) throw err;
        finished = false;
      }
      assert.equal((await verify(repo, { readData: true })).problems, 0, `cut at ${at}`);
      const s = await prune(repo, { policy, dryRun: false, graceMs: 0, host: HOST });
      assert.deepEqual(s.packsDamaged, []);
      assert.equal((await verify(repo, { readData: true })).problems, 0, `after cut ${at}`);
      // Settled: the indexes describe every pack (nothing re-indexed or repacked again), and a
      // backup of what day 2 held stores nothing.
      const again = await prune(repo, { policy, dryRun: false, graceMs: 0, host: HOST });
      assert.equal(again.packsRepacked + again.packsReindexed, 0, `settled after cut ${at}`);
      const bs = await backupRun(store, repo, "x", "2026-01-03T00:00:00Z", { b: "B", c: "C2" });
      assert.equal(bs.newObjects, 0, `cut at ${at}: b and c are known where they are`);
      if (finished) {
        assert.ok(at > 3, `the prune made ${at - 1} writes: the meta, the pack, the index, ...`);
        return;
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

/**
 * Pauses a backup before its meta until `resume()`: at its look at its own lock (the last
 * step before the meta), else at the save of a meta.
 */
class PauseBeforeMeta extends StoreWrapper {
  reached: Promise<void>;
  #reached!: () => void;
  #gate: Promise<void>;
  #open!: () => void;
  /** hideLocks: lock writes and deletes go nowhere (a writer that other writers cannot see). */
  constructor(inner: Store, readonly opts: { hideLocks?: boolean } = {}) {
    super(inner);
    this.reached = new Promise((r) => this.#reached = r);
    this.#gate = new Promise((r) => this.#open = r);
  }
  resume() {
    this.#open();
  }
  override async stat(name: string) {
    if (name.startsWith("locks/")) await this.#pause();
    return await this.inner.stat(name);
  }
  async #pause() {
    this.#reached();
    await this.#gate;
  }
  override async remove(names: string[]) {
    const hidden = (n: string) => this.opts.hideLocks && n.startsWith("locks/");
    return await this.inner.remove(names.filter((n) => !hidden(n)));
  }
  override async save(
    name: string,
    data: Uint8Array | ReadableStream<Uint8Array>,
    opts?: SaveOptions,
  ) {
    if (this.opts.hideLocks && name.startsWith("locks/")) return;
    if (name.startsWith("meta_")) await this.#pause();
    return this.inner.save(name, data, opts);
  }
}

// ------------------------------------------------------------------ the binary

async function cli(
  args: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    signal: AbortSignal.timeout(300_000), // a deadline: a hung child fails the test
    args: ["run", ...RUN_FLAGS, MAIN, ...args],
    env: childEnv({ NO_COLOR: "1", ...env }),
    clearEnv: true,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("s3backup verify / check, prune, passwd: output and exit codes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-prune-cli-" });
  try {
    const repoDir = path.join(dir, "repo");
    await Deno.mkdir(repoDir);
    const store = new LocalStore(repoDir);
    const repo = await createRepository(store, PW, { format: 2 }); // objects named by MD5
    const m1 = await backupOf(store, repo, "docs", "2026-01-01T00:00:00Z", { a: "one", s: "S" });
    const m2 = await backupOf(store, repo, "docs", "2026-01-02T00:00:00Z", { a: "two", s: "S" });
    const env = { S3BACKUP_PASSWORD: PASSWORD };
    const b = ["-b", repoDir];

    let r = await cli(["verify", ...b], env, dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^verify: 2 backups, 4 files, 3 objects: no problems; /);
    r = await cli(["check", ...b, "--read-data", "-m", "latest"], env, dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^verify: 1 backup, 2 files, 2 objects; 2 read and MD5-checked /);
    r = await cli(["verify", ...b, "--read-data-subset", "150%"], env, dir);
    assert.equal(r.code, 2);
    r = await cli(["verify", ...b], { S3BACKUP_PASSWORD: "wrong" }, dir);
    assert.equal(r.code, 4);

    r = await cli(["prune", ...b], env, dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /at least one of --keep-last/);
    r = await cli(["prune", ...b, "--keep-last", "1", "--grace", "0", "--dry-run"], env, dir);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n").slice(0, 3), [
      `would remove ${m1}`,
      `keep ${m2} (last)`,
      `would remove ${md5("one")} (32 B)`,
    ]);
    assert.match(r.stdout, /prune \(dry run, nothing removed\): kept 1 backup, would remove 1;/);
    assert.equal((await names(store, "meta_")).length, 2);
    r = await cli(["prune", ...b, "--keep-last", "1", "--grace", "0", "-c"], env, dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^prune: kept 1 backup, removed 1; removed 1 unused object /);
    assert.deepEqual(await names(store, "meta_"), [m2]);

    // Damage: exit 3, each problem on stderr.
    await store.remove([md5("S")]);
    r = await cli(["verify", ...b], env, dir);
    assert.equal(r.code, 3);
    assert.equal(r.stderr, `s3backup: ${m2}: s (object ${md5("S")}): missing\n`);
    assert.match(r.stdout, /DAMAGED: 1 missing object in 1 of 1 backup;/);

    // passwd: the new password from the environment; without one and no terminal, exit 2.
    r = await cli(["passwd", ...b], env, dir);
    assert.equal(r.code, 2);
    r = await cli(["passwd", ...b], { ...env, S3BACKUP_NEW_PASSWORD: "fresh" }, dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^passwd: password changed; 1 backup re-encrypted/);
    r = await cli(["verify", ...b], env, dir);
    assert.equal(r.code, 4);
    const pwFile = path.join(dir, "new.txt");
    await Deno.writeTextFile(pwFile, "fresh\n");
    r = await cli(["verify", ...b, "--password-file", pwFile], {}, dir);
    assert.equal(r.code, 3); // opens; still damaged
    await assert.rejects(openRepository(store, PW));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const b of backends()) {
  Deno.test({
    name:
      `prune [${b.label}, format 3]: packs go whole when unused, stay whole when used; indexes follow`,
    sanitizeOps: b.sanitize,
    sanitizeResources: b.sanitize,
    fn: () =>
      b.run(async (store) => {
        const repo = await createRepository(store, PW);
        // Day 1: a, b (one pack P1). Day 2: b, c (c in pack P2). Day 3: c only.
        const m1 = await backupOf(store, repo, "x", "2026-01-01T00:00:00Z", { a: "A1", b: "B" });
        await backupOf(store, repo, "x", "2026-01-02T00:00:00Z", { b: "B", c: "C2" });
        const packs1 = await names(store, "packs/");
        assert.equal(packs1.length, 2);
        await backupOf(store, repo, "x", "2026-01-03T00:00:00Z", { c: "C2" });
        // Keep the last two: P1 still holds b (day 2 names it): kept whole, with a.
        let s = await prune(repo, { policy: { last: 2 }, dryRun: false, graceMs: 0, host: HOST });
        assert.deepEqual(s.metasRemoved, [m1]);
        assert.equal(s.objectsRemoved, 0);
        assert.deepEqual(await names(store, "packs/"), packs1);
        // Keep the last one: P1 is used by no kept meta: deleted; its index entries go too.
        s = await prune(repo, { policy: { last: 1 }, dryRun: false, graceMs: 0, host: HOST });
        assert.equal(s.objectsRemoved, 1);
        const left = await names(store, "packs/");
        assert.equal(left.length, 1);
        const indexes = await names(store, "index/");
        const entries = (await Promise.all(indexes.map((n) => readIndex(repo, n, null))))
          .flatMap((i) => i.entries);
        assert.deepEqual(entries.map((e) => e.md5), [md5("C2")], "the index names what is left");
        assert.equal((await verify(repo, { readData: true })).problems, 0);
        // A backup after the prune stores b again (its pack is gone), c not.
        const again = await backupOf(store, repo, "x", "2026-01-04T00:00:00Z", { b: "B", c: "C2" });
        assert.equal((await names(store, "packs/")).length, 2);
        assert.equal((await verify(repo, { readData: true, meta: again })).problems, 0);
      }),
  });
}
