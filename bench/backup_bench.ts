/**
 * Benchmarks: `deno task bench`. Throughput of the building blocks (encryption, hashing) and of
 * whole backups into a local-directory store (cold: everything new; warm: nothing new).
 */
import { createCipheriv, createHash } from "node:crypto";
import { encryptStream } from "../src/format/container.ts";
import { backup } from "../src/ops/backup/backup.ts";
import { createRepository } from "../src/repo/repository.ts";
import { LocalStore } from "../src/store/local_store.ts";

const MIB = 1024 * 1024;
const chunk = new Uint8Array(MIB).map((_, i) => (i * 7) & 0xff);
const chunks = (n: number) => Array.from({ length: n }, () => chunk);
const key = new Uint8Array(64).fill(0x61);

Deno.bench("encrypt 64 MiB: node:crypto AES-256-CBC, for comparison", { group: "crypto" }, () => {
  const c = createCipheriv("aes-256-cbc", new Uint8Array(32), new Uint8Array(16));
  for (const x of chunks(64)) c.update(x);
  c.final();
});

Deno.bench("encrypt 64 MiB: encryptStream (WebCrypto batches)", { group: "crypto" }, async () => {
  for await (const _ of ReadableStream.from(chunks(64)).pipeThrough(encryptStream(key, 1))) {
    // drained: measures the cipher, not a 64 MiB concatenation
  }
});

Deno.bench("md5 64 MiB (node:crypto)", { group: "crypto", baseline: true }, () => {
  const h = createHash("md5");
  for (const c of chunks(64)) h.update(c);
  h.digest("hex");
});

const dir = Deno.makeTempDirSync({ prefix: "s3backup-bench-" });
const src = `${dir}/src`;
for (let d = 0; d < 20; d++) {
  Deno.mkdirSync(`${src}/d${d}`, { recursive: true });
  for (let f = 0; f < 100; f++) {
    Deno.writeTextFileSync(`${src}/d${d}/f${f}.txt`, `file ${d}/${f}\n`.repeat(50));
  }
}
Deno.writeFileSync(`${src}/big.bin`, new Uint8Array(32 * MIB).fill(3));
const te = new TextEncoder();
let n = 0;

Deno.bench("backup 2000 small files + 32 MiB, cold (all new)", { group: "backup" }, async (b) => {
  const bucket = `${dir}/bucket${n++}`;
  Deno.mkdirSync(bucket);
  const store = new LocalStore(bucket);
  const repo = await createRepository(store, te.encode("bench"));
  b.start();
  await backup(store, repo, { source: src, name: "b", host: "h", simulate: false, kit: new Map() });
  b.end();
});

const warmBucket = `${dir}/warm`;
Deno.mkdirSync(warmBucket);
const warmStore = new LocalStore(warmBucket);
const warmRepo = await createRepository(warmStore, te.encode("bench"));
const opts = { source: src, name: "b", host: "h", simulate: false, kit: new Map() };
await backup(warmStore, warmRepo, opts);

Deno.bench(
  "backup 2000 small files + 32 MiB, warm (nothing new)",
  { group: "backup" },
  async () => {
    await backup(warmStore, warmRepo, opts);
  },
);

globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
