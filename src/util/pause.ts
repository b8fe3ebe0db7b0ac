/** Waiting that a signal can cut short. */
import { InterruptedError } from "./errors.ts";

/** Sleeps `ms`, or until `signal` aborts (then throws its reason). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const stop = () => reject(signal?.reason ?? new InterruptedError("Interrupted"));
    if (signal?.aborted) return stop();
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      stop();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
