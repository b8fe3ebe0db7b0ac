/**
 * The backup engine. It never prints and never exits: it reports through `onEvent` and returns
 * a summary; errors are thrown.
 *
 * One walk of the folder feeds a bounded pool that backs up each file (file_reader.ts) and
 * uploads the contents the store does not have; entries stream, in walk order, into the meta
 * (encrypted into a temporary file) and the next files cache, so that memory stays bounded.
 * The meta is stored last, after every object it names is durable.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type { PreparedKey } from "../../format/container.ts";
import { type Descriptor, FORMAT_VERSION } from "../../format/descriptor.ts";
import { formatMetaName, isMd5, KIT_PREFIX, META_PREFIX, placeOf } from "../../format/layout.ts";
import type { RecordedEntry } from "../../format/meta.ts";
import { type Listing, listRepository, type MetaObject } from "../../repo/listing.ts";
import { type Lock, type LockOptions, withLock } from "../../repo/lock.ts";
import { MetaSpool } from "../../repo/meta_spool.ts";
import { listStored, type StoredObjects } from "../../repo/pack_index_store.ts";
import {
  extendRetention,
  extensionDue,
  retentionAt,
  type RetentionPolicy,
  sharedObjects,
} from "../../repo/retention.ts";
import {
  abortStaleUploads,
  checkPasswordUnchanged,
  createOnce,
  type CreateOptions,
  keyState,
  loadMeta,
  type Opening,
  prepareMetaKey,
  type Reopenable,
  type Repository,
} from "../../repo/repository.ts";
import { messageOf, readAll } from "../../util/bytes.ts";
import { S3BackupError } from "../../util/errors.ts";
import type { ObjectInfo, SaveOptions, Store } from "../../store/store.ts";
import { releaseMemory } from "../../util/memory.ts";
import { orderedPool, pool, type Step } from "../../util/pool.ts";
import { ContentSizes } from "./content_sizes.ts";
import {
  backupFile,
  type ContentSink,
  type FileContext,
  type FileResult,
  Uploads,
  type UploadTarget,
} from "./file_reader.ts";
import { Packer } from "./packer.ts";
import {
  type CacheLookup,
  type CacheState,
  dropFilesCache,
  filesCachePath,
  FilesCacheWriter,
  NO_CACHE,
  openFilesCache,
  recordOf,
  rememberRepository,
} from "./files_cache.ts";
import { describeExcludes, excludeFilter, type ExcludeRules, NO_EXCLUDES } from "./excludes.ts";
import { HardLinks, type LinkOf } from "./hard_links.ts";
import { statOf } from "./source_file.ts";
import { type OnExcluded, walk, type WalkItem, type WalkWarning } from "./walk.ts";

export { SMALL_FILE } from "./file_reader.ts";

export interface BackupOptions {
  /** Absolute path of the folder to back up. */
  source: string;
  /** What the meta names as the source, when not `source` (a stream: `<stdin>`, FORMAT.md). */
  sourceLabel?: string;
  name: string;
  host: string;
  /** Read and hash, report what would be uploaded, write nothing. */
  simulate: boolean;
  /** Restore kit files to keep under restore-kit/ (name relative to it -> content). */
  kit: Map<string, Uint8Array>;
  concurrency?: number;
  /**
   * The files cache (files_cache.ts): its folder (per repository id and source below it),
   * whether to ignore it this once (every file read and hashed again), and where the
   * repository is as the folder remembers it (default the store's location; the command line
   * adds the S3 endpoint: one bucket name on two providers is two repositories).
   */
  filesCache?: { dir: string; forceRehash?: boolean; where?: string };
  /**
   * Write no meta when the entries are exactly those of this name's last meta from this host
   * and folder (known from the files cache, while that meta exists) and nothing was skipped.
   */
  skipIfUnchanged?: boolean;
  /**
   * Object Lock (repo/retention.ts): the store given retains what it writes already; the
   * contents this backup reuses, the key, descriptor and kit are extended when due.
   */
  retention?: RetentionPolicy;
  /** What to leave out (excludes.ts); recorded in the meta's header. */
  excludes?: ExcludeRules;
  /** Lock options (the wait, the notices). */
  lock?: Omit<LockOptions, "source">;
  /** S3 storage class of new data objects (metas, key and kit stay in the default class). */
  storageClass?: string;
  /** Format 3: the pack size (default packer.ts DEFAULT_PACK_SIZE). */
  packSize?: number;
  now?: () => Date;
  signal?: AbortSignal;
}

