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
 * references and older than the grace period (by their store date against the store's clock,
 * known from our lock's store date: a prune whose clock is hours fast deletes nothing young).
 * Before deleting data objects it checks that its lock held throughout (`Lock.lapsed`: a prune
 * that slept past the stale time may meet a backup that started meanwhile). Then, format 3,
 * the packs whose unused members pass `--max-unused` are repacked in place and the packs their
 * indexes do not describe re-indexed (repack.ts; FORMAT.md §6), and the indexes follow.
 * `dryRun` takes no lock and deletes nothing, reporting what would go.
 *
 * The engine never prints: it reports through `onEvent` and returns a summary.
 */
import { compareMetaNames, type MetaName, PACK_PREFIX, placeOf } from "../../format/layout.ts";
import type { PackIndex } from "../../format/pack_index.ts";
import { readIndex, writeIndex } from "../../repo/pack_index_store.ts";
import { isArchived } from "../../repo/thaw.ts";
import {
  choosePacks,
  DEFAULT_MAX_UNUSED,
  type MaxUnused,
  packUses,
  rewritePack,
  type Rewritten,
} from "./repack.ts";
import { listRepository } from "../../repo/listing.ts";
import {
  liveLocks,
  type Lock,
  type LockInfo,
  type LockOptions,
  withLock,
} from "../../repo/lock.ts";
import {
  abortStaleUploads,
  checkPasswordUnchanged,
  loadMeta,
  type Repository,
} from "../../repo/repository.ts";
import type { ObjectInfo, Store } from "../../store/store.ts";
import { CorruptDataError, S3BackupError, UsageError } from "../../util/errors.ts";
import { pool } from "../../util/pool.ts";

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
  /** Unused bytes packs may hold before they are repacked (default 5% of the used bytes). */
  maxUnused?: MaxUnused;
  lock?: LockOptions;
  signal?: AbortSignal;
}

export type PruneEvent =
  | { type: "meta"; decision: MetaDecision }
  /** An unreferenced data object removed (or, dry run, that would be). */
  | { type: "object"; name: string; size: number }
  /** Live backup locks: no data object is deleted. */
  | { type: "backups-running"; locks: LockInfo[] }
  /** A pack repacked (`unused` bytes of it dropped) or re-indexed (or, dry run, that would be). */
  | { type: "repack"; name: string; size: number; unused: number; reindex: boolean }
  /** A pack that could not be repacked or re-indexed: left as it is. */
  | { type: "repack-failed"; name: string; message: string };

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
  /** Multipart uploads of killed runs (over a day old) that were aborted. */
  uploadsAborted: number;
  /** Packs rewritten in place without their unused members (or, dry run, that would be). */
  packsRepacked: number;
  /** Stored bytes that repacking freed (dry run: the unused bytes it would drop). */
  bytesRepacked: number;
  /** Packs whose indexes did not describe them, indexed anew. */
  packsReindexed: number;
  /** Packs that could not be read to repack or re-index: left as they are (verify them). */
  packsDamaged: string[];
  /** Unused bytes left in packs (within --max-unused, too young, or not repackable). */
  bytesUnused: number;
  /** Why no pack was repacked, when one would have been (a versioned bucket). */
  repackSkipped: string | null;
  /**
   * Metas and objects the policy would remove that the store keeps under Object Lock
   * retention (not an error: they go once it ends); on a versioned bucket the versions that
   * may go are removed, so that their storage is freed.
   */
  retained: string[];
  durationMs: number;
}

/** Prunes the repository (see the module doc). */
export async function prune(
  repo: Repository,
  opts: PruneOptions,
  onEvent: (e: PruneEvent) => void = () => {},
): Promise<PruneSummary> {
  const started = performance.now();
  const now = opts.now ?? (() => new Date());
  const run = async (backupLocks: LockInfo[], lock?: Lock): Promise<PruneSummary> => {
    await checkPasswordUnchanged(repo.store, repo);
    const plan = await planRemovals(repo, opts, onEvent);
    const storeNow = () => new Date(now().getTime() + (lock?.offsetMs ?? 0));
    const removed = await remove(repo, opts, plan, { backupLocks, storeNow, lock }, onEvent);
    return { ...removed, durationMs: performance.now() - started };
  };
  checkPolicy(opts.policy);
  if (opts.dryRun) {
    return await run((await liveLocks(repo.store, now())).filter((l) => l.kind === "backup"));
  }
  return await withLock(repo.store, "prune", opts.host, { now, ...opts.lock }, async (lock) => {
    const summary = await run(lock.others.filter((l) => l.kind === "backup"), lock);
    const storeNow = new Date(now().getTime() + lock.offsetMs);
    return { ...summary, uploadsAborted: await abortStaleUploads(repo.store, storeNow) };
  });
}

