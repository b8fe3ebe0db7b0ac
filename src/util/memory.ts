/**
 * A full garbage collection at the points where a run drops many megabytes at once (a pack
 * stored, a restored pack let go), when V8 exposes it (`--expose-gc`, baked into the binary by
 * scripts/permissions.ts). The buffers a pack leaves (its members, tar, gzip and ciphertext)
 * are freed only when V8 collects the objects that own them, and V8 counts little of their
 * native memory: without this a 100,000-file backup held 445 MiB, with it 356 (BENCHMARKS.md).
 * About 10-30 ms each, once a pack (16 MiB): under 1% of a run (a restore's also between: see
 * repo/contents.ts RELEASE_EVERY). Without the flag, nothing.
 */
export function releaseMemory(): void {
  (globalThis as { gc?: () => void }).gc?.();
}
