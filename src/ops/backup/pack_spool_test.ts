import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { decryptSync, SyncEncryptor } from "../../format/container.ts";
import { readAll } from "../../util/bytes.ts";
import { S3BackupError } from "../../util/errors.ts";
import { PackSpool } from "./pack_spool.ts";

const KEY = new TextEncoder().encode("a data key");
const POSIX = Deno.build.os !== "windows";

Deno.test("pack spool: a pack's runs encrypted into a 0600 file of a 0700 folder, read back whole, then gone", async () => {
  const parent = Deno.makeTempDirSync();
  try {
    // A folder a killed run left (no such process), and one of a live process (ours): the first
    // is swept, the other kept.
    const dead = `${parent}/s3backup-packs-4194000-dead`;
    const live = `${parent}/s3backup-packs-${Deno.ppid}-live`;
    Deno.mkdirSync(dead);
    Deno.mkdirSync(live);
    const spool = new PackSpool(parent);
    const pack = spool.open("0".repeat(32), new SyncEncryptor(KEY, 1));
    const runs = [new Uint8Array(70_000).fill(7), new TextEncoder().encode("a second run")];
    for (const r of runs) pack.write(r);
    const md5 = pack.close();
    const body = await readAll(await pack.body());
    assert.equal(body.length, pack.size);
    assert.equal(createHash("md5").update(body).digest("base64"), md5);
    assert.deepEqual(decryptSync(body, KEY, 1), new Uint8Array([...runs[0]!, ...runs[1]!]));
    const dirs = [...Deno.readDirSync(parent)].map((e) => e.name).sort();
    assert.equal(dirs.length, 2, `${dirs}`);
    assert.ok(!dirs.includes("s3backup-packs-4194000-dead"), "the dead run's folder swept");
    if (POSIX) {
      assert.equal(Deno.statSync(pack.path).mode! & 0o777, 0o600);
      assert.equal(
        Deno.statSync(pack.path.slice(0, pack.path.lastIndexOf("/"))).mode! & 0o777,
        0o700,
      );
    }
    pack.remove();
    assert.throws(() => Deno.statSync(pack.path), Deno.errors.NotFound);
    spool.remove();
    assert.deepEqual([...Deno.readDirSync(parent)].map((e) => e.name), [
      live.slice(parent.length + 1),
    ]);
  } finally {
    Deno.removeSync(parent, { recursive: true });
  }
});

Deno.test("pack spool: a cache folder that cannot be written falls back to the temporary folder", () => {
  const parent = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${parent}/file`, "not a folder");
    const spool = new PackSpool(`${parent}/file/cache`);
    const pack = spool.open("1".repeat(32), new SyncEncryptor(KEY, 1));
    assert.ok(!pack.path.startsWith(parent), pack.path);
    pack.remove();
    spool.remove();
  } finally {
    Deno.removeSync(parent, { recursive: true });
  }
});

Deno.test("pack spool: neither the cache folder nor TMPDIR can hold it: one line naming TMPDIR", () => {
  const parent = Deno.makeTempDirSync();
  const tmpdir = Deno.env.get("TMPDIR");
  try {
    Deno.writeTextFileSync(`${parent}/file`, "not a folder");
    Deno.env.set("TMPDIR", `${parent}/file/tmp`);
    const spool = new PackSpool(`${parent}/file/cache`);
    assert.throws(
      () => spool.open("1".repeat(32), new SyncEncryptor(KEY, 1)),
      (err: unknown) =>
        err instanceof S3BackupError && !err.message.includes("\n") &&
        err.message.startsWith(`Cannot write a pack to ${parent}/file/tmp (`) &&
        err.message.includes("set TMPDIR or --cache-dir elsewhere"),
    );
    spool.remove(); // nothing made, nothing to remove
  } finally {
    if (tmpdir === undefined) Deno.env.delete("TMPDIR");
    else Deno.env.set("TMPDIR", tmpdir);
    Deno.removeSync(parent, { recursive: true });
  }
});
