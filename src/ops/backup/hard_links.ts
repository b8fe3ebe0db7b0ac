/**
 * The hard links of one backup (FORMAT.md §5.1, `h` entries): a regular file with more than one
 * link whose (device, inode) an earlier file of the walk had is recorded as a link to that
 * first path, with its content, and is not read again. Only files with more than one link are
 * remembered, each until all its names have gone by: memory grows with the hard-linked files
 * whose other names are outside the backup (one snapshot of a `cp -al` rotation: every file,
 * about 0.3 KiB each), not with the files.
 */
import type { FileResult } from "./file_reader.ts";
import type { WalkItem } from "./walk.ts";

/** A walked file found to be a hard link of `linkOf`, an earlier path (inode `inode`). */
export interface LinkOf {
  linkOf: string;
  inode: string;
}

interface Inode {
  first: string;
  /** The first's record, once emitted (null: not yet, or it was skipped). */
  result: FileResult | null;
  /** Names of it not seen yet. */
  left: number;
}

export class HardLinks {
  /** `dev:ino` of files with more than one link, in walk order (steps and emits are). */
  readonly #inodes = new Map<string, Inode>();

  /** `item`'s inode, when it is a regular file with more than one link; else null. */
  #keyOf(item: WalkItem): string | null {
    const { nlink, ino, dev } = item.info;
    if (item.type !== "f" || nlink === null || nlink < 2 || ino === null) return null;
    return `${dev}:${ino}`;
  }

  /**
   * When an earlier file had `item`'s inode: which (and `item` is recorded from it); else null
   * (and `item`, when it has more than one link, is that inode's first). Call in walk order.
   */
  firstOf(item: WalkItem): LinkOf | null {
    const inode = this.#keyOf(item);
    if (inode === null) return null;
    const known = this.#inodes.get(inode);
    if (known !== undefined) return { linkOf: known.first, inode };
    this.#inodes.set(inode, { first: item.path, result: null, left: item.info.nlink! - 1 });
    return null;
  }

  /** Keeps what a first path's file was recorded as, for its links (call in walk order). */
  recorded(item: WalkItem, r: FileResult): void {
    const inode = this.#keyOf(item);
    const i = inode === null ? undefined : this.#inodes.get(inode);
    if (i !== undefined && i.first === item.path) i.result = r;
  }

  /**
   * The first path's record for a link of it (null: the first was skipped); the inode is
   * forgotten once all its names have gone by.
   */
  take(link: LinkOf): FileResult | null {
    const i = this.#inodes.get(link.inode);
    if (i === undefined) return null;
    if (--i.left <= 0) this.#inodes.delete(link.inode);
    return i.result;
  }
}
