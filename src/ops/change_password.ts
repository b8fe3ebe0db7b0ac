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
 * `passwd/prev/M` (`openRepository`, `loadMeta` in repo/repository.ts). Until (c) starts the old password opens
 * everything; once (a) is done the new one does.
 *
 * A rerun after an interruption: if `s3backup.key` is not yet the bytes of `.next`, nothing
 * has taken effect and the change starts over (to whatever new password is given). If it is,
 * the change has taken effect: it is finished with the copies already made (the new password
 * must be the same; or, given as the current password, it is finished and then changed again).
 */
import { encryptBytes } from "../format/container.ts";
import { unwrapDataKey, wrapDataKey } from "../format/key_wrap.ts";
import {
  KEY_NAME,
  KEY_NEXT_NAME,
  KEY_PREV_NAME,
  metaCandidates,
  metaNextName,
  metaPrevName,
  PASSWD_NEXT_PREFIX,
  PASSWD_PREFIX,
} from "../format/layout.ts";
import { isMetaMagic, parseMeta } from "../format/meta.ts";
import { listRepository } from "../repo/listing.ts";
import { type LockOptions, withLock } from "../repo/lock.ts";
import {
  decryptMeta,
  loadDescriptor,
  loadOptional,
  openRepository,
  PasswordChangePendingError,
  type Repository,
} from "../repo/repository.ts";
import type { Store } from "../store/store.ts";
import { encodeBase64 } from "../util/base64.ts";
import { readAll, sameBytes } from "../util/bytes.ts";
import { CorruptDataError, S3BackupError, UsageError, WrongPasswordError } from "../util/errors.ts";
import { pool } from "../util/pool.ts";

const te = new TextEncoder();

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

/** The meta plaintext with its `wrapped-key` header replaced; every other byte unchanged. */
export function replaceWrappedKey(text: string, wrappedKey: Uint8Array): string {
  const lines = text.split("\n");
  if (!isMetaMagic(lines[0]!)) throw new CorruptDataError("not a meta file");
  for (let i = 1; i < lines.length && lines[i] !== "entries"; i++) {
    if (lines[i]!.startsWith("wrapped-key ")) {
      lines[i] = `wrapped-key ${encodeBase64(wrappedKey)}`;
      return lines.join("\n");
    }
  }
  throw new CorruptDataError("meta file has no wrapped-key header");
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
  const listing = await listRepository(store);
  const metas = listing.metas.map((m) => m.key).sort();
  const [key, next] = await Promise.all([
    loadOptional(store, KEY_NAME),
    loadOptional(store, KEY_NEXT_NAME),
  ]);
  return { key, next, metas, passwdObjects: listing.passwd };
}

/** What the phases of one change share. */
interface Change {
  store: Store;
  password: Uint8Array;
  newPassword: Uint8Array;
  iter: number;
  conc: number;
  onEvent: (e: PasswdEvent) => void;
  signal?: AbortSignal;
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
  const summary = (r: Omit<PasswdSummary, "durationMs">): PasswdSummary => ({
    ...r,
    durationMs: performance.now() - started,
  });
  // Check the passwords before writing anything (the lock included).
  const repo = await checkPasswords(store, password, newPassword);
  if (repo === "done") {
    return summary({
      metas: 0,
      finishedInterrupted: false,
      restarted: false,
      alreadyChanged: true,
    });
  }
  const iter = repo?.descriptor.keyIter ?? (await loadDescriptor(store)).keyIter;
  const c: Change = { store, password, newPassword, iter, conc: opts.concurrency ?? 4, onEvent };
  if (opts.signal) c.signal = opts.signal;
  return await withLock(store, "passwd", opts.host, opts.lock ?? {}, async () => {
    return summary({ ...await change(c, repo), alreadyChanged: false });
  });
}

/**
 * The repository `password` opens. When it opens none: null if an interrupted change that has
 * taken effect can be finished with `newPassword`, "done" if `newPassword` already opens the
 * key and no change is pending; else WrongPasswordError.
 */
async function checkPasswords(
  store: Store,
  password: Uint8Array,
  newPassword: Uint8Array,
): Promise<Repository | null | "done"> {
  try {
    return await openRepository(store, password);
  } catch (err) {
    if (!(err instanceof WrongPasswordError)) throw err;
    const [key, next] = await Promise.all([
      loadOptional(store, KEY_NAME),
      loadOptional(store, KEY_NEXT_NAME),
    ]);
    const iter = (await loadDescriptor(store)).keyIter;
    // Done already (a rerun after a failure to remove the lock, say).
    if (next === null && key !== null && await opens(key, newPassword, iter)) return "done";
    if (!(sameBytes(key, next) && await opens(next!, newPassword, iter))) throw err;
    return null;
  }
}

