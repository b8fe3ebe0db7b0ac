import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  decryptBytes,
  decryptStream,
  decryptSync,
  encryptBytes,
  encryptedSize,
  encryptPartsSync,
  encryptStream,
  encryptSync,
} from "./container.ts";
import { readAll } from "../util/bytes.ts";
import { CorruptDataError } from "../util/errors.ts";

const te = new TextEncoder();

async function openssl(args: string[], input: Uint8Array, env: Record<string, string>) {
  const child = new Deno.Command("openssl", {
    args,
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  const [, out] = await Promise.all([w.write(input).then(() => w.close()), child.output()]);
  return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
}

function sample(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  return b;
}

Deno.test("known answer: fixed salt gives openssl's exact bytes", async () => {
  const salt = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const ours = await encryptBytes(te.encode("hello\n"), te.encode("pw"), 1000, salt);
  // openssl 3 drops the Salted__ header with -S, so compare the ciphertext after it.
  const theirs = await openssl(
    [
      "enc",
      "-aes-256-cbc",
      "-pbkdf2",
      "-iter",
      "1000",
      "-md",
      "sha256",
      "-S",
      "0102030405060708",
      "-pass",
      "env:PW",
    ],
    te.encode("hello\n"),
    { PW: "pw" },
  );
  assert.equal(theirs.code, 0, theirs.stderr);
  const tail = theirs.stdout.length === ours.length ? theirs.stdout.subarray(16) : theirs.stdout;
  assert.deepEqual(ours.subarray(16), tail);
  assert.deepEqual(ours.subarray(0, 8), te.encode("Salted__"));
});

for (const size of [0, 1, 15, 16, 17, 4096, 40_000, 1_000_003]) {
  Deno.test(`tool -> openssl -d round trip, ${size} bytes`, async () => {
    const data = sample(size);
    const enc = await encryptBytes(data, te.encode("pässwörd"), 1);
    assert.equal(enc.length, encryptedSize(size));
    const dec = await openssl(
      ["enc", "-d", "-aes-256-cbc", "-pbkdf2", "-iter", "1", "-md", "sha256", "-pass", "env:PW"],
      enc,
      { PW: "pässwörd" },
    );
    assert.equal(dec.code, 0, dec.stderr);
    assert.deepEqual(dec.stdout, data);
  });

  Deno.test(`openssl -> tool round trip, ${size} bytes`, async () => {
    const data = sample(size);
    const enc = await openssl(
      ["enc", "-aes-256-cbc", "-pbkdf2", "-iter", "7", "-md", "sha256", "-pass", "env:PW"],
      data,
      { PW: "k".repeat(64) },
    );
    assert.equal(enc.code, 0, enc.stderr);
    assert.deepEqual(await decryptBytes(enc.stdout, te.encode("k".repeat(64)), 7), data);
  });
}

Deno.test("the synchronous and whole-buffer paths write and read exactly the streams' bytes", async () => {
  const salt = Uint8Array.from([8, 7, 6, 5, 4, 3, 2, 1]);
  const pw = te.encode("p");
  for (const size of [0, 15, 16, 4097, 32 * 1024 + 1, 256 * 1024]) {
    const data = sample(size);
    const streamed = await readAll(
      ReadableStream.from([data]).pipeThrough(encryptStream(pw, 3, salt)),
    );
    assert.deepEqual(encryptSync(data, pw, 3, salt), streamed, `${size} bytes`);
    assert.deepEqual(await encryptBytes(data, pw, 3, salt), streamed, `${size} bytes, bytes`);
    assert.deepEqual(decryptSync(streamed, pw, 3), data);
    assert.deepEqual(await decryptBytes(streamed, pw, 3), data);
    if (size > 0) {
      const cut = streamed.slice(0, -16);
      await assert.rejects(decryptBytes(cut, te.encode("wrong"), 3), CorruptDataError);
    }
    const back = ReadableStream.from([encryptSync(data, pw, 3)]).pipeThrough(decryptStream(pw, 3));
    assert.deepEqual(await readAll(back), data);
  }
  assert.throws(() => decryptSync(te.encode("Salted__12345678abc"), pw, 3), CorruptDataError);
});

Deno.test("parts encrypted one after another are the container of their concatenation, byte for byte", () => {
  const salt = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const pw = te.encode("p");
  const data = sample(100_003);
  // Cuts inside blocks, empty parts, a part of one byte: CBC carries over between them.
  for (const cuts of [[], [0], [1], [15, 16, 17], [5000, 5000, 65536, 99_999], [100_003]]) {
    const parts: Uint8Array[] = [];
    let at = 0;
    for (const c of [...cuts, data.length]) {
      parts.push(data.subarray(at, c));
      at = c;
    }
    const whole = encryptSync(data, pw, 3, salt);
    assert.deepEqual(encryptPartsSync(parts, pw, 3, salt), whole, `cut at ${cuts}`);
    assert.equal(whole.length, encryptedSize(data.length));
  }
  assert.deepEqual(encryptPartsSync([], pw, 3, salt), encryptSync(new Uint8Array(0), pw, 3, salt));
});

Deno.test("streaming in odd chunk sizes gives the same plaintext", async () => {
  const data = sample(300_001);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += 777) chunks.push(data.subarray(i, i + 777));
  const enc = await readAll(
    ReadableStream.from(chunks).pipeThrough(encryptStream(te.encode("p"), 1)),
  );
  const encChunks: Uint8Array[] = [];
  for (let i = 0; i < enc.length; i += 5) encChunks.push(enc.subarray(i, i + 5));
  const dec = await readAll(
    ReadableStream.from(encChunks).pipeThrough(decryptStream(te.encode("p"), 1)),
  );
  assert.equal(
    createHash("md5").update(dec).digest("hex"),
    createHash("md5").update(data).digest("hex"),
  );
});

Deno.test("wrong passphrase or garbage is a CorruptDataError, never silent", async () => {
  const enc = await encryptBytes(sample(1000), te.encode("right"), 1);
  let silent = 0;
  for (let i = 0; i < 20; i++) {
    try {
      await decryptBytes(enc, te.encode(`wrong${i}`), 1);
      silent++; // padding passed by chance (about 1 in 256): callers must check content
    } catch (err) {
      assert.ok(err instanceof CorruptDataError);
    }
  }
  assert.ok(silent < 5);
  await assert.rejects(
    decryptBytes(te.encode("not encrypted at all!"), te.encode("x"), 1),
    CorruptDataError,
  );
  await assert.rejects(decryptBytes(enc.subarray(0, 10), te.encode("right"), 1), CorruptDataError);
  await assert.rejects(
    decryptBytes(enc.subarray(0, enc.length - 3), te.encode("right"), 1),
    CorruptDataError,
  );
});
