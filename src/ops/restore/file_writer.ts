/**
 * Writing one file into the target: to a new temporary name in its folder (0600, O_EXCL), its
 * MD5 checked while it streams, owner (as root), mode and mtime set, then renamed into place.
 * Whatever fails, the temporary file is removed.
 */
import { chmodSyncWhereSupported } from "../../util/platform.ts";
import { createHash } from "node:crypto";
import type { Entry } from "../../format/meta.ts";
import { messageOf, writeAll } from "../../util/bytes.ts";
import { CorruptDataError, ObjectArchivedError, S3BackupError } from "../../util/errors.ts";
import { randomHex } from "../../util/random.ts";
import { type Attributes, TEMP_PREFIX, timeOf } from "./target.ts";

const READ_CHUNK = 1024 * 1024;

/** An error about the object (missing, corrupt, download failed), not about the target. */
export class ObjectError extends S3BackupError {}
/** An error writing into the target (the object itself may be fine). */
export class TargetError extends S3BackupError {}

/** MD5 of a file's content (opened for reading only). */
export async function hashFile(p: string, signal?: AbortSignal): Promise<string> {
  const h = createHash("md5");
  using file = await Deno.open(p, { read: true });
  const buf = new Uint8Array(READ_CHUNK);
  while (true) {
    signal?.throwIfAborted();
    const n = await file.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
  }
  return h.digest("hex");
}

export interface WriteOptions {
  attrs: Attributes;
  /** What is at the destination now: a directory there is removed (if empty) before the move. */
  existing: Deno.FileInfo | null;
  /** Something was removed from the target (its parents must be checked again). */
  onRemoved: () => void;
  /** A warning about the file (it is written). */
  warn: (message: string) => void;
  signal?: AbortSignal;
}

function createTemp(dir: string): { tmp: string; file: Deno.FsFile } {
  for (let i = 0;; i++) {
    const tmp = `${dir}/${TEMP_PREFIX}${randomHex(6)}.tmp`;
    try {
      return { tmp, file: Deno.openSync(tmp, { write: true, createNew: true, mode: 0o600 }) };
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists) || i > 5) {
        throw new TargetError(`cannot create a temporary file: ${messageOf(err)}`);
      }
    }
  }
}

/**
 * Writes entry `e` at `dest` from `source` (a decrypted stream), checking its MD5. Returns the
 * byte count. Throws ObjectError or TargetError (or the signal's reason).
 */
export async function writeFile(
  dest: string,
  e: Entry,
  source: () => Promise<ReadableStream<Uint8Array>>,
  opts: WriteOptions,
): Promise<number> {
  const { tmp, file } = createTemp(dest.slice(0, dest.lastIndexOf("/")));
  let done = false;
  try {
    const n = await copyChecked(file, e, source, opts.signal);
    opts.signal?.throwIfAborted();
    finish(file, tmp, dest, e, opts);
    done = true;
    return n;
  } finally {
    if (!done) drop(file, tmp);
  }
}

/**
 * Writes entry `e` at `dest` from `data`, its whole content, already checked against `e.md5`:
 * with synchronous calls (a small file's asynchronous ones cost more than the work).
 */
export function writeSmallFile(dest: string, e: Entry, data: Uint8Array, opts: WriteOptions) {
  const { tmp, file } = createTemp(dest.slice(0, dest.lastIndexOf("/")));
  let done = false;
  try {
    try {
      for (let off = 0; off < data.length;) off += file.writeSync(data.subarray(off));
    } catch (err) {
      throw new TargetError(`cannot write: ${messageOf(err)}`, { cause: err });
    }
    finish(file, tmp, dest, e, opts);
    done = true;
    return data.length;
  } finally {
    if (!done) drop(file, tmp);
  }
}

/** Owner, mode and mtime of the written temp file, then its move to `dest`; closes `file`. */
function finish(file: Deno.FsFile, tmp: string, dest: string, e: Entry, opts: WriteOptions) {
  try {
    opts.attrs.ownerSync(tmp, e);
    chmodSyncWhereSupported(tmp, e.mode);
    const t = timeOf(e);
    if (t !== null) file.utimeSync(t, t);
  } catch (err) {
    opts.warn(`cannot set owner/mode/mtime: ${messageOf(err)}`);
  }
  file.close();
  place(tmp, dest, opts);
}

/** Moves `tmp` to `dest`, an empty directory there removed first. */
function place(tmp: string, dest: string, opts: WriteOptions): void {
  if (opts.existing?.isDirectory) {
    try {
      Deno.removeSync(dest);
    } catch {
      throw new TargetError("exists and is a non-empty directory: not replaced");
    }
    opts.onRemoved();
  }
  try {
    Deno.renameSync(tmp, dest);
  } catch (err) {
    throw new TargetError(`cannot move the file into place: ${messageOf(err)}`);
  }
}

