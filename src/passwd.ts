/**
 * Changing the repository password (FORMAT.md §7) without re-uploading data, and with no
 * moment, however it is interrupted, at which a backup opens with neither password.
 *
 *   (a) prepare  `s3backup.key.next` = the data key wrapped with the new password; for each
 *                meta M, `passwd/next/M` = M re-encrypted with the new password, its
 *                `wrapped-key` header = the bytes of `s3backup.key.next`.
 *   (b) switch   `s3backup.key.prev` = the bytes of `s3backup.key`; `s3backup.key` = the bytes
 *                of `.next` (the commit point); then for each M: `passwd/prev/M` = the bytes of
 *                M, M = the bytes of `passwd/next/M`.
 *   (c) cleanup  delete `passwd/next/*`, `passwd/prev/*`, `s3backup.key.prev`, and last
 *                `s3backup.key.next` (the marker of a change in progress).
 *
 * Readers try `s3backup.key`, `.next`, `.prev`, and for a meta M: M, `passwd/next/M`,
 * `passwd/prev/M` (`openRepository`, `loadMeta` in repository.ts). Until (c) starts the old password opens
 * everything; once (a) is done the new one does.
 *
 * A rerun after an interruption: if `s3backup.key` is not yet the bytes of `.next`, nothing
 * has taken effect and the change starts over (to whatever new password is given). If it is,
 * the change has taken effect: it is finished with the copies already made (the new password
 * must be the same; or, given as the current password, it is finished and then changed again).
 */
import { decryptBytes, encryptBytes } from "./crypto.ts";
import { KEY_NAME, unwrapDataKey, wrapDataKey } from "./data_key.ts";
import {
  defaultDescriptor,
  type Descriptor,
  DESCRIPTOR_NAME,
  parseDescriptor,
} from "./descriptor.ts";
import {
  CorruptDataError,
  errorLine,
  S3BackupError,
  UsageError,
  WrongPasswordError,
} from "./errors.ts";
import { acquireLock, type LockOptions } from "./lock.ts";
import { encodeBase64 } from "./base64.ts";
import { META_MAGIC, parseMeta } from "./meta.ts";
import { META_PREFIX, parseMetaName } from "./meta_name.ts";
import {
  KEY_NEXT_NAME,
  KEY_PREV_NAME,
  loadOptional,
  metaNextName,
  metaPrevName,
  openRepository,
  PASSWD_PREFIX,
  type Repository,
} from "./repository.ts";
import { readAll, type Store } from "./store/store.ts";

export { KEY_NEXT_NAME, KEY_PREV_NAME, metaNextName, metaPrevName, PASSWD_PREFIX };
export const PASSWD_NEXT_PREFIX = metaNextName("");
export const PASSWD_PREV_PREFIX = metaPrevName("");

const te = new TextEncoder();

/** Where a reader looks for the wrapped key, in order. */
export function keyCandidates(): string[] {
  return [KEY_NAME, KEY_NEXT_NAME, KEY_PREV_NAME];
}

/** Where a reader looks for meta `meta`, in order. */
export function metaCandidates(meta: string): string[] {
  return [meta, metaNextName(meta), metaPrevName(meta)];
}

/** A password change is in progress, or was interrupted and not finished. */
export class PasswordChangePendingError extends S3BackupError {}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  return a !== null && b !== null && a.length === b.length && a.every((x, i) => x === b[i]);
}

async function loadDescriptor(store: Store): Promise<Descriptor> {
  const conf = await loadOptional(store, DESCRIPTOR_NAME);
  return conf === null ? defaultDescriptor() : parseDescriptor(new TextDecoder().decode(conf));
}

/**
 * For writers (backup, prune), right after taking their lock: throws when a password change is
 * pending (`s3backup.key.next` exists) or `s3backup.key` is no longer the key `repo` was opened
 * with (the password changed between opening and locking: the writer would write metas with the
 * old password).
 */
export async function checkPasswordUnchanged(repo: Repository): Promise<void> {
  const [pending, key] = await Promise.all([
    repo.store.stat(KEY_NEXT_NAME),
    loadOptional(repo.store, KEY_NAME),
  ]);
  if (pending !== null) {
    throw new PasswordChangePendingError(
      `A password change is in progress on ${repo.store.location}, or was interrupted: ` +
        `wait for it, or run 's3backup passwd' again to finish it`,
    );
  }
  if (!sameBytes(key, repo.wrappedKey)) {
    throw new S3BackupError(
      `The password of ${repo.store.location} was changed while this command started: run it again`,
    );
  }
}

