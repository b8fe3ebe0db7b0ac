/**
 * The files cache: what each file of the last backup of a source looked like when it was read
 * (size, mtime, ctime, inode, device) and its content MD5. A file whose lstat matches its
 * record is not opened again: its MD5 comes from here. restic's files cache, for s3backup.
 *
 * It lives outside the source folder (cli/commands.ts picks the path: the XDG cache folder,
 * per repository id and source), in a 0700 folder, as a 0600 file written to a temporary name
 * as the backup goes and renamed after its meta: a crash mid-write leaves the old cache or the
 * new one, never a mix. The records are in walk order, so that a backup reads them alongside
 * its walk and never holds them all. A file whose trailer (record count, SHA-256 of all before
 * it) does not match is not used at all (a wrong MD5 would be stored as the file's content):
 * the backup then reads every file again.
 *
 * The line before the trailer is what the run that wrote it knew of the store (CacheState):
 * the meta it wrote (while that meta exists, every object the records name does: prune keeps
 * what a meta names, and `verify` finds drift), when it swept stale uploads, and whether the
 * store honours conditional creates. With them an unchanged tree costs a few requests. (A
 * `kit=` field of older caches is read and ignored: each backup lists `restore-kit/` now.)
 *
 *   s3backup-files-cache 3 <repository id>
 *   <md5> <size> <mtime ms> <ctime ms> <inode> <device> <escaped path>     (walk order)
 *   state[ meta=<meta name>][ swept=<ms>][ conditional=1][ entries=<sha256>]
 *        [ retained=<ms>]
 *   end <record count> <sha256 of every line above, hex>
 */
import { chmodSyncWhereSupported } from "../../util/platform.ts";
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { escapeText, unescapeText } from "../../format/escape.ts";
import { isMd5 } from "../../format/layout.ts";
import { randomHex } from "../../util/random.ts";
import { sweepDeadSpools } from "../../repo/meta_spool.ts";
import type { FileStat } from "./source_file.ts";
import { compareWalkOrder } from "./walk.ts";

const MAGIC = "s3backup-files-cache 3";
const te = new TextEncoder();

