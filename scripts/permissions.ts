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

if (import.meta.main) console.log(PERMISSIONS.join(" "));
