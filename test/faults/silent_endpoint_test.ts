/**
 * An endpoint that accepts connections and never answers: every request gives up after the
 * timeout (retried, then one clear line, exit 1), and SIGTERM / SIGINT stop a waiting run
 * within seconds with 143 / 130.
 */
import assert from "node:assert/strict";
import { closer, s3backup, silentServer, start, until } from "./harness.ts";

const CREDS = { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", AWS_REGION: "us-east-1" };

Deno.test("a silent endpoint: the first request gives up within 30 s, each retry told, then one line", async () => {
  const srv = silentServer();
  try {
    // The default --timeout is 2 minutes: an endpoint that never answered gets 5 s an attempt.
    const r = await s3backup(
      ["list", "-b", "s3://silent-bucket", "--endpoint-url", srv.endpoint],
      { env: CREDS, deadlineMs: 90_000 },
    );
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.deepEqual(
      lines.slice(0, 4).map((l) => l.replace(/\d+ s/, "N s").replace(/:\d+/, ":P")),
      [1, 2, 3, 4].map((n) =>
        `s3backup: warning: no answer from http://127.0.0.1:P within N s (attempt ${n} of 5): ` +
        "trying again"
      ),
    );
    assert.match(
      lines[4]!,
      /^s3backup: No answer from http:\/\/127\.0\.0\.1:\d+ within 5 s \(5 attempts, the first request to it; see --timeout\)$/,
    );
    assert.equal(lines.length, 5, r.stderr);
    assert.ok(r.ms < 35_000, `took ${r.ms} ms`);
  } finally {
    srv.close();
  }
});

Deno.test("an endpoint that answered, then goes silent: later requests keep --timeout and its retries", async () => {
  const srv = answersOnce();
  try {
    const r = await s3backup(
      ["list", "-b", "s3://silent-bucket", "--endpoint-url", srv.endpoint, "--timeout", "2s"],
      { env: CREDS, deadlineMs: 90_000 },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /within 2 s \(attempt 4 of 5\): trying again\n/);
    assert.match(r.stderr, /No answer from \S+ within 2 s \(5 attempts; see --timeout\)\n$/);
  } finally {
    srv.close();
  }
});

/** A server on loopback that answers its first HTTP request (200, empty), then never again. */
function answersOnce(): { endpoint: string; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  let answered = false;
  (async () => {
    try {
      for await (const c of listener) {
        conns.push(c);
        (async () => {
          const buf = new Uint8Array(65536);
          while ((await c.read(buf).catch(() => null)) !== null) {
            if (answered) continue;
            answered = true;
            await c.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
          }
        })();
      }
    } catch { /* closed */ }
  })();
  return {
    endpoint: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    close: closer(listener, conns),
  };
}

for (const [name, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
  Deno.test(`a silent endpoint: ${name} stops the run within seconds, exit ${code}`, async () => {
    const srv = silentServer();
    try {
      const p = start(
        ["list", "-b", "s3://silent-bucket", "--endpoint-url", srv.endpoint, "--timeout", "10m"],
        { env: CREDS, deadlineMs: 60_000 },
      );
      // The signal comes while a request waits on the silent server, not at a guessed time.
      await until("a request waits on the silent server", () => srv.accepted() > 0);
      const sent = performance.now();
      p.child.kill(name);
      const r = await p.done;
      assert.equal(r.code, code, r.stderr);
      assert.equal(r.stderr, "s3backup: interrupted\n");
      const ms = performance.now() - sent;
      assert.ok(ms < 5000, `exited ${ms} ms after the signal`);
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
      assert.equal(out.code, 1, `${script}: ${err}`);
      assert.equal(
        err.replace(/:\d+ /g, ":P "),
        `${script}: no answer from http://127.0.0.1:P within 1 s (attempt 1 of 2): trying again\n` +
          `${script}: no answer from http://127.0.0.1:P within 1 s (2 attempts, the first ` +
          "request to it): check the endpoint and the network\n",
      );
      assert.ok(ms < 30_000, `${script} took ${ms} ms`);
    }
  } finally {
    srv.close();
  }
});

for (const [name, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
  Deno.test(`a silent endpoint: ${name} stops the kit within seconds, exit ${code}, its temp gone`, async () => {
    const srv = silentServer();
    const kit = new URL("../../restore-kit/", import.meta.url).pathname;
    const tmp = await Deno.makeTempDir({ prefix: "s3backup-kit-signal-" });
    try {
      // The kit's own timeouts (10 s a first attempt): the signal comes while aws waits.
      const child = new Deno.Command("bash", {
        args: [
          `${kit}restore.sh`,
          "--endpoint-url",
          srv.endpoint,
          "s3://silent-bucket",
          "latest",
          `${tmp}/out`,
        ],
        env: { ...CREDS, S3BACKUP_PASSWORD: "x", PATH: "/usr/bin:/bin", TMPDIR: tmp },
        clearEnv: true,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      await until("the kit's request waits on the silent server", () => srv.accepted() > 0);
      const sent = performance.now();
      child.kill(name);
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const st = await child.status;
      clearTimeout(timer);
      const err = new TextDecoder().decode(
        (await child.output().catch(() => null))?.stderr ?? new Uint8Array(),
      );
      const ms = performance.now() - sent;
      assert.equal(st.code, code, err);
      assert.ok(ms < 5_000, `exited ${ms} ms after the signal (an attempt lasts 10 s)`);
      assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name), [], "the kit's temp removed");
    } finally {
      srv.close();
      await Deno.remove(tmp, { recursive: true });
    }
  });
}
