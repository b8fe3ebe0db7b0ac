import assert from "node:assert/strict";
import { orderedPool, pool } from "./pool.ts";

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

Deno.test("orderedPool: results in item order, n at a time, at most `window` taken ahead", async () => {
  let running = 0, most = 0, taken = 0, emitted = 0, mostAhead = 0;
  function* items() {
    for (let i = 0; i < 200; i++) {
      taken++;
      mostAhead = Math.max(mostAhead, taken - emitted);
      yield i;
    }
  }
  const out: number[] = [];
  await orderedPool(items(), 3, 10, (i) => {
    if (i % 4 === 0) return { now: i * 10 }; // no work: still emitted in its turn
    return {
      later: async () => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, (i * 7) % 5)); // out of order
        running--;
        return i * 10;
      },
    };
  }, (i, r) => {
    assert.equal(r, i * 10);
    out.push(i);
    emitted++;
  });
  assert.deepEqual(out, Array.from({ length: 200 }, (_, i) => i));
  assert.equal(most, 3);
  assert.ok(mostAhead <= 11, `taken ahead: ${mostAhead}`);
});

Deno.test("orderedPool: a failing item or emit stops it after the running ones", async () => {
  let started = 0, active = 0;
  const err = await orderedPool([1, 2, 3, 4, 5, 6][Symbol.iterator](), 2, 100, (i) => ({
    later: async () => {
      started++;
      active++;
      await new Promise((r) => setTimeout(r, 5));
      active--;
      if (i === 2) throw new Error("two");
      return i;
    },
  }), () => {}).catch((e) => e);
  assert.equal((err as Error).message, "two");
  assert.equal(active, 0, "the running ones finished first");
  assert.ok(started <= 3, `started ${started}`);
  const seen: number[] = [];
  const err2 = await orderedPool([1, 2, 3][Symbol.iterator](), 2, 100, (i) => ({ now: i }), (i) => {
    seen.push(i);
    if (i === 2) throw new Error("emit");
  }).catch((e) => e);
  assert.equal((err2 as Error).message, "emit");
  assert.deepEqual(seen, [1, 2]);
  const ac = new AbortController();
  ac.abort(new Error("stop"));
  const err3 = await orderedPool(
    [1][Symbol.iterator](),
    1,
    1,
    (i) => ({ now: i }),
    () => {},
    ac.signal,
  )
    .catch((e) => e);
  assert.equal((err3 as Error).message, "stop");
});

Deno.test("orderedPool: an iterator that throws stops it; nothing runs on after", async () => {
  let finished = 0;
  function* items() {
    yield 1;
    throw new Error("walk");
  }
  const err = await orderedPool(items(), 2, 100, () => ({
    later: async () => {
      await new Promise((r) => setTimeout(r, 5));
      finished++;
      return 0;
    },
  }), () => {}).catch((e) => e);
  assert.equal((err as Error).message, "walk");
  const seen = finished;
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(finished, seen, "nothing still runs once it has thrown");
});
