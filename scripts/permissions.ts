/**
 * The permissions s3backup runs with: baked into the compiled binary (scripts/compile.sh) and
 * given to every test that runs the program as a child process, so that the whole suite shows
 * they are enough. Reading and writing anywhere (the folder to back up, the restore target,
 * the cache), the network (S3), the environment (AWS_*, HOME), subprocesses (`ls -f`, `sync`,
 * `ps`, --password-command), and of the system only the host name, the user id and the OS
 * release (the AWS SDK's user agent). No FFI, no imports at run time.
 */
export const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-run",
  "--allow-sys=hostname,uid,osRelease",
];

if (import.meta.main) console.log(PERMISSIONS.join(" "));
