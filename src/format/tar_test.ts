import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  BLOCK,
  entryHeader,
  memberHeader,
  memberPadding,
  padded,
  parseHeader,
  paxSize,
  TAR_END,
} from "./tar.ts";
import { CorruptDataError } from "../util/errors.ts";

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

/** A tar of `contents`, members named by their MD5 (`.gz` for the odd ones, as names only). */
function archive(contents: Uint8Array[]): { bytes: Uint8Array; names: string[] } {
  const parts: Uint8Array[] = [];
  const names = contents.map((c, i) => md5(c) + (i % 2 ? ".gz" : ""));
  contents.forEach((c, i) =>
    parts.push(memberHeader(names[i]!, c.length), c, memberPadding(c.length))
  );
  parts.push(TAR_END);
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) [bytes.set(p, at), at += p.length];
  return { bytes, names };
}

const SIZES = [0, 1, 511, 512, 513, 100_000];
const contents = SIZES.map((n, i) => new Uint8Array(n).map((_, j) => (j * 31 + i) & 0xff));

function tars(): string[] {
  return ["tar", "bsdtar"].filter((t) => {
    try {
      return new Deno.Command(t, { args: ["--version"], stdout: "null", stderr: "null" })
        .outputSync().success;
    } catch {
      return false;
    }
  });
}

Deno.test("tar: GNU tar and bsdtar (where installed) list and extract each member byte for byte", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { bytes, names } = archive(contents);
    assert.equal(bytes.length % BLOCK, 0);
    await Deno.writeFile(`${dir}/pack.tar`, bytes);
    const found = tars();
    assert.ok(found.includes("tar"), "GNU tar is on this machine");
    for (const t of found) {
      const list = new Deno.Command(t, { args: ["-tf", `${dir}/pack.tar`], stdout: "piped" })
        .outputSync();
      assert.equal(list.success, true, t);
      assert.deepEqual(new TextDecoder().decode(list.stdout).trim().split("\n"), names, t);
      for (const [i, name] of names.entries()) {
        const out = new Deno.Command(t, {
          args: ["-xOf", `${dir}/pack.tar`, name],
          stdout: "piped",
        }).outputSync();
        assert.equal(out.success, true, `${t} ${name}`);
        assert.deepEqual(out.stdout, contents[i], `${t} ${name}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tar: headers parse back, GNU tar's ustar too; a bad checksum or another type is refused", () => {
  const { bytes, names } = archive(contents);
  let at = 0;
  for (const [i, name] of names.entries()) {
    const h = parseHeader(bytes.subarray(at, at + BLOCK));
    assert.deepEqual(h, { kind: "file", name, size: SIZES[i] });
    at += BLOCK + padded(SIZES[i]!);
  }
  assert.deepEqual(parseHeader(bytes.subarray(at, at + BLOCK)), { kind: "end" });

  const gnu = new Deno.Command("bash", {
    args: ["-c", 'cd "$(mktemp -d)" && printf abc > f && tar --format=ustar -cf - f'],
    stdout: "piped",
  }).outputSync().stdout;
  assert.deepEqual(parseHeader(gnu.subarray(0, BLOCK)), { kind: "file", name: "f", size: 3 });

  const bad = memberHeader(md5(contents[1]!), 1);
  bad[0] = bad[0]! ^ 1;
  assert.throws(() => parseHeader(bad), CorruptDataError);
  const dirHeader = memberHeader("d", 0);
  dirHeader[156] = "5".charCodeAt(0); // a directory: its checksum made right again
  dirHeader.fill(0x20, 148, 156);
  const sum = dirHeader.reduce((n, x) => n + x, 0);
  dirHeader.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  assert.throws(() => parseHeader(dirHeader), /member type "5" is not a regular file/);
});

Deno.test("tar: a member of 8 GiB or more carries a pax size record", () => {
  const size = 2 ** 33 + 5;
  const h = memberHeader("0123456789abcdef0123456789abcdef", size);
  const pax = parseHeader(h.subarray(0, BLOCK));
  assert.equal(pax.kind, "pax");
  const record = h.subarray(BLOCK, BLOCK + (pax.kind === "pax" ? pax.size : 0));
  assert.equal(paxSize(record), size);
  assert.match(new TextDecoder().decode(record), /^\d+ size=8589934597\n$/);
  const len = Number(new TextDecoder().decode(record).split(" ")[0]);
  assert.equal(len, record.length, "the record's length counts itself");
  const file = parseHeader(h.subarray(h.length - BLOCK));
  assert.deepEqual(file, { kind: "file", name: "0123456789abcdef0123456789abcdef", size: 0 });
  assert.throws(() => memberHeader("x".repeat(101), 1), RangeError);
});

Deno.test("a pack member's header (made from a template) is the one a tar entry of its facts has", () => {
  const names = [
    "d41d8cd98f00b204e9800998ecf8427e",
    "ffffffffffffffffffffffffffffffff",
    "x".repeat(100),
  ];
  for (const name of names) {
    for (const size of [0, 1, 511, 512, 4097, 8 ** 11 - 1]) {
      const entry = { name, type: "0" as const, size, mode: 0o600, uid: 0, gid: 0, mtime: 0 };
      assert.deepEqual(memberHeader(name, size), entryHeader(entry), `${name} ${size}`);
    }
  }
});
