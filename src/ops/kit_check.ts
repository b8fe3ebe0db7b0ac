/**
 * `s3backup kit --verify`: is the restore kit in the bucket the one a backup left? Each meta
 * records the SHA-256 of every kit file (FORMAT.md §5); the kit's objects under `restore-kit/`
 * are downloaded and compared. A file changed, missing or added is a problem: whoever can write
 * to the bucket could have swapped the scripts a person runs with the password.
 */
import { createHash } from "node:crypto";
import { KIT_PREFIX, META_PREFIX } from "../format/layout.ts";
import { listRepository } from "../repo/listing.ts";
import { loadMeta, type Repository } from "../repo/repository.ts";
import { selectMeta } from "../repo/select.ts";
import { readAll } from "../util/bytes.ts";
import { S3BackupError } from "../util/errors.ts";

export interface KitProblem {
  /** Name under restore-kit/. */
  file: string;
  kind: "changed" | "missing" | "unexpected";
}

export interface KitCheck {
  /** The meta whose record was used. */
  metaKey: string;
  files: number;
  problems: KitProblem[];
}

/** Compares the bucket's kit with what meta `spec` (default: the latest) recorded. */
export async function verifyKit(
  repo: Repository,
  spec = "latest",
  name?: string,
): Promise<KitCheck> {
  // The metas and the kit only: a listing of the data objects would be most of the bucket.
  const metas = (await listRepository(repo.store, META_PREFIX)).metas;
  const kit = (await listRepository(repo.store, KIT_PREFIX)).kit;
  const m = selectMeta(metas, spec, name, repo.store.location);
  const recorded = (await loadMeta(repo, m.key)).header.kit;
  if (recorded === undefined) {
    throw new S3BackupError(
      `${m.key} records no kit digests (written by an older s3backup): back up once with this ` +
        "version, then verify",
    );
  }
  const problems: KitProblem[] = [];
  for (const [file, sha] of recorded) {
    if (!kit.has(KIT_PREFIX + file)) {
      problems.push({ file, kind: "missing" });
      continue;
    }
    const body = await readAll(await repo.store.load(KIT_PREFIX + file));
    if (createHash("sha256").update(body).digest("hex") !== sha) {
      problems.push({ file, kind: "changed" });
    }
  }
  for (const key of kit.keys()) {
    const file = key.slice(KIT_PREFIX.length);
    if (!recorded.has(file)) problems.push({ file, kind: "unexpected" });
  }
  return { metaKey: m.key, files: recorded.size, problems };
}
