/**
 * What a backup knows of the store's contents: MD5 -> stored size (NaN: looked up, absent), for
 * millions of them. The MD5s are kept as 16 bytes in typed arrays with open addressing: about
 * 50 bytes a content, where a Map of hex strings takes about 100, and nothing for the garbage
 * collector to walk.
 */
const EMPTY = -1;

/** Hex digit values by char code (-1: not a hex digit). */
const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX["0123456789abcdef".charCodeAt(i)] = i;
  HEX["0123456789ABCDEF".charCodeAt(i)] = i;
}

export class ContentSizes {
  #md5: Uint8Array;
  #sizes: Float64Array;
  /** 1: stored by this run (`set(..., true)`). */
  #ours: Uint8Array;
  #count = 0;
  readonly #key = new Uint8Array(16);

  constructor(capacity = 1024) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.#md5 = new Uint8Array(cap * 16);
    this.#sizes = new Float64Array(cap).fill(EMPTY);
    this.#ours = new Uint8Array(cap);
  }

  get size(): number {
    return this.#count;
  }

  /** The stored size of `md5` (lowercase or uppercase hex), or undefined when not known. */
  get(md5: string): number | undefined {
    const slot = this.#find(md5);
    const s = this.#sizes[slot]!;
    return s === EMPTY ? undefined : s;
  }

  has(md5: string): boolean {
    return this.get(md5) !== undefined;
  }

  /** Records `md5`'s stored size; `ours`: this run stored it. */
  set(md5: string, size: number, ours = false): void {
    if (size < 0) throw new RangeError("a stored size is not negative");
    let slot = this.#find(md5);
    if (this.#sizes[slot] === EMPTY) {
      if ((this.#count + 1) * 2 > this.#sizes.length) {
        this.#grow();
        slot = this.#find(md5);
      }
      this.#md5.set(this.#key, slot * 16);
      this.#count++;
    }
    this.#sizes[slot] = size;
    if (ours) this.#ours[slot] = 1;
  }

  /** Whether `md5` was set as `ours`. */
  isOurs(md5: string): boolean {
    return this.#ours[this.#find(md5)] === 1;
  }

  /** The MD5s (lowercase hex) set as `ours`. */
  *ours(): Generator<string> {
    const hex = (b: number) => b.toString(16).padStart(2, "0");
    for (let s = 0; s < this.#sizes.length; s++) {
      if (this.#ours[s] !== 1) continue;
      let out = "";
      for (let i = 0; i < 16; i++) out += hex(this.#md5[s * 16 + i]!);
      yield out;
    }
  }

  /** The slot holding `md5`, or the empty one where it would go; `#key` holds its bytes. */
  #find(md5: string): number {
    const key = this.#key;
    if (md5.length !== 32) throw new TypeError(`not an MD5: ${md5}`);
    for (let i = 0; i < 16; i++) {
      const hi = HEX[md5.charCodeAt(2 * i)] ?? -1, lo = HEX[md5.charCodeAt(2 * i + 1)] ?? -1;
      if (hi < 0 || lo < 0) throw new TypeError(`not an MD5: ${md5}`);
      key[i] = (hi << 4) | lo;
    }
    const mask = this.#sizes.length - 1;
    // MD5s are uniform: their first bytes are a good hash.
    let slot = ((key[0]! << 24) | (key[1]! << 16) | (key[2]! << 8) | key[3]!) & mask;
    for (;; slot = (slot + 1) & mask) {
      if (this.#sizes[slot] === EMPTY) return slot;
      if (this.#same(slot)) return slot;
    }
  }

  #same(slot: number): boolean {
    const m = this.#md5, k = this.#key, at = slot * 16;
    for (let i = 0; i < 16; i++) if (m[at + i] !== k[i]) return false;
    return true;
  }

  #grow(): void {
    const [md5, sizes, ours] = [this.#md5, this.#sizes, this.#ours];
    this.#md5 = new Uint8Array(md5.length * 2);
    this.#sizes = new Float64Array(sizes.length * 2).fill(EMPTY);
    this.#ours = new Uint8Array(sizes.length * 2);
    const mask = this.#sizes.length - 1;
    for (let s = 0; s < sizes.length; s++) {
      if (sizes[s] === EMPTY) continue;
      const at = s * 16;
      let slot = ((md5[at]! << 24) | (md5[at + 1]! << 16) | (md5[at + 2]! << 8) | md5[at + 3]!) &
        mask;
      while (this.#sizes[slot] !== EMPTY) slot = (slot + 1) & mask;
      this.#md5.set(md5.subarray(at, at + 16), slot * 16);
      this.#sizes[slot] = sizes[s]!;
      this.#ours[slot] = ours[s]!;
    }
  }
}
