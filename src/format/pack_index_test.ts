import assert from "node:assert/strict";
import { formatPackIndex, type IndexEntry, type PackIndex, parsePackIndex } from "./pack_index.ts";
import { CorruptDataError } from "../util/errors.ts";

const P0 = "0".repeat(32), PA = "a".repeat(32);
const ENTRIES: IndexEntry[] = [
  { md5: "d41d8cd98f00b204e9800998ecf8427e", where: P0, stored: 0, plain: 0 },
  { md5: "5d41402abc4b2a76b9719d911017c592", where: `${PA}.gz`, stored: 25, plain: 5000 },
  { md5: "0cc175b9c0f1b6a831c399e269772661", where: "data.gz", stored: 9, plain: 8_000_000 },
];
const INDEX: PackIndex = { entries: ENTRIES, packs: new Map([[P0, 1072], [PA, 2096]]) };

Deno.test("pack index: round trip with each pack's size, the empty index too", () => {
  const text = formatPackIndex(INDEX);
  const lines = text.split("\n");
  assert.equal(lines[2], `5d41402abc4b2a76b9719d911017c592 ${PA}.gz 25 5000`);
  assert.deepEqual(lines.slice(4, 7), [`pack ${P0} 1072`, `pack ${PA} 2096`, "end 5"]);
  assert.deepEqual(parsePackIndex(text, "index/x"), INDEX);
  const empty = { entries: [], packs: new Map() };
  assert.deepEqual(parsePackIndex(formatPackIndex(empty), "index/x"), empty);
  // Only the packs of its entries: a size of another pack is not written.
  const one = { entries: ENTRIES.slice(2), packs: INDEX.packs };
  assert.deepEqual(parsePackIndex(formatPackIndex(one), "index/x").packs, new Map());
});

Deno.test("pack index: a format 2 where (-), or a pack without its size, is no index", () => {
  const bad = { entries: [{ ...ENTRIES[0]!, where: "-" }], packs: INDEX.packs };
  assert.throws(() => formatPackIndex(bad), TypeError);
  assert.throws(() => formatPackIndex({ entries: ENTRIES, packs: new Map() }), /no size for pack/);
});

Deno.test("pack index: every malformed line refuses the object, naming the line", () => {
  const good = formatPackIndex({ entries: ENTRIES.slice(0, 1), packs: INDEX.packs }).split("\n");
  const [magic, entry, pack] = good as [string, string, string];
  const cases: [string[], RegExp][] = [
    [["s3backup-index 2", ...good.slice(1)], /line 1 is not "s3backup-index 3"/],
    [good.slice(0, 3), /line 3 is not the end line \(cut short\?\)/],
    [[magic, entry, pack, "end 1"], /line 4 says 1 lines, found 2/],
    [[magic, entry, "end 1"], /line 3 names pack 0{32} without its size/],
    [[magic, entry, pack.replace(" 1072", " -1"), "end 2"], /line 3 is not/],
    [[magic, entry, pack.replace("pack 0", "pack Z"), "end 2"], /line 3 is not/],
    [[magic, entry.replace(" 0 0", " 0 -1"), pack, "end 2"], /line 2 is not <md5>/],
    [[magic, entry + " zz", pack, "end 2"], /line 2 is not/],
    [[magic, entry.replace("d41d", "D41D"), pack, "end 2"], /line 2 is not/],
    [[magic, entry.replace(/ 0{32} /, " - "), pack, "end 2"], /line 2 is not/],
    [[magic, entry.replace(/ 0{32} /, " data.bz2 "), pack, "end 2"], /line 2 is not/],
  ];
  for (const [lines, re] of cases) {
    assert.throws(
      () => parsePackIndex(lines.join("\n") + "\n", "index/x"),
      (e) => e instanceof CorruptDataError && re.test(e.message) && /index\/x/.test(e.message),
      lines.join(" | "),
    );
  }
});
