/**
 * The terminal side under a real pseudo-terminal (util-linux `script`): the password prompt
 * (what a user types, byte for byte, after the prompt shows) and the progress line. Skipped,
 * and said so, where there is no `script`.
 */
import assert from "node:assert/strict";
import { PASSWORD, s3backup, s3backupArgv } from "./faults/harness.ts";
import { childEnv } from "./s3_env.ts";

const haveScript =
  new Deno.Command("script", { args: ["--version"], stdout: "null", stderr: "null" })
    .outputSync().success;
if (!haveScript) console.warn("prompt_test: skipped: no util-linux `script` to make a pty");

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * Runs s3backup `args` on a pty (`cols` wide when given); types `keys` once the prompt shows
 * (each of a list at each prompt, after `typeAfterMs`). Its exit code and output.
 */
async function onPty(
  args: string[],
  keys: string | string[],
  extraEnv: Record<string, string> = {},
  opts: { cols?: number; typeAfterMs?: number } = {},
): Promise<{ code: number; out: string }> {
  const env = childEnv(extraEnv);
  if (extraEnv.S3BACKUP_PASSWORD === undefined) delete env.S3BACKUP_PASSWORD;
  const argv = s3backupArgv(args).map(quote).join(" ");
  const command = opts.cols === undefined ? argv : `stty cols ${opts.cols} rows 24; exec ${argv}`;
  const queue = typeof keys === "string" ? (keys === "" ? [] : [keys]) : [...keys];
  const child = new Deno.Command("script", {
    args: ["-qfec", command, "/dev/null"],
    env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  let out = "";
  const dec = new TextDecoder();
  let prompts = 0;
  const reading = (async () => {
    for await (const chunk of child.stdout) {
      out += dec.decode(chunk, { stream: true });
      const shown = out.split("password: ").length - 1;
      if (shown > prompts && queue.length > 0) {
        prompts = shown;
        const k = queue.shift()!;
        // The prompt is drawn, so raw mode is on (readline sets it before it writes the prompt):
        // typed at once. With typeAfterMs, later (a timer could draw meanwhile).
        if (opts.typeAfterMs) await new Promise((r) => setTimeout(r, opts.typeAfterMs));
        await writer.write(new TextEncoder().encode(k));
      }
    }
  })();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const status = await child.status;
  clearTimeout(timer);
  await reading;
  await writer.close().catch(() => {});
  await child.stderr.cancel();
  return { code: status.code, out };
}

Deno.test({
  name: "prompt (pty): a character typed and erased, Ctrl-C, Ctrl-D",
  ignore: !haveScript,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-prompt-" });
    try {
      await Deno.mkdir(`${dir}/src`);
      await Deno.mkdir(`${dir}/repo`);
      await Deno.writeTextFile(`${dir}/src/a`, "a");
      const b = await s3backup(["backup", "-f", `${dir}/src`, "-b", `${dir}/repo`, "-c"]);
      assert.equal(b.code, 0, b.stderr);
      const verify = ["verify", "-b", `${dir}/repo`];
      // Two characters of two and three bytes, each erased by one backspace.
      const typed = await onPty(verify, `${PASSWORD}é€\x7f\x7f\r`);
      assert.equal(typed.code, 0, typed.out);
      assert.ok(!typed.out.includes(PASSWORD), "nothing typed is echoed");
      const wrong = await onPty(verify, `${PASSWORD}x\r`);
      assert.equal(wrong.code, 4, wrong.out);
      const interrupted = await onPty(verify, "abc\x03");
      assert.equal(interrupted.code, 130, interrupted.out);
      assert.match(interrupted.out, /Interrupted at the password prompt/);
      const eof = await onPty(verify, "\x04");
      assert.equal(eof.code, 2, eof.out);
      assert.match(eof.out, /No password given at the prompt/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "progress (pty): the phase from the first second; none under -c; -q prints nothing",
  ignore: !haveScript,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-progress-" });
    try {
      await Deno.mkdir(`${dir}/src`);
      await Deno.mkdir(`${dir}/repo`);
      for (let i = 0; i < 50; i++) await Deno.writeTextFile(`${dir}/src/f${i}`, `file ${i}`);
      await new Promise((r) => setTimeout(r, 3_100)); // past the racy window: the cache vouches
      const args = ["backup", "-f", `${dir}/src`, "-b", `${dir}/repo`];
      const pw = { S3BACKUP_PASSWORD: PASSWORD };
      const shown = await onPty(args, "", pw);
      assert.equal(shown.code, 0, shown.out);
      assert.match(
        shown.out,
        // deno-lint-ignore no-control-regex
        /\r\x1b\[K(listing the repository|scanning|reading|writing the meta): /,
      );
      assert.match(shown.out, /elapsed/);
      assert.match(shown.out, /backup meta_src_\d{8}T\d{6}Z: 50 files/);
      // Unchanged: the progress counts what the files cache vouches for, and claims no reads.
      const again = await onPty(args, "", pw);
      assert.equal(again.code, 0, again.out);
      // (Whether the cache vouches for all 50 depends on the racy rule's clock: not asserted.)
      assert.match(again.out, /B done/);
      assert.doesNotMatch(again.out, /B read/, "no reads claimed");
      const cron = await onPty([...args, "-c"], "", pw);
      assert.equal(cron.code, 0, cron.out);
      assert.ok(!cron.out.includes("\x1b[K"), "no animation under -c");
      const quiet = await onPty([...args, "-q"], "", pw);
      assert.equal(quiet.code, 0, quiet.out);
      assert.equal(quiet.out, "", "-q: nothing on success");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

for (const cols of [80, 40]) {
  Deno.test({
    name: `prompt and progress (pty, ${cols} columns): the prompts stay on screen, the clock ` +
      "starts after them, no drawn line is wider than the terminal",
    ignore: !haveScript,
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "s3backup-prompt-progress-" });
      try {
        await Deno.mkdir(`${dir}/src`);
        await Deno.mkdir(`${dir}/repo`);
        for (let i = 0; i < 200; i++) await Deno.writeTextFile(`${dir}/src/f${i}`, `file ${i}`);
        const args = ["backup", "-f", `${dir}/src`, "-b", `${dir}/repo`];
        const typed = `${PASSWORD}\r`;
        // A new repository: two prompts, each answered 1.5 s later (a redraw timer would fire).
        const r = await onPty(args, [typed, typed], {}, { cols, typeAfterMs: 1500 });
        assert.equal(r.code, 0, r.out);
        const first = r.out.indexOf("New repository password: ");
        const second = r.out.indexOf("Repeat password: ");
        assert.ok(first >= 0 && second > first, r.out);
        const esc = "\x1b[K";
        assert.ok(!r.out.slice(0, second).includes(esc), `nothing drawn over a prompt: ${r.out}`);
        const drawn = r.out.split("\r" + esc).slice(1).map((l) => l.split(/\r|\n/)[0]!)
          .filter((l) => !l.startsWith("backup meta_")); // the summary, after the line is cleared
        assert.ok(drawn.length > 0, "the progress line is drawn after the prompts");
        for (const line of drawn) {
          assert.ok([...line].length < cols, `wider than ${cols} columns: ${JSON.stringify(line)}`);
        }
        assert.doesNotMatch(r.out, /0:0[2-9] elapsed/, "the typing (3 s) is not timed");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "prompt (pty): a new repository asks twice; two different answers create nothing, exit 2",
  ignore: !haveScript,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-prompt-twice-" });
    try {
      await Deno.mkdir(`${dir}/src`);
      await Deno.mkdir(`${dir}/repo`);
      await Deno.writeTextFile(`${dir}/src/a`, "a");
      const args = ["backup", "-f", `${dir}/src`, "-b", `${dir}/repo`];
      const r = await onPty(args, [`${PASSWORD}\r`, `${PASSWORD}x\r`]);
      assert.equal(r.code, 2, r.out);
      assert.match(r.out, /New repository password: [\s\S]*Repeat password: /);
      assert.match(r.out, /s3backup: The passwords do not match/);
      assert.deepEqual([...Deno.readDirSync(`${dir}/repo`)], [], "no repository made");
      const ok = await onPty(args, [`${PASSWORD}\r`, `${PASSWORD}\r`]);
      assert.equal(ok.code, 0, ok.out);
      const b = await s3backup(["list", "-b", `${dir}/repo`]); // S3BACKUP_PASSWORD: the same
      assert.equal(b.code, 0, b.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
