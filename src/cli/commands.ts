/**
 * The commands: each wires the config, password, store and engine for one command line, and
 * hands the engine's events and summary to the UI. Nothing here exits (main.ts does).
 */
import { dirname, join, resolve } from "node:path";
import { FORMAT_VERSION } from "../format/descriptor.ts";
import { checkBackupName, defaultBackupName, KEY_NAME, KIT_PREFIX } from "../format/layout.ts";
import { backup } from "../ops/backup/backup.ts";
import { type ExcludeRules, patternsOfFile } from "../ops/backup/excludes.ts";
import {
  commandFilename,
  commandName,
  spoolCommand,
  spoolStdin,
  type StreamSpool,
} from "../ops/backup/stream_spool.ts";
import { rememberedRepository } from "../ops/backup/files_cache.ts";
import { changePassword } from "../ops/change_password.ts";
import { listBackups, listLegacyBackups } from "../ops/list.ts";
import { checkPolicy, DEFAULT_GRACE_MS, prune, type PrunePolicy } from "../ops/prune/prune.ts";
import { checkTarget, restore } from "../ops/restore/restore.ts";
import { verify, type VerifyOptions } from "../ops/verify.ts";
import { isLegacyStore } from "../repo/legacy.ts";
import { openBackup } from "../repo/open_backup.ts";
import {
  CorruptKeyError,
  createRepository,
  loadMeta,
  loadOptional,
  openForReading,
  openFromMeta,
  openRepository,
  type Repository,
  repositoryExists,
  RepositoryExistsError,
  startOpening,
  upgradeDescriptor,
} from "../repo/repository.ts";
import { messageOf } from "../util/bytes.ts";
import { openStore, parseStoreUrl, type S3Options } from "../store/open_store.ts";
import { resolveS3Settings, type S3Settings } from "../store/s3_settings.ts";
import type { Store } from "../store/store.ts";
import {
  errorLine,
  ExitCode,
  OutputClosedError,
  S3BackupError,
  UsageError,
} from "../util/errors.ts";
import { type Command, needsRepository, parseCommandLine, TAKES, VERSION } from "./args.ts";
import { type Limits, Rate, throttled } from "../store/throttle.ts";
import { commandHelp, mainHelp, manPage } from "./help.ts";
import { completionScript } from "./completion.ts";
import { LogFile } from "./log_file.ts";
import { diffMetas, dump, findInBackups, lsEntries, repositoryStats } from "../ops/browse.ts";
import { verifyKit } from "../ops/kit_check.ts";
import { META_PREFIX } from "../format/layout.ts";
import { listRepository } from "../repo/listing.ts";
import { selectMeta } from "../repo/select.ts";
import { describeLock, liveLocks, type LockOptions, unlock } from "../repo/lock.ts";
import { type Config, loadConfig } from "./config.ts";
import { type KitConfig, kitFiles, writeKit } from "./kit.ts";
import { getPassword, type PasswordSources } from "./password.ts";
import { Ui } from "./ui.ts";
import { kernelRootOf } from "../util/kernel_fs.ts";
import {
  checkStorageClass,
  parseDuration,
  parseJobs,
  parseKeep,
  parseMaxUnused,
  parsePackSize,
  parseRate,
  parseRestoreDays,
  parseRestoreTier,
  parseSubset,
  parseTime,
} from "./values.ts";
import { DEFAULT_RESTORE_REQUEST, type ThawOptions } from "../repo/thaw.ts";
import {
  checkObjectLock,
  retaining,
  retentionAt,
  type RetentionPolicy,
} from "../repo/retention.ts";

interface Context {
  cmd: Command;
  config: Config;
  ui: Ui;
  signal: AbortSignal;
}

function passwordSources(ctx: Context, interactive: boolean): PasswordSources {
  const src: PasswordSources = { interactive: interactive && !ctx.cmd.cron };
  const env = (name: string) => Deno.env.get(name) || undefined;
  const { passwordFile, passwordCommand } = ctx.cmd;
  if (passwordFile !== undefined && passwordCommand !== undefined) {
    throw new UsageError("Use --password-file or --password-command, not both");
  }
  const file = passwordFile ??
    (passwordCommand === undefined ? env("S3BACKUP_PASSWORD_FILE") : undefined);
  const command = passwordCommand ??
    (file === undefined ? env("S3BACKUP_PASSWORD_COMMAND") : undefined);
  if (file !== undefined) src.passwordFile = file;
  else if (command !== undefined) src.passwordCommand = command;
  const pw = Deno.env.get("S3BACKUP_PASSWORD");
  if (pw !== undefined) src.env = pw;
  if (ctx.config.password !== undefined) src.ini = ctx.config.password;
  return src;
}

