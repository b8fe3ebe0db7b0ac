/**
 * Which backup a command means (`-m`): the one selection rule of every reader (FORMAT.md §1).
 *
 * - an exact meta name: that meta;
 * - `latest`: the newest meta, or the newest of backup name `name` when one is given;
 * - any other word: a backup name, its newest meta.
 */
import { compareMetaNames, type MetaName } from "../format/layout.ts";
import { S3BackupError } from "../util/errors.ts";

/** No backup matches what was asked for. */
export class NoSuchBackupError extends S3BackupError {}

/** The meta `spec` names among `metas` (any order). Throws NoSuchBackupError. */
export function selectMeta<T extends MetaName>(
  metas: readonly T[],
  spec: string,
  name: string | undefined,
  location: string,
): T {
  const exact = metas.find((m) => m.key === spec);
  if (exact) return exact;
  const want = spec === "latest" ? name : spec;
  const candidates = want === undefined ? [...metas] : metas.filter((m) => m.name === want);
  const best = candidates.sort(compareMetaNames).at(-1);
  if (best) return best;
  if (want === undefined) throw new NoSuchBackupError(`No backups in ${location}`);
  if (spec.startsWith("meta_")) {
    throw new NoSuchBackupError(`No backup ${spec} in ${location} (see s3backup list)`);
  }
  throw new NoSuchBackupError(
    `No backup named ${JSON.stringify(want)} in ${location} (see s3backup list)`,
  );
}
