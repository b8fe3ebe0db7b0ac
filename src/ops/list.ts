/**
 * Lists the backups of a store (format 2 or format 1), optionally opening each meta to count
 * its entries and read its host and folder. A meta never changes (its name and size say which),
 * so what one says is kept in a local cache (`MetaInfoCache`) and a later list opens only the
 * new ones: each meta costs a 600,000-iteration key derivation to open.
 */
import { dirname, join } from "node:path";
import { escapeText, unescapeText } from "../format/escape.ts";
import { META_PREFIX } from "../format/layout.ts";
import type { Meta } from "../format/meta.ts";
import { type LegacyRepository, loadLegacyMeta } from "../repo/legacy.ts";
import { listRepository, type MetaObject } from "../repo/listing.ts";
import { loadMeta, type Repository } from "../repo/repository.ts";
import type { Store } from "../store/store.ts";
import { ObjectNotFoundError } from "../util/errors.ts";
import { pool } from "../util/pool.ts";
import { randomHex } from "../util/random.ts";

export interface BackupInfo extends MetaObject {
  /** The host and folder the meta's header names, when it was opened. */
  host?: string;
  source?: string;
  /** Number of files (and dirs, links) when the meta was opened. */
  files?: number;
  dirs?: number;
  links?: number;
  /** Bytes of file content; unknown for format 1. */
  bytes?: number;
  /** Why the meta could not be opened, when it could not. */
  error?: string;
}

/** Opens each backup of `list` with `load` (4 at a time) and counts its entries. */
async function count(
  list: BackupInfo[],
  load: (key: string) => Promise<Meta>,
  withBytes: boolean,
): Promise<void> {
  await pool(list, 4, async (b) => {
    try {
      const meta = await load(b.key);
      b.host = meta.header.host;
      b.source = meta.header.source;
      b.files = b.dirs = b.links = 0;
      if (withBytes) b.bytes = 0;
      for (const e of meta.entries) {
        if (e.type === "f") {
          b.files++;
          if (withBytes) b.bytes! += e.size ?? 0;
        } else if (e.type === "d") b.dirs++;
        else b.links++;
      }
    } catch (err) {
      b.error = err instanceof ObjectNotFoundError ? "gone" : (err as Error).message;
    }
  });
}

/**
 * Every meta in the store, oldest first. With `repo`, each is opened, but those `cacheDir`'s
 * cache knows (the cache is then updated; a failure to write it is not the list's).
 */
export async function listBackups(
  store: Store,
  repo?: Repository,
  cacheDir?: string,
): Promise<BackupInfo[]> {
  const out: BackupInfo[] = (await listRepository(store, META_PREFIX)).metas;
  if (!repo) return out;
  const cache = cacheDir === undefined ? null : MetaInfoCache.load(cacheDir, repo.descriptor.id);
  const todo = cache === null ? out : out.filter((b) => !cache.fill(b));
  await count(todo, (key) => loadMeta(repo, key), true);
  cache?.save(todo.filter((b) => b.error === undefined));
  return out;
}

const CACHE_MAGIC = "s3backup-meta-info 1";

/**
 * What opened metas said, by meta name and stored size, in `<dir>/<repository id>`
 * (folder 0700, file 0600, replaced whole by a rename):
 *
 *   s3backup-meta-info 1 <repository id>
 *   <meta name> <size> <files> <dirs> <links> <bytes> <escaped host> <escaped source>
 */
export class MetaInfoCache {
  private constructor(
    readonly path: string,
    readonly repoId: string,
    readonly lines: Map<string, string[]>,
  ) {}

  static load(dir: string, repoId: string): MetaInfoCache {
    const path = join(dir, repoId);
    const lines = new Map<string, string[]>();
    try {
      const text = Deno.readTextFileSync(path).split("\n");
      if (text[0] === `${CACHE_MAGIC} ${repoId}`) {
        for (const l of text.slice(1)) {
          const f = l.split(" ");
          if (f.length === 8 && f.slice(1, 6).every((n) => /^\d+$/.test(n))) lines.set(f[0]!, f);
        }
      }
    } catch {
      // none yet, or unreadable: every meta is opened
    }
    return new MetaInfoCache(path, repoId, lines);
  }

  /** Fills `b` from the cache when it knows that meta at that size; whether it did. */
  fill(b: BackupInfo): boolean {
    const f = this.lines.get(b.key);
    if (f === undefined || Number(f[1]) !== b.size) return false;
    [b.files, b.dirs, b.links, b.bytes] = f.slice(2, 6).map(Number) as [
      number,
      number,
      number,
      number,
    ];
    try {
      b.host = unescapeText(f[6]!);
      b.source = unescapeText(f[7]!);
    } catch {
      return false;
    }
    return true;
  }

  /** Adds what `opened` said and writes the cache. */
  save(opened: BackupInfo[]): void {
    if (opened.length === 0) return;
    for (const b of opened) {
      const fields = [b.files, b.dirs, b.links, b.bytes ?? 0].map(String);
      const where = [escapeText(b.host ?? "", "field"), escapeText(b.source ?? "", "field")];
      this.lines.set(b.key, [b.key, String(b.size), ...fields, ...where]);
    }
    const text =
      [`${CACHE_MAGIC} ${this.repoId}`, ...[...this.lines.values()].map((f) => f.join(" "))]
        .join("\n") + "\n";
    const tmp = `${this.path}.${randomHex(6)}.tmp`;
    try {
      Deno.mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      Deno.writeTextFileSync(tmp, text, { mode: 0o600, createNew: true });
      Deno.renameSync(tmp, this.path);
    } catch {
      try {
        Deno.removeSync(tmp);
      } catch { /* not written */ }
    }
  }
}

/** A format 1 bucket's backups; with a password, each meta is opened to count its files. */
export async function listLegacyBackups(
  store: Store,
  password?: Uint8Array,
): Promise<BackupInfo[]> {
  const out: BackupInfo[] = (await listRepository(store, META_PREFIX)).legacyMetas;
  if (password) {
    const repo: LegacyRepository = { kind: "legacy", store, password };
    // Format 1 metas hold no sizes (b.bytes stays unknown) and no links.
    await count(out, (key) => loadLegacyMeta(repo, key), false);
  }
  return out;
}
