import assert from "node:assert/strict";
import { messageOf, readAll, sameBytes } from "./bytes.ts";
import { randomHex } from "./random.ts";

Deno.test("readAll joins the chunks of a stream", async () => {
  const s = ReadableStream.from([new Uint8Array([1, 2]), new Uint8Array([]), new Uint8Array([3])]);
  assert.deepEqual(await readAll(s), new Uint8Array([1, 2, 3]));
});

Deno.test("sameBytes, messageOf, randomHex", () => {
  assert.ok(sameBytes(new Uint8Array([1]), new Uint8Array([1])));
  assert.ok(!sameBytes(new Uint8Array([1]), new Uint8Array([1, 2])));
  assert.ok(!sameBytes(null, null));
  assert.equal(messageOf(new Error("a\nb")), "a");
  // Deno's words, as a person says them.
  const notFound = new Error("No such file or directory (os error 2): stat '/nonexistent'");
  assert.equal(messageOf(notFound), "No such file or directory");
  assert.equal(messageOf(new Error("Failed to spawn 'nosuchcmd': entity not found")), "not found");
  assert.equal(messageOf("x"), "x");
  assert.match(randomHex(6), /^[0-9a-f]{12}$/);
  assert.notEqual(randomHex(8), randomHex(8));
});