/** What a backup is doing: listing the store, walking and reading, writing its meta. */
export type BackupPhase = "listing" | "backing up" | "finishing";

export type BackupEvent =
  | { type: "phase"; phase: BackupPhase }
  | { type: "walked"; files: number; bytes: number }
  | { type: "warning"; path: string; message: string }
  /** Left out by an exclude rule (`path` ends in `/` when a folder's contents are). */
  | { type: "excluded"; path: string; reason: string }
  | { type: "file"; path: string; size: number; upload: boolean }
  | { type: "progress"; filesDone: number; bytesDone: number; bytesUploaded: number };

export interface BackupSummary {
  metaKey: string | null;
  /** With `skipIfUnchanged`: the meta that already holds exactly these entries (none written). */
  unchangedSince: string | null;
  files: number;
  dirs: number;
  links: number;
  bytes: number;
  newObjects: number;
  bytesUploaded: number;
  /** Entries left out by the exclude rules (a folder emptied counts once). */
  excluded: number;
  /** Files not opened: their MD5 came from the files cache. */
  filesFromCache: number;
  /** Entries that could not be backed up (unreadable, changed, unrepresentable). */
  skipped: number;
  warnings: number;
  /** Multipart uploads of killed runs (over a day old) that were aborted. */
  uploadsAborted: number;
  /** Objects whose retention this run extended (--retain; PutObjectRetention requests). */
  retentionExtended: number;
  durationMs: number;
  simulate: boolean;
}

/**
 * Backs up `opts.source` into `store`. `repo` is null only in simulate mode on a store that
 * holds no repository yet; it may still be opening (the password's key derivation, ~0.2 s):
 * the lock is taken meanwhile, then the store is listed, and nothing is read or written before
 * the repository has opened.
 */
export async function backup(
  store: Store,
  repo: Repository | null | Opening,
  opts: BackupOptions,
  onEvent: (e: BackupEvent) => void = () => {},
): Promise<BackupSummary> {
  if (opts.simulate) {
    const r = repo !== null && "repository" in repo ? await repo.repository : repo;
    return await runBackup(store, r, opts, onEvent);
  }
  if (repo === null) throw new TypeError("backup needs a repository");
  const { descriptor, repository } = "repository" in repo
    ? repo
    : { descriptor: repo.descriptor, repository: Promise.resolve(repo) };
  // The lock goes first: a prune that starts later sees it and keeps every data object; one
  // that is running already makes us stop here, before anything is uploaded (FORMAT.md §6).
  const stop = new AbortController(); // a lock wait ends when the repository does not open
  repository.catch(() => stop.abort());
  const signal = opts.lock?.signal ? AbortSignal.any([opts.lock.signal, stop.signal]) : stop.signal;
  const lockOpts = { source: opts.source, ...opts.lock, signal };
  try {
    return await withLock(store, "backup", opts.host, lockOpts, async (lock) => {
      // Held: the store is listed, and asked whether the password changed, while the key may
      // still be derived (what the listings find is the key's to read).
      const first = firstListings(store, descriptor, checkPasswordUnchanged(store, repository));
      return await runBackup(store, await repository, opts, onEvent, lock, first);
    });
  } catch (err) {
    await repository; // a wrong password or a damaged key is told before a lock's failure
    throw err;
  }
}

/**
 * What a run starts from, asked at once (once its lock is held): the metas; a format 3
 * repository's packs, data and indexes; and that no password change came (FORMAT.md §7).
 */
interface FirstListings {
  metas: Promise<MetaObject[]>;
  stored: Promise<StoredObjects | undefined>;
  unchanged: Promise<void>;
}

function firstListings(
  store: Store,
  descriptor: Descriptor | Promise<Descriptor> | null,
  unchanged: Promise<void> = Promise.resolve(),
): FirstListings {
  const metas = listRepository(store, META_PREFIX).then((l) => l.metas);
  const stored = Promise.resolve(descriptor).then((d) =>
    d?.format === 3 ? listStored(store) : undefined
  );
  // Each failure is met where it is awaited (runBackup, once the repository has opened).
  for (const p of [metas, stored, unchanged]) p.catch(() => {});
  return { metas, stored, unchanged };
}

