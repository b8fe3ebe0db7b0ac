/**
 * An endpoint that accepts connections and never answers: every request gives up after the
 * timeout (retried, then one clear line, exit 1), and SIGTERM / SIGINT stop a waiting run
 * within seconds with 143 / 130.
 */
import assert from "node:assert/strict";
import { s3backup, silentServer } from "./harness.ts";

const CREDS = { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", AWS_REGION: "us-east-1" };

Deno.test("a silent endpoint: each attempt times out, then one line and exit 1", async () => {
  const srv = silentServer();
  try {
    const r = await s3backup(
      ["list", "-b", "s3://silent-bucket", "--endpoint-url", srv.endpoint, "--timeout", "1s"],
      { env: CREDS, deadlineMs: 90_000 },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^s3backup: No answer from http:\/\/127\.0\.0\.1:\d+ within 1 s \(5 attempts; see --timeout\)\n$/,
    );
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.ok(r.ms < 60_000, `took ${r.ms} ms`);
  } finally {
    srv.close();
  }
});

for (const [name, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
  Deno.test(`a silent endpoint: ${name} stops the run within seconds, exit ${code}`, async () => {
    const srv = silentServer();
    try {
      const r = await s3backup(
        ["list", "-b", "s3://silent-bucket", "--endpoint-url", srv.endpoint, "--timeout", "10m"],
        { env: CREDS, deadlineMs: 60_000, signal: { name, afterMs: 3000 } },
      );
      assert.equal(r.code, code, r.stderr);
      assert.equal(r.stderr, "s3backup: interrupted\n");
      assert.ok(r.ms < 3000 + 5000, `exited ${r.ms} ms after start`);
    } finally {
      srv.close();
    }
  });
}

Deno.test("a silent endpoint: the kit's aws calls give up too (list.sh, restore.sh)", async () => {
  const srv = silentServer();
  const kit = new URL("../../restore-kit/", import.meta.url).pathname;
  try {
    for (const script of ["list.sh", "restore.sh"]) {
      const args = ["--endpoint-url", srv.endpoint, "s3://silent-bucket"];
      if (script === "restore.sh") args.push("latest", await Deno.makeTempDir());
      const t0 = performance.now();
      const out = await new Deno.Command("bash", {
        args: [`${kit}${script}`, ...args],
        env: {
          ...CREDS,
          S3BACKUP_PASSWORD: "x",
          S3BACKUP_KIT_CONNECT_TIMEOUT: "1",
          S3BACKUP_KIT_READ_TIMEOUT: "1",
          AWS_MAX_ATTEMPTS: "2",
          PATH: "/usr/bin:/bin",
        },
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(90_000),
      }).output();
      const ms = performance.now() - t0;
      const err = new TextDecoder().decode(out.stderr);
      assert.notEqual(out.code, 0, `${script}: ${err}`);
      assert.match(err, /timed out|Read timeout|Connect timeout/i, `${script}: ${err}`);
      assert.ok(ms < 60_000, `${script} took ${ms} ms`);
    }
  } finally {
    srv.close();
  }
});
