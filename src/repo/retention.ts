/**
 * S3 Object Lock retention (README "Ransomware protection"): with `--retain D`, every object a
 * backup writes but its lock carries a retention until now + 1.5 x D, and the objects it reuses
 * (its contents stored by earlier backups, the key, the descriptor, the kit) are extended to
 * the same date when less than D may be left: in steps, so that a nightly backup extends
 * everything about once every D / 2, not every night. What may be left is known from the files
 * cache (the date the last extension gave every object of its meta); without it, everything
 * the backup names is extended.
 */
import { DESCRIPTOR_NAME, KEY_NAME, LOCK_PREFIX } from "../format/layout.ts";
import type { ObjectRetention, Store } from "../store/store.ts";
import { wrapStore } from "../store/store.ts";
import { S3BackupError, UsageError } from "../util/errors.ts";
import { pool } from "../util/pool.ts";

export interface RetentionPolicy {
  mode: ObjectRetention["mode"];
  /** How long each backup stays protected, at least. */
  retainMs: number;
}

/** How far past the run a retention reaches, in units of the policy's duration. */
export const RETAIN_FACTOR = 1.5;

/** The retention a run at `now` gives what it writes and extends. */
export function retentionAt(p: RetentionPolicy, now: Date): ObjectRetention {
  return { mode: p.mode, until: new Date(now.getTime() + RETAIN_FACTOR * p.retainMs) };
}

/**
 * Whether reused objects need extending: their retention (`knownUntilMs`, from the files cache,
 * undefined when not known) ends less than the policy's duration after `now`.
 */
export function extensionDue(
  p: RetentionPolicy,
  knownUntilMs: number | undefined,
  now: Date,
): boolean {
  return knownUntilMs === undefined || knownUntilMs - now.getTime() < p.retainMs;
}

/**
 * `store`, whose saves carry `r`, but for locks (removed by their writer) and what the run
 * writes only to remove again.
 */
export function retaining(store: Store, r: ObjectRetention): Store {
  return wrapStore(store, {
    save: (name, data, opts) =>
      store.save(name, data, name.startsWith(LOCK_PREFIX) ? opts : { ...opts, retention: r }),
  });
}

/** Throws UsageError unless `store` is a bucket with Object Lock enabled. */
export async function checkObjectLock(store: Store): Promise<void> {
  if (store.objectLock === undefined || store.retain === undefined) {
    throw new UsageError(
      `--retain needs an S3 bucket with Object Lock; ${store.location} is a local directory`,
    );
  }
  if (!(await store.objectLock())) {
    throw new UsageError(
      `--retain: the bucket of ${store.location} does not have Object Lock enabled ` +
        "(README: Ransomware protection)",
    );
  }
}

/** The objects every backup needs besides its contents. */
export function sharedObjects(kitNames: Iterable<string>): string[] {
  return [KEY_NAME, DESCRIPTOR_NAME, ...kitNames];
}

/**
 * Extends the retention of each of `names` to `r` (16 at a time); how many were. A retention
 * is never shortened: when the store refuses (an object retained longer already, by another
 * host's longer policy or a later clock; or in COMPLIANCE mode, which GOVERNANCE may not
 * replace), a HEAD tells, and an object retained until `r.until` or later is left as it is,
 * one in COMPLIANCE is extended in COMPLIANCE.
 */
export async function extendRetention(
  store: Store,
  names: Iterable<string>,
  r: ObjectRetention,
  signal?: AbortSignal,
): Promise<number> {
  let n = 0;
  await pool(names, 16, async (name) => {
    try {
      await store.retain!(name, r);
      n++;
    } catch (err) {
      const now = await store.stat(name).catch(() => null);
      if (now?.retainUntil !== undefined && now.retainUntil >= r.until) return;
      if (now?.retainMode === "COMPLIANCE" && r.mode === "GOVERNANCE") {
        await store.retain!(name, { ...r, mode: "COMPLIANCE" }).then(() => n++, () => {
          throw extendError(name, err);
        });
        return;
      }
      throw extendError(name, err);
    }
  }, signal);
  return n;
}

function extendError(name: string, err: unknown): S3BackupError {
  return new S3BackupError(
    `Cannot extend the retention of ${name}: ${(err as Error).message}`,
    { cause: err },
  );
}
