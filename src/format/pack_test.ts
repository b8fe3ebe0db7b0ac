import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { encryptSync } from "./container.ts";
import {
  buildPack,
  type Member,
  openPack,
  PackBuilder,
  packMember,
  packMembers,
  PROBE,
  probeShrinks,
  readPack,
  sealPack,
  streamPackMembers,
} from "./pack.ts";
import { BLOCK } from "./tar.ts";
import { CorruptDataError } from "../util/errors.ts";

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");
const te = new TextEncoder();

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

const text = te.encode("a line of a log file that repeats itself\n".repeat(3000));
const CONTENTS = [new Uint8Array(0), te.encode("hello"), text, random(100_000), random(1000)];

/** A member `<md5>.gz` (the gzip of the content): read, though no writer makes one now. */
function gzMember(content: Uint8Array): Member {
  const gz = gzipSync(content);
  return { name: `${md5(content)}.gz`, bytes: new Uint8Array(gz.buffer, gz.byteOffset, gz.length) };
}

Deno.test("pack: members as they are; the pack is the gzip of their tar, read back and checked", () => {
  const members = CONTENTS.map((c) => packMember(md5(c), c));
  assert.deepEqual(members.map((m) => m.name), CONTENTS.map(md5), "named by their MD5 alone");
  const sealed = sealPack(members);
  const tar = buildPack(members);
  assert.deepEqual(openPack(sealed), tar);
  assert.ok(sealed.length < tar.length - text.length + text.length / 10, "text shrinks in it");
  const back = [...readPack(openPack(sealed))];
  assert.deepEqual(back.map((b) => b.md5), CONTENTS.map(md5));
  back.forEach((b, i) => assert.deepEqual(b.content, CONTENTS[i]));
  // A member <md5>.gz is gunzipped; extra end blocks are no members.
  const more = [...readPack(openPack(sealPack([gzMember(text), members[1]!], 2)))];
  assert.deepEqual(more.map((b) => b.content), [text, CONTENTS[1]]);
});

Deno.test("pack: what zlib hands back owns its bytes (a pack of 10,000 held 16 KiB of zlib's each)", () => {
  const sealed = sealPack([packMember(md5(text), text)]);
  assert.equal(sealed.buffer.byteLength, sealed.length);
  const tar = openPack(sealed);
  assert.equal(tar.buffer.byteLength, tar.length);
  const small = te.encode("a short line that repeats\n".repeat(40));
  const [back] = [...readPack(buildPack([gzMember(small)]))];
  assert.equal(back!.content.buffer.byteLength, small.length, "gunzipped members too");
});

Deno.test("pack: a changed byte, a cut archive or a foreign member is CorruptDataError naming it", () => {
  const pack = buildPack([packMember(md5(CONTENTS[1]!), CONTENTS[1]!), gzMember(text)]);
  const gzAt = 512 + 512 + 512 + 20; // inside the second member's stored bytes
  const bad = pack.slice();
  bad[gzAt] = bad[gzAt]! ^ 0xff;
  assert.throws(
    () => [...readPack(bad)],
    (e) => e instanceof CorruptDataError && /\.gz/.test(e.message),
  );
  assert.throws(() => [...readPack(pack.subarray(0, 1024))], /cut short/);
  const foreign = buildPack([{ name: "etc-passwd", bytes: te.encode("x") }]);
  assert.throws(() => [...readPack(foreign)], /member etc-passwd is not a content/);
  const wrong = buildPack([{ name: md5(te.encode("a")), bytes: te.encode("b") }]);
  assert.throws(() => [...readPack(wrong)], /the MD5 of/);
  // The gzip around the tar: not gzip, or cut short (lenient: what it holds).
  assert.throws(() => openPack(te.encode("not gzip")), /pack: it does not gunzip/);
  const sealed = sealPack([packMember(md5(text), text)]);
  const cut = sealed.subarray(0, sealed.length - 20);
  assert.throws(() => openPack(cut), /does not gunzip/);
  assert.ok(openPack(cut, true).length > 0, "a lenient reader takes what there is");
});

