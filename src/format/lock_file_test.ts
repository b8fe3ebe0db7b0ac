import assert from "node:assert/strict";
import { formatLockName, parseLockName } from "./layout.ts";
import { formatLock, parseLock } from "./lock_file.ts";

Deno.test("lock names and bodies round trip", () => {
  const t = new Date("2026-11-27T16:31:40.789Z");
  const name = formatLockName("backup", t, "0a1b2c3d");
  assert.equal(name, "locks/backup-20261127T163140Z-0a1b2c3d");
  assert.deepEqual(parseLockName(name), {
    kind: "backup",
    time: new Date("2026-11-27T16:31:40Z"),
    rand: "0a1b2c3d",
  });
  assert.match(formatLockName("prune", t), /^locks\/prune-20261127T163140Z-[0-9a-f]{8}$/);
  for (
    const bad of [
      "locks/backup-20261127T163140Z",
      "backup-20261127T163140Z-0a1b2c3d",
      "locks/Backup-20261127T163140Z-0a1b2c3d",
      "locks/backup-20261327T163140Z-0a1b2c3d",
    ]
  ) {
    assert.equal(parseLockName(bad), null, bad);
  }
  const body = { kind: "prune", host: "web 1\nx", pid: 42, time: t };
  const text = formatLock(body);
  assert.equal(text, "kind prune\nhost web 1\\nx\npid 42\ntime 2026-11-27T16:31:40.789Z\n");
  assert.deepEqual(parseLock(text), body);
  assert.deepEqual(parseLock("time 2026-11-27T16:31:40Z\nkind backup\nfuture yes\n"), {
    kind: "backup",
    host: "?",
    pid: 0,
    time: new Date("2026-11-27T16:31:40Z"),
  });
  assert.throws(() => parseLock("kind backup\n"), SyntaxError);
  assert.throws(() => parseLock("host h\ntime 2026-11-27T16:31:40Z\n"), SyntaxError);
  assert.throws(() => parseLock("\x00\x01garbage"), SyntaxError);
});
