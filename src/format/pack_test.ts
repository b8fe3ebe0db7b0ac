import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { encryptSync } from "./container.ts";
import { buildPack, PackBuilder, packMember, PROBE, probeShrinks, readPack } from "./pack.ts";

import { CorruptDataError } from "../util/errors.ts";

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");
const te = new TextEncoder();

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

const text = te.encode("a line of a log file that repeats itself\n".repeat(3000));
/** A content whose first PROBE bytes are random and the rest text: judged by the probe. */
const jpegLike = new Uint8Array([...random(PROBE), ...text]);
const CONTENTS = [
  new Uint8Array(0),
  te.encode("hello"),
  text,
  random(100_000),
  random(1000),
  jpegLike,
];

Deno.test("pack: each content gzipped only when it shrinks by 1/16; read back whole and checked", () => {
  const members = CONTENTS.map((c) => packMember(md5(c), c));
  assert.deepEqual(
    members.map((m) => m.name.endsWith(".gz")),
    [false, false, true, false, false, false],
    "empty, tiny, random and a random start stay as they are; text is gzipped",
  );
  assert.ok(members[2]!.bytes.length < text.length / 10);
  const back = [...readPack(buildPack(members))];
  assert.deepEqual(back.map((b) => b.md5), CONTENTS.map(md5));
  back.forEach((b, i) => assert.deepEqual(b.content, CONTENTS[i]));
});

Deno.test("pack: a gzipped member owns its bytes (a pack of 10,000 held 16 KiB of zlib's each)", () => {
  const small = te.encode("a short line that repeats\n".repeat(40));
  const m = packMember(md5(small), small);
  assert.ok(m.name.endsWith(".gz"));
  assert.equal(m.bytes.buffer.byteLength, m.bytes.length);
  const [back] = [...readPack(buildPack([m]))];
  assert.equal(back!.content.buffer.byteLength, small.length, "gunzipped contents too");
});

Deno.test("pack: a changed byte, a cut archive or a foreign member is CorruptDataError naming it", () => {
  const members = CONTENTS.slice(1, 3).map((c) => packMember(md5(c), c));
  const pack = buildPack(members);
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
});

Deno.test("pack: the by-hand recipe gives a file back with openssl, tar and gzip (GNU tar, bsdtar)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const key = "0123456789abcdef".repeat(4); // a data key: 64 hex characters
    const members = CONTENTS.map((c) => packMember(md5(c), c));
    await Deno.writeFile(`${dir}/pack`, encryptSync(buildPack(members), te.encode(key), 1));
    for (const tar of ["tar", "bsdtar"]) {
      if (tar === "bsdtar" && !hasCommand("bsdtar")) continue; // scripts/test.sh installs it
      for (const [i, m] of members.entries()) {
        const gz = m.name.endsWith(".gz") ? " | gzip -d" : "";
        const recipe = `openssl enc -d -aes-256-cbc -pbkdf2 -iter 1 -md sha256 -pass env:K ` +
          `-in "${dir}/pack" | ${tar} -xOf - ${m.name}${gz}`;
        const out = new Deno.Command("bash", {
          args: ["-o", "pipefail", "-c", recipe],
          env: { K: key },
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

Deno.test("pack builder: packs of about the target size, where known at add, the rest at finish", () => {
  let n = 0;
  const b = new PackBuilder(40_000, () => (n++).toString(16).padStart(32, "0"));
  const contents = Array.from({ length: 30 }, () => random(3000)); // incompressible: 3.5 KB each
  const added = contents.map((c) => b.add(md5(c), c));
  const packs = added.map((a) => a.full).filter((p) => p !== null);
  const last = b.finish();
  assert.ok(last !== null);
  assert.equal(b.finish(), null, "nothing since");
  const all = [...packs, last];
  assert.deepEqual(all.map((p) => p.id), ["0", "1", "2"].map((x) => x.padStart(32, "0")));
  for (const p of all.slice(0, -1)) assert.ok(p.size >= 40_000 && p.size < 48_000);
  for (const p of all) {
    assert.equal(buildPack(p.members).length, p.size);
  }
  const back = all.flatMap((p) => [...readPack(buildPack(p.members))]);
  assert.deepEqual(back.map((c) => c.md5), contents.map(md5));
  assert.deepEqual(
    all.flatMap((p) => p.entries).map((e) => [e.md5, e.plain, e.where]),
    contents.map((c, i) => [md5(c), 3000, added[i]!.where]),
  );
  const text = new TextEncoder().encode("hello hello hello hello hello hello hello ".repeat(50));
  assert.match(b.add(md5(text), text).where, /^0{31}3\.gz$/, "a member that shrank is <md5>.gz");
});

Deno.test("pack: probeShrinks says yes for text and no for random bytes or nothing", () => {
  assert.equal(probeShrinks(new TextEncoder().encode("abc ".repeat(20_000))), true);
  assert.equal(probeShrinks(random(PROBE)), false);
  assert.equal(probeShrinks(new Uint8Array(0)), false);
});
