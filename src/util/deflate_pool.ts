/**
 * Deflate off the main thread. Deno runs node:zlib's calls, asynchronous ones too, on the main
 * thread, where a backup also reads, hashes and uploads: a large compressible content (a log, a
 * database dump) was bound by one core's deflate. `gzipBlocks` cuts a stream into blocks of
 * BLOCK bytes and gzips each as a gzip member of its own (RFC 1952 §2.2: `gzip -d` and zlib read
 * the members one after the other as one stream; FORMAT.md §4.2), on a few Workers at once, and
 * hands the members out in order, holding at most two blocks a Worker. Blocks travel to the
 * Workers and back without a copy (transferred) and are used again.
 *
 * A Worker that does not start (a binary built without deflate_worker.ts) leaves every block to
 * the main thread: slower, never wrong. One that fails once started fails every block out at
 * that moment (their streams error with a DeflateError: the backup stops, nothing wrong stored)
 * and the pool goes on on the main thread.
 */
import { gzipSync } from "node:zlib";
import { S3BackupError } from "./errors.ts";

/** A Worker could not gzip a block (it failed, or the pool was closed meanwhile). */
export class DeflateError extends S3BackupError {}

/** Bytes of input a gzip member holds (the last one fewer). */
export const BLOCK = 1024 * 1024;

interface Job {
  resolve: (out: Uint8Array) => void;
  reject: (err: DeflateError) => void;
}

interface Reply {
  ready?: boolean;
  id: number;
  out?: Uint8Array;
  error?: string;
  block: Uint8Array;
}

/** The Workers of a run, started at the first block and stopped by `close`. */
export class DeflatePool {
  #workers: Promise<Worker[] | null> | null = null;
  #broken = false;
  #next = 0;
  #id = 0;
  readonly #jobs = new Map<number, Job>();
  /** Blocks back from the Workers, to be filled again. */
  readonly #spare: Uint8Array[] = [];

  /**
   * `size` Workers (default: two; none on a single core, where they would only cost memory; 0:
   * every block on the main thread); `url`, the worker module (tests give one that does not
   * load).
   */
  constructor(
    readonly size = (navigator.hardwareConcurrency ?? 1) >= 2 ? 2 : 0,
    readonly url: string = new URL("./deflate_worker.ts", import.meta.url).href,
  ) {}

  /** Whether the Workers are gone (every block since on the main thread). */
  get broken(): boolean {
    return this.#broken;
  }

  /** An empty block of BLOCK bytes (one back from a Worker, else a new one). */
  block(): Uint8Array {
    return this.#spare.pop() ?? new Uint8Array(BLOCK);
  }

  /** The gzip member of `block`, whose buffer is taken (the pool's again: `block()`). */
  async gzip(block: Uint8Array, level: number): Promise<Uint8Array> {
    const w = await this.#worker();
    if (w === null) return gzipSync(block, { level });
    const id = this.#id++;
    return await new Promise<Uint8Array>((resolve, reject) => {
      this.#jobs.set(id, { resolve, reject });
      w.postMessage({ id, block, level }, [block.buffer as ArrayBuffer]);
    });
  }

  /** Stops the Workers; blocks still out fail. */
  close(): void {
    this.#fail(
      new DeflateError("Cannot gzip a content: the backup is ending (its Workers stopped)"),
    );
  }

  async #worker(): Promise<Worker | null> {
    if (this.#broken || this.size < 1) return null;
    const ws = await (this.#workers ??= this.#startAll());
    if (ws === null || this.#broken) return null;
    return ws[this.#next++ % ws.length]!;
  }

  /** The Workers, once each said it is ready; null when one does not start. */
  async #startAll(): Promise<Worker[] | null> {
    const ws: Worker[] = [];
    try {
      for (let i = 0; i < this.size; i++) ws.push(await this.#start());
      return ws;
    } catch {
      for (const w of ws) w.terminate();
      this.#broken = true;
      return null;
    }
  }

  #start(): Promise<Worker> {
    return new Promise((resolve, reject) => {
      let w: Worker;
      try {
        w = new Worker(this.url, { type: "module" });
      } catch (err) {
        return reject(err);
      }
      w.onmessage = (e: MessageEvent<Reply>) => {
        if (e.data.ready) return resolve(w);
        this.#answer(e.data);
      };
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault(); // (not the process's uncaught error)
        w.terminate();
        reject(new Error(e.message));
        this.#fail(
          new DeflateError(`Cannot gzip a content: its deflate Worker failed: ${e.message}`),
        );
      };
    });
  }

  #answer(r: Reply): void {
    const job = this.#jobs.get(r.id);
    if (job === undefined) return;
    this.#jobs.delete(r.id);
    if (r.block.length === BLOCK) this.#spare.push(r.block);
    if (r.out !== undefined) job.resolve(r.out);
    else job.reject(new DeflateError(`Cannot gzip a content: ${r.error ?? "no answer"}`));
  }

  #fail(err: DeflateError): void {
    this.#broken = true;
    const ws = this.#workers;
    this.#workers = Promise.resolve(null);
    ws?.then((list) => list?.forEach((w) => w.terminate()));
    for (const job of this.#jobs.values()) job.reject(err);
    this.#jobs.clear();
  }
}

/**
 * A gzip stream (RFC 1952 members of BLOCK bytes of input each, at `level`) of what is written,
 * deflated by `pool`; at most two blocks a Worker are out at once (backpressure meanwhile).
 */
export function gzipBlocks(
  pool: DeflatePool,
  level: number,
): TransformStream<Uint8Array, Uint8Array> {
  const out: Promise<Uint8Array>[] = [];
  const most = Math.max(1, 2 * pool.size);
  let block = pool.block(), have = 0, sent = 0;
  const send = async (controller: TransformStreamDefaultController<Uint8Array>, last: boolean) => {
    if (have > 0 || (last && sent === 0)) { // (nothing written: one empty member, still a gzip)
      sent++;
      const p = pool.gzip(have === BLOCK ? block : block.subarray(0, have), level);
      p.catch(() => {}); // (awaited below, in order)
      out.push(p);
      block = last ? block : pool.block();
      have = 0;
    }
    while (out.length > (last ? 0 : most - 1)) controller.enqueue(await out.shift()!);
  };
  return new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      for (let at = 0; at < chunk.length;) {
        const n = Math.min(BLOCK - have, chunk.length - at);
        block.set(chunk.subarray(at, at + n), have);
        have += n;
        at += n;
        if (have === BLOCK) await send(controller, false);
      }
    },
    flush: (controller) => send(controller, true),
  });
}
