/**
 * A repository in a local directory: object `a/b` is the file `<dir>/a/b`.
 *
 * Saves are atomic: a temp file `.tmp-<random>` in the destination folder (mode 0600), fsync,
 * rename, then fsync of the folder. With `deferSync` (data objects, before the meta that names
 * them) an object is written and renamed with no fsync, and `flush()` makes them all durable:
 * up to SYNC_EACH of them by an fsync each, 16 at a time (a format 3 backup's few packs: a busy
 * server's other writes are not waited for); more, by one syncfs of the file system where
 * Linux's `sync -f` has it (tried on /dev at the first such save; then no list of them is kept),
 * else again an fsync of each; then each folder once. An fsync per small object costs about
 * 0.4 ms here, ten times the rest of its save; a syncfs waits for every file written on the file
 * system (0.18 s after 20,000 small files were written elsewhere). A crash before the flush can
 * leave an object cut short under its name: the next backup sees a stored size that is not its
 * content's and saves it again (ops/backup/file_reader.ts `Uploads`).
 * `list` skips the temp files a crash can leave.
 */

import { createHash } from "node:crypto";
import * as path from "node:path";
import { messageOf, readFullSync, writeAll } from "../util/bytes.ts";
import {
  ObjectExistsError,
  ObjectNotFoundError,
  RepositoryNotFoundError,
  S3BackupError,
} from "../util/errors.ts";
import { pool } from "../util/pool.ts";
import { randomHex } from "../util/random.ts";
import {
  checkObjectName,
  guardStream,
  type ObjectInfo,
  type RemoveOptions,
  type SaveOptions,
  type Store,
} from "./store.ts";

const TEMP_PREFIX = ".tmp-";
/** Objects up to this size are loaded whole with synchronous calls. */
const SMALL_LOAD = 256 * 1024;
/** Deferred objects up to this many are made durable one by one, not by a syncfs. */
export const SYNC_EACH = 64;
/** Where `sync -f` is tried: a file system with nothing to write (devtmpfs). */
const PROBE_DIR = "/dev";

