/**
 * A repository in an S3 bucket (AWS or an S3-compatible store), optionally under a key prefix.
 *
 * - Custom endpoints (MinIO, Ceph RGW, moto, ...) get path-style addressing and checksums only
 *   "when required": several stores reject the SDK's default CRC32 / aws-chunked uploads.
 * - Streams are uploaded with lib-storage's `Upload` (16 MiB parts, 2 in flight); a failing
 *   stream aborts the multipart upload, so no object and no pending upload is left. A stream
 *   that opens again with a known MD5 (a spooled pack) is one PUT, sent as it is read.
 * - Every SDK error leaves here as an S3BackupError subclass with one readable line.
 */

import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  type ListMultipartUploadsCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  ListObjectVersionsCommand,
  PutObjectCommand,
  PutObjectRetentionCommand,
  RestoreObjectCommand,
  S3Client,
  type S3ClientConfig,
  type StorageClass,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createHash } from "node:crypto";
import https from "node:https";
import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { crc32 } from "node:zlib";
import {
  CredentialsRefusedError,
  findCause,
  ObjectArchivedError,
  ObjectExistsError,
  ObjectNotFoundError,
  RepositoryNotFoundError,
  S3BackupError,
  StoreUnavailableError,
  UsageError,
} from "../util/errors.ts";
import { messageOf, readAll } from "../util/bytes.ts";
import { pool } from "../util/pool.ts";
import { resolveS3Settings } from "./s3_settings.ts";
import {
  checkObjectName,
  guardStream,
  type ObjectInfo,
  type ObjectRetention,
  type RemoveOptions,
  type RestoreRequest,
  type SaveOptions,
  type Store,
} from "./store.ts";

export interface S3StoreConfig {
  bucket: string;
  /** Key prefix without leading / trailing slashes; "" for the bucket root. */
  prefix: string;
  /** e.g. "http://127.0.0.1:9000". Default: as s3_settings.ts resolves it, else AWS. */
  endpoint?: string;
  /** Default: as s3_settings.ts resolves it, else "us-east-1". */
  region?: string;
  /** A profile of ~/.aws/config and ~/.aws/credentials (else AWS_PROFILE / "default"). */
  profile?: string;
  /** PEM certificate authorities to trust for https (default: as s3_settings.ts resolves). */
  caBundle?: string;
  /** Default: true with a custom endpoint, false on AWS. */
  forcePathStyle?: boolean;
  /** Default: "when_required" with a custom endpoint, "when_supported" on AWS. */
  checksums?: "when_supported" | "when_required";
  /** Explicit credentials (tests); default: the SDK's default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** SDK attempts per request (standard retry mode). Default 5. */
  maxAttempts?: number;
  /**
   * Per attempt: the longest wait for a response (its body sent) and the longest silence while
   * a body streams, in ms. Default 120 000. Connecting gets at most 10 s of it.
   */
  timeoutMs?: number;
  /** Aborts every request of this store (SIGINT/SIGTERM); `remove` may be given its own. */
  signal?: AbortSignal;
  /** Told when a request that got no answer in time is tried again (one line). */
  onNotice?: (message: string) => void;
}

/**
 * Per attempt, until the endpoint has answered once (any HTTP response): an endpoint that
 * never answered (a wrong address that accepts connections, a dead proxy) fails its first
 * request within about 30 s (5 attempts), not 5 x --timeout. Later requests have --timeout.
 */
export const FIRST_CONTACT_MS = 5_000;

/**
 * An https agent that trusts the certificate authorities in the PEM file `path` (and no others,
 * as the AWS CLI does with AWS_CA_BUNDLE). Throws UsageError when it cannot be read.
 */
function caAgent(path: string): https.Agent {
  let ca: string;
  try {
    ca = Deno.readTextFileSync(path);
  } catch (err) {
    throw new UsageError(`Cannot read the CA bundle ${path}: ${messageOf(err)}`, {
      cause: err,
    });
  }
  return new https.Agent({ ca, keepAlive: true, maxSockets: 50 });
}

const QUIET_LOGGER = { debug() {}, info() {}, warn() {}, error() {} };

/** Default per-attempt S3 request timeout. */
export const DEFAULT_TIMEOUT_MS = 120_000;

/** Multipart part size; also the largest stream sent as a single PutObject. */
export const PART_SIZE = 16 * 1024 * 1024;
const QUEUE_SIZE = 2;
const DELETE_BATCH = 1000;
const SINGLE_DELETE_CONCURRENCY = 8;

export class S3Store implements Store {
  readonly kind = "s3" as const;
  readonly location: string;
  readonly bucket: string;
  readonly prefix: string;
  /** The endpoint as shown in messages. */
  readonly endpoint: string;
  readonly client: S3Client;
  /** Set once DeleteObjects was refused (checksum header unsupported): single deletes. */
  #singleDeletes = false;
  readonly #profile: string | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #timeoutMs: number;
  readonly #attempts: number;
  /** Whether the SDK adds a CRC32 of its own to uploads (AWS) or only where required. */
  readonly #checksums: "WHEN_REQUIRED" | "WHEN_SUPPORTED";
  readonly #onNotice?: (message: string) => void;
  /** The endpoint has answered a request (FIRST_CONTACT_MS applies until then). */
  #answered = false;

