/**
 * s3backup side by side with its peers, in one run, on one deterministic dataset:
 *
 * - Local-directory repositories: s3backup, restic and rclone (a crypt remote over a folder),
 *   each: initial backup, no-op backup, one file changed, restore; s3backup's restore kit too.
 * - S3 (a real server given by BENCH_S3_ENDPOINT, BENCH_S3_ACCESS_KEY_ID and
 *   BENCH_S3_SECRET_ACCESS_KEY, e.g. scripts/ceph-rgw-up.sh's RGW; else moto when installed):
 *   s3backup's backup, no-op, restore and the kit's restore against restic's and `aws s3 sync`
 *   up and down of the same tree, with the requests each made (counted by a loopback proxy,
 *   test/faults/fault_proxy.ts), directly and with 30 ms added to every request (a real
 *   region's round trip). moto serves about 200 requests a second: measure speed on the RGW.
 *
 * Tools run interleaved, ROUNDS times; the tables give medians of wall time and peak RSS (the
 * kernel's rusage of each child, through python3) and ratios. Missing peers are skipped (as
 * root, `apt-get install restic rclone awscli` first). Nothing is written outside a temp folder,
 * and nothing removed from it until the run ends (about 20 times the data set's size locally:
 * three tools, three rounds, each a repository and its restores).
 *
 *   deno task bench:peers                                  # C: 20,000 files of 0-4 KiB
 *   BENCH_DATA=B BENCH_ROUNDS=3 deno task bench:peers      # B: 20,000 files of 4-100 KiB
 *   BENCH_DATA=A deno task bench:peers                     # A: one 1 GiB file
 *   BENCH_DATA=L deno task bench:peers                     # L: one 1 GiB text log
 *   BENCH_S3_DATA=A (or L) ...                             # the S3 part on A or L (default C)
 *   BENCH_FILES=100000 deno task bench:peers               # C at full size
 *   BENCH_S3=0 / BENCH_LOCAL=0 / BENCH_KIT=0 / BENCH_S3_FILES=10000 / BENCH_LATENCY_MS=30
 *   eval "$(bash scripts/ceph-rgw-up.sh)"; BENCH_S3_ENDPOINT=$S3_ENDPOINT \
 *     BENCH_S3_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID BENCH_S3_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
 *     BENCH_LOCAL=0 BENCH_S3_FILES=10000 deno task bench:peers   # S3 on Ceph
 *   BENCH_MAIN=/path/to/other/checkout/src/main.ts ...     # another version of s3backup
 *
 * s3backup runs as `deno run` of src/main.ts with the binary's flags (scripts/permissions.ts) and
 * Deno's warm cache (DENO_DIR): its figures include Deno's start (about 0.1 s here).
 */
import { RUN_FLAGS } from "../scripts/permissions.ts";
import { FaultProxy } from "../test/faults/fault_proxy.ts";

