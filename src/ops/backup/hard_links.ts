/**
 * The hard links of one backup (FORMAT.md §5.1, `h` entries): a regular file with more than one
 * link whose (device, inode) an earlier file of the walk had is recorded as a link to that
 * first path, with its content, and is not read again. Only files with more than one link are
 * remembered: memory grows with the hard-linked inodes, not with the files.
 */
import type { FileResult } from "./file_reader.ts";
import type { WalkItem } from "./walk.ts";

/** A walked file found to be a hard link of `linkOf`, an earlier path. */
export interface LinkOf {
  linkOf: string;
}

export class HardLinks {
  /** `dev:ino` -> the first path (in walk order: set by `firstOf`, which runs in that order). */
  readonly #first = new Map<string, string>();
  /** First path -> its result, once recorded (in walk order too). */
  readonly #results = new Map<string, FileResult>();

  /**
   * The first path of `item`'s inode when an earlier file had it, else null (and `item` is the
   * first, when it has more than one link). Call in walk order.
   */
  firstOf(item: WalkItem): string | null {
    const { nlink, ino, dev } = item.info;
    if (item.type !== "f" || nlink === null || nlink < 2 || ino === null) return null;
    const key = `${dev}:${ino}`;
    const first = this.#first.get(key);
    if (first !== undefined) return first;
    this.#first.set(key, item.path);
    return null;
  }

  /** Keeps what a first path's file was recorded as, for its links. */
  recorded(item: WalkItem, r: FileResult): void {
    const { nlink } = item.info;
    if (nlink !== null && nlink > 1) this.#results.set(item.path, r);
  }

  /** The first path's record (null: it was not recorded: skipped, unreadable). */
  resultOf(first: string): FileResult | null {
    return this.#results.get(first) ?? null;
  }
}
