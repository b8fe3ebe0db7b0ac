/**
 * One pack read for a run (contents.ts): its members as its stream yields them, each member the
 * run wants kept from then until the run is done with it, and no longer. The stream waits while
 * the members kept (and not waited for) pass `limit` bytes, so a run that asks in about the
 * pack's order holds a few MiB of it, whatever the pack's size (a pack of 128 MiB too); one that
 * asks out of order holds what it skipped, as much as the whole pack at worst.
 *
 * A stream that fails once it has begun (damaged, cut short, a download dropped) is not the end:
 * what the run still wants is taken from the pack fetched again whole and read leniently
 * (`whole`). Only an error opening the pack (missing, archived) or fetching it again is the
 * error of every member still wanted.
 */
import type { Member } from "../format/pack.ts";

/** Where a reader's members come from. */
export interface PackSource {
  /**
   * The pack's members as its stream yields them, and a way to stop it (throws: no pack);
   * `onRead` is called before each read of the stream's source.
   */
  open(
    onRead: () => void,
  ): Promise<{ members: AsyncIterator<Member>; cancel: () => Promise<unknown> }>;
  /** What can be read of the pack, fetched again whole (throws: it cannot be). */
  whole(): Promise<Iterable<Member>>;
  /** The error of a member the pack does not hold. */
  noMember(name: string): Error;
}

/** Bytes of members kept (none of them waited for) past which a reader's stream waits. */
export const KEEP_LIMIT = 4 * 1024 * 1024;
/**
 * Bytes of members read, at least, before the asks they answer go on (at the next read of the
 * source, which may wait): a read interleaved with the writes a member at a time took 20% longer.
 */
const BURST = 1024 * 1024;

export class PackReader {
  /** Asks announced and not done yet, by member name. */
  readonly #wanted = new Map<string, number>();
  /** Members read and wanted, the first of each name. */
  readonly #kept = new Map<string, Uint8Array>();
  /** Every name the stream has yielded. */
  readonly #seen = new Set<string>();
  readonly #waiting = new Map<string, PromiseWithResolvers<Uint8Array>[]>();
  #keptBytes = 0;
  /** Asks answered by the stream since it last let them go on, and the bytes read meanwhile. */
  #answered: (() => void)[] = [];
  #burst = 0;
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;
  #state: "new" | "reading" | "ended" = "new";
  #error: unknown = null;
  #stopped = false;
  #wake: (() => void) | null = null;
  #again: Promise<void> | null = null;

  constructor(readonly source: PackSource, readonly limit = KEEP_LIMIT) {}

  /** Bytes of members kept now. */
  get keptBytes(): number {
    return this.#keptBytes;
  }

  get started(): boolean {
    return this.#state !== "new";
  }

  /** Announces one ask of member `name` (before the reading, or it may have gone by). */
  want(name: string): void {
    this.#wanted.set(name, (this.#wanted.get(name) ?? 0) + 1);
  }

  /** One ask of `name` is done; true when no ask is left (the reader is then stopped). */
  done(name: string): boolean {
    const n = (this.#wanted.get(name) ?? 0) - 1;
    if (n > 0) this.#wanted.set(name, n);
    else {
      this.#wanted.delete(name);
      this.#forget(name);
    }
    if (this.#wanted.size > 0) return false;
    this.#stopped = true;
    for (const name of [...this.#kept.keys()]) this.#forget(name);
    this.#kick();
    return true;
  }

  /** Starts reading the pack, unless it is started. */
  start(): void {
    if (this.#state !== "new") return;
    this.#state = "reading";
    this.#read().then(() => this.#end(null), (err) => this.#end(err));
  }

  /** Member `name`'s stored bytes (throws the pack's error, or `noMember`). */
  async get(name: string): Promise<Uint8Array> {
    this.start();
    const kept = this.#kept.get(name);
    if (kept !== undefined) return kept;
    if (this.#state === "ended" || this.#seen.has(name)) return await this.#late(name);
    const w = Promise.withResolvers<Uint8Array>();
    this.#waiting.set(name, [...this.#waiting.get(name) ?? [], w]);
    this.#kick();
    return await w.promise;
  }

  async #read(): Promise<void> {
    const { members, cancel } = await this.source.open(() => this.#beforeRead());
    try {
      while (!this.#stopped) {
        const r = await members.next();
        if (r.done) return;
        this.#take(r.value);
        this.#burst += r.value.bytes.length;
        while (this.#keptBytes > this.limit && this.#waiting.size === 0 && !this.#stopped) {
          this.#answer();
          await new Promise<void>((wake) => this.#wake = wake);
        }
      }
      await cancel().catch(() => {});
    } catch {
      if (!this.#stopped) await this.#fromWhole();
    }
  }

  /** A member the stream yielded: kept when it is wanted, handed to those waiting for it. */
  #take(m: Member): void {
    if (this.#seen.has(m.name)) return;
    this.#seen.add(m.name);
    this.#keep(m);
  }

  #keep(m: Member): void {
    if (this.#kept.has(m.name) || !(this.#wanted.has(m.name) || this.#waiting.has(m.name))) return;
    this.#kept.set(m.name, m.bytes);
    this.#keptBytes += m.bytes.length;
    for (const w of this.#waiting.get(m.name) ?? []) this.#answered.push(() => w.resolve(m.bytes));
    this.#waiting.delete(m.name);
  }

  /**
   * Before a read of the source, which may wait: the asks answered go on once BURST bytes are
   * read, or a millisecond later (the read waits, or the stream is done: not for the next MiB).
   */
  #beforeRead(): void {
    if (this.#answered.length === 0) return;
    if (this.#burst >= BURST) this.#answer();
    else this.#timer ??= setTimeout(() => this.#answer(), 1);
  }

  /** The asks answered go on. */
  #answer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const answered = this.#answered;
    this.#answered = [];
    this.#burst = 0;
    for (const go of answered) go();
  }

  #forget(name: string): void {
    const b = this.#kept.get(name);
    if (b === undefined) return;
    this.#kept.delete(name);
    this.#keptBytes -= b.length;
    if (this.#keptBytes <= this.limit / 2) this.#kick(); // (not a member at a time)
  }

  /** The members still wanted, from the pack read again whole (first of each name). */
  async #fromWhole(): Promise<void> {
    const done = new Set<string>();
    for (const m of await this.source.whole()) {
      if (done.has(m.name)) continue;
      done.add(m.name);
      this.#keep(m);
    }
  }

  #end(err: unknown): void {
    this.#answer();
    this.#state = "ended";
    this.#error = err;
    for (const [name, ws] of this.#waiting) {
      for (const w of ws) w.reject(err ?? this.source.noMember(name));
    }
    this.#waiting.clear();
  }

  /** An ask once the reading has ended, or of a member that went by before it was wanted (read again). */
  async #late(name: string): Promise<Uint8Array> {
    if (this.#error !== null) throw this.#error;
    if (this.#seen.has(name)) await (this.#again ??= this.#fromWhole());
    const kept = this.#kept.get(name);
    if (kept === undefined) throw this.source.noMember(name);
    return kept;
  }

  #kick(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}
