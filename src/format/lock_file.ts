/**
 * A lock object's text (FORMAT.md §6): `key value` lines `kind`, `host`, `pid`, `time`, where
 * known `boot` (the machine's boot id) and, for a backup, `source`. Pure: values in, text out,
 * and back.
 */
import { escapeText, unescapeText } from "./escape.ts";

/** What a lock object says. `kind` is a string: a later version may write other kinds. */
export interface LockBody {
  kind: string;
  host: string;
  pid: number;
  time: Date;
  /** The writer's boot id (Linux), telling this machine's boot from another's. */
  boot?: string;
  /** backup: the folder being read (restores into it are refused meanwhile). */
  source?: string;
}

/** The lock object's text. */
export function formatLock(body: LockBody): string {
  return [
    `kind ${body.kind}`,
    `host ${escapeText(body.host)}`,
    `pid ${body.pid}`,
    `time ${body.time.toISOString()}`,
    ...(body.boot === undefined ? [] : [`boot ${escapeText(body.boot)}`]),
    ...(body.source === undefined ? [] : [`source ${escapeText(body.source)}`]),
    "",
  ].join("\n");
}

/** Parses a lock object's text. Unknown keys are ignored. Throws SyntaxError. */
export function parseLock(text: string): LockBody {
  const kv = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const sp = line.indexOf(" ");
    kv.set(sp < 0 ? line : line.slice(0, sp), sp < 0 ? "" : line.slice(sp + 1));
  }
  const kind = kv.get("kind");
  if (kind === undefined || !/^[a-z][a-z0-9]*$/.test(kind)) throw new SyntaxError("bad kind");
  const time = new Date(kv.get("time") ?? "");
  if (Number.isNaN(time.getTime())) throw new SyntaxError("bad time");
  const pidText = kv.get("pid") ?? "";
  const pid = /^\d+$/.test(pidText) ? Number(pidText) : 0;
  const body: LockBody = { kind, host: unescapeText(kv.get("host") ?? "?"), pid, time };
  const boot = kv.get("boot");
  if (boot !== undefined) body.boot = unescapeText(boot);
  const source = kv.get("source");
  if (source !== undefined) body.source = unescapeText(source);
  return body;
}
