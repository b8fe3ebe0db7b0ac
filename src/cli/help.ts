/**
 * The help texts: `s3backup --help` lists the commands; `s3backup <command> --help` gives that
 * command's usage, the options it takes (args.ts TAKES, the same list the parser enforces) and
 * an example.
 */
import { COMMON, TAKES, VERSION } from "./args.ts";
import type { CommandName } from "./args.ts";

/** Each option's lines, by its long name. */
const OPTION_HELP: Record<string, string> = {
  folder:
    "  -f, --folder DIR        the folder (the original usage; -a list takes it and ignores it)",
  bucket:
    "  -b, --bucket WHERE      bucket | s3://bucket/prefix | ./dir | /abs/dir | file:///abs/dir\n" +
    "                          (else S3BACKUP_REPOSITORY, else [main] bucket in s3backup.ini)",
  cron: "  -c, --cron              no prompts, no progress, one summary line",
  verbose: "  -v, --verbose           say which config file was read; backup: each file uploaded",
  quiet:
    "  -q, --quiet             only errors: no summary, warnings or progress (see the exit code)",
  "log-file": "      --log-file FILE     append what is printed, timestamped, to FILE (for cron)",
  json: "      --json              one JSON object on stdout instead of the text (schemas: README)",
  tsv: "      --tsv               tab-separated, no header (the default when piped)",
  name: "  -n, --name NAME         the backups of this name (-m latest: its newest)",
  simulate: "  -s, --dry-run           report what would be done, write nothing (also --simulate)",
  meta:
    "  -m, --meta META         a meta name, latest (of -n NAME if given; the default), or a name",
  only: "      --only PATH         only PATH and what is under it (repeatable)",
  overwrite: "      --overwrite         replace files that differ (else they are left, exit 3)",
  output: "  -o, --output DIR        where to write the restore kit",
  "read-data": "      --read-data         also download, decrypt and MD5-check each object",
  "read-data-subset": "      --read-data-subset N%  the same for a random N% of the objects",
  "keep-last": "      --keep-last N       keep the N newest backups of each name",
  "keep-daily":
    "      --keep-daily N      the newest of each of the N latest days (UTC) with backups",
  "keep-weekly": "      --keep-weekly N     ... of the N latest ISO weeks",
  "keep-monthly": "      --keep-monthly N    ... of the N latest months",
  "keep-yearly": "      --keep-yearly N     ... of the N latest years",
  "max-unused":
    "      --max-unused L      repack packs while unused bytes pass L: N% of used, a size, unlimited (5%)",
  grace: "      --grace DURATION    keep unused objects younger than this (default 1h; 0, 30m, 2d)",
  "new-password-file":
    "      --new-password-file F  the new password (else S3BACKUP_NEW_PASSWORD, or a prompt)",
  config: "      --config FILE       config file (default: s3backup.ini here or in the parent)",
  "password-file": "      --password-file F   read the password from the first line of F",
  "password-command":
    "      --password-command CMD  run CMD (no shell) and read the password from its first line",
  "endpoint-url":
    "      --endpoint-url URL  S3 endpoint (also AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, [s3] endpoint)",
  "ca-bundle":
    "      --ca-bundle FILE    PEM CAs to trust for https (also AWS_CA_BUNDLE, [s3] ca_bundle)",
  "storage-class":
    "      --storage-class SC  S3 storage class of data objects (also [s3] storage_class)",
  exclude:
    "      --exclude PATTERN   leave out what matches (gitignore rules: **, !, /x, dir/; repeatable)",
  "exclude-file":
    "      --exclude-file F    the patterns in F, one per line (# comments; repeatable)",
  "exclude-if-present":
    "      --exclude-if-present NAME  leave out the contents of folders holding NAME (CACHEDIR.TAG)",
  "one-file-system":
    "      --one-file-system   do not descend into other file systems (mount points)",
  "force-rehash":
    "      --force-rehash      read and hash every file, as if the files cache were empty",
  "skip-if-unchanged":
    "      --skip-if-unchanged write no meta when nothing changed since this name's last backup",
  stdin: "      --stdin             back up standard input as one file (instead of -f)",
  "stdin-from-command":
    "      --stdin-from-command -- CMD ARG...  back up CMD's output as one file; no shell; a\n" +
    "                          failing CMD (exit status, signal) fails the backup, no meta",
  "stdin-filename":
    "      --stdin-filename NAME  the stream's file name (default: stdin, or CMD's name + .out)",
  "lock-wait":
    "      --lock-wait DURATION  wait this long for a running prune or passwd (default 5m; 0: fail)",
  force: "      --force             also remove the locks of running writers (says whose)",
  "restore-tier":
    "      --restore-tier T    archived objects (GLACIER, DEEP_ARCHIVE): Bulk, Standard (default), Expedited",
  "restore-days": "      --restore-days N    keep their readable copies N days (default 3)",
  wait:
    "      --wait              wait (polling) for archived objects' copies; else exit 7, run again",
  "limit-upload":
    "      --limit-upload RATE   upload at most RATE bytes/s in all (500K, 2M; [s3] limit_upload)",
  "pack-size":
    "      --pack-size SIZE    format 3: fill packs of small files to SIZE (512K to 128M; default 16M)",
  "limit-download":
    "      --limit-download RATE download at most RATE bytes/s in all (500K, 2M; [s3] limit_download)",
  retain:
    "      --retain DURATION   S3 Object Lock: protect what the backup names for DURATION (30d)",
  "retain-mode":
    "      --retain-mode M     governance (default; whoever may BypassGovernanceRetention can\n" +
    "                          delete: README) or compliance ([backup] retain_mode)",
  "as-of":
    "      --as-of TIME        read the bucket as it was then (versions; 2026-11-30T14:00Z, 3d ago)",
  verify: "      --verify            check the bucket's kit against the SHA-256s a backup recorded",
  "check-retention":
    "      --check-retention D  the backups of the last D: is all they need locked for D after them?",
  "cache-dir": "      --cache-dir DIR     the local cache (default: the platform's cache folder)",
  region: "      --region REGION     S3 region (also AWS_REGION, [s3] region)",
  profile: "      --profile NAME      AWS profile (also AWS_PROFILE, [s3] profile)",
  timeout: "      --timeout DURATION  S3: give up an attempt after this long (default 2m)",
  jobs: "      --jobs N            files or objects in flight (1-256; default 32 on S3, 4 locally)",
  help: "  -h, --help              this help",
};

