import assert from "node:assert/strict";
import { parseMetaName } from "../format/layout.ts";
import { NoSuchBackupError, selectMeta } from "./select.ts";

const metas = [
  "meta_a_20260101T000000Z",
  "meta_b_20260102T000000Z",
  "meta_a_20260103T000000Z",
].map((k) => parseMetaName(k)!);

Deno.test("selectMeta: exact name, latest, latest of a name, a backup name", () => {
  assert.equal(selectMeta(metas, "latest", undefined, "x").key, "meta_a_20260103T000000Z");
  assert.equal(selectMeta(metas, "latest", "b", "x").key, "meta_b_20260102T000000Z");
  assert.equal(selectMeta(metas, "b", undefined, "x").key, "meta_b_20260102T000000Z");
  assert.equal(
    selectMeta(metas, "meta_a_20260101T000000Z", undefined, "x").key,
    "meta_a_20260101T000000Z",
  );
});

Deno.test("selectMeta: one error class for every way of asking for what is not there", () => {
  assert.throws(() => selectMeta(metas, "c", undefined, "s3://b"), NoSuchBackupError);
  assert.throws(
    () => selectMeta(metas, "c", undefined, "s3://b"),
    /No backup named "c" in s3:\/\/b/,
  );
  assert.throws(() => selectMeta([], "latest", undefined, "s3://b"), /No backups in s3:\/\/b/);
  assert.throws(() => selectMeta(metas, "latest", "zz", "s3://b"), /No backup named "zz"/);
  assert.throws(
    () => selectMeta(metas, "meta_z_20300101T000000Z", undefined, "s3://b"),
    /No backup meta_z_20300101T000000Z in s3:\/\/b/,
  );
});
