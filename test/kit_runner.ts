/** Runs a script of the restore kit as a user would: bash, coreutils, openssl (and aws). */

const KIT = new URL("../restore-kit/", import.meta.url).pathname;

export interface KitResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Milliseconds from start to exit. */
  ms: number;
}

/**
 * `bash restore-kit/<script> args…` (or a kit elsewhere: `script` an absolute path) with a clean
 * environment: S3BACKUP_PASSWORD = `password` (none when null), PATH /usr/bin:/bin, plus `env`.
 * Killed after `timeoutMs` (default 120 s).
 */
export async function runKit(
  script: string,
  args: string[],
  password: string | null,
  env: Record<string, string> = {},
  timeoutMs = 120_000,
): Promise<KitResult> {
  const t0 = performance.now();
  const out = await new Deno.Command("bash", {
    args: [script.startsWith("/") ? script : `${KIT}${script}`, ...args],
    env: {
      PATH: "/usr/bin:/bin",
      HOME: "/tmp",
      ...(password === null ? {} : { S3BACKUP_PASSWORD: password }),
      ...env,
    },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    ms: performance.now() - t0,
  };
}
