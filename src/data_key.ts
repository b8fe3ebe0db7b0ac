/** The data key and its wrapping in `s3backup.key` (FORMAT.md §3.2). */
import { decryptBytes, encryptBytes } from "./crypto.ts";
import { CorruptDataError, WrongPasswordError } from "./errors.ts";

export const KEY_NAME = "s3backup.key";
const KEY_MAGIC = "s3backup-key 2";

/** A new random data key: 32 bytes as 64 lowercase hex characters (the openssl passphrase). */
export function newDataKey(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

export function wrapDataKey(
  dataKey: string,
  password: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  return encryptBytes(new TextEncoder().encode(`${KEY_MAGIC}\n${dataKey}\n`), password, iterations);
}

/** Opens a wrapped key. Throws WrongPasswordError when the password does not open it. */
export async function unwrapDataKey(
  wrapped: Uint8Array,
  password: Uint8Array,
  iterations: number,
): Promise<string> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(
      await decryptBytes(wrapped, password, iterations),
    );
  } catch (err) {
    if (err instanceof CorruptDataError || err instanceof TypeError) {
      throw new WrongPasswordError(
        "Wrong password: it does not open this repository's key (s3backup.key)",
        { cause: err },
      );
    }
    throw err;
  }
  const m = /^s3backup-key 2\n([0-9a-f]{64})\n$/.exec(text);
  if (!m) {
    throw new WrongPasswordError(
      "Wrong password: it does not open this repository's key (s3backup.key)",
    );
  }
  return m[1]!;
}