  constructor(config: S3StoreConfig) {
    this.bucket = config.bucket;
    this.prefix = config.prefix.replace(/^\/+|\/+$/g, "");
    this.location = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ""}`;
    const settings = resolveS3Settings({
      flags: {
        ...(config.endpoint ? { endpoint: config.endpoint } : {}),
        ...(config.region ? { region: config.region } : {}),
        ...(config.profile ? { profile: config.profile } : {}),
        ...(config.caBundle ? { caBundle: config.caBundle } : {}),
      },
    });
    const endpoint = settings.endpoint;
    const region = settings.region ?? "us-east-1";
    const custom = endpoint !== undefined;
    const timeout = config.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#signal = config.signal;
    this.#timeoutMs = timeout;
    this.#attempts = config.maxAttempts ?? 5;
    const checksums = config.checksums ?? (custom ? "when_required" : "when_supported");
    const checksumMode = checksums === "when_required" ? "WHEN_REQUIRED" : "WHEN_SUPPORTED";
    this.#checksums = checksumMode;
    this.endpoint = endpoint ?? `https://s3.${region}.amazonaws.com`;
    const clientConfig: S3ClientConfig = {
      region,
      forcePathStyle: config.forcePathStyle ?? custom,
      requestChecksumCalculation: checksumMode,
      responseChecksumValidation: checksumMode,
      maxAttempts: this.#attempts,
      retryMode: "standard",
      // The SDK's own console warnings (e.g. nine lines on every run when AWS_PROFILE and key
      // variables are both set: the profile wins, as for the AWS CLI) stay off a cron mail.
      logger: QUIET_LOGGER,
      followRegionRedirects: !custom,
      requestHandler: {
        connectionTimeout: Math.min(10_000, timeout),
        requestTimeout: timeout,
        socketTimeout: timeout,
        throwOnRequestTimeout: true,
        ...(settings.caBundle && !this.endpoint.startsWith("http:")
          ? { httpsAgent: caAgent(settings.caBundle) }
          : {}),
      },
    };
    if (endpoint !== undefined) clientConfig.endpoint = endpoint;
    if (config.profile) clientConfig.profile = config.profile;
    this.#profile = settings.profile;
    if (config.credentials) clientConfig.credentials = config.credentials;
    this.client = new S3Client(clientConfig);
    this.#onNotice = config.onNotice;
    this.client.middlewareStack.add(this.#eachAttempt(), {
      step: "finalizeRequest",
      priority: "low", // inside the SDK's retries: once per attempt
      name: "s3backupEachAttempt",
    });
  }

  /**
   * A middleware run for each attempt: notes that the endpoint answered (any HTTP response),
   * and tells the notice listener of an attempt without an answer that will be tried again.
   */
  #eachAttempt() {
    // deno-lint-ignore no-explicit-any
    return (next: any, context: Record<string, unknown>) => async (args: unknown) => {
      const attempt = ((context.s3backupAttempt as number | undefined) ?? 0) + 1;
      context.s3backupAttempt = attempt;
      try {
        const out = await next(args);
        this.#answered = true;
        return out;
      } catch (err) {
        const e = err as { $response?: unknown; $metadata?: { httpStatusCode?: number } };
        if (e.$response !== undefined || e.$metadata?.httpStatusCode !== undefined) {
          this.#answered = true;
        } else if (isTimeout(err) && attempt < this.#attempts && !this.#signal?.aborted) {
          this.#onNotice?.(
            `no answer from ${this.endpoint} within ${this.#attemptMs() / 1000} s ` +
              `(attempt ${attempt} of ${this.#attempts}): trying again`,
          );
        }
        throw err;
      }
    };
  }

  /** The time an attempt has: --timeout, or FIRST_CONTACT_MS until the endpoint answered. */
  #attemptMs(): number {
    return this.#answered ? this.#timeoutMs : Math.min(this.#timeoutMs, FIRST_CONTACT_MS);
  }

  /** Send options: aborted by the store's signal and `signal` (or, with `own`, `signal` alone). */
  #opts(
    signal?: AbortSignal,
    own = false,
  ): { abortSignal?: AbortSignal; requestTimeout?: number } {
    const s = own ? signal : anySignal(this.#signal, signal);
    const first = this.#answered ? {} : { requestTimeout: this.#attemptMs() };
    return s ? { abortSignal: s, ...first } : first;
  }

  /** True once DeleteObjects was refused by the store and single deletes are used. */
  get usesSingleDeletes(): boolean {
    return this.#singleDeletes;
  }

  /** Closes the client's idle connections. The store must not be used afterwards. */
  close(): void {
    this.client.destroy();
  }

  /** The S3 key of an object name. */
  key(name: string): string {
    return this.prefix ? `${this.prefix}/${name}` : name;
  }

  /**
   * One PUT of a stream of known size and MD5 that `opts.reopen` opens again (a spooled pack):
   * sent as it is read, never held whole. The SDK retries no request whose body is a stream, so
   * it is given an empty body of bytes, and each attempt's body is put in its place: `first`,
   * then a fresh stream for each retry. The payload is unsigned (as the SDK's own streams are):
   * S3 checks its Content-MD5, and the CRC32 the SDK sends of its own on AWS (counted from a
   * reading of the stream first: the SDK would count it of the empty body).
   */
  async #putReopened(
    name: string,
    first: ReadableStream<Uint8Array>,
    opts: SaveOptions & Reopenable,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const opened: Readable[] = [];
    let next: ReadableStream<Uint8Array> | null = first;
    // The SDK pipes a body and hears none of its errors: a failing read ends the request here.
    const failed = new AbortController();
    let sourceError: unknown = null;
    const fail = (err: unknown) => {
      sourceError ??= err;
      failed.abort(err);
    };
    const body = async () => {
      const s = next ?? await opts.reopen();
      next = null;
      const r = Readable.fromWeb(guardStream(s, name, opts, () => {}).stream as NodeReadableStream);
      r.on("error", fail); // (fail is idempotent)
      opened.push(r);
      return r;
    };
    try {
      const crc = this.#checksums === "WHEN_SUPPORTED"
        ? await crc32Of(await opts.reopen()).catch((err) => {
          fail(err);
          throw err;
        })
        : null;
      const command = new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.key(name),
        Body: new Uint8Array(0),
        ContentLength: opts.size,
        ...(crc !== null ? { ChecksumCRC32: crc } : {}),
        ...(opts.storageClass ? { StorageClass: opts.storageClass as StorageClass } : {}),
        ...lockParams(opts, opts.md5),
      });
      command.middlewareStack.add(unsignedPayload(), { step: "build", name: "s3backupUnsigned" });
      command.middlewareStack.add(bodyEachAttempt(body), {
        step: "finalizeRequest",
        priority: "low", // inside the SDK's retries
        name: "s3backupBodyEachAttempt",
      });
      signal?.throwIfAborted();
      await this.client.send(command, this.#opts(anySignal(signal, failed.signal)));
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (sourceError instanceof S3BackupError) throw sourceError;
      if (sourceError !== null) {
        throw new S3BackupError(`Cannot read ${name} to store it: ${messageOf(sourceError)}`, {
          cause: sourceError,
        });
      }
      if (err instanceof S3BackupError) throw err;
      throw this.#mapError(err, "PutObject", name);
    } finally {
      if (next !== null) await next.cancel().catch(() => {});
      for (const r of opened) r.destroy();
    }
  }

  async checkExists(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), this.#opts());
    } catch (err) {
      throw this.#mapError(err, "HeadBucket", undefined, true);
    }
  }

  async save(
    name: string,
    data: Uint8Array | ReadableStream<Uint8Array>,
    opts: SaveOptions = {},
  ): Promise<void> {
    checkObjectName(name);
    const signal = anySignal(this.#signal, opts.signal);
    if (data instanceof ReadableStream && reopenable(opts)) {
      return await this.#putReopened(name, data, opts, signal);
    }
    // A conditional create, or bytes of known MD5, is one PUT of known bytes (SaveOptions).
    if ((opts.ifAbsent || opts.md5 !== undefined) && data instanceof ReadableStream) {
      data = await readAll(guardStream(data, name, opts, () => {}).stream, opts.size);
    }
    if (!(data instanceof ReadableStream)) {
      if (opts.size !== undefined && opts.size !== data.byteLength) {
        throw new S3BackupError(
          `Size mismatch saving ${name}: expected ${opts.size} bytes, got ${data.byteLength}`,
        );
      }
      signal?.throwIfAborted();
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.key(name),
            Body: data,
            ContentLength: data.byteLength,
            ...(opts.storageClass ? { StorageClass: opts.storageClass as StorageClass } : {}),
            ...(opts.ifAbsent ? { IfNoneMatch: "*" } : {}),
            ...lockParams(
              opts,
              opts.md5 ??
                (opts.retention ? createHash("md5").update(data).digest("base64") : undefined),
            ),
          }),
          this.#opts(signal),
        );
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (opts.ifAbsent && isConditionFailed(err)) {
          throw new ObjectExistsError(name, { cause: err });
        }
        throw this.#mapError(err, "PutObject", name);
      }
      return;
    }

    let sourceError: { err: unknown } | undefined;
    const guard = guardStream(data, name, opts, (err) => sourceError = { err });
    const client = new UploadClient(this.client);
    let upload: Upload | undefined;
    const onAbort = () => {
      guard.cancel(signal?.reason);
      upload?.abort().catch(() => {});
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      signal?.throwIfAborted();
      upload = new Upload({
        client: client as unknown as S3Client,
        params: {
          Bucket: this.bucket,
          Key: this.key(name),
          Body: guard.stream,
          ...(opts.size !== undefined ? { ContentLength: opts.size } : {}),
          ...(opts.storageClass ? { StorageClass: opts.storageClass as StorageClass } : {}),
          ...lockParams(opts),
        },
        partSize: PART_SIZE,
        queueSize: QUEUE_SIZE,
        leavePartsOnError: false,
      });
      await upload.done();
      // Some servers keep no lock headers of a multipart upload (Ceph RGW 16 and moto store the
      // object unlocked): the retention is set on the object made, so it holds on every server.
      if (opts.retention && client.uploadId !== undefined) await this.retain(name, opts.retention);
    } catch (err) {
      guard.cancel(err);
      // An aborted Upload rejects at once, leaves its requests running and may learn its
      // upload id only afterwards: stop them, wait for them, then abort that id ourselves.
      await client.settle(signal?.aborted === true);
      await this.#abortMultipart(name, client.uploadId);
      if (sourceError) throw sourceError.err;
      if (signal?.aborted) throw signal.reason;
      if (err instanceof S3BackupError) throw err;
      throw this.#mapError(err, "upload", name);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  async load(name: string, versionId?: string): Promise<ReadableStream<Uint8Array>> {
    checkObjectName(name);
    let part = await this.#get(name, versionId);
    if (!part.body) return new ReadableStream({ start: (c) => c.close() });
    // Pass the body through, with errors made readable and a short read detected. A body cut
    // off (the connection reset, or fewer bytes than announced) is resumed where it stopped:
    // a ranged GET of the same version (If-Match its ETag), up to the attempts a request has.
    const length = part.length;
    let reader = part.body.getReader();
    let received = 0;
    let resumes = 0;
    const resume = async (why: string): Promise<void> => {
      reader.cancel().catch(() => {});
      if (resumes + 1 >= this.#attempts || length === undefined || part.etag === undefined) {
        throw new S3BackupError(`Download of ${this.location}/${name} ${why}`);
      }
      resumes++;
      this.#onNotice?.(
        `download of ${name} ${why}: resuming at byte ${received} ` +
          `(attempt ${resumes + 1} of ${this.#attempts})`,
      );
      part = await this.#get(name, versionId, { from: received, etag: part.etag });
      if (!part.body) throw new S3BackupError(`Download of ${this.location}/${name} ${why}`);
      reader = part.body.getReader();
    };
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        for (;;) {
          let r: ReadableStreamReadResult<Uint8Array>;
          try {
            r = await reader.read();
          } catch (err) {
            const net = networkCode(err);
            if (net === undefined) throw this.#mapError(err, "GetObject", name);
            await resume(`interrupted: ${net}`);
            continue;
          }
          if (r.done) {
            if (length !== undefined && received !== length) {
              await resume(`ended after ${received} of ${length} bytes`);
              continue;
            }
            controller.close();
            return;
          }
          received += r.value.byteLength;
          controller.enqueue(r.value);
          return;
        }
      },
      cancel: (reason) => reader.cancel(reason),
    }, { highWaterMark: 0 });
  }

  /** One GetObject: the body, the object's whole length and ETag; from byte `from` if asked. */
  async #get(
    name: string,
    versionId?: string,
    range?: { from: number; etag: string },
  ): Promise<{ body?: ReadableStream<Uint8Array>; length?: number; etag?: string }> {
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.key(name),
          ...(versionId ? { VersionId: versionId } : {}),
          ...(range ? { Range: `bytes=${range.from}-`, IfMatch: range.etag } : {}),
        }),
        this.#opts(),
      );
      if (range && !out.ContentRange?.startsWith(`bytes ${range.from}-`)) {
        // A store that ignores Range would send the object from its start again.
        out.Body?.transformToWebStream().cancel().catch(() => {});
        throw new S3BackupError(
          `Download of ${this.location}/${name} cannot resume at byte ${range.from}: ` +
            `the store answered ${out.ContentRange ?? "without a range"}`,
        );
      }
      const total = range ? Number(out.ContentRange?.split("/")[1]) : out.ContentLength;
      return {
        body: out.Body?.transformToWebStream() as ReadableStream<Uint8Array> | undefined,
        length: total !== undefined && Number.isFinite(total) ? total : undefined,
        etag: out.ETag,
      };
    } catch (err) {
      if (err instanceof S3BackupError) throw err;
      if ((err as { name?: string }).name === "InvalidObjectState") {
        throw new ObjectArchivedError(name, { cause: err });
      }
      throw this.#mapError(err, "GetObject", name);
    }
  }

  /** The object's facts; of version `versionId` when given (its own retention, class...). */
  async stat(name: string, versionId?: string): Promise<ObjectInfo | null> {
    checkObjectName(name);
    try {
      const out = await this.client.send(
        new HeadObjectCommand({
          Bucket: this.bucket,
          Key: this.key(name),
          ...(versionId ? { VersionId: versionId } : {}),
        }),
        this.#opts(),
      );
      const info: ObjectInfo = {
        name,
        size: out.ContentLength ?? 0,
        mtime: out.LastModified ?? new Date(0),
      };
      const etag = out.ETag?.replace(/^"|"$/g, "");
      if (etag) info.etag = etag;
      if (out.StorageClass) info.storageClass = out.StorageClass;
      if (out.ObjectLockRetainUntilDate) info.retainUntil = out.ObjectLockRetainUntilDate;
      if (out.ObjectLockMode) info.retainMode = out.ObjectLockMode;
      if (out.Restore) {
        info.restore = /ongoing-request\s*=\s*"true"/.test(out.Restore) ? "ongoing" : "done";
      }
      return info;
    } catch (err) {
      const mapped = this.#mapError(err, "HeadObject", name);
      if (mapped instanceof ObjectNotFoundError) return null;
      throw mapped;
    }
  }

  async objectLock(): Promise<boolean> {
    try {
      const out = await this.client.send(
        new GetObjectLockConfigurationCommand({ Bucket: this.bucket }),
        this.#opts(),
      );
      return out.ObjectLockConfiguration?.ObjectLockEnabled === "Enabled";
    } catch (err) {
      if ((err as { name?: string }).name === "ObjectLockConfigurationNotFoundError") return false;
      throw this.#mapError(err, "GetObjectLockConfiguration", undefined, true);
    }
  }

  async versioning(): Promise<boolean> {
    try {
      const out = await this.client.send(
        new GetBucketVersioningCommand({ Bucket: this.bucket }),
        this.#opts(),
      );
      return out.Status === "Enabled" || out.Status === "Suspended";
    } catch (err) {
      throw this.#mapError(err, "GetBucketVersioning", undefined, true);
    }
  }

  async removeVersions(names: string[]): Promise<{ retained: string[] }> {
    const wanted = new Set(names.map((n) => this.key(n)));
    const versions: { Key: string; VersionId: string }[] = [];
    // Under the names' common prefix (`meta_` for metas): not every version of the bucket.
    for await (const v of this.#versions(commonPrefix(names))) {
      if (wanted.has(v.key)) versions.push({ Key: v.key, VersionId: v.versionId });
    }
    const retained = new Set<string>();
    for (let i = 0; i < versions.length; i += DELETE_BATCH) {
      let out;
      try {
        out = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: versions.slice(i, i + DELETE_BATCH), Quiet: true },
          }),
          this.#opts(),
        );
      } catch (err) {
        throw this.#mapError(err, "DeleteObjects");
      }
      for (const e of out.Errors ?? []) {
        if (e.Code === "NoSuchKey" || e.Code === "NoSuchVersion") continue;
        if (e.Code !== "AccessDenied" || e.Key === undefined) {
          throw new S3BackupError(
            `Cannot delete ${e.Key} (version ${e.VersionId}) from ${this.location}: ` +
              `${e.Code ?? "error"}${e.Message ? ` (${e.Message})` : ""}`,
          );
        }
        retained.add(e.Key.slice(this.prefix ? this.prefix.length + 1 : 0));
      }
    }
    return { retained: [...retained] };
  }

  /**
   * The store as it was at `time`, read-only (--as-of): each name's newest version written at
   * or before then, unless that is a delete marker; later versions and delete markers are not
   * seen. One listing of every version, kept in memory.
   */
  async asOf(time: Date): Promise<Store> {
    const base = this.prefix ? this.prefix.length + 1 : 0;
    const at = new Map<string, { info: ObjectInfo; versionId: string } | null>();
    const newest = new Map<string, number>();
    for await (const { key, versionId, time: t, v } of this.#versions("")) {
      if (t.getTime() > time.getTime() || t.getTime() <= (newest.get(key) ?? -Infinity)) continue;
      newest.set(key, t.getTime());
      const name = key.slice(base);
      if (v.deleteMarker) {
        at.set(name, null);
        continue;
      }
      const info: ObjectInfo = { name, size: v.Size ?? 0, mtime: t };
      const etag = v.ETag?.replace(/^"|"$/g, "");
      if (etag) info.etag = etag;
      if (v.StorageClass) info.storageClass = v.StorageClass;
      at.set(name, { info, versionId });
    }
    return versionView(this, at, time);
  }

  /** Every version and delete marker under `prefix` (keys with the store's prefix). */
  async *#versions(prefix: string) {
    const base = this.prefix ? `${this.prefix}/` : "";
    let keyMarker: string | undefined, versionMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectVersionsCommand({
            Bucket: this.bucket,
            Prefix: base + prefix,
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(versionMarker ? { VersionIdMarker: versionMarker } : {}),
          }),
          this.#opts(),
        );
      } catch (err) {
        throw this.#mapError(err, "ListObjectVersions", undefined, true);
      }
      const all = [
        ...(page.Versions ?? []).map((v) => ({ ...v, deleteMarker: false })),
        ...(page.DeleteMarkers ?? []).map((v) => ({
          ...v,
          deleteMarker: true,
          Size: 0,
          ETag: undefined,
          StorageClass: undefined,
        })),
      ];
      for (const v of all) {
        if (v.Key === undefined || v.VersionId === undefined || !v.Key.startsWith(base)) continue;
        yield { key: v.Key, versionId: v.VersionId, time: v.LastModified ?? new Date(0), v };
      }
      const more = page.IsTruncated === true;
      keyMarker = more ? page.NextKeyMarker : undefined;
      versionMarker = more ? page.NextVersionIdMarker : undefined;
    } while (keyMarker);
  }

  async retain(name: string, r: ObjectRetention): Promise<void> {
    checkObjectName(name);
    try {
      await this.client.send(
        new PutObjectRetentionCommand({
          Bucket: this.bucket,
          Key: this.key(name),
          Retention: { Mode: r.mode, RetainUntilDate: r.until },
        }),
        this.#opts(),
      );
    } catch (err) {
      throw this.#mapError(err, "PutObjectRetention", name);
    }
  }

  async requestRestore(name: string, req: RestoreRequest): Promise<"requested" | "in progress"> {
    checkObjectName(name);
    try {
      await this.client.send(
        new RestoreObjectCommand({
          Bucket: this.bucket,
          Key: this.key(name),
          RestoreRequest: { Days: req.days, GlacierJobParameters: { Tier: req.tier } },
        }),
        this.#opts(),
      );
      return "requested";
    } catch (err) {
      if ((err as { name?: string }).name === "RestoreAlreadyInProgress") return "in progress";
      throw this.#mapError(err, "RestoreObject", name);
    }
  }

  async *list(prefix = ""): AsyncIterable<ObjectInfo> {
    const base = this.prefix ? `${this.prefix}/` : "";
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: base + prefix,
            ...(token ? { ContinuationToken: token } : {}),
          }),
          this.#opts(),
        );
      } catch (err) {
        throw this.#mapError(err, "ListObjectsV2", undefined, true);
      }
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || !o.Key.startsWith(base)) continue;
        const info: ObjectInfo = {
          name: o.Key.slice(base.length),
          size: o.Size ?? 0,
          mtime: o.LastModified ?? new Date(0),
        };
        const etag = o.ETag?.replace(/^"|"$/g, "");
        if (etag) info.etag = etag;
        if (o.StorageClass) info.storageClass = o.StorageClass;
        yield info;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async remove(names: string[], opts: RemoveOptions = {}): Promise<void> {
    for (const name of names) checkObjectName(name);
    const send = this.#opts(opts.signal, opts.signal !== undefined);
    for (let i = 0; i < names.length; i += DELETE_BATCH) {
      const batch = names.slice(i, i + DELETE_BATCH);
      // One name (a lock): DeleteObject, which a policy allowing s3:DeleteObject on that name
      // allows everywhere; Ceph RGW checks a DeleteObjects against the bucket and refuses it.
      if (!this.#singleDeletes && batch.length > 1) {
        try {
          await this.#deleteBatch(batch, send);
          continue;
        } catch (err) {
          if (!isDeleteObjectsUnsupported(err) && !isAccessDenied(err)) {
            throw err instanceof S3BackupError ? err : this.#mapError(err, "DeleteObjects");
          }
          // Not understood, or refused as a whole (RGW, above): one DeleteObject a name.
          this.#singleDeletes = true;
        }
      }
      await this.#deleteEach(batch, send);
    }
  }

  async #abortMultipart(name: string, uploadId: string | undefined): Promise<void> {
    if (uploadId === undefined) return;
    await this.client.send(
      new AbortMultipartUploadCommand({
        Bucket: this.bucket,
        Key: this.key(name),
        UploadId: uploadId,
      }),
      { abortSignal: AbortSignal.timeout(15_000) },
    ).catch(() => {});
  }

  async abortUploads(before: Date): Promise<number> {
    const prefix = this.prefix ? `${this.prefix}/` : "";
    let aborted = 0;
    let keyMarker: string | undefined, idMarker: string | undefined;
    do {
      let page: ListMultipartUploadsCommandOutput;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: prefix,
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(idMarker ? { UploadIdMarker: idMarker } : {}),
          }),
          this.#opts(),
        );
      } catch (err) {
        throw this.#mapError(err, "ListMultipartUploads", undefined, true);
      }
      const old = (page.Uploads ?? []).filter((u) =>
        u.Key !== undefined && u.UploadId !== undefined &&
        (u.Initiated?.getTime() ?? 0) < before.getTime()
      );
      await pool(old, SINGLE_DELETE_CONCURRENCY, async (u) => {
        try {
          await this.client.send(
            new AbortMultipartUploadCommand({
              Bucket: this.bucket,
              Key: u.Key,
              UploadId: u.UploadId,
            }),
            this.#opts(),
          );
          aborted++;
        } catch (err) {
          const mapped = this.#mapError(err, "AbortMultipartUpload", u.Key!.slice(prefix.length));
          if (!(mapped instanceof ObjectNotFoundError)) throw mapped;
        }
      });
      const more = page.IsTruncated === true;
      keyMarker = more ? page.NextKeyMarker : undefined;
      idMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return aborted;
  }

  async #deleteBatch(batch: string[], send: { abortSignal?: AbortSignal }): Promise<void> {
    const out = await this.client.send(
      new DeleteObjectsCommand({
        Bucket: this.bucket,
        Delete: { Objects: batch.map((n) => ({ Key: this.key(n) })), Quiet: true },
      }),
      send,
    );
    const errors = (out.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
    const first = errors[0];
    if (first) {
      throw new S3BackupError(
        `Cannot delete ${errors.length} object(s) from ${this.location}: ` +
          `${first.Key}: ${first.Code ?? "error"}${first.Message ? ` (${first.Message})` : ""}`,
      );
    }
  }

  async #deleteEach(batch: string[], send: { abortSignal?: AbortSignal }): Promise<void> {
    await pool(batch, SINGLE_DELETE_CONCURRENCY, async (name) => {
      try {
        await this.client.send(
          new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(name) }),
          send,
        );
      } catch (err) {
        const mapped = this.#mapError(err, "DeleteObject", name);
        if (!(mapped instanceof ObjectNotFoundError)) throw mapped;
      }
    });
  }

  /**
   * One S3BackupError for any SDK / network error. `name`: the object concerned (a 404 is then
   * ObjectNotFoundError); `bucketLevel`: a 404 means the bucket is missing.
   */
  #mapError(err: unknown, op: string, name?: string, bucketLevel = false): S3BackupError {
    if (err instanceof S3BackupError) return err;
    const e = (err ?? {}) as {
      name?: string;
      Code?: string;
      code?: string;
      message?: string;
      $metadata?: { httpStatusCode?: number };
      cause?: { code?: string; message?: string };
    };
    const rawCode = e.Code ?? e.name ?? "";
    // Errors of HEAD requests have no body: the SDK then names them "Unknown" / "NotFound".
    const code = rawCode === "Unknown" || rawCode === "UnknownError" ? "" : rawCode;
    const status = e.$metadata?.httpStatusCode;
    const msg = firstLine(e.message ?? String(err));
    const where = name !== undefined ? `${this.location}/${name}` : this.location;
    const options = { cause: err };

    if (code === "NoSuchBucket") {
      return new RepositoryNotFoundError(`Bucket not found: ${this.bucket}`, options);
    }
    if (code === "NoSuchKey" || code === "NotFound" || status === 404) {
      if (bucketLevel || name === undefined) {
        return new RepositoryNotFoundError(`Bucket not found: ${this.bucket}`, options);
      }
      return new ObjectNotFoundError(name, options);
    }
    if (
      code === "InvalidAccessKeyId" || code === "SignatureDoesNotMatch" ||
      code === "AccessDenied" || code === "Forbidden" || code === "InvalidToken" ||
      code === "ExpiredToken" || code === "TokenRefreshRequired" || status === 403
    ) {
      const why = code === "InvalidAccessKeyId"
        ? "the access key ID is not known to the server"
        : code === "SignatureDoesNotMatch"
        ? "the secret access key is wrong"
        : code === "ExpiredToken" || code === "TokenRefreshRequired"
        ? "the session token has expired"
        : code === "InvalidToken"
        ? "the session token is invalid"
        : code === "AccessDenied"
        ? "access denied"
        : "access denied: check the credentials and the bucket's permissions";
      // Credentials refused are every request's; access denied may be one object's (a policy).
      const global = code !== "AccessDenied" && code !== "Forbidden" && code !== "";
      return new (global ? CredentialsRefusedError : S3BackupError)(
        `S3 ${op} on ${where}: ${why} (${code || `HTTP ${status}`})`,
        options,
      );
    }
    if (code === "CredentialsProviderError" || /Could not load credentials/i.test(msg)) {
      return new CredentialsRefusedError(
        this.#profile
          ? `No AWS credentials found for profile "${this.#profile}" ` +
            "(~/.aws/credentials, ~/.aws/config)"
          : "No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, " +
            "AWS_PROFILE or ~/.aws/credentials",
        options,
      );
    }
    if (isTimeout(err)) {
      const first = this.#answered ? "" : ", the first request to it";
      return new StoreUnavailableError(
        `No answer from ${this.endpoint} within ${this.#attemptMs() / 1000} s ` +
          `(${this.#attempts} attempts${first}; see --timeout)`,
        options,
      );
    }
    const netCode = networkCode(err);
    if (netCode !== undefined) {
      return new StoreUnavailableError(`Cannot reach ${this.endpoint}: ${netCode}`, options);
    }
    const detail = code && code !== "Error" && !msg.startsWith(code) ? `${code}: ${msg}` : msg;
    return new S3BackupError(
      `S3 ${op} on ${where} failed: ${detail || "unknown error"}${
        status && status >= 300 ? ` (HTTP ${status})` : ""
      }`,
      options,
    );
  }
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "ECONNABORTED",
  "TimeoutError",
  "RequestTimeout",
]);

