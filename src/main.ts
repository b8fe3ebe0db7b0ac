/**
 * s3backup's entry point: signals, the command line run (cli/commands.ts), and the one mapping
 * of every outcome to an exit code and one line on stderr (util/errors.ts). The only place that
 * exits.
 */
import { run } from "./cli/commands.ts";
import { errorLine, ExitCode, exitCodeOf, OutputClosedError } from "./util/errors.ts";

/** Whether `err`, or what caused it, is standard output closing under the run. */
function outputClosed(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof OutputClosedError) return true;
  }
  return false;
}

/** After the first signal, how long the run has to stop cleanly (locks released) before exit. */
const GRACE_MS = 20_000;

if (import.meta.main) {
  const controller = new AbortController();
  let exitCode: number = ExitCode.interrupted;
  const onSignal = (code: number) => () => {
    if (controller.signal.aborted) Deno.exit(code); // a second signal: now
    exitCode = code;
    controller.abort(new DOMException("Interrupted", "AbortError"));
    Deno.unrefTimer(setTimeout(() => {
      Deno.stderr.writeSync(
        new TextEncoder().encode("s3backup: interrupted (did not stop in time)\n"),
      );
      Deno.exit(code);
    }, GRACE_MS));
  };
  Deno.addSignalListener("SIGINT", onSignal(ExitCode.interrupted));
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onSignal(ExitCode.terminated));
  let code: number;
  try {
    code = await run(Deno.args, controller.signal);
  } catch (err) {
    if (controller.signal.aborted) {
      Deno.stderr.writeSync(new TextEncoder().encode("s3backup: interrupted\n"));
      code = exitCode;
    } else if (outputClosed(err)) {
      code = ExitCode.outputClosed; // `| head` had what it wanted: no message
    } else {
      Deno.stderr.writeSync(new TextEncoder().encode(`s3backup: ${errorLine(err)}\n`));
      code = exitCodeOf(err);
    }
  }
  Deno.exit(code);
}
