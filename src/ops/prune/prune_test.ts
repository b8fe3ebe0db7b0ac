import assert from "node:assert/strict";
import { formatMetaName, parseMetaName } from "../../format/layout.ts";
import { UsageError } from "../../util/errors.ts";
import { checkPolicy, isoWeek, planPrune, type PrunePolicy } from "./prune.ts";

function metas(name: string, times: string[]) {
  return times.map((t) => parseMetaName(formatMetaName(name, new Date(t)))!);
}

/** The times kept by the policy, newest first, with their reasons. */
function kept(times: string[], policy: PrunePolicy, name = "a"): string[] {
  return planPrune(metas(name, times), policy).filter((d) => d.keep).reverse().map((d) =>
    `${d.meta.time.toISOString().slice(0, 16)} ${d.reasons.join(",")}`
  );
}

const TIMES = [
  "2026-01-01T10:00:00Z",
  "2026-01-01T20:00:00Z",
  "2026-01-02T09:00:00Z",
  "2026-01-05T12:00:00Z", // Monday, 2026-W02
  "2026-01-11T12:00:00Z", // Sunday, 2026-W02
  "2026-01-12T12:00:00Z", // Monday, 2026-W03
  "2026-02-01T00:00:00Z", // Sunday, 2026-W05
  "2026-02-15T23:59:59Z", // Sunday, 2026-W07
];

Deno.test("ISO weeks (UTC)", () => {
  assert.equal(isoWeek(new Date("2026-01-01T00:00:00Z")), "2026-W01");
  assert.equal(isoWeek(new Date("2025-12-29T00:00:00Z")), "2026-W01");
  assert.equal(isoWeek(new Date("2025-12-28T23:59:59Z")), "2025-W52");
  assert.equal(isoWeek(new Date("2021-01-03T12:00:00Z")), "2020-W53");
  assert.equal(isoWeek(new Date("2024-12-30T12:00:00Z")), "2025-W01");
  assert.equal(isoWeek(new Date("2026-01-11T23:59:59Z")), "2026-W02");
  assert.equal(isoWeek(new Date("2026-01-12T00:00:00Z")), "2026-W03");
});

Deno.test("keep-last keeps the N newest", () => {
  assert.deepEqual(kept(TIMES, { last: 3 }), [
    "2026-02-15T23:59 last",
    "2026-02-01T00:00 last",
    "2026-01-12T12:00 last",
  ]);
  assert.deepEqual(kept(TIMES, { last: 100 }).length, TIMES.length);
});

Deno.test("keep-daily keeps the newest of each of the N most recent days with backups", () => {
  assert.deepEqual(kept(TIMES, { daily: 5 }), [
    "2026-02-15T23:59 daily",
    "2026-02-01T00:00 daily",
    "2026-01-12T12:00 daily",
    "2026-01-11T12:00 daily",
    "2026-01-05T12:00 daily",
  ]);
  // Two on 2026-01-01: the later one stands for the day.
  assert.deepEqual(kept(TIMES, { daily: 8 }).slice(-2), [
    "2026-01-02T09:00 daily",
    "2026-01-01T20:00 daily",
  ]);
});

Deno.test("keep-weekly (ISO weeks), keep-monthly, keep-yearly", () => {
  assert.deepEqual(kept(TIMES, { weekly: 4 }), [
    "2026-02-15T23:59 weekly",
    "2026-02-01T00:00 weekly",
    "2026-01-12T12:00 weekly",
    "2026-01-11T12:00 weekly", // W02: the Sunday, not the Monday before it
  ]);
  assert.deepEqual(kept(TIMES, { monthly: 2 }), [
    "2026-02-15T23:59 monthly",
    "2026-01-12T12:00 monthly",
  ]);
  assert.deepEqual(kept([...TIMES, "2025-06-01T00:00:00Z"], { yearly: 5 }), [
    "2026-02-15T23:59 yearly",
    "2025-06-01T00:00 yearly",
  ]);
});

Deno.test("rules combine; each reason is listed", () => {
  assert.deepEqual(kept(TIMES, { last: 1, daily: 2, monthly: 3 }), [
    "2026-02-15T23:59 last,daily,monthly",
    "2026-02-01T00:00 daily",
    "2026-01-12T12:00 monthly",
  ]);
});

Deno.test("the newest backup of each name is always kept; names are separate", () => {
  const all = [
    ...metas("a", ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]),
    ...metas("b", ["2026-01-01T12:00:00Z"]),
    ...metas("c_d", ["2025-01-01T12:00:00Z", "2025-01-01T13:00:00Z"]),
  ];
  const plan = planPrune(all, { last: 0 });
  assert.deepEqual(plan.map((d) => [d.meta.key, d.keep, d.reasons]), [
    ["meta_c_d_20250101T120000Z", false, []],
    ["meta_c_d_20250101T130000Z", true, ["newest"]],
    ["meta_a_20260101T000000Z", false, []],
    ["meta_b_20260101T120000Z", true, ["newest"]],
    ["meta_a_20260102T000000Z", true, ["newest"]],
  ]);
  const daily = planPrune(all, { daily: 1 });
  assert.deepEqual(daily.filter((d) => d.keep).map((d) => d.meta.key), [
    "meta_c_d_20250101T130000Z",
    "meta_b_20260101T120000Z",
    "meta_a_20260102T000000Z",
  ]);
  assert.deepEqual(planPrune([], { last: 1 }), []);
});

Deno.test("the policy is checked", () => {
  assert.throws(() => checkPolicy({}), UsageError);
  assert.throws(() => checkPolicy({ last: -1 }), UsageError);
  assert.throws(() => checkPolicy({ daily: 1.5 }), UsageError);
  assert.deepEqual(checkPolicy({ daily: 0 }), { daily: 0 });
});