/**
 * Sets `cmd.bucket` for a command that works on a repository: -b, else S3BACKUP_REPOSITORY,
 * else `[main] bucket`; where it came from (null: not needed, or -b with a kit -o).
 * UsageError when there is none.
 */
function resolveRepository(cmd: Command, config: Config): string | null {
  const env = Deno.env.get("S3BACKUP_REPOSITORY") || undefined;
  const [bucket, from] = cmd.bucket
    ? [cmd.bucket, "-b"]
    : env
    ? [env, "S3BACKUP_REPOSITORY"]
    : config.bucket
    ? [config.bucket, `${config.path} [main] bucket`]
    : [undefined, null];
  if (!needsRepository(cmd)) return null;
  if (bucket === undefined) {
    throw new UsageError(
      `${cmd.command} needs -b <bucket> (or S3BACKUP_REPOSITORY, or [main] bucket in ` +
        `s3backup.ini; see s3backup ${cmd.command} --help)`,
    );
  }
  cmd.bucket = bucket;
  return from;
}

/** The S3 settings in force: flags, then the AWS environment, then the ini. */
function s3SettingsOf(ctx: Context): S3Settings {
  const flags: S3Settings = {};
  if (ctx.cmd.endpointUrl) flags.endpoint = ctx.cmd.endpointUrl;
  if (ctx.cmd.region) flags.region = ctx.cmd.region;
  if (ctx.cmd.profile) flags.profile = ctx.cmd.profile;
  if (ctx.cmd.caBundle) flags.caBundle = ctx.cmd.caBundle;
  const ini: S3Settings = {};
  if (ctx.config.caBundle) ini.caBundle = ctx.config.caBundle;
  if (ctx.config.endpoint) ini.endpoint = ctx.config.endpoint;
  if (ctx.config.region) ini.region = ctx.config.region;
  if (ctx.config.profile) ini.profile = ctx.config.profile;
  return resolveS3Settings({ flags, ini });
}

function storeOf(ctx: Context): Store {
  return throttled(baseStoreOf(ctx), limitsOf(ctx));
}

/**
 * The store to read from: with --as-of, the bucket as it was then (its versions), read-only;
 * else storeOf's.
 */
async function readStoreOf(ctx: Context): Promise<Store> {
  if (ctx.cmd.asOf === undefined) return storeOf(ctx);
  const time = parseTime(ctx.cmd.asOf, "--as-of");
  const base = baseStoreOf(ctx);
  if (base.asOf === undefined) {
    throw new UsageError(
      `--as-of needs a versioned S3 bucket; ${base.location} is a local directory`,
    );
  }
  if (!(await base.versioning?.())) {
    throw new UsageError(`--as-of: the bucket of ${base.location} does not keep versions`);
  }
  return throttled(await base.asOf(time), limitsOf(ctx));
}

/** The store the command line names, without the bandwidth limits. */
function baseStoreOf(ctx: Context): Store {
  const opts: S3Options = {
    ...s3SettingsOf(ctx),
    signal: ctx.signal,
    onNotice: (m) => ctx.ui.warn(m),
  };
  if (ctx.config.checksums) opts.checksums = ctx.config.checksums;
  const timeout = ctx.cmd.timeout ?? ctx.config.timeout;
  if (timeout !== undefined) {
    const ms = parseDuration(timeout);
    if (ms < 1000) throw new UsageError(`--timeout ${timeout}: use at least 1s`);
    opts.timeoutMs = ms;
  }
  const where = parseStoreUrl(ctx.cmd.bucket!);
  if (where.kind === "s3" && where.prefix === "" && isDirectory(where.bucket)) {
    ctx.ui.warn(
      `-b ${where.bucket} is the S3 bucket ${where.bucket}; for the folder here write ` +
        `-b ./${where.bucket}`,
    );
  }
  return openStore(where, opts);
}

/**
 * The bandwidth limits of this command: --limit-upload (backup) and --limit-download
 * (restore, verify), else the ini's, for the commands that take them.
 */
function limitsOf(ctx: Context): Limits {
  const { cmd, config } = ctx;
  const limits: Limits = {};
  const takes = (o: string) => TAKES[cmd.command].includes(o);
  const up = takes("limit-upload") ? cmd.limitUpload ?? config.limitUpload : undefined;
  const down = takes("limit-download") ? cmd.limitDownload ?? config.limitDownload : undefined;
  if (up !== undefined) limits.upload = new Rate(parseRate(up, "--limit-upload"));
  if (down !== undefined) limits.download = new Rate(parseRate(down, "--limit-download"));
  return limits;
}

function isDirectory(p: string): boolean {
  try {
    return Deno.statSync(p).isDirectory;
  } catch {
    return false;
  }
}

function kitConfigOf(ctx: Context, store?: Store): KitConfig {
  const c: KitConfig = {};
  if (store) c.store = store.location;
  const s = s3SettingsOf(ctx);
  if (s.endpoint) c.endpointUrl = s.endpoint;
  if (s.region) c.region = s.region;
  return c;
}

