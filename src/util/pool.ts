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
