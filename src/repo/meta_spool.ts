/**
 * A meta being written while its backup runs: each entry line goes through the meta's
 * encryption into a 0600 temporary file (in a 0700 temporary folder) as soon as it is known, so
 * that a backup holds no list of its entries. `finish` adds the trailer and gives the encrypted
 * meta as a stream of that file, to be created once in the store; `discard` removes it. The
 * bytes are those `encryptMeta` makes of the same entries.
 */
import { chmodWhereSupported, processAlive } from "../util/platform.ts";
import { createHash } from "node:crypto";
import { dirname } from "node:path";
import { encryptStream, type PreparedKey } from "../format/container.ts";
import {
  encodeEntry,
  encodeMetaEnd,
  encodeMetaHead,
  type MetaHeader,
  type RecordedEntry,
} from "../format/meta.ts";
import { messageOf } from "../util/bytes.ts";
import { isFull, S3BackupError } from "../util/errors.ts";
import type { Reopenable, Repository } from "./repository.ts";

const te = new TextEncoder();
/** Lines are gathered up to about this many characters before they are encrypted. */
const BATCH_CHARS = 256 * 1024;

/** The temporary folders of metas being written: `s3backup-meta-<pid>-<random>`. */
const SPOOL_PREFIX = "s3backup-meta-";

/**
 * Removes the folders and files `<prefix><pid>-...` in `parent` that a killed backup left (metas;
 * streams of `--stdin`, ops/backup/stream_spool.ts; files caches being written,
 * ops/backup/files_cache.ts): another pid, no such process (`processAlive`), this user's. Best
 * effort: nothing here stops a backup.
 */
export function sweepDeadSpools(parent: string, prefix = SPOOL_PREFIX): void {
  try {
    for (const e of Deno.readDirSync(parent)) {
      const m = e.name.startsWith(prefix) ? /^(\d+)-/.exec(e.name.slice(prefix.length)) : null;
      if (!m || e.isSymlink || Number(m[1]) === Deno.pid) continue;
      if (processAlive(Number(m[1])) !== false) continue;
      const p = `${parent}/${e.name}`;
      const uid = Deno.lstatSync(p).uid;
      if (uid !== null && uid !== Deno.uid()) continue;
      Deno.removeSync(p, { recursive: true });
    }
  } catch {
    // an unreadable temp folder, a race with another sweep: left
  }
}

export class MetaSpool {
  /** Entries added so far. */
  count = 0;
  #lines: string[] = [];
  #chars = 0;
  #version: 2 | 3 = 2;
  readonly #digest = createHash("sha256");
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #written: Promise<void>;

  private constructor(
    readonly dir: string,
    readonly path: string,
    file: Deno.FsFile,
    key: TransformStream<Uint8Array, Uint8Array>,
  ) {
    this.#writer = key.writable.getWriter();
    this.#written = key.readable.pipeTo(file.writable);
    this.#written.catch(() => {}); // seen by finish; a discard needs no report
  }

  /**
   * Starts the meta of a backup of `repo` with `header` (its wrapped key is the repo's), in a
   * temporary folder named with this process's id; the folders of killed backups (their
   * process gone) are removed first.
   */
  static async open(
    repo: Repository,
    header: Omit<MetaHeader, "wrappedKey">,
    prepared?: PreparedKey,
  ): Promise<MetaSpool> {
    let dir: string | undefined;
    let file: Deno.FsFile;
    try {
      dir = await Deno.makeTempDir({ prefix: `${SPOOL_PREFIX}${Deno.pid}-` });
      sweepDeadSpools(dirname(dir));
      await chmodWhereSupported(dir, 0o700);
      file = await Deno.open(`${dir}/meta`, { write: true, createNew: true, mode: 0o600 });
    } catch (err) {
      if (dir !== undefined) await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw new S3BackupError(
        `Cannot create a temporary file for the meta (set TMPDIR to a writable folder): ${
          messageOf(err)
        }`,
        { cause: err },
      );
    }
    const path = `${dir}/meta`;
    const key = encryptStream(repo.password, repo.descriptor.keyIter, undefined, prepared);
    const spool = new MetaSpool(dir, path, file, key);
    const version = repo.descriptor.format === 3 ? 3 : 2;
    spool.#version = version;
    spool.#lines = encodeMetaHead({ ...header, version, wrappedKey: repo.wrappedKey });
    return spool;
  }

  /** Adds one entry (in walk order); waits while the file falls behind. */
  async add(e: RecordedEntry): Promise<void> {
    const line = encodeEntry(e, this.#version);
    this.#digest.update(line + "\n");
    this.#lines.push(line);
    this.#chars += line.length;
    this.count++;
    if (this.#chars >= BATCH_CHARS) await this.#flush();
  }

  async #flush(): Promise<void> {
    if (this.#lines.length === 0) return;
    const text = this.#lines.join("\n") + "\n";
    this.#lines = [];
    this.#chars = 0;
    try {
      await this.#writer.ready;
      await this.#writer.write(te.encode(text));
    } catch (err) {
      throw this.#cannot(err);
    }
  }

  #cannot(err: unknown): S3BackupError {
    const room = isFull(err) ? " (set TMPDIR to a folder with room)" : "";
    return new S3BackupError(
      `Cannot write the meta's temporary file ${this.path}: ${messageOf(err)}${room}`,
      { cause: err },
    );
  }

  /**
   * Ends the meta: the encrypted meta, to be read (each `open` streams the temporary file) until
   * `discard` removes it. It is never all in memory.
   */
  async finish(): Promise<Reopenable> {
    this.#lines.push(encodeMetaEnd(this.count));
    await this.#flush();
    try {
      await this.#writer.close();
      await this.#written;
    } catch (err) {
      throw this.#cannot(err);
    }
    const path = this.path;
    return {
      size: (await Deno.stat(path)).size,
      open: () => {
        const file = Deno.openSync(path, { read: true });
        return file.readable;
      },
    };
  }

  /** SHA-256 (hex) of the entry lines added so far: equal for equal entries. */
  entriesDigest(): string {
    return this.#digest.copy().digest("hex");
  }

  /** Drops the meta (a failed or simulated backup). */
  async discard(): Promise<void> {
    await this.#writer.abort().catch(() => {});
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