interface CommandHelp {
  usage: string;
  what: string;
  example: string;
}

const COMMAND_HELP: Record<Exclude<CommandName, "help" | "version" | "check">, CommandHelp> = {
  backup: {
    usage: "s3backup backup -f <folder> -b <bucket> [-n <name>] [-c] [-s]\n" +
      "       s3backup backup -b <bucket> -n <name> --stdin-from-command -- <command> [args]...",
    what: "Backs up a folder: new contents encrypted and uploaded, then one meta file.",
    example: "s3backup backup -f /srv/data -b s3://my-bucket/host1 -n nightly -c",
  },
  restore: {
    usage: "s3backup restore -b <bucket> -f <target> [-m <meta|latest|name>] [--only PATH]...",
    what: "Restores a backup into a folder; files already right are left as they are.",
    example: "s3backup restore -b s3://my-bucket/host1 -m latest -f /srv/restored",
  },
  list: {
    usage: "s3backup list -b <bucket> [--tsv]",
    what: "Lists the backups: meta, name, time, host, folder, files, dirs, links, size.",
    example: "s3backup list -b s3://my-bucket/host1",
  },
  kit: {
    usage: "s3backup kit -o <dir> [-b <bucket>] | kit --verify -b <bucket> [-m META]",
    what: "Writes the restore kit (bash, AWS CLI, openssl), or checks the one in the bucket.",
    example: "s3backup kit -o ./kit -b s3://my-bucket/host1",
  },
  verify: {
    usage:
      "s3backup verify -b <bucket> [-m <meta|latest|name>] [--read-data | --read-data-subset N%]",
    what: "Checks that every object the backups name exists with its size (alias: check).",
    example: "s3backup verify -b s3://my-bucket/host1 --read-data-subset 10%",
  },
  prune: {
    usage: "s3backup prune -b <bucket> --keep-... N [--grace D] [--max-unused L] [--dry-run]",
    what:
      "Removes the backups no --keep-* rule keeps, then the objects no backup names; repacks packs.",
    example: "s3backup prune -b s3://my-bucket/host1 --keep-daily 7 --keep-weekly 5 --dry-run",
  },
  completion: {
    usage: "s3backup completion bash|zsh|fish",
    what: "Prints a shell completion script, made from the tables --help uses.",
    example: "s3backup completion bash > /etc/bash_completion.d/s3backup",
  },
  man: {
    usage: "s3backup man > s3backup.1",
    what: "Prints the manual page (roff), made from the help texts.",
    example: "s3backup man > /usr/local/share/man/man1/s3backup.1",
  },
  dump: {
    usage: "s3backup dump -b <bucket> [-m <meta|latest|name>] PATH",
    what: "Writes a file of a backup to stdout, or a folder as a tar stream; MD5-checked.",
    example: "s3backup dump -b s3://my-bucket/host1 etc/nginx/nginx.conf > nginx.conf",
  },
  ls: {
    usage: "s3backup ls -b <bucket> [-m <meta|latest|name>] [PATH]",
    what: "Lists a backup's entries (at or under PATH): type, mode, size, mtime, path.",
    example: "s3backup ls -b s3://my-bucket/host1 -m latest etc/nginx",
  },
  find: {
    usage: "s3backup find -b <bucket> PATTERN",
    what: "Which backups hold a matching path, newest first (* ? ** globs; no / matches names).",
    example: "s3backup find -b s3://my-bucket/host1 'nginx.conf'",
  },
  diff: {
    usage: "s3backup diff -b <bucket> META1 META2",
    what: "What changed from one backup to another: + added, - removed, M changed (and how).",
    example: "s3backup diff -b s3://my-bucket/host1 meta_nightly_20261130T020000Z latest",
  },
  stats: {
    usage: "s3backup stats -b <bucket>",
    what: "Backups, files, distinct contents, bytes referenced, distinct and stored: the dedup.",
    example: "s3backup stats -b s3://my-bucket/host1",
  },
  init: {
    usage: "s3backup init -b <bucket>",
    what: "Creates the repository (asks the password twice); the first backup does it too.",
    example: "s3backup init -b s3://my-bucket/host1",
  },
  upgrade: {
    usage: "s3backup upgrade -b <bucket>",
    what: "Makes a format 2 repository format 3 (packs, compression): rewrites s3backup.conf only.",
    example: "s3backup upgrade -b s3://my-bucket/host1",
  },
  unlock: {
    usage: "s3backup unlock -b <bucket> [--force]",
    what: "Removes stale locks (and those of dead processes here); --force: live ones too.",
    example: "s3backup unlock -b s3://my-bucket/host1",
  },
  passwd: {
    usage: "s3backup passwd -b <bucket> [--new-password-file F]",
    what: "Changes the repository's password (every backup, binary and kit).",
    example: "s3backup passwd -b s3://my-bucket/host1",
  },
};

