import assert from "node:assert/strict";
import { gunzipSync, gzipSync } from "node:zlib";
import { denseGzip } from "./dense_gzip.ts";

/** A deterministic byte source. */
function bytes(n: number, seed: number, zeros = 0): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = (x >>> 24) % 100 < zeros ? 0 : x >>> 24;
  }
  return out;
}

/** A segment of `parts` one after another, with the spans of those marked as stored. */
function segment(parts: [Uint8Array, boolean][]): { data: Uint8Array; spans: number[] } {
  const data = new Uint8Array(parts.reduce((n, [p]) => n + p.length, 0));
  const spans: number[] = [];
  let at = 0;
  for (const [p, stored] of parts) {
    data.set(p, at);
    if (stored) spans.push(at, at + p.length);
    at += p.length;
  }
  return { data, spans };
}

/** What `gzip -dc` makes of `gz`. */
async function gunzipCli(gz: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("gzip", { args: ["-dc"], stdin: "piped", stdout: "piped" })
    .spawn();
  const w = child.stdin.getWriter();
  await w.write(gz);
  await w.close();
  const out = await child.output();
  assert.equal(out.code, 0);
  return out.stdout;
}

const CASES: [string, [Uint8Array, boolean][]][] = [
  ["empty", []],
  ["only coded zeros", [[new Uint8Array(10_000), false]]],
  ["only stored", [[bytes(5_000, 1), true]]],
  ["a stored span over 64 KiB", [[new Uint8Array(3), false], [bytes(200_000, 2), true]]],
  ["runs of every length", [[bytes(4_000, 3, 60), false]]],
  [
    "zeros 0..600 long between two bytes",
    Array.from({ length: 601 }, (_, n) => [new Uint8Array([7, ...new Uint8Array(n), 9]), false]),
  ],
  [
    "tar-like: headers, stored contents, padding",
    Array.from({ length: 40 }, (_, k): [Uint8Array, boolean][] => [
      [new Uint8Array(512).fill(0x30, 0, 40), false],
      [bytes(k * 97 + 128, k), true],
      [new Uint8Array((512 - ((k * 97 + 128) % 512)) % 512), false],
    ]).flat(),
  ],
  [
    "an empty span, spans side by side, coded bytes of every value",
    [[bytes(10, 4), true], [new Uint8Array(0), true], [bytes(300, 5), true], [
      bytes(3000, 6, 30),
      false,
    ]],
  ],
];

Deno.test("denseGzip: zlib and gzip(1) read back its input, whatever is stored or coded", async () => {
  for (const [what, parts] of CASES) {
    const { data, spans } = segment(parts);
    const gz = denseGzip(data, spans);
    assert.deepEqual(new Uint8Array(gunzipSync(gz)), data, what);
    assert.deepEqual(await gunzipCli(gz), data, `${what}: gzip -dc`);
  }
});

Deno.test("denseGzip: a tar of incompressible contents takes about what zlib's level 1 makes of it", () => {
  const { data, spans } = segment(CASES[6]![1]);
  const ours = denseGzip(data, spans).length, zlib = gzipSync(data, { level: 1 }).length;
  assert.ok(ours <= zlib * 1.05, `${ours} bytes against zlib's ${zlib}`);
  assert.ok(ours < data.length, `${ours} bytes of ${data.length}`);
});
