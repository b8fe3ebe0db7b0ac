/**
 * Every object name of the format (FORMAT.md §1), and `classify()`, the one reader of names.
 *
 *   s3backup.conf                          descriptor (§2)
 *   s3backup.key                           the wrapped data key (§3.2)
 *   packs/<id>, data/<md5>[.gz], index/<id> format 3 contents and indexes (§4)
 *   <md5>                                  a format 2 data object (§4)
 *   meta_<name>_<YYYYMMDDTHHMMSSZ>         a backup (§5)
 *   restore-kit/...                        the restore kit
 *   locks/<kind>-<YYYYMMDDTHHMMSSZ>-<hex8> a lock (§6)
 *   s3backup.key.next|.prev, passwd/next|prev/<meta>   a password change (§7)
 *
 * Pure: names in, values out.
 */
import { UsageError } from "../util/errors.ts";
import { randomHex } from "../util/random.ts";

export const DESCRIPTOR_NAME = "s3backup.conf";
export const KEY_NAME = "s3backup.key";
export const KEY_NEXT_NAME = "s3backup.key.next";
export const KEY_PREV_NAME = "s3backup.key.prev";
export const META_PREFIX = "meta_";
export const KIT_PREFIX = "restore-kit/";
export const LOCK_PREFIX = "locks/";
export const PASSWD_PREFIX = "passwd/";
export const PASSWD_NEXT_PREFIX = "passwd/next/";
export const PACK_PREFIX = "packs/";
export const DATA_PREFIX = "data/";
export const INDEX_PREFIX = "index/";

const DATA_RE = /^[0-9a-f]{32}$/;
const BACKUP_NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
const META_RE = /^meta_([A-Za-z0-9._-]{1,64})_(\d{8}T\d{6}Z)$/;
const LOCK_RE = /^locks\/([a-z][a-z0-9]*)-(\d{8}T\d{6}Z)-([0-9a-f]{8})$/;
const KIND_RE = /^[a-z][a-z0-9]*$/;
const ID_RE = /^[0-9a-f]{32}$/;
const WHERE_RE = /^(-|data|data\.gz|[0-9a-f]{32}|[0-9a-f]{32}\.gz)$/;

/** Whether `s` is a content MD5 as the format writes it: 32 lowercase hex digits. */
export function isMd5(s: string): boolean {
  return DATA_RE.test(s);
}

// ------------------------------------------------------------------ where contents are (§4)

/** Whether `s` is a where of FORMAT.md §4: `<pack>`, `<pack>.gz`, `data`, `data.gz` or `-`. */
export function isWhere(s: string): boolean {
  return WHERE_RE.test(s);
}

/** A content's place: the object holding it and, in a pack, its member's name. */
export interface Place {
  /** The object key: `packs/<pack>`, `data/<md5>[.gz]` or (format 2) `<md5>`. */
  key: string;
  /** In a pack: the member, `<md5>` or `<md5>.gz`; null for an object of its own. */
  member: string | null;
  /** The stored bytes are the gzip of the content. */
  gz: boolean;
}

/** Where content `md5` is, from its where (FORMAT.md §4). Throws TypeError on a bad one. */
export function placeOf(md5: string, where: string): Place {
  if (!isMd5(md5) || !isWhere(where)) throw new TypeError(`bad where ${md5} ${where}`);
  if (where === "-") return { key: md5, member: null, gz: false };
  const gz = where.endsWith(".gz");
  const suffix = gz ? ".gz" : "";
  const pack = packOfWhere(where);
  if (pack === null) return { key: `${DATA_PREFIX}${md5}${suffix}`, member: null, gz };
  return { key: packKey(pack), member: `${md5}${suffix}`, gz };
}

/** The object key of pack `id`. */
export function packKey(id: string): string {
  return `${PACK_PREFIX}${id}`;
}

/**
 * The pack of a where already checked (isWhere): `<pack>` of `<pack>` and `<pack>.gz`, null of
 * `data`, `data.gz` and `-`. (Cheap: an index's thousands of entries are checked once.)
 */
export function packOfWhere(where: string): string | null {
  return where.length < 32 ? null : where.slice(0, 32);
}

/** A new pack or index id: 16 random bytes in lowercase hex. */
export function newObjectId(): string {
  return randomHex(16);
}

// ------------------------------------------------------------------ compact UTC stamps

/** `YYYYMMDDTHHMMSSZ` (UTC, whole seconds): the time in meta and lock names. */
export function formatStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");
}

/** Parses `YYYYMMDDTHHMMSSZ`; null when it is not a valid time. */
export function parseStamp(ts: string): Date | null {
  if (!/^\d{8}T\d{6}Z$/.test(ts)) return null;
  const iso = `${ts.slice(0, 4)}-${ts.slice(4, 6)}-${ts.slice(6, 8)}T${ts.slice(9, 11)}:${
    ts.slice(11, 13)
  }:${ts.slice(13, 15)}Z`;
  const time = new Date(iso);
  return Number.isNaN(time.getTime()) ? null : time;
}

// ------------------------------------------------------------------ backups (metas)

