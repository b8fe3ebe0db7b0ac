/**
 * Locks (FORMAT.md §6): one plaintext object per running writer under `locks/`.
 *
 *   locks/<kind>-<YYYYMMDDTHHMMSSZ>-<8 random hex>
 *
 * holding `key value` lines `kind`, `host`, `pid`, `time`. A writer writes its lock, then lists
 * the others (write before look: of two racing writers at least one sees the other), refreshes
 * it every 30 minutes while it runs and deletes it when done. A lock whose `time` (or, when the
 * object cannot be read, its date) is more than 2 hours old is stale and ignored; one of this
 * host and boot whose process is gone (killed) is removed at once, with notice.
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
import { errorLine, ObjectNotFoundError, S3BackupError } from "../util/errors.ts";
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

/** Another writer holds a lock this one cannot run beside. */
export class LockedError extends S3BackupError {
  constructor(message: string, readonly locks: LockInfo[]) {
    super(message);
  }
}

/** A lock found in the store. */
export interface LockInfo extends LockBody {
  /** Object name, `locks/...`. */
  key: string;
  /** False when the body could not be read: `time` is then the object date, host "?". */
  readable: boolean;
}

/** Whether a lock is stale at `now` (its time more than STALE_MS ago). */
export function isStale(lock: { time: Date }, now: Date): boolean {
  return now.getTime() - lock.time.getTime() > STALE_MS;
}

/** Whether a writer of `kind` must not run beside a live lock of kind `other`. */
export function conflictsWith(kind: LockKind, other: string): boolean {
  if (kind === "passwd") return true;
  if (other === "backup") return false; // backup beside backup; prune beside backup: no data
  return true; // prune, passwd, and kinds of later versions
}

/** One line naming a lock, for messages. */
export function describeLock(l: LockInfo, now: Date = new Date()): string {
  const min = Math.max(0, Math.round((now.getTime() - l.time.getTime()) / 60_000));
  const who = l.readable ? `host ${l.host}, pid ${l.pid}` : "unreadable";
  return `${l.kind} (${who}, ${min} min ago, ${l.key})`;
}

/**
 * The live (not stale) locks of the store, oldest first. One listing of `locks/`, then each
 * lock read (8 at a time). A lock deleted meanwhile is skipped; an unreadable one counts with
 * its object date.
 */
export async function liveLocks(store: Store, now: Date = new Date()): Promise<LockInfo[]> {
  const found = (await listRepository(store, LOCK_PREFIX)).locks;
  const out: LockInfo[] = [];
  await pool(found, 8, async (f) => {
    let info: LockInfo;
    try {
      const text = new TextDecoder().decode(await readAll(await store.load(f.name)));
      info = { ...parseLock(text), key: f.name, readable: true };
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return; // released meanwhile
      if (!(err instanceof SyntaxError)) throw err;
      info = { kind: f.kind, host: "?", pid: 0, time: f.mtime, key: f.name, readable: false };
    }
    if (!isStale(info, now)) out.push(info);
  });
  return out.sort((a, b) => a.time.getTime() - b.time.getTime() || (a.key < b.key ? -1 : 1));
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
  /** Whether a process runs here (tests); default `processAlive`. */
  alive?: (pid: number) => boolean | null;
  /** This machine's boot id (tests); default `bootId()`. */
  boot?: string;
}

/** The kernel's id of this boot (Linux), or undefined. */
export function bootId(): string | undefined {
  try {
    return Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether process `pid` runs on this machine: true, false, or null when it cannot be told
 * (then a lock is never taken over). Linux: /proc/<pid>; other Unixes: `ps -p`.
 */
export function processAlive(pid: number): boolean | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  if (Deno.build.os === "linux") {
    try {
      Deno.statSync(`/proc/${pid}`);
      return true;
    } catch (err) {
      return err instanceof Deno.errors.NotFound ? false : null;
    }
  }
  if (Deno.build.os === "windows") return null;
  try {
    const out = new Deno.Command("ps", {
      args: ["-p", String(pid)],
      stdout: "null",
      stderr: "null",
    })
      .outputSync();
    return out.success;
  } catch {
    return null;
  }
}

/**
 * The locks of `all` left by a dead process of this host (readable, same host name, another
 * pid, no such process): removed at once rather than waited out for STALE_MS. The rest.
 */
async function takeOverDead(
  store: Store,
  all: LockInfo[],
  me: { host: string; pid: number; boot: string | undefined },
  opts: LockOptions,
): Promise<LockInfo[]> {
  const { host, pid, boot } = me;
  const alive = opts.alive ?? processAlive;
  // Another boot id is another machine of the same name, or this one before a reboot: the
  // lock waits until stale. (A lock of an older version has none: host and pid decide.)
  const dead = all.filter((l) =>
    l.readable && l.host === host && l.pid !== pid && (l.boot === undefined || l.boot === boot) &&
    alive(l.pid) === false
  );
  if (dead.length === 0) return all;
  await store.remove(dead.map((l) => l.key), untilReleased());
  for (const l of dead) opts.onTakeover?.(l);
  return all.filter((l) => !dead.includes(l));
}

/** A lock this process holds. */
export interface Lock {
  readonly key: string;
  readonly kind: LockKind;
  /** The other live locks seen right after writing ours (none conflicting). */
  readonly others: LockInfo[];
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
    );
  await write();
  let all: LockInfo[];
  try {
    all = (await liveLocks(store, now())).filter((l) => l.key !== key);
    all = await takeOverDead(store, all, { host, pid, boot }, opts);
  } catch (err) {
    await store.remove([key], untilReleased()).catch(() => {});
    throw err;
  }
  const blocking = all.filter((l) => conflictsWith(kind, l.kind));
  if (blocking.length > 0) {
    await store.remove([key], untilReleased());
    const t = now();
    const first = blocking[0]!;
    const what = kind === "passwd" ? "change the password" : `start a ${kind}`;
    throw new LockedError(
      `Cannot ${what}: ${first.kind === "prune" ? "a prune is" : `another ${first.kind} is`} ` +
        `running on ${store.location}: ${blocking.map((l) => describeLock(l, t)).join("; ")}` +
        ` (a lock is ignored once stale, ${STALE_MS / 3_600_000} h after its last refresh)`,
      blocking,
    );
  }

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
    others: all,
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
