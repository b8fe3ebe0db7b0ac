/**
 * The content layer, read side: where a content's bytes live (FORMAT.md §4: a pack member, a
 * `data/` object, a format 2 or format 1 object) and how they come back, decrypted, gunzipped
 * and MD5-checked. Restore, verify and the kit check read contents only through here.
 *
 * A pack is fetched once for all the contents a run takes from it: `expect` announces each, and
 * the pack's members are held until each is `done` (a run that goes in pack order holds few
 * packs at a time: with `readAhead`, the one being read and the next). A pack is decrypted,
 * gunzipped and split into its members as it arrives, so it is held once, as its members, and
 * never as a whole object or plaintext besides.
 */
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { legacyDecryptBytes, legacyDecryptStream } from "../format/legacy.ts";
import { type Place, placeOf } from "../format/layout.ts";
import {
  type Member,
  memberContent,
  openPack,
  packMembers,
  streamPackMembers,
} from "../format/pack.ts";
import { guardStream, type Store } from "../store/store.ts";
import { messageOf, readAll } from "../util/bytes.ts";
import { releaseMemory } from "../util/memory.ts";
import { gunzipStream } from "../util/zlib_stream.ts";
import { CorruptDataError, ObjectArchivedError, ObjectNotFoundError } from "../util/errors.ts";
import type { LegacyRepository } from "./legacy.ts";
import { isLegacyRepository } from "./legacy.ts";
import { decryptObject, decryptSmallObject, type Repository } from "./repository.ts";

/** A content that cannot be had: missing, corrupt, or not downloaded (the message says). */
export class ContentError extends CorruptDataError {}

interface Decrypt {
  bytes(body: Uint8Array): Promise<Uint8Array>;
  stream(): TransformStream<Uint8Array, Uint8Array>;
}

/** A pack being held: its members' stored bytes (once asked for), how many asks will come. */
interface HeldPack {
  members: Promise<Map<string, Uint8Array>> | null;
  left: number;
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
  readonly #packs = new Map<string, HeldPack>();

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
    const held = this.#packs.get(key);
    if (held) held.left++;
    else this.#packs.set(key, { members: null, left: 1 });
  }

  /** The run is done with content `md5` (see `expect`). */
  done(md5: string, where?: string): void {
    const { key, member } = this.place(md5, where);
    const held = member === null ? undefined : this.#packs.get(key);
    if (held !== undefined && --held.left <= 0) {
      this.#packs.delete(key);
      if (held.members !== null) releaseMemory();
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

  /** Passes a download through, adding its bytes to bytesDownloaded. */
  #counter(): TransformStream<Uint8Array, Uint8Array> {
    return new TransformStream({
      transform: (chunk, controller) => {
        this.bytesDownloaded += chunk.length;
        controller.enqueue(chunk);
      },
    });
  }

  async #fromPack(place: Place): Promise<Uint8Array> {
    const held = this.#packs.get(place.key) ?? { members: null, left: 0 };
    const members = held.members ??= this.#loadPack(place.key);
    if (this.readAhead) this.#fetchAfter(place.key);
    const stored = (await members).get(place.member!);
    if (stored === undefined) {
      throw new ContentError(`no member ${place.member} in ${place.key} (damaged pack?)`);
    }
    try {
      return memberContent(place.member!, stored).content;
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
    for (const [k, held] of this.#packs) {
      if (after) {
        if (held.members === null) (held.members = this.#loadPack(k)).catch(() => {});
        return;
      }
      after = k === key;
    }
  }

  /**
   * A pack's members (first of each name), fetched and decrypted once for the contents
   * expected of it (a failure, an archived pack too, is theirs; a run that thaws it expects
   * them again). Decrypted and gunzipped as it arrives, into its tar alone (no copy of the
   * pack whole besides); a pack that does not decrypt or gunzip so is fetched again whole,
   * to say which and to save what can be read of it.
   */
  async #loadPack(key: string): Promise<Map<string, Uint8Array>> {
    const streamed = await this.#load(key, (s) => this.#streamMembers(key, s), false);
    return streamed ?? await firstOfEach(packMembers(await this.#damagedTar(key), true));
  }

  /**
   * A pack's members (first of each name), from its stream; null when it does not decrypt,
   * gunzip or read as a tar (a download's error is thrown).
   */
  async #streamMembers(
    key: string,
    body: ReadableStream<Uint8Array>,
  ): Promise<Map<string, Uint8Array> | null> {
    let downloadFailed = false;
    const source = guardStream(body, key, {}, () => downloadFailed = true).stream;
    try {
      const tar = source.pipeThrough(this.#counter()).pipeThrough(this.decrypt.stream())
        .pipeThrough(gunzipStream());
      return await firstOfEach(streamPackMembers(tar));
    } catch (err) {
      if (downloadFailed) throw err;
      return null;
    }
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

/** The members of a pack by name, the first of each name. */
async function firstOfEach(
  members: Iterable<Member> | AsyncIterable<Member>,
): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const m of members) if (!out.has(m.name)) out.set(m.name, m.bytes);
  return out;
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
