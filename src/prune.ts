/**
 * `s3backup prune`: forget backups outside a retention policy, then delete the data objects no
 * remaining backup uses (FORMAT.md §6 for running beside backups).
 *
 * Policy (restic's semantics), applied to each backup name separately, by the time in the meta
 * name (UTC), newest first:
 * - `last N`: the N newest backups;
 * - `daily N`: the newest backup of each of the N most recent days that have backups; `weekly`
 *   (ISO 8601 weeks, Monday to Sunday), `monthly`, `yearly` likewise;
 * - the newest backup of each name is always kept.
 * A backup is kept when any rule keeps it.
 *
 * Order: take a `prune` lock (a running prune or password change stops us; a running backup
 * does not, but then no data object is deleted), list the store once, open every meta that is
 * kept (any that does not open stops the prune before anything is deleted: what it references
 * is unknown), delete the metas outside the policy, then the data objects no kept meta
 * references and older than the grace period (by their store date). `dryRun` takes no lock and
 * deletes nothing, reporting what would go.
 *
 * The engine never prints: it reports through `onEvent` and returns a summary.
 */
import { CorruptDataError, S3BackupError, UsageError } from "./errors.ts";
import { acquireLock, liveLocks, type Lock, type LockInfo, type LockOptions } from "./lock.ts";
import { compareMetaNames, META_PREFIX, type MetaName, parseMetaName } from "./meta_name.ts";
import { checkPasswordUnchanged, pool } from "./passwd.ts";
import { loadMeta, type Repository } from "./repository.ts";
import type { ObjectInfo } from "./store/store.ts";

const MD5_NAME = /^[0-9a-f]{32}$/;
export const DEFAULT_GRACE_MS = 60 * 60 * 1000;

export interface PrunePolicy {
  last?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
}

export type KeepReason = "last" | "daily" | "weekly" | "monthly" | "yearly" | "newest";

export interface MetaDecision {
  meta: MetaName;
  keep: boolean;
  /** Why it is kept (empty when it goes). */
  reasons: KeepReason[];
}

/** Throws UsageError unless the policy has at least one rule, each a count >= 0. */
export function checkPolicy(p: PrunePolicy): PrunePolicy {
  const rules = Object.entries(p).filter(([, v]) => v !== undefined);
  if (rules.length === 0) {
    throw new UsageError(
      "prune needs at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly, " +
        "--keep-yearly",
    );
  }
  for (const [k, v] of rules) {
    if (!Number.isSafeInteger(v) || (v as number) < 0) {
      throw new UsageError(`--keep-${k} needs a count >= 0, not ${v}`);
    }
  }
  return p;
}

/** A `--keep-*` value: a count >= 0. */
export function parseKeep(flag: string, s: string): number {
  if (!/^\d{1,9}$/.test(s.trim())) {
    throw new UsageError(`${flag} needs a count (0 or more), not ${JSON.stringify(s)}`);
  }
  return Number(s.trim());
}

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** `0`, `90s`, `30m`, `1h`, `2d`, `1w`, `1h30m`, `1.5h` -> milliseconds. */
export function parseDuration(s: string): number {
  const t = s.trim();
  if (t === "0") return 0;
  if (/^(\d+(\.\d+)?[smhdw])+$/.test(t)) {
    let ms = 0;
    for (const m of t.matchAll(/(\d+(?:\.\d+)?)([smhdw])/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
    return Math.round(ms);
  }
  throw new UsageError(
    `Invalid duration ${JSON.stringify(s)}: use e.g. 0, 30m, 1h, 2d, 1w or 1h30m`,
  );
}

/** `1h30m`, `2d`, `0s`. */
export function formatDuration(ms: number): string {
  if (ms <= 0) return "0s";
  let rest = Math.round(ms / 1000);
  let out = "";
  for (const [u, sec] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]] as const) {
    const n = Math.floor(rest / sec);
    if (n > 0) out += `${n}${u}`;
    rest -= n * sec;
  }
  return out;
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, "0");
}

