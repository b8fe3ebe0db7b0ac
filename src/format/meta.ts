/**
 * Meta file plaintext (FORMAT.md §5): header, one line per entry, trailer. Pure: text in,
 * values out. Encryption is the caller's business.
 */
import { decodeBase64, encodeBase64 } from "../util/base64.ts";
import { CorruptDataError } from "../util/errors.ts";
import { escapeText, unescapeText } from "./escape.ts";
import { isMd5, isWhere } from "./layout.ts";

/** The magic line of a version `v` meta (FORMAT.md §5): 2 and 3 are read, 3 written. */
export function metaMagic(v: MetaVersion): string {
  return `s3backup-meta ${v}`;
}
export type MetaVersion = 2 | 3;
/** Whether `line` is the magic line of a meta this version reads. */
export function isMetaMagic(line: string): boolean {
  return line === metaMagic(2) || line === metaMagic(3);
}

/**
 * Bounds of FORMAT.md §5, the same in the writer and both readers: no meta line is longer than
 * MAX_LINE_BYTES; no path longer than MAX_PATH_BYTES (UTF-8) or deeper than
 * MAX_PATH_COMPONENTS; no link target longer than MAX_PATH_BYTES.
 */
export const MAX_LINE_BYTES = 40_000;
export const MAX_PATH_BYTES = 4096;
export const MAX_PATH_COMPONENTS = 256;

const utf8 = new TextEncoder();

/** UTF-8 length of `s`, computed only when it may pass `max` (a JS char is 1 to 3 bytes). */
function longerThan(s: string, max: number): boolean {
  return s.length > max || (s.length * 3 > max && utf8.encode(s).length > max);
}

/** Why a path or link target is beyond the format's bounds, or null. */
export function boundsReason(path: string, target?: string): string | null {
  if (longerThan(path, MAX_PATH_BYTES)) return `path longer than ${MAX_PATH_BYTES} bytes`;
  let components = 1;
  for (let i = path.indexOf("/"); i >= 0; i = path.indexOf("/", i + 1)) components++;
  if (components > MAX_PATH_COMPONENTS) {
    return `path deeper than ${MAX_PATH_COMPONENTS} components`;
  }
  if (target !== undefined && longerThan(target, MAX_PATH_BYTES)) {
    return `link target longer than ${MAX_PATH_BYTES} bytes`;
  }
  return null;
}

export type EntryType = "f" | "d" | "l";

export interface Entry {
  type: EntryType;
  /** Relative, `/`-separated. */
  path: string;
  /** Content MD5 (lowercase hex) for files. */
  md5?: string;
  /** Permission bits, `mode & 0o7777`. */
  mode: number;
  uid: number | null;
  gid: number | null;
  /** Content size for files, 0 otherwise; null where the meta does not record it (format 1). */
  size: number | null;
  /** Modification time in milliseconds since the epoch; null where not recorded (format 1). */
  mtimeMs: number | null;
  /** Symlink target. */
  target?: string;
  /**
   * For files: where the content is (FORMAT.md §4): `<pack>`, `<pack>.gz`, `data`, `data.gz`,
   * or `-` (the format 2 object `<md5>`); absent in a version 2 meta (which means `-`).
   */
  where?: string;
  /**
   * For files: an earlier path of the same backup that is the same file (a hard link: an `h`
   * line of a version 3 meta, FORMAT.md §5.1). Its content is this entry's, so a reader that
   * does not make the link restores a copy.
   */
  linkTo?: string;
}

/** An entry as a writer records it (formats 2 and 3): its size and mtime known. */
export type RecordedEntry = Entry & { size: number; mtimeMs: number };

export interface MetaHeader {
  /** The meta's version (its magic line); absent: 2. Version 3 entries say where (§5.1). */
  version?: MetaVersion;
  time: Date;
  host: string;
  source: string;
  name: string;
  /** The exact bytes of s3backup.key. */
  wrappedKey: Uint8Array;
  /**
   * What the backup left out, one rule each (`exclude` lines): `pattern <gitignore pattern>`,
   * `if-present <name>`, `one-file-system`. Informational: a reader needs none of it.
   */
  excludes?: string[];
  /**
   * The SHA-256 (hex) of each restore kit file the backup left under `restore-kit/`, by name
   * (`kit` lines), so that a kit can be checked before it is trusted (`s3backup kit --verify`).
   */
  kit?: Map<string, string>;
  /** The backed-up folder itself (`root` line; absent in metas of 0.2.0 and older). */
  root?: RootAttrs;
}

