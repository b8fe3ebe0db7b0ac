/**
 * The tar of a format-3 pack (FORMAT.md §4.1): POSIX ustar members, as GNU tar and bsdtar
 * both read them. Pure: a member's header is made from its name and size, and a header block
 * is parsed back into them (its checksum checked). Members are regular files, mode 0600,
 * uid/gid 0, mtime 0; a size of 8 GiB or more goes in a pax `size` record before the member.
 */
import { CorruptDataError } from "../util/errors.ts";

export const BLOCK = 512;
/** The end of an archive: two zero blocks. */
export const TAR_END = new Uint8Array(2 * BLOCK);
/** The largest size the ustar size field holds (11 octal digits). */
const USTAR_MAX = 8 ** 11 - 1;

const te = new TextEncoder();
const td = new TextDecoder();

/** Writes `text` (ASCII, as every field here is) at `at`, at most `width` bytes. */
function put(block: Uint8Array, at: number, width: number, text: string): void {
  if (text.length > width) throw new RangeError(`tar field too long: ${text}`);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) throw new RangeError(`tar field not ASCII: ${text}`);
    block[at + i] = c;
  }
}

/** An octal field: `width - 1` zero-padded digits and a NUL. */
function octal(block: Uint8Array, at: number, width: number, n: number): void {
  put(block, at, width, n.toString(8).padStart(width - 1, "0") + "\0");
}

/** What a ustar header block says beyond name, size and type (a pack member's: all zero). */
interface HeaderFacts {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname: string;
}

const PACKED: HeaderFacts = { mode: 0o600, uid: 0, gid: 0, mtime: 0, linkname: "" };

/**
 * One ustar header block (typeflag `type`: `0` a file, `2` a symbolic link, `5` a directory,
 * `x` a pax record).
 */
