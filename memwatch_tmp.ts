import { run } from "./src/cli/commands.ts";
const t0 = Date.now();
const id = setInterval(() => {
  const m = Deno.memoryUsage();
  console.error(
    `${Date.now() - t0}ms rss ${m.rss >> 20} heapTotal ${m.heapTotal >> 20} heapUsed ${
      m.heapUsed >> 20
    } ext ${m.external >> 20}`,
  );
}, 400);
const code = await run(Deno.args, new AbortController().signal);
clearInterval(id);
console.error("code", code);
