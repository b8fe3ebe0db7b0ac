/**
 * Creating a repository happens exactly once however many processes race (conditional create,
 * and on a store that ignores the condition, settle and read back), and a backup can tell a
 * password change from a foreign key.
 */
import assert from "node:assert/strict";
import { wrapDataKey } from "../format/key_wrap.ts";
import { KEY_NAME } from "../format/layout.ts";
import { LocalStore } from "../store/local_store.ts";
import type { SaveOptions } from "../store/store.ts";
import { readAll } from "../util/bytes.ts";
import { StoreWrapper } from "../../test/store_wrapper.ts";
import { WrongPasswordError } from "../util/errors.ts";
import { openBackup } from "./open_backup.ts";
import {
  CorruptKeyError,
  createRepository,
  keyState,
  openForReading,
  openRepository,
  type Repository,
  RepositoryExistsError,
  saveMeta,
} from "./repository.ts";

const te = new TextEncoder();
const PW = te.encode("repository password");

/** A store that ignores conditional creates, as some S3-compatible servers do. */
class IgnoresConditions extends StoreWrapper {
  override save(name: string, data: Uint8Array | ReadableStream<Uint8Array>, opts?: SaveOptions) {
    const { ifAbsent: _, ...rest } = opts ?? {};
    return this.inner.save(name, data, rest);
  }
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-repo-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function race(n: number, create: () => Promise<Repository>) {
  const results = await Promise.allSettled(Array.from({ length: n }, create));
  const won = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  const lost = results.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
  return { won, lost };
}

for (const [label, wrap] of [["honours", false], ["ignores", true]] as const) {
  Deno.test(`createRepository: racing creators, a store that ${label} conditional creates: one key`, () =>
    withDir(async (dir) => {
      const store = wrap ? new IgnoresConditions(new LocalStore(dir)) : new LocalStore(dir);
      const { won, lost } = await race(4, () => createRepository(store, PW, { settleMs: 300 }));
      assert.equal(won.length, 1, `winners: ${won.length}, lost: ${lost.map(String)}`);
      assert.ok(lost.every((e) => e instanceof RepositoryExistsError), String(lost));
      const stored = await readAll(await store.load(KEY_NAME));
      assert.deepEqual(stored, won[0]!.wrappedKey);
      const opened = await openRepository(store, PW);
      assert.deepEqual(opened.dataKey, won[0]!.dataKey, "everyone opens the winner's data key");
    }));
}

for (const [label, wrap] of [["honours", false], ["ignores", true]] as const) {
  Deno.test(`createRepository into a store that has a key (${label} conditions): key unchanged`, () =>
    withDir(async (dir) => {
      const store = wrap ? new IgnoresConditions(new LocalStore(dir)) : new LocalStore(dir);
      const first = await createRepository(store, PW, { settleMs: 50 });
      await assert.rejects(
        createRepository(store, te.encode("other"), { settleMs: 50 }),
        RepositoryExistsError,
      );
      assert.deepEqual(await readAll(await store.load(KEY_NAME)), first.wrappedKey);
    }));
}

Deno.test("keyState: same, rewrapped (password changed), foreign (another data key)", () =>
  withDir(async (dir) => {
    const store = new LocalStore(dir);
    const repo = await createRepository(store, PW);
    assert.equal(await keyState(repo), "same");
    const dataKey = new TextDecoder().decode(repo.dataKey);
    await store.save(KEY_NAME, await wrapDataKey(dataKey, PW, repo.descriptor.keyIter));
    assert.equal(await keyState(repo), "rewrapped");
    await store.save(KEY_NAME, await wrapDataKey("ab".repeat(32), PW, repo.descriptor.keyIter));
    assert.equal(await keyState(repo), "foreign");
    await store.remove([KEY_NAME]);
    assert.equal(await keyState(repo), "foreign");
  }));

Deno.test("a damaged s3backup.key is told from a wrong password; readers use a meta's copy", () =>
  withDir(async (dir) => {
    const store = new LocalStore(dir);
    const repo = await createRepository(store, PW);
    await saveMeta(repo, "meta_a_20260101T000000Z", {
      time: new Date("2026-01-01T00:00:00Z"),
      host: "h",
      source: "/s",
      name: "a",
    }, []);
    const key = await readAll(await store.load(KEY_NAME));
    key[40] = key[40]! ^ 0xff; // one flipped byte in the ciphertext
    await store.save(KEY_NAME, key);
    await assert.rejects(
      openRepository(store, PW),
      (e) =>
        e instanceof CorruptKeyError && e.metaKey === "meta_a_20260101T000000Z" &&
        /s3backup\.key .* is damaged: the password opens the backups/.test(e.message),
    );
    await assert.rejects(openRepository(store, te.encode("wrong")), WrongPasswordError);
    const read = await openForReading(store, PW);
    assert.deepEqual(read.repo.dataKey, repo.dataKey);
    assert.match(read.damage!, /is damaged/);
    const opened = await openBackup(store, PW, "latest");
    assert.deepEqual(opened.notes, [
      "s3backup.key is damaged: using the copy of the key held in meta_a_20260101T000000Z",
    ]);
    await assert.rejects(openBackup(store, te.encode("wrong"), "latest"), WrongPasswordError);
  }));
