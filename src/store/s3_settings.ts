/**
 * The one precedence of S3 connection settings, for the store and for the kit's kit.conf:
 * a flag, then the AWS environment variables, then the config file (`[s3]` of s3backup.ini).
 *
 *   profile   --profile > AWS_PROFILE > [s3] profile  (else "default")
 *   endpoint  --endpoint-url > AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL > [s3] endpoint
 *             > the profile's endpoint_url
 *   region    --region > AWS_REGION > AWS_DEFAULT_REGION > [s3] region > the profile's region
 *             (store default us-east-1)
 *   CA bundle --ca-bundle > AWS_CA_BUNDLE > [s3] ca_bundle > the profile's ca_bundle
 *
 * "The profile's" is the AWS CLI's shared config file (aws_config.ts).
 */
import { UsageError } from "../util/errors.ts";
import { profileSettings } from "./aws_config.ts";

export interface S3Settings {
  endpoint?: string;
  region?: string;
  profile?: string;
  /** PEM file of the certificate authorities to trust for https (instead of the system's). */
  caBundle?: string;
}

/** What one source says. Empty strings count as not set. */
export interface S3SettingSources {
  flags?: S3Settings;
  ini?: S3Settings;
  /** Environment lookup (default: Deno.env, when permitted). */
  env?: (name: string) => string | undefined;
  /** What the shared config file says for a profile (default: aws_config.ts reads it). */
  profileConfig?: (profile: string | undefined) => S3Settings;
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
  const profile = first(src.flags?.profile, env("AWS_PROFILE"), src.ini?.profile);
  const prof = (src.profileConfig ?? ((p) => profileSettings(p, env)))(profile);
  const endpoint = first(
    src.flags?.endpoint,
    env("AWS_ENDPOINT_URL_S3"),
    env("AWS_ENDPOINT_URL"),
    src.ini?.endpoint,
    prof.endpoint,
  );
  const region = first(
    src.flags?.region,
    env("AWS_REGION"),
    env("AWS_DEFAULT_REGION"),
    src.ini?.region,
    prof.region,
  );
  const caBundle = first(
    src.flags?.caBundle,
    env("AWS_CA_BUNDLE"),
    src.ini?.caBundle,
    prof.caBundle,
  );
  if (endpoint !== undefined) out.endpoint = checkEndpoint(endpoint);
  if (region !== undefined) out.region = region;
  if (profile !== undefined) out.profile = profile;
  if (caBundle !== undefined) out.caBundle = caBundle;
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
