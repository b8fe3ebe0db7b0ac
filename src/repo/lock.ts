/**
 * Locks (FORMAT.md §6): one plaintext object per running writer under `locks/`.
 *
 *   locks/<kind>-<YYYYMMDDTHHMMSSZ>-<8 random hex>
 *
 * holding `key value` lines `kind`, `host`, `pid`, `time`. A writer writes its lock, then lists
 * the others (write before look: of two racing writers at least one sees the other), refreshes
 * it every 30 minutes while it runs and deletes it when done. A lock last written more than 2
 * hours ago is stale and ignored. A writer judges that by the store's clock: the store date of
 * each lock object (its last write) against that of its own lock, just written, so that no
 * host's clock (3 hours fast, or a laptop that slept) makes a live lock look stale. Without a
 * lock of its own (`unlock`, a dry run) the lock's `time` is judged by this host's clock, and a
 * `time` more than 2 hours in the future is suspect: stale, named with its date. One of this
 * host and boot whose process is gone (killed) is removed at once, with notice. A writer that
 * meets a conflicting lock removes its own and, with `waitMs`, tries again until then.
 * `unlock` removes stale locks (and, forced, live ones). A writer that held its lock through
 * a gap longer than LAPSE_MS between writes (asleep, stopped), or whose lock is gone, is told
 * by `lapsed()`: others may have judged it stale meanwhile.
 *
 * Kinds and what they exclude (`conflictsWith`):
 * - `backup`  stops when a live `prune` or `passwd` lock exists.
 * - `prune`   stops when a live `prune` or `passwd` lock exists; a live `backup` lock does not
 *             stop it, but then it deletes no data object (the caller checks `lock.others`).
 * - `passwd`  stops when any other live lock exists.
 * An unknown kind (a later version) is treated as excluding everything.
 */
import { formatLockName, LOCK_PREFIX } from "../format/layout.ts";
import { formatLock, type LockBody, parseLock } from "../format/lock_file.ts";
import type { Store } from "../store/store.ts";
import { readAll } from "../util/bytes.ts";
import { errorLine, ExitCode, ObjectNotFoundError, S3BackupError } from "../util/errors.ts";
import { pause } from "../util/pause.ts";
import { processAlive } from "../util/platform.ts";
import { pool } from "../util/pool.ts";
import { listRepository } from "./listing.ts";

export const LOCK_KINDS = ["backup", "prune", "passwd"] as const;
export type LockKind = typeof LOCK_KINDS[number];
/** A lock older than this (by its `time`) is stale. */
export const STALE_MS = 2 * 60 * 60 * 1000;
/** How often a running writer rewrites its lock. */
export const REFRESH_MS = 30 * 60 * 1000;
/** How long removing a lock may take; it runs even after SIGTERM aborted everything else. */
const RELEASE_MS = 15_000;

function untilReleased(): { signal: AbortSignal } {
  return { signal: AbortSignal.timeout(RELEASE_MS) };
}

/** Another writer holds a lock this one cannot run beside (exit code 6, "locked"). */
export class LockedError extends S3BackupError {
  override readonly exitCode = ExitCode.locked;
  constructor(message: string, readonly locks: LockInfo[]) {
    super(message);
  }
}

/** A lock found in the store. */
export interface LockInfo extends LockBody {
  /** Object name, `locks/...`. */
  key: string;
  /** When the writer started (the time in the lock's name). */
  started: Date;
  /** False when the body could not be read: `time` is then the object date, host "?". */
  readable: boolean;
  /** The object's date (its last write) by the store's clock. */
  stored: Date;
}

/**
 * Whether a lock is stale: with `storeNow` (the store's clock now), its store date more than
 * STALE_MS before it; else its `time` more than STALE_MS before `now` or after it (suspect).
 */
export function isStale(lock: { time: Date; stored?: Date }, now: Date, storeNow?: Date): boolean {
  if (storeNow !== undefined && lock.stored !== undefined) {
    return storeNow.getTime() - lock.stored.getTime() > STALE_MS;
  }
  return Math.abs(now.getTime() - lock.time.getTime()) > STALE_MS;
}

/** Whether a writer of `kind` must not run beside a live lock of kind `other`. */
export function conflictsWith(kind: LockKind, other: string): boolean {
  if (kind === "passwd") return true;
  if (other === "backup") return false; // backup beside backup; prune beside backup: no data
  return true; // prune, passwd, and kinds of later versions
}

/** A duration in words: `45 s`, `12 min`, `3 h 5 min`. */
function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  const min = Math.round(s / 60);
  return min < 120 ? `${min} min` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

