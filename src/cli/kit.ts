/**
 * The restore kit, embedded in the binary (text imports work under `deno compile`), written to
 * a folder by `s3backup kit -o DIR` and kept in the bucket under restore-kit/ by every backup.
 */
import commonSh from "../../restore-kit/common.sh" with { type: "text" };
import restoreSh from "../../restore-kit/restore.sh" with { type: "text" };
import restoreLegacySh from "../../restore-kit/restore-legacy.sh" with { type: "text" };
import listSh from "../../restore-kit/list.sh" with { type: "text" };
import readme from "../../restore-kit/README.md" with { type: "text" };
import formatMd from "../../FORMAT.md" with { type: "text" };
import { chmodWhereSupported } from "../util/platform.ts";

export interface KitConfig {
  /** The repository as the kit names it: s3://bucket/prefix or an absolute directory. */
  store?: string;
  endpointUrl?: string;
  region?: string;
}

const te = new TextEncoder();

/** An endpoint URL without the `user:password@` it may hold (never copied into the bucket). */
export function withoutCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, "$1");
}

/** `kit.conf`: key=value lines the kit parses (never sources). No secrets. */
export function kitConf(c: KitConfig): string {
  const lines = ["# s3backup restore kit settings (no secrets); flags and env override them"];
  const clean = (v: string) => v.replace(/[\r\n]/g, "");
  if (c.store) lines.push(`store=${clean(c.store)}`);
  if (c.endpointUrl) lines.push(`endpoint_url=${clean(withoutCredentials(c.endpointUrl))}`);
  if (c.region) lines.push(`region=${clean(c.region)}`);
  return lines.join("\n") + "\n";
}

/** The kit's files: name -> content. Scripts end in `.sh`. */
export function kitFiles(c: KitConfig): Map<string, Uint8Array> {
  return new Map([
    ["restore.sh", te.encode(restoreSh)],
    ["restore-legacy.sh", te.encode(restoreLegacySh)],
    ["list.sh", te.encode(listSh)],
    ["common.sh", te.encode(commonSh)],
    ["README.md", te.encode(readme)],
    ["FORMAT.md", te.encode(formatMd)],
    ["kit.conf", te.encode(kitConf(c))],
  ]);
}

/** Writes the kit into `dir` (created if needed); scripts get mode 0755, the rest 0644. */
export async function writeKit(dir: string, c: KitConfig): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, data] of kitFiles(c)) {
    const path = `${dir.replace(/\/+$/, "")}/${name}`;
    await Deno.writeFile(path, data, { mode: name.endsWith(".sh") ? 0o755 : 0o644 });
    await chmodWhereSupported(path, name.endsWith(".sh") ? 0o755 : 0o644);
    written.push(path);
  }
  return written;
}
