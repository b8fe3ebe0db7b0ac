/**
 * The restore engine (FORMAT.md §5.3). It never prints and never exits: it reports through
 * `onEvent` and returns a summary; errors that stop the whole restore are thrown.
 *
 * Order: directories (created owner-writable), files, symlinks, then the directories' owner,
 * mode and mtime, deepest first. Before anything is written at `a/b/c`, `a` and `a/b` inside
 * the target are checked with lstat to be real directories, never symlinks. A file is written
 * to a new temporary name in its folder (0600, O_EXCL), its MD5 checked, its owner (as root),
 * mode and mtime set, then renamed into place.
 *
 * Files are restored by a bounded pool of workers, one distinct content (MD5) at a time: each
 * object is downloaded at most once per run; the other paths with the same content are copied
 * from the first one restored (MD5 checked again), or from a file already in the target with
 * that content.
 *
 * An existing target: a file already there with the right size and MD5 is kept (its owner,
 * mode and mtime are fixed if needed), so an interrupted restore resumes where it stopped.
 * Anything else in the way (other content, a symlink, a directory) is a conflict: reported and
 * left alone, unless `overwrite`, which replaces it (a non-empty directory is never removed).
 */
import { createHash } from "node:crypto";
import { lchown, lutimes } from "node:fs/promises";
import { resolve } from "node:path";
import { KEY_NAME, unwrapDataKey } from "./data_key.ts";
import { defaultDescriptor, DESCRIPTOR_NAME, parseDescriptor } from "./descriptor.ts";
import {
  CorruptDataError,
  ObjectNotFoundError,
  S3BackupError,
  UsageError,
  WrongPasswordError,
} from "./errors.ts";
import {
  isLegacyRepository,
  legacyDecryptStream,
  type LegacyRepository,
  listLegacyMetas,
  loadLegacyMeta,
  parseLegacyMetaName,
} from "./legacy.ts";
import { liveLocks } from "./lock.ts";
import { type Entry, type EntryType, type Meta, unsafePathReason } from "./meta.ts";
import { compareMetaNames, META_PREFIX, type MetaName, parseMetaName } from "./meta_name.ts";
import { decryptObject, loadMeta, openRepository, type Repository } from "./repository.ts";
import { readAll, type Store } from "./store/store.ts";

const MD5_NAME = /^[0-9a-f]{32}$/;
const READ_CHUNK = 1024 * 1024;
const TEMP_PREFIX = ".s3backup-restore-";
/** Temporary files an interrupted restore may leave: this engine's, and the restore kit's. */
const STALE_TEMP = /^(\.s3backup-restore-[0-9a-f]{12}\.tmp|\.s3backup-tmp\.[A-Za-z0-9]{6})$/;

export interface RestoreOptions {
  /** Absolute path of the folder to restore into (created if missing, unless simulating). */
  target: string;
  /** The meta's object name, for messages. */
  metaKey: string;
  /** Restore only these paths and what is under them (relative, as in the meta). */
  only?: string[];
  /** Report what would be written; write nothing (not even the target). */
  simulate: boolean;
  /** Replace what is in the way; without it, anything with other content is a conflict. */
  overwrite: boolean;
  /** Files restored in parallel (default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  /** Set owners (default: when running as root). */
  owners?: boolean;
  /** Format 1 entries: no sizes and no times (files are compared by MD5 only). */
  legacy?: boolean;
  /** Lines of the meta that cannot be restored, reported as failed (format 1). */
  problems?: { path: string; message: string }[];
}

export type RestoreAction = "create" | "replace" | "unchanged";

export type RestoreEvent =
  | { type: "start"; files: number; dirs: number; links: number; bytes: number }
  | { type: "warning"; path: string; message: string }
  | { type: "entry"; path: string; entryType: EntryType; action: RestoreAction }
  | { type: "progress"; filesDone: number; bytesDone: number; bytesDownloaded: number };

export interface RestoreSummary {
  metaKey: string;
  target: string;
  /** Entries restored (written, or already there as they should be). */
  files: number;
  dirs: number;
  links: number;
  bytes: number;
  /** Files that were already in the target with the right content. */
  unchanged: number;
  objectsDownloaded: number;
  /** Encrypted bytes read from the store. */
  bytesDownloaded: number;
  /** Entries not restored (named in warning events). */
  failed: number;
  durationMs: number;
  simulate: boolean;
}

