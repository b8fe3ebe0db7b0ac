/**
 * The permissions s3backup runs with: baked into the compiled binary (scripts/compile.sh) and
 * given to every test that runs the program as a child process, so that the whole suite shows
 * they are enough. Reading and writing anywhere (the folder to back up, the restore target,
 * the cache), the network (S3), the environment (AWS_*, HOME), subprocesses (`ls -f`, `sync`,
 * --password-command, `kill(pid, 0)` for a lock's holder), and the system's facts (host name,
 * user id, uptime for the boot, the OS release for the AWS SDK, the system's certificate
 * authorities for https; Deno names no narrower set that holds the CAs). No FFI, no imports
 * at run time, no /proc (Deno grants it only with every permission).
 */
export const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
];

/**
 * V8's flags, baked in beside the permissions: a young generation of 1 MiB semi-spaces (Deno's
 * default lets it grow to 48 MiB of garbage, and the buffers it holds wait for it). A 20,000-file
 * backup peaks at 220 MiB instead of 320, at the same speed (BENCHMARKS.md). The old space is
 * left unbounded: a million files need it. `gc()` exposed, for util/memory.ts's one collection a
 * pack.
 */
export const V8_FLAGS = ["--v8-flags=--max-semi-space-size=1,--expose-gc"];

/** What `deno run` and `deno compile` are given: the permissions and V8's flags. */
export const RUN_FLAGS = [...PERMISSIONS, ...V8_FLAGS];

if (import.meta.main) console.log(RUN_FLAGS.join(" "));