/** Whether `password` opens the wrapped key `wrapped`. */
async function opens(wrapped: Uint8Array, password: Uint8Array, iter: number): Promise<boolean> {
  try {
    await unwrapDataKey(wrapped, password, iter);
    return true;
  } catch (err) {
    if (err instanceof WrongPasswordError) return false;
    throw err;
  }
}

/** The plaintext of a meta object, checked (magic, trailer); CorruptDataError if it won't open. */
async function metaText(
  body: Uint8Array,
  password: Uint8Array,
  iter: number,
  name: string,
): Promise<string> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(
      await decryptBytes(body, password, iter),
    );
  } catch (err) {
    throw new CorruptDataError(
      `Cannot decrypt ${name}: corrupt, or written with another password`,
      { cause: err },
    );
  }
  try {
    parseMeta(text);
  } catch (err) {
    throw new CorruptDataError(`Cannot read ${name}: ${(err as Error).message}`, { cause: err });
  }
  return text;
}

/** The meta plaintext with its `wrapped-key` header replaced; every other byte unchanged. */
export function replaceWrappedKey(text: string, wrappedKey: Uint8Array): string {
  const lines = text.split("\n");
  if (lines[0] !== META_MAGIC) throw new CorruptDataError("not a format 2 meta file");
  for (let i = 1; i < lines.length && lines[i] !== "entries"; i++) {
    if (lines[i]!.startsWith("wrapped-key ")) {
      lines[i] = `wrapped-key ${encodeBase64(wrappedKey)}`;
      return lines.join("\n");
    }
  }
  throw new CorruptDataError("meta file has no wrapped-key header");
}

/**
 * Runs `fn` over `items`, `n` at a time; the first error stops the others from starting and
 * is thrown once those running are done.
 */
