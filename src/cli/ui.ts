/**
 * The terminal side: listens to engine events, prints progress, warnings and summaries. The
 * engine never prints; this is the only module (with main.ts) that writes to stdout/stderr.
 */
import { escapeText } from "../format/escape.ts";
import type { BackupEvent, BackupPhase, BackupSummary } from "../ops/backup/backup.ts";
import type { PasswdSummary } from "../ops/change_password.ts";
import type { Change, Found, Stats } from "../ops/browse.ts";
import type { KitCheck } from "../ops/kit_check.ts";
import type { Entry } from "../format/meta.ts";
import type { BackupInfo } from "../ops/list.ts";
import type { PruneEvent, PruneSummary } from "../ops/prune/prune.ts";
import type { RestoreEvent, RestoreSummary } from "../ops/restore/restore.ts";
import type { VerifyEvent, VerifySummary } from "../ops/verify.ts";
import { type ThawEvent, thawTime } from "../repo/thaw.ts";
import { OutputClosedError } from "../util/errors.ts";
import type { LogFile } from "./log_file.ts";
import { formatBytes, ProgressLine } from "./progress_line.ts";
import { formatDuration } from "./values.ts";

const te = new TextEncoder();

export { formatBytes };

/** An mtime as ISO 8601, `-` where the meta does not record it (format 1). */
function isoTime(ms: number | null): string {
  return ms === null ? "-" : new Date(ms).toISOString();
}

/** An entry as `--json` gives it. */
function entryJson(e: Entry) {
  return {
    type: e.linkTo === undefined ? e.type : "h",
    path: e.path,
    mode: e.mode.toString(8).padStart(4, "0"),
    size: e.size,
    mtime: e.mtimeMs === null ? null : new Date(e.mtimeMs).toISOString(),
    md5: e.md5 ?? null,
    target: e.target ?? e.linkTo ?? null,
  };
}

/** How each phase of a backup is shown. */
const BACKUP_PHASES: Record<BackupPhase, string> = {
  listing: "listing the repository",
  "backing up": "scanning",
  finishing: "writing the meta",
};

/** A path as one printable line. */
export function showPath(p: string): string {
  return escapeText(p);
}

export class Ui {
  readonly #line: ProgressLine;

  constructor(
    readonly opts: {
      cron: boolean;
      simulate: boolean;
      verbose?: boolean;
      /** Only errors: no summary, no warnings, no progress (the exit code tells). */
      quiet?: boolean;
      json?: boolean;
      log?: LogFile;
    },
  ) {
    const terminal = !opts.cron && !opts.quiet && Deno.stderr.isTerminal();
    this.#line = new ProgressLine(terminal);
  }

  /** The run is over (or failed): the progress line goes, and its timer. */
  stop(): void {
    this.#line.stop();
  }

  /** A line on stdout (none with `--json`: the summary is the one output). */
  out(line: string): void {
    if (this.opts.json) return;
    this.opts.log?.line(line); // -q or not: the log keeps every run's lines
    if (!this.opts.quiet) this.#write(line + "\n");
  }

