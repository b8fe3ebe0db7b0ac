/**
 * The backed-up folder's own mode and mtime (the meta's `root` line, FORMAT.md §5) are given to
 * the restored folder by both readers, last; not by a restore of a few paths (`--only`).
 */
import assert from "node:assert/strict";
import { PASSWORD, s3backup } from "./faults/harness.ts";
import { runKit } from "./kit_runner.ts";

const WHEN = new Date("2021-03-04T05:06:07.500Z");

Deno.test("root: both readers restore the folder's own mode and mtime; --only leaves them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-root-" });
  try {
    const src = `${dir}/src`, repo = `${dir}/repo`;
    await Deno.mkdir(`${src}/sub`, { recursive: true });
    await Deno.mkdir(repo);
    await Deno.writeTextFile(`${src}/sub/f`, "f");
    await Deno.chmod(src, 0o750);
    await Deno.utime(src, WHEN, WHEN);
    const b = await s3backup(["backup", "-f", src, "-b", repo, "-c"]);
    assert.equal(b.code, 0, b.stderr);
    const attrs = (p: string) => {
      const st = Deno.statSync(p);
      return { mode: (st.mode ?? 0) & 0o7777, mtime: st.mtime!.getTime() };
    };
    const want = { mode: 0o750, mtime: WHEN.getTime() };

    const r = await s3backup(["restore", "-b", repo, "-m", "latest", "-f", `${dir}/out`, "-c"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(attrs(`${dir}/out`), want, "the binary");
    assert.equal(await Deno.readTextFile(`${dir}/out/sub/f`), "f");

    const k = await runKit("restore.sh", [repo, "latest", `${dir}/kit-out`], PASSWORD);
    assert.equal(k.code, 0, k.stderr);
    const kit = attrs(`${dir}/kit-out`);
    assert.equal(kit.mode, 0o750, "the kit");
    assert.equal(Math.floor(kit.mtime / 1000), Math.floor(WHEN.getTime() / 1000), "the kit");

    // A read-only folder: restored as such, and a second restore into it still works.
    await Deno.chmod(src, 0o555);
    await Deno.utime(src, WHEN, WHEN);
    const b2 = await s3backup(["backup", "-f", src, "-b", repo, "-c"]);
    assert.equal(b2.code, 0, b2.stderr);
    for (let i = 0; i < 2; i++) {
      const again = await s3backup([
        "restore",
        "-b",
        repo,
        "-m",
        "latest",
        "-f",
        `${dir}/ro`,
        "-c",
      ]);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(attrs(`${dir}/ro`).mode, 0o555);
    }
    await Deno.chmod(src, 0o750);

    const only = await s3backup([
      "restore",
      "-b",
      repo,
      "-m",
      "latest",
      "-f",
      `${dir}/part`,
      "--only",
      "sub/f",
      "-c",
    ]);
    assert.equal(only.code, 0, only.stderr);
    assert.notEqual(attrs(`${dir}/part`).mtime, WHEN.getTime(), "--only: the folder's own left");
    const ko = await runKit(
      "restore.sh",
      ["--only", "sub/f", repo, "latest", `${dir}/kpart`],
      PASSWORD,
    );
    assert.equal(ko.code, 0, ko.stderr);
    assert.notEqual(
      Math.floor(attrs(`${dir}/kpart`).mtime / 1000),
      Math.floor(WHEN.getTime() / 1000),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
