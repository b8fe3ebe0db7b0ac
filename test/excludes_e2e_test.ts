/**
 * Excludes through the real program: flags, an exclude file, the ini's [backup] lists and tag
 * files together; `-s -v` names what is left out; the restore (binary and kit) holds exactly
 * the rest; the meta records the rules.
 */
import assert from "node:assert/strict";
import { PASSWORD, s3backup } from "./faults/harness.ts";
import { runKit } from "./kit_runner.ts";
import { snapshot } from "./tree.ts";

const FILES = [
  "keep/a.txt",
  "keep/x.log",
  "keep/important.log",
  "app/node_modules/m/index.js",
  "app/src/main.ts",
  "tmp/t",
  "deep/tmp/kept",
  "cache/CACHEDIR.TAG",
  "cache/blob",
  "scratch/.nobackup",
  "scratch/s",
  "secret.key",
];

Deno.test("excludes: flags, exclude file and ini rules; -s -v says why; both readers restore the rest", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-excl-e2e-" });
  const src = `${dir}/src`, repo = `${dir}/repo`;
  try {
    await Deno.mkdir(repo);
    for (const f of FILES) {
      await Deno.mkdir(`${src}/${f.slice(0, f.lastIndexOf("/"))}`, { recursive: true })
        .catch(() => {});
      await Deno.writeTextFile(`${src}/${f}`, `content of ${f}\n`);
    }
    await Deno.writeTextFile(
      `${src}/cache/CACHEDIR.TAG`,
      "Signature: 8a477f597d28d172789f06886806bc55\n",
    );
    await Deno.writeTextFile(`${dir}/rules`, "# top-level tmp only\n/tmp/\n");
    await Deno.writeTextFile(
      `${dir}/s3backup.ini`,
      `[main]\npassword = ${PASSWORD}\n[backup]\nexclude = *.log\n  **/node_modules/\n` +
        "exclude = !important.log\nexclude_file = rules\nexclude_if_present = CACHEDIR.TAG\n",
    );
    await Deno.chmod(`${dir}/s3backup.ini`, 0o600);
    const args = [
      "backup",
      "-f",
      src,
      "-b",
      repo,
      "--config",
      `${dir}/s3backup.ini`,
      "--exclude",
      "/secret.key",
      "--exclude-if-present",
      ".nobackup",
    ];
    const sim = await s3backup([...args, "-s", "-v"]);
    assert.equal(sim.code, 0, sim.stderr);
    const said = sim.stdout.split("\n").filter((l) => l.startsWith("excluded: ")).sort();
    assert.deepEqual(said, [
      "excluded: app/node_modules (matches an exclude pattern)",
      "excluded: cache/ (contents left out: holds CACHEDIR.TAG)",
      "excluded: keep/x.log (matches an exclude pattern)",
      "excluded: scratch/ (contents left out: holds .nobackup)",
      "excluded: secret.key (matches an exclude pattern)",
      "excluded: tmp (matches an exclude pattern)",
    ]);
    assert.match(sim.stdout, /, 6 excluded/);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(repo)), [], "-s wrote nothing");

    const b = await s3backup([...args, "-c"]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /, 6 excluded/);

    // What the restore must hold: the tree without what was left out (tagged folders empty).
    const expected = `${dir}/expected`;
    await Deno.mkdir(expected);
    await new Deno.Command("cp", { args: ["-a", `${src}/.`, expected] }).output();
    for (
      const p of ["keep/x.log", "app/node_modules", "tmp", "secret.key", "cache/CACHEDIR.TAG"]
    ) await Deno.remove(`${expected}/${p}`, { recursive: true });
    for (const p of ["cache/blob", "scratch/.nobackup", "scratch/s"]) {
      await Deno.remove(`${expected}/${p}`);
    }
    const want = snapshot(expected).map((e) => ({ ...e, mtimeMs: 0 }));
    const got = (root: string) => snapshot(root).map((e) => ({ ...e, mtimeMs: 0 }));

    const r = await s3backup(["restore", "-b", repo, "-m", "latest", "-f", `${dir}/bin`, "-c"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(got(`${dir}/bin`), want);
    const k = await runKit("restore.sh", [repo, "latest", `${dir}/kit`], PASSWORD);
    assert.equal(k.code, 0, k.stderr);
    assert.deepEqual(got(`${dir}/kit`), want);

    const ls = await s3backup(["ls", "-b", repo, "-m", "latest", "--json"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.deepEqual(JSON.parse(ls.stdout).excludes, [
      "pattern *.log",
      "pattern **/node_modules/",
      "pattern !important.log",
      "pattern /tmp/",
      "pattern /secret.key",
      "if-present CACHEDIR.TAG",
      "if-present .nobackup",
    ]);
    const bad = await s3backup([...args, "--exclude-file", `${dir}/missing`, "-c"]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(
      bad.stderr,
      /^s3backup: Cannot read exclude file .*missing: No such file or directory\n$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
