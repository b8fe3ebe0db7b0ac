/**
 * The compatibility promise (README): repositories written by older releases, kept in the tree
 * (test/fixtures/<name>/: the repository, how it was made, the tree it holds), restored in
 * every run by the binary, by today's kit and by the kit that release left in the bucket, byte
 * for byte with modes, mtimes and links; then upgraded (format 2 to 3), backed up to again, and
 * the old and the new backup restored by both readers.
 */
import assert from "node:assert/strict";
import { runKit } from "./kit_runner.ts";
import { s3backup } from "./faults/harness.ts";
import { type SnapEntry, snapshot } from "./tree.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

const FORMAT2 = {
  name: "format2-0.2.0",
  password: "format 2 fixture",
};

/** A copy of the fixture's repository (the readers take a lock in it) and what it holds. */
async function copyFixture(
  name: string,
  dir: string,
): Promise<{ repo: string; tree: SnapEntry[] }> {
  const repo = `${dir}/repo`;
  const cp = await new Deno.Command("cp", { args: ["-R", `${FIXTURES}${name}/repo`, repo] })
    .output();
  assert.equal(cp.code, 0, new TextDecoder().decode(cp.stderr));
  await Deno.mkdir(`${repo}/locks`, { recursive: true }); // git keeps no empty folder
  const tree = JSON.parse(await Deno.readTextFile(`${FIXTURES}${name}/tree.json`));
  return { repo, tree };
}

Deno.test("compat: a format 2 repository of 0.2.0, restored by the binary, today's kit and its own kit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-compat-" });
  try {
    const { repo, tree } = await copyFixture(FORMAT2.name, dir);
    const env = { S3BACKUP_PASSWORD: FORMAT2.password };
    const r = await s3backup(["restore", "-b", repo, "-m", "latest", "-f", `${dir}/bin`, "-c"], {
      env,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(snapshot(`${dir}/bin`), tree, "the binary");
    const k = await runKit("restore.sh", [repo, "latest", `${dir}/kit`], FORMAT2.password);
    assert.equal(k.code, 0, k.stderr);
    assert.deepEqual(snapshot(`${dir}/kit`), tree, "today's kit");
    const own = await runKit(
      `${repo}/restore-kit/restore.sh`,
      [repo, "latest", `${dir}/own`],
      FORMAT2.password,
    );
    assert.equal(own.code, 0, own.stderr);
    assert.deepEqual(snapshot(`${dir}/own`), tree, "0.2.0's kit");
    const l = await s3backup(["list", "-b", repo, "--tsv"], { env });
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /^meta_fixture_20261205T080316Z\tfixture\t/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compat: upgrade of that repository, then a backup; the old and the new backup restored by both readers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-compat-" });
  try {
    const { repo, tree } = await copyFixture(FORMAT2.name, dir);
    const env = { S3BACKUP_PASSWORD: FORMAT2.password };
    const up = await s3backup(["upgrade", "-b", repo], { env });
    assert.equal(up.code, 0, up.stderr);
    assert.match(await Deno.readTextFile(`${repo}/s3backup.conf`), /format\s*=\s*3/);
    await Deno.mkdir(`${dir}/src`);
    await Deno.writeTextFile(`${dir}/src/new.txt`, "written after the upgrade\n".repeat(100));
    await Deno.writeTextFile(`${dir}/src/a.txt`, "hello, format 2\n"); // a content 0.2.0 stored
    const b = await s3backup(["backup", "-f", `${dir}/src`, "-b", repo, "-n", "after", "-c"], {
      env,
    });
    assert.equal(b.code, 0, b.stderr);
    const now = snapshot(`${dir}/src`);
    for (const [name, want] of [["fixture", tree], ["after", now]] as const) {
      const r = await s3backup(
        ["restore", "-b", repo, "-n", name, "-m", "latest", "-f", `${dir}/bin-${name}`, "-c"],
        { env },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(snapshot(`${dir}/bin-${name}`), want, `the binary: ${name}`);
      const k = await runKit("restore.sh", [repo, name, `${dir}/kit-${name}`], FORMAT2.password);
      assert.equal(k.code, 0, k.stderr);
      assert.deepEqual(snapshot(`${dir}/kit-${name}`), want, `the kit: ${name}`);
    }
    const v = await s3backup(["verify", "-b", repo, "--read-data"], { env });
    assert.equal(v.code, 0, v.stdout + v.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
