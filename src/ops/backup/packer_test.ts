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
