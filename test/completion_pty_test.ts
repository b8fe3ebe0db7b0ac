/**
 * Shell completion as a user meets it: `s3backup completion <shell>` from the real main, loaded
 * by an interactive bash, zsh and fish on a pseudo-terminal (util-linux `script`), then TAB
 * pressed after a partial command and a partial option. A shell that is not installed is
 * skipped, and said so (CI installs all three).
 */
import assert from "node:assert/strict";
import { s3backup } from "./faults/harness.ts";

const have = (cmd: string, args: string[]) => {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
};
const haveScript = have("script", ["--version"]);

/** How each shell starts with no user configuration, interactive. */
const SHELLS: Record<string, string> = {
  bash: "bash --norc --noprofile -i",
  zsh: "zsh -f -i",
  fish: "fish --no-config -i",
};

// deno-lint-ignore no-control-regex
const ANSI = /\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|\([A-Z0-9])|[\x07\x08\r]/g;

/** Types on a pty-held shell and waits (bounded) for what it draws to match. */
class PtyShell {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #raw = "";
  #reading: Promise<void>;

  constructor(command: string) {
    const child = new Deno.Command("script", {
      args: ["-qfec", command, "/dev/null"],
      env: { TERM: "xterm", HOME: Deno.makeTempDirSync({ prefix: "s3backup-home-" }) },
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#reading = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stdout) this.#raw += dec.decode(chunk, { stream: true });
    })();
  }

  /** What the terminal showed so far, escape sequences and redraw controls taken out. */
  get screen(): string {
    return this.#raw.replace(ANSI, "");
  }

  async type(keys: string, until: RegExp, what: string): Promise<void> {
    const from = this.screen.length;
    await this.#writer.write(new TextEncoder().encode(keys));
    const deadline = Date.now() + 20_000;
    while (!until.test(this.screen.slice(from))) {
      if (Date.now() > deadline) {
        throw new Error(`${what}: not shown in 20 s; the screen: ${JSON.stringify(this.screen)}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async close(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* ended */ }
    await this.#child.status;
    await this.#writer.close().catch(() => {});
    await this.#reading.catch(() => {});
  }
}

for (const [shell, command] of Object.entries(SHELLS)) {
  const ok = haveScript && have(shell, ["-c", "true"]);
  if (!ok) {
    console.warn(`completion_pty_test: ${shell} skipped: no ${haveScript ? shell : "script"}`);
  }
  Deno.test({
    name: `completion ${shell} (pty): TAB completes a command, then an option of that command`,
    ignore: !ok,
    fn: async () => {
      const made = await s3backup(["completion", shell]);
      assert.equal(made.code, 0, made.stderr);
      const file = await Deno.makeTempFile({ suffix: `.${shell}` });
      await Deno.writeTextFile(file, made.stdout);
      const pty = new PtyShell(command);
      try {
        // The marker is printed by printf, so the echo of the typed line cannot match it.
        await pty.type(
          `source ${file}; printf 'loaded-%s\\n' 42\r`,
          /loaded-42/,
          "loading the script",
        );
        await pty.type("s3backup pru\t", /s3backup prune\s/, "the command completed");
        await pty.type("--max-u\t", /--max-unused/, "prune's option completed");
        assert.doesNotMatch(pty.screen, /command not found|no such|error/i);
      } finally {
        await pty.close();
        await Deno.remove(file);
      }
    },
  });
}
