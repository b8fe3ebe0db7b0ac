/**
 * Format 1 (s3backup.py) buckets: key derivation and objects checked against the openssl CLI
 * (`openssl enc -aes-256-cbc -md md5`, no -pbkdf2), meta names and lines, and a bucket built
 * by hand with openssl, listed and restored by the engine.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { WrongPasswordError } from "../util/errors.ts";
import { encryptLegacy as encrypt, LEGACY_PW as PW } from "../../test/legacy_bucket.ts";
import {
  evpBytesToKey,
  legacyDecryptBytes,
  parseLegacyMeta,
  parseLegacyMetaName,
  relativizeLegacyPath,
} from "./legacy.ts";

const te = new TextEncoder();
const md5 = (b: Uint8Array | string) => createHash("md5").update(b).digest("hex");
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("legacy: EVP_BytesToKey(MD5, 1) is what openssl enc -md md5 derives", async () => {
  for (const [pw, salt] of [[PW, "0011223344556677"], ["x", "ffeeddccbbaa9988"]] as const) {
    const out = await new Deno.Command("openssl", {
      args: ["enc", "-aes-256-cbc", "-md", "md5", "-P", "-S", salt, "-pass", "env:PW"],
      env: { PW: pw },
      stdout: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    const key = /key\s*=\s*([0-9A-F]+)/.exec(text)![1]!.toLowerCase();
    const iv = /iv\s*=\s*([0-9A-F]+)/.exec(text)![1]!.toLowerCase();
    const saltBytes = new Uint8Array(salt.match(/../g)!.map((h) => parseInt(h, 16)));
    const got = evpBytesToKey(te.encode(pw), saltBytes);
    assert.equal(hex(got.key), key);
    assert.equal(hex(got.iv), iv);
  }
});

Deno.test("legacy: objects written by openssl decrypt; a wrong password does not", async () => {
  for (const size of [0, 1, 15, 16, 17, 100_000]) {
    const data = new Uint8Array(size).map((_, i) => (i * 31 + 7) & 0xff);
    const enc = await encrypt(data);
    assert.deepEqual(await legacyDecryptBytes(enc, te.encode(PW)), data);
  }
  const enc = await encrypt(te.encode("some plaintext that is long enough"));
  // 20 wrong passwords, at least 15 refused: with 4 and "3 refused", two chance passes of
  // the padding (about 1 in 10,000 runs) failed CI once.
  let wrong = 0;
  for (const pw of "abcdefghijklmnopqrst") {
    let out: Uint8Array | null = null;
    try {
      out = await legacyDecryptBytes(enc, te.encode(pw));
    } catch {
      wrong++;
    }
    // Padding can pass by chance (about 1 in 256): the plaintext is then garbage, never it.
    if (out !== null) {
      assert.notEqual(new TextDecoder().decode(out), "some plaintext that is long enough");
    }
  }
  assert.ok(wrong >= 15, `${wrong} of 20 refused`);
});

Deno.test("legacy: meta names", () => {
  assert.deepEqual(parseLegacyMetaName("meta_2017-03-04_1488640000123"), {
    key: "meta_2017-03-04_1488640000123",
    name: "",
    time: new Date(1488640000123),
  });
  assert.equal(parseLegacyMetaName("meta_my_photos_2017-03-04_1488640000123")?.name, "my_photos");
  assert.equal(parseLegacyMetaName("meta_x-y_2017-03-04_1")?.name, "x-y");
  assert.equal(parseLegacyMetaName("meta_nightly_20261127T163140Z"), null);
  assert.equal(parseLegacyMetaName("meta_2017-03-04"), null);
  assert.equal(parseLegacyMetaName("meta_x_2017-3-4_1"), null);
});

Deno.test("legacy: meta lines, continuation lines, tar-like paths, bad names", () => {
  const a = md5("a"), b = md5("b"), c = md5("c"), d = md5("d");
  const text = new Uint8Array([
    ...te.encode(`${a} docs/a.txt\n${b} /home/ann/photos/new\nline\n${c} ../up/c\n`),
    ...te.encode(`${d} bad-`),
    0xff,
    ...te.encode(`-name\n${a} trailing newline\n\n`),
  ]);
  const meta = parseLegacyMeta(text, "meta_x_2017-01-01_5", new Date(5), "x");
  assert.deepEqual(
    meta.entries.map((e) => `${e.type} ${e.path} ${e.md5 ?? "-"} ${e.mode.toString(8)}`),
    [
      "d docs - 755",
      `f docs/a.txt ${a} 644`,
      "d home - 755",
      "d home/ann - 755",
      "d home/ann/photos - 755",
      `f home/ann/photos/new\nline ${b} 644`,
      "d up - 755",
      `f up/c ${c} 644`,
      `f trailing newline\n ${a} 644`,
    ],
  );
  assert.equal(meta.problems.length, 1);
  assert.match(meta.problems[0]!.message, /not valid UTF-8/);
  assert.match(meta.notes[0]!, /2 paths were absolute/);
  assert.deepEqual(relativizeLegacyPath("//a/./b"), { path: "a/./b", changed: true });
  assert.deepEqual(relativizeLegacyPath("./../.././x"), { path: "x", changed: true });
  assert.throws(
    () => parseLegacyMeta(te.encode("garbage\n"), "meta_2017-01-01_5", new Date(5), ""),
    WrongPasswordError,
  );
  assert.deepEqual(parseLegacyMeta(new Uint8Array(), "k", new Date(5), "").entries, []);
});

/** A format 1 bucket in a directory, written with the openssl CLI only. */
