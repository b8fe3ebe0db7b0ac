/**
 * The storage interface: a flat namespace of immutable-by-convention objects (restic-style).
 *
 * Two implementations: `S3Store` (a bucket, optionally under a key prefix) and `LocalStore`
 * (a directory with the same layout). Open one with `openStore()` (open_store.ts).
 */

import { S3BackupError } from "../util/errors.ts";

/** One stored object. `name` is relative to the store's prefix / directory. */
export interface ObjectInfo {
  name: string;
  size: number;
  mtime: Date;
  /** S3 only, without quotes. Not reliable after a multipart upload on every store. */
  etag?: string;
  /** S3 only: the storage class, when the server says (listings do; STANDARD may be absent). */
  storageClass?: string;
  /**
   * S3 `stat` only, for an object of an archive class: whether a readable copy is being made
   * (`ongoing`) or is there (`done`); absent when none was asked for.
   */
  restore?: "ongoing" | "done";
  /** S3 `stat` only: the Object Lock retention of the current version, when it has one. */
  retainUntil?: Date;
  retainMode?: "GOVERNANCE" | "COMPLIANCE";
}

/** How to ask for a readable copy of an archived object (S3 RestoreObject). */
export interface RestoreRequest {
  /** How long the copy stays (it is billed as a standard object meanwhile). */
  days: number;
  tier: "Bulk" | "Standard" | "Expedited";
}

/** S3 Object Lock retention of one object version. */
export interface ObjectRetention {
  mode: "GOVERNANCE" | "COMPLIANCE";
  until: Date;
}

export interface SaveOptions {
  /** The exact byte count of a stream, when known. A stream of another length fails the save. */
  size?: number;
  /**
   * The MD5 of the bytes (base64), when known: S3 sends it as Content-MD5 (the server refuses
   * other bytes) in one PUT; a stream given with it is read whole first (for the SDK's retries
   * to send again), unless `reopen` can open it again.
   */
  md5?: string;
  /**
   * The same bytes as a fresh stream (a spooled pack's file), with `md5` and `size`: S3 then
   * sends the stream as it reads it (never held whole), opening it again for each retry.
   */
  reopen?: () => Promise<ReadableStream<Uint8Array>>;
  /** Aborting stops the save; nothing is stored and `signal.reason` is thrown. */
  signal?: AbortSignal;
  /** S3 Object Lock: the object is written under this retention (the bucket must have it). */
  retention?: ObjectRetention;
  /** S3 storage class (`STANDARD_IA`, `DEEP_ARCHIVE`, ...); the local store ignores it. */
  storageClass?: string;
  /**
   * Create only: throw ObjectExistsError, writing nothing, when the object exists (S3
   * `If-None-Match: *`; a local directory links the new file into place, which fails if the
   * name is taken). Bytes, or a stream of known `size`: S3 reads such a stream whole first (a
   * conditional create is one PUT; multipart is not conditional on every store). A store that
   * ignores the condition overwrites: callers that depend on it read back what they wrote
   * (repo/repository.ts).
   */
  ifAbsent?: boolean;
  /**
   * The object need not be durable before `flush()` (a local directory then syncs the folders
   * of such objects once, at flush, instead of once per object). The meta is never deferred.
   */
  deferSync?: boolean;
}

export interface RemoveOptions {
  /**
   * Bounds this call alone, instead of the store's own signal: a lock is still removed after
   * SIGTERM aborted everything else.
   */
  signal?: AbortSignal;
}

