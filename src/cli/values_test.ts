import assert from "node:assert/strict";
import { UsageError } from "../util/errors.ts";
import {
  checkStorageClass,
  formatDuration,
  parseDuration,
  parseJobs,
  parseKeep,
  parseMaxUnused,
  parseSubset,
  parseTime,
  splitCommand,
} from "./values.ts";

Deno.test("counts and durations are checked", () => {
  assert.equal(parseKeep("--keep-last", "7"), 7);
  for (const bad of ["", "-1", "1.5", "x", "1e3"]) {
    assert.throws(() => parseKeep("--keep-last", bad), UsageError, bad);
  }
  assert.equal(parseDuration("0"), 0);
  assert.equal(parseDuration("90s"), 90_000);
  assert.equal(parseDuration("30m"), 1_800_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("1.5h"), 5_400_000);
  assert.equal(parseDuration("2d"), 172_800_000);
  assert.equal(parseDuration("1w"), 604_800_000);
  for (const bad of ["", "1", "h", "1x", "-1h", "1h 30m", "1hh"]) {
    assert.throws(() => parseDuration(bad), UsageError, bad);
  }
  assert.equal(formatDuration(0), "0s");
  assert.equal(formatDuration(3_600_000), "1h");
  assert.equal(formatDuration(5_430_000), "1h30m30s");
  assert.equal(formatDuration(172_800_000), "2d");
});

Deno.test("subset parsing", () => {
  assert.equal(parseSubset("10%"), 0.1);
  assert.equal(parseSubset("100%"), 1);
  assert.equal(parseSubset("2.5%"), 0.025);
  for (const bad of ["0%", "101%", "10", "-5%", "x%", ""]) {
    assert.throws(() => parseSubset(bad), UsageError, bad);
  }
});

Deno.test("--jobs parsing", () => {
  assert.equal(parseJobs("1"), 1);
  assert.equal(parseJobs("256"), 256);
  for (const bad of ["0", "257", "1.5", "-2", "x", ""]) {
    assert.throws(() => parseJobs(bad), UsageError, bad);
  }
});

Deno.test("storage class names", () => {
  assert.equal(checkStorageClass("STANDARD_IA", "x"), "STANDARD_IA");
  for (const bad of ["standard", "", "STANDARD IA", "A"]) {
    assert.throws(() => checkStorageClass(bad, "x"), UsageError, bad);
  }
});

Deno.test("splitCommand: words as a shell splits them, without a shell", () => {
  assert.deepEqual(splitCommand(`pass show "backup/s3 key"`), ["pass", "show", "backup/s3 key"]);
  assert.deepEqual(splitCommand(`a 'b c' d\\ e "f \\"g\\" \\$h" i''j`), [
    "a",
    "b c",
    "d e",
    'f "g" $h',
    "ij",
  ]);
  assert.deepEqual(splitCommand("  x\t y  "), ["x", "y"]);
  assert.deepEqual(splitCommand(`echo ""`), ["echo", ""]);
  assert.throws(() => splitCommand(`echo 'x`), /unterminated ' quote/);
  assert.throws(() => splitCommand(`echo "x`), /unterminated " quote/);
});

Deno.test('--as-of takes what the help shows: a date, a time, 3d and "3d ago"', () => {
  const now = Date.now();
  for (const v of ["3d", "3d ago", "1h ago", "1h30m  ago"]) {
    const t = parseTime(v, "--as-of").getTime();
    assert.ok(t < now && t > now - 4 * 86_400_000, v);
  }
  assert.equal(parseTime("3d ago", "--as-of").getTime() <= now - 3 * 86_400_000 + 1000, true);
  assert.equal(parseTime("2026-11-30", "--as-of").toISOString(), "2026-11-30T00:00:00.000Z");
  for (const v of ["ago", "3 days ago", "yesterday", "3d from now"]) {
    assert.throws(() => parseTime(v, "--as-of"), /use a time such as/, v);
  }
});

Deno.test("--max-unused: a share of the used bytes, a size, or unlimited; else one line", () => {
  assert.deepEqual(parseMaxUnused("5%"), { percent: 5 });
  assert.deepEqual(parseMaxUnused("0.5%"), { percent: 0.5 });
  assert.deepEqual(parseMaxUnused("500M"), { bytes: 500 * 1024 * 1024 });
  assert.deepEqual(parseMaxUnused("1GiB"), { bytes: 1024 ** 3 });
  assert.deepEqual(parseMaxUnused("0"), { bytes: 0 });
  assert.equal(parseMaxUnused("unlimited"), null);
  for (const bad of ["", "five", "-1%", "5 %", "1X"]) {
    assert.throws(
      () => parseMaxUnused(bad),
      (e) => e instanceof UsageError && /--max-unused/.test(e.message),
    );
  }
});
