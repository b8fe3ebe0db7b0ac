/**
 * Reading and storing one file's content (backup.ts walks and calls this for each regular file).
 *
 * A small file is read once into memory: hashed and encrypted from the same bytes. A big file that
 * gzips is read once too, into a spool file (the sink's `readOnce`, format 3). Any other big file is
 * hashed first; it is read again to upload only when the store lacks its content, and the second
 * read is checked to hash the same while it streams (else the upload is aborted). A file that
 * changes while it is read is read again, up to ATTEMPTS times. Each distinct content is
 * uploaded once per run (`Uploads`), however many files hold it.
 */
import { createHash } from "node:crypto";
import { encryptedSize } from "../../format/container.ts";
import { encryptObject, encryptSmallObject, type Repository } from "../../repo/repository.ts";
import type { SaveOptions, Store } from "../../store/store.ts";
import { messageOf } from "../../util/bytes.ts";
import { FileChangedError, S3BackupError } from "../../util/errors.ts";
import { CannotOpenError, type FileStat, SourceFile, statOf } from "./source_file.ts";
import type { ContentSizes } from "./content_sizes.ts";
import type { WalkItem } from "./walk.ts";

/** Errors of the file system that mean "cannot read this one file" (Deno's or node's). */
function isAccessError(err: unknown): boolean {
  if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotFound) {
    return true;
  }
  const code = (err as { code?: unknown })?.code;
  return code === "EACCES" || code === "EPERM" || code === "ENOENT" || code === "EIO";
}

/** Files up to this size are read once into memory: hash and encrypt from the same bytes. */
export const SMALL_FILE = 8 * 1024 * 1024;
/** Files up to this size are read with synchronous calls (SourceFile.readWholeSync). */
const SYNC_READ = 256 * 1024;
const READ_CHUNK = 1024 * 1024;
export const ATTEMPTS = 3;

/** The path is no longer a regular file when opened. */
class NotRegularFileError extends S3BackupError {}

export interface FileResult {
  md5: string;
  size: number;
  info: FileStat;
  /** Where its content is (FORMAT.md §4; `-` in a format 2 repository). */
  where: string;
}

/**
 * Where a backup's contents go: the store's format 2 objects (`Uploads`) or format 3 packs and
 * `data/` objects (packer.ts). Each distinct content is stored once.
 */
export interface ContentSink {
  readonly newObjects: number;
  readonly bytesUploaded: number;
  /** Where content `md5` (of `size` bytes) is when the store holds it whole, else null. */
  whereOf(md5: string, size: number): string | null;
  /** Stores a content held in memory unless stored; where it is, and whether it was stored. */
  small(md5: string, data: Uint8Array): Promise<Stored>;
  /** Stores a content read again from the file (`open`, of `size` bytes) unless stored. */
  big(md5: string, size: number, open: () => ReadableStream<Uint8Array>): Promise<Stored>;
  /**
   * A content of `size` bytes read once from `body` (hashed and held aside meanwhile), or null
   * when this sink would rather have it hashed first and read again (`big`).
   */
  readOnce?(size: number, body: ReadableStream<Uint8Array>): Promise<ReadOnce | null>;
  /** The object keys this run stored. */
  names(): Iterable<string>;
  /** Whether this run stored object `key`. */
  stored(key: string): boolean;
}

export interface Stored {
  where: string;
  uploaded: boolean;
}

/** A large content read once and held aside (a spool file) until it is known unchanged. */
export interface ReadOnce {
  md5: string;
  /** The bytes read. */
  size: number;
  /** Stores it unless the store holds it, and lets go of what held it. */
  commit(): Promise<Stored>;
  /** Lets go of what held it (the file changed while it was read). */
  discard(): void;
}

/** Where format 2 contents are stored, and how. */
export interface UploadTarget {
  store: Store;
  repo: Repository;
  saveOptions: SaveOptions;
}

/**
 * Saves each distinct content once: unless the store has it whole, or it is being saved now.
 * What the store has comes from a listing (names and sizes), or from a lookup (HEAD) of each
 * content not known yet. An object whose stored size is not that of its content encrypted (a
 * local store's object cut short by a crash before the backup's flush, any damage) is saved
 * again.
 */
export class Uploads implements ContentSink {
  newObjects = 0;
  bytesUploaded = 0;
  readonly #known: ContentSizes;
  readonly #lookup: ((md5: string) => Promise<number | null>) | undefined;
  readonly #inflight = new Map<string, Promise<boolean>>();

