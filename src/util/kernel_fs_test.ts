import assert from "node:assert/strict";
import { KERNEL_ROOTS, kernelRootOf } from "./kernel_fs.ts";

Deno.test("kernel_fs: /proc, /sys and /dev and what is in them, by whole components", () => {
  if (Deno.build.os === "windows") return assert.deepEqual(KERNEL_ROOTS, []);
  assert.equal(kernelRootOf("/proc"), "/proc");
  assert.equal(kernelRootOf("/proc/kcore"), "/proc");
  assert.equal(kernelRootOf("/sys/kernel/mm"), "/sys");
  assert.equal(kernelRootOf("/dev/shm/x"), "/dev");
  for (const p of ["/", "/procs", "/system", "/devices/x", "/home/proc", "/srv/dev", "/etc"]) {
    assert.equal(kernelRootOf(p), null, p);
  }
});