export interface CacheRecord {
  md5: string;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

/** What the run that wrote a cache knew of the store (see the module doc). */
export interface CacheState {
  meta?: string;
  sweptMs?: number;
  conditional?: boolean;
  /** SHA-256 of `meta`'s entry lines (MetaSpool.entriesDigest), for --skip-if-unchanged. */
  entries?: string;
  /** Every object `meta` names is retained (Object Lock) until at least this (--retain). */
  retainedMs?: number;
}

function parseState(line: string): CacheState | null {
  const [tag, ...fields] = line.split(" ");
  if (tag !== "state") return null;
  const state: CacheState = {};
  for (const f of fields) {
    const eq = f.indexOf("=");
    const [k, v] = [f.slice(0, eq), decodeURIComponent(f.slice(eq + 1))];
    if (k === "meta") state.meta = v;
    else if (k === "kit") continue; // older caches: no longer used
    else if (k === "swept" && Number.isSafeInteger(Number(v))) state.sweptMs = Number(v);
    else if (k === "conditional" && v === "1") state.conditional = true;
    else if (k === "entries" && /^[0-9a-f]{64}$/.test(v)) state.entries = v;
    else if (k === "retained" && Number.isSafeInteger(Number(v))) state.retainedMs = Number(v);
    else return null;
  }
  return state;
}

function encodeState(state: CacheState): string {
  const f = ["state"];
  if (state.meta !== undefined) f.push(`meta=${encodeURIComponent(state.meta)}`);
  if (state.sweptMs !== undefined) f.push(`swept=${state.sweptMs}`);
  if (state.conditional) f.push("conditional=1");
  if (state.entries !== undefined) f.push(`entries=${state.entries}`);
  if (state.retainedMs !== undefined) f.push(`retained=${state.retainedMs}`);
  return f.join(" ");
}

/** One record line's parts, or null when the line is not a record. */
export function parseRecord(line: string): { path: string; record: CacheRecord } | null {
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
  return { path, record: { md5: f[0]!, size, mtimeMs, ctimeMs, ino, dev } };
}

export function encodeRecord(path: string, r: CacheRecord): string {
  return `${r.md5} ${r.size} ${r.mtimeMs} ${r.ctimeMs} ${r.ino} ${r.dev} ${escapeText(path)}`;
}

/**
 * How recent an mtime or ctime must be, against the moment the walk began, to be "racy": a
 * write in the same clock tick as the lstat (coarse kernel clocks, 2 s on FAT, and Deno reports
 * ctime in whole seconds: measured, node:fs's bigint stat too) could change the content without
 * changing the facts compared. Such a file is not vouched for: it is read again next time
 * (git's racy-index rule). The ctime counts because an edit can set the mtime back (`touch -d`,
 * rsync, tar): only the ctime then moves, by less than a second.
 */
export const RACY_MS = 2_000;

/**
 * The record of a file as it was read, or null when a fact is unknown or its mtime or ctime is
 * within RACY_MS of `lookedAtMs` (when the walk began) or later. The ctime, whole seconds,
 * is taken as the end of its second.
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
  const racy = Math.max(r.mtimeMs, r.ctimeMs + 999) >= lookedAtMs - RACY_MS;
  return known && !racy ? r : null;
}

/** Whether a record holds for a file whose lstat is `st`: every fact matches. */
function holds(r: CacheRecord, st: FileStat): boolean {
  return r.size === st.size && r.mtimeMs === st.mtimeMs && r.ctimeMs === st.ctimeMs &&
    r.ino === st.ino && r.dev === st.dev;
}

/** The MD5s a cache holds, asked for in walk order. */
export interface CacheLookup {
  /** The MD5 of the file at `path` (whose lstat is `st`) when its record holds, else null. */
  md5Of(path: string, st: FileStat): string | null;
  close(): void;
}

export const NO_CACHE: CacheLookup = { md5Of: () => null, close: () => {} };

/** Where the cache of `source` on `host` in repository `repoId` lives, under `dir`. */
export function filesCachePath(dir: string, repoId: string, host: string, source: string): string {
  const key = createHash("sha256").update(`${host}\0${source}`).digest("hex").slice(0, 16);
  return join(dir, repoId, key);
}

/** The lines of a file, read in chunks; a last line without its `\n` is not one. */
function* linesOf(file: Deno.FsFile): Generator<string> {
  const dec = new TextDecoder("utf-8", { fatal: true });
  const buf = new Uint8Array(CHUNK);
  let rest = "";
  for (let n = file.readSync(buf); n !== null; n = file.readSync(buf)) {
    const text = rest + dec.decode(buf.subarray(0, n), { stream: true });
    let start = 0;
    for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", start)) {
      yield text.slice(start, i);
      start = i + 1;
    }
    rest = text.slice(start);
  }
}

const CHUNK = 256 * 1024;

/** The `end` line: the record count and the SHA-256 of every byte before it. */
function endLine(count: number, sha256: string): string {
  return `end ${count} ${sha256}`;
}

/**
 * How many of the contents a cache names a backup looks up (HEAD) before it trusts the rest:
 * the content of the most recently changed file and a random sample of the others.
 */
export const SAMPLE = 32;

/**
 * SAMPLE of the MD5s of a cache's records: the newest record's (by mtime and ctime), and the
 * others chosen at random, each record as likely as any (a reservoir).
 */
class Sampler {
  readonly #picked: string[] = [];
  #newest = { md5: "", t: -Infinity };
  #seen = 0;

