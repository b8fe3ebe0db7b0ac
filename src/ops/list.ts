/** Lists the backups of a store (format 2 or format 1), optionally opening each meta to count. */
import { META_PREFIX } from "../format/layout.ts";
import type { Meta } from "../format/meta.ts";
import { type LegacyRepository, loadLegacyMeta } from "../repo/legacy.ts";
import { listRepository, type MetaObject } from "../repo/listing.ts";
import { loadMeta, type Repository } from "../repo/repository.ts";
import type { Store } from "../store/store.ts";
import { ObjectNotFoundError } from "../util/errors.ts";
import { pool } from "../util/pool.ts";

export interface BackupInfo extends MetaObject {
  /** Number of files (and dirs, links) when the meta was opened. */
  files?: number;
  dirs?: number;
  links?: number;
  /** Bytes of file content; unknown for format 1. */
  bytes?: number;
  /** Why the meta could not be opened, when it could not. */
  error?: string;
}

/** Opens each backup of `list` with `load` (4 at a time) and counts its entries. */
async function count(
  list: BackupInfo[],
  load: (key: string) => Promise<Meta>,
  withBytes: boolean,
): Promise<void> {
  await pool(list, 4, async (b) => {
    try {
      const meta = await load(b.key);
      b.files = b.dirs = b.links = 0;
      if (withBytes) b.bytes = 0;
      for (const e of meta.entries) {
        if (e.type === "f") {
          b.files++;
          if (withBytes) b.bytes! += e.size;
        } else if (e.type === "d") b.dirs++;
        else b.links++;
      }
    } catch (err) {
      b.error = err instanceof ObjectNotFoundError ? "gone" : (err as Error).message;
    }
  });
}

/** Every meta in the store, oldest first. With `repo`, each is opened. */
export async function listBackups(store: Store, repo?: Repository): Promise<BackupInfo[]> {
  const out: BackupInfo[] = (await listRepository(store, META_PREFIX)).metas;
  if (repo) await count(out, (key) => loadMeta(repo, key), true);
  return out;
}

/** A format 1 bucket's backups; with a password, each meta is opened to count its files. */
export async function listLegacyBackups(
  store: Store,
  password?: Uint8Array,
): Promise<BackupInfo[]> {
  const out: BackupInfo[] = (await listRepository(store, META_PREFIX)).legacyMetas;
  if (password) {
    const repo: LegacyRepository = { kind: "legacy", store, password };
    // Format 1 metas hold no sizes (b.bytes stays unknown) and no links.
    await count(out, (key) => loadLegacyMeta(repo, key), false);
  }
  return out;
}
