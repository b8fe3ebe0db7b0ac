/**
 * A stream backed up as one file (`backup --stdin`, `--stdin-from-command`, restic's names).
 * Contents are named by their MD5, known only at the stream's end, so the stream is first
 * written whole to a 0600 file in a 0700 folder of its own, `s3backup-stdin-<pid>-<random>`
 * (under `<cache folder>/stdin`, else the system's temporary folder); that folder is then backed
 * up as any source is, read in bounded chunks, and removed at the end. It needs the stream's size
 * of free disk there, for the run. A folder that a killed run left (its process gone) is removed
 * by the next backup that spools.
 *
 * A command runs without a shell (its argv as given), standard input closed, its standard error
 * ours; its output is the stream. The backup fails, before anything is stored, when the command
 * cannot start, exits non-zero or is killed: a failed dump never becomes a backup (restic #4251).
 */
import { join } from "node:path";
import { sweepDeadSpools } from "../../repo/meta_spool.ts";
import { messageOf } from "../../util/bytes.ts";
import { S3BackupError, UsageError } from "../../util/errors.ts";
import { chmodWhereSupported } from "../../util/platform.ts";

const SPOOL_PREFIX = "s3backup-stdin-";

/** The command of `--stdin-from-command` could not run, or did not succeed. */
export class CommandFailedError extends S3BackupError {}

export interface StreamSpool {
  /** The folder to back up: it holds the stream, and nothing else. */
  dir: string;
  remove(): Promise<void>;
}

/** A command's program, by its base name (`/usr/bin/pg_dump`: pg_dump). */
export function commandName(argv: string[]): string {
  const base = (argv[0] ?? "").split(/[\\/]/).pop() ?? "";
  return base === "" || base === "." || base === ".." ? "command" : base;
}

/** The file name of a command's output: its program's name and `.out` (pg_dump.out). */
export function commandFilename(argv: string[]): string {
  return `${commandName(argv)}.out`;
}

/** A folder of its own for a stream, under `parent` (created 0700) or the temporary folder. */
async function spoolDir(parent: string | null): Promise<string> {
  try {
    if (parent !== null) {
      await Deno.mkdir(parent, { recursive: true, mode: 0o700 });
      sweepDeadSpools(parent, SPOOL_PREFIX);
    }
    const prefix = `${SPOOL_PREFIX}${Deno.pid}-`;
    const dir = await Deno.makeTempDir(parent === null ? { prefix } : { dir: parent, prefix });
    await chmodWhereSupported(dir, 0o700);
    return dir;
  } catch (err) {
    const where = parent ?? "the temporary folder (TMPDIR)";
    throw new S3BackupError(`Cannot spool the stream in ${where}: ${messageOf(err)}`, {
      cause: err,
    });
  }
}

/**
 * Writes `input` to `<new spool folder>/<name>`; `after` (a command's end) is awaited once the
 * input ends, and may throw. The folder is removed when anything fails.
 */
async function spool(
  parent: string | null,
  name: string,
  input: ReadableStream<Uint8Array>,
  after: () => Promise<void>,
  signal?: AbortSignal,
): Promise<StreamSpool> {
  const dir = await spoolDir(parent);
  const remove = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  try {
    const path = join(dir, name);
    const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    try {
      await input.pipeTo(file.writable, signal ? { signal } : {});
    } catch (err) {
      signal?.throwIfAborted();
      throw new S3BackupError(`Cannot spool the stream to ${path}: ${messageOf(err)}`, {
        cause: err,
      });
    }
    await after();
    return { dir, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

/** Spools standard input (`--stdin`); a terminal there is refused (nothing was piped in). */
export function spoolStdin(
  parent: string | null,
  name: string,
  signal?: AbortSignal,
): Promise<StreamSpool> {
  if (Deno.stdin.isTerminal()) {
    throw new UsageError("--stdin: standard input is a terminal: pipe the stream in");
  }
  return spool(parent, name, Deno.stdin.readable, () => Promise.resolve(), signal);
}

/** How a finished command ended, in words: `exit status 3`, `signal SIGKILL`. */
function endOf(status: Deno.CommandStatus): string {
  return status.signal !== null ? `signal ${status.signal}` : `exit status ${status.code}`;
}

/**
 * Spools the output of `argv` (`--stdin-from-command`), then checks how it ended: anything but
 * exit status 0 is CommandFailedError, naming the command and its status. On `signal` (our
 * SIGINT, SIGTERM) the command gets SIGTERM.
 */
export async function spoolCommand(
  parent: string | null,
  name: string,
  argv: string[],
  signal?: AbortSignal,
): Promise<StreamSpool> {
  const program = argv[0]!;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
  } catch (err) {
    throw new CommandFailedError(`Cannot run ${program}: ${messageOf(err)}`, { cause: err });
  }
  const stop = () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
  };
  signal?.addEventListener("abort", stop, { once: true });
  try {
    return await spool(parent, name, child.stdout, async () => {
      const status = await child.status;
      if (!status.success) {
        throw new CommandFailedError(
          `${program} ended with ${endOf(status)}: no backup written`,
        );
      }
    }, signal);
  } catch (err) {
    stop();
    await child.status;
    throw err;
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}