/** One line naming a lock's holder, for messages: kind, host, pid, start and age, name. */
export function describeLock(l: LockInfo, now: Date = new Date()): string {
  const who = l.readable ? `host ${l.host}, pid ${l.pid}` : "unreadable";
  if (l.time.getTime() - now.getTime() > STALE_MS) {
    const at = l.time.toISOString().replace(/\.\d+Z$/, "Z");
    return `${l.kind} (${who}, dated ${at}, in the future: suspect, ${l.key})`;
  }
  const since = `started ${l.started.toISOString().replace(/\.\d+Z$/, "Z")}, ` +
    `${age(now.getTime() - l.started.getTime())} ago`;
  const refreshed = l.time.getTime() - l.started.getTime() > 60_000
    ? `, refreshed ${age(now.getTime() - l.time.getTime())} ago`
    : "";
  return `${l.kind} (${who}, ${since}${refreshed}, ${l.key})`;
}

/**
 * Every lock of the store, oldest first. One listing of `locks/`, then each lock read (8 at a
 * time). A lock deleted meanwhile is skipped; an unreadable one counts with its object date.
 */
export async function allLocks(store: Store): Promise<LockInfo[]> {
  const found = (await listRepository(store, LOCK_PREFIX)).locks;
  const out: LockInfo[] = [];
  await pool(found, 8, async (f) => {
    const named = { key: f.name, started: f.time, stored: f.mtime };
    try {
      const text = new TextDecoder().decode(await readAll(await store.load(f.name)));
      out.push({ ...parseLock(text), ...named, readable: true });
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return; // released meanwhile
      if (!(err instanceof SyntaxError)) throw err;
      out.push({ kind: f.kind, host: "?", pid: 0, time: f.mtime, ...named, readable: false });
    }
  });
  return out.sort((a, b) => a.time.getTime() - b.time.getTime() || (a.key < b.key ? -1 : 1));
}

/** The live (not stale) locks of the store by this host's clock, oldest first (allLocks). */
export async function liveLocks(store: Store, now: Date = new Date()): Promise<LockInfo[]> {
  return (await allLocks(store)).filter((l) => !isStale(l, now));
}

/**
 * The other live locks, judged by the store's clock: `own`, just written, dates it. The
 * store's clock minus ours (0 when `own` is not listed: then ours judges).
 */
async function othersLive(
  store: Store,
  own: string,
  now: Date,
): Promise<{ others: LockInfo[]; offsetMs: number }> {
  const all = await allLocks(store);
  const storeNow = all.find((l) => l.key === own)?.stored;
  const others = all.filter((l) => l.key !== own && !isStale(l, now, storeNow));
  return { others, offsetMs: storeNow === undefined ? 0 : storeNow.getTime() - now.getTime() };
}

export interface LockOptions {
  /** Clock (tests). */
  now?: () => Date;
  /** Refresh period (tests). Default REFRESH_MS. */
  refreshMs?: number;
  pid?: number;
  /** Written into the lock (backup: the folder it reads). */
  source?: string;
  /** Called when a periodic refresh fails (it is tried again at the next period). */
  onRefreshError?: (err: unknown) => void;
  /** Told of each lock of a dead process on this host that was removed (taken over). */
  onTakeover?: (lock: LockInfo) => void;
  /** Whether a process runs here (tests); default `processAlive` (util/platform.ts). */
  alive?: (pid: number) => boolean | null;
  /** This machine's boot id (tests); default `bootId()`. */
  boot?: string;
  /** How long to wait for conflicting locks to go before giving up (default 0: at once). */
  waitMs?: number;
  /** Told once when a writer starts waiting, with the locks it waits for. */
  onWait?: (blocking: LockInfo[], waitMs: number) => void;
  /** Stops a wait (SIGINT, SIGTERM). */
  signal?: AbortSignal;
}

/**
 * A writer whose lock went this long unwritten (asleep, stopped, a clock jump) may have been
 * judged stale by another (STALE_MS by the store's clock): `lapsed()` says so. Half of it, so
 * that a drift between our clock's rate and the store's cannot hide one.
 */
export const LAPSE_MS = STALE_MS / 2;

/**
 * This boot of the machine: `up-<seconds since the epoch when it booted>` (from the uptime, so
 * within a second or two between calls; `sameBoot` allows for that), or undefined. (Reading the
 * kernel's boot_id would take /proc, which needs every permission.)
 */
export function bootId(): string | undefined {
  try {
    return `up-${Math.round(Date.now() / 1000 - Deno.osUptime())}`;
  } catch {
    return undefined;
  }
}

