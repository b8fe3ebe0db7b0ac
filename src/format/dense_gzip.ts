/**
 * A gzip member (RFC 1952) for a pack segment of mostly incompressible contents (random bytes,
 * JPEGs, `.gz` files), made without zlib's search for matches, which finds none there and costs
 * most of a small-file backup's time (BENCHMARKS.md): the spans of those contents go in stored
 * blocks, and the bytes around them (tar headers, padding, end markers: mostly zeros) in fixed
 * Huffman blocks (RFC 1951 §3.2.6), a run of zeros as a zero and copies of it at distance 1.
 * Any gzip reader reads it: it is deflate's own block types, nothing else. Pure: bytes in,
 * bytes out.
 */
import { crc32 } from "node:zlib";

/** Deflate's longest copy, and the most a stored block holds. */
const MAX_MATCH = 258;
const MAX_STORED = 65_535;

/** Length codes 257..285: the first length of each, and its extra bits (RFC 1951 §3.2.5). */
const LENGTH_BASE = [
  3,
  4,
  5,
  6,
  7,
  8,
  9,
  10,
  11,
  13,
  15,
  17,
  19,
  23,
  27,
  31,
  35,
  43,
  51,
  59,
  67,
  83,
  99,
  115,
  131,
  163,
  195,
  227,
  258,
];
const LENGTH_EXTRA = [
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  1,
  1,
  1,
  1,
  2,
  2,
  2,
  2,
  3,
  3,
  3,
  3,
  4,
  4,
  4,
  4,
  5,
  5,
  5,
  5,
  0,
];

/** `n` bits of `code` reversed (Huffman codes go most significant bit first). */
function reversed(code: number, n: number): number {
  let r = 0;
  for (let i = 0; i < n; i++) r |= ((code >> i) & 1) << (n - 1 - i);
  return r;
}

/** The fixed code of each literal/length symbol 0..287: its bits (reversed) and length. */
const FIXED_CODE = new Uint16Array(288);
const FIXED_BITS = new Uint8Array(288);
for (let s = 0; s < 288; s++) {
  const [code, n] = s < 144
    ? [0x30 + s, 8]
    : s < 256
    ? [0x190 + s - 144, 9]
    : s < 280
    ? [s - 256, 7]
    : [0xc0 + s - 280, 8];
  FIXED_CODE[s] = reversed(code, n);
  FIXED_BITS[s] = n;
}

/** For each copy length 3..258: its symbol's code and length with the extra bits after it. */
const COPY_CODE = new Uint32Array(MAX_MATCH + 1);
const COPY_BITS = new Uint8Array(MAX_MATCH + 1);
for (let len = 3; len <= MAX_MATCH; len++) {
  let i = LENGTH_BASE.length - 1;
  while (LENGTH_BASE[i]! > len) i--;
  const sym = 257 + i, extra = LENGTH_EXTRA[i]!;
  // symbol, extra bits (the length above the base), then distance code 0 (five zero bits: 1)
  COPY_CODE[len] = FIXED_CODE[sym]! | ((len - LENGTH_BASE[i]!) << FIXED_BITS[sym]!);
  COPY_BITS[len] = FIXED_BITS[sym]! + extra + 5;
}

/** Bits written least significant first into a buffer sized by the caller. */
class Bits {
  at = 0;
  #acc = 0;
  #n = 0;
  constructor(readonly out: Uint8Array) {}

  put(bits: number, n: number): void {
    this.#acc |= bits << this.#n;
    this.#n += n;
    while (this.#n >= 8) {
      this.out[this.at++] = this.#acc & 0xff;
      this.#acc >>>= 8;
      this.#n -= 8;
    }
  }

  /** Pads to a whole byte with zero bits. */
  align(): void {
    if (this.#n > 0) this.put(0, 8 - this.#n);
  }
}

/** Codes `data[from..to)` in one fixed Huffman block (not the last). */
function fixedBlock(w: Bits, data: Uint8Array, from: number, to: number): void {
  w.put(0b010, 3); // BFINAL 0, BTYPE 01
  let i = from;
  while (i < to) {
    const b = data[i]!;
    w.put(FIXED_CODE[b]!, FIXED_BITS[b]!);
    i++;
    if (b !== 0) continue;
    for (;;) { // the zeros after it, copied (a run shorter than 3: as literals)
      let run = 0;
      while (i + run < to && data[i + run] === 0 && run < MAX_MATCH) run++;
      if (run < 3) break;
      w.put(COPY_CODE[run]!, COPY_BITS[run]!);
      i += run;
    }
  }
  w.put(FIXED_CODE[256]!, FIXED_BITS[256]!); // end of block
}

/** Stores `data[from..to)` in stored blocks (not the last). */
function storedBlocks(w: Bits, data: Uint8Array, from: number, to: number): void {
  for (let at = from; at < to; at += MAX_STORED) {
    const n = Math.min(MAX_STORED, to - at);
    w.put(0b000, 3); // BFINAL 0, BTYPE 00
    w.align();
    w.put(n, 16);
    w.put(~n & 0xffff, 16);
    w.out.set(data.subarray(at, at + n), w.at);
    w.at += n;
  }
}

/** How each member begins (as zlib's: deflate, no flags, no time, no extra; OS unix). */
const HEAD = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/**
 * One gzip member of `data`, whose `spans` (start and end offsets, in order, not overlapping)
 * are stored as they are and the rest coded as above.
 */
export function denseGzip(data: Uint8Array, spans: readonly number[]): Uint8Array {
  // At most 9 bits a coded byte, 5 bytes a stored block's header (with its alignment), 4 bytes
  // of block headers and ends around each span, the trailer.
  const blocks = Math.ceil(data.length / MAX_STORED) + spans.length / 2;
  const out = new Uint8Array(
    HEAD.length + data.length + Math.ceil(data.length / 8) + 9 * blocks + 16,
  );
  out.set(HEAD);
  const w = new Bits(out);
  w.at = HEAD.length;
  let at = 0;
  for (let k = 0; k < spans.length; k += 2) {
    const [start, end] = [spans[k]!, spans[k + 1]!];
    if (start > at) fixedBlock(w, data, at, start);
    storedBlocks(w, data, start, end);
    at = end;
  }
  if (at < data.length) fixedBlock(w, data, at, data.length);
  w.put(0b011, 3); // the last block: BFINAL 1, BTYPE 01, empty
  w.put(FIXED_CODE[256]!, FIXED_BITS[256]!);
  w.align();
  const view = new DataView(out.buffer);
  view.setUint32(w.at, crc32(data) >>> 0, true);
  view.setUint32(w.at + 4, data.length >>> 0, true);
  return out.slice(0, w.at + 8);
}
