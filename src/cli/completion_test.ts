import assert from "node:assert/strict";
import { COMMANDS, TAKES } from "./args.ts";
import { completionScript } from "./completion.ts";
import { manPage } from "./help.ts";
import { UsageError } from "../util/errors.ts";

/** Runs bash with the completion script loaded; prints COMPREPLY for `words` (the last: cur). */
function complete(script: string, words: string[]): string[] {
  const setup = `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); ` +
    `COMP_CWORD=${words.length - 1}; _s3backup; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const out = new Deno.Command("bash", {
    args: ["-c", `${script}\n${setup}`],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  assert.equal(out.success, true, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l !== "");
}

Deno.test("completion bash: loads in bash, completes commands and each command's options", () => {
  const script = completionScript("bash");
  const syntax = new Deno.Command("bash", { args: ["-n", "-c", script] }).outputSync();
  assert.equal(syntax.success, true, "bash -n");
  assert.deepEqual(complete(script, ["s3backup", "ba"]), ["backup"]);
  assert.deepEqual(complete(script, ["s3backup", "prune", "--max"]), ["--max-unused"]);
  assert.deepEqual(complete(script, ["s3backup", "restore", "--ov"]), ["--overwrite"]);
  assert.deepEqual(
    complete(script, ["s3backup", "backup", "--ov"]),
    [],
    "backup takes no --overwrite",
  );
  // Every option each command takes is offered (the parser's table, TAKES).
  for (const c of COMMANDS) {
    const offered = complete(script, ["s3backup", c, "--"]);
    for (const o of TAKES[c]) assert.ok(offered.includes(`--${o}`), `${c}: --${o}`);
  }
  assert.match(completionScript("zsh"), /bashcompinit/);
  assert.match(completionScript("fish"), /__fish_seen_subcommand_from prune" -l max-unused/);
  assert.throws(() => completionScript("tcsh"), UsageError);
});

const haveMan = (() => {
  try {
    return new Deno.Command("man", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();
if (!haveMan) console.warn("completion_test: the man page test is skipped: no man(1) here");

Deno.test(
  { name: "man: the page renders with man -l, every command in it", ignore: !haveMan },
  () => {
    const dir = Deno.makeTempDirSync();
    try {
      Deno.writeTextFileSync(`${dir}/s3backup.1`, manPage());
      const out = new Deno.Command("man", {
        args: ["--warnings", "-l", `${dir}/s3backup.1`],
        env: { MANWIDTH: "80", MANPAGER: "cat", PAGER: "cat" },
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
      const err = new TextDecoder().decode(out.stderr);
      assert.equal(out.success, true, err);
      assert.equal(err, "", "no warnings");
      const text = new TextDecoder().decode(out.stdout);
      for (const c of COMMANDS) {
        if (c === "help" || c === "version" || c === "check") continue;
        assert.match(text, new RegExp(`\\n {7}${c}\\b`), c);
      }
      assert.match(text, /--max-unused/);
      assert.match(text, /EXIT STATUS/);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);
