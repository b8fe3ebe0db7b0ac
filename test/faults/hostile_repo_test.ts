/**
 * Hostile and damaged repositories, read by the binary and by the restore kit: a damaged
 * s3backup.key (told from a wrong password; restore and verify use a meta's copy), an
 * iteration count meant to make readers spin, a 10 MB meta line, a path of 40,000 components.
 * Each is refused or reported within seconds; nothing is written outside the target; the rest
 * of the backup is restored.
 */
import { gzipSync } from "node:zlib";
import assert from "node:assert/strict";
import { snapshot } from "../tree.ts";
import { createHash } from "node:crypto";
import { DESCRIPTOR_NAME, KEY_NAME, META_PREFIX } from "../../src/format/layout.ts";
import { listRepository } from "../../src/repo/listing.ts";
import type { RecordedEntry as Entry } from "../../src/format/meta.ts";
import {
  encryptSmallObject,
  loadMeta,
  openRepository,
  type Repository,
  saveMeta,
} from "../../src/repo/repository.ts";
import { LocalStore } from "../../src/store/local_store.ts";
import { readAll } from "../../src/util/bytes.ts";
import { runKit } from "../kit_runner.ts";
import { PASSWORD, s3backup } from "./harness.ts";

const md5 = (s: string) => createHash("md5").update(s).digest("hex");

interface Fixture {
  dir: string;
  repoDir: string;
  src: string;
  store: LocalStore;
  repo: Repository;
  cleanup: () => Promise<void>;
}

