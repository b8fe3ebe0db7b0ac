/**
 * The compiled binary, when one can be built here (`deno task compile` needs Deno's runtime,
 * denort: downloaded, or DENORT_BIN): copied to a folder outside the repository and run from
 * there, it backs up, lists and restores a tree of nasty names, writes the kit, and the kit
 * restores the same backup, byte for byte. Where no runtime can be had the test is reported
 * as ignored, with why in its name: never passed without running. S3BACKUP_TEST_BINARY names a
 * binary built already (the release workflow's) instead.
 */
import assert from "node:assert/strict";
import config from "../deno.json" with { type: "json" };
import { makeNastyTree, snapshot } from "./tree.ts";

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

Deno.test({
  name: "path" in built
    ? "compiled binary: backup, list, restore and the kit, run outside the repository"
    : `compiled binary: SKIPPED, no binary could be built here (${built.why})`,
  ignore: !("path" in built),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-compiled-" });
    try {
      const bin = `${dir}/s3backup${Deno.build.os === "windows" ? ".exe" : ""}`;
      await Deno.copyFile((built as { path: string }).path, bin);
      await Deno.chmod(bin, 0o755);
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
      const run = async (args: string[]) => {
        const out = await new Deno.Command(bin, {
          signal: AbortSignal.timeout(300_000), // a deadline: a hung child fails the test
          args,
          cwd: dir,
          env: {
            S3BACKUP_PASSWORD: PASSWORD,
            HOME: dir,
            USERPROFILE: dir,
            PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
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
      await Deno.remove(dir, { recursive: true });
    }
  },
});
