/**
 * The one encryption container of the format (FORMAT.md §3.1): exactly what
 * `openssl enc -aes-256-cbc -pbkdf2 -iter N -md sha256` writes.
 *
 *   "Salted__" | salt (8 bytes) | AES-256-CBC-PKCS#7(plaintext)
 *   key || iv = PBKDF2-HMAC-SHA256(passphrase, salt, N, 48 bytes)
 *
 * Streams run PBKDF2 and AES-CBC in WebCrypto (faster than node:crypto in Deno for bulk), in
 * bounded batches, so that a file of any size is never held in memory. A small buffer with a
 * cheap key derivation is done in one synchronous node:crypto call instead: each WebCrypto
 * call is an asynchronous round trip that costs more than the work itself (about 220 µs vs
 * 50 µs for a 2 KiB object).
 */
import { createCipheriv, createDecipheriv, pbkdf2Sync } from "node:crypto";
import { readAll } from "../util/bytes.ts";
import { CorruptDataError } from "../util/errors.ts";

const MAGIC = new TextEncoder().encode("Salted__");
export const HEADER_SIZE = 16;
const BLOCK = 16;

/** Derives key and IV the way `openssl enc -pbkdf2 -md sha256` does. */
export async function deriveKeyIv(
  passphrase: Uint8Array,
  salt: Uint8Array,
  iterations: number,
): Promise<{ key: Uint8Array; iv: Uint8Array }> {
  const base = await crypto.subtle.importKey(
    "raw",
    passphrase as Uint8Array<ArrayBuffer>,
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-256", salt: salt as Uint8Array<ArrayBuffer>, iterations },
      base,
      (32 + 16) * 8,
    ),
  );
  return { key: bits.subarray(0, 32), iv: bits.subarray(32, 48) };
}

/** A key derivation started ahead of its use (it runs off the main thread meanwhile). */
export interface PreparedKey {
  salt: Uint8Array;
  keyIv: Promise<{ key: Uint8Array; iv: Uint8Array }>;
}

/** Starts deriving the key and IV of a new container for `passphrase`, with a fresh salt. */
export function prepareKey(passphrase: Uint8Array, iterations: number): PreparedKey {
  const salt = crypto.getRandomValues(new Uint8Array(8));
  const keyIv = deriveKeyIv(passphrase, salt, iterations);
  keyIv.catch(() => {}); // awaited (and its error seen) by the stream that uses it, if any
  return { salt, keyIv };
}

/** Size of the encrypted object for a plaintext of `plainSize` bytes. */
export function encryptedSize(plainSize: number): number {
  return HEADER_SIZE + (Math.floor(plainSize / BLOCK) + 1) * BLOCK;
}

