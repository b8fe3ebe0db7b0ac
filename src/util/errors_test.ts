import assert from "node:assert/strict";
import {
  causeOf,
  CorruptDataError,
  CredentialsRefusedError,
  exitCodeOf,
  findCause,
  isFull,
  S3BackupError,
  StoreUnavailableError,
  throwIfUnavailable,
} from "./errors.ts";

Deno.test("errors: causeOf and throwIfUnavailable find a store that is down behind the errors it caused", () => {
  const down = new StoreUnavailableError("No answer from http://127.0.0.1:1 within 2 s");
  const wrapped = new S3BackupError("cannot read object x", {
    cause: new CorruptDataError("cannot download object packs/p", { cause: down }),
  });
  assert.equal(causeOf(wrapped, StoreUnavailableError), down);
  assert.throws(() => throwIfUnavailable(wrapped), (e) => e === down);
  // Damage is not an outage: nothing thrown, nothing found.
  const damaged = new S3BackupError("x", { cause: new CorruptDataError("MD5 mismatch") });
  assert.equal(causeOf(damaged, StoreUnavailableError), null);
  throwIfUnavailable(damaged);
  throwIfUnavailable("not an error");
  assert.equal(exitCodeOf(down), 1);
  // Credentials refused stop a run alike; what to do then differs.
  const refused = new CredentialsRefusedError("S3 GetObject on s3://b/k: ... (ExpiredToken)");
  assert.throws(
    () => throwIfUnavailable(new S3BackupError("x", { cause: refused })),
    (e) => e === refused,
  );
  assert.equal(down.retryWhen, "once the store answers");
  assert.equal(refused.retryWhen, "with credentials the store accepts");
});

Deno.test("errors: findCause follows a few causes, plain objects too, and no cycle forever", () => {
  const enospc = { code: "ENOSPC" };
  const e = new Error("cannot write", { cause: new Error("write", { cause: enospc }) });
  assert.equal(findCause(e, (x) => (x as { code?: string }).code === "ENOSPC"), enospc);
  const a = new Error("a"), b = new Error("b", { cause: a });
  (a as { cause?: unknown }).cause = b; // a cycle
  assert.equal(findCause(a, () => false), null);
});

Deno.test("errors: isFull tells a full disk or spent quota, however deep its cause", () => {
  const cause = (code: string) =>
    new Error("cannot write", { cause: Object.assign(new Error(code), { code }) });
  assert.equal(isFull(cause("ENOSPC")), true);
  assert.equal(isFull(cause("EDQUOT")), true);
  assert.equal(isFull(cause("EACCES")), false);
  assert.equal(isFull(new Error("no code")), false);
});
