/**
 * Data objects in an archive storage class (GLACIER, DEEP_ARCHIVE) cannot be read until S3 has
 * made a readable copy of each (RestoreObject; minutes to two days). Restore finds them when a
 * GET says so (InvalidObjectState), verify `--read-data` in its listing; both ask for exactly
 * the ones they need (a HEAD each tells which have a copy or are being copied), say what that
 * costs before asking, then either poll
 * until every copy is there (`wait`) or leave them for a rerun. Metas, key, descriptor and kit
 * are never archived (a backup writes them in the default class).
 */
import type { ObjectInfo, RestoreRequest, Store } from "../store/store.ts";
import { pause } from "../util/pause.ts";
import { pool } from "../util/pool.ts";

/** The storage classes whose objects must be restored before a GET. (GLACIER_IR need not.) */
export const ARCHIVE_CLASSES: readonly string[] = ["GLACIER", "DEEP_ARCHIVE"];

export function isArchived(o: Pick<ObjectInfo, "storageClass"> | undefined): boolean {
  return o?.storageClass !== undefined && ARCHIVE_CLASSES.includes(o.storageClass);
}

export interface ThawOptions {
  request: RestoreRequest;
  /** Poll until every copy is readable; else leave the ones not ready (`pending`). */
  wait: boolean;
  /** First pause between polls (doubling up to POLL_MAX_MS). Default 2 s. */
  pollMs?: number;
  signal?: AbortSignal;
}

export const DEFAULT_RESTORE_REQUEST: RestoreRequest = { days: 3, tier: "Standard" };

/** Polls at most this far apart while waiting. */
const POLL_MAX_MS = 10 * 60_000;

export type ThawEvent =
  /** What is archived among the objects needed, before anything is asked for. */
  | {
    type: "archived";
    objects: number;
    bytes: number;
    /** Copies there already / being made / to ask for now (and their bytes). */
    ready: number;
    inProgress: number;
    toRequest: number;
    toRequestBytes: number;
    classes: string[];
    request: RestoreRequest;
  }
  /** Copies still not ready; the next look is in `nextMs` (the pause doubles, up to 10 min). */
  | { type: "thaw-waiting"; pending: number; nextMs: number };

export interface Thawed {
  /** Names still unreadable (not `wait`): being copied, for a rerun. */
  pending: Set<string>;
  /** Restores asked for by this run. */
  requested: number;
  requestedBytes: number;
}

/** How the objects `names` stand (and their stored size and class): a HEAD each. */
async function states(store: Store, names: string[], signal?: AbortSignal) {
  const out = new Map<string, { state: "ongoing" | "done" | "none"; info: ObjectInfo | null }>();
  await pool(names, 16, async (n) => {
    const info = await store.stat(n);
    // Gone meanwhile, or not archived (moved back to STANDARD): readable or missing, either
    // way the read finds out.
    const state = info === null || !isArchived(info) ? "done" : info.restore ?? "none";
    out.set(n, { state, info });
  }, signal);
  return out;
}

/**
 * Makes the archived objects among `names` readable, or asks for it: one HEAD each (its class,
 * size and whether a copy is there or being made), then a RestoreObject for each without a
 * copy, then (with `wait`) HEADs again until every copy is there.
 */
export async function thaw(
  store: Store,
  names: string[],
  opts: ThawOptions,
  onEvent: (e: ThawEvent) => void = () => {},
): Promise<Thawed> {
  const result: Thawed = { pending: new Set(), requested: 0, requestedBytes: 0 };
  if (names.length === 0 || store.requestRestore === undefined) return result;
  const now = await states(store, names, opts.signal);
  const stateOf = (n: string) => now.get(n)?.state;
  const sizeOf = (n: string) => now.get(n)?.info?.size ?? 0;
  const archived = names.filter((n) => isArchived(now.get(n)?.info ?? undefined));
  const cold = names.filter((n) => stateOf(n) === "none");
  const size = (ns: string[]) => ns.reduce((s, n) => s + sizeOf(n), 0);
  if (archived.length > 0) {
    onEvent({
      type: "archived",
      objects: archived.length,
      bytes: size(archived),
      ready: archived.filter((n) => stateOf(n) === "done").length,
      inProgress: archived.filter((n) => stateOf(n) === "ongoing").length,
      toRequest: cold.length,
      toRequestBytes: size(cold),
      classes: [...new Set(archived.map((n) => now.get(n)!.info!.storageClass!))].sort(),
      request: opts.request,
    });
  }
  await pool(cold, 16, async (n) => {
    if (await store.requestRestore!(n, opts.request) === "requested") {
      result.requested++;
      result.requestedBytes += sizeOf(n);
    }
  }, opts.signal);
  let pending = names.filter((n) => stateOf(n) !== "done");
  for (let step = opts.pollMs ?? 2000; opts.wait && pending.length > 0;) {
    onEvent({ type: "thaw-waiting", pending: pending.length, nextMs: step });
    await pause(step, opts.signal);
    step = Math.min(step * 2, POLL_MAX_MS);
    const again = await states(store, pending, opts.signal);
    pending = pending.filter((n) => again.get(n)?.state !== "done");
  }
  result.pending = new Set(pending);
  return result;
}

/** How long a restore of `tier` from `classes` takes, as AWS documents it, for messages. */
export function thawTime(tier: RestoreRequest["tier"], classes: string[]): string {
  const deep = classes.includes("DEEP_ARCHIVE");
  if (tier === "Expedited") return "1-5 minutes";
  if (tier === "Standard") return deep ? "about 12 hours" : "3-5 hours";
  return deep ? "about 48 hours" : "5-12 hours";
}
