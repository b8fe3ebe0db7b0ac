/**
 * Where the password comes from, first found wins: --password-file, S3BACKUP_PASSWORD, the ini,
 * a prompt (interactive and not -c). It is never printed, logged or put in argv.
 */
import { UsageError } from "../util/errors.ts";

export interface PasswordSources {
  env?: string;
  passwordFile?: string;
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

/** Reads a line from the terminal with echo off. */
export async function promptHidden(prompt: string): Promise<string> {
  await Deno.stderr.write(te.encode(prompt));
  Deno.stdin.setRaw(true);
  const bytes: number[] = [];
  const buf = new Uint8Array(1);
  try {
    while (true) {
      const n = await Deno.stdin.read(buf);
      if (n === null) break;
      const b = buf[0]!;
      if (b === 0x0d || b === 0x0a) break;
      if (b === 0x03) throw new UsageError("Interrupted at the password prompt");
      if (b === 0x7f || b === 0x08) bytes.pop();
      else bytes.push(b);
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(te.encode("\n"));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/**
 * Resolves the password. `confirm` asks twice at a prompt (a new repository).
 * Throws UsageError when there is none and we may not prompt.
 */
export async function getPassword(src: PasswordSources, confirm: boolean): Promise<Uint8Array> {
  let pw: string | undefined;
  if (src.passwordFile !== undefined) {
    try {
      pw = firstLine(await Deno.readTextFile(src.passwordFile));
    } catch (err) {
      throw new UsageError(
        `Cannot read password file ${src.passwordFile}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (pw === "") {
      throw new UsageError(`Password file ${src.passwordFile} has an empty first line`);
    }
  } else if (src.env !== undefined && src.env !== "") pw = src.env;
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
      "No password: set S3BACKUP_PASSWORD, use --password-file, or [main] password= in s3backup.ini",
    );
  }
  return te.encode(pw);
}