/** Whether two boot ids name the same boot (`up-` times within BOOT_SLACK_S). */
export function sameBoot(a: string, b: string): boolean {
  const m = /^up-(\d+)$/.exec(a), n = /^up-(\d+)$/.exec(b);
  return m && n ? Math.abs(Number(m[1]) - Number(n[1])) <= BOOT_SLACK_S : a === b;
}

const BOOT_SLACK_S = 10;

/** Who is asking: this host, process and boot. */
interface Me {
  host: string;
  pid: number;
  boot: string | undefined;
}

/**
 * Whether `l` was left by a dead process of this machine (readable, same host name and boot,
 * another pid, no such process). Another boot id is another machine of the same name, or this
 * one before a reboot: that lock waits until stale. (A lock of an older version has no boot:
 * host and pid decide.)
 */
function leftByDead(l: LockInfo, me: Me, alive: (pid: number) => boolean | null): boolean {
  return l.readable && l.host === me.host && l.pid !== me.pid &&
    (l.boot === undefined || (me.boot !== undefined && sameBoot(l.boot, me.boot))) &&
    alive(l.pid) === false;
}

/**
 * The locks of `all` left by a dead process of this host: removed at once rather than waited
 * out for STALE_MS. The rest.
 */
async function takeOverDead(
  store: Store,
  all: LockInfo[],
  me: Me,
  opts: LockOptions,
): Promise<LockInfo[]> {
  const alive = opts.alive ?? processAlive;
  const dead = all.filter((l) => leftByDead(l, me, alive));
  if (dead.length === 0) return all;
  await store.remove(dead.map((l) => l.key), untilReleased());
  for (const l of dead) opts.onTakeover?.(l);
  return all.filter((l) => !dead.includes(l));
}

/** Pauses between tries while waiting for a lock: 1 s, doubling, at most this. */
const WAIT_STEP_MAX_MS = 15_000;

/**
 * Writes our lock and looks at the others until none conflicts (each try removes ours again
 * when one does), for up to `opts.waitMs`; then throws LockedError naming the holders. The
 * other live locks, none conflicting.
 */
async function firstClear(
  store: Store,
  kind: LockKind,
  key: string,
  write: () => Promise<unknown>,
  me: Me,
  opts: LockOptions,
): Promise<{ others: LockInfo[]; offsetMs: number }> {
  const now = opts.now ?? (() => new Date());
  const deadline = Date.now() + (opts.waitMs ?? 0);
  for (let step = 1000, told = false;; step = Math.min(step * 2, WAIT_STEP_MAX_MS)) {
    await write();
    let all: LockInfo[], offsetMs: number;
    try {
      ({ others: all, offsetMs } = await othersLive(store, key, now()));
      all = await takeOverDead(store, all, me, opts);
    } catch (err) {
      await store.remove([key], untilReleased()).catch(() => {});
      throw err;
    }
    const blocking = all.filter((l) => conflictsWith(kind, l.kind));
    if (blocking.length === 0) return { others: all, offsetMs };
    await store.remove([key], untilReleased());
    const left = deadline - Date.now();
    if (left <= 0) throw lockedError(kind, blocking, store.location, now(), opts.waitMs ?? 0);
    if (!told) opts.onWait?.(blocking, left);
    told = true;
    await pause(Math.min(step, left), opts.signal);
  }
}

function lockedError(
  kind: LockKind,
  blocking: LockInfo[],
  location: string,
  t: Date,
  waitedMs: number,
): LockedError {
  const first = blocking[0]!;
  const what = kind === "passwd" ? "change the password" : `start a ${kind}`;
  const waited = waitedMs > 0 ? ` (waited ${age(waitedMs)})` : "";
  return new LockedError(
    `Cannot ${what}: ${first.kind === "prune" ? "a prune is" : `another ${first.kind} is`} ` +
      `running on ${location}${waited}: ${blocking.map((l) => describeLock(l, t)).join("; ")}` +
      `; wait for it (--lock-wait), or see s3backup unlock`,
    blocking,
  );
}

/** A lock this process holds. */
export interface Lock {
  readonly key: string;
  readonly kind: LockKind;
  /** The other live locks seen right after writing ours (none conflicting). */
  readonly others: LockInfo[];
  /** The store's clock minus ours, from our lock's store date (0: unknown). */
  readonly offsetMs: number;
  /**
   * Null while the lock has held throughout; else why another writer may have judged it
   * stale meanwhile (it is gone, or went unwritten longer than LAPSE_MS). One HEAD.
   */
  lapsed(): Promise<string | null>;
  /** Rewrites the lock with the current time (the timer does it every `refreshMs`). */
  refresh(): Promise<void>;
  /** Stops the timer and deletes the lock. Idempotent. */
  release(): Promise<void>;
}