/** An error about the object (missing, corrupt, download failed), not about the target. */
class ObjectError extends S3BackupError {}
/** An error writing into the target (the object itself may be fine). */
class TargetError extends S3BackupError {}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message.split("\n")[0] ?? "" : String(err);
}

async function lstatOrNull(p: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(p);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

function randomHex(n: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(n)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}

/** MD5 of a file's content (opened for reading only). */
async function hashFile(p: string, signal?: AbortSignal): Promise<string> {
  const h = createHash("md5");
  using file = await Deno.open(p, { read: true });
  const buf = new Uint8Array(READ_CHUNK);
  while (true) {
    signal?.throwIfAborted();
    const n = await file.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
  }
  return h.digest("hex");
}

/** Normalizes a --only path: no leading `./`, no trailing `/`. Throws UsageError if empty. */
export function normalizeOnly(p: string): string {
  let s = p;
  while (s.startsWith("./")) s = s.slice(2);
  s = s.replace(/\/+$/, "");
  if (s === "" || s === ".") throw new UsageError(`--only needs a relative path, not ${p}`);
  return s;
}

/**
 * The parent directories of the entries, checked (and created) inside the target. A verified
 * directory is remembered until something is removed.
 */
class TargetDirs {
  #ok = new Set<string>();
  constructor(readonly root: string) {}

  abs(rel: string): string {
    return `${this.root}/${rel}`;
  }

  invalidate(): void {
    this.#ok.clear();
  }

  /**
   * Checks every parent of `rel`: a real directory, not a symlink. `create` makes the missing
   * ones (0700); `simulate` accepts missing ones. Returns why not, or null.
   */
  async parents(rel: string, mode: "create" | "check" | "simulate"): Promise<string | null> {
    const parts = rel.split("/");
    parts.pop();
    let cur = "";
    for (const c of parts) {
      cur = cur === "" ? c : `${cur}/${c}`;
      if (this.#ok.has(cur)) continue;
      let st: Deno.FileInfo | null;
      try {
        st = await lstatOrNull(this.abs(cur));
      } catch (err) {
        return `cannot check a parent directory: ${messageOf(err)}`;
      }
      if (st === null) {
        if (mode === "simulate") return null;
        if (mode === "check") return "a parent directory is missing";
        try {
          await Deno.mkdir(this.abs(cur), { mode: 0o700 });
        } catch (err) {
          if (!(err instanceof Deno.errors.AlreadyExists)) {
            return `cannot create a parent directory: ${messageOf(err)}`;
          }
        }
        st = await lstatOrNull(this.abs(cur)).catch(() => null);
        if (st === null) return "cannot create a parent directory";
      }
      if (st.isSymlink) return "a parent directory is a symbolic link: not written";
      if (!st.isDirectory) return "a parent is not a directory: not written";
      this.#ok.add(cur);
    }
    return null;
  }
}

interface Todo {
  e: Entry;
  /** What is at the destination now. */
  existing: Deno.FileInfo | null;
}

/**
 * Restores `meta` into `opts.target`. The caller has opened the repository and the meta (so
 * the password is known good) before calling this: it is what creates the target.
 */
export async function restore(
  repo: Repository | LegacyRepository,
  meta: Meta,
  opts: RestoreOptions,
  onEvent: (e: RestoreEvent) => void = () => {},
): Promise<RestoreSummary> {
  const started = performance.now();
  const { simulate, overwrite, signal } = opts;
  const legacy = opts.legacy ?? isLegacyRepository(repo);
  const owners = opts.owners ?? Deno.uid() === 0;
  const store = repo.store;
  const decrypt = () =>
    isLegacyRepository(repo) ? legacyDecryptStream(repo.password) : decryptObject(repo);

  let failed = 0;
  const fail = (path: string, message: string) => {
    failed++;
    onEvent({ type: "warning", path, message });
  };
  for (const p of opts.problems ?? []) fail(p.path, p.message);

  // Which entries: valid ones, selected by --only (with the directories above a selection).
  const only = (opts.only ?? []).map(normalizeOnly);
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
  const dirs: Entry[] = [];
  const files: Entry[] = [];
  const links: Entry[] = [];
  for (const e of meta.entries) {
    const why = unsafePathReason(e.path);
    if (why !== null) {
      fail(e.path, `${why}: refused`);
      continue;
    }
    if (e.type === "l" && !e.target) {
      fail(e.path, "empty link target: refused");
      continue;
    }
    if (e.type === "l" && e.target!.includes("\0")) {
      fail(e.path, "link target holds a NUL byte: refused");
      continue;
    }
    if (e.type === "f" && !MD5_NAME.test(e.md5 ?? "")) {
      fail(e.path, "file entry without a valid MD5: refused");
      continue;
    }
    if (!selected(e)) continue;
    (e.type === "d" ? dirs : e.type === "f" ? files : links).push(e);
  }
  only.forEach((o, i) => {
    if (!onlyHit[i]) fail(o, `--only: no such path in ${opts.metaKey}`);
  });
  const totalBytes = files.reduce((n, e) => n + e.size, 0);
  onEvent({
    type: "start",
    files: files.length,
    dirs: dirs.length,
    links: links.length,
    bytes: legacy ? 0 : totalBytes,
  });

  // The target itself.
  let root = resolve(opts.target);
  let rootExisted = false;
  if (!simulate) {
    const st = await lstatOrNull(root);
    rootExisted = st !== null;
    if (st !== null && !st.isDirectory && !(st.isSymlink && (await Deno.stat(root)).isDirectory)) {
      throw new UsageError(`${root} exists and is not a directory`);
    }
    if (st === null) await Deno.mkdir(root, { recursive: true, mode: 0o700 });
    root = await Deno.realPath(root);
  } else {
    root = await Deno.realPath(root).catch(() => root);
  }
  const tgt = new TargetDirs(root);
  const parentMode = simulate ? "simulate" : "create";

  // The temporary files of an interrupted restore, in folders that already existed.
  const metaPaths = new Set(meta.entries.map((e) => e.path));
  const removeStaleTemps = async (rel: string) => {
    if (simulate) return;
    try {
      for await (const d of Deno.readDir(rel === "" ? root : tgt.abs(rel))) {
        const r = rel === "" ? d.name : `${rel}/${d.name}`;
        if (d.isFile && STALE_TEMP.test(d.name) && !metaPaths.has(r)) {
          await Deno.remove(tgt.abs(r)).catch(() => {});
        }
      }
    } catch {
      // unreadable: the entries inside will report it
    }
  };

  let nFiles = 0, nDirs = 0, nLinks = 0, bytes = 0, unchanged = 0;
  let objectsDownloaded = 0, bytesDownloaded = 0, filesDone = 0, bytesDone = 0;

  const setTimes = async (p: string, e: Entry, st: Deno.FileInfo | null, link: boolean) => {
    if (legacy || (st !== null && st.mtime?.getTime() === e.mtimeMs)) return;
    const t = new Date(e.mtimeMs);
    if (link) await lutimes(p, t, t);
    else await Deno.utime(p, t, t);
  };
  const setOwner = async (p: string, e: Entry, st: Deno.FileInfo | null, link: boolean) => {
    if (!owners || (e.uid === null && e.gid === null)) return;
    if (
      st !== null && (e.uid === null || st.uid === e.uid) && (e.gid === null || st.gid === e.gid)
    ) {
      return;
    }
    if (link) await lchown(p, e.uid ?? -1, e.gid ?? -1);
    else await Deno.chown(p, e.uid, e.gid);
  };
  const setMode = async (p: string, e: Entry, st: Deno.FileInfo | null) => {
    if (st !== null && st.mode !== null && (st.mode & 0o7777) === e.mode) return;
    await Deno.chmod(p, e.mode);
  };
  /** Owner, mode, mtime of an entry already in place (not a symlink): fixed where they differ. */
  const fixAttrs = async (e: Entry, st: Deno.FileInfo) => {
    const p = tgt.abs(e.path);
    try {
      await setOwner(p, e, st, false);
      await setMode(p, e, st);
      await setTimes(p, e, st, false);
    } catch (err) {
      onEvent({
        type: "warning",
        path: e.path,
        message: `cannot set owner/mode/mtime: ${messageOf(err)}`,
      });
    }
  };

  /** What is at an entry's place: null when nothing; a failure message as a string. */
  const examine = async (e: Entry): Promise<Deno.FileInfo | null | string> => {
    const why = await tgt.parents(e.path, parentMode);
    if (why !== null) return why;
    try {
      return await lstatOrNull(tgt.abs(e.path));
    } catch (err) {
      return `cannot check what is there: ${messageOf(err)}`;
    }
  };
  const conflict = (st: Deno.FileInfo, what: string) =>
    `${
      st.isDirectory
        ? "exists and is a directory"
        : st.isSymlink
        ? "exists and is a symbolic link"
        : st.isFile
        ? what
        : "exists and is not a regular file"
    }: not replaced (use --overwrite)`;

  // Phase 1: directories, in meta order (a directory before what it holds).
  if (rootExisted) await removeStaleTemps("");
  const dirsDone: Entry[] = [];
  for (const e of dirs) {
    signal?.throwIfAborted();
    const st = await examine(e);
    if (typeof st === "string") {
      fail(e.path, st);
      continue;
    }
    const p = tgt.abs(e.path);
    let action: RestoreAction = "create";
    if (st !== null && st.isDirectory) {
      action = "unchanged";
      if (!simulate && st.mode !== null && (st.mode & 0o700) !== 0o700) {
        try {
          await Deno.chmod(p, (st.mode & 0o7777) | 0o700);
        } catch (err) {
          fail(e.path, `cannot make the directory writable: ${messageOf(err)}`);
          continue;
        }
      }
      await removeStaleTemps(e.path);
    } else if (st !== null) {
      if (!overwrite) {
        fail(e.path, `exists and is not a directory: not replaced (use --overwrite)`);
        continue;
      }
      action = "replace";
      if (!simulate) {
        try {
          await Deno.remove(p);
          tgt.invalidate();
        } catch (err) {
          fail(e.path, `cannot remove what is in the way: ${messageOf(err)}`);
          continue;
        }
      }
    }
    if (action !== "unchanged" && !simulate) {
      try {
        await Deno.mkdir(p, { mode: 0o700 });
      } catch (err) {
        fail(e.path, `cannot create directory: ${messageOf(err)}`);
        continue;
      }
    }
    onEvent({ type: "entry", path: e.path, entryType: "d", action });
    // Format 1 directories have no attributes of their own: existing ones are left as they are.
    if (legacy && action === "unchanged") nDirs++;
    else dirsDone.push(e);
  }

  // Simulation: which objects exist (one listing).
  let present: Set<string> | null = null;
  if (simulate && files.length > 0) {
    present = new Set();
    for await (const o of store.list()) if (MD5_NAME.test(o.name)) present.add(o.name);
  }

  // Phase 2: files, grouped by content.
  const groups = new Map<string, Entry[]>();
  for (const e of files) {
    const g = groups.get(e.md5!);
    if (g) g.push(e);
    else groups.set(e.md5!, [e]);
  }
  const progress = () => onEvent({ type: "progress", filesDone, bytesDone, bytesDownloaded });
  /** One file entry dealt with: `size` is what it holds now, null when it failed. */
  const doneFile = (e: Entry, size: number | null) => {
    filesDone++;
    bytesDone += size ?? e.size;
    if (size !== null) {
      nFiles++;
      bytes += size;
    }
    progress();
  };

  /** Writes one file from `source` (a decrypted stream) through a temp name into place. */
  const place = async (t: Todo, source: () => Promise<ReadableStream<Uint8Array>>) => {
    const e = t.e;
    const dest = tgt.abs(e.path);
    const dir = dest.slice(0, dest.lastIndexOf("/"));
    let tmp = "";
    let file: Deno.FsFile | undefined;
    for (let i = 0; !file; i++) {
      tmp = `${dir}/${TEMP_PREFIX}${randomHex(6)}.tmp`;
      try {
        file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists) || i > 5) {
          throw new TargetError(`cannot create a temporary file: ${messageOf(err)}`);
        }
      }
    }
    let renamed = false;
    try {
      const h = createHash("md5");
      let n = 0;
      let stream: ReadableStream<Uint8Array>;
      try {
        stream = await source();
      } catch (err) {
        if (err instanceof ObjectError) throw err;
        throw new ObjectError(`cannot read ${e.md5}: ${messageOf(err)}`, { cause: err });
      }
      const reader = stream.getReader();
      let done = false;
      try {
        while (true) {
          signal?.throwIfAborted();
          let r: ReadableStreamReadResult<Uint8Array>;
          try {
            r = await reader.read();
          } catch (err) {
            if (signal?.aborted) throw signal.reason;
            if (err instanceof ObjectError) throw err;
            throw new ObjectError(
              err instanceof CorruptDataError
                ? `object ${e.md5} does not decrypt (corrupt object)`
                : `cannot read object ${e.md5}: ${messageOf(err)}`,
              { cause: err },
            );
          }
          if (r.done) {
            done = true;
            break;
          }
          h.update(r.value);
          n += r.value.length;
          try {
            await writeAll(file, r.value);
          } catch (err) {
            throw new TargetError(`cannot write: ${messageOf(err)}`, { cause: err });
          }
        }
      } finally {
        if (!done) await reader.cancel().catch(() => {});
        reader.releaseLock();
      }
      if (h.digest("hex") !== e.md5) {
        throw new ObjectError(`MD5 mismatch for object ${e.md5} (corrupt object)`);
      }
      signal?.throwIfAborted();
      try {
        await setOwner(tmp, e, null, false);
        await Deno.chmod(tmp, e.mode);
        if (!legacy) {
          const time = new Date(e.mtimeMs);
          await file.utime(time, time);
        }
      } catch (err) {
        onEvent({
          type: "warning",
          path: e.path,
          message: `cannot set owner/mode/mtime: ${messageOf(err)}`,
        });
      }
      file.close();
      file = undefined;
      if (t.existing?.isDirectory) {
        try {
          await Deno.remove(dest);
        } catch {
          throw new TargetError("exists and is a non-empty directory: not replaced");
        }
        tgt.invalidate();
      }
      try {
        await Deno.rename(tmp, dest);
      } catch (err) {
        throw new TargetError(`cannot move the file into place: ${messageOf(err)}`);
      }
      renamed = true;
      return n;
    } finally {
      try {
        file?.close();
      } catch { /* closed */ }
      if (!renamed) await Deno.remove(tmp).catch(() => {});
    }
  };

  const download = async (md5: string): Promise<ReadableStream<Uint8Array>> => {
    let body: ReadableStream<Uint8Array>;
    try {
      body = await store.load(md5);
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw new ObjectError(`missing object ${md5}`);
      throw new ObjectError(`cannot download object ${md5}: ${messageOf(err)}`, { cause: err });
    }
    const count = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        bytesDownloaded += chunk.length;
        controller.enqueue(chunk);
      },
    });
    return body.pipeThrough(count).pipeThrough(decrypt());
  };

  const processGroup = async (md5: string, group: Entry[]) => {
    const todo: Todo[] = [];
    /** A file in the target known to hold this content (to copy from). */
    let copyFrom: string | null = null;
    for (const e of group) {
      signal?.throwIfAborted();
      const st = await examine(e);
      if (typeof st === "string") {
        fail(e.path, st);
        doneFile(e, null);
        continue;
      }
      if (st === null) {
        todo.push({ e, existing: null });
        continue;
      }
      const p = tgt.abs(e.path);
      if (st.isFile && (legacy || st.size === e.size)) {
        let same = false;
        try {
          same = (await hashFile(p, signal)) === md5;
        } catch {
          // unreadable: not the same, as far as we can tell
          if (signal?.aborted) throw signal.reason;
        }
        if (same) {
          if (!simulate) await fixAttrs(e, st);
          onEvent({ type: "entry", path: e.path, entryType: "f", action: "unchanged" });
          copyFrom ??= p;
          unchanged++;
          doneFile(e, st.size);
          continue;
        }
      }
      if (!overwrite) {
        fail(e.path, conflict(st, "exists with other content"));
        doneFile(e, null);
        continue;
      }
      todo.push({ e, existing: st });
    }
    if (simulate) {
      for (const t of todo) {
        if (copyFrom === null && !present!.has(md5)) {
          fail(t.e.path, `missing object ${md5}`);
          doneFile(t.e, null);
          continue;
        }
        const action = t.existing === null ? "create" : "replace";
        onEvent({ type: "entry", path: t.e.path, entryType: "f", action });
        doneFile(t.e, t.e.size);
      }
      return;
    }
    let objectFailure: string | null = null;
    for (const t of todo) {
      signal?.throwIfAborted();
      const action = t.existing === null ? "create" : "replace";
      let size: number | null = null;
      if (copyFrom !== null) {
        // Another path already holds this content: copy it (its MD5 is checked again).
        const from = copyFrom;
        try {
          size = await place(t, async () => (await Deno.open(from, { read: true })).readable);
        } catch (err) {
          if (signal?.aborted) throw signal.reason;
          if (err instanceof TargetError) {
            fail(t.e.path, err.message);
            doneFile(t.e, null);
            continue;
          }
          // The copy did not work (unreadable, changed): download the object instead.
        }
      }
      if (size === null) {
        if (objectFailure !== null) {
          fail(t.e.path, objectFailure);
          doneFile(t.e, null);
          continue;
        }
        try {
          size = await place(t, () => download(md5));
          objectsDownloaded++;
        } catch (err) {
          if (signal?.aborted) throw signal.reason;
          if (!(err instanceof TargetError)) objectFailure = messageOf(err);
          fail(t.e.path, messageOf(err));
          doneFile(t.e, null);
          continue;
        }
      }
      copyFrom = tgt.abs(t.e.path);
      onEvent({ type: "entry", path: t.e.path, entryType: "f", action });
      doneFile(t.e, size);
    }
  };

  const queue = [...groups.entries()];
  let next = 0;
  let fatal: { err: unknown } | null = null;
  const worker = async () => {
    while (fatal === null && next < queue.length) {
      const [md5, group] = queue[next++]!;
      try {
        await processGroup(md5, group);
      } catch (err) {
        fatal ??= { err };
        return;
      }
    }
  };
  await Promise.all(
    Array.from({ length: simulate ? 1 : Math.max(1, opts.concurrency ?? 4) }, worker),
  );
  if (fatal !== null) throw (fatal as { err: unknown }).err;

  // Phase 3: symlinks, one at a time (each may change what the next one's parents are).
  tgt.invalidate();
  for (const e of links) {
    signal?.throwIfAborted();
    tgt.invalidate();
    const st = await examine(e);
    if (typeof st === "string") {
      fail(e.path, st);
      continue;
    }
    const p = tgt.abs(e.path);
    let action: RestoreAction = "create";
    if (st !== null) {
      let same = false;
      if (st.isSymlink) same = await Deno.readLink(p).then((t) => t === e.target, () => false);
      if (same) action = "unchanged";
      else if (!overwrite) {
        fail(
          e.path,
          st.isSymlink
            ? "exists and is another symbolic link: not replaced (use --overwrite)"
            : conflict(st, "exists and is a file"),
        );
        continue;
      } else action = "replace";
      if (action === "replace" && !simulate) {
        try {
          await Deno.remove(p);
          tgt.invalidate();
        } catch (err) {
          fail(
            e.path,
            st.isDirectory
              ? "exists and is a non-empty directory: not replaced"
              : `cannot remove what is in the way: ${messageOf(err)}`,
          );
          continue;
        }
      }
    }
    if (!simulate) {
      if (action !== "unchanged") {
        try {
          await Deno.symlink(e.target!, p);
        } catch (err) {
          fail(e.path, `cannot create the symbolic link: ${messageOf(err)}`);
          continue;
        }
      }
      const now = action === "unchanged" ? st : null;
      try {
        await setOwner(p, e, now, true);
        await setTimes(p, e, now, true);
      } catch (err) {
        onEvent({
          type: "warning",
          path: e.path,
          message: `cannot set owner/mtime: ${messageOf(err)}`,
        });
      }
    }
    onEvent({ type: "entry", path: e.path, entryType: "l", action });
    nLinks++;
  }

  // Phase 4: directories' owner, mode and mtime, deepest first.
  tgt.invalidate();
  const depth = (p: string) => p.split("/").length;
  const order = [...dirsDone].sort((a, b) => depth(b.path) - depth(a.path));
  for (const e of order) {
    signal?.throwIfAborted();
    if (simulate) {
      nDirs++;
      continue;
    }
    const why = await tgt.parents(e.path, "check");
    if (why !== null) {
      fail(e.path, why);
      continue;
    }
    const st = await lstatOrNull(tgt.abs(e.path)).catch(() => null);
    if (st === null || !st.isDirectory) {
      fail(e.path, "no longer a directory: owner, mode and mtime not set");
      continue;
    }
    await fixAttrs(e, st);
    nDirs++;
  }

  return {
    metaKey: opts.metaKey,
    target: root,
    files: nFiles,
    dirs: nDirs,
    links: nLinks,
    bytes,
    unchanged,
    objectsDownloaded,
    bytesDownloaded,
    failed,
    durationMs: performance.now() - started,
    simulate,
  };
}

