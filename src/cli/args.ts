/**
 * Command line parsing: the original `-f -b -a -c -n -s` usage and subcommands. Pure: argv in,
 * a command out; throws UsageError with one line.
 */
import { parseArgs } from "node:util";
import config from "../../deno.json" with { type: "json" };
import { UsageError } from "../util/errors.ts";

/** deno.json's version (embedded in a compiled binary: JSON imports are part of the module graph). */
export const VERSION: string = config.version;

export const COMMANDS = [
  "init",
  "upgrade",
  "backup",
  "list",
  "kit",
  "restore",
  "verify",
  "check",
  "prune",
  "passwd",
  "ls",
  "find",
  "diff",
  "stats",
  "dump",
  "unlock",
  "completion",
  "man",
  "help",
  "version",
] as const;
export type CommandName = typeof COMMANDS[number];

export interface Command {
  command: CommandName;
  folder?: string;
  bucket?: string;
  cron: boolean;
  name?: string;
  simulate: boolean;
  meta?: string;
  /** restore: --only PATH (repeatable). */
  only?: string[];
  /** restore: replace what is in the way. */
  overwrite?: boolean;
  output?: string;
  config?: string;
  passwordFile?: string;
  /** Runs this (without a shell) and reads the password from its first line. */
  passwordCommand?: string;
  endpointUrl?: string;
  /** PEM certificate authorities to trust for https (also AWS_CA_BUNDLE, [s3] ca_bundle). */
  caBundle?: string;
  /** backup: S3 storage class of new data objects. */
  storageClass?: string;
  region?: string;
  profile?: string;
  /** S3 request timeout per attempt, as given (values.ts parses it). */
  timeout?: string;
  /** Files or objects in flight at once, as given (values.ts parses it). */
  jobs?: string;
  /** backup: write no meta when nothing changed since this name's last one. */
  skipIfUnchanged?: boolean;
  /** backup: gitignore patterns to leave out (repeatable), and files of them. */
  exclude?: string[];
  excludeFile?: string[];
  /** backup: leave out the contents of folders holding a file of this name (repeatable). */
  excludeIfPresent?: string[];
  /** backup: do not descend into other file systems. */
  oneFileSystem?: boolean;
  /** backup: read and hash every file, ignoring the files cache. */
  forceRehash?: boolean;
  /** Where the local cache lives (default: the platform's cache folder). */
  cacheDir?: string;
  /** verify: download and check every object; --read-data-subset N% (verify.ts parses it). */
  readData?: boolean;
  readDataSubset?: string;
  /** prune: the --keep-* values as given (prune.ts parses them). */
  keep?: { last?: string; daily?: string; weekly?: string; monthly?: string; yearly?: string };
  dryRun?: boolean;
  grace?: string;
  /** prune: --max-unused as given. */
  maxUnused?: string;
  /** The words after the command (ls PATH, find PATTERN, diff META1 META2). */
  args?: string[];
  /** help: the command asked about (`s3backup backup --help`). */
  helpFor?: CommandName;
  /** Say more: the config file read, and (backup) each file uploaded. */
  verbose?: boolean;
  /** One JSON object on stdout instead of the text (backup, restore, list, verify, prune). */
  json?: boolean;
  /** list: tab-separated values even on a terminal. */
  tsv?: boolean;
  /** Only errors on the terminal. */
  quiet?: boolean;
  /** Append what is printed, timestamped, to this file. */
  logFile?: string;
  /** backup, prune, passwd: how long to wait for a conflicting lock, as given. */
  lockWait?: string;
  /** restore, verify: archived objects: the restore tier and days, as given; wait for them. */
  restoreTier?: string;
  restoreDays?: string;
  wait?: boolean;
  /** backup: upload rate; restore, verify: download rate (as given: 2M). */
  limitUpload?: string;
  limitDownload?: string;
  /** backup (format 3): the pack size, as given (16M). */
  packSize?: string;
  /** backup: the stream to store instead of a folder: standard input, or a command's output. */
  stdin?: boolean;
  /** backup --stdin-from-command: the command and its arguments (after `--`), run without a shell. */
  stdinCommand?: string[];
  /** backup --stdin, --stdin-from-command: the stream's file name in the backup, as given. */
  stdinFilename?: string;
  /** backup: Object Lock retention (a duration) and its mode, as given. */
  retain?: string;
  retainMode?: string;
  /** Read the bucket as it was at this time (its versions), as given. */
  asOf?: string;
  /** verify: check Object Lock retention of the backups of the last DURATION, as given. */
  checkRetention?: string;
  /** kit: check the bucket's kit against a meta's record instead of writing one. */
  verify?: boolean;
  /** unlock: remove live locks too. */
  force?: boolean;
  /** passwd: the new password's file (else S3BACKUP_NEW_PASSWORD, else a prompt). */
  newPasswordFile?: string;
}

