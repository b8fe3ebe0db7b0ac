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

/** Writes the objects of `files` (path -> content) and their meta `metaKey` into `dir`. */
export async function legacyBucket(dir: string, files: Record<string, string>, metaKey: string) {
  let lines = "";
  for (const [path, content] of Object.entries(files)) {
    const m = md5(content);
    await Deno.writeFile(`${dir}/${m}`, await encryptLegacy(te.encode(content)));
    lines += `${m} ${path}\n`;
  }
  await Deno.writeFile(`${dir}/${metaKey}`, await encryptLegacy(te.encode(lines)));
}
