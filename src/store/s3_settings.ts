/**
 * The one precedence of S3 connection settings, for the store and for the kit's kit.conf:
 * a flag, then the AWS environment variables, then the config file (`[s3]` of s3backup.ini).
 *
 *   endpoint  --endpoint-url > AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL > [s3] endpoint
 *   region    --region > AWS_REGION > AWS_DEFAULT_REGION > [s3] region  (store default us-east-1)
 *   profile   --profile > AWS_PROFILE > [s3] profile
 */
import { UsageError } from "../util/errors.ts";

export interface S3Settings {
  endpoint?: string;
  region?: string;
  profile?: string;
}

/** What one source says. Empty strings count as not set. */
export interface S3SettingSources {
  flags?: S3Settings;
  ini?: S3Settings;
  /** Environment lookup (default: Deno.env, when permitted). */
  env?: (name: string) => string | undefined;
}

function envGet(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // no --allow-env
  }
}

/** The settings in force (see the module doc); unset ones are absent. */
export function resolveS3Settings(src: S3SettingSources = {}): S3Settings {
  const env = src.env ?? envGet;
  const first = (...vals: (string | undefined)[]) => vals.find((v) => v !== undefined && v !== "");
  const out: S3Settings = {};
  const endpoint = first(
    src.flags?.endpoint,
    env("AWS_ENDPOINT_URL_S3"),
    env("AWS_ENDPOINT_URL"),
    src.ini?.endpoint,
  );
  const region = first(
    src.flags?.region,
    env("AWS_REGION"),
    env("AWS_DEFAULT_REGION"),
    src.ini?.region,
  );
  const profile = first(src.flags?.profile, env("AWS_PROFILE"), src.ini?.profile);
  if (endpoint !== undefined) out.endpoint = checkEndpoint(endpoint);
  if (region !== undefined) out.region = region;
  if (profile !== undefined) out.profile = profile;
  return out;
}

/** An endpoint URL as given, or UsageError: http(s)://host[:port][/path], nothing else. */
export function checkEndpoint(endpoint: string): string {
  let url: URL | null = null;
  try {
    url = new URL(endpoint);
  } catch {
    // reported below
  }
  if (url === null || (url.protocol !== "http:" && url.protocol !== "https:") || url.host === "") {
    throw new UsageError(
      `Invalid S3 endpoint ${JSON.stringify(endpoint)}: use http://host[:port] or https://host`,
    );
  }
  return endpoint;
}