/** Throws UsageError unless `name` is a valid backup name. */
export function checkBackupName(name: string): string {
  if (!BACKUP_NAME_RE.test(name) || name === "latest") {
    throw new UsageError(
      `Invalid backup name ${
        JSON.stringify(name)
      }: use 1 to 64 characters from A-Z a-z 0-9 . _ - (not "latest")`,
    );
  }
  return name;
}

/** A backup name derived from a folder path: its base name with other characters as `_`. */
export function defaultBackupName(folder: string): string {
  const base = folder.replace(/[/\\]+$/, "").split(/[/\\]/).pop() ?? "";
  const clean = base.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 64).replace(/^\.+$/, "");
  return clean === "" ? "backup" : clean;
}

export function formatMetaName(name: string, time: Date): string {
  return `${META_PREFIX}${checkBackupName(name)}_${formatStamp(time)}`;
}

export interface MetaName {
  key: string;
  name: string;
  time: Date;
}

/** Parses a meta object name; null if it is not one this version wrote. */
export function parseMetaName(key: string): MetaName | null {
  const m = META_RE.exec(key);
  if (!m || m[1] === "latest") return null;
  const time = parseStamp(m[2]!);
  return time === null ? null : { key, name: m[1]!, time };
}

/** Oldest first; equal times by name. */
export function compareMetaNames(a: MetaName, b: MetaName): number {
  return a.time.getTime() - b.time.getTime() || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** Where an interrupted password change keeps the new (`next`) and old (`prev`) copy of a meta. */
export function metaNextName(meta: string): string {
  return `${PASSWD_NEXT_PREFIX}${meta}`;
}

export function metaPrevName(meta: string): string {
  return `${PASSWD_PREFIX}prev/${meta}`;
}

/** Where a reader looks for meta `meta`, in order (FORMAT.md §7). */
export function metaCandidates(meta: string): string[] {
  return [meta, metaNextName(meta), metaPrevName(meta)];
}

/** Where a reader looks for the wrapped key, in order (FORMAT.md §7). */
export const KEY_CANDIDATES = [KEY_NAME, KEY_NEXT_NAME, KEY_PREV_NAME] as const;

// ------------------------------------------------------------------ locks

/** `locks/<kind>-<stamp>-<rand>`. */
export function formatLockName(kind: string, time: Date, rand: string = randomHex(4)): string {
  if (!KIND_RE.test(kind)) throw new TypeError(`bad lock kind ${kind}`);
  if (!/^[0-9a-f]{8}$/.test(rand)) throw new TypeError(`bad lock suffix ${rand}`);
  return `${LOCK_PREFIX}${kind}-${formatStamp(time)}-${rand}`;
}

/** Parses a lock object name; null when it is not one. */
export function parseLockName(name: string): { kind: string; time: Date; rand: string } | null {
  const m = LOCK_RE.exec(name);
  if (!m) return null;
  const time = parseStamp(m[2]!);
  return time === null ? null : { kind: m[1]!, time, rand: m[3]! };
}

// ------------------------------------------------------------------ classify

export type ObjectClass =
  | { kind: "data" }
  /** Format 3: `packs/<id>`, `data/<md5>[.gz]`, `index/<id>`. */
  | { kind: "pack" | "data3" | "index" }
  | { kind: "meta"; meta: MetaName }
  /** Starts with `meta_` but is no format 2 meta name (format 1, or foreign). */
  | { kind: "meta-like" }
  | { kind: "key" | "descriptor" | "key-next" | "key-prev" | "kit" | "passwd" }
  | { kind: "lock"; lock: { kind: string; time: Date; rand: string } | null }
  | { kind: "other" };

/** What an object name is, by FORMAT.md §1. */
export function classify(name: string): ObjectClass {
  if (isMd5(name)) return { kind: "data" };
  if (name.startsWith(META_PREFIX)) {
    const meta = parseMetaName(name);
    return meta ? { kind: "meta", meta } : { kind: "meta-like" };
  }
  if (name === KEY_NAME) return { kind: "key" };
  if (name === DESCRIPTOR_NAME) return { kind: "descriptor" };
  if (name === KEY_NEXT_NAME) return { kind: "key-next" };
  if (name === KEY_PREV_NAME) return { kind: "key-prev" };
  if (name.startsWith(KIT_PREFIX)) return { kind: "kit" };
  if (name.startsWith(PACK_PREFIX) && ID_RE.test(name.slice(PACK_PREFIX.length))) {
    return { kind: "pack" };
  }
  if (name.startsWith(INDEX_PREFIX) && ID_RE.test(name.slice(INDEX_PREFIX.length))) {
    return { kind: "index" };
  }
  if (
    name.startsWith(DATA_PREFIX) && /^[0-9a-f]{32}(\.gz)?$/.test(name.slice(DATA_PREFIX.length))
  ) {
    return { kind: "data3" };
  }
  if (name.startsWith(PASSWD_PREFIX)) return { kind: "passwd" };
  if (name.startsWith(LOCK_PREFIX)) return { kind: "lock", lock: parseLockName(name) };
  return { kind: "other" };
}
