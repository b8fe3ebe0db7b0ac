/** Format 1 (s3backup.py) buckets built by hand with the openssl CLI, for tests. */
import { createHash } from "node:crypto";

const te = new TextEncoder();
export const LEGACY_PW = "legacy pässword";
const md5 = (b: Uint8Array | string) => createHash("md5").update(b).digest("hex");

/** `openssl enc -aes-256-cbc -md md5 -pass env:PW`, as s3backup.py's encryption.py wrote. */
export async function encryptLegacy(data: Uint8Array, pw = LEGACY_PW): Promise<Uint8Array> {
  const p = new Deno.Command("openssl", {
    args: ["enc", "-aes-256-cbc", "-md", "md5", "-pass", "env:PW"],
    env: { PW: pw },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  const [out] = await Promise.all([p.output(), w.write(data).then(() => w.close())]);
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return out.stdout;
}

/**
 * A format 1 bucket's objects: each content of `files` (path -> content) under its MD5, and
 * their meta `metaKey`, encrypted with `pw`; written into the directory `to`, or saved by `to`.
 */
export async function legacyBucket(
  to: string | ((key: string, data: Uint8Array) => Promise<unknown>),
  files: Record<string, string>,
  metaKey: string,
  pw = LEGACY_PW,
): Promise<void> {
  const save = typeof to === "string"
    ? (k: string, b: Uint8Array) => Deno.writeFile(`${to}/${k}`, b)
    : to;
  let lines = "";
  for (const [path, content] of Object.entries(files)) {
    const m = md5(content);
    await save(m, await encryptLegacy(te.encode(content), pw));
    lines += `${m} ${path}\n`;
  }
  await save(metaKey, await encryptLegacy(te.encode(lines), pw));
}