/** A request or socket timeout of the HTTP handler (an attempt that got no answer in time). */
function isTimeout(err: unknown): boolean {
  const timedOut = /requestTimeout|socket timed out|connection timed out/i;
  return findCause(err, (e) => timedOut.test(stringField(e, "message"))) !== null;
}

/** "ECONNREFUSED", "ENOTFOUND", ... (with the OS message) for a network-level failure. */
function networkCode(err: unknown): string | undefined {
  const codeOf = (e: object) => stringField(e, "code") || stringField(e, "name");
  const e = findCause(
    err,
    (e) => NETWORK_CODES.has(codeOf(e)) || e instanceof Deno.errors.ConnectionRefused,
  );
  if (e === null) return undefined;
  if (!NETWORK_CODES.has(codeOf(e))) return `ECONNREFUSED (${firstLine(String(e))})`;
  const code = codeOf(e), msg = firstLine(stringField(e, "message"));
  return msg && !msg.includes(code) ? `${code} (${msg})` : msg || code;
}

/** Field `name` of `e` when it is a string, else "". */
function stringField(e: object, name: string): string {
  const v = (e as Record<string, unknown>)[name];
  return typeof v === "string" ? v : "";
}

/** A request refused as a whole for want of permission (403 AccessDenied). */
function isAccessDenied(err: unknown): boolean {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  return (e?.Code ?? e?.name) === "AccessDenied" || e?.$metadata?.httpStatusCode === 403;
}

