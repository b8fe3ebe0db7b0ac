import assert from "node:assert/strict";
import { CorruptDataError } from "../util/errors.ts";
import {
  encodeEntry,
  encodeMeta,
  formatMtime,
  parseEntry,
  parseMeta,
  parseMtime,
  type RecordedEntry,
  unsafePathReason,
} from "./meta.ts";

const header = {
  time: new Date("2026-11-27T16:31:40.123Z"),
  host: "web1",
  source: "/srv/da ta\n",
  name: "nightly",
  wrappedKey: new Uint8Array([83, 97, 108, 116, 101, 100, 95, 95, 1, 2, 3]),
};

const entries: RecordedEntry[] = [
  {
    type: "f",
    path: " sp \n\r\t\\%-x ü",
    md5: "d41d8cd98f00b204e9800998ecf8427e",
    mode: 0o4755,
    uid: 0,
    gid: 50,
    size: 0,
    mtimeMs: 1764260700500,
  },
  { type: "d", path: "dir ", mode: 0o555, uid: null, gid: null, size: 0, mtimeMs: 0 },
  {
    type: "l",
    path: "a/link",
    mode: 0o777,
    uid: 1,
    gid: 1,
    size: 0,
    mtimeMs: -1500,
    target: "../t a r\nget",
  },
];

Deno.test("meta round trip keeps every field", () => {
  const text = encodeMeta(header, entries);
  const m = parseMeta(text);
  assert.deepEqual(m.entries, entries);
  assert.deepEqual(m.header, header);
});

Deno.test("entry lines: md5 first, path last, documented field layout", () => {
  assert.equal(
    encodeEntry(entries[0]!),
    "d41d8cd98f00b204e9800998ecf8427e f 4755 0 50 0 1764260700.5 -  sp \\n\\r\\t\\\\%-x ü",
  );
  assert.equal(encodeEntry(entries[1]!), "- d 0555 - - 0 0 - dir ");
  assert.equal(encodeEntry(entries[2]!), "- l 0777 1 1 0 -1.5 ../t\\x20a\\x20r\\nget a/link");
  assert.deepEqual(parseEntry(encodeEntry(entries[2]!)), entries[2]);
});

Deno.test("truncated or foreign metas are refused", () => {
  const text = encodeMeta(header, entries);
  const lines = text.split("\n");
  assert.throws(() => parseMeta("garbage"), CorruptDataError);
  assert.throws(() => parseMeta(text.slice(0, -1)), CorruptDataError);
  // drop one entry line: the trailer count no longer matches
  const dropped = [...lines.slice(0, 8), ...lines.slice(9)].join("\n");
  assert.throws(() => parseMeta(dropped), /truncated/);
  // cut after the entries: no trailer
  assert.throws(() => parseMeta(lines.slice(0, 9).join("\n") + "\n"), /truncated/);
  assert.throws(() => parseMeta(text.replace(" f 4755 ", " x 4755 ")), /entry 1 is invalid/);
});

Deno.test("mtime text keeps milliseconds and handles negatives", () => {
  for (const ms of [0, 1, 999, 1000, 1764260700123, -1, -1500, -1000]) {
    assert.equal(parseMtime(formatMtime(ms)), ms);
  }
  assert.equal(formatMtime(1764260700000), "1764260700");
  assert.equal(formatMtime(1764260700120), "1764260700.12");
  assert.equal(parseMtime("1764260700.123456789"), 1764260700123);
});

Deno.test("unsafe paths are named", () => {
  assert.equal(unsafePathReason("a/b c/d"), null);
  assert.equal(unsafePathReason("..."), null);
  assert.equal(unsafePathReason("/etc/passwd"), "absolute path");
  assert.equal(unsafePathReason("a/../b"), "'..' path component");
  assert.equal(unsafePathReason(".."), "'..' path component");
  assert.equal(unsafePathReason("a//b"), "empty path component");
  assert.equal(unsafePathReason("./a"), "'.' path component");
  assert.equal(unsafePathReason(""), "empty path");
});

Deno.test("the root line: the folder's own mode, owner and mtime; absent in older metas", () => {
  const withRoot = {
    ...header,
    root: { mode: 0o750, uid: 1000, gid: null, mtimeMs: 1764260700500 },
  };
  const text = encodeMeta(withRoot, entries);
  assert.ok(text.includes("\nroot 0750 1000 - 1764260700.5\n"), text);
  assert.deepEqual(parseMeta(text).header, withRoot);
  assert.equal(parseMeta(encodeMeta(header, entries)).header.root, undefined);
  const bad = text.replace("root 0750 1000 -", "root 750 1000 -");
  assert.throws(() => parseMeta(bad), /meta header is invalid: bad root/);
});

Deno.test("meta version 3: a file entry says where its content is; version 2 means the root object", () => {
  const file = {
    type: "f" as const,
    path: "a b",
    md5: "5d41402abc4b2a76b9719d911017c592",
    mode: 0o644,
    uid: 1,
    gid: 2,
    size: 5,
    mtimeMs: 1000,
    where: `${"c".repeat(32)}.gz`,
  };
  const line = encodeEntry(file, 3);
  assert.equal(line, `5d41402abc4b2a76b9719d911017c592 f 0644 1 2 5 1 ${"c".repeat(32)}.gz a b`);
  assert.deepEqual(parseEntry(line, 3), file);
  assert.equal(encodeEntry(file, 2), "5d41402abc4b2a76b9719d911017c592 f 0644 1 2 5 1 - a b");
  assert.equal(parseEntry(encodeEntry(file, 2)).where, undefined);
  for (const bad of ["-x", "data.bz2", "C".repeat(32), "packs/x"]) {
    assert.throws(() => parseEntry(line.replace(/ c{32}\.gz /, ` ${bad} `), 3), SyntaxError, bad);
  }
  assert.throws(() => encodeEntry({ ...file, where: undefined }, 3), TypeError);
  const header = {
    version: 3 as const,
    time: new Date(0),
    host: "h",
    source: "/s",
    name: "n",
    wrappedKey: new Uint8Array([1]),
  };
  const text = encodeMeta(header, [file]);
  assert.match(text, /^s3backup-meta 3\n/);
  assert.deepEqual(parseMeta(text), { header, entries: [file] });
  assert.throws(
    () => parseMeta(text.replace("s3backup-meta 3", "s3backup-meta 4")),
    /a version 4 meta file: this version reads versions 2 and 3/,
  );
});

Deno.test("meta: a hard link is an h line in version 3 (where, /, the first path), an f in 2", () => {
  const e = {
    type: "f" as const,
    path: "b/second name",
    md5: "5d41402abc4b2a76b9719d911017c592",
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 5,
    mtimeMs: 1764260700000,
    where: "data.gz",
    linkTo: "a/first name",
  };
  const line = encodeEntry(e, 3);
  assert.equal(
    line,
    "5d41402abc4b2a76b9719d911017c592 h 0644 0 0 5 1764260700 data.gz/a/first\\x20name b/second name",
  );
  assert.deepEqual(parseEntry(line, 3), e);
  assert.equal(encodeEntry(e, 2).split(" ")[1], "f");
  assert.throws(() => parseEntry(line, 2), SyntaxError);
  assert.throws(() => parseEntry(line.replace("data.gz/a", "data.gza"), 3), SyntaxError);
  assert.throws(() => parseEntry(line.replace("data.gz/a/first\\x20name", "data.gz/"), 3));
  assert.throws(() => parseEntry(line.replace("data.gz/", "bogus/"), 3), SyntaxError);
});