// ---------------------------------------------------------------------------------------------
// Before the restore: which meta, with which key. Nothing here writes anything.
// ---------------------------------------------------------------------------------------------

export interface RestorePlan {
  repo: Repository | LegacyRepository;
  meta: Meta;
  metaKey: string;
  legacy: boolean;
  /** Format 1: lines that cannot be restored. */
  problems: { path: string; message: string }[];
  /** Things to tell the user before restoring. */
  notes: string[];
}

/** Picks a meta: a meta name, `latest` (of `name` when given), or a backup name. */
function pickMeta(
  metas: MetaName[],
  spec: string,
  name: string | undefined,
  location: string,
): string {
  const want = spec === "latest" ? name : spec;
  const pool = want === undefined ? metas : metas.filter((m) => m.name === want);
  const best = pool.sort(compareMetaNames).at(-1);
  if (best) return best.key;
  if (want === undefined) throw new S3BackupError(`No backups in ${location}`);
  throw new S3BackupError(
    `No backup named ${JSON.stringify(want)} in ${location} (see s3backup list)`,
  );
}

async function formatTwoMetas(store: Store): Promise<MetaName[]> {
  const out: MetaName[] = [];
  for await (const o of store.list(META_PREFIX)) {
    const m = parseMetaName(o.name);
    if (m) out.push(m);
  }
  return out;
}

