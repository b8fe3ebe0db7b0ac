/**
 * INI files read by the rules of Python 2's `ConfigParser.ConfigParser`, which the original
 * s3backup.py used, so that its s3backup.ini opens the same repositories here. Pure: text in,
 * values out; throws UsageError with one line that never shows a value (it may be a password).
 *
 * - A line whose first character is `#` or `;`, a blank line, and a line beginning `rem`/`REM`
 *   are comments. Anything else that begins with whitespace continues the value above it (the
 *   lines are joined with `\n`).
 * - `[name]` opens a section; names are case-sensitive; a repeated section adds to the first.
 *   `[DEFAULT]` holds defaults every section sees. An option before any section is an error.
 * - `key = value` or `key: value` (split at the first `=` or `:`); keys are case-insensitive;
 *   the value is trimmed. A `;` ends the value when it is the first `;` and follows whitespace
 *   (so `password = pw ; note` is `pw`, and `a;b ; c` stays whole); `#` never does. `""` is the
 *   empty value.
 * - Reading a value that holds `%(`: `%(key)s` is replaced by that key's value in the same
 *   section (or DEFAULT), again up to 10 levels deep, and `%%` is `%`; any other `%` is an
 *   error. A value without `%(` is taken as written, `%` and all.
 * - A UTF-8 byte order mark at the start (Notepad writes one) is skipped; ConfigParser would
 *   fail on it.
 */
import { UsageError } from "./errors.ts";

export const DEFAULT_SECTION = "DEFAULT";

export interface Ini {
  /** Section name (as written) -> key (lowercase) -> raw value. */
  sections: Map<string, Map<string, string>>;
  defaults: Map<string, string>;
  /**
   * Section -> key -> the values a repeated key had before its last (ConfigParser keeps only
   * the last; `iniGetAll` reads them all, for list settings).
   */
  earlier: Map<string, Map<string, string[]>>;
}

/** Python 2's `str.isspace` for one character (ASCII whitespace only). */
function isSpace(c: string | undefined): boolean {
  return c !== undefined && c !== "" && " \t\n\r\x0b\x0c".includes(c);
}

/** Python 2's `\s`: ASCII whitespace (a regex character class body). */
const WS = " \\t\\n\\r\\x0b\\x0c";
const STRIP = new RegExp(`^[${WS}]+|[${WS}]+$`, "g");
const TRAILING = new RegExp(`[${WS}]+$`);
const WORD_END = new RegExp(`[${WS}]`);

function pyStrip(s: string): string {
  return s.replace(STRIP, "");
}

const SECTION = /^\[([^\]]+)\]/;
/** Python's OPTCRE, with its `\s` (ASCII whitespace) and `.` (anything but a line feed). */
const OPTION = new RegExp(`^([^:=${WS}][^:=]*?)[${WS}]*([:=])[${WS}]*([^\\n]*)$`);

/** The value of an option line, after its inline comment (Python 2's rule) and trimming. */
function optionValue(raw: string): string {
  let v = raw;
  const pos = v.indexOf(";");
  // Python looks at optval[pos - 1], which for pos 0 is the value's last character.
  if (pos !== -1 && isSpace(pos === 0 ? v.at(-1) : v[pos - 1])) v = v.slice(0, pos);
  v = pyStrip(v);
  return v === '""' ? "" : v;
}

