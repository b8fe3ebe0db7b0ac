/**
 * Prune's rewriting of packs in place (FORMAT.md §6): how much of each pack the kept backups
 * use (from the indexes and the kept metas), which packs to repack under `--max-unused`, which
 * to re-index, and the rewrite of one pack, every member it keeps checked first.
 *
 * A pack keeps its name: kept metas name it, and metas never change. The new pack holds every
 * member a kept meta names, with the same bytes, and replaces the old one in one save.
 */
import { PACK_PREFIX, placeOf } from "../../format/layout.ts";
import { type Member, memberContent, openPack, packMembers, sealPack } from "../../format/pack.ts";
import type { IndexEntry, PackIndex } from "../../format/pack_index.ts";
import { BLOCK, padded } from "../../format/tar.ts";
import { decryptSmallObject, encryptSmallObject, type Repository } from "../../repo/repository.ts";
import type { ObjectInfo } from "../../store/store.ts";
import { messageOf, readAll } from "../../util/bytes.ts";
import { CorruptDataError } from "../../util/errors.ts";

/**
 * How many unused bytes packs may hold before prune repacks (restic's `--max-unused`): a share
 * of the used bytes, a number of bytes, or no bound (`null`: never repack).
 */
export type MaxUnused = { percent: number } | { bytes: number } | null;

/** restic's default. */
export const DEFAULT_MAX_UNUSED: MaxUnused = { percent: 5 };

/** One pack as prune sees it. */
export interface PackUse {
  key: string;
  /** The stored object's size. */
  size: number;
  /** Whether its indexes name exactly what it holds (FORMAT.md §4.3's size check). */
  described: boolean;
  /** Tar bytes of its members no kept meta names (0 when not described). */
  unused: number;
  /** Tar bytes of its members a kept meta names (its whole tar when not described). */
  used: number;
  /** The member names kept metas use. */
  needed: Set<string>;
}

/** A member's bytes in a tar: its header and its stored bytes padded to a block. */
const tarBytes = (stored: number) => BLOCK + padded(stored);

/**
 * Each referenced pack of `objects` with what its indexes say it holds (the entries of each
 * index whose `pack` line gives the pack's listed size: FORMAT.md §4.3) and what of it `needed`
 * (pack key -> member names kept metas use) uses. Pure.
 */
export function packUses(
  objects: Iterable<ObjectInfo>,
  indexes: Iterable<PackIndex>,
  needed: Map<string, Set<string>>,
): PackUse[] {
  const listed = new Map<string, number>();
  for (const o of objects) if (o.name.startsWith(PACK_PREFIX)) listed.set(o.name, o.size);
  const members = new Map<string, Map<string, number>>(); // pack key -> member -> stored
  for (const index of indexes) {
    for (const e of index.entries) {
      const { key, member } = placeOf(e.md5, e.where);
      if (member === null || listed.get(key) !== index.packs.get(key.slice(PACK_PREFIX.length))) {
        continue;
      }
      let m = members.get(key);
      if (!m) members.set(key, m = new Map());
      m.set(member, e.stored);
    }
  }
  const out: PackUse[] = [];
  for (const [key, size] of listed) {
    const use = needed.get(key);
    if (use === undefined) continue;
    const held = members.get(key) ?? new Map<string, number>();
    let tar = 0, unused = 0;
    for (const [name, stored] of held) {
      tar += tarBytes(stored);
      if (!use.has(name)) unused += tarBytes(stored);
    }
    const described = held.size > 0 && [...use].every((n) => held.has(n));
    out.push({
      key,
      size,
      described,
      unused: described ? unused : 0,
      used: described ? tar - unused : size,
      needed: use,
    });
  }
  return out;
}

/**
 * The packs to repack, largest unused share first, until the unused bytes of all packs are
 * within `max`; only those `may` allows (old enough, readable). Pure.
 */
export function choosePacks(
  uses: PackUse[],
  max: MaxUnused,
  may: (key: string) => boolean,
): PackUse[] {
  if (max === null) return [];
  let unused = uses.reduce((n, u) => n + u.unused, 0);
  const used = uses.reduce((n, u) => n + u.used, 0);
  const limit = "bytes" in max ? max.bytes : used * max.percent / 100;
  const share = (u: PackUse) => u.unused / (u.unused + u.used);
  const out: PackUse[] = [];
  const candidates = uses.filter((u) => u.described && u.unused > 0 && may(u.key))
    .sort((a, b) => share(b) - share(a) || (a.key < b.key ? -1 : 1));
  for (const u of candidates) {
    if (unused <= limit) break;
    out.push(u);
    unused -= u.unused;
  }
  return out;
}

/** What a rewrite did to one pack. */
export interface Rewritten {
  key: string;
  /** The index entries of the pack as it now is. */
  entries: IndexEntry[];
  /** The stored size before and after (equal when it was only re-indexed; else never). */
  before: number;
  after: number;
}

/**
 * Rewrites pack `key` in place to the members in `keep` (every one must be there and whole),
 * or, with `keep` null, re-indexes it: every member it holds, checked, and nothing saved.
 * A pack that does not decrypt or parse, or a kept member that is missing or bad, is
 * CorruptDataError naming it: the pack is left as it is.
 */
export async function rewritePack(
  repo: Repository,
  key: string,
  keep: Set<string> | null,
  storageClass: string | undefined,
  signal?: AbortSignal,
): Promise<Rewritten> {
  const body = await readAll(await repo.store.load(key));
  let tar: Uint8Array;
  try {
    tar = await decryptSmallObject(repo, body);
  } catch (err) {
    throw new CorruptDataError(`Cannot repack ${key}: it does not decrypt (${messageOf(err)})`);
  }
  const id = key.slice(PACK_PREFIX.length);
  const kept: Member[] = [], entries: IndexEntry[] = [];
  let all = 0;
  try {
    for (const m of packMembers(openPack(tar))) {
      all++;
      if (keep !== null && !keep.has(m.name)) continue;
      const { md5, content } = memberContent(m.name, m.bytes);
      kept.push(m);
      const where = m.name.endsWith(".gz") ? `${id}.gz` : id;
      entries.push({ md5, where, stored: m.bytes.length, plain: content.length });
    }
  } catch (err) {
    throw new CorruptDataError(`Cannot repack ${key}: ${messageOf(err)}`, { cause: err });
  }
  const names = new Set(kept.map((m) => m.name));
  const missing = keep === null ? [] : [...keep].filter((n) => !names.has(n));
  if (missing.length > 0) {
    throw new CorruptDataError(`Cannot repack ${key}: it does not hold ${missing[0]}`);
  }
  if (kept.length === all) return { key, entries, before: body.length, after: body.length };
  signal?.throwIfAborted();
  // Never the old size (FORMAT.md §6): writers tell the packs apart by it.
  let replacement = await encryptSmallObject(repo, sealPack(kept));
  for (let extra = 1; replacement.length === body.length; extra++) {
    if (extra > 8) throw new CorruptDataError(`Cannot repack ${key}: its size does not change`);
    replacement = await encryptSmallObject(repo, sealPack(kept, extra));
  }
  await repo.store.save(key, replacement, {
    storageClass: storageClass === "STANDARD" ? undefined : storageClass,
    signal,
  });
  return { key, entries, before: body.length, after: replacement.length };
}
