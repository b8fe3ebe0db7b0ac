/**
 * The one worker pool: runs `fn` over `items`, at most `n` at a time. The first error stops the
 * others from starting and is thrown once those already running are done; an aborted `signal`
 * does the same with its reason.
 */
export async function pool<T>(
  items: Iterable<T>,
  n: number,
  fn: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const it = items[Symbol.iterator]();
  let failed: { err: unknown } | null = null;
  const worker = async () => {
    while (failed === null) {
      if (signal?.aborted) {
        failed ??= { err: signal.reason };
        return;
      }
      const next = it.next();
      if (next.done) return;
      try {
        await fn(next.value);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, n) }, worker));
  if (failed !== null) throw (failed as { err: unknown }).err;
}

/**
 * Turns of the event loop for work that never waits for I/O (small files read with synchronous
 * calls), which would otherwise hold back every request in flight (a pack's upload, the kit's)
 * until it ends. A timer is armed at the start of each turn and awaited at its end: expired by
 * then, it costs one pass of the loop, in which I/O is served (setImmediate's turns do not
 * serve it in Deno; a fresh setTimeout(0) waits a millisecond or two).
 */
class Turns {
  static readonly MS = 3;
  #due = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #fired: Promise<void> = Promise.resolve();

  constructor() {
    this.#arm();
  }

  /** Lets the event loop run when this turn has lasted MS. */
  async yield(): Promise<void> {
    if (performance.now() < this.#due) return;
    await this.#fired;
    this.#arm();
  }

  stop(): void {
    clearTimeout(this.#timer);
  }

  #arm(): void {
    this.#due = performance.now() + Turns.MS;
    this.#fired = new Promise<void>((r) => this.#timer = setTimeout(r, 0));
  }
}

/** What `orderedPool` does with one item: a result at once, or work for the pool. */
export type Step<R> = { now: R } | { later: () => Promise<R> };

/**
 * Like `pool`, but the results come out in the order of `items`, through `emit`, each as soon as
 * every earlier one has: `step` gives an item's result at once or the work that makes it (run
 * at most `n` at a time). At most `window` items are taken from `items` ahead of the oldest
 * one not emitted yet, so that memory stays bounded however many there are. Errors and
 * `signal` as in `pool`; `items` is read lazily, in the caller's turn.
 */
export async function orderedPool<T, R>(
  items: Iterator<T>,
  n: number,
  window: number,
  step: (item: T) => Step<R>,
  emit: (item: T, result: R) => void | Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const queue: { item: T; done: boolean; result?: R }[] = [];
  let head = 0, waiting = 0, running = 0, settled = 0, ended = false;
  const later: { slot: (typeof queue)[number]; work: () => Promise<R> }[] = [];
  let failed: { err: unknown } | null = null;
  let wake: (() => void) | null = null;
  const turns = new Turns();
  const start = (job: (typeof later)[number]) => {
    running++;
    job.work().then((r) => {
      job.slot.result = r;
      job.slot.done = true;
    }, (err) => (failed ??= { err })).finally(() => {
      running--;
      settled++;
      wake?.();
    });
  };
  while (true) {
    const seen = settled;
    try {
      while (!ended && failed === null && queue.length - head < window) {
        const next = items.next();
        if (next.done) ended = true;
        else {
          const s = step(next.value);
          if ("now" in s) queue.push({ item: next.value, done: true, result: s.now });
          else {
            const slot = { item: next.value, done: false };
            queue.push(slot);
            later.push({ slot, work: s.later });
          }
        }
      }
    } catch (err) {
      failed ??= { err }; // thrown once the running ones are done, as any other
    }
    if (signal?.aborted) failed ??= { err: signal.reason };
    while (failed === null && running < n && waiting < later.length) start(later[waiting++]!);
    while (failed === null && head < queue.length && queue[head]!.done) {
      const slot = queue[head++]!;
      try {
        await emit(slot.item, slot.result as R);
      } catch (err) {
        failed ??= { err };
      }
    }
    if (head > 4096) {
      queue.splice(0, head);
      head = 0;
    }
    if (waiting > 4096) {
      later.splice(0, waiting);
      waiting = 0;
    }
    if (running === 0 && (failed !== null || (ended && head === queue.length))) break;
    if (running > 0 && settled === seen) await new Promise<void>((r) => (wake = r));
    wake = null;
    await turns.yield();
  }
  turns.stop();
  if (failed !== null) throw (failed as { err: unknown }).err;
}

/** At most `n` holders at a time (`use` waits for a free slot). */
export class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(n: number) {
    this.#free = n;
  }

  /** Runs `work` once a slot is free; frees it after. */
  async use<T>(work: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await work();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}
