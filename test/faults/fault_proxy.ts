/**
 * A small HTTP proxy on loopback in front of an S3 server (moto, Ceph RGW) that injects faults
 * into a seeded share of the requests it forwards: 500 InternalError, 503 SlowDown, a response
 * stalled until the client gives up, a body cut off mid-way (the connection then dies), a listing
 * cut short, a store that ignores Range, RestoreAlreadyInProgress, credentials refused mid-run
 * (ExpiredToken); an archive that thaws slowly (`thawHeads`). Every request is counted by kind, so
 * that tests can say what was tried, and the deletes the server refused are noted. It passes
 * requests on with their Host header, so a server that checks signatures (Ceph RGW) can stand
 * behind it too.
 */
import http from "node:http";
import { pipeline, Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { seeded } from "./harness.ts";

/** Headers of one connection, not of the message. */
const HOP_BY_HOP = ["connection", "keep-alive", "transfer-encoding", "content-encoding"];

export type FaultKind =
  | "500"
  | "slowdown"
  | "stall"
  | "cut"
  | "truncate-list"
  | "hold"
  | "no-range"
  | "restore-in-progress"
  | "expired-token";

/** What a request is, in S3 terms. */
export type RequestKind =
  | "list"
  | "list-uploads"
  | "get"
  | "head"
  | "put"
  | "put-part"
  | "put-retention"
  | "multipart"
  | "delete"
  | "restore-object"
  | "other";

export interface FaultRule {
  fault: FaultKind;
  /** Which requests: by kind, and (optionally) by the object key. */
  kinds: RequestKind[];
  key?: RegExp;
  /** The share of matching requests that get the fault (0..1). */
  share: number;
  /** At most this many faults of this rule (default: no limit). */
  max?: number;
  /** Let the first `after` matching requests through (default 0): the next one is a moment. */
  after?: number;
}

function kindOf(method: string, url: URL): RequestKind {
  const q = url.searchParams;
  const path = url.pathname.split("/").filter((p) => p !== "");
  if (method === "GET" && path.length <= 1) return q.has("uploads") ? "list-uploads" : "list";
  if (method === "GET") return "get";
  if (method === "HEAD") return "head";
  if (method === "PUT" && q.has("partNumber")) return "put-part";
  if (method === "PUT" && q.has("retention")) return "put-retention";
  if (method === "PUT") return "put";
  if (method === "POST" && (q.has("uploads") || q.has("uploadId"))) return "multipart";
  if (method === "POST" && q.has("delete")) return "delete";
  if (method === "POST" && q.has("restore")) return "restore-object";
  if (method === "DELETE") return "delete";
  return "other";
}

function s3Error(status: number, code: string, message: string): Response {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
    `<Message>${message}</Message><RequestId>fault</RequestId></Error>`;
  return new Response(body, { status, headers: { "content-type": "application/xml" } });
}

/** A body that yields the first `keep` bytes of `body`, then fails (the connection dies). */
function cutBody(body: Uint8Array, keep: number): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      c.enqueue(body.subarray(0, keep));
    },
    pull(c) {
      c.error(new Error("fault proxy: connection cut"));
    },
  });
}

export class FaultProxy {
  readonly endpoint: string;
  /** Requests seen, by kind. */
  readonly seen = new Map<RequestKind, number>();
  /** Every request seen, as `<kind> <key>` (without the bucket; a listing: its prefix). */
  readonly log: string[] = [];
  /** Added before every response (a real S3 region's round trip, for benchmarks). */
  delayMs = 0;
  /**
   * An archive's slowness over a server that thaws at once (moto): after a RestoreObject through
   * the proxy, the object reads as being restored for its next `thawHeads` HEADs (x-amz-restore
   * says ongoing-request="true"; a GET meanwhile is 403 InvalidObjectState), and another
   * RestoreObject meanwhile is 409 RestoreAlreadyInProgress, as S3 answers. 0: off.
   */
  thawHeads = 0;
  /** HEADs each thawing object still reads as being restored, by key. */
  readonly #thawing = new Map<string, number>();
  /**
   * Deletes the server refused, as `<key> <code or status>`: a DELETE's error status, or each
   * <Error> of a DeleteObjects answer (which is 200 with per-key errors).
   */
  readonly refusedDeletes: string[] = [];
  /** The headers of each PUT of an object seen (in order). */
  readonly putHeaders: Headers[] = [];
  /** Faults injected, by rule index. */
  readonly injected: number[];
  /** Each fault injected, as `<fault> <kind> <key>`. */
  readonly faults: string[] = [];
  /** Matching requests seen, by rule index (for `after`). */
  #matched: number[] = [];
  readonly #server: Deno.HttpServer;
  readonly #random: () => number;
  readonly #stalled = new Set<() => void>();
  readonly #held: (() => void)[] = [];
  readonly #agent = new http.Agent({ keepAlive: true });
  #rules: FaultRule[];

