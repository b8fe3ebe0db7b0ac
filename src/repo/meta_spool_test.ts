import assert from "node:assert/strict";
import type { RecordedEntry } from "../format/meta.ts";
import { LocalStore } from "../store/local_store.ts";
import { readAll } from "../util/bytes.ts";
import { S3BackupError } from "../util/errors.ts";
import { MetaSpool, sweepDeadSpools } from "./meta_spool.ts";
import { createRepository, decryptMeta, prepareMetaKey } from "./repository.ts";

const te = new TextEncoder();

Deno.test("meta spool: entries stream into a 0600 temp file; finish gives the encrypted meta, as a stream", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const repo = await createRepository(new LocalStore(dir), te.encode("pw"), { settleMs: 0 });
    const header = { time: new Date(1_764_000_000_500), host: "h", source: "/s", name: "n" };
    const entries: RecordedEntry[] = [];
    for (let i = 0; i < 5000; i++) { // several batches
      entries.push({
        type: "f",
        path: `d/file ${i}\nnasty`,
        md5: i.toString(16).padStart(32, "0"),
        mode: 0o644,
        uid: 1,
        gid: null,
        size: i,
        mtimeMs: 1_700_000_000_000 + i,
        where: i % 2 ? "data.gz" : `${"a".repeat(32)}.gz`,
      });
    }
    const spool = await MetaSpool.open(repo, header, prepareMetaKey(repo));
    for (const e of entries) await spool.add(e);
    assert.equal((Deno.statSync(spool.path).mode ?? 0) & 0o777, 0o600);
    assert.equal((Deno.statSync(spool.dir).mode ?? 0) & 0o777, 0o700);
    const finished = await spool.finish();
    const body = await readAll(finished.open());
    assert.equal(body.length, finished.size);
    assert.deepEqual(await readAll(finished.open()), body, "opens again");
    await spool.discard();
    assert.throws(() => Deno.statSync(spool.dir), Deno.errors.NotFound, "temp folder removed");
    const { meta } = await decryptMeta(body, repo.password, repo.descriptor.keyIter, "m");
    assert.deepEqual(meta.entries, entries);
    assert.deepEqual(meta.header, { ...header, version: 3, wrappedKey: repo.wrappedKey });

    const dropped = await MetaSpool.open(repo, header);
    await dropped.add(entries[0]!);
    await dropped.discard();
    assert.throws(() => Deno.statSync(dropped.dir), Deno.errors.NotFound, "discard removes it");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("meta spool: no writable temporary folder is one clear error", async () => {
  const dir = await Deno.makeTempDir();
  const tmp = Deno.env.get("TMPDIR");
  try {
    const repo = await createRepository(new LocalStore(dir), te.encode("pw"), { settleMs: 0 });
    Deno.env.set("TMPDIR", `${dir}/missing`);
    const header = { time: new Date(0), host: "h", source: "/s", name: "n" };
    await assert.rejects(
      MetaSpool.open(repo, header),
      (err) => err instanceof S3BackupError && /temporary file for the meta/.test(err.message),
    );
  } finally {
    if (tmp === undefined) Deno.env.delete("TMPDIR");
    else Deno.env.set("TMPDIR", tmp);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("meta spool: the folders killed backups left are swept; a live process's are not", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const done = new Deno.Command("true").spawn();
    await done.status; // its pid now names no process
    const dead = `${parent}/s3backup-meta-${done.pid}-abc`;
    const live = `${parent}/s3backup-meta-1-abc`;
    const other = `${parent}/s3backup-meta-x`;
    for (const d of [dead, live, other]) {
      Deno.mkdirSync(d);
      Deno.writeTextFileSync(`${d}/meta`, "encrypted, partial");
    }
    sweepDeadSpools(parent);
    assert.throws(() => Deno.statSync(dead), Deno.errors.NotFound);
    assert.ok(Deno.statSync(live).isDirectory, "pid 1 runs");
    assert.ok(Deno.statSync(other).isDirectory, "not ours to judge");
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