/** Warnings of one run, counted; `partial` ones make it exit 3. */
class Warnings {
  count = 0;
  skipped = 0;
  constructor(readonly onEvent: (e: BackupEvent) => void) {}
  add = (path: string, message: string, partial: boolean): void => {
    this.count++;
    if (partial) this.skipped++;
    this.onEvent({ type: "warning", path, message });
  };
}

async function runBackup(
  store: Store,
  repo: Repository | null,
  opts: BackupOptions,
  onEvent: (e: BackupEvent) => void,
  lock?: Lock,
  first: FirstListings = firstListings(store, repo?.descriptor ?? null),
): Promise<BackupSummary> {
  const started = performance.now();
  const time = (opts.now ?? (() => new Date()))();
  const lookedAt = Date.now(); // the real clock, for racy mtimes (files_cache.ts)
  const preparedKey = repo !== null && !opts.simulate ? prepareMetaKey(repo) : undefined;
  onEvent({ type: "phase", phase: "listing" });
  const [metas] = await Promise.all([first.metas, first.unchanged]);
  const warn = new Warnings(onEvent);
  const cache = await openCache(store, repo, metas, opts, warn);
  const out = await openOutputs(repo, opts, time, preparedKey, warn);
  let contents: Awaited<ReturnType<typeof contentsFor>> | undefined;
  try {
    contents = await contentsFor(store, repo, cache.vouched, opts, warn, first.stored);
    const state: CacheState = { ...cache.state };
    const storeNow = new Date(Date.now() + (lock?.offsetMs ?? 0));
    // Two chores of the store run beside the archiver, awaited before the meta: old multipart
    // uploads swept (it never throws), and the kit put where it differs.
    const sweep = opts.simulate ? Promise.resolve(0) : sweepWhenDue(store, state, storeNow);
    const kit = out.meta !== null ? syncKit(store, contents.full()?.kit ?? null, opts.kit) : null;
    kit?.catch(() => {}); // its failure is met where it is awaited
    const reused = reusedFor(opts, cache, time);
    const ctx = { store, repo, opts, uploads: contents.uploads, cache, warn, onEvent, reused };
    onEvent({ type: "phase", phase: "backing up" });
    const totals = await archive(ctx, out, lookedAt);
    onEvent({ type: "phase", phase: "finishing" });
    let metaKey: string | null = null, retentionExtended = 0;
    const same = await stillOpens(
      repo,
      unchangedSince(metas, state, opts, out.meta?.entriesDigest(), warn),
      warn,
    );
    // That the lock held is asked once every pack is stored, beside the index's PUT.
    let held: Promise<void> | undefined;
    const checkHeld = () =>
      held ??= repo !== null && out.meta !== null
        ? checkLockHeld(lock, cachePathOf(repo, opts))
        : Promise.resolve();
    if (contents.uploads instanceof Packer) await contents.uploads.finish(checkHeld);
    if (out.meta !== null && repo !== null) {
      await store.flush?.(); // every object durable before the meta that names them
      if (repo.created) await checkKeyKept(repo, contents.uploads);
      await checkHeld();
      const full = contents.full();
      await kit;
      if (reused !== null) {
        retentionExtended = await extendReused(store, reused, contents.uploads, opts, time);
        if (reused.all) state.retainedMs = retentionAt(opts.retention!, time).until.getTime();
      }
      if (same === null) {
        const body = await out.meta.finish();
        const knowledge = { honoursConditional: state.conditional };
        metaKey = await writeMeta(repo, full?.metas ?? metas, opts.name, time, body, knowledge);
        Object.assign(state, {
          meta: metaKey,
          conditional: knowledge.honoursConditional,
          entries: out.meta.entriesDigest(),
        });
      } // else the same meta vouches for this run's (fresher) records
      commitCache(out.cache, state, repo, opts, warn);
    }
    const uploadsAborted = await sweep;
    return {
      metaKey,
      unchangedSince: same,
      ...totals,
      newObjects: contents.uploads.newObjects,
      bytesUploaded: contents.uploads.bytesUploaded,
      skipped: warn.skipped,
      warnings: warn.count,
      uploadsAborted,
      retentionExtended,
      durationMs: performance.now() - started,
      simulate: opts.simulate,
    };
  } finally {
    if (contents?.uploads instanceof Packer) contents.uploads.close();
    cache.lookup.close();
    await out.meta?.discard();
    out.cache?.discard();
  }
}

