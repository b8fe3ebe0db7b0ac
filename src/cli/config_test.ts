import assert from "node:assert/strict";
import { findConfig, loadConfig, parseIni } from "./config.ts";
import { UsageError } from "../util/errors.ts";
import { firstLine } from "./password.ts";

Deno.test("ini: sections, comments, trimmed values, clear errors", () => {
  const ini = parseIni("; c\n[main]\npassword = p=a ss # not a comment \n\n[S3]\nRegion=eu\n");
  assert.equal(ini.get("main")!.get("password"), "p=a ss # not a comment");
  assert.equal(ini.get("s3")!.get("region"), "eu");
  assert.throws(
    () => parseIni("[main]\npassword=x\nnonsense\n"),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message === "Cannot read config s3backup.ini: line 3 is not key=value",
  );
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
