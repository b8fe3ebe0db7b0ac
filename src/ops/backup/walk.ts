/**
 * Walks a folder once, depth first, a directory before its contents, names sorted. Never
 * follows symlinks (except the root itself), never opens anything but directories, never
 * writes, never descends into a kernel file system (/proc, /sys, /dev: kept as empty folders).
 * Uses the sync calls: they walk about 4x faster than the async ones in Deno.
 */
import { boundsReason, type EntryType } from "../../format/meta.ts";
import { kernelRootOf } from "../../util/kernel_fs.ts";

export interface WalkItem {
  /** Relative, `/`-separated. */
  path: string;
  abs: string;
  type: EntryType;
  info: Deno.FileInfo;
  /** Symlink target (type "l"). */
  target?: string;
}

export interface WalkWarning {
  path: string;
  message: string;
  /** True when something that should have been backed up was not (exit code "partial"). */
  partial: boolean;
}

function kindOf(info: Deno.FileInfo): string {
  if (info.isFifo) return "FIFO";
  if (info.isSocket) return "socket";
  if (info.isBlockDevice) return "block device";
  if (info.isCharDevice) return "character device";
  return "special file";
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const SLASH = 47;

/**
 * The walk's order of two relative paths: negative when `a` comes first. A directory comes
 * before its contents and names sort by UTF-16 code unit, so it is the code unit order with `/`
 * before every other character.
 */
export function compareWalkOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x !== y) return (x === SLASH ? -1 : x) - (y === SLASH ? -1 : y);
  }
  return a.length - b.length;
}

/** What a walk leaves out (excludes.ts); each says why, or null. */
export interface WalkFilter {
  /** The entry is left out: not yielded, and a folder not descended. */
  excluded(rel: string, info: Deno.FileInfo): string | null;
  /** The folder is yielded, its contents are left out. */
  emptied(abs: string, info: Deno.FileInfo): string | null;
}

/** Told of each entry a filter left out, and why. */
export type OnExcluded = (path: string, reason: string) => void;

export function* walk(
  root: string,
  warn: (w: WalkWarning) => void,
  filter?: WalkFilter,
  onExcluded: OnExcluded = () => {},
): Generator<WalkItem> {
  const top = root.replace(/\/+$/, "") || "/";
  let real: string;
  try {
    real = Deno.realPathSync(top);
  } catch {
    real = top; // (then reading it fails, and says why)
  }
  yield* walkDir(top, "", { warn, filter, onExcluded, real: real === "/" ? "" : real });
}

interface WalkContext {
  warn: (w: WalkWarning) => void;
  filter: WalkFilter | undefined;
  onExcluded: OnExcluded;
  /** The root, resolved through symlinks ("" for `/`): where a kernel file system is told. */
  real: string;
}

/** Why the walk keeps folder `rel` empty though no rule says so (a kernel file system), or null. */
function kernelFolder(c: WalkContext, rel: string): string | null {
  const k = kernelRootOf(`${c.real}/${rel}`);
  return k === null ? null : `a kernel file system (${k}): never read`;
}

function* walkDir(dirAbs: string, dirRel: string, c: WalkContext): Generator<WalkItem> {
  const { warn, filter } = c;
  let names: string[];
  try {
    names = Array.from(Deno.readDirSync(dirAbs), (e) => e.name);
  } catch (err) {
    warn({
      path: dirRel || ".",
      message: `cannot read directory: ${messageOf(err)}`,
      partial: true,
    });
    return;
  }
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let previous: string | null = null;
  for (const name of names) {
    const rel = dirRel === "" ? name : `${dirRel}/${name}`;
    // Two entries that read as one name: one of them is not valid UTF-8 and was decoded lossily
    // (to U+FFFD). The path reaches only the one whose name is that text: keep it, report the
    // other.
    if (name === previous) {
      warn({
        path: rel,
        message: "a file name here is not valid UTF-8 and reads like this one; this format " +
          "cannot store it: skipped",
        partial: true,
      });
      continue;
    }
    previous = name;
    const tooDeep = boundsReason(rel);
    if (tooDeep !== null) {
      warn({
        path: rel,
        message: `${tooDeep}: this format cannot store it; skipped`,
        partial: true,
      });
      continue;
    }
    const abs = dirAbs === "/" ? `/${name}` : `${dirAbs}/${name}`;
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(abs);
    } catch (err) {
      const message = name.includes("\uFFFD") && err instanceof Deno.errors.NotFound
        ? "file name is not valid UTF-8; this format cannot store it"
        : `cannot stat: ${messageOf(err)}`;
      warn({ path: rel, message, partial: true });
      continue;
    }
    const why = filter?.excluded(rel, info) ?? null;
    if (why !== null) {
      c.onExcluded(rel, why);
      continue;
    }
    if (info.isSymlink) {
      let target: string;
      try {
        target = Deno.readLinkSync(abs);
      } catch (err) {
        warn({ path: rel, message: `cannot read symlink: ${messageOf(err)}`, partial: true });
        continue;
      }
      if (target.includes("\uFFFD")) {
        warn({ path: rel, message: "symlink target is not valid UTF-8; skipped", partial: true });
        continue;
      }
      const tooLong = boundsReason(rel, target);
      if (tooLong !== null) {
        warn({
          path: rel,
          message: `${tooLong}: this format cannot store it; skipped`,
          partial: true,
        });
        continue;
      }
      yield { path: rel, abs, type: "l", info, target };
    } else if (info.isDirectory) {
      yield { path: rel, abs, type: "d", info };
      const emptied = kernelFolder(c, rel) ?? filter?.emptied(abs, info) ?? null;
      if (emptied === null) yield* walkDir(abs, rel, c);
      else c.onExcluded(`${rel}/`, `contents left out: ${emptied}`);
    } else if (info.isFile) {
      yield { path: rel, abs, type: "f", info };
    } else {
      warn({ path: rel, message: `skipped ${kindOf(info)}`, partial: false });
    }
  }
}
