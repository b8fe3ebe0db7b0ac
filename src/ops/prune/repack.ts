/**
 * Prune's rewriting of packs in place (FORMAT.md §6): how much of each pack the kept backups
 * use (from the indexes and the kept metas), which packs to repack under `--max-unused`, which
 * to re-index, and the rewrite of one pack, every member it keeps checked first.
 *
 * A pack keeps its name: kept metas name it, and metas never change. The new pack holds every
 * member a kept meta names, with the same bytes, and replaces the old one in one save.
 */
import { encryptedSize } from "../../format/container.ts";
import { PACK_PREFIX } from "../../format/layout.ts";
import { buildPack, type Member, memberContent, packMembers } from "../../format/pack.ts";
import type { IndexEntry } from "../../format/pack_index.ts";
import { BLOCK, padded, TAR_END } from "../../format/tar.ts";
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
 * Each referenced pack of `objects` with what its indexes (`entries`, every index's) say it
 * holds and what of it `needed` (pack key -> member names kept metas use) uses. Pure.
 */
export function packUses(
  objects: Iterable<ObjectInfo>,
  entries: Iterable<IndexEntry>,
  needed: Map<string, Set<string>>,
): PackUse[] {
  const members = new Map<string, Map<string, number>>(); // pack key -> member -> stored
  for (const e of entries) {
    const gz = e.where.endsWith(".gz");
    const id = gz ? e.where.slice(0, -3) : e.where;
    if (id === "data") continue;
    const key = `${PACK_PREFIX}${id}`;
    let m = members.get(key);
    if (!m) members.set(key, m = new Map());
    m.set(gz ? `${e.md5}.gz` : e.md5, e.stored);
  }
  const out: PackUse[] = [];
  for (const o of objects) {
    const use = needed.get(o.name);
    if (!o.name.startsWith(PACK_PREFIX) || use === undefined) continue;
    const held = members.get(o.name) ?? new Map<string, number>();
    let tar = TAR_END.length, unused = 0;
    for (const [name, stored] of held) {
      tar += tarBytes(stored);
      if (!use.has(name)) unused += tarBytes(stored);
    }
    const described = held.size > 0 && o.size === encryptedSize(tar) &&
      [...use].every((n) => held.has(n));
    out.push({
      key: o.name,
      size: o.size,
      described,
      unused: described ? unused : 0,
      used: described ? tar - TAR_END.length - unused : o.size,
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
  /** The stored size before and after (equal when it was only re-indexed). */
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
    for (const m of packMembers(tar)) {
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
  const replacement = await encryptSmallObject(repo, buildPack(kept));
  await repo.store.save(key, replacement, {
    storageClass: storageClass === "STANDARD" ? undefined : storageClass,
    signal,
  });
  return { key, entries, before: body.length, after: replacement.length };
}
