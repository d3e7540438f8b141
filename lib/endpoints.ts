// What every HTTP API endpoint module shares (lib/endpoints_kv.ts, lib/endpoints_catalog.ts...):
// the dependencies they are built with, writes through Raft with Consul's error texts, JSON
// request bodies decoded the way Go's encoding/json decodes them, and blocking-read responses.
//
// Writes: Consul's ForwardRPC holds a write while no leader is known, retrying after a random
// stagger of up to rpc_hold_timeout/16, and answers "No cluster leader" once rpc_hold_timeout
// has passed. applyCommand does the same on this server. A follower that knows the leader
// forwards the write there as the Consul RPC method the endpoint stands for (forwardToLeader:
// KVS, Session, Txn, Catalog and Operator writes, over the server port with a connection pool);
// an endpoint without one still answers 500 with NOT_LEADER_PREFIX and the leader's address, as
// the RPC endpoints do (issue 9).
//
// Bodies: Consul decodes with json.Decoder.Decode, which reads ONE value and ignores whatever
// follows it, and whose syntax errors have fixed texts (`invalid character 'x' looking for
// beginning of value`, `unexpected EOF`...). Clients see them after "Request decode failed: ".
// decodeJsonBody reproduces both. Integers outside JavaScript's safe range come back as bigint,
// so uint64 fields (KV Flags in a txn) stay exact; every other number is a JS number.
//
// References: Consul agent/http.go (wrap's error mapping, decodeBody), lib/json.go (DecodeJSON),
// agent/consul/rpc.go (ForwardRPC, canRetry, raftApply); Go encoding/json scanner.go, stream.go.

import type { Command, ApplyResult } from './fsm.js';
import type { RuntimeConfig } from './config.js';
import { HttpError, type HttpRequest, type HttpResponse } from './http.js';
import type { Logger } from './log.js';
import { goQuote } from './kvs.js';
import type { MsgpackValue } from './msgpack.js';
import { leaderFromNotLeaderText, queryMetaHeaders, raftErrorToHttp, waitForLeader, type QueryContext, type QueryMeta } from './query.js';
import { RpcError } from './rpc.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** What every endpoint module is built with. */
export interface EndpointDeps {
  readonly query: QueryContext;
  /** Commits a command through Raft; resolves with the FSM result (rejects with RaftNodeError). */
  apply(command: Command): Promise<ApplyResult>;
  readonly config: RuntimeConfig;
  readonly logger: Logger;
  /** Milliseconds since the epoch. */
  readonly nowMs: () => number;
  /** Known datacenters, nearest first (the WAN pool); absent: only this one. */
  readonly datacenters?: () => string[];
  /** Calls a Consul RPC method at another server (lib/rpc.ts RpcPool); absent: no forwarding. */
  readonly forward?: (address: string, serviceMethod: string, args: unknown) => Promise<MsgpackValue>;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Go's encoding/json maxNestingDepth: deeper bodies are refused with "exceeded max depth". */
export const JSON_NESTING_DEPTH_MAX = 10_000;
/** How many times a forwarded call follows a leader that moved on. */
const FORWARD_HOPS_MAX = 3;
/** Consul's prefix for a body that does not decode. */
export const DECODE_FAILED_PREFIX = 'Request decode failed: ';

// ---------------------------------------------------------------------------------------------
// Exported API

/**
 * Applies a command through Raft. While no leader is known it retries until rpcHoldTimeoutMs,
 * then throws HttpError(500, 'No cluster leader'); a follower that knows the leader throws 500
 * NOT_LEADER_PREFIX + address. Raft errors and FSM refusals become HttpErrors with Consul's
 * status and text. Returns the FSM's value.
 */
export async function applyCommand(deps: EndpointDeps, command: Command): Promise<unknown> {
  const { server } = deps.query;
  for (;;) {
    await waitForLeader(deps.query);
    if (!server.isLeader) throw raftErrorToHttp({ code: 'ERR_NOT_LEADER', leaderAddress: server.leader() });
    let result: ApplyResult;
    try {
      result = await deps.apply(command);
    } catch (error) {
      // Leadership moved between the check and the proposal and no one leads yet: nothing was
      // written, so, as Consul's canRetry allows, hold the write for a leader again.
      if (isNotLeaderError(error) && server.leader() === '') continue;
      throw raftErrorToHttp(error);
    }
    if (!result.ok) throw new HttpError(statusOfRpcError(result.error.message), result.error.message);
    return result.value;
  }
}

/**
 * Consul's ForwardRPC for a write on a follower: holds it until a leader is known (as
 * applyCommand does), then returns undefined when this server is the leader (run it here), or
 * the leader's reply to `serviceMethod`. A leader that moved on answers NOT_LEADER_PREFIX with the
 * new one: the call follows it, within rpc_hold_timeout. The leader's error texts come back as
 * HTTP errors with Consul's statuses; a leader that cannot be reached is a 500.
 */
export async function forwardToLeader(deps: EndpointDeps, serviceMethod: string, args: unknown): Promise<{ readonly reply: MsgpackValue } | undefined> {
  const { server } = deps.query;
  const forward = deps.forward;
  await waitForLeader(deps.query);
  if (server.isLeader || forward === undefined) return undefined;
  let leader = server.leader();
  for (let hop = 0; hop < FORWARD_HOPS_MAX; hop++) {
    try {
      return { reply: await forward(leader, serviceMethod, args) };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (!(error instanceof RpcError && error.code === 'ERR_RPC_REMOTE')) throw new HttpError(500, `rpc error making call: ${message}`);
      const next = leaderFromNotLeaderText(message);
      if (next === undefined || next === '' || next === leader) throw new HttpError(statusOfRpcError(message), message);
      leader = next;
    }
  }
  throw new HttpError(500, 'No cluster leader');
}

/**
 * The request body as JSON: undefined when empty or only whitespace (Go's io.EOF, which each
 * endpoint answers its own way). Otherwise the first JSON value; anything after it is ignored,
 * as json.Decoder does. Throws HttpError(400, 'Request decode failed: <Go's reason>').
 */
export function decodeJsonBody(request: HttpRequest): unknown {
  const parsed = parseFirstJsonValue(request.body);
  if ('error' in parsed && parsed.error !== undefined) throw new HttpError(400, `${DECODE_FAILED_PREFIX}${parsed.error}`);
  return parsed.value;
}

/** The response of a read: the value as JSON and the X-Consul-* headers of its meta. */
export function queryResponse(result: { value: unknown; meta: QueryMeta }, status?: number): HttpResponse {
  return { ...(status === undefined ? {} : { status }), json: result.value, headers: queryMetaHeaders(result.meta) };
}

/** Consul's HTTP status for an RPC error text (agent/http.go wrap): ACL refusals are 403. */
export function statusOfRpcError(message: string): number {
  if (message.startsWith('Permission denied') || message === 'ACL not found') return 403;
  if (message === 'rate limit exceeded') return 429;
  return 500;
}

// ---------------------------------------------------------------------------------------------
// Private helpers

function isNotLeaderError(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'ERR_NOT_LEADER';
}

/** A syntax error with Go's text. */
class JsonSyntaxError extends Error {}

/**
 * Parses the first JSON value of `bytes` as Go's json.Decoder would, returning its value, or
 * Go's error text. Iterative (an explicit stack), so deep nesting cannot overflow ours.
 */
export function parseFirstJsonValue(bytes: Uint8Array): { value: unknown; error?: undefined } | { error: string } {
  const parser = new JsonParser(bytes);
  if (parser.skipSpace() === bytes.length) return { value: undefined };
  try {
    return { value: parser.parseValue() };
  } catch (error) {
    if (error instanceof JsonSyntaxError) return { error: error.message };
    throw error;
  }
}

type Container = { kind: 'array'; items: unknown[] } | { kind: 'object'; fields: Record<string, unknown>; key: string };

const SPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

class JsonParser {
  private position = 0;