const DATA = (Deno.env.get("BENCH_DATA") ?? "C").toUpperCase();
const FILES = Number(Deno.env.get("BENCH_FILES") ?? 20_000);
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 3);
const S3_FILES = Number(Deno.env.get("BENCH_S3_FILES") ?? 2_000);
const S3_DATA = (Deno.env.get("BENCH_S3_DATA") ?? "C").toUpperCase();
const LATENCY_MS = Number(Deno.env.get("BENCH_LATENCY_MS") ?? 30);
const MAIN = Deno.env.get("BENCH_MAIN") ?? new URL("../src/main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const KIT = new URL("../restore-kit/restore.sh", import.meta.url).pathname;
const MOTO = new URL("../scripts/moto.sh", import.meta.url).pathname;
const PASSWORD = "bench password";
/**
 * Deno's own cache (its compiled modules, its npm packages), kept where this Deno keeps it: a
 * `deno run` with XDG_CACHE_HOME moved would otherwise start cold, compiling every module and
 * fetching the npm packages in the measured run (1.0-1.7 s and 22 MiB more on an initial
 * backup of 20,000 files), which the binary never does.
 */
const DENO_DIR: string = JSON.parse(
  new TextDecoder().decode(
    new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" }).outputSync()
      .stdout,
  ),
).denoDir;

/** A deterministic byte source (LCG). */
function prng(seed: number) {
  let x = seed >>> 0;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  const fill = (data: Uint8Array) => {
    for (let j = 0; j < data.length; j += 4) {
      const v = next();
      data[j] = v;
      data[j + 1] = v >> 8;
      data[j + 2] = v >> 16;
      data[j + 3] = v >> 24;
    }
    return data;
  };
  return { next, fill };
}

/** Writes `n` files of `min`..`max` bytes in folders of `perDir`. */
function smallFiles(root: string, n: number, min: number, max: number, perDir: number) {
  const r = prng(12345);
  for (let i = 0; i < n; i++) {
    const dir = `${root}/d${Math.floor(i / perDir)}`;
    if (i % perDir === 0) Deno.mkdirSync(dir, { recursive: true });
    Deno.writeFileSync(`${dir}/f${i}`, r.fill(new Uint8Array(min + (r.next() % (max - min + 1)))));
  }
}

/** Every file under `dir` modified at `when` (an hour-old tree, as a nightly backup sees one). */
function age(dir: string, when: Date): void {
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) age(p, when);
    else Deno.utimeSync(p, when, when);
  }
}

/**
 * A: one 1 GiB file of random bytes; L: one 1 GiB text log; B: 20,000 files of 4-100 KiB in
 * ~200 folders; C: FILES of 0-4 KiB. Files
 * are dated an hour back, and their ctimes (which dating sets) left 2.5 s to age: a file written
 * or changed in the 2 s before a backup begins is read again by the next one (the files cache's
 * racy rule, mtime or ctime), which a nightly backup never meets.
 */
function dataset(root: string, kind: string, files: number): string {
  const what = makeDataset(root, kind, files);
  age(root, new Date(Date.now() - 3600_000));
  // Aging sets every ctime to now, which the racy rule counts too: let 2 s pass.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2_500);
  return what;
}

function makeDataset(root: string, kind: string, files: number): string {
  Deno.mkdirSync(root, { recursive: true });
  if (kind === "A") {
    const r = prng(7);
    const f = Deno.openSync(`${root}/big.bin`, { write: true, create: true });
    const block = new Uint8Array(16 * 1024 * 1024);
    for (let i = 0; i < 64; i++) {
      const b = r.fill(block);
      for (let off = 0; off < b.length;) off += f.writeSync(b.subarray(off));
    }
    f.close();
    return "A: one 1 GiB file";
  }
  if (kind === "L") {
    textLog(`${root}/app.log`, 1024 * 1024 * 1024);
    return "L: one 1 GiB text log";
  }
  if (kind === "B") {
    smallFiles(root, 20_000, 4096, 100 * 1024, 100);
    return "B: 20,000 files of 4-100 KiB in 200 folders";
  }
  smallFiles(root, files, 0, 4096, 90);
  return `C: ${files} files of 0-4 KiB in ${Math.ceil(files / 90)} folders`;
}

/**
 * `size` bytes of a web server's log: timestamps that advance, a few hosts, paths, statuses and
 * methods, random ids and durations (gzip -3 takes it to about a quarter).
 */
