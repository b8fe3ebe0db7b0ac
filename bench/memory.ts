/**
 * Memory over a run, not only its peak: `deno task bench:memory`. Backs up BENCH_FILES small files
 * (default 200,000 of 0-4 KiB, in folders of 100) into a local-directory repository, then backs up
 * again (no-op) and restores, with restic beside it when installed; each run's resident set is
 * sampled from /proc/<pid>/status (VmRSS, and VmHWM at the end) every 100 ms, and the table gives
 * the peak and the RSS at each tenth of the run: a bounded run stays flat as files go by, one that
 * holds a little per file climbs. Linux only (/proc). Nothing is written outside a temp folder.
 *
 *   deno task bench:memory
 *   BENCH_FILES=1000000 deno task bench:memory
 */
import { s3backupArgv } from "../test/faults/harness.ts";
import { baseEnv } from "./peers.ts";

const FILES = Number(Deno.env.get("BENCH_FILES") ?? 200_000);

/** `n` files of 0-4 KiB of pseudo-random bytes (deterministic), 100 to a folder. */
function makeFiles(root: string, n: number): void {
  let x = 12345;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < n; i++) {
    if (i % 100 === 0) Deno.mkdirSync(`${root}/d${i / 100}`, { recursive: true });
    const data = new Uint8Array(next() % 4097);
    for (let j = 0; j < data.length; j++) data[j] = next() >>> 24;
    Deno.writeFileSync(`${root}/d${Math.floor(i / 100)}/f${i}`, data);
  }
}

/** A field of /proc/<pid>/status in MiB (null once the process is gone). */
function statusMiB(pid: number, field: "VmRSS" | "VmHWM"): number | null {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kib = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1];
    return kib === undefined ? null : Number(kib) / 1024;
  } catch {
    return null;
  }
}

interface Sampled {
  seconds: number;
  peakMiB: number;
  /** RSS at 10%, 20%, ..., 100% of the run's samples. */
  tenths: number[];
}

/** Runs `cmd` to its end, sampling its RSS every 100 ms; throws on a non-zero exit. */
async function sampled(cmd: string[], env: Record<string, string>): Promise<Sampled> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const samples: number[] = [];
  let hwm = 0;
  const timer = setInterval(() => {
    const rss = statusMiB(child.pid, "VmRSS");
    if (rss !== null) samples.push(rss);
    hwm = Math.max(hwm, statusMiB(child.pid, "VmHWM") ?? 0);
  }, 100);
  const out = await child.output();
  clearInterval(timer);
  if (!out.success) {
    throw new Error(`${cmd.join(" ")}: exit ${out.code}\n${new TextDecoder().decode(out.stderr)}`);
  }
  const at = (f: number) => samples[Math.min(samples.length - 1, Math.floor(f * samples.length))];
  return {
    seconds: (performance.now() - t0) / 1000,
    peakMiB: Math.max(hwm, ...samples),
    tenths: Array.from({ length: 10 }, (_, i) => at((i + 1) / 10) ?? 0),
  };
}

function have(prog: string): boolean {
  try {
    return new Deno.Command(prog, { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const work = await Deno.makeTempDir({ prefix: "s3backup-memory-" });
  try {
    const src = `${work}/src`;
    makeFiles(src, FILES);
    const env = baseEnv(work);
    const repo = `${work}/repo`;
    Deno.mkdirSync(repo);
    const runs: [string, string[]][] = [
      ["s3backup initial", s3backupArgv(["backup", "-f", src, "-b", repo, "-c"])],
      ["s3backup no-op", s3backupArgv(["backup", "-f", src, "-b", repo, "-c"])],
      [
        "s3backup restore",
        s3backupArgv(["restore", "-b", repo, "-m", "latest", "-f", `${work}/o`]),
      ],
    ];
    if (have("restic")) {
      const r = `${work}/restic`;
      new Deno.Command("restic", { args: ["-q", "-r", r, "init"], env }).outputSync();
      runs.push(
        ["restic initial", ["restic", "-q", "-r", r, "backup", src]],
        ["restic no-op", ["restic", "-q", "-r", r, "backup", src]],
        ["restic restore", ["restic", "-q", "-r", r, "restore", "latest", "--target", `${work}/r`]],
      );
    }
    console.log(`${FILES} files of 0-4 KiB, local-directory repositories, one run each`);
    console.log("| run | wall | peak RSS | RSS at each tenth of the run (MiB) |");
    console.log("| --- | --- | --- | --- |");
    for (const [name, cmd] of runs) {
      const s = await sampled(cmd, env);
      const curve = s.tenths.map((m) => m.toFixed(0)).join(" ");
      console.log(
        `| ${name} | ${s.seconds.toFixed(1)} s | ${s.peakMiB.toFixed(0)} MiB | ${curve} |`,
      );
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
