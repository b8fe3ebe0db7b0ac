/**
 * `--log-file FILE`: the lines a run prints (warnings, summaries, the error it ends with, not
 * the progress display) appended with a timestamp and the command, for cron. The file is
 * created 0600; each line is one append, so runs that share a file do not interleave within
 * a line. No line holds a secret: the lines are those shown on the terminal.
 */
import { UsageError } from "../util/errors.ts";
import { messageOf } from "../util/bytes.ts";

const te = new TextEncoder();

export class LogFile {
  private constructor(readonly path: string, readonly command: string) {}

  /** Opens (creates 0600) `path` for appending; a UsageError when it cannot be. */
  static open(path: string, command: string): LogFile {
    try {
      Deno.writeFileSync(path, new Uint8Array(), { append: true, create: true, mode: 0o600 });
    } catch (err) {
      throw new UsageError(`Cannot write the log file ${path}: ${messageOf(err)}`, {
        cause: err,
      });
    }
    return new LogFile(path, command);
  }

  /** Appends `text` (each of its lines), stamped; a failure to write is not the run's. */
  line(text: string): void {
    const stamp = new Date().toISOString();
    const lines = text.split("\n").map((l) => `${stamp} ${this.command}: ${l}\n`).join("");
    try {
      Deno.writeFileSync(this.path, te.encode(lines), { append: true });
    } catch {
      // the log is a copy of what the terminal shows: losing it must not stop a backup
    }
  }
}