const ACTIONS: Record<string, CommandName> = {
  backup: "backup",
  list: "list",
  restore: "restore",
  kit: "kit",
};

const OPTIONS = {
  folder: { type: "string", short: "f" },
  bucket: { type: "string", short: "b" },
  action: { type: "string", short: "a" },
  cron: { type: "boolean", short: "c", default: false },
  name: { type: "string", short: "n" },
  simulate: { type: "boolean", short: "s", default: false },
  meta: { type: "string", short: "m" },
  only: { type: "string", multiple: true },
  overwrite: { type: "boolean", default: false },
  output: { type: "string", short: "o" },
  "read-data": { type: "boolean", default: false },
  "read-data-subset": { type: "string" },
  "keep-last": { type: "string" },
  "keep-daily": { type: "string" },
  "keep-weekly": { type: "string" },
  "keep-monthly": { type: "string" },
  "keep-yearly": { type: "string" },
  "dry-run": { type: "boolean", default: false },
  grace: { type: "string" },
  "max-unused": { type: "string" },
  "new-password-file": { type: "string" },
  "lock-wait": { type: "string" },
  force: { type: "boolean", default: false },
  "restore-tier": { type: "string" },
  "restore-days": { type: "string" },
  wait: { type: "boolean", default: false },
  "limit-upload": { type: "string" },
  "pack-size": { type: "string" },
  retain: { type: "string" },
  "as-of": { type: "string" },
  verify: { type: "boolean", default: false },
  "check-retention": { type: "string" },
  "retain-mode": { type: "string" },
  "limit-download": { type: "string" },
  config: { type: "string" },
  "password-file": { type: "string" },
  "password-command": { type: "string" },
  "endpoint-url": { type: "string" },
  "ca-bundle": { type: "string" },
  "storage-class": { type: "string" },
  region: { type: "string" },
  profile: { type: "string" },
  timeout: { type: "string" },
  jobs: { type: "string" },
  exclude: { type: "string", multiple: true },
  "exclude-file": { type: "string", multiple: true },
  "exclude-if-present": { type: "string", multiple: true },
  "one-file-system": { type: "boolean", default: false },
  "force-rehash": { type: "boolean", default: false },
  "skip-if-unchanged": { type: "boolean", default: false },
  stdin: { type: "boolean", default: false },
  "stdin-from-command": { type: "boolean", default: false },
  "stdin-filename": { type: "string" },
  "cache-dir": { type: "string" },
  verbose: { type: "boolean", short: "v", default: false },
  quiet: { type: "boolean", short: "q", default: false },
  "log-file": { type: "string" },
  tsv: { type: "boolean", default: false },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
  version: { type: "boolean", short: "V", default: false },
} as const;

/** Every spelling of option `long`: `--folder`, `-f`. */
export function optionSpellings(long: string): string[] {
  const o = OPTIONS[long as keyof typeof OPTIONS];
  if (o === undefined) return [];
  return [`--${long}`, ...("short" in o ? [`-${o.short}`] : [])];
}

/** Options that take a value, by every spelling (`--restore-days`, `-m`). */
const VALUED = new Set(
  Object.entries(OPTIONS).flatMap(([long, o]) =>
    o.type === "string" ? [`--${long}`, ...("short" in o ? [`-${o.short}`] : [])] : []
  ),
);

/**
 * argv with a negative number after an option that takes a value joined to it
 * (`--restore-days -1` -> `--restore-days=-1`), so that the value's own check says what is
 * wrong with it (parseArgs would call it an ambiguous option).
 */
