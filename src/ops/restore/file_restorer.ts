/**
 * Phase 2 of a restore: the files, by a bounded pool, one distinct content (MD5) at a time.
 * Each object is downloaded at most once per run; the other paths with the same content are
 * copied from the first one restored (MD5 checked again), or from a file already in the target
 * with that content. A file already there with the right size and MD5 is kept (its attributes
 * fixed), so an interrupted restore resumes where it stopped.
 */
import { createHash } from "node:crypto";
import type { Entry } from "../../format/meta.ts";
import { messageOf } from "../../util/bytes.ts";
import { isFull, ObjectArchivedError, throwIfUnavailable } from "../../util/errors.ts";
import { pool } from "../../util/pool.ts";
import { hashFile, ObjectError, TargetError, writeFile, writeSmallFile } from "./file_writer.ts";
import type { RestoreRun } from "./phases.ts";
import { conflict } from "./target.ts";

interface Todo {
  e: Entry;
  /** What is at the destination now. */
  existing: Deno.FileInfo | null;
}

/** The object holding a group's content. */
function keyOf(run: RestoreRun, md5: string, todo: { e: Entry }[] | Entry[]): string {
  return run.contents.place(md5, whereOf(todo)).key;
}

/** Where a group's content is (every entry of one meta with one MD5 says the same). */
function whereOf(group: { e: Entry }[] | Entry[]): string | undefined {
  const first = group[0];
  return first === undefined ? undefined : "e" in first ? first.e.where : first.where;
}

/**
 * Restores every group of files, in the order of the objects holding them (a pack is fetched
 * once, and held only while its contents are written). `present` (simulation only) holds the
 * names of the objects the store has.
 */