/**
 * The repository a backup writes to: opened, or created when the store holds none (null when
 * simulating into an empty store). A create that loses a race opens the winner's repository.
 */
/** Opens the repository whose key is `key` (read by the caller), or creates one. */
async function openOrCreate(
  ctx: Context,
  store: Store,
  simulate: boolean,
  key: Uint8Array | null,
) {
  if (key !== null) {
    return await openRepository(store, await getPassword(passwordSources(ctx, true), false), key);
  }
  if (simulate) return null;
  refuseWiped(ctx, store);
  const password = await getPassword(passwordSources(ctx, true), true);
  try {
    const repo = await createRepository(store, password);
    sayCreated(ctx, store, repo);
    return repo;
  } catch (err) {
    if (!(err instanceof RepositoryExistsError)) throw err;
    return await openRepository(store, password);
  }
}

/**
 * A backup finds no repository where this machine's cache remembers one (a wiped bucket):
 * making a new one would hide the loss, so it stops; `init` is the deliberate way.
 */
function refuseWiped(ctx: Context, store: Store): void {
  const dir = cacheFolder(ctx.cmd, "files");
  const id = dir === undefined ? null : rememberedRepository(dir, repositoryWhere(ctx, store));
  if (id === null) return;
  throw new S3BackupError(
    `The repository ${store.location} (id ${id}) is gone: this machine backed up to it, and ` +
      `its key is missing now. Nothing was written; \`s3backup init -b ${store.location}\` ` +
      "creates a new, empty one",
  );
}

/**
 * init: creates the repository (key and descriptor) of an empty bucket or folder, the
 * password asked twice; the first backup does the same where there is none.
 */
async function runInit(ctx: Context): Promise<number> {
  const { ui } = ctx;
  const store = storeOf(ctx);
  if (await loadOptional(store, KEY_NAME) !== null || await isLegacyStore(store)) {
    throw new S3BackupError(`${store.location} holds a repository already: nothing was written`);
  }
  const password = await getPassword(passwordSources(ctx, true), true);
  const repo = await createRepository(store, password);
  ui.out(`created repository ${repo.descriptor.id} at ${store.location}`);
  sayCreated(ctx, store, repo, false);
  return ExitCode.ok;
}

/**
 * What a user must hear once, when a repository is made (by `init`, or by the first backup,
 * which also says so): keep the password; where the kit is; which s3backup.ini was read.
 */
function sayCreated(ctx: Context, store: Store, repo: Repository, byBackup = true): void {
  const ini = ctx.config.path === null ? "" : `; settings read from ${ctx.config.path}`;
  ctx.ui.warn(
    (byBackup ? `created repository ${repo.descriptor.id} at ${store.location}: ` : "") +
      "keep the password safe: without it no backup can be restored, by s3backup or the kit; " +
      `each backup keeps the restore kit in ${store.location}/${KIT_PREFIX}${ini}`,
  );
}

/**
 * upgrade: a format 2 repository becomes format 3 (FORMAT.md §8): the password is checked (the
 * repository opens), then s3backup.conf is rewritten, nothing else.
 */
async function runUpgrade(ctx: Context): Promise<number> {
  const store = storeOf(ctx);
  const repo = await openRepository(store, await getPassword(passwordSources(ctx, true), false));
  const was = await upgradeDescriptor(store);
  if (was === FORMAT_VERSION) {
    ctx.ui.out(`${store.location} is format ${FORMAT_VERSION} already: nothing to do`);
    return ExitCode.ok;
  }
  ctx.ui.out(
    `upgraded repository ${repo.descriptor.id} at ${store.location} from format ${was} to ` +
      `${FORMAT_VERSION}: its backups stay as they are; new ones write packs (the first stores ` +
      "each content once more, compressed; prune removes the old objects once no kept backup " +
      "names them). s3backup and restore kits older than format 3 refuse it now",
  );
  return ExitCode.ok;
}

/** Files or objects in flight: --jobs, else tens where each request waits a round trip. */
function jobsOf(cmd: Command, store: Store): number {
  return cmd.jobs !== undefined ? parseJobs(cmd.jobs) : store.kind === "s3" ? 32 : 4;
}

/** The platform's folder for caches, s3backup's under it; undefined without a home. */
function cacheDir(env: (k: string) => string | undefined = envGet): string | undefined {
  const home = env("HOME") || env("USERPROFILE");
  if (Deno.build.os === "windows") {
    const base = env("LOCALAPPDATA");
    return base ? join(base, "s3backup") : undefined;
  }
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return join(xdg, "s3backup");
  if (!home) return undefined;
  return Deno.build.os === "darwin"
    ? join(home, "Library", "Caches", "s3backup")
    : join(home, ".cache", "s3backup");
}

