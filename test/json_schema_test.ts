/**
 * `--json` held to its written schema (schema/s3backup-json.schema.json) by a JSON Schema
 * validator (Ajv): every command, in the shapes that differ (nested ls/find/diff entries, a list
 * without the password full of nulls, a meta that does not open, damage found by verify, a
 * partial restore, a dry and a real prune), exits as it does without --json. README's table
 * and the schema name the same keys.
 */
import assert from "node:assert/strict";
import { Ajv } from "ajv";
import { s3backup } from "./faults/harness.ts";

/** A parsed --json object (what a test reads of it is checked by the schema first). */
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

const SCHEMA_FILE = new URL("../schema/s3backup-json.schema.json", import.meta.url);
const schema = JSON.parse(await Deno.readTextFile(SCHEMA_FILE));
const validate = new Ajv({ allErrors: true, strict: true, discriminator: true }).compile(schema);

/** The definitions of the schema, by the `schema` value each pins. */
function shapes(): Map<string, { required: string[]; properties: Record<string, unknown> }> {
  const out = new Map();
  for (const d of Object.values(schema.definitions) as Json[]) {
    const name = d.properties?.schema?.const;
    if (typeof name === "string") out.set(name, d);
  }
  return out;
}

Deno.test("json schema: README's --json table names exactly the keys the schema requires", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const table = new Map<string, string[]>();
  for (const m of readme.matchAll(/^\| `(s3backup\.\w+\.v1)`( backups\[\])? \| ([\w, ]+) \|$/gm)) {
    table.set(m[1]! + (m[2] ?? ""), m[3]!.split(", ").sort());
  }
  const defs = shapes();
  assert.equal(defs.size, 10);
  for (const [name, d] of defs) {
    assert.deepEqual(table.get(name), [...d.required].sort(), name);
    assert.deepEqual(Object.keys(d.properties).sort(), [...d.required].sort(), name);
  }
  assert.deepEqual(
    table.get("s3backup.list.v1 backups[]"),
    [...schema.definitions.listed.required].sort(),
  );
});

Deno.test("json schema: every command's --json output, ok or not, is valid", async () => {
  const dir = await Deno.makeTempDir({ prefix: "s3backup-json-" });
  const src = `${dir}/src`, repo = `${dir}/repo`;
  const seen = new Set<string>();
  /** Runs with --json; asserts the exit code, one line on stdout, and the schema. */
  const json = async (args: string[], code = 0, env: Record<string, string> = {}) => {
    const r = await s3backup([...args, "-b", repo, "--json"], { env });
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    const lines = r.stdout.split("\n");
    assert.equal(lines.length, 2, r.stdout);
    const o: Json = JSON.parse(lines[0]!);
    assert.ok(validate(o), `${args.join(" ")}: ${JSON.stringify(validate.errors)}\n${lines[0]}`);
    seen.add(o.schema);
    return o;
  };
  try {
    await Deno.mkdir(`${src}/sub`, { recursive: true });
    await Deno.mkdir(repo);
    await Deno.writeTextFile(`${src}/a.txt`, "A".repeat(3000));
    await Deno.writeTextFile(`${src}/sub/b.txt`, "B");
    await Deno.symlink("a.txt", `${src}/link`);
    await Deno.writeTextFile(`${src}/skip.tmp`, "excluded");
    const backup = (...more: string[]) =>
      json(["backup", "-f", src, "-n", "n", "--exclude", "*.tmp", ...more]);
    const first = await backup();
    assert.equal(first.excluded, 1);
    const noop = await backup("--skip-if-unchanged");
    assert.equal(noop.metaKey, null);
    assert.equal(noop.unchangedSince, first.metaKey);
    await Deno.writeTextFile(`${src}/sub/b.txt`, "B, changed");
    await Deno.remove(`${src}/link`);
    assert.equal((await backup("-s")).simulate, true);
    const second = await backup();

    // Reading: the nested shapes.
    const ls = await json(["ls", "-m", first.metaKey]);
    assert.deepEqual(ls.entries.map((e: { type: string }) => e.type).sort(), ["d", "f", "f", "l"]);
    const found = await json(["find", "*.txt"]);
    assert.equal(found.found.length, 4);
    const diff = await json(["diff", first.metaKey, second.metaKey]);
    assert.deepEqual(diff.changes.map((c: { kind: string }) => c.kind).sort(), [
      "changed",
      "removed",
    ]);
    await json(["stats"]);
    await json(["kit", "--verify"]);
    await json(["restore", "-m", "latest", "-f", `${dir}/out`]);
    await json(["restore", "-m", "latest", "-f", `${dir}/out2`, "-s"]);
    await json(["verify", "--read-data"]);

    // Without the password: list's nulls.
    const blind = await json(["list"], 0, { S3BACKUP_PASSWORD: "" });
    assert.equal(blind.backups[0].files, null);
    assert.equal(blind.backups[0].host, null);

    // Damage: a meta that does not open (list's error, verify's damagedMetas, exit 3), a content
    // spoilt (restore partial: exit 3; verify --read-data: corrupt), a kit file changed.
    const metaFile = `${repo}/${first.metaKey}`;
    await Deno.writeFile(metaFile, new Uint8Array(Deno.statSync(metaFile).size));
    const listed = await json(["list", "--cache-dir", `${dir}/fresh-cache`]);
    assert.match(listed.backups.find((b: { meta: string }) => b.meta === first.metaKey).error, /./);
    const v = await json(["verify"], 3);
    assert.deepEqual(v.damagedMetas, [first.metaKey]);
    const packs = [...Deno.readDirSync(`${repo}/packs`)].map((e) => `${repo}/packs/${e.name}`);
    for (const p of packs) {
      const bytes = Deno.readFileSync(p);
      bytes[bytes.length - 20]! ^= 1;
      Deno.writeFileSync(p, bytes);
    }
    const partial = await json(["restore", "-m", second.metaKey, "-f", `${dir}/out3`], 3);
    assert.ok(partial.failed > 0);
    const vr = await json(["verify", "--read-data", "-m", second.metaKey], 3);
    assert.ok(vr.corrupt > 0);
    const kitFile = [...Deno.readDirSync(`${repo}/restore-kit`)][0]!.name;
    await Deno.writeTextFile(`${repo}/restore-kit/${kitFile}`, "changed\n", { append: true });
    const kit = await json(["kit", "--verify", "-m", second.metaKey], 3);
    assert.deepEqual(kit.problems, [{ file: kitFile, kind: "changed" }]);

    // Prune: dry, then real (the damaged meta is removed by --keep-last 1).
    const dry = await json(["prune", "--keep-last", "1", "--dry-run"]);
    assert.equal(dry.dryRun, true);
    const p = await json(["prune", "--keep-last", "1"]);
    assert.deepEqual(p.metasRemoved, [first.metaKey]);
    assert.deepEqual([...seen].sort(), [...shapes().keys()].sort(), "every schema was seen");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
