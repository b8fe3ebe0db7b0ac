/**
 * Format 1: the buckets of the original `s3backup.py` (FORMAT.md §8), read-only. The pure part:
 * key derivation, decryption, meta names and meta text (repo/legacy.ts opens the objects).
 *
 * What that program wrote (program/backup.py and program/encryption.py):
 *
 * - No `s3backup.conf`, no `s3backup.key`. Every object is encrypted with the **password**,
 *   the way `openssl enc -aes-256-cbc -md md5 -pass …` does without `-pbkdf2`: `Salted__`,
 *   8 random salt bytes, then AES-256-CBC with PKCS#7 padding, key and IV from OpenSSL's
 *   EVP_BytesToKey with MD5 and one iteration: D1 = MD5(pw | salt), Di = MD5(Di-1 | pw | salt),
 *   key = the first 32 bytes of D1 | D2 | D3, IV the next 16.
 * - Data objects: `<md5>`, the MD5 of the plaintext, as in format 2.
 * - Metas: `meta_[<name>_]<YYYY-MM-DD>_<milliseconds since the epoch>` (the date is the local
 *   date of the backup, the milliseconds its time; `<name>` is a slug: a-z 0-9 _ -).
 *   The plaintext is one line per regular file, `<md5> <path>\n`, the path unescaped: the rest
 *   of the line. Early versions wrote the path as walked (the source folder as typed, often
 *   absolute, then the file); later ones relative to the source folder. No directories, modes,
 *   owners, times or symlinks (a symlink to a file was stored as the file it points to).
 *
 * Restoring a format 1 backup: paths are made relative the way tar does it (leading `/`, `./`
 * and `../` components removed, with a notice), then checked as in format 2; a line that does
 * not start with `<md5> ` continues the previous path (a name holding a newline). Files get
 * mode 0644, the directories they need 0755; times are left at the time of the restore.
 */
import { createDecipheriv, createHash } from "node:crypto";
import { readAll } from "../util/bytes.ts";
import { CorruptDataError, WrongPasswordError } from "../util/errors.ts";
import type { MetaName } from "./layout.ts";
import type { Entry, Meta } from "./meta.ts";

const MAGIC = new TextEncoder().encode("Salted__");
const HEADER_SIZE = 16;
const LEGACY_META_RE = /^meta_(?:(.+)_)?(\d{4}-\d{2}-\d{2})_(\d{1,15})$/;
const LINE_RE = /^[0-9a-f]{32} /;

/** OpenSSL's EVP_BytesToKey with MD5 and one iteration (`openssl enc -md md5`, no -pbkdf2). */
export function evpBytesToKey(
  passphrase: Uint8Array,
  salt: Uint8Array,
  keyLen = 32,
  ivLen = 16,
): { key: Uint8Array; iv: Uint8Array } {
  const out = new Uint8Array(keyLen + ivLen);
  let have = 0;
  let prev = new Uint8Array(0);
  while (have < out.length) {
    prev = new Uint8Array(createHash("md5").update(prev).update(passphrase).update(salt).digest());
    const n = Math.min(prev.length, out.length - have);
    out.set(prev.subarray(0, n), have);
    have += n;
  }
  return { key: out.subarray(0, keyLen), iv: out.subarray(keyLen) };
}

