/**
 * The compiled binary, when one can be built here (`deno task compile` needs Deno's runtime,
 * denort: downloaded, or DENORT_BIN): copied to a folder outside the repository and run from
 * there, it backs up, lists and restores a tree of nasty names, writes the kit, and the kit
 * restores the same backup, byte for byte; with an S3 server (moto) it also makes a round trip
 * there, so that the AWS SDK runs inside the binary. Where no runtime can be had the test is
 * reported as ignored, with why in its name: never passed without running; with
 * S3BACKUP_REQUIRE_BINARY=1 (the release job) it fails instead. S3BACKUP_TEST_BINARY names a
 * binary built already (the release workflow's) instead.
 */
import assert from "node:assert/strict";
import config from "../deno.json" with { type: "json" };
import { makeBucket, removeBucket, s3Targets } from "./s3_env.ts";
import { makeNastyTree, snapshot, unlock } from "./tree.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const PASSWORD = "compiled smoke ✓ password";

/** Builds this machine's binary with the compile task: its path, or why it could not be. */
async function build(): Promise<{ path: string } | { why: string }> {
  const out = await new Deno.Command("bash", {
    signal: AbortSignal.timeout(300_000), // a deadline: a hung child fails the test
    args: [`${ROOT}scripts/compile.sh`],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1) ?? "";
  if (out.code !== 0) return { why: err.replace(/^compile\.sh: /, "") };
  const ext = Deno.build.os === "windows" ? ".exe" : "";
  return { path: `${ROOT}dist/s3backup-${config.version}-${Deno.build.target}${ext}` };
}

const given = Deno.env.get("S3BACKUP_TEST_BINARY");
const built = given ? { path: given } : await build();
const windows = Deno.build.os === "windows";

const required = Deno.env.get("S3BACKUP_REQUIRE_BINARY") === "1";
const moto = s3Targets().find((t) => t.label === "moto" && t.error === undefined);

Deno.test({
  name: "path" in built
    ? "compiled binary: backup, list, restore and the kit, run outside the repository"
    : `compiled binary: SKIPPED, no binary could be built here (${built.why})`,
  ignore: !("path" in built) && !required,
  fn: async () => {
    if (!("path" in built)) throw new Error(`S3BACKUP_REQUIRE_BINARY=1: ${built.why}`);
    const dir = await Deno.makeTempDir({ prefix: "s3backup-compiled-" });
    try {
      const bin = `${dir}/s3backup${Deno.build.os === "windows" ? ".exe" : ""}`;
      await Deno.copyFile(built.path, bin);
      if (!windows) await Deno.chmod(bin, 0o755); // (Deno.chmod throws on Windows)
      const src = `${dir}/src`, repo = `${dir}/repo`;
      await Deno.mkdir(src);
      if (windows) {
        // Names Windows can hold (the nasty tree has some it cannot).
        await Deno.mkdir(`${src}/dir with space`);
        await Deno.writeTextFile(`${src}/dir with space/ü.txt`, "umlaut\n");
        await Deno.writeFile(
          `${src}/big.bin`,
          new Uint8Array(3 * 1024 * 1024 + 5).map((_, i) => i),
        );
      } else makeNastyTree(src, 3 * 1024 * 1024 + 5);
      await Deno.mkdir(repo);
      const run = async (args: string[], extra: Record<string, string> = {}) => {
        const out = await new Deno.Command(bin, {
          signal: AbortSignal.timeout(300_000), // a deadline: a hung child fails the test
          args,
          cwd: dir,
          env: {
            S3BACKUP_PASSWORD: PASSWORD,
            HOME: dir,
            USERPROFILE: dir,
            PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
            ...extra,
          },
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }).output();
        const td = new TextDecoder();
        return { code: out.code, stdout: td.decode(out.stdout), stderr: td.decode(out.stderr) };
      };
      const v = await run(["--version"]);
      assert.equal(v.stdout.trim(), `s3backup ${config.version}`);
      const b = await run(["-f", src, "-b", repo, "-a", "backup", "-c"]);
      assert.equal(b.code, 0, b.stderr);
      const l = await run(["list", "-b", repo, "--tsv"]);
      assert.equal(l.code, 0, l.stderr);
      assert.equal(l.stdout.trim().split("\n").length, 1);
      const r = await run(["restore", "-b", repo, "-m", "latest", "-f", `${dir}/out`, "-c"]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(snapshot(`${dir}/out`), snapshot(src));
      const k = await run(["kit", "-o", `${dir}/kit`]);
      assert.equal(k.code, 0, k.stderr);
      const kv = await run(["kit", "--verify", "-b", repo]);
      assert.equal(kv.code, 0, kv.stdout + kv.stderr);
      if (moto !== undefined) {
        // The AWS SDK inside the binary: a backup to S3 and its restore.
        const { bucket, env } = await makeBucket(moto);
        try {
          const at = `s3://${bucket}/compiled`;
          const sb = await run(["backup", "-f", src, "-b", at, "-c"], env);
          assert.equal(sb.code, 0, sb.stderr);
          const sr = await run(
            ["restore", "-b", at, "-m", "latest", "-f", `${dir}/s3-out`, "-c"],
            env,
          );
          assert.equal(sr.code, 0, sr.stderr);
          assert.deepEqual(snapshot(`${dir}/s3-out`), snapshot(src), "through S3");
        } finally {
          await removeBucket(moto, bucket);
        }
      }
      if (windows) return; // the kit is bash, coreutils and openssl: not a Windows tool
      const kr = await new Deno.Command("bash", {
        signal: AbortSignal.timeout(300_000), // a deadline: a hung child fails the test
        args: [`${dir}/kit/restore.sh`, repo, "latest", `${dir}/kit-out`],
        env: { S3BACKUP_PASSWORD: PASSWORD, PATH: "/usr/bin:/bin", HOME: dir },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(kr.code, 0, new TextDecoder().decode(kr.stderr));
      assert.deepEqual(snapshot(`${dir}/kit-out`), snapshot(src));
    } finally {
      unlock(dir); // the nasty tree's read-only folders, restored read-only: a user cannot remove them
      await Deno.remove(dir, { recursive: true });
    }
  },
});
