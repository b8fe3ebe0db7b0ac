/**
 * A restore into an empty target reads ahead: the next pack downloads while one is read (its
 * first pack's download waits here until the second one is asked for). Into a target that
 * holds files already (a resumed restore), a pack is fetched only when one of its contents is
 * needed: the one pack that holds the only missing file, and no other.
 */
import assert from "node:assert/strict";
import { backup } from "../src/ops/backup/backup.ts";
import { restore } from "../src/ops/restore/restore.ts";
import { openBackup } from "../src/repo/open_backup.ts";
import { createRepository } from "../src/repo/repository.ts";
import { LocalStore } from "../src/store/local_store.ts";
import { StoreWrapper } from "./store_wrapper.ts";

const PASSWORD = new TextEncoder().encode("pw");

/** The packs loaded, in order; with `stallFirst`, the first waits (10 s at most) for a second. */
class PackLoads extends StoreWrapper {
  loads: string[] = [];
  stallFirst = false;
  waitedOut = false;
  #second = Promise.withResolvers<void>();

  override async load(name: string) {
    if (name.startsWith("packs/")) {
      this.loads.push(name);
      if (this.loads.length === 2) this.#second.resolve();
      if (this.loads.length === 1 && this.stallFirst) {
        const t = setTimeout(() => {
          this.waitedOut = true;
          this.#second.resolve();
        }, 10_000);
        await this.#second.promise;
        clearTimeout(t);
      }
    }
    return await this.inner.load(name);
  }
}

/** 60 distinct files of 500 bytes backed up in packs of 8 KiB (about 8 packs). */
async function packedBackup(dir: string): Promise<LocalStore> {
  const src = `${dir}/src`;
  await Deno.mkdir(src);
  for (let i = 0; i < 60; i++) {
    await Deno.writeFile(`${src}/f${i}`, new Uint8Array(500).map((_, k) => (i * 31 + k * 7) & 255));
  }
  const store = new LocalStore(`${dir}/bucket`);
  await Deno.mkdir(`${dir}/bucket`);
  const repo = await createRepository(store, PASSWORD);
  await backup(store, repo, {
    source: src,
    name: "t",
    host: "h",
    simulate: false,
    kit: new Map(),
    packSize: 8192,
  });
  return store;
}

async function restoreInto(store: PackLoads, target: string) {
  const { repo, meta, metaKey } = await openBackup(store, PASSWORD, "latest");
  return await restore(repo, meta, { target, metaKey, simulate: false, overwrite: false });
}

Deno.test("restore: into an empty target the next pack downloads meanwhile; a resume fetches only what it needs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-read-ahead-" });
  try {
    const inner = await packedBackup(dir);
    const packs = (await Array.fromAsync(inner.list("packs/"))).length;
    assert.ok(packs >= 4, `${packs} packs`);

    const ahead = new PackLoads(inner);
    ahead.stallFirst = true;
    const target = `${dir}/target`;
    const full = await restoreInto(ahead, target);
    assert.equal(full.failed, 0);
    assert.ok(!ahead.waitedOut, "the second pack was asked for while the first was downloading");
    assert.equal(new Set(ahead.loads).size, packs, "each pack once");
    assert.equal(ahead.loads.length, packs, "each pack once");

    // A file of the pack read first (the first by name), which has packs after it to read ahead.
    const { meta } = await openBackup(inner, PASSWORD, "latest");
    const first = (await Array.fromAsync(inner.list("packs/"))).map((o) => o.name).sort()[0]!;
    const gone = meta.entries.find((e) => e.type === "f" && `packs/${e.where}` === first)!.path;
    await Deno.remove(`${target}/${gone}`);
    const resume = new PackLoads(inner);
    const again = await restoreInto(resume, target);
    assert.equal(again.failed, 0);
    assert.deepEqual(resume.loads, [first], `only the pack of ${gone}`);
    assert.deepEqual(
      await Deno.readFile(`${target}/${gone}`),
      await Deno.readFile(`${dir}/src/${gone}`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