/**
 * The meta whose entries this run's are (`digest`, of the entry lines), when the run may skip
 * writing its own: asked to, nothing skipped, and the cache's meta exists under this name.
 */
function unchangedSince(
  metas: MetaObject[],
  state: CacheState,
  opts: BackupOptions,
  digest: string | undefined,
  warn: Warnings,
): string | null {
  if (!opts.skipIfUnchanged || digest === undefined || warn.skipped > 0) return null;
  const last = metas.find((m) => m.key === state.meta);
  return last !== undefined && last.name === opts.name && state.entries === digest
    ? last.key
    : null;
}

/**
 * `key` when that meta still opens (decrypts and parses: --skip-if-unchanged leans on it as
 * this run's backup), else null, with a warning: then a fresh meta is written.
 */
async function stillOpens(
  repo: Repository | null,
  key: string | null,
  warn: Warnings,
): Promise<string | null> {
  if (key === null || repo === null) return null;
  try {
    await loadMeta(repo, key);
    return key;
  } catch (err) {
    warn.add(key, `does not open (${messageOf(err)}): a new meta is written`, false);
    return null;
  }
}

/**
 * With --retain, what this run must extend: the contents it finds stored but the files cache
 * does not vouch for (another host may have stored them, retained for less), and, when the
 * cache's date of the last extension (while its meta exists) is not enough (`all`), every
 * content it names and the shared objects (retention.ts).
 */
interface Reused {
  /** Format 2 objects, by MD5. */
  set: ContentSizes;
  /** Format 3 objects (packs, `data/`), by key. */
  keys: Set<string>;
  all: boolean;
}

/** Notes that object `key` (of content `md5`) is reused. */
function addReused(reused: Reused | null, key: string): void {
  if (reused === null) return;
  if (isMd5(key)) reused.set.set(key, 0, true);
  else reused.keys.add(key);
}

function reusedFor(opts: BackupOptions, cache: OpenCache, time: Date): Reused | null {
  if (opts.retention === undefined || opts.simulate) return null;
  const known = cache.vouched ? cache.state.retainedMs : undefined;
  return {
    set: new ContentSizes(),
    keys: new Set(),
    all: extensionDue(opts.retention, known, time),
  };
}

/** Extends what this run must (Reused) and did not store itself. */
async function extendReused(
  store: Store,
  reused: Reused,
  uploads: ContentSink,
  opts: BackupOptions,
  time: Date,
): Promise<number> {
  function* names() {
    for (const md5 of reused.set.ours()) if (!uploads.stored(md5)) yield md5;
    for (const key of reused.keys) if (!uploads.stored(key)) yield key;
    if (reused.all) yield* sharedObjects([...opts.kit.keys()].map((k) => KIT_PREFIX + k));
  }
  return await extendRetention(store, names(), retentionAt(opts.retention!, time), opts.signal);
}

/** More contents to look up than this (not vouched for by the cache): one listing, no HEADs. */
export const LOOKUP_LIMIT = 500;