/**
 * The errors of a store that does not take DeleteObjects as the SDK sends it (e.g. it rejects
 * the x-amz-checksum-crc32 header, wants Content-MD5, or does not implement it).
 */
function isDeleteObjectsUnsupported(err: unknown): boolean {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  const code = e?.Code ?? e?.name ?? "";
  const status = e?.$metadata?.httpStatusCode;
  return [
    "NotImplemented",
    "InvalidRequest",
    "MissingContentMD5",
    "InvalidDigest",
    "BadDigest",
    "InvalidArgument",
    "XAmzContentSHA256Mismatch",
    "XAmzContentChecksumMismatch",
    "MethodNotAllowed",
  ].includes(code) || status === 400 || status === 405 || status === 501;
}

/** A conditional write refused: 412 PreconditionFailed, or 409 when another one raced it. */
function isConditionFailed(err: unknown): boolean {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  const code = e?.Code ?? e?.name ?? "";
  return status === 412 || code === "PreconditionFailed" || status === 409 ||
    code === "ConditionalRequestConflict";
}

/** A signal aborted when any of `signals` is (undefined when none is given). */
function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const given = signals.filter((s): s is AbortSignal => s !== undefined);
  return given.length <= 1 ? given[0] : AbortSignal.any(given);
}

function firstLine(s: string): string {
  return (s.split("\n")[0] ?? "").trim();
}

