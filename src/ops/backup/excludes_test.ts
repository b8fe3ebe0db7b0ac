import assert from "node:assert/strict";
import { describeExcludes, excludeFilter, NO_EXCLUDES, patternsOfFile } from "./excludes.ts";
import { walk } from "./walk.ts";

/** Builds `tree` (paths; a trailing `/` is a folder) under a temp folder; returns it. */
function build(tree: string[]): string {
  const dir = Deno.makeTempDirSync({ prefix: "s3backup-excl-" });
  for (const p of tree) {
    if (p.endsWith("/")) Deno.mkdirSync(`${dir}/${p}`, { recursive: true });
    else Deno.writeTextFileSync(`${dir}/${p}`, p);
  }
  return dir;
}

/** The paths a walk of `dir` yields with `patterns`, and what it reported left out. */
function walked(dir: string, patterns: string[], ifPresent: string[] = []) {
  const excluded: string[] = [];
  const filter = excludeFilter({ patterns, ifPresent, oneFileSystem: false }, dir);
  const paths = Array.from(
    walk(dir, () => {}, filter, (p, why) => excluded.push(`${p} (${why})`)),
    (i) => i.path,
  );
  return { paths, excluded };
}

const TREE = [
  "a/",
  "a/keep.log",
  "a/x.log",
  "a/node_modules/",
  "a/node_modules/m.js",
  "a/b/",
  "a/b/node_modules/",
  "a/b/node_modules/n.js",
  "a/b/c.txt",
  "build",
  "top/",
  "top/t",
  "sub/",
  "sub/top/",
  "sub/top/s",
  "Cache/",
  "Cache/z",
  "caché ü/",
  "caché ü/f",
  "sp ace.tmp",
  "#hash",
  "x.log",
];

/** pattern list -> paths that must be left out (folders with a trailing `/`: their contents). */
const CASES: [string, string[], string[]][] = [
  ["** anywhere", ["**/node_modules/"], ["a/node_modules", "a/b/node_modules"]],
  ["a name anywhere", ["node_modules"], ["a/node_modules", "a/b/node_modules"]],
  ["glob, then negation re-includes", ["*.log", "!keep.log"], ["a/x.log", "x.log"]],
  ["negation first is undone by a later rule", ["!keep.log", "*.log"], [
    "a/keep.log",
    "a/x.log",
    "x.log",
  ]],
  ["anchored /top is only at the root", ["/top"], ["top"]],
  ["unanchored top is at any depth", ["top"], ["top", "sub/top"]],
  ["a path with a slash is anchored", ["a/b"], ["a/b"]],
  ["a/**/c.txt", ["a/**/c.txt"], ["a/b/c.txt"]],
  ["trailing / matches folders only", ["build/", "x.log/"], []],
  ["case-sensitive", ["cache/"], []],
  ["case as written", ["Cache/"], ["Cache"]],
  ["non-ASCII names", ["caché ü"], ["caché ü"]],
  ["escaped #", ["\\#hash"], ["#hash"]],
  ["spaces in names", ["sp ace.tmp"], ["sp ace.tmp"]],
  ["a file inside an excluded folder cannot be re-included", ["a/", "!a/x.log"], ["a"]],
];

Deno.test("excludes: gitignore rules against a table of paths", () => {
  const dir = build(TREE);
  try {
    const all = walked(dir, []).paths;
    for (const [what, patterns, out] of CASES) {
      const { paths, excluded } = walked(dir, patterns);
      const expected = all.filter((p) => !out.some((o) => p === o || p.startsWith(`${o}/`)));
      assert.deepEqual(paths, expected, what);
      assert.deepEqual(
        excluded.map((e) => e.replace(/ \(.*$/, "")),
        out.filter((o) => all.includes(o)).sort(),
        `${what}: reported`,
      );
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("excludes: a folder holding CACHEDIR.TAG (signed) or a named tag keeps only itself", () => {
  const dir = build(["c/", "c/big", "fake/", "fake/f", "t/", "t/.nobackup", "t/f", "ok/", "ok/f"]);
  try {
    Deno.writeTextFileSync(
      `${dir}/c/CACHEDIR.TAG`,
      "Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n",
    );
    Deno.writeTextFileSync(`${dir}/fake/CACHEDIR.TAG`, "not a signature\n");
    const { paths, excluded } = walked(dir, [], ["CACHEDIR.TAG", ".nobackup"]);
    assert.deepEqual(paths, ["c", "fake", "fake/CACHEDIR.TAG", "fake/f", "ok", "ok/f", "t"]);
    assert.deepEqual(excluded, [
      "c/ (contents left out: holds CACHEDIR.TAG)",
      "t/ (contents left out: holds .nobackup)",
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "excludes: --one-file-system keeps a mount point, not what is mounted on it",
  ignore: Deno.build.os !== "linux" || Deno.uid() !== 0,
  fn: () => {
    const dir = build(["m/", "f"]);
    const mount = (args: string[]) => new Deno.Command(args[0]!, { args: args.slice(1) });
    try {
      assert.equal(mount(["mount", "-t", "tmpfs", "tmpfs", `${dir}/m`]).outputSync().code, 0);
      Deno.writeTextFileSync(`${dir}/m/inside`, "x");
      const run = (oneFileSystem: boolean) => {
        const excluded: string[] = [];
        const rules = { ...NO_EXCLUDES, oneFileSystem };
        const filter = excludeFilter(rules, dir);
        const paths = Array.from(
          walk(dir, () => {}, filter, (p) => excluded.push(p)),
          (i) => i.path,
        );
        return { paths, excluded };
      };
      assert.deepEqual(run(false).paths, ["f", "m", "m/inside"]);
      assert.deepEqual(run(true), { paths: ["f", "m"], excluded: ["m/"] });
    } finally {
      mount(["umount", `${dir}/m`]).outputSync();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("excludes: exclude files and the header's rule lines", () => {
  assert.deepEqual(patternsOfFile("# c\n*.tmp\r\n\n  \n!keep.tmp\n/x/\n"), [
    "*.tmp",
    "!keep.tmp",
    "/x/",
  ]);
  assert.deepEqual(
    describeExcludes({
      patterns: ["*.tmp", "!a b"],
      ifPresent: ["CACHEDIR.TAG"],
      oneFileSystem: true,
    }),
    ["pattern *.tmp", "pattern !a b", "if-present CACHEDIR.TAG", "one-file-system"],
  );
  assert.equal(excludeFilter(NO_EXCLUDES, "/"), undefined);
});

Deno.test("excludes: results stay right across the matcher's rebuilds (its caches would keep every path)", () => {
  const dir = build(["d/"]);
  try {
    for (let i = 0; i < 9000; i++) {
      Deno.writeTextFileSync(`${dir}/d/f${i}${i % 3 ? ".tmp" : ""}`, "");
    }
    const { paths } = walked(dir, ["*.tmp"]);
    assert.equal(paths.length, 1 + 3000);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
