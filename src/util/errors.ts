/**
 * The few named errors of s3backup and the one table of exit codes.
 *
 * The engine throws these (never prints, never exits); `main.ts` maps them to an exit code
 * and one line on stderr.
 */

/** Exit codes: the one documented table (README.md "Exit codes"). */
export const ExitCode = {
  ok: 0,
  error: 1,
  usage: 2,
  partial: 3,
  wrongPassword: 4,
  repositoryNotFound: 5,
  /** Another writer holds the repository (a prune, a password change): nothing was done. */
  locked: 6,
  /** Archived objects (GLACIER, DEEP_ARCHIVE) were asked to be restored: run again later. */
  archived: 7,
  interrupted: 130,
  /** Standard output was closed (`| head`): the run stops quietly, as on SIGPIPE. */
  outputClosed: 141,
  terminated: 143,
} as const;
export type ExitCode = typeof ExitCode[keyof typeof ExitCode];

/** Base class: an error whose message is fit to show a user as one line. */
export class S3BackupError extends Error {
  readonly exitCode: ExitCode = ExitCode.error;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad command line, bad config file, missing password in a non-interactive run. */
export class UsageError extends S3BackupError {
  override readonly exitCode = ExitCode.usage;
}

/** The password does not open the repository key (or a meta file). */
export class WrongPasswordError extends S3BackupError {
  override readonly exitCode = ExitCode.wrongPassword;
}

/** The bucket or local repository directory does not exist. */
export class RepositoryNotFoundError extends S3BackupError {
  override readonly exitCode = ExitCode.repositoryNotFound;
}

/** An object that should be in the store is not. */
export class ObjectNotFoundError extends S3BackupError {
  constructor(readonly objectName: string, options?: ErrorOptions) {
    super(`Object not found: ${objectName}`, options);
  }
}

/** An object in an archive storage class (GLACIER, DEEP_ARCHIVE) without a readable copy. */
export class ObjectArchivedError extends S3BackupError {
  constructor(readonly objectName: string, options?: ErrorOptions) {
    super(`Object ${objectName} is archived: it must be restored before it can be read`, options);
  }
}

/** Data read back does not match what the format promises (bad MD5, truncated meta, ...). */
export class CorruptDataError extends S3BackupError {}

/** A save with `ifAbsent` found the object already there; nothing was written. */
export class ObjectExistsError extends S3BackupError {
  constructor(readonly objectName: string, options?: ErrorOptions) {
    super(`Object exists already: ${objectName}`, options);
  }
}

/** The user interrupted (Ctrl-C at a prompt). */
export class InterruptedError extends S3BackupError {
  override readonly exitCode = ExitCode.interrupted;
}

/** Standard output was closed under the run (`s3backup list | head -1`). */
export class OutputClosedError extends S3BackupError {
  override readonly exitCode = ExitCode.outputClosed;
}

/** A file changed while it was being read; its content was not stored. */
export class FileChangedError extends S3BackupError {}

/**
 * The store does not answer, cannot be reached, or refuses this client's credentials, after
 * every retry: any other request would fail alike (a restore stops at it instead of naming
 * each file it then cannot fetch).
 */
export class StoreUnavailableError extends S3BackupError {
  /** When the same command may succeed: for a restore's last line. */
  get retryWhen(): string {
    return "once the store answers";
  }
}

/** The store refuses this client's credentials (unknown key, wrong secret, expired token). */
export class CredentialsRefusedError extends StoreUnavailableError {
  override get retryWhen(): string {
    return "with credentials the store accepts";
  }
}

/**
 * Throws the StoreUnavailableError that `err` is or was caused by, if any: a run that reads
 * many objects stops at it (it is no damage of the object asked for, and the next would fail
 * alike, after as long a wait).
 */
export function throwIfUnavailable(err: unknown): void {
  const down = causeOf(err, StoreUnavailableError);
  if (down !== null) throw down;
}

/**
 * Whether `err`, or an error that caused it, says a file system is full (ENOSPC) or its quota
 * spent (EDQUOT): no later write there can succeed either.
 */
export function isFull(err: unknown): boolean {
  const full = (e: object) => ["ENOSPC", "EDQUOT"].includes(String((e as { code?: unknown }).code));
  return findCause(err, full) !== null;
}

/** `err`, or the error that caused it (a few causes deep), when it is a `C`; else null. */
export function causeOf<T extends Error>(
  err: unknown,
  C: abstract new (...args: never[]) => T,
): T | null {
  return findCause(err, (e) => e instanceof C) as T | null;
}

/** The first of `err` and the errors that caused it (a few causes deep) that `is`; else null. */
export function findCause(err: unknown, is: (e: object) => boolean): object | null {
  for (let e = err, depth = 0; e instanceof Object && depth < 6; depth++) {
    if (is(e)) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

/** One line for a user, whatever was thrown. Never includes a stack trace. */
export function errorLine(err: unknown): string {
  if (err instanceof Error) {
    const msg = err.message.split("\n")[0] ?? "";
    if (err instanceof S3BackupError) return msg;
    return `${err.name === "Error" ? "" : `${err.name}: `}${msg}`;
  }
  return String(err);
}

/** The exit code for anything thrown. */
export function exitCodeOf(err: unknown): ExitCode {
  return err instanceof S3BackupError ? err.exitCode : ExitCode.error;
}
