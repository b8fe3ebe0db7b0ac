/**
 * Every s3backup command in README.md's code blocks is one the parser takes (so an example cannot
 * name an option that is gone or spelled otherwise), and the Usage block and the examples of the
 * sections after it (but Object Lock's, which needs such a bucket) run end to end, as written,
 * on a local-directory repository: only the bucket and the paths are this test's. The quick
 * start runs against S3 in quick_start_test.ts.
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../src/cli/args.ts";
import { splitCommand } from "../src/cli/values.ts";
import { s3backupArgv } from "./faults/harness.ts";
import { childEnv } from "./s3_env.ts";

const README = Deno.readTextFileSync(new URL("../README.md", import.meta.url).pathname);

/** Each fenced sh or cron block, with the heading above it. */
function blocks(): { heading: string; body: string }[] {
  const found: { heading: string; body: string }[] = [];
  let heading = "";
  const fence = /^(#+ .*)$|^```(sh|cron)\n([\s\S]*?)^```$/gm;
  for (const m of README.matchAll(fence)) {
    if (m[1] !== undefined) heading = m[1];
    else found.push({ heading, body: m[3]! });
  }
  return found;
}

/** `line` up to its comment (a `#` after a blank, outside quotes). */
function uncommented(line: string): string {
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote !== "") quote = c === quote ? "" : quote;
    else if (c === "'" || c === '"') quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

/** The argument lists of every s3backup run in a block (`\` continuations joined). */
function invocations(body: string): string[][] {
  const runs: string[][] = [];
  const lines = body.replaceAll("\\\n", " ").split("\n").map(uncommented);
  for (const line of lines) {
    if (line.includes("<")) continue; // a synopsis: `-f <folder>`
    for (const part of line.split(/&&|\|\||[|;]/)) {
      const words = splitCommand(part);
      const at = words.findIndex((w) => w === "s3backup" || w.endsWith("/s3backup"));
      if (at < 0 || words[at - 1] === "cd") continue;
      const end = words.findIndex((w, i) => i > at && w.startsWith(">"));
      runs.push(words.slice(at + 1, end < 0 ? undefined : end));
    }
  }
  return runs;
}

Deno.test("README: every s3backup command in a code block is one the parser takes", () => {
  let n = 0;
  for (const { heading, body } of blocks()) {
    for (const argv of invocations(body)) {
      n++;
      try {
        parseCommandLine(argv);
      } catch (e) {
        assert.fail(`${heading}: s3backup ${argv.join(" ")}: ${(e as Error).message}`);
      }
    }
  }
  assert.ok(n >= 30, `only ${n} examples found: the extraction is broken`);
});

/** The blocks run end to end, in this order (Object Lock's needs a bucket with Object Lock). */
const RUN = [
  "## Usage",
  "## List",
  "## Restore",
  "## Verify",
  "## Prune",
  "## Change the password",
  "### Leaving things out",
  "## Restoring without the tool",
];

Deno.test("README: the Usage block and the sections' examples run as written on a local repository", async () => {
  const all = blocks();
  const dir = await Deno.makeTempDir({ prefix: "s3backup-usage-" });
  try {
    await Deno.mkdir(`${dir}/data/etc/nginx`, { recursive: true });
    await Deno.writeTextFile(`${dir}/data/etc/nginx/nginx.conf`, "events {}\n");
    await Deno.writeTextFile(`${dir}/data/etc/hosts`, "127.0.0.1 localhost\n");
    await Deno.writeTextFile(`${dir}/data/x.log`, "left out\n");
    await Deno.writeTextFile(`${dir}/s3backup.exclude`, "# rules\n*.tmp\n");
    await Deno.mkdir(`${dir}/man1`);
    const lines: string[] = [];
    for (const heading of RUN) {
      const block = all.find((b) => b.heading === heading);
      assert.ok(block !== undefined, `README has a block under ${heading}`);
      // Continuations joined; the synopsis and the download of the kit (aws) left out.
      for (const l of block.body.replaceAll("\\\n", " ").split("\n")) {
        if (l === "" || l.includes("<") || l.startsWith("aws ")) continue;
        lines.push(l);
        // After a password change the new password is the one (a reader would type it).
        if (/s3backup passwd /.test(l)) {
          const m = /S3BACKUP_NEW_PASSWORD='([^']*)'/.exec(l);
          lines.push(m ? `S3BACKUP_PASSWORD='${m[1]}'` : "S3BACKUP_PASSWORD=$NEW");
        }
      }
    }
    const script = lines.join("\n")
      .replaceAll("s3://my-bucket/", `${dir}/bucket/`)
      .replaceAll("/srv/data", `${dir}/data`)
      .replaceAll("/srv/restored", `${dir}/restored`)
      .replaceAll(" -f / ", ` -f ${dir}/data `)
      .replaceAll("/etc/s3backup.exclude", `${dir}/s3backup.exclude`)
      .replaceAll("/etc/bash_completion.d/", `${dir}/`)
      .replaceAll("/usr/local/share/man/man1/", `${dir}/man1/`)
      .replaceAll("S3BACKUP_PASSWORD='...'", 'S3BACKUP_PASSWORD="$S3BACKUP_PASSWORD"')
      // The names a reader cannot know: the backup's own, as `list` shows it.
      .replace(
        /meta_nightly_\d{8}T\d{6}Z/g,
        `"$(s3backup list -b ${dir}/bucket/host1 --tsv | cut -f1 | head -1)"`,
      );
    const s3backup = `s3backup() { ${s3backupArgv([]).map((w) => `'${w}'`).join(" ")} "$@"; }\n`;
    // A local repository's folder exists first, as a bucket does.
    for (const h of ["host1", "host2"]) await Deno.mkdir(`${dir}/bucket/${h}`, { recursive: true });
    const out = await new Deno.Command("bash", {
      args: ["-euo", "pipefail", "-c", `${s3backup}export S3BACKUP_PASSWORD\nset -x\n${script}`],
      cwd: dir,
      env: childEnv({
        HOME: dir,
        PATH: "/usr/bin:/bin",
        S3BACKUP_PASSWORD: "usage password",
        S3BACKUP_NEW_PASSWORD: "usage password 2",
        NEW: "usage password 2",
      }),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(300_000),
    }).output();
    const said = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, said);
    for (const t of ["restored", "out"]) {
      assert.equal(await Deno.readTextFile(`${dir}/${t}/etc/nginx/nginx.conf`), "events {}\n", t);
    }
    assert.equal(await Deno.readTextFile(`${dir}/hosts`), "127.0.0.1 localhost\n", "dump");
    assert.match(await Deno.readTextFile(`${dir}/s3backup`), /complete -o default/);
    assert.match(await Deno.readTextFile(`${dir}/man1/s3backup.1`), /^\.TH S3BACKUP 1/m);
    assert.match(said, /restore\.sh: restored \d+ files/, "the kit ran");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