export async function restoreFiles(
  run: RestoreRun,
  groups: Map<string, Entry[]>,
  present: Set<string> | null,
): Promise<void> {
  const workers = run.simulate ? 1 : Math.max(1, run.concurrency);
  /** Groups whose object is archived (a GET said so): written after the thaw, or left. */
  const cold: [string, Todo[]][] = [];
  const write = async (md5: string, todo: Todo[], copyFrom: string | null) => {
    try {
      if (todo.length === 0) return;
      if (run.progress.full !== null) return notWritten(run, todo); // (nothing fetched)
      if (isSmall(run, md5, todo)) await writeSmallGroup(run, md5, todo, copyFrom);
      else await writeGroup(run, md5, todo, copyFrom);
    } catch (err) {
      if (!(err instanceof ObjectArchivedError)) throw err;
      if (run.archive !== undefined) return void cold.push([md5, todo]);
      for (const t of todo) { // a store that cannot thaw it (--as-of): a failure
        run.progress.fail(t.e.path, err.message);
        run.progress.doneFile(t.e, null);
      }
    }
  };
  const ordered = [...groups].sort(([a, ga], [b, gb]) => {
    const ka = keyOf(run, a, ga), kb = keyOf(run, b, gb);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  for (const [md5, g] of ordered) run.contents.expect(md5, whereOf(g));
  await pool(ordered, workers, async ([md5, group]) => {
    try {
      const { todo, copyFrom } = await examineGroup(run, md5, group);
      const have = copyFrom !== null || present?.has(keyOf(run, md5, group)) === true;
      if (run.simulate) simulateGroup(run, md5, todo, have);
      else await write(md5, todo, copyFrom);
    } finally {
      run.contents.done(md5, whereOf(group));
    }
  });
  if (cold.length === 0) return;
  const { pending } = await run.archive!.thaw([...new Set(cold.map(([m, t]) => keyOf(run, m, t)))]);
  const later = cold.splice(0);
  for (const [md5, todo] of later) run.contents.expect(md5, whereOf(todo));
  await pool(later, workers, async ([md5, todo]) => {
    try {
      if (!pending.has(keyOf(run, md5, todo))) return await write(md5, todo, null);
      for (const t of todo) run.progress.archivedFile(t.e);
    } finally {
      run.contents.done(md5, whereOf(todo));
    }
  });
  // Said readable, yet a GET still says archived: left for a rerun too.
  for (const [, todo] of cold) for (const t of todo) run.progress.archivedFile(t.e);
}

/** What each path of a group needs; `copyFrom`: a file in the target known to hold it. */
async function examineGroup(run: RestoreRun, md5: string, group: Entry[]) {
  const { tgt, progress, signal } = run;
  const todo: Todo[] = [];
  let copyFrom: string | null = null;
  for (const e of group) {
    signal?.throwIfAborted();
    const st = tgt.examine(e.path, run.simulate);
    if (typeof st === "string") {
      progress.fail(e.path, st);
      progress.doneFile(e, null);
      continue;
    }
    if (st === null) {
      todo.push({ e, existing: null });
      continue;
    }
    const p = tgt.abs(e.path);
    if (st.isFile && (e.size === null || st.size === e.size) && await holds(p, md5, signal)) {
      if (!run.simulate) {
        const warning = await run.attrs.fix(p, e, st);
        if (warning !== null) progress.warn(e.path, warning);
      }
      progress.entry(e.path, "f", "unchanged");
      copyFrom ??= p;
      progress.unchanged++;
      progress.doneFile(e, st.size);
      continue;
    }
    if (!run.overwrite) {
      progress.fail(e.path, conflict(st, "exists with other content"));
      progress.doneFile(e, null);
      continue;
    }
    todo.push({ e, existing: st });
  }
  return { todo, copyFrom };
}

/** Whether the file at `p` has content `md5` (unreadable: not, as far as we can tell). */
async function holds(p: string, md5: string, signal?: AbortSignal): Promise<boolean> {
  try {
    return (await hashFile(p, signal)) === md5;
  } catch {
    if (signal?.aborted) throw signal.reason;
    return false;
  }
}

function simulateGroup(run: RestoreRun, md5: string, todo: Todo[], available: boolean): void {
  for (const t of todo) {
    if (!available) {
      run.progress.fail(t.e.path, `missing object ${md5}`);
      run.progress.doneFile(t.e, null);
      continue;
    }
    run.progress.entry(t.e.path, "f", t.existing === null ? "create" : "replace");
    run.progress.doneFile(t.e, t.e.size);
  }
}

/** Writes the paths of a group: copied from a restored one, else from the object (once). */
async function writeGroup(run: RestoreRun, md5: string, todo: Todo[], from: string | null) {
  const { tgt, progress, signal } = run;
  let copyFrom = from;
  let objectFailure: string | null = null;
  for (const [i, t] of todo.entries()) {
    signal?.throwIfAborted();
    if (progress.full !== null) return notWritten(run, todo.slice(i));
    const write = (source: () => Promise<ReadableStream<Uint8Array>>) =>
      writeFile(tgt.abs(t.e.path), t.e, source, {
        attrs: run.attrs,
        existing: t.existing,
        onRemoved: () => tgt.invalidate(),
        warn: (m) => progress.warn(t.e.path, m),
        ...(signal ? { signal } : {}),
      });
    let size: number | null = null;
    let failure: string | null = null;
    let full = false;
    if (copyFrom !== null) {
      // Another path already holds this content: copy it (its MD5 is checked again).
      const src = copyFrom;
      try {
        size = await write(async () => (await Deno.open(src, { read: true })).readable);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (err instanceof TargetError) [failure, full] = [err.message, isFull(err)];
        // Else the copy did not work (unreadable, changed): download the object instead.
      }
    }
    if (size === null && failure === null) {
      if (objectFailure !== null) failure = objectFailure;
      else {
        try {
          size = await write(() => download(run, md5, t.e.where));
        } catch (err) {
          if (signal?.aborted) throw signal.reason;
          if (err instanceof ObjectArchivedError) throw err; // the whole group waits (above)
          throwIfUnavailable(err);
          [failure, full] = [messageOf(err), isFull(err)];
          if (!(err instanceof TargetError)) objectFailure = failure;
        }
      }
    }
    if (size === null) {
      progress.fail(t.e.path, failure!, full);
      progress.doneFile(t.e, null);
      continue;
    }
    copyFrom = tgt.abs(t.e.path);
    progress.entry(t.e.path, "f", t.existing === null ? "create" : "replace");
    progress.doneFile(t.e, size);
  }
}

/** Files not written: the target's file system filled (counted as failed, not named). */
function notWritten(run: RestoreRun, todo: Todo[]): void {
  for (const t of todo) {
    run.progress.fail(t.e.path, "not written: the file system is full", true);
    run.progress.doneFile(t.e, null);
  }
}

/** Contents up to this size are restored from memory with synchronous writes. */
const SMALL = 256 * 1024;

/** In memory: a pack member, or a content its meta records as small. */
function isSmall(run: RestoreRun, md5: string, todo: Todo[]): boolean {
  if (run.contents.inPack(md5, whereOf(todo))) return true;
  const size = todo[0]?.e.size ?? null; // null: not recorded (format 1)
  return size !== null && size <= SMALL;
}

/**
 * Writes the paths of a group of small files from the content in memory: the object's, or
 * (when a file in the target holds it) that file's; MD5 checked either way.
 */
async function writeSmallGroup(run: RestoreRun, md5: string, todo: Todo[], from: string | null) {
  const { tgt, progress, signal } = run;
  let data: Uint8Array | null = null, failure = "";
  try {
    data = (from !== null ? readChecked(from, md5) : null) ??
      await fetchSmall(run, md5, whereOf(todo));
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    if (err instanceof ObjectArchivedError) throw err;
    throwIfUnavailable(err);
    failure = messageOf(err);
  }
  for (const [i, t] of todo.entries()) {
    signal?.throwIfAborted();
    if (progress.full !== null) return notWritten(run, todo.slice(i));
    try {
      if (data === null) throw new ObjectError(failure);
      writeSmallFile(tgt.abs(t.e.path), t.e, data, {
        attrs: run.attrs,
        existing: t.existing,
        onRemoved: () => tgt.invalidate(),
        warn: (m) => progress.warn(t.e.path, m),
      });
    } catch (err) {
      progress.fail(t.e.path, messageOf(err), isFull(err));
      progress.doneFile(t.e, null);
      continue;
    }
    progress.entry(t.e.path, "f", t.existing === null ? "create" : "replace");
    progress.doneFile(t.e, data.length);
  }
}

/** A target file's content if it still has MD5 `md5`; null otherwise. */
function readChecked(p: string, md5: string): Uint8Array | null {
  try {
    const data = Deno.readFileSync(p);
    return createHash("md5").update(data).digest("hex") === md5 ? data : null;
  } catch {
    return null;
  }
}

/** The decrypted, checked content `md5`, in memory. Throws ObjectError. */
async function fetchSmall(run: RestoreRun, md5: string, where?: string): Promise<Uint8Array> {
  try {
    return await run.contents.bytes(md5, where);
  } catch (err) {
    if (err instanceof ObjectArchivedError) throw err;
    throw new ObjectError(messageOf(err), { cause: err });
  }
}

/** The decrypted content `md5`, as a stream (its MD5 is checked as it is written). */
async function download(
  run: RestoreRun,
  md5: string,
  where?: string,
): Promise<ReadableStream<Uint8Array>> {
  try {
    return await run.contents.stream(md5, where);
  } catch (err) {
    if (err instanceof ObjectArchivedError) throw err;
    throw new ObjectError(messageOf(err), { cause: err });
  }
}
