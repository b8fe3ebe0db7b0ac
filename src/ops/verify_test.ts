/**
 * verify against the local store and each S3 server of test/s3_env.ts (moto; Ceph with
 * WITH_CEPH=1).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as path from "node:path";
import { backup } from "./backup/backup.ts";
import { newDataKey, wrapDataKey } from "../format/key_wrap.ts";
import {
  createRepository,
  encryptSmallObject,
  type Repository,
  saveMeta,
} from "../repo/repository.ts";
import { LocalStore } from "../store/local_store.ts";
import type { Store } from "../store/store.ts";
import { readAll } from "../util/bytes.ts";
import { storeBackends } from "../../test/s3_env.ts";
import { sampleIndexes, verify, type VerifyProblem } from "./verify.ts";

const te = new TextEncoder();
const PW = te.encode("verify password");

function md5(s: string | Uint8Array): string {
  return createHash("md5").update(s).digest("hex");
}

const backends = () => storeBackends("verify");

/**
 * A repository with two backups of `docs`: both hold shared.txt, the first one.txt, the second
 * two.txt and sub/big.bin (200 KiB).
 */
/** Two backups of a format 2 repository (one object per content: names to remove, corrupt). */
async function fixture(store: Store) {
  const repo = await createRepository(store, PW, { format: 2 });
  const src = await Deno.makeTempDir({ prefix: "s3backup-verify-src-" });
  try {
    await Deno.writeTextFile(path.join(src, "shared.txt"), "shared content");
    await Deno.writeTextFile(path.join(src, "one.txt"), "only in the first");
    const opts = { source: src, name: "docs", host: "h", simulate: false, kit: new Map() };
    const b1 = await backup(store, repo, { ...opts, now: () => new Date("2026-01-01T00:00:00Z") });
    await Deno.remove(path.join(src, "one.txt"));
    await Deno.writeTextFile(path.join(src, "two.txt"), "only in the second");
    await Deno.mkdir(path.join(src, "sub"));
    const big = new Uint8Array(200 * 1024);
    for (let i = 0; i < big.length; i += 65536) {
      crypto.getRandomValues(big.subarray(i, i + 65536));
    }
    await Deno.writeFile(path.join(src, "sub", "big.bin"), big);
    const b2 = await backup(store, repo, { ...opts, now: () => new Date("2026-01-02T00:00:00Z") });
    return {
      repo,
      metas: [b1.metaKey!, b2.metaKey!],
      shared: md5("shared content"),
      one: md5("only in the first"),
      two: md5("only in the second"),
      big: md5(big),
    };
  } finally {
    await Deno.remove(src, { recursive: true });
  }
}

function collect() {
  const problems: VerifyProblem[] = [];
  const onEvent = (e: { type: string; problem?: VerifyProblem }) => {
    if (e.type === "problem") problems.push(e.problem!);
  };
  const show = () =>
    problems.map((p) => `${p.kind} ${p.meta} ${p.path ?? "-"} ${p.object ?? "-"}`).sort();
  return { problems, onEvent, show };
}

Deno.test("verify: sampling", () => {
  let seed = 1;
  const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const s = sampleIndexes(10, 4, rnd);
  assert.equal(s.length, 4);
  assert.equal(new Set(s).size, 4);
  assert.ok(s.every((i) => i >= 0 && i < 10));
  assert.deepEqual(sampleIndexes(3, 5, rnd).sort(), [0, 1, 2]);
});

