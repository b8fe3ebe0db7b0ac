import assert from "node:assert/strict";
import { findConfig, loadConfig } from "./config.ts";
import { firstLine } from "./password.ts";

Deno.test("s3backup.ini: the README's inline comments, unknown sections and keys warned", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/s3backup.ini`;
    Deno.writeTextFileSync(
      path,
      "[main]\npassword = pw1   ; my comment\ncolour = blue\n[s3]\n" +
        "storage_class = STANDARD_IA   ; data objects only\nchecksums = when_required ; ceph\n" +
        "endpoint: http://localhost:9000 ; minio\n[S3]\nregion = x\n[extra]\nk = v\n",
    );
    Deno.chmodSync(path, 0o600);
    const c = loadConfig(path);
    assert.equal(c.password, "pw1", "the comment is not part of the password");
    assert.equal(c.storageClass, "STANDARD_IA");
    assert.equal(c.checksums, "when_required");
    assert.equal(c.endpoint, "http://localhost:9000");
    assert.equal(c.region, undefined, "[S3] is not [s3]");
    assert.deepEqual(c.warnings, [
      `${path}: unknown key colour in [main], ignored`,
      `${path}: unknown section [S3], ignored (section names are case-sensitive: [s3])`,
      `${path}: unknown section [extra], ignored`,
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("s3backup.ini is found in the working folder or its parent; warns when readable", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${dir}/work`);
    assert.equal(findConfig(undefined, `${dir}/work`), null);
    Deno.writeTextFileSync(`${dir}/s3backup.ini`, "[main]\npassword=up\n", { mode: 0o644 });
    Deno.chmodSync(`${dir}/s3backup.ini`, 0o644);
    const c = loadConfig(undefined, `${dir}/work`);
    assert.equal(c.path, `${dir}/s3backup.ini`);
    assert.equal(c.password, "up");
    assert.equal(c.warnings.length, 1);
    assert.ok(!c.warnings[0]!.includes("up\n") && !c.warnings[0]!.includes("=up"));
    Deno.writeTextFileSync(
      `${dir}/work/s3backup.ini`,
      "[main]\npassword=here\n[s3]\nendpoint=http://x\n",
    );
    Deno.chmodSync(`${dir}/work/s3backup.ini`, 0o600);
    const d = loadConfig(undefined, `${dir}/work`);
    assert.equal(d.password, "here");
    assert.equal(d.endpoint, "http://x");
    assert.deepEqual(d.warnings, []);
    assert.throws(() => loadConfig(`${dir}/missing.ini`), /Cannot read config/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("password files: first line without its line ending", () => {
  assert.equal(firstLine("pw\nrest"), "pw");
  assert.equal(firstLine("pw\r\n"), "pw");
  assert.equal(firstLine(" sp "), " sp ");
});

Deno.test("s3backup.ini [backup]: exclude lists by continuation lines or a repeated key", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/s3backup.ini`;
    Deno.writeTextFileSync(
      path,
      "[DEFAULT]\ntmp = *.tmp\n[backup]\nexclude = %(tmp)s\n  /cache/\n\n  **/node_modules/\n" +
        "exclude_if_present = CACHEDIR.TAG\nexclude = !keep.tmp ; re-included\n" +
        "exclude_file = rules.txt\none_file_system = Yes\n",
    );
    const c = loadConfig(path);
    assert.deepEqual(c.backup, {
      exclude: ["*.tmp", "/cache/", "**/node_modules/", "!keep.tmp"],
      excludeFile: ["rules.txt"],
      excludeIfPresent: ["CACHEDIR.TAG"],
    });
    assert.equal(c.oneFileSystem, true);
    assert.deepEqual(c.warnings, []);
    Deno.writeTextFileSync(path, "[backup]\none_file_system = maybe\n");
    assert.throws(
      () => loadConfig(path),
      new RegExp(`^UsageError: Cannot read config ${path}: \\[backup\\] one_file_system must`),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