const FOOTER =
  `Password: --password-file, S3BACKUP_PASSWORD, [main] password= in s3backup.ini, or a prompt.
Exit codes: 0 ok, 1 error, 2 usage, 3 partial (verify: damage found; prune: a backup was
running, no data removed, or a pack unreadable), 4 wrong password, 5 bucket not found, 6 locked (a prune or passwd
is running; the message names it), 7 archived objects requested (run again later),
130 interrupted (SIGINT), 141 standard output closed,
143 terminated (SIGTERM).
`;

/** An option's lines where a command gives it its own meaning. */
const OPTION_HELP_FOR: Partial<Record<CommandName, Record<string, string>>> = {
  backup: {
    folder: "  -f, --folder DIR        the folder to back up (never written to)",
    name: "  -n, --name NAME         the backup's name (default: the folder's name)",
  },
  restore: {
    folder: "  -f, --folder DIR        the target folder (created if needed; see --overwrite)",
  },
};

/** `s3backup --help`: the commands. */
export function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMAND_HELP).map((c) => c.length)) + 2;
  const row = (c: string, what: string) => `  ${c.padEnd(width)}${what}`;
  const rows = Object.entries(COMMAND_HELP).map(([c, h]) => row(c, h.what));
  return `s3backup ${VERSION} - encrypted, deduplicated backups of a folder to S3

Usage:
  s3backup <command> [options]      (s3backup <command> --help: its options and an example)
  s3backup -f <folder> -b <bucket> -a backup|list|restore [-c] [-n <name>] [-s]   (the original)

Commands:
${rows.join("\n")}
${row("check", "the same as verify")}

Common options:
${COMMON.map((o) => OPTION_HELP[o]).filter((l) => l !== undefined).join("\n")}
  -V, --version           print the version

${FOOTER}`;
}