export async function pool<T>(
  items: T[],
  n: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | null = null;
  const worker = async () => {
    while (failed === null && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failed !== null) throw (failed as { err: unknown }).err;
}

export interface PasswdOptions {
  host: string;
  /** Metas processed at a time (default 4). */
  concurrency?: number;
  lock?: LockOptions;
  signal?: AbortSignal;
}

export type PasswdEvent =
  | { type: "phase"; phase: "prepare" | "switch" | "cleanup" | "finish"; metas: number }
  | { type: "meta"; phase: "prepare" | "switch" | "finish"; key: string };

export interface PasswdSummary {
  /** Metas now encrypted with the new password. */
  metas: number;
  /** An interrupted change that had already taken effect was finished. */
  finishedInterrupted: boolean;
  /** An interrupted change that had not taken effect was found and started over. */
  restarted: boolean;
  /** Nothing to do: the new password already opened the repository, the old one nothing. */
  alreadyChanged: boolean;
  durationMs: number;
}

interface Scan {
  key: Uint8Array | null;
  next: Uint8Array | null;
  metas: string[];
  passwdObjects: Set<string>;
}

async function scan(store: Store): Promise<Scan> {
  const metas: string[] = [];
  const passwdObjects = new Set<string>();
  for await (const o of store.list()) {
    if (o.name.startsWith(META_PREFIX) && parseMetaName(o.name) !== null) metas.push(o.name);
    else if (o.name.startsWith(PASSWD_PREFIX)) passwdObjects.add(o.name);
  }
  metas.sort();
  const [key, next] = await Promise.all([
    loadOptional(store, KEY_NAME),
    loadOptional(store, KEY_NEXT_NAME),
  ]);
  return { key, next, metas, passwdObjects };
}

/**
 * Changes the password of the repository in `store` from `password` to `newPassword`, or
 * finishes an interrupted change (see the module doc). Holds a `passwd` lock throughout.
 * Throws WrongPasswordError when `password` opens no key, UsageError when `newPassword` already
 * opens the repository.
 */
export async function changePassword(
  store: Store,
  password: Uint8Array,
  newPassword: Uint8Array,
  opts: PasswdOptions,
  onEvent: (e: PasswdEvent) => void = () => {},
): Promise<PasswdSummary> {
  const started = performance.now();
  const conc = opts.concurrency ?? 4;
  // Check the passwords before writing anything (the lock included).
  let repo: Repository | null = null;
  try {
    repo = await openRepository(store, password);
  } catch (err) {
    // An interrupted change that has taken effect can be finished with its new password.
    if (!(err instanceof WrongPasswordError)) throw err;
    const [key, next] = await Promise.all([
      loadOptional(store, KEY_NAME),
      loadOptional(store, KEY_NEXT_NAME),
    ]);
    const iter = (await loadDescriptor(store)).keyIter;
    if (next === null && key !== null && await opens(key, newPassword, iter)) {
      // Done already (a rerun after a failure to remove the lock, say).
      return {
        metas: 0,
        finishedInterrupted: false,
        restarted: false,
        alreadyChanged: true,
        durationMs: performance.now() - started,
      };
    }
    if (!(sameBytes(key, next) && await opens(next!, newPassword, iter))) throw err;
  }
  const iter = repo?.descriptor.keyIter ?? (await loadDescriptor(store)).keyIter;
  const lock = await acquireLock(store, "passwd", opts.host, opts.lock);
  let summary: PasswdSummary;
  try {
    summary = await change();
  } catch (err) {
    await lock.release().catch(() => {}); // the first error is the one to report
    throw err;
  }
  try {
    await lock.release();
  } catch (err) {
    throw new S3BackupError(
      `The password was changed, but the lock ${lock.key} could not be removed ` +
        `(${errorLine(err)}): remove it, or backups will refuse to start for up to 2 hours`,
      { cause: err },
    );
  }
  return summary;

  async function change(): Promise<PasswdSummary> {
    let st = await scan(store);
    let finishedInterrupted = false;
    const committed = st.next !== null && sameBytes(st.key, st.next);
    if (committed) {
      const next = st.next!;
      const toNew = await opens(next, newPassword, iter);
      if (!toNew && !(await opens(next, password, iter))) {
        throw new PasswordChangePendingError(
          `An interrupted password change on ${store.location} has already taken effect, to ` +
            `another new password: run passwd again with that new password to finish it`,
        );
      }
      const target = toNew ? newPassword : password;
      const old = toNew && repo !== null ? password : null;
      await finish(store, st, target, old, iter, conc, onEvent, opts.signal);
      finishedInterrupted = true;
      if (toNew) {
        return {
          metas: st.metas.length,
          finishedInterrupted,
          restarted: false,
          alreadyChanged: false,
          durationMs: performance.now() - started,
        };
      }
      // `password` was the interrupted change's new password: now change it to `newPassword`.
      st = await scan(store);
      repo = await openRepository(store, password);
    }
    if (repo === null) {
      throw new WrongPasswordError(
        "Wrong password: it does not open this repository's key (s3backup.key)",
      );
    }
    const restarted = st.next !== null;
    if (st.key === null) throw new S3BackupError(`No ${KEY_NAME} in ${store.location}`);
    if (await opens(st.key, newPassword, iter)) {
      throw new UsageError("The new password already opens this repository: nothing to change");
    }
    const oldKey = st.key;
    const dataKey = new TextDecoder().decode(repo.dataKey);
    const knownKeys = [oldKey, repo.wrappedKey];

    // (a) prepare
    opts.signal?.throwIfAborted();
    const newWrapped = await wrapDataKey(dataKey, newPassword, iter);
    await store.save(KEY_NEXT_NAME, newWrapped);
    onEvent({ type: "phase", phase: "prepare", metas: st.metas.length });
    await pool(st.metas, conc, async (m) => {
      opts.signal?.throwIfAborted();
      const text = await readMetaText(store, m, password, iter);
      await checkMetaKey(text, m, dataKey, password, iter, knownKeys);
      const body = await encryptBytes(
        te.encode(replaceWrappedKey(text, newWrapped)),
        newPassword,
        iter,
      );
      await store.save(metaNextName(m), body);
      onEvent({ type: "meta", phase: "prepare", key: m });
    });

    // (b) switch
    opts.signal?.throwIfAborted();
    onEvent({ type: "phase", phase: "switch", metas: st.metas.length });
    await store.save(KEY_PREV_NAME, oldKey);
    await store.save(KEY_NAME, newWrapped);
    await pool(st.metas, conc, async (m) => {
      opts.signal?.throwIfAborted();
      await switchMeta(store, m, await readAll(await store.load(metaNextName(m))));
      onEvent({ type: "meta", phase: "switch", key: m });
    });

    // (c) cleanup
    await cleanup(store, st.metas, onEvent);
    return {
      metas: st.metas.length,
      finishedInterrupted,
      restarted,
      alreadyChanged: false,
      durationMs: performance.now() - started,
    };
  }
}

/** The checked plaintext of meta `m`: M, else `passwd/next/M`, else `passwd/prev/M`. */
async function readMetaText(
  store: Store,
  m: string,
  password: Uint8Array,
  iter: number,
): Promise<string> {
  let first: unknown = null;
  for (const name of metaCandidates(m)) {
    const body = await loadOptional(store, name);
    if (body === null) continue;
    try {
      return await metaText(body, password, iter, name);
    } catch (err) {
      if (!(err instanceof CorruptDataError)) throw err;
      first ??= err;
    }
  }
  throw new CorruptDataError(
    `Cannot change the password: ${m} does not open with the current password` +
      (first instanceof Error ? ` (${first.message})` : ""),
  );
}

/** Checks that the meta's own wrapped key holds the repository's data key. */
async function checkMetaKey(
  text: string,
  m: string,
  dataKey: string,
  password: Uint8Array,
  iter: number,
  known: Uint8Array[],
): Promise<void> {
  const wrapped = parseMeta(text).header.wrappedKey;
  if (known.some((k) => sameBytes(k, wrapped))) return;
  let key: string | null = null;
  try {
    key = await unwrapDataKey(wrapped, password, iter);
  } catch (err) {
    if (!(err instanceof WrongPasswordError)) throw err;
  }
  if (key !== dataKey) {
    throw new CorruptDataError(
      `Cannot change the password: the wrapped-key of ${m} does not hold this repository's ` +
        `data key (it does not open with the current password)`,
    );
  }
  known.push(wrapped);
}

/** M := new bytes, after saving its current bytes as `passwd/prev/M` (unless already new). */
async function switchMeta(store: Store, m: string, newBytes: Uint8Array): Promise<void> {
  const cur = await loadOptional(store, m);
  if (cur === null || sameBytes(cur, newBytes)) return;
  await store.save(metaPrevName(m), cur);
  await store.save(m, newBytes);
}

/** (c): every `passwd/next/*`, then every `passwd/prev/*`, then `.prev`, then `.next`. */
async function cleanup(
  store: Store,
  metas: string[],
  onEvent: (e: PasswdEvent) => void,
): Promise<void> {
  onEvent({ type: "phase", phase: "cleanup", metas: metas.length });
  const next = new Set(metas.map(metaNextName));
  const prev = new Set(metas.map(metaPrevName));
  for await (const o of store.list(PASSWD_PREFIX)) {
    if (o.name.startsWith(PASSWD_NEXT_PREFIX)) next.add(o.name);
    else prev.add(o.name);
  }
  await store.remove([...next]);
  await store.remove([...prev]);
  await store.remove([KEY_PREV_NAME]);
  await store.remove([KEY_NEXT_NAME]);
}

/**
 * Finishes a change that has taken effect (`s3backup.key` = `.next`, which `target` opens):
 * every meta with a prepared copy is switched to it; a meta without one (cleanup had begun)
 * must already open with `target`, or is re-encrypted from `old` when given. Then cleanup.
 */
async function finish(
  store: Store,
  st: Scan,
  target: Uint8Array,
  old: Uint8Array | null,
  iter: number,
  conc: number,
  onEvent: (e: PasswdEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const newWrapped = st.next!;
  onEvent({ type: "phase", phase: "finish", metas: st.metas.length });
  await pool(st.metas, conc, async (m) => {
    signal?.throwIfAborted();
    const nx = metaNextName(m);
    let prepared = st.passwdObjects.has(nx) ? await loadOptional(store, nx) : null;
    if (prepared === null) {
      const cur = await loadOptional(store, m);
      if (cur === null) return;
      try {
        await metaText(cur, target, iter, m);
        return; // already switched
      } catch (err) {
        if (!(err instanceof CorruptDataError) || old === null) throw err;
      }
      const text = await readMetaText(store, m, old, iter);
      prepared = await encryptBytes(te.encode(replaceWrappedKey(text, newWrapped)), target, iter);
      await store.save(nx, prepared);
    }
    await switchMeta(store, m, prepared);
    onEvent({ type: "meta", phase: "finish", key: m });
  });
  await cleanup(store, st.metas, onEvent);
}
