import assert from "node:assert/strict";
import { UsageError } from "./errors.ts";
import { iniGet, parseIni } from "./ini.ts";

/**
 * Each text and what Python 2.7.18's `ConfigParser.ConfigParser` made of it (`readfp`, then
 * `get(section, key)` of every option; "!error": `get` raised; `error`: reading raised).
 */
const PYTHON2: [string, Record<string, string | boolean>][] = [
  ["[main]\npassword = pw1   ; my comment\n", { "main.password": "pw1" }],
  ["[main]\npassword = a;b ; c\n", { "main.password": "a;b ; c" }],
  ["[main]\npassword=pw;x\n", { "main.password": "pw;x" }],
  ["[main]\npassword: x=y\nPassWord2 = 50%\n", { "main.password": "x=y", "main.password2": "50%" }],
  ["[main]\npassword = %(base)s-x %%\nbase = B%%\n", {
    "main.base": "B%%",
    "main.password": "B%%-x %",
  }],
  ["[main]\np = 100%% %(x)s\nx = 1\n", { "main.p": "100% 1", "main.x": "1" }],
  ["[main]\np = 100%% only\n", { "main.p": "100%% only" }],
  ["[main]\np = a%b %(x)s\nx=1\n", { "main.p": "!error", "main.x": "1" }],
  ["[main]\np = %(X)s\nx=lower\n", { "main.p": "lower", "main.x": "lower" }],
  ["[main]\np = %(x)s\nx = %(y)s\ny = deep%%\n", {
    "main.p": "deep%%",
    "main.x": "deep%%",
    "main.y": "deep%%",
  }],
  ["[main]\np = %(missing)s\n", { "main.p": "!error" }],
  ["[main]\np = line1\n  line2\n\tline3\nq=1\n", {
    "main.p": "line1\nline2\nline3",
    "main.q": "1",
  }],
  ["[main]\np = one\n  ; indented\n", { "main.p": "one\n; indented" }],
  ["; c\n# c\n[main]\nrem x\nREM=1\np=1\n", { "main.p": "1", "main.rem": "1" }],
  ["p=1\n[main]\n", { "error": true }],
  ["[main]\n  p=1\n", { "error": true }],
  ["[main]\nnonsense\n", { "error": true }],
  ["[DEFAULT]\nd=D\n[main]\np=%(d)s/%(__name__)s\n", { "main.d": "D", "main.p": "D/main" }],
  ['[main]\np=""\nq=;x\nr= ; x \n', { "main.p": "", "main.q": ";x", "main.r": "" }],
  ["[main]\np = a # b\n", { "main.p": "a # b" }],
  ["[Main]\np=1\n[main]\nq=2\n[main]\nr=3\n", { "Main.p": "1", "main.q": "2", "main.r": "3" }],
  ["[main]\np=%(q)s\nq=%(p)s\n", { "main.p": "!error", "main.q": "!error" }],
  ["[main]\r\npassword = crlf \r\n", { "main.password": "crlf" }],
  ["[main] trailing\nmy key = v\n", { "main.my key": "v" }],
  ["[main]\npassword = tab\t;c\n", { "main.password": "tab" }],
  ["[main]\np = x\n\n  after blank\n", { "main.p": "x\nafter blank" }],
  ["[main]\np = 50%(x)d\nx=1\n", { "main.p": "!error", "main.x": "1" }],
];

/** What parseIni and iniGet make of `text`, in the same form. */
function ours(text: string): Record<string, string | boolean> {
  let ini;
  try {
    ini = parseIni(text, "s3backup.ini");
  } catch (err) {
    assert.ok(err instanceof UsageError);
    return { error: true };
  }
  const out: Record<string, string> = {};
  for (const [name, keys] of ini.sections) {
    for (const k of new Set([...keys.keys(), ...ini.defaults.keys()])) {
      try {
        out[`${name}.${k}`] = iniGet(ini, name, k, "s3backup.ini")!;
      } catch (err) {
        assert.ok(err instanceof UsageError, String(err));
        out[`${name}.${k}`] = "!error";
      }
    }
  }
  return out;
}

Deno.test("ini: read as Python 2's ConfigParser reads it (inline ; comments, %, %(key)s, continuations)", () => {
  for (const [text, python] of PYTHON2) {
    assert.deepEqual(ours(text), python, JSON.stringify(text));
  }
});

Deno.test("ini: errors name the line or the option, never a value", () => {
  assert.throws(
    () => parseIni("[main]\npassword=x\nnonsense\n", "s3backup.ini"),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message === "Cannot read config s3backup.ini: line 3 is not key=value",
  );
  assert.throws(() => parseIni("password=x\n", "f.ini"), /line 1 comes before any \[section\]/);
  const ini = parseIni("[main]\npassword = s3cr%et%(x)s\n", "f.ini");
  assert.throws(
    () => iniGet(ini, "main", "password", "f.ini"),
    (e: unknown) =>
      e instanceof UsageError && e.message.includes("[main] password") &&
      !e.message.includes("s3cr"),
  );
});

Deno.test("ini: a UTF-8 byte order mark at the start is skipped (Notepad writes one)", () => {
  const ini = parseIni("\uFEFF[main]\r\npassword = pw\r\n", "s3backup.ini");
  assert.equal(iniGet(ini, "main", "password", "s3backup.ini")?.trim(), "pw");
  // Elsewhere it is a character like any other.
  assert.throws(() => parseIni("[main]\n\uFEFF[x\n", "s3backup.ini"), UsageError);
});
