import assert from "node:assert/strict";
import { kitConf, withoutCredentials } from "./kit.ts";

Deno.test("kit.conf never holds credentials from the endpoint URL", () => {
  assert.equal(
    withoutCredentials("https://user:secret@s3.example.net:9000/x"),
    "https://s3.example.net:9000/x",
  );
  assert.equal(withoutCredentials("http://AKIA:p%40ss@127.0.0.1:9000"), "http://127.0.0.1:9000");
  assert.equal(withoutCredentials("https://s3.example.net"), "https://s3.example.net");
  assert.equal(withoutCredentials("https://u:p@ss@host:1/x"), "https://host:1/x");
  assert.equal(withoutCredentials("https://s3.example.net/a@b"), "https://s3.example.net/a@b");
  const conf = kitConf({
    store: "s3://b/p",
    endpointUrl: "https://key:topsecret@minio.lan:9000",
    region: "r",
  });
  assert.doesNotMatch(conf, /topsecret|key:/);
  assert.match(conf, /^endpoint_url=https:\/\/minio\.lan:9000$/m);
});