/** `s3backup <command> --help`. */
export function commandHelp(command: CommandName): string {
  if (command === "help" || command === "version") return mainHelp();
  const h = COMMAND_HELP[command === "check" ? "verify" : command];
  const own = TAKES[command].filter((o) => o !== "dry-run")
    .map((o) => OPTION_HELP_FOR[command]?.[o] ?? OPTION_HELP[o]);
  const common = COMMON.map((o) => OPTION_HELP[o]);
  const lines = (xs: (string | undefined)[]) => xs.filter((l) => l !== undefined).join("\n");
  return `Usage: ${h.usage}

${h.what}

Options:
${lines(own)}

Common options:
${lines(common)}

Example:
  ${h.example}

${FOOTER}`;
}

/** Text escaped for roff: backslashes, and a leading dot or quote. */
function roff(text: string): string {
  return text.replaceAll("\\", "\\e").replaceAll("-", "\\-").replace(/^([.'])/gm, "\\&$1");
}

/** `s3backup man`: the manual page (roff), from the same texts as `--help`. */
export function manPage(): string {
  const out = [
    `.TH S3BACKUP 1 "" "s3backup ${VERSION}" "User Commands"`,
    ".SH NAME",
    "s3backup \\- encrypted, deduplicated backups of a folder to S3 or a directory",
    ".SH SYNOPSIS",
    ".B s3backup",
    "\\fIcommand\\fR [\\fIoptions\\fR]",
    ".br",
    ".B s3backup",
    roff("-f <folder> -b <bucket> -a backup|list|restore [-c] [-n <name>] [-s]"),
    ".SH COMMANDS",
  ];
  for (const [c, h] of Object.entries(COMMAND_HELP)) {
    out.push(".TP", `.B ${c}`, roff(h.what), ".br", roff(`Usage: ${h.usage}`), ".br");
    out.push(roff(`Example: ${h.example}`));
  }
  out.push(".SH OPTIONS");
  for (const line of Object.values(OPTION_HELP)) {
    const [first, ...rest] = line.split("\n");
    const m = /^ +(\S.*?)  +(\S.*)$/.exec(first!);
    out.push(".TP", roff(m ? m[1]! : first!.trim()));
    out.push(roff([m ? m[2]! : "", ...rest.map((r) => r.trim())].join(" ").trim()));
  }
  out.push(".SH EXIT STATUS", roff(FOOTER.slice(FOOTER.indexOf("Exit codes:")).trim()));
  out.push(".SH SEE ALSO", "restic(1), the restore kit: restore\\-kit/README.md in the bucket");
  return out.join("\n") + "\n";
}
