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
import { entryHeader, memberPadding, padded, TAR_END } from "../format/tar.ts";
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
  /** For "changed": what differs (type, content, mode, owner, mtime, target, hard link). */
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
  if (a.linkTo !== b.linkTo) out.push("hard link");
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
 * `dump` (restic's): file `path` of `meta` written to `out` as it is, or a folder as a tar stream
 * of it and everything under it (paths as in the backup, modes, owners, times, symbolic links;
 * pax records where ustar falls short), each content decrypted, gunzipped and MD5-checked as a
 * restore reads it: one that fails its check is ContentError (what was written stays written:
 * the exit code tells). A path the backup does not hold is UsageError.
 */
export async function dump(
  repo: Repository,
  meta: Meta,
  path: string,
  out: WritableStream<Uint8Array>,
): Promise<void> {
  const p = path.replace(/^\.\/+/, "").replace(/\/+$/, "").replace(/^\.$/, "");
  // "" or ".": the backed-up folder itself, all of it.
  const e = p === "" ? { type: "d" } : meta.entries.find((x) => x.path === p);
  if (e === undefined) throw new UsageError(`dump: no ${p} in this backup (see s3backup ls)`);
  const contents = Contents.of(repo);
  const writer = out.getWriter();
  try {
    if (e.type === "f") return await writeContent(contents, e as Entry, writer);
    if (e.type === "l") throw new UsageError(`dump: ${p} is a symbolic link, not a file or folder`);
    const entries = lsEntries(meta, p);
    // Each pack fetched once for all its files here, held until the last of them is written.
    for (const x of entries) if (x.type === "f") contents.expect(x.md5!, x.where);
    for (const x of entries) {
      if (x.size === null || x.mtimeMs === null) {
        throw new UsageError("dump: a format 1 backup records no sizes: restore it instead");
      }
      await writer.write(entryHeader({
        name: x.type === "d" ? `${x.path}/` : x.path,
        type: x.type === "f" ? "0" : x.type === "l" ? "2" : "5",
        size: x.type === "f" ? x.size : 0,
        mode: x.mode,
        uid: x.uid ?? 0,
        gid: x.gid ?? 0,
        mtime: x.mtimeMs / 1000,
        ...(x.type === "l" ? { linkname: x.target ?? "" } : {}),
      }));
      if (x.type !== "f") continue;
      await writeContent(contents, x, writer);
      contents.done(x.md5!, x.where);
      if (padded(x.size) > x.size) await writer.write(memberPadding(x.size));
    }
    await writer.write(TAR_END);
  } finally {
    writer.releaseLock();
  }
}

/** A file's content through `writer`, its MD5 checked once it is all written. */
async function writeContent(
  contents: Contents,
  e: Entry,
  writer: WritableStreamDefaultWriter<Uint8Array>,
): Promise<void> {
  const hash = createHash("md5");
  for await (const chunk of await contents.stream(e.md5!, e.where)) {
    hash.update(chunk);
    await writer.write(chunk);
  }
  if (hash.digest("hex") !== e.md5) {
    throw new ContentError(`dump: the content of ${e.path} is not what the backup recorded (MD5)`);
  }
}