/**
 * Makes `dest` a hard link of `src`, a file restored already (FORMAT.md §5.3, `h` entries):
 * linked under a temporary name, then moved into place. Where the file system refuses the link
 * (another file system, none of them: FAT, some network shares) `dest` becomes a copy of `src`
 * with `e`'s attributes. Says which; throws TargetError.
 */
export function linkFile(src: string, dest: string, e: Entry, opts: WriteOptions) {
  const dir = dest.slice(0, dest.lastIndexOf("/"));
  const tmp = `${dir}/${TEMP_PREFIX}${randomHex(6)}.tmp`;
  try {
    Deno.linkSync(src, tmp);
  } catch {
    const { tmp, file } = createTemp(dir);
    file.close();
    let copy = file, done = false;
    try {
      Deno.copyFileSync(src, tmp);
      copy = Deno.openSync(tmp, { write: true });
      finish(copy, tmp, dest, e, opts);
      done = true;
      return "copied";
    } catch (err) {
      throw err instanceof TargetError ? err : new TargetError(`cannot copy: ${messageOf(err)}`);
    } finally {
      if (!done) drop(copy, tmp);
    }
  }
  try {
    place(tmp, dest, opts);
  } catch (err) {
    drop(null, tmp);
    throw err;
  }
  return "linked";
}

/** After a failure: the temp file closed (if it is not) and removed. */
function drop(file: Deno.FsFile | null, tmp: string): void {
  try {
    file?.close();
  } catch { /* closed */ }
  try {
    Deno.removeSync(tmp);
  } catch { /* gone */ }
}

/** Zero runs at least this long are not written but seeked over: the file gets a hole. */
const HOLE = 4096;

/**
 * Writes `data` at `file`'s position, except its runs of zeros of HOLE bytes or more, which it
 * seeks over: in a new file they read back as zeros and take no space (a sparse VM image or
 * database file restores about as large as its data, not its apparent size). The caller sets
 * the final length (truncate), in case the file ends in a hole.
 */
async function writeSparse(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let from = 0; // the start of what is still to write
  for (let at = 0; at + HOLE <= data.length;) {
    if (!isZero(data, at, HOLE)) {
      at += HOLE;
      continue;
    }
    let end = at + HOLE;
    while (end + HOLE <= data.length && isZero(data, end, HOLE)) end += HOLE;
    await writeAll(file, data.subarray(from, at));
    await file.seek(end - at, Deno.SeekMode.Current);
    from = at = end;
  }
  await writeAll(file, data.subarray(from));
}

/** Whether `n` bytes of `data` from `at` are all zero (by 32-bit words where aligned). */
function isZero(data: Uint8Array, at: number, n: number): boolean {
  const off = data.byteOffset + at;
  if (off % 4 === 0 && n % 4 === 0) {
    const words = new Uint32Array(data.buffer, off, n / 4);
    for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
    return true;
  }
  for (let i = at; i < at + n; i++) if (data[i] !== 0) return false;
  return true;
}

/** Streams `source` into `file`, hashing; throws ObjectError unless the MD5 is `e.md5`. */
async function copyChecked(
  file: Deno.FsFile,
  e: Entry,
  source: () => Promise<ReadableStream<Uint8Array>>,
  signal?: AbortSignal,
): Promise<number> {
  const h = createHash("md5");
  let n = 0;
  let stream: ReadableStream<Uint8Array>;
  try {
    stream = await source();
  } catch (err) {
    if (err instanceof ObjectError || err instanceof ObjectArchivedError) throw err;
    throw new ObjectError(`cannot read ${e.md5}: ${messageOf(err)}`, { cause: err });
  }
  const reader = stream.getReader();
  let done = false;
  try {
    while (true) {
      signal?.throwIfAborted();
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (err instanceof ObjectError) throw err;
        throw new ObjectError(
          err instanceof CorruptDataError
            ? `object ${e.md5} does not decrypt (corrupt object)`
            : `cannot read object ${e.md5}: ${messageOf(err)}`,
          { cause: err },
        );
      }
      if (r.done) {
        done = true;
        break;
      }
      h.update(r.value);
      n += r.value.length;
      try {
        await writeSparse(file, r.value);
      } catch (err) {
        throw new TargetError(`cannot write: ${messageOf(err)}`, { cause: err });
      }
    }
    try {
      await file.truncate(n); // a file that ends in a hole gets its length so
    } catch (err) {
      throw new TargetError(`cannot write: ${messageOf(err)}`, { cause: err });
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  if (h.digest("hex") !== e.md5) {
    throw new ObjectError(`MD5 mismatch for object ${e.md5} (corrupt object)`);
  }
  return n;
}
