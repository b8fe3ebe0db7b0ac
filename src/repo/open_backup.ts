/**
 * Opening one backup to read it (restore): the repository, or a format 1 bucket, and the meta
 * `-m` names. Nothing here writes. The password is checked before the meta is chosen; when
 * `s3backup.key` is lost, the chosen meta's copy of the key is used (repository.ts).
 */
import { DESCRIPTOR_NAME, KEY_NAME, META_PREFIX } from "../format/layout.ts";
import { parseLegacyMetaName } from "../format/legacy.ts";
import type { Meta } from "../format/meta.ts";
import type { Store } from "../store/store.ts";
import { ObjectNotFoundError } from "../util/errors.ts";
import { type LegacyRepository, loadLegacyMeta } from "./legacy.ts";
import { listRepository } from "./listing.ts";
import {
  CorruptKeyError,
  loadMeta,
  loadOptional,
  openFromMeta,
  openRepository,
  type Repository,
  startOpening,
} from "./repository.ts";
import { NoSuchBackupError, selectMeta } from "./select.ts";

export interface OpenedBackup {
  repo: Repository | LegacyRepository;
  meta: Meta;
  metaKey: string;
  /** Format 1: lines that cannot be restored. */
  problems: { path: string; message: string }[];
  /** Things to tell the user before restoring. */
  notes: string[];
}

/** A meta that vanished between the listing and the load is "no such backup". */
async function loadFound<T>(load: () => Promise<T>, key: string, location: string): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (err instanceof ObjectNotFoundError) {
      throw new NoSuchBackupError(`No backup ${key} in ${location} (see s3backup list)`);
    }
    throw err;
  }
}

/**
 * The meta `spec` names, being loaded by `load` (its failures held until awaited); null when
 * none is named (that is told once the password is known to be right).
 */
function metaBeside(
  listing: Awaited<ReturnType<typeof listRepository>>,
  spec: string,
  name: string | undefined,
  where: string,
  load: (key: string) => Promise<Meta>,
): Promise<Meta> | null {
  let key: string;
  try {
    key = selectMeta(listing.metas, spec, name, where).key;
  } catch {
    return null;
  }
  const p = load(key);
  p.catch(() => {}); // awaited later, or left when the password is wrong
  return p;
}

/**
 * Opens the backup `spec` names (see select.ts; `name` restricts `latest`), checking the
 * password. Throws WrongPasswordError when it opens neither the key nor the meta,
 * NoSuchBackupError when there is no such backup.
 */
export async function openBackup(
  store: Store,
  password: Uint8Array,
  spec: string,
  name?: string,
): Promise<OpenedBackup> {
  // The key, the descriptor and the backups, asked at once (a format 1 bucket has neither).
  const conf = loadOptional(store, DESCRIPTOR_NAME);
  conf.catch(() => {}); // met when the repository opens (a format 1 bucket: not awaited)
  const [wrappedKey, listing] = await Promise.all([
    loadOptional(store, KEY_NAME),
    listRepository(store, META_PREFIX),
  ]);
  const hasKey = wrappedKey !== null;
  const where = store.location;
  if (parseLegacyMetaName(spec) !== null || (!hasKey && listing.legacyMetas.length > 0)) {
    const key = selectMeta(listing.legacyMetas, spec, name, where).key;
    const repo: LegacyRepository = { kind: "legacy", store, password };
    const meta = await loadFound(() => loadLegacyMeta(repo, key), key, where);
    return { repo, meta, metaKey: key, problems: meta.problems, notes: meta.notes };
  }
  let why = "missing";
  if (hasKey) {
    try {
      // The meta's own key derivation runs beside the repository key's (~0.2 s each); the
      // password is judged by the repository's key first, as before.
      const opening = startOpening(store, password, wrappedKey, conf);
      const early = metaBeside(
        listing,
        spec,
        name,
        where,
        (key) =>
          opening.descriptor.then((descriptor) => loadMeta({ store, password, descriptor }, key)),
      );
      const repo = await opening.repository;
      const key = selectMeta(listing.metas, spec, name, where).key;
      const meta = await loadFound(() => early ?? loadMeta(repo, key), key, where);
      return { repo, meta, metaKey: key, problems: [], notes: [] };
    } catch (err) {
      if (!(err instanceof CorruptKeyError)) throw err;
      why = "damaged";
    }
  }
  // No usable s3backup.key: every meta carries a copy of it (FORMAT.md §5).
  if (listing.metas.length === 0) await openRepository(store, password); // "no repository"
  const key = selectMeta(listing.metas, spec, name, where).key;
  const { repo, meta } = await loadFound(() => openFromMeta(store, password, key), key, where);
  const notes = [`s3backup.key is ${why}: using the copy of the key held in ${key}`];
  return { repo, meta, metaKey: key, problems: [], notes };
}