export class LocalStore implements Store {
  readonly kind = "local" as const;
  readonly location: string;
  readonly dir: string;
  /** Folders whose new entries are not yet synced (saves with deferSync). */
  readonly #dirty = new Set<string>();
  /**
   * Objects saved with deferSync whose content is not yet synced, when each is to be synced:
   * the first SYNC_EACH, and all where syncfs does not work (tried at the first such save).
   */
  #unsynced: string[] = [];
  #syncfs: Promise<boolean> | null = null;
  #deferred = 0;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
    this.location = this.dir;
  }

  async checkExists(): Promise<void> {
    await this.#checkRoot();
  }

  async save(
    name: string,
    data: Uint8Array | ReadableStream<Uint8Array>,
    opts: SaveOptions = {},
  ): Promise<void> {
    checkObjectName(name);
    const dest = this.#path(name);
    const parent = path.dirname(dest);
    try {
      opts.signal?.throwIfAborted();
    } catch (err) {
      if (data instanceof ReadableStream) await data.cancel(err).catch(() => {});
      throw err;
    }
    if (parent !== this.dir) {
      await this.#checkRoot();
      await Deno.mkdir(parent, { recursive: true });
    }
    if (opts.md5 !== undefined && data instanceof Uint8Array) checkMd5(name, opts.md5, md5Of(data));
    if (opts.deferSync && !opts.ifAbsent && data instanceof Uint8Array) {
      return await this.#saveDeferred(name, dest, data, opts.size);
    }
    const temp = path.join(parent, `${TEMP_PREFIX}${randomHex(8)}`);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    } catch (err) {
      if (data instanceof ReadableStream) await data.cancel(err).catch(() => {});
      if (err instanceof Deno.errors.NotFound) {
        await this.#checkRoot();
      }
      throw new S3BackupError(`Cannot write ${dest}: ${messageOf(err)}`, { cause: err });
    }
    let sourceError: { err: unknown } | undefined;
    let guard: ReturnType<typeof guardStream> | undefined;
    const onAbort = () => guard?.cancel(opts.signal?.reason);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    let closed = false;
    try {
      if (data instanceof ReadableStream) {
        guard = guardStream(data, name, opts, (err) => sourceError = { err });
        const hash = opts.md5 !== undefined ? createHash("md5") : null;
        for await (const chunk of guard.stream) {
          hash?.update(chunk);
          await writeAll(file, chunk);
        }
        if (hash !== null) checkMd5(name, opts.md5!, hash.digest("base64"));
      } else {
        if (opts.size !== undefined && opts.size !== data.byteLength) {
          throw new S3BackupError(
            `Size mismatch saving ${name}: expected ${opts.size} bytes, got ${data.byteLength}`,
          );
        }
        await writeAll(file, data);
      }
      opts.signal?.throwIfAborted();
      if (!opts.deferSync) await file.sync(); // else at flush()
      file.close();
      closed = true;
      if (opts.ifAbsent) await linkNew(temp, dest, name);
      else await Deno.rename(temp, dest);
    } catch (err) {
      guard?.cancel(err);
      if (!closed) {
        try {
          file.close();
        } catch { /* already closed */ }
      }
      await Deno.remove(temp).catch(() => {});
      if (sourceError) throw sourceError.err;
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (err instanceof S3BackupError) throw err;
      throw new S3BackupError(`Cannot write ${dest}: ${messageOf(err)}`, { cause: err });
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
    }
    if (opts.deferSync) await this.#noteDeferred(name, parent);
    else await syncDir(parent);
  }

  /** A deferSync save of bytes: synchronous calls, no fsync (flush() makes it durable). */
  async #saveDeferred(name: string, dest: string, data: Uint8Array, size?: number) {
    if (size !== undefined && size !== data.byteLength) {
      throw new S3BackupError(
        `Size mismatch saving ${name}: expected ${size} bytes, got ${data.byteLength}`,
      );
    }
    const parent = path.dirname(dest);
    const temp = path.join(parent, `${TEMP_PREFIX}${randomHex(8)}`);
    try {
      Deno.writeFileSync(temp, data, { createNew: true, mode: 0o600 });
      Deno.renameSync(temp, dest);
    } catch (err) {
      try {
        Deno.removeSync(temp);
      } catch { /* not created */ }
      if (err instanceof Deno.errors.NotFound) await this.#checkRoot();
      throw new S3BackupError(`Cannot write ${dest}: ${messageOf(err)}`, { cause: err });
    }
    await this.#noteDeferred(name, parent);
  }

  /** Object `name`, written into `parent` without fsync: made durable by flush(). */
  async #noteDeferred(name: string, parent: string): Promise<void> {
    this.#deferred++;
    // Whether `sync -f` works, asked of /dev (nothing to write there: the syncfs of our own file
    // system, with the data just written before the backup, would hold up the first pack).
    const each = this.#deferred <= SYNC_EACH ||
      !(await (this.#syncfs ??= syncFileSystem(PROBE_DIR)));
    if (each) this.#unsynced.push(name);
    this.#dirty.add(parent);
  }

  async flush(): Promise<void> {
    const files = this.#unsynced;
    const deferred = this.#deferred;
    [this.#unsynced, this.#deferred] = [[], 0];
    const dirs = [...this.#dirty];
    this.#dirty.clear();
    if (files.length === deferred) { // few, or no syncfs here
      await pool(files, 16, (name) => syncFile(this.#path(name)));
    } else if (!(await syncFileSystem(this.dir))) {
      throw new S3BackupError(
        `Cannot make the objects saved in ${this.dir} durable: sync -f failed`,
      );
    }
    for (const d of dirs) await syncDir(d);
  }

  async load(name: string): Promise<ReadableStream<Uint8Array>> {
    checkObjectName(name);
    const p = this.#path(name);
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(p, { read: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
        await this.#checkRoot();
        throw new ObjectNotFoundError(name, { cause: err });
      }
      throw new S3BackupError(`Cannot read ${p}: ${messageOf(err)}`, { cause: err });
    }
    let info: Deno.FileInfo | null = null;
    try {
      info = file.statSync();
    } catch { /* not found below */ }
    if (!info?.isFile) {
      file.close();
      throw new ObjectNotFoundError(name);
    }
    if (info.size > SMALL_LOAD) return file.readable;
    // A small object is read at once with synchronous calls (cheaper than a stream's reads).
    try {
      const data = new Uint8Array(info.size);
      return ReadableStream.from([data.subarray(0, readFullSync(file, data))]);
    } catch (err) {
      throw new S3BackupError(`Cannot read ${p}: ${messageOf(err)}`, { cause: err });
    } finally {
      file.close();
    }
  }

  async stat(name: string): Promise<ObjectInfo | null> {
    checkObjectName(name);
    try {
      const info = await Deno.stat(this.#path(name));
      if (!info.isFile) return null;
      return { name, size: info.size, mtime: info.mtime ?? new Date(0) };
    } catch (err) {
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
        return null;
      }
      throw new S3BackupError(`Cannot stat ${this.#path(name)}: ${messageOf(err)}`, {
        cause: err,
      });
    }
  }

  async *list(prefix = ""): AsyncIterable<ObjectInfo> {
    await this.#checkRoot();
    // Walk only the folder the prefix names (prefix "restore-kit/re" -> folder "restore-kit").
    const slash = prefix.lastIndexOf("/");
    const startRel = slash >= 0 ? prefix.slice(0, slash) : "";
    if (startRel !== "" && startRel.split("/").some((c) => c === "" || c === "." || c === "..")) {
      return;
    }
    yield* this.#walk(startRel, prefix);
  }

  /**
   * A listing is a read of the folder and an lstat per object, with synchronous calls (~4x
   * cheaper so). The folder is read as it goes (`namesIn`): a million objects are never all in
   * memory.
   */
  async *#walk(rel: string, prefix: string): AsyncGenerator<ObjectInfo> {
    const abs = rel === "" ? this.dir : this.#path(rel);
    for await (const entry of namesIn(abs)) {
      const name = rel === "" ? entry : `${rel}/${entry}`;
      const dirName = `${name}/`;
      const inside = prefix.startsWith(dirName) || dirName.startsWith(prefix);
      if (!name.startsWith(prefix) && !inside) continue;
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(path.join(abs, entry));
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue; // gone, or a name ls mangled
        throw new S3BackupError(`Cannot stat ${path.join(abs, entry)}: ${messageOf(err)}`, {
          cause: err,
        });
      }
      // Only descend where the prefix can still match.
      if (info.isDirectory && inside) yield* this.#walk(name, prefix);
      else if (info.isFile && !entry.startsWith(TEMP_PREFIX) && name.startsWith(prefix)) {
        yield { name, size: info.size, mtime: info.mtime ?? new Date(0) };
      }
    }
  }

  async remove(names: string[], _opts: RemoveOptions = {}): Promise<void> {
    for (const name of names) checkObjectName(name);
    if (names.length === 0) return;
    await this.#checkRoot();
    for (const name of names) {
      try {
        await Deno.remove(this.#path(name));
      } catch (err) {
        if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
          continue;
        }
        throw new S3BackupError(`Cannot remove ${this.#path(name)}: ${messageOf(err)}`, {
          cause: err,
        });
      }
    }
  }

  #path(name: string): string {
    return path.join(this.dir, ...name.split("/"));
  }

  async #checkRoot(): Promise<void> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(this.dir);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
        throw new RepositoryNotFoundError(`Directory not found: ${this.dir}`, { cause: err });
      }
      throw new S3BackupError(`Cannot access ${this.dir}: ${messageOf(err)}`, { cause: err });
    }
    if (!info.isDirectory) {
      throw new RepositoryNotFoundError(`Not a directory: ${this.dir}`);
    }
  }
}

