/**
 * The plaintext of a format-3 pack (FORMAT.md §4.1): the gzip of a ustar archive (tar.ts) of
 * contents, each a member named by its MD5 (readers also take `<md5>.gz` members: the gzip of
 * the content). Pure: contents in, bytes out, and back; the caller encrypts the pack as one
 * container (§3.1). Also the gzip decision of `data/` objects (§4.2).
 */
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { CorruptDataError } from "../util/errors.ts";
import { denseGzip } from "./dense_gzip.ts";
import { isMd5 } from "./layout.ts";
import type { IndexEntry } from "./pack_index.ts";
import { BLOCK, memberHeader, padded, parseHeader, paxSize, TAR_END } from "./tar.ts";

/** The gzip level (FORMAT.md §4): the fastest within 1.1x of restic's storage (BENCHMARKS.md). */
export const GZIP_LEVEL = 3;
/** A content over this is judged by its first this many bytes before the whole is tried. */
export const PROBE = 64 * 1024;

/** Whether `stored` bytes are worth keeping over `plain` ones: smaller by at least 1/16. */
function shrank(stored: number, plain: number): boolean {
  return stored * 16 <= plain * 15;
}

/** Contents shorter than this are stored as they are: gzip's 18 bytes of frame rarely pay. */
export const MIN_GZIP = 128;
/** Bits of entropy a byte above which a sample is taken as incompressible (random, packed). */
const MAX_ENTROPY = 7.2;
const LOG2 = new Float64Array(4097).map((_, i) => (i === 0 ? 0 : Math.log2(i)));

/**
 * Whether gzip may shrink `data`, judged cheaply on its first 4 KiB (a byte histogram's
 * entropy): random bytes, JPEGs and `.gz` files say no without a deflate.
 */
export function mayShrink(data: Uint8Array): boolean {
  if (data.length < MIN_GZIP) return false;
  const n = Math.min(data.length, 4096);
  const counts = new Uint32Array(256);
  for (let i = 0; i < n; i++) counts[data[i]!]! += 1;
  let bits = 0;
  for (const c of counts) if (c > 0) bits -= c * (LOG2[c]! - LOG2[n]!);
  return bits / n <= MAX_ENTROPY;
}

/** gzip at GZIP_LEVEL with a window no larger than `data` needs (less memory a call). */
function gzip(data: Uint8Array): Uint8Array {
  const windowBits = Math.max(9, Math.min(15, Math.ceil(Math.log2(data.length + 1))));
  const memLevel = Math.max(1, Math.min(8, windowBits - 6));
  return owned(gzipSync(data, { level: GZIP_LEVEL, windowBits, memLevel }));
}

/**
 * zlib's result as bytes that own their buffer: zlib hands back a view into a 16 KiB chunk, and
 * a pack holding ten thousand such views held 160 MiB for 1 MiB of gzip (BENCHMARKS.md).
 */
function owned(b: Uint8Array): Uint8Array {
  return b.byteLength === b.buffer.byteLength ? new Uint8Array(b.buffer) : new Uint8Array(b);
}

/**
 * Whether a content whose first PROBE bytes are `probe` is worth gzipping, judged on them alone
 * (a `data/` object, written as a stream, FORMAT.md §4).
 */
export function probeShrinks(probe: Uint8Array): boolean {
  return mayShrink(probe) && shrank(gzip(probe).length, probe.length);
}

/** A content as a pack member: its name and the bytes stored. */
export interface Member {
  name: string;
  bytes: Uint8Array;
}

/** The member of `content` (whose MD5 is `md5`): the content as it is (the pack is gzipped). */
export function packMember(md5: string, content: Uint8Array): Member {
  if (!isMd5(md5)) throw new TypeError(`not an MD5: ${md5}`);
  return { name: md5, bytes: content };
}

/**
 * Tar bytes a gzip member of a pack covers, at least (FORMAT.md §4.1): damage stays within one
 * (a reader resumes at the next), at no cost in size (deflate looks back 32 KiB anyway).
 */
export const SEGMENT = 64 * 1024;

/**
 * Cuts a pack's tar into gzip members as its members come (FORMAT.md §4.1): each gzip member
 * covers whole tar members, SEGMENT bytes or more (the end markers in the last one), at
 * GZIP_LEVEL; when incompressible contents (random, JPEG, .gz) fill it, they are stored and the
 * headers around them coded cheaply (`#cut`). Holds one segment at a time, in one buffer kept
 * from pack to pack (a pack is never whole in memory); `emit` gets each gzip member as it is
 * made.
 */
