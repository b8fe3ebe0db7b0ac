/**
 * Network and server faults, injected by a proxy in front of moto (fault_proxy.ts), seeded:
 * answers 500 / 503 SlowDown, stalls past the timeout, bodies cut mid-way, a listing cut short.
 * Each case's outcome is pinned: its exit code and what it says (retried silently, retried and
 * told, or one line naming what failed); every meta in the bucket is whole afterwards (verify
 * --read-data passes) and the next run, without faults, completes and restores identically. A SIGTERM while requests hang stops the backup
 * within seconds, records nothing and removes its lock.
 */
import assert from "node:assert/strict";
import { legacyBucket } from "../legacy_bucket.ts";
import { s3Targets, targetStore } from "../s3_env.ts";
import { snapshot } from "../tree.ts";
import type { FaultRule } from "./fault_proxy.ts";
import { PASSWORD, type Run, s3backup, start, until } from "./harness.ts";
import { runKit } from "../kit_runner.ts";
import { type ProxiedFixture, proxiedFixture } from "./proxied_fixture.ts";

const moto = s3Targets().find((t) => t.label === "moto");

type Fixture = ProxiedFixture;
const fixture = proxiedFixture;

/** New content for the next backup: a big file (multipart) and small ones. */
async function addContent(src: string): Promise<void> {
  const big = new Uint8Array(17 * 1024 * 1024 + 11);
  for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
  await Deno.writeFile(`${src}/tonight.bin`, big);
  for (let i = 0; i < 20; i++) await Deno.writeTextFile(`${src}/new-${i}.txt`, `new content ${i}`);
}

/** What a faulty run must end with: its exit code, and what stderr says (each line). */
interface Outcome {
  code: number;
  says: RegExp;
}