function header(
  name: string,
  size: number,
  type: "0" | "2" | "5" | "x",
  facts: HeaderFacts = PACKED,
): Uint8Array {
  const b = new Uint8Array(BLOCK);
  put(b, 0, 100, name);
  octal(b, 100, 8, facts.mode);
  octal(b, 108, 8, facts.uid);
  octal(b, 116, 8, facts.gid);
  octal(b, 124, 12, size);
  octal(b, 136, 12, facts.mtime);
  b.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  put(b, 156, 1, type);
  put(b, 157, 100, facts.linkname);
  put(b, 257, 6, "ustar\0");
  put(b, 263, 2, "00");
  let sum = 0;
  for (const x of b) sum += x;
  put(b, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return b;
}

/** A pack member's header with an empty name and size 0, and the sum of its bytes. */
const PACKED_BLANK = header("", 0, "0");
const PACKED_SUM = PACKED_BLANK.reduce((n, x, i) => n + (i >= 148 && i < 156 ? 0x20 : x), 0);
const ZERO = 0x30;

/**
 * header(name, size, "0") for a pack member, made from PACKED_BLANK (a third of the time: it is
 * made once a small file): the name and the size's digits written in, the checksum summed from
 * them (a checksum counts its own field as spaces).
 */
function packedHeader(name: string, size: number): Uint8Array {
  const b = PACKED_BLANK.slice();
  put(b, 0, 100, name);
  let sum = PACKED_SUM;
  for (let i = 0; i < name.length; i++) sum += name.charCodeAt(i);
  const digits = size.toString(8);
  put(b, 124 + 11 - digits.length, digits.length, digits);
  for (let i = 0; i < digits.length; i++) sum += digits.charCodeAt(i) - ZERO;
  put(b, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return b;
}

/**
 * The bytes before a member's content: its header, preceded by a pax header and record when
 * `size` does not fit ustar.
 */
export function memberHeader(name: string, size: number): Uint8Array {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`tar size ${size}`);
  if (size <= USTAR_MAX) return packedHeader(name, size);
  const record = paxRecord("size", String(size));
  const out = new Uint8Array(BLOCK + padded(record.length) + BLOCK);
  out.set(header(`PaxHeaders/${name}`.slice(0, 100), record.length, "x"), 0);
  out.set(record, BLOCK);
  out.set(header(name, 0, "0"), BLOCK + padded(record.length));
  return out;
}

/** A pax record `<length> <key>=<value>\n`, the length (in bytes) counting itself. */
function paxRecord(key: string, value: string): Uint8Array {
  const body = te.encode(` ${key}=${value}\n`);
  let n = body.length + 1;
  while (String(n).length + body.length !== n) n++;
  return te.encode(`${n} ${key}=${value}\n`);
}

/** A member of a tar of a backup's entries (`dump`): a file, a symbolic link or a folder. */
export interface TarEntry {
  name: string;
  type: "0" | "2" | "5";
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch (a fraction and a negative time go in a pax record). */
  mtime: number;
  linkname?: string;
}

const ID_MAX = 8 ** 7 - 1;

/**
 * The bytes before an entry's content: a pax header and its records for what ustar cannot hold
 * (a name or link target of more than 100 bytes or not ASCII, a large size, id or time, a
 * fraction of a second), then the ustar header (those fields there ASCII placeholders).
 */
export function entryHeader(e: TarEntry): Uint8Array {
  const fits = (s: string) => s.length <= 100 && /^[\x20-\x7e]*$/.test(s);
  const ascii = (s: string) => s.replace(/[^\x20-\x7e]/g, "_").slice(0, 100);
  const records: Uint8Array[] = [];
  if (!fits(e.name)) records.push(paxRecord("path", e.name));
  const link = e.linkname ?? "";
  if (!fits(link)) records.push(paxRecord("linkpath", link));
  if (e.size > USTAR_MAX) records.push(paxRecord("size", String(e.size)));
  const mtime = Number.isInteger(e.mtime) && e.mtime >= 0 && e.mtime <= USTAR_MAX ? e.mtime : 0;
  if (mtime !== e.mtime) records.push(paxRecord("mtime", String(e.mtime)));
  if (e.uid > ID_MAX) records.push(paxRecord("uid", String(e.uid)));
  if (e.gid > ID_MAX) records.push(paxRecord("gid", String(e.gid)));
  const facts = {
    mode: e.mode & 0o7777,
    uid: e.uid > ID_MAX ? 0 : e.uid,
    gid: e.gid > ID_MAX ? 0 : e.gid,
    mtime,
    linkname: ascii(link),
  };
  const main = header(ascii(e.name), e.size > USTAR_MAX ? 0 : e.size, e.type, facts);
  if (records.length === 0) return main;
  const pax = new Uint8Array(records.reduce((n, r) => n + r.length, 0));
  records.reduce((n, r) => (pax.set(r, n), n + r.length), 0);
  const out = new Uint8Array(BLOCK + padded(pax.length) + BLOCK);
  out.set(header(`PaxHeaders/${ascii(e.name)}`.slice(0, 100), pax.length, "x"), 0);
  out.set(pax, BLOCK);
  out.set(main, BLOCK + padded(pax.length));
  return out;
}

/** `n` rounded up to whole blocks. */
export function padded(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

/** The zero bytes after a member of `size` bytes, to the end of its last block. */
export function memberPadding(size: number): Uint8Array {
  return new Uint8Array(padded(size) - size);
}

/** A parsed header block: a member, a pax record's length, or the end. */
export type TarBlock =
  | { kind: "file"; name: string; size: number }
  | { kind: "pax"; size: number }
  | { kind: "end" };

function field(b: Uint8Array, at: number, width: number): string {
  const raw = b.subarray(at, at + width);
  const nul = raw.indexOf(0);
  return td.decode(nul < 0 ? raw : raw.subarray(0, nul));
}

function parseOctal(b: Uint8Array, at: number, width: number, what: string): number {
  const text = field(b, at, width).trim();
  if (!/^[0-7]+$/.test(text)) throw new CorruptDataError(`tar header: bad ${what} "${text}"`);
  return parseInt(text, 8);
}

/** Parses one header block; refuses a bad checksum or a member that is not a regular file. */
export function parseHeader(b: Uint8Array): TarBlock {
  if (b.length !== BLOCK) throw new RangeError("a tar header is one 512-byte block");
  if (b.every((x) => x === 0)) return { kind: "end" };
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : b[i]!;
  if (parseOctal(b, 148, 8, "checksum") !== sum) {
    throw new CorruptDataError("tar header: checksum mismatch");
  }
  const size = parseOctal(b, 124, 12, "size");
  const type = String.fromCharCode(b[156]!);
  if (type === "x") return { kind: "pax", size };
  if (type !== "0" && type !== "\0") {
    throw new CorruptDataError(`tar header: member type "${type}" is not a regular file`);
  }
  return { kind: "file", name: field(b, 0, 100), size };
}

/** The `size` of a pax record block's text, or null when it has none. */
export function paxSize(record: Uint8Array): number | null {
  for (const line of td.decode(record).split("\n")) {
    const m = /^\d+ size=(\d+)$/.exec(line);
    if (m) return Number(m[1]);
  }
  return null;
}