  /** The run's one JSON object (`--json`): `schema` names its shape (README, "--json"). */
  #json(command: string, value: object): void {
    const v: Record<string, unknown> = { schema: `s3backup.${command}.v1`, ...value };
    if (typeof v.durationMs === "number") v.durationMs = Math.round(v.durationMs); // whole ms
    this.#write(JSON.stringify(v) + "\n");
  }

  /** Writes to stdout; a closed stdout (`| head`) stops the run quietly (OutputClosedError). */
  #write(text: string): void {
    this.#line.clear();
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
    this.#line.clear();
    this.opts.log?.line(line);
    Deno.stderr.writeSync(te.encode(line + "\n"));
  }

  warn(message: string): void {
    const line = `s3backup: warning: ${message}`;
    if (this.opts.quiet) this.opts.log?.line(line);
    else this.err(line);
  }

  onBackupEvent = (e: BackupEvent): void => {
    switch (e.type) {
      case "phase":
        // "done", not "read": a file the files cache vouches for is counted, never read.
        this.#line.update({ phase: BACKUP_PHASES[e.phase], verb: "done" }, true);
        break;
      case "walked":
        this.#line.update({ totalFiles: e.files, totalBytes: e.bytes, phase: "reading" }, true);
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
      case "excluded":
        if (this.opts.verbose) {
          const line = `excluded: ${showPath(e.path)} (${e.reason})`;
          if (this.opts.simulate) this.out(line);
          else this.err(line);
        }
        break;
      case "progress":
        this.#line.update({
          filesDone: e.filesDone,
          bytesDone: e.bytesDone,
          extra: `${formatBytes(e.bytesUploaded)} uploaded`,
        });
        break;
    }
  };

  backupSummary(s: BackupSummary): void {
    if (this.opts.json) return this.#json("backup", s);
    const what = s.simulate
      ? "simulated backup (nothing written)"
      : s.unchangedSince !== null
      ? `unchanged since ${s.unchangedSince} (no new meta written)`
      : `backup ${s.metaKey}`;
    const verb = s.simulate ? "would upload" : "uploaded";
    const skipped = s.skipped > 0 ? `, ${s.skipped} skipped` : "";
    const excluded = s.excluded > 0 ? `, ${s.excluded} excluded` : "";
    const cached = s.filesFromCache > 0 ? `, ${s.filesFromCache} unchanged (not read)` : "";
    const notes = aborted(s.uploadsAborted) +
      (s.retentionExtended > 0
        ? `; retention extended on ${plural(s.retentionExtended, "object")}`
        : "");
    this.out(
      `${what}: ${counted(s)}, ${formatBytes(s.bytes)}; ` +
        `${plural(s.newObjects, "new object")}, ${formatBytes(s.bytesUploaded)} ${verb}${cached}` +
        `${excluded}${skipped}${notes}; ` +
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

  /**
   * ls: one line per entry: type, mode, size, mtime, path (-> target for links, => first path
   * for hard links, type h); with -v first
   * the exclude rules the backup was made with (on stderr).
   */
  lsEntries(metaKey: string, entries: Entry[], excludes: string[] = []): void {
    if (this.opts.json) {
      return this.#json("ls", { meta: metaKey, excludes, entries: entries.map(entryJson) });
    }
    if (this.opts.verbose) {
      this.err(`${metaKey}: ${excludes.length === 0 ? "no exclude rules" : "excluded by"}`);
      for (const r of excludes) this.err(`  ${r}`);
    }
    for (const e of entries) {
      const target = e.type === "l"
        ? ` -> ${showPath(e.target ?? "")}`
        : e.linkTo !== undefined
        ? ` => ${showPath(e.linkTo)}`
        : "";
      this.out(
        `${e.linkTo === undefined ? e.type : "h"} ${e.mode.toString(8).padStart(4, "0")} ${
          String(e.size ?? "-").padStart(10)
        } ` +
          `${isoTime(e.mtimeMs)} ${showPath(e.path)}${target}`,
      );
    }
  }

  /** kit --verify: each problem, then one line. */
  kitCheck(c: KitCheck): void {
    if (this.opts.json) return this.#json("kit", c);
    for (const p of c.problems) {
      const why = p.kind === "changed"
        ? "differs from what the backup recorded: do not run it"
        : p.kind === "missing"
        ? "is missing"
        : "is not part of the kit the backup left: do not run it";
      this.err(`s3backup: restore-kit/${p.file} ${why}`);
    }
    this.out(
      c.problems.length === 0
        ? `kit: the ${c.files} files under restore-kit/ are those ${c.metaKey} recorded`
        : `kit: ${c.problems.length} of the kit's files are not those ${c.metaKey} recorded`,
    );
  }

  /** find: the backups that hold a match, newest first. */
  found(found: Found[]): void {
    if (this.opts.json) {
      const hits = found.map((f) => ({
        meta: f.meta.key,
        time: f.meta.time,
        ...entryJson(f.entry),
      }));
      return this.#json("find", { found: hits });
    }
    for (const f of found) {
      this.out(
        `${f.meta.key}\t${f.entry.type}\t${f.entry.size ?? "-"}\t` +
          `${isoTime(f.entry.mtimeMs)}\t${showPath(f.entry.path)}`,
      );
    }
  }

  /** diff: `+ path`, `- path`, `M path (what)`. */
  changes(from: string, to: string, changes: Change[]): void {
    if (this.opts.json) return this.#json("diff", { from, to, changes });
    const sign = { added: "+", removed: "-", changed: "M" };
    for (const c of changes) {
      const what = c.what.length > 0 ? ` (${c.what.join(", ")})` : "";
      this.out(`${sign[c.kind]} ${showPath(c.path)}${what}`);
    }
  }

  stats(s: Stats): void {
    if (this.opts.json) return this.#json("stats", s);
    const ratio = s.bytesDistinct > 0 ? (s.bytesReferenced / s.bytesDistinct).toFixed(2) : "-";
    this.out(`backups: ${s.backups}`);
    this.out(`files over all backups: ${s.files} (${formatBytes(s.bytesReferenced)})`);
    this.out(`distinct contents: ${s.contents} (${formatBytes(s.bytesDistinct)}; dedup ${ratio}x)`);
    this.out(`data objects stored: ${s.objects} (${formatBytes(s.bytesStored)} encrypted)`);
  }

  onRestoreEvent = (e: RestoreEvent): void => {
    switch (e.type) {
      case "start":
        this.#line.update({
          phase: "restoring",
          verb: "restored",
          totalFiles: e.files,
          totalBytes: e.bytes,
          filesDone: 0,
          bytesDone: 0,
        }, true);
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
        this.#line.update({
          filesDone: e.filesDone,
          bytesDone: e.bytesDone,
          extra: `${formatBytes(e.bytesDownloaded)} downloaded`,
        });
        break;
      default:
        this.onThawEvent(e);
    }
  };

  /** When a rerun can expect the archived objects' copies (from the last `archived` event). */
  #thawHint = "a few hours";

  /** Archived objects: what they cost, before they are asked for; then the wait. */
  onThawEvent = (e: ThawEvent): void => {
    if (e.type === "thaw-waiting") {
      // Hours of waiting: said at each look, on the progress line or (cron, a log) as a line.
      const text = `waiting for ${e.pending} archived objects (next look in ` +
        `${Math.round(e.nextMs / 1000)} s)`;
      if (this.#line.enabled) this.#line.update({ phase: text }, true);
      else if (this.opts.quiet) this.opts.log?.line(`s3backup: ${text}`);
      else this.err(`s3backup: ${text}`);
      return;
    }
    this.#thawHint = thawTime(e.request.tier, e.classes);
    const needed = `${plural(e.objects, "object")} needed (${formatBytes(e.bytes)})`;
    const days = plural(e.request.days, "day");
    this.warn(
      `${needed} ${e.objects === 1 ? "is" : "are"} in ${e.classes.join(", ")}: ` +
        `${e.ready} readable, ${e.inProgress} being restored, ${e.toRequest} ` +
        `(${formatBytes(e.toRequestBytes)}) to request now, tier ${e.request.tier}, kept ` +
        `${days} (AWS charges the retrieval per GB and per request, and the ` +
        `copies as standard storage; ready in ${this.#thawHint})`,
    );
  };

  /**
   * Files (restore) or objects (verify, `requested` null) left for a rerun: their archived
   * objects' copies are not ready (exit 7).
   */
  archivedNotice(n: number, requested: number | null): void {
    const what = requested === null
      ? `${plural(n, "archived object")} not read yet: their readable copies are being made`
      : `${plural(n, "file")} not restored yet: ` +
        `their objects are being restored from the archive ` +
        `(${requested} requested by this run)`;
    this.warn(`${what}; run the same command again in ${this.#thawHint}, or use --wait`);
  }

  restoreSummary(s: RestoreSummary): void {
    if (this.opts.json) return this.#json("restore", s);
    const what = s.simulate
      ? `simulated restore of ${s.metaKey} into ${s.target} (nothing written)`
      : `restored ${s.metaKey} into ${s.target}`;
    const full = s.full === null
      ? ""
      : ` (the target's file system is full: free space and run the same command again)`;
    const failed = (s.failed > 0 ? `, ${s.failed} failed${full}` : "") +
      (s.archived > 0 ? `, ${s.archived} waiting for the archive` : "");
    const dl = s.simulate
      ? ""
      : `, ${plural(s.objectsDownloaded, "object")} downloaded (${formatBytes(s.bytesDownloaded)})`;
    this.out(
      `${what}: ${counted(s)}, ${formatBytes(s.bytes)}; ` +
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
      case "read":
        this.#line.update({
          phase: "reading objects",
          unit: "objects",
          filesDone: e.done,
          totalFiles: e.total,
          bytesDone: e.bytes,
          totalBytes: 0,
        });
        break;
      case "archived":
      case "thaw-waiting":
        this.onThawEvent(e);
        break;
    }
  };

  verifySummary(s: VerifySummary): void {
    if (this.opts.json) return this.#json("verify", s);
    const read = !s.readData
      ? ""
      : `; ${s.objectsRead} read and MD5-checked (${formatBytes(s.bytesRead)}${
        s.subset < 1 ? `, a random ${+(s.subset * 100).toFixed(2)}%` : ""
      })`;
    const counts = ([
      [s.keyDamaged ? 1 : 0, "damaged s3backup.key", "damaged s3backup.key"],
      [s.badMetas, "unreadable backup", "unreadable backups"],
      [s.missing, "missing object", "missing objects"],
      [s.badSize, "truncated object", "truncated objects"],
      [s.corrupt, "corrupt object", "corrupt objects"],
      [s.retention?.short ?? 0, "object retained too briefly", "objects retained too briefly"],
    ] as const).filter(([n]) => n > 0).map(([n, one, many]) => `${n} ${n === 1 ? one : many}`);
    const where = s.damagedMetas.length === 0
      ? ""
      : ` in ${s.damagedMetas.length} of ${plural(s.metas, "backup")}`;
    const verdict = s.problems === 0 ? "no problems" : `DAMAGED: ${counts.join(", ")}${where}`;
    const r = s.retention;
    const retained = r === null
      ? ""
      : `; retention of the ${plural(r.objects, "object")} of ${
        plural(r.backups, "recent backup")
      }: ` +
        (r.short === 0
          ? `locked until at least ${r.lockedUntil ?? "-"}`
          : `${r.short} not locked long enough`);
    this.out(
      `verify: ${plural(s.metas, "backup")}, ${plural(s.files, "file")}, ` +
        `${plural(s.objects, "object")}${read}${retained}: ` +
        `${verdict}; ${(s.durationMs / 1000).toFixed(1)}s`,
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
      case "repack":
        if (dryRun || e.reindex) {
          this.out(
            e.reindex
              ? `${
                dryRun ? "would re-index" : "re-indexed"
              } ${e.name} (its indexes did not describe it)`
              : `would repack ${e.name} (${formatBytes(e.unused)} of ${
                formatBytes(e.size)
              } unused)`,
          );
        }
        break;
      case "repack-failed":
        this.warn(`${e.message}; it is left as it is (run verify --read-data)`);
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
      : `${would} ${plural(s.objectsRemoved, "unused object")} (${formatBytes(s.bytesRemoved)})`;
    const young = s.objectsTooYoung > 0
      ? `; ${plural(s.objectsTooYoung, "unused object")} (${formatBytes(s.bytesTooYoung)}) kept, ` +
        `younger than ${formatDuration(s.graceMs)}`
      : "";
    this.out(
      `prune${s.dryRun ? " (dry run, nothing removed)" : ""}: ` +
        `kept ${plural(s.metasKept, "backup")}, ` +
        `${would} ${s.metasRemoved.length}; ${data}${young}` +
        aborted(s.uploadsAborted) +
        (s.packsRepacked > 0
          ? `; ${s.dryRun ? "would repack" : "repacked"} ${plural(s.packsRepacked, "pack")} ` +
            `(${formatBytes(s.bytesRepacked)} ${s.dryRun ? "unused" : "freed"})`
          : "") +
        (s.repackSkipped !== null ? `; no pack repacked: ${s.repackSkipped}` : "") +
        (s.packsDamaged.length > 0 ? `; ${plural(s.packsDamaged.length, "pack")} unreadable` : "") +
        (s.retained.length > 0
          ? `; ${s.retained.length} kept by Object Lock retention (they go once it ends)`
          : "") +
        "; " +
        `${(s.durationMs / 1000).toFixed(1)}s`,
    );
  }

  passwdSummary(s: PasswdSummary): void {
    const backups = plural(s.metas, "backup");
    const what = s.alreadyChanged
      ? "passwd: the new password already opens this repository: nothing to do"
      : s.finishedInterrupted
      ? `passwd: finished an interrupted password change (${backups})`
      : `passwd: password changed; ${backups} re-encrypted, no data object changed` +
        (s.restarted ? " (an interrupted change was started over)" : "");
    this.out(`${what}; ${(s.durationMs / 1000).toFixed(1)}s`);
  }
}

/** `1 file, 0 dirs, 2 links`: a summary's counts of entries. */
function counted(s: { files: number; dirs: number; links: number }): string {
  return `${plural(s.files, "file")}, ${plural(s.dirs, "dir")}, ${plural(s.links, "link")}`;
}

/** The note of a summary on the abandoned multipart uploads it aborted (none: nothing). */
function aborted(n: number): string {
  return n > 0 ? `; ${plural(n, "abandoned multipart upload")} aborted` : "";
}

/** `1 backup`, `2 backups`: a count and its noun, singular where it is one. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
