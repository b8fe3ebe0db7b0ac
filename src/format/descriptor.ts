/** The repository descriptor `s3backup.conf` (FORMAT.md §2): plaintext, no secrets. */
import { CorruptDataError, S3BackupError } from "../util/errors.ts";
import { randomHex } from "../util/random.ts";
import { DESCRIPTOR_NAME } from "./layout.ts";

/** The format new repositories get (FORMAT.md §8); READ_FORMATS the ones this version reads. */
export const FORMAT_VERSION = 3;
export const READ_FORMATS = [2, 3];
/** The largest key-iter / data-iter a reader accepts (FORMAT.md §2): a bound on the work a
 * hostile descriptor can ask for. */
export const MAX_ITERATIONS = 10_000_000;

export interface Descriptor {
  format: number;
  /** 16 lowercase hex digits; names the repository for caches and locks. */
  id: string;
  keyIter: number;
  dataIter: number;
}

/** The values a reader assumes when the descriptor is lost (format: see FORMAT.md §2). */
export function defaultDescriptor(id = "0000000000000000", format = 2): Descriptor {
  return { format, id, keyIter: 600_000, dataIter: 1 };
}

export function newDescriptor(): Descriptor {
  return defaultDescriptor(randomHex(8), FORMAT_VERSION);
}

export function encodeDescriptor(d: Descriptor): string {
  return [
    "# s3backup repository - see FORMAT.md",
    `format=${d.format}`,
    `id=${d.id}`,
    "cipher=aes-256-cbc",
    "kdf=pbkdf2",
    "digest=sha256",
    `key-iter=${d.keyIter}`,
    `data-iter=${d.dataIter}`,
    "",
  ].join("\n");
}

/** Parses s3backup.conf. Unknown keys are ignored; an unknown format is refused. */
export function parseDescriptor(text: string): Descriptor {
  const kv = new Map<string, string>();
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "" || line.startsWith("#")) return;
    const eq = line.indexOf("=");
    if (eq < 0) {
      throw new CorruptDataError(`Cannot read ${DESCRIPTOR_NAME}: line ${i + 1} is not key=value`);
    }
    kv.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  });
  // A whole number as FORMAT.md §2 spells it: `2`, not `2.0` or `02` (the kit compares text).
  const format = /^[1-9][0-9]*$/.test(kv.get("format") ?? "") ? Number(kv.get("format")) : NaN;
  if (!READ_FORMATS.includes(format)) {
    throw new S3BackupError(
      `Repository format ${
        kv.get("format") ?? "(none)"
      } is not supported by this version (it reads formats 1 to ${FORMAT_VERSION})`,
    );
  }
  const num = (k: string, def: number) => {
    const v = kv.get(k);
    if (v === undefined) return def;
    if (!/^\d+$/.test(v) || Number(v) < 1) {
      throw new CorruptDataError(`Cannot read ${DESCRIPTOR_NAME}: ${k}=${v} is not a count`);
    }
    if (Number(v) > MAX_ITERATIONS) {
      throw new CorruptDataError(
        `Cannot read ${DESCRIPTOR_NAME}: ${k}=${v} is more than ${MAX_ITERATIONS} (FORMAT.md §2)`,
      );
    }
    return Number(v);
  };
  for (const [k, want] of [["cipher", "aes-256-cbc"], ["kdf", "pbkdf2"], ["digest", "sha256"]]) {
    const v = kv.get(k!);
    if (v !== undefined && v !== want) {
      throw new S3BackupError(`Repository uses ${k}=${v}; this version supports ${want} only`);
    }
  }
  const def = defaultDescriptor(kv.get("id") ?? undefined);
  return {
    format,
    id: def.id,
    keyIter: num("key-iter", def.keyIter),
    dataIter: num("data-iter", def.dataIter),
  };
}
