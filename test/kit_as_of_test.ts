/**
 * The kit's --as-of GET names the version with `--version-id=ID`: Ceph RGW's version ids may
 * begin with "-", which the aws CLI would take for an option (seen in CI). A stand-in `aws`
 * records its arguments.
 */
import assert from "node:assert/strict";
import { runKit } from "./kit_runner.ts";

const COMMON = new URL("../restore-kit/common.sh", import.meta.url).pathname;

Deno.test("kit --as-of: a version id that begins with '-' reaches the aws CLI as one argument", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-kit-asof-" });
  try {
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(
      `${dir}/bin/aws`,
      `#!/bin/bash\nprintf '%s\\n' "$@" >"${dir}/args"\n: >"\${!#}"\n`,
    );
    await Deno.chmod(`${dir}/bin/aws`, 0o755);
    await Deno.writeTextFile(`${dir}/index`, "0123 -abcDEF 17\nzz v2 3\n");
    const script = `set -euo pipefail
. "${COMMON}"
KIT_TMP="${dir}" STORE_KIND=s3 STORE_BUCKET=b STORE_PREFIX=p/ AS_OF=2026-12-01T00:00:00
AS_OF_INDEX="${dir}/index" AWS_OPTS=()
store_get 0123 "${dir}/out"
if store_get missing "${dir}/out2"; then exit 9; fi
echo "$STORE_ERR"`;
    const out = await new Deno.Command("bash", {
      args: ["-c", script],
      env: { PATH: `${dir}/bin:/usr/bin:/bin` },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const td = new TextDecoder();
    assert.equal(out.code, 0, td.decode(out.stderr));
    assert.equal(td.decode(out.stdout), "missing\n", "a name not in the index was not there then");
    const args = (await Deno.readTextFile(`${dir}/args`)).split("\n");
    assert.ok(args.includes("--version-id=-abcDEF"), args.join(" "));
    assert.ok(args.includes("p/0123"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kit: bad --as-of, --restore-tier and --restore-days are usage errors (exit 2), one line", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--as-of", "yesterday"],
      /^restore\.sh: --as-of: use a UTC time such as 2026-11-30T14:00:00Z, or a date\n$/,
    ],
    [
      ["--restore-tier", "Fast"],
      /^restore\.sh: --restore-tier: use Bulk, Standard or Expedited\n$/,
    ],
    [["--restore-days", "0"], /^restore\.sh: --restore-days: use 1 to 365\n$/],
  ];
  for (const [opts, re] of cases) {
    const r = await runKit("restore.sh", [...opts, "s3://b", "latest", "/tmp/x"], null);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, re);
  }
  const list = await runKit("list.sh", ["--restore-tier", "Bulk", "s3://b"], null);
  assert.equal(list.code, 2, "list.sh takes no restore options");
});
