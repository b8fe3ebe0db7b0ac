import assert from "node:assert/strict";
import { resolveS3Settings } from "./s3_settings.ts";

const env = (vars: Record<string, string>) => (n: string) => vars[n];

Deno.test("S3 settings: flag, then environment, then the ini", () => {
  const ini = { endpoint: "http://ini", region: "ini-1", profile: "inip" };
  assert.deepEqual(resolveS3Settings({ ini, env: env({}) }), ini);
  assert.deepEqual(
    resolveS3Settings({
      ini,
      env: env({
        AWS_ENDPOINT_URL: "http://env",
        AWS_DEFAULT_REGION: "env-2",
        AWS_PROFILE: "envp",
      }),
    }),
    { endpoint: "http://env", region: "env-2", profile: "envp" },
  );
  assert.deepEqual(
    resolveS3Settings({
      ini,
      env: env({
        AWS_ENDPOINT_URL: "http://env",
        AWS_ENDPOINT_URL_S3: "http://env-s3",
        AWS_DEFAULT_REGION: "env-2",
        AWS_REGION: "env-1",
      }),
    }),
    { endpoint: "http://env-s3", region: "env-1", profile: "inip" },
  );
  assert.deepEqual(
    resolveS3Settings({
      flags: { endpoint: "http://flag", region: "flag-1", profile: "flagp" },
      ini,
      env: env({ AWS_ENDPOINT_URL_S3: "http://env-s3", AWS_REGION: "env-1", AWS_PROFILE: "e" }),
    }),
    { endpoint: "http://flag", region: "flag-1", profile: "flagp" },
  );
  assert.deepEqual(
    resolveS3Settings({ flags: { endpoint: "" }, env: env({ AWS_ENDPOINT_URL: "" }) }),
    {},
    "empty values count as not set",
  );
});
