/**
 * node:zlib's gunzip as a web stream. Deno's own DecompressionStream inflates at about half
 * zlib's speed here (1 GiB of text: 7.6 s, zlib 4.0 s; BENCHMARKS.md). (The writer's gzip:
 * deflate_pool.ts.)
 */
import { createGunzip } from "node:zlib";

/** Compressed bytes given to the gunzip at once (see gunzipStream). */
const GUNZIP_SLICE = 16 * 1024;
/** The size of the chunks zlib hands out. */
const CHUNK = 256 * 1024;

/**
 * A gunzip (one gzip member or several, one after another) as a web stream; a stream that is
 * no gzip, or is cut short, errors. Deflate expands up to ~1000:1 (zeros: a sparse file), and
 * zlib hands out all the output of one chunk in before it takes the next: fed in slices of 16
 * KiB, each is at most ~16 MiB out, and the stream's backpressure holds the rest.
 */
export function gunzipStream(): TransformStream<Uint8Array, Uint8Array> {
  const z = zlibStream(createGunzip({ chunkSize: CHUNK }));
  const slices = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (let i = 0; i < chunk.length; i += GUNZIP_SLICE) {
        controller.enqueue(chunk.subarray(i, i + GUNZIP_SLICE));
      }
    },
  });
  return { writable: slices.writable, readable: slices.readable.pipeThrough(z) };
}

type Zlib = ReturnType<typeof createGunzip>;

function zlibStream(z: Zlib): TransformStream<Uint8Array, Uint8Array> {
  let out: TransformStreamDefaultController<Uint8Array> | undefined;
  let failed: Error | null = null;
  z.on("data", (b: Uint8Array) => out!.enqueue(new Uint8Array(b.buffer, b.byteOffset, b.length)));
  z.on("error", (err: Error) => failed = err);
  return new TransformStream<Uint8Array, Uint8Array>({
    start(controller) {
      out = controller;
    },
    transform(chunk) {
      if (failed) throw failed;
      return new Promise<void>((resolve, reject) => {
        z.write(chunk, (err) => err ? reject(err) : resolve());
      });
    },
    flush() {
      if (failed) throw failed;
      return new Promise<void>((resolve, reject) => {
        z.once("end", () => resolve());
        z.once("error", reject);
        z.end();
      });
    },
  });
}
