import assert from "node:assert/strict";
import { formatPackIndex, type IndexEntry, parsePackIndex } from "./pack_index.ts";
import { CorruptDataError } from "../util/errors.ts";

const ENTRIES: IndexEntry[] = [
  { md5: "d41d8cd98f00b204e9800998ecf8427e", where: "0".repeat(32), stored: 0, plain: 0 },
  {
    md5: "5d41402abc4b2a76b9719d911017c592",
    where: `${"a".repeat(32)}.gz`,
    stored: 25,
    plain: 5000,
  },
  { md5: "0cc175b9c0f1b6a831c399e269772661", where: "data.gz", stored: 9, plain: 8_000_000 },
];

Deno.test("pack index: round trip, the empty index too", () => {
  const text = formatPackIndex(ENTRIES);
  assert.equal(
    text.split("\n")[2],
    `5d41402abc4b2a76b9719d911017c592 ${"a".repeat(32)}.gz 25 5000`,
  );
  assert.equal(text.split("\n")[4], "end 3");
  assert.deepEqual(parsePackIndex(text, "index/x"), ENTRIES);
  assert.deepEqual(parsePackIndex(formatPackIndex([]), "index/x"), []);
});

Deno.test("pack index: a format 2 where (-) is no index entry", () => {
  assert.throws(() => formatPackIndex([{ ...ENTRIES[0]!, where: "-" }]), TypeError);
});

Deno.test("pack index: every malformed line refuses the object, naming the line", () => {
  const good = formatPackIndex(ENTRIES).split("\n");
  const cases: [string[], RegExp][] = [
    [["s3backup-index 2", ...good.slice(1)], /line 1 is not "s3backup-index 3"/],
    [good.slice(0, 3), /line 3 is not the end line \(cut short\?\)/],
    [[good[0]!, good[1]!, "end 2"], /line 3 says 2 entries, found 1/],
    [[good[0]!, good[1]!.replace(" 0 0", " 0 -1"), "end 1"], /line 2 is not <md5>/],
    [[good[0]!, good[1]! + " zz", "end 1"], /line 2 is not/],
    [[good[0]!, good[1]!.replace("d41d", "D41D"), "end 1"], /line 2 is not/],
    [[good[0]!, good[1]!.replace(" 0000", " ../x"), "end 1"], /line 2 is not/],
    [[good[0]!, good[1]!.replace(/ 0{32} /, " - "), "end 1"], /line 2 is not/],
    [[good[0]!, good[1]!.replace(/ 0{32} /, " data.bz2 "), "end 1"], /line 2 is not/],
  ];
  for (const [lines, re] of cases) {
    assert.throws(
      () => parsePackIndex(lines.join("\n") + "\n", "index/x"),
      (e) => e instanceof CorruptDataError && re.test(e.message) && /index\/x/.test(e.message),
      lines.join(" | "),
    );
  }
});
