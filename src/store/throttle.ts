/**
 * Bandwidth limits (`--limit-upload`, `--limit-download`): a store that passes every byte it
 * saves or loads through a rate shared by all transfers in flight, however many jobs run.
 * Each chunk reserves its time on the rate's clock, first come first served; no burst beyond
 * one chunk of at most CHUNK bytes.
 */
import { pause } from "../util/pause.ts";
import { type SaveOptions, type Store, wrapStore } from "./store.ts";

/** Chunks are cut to this size, so that one transfer does not hold the rate for long. */
const CHUNK = 64 * 1024;

/** Bytes a second, shared by everyone who takes from it. */
export class Rate {
  #next = 0;
  constructor(readonly bytesPerSecond: number) {
    if (!(bytesPerSecond > 0)) throw new RangeError("a rate must be positive");
  }

  /** Waits until `n` more bytes fit in the rate. */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    const start = Math.max(now, this.#next);
    this.#next = start + (n / this.bytesPerSecond) * 1000;
    if (start > now) await pause(start - now, signal);
  }
}

/** `source`, at most `rate` bytes a second (chunks cut to CHUNK). */
export function throttleStream(
  source: ReadableStream<Uint8Array>,
  rate: Rate,
  signal?: AbortSignal,
): ReadableStream<Uint8Array> {
  return source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      async transform(chunk, controller) {
        for (let off = 0; off < chunk.byteLength; off += CHUNK) {
          const part = chunk.subarray(off, Math.min(off + CHUNK, chunk.byteLength));
          await rate.take(part.byteLength, signal);
          controller.enqueue(part);
        }
      },
    }),
  );
}

export interface Limits {
  upload?: Rate;
  download?: Rate;
}

/** `inner` with its saves and loads held to `limits` (the other calls pass straight through). */
export function throttled(inner: Store, limits: Limits): Store {
  const { upload, download } = limits;
  if (upload === undefined && download === undefined) return inner;
  return wrapStore(inner, {
    async save(name: string, data: Uint8Array | ReadableStream<Uint8Array>, opts?: SaveOptions) {
      if (upload === undefined) return await inner.save(name, data, opts);
      if (data instanceof Uint8Array) {
        await upload.take(data.byteLength, opts?.signal);
        return await inner.save(name, data, opts);
      }
      return await inner.save(name, throttleStream(data, upload, opts?.signal), opts);
    },
    async load(name: string) {
      const body = await inner.load(name);
      return download === undefined ? body : throttleStream(body, download);
    },
  });
}