function envGet(k: string): string | undefined {
  return Deno.env.get(k) || undefined;
}

/**
 * A folder under --cache-dir or the platform's cache folder: `files` (the files caches,
 * `files/<repository id>/<source>`), `metas`, `stdin` (streams being spooled).
 */
function cacheFolder(cmd: Command, which: "files" | "metas" | "stdin"): string | undefined {
  const dir = cmd.cacheDir ?? cacheDir();
  return dir === undefined ? undefined : join(resolve(dir), which);
}

function filesCacheOf(
  ctx: Context,
  store: Store,
): { filesCache?: { dir: string; forceRehash: boolean; where: string } } {
  const dir = cacheFolder(ctx.cmd, "files");
  if (dir === undefined) return {};
  const where = repositoryWhere(ctx, store);
  return { filesCache: { dir, forceRehash: ctx.cmd.forceRehash ?? false, where } };
}

/** A repository's place as the files cache remembers it: an S3 location with its endpoint. */
function repositoryWhere(ctx: Context, store: Store): string {
  if (store.kind !== "s3") return store.location;
  return `${store.location} at ${s3SettingsOf(ctx).endpoint ?? "AWS"}`;
}

async function runBackup(ctx: Context): Promise<number> {
  const { cmd } = ctx;
  if (!cmd.stdin && cmd.stdinCommand === undefined) {
    const source = resolve(cmd.folder!);
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(source);
    } catch (err) {
      throw new UsageError(`Cannot back up ${source}: ${messageOf(err)}`, { cause: err });
    }
    if (!info.isDirectory) throw new UsageError(`Cannot back up ${source}: not a directory`);
    const kernel = kernelRootOf(await Deno.realPath(source));
    if (kernel !== null) {
      throw new UsageError(
        `Cannot back up ${source}: ${kernel} is a kernel file system (its files are the ` +
          "kernel's state, not data: s3backup reads none)",
      );
    }
    const name = checkBackupName(cmd.name ?? defaultBackupName(source));
    return await backupFolder(ctx, { source, name, excludes: excludesOf(ctx), cached: true });
  }
  if (cmd.skipIfUnchanged) {
    throw new UsageError("--skip-if-unchanged needs a folder's files cache: not with a stream");
  }
  const filename = cmd.stdinFilename ??
    (cmd.stdinCommand ? commandFilename(cmd.stdinCommand) : "stdin");
  const parent = cacheFolder(cmd, "stdin") ?? null;
  return await backupFolder(ctx, {
    source: "",
    name: checkBackupName(cmd.name ?? defaultBackupName(filename)),
    label: cmd.stdinCommand ? `<command ${commandName(cmd.stdinCommand)}>` : "<stdin>",
    cached: false,
    spool: () =>
      cmd.stdinCommand
        ? spoolCommand(parent, filename, cmd.stdinCommand, ctx.signal)
        : spoolStdin(parent, filename, ctx.signal),
  });
}

interface BackupSource {
  source: string;
  name: string;
  /** What the meta names as the source, when not `source` (a stream). */
  label?: string;
  excludes?: ExcludeRules;
  /** Whether a files cache is kept (not for a stream's folder: it is new each time). */
  cached: boolean;
  /**
   * A stream to spool as the source, once the repository has opened (a wrong bucket or password
   * must not cost a 10 GiB dump); removed after the backup.
   */
  spool?: () => Promise<StreamSpool>;
}

async function backupFolder(ctx: Context, src: BackupSource): Promise<number> {
  const { cmd, ui } = ctx;
  const { source, name } = src;
  const storageClass = cmd.storageClass === undefined
    ? ctx.config.storageClass
    : checkStorageClass(cmd.storageClass, "--storage-class");
  const retention = retentionOf(ctx);
  let store = storeOf(ctx);
  if (retention !== undefined && !cmd.simulate) {
    await checkObjectLock(store);
    store = retaining(store, retentionAt(retention, new Date()));
  }
  // The key's GET is also the look at the bucket (a missing one: RepositoryNotFoundError).
  const key = await loadOptional(store, KEY_NAME);
  if (key === null && await isLegacyStore(store)) {
    throw new UsageError(
      `${store.location} holds backups of the original s3backup.py (format 1): ` +
        "back up to a new bucket or prefix (this one stays readable with list and restore)",
    );
  }
  // An existing repository opens (the key's derivation) while backup() takes the lock and
  // lists the store; a stream is spooled only once it has opened (see BackupSource.spool).
  const repo = key !== null && !cmd.simulate && src.spool === undefined
    ? startOpening(store, await getPassword(passwordSources(ctx, true), false), key)
    : await openOrCreate(ctx, store, cmd.simulate, key);
  const spool = await src.spool?.();
  try {
    const summary = await backup(store, repo, {
      source: spool?.dir ?? source,
      name,
      host: Deno.hostname(),
      simulate: cmd.simulate,
      kit: kitFiles(kitConfigOf(ctx, store)),
      concurrency: jobsOf(cmd, store),
      signal: ctx.signal,
      ...(storageClass ? { storageClass } : {}),
      ...(cmd.packSize !== undefined ? { packSize: parsePackSize(cmd.packSize) } : {}),
      ...(cmd.skipIfUnchanged ? { skipIfUnchanged: true } : {}),
      ...(src.excludes ? { excludes: src.excludes } : {}),
      ...(src.label ? { sourceLabel: src.label } : {}),
      ...(retention ? { retention } : {}),
      lock: lockOptionsOf(ctx),
      ...(src.cached ? filesCacheOf(ctx, store) : {}),
    }, ui.onBackupEvent);
    ui.backupSummary(summary);
    return summary.skipped > 0 ? ExitCode.partial : ExitCode.ok;
  } finally {
    await spool?.remove();
  }
}