export class Segmenter {
  #buf = new Uint8Array(2 * SEGMENT);
  #at = 0;
  /** Where the segment's incompressible contents are (start, end, start, end...). */
  #spans: number[] = [];
  /** Bytes of its other contents. */
  #loose = 0;
  /** Tar bytes of the pack so far. */
  size = 0;

  constructor(readonly emit: (gz: Uint8Array) => void) {}

  /** Appends member `m` (header, stored bytes, zero padding); a segment full is emitted. */
  add(m: Member): void {
    const h = memberHeader(m.name, m.bytes.length);
    const start = this.#at + h.length;
    const end = putMember(this.#room(h.length + padded(m.bytes.length)), this.#at, m, h);
    [this.size, this.#at] = [this.size + end - this.#at, end];
    if (m.bytes.length >= MIN_GZIP && !mayShrink(m.bytes)) {
      this.#spans.push(start, start + m.bytes.length);
    } else this.#loose += m.bytes.length;
    if (this.#at >= SEGMENT) this.#cut();
  }

  /** Ends the tar (its end markers, `extraEnd` more), emits the last segment: the tar's size. */
  end(extraEnd = 0): number {
    const n = TAR_END.length * (1 + extraEnd);
    this.#room(n).fill(0, this.#at, this.#at + n);
    const size = this.size + n;
    this.#at += n;
    this.#cut();
    this.size = 0;
    return size;
  }

  /**
   * The segment as one gzip member: with its incompressible contents stored and the rest coded
   * without a search for matches (dense_gzip.ts) when little else is in it, else by zlib at
   * level 1 when they are most of it, else at GZIP_LEVEL.
   */
  #cut(): void {
    const tar = this.#buf.subarray(0, this.#at), spans = this.#spans;
    let dense = 0;
    for (let k = 0; k < spans.length; k += 2) dense += spans[k + 1]! - spans[k]!;
    const gz = dense > 0 && this.#loose * 16 <= this.#at
      ? denseGzip(tar, spans)
      : gzipSync(tar, { level: dense * 2 > this.#at ? 1 : GZIP_LEVEL });
    [this.#at, this.#loose, this.#spans] = [0, 0, []];
    this.emit(gz);
  }

  #room(n: number): Uint8Array {
    if (this.#at + n <= this.#buf.length) return this.#buf;
    const grown = new Uint8Array(Math.max(2 * this.#buf.length, this.#at + n));
    grown.set(this.#buf.subarray(0, this.#at));
    return this.#buf = grown;
  }
}

/**
 * A pack's plaintext (FORMAT.md §4.1): the tar of `members` (ended by `extraEnd` more end
 * markers), as gzip members of whole tar members, each covering SEGMENT bytes or more.
 */
export function sealPack(members: Member[], extraEnd = 0): Uint8Array {
  const parts: Uint8Array[] = [];
  const seg = new Segmenter((gz) => parts.push(gz));
  for (const m of members) seg.add(m);
  seg.end(extraEnd);
  return joined(parts);
}

/** How each gzip member this writer makes begins: magic, deflate, no flags, no time. */
const GZIP_HEAD = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0];

/**
 * The tar in a pack's plaintext (its gzip members gunzipped); CorruptDataError when it does not
 * gunzip. Unless `lenient` (a reader saving what it can of a damaged pack): then each gzip
 * member is gunzipped on its own and a damaged one is left out (the tar reader, lenient too,
 * resumes at the next member's header).
 */
export function openPack(plain: Uint8Array, lenient = false): Uint8Array {
  try {
    return owned(gunzipSync(plain));
  } catch (err) {
    if (!lenient) throw new CorruptDataError("pack: it does not gunzip", { cause: err });
  }
  const starts: number[] = [];
  for (let i = plain.indexOf(0x1f); i >= 0; i = plain.indexOf(0x1f, i + 1)) {
    if (GZIP_HEAD.every((b, j) => plain[i + j] === b)) starts.push(i);
  }
  // A start may be false: a stored `.gz` content shows the same bytes. A member that does not
  // gunzip up to the next start is tried up to the ones after it (MERGED at most).
  const parts: Uint8Array[] = [];
  for (let k = 0; k < starts.length;) {
    let next = k + 1; // damaged: its members are lost, the others not
    for (let j = k + 1; j <= Math.min(starts.length, k + MERGED); j++) {
      try {
        parts.push(gunzipSync(plain.subarray(starts[k], starts[j] ?? plain.length)));
        next = j;
        break;
      } catch { /* cut at a false start, or damaged */ }
    }
    k = next;
  }
  return joined(parts);
}

/** How many starts a lenient reader looks past for the end of a gzip member. */
const MERGED = 16;

/** `parts` one after another, in one buffer. */
function joined(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((n, p) => (out.set(p, n), n + p.length), 0);
  return out;
}

/** The bytes a member takes in a pack: header, stored bytes, padding. */
export function memberSize(m: Member): number {
  return memberHeader(m.name, m.bytes.length).length + padded(m.bytes.length);
}

/** The tar of `members`, in order, ended (by `extraEnd` more end markers after the first). */
export function buildPack(members: Member[], extraEnd = 0): Uint8Array {
  const ends = TAR_END.length * (1 + extraEnd);
  const out = new Uint8Array(members.reduce((n, m) => n + memberSize(m), 0) + ends);
  let at = 0;
  for (const m of members) at = putMember(out, at, m);
  return out; // the end blocks: zeros already
}

/**
 * Writes member `m` (header, stored bytes, zero padding) into `out` at `at`; returns where it
 * ends, its padding included.
 */
function putMember(
  out: Uint8Array,
  at: number,
  m: Member,
  h = memberHeader(m.name, m.bytes.length),
): number {
  const end = at + h.length + padded(m.bytes.length);
  out.set(h, at);
  out.set(m.bytes, at + h.length);
  out.fill(0, at + h.length + m.bytes.length, end);
  return end;
}

/** One content read back from a pack. */
export interface PackedContent {
  md5: string;
  content: Uint8Array;
}

/**
 * The members of a pack's plaintext, in order: each member's name and stored bytes (views into
 * `tar`). A cut archive, a member that is not a regular file or a bad header checksum is
 * CorruptDataError; unless `lenient` (a reader saving what it can of a damaged pack): then a
 * bad header is skipped, block by block, to the next good one, and a cut archive just ends.
 */
export function* packMembers(tar: Uint8Array, lenient = false): Generator<Member> {
  let at = 0, paxed: number | null = null;
  while (at + BLOCK <= tar.length) {
    let h;
    try {
      h = parseHeader(tar.subarray(at, at + BLOCK));
    } catch (err) {
      if (!lenient) throw err;
      [at, paxed] = [at + BLOCK, null];
      continue;
    }
    if (h.kind === "end") return;
    const start = at + BLOCK;
    if (h.kind === "pax") {
      paxed = paxSize(tar.subarray(start, start + h.size));
      at = start + padded(h.size);
      continue;
    }
    const size = paxed ?? h.size;
    paxed = null;
    if (start + size > tar.length) {
      if (lenient) return;
      throw new CorruptDataError(`pack: ${h.name} is cut short`);
    }
    yield { name: h.name, bytes: tar.subarray(start, start + size) };
    at = start + padded(size);
  }
  if (!lenient) throw new CorruptDataError("pack: the archive is cut short (no end blocks)");
}

/**
 * The members of a pack's tar as it streams in (`chunks`: the tar, gunzipped, in pieces), in
 * order: each member's bytes are a view into the chunk that holds them, or a copy when they
 * straddle two, so that the members together hold about the tar's bytes once and no buffer of
 * the whole is made. Strict, as packMembers: a bad header or a cut archive is CorruptDataError.
 */
export async function* streamPackMembers(
  chunks: AsyncIterable<Uint8Array>,
): AsyncGenerator<Member> {
  const input = new Chunks(chunks[Symbol.asyncIterator]());
  let paxed: number | null = null;
  for (;;) {
    const block = await input.take(BLOCK);
    if (block === null) break;
    const h = parseHeader(block);
    if (h.kind === "end") return;
    const size = h.kind === "pax" ? h.size : paxed ?? h.size;
    const body = await input.take(size);
    if (body === null || await input.take(padded(size) - size) === null) break;
    if (h.kind === "pax") {
      paxed = paxSize(body);
      continue;
    }
    paxed = null;
    yield { name: h.name, bytes: body };
  }
  throw new CorruptDataError("pack: the archive is cut short (no end blocks)");
}

/** Bytes taken from a stream of chunks: views where they lie in one chunk, else copies. */
class Chunks {
  #chunk: Uint8Array = new Uint8Array(0);
  #at = 0;
  constructor(readonly it: AsyncIterator<Uint8Array>) {}

  /** The next `n` bytes; null when the stream ends first. */
  async take(n: number): Promise<Uint8Array | null> {
    if (this.#chunk.length - this.#at >= n) return this.#chunk.subarray(this.#at, this.#at += n);
    const out = new Uint8Array(n);
    let have = 0;
    while (have < n) {
      if (this.#at === this.#chunk.length) {
        const r = await this.it.next();
        if (r.done) return null;
        [this.#chunk, this.#at] = [r.value, 0];
        continue;
      }
      const part = this.#chunk.subarray(this.#at, this.#at + n - have);
      out.set(part, have);
      [have, this.#at] = [have + part.length, this.#at + part.length];
    }
    return out;
  }
}

/**
 * The contents of a pack's plaintext, in order, each gunzipped when named `.gz` and checked
 * against its MD5. A member that is not a content's, a cut archive, or an MD5 that differs is
 * CorruptDataError (naming the member).
 */
export function* readPack(tar: Uint8Array): Generator<PackedContent> {
  for (const m of packMembers(tar)) yield memberContent(m.name, m.bytes);
}

/** A member's content, gunzipped when its name ends in `.gz`, and checked against its MD5. */
export function memberContent(name: string, stored: Uint8Array): PackedContent {
  const md5 = name.endsWith(".gz") ? name.slice(0, -3) : name;
  if (!isMd5(md5)) throw new CorruptDataError(`pack: member ${name} is not a content`);
  let plain = stored;
  if (md5 !== name) {
    try {
      plain = owned(gunzipSync(stored));
    } catch (err) {
      throw new CorruptDataError(`pack: ${name} does not gunzip`, { cause: err });
    }
  }
  const got = createHash("md5").update(plain).digest("hex");
  if (got !== md5) throw new CorruptDataError(`pack: the MD5 of ${name} is ${got}`);
  return { md5, content: plain };
}

/** Where a pack's gzip members go as they are made (encrypted and spooled, or counted). */
export interface PackSink {
  write(gz: Uint8Array): void;
}

/** A pack whose members are all in its sink: its id, its tar's size, where each content is. */
export interface FinishedPack<S extends PackSink> {
  id: string;
  sink: S;
  /** Bytes of its tar (before gzip). */
  size: number;
  entries: IndexEntry[];
}

/**
 * Gathers small contents into packs of about `target` bytes of tar (FORMAT.md §4.1), each into
 * the sink `open` gives for its id: a content is copied into the current segment (Segmenter),
 * and each full segment goes gzipped to the sink at once, so memory holds a segment, not a pack.
 * The pack a content goes into has its id from the start, so `add` says where the content will
 * be; it also returns the pack that content filled, `finish` the last one. The caller adds each
 * content once. A sink that throws leaves the builder broken: every later call throws that
 * error (the pack has lost a segment; no content may be said to be in it).
 */
export class PackBuilder<S extends PackSink> {
  #pack: { id: string; sink: S; entries: IndexEntry[] } | null = null;
  #broken: { err: unknown } | null = null;
  readonly #seg = new Segmenter((gz) => this.#pack!.sink.write(gz));

  constructor(
    readonly target: number,
    readonly newId: () => string,
    readonly open: (id: string) => S,
  ) {}

  /** Adds a content (its MD5 and bytes): where it is, and the pack when it filled one. */
  add(md5: string, content: Uint8Array): { where: string; full: FinishedPack<S> | null } {
    const m = packMember(md5, content);
    const pack = this.#guard(() => {
      if (this.#pack !== null) return this.#pack;
      const id = this.newId();
      return this.#pack = { id, sink: this.open(id), entries: [] };
    });
    this.#guard(() => this.#seg.add(m));
    pack.entries.push({ md5, where: pack.id, stored: content.length, plain: content.length });
    return { where: pack.id, full: this.#seg.size >= this.target ? this.finish() : null };
  }

  /** The pack of what was added since the last one (null when nothing was). */
  finish(): FinishedPack<S> | null {
    const pack = this.#pack;
    if (pack === null) return null;
    const size = this.#guard(() => this.#seg.end());
    this.#pack = null;
    return { ...pack, size };
  }

  #guard<T>(step: () => T): T {
    if (this.#broken !== null) throw this.#broken.err;
    try {
      return step();
    } catch (err) {
      this.#broken = { err };
      throw err;
    }
  }
}
