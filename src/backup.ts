/**
 * The backup engine. It never prints and never exits: it reports through `onEvent` and returns
 * a summary; errors are thrown.
 *
 * One listing of the store, one walk of the folder, then a bounded pool of workers hashes each
 * file and uploads the contents the store does not have. The meta file goes last, after every
 * object it names is confirmed.
 */
import { createHash } from "node:crypto";
import { encryptedSize } from "./crypto.ts";
import { FileChangedError, S3BackupError } from "./errors.ts";
import type { Entry } from "./meta.ts";
import { formatMetaName, META_PREFIX } from "./meta_name.ts";
import { acquireLock } from "./lock.ts";
import { checkPasswordUnchanged } from "./passwd.ts";
import { encryptObject, encryptSmallObject, type Repository, saveMeta } from "./repository.ts";
import type { ObjectInfo, SaveOptions, Store } from "./store/store.ts";
import { walk, type WalkItem } from "./walk.ts";

/** Files up to this size are read once into memory: hash and encrypt from the same bytes. */
export const SMALL_FILE = 8 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024;
const ATTEMPTS = 3;
const MD5_NAME = /^[0-9a-f]{32}$/;
export const KIT_PREFIX = "restore-kit/";

export interface BackupOptions {
  /** Absolute path of the folder to back up. */
  source: string;
  name: string;
  host: string;
  /** Read and hash, report what would be uploaded, write nothing. */
  simulate: boolean;
  /** Restore kit files to keep under restore-kit/ (name relative to it -> content). */
  kit: Map<string, Uint8Array>;
  concurrency?: number;
  /** S3 storage class of new data objects (metas, key and kit stay in the default class). */
  storageClass?: string;
  now?: () => Date;
  signal?: AbortSignal;
}

export type BackupEvent =
  | { type: "walked"; files: number; bytes: number }
  | { type: "warning"; path: string; message: string }
  | { type: "file"; path: string; size: number; upload: boolean }
  | { type: "progress"; filesDone: number; bytesDone: number; bytesUploaded: number };

export interface BackupSummary {
  metaKey: string | null;
  files: number;
  dirs: number;
  links: number;
  bytes: number;
  newObjects: number;
  bytesUploaded: number;
  /** Entries that could not be backed up (unreadable, changed, unrepresentable). */
  skipped: number;
  warnings: number;
  durationMs: number;
  simulate: boolean;
}

interface FileResult {
  md5: string;
  size: number;
  info: Deno.FileInfo;
}

function md5Hex(): ReturnType<typeof createHash> {
  return createHash("md5");
}

function sameFile(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  return a.size === b.size && a.mtime?.getTime() === b.mtime?.getTime() && a.ino === b.ino;
}

function entryOf(item: WalkItem, info: Deno.FileInfo, md5?: string, size = 0): Entry {
  const fallbackMode = item.type === "d" ? 0o755 : item.type === "l" ? 0o777 : 0o644;
  const e: Entry = {
    type: item.type,
    path: item.path,
    mode: info.mode === null ? fallbackMode : info.mode & 0o7777,
    uid: info.uid ?? null,
    gid: info.gid ?? null,
    size,
    mtimeMs: info.mtime?.getTime() ?? 0,
  };
  if (md5 !== undefined) e.md5 = md5;
  if (item.type === "l") e.target = item.target ?? "";
  return e;
}

/** Reads an open file from the start through `each`; returns the byte count. */
async function readThrough(file: Deno.FsFile, each: (chunk: Uint8Array) => void): Promise<number> {
  await file.seek(0, Deno.SeekMode.Start);
  const buf = new Uint8Array(READ_CHUNK);
  let total = 0;
  while (true) {
    const n = await file.read(buf);
    if (n === null) return total;
    each(buf.subarray(0, n));
    total += n;
  }
}

/** Lists the store once: data object names, kit objects, meta names. */
async function listStore(store: Store) {
  const objects = new Set<string>();
  const kit = new Map<string, ObjectInfo>();
  const metas = new Set<string>();
  for await (const o of store.list()) {
    if (MD5_NAME.test(o.name)) objects.add(o.name);
    else if (o.name.startsWith(KIT_PREFIX)) kit.set(o.name, o);
    else if (o.name.startsWith(META_PREFIX)) metas.add(o.name);
  }
  return { objects, kit, metas };
}