interface PrunePlan {
  kept: string[];
  removed: string[];
  objects: ObjectInfo[];
  /** Format 3 index objects. */
  indexes: string[];
  referenced: Set<string>;
  /** Pack key -> the members kept metas name. */
  needed: Map<string, Set<string>>;
}

/** One listing (after our lock is written), the policy, and what the kept metas reference. */
async function planRemovals(
  repo: Repository,
  opts: PruneOptions,
  onEvent: (e: PruneEvent) => void,
): Promise<PrunePlan> {
  const listing = await listRepository(repo.store);
  const strange = [...listing.legacyMetas.map((m) => m.key), ...listing.strangeMetas];
  if (strange.length > 0) {
    throw new S3BackupError(
      `Cannot prune: ${strange[0]}${
        strange.length > 1 ? ` (and ${strange.length - 1} more)` : ""
      }` +
        ` looks like a meta but its name is not meta_<name>_<YYYYMMDDTHHMMSSZ>: what it ` +
        `references cannot be known; rename or remove it first. Nothing was deleted`,
    );
  }
  const decisions = planPrune(listing.metas, opts.policy);
  for (const d of decisions) onEvent({ type: "meta", decision: d });
  const kept = decisions.filter((d) => d.keep).map((d) => d.meta.key);
  const removed = decisions.filter((d) => !d.keep).map((d) => d.meta.key);

  const plan: PrunePlan = {
    kept,
    removed,
    objects: [...listing.objects.values()],
    indexes: [...listing.indexes.keys()],
    referenced: new Set(),
    needed: new Map(),
  };
  await addReferences(repo, kept, plan, opts);
  return plan;
}

/**
 * Adds what the metas `keys` use to `plan.referenced` (objects) and `plan.needed` (pack
 * members). One that does not open stops the prune.
 */
async function addReferences(
  repo: Repository,
  keys: string[],
  plan: Pick<PrunePlan, "referenced" | "needed">,
  opts: PruneOptions,
): Promise<void> {
  await pool(keys, opts.concurrency ?? 4, async (key) => {
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
    for (const e of meta.entries) {
      if (e.md5 === undefined) continue;
      const { key, member } = placeOf(e.md5, e.where ?? "-");
      plan.referenced.add(key);
      if (member === null) continue;
      const members = plan.needed.get(key);
      if (members) members.add(member);
      else plan.needed.set(key, new Set([member]));
    }
  }, opts.signal);
}

/**
 * Removes `names`: on a versioned bucket every version that may go (a meta or object kept by
 * its retention is returned); else the objects.
 */
async function removeAll(store: Store, names: string[], versioned: boolean): Promise<string[]> {
  if (names.length === 0) return [];
  if (!versioned || store.removeVersions === undefined) {
    await store.remove(names);
    return [];
  }
  return (await store.removeVersions(names)).retained.sort();
}

/** What the removal knows of other writers: their locks, the store's clock, our lock. */
interface Writers {
  backupLocks: LockInfo[];
  storeNow: () => Date;
  lock: Lock | undefined;
}

/** Stops before data objects go when our lock lapsed: a backup may have started meanwhile. */
async function checkLockHeld(lock: Lock | undefined): Promise<void> {
  const why = await lock?.lapsed();
  if (why === null || why === undefined) return;
  throw new S3BackupError(
    `Cannot finish the prune: its lock ${lock!.key} lapsed (${why}), so a backup may have ` +
      "started meanwhile; no data object was deleted (metas may have been): run the prune again",
  );
}

