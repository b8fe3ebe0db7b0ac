import assert from "node:assert/strict";
import { readAll } from "../util/bytes.ts";
import { LocalStore } from "./local_store.ts";
import { Rate, throttled, throttleStream } from "./throttle.ts";

const KIB = 1024;

function streamOf(bytes: Uint8Array, chunk: number): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= bytes.length) return c.close();
      c.enqueue(bytes.slice(off, off + chunk));
      off += chunk;
    },
  });
}

Deno.test("throttle: one rate for every transfer at once; the bytes pass unchanged", async () => {
  const rate = new Rate(512 * KIB);
  const data = crypto.getRandomValues(new Uint8Array(64 * KIB));
  const t0 = performance.now();
  // Four streams of 192 KiB (in one 192 KiB chunk each: cut to 64 KiB pieces) = 768 KiB: >= 1.5 s
  // at 512 KiB/s (the first 64 KiB go at once).
  const big = new Uint8Array(192 * KIB).map((_, i) => data[i % data.length]!);
  const out = await Promise.all(
    [0, 1, 2, 3].map(() => readAll(throttleStream(streamOf(big, big.length), rate))),
  );
  const ms = performance.now() - t0;
  for (const o of out) assert.deepEqual(o, big);
  assert.ok(ms >= 1300, `768 KiB at 512 KiB/s took ${ms.toFixed(0)} ms`);
  assert.throws(() => new Rate(0), RangeError);
});

Deno.test("throttle: a throttled store holds saves and loads to their rates, nothing else", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const inner = new LocalStore(dir);
    const store = throttled(inner, { upload: new Rate(256 * KIB) });
    assert.equal(throttled(inner, {}), inner, "no limits: the store itself");
    const body = crypto.getRandomValues(new Uint8Array(64 * KIB));
    const t0 = performance.now();
    for (let i = 0; i < 4; i++) await store.save(`obj${i}`, body);
    const up = performance.now() - t0;
    assert.ok(up >= 700, `256 KiB at 256 KiB/s saved in ${up.toFixed(0)} ms`);
    const t1 = performance.now();
    assert.deepEqual(await readAll(await store.load("obj0")), body, "loads are not limited");
    assert.ok(performance.now() - t1 < up);
    const down = throttled(inner, { download: new Rate(64 * KIB) });
    const t2 = performance.now();
    await Promise.all([0, 1].map(async (i) => readAll(await down.load(`obj${i}`))));
    assert.ok(performance.now() - t2 >= 900, "128 KiB at 64 KiB/s");
    assert.equal(store.kind, "local");
    assert.equal(store.location, inner.location);
    assert.equal(typeof store.flush, "function");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
