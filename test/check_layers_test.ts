/**
 * The layer check (scripts/check_layers.ts) passes on src/ and fails, naming the offending
 * line, on a tree with a planted upward import, an engine importing another, a dynamic import
 * or an over-long function; ARCHITECTURE.md's count of tested files is the tree's.
 */
import assert from "node:assert/strict";
import { docCountProblem, importProblem } from "../scripts/check_layers.ts";

const SCRIPT = new URL("../scripts/check_layers.ts", import.meta.url).pathname;
const SRC = new URL("../src", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

async function check(root: string): Promise<{ code: number; stderr: string; stdout: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--config", CONFIG, "--allow-read", "--allow-env", SCRIPT, "--root", root],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A small tree that follows the rules, plus `extra` files (path -> text). */
async function tree(extra: Record<string, string> = {}): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "s3backup-layers-" });
  const files: Record<string, string> = {
    "main.ts": 'import { run } from "./cli/commands.ts";\nrun();\n',
    "cli/commands.ts": 'import { backup } from "../ops/backup/backup.ts";\n' +
      "export function run() {\n  backup();\n}\n",
    "ops/backup/backup.ts": 'import { walk } from "./walk.ts";\n' +
      'import { open } from "../../repo/repository.ts";\n' +
      "export function backup() {\n  walk();\n  open();\n}\n",
    "ops/backup/walk.ts": "export function walk() {}\n",
    "ops/verify.ts": 'import { open } from "../repo/repository.ts";\n' +
      "export function verify() {\n  open();\n}\n",
    "repo/repository.ts": 'import { meta } from "../format/meta.ts";\n' +
      'import type { Store } from "../store/store.ts";\n' +
      "export function open(s?: Store) {\n  return meta(s);\n}\n",
    "format/meta.ts": 'import { pool } from "../util/pool.ts";\n' +
      "export function meta(_: unknown) {\n  return pool;\n}\n",
    "store/store.ts": 'import { pool } from "../util/pool.ts";\nexport type Store = typeof pool;\n',
    "util/pool.ts": "export const pool = 1;\n",
    ...extra,
  };
  for (const [p, text] of Object.entries(files)) {
    await Deno.mkdir(`${root}/${p.slice(0, p.lastIndexOf("/") + 1)}`, { recursive: true });
    await Deno.writeTextFile(`${root}/${p}`, text);
  }
  return root;
}

Deno.test("layer check: src/ passes", async () => {
  const r = await check(SRC);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /layers and function sizes ok/);
});

Deno.test("layer check: a clean tree passes, a planted upward import fails with its line", async () => {
  const clean = await tree();
  try {
    assert.equal((await check(clean)).code, 0);
  } finally {
    await Deno.remove(clean, { recursive: true });
  }
  const bad = await tree({
    "format/meta.ts": 'import { pool } from "../util/pool.ts";\n' +
      'import type { Store } from "../store/store.ts";\n' +
      'import { open } from "../repo/repository.ts";\n' +
      "export function meta(_: Store) {\n  return [pool, open];\n}\n",
  });
  try {
    const r = await check(bad);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /format\/meta\.ts:3: format must not import repo \(a layer above it\): import \{ open \} from "\.\.\/repo\/repository\.ts";/,
    );
    assert.match(r.stderr, /format\/meta\.ts:2: format and store must not import each other/);
    assert.match(r.stderr, /check_layers: 2 problem\(s\)/);
  } finally {
    await Deno.remove(bad, { recursive: true });
  }
});

Deno.test("layer check: engine into engine, dynamic import, long function", async () => {
  const long = Array.from({ length: 101 }, (_, i) => `  const x${i} = ${i};`).join("\n");
  const bad = await tree({
    "ops/verify.ts": 'import { walk } from "./backup/walk.ts";\n' +
      'export async function verify() {\n  walk();\n  await import("./x.ts");\n}\n',
    "util/long.ts": `export function long() {\n${long}\n}\n`,
  });
  try {
    const r = await check(bad);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /ops\/verify\.ts:1: engine ops\/verify must not import engine ops\/backup/,
    );
    assert.match(r.stderr, /ops\/verify\.ts:4: dynamic import\(\) breaks under deno compile/);
    assert.match(r.stderr, /util\/long\.ts:1: function long is 103 lines \(> 100\)/);
  } finally {
    await Deno.remove(bad, { recursive: true });
  }
});

Deno.test("layer rules", () => {
  assert.equal(importProblem("cli/commands.ts", "ops/verify.ts"), null);
  assert.equal(importProblem("main.ts", "util/errors.ts"), null);
  assert.equal(importProblem("ops/restore/plan.ts", "ops/restore/target.ts"), null);
  assert.match(importProblem("util/pool.ts", "format/meta.ts")!, /a layer above/);
  assert.match(importProblem("store/s3_store.ts", "format/layout.ts")!, /each other/);
  assert.match(importProblem("ops/prune.ts", "ops/verify.ts")!, /engine ops\/prune/);
  assert.match(importProblem("repo/lock.ts", "ops/list.ts")!, /a layer above/);
  assert.equal(importProblem("cli/kit.ts", "../restore-kit/restore.sh"), null);
  assert.match(importProblem("cli/kit.ts", "../test/tree.ts")!, /outside src/);
});

Deno.test("check_layers: ARCHITECTURE.md's count of files tested beside them is the tree's", async () => {
  const root = await tree({ "ops/backup/walk_test.ts": "" });
  try {
    // 9 files of code in the small tree, walk.ts the one with a test beside it.
    const says = (n: string) => `one concept\n(${n} have a\n\`_test.ts\` beside them)`;
    assert.equal(docCountProblem(says("1 of the 9"), root), null);
    const wrong = docCountProblem(says("2 of the 9"), root)!;
    assert.match(wrong.message, /say "1 of the 9 have a/);
    assert.equal(wrong.line, 2);
    await Deno.writeTextFile(`${root}/util/pool_test.ts`, "");
    assert.match(docCountProblem(says("1 of the 9"), root)!.message, /"2 of the 9/);
    assert.equal(docCountProblem("no count here", root)!.line, 1);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