/**
 * Backs up `opts.source` into `store`. `repo` is null only in simulate mode on a store that
 * holds no repository yet.
 */
export async function backup(
  store: Store,
  repo: Repository | null,
  opts: BackupOptions,
  onEvent: (e: BackupEvent) => void = () => {},
): Promise<BackupSummary> {
  if (repo === null && !opts.simulate) throw new TypeError("backup needs a repository");
  // The lock goes first: a prune that starts later sees it and keeps every data object; one
  // that is running already makes us stop here, before anything is uploaded (FORMAT.md §6).
  const lock = opts.simulate
    ? null
    : await acquireLock(store, "backup", opts.host, { source: opts.source });
  try {
    // No password change pending, and none since `repo` was opened (FORMAT.md §7).
    if (lock !== null && repo !== null) await checkPasswordUnchanged(repo);
    return await backupLocked(store, repo, opts, onEvent);
  } finally {
    await lock?.release().catch(() => {});
  }
}

async function backupLocked(
  store: Store,
  repo: Repository | null,
  opts: BackupOptions,
  onEvent: (e: BackupEvent) => void,
): Promise<BackupSummary> {
  const started = performance.now();
  const now = opts.now ?? (() => new Date());
  const time = now();
  const listing = await listStore(store);

  let warnings = 0;
  let skipped = 0;
  const warn = (path: string, message: string, partial: boolean) => {
    warnings++;
    if (partial) skipped++;
    onEvent({ type: "warning", path, message });
  };

  const items = Array.from(walk(opts.source, (w) => warn(w.path, w.message, w.partial)));
  const fileItems = items.filter((i) => i.type === "f");
  onEvent({
    type: "walked",
    files: fileItems.length,
    bytes: fileItems.reduce((n, i) => n + i.info.size, 0),
  });

  const dataSaveOptions: SaveOptions = {};
  if (opts.signal) dataSaveOptions.signal = opts.signal;
  if (opts.storageClass) dataSaveOptions.storageClass = opts.storageClass;
  const known = new Set(listing.objects);
  const inflight = new Map<string, Promise<void>>();
  const results = new Map<WalkItem, FileResult>();
  let filesDone = 0, bytesDone = 0, bytesUploaded = 0, newObjects = 0;

  const upload = async (md5: string, work: () => Promise<number>): Promise<boolean> => {
    while (!known.has(md5)) {
      const other = inflight.get(md5);
      if (other) {
        await other.catch(() => {}); // its file may have changed: then we upload ours
        continue;
      }
      const p = (async () => {
        const size = await work();
        known.add(md5);
        newObjects++;
        bytesUploaded += size;
      })();
      inflight.set(md5, p);
      try {
        await p;
        return true;
      } finally {
        inflight.delete(md5);
      }
    }
    return false;
  };

  /** One attempt at one file. Throws FileChangedError when it changed while read. */
  const attempt = async (item: WalkItem, file: Deno.FsFile): Promise<FileResult> => {
    const before = await file.stat();
    if (!before.isFile) throw new S3BackupError("is no longer a regular file");
    const changed = () => new FileChangedError("changed while it was read");
    if (before.size <= SMALL_FILE) {
      const data = new Uint8Array(before.size);
      let off = 0;
      const n = await readThrough(file, (c) => {
        if (off + c.length > data.length) throw changed();
        data.set(c, off);
        off += c.length;
      });
      const after = await file.stat();
      if (n !== before.size || !sameFile(before, after)) throw changed();
      const md5 = md5Hex().update(data).digest("hex");
      const up = await upload(md5, async () => {
        if (repo === null || opts.simulate) return encryptedSize(n);
        const body = await encryptSmallObject(repo, data);
        await store.save(md5, body, dataSaveOptions);
        return body.length;
      });
      onEvent({ type: "file", path: item.path, size: n, upload: up });
      return { md5, size: n, info: after };
    }
    // Big file: hash it first; read it again to upload only when the store lacks it, and
    // check while uploading that the second read hashes the same (else abort the upload).
    const h = md5Hex();
    const n = await readThrough(file, (c) => h.update(c));
    const after = await file.stat();
    if (n !== before.size || !sameFile(before, after)) throw changed();
    const md5 = h.digest("hex");
    const up = await upload(md5, async () => {
      if (repo === null || opts.simulate) return encryptedSize(n);
      await file.seek(0, Deno.SeekMode.Start);
      const check = md5Hex();
      let seen = 0;
      const verify = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          seen += chunk.length;
          if (seen > n) throw changed();
          check.update(chunk);
          controller.enqueue(chunk);
        },
        async flush() {
          const again = await file.stat();
          if (seen !== n || check.digest("hex") !== md5 || !sameFile(after, again)) {
            throw changed();
          }
        },
      });
      const source = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const buf = new Uint8Array(READ_CHUNK);
          const got = await file.read(buf);
          if (got === null) controller.close();
          else controller.enqueue(buf.subarray(0, got));
        },
      }, { highWaterMark: 0 });
      const size = encryptedSize(n);
      await store.save(md5, source.pipeThrough(verify).pipeThrough(encryptObject(repo)), {
        ...dataSaveOptions,
        size,
      });
      return size;
    });
    onEvent({ type: "file", path: item.path, size: n, upload: up });
    return { md5, size: n, info: after };
  };

  const processFile = async (item: WalkItem) => {
    for (let i = 1; i <= ATTEMPTS; i++) {
      opts.signal?.throwIfAborted();
      let file: Deno.FsFile;
      try {
        file = await Deno.open(item.abs, { read: true });
      } catch (err) {
        warn(item.path, `cannot open: ${(err as Error).message}`, true);
        return;
      }
      try {
        const r = await attempt(item, file);
        results.set(item, r);
        bytesDone += r.size;
        return;
      } catch (err) {
        if (err instanceof FileChangedError && i < ATTEMPTS) continue;
        if (err instanceof FileChangedError) {
          warn(item.path, `changed while it was read ${ATTEMPTS} times; skipped`, true);
          return;
        }
        if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotFound) {
          warn(item.path, `cannot read: ${(err as Error).message}`, true);
          return;
        }
        if (err instanceof S3BackupError && err.message === "is no longer a regular file") {
          warn(item.path, "is no longer a regular file; skipped", true);
          return;
        }
        throw err;
      } finally {
        try {
          file.close();
        } catch {
          // already closed
        }
      }
    }
  };

  // A bounded pool: `concurrency` files in flight; the first fatal error stops the others.
  let next = 0;
  let fatal: unknown = null;
  const worker = async () => {
    while (fatal === null && next < fileItems.length) {
      const item = fileItems[next++]!;
      try {
        await processFile(item);
      } catch (err) {
        fatal ??= err;
        return;
      }
      filesDone++;
      onEvent({ type: "progress", filesDone, bytesDone, bytesUploaded });
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 4 }, worker));
  if (fatal !== null) throw fatal;

  const entries: Entry[] = [];
  let files = 0, dirs = 0, links = 0, bytes = 0;
  for (const item of items) {
    if (item.type === "f") {
      const r = results.get(item);
      if (!r) continue;
      entries.push(entryOf(item, r.info, r.md5, r.size));
      files++;
      bytes += r.size;
    } else {
      entries.push(entryOf(item, item.info));
      if (item.type === "d") dirs++;
      else links++;
    }
  }

  let metaKey: string | null = null;
  if (!opts.simulate && repo !== null) {
    await syncKit(store, listing.kit, opts.kit);
    let t = time;
    metaKey = formatMetaName(opts.name, t);
    while (listing.metas.has(metaKey)) {
      t = new Date(t.getTime() + 1000);
      metaKey = formatMetaName(opts.name, t);
    }
    await saveMeta(repo, metaKey, {
      time,
      host: opts.host,
      source: opts.source,
      name: opts.name,
    }, entries);
  }
  return {
    metaKey,
    files,
    dirs,
    links,
    bytes,
    newObjects,
    bytesUploaded,
    skipped,
    warnings,
    durationMs: performance.now() - started,
    simulate: opts.simulate,
  };
}

/** Uploads the kit files whose copy in the store differs (by size and, on S3, ETag = MD5). */
async function syncKit(
  store: Store,
  have: Map<string, ObjectInfo>,
  kit: Map<string, Uint8Array>,
): Promise<void> {
  for (const [name, data] of kit) {
    const key = KIT_PREFIX + name;
    const old = have.get(key);
    if (old && old.size === data.length && old.etag === md5Hex().update(data).digest("hex")) {
      continue;
    }
    await store.save(key, data);
  }
}