/**
 * The client as one multipart upload sees it: it remembers the upload id and the requests in
 * flight, so that after a failure they can be stopped (parts) or awaited (the create, whose id
 * is needed) before the upload is aborted; a part still landing after an abort could leave the
 * upload pending again.
 */
class UploadClient {
  uploadId: string | undefined;
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #parts = new AbortController();

  constructor(readonly inner: S3Client) {}

  get config(): S3Client["config"] {
    return this.inner.config;
  }

  send(command: Parameters<S3Client["send"]>[0], options?: { abortSignal?: AbortSignal }) {
    const isPart = command instanceof UploadPartCommand;
    const signal = isPart ? anySignal(options?.abortSignal, this.#parts.signal) : undefined;
    const p = this.inner.send(command, signal ? { ...options, abortSignal: signal } : options);
    this.#inflight.add(p);
    p.then((out) => {
      if (command instanceof CreateMultipartUploadCommand) {
        this.uploadId = (out as { UploadId?: string }).UploadId;
      }
    }, () => {}).finally(() => this.#inflight.delete(p));
    return p;
  }

  /**
   * Cancels the parts in flight and waits for every request to end: at most 15 s, or 2 s with
   * `hurry` (the run is being stopped). A create that answers later leaves its upload to the
   * sweep of stale uploads.
   */
  async settle(hurry: boolean): Promise<void> {
    this.#parts.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((r) => timer = setTimeout(r, hurry ? 2_000 : 15_000));
    await Promise.race([Promise.allSettled([...this.#inflight]), late]);
    clearTimeout(timer);
  }
}

/**
 * The Object Lock parameters of a save (none without `opts.retention`). Servers want a
 * checksum with them (AWS: Content-MD5 or a flexible checksum): one PUT gets its `md5` as
 * Content-MD5, a multipart upload's parts a CRC32.
 */
function lockParams(opts: SaveOptions, md5?: string) {
  const r = opts.retention;
  const checksum = md5 !== undefined ? { ContentMD5: md5 } : {};
  if (r === undefined) return checksum;
  return {
    ObjectLockMode: r.mode,
    ObjectLockRetainUntilDate: r.until,
    // Multipart: each part (buffered by the upload) carries a CRC32, which AWS demands of the
    // parts of an upload with lock headers ("Content-MD5 OR x-amz-checksum-").
    ...(md5 !== undefined ? checksum : { ChecksumAlgorithm: "CRC32" as const }),
  };
}

type Reopenable = Required<Pick<SaveOptions, "reopen" | "md5" | "size">>;

/** A save S3Store sends as a stream with retries of its own making (#putReopened). */
function reopenable(opts: SaveOptions): opts is SaveOptions & Reopenable {
  return opts.reopen !== undefined && opts.md5 !== undefined && opts.size !== undefined &&
    !opts.ifAbsent;
}

/** The CRC32 of a stream, as S3's x-amz-checksum-crc32 (base64 of its 4 bytes, big-endian). */
async function crc32Of(stream: ReadableStream<Uint8Array>): Promise<string> {
  let c = 0;
  for await (const chunk of stream) c = crc32(chunk, c);
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, c >>> 0);
  return btoa(String.fromCharCode(...b));
}

/** A build middleware: the request's payload is not signed (its body is put in later). */
function unsignedPayload() {
  // deno-lint-ignore no-explicit-any
  return (next: any) => (args: unknown) => {
    const headers = (args as { request: { headers?: Record<string, string> } }).request.headers;
    if (headers) headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
    return next(args);
  };
}

/** A middleware inside the SDK's retries: each attempt's body from `body`. */
function bodyEachAttempt(body: () => Promise<Readable>) {
  // deno-lint-ignore no-explicit-any
  return (next: any) => async (args: unknown) => {
    (args as { request: { body?: unknown } }).request.body = await body();
    return next(args);
  };
}

/** A read-only view of `store` through the versions of `at` (S3Store.asOf). */
function versionView(
  store: S3Store,
  at: Map<string, { info: ObjectInfo; versionId: string } | null>,
  time: Date,
): Store {
  const readOnly = () =>
    Promise.reject(
      new UsageError(`${store.location} as of ${time.toISOString()} is read-only (--as-of)`),
    );
  return {
    location: store.location,
    kind: store.kind,
    checkExists: () => store.checkExists(),
    save: readOnly,
    remove: readOnly,
    async load(name) {
      const v = at.get(name);
      if (!v) throw new ObjectNotFoundError(name);
      return await store.load(name, v.versionId);
    },
    // A HEAD of that version: a listing of versions has no retention or archive state.
    async stat(name) {
      const v = at.get(name);
      return v ? await store.stat(name, v.versionId) : null;
    },
    async *list(prefix = "") {
      for (const [name, v] of at) if (v && name.startsWith(prefix)) yield v.info;
    },
  };
}

/** The longest prefix every one of `names` starts with. */
function commonPrefix(names: string[]): string {
  let p = names[0] ?? "";
  for (const n of names) while (!n.startsWith(p)) p = p.slice(0, -1);
  return p;
}
