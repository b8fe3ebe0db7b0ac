// What only the local store does (the shared contract is test/store_contract_test.ts).
import assert from "node:assert/strict";
import * as path from "node:path";
import { RepositoryNotFoundError } from "../util/errors.ts";
import { LocalStore, SYNC_EACH } from "./local_store.ts";
import { readAll } from "../util/bytes.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-local-store-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("local store: files are 0600, names with / are folders, no temp file remains", () =>
  withDir(async (dir) => {
    const s = new LocalStore(dir);
    await s.save("restore-kit/restore.sh", new TextEncoder().encode("#!/bin/sh\n"));
    await s.save("abc", new Blob(["stream"]).stream());
    const info = await Deno.stat(path.join(dir, "restore-kit", "restore.sh"));
    assert.ok(info.isFile);
    if (Deno.build.os !== "windows") {
      assert.equal(info.mode! & 0o777, 0o600);
      assert.equal((await Deno.stat(path.join(dir, "abc"))).mode! & 0o777, 0o600);
    }
    const entries = [];
    for await (const e of Deno.readDir(dir)) entries.push(e.name);
    assert.deepEqual(entries.sort(), ["abc", "restore-kit"]);
  }));

Deno.test("local store: list skips leftover temp files; load of a folder is not found", () =>
  withDir(async (dir) => {
    const s = new LocalStore(dir);
    await Deno.writeTextFile(path.join(dir, ".tmp-0123456789abcdef"), "partial");
    await Deno.mkdir(path.join(dir, "sub"));
    await Deno.writeTextFile(path.join(dir, "sub", ".tmp-feedfeedfeedfeed"), "partial");
    await s.save("sub/real", new Uint8Array(3));
    const names = [];
    for await (const o of s.list()) names.push(o.name);
    assert.deepEqual(names, ["sub/real"]);
    await assert.rejects(() => s.load("sub"), { name: "ObjectNotFoundError" });
    assert.equal(await s.stat("sub"), null);
    assert.equal((await readAll(await s.load("sub/real"))).byteLength, 3);
  }));

Deno.test("local store: a file where the repository should be is RepositoryNotFound", () =>
  withDir(async (dir) => {
    const file = path.join(dir, "f");
    await Deno.writeTextFile(file, "x");
    const s = new LocalStore(file);
    await assert.rejects(() => s.checkExists(), RepositoryNotFoundError);
    await assert.rejects(() => s.save("a/b", new Uint8Array(1)), RepositoryNotFoundError);
    assert.equal(s.location, file);
    assert.equal(s.kind, "local");
  }));

Deno.test("local store: relative directories are made absolute", () => {
  const s = new LocalStore("some/rel");
  assert.ok(path.isAbsolute(s.location));
  assert.equal(s.location, path.resolve("some/rel"));
});

for (
  const [fallback, count] of [[false, 5], [true, 5], [false, SYNC_EACH + 3], [
    true,
    SYNC_EACH + 3,
  ]] as const
) {
  Deno.test(
    `local store: ${count} deferred saves are listed and read at once; flush syncs them${
      fallback ? " (no sync -f)" : ""
    }, one by one up to SYNC_EACH, and each folder once`,
    async () => {
      const dir = await Deno.makeTempDir();
      const path0 = Deno.env.get("PATH") ?? "";
      if (fallback) Deno.env.set("PATH", dir); // no `sync` there
      try {
        const s = new LocalStore(dir);
        const synced: string[] = [];
        const files: string[] = [];
        const open = Deno.open;
        // Count fsyncs: syncDir opens a directory read-only, syncFile a file read-write.
        Deno.open = ((p: string | URL, o?: Deno.OpenOptions) => {
          if (o?.read && !o.write && Deno.statSync(p).isDirectory) synced.push(String(p));
          if (o?.read && o.write && !o.create) files.push(String(p).slice(dir.length + 1));
          return open(p, o);
        }) as typeof Deno.open;
        try {
          const names = Array.from({ length: count }, (_, i) => i.toString(16).padStart(32, "0"));
          for (const [i, n] of names.entries()) {
            await s.save(n, new Uint8Array([i % 256]), { deferSync: true });
          }
          assert.equal(synced.length + files.length, 0, "no sync per deferred object");
          assert.deepEqual(await readAll(await s.load(names[3]!)), new Uint8Array([3]));
          let n = 0;
          for await (const _ of s.list()) n++;
          assert.equal(n, count);
          assert.equal((Deno.statSync(`${dir}/${names[0]}`).mode ?? 0) & 0o777, 0o600);
          await s.flush();
          assert.deepEqual(synced, [dir], "one sync for the folder");
          const each = fallback || count <= SYNC_EACH;
          assert.deepEqual(files.sort(), each ? names : [], "each object synced, or one syncfs");
          await s.save("meta_x_20260101T000000Z", new Uint8Array([1]));
          assert.equal(synced.length, 2, "the meta is synced at once");
        } finally {
          Deno.open = open;
        }
      } finally {
        Deno.env.set("PATH", path0);
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}