/** --retain and --retain-mode (else the ini's), or undefined. */
function retentionOf(ctx: Context): RetentionPolicy | undefined {
  const retain = ctx.cmd.retain ?? ctx.config.retain;
  const mode = (ctx.cmd.retainMode ?? ctx.config.retainMode ?? "governance").toLowerCase();
  if (mode !== "governance" && mode !== "compliance") {
    throw new UsageError(`--retain-mode ${JSON.stringify(mode)}: use governance or compliance`);
  }
  if (retain === undefined) {
    if (ctx.cmd.retainMode !== undefined) throw new UsageError("--retain-mode needs --retain");
    return undefined;
  }
  const retainMs = parseDuration(retain);
  if (retainMs < 86_400_000) throw new UsageError(`--retain ${retain}: use at least 1d`);
  return { mode: mode === "governance" ? "GOVERNANCE" : "COMPLIANCE", retainMs };
}

/**
 * The exclude rules of a backup: the ini's `[backup]` lists, then the command line's (files of
 * patterns read now: a relative name in the ini is relative to the ini's folder).
 */
function excludesOf(ctx: Context): ExcludeRules {
  const { cmd, config } = ctx;
  const iniDir = config.path === null ? "." : dirname(config.path);
  const files = [
    ...config.backup.excludeFile.map((f) => resolve(iniDir, f)),
    ...(cmd.excludeFile ?? []),
  ];
  const patterns = [...config.backup.exclude];
  for (const f of files) {
    let text: string;
    try {
      text = Deno.readTextFileSync(f);
    } catch (err) {
      throw new UsageError(`Cannot read exclude file ${f}: ${messageOf(err)}`, { cause: err });
    }
    patterns.push(...patternsOfFile(text));
  }
  patterns.push(...cmd.exclude ?? []);
  const ifPresent = [...config.backup.excludeIfPresent, ...cmd.excludeIfPresent ?? []];
  for (const n of ifPresent) {
    if (n === "" || n.includes("/")) {
      throw new UsageError(`--exclude-if-present ${JSON.stringify(n)}: give a file name`);
    }
  }
  if (patterns.some((p) => p.trim() === "")) throw new UsageError("--exclude: empty pattern");
  return { patterns, ifPresent, oneFileSystem: cmd.oneFileSystem ?? config.oneFileSystem ?? false };
}

async function runList(ctx: Context): Promise<number> {
  const store = await readStoreOf(ctx);
  await store.checkExists();
  const src = passwordSources(ctx, false);
  const havePassword = Boolean(src.env || src.passwordFile || src.passwordCommand || src.ini);
  const table = { tsv: ctx.cmd.tsv === true || !Deno.stdout.isTerminal() };
  if (!havePassword) {
    ctx.ui.warn("no password given: counts, host and folder of each backup are left out");
  }
  if (await isLegacyStore(store)) {
    const pw = havePassword ? await getPassword(src, false) : undefined;
    ctx.ui.backupList(await listLegacyBackups(store, pw), table);
    return ExitCode.ok;
  }
  let repo;
  if (havePassword && await repositoryExists(store)) {
    const password = await getPassword(src, false);
    try {
      repo = await openRepository(store, password);
    } catch (err) {
      // Metas open with the password alone: a damaged key does not hide the backups.
      if (!(err instanceof CorruptKeyError)) throw err;
      repo = (await openFromMeta(store, password, err.metaKey)).repo;
      ctx.ui.warn(`${err.message}; listing with the copy of the key in ${err.metaKey}`);
    }
  }
  const list = await listBackups(store, repo, cacheFolder(ctx.cmd, "metas"));
  // Nothing at all on stdout is easy to misread: a mistyped prefix, a date before the first.
  if (list.length === 0) ctx.ui.warn(`no backups in ${store.location}${asOfText(ctx)}`);
  ctx.ui.backupList(list, table);
  return ExitCode.ok;
}

