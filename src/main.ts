/**
 * s3backup's entry point: parses the command line, wires config, password, store and engine,
 * and maps every outcome to one exit code (src/errors.ts). The only place that exits.
 */
import { resolve } from "node:path";
import { backup } from "./backup.ts";
import { type Command, parseCommandLine, USAGE, VERSION } from "./cli.ts";
import { checkStorageClass, type Config, loadConfig } from "./config.ts";
import { errorLine, ExitCode, exitCodeOf, UsageError } from "./errors.ts";
import { kitFiles, writeKit } from "./kit.ts";
import { isLegacyStore, listLegacyBackups } from "./legacy.ts";
import { listBackups } from "./list.ts";
import { checkBackupName, defaultBackupName } from "./meta_name.ts";
import { getPassword, type PasswordSources } from "./password.ts";
import { createRepository, openRepository, repositoryExists } from "./repository.ts";
import { checkTarget, openForRestore, restore } from "./restore.ts";
import { openStore } from "./store/open_store.ts";
import { changePassword } from "./passwd.ts";
import {
  checkPolicy,
  DEFAULT_GRACE_MS,
  parseDuration,
  parseKeep,
  prune,
  type PrunePolicy,
} from "./prune.ts";
import { parseSubset, verify, type VerifyOptions } from "./verify.ts";
import type { Store } from "./store/store.ts";
import { Ui } from "./ui.ts";

interface Context {
  cmd: Command;
  config: Config;
  ui: Ui;
  signal: AbortSignal;
}

function passwordSources(ctx: Context, interactive: boolean): PasswordSources {
  const src: PasswordSources = { interactive: interactive && !ctx.cmd.cron };
  const env = Deno.env.get("S3BACKUP_PASSWORD");
  if (env !== undefined) src.env = env;
  if (ctx.cmd.passwordFile !== undefined) src.passwordFile = ctx.cmd.passwordFile;
  if (ctx.config.password !== undefined) src.ini = ctx.config.password;
  return src;
}

function endpointOf(ctx: Context): string | undefined {
  return ctx.cmd.endpointUrl ?? Deno.env.get("AWS_ENDPOINT_URL_S3") ??
    Deno.env.get("AWS_ENDPOINT_URL") ?? ctx.config.endpoint;
}

function regionOf(ctx: Context): string | undefined {
  return ctx.cmd.region ?? Deno.env.get("AWS_REGION") ?? Deno.env.get("AWS_DEFAULT_REGION") ??
    ctx.config.region;
}

function storeOf(ctx: Context): Store {
  const opts: Parameters<typeof openStore>[1] = {};
  const endpoint = endpointOf(ctx);
  const region = regionOf(ctx);
  const profile = ctx.cmd.profile ?? ctx.config.profile;
  if (endpoint) opts.endpoint = endpoint;
  if (region) opts.region = region;
  if (profile) opts.profile = profile;
  if (ctx.config.checksums) opts.checksums = ctx.config.checksums;
  return openStore(ctx.cmd.bucket!, opts);
}

function kitConfigOf(ctx: Context, store?: Store) {
  const c: { store?: string; endpointUrl?: string; region?: string } = {};
  if (store) c.store = store.location;
  const endpoint = endpointOf(ctx);
  const region = regionOf(ctx);
  if (endpoint) c.endpointUrl = endpoint;
  if (region) c.region = region;
  return c;
}

async function runBackup(ctx: Context): Promise<number> {
  const { cmd, ui } = ctx;
  const source = resolve(cmd.folder!);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(source);
  } catch (err) {
    throw new UsageError(`Cannot back up ${source}: ${(err as Error).message}`, { cause: err });
  }
  if (!info.isDirectory) throw new UsageError(`Cannot back up ${source}: not a directory`);
  const name = checkBackupName(cmd.name ?? defaultBackupName(source));
  const storageClass = cmd.storageClass === undefined
    ? ctx.config.storageClass
    : checkStorageClass(cmd.storageClass, "--storage-class");
  const store = storeOf(ctx);
  await store.checkExists();
  if (await isLegacyStore(store)) {
    throw new UsageError(
      `${store.location} holds backups of the original s3backup.py (format 1): ` +
        "back up to a new bucket or prefix (this one stays readable with list and restore)",
    );
  }
  let repo = null;
  if (await repositoryExists(store)) {
    repo = await openRepository(store, await getPassword(passwordSources(ctx, true), false));
  } else if (!cmd.simulate) {
    repo = await createRepository(store, await getPassword(passwordSources(ctx, true), true));
  }
  const summary = await backup(store, repo, {
    source,
    name,
    host: Deno.hostname(),
    simulate: cmd.simulate,
    kit: kitFiles(kitConfigOf(ctx, store)),
    signal: ctx.signal,
    ...(storageClass ? { storageClass } : {}),
  }, ui.onBackupEvent);
  ui.backupSummary(summary);
  return summary.skipped > 0 ? ExitCode.partial : ExitCode.ok;
}

async function runList(ctx: Context): Promise<number> {
  const store = storeOf(ctx);
  await store.checkExists();
  const src = passwordSources(ctx, false);
  const havePassword = Boolean(src.env || src.passwordFile || src.ini);
  if (await isLegacyStore(store)) {
    const pw = havePassword ? await getPassword(src, false) : undefined;
    ctx.ui.backupList(await listLegacyBackups(store, pw));
    return ExitCode.ok;
  }
  let repo;
  if (havePassword && await repositoryExists(store)) {
    repo = await openRepository(store, await getPassword(src, false));
  }
  ctx.ui.backupList(await listBackups(store, repo));
  return ExitCode.ok;
}

