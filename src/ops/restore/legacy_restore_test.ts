/** Format 1 (s3backup.py) buckets built with openssl: detected, listed and restored. */
import assert from "node:assert/strict";
import { isLegacyRepository, isLegacyStore } from "../../repo/legacy.ts";
import { openBackup as openForRestore } from "../../repo/open_backup.ts";
import { LocalStore } from "../../store/local_store.ts";
import { WrongPasswordError } from "../../util/errors.ts";
import { LEGACY_PW as PW, legacyBucket } from "../../../test/legacy_bucket.ts";
import { listLegacyBackups } from "../list.ts";
import { restore, type RestoreEvent } from "./restore.ts";

const te = new TextEncoder();

Deno.test("legacy: a bucket built with openssl is detected, listed and restored", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-legacy-" });
  try {
    const bucket = `${dir}/bucket`;
    await Deno.mkdir(bucket);
    await legacyBucket(
      bucket,
      { "a.txt": "A", "sub/b.txt": "B", "sub/dup": "A" },
      "meta_2016-01-01_1451606400000",
    );
    await legacyBucket(bucket, {
      "a.txt": "A2",
      "sub/deeper/c d.txt": "C",
      "copy of a": "A2",
      "/abs/x": "X",
    }, "meta_photos_2017-01-01_1483228800000");
    const store = new LocalStore(bucket);
    assert.equal(await isLegacyStore(store), true);
    const list = await listLegacyBackups(store, te.encode(PW));
    assert.deepEqual(list.map((b) => [b.key, b.name, b.files, b.error]), [
      ["meta_2016-01-01_1451606400000", "", 3, undefined],
      ["meta_photos_2017-01-01_1483228800000", "photos", 4, undefined],
    ]);
    const bad = await listLegacyBackups(store, te.encode("nope"));
    assert.ok(bad.every((b) => b.error !== undefined));

    await assert.rejects(openForRestore(store, te.encode("nope"), "latest"), WrongPasswordError);
    const plan = await openForRestore(store, te.encode(PW), "latest");
    assert.ok(isLegacyRepository(plan.repo));
    assert.equal(plan.metaKey, "meta_photos_2017-01-01_1483228800000");
    const target = `${dir}/target`;
    const events: RestoreEvent[] = [];
    const r = await restore(plan.repo, plan.meta, {
      target,
      metaKey: plan.metaKey,
      simulate: false,
      overwrite: false,
    }, (e) => events.push(e));
    assert.equal(r.failed, 0);
    assert.equal(r.objectsDownloaded, 3);
    assert.equal(Deno.readTextFileSync(`${target}/a.txt`), "A2");
    assert.equal(Deno.readTextFileSync(`${target}/copy of a`), "A2");
    assert.equal(Deno.readTextFileSync(`${target}/sub/deeper/c d.txt`), "C");
    assert.equal(Deno.readTextFileSync(`${target}/abs/x`), "X");
    assert.equal((Deno.statSync(`${target}/a.txt`).mode ?? 0) & 0o777, 0o644);
    assert.equal((Deno.statSync(`${target}/sub/deeper`).mode ?? 0) & 0o777, 0o755);

    // The older backup, by name ("" has none: by meta name) into the same target: a.txt
    // differs, so it is a conflict without --overwrite.
    const old = await openForRestore(store, te.encode(PW), "meta_2016-01-01_1451606400000");
    const r2 = await restore(old.repo, old.meta, {
      target,
      metaKey: old.metaKey,
      simulate: false,
      overwrite: false,
    });
    assert.equal(r2.failed, 1);
    assert.equal(Deno.readTextFileSync(`${target}/a.txt`), "A2");
    assert.equal(Deno.readTextFileSync(`${target}/sub/dup`), "A");
    const r3 = await restore(old.repo, old.meta, {
      target,
      metaKey: old.metaKey,
      simulate: false,
      overwrite: true,
    });
    assert.equal(r3.failed, 0);
    assert.equal(r3.unchanged, 2);
    assert.equal(Deno.readTextFileSync(`${target}/a.txt`), "A");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