/** A folder's own attributes, as an entry line writes them. */
export interface RootAttrs {
  mode: number;
  uid: number | null;
  gid: number | null;
  mtimeMs: number;
}

export interface Meta {
  header: MetaHeader;
  entries: Entry[];
}

/** Seconds since the epoch with up to 3 decimals, no trailing zeros: `1764260700.5`. */
export function formatMtime(ms: number): string {
  const sign = ms < 0 ? "-" : "";
  const abs = Math.round(Math.abs(ms));
  const frac = abs % 1000;
  const sec = `${sign}${Math.floor(abs / 1000)}`;
  return frac === 0 ? sec : `${sec}.${String(frac).padStart(3, "0").replace(/0+$/, "")}`;
}

export function parseMtime(s: string): number {
  if (!/^-?\d+(\.\d{1,9})?$/.test(s)) throw new SyntaxError(`bad mtime ${JSON.stringify(s)}`);
  const [sec, frac = ""] = s.replace("-", "").split(".") as [string, string?];
  const ms = Number(sec) * 1000 + Number((frac + "000").slice(0, 3));
  return s.startsWith("-") ? -ms : ms;
}

function idField(n: number | null): string {
  return n === null ? "-" : String(n);
}

function modeField(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/** The `root` header value: `<mode> <uid> <gid> <mtime>`, as in an entry line. */
function encodeRoot(r: RootAttrs): string {
  return `${modeField(r.mode)} ${idField(r.uid)} ${idField(r.gid)} ${formatMtime(r.mtimeMs)}`;
}

function parseRoot(v: string): RootAttrs {
  const m = /^([0-7]{4}) (-|\d+) (-|\d+) (\S+)$/.exec(v);
  if (!m) throw new SyntaxError(`bad root ${JSON.stringify(v)}`);
  const id = (s: string) => (s === "-" ? null : Number(s));
  return { mode: parseInt(m[1]!, 8), uid: id(m[2]!), gid: id(m[3]!), mtimeMs: parseMtime(m[4]!) };
}

/** One entry line (of a version `version` meta), without the line end. */
export function encodeEntry(e: RecordedEntry, version: MetaVersion = 2): string {
  const md5 = e.type === "f" ? e.md5 : "-";
  if (e.type === "f" && !isMd5(md5 ?? "")) throw new TypeError(`file entry without MD5`);
  let target = e.type === "l" ? escapeText(e.target ?? "", "field") : "-";
  let type: string = e.type;
  if (e.type === "f" && version === 3) {
    if (!isWhere(e.where ?? "")) throw new TypeError(`file entry ${md5} without a where`);
    target = e.where!;
    if (e.linkTo !== undefined) {
      [type, target] = ["h", `${target}/${escapeText(e.linkTo, "field")}`];
    }
  }
  return [
    md5,
    type,
    modeField(e.mode),
    idField(e.uid),
    idField(e.gid),
    e.type === "f" ? String(e.size) : "0",
    formatMtime(e.mtimeMs),
    target,
    escapeText(e.path),
  ].join(" ");
}

/**
 * Parses one entry line of a version `version` meta. Throws SyntaxError. Does not judge
 * whether the path is safe.
 */
export function parseEntry(line: string, version: MetaVersion = 2): Entry {
  const fields: string[] = [];
  let rest = line;
  for (let i = 0; i < 8; i++) {
    const sp = rest.indexOf(" ");
    if (sp < 0) throw new SyntaxError("too few fields");
    fields.push(rest.slice(0, sp));
    rest = rest.slice(sp + 1);
  }
  const [md5, type, mode, uid, gid, size, mtime, target] = fields as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const hard = type === "h" && version === 3;
  if (type !== "f" && type !== "d" && type !== "l" && !hard) {
    throw new SyntaxError(`bad type ${type}`);
  }
  if (type === "f" || hard ? !isMd5(md5) : md5 !== "-") throw new SyntaxError(`bad md5 ${md5}`);
  if (!/^[0-7]{4}$/.test(mode)) throw new SyntaxError(`bad mode ${mode}`);
  const id = (s: string) => {
    if (s === "-") return null;
    if (!/^\d+$/.test(s)) throw new SyntaxError(`bad owner ${s}`);
    return Number(s);
  };
  if (!/^\d+$/.test(size)) throw new SyntaxError(`bad size ${size}`);
  if (rest === "") throw new SyntaxError("empty path");
  const entry: Entry = {
    type: hard ? "f" : type as EntryType,
    path: unescapeText(rest),
    mode: parseInt(mode, 8),
    uid: id(uid),
    gid: id(gid),
    size: Number(size),
    mtimeMs: parseMtime(mtime),
  };
  if (type === "f" || hard) {
    entry.md5 = md5;
    const slash = hard ? target.indexOf("/") : -1;
    if (hard && slash <= 0) throw new SyntaxError(`bad hard link ${target}`);
    const where = hard ? target.slice(0, slash) : target;
    if (version === 3 && !isWhere(where)) throw new SyntaxError(`bad where ${where}`);
    if (version === 3) entry.where = where;
    if (hard) entry.linkTo = unescapeText(target.slice(slash + 1));
    if (entry.linkTo === "") throw new SyntaxError("hard link to an empty path");
  }
  if (type === "l") entry.target = unescapeText(target);
  return entry;
}

/** The lines before the first entry (each without its `\n`). */
export function encodeMetaHead(header: MetaHeader): string[] {
  return [
    metaMagic(header.version ?? 2),
    `time ${header.time.toISOString()}`,
    `host ${escapeText(header.host)}`,
    `source ${escapeText(header.source)}`,
    `name ${escapeText(header.name)}`,
    `wrapped-key ${encodeBase64(header.wrappedKey)}`,
    ...(header.root ? [`root ${encodeRoot(header.root)}`] : []),
    ...(header.excludes ?? []).map((r) => `exclude ${escapeText(r)}`),
    ...[...header.kit ?? []].map(([name, sha]) => `kit ${escapeText(name)} ${sha}`),
    "entries",
  ];
}

/** The trailer line after `count` entries. */
export function encodeMetaEnd(count: number): string {
  return `end ${count}`;
}

/** The meta plaintext, as lines (each without its `\n`), for streaming or joining. */
export function* encodeMetaLines(
  header: MetaHeader,
  entries: Iterable<RecordedEntry>,
): Generator<string> {
  yield* encodeMetaHead(header);
  let n = 0;
  for (const e of entries) {
    yield encodeEntry(e, header.version ?? 2);
    n++;
  }
  yield encodeMetaEnd(n);
}

export function encodeMeta(header: MetaHeader, entries: Iterable<RecordedEntry>): string {
  let out = "";
  for (const line of encodeMetaLines(header, entries)) out += line + "\n";
  return out;
}

/**
 * Parses a decrypted meta. Throws CorruptDataError when the magic line is missing (wrong
 * password or not a meta), the trailer is missing or wrong (truncated), or a line is bad.
 */
export function parseMeta(text: string): Meta {
  const firstEnd = text.indexOf("\n");
  const magic = firstEnd < 0 ? text : text.slice(0, firstEnd);
  if (!isMetaMagic(magic)) {
    const newer = /^s3backup-meta ([1-9][0-9]{0,5})$/.exec(magic);
    throw new CorruptDataError(
      newer && Number(newer[1]) > 3
        ? `a version ${
          newer[1]
        } meta file: this version reads versions 2 and 3 (a newer s3backup wrote it)`
        : "not a meta file (wrong password or corrupt)",
    );
  }
  const version: MetaVersion = magic === metaMagic(3) ? 3 : 2;
  checkLineLengths(text);
  if (!text.endsWith("\n")) throw new CorruptDataError("meta file is truncated (no final newline)");
  // Lines are taken one at a time (no array of them): a meta may hold millions.
  let pos = firstEnd + 1;
  const nextLine = (): string | null => {
    if (pos >= text.length) return null;
    const end = text.indexOf("\n", pos);
    const line = text.slice(pos, end);
    pos = end + 1;
    return line;
  };
  const fields = new Map<string, string>();
  const excludes: string[] = [], kit: string[] = [];
  let line = nextLine();
  for (; line !== null && line !== "entries"; line = nextLine()) {
    const sp = line.indexOf(" ");
    const [k, v] = sp < 0 ? [line, ""] : [line.slice(0, sp), line.slice(sp + 1)];
    if (k === "exclude") excludes.push(v); // the header keys that repeat
    else if (k === "kit") kit.push(v);
    else fields.set(k, v);
  }
  if (line === null) throw new CorruptDataError("meta file is truncated (no entries line)");
  const header = parseHeader(fields, excludes, kit);
  if (version === 3) header.version = 3;
  const entries: Entry[] = [];
  let trailer: string | null = null;
  for (line = nextLine(); line !== null; line = nextLine()) {
    if (trailer !== null) {
      entries.push(parseEntryAt(trailer, entries.length, version));
    }
    trailer = line;
  }
  const m = /^end (\d+)$/.exec(trailer ?? "");
  if (!m || Number(m[1]) !== entries.length) {
    throw new CorruptDataError("meta file is truncated (trailer missing or count wrong)");
  }
  return { header, entries };
}

/** Throws CorruptDataError when a line of `text` is longer than MAX_LINE_BYTES. */
function checkLineLengths(text: string): void {
  let n = 1;
  for (let start = 0; start <= text.length; n++) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    if (end - start > MAX_LINE_BYTES / 3 && longerThan(text.slice(start, end), MAX_LINE_BYTES)) {
      throw new CorruptDataError(`meta line ${n} is longer than ${MAX_LINE_BYTES} bytes`);
    }
    start = end + 1;
  }
}

