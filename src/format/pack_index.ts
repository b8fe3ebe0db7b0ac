/**
 * The plaintext of a format-3 index object `index/<id>` (FORMAT.md §4.3): where contents are.
 * Pure: entries in, text out, and back, strictly (a line that is not one refuses the whole
 * object: a wrong location would send a writer to the wrong pack).
 *
 *   s3backup-index 3
 *   <md5> <where> <stored size> <plain size>     (where: <pack>, <pack>.gz, data, data.gz)
 *   end <entry count>
 */
import { CorruptDataError } from "../util/errors.ts";
import { isMd5, isWhere } from "./layout.ts";

const MAGIC = "s3backup-index 3";
const SIZE_RE = /^(0|[1-9][0-9]{0,15})$/;

/** Where one content is. */
export interface IndexEntry {
  md5: string;
  /** FORMAT.md §4, never `-`. */
  where: string;
  /** Bytes of its member in the pack, or of its `data/` object's plaintext. */
  stored: number;
  /** Bytes of the content itself. */
  plain: number;
}

/** The text of an index object holding `entries`. */
export function formatPackIndex(entries: Iterable<IndexEntry>): string {
  const lines = [MAGIC];
  for (const e of entries) {
    if (!isMd5(e.md5) || !isWhere(e.where) || e.where === "-") {
      throw new TypeError(`bad index entry ${e.md5} ${e.where}`);
    }
    lines.push(`${e.md5} ${e.where} ${e.stored} ${e.plain}`);
  }
  lines.push(`end ${lines.length - 1}`, "");
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
  if (end === null || lines.length < 2) throw bad(lines.length, "is not the end line (cut short?)");
  const out: IndexEntry[] = [];
  for (let i = 1; i < lines.length - 1; i++) {
    const f = lines[i]!.split(" ");
    const [md5, where, stored, plain] = f as [string, string, string, string];
    if (
      f.length !== 4 || !isMd5(md5) || !isWhere(where) || where === "-" ||
      !SIZE_RE.test(stored) || !SIZE_RE.test(plain)
    ) {
      throw bad(i + 1, "is not <md5> <where> <stored size> <plain size>");
    }
    out.push({ md5, where, stored: Number(stored), plain: Number(plain) });
  }
  if (Number(end[1]) !== out.length) {
    throw bad(lines.length, `says ${end[1]} entries, found ${out.length}`);
  }
  return out;
}