function view(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/**
 * A stream that decrypts a format 1 object with the password. Errors with CorruptDataError on
 * a missing header or bad padding (the caller checks what comes out).
 */
export function legacyDecryptStream(password: Uint8Array): TransformStream<Uint8Array, Uint8Array> {
  let head = new Uint8Array(0);
  let decipher: ReturnType<typeof createDecipheriv> | undefined;
  return new TransformStream({
    transform(chunk, controller) {
      if (!decipher) {
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
        const { key, iv } = evpBytesToKey(password, joined.slice(8, 16));
        decipher = createDecipheriv("aes-256-cbc", key, iv);
        chunk = joined.subarray(HEADER_SIZE);
      }
      const out = decipher.update(chunk);
      if (out.length > 0) controller.enqueue(view(out));
    },
    flush(controller) {
      if (!decipher) throw new CorruptDataError("encrypted object is truncated");
      let out;
      try {
        out = decipher.final();
      } catch (err) {
        throw new CorruptDataError("decryption failed (wrong password or corrupt object)", {
          cause: err,
        });
      }
      if (out.length > 0) controller.enqueue(view(out));
    },
  });
}

export function legacyDecryptBytes(data: Uint8Array, password: Uint8Array): Promise<Uint8Array> {
  return readAll(ReadableStream.from([data]).pipeThrough(legacyDecryptStream(password)));
}

/** Parses a format 1 meta name; null if it is not one. */
export function parseLegacyMetaName(key: string): MetaName | null {
  const m = LEGACY_META_RE.exec(key);
  if (!m) return null;
  const time = new Date(Number(m[3]));
  if (Number.isNaN(time.getTime())) return null;
  return { key, name: m[1] ?? "", time };
}

export interface LegacyMeta extends Meta {
  /** Lines that cannot be restored (path, why): the restore reports them as failed. */
  problems: { path: string; message: string }[];
  /** Things the user should know (paths rewritten). */
  notes: string[];
}

/**
 * Turns a format 1 path into a format 2 one the way tar does: leading `/`, `./` and `../`
 * components removed. Returns the new path and whether it changed.
 */
export function relativizeLegacyPath(p: string): { path: string; changed: boolean } {
  let s = p;
  while (true) {
    const before = s;
    s = s.replace(/^\/+/, "");
    if (s.startsWith("./") || s.startsWith("../")) s = s.slice(s.indexOf("/") + 1);
    if (s === before) break;
  }
  return { path: s, changed: s !== p };
}

/**
 * Parses a decrypted format 1 meta. Throws WrongPasswordError when it does not look like one
 * (the first line is not `<md5> <path>`): there is no other password check in format 1.
 */
export function parseLegacyMeta(plain: Uint8Array, key: string, time: Date, name: string) {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < plain.length; i++) {
    if (plain[i] === 0x0a) {
      lines.push(plain.subarray(start, i));
      start = i + 1;
    }
  }
  if (start < plain.length) lines.push(plain.subarray(start));
  const latin1 = new TextDecoder("latin1");
  const isEntry = (l: Uint8Array) => LINE_RE.test(latin1.decode(l.subarray(0, 33)));
  if (lines.length > 0 && !isEntry(lines[0]!)) {
    throw new WrongPasswordError(
      `Wrong password (or corrupt meta): ${key} does not decrypt to an s3backup.py meta`,
    );
  }
  // A line that does not start with "<md5> " continues the previous path (a newline in a name).
  const raw: { md5: string; path: Uint8Array[] }[] = [];
  for (const l of lines) {
    if (isEntry(l)) raw.push({ md5: latin1.decode(l.subarray(0, 32)), path: [l.subarray(33)] });
    else raw.at(-1)!.path.push(l);
  }
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const problems: { path: string; message: string }[] = [];
  const notes: string[] = [];
  const entries: Entry[] = [];
  const dirs = new Set<string>();
  let rewritten = 0;
  for (const r of raw) {
    const bytes = new Uint8Array(r.path.reduce((n, p) => n + p.length + 1, -1));
    let off = 0;
    for (const [i, p] of r.path.entries()) {
      if (i > 0) bytes[off++] = 0x0a;
      bytes.set(p, off);
      off += p.length;
    }
    let path: string;
    try {
      path = utf8.decode(bytes);
    } catch {
      problems.push({
        path: new TextDecoder().decode(bytes),
        message: "file name is not valid UTF-8: cannot be restored by this version",
      });
      continue;
    }
    const rel = relativizeLegacyPath(path);
    if (rel.changed) rewritten++;
    const parts = rel.path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (dirs.has(d)) continue;
      dirs.add(d);
      entries.push({
        type: "d",
        path: d,
        mode: 0o755,
        uid: null,
        gid: null,
        size: 0,
        mtimeMs: null,
      });
    }
    entries.push({
      type: "f",
      path: rel.path,
      md5: r.md5,
      mode: 0o644,
      uid: null,
      gid: null,
      size: null, // format 1 records neither
      mtimeMs: null,
    });
  }
  if (rewritten > 0) {
    notes.push(
      `${key}: ${rewritten} paths were absolute or started with '..': restored under the ` +
        `target without their leading '/', './' and '../'`,
    );
  }
  const meta: LegacyMeta = {
    header: { time, host: "", source: "", name, wrappedKey: new Uint8Array() },
    entries,
    problems,
    notes,
  };
  return meta;
}