for (const b of backends()) {
  Deno.test({
    name: `verify [${b.label}]: a whole repository, then a missing object, then a corrupt one`,
    sanitizeOps: b.sanitize,
    sanitizeResources: b.sanitize,
    fn: () =>
      b.run(async (store) => {
        const f = await fixture(store);
        let c = collect();
        let s = await verify(f.repo, {}, c.onEvent);
        assert.deepEqual(c.show(), []);
        assert.equal(s.metas, 2);
        assert.equal(s.files, 5);
        assert.equal(s.objects, 4);
        assert.equal(s.problems, 0);
        assert.equal(s.objectsRead, 0);

        c = collect();
        s = await verify(f.repo, { readData: true }, c.onEvent);
        assert.deepEqual(c.show(), []);
        assert.equal(s.objectsRead, 4); // each distinct object once
        assert.ok(s.bytesRead > 200 * 1024);

        c = collect();
        s = await verify(f.repo, { readData: true, subset: 0.5 }, c.onEvent);
        assert.equal(s.objectsRead, 2);
        s = await verify(f.repo, { readData: true, subset: 0.01 }, c.onEvent);
        assert.equal(s.objectsRead, 1); // at least one
        assert.deepEqual(c.show(), []);

        // -m: only the latest backup.
        s = await verify(f.repo, { meta: "latest" });
        assert.equal(s.metas, 1);
        assert.equal(s.files, 3);

        // A missing object shared by both backups: reported by meta and path.
        await store.remove([f.shared]);
        c = collect();
        s = await verify(f.repo, {}, c.onEvent);
        assert.deepEqual(c.show(), [
          `missing ${f.metas[0]} shared.txt ${f.shared}`,
          `missing ${f.metas[1]} shared.txt ${f.shared}`,
        ]);
        assert.equal(s.missing, 1);
        assert.deepEqual(s.damagedMetas, f.metas);
        s = await verify(f.repo, { meta: f.metas[0] });
        assert.equal(s.problems, 1);

        // A corrupt object of the right size: only --read-data finds it.
        await store.save(f.two, await encryptSmallObject(f.repo, te.encode("ONLY IN THE SECOND")));
        // A ciphertext byte flipped: decryption (padding) or the MD5 fails.
        const big = await readAll(await store.load(f.big));
        big[big.length - 20]! ^= 0xff;
        await store.save(f.big, big);
        c = collect();
        s = await verify(f.repo, {}, c.onEvent);
        assert.equal(s.problems, 2);
        c = collect();
        s = await verify(f.repo, { readData: true }, c.onEvent);
        assert.deepEqual(c.show(), [
          `corrupt ${f.metas[1]} sub/big.bin ${f.big}`,
          `corrupt ${f.metas[1]} two.txt ${f.two}`,
          `missing ${f.metas[0]} shared.txt ${f.shared}`,
          `missing ${f.metas[1]} shared.txt ${f.shared}`,
        ]);
        assert.equal(s.corrupt, 2);
        assert.match(
          c.problems.find((p) => p.object === f.two)!.message,
          /^corrupt: the MD5 of its content is /,
        );
        assert.equal(s.objectsRead, 3); // the missing one is not read
      }),
  });

  Deno.test({
    name: `verify [${b.label}]: truncated objects, metas that do not open, foreign keys`,
    sanitizeOps: b.sanitize,
    sanitizeResources: b.sanitize,
    fn: () =>
      b.run(async (store) => {
        const f = await fixture(store);
        // Truncated: found by size, without reading.
        const one = await readAll(await store.load(f.one));
        await store.save(f.one, one.subarray(0, 16));
        // A meta that does not open.
        await store.save(f.metas[0]!, one);
        let c = collect();
        let s = await verify(f.repo, {}, c.onEvent);
        assert.deepEqual(c.show(), [`meta ${f.metas[0]} - -`]);
        assert.equal(s.badMetas, 1);
        // Put the first meta back by hand, referencing the truncated object.
        const header = { time: new Date("2026-01-01T00:00:00Z"), host: "h", source: "/x" };
        const entry = {
          type: "f" as const,
          path: "one.txt",
          md5: f.one,
          mode: 0o644,
          uid: 0,
          gid: 0,
          size: "only in the first".length,
          mtimeMs: 0,
        };
        await saveMeta(f.repo, f.metas[0]!, { ...header, name: "docs" }, [entry]);
        // A meta whose wrapped key holds another data key.
        const foreign: Repository = {
          ...f.repo,
          wrappedKey: await wrapDataKey(newDataKey(), PW, f.repo.descriptor.keyIter),
        };
        await saveMeta(foreign, "meta_other_20260103T000000Z", { ...header, name: "other" }, []);
        c = collect();
        s = await verify(f.repo, {}, c.onEvent);
        assert.deepEqual(c.show(), [
          `key meta_other_20260103T000000Z - -`,
          `size ${f.metas[0]} one.txt ${f.one}`,
        ]);
        assert.equal(s.badSize, 1);
        assert.equal(s.metas, 3);
        assert.match(c.problems.find((p) => p.kind === "size")!.message, /object is 16 bytes/);
      }),
  });
}

