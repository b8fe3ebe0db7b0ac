import assert from "node:assert/strict";
import { CannotOpenError, SourceFile, statOf } from "./source_file.ts";

const te = new TextEncoder();

/** A file written, its lstat taken as the walk takes it; `change` then runs before the read. */
async function readAfter(change: (path: string) => void) {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-source-" });
  const path = `${dir}/f`;
  try {
    Deno.writeFileSync(path, te.encode("walked\n"));
    Deno.utimeSync(path, new Date(1_700_000_000_000), new Date(1_700_000_000_000));
    const walked = statOf(Deno.lstatSync(path));
    change(path);
    return SourceFile.readAsWalkedSync(path, walked);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("readAsWalkedSync: a file as the walk saw it is read with its status after the read", async () => {
  const r = await readAfter(() => {});
  assert.ok(r !== null);
  assert.deepEqual(r.data, te.encode("walked\n"));
  assert.equal(r.after.size, 7);
  assert.equal(r.after.mtimeMs, 1_700_000_000_000);
});

Deno.test("readAsWalkedSync: grown, rewritten, replaced or a FIFO since the walk: null, never a wait", async () => {
  const t = new Date(1_700_000_000_000);
  const changes: [string, (p: string) => void][] = [
    [
      "grown (mtime kept)",
      (p) => (Deno.writeFileSync(p, te.encode("walked\nmore\n")), Deno.utimeSync(p, t, t)),
    ],
    [
      "shrunk (mtime kept)",
      (p) => (Deno.writeFileSync(p, te.encode("w\n")), Deno.utimeSync(p, t, t)),
    ],
    ["rewritten, same size", (p) => Deno.writeFileSync(p, te.encode("WALKED\n"))],
    ["replaced (another inode, same size and mtime)", (p) => {
      Deno.writeFileSync(`${p}.new`, te.encode("other!\n"));
      Deno.utimeSync(`${p}.new`, t, t);
      Deno.renameSync(`${p}.new`, p);
    }],
    ["a FIFO", (p) => {
      Deno.removeSync(p);
      assert.equal(new Deno.Command("mkfifo", { args: [p] }).outputSync().code, 0);
    }],
  ];
  for (const [what, change] of changes) {
    if (what === "a FIFO" && Deno.build.os === "windows") continue;
    assert.equal(await readAfter(change), null, what);
  }
});

Deno.test("readAsWalkedSync: a file gone since the walk cannot be opened", async () => {
  await assert.rejects(readAfter((p) => Deno.removeSync(p)), CannotOpenError);
});
