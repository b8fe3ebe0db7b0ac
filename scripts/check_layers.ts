/**
 * The layer check (ARCHITECTURE.md), run by CI: reads every import of src/ and fails on
 *
 * - an import that points up a layer: main -> cli -> ops -> repo -> format | store -> util;
 * - an import between format/ and store/ (side by side, neither knows the other);
 * - an import from one engine of ops/ into another (an engine is a file of ops/ or a folder
 *   of ops/, e.g. ops/restore/);
 * - a dynamic `import()` (nothing may break under `deno compile`);
 * - a function longer than --max-lines (default 100) lines;
 * - ARCHITECTURE.md's count of files with a `_test.ts` beside them, when it is not the tree's
 *   (with the default --root).
 *
 *   deno run --allow-read scripts/check_layers.ts [--root DIR] [--max-lines N]
 *
 * Test files (`*_test.ts`) may import anything. Prints one line per problem, with the offending
 * import, and exits 1 when there is any.
 */
import ts from "typescript";

const LAYERS: Record<string, number> = {
  "main": 0,
  "cli": 1,
  "ops": 2,
  "repo": 3,
  "format": 4,
  "store": 4,
  "util": 5,
};

export interface Problem {
  file: string;
  line: number;
  message: string;
}

/** The layer folder of a path relative to src/ (`main` for src/main.ts), or null. */
function layerOf(rel: string): string | null {
  if (rel === "main.ts") return "main";
  const top = rel.split("/")[0]!;
  return top in LAYERS ? top : null;
}

/** The ops/ engine of a path relative to src/: `ops/restore` or `ops/verify`. */
function engineOf(rel: string): string {
  const parts = rel.split("/");
  return parts.length > 2 ? `ops/${parts[1]}` : `ops/${parts[1]!.replace(/\.ts$/, "")}`;
}

/** Why `from` (relative to src/) must not import `to`, or null. */
export function importProblem(from: string, to: string): string | null {
  const a = layerOf(from), b = layerOf(to);
  if (a === null) return null;
  if (b === null) {
    // Outside the layers: the kit's text files (embedded), never code.
    return to.endsWith(".ts") ? `${a} must not import code outside src/ layers (${to})` : null;
  }
  if (LAYERS[b]! < LAYERS[a]!) return `${a} must not import ${b} (a layer above it)`;
  if (a !== b && LAYERS[a] === LAYERS[b]) return `${a} and ${b} must not import each other`;
  if (a === "ops" && b === "ops" && engineOf(from) !== engineOf(to)) {
    return `engine ${engineOf(from)} must not import engine ${engineOf(to)}`;
  }
  return null;
}

function relativeTo(root: string, abs: string): string {
  return abs.startsWith(`${root}/`) ? abs.slice(root.length + 1) : abs;
}

function resolveSpec(fileAbs: string, spec: string): string | null {
  if (!spec.startsWith(".")) return null; // npm:, node:, a mapped name: not ours
  const dir = fileAbs.slice(0, fileAbs.lastIndexOf("/"));
  const parts = `${dir}/${spec}`.split("/");
  const out: string[] = [];
  for (const p of parts) {
    if (p === "..") out.pop();
    else if (p !== ".") out.push(p);
  }
  return out.join("/");
}

function lineOf(sf: ts.SourceFile, pos: number): number {
  return sf.getLineAndCharacterOfPosition(pos).line + 1;
}