function header(salt: Uint8Array): Uint8Array {
  const h = new Uint8Array(HEADER_SIZE);
  h.set(MAGIC, 0);
  h.set(salt, 8);
  return h;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Below this many bytes, input is gathered before a WebCrypto call (each call has a cost). */
const MIN_BATCH = 64 * 1024;

/** Gathers chunks without copying until they are wanted as one buffer (linear, not quadratic). */
class Gather {
  #parts: Uint8Array[] = [];
  length = 0;
  push(chunk: Uint8Array): void {
    this.#parts.push(chunk);
    this.length += chunk.length;
  }
  /** Everything gathered, as one buffer; the gatherer is then empty. */
  take(): Uint8Array {
    const parts = this.#parts;
    this.#parts = [];
    this.length = 0;
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

async function aesKey(key: Uint8Array, usage: KeyUsage[]): Promise<CryptoKey> {
  return await crypto.subtle.importKey(
    "raw",
    key as Uint8Array<ArrayBuffer>,
    "AES-CBC",
    false,
    usage,
  );
}

/** WebCrypto's types want ArrayBuffer-backed views; ours always are. */
function ab(x: Uint8Array): Uint8Array<ArrayBuffer> {
  return x as Uint8Array<ArrayBuffer>;
}

function cbc(iv: Uint8Array): AesCbcParams {
  return { name: "AES-CBC", iv: iv as Uint8Array<ArrayBuffer> };
}

/**
 * A stream that encrypts what passes through it. `salt` is for tests only; `prepared`, a
 * derivation of `passphrase` started earlier, gives both salt and key.
 *
 * AES-CBC runs in WebCrypto (about twice node:crypto's speed in Deno), which only does whole
 * messages with PKCS#7 padding. CBC chains, so each batch of whole blocks is encrypted on its
 * own with the previous ciphertext block as IV, and the padding block WebCrypto appends is
 * dropped; only the last batch keeps it. The bytes are exactly one `openssl enc` stream.
 */
export function encryptStream(
  passphrase: Uint8Array,
  iterations: number,
  salt: Uint8Array = crypto.getRandomValues(new Uint8Array(8)),
  prepared?: PreparedKey,
): TransformStream<Uint8Array, Uint8Array> {
  let key: CryptoKey;
  let iv: Uint8Array;
  const gather = new Gather();
  if (prepared) salt = prepared.salt;
  return new TransformStream({
    async start(controller) {
      const d = await (prepared?.keyIv ?? deriveKeyIv(passphrase, salt, iterations));
      key = await aesKey(d.key, ["encrypt"]);
      iv = d.iv;
      controller.enqueue(header(salt));
    },
    async transform(chunk, controller) {
      let data: Uint8Array;
      if (gather.length === 0 && chunk.length >= MIN_BATCH) data = chunk; // used now: no copy
      else {
        gather.push(chunk.slice()); // kept past this call: the source may reuse its buffer
        if (gather.length < MIN_BATCH + BLOCK) return;
        data = gather.take();
      }
      const whole = data.length - (data.length % BLOCK);
      const out = new Uint8Array(
        await crypto.subtle.encrypt(cbc(iv), key, ab(data.subarray(0, whole))),
      );
      const kept = out.subarray(0, whole); // drop the padding block
      iv = kept.slice(whole - BLOCK);
      if (whole < data.length) gather.push(data.slice(whole));
      controller.enqueue(kept);
    },
    async flush(controller) {
      const rest = gather.take();
      controller.enqueue(new Uint8Array(await crypto.subtle.encrypt(cbc(iv), key, ab(rest))));
    },
  });
}

const PAD_BLOCK = new Uint8Array(BLOCK).fill(BLOCK);

/**
 * A stream that decrypts what passes through it. Errors with CorruptDataError on a missing
 * header or bad padding (a wrong passphrase usually, but not always: check what comes out).
 *
 * WebCrypto checks padding at the end of every message, so each batch but the last gets a
 * forged final block E = AES(pad || last ciphertext block), which decrypts to a whole padding
 * block and is stripped again. The last block is always held back for the real padding check.
 */
export function decryptStream(
  passphrase: Uint8Array,
  iterations: number,
): TransformStream<Uint8Array, Uint8Array> {
  const gather = new Gather();
  let key: CryptoKey | undefined;
  let encKey: CryptoKey;
  let iv: Uint8Array;
  const fail = (err?: unknown) =>
    new CorruptDataError("decryption failed (wrong key or corrupt object)", { cause: err });
  return new TransformStream({
    async transform(chunk, controller) {
      gather.push(chunk.slice()); // the source may reuse its buffer
      if (!key) {
        if (gather.length < HEADER_SIZE) return;
        const head = gather.take();
        if (!MAGIC.every((b, i) => head[i] === b)) {
          throw new CorruptDataError("not an encrypted object (no Salted__ header)");
        }
        const d = await deriveKeyIv(passphrase, head.slice(8, 16), iterations);
        key = await aesKey(d.key, ["decrypt"]);
        encKey = await aesKey(d.key, ["encrypt"]);
        iv = d.iv;
        if (head.length > HEADER_SIZE) gather.push(head.subarray(HEADER_SIZE));
      }
      // Keep at least one block back: the last one carries the padding.
      if (gather.length < MIN_BATCH + 2 * BLOCK) return;
      const data = gather.take();
      const whole = data.length - BLOCK - ((data.length - BLOCK) % BLOCK);
      const last = data.subarray(whole - BLOCK, whole);
      const forged = new Uint8Array(await crypto.subtle.encrypt(cbc(last), encKey, PAD_BLOCK))
        .subarray(0, BLOCK);
      const batch = concat(data.subarray(0, whole), forged);
      let plain: Uint8Array;
      try {
        plain = new Uint8Array(await crypto.subtle.decrypt(cbc(iv), key, ab(batch)));
      } catch (err) {
        throw fail(err);
      }
      iv = last.slice();
      gather.push(data.subarray(whole));
      controller.enqueue(plain);
    },
    async flush(controller) {
      if (!key) throw new CorruptDataError("encrypted object is truncated");
      const rest = gather.take();
      if (rest.length === 0 || rest.length % BLOCK !== 0) throw fail();
      let plain: Uint8Array;
      try {
        plain = new Uint8Array(await crypto.subtle.decrypt(cbc(iv), key, ab(rest)));
      } catch (err) {
        throw fail(err);
      }
      if (plain.length > 0) controller.enqueue(plain);
    },
  });
}

/** Key derivations up to this many iterations (data objects: 1) are run synchronously. */
const SYNC_ITERATIONS = 1000;

function keyIvSync(passphrase: Uint8Array, salt: Uint8Array, iterations: number) {
  const bits = pbkdf2Sync(passphrase, salt, iterations, 48, "sha256");
  return { key: bits.subarray(0, 32), iv: bits.subarray(32, 48) };
}

/** The container of `data`, in one synchronous call (small buffers). */
export function encryptSync(
  data: Uint8Array,
  passphrase: Uint8Array,
  iterations: number,
  salt: Uint8Array = crypto.getRandomValues(new Uint8Array(8)),
): Uint8Array {
  return encryptPartsSync([data], passphrase, iterations, salt);
}

/** The container of the concatenation of `parts`, in one synchronous pass (no joined copy). */
export function encryptPartsSync(
  parts: Uint8Array[],
  passphrase: Uint8Array,
  iterations: number,
  salt: Uint8Array = crypto.getRandomValues(new Uint8Array(8)),
): Uint8Array {
  const enc = new SyncEncryptor(passphrase, iterations, salt);
  const out = new Uint8Array(encryptedSize(parts.reduce((n, p) => n + p.length, 0)));
  out.set(enc.head);
  let at = enc.head.length;
  for (const p of parts) {
    const b = enc.update(p);
    out.set(b, at);
    at += b.length;
  }
  out.set(enc.final(), at);
  return out;
}

/**
 * A container written piece by piece, synchronously (a pack sealed as it fills): `head` first,
 * then what each `update` returns, then what `final` returns. Their concatenation is what
 * encryptPartsSync makes of the same parts.
 */
export class SyncEncryptor {
  readonly head: Uint8Array;
  readonly #cipher;

  constructor(
    passphrase: Uint8Array,
    iterations: number,
    salt: Uint8Array = crypto.getRandomValues(new Uint8Array(8)),
  ) {
    const { key, iv } = keyIvSync(passphrase, salt, iterations);
    this.#cipher = createCipheriv("aes-256-cbc", key, iv);
    this.head = header(salt);
  }

  /** The ciphertext of `plain` (whole blocks: up to 15 bytes wait for the next call). */
  update(plain: Uint8Array): Uint8Array {
    return this.#cipher.update(plain);
  }

  /** The last block, padded. */
  final(): Uint8Array {
    return this.#cipher.final();
  }
}

/** The ciphertext after a container's header; CorruptDataError when it cannot be one. */
function checkContainer(data: Uint8Array): Uint8Array {
  if (data.length < HEADER_SIZE || !MAGIC.every((b, i) => data[i] === b)) {
    throw new CorruptDataError(
      data.length < HEADER_SIZE
        ? "encrypted object is truncated"
        : "not an encrypted object (no Salted__ header)",
    );
  }
  const body = data.subarray(HEADER_SIZE);
  if (body.length === 0 || body.length % BLOCK !== 0) {
    throw new CorruptDataError("decryption failed (wrong key or corrupt object)");
  }
  return body;
}

/** The plaintext of a container, in one synchronous call; CorruptDataError as decryptStream. */
export function decryptSync(data: Uint8Array, passphrase: Uint8Array, iterations: number) {
  const body = checkContainer(data);
  const { key, iv } = keyIvSync(passphrase, data.subarray(8, 16), iterations);
  try {
    const d = createDecipheriv("aes-256-cbc", key, iv);
    const a = d.update(body);
    const b = d.final();
    const out = new Uint8Array(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  } catch (err) {
    throw new CorruptDataError("decryption failed (wrong key or corrupt object)", { cause: err });
  }
}

/**
 * Buffers up to this size are en- and decrypted synchronously; bigger ones by one WebCrypto call,
 * off the main thread.
 */
const SYNC_CIPHER = 32 * 1024;

/**
 * The container of `data` in one WebCrypto call (its PKCS#7 padding is openssl's), which runs
 * off the main thread: the main thread reads and hashes the next files meanwhile.
 */
async function encryptWhole(
  data: Uint8Array,
  passphrase: Uint8Array,
  iterations: number,
  salt: Uint8Array,
): Promise<Uint8Array> {
  const { key, iv } = keyIvSync(passphrase, salt, iterations);
  const k = await aesKey(key, ["encrypt"]);
  const body = new Uint8Array(await crypto.subtle.encrypt(cbc(iv), k, ab(data)));
  return concat(header(salt), body);
}

/**
 * Encrypts a buffer: with a cheap key derivation (data objects) synchronously when small, else
 * by one WebCrypto call; with an expensive one (metas, 600,000 iterations) through
 * encryptStream, whose derivation runs off the main thread.
 */
export function encryptBytes(
  data: Uint8Array,
  passphrase: Uint8Array,
  iterations: number,
  salt?: Uint8Array,
): Promise<Uint8Array> {
  if (iterations <= SYNC_ITERATIONS) {
    if (data.length <= SYNC_CIPHER) {
      return Promise.resolve(encryptSync(data, passphrase, iterations, salt));
    }
    return encryptWhole(
      data,
      passphrase,
      iterations,
      salt ?? crypto.getRandomValues(new Uint8Array(8)),
    );
  }
  return readAll(
    ReadableStream.from([data]).pipeThrough(encryptStream(passphrase, iterations, salt)),
  );
}

/** The plaintext of a container in one WebCrypto call (off the main thread); as decryptSync. */
async function decryptWhole(data: Uint8Array, passphrase: Uint8Array, iterations: number) {
  const body = checkContainer(data);
  const { key, iv } = keyIvSync(passphrase, data.subarray(8, 16), iterations);
  const k = await aesKey(key, ["decrypt"]);
  try {
    return new Uint8Array(await crypto.subtle.decrypt(cbc(iv), k, ab(body)));
  } catch (err) {
    throw new CorruptDataError("decryption failed (wrong key or corrupt object)", { cause: err });
  }
}

/**
 * Decrypts a buffer: with a cheap key derivation synchronously when small, else by one
 * WebCrypto call; with an expensive one through decryptStream.
 */
export function decryptBytes(
  data: Uint8Array,
  passphrase: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  if (iterations <= SYNC_ITERATIONS) {
    if (data.length > SYNC_CIPHER) return decryptWhole(data, passphrase, iterations);
    try {
      return Promise.resolve(decryptSync(data, passphrase, iterations));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return readAll(ReadableStream.from([data]).pipeThrough(decryptStream(passphrase, iterations)));
}
