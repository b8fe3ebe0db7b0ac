/**
 * An append-only host: its credentials may list, read and write, and delete only under locks/
 * (README "Ransomware protection", the backup host's IAM policy). Backups (first, unchanged,
 * changed, a new name) still work there, through a store that refuses every other delete and the
 * multipart sweep as S3 would (AccessDenied).
 */
import assert from "node:assert/strict";
import { kitFiles } from "../src/cli/kit.ts";
import { LOCK_PREFIX } from "../src/format/layout.ts";
import { backup } from "../src/ops/backup/backup.ts";
import { createRepository } from "../src/repo/repository.ts";
import { LocalStore } from "../src/store/local_store.ts";
import type { RemoveOptions } from "../src/store/store.ts";
import { S3BackupError } from "../src/util/errors.ts";
import { StoreWrapper } from "./store_wrapper.ts";
import { snapshot } from "./tree.ts";
import { restore } from "../src/ops/restore/restore.ts";
import { loadMeta } from "../src/repo/repository.ts";

class AppendOnly extends StoreWrapper {
  refused: string[] = [];
  override remove(names: string[], opts?: RemoveOptions): Promise<void> {
    const outside = names.filter((n) => !n.startsWith(LOCK_PREFIX));
    if (outside.length > 0) {
      this.refused.push(...outside);
      return Promise.reject(new S3BackupError(`S3 DeleteObjects: AccessDenied (${outside[0]})`));
    }
    return this.inner.remove(names, opts);
  }
  override abortUploads(): Promise<number> {
    this.refused.push("(multipart sweep)");
    return Promise.reject(new S3BackupError("S3 ListMultipartUploads: AccessDenied"));
  }
}

Deno.test("append-only: backups run with deletes refused outside locks/", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-append-" });
  try {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await Deno.mkdir(`${dir}/repo`);
    await Deno.writeTextFile(`${src}/a`, "a\n");
    const store = new AppendOnly(new LocalStore(`${dir}/repo`));
    const repo = await createRepository(store, new TextEncoder().encode("pw"));
    const run = (name: string) =>
      backup(store, repo, {
        source: src,
        name,
        host: "h",
        simulate: false,
        kit: kitFiles({}),
        filesCache: { dir: `${dir}/cache` },
      });
    const first = await run("n");
    assert.ok(first.metaKey);
    const same = await run("n");
    await Deno.writeTextFile(`${src}/b`, "b\n");
    await Deno.writeTextFile(`${src}/a`, "a, changed\n");
    const changed = await run("n");
    const other = await run("other");
    for (const s of [same, changed, other]) assert.ok(s.metaKey, "each backup recorded");
    assert.equal(changed.newObjects, 2);
    // Only the sweep was refused (and tolerated); nothing else tried to delete.
    assert.deepEqual([...new Set(store.refused)], ["(multipart sweep)"]);
    const out = `${dir}/out`;
    await restore(repo, await loadMeta(repo, changed.metaKey!), {
      target: out,
      metaKey: changed.metaKey!,
      simulate: false,
      overwrite: false,
    });
    assert.deepEqual(snapshot(out), snapshot(src));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
