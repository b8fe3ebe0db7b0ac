/**
 * What the AWS CLI reads from its shared config file for a profile: `region`, `endpoint_url`
 * and `ca_bundle` of `[default]` or `[profile NAME]` in `$AWS_CONFIG_FILE` (else
 * `~/.aws/config`). Values are taken raw, as botocore reads them.
 */
import { join } from "node:path";
import { parseIni } from "../util/ini.ts";
import type { S3Settings } from "./s3_settings.ts";

/** The settings the shared config file gives `profile` (default: "default"); {} without one. */
export function profileSettings(
  profile: string | undefined,
  env: (name: string) => string | undefined,
): S3Settings {
  const home = env("HOME") ?? env("USERPROFILE");
  const file = env("AWS_CONFIG_FILE") ?? (home ? join(home, ".aws", "config") : undefined);
  if (file === undefined) return {};
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch {
    return {}; // no config file: nothing from it
  }
  const name = profile ?? "default";
  const ini = parseIni(text, file);
  const section = ini.sections.get(name === "default" ? "default" : `profile ${name}`) ??
    (name === "default" ? undefined : ini.sections.get(name));
  if (section === undefined) return {};
  const out: S3Settings = {};
  const region = section.get("region"), endpoint = section.get("endpoint_url");
  const ca = section.get("ca_bundle");
  if (region) out.region = region;
  if (endpoint) out.endpoint = endpoint;
  if (ca) out.caBundle = ca;
  return out;
}
