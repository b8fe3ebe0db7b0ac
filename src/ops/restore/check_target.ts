/**
 * Where a restore must not write: into or over the folder a backup running on this host reads,
 * over the folder a backup was taken from (without --overwrite), or inside a local repository.
 */
import { resolve } from "node:path";
import type { Meta } from "../../format/meta.ts";
import { liveLocks, type LockInfo } from "../../repo/lock.ts";
import type { Store } from "../../store/store.ts";
import { S3BackupError, UsageError } from "../../util/errors.ts";
async function realOrResolved(p: string): Promise<string> {
  return await Deno.realPath(p).catch(() => resolve(p));
}

/** The name of a live backup lock taken by `host` (FORMAT.md §6), or null. */
export async function liveBackupLock(
  store: Store,
  host: string,
  locks: Promise<LockInfo[]> = liveLocks(store),
): Promise<string | null> {
  const l = (await locks).find((l) => l.kind === "backup" && (l.host === host || !l.readable));
  return l ? l.key : null;
}

/** Whether one of two absolute paths is the other or inside it. */
function overlaps(a: string, b: string): boolean {
  const under = (x: string, y: string) => x === y || x.startsWith(y.endsWith("/") ? y : `${y}/`);
  return under(a, b) || under(b, a);
}

/**
 * Refuses to restore into (or over) the folder of a backup running on this host (its lock names
 * the folder); into the folder the backup was taken from, on the host it was taken on, unless
 * `overwrite`, and even then while any backup of this host runs (a lock of an older version
 * names no folder). Also refuses a target inside a local repository. `locks`: the store's live
 * locks, when the caller listed them already (a restore does while its repository opens).
 */
export async function checkTarget(
  store: Store,
  meta: Meta,
  target: string,
  host: string,
  overwrite: boolean,
  locks: Promise<LockInfo[]> = liveLocks(store),
): Promise<void> {
  locks.catch(() => {}); // met below, unless the target is refused first
  const t = await realOrResolved(target);
  if (store.kind === "local") {
    const repoDir = await realOrResolved(store.location);
    if (t === repoDir || t.startsWith(`${repoDir}/`)) {
      throw new UsageError(`Refusing to restore into the repository itself (${repoDir})`);
    }
  }
  // A backup running on this host reads its folder: never restore over or into it meanwhile.
  for (const l of await locks) {
    if (l.kind !== "backup" || l.host !== host || l.source === undefined) continue;
    if (overlaps(t, await realOrResolved(l.source))) {
      throw new S3BackupError(
        `A backup of ${l.source} is running on this host (${l.key}): not restoring into ${t}`,
      );
    }
  }
  if (meta.header.source === "" || meta.header.host !== host) return;
  if (t !== await realOrResolved(meta.header.source)) return;
  if (!overwrite) {
    throw new UsageError(
      `${t} is the folder this backup was taken from on this host: ` +
        "restore elsewhere, or add --overwrite to restore over it",
    );
  }
  const lock = await liveBackupLock(store, host, locks);
  if (lock !== null) {
    throw new S3BackupError(
      `A backup from this host is running (${lock}): not restoring into ${t} now`,
    );
  }
}
