import assert from "node:assert/strict";
import type { Member } from "../format/pack.ts";
import { PackReader, type PackSource } from "./pack_reader.ts";

/** A pack of `n` members m0, m1, ... of `size` bytes each (member i filled with i). */
function members(n: number, size = 1000): Member[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `m${i}`,
    bytes: new Uint8Array(size).fill(i),
  }));
}

/** A source yielding `list` (failing after `failAfter` members), counting what it was asked. */
class FakeSource implements PackSource {
  read = 0;
  opened = 0;
  wholes = 0;
  cancelled = false;
  /** The reader's kept bytes at each member yielded. */
  kept: number[] = [];
  reader: PackReader | null = null;
  constructor(
    readonly list: Member[],
    readonly opts: { failAfter?: number; openError?: Error; whole?: Member[] } = {},
  ) {}

  open(onRead: () => void) {
    this.opened++;
    if (this.opts.openError) return Promise.reject(this.opts.openError);
    const it: AsyncIterator<Member> = {
      next: async () => {
        onRead();
        await new Promise((r) => setTimeout(r, 0)); // (a read takes a turn of the event loop)
        if (this.reader !== null) this.kept.push(this.reader.keptBytes);
        if (this.read === this.opts.failAfter) throw new Error("stream cut");
        const m = this.list[this.read];
        if (m === undefined) return { done: true, value: undefined };
        this.read++;
        return { done: false, value: m };
      },
    };
    return Promise.resolve({ members: it, cancel: () => Promise.resolve(this.cancelled = true) });
  }

  whole() {
    this.wholes++;
    return Promise.resolve(this.opts.whole ?? this.list);
  }

  noMember(name: string) {
    return new Error(`no member ${name}`);
  }
}

function reader(src: FakeSource, limit?: number): PackReader {
  const r = new PackReader(src, limit);
  src.reader = r;
  return r;
}

Deno.test("PackReader: asked in the pack's order, each member is kept from its read to its done, within the limit", async () => {
  const src = new FakeSource(members(200));
  const r = reader(src, 10_000);
  for (let i = 0; i < 200; i++) r.want(`m${i}`);
  for (let i = 0; i < 200; i++) {
    assert.deepEqual(await r.get(`m${i}`), new Uint8Array(1000).fill(i));
    r.done(`m${i}`);
  }
  assert.equal(src.read, 200);
  assert.equal(src.wholes, 0);
  assert.equal(r.keptBytes, 0);
  // The stream waited while more than the limit was kept and not asked for: never a whole
  // pack's worth (200,000 bytes) at once; at most the limit and one member.
  assert.ok(Math.max(...src.kept) <= 11_000, `kept up to ${Math.max(...src.kept)} bytes`);
});

Deno.test("PackReader: asked out of order, every member still comes (the stream reads on while one is waited for)", async () => {
  const src = new FakeSource(members(50));
  const r = reader(src, 2_000);
  for (let i = 0; i < 50; i++) r.want(`m${i}`);
  const got = await Promise.all([49, 0, 25, 48, 1].map((i) => r.get(`m${i}`)));
  assert.deepEqual(got.map((b) => b[0]), [49, 0, 25, 48, 1]);
  for (let i = 0; i < 50; i++) {
    assert.equal((await r.get(`m${i}`))[0], i);
    r.done(`m${i}`);
  }
  assert.equal(src.opened, 1);
});

Deno.test("PackReader: members no one wants are not kept; a member not in the pack is noMember; the first of two names wins", async () => {
  const list = [...members(10), { name: "m3", bytes: new Uint8Array([7]) }];
  const src = new FakeSource(list, { whole: [] });
  const r = reader(src, 0);
  r.want("m3");
  r.want("m9");
  r.want("zz");
  await assert.rejects(r.get("zz"), /no member zz/);
  assert.equal((await r.get("m3")).length, 1000);
  assert.equal(r.keptBytes, 2000); // m3 and m9 only
  r.done("m3");
  r.done("zz");
  assert.equal((await r.get("m9"))[0], 9);
  assert.equal(r.done("m9"), true);
  assert.equal(r.keptBytes, 0);
});

Deno.test("PackReader: a stream cut short gives what it read, the rest from the pack read again whole", async () => {
  const src = new FakeSource(members(20), { failAfter: 8 });
  const r = reader(src);
  for (let i = 0; i < 20; i++) r.want(`m${i}`);
  for (let i = 0; i < 20; i++) {
    assert.equal((await r.get(`m${i}`))[0], i);
    r.done(`m${i}`);
  }
  assert.equal(src.read, 8);
  assert.equal(src.wholes, 1);
});

Deno.test("PackReader: a pack that does not open fails every ask with its error, read once", async () => {
  const src = new FakeSource(members(3), { openError: new Error("missing object packs/x") });
  const r = reader(src);
  r.want("m0");
  r.want("m1");
  await assert.rejects(r.get("m0"), /missing object packs\/x/);
  await assert.rejects(r.get("m1"), /missing object packs\/x/);
  assert.equal(src.opened, 1);
  assert.equal(src.wholes, 0);
});

Deno.test("PackReader: once every ask is done the stream stops (cancelled, not read to its end)", async () => {
  const src = new FakeSource(members(100), {});
  const r = reader(src, 1_000_000);
  r.want("m2");
  assert.equal((await r.get("m2"))[0], 2);
  assert.equal(r.done("m2"), true);
  await new Promise((ok) => setTimeout(ok, 20));
  assert.equal(src.cancelled, true);
  assert.ok(src.read < 100, `read ${src.read} members`);
});

Deno.test("PackReader: a member wanted after it went by is read again whole", async () => {
  const src = new FakeSource(members(5));
  const r = reader(src);
  r.want("m4");
  assert.equal((await r.get("m4"))[0], 4); // m0..m3 went by, not wanted
  r.want("m1");
  assert.equal((await r.get("m1"))[0], 1);
  assert.equal(src.wholes, 1);
});