async function loadFound(load: () => Promise<Meta>, key: string, location: string) {
  try {
    return await load();
  } catch (err) {
    if (err instanceof ObjectNotFoundError) {
      throw new S3BackupError(`No backup ${key} in ${location} (see s3backup list)`);
    }
    throw err;
  }
}

/**
 * Opens what a restore needs, checking the password, and writes nothing: the repository (or
 * a format 1 bucket), and the meta named by `spec` (a meta name, `latest`, or a backup name;
 * `name` restricts `latest`). When s3backup.key is lost, the meta's copy of it is used.
 * Throws WrongPasswordError when the password opens neither.
 */
export async function openForRestore(
  store: Store,
  password: Uint8Array,
  spec: string,
  name?: string,
): Promise<RestorePlan> {
  const hasKey = (await store.stat(KEY_NAME)) !== null;
  const legacyByName = parseLegacyMetaName(spec) !== null;
  if (legacyByName || !hasKey) {
    const legacyMetas = legacyByName ? [] : await listLegacyMetas(store);
    if (legacyByName || legacyMetas.length > 0) {
      const key = legacyByName ? spec : pickMeta(legacyMetas, spec, name, store.location);
      const repo: LegacyRepository = { kind: "legacy", store, password };
      const meta = await loadFound(() => loadLegacyMeta(repo, key), key, store.location);
      const m = meta as Awaited<ReturnType<typeof loadLegacyMeta>>;
      return { repo, meta, metaKey: key, legacy: true, problems: m.problems, notes: m.notes };
    }
  }
  if (hasKey) {
    const repo = await openRepository(store, password);
    const key = parseMetaName(spec)
      ? spec
      : pickMeta(await formatTwoMetas(store), spec, name, store.location);
    const meta = await loadFound(() => loadMeta(repo, key), key, store.location);
    return { repo, meta, metaKey: key, legacy: false, problems: [], notes: [] };
  }
  // No s3backup.key: every meta carries a copy of it (FORMAT.md §5).
  const metas = await formatTwoMetas(store);
  if (metas.length === 0 && !parseMetaName(spec)) {
    await openRepository(store, password); // throws its "no repository" error
  }
  const key = parseMetaName(spec) ? spec : pickMeta(metas, spec, name, store.location);
  let descriptor = defaultDescriptor();
  try {
    descriptor = parseDescriptor(
      new TextDecoder().decode(await readAll(await store.load(DESCRIPTOR_NAME))),
    );
  } catch (err) {
    if (!(err instanceof ObjectNotFoundError)) throw err;
  }
  const partial: Repository = {
    store,
    descriptor,
    dataKey: new Uint8Array(),
    wrappedKey: new Uint8Array(),
    password,
  };
  let meta: Meta;
  try {
    meta = await loadFound(() => loadMeta(partial, key), key, store.location);
  } catch (err) {
    if (err instanceof CorruptDataError) {
      throw new WrongPasswordError(`Wrong password (or corrupt meta): ${key} does not open`, {
        cause: err,
      });
    }
    throw err;
  }
  const dataKey = await unwrapDataKey(meta.header.wrappedKey, password, descriptor.keyIter);
  const repo: Repository = {
    ...partial,
    dataKey: new TextEncoder().encode(dataKey),
    wrappedKey: meta.header.wrappedKey,
  };
  return {
    repo,
    meta,
    metaKey: key,
    legacy: false,
    problems: [],
    notes: [`${KEY_NAME} is missing: using the copy of the key held in ${key}`],
  };
}

