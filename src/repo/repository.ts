/**
 * A repository: a store plus its descriptor and data key. Opening one checks the password
 * before anything is written; creating one writes the descriptor and the wrapped key.
 *
 * This module owns the fallback chains of FORMAT.md §7: the key is read from `s3backup.key`,
 * then `.next`, then `.prev` (and, when all are lost, from a meta's `wrapped-key` copy); a meta
 * M from M, then `passwd/next/M`, then `passwd/prev/M`.
 */
import {
  decryptBytes,
  decryptStream,
  encryptBytes,
  encryptStream,
  type PreparedKey,
  prepareKey,
  SyncEncryptor,
} from "../format/container.ts";
import {
  defaultDescriptor,
  type Descriptor,
  encodeDescriptor,
  FORMAT_VERSION,
  newDescriptor,
  parseDescriptor,
} from "../format/descriptor.ts";
import { newDataKey, unwrapDataKey, wrapDataKey } from "../format/key_wrap.ts";
import {
  DESCRIPTOR_NAME,
  INDEX_PREFIX,
  KEY_CANDIDATES,
  KEY_NAME,
  KEY_NEXT_NAME,
  META_PREFIX,
  metaCandidates,
  PACK_PREFIX,
} from "../format/layout.ts";
import {
  encodeMeta,
  type Meta,
  type MetaHeader,
  parseMeta,
  type RecordedEntry,
} from "../format/meta.ts";
import type { Store } from "../store/store.ts";
import { readAll, sameBytes } from "../util/bytes.ts";
import { listRepository } from "./listing.ts";
import {
  CorruptDataError,
  ObjectExistsError,
  ObjectNotFoundError,
  S3BackupError,
  WrongPasswordError,
} from "../util/errors.ts";

const te = new TextEncoder();

export interface Repository {
  store: Store;
  descriptor: Descriptor;
  /** The data key as its 64 hex characters, UTF-8 encoded: the passphrase of data objects. */
  dataKey: Uint8Array;
  /** The bytes of s3backup.key, copied into every meta. */
  wrappedKey: Uint8Array;
  password: Uint8Array;
  /** Created by this process (createRepository): a racing creator may yet replace its key. */
  created?: boolean;
}

/**
 * `s3backup.key` does not open, but the password opens the backups (whose metas each hold a
 * copy of the key): the key object is damaged, the password is right.
 */
