/**
 * Writing one file into the target: to a new temporary name in its folder (0600, O_EXCL), its
 * MD5 checked while it streams, owner (as root), mode and mtime set, then renamed into place.
 * Whatever fails, the temporary file is removed. It is written, and its owner and mode set,
 * through the descriptor that created it (fchown, fchmod): as root in a folder another user
 * may write, a symlink that user swaps in for it is never followed (only its mtime is set by
 * path: node's futimes takes float seconds and lands a millisecond early on some).
 */
import { POSIX_MODES } from "../../util/platform.ts";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { promisify } from "node:util";
import type { Entry } from "../../format/meta.ts";
import { messageOf } from "../../util/bytes.ts";
import { CorruptDataError, ObjectArchivedError, S3BackupError } from "../../util/errors.ts";
import { randomHex } from "../../util/random.ts";
import { type Attributes, TEMP_PREFIX, timeOf } from "./target.ts";

const READ_CHUNK = 1024 * 1024;

/** An error about the object (missing, corrupt, download failed), not about the target. */
export class ObjectError extends S3BackupError {}
/** An error writing into the target (the object itself may be fine). */
export class TargetError extends S3BackupError {}

/** A TargetError for `what` that failed with `err` (its cause). */
function targetError(what: string, err: unknown): TargetError {
  return new TargetError(`${what}: ${messageOf(err)}`, { cause: err });
}

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

/** A temporary file being written: its name and descriptor. */
interface Temp {
  tmp: string;
  fd: number;
}

function createTemp(dir: string): Temp {
  for (let i = 0;; i++) {
    const tmp = `${dir}/${TEMP_PREFIX}${randomHex(6)}.tmp`;
    try {
      return { tmp, fd: fs.openSync(tmp, "wx", 0o600) };
    } catch (err) {
      if ((err as { code?: unknown }).code !== "EEXIST" || i > 5) {
        throw targetError("cannot create a temporary file", err);
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
  const t = createTemp(dest.slice(0, dest.lastIndexOf("/")));
  let done = false;
  try {
    const n = await copyChecked(t.fd, e, source, opts.signal);
    opts.signal?.throwIfAborted();
    finish(t, dest, e, opts);
    done = true;
    return n;
  } finally {
    if (!done) drop(t);
  }
}

/**
 * Writes entry `e` at `dest` from `data`, its whole content, already checked against `e.md5`:
 * with synchronous calls (a small file's asynchronous ones cost more than the work).
 */
export function writeSmallFile(dest: string, e: Entry, data: Uint8Array, opts: WriteOptions) {
  const t = createTemp(dest.slice(0, dest.lastIndexOf("/")));
  let done = false;
  try {
    try {
      for (let off = 0; off < data.length;) off += fs.writeSync(t.fd, data, off);
    } catch (err) {
      throw targetError("cannot write", err);
    }
    finish(t, dest, e, opts);
    done = true;
    return data.length;
  } finally {
    if (!done) drop(t);
  }
}

/** Owner, mode and mtime of the written temp file, then its move to `dest`; closes it. */
function finish(t: Temp, dest: string, e: Entry, opts: WriteOptions) {
  try {
    if (opts.attrs.owners && (e.uid !== null || e.gid !== null)) {
      fs.fchownSync(t.fd, e.uid ?? -1, e.gid ?? -1);
    }
    if (POSIX_MODES) fs.fchmodSync(t.fd, e.mode);
    const time = timeOf(e);
    if (time !== null) Deno.utimeSync(t.tmp, time, time); // (node's futimes: float seconds)
  } catch (err) {
    opts.warn(`cannot set owner/mode/mtime: ${messageOf(err)}`);
  }
  fs.closeSync(t.fd);
  t.fd = -1;
  place(t.tmp, dest, opts);
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
    throw targetError("cannot move the file into place", err);
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
    const t = createTemp(dir);
    let done = false;
    try {
      copyInto(src, t.fd);
      finish(t, dest, e, opts);
      done = true;
      return "copied";
    } catch (err) {
      throw err instanceof TargetError ? err : targetError("cannot copy", err);
    } finally {
      if (!done) drop(t);
    }
  }
  try {
    place(tmp, dest, opts);
  } catch (err) {
    drop({ tmp, fd: -1 });
    throw err;
  }
  return "linked";
}

/** Copies file `src` (not through a symlink swapped in for it) into descriptor `fd`. */
function copyInto(src: string, fd: number): void {
  const from = fs.openSync(src, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
  try {
    const buf = new Uint8Array(READ_CHUNK);
    for (let n; (n = fs.readSync(from, buf)) > 0;) {
      for (let off = 0; off < n;) off += fs.writeSync(fd, buf, off, n - off);
    }
  } finally {
    fs.closeSync(from);
  }
}

/** After a failure: the temp file closed (if it is open) and removed. */
function drop(t: Temp): void {
  try {
    if (t.fd >= 0) fs.closeSync(t.fd);
  } catch { /* closed */ }
  t.fd = -1;
  try {
    Deno.removeSync(t.tmp);
  } catch { /* gone */ }
}

/** Zero runs at least this long are not written but skipped: the file gets a hole. */
const HOLE = 4096;

const write = promisify(fs.write);

/** Writes all of `data` at `position` of descriptor `fd`. */
async function writeAt(fd: number, data: Uint8Array, position: number): Promise<void> {
  for (let off = 0; off < data.length;) {
    const { bytesWritten } = await write(fd, data, off, data.length - off, position + off);
    off += bytesWritten;
  }
}

/**
 * Writes `data` at `position` of `fd`, except its runs of zeros of HOLE bytes or more, which
 * it skips: in a new file they read back as zeros and take no space (a sparse VM image or
 * database file restores about as large as its data, not its apparent size). The caller sets
 * the final length (ftruncate), in case the file ends in a hole.
 */
async function writeSparse(fd: number, data: Uint8Array, position: number): Promise<void> {
  let from = 0; // the start of what is still to write
  for (let at = 0; at + HOLE <= data.length;) {
    if (!isZero(data, at, HOLE)) {
      at += HOLE;
      continue;
    }
    let end = at + HOLE;
    while (end + HOLE <= data.length && isZero(data, end, HOLE)) end += HOLE;
    await writeAt(fd, data.subarray(from, at), position + from);
    from = at = end;
  }
  await writeAt(fd, data.subarray(from), position + from);
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
  fd: number,
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
      try {
        await writeSparse(fd, r.value, n);
        n += r.value.length;
      } catch (err) {
        throw targetError("cannot write", err);
      }
    }
    try {
      fs.ftruncateSync(fd, n); // a file that ends in a hole gets its length so
    } catch (err) {
      throw targetError("cannot write", err);
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
