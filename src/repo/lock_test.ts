import assert from "node:assert/strict";
import * as path from "node:path";
import { formatLockName } from "../format/layout.ts";
import { formatLock, parseLock } from "../format/lock_file.ts";
import { LocalStore } from "../store/local_store.ts";
import { readAll } from "../util/bytes.ts";
import {
  acquireLock,
  bootId,
  conflictsWith,
  describeLock,
  isStale,
  LAPSE_MS,
  liveLocks,
  LockedError,
  sameBoot,
  STALE_MS,
  unlock,
} from "./lock.ts";
import { ExitCode } from "../util/errors.ts";
import { processAlive } from "../util/platform.ts";

async function withStore(fn: (s: LocalStore, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-lock-test-" });
  try {
    await fn(new LocalStore(dir), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function lockNames(s: LocalStore): Promise<string[]> {
  const out: string[] = [];
  for await (const o of s.list("locks/")) out.push(o.name);
  return out.sort();
}

Deno.test("staleness and conflicts", () => {
  const now = new Date("2026-11-27T12:00:00Z");
  assert.equal(isStale({ time: new Date(now.getTime() - STALE_MS) }, now), false);
  assert.equal(isStale({ time: new Date(now.getTime() - STALE_MS - 1) }, now), true);
  assert.equal(isStale({ time: new Date(now.getTime() + 60_000) }, now), false);
  assert.equal(conflictsWith("backup", "backup"), false);
  assert.equal(conflictsWith("backup", "prune"), true);
  assert.equal(conflictsWith("backup", "passwd"), true);
  assert.equal(conflictsWith("prune", "backup"), false);
  assert.equal(conflictsWith("prune", "prune"), true);
  assert.equal(conflictsWith("prune", "passwd"), true);
  assert.equal(conflictsWith("backup", "future"), true);
  for (const k of ["backup", "prune", "passwd", "future"]) {
    assert.equal(conflictsWith("passwd", k), true);
  }
});

Deno.test("acquire writes a lock, liveLocks sees it, release removes it", () =>
  withStore(async (s) => {
    const lock = await acquireLock(s, "backup", "web1", { pid: 7 });
    assert.match(lock.key, /^locks\/backup-\d{8}T\d{6}Z-[0-9a-f]{8}$/);
    assert.deepEqual(lock.others, []);
    const live = await liveLocks(s);
    assert.equal(live.length, 1);
    assert.equal(live[0]!.key, lock.key);
    assert.equal(live[0]!.host, "web1");
    assert.equal(live[0]!.pid, 7);
    assert.equal(live[0]!.readable, true);
    const second = await acquireLock(s, "backup", "web2");
    assert.deepEqual(second.others.map((l) => l.key), [lock.key]);
    await second.release();
    await lock.release();
    await lock.release(); // idempotent
    assert.deepEqual(await lockNames(s), []);
  }));

Deno.test("a backup stops on a live prune lock and leaves no lock behind", () =>
  withStore(async (s) => {
    const prune = await acquireLock(s, "prune", "p");
    await assert.rejects(acquireLock(s, "backup", "b"), (err) => {
      assert.ok(err instanceof LockedError);
      assert.match(err.message, /^Cannot start a backup: a prune is running on /);
      assert.deepEqual(err.locks.map((l) => l.key), [prune.key]);
      return true;
    });
    await assert.rejects(acquireLock(s, "prune", "p2"), LockedError);
    await assert.rejects(acquireLock(s, "passwd", "x"), /Cannot change the password/);
    assert.deepEqual(await lockNames(s), [prune.key]);
    await prune.release();
  }));

Deno.test("a prune runs beside a backup and is told about it; passwd does not", () =>
  withStore(async (s) => {
    const b = await acquireLock(s, "backup", "b");
    const p = await acquireLock(s, "prune", "p");
    assert.deepEqual(p.others.map((l) => [l.kind, l.key]), [["backup", b.key]]);
    await p.release();
    await assert.rejects(acquireLock(s, "passwd", "x"), LockedError);
    await b.release();
    const pw = await acquireLock(s, "passwd", "x");
    await assert.rejects(acquireLock(s, "backup", "b"), LockedError);
    await pw.release();
    assert.deepEqual(await lockNames(s), []);
  }));

Deno.test("stale locks are ignored; an unreadable lock counts by its object date", () =>
  withStore(async (s, dir) => {
    const old = new Date(Date.now() - STALE_MS - 60_000);
    const staleKey = formatLockName("prune", old);
    await s.save(
      staleKey,
      new TextEncoder().encode(formatLock({
        kind: "prune",
        host: "gone",
        pid: 1,
        time: old,
      })),
    );
    // Stale by the store's clock too: its object last written then.
    await Deno.utime(path.join(dir, ...staleKey.split("/")), old, old);
    // A lock whose body is garbage: its (fresh) object date makes it live.
    const junk = formatLockName("prune", new Date(), "00000000");
    await s.save(junk, new TextEncoder().encode("garbage"));
    // Ignored: not a lock name.
    await s.save("locks/README", new TextEncoder().encode("x"));
    let live = await liveLocks(s);
    assert.deepEqual(live.map((l) => [l.key, l.readable]), [[junk, false]]);
    await assert.rejects(acquireLock(s, "backup", "b"), LockedError);
    // Make the garbage lock's file old: now nothing is live and a backup may start.
    await Deno.utime(path.join(dir, ...junk.split("/")), old, old);
    live = await liveLocks(s);
    assert.deepEqual(live, []);
    const b = await acquireLock(s, "backup", "b");
    await b.release();
    // A clock far ahead makes everything stale to the look without a lock of its own...
    assert.deepEqual(await liveLocks(s, new Date(Date.now() + 2 * STALE_MS)), []);
  }));

Deno.test("a writer judges staleness by the store's clock: 3 h fast, it still sees a live lock", () =>
  withStore(async (s) => {
    const prune = await acquireLock(s, "prune", "other", { pid: 1 });
    try {
      const fast = () => new Date(Date.now() + 3 * 60 * 60_000);
      await assert.rejects(acquireLock(s, "backup", "b", { now: fast }), LockedError);
      const lock = await acquireLock(s, "prune", "b", { now: fast }).catch((e) => e);
      assert.ok(lock instanceof LockedError, "a prune 3 h fast does not take over a live prune");
      // A lock's time in the far future is suspect: stale, and named with its date.
      const future = new Date(Date.now() + 100 * 365 * 86_400_000);
      assert.equal(isStale({ time: future }, new Date()), true);
      const described = describeLock({
        ...(await liveLocks(s))[0]!,
        time: future,
      });
      assert.match(described, /dated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, in the future: suspect/);
    } finally {
      await prune.release();
    }
  }));

Deno.test("lapsed(): a lock removed, or unwritten past LAPSE_MS, is told", () =>
  withStore(async (s) => {
    const lock = await acquireLock(s, "backup", "h");
    try {
      assert.equal(await lock.lapsed(), null);
      await s.remove([lock.key]);
      assert.match((await lock.lapsed())!, /it was removed/);
      await lock.refresh();
      assert.equal(await lock.lapsed(), null);
    } finally {
      await lock.release();
    }
    const realNow = Date.now;
    const slept = await acquireLock(s, "backup", "h");
    try {
      Date.now = () => realNow() + LAPSE_MS + 60_000; // a laptop that slept
      assert.match((await slept.lapsed())!, /unwritten for \d+ min/);
    } finally {
      Date.now = realNow;
      await slept.release();
    }
  }));

Deno.test("the refresh timer rewrites the lock and stops at release", () =>
  withStore(async (s) => {
    let t = new Date("2026-11-27T10:00:00Z");
    const lock = await acquireLock(s, "backup", "h", { now: () => t, refreshMs: 20 });
    const timeOf = async () =>
      parseLock(new TextDecoder().decode(await readAll(await s.load(lock.key)))).time
        .toISOString();
    assert.equal(await timeOf(), "2026-11-27T10:00:00.000Z");
    t = new Date("2026-11-27T10:30:00Z");
    for (let i = 0; i < 100 && (await timeOf()) !== "2026-11-27T10:30:00.000Z"; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(await timeOf(), "2026-11-27T10:30:00.000Z");
    t = new Date("2026-11-27T11:00:00Z");
    await lock.refresh();
    assert.equal(await timeOf(), "2026-11-27T11:00:00.000Z");
    await lock.release();
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(await lockNames(s), []); // no refresh re-created it
  }));

Deno.test("lock: a dead process's lock on this host is taken over at once, with notice", () =>
  withStore(async (s) => {
    const save = (pid: number, host: string) => {
      const key = formatLockName("prune", new Date(), pid.toString(16).padStart(8, "0"));
      return s.save(
        key,
        new TextEncoder().encode(formatLock({ kind: "prune", host, pid, time: new Date() })),
      )
        .then(() => key);
    };
    const dead = await save(4242, "web1");
    const taken: string[] = [];
    const alive = (pid: number) => (pid === 4242 ? false : null);
    const lock = await acquireLock(s, "backup", "web1", {
      alive,
      onTakeover: (l) => taken.push(l.key),
    });
    assert.deepEqual(taken, [dead]);
    assert.deepEqual((await liveLocks(s)).map((l) => l.key), [lock.key], "the dead lock is gone");
    await lock.release();
    // Another host's lock, or a process that cannot be told dead, is waited out as before.
    await save(4242, "web2");
    await assert.rejects(acquireLock(s, "backup", "web1", { alive }), LockedError);
    await Deno.remove(path.join(s.dir, "locks"), { recursive: true });
    await save(77, "web1");
    await assert.rejects(acquireLock(s, "backup", "web1", { alive }), LockedError, "unknown");
    // A lock of the same host name but another boot (another machine, or before a reboot).
    await Deno.remove(path.join(s.dir, "locks"), { recursive: true });
    const other = formatLockName("prune", new Date(), "0000abcd");
    const body = (boot: string) =>
      new TextEncoder().encode(
        formatLock({ kind: "prune", host: "web1", pid: 4242, time: new Date(), boot }),
      );
    await s.save(other, body("another-boot"));
    const opts = { alive, boot: "this-boot" };
    await assert.rejects(acquireLock(s, "backup", "web1", opts), LockedError, "another boot");
    await s.save(other, body("this-boot"));
    const mine = await acquireLock(s, "backup", "web1", opts);
    const text = new TextDecoder().decode(await readAll(await s.load(mine.key)));
    assert.match(text, /\nboot this-boot\n/, "our own lock says our boot");
    await mine.release();
    assert.equal(processAlive(Deno.pid), true);
    const done = new Deno.Command("true").spawn();
    await done.status;
    assert.equal(processAlive(done.pid), false, "a process that has exited");
  }));

/** Saves a lock of `kind` by `host`/`pid` whose last refresh was `ageMs` ago. */
function saveLock(s: LocalStore, kind: string, host: string, pid: number, ageMs = 0) {
  const time = new Date(Date.now() - ageMs);
  const key = formatLockName(kind, time);
  const body = formatLock({ kind, host, pid, time });
  return s.save(key, new TextEncoder().encode(body)).then(() => key);
}

Deno.test("lock: a writer waits --lock-wait for a prune, then runs; 0 fails at once, naming it", () =>
  withStore(async (s) => {
    const prune = await acquireLock(s, "prune", "p-host", { pid: 31337 });
    const t0 = Date.now();
    const failed = await acquireLock(s, "backup", "b", { waitMs: 0 }).catch((e) => e);
    assert.ok(failed instanceof LockedError);
    assert.equal(failed.exitCode, ExitCode.locked);
    assert.match(
      failed.message,
      /^Cannot start a backup: a prune is running on .*: prune \(host p-host, pid 31337, started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, \d+ s ago, locks\/prune-/,
    );
    assert.ok(Date.now() - t0 < 1000, "waitMs 0 does not wait");
    assert.deepEqual(await lockNames(s), [prune.key], "the loser's lock is gone");
    const waits: string[] = [];
    setTimeout(() => prune.release(), 1500);
    const got = await acquireLock(s, "backup", "b", {
      waitMs: 20_000,
      onWait: (blocking) => waits.push(blocking.map((l) => l.kind).join()),
    });
    const waited = Date.now() - t0;
    assert.ok(waited >= 1500 && waited < 10_000, `waited ${waited} ms`);
    assert.deepEqual(waits, ["prune"], "told once");
    assert.deepEqual(await lockNames(s), [got.key]);
    await got.release();
    // A wait that runs out says how long it waited; a signal stops a wait at once.
    const again = await acquireLock(s, "passwd", "p", {});
    const timedOut = await acquireLock(s, "prune", "x", { waitMs: 1200 }).catch((e) => e);
    assert.match(String(timedOut?.message), /\(waited 1 s\): passwd \(host p/);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("stopped")), 300);
    const t1 = Date.now();
    await assert.rejects(
      acquireLock(s, "backup", "x", { waitMs: 60_000, signal: ac.signal }),
      /stopped/,
    );
    assert.ok(Date.now() - t1 < 2000);
    assert.deepEqual(await lockNames(s), [again.key], "no lock left by the stopped wait");
    await again.release();
  }));

Deno.test("unlock: stale and dead locks go, live ones stay unless forced", () =>
  withStore(async (s) => {
    const alive = (pid: number) => pid !== 4242;
    const opts = { alive, boot: "b1" };
    const stale = await saveLock(s, "backup", "elsewhere", 7, STALE_MS + 60_000);
    const dead = await saveLock(s, "prune", "me", 4242);
    const live = await saveLock(s, "prune", "elsewhere", 9);
    const mine = await saveLock(s, "backup", "me", 4343);
    const r = await unlock(s, "me", opts);
    assert.deepEqual(
      r.removed.map((x) => [x.lock.key, x.why]).sort(),
      [[stale, "stale"], [dead, "dead"]].sort(),
    );
    assert.deepEqual(r.kept.map((l) => l.key).sort(), [live, mine].sort());
    assert.deepEqual(await lockNames(s), [live, mine].sort());
    const forced = await unlock(s, "me", { ...opts, force: true });
    assert.deepEqual(forced.removed.map((x) => x.why), ["forced", "forced"]);
    assert.deepEqual(forced.kept, []);
    assert.deepEqual(await lockNames(s), []);
  }));

Deno.test("boot ids: this boot from the uptime, equal within a few seconds, else compared as text", () => {
  const b = bootId()!;
  assert.match(b, /^up-\d+$/);
  const t = Number(b.slice(3));
  assert.ok(Math.abs(t - (Date.now() / 1000 - Deno.osUptime())) < 3);
  assert.equal(sameBoot(b, `up-${t + 4}`), true);
  assert.equal(sameBoot(b, `up-${t - 60}`), false, "a reboot a minute apart");
  assert.equal(sameBoot("3f0c-uuid", b), false, "an older version's kernel boot id");
  assert.equal(sameBoot("x", "x"), true);
});
