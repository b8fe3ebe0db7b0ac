import assert from "node:assert/strict";
import { randomHex } from "./random.ts";

Deno.test("randomHex: that many random bytes as lowercase hex", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const h = randomHex(6);
    assert.match(h, /^[0-9a-f]{12}$/);
    seen.add(h);
  }
  assert.equal(seen.size, 1000);
  assert.equal(randomHex(0), "");
  // Every byte value has its two digits (a table of 256).
  const all = new Set(Array.from({ length: 64 }, () => randomHex(64)).join("").match(/../g));
  assert.ok(all.size > 200);
});