/** The run ended as pinned: that exit code, those lines, never a stack trace. */
function assertOutcome(r: Run, want: Outcome, what: string): void {
  assert.equal(r.code, want.code, `${what}: exit ${r.code}: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at |Error: .*\n\s+at /m, `${what}: a stack trace`);
  assert.match(r.stderr, want.says, `${what}: ${r.stderr}`);
  for (const line of r.stderr.split("\n").filter((l) => l !== "")) {
    assert.match(line, /^s3backup: /, `${what}: a line not ours: ${line}`);
  }
}

/** Without faults: every meta whole, a new backup completes and restores identically. */
async function assertRecovers(f: Fixture, label: string): Promise<void> {
  f.proxy.setRules([]);
  // No lock left behind: a dry-run prune says "a backup is running" (exit 3) while one lives.
  const locks = await s3backup(["prune", "-b", f.repo, "--keep-last", "99", "--dry-run", "-c"], {
    env: f.env,
  });
  assert.equal(locks.code, 0, `${label}: a lock was left: ${locks.stdout}${locks.stderr}`);
  const v = await s3backup(["verify", "-b", f.repo, "--read-data"], { env: f.env });
  assert.equal(v.code, 0, `${label}: verify after the faults: ${v.stdout}${v.stderr}`);
  const b = await s3backup(["backup", "-f", f.src, "-b", f.repo, "-n", "t", "-c"], { env: f.env });
  assert.equal(b.code, 0, `${label}: the next backup: ${b.stderr}`);
  const out = `${f.dir}/out-${label}`;
  const r = await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", out, "-c"], {
    env: f.env,
  });
  assert.equal(r.code, 0, `${label}: restore: ${r.stderr}`);
  assert.deepEqual(snapshot(out), snapshot(f.src), `${label}: restored tree`);
}

const CASES: {
  name: string;
  seed: number;
  rules: FaultRule[];
  args?: string[];
  want: Outcome;
}[] = [
  {
    name: "500 and 503 SlowDown on a fifth of all requests",
    seed: 7,
    rules: [
      { fault: "slowdown", kinds: ["put", "put-part", "get", "head", "list"], share: 0.1 },
      { fault: "500", kinds: ["put", "put-part", "multipart", "get", "list"], share: 0.1 },
    ],
    // The SDK's retries absorb them, silently.
    want: { code: 0, says: /^$/ },
  },
  {
    name: "data uploads stalled past --timeout",
    seed: 11,
    rules: [{
      fault: "stall",
      kinds: ["put", "put-part"],
      key: /(packs|data)\/[0-9a-f]{32}(\.gz)?$/, // format 3: a backup's few packs
      share: 1,
      max: 1,
    }],
    args: ["--timeout", "2s"],
    want: {
      code: 0,
      says: /^s3backup: warning: no answer from \S+ within 2 s \(attempt 1 of 5\): trying again\n$/,
    },
  },
  {
    name: "a listing cut short",
    seed: 3,
    rules: [{ fault: "truncate-list", kinds: ["list"], share: 1, max: 1 }],
    // Nothing is written on a listing that cannot be read: one line, exit 1.
    want: { code: 1, says: /^s3backup: S3 ListObjectsV2 on s3:\/\/\S+ failed: .*XML.*\n$/ },
  },
];

for (const c of CASES) {
  Deno.test({
    name: `faults [moto]: backup under ${c.name}: exit ${c.want.code} as pinned; nothing lost`,
    ignore: moto === undefined,
    fn: async () => {
      const f = await fixture(moto!, c.rules, c.seed);
      try {
        // Last night's backup went fine; tonight's meets the faults, with new content to upload.
        f.proxy.setRules([]);
        const args = ["backup", "-f", f.src, "-b", f.repo, "-n", "t", "-c", ...(c.args ?? [])];
        assert.equal((await s3backup(args, { env: f.env })).code, 0, "the first backup");
        await addContent(f.src);
        f.proxy.setRules(c.rules);
        const r = await s3backup(args, { env: f.env, deadlineMs: 240_000 });
        assertOutcome(r, c.want, c.name);
        assert.ok(f.proxy.injected.some((n) => n > 0), "no fault was injected");
        await assertRecovers(f, "after");
      } finally {
        await f.cleanup();
      }
    },
  });
}

/** Whatever a restore wrote is right: no file holds content other than the source's. */
function assertNothingWrong(out: string, src: string): void {
  const want = new Map(snapshot(src).map((e) => [e.path, e]));
  for (const e of snapshot(out)) {
    if (e.type === "f") assert.equal(e.md5, want.get(e.path)?.md5, `${e.path} content`);
  }
}

/** A backup without faults, then its restore into `<dir>/out` under `rules`. */
async function restoreUnder(
  f: Fixture,
  rules: FaultRule[],
  args: string[] = [],
): Promise<{ out: string; r: Run }> {
  const b = await s3backup(["backup", "-f", f.src, "-b", f.repo, "-c"], { env: f.env });
  assert.equal(b.code, 0, b.stderr);
  f.proxy.setRules(rules);
  const out = `${f.dir}/out`;
  const r = await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", out, "-c", ...args], {
    env: f.env,
  });
  return { out, r };
}

/** Without faults, the same restore again into `out`: exit 0, every file right. */
async function rerunWhole(f: Fixture, out: string): Promise<void> {
  f.proxy.setRules([]);
  const again = await s3backup(["restore", "-b", f.repo, "-m", "latest", "-f", out, "-c"], {
    env: f.env,
  });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(snapshot(out), snapshot(f.src));
}

/**
 * The kit's restore of the newest backup under `rules`: exit 1, its last line `last`, no file
 * named; then without faults the same command restores it whole. Returns what it said.
 */
async function kitStops(
  f: Fixture,
  rules: FaultRule[],
  last: RegExp,
  env: Record<string, string> = {},
): Promise<string> {
  const args = [f.repo, "latest", `${f.dir}/kit`];
  f.proxy.setRules(rules);
  const k = await runKit("restore.sh", args, PASSWORD, { ...f.env, ...env }, 300_000);
  assert.equal(k.code, 1, k.stderr);
  assert.match(k.stderr.trimEnd().split("\n").at(-1) ?? "", last, k.stderr);
  const named = /restore\.sh: [^:]+: (missing|cannot|not written)/;
  assert.doesNotMatch(k.stderr, named, "no file named");
  f.proxy.setRules([]);
  const again = await runKit("restore.sh", args, PASSWORD, f.env);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(snapshot(`${f.dir}/kit`), snapshot(f.src));
  return k.stderr;
}

const PACK_OR_DATA = /(packs|data)\/[0-9a-f]{32}(\.gz)?$/;

Deno.test({
  name: "faults [moto]: restore under cut downloads and 503s: each cut resumed, exit 0, whole",
  ignore: moto === undefined,
  fn: async () => {
    const f = await fixture(moto!, [], 5);
    try {
      const { out, r } = await restoreUnder(f, [
        { fault: "cut", kinds: ["get"], key: PACK_OR_DATA, share: 1, max: 2 },
        { fault: "slowdown", kinds: ["get"], share: 0.1 },
      ]);
      assertOutcome(r, {
        code: 0,
        says:
          /warning: download of (packs|data)\/\S+ interrupted: .+: resuming at byte \d+ \(attempt 2 of 5\)/,
      }, "restore");
      assert.equal(f.proxy.injected[0], 2, "both cuts made");
      assert.deepEqual(snapshot(out), snapshot(f.src));
    } finally {
      await f.cleanup();
    }
  },
});

Deno.test({
  name: "faults [moto]: restore when every download of one pack is cut: its files named, " +
    "exit 3, the rest right; the rerun whole",
  ignore: moto === undefined,
  fn: async () => {
    const f = await fixture(moto!, [], 5);
    try {
      const { out, r } = await restoreUnder(f, [
        { fault: "cut", kinds: ["get"], key: /packs\/[0-9a-f]{32}$/, share: 1 },
      ]);
      assertOutcome(r, {
        code: 3,
        says:
          /warning: .+: cannot download object packs\/[0-9a-f]{32}: Download of \S+ interrupted: /,
      }, "restore");
      assert.ok(f.proxy.injected[0]! >= 5, `5 attempts a pack: ${f.proxy.injected[0]} cuts`);
      assertNothingWrong(out, f.src);
      await rerunWhole(f, out);
    } finally {
      await f.cleanup();
    }
  },
});

Deno.test({
  name: "faults [moto]: restore when the store stops answering: it stops at the first object " +
    "that gets no answer, names no file, says how far it got (exit 1); the rerun completes",
  ignore: moto === undefined,
  fn: async () => {
    const f = await fixture(moto!, [], 5);
    try {
      // The first object of the files goes through; every download after it stalls.
      const { out, r } = await restoreUnder(f, [
        { fault: "stall", kinds: ["get"], key: PACK_OR_DATA, share: 1, after: 1 },
      ], ["--timeout", "2s"]);
      assertOutcome(r, {
        code: 1,
        says:
          /\ns3backup: No answer from \S+ within 2 s \(5 attempts; see --timeout\); the restore stopped with \d+ of \d+ files in place \(kept\): run the same command again once the store answers\n$/,
      }, "restore");
      const named = r.stderr.split("\n").filter((l) => /^s3backup: warning: (?!no answer)/.test(l));
      assert.deepEqual(named, [], "no file named");
      assertNothingWrong(out, f.src);
      // verify --read-data: the same line, not damage (it said "corrupt" of each content).
      const v = await s3backup(["verify", "-b", f.repo, "--read-data", "-c", "--timeout", "2s"], {
        env: f.env,
      });
      assertOutcome(v, {
        code: 1,
        says: /\ns3backup: No answer from \S+ within 2 s \(5 attempts; see --timeout\)\n$/,
      }, "verify");
      assert.doesNotMatch(v.stdout + v.stderr, /corrupt/);
      // The kit too: one line, exit 1 (its attempts 2 s each), each retry told.
      const said = await kitStops(
        f,
        [{ fault: "stall", kinds: ["get"], key: PACK_OR_DATA, share: 1 }],
        /^restore\.sh: .*Read timeout on endpoint URL: .*; the restore stopped \(what is in place is kept\): run the same command again once the store answers$/,
        { S3BACKUP_KIT_READ_TIMEOUT: "2" },
      );
      assert.match(
        said,
        /^restore\.sh: no answer from \S+ within 2 s \(attempt 1 of 5\): trying again$/m,
      );
      await rerunWhole(f, out);
    } finally {
      await f.cleanup();
    }
  },
});

Deno.test({
  name: "faults [moto]: restore when the store refuses the credentials mid-run (ExpiredToken): " +
    "the binary, verify and the kit stop at it, name no file, exit 1; the reruns complete",
  ignore: moto === undefined,
  fn: async () => {
    const f = await fixture(moto!, [], 5);
    const refused: FaultRule[] = [
      { fault: "expired-token", kinds: ["get"], key: PACK_OR_DATA, share: 1, after: 1 },
    ];
    const again = "run the same command again with credentials the store accepts";
    try {
      const { out, r } = await restoreUnder(f, refused);
      assertOutcome(r, {
        code: 1,
        says: new RegExp(
          "^s3backup: S3 GetObject on \\S+: the session token has expired \\(ExpiredToken\\); " +
            `the restore stopped with \\d+ of \\d+ files in place \\(kept\\): ${again}\n$`,
        ),
      }, "restore");
      assertNothingWrong(out, f.src);
      const v = await s3backup(["verify", "-b", f.repo, "--read-data", "-c"], { env: f.env });
      assertOutcome(
        v,
        { code: 1, says: /the session token has expired \(ExpiredToken\)\n$/ },
        "verify",
      );
      assert.doesNotMatch(v.stdout + v.stderr, /corrupt/);
      await kitStops(
        f,
        refused,
        new RegExp(
          "^restore\\.sh: .*\\(ExpiredToken\\).*; the restore stopped \\(what is in place is kept\\): " +
            `${again}$`,
        ),
      );
      await rerunWhole(f, out);
    } finally {
      await f.cleanup();
    }
  },
});

Deno.test({
  name: "faults [moto]: a format-1 bucket's restore when the store stops answering: the binary " +
    "and restore-legacy.sh stop at it, name no file, exit 1; the reruns complete",
  ignore: moto === undefined,
  fn: async () => {
    const f = await fixture(moto!, [], 5);
    const store = targetStore(moto!, f.bucket, "r");
    try {
      const files: Record<string, string> = {};
      for (let i = 0; i < 12; i++) files[`d/f-${i}`] = `format 1, file ${i}\n`;
      await legacyBucket(
        (k, b) => store.save(k, b),
        files,
        "meta_d_2016-06-01_1464739200000",
        PASSWORD,
      );
      const want = (out: string) => {
        for (const [path, content] of Object.entries(files)) {
          assert.equal(Deno.readTextFileSync(`${out}/${path}`), content, path);
        }
      };
      // The first object goes through; every download after it stalls.
      f.proxy.setRules([{
        fault: "stall",
        kinds: ["get"],
        key: /^r\/[0-9a-f]{32}$/,
        share: 1,
        after: 1,
      }]);
      const out = `${f.dir}/out`;
      const args = ["restore", "-b", f.repo, "-m", "latest", "-f", out, "-c"];
      const r = await s3backup([...args, "--timeout", "2s"], { env: f.env });
      assertOutcome(r, {
        code: 1,
        says:
          /\ns3backup: No answer from \S+ within 2 s \(5 attempts; see --timeout\); the restore stopped with 1 of 12 files in place \(kept\): run the same command again once the store answers\n$/,
      }, "restore");
      f.proxy.setRules([{
        fault: "stall",
        kinds: ["get"],
        key: /^r\/[0-9a-f]{32}$/,
        share: 1,
        after: 1,
      }]);
      const kitOut = `${f.dir}/kit`;
      const kitArgs = [f.repo, "latest", kitOut];
      const k = await runKit("restore-legacy.sh", kitArgs, PASSWORD, {
        ...f.env,
        S3BACKUP_KIT_READ_TIMEOUT: "2",
        AWS_MAX_ATTEMPTS: "2",
      }, 300_000);
      assert.equal(k.code, 1, k.stderr);
      // Each retry is told as it happens (not caught with the error that names the object).
      assert.match(
        k.stderr,
        /^restore-legacy\.sh: no answer from \S+ within 2 s \(attempt 1 of 2\): trying again$/m,
      );
      assert.match(
        k.stderr,
        /\nrestore-legacy\.sh: .*Read timeout on endpoint URL: .*; the restore stopped \(what is in place is kept\): run the same command again once the store answers\n$/,
      );
      assert.doesNotMatch(k.stderr, /restore-legacy\.sh: d\/f-/, k.stderr);
      f.proxy.setRules([]);
      assert.equal((await s3backup(args, { env: f.env })).code, 0, "the binary's rerun");
      want(out);
      const again = await runKit("restore-legacy.sh", kitArgs, PASSWORD, f.env);
      assert.equal(again.code, 0, again.stderr);
      want(kitOut);
    } finally {
      store.close();
      await f.cleanup();
    }
  },
});

Deno.test({
  name: "faults [moto]: restore when a cut download cannot resume (the store ignores Range): " +
    "the pack read again whole, exit 0, everything right",
  ignore: moto === undefined,
  fn: async () => {
    const f = await fixture(moto!, [], 5);
    try {
      const { out, r } = await restoreUnder(f, [
        { fault: "cut", kinds: ["get"], key: /packs\/[0-9a-f]{32}$/, share: 1, max: 1 },
        { fault: "no-range", kinds: ["get"], share: 1 }, // (only a resume sends a Range)
      ]);
      // The stream's members read before the cut are written; the rest come from the pack
      // fetched again (repo/pack_reader.ts), not failed with it.
      assertOutcome(r, { code: 0, says: /interrupted: .*resuming at byte \d+/ }, "restore");
      assert.equal(f.proxy.injected[0], 1, "one cut");
      assert.deepEqual(snapshot(out), snapshot(f.src));
    } finally {
      await f.cleanup();
    }
  },
});

Deno.test({
  name: "faults [moto]: SIGTERM while uploads hang: exit 143 within seconds, no meta, no lock",
  ignore: moto === undefined,
  fn: async () => {
    const f = await fixture(moto!, [
      { fault: "stall", kinds: ["put", "put-part", "multipart"], key: /[0-9a-f]{32}/, share: 1 },
    ], 1);
    try {
      const p = start(["backup", "-f", f.src, "-b", f.repo, "-c", "--timeout", "10m"], {
        env: f.env,
        deadlineMs: 60_000,
      });
      // SIGTERM once an upload hangs (the proxy stalled it), not at a guessed time.
      await until("an upload is stalled", () => f.proxy.faults.length > 0, 50_000);
      const sent = performance.now();
      p.child.kill("SIGTERM");
      const r = await p.done;
      assert.equal(r.code, 143, r.stderr);
      const ms = performance.now() - sent;
      assert.ok(ms < 10_000, `exited ${ms} ms after the signal`);
      f.proxy.setRules([]);
      const l = await s3backup(["list", "-b", f.repo], { env: f.env });
      assert.equal(l.code, 0, l.stderr);
      assert.equal(l.stdout, "", "no backup recorded");
      const prune = await s3backup(["prune", "-b", f.repo, "--keep-last", "1", "-c"], {
        env: f.env,
      });
      assert.equal(prune.code, 0, `a lock was left behind: ${prune.stderr}`);
      await assertRecovers(f, "after SIGTERM");
    } finally {
      await f.cleanup();
    }
  },
});
