/**
 * `s3backup verify` (alias `check`): is every backup whole?
 *
 * One listing of the store, then every meta (or one) is opened and each file entry's object
 * (FORMAT.md §4: a pack, a `data/` object, a format 2 object) looked up in that listing:
 * present, and, when it holds one content as is, of the size that content implies (§3.1:
 * 16 + (floor(size / 16) + 1) * 16 bytes). Each meta's own wrapped key must open to the
 * repository's data key (the restore kit uses it). With `readData`, every distinct object the
 * metas reference is downloaded once (4 at a time, through repo/contents.ts), decrypted and
 * every content used from it MD5-checked (a damaged pack member names its own paths);
 * `subset` (0 < f <= 1) checks a random sample of ceil(f * n) of the n present objects
 * instead: a new sample each run, so that repeated runs cover the repository.
 *
 * The engine never prints: problems go to `onEvent`, the summary is returned.
 */
import { createHash } from "node:crypto";
import { encryptedSize } from "../format/container.ts";
import { unwrapDataKey } from "../format/key_wrap.ts";
import { DESCRIPTOR_NAME, KEY_NAME, placeOf } from "../format/layout.ts";
import type { Meta } from "../format/meta.ts";
import { listRepository, type MetaObject } from "../repo/listing.ts";
import { ContentError, Contents } from "../repo/contents.ts";
import { loadMeta, type Repository } from "../repo/repository.ts";
import { selectMeta } from "../repo/select.ts";
import {
  DEFAULT_RESTORE_REQUEST,
  isArchived,
  thaw,
  type ThawEvent,
  type ThawOptions,
} from "../repo/thaw.ts";
import type { ObjectInfo } from "../store/store.ts";
import { sameBytes } from "../util/bytes.ts";
import {
  CorruptDataError,
  ObjectNotFoundError,
  throwIfUnavailable,
  WrongPasswordError,
} from "../util/errors.ts";
import { pool } from "../util/pool.ts";

export interface VerifyOptions {
  /** One backup: a meta name, `latest`, or a backup name (its latest meta). Default: all. */
  meta?: string;
  /** With `meta: "latest"`: the latest of this backup name. */
  name?: string;
  /** Why `s3backup.key` could not be used (`repo` was opened from a meta's copy): a problem. */
  keyDamage?: string;
  /** Download, decrypt and MD5-check the referenced objects. */
  readData?: boolean;
  /** With readData: the fraction (0 < f <= 1) of the distinct objects to read. Default 1. */
  subset?: number;
  /** Downloads at a time (default 4). */
  concurrency?: number;
  /**
   * Check Object Lock retention: every object the backups of the last `retentionMs` need
   * (their contents, the metas, key, descriptor and kit) is retained until at least the
   * backup's time + retentionMs. One HEAD each.
   */
  retentionMs?: number;
  /** readData on archived objects (repo/thaw.ts): default ask, do not wait. */
  thaw?: Omit<ThawOptions, "signal">;
  /** A number in [0, 1) (tests); default: crypto random. */
  random?: () => number;
  signal?: AbortSignal;
}

export type ProblemKind = "meta" | "key" | "missing" | "size" | "corrupt" | "retention";

export interface VerifyProblem {
  kind: ProblemKind;
  /** The meta concerned (every problem but a corrupt object referenced by several). */
  meta: string;
  /** The entry path, for object problems. */
  path?: string;
  /** The data object, for object problems. */
  object?: string;
  message: string;
}

export type VerifyEvent =
  | { type: "problem"; problem: VerifyProblem }
  | { type: "meta"; key: string; files: number }
  | { type: "read"; done: number; total: number; bytes: number }
  | ThawEvent;

