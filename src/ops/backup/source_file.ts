/**
 * A file of the source folder, opened for reading so that opening can never block: with
 * O_NONBLOCK, a FIFO (or device) swapped in after the walk opens at once and is then refused
 * by the type of the opened descriptor. Reads take explicit positions.
 */
import fs from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { messageOf } from "../../util/bytes.ts";

/** What the backup needs of a file's status (times in whole ms, as Deno.FileInfo has them). */
export interface FileStat {
  isFile: boolean;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  mode: number;
  uid: number;
  gid: number;
}

const FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

/** The same facts from a walk's lstat (null fields: unknown on this platform, never a match). */
export function statOf(info: Deno.FileInfo): FileStat {
  return {
    isFile: info.isFile,
    size: info.size,
    mtimeMs: info.mtime?.getTime() ?? NaN,
    ctimeMs: info.ctime?.getTime() ?? NaN,
    ino: info.ino ?? NaN,
    dev: info.dev ?? NaN,
    mode: info.mode ?? 0o644,
    uid: info.uid ?? 0,
    gid: info.gid ?? 0,
  };
}

function statFromNode(s: fs.Stats): FileStat {
  return {
    isFile: s.isFile(),
    size: s.size,
    mtimeMs: Math.floor(s.mtimeMs), // whole ms, as Deno.FileInfo and the meta have them
    ctimeMs: Math.floor(s.ctimeMs),
    ino: s.ino,
    dev: s.dev,
    mode: s.mode,
    uid: s.uid,
    gid: s.gid,
  };
}

/** The file could not be opened (the cause says why). */
export class CannotOpenError extends Error {}

/** Opens `path` for synchronous reads (never blocking: see the module doc). */
function openSync(path: string): number {
  try {
    return fs.openSync(path, FLAGS);
  } catch (err) {
    throw new CannotOpenError(messageOf(err), { cause: err });
  }
}

/** Reads `fd` from its start into `data` until it is full or the file ends: the bytes read. */
function readSync(fd: number, data: Uint8Array): number {
  let read = 0;
  while (read < data.length) {
    const n = fs.readSync(fd, data, read, data.length - read, read);
    if (n === 0) break;
    read += n;
  }
  return read;
}

export class SourceFile {
  private constructor(readonly handle: FileHandle) {}

  /**
   * A small regular file read whole with synchronous calls, about 5x cheaper than the five
   * asynchronous ones for a file in the page cache: its content and its status after the read.
   * Null when it is no longer a regular file or is now bigger than `limit` (read it as a stream);
   * FileChangedError-worthy differences are the caller's to judge from `before` and `after`.
   */
  static readWholeSync(
    path: string,
    limit: number,
  ): { data: Uint8Array; read: number; before: FileStat; after: FileStat } | null {
    const fd = openSync(path);
    try {
      const before = statFromNode(fs.fstatSync(fd));
      if (!before.isFile || before.size > limit) return null;
      const data = new Uint8Array(before.size);
      const read = readSync(fd, data);
      return { data, read, before, after: statFromNode(fs.fstatSync(fd)) };
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * A small file as the walk saw it (`walked`, its lstat), without readWholeSync's two status
   * calls on the descriptor (each ~6 µs and 5 KiB of garbage in Deno's node:fs): read into a
   * buffer one byte larger than it was, it is taken when its path, looked at again after the
   * read (an lstat: 2 µs), is still a regular file of that size, mtime and inode. The file read
   * is open meanwhile, so its inode cannot be another's: a file swapped in at the path since the
   * walk fails the match (only swapped out and back around the open could pass, which a writer
   * of the folder gains nothing by: it can write the file itself). Null otherwise (and when
   * reading fails: a FIFO swapped in says EAGAIN), for readWholeSync to judge.
   */
  static readAsWalkedSync(
    path: string,
    walked: FileStat,
  ): { data: Uint8Array; after: FileStat } | null {
    const fd = openSync(path);
    try {
      // One read: a short one is the file's end (a regular file's read is short only there), or
      // a file system's short read, which the match below refuses (read !== walked.size).
      const room = new Uint8Array(walked.size + 1);
      const read = fs.readSync(fd, room, 0, room.length, 0);
      const after = statOf(Deno.lstatSync(path));
      const same = after.isFile && read === walked.size && after.size === walked.size &&
        after.mtimeMs === walked.mtimeMs && after.ino === walked.ino;
      return same ? { data: room.subarray(0, read), after } : null;
    } catch {
      return null;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Opens `path` for reading; never blocks (see the module doc). */
  static async open(path: string): Promise<SourceFile> {
    try {
      return new SourceFile(await open(path, FLAGS));
    } catch (err) {
      throw new CannotOpenError(messageOf(err), { cause: err });
    }
  }

  async stat(): Promise<FileStat> {
    return statFromNode(await this.handle.stat());
  }

  /** Reads into `buf` from `position`; 0 at the end. */
  async read(buf: Uint8Array, position: number): Promise<number> {
    return (await this.handle.read(buf, 0, buf.length, position)).bytesRead;
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => {});
  }
}
