import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ContentSizes } from "./content_sizes.ts";

const md5 = (i: number) => createHash("md5").update(String(i)).digest("hex");

Deno.test("content sizes: set, get, overwrite, NaN for absent, across growth; like a Map", () => {
  const c = new ContentSizes(4);
  const m = new Map<string, number>();
  for (let i = 0; i < 20_000; i++) {
    const size = i % 7 === 0 ? NaN : i * 3;
    c.set(md5(i), size);
    m.set(md5(i), size);
  }
  for (let i = 0; i < 20_000; i += 3) [c.set(md5(i), i), m.set(md5(i), i)];
  assert.equal(c.size, m.size);
  for (let i = 0; i < 20_500; i++) assert.deepEqual(c.get(md5(i)), m.get(md5(i)), String(i));
  assert.ok(Number.isNaN(c.get(md5(7))!));
  assert.equal(c.get(md5(1).toUpperCase()), m.get(md5(1)), "hex in either case");
  assert.equal(c.has(md5(20_001)), false);
  assert.throws(() => c.get("not an md5"), TypeError);
  assert.throws(() => c.get("g".repeat(32)), TypeError);
  assert.throws(() => c.set(md5(1), -1), RangeError);
  c.set(md5(5), 1, true);
  c.set(md5(50_000), 2, true);
  assert.deepEqual([...c.ours()].sort(), [md5(5), md5(50_000)].sort(), "what this run stored");
});
