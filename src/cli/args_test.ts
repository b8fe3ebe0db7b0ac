import assert from "node:assert/strict";
import { parseCommandLine } from "./args.ts";
import { UsageError } from "../util/errors.ts";

Deno.test("the original usage still parses", () => {
  const c = parseCommandLine(["-f", "/data", "-b", "bkt", "-a", "backup", "-c", "-n", "x", "-s"]);
  assert.equal(c.command, "backup");
  assert.equal(c.folder, "/data");
  assert.equal(c.bucket, "bkt");
  assert.equal(c.cron, true);
  assert.equal(c.name, "x");
  assert.equal(c.simulate, true);
  assert.equal(parseCommandLine(["-b", "bkt", "-a", "list"]).command, "list");
});

Deno.test("subcommands and long options", () => {
  const c = parseCommandLine(["backup", "--folder", "d", "--bucket", "s3://b/p", "--cron"]);
  assert.equal(c.command, "backup");
  assert.equal(c.bucket, "s3://b/p");
  assert.equal(parseCommandLine(["kit", "-o", "out"]).output, "out");
  assert.equal(parseCommandLine(["--version"]).command, "version");
});

Deno.test("bad command lines are one-line usage errors", () => {
  for (
    const argv of [
      [],
      ["-a", "explode"],
      ["backup", "-b", "x"],
      ["list"],
      ["frobnicate"],
      ["backup", "-a", "list", "-b", "x"],
      ["-f"],
      ["--nope"],
    ]
  ) {
    assert.throws(() => parseCommandLine(argv), (e: unknown) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.ok(!e.message.includes("\n"), e.message);
      return true;
    });
  }
});
