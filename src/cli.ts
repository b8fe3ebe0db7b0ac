/**
 * Command line parsing: the original `-f -b -a -c -n -s` usage and subcommands. Pure: argv in,
 * a command out; throws UsageError with one line.
 */
import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";

export const VERSION = "0.2.0";

export const COMMANDS = ["backup", "list", "kit", "restore", "help", "version"] as const;
export type CommandName = typeof COMMANDS[number];

export interface Command {
  command: CommandName;
  folder?: string;
  bucket?: string;
  cron: boolean;
  name?: string;
  simulate: boolean;
  meta?: string;
  output?: string;
  config?: string;
  passwordFile?: string;
  endpointUrl?: string;
  region?: string;
  profile?: string;
}

export const USAGE = `s3backup ${VERSION} - encrypted, deduplicated backups of a folder to S3

Usage:
  s3backup -f <folder> -b <bucket> -a backup|list|restore [-c] [-n <name>] [-s]
  s3backup backup -f <folder> -b <bucket> [-n <name>] [-c] [-s]
  s3backup list -b <bucket>
  s3backup kit -o <dir> [-b <bucket>]

Bucket (-b): bucket | s3://bucket/prefix | ./dir | /abs/dir | file:///abs/dir

Options:
  -f, --folder DIR        folder to back up (never written to)
  -b, --bucket WHERE      repository: S3 bucket (with optional prefix) or local directory
  -a, --action ACTION     backup | list | restore (the original usage)
  -c, --cron              no prompts, no progress, one summary line
  -n, --name NAME         backup name, part of the meta file name (default: folder name)
  -s, --simulate          read and hash, report what would be uploaded, write nothing
  -o, --output DIR        kit: where to write the restore kit
      --config FILE       config file (default: s3backup.ini here or in the parent folder)
      --password-file F   read the password from the first line of F
      --endpoint-url URL  S3 endpoint (also AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, [s3] endpoint)
      --region REGION     S3 region (also AWS_REGION, [s3] region)
      --profile NAME      AWS profile (also AWS_PROFILE, [s3] profile)
  -h, --help              this help
  -V, --version           print the version

Password: S3BACKUP_PASSWORD, --password-file, [main] password= in s3backup.ini, or a prompt.
Exit codes: 0 ok, 1 error, 2 usage, 3 partial, 4 wrong password, 5 bucket not found.
`;

const ACTIONS: Record<string, CommandName> = {
  backup: "backup",
  list: "list",
  restore: "restore",
  kit: "kit",
};

export function parseCommandLine(argv: string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        folder: { type: "string", short: "f" },
        bucket: { type: "string", short: "b" },
        action: { type: "string", short: "a" },
        cron: { type: "boolean", short: "c", default: false },
        name: { type: "string", short: "n" },
        simulate: { type: "boolean", short: "s", default: false },
        meta: { type: "string", short: "m" },
        output: { type: "string", short: "o" },
        config: { type: "string" },
        "password-file": { type: "string" },
        "endpoint-url": { type: "string" },
        region: { type: "string" },
        profile: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
        version: { type: "boolean", short: "V", default: false },
      },
    });
  } catch (err) {
    const msg = (err as Error).message.split("\n")[0]?.replace(/\. To specify.*$/, "") ?? "";
    throw new UsageError(`${msg} (see s3backup --help)`, { cause: err });
  }
  const v = parsed.values;
  const pos = parsed.positionals;
  if (v.help) return base("help");
  if (v.version) return base("version");

  let command: CommandName | undefined;
  if (pos.length > 0) {
    const c = pos[0]!;
    if (!(COMMANDS as readonly string[]).includes(c)) {
      throw new UsageError(`Unknown command ${JSON.stringify(c)} (see s3backup --help)`);
    }
    command = c as CommandName;
    if (pos.length > 1) {
      throw new UsageError(`Unexpected argument ${JSON.stringify(pos[1])} (see s3backup --help)`);
    }
  }
  if (v.action !== undefined) {
    const a = ACTIONS[v.action];
    if (a === undefined) {
      throw new UsageError(
        `Unknown action ${JSON.stringify(v.action)}: use backup, list or restore`,
      );
    }
    if (command !== undefined && command !== a) {
      throw new UsageError(`Command ${command} and -a ${v.action} disagree`);
    }
    command = a;
  }
  if (command === undefined) {
    throw new UsageError(
      "No action: use -a backup|list|restore or a command (see s3backup --help)",
    );
  }
  const cmd: Command = { ...base(command), cron: v.cron, simulate: v.simulate };
  const opt = <K extends keyof Command>(k: K, val: Command[K] | undefined) => {
    if (val !== undefined) cmd[k] = val;
  };
  opt("folder", v.folder);
  opt("bucket", v.bucket);
  opt("name", v.name);
  opt("meta", v.meta);
  opt("output", v.output);
  opt("config", v.config);
  opt("passwordFile", v["password-file"]);
  opt("endpointUrl", v["endpoint-url"]);
  opt("region", v.region);
  opt("profile", v.profile);

  const need = (k: "folder" | "bucket" | "output", flag: string) => {
    if (cmd[k] === undefined || cmd[k] === "") {
      throw new UsageError(`${command} needs ${flag} (see s3backup --help)`);
    }
  };
  if (command === "backup") {
    need("folder", "-f <folder>");
    need("bucket", "-b <bucket>");
  } else if (command === "list") need("bucket", "-b <bucket>");
  else if (command === "kit") need("output", "-o <dir>");
  return cmd;
}

function base(command: CommandName): Command {
  return { command, cron: false, simulate: false };
}