/** ` as of TIME` when --as-of was given, for messages. */
function asOfText(ctx: Context): string {
  return ctx.cmd.asOf === undefined ? "" : ` as of ${ctx.cmd.asOf}`;
}

async function runRestore(ctx: Context): Promise<number> {
  const { cmd, ui } = ctx;
  const target = resolve(cmd.folder!);
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.stat(target);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new UsageError(`Cannot restore into ${target}: ${messageOf(err)}`, { cause: err });
    }
  }
  if (info !== null && !info.isDirectory) {
    throw new UsageError(`Cannot restore into ${target}: not a directory`);
  }
  const store = await readStoreOf(ctx);
  await store.checkExists();
  // Password, repository and meta are checked before anything is written.
  const password = await getPassword(passwordSources(ctx, true), false);
  // The locks (a backup of this host may be reading the target) are listed beside the opening.
  const locks = liveLocks(store);
  locks.catch(() => {}); // met in checkTarget
  const plan = await openBackup(store, password, cmd.meta!, cmd.name);
  await checkTarget(store, plan.meta, target, Deno.hostname(), cmd.overwrite ?? false, locks);
  for (const n of plan.notes) ui.warn(n);
  const summary = await restore(plan.repo, plan.meta, {
    target,
    metaKey: plan.metaKey,
    only: cmd.only ?? [],
    simulate: cmd.simulate,
    overwrite: cmd.overwrite ?? false,
    problems: plan.problems,
    concurrency: jobsOf(cmd, store),
    signal: ctx.signal,
    thaw: thawOf(cmd),
  }, ui.onRestoreEvent);
  ui.restoreSummary(summary);
  if (summary.archived > 0) {
    ui.archivedNotice(summary.archived, summary.thawRequested);
    return ExitCode.archived;
  }
  return summary.failed > 0 ? ExitCode.partial : ExitCode.ok;
}

/** How restore and verify thaw archived objects: --restore-tier, --restore-days, --wait. */
function thawOf(cmd: Command): Omit<ThawOptions, "signal"> {
  return {
    request: {
      tier: cmd.restoreTier === undefined
        ? DEFAULT_RESTORE_REQUEST.tier
        : parseRestoreTier(cmd.restoreTier),
      days: cmd.restoreDays === undefined
        ? DEFAULT_RESTORE_REQUEST.days
        : parseRestoreDays(cmd.restoreDays),
    },
    wait: cmd.wait ?? false,
  };
}

/** verify (check): exit 0 when every backup is whole, 3 when damage was found. */
async function runVerify(ctx: Context): Promise<number> {
  const { cmd, ui } = ctx;
  if (cmd.readData && cmd.readDataSubset !== undefined) {
    throw new UsageError("Use --read-data or --read-data-subset, not both");
  }
  const subset = cmd.readDataSubset === undefined ? undefined : parseSubset(cmd.readDataSubset);
  const store = await readStoreOf(ctx);
  await store.checkExists();
  const password = await getPassword(passwordSources(ctx, true), false);
  const { repo, damage } = await openForReading(store, password);
  const opts: VerifyOptions = { readData: cmd.readData === true || subset !== undefined };
  if (damage !== undefined) opts.keyDamage = damage;
  if (subset !== undefined) opts.subset = subset;
  if (cmd.meta !== undefined) opts.meta = cmd.meta;
  if (cmd.name !== undefined) opts.name = cmd.name;
  opts.signal = ctx.signal;
  opts.concurrency = jobsOf(cmd, store);
  opts.thaw = thawOf(cmd);
  if (cmd.checkRetention !== undefined) opts.retentionMs = parseDuration(cmd.checkRetention);
  const summary = await verify(repo, opts, ui.onVerifyEvent);
  ui.verifySummary(summary);
  if (summary.problems > 0) return ExitCode.partial;
  if (summary.archived > 0) {
    ui.archivedNotice(summary.archived, null);
    return ExitCode.archived;
  }
  return ExitCode.ok;
}

/**
 * prune: exit 3 when backups were running and no data object could be removed, or a pack
 * could not be read to repack it (verify names the files).
 */
