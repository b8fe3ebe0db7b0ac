import assert from "node:assert/strict";
import { formatPackIndex, type IndexEntry, parsePackIndex } from "./pack_index.ts";
import { CorruptDataError } from "../util/errors.ts";

const ENTRIES: IndexEntry[] = [
  { md5: "d41d8cd98f00b204e9800998ecf8427e", pack: "0".repeat(32), stored: 0, plain: 0, gz: false },
  {
    md5: "5d41402abc4b2a76b9719d911017c592",
    pack: "a".repeat(32),
    stored: 25,
    plain: 5000,
    gz: true,
  },
];

Deno.test("pack index: round trip, the empty index too", () => {
  const text = formatPackIndex(ENTRIES);
  assert.equal(
    text.split("\n")[2],
    `5d41402abc4b2a76b9719d911017c592 ${"a".repeat(32)} 25 5000 gz`,
  );
  assert.deepEqual(parsePackIndex(text, "index/x"), ENTRIES);
  assert.deepEqual(parsePackIndex(formatPackIndex([]), "index/x"), []);
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
  ];
  for (const [lines, re] of cases) {
    assert.throws(
      () => parsePackIndex(lines.join("\n") + "\n", "index/x"),
      (e) => e instanceof CorruptDataError && re.test(e.message) && /index\/x/.test(e.message),
      lines.join(" | "),
    );
  }
});
