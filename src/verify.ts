/**
 * `s3backup verify` (alias `check`): is every backup whole?
 *
 * One listing of the store, then every meta (or one) is opened and each file entry's object
 * looked up in that listing: present, and of the size its content implies (FORMAT.md §3.1:
 * 16 + (floor(size / 16) + 1) * 16 bytes). Each meta's own wrapped key must open to the
 * repository's data key (the restore kit uses it). With `readData`, every distinct object the
 * metas reference is downloaded once (4 at a time), decrypted and its MD5 checked against its
 * name; `subset` (0 < f <= 1) checks a random sample of ceil(f * n) of the n present objects
 * instead: a new sample each run, so that repeated runs cover the repository.
 *
 * The engine never prints: problems go to `onEvent`, the summary is returned.
 */
import { createHash } from "node:crypto";
import { encryptedSize } from "./crypto.ts";
import { unwrapDataKey } from "./data_key.ts";
import { CorruptDataError, ObjectNotFoundError, UsageError, WrongPasswordError } from "./errors.ts";
import { compareMetaNames, META_PREFIX, type MetaName, parseMetaName } from "./meta_name.ts";
import { pool } from "./passwd.ts";
import { decryptObject, loadMeta, type Repository } from "./repository.ts";
import type { ObjectInfo } from "./store/store.ts";

const MD5_NAME = /^[0-9a-f]{32}$/;

export interface VerifyOptions {
  /** One backup: a meta name, `latest`, or a backup name (its latest meta). Default: all. */
  meta?: string;
  /** Download, decrypt and MD5-check the referenced objects. */
  readData?: boolean;
  /** With readData: the fraction (0 < f <= 1) of the distinct objects to read. Default 1. */
  subset?: number;
  /** Downloads at a time (default 4). */
  concurrency?: number;
  /** A number in [0, 1) (tests); default: crypto random. */
  random?: () => number;
  signal?: AbortSignal;
}

export type ProblemKind = "meta" | "key" | "missing" | "size" | "corrupt";

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
  | { type: "read"; done: number; total: number; bytes: number };

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
  /** Every problem event emitted (one per meta, path and object). */
  problems: number;
  /** Metas with at least one problem. */
  damagedMetas: string[];
  durationMs: number;
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

/**
 * The meta `spec` names among `metas` (oldest first): an exact meta name, `latest` (the newest),
 * or a backup name (its newest). Throws UsageError when there is none.
 */
