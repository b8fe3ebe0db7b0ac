/**
 * The files cache: what each file of the last backup of a source looked like when it was read
 * (size, mtime, ctime, inode, device) and its content MD5. A file whose lstat matches its
 * record is not opened again: its MD5 comes from here. restic's files cache, for s3backup.
 *
 * It lives outside the source folder (cli/commands.ts picks the path: the XDG cache folder,
 * per repository id and source), in a 0700 folder, as a 0600 file written to a temporary name
 * and renamed: a crash mid-write leaves the old cache or the new one, never a mix. Any line
 * that does not parse drops the whole cache (a wrong MD5 would be stored as the file's
 * content): the backup then reads every file again.
 *
 * Its second line is what the run that wrote it knew of the store (CacheState): the meta it
 * wrote (while that meta exists, every object the records name does: prune keeps what a meta
 * names, and `verify` finds drift), the kit it left, when it swept stale uploads, and whether
 * the store honours conditional creates. With them an unchanged tree costs a few requests.
 *
 *   s3backup-files-cache 2 <repository id>
 *   state[ meta=<meta name>][ kit=<sha256>][ swept=<ms>][ conditional=1]   (URI-encoded values)
 *   <md5> <size> <mtime ms> <ctime ms> <inode> <device> <escaped path>
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { escapeText, unescapeText } from "../../format/escape.ts";
import type { Meta } from "../../format/meta.ts";
import { isMd5 } from "../../format/layout.ts";
import { writeAll } from "../../util/bytes.ts";
import { randomHex } from "../../util/random.ts";
import type { FileStat } from "./source_file.ts";

const MAGIC = "s3backup-files-cache 2";

export interface CacheRecord {
  md5: string;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

export type FilesCache = Map<string, CacheRecord>;

/** What the run that wrote a cache knew of the store (see the module doc). */
export interface CacheState {
  meta?: string;
  kit?: string;
  sweptMs?: number;
  conditional?: boolean;
}

function parseState(line: string): CacheState | null {
  const [tag, ...fields] = line.split(" ");
  if (tag !== "state") return null;
  const state: CacheState = {};
  for (const f of fields) {
    const eq = f.indexOf("=");
    const [k, v] = [f.slice(0, eq), decodeURIComponent(f.slice(eq + 1))];
    if (k === "meta") state.meta = v;
    else if (k === "kit") state.kit = v;
    else if (k === "swept" && Number.isSafeInteger(Number(v))) state.sweptMs = Number(v);
    else if (k === "conditional" && v === "1") state.conditional = true;
    else return null;
  }
  return state;
}

function encodeState(state: CacheState): string {
  const f = ["state"];
  if (state.meta !== undefined) f.push(`meta=${encodeURIComponent(state.meta)}`);
  if (state.kit !== undefined) f.push(`kit=${encodeURIComponent(state.kit)}`);
  if (state.sweptMs !== undefined) f.push(`swept=${state.sweptMs}`);
  if (state.conditional) f.push("conditional=1");
  return f.join(" ");
}

/** A cache as read: its records and its state. */
export interface LoadedCache {
  records: FilesCache;
  state: CacheState;
}

/** Parses a cache file's text; null when it is not one of `repoId` or any line is bad. */
export function parseFilesCache(text: string, repoId: string): LoadedCache | null {
  const lines = text.split("\n");
  if (lines[0] !== `${MAGIC} ${repoId}` || lines.at(-1) !== "") return null;
  let state: CacheState | null;
  try {
    state = parseState(lines[1] ?? "");
  } catch {
    return null; // a bad URI escape
  }
  if (state === null) return null;
  const out: FilesCache = new Map();
  for (const line of lines.slice(2, -1)) {
    const f = line.split(" ");
    if (f.length < 7 || !isMd5(f[0]!)) return null;
    const nums = f.slice(1, 6).map(Number);
    if (!nums.every((n) => Number.isSafeInteger(n))) return null;
    let path: string;
    try {
      path = unescapeText(f.slice(6).join(" "));
    } catch {
      return null;
    }
    const [size, mtimeMs, ctimeMs, ino, dev] = nums as [number, number, number, number, number];
    out.set(path, { md5: f[0]!, size, mtimeMs, ctimeMs, ino, dev });
  }
  return { records: out, state };
}

