import assert from "node:assert/strict";
import { COMMANDS, COMMON, parseCommandLine, TAKES } from "./args.ts";
import { commandHelp, mainHelp } from "./help.ts";

Deno.test("help: each command its own usage, options and example; --help lists the commands", () => {
  const main = mainHelp();
  for (const c of COMMANDS) {
    if (c === "help" || c === "version") continue;
    // Its name, then at least two spaces, then what it does (completion once ran into its text).
    assert.match(main, new RegExp(`\\n  ${c}  +[A-Za-z]`), c);
  }
  const texts = new Set<string>();
  for (const c of COMMANDS) {
    if (c === "help" || c === "version") continue;
    const h = commandHelp(c);
    texts.add(h);
    assert.match(h, new RegExp(`^Usage: s3backup ${c === "check" ? "verify" : c} `), c);
    assert.ok(h.includes("\nExample:\n  s3backup "), c);
    // Every option it takes is explained, and none it refuses.
    for (const o of [...TAKES[c], ...COMMON]) {
      if (o === "action" || o === "version" || o === "simulate") continue;
      const shown = o === "dry-run" ? "--dry-run" : `--${o}`;
      assert.ok(h.includes(shown), `${c} --help lacks ${shown}`);
    }
    for (const o of ["keep-last", "only", "overwrite", "read-data", "output", "storage-class"]) {
      if (!TAKES[c].includes(o)) assert.ok(!h.includes(`--${o} `), `${c} --help shows --${o}`);
    }
  }
  assert.equal(texts.size, COMMANDS.length - 3, "no two commands share a text (check is verify)");
  assert.equal(parseCommandLine(["backup", "--help"]).helpFor, "backup");
  assert.equal(parseCommandLine(["-a", "restore", "-h"]).helpFor, "restore");
  assert.equal(parseCommandLine(["--help"]).helpFor, undefined);
});

Deno.test("help: an option a command gives its own meaning says that meaning there", () => {
  const backup = commandHelp("backup"), restore = commandHelp("restore");
  assert.match(backup, /-f, --folder DIR +the folder to back up/);
  assert.match(backup, /-n, --name NAME +the backup's name \(default: the folder's name\)/);
  assert.match(restore, /-f, --folder DIR +the target folder/);
  assert.doesNotMatch(restore, /default: the folder's name|restore: the target/);
  assert.match(restore, /-n, --name NAME +the backups of this name/);
  assert.doesNotMatch(backup + restore, /README: --json/);
});
