/**
 * The restore target on disk: its root, the parent directories of entries (checked with lstat
 * to be real directories, never symlinks, and created 0700 when missing), owners, modes and
 * mtimes, and the temporary files an interrupted restore leaves.
 */
import * as fs from "node:fs";
import { lchown, lutimes } from "node:fs/promises";
import { chmodWhereSupported, POSIX_MODES } from "../../util/platform.ts";
import { nativePath } from "./native_path.ts";

const WINDOWS = Deno.build.os === "windows";
import { basename, dirname, join, resolve } from "node:path";
import { kernelRootOf } from "../../util/kernel_fs.ts";
import type { Entry } from "../../format/meta.ts";
import { messageOf } from "../../util/bytes.ts";
import { S3BackupError, UsageError } from "../../util/errors.ts";

/** Temporary files an interrupted restore may leave: this engine's, and the restore kit's. */
const STALE_TEMP = /^(\.s3backup-restore-[0-9a-f]{12}\.tmp|\.s3backup-tmp\.[A-Za-z0-9]{6})$/;
export const TEMP_PREFIX = ".s3backup-restore-";

export async function lstatOrNull(p: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(p);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/** lstatOrNull with a synchronous call: the per-entry checks (about 4x cheaper so). */
export function lstatOrNullSync(p: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(p);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/**
 * The target root, resolved through symlinks: created (0700) unless simulating; whether it
 * existed, and whether it is empty (nothing of this restore can be there yet). Throws
 * UsageError when it exists and is not a directory.
 */
export async function openTarget(
  target: string,
  simulate: boolean,
): Promise<{ root: string; existed: boolean; empty: boolean }> {
  const root = resolve(target);
  refuseKernel(root, await realPathOfNew(root));
  if (simulate) {
    return { root: await Deno.realPath(root).catch(() => root), existed: false, empty: false };
  }
  const cannot = (err: unknown) =>
    new S3BackupError(`Cannot create the restore target ${root}: ${messageOf(err)}`, {
      cause: err,
    });
  const st = await lstatOrNull(root).catch((err) => {
    throw cannot(err);
  });
  if (st !== null && !st.isDirectory && !(st.isSymlink && (await Deno.stat(root)).isDirectory)) {
    throw new UsageError(`${root} exists and is not a directory`);
  }
  if (st === null) {
    try {
      await Deno.mkdir(root, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw cannot(err);
    }
  }
  const real = await Deno.realPath(root);
  refuseKernel(root, real);
  // An earlier restore may have given it a read-only mode (the meta's root line) last: owner-
  // writable again, as existing directories inside it are; its mode is set again at the end.
  const mode = st === null ? null : (await Deno.stat(real)).mode;
  if (POSIX_MODES && mode !== null && (mode & 0o700) !== 0o700) {
    await Deno.chmod(real, (mode & 0o7777) | 0o700).catch(() => {});
  }
  return { root: real, existed: st !== null, empty: st === null || await emptyDir(real) };
}

/** A target in a kernel file system (src/util/kernel_fs.ts) is refused: UsageError. */
function refuseKernel(root: string, real: string): void {
  const k = kernelRootOf(real);
  if (k !== null) {
    throw new UsageError(
      `Cannot restore into ${root}: ${k} is a kernel file system (s3backup writes nothing there)`,
    );
  }
}

/** `p` resolved through symlinks, as far as it exists (the rest appended as it is). */
async function realPathOfNew(p: string): Promise<string> {
  try {
    return await Deno.realPath(p);
  } catch {
    const parent = dirname(p);
    return parent === p ? p : join(await realPathOfNew(parent), basename(p));
  }
}

/** Whether folder `dir` holds nothing (unreadable: not known to be empty). */
async function emptyDir(dir: string): Promise<boolean> {
  try {
    for await (const _ of Deno.readDir(dir)) return false;
    return true;
  } catch {
    return false;
  }
}

/** A character some file system folds: an upper case ASCII letter, or not ASCII. */
// deno-lint-ignore no-control-regex
const MAY_FOLD = /[A-Z]|[^\x00-\x7f]/;

/**
 * Whether no two of `paths` (`set`: the same, as a set) may name one file on a file system that
 * folds case or Unicode forms (macOS, Windows, vfat, ext4's casefold): compared in NFKC, lower
 * case (stricter than any of them: a pair only some would fold makes this false). Only a path
 * holding a character that may fold is folded (two that fold alike hold one such at least).
 */
export function distinctWhenFolded(
  paths: readonly string[],
  set: ReadonlySet<string> = new Set(paths),
): boolean {
  if (set.size !== paths.length) return false; // one named twice
  const folded = new Set<string>();
  for (const p of paths) {
    if (!MAY_FOLD.test(p)) continue;
    const f = p.normalize("NFKC").toLowerCase();
    if ((f !== p && set.has(f)) || folded.has(f)) return false;
    folded.add(f);
  }
  return true;
}

/**
 * The parent directories of the entries, checked (and created) inside the target. A verified
 * directory is remembered until something is removed. With `fresh` (the meta's paths are
 * distinct however a file system folds them: distinctWhenFolded), a folder this restore made
 * is known to hold only what this restore put there: an entry in it needs no lstat (~17 µs a
 * file, most of it the NotFound error's).
 */
export class TargetDirs {
  #ok = new Set<string>();
  #made = new Set<string>();
  constructor(readonly root: string, readonly fresh = false) {}

  abs(rel: string): string {
    return nativePath(this.root, rel, WINDOWS);
  }

  invalidate(): void {
    this.#ok.clear();
    this.#made.clear();
  }

  /** Folder `rel` ("" the root) was made by this restore (or was empty): nothing else is in it. */
  made(rel: string): void {
    if (this.fresh) this.#made.add(rel);
  }

  /**
   * Checks every parent of `rel`: a real directory, not a symlink. `create` makes the missing
   * ones (0700); `simulate` accepts missing ones. Returns why not, or null.
   */
  parents(rel: string, mode: "create" | "check" | "simulate"): string | null {
    // A folder verified was verified with its own parents: most entries stop here.
    const slash = rel.lastIndexOf("/");
    if (slash < 0 || this.#ok.has(rel.slice(0, slash))) return null;
    const parts = rel.split("/");
    parts.pop();
    let cur = "";
    for (const c of parts) {
      cur = cur === "" ? c : `${cur}/${c}`;
      if (this.#ok.has(cur)) continue;
      let st: Deno.FileInfo | null;
      try {
        st = lstatOrNullSync(this.abs(cur));
      } catch (err) {
        return `cannot check a parent directory: ${messageOf(err)}`;
      }
      if (st === null) {
        if (mode === "simulate") return null;
        if (mode === "check") return "a parent directory is missing";
        const why = this.#mkdir(cur);
        if (why !== null) return why;
        try {
          st = lstatOrNullSync(this.abs(cur));
        } catch {
          st = null;
        }
        if (st === null) return "cannot create a parent directory";
      }
      if (st.isSymlink) return "a parent directory is a symbolic link: not written";
      if (!st.isDirectory) return "a parent is not a directory: not written";
      this.#ok.add(cur);
    }
    return null;
  }

  #mkdir(rel: string): string | null {
    try {
      Deno.mkdirSync(this.abs(rel), { mode: 0o700 });
      this.made(rel);
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) {
        return `cannot create a parent directory: ${messageOf(err)}`;
      }
    }
    return null;
  }

  /**
   * What is at an entry's place: null when nothing; a failure message as a string. Each path
   * of a meta is examined once before anything is put there (but for a folder, which may be a
   * parent made already: never taken as empty itself).
   */
  examine(rel: string, simulate: boolean): Deno.FileInfo | null | string {
    const kernel = this.kernelRoot(rel);
    if (kernel !== null) return `in ${kernel}, a kernel file system: not written`;
    const why = this.parents(rel, simulate ? "simulate" : "create");
    if (why !== null) return why;
    const slash = rel.lastIndexOf("/");
    if (this.#made.has(slash < 0 ? "" : rel.slice(0, slash)) && !this.#made.has(rel)) return null;
    try {
      return lstatOrNullSync(this.abs(rel));
    } catch (err) {
      return `cannot check what is there: ${messageOf(err)}`;
    }
  }

  /** The kernel file system entry `rel` is or is in (a restore into `/`), or null. */
  kernelRoot(rel: string): string | null {
    return kernelRootOf(`${this.root === "/" ? "" : this.root}/${rel}`);
  }

  /** Removes the temporary files of an interrupted restore in folder `rel` (not meta paths). */
  async removeStaleTemps(rel: string, metaPaths: Set<string>): Promise<void> {
    try {
      for await (const d of Deno.readDir(this.abs(rel))) {
        const r = rel === "" ? d.name : `${rel}/${d.name}`;
        if (d.isFile && STALE_TEMP.test(d.name) && !metaPaths.has(r)) {
          await Deno.remove(this.abs(r)).catch(() => {});
        }
      }
    } catch {
      // unreadable: the entries inside will report it
    }
  }
}

/**
 * An entry's mtime as a Date, null where its meta does not record it (format 1: left as the
 * restore makes it); RangeError when a Date cannot hold it (never silently 0).
 */
export function timeOf(e: Pick<Entry, "mtimeMs">): Date | null {
  if (e.mtimeMs === null) return null;
  const t = new Date(e.mtimeMs);
  if (Number.isNaN(t.getTime())) {
    throw new RangeError(`mtime ${e.mtimeMs / 1000} s is out of range: not set`);
  }
  return t;
}

/** Why something in an entry's way is left alone (without --overwrite). */
export function conflict(st: Deno.FileInfo, what: string): string {
  const why = st.isDirectory
    ? "exists and is a directory"
    : st.isSymlink
    ? "exists and is a symbolic link"
    : st.isFile
    ? what
    : "exists and is not a regular file";
  return `${why}: not replaced (use --overwrite)`;
}

/**
 * A link's mtime before 1970. node's lutimes (Deno has no other call for a link) takes a
 * negative time for "now" and refuses one given as a Date; `touch -h -d` (GNU and BSD) sets it.
 */
async function touchLink(p: string, t: Date): Promise<void> {
  const out = await new Deno.Command("touch", {
    args: ["-h", "-d", t.toISOString(), "--", p],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const said = new TextDecoder().decode(out.stderr).trim().split("\n")[0];
    throw new Error(`touch -h: ${said || `exit code ${out.code}`}`);
  }
}

/** Owner (as root), mode and mtime of restored entries; each set only where it differs. */
export class Attributes {
  constructor(readonly owners: boolean) {}

  async times(p: string, e: Entry, st: Deno.FileInfo | null, link: boolean): Promise<void> {
    const t = timeOf(e);
    if (t === null || (st !== null && st.mtime?.getTime() === e.mtimeMs)) return;
    if (!link) return await Deno.utime(p, t, t);
    if (t.getTime() < 0) return await touchLink(p, t);
    // node's lutimes (Deno has no other for a link) takes seconds as a float and truncates them
    // to the millisecond: 17106572.641 s landed on .640. Half a millisecond more lands on it.
    const s = (t.getTime() + 0.5) / 1000;
    await lutimes(p, s, s);
  }

  /** Whether the owner at `st` (null: nothing yet) is to be set to the entry's. */
  #ownerDiffers(e: Entry, st: Deno.FileInfo | null): boolean {
    if (!this.owners || (e.uid === null && e.gid === null)) return false;
    return st === null || (e.uid !== null && st.uid !== e.uid) ||
      (e.gid !== null && st.gid !== e.gid);
  }

  async owner(p: string, e: Entry, st: Deno.FileInfo | null, link: boolean): Promise<void> {
    if (!this.#ownerDiffers(e, st)) return;
    if (link) await lchown(p, e.uid ?? -1, e.gid ?? -1);
    else await Deno.chown(p, e.uid, e.gid);
  }

  /** Whether the mode at `st` (null: nothing yet) is to be set to the entry's. */
  #modeDiffers(e: Entry, st: Deno.FileInfo | null): boolean {
    return st === null || st.mode === null || (st.mode & 0o7777) !== e.mode;
  }

  async mode(p: string, e: Entry, st: Deno.FileInfo | null): Promise<void> {
    if (!this.#modeDiffers(e, st)) return;
    await chmodWhereSupported(p, e.mode);
  }

  /**
   * Owner, mode, mtime of an entry in place (a directory or a file, not a symlink), `st` its
   * lstat. Returns a warning, or null. Owner and mode are set through a descriptor of what `st`
   * describes, opened without following a symlink: as root in a folder another user may write,
   * what that user swaps in after the lstat (a symlink to /etc/shadow) is refused, not changed.
   */
  async fix(p: string, e: Entry, st: Deno.FileInfo): Promise<string | null> {
    try {
      if (!POSIX_MODES || !this.#fixByDescriptor(p, e, st)) {
        await this.owner(p, e, st, false);
        await this.mode(p, e, st);
      }
      await this.times(p, e, st, false);
      return null;
    } catch (err) {
      return `cannot set owner/mode/mtime: ${messageOf(err)}`;
    }
  }

  /**
   * Owner and mode through a descriptor; false when it cannot be opened for reading (not as
   * root, a mode without the owner's read bit): then they are set by path.
   */
  #fixByDescriptor(p: string, e: Entry, st: Deno.FileInfo): boolean {
    const owner = this.#ownerDiffers(e, st);
    const mode = this.#modeDiffers(e, st);
    if (!owner && !mode) return true;
    const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
    let fd: number;
    try {
      fd = fs.openSync(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (err) {
      if ((err as { code?: unknown }).code === "EACCES") return false; // (not readable: by path)
      throw err;
    }
    try {
      const now = fs.fstatSync(fd);
      if (st.ino !== null && (now.ino !== st.ino || now.dev !== st.dev)) {
        throw new Error("it was replaced while being restored");
      }
      if (owner) fs.fchownSync(fd, e.uid ?? -1, e.gid ?? -1);
      if (mode) fs.fchmodSync(fd, e.mode);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  }
}
