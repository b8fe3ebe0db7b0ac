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
