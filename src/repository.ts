/**
 * A repository: a store plus its descriptor and data key. Opening one checks the password
 * before anything is written; creating one writes the descriptor and the wrapped key.
 */
import { decryptBytes, decryptStream, encryptBytes, encryptStream } from "./crypto.ts";
import { KEY_NAME, newDataKey, unwrapDataKey, wrapDataKey } from "./data_key.ts";
import {
  defaultDescriptor,
  type Descriptor,
  DESCRIPTOR_NAME,
  encodeDescriptor,
  newDescriptor,
  parseDescriptor,
} from "./descriptor.ts";
import {
  CorruptDataError,
  ObjectNotFoundError,
  S3BackupError,
  WrongPasswordError,
} from "./errors.ts";
import { encodeMeta, type Entry, type Meta, type MetaHeader, parseMeta } from "./meta.ts";
import { readAll, type Store } from "./store/store.ts";

const te = new TextEncoder();

/**
 * What an interrupted password change leaves (FORMAT.md §7): readers fall back to the key in
 * `.next` then `.prev`, and to a meta's copies under `passwd/next/` then `passwd/prev/`.
 */
export const KEY_NEXT_NAME = "s3backup.key.next";
export const KEY_PREV_NAME = "s3backup.key.prev";
export const PASSWD_PREFIX = "passwd/";

export function metaNextName(meta: string): string {
  return `${PASSWD_PREFIX}next/${meta}`;
}

export function metaPrevName(meta: string): string {
  return `${PASSWD_PREFIX}prev/${meta}`;
}

export interface Repository {
  store: Store;
  descriptor: Descriptor;
  /** The data key as its 64 hex characters, UTF-8 encoded: the passphrase of data objects. */
  dataKey: Uint8Array;
  /** The bytes of s3backup.key, copied into every meta. */
  wrappedKey: Uint8Array;
  password: Uint8Array;
}

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
 * Opens the repository with `password`. Throws WrongPasswordError if the password does not
 * open the key (nor, after an interrupted password change, `.next` or `.prev`: `wrappedKey` is
 * then the one that opened), and S3BackupError if the store holds no repository.
 */
export async function openRepository(store: Store, password: Uint8Array): Promise<Repository> {
  const wrappedKey = await loadOptional(store, KEY_NAME);
  if (wrappedKey === null) {
    throw new S3BackupError(
      `No s3backup repository at ${store.location} (no ${KEY_NAME}): run a backup first`,
    );
  }
  const conf = await loadOptional(store, DESCRIPTOR_NAME);
  const descriptor = conf === null
    ? defaultDescriptor()
    : parseDescriptor(new TextDecoder().decode(conf));
  try {
    const dataKey = await unwrapDataKey(wrappedKey, password, descriptor.keyIter);
    return { store, descriptor, dataKey: te.encode(dataKey), wrappedKey, password };
  } catch (err) {
    if (!(err instanceof WrongPasswordError)) throw err;
    for (const name of [KEY_NEXT_NAME, KEY_PREV_NAME]) {
      const other = await loadOptional(store, name);
      if (other === null) continue;
      try {
        const dataKey = await unwrapDataKey(other, password, descriptor.keyIter);
        return { store, descriptor, dataKey: te.encode(dataKey), wrappedKey: other, password };
      } catch (e) {
        if (!(e instanceof WrongPasswordError)) throw e;
      }
    }
    throw err;
  }
}

/**
 * Creates a repository in an empty store: the wrapped key first, then the descriptor. Reads the
 * key back so that two first backups racing each other cannot both believe they won.
 */
export async function createRepository(store: Store, password: Uint8Array): Promise<Repository> {
  const descriptor = newDescriptor();
  const dataKey = newDataKey();
  const wrappedKey = await wrapDataKey(dataKey, password, descriptor.keyIter);
  await store.save(KEY_NAME, wrappedKey);
  await store.save(DESCRIPTOR_NAME, te.encode(encodeDescriptor(descriptor)));
  const back = await loadOptional(store, KEY_NAME);
  if (
    back === null || back.length !== wrappedKey.length || back.some((b, i) => b !== wrappedKey[i])
  ) {
    throw new S3BackupError(
      `Another process initialised ${store.location} at the same time; run the backup again`,
    );
  }
  return { store, descriptor, dataKey: te.encode(dataKey), wrappedKey, password };
}

/** A stream that encrypts a data object's content with the data key. */
export function encryptObject(repo: Repository): TransformStream<Uint8Array, Uint8Array> {
  return encryptStream(repo.dataKey, repo.descriptor.dataIter);
}

/** A stream that decrypts a data object (the caller checks the MD5 of what comes out). */
export function decryptObject(repo: Repository): TransformStream<Uint8Array, Uint8Array> {
  return decryptStream(repo.dataKey, repo.descriptor.dataIter);
}

export function encryptSmallObject(repo: Repository, data: Uint8Array): Promise<Uint8Array> {
  return encryptBytes(data, repo.dataKey, repo.descriptor.dataIter);
}

/** Encrypts and stores a meta file (with the password, so that it opens with it alone). */
export async function saveMeta(
  repo: Repository,
  key: string,
  header: Omit<MetaHeader, "wrappedKey">,
  entries: Iterable<Entry>,
): Promise<number> {
  const text = encodeMeta({ ...header, wrappedKey: repo.wrappedKey }, entries);
  const body = await encryptBytes(te.encode(text), repo.password, repo.descriptor.keyIter);
  await repo.store.save(key, body);
  return body.length;
}

/**
 * Loads, decrypts and parses a meta; when it does not open, its copies left by an interrupted
 * password change (`passwd/next/<key>`, `passwd/prev/<key>`). Throws CorruptDataError (about
 * `key` itself) if none opens or parses.
 */
export async function loadMeta(repo: Repository, key: string): Promise<Meta> {
  try {
    return await loadMetaObject(repo, key);
  } catch (err) {
    if (!(err instanceof CorruptDataError)) throw err;
    for (const name of [metaNextName(key), metaPrevName(key)]) {
      try {
        return await loadMetaObject(repo, name);
      } catch (e) {
        if (!(e instanceof CorruptDataError || e instanceof ObjectNotFoundError)) throw e;
      }
    }
    throw err;
  }
}

async function loadMetaObject(repo: Repository, key: string): Promise<Meta> {
  const body = await readAll(await repo.store.load(key));
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(
      await decryptBytes(body, repo.password, repo.descriptor.keyIter),
    );
  } catch (err) {
    throw new CorruptDataError(
      `Cannot decrypt ${key}: corrupt, or written with another password`,
      { cause: err },
    );
  }
  try {
    return parseMeta(text);
  } catch (err) {
    throw new CorruptDataError(`Cannot read ${key}: ${(err as Error).message}`, { cause: err });
  }
}
