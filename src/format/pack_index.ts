/**
 * The plaintext of a format-3 index object `index/<id>` (docs/format-3.md): where contents
 * live. Pure: entries in, text out, and back, strictly (a line that is not one refuses the
 * whole object: a wrong location would send a reader to the wrong pack).
 *
 *   s3backup-index 3
 *   <md5> <pack> <stored size> <plain size>[ gz]      (a content; <pack>: 32 hex digits)
 *   end <entry count>
 *
 * The stored size is its member's in the pack's tar; `gz`: the member is `<md5>.gz`, the
 * gzip of the content, else `<md5>`, the content as is.
 */
import { CorruptDataError } from "../util/errors.ts";
import { isMd5 } from "./layout.ts";

const MAGIC = "s3backup-index 3";
const PACK_RE = /^[0-9a-f]{32}$/;
const SIZE_RE = /^(0|[1-9][0-9]{0,15})$/;

/** Where one content lives. */
export interface IndexEntry {
  md5: string;
  /** The pack's id: the object is `packs/<pack>`. */
  pack: string;
  /** Bytes of its member in the pack's tar (gzipped or not). */
  stored: number;
  /** Bytes of the content itself. */
  plain: number;
  /** The member is `<md5>.gz`. */
  gz: boolean;
}

/** The text of an index object holding `entries`. */
export function formatPackIndex(entries: IndexEntry[]): string {
  const lines = [MAGIC];
  for (const e of entries) {
    if (!isMd5(e.md5) || !PACK_RE.test(e.pack)) throw new TypeError(`bad index entry ${e.md5}`);
    lines.push(`${e.md5} ${e.pack} ${e.stored} ${e.plain}${e.gz ? " gz" : ""}`);
  }
  lines.push(`end ${entries.length}`, "");
  return lines.join("\n");
}

/** The entries of an index object's text; CorruptDataError naming the first bad line. */
export function parsePackIndex(text: string, name: string): IndexEntry[] {
  const lines = text.split("\n");
  const bad = (n: number, why: string) =>
    new CorruptDataError(`Cannot read ${name}: line ${n} ${why}`);
  if (lines[0] !== MAGIC) throw bad(1, `is not "${MAGIC}"`);
  if (lines.at(-1) === "") lines.pop();
  const end = /^end (0|[1-9][0-9]*)$/.exec(lines.at(-1) ?? "");
  if (end === null) throw bad(lines.length, "is not the end line (cut short?)");
  const out: IndexEntry[] = [];
  for (let i = 1; i < lines.length - 1; i++) {
    const f = lines[i]!.split(" ");
    const [md5, pack, stored, plain, flag] = f as [string, string, string, string, string?];
    if (
      (f.length !== 4 && !(f.length === 5 && flag === "gz")) || !isMd5(md5) ||
      !PACK_RE.test(pack) || !SIZE_RE.test(stored) || !SIZE_RE.test(plain)
    ) {
      throw bad(i + 1, "is not <md5> <pack> <stored size> <plain size> [gz]");
    }
    out.push({ md5, pack, stored: Number(stored), plain: Number(plain), gz: flag === "gz" });
  }
  if (Number(end[1]) !== out.length) {
    throw bad(lines.length, `says ${end[1]} entries, found ${out.length}`);
  }
  return out;
}
