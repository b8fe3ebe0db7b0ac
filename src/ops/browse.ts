/**
 * Looking into backups without restoring them: the entries of one (`ls`), the backups that hold
 * a path (`find`), what changed between two (`diff`), and what the repository holds (`stats`).
 * The repository is opened once by the caller; each meta costs its own key derivation.
 */
import { META_PREFIX } from "../format/layout.ts";
import type { Entry, Meta } from "../format/meta.ts";
import { listRepository, type MetaObject } from "../repo/listing.ts";
import { createHash } from "node:crypto";
import { ContentError, Contents } from "../repo/contents.ts";
import { loadMeta, type Repository } from "../repo/repository.ts";
import { UsageError } from "../util/errors.ts";
import { pool } from "../util/pool.ts";

/** The entries of `meta` at or under `path` (all without one), in meta order. */
export function lsEntries(meta: Meta, path?: string): Entry[] {
  const p = path?.replace(/^\.\/+/, "").replace(/\/+$/, "");
  if (p === undefined || p === "" || p === ".") return meta.entries;
  return meta.entries.filter((e) => e.path === p || e.path.startsWith(`${p}/`));
}

/**
 * A glob as a RegExp over whole paths: `*` and `?` stay within a path component, `**` crosses
 * them. A pattern without `/` is matched against the last component (restic's find).
 */
export function globMatcher(pattern: string): (path: string) => boolean {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*" && pattern[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  const rx = new RegExp(`^${re}$`, "s");
  const base = !pattern.includes("/");
  return (path) => rx.test(base ? path.slice(path.lastIndexOf("/") + 1) : path);
}

export interface Found {
  meta: MetaObject;
  entry: Entry;
}

/** The entries matching `pattern` in every backup, newest backup first. */
export async function findInBackups(repo: Repository, pattern: string): Promise<Found[]> {
  const match = globMatcher(pattern);
  const metas = (await listRepository(repo.store, META_PREFIX)).metas;
  const hits = new Map<string, Found[]>();
  await pool(metas, 4, async (m) => {
    const meta = await loadMeta(repo, m.key);
    hits.set(m.key, meta.entries.filter((e) => match(e.path)).map((entry) => ({ meta: m, entry })));
  });
  return [...metas].reverse().flatMap((m) => hits.get(m.key) ?? []);
}

export interface Change {
  path: string;
  kind: "added" | "removed" | "changed";
  /** For "changed": what differs (type, content, mode, owner, mtime, target). */
  what: string[];
}

function differences(a: Entry, b: Entry): string[] {
  if (a.type !== b.type) return ["type"];
  const out: string[] = [];
  if (a.md5 !== b.md5 || a.size !== b.size) out.push("content");
  if (a.mode !== b.mode) out.push("mode");
  if (a.uid !== b.uid || a.gid !== b.gid) out.push("owner");
  if (a.type === "f" && a.mtimeMs !== b.mtimeMs) out.push("mtime");
  if (a.target !== b.target) out.push("target");
  return out;
}

/** What changed from backup `a` to backup `b`, by path (sorted). */
export function diffMetas(a: Meta, b: Meta): Change[] {
  const before = new Map(a.entries.map((e) => [e.path, e]));
  const out: Change[] = [];
  for (const e of b.entries) {
    const old = before.get(e.path);
    before.delete(e.path);
    if (old === undefined) out.push({ path: e.path, kind: "added", what: [] });
    else {
      const what = differences(old, e);
      if (what.length > 0) out.push({ path: e.path, kind: "changed", what });
    }
  }
  for (const path of before.keys()) out.push({ path, kind: "removed", what: [] });
  return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

export interface Stats {
  backups: number;
  /** File entries over all backups, and their content bytes. */
  files: number;
  bytesReferenced: number;
  /** Distinct contents the backups name, and their bytes. */
  contents: number;
  bytesDistinct: number;
  /** Data objects in the store and their stored (encrypted) bytes. */
  objects: number;
  bytesStored: number;
}

/** What the repository holds: every meta opened, one listing. */
export async function repositoryStats(repo: Repository): Promise<Stats> {
  const listing = await listRepository(repo.store);
  const sizes = new Map<string, number>();
  const s: Stats = {
    backups: listing.metas.length,
    files: 0,
    bytesReferenced: 0,
    contents: 0,
    bytesDistinct: 0,
    objects: listing.objects.size,
    bytesStored: 0,
  };
  for (const o of listing.objects.values()) s.bytesStored += o.size;
  await pool(listing.metas, 4, async (m) => {
    for (const e of (await loadMeta(repo, m.key)).entries) {
      if (e.type !== "f" || e.md5 === undefined) continue;
      s.files++;
      s.bytesReferenced += e.size ?? 0;
      sizes.set(e.md5, e.size ?? 0);
    }
  });
  s.contents = sizes.size;
  for (const n of sizes.values()) s.bytesDistinct += n;
  return s;
}

/**
 * `dump`: the content of file `path` of `meta` written to `out` (restic's dump, for one file):
 * decrypted, gunzipped and MD5-checked as a restore reads it (a content that fails its check
 * is ContentError; what was written of a `data/` object before that stays written). Anything
 * but a file is UsageError.
 */
export async function dumpFile(
  repo: Repository,
  meta: Meta,
  path: string,
  out: WritableStream<Uint8Array>,
): Promise<number> {
  const p = path.replace(/^\.\/+/, "").replace(/\/+$/, "");
  const e = meta.entries.find((x) => x.path === p);
  if (e === undefined) throw new UsageError(`dump: no ${p} in this backup (see s3backup ls)`);
  if (e.type !== "f") {
    throw new UsageError(
      `dump: ${p} is a ${e.type === "d" ? "folder" : "symbolic link"}, not a file; ` +
        `restore --only ${p} -f DIR gets it back`,
    );
  }
  const body = await Contents.of(repo).stream(e.md5!, e.where);
  const hash = createHash("md5");
  let n = 0;
  await body.pipeThrough(
    new TransformStream({
      transform: (c, ctl) => void [hash.update(c), n += c.length, ctl.enqueue(c)],
    }),
  ).pipeTo(out, { preventClose: true });
  if (hash.digest("hex") !== e.md5) {
    throw new ContentError(`dump: the content of ${p} is not what the backup recorded (MD5)`);
  }
  return n;
}