/** The sink of a format 3 repository (or a new one, simulated), else format 2's. */
async function contentsFor(
  store: Store,
  repo: Repository | null,
  vouched: boolean,
  opts: BackupOptions,
  warn: Warnings,
  stored: Promise<StoredObjects | undefined>,
): Promise<{ uploads: ContentSink; full: () => Listing | null }> {
  if ((repo?.descriptor.format ?? FORMAT_VERSION) !== 3) {
    const target = repo !== null && !opts.simulate
      ? { store, repo, saveOptions: saveOptionsOf(opts) }
      : null;
    return await storedContents(store, target, vouched);
  }
  const packer = await Packer.open(store, repo, {
    cacheRoot: opts.filesCache?.dir ?? null,
    saveOptions: saveOptionsOf(opts),
    simulate: opts.simulate,
    onBadIndex: (name, err) =>
      warn.add(name, `${messageOf(err)}: its contents are stored again`, false),
    onAbsent: (n) =>
      warn.add(
        ".",
        `${n} contents the indexes name are missing from the store (deleted, or cut short): ` +
          "each is stored again if a file still holds it",
        false,
      ),
    ...(opts.packSize ? { packSize: opts.packSize } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    stored,
  });
  return { uploads: packer, full: () => null };
}

/**
 * What the store holds, for as few requests as will do. With a cache whose meta exists, what
 * it vouches for is not looked up (backup() trusts it) and each other content is looked up by
 * HEAD, until LOOKUP_LIMIT of them: then the store is listed once and every later question is
 * answered from the listing. Without one, the store is listed at once. Of data objects only
 * names and sizes are kept; `full` is the rest of the listing, when it was made.
 */
async function storedContents(store: Store, target: UploadTarget | null, vouched: boolean) {
  const known = new ContentSizes();
  let full: Listing | null = null;
  const list = async () => {
    full = await listRepository(store, "", (o) => {
      if (!known.has(o.name)) known.set(o.name, o.size); // data objects: MD5 names
    });
  };
  const contents = (lookup?: (md5: string) => Promise<number | null>) => ({
    uploads: new Uploads(known, target, lookup),
    full: () => full,
  });
  if (!vouched) {
    await list();
    return contents();
  }
  let heads = 0;
  let listing: Promise<void> | null = null;
  return contents(async (md5) => {
    if (listing === null && heads < LOOKUP_LIMIT) {
      heads++;
      return (await store.stat(md5))?.size ?? null;
    }
    await (listing ??= list());
    return known.get(md5) ?? null;
  });
}

/** Stale multipart uploads are swept this often (and when there is no cache). */
export const SWEEP_EVERY_MS = 6 * 24 * 60 * 60 * 1000;

/** Sweeps killed runs' multipart uploads when the cache says it is due; how many it aborted. */
async function sweepWhenDue(store: Store, state: CacheState, now: Date): Promise<number> {
  if (state.sweptMs !== undefined && now.getTime() - state.sweptMs < SWEEP_EVERY_MS) return 0;
  state.sweptMs = now.getTime();
  return await abortStaleUploads(store, now);
}

/** What a backup writes as it goes: its meta, and the next files cache (null: none). */
interface Outputs {
  meta: MetaSpool | null;
  cache: FilesCacheWriter | null;
}

/** The outputs of a backup that writes (none when simulating); a cache that cannot be warns. */
async function openOutputs(
  repo: Repository | null,
  opts: BackupOptions,
  time: Date,
  preparedKey: PreparedKey | undefined,
  warn: Warnings,
): Promise<Outputs> {
  if (repo === null || opts.simulate) return { meta: null, cache: null };
  const info = Deno.statSync(opts.source);
  const { mode, uid, gid, mtimeMs } = entryOf(
    { type: "d", path: ".", abs: opts.source, info },
    attrsOf(info),
  );
  const header = {
    time,
    host: opts.host,
    source: opts.sourceLabel ?? opts.source,
    name: opts.name,
    root: { mode, uid, gid, mtimeMs },
    excludes: describeExcludes(opts.excludes ?? NO_EXCLUDES),
    kit: new Map(
      [...opts.kit].sort(([a], [b]) => a < b ? -1 : 1)
        .map(([name, data]) => [name, createHash("sha256").update(data).digest("hex")]),
    ),
  };
  const meta = await MetaSpool.open(repo, header, preparedKey);
  const path = cachePathOf(repo, opts);
  if (path === null) return { meta, cache: null };
  try {
    return { meta, cache: FilesCacheWriter.create(path, repo.descriptor.id) };
  } catch (err) {
    warn.add(path, `cannot write the files cache: ${messageOf(err)}`, false);
    return { meta, cache: null };
  }
}

/**
 * After the meta: the new files cache takes the old one's place, and the cache folder
 * remembers where this repository lives (a failure only warns).
 */
function commitCache(
  cache: FilesCacheWriter | null,
  state: CacheState,
  repo: Repository,
  opts: BackupOptions,
  warn: Warnings,
): void {
  try {
    cache?.commit(state);
    const fc = opts.filesCache;
    if (cache !== null && fc !== undefined) {
      rememberRepository(fc.dir, repo.descriptor.id, fc.where ?? repo.store.location);
    }
  } catch (err) {
    warn.add(cache!.path, `cannot write the files cache: ${messageOf(err)}`, false);
  }
}

interface ReadContext {
  /** With --retain: the contents to extend (set as `ours`), and whether all are. */
  reused: Reused | null;
  store: Store;
  repo: Repository | null;
  opts: BackupOptions;
  uploads: ContentSink;
  cache: OpenCache;
  warn: Warnings;
  onEvent: (e: BackupEvent) => void;
}

/** How many walked entries may wait behind one still being read before the walk pauses. */
const WINDOW = 4096;
/**
 * Entries between two full collections (util/memory.ts): each file's walk leaves ~1 KiB. A
 * quarter of the entries so far, from 4,096 up to 16,384: a small run's heap stays small (20,000
 * files, no-op: peak 135 -> 116 MiB), a large one pays no more collections than before (a
 * million files: each costs more there, and frees nothing more).
 */
function releaseAfter(emitted: number): number {
  return emitted + Math.min(16_384, Math.max(4096, emitted >> 2));
}

/**
 * The archiver: walks once and, in walk order, writes each entry to the meta and each file's
 * record to the next files cache, as soon as every earlier entry is written. A file whose
 * lstat matches the files cache (and whose object the store holds) is not opened; the others
 * are read, hashed and stored by a bounded pool (file_reader.ts). Holds at most WINDOW
 * entries, however many there are.
 */
async function archive(c: ReadContext, out: Outputs, lookedAt: number) {
  const { opts, uploads, onEvent } = c;
  const t = { files: 0, dirs: 0, links: 0, bytes: 0, filesFromCache: 0, excluded: 0 };
  let filesDone = 0, bytesDone = 0;
  const done = (item: WalkItem, r: FileResult | null, uploaded: boolean) => {
    if (r !== null) {
      onEvent({ type: "file", path: item.path, size: r.size, upload: uploaded });
      bytesDone += r.size;
    }
    filesDone++;
    onEvent({ type: "progress", filesDone, bytesDone, bytesUploaded: uploads.bytesUploaded });
    return r;
  };
  const ctx = fileContext(c);
  const links = new HardLinks();
  const step = (item: WalkItem): Step<FileResult | LinkOf | null> => {
    if (item.type !== "f") return { now: null };
    const link = links.firstOf(item);
    if (link !== null) return { now: link }; // recorded from its first's record (emit)
    const st = statOf(item.info);
    const md5 = c.cache.lookup.md5Of(item.path, st);
    const where = md5 === null ? null : uploads.whereOf(md5, st.size) ??
      (c.cache.vouched && uploads instanceof Uploads ? "-" : null);
    if (md5 !== null && where !== null) {
      t.filesFromCache++;
      if (c.reused?.all) addReused(c.reused, placeOf(md5, where).key);
      return { now: done(item, { md5, size: st.size, info: st, where }, false) };
    }
    return {
      later: async () => {
        const r = await backupFile(item, ctx, (p, m) => c.warn.add(p, m, true));
        const key = r?.result ? placeOf(r.result.md5, r.result.where).key : null;
        if (key !== null) addReused(c.reused, key); // found stored, or ours
        return done(item, r?.result ?? null, r?.uploaded ?? false);
      },
    };
  };
  let emitted = 0, release = releaseAfter(0);
  const emit = async (item: WalkItem, stepped: FileResult | LinkOf | null) => {
    if (++emitted === release) { // the walk's garbage, promoted
      releaseMemory();
      release = releaseAfter(emitted);
    }
    if (item.type === "f") {
      const isLink = stepped !== null && "linkOf" in stepped;
      const r: (FileResult & { linkTo?: string }) | null = isLink
        ? linkResult(item, stepped, links, c.warn)
        : stepped;
      if (isLink) done(item, r, false); // (a file read was done when read)
      if (r === null) return; // skipped, and reported
      if (r.linkTo === undefined) links.recorded(item, r);
      t.files++;
      t.bytes += r.size;
      // The facts of the walk's lstat, which the next run compares (the same calls, the same
      // precision: Deno reports ctime in whole seconds). A change after that lstat changes them.
      const rec = recordOf(r.md5, statOf(item.info), lookedAt);
      if (rec !== null) out.cache?.add(item.path, rec);
      const e = { ...entryOf(item, r.info, r.md5, r.size), where: r.where };
      await out.meta?.add(r.linkTo === undefined ? e : { ...e, linkTo: r.linkTo });
    } else {
      if (item.type === "d") t.dirs++;
      else t.links++;
      await out.meta?.add(entryOf(item, attrsOf(item.info)));
    }
  };
  const items = walked(opts, c.warn, (path, reason) => {
    t.excluded++;
    onEvent({ type: "excluded", path, reason });
  }, onEvent);
  await orderedPool(items, opts.concurrency ?? 4, WINDOW, step, emit, opts.signal);
  return t;
}

/**
 * A hard link's record: its first path's content, its own lstat (the same inode's); null (and
 * a warning) when the first was not recorded, which can only be when it could not be read.
 */
function linkResult(
  item: WalkItem,
  link: LinkOf,
  links: HardLinks,
  warn: Warnings,
): (FileResult & { linkTo: string }) | null {
  const r = links.take(link);
  if (r === null) {
    warn.add(item.path, `a hard link of ${link.linkOf}, which could not be read: skipped`, true);
    return null;
  }
  return { ...r, info: statOf(item.info), linkTo: link.linkOf };
}

/** The walk, with its excludes, announcing its totals when it ends. */
function* walked(
  opts: BackupOptions,
  warn: Warnings,
  onExcluded: OnExcluded,
  onEvent: (e: BackupEvent) => void,
) {
  let files = 0, bytes = 0;
  const filter = excludeFilter(opts.excludes ?? NO_EXCLUDES, opts.source);
  const onWarning = (w: WalkWarning) => warn.add(w.path, w.message, w.partial);
  for (const item of walk(opts.source, onWarning, filter, onExcluded)) {
    if (item.type === "f") [files++, bytes += item.info.size];
    yield item;
  }
  onEvent({ type: "walked", files, bytes });
}

function fileContext(c: ReadContext): FileContext {
  const ctx: FileContext = { sink: c.uploads };
  if (c.opts.signal) ctx.signal = c.opts.signal;
  return ctx;
}

/** How a backup saves contents: deferred syncs, its signal and storage class. */
function saveOptionsOf(opts: BackupOptions): SaveOptions {
  const saveOptions: SaveOptions = { deferSync: true };
  if (opts.signal) saveOptions.signal = opts.signal;
  if (opts.storageClass) saveOptions.storageClass = opts.storageClass;
  return saveOptions;
}

/** The files cache as a backup uses it. */
interface OpenCache {
  lookup: CacheLookup;
  state: CacheState;
  /** The contents of the records are stored: the meta they were recorded with exists. */
  vouched: boolean;
}

/**
 * The files cache of this source; empty with `forceRehash`, or without a repository or cache
 * folder. Without a cache every file is read: nothing else knows its ctime and inode (a meta
 * has size and mtime only, which an edit that keeps both would pass), and a content that was
 * not read must never be recorded as read. The cache vouches for what its records name while
 * the meta it was written with exists, and while a sample of those contents is found stored
 * (a HEAD each: SAMPLE requests); one missing, and every content is checked against a listing.
 */
async function openCache(
  store: Store,
  repo: Repository | null,
  metas: MetaObject[],
  opts: BackupOptions,
  warn: Warnings,
): Promise<OpenCache> {
  const none: OpenCache = { lookup: NO_CACHE, state: {}, vouched: false };
  const path = repo === null ? null : cachePathOf(repo, opts);
  if (path === null) return none;
  const { lookup, state, sample } = openFilesCache(path, repo!.descriptor.id);
  if (opts.filesCache?.forceRehash) {
    lookup.close();
    return { ...none, state };
  }
  let vouched = metas.some((m) => m.key === state.meta);
  // Format 3 knows what is stored from its indexes and listings (packer.ts): no sample.
  if (vouched && repo!.descriptor.format !== 3) {
    const missing = await missingOf(store, sample, opts.signal);
    if (missing > 0) {
      warn.add(
        ".",
        `${missing} of ${sample.length} sampled contents the files cache vouches for are ` +
          "missing from the store (deleted, or behind delete markers): every file is checked " +
          "against a listing, and what is missing is stored again",
        false,
      );
      vouched = false;
    }
  }
  return { lookup, state, vouched };
}

/** How many of `md5s` the store lacks (a HEAD each, 8 at a time). */
async function missingOf(store: Store, md5s: string[], signal?: AbortSignal): Promise<number> {
  let missing = 0;
  await pool(md5s, 8, async (md5) => {
    if ((await store.stat(md5)) === null) missing++;
  }, signal);
  return missing;
}

/** What an entry records of a file's status (null: unknown on this platform). */
interface Attrs {
  mode: number | null;
  uid: number | null;
  gid: number | null;
  mtimeMs: number | null;
}

function attrsOf(info: Deno.FileInfo): Attrs {
  return { mode: info.mode, uid: info.uid, gid: info.gid, mtimeMs: info.mtime?.getTime() ?? null };
}

function entryOf(item: WalkItem, info: Attrs, md5?: string, size = 0): RecordedEntry {
  const fallbackMode = item.type === "d" ? 0o755 : item.type === "l" ? 0o777 : 0o644;
  const e: RecordedEntry = {
    type: item.type,
    path: item.path,
    mode: info.mode === null ? fallbackMode : info.mode & 0o7777,
    uid: info.uid ?? null,
    gid: info.gid ?? null,
    size,
    mtimeMs: info.mtimeMs ?? 0,
  };
  if (md5 !== undefined) e.md5 = md5;
  if (item.type === "l") e.target = item.target ?? "";
  return e;
}

/**
 * Before the meta: our lock must have held throughout. When it lapsed (removed, or unwritten
 * for longer than LAPSE_MS: asleep, stopped) a prune may have judged it stale and deleted
 * objects this run found stored: nothing is recorded, and the files cache, which vouches for
 * such objects, is dropped so that the next run reads every file and lists the store.
 */
async function checkLockHeld(lock: Lock | undefined, cachePath: string | null): Promise<void> {
  const why = await lock?.lapsed();
  if (why === null || why === undefined) return;
  if (cachePath !== null) dropFilesCache(cachePath);
  throw new S3BackupError(
    `The backup's lock ${lock!.key} lapsed while it ran (${why}): a prune may have deleted ` +
      "objects it uses, so nothing was recorded; run the backup again (it reads every file " +
      "and stores what is missing)",
  );
}

/** Where this backup's files cache lives, or null without one. */
function cachePathOf(repo: Repository, opts: BackupOptions): string | null {
  const fc = opts.filesCache;
  return fc === undefined
    ? null
    : filesCachePath(fc.dir, repo.descriptor.id, opts.host, opts.source);
}

/**
 * Before the meta: the repository key must still hold the data key this backup encrypted with.
 * When it was replaced by a foreign one, what this run uploaded is unreadable to every other
 * backup: it is removed (so that none reuses it) and nothing is recorded.
 */
async function checkKeyKept(repo: Repository, uploads: ContentSink): Promise<void> {
  if ((await keyState(repo)) !== "foreign") return;
  const names = [...uploads.names()];
  await repo.store.remove(names).catch(() => {});
  throw new S3BackupError(
    `The repository key of ${repo.store.location} was replaced during this backup (another ` +
      `process created the repository at the same time?): the ${names.length} objects ` +
      "it uploaded were removed and nothing was recorded; run the backup again",
  );
}

/**
 * Writes the meta under `meta_<name>_<time>`, or one second later while that name is taken:
 * known from the listing, or found taken by the conditional create (another backup of the same
 * name in the same second). Two backups never share a meta name. Returns the name.
 */
async function writeMeta(
  repo: Repository,
  metas: MetaObject[],
  name: string,
  time: Date,
  body: Reopenable,
  knowledge: CreateOptions["knowledge"],
): Promise<string> {
  const taken = new Set(metas.map((m) => m.key));
  for (let t = time.getTime();; t += 1000) {
    const key = formatMetaName(name, new Date(t));
    if (!taken.has(key) && await createOnce(repo.store, key, body, { knowledge })) return key;
  }
}

/**
 * Uploads the kit files whose copy in the store differs (by size and, on S3, ETag = MD5).
 * `have`: the store's kit objects, or null when not listed: then `restore-kit/` is listed (one
 * request each backup: a kit deleted or replaced is put back).
 */
async function syncKit(
  store: Store,
  have: Map<string, ObjectInfo> | null,
  kit: Map<string, Uint8Array>,
): Promise<void> {
  const stored = have ?? (await listRepository(store, KIT_PREFIX)).kit;
  // A handful of small files, all at once: one round trip's wait, not one each.
  await Promise.all([...kit].map(async ([name, data]) => {
    const key = KIT_PREFIX + name;
    if (!(await sameObject(store, stored.get(key), data))) await store.save(key, data);
  }));
}

/** Whether the stored object `old` holds `data`: by size and ETag, or (no ETag) its bytes. */
async function sameObject(store: Store, old: ObjectInfo | undefined, data: Uint8Array) {
  if (old === undefined || old.size !== data.length) return false;
  if (old.etag !== undefined) return old.etag === createHash("md5").update(data).digest("hex");
  const have = await readAll(await store.load(old.name)).catch(() => null);
  return have !== null && Buffer.compare(have, data) === 0;
}