async function runPrune(ctx: Context): Promise<number> {
  const { cmd, ui } = ctx;
  const policy: PrunePolicy = {};
  for (const rule of ["last", "daily", "weekly", "monthly", "yearly"] as const) {
    const v = cmd.keep?.[rule];
    if (v !== undefined) policy[rule] = parseKeep(`--keep-${rule}`, v);
  }
  checkPolicy(policy);
  const graceMs = cmd.grace === undefined ? DEFAULT_GRACE_MS : parseDuration(cmd.grace);
  const maxUnused = cmd.maxUnused === undefined ? undefined : parseMaxUnused(cmd.maxUnused);
  const dryRun = cmd.dryRun === true || cmd.simulate;
  const store = storeOf(ctx);
  await store.checkExists();
  const password = await getPassword(passwordSources(ctx, true), false);
  const repo = await openRepository(store, password);
  const summary = await prune(repo, {
    policy,
    dryRun,
    graceMs,
    maxUnused,
    host: Deno.hostname(),
    signal: ctx.signal,
    lock: lockOptionsOf(ctx),
  }, ui.pruneEvents(dryRun));
  ui.pruneSummary(summary);
  return summary.dataSkipped || summary.packsDamaged.length > 0 ? ExitCode.partial : ExitCode.ok;
}

/** How long a writer waits for a conflicting lock by default (`--lock-wait`). */
const DEFAULT_LOCK_WAIT = "5m";

/**
 * A writer's lock rules: wait `--lock-wait` for conflicting locks (saying so once), a warning
 * for each lock of a dead process of this host that it took over, stop waiting on a signal.
 */
function lockOptionsOf(ctx: Context): LockOptions {
  const waitMs = parseDuration(ctx.cmd.lockWait ?? DEFAULT_LOCK_WAIT);
  return {
    waitMs,
    signal: ctx.signal,
    onWait: (blocking) =>
      ctx.ui.warn(
        `waiting up to ${ctx.cmd.lockWait ?? DEFAULT_LOCK_WAIT} for ` +
          `${blocking.map((l) => describeLock(l)).join("; ")} to finish`,
      ),
    onTakeover: (l) =>
      ctx.ui.warn(
        `took over the lock of a ${l.kind} that is no longer running (pid ${l.pid} on this ` +
          `host, started ${l.started.toISOString()}): ${l.key} removed`,
      ),
  };
}

/**
 * unlock: removes stale locks and those of dead processes of this host; with --force the
 * live ones too, each named first. Locks are plaintext: no password is needed.
 */
async function runUnlock(ctx: Context): Promise<number> {
  const { cmd, ui } = ctx;
  const store = storeOf(ctx);
  await store.checkExists();
  const now = new Date();
  const r = await unlock(store, Deno.hostname(), { force: cmd.force ?? false, now: () => now });
  for (const { lock, why } of r.removed) {
    if (why === "forced") {
      ui.warn(`removing the lock of a running ${lock.kind}: ${describeLock(lock, now)}`);
    }
    const what = why === "stale" ? "stale" : why === "dead" ? "dead process's" : "live";
    ui.out(`removed ${what} lock ${lock.key}: ${describeLock(lock, now)}`);
  }
  for (const lock of r.kept) {
    ui.warn(
      `kept the lock of a running ${lock.kind}: ${describeLock(lock, now)} (--force removes it)`,
    );
  }
  if (r.removed.length === 0 && r.kept.length === 0) ui.out(`no locks on ${store.location}`);
  return ExitCode.ok;
}

/** passwd: the new password from S3BACKUP_NEW_PASSWORD, --new-password-file or a prompt. */
async function runPasswd(ctx: Context): Promise<number> {
  const { cmd, ui } = ctx;
  const store = storeOf(ctx);
  await store.checkExists();
  const password = await getPassword(passwordSources(ctx, true), false);
  const src: PasswordSources = { interactive: !cmd.cron && Deno.stdin.isTerminal() };
  const env = Deno.env.get("S3BACKUP_NEW_PASSWORD");
  if (env !== undefined) src.env = env;
  if (cmd.newPasswordFile !== undefined) src.passwordFile = cmd.newPasswordFile;
  if (src.env === undefined && src.passwordFile === undefined && !src.interactive) {
    throw new UsageError(
      "No new password: set S3BACKUP_NEW_PASSWORD or use --new-password-file",
    );
  }
  const newPassword = await getPassword(src, true);
  const summary = await changePassword(store, password, newPassword, {
    host: Deno.hostname(),
    signal: ctx.signal,
    lock: lockOptionsOf(ctx),
  });
  ui.passwdSummary(summary);
  if (ctx.config.password !== undefined) {
    ui.warn("s3backup.ini still holds the old password: update [main] password=");
  }
  return ExitCode.ok;
}

