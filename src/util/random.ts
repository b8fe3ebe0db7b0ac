const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** The one source of random names: `bytes` random bytes as lowercase hex. */
export function randomHex(bytes: number): string {
  const r = crypto.getRandomValues(new Uint8Array(bytes));
  let s = "";
  for (const b of r) s += HEX[b];
  return s;
}
