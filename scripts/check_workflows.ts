/**
 * A schema check of the GitHub workflow files (.github/workflows/*.yml), where actionlint cannot
 * be installed: parsed as YAML, then held to what GitHub needs and what this project asks
 * (`checkWorkflow` lists both). Prints one line per problem; exits 1 if there is any.
 *
 *   deno task check:workflows [FILE...]
 */
import { parse } from "yaml";

const CONTEXTS = [
  "github",
  "matrix",
  "secrets",
  "env",
  "needs",
  "steps",
  "runner",
  "inputs",
  "job",
];

/**
 * Runner labels GitHub has retired (a job on one waits for a runner that never comes, then
 * fails): macos-13 went in December 2025, after ubuntu-20.04 and windows-2019 that year.
 */
export const RETIRED_RUNNERS = [
  "ubuntu-18.04",
  "ubuntu-20.04",
  "macos-10.15",
  "macos-11",
  "macos-12",
  "macos-13",
  "windows-2016",
  "windows-2019",
];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** The problems of one workflow's text (empty: none). */
export function checkWorkflow(text: string): string[] {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    return [`not YAML: ${(err as Error).message.split("\n")[0]}`];
  }
  if (!isObj(doc)) return ["not a mapping"];
  const out: string[] = [];
  for (const k of ["name", "on", "permissions", "jobs"]) {
    if (!(k in doc)) out.push(`no top-level ${k}`);
  }
  const jobs = isObj(doc.jobs) ? doc.jobs : {};
  for (const [id, job] of Object.entries(jobs)) out.push(...checkJob(id, job, Object.keys(jobs)));
  for (const m of text.matchAll(/\$\{\{\s*([a-z_]+)[.\s]/g)) {
    if (!CONTEXTS.includes(m[1]!)) out.push(`unknown context in \${{ ${m[1]} ... }}`);
  }
  return out;
}

function checkJob(id: string, job: unknown, all: string[]): string[] {
  if (!isObj(job)) return [`job ${id}: not a mapping`];
  const out: string[] = [];
  const at = (s: string) => `job ${id}: ${s}`;
  if (!("runs-on" in job)) out.push(at("no runs-on"));
  for (const label of runnerLabels(job)) {
    if (RETIRED_RUNNERS.includes(label)) out.push(at(`runs on ${label}, which GitHub has retired`));
  }
  if (typeof job["timeout-minutes"] !== "number") out.push(at("no timeout-minutes"));
  const needs = job.needs === undefined ? [] : [job.needs].flat();
  for (const n of needs) if (!all.includes(String(n))) out.push(at(`needs unknown job ${n}`));
  const matrix = isObj(job.strategy) && isObj(job.strategy.matrix) ? job.strategy.matrix : null;
  const keys = new Set<string>(matrix ? Object.keys(matrix) : []);
  for (const inc of matrix && Array.isArray(matrix.include) ? matrix.include : []) {
    if (isObj(inc)) { for (const k of Object.keys(inc)) keys.add(k); }
  }
  for (const m of JSON.stringify(job).matchAll(/\$\{\{\s*matrix\.([\w-]+)/g)) {
    if (!keys.has(m[1]!)) out.push(at(`matrix.${m[1]} is not in its matrix`));
  }
  if (!Array.isArray(job.steps) || job.steps.length === 0) return [...out, at("no steps")];
  job.steps.forEach((step, i) =>
    out.push(...checkStep(step).map((p) => at(`step ${i + 1}: ${p}`)))
  );
  return out;
}

/** The runner labels a job names: its runs-on, and each value of its matrix's os. */
function runnerLabels(job: Obj): string[] {
  const labels = [job["runs-on"]].flat().filter((l): l is string => typeof l === "string");
  const matrix = isObj(job.strategy) && isObj(job.strategy.matrix) ? job.strategy.matrix : {};
  const rows = [matrix.os ?? [], ...(Array.isArray(matrix.include) ? matrix.include : [])].flat();
  for (const r of rows) {
    if (typeof r === "string") labels.push(r);
    else if (isObj(r) && typeof r.os === "string") labels.push(r.os);
  }
  return labels;
}

function checkStep(step: unknown): string[] {
  if (!isObj(step)) return ["not a mapping"];
  const out: string[] = [];
  const uses = step.uses, run = step.run;
  if ((uses === undefined) === (run === undefined)) out.push("needs exactly one of uses and run");
  if (uses !== undefined && !/^[\w.-]+\/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})$/.test(String(uses))) {
    out.push(`uses ${uses}: name an action and pin it (@vN or a commit)`);
  }
  if (step.with !== undefined && uses === undefined) out.push("with needs uses");
  if (run !== undefined && typeof run !== "string") out.push("run is not a string");
  const known = ["name", "uses", "run", "with", "env", "shell", "if", "id", "working-directory"];
  for (const k of Object.keys(step)) if (!known.includes(k)) out.push(`unknown key ${k}`);
  return out;
}

if (import.meta.main) {
  const dir = new URL("../.github/workflows/", import.meta.url).pathname;
  const files = Deno.args.length > 0
    ? Deno.args
    : [...Deno.readDirSync(dir)].filter((e) => /\.ya?ml$/.test(e.name)).map((e) => dir + e.name);
  let bad = 0;
  for (const f of files.sort()) {
    for (const p of checkWorkflow(Deno.readTextFileSync(f))) {
      console.error(`${f}: ${p}`);
      bad++;
    }
  }
  if (files.length === 0) {
    console.error("check_workflows: no workflow files");
    Deno.exit(1);
  }
  console.log(`check_workflows: ${files.length} files, ${bad === 0 ? "ok" : `${bad} problems`}`);
  if (bad > 0) Deno.exit(1);
}
