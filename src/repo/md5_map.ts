/**
 * A map from contents' MD5s (lowercase hex) to short strings (where each content is: a pack id,
 * `data`, ...), held in typed arrays: 16 bytes of key and 4 of value a content, in an
 * open-addressed table at most half full, the values interned. A Map of hex strings took about
 * 130 bytes a content, and kept the index texts the strings were cut from: a million contents
 * are about 40 MiB here, not 200.
 */
const EMPTY = 0;

export class Md5Map {
  #keys = new Uint32Array(4 * 1024);
  /** The value's number + 1 (0: an empty slot). */
  #slots = new Uint32Array(1024);
  readonly #values: string[] = [];
  readonly #ids = new Map<string, number>();
  size = 0;

  /** The slot of `k` (4 words), or of the empty slot where it would go. */
  #find(k: Uint32Array): number {
    const mask = this.#slots.length - 1;
    for (let i = k[0]! & mask;; i = (i + 1) & mask) {
      if (this.#slots[i] === EMPTY) return i;
      const o = 4 * i, keys = this.#keys;
      if (
        keys[o] === k[0] && keys[o + 1] === k[1] && keys[o + 2] === k[2] && keys[o + 3] === k[3]
      ) {
        return i;
      }
    }
  }

  /** The value of `md5`, or undefined. */
  get(md5: string): string | undefined {
    const k = words(md5);
    if (k === null) return undefined;
    const s = this.#slots[this.#find(k)]!;
    return s === EMPTY ? undefined : this.#values[s - 1];
  }

  /** Sets `md5` (32 lowercase hex digits, else TypeError) to `value`. */
  set(md5: string, value: string): void {
    const k = words(md5);
    if (k === null) throw new TypeError(`not an MD5: ${md5}`);
    let id = this.#ids.get(value);
    if (id === undefined) {
      id = this.#values.push(value);
      this.#ids.set(value, id);
    }
    const i = this.#find(k);
    if (this.#slots[i] === EMPTY) {
      this.#keys.set(k, 4 * i);
      this.size++;
    }
    this.#slots[i] = id;
    if (this.size * 2 > this.#slots.length) this.#grow();
  }

  #grow(): void {
    const [keys, slots] = [this.#keys, this.#slots];
    this.#keys = new Uint32Array(keys.length * 2);
    this.#slots = new Uint32Array(slots.length * 2);
    for (let i = 0; i < slots.length; i++) {
      if (slots[i] === EMPTY) continue;
      const k = keys.subarray(4 * i, 4 * i + 4);
      const j = this.#find(k);
      this.#keys.set(k, 4 * j);
      this.#slots[j] = slots[i]!;
    }
  }
}

const WORDS = new Uint32Array(4);

/**
 * An MD5's 16 bytes as 4 words (one shared array: use before the next call), or null when it
 * is not 32 lowercase hex digits. (By char codes: a map is filled from every index entry.)
 */
function words(md5: string): Uint32Array | null {
  if (md5.length !== 32) return null;
  for (let w = 0; w < 4; w++) {
    let v = 0;
    for (let i = 8 * w; i < 8 * w + 8; i++) {
      const c = md5.charCodeAt(i);
      const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
      if (d < 0) return null;
      v = v * 16 + d;
    }
    WORDS[w] = v;
  }
  return WORDS;
}