Deno.test("pack: gzip members of 64 KiB of tar or more; damage in one loses its files alone", () => {
  const contents = Array.from({ length: 100 }, (_, i) => te.encode(`file ${i} `.repeat(300)));
  const members = contents.map((c) => packMember(md5(c), c));
  const sealed = sealPack(members);
  const heads = [...sealed.keys()].filter((i) =>
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0].every((b, j) => sealed[i + j] === b)
  );
  assert.ok(heads.length >= 4 && heads.length <= 6, `${heads.length} gzip members`);
  const bad = sealed.slice();
  bad[Math.floor((heads[1]! + heads[2]!) / 2)]! ^= 0x55; // inside the second gzip member
  assert.throws(() => openPack(bad), /does not gunzip/);
  const back = [...packMembers(openPack(bad, true), true)].map((m) => m.name);
  const names = members.map((m) => m.name);
  assert.ok(back.length > 60 && back.length < 100, `${back.length} of 100 saved`);
  assert.deepEqual(back, names.filter((n) => back.includes(n)), "in order, each whole");
  assert.deepEqual(back.slice(0, 10), names.slice(0, 10), "the first gzip member's files");
});

Deno.test("pack: the by-hand recipe gives a file back with openssl and tar -xz (GNU tar, bsdtar)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const key = "0123456789abcdef".repeat(4); // a data key: 64 hex characters
    const members = CONTENTS.map((c) => packMember(md5(c), c));
    await Deno.writeFile(`${dir}/pack`, encryptSync(sealPack(members), te.encode(key), 1));
    for (const tar of ["tar", "bsdtar"]) {
      if (tar === "bsdtar" && !hasCommand("bsdtar")) continue; // scripts/test.sh installs it
      for (const [i, m] of members.entries()) {
        const recipe = `openssl enc -d -aes-256-cbc -pbkdf2 -iter 1 -md sha256 -pass env:K ` +
          `-in "${dir}/pack" | ${tar} -xzOf - ${m.name}`;
        const out = new Deno.Command("bash", {
          args: ["-o", "pipefail", "-c", recipe],
          env: { K: key, PATH: "/usr/bin:/bin" },
          stdout: "piped",
        }).outputSync();
        assert.equal(out.success, true, `${tar}: ${recipe}`);
        assert.deepEqual(out.stdout, CONTENTS[i], `${tar}: ${m.name}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function hasCommand(name: string): boolean {
  try {
    return new Deno.Command(name, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** A sink keeping a pack's gzip members (and how many writes it took). */
class Kept {
  parts: Uint8Array[] = [];
  write(gz: Uint8Array): void {
    this.parts.push(gz.slice());
  }
  joined(): Uint8Array {
    const out = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    this.parts.reduce((n, p) => (out.set(p, n), n + p.length), 0);
    return out;
  }
}

Deno.test("pack builder: packs of about the target size, where known at add, the rest at finish", () => {
  let n = 0;
  const b = new PackBuilder(40_000, () => (n++).toString(16).padStart(32, "0"), () => new Kept());
  const contents = Array.from({ length: 30 }, () => random(3000)); // 3.5 KB each in the tar
  const added = contents.map((c) => b.add(md5(c), c));
  const packs = added.map((a) => a.full).filter((p) => p !== null);
  const last = b.finish();
  assert.ok(last !== null);
  assert.equal(b.finish(), null, "nothing since");
  const all = [...packs, last];
  assert.deepEqual(all.map((p) => p.id), ["0", "1", "2"].map((x) => x.padStart(32, "0")));
  for (const p of all.slice(0, -1)) assert.ok(p.size >= 40_000 && p.size < 48_000);
  const back = all.flatMap((p) => [...readPack(openPack(p.sink.joined()))]);
  // The same bytes as a pack sealed from its members (one writer, one layout).
  const first = contents.slice(0, all[0]!.entries.length).map((c) => packMember(md5(c), c));
  assert.equal(all[0]!.size, buildPack(first).length);
  assert.equal(md5(all[0]!.sink.joined()), md5(sealPack(first)));
  assert.deepEqual(back.map((c) => c.md5), contents.map(md5));
  assert.deepEqual(
    all.flatMap((p) => p.entries).map((e) => [e.md5, e.plain, e.stored, e.where]),
    contents.map((c, i) => [md5(c), 3000, 3000, added[i]!.where]),
  );
  assert.match(b.add(md5(text), text).where, /^0{31}3$/, "the where is the pack id");
});

Deno.test("pack builder: a pack goes to its sink a segment at a time, never whole", () => {
  const sinks: Kept[] = [];
  const b = new PackBuilder(1 << 20, () => "0".repeat(32), () => {
    sinks.push(new Kept());
    return sinks.at(-1)!;
  });
  const contents = Array.from({ length: 100 }, (_, i) => te.encode(`${i} `.repeat(2000)));
  const seen: number[] = [];
  for (const c of contents) {
    b.add(md5(c), c);
    seen.push(sinks[0]!.parts.length);
  }
  const pack = b.finish()!;
  assert.ok(seen[0] === 0 && seen.at(-1)! > 5, `gzip members written as it filled: ${seen}`);
  for (const p of pack.sink.parts.slice(0, -1)) assert.ok(p.length < 64 * 1024);
  assert.deepEqual(
    [...readPack(openPack(pack.sink.joined()))].map((c) => c.md5),
    contents.map(md5),
  );
});

Deno.test("pack builder: a sink that fails breaks the builder (no content is said to be in a lost segment)", () => {
  let writes = 0;
  const b = new PackBuilder(1 << 20, () => "0".repeat(32), () => ({
    write() {
      writes++;
      throw new Error("disk full");
    },
  }));
  const big = random(40_000);
  assert.equal(b.add(md5(big), big).where, "0".repeat(32)); // in the segment: nothing written
  assert.throws(() => b.add(md5(text), text), /disk full/); // the segment written
  assert.throws(() => b.add(md5(big), big), /disk full/);
  assert.throws(() => b.finish(), /disk full/);
  assert.equal(writes, 1);
});

/** `bytes` as a stream of pieces of the given sizes, round and round. */
async function* pieces(bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield bytes.slice(at, at + n);
    at += n;
  }
}

Deno.test("pack: a tar read as it streams gives packMembers' members, however it is cut", async () => {
  const members = CONTENTS.map((c) => packMember(md5(c), c));
  const tar = buildPack(members);
  const want = [...packMembers(tar)].map((m) => [m.name, md5(m.bytes)]);
  for (const sizes of [[tar.length], [1], [511, 513], [7, 4096, 100_000], [262_144]]) {
    const got: string[][] = [];
    for await (const m of streamPackMembers(pieces(tar, sizes))) got.push([m.name, md5(m.bytes)]);
    assert.deepEqual(got, want, `pieces of ${sizes}`);
  }
  // Cut anywhere before its end blocks: an error, never fewer members silently.
  for (const cut of [100, BLOCK, tar.length - 2 * BLOCK - 1, tar.length - 2 * BLOCK]) {
    await assert.rejects(async () => {
      for await (const _ of streamPackMembers(pieces(tar.subarray(0, cut), [4096]))) { /* */ }
    }, CorruptDataError);
  }
  const bad = tar.slice();
  bad[BLOCK * 3 + 10]! ^= 1; // a later header (the first members are small)
  await assert.rejects(async () => {
    for await (const _ of streamPackMembers(pieces(bad, [4096]))) { /* */ }
  }, CorruptDataError);
});

Deno.test("pack: probeShrinks says yes for text and no for random bytes or nothing", () => {
  assert.equal(probeShrinks(te.encode("abc ".repeat(20_000))), true);
  assert.equal(probeShrinks(random(PROBE)), false);
  assert.equal(probeShrinks(new Uint8Array(0)), false);
});

Deno.test("pack: a lenient reader looks past a stored .gz content's false gzip start", () => {
  const rand = (n: number, seed: number) =>
    Uint8Array.from({ length: n }, (_, i) => (Math.imul(i + 1, seed) >>> 13) & 0xff);
  // gzip's own output begins as a pack's gzip members do (no name, no time): stored as it is.
  const contents = Array.from(
    { length: 60 },
    (_, i) =>
      i % 5 === 0 ? new Uint8Array(gzipSync(rand(3000, 2654435761 + i))) : rand(3000, 40503 + i),
  );
  const members = contents.map((c) => packMember(md5(c), c));
  const sealed = sealPack(members);
  assert.deepEqual(openPack(sealed, true), openPack(sealed), "every member, as a strict reader");
  // Damage at the end (the last gzip member's): the members before it are all saved.
  const bad = sealed.slice();
  bad[bad.length - 100]! ^= 0x55;
  const back = [...packMembers(openPack(bad, true), true)].map((m) => m.name);
  const names = members.map((m) => m.name);
  assert.ok(back.length >= 30 && back.length < 60, `${back.length} of 60 saved`);
  assert.deepEqual(back, names.slice(0, back.length), "in order, each whole");
});
