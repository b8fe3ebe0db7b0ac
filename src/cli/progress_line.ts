/**
 * The one progress line on a terminal: the phase from the first second (a timer redraws it
 * even while nothing is counted, e.g. while a big bucket is listed), counts, the rate,
 * elapsed time, and an ETA once the totals are known. `formatProgress` is pure.
 */

export interface ProgressState {
  phase: string;
  filesDone: number;
  bytesDone: number;
  /** null until known (a backup knows them when its walk ends). */
  totalFiles: number | null;
  totalBytes: number;
  /** What filesDone counts: "files", "objects". */
  unit: string;
  /** "read", "restored": what bytesDone counts. */
  verb: string;
  /** More, as written: "12.0 MiB uploaded". */
  extra: string;
  startedMs: number;
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** `m:ss`, or `h:mm:ss` from an hour. */
export function formatClock(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
  const two = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(sec)}` : `${m}:${two(sec)}`;
}

/** The line for `st` at `nowMs`. */
export function formatProgress(st: ProgressState, nowMs: number): string {
  const elapsed = nowMs - st.startedMs;
  const parts: string[] = [];
  const rate = elapsed >= 1000 ? st.bytesDone / (elapsed / 1000) : 0;
  if (st.totalFiles === null) {
    if (st.filesDone > 0 || st.bytesDone > 0) {
      parts.push(`${st.filesDone} ${st.unit}`, `${formatBytes(st.bytesDone)} ${st.verb}`);
    }
  } else {
    // The share sits beside what it is of: the bytes when they are known, else the count.
    const share = (done: number, all: number) =>
      ` (${all > 0 ? Math.min(100, Math.floor((done / all) * 100)) : 100}%)`;
    const bytesKnown = st.totalBytes > 0;
    parts.push(
      `${st.filesDone}/${st.totalFiles} ${st.unit}` +
        (bytesKnown ? "" : share(st.filesDone, st.totalFiles)),
      bytesKnown
        ? `${formatBytes(st.bytesDone)}/${formatBytes(st.totalBytes)} ${st.verb}` +
          share(st.bytesDone, st.totalBytes)
        : `${formatBytes(st.bytesDone)} ${st.verb}`,
    );
  }
  if (st.extra !== "") parts.push(st.extra);
  if (rate > 0) parts.push(`${formatBytes(Math.round(rate))}/s`);
  parts.push(`${formatClock(elapsed)} elapsed`);
  if (st.totalFiles !== null && rate > 0 && st.bytesDone < st.totalBytes) {
    parts.push(`ETA ${formatClock(((st.totalBytes - st.bytesDone) / rate) * 1000)}`);
  }
  return `${st.phase}: ${parts.join(", ")}`;
}

/** Nothing counted yet, in `phase`, from `startedMs`. */
export function newState(phase: string, startedMs: number): ProgressState {
  return {
    phase,
    filesDone: 0,
    bytesDone: 0,
    totalFiles: null,
    totalBytes: 0,
    unit: "files",
    verb: "read",
    extra: "",
    startedMs,
  };
}

/** `line` cut to fit a terminal of `columns` (one column kept free: no wrap at the edge). */
export function fitLine(line: string, columns: number): string {
  const chars = [...line];
  return chars.length < columns ? line : chars.slice(0, Math.max(1, columns - 1)).join("");
}

/** The terminal's width now (it follows resizes), 80 when it cannot be told. */
function columns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80;
  }
}

/**
 * Draws a ProgressState on stderr when `enabled`, at most 10 times a second and once a second,
 * cut to the terminal's width. Nothing is drawn, and the clock does not run, until the first
 * update: the engine's first event comes after the password is read, so a prompt is never
 * drawn over and the typing is not timed.
 */
export class ProgressLine {
  readonly state: ProgressState;
  #drawn = false;
  #lastDraw = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;

  constructor(readonly enabled: boolean, phase = "starting") {
    this.state = newState(phase, performance.now());
  }

  /** Updates the state and redraws (throttled unless `force`); the first one starts the clock. */
  update(change: Partial<ProgressState>, force = false): void {
    if (this.enabled && !this.#stopped && this.#timer === undefined) {
      this.state.startedMs = performance.now();
      const timer = setInterval(() => this.draw(true), 1000);
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
    Object.assign(this.state, change);
    this.draw(force);
  }

  draw(force = false): void {
    if (!this.enabled || this.#timer === undefined) return;
    const now = performance.now();
    if (!force && now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    const line = fitLine(formatProgress(this.state, now), columns());
    Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[K${line}`));
    this.#drawn = true;
  }

  /** Removes the line (before other output); the next update draws it again. */
  clear(): void {
    if (this.#drawn) {
      Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[K"));
      this.#drawn = false;
    }
  }

  /** Clears the line and stops the timer: the run is over. */
  stop(): void {
    this.clear();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#stopped = true;
  }
}