/** What each index object says, or null for one that does not open (left as it is). */
async function readIndexes(
  repo: Repository,
  names: string[],
  signal?: AbortSignal,
): Promise<Map<string, PackIndex | null>> {
  const out = new Map<string, PackIndex | null>();
  await pool(names, 4, async (name) => {
    try {
      out.set(name, await readIndex(repo, name, null));
    } catch (err) {
      if (!(err instanceof CorruptDataError)) throw err;
      out.set(name, null); // writers skip it too
    }
  }, signal);
  return out;
}

/**
 * Format 3 (FORMAT.md §6): each index object with an entry `live` rejects (its object gone,
 * or its pack rewritten and indexed anew) is replaced by one holding its other entries (stored
 * first), then deleted. Returns what retention kept.
 */
async function rewriteIndexes(
  repo: Repository,
  indexed: Map<string, PackIndex | null>,
  live: (key: string) => boolean,
  versioned: boolean,
  signal?: AbortSignal,
): Promise<string[]> {
  const stale: string[] = [];
  await pool(indexed, 4, async ([name, index]) => {
    if (index === null) return;
    const left = index.entries.filter((e) => live(placeOf(e.md5, e.where).key));
    if (left.length === index.entries.length) return;
    if (left.length > 0) await writeIndex(repo, { entries: left, packs: index.packs }, null);
    stale.push(name);
  }, signal);
  return await removeAll(repo.store, stale, versioned);
}

/** What repacking and re-indexing did (PruneSummary's fields). */
type RepackResult = Pick<
  PruneSummary,
  | "packsRepacked"
  | "bytesRepacked"
  | "packsReindexed"
  | "packsDamaged"
  | "bytesUnused"
  | "repackSkipped"
>;

/**
 * FORMAT.md §6: repacks the packs `--max-unused` picks and re-indexes the packs their indexes
 * do not describe (only packs older than `cutoff`, readable at once; none repacked on a
 * versioned bucket), then stores one index of the rewritten packs. Returns the keys rewritten.
 */
async function rewritePacks(
  repo: Repository,
  opts: PruneOptions,
  plan: PrunePlan,
  indexed: Map<string, PackIndex | null>,
  at: { cutoff: number; versioned: boolean },
  onEvent: (e: PruneEvent) => void,
): Promise<RepackResult & { done: Set<string> }> {
  const objects = new Map(plan.objects.map((o) => [o.name, o]));
  const indexes = [...indexed.values()].filter((i) => i !== null);
  const uses = packUses(plan.objects, indexes, plan.needed);
  const may = (key: string) => {
    const o = objects.get(key)!;
    return o.mtime.getTime() <= at.cutoff && !isArchived(o);
  };
  const chosen = choosePacks(
    uses,
    opts.maxUnused === undefined ? DEFAULT_MAX_UNUSED : opts.maxUnused,
    may,
  );
  const skipped = at.versioned && chosen.length > 0
    ? "a versioned bucket keeps replaced packs (FORMAT.md §6)"
    : null;
  const repack = skipped === null ? chosen : [];
  const reindex = uses.filter((u) => !u.described && may(u.key));
  const result: RepackResult & { done: Set<string> } = {
    packsRepacked: 0,
    bytesRepacked: 0,
    packsReindexed: 0,
    packsDamaged: [],
    bytesUnused: uses.reduce((n, u) => n + u.unused, 0),
    repackSkipped: skipped,
    done: new Set(),
  };
  const jobs = [
    ...repack.map((u) => ({ u, keep: u.needed })),
    ...reindex.map((u) => ({ u, keep: null })),
  ];
  for (const { u, keep } of jobs) {
    onEvent({
      type: "repack",
      name: u.key,
      size: u.size,
      unused: u.unused,
      reindex: keep === null,
    });
  }
  if (opts.dryRun) {
    result.packsRepacked = repack.length;
    result.bytesRepacked = repack.reduce((n, u) => n + u.unused, 0);
    result.bytesUnused -= result.bytesRepacked;
    return result;
  }
  const fresh: Rewritten[] = [];
  await pool(jobs, 2, async ({ u, keep }) => {
    try {
      fresh.push(
        await rewritePack(repo, u.key, keep, objects.get(u.key)!.storageClass, opts.signal),
      );
    } catch (err) {
      if (!(err instanceof CorruptDataError)) throw err;
      result.packsDamaged.push(u.key);
      onEvent({ type: "repack-failed", name: u.key, message: err.message });
      return;
    }
    if (keep === null) result.packsReindexed++;
    else [result.packsRepacked++, result.bytesUnused -= u.unused];
  }, opts.signal);
  for (const r of fresh) [result.bytesRepacked += r.before - r.after, result.done.add(r.key)];
  // The packs are stored; the index of what they now hold comes before the old indexes go.
  if (fresh.length > 0) {
    const packs = new Map(fresh.map((r) => [r.key.slice(PACK_PREFIX.length), r.after]));
    await writeIndex(repo, { entries: fresh.flatMap((r) => r.entries), packs }, null);
  }
  result.packsDamaged.sort();
  return result;
}