Deno.test("verify -m latest -n NAME checks the latest backup of that name only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-verify-name-" });
  try {
    const store = new LocalStore(dir);
    const f = await fixture(store);
    const src = await Deno.makeTempDir({ prefix: "s3backup-verify-src-" });
    await Deno.writeTextFile(path.join(src, "x"), "x");
    const other = await backup(store, f.repo, {
      source: src,
      name: "other",
      host: "h",
      simulate: false,
      kit: new Map(),
      now: () => new Date("2026-01-03T00:00:00Z"),
    });
    await Deno.remove(src, { recursive: true });
    const seen: string[] = [];
    const onEvent = (e: { type: string; key?: string }) => {
      if (e.type === "meta") seen.push(e.key!);
    };
    await verify(f.repo, { meta: "latest" }, onEvent);
    await verify(f.repo, { meta: "latest", name: "docs" }, onEvent);
    assert.deepEqual(seen, [other.metaKey!, f.metas[1]!]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("verify [local, format 3]: a damaged pack member names its own paths; a missing pack all of its", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-verify3-" });
  try {
    const store = new LocalStore(`${dir}/bucket`);
    Deno.mkdirSync(`${dir}/bucket`);
    const repo = await createRepository(store, PW);
    Deno.mkdirSync(`${dir}/src`);
    for (let i = 0; i < 60; i++) { // 3.5 KB each in the tar: a pack of 4 gzip members
      Deno.writeTextFileSync(`${dir}/src/f${i}`, `file ${i} `.repeat(400));
    }
    const big = new Uint8Array(6 * 1024 * 1024).fill(65); // a data/ object, gzipped
    Deno.writeFileSync(`${dir}/src/big`, big);
    const b = await backup(store, repo, {
      source: `${dir}/src`,
      name: "n",
      host: "h",
      simulate: false,
      kit: new Map(),
    });
    let c = collect();
    let s = await verify(repo, { readData: true }, c.onEvent);
    assert.deepEqual(c.show(), []);
    assert.equal(s.objects, 2, "one pack, one data/ object");
    assert.equal(s.objectsRead, 2);
    const pack = [...Deno.readDirSync(`${dir}/bucket/packs`)][0]!.name;
    const path3 = `${dir}/bucket/packs/${pack}`;
    // Flip a byte in the middle of the pack: the files of one of its gzip members are damaged,
    // the others read (FORMAT.md §4.1).
    const bytes = Deno.readFileSync(path3);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x55;
    Deno.writeFileSync(path3, bytes);
    c = collect();
    s = await verify(repo, { readData: true }, c.onEvent);
    const damaged = c.problems.filter((p) => p.kind === "corrupt");
    assert.ok(damaged.length >= 1 && damaged.length <= 30, c.show().join("\n"));
    assert.ok(damaged.every((p) => p.object === `packs/${pack}` && /^f\d+$/.test(p.path!)));
    assert.equal(s.corrupt, 1);
    Deno.removeSync(path3);
    c = collect();
    s = await verify(repo, {}, c.onEvent);
    assert.equal(
      c.problems.filter((p) => p.kind === "missing").length,
      60,
      "every file of the pack",
    );
    assert.deepEqual(s.damagedMetas, [b.metaKey]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
