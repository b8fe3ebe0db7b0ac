/**
 * The content layer, read side: where a content's bytes live (FORMAT.md §4: a pack member, a
 * `data/` object, a format 2 or format 1 object) and how they come back, decrypted, gunzipped
 * and MD5-checked. Restore, verify and the kit check read contents only through here.
 *
 * A pack is fetched once for all the contents a run takes from it: `expect` announces each, and
 * each member is held from when the pack's stream yields it until it is `done` (pack_reader.ts:
 * a run that asks in pack order holds a few MiB of a pack, and with `readAhead` of the next).
 * A pack is decrypted, gunzipped and split into its members as it arrives, never held whole.
 */
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { legacyDecryptBytes, legacyDecryptStream } from "../format/legacy.ts";
import { type Place, placeOf } from "../format/layout.ts";
import { memberContent, openPack, packMembers, streamPackMembers } from "../format/pack.ts";
import type { Store } from "../store/store.ts";
import { messageOf, readAll } from "../util/bytes.ts";
import { releaseMemory } from "../util/memory.ts";
import { gunzipStream } from "../util/zlib_stream.ts";
import { CorruptDataError, ObjectArchivedError, ObjectNotFoundError } from "../util/errors.ts";
import type { LegacyRepository } from "./legacy.ts";
import { isLegacyRepository } from "./legacy.ts";
import { PackReader } from "./pack_reader.ts";
import { decryptObject, decryptSmallObject, type Repository } from "./repository.ts";

/**
 * Bytes of packs read, at least, between two full collections (util/memory.ts) besides the one
 * when a pack is done: the buffers a pack's stream leaves (ciphertext, plaintext, gunzipped
 * chunks, members written) are freed only by a full collection, which V8 makes late (it counts
 * little of their native memory). A collection costs about as much as the heap it marks, so two
 * are also the heap's size of packs apart at least (70,000 files, one each 8 MiB: 1.6 s of 9).
 * Restoring packs of 111 MiB: 238 MiB at most (held whole, as before: 404-413).
 */
const RELEASE_EVERY = 8 * 1024 * 1024;

/** A content that cannot be had: missing, corrupt, or not downloaded (the message says). */
export class ContentError extends CorruptDataError {}

interface Decrypt {
  bytes(body: Uint8Array): Promise<Uint8Array>;
  stream(): TransformStream<Uint8Array, Uint8Array>;
}

export class Contents {
  /** Bytes fetched from the store (encrypted), and objects fetched. */
  bytesDownloaded = 0;
  objectsDownloaded = 0;
  /**
   * Whether every content expected will be asked for (a restore into an empty target): then,
   * as a pack is read, the next pack expected is fetched meanwhile (one ahead, never more).
   * Else a pack is fetched only when asked (a resumed restore may need none of the next one).
   */
  readAhead = false;
  /** The packs expected, in the order first expected. */
  readonly #packs = new Map<string, PackReader>();
  /** Bytes of packs read since the last full collection. */
  #packBytes = 0;
  /** The bytes of packs read at which the next full collection is weighed. */
  #releaseAt = RELEASE_EVERY;

  constructor(readonly store: Store, readonly decrypt: Decrypt) {}

  /** The contents of a repository of any format. */
  static of(repo: Repository | LegacyRepository): Contents {
    if (isLegacyRepository(repo)) {
      return new Contents(repo.store, {
        bytes: (b) => legacyDecryptBytes(b, repo.password),
        stream: () => legacyDecryptStream(repo.password),
      });
    }
    return new Contents(repo.store, {
      bytes: (b) => decryptSmallObject(repo, b),
      stream: () => decryptObject(repo),
    });
  }

  /** Where content `md5` is, by its entry's where (absent: a format 1 or 2 object). */
  place(md5: string, where = "-"): Place {
    return placeOf(md5, where);
  }

  /** Whether the content is a pack member (read whole, from memory). */
  inPack(md5: string, where = "-"): boolean {
    return this.place(md5, where).member !== null;
  }

  /**
   * Says that content `md5` will be asked for (once or not at all) until `done` is called for
   * it: its pack, once fetched, is held until every content expected of it is done.
   */
  expect(md5: string, where?: string): void {
    const { key, member } = this.place(md5, where);
    if (member === null) return;
    let pack = this.#packs.get(key);
    if (pack === undefined) this.#packs.set(key, pack = this.#reader(key));
    pack.want(member);
  }

  /** The run is done with content `md5` (see `expect`). */
  done(md5: string, where?: string): void {
    const { key, member } = this.place(md5, where);
    const pack = member === null ? undefined : this.#packs.get(key);
    if (pack !== undefined && pack.done(member!)) {
      this.#packs.delete(key);
      if (pack.started) this.#release(true);
    }
  }

  /** The whole content, checked (ContentError, or ObjectArchivedError). */
  async bytes(md5: string, where = "-"): Promise<Uint8Array> {
    const place = this.place(md5, where);
    if (place.member !== null) return await this.#fromPack(place);
    const body = await this.#load(place.key, readAll);
    let plain: Uint8Array;
    try {
      plain = await this.decrypt.bytes(body);
    } catch (err) {
      throw new ContentError(`object ${place.key} does not decrypt (corrupt object)`, {
        cause: err,
      });
    }
    if (place.gz) plain = gunzip(plain, place.key);
    if (createHash("md5").update(plain).digest("hex") !== md5) {
      throw new ContentError(`MD5 mismatch for object ${place.key} (corrupt object)`);
    }
    return plain;
  }

