import assert from "node:assert/strict";
import {
  checkBackupName,
  classify,
  compareMetaNames,
  defaultBackupName,
  formatMetaName,
  newObjectId,
  parseMetaName,
  placeOf,
} from "./layout.ts";
import { UsageError } from "../util/errors.ts";

Deno.test("meta names round trip and keep underscores in backup names", () => {
  const t = new Date("2026-11-27T16:31:40.789Z");
  const key = formatMetaName("web_1.daily", t);
  assert.equal(key, "meta_web_1.daily_20261127T163140Z");
  const p = parseMetaName(key)!;
  assert.equal(p.name, "web_1.daily");
  assert.equal(p.time.toISOString(), "2026-11-27T16:31:40.000Z");
});

Deno.test("foreign names are not metas", () => {
  assert.equal(parseMetaName("meta_x"), null);
  assert.equal(parseMetaName("d41d8cd98f00b204e9800998ecf8427e"), null);
  assert.equal(parseMetaName("meta_x_20261399T000000Z"), null);
});

Deno.test("backup names are checked", () => {
  assert.throws(() => checkBackupName("a b"), UsageError);
  assert.throws(() => checkBackupName(""), UsageError);
  assert.throws(() => checkBackupName("latest"), UsageError);
  assert.throws(() => checkBackupName("x".repeat(65)), UsageError);
  assert.equal(checkBackupName("ok-1.2_3"), "ok-1.2_3");
  assert.equal(defaultBackupName("/srv/my data/"), "my_data");
  assert.equal(defaultBackupName("/"), "backup");
  assert.equal(defaultBackupName(".."), "backup");
});

Deno.test("meta names sort by time, then name", () => {
  const a = parseMetaName("meta_z_20250101T000000Z")!;
  const b = parseMetaName("meta_a_20260101T000000Z")!;
  const c = parseMetaName("meta_b_20260101T000000Z")!;
  assert.deepEqual([c, b, a].sort(compareMetaNames).map((m) => m.key), [a.key, b.key, c.key]);
});

Deno.test("layout: where a content is (FORMAT.md §4), and format 3 names classified", () => {
  const md5 = "5d41402abc4b2a76b9719d911017c592", pack = "ab".repeat(16);
  assert.deepEqual(placeOf(md5, pack), { key: `packs/${pack}`, member: md5, gz: false });
  assert.deepEqual(placeOf(md5, `${pack}.gz`), {
    key: `packs/${pack}`,
    member: `${md5}.gz`,
    gz: true,
  });
  assert.deepEqual(placeOf(md5, "data"), { key: `data/${md5}`, member: null, gz: false });
  assert.deepEqual(placeOf(md5, "data.gz"), { key: `data/${md5}.gz`, member: null, gz: true });
  assert.deepEqual(placeOf(md5, "-"), { key: md5, member: null, gz: false });
  for (const bad of ["", "-.gz", "data.zst", pack.toUpperCase(), `${pack}x`]) {
    assert.throws(() => placeOf(md5, bad), TypeError, bad);
  }
  assert.equal(classify(`packs/${pack}`).kind, "pack");
  assert.equal(classify(`index/${pack}`).kind, "index");
  assert.equal(classify(`data/${md5}`).kind, "data3");
  assert.equal(classify(`data/${md5}.gz`).kind, "data3");
  assert.equal(classify(`data/${md5}.zst`).kind, "other");
  assert.equal(classify(`packs/${pack}/x`).kind, "other");
  assert.match(newObjectId(), /^[0-9a-f]{32}$/);
});