/** ISO 8601 week of a UTC time: `2026-W48`. */
export function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7; // Monday 1 .. Sunday 7
  t.setUTCDate(t.getUTCDate() + 4 - day); // the Thursday of that week names its year
  const jan1 = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.floor((t.getTime() - jan1) / 86_400_000 / 7) + 1;
  return `${t.getUTCFullYear()}-W${pad(week)}`;
}

const BUCKETS: [Exclude<KeepReason, "last" | "newest">, (d: Date) => string][] = [
  ["daily", (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`],
  ["weekly", isoWeek],
  ["monthly", (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`],
  ["yearly", (d) => `${d.getUTCFullYear()}`],
];

/**
 * The policy applied to `metas` (any order): one decision per meta, oldest first. Pure.
 */
export function planPrune(metas: MetaName[], policy: PrunePolicy): MetaDecision[] {
  const byName = new Map<string, MetaName[]>();
  for (const m of metas) {
    const list = byName.get(m.name);
    if (list) list.push(m);
    else byName.set(m.name, [m]);
  }
  const out: MetaDecision[] = [];
  for (const list of byName.values()) {
    const newestFirst = [...list].sort((a, b) => compareMetaNames(b, a));
    const buckets = BUCKETS.map(([reason, key]) => ({
      reason,
      key,
      left: policy[reason] ?? 0,
      last: null as string | null,
    }));
    newestFirst.forEach((meta, i) => {
      const reasons: KeepReason[] = [];
      if (i < (policy.last ?? 0)) reasons.push("last");
      for (const b of buckets) {
        if (b.left <= 0) continue;
        const k = b.key(meta.time);
        if (k !== b.last) {
          b.last = k;
          b.left--;
          reasons.push(b.reason);
        }
      }
      if (i === 0 && reasons.length === 0) reasons.push("newest");
      out.push({ meta, keep: reasons.length > 0, reasons });
    });
  }
  return out.sort((a, b) => compareMetaNames(a.meta, b.meta));
}

export interface PruneOptions {
  policy: PrunePolicy;
  /** Report what would go; take no lock, delete nothing. */
  dryRun: boolean;
  /** Unreferenced objects younger than this (store date) stay. Default 1 hour. */
  graceMs?: number;
  host: string;
  now?: () => Date;
  /** Metas opened at a time (default 4). */
  concurrency?: number;
  lock?: LockOptions;
  signal?: AbortSignal;
}

export type PruneEvent =
  | { type: "meta"; decision: MetaDecision }
  /** An unreferenced data object removed (or, dry run, that would be). */
  | { type: "object"; name: string; size: number }
  /** Live backup locks: no data object is deleted. */
  | { type: "backups-running"; locks: LockInfo[] };

export interface PruneSummary {
  dryRun: boolean;
  metasKept: number;
  /** Metas removed (or, dry run, that would be), oldest first. */
  metasRemoved: string[];
  /** Distinct data objects the kept metas reference. */
  objectsReferenced: number;
  /** Data objects no kept meta references. */
  objectsUnreferenced: number;
  /** Removed (or, dry run, that would be). */
  objectsRemoved: number;
  bytesRemoved: number;
  /** Unreferenced but younger than the grace period: kept. */
  objectsTooYoung: number;
  bytesTooYoung: number;
  /** Backups were running: no data object was removed (metas may have been). */
  dataSkipped: boolean;
  backupLocks: LockInfo[];
  graceMs: number;
  durationMs: number;
}

/** Prunes the repository (see the module doc). */
export async function prune(
  repo: Repository,
  opts: PruneOptions,
  onEvent: (e: PruneEvent) => void = () => {},
): Promise<PruneSummary> {
  const started = performance.now();
  const store = repo.store;
  const policy = checkPolicy(opts.policy);
  const now = opts.now ?? (() => new Date());
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  let lock: Lock | null = null;
  let backupLocks: LockInfo[];
  if (opts.dryRun) {
    backupLocks = (await liveLocks(store, now())).filter((l) => l.kind === "backup");
  } else {
    lock = await acquireLock(store, "prune", opts.host, { now, ...opts.lock });
    backupLocks = lock.others.filter((l) => l.kind === "backup");
  }
  let summary: PruneSummary;
  try {
    summary = await run();
  } catch (err) {
    await lock?.release().catch(() => {}); // the first error is the one to report
    throw err;
  }
  await lock?.release();
  return summary;

  async function run(): Promise<PruneSummary> {
    await checkPasswordUnchanged(repo);

    // One listing, after our lock is written.
    const objects: ObjectInfo[] = [];
    const metas: MetaName[] = [];
    const strange: string[] = [];
    for await (const o of store.list()) {
      if (MD5_NAME.test(o.name)) objects.push(o);
      else if (o.name.startsWith(META_PREFIX)) {
        const m = parseMetaName(o.name);
        if (m) metas.push(m);
        else strange.push(o.name);
      }
    }
    if (strange.length > 0) {
      throw new S3BackupError(
        `Cannot prune: ${strange[0]}${
          strange.length > 1 ? ` (and ${strange.length - 1} more)` : ""
        }` +
          ` looks like a meta but its name is not meta_<name>_<YYYYMMDDTHHMMSSZ>: what it ` +
          `references cannot be known; rename or remove it first. Nothing was deleted`,
      );
    }

    const decisions = planPrune(metas, policy);
    for (const d of decisions) onEvent({ type: "meta", decision: d });
    const kept = decisions.filter((d) => d.keep).map((d) => d.meta.key);
    const removed = decisions.filter((d) => !d.keep).map((d) => d.meta.key);

    // Everything the kept metas use. One that does not open stops the prune here.
    const referenced = new Set<string>();
    await pool(kept, opts.concurrency ?? 4, async (key) => {
      opts.signal?.throwIfAborted();
      let meta;
      try {
        meta = await loadMeta(repo, key);
      } catch (err) {
        if (!(err instanceof CorruptDataError)) throw err;
        throw new CorruptDataError(
          `Cannot prune: ${err.message}; what it references cannot be known. Nothing was deleted`,
          { cause: err },
        );
      }
      for (const e of meta.entries) if (e.md5 !== undefined) referenced.add(e.md5);
    });

    opts.signal?.throwIfAborted();
    if (!opts.dryRun && removed.length > 0) await store.remove(removed);

    const unreferenced = objects.filter((o) => !referenced.has(o.name));
    const cutoff = now().getTime() - graceMs;
    const young = unreferenced.filter((o) => o.mtime.getTime() > cutoff);
    const old = unreferenced.filter((o) => o.mtime.getTime() <= cutoff)
      .sort((a, b) => a.name < b.name ? -1 : 1);
    const dataSkipped = backupLocks.length > 0;
    let objectsRemoved = 0, bytesRemoved = 0;
    if (dataSkipped) onEvent({ type: "backups-running", locks: backupLocks });
    else {
      for (const o of old) onEvent({ type: "object", name: o.name, size: o.size });
      opts.signal?.throwIfAborted();
      if (!opts.dryRun && old.length > 0) await store.remove(old.map((o) => o.name));
      objectsRemoved = old.length;
      bytesRemoved = old.reduce((n, o) => n + o.size, 0);
    }
    return {
      dryRun: opts.dryRun,
      metasKept: kept.length,
      metasRemoved: removed,
      objectsReferenced: referenced.size,
      objectsUnreferenced: unreferenced.length,
      objectsRemoved,
      bytesRemoved,
      objectsTooYoung: young.length,
      bytesTooYoung: young.reduce((n, o) => n + o.size, 0),
      dataSkipped,
      backupLocks,
      graceMs,
      durationMs: performance.now() - started,
    };
  }
}