/** A local repository holding one good backup of a small tree (a.txt, sub/b.txt). */
async function fixture(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-hostile-" });
  const repoDir = `${dir}/repo`, src = `${dir}/src`;
  await Deno.mkdir(repoDir);
  await Deno.mkdir(`${src}/sub`, { recursive: true });
  await Deno.writeTextFile(`${src}/a.txt`, "A");
  await Deno.writeTextFile(`${src}/sub/b.txt`, "B");
  const b = await s3backup(["backup", "-f", src, "-b", repoDir, "-n", "good", "-c"]);
  assert.equal(b.code, 0, b.stderr);
  const store = new LocalStore(repoDir);
  const repo = await openRepository(store, new TextEncoder().encode(PASSWORD));
  return { dir, repoDir, src, store, repo, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

function file(path: string, content: string): Entry {
  return {
    type: "f",
    path,
    md5: md5(content),
    mode: 0o644,
    uid: null,
    gid: null,
    size: content.length,
    mtimeMs: 1_700_000_000_000,
  };
}

/**
 * A meta, newer than the good one, with these entries (version 3: each file's content where
 * the good backup stored it).
 */
async function hostileMeta(f: Fixture, entries: Entry[]): Promise<string> {
  const key = "meta_hostile_20300101T000000Z";
  const header = {
    version: 3 as const,
    time: new Date("2030-01-01T00:00:00Z"),
    host: "h",
    source: "/x",
    name: "hostile",
  };
  const good = (await listRepository(f.store, META_PREFIX)).metas.find((m) => m.name === "good")!;
  const where = new Map((await loadMeta(f.repo, good.key)).entries.map((e) => [e.md5, e.where]));
  entries = entries.map((e) =>
    e.type === "f" && e.where === undefined ? { ...e, where: where.get(e.md5) ?? "-" } : e
  );
  await saveMeta(f.repo, key, header, entries);
  return key;
}

const kit = (script: string, args: string[]) => runKit(script, args, PASSWORD);

Deno.test("a damaged s3backup.key: backup refuses clearly, restore and verify use a meta's copy", async () => {
  const f = await fixture();
  try {
    const key = await readAll(await f.store.load(KEY_NAME));
    key[50] = key[50]! ^ 0x55;
    await f.store.save(KEY_NAME, key);
    const b = await s3backup(["backup", "-f", f.src, "-b", f.repoDir, "-c"]);
    assert.equal(b.code, 1, b.stderr);
    assert.match(
      b.stderr,
      /^s3backup: s3backup\.key in .* is damaged: the password opens the backups/,
    );
    const wrong = await s3backup(["restore", "-b", f.repoDir, "-m", "latest", "-f", `${f.dir}/w`], {
      env: { S3BACKUP_PASSWORD: "not it" },
    });
    assert.equal(wrong.code, 4, wrong.stderr);
    const out = `${f.dir}/out`;
    const r = await s3backup(["restore", "-b", f.repoDir, "-m", "latest", "-f", out, "-c"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /s3backup\.key is damaged: using the copy of the key held in meta_good_/,
    );
    assert.equal(await Deno.readTextFile(`${out}/sub/b.txt`), "B");
    const v = await s3backup(["verify", "-b", f.repoDir, "--read-data"]);
    assert.equal(v.code, 3, v.stdout + v.stderr);
    assert.match(v.stderr, /s3backup\.key: .*is damaged/);
    assert.match(v.stdout, /: DAMAGED: 1 damaged s3backup\.key; /, "said, not an empty count");
    const k = await kit("restore.sh", [f.repoDir, "latest", `${f.dir}/kit-out`]);
    assert.equal(k.code, 0, k.stderr);
    assert.equal(await Deno.readTextFile(`${f.dir}/kit-out/a.txt`), "A");
    // list: the metas open with the password alone; the damaged key is said, not fatal.
    const l = await s3backup(["list", "-b", f.repoDir, "--tsv"]);
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /^meta_good_\S+\tgood\t/m);
    assert.match(l.stderr, /s3backup\.key in .* is damaged: .*listing with the copy of the key/);
    // The key replaced and every meta gone: a wrong password cannot be told from it, and says so.
    for await (const o of f.store.list("meta_")) await f.store.remove([o.name]);
    const gone = await s3backup(["list", "-b", f.repoDir]);
    assert.equal(gone.code, 4, gone.stderr);
    assert.match(gone.stderr, /cannot be told from a replaced s3backup\.key/);
  } finally {
    await f.cleanup();
  }
});

Deno.test("key-iter=2000000000: both readers refuse at once instead of spinning", async () => {
  const f = await fixture();
  try {
    const conf = new TextDecoder().decode(await readAll(await f.store.load(DESCRIPTOR_NAME)));
    await f.store.save(
      DESCRIPTOR_NAME,
      new TextEncoder().encode(conf.replace(/key-iter=\d+/, "key-iter=2000000000")),
    );
    const r = await s3backup(["restore", "-b", f.repoDir, "-m", "latest", "-f", `${f.dir}/o`], {
      deadlineMs: 30_000,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /key-iter=2000000000 is more than 10000000/);
    for (
      const [script, args] of [["list.sh", [f.repoDir]], ["restore.sh", [
        f.repoDir,
        "latest",
        `${f.dir}/k`,
      ]]] as const
    ) {
      const k = await kit(script, [...args]);
      assert.notEqual(k.code, 0, `${script}: ${k.stderr}`);
      assert.match(
        k.stderr,
        /bad key-iter '2000000000' in s3backup\.conf \(1 to 10000000\)/,
        script,
      );
      assert.ok(k.ms < 10_000, `${script} took ${k.ms} ms`);
    }
  } finally {
    await f.cleanup();
  }
});

for (
  const [what, path] of [
    ["a 10 MB meta line", "x".repeat(10_000_000)],
    ["a path of 40,000 components", Array.from({ length: 40_000 }, () => "d").join("/")],
  ] as const
) {
  Deno.test(`${what}: the meta refused by both readers (its line is too long), in seconds`, async () => {
    const f = await fixture();
    try {
      await hostileMeta(f, [file("a.txt", "A"), file(path, "B")]);
      const r = await s3backup(["restore", "-b", f.repoDir, "-m", "hostile", "-f", `${f.dir}/o`], {
        deadlineMs: 60_000,
      });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /meta line \d+ is longer than 40000 bytes/);
      const k = await kit("restore.sh", [f.repoDir, "hostile", `${f.dir}/k`]);
      assert.notEqual(k.code, 0, k.stderr);
      assert.match(k.stderr, /a line is longer than 40000 bytes/);
      assert.ok(k.ms < 20_000, `the kit took ${k.ms} ms`);
    } finally {
      await f.cleanup();
    }
  });
}

Deno.test("a path of 1,000 components: that entry refused, the rest restored, in seconds", async () => {
  const f = await fixture();
  try {
    const deep = Array.from({ length: 1_000 }, () => "d").join("/");
    await hostileMeta(f, [file("a.txt", "A"), file(deep, "B"), file("sub/b.txt", "B")]);
    const out = `${f.dir}/o`;
    const r = await s3backup(["restore", "-b", f.repoDir, "-m", "hostile", "-f", out, "-c"], {
      deadlineMs: 60_000,
    });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /path deeper than 256 components: refused/);
    assert.equal(await Deno.readTextFile(`${out}/sub/b.txt`), "B");
    const kout = `${f.dir}/k`;
    const k = await kit("restore.sh", [f.repoDir, "hostile", kout]);
    assert.equal(k.code, 3, k.stderr);
    assert.match(k.stderr, /path deeper than 256 components: refused/);
    assert.ok(k.ms < 20_000, `the kit took ${k.ms} ms`);
    assert.equal(await Deno.readTextFile(`${kout}/sub/b.txt`), "B");
    assert.equal(await Deno.readTextFile(`${kout}/a.txt`), "A");
  } finally {
    await f.cleanup();
  }
});

Deno.test("the writer refuses what the readers would: a tree deeper than 256 levels", async () => {
  const f = await fixture();
  try {
    let p = `${f.src}/deep`;
    for (let i = 0; i < 260; i++) p += "/d";
    await Deno.mkdir(p, { recursive: true });
    await Deno.writeTextFile(`${p}/leaf`, "leaf");
    const b = await s3backup(["backup", "-f", f.src, "-b", f.repoDir, "-n", "deep", "-c"]);
    assert.equal(b.code, 3, b.stderr);
    assert.match(b.stderr, /path deeper than 256 components: this format cannot store it; skipped/);
    const k = await kit("restore.sh", [f.repoDir, "deep", `${f.dir}/k`]);
    assert.equal(k.code, 0, k.stderr);
    // Both readers restore what was stored: the folders down to the 256th level, no leaf.
    const r = await s3backup(["restore", "-b", f.repoDir, "-m", "deep", "-f", `${f.dir}/r`, "-c"]);
    assert.equal(r.code, 0, r.stderr);
    const kitTree = snapshot(`${f.dir}/k`);
    assert.deepEqual(kitTree, snapshot(`${f.dir}/r`));
    const depth = Math.max(...kitTree.map((e) => e.path.split("/").length));
    assert.equal(depth, 256, "the deepest restored path");
    assert.ok(!kitTree.some((e) => e.path.endsWith("/leaf")), "the leaf was not stored");
  } finally {
    await f.cleanup();
  }
});

Deno.test("a pack holding a symlink member: both readers refuse it, nothing outside changes", async () => {
  const f = await fixture();
  try {
    const outside = `${f.dir}/outside.txt`;
    await Deno.writeTextFile(outside, "B"); // its MD5 names the member, as a reader checks
    await Deno.chmod(outside, 0o600);
    // A ustar symlink member named md5("A") pointing at the outside file, then the end.
    const block = new Uint8Array(512);
    const put = (at: number, text: string) => block.set(new TextEncoder().encode(text), at);
    put(0, md5("B"));
    put(100, "0000777\0");
    put(108, "0000000\0");
    put(116, "0000000\0");
    put(124, "00000000000\0");
    put(136, "00000000000\0");
    put(156, "2");
    put(157, outside);
    put(257, "ustar\0");
    put(263, "00");
    block.fill(0x20, 148, 156);
    put(148, block.reduce((n, b) => n + b, 0).toString(8).padStart(6, "0") + "\0 ");
    const tar = new Uint8Array(512 * 3);
    tar.set(block);
    const pack = "e".repeat(32);
    const gz = gzipSync(tar); // a pack is the gzip of its tar (FORMAT.md §4.1)
    await f.store.save(`packs/${pack}`, await encryptSmallObject(f.repo, new Uint8Array(gz)));
    const e = { ...file("evil.txt", "B"), mode: 0o644, where: pack };
    await hostileMeta(f, [e, file("a.txt", "A")]);
    const out = `${f.dir}/o`;
    const r = await s3backup(["restore", "-b", f.repoDir, "-m", "hostile", "-f", out, "-c"]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /evil\.txt: /);
    const k = await kit("restore.sh", [f.repoDir, "hostile", `${f.dir}/k`]);
    assert.equal(k.code, 3, k.stderr);
    assert.match(k.stderr, /evil\.txt: member \S+ of packs\/e+ is not a regular file: refused/);
    for (const t of [out, `${f.dir}/k`]) {
      assert.equal(await Deno.readTextFile(`${t}/a.txt`), "A");
      assert.throws(() => Deno.lstatSync(`${t}/evil.txt`), Deno.errors.NotFound);
    }
    assert.equal((Deno.statSync(outside).mode ?? 0) & 0o777, 0o600, "the outside file's mode");
  } finally {
    await f.cleanup();
  }
});

Deno.test("setuid, setgid and sticky bits: restored as recorded by both readers (the policy)", async () => {
  const f = await fixture();
  try {
    const suid = { ...file("a.txt", "A"), path: "suid", mode: 0o4755 };
    const sgid = { ...file("sub/b.txt", "B"), path: "sgid", mode: 0o2750 };
    const dir: Entry = {
      type: "d",
      path: "tmp",
      mode: 0o1777,
      uid: null,
      gid: null,
      size: 0,
      mtimeMs: 1e12,
    };
    await hostileMeta(f, [suid, sgid, dir]);
    const mode = (p: string) => (Deno.lstatSync(p).mode ?? 0) & 0o7777;
    const out = `${f.dir}/o`;
    const r = await s3backup(["restore", "-b", f.repoDir, "-m", "hostile", "-f", out, "-c"]);
    assert.equal(r.code, 0, r.stderr);
    const kout = `${f.dir}/k`;
    const k = await kit("restore.sh", [f.repoDir, "hostile", kout]);
    assert.equal(k.code, 0, k.stderr);
    for (const t of [out, kout]) {
      assert.equal(mode(`${t}/suid`), 0o4755, t);
      assert.equal(mode(`${t}/sgid`), 0o2750, t);
      assert.equal(mode(`${t}/tmp`), 0o1777, t);
    }
  } finally {
    await f.cleanup();
  }
});

Deno.test("both readers take exactly FORMAT.md's grammar: odd meta names ignored, format=2.0 refused", async () => {
  const f = await fixture();
  try {
    const [good] = [...Deno.readDirSync(f.repoDir)].map((e) => e.name)
      .filter((n) => n.startsWith("meta_"));
    const body = await Deno.readFile(`${f.repoDir}/${good}`);
    // Each later than the good one, each with the good one's bytes: none is a backup.
    await Deno.mkdir(`${f.repoDir}/meta_x`);
    await Deno.writeFile(`${f.repoDir}/meta_x/y_20991231T235959Z`, body);
    for (const n of ["latest", "a".repeat(65), "a b", "é"]) {
      await Deno.writeFile(`${f.repoDir}/meta_${n}_20991231T235959Z`, body);
    }
    const l = await s3backup(["list", "-b", f.repoDir, "--tsv"]);
    assert.equal(l.code, 0, l.stderr);
    assert.deepEqual(l.stdout.trim().split("\n").map((x) => x.split("\t")[0]), [good]);
    const kl = await kit("list.sh", [f.repoDir]);
    assert.equal(kl.code, 0, kl.stderr);
    assert.doesNotMatch(kl.stdout, /2099/);
    assert.match(kl.stdout, new RegExp(good!));
    const r = await s3backup(["restore", "-b", f.repoDir, "-m", "latest", "-f", `${f.dir}/o`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr + r.stdout, new RegExp(good!));
    const k = await kit("restore.sh", [f.repoDir, "latest", `${f.dir}/k`]);
    assert.equal(k.code, 0, k.stderr);
    assert.match(k.stderr, new RegExp(`restoring ${good}`));

    const conf = new TextDecoder().decode(await readAll(await f.store.load(DESCRIPTOR_NAME)));
    for (const spelled of ["2.0", "02"]) {
      await f.store.save(
        DESCRIPTOR_NAME,
        new TextEncoder().encode(conf.replace(/format=\d+/, `format=${spelled}`)),
      );
      const b = await s3backup(["restore", "-b", f.repoDir, "-m", "latest", "-f", `${f.dir}/o2`]);
      assert.equal(b.code, 1, b.stderr);
      assert.match(b.stderr, new RegExp(`Repository format ${spelled} is not supported`));
      const kb = await kit("restore.sh", [f.repoDir, "latest", `${f.dir}/k2`]);
      assert.equal(kb.code, 1, kb.stderr);
      assert.match(kb.stderr, new RegExp(`repository format '${spelled}' is not supported`));
    }
  } finally {
    await f.cleanup();
  }
});

Deno.test("a truncated or garbage meta is damage (exit 1) to both readers, not a wrong password", async () => {
  const f = await fixture();
  try {
    const [good] = [...Deno.readDirSync(f.repoDir)].map((e) => e.name)
      .filter((n) => n.startsWith("meta_"));
    const body = await Deno.readFile(`${f.repoDir}/${good}`);
    for (
      const bad of [body.subarray(0, body.length - 40), crypto.getRandomValues(new Uint8Array(300))]
    ) {
      await Deno.writeFile(`${f.repoDir}/${good}`, bad);
      const r = await s3backup(["restore", "-b", f.repoDir, "-m", "latest", "-f", `${f.dir}/o`]);
      assert.equal(r.code, 1, r.stderr);
      const k = await kit("restore.sh", [f.repoDir, "latest", `${f.dir}/k`]);
      assert.equal(k.code, 1, k.stderr);
      assert.match(
        k.stderr,
        /damaged meta: not a whole openssl container \(cut short or overwritten\)/,
      );
    }
  } finally {
    await f.cleanup();
  }
});

Deno.test("a meta whose size fields lie: the kit's tar stream stays in step; every file right", async () => {
  const f = await fixture();
  try {
    // The contents are the stored ones (their MD5s match): only the sizes lie, one up, one down.
    await hostileMeta(f, [
      { ...file("a.txt", "A"), size: 5000 },
      { ...file("sub/b.txt", "B"), size: 0 },
      file("c.txt", "A"),
    ]);
    const kout = `${f.dir}/k`;
    const k = await kit("restore.sh", [f.repoDir, "hostile", kout]);
    assert.doesNotMatch(k.stderr, /cannot unpack/, k.stderr);
    for (const [p, want] of [["a.txt", "A"], ["sub/b.txt", "B"], ["c.txt", "A"]]) {
      assert.equal(await Deno.readTextFile(`${kout}/${p}`), want, `${p}: ${k.stderr}`);
    }
    assert.equal(k.code, 0, k.stderr);
  } finally {
    await f.cleanup();
  }
});
