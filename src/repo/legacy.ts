/**
 * Format 1 buckets (the original `s3backup.py`, FORMAT.md §8), read-only: opening one and
 * loading its metas. The pure part (key derivation, decryption, meta text) is format/legacy.ts.
 */
import { KEY_NAME, META_PREFIX } from "../format/layout.ts";
import {
  legacyDecryptBytes,
  type LegacyMeta,
  parseLegacyMeta,
  parseLegacyMetaName,
} from "../format/legacy.ts";
import type { Store } from "../store/store.ts";
import { readAll } from "../util/bytes.ts";
import { CorruptDataError, WrongPasswordError } from "../util/errors.ts";
import { listRepository } from "./listing.ts";

/** A format 1 bucket, opened with its password (nothing checks it before a meta is read). */
export interface LegacyRepository {
  kind: "legacy";
  store: Store;
  password: Uint8Array;
}

export function isLegacyRepository(r: unknown): r is LegacyRepository {
  return typeof r === "object" && r !== null && (r as { kind?: unknown }).kind === "legacy";
}

/** A format 1 bucket: no s3backup.key, and at least one format 1 meta. */
export async function isLegacyStore(store: Store): Promise<boolean> {
  if ((await store.stat(KEY_NAME)) !== null) return false;
  return (await listRepository(store, META_PREFIX)).legacyMetas.length > 0;
}

/** Loads and decrypts a format 1 meta. Throws WrongPasswordError if it does not open. */
export async function loadLegacyMeta(repo: LegacyRepository, key: string): Promise<LegacyMeta> {
  const name = parseLegacyMetaName(key);
  if (!name) throw new CorruptDataError(`${key} is not an s3backup.py meta name`);
  const body = await readAll(await repo.store.load(key));
  let plain: Uint8Array;
  try {
    plain = await legacyDecryptBytes(body, repo.password);
  } catch (err) {
    throw new WrongPasswordError(
      `Wrong password (or corrupt meta): ${key} does not decrypt`,
      { cause: err },
    );
  }
  return parseLegacyMeta(plain, key, name.time, name.name);
}
