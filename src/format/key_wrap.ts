/** The data key and its wrapping in `s3backup.key` (FORMAT.md §3.2). */
import { decryptBytes, encryptBytes } from "./container.ts";
import { CorruptDataError, WrongPasswordError } from "../util/errors.ts";
import { randomHex } from "../util/random.ts";

const KEY_MAGIC = "s3backup-key 2";

/** A new random data key: 32 bytes as 64 lowercase hex characters (the openssl passphrase). */
export function newDataKey(): string {
  return randomHex(32);
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