// ---------------------------------------------------------------------------------------------
// Restoring over the folder a backup is reading
// ---------------------------------------------------------------------------------------------

async function realOrResolved(p: string): Promise<string> {
  return await Deno.realPath(p).catch(() => resolve(p));
}

/** The name of a live backup lock taken by `host` (FORMAT.md §6), or null. */
export async function liveBackupLock(store: Store, host: string): Promise<string | null> {
  const locks = await liveLocks(store);
  const l = locks.find((l) => l.kind === "backup" && (l.host === host || !l.readable));
  return l ? l.key : null;
}

/** Whether one of two absolute paths is the other or inside it. */
function overlaps(a: string, b: string): boolean {
  const under = (x: string, y: string) => x === y || x.startsWith(y.endsWith("/") ? y : `${y}/`);
  return under(a, b) || under(b, a);
}

/**
 * Refuses to restore into (or over) the folder of a backup running on this host (its lock names
 * the folder); into the folder the backup was taken from, on the host it was taken on, unless
 * `overwrite`, and even then while any backup of this host runs (a lock of an older version
 * names no folder). Also refuses a target inside a local repository.
 */
export async function checkTarget(
  store: Store,
  meta: Meta,
  target: string,
  host: string,
  overwrite: boolean,
): Promise<void> {
  const t = await realOrResolved(target);
  if (store.kind === "local") {
    const repoDir = await realOrResolved(store.location);
    if (t === repoDir || t.startsWith(`${repoDir}/`)) {
      throw new UsageError(`Refusing to restore into the repository itself (${repoDir})`);
    }
  }
  // A backup running on this host reads its folder: never restore over or into it meanwhile.
  for (const l of await liveLocks(store)) {
    if (l.kind !== "backup" || l.host !== host || l.source === undefined) continue;
    if (overlaps(t, await realOrResolved(l.source))) {
      throw new S3BackupError(
        `A backup of ${l.source} is running on this host (${l.key}): not restoring into ${t}`,
      );
    }
  }
  if (meta.header.source === "" || meta.header.host !== host) return;
  if (t !== await realOrResolved(meta.header.source)) return;
  if (!overwrite) {
    throw new UsageError(
      `${t} is the folder this backup was taken from on this host: ` +
        "restore elsewhere, or add --overwrite to restore over it",
    );
  }
  const lock = await liveBackupLock(store, host);
  if (lock !== null) {
    throw new S3BackupError(
      `A backup from this host is running (${lock}): not restoring into ${t} now`,
    );
  }
}