  /**
   * The content as a stream, decrypted and gunzipped; the caller checks its MD5 (ContentError
   * when it cannot be fetched, ObjectArchivedError when archived).
   */
  async stream(md5: string, where = "-"): Promise<ReadableStream<Uint8Array>> {
    const place = this.place(md5, where);
    if (place.member !== null) return ReadableStream.from([await this.#fromPack(place)]);
    const body = await this.#load(place.key, (s) => Promise.resolve(s));
    const plain = body.pipeThrough(this.#counter()).pipeThrough(this.decrypt.stream());
    return place.gz ? plain.pipeThrough(gunzipStream()) : plain;
  }

  /**
   * Passes a download through, adding its bytes to bytesDownloaded; a pack's (`pack`) also to
   * those read since the last full collection (see RELEASE_EVERY).
   */
  #counter(pack = false): TransformStream<Uint8Array, Uint8Array> {
    return new TransformStream({
      transform: (chunk, controller) => {
        this.bytesDownloaded += chunk.length;
        if (pack && (this.#packBytes += chunk.length) >= this.#releaseAt) this.#release(false);
        controller.enqueue(chunk);
      },
    });
  }

  /** A full collection, once a pack is done (`done`) or RELEASE_EVERY and the heap read since. */
  #release(done: boolean): void {
    if (!done) {
      const heap = Deno.memoryUsage().heapUsed; // (weighed twice a collection at most)
      if (this.#packBytes < heap) return void (this.#releaseAt = heap);
    }
    this.#packBytes = 0;
    this.#releaseAt = RELEASE_EVERY;
    releaseMemory();
  }

  async #fromPack(place: Place): Promise<Uint8Array> {
    const member = place.member!;
    const expected = this.#packs.get(place.key);
    const pack = expected ?? this.#reader(place.key);
    if (expected === undefined) pack.want(member); // (asked without expect: read for this ask)
    let stored: Uint8Array;
    try {
      const got = pack.get(member);
      if (this.readAhead) this.#fetchAfter(place.key);
      stored = await got;
    } finally {
      if (expected === undefined) pack.done(member);
    }
    try {
      return memberContent(member, stored).content;
    } catch (err) {
      throw new ContentError(`${messageOf(err)} in ${place.key} (corrupt pack)`, { cause: err });
    }
  }

  /**
   * Starts fetching the pack expected next after `key` (in the order first expected), unless it
   * is fetched already. Its failure is the failure of the contents that ask for it, as ever.
   */
  #fetchAfter(key: string): void {
    let after = false;
    for (const [k, pack] of this.#packs) {
      if (after) return pack.start();
      after = k === key;
    }
  }

  /**
   * The reader of pack `key` (not started): its stream decrypted and gunzipped as it arrives;
   * when that fails, the pack fetched again whole, to say which and to save what can be read.
   */
  #reader(key: string): PackReader {
    return new PackReader({
      open: (onRead) =>
        this.#load(key, (body) => {
          const tar = body.pipeThrough(this.#counter(true)).pipeThrough(this.decrypt.stream())
            .pipeThrough(gunzipStream());
          const chunks = tar[Symbol.asyncIterator]();
          return Promise.resolve({
            members: streamPackMembers({
              [Symbol.asyncIterator]: () => ({
                next: () => {
                  onRead();
                  return chunks.next();
                },
              }),
            }),
            cancel: async () => await chunks.return?.(),
          });
        }, false),
      whole: async () => packMembers(await this.#damagedTar(key), true),
      noMember: (name) => new ContentError(`no member ${name} in ${key} (damaged pack?)`),
    });
  }

  /** The tar of a pack that did not stream: fetched whole, what can be read of it (ContentError). */
  async #damagedTar(key: string): Promise<Uint8Array> {
    const body = await this.#load(key, readAll);
    let tar: Uint8Array;
    try {
      tar = await this.decrypt.bytes(body);
    } catch (err) {
      throw new ContentError(`pack ${key} does not decrypt (corrupt pack)`, { cause: err });
    }
    // What can be read of a damaged pack is: its other members are each checked by MD5.
    try {
      return openPack(tar, true);
    } catch (err) {
      throw new ContentError(`pack ${key} does not gunzip (corrupt pack)`, { cause: err });
    }
  }

  /**
   * Fetches object `key` (counted: its bytes too when `take` reads it whole, not when `take`
   * counts them itself), as `take` reads it; missing or failing is ContentError.
   */
  async #load<T>(
    key: string,
    take: (s: ReadableStream<Uint8Array>) => Promise<T>,
    whole = true,
  ): Promise<T> {
    try {
      const body = await take(await this.store.load(key));
      this.objectsDownloaded++;
      if (whole && body instanceof Uint8Array) this.bytesDownloaded += body.length;
      return body;
    } catch (err) {
      if (err instanceof ObjectArchivedError) throw err;
      if (err instanceof ObjectNotFoundError) throw new ContentError(`missing object ${key}`);
      throw new ContentError(`cannot download object ${key}: ${messageOf(err)}`, { cause: err });
    }
  }
}

/** `data`, gunzipped (ContentError naming `key` when it is no gzip). */
function gunzip(data: Uint8Array, key: string): Uint8Array {
  try {
    const b = gunzipSync(data);
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  } catch (err) {
    throw new ContentError(`object ${key} does not gunzip (corrupt object)`, { cause: err });
  }
}