/** Parses INI text by Python 2 ConfigParser's rules (the module doc). */
export function parseIni(text: string, fileName: string): Ini {
  const ini: Ini = { sections: new Map(), defaults: new Map(), earlier: new Map() };
  let sectionName = "";
  let section: Map<string, string> | null = null;
  let key: string | null = null;
  const fail = (n: number, why: string) => {
    throw new UsageError(`Cannot read config ${fileName}: line ${n} ${why}`);
  };
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((line, i) => {
    const n = i + 1;
    if (pyStrip(line) === "" || line[0] === "#" || line[0] === ";") return;
    if (/^[rR]/.test(line) && /^rem$/i.test(line.split(WORD_END, 1)[0] ?? "")) return;
    if (isSpace(line[0]) && section !== null && key !== null) {
      const more = pyStrip(line);
      if (more !== "") section.set(key, `${section.get(key)}\n${more}`);
      return;
    }
    const sec = SECTION.exec(line);
    if (sec) {
      const name = sec[1]!;
      sectionName = name;
      if (name === DEFAULT_SECTION) section = ini.defaults;
      else {
        section = ini.sections.get(name) ?? new Map();
        ini.sections.set(name, section);
      }
      key = null;
      return;
    }
    if (section === null) fail(n, "comes before any [section]");
    const opt = OPTION.exec(line);
    if (!opt) fail(n, "is not key=value");
    key = opt![1]!.replace(TRAILING, "").toLowerCase();
    const before = section!.get(key);
    if (before !== undefined) {
      const earlier = ini.earlier.get(sectionName) ?? new Map<string, string[]>();
      ini.earlier.set(sectionName, earlier);
      earlier.set(key, [...earlier.get(key) ?? [], before]);
    }
    section!.set(key, optionValue(opt![3]!));
  });
  return ini;
}

/**
 * The value of `key` in `section` (or DEFAULT), interpolated as ConfigParser.get does;
 * undefined when not set. Throws UsageError naming the option, never its value.
 */
export function iniGet(ini: Ini, section: string, key: string, fileName: string) {
  const raw = lookupIn(ini, section)(key.toLowerCase());
  return raw === undefined ? undefined : resolve(ini, section, key, raw, fileName);
}

function lookupIn(ini: Ini, section: string): (k: string) => string | undefined {
  const own = ini.sections.get(section);
  return (k) => k === "__name__" ? section : own?.get(k) ?? ini.defaults.get(k);
}

/** `raw`, a value of `key`, interpolated as ConfigParser.get does. */
function resolve(ini: Ini, section: string, key: string, raw: string, fileName: string): string {
  const fail = (why: string) => {
    throw new UsageError(`Cannot read config ${fileName}: [${section}] ${key}: ${why}`);
  };
  const lookup = lookupIn(ini, section);
  let value = raw;
  for (let depth = 0; depth < 10 && value.includes("%("); depth++) {
    value = interpolate(value, lookup, fail);
  }
  if (value.includes("%(")) fail("%(...)s references nest more than 10 deep");
  return value;
}

/**
 * Every value of a list setting: each time `key` is set in `section` (ConfigParser's `get`
 * gives only the last), each line of each value (continuation lines), interpolated, blank
 * lines dropped.
 */
export function iniGetAll(ini: Ini, section: string, key: string, fileName: string): string[] {
  const last = iniGet(ini, section, key, fileName);
  if (last === undefined) return [];
  const values = (ini.earlier.get(section)?.get(key.toLowerCase()) ?? [])
    .map((raw) => resolve(ini, section, key, raw, fileName));
  return [...values, last].flatMap((v) => v.split("\n")).filter((l) => l !== "");
}

/** One pass of Python's `value % mapping`, for `%%` and `%(key)s` alone. */
function interpolate(
  value: string,
  lookup: (k: string) => string | undefined,
  fail: (why: string) => never,
): string {
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c !== "%") {
      out += c;
      continue;
    }
    if (value[i + 1] === "%") {
      out += "%";
      i++;
      continue;
    }
    if (value[i + 1] !== "(") fail("a % must be %% or %(name)s in a value that holds %(");
    let depth = 1, j = i + 2;
    for (; j < value.length && depth > 0; j++) {
      if (value[j] === "(") depth++;
      else if (value[j] === ")") depth--;
    }
    if (depth > 0 || value[j] !== "s") fail("a % must be %% or %(name)s in a value that holds %(");
    const name = value.slice(i + 2, j - 1).toLowerCase();
    const got = lookup(name);
    if (got === undefined) fail(`%(${name})s names a key this section does not set`);
    out += got;
    i = j;
  }
  return out;
}
