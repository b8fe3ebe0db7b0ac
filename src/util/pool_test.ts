import assert from "node:assert/strict";
import { pool } from "./pool.ts";

Deno.test("pool runs every item, at most n at a time", async () => {
  let running = 0, peak = 0;
  const seen: number[] = [];
  await pool([1, 2, 3, 4, 5, 6, 7], 3, async (i) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 2));
    seen.push(i);
    running--;
  });
  assert.deepEqual(seen.sort(), [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(peak, 3);
});

Deno.test("pool: the first error stops the rest and is thrown after the running ones", async () => {
  const started: number[] = [];
  let finished = 0;
  await assert.rejects(
    pool([1, 2, 3, 4, 5, 6], 2, async (i) => {
      started.push(i);
      if (i === 2) throw new Error("two");
      await new Promise((r) => setTimeout(r, 5));
      finished++;
    }),
    /two/,
  );
  assert.ok(!started.includes(6), `started ${started}`);
  assert.equal(finished, started.length - 1, "the running ones finished before the throw");
});

Deno.test("pool: an aborted signal stops it with its reason", async () => {
  const c = new AbortController();
  const done: number[] = [];
  await assert.rejects(
    pool([1, 2, 3, 4], 1, (i) => {
      done.push(i);
      if (i === 2) c.abort(new Error("stop"));
      return Promise.resolve();
    }, c.signal),
    /stop/,
  );
  assert.deepEqual(done, [1, 2]);
});

Deno.test("pool over an empty list or an iterator", async () => {
  await pool([], 4, () => Promise.reject(new Error("never")));
  const out: string[] = [];
  await pool(new Set(["a", "b"]).values(), 4, (s) => Promise.resolve(void out.push(s)));
  assert.deepEqual(out.sort(), ["a", "b"]);
});