/** ls, dump, find, diff, stats: the repository opened once, then what each asks for. */
async function runBrowse(ctx: Context): Promise<number> {
  const { cmd, ui } = ctx;
  const store = await readStoreOf(ctx);
  await store.checkExists();
  const password = await getPassword(passwordSources(ctx, true), false);
  const { repo } = await openForReading(store, password);
  const metas = (await listRepository(store, META_PREFIX)).metas;
  const open = async (spec: string, name?: string) => {
    const m = selectMeta(metas, spec, name, store.location);
    return { key: m.key, meta: await loadMeta(repo, m.key) };
  };
  if (cmd.command === "ls") {
    const { key, meta } = await open(cmd.meta!, cmd.name);
    ui.lsEntries(key, lsEntries(meta, cmd.args?.[0]), meta.header.excludes);
  } else if (cmd.command === "dump") {
    const { meta } = await open(cmd.meta!, cmd.name);
    await dump(repo, meta, cmd.args![0]!, Deno.stdout.writable);
  } else if (cmd.command === "find") {
    const found = await findInBackups(repo, cmd.args![0]!);
    if (found.length === 0) {
      ui.warn(`no path matches ${cmd.args![0]} in the backups${asOfText(ctx)}`);
    }
    ui.found(found);
  } else if (cmd.command === "diff") {
    const [a, b] = [await open(cmd.args![0]!), await open(cmd.args![1]!)];
    ui.changes(a.key, b.key, diffMetas(a.meta, b.meta));
  } else ui.stats(await repositoryStats(repo));
  return ExitCode.ok;
}

async function runKit(ctx: Context): Promise<number> {
  if (ctx.cmd.verify) return await runKitVerify(ctx);
  const store = ctx.cmd.bucket ? storeOf(ctx) : undefined;
  const written = await writeKit(ctx.cmd.output!, kitConfigOf(ctx, store));
  for (const p of written) ctx.ui.out(p);
  return ExitCode.ok;
}

/** kit --verify: the bucket's kit against a meta's record of it; exit 3 when it differs. */
async function runKitVerify(ctx: Context): Promise<number> {
  const store = await readStoreOf(ctx);
  await store.checkExists();
  const password = await getPassword(passwordSources(ctx, true), false);
  const { repo } = await openForReading(store, password);
  const check = await verifyKit(repo, ctx.cmd.meta ?? "latest", ctx.cmd.name);
  ctx.ui.kitCheck(check);
  return check.problems.length > 0 ? ExitCode.partial : ExitCode.ok;
}

/** Runs one command line; returns its exit code. Throws what main.ts maps to one. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const cmd = parseCommandLine(argv);
  if (cmd.command === "help") {
    const text = cmd.helpFor === undefined ? mainHelp() : commandHelp(cmd.helpFor);
    Deno.stdout.writeSync(new TextEncoder().encode(text));
    return ExitCode.ok;
  }
  if (cmd.command === "version") {
    Deno.stdout.writeSync(new TextEncoder().encode(`s3backup ${VERSION}\n`));
    return ExitCode.ok;
  }
  if (cmd.command === "completion" || cmd.command === "man") {
    const text = cmd.command === "man" ? manPage() : completionScript(cmd.args![0]!);
    Deno.stdout.writeSync(new TextEncoder().encode(text));
    return ExitCode.ok;
  }
  const log = cmd.logFile === undefined ? undefined : LogFile.open(cmd.logFile, cmd.command);
  const ui = new Ui({
    cron: cmd.cron || cmd.json === true, // no progress display beside the JSON
    simulate: cmd.simulate,
    verbose: cmd.verbose === true,
    quiet: cmd.quiet === true,
    json: cmd.json === true,
    log,
  });
  try {
    return await runCommand(cmd, ui, signal);
  } catch (err) {
    // main.ts prints it; the log keeps it too (a closed stdout is not an error).
    if (!(err instanceof OutputClosedError)) log?.line(`s3backup: ${errorLine(err)}`);
    throw err;
  } finally {
    ui.stop();
  }
}

async function runCommand(cmd: Command, ui: Ui, signal: AbortSignal): Promise<number> {
  const config = loadConfig(cmd.config);
  if (cmd.verbose) {
    ui.err(`config: ${config.path ?? "none (no s3backup.ini here or in the parent folder)"}`);
  }
  const from = resolveRepository(cmd, config);
  if (cmd.verbose && from !== null && from !== "-b") {
    ui.err(`repository: ${cmd.bucket} (from ${from})`);
  }
  for (const w of config.warnings) ui.warn(w);
  const ctx: Context = { cmd, config, ui, signal };
  switch (cmd.command) {
    case "backup":
      return await runBackup(ctx);
    case "list":
      return await runList(ctx);
    case "restore":
      return await runRestore(ctx);
    case "kit":
      return await runKit(ctx);
    case "verify":
    case "check":
      return await runVerify(ctx);
    case "prune":
      return await runPrune(ctx);
    case "passwd":
      return await runPasswd(ctx);
    case "unlock":
      return await runUnlock(ctx);
    case "init":
      return await runInit(ctx);
    case "upgrade":
      return await runUpgrade(ctx);
    case "ls":
    case "dump":
    case "find":
    case "diff":
    case "stats":
      return await runBrowse(ctx);
    default: // help and version are answered before
      throw new UsageError(`Unknown command ${cmd.command}`);
  }
}