  constructor(readonly target: string, rules: FaultRule[] = [], seed = 1) {
    this.#rules = rules;
    this.injected = rules.map(() => 0);
    this.#matched = rules.map(() => 0);
    this.#random = seeded(seed);
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => this.#handle(req),
    );
    this.endpoint = `http://127.0.0.1:${(this.#server.addr as Deno.NetAddr).port}`;
  }

  /** Replaces the rules (e.g. none, for the run after the faulty one). */
  setRules(rules: FaultRule[]): void {
    this.#rules = rules;
    this.injected.length = 0;
    this.injected.push(...rules.map(() => 0));
    this.faults.length = 0;
    this.#matched = rules.map(() => 0);
  }

  /** Requests held by a "hold" rule, waiting for releaseHeld(). */
  get held(): number {
    return this.#held.length;
  }

  /** Lets every held request go on to the server, at once. */
  releaseHeld(): void {
    for (const go of this.#held.splice(0)) go();
  }

  async close(): Promise<void> {
    this.releaseHeld();
    for (const release of this.#stalled) release();
    await this.#server.shutdown();
    this.#agent.destroy();
  }

  #pick(kind: RequestKind, key: string): { rule: FaultRule; i: number } | null {
    for (const [i, rule] of this.#rules.entries()) {
      if (!rule.kinds.includes(kind) || (rule.key && !rule.key.test(key))) continue;
      this.#matched[i] = (this.#matched[i] ?? 0) + 1;
      if (this.#matched[i]! <= (rule.after ?? 0)) continue;
      if (rule.max !== undefined && this.injected[i]! >= rule.max) continue;
      if (this.#random() < rule.share) return { rule, i };
    }
    return null;
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const kind = kindOf(req.method, url);
    this.seen.set(kind, (this.seen.get(kind) ?? 0) + 1);
    const key = url.pathname.split("/").slice(2).join("/");
    const what = kind === "list" && key === "" ? url.searchParams.get("prefix") ?? "" : key;
    this.log.push(`${kind} ${decodeURIComponent(what)}`);
    if (kind === "put") this.putHeaders.push(req.headers);
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const hit = this.#pick(kind, decodeURIComponent(key));
    if (hit) {
      this.injected[hit.i]!++;
      this.faults.push(`${hit.rule.fault} ${kind} ${decodeURIComponent(what)}`);
    }
    const fault = hit?.rule.fault;
    if (fault === "500") return s3Error(500, "InternalError", "fault proxy: internal error");
    if (fault === "slowdown") return s3Error(503, "SlowDown", "Please reduce your request rate.");
    if (fault === "hold") {
      // Held until the test lets the held requests go (releaseHeld), then passed on as sent.
      await new Promise<void>((resolve) => this.#held.push(resolve));
    }
    if (fault === "stall") {
      // Past the client's patience: until the proxy closes (bounded all the same).
      await new Promise<void>((resolve) => {
        const release = () => {
          clearTimeout(t);
          this.#stalled.delete(release);
          resolve();
        };
        const t = setTimeout(release, 120_000);
        this.#stalled.add(release);
      });
      return s3Error(503, "SlowDown", "fault proxy: stalled");
    }
    if (fault === "expired-token") {
      return s3Error(400, "ExpiredToken", "The provided token has expired.");
    }
    if (fault === "restore-in-progress") {
      return s3Error(409, "RestoreAlreadyInProgress", "Object restore is already in progress");
    }
    const thawing = await this.#thaw(req, url, kind, decodeURIComponent(key));
    if (thawing) return thawing;
    // "no-range": a store that ignores Range (and If-Match): the object whole, from its start.
    const upstream = await this.#forward(
      req,
      url,
      fault === "no-range" ? ["range", "if-match"] : [],
    );
    if (fault !== "cut" && fault !== "truncate-list") {
      return kind === "delete"
        ? await this.#noteDeletes(req, decodeURIComponent(key), upstream)
        : upstream;
    }
    const body = new Uint8Array(await upstream.arrayBuffer());
    const headers = new Headers(upstream.headers);
    if (fault === "truncate-list") {
      // A listing cut off mid-way, sent whole (its length matches what is sent).
      headers.delete("content-length");
      return new Response(body.subarray(0, Math.floor(body.length / 2)), {
        status: upstream.status,
        headers,
      });
    }
    headers.set("content-length", String(body.length));
    return new Response(cutBody(body, Math.floor(body.length / 2)), {
      status: upstream.status,
      headers,
    });
  }

  async #noteDeletes(req: Request, key: string, res: Response): Promise<Response> {
    if (req.method === "DELETE") {
      if (res.status >= 300) this.refusedDeletes.push(`${key} ${res.status}`);
      return res;
    }
    const body = new Uint8Array(await res.arrayBuffer());
    const text = new TextDecoder().decode(body);
    for (const m of text.matchAll(/<Error>([\s\S]*?)<\/Error>/g)) {
      const at = /<Key>([^<]*)<\/Key>/.exec(m[1]!)?.[1] ?? "?";
      this.refusedDeletes.push(`${at} ${/<Code>([^<]*)</.exec(m[1]!)?.[1] ?? "?"}`);
    }
    if (res.status >= 300) this.refusedDeletes.push(`(DeleteObjects) ${res.status}`);
    return new Response(body, { status: res.status, headers: res.headers });
  }

  /** What an object being thawed answers (`thawHeads`); null: passed on as usual. */
  async #thaw(req: Request, url: URL, kind: RequestKind, key: string): Promise<Response | null> {
    const left = this.#thawing.get(key) ?? 0;
    if (kind === "restore-object" && left === 0) {
      const res = await this.#forward(req, url);
      if (res.ok && this.thawHeads > 0) this.#thawing.set(key, this.thawHeads);
      return res;
    }
    if (left === 0) return null;
    if (kind === "restore-object") {
      return s3Error(409, "RestoreAlreadyInProgress", "Object restore is already in progress");
    }
    if (kind === "get") {
      return s3Error(
        403,
        "InvalidObjectState",
        "The operation is not valid for the object's storage class",
      );
    }
    if (kind !== "head") return null;
    this.#thawing.set(key, left - 1);
    const res = await this.#forward(req, url);
    const headers = new Headers(res.headers);
    headers.set("x-amz-restore", 'ongoing-request="true"');
    return new Response(null, { status: res.status, headers });
  }

  /**
   * Passes the request on as sent, its Host header too (node:http keeps it, fetch would not):
   * a server that checks signatures (Ceph RGW) sees the host the client signed for.
   */
  #forward(req: Request, url: URL, drop: string[] = []): Promise<Response> {
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => {
      if (!drop.includes(k)) headers[k] = v;
    });
    const target = new URL(this.target);
    return new Promise((resolve, reject) => {
      const up = http.request({
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: url.pathname + url.search,
        headers,
        agent: this.#agent,
      }, (res) => {
        const out = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (v === undefined || HOP_BY_HOP.includes(k)) continue;
          out.set(k, Array.isArray(v) ? v.join(", ") : v);
        }
        const empty = req.method === "HEAD" || res.statusCode === 204 || res.statusCode === 304;
        if (empty) res.resume();
        const body = empty ? null : Readable.toWeb(res) as ReadableStream<Uint8Array>;
        resolve(new Response(body, { status: res.statusCode ?? 502, headers: out }));
      });
      up.on("error", reject);
      // A client that dies mid-request (a test's SIGKILL) errors its body: that ends this
      // request upstream too, not the test run (an unhandled stream error would).
      if (req.body) {
        pipeline(Readable.fromWeb(req.body as NodeReadableStream), up, (err) => {
          if (err) reject(err);
        });
      } else up.end();
    });
  }
}
