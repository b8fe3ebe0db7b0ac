/**
 * The permissions s3backup runs with: baked into the compiled binary (scripts/compile.sh) and
 * given to every test that runs the program as a child process. Every permission: s3backup reads
 * and writes anywhere (the folder to back up, the restore target, the cache), uses the network
 * (S3), the environment (AWS_*, HOME), subprocesses (`sync`, --password-command, `kill(pid, 0)`)
 * and the system's facts; with subprocesses allowed, Deno's sandbox holds nothing back ("allow-run
 * is effectively the same as allow-all", Deno's docs). A narrower list (read, write, net, env, run,
 * sys) only added Deno's refusal of /proc, /sys and /dev by path: `backup -f / --one-file-system`
 * then ended "partial" with "run again with the --allow-all flag", and Deno resolved the path of
 * every file opened, a `readlink` a component (13% of a local restore: BENCHMARKS.md, seventeenth
 * session). s3backup refuses those file systems itself (src/util/kernel_fs.ts).
 */
export const PERMISSIONS = ["--allow-all"];

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
