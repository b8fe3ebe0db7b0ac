/** Byte helpers shared by every layer. */

/** Reads a whole (small) stream into memory. For small objects and tests only. */
export async function readAll(
  stream: ReadableStream<Uint8Array>,
  size?: number,
): Promise<Uint8Array> {
  if (size !== undefined) return await readExactly(stream, size);
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const part of stream) {
    parts.push(part);
    total += part.byteLength;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/**
 * A stream of `size` bytes into one buffer of that size (no parts joined); RangeError for a
 * stream of another length (a caller checks the size first: store.ts guardStream).
 */
async function readExactly(stream: ReadableStream<Uint8Array>, size: number) {
  const out = new Uint8Array(size);
  let at = 0;
  for await (const part of stream) {
    if (at + part.byteLength > size) throw new RangeError(`more than ${size} bytes`);
    out.set(part, at);
    at += part.byteLength;
  }
  if (at !== size) throw new RangeError(`${at} bytes, not ${size}`);
  return out;
}

/** Whether two buffers hold the same bytes (null equals nothing). */
export function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  return a !== null && b !== null && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Writes all of `data` to `file` (a write may be short). */
export async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.byteLength) off += await file.write(data.subarray(off));
}

/** The first line of an error's message (or of anything thrown), for one-line reports. */
export function messageOf(err: unknown): string {
  const line = err instanceof Error ? err.message.split("\n")[0] ?? "" : String(err);
  // Deno's words, said as a person would: no `(os error 2): stat '/x'` (the caller names the
  // path), no `Failed to spawn 'x': entity not found`.
  return line.replace(/ \(os error \d+\)(: \w+ '.*')?$/, "")
    .replace(/^Failed to spawn '.*': entity not found$/, "not found");
}

/** Reads from `file` until `buf` is full or the file ends; the byte count. */
export function readFullSync(file: Deno.FsFile, buf: Uint8Array): number {
  let off = 0;
  while (off < buf.length) {
    const n = file.readSync(buf.subarray(off));
    if (n === null) break;
    off += n;
  }
  return off;
}
