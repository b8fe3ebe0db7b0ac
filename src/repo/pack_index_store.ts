/**
 * A format 3 repository's indexes (FORMAT.md §4.3), as writers read them: one listing each of
 * `packs/`, `data/` and `index/`; the index objects not read before are fetched and kept,
 * encrypted as stored, in a cache folder (`<dir>/index/<repository id>/`, 0700); a content
 * counts as stored when an index names it and its object is listed.
 */
import { encryptedSize } from "../format/container.ts";
import { INDEX_PREFIX, newObjectId, packKey, placeOf } from "../format/layout.ts";
import {
  formatPackIndex,
  type IndexEntry,
  type PackIndex,
  packOf,
  parsePackIndex,
} from "../format/pack_index.ts";
import type { ObjectInfo, SaveOptions, Store } from "../store/store.ts";
import { messageOf, readAll } from "../util/bytes.ts";
import { CorruptDataError } from "../util/errors.ts";
import { releaseMemory } from "../util/memory.ts";
import { pool } from "../util/pool.ts";
import { decryptSmallObject, encryptSmallObject, type Repository } from "./repository.ts";

const td = new TextDecoder();
const te = new TextEncoder();

/** What the store holds of format 3 objects, from one listing of each prefix. */
export interface StoredObjects {
  /** `packs/<id>` and `data/<md5>[.gz]` objects, by name. */
  objects: Map<string, ObjectInfo>;
  /** `index/<id>` objects, by name. */
  indexes: Map<string, ObjectInfo>;
}

/** Lists `packs/`, `data/` and `index/` (a request per 1,000 objects). */
export async function listStored(store: Store): Promise<StoredObjects> {
  // The three listings at once: one round trip's wait, not three.
  const [packs, data, index] = await Promise.all(
    ["packs/", "data/", INDEX_PREFIX].map((prefix) => Array.fromAsync(store.list(prefix))),
  );
  const byName = (os: ObjectInfo[]) => new Map(os.map((o) => [o.name, o]));
  return { objects: byName([...packs!, ...data!]), indexes: byName(index!) };
}

/** The cache folder of a repository's index objects, or null without a cache. */
function cacheDirOf(cacheRoot: string | null, repo: Repository): string | null {
  return cacheRoot === null ? null : `${cacheRoot}/index/${repo.descriptor.id}`;
}

/**
 * What index object `name` says (CorruptDataError naming it): from its cached copy, else (none,
 * or one that does not open: cut short by a full disk or a crash) from the store, then cached.
 */
export async function readIndex(
  repo: Repository,
  name: string,
  cacheRoot: string | null,
): Promise<PackIndex> {
  const dir = cacheDirOf(cacheRoot, repo);
  const file = dir === null ? null : `${dir}/${name.slice(INDEX_PREFIX.length)}`;
  const cached = file === null ? null : readCached(file);
  if (cached !== null) {
    try {
      return parsePackIndex(td.decode(await decryptSmallObject(repo, cached)), name);
    } catch {
      forget(file!);
    }
  }
  const body = await readAll(await repo.store.load(name));
  let plain: Uint8Array;
  try {
    plain = await decryptSmallObject(repo, body);
  } catch (err) {
    throw new CorruptDataError(`Cannot read ${name}: it does not decrypt (${messageOf(err)})`);
  }
  const index = parsePackIndex(td.decode(plain), name);
  if (dir !== null) cacheWhole(dir, file!, body);
  return index;
}

/** A cached file's bytes, or null when there is none. */
function readCached(file: string): Uint8Array | null {
  try {
    return Deno.readFileSync(file);
  } catch {
    return null;
  }
}

/**
 * Caches `body` as `file` whole or not at all (written under a temporary name, then renamed):
 * a full disk or a crash leaves no part of one. A cache that cannot be written costs a GET.
 */
function cacheWhole(dir: string, file: string, body: Uint8Array): void {
  const tmp = `${file}.${newObjectId().slice(0, 12)}.tmp`;
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.writeFileSync(tmp, body, { mode: 0o600 });
    Deno.renameSync(tmp, file);
  } catch {
    forget(tmp);
  }
}

/**
 * Every index entry whose object is listed in `stored` whole, passed to `each`: a pack at the
 * size its index's `pack` line gives, a `data/` object at the size its stored bytes make
 * (FORMAT.md §4.3). An object of another size (cut short by a crash before it was durable,
 * damaged, or repacked since) counts as absent: its contents are stored again. An index that
 * does not open is skipped with `onBad` (its contents are then stored again). Cached index
 * files of indexes no longer listed are removed. Returns how many entries name an object that
 * is not there whole.
 */
export async function eachIndexed(
  repo: Repository,
  stored: StoredObjects,
  cacheRoot: string | null,
  each: (e: IndexEntry, index: string) => void,
  onBad: (name: string, err: unknown) => void,
  signal?: AbortSignal,
): Promise<number> {
  let absent = 0;
  await pool(stored.indexes.keys(), 8, async (name) => {
    let index: PackIndex;
    try {
      index = await readIndex(repo, name, cacheRoot);
    } catch (err) {
      if (!(err instanceof CorruptDataError)) throw err;
      onBad(name, err);
      return;
    }
    for (const e of index.entries) {
      if (isWhole(stored, index, e)) each(e, name);
      else absent++;
    }
    // Up to 65,536 entries' text, lines and objects, now garbage (util/memory.ts).
    if (index.entries.length >= 4096) releaseMemory();
  }, signal);
  pruneCache(cacheDirOf(cacheRoot, repo), stored.indexes);
  return absent;
}

/** Whether the object holding `e` is listed at the size `index` implies (FORMAT.md §4.3). */
export function isWhole(stored: StoredObjects, index: PackIndex, e: IndexEntry): boolean {
  const pack = packOf(e);
  const key = pack === null ? placeOf(e.md5, e.where).key : packKey(pack);
  const size = stored.objects.get(key)?.size;
  if (size === undefined) return false;
  return size === (pack === null ? encryptedSize(e.stored) : index.packs.get(pack));
}

/** Removes cached index files whose object is gone. */
function pruneCache(dir: string | null, listed: Map<string, ObjectInfo>): void {
  if (dir === null) return;
  try {
    for (const f of Deno.readDirSync(dir)) {
      if (!listed.has(`${INDEX_PREFIX}${f.name}`)) Deno.removeSync(`${dir}/${f.name}`);
    }
  } catch { /* no cache yet */ }
}

/** Stores a new index object saying `index`; returns its name. */
export async function writeIndex(
  repo: Repository,
  index: PackIndex,
  cacheRoot: string | null,
  options: SaveOptions = {},
  store: Store = repo.store,
): Promise<string> {
  const name = `${INDEX_PREFIX}${newObjectId()}`;
  const body = await encryptSmallObject(repo, te.encode(formatPackIndex(index)));
  await store.save(name, body, options);
  const dir = cacheDirOf(cacheRoot, repo);
  if (dir !== null) cacheWhole(dir, `${dir}/${name.slice(INDEX_PREFIX.length)}`, body);
  return name;
}

/** Removes a cached file that did not open, or a temporary one. */
function forget(file: string): void {
  try {
    Deno.removeSync(file);
  } catch { /* gone already */ }
}
