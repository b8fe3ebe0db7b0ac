/**
 * The phases of a restore around the files (file_restorer.ts): directories first, in meta
 * order, created owner-writable; symlinks after the files; last the directories' owner, mode
 * and mtime, deepest first.
 */
import type { Entry, RootAttrs } from "../../format/meta.ts";
import type { Contents } from "../../repo/contents.ts";
import type { Store } from "../../store/store.ts";
import { messageOf } from "../../util/bytes.ts";
import { POSIX_MODES } from "../../util/platform.ts";
import type { Progress, RestoreAction } from "./progress.ts";
import { isFull } from "../../util/errors.ts";
import { hashFile, linkFile } from "./file_writer.ts";
import { type Attributes, conflict, lstatOrNull, type TargetDirs } from "./target.ts";

/** What the phases of one restore share. */
export interface RestoreRun {
  store: Store;
  /** Where each content is and how it comes back (repo/contents.ts). */
  contents: Contents;
  tgt: TargetDirs;
  attrs: Attributes;
  progress: Progress;
  simulate: boolean;
  overwrite: boolean;
  /** Format 1: no sizes, no times; existing directories keep their attributes. */
  concurrency: number;
  /**
   * How to thaw the archived objects a restore met (repo/thaw.ts): what it returns pending
   * is not restored this run. Absent: an archived object is a failure like any other.
   */
  archive?: { thaw: (names: string[]) => Promise<{ pending: Set<string> }> };
  /** Every path of the meta (a stale temp file is never one of them). */
  metaPaths: Set<string>;
  signal?: AbortSignal;
}

/** Removes what is in an entry's way (with --overwrite). Returns why not, or null. */
async function clearWay(run: RestoreRun, p: string, st: Deno.FileInfo): Promise<string | null> {
  if (run.simulate) return null;
  try {
    await Deno.remove(p);
    run.tgt.invalidate();
    return null;
  } catch (err) {
    return st.isDirectory
      ? "exists and is a non-empty directory: not replaced"
      : `cannot remove what is in the way: ${messageOf(err)}`;
  }
}

/** Phase 1: directories. Returns those whose attributes phase 4 sets. */
export async function restoreDirs(run: RestoreRun, dirs: Entry[]): Promise<Entry[]> {
  const { tgt, progress, simulate } = run;
  const done: Entry[] = [];
  for (const e of dirs) {
    run.signal?.throwIfAborted();
    if (tgt.kernelRoot(e.path) === tgt.abs(e.path)) { // /proc itself, say: left as it is
      progress.entry(e.path, "d", "unchanged");
      progress.dirs++;
      continue;
    }
    const st = tgt.examine(e.path, simulate);
    if (typeof st === "string") {
      progress.fail(e.path, st);
      continue;
    }
    const p = tgt.abs(e.path);
    let action: RestoreAction = "create";
    if (st !== null && st.isDirectory) {
      action = "unchanged";
      if (!simulate && POSIX_MODES && st.mode !== null && (st.mode & 0o700) !== 0o700) {
        try {
          await Deno.chmod(p, (st.mode & 0o7777) | 0o700);
        } catch (err) {
          progress.fail(e.path, `cannot make the directory writable: ${messageOf(err)}`);
          continue;
        }
      }
      if (!simulate) await tgt.removeStaleTemps(e.path, run.metaPaths);
    } else if (st !== null) {
      if (!run.overwrite) {
        progress.fail(e.path, `exists and is not a directory: not replaced (use --overwrite)`);
        continue;
      }
      action = "replace";
      const why = await clearWay(run, p, st);
      if (why !== null) {
        progress.fail(e.path, why);
        continue;
      }
    }
    if (action !== "unchanged" && !simulate) {
      try {
        await Deno.mkdir(p, { mode: 0o700 });
        if (action === "create") tgt.made(e.path);
      } catch (err) {
        progress.fail(e.path, `cannot create directory: ${messageOf(err)}`, isFull(err));
        continue;
      }
    }
    progress.entry(e.path, "d", action);
    // A directory whose meta records no attributes (format 1): an existing one is left as it is.
    if (e.mtimeMs === null && action === "unchanged") progress.dirs++;
    else done.push(e);
  }
  return done;
}

/** What to do with a link whose place holds `st`: its action, or why it is not restored. */
async function linkAction(run: RestoreRun, e: Entry, st: Deno.FileInfo) {
  const p = run.tgt.abs(e.path);
  if (st.isSymlink && await Deno.readLink(p).then((t) => t === e.target, () => false)) {
    return "unchanged";
  }
  if (!run.overwrite) {
    return {
      fail: st.isSymlink
        ? "exists and is another symbolic link: not replaced (use --overwrite)"
        : conflict(st, "exists and is a file"),
    };
  }
  const why = await clearWay(run, p, st);
  return why === null ? "replace" : { fail: why };
}

/**
 * Phase 2b: hard links (FORMAT.md §5.3), once their first paths are in place: each made a link
 * of its first (a copy where the file system refuses links); one whose first does not hold the
 * content (it failed, and what is there is older) fails, naming it. A name holding the same
 * content is replaced; other content is a conflict (--overwrite replaces it).
 */