async function change(c: Change, repo: Repository | null) {
  let st = await scan(c.store);
  let finishedInterrupted = false;
  if (st.next !== null && sameBytes(st.key, st.next)) {
    const toNew = await finishCommitted(c, st, repo !== null);
    finishedInterrupted = true;
    if (toNew) return { metas: st.metas.length, finishedInterrupted, restarted: false };
    // `password` was the interrupted change's new password: now change it to `newPassword`.
    st = await scan(c.store);
    repo = await openRepository(c.store, c.password);
  }
  if (repo === null) {
    throw new WrongPasswordError(
      "Wrong password: it does not open this repository's key (s3backup.key)",
    );
  }
  const restarted = st.next !== null;
  await changeFrom(c, st, repo);
  return { metas: st.metas.length, finishedInterrupted, restarted };
}

/** Finishes a change that has taken effect; true when it was to `newPassword`. */
async function finishCommitted(c: Change, st: Scan, haveOld: boolean): Promise<boolean> {
  const next = st.next!;
  const toNew = await opens(next, c.newPassword, c.iter);
  if (!toNew && !(await opens(next, c.password, c.iter))) {
    throw new PasswordChangePendingError(
      `An interrupted password change on ${c.store.location} has already taken effect, to ` +
        `another new password: run passwd again with that new password to finish it`,
    );
  }
  const target = toNew ? c.newPassword : c.password;
  await finish(c, st, target, toNew && haveOld ? c.password : null);
  return toNew;
}

/** (a) prepare, (b) switch, (c) cleanup, from the repository `password` opens. */
async function changeFrom(c: Change, st: Scan, repo: Repository): Promise<void> {
  const { store, password, newPassword, iter, onEvent, signal } = c;
  if (st.key === null) throw new S3BackupError(`No ${KEY_NAME} in ${store.location}`);
  if (await opens(st.key, newPassword, iter)) {
    throw new UsageError("The new password already opens this repository: nothing to change");
  }
  const oldKey = st.key;
  const dataKey = new TextDecoder().decode(repo.dataKey);
  const knownKeys = [oldKey, repo.wrappedKey];

  // (a) prepare
  signal?.throwIfAborted();
  const newWrapped = await wrapDataKey(dataKey, newPassword, iter);
  await store.save(KEY_NEXT_NAME, newWrapped);
  onEvent({ type: "phase", phase: "prepare", metas: st.metas.length });
  await pool(st.metas, c.conc, async (m) => {
    const text = await readMetaText(store, m, password, iter);
    await checkMetaKey(text, m, dataKey, password, iter, knownKeys);
    const body = await encryptBytes(
      te.encode(replaceWrappedKey(text, newWrapped)),
      newPassword,
      iter,
    );
    await store.save(metaNextName(m), body);
    onEvent({ type: "meta", phase: "prepare", key: m });
  }, signal);

  // (b) switch
  signal?.throwIfAborted();
  onEvent({ type: "phase", phase: "switch", metas: st.metas.length });
  await store.save(KEY_PREV_NAME, oldKey);
  await store.save(KEY_NAME, newWrapped);
  await pool(st.metas, c.conc, async (m) => {
    await switchMeta(store, m, await readAll(await store.load(metaNextName(m))));
    onEvent({ type: "meta", phase: "switch", key: m });
  }, signal);

  // (c) cleanup
  await cleanup(store, st.metas, onEvent);
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
      return (await decryptMeta(body, password, iter, name)).text;
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
  for (const name of (await listRepository(store, PASSWD_PREFIX)).passwd) {
    if (name.startsWith(PASSWD_NEXT_PREFIX)) next.add(name);
    else prev.add(name);
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
  c: Change,
  st: Scan,
  target: Uint8Array,
  old: Uint8Array | null,
): Promise<void> {
  const { store, iter, onEvent } = c;
  const newWrapped = st.next!;
  onEvent({ type: "phase", phase: "finish", metas: st.metas.length });
  await pool(st.metas, c.conc, async (m) => {
    const nx = metaNextName(m);
    let prepared = st.passwdObjects.has(nx) ? await loadOptional(store, nx) : null;
    if (prepared === null) {
      const cur = await loadOptional(store, m);
      if (cur === null) return;
      try {
        await decryptMeta(cur, target, iter, m);
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
  }, c.signal);
  await cleanup(store, st.metas, onEvent);
}