  constructor(private readonly bytes: Uint8Array) {}

  skipSpace(): number {
    while (this.position < this.bytes.length && SPACE.has(this.bytes[this.position]!)) this.position++;
    return this.position;
  }

  /** One complete value: containers are tracked on `stack`, scalars parsed directly. */
  parseValue(): unknown {
    const stack: Container[] = [];
    let value: unknown;
    for (;;) {
      const opened = this.openOrScalar(stack);
      if (opened === undefined) continue;
      value = opened.value;
      // Close every container the value completes, then find where the next value goes.
      for (;;) {
        const top = stack[stack.length - 1];
        if (top === undefined) return value;
        if (top.kind === 'array') top.items.push(value);
        else Object.defineProperty(top.fields, top.key, { value, enumerable: true, writable: true, configurable: true });
        const next = this.afterElement(top);
        if (next === 'more') break;
        stack.pop();
        value = top.kind === 'array' ? top.items : top.fields;
      }
    }
  }

  /** Starts a value: pushes an opened container (returns undefined) or returns a scalar. */
  private openOrScalar(stack: Container[]): { value: unknown } | undefined {
    const c = this.peekValueStart();
    if (c === 0x7b || c === 0x5b) {
      if (stack.length >= JSON_NESTING_DEPTH_MAX) throw new JsonSyntaxError('exceeded max depth');
      this.position++;
      this.skipSpace();
      const closing = c === 0x7b ? 0x7d : 0x5d;
      if (this.bytes[this.position] === closing) {
        this.position++;
        return { value: c === 0x7b ? {} : [] };
      }
      if (c === 0x5b) {
        stack.push({ kind: 'array', items: [] });
        return undefined;
      }
      stack.push({ kind: 'object', fields: {}, key: this.objectKey('looking for beginning of object key string') });
      return undefined;
    }
    return { value: this.scalar(c) };
  }

  /** After an element: ',' (returns 'more', positioned at the next value) or the closer. */
  private afterElement(top: Container): 'more' | 'closed' {
    this.skipSpace();
    const c = this.next();
    const closing = top.kind === 'array' ? 0x5d : 0x7d;
    if (c === closing) return 'closed';
    if (c !== 0x2c) throw this.invalid(c, top.kind === 'array' ? 'after array element' : 'after object key:value pair');
    if (top.kind === 'object') top.key = this.objectKey('looking for beginning of object key string');
    return 'more';
  }