/**
 * The names in folder `abs` (none when it is missing), as they come. Deno's readDir returns a
 * folder's every entry at once (about 600 MB for a million objects, measured), so where there
 * is an `ls` its unsorted output is streamed; a name with a line break (never an object's) reads
 * as names that do not exist, which the caller skips.
 */
async function* namesIn(abs: string): AsyncGenerator<string> {
  const cannot = (err: unknown) =>
    new S3BackupError(`Cannot list ${abs}: ${messageOf(err)}`, { cause: err });
  try {
    if (!Deno.statSync(abs).isDirectory) return;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) return;
    throw cannot(err);
  }
  const ls = Deno.build.os === "windows" ? null : spawnLs(abs);
  if (ls === null) {
    try {
      for (const e of Deno.readDirSync(abs)) yield e.name;
    } catch (err) {
      throw cannot(err);
    }
    return;
  }
  const errText = new Response(ls.stderr).text();
  let rest = "";
  const dec = new TextDecoder();
  try {
    for await (const chunk of ls.stdout) {
      const lines = (rest + dec.decode(chunk, { stream: true })).split("\n");
      rest = lines.pop()!;
      for (const n of lines) if (n !== "." && n !== "..") yield n;
    }
  } finally {
    await ls.stdout.cancel().catch(() => {}); // the caller stopped early: ls ends on SIGPIPE
    await ls.status;
  }
  const status = await ls.status;
  if (!status.success) {
    throw cannot(new Error((await errText).trim() || `ls exited ${status.code}`));
  }
  if (rest !== "" && rest !== "." && rest !== "..") yield rest;
}