export class CorruptKeyError extends S3BackupError {
  constructor(message: string, readonly metaKey: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** A password change is in progress, or was interrupted and not finished. */
export class PasswordChangePendingError extends S3BackupError {}

/** An object's bytes, or null when it does not exist. */
export async function loadOptional(store: Store, name: string): Promise<Uint8Array | null> {
  try {
    return await readAll(await store.load(name));
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return null;
    throw err;
  }
}

/** Whether the store holds a repository (its key object exists). */
export async function repositoryExists(store: Store): Promise<boolean> {
  return (await store.stat(KEY_NAME)) !== null;
}

/**
 * The descriptor, or when it is lost the defaults (FORMAT.md §2): format 3 when the store
 * holds format 3 objects (one listing of `index/`, `packs/`), else format 2. `loading`: its
 * bytes, when the caller asked for them already.
 */
export async function loadDescriptor(
  store: Store,
  loading: Promise<Uint8Array | null> = loadOptional(store, DESCRIPTOR_NAME),
): Promise<Descriptor> {
  const conf = await loading;
  if (conf !== null) return parseDescriptor(new TextDecoder().decode(conf));
  for (const prefix of [INDEX_PREFIX, PACK_PREFIX]) {
    for await (const _ of store.list(prefix)) return defaultDescriptor(undefined, 3);
  }
  return defaultDescriptor();
}

/**
 * `s3backup upgrade` (FORMAT.md §8): rewrites a format 2 descriptor with `format=3`, every
 * other line kept, and nothing else. Returns the format found (3: nothing was written).
 */
export async function upgradeDescriptor(store: Store): Promise<number> {
  const conf = await loadOptional(store, DESCRIPTOR_NAME);
  if (conf === null) {
    throw new S3BackupError(
      `${DESCRIPTOR_NAME} is missing in ${store.location}: nothing was written (a backup by ` +
        "this version writes it again)",
    );
  }
  const text = new TextDecoder().decode(conf);
  const d = parseDescriptor(text);
  if (d.format === FORMAT_VERSION) return d.format;
  const upgraded = text.replace(/^format=2[ \t]*$/m, `format=${FORMAT_VERSION}`);
  parseDescriptor(upgraded); // what readers will find
  await store.save(DESCRIPTOR_NAME, te.encode(upgraded));
  return d.format;
}

/**
 * Opens the repository with `password` (`loaded`: the bytes of s3backup.key, when the caller
 * read them already; `loadingDescriptor`: its descriptor, being read by the caller). Throws
 * WrongPasswordError if the password does not open the key (nor, after an interrupted password
 * change, `.next` or `.prev`: `wrappedKey` is then the one that opened), and S3BackupError if
 * the store holds no repository.
 */
export async function openRepository(
  store: Store,
  password: Uint8Array,
  loaded?: Uint8Array,
  loadingDescriptor?: Promise<Descriptor>,
): Promise<Repository> {
  const [first, ...fallbacks] = KEY_CANDIDATES;
  const [wrappedKey, descriptor] = await Promise.all([
    loaded ?? loadOptional(store, first),
    loadingDescriptor ?? loadDescriptor(store),
  ]);
  if (wrappedKey === null) {
    throw new S3BackupError(
      `No s3backup repository at ${store.location} (no ${KEY_NAME}): run a backup first`,
    );
  }
  const open = async (wrapped: Uint8Array): Promise<Repository> => {
    const dataKey = await unwrapDataKey(wrapped, password, descriptor.keyIter);
    return { store, descriptor, dataKey: te.encode(dataKey), wrappedKey: wrapped, password };
  };
  try {
    return await open(wrappedKey);
  } catch (err) {
    if (!(err instanceof WrongPasswordError)) throw err;
    for (const name of fallbacks) {
      const other = await loadOptional(store, name);
      if (other === null) continue;
      try {
        return await open(other);
      } catch (e) {
        if (!(e instanceof WrongPasswordError)) throw e;
      }
    }
    throw await wrongPasswordOrCorruptKey(store, password, descriptor, err);
  }
}

/**
 * A repository being opened: its descriptor (one GET) is known well before the key's
 * derivation (~0.2 s) ends, so that a writer holding its lock can start what needs only the
 * format (its listings).
 */
export interface Opening {
  descriptor: Promise<Descriptor>;
  repository: Promise<Repository>;
}

/**
 * openRepository, its descriptor told apart (Opening); `loaded`, `conf`: the key's and the
 * descriptor's bytes, when the caller asked for them already.
 */
export function startOpening(
  store: Store,
  password: Uint8Array,
  loaded?: Uint8Array,
  conf?: Promise<Uint8Array | null>,
): Opening {
  const descriptor = loadDescriptor(store, conf);
  descriptor.catch(() => {}); // met through `repository`, which awaits it
  return { descriptor, repository: openRepository(store, password, loaded, descriptor) };
}

/**
 * When no key opens: a wrong password, unless the password opens one of the newest metas (then
 * the key is damaged: CorruptKeyError naming that meta, whose copy of the key readers can use).
 */
async function wrongPasswordOrCorruptKey(
  store: Store,
  password: Uint8Array,
  descriptor: Descriptor,
  wrong: WrongPasswordError,
): Promise<S3BackupError> {
  const metas = (await listRepository(store, META_PREFIX)).metas;
  for (const m of metas.slice(-2).reverse()) {
    const body = await loadOptional(store, m.key);
    if (body === null) continue;
    try {
      await decryptMeta(body, password, descriptor.keyIter, m.key);
    } catch (err) {
      if (err instanceof CorruptDataError) continue;
      throw err;
    }
    return new CorruptKeyError(
      `${KEY_NAME} in ${store.location} is damaged: the password opens the backups ` +
        `(${m.key}) but not the key; restore and verify use the copy of the key each backup holds`,
      m.key,
      { cause: wrong },
    );
  }
  if (metas.length > 0) return wrong;
  return new WrongPasswordError(
    `${wrong.message}; with no backup here to try the password on, a wrong password cannot be ` +
      `told from a replaced ${KEY_NAME}`,
    { cause: wrong },
  );
}

/**
 * Opens a repository whose `s3backup.key` is lost, with the copy of the key held in meta `key`
 * (FORMAT.md §5): the meta opens with the password alone. Returns the repository and the meta.
 * Throws WrongPasswordError when the meta does not open.
 */
export async function openFromMeta(
  store: Store,
  password: Uint8Array,
  key: string,
): Promise<{ repo: Repository; meta: Meta }> {
  const descriptor = await loadDescriptor(store);
  const partial: Repository = {
    store,
    descriptor,
    dataKey: new Uint8Array(),
    wrappedKey: new Uint8Array(),
    password,
  };
  let meta: Meta;
  try {
    meta = await loadMeta(partial, key);
  } catch (err) {
    if (err instanceof CorruptDataError) {
      throw new WrongPasswordError(`Wrong password (or corrupt meta): ${key} does not open`, {
        cause: err,
      });
    }
    throw err;
  }
  const dataKey = await unwrapDataKey(meta.header.wrappedKey, password, descriptor.keyIter);
  const repo = { ...partial, dataKey: te.encode(dataKey), wrappedKey: meta.header.wrappedKey };
  return { repo, meta };
}

/** Another process created the repository first; nothing this one wrote stays. */
export class RepositoryExistsError extends S3BackupError {}

export interface CreateOptions {
  /**
   * On a store that ignores conditional creates: how long to wait before reading back what was
   * written, so that a racing writer's object lands first and is seen (default 5 s).
   */
  settleMs?: number;
  /**
   * What is known of the store, shared between calls: with `honoursConditional` the second
   * create that probes it is skipped; a probe sets it.
   */
  knowledge?: { honoursConditional?: boolean };
}

/** A body to create from a file or the like: its size, and a fresh stream of it each time. */
export interface Reopenable {
  size: number;
  open(): ReadableStream<Uint8Array>;
}

/**
 * Creates object `name` holding `body` exactly once, however many writers race: false when it
 * exists already, or when another writer's bytes took its place. The create is conditional
 * (`ifAbsent`); a second conditional create of the same bytes tells whether the store honoured
 * the condition, and when it did not the object is read back after `settleMs` and compared, so
 * that of racing writers exactly one finds its own bytes.
 */
export async function createOnce(
  store: Store,
  name: string,
  body: Uint8Array | Reopenable,
  opts: CreateOptions = {},
): Promise<boolean> {
  const create = async (): Promise<boolean> => {
    try {
      if (body instanceof Uint8Array) await store.save(name, body, { ifAbsent: true });
      else await store.save(name, body.open(), { ifAbsent: true, size: body.size });
      return true;
    } catch (err) {
      if (err instanceof ObjectExistsError) return false;
      throw err;
    }
  };
  if (!(await create())) return false;
  if (opts.knowledge?.honoursConditional) return true;
  const honoured = !(await create()); // then the object is ours
  if (opts.knowledge) opts.knowledge.honoursConditional = honoured;
  if (honoured) return true;
  await new Promise((r) => setTimeout(r, opts.settleMs ?? 5000));
  const mine = body instanceof Uint8Array ? body : await readAll(body.open());
  return sameBytes(await loadOptional(store, name), mine);
}

/**
 * Opens the repository to read it: with `s3backup.key`, or when that is damaged (CorruptKeyError)
 * with the copy of the key in the newest meta the password opens; `damage` then says so.
 */
export async function openForReading(
  store: Store,
  password: Uint8Array,
): Promise<{ repo: Repository; damage?: string }> {
  try {
    return { repo: await openRepository(store, password) };
  } catch (err) {
    if (!(err instanceof CorruptKeyError)) throw err;
    return { repo: (await openFromMeta(store, password, err.metaKey)).repo, damage: err.message };
  }
}

/**
 * Creates a repository in an empty store, exactly once however many processes try at the same
 * moment (FORMAT.md §3.2): the key is created with `createOnce`, and a creator that loses gets
 * RepositoryExistsError before it uploads anything (it then opens the repository). The
 * descriptor is written by the winner only, after that.
 */
export async function createRepository(
  store: Store,
  password: Uint8Array,
  opts: CreateOptions & { format?: number } = {},
): Promise<Repository> {
  const descriptor = { ...newDescriptor(), ...(opts.format ? { format: opts.format } : {}) };
  const dataKey = newDataKey();
  const wrappedKey = await wrapDataKey(dataKey, password, descriptor.keyIter);
  // Looked at again right before the write (the caller's look may be a password prompt ago):
  // on a store that ignores conditional creates, the settle below covers the rest.
  const exists = (await store.stat(KEY_NAME)) !== null;
  if (exists || !(await createOnce(store, KEY_NAME, wrappedKey, opts))) {
    throw new RepositoryExistsError(
      `Another process created the repository at ${store.location} meanwhile`,
    );
  }
  await store.save(DESCRIPTOR_NAME, te.encode(encodeDescriptor(descriptor)));
  return { store, descriptor, dataKey: te.encode(dataKey), wrappedKey, password, created: true };
}

/**
 * For writers (backup, prune), right after taking their lock: throws when a password change is
 * pending (`s3backup.key.next` exists) or `s3backup.key` is no longer the key `repo` was opened
 * with (the password changed between opening and locking: the writer would write metas with the
 * old password). `repo` may still be opening: the store is asked meanwhile.
 */
export async function checkPasswordUnchanged(
  store: Store,
  repo: Repository | Promise<Repository>,
): Promise<void> {
  const [pending, key] = await Promise.all([
    store.stat(KEY_NEXT_NAME),
    loadOptional(store, KEY_NAME),
  ]);
  if (pending !== null) {
    throw new PasswordChangePendingError(
      `A password change is in progress on ${store.location}, or was interrupted: ` +
        `wait for it, or run 's3backup passwd' again to finish it`,
    );
  }
  if (!sameBytes(key, (await repo).wrappedKey)) {
    throw new S3BackupError(
      `The password of ${store.location} was changed while this command started: run it again`,
    );
  }
}

/**
 * What `s3backup.key` holds now, against the key `repo` was opened with: the same bytes; the
 * same data key under another wrapping (a password change); or a foreign data key (another
 * process created the repository at the same moment on a store that ignores conditional
 * creates), or a key that no longer opens: then objects encrypted with `repo` are unreadable
 * to everyone else.
 */
export async function keyState(repo: Repository): Promise<"same" | "rewrapped" | "foreign"> {
  const now = await loadOptional(repo.store, KEY_NAME);
  if (sameBytes(now, repo.wrappedKey)) return "same";
  if (now === null) return "foreign";
  try {
    const key = await unwrapDataKey(now, repo.password, repo.descriptor.keyIter);
    return key === new TextDecoder().decode(repo.dataKey) ? "rewrapped" : "foreign";
  } catch (err) {
    if (err instanceof WrongPasswordError) return "foreign";
    throw err;
  }
}

/** A multipart upload begun longer ago than this is a killed run's leftover. */
export const STALE_UPLOAD_MS = 24 * 60 * 60 * 1000;

/**
 * Aborts the multipart uploads killed runs left (begun over a day before `now`), best effort:
 * a store without them, or credentials that may not abort, give 0. Returns how many.
 */
export async function abortStaleUploads(store: Store, now: Date): Promise<number> {
  try {
    return (await store.abortUploads?.(new Date(now.getTime() - STALE_UPLOAD_MS))) ?? 0;
  } catch {
    return 0;
  }
}

/** A stream that encrypts a data object's content with the data key. */
export function encryptObject(repo: Repository): TransformStream<Uint8Array, Uint8Array> {
  return encryptStream(repo.dataKey, repo.descriptor.dataIter);
}

/** A stream that decrypts a data object (the caller checks the MD5 of what comes out). */
export function decryptObject(repo: Repository): TransformStream<Uint8Array, Uint8Array> {
  return decryptStream(repo.dataKey, repo.descriptor.dataIter);
}

/** Decrypts a small data object at once (CorruptDataError; the caller checks the MD5). */
export function decryptSmallObject(repo: Repository, body: Uint8Array): Promise<Uint8Array> {
  return decryptBytes(body, repo.dataKey, repo.descriptor.dataIter);
}

export function encryptSmallObject(repo: Repository, data: Uint8Array): Promise<Uint8Array> {
  return encryptBytes(data, repo.dataKey, repo.descriptor.dataIter);
}

/** A data object's container written piece by piece (a pack, as it fills: pack_spool.ts). */
export function dataEncryptor(repo: Repository): SyncEncryptor {
  return new SyncEncryptor(repo.dataKey, repo.descriptor.dataIter);
}

/**
 * Starts the password's key derivation for a meta (about 0.2 s of PBKDF2 off the main thread),
 * so that a backup can walk meanwhile; give it to encryptMeta.
 */
export function prepareMetaKey(repo: Repository): PreparedKey {
  return prepareKey(repo.password, repo.descriptor.keyIter);
}

/** A meta file's bytes: encrypted with the password, so that it opens with it alone. */
export async function encryptMeta(
  repo: Repository,
  header: Omit<MetaHeader, "wrappedKey">,
  entries: Iterable<RecordedEntry>,
  prepared?: PreparedKey,
): Promise<Uint8Array> {
  const text = te.encode(encodeMeta({ ...header, wrappedKey: repo.wrappedKey }, entries));
  if (prepared === undefined) {
    return await encryptBytes(text, repo.password, repo.descriptor.keyIter);
  }
  const iter = repo.descriptor.keyIter;
  return await readAll(
    ReadableStream.from([text]).pipeThrough(
      encryptStream(repo.password, iter, undefined, prepared),
    ),
  );
}

/** Encrypts and stores a meta file (overwriting: tests and repairs; backups use createOnce). */
export async function saveMeta(
  repo: Repository,
  key: string,
  header: Omit<MetaHeader, "wrappedKey">,
  entries: Iterable<RecordedEntry>,
): Promise<number> {
  const body = await encryptMeta(repo, header, entries);
  await repo.store.save(key, body);
  return body.length;
}

/**
 * Loads, decrypts and parses a meta; when it does not open, its copies left by an interrupted
 * password change (`passwd/next/<key>`, `passwd/prev/<key>`). Throws CorruptDataError (about
 * `key` itself) if none opens or parses. A meta's key derives from the password and the
 * descriptor alone: it can be opened while the repository's key is.
 */
export async function loadMeta(
  repo: Pick<Repository, "store" | "password" | "descriptor">,
  key: string,
): Promise<Meta> {
  const [first, ...fallbacks] = metaCandidates(key);
  const load = async (name: string) => {
    const body = await readAll(await repo.store.load(name));
    return (await decryptMeta(body, repo.password, repo.descriptor.keyIter, name)).meta;
  };
  try {
    return await load(first!);
  } catch (err) {
    if (!(err instanceof CorruptDataError)) throw err;
    for (const name of fallbacks) {
      try {
        return await load(name);
      } catch (e) {
        if (!(e instanceof CorruptDataError || e instanceof ObjectNotFoundError)) throw e;
      }
    }
    throw err;
  }
}

/**
 * A meta object (`name` for messages) decrypted with `password`: its plaintext, checked to be
 * UTF-8 and a well-formed format 2 meta, and what it says. Throws CorruptDataError.
 */
export async function decryptMeta(
  body: Uint8Array,
  password: Uint8Array,
  iter: number,
  name: string,
): Promise<{ text: string; meta: Meta }> {
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
    return { text, meta: parseMeta(text) };
  } catch (err) {
    throw new CorruptDataError(`Cannot read ${name}: ${(err as Error).message}`, { cause: err });
  }
}
