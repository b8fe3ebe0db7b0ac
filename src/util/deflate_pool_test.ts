import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import { BLOCK, DeflateError, DeflatePool, gzipBlocks } from "./deflate_pool.ts";

/** A log-like text of `n` bytes (compressible, not uniform). */
function text(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const line = new TextEncoder().encode("2026-12-06T20:00:00Z web1 GET /api/v1/items/");
  let x = 7;
  for (let at = 0; at < n;) {
    out.set(line.subarray(0, Math.min(line.length, n - at)), at);
    at += line.length;
    for (let i = 0; i < 12 && at < n; i++) {
      out[at++] = 48 + ((x = (x * 1103515245 + 12345) >>> 0) >>> 28);
    }
    if (at < n) out[at++] = 10;
  }
  return out;
}

/** `data` written in pieces of `piece` bytes through gzipBlocks(pool): the gzip members. */
async function gzipped(pool: DeflatePool, data: Uint8Array, piece: number): Promise<Uint8Array[]> {
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += piece) pieces.push(data.slice(at, at + piece));
  const out: Uint8Array[] = [];
  for await (const m of ReadableStream.from(pieces).pipeThrough(gzipBlocks(pool, 3))) out.push(m);
  return out;
}

/** What `gzip -dc` (the kit's reader) makes of the members one after another. */
async function gzipDc(members: Uint8Array[]): Promise<Uint8Array> {
  const child = new Deno.Command("gzip", { args: ["-dc"], stdin: "piped", stdout: "piped" })
    .spawn();
  const w = child.stdin.getWriter();
  const writing = (async () => {
    for (const m of members) await w.write(m);
    await w.close();
  })();
  const [out] = await Promise.all([child.output(), writing]);
  assert.equal(out.code, 0);
  return out.stdout;
}

Deno.test("deflate_pool: Workers gzip a member a block, handed out in order; gzip -dc reads them as one", async () => {
  const data = text(5 * BLOCK + 12_345);
  const pool = new DeflatePool(2);
  try {
    const members = await gzipped(pool, data, 100_003);
    assert.equal(pool.broken, false);
    assert.equal(members.length, 6);
    // Each member is a gzip of its block, in order.
    for (const [i, m] of members.entries()) {
      assert.deepEqual(gunzipSync(m), Buffer.from(data.subarray(i * BLOCK, (i + 1) * BLOCK)));
    }
    assert.deepEqual(await gzipDc(members), data);
    // A second stream of the same pool: its blocks again, buffers reused.
    const again = await gzipped(pool, data.subarray(0, BLOCK + 1), BLOCK);
    assert.equal(again.length, 2);
    assert.deepEqual(await gzipDc(again), data.subarray(0, BLOCK + 1));
  } finally {
    pool.close();
  }
});

Deno.test("deflate_pool: Workers that do not load leave every block to the main thread, same bytes", async () => {
  const data = text(3 * BLOCK + 1);
  const pool = new DeflatePool(2, "data:text/javascript,throw new Error('no deflate here')");
  try {
    const members = await gzipped(pool, data, 65_536);
    assert.equal(pool.broken, true);
    assert.equal(members.length, 4);
    assert.deepEqual(await gzipDc(members), data);
  } finally {
    pool.close();
  }
});

Deno.test("deflate_pool: a Worker that fails once started fails the blocks out (DeflateError); later blocks on the main thread", async () => {
  // Ready, then an uncaught error at its first block (as a Worker that runs out of memory).
  const failing = "data:text/javascript," +
    encodeURIComponent(
      "self.onmessage = () => { throw new Error('out of memory'); };" +
        "self.postMessage({ ready: true });",
    );
  const data = text(3 * BLOCK);
  const pool = new DeflatePool(2, failing);
  try {
    await assert.rejects(gzipped(pool, data, BLOCK), (err: Error) => {
      assert.ok(err instanceof DeflateError, String(err));
      assert.match(
        err.message,
        /^Cannot gzip a content: its deflate Worker failed: .*out of memory/,
      );
      return true;
    });
    assert.equal(pool.broken, true);
    // The pool goes on without its Workers: the same bytes, gzipped here.
    const members = await gzipped(pool, data, BLOCK);
    assert.equal(members.length, 3);
    assert.deepEqual(await gzipDc(members), data);
  } finally {
    pool.close();
  }
});

Deno.test("deflate_pool: no Workers (size 0): the main thread, same members; empty input, one empty member", async () => {
  const data = text(BLOCK + 77);
  const pool = new DeflatePool(0);
  const members = await gzipped(pool, data, BLOCK);
  assert.equal(members.length, 2);
  assert.deepEqual(await gzipDc(members), data);
  const empty = await gzipped(pool, new Uint8Array(0), 1);
  assert.equal(empty.length, 1);
  assert.deepEqual(await gzipDc(empty), new Uint8Array(0));
});

Deno.test("deflate_pool: the compiled binary embeds the worker (scripts/compile.sh --include)", async () => {
  const script = await Deno.readTextFile(new URL("../../scripts/compile.sh", import.meta.url));
  assert.match(script, /--include src\/util\/deflate_worker\.ts/);
});
