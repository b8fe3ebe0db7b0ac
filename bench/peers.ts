/**
 * s3backup side by side with restic (when installed), on one deterministic dataset, into local
 * directories: initial backup, no-op backup (nothing changed), one file changed, restore.
 * Runs interleaved, ROUNDS times; prints medians of wall time and peak RSS, and the ratios.
 *
 *   deno task bench:peers                      # C-small: 20,000 files of 0-4 KiB, 3 rounds
 *   BENCH_FILES=100000 BENCH_ROUNDS=5 deno task bench:peers
 *   BENCH_MAIN=/path/to/other/checkout/src/main.ts deno task bench:peers   # another version
 *
 * Peak RSS comes from the kernel's rusage of each child (python3's resource module). s3backup
 * runs as `deno run` of src/main.ts (what the binary is compiled from): its figures include
 * Deno's start (about 0.1 s here). Nothing is written outside a temporary folder.
 */
const FILES = Number(Deno.env.get("BENCH_FILES") ?? 20_000);
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 3);
/** The program measured: this checkout's, or another's (BENCH_MAIN, to compare versions). */
const MAIN = Deno.env.get("BENCH_MAIN") ?? new URL("../src/main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const PASSWORD = "bench password";

/** Writes FILES files of 0-4 KiB in folders of about 90, from a fixed seed. */
function dataset(root: string): void {
  let x = 12345;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < FILES; i++) {
    const dir = `${root}/d${Math.floor(i / 90)}`;
    if (i % 90 === 0) Deno.mkdirSync(dir, { recursive: true });
    const data = new Uint8Array(next() % 4097);
    for (let j = 0; j < data.length; j += 4) {
      const v = next();
      data[j] = v;
      data[j + 1] = v >> 8;
      data[j + 2] = v >> 16;
      data[j + 3] = v >> 24;
    }
    Deno.writeFileSync(`${dir}/f${i}`, data);
  }
}

interface Sample {
  ms: number;
  rssKiB: number;
}

/** Runs `cmd` (through python3 for its rusage); fails loudly on a non-zero exit. */
function measure(cmd: string[], env: Record<string, string>): Sample {
  const py = "import resource,subprocess,sys,time\n" +
    "t=time.monotonic();r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL)\n" +
    "print(r.returncode, (time.monotonic()-t)*1000, " +
    "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
  const out = new Deno.Command("python3", { args: ["-c", py, ...cmd], env, stderr: "inherit" })
    .outputSync();
  const [code, ms, rss] = new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
  if (code !== 0) throw new Error(`${cmd.join(" ")}: exit ${code}`);
  return { ms: ms!, rssKiB: rss! };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function have(prog: string): boolean {
  try {
    return new Deno.Command(prog, { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

type Step = "initial" | "no-op" | "one changed" | "restore";
const STEPS: Step[] = ["initial", "no-op", "one changed", "restore"];

/** One round of a tool: the four steps in a fresh repository. */
function round(tool: "s3backup" | "restic", work: string, src: string): Map<Step, Sample> {
  const repo = `${work}/repo-${tool}`, out = `${work}/out-${tool}`;
  Deno.mkdirSync(repo);
  const env = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: work,
    XDG_CACHE_HOME: `${work}/cache`,
    S3BACKUP_PASSWORD: PASSWORD,
    RESTIC_PASSWORD: PASSWORD,
    RESTIC_CACHE_DIR: `${work}/restic-cache`,
  };
  const run = tool === "s3backup"
    ? (args: string[]) =>
      measure([Deno.execPath(), "run", "-A", "--quiet", "--config", CONFIG, MAIN, ...args], env)
    : (args: string[]) => measure(["restic", "-q", "-r", repo, ...args], env);
  if (tool === "restic") measure(["restic", "-q", "-r", repo, "init"], env);
  const r = new Map<Step, Sample>();
  const backup = tool === "s3backup" ? ["backup", "-f", src, "-b", repo, "-c"] : ["backup", src];
  r.set("initial", run(backup));
  r.set("no-op", run(backup));
  Deno.writeTextFileSync(`${src}/d0/f0`, `changed ${tool} ${Date.now()}`);
  r.set("one changed", run(backup));
  r.set(
    "restore",
    run(
      tool === "s3backup"
        ? ["restore", "-b", repo, "-m", "latest", "-f", out, "-c"]
        : ["restore", "latest", "--target", out],
    ),
  );
  Deno.removeSync(repo, { recursive: true });
  Deno.removeSync(out, { recursive: true });
  return r;
}

if (import.meta.main) {
  const work = await Deno.makeTempDir({ prefix: "s3backup-peers-" });
  try {
    const src = `${work}/src`;
    dataset(src);
    const tools = (["s3backup", "restic"] as const).filter((t) => t === "s3backup" || have(t));
    const samples = new Map<string, Sample[]>();
    for (let i = 0; i < ROUNDS; i++) {
      for (const t of tools) {
        for (const [step, s] of round(t, work, src)) {
          const k = `${t} ${step}`;
          samples.set(k, [...(samples.get(k) ?? []), s]);
        }
      }
    }
    const med = (t: string, s: Step) => {
      const xs = samples.get(`${t} ${s}`) ?? [];
      return { ms: median(xs.map((x) => x.ms)), mib: median(xs.map((x) => x.rssKiB)) / 1024 };
    };
    console.log(`${FILES} files of 0-4 KiB, local directory repositories, medians of ${ROUNDS}`);
    console.log("| step | s3backup wall, peak RSS | restic wall, peak RSS | ratio (wall) |");
    console.log("| --- | --- | --- | --- |");
    for (const s of STEPS) {
      const a = med("s3backup", s);
      const b = tools.includes("restic") ? med("restic", s) : null;
      const cell = (x: { ms: number; mib: number }) =>
        `${(x.ms / 1000).toFixed(2)} s, ${x.mib.toFixed(0)} MiB`;
      console.log(
        `| ${s} | ${cell(a)} | ${b ? cell(b) : "(not installed)"} | ${
          b ? (a.ms / b.ms).toFixed(2) + "x" : "-"
        } |`,
      );
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
