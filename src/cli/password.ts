/**
 * Where the password comes from, first found wins: --password-file, --password-command,
 * S3BACKUP_PASSWORD_FILE, S3BACKUP_PASSWORD_COMMAND, S3BACKUP_PASSWORD, the ini, a prompt
 * (interactive and not -c). It is never printed, logged or put in argv.
 */
import process from "node:process";
import * as readline from "node:readline";
import { Writable } from "node:stream";
import { InterruptedError, S3BackupError, UsageError } from "../util/errors.ts";
import { splitCommand } from "./values.ts";
import { messageOf } from "../util/bytes.ts";

export interface PasswordSources {
  /** --password-file, else S3BACKUP_PASSWORD_FILE. */
  passwordFile?: string;
  /** --password-command, else S3BACKUP_PASSWORD_COMMAND. */
  passwordCommand?: string;
  env?: string;
  ini?: string;
  /** May we prompt on the terminal? */
  interactive: boolean;
}

const te = new TextEncoder();

/** The first line of a password file, without its line ending (what openssl -pass file: reads). */
export function firstLine(text: string): string {
  const nl = text.indexOf("\n");
  const line = nl < 0 ? text : text.slice(0, nl);
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

/**
 * Reads a line from the terminal with echo off, by node:readline (line editing by character:
 * backspace removes a whole UTF-8 character). Ctrl-C is InterruptedError (exit 130); Ctrl-D
 * on an empty line, or the end of input, is a UsageError.
 */
export function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let muted = false;
    const output = new Writable({
      write(chunk, _encoding, done) {
        if (!muted) process.stderr.write(chunk);
        done();
      },
    });
    const rl = readline.createInterface({ input: process.stdin, output, terminal: true });
    let settled = false;
    const end = (fn: () => void) => {
      if (settled) return;
      settled = true;
      muted = false;
      rl.close();
      process.stderr.write("\n");
      fn();
    };
    rl.on(
      "SIGINT",
      () => end(() => reject(new InterruptedError("Interrupted at the password prompt"))),
    );
    rl.on("close", () => end(() => reject(new UsageError("No password given at the prompt"))));
    rl.question(prompt, (answer) => end(() => resolve(answer)));
    muted = true; // the prompt is out: what follows is the typing, echoed
  });
}

/**
 * Resolves the password. `confirm` asks twice at a prompt (a new repository).
 * Throws UsageError when there is none and we may not prompt.
 */
export async function getPassword(src: PasswordSources, confirm: boolean): Promise<Uint8Array> {
  let pw: string | undefined;
  if (src.passwordFile !== undefined) pw = await fromFile(src.passwordFile);
  else if (src.passwordCommand !== undefined) pw = await fromCommand(src.passwordCommand);
  else if (src.env !== undefined && src.env !== "") pw = src.env;
  else if (src.ini !== undefined) pw = src.ini;
  else if (src.interactive && Deno.stdin.isTerminal()) {
    pw = await promptHidden(confirm ? "New repository password: " : "Repository password: ");
    if (pw === "") throw new UsageError("Empty password");
    if (confirm && (await promptHidden("Repeat password: ")) !== pw) {
      throw new UsageError("The passwords do not match");
    }
  }
  if (pw === undefined) {
    throw new UsageError(
      "No password: set S3BACKUP_PASSWORD, use --password-file or --password-command, or " +
        "[main] password= in s3backup.ini",
    );
  }
  return te.encode(pw);
}

async function fromFile(path: string): Promise<string> {
  let pw: string;
  try {
    pw = firstLine(await Deno.readTextFile(path));
  } catch (err) {
    throw new UsageError(`Cannot read password file ${path}: ${messageOf(err)}`, {
      cause: err,
    });
  }
  if (pw === "") throw new UsageError(`Password file ${path} has an empty first line`);
  return pw;
}

/**
 * The first line a password command prints. It runs without a shell (words split as a shell
 * would, quotes honoured; write `sh -c '...'` for one), with the terminal as its stdin and
 * stderr, so that it may ask for a passphrase itself.
 */
async function fromCommand(command: string): Promise<string> {
  const argv = splitCommand(command);
  if (argv.length === 0) throw new UsageError("The password command is empty");
  const name = argv[0]!;
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(name, {
      args: argv.slice(1),
      stdin: "inherit",
      stdout: "piped",
      stderr: "inherit",
    }).output();
  } catch (err) {
    throw new UsageError(`Cannot run the password command ${name}: ${messageOf(err)}`, {
      cause: err,
    });
  }
  if (!out.success) {
    throw new S3BackupError(
      `The password command ${name} failed (exit ${out.signal ?? out.code}); no password`,
    );
  }
  const pw = firstLine(new TextDecoder().decode(out.stdout));
  if (pw === "") throw new UsageError(`The password command ${name} printed no password`);
  return pw;
}
