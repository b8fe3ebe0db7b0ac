/**
 * Where a backup's packs are written while they fill (restic writes its packs to temporary files
 * too): each pack's gzip members are encrypted as they come (one container, FORMAT.md §3.1) into
 * a 0600 file `<pack id>` in a 0700 folder `s3backup-packs-<pid>-<random>` of the cache folder
 * (else of the system's temporary folder), its size and MD5 counted; the pack is then stored
 * from that file (one PUT: S3 gets its Content-MD5) and the file removed. Memory holds a segment
 * of a pack, never a whole one (BENCHMARKS.md, "A pack spooled to disk"). The folder of a killed
 * run (its process gone) is removed by the next backup that spools.
 */
import { createHash } from "node:crypto";
import { dirname } from "node:path";
import { sweepDeadSpools } from "../../repo/meta_spool.ts";
import type { SyncEncryptor } from "../../format/container.ts";
import type { PackSink } from "../../format/pack.ts";
import { messageOf } from "../../util/bytes.ts";
import { S3BackupError } from "../../util/errors.ts";
import { chmodSyncWhereSupported } from "../../util/platform.ts";
import { newObjectId } from "../../format/layout.ts";

const SPOOL_PREFIX = "s3backup-packs-";

/** A pack written to its spool file as it fills. */
export class SpooledPack implements PackSink {
  /** Bytes written (the container's, once closed). */
  size = 0;
  readonly #md5 = createHash("md5");
  #file: Deno.FsFile | null;

  constructor(readonly path: string, readonly enc: SyncEncryptor) {
    try {
      this.#file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
    } catch (err) {
      throw spoolError(path, err);
    }
    this.#put(enc.head);
  }

  write(gz: Uint8Array): void {
    this.#put(this.enc.update(gz));
  }

  /** Ends the container and closes the file: its MD5 (base64, as S3's Content-MD5). */
  close(): string {
    this.#put(this.enc.final());
    this.#file?.close();
    this.#file = null;
    return this.#md5.digest("base64");
  }

  /** The spooled container, read as a stream (after `close`). */
  async body(): Promise<ReadableStream<Uint8Array>> {
    return (await Deno.open(this.path, { read: true })).readable;
  }

  /** Removes the file (closed first when a failure left it open). */
  remove(): void {
    try {
      this.#file?.close();
    } catch { /* closed */ }
    this.#file = null;
    try {
      Deno.removeSync(this.path);
    } catch { /* gone, or its folder with it */ }
  }

  #put(bytes: Uint8Array): void {
    if (this.#file === null) throw new S3BackupError(`pack spool ${this.path} is closed`);
    try {
      for (let at = 0; at < bytes.length;) at += this.#file.writeSync(bytes.subarray(at));
    } catch (err) {
      throw spoolError(this.path, err);
    }
    this.#md5.update(bytes);
    this.size += bytes.length;
  }
}

/**
 * A large content's object written to a spool file as it is made (Packer.readOnce): a stream's
 * sink into a new 0600 file, its size and MD5 (base64, S3's Content-MD5) counted.
 */
export class SpooledObject {
  size = 0;
  /** A write failed (no room): the content can still be streamed from its file instead. */
  failed = false;
  readonly #md5 = createHash("md5");

  constructor(readonly path: string) {}

  /** A sink into the file (made here); a write that fails is the spool's error, not the source's. */
  async writable(): Promise<WritableStream<Uint8Array>> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.path, { write: true, createNew: true, mode: 0o600 });
    } catch (err) {
      this.failed = true;
      throw spoolError(this.path, err, "a content");
    }
    return new WritableStream<Uint8Array>({
      write: async (chunk) => {
        try {
          for (let at = 0; at < chunk.length;) at += await file.write(chunk.subarray(at));
        } catch (err) {
          this.failed = true;
          file.close(); // (a sink whose write failed is neither closed nor aborted)
          throw spoolError(this.path, err, "a content");
        }
        this.#md5.update(chunk);
        this.size += chunk.length;
      },
      close: () => file.close(),
      abort: () => file.close(),
    });
  }

  /** Its MD5, base64 (once written). */
  md5(): string {
    return this.#md5.digest("base64");
  }

  /** The file, read as a stream. */
  async body(): Promise<ReadableStream<Uint8Array>> {
    return (await Deno.open(this.path, { read: true })).readable;
  }

  remove(): void {
    try {
      Deno.removeSync(this.path);
    } catch { /* gone, or its folder with it */ }
  }
}

/** A pack of a dry run: its gzip members counted, nothing written. */
export class CountedPack implements PackSink {
  size = 0;
  write(gz: Uint8Array): void {
    this.size += gz.length;
  }
}

/** The spool folder of one backup: made when its first pack is, removed by `remove`. */
export class PackSpool {
  #dir: string | null = null;

  /** `parent`: the cache folder, or null for the system's temporary folder. */
  constructor(readonly parent: string | null) {}

  /** A new spool file for pack `id`, its container begun with `enc`. */
  open(id: string, enc: SyncEncryptor): SpooledPack {
    return new SpooledPack(`${this.#folder()}/${id}`, enc);
  }

  /** A new spool file for a large content's object (`data-<id>`). */
  object(): SpooledObject {
    return new SpooledObject(`${this.#folder()}/data-${newObjectId()}`);
  }

  /** The folder, made at the first call: in the cache folder, else the temporary folder. */
  #folder(): string {
    if (this.#dir !== null) return this.#dir;
    try {
      if (this.parent !== null) return this.#dir = makeSpool(this.parent);
    } catch { /* a cache folder that cannot be written: the temporary folder */ }
    try {
      return this.#dir = makeSpool(null);
    } catch (err) {
      throw spoolError(Deno.env.get("TMPDIR") ?? "the temporary folder", err);
    }
  }

  /** Removes the folder and whatever is left in it. */
  remove(): void {
    if (this.#dir === null) return;
    try {
      Deno.removeSync(this.#dir, { recursive: true });
    } catch { /* gone */ }
    this.#dir = null;
  }
}

/** A new 0700 spool folder in `parent` (null: the temporary folder); dead runs' swept. */
function makeSpool(parent: string | null): string {
  if (parent !== null) Deno.mkdirSync(parent, { recursive: true, mode: 0o700 });
  const prefix = `${SPOOL_PREFIX}${Deno.pid}-`;
  const dir = Deno.makeTempDirSync({ prefix, ...(parent !== null ? { dir: parent } : {}) });
  sweepDeadSpools(dirname(dir), SPOOL_PREFIX);
  chmodSyncWhereSupported(dir, 0o700);
  return dir;
}

function spoolError(where: string, err: unknown, what = "a pack"): S3BackupError {
  return new S3BackupError(
    `Cannot write ${what} to ${where} (it needs room for the packs and large contents being ` +
      `stored; set TMPDIR or --cache-dir elsewhere): ${messageOf(err)}`,
    { cause: err },
  );
}
