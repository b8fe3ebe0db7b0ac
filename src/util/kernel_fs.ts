/**
 * The kernel's own file systems at the root of a Unix system: /proc, /sys and /dev. Their files
 * are the kernel's state, not data (`/proc/kcore` alone says 128 TiB, a sysfs file says 4096
 * bytes and reads fewer, writing `/proc/self/mem` or `/proc/sys/...` changes the running system),
 * so s3backup reads none of them and writes none: a backup keeps such a folder as an empty
 * folder (as `--one-file-system` keeps a mount point), a restore writes nothing there.
 *
 * The rule is by path, on paths resolved through symlinks, as Deno's own refusal of them was
 * (its sandbox, CVE-2024-34346) before the binary took every permission (scripts/permissions.ts).
 * A kernel file system mounted elsewhere (a container's `/host/proc`) is another file system:
 * `--one-file-system` leaves it out.
 */

/** The kernel file systems' mount points (POSIX systems only). */
export const KERNEL_ROOTS: readonly string[] = Deno.build.os === "windows"
  ? []
  : ["/proc", "/sys", "/dev"];

/**
 * The kernel file system absolute path `abs` (resolved through symlinks, `/`-separated) is, or
 * is in; null when none.
 */
export function kernelRootOf(abs: string): string | null {
  for (const k of KERNEL_ROOTS) {
    if (abs === k || abs.startsWith(`${k}/`)) return k;
  }
  return null;
}