  add(line: string): void {
    const [md5 = "", , mtime = "", ctime = ""] = line.split(" ", 4);
    const t = Math.max(Number(mtime), Number(ctime));
    if (t > this.#newest.t) this.#newest = { md5, t };
    this.#seen++;
    if (this.#picked.length < SAMPLE - 1) this.#picked.push(md5);
    else {
      const j = Math.floor(Math.random() * this.#seen);
      if (j < SAMPLE - 1) this.#picked[j] = md5;
    }
  }

  get md5s(): string[] {
    return [...new Set([this.#newest.md5, ...this.#picked])].filter(isMd5);
  }
}

/**
 * The trailer of the cache file at `path` when the file is whole (its SHA-256 and record count
 * match) and of repository `repoId`: the state, the record count and a sample; else null.
 */
function checkWhole(
  path: string,
  repoId: string,
): { state: CacheState; count: number; sample: string[] } | null {
  using file = Deno.openSync(path);
  const h = createHash("sha256");
  const head = `${MAGIC} ${repoId}`;
  const sampler = new Sampler();
  let first = true, count = 0, state: CacheState | null = null, end: string | null = null;
  for (const line of linesOf(file)) {
    if (end !== null) return null; // something after the end
    if (first) {
      if (line !== head) return null;
      first = false;
    } else if (state !== null) {
      end = line;
      continue;
    } else if (line.startsWith("state")) state = parseState(line);
    else {
      count++;
      sampler.add(line);
    }
    h.update(line + "\n");
  }
  if (state === null || end !== endLine(count, h.digest("hex"))) return null;
  return { state, count, sample: sampler.md5s };
}

/**
 * A cache file read as the walk goes: its records are in walk order, so each lookup reads on
 * from the last one and the records are never all in memory.
 */
class CacheCursor implements CacheLookup {
  readonly #file: Deno.FsFile;
  readonly #lines: Generator<string>;
  #current: { path: string; record: CacheRecord } | null = null;

  constructor(path: string) {
    this.#file = Deno.openSync(path);
    this.#lines = linesOf(this.#file);
    this.#lines.next(); // the magic line
    this.#advance();
  }

  #advance(): void {
    const next = this.#lines.next();
    // The state line ends the records; a line that does not parse (the file was checked
    // whole: never, short of a bug) ends them too.
    this.#current = next.done ? null : parseRecord(next.value);
  }

  md5Of(path: string, st: FileStat): string | null {
    while (this.#current !== null && compareWalkOrder(this.#current.path, path) < 0) {
      this.#advance();
    }
    const c = this.#current;
    if (c === null || c.path !== path) return null;
    this.#advance();
    return holds(c.record, st) ? c.record.md5 : null;
  }

  close(): void {
    this.#current = null;
    try {
      this.#file.close();
    } catch {
      // closed already
    }
  }
}

/**
 * Remembers that the repository `repoId` lives at `location` (`<dir>/<repoId>/location`), so
 * that a backup that finds no repository there can tell a wiped one from a first run.
 */
export function rememberRepository(dir: string, repoId: string, location: string): void {
  const path = join(dir, repoId, "location");
  if (knownLocation(path) === location) return;
  Deno.mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  Deno.writeTextFileSync(path, location + "\n", { mode: 0o600 });
}

function knownLocation(path: string): string | null {
  try {
    return Deno.readTextFileSync(path).replace(/\n$/, "");
  } catch {
    return null;
  }
}

/** The id of the repository this cache folder remembers at `location`, or null. */
export function rememberedRepository(dir: string, location: string): string | null {
  let ids: string[];
  try {
    ids = [...Deno.readDirSync(dir)].filter((e) => e.isDirectory).map((e) => e.name).sort();
  } catch {
    return null;
  }
  return ids.find((id) => knownLocation(join(dir, id, "location")) === location) ?? null;
}

/** Removes the cache at `path` (its next backup reads every file); a missing one is fine. */
export function dropFilesCache(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/**
 * A cache as opened: its lookup, what its run knew, how many records it holds, and a sample of
 * the contents they name (SAMPLE).
 */
export interface OpenedCache {
  lookup: CacheLookup;
  state: CacheState;
  records: number;
  sample: string[];
}

/** Opens the cache at `path`; an empty one when it is missing, of another repository, or bad. */
export function openFilesCache(path: string, repoId: string): OpenedCache {
  try {
    const whole = checkWhole(path, repoId);
    if (whole !== null) {
      const { state, count: records, sample } = whole;
      return { lookup: new CacheCursor(path), state, records, sample };
    }
  } catch {
    // missing or unreadable
  }
  return { lookup: NO_CACHE, state: {}, records: 0, sample: [] };
}

/**
 * Removes the temporary files caches `<name>.<12 hex>.tmp` that killed runs of earlier versions
 * left (named without their process id) once a day old: a live run writes to its file more often.
 */
function sweepOldTemps(dir: string, name: string): void {
  const old = new RegExp(`^${name.replace(/\./g, "\\.")}\\.[0-9a-f]{12}\\.tmp$`);
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (!e.isFile || !old.test(e.name)) continue;
      const mtime = Deno.statSync(join(dir, e.name)).mtime?.getTime() ?? Date.now();
      if (Date.now() - mtime > 86_400_000) Deno.removeSync(join(dir, e.name));
    }
  } catch { /* best effort */ }
}

/**
 * The next cache, written as the backup goes (records in walk order) to a 0600 temporary file
 * beside `path` in a 0700 folder, and renamed into place by `commit` after the meta: a crash
 * leaves the old cache or the new one, never a mix.
 */
export class FilesCacheWriter {
  readonly #file: Deno.FsFile;
  readonly #hash = createHash("sha256");
  #parts: string[] = [];
  #chars = 0;
  #count = 0;
  #committed = false;
  /** The first write that failed (a full disk): nothing more is written, commit throws it. */
  #failed: unknown = null;

  private constructor(readonly path: string, readonly tmp: string, file: Deno.FsFile) {
    this.#file = file;
  }

  static create(path: string, repoId: string): FilesCacheWriter {
    const dir = dirname(path);
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSyncWhereSupported(dir, 0o700);
    // Named with this process's id: one a killed run left is removed by the next.
    const prefix = `${basename(path)}.tmp-`;
    const tmp = `${path}.tmp-${Deno.pid}-${randomHex(6)}`;
    sweepDeadSpools(dir, prefix);
    sweepOldTemps(dir, basename(path));
    const file = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o600 });
    const w = new FilesCacheWriter(path, tmp, file);
    w.#put(`${MAGIC} ${repoId}`);
    return w;
  }

  #put(line: string): void {
    this.#parts.push(line + "\n");
    this.#chars += line.length + 1;
    if (this.#chars >= CHUNK) this.#write();
  }

  /** Writes what was put; a failure drops the new cache (its space freed) and the backup goes on. */
  #write(): void {
    const text = this.#parts.join("");
    this.#parts = [];
    this.#chars = 0;
    if (this.#failed !== null) return;
    const bytes = te.encode(text);
    this.#hash.update(bytes);
    try {
      for (let off = 0; off < bytes.length;) off += this.#file.writeSync(bytes.subarray(off));
    } catch (err) {
      this.#failed = err;
      this.discard();
    }
  }

  /** Records a file (in walk order). */
  add(path: string, r: CacheRecord): void {
    this.#put(encodeRecord(path, r));
    this.#count++;
  }

  /** Ends the file with `state`, makes it durable and puts it in place. */
  commit(state: CacheState): void {
    try {
      this.#put(encodeState(state));
      this.#write();
      if (this.#failed !== null) throw this.#failed;
      const end = te.encode(endLine(this.#count, this.#hash.digest("hex")) + "\n");
      for (let off = 0; off < end.length;) off += this.#file.writeSync(end.subarray(off));
      this.#file.syncSync();
      this.#file.close();
      Deno.renameSync(this.tmp, this.path);
      this.#committed = true;
    } catch (err) {
      this.discard();
      throw err;
    }
  }

  /** Drops the new cache (a failed run; nothing once committed); the old one stays. */
  discard(): void {
    if (this.#committed) return;
    try {
      this.#file.close();
    } catch {
      // closed already
    }
    try {
      Deno.removeSync(this.tmp);
    } catch {
      // gone already
    }
  }
}
