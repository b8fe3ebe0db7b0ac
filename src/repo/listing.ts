/**
 * The one listing of a store, classified by object name (format/layout.ts `classify`). Every
 * command that needs to know what a repository holds lists it once, through here.
 */
import { classify, compareMetaNames, type MetaName, parseLockName } from "../format/layout.ts";
import { parseLegacyMetaName } from "../format/legacy.ts";
import type { ObjectInfo, Store } from "../store/store.ts";

/** A meta found in the store: its name parts and its encrypted size. */
export interface MetaObject extends MetaName {
  size: number;
}

/** A lock object found in the store (its body is read by repo/lock.ts). */
export interface LockObject {
  name: string;
  kind: string;
  time: Date;
  mtime: Date;
}

export interface Listing {
  /**
   * Objects holding contents, by name: format 2 `<md5>`, format 3 `packs/<id>` and
   * `data/<md5>[.gz]` (FORMAT.md §4).
   */
  objects: Map<string, ObjectInfo>;
  /** Format 3 `index/<id>` objects, by name. */
  indexes: Map<string, ObjectInfo>;
  /** Format 2 metas, oldest first. */
  metas: MetaObject[];
  /** Format 1 (s3backup.py) metas, oldest first. */
  legacyMetas: MetaObject[];
  /** Names that start with `meta_` but are neither format 2 nor format 1 metas. */
  strangeMetas: string[];
  /** restore-kit/ objects, by name. */
  kit: Map<string, ObjectInfo>;
  /** passwd/ objects (copies of an interrupted password change). */
  passwd: Set<string>;
  /** Lock objects with a valid name. */
  locks: LockObject[];
  /** s3backup.key, s3backup.key.next and s3backup.conf are present. */
  hasKey: boolean;
  hasKeyNext: boolean;
  hasDescriptor: boolean;
}

/**
 * Lists `store` once (under `prefix`, e.g. `meta_` or `locks/`, when given) and classifies.
 * With `onData`, data objects are passed to it instead of kept in `objects` (a backup keeps
 * only their sizes, of maybe millions).
 */
export async function listRepository(
  store: Store,
  prefix = "",
  onData?: (o: ObjectInfo) => void,
): Promise<Listing> {
  const l: Listing = {
    objects: new Map(),
    indexes: new Map(),
    metas: [],
    legacyMetas: [],
    strangeMetas: [],
    kit: new Map(),
    passwd: new Set(),
    locks: [],
    hasKey: false,
    hasKeyNext: false,
    hasDescriptor: false,
  };
  for await (const o of store.list(prefix)) {
    if (onData !== undefined && classify(o.name).kind === "data") onData(o);
    else add(l, o);
  }
  l.metas.sort(compareMetaNames);
  l.legacyMetas.sort(compareMetaNames);
  return l;
}

function add(l: Listing, o: ObjectInfo): void {
  const c = classify(o.name);
  switch (c.kind) {
    case "data":
    case "pack":
    case "data3":
      l.objects.set(o.name, o);
      break;
    case "index":
      l.indexes.set(o.name, o);
      break;
    case "meta":
      l.metas.push({ ...c.meta, size: o.size });
      break;
    case "meta-like": {
      const legacy = parseLegacyMetaName(o.name);
      if (legacy) l.legacyMetas.push({ ...legacy, size: o.size });
      else l.strangeMetas.push(o.name);
      break;
    }
    case "kit":
      l.kit.set(o.name, o);
      break;
    case "passwd":
      l.passwd.add(o.name);
      break;
    case "lock": {
      const n = parseLockName(o.name);
      if (n) l.locks.push({ name: o.name, kind: n.kind, time: n.time, mtime: o.mtime });
      break;
    }
    case "key":
      l.hasKey = true;
      break;
    case "key-next":
      l.hasKeyNext = true;
      break;
    case "descriptor":
      l.hasDescriptor = true;
      break;
  }
}
