/**
 * `s3backup.ini`: found in the working folder or its parent, or named with `--config`.
 *
 *   [main]
 *   password = ...
 *   [s3]
 *   endpoint = https://s3.example.net
 *   region = eu-west-1
 *   profile = backup
 *   checksums = when_required
 *   storage_class = STANDARD_IA
 *   timeout = 2m
 */
import { UsageError } from "../util/errors.ts";
import { checkStorageClass } from "./values.ts";

export const CONFIG_NAME = "s3backup.ini";

export type Ini = Map<string, Map<string, string>>;

/** Parses ini text. `;` and `#` start comment lines; values are trimmed; no inline comments. */
export function parseIni(text: string, fileName = CONFIG_NAME): Ini {
  const ini: Ini = new Map();
  let section = "";
  ini.set(section, new Map());
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith(";") || line.startsWith("#")) return;
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!.trim().toLowerCase();
      if (!ini.has(section)) ini.set(section, new Map());
      return;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) {
      throw new UsageError(`Cannot read config ${fileName}: line ${i + 1} is not key=value`);
    }
    ini.get(section)!.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  });
  return ini;
}

export interface Config {
  /** The file read, or null when none was found. */
  path: string | null;
  password?: string;
  endpoint?: string;
  region?: string;
  profile?: string;
  checksums?: "when_required" | "when_supported";
  /** S3 storage class of data objects (metas, key and kit stay STANDARD). */
  storageClass?: string;
  /** `[s3] timeout`, as written (a duration). */
  timeout?: string;
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
  const config: Config = { path, warnings: [] };
  if (path === null) return config;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    throw new UsageError(`Cannot read config ${path}: ${(err as Error).message}`, { cause: err });
  }
  const ini = parseIni(text, path);
  const main = ini.get("main") ?? new Map<string, string>();
  const s3 = ini.get("s3") ?? new Map<string, string>();
  const password = main.get("password");
  if (password !== undefined && password !== "") {
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
  const set = (k: "endpoint" | "region" | "profile", v: string | undefined) => {
    if (v !== undefined && v !== "") config[k] = v;
  };
  set("endpoint", s3.get("endpoint") ?? s3.get("endpoint_url"));
  set("region", s3.get("region"));
  set("profile", s3.get("profile"));
  const timeout = s3.get("timeout");
  if (timeout !== undefined && timeout !== "") config.timeout = timeout;
  const sc = s3.get("storage_class");
  if (sc !== undefined && sc !== "") config.storageClass = checkStorageClass(sc, path);
  const cs = s3.get("checksums");
  if (cs !== undefined && cs !== "") {
    if (cs !== "when_required" && cs !== "when_supported") {
      throw new UsageError(
        `Cannot read config ${path}: [s3] checksums must be when_required or when_supported`,
      );
    }
    config.checksums = cs;
  }
  return config;
}
