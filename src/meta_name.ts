/** Meta file names: `meta_<name>_<YYYYMMDDTHHMMSSZ>` (FORMAT.md §1). */
import { UsageError } from "./errors.ts";

export const META_PREFIX = "meta_";
const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
const META_RE = /^meta_(.+)_(\d{8}T\d{6}Z)$/;

/** Throws UsageError unless `name` is a valid backup name. */
export function checkBackupName(name: string): string {
  if (!NAME_RE.test(name) || name === "latest") {
    throw new UsageError(
      `Invalid backup name ${
        JSON.stringify(name)
      }: use 1 to 64 characters from A-Z a-z 0-9 . _ - (not "latest")`,
    );
  }
  return name;
}

/** A backup name derived from a folder path: its base name with other characters as `_`. */
export function defaultBackupName(folder: string): string {
  const base = folder.replace(/[/\\]+$/, "").split(/[/\\]/).pop() ?? "";
  const clean = base.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 64).replace(/^\.+$/, "");
  return clean === "" ? "backup" : clean;
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");
}

export function formatMetaName(name: string, time: Date): string {
  return `${META_PREFIX}${checkBackupName(name)}_${stamp(time)}`;
}

export interface MetaName {
  key: string;
  name: string;
  time: Date;
}

/** Parses a meta object name; null if it is not one this version wrote. */
export function parseMetaName(key: string): MetaName | null {
  const m = META_RE.exec(key);
  if (!m) return null;
  const [, name, ts] = m as unknown as [string, string, string];
  const iso = `${ts.slice(0, 4)}-${ts.slice(4, 6)}-${ts.slice(6, 8)}T${ts.slice(9, 11)}:${
    ts.slice(11, 13)
  }:${ts.slice(13, 15)}Z`;
  const time = new Date(iso);
  if (Number.isNaN(time.getTime())) return null;
  return { key, name, time };
}

/** Oldest first; equal times by name. */
export function compareMetaNames(a: MetaName, b: MetaName): number {
  return a.time.getTime() - b.time.getTime() || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}