export function resolveMeta(metas: MetaName[], spec: string): MetaName {
  const exact = metas.find((m) => m.key === spec);
  if (exact) return exact;
  const pick = spec === "latest" ? metas : metas.filter((m) => m.name === spec);
  const last = pick.at(-1);
  if (last) return last;
  throw new UsageError(
    spec === "latest"
      ? "No backups in this repository"
      : `No backup ${JSON.stringify(spec)} (a meta name, a backup name or latest)`,
  );
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

/** Downloads, decrypts and hashes one object. Returns null if whole, else the problem. */
async function checkObject(repo: Repository, name: string): Promise<string | null> {
  let stream: ReadableStream<Uint8Array>;
  try {
    stream = await repo.store.load(name);
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return "missing (deleted while verifying?)";
    throw err;
  }
  const h = createHash("md5");
  try {
    for await (const chunk of stream.pipeThrough(decryptObject(repo))) h.update(chunk);
  } catch (err) {
    if (err instanceof CorruptDataError) return `corrupt: ${err.message}`;
    throw err;
  }
  const md5 = h.digest("hex");
  return md5 === name ? null : `corrupt: the MD5 of its content is ${md5}`;
}

/** Checks the repository (see the module doc). Throws only when the check itself cannot run. */
export async function verify(
  repo: Repository,
  opts: VerifyOptions = {},
  onEvent: (e: VerifyEvent) => void = () => {},
): Promise<VerifySummary> {
  const started = performance.now();
  const store = repo.store;
  const objects = new Map<string, ObjectInfo>();
  const metas: MetaName[] = [];
  for await (const o of store.list()) {
    if (MD5_NAME.test(o.name)) objects.set(o.name, o);
    else if (o.name.startsWith(META_PREFIX)) {
      const m = parseMetaName(o.name);
      if (m) metas.push(m);
    }
  }
  metas.sort(compareMetaNames);
  const selected = opts.meta !== undefined ? [resolveMeta(metas, opts.meta)] : metas;

  let problems = 0;
  const damaged = new Set<string>();
  const report = (p: VerifyProblem) => {
    problems++;
    damaged.add(p.meta);
    onEvent({ type: "problem", problem: p });
  };

  // Which (meta, path) use each object, and the size each implies.
  const refs = new Map<string, { meta: string; path: string; size: number }[]>();
  const goodKeys: Uint8Array[] = [repo.wrappedKey];
  const dataKey = new TextDecoder().decode(repo.dataKey);
  let files = 0, badMetas = 0;
  for (const m of selected) {
    opts.signal?.throwIfAborted();
    let meta;
    try {
      meta = await loadMeta(repo, m.key);
    } catch (err) {
      if (!(err instanceof CorruptDataError || err instanceof ObjectNotFoundError)) throw err;
      badMetas++;
      report({ kind: "meta", meta: m.key, message: `cannot open: ${(err as Error).message}` });
      continue;
    }
    const wk = meta.header.wrappedKey;
    if (!goodKeys.some((k) => k.length === wk.length && k.every((b, i) => b === wk[i]))) {
      let key: string | null = null;
      try {
        key = await unwrapDataKey(wk, repo.password, repo.descriptor.keyIter);
      } catch (err) {
        if (!(err instanceof WrongPasswordError)) throw err;
      }
      if (key === dataKey) goodKeys.push(wk);
      else {
        badMetas++;
        report({
          kind: "key",
          meta: m.key,
          message: "its wrapped-key header does not open to this repository's data key " +
            "with this password (the restore kit cannot restore it)",
        });
      }
    }
    let n = 0;
    for (const e of meta.entries) {
      if (e.type !== "f" || e.md5 === undefined) continue;
      n++;
      let list = refs.get(e.md5);
      if (!list) refs.set(e.md5, list = []);
      list.push({ meta: m.key, path: e.path, size: e.size });
    }
    files += n;
    onEvent({ type: "meta", key: m.key, files: n });
  }

  let missing = 0, badSize = 0;
  const present: string[] = [];
  for (const [md5, users] of refs) {
    const info = objects.get(md5);
    if (!info) {
      missing++;
      for (const u of users) {
        report({ kind: "missing", meta: u.meta, path: u.path, object: md5, message: "missing" });
      }
      continue;
    }
    const want = encryptedSize(users[0]!.size);
    if (info.size !== want) {
      badSize++;
      for (const u of users) {
        report({
          kind: "size",
          meta: u.meta,
          path: u.path,
          object: md5,
          message: `object is ${info.size} bytes, ${want} expected for ${u.size} bytes of content`,
        });
      }
      continue;
    }
    present.push(md5);
  }

  const subset = opts.subset ?? 1;
  let toRead: string[] = [];
  if (opts.readData) {
    if (subset >= 1) toRead = present;
    else {
      const k = Math.ceil(subset * present.length);
      toRead = sampleIndexes(present.length, k, opts.random ?? cryptoRandom).map((i) =>
        present[i]!
      );
    }
  }
  let objectsRead = 0, bytesRead = 0, corrupt = 0;
  await pool(toRead, opts.concurrency ?? 4, async (md5) => {
    opts.signal?.throwIfAborted();
    const problem = await checkObject(repo, md5);
    objectsRead++;
    bytesRead += objects.get(md5)?.size ?? 0;
    if (problem !== null) {
      corrupt++;
      for (const u of refs.get(md5) ?? []) {
        report({ kind: "corrupt", meta: u.meta, path: u.path, object: md5, message: problem });
      }
    }
    onEvent({ type: "read", done: objectsRead, total: toRead.length, bytes: bytesRead });
  });

  return {
    metas: selected.length,
    files,
    objects: refs.size,
    missing,
    badSize,
    badMetas,
    readData: opts.readData ?? false,
    subset,
    objectsRead,
    bytesRead,
    corrupt,
    problems,
    damagedMetas: selected.map((m) => m.key).filter((k) => damaged.has(k)),
    durationMs: performance.now() - started,
  };
}
