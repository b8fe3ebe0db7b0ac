/**
 * The permission paths root never meets (root reads and writes everything): run as an ordinary
 * user. `.ci/run` runs this file again as `nobody` (setpriv), after the suite as root; as root
 * each test is skipped, and said so.
 *
 * - a source file the user cannot read: the backup records the rest, names it, exit 3;
 * - a source folder the user cannot enter: the same;
 * - a target folder of another user (not writable; a folder the user owns is made writable):
 *   the binary and the kit say so in one line and write nothing.
 */
import assert from "node:assert/strict";
import { runKit } from "./kit_runner.ts";
import { PASSWORD, s3backup } from "./faults/harness.ts";
import { snapshot } from "./tree.ts";

const root = Deno.uid() === 0;
if (root) console.warn("unprivileged_test: skipped as root (.ci/run runs it as nobody)");

async function withTree(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-unpriv-" });
  try {
    await Deno.mkdir(`${dir}/src/closed`, { recursive: true });
    await Deno.mkdir(`${dir}/repo`);
    await Deno.writeTextFile(`${dir}/src/open.txt`, "readable\n");
    await Deno.writeTextFile(`${dir}/src/secret.txt`, "not for this user\n");
    await Deno.writeTextFile(`${dir}/src/closed/inside.txt`, "behind a closed door\n");
    await fn(dir);
  } finally {
    // Give back what the tests took away, so that the folder can be removed.
    for (const p of ["src/secret.txt", "src/closed", "out/closed"]) {
      await Deno.chmod(`${dir}/${p}`, 0o755).catch(() => {});
    }
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "unprivileged: an unreadable file and a folder that cannot be entered: named, exit 3, " +
    "the rest backed up and restored",
  ignore: root,
  fn: () =>
    withTree(async (dir) => {
      await Deno.chmod(`${dir}/src/secret.txt`, 0o000);
      await Deno.chmod(`${dir}/src/closed`, 0o000);
      const b = await s3backup(["backup", "-f", `${dir}/src`, "-b", `${dir}/repo`, "-c"]);
      assert.equal(b.code, 3, b.stderr);
      assert.match(b.stderr, /secret\.txt: .*(could not read|[Pp]ermission denied)/);
      assert.match(b.stderr, /closed: .*(could not read|[Pp]ermission denied)/);
      const r = await s3backup([
        "restore",
        "-b",
        `${dir}/repo`,
        "-m",
        "latest",
        "-f",
        `${dir}/out`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await Deno.readTextFile(`${dir}/out/open.txt`), "readable\n");
      await assert.rejects(Deno.stat(`${dir}/out/secret.txt`), Deno.errors.NotFound);
    }),
});

// A folder of another user (root), empty, 0755: .ci/run makes it before running this file.
const FOREIGN = Deno.env.get("S3BACKUP_TEST_FOREIGN_DIR");
if (!root && FOREIGN === undefined) {
  console.warn("unprivileged_test: no S3BACKUP_TEST_FOREIGN_DIR: the foreign target is not tried");
}

Deno.test({
  name: "unprivileged: a target of another user, not writable: the binary and the kit say so " +
    "in one line, write nothing; one under it cannot be made",
  ignore: root || FOREIGN === undefined,
  fn: () =>
    withTree(async (dir) => {
      const b = await s3backup(["backup", "-f", `${dir}/src`, "-b", `${dir}/repo`, "-c"]);
      assert.equal(b.code, 0, b.stderr);
      const into = async (target: string) => {
        const r = await s3backup(["restore", "-b", `${dir}/repo`, "-m", "latest", "-f", target]);
        assert.notEqual(r.code, 0, r.stderr);
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        assert.match(r.stderr, /^s3backup: .*(not writable|[Pp]ermission denied|cannot create)/i);
        const k = await runKit("restore.sh", [`${dir}/repo`, "latest", target], PASSWORD);
        assert.notEqual(k.code, 0, k.stderr);
        assert.match(k.stderr, /cannot create|[Pp]ermission denied|not writable/);
        assert.doesNotMatch(r.stderr + k.stderr, /^\s+at /m);
      };
      await into(FOREIGN!);
      await into(`${FOREIGN}/new`);
      assert.deepEqual([...Deno.readDirSync(FOREIGN!)], [], "nothing written into it");
    }),
});

Deno.test({
  name: "unprivileged: the kit's fast lane restores files with their modes and mtimes, its " +
    "records made in bulk (no owner records)",
  ignore: root,
  fn: () =>
    withTree(async (dir) => {
      // Files of the fast lane's common shape (withTree's are readable until a test closes
      // them; its secret one goes).
      await Deno.remove(`${dir}/src/secret.txt`);
      await Deno.mkdir(`${dir}/src/café ✓`);
      const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));
      const files: [string, number, number][] = [
        [" lead space", 0o600, 1_650_000_000_500],
        ["café ✓/naïve.txt", 0o755, 1_400_000_000_999],
        ["block", 0o444, 1_600_000_000_000],
      ];
      for (const [p, mode, mtime] of files) {
        await Deno.writeFile(`${dir}/src/${p}`, rnd(p.length * 100));
        await Deno.chmod(`${dir}/src/${p}`, mode);
        await Deno.utime(`${dir}/src/${p}`, mtime / 1000, mtime / 1000);
      }
      const want = snapshot(`${dir}/src`).filter((e) => e.type === "f");
      const b = await s3backup(["backup", "-f", `${dir}/src`, "-b", `${dir}/repo`, "-c"]);
      assert.equal(b.code, 0, b.stderr);
      // A tar that logs whether its stream is a bulk one (a path behind slashes) and its exit.
      await Deno.mkdir(`${dir}/shim`);
      await Deno.writeTextFile(
        `${dir}/shim/tar`,
        `#!/bin/bash
s=$(mktemp) && cat >"$s" || exit 1
b=line; if grep -aq 'path=\\.//' "$s"; then b=bulk; fi
/usr/bin/tar "$@" <"$s"; rc=$?; rm -f "$s"
echo "$b $rc" >>${dir}/tar.log; exit $rc
`,
        { mode: 0o755 },
      );
      const k = await runKit("restore.sh", [`${dir}/repo`, "latest", `${dir}/out`], PASSWORD, {
        PATH: `${dir}/shim:/usr/bin:/bin`,
        TMPDIR: dir,
      });
      assert.equal(k.code, 0, k.stderr);
      assert.deepEqual(snapshot(`${dir}/out`).filter((e) => e.type === "f"), want);
      const runs = (await Deno.readTextFile(`${dir}/tar.log`)).trim().split("\n");
      assert.deepEqual(runs.filter((l) => !l.endsWith(" 0")), [], "a tar failed");
      assert.equal(runs.filter((l) => l.startsWith("bulk")).length, 1, runs.join(", "));
    }),
});