function parseEntryAt(line: string, index: number, version: MetaVersion): Entry {
  try {
    return parseEntry(line, version);
  } catch (err) {
    throw new CorruptDataError(`meta entry ${index + 1} is invalid: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function parseHeader(fields: Map<string, string>, excludes: string[], kit: string[]): MetaHeader {
  const need = (k: string) => {
    const v = fields.get(k);
    if (v === undefined) throw new CorruptDataError(`meta file has no ${k} header`);
    return v;
  };
  try {
    const time = new Date(need("time"));
    if (Number.isNaN(time.getTime())) throw new SyntaxError("bad time");
    const header: MetaHeader = {
      time,
      host: unescapeText(need("host")),
      source: unescapeText(need("source")),
      name: unescapeText(need("name")),
      wrappedKey: decodeBase64(need("wrapped-key")),
    };
    if (excludes.length > 0) header.excludes = excludes.map(unescapeText);
    const root = fields.get("root");
    if (root !== undefined) header.root = parseRoot(root);
    if (kit.length > 0) {
      header.kit = new Map(kit.map((v) => {
        const m = /^(\S+) ([0-9a-f]{64})$/.exec(v);
        if (!m) throw new SyntaxError("bad kit line");
        return [unescapeText(m[1]!), m[2]!];
      }));
    }
    return header;
  } catch (err) {
    if (err instanceof CorruptDataError) throw err;
    throw new CorruptDataError(`meta header is invalid: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Why a path must not be restored, or null when it is safe: relative, no empty, `.` or `..`
 * component (FORMAT.md §5.3).
 */
export function unsafePathReason(path: string): string | null {
  if (path === "") return "empty path";
  if (path.startsWith("/")) return "absolute path";
  if (path.includes("\0")) return "NUL in path";
  const bounds = boundsReason(path);
  if (bounds !== null) return bounds;
  for (const c of path.split("/")) {
    if (c === "") return "empty path component";
    if (c === "." || c === "..") return `'${c}' path component`;
  }
  return null;
}
