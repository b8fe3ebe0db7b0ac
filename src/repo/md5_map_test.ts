import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Md5Map } from "./md5_map.ts";

const md5 = (i: number) => createHash("md5").update(String(i)).digest("hex");

Deno.test("Md5Map: what is set is got, through growth; values interned; no MD5 no entry", () => {
  const m = new Md5Map();
  const n = 20_000; // grows from 1,024 slots several times
  for (let i = 0; i < n; i++) m.set(md5(i), i % 3 === 0 ? "data" : `pack${i % 7}`);
  assert.equal(m.size, n);
  for (let i = 0; i < n; i++) assert.equal(m.get(md5(i)), i % 3 === 0 ? "data" : `pack${i % 7}`);
  assert.equal(m.get(md5(n)), undefined);
  m.set(md5(5), "data.gz"); // set again: replaced, not added
  assert.equal(m.get(md5(5)), "data.gz");
  assert.equal(m.size, n);
  // Keys that collide in their first word still differ.
  const a = "00000000" + "1".repeat(24), b = "00000000" + "2".repeat(24);
  m.set(a, "x");
  assert.equal(m.get(b), undefined);
  m.set(b, "y");
  assert.deepEqual([m.get(a), m.get(b)], ["x", "y"]);
  assert.equal(m.get("not an md5"), undefined);
  assert.equal(m.get(md5(1).toUpperCase()), undefined);
  assert.throws(() => m.set("xyz", "data"), TypeError);
  // Every digit's value, at both ends of the range; a character beside each range is none.
  const hi = "f".repeat(32), lo = "0".repeat(32), mid = "0123456789abcdef".repeat(2);
  m.set(hi, "hi");
  m.set(lo, "lo");
  m.set(mid, "mid");
  assert.deepEqual([m.get(hi), m.get(lo), m.get(mid)], ["hi", "lo", "mid"]);
  for (const c of ["/", ":", "`", "g", "A", "F"]) {
    assert.equal(m.get(c + hi.slice(1)), undefined, c);
    assert.throws(() => m.set(lo.slice(1) + c, "data"), TypeError, c);
  }
  assert.throws(() => m.set(hi + "0", "data"), TypeError);
});
