/**
 * Parsers of option values (`--keep-*`, `--grace`, `--max-unused`, `--read-data-subset`, `--storage-class`),
 * and the one duration format both ways. Each throws UsageError with one line.
 */
import type { MaxUnused } from "../ops/prune/repack.ts";
import { UsageError } from "../util/errors.ts";

/** A `--keep-*` value: a count >= 0. */
export function parseKeep(flag: string, s: string): number {
  if (!/^\d{1,9}$/.test(s.trim())) {
    throw new UsageError(`${flag} needs a count (0 or more), not ${JSON.stringify(s)}`);
  }
  return Number(s.trim());
}

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** `0`, `90s`, `30m`, `1h`, `2d`, `1w`, `1h30m`, `1.5h` -> milliseconds. */
export function parseDuration(s: string): number {
  const t = s.trim();
  if (t === "0") return 0;
  if (/^(\d+(\.\d+)?[smhdw])+$/.test(t)) {
    let ms = 0;
    for (const m of t.matchAll(/(\d+(?:\.\d+)?)([smhdw])/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
    return Math.round(ms);
  }
  throw new UsageError(
    `Invalid duration ${JSON.stringify(s)}: use e.g. 0, 30m, 1h, 2d, 1w or 1h30m`,
  );
}

/** `1h30m`, `2d`, `0s`. */
export function formatDuration(ms: number): string {
  if (ms <= 0) return "0s";
  let rest = Math.round(ms / 1000);
  let out = "";
  for (const [u, sec] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]] as const) {
    const n = Math.floor(rest / sec);
    if (n > 0) out += `${n}${u}`;
    rest -= n * sec;
  }
  return out;
}

/** Parses `--read-data-subset`: `N%` with 0 < N <= 100 (decimals allowed). Returns N / 100. */
export function parseSubset(s: string): number {
  const m = /^(\d+(?:\.\d+)?)%$/.exec(s.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!(n > 0 && n <= 100)) {
    throw new UsageError(
      `Invalid --read-data-subset ${JSON.stringify(s)}: use a percentage, e.g. 10%`,
    );
  }
  return n / 100;
}

/** `--jobs N`: a whole number from 1 to 256. */
export function parseJobs(s: string): number {
  const n = /^\d+$/.test(s.trim()) ? Number(s) : NaN;
  if (!(n >= 1 && n <= 256)) {
    throw new UsageError(`Invalid --jobs ${JSON.stringify(s)}: use a whole number from 1 to 256`);
  }
  return n;
}

/** A storage class name as S3 spells them (`STANDARD_IA`, `DEEP_ARCHIVE`, ...). */
export function checkStorageClass(v: string, where: string): string {
  if (!/^[A-Z][A-Z0-9_]{1,40}$/.test(v)) {
    throw new UsageError(
      `Invalid storage class ${JSON.stringify(v)} in ${where}: use an S3 name like STANDARD_IA`,
    );
  }
  return v;
}

/**
 * A command line split into words as a POSIX shell splits it, without running one: blanks
 * separate words; `'...'` is literal; in `"..."` a backslash escapes `"`, `\\`, `$` and `` ` ``;
 * elsewhere a backslash escapes the next character. No variables, globs or pipes. Throws
 * UsageError on an unterminated quote.
 */
export function splitCommand(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === " " || c === "\t" || c === "\n") {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new UsageError("The password command has an unterminated ' quote");
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      word ??= "";
      for (i++; i < line.length && line[i] !== '"'; i++) {
        if (line[i] === "\\" && '"\\$`'.includes(line[i + 1] ?? "")) i++;
        word += line[i];
      }
      if (i >= line.length) {
        throw new UsageError('The password command has an unterminated " quote');
      }
    } else if (c === "\\") {
      word = (word ?? "") + (line[i + 1] ?? "");
      i++;
    } else word = (word ?? "") + c;
  }
  if (word !== null) words.push(word);
  return words;
}

/** `--restore-tier`: Bulk, Standard or Expedited (any case). */
export function parseRestoreTier(v: string): "Bulk" | "Standard" | "Expedited" {
  const t = (["Bulk", "Standard", "Expedited"] as const).find((x) =>
    x.toLowerCase() === v.toLowerCase()
  );
  if (t === undefined) {
    throw new UsageError(`--restore-tier ${JSON.stringify(v)}: use Bulk, Standard or Expedited`);
  }
  return t;
}

/** `--restore-days`: 1 to 365. */
export function parseRestoreDays(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= 365)) {
    throw new UsageError(`--restore-days ${JSON.stringify(v)}: use 1 to 365`);
  }
  return n;
}

/** A rate in bytes a second: `500K`, `2M`, `1.5M`, `1G` (K = 1024), or plain bytes. */
export function parseRate(v: string, where: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)(?:i?B)?(?:\/s)?$/i.exec(v.trim());
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m?.[2] ?? "").toUpperCase()];
  const n = m && unit ? Number(m[1]) * unit : NaN;
  if (!(n >= 1024)) {
    throw new UsageError(
      `${where} ${JSON.stringify(v)}: use a rate such as 500K, 2M or 1.5M (at least 1K)`,
    );
  }
  return Math.round(n);
}

/** `--max-unused` (prune): `N%` of the used bytes, a size (`500M`, `1G`, bytes), or `unlimited`. */
export function parseMaxUnused(v: string): MaxUnused {
  const t = v.trim();
  if (t === "unlimited") return null;
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(t);
  if (pct) return { percent: Number(pct[1]) };
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)(?:i?B)?$/i.exec(t);
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[
    (m?.[2] ?? "").toUpperCase()
  ];
  if (!m || unit === undefined) {
    throw new UsageError(
      `--max-unused ${
        JSON.stringify(v)
      }: use a share of the used bytes (5%), a size (500M) or unlimited`,
    );
  }
  return { bytes: Math.round(Number(m[1]) * unit) };
}

/** `--pack-size`: 512K to 128M (FORMAT.md §4.1; the default is 16M). */
export function parsePackSize(v: string): number {
  const n = parseRate(v, "--pack-size");
  if (n < 512 * 1024 || n > 128 * 1024 * 1024) {
    throw new UsageError(`--pack-size ${JSON.stringify(v)}: use 512K to 128M`);
  }
  return n;
}

/**
 * A point in time: ISO 8601 (`2026-11-30`, `2026-11-30T14:00:00Z`; a date alone is midnight UTC),
 * or a duration ago (`3d`, `12h`).
 */
export function parseTime(v: string, where: string): Date {
  const t = v.trim();
  // A duration back from now: `3d`, `3d ago`, `1h30m ago` (the help's own examples).
  const back = t.replace(/\s+ago$/, "");
  if (/^(\d+(\.\d+)?[smhdw])+$/.test(back)) return new Date(Date.now() - parseDuration(back));
  const d = /^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?)?$/.test(t)
    ? new Date(/[T ]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(t) ? `${t}Z` : t)
    : new Date(NaN);
  if (Number.isNaN(d.getTime())) {
    throw new UsageError(
      `${where} ${
        JSON.stringify(v)
      }: use a time such as 2026-11-30, 2026-11-30T14:00:00Z, 3d or "3d ago"`,
    );
  }
  return d;
}
