import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createRepository } from "../../repo/repository.ts";
import { LocalStore } from "../../store/local_store.ts";
import { Packer } from "./packer.ts";

const te = new TextEncoder();

Deno.test("packer: an index object each indexEntries contents, each after its packs; all found again", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-packer-" });
  try {
    await Deno.mkdir(`${dir}/bucket`);
    const store = new LocalStore(`${dir}/bucket`);
    const repo = await createRepository(store, te.encode("pw"), { format: 3 });
    const opts = { cacheRoot: null, saveOptions: {}, simulate: false, indexEntries: 3 };
    // Packs of 8 KiB: contents of 2,000 bytes (small: under a quarter of it) fill one every 4.
    const p = await Packer.open(store, repo, { ...opts, packSize: 8 * 1024 });
    const md5s: string[] = [];
    for (let i = 0; i < 10; i++) {
      const data = te.encode(String(i).repeat(2000));
      const md5 = createHash("md5").update(data).digest("hex");
      md5s.push(md5);
      await p.small(md5, data);
    }
    await p.finish();
    const indexes = [...Deno.readDirSync(`${dir}/bucket/index`)];
    const packs = [...Deno.readDirSync(`${dir}/bucket/packs`)];
    assert.ok(indexes.length >= 3, `${indexes.length} index objects for 10 contents`);
    assert.ok(packs.length >= 3, `${packs.length} packs`);
    const again = await Packer.open(store, repo, opts);
    assert.equal(again.known, 10);
    for (const m of md5s) assert.match(again.whereOf(m, 2000) ?? "", /^[0-9a-f]{32}$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("packer: readOnce spools a content that gzips and stores it on commit; not one of a stored size, nor one that does not gzip", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-packer-" });
  try {
    await Deno.mkdir(`${dir}/bucket`);
    const store = new LocalStore(`${dir}/bucket`);
    const repo = await createRepository(store, te.encode("pw"), { format: 3 });
    const opts = { cacheRoot: `${dir}/cache`, saveOptions: {}, simulate: false };
    const log = te.encode("GET /index.html 200\n".repeat(300_000)); // 6 MB, gzips
    const md5 = createHash("md5").update(log).digest("hex");
    const spooled = () => {
      const out: string[] = [];
      for (const d of Deno.readDirSync(`${dir}/cache`)) {
        for (const f of Deno.readDirSync(`${dir}/cache/${d.name}`)) out.push(f.name);
      }
      return out;
    };
    const p = await Packer.open(store, repo, opts);
    try {
      // Read, hashed and spooled; discarded: nothing stored, the file gone.
      const dropped = (await p.readOnce(log.length, ReadableStream.from([log])))!;
      assert.equal(dropped.md5, md5);
      assert.equal(spooled().length, 1);
      dropped.discard();
      assert.deepEqual(spooled(), []);
      // Committed: data/<md5>.gz, the file gone.
      const once = (await p.readOnce(log.length, ReadableStream.from([log])))!;
      assert.deepEqual(await once.commit(), { where: "data.gz", uploaded: true });
      assert.deepEqual(spooled(), []);
      assert.deepEqual([...Deno.readDirSync(`${dir}/bucket/data`)].map((e) => e.name), [
        `${md5}.gz`,
      ]);
      // A content of a size stored already may be that one: hashed first instead (null).
      const same = te.encode("x".repeat(log.length));
      assert.equal(await p.readOnce(same.length, ReadableStream.from([same])), null);
      // One that does not gzip (its first 64 KiB: random bytes) is streamed as before (null).
      const noise = new Uint8Array(log.length + 1);
      for (let i = 0; i < noise.length; i += 65_536) {
        crypto.getRandomValues(noise.subarray(i, i + 65_536));
      }
      assert.equal(await p.readOnce(noise.length, ReadableStream.from([noise])), null);
      await p.finish();
    } finally {
      p.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
