/**
 * The README's quick start, run as written (its `sh` block under "Quick start"), against each
 * S3 server of s3_env.ts: only the bucket, the folders and HOME are this test's.
 */
import assert from "node:assert/strict";
import { s3backupArgv } from "./faults/harness.ts";
import { childEnv, makeBucket, removeBucket, requireTarget, s3Targets } from "./s3_env.ts";

const README = new URL("../README.md", import.meta.url).pathname;

/** The quick start's commands, as the README has them. */
function quickStart(): string {
  const text = Deno.readTextFileSync(README);
  const section = text.slice(text.indexOf("## Quick start"));
  return /```sh\n([\s\S]*?)```/.exec(section)![1]!;
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

for (const target of s3Targets()) {
  Deno.test(`README quick start [${target.label}]: init, backup, list, restore as written`, async () => {
    requireTarget(target);
    const { bucket, env: aws } = await makeBucket(target);
    const dir = await Deno.makeTempDir({ prefix: "s3backup-quickstart-" });
    try {
      await Deno.mkdir(`${dir}/data/sub`, { recursive: true });
      await Deno.writeTextFile(`${dir}/data/a.txt`, "quick start\n");
      await Deno.writeTextFile(`${dir}/data/sub/b.txt`, "b\n".repeat(1000));
      const block = quickStart()
        .replaceAll("s3://my-bucket/host1", `s3://${bucket}/host1`)
        .replaceAll("/srv/data", `${dir}/data`)
        .replaceAll("/tmp/restored", `${dir}/restored`);
      assert.ok(block.includes("s3backup init") && block.includes("s3backup restore"), block);
      const s3backup = `s3backup() { ${s3backupArgv([]).map(quote).join(" ")} "$@"; }\n`;
      const out = await new Deno.Command("bash", {
        args: ["-euo", "pipefail", "-c", s3backup + block],
        env: childEnv({ ...aws, HOME: dir, S3BACKUP_PASSWORD: "" }),
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, said);
      assert.match(said, /created repository/);
      assert.match(said, /^meta_data_\S+\s/m, "list shows the backup");
      assert.equal(await Deno.readTextFile(`${dir}/restored/a.txt`), "quick start\n");
      assert.equal(await Deno.readTextFile(`${dir}/restored/sub/b.txt`), "b\n".repeat(1000));
    } finally {
      await Deno.remove(dir, { recursive: true });
      await removeBucket(target, bucket);
    }
  });
}
