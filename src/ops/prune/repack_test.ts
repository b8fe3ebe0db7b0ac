import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  buildPack,
  openPack,
  packMember,
  packMembers,
  readPack,
  sealPack,
} from "../../format/pack.ts";
import type { IndexEntry, PackIndex } from "../../format/pack_index.ts";
import { createRepository, decryptSmallObject, encryptSmallObject } from "../../repo/repository.ts";
import { LocalStore } from "../../store/local_store.ts";
import type { ObjectInfo } from "../../store/store.ts";
import { readAll } from "../../util/bytes.ts";
import { CorruptDataError } from "../../util/errors.ts";
import { choosePacks, packUses, rewritePack } from "./repack.ts";

const te = new TextEncoder();
const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");
const ID = "0123456789abcdef0123456789abcdef";
const KEY = `packs/${ID}`;

/** Contents a (1,000 random bytes), b (text), c (3 bytes) and their members. */
function fixture() {
  const random = crypto.getRandomValues(new Uint8Array(1000));
  const contents = [random, te.encode("text that repeats\n".repeat(50)), te.encode("abc")];
  const members = contents.map((c) => packMember(md5(c), c));
  const entries: IndexEntry[] = members.map((m, i) => ({
    md5: md5(contents[i]!),
    where: ID,
    stored: m.bytes.length,
    plain: contents[i]!.length,
  }));
  return { contents, members, entries, tar: buildPack(members), sealed: sealPack(members) };
}

const info = (name: string, size: number): ObjectInfo => ({ name, size, mtime: new Date(0) });

Deno.test("repack: what a pack's indexes and the kept metas say it holds and uses", () => {
  const f = fixture();
  const size = 4096;
  const index: PackIndex = { entries: f.entries, packs: new Map([[ID, size]]) };
  const needed = new Map([[KEY, new Set([f.members[1]!.name])]]);
  const [use] = packUses([info(KEY, size), info("packs/other", 99)], [index], needed);
  assert.equal(use!.described, true);
  assert.equal(use!.unused, 512 + 1024 + 512 + 512, "a and c: a header and padded bytes each");
  assert.equal(use!.used, 512 + 1024, "b: 900 bytes of text");
  // A pack of another size than its index says (repacked since): that index says nothing of it.
  const [cut] = packUses([info(KEY, size - 16)], [index], needed);
  assert.equal(cut!.described, false);
  // An old index (before a repack) beside the new one: only the one of the listed size counts.
  const old: PackIndex = { entries: f.entries, packs: new Map([[ID, size + 512]]) };
  const now: PackIndex = { entries: f.entries.slice(1, 2), packs: new Map([[ID, size]]) };
  const [both] = packUses([info(KEY, size)], [old, now], needed);
  assert.equal(both!.unused, 0, "what the new index says");
  // One a kept meta names a member of that no index lists (a lost index): not described.
  const lost = new Map([[KEY, new Set([f.members[1]!.name, "f".repeat(32)])]]);
  assert.equal(packUses([info(KEY, size)], [index], lost)[0]!.described, false);
});

Deno.test("repack: --max-unused picks the emptiest packs until the rest is within it", () => {
  const use = (key: string, unused: number, used: number) => ({
    key,
    size: unused + used,
    described: true,
    unused,
    used,
    needed: new Set<string>(),
  });
  const uses = [use("p1", 100, 900), use("p2", 800, 200), use("p3", 300, 700), use("p4", 0, 1000)];
  const all = (_key: string) => true;
  const keys = (max: Parameters<typeof choosePacks>[1], may = all) =>
    choosePacks(uses, max, may).map((u) => u.key);
  // 1,200 unused of 2,800 used: 5% (140) takes p2 and p3 (100 left); 30% (840) p2 alone.
  assert.deepEqual(keys({ percent: 5 }), ["p2", "p3"]);
  assert.deepEqual(keys({ percent: 30 }), ["p2"]);
  assert.deepEqual(keys({ bytes: 400 }), ["p2"]);
  assert.deepEqual(keys({ bytes: 1200 }), []);
  assert.deepEqual(keys(null), [], "unlimited never repacks");
  assert.deepEqual(keys({ percent: 0 }, (k) => k !== "p2"), ["p3", "p1"], "too young: skipped");
});

async function repoWithPack(sealed: Uint8Array) {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-repack-" });
  const store = new LocalStore(dir);
  const repo = await createRepository(store, te.encode("pw"));
  await store.save(KEY, await encryptSmallObject(repo, sealed));
  const load = async () =>
    openPack(await decryptSmallObject(repo, await readAll(await store.load(KEY))));
  return { dir, store, repo, load };
}

Deno.test("repack: a pack rewritten keeps exactly the members asked for, same bytes, checked", async () => {
  const f = fixture();
  const r = await repoWithPack(f.sealed);
  try {
    const keep = new Set([f.members[0]!.name, f.members[2]!.name]);
    const out = await rewritePack(r.repo, KEY, keep, undefined);
    assert.ok(out.after < out.before);
    const back = [...readPack(await r.load())];
    assert.deepEqual(back.map((c) => c.content), [f.contents[0], f.contents[2]]);
    assert.deepEqual(out.entries, [f.entries[0], f.entries[2]], "the new pack's index entries");
    // Re-indexing reads every member and saves nothing.
    const again = await rewritePack(r.repo, KEY, null, undefined);
    assert.equal(again.after, again.before);
    assert.deepEqual(again.entries, [f.entries[0], f.entries[2]]);
  } finally {
    await Deno.remove(r.dir, { recursive: true });
  }
});

Deno.test("repack: a kept member missing or damaged leaves the pack as it was", async () => {
  const f = fixture();
  const bad = f.tar.slice();
  bad[512 + 10]! ^= 1; // a byte of a's content: its MD5 differs
  const r = await repoWithPack(sealPack([...packMembers(bad)]));
  try {
    const before = await r.load();
    await assert.rejects(
      rewritePack(r.repo, KEY, new Set([f.members[0]!.name]), undefined),
      (e) => e instanceof CorruptDataError && /Cannot repack packs\/0123.*MD5/.test(e.message),
    );
    await assert.rejects(
      rewritePack(r.repo, KEY, new Set([f.members[1]!.name, "f".repeat(32)]), undefined),
      (e) => e instanceof CorruptDataError && /does not hold f{32}/.test(e.message),
    );
    assert.deepEqual(await r.load(), before, "untouched");
  } finally {
    await Deno.remove(r.dir, { recursive: true });
  }
});