function joinNegatives(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!, next = argv[i + 1];
    if (a === "--") return [...out, ...argv.slice(i)];
    if (VALUED.has(a) && next !== undefined && /^-\d/.test(next)) {
      out.push(a.startsWith("--") ? `${a}=${next}` : `${a}${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: joinNegatives(argv),
      allowPositionals: true,
      strict: true,
      tokens: true,
      options: OPTIONS,
    });
  } catch (err) {
    const msg = (err as Error).message.split("\n")[0]?.replace(/\. To specify.*$/, "") ?? "";
    const c = argv[0] !== undefined && (COMMANDS as readonly string[]).includes(argv[0])
      ? `s3backup ${argv[0]} --help`
      : "s3backup --help";
    const unknown = /^Unknown option '--([^']+)'/.exec(msg)?.[1];
    const near = unknown === undefined ? undefined : closest(unknown, Object.keys(OPTIONS));
    const hint = near === undefined ? "" : `: did you mean --${near}?`;
    throw new UsageError(`${msg.replace(/\.$/, "")}${hint} (see ${c})`, { cause: err });
  }
}

/** The name of `names` within 2 edits of `word` (the nearest), or undefined. */
function closest(word: string, names: string[]): string | undefined {
  let best: string | undefined, bestD = 3;
  for (const n of names) {
    const d = editDistance(word, n);
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best;
}

/** Levenshtein distance (short option names: the plain table is enough). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        prev[j]! + 1,
        row[j - 1]! + 1,
        prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length]!;
}

type Values = ReturnType<typeof parse>["values"];

/** The words a command takes after its name: at least, at most. */
const ARGUMENTS: Partial<Record<CommandName, [number, number]>> = {
  ls: [0, 1],
  dump: [1, 1],
  completion: [1, 1],
  find: [1, 1],
  diff: [2, 2],
};
const ARGUMENT_NAMES: Partial<Record<CommandName, string>> = {
  find: "a PATTERN",
  dump: "a PATH (a file of the backup)",
  completion: "a shell (bash, zsh, fish)",
  diff: "two backups (META1 META2)",
};

/** The command: a positional command word, or `-a` (the original usage), agreeing. */
function commandOf(pos: string[], action: string | undefined): CommandName {
  let command: CommandName | undefined;
  if (pos.length > 0) {
    const c = pos[0]!;
    if (!(COMMANDS as readonly string[]).includes(c)) {
      throw new UsageError(`Unknown command ${JSON.stringify(c)} (see s3backup --help)`);
    }
    command = c === "check" ? "verify" : c as CommandName;
    const [min, max] = ARGUMENTS[command] ?? [0, 0];
    if (pos.length - 1 > max) {
      throw new UsageError(
        `Unexpected argument ${JSON.stringify(pos[max + 1])} (see s3backup ${command} --help)`,
      );
    }
    if (pos.length - 1 < min) {
      throw new UsageError(
        `${command} needs ${ARGUMENT_NAMES[command]} (see s3backup ${command} --help)`,
      );
    }
  }
  if (action !== undefined) {
    const a = ACTIONS[action];
    if (a === undefined) {
      throw new UsageError(
        `Unknown action ${JSON.stringify(action)}: use backup, list or restore`,
      );
    }
    if (command !== undefined && command !== a) {
      throw new UsageError(`Command ${command} and -a ${action} disagree`);
    }
    command = a;
  }
  if (command === undefined) {
    throw new UsageError(
      "No action: use -a backup|list|restore or a command (see s3backup --help)",
    );
  }
  return command;
}

/** The options given, as a Command. */
function commandWith(command: CommandName, v: Values): Command {
  // --dry-run is the long name of -s (prune's own --dry-run is the same thing).
  const simulate = v.simulate || v["dry-run"];
  const cmd: Command = { ...base(command), cron: v.cron, simulate };
  if (v.verbose) cmd.verbose = true;
  if (v.quiet) cmd.quiet = true;
  if (v["log-file"] !== undefined) cmd.logFile = v["log-file"];
  if (v.tsv) cmd.tsv = true;
  if (v.json) cmd.json = true;
  const opt = <K extends keyof Command>(k: K, val: Command[K] | undefined) => {
    if (val !== undefined) cmd[k] = val;
  };
  opt("folder", v.folder);
  opt("bucket", v.bucket);
  opt("name", v.name);
  opt("meta", v.meta);
  if (v.only !== undefined && v.only.length > 0) cmd.only = v.only;
  if (v.overwrite) cmd.overwrite = true;
  opt("output", v.output);
  opt("config", v.config);
  opt("passwordFile", v["password-file"]);
  opt("passwordCommand", v["password-command"]);
  opt("endpointUrl", v["endpoint-url"]);
  opt("caBundle", v["ca-bundle"]);
  opt("storageClass", v["storage-class"]);
  opt("region", v.region);
  opt("profile", v.profile);
  opt("timeout", v.timeout);
  opt("jobs", v.jobs);
  if (v.exclude?.length) cmd.exclude = v.exclude;
  if (v["exclude-file"]?.length) cmd.excludeFile = v["exclude-file"];
  if (v["exclude-if-present"]?.length) cmd.excludeIfPresent = v["exclude-if-present"];
  if (v["one-file-system"]) cmd.oneFileSystem = true;
  if (v["force-rehash"]) cmd.forceRehash = true;
  if (v["skip-if-unchanged"]) cmd.skipIfUnchanged = true;
  if (v.stdin) cmd.stdin = true;
  opt("stdinFilename", v["stdin-filename"]);
  opt("cacheDir", v["cache-dir"]);
  if (v["read-data"]) cmd.readData = true;
  opt("readDataSubset", v["read-data-subset"]);
  const keep = {
    last: v["keep-last"],
    daily: v["keep-daily"],
    weekly: v["keep-weekly"],
    monthly: v["keep-monthly"],
    yearly: v["keep-yearly"],
  };
  if (Object.values(keep).some((x) => x !== undefined)) cmd.keep = keep;
  if (simulate && command === "prune") cmd.dryRun = true;
  opt("grace", v.grace);
  opt("maxUnused", v["max-unused"]);
  opt("newPasswordFile", v["new-password-file"]);
  opt("lockWait", v["lock-wait"]);
  if (v.force) cmd.force = true;
  opt("restoreTier", v["restore-tier"]);
  opt("restoreDays", v["restore-days"]);
  if (v.wait) cmd.wait = true;
  opt("limitUpload", v["limit-upload"]);
  opt("packSize", v["pack-size"]);
  opt("retain", v.retain);
  opt("asOf", v["as-of"]);
  if (v.verify) cmd.verify = true;
  opt("checkRetention", v["check-retention"]);
  opt("retainMode", v["retain-mode"]);
  opt("limitDownload", v["limit-download"]);
  return cmd;
}

/**
 * The commands that work on a repository: they need one, from -b, else S3BACKUP_REPOSITORY,
 * else `[main] bucket` in s3backup.ini (cli/commands.ts resolves it once the ini is read).
 */
export function needsRepository(cmd: Command): boolean {
  if (cmd.command === "kit") return cmd.verify === true;
  return !["help", "version", "completion", "man"].includes(cmd.command);
}

/** The options each command cannot do without (the repository: needsRepository). */
function checkRequired(cmd: Command): void {
  const need = (k: "folder" | "output", flag: string) => {
    if (cmd[k] === undefined || cmd[k] === "") {
      throw new UsageError(`${cmd.command} needs ${flag} (see s3backup ${cmd.command} --help)`);
    }
  };
  const command = cmd.command;
  if (command === "backup") {
    checkStdin(cmd);
    if (cmd.stdin || cmd.stdinCommand) return;
    need("folder", "-f <folder>");
  } else if (command === "restore") {
    need("folder", "-f <target folder>");
    cmd.meta ??= "latest"; // of -n NAME when given
  } else if (command === "ls" || command === "dump") {
    cmd.meta ??= "latest";
  } else if (command === "kit" && !cmd.verify) need("output", "-o <dir>");
}

/** backup's stream options: one source, a command when asked for one, a plain file name. */
function checkStdin(cmd: Command): void {
  const stream = cmd.stdin ? "--stdin" : cmd.stdinCommand ? "--stdin-from-command" : null;
  if (cmd.stdin && cmd.stdinCommand) {
    throw new UsageError("--stdin and --stdin-from-command: give one (see s3backup backup --help)");
  }
  if (stream !== null && cmd.folder !== undefined) {
    throw new UsageError(`${stream} backs up one stream: give it or -f <folder>, not both`);
  }
  if (cmd.stdinCommand?.length === 0) {
    throw new UsageError(
      "--stdin-from-command needs a command after -- (see s3backup backup --help)",
    );
  }
  const name = cmd.stdinFilename;
  if (name === undefined) return;
  if (stream === null) {
    throw new UsageError("--stdin-filename needs --stdin or --stdin-from-command");
  }
  if (name === "" || name === "." || name === ".." || /[\/\0]/.test(name)) {
    throw new UsageError(`--stdin-filename ${JSON.stringify(name)}: give a file name, no /`);
  }
}

/** Options every command takes. */
export const COMMON = [
  "bucket",
  "action",
  "cron",
  "verbose",
  "quiet",
  "log-file",
  "config",
  "password-file",
  "password-command",
  "endpoint-url",
  "ca-bundle",
  "region",
  "profile",
  "timeout",
  "cache-dir",
  "help",
  "version",
];

/** What the commands that read data objects take: archived objects, rate, a point in time. */
const READING = ["restore-tier", "restore-days", "wait", "limit-download", "as-of"];

const VERIFY = [
  "meta",
  "name",
  "read-data",
  "read-data-subset",
  "jobs",
  ...READING,
  "check-retention",
  "json",
];

/**
 * The options each command takes besides COMMON. The original usage gave `-f`, `-n` and `-s` to
 * every action, list too: list still takes them (and ignores them).
 */
export const TAKES: Record<CommandName, string[]> = {
  backup: [
    "folder",
    "name",
    "simulate",
    "dry-run",
    "storage-class",
    "jobs",
    "exclude",
    "exclude-file",
    "exclude-if-present",
    "one-file-system",
    "force-rehash",
    "skip-if-unchanged",
    "stdin",
    "stdin-from-command",
    "stdin-filename",
    "lock-wait",
    "limit-upload",
    "pack-size",
    "retain",
    "retain-mode",
    "json",
  ],
  restore: [
    "folder",
    "meta",
    "name",
    "only",
    "overwrite",
    "simulate",
    "dry-run",
    "jobs",
    ...READING,
    "json",
  ],
  list: ["folder", "name", "simulate", "tsv", "as-of", "json"],
  kit: ["output", "verify", "meta", "name", "as-of", "json"],
  verify: VERIFY,
  check: VERIFY,
  prune: [
    "json",
    "keep-last",
    "keep-daily",
    "keep-weekly",
    "keep-monthly",
    "keep-yearly",
    "grace",
    "max-unused",
    "lock-wait",
    "dry-run",
    "simulate",
  ],
  passwd: ["new-password-file", "lock-wait"],
  unlock: ["force"],
  init: [],
  upgrade: [],
  ls: ["meta", "name", "as-of", "json"],
  dump: ["meta", "name", "as-of"],
  completion: [],
  man: [],
  find: ["as-of", "json"],
  diff: ["as-of", "json"],
  stats: ["as-of", "json"],
  help: [],
  version: [],
};

type Token = NonNullable<ReturnType<typeof parse>["tokens"]>[number];

/** Refuses an option the command does not take (it would be ignored, or mistaken). */
function checkTaken(command: CommandName, tokens: Token[]): void {
  for (const t of tokens) {
    if (t.kind !== "option" || COMMON.includes(t.name) || TAKES[command].includes(t.name)) {
      continue;
    }
    throw new UsageError(
      `${command} does not take ${t.rawName} (see s3backup ${command} --help)`,
    );
  }
}

/**
 * Refuses an option that takes one value given twice (`-f a -f b` backed up only b): which one
 * was meant cannot be known. Options that take several (`--exclude`, `--only`) may repeat.
 */
function checkOnce(tokens: Token[]): void {
  const seen = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== "option") continue;
    const o = OPTIONS[t.name as keyof typeof OPTIONS];
    if (o === undefined || o.type !== "string" || "multiple" in o) continue;
    if (seen.has(t.name)) {
      throw new UsageError(`${t.rawName} is given twice: give it once (see s3backup --help)`);
    }
    seen.add(t.name);
  }
}

/**
 * argv split at the `--` after --stdin-from-command: s3backup's own arguments, and the command's
 * (null without --stdin-from-command; empty when nothing follows).
 */
function splitCommand(argv: string[]): [string[], string[] | null] {
  const flag = argv.indexOf("--stdin-from-command");
  if (flag < 0) return [argv, null];
  const dd = argv.indexOf("--", flag);
  return dd < 0 ? [argv, []] : [argv.slice(0, dd), argv.slice(dd + 1)];
}

/** Parses argv into a Command. Pure; throws UsageError with one line. */
export function parseCommandLine(argv: string[]): Command {
  if (argv.length === 0) return base("help"); // `s3backup` alone: the help, as restic does
  const [own, commandArgv] = splitCommand(argv);
  const { values: v, positionals, tokens } = parse(own);
  if (v.help) {
    const c = positionals[0] ?? (v.action !== undefined ? ACTIONS[v.action] : undefined);
    const about = (COMMANDS as readonly string[]).includes(c ?? "") ? c as CommandName : undefined;
    return about === undefined ? base("help") : { ...base("help"), helpFor: about };
  }
  if (v.version) return base("version");
  const command = commandOf(positionals, v.action);
  checkTaken(command, tokens ?? []);
  checkOnce(tokens ?? []);
  const cmd = commandWith(command, v);
  if (positionals.length > 1) cmd.args = positionals.slice(1);
  if (commandArgv !== null) cmd.stdinCommand = commandArgv;
  checkRequired(cmd);
  return cmd;
}

function base(command: CommandName): Command {
  return { command, cron: false, simulate: false };
}
