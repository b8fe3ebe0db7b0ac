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
      ["-c"],
      ["-a", "explode"],
      ["backup", "-b", "x"],
      ["kit"],
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

Deno.test("--dry-run is -s for every command that writes; prune's too", () => {
  const b = parseCommandLine(["backup", "-f", "d", "-b", "x", "--dry-run"]);
  assert.equal(b.simulate, true);
  const r = parseCommandLine(["restore", "-b", "x", "-m", "latest", "-f", "t", "--dry-run"]);
  assert.equal(r.simulate, true);
  const p = parseCommandLine(["prune", "-b", "x", "--keep-last", "3", "-s"]);
  assert.equal(p.dryRun, true);
  assert.equal(parseCommandLine(["prune", "-b", "x", "--keep-last", "3"]).dryRun, undefined);
  assert.equal(parseCommandLine(["list", "-b", "x", "-v"]).verbose, true);
  // The original usage gives -f, -n and -s to list too.
  assert.equal(
    parseCommandLine(["-f", "d", "-b", "x", "-a", "list", "-n", "y", "-s"]).command,
    "list",
  );
});

Deno.test("an option the command does not take is refused, naming it", () => {
  const cases: [string[], string][] = [
    [["backup", "-f", "d", "-b", "x", "--keep-last", "3"], "backup does not take --keep-last"],
    [["backup", "-f", "d", "-b", "x", "--overwrite"], "backup does not take --overwrite"],
    [["backup", "-f", "d", "-b", "x", "--read-data"], "backup does not take --read-data"],
    [["list", "-b", "x", "-m", "latest"], "list does not take -m"],
    [["kit", "-o", "k", "--jobs", "3"], "kit does not take --jobs"],
    [["passwd", "-b", "x", "--only", "a"], "passwd does not take --only"],
    [["verify", "-b", "x", "--overwrite"], "verify does not take --overwrite"],
  ];
  for (const [argv, message] of cases) {
    assert.throws(
      () => parseCommandLine(argv),
      (e: unknown) => e instanceof UsageError && e.message.startsWith(message),
      argv.join(" "),
    );
  }
});

Deno.test("a negative number after an option is its value, not an ambiguous option", () => {
  const cmd = parseCommandLine([
    "restore",
    "-b",
    "x",
    "-m",
    "latest",
    "-f",
    "t",
    "--restore-days",
    "-1",
  ]);
  assert.equal(cmd.restoreDays, "-1");
  assert.equal(parseCommandLine(["list", "-b", "x", "--as-of", "-3"]).asOf, "-3");
  assert.throws(() => parseCommandLine(["list", "-b", "--verbose"]), UsageError, "a word is not");
});

Deno.test("an option that takes one value, given twice, is refused; repeatable ones repeat", () => {
  for (
    const argv of [["backup", "-f", "a", "-f", "b", "-b", "x"], [
      "backup",
      "-f",
      "a",
      "-n",
      "x",
      "--name",
      "y",
      "-b",
      "x",
    ]]
  ) {
    assert.throws(() => parseCommandLine(argv), (e) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /^(-f|--name) is given twice: give it once/);
      return true;
    }, argv.join(" "));
  }
  const ok = parseCommandLine([
    "backup",
    "-f",
    "a",
    "-b",
    "x",
    "--exclude",
    "*.tmp",
    "--exclude",
    "*.log",
    "-c",
    "-c",
  ]);
  assert.deepEqual(ok.exclude, ["*.tmp", "*.log"]);
});

Deno.test("s3backup with no arguments is the help, not an error", () => {
  assert.equal(parseCommandLine([]).command, "help");
});

Deno.test("an unknown option: did you mean the nearest, and the command's own help", () => {
  assert.throws(
    () => parseCommandLine(["backup", "-f", "a", "-b", "x", "--exlude", "*.tmp"]),
    /Unknown option '--exlude': did you mean --exclude\? \(see s3backup backup --help\)$/,
  );
  assert.throws(
    () => parseCommandLine(["list", "--zzzzzzzz"]),
    /Unknown option '--zzzzzzzz' \(see s3backup list --help\)$/,
  );
});

Deno.test("restore and ls default to -m latest (of -n when given)", () => {
  assert.equal(parseCommandLine(["restore", "-b", "x", "-f", "t"]).meta, "latest");
  assert.equal(parseCommandLine(["ls", "-b", "x"]).meta, "latest");
  assert.equal(
    parseCommandLine(["restore", "-b", "x", "-f", "t", "-m", "meta_a_20260101T000000Z"]).meta,
    "meta_a_20260101T000000Z",
  );
});

Deno.test("args: backup of a stream: the command after --, one source, a plain file name", () => {
  const c = parseCommandLine([
    "backup",
    "-b",
    "./r",
    "--stdin-from-command",
    "--stdin-filename",
    "db.sql",
    "--",
    "pg_dump",
    "-Fc",
    "--",
    "mydb",
  ]);
  assert.deepEqual(c.stdinCommand, ["pg_dump", "-Fc", "--", "mydb"]);
  assert.equal(c.stdinFilename, "db.sql");
  assert.equal(c.folder, undefined);
  assert.equal(parseCommandLine(["-a", "backup", "-b", "./r", "--stdin"]).stdin, true);
  const refused: [string[], string][] = [
    [["backup", "-b", "./r", "--stdin", "-f", "."], "--stdin backs up one stream"],
    [["backup", "-b", "./r", "--stdin-from-command"], "--stdin-from-command needs a command"],
    [["backup", "-b", "./r", "--stdin-from-command", "--"], "--stdin-from-command needs a command"],
    [["backup", "-b", "./r", "--stdin", "--stdin-from-command", "--", "x"], "--stdin and --stdin-"],
    [["backup", "-b", "./r", "--stdin", "--stdin-filename", "a/b"], '--stdin-filename "a/b"'],
    [["backup", "-b", "./r", "--stdin", "--stdin-filename", ".."], '--stdin-filename ".."'],
    [["backup", "-b", "./r", "-f", ".", "--stdin-filename", "x"], "--stdin-filename needs"],
    [["list", "-b", "./r", "--stdin"], "list does not take --stdin"],
  ];
  for (const [argv, message] of refused) {
    assert.throws(
      () => parseCommandLine(argv),
      (e: unknown) => e instanceof UsageError && e.message.startsWith(message),
      argv.join(" "),
    );
  }
});