  /**
   * `known`: objects and their stored sizes (kept, not copied: a listing may still add to it);
   * `lookup`: the stored size of any other, or null; `target`: how to store (null: simulate,
   * sizes only).
   */
  constructor(
    known: ContentSizes,
    readonly target: UploadTarget | null,
    lookup?: (md5: string) => Promise<number | null>,
  ) {
    this.#known = known;
    this.#lookup = lookup;
  }

  /** The objects this run stored. */
  names(): Generator<string> {
    return this.#known.ours();
  }

  /** Whether this run stored `md5`. */
  stored(md5: string): boolean {
    return this.#known.isOurs(md5);
  }

  whereOf(md5: string, size: number): string | null {
    return this.has(md5, size) ? "-" : null;
  }

  async small(md5: string, data: Uint8Array): Promise<Stored> {
    const n = data.length, ctx = this.target;
    const uploaded = await this.once(md5, n, async () => {
      if (ctx === null) return encryptedSize(n);
      const body = await encryptSmallObject(ctx.repo, data);
      await ctx.store.save(md5, body, ctx.saveOptions);
      return body.length;
    });
    return { where: "-", uploaded };
  }

  async big(md5: string, n: number, open: () => ReadableStream<Uint8Array>): Promise<Stored> {
    const ctx = this.target;
    const uploaded = await this.once(md5, n, async () => {
      const size = encryptedSize(n);
      if (ctx === null) return size;
      const body = open().pipeThrough(encryptObject(ctx.repo));
      await ctx.store.save(md5, body, { ...ctx.saveOptions, size });
      return size;
    });
    return { where: "-", uploaded };
  }

  /** True when the store holds `md5`, of `plainSize` bytes, whole (as far as is known). */
  has(md5: string, plainSize: number): boolean {
    return this.#known.get(md5) === encryptedSize(plainSize);
  }

  /** Runs `work` (which returns the stored size) unless `md5` is stored; true if it ran. */
  async once(md5: string, plainSize: number, work: () => Promise<number>): Promise<boolean> {
    while (!this.has(md5, plainSize)) {
      const other = this.#inflight.get(md5);
      if (other) {
        await other.catch(() => {}); // its file may have changed: then we upload ours
        continue;
      }
      const p = this.#store(md5, plainSize, work);
      this.#inflight.set(md5, p);
      try {
        return await p;
      } finally {
        this.#inflight.delete(md5);
      }
    }
    return false;
  }

  async #store(md5: string, plainSize: number, work: () => Promise<number>): Promise<boolean> {
    if (this.#lookup && !this.#known.has(md5)) {
      const stored = await this.#lookup(md5);
      this.#known.set(md5, stored ?? NaN); // looked up once: NaN matches no size
      if (this.has(md5, plainSize)) return false;
    }
    const size = await work();
    this.#known.set(md5, encryptedSize(plainSize), true);
    this.newObjects++;
    this.bytesUploaded += size;
    return true;
  }
}

export interface FileContext {
  /** Where contents go (it knows whether they are stored or only sized: simulate). */
  sink: ContentSink;
  signal?: AbortSignal;
}

/** Why a file was not backed up: reported as a warning, the backup goes on (exit "partial"). */
export type Skip = (path: string, message: string) => void;

function md5Hex(): ReturnType<typeof createHash> {
  return createHash("md5");
}

function sameFile(a: FileStat, b: FileStat): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

const changed = () => new FileChangedError("changed while it was read");

/** Reads an open file from the start through `each`; returns the byte count. */
async function readThrough(file: SourceFile, each: (chunk: Uint8Array) => void): Promise<number> {
  const buf = new Uint8Array(READ_CHUNK);
  let total = 0;
  while (true) {
    const n = await file.read(buf, total);
    if (n === 0) return total;
    each(buf.subarray(0, n));
    total += n;
  }
}

/**
 * Backs up one file. Returns its result and whether its content was uploaded, or null when it
 * was skipped (reported through `skip`). Throws only what should stop the whole backup.
 */
export async function backupFile(
  item: WalkItem,
  ctx: FileContext,
  skip: Skip,
): Promise<{ result: FileResult; uploaded: boolean } | null> {
  for (let i = 1; i <= ATTEMPTS; i++) {
    ctx.signal?.throwIfAborted();
    try {
      return await attemptFile(item, ctx);
    } catch (err) {
      if (err instanceof FileChangedError && i < ATTEMPTS) continue;
      const why = skipReason(err);
      if (why === null) throw err;
      skip(item.path, why);
      return null;
    }
  }
  return null;
}

