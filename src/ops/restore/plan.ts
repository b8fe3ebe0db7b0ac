/**
 * What a restore will do, before it touches anything: which entries of the meta are valid and
 * selected (`--only`), grouped by kind, and the files grouped by content. Pure.
 */
import { isMd5 } from "../../format/layout.ts";
import { boundsReason, type Entry, unsafePathReason } from "../../format/meta.ts";
import { UsageError } from "../../util/errors.ts";
import { windowsNameProblem } from "./native_path.ts";

/** Normalizes a --only path: no leading `./`, no trailing `/`. Throws UsageError if empty. */
export function normalizeOnly(p: string): string {
  let s = p;
  while (s.startsWith("./")) s = s.slice(2);
  s = s.replace(/\/+$/, "");
  if (s === "" || s === ".") throw new UsageError(`--only needs a relative path, not ${p}`);
  return s;
}

export interface Plan {
  /** In meta order: a directory before what it holds. */
  dirs: Entry[];
  files: Entry[];
  /** Files that are hard links of a file in `files` (FORMAT.md §5.3): linked after the files. */
  hardLinks: Entry[];
  links: Entry[];
  /** Entries refused (unsafe, malformed) and `--only` paths that match nothing. */
  problems: { path: string; message: string }[];
  /** Distinct contents, each with the file entries that hold it. */
  groups: Map<string, Entry[]>;
  /** null when the meta does not record sizes (format 1). */
  totalBytes: number | null;
}

/** Why an entry must not be restored (here: `windows`), or null. */
function refusal(e: Entry, windows: boolean): string | null {
  const why = unsafePathReason(e.path);
  if (why !== null) return `${why}: refused`;
  const win = windows ? windowsNameProblem(e.path) : null;
  if (win !== null) return `cannot be restored on Windows: ${win}`;
  if (e.type === "l" && !e.target) return "empty link target: refused";
  if (e.type === "l" && e.target!.includes("\0")) return "link target holds a NUL byte: refused";
  const bounds = e.type === "l" ? boundsReason(e.path, e.target) : null;
  if (bounds !== null) return `${bounds}: refused`;
  if (e.type === "f" && !isMd5(e.md5 ?? "")) return "file entry without a valid MD5: refused";
  return null;
}

/** The valid entries selected by `only` (with the directories above a selection). */
export function planRestore(
  entries: Entry[],
  onlyPaths: string[],
  metaKey: string,
  windows = Deno.build.os === "windows",
): Plan {
  const only = onlyPaths.map(normalizeOnly);
  const onlyHit = only.map(() => false);
  const selected = (e: Entry): boolean => {
    if (only.length === 0) return true;
    for (const [i, o] of only.entries()) {
      if (e.path === o || e.path.startsWith(`${o}/`)) {
        onlyHit[i] = true;
        return true;
      }
      if (e.type === "d" && o.startsWith(`${e.path}/`)) return true;
    }
    return false;
  };
  const plan: Plan = {
    dirs: [],
    files: [],
    hardLinks: [],
    links: [],
    problems: [],
    groups: new Map(),
    totalBytes: 0,
  };
  // The first paths of hard links, and those of them this restore writes (earlier in the meta);
  // for a first it does not write, the first of its links it restores stands in (FORMAT.md §5.3).
  const firsts = new Set(entries.flatMap((e) => e.linkTo === undefined ? [] : [e.linkTo]));
  const written = new Set<string>();
  const standIn = new Map<string, string>();
  for (const e of entries) {
    const why = refusal(e, windows);
    if (why !== null) plan.problems.push({ path: e.path, message: why });
    else if (!selected(e)) continue;
    else if (e.type !== "f") (e.type === "d" ? plan.dirs : plan.links).push(e);
    else if (e.linkTo !== undefined && written.has(e.linkTo)) plan.hardLinks.push(e);
    else if (e.linkTo !== undefined && standIn.has(e.linkTo)) {
      plan.hardLinks.push({ ...e, linkTo: standIn.get(e.linkTo)! });
    } else {
      plan.files.push(e);
      if (firsts.has(e.path)) written.add(e.path);
      else if (e.linkTo !== undefined) standIn.set(e.linkTo, e.path);
    }
  }
  only.forEach((o, i) => {
    if (!onlyHit[i]) plan.problems.push({ path: o, message: `--only: no such path in ${metaKey}` });
  });
  for (const e of plan.files) {
    if (plan.totalBytes !== null) {
      plan.totalBytes = e.size === null ? null : plan.totalBytes + e.size;
    }
    const g = plan.groups.get(e.md5!);
    if (g) g.push(e);
    else plan.groups.set(e.md5!, [e]);
  }
  return plan;
}