/** `ls -f` of a folder (unsorted, every name, one a line), or null without an `ls`. */
function spawnLs(abs: string): Deno.ChildProcess | null {
  try {
    return new Deno.Command("ls", {
      args: ["-f", "-1", "--", abs],
      env: { LC_ALL: "C" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch {
    return null;
  }
}

/** Puts `temp` at `dest` only if nothing is there (a hard link fails then), then drops `temp`. */
async function linkNew(temp: string, dest: string, name: string): Promise<void> {
  try {
    await Deno.link(temp, dest);
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) throw new ObjectExistsError(name, { cause: err });
    throw err;
  } finally {
    await Deno.remove(temp).catch(() => {});
  }
}

/**
 * syncfs(2) of the file system holding `dir`, through GNU coreutils' `sync -f` (Linux); false
 * where that is not at hand or fails (then each file is synced).
 */
async function syncFileSystem(dir: string): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  try {
    const out = await new Deno.Command("sync", {
      args: ["-f", dir],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** Makes a file's content durable; an error says the object may not be whole. */
async function syncFile(file: string): Promise<void> {
  try {
    using f = await Deno.open(file, { read: true, write: true });
    await f.syncData();
  } catch (err) {
    throw new S3BackupError(`Cannot write ${file}: ${messageOf(err)}`, { cause: err });
  }
}

/** Makes a rename durable (best effort: not every platform can fsync a directory). */
async function syncDir(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  try {
    using d = await Deno.open(dir, { read: true });
    await d.sync();
  } catch { /* best effort */ }
}

function md5Of(data: Uint8Array): string {
  return createHash("md5").update(data).digest("base64");
}

/** SaveOptions.md5, as S3 checks Content-MD5: other bytes are not stored. */
function checkMd5(name: string, expected: string, got: string): void {
  if (got !== expected) {
    throw new S3BackupError(
      `Cannot save ${name}: its bytes are not those given (MD5 ${got}, not ${expected})`,
    );
  }
}
