import assert from "node:assert/strict";
import {
  fitLine,
  formatClock,
  formatProgress,
  newState,
  type ProgressState,
} from "./progress_line.ts";

const st = (over: Partial<ProgressState> = {}): ProgressState => ({
  ...newState("scanning", 0),
  ...over,
});

Deno.test("progress line: the phase from the start, then counts, rate, elapsed and an ETA", () => {
  assert.equal(
    formatProgress(st({ phase: "listing the repository" }), 300),
    "listing the repository: 0:00 elapsed",
  );
  assert.equal(
    formatProgress(
      st({ filesDone: 120, bytesDone: 3 * 1024 * 1024, extra: "1.0 MiB uploaded" }),
      3000,
    ),
    "scanning: 120 files, 3.0 MiB read, 1.0 MiB uploaded, 1.0 MiB/s, 0:03 elapsed",
  );
  const known = st({
    phase: "reading",
    filesDone: 16,
    totalFiles: 20,
    bytesDone: 160 * 1024 * 1024,
    totalBytes: 200 * 1024 * 1024,
  });
  assert.equal(
    formatProgress(known, 80_000),
    "reading: 16/20 files, 160.0 MiB/200.0 MiB read (80%), 2.0 MiB/s, 1:20 elapsed, ETA 0:20",
  );
  assert.equal(
    formatProgress(st({ filesDone: 3, totalFiles: 3, unit: "objects", bytesDone: 10 }), 2000),
    "scanning: 3/3 objects (100%), 10 B read, 5 B/s, 0:02 elapsed",
  );
  assert.equal(formatClock(3_725_000), "1:02:05");
});

Deno.test("progress: a line is cut to the terminal's width, one column left free", () => {
  assert.equal(fitLine("reading: 1/2 files", 80), "reading: 1/2 files");
  assert.equal(fitLine("0123456789", 10), "012345678");
  assert.equal(fitLine("€€€€€€", 4), "€€€", "by characters, not bytes");
  assert.equal(fitLine("abc", 1), "a");
});
