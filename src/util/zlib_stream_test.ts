import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { gunzipStream } from "./zlib_stream.ts";

async function through(
  t: TransformStream<Uint8Array, Uint8Array>,
  chunks: Uint8Array[],
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of ReadableStream.from(chunks).pipeThrough(t)) out.push(c);
  return out;
}

const join = (cs: Uint8Array[]) => {
  const all = new Uint8Array(cs.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of cs) all.set(c, (at += c.length) - c.length);
  return all;
};

Deno.test("zlib_stream: gunzip gives the bytes back, in chunks of 256 KiB at most", async () => {
  const data = new TextEncoder().encode("a line of a log file, 1234567890\n".repeat(100_000));
  const gz = gzipSync(data, { level: 3 });
  assert.ok(gz.length < data.length / 10);
  const back = await through(gunzipStream(), [gz]);
  assert.deepEqual(join(back), data);
  assert.ok(back.every((c) => c.length <= 256 * 1024));
});

Deno.test("zlib_stream: gunzip reads members one after another (FORMAT.md 4.2)", async () => {
  const a = new TextEncoder().encode("first member\n"), b = new TextEncoder().encode("second\n");
  const out = join(await through(gunzipStream(), [join([gzipSync(a), gzipSync(b)])]));
  assert.equal(new TextDecoder().decode(out), "first member\nsecond\n");
});

Deno.test("zlib_stream: 64 MiB of zeros from one 64 KiB chunk comes out in bounded pieces", async () => {
  const gz = gzipSync(new Uint8Array(64 * 1024 * 1024), { level: 9 });
  let n = 0, max = 0;
  for await (const c of ReadableStream.from([gz]).pipeThrough(gunzipStream())) {
    n += c.length;
    max = Math.max(max, c.length);
  }
  assert.equal(n, 64 * 1024 * 1024);
  assert.ok(max <= 256 * 1024, `${max}`);
});

Deno.test("zlib_stream: no gzip, or one cut short, is an error", async () => {
  await assert.rejects(through(gunzipStream(), [new TextEncoder().encode("plain text, no gzip")]));
  const gz = gzipSync(new TextEncoder().encode("x".repeat(10_000) + "y".repeat(5000)));
  await assert.rejects(through(gunzipStream(), [gz.subarray(0, gz.length - 10)]));
});
