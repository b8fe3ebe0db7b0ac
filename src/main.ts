/**
 * s3backup's entry point: parses the command line, wires config, password, store and engine,
 * and maps every outcome to one exit code (src/errors.ts). The only place that exits.
 */
import { resolve } from "node:path";
import { backup } from "./backup.ts";
import { type Command, parseCommandLine, USAGE, VERSION } from "./cli.ts";
import { type Config, loadConfig } from "./config.ts";
import { errorLine, ExitCode, exitCodeOf, UsageError } from "./errors.ts";
import { kitFiles, writeKit } from "./kit.ts";
import { listBackups } from "./list.ts";
import { checkBackupName, defaultBackupName } from "./meta_name.ts";
import { getPassword, type PasswordSources } from "./password.ts";
import { createRepository, openRepository, repositoryExists } from "./repository.ts";
import { openStore } from "./store/open_store.ts";
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
  const store = storeOf(ctx);
  await store.checkExists();
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
  }, ui.onBackupEvent);
  ui.backupSummary(summary);
  return summary.skipped > 0 ? ExitCode.partial : ExitCode.ok;
}

async function runList(ctx: Context): Promise<number> {
  const store = storeOf(ctx);
  await store.checkExists();
  const src = passwordSources(ctx, false);
  let repo;
  if ((src.env || src.passwordFile || src.ini) && await repositoryExists(store)) {
    repo = await openRepository(store, await getPassword(src, false));
  }
  ctx.ui.backupList(await listBackups(store, repo));
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
  if (cmd.command === "restore") {
    throw new UsageError(
      "restore is not in this binary yet: write the restore kit with " +
        "'s3backup kit -o DIR -b BUCKET' and run 'DIR/restore.sh BUCKET latest TARGET'",
    );
  }
  const config = loadConfig(cmd.config);
  for (const w of config.warnings) ui.warn(w);
  const ctx: Context = { cmd, config, ui, signal };
  switch (cmd.command) {
    case "backup":
      return await runBackup(ctx);
    case "list":
      return await runList(ctx);
    case "kit":
      return await runKit(ctx);
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
      Deno.stderr.writeSync(new TextEncoder().encode("s3backup: interrupted, nothing recorded\n"));
      code = ExitCode.interrupted;
    } else {
      Deno.stderr.writeSync(new TextEncoder().encode(`s3backup: ${errorLine(err)}\n`));
      code = exitCodeOf(err);
    }
  }
  Deno.exit(code);
}
