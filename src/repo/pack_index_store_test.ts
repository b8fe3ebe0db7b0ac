/**
 * The index cache: a cached copy cut short (a full disk, a crash) or damaged is read from the
 * store instead and cached again whole; a cache that cannot be written costs only a GET.
 */
import assert from "node:assert/strict";
import { INDEX_PREFIX } from "../format/layout.ts";
import type { PackIndex } from "../format/pack_index.ts";
import { LocalStore } from "../store/local_store.ts";
import { CorruptDataError } from "../util/errors.ts";
import { readIndex, writeIndex } from "./pack_index_store.ts";
import { createRepository } from "./repository.ts";

const INDEX: PackIndex = {
  entries: [{
    md5: "0123456789abcdef0123456789abcdef",
    where: "a".repeat(32),
    stored: 5,
    plain: 9,
  }],
  packs: new Map([["a".repeat(32), 4096]]),
};

Deno.test("pack_index_store: a cached index cut short or damaged is read from the store and cached again whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-index-cache-" });
  try {
    await Deno.mkdir(`${dir}/repo`);
    const store = new LocalStore(`${dir}/repo`);
    const repo = await createRepository(store, new TextEncoder().encode("pw"));
    const name = await writeIndex(repo, INDEX, `${dir}/cache`);
    const cached = `${dir}/cache/index/${repo.descriptor.id}/${name.slice(INDEX_PREFIX.length)}`;
    const whole = Deno.readFileSync(cached);
    assert.deepEqual(whole, Deno.readFileSync(`${dir}/repo/${name}`));
    for (const bad of [whole.subarray(0, 32), whole.map((b, i) => i === 40 ? b ^ 1 : b)]) {
      Deno.writeFileSync(cached, bad);
      assert.deepEqual(await readIndex(repo, name, `${dir}/cache`), INDEX);
      assert.deepEqual(Deno.readFileSync(cached), whole);
    }
    // No temporary file left beside it.
    assert.deepEqual([...Deno.readDirSync(`${dir}/cache/index/${repo.descriptor.id}`)].length, 1);
    // A cache folder that cannot be made: read all the same.
    Deno.writeTextFileSync(`${dir}/not-a-dir`, "");
    assert.deepEqual(await readIndex(repo, name, `${dir}/not-a-dir`), INDEX);
    // The store's copy damaged, the cache gone: that is corrupt, named.
    Deno.removeSync(cached);
    Deno.writeFileSync(`${dir}/repo/${name}`, whole.subarray(0, 32));
    await assert.rejects(readIndex(repo, name, `${dir}/cache`), (e) => {
      assert.ok(e instanceof CorruptDataError);
      assert.match(e.message, new RegExp(`^Cannot read ${name}: `));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
