/**
 * Where a format 3 backup's contents go (FORMAT.md §4): contents below a quarter of the pack
 * size into packs (pack.ts `PackBuilder`), larger ones into `data/<md5>[.gz]` objects, each
 * gzipped when that shrinks it; then one index object for what this run stored. What the store
 * holds already comes from its indexes (repo/pack_index_store.ts), checked against listings.
 *
 * A pack is stored by the worker whose content filled it (so at most one pack per worker is in
 * flight: memory stays bounded); `finish` stores the last one and the index, before the meta.
 */
import { encryptedSize } from "../../format/container.ts";
import { newObjectId, packKey, placeOf } from "../../format/layout.ts";
import {
  type FinishedPack,
  GZIP_LEVEL,
  PackBuilder,
  PROBE,
  probeShrinks,
} from "../../format/pack.ts";
import type { IndexEntry } from "../../format/pack_index.ts";
import {
  eachIndexed,
  listStored,
  type StoredObjects,
  writeIndex,
} from "../../repo/pack_index_store.ts";
import { dataEncryptor, encryptObject, type Repository } from "../../repo/repository.ts";
import type { SaveOptions, Store } from "../../store/store.ts";
import { releaseMemory } from "../../util/memory.ts";
import { Slots } from "../../util/pool.ts";
import { DeflatePool, gzipBlocks } from "../../util/deflate_pool.ts";
import { Md5Map } from "../../repo/md5_map.ts";
import type { ContentSink, ReadOnce, Stored } from "./file_reader.ts";
import { CountedPack, PackSpool, type SpooledObject, SpooledPack } from "./pack_spool.ts";
import { createHash } from "node:crypto";

type Sink = SpooledPack | CountedPack;

/** Packs being stored at once (each streamed from its spool file: S3Store's #putReopened). */
const PACKS_IN_FLIGHT = 2;

/**
 * The smallest `data/` content gzipped by Workers: two Workers cost ~45 MiB and ~0.1 s to start,
 * which 32 MiB of deflate on one thread (~0.2 s) pays for.
 */
const PARALLEL_GZIP = 32 * 1024 * 1024;
const MAIN_THREAD = new DeflatePool(0);

/**
 * The largest content read once into a spool file (`readOnce`): its gzip, at most about as
 * large, is one PUT (S3 takes up to 5 GiB in one) and that much room in the cache folder.
 */
const SPOOL_MAX = 2 * 1024 * 1024 * 1024;

/** Contents an index object names at most (FORMAT.md §4.3): about 4 MiB of text. */
export const INDEX_ENTRIES = 65_536;

/** The default pack size (FORMAT.md §4.1: one PUT, restic's default). */
export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;

export interface PackerOptions {
  packSize?: number;
  /** The cache root (index objects under `index/<id>/`), or null. */
  cacheRoot: string | null;
  saveOptions: SaveOptions;
  /** Store nothing: sizes only. */
  simulate: boolean;
  /** Contents an index object names at most (default INDEX_ENTRIES; tests use fewer). */
  indexEntries?: number;
  /** An index that does not open: its contents are stored again. */
  onBadIndex?: (name: string, err: unknown) => void;
  /** `n` index entries name objects that are not there whole: stored again when used. */
  onAbsent?: (n: number) => void;
  signal?: AbortSignal;
  /**
   * What the store holds, being listed already (the caller started it early; undefined: not
   * listed), else listed here.
   */
  stored?: Promise<StoredObjects | undefined>;
}

export class Packer implements ContentSink {
  newObjects = 0;
  bytesUploaded = 0;
  /** MD5 -> where, of every content known stored (or being stored by this run). */
  readonly #where = new Md5Map();
  readonly #inflight = new Map<string, Promise<Stored>>();
  readonly #ours = new Set<string>();
  readonly #entries: IndexEntry[] = [];
  /** Pack id -> its stored size, of the packs this run stored. */
  readonly #packSizes = new Map<string, number>();
  readonly #builder: PackBuilder<Sink>;
  readonly #spool: PackSpool;
  readonly #slots = new Slots(PACKS_IN_FLIGHT);
  readonly #small: number;
  /** The sizes of the `data/` contents known stored: one of another size is new (readOnce). */
  readonly #dataSizes = new Set<number>();
  /** The Workers that gzip `data/` contents, started by the first (deflate_pool.ts). */
  #deflate: DeflatePool | null = null;

  private constructor(
    readonly store: Store,
    readonly repo: Repository | null,
    readonly opts: PackerOptions,
  ) {
    const size = opts.packSize ?? DEFAULT_PACK_SIZE;
    this.#spool = new PackSpool(opts.cacheRoot);
    this.#builder = new PackBuilder<Sink>(size, newObjectId, (id) => this.#openPack(id));
    this.#small = Math.floor(size / 4);
  }

