/**
 * s3backup's entry point: signals, the command line run (cli/commands.ts), and the one mapping
 * of every outcome to an exit code and one line on stderr (util/errors.ts). The only place that
 * exits.
 */
import { run } from "./cli/commands.ts";
import { errorLine, ExitCode, exitCodeOf } from "./util/errors.ts";

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
