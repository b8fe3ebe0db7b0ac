/**
 * What a backup leaves out: gitignore patterns (`--exclude`, `--exclude-file`, `[backup]
 * exclude`; matched by the npm `ignore` package, case-sensitive, against paths relative to the
 * backed-up folder), folders holding a tag file (`--exclude-if-present`; CACHEDIR.TAG must carry
 * its signature) and other file systems (`--one-file-system`).
 *
 * A path a pattern excludes is not backed up, and a folder is not descended. A folder holding
 * a tag, or on another file system (a mount point), is kept as an empty folder: its contents
 * are left out (as tar's --exclude-caches and --one-file-system do).
 */
import ignore, { type Ignore } from "ignore";
import { readFullSync } from "../../util/bytes.ts";
import type { WalkFilter } from "./walk.ts";

export interface ExcludeRules {
  /** gitignore patterns, in order (a later `!pattern` re-includes). */
  patterns: string[];
  /** Names of tag files: a folder holding one has its contents left out. */
  ifPresent: string[];
  /** Do not descend into folders of other file systems than the backed-up folder's. */
  oneFileSystem: boolean;
}

export const NO_EXCLUDES: ExcludeRules = { patterns: [], ifPresent: [], oneFileSystem: false };

/** Whether any rule is set. */
export function hasExcludes(r: ExcludeRules): boolean {
  return r.patterns.length > 0 || r.ifPresent.length > 0 || r.oneFileSystem;
}

/** The rules as the meta header records them (FORMAT.md §5: `exclude <rule>` lines). */
export function describeExcludes(r: ExcludeRules): string[] {
  return [
    ...r.patterns.map((p) => `pattern ${p}`),
    ...r.ifPresent.map((n) => `if-present ${n}`),
    ...(r.oneFileSystem ? ["one-file-system"] : []),
  ];
}

/** The lines of an exclude file that are patterns (blank lines and `#` comments dropped). */
export function patternsOfFile(text: string): string[] {
  return text.split(/\r?\n/).filter((l) => l.trim() !== "" && !l.startsWith("#"));
}

/** The first bytes of a valid CACHEDIR.TAG (https://bford.info/cachedir/). */
const CACHEDIR_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55";

/** Whether the tag `name` in folder `dirAbs` is there (CACHEDIR.TAG: with its signature). */
function tagged(dirAbs: string, name: string): boolean {
  const path = `${dirAbs === "/" ? "" : dirAbs}/${name}`;
  try {
    if (name !== "CACHEDIR.TAG") return Deno.lstatSync(path).isFile;
    const f = Deno.openSync(path);
    try {
      const buf = new Uint8Array(CACHEDIR_SIGNATURE.length);
      const n = readFullSync(f, buf);
      return new TextDecoder().decode(buf.subarray(0, n)) === CACHEDIR_SIGNATURE;
    } finally {
      f.close();
    }
  } catch {
    return false;
  }
}

/** Paths matched between rebuilds of the matcher (its caches keep every path it saw). */
const MATCHES_PER_MATCHER = 4096;

/** The walk's filter for `rules`, for a walk of `root` (whose lstat gives the file system). */
export function excludeFilter(rules: ExcludeRules, root: string): WalkFilter | undefined {
  if (!hasExcludes(rules)) return undefined;
  const rootDev = rules.oneFileSystem ? Deno.statSync(root).dev : 0;
  let matcher: Ignore | null = null;
  let matched = 0;
  const ignores = (rel: string): boolean => {
    if (rules.patterns.length === 0) return false;
    if (matcher === null || ++matched > MATCHES_PER_MATCHER) {
      matcher = ignore({ ignoreCase: false, allowRelativePaths: true }).add(rules.patterns);
      matched = 0;
    }
    return matcher.ignores(rel);
  };
  return {
    excluded(rel, info) {
      return ignores(info.isDirectory ? `${rel}/` : rel) ? "matches an exclude pattern" : null;
    },
    emptied(abs, info) {
      if (rules.oneFileSystem && info.dev !== rootDev) return "on another file system";
      for (const name of rules.ifPresent) {
        if (tagged(abs, name)) return `holds ${name}`;
      }
      return null;
    },
  };
}
