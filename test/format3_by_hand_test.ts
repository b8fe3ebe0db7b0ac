/**
 * FORMAT.md §10, run as written: one file back from a format 3 backup in S3 with three
 * commands (the AWS CLI, openssl, tar, gzip, sed, grep), no s3backup. The commands are taken
 * from FORMAT.md itself, so the recipe and the test cannot drift apart.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { RUN_FLAGS } from "../scripts/permissions.ts";
import { childEnv, makeBucket, removeBucket, requireTarget, s3Targets } from "./s3_env.ts";

const MAIN = new URL("../src/main.ts", import.meta.url).pathname;
const FORMAT = new URL("../FORMAT.md", import.meta.url).pathname;
const PASSWORD = "by hand, with standard tools";

/** The three commands of FORMAT.md §10. */
function recipe(): string[] {
  const text = Deno.readTextFileSync(FORMAT);
  const section = text.slice(text.indexOf("## 10. By hand"));
  const block = /```\n([\s\S]*?)```/.exec(section)![1]!;
  const lines = block.trim().split("\n");
  assert.equal(lines.length, 3, "FORMAT.md §10 promises three commands");
  return lines;
}

for (const target of s3Targets()) {
  Deno.test(`FORMAT.md §10 [${target.label}]: one file back by hand from a gzipped pack`, async () => {
    requireTarget(target);
    const { bucket, env: aws } = await makeBucket(target);
    const dir = await Deno.makeTempDir({ prefix: "s3backup-byhand-" });
    try {
      Deno.mkdirSync(`${dir}/src/etc`, { recursive: true });
      const hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n".repeat(40);
      Deno.writeTextFileSync(`${dir}/src/etc/hosts`, hosts);
      Deno.writeTextFileSync(`${dir}/src/other`, "another small file\n");
      const env = childEnv({ ...aws, S3BACKUP_PASSWORD: PASSWORD, HOME: dir });
      const run = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...RUN_FLAGS,
          "--quiet",
          MAIN,
          "backup",
          "-f",
          `${dir}/src`,
          "-n",
          "nightly",
          "-b",
          `s3://${bucket}`,
        ],
        env,
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
      const meta = /backup (meta_nightly_\d{8}T\d{6}Z)/.exec(
        new TextDecoder().decode(run.stdout),
      )![1]!;

      const [key, grep, get] = recipe();
      // Not AWS: the endpoint goes with each aws command, as FORMAT.md §10 says.
      const endpoint = 'aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }\n';
      const sh = (script: string) =>
        new Deno.Command("bash", {
          args: ["-o", "pipefail", "-c", endpoint + script],
          env: { ...env, B: `s3://${bucket}`, PATH: "/usr/bin:/bin" },
          clearEnv: true,
          cwd: dir,
          stdout: "piped",
          stderr: "piped",
        }).output();
      // Command 2 prints the entry: its md5 and where fill in command 3.
      const line = await sh(`${key!}\n${grep!.replace("meta_nightly_20261127T163140Z", meta)}`);
      const entry = new TextDecoder().decode(line.stdout).trim();
      assert.equal(line.code, 0, new TextDecoder().decode(line.stderr));
      const [md5, , , , , , , where] = entry.split(" ");
      assert.match(where!, /^[0-9a-f]{32}$/, `a small file is a pack member: ${entry}`);
      const third = get!.replace("<pack>", where!).replace("<md5>", md5!);
      const out = await sh(`${key!}\n${third}`);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const back = Deno.readFileSync(`${dir}/hosts`);
      assert.equal(new TextDecoder().decode(back), hosts);
      assert.equal(createHash("md5").update(back).digest("hex"), md5);
    } finally {
      await Deno.remove(dir, { recursive: true });
      await removeBucket(target, bucket);
    }
  });
}
