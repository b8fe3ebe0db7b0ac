/**
 * The terminal side: listens to engine events, prints progress, warnings and summaries. The
 * engine never prints; this is the only module (with main.ts) that writes to stdout/stderr.
 */
import { escapeText } from "../format/escape.ts";
import type { BackupEvent, BackupSummary } from "../ops/backup/backup.ts";
import type { PasswdSummary } from "../ops/change_password.ts";
import type { BackupInfo } from "../ops/list.ts";
import type { PruneEvent, PruneSummary } from "../ops/prune.ts";
import type { RestoreEvent, RestoreSummary } from "../ops/restore/restore.ts";
import type { VerifyEvent, VerifySummary } from "../ops/verify.ts";
import { OutputClosedError } from "../util/errors.ts";
import type { LogFile } from "./log_file.ts";
import { formatDuration } from "./values.ts";

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
  /** null while a backup still walks: the totals are known when the walk ends. */
  #totalFiles: number | null = null;
  #totalBytes = 0;

  constructor(
    readonly opts: {
      cron: boolean;
      simulate: boolean;
      verbose?: boolean;
      json?: boolean;
      log?: LogFile;
    },
  ) {
    this.#progress = !opts.cron && Deno.stderr.isTerminal();
  }

  /** A line on stdout (none with `--json`: the summary is the one output). */
  out(line: string): void {
    if (this.opts.json) return;
    this.opts.log?.line(line);
    this.#write(line + "\n");
  }

  /** The run's one JSON object (`--json`): `schema` names its shape (README, "--json"). */
  #json(command: string, value: object): void {
    this.#write(JSON.stringify({ schema: `s3backup.${command}.v1`, ...value }) + "\n");
  }

  /** Writes to stdout; a closed stdout (`| head`) stops the run quietly (OutputClosedError). */
  #write(text: string): void {
    this.#clear();
    const bytes = te.encode(text);
    try {
      for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
    } catch (err) {
      if (err instanceof Deno.errors.BrokenPipe) {
        throw new OutputClosedError("standard output was closed", { cause: err });
      }
      throw err;
    }
  }

  err(line: string): void {
    this.#clear();
    this.opts.log?.line(line);
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

  /** One progress line on a terminal, redrawn at most 10 times a second. */
  #drawProgress(filesDone: number, bytesDone: number, verb: string, extra: string): void {
    if (!this.#progress) return;
    const now = performance.now();
    const total = this.#totalFiles;
    if (now - this.#lastDraw < 100 && (total === null || filesDone < total)) return;
    this.#lastDraw = now;
    const line = total === null
      ? `${filesDone} files, ${formatBytes(bytesDone)} ${verb} (still walking), ${extra}`
      : `${filesDone}/${total} files, ${formatBytes(bytesDone)}/${
        formatBytes(this.#totalBytes)
      } ${verb}, ${extra}`;
    Deno.stderr.writeSync(te.encode(`\r\x1b[K${line}`));
    this.#drawn = true;
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
        } else if (this.opts.verbose && e.upload) {
          this.err(`uploaded: ${showPath(e.path)} (${formatBytes(e.size)})`);
        }
        break;
      case "progress":
        this.#drawProgress(
          e.filesDone,
          e.bytesDone,
          "read",
          `${formatBytes(e.bytesUploaded)} uploaded`,
        );
        break;
    }
  };

  backupSummary(s: BackupSummary): void {
    if (this.opts.json) return this.#json("backup", s);
    const what = s.simulate ? "simulated backup (nothing written)" : `backup ${s.metaKey}`;
    const verb = s.simulate ? "would upload" : "uploaded";
    const skipped = s.skipped > 0 ? `, ${s.skipped} skipped` : "";
    const cached = s.filesFromCache > 0 ? `, ${s.filesFromCache} unchanged (not read)` : "";
    const aborted = s.uploadsAborted > 0
      ? `; ${s.uploadsAborted} abandoned multipart uploads aborted`
      : "";
    this.out(
      `${what}: ${s.files} files, ${s.dirs} dirs, ${s.links} links, ${formatBytes(s.bytes)}; ` +
        `${s.newObjects} new objects, ${formatBytes(s.bytesUploaded)} ${verb}${cached}` +
        `${skipped}${aborted}; ` +
        `${(s.durationMs / 1000).toFixed(1)}s`,
    );
  }

  /**
   * The backups: on a terminal a header and aligned columns; else (or `tsv`) tab-separated
   * values without a header: meta, name, time, host, folder, files, dirs, links, bytes (the
   * last six empty when the meta was not opened), and why it could not be when it could not.
   */
  backupList(list: BackupInfo[], opts: { tsv: boolean }): void {
    if (this.opts.json) {
      const backups = list.map((b) => ({
        meta: b.key,
        name: b.name,
        time: b.time.toISOString(),
        metaSize: b.size,
        host: b.host ?? null,
        source: b.source ?? null,
        files: b.files ?? null,
        dirs: b.dirs ?? null,
        links: b.links ?? null,
        bytes: b.bytes ?? null,
        error: b.error ?? null,
      }));
      return this.#json("list", { backups });
    }
    const rows = list.map((b) => {
      const known = b.files !== undefined;
      const n = (x: number | undefined) => (known && x !== undefined ? String(x) : "");
      const row = [
        b.key,
        b.name,
        b.time.toISOString().replace(".000Z", "Z"),
        b.host ?? "",
        b.source ?? "",
        n(b.files),
        n(b.dirs),
        n(b.links),
        opts.tsv ? n(b.bytes) : (known && b.bytes !== undefined ? formatBytes(b.bytes) : ""),
      ].map((c) => showPath(c));
      if (b.error !== undefined) row.push(`cannot open: ${b.error}`);
      return row;
    });
    if (opts.tsv) {
      for (const r of rows) this.out(r.join("\t"));
      return;
    }
    if (rows.length === 0) return;
    const head = ["META", "NAME", "TIME", "HOST", "FOLDER", "FILES", "DIRS", "LINKS", "SIZE"];
    const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) =>
      r.map((c, i) => (i >= 5 && i < 9 ? c.padStart(width[i]!) : c.padEnd(width[i] ?? 0)))
        .join("  ").trimEnd();
    this.out(line(head));
    for (const r of rows) this.out(line(r));
  }

  onRestoreEvent = (e: RestoreEvent): void => {
    switch (e.type) {
      case "start":
        this.#totalFiles = e.files;
        this.#totalBytes = e.bytes;
        break;
      case "warning":
        this.warn(`${showPath(e.path)}: ${e.message}`);
        break;
      case "entry":
        if (this.opts.simulate && e.action !== "unchanged") {
          const what = e.entryType === "d" ? "dir" : e.entryType === "l" ? "link" : "file";
          this.out(`would ${e.action} ${what}: ${showPath(e.path)}`);
        }
        break;
      case "progress":
        this.#drawProgress(
          e.filesDone,
          e.bytesDone,
          "restored",
          `${formatBytes(e.bytesDownloaded)} downloaded`,
        );
        break;
    }
  };

  restoreSummary(s: RestoreSummary): void {
    if (this.opts.json) return this.#json("restore", s);
    const what = s.simulate
      ? `simulated restore of ${s.metaKey} into ${s.target} (nothing written)`
      : `restored ${s.metaKey} into ${s.target}`;
    const failed = s.failed > 0 ? `, ${s.failed} failed` : "";
    const dl = s.simulate
      ? ""
      : `, ${s.objectsDownloaded} objects downloaded (${formatBytes(s.bytesDownloaded)})`;
    this.out(
      `${what}: ${s.files} files, ${s.dirs} dirs, ${s.links} links, ${formatBytes(s.bytes)}; ` +
        `${s.unchanged} unchanged${dl}${failed}; ${(s.durationMs / 1000).toFixed(1)}s`,
    );
  }

  onVerifyEvent = (e: VerifyEvent): void => {
    switch (e.type) {
      case "problem": {
        const p = e.problem;
        const where = p.path !== undefined ? `: ${showPath(p.path)}` : "";
        const obj = p.object !== undefined ? ` (object ${p.object})` : "";
        this.err(`s3backup: ${p.meta}${where}${obj}: ${p.message}`);
        break;
      }
      case "read": {
        if (!this.#progress) break;
        const now = performance.now();
        if (now - this.#lastDraw < 100 && e.done < e.total) break;
        this.#lastDraw = now;
        Deno.stderr.writeSync(
          te.encode(`\r\x1b[K${e.done}/${e.total} objects read, ${formatBytes(e.bytes)}`),
        );
        this.#drawn = true;
        break;
      }
    }
  };

  verifySummary(s: VerifySummary): void {
    if (this.opts.json) return this.#json("verify", s);
    const read = !s.readData
      ? ""
      : `; ${s.objectsRead} read and MD5-checked (${formatBytes(s.bytesRead)}${
        s.subset < 1 ? `, a random ${+(s.subset * 100).toFixed(2)}%` : ""
      })`;
    const counts = [
      [s.badMetas, "unreadable backup"],
      [s.missing, "missing object"],
      [s.badSize, "truncated object"],
      [s.corrupt, "corrupt object"],
    ].filter(([n]) => (n as number) > 0).map(([n, w]) => `${n} ${w}${n === 1 ? "" : "s"}`);
    const verdict = s.problems === 0
      ? "no problems"
      : `DAMAGED: ${counts.join(", ")} in ${s.damagedMetas.length} of ${s.metas} backups`;
    this.out(
      `verify: ${s.metas} backups, ${s.files} files, ${s.objects} objects${read}: ${verdict}; ` +
        `${(s.durationMs / 1000).toFixed(1)}s`,
    );
  }

  /** Prune's event handler; a dry run lists every meta and object, a real one the metas. */
  pruneEvents = (dryRun: boolean) => (e: PruneEvent): void => {
    if (this.opts.cron) return;
    const would = dryRun ? "would remove" : "removed";
    switch (e.type) {
      case "meta":
        if (e.decision.keep) {
          if (dryRun) {
            this.out(`keep ${e.decision.meta.key} (${e.decision.reasons.join(", ")})`);
          }
        } else this.out(`${would} ${e.decision.meta.key}`);
        break;
      case "object":
        if (dryRun) this.out(`${would} ${e.name} (${formatBytes(e.size)})`);
        break;
      case "backups-running":
        this.warn(
          `a backup is running (${
            e.locks.map((l) => `${l.host} pid ${l.pid}`).join(", ")
          }): no data object removed; run prune again later`,
        );
        break;
    }
  };

  pruneSummary(s: PruneSummary): void {
    if (this.opts.json) return this.#json("prune", s);
    const would = s.dryRun ? "would remove" : "removed";
    const data = s.dataSkipped
      ? "no data object removed (a backup is running)"
      : `${would} ${s.objectsRemoved} unused objects (${formatBytes(s.bytesRemoved)})`;
    const young = s.objectsTooYoung > 0
      ? `; ${s.objectsTooYoung} unused objects (${formatBytes(s.bytesTooYoung)}) kept, ` +
        `younger than ${formatDuration(s.graceMs)}`
      : "";
    this.out(
      `prune${s.dryRun ? " (dry run, nothing removed)" : ""}: kept ${s.metasKept} backups, ` +
        `${would} ${s.metasRemoved.length}; ${data}${young}` +
        (s.uploadsAborted > 0 ? `; ${s.uploadsAborted} abandoned multipart uploads aborted` : "") +
        "; " +
        `${(s.durationMs / 1000).toFixed(1)}s`,
    );
  }

  passwdSummary(s: PasswdSummary): void {
    const what = s.alreadyChanged
      ? "passwd: the new password already opens this repository: nothing to do"
      : s.finishedInterrupted
      ? `passwd: finished an interrupted password change (${s.metas} backups)`
      : `passwd: password changed; ${s.metas} backups re-encrypted, no data object changed` +
        (s.restarted ? " (an interrupted change was started over)" : "");
    this.out(`${what}; ${(s.durationMs / 1000).toFixed(1)}s`);
  }
}
