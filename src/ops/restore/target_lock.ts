/**
 * One restore at a time into a target: `<target>/.s3backup-restore.lock`, created exclusively,
 * holding `<pid> <host>`; the restore kit takes the same lock. A lock left by a process that no
 * longer runs on this host is taken over; one of a live process refuses the restore. Holding it,
 * a restore may remove the temporary files an interrupted one left (they cannot be another
 * running restore's).
 */
import process from "node:process";
import { S3BackupError } from "../../util/errors.ts";

export const TARGET_LOCK = ".s3backup-restore.lock";

/** Another restore is writing into the same target. */
export class TargetBusyError extends S3BackupError {}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM"; // it exists, owned by another user
  }
}

/** Takes the target's lock; returns its release. Throws TargetBusyError. */
export async function lockTarget(root: string, host: string): Promise<() => Promise<void>> {
  const path = `${root}/${TARGET_LOCK}`;
  const mine = `${Deno.pid} ${host}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await Deno.writeTextFile(path, mine, { createNew: true, mode: 0o600 });
      return async () => {
        const now = await Deno.readTextFile(path).catch(() => "");
        if (now === mine) await Deno.remove(path).catch(() => {});
      };
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
    const held = await Deno.readTextFile(path).catch(() => "");
    const [pidText, lockHost] = held.trim().split(" ");
    const pid = Number(pidText);
    if (lockHost !== host || (Number.isSafeInteger(pid) && pid > 0 && alive(pid))) {
      throw new TargetBusyError(
        `Another restore is writing into ${root} (pid ${pidText ?? "?"} on ${lockHost ?? "?"}, ` +
          `${TARGET_LOCK}): wait for it, or remove that file if it is not running`,
      );
    }
    await Deno.remove(path).catch(() => {}); // left by a restore that no longer runs
  }
  throw new TargetBusyError(`Cannot take ${path}`);
}
