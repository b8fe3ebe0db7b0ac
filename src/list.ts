/** Lists the backups of a store, optionally opening each meta to count its entries. */
import { compareMetaNames, META_PREFIX, type MetaName, parseMetaName } from "./meta_name.ts";
import { loadMeta, type Repository } from "./repository.ts";
import type { Store } from "./store/store.ts";

export interface BackupInfo extends MetaName {
  /** Size of the encrypted meta object. */
  size: number;
  /** Number of files (and dirs, links) when the meta was opened. */
  files?: number;
  dirs?: number;
  links?: number;
  bytes?: number;
  /** Why the meta could not be opened, when it could not. */
  error?: string;
}

/** Every meta in the store, oldest first. With `repo`, each is opened (4 at a time). */
export async function listBackups(store: Store, repo?: Repository): Promise<BackupInfo[]> {
  const out: BackupInfo[] = [];
  for await (const o of store.list(META_PREFIX)) {
    const m = parseMetaName(o.name);
    if (m) out.push({ ...m, size: o.size });
  }
  out.sort(compareMetaNames);
  if (repo) {
    let next = 0;
    const worker = async () => {
      while (next < out.length) {
        const b = out[next++]!;
        try {
          const meta = await loadMeta(repo, b.key);
          b.files =
            b.dirs =
            b.links =
            b.bytes =
              0;
          for (const e of meta.entries) {
            if (e.type === "f") {
              b.files++;
              b.bytes += e.size;
            } else if (e.type === "d") b.dirs++;
            else b.links++;
          }
        } catch (err) {
          b.error = (err as Error).message;
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }
  return out;
}
