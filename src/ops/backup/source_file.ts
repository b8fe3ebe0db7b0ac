/**
 * A file of the source folder, opened for reading so that opening can never block: with
 * O_NONBLOCK, a FIFO (or device) swapped in after the walk opens at once and is then refused
 * by the type of the opened descriptor. Reads take explicit positions.
 */
import fs from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

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

export class SourceFile {
  private constructor(readonly handle: FileHandle) {}

  /** Opens `path` for reading; never blocks (see the module doc). */
  static async open(path: string): Promise<SourceFile> {
    return new SourceFile(await open(path, FLAGS));
  }

  async stat(): Promise<FileStat> {
    const s = await this.handle.stat();
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

  /** Reads into `buf` from `position`; 0 at the end. */
  async read(buf: Uint8Array, position: number): Promise<number> {
    return (await this.handle.read(buf, 0, buf.length, position)).bytesRead;
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => {});
  }
}
