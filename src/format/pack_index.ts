/**
 * The plaintext of a format-3 index object `index/<id>` (FORMAT.md §4.3): where contents are.
 * Pure: entries in, text out, and back, strictly (a line that is not one refuses the whole
 * object: a wrong location would send a writer to the wrong pack).
 *
 *   s3backup-index 3
 *   <md5> <where> <stored size> <plain size>     (where: <pack>, <pack>.gz, data, data.gz)
 *   pack <pack> <object size>                    (one for each pack of the entries)
 *   end <count of the lines between>
 */
import { CorruptDataError } from "../util/errors.ts";
import { isMd5, isWhere, packOfWhere } from "./layout.ts";

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

/** What an index object says: where contents are, and each of their packs' stored size. */
export interface PackIndex {
  entries: IndexEntry[];
  /** Pack id -> the size of `packs/<id>` as stored. */
  packs: Map<string, number>;
}

/** The pack id of an entry (as parsePackIndex gives them), or null for a `data/` one. */
export function packOf(e: IndexEntry): string | null {
  return packOfWhere(e.where);
}

/** The text of an index object; every pack of `entries` must have its size in `packs`. */
export function formatPackIndex(index: PackIndex): string {
  const lines = [MAGIC];
  const used = new Set<string>();
  for (const e of index.entries) {
    if (!isMd5(e.md5) || !isWhere(e.where) || e.where === "-") {
      throw new TypeError(`bad index entry ${e.md5} ${e.where}`);
    }
    const pack = packOf(e);
    if (pack !== null) {
      if (!index.packs.has(pack)) throw new TypeError(`no size for pack ${pack}`);
      used.add(pack);
    }
    lines.push(`${e.md5} ${e.where} ${e.stored} ${e.plain}`);
  }
  for (const pack of used) lines.push(`pack ${pack} ${index.packs.get(pack)}`);
  lines.push(`end ${lines.length - 1}`, "");
  return lines.join("\n");
}

const PACK_LINE = /^pack ([0-9a-f]{32}) (0|[1-9][0-9]{0,15})$/;

/** An index object's text, read strictly; CorruptDataError naming the first bad line. */
export function parsePackIndex(text: string, name: string): PackIndex {
  const lines = text.split("\n");
  const bad = (n: number, why: string) =>
    new CorruptDataError(`Cannot read ${name}: line ${n} ${why}`);
  if (lines[0] !== MAGIC) throw bad(1, `is not "${MAGIC}"`);
  if (lines.at(-1) === "") lines.pop();
  const end = /^end (0|[1-9][0-9]*)$/.exec(lines.at(-1) ?? "");
  if (end === null || lines.length < 2) throw bad(lines.length, "is not the end line (cut short?)");
  const entries: IndexEntry[] = [], packs = new Map<string, number>();
  for (let i = 1; i < lines.length - 1; i++) {
    const p = PACK_LINE.exec(lines[i]!);
    if (p !== null) {
      packs.set(p[1]!, Number(p[2]));
      continue;
    }
    const f = lines[i]!.split(" ");
    const [md5, where, stored, plain] = f as [string, string, string, string];
    if (
      f.length !== 4 || !isMd5(md5) || !isWhere(where) || where === "-" ||
      !SIZE_RE.test(stored) || !SIZE_RE.test(plain)
    ) {
      throw bad(i + 1, "is not <md5> <where> <stored size> <plain size> or pack <pack> <size>");
    }
    entries.push({ md5, where, stored: Number(stored), plain: Number(plain) });
  }
  if (Number(end[1]) !== lines.length - 2) {
    throw bad(lines.length, `says ${end[1]} lines, found ${lines.length - 2}`);
  }
  const unsized = entries.find((e) => {
    const pack = packOf(e);
    return pack !== null && !packs.has(pack);
  });
  if (unsized) throw bad(lines.length, `names pack ${packOf(unsized)} without its size`);
  return { entries, packs };
}
