/**
 * The Worker of deflate_pool.ts: says "ready", then gzips each block it is sent (one gzip member
 * each) and sends back the member and the block's buffer (both transferred: the pool reuses its
 * blocks), or the error's message. Its own module so that `deno compile` can embed it
 * (scripts/compile.sh `--include`); it imports node:zlib alone.
 */
/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
import { gzipSync } from "node:zlib";

interface Job {
  id: number;
  block: Uint8Array;
  level: number;
}

/** Blocks between full collections: what zlib hands out is garbage once copied. */
const COLLECT_EVERY = 16;
let done = 0;

self.onmessage = (e: MessageEvent<Job>) => {
  const { id, block, level } = e.data;
  try {
    const z = gzipSync(block, { level });
    const out = new Uint8Array(z.length); // its own buffer: z may be a view of a larger one
    out.set(z);
    self.postMessage({ id, out, block }, [out.buffer, block.buffer as ArrayBuffer]);
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    self.postMessage({ id, error, block }, [block.buffer as ArrayBuffer]);
  }
  if (++done % COLLECT_EVERY === 0) (globalThis as { gc?: () => void }).gc?.();
};
self.postMessage({ ready: true });