  /**
   * A packer knowing what `repo` holds (three listings, the indexes not cached yet), storing
   * into `store` (the repository's store, maybe throttled).
   */
  static async open(store: Store, repo: Repository | null, opts: PackerOptions): Promise<Packer> {
    const p = new Packer(store, repo, opts);
    if (repo === null) return p;
    const stored: StoredObjects = await opts.stored ?? await listStored(repo.store);
    const absent = await eachIndexed(
      repo,
      stored,
      opts.cacheRoot,
      (e) => p.#remember(e.md5, e.where, e.plain),
      opts.onBadIndex ?? (() => {}),
      opts.signal,
    );
    if (absent > 0) opts.onAbsent?.(absent);
    return p;
  }

  /** Where a new pack goes as it fills: its spool file, or a count (a dry run). */
  #openPack(id: string): Sink {
    if (this.opts.simulate || this.repo === null) return new CountedPack();
    return this.#spool.open(id, dataEncryptor(this.repo));
  }

  /** Removes the spool folder and what a failed run left in it. */
  close(): void {
    this.#spool.remove();
    this.#deflate?.close();
  }

  /** How many contents are known stored. */
  get known(): number {
    return this.#where.size;
  }

  #remember(md5: string, where: string, plain?: number): void {
    this.#where.set(md5, where);
    if (plain !== undefined && where.startsWith("data")) this.#dataSizes.add(plain);
  }

  whereOf(md5: string, _size: number): string | null {
    return this.#where.get(md5) ?? null;
  }

  names(): Iterable<string> {
    return this.#ours;
  }

  stored(key: string): boolean {
    return this.#ours.has(key);
  }

  small(md5: string, data: Uint8Array): Promise<Stored> {
    return this.#once(md5, () => this.#storeSmall(md5, data));
  }

  big(md5: string, size: number, open: () => ReadableStream<Uint8Array>): Promise<Stored> {
    return this.#once(md5, () => this.#storeData(md5, size, open()));
  }

  /**
   * A large content that gzips (its first 64 KiB say so), read once: hashed, gzipped and
   * encrypted into a spool file as `body` streams (its name, the MD5, known only at the end);
   * `commit` stores that file as `data/<md5>.gz` unless the content is stored, and removes it.
   * null (and `body` cancelled) when the content would not gzip, is above SPOOL_MAX, may be
   * stored already (a `data/` content of its size is), the spool has no room for it, or the run
   * stores nothing: the caller hashes it, then streams it again only if it is not stored (`big`).
   */
  async readOnce(size: number, body: ReadableStream<Uint8Array>): Promise<ReadOnce | null> {
    const maybeStored = this.#dataSizes.has(size);
    if (this.opts.simulate || this.repo === null || size > SPOOL_MAX || maybeStored) {
      await body.cancel();
      return null;
    }
    const [head, rest] = await peek(body, PROBE);
    if (!probeShrinks(head)) {
      await rest.cancel();
      return null;
    }
    const hash = createHash("md5"), file = this.#spool.object();
    let plain = 0, stored = 0;
    try {
      const hashed = counter((n, chunk) => {
        plain += n;
        hash.update(chunk);
      });
      await rest.pipeThrough(hashed)
        .pipeThrough(gzipBlocks(this.#deflater(size), GZIP_LEVEL))
        .pipeThrough(counter((n) => stored += n))
        .pipeThrough(encryptObject(this.repo))
        .pipeTo(await file.writable());
    } catch (err) {
      file.remove();
      if (file.failed) return null; // no room to spool it: streamed instead (`big`)
      throw err;
    }
    const md5 = hash.digest("hex");
    return {
      md5,
      size: plain,
      commit: () =>
        this.#once(md5, () => this.#storeSpooled(md5, plain, stored, file)).finally(() =>
          file.remove()
        ),
      discard: () => file.remove(),
    };
  }

  /** A spooled content (readOnce) stored as `data/<md5>.gz`, from its file. */
  async #storeSpooled(
    md5: string,
    plain: number,
    stored: number,
    file: SpooledObject,
  ): Promise<Stored> {
    const key = placeOf(md5, "data.gz").key;
    const options = {
      ...this.opts.saveOptions,
      size: file.size,
      md5: file.md5(),
      reopen: () => file.body(),
    };
    await this.store.save(key, await file.body(), options);
    await this.#recorded(key, [{ md5, where: "data.gz", stored, plain }], file.size);
    return { where: "data.gz", uploaded: true };
  }

  async #once(md5: string, work: () => Promise<Stored>): Promise<Stored> {
    const where = this.#where.get(md5);
    if (where !== undefined) return { where, uploaded: false };
    const other = this.#inflight.get(md5);
    if (other) {
      try {
        return { where: (await other).where, uploaded: false };
      } catch { /* its file changed while read: ours is stored */ }
    }
    const p = work();
    this.#inflight.set(md5, p);
    try {
      const r = await p;
      this.#remember(md5, r.where);
      return r;
    } finally {
      this.#inflight.delete(md5);
    }
  }

  async #storeSmall(md5: string, data: Uint8Array): Promise<Stored> {
    if (data.length >= this.#small) {
      return await this.#storeData(md5, data.length, ReadableStream.from([data]));
    }
    const { where, full } = this.#builder.add(md5, data);
    this.#remember(md5, where); // this run's later files find it at once
    if (full !== null) await this.#storePack(full);
    return { where, uploaded: true };
  }

  /**
   * Stores a full pack from its spool file, at most PACKS_IN_FLIGHT at a time, with its size and
   * MD5 (S3: one PUT with its Content-MD5, an upload check and what Object Lock demands).
   */
  async #storePack(pack: FinishedPack<Sink>): Promise<void> {
    const key = packKey(pack.id);
    const sink = pack.sink;
    let size = encryptedSize(sink.size); // a dry run's: the gzip members, encrypted
    if (sink instanceof SpooledPack) {
      try {
        const md5 = sink.close();
        size = sink.size;
        const options = { ...this.opts.saveOptions, size, md5, reopen: () => sink.body() };
        await this.#slots.use(async () => await this.store.save(key, await sink.body(), options));
      } finally {
        sink.remove();
      }
      releaseMemory();
      this.#packSizes.set(pack.id, size);
    }
    await this.#recorded(key, pack.entries, size);
  }

  /** A large content as `data/<md5>` or, when its first 64 KiB shrink, `data/<md5>.gz`. */
  async #storeData(md5: string, plain: number, body: ReadableStream<Uint8Array>): Promise<Stored> {
    const [head, rest] = await peek(body, PROBE);
    const gz = probeShrinks(head);
    const where = gz ? "data.gz" : "data";
    const key = placeOf(md5, where).key;
    let stored = 0, uploaded = 0;
    const gzip = gz ? gzipBlocks(this.#deflater(plain), GZIP_LEVEL) : null;
    const content = rest.pipeThrough(gzip ?? new TransformStream())
      .pipeThrough(counter((n) => stored += n));
    if (this.opts.simulate || this.repo === null) {
      for await (const _ of content); // sizes only
      uploaded = encryptedSize(stored);
    } else {
      const encrypted = content.pipeThrough(encryptObject(this.repo))
        .pipeThrough(counter((n) => uploaded += n));
      const options = gz
        ? this.opts.saveOptions
        : { ...this.opts.saveOptions, size: encryptedSize(plain) };
      await this.store.save(key, encrypted, options);
    }
    await this.#recorded(key, [{ md5, where, stored, plain }], uploaded);
    return { where, uploaded: true };
  }

  /** Object `key` (`bytes` of it) stored by this run, holding the contents of `entries`. */
  async #recorded(key: string, entries: IndexEntry[], bytes: number): Promise<void> {
    this.#ours.add(key);
    for (const e of entries) if (e.where.startsWith("data")) this.#dataSizes.add(e.plain);
    this.#entries.push(...entries);
    this.newObjects++;
    this.bytesUploaded += bytes;
    await this.#indexWhenFull();
  }

  /**
   * Who gzips a `data/` content of `plain` bytes: the run's Workers for one of PARALLEL_GZIP or
   * more (started by the first), the main thread for a smaller one (it would not pay for them).
   */
  #deflater(plain: number): DeflatePool {
    if (plain < PARALLEL_GZIP) return MAIN_THREAD;
    return this.#deflate ??= new DeflatePool();
  }

  /**
   * Stores the last pack and the index of what this run stored since the last (before the
   * meta); `beside` runs once every pack is stored, beside the index's PUT.
   */
  async finish(beside: () => Promise<void> = () => Promise.resolve()): Promise<void> {
    const last = this.#builder.finish();
    if (last !== null) await this.#storePack(last);
    await Promise.all([this.#index(), beside()]);
  }

  /** An index of what was stored, once it holds INDEX_ENTRIES (memory stays bounded). */
  async #indexWhenFull(): Promise<void> {
    if (this.#entries.length >= (this.opts.indexEntries ?? INDEX_ENTRIES)) await this.#index();
  }

  /** The index of the contents stored since the last one (FORMAT.md §4.3). */
  async #index(): Promise<void> {
    if (this.#entries.length === 0 || this.opts.simulate || this.repo === null) return;
    const entries = this.#entries.splice(0);
    await this.store.flush?.(); // the packs durable before the index that names them
    const index = { entries, packs: this.#packSizes };
    this.#ours.add(await writeIndex(this.repo, index, this.opts.cacheRoot, {}, this.store));
  }
}

/** A stream passing its chunks through, counting their bytes (and seeing each). */
function counter(
  add: (n: number, chunk: Uint8Array) => void,
): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      add(chunk.length, chunk);
      controller.enqueue(chunk);
    },
  });
}

/** The first `n` bytes of `body` (fewer when it is shorter), and a stream of the whole. */
async function peek(
  body: ReadableStream<Uint8Array>,
  n: number,
): Promise<[Uint8Array, ReadableStream<Uint8Array>]> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let have = 0;
  while (have < n) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    have += value.length;
  }
  const head = new Uint8Array(Math.min(have, n));
  let at = 0;
  for (const c of chunks) {
    if (at >= head.length) break;
    const part = c.subarray(0, head.length - at);
    head.set(part, at);
    at += part.length;
  }
  const whole = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return [head, whole];
}
