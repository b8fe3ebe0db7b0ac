/**
 * The AWS CLI's conventions through the real program: an https endpoint signed by a private CA
 * (a TLS proxy in front of moto, its CA made here with openssl), trusted through
 * AWS_CA_BUNDLE, `--ca-bundle`, `[s3] ca_bundle` or the profile's `ca_bundle`; a profile's
 * `endpoint_url` and `region` in the shared config file; and no SDK warning on stderr when
 * AWS_PROFILE and key variables are both set.
 */
import assert from "node:assert/strict";
import { closer, s3backup } from "./faults/harness.ts";
import { makeBucket, removeBucket, s3Targets } from "./s3_env.ts";

const moto = s3Targets().find((t) => t.label === "moto")!;

function openssl(args: string[], cwd: string): void {
  const out = new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .outputSync();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

/** A CA and a certificate for 127.0.0.1 signed by it, in `dir`. */
function makeCa(dir: string): void {
  openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=s3backup test CA",
  ], dir);
  openssl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "srv.key",
    "-out",
    "srv.csr",
    "-subj",
    "/CN=127.0.0.1",
  ], dir);
  Deno.writeTextFileSync(`${dir}/ext.cnf`, "subjectAltName=IP:127.0.0.1\n");
  openssl([
    "x509",
    "-req",
    "-in",
    "srv.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "srv.pem",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  ], dir);
}

/** A TLS proxy on loopback to `target` (host:port). */
function tlsProxy(dir: string, target: URL) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(`${dir}/srv.pem`),
    key: Deno.readTextFileSync(`${dir}/srv.key`),
  });
  const conns: Deno.Conn[] = [];
  // The access key ids the requests were signed with (their Authorization headers).
  const keyIds = new Set<string>();
  const sniff = () => {
    const dec = new TextDecoder();
    return new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        for (const m of dec.decode(chunk).matchAll(/Credential=([^/\s]+)\//g)) keyIds.add(m[1]!);
        out.enqueue(chunk);
      },
    });
  };
  (async () => {
    for await (const c of listener) {
      const up = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
      conns.push(c, up);
      c.readable.pipeThrough(sniff()).pipeTo(up.writable).catch(() => {});
      up.readable.pipeTo(c.writable).catch(() => {});
    }
  })().catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  return {
    endpoint: `https://127.0.0.1:${port}`,
    keyIds,
    close: closer(listener, conns),
  };
}

Deno.test({
  name: "tls [moto]: a private CA by AWS_CA_BUNDLE, --ca-bundle, [s3] ca_bundle, a profile",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-tls-" });
    const { bucket, env } = await makeBucket(moto);
    makeCa(dir);
    const proxy = tlsProxy(dir, new URL(moto.endpoint));
    try {
      await Deno.mkdir(`${dir}/src`);
      await Deno.writeTextFile(`${dir}/src/a`, "a");
      const keys = {
        AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID!,
        AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY!,
        AWS_EC2_METADATA_DISABLED: "true",
        AWS_CONFIG_FILE: `${dir}/no-config`,
        AWS_SHARED_CREDENTIALS_FILE: `${dir}/no-credentials`,
      };
      const at = ["-b", `s3://${bucket}/r`, "--endpoint-url", proxy.endpoint];
      const backup = await s3backup(["backup", "-f", `${dir}/src`, ...at, "-c"], {
        env: { ...keys, AWS_CA_BUNDLE: `${dir}/ca.pem` },
      });
      assert.equal(backup.code, 0, backup.stderr);
      const untrusted = await s3backup(["list", ...at], { env: keys });
      assert.equal(untrusted.code, 1, untrusted.stderr);
      assert.match(untrusted.stderr, /certificate/i);
      assert.equal(untrusted.stderr.trim().split("\n").length, 1, untrusted.stderr);
      const flag = await s3backup(["list", ...at, "--ca-bundle", `${dir}/ca.pem`], { env: keys });
      assert.equal(flag.code, 0, flag.stderr);
      await Deno.mkdir(`${dir}/work`);
      await Deno.writeTextFile(`${dir}/work/s3backup.ini`, `[s3]\nca_bundle = ${dir}/ca.pem\n`);
      const ini = await s3backup(["list", ...at], { env: keys, cwd: `${dir}/work` });
      assert.equal(ini.code, 0, ini.stderr);
      // A profile of the shared config file: its endpoint_url, region, ca_bundle and keys;
      // other key variables are set too: the profile wins (as for the AWS CLI), without the
      // SDK's warning about both on every run. (moto takes any key: the proxy tells which.)
      await Deno.writeTextFile(
        `${dir}/config`,
        `[profile tls]\nregion = eu-west-3\nendpoint_url = ${proxy.endpoint}\n` +
          `ca_bundle = ${dir}/ca.pem\naws_access_key_id = AKIAPROFILEKEY\n` +
          `aws_secret_access_key = ${keys.AWS_SECRET_ACCESS_KEY}\n`,
      );
      proxy.keyIds.clear();
      const profile = await s3backup(["list", "-b", `s3://${bucket}/r`, "-v"], {
        env: {
          ...keys,
          AWS_ACCESS_KEY_ID: "AKIAENVIRONMENTKEY",
          AWS_CONFIG_FILE: `${dir}/config`,
          AWS_PROFILE: "tls",
        },
      });
      assert.equal(profile.code, 0, profile.stderr);
      assert.match(profile.stdout, /meta_/);
      assert.equal(profile.stderr, "config: none (no s3backup.ini here or in the parent folder)\n");
      assert.deepEqual([...proxy.keyIds], ["AKIAPROFILEKEY"], "the profile's key signed");
      const badCa = await s3backup(["list", ...at, "--ca-bundle", `${dir}/missing.pem`], {
        env: keys,
      });
      assert.equal(badCa.code, 2, badCa.stderr);
      assert.match(badCa.stderr, /^s3backup: Cannot read the CA bundle .*missing\.pem: /);
    } finally {
      proxy.close();
      await removeBucket(moto, bucket).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