function textLog(path: string, size: number): void {
  const r = prng(11);
  const hosts = ["web1", "web2", "web3", "api1"];
  const paths = ["/", "/login", "/api/v1/items", "/api/v1/orders", "/static/app.js", "/health"];
  const status = [200, 200, 200, 200, 304, 404, 500, 201];
  const f = Deno.openSync(path, { write: true, create: true, truncate: true });
  const te = new TextEncoder();
  let t = Date.UTC(2026, 10, 1), written = 0;
  while (written < size) {
    const lines: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      t += r.next() % 50;
      const n = r.next();
      lines.push(
        `${new Date(t).toISOString()} ${hosts[n % 4]} nginx: ${n % 7 ? "GET" : "POST"} ` +
          `${paths[(n >>> 3) % 6]}/${r.next() % 100000} ${status[(n >>> 7) % 8]} ` +
          `id=${r.next().toString(16).padStart(8, "0")} bytes=${r.next() % 65536} ` +
          `ms=${(r.next() % 2000) / 10}\n`,
      );
    }
    let b = te.encode(lines.join(""));
    if (written + b.length > size) b = b.subarray(0, size - written);
    for (let off = 0; off < b.length;) off += f.writeSync(b.subarray(off));
    written += b.length;
  }
  f.close();
}

interface Sample {
  ms: number;
  rssKiB: number;
}

/**
 * Runs `cmd` (through python3 for its rusage); fails loudly on a non-zero exit. The file systems
 * are synced first (not measured): a step does not pay for writing back what the one before it
 * left dirty (without it, one restore of 10,000 files took 1.9 s in one run and 5.0 s the next).
 */
