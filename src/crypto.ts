/**
 * The one encryption container of the format (FORMAT.md §3.1): exactly what
 * `openssl enc -aes-256-cbc -pbkdf2 -iter N -md sha256` writes.
 *
 *   "Salted__" | salt (8 bytes) | AES-256-CBC-PKCS#7(plaintext)
 *   key || iv = PBKDF2-HMAC-SHA256(passphrase, salt, N, 48 bytes)
 *
 * PBKDF2 runs in WebCrypto (about 4x faster than node:crypto in Deno); AES-CBC streams through
 * node:crypto so that a file of any size is never held in memory.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { CorruptDataError } from "./errors.ts";

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

/** Size of the encrypted object for a plaintext of `plainSize` bytes. */
export function encryptedSize(plainSize: number): number {
  return HEADER_SIZE + (Math.floor(plainSize / BLOCK) + 1) * BLOCK;
}

/** Size of the plaintext of an encrypted object of `size` bytes, or null if impossible. */
export function maxPlainSize(size: number): number | null {
  if (size < HEADER_SIZE + BLOCK || (size - HEADER_SIZE) % BLOCK !== 0) return null;
  return size - HEADER_SIZE - 1;
}

function header(salt: Uint8Array): Uint8Array {
  const h = new Uint8Array(HEADER_SIZE);
  h.set(MAGIC, 0);
  h.set(salt, 8);
  return h;
}

/** A stream that encrypts what passes through it. `salt` is for tests only. */
export function encryptStream(
  passphrase: Uint8Array,
  iterations: number,
  salt: Uint8Array = crypto.getRandomValues(new Uint8Array(8)),
): TransformStream<Uint8Array, Uint8Array> {
  let cipher: ReturnType<typeof createCipheriv>;
  return new TransformStream({
    async start(controller) {
      const { key, iv } = await deriveKeyIv(passphrase, salt, iterations);
      cipher = createCipheriv("aes-256-cbc", key, iv);
      controller.enqueue(header(salt));
    },
    transform(chunk, controller) {
      const out = cipher.update(chunk);
      if (out.length > 0) {
        controller.enqueue(new Uint8Array(out.buffer, out.byteOffset, out.length));
      }
    },
    flush(controller) {
      const out = cipher.final();
      if (out.length > 0) {
        controller.enqueue(new Uint8Array(out.buffer, out.byteOffset, out.length));
      }
    },
  });
}

/**
 * A stream that decrypts what passes through it. Errors with CorruptDataError on a missing
 * header or bad padding (a wrong passphrase usually, but not always: check what comes out).
 */
export function decryptStream(
  passphrase: Uint8Array,
  iterations: number,
): TransformStream<Uint8Array, Uint8Array> {
  let head = new Uint8Array(0);
  let decipher: ReturnType<typeof createDecipheriv> | undefined;
  const push = (buf: Uint8Array, controller: TransformStreamDefaultController<Uint8Array>) => {
    const out = decipher!.update(buf);
    if (out.length > 0) controller.enqueue(new Uint8Array(out.buffer, out.byteOffset, out.length));
  };
  return new TransformStream({
    async transform(chunk, controller) {
      if (decipher) return push(chunk, controller);
      const joined = new Uint8Array(head.length + chunk.length);
      joined.set(head);
      joined.set(chunk, head.length);
      if (joined.length < HEADER_SIZE) {
        head = joined;
        return;
      }
      if (!MAGIC.every((b, i) => joined[i] === b)) {
        throw new CorruptDataError("not an encrypted object (no Salted__ header)");
      }
      const { key, iv } = await deriveKeyIv(passphrase, joined.slice(8, 16), iterations);
      decipher = createDecipheriv("aes-256-cbc", key, iv);
      push(joined.subarray(HEADER_SIZE), controller);
    },
    flush(controller) {
      if (!decipher) throw new CorruptDataError("encrypted object is truncated");
      let out;
      try {
        out = decipher.final();
      } catch (err) {
        throw new CorruptDataError("decryption failed (wrong key or corrupt object)", {
          cause: err,
        });
      }
      if (out.length > 0) {
        controller.enqueue(new Uint8Array(out.buffer, out.byteOffset, out.length));
      }
    },
  });
}

/** Reads a whole stream into one buffer (for small objects: keys and metas). */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const p of stream) {
    parts.push(p);
    n += p.length;
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Encrypts a small buffer. */
export function encryptBytes(
  data: Uint8Array,
  passphrase: Uint8Array,
  iterations: number,
  salt?: Uint8Array,
): Promise<Uint8Array> {
  return readAll(
    ReadableStream.from([data]).pipeThrough(encryptStream(passphrase, iterations, salt)),
  );
}

/** Decrypts a small buffer. */
export function decryptBytes(
  data: Uint8Array,
  passphrase: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  return readAll(ReadableStream.from([data]).pipeThrough(decryptStream(passphrase, iterations)));
}
