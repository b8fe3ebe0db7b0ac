/**
 * What the fault suite shares: the s3backup program run as a child process with a deadline
 * (a hang fails the test instead of CI), and a seeded random source so that every run injects
 * the same faults.
 */
import { RUN_FLAGS } from "../../scripts/permissions.ts";
import { childEnv } from "../s3_env.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;
export const PASSWORD = "fault suite password";

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Milliseconds from start to exit. */
  ms: number;
}

export interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** The test fails when the child has not exited by then (it is killed). Default 120 s. */
  deadlineMs?: number;
  /** Send this signal after `afterMs`. */
  signal?: { name: Deno.Signal; afterMs: number };
}

/** A started s3backup process; `done` resolves at its exit, rejects past the deadline. */
/** The argv that runs s3backup with `args` (for a shell pipeline). */
export function s3backupArgv(args: string[]): string[] {
  return [Deno.execPath(), "run", ...RUN_FLAGS, "--quiet", "--config", CONFIG, MAIN, ...args];
}

export function start(args: string[], opts: RunOptions = {}) {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_FLAGS, "--quiet", "--config", CONFIG, MAIN, ...args],
    env: childEnv({ S3BACKUP_PASSWORD: PASSWORD, ...opts.env }),
    clearEnv: true,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const deadline = opts.deadlineMs ?? 120_000;
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, deadline);
  const sig = opts.signal;
  const sigTimer = sig ? setTimeout(() => child.kill(sig.name), sig.afterMs) : undefined;
  const done = child.output().then((out) => {
    const dec = new TextDecoder();
    if (late) {
      throw new Error(
        `s3backup ${args.join(" ")}: no exit within ${deadline} ms; it said: ${
          dec.decode(out.stderr)
        }`,
      );
    }
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      ms: performance.now() - t0,
    };
  }).finally(() => {
    clearTimeout(timer);
    clearTimeout(sigTimer);
  });
  return { child, done };
}

/** Runs s3backup to its exit (see RunOptions). */
export function s3backup(args: string[], opts: RunOptions = {}): Promise<Run> {
  return start(args, opts).done;
}

/** Polls `cond` every 20 ms until it holds; throws after `ms`, naming `what`. */
export async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  ms = 30_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`not reached within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A deterministic random source in [0, 1) (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A function that closes `listener` and every connection of `conns`. */
export function closer(listener: Deno.Listener, conns: Deno.Conn[]): () => void {
  return () => {
    listener.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
  };
}

/** A TCP server on loopback that accepts connections and never answers. */
export function silentServer(): { endpoint: string; close: () => void; accepted: () => number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const c of listener) conns.push(c);
    } catch { /* closed */ }
  })();
  return {
    endpoint: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    close: closer(listener, conns),
    /** Connections accepted so far: the client is waiting on one of them. */
    accepted: () => conns.length,
  };
}