/**
 * Deletes the metas outside the policy, then (unless backups run) the old unused objects, then
 * rewrites packs and indexes.
 */
async function remove(
  repo: Repository,
  opts: PruneOptions,
  plan: PrunePlan,
  writers: Writers,
  onEvent: (e: PruneEvent) => void,
): Promise<Omit<PruneSummary, "durationMs">> {
  const { backupLocks } = writers;
  const store = repo.store;
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  opts.signal?.throwIfAborted();
  const versioned = !opts.dryRun && (await store.versioning?.()) === true;
  const retained = opts.dryRun ? [] : await removeAll(store, plan.removed, versioned);
  // A meta kept by its retention still names its objects.
  await addReferences(repo, retained, plan, opts);

  const unreferenced = plan.objects.filter((o) => !plan.referenced.has(o.name));
  const cutoff = writers.storeNow().getTime() - graceMs;
  const young = unreferenced.filter((o) => o.mtime.getTime() > cutoff);
  const old = unreferenced.filter((o) => o.mtime.getTime() <= cutoff)
    .sort((a, b) => a.name < b.name ? -1 : 1);
  const dataSkipped = backupLocks.length > 0;
  let objectsRemoved = 0, bytesRemoved = 0;
  let repacked: RepackResult = {
    packsRepacked: 0,
    bytesRepacked: 0,
    packsReindexed: 0,
    packsDamaged: [],
    bytesUnused: 0,
    repackSkipped: null,
  };
  if (dataSkipped) onEvent({ type: "backups-running", locks: backupLocks });
  else {
    for (const o of old) onEvent({ type: "object", name: o.name, size: o.size });
    opts.signal?.throwIfAborted();
    if (!opts.dryRun) await checkLockHeld(writers.lock);
    const kept = opts.dryRun ? [] : await removeAll(store, old.map((o) => o.name), versioned);
    retained.push(...kept);
    const removed = old.filter((o) => !kept.includes(o.name));
    objectsRemoved = removed.length;
    bytesRemoved = removed.reduce((n, o) => n + o.size, 0);
    const gone = new Set(removed.map((o) => o.name));
    const left = new Set(plan.objects.map((o) => o.name).filter((n) => !gone.has(n)));
    const indexed = await readIndexes(repo, plan.indexes, opts.signal);
    const rewritten = await rewritePacks(repo, opts, plan, indexed, { cutoff, versioned }, onEvent);
    repacked = rewritten;
    if (!opts.dryRun) {
      const live = (key: string) => left.has(key) && !rewritten.done.has(key);
      retained.push(...await rewriteIndexes(repo, indexed, live, versioned, opts.signal));
    }
  }
  return {
    dryRun: opts.dryRun,
    metasKept: plan.kept.length,
    metasRemoved: plan.removed.filter((k) => !retained.includes(k)),
    objectsReferenced: plan.referenced.size,
    objectsUnreferenced: unreferenced.length,
    objectsRemoved,
    bytesRemoved,
    objectsTooYoung: young.length,
    bytesTooYoung: young.reduce((n, o) => n + o.size, 0),
    dataSkipped,
    backupLocks,
    graceMs,
    uploadsAborted: 0,
    retained,
    packsRepacked: repacked.packsRepacked,
    bytesRepacked: repacked.bytesRepacked,
    packsReindexed: repacked.packsReindexed,
    packsDamaged: repacked.packsDamaged,
    bytesUnused: repacked.bytesUnused,
    repackSkipped: repacked.repackSkipped,
  };
}
