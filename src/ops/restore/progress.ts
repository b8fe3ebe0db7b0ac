/** What a restore reports: its events, its summary, and the counts behind both. */
import type { Entry, EntryType } from "../../format/meta.ts";
import type { ThawEvent } from "../../repo/thaw.ts";

export type RestoreAction = "create" | "replace" | "unchanged";

export type RestoreEvent =
  | { type: "start"; files: number; dirs: number; links: number; bytes: number }
  | { type: "warning"; path: string; message: string }
  | { type: "entry"; path: string; entryType: EntryType; action: RestoreAction }
  | { type: "progress"; filesDone: number; bytesDone: number; bytesDownloaded: number }
  | ThawEvent;

export interface RestoreSummary {
  metaKey: string;
  target: string;
  /** Entries restored (written, or already there as they should be). */
  files: number;
  dirs: number;
  links: number;
  bytes: number;
  /** Files that were already in the target with the right content. */
  unchanged: number;
  objectsDownloaded: number;
  /** Encrypted bytes read from the store. */
  bytesDownloaded: number;
  /** Entries not restored (named in warning events until `full`). */
  failed: number;
  /**
   * The first write the target's full file system (or spent quota) refused, "<path>: <why>";
   * from then on no file is written (nor its object fetched) and the entries that fail (for
   * that or any reason) are counted, not named. Null: it did not fill.
   */
  full: string | null;
  /** Files not restored because their object is archived and its copy is not ready yet. */
  archived: number;
  /** Restores of archived objects this run asked for, and their bytes. */
  thawRequested: number;
  thawRequestedBytes: number;
  durationMs: number;
  simulate: boolean;
}

/** The counts of one restore, reported as events as they change. */
export class Progress {
  failed = 0;
  full: string | null = null;
  archived = 0;
  thawRequested = 0;
  thawRequestedBytes = 0;
  files = 0;
  dirs = 0;
  links = 0;
  bytes = 0;
  unchanged = 0;
  /** What was downloaded, from the content layer (set by the engine). */
  downloads: { objectsDownloaded: number; bytesDownloaded: number } = {
    objectsDownloaded: 0,
    bytesDownloaded: 0,
  };
  filesDone = 0;
  bytesDone = 0;

  constructor(readonly onEvent: (e: RestoreEvent) => void) {}

  /**
   * An entry not restored; `full`: because the target's file system is full. Once it is, the
   * entries that fail are counted, not named (see RestoreSummary.full).
   */
  fail(path: string, message: string, full = false): void {
    this.failed++;
    if (this.full !== null) return;
    if (full) this.full = `${path}: ${message}`;
    this.onEvent({ type: "warning", path, message });
  }

  /** Something to know about an entry that was restored. */
  warn(path: string, message: string): void {
    this.onEvent({ type: "warning", path, message });
  }

  /** A file left for a rerun: its archived object's readable copy is not there yet. */
  archivedFile(e: Entry): void {
    this.archived++;
    this.doneFile(e, null);
  }

  entry(path: string, entryType: EntryType, action: RestoreAction): void {
    this.onEvent({ type: "entry", path, entryType, action });
  }

  /** One file entry dealt with: `size` is what it holds now, null when it failed. */
  doneFile(e: Entry, size: number | null): void {
    this.filesDone++;
    this.bytesDone += size ?? e.size ?? 0;
    if (size !== null) {
      this.files++;
      this.bytes += size;
    }
    this.onEvent({
      type: "progress",
      filesDone: this.filesDone,
      bytesDone: this.bytesDone,
      bytesDownloaded: this.downloads.bytesDownloaded,
    });
  }
}