export interface Store {
  /** For messages: "s3://bucket/prefix" or "/abs/dir". */
  readonly location: string;
  readonly kind: "s3" | "local";
  /** Throws RepositoryNotFoundError if the bucket / directory does not exist. */
  checkExists(): Promise<void>;
  /**
   * Atomic: the object appears whole or not at all. If `data` (a stream) errors, the upload is
   * aborted (multipart aborted / temp file removed) and the error is rethrown unchanged.
   * Overwrites, unless `opts.ifAbsent`.
   */
  save(
    name: string,
    data: Uint8Array | ReadableStream<Uint8Array>,
    opts?: SaveOptions,
  ): Promise<void>;
  /** Throws ObjectNotFoundError if absent. Streams; never buffers the whole object. */
  load(name: string): Promise<ReadableStream<Uint8Array>>;
  /** null when absent. */
  stat(name: string): Promise<ObjectInfo | null>;
  /**
   * Every object whose name starts with prefix, paginated, names relative to the store prefix,
   * in any order. Throws RepositoryNotFoundError if the bucket / directory does not exist.
   */
  list(prefix?: string): AsyncIterable<ObjectInfo>;
  /** Removes objects (batched; absent names are not an error). */
  remove(names: string[], opts?: RemoveOptions): Promise<void>;
  /**
   * Aborts the multipart uploads under the store's prefix begun before `before` (a killed run
   * leaves its upload pending, and billed). Returns how many. Stores without them lack it.
   */
  abortUploads?(before: Date): Promise<number>;
  /**
   * Asks for a readable copy of an object in an archive class (GLACIER, DEEP_ARCHIVE): `requested`,
   * or `in progress` when one was asked for already. Stores without archive classes lack it.
   */
  requestRestore?(name: string, req: RestoreRequest): Promise<"requested" | "in progress">;
  /** Whether the bucket has Object Lock enabled. Stores without it lack this. */
  objectLock?(): Promise<boolean>;
  /** Whether the bucket keeps old versions (versioning enabled or suspended). */
  versioning?(): Promise<boolean>;
  /**
   * Removes every version of each of `names` (and their delete markers) that the store lets
   * go: the names of which a version is kept (under Object Lock retention) are returned.
   */
  removeVersions?(names: string[]): Promise<{ retained: string[] }>;
  /**
   * The store as it was at `time` (a versioned bucket: each name's newest version written by
   * then, delete markers and later versions ignored), read-only.
   */
  asOf?(time: Date): Promise<Store>;
  /** Sets the retention of the current version of `name` (S3 PutObjectRetention). */
  retain?(name: string, r: ObjectRetention): Promise<void>;
  /** Makes every object saved with `deferSync` durable (before the meta that names them). */
  flush?(): Promise<void>;
}

/**
 * A store that does what `inner` does, but for the calls in `over` (wrappers: throttle.ts,
 * repo/retention.ts). Optional calls stay absent when `inner` lacks them.
 */
export function wrapStore(inner: Store, over: Partial<Store>): Store {
  const optional = [
    "abortUploads",
    "flush",
    "requestRestore",
    "objectLock",
    "retain",
    "versioning",
    "removeVersions",
  ] as const;
  const store: Store = {
    location: inner.location,
    kind: inner.kind,
    checkExists: () => inner.checkExists(),
    save: (name, data, opts) => inner.save(name, data, opts),
    load: (name) => inner.load(name),
    stat: (name) => inner.stat(name),
    list: (prefix) => inner.list(prefix),
    remove: (names, opts) => inner.remove(names, opts),
  };
  for (const k of optional) {
    // deno-lint-ignore no-explicit-any
    if (inner[k] !== undefined) (store as any)[k] = (...a: unknown[]) => (inner[k] as any)(...a);
  }
  return Object.assign(store, over);
}

/**
 * Object names: non-empty, `/`-separated, no empty, `.` or `..` component, no backslash and
 * no control character. Throws on anything else (a programming error, not user input).
 */
export function checkObjectName(name: string): void {
  // deno-lint-ignore no-control-regex
  const bad = name === "" || /[\\\x00-\x1f\x7f]/.test(name) ||
    name.split("/").some((c) => c === "" || c === "." || c === "..");
  if (bad) throw new S3BackupError(`Invalid object name: ${JSON.stringify(name)}`);
}

/**
 * Wraps a stream so that it errors if it does not yield exactly `size` bytes (when `size` is
 * given) and stops when `signal` aborts. `onSourceError` sees every error of the source itself,
 * so the caller can rethrow it unchanged. The returned `cancel` releases the source.
 */
export function guardStream(
  source: ReadableStream<Uint8Array>,
  name: string,
  opts: SaveOptions,
  onSourceError: (err: unknown) => void,
): { stream: ReadableStream<Uint8Array>; cancel: (reason?: unknown) => void } {
  const reader = source.getReader();
  let count = 0;
  let finished = false;
  const sizeError = (what: string) =>
    new S3BackupError(`Size mismatch saving ${name}: expected ${opts.size} bytes, got ${what}`);
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      opts.signal?.throwIfAborted();
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (err) {
        finished = true;
        onSourceError(err);
        throw err;
      }
      opts.signal?.throwIfAborted();
      if (result.done) {
        finished = true;
        if (opts.size !== undefined && count !== opts.size) throw sizeError(`${count}`);
        controller.close();
        return;
      }
      count += result.value.byteLength;
      if (opts.size !== undefined && count > opts.size) throw sizeError(`more`);
      controller.enqueue(result.value);
    },
    cancel(reason) {
      finished = true;
      return reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
  const cancel = (reason?: unknown) => {
    if (!finished) {
      finished = true;
      reader.cancel(reason).catch(() => {});
    }
  };
  return { stream, cancel };
}
