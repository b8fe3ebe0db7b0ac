import assert from "node:assert/strict";
import { checkWorkflow } from "../scripts/check_workflows.ts";

const GOOD = `name: ci
on: [push]
permissions:
  contents: read
jobs:
  a:
    runs-on: ubuntu-24.04
    timeout-minutes: 5
    strategy:
      matrix:
        include:
          - os: x
    steps:
      - uses: actions/checkout@v4
      - run: echo \${{ matrix.os }} \${{ github.ref }}
  b:
    needs: a
    runs-on: ubuntu-24.04
    timeout-minutes: 5
    steps:
      - run: echo ok
`;

Deno.test("check_workflows: a good workflow passes; each kind of mistake is named", () => {
  assert.deepEqual(checkWorkflow(GOOD), []);
  const bad = (from: string, to: string) => checkWorkflow(GOOD.replace(from, to));
  assert.deepEqual(bad("permissions:\n  contents: read\n", ""), ["no top-level permissions"]);
  assert.deepEqual(bad("actions/checkout@v4", "actions/checkout@main"), [
    "job a: step 1: uses actions/checkout@main: name an action and pin it (@vN or a commit)",
  ]);
  assert.deepEqual(bad("needs: a", "needs: c"), ["job b: needs unknown job c"]);
  assert.deepEqual(bad("matrix.os", "matrix.arch"), ["job a: matrix.arch is not in its matrix"]);
  assert.deepEqual(bad("      - run: echo ok", "      - run: echo ok\n        uses: x/y@v1"), [
    "job b: step 1: needs exactly one of uses and run",
  ]);
  assert.deepEqual(
    bad(
      "    timeout-minutes: 5\n    steps:\n      - run: echo ok",
      "    steps:\n      - run: echo ok",
    ),
    [
      "job b: no timeout-minutes",
    ],
  );
  assert.deepEqual(bad("github.ref", "gihtub.ref"), ["unknown context in ${{ gihtub ... }}"]);
  assert.deepEqual(bad("      - run: echo ok", "      - runs: echo ok"), [
    "job b: step 1: needs exactly one of uses and run",
    "job b: step 1: unknown key runs",
  ]);
  assert.match(checkWorkflow("a: [")[0]!, /^not YAML: /);
  // A runner GitHub has retired, named in runs-on or in the matrix.
  assert.deepEqual(bad("          - os: x", "          - os: macos-13"), [
    "job a: runs on macos-13, which GitHub has retired",
  ]);
  assert.deepEqual(
    bad("needs: a\n    runs-on: ubuntu-24.04", "needs: a\n    runs-on: ubuntu-20.04"),
    [
      "job b: runs on ubuntu-20.04, which GitHub has retired",
    ],
  );
});