/** The cache file's text. */
export function encodeFilesCache(cache: FilesCache, repoId: string, state: CacheState): string {
  const parts = [`${MAGIC} ${repoId}\n${encodeState(state)}\n`];
  for (const [path, r] of cache) {
    parts.push(
      `${r.md5} ${r.size} ${r.mtimeMs} ${r.ctimeMs} ${r.ino} ${r.dev} ${escapeText(path)}\n`,
    );
  }
  return parts.join("");
}

/**
 * How recent an mtime must be, against the moment the file was looked at, to be "racy": a
 * write in the same clock tick as the lstat (coarse kernel clocks, 2 s on FAT) could change
 * the content without changing the facts compared. Such a file is not vouched for: it is read
 * again next time (git's racy-index rule).
 */
export const RACY_MS = 2_000;

/**
 * The record of a file as it was read, or null when a fact is unknown or its mtime is within
 * RACY_MS of `lookedAtMs`, when the walk began.
 */
export function recordOf(md5: string, st: FileStat, lookedAtMs: number): CacheRecord | null {
  const r = {
    md5,
    size: st.size,
    mtimeMs: st.mtimeMs,
    ctimeMs: st.ctimeMs,
    ino: st.ino,
    dev: st.dev,
  };
  const known = [r.size, r.mtimeMs, r.ctimeMs, r.ino, r.dev].every((n) => Number.isSafeInteger(n));
  return known && r.mtimeMs < lookedAtMs - RACY_MS ? r : null;
}

/**
 * The MD5 `cache` holds for a file whose lstat is `st`, when every fact matches (a fact a record
 * lacks, NaN, is not compared: records from a meta know size and mtime only).
 */
export function cachedMd5(cache: FilesCache, path: string, st: FileStat): string | null {
  const r = cache.get(path);
  const same = (a: number, b: number) => Number.isNaN(a) || a === b;
  if (
    r === undefined || r.size !== st.size || r.mtimeMs !== st.mtimeMs ||
    !same(r.ctimeMs, st.ctimeMs) || !same(r.ino, st.ino) || !same(r.dev, st.dev)
  ) return null;
  return r.md5;
}

/**
 * The fallback when there is no cache: the file entries of the previous meta of this source
 * (size and mtime), but not those whose mtime was racy when that backup began.
 */
export function cacheFromMeta(meta: Meta): FilesCache {
  const out: FilesCache = new Map();
  const began = meta.header.time.getTime();
  for (const e of meta.entries) {
    if (e.type !== "f" || e.md5 === undefined || e.mtimeMs >= began - RACY_MS) continue;
    out.set(e.path, {
      md5: e.md5,
      size: e.size,
      mtimeMs: e.mtimeMs,
      ctimeMs: NaN,
      ino: NaN,
      dev: NaN,
    });
  }
  return out;
}

/** Where the cache of `source` on `host` in repository `repoId` lives, under `dir`. */
export function filesCachePath(dir: string, repoId: string, host: string, source: string): string {
  const key = createHash("sha256").update(`${host}\0${source}`).digest("hex").slice(0, 16);
  return join(dir, repoId, key);
}

/** Reads the cache at `path`; an empty one when it is missing, of another repository, or bad. */
export async function loadFilesCache(path: string, repoId: string): Promise<LoadedCache> {
  try {
    const c = parseFilesCache(await Deno.readTextFile(path), repoId);
    if (c !== null) return c;
  } catch {
    // missing or unreadable
  }
  return { records: new Map(), state: {} };
}

/** Writes the cache: its folder 0700, the file 0600, through a temporary name. */
export async function saveFilesCache(
  path: string,
  repoId: string,
  cache: FilesCache,
  state: CacheState,
) {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await Deno.chmod(dir, 0o700).catch(() => {});
  const tmp = `${path}.${randomHex(6)}.tmp`;
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    await writeAll(file, new TextEncoder().encode(encodeFilesCache(cache, repoId, state)));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
}