  /** A key, its ':' and the space after: leaves the position at the value. */
  private objectKey(context: string): string {
    this.skipSpace();
    const c = this.next();
    if (c !== 0x22) throw this.invalid(c, context);
    const key = this.stringBody();
    this.skipSpace();
    const colon = this.next();
    if (colon !== 0x3a) throw this.invalid(colon, 'after object key');
    return key;
  }

  private peekValueStart(): number {
    this.skipSpace();
    if (this.position >= this.bytes.length) throw new JsonSyntaxError('unexpected EOF');
    return this.bytes[this.position]!;
  }

  private scalar(c: number): unknown {
    if (c === 0x22) {
      this.position++;
      return this.stringBody();
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    if (c === 0x74) return this.literal('true', true);
    if (c === 0x66) return this.literal('false', false);
    if (c === 0x6e) return this.literal('null', null);
    throw this.invalid(c, 'looking for beginning of value');
  }

  private literal(word: string, value: unknown): unknown {
    this.position++;
    for (let i = 1; i < word.length; i++) {
      const c = this.next();
      if (c !== word.charCodeAt(i)) throw this.invalid(c, `in literal ${word} (expecting '${word[i]}')`);
    }
    return value;
  }

  /** A number; it ends at the first byte that cannot continue it (checked by the caller). */
  private number(): number | bigint {
    const start = this.position;
    if (this.bytes[this.position] === 0x2d) {
      this.position++;
      const c = this.next();
      if (!isDigit(c)) throw this.invalid(c, 'in numeric literal');
      this.position--;
    }
    let isInteger = true;
    if (this.bytes[this.position] === 0x30) this.position++;
    else this.digits();
    if (this.bytes[this.position] === 0x2e) {
      isInteger = false;
      this.position++;
      const c = this.next();
      if (!isDigit(c)) throw this.invalid(c, 'after decimal point in numeric literal');
      this.digits();
    }
    const e = this.bytes[this.position];
    if (e === 0x65 || e === 0x45) {
      isInteger = false;
      this.position++;
      if (this.bytes[this.position] === 0x2b || this.bytes[this.position] === 0x2d) this.position++;
      const c = this.next();
      if (!isDigit(c)) throw this.invalid(c, 'in exponent of numeric literal');
      this.digits();
    }
    const text = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + start, this.position - start).toString('latin1');
    const value = Number(text);
    return isInteger && !Number.isSafeInteger(value) ? BigInt(text) : value;
  }

  private digits(): void {
    while (isDigit(this.bytes[this.position] ?? -1)) this.position++;
  }

  /** The rest of a string after its opening quote. */
  private stringBody(): string {
    let text = '';
    let hasEscapes = false;
    let runStart = this.position;
    for (;;) {
      const c = this.next();
      if (c === 0x22) {
        text += this.utf8(runStart, this.position - 1);
        return hasEscapes ? text.replace(LONE_SURROGATE, '\ufffd') : text;
      }
      if (c < 0x20) throw this.invalid(c, 'in string literal');
      if (c !== 0x5c) continue;
      hasEscapes = true;
      text += this.utf8(runStart, this.position - 1);
      text += this.escape();
      runStart = this.position;
    }
  }

  /** One escape after its backslash (stringBody turns lone surrogates into U+FFFD, as Go does). */
  private escape(): string {
    const c = this.next();
    const simple = SIMPLE_ESCAPES.get(c);
    if (simple !== undefined) return simple;
    if (c !== 0x75) throw this.invalid(c, 'in string escape code');
    let code = 0;
    for (let i = 0; i < 4; i++) {
      const h = this.next();
      const digit = hexValue(h);
      if (digit < 0) throw this.invalid(h, 'in \\u hexadecimal character escape');
      code = code * 16 + digit;
    }
    return String.fromCharCode(code);
  }

  private utf8(start: number, end: number): string {
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + start, end - start).toString('utf8');
  }

  /** The next byte; the end of the body mid-value is Go's io.ErrUnexpectedEOF. */
  private next(): number {
    if (this.position >= this.bytes.length) throw new JsonSyntaxError('unexpected EOF');
    return this.bytes[this.position++]!;
  }

  private invalid(c: number, context: string): JsonSyntaxError {
    return new JsonSyntaxError(`invalid character ${quoteChar(c)} ${context}`);
  }
}

const SIMPLE_ESCAPES: ReadonlyMap<number, string> = new Map([
  [0x22, '"'],
  [0x5c, '\\'],
  [0x2f, '/'],
  [0x62, '\b'],
  [0x66, '\f'],
  [0x6e, '\n'],
  [0x72, '\r'],
  [0x74, '\t'],
]);

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Go's quoteChar: the byte as a rune in single quotes, escaped as strconv.Quote would. */
function quoteChar(c: number): string {
  if (c === 0x27) return `'\\''`;
  if (c === 0x22) return `'"'`;
  const quoted = goQuote(String.fromCharCode(c));
  return `'${quoted.slice(1, -1)}'`;
}
