/**
 * Test helpers: a tree of nasty names, modes, mtimes, links and duplicates, and a snapshot of
 * a tree to compare a restore against its source exactly.
 */
import { createHash } from "node:crypto";

export const NASTY_NAMES = [
  " leading and trailing ",
  "new\nline",
  "carriage\rreturn",
  "tab\there",
  "back\\slash",
  "\\n literally",
  "100% %s %b",
  "-rf",
  "--help",
  "ünïcödé 日本語 🎉",
  "ends in a space ",
];

/** A marker that must never appear in the bucket in plaintext. */
export const SECRET_MARKER = "PLAINTEXT-MARKER-7f3a9c";

const te = new TextEncoder();

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * Builds the tree under `root` (which must exist). `bigSize` is the size of the one big file
 * (above the multipart part size by default).
 */
export function makeNastyTree(root: string, bigSize = 20 * 1024 * 1024 + 3): void {
  const w = (rel: string, data: Uint8Array | string, mode = 0o644) => {
    const p = `${root}/${rel}`;
    Deno.writeFileSync(p, typeof data === "string" ? te.encode(data) : data);
    Deno.chmodSync(p, mode);
  };
  Deno.mkdirSync(`${root}/nasty dir `);
  NASTY_NAMES.forEach((n, i) => {
    w(n, `${SECRET_MARKER} file ${i}\n`);
    w(`nasty dir /${n}`, `${SECRET_MARKER} nested ${i}\n`);
  });
  w("empty-file", "");
  w("private", `${SECRET_MARKER} private\n`, 0o600);
  w("script.sh", "#!/bin/sh\necho hi\n", 0o755);
  w("readonly", `${SECRET_MARKER} readonly\n`, 0o444);
  w("dup-a", `${SECRET_MARKER} same content\n`);
  w("dup-b", `${SECRET_MARKER} same content\n`);
  w("big.bin", bytes(bigSize, 42));
  Deno.mkdirSync(`${root}/empty`);
  Deno.mkdirSync(`${root}/empty/nested empty`);
  Deno.mkdirSync(`${root}/locked`);
  w("locked/inside", `${SECRET_MARKER} inside a 0555 dir\n`);
  Deno.symlinkSync("dup-a", `${root}/link to dup`);
  Deno.symlinkSync("target with space ", `${root}/dangling link`);
  Deno.symlinkSync("../nasty dir /new\nline", `${root}/nasty dir /link up`);
  // Times: a fractional one (ms), an old one, and dirs last (creating files changes them).
  Deno.utimeSync(`${root}/private`, 1_600_000_000.25, 1_600_000_000.25);
  Deno.utimeSync(`${root}/readonly`, 1_000_000_000, 1_000_000_000);
  Deno.utimeSync(`${root}/empty/nested empty`, 1_500_000_000.5, 1_500_000_000.5);
  Deno.utimeSync(`${root}/locked`, 1_400_000_000, 1_400_000_000);
  Deno.chmodSync(`${root}/locked`, 0o555);
}

export interface SnapEntry {
  path: string;
  type: "f" | "d" | "l";
  mode: number;
  mtimeMs: number;
  size: number;
  md5?: string;
  target?: string;
}

/** Every entry below `root` (not root itself), sorted by path. */
export function snapshot(root: string, opts: { mtimes?: boolean } = {}): SnapEntry[] {
  const out: SnapEntry[] = [];
  const visit = (abs: string, rel: string) => {
    for (const e of Deno.readDirSync(abs)) {
      const a = `${abs}/${e.name}`;
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      const info = Deno.lstatSync(a);
      const base = {
        path: r,
        mode: (info.mode ?? 0) & 0o7777,
        mtimeMs: opts.mtimes === false ? 0 : info.mtime?.getTime() ?? 0,
      };
      if (info.isSymlink) {
        out.push({ ...base, type: "l", mode: 0, size: 0, target: Deno.readLinkSync(a) });
      } else if (info.isDirectory) {
        out.push({ ...base, type: "d", size: 0 });
        visit(a, r);
      } else {
        const md5 = createHash("md5").update(Deno.readFileSync(a)).digest("hex");
        out.push({ ...base, type: "f", size: info.size, md5 });
      }
    }
  };
  visit(root, "");
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Makes a tree removable again (the 0555 dir). */
export function unlock(root: string): void {
  try {
    for (const e of Deno.readDirSync(root)) {
      const p = `${root}/${e.name}`;
      if (e.isDirectory && !e.isSymlink) {
        Deno.chmodSync(p, 0o755);
        unlock(p);
      }
    }
  } catch {
    // gone already
  }
}

/** Whether anything (a dangling link too) is at `p`. */
export function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** The names in a directory, sorted. */
export function names(p: string): string[] {
  return Array.from(Deno.readDirSync(p), (e) => e.name).sort();
}
