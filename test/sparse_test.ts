/**
 * Sparse files (VM images, database files): the binary restores runs of zeros as holes, so a
 * file takes about its data's space on the target, not its apparent size; the bytes read back
 * the same. One file ends in data, one in a hole (its length set all the same). The kit writes
 * holes with `dd conv=sparse` where it can.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { PASSWORD, s3backup } from "./faults/harness.ts";
import { runKit } from "./kit_runner.ts";

const MIB = 1024 * 1024;

/** Writes `pieces` (offset, length of pseudo-random bytes) into a new file of `size` bytes. */
function sparseFile(path: string, size: number, pieces: [number, number][]): number {
  const f = Deno.openSync(path, { write: true, create: true, truncate: true });
  try {
    let data = 0;
    for (const [at, n] of pieces) {
      const bytes = new Uint8Array(n);
      for (let i = 0; i < n; i += 65536) {
        crypto.getRandomValues(bytes.subarray(i, Math.min(i + 65536, n)));
      }
      f.seekSync(at, Deno.SeekMode.Start);
      for (let off = 0; off < n;) off += f.writeSync(bytes.subarray(off));
      data += n;
    }
    f.truncateSync(size);
    return data;
  } finally {
    f.close();
  }
}

const md5 = (p: string) => createHash("md5").update(Deno.readFileSync(p)).digest("hex");
/** The bytes a file takes on disk. */
const used = (p: string) => (Deno.statSync(p).blocks ?? 0) * 512;

Deno.test({
  name: "sparse: the binary restores holes as holes, the bytes unchanged",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "s3backup-sparse-" });
    try {
      const src = `${dir}/src`;
      await Deno.mkdir(src);
      await Deno.mkdir(`${dir}/repo`);
      const ends = sparseFile(`${src}/image`, 256 * MIB, [
        [0, MIB],
        [100 * MIB + 123, MIB],
        [255 * MIB, MIB],
      ]);
      const hole = sparseFile(`${src}/tail-hole`, 64 * MIB, [[5 * MIB, MIB]]);
      if (used(`${src}/image`) > 64 * MIB) return; // a file system without holes: nothing to show
      const b = await s3backup(["backup", "-f", src, "-b", `${dir}/repo`, "-c"]);
      assert.equal(b.code, 0, b.stderr);
      const r = await s3backup([
        "restore",
        "-b",
        `${dir}/repo`,
        "-m",
        "latest",
        "-f",
        `${dir}/out`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      for (const [name, data, size] of [["image", ends, 256], ["tail-hole", hole, 64]] as const) {
        const out = `${dir}/out/${name}`;
        assert.equal(Deno.statSync(out).size, size * MIB, name);
        assert.equal(md5(out), md5(`${src}/${name}`), name);
        assert.ok(used(out) <= 2 * data + MIB, `${name}: ${used(out)} bytes on disk for ${data}`);
      }
      // The kit: holes where its dd can (GNU here), for a content stored gzipped (its first 64
      // KiB shrink: the tail-hole file starts with zeros); the image starts with random bytes,
      // is stored as it is, and is written out whole (restore-kit/README.md says so).
      const k = await runKit("restore.sh", [`${dir}/repo`, "latest", `${dir}/kit`], PASSWORD);
      assert.equal(k.code, 0, k.stderr);
      assert.doesNotMatch(k.stderr, /cannot write holes/);
      for (const name of ["image", "tail-hole"]) {
        assert.equal(md5(`${dir}/kit/${name}`), md5(`${src}/${name}`), `kit: ${name}`);
      }
      assert.equal(Deno.statSync(`${dir}/kit/tail-hole`).size, 64 * MIB);
      const u = used(`${dir}/kit/tail-hole`);
      assert.ok(u <= 2 * hole + MIB, `kit: tail-hole: ${u} bytes on disk for ${hole}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
