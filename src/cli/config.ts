/**
 * `s3backup.ini`: found in the working folder or its parent, or named with `--config`; read by
 * the rules of Python 2's ConfigParser, as the original s3backup.py read it (ini.ts).
 *
 *   [main]
 *   password = ...
 *   bucket = s3://my-bucket/host1   (the repository when -b and S3BACKUP_REPOSITORY are not given)
 *   [s3]
 *   endpoint = https://s3.example.net
 *   region = eu-west-1
 *   profile = backup
 *   checksums = when_required
 *   storage_class = STANDARD_IA
 *   timeout = 2m
 *   [backup]
 *   exclude = *.tmp            (one pattern per line, indented, or the key repeated)
 *   exclude_file = /etc/s3backup.exclude
 *   exclude_if_present = CACHEDIR.TAG
 *   one_file_system = yes
 */
import { UsageError } from "../util/errors.ts";
import { type Ini, iniGet, iniGetAll, parseIni } from "../util/ini.ts";
import { checkStorageClass } from "./values.ts";
import { messageOf } from "../util/bytes.ts";

export const CONFIG_NAME = "s3backup.ini";

export interface Config {
  /** The file read, or null when none was found. */
  path: string | null;
  password?: string;
  /** [main] bucket: the repository, under -b and S3BACKUP_REPOSITORY. */
  bucket?: string;
  endpoint?: string;
  region?: string;
  profile?: string;
  /** `[s3] ca_bundle`: PEM certificate authorities to trust for https. */
  caBundle?: string;
  checksums?: "when_required" | "when_supported";
  /** S3 storage class of data objects (metas, key and kit stay STANDARD). */
  storageClass?: string;
  /** `[s3] limit_upload` / `limit_download`, as written (rates). */
  limitUpload?: string;
  limitDownload?: string;
  /** `[s3] timeout`, as written (a duration). */
  timeout?: string;
  /** `[backup]`: what backups leave out (each list in the order written). */
  backup: { exclude: string[]; excludeFile: string[]; excludeIfPresent: string[] };
  oneFileSystem?: boolean;
  /** `[backup] retain` / `retain_mode`, as written. */
  retain?: string;
  retainMode?: string;
  /** Warnings for the user (e.g. a password readable by others). */
  warnings: string[];
}

function dirname(p: string): string {
  const i = p.replace(/\/+$/, "").lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

/** The config file to read: `explicit`, else s3backup.ini in `cwd` or its parent, else null. */
export function findConfig(explicit: string | undefined, cwd: string): string | null {
  if (explicit !== undefined) return explicit;
  for (const dir of [cwd, dirname(cwd)]) {
    const p = `${dir.replace(/\/+$/, "")}/${CONFIG_NAME}`;
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // not there
    }
  }
  return null;
}

export function loadConfig(explicit: string | undefined, cwd = Deno.cwd()): Config {
  const path = findConfig(explicit, cwd);
  const config: Config = {
    path,
    backup: { exclude: [], excludeFile: [], excludeIfPresent: [] },
    warnings: [],
  };
  if (path === null) return config;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    throw new UsageError(`Cannot read config ${path}: ${messageOf(err)}`, { cause: err });
  }
  const ini = parseIni(text, path);
  config.warnings.push(...unknownSettings(ini, path));
  const get = (section: string, key: string) => {
    const v = iniGet(ini, section, key, path);
    return v === "" ? undefined : v;
  };
  const bucket = get("main", "bucket");
  if (bucket !== undefined) config.bucket = bucket;
  const password = get("main", "password");
  if (password !== undefined) {
    config.password = password;
    if (Deno.build.os !== "windows") {
      const mode = Deno.statSync(path).mode ?? 0;
      if ((mode & 0o077) !== 0) {
        config.warnings.push(
          `${path} holds a password and is readable by others (mode ${
            (mode & 0o777).toString(8)
          }): chmod 600 ${path}`,
        );
      }
    }
  }
  const set = (k: "endpoint" | "region" | "profile" | "caBundle", v: string | undefined) => {
    if (v !== undefined) config[k] = v;
  };
  set("endpoint", get("s3", "endpoint") ?? get("s3", "endpoint_url"));
  set("region", get("s3", "region"));
  set("profile", get("s3", "profile"));
  set("caBundle", get("s3", "ca_bundle"));
  const timeout = get("s3", "timeout");
  if (timeout !== undefined) config.timeout = timeout;
  const up = get("s3", "limit_upload"), down = get("s3", "limit_download");
  if (up !== undefined) config.limitUpload = up;
  if (down !== undefined) config.limitDownload = down;
  const sc = get("s3", "storage_class");
  if (sc !== undefined) config.storageClass = checkStorageClass(sc, path);
  const cs = get("s3", "checksums");
  if (cs !== undefined) {
    if (cs !== "when_required" && cs !== "when_supported") {
      throw new UsageError(
        `Cannot read config ${path}: [s3] checksums must be when_required or when_supported`,
      );
    }
    config.checksums = cs;
  }
  readBackupSection(ini, path, config);
  return config;
}

/** `[backup]`: the exclude lists and one_file_system (ConfigParser's boolean words). */
function readBackupSection(ini: Ini, path: string, config: Config): void {
  const all = (k: string) => iniGetAll(ini, "backup", k, path);
  config.backup = {
    exclude: all("exclude"),
    excludeFile: all("exclude_file"),
    excludeIfPresent: all("exclude_if_present"),
  };
  const retain = iniGet(ini, "backup", "retain", path);
  if (retain) config.retain = retain;
  const mode = iniGet(ini, "backup", "retain_mode", path);
  if (mode) config.retainMode = mode;
  const ofs = iniGet(ini, "backup", "one_file_system", path)?.toLowerCase();
  if (ofs === undefined || ofs === "") return;
  const yes = ["1", "yes", "true", "on"].includes(ofs);
  if (!yes && !["0", "no", "false", "off"].includes(ofs)) {
    throw new UsageError(`Cannot read config ${path}: [backup] one_file_system must be yes or no`);
  }
  config.oneFileSystem = yes;
}

/** The keys each section may set. */
const KNOWN: Record<string, string[]> = {
  main: ["password", "bucket"],
  s3: [
    "endpoint",
    "endpoint_url",
    "region",
    "profile",
    "ca_bundle",
    "checksums",
    "storage_class",
    "timeout",
    "limit_upload",
    "limit_download",
  ],
  backup: [
    "exclude",
    "exclude_file",
    "exclude_if_present",
    "one_file_system",
    "retain",
    "retain_mode",
  ],
};

/** A warning for each section and key s3backup does not read (DEFAULT's keys are for `%(...)s`). */
export function unknownSettings(ini: Ini, path: string): string[] {
  const out: string[] = [];
  for (const [name, keys] of ini.sections) {
    const known = KNOWN[name];
    if (known === undefined) {
      const hint = KNOWN[name.toLowerCase()]
        ? ` (section names are case-sensitive: [${name.toLowerCase()}])`
        : "";
      out.push(`${path}: unknown section [${name}], ignored${hint}`);
      continue;
    }
    for (const k of keys.keys()) {
      if (!known.includes(k)) out.push(`${path}: unknown key ${k} in [${name}], ignored`);
    }
  }
  return out;
}