/**
 * Writes a lock of `kind`, then lists the live locks. If one conflicts (`conflictsWith`), our
 * lock is deleted again and LockedError is thrown. Otherwise a timer (which does not keep the
 * process alive) rewrites the lock every `refreshMs` until `release()`.
 */
export async function acquireLock(
  store: Store,
  kind: LockKind,
  host: string,
  opts: LockOptions = {},
): Promise<Lock> {
  const now = opts.now ?? (() => new Date());
  const pid = opts.pid ?? Deno.pid;
  const key = formatLockName(kind, now());
  const boot = opts.boot ?? bootId();
  let lastWrite = Date.now(), longestGapMs = 0;
  const saved = () => {
    const t = Date.now();
    longestGapMs = Math.max(longestGapMs, t - lastWrite);
    lastWrite = t;
  };
  const write = () =>
    store.save(
      key,
      new TextEncoder().encode(
        formatLock({
          kind,
          host,
          pid,
          time: now(),
          ...(boot === undefined ? {} : { boot }),
          ...(opts.source === undefined ? {} : { source: opts.source }),
        }),
      ),
    ).then(saved);
  const { others, offsetMs } = await firstClear(store, kind, key, write, { host, pid, boot }, opts);
  let released = false;
  let inflight: Promise<void> | null = null;
  const refresh = async (): Promise<void> => {
    if (released) return;
    const p = (inflight ?? Promise.resolve()).then(() => released ? undefined : write());
    inflight = p.catch(() => {});
    await p;
  };
  const timer = setInterval(() => {
    refresh().catch((err) => opts.onRefreshError?.(err));
  }, opts.refreshMs ?? REFRESH_MS);
  Deno.unrefTimer(timer);

  return {
    key,
    kind,
    others,
    offsetMs,
    async lapsed() {
      const gap = Math.max(longestGapMs, Date.now() - lastWrite);
      if (gap > LAPSE_MS) return `it went unwritten for ${age(gap)} (asleep or stopped?)`;
      return (await store.stat(key)) === null ? "it was removed (s3backup unlock?)" : null;
    },
    refresh,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await inflight;
      await store.remove([key], untilReleased());
    },
  };
}

/** What `unlock` removed (and why) and what it left. */
export interface UnlockResult {
  removed: { lock: LockInfo; why: "stale" | "dead" | "forced" }[];
  /** Live locks of running writers, left (without `force`). */
  kept: LockInfo[];
}

/**
 * Removes the stale locks (by time; unreadable ones by their object date) and those of dead
 * processes of this host and boot; with `force`, the live ones too.
 */
export async function unlock(
  store: Store,
  host: string,
  opts: Pick<LockOptions, "now" | "alive" | "boot" | "pid"> & { force?: boolean } = {},
): Promise<UnlockResult> {
  const now = (opts.now ?? (() => new Date()))();
  const me = { host, pid: opts.pid ?? Deno.pid, boot: opts.boot ?? bootId() };
  const alive = opts.alive ?? processAlive;
  const result: UnlockResult = { removed: [], kept: [] };
  for (const lock of await allLocks(store)) {
    const why = isStale(lock, now)
      ? "stale"
      : leftByDead(lock, me, alive)
      ? "dead"
      : opts.force
      ? "forced"
      : null;
    if (why === null) result.kept.push(lock);
    else result.removed.push({ lock, why });
  }
  await store.remove(result.removed.map((r) => r.lock.key), untilReleased());
  return result;
}

/**
 * The one lock policy: runs `fn` holding a lock of `kind`. The lock is always released; when
 * `fn` failed, a failure to release is ignored (the first error is the one to report); when it
 * succeeded, one is reported, since the lock left behind blocks other writers until stale.
 */
export async function withLock<T>(
  store: Store,
  kind: LockKind,
  host: string,
  opts: LockOptions,
  fn: (lock: Lock) => Promise<T>,
): Promise<T> {
  const lock = await acquireLock(store, kind, host, opts);
  let result: T;
  try {
    result = await fn(lock);
  } catch (err) {
    await lock.release().catch(() => {});
    throw err;
  }
  try {
    await lock.release();
  } catch (err) {
    throw new S3BackupError(
      `The ${kind} finished, but its lock ${lock.key} could not be removed (${errorLine(err)}): ` +
        `remove it, or other writers will refuse to start for up to ${STALE_MS / 3_600_000} hours`,
      { cause: err },
    );
  }
  return result;
}