/** The problems of one file (`rel`: its path relative to src/). */
export function checkFile(
  srcRoot: string,
  rel: string,
  text: string,
  maxLines: number,
): Problem[] {
  const sf = ts.createSourceFile(rel, text, ts.ScriptTarget.Latest, true);
  const out: Problem[] = [];
  const isTest = rel.endsWith("_test.ts");
  const visit = (node: ts.Node) => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier) && !isTest
    ) {
      const target = resolveSpec(`${srcRoot}/${rel}`, node.moduleSpecifier.text);
      const why = target === null ? null : importProblem(rel, relativeTo(srcRoot, target));
      if (why !== null) {
        const line = lineOf(sf, node.getStart(sf));
        const stmt = node.getText(sf).replace(/\s+/g, " ");
        out.push({ file: rel, line, message: `${why}: ${stmt}` });
      }
    }
    if (
      ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword
    ) {
      out.push({
        file: rel,
        line: lineOf(sf, node.getStart(sf)),
        message: "dynamic import() breaks under deno compile",
      });
    }
    if (
      !isTest && (ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) ||
        ts.isArrowFunction(node) || ts.isFunctionExpression(node) ||
        ts.isConstructorDeclaration(node))
    ) {
      const first = lineOf(sf, node.getStart(sf)), last = lineOf(sf, node.getEnd());
      const n = last - first + 1;
      if (n > maxLines) {
        const name = (node as { name?: ts.Node }).name?.getText(sf) ?? "(anonymous)";
        out.push({
          file: rel,
          line: first,
          message: `function ${name} is ${n} lines (> ${maxLines})`,
        });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

function* tsFiles(dir: string, rel = ""): Generator<string> {
  const names = [...Deno.readDirSync(rel === "" ? dir : `${dir}/${rel}`)]
    .sort((a, b) => a.name < b.name ? -1 : 1);
  for (const e of names) {
    const r = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory) yield* tsFiles(dir, r);
    else if (e.isFile && e.name.endsWith(".ts")) yield r;
  }
}

/** Every problem under `srcRoot`. */
export function checkTree(srcRoot: string, maxLines = 100): Problem[] {
  const out: Problem[] = [];
  for (const rel of tsFiles(srcRoot)) {
    out.push(...checkFile(srcRoot, rel, Deno.readTextFileSync(`${srcRoot}/${rel}`), maxLines));
  }
  return out;
}

/** How many of the non-test files under `srcRoot` have a `_test.ts` beside them, of how many. */
export function testedBeside(srcRoot: string): { tested: number; files: number } {
  const all = new Set(tsFiles(srcRoot));
  const code = [...all].filter((f) => !f.endsWith("_test.ts"));
  return {
    tested: code.filter((f) => all.has(f.replace(/\.ts$/, "_test.ts"))).length,
    files: code.length,
  };
}

/** A problem when ARCHITECTURE.md's "N of the M have a `_test.ts`" is not the tree's count. */
export function docCountProblem(doc: string, srcRoot: string): Problem | null {
  const m = /(\d+) of the (\d+) have a\s+`_test\.ts`/.exec(doc);
  const { tested, files } = testedBeside(srcRoot);
  if (m !== null && Number(m[1]) === tested && Number(m[2]) === files) return null;
  const line = m === null ? 1 : doc.slice(0, m.index).split("\n").length;
  const message = `ARCHITECTURE.md should say "${tested} of the ${files} have a \`_test.ts\`"`;
  return { file: "../ARCHITECTURE.md", line, message };
}

if (import.meta.main) {
  const defaultRoot = new URL("../src", import.meta.url).pathname;
  let root = defaultRoot;
  let maxLines = 100;
  for (let i = 0; i < Deno.args.length; i++) {
    const a = Deno.args[i];
    if (a === "--root") root = Deno.args[++i] ?? root;
    else if (a === "--max-lines") maxLines = Number(Deno.args[++i]);
    else {
      console.error(`check_layers: unknown argument ${a}`);
      Deno.exit(2);
    }
  }
  root = root.replace(/\/+$/, "");
  const problems = checkTree(root, maxLines);
  if (root === defaultRoot.replace(/\/+$/, "")) {
    const doc = Deno.readTextFileSync(new URL("../ARCHITECTURE.md", import.meta.url));
    const p = docCountProblem(doc, root);
    if (p !== null) problems.push(p);
  }
  for (const p of problems) console.error(`${root}/${p.file}:${p.line}: ${p.message}`);
  if (problems.length > 0) {
    console.error(`check_layers: ${problems.length} problem(s)`);
    Deno.exit(1);
  }
  console.log(`check_layers: ${[...tsFiles(root)].length} files, layers and function sizes ok`);
}
