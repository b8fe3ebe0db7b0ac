/**
 * Format 1 (s3backup.py) buckets: key derivation and objects checked against the openssl CLI
 * (`openssl enc -aes-256-cbc -md md5`, no -pbkdf2), meta names and lines, and a bucket built
 * by hand with openssl, listed and restored by the engine.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { WrongPasswordError } from "./errors.ts";
import {
  evpBytesToKey,
  isLegacyStore,
  legacyDecryptBytes,
  listLegacyBackups,
  parseLegacyMeta,
  parseLegacyMetaName,
  relativizeLegacyPath,
} from "./legacy.ts";
import { openForRestore, restore, type RestoreEvent } from "./restore.ts";
import { LocalStore } from "./store/local_store.ts";

const te = new TextEncoder();
const PW = "legacy pässword";
const md5 = (b: Uint8Array | string) => createHash("md5").update(b).digest("hex");
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** `openssl enc -aes-256-cbc -md md5 -pass env:PW`, as s3backup.py's encryption.py wrote. */
async function encrypt(data: Uint8Array, pw = PW): Promise<Uint8Array> {
  const p = new Deno.Command("openssl", {
    args: ["enc", "-aes-256-cbc", "-md", "md5", "-pass", "env:PW"],
    env: { PW: pw },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  const [out] = await Promise.all([p.output(), w.write(data).then(() => w.close())]);
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return out.stdout;
}

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
  let wrong = 0;
  for (const pw of ["a", "b", "c", "d"]) {
    try {
      const out = await legacyDecryptBytes(enc, te.encode(pw));
      assert.notEqual(new TextDecoder().decode(out), "some plaintext that is long enough");
    } catch {
      wrong++;
    }
  }
  assert.ok(wrong >= 3);
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
async function legacyBucket(dir: string, files: Record<string, string>, metaKey: string) {
  let lines = "";
  for (const [path, content] of Object.entries(files)) {
    const m = md5(content);
    await Deno.writeFile(`${dir}/${m}`, await encrypt(te.encode(content)));
    lines += `${m} ${path}\n`;
  }
  await Deno.writeFile(`${dir}/${metaKey}`, await encrypt(te.encode(lines)));
}

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
    assert.equal(plan.legacy, true);
    assert.equal(plan.metaKey, "meta_photos_2017-01-01_1483228800000");
    const target = `${dir}/target`;
    const events: RestoreEvent[] = [];
    const r = await restore(plan.repo, plan.meta, {
      target,
      metaKey: plan.metaKey,
      simulate: false,
      overwrite: false,
      legacy: true,
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
      legacy: true,
    });
    assert.equal(r2.failed, 1);
    assert.equal(Deno.readTextFileSync(`${target}/a.txt`), "A2");
    assert.equal(Deno.readTextFileSync(`${target}/sub/dup`), "A");
    const r3 = await restore(old.repo, old.meta, {
      target,
      metaKey: old.metaKey,
      simulate: false,
      overwrite: true,
      legacy: true,
    });
    assert.equal(r3.failed, 0);
    assert.equal(r3.unchanged, 2);
    assert.equal(Deno.readTextFileSync(`${target}/a.txt`), "A");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