/** Why a file is skipped, for the errors that mean "cannot back up this one file". */
function skipReason(err: unknown): string | null {
  if (err instanceof CannotOpenError) return `cannot open: ${err.message}`;
  if (err instanceof FileChangedError) {
    return `changed while it was read ${ATTEMPTS} times; skipped`;
  }
  if (isAccessError(err)) return `cannot read: ${messageOf(err)}`;
  if (err instanceof NotRegularFileError) return "is no longer a regular file; skipped";
  return null;
}

/** One attempt at one file. Throws FileChangedError when it changed while read. */
async function attemptFile(item: WalkItem, ctx: FileContext) {
  if (item.info.size <= SYNC_READ) {
    const walked = statOf(item.info);
    const fast = SourceFile.readAsWalkedSync(item.abs, walked);
    if (fast !== null) return await storeSmall(fast.data, fast.after, ctx);
    const whole = SourceFile.readWholeSync(item.abs, SYNC_READ);
    if (whole !== null) {
      const { data, read, before, after } = whole;
      if (read !== before.size || !sameFile(before, after)) throw changed();
      return await storeSmall(data, after, ctx);
    }
  }
  const file = await SourceFile.open(item.abs);
  try {
    const before = await file.stat();
    if (!before.isFile) throw new NotRegularFileError("is no longer a regular file");
    return before.size <= SMALL_FILE
      ? await attemptSmall(file, before, ctx)
      : await attemptBig(file, before, ctx);
  } finally {
    await file.close();
  }
}

async function attemptSmall(file: SourceFile, before: FileStat, ctx: FileContext) {
  const data = new Uint8Array(before.size);
  let off = 0;
  const n = await readThrough(file, (c) => {
    if (off + c.length > data.length) throw changed();
    data.set(c, off);
    off += c.length;
  });
  const after = await file.stat();
  if (n !== before.size || !sameFile(before, after)) throw changed();
  return await storeSmall(data, after, ctx);
}

/** Hashes an in-memory file and stores its content unless the store has it. */
async function storeSmall(data: Uint8Array, after: FileStat, ctx: FileContext) {
  const n = data.length;
  const md5 = md5Hex().update(data).digest("hex");
  const { where, uploaded } = await ctx.sink.small(md5, data);
  return { result: { md5, size: n, info: after, where }, uploaded };
}

async function attemptBig(file: SourceFile, before: FileStat, ctx: FileContext) {
  const once = await ctx.sink.readOnce?.(before.size, readStream(file));
  if (once) {
    const after = await file.stat();
    if (once.size !== before.size || !sameFile(before, after)) {
      once.discard();
      throw changed();
    }
    const { where, uploaded } = await once.commit();
    return { result: { md5: once.md5, size: once.size, info: after, where }, uploaded };
  }
  const h = md5Hex();
  const n = await readThrough(file, (c) => h.update(c));
  const after = await file.stat();
  if (n !== before.size || !sameFile(before, after)) throw changed();
  const md5 = h.digest("hex");
  const { where, uploaded } = await ctx.sink.big(
    md5,
    n,
    () => readStream(file).pipeThrough(sameContent(file, after, n, md5)),
  );
  return { result: { md5, size: n, info: after, where }, uploaded };
}

/** The rest of an open file, as a stream read on demand. */
function readStream(file: SourceFile): ReadableStream<Uint8Array> {
  let position = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buf = new Uint8Array(READ_CHUNK);
      const got = await file.read(buf, position);
      position += got;
      if (got === 0) controller.close();
      else controller.enqueue(buf.subarray(0, got));
    },
  }, { highWaterMark: 0 });
}

/** Passes the second read through; errors with FileChangedError unless it is the first one. */
function sameContent(
  file: SourceFile,
  first: FileStat,
  size: number,
  md5: string,
): TransformStream<Uint8Array, Uint8Array> {
  const check = md5Hex();
  let seen = 0;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      seen += chunk.length;
      if (seen > size) throw changed();
      check.update(chunk);
      controller.enqueue(chunk);
    },
    async flush() {
      const again = await file.stat();
      if (seen !== size || check.digest("hex") !== md5 || !sameFile(first, again)) {
        throw changed();
      }
    },
  });
}
