/**
 * The terminal side: listens to engine events, prints progress, warnings and summaries. The
 * engine never prints; this is the only module (with main.ts) that writes to stdout/stderr.
 */
import type { BackupEvent, BackupSummary } from "./backup.ts";
import { escapeText } from "./escape.ts";
import type { BackupInfo } from "./list.ts";

const te = new TextEncoder();

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** A path as one printable line. */
export function showPath(p: string): string {
  return escapeText(p);
}

export class Ui {
  #progress: boolean;
  #lastDraw = 0;
  #drawn = false;
  #totalFiles = 0;
  #totalBytes = 0;

  constructor(readonly opts: { cron: boolean; simulate: boolean }) {
    this.#progress = !opts.cron && Deno.stderr.isTerminal();
  }

  out(line: string): void {
    this.#clear();
    Deno.stdout.writeSync(te.encode(line + "\n"));
  }

  err(line: string): void {
    this.#clear();
    Deno.stderr.writeSync(te.encode(line + "\n"));
  }

  warn(message: string): void {
    this.err(`s3backup: warning: ${message}`);
  }

  #clear(): void {
    if (this.#drawn) {
      Deno.stderr.writeSync(te.encode("\r\x1b[K"));
      this.#drawn = false;
    }
  }

  onBackupEvent = (e: BackupEvent): void => {
    switch (e.type) {
      case "walked":
        this.#totalFiles = e.files;
        this.#totalBytes = e.bytes;
        break;
      case "warning":
        this.warn(`${showPath(e.path)}: ${e.message}`);
        break;
      case "file":
        if (this.opts.simulate && e.upload) {
          this.out(`would upload: ${showPath(e.path)} (${formatBytes(e.size)})`);
        }
        break;
      case "progress": {
        if (!this.#progress) break;
        const now = performance.now();
        if (now - this.#lastDraw < 100 && e.filesDone < this.#totalFiles) break;
        this.#lastDraw = now;
        const line = `${e.filesDone}/${this.#totalFiles} files, ${formatBytes(e.bytesDone)}/${
          formatBytes(this.#totalBytes)
        } read, ${formatBytes(e.bytesUploaded)} uploaded`;
        Deno.stderr.writeSync(te.encode(`\r\x1b[K${line}`));
        this.#drawn = true;
        break;
      }
    }
  };

  backupSummary(s: BackupSummary): void {
    const what = s.simulate ? "simulated backup (nothing written)" : `backup ${s.metaKey}`;
    const verb = s.simulate ? "would upload" : "uploaded";
    const skipped = s.skipped > 0 ? `, ${s.skipped} skipped` : "";
    this.out(
      `${what}: ${s.files} files, ${s.dirs} dirs, ${s.links} links, ${formatBytes(s.bytes)}; ` +
        `${s.newObjects} new objects, ${formatBytes(s.bytesUploaded)} ${verb}${skipped}; ` +
        `${(s.durationMs / 1000).toFixed(1)}s`,
    );
  }

  backupList(list: BackupInfo[]): void {
    for (const b of list) {
      const cols = [b.key, b.name, b.time.toISOString().replace(".000Z", "Z"), String(b.size)];
      if (b.error !== undefined) cols.push(`(cannot open: ${b.error})`);
      else if (b.files !== undefined) {
        cols.push(`${b.files} files`, `${b.dirs} dirs`, `${b.links} links`, formatBytes(b.bytes!));
      }
      this.out(cols.join("\t"));
    }
  }
}
