/**
 * Repository locations as the user writes them, and the Store for each.
 *
 *   s3://bucket[/prefix]   an S3 bucket, optionally under a key prefix
 *   bucket                 a plain S3 bucket name
 *   /abs, ./rel, ../rel, ~/dir, file:///abs   a local directory
 */

import * as path from "node:path";
import { UsageError } from "../util/errors.ts";
import { LocalStore } from "./local_store.ts";
import { S3Store, type S3StoreConfig } from "./s3_store.ts";
import type { Store } from "./store.ts";

export type StoreUrl =
  | { kind: "s3"; bucket: string; prefix: string }
  | { kind: "local"; path: string };

/** S3 options that do not come from the URL. */
export type S3Options = Omit<S3StoreConfig, "bucket" | "prefix">;

// S3 bucket naming rules (the general-purpose subset every store accepts).
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const IPV4_RE = /^\d+\.\d+\.\d+\.\d+$/;

/** Why `name` is not a valid bucket name, or null when it is. */
export function bucketNameProblem(name: string): string | null {
  if (name.length < 3 || name.length > 63) return "must be 3 to 63 characters long";
  if (!BUCKET_RE.test(name)) {
    return "may hold only a-z, 0-9, '.' and '-', and must start and end with a letter or digit";
  }
  if (name.includes("..")) return "must not contain '..'";
  if (IPV4_RE.test(name)) return "must not look like an IP address";
  return null;
}

/**
 * Parses a repository location. `home` defaults to $HOME (for `~/`). Relative local paths are
 * resolved against `cwd` (default: the current directory). Throws UsageError with one line.
 */
export function parseStoreUrl(
  s: string,
  env: { home?: string; cwd?: string } = {},
): StoreUrl {
  if (s === "") throw new UsageError("Empty repository location");
  if (/^s3:\/\//i.test(s)) {
    const rest = s.slice(5);
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? "" : rest.slice(slash + 1).replace(/^\/+|\/+$/g, "");
    if (bucket === "") throw new UsageError(`No bucket in ${JSON.stringify(s)}`);
    const problem = bucketNameProblem(bucket);
    if (problem) throw new UsageError(`Invalid bucket name ${JSON.stringify(bucket)}: ${problem}`);
    if (/\/\/|(^|\/)\.\.?(\/|$)/.test(prefix)) {
      throw new UsageError(`Invalid key prefix in ${JSON.stringify(s)}`);
    }
    return { kind: "s3", bucket, prefix };
  }
  if (/^file:/i.test(s)) {
    if (!/^file:\/\/\//i.test(s)) {
      throw new UsageError(`Use file:///absolute/path, not ${JSON.stringify(s)}`);
    }
    let p: string;
    try {
      p = decodeURIComponent(s.slice(7));
    } catch {
      throw new UsageError(`Invalid percent-encoding in ${JSON.stringify(s)}`);
    }
    // file:///C:/dir on Windows
    if (/^\/[A-Za-z]:[\\/]/.test(p)) p = p.slice(1);
    return { kind: "local", path: path.normalize(p) };
  }
  if (s === "~" || s.startsWith("~/")) {
    const home = env.home ?? homeDir();
    if (!home) throw new UsageError(`Cannot expand ${JSON.stringify(s)}: HOME is not set`);
    return { kind: "local", path: path.join(home, s.slice(1)) };
  }
  if (
    s.startsWith("/") || s.startsWith("./") || s.startsWith("../") || s === "." || s === ".." ||
    path.isAbsolute(s) // C:\dir on Windows
  ) {
    return { kind: "local", path: path.resolve(env.cwd ?? Deno.cwd(), s) };
  }
  if (s.includes("/") || s.includes(":")) {
    throw new UsageError(
      `Unknown repository location ${JSON.stringify(s)}: ` +
        "use s3://bucket/prefix, a bucket name, or a directory starting with /, ./, ../ or ~/",
    );
  }
  const problem = bucketNameProblem(s);
  if (problem) {
    throw new UsageError(
      `${JSON.stringify(s)} is not a bucket name (${problem}); ` +
        "for a local directory write ./" + s,
    );
  }
  return { kind: "s3", bucket: s, prefix: "" };
}

/** The Store for a repository location (see parseStoreUrl). */
export function openStore(url: string | StoreUrl, s3opts: S3Options = {}): Store {
  const parsed = typeof url === "string" ? parseStoreUrl(url) : url;
  if (parsed.kind === "local") return new LocalStore(parsed.path);
  return new S3Store({ ...s3opts, bucket: parsed.bucket, prefix: parsed.prefix });
}

function homeDir(): string | undefined {
  try {
    return Deno.env.get("HOME") || Deno.env.get("USERPROFILE") || undefined;
  } catch {
    return undefined;
  }
}
