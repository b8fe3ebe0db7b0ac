/**
 * What the network and crash tests start from: a fresh bucket on moto behind a fault proxy, and
 * a source tree (the nasty tree, with a big file that takes a multipart upload).
 */
import { makeBucket, removeBucket, type S3Target } from "../s3_env.ts";
import { makeNastyTree, unlock } from "../tree.ts";
import { FaultProxy, type FaultRule } from "./fault_proxy.ts";

export interface ProxiedFixture {
  bucket: string;
  proxy: FaultProxy;
  /** `s3://<bucket>/r`, reached through the proxy with `env`. */
  repo: string;
  src: string;
  dir: string;
  env: Record<string, string>;
  cleanup: () => Promise<void>;
}

export async function proxiedFixture(
  target: S3Target,
  rules: FaultRule[] = [],
  seed = 1,
): Promise<ProxiedFixture> {
  const { bucket, env } = await makeBucket(target);
  const proxy = new FaultProxy(target.endpoint, rules, seed);
  const dir = await Deno.makeTempDir({ prefix: "s3backup-faults-" });
  const src = `${dir}/src`;
  await Deno.mkdir(src);
  makeNastyTree(src, 17 * 1024 * 1024 + 5);
  return {
    bucket,
    proxy,
    repo: `s3://${bucket}/r`,
    src,
    dir,
    // Its own cache folder (files caches, index cache): what a killed run left there is seen.
    env: { ...env, AWS_ENDPOINT_URL: proxy.endpoint, XDG_CACHE_HOME: `${dir}/cache` },
    cleanup: async () => {
      await proxy.close();
      unlock(dir);
      await Deno.remove(dir, { recursive: true });
      await removeBucket(target, bucket);
    },
  };
}