async function runRestore(ctx: Context): Promise<number> {
  const { cmd, ui } = ctx;
  const target = resolve(cmd.folder!);
  try {
    if (!(await Deno.stat(target)).isDirectory) {
      throw new UsageError(`Cannot restore into ${target}: not a directory`);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const store = storeOf(ctx);
  await store.checkExists();
  // Password, repository and meta are checked before anything is written.
  const password = await getPassword(passwordSources(ctx, true), false);
  const plan = await openForRestore(store, password, cmd.meta!, cmd.name);
  await checkTarget(store, plan.meta, target, Deno.hostname(), cmd.overwrite ?? false);
  for (const n of plan.notes) ui.warn(n);
  const summary = await restore(plan.repo, plan.meta, {
    target,
    metaKey: plan.metaKey,
    only: cmd.only ?? [],
    simulate: cmd.simulate,
    overwrite: cmd.overwrite ?? false,
    legacy: plan.legacy,
    problems: plan.problems,
    signal: ctx.signal,
  }, ui.onRestoreEvent);
  ui.restoreSummary(summary);
  return summary.failed > 0 ? ExitCode.partial : ExitCode.ok;
}

/** verify (check): exit 0 when every backup is whole, 3 when damage was found. */
async function runVerify(ctx: Context): Promise<number> {
  const { cmd, ui } = ctx;
  if (cmd.readData && cmd.readDataSubset !== undefined) {
    throw new UsageError("Use --read-data or --read-data-subset, not both");
  }
  const subset = cmd.readDataSubset === undefined ? undefined : parseSubset(cmd.readDataSubset);
  const store = storeOf(ctx);
  await store.checkExists();
  const password = await getPassword(passwordSources(ctx, true), false);
  const repo = await openRepository(store, password);
  const opts: VerifyOptions = { readData: cmd.readData === true || subset !== undefined };
  if (subset !== undefined) opts.subset = subset;
  if (cmd.meta !== undefined) opts.meta = cmd.meta;
  opts.signal = ctx.signal;
  const summary = await verify(repo, opts, ui.onVerifyEvent);
  ui.verifySummary(summary);
  return summary.problems > 0 ? ExitCode.partial : ExitCode.ok;
}

/** prune: exit 3 when backups were running and no data object could be removed. */
async function runPrune(ctx: Context): Promise<number> {
  const { cmd, ui } = ctx;
  const policy: PrunePolicy = {};
  for (const rule of ["last", "daily", "weekly", "monthly", "yearly"] as const) {
    const v = cmd.keep?.[rule];
    if (v !== undefined) policy[rule] = parseKeep(`--keep-${rule}`, v);
  }
  checkPolicy(policy);
  const graceMs = cmd.grace === undefined ? DEFAULT_GRACE_MS : parseDuration(cmd.grace);
  const dryRun = cmd.dryRun === true || cmd.simulate;
  const store = storeOf(ctx);
  await store.checkExists();
  const password = await getPassword(passwordSources(ctx, true), false);
  const repo = await openRepository(store, password);
  const summary = await prune(repo, {
    policy,
    dryRun,
    graceMs,
    host: Deno.hostname(),
    signal: ctx.signal,
  }, ui.pruneEvents(dryRun));
  ui.pruneSummary(summary);
  return summary.dataSkipped ? ExitCode.partial : ExitCode.ok;
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
  });
  ui.passwdSummary(summary);
  if (ctx.config.password !== undefined) {
    ui.warn("s3backup.ini still holds the old password: update [main] password=");
  }
  return ExitCode.ok;
}

async function runKit(ctx: Context): Promise<number> {
  const store = ctx.cmd.bucket ? storeOf(ctx) : undefined;
  const written = await writeKit(ctx.cmd.output!, kitConfigOf(ctx, store));
  for (const p of written) ctx.ui.out(p);
  return ExitCode.ok;
}

export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const cmd = parseCommandLine(argv);
  if (cmd.command === "help") {
    Deno.stdout.writeSync(new TextEncoder().encode(USAGE));
    return ExitCode.ok;
  }
  if (cmd.command === "version") {
    Deno.stdout.writeSync(new TextEncoder().encode(`s3backup ${VERSION}\n`));
    return ExitCode.ok;
  }
  const ui = new Ui({ cron: cmd.cron, simulate: cmd.simulate });
  const config = loadConfig(cmd.config);
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
  }
}

if (import.meta.main) {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    if (++interrupts > 1) Deno.exit(ExitCode.interrupted);
    controller.abort(new DOMException("Interrupted", "AbortError"));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onSignal);
  let code: number;
  try {
    code = await run(Deno.args, controller.signal);
  } catch (err) {
    if (controller.signal.aborted) {
      Deno.stderr.writeSync(new TextEncoder().encode("s3backup: interrupted\n"));
      code = ExitCode.interrupted;
    } else {
      Deno.stderr.writeSync(new TextEncoder().encode(`s3backup: ${errorLine(err)}\n`));
      code = exitCodeOf(err);
    }
  }
  Deno.exit(code);
}
