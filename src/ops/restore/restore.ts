/**
 * The restore engine (FORMAT.md §5.3). It never prints and never exits: it reports through
 * `onEvent` and returns a summary; errors that stop the whole restore are thrown.
 *
 * The planner (plan.ts) picks the valid, selected entries; then the phases run in order:
 * directories (created owner-writable), files (file_restorer.ts, each written by
 * file_writer.ts), symlinks, then the directories' owner, mode and mtime, deepest first
 * (phases.ts). Before anything is written at `a/b/c`, `a` and `a/b` inside the target are
 * checked with lstat to be real directories, never symlinks (target.ts).
 *
 * An existing target: a file already there with the right size and MD5 is kept (its owner,
 * mode and mtime are fixed if needed), so an interrupted restore resumes where it stopped.
 * Anything else in the way (other content, a symlink, a directory) is a conflict: reported and
 * left alone, unless `overwrite`, which replaces it (a non-empty directory is never removed).
 */
import type { Meta } from "../../format/meta.ts";
import type { LegacyRepository } from "../../repo/legacy.ts";
import { Contents } from "../../repo/contents.ts";
import type { Repository } from "../../repo/repository.ts";
import { DEFAULT_RESTORE_REQUEST, thaw, type ThawOptions } from "../../repo/thaw.ts";
import { StoreUnavailableError } from "../../util/errors.ts";
import type { Store } from "../../store/store.ts";
import { restoreFiles } from "./file_restorer.ts";
import {
  finishDirs,
  finishRoot,
  restoreDirs,
  restoreHardLinks,
  restoreLinks,
  type RestoreRun,
} from "./phases.ts";
import { type Plan, planRestore } from "./plan.ts";
import { Progress, type RestoreEvent, type RestoreSummary } from "./progress.ts";
import { Attributes, distinctWhenFolded, openTarget, TargetDirs } from "./target.ts";
import { lockTarget } from "./target_lock.ts";

export { checkTarget, liveBackupLock } from "./check_target.ts";
export { normalizeOnly } from "./plan.ts";
export type { RestoreAction, RestoreEvent, RestoreSummary } from "./progress.ts";

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
  /** Lines of the meta that cannot be restored, reported as failed (format 1). */
  problems?: { path: string; message: string }[];
  /** This host's name, for the target's lock (default: Deno.hostname()). */
  host?: string;
  /** How to thaw archived objects (S3 archive classes); default: ask, do not wait. */
  thaw?: Omit<ThawOptions, "signal">;
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
  const progress = new Progress(onEvent);
  for (const p of opts.problems ?? []) progress.fail(p.path, p.message);
  const plan = planRestore(meta.entries, opts.only ?? [], opts.metaKey);
  for (const p of plan.problems) progress.fail(p.path, p.message);
  onEvent({
    type: "start",
    files: plan.files.length + plan.hardLinks.length,
    dirs: plan.dirs.length,
    links: plan.links.length,
    bytes: plan.totalBytes ?? 0,
  });

  const { root, existed, empty } = await openTarget(opts.target, opts.simulate);
  const unlock = opts.simulate ? null : await lockTarget(root, opts.host ?? Deno.hostname());
  let summary: RestoreSummary;
  try {
    const prepared = { plan, progress, root, existed, empty, started };
    summary = await runPhases(repo, meta, opts, prepared);
  } catch (err) {
    if (!(err instanceof StoreUnavailableError)) throw err;
    const files = plan.files.length + plan.hardLinks.length;
    const Same = err.constructor as typeof StoreUnavailableError;
    throw new Same(
      `${err.message}; the restore stopped with ${progress.files} of ${files} files in place ` +
        `(kept): run the same command again ${err.retryWhen}`,
      { cause: err },
    );
  } finally {
    await unlock?.();
  }
  if (!opts.simulate && (opts.only ?? []).length === 0) {
    await finishRoot({ attrs: attributesOf(opts), progress }, root, meta.header.root);
  }
  return summary;
}

/** How this restore sets owners (as root, unless told), modes and times (none for format 1). */
function attributesOf(opts: RestoreOptions): Attributes {
  return new Attributes(opts.owners ?? Deno.uid() === 0);
}

/**
 * How a restore from an S3 store thaws the archived objects it meets (a GET said so):
 * undefined for stores without archive classes.
 */
function archiveOf(store: Store, opts: RestoreOptions, progress: Progress) {
  if (store.requestRestore === undefined) return undefined;
  const thawOpts: ThawOptions = { request: DEFAULT_RESTORE_REQUEST, wait: false, ...opts.thaw };
  if (opts.signal) thawOpts.signal = opts.signal;
  return {
    thaw: async (names: string[]) => {
      const t = await thaw(store, names, thawOpts, progress.onEvent);
      progress.thawRequested += t.requested;
      progress.thawRequestedBytes += t.requestedBytes;
      return t;
    },
  };
}

/** What `restore` found before the phases: the plan, the counts, the target root. */
interface Prepared {
  plan: Plan;
  progress: Progress;
  root: string;
  /** The target existed before (it may hold an interrupted restore's temporary files). */
  existed: boolean;
  /** The target was empty: every content planned will be read (none is there already). */
  empty: boolean;
  started: number;
}

async function runPhases(
  repo: Repository | LegacyRepository,
  meta: Meta,
  opts: RestoreOptions,
  { plan, progress, root, existed, empty, started }: Prepared,
): Promise<RestoreSummary> {
  const paths = meta.entries.map((e) => e.path), metaPaths = new Set(paths);
  const run: RestoreRun = {
    store: repo.store,
    contents: progress.downloads = Contents.of(repo),
    tgt: new TargetDirs(root, !opts.simulate && distinctWhenFolded(paths, metaPaths)),
    attrs: attributesOf(opts),
    progress,
    simulate: opts.simulate,
    overwrite: opts.overwrite,
    concurrency: opts.concurrency ?? 4,
    metaPaths,
  };
  if (empty) run.tgt.made("");
  if (opts.signal) run.signal = opts.signal;
  // Into an empty target every pack planned is read: the next one downloads meanwhile.
  run.contents.readAhead = empty;
  if (!opts.simulate && plan.files.length > 0) {
    run.archive = await archiveOf(repo.store, opts, progress);
  }

  // The temporary files of an interrupted restore, in folders that already existed.
  if (existed) await run.tgt.removeStaleTemps("", run.metaPaths);
  const dirsDone = await restoreDirs(run, plan.dirs);
  // Simulation: which objects exist (one listing).
  const present = opts.simulate && plan.files.length > 0 ? await objectNames(repo.store) : null;
  await restoreFiles(run, plan.groups, present);
  await restoreHardLinks(run, plan.hardLinks);
  await restoreLinks(run, plan.links);
  await finishDirs(run, dirsDone);

  return {
    metaKey: opts.metaKey,
    target: root,
    files: progress.files,
    dirs: progress.dirs,
    links: progress.links,
    bytes: progress.bytes,
    unchanged: progress.unchanged,
    objectsDownloaded: run.contents.objectsDownloaded,
    bytesDownloaded: run.contents.bytesDownloaded,
    failed: progress.failed,
    full: progress.full,
    archived: progress.archived,
    thawRequested: progress.thawRequested,
    thawRequestedBytes: progress.thawRequestedBytes,
    durationMs: performance.now() - started,
    simulate: opts.simulate,
  };
}

/** The names of every object in `store` (one listing). */
async function objectNames(store: Store): Promise<Set<string>> {
  const names = new Set<string>();
  for await (const o of store.list()) names.add(o.name);
  return names;
}