export async function restoreHardLinks(run: RestoreRun, entries: Entry[]): Promise<void> {
  const { tgt, progress, simulate } = run;
  tgt.invalidate();
  /** First paths checked to hold their content (a failed first may have left an older file). */
  const held = new Map<string, boolean>();
  const holds = async (p: string, md5: string) => {
    let ok = held.get(p);
    if (ok === undefined) {
      ok = await hashFile(tgt.abs(p), run.signal).then((h) => h === md5, () => false);
      held.set(p, ok);
    }
    return ok;
  };
  for (const e of entries) {
    run.signal?.throwIfAborted();
    const first = simulate ? null : tgt.examine(e.linkTo!, false);
    if (
      !simulate && (first === null || typeof first === "string" || !first.isFile ||
        !(await holds(e.linkTo!, e.md5!)))
    ) {
      progress.fail(e.path, `not restored: ${e.linkTo}, the file it is a hard link of, was not`);
      progress.doneFile(e, null);
      continue;
    }
    const st = tgt.examine(e.path, simulate);
    const action = typeof st === "string" ? { fail: st } : await hardLinkAction(run, e, st, first);
    if (typeof action === "object") {
      progress.fail(e.path, action.fail);
      progress.doneFile(e, null);
      continue;
    }
    if (action !== "unchanged" && !simulate) {
      try {
        const opts = {
          attrs: run.attrs,
          existing: st as Deno.FileInfo | null,
          onRemoved: () => tgt.invalidate(),
          warn: (m: string) => progress.warn(e.path, m),
        };
        linkFile(tgt.abs(e.linkTo!), tgt.abs(e.path), e, opts);
      } catch (err) {
        progress.fail(e.path, messageOf(err), isFull(err));
        progress.doneFile(e, null);
        continue;
      }
    }
    progress.entry(e.path, "f", action);
    if (action === "unchanged") progress.unchanged++;
    progress.doneFile(e, e.size);
  }
}

/** What to do with a hard link whose place holds `st` (null: nothing), its first `first`. */
async function hardLinkAction(
  run: RestoreRun,
  e: Entry,
  st: Deno.FileInfo | null,
  first: Deno.FileInfo | null | string,
): Promise<RestoreAction | { fail: string }> {
  if (st === null) return "create";
  if (
    typeof first === "object" && first !== null && st.ino !== null && st.ino === first.ino &&
    st.dev === first.dev
  ) {
    return "unchanged";
  }
  const p = run.tgt.abs(e.path);
  const same = st.isFile && st.size === e.size &&
    await hashFile(p, run.signal).then((h) => h === e.md5, () => false);
  if (same || run.overwrite) return "replace";
  return { fail: conflict(st, "exists with other content") };
}

/** Phase 3: symlinks, one at a time (each may change what the next one's parents are). */
export async function restoreLinks(run: RestoreRun, links: Entry[]): Promise<void> {
  const { tgt, progress, simulate } = run;
  tgt.invalidate();
  for (const e of links) {
    run.signal?.throwIfAborted();
    tgt.invalidate();
    const st = tgt.examine(e.path, simulate);
    if (typeof st === "string") {
      progress.fail(e.path, st);
      continue;
    }
    const p = tgt.abs(e.path);
    const action = st === null ? "create" : await linkAction(run, e, st);
    if (typeof action === "object") {
      progress.fail(e.path, action.fail);
      continue;
    }
    if (!simulate) {
      if (action !== "unchanged") {
        try {
          await Deno.symlink(e.target!, p);
        } catch (err) {
          const why = `cannot create the symbolic link: ${messageOf(err)}`;
          progress.fail(e.path, why, isFull(err));
          continue;
        }
      }
      const now = action === "unchanged" ? st : null;
      try {
        await run.attrs.owner(p, e, now, true);
        await run.attrs.times(p, e, now, true);
      } catch (err) {
        progress.warn(e.path, `cannot set owner/mtime: ${messageOf(err)}`);
      }
    }
    progress.entry(e.path, "l", action);
    progress.links++;
  }
}

/** Phase 4: the directories' owner, mode and mtime, deepest first. */
export async function finishDirs(run: RestoreRun, dirs: Entry[]): Promise<void> {
  const { tgt, progress } = run;
  tgt.invalidate();
  const depth = (p: string) => p.split("/").length;
  const order = [...dirs].sort((a, b) => depth(b.path) - depth(a.path));
  for (const e of order) {
    run.signal?.throwIfAborted();
    if (run.simulate) {
      progress.dirs++;
      continue;
    }
    const why = tgt.parents(e.path, "check");
    if (why !== null) {
      progress.fail(e.path, why);
      continue;
    }
    const st = await lstatOrNull(tgt.abs(e.path)).catch(() => null);
    if (st === null || !st.isDirectory) {
      progress.fail(e.path, "no longer a directory: owner, mode and mtime not set");
      continue;
    }
    const warning = await run.attrs.fix(tgt.abs(e.path), e, st);
    if (warning !== null) progress.warn(e.path, warning);
    progress.dirs++;
  }
}

/**
 * Last, after the target's lock is gone (its removal would change the mtime, a read-only mode
 * would refuse it), the target's own owner (as root), mode and mtime: the backed-up folder's
 * (the meta's `root` line, FORMAT.md §5). The caller skips it for `--only` and simulations.
 */
export async function finishRoot(
  run: Pick<RestoreRun, "attrs" | "progress">,
  root: string,
  attrs: RootAttrs | undefined,
): Promise<void> {
  if (attrs === undefined) return;
  const st = await lstatOrNull(root).catch(() => null);
  if (st === null || !st.isDirectory) return;
  const warning = await run.attrs.fix(root, { type: "d", path: ".", size: 0, ...attrs }, st);
  if (warning !== null) run.progress.warn(".", warning);
}