export interface VerifySummary {
  metas: number;
  /** File entries checked, over all metas. */
  files: number;
  /** Distinct objects referenced. */
  objects: number;
  /** Distinct objects missing. */
  missing: number;
  /** Distinct objects of the wrong size (truncated or replaced). */
  badSize: number;
  /** Metas that do not open, or whose wrapped key does not hold the data key. */
  badMetas: number;
  readData: boolean;
  /** The fraction read (1 unless a subset). */
  subset: number;
  /** Objects downloaded and checked, and their stored size. */
  objectsRead: number;
  bytesRead: number;
  /** Distinct objects that failed to decrypt or whose MD5 differs. */
  corrupt: number;
  /** Objects to read left for a rerun: archived, their readable copies not there yet. */
  archived: number;
  /** With retentionMs: what was checked, the earliest retention found, how many fall short. */
  retention: { backups: number; objects: number; lockedUntil: string | null; short: number } | null;
  /** Every problem event emitted (one per meta, path and object). */
  problems: number;
  /** Metas with at least one problem. */
  damagedMetas: string[];
  /** s3backup.key is damaged (the password opens a meta's copy of the key only). */
  keyDamaged: boolean;
  durationMs: number;
}

/** `k` distinct random indexes of [0, n) (partial Fisher-Yates). */
export function sampleIndexes(n: number, k: number, random: () => number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  const out: number[] = [];
  for (let i = 0; i < Math.min(k, n); i++) {
    const j = i + Math.floor(random() * (n - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    out.push(idx[i]!);
  }
  return out;
}

function cryptoRandom(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! / 2 ** 32;
}

/**
 * Downloads an object once and checks each content `uses` takes from it (decrypted, gunzipped,
 * MD5): the MD5s whose content is not whole, each with its problem.
 */
async function checkObject(
  contents: Contents,
  uses: { md5: string; where: string }[],
): Promise<Map<string, string>> {
  const bad = new Map<string, string>();
  const distinct = new Map(uses.map((u) => [u.md5, u.where]));
  for (const [md5, where] of distinct) contents.expect(md5, where);
  for (const [md5, where] of distinct) {
    try {
      if (contents.inPack(md5, where)) await contents.bytes(md5, where);
      else {
        const h = createHash("md5");
        for await (const chunk of await contents.stream(md5, where)) h.update(chunk);
        const got = h.digest("hex");
        if (got !== md5) throw new CorruptDataError(`the MD5 of its content is ${got}`);
      }
    } catch (err) {
      throwIfUnavailable(err); // (a store that does not answer is no damage: verify stops)
      if (err instanceof ContentError && /^missing object/.test(err.message)) {
        bad.set(md5, "missing (deleted while verifying?)");
      } else if (err instanceof CorruptDataError || err instanceof TypeError) {
        bad.set(md5, `corrupt: ${(err as Error).message}`);
      } else throw err;
    } finally {
      contents.done(md5, where);
    }
  }
  return bad;
}

/** Who uses one object (by key): each (meta, path), its content's MD5, where and size. */
type Refs = Map<string, Ref[]>;
interface Ref {
  meta: string;
  path: string;
  /** null where the meta does not record it (format 1). */
  size: number | null;
  md5: string;
  where: string;
}

/** Problems found so far, and the metas they concern. */
class Report {
  problems = 0;
  readonly damaged = new Set<string>();
  constructor(readonly onEvent: (e: VerifyEvent) => void) {}
  add(p: VerifyProblem): void {
    this.problems++;
    this.damaged.add(p.meta);
    this.onEvent({ type: "problem", problem: p });
  }
  /** One problem per user of object `key` (of content `md5` only, when given). */
  each(
    refs: Refs,
    key: string,
    kind: ProblemKind,
    message: (size: number | null) => string,
    md5?: string,
  ): void {
    for (const u of refs.get(key) ?? []) {
      if (md5 !== undefined && u.md5 !== md5) continue;
      this.add({ kind, meta: u.meta, path: u.path, object: key, message: message(u.size) });
    }
  }
}

/** Checks the repository (see the module doc). Throws only when the check itself cannot run. */
export async function verify(
  repo: Repository,
  opts: VerifyOptions = {},
  onEvent: (e: VerifyEvent) => void = () => {},
): Promise<VerifySummary> {
  const started = performance.now();
  const listing = await listRepository(repo.store);
  const selected = opts.meta !== undefined
    ? [selectMeta(listing.metas, opts.meta, opts.name, repo.store.location)]
    : listing.metas;
  const report = new Report(onEvent);
  if (opts.keyDamage !== undefined) {
    report.add({ kind: "key", meta: KEY_NAME, message: opts.keyDamage });
  }
  const { refs, files, badMetas } = await collectRefs(repo, selected, report, opts.signal);
  const { present, missing, badSize } = checkPresence(listing.objects, refs, report);
  const subset = opts.subset ?? 1;
  const toRead = !opts.readData ? [] : subset >= 1 ? present : sampleIndexes(
    present.length,
    Math.ceil(subset * present.length),
    opts.random ?? cryptoRandom,
  ).map((i) => present[i]!);
  const { readable, archived } = await thawForReading(repo, toRead, listing.objects, opts, onEvent);
  const read = await readObjects(repo, readable, listing.objects, refs, report, opts);
  const retention = opts.retentionMs === undefined
    ? null
    : await checkRetention(repo, selected, refs, [...listing.kit.keys()], opts, report);
  return {
    metas: selected.length,
    files,
    objects: refs.size,
    missing,
    badSize,
    badMetas,
    readData: opts.readData ?? false,
    subset,
    ...read,
    archived,
    retention,
    problems: report.problems,
    damagedMetas: selected.map((m) => m.key).filter((k) => report.damaged.has(k)),
    keyDamaged: opts.keyDamage !== undefined,
    durationMs: performance.now() - started,
  };
}

/** Opens each meta and checks its wrapped key; which (meta, path) use each object. */
async function collectRefs(
  repo: Repository,
  selected: MetaObject[],
  report: Report,
  signal?: AbortSignal,
): Promise<{ refs: Refs; files: number; badMetas: number }> {
  const refs: Refs = new Map();
  const goodKeys: Uint8Array[] = [repo.wrappedKey];
  let files = 0, badMetas = 0;
  for (const m of selected) {
    signal?.throwIfAborted();
    let meta: Meta;
    try {
      meta = await loadMeta(repo, m.key);
    } catch (err) {
      if (!(err instanceof CorruptDataError || err instanceof ObjectNotFoundError)) throw err;
      badMetas++;
      report.add({ kind: "meta", meta: m.key, message: `cannot open: ${(err as Error).message}` });
      continue;
    }
    if (!(await holdsDataKey(repo, meta.header.wrappedKey, goodKeys))) {
      badMetas++;
      report.add({
        kind: "key",
        meta: m.key,
        message: "its wrapped-key header does not open to this repository's data key " +
          "with this password (the restore kit cannot restore it)",
      });
    }
    let n = 0;
    for (const e of meta.entries) {
      if (e.type !== "f" || e.md5 === undefined) continue;
      n++;
      const where = e.where ?? "-";
      const key = placeOf(e.md5, where).key;
      let list = refs.get(key);
      if (!list) refs.set(key, list = []);
      list.push({ meta: m.key, path: e.path, size: e.size, md5: e.md5, where });
    }
    files += n;
    report.onEvent({ type: "meta", key: m.key, files: n });
  }
  return { refs, files, badMetas };
}

/** Whether a meta's wrapped key opens to the repository's data key (`good`: known to). */
async function holdsDataKey(repo: Repository, wk: Uint8Array, good: Uint8Array[]) {
  if (good.some((k) => sameBytes(k, wk))) return true;
  let key: string | null = null;
  try {
    key = await unwrapDataKey(wk, repo.password, repo.descriptor.keyIter);
  } catch (err) {
    if (!(err instanceof WrongPasswordError)) throw err;
  }
  if (key !== new TextDecoder().decode(repo.dataKey)) return false;
  good.push(wk);
  return true;
}

/** Every referenced object is in the listing, with the size its content implies. */
function checkPresence(objects: Map<string, ObjectInfo>, refs: Refs, report: Report) {
  let missing = 0, badSize = 0;
  const present: string[] = [];
  for (const [key, users] of refs) {
    const info = objects.get(key);
    if (!info) {
      missing++;
      report.each(refs, key, "missing", () => "missing");
      continue;
    }
    // A pack or a gzip: its size depends on its members; else the content's size fixes it.
    const where = users[0]!.where;
    const size = users[0]!.size;
    const want = (where === "-" || where === "data") && size !== null ? encryptedSize(size) : null;
    const whole = want === null ? info.size >= 32 && info.size % 16 === 0 : info.size === want;
    if (!whole) {
      badSize++;
      report.each(
        refs,
        key,
        "size",
        (size) =>
          want === null
            ? `object is ${info.size} bytes: no whole openssl container`
            : `object is ${info.size} bytes, ${want} expected for ${size} bytes of content`,
      );
      continue;
    }
    present.push(key);
  }
  return { present, missing, badSize };
}

/**
 * Each object the backups of the last `opts.retentionMs` need, against the retention it must
 * have: the newest such backup's time + retentionMs (metas: their own time + retentionMs).
 */
async function checkRetention(
  repo: Repository,
  selected: MetaObject[],
  refs: Refs,
  kit: string[],
  opts: VerifyOptions,
  report: Report,
) {
  const r = opts.retentionMs!;
  const now = Date.now();
  const recent = selected.filter((m) => m.time.getTime() >= now - r);
  const due = new Map<string, { until: number; meta: string }>();
  const need = (name: string, meta: MetaObject) => {
    const until = meta.time.getTime() + r;
    if ((due.get(name)?.until ?? -Infinity) < until) due.set(name, { until, meta: meta.key });
  };
  const byKey = new Map(recent.map((m) => [m.key, m]));
  for (const [key, uses] of refs) {
    for (const u of uses) if (byKey.has(u.meta)) need(key, byKey.get(u.meta)!);
  }
  for (const m of recent) for (const n of [m.key, KEY_NAME, DESCRIPTOR_NAME, ...kit]) need(n, m);
  let earliest: number | null = null, short = 0;
  await pool([...due], 16, async ([name, want]) => {
    const info = await repo.store.stat(name);
    const until = info?.retainUntil?.getTime();
    if (until !== undefined) earliest = Math.min(earliest ?? until, until);
    if (until !== undefined && until >= want.until) return;
    short++;
    report.add({
      kind: "retention",
      meta: want.meta,
      object: name,
      message: until === undefined
        ? `not retained (needed until ${new Date(want.until).toISOString()})`
        : `retained only until ${new Date(until).toISOString()} (needed until ` +
          `${new Date(want.until).toISOString()})`,
    });
  }, opts.signal);
  return {
    backups: recent.length,
    objects: due.size,
    lockedUntil: earliest === null ? null : new Date(earliest).toISOString(),
    short,
  };
}

/** Of `toRead`, those readable now (archived ones thawed, or asked for: `archived` left). */
async function thawForReading(
  repo: Repository,
  toRead: string[],
  objects: Map<string, ObjectInfo>,
  opts: VerifyOptions,
  onEvent: (e: VerifyEvent) => void,
): Promise<{ readable: string[]; archived: number }> {
  const cold = toRead.filter((md5) => isArchived(objects.get(md5)));
  if (cold.length === 0) return { readable: toRead, archived: 0 };
  const thawOpts: ThawOptions = { request: DEFAULT_RESTORE_REQUEST, wait: false, ...opts.thaw };
  if (opts.signal) thawOpts.signal = opts.signal;
  const { pending } = await thaw(repo.store, cold, thawOpts, onEvent);
  return { readable: toRead.filter((m) => !pending.has(m)), archived: pending.size };
}

/** Downloads, decrypts and MD5-checks `toRead`, `concurrency` at a time. */
async function readObjects(
  repo: Repository,
  toRead: string[],
  objects: Map<string, ObjectInfo>,
  refs: Refs,
  report: Report,
  opts: VerifyOptions,
): Promise<{ objectsRead: number; bytesRead: number; corrupt: number }> {
  let objectsRead = 0, bytesRead = 0, corrupt = 0;
  const contents = Contents.of(repo);
  await pool(toRead, opts.concurrency ?? 4, async (key) => {
    const bad = await checkObject(contents, refs.get(key) ?? []);
    objectsRead++;
    bytesRead += objects.get(key)?.size ?? 0;
    if (bad.size > 0) corrupt++;
    for (const [md5, problem] of bad) report.each(refs, key, "corrupt", () => problem, md5);
    report.onEvent({ type: "read", done: objectsRead, total: toRead.length, bytes: bytesRead });
  }, opts.signal);
  return { objectsRead, bytesRead, corrupt };
}
