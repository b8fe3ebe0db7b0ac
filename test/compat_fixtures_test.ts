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

/** Format 3 as its first release writes it: packs, `data/` objects, an index, a hard link. */
const FORMAT3 = {
  name: "format3-67bc1dc",
  password: "format 3 fixture",
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

/** The inode groups of hard links below `root` (paths of one file, sorted), and the root's own facts. */
function linksAndRoot(root: string): { links: string[][]; mode: number; mtime: number } {
  const byIno = new Map<number, string[]>();
  for (const e of snapshot(root)) {
    if (e.type !== "f") continue;
    const st = Deno.lstatSync(`${root}/${e.path}`);
    if (st.nlink === 1) continue;
    byIno.set(st.ino!, [...byIno.get(st.ino!) ?? [], e.path]);
  }
  const st = Deno.statSync(root);
  return {
    links: [...byIno.values()].map((g) => g.sort()),
    mode: st.mode! & 0o7777,
    mtime: st.mtime!.getTime(),
  };
}

Deno.test("compat: a format 3 repository of its first release (packs, data/, an index, a hard link), restored by the binary, today's kit and its own kit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-compat-" });
  try {
    const { repo, tree } = await copyFixture(FORMAT3.name, dir);
    const env = { S3BACKUP_PASSWORD: FORMAT3.password };
    // The backed-up folder: 0750, mtime 1700000100; a.txt and "sub dir/hard link" one file.
    const want = { links: [["a.txt", "sub dir/hard link"]], mode: 0o750, mtime: 1700000100000 };
    const r = await s3backup(["restore", "-b", repo, "-m", "latest", "-f", `${dir}/bin`, "-c"], {
      env,
    });
    assert.equal(r.code, 0, r.stderr);
    const readers: [string, string][] = [
      ["today's kit", "restore.sh"],
      ["its own kit", `${repo}/restore-kit/restore.sh`],
    ];
    for (const [who, script] of readers) {
      const k = await runKit(script, [repo, "latest", `${dir}/${who}`], FORMAT3.password);
      assert.equal(k.code, 0, `${who}: ${k.stderr}`);
    }
    for (const who of ["bin", ...readers.map(([w]) => w)]) {
      assert.deepEqual(snapshot(`${dir}/${who}`), tree, who);
      assert.deepEqual(linksAndRoot(`${dir}/${who}`), want, who);
    }
    const v = await s3backup(["verify", "-b", repo, "--read-data"], { env });
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const l = await s3backup(["list", "-b", repo, "--tsv"], { env });
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /^meta_fixture_20261205T162229Z\tfixture\t/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