async function measure(cmd: string[], env: Record<string, string>): Promise<Sample> {
  await new Deno.Command("sync").output();
  const py = "import resource,subprocess,sys,time\n" +
    "t=time.monotonic();r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL)\n" +
    "print(r.returncode, (time.monotonic()-t)*1000, " +
    "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
  // Asynchronous: the counting proxy serves from this process meanwhile.
  const out = await new Deno.Command("python3", { args: ["-c", py, ...cmd], env, stderr: "piped" })
    .output();
  const [code, ms, rss] = new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
  if (code !== 0) {
    throw new Error(`${cmd.join(" ")}: exit ${code}\n${new TextDecoder().decode(out.stderr)}`);
  }
  return { ms: ms!, rssKiB: rss! };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function have(prog: string, arg = "version"): boolean {
  try {
    return new Deno.Command(prog, { args: [arg], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** The environment every measured tool gets (HOME, caches and passwords under `work`). */
export function baseEnv(work: string): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: work,
    XDG_CACHE_HOME: `${work}/cache`,
    DENO_DIR,
    DENO_NO_UPDATE_CHECK: "1", // `deno run` would ask its download site for a newer release
    S3BACKUP_PASSWORD: PASSWORD,
    RESTIC_PASSWORD: PASSWORD,
    RESTIC_CACHE_DIR: `${work}/restic-cache`,
  };
}

const s3backup = (args: string[]) => [
  Deno.execPath(),
  "run",
  ...RUN_FLAGS, // as the binary runs
  "--quiet",
  "--config",
  CONFIG,
  MAIN,
  ...args,
];

type Tool = "s3backup" | "restic" | "rclone";
const STEPS = ["initial", "no-op", "one changed", "restore", "kit restore"] as const;
type Step = typeof STEPS[number];

/** How each tool backs up to and restores from a local folder. */
async function commands(
  tool: Tool,
  repo: string,
  src: string,
  out: string,
  env: Record<string, string>,
) {
  if (tool === "s3backup") {
    await measure(s3backup(["init", "-b", repo, "-c"]), env); // as restic's init: not measured
    return {
      backup: () => measure(s3backup(["backup", "-f", src, "-b", repo, "-c"]), env),
      restore: () =>
        measure(s3backup(["restore", "-b", repo, "-m", "latest", "-f", out, "-c"]), env),
    };
  }
  if (tool === "restic") {
    await measure(["restic", "-q", "-r", repo, "init"], env);
    return {
      backup: () => measure(["restic", "-q", "-r", repo, "backup", src], env),
      restore: () =>
        measure(["restic", "-q", "-r", repo, "restore", "latest", "--target", out], env),
    };
  }
  const obscured = new TextDecoder().decode(
    new Deno.Command("rclone", { args: ["obscure", PASSWORD], stdout: "piped" }).outputSync()
      .stdout,
  ).trim();
  const renv = {
    ...env,
    RCLONE_CONFIG_BENCH_TYPE: "crypt",
    RCLONE_CONFIG_BENCH_REMOTE: repo,
    RCLONE_CONFIG_BENCH_PASSWORD: obscured,
  };
  return {
    backup: () => measure(["rclone", "sync", "-q", src, "bench:"], renv),
    restore: () => measure(["rclone", "sync", "-q", "bench:", out], renv),
  };
}

/**
 * One round of a tool into a fresh local repository, everything it writes in `dir` (its own
 * HOME and caches). Nothing is removed until the whole run ends: removing a round's tens of
 * thousands of files slowed the next tool's steps (BENCHMARKS.md, ninth session).
 */
async function round(
  tool: Tool,
  dir: string,
  src: string,
  changed: string,
): Promise<Map<Step, Sample>> {
  const repo = `${dir}/repo`, out = `${dir}/out`;
  Deno.mkdirSync(repo, { recursive: true });
  const env = baseEnv(dir);
  const c = await commands(tool, repo, src, out, env);
  const r = new Map<Step, Sample>();
  r.set("initial", await c.backup());
  r.set("no-op", await c.backup());
  Deno.writeTextFileSync(changed, `changed ${tool} ${Date.now()}`);
  r.set("one changed", await c.backup());
  r.set("restore", await c.restore());
  if (tool === "s3backup" && Deno.env.get("BENCH_KIT") !== "0") {
    r.set("kit restore", await measure(["bash", KIT, repo, "latest", `${dir}/kit-out`], env));
  }
  return r;
}

const cell = (x: { ms: number; mib: number } | null) =>
  x === null ? "-" : `${(x.ms / 1000).toFixed(2)} s, ${x.mib.toFixed(0)} MiB`;

function localTable(tools: Tool[], samples: Map<string, Sample[]>): void {
  const med = (t: Tool, s: Step) => {
    const xs = samples.get(`${t} ${s}`);
    if (!xs) return null;
    return { ms: median(xs.map((x) => x.ms)), mib: median(xs.map((x) => x.rssKiB)) / 1024 };
  };
  const peers = tools.filter((t) => t !== "s3backup");
  console.log(
    `| step | s3backup | ${peers.join(" | ")} | ${peers.map((p) => `vs ${p}`).join(" | ")} |`,
  );
  console.log(
    `| --- | --- |${peers.map(() => " --- |").join("")}${peers.map(() => " --- |").join("")}`,
  );
  for (const s of STEPS) {
    const a = med("s3backup", s); // the kit's restore is set against the peers' restore
    const row = peers.map((p) => med(p, s === "kit restore" ? "restore" : s));
    const ratios = row.map((b) => (a && b ? `${(a.ms / b.ms).toFixed(2)}x` : "-"));
    console.log(`| ${s} | ${cell(a)} | ${row.map(cell).join(" | ")} | ${ratios.join(" | ")} |`);
  }
}

// ------------------------------------------------------------------------------------ S3

interface S3Sample extends Sample {
  requests: number;
  /** Bytes under the tool's prefix after the step (its repository's size), for backups. */
  stored?: number;
}

interface S3Server {
  name: string;
  endpoint: string;
  key: string;
  secret: string;
  stop: () => void;
}

/** The server BENCH_S3_ENDPOINT names (left running), else moto on a free port (scripts/moto.sh). */
function startS3(): S3Server {
  const endpoint = Deno.env.get("BENCH_S3_ENDPOINT");
  if (endpoint) {
    return {
      name: `S3 at ${endpoint}`,
      endpoint,
      key: Deno.env.get("BENCH_S3_ACCESS_KEY_ID") ?? "test",
      secret: Deno.env.get("BENCH_S3_SECRET_ACCESS_KEY") ?? "test",
      stop: () => {},
    };
  }
  const out = new Deno.Command("bash", { args: [MOTO, "start"], stdout: "piped", stderr: "null" })
    .outputSync();
  const text = new TextDecoder().decode(out.stdout);
  const moto = /S3BACKUP_TEST_S3_ENDPOINT=(\S+)/.exec(text)?.[1];
  const dir = /S3BACKUP_MOTO_DIR=(\S+)/.exec(text)?.[1];
  if (!out.success || !moto || !dir) throw new Error("moto did not start");
  return {
    name: "moto",
    endpoint: moto,
    key: "test",
    secret: "test",
    stop: () => new Deno.Command("bash", { args: [MOTO, "stop", dir] }).outputSync(),
  };
}

function s3Env(work: string, server: S3Server, endpoint: string): Record<string, string> {
  return {
    ...baseEnv(work),
    AWS_ACCESS_KEY_ID: server.key,
    AWS_SECRET_ACCESS_KEY: server.secret,
    AWS_REGION: "us-east-1",
    AWS_DEFAULT_REGION: "us-east-1",
    AWS_ENDPOINT_URL: endpoint,
    AWS_EC2_METADATA_DISABLED: "true",
  };
}

/** s3backup, restic and aws s3 sync through the proxy (with `latency` ms per request). */
async function s3Round(work: string, src: string, server: S3Server, latency: number) {
  Deno.mkdirSync(work, { recursive: true });
  const proxy = new FaultProxy(server.endpoint);
  proxy.delayMs = latency;
  const env = s3Env(work, server, proxy.endpoint);
  const bucket = `bench-${latency}-${Date.now()}`;
  const aws = (args: string[]) => ["aws", "--endpoint-url", proxy.endpoint, "s3", ...args];
  await measure(aws(["mb", `s3://${bucket}`]), env);
  const r = new Map<string, S3Sample>();
  const step = async (name: string, cmd: string[], prefix?: string) => {
    proxy.log.length = 0;
    const s: S3Sample = { ...await measure(cmd, env), requests: proxy.log.length };
    if (prefix) s.stored = await storedBytes(env, proxy.endpoint, bucket, prefix);
    r.set(name, s);
  };
  try {
    await measure(s3backup(["init", "-b", `s3://${bucket}/r`, "-c"]), env); // as restic's
    await step(
      "s3backup backup",
      s3backup(["backup", "-f", src, "-b", `s3://${bucket}/r`, "-c"]),
      "r/",
    );
    await step("s3backup no-op", s3backup(["backup", "-f", src, "-b", `s3://${bucket}/r`, "-c"]));
    const out = `${work}/s3-out`;
    await step(
      "s3backup restore",
      s3backup(["restore", "-b", `s3://${bucket}/r`, "-m", "latest", "-f", out, "-c"]),
    );
    await step("kit restore", ["bash", KIT, `s3://${bucket}/r`, "latest", `${work}/s3-kit-out`]);
    if (have("restic")) {
      const repo = `s3:${proxy.endpoint}/${bucket}/restic`;
      await measure(["restic", "-q", "-r", repo, "init"], env);
      await step("restic backup", ["restic", "-q", "-r", repo, "backup", src], "restic/");
      await step("restic no-op", ["restic", "-q", "-r", repo, "backup", src]);
      await step("restic restore", [
        "restic",
        "-q",
        "-r",
        repo,
        "restore",
        "latest",
        "--target",
        `${work}/s3-restic-out`,
      ]);
    }
    await step("aws s3 sync up", aws(["sync", "--only-show-errors", src, `s3://${bucket}/plain`]));
    await step(
      "aws s3 sync up, no-op",
      aws(["sync", "--only-show-errors", src, `s3://${bucket}/plain`]),
    );
    await step(
      "aws s3 sync down (the same objects)",
      aws(["sync", "--only-show-errors", `s3://${bucket}/r`, `${work}/s3-aws-out`]),
    );
  } finally {
    // The bucket is left: moto is stopped after the runs, a given server is the caller's. The
    // restored trees are left too, until the whole run ends (see round()).
    await proxy.close();
  }
  return r;
}

/** The bytes of every object under `prefix` (the aws CLI's summary). */
async function storedBytes(
  env: Record<string, string>,
  endpoint: string,
  bucket: string,
  prefix: string,
): Promise<number> {
  const out = await new Deno.Command("aws", {
    args: ["--endpoint-url", endpoint, "s3", "ls", "--recursive", "--summarize"].concat(
      `s3://${bucket}/${prefix}`,
    ),
    env,
    stdout: "piped",
    stderr: "null",
  }).output();
  return Number(/Total Size: (\d+)/.exec(new TextDecoder().decode(out.stdout))?.[1] ?? NaN);
}

async function s3Bench(work: string): Promise<void> {
  const given = Deno.env.get("BENCH_S3_ENDPOINT") !== undefined;
  if (
    Deno.env.get("BENCH_S3") === "0" || !have("aws", "--version") ||
    (!given && !have("moto_server", "--help"))
  ) {
    console.log("\n(S3 part skipped: needs the aws CLI and a server; BENCH_S3=0 skips it)");
    return;
  }
  const src = `${work}/s3-src`;
  const what = dataset(src, S3_DATA, S3_FILES);
  const server = startS3();
  try {
    for (const latency of [0, LATENCY_MS]) {
      const r = await s3Round(`${work}/s3-${latency}`, src, server, latency);
      const added = latency ? `, +${latency} ms per request` : "";
      console.log(`\n${server.name}${added}, ${what}, 1 run`);
      console.log("| step | wall, peak RSS | requests | stored |");
      console.log("| --- | --- | --- | --- |");
      for (const [k, v] of r) {
        const stored = v.stored === undefined ? "" : `${(v.stored / 1048576).toFixed(1)} MiB`;
        console.log(
          `| ${k} | ${cell({ ms: v.ms, mib: v.rssKiB / 1024 })} | ${v.requests} | ${stored} |`,
        );
      }
    }
  } finally {
    server.stop();
  }
}

/** As root with apt-get, the missing peers are installed (Debian packages), unless BENCH_INSTALL=0. */
function installPeers(): void {
  const missing = [["restic", "version"], ["rclone", "version"], ["aws", "--version"]]
    .filter(([p, a]) => !have(p!, a)).map(([p]) => (p === "aws" ? "awscli" : p!));
  if (missing.length === 0 || Deno.uid() !== 0 || Deno.env.get("BENCH_INSTALL") === "0") return;
  if (!have("apt-get", "--version")) return;
  console.error(`bench: apt-get install ${missing.join(" ")}`);
  const env = { ...Deno.env.toObject(), DEBIAN_FRONTEND: "noninteractive" };
  const apt = (args: string[]) =>
    new Deno.Command("apt-get", { args, env, stdout: "null", stderr: "inherit" }).outputSync();
  if (!apt(["install", "-y", "-qq", ...missing]).success) {
    apt(["update", "-qq"]);
    apt(["install", "-y", "-qq", ...missing]);
  }
}

if (import.meta.main) {
  installPeers();
  const work = await Deno.makeTempDir({ prefix: "s3backup-peers-" });
  try {
    const src = `${work}/src`;
    const what = dataset(src, DATA, FILES);
    const changed = DATA === "A" || DATA === "L" ? `${src}/small-change` : `${src}/d0/f0`;
    const tools = (["s3backup", "restic", "rclone"] as const).filter((t) =>
      t === "s3backup" || have(t)
    );
    const samples = new Map<string, Sample[]>();
    const rounds = Deno.env.get("BENCH_LOCAL") === "0" ? 0 : ROUNDS;
    for (let i = 0; i < rounds; i++) {
      for (const t of tools) {
        for (const [step, s] of await round(t, `${work}/round${i}-${t}`, src, changed)) {
          const k = `${t} ${step}`;
          samples.set(k, [...(samples.get(k) ?? []), s]);
        }
      }
    }
    if (rounds > 0) {
      console.log(`${what}; local-directory repositories; medians of ${ROUNDS}`);
      localTable([...tools], samples);
    }
    await s3Bench(work);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
