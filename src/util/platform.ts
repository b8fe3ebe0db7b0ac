import process from "node:process";

/**
 * What this platform can do with files. Windows has no POSIX permission bits (Deno.chmod
 * throws there) and no owners: modes are recorded as 0644/0755 and never applied there.
 */
export const POSIX_MODES = Deno.build.os !== "windows";

/** `Deno.chmod`, where modes exist (a no-op on Windows). */
export async function chmodWhereSupported(path: string, mode: number): Promise<void> {
  if (POSIX_MODES) await Deno.chmod(path, mode);
}

/** `Deno.chmodSync`, where modes exist (a no-op on Windows). */
export function chmodSyncWhereSupported(path: string, mode: number): void {
  if (POSIX_MODES) Deno.chmodSync(path, mode);
}

/**
 * Whether process `pid` runs on this machine: true, false, or null when it cannot be told
 * (then a lock is never taken over). `kill(pid, 0)`: ESRCH is no such process, EPERM one of
 * another user. Not on Windows.
 */
export function processAlive(pid: number): boolean | null {
  if (!Number.isSafeInteger(pid) || pid <= 0 || Deno.build.os === "windows") return null;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    const code = (err as { code?: string }).code;
    return code === "ESRCH" ? false : code === "EPERM" ? true : null;
  }
}
