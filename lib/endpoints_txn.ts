// The transaction endpoint: Consul's Txn.Apply and Txn.Read server methods and PUT /v1/txn.
//
// A transaction is a list of operations applied atomically: every op runs, and if any fails
// none takes effect and the client gets 409 with one error per failing op. A transaction with
// no write verb is served as a read (Txn.Read): no Raft, consistency modes honoured, no
// blocking, and only X-Consul-KnownLeader / X-Consul-LastContact headers. Writes go through the
// leader's lock-delay pre-check and then Raft as one `txn` command.
//
// What clients rely on (spec §3.6): `{"Results":[{"KV":DirEntry}],"Errors":null}`; KV results
// carry Value null except get/get-tree; 409 `{"Results":null,"Errors":[{"OpIndex","What"}]}`;
// 413 for too many ops, a value over kv_max_value_size or a body over txn_max_req_len; 400
// `Failed to parse body: ...` for a body that does not decode.
//
// Not here: Node, Service and Check operations. The FSM's txn command carries KV operations
// only, so such ops are answered with a 409 naming them (nothing is applied). Also not here:
// ACLs, namespaces and partitions (Enterprise fields are accepted and ignored).
//
// Invariant: nothing reaches Raft unless every op decoded and passed the pre-checks.
//
// References: Consul agent/txn_endpoint.go (convertOps, Txn, maxTxnOps), agent/consul/
// txn_endpoint.go (Apply, Read, preCheck), agent/structs/txn.go, api/txn.go (TxnKVOp).

import { isPlainObject } from './decode.js';
import { applyCommand, decodeJsonBody, DECODE_FAILED_PREFIX, type EndpointDeps } from './endpoints.js';
import { dirEntryJson } from './endpoints_kv.js';
import { HttpError, type HttpRequest, type HttpResponse, type HttpRoute } from './http.js';
import { goQuote, isKvWriteOp, kvsTxnPreCheck, kvsTxnRead, type KvOp, type TxnError, type TxnKvOp, type TxnResponse } from './kvs.js';
import { checkDatacenter, parseQueryOptions, queryMetaHeaders, readQuery, type QueryOptions, type QueryReply, UINT64_MAX } from './query.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** One decoded op of a /v1/txn body: a KV op, or a catalog op we cannot serve. */
export type TxnInputOp = { readonly KV: TxnKvOp } | { readonly unsupported: 'Node' | 'Service' | 'Check'; readonly isWrite: boolean };

// ---------------------------------------------------------------------------------------------
// Limits

/** Most operations in one transaction (Consul 1.21's maxTxnOps). */
export const TXN_OPS_MAX = 128;
/** Where Consul's 413 text for an oversized txn body points. */
const TXN_MAX_REQ_LEN_DOC = 'https://www.consul.io/docs/agent/config/config-files#txn_max_req_len';
/** Every KV verb a txn may carry (api.KVOp). Wire enum: append only. */
const KV_VERBS: readonly KvOp[] = ['set', 'delete', 'delete-cas', 'delete-tree', 'cas', 'lock', 'unlock', 'get', 'get-or-empty', 'get-tree', 'check-session', 'check-index', 'check-not-exists'];

// ---------------------------------------------------------------------------------------------
// The RPC-shaped layer

/** Consul's Txn server methods, KV operations only. */
export const Txn = {
  /**
   * Txn.Apply: lock-delay pre-check, then one Raft command. Errors (pre-check or FSM) come back
   * in the response with Results null; nothing was applied then.
   */
  async Apply(deps: EndpointDeps, args: { readonly Ops: readonly TxnKvOp[] }): Promise<TxnResponse> {
    const unknown = unknownVerbErrors(args.Ops);
    if (unknown.length > 0) return { Results: null, Errors: unknown };
    const errors = kvsTxnPreCheck(args.Ops, deps.query.state.lockDelay);
    if (errors.length > 0) return { Results: null, Errors: errors };
    return (await applyCommand(deps, { type: 'txn', ops: args.Ops })) as TxnResponse;
  },
  /** Txn.Read: read-only ops on a snapshot, under the request's consistency mode. */
  Read(deps: EndpointDeps, args: { readonly Ops: readonly TxnKvOp[] }, options: QueryOptions): Promise<QueryReply<TxnResponse>> {
    return readQuery(deps.query, options, (txn) => ({ index: 1, value: kvsTxnRead(txn, args.Ops) }));
  },
} as const;

// ---------------------------------------------------------------------------------------------
// HTTP routes

/**
 * PUT /v1/txn. The body limit is max(txn_max_req_len, kv_max_value_size) (Consul keeps the
 * larger for compatibility), checked before buffering.
 */
export function txnRoutes(deps: EndpointDeps): HttpRoute[] {
  const { limits } = deps.config;
  return [
    {
      path: '/v1/txn',
      methods: ['PUT'],
      bodyBytesMax: txnBodyBytesMax(deps),
      tooLargeText: txnTooLargeText,
      handler: (request) => txnHandler(deps, request, limits.kvMaxValueSize),
    },
  ];
}

/** Consul's 413 text for a txn body over the limit. */
export function txnTooLargeText(bytes: number, max: number): string {
  return `Request body(${bytes} bytes) too large, max size: ${max} bytes. See ${TXN_MAX_REQ_LEN_DOC}.`;
}

/**
 * Decodes a /v1/txn body as Go's encoding/json would decode api.TxnOps: field names match
 * case-insensitively, unknown fields are ignored, an op with none of KV/Node/Service/Check is
 * dropped. Throws HttpError 400 `Failed to parse body: ...` or 413.
 */
export function decodeTxnOps(request: HttpRequest, kvMaxValueSize: number): TxnInputOp[] {
  const raw = parseBody(request);
  if (raw === null) return [];
  if (!Array.isArray(raw)) throw parseFailed(`json: cannot unmarshal ${jsonKind(raw)} into Go value of type api.TxnOps`);
  // Go decodes the whole list before counting it.
  const ops: TxnInputOp[] = [];
  const decoded = raw.map((item: unknown) => decodeOp(item));
  if (raw.length > TXN_OPS_MAX) throw new HttpError(413, `Transaction contains too many operations (${raw.length} > ${TXN_OPS_MAX})`);
  for (const op of decoded) {
    if (op === undefined) continue;
    if ('KV' in op) {
      const size = op.KV.DirEnt.Value?.length ?? 0;
      if (size > kvMaxValueSize) throw new HttpError(413, `Value for key ${goQuote(op.KV.DirEnt.Key)} is too large (${size} > ${kvMaxValueSize} bytes)`);
    }
    ops.push(op);
  }
  return ops;
}

// ---------------------------------------------------------------------------------------------
// Private helpers: HTTP

async function txnHandler(deps: EndpointDeps, request: HttpRequest, kvMaxValueSize: number): Promise<HttpResponse> {
  const max = txnBodyBytesMax(deps);
  if (request.body.length > max) throw new HttpError(413, txnTooLargeText(request.body.length, max));
  const ops = decodeTxnOps(request, kvMaxValueSize);
  const writes = ops.filter((op) => ('KV' in op ? isKvWriteOp(op.KV.Verb) : op.isWrite)).length;
  let response: TxnResponse;
  let headers: Record<string, string> = {};
  checkDatacenter(request, deps.config.datacenter);
  if (writes === 0) {
    const options = parseQueryOptions(deps.query, request);
    const unsupported = unsupportedErrors(ops);
    if (unsupported.length > 0) return conflict({ Results: null, Errors: unsupported }, headers);
    const reply = await Txn.Read(deps, { Ops: kvOps(ops) }, options);
    // Txn.Read does not block, so Consul sends only these two of the query headers.
    const meta = queryMetaHeaders(reply.meta);
    headers = pick(meta, ['X-Consul-KnownLeader', 'X-Consul-LastContact']);
    response = reply.value;
  } else {
    const unsupported = unsupportedErrors(ops);
    if (unsupported.length > 0) return conflict({ Results: null, Errors: unsupported }, headers);
    response = await Txn.Apply(deps, { Ops: kvOps(ops) });
  }
  if (response.Errors !== null && response.Errors.length > 0) return conflict(response, headers);
  return { json: txnResponseJson(response), headers };
}

function txnBodyBytesMax(deps: EndpointDeps): number {
  const { limits } = deps.config;
  return Math.max(limits.txnMaxReqLen, limits.kvMaxValueSize);
}

/** Consul's 409 for a transaction that was rolled back (or refused), with its errors. */
function conflict(response: TxnResponse, headers: Readonly<Record<string, string>>): HttpResponse {
  return { status: 409, json: txnResponseJson(response), headers };
}

function txnResponseJson(response: TxnResponse): unknown {
  return {
    Results: response.Results === null ? null : response.Results.map((result) => ({ KV: dirEntryJson(result.KV) })),
    Errors: response.Errors,
  };
}

function kvOps(ops: readonly TxnInputOp[]): TxnKvOp[] {
  return ops.flatMap((op) => ('KV' in op ? [op.KV] : []));
}

/** One error per catalog op: the FSM cannot apply them, so the whole transaction is refused. */
function unsupportedErrors(ops: readonly TxnInputOp[]): TxnError[] {
  const errors: TxnError[] = [];
  ops.forEach((op, opIndex) => {
    if (!('KV' in op)) errors.push({ OpIndex: opIndex, What: `${op.unsupported} operations are not supported in transactions by this server` });
  });
  return errors;
}

/** Consul's state store answers an unknown verb per op (`unknown KV verb "x"`). */
function unknownVerbErrors(ops: readonly TxnKvOp[]): TxnError[] {
  const errors: TxnError[] = [];
  ops.forEach((op, opIndex) => {
    if (!KV_VERBS.includes(op.Verb)) errors.push({ OpIndex: opIndex, What: `unknown KV verb ${goQuote(op.Verb)}` });
  });
  return errors;
}

function pick(headers: Readonly<Record<string, string>>, names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = headers[name];
    if (value !== undefined) picked[name] = value;
  }
  return picked;
}

// ---------------------------------------------------------------------------------------------
// Private helpers: decoding

/** The body as JSON, decoded as Go's json.Decoder does (uint64s beyond 2^53 stay exact bigints). */
function parseBody(request: HttpRequest): unknown {
  let value: unknown;
  try {
    value = decodeJsonBody(request);
  } catch (error) {
    // The txn endpoint words the same decoder errors differently from the others.
    if (error instanceof HttpError && error.message.startsWith(DECODE_FAILED_PREFIX)) throw parseFailed(error.message.slice(DECODE_FAILED_PREFIX.length));
    throw error;
  }
  // Go's decoder reports an empty body as EOF.
  if (value === undefined) throw parseFailed('EOF');
  return value;
}

/** One element of the body; undefined for an op that names no operation (Go skips those). */
function decodeOp(item: unknown): TxnInputOp | undefined {
  if (item === null) return undefined;
  if (!isPlainObject(item)) throw parseFailed(`json: cannot unmarshal ${jsonKind(item)} into Go value of type api.TxnOp`);
  const fields = lowerCaseFields(item);
  const kv = fields.get('kv');
  if (kv !== undefined && kv !== null) return { KV: decodeKvOp(kv) };
  for (const kind of ['Node', 'Service', 'Check'] as const) {
    const op = fields.get(kind.toLowerCase());
    if (op === undefined || op === null) continue;
    if (!isPlainObject(op)) throw typeError(jsonKind(op), `TxnOp.${kind}`, `api.Txn${kind}Op`);
    const verb = lowerCaseFields(op).get('verb') ?? '';
    if (typeof verb !== 'string') throw typeError(jsonKind(verb), `Txn${kind}Op.${kind}.Verb`, `api.${kind}Op`);
    return { unsupported: kind, isWrite: verb !== 'get' };
  }
  return undefined;
}

function decodeKvOp(raw: unknown): TxnKvOp {
  if (!isPlainObject(raw)) throw typeError(jsonKind(raw), 'TxnOp.KV', 'api.TxnKVOp');
  const fields = lowerCaseFields(raw);
  const text = (name: string, goType = 'string'): string => {
    const value = fields.get(name.toLowerCase());
    if (value === undefined || value === null) return '';
    if (typeof value !== 'string') throw typeError(jsonKind(value), `TxnKVOp.KV.${name}`, goType);
    return value;
  };
  const verb = text('Verb', 'api.KVOp');
  const key = text('Key');
  const session = text('Session');
  text('Namespace');
  text('Partition');
  const flags = uint64Field(fields.get('flags'), 'Flags');
  const index = uint64Field(fields.get('index'), 'Index');
  return {
    Verb: verb as KvOp,
    DirEnt: {
      Key: key,
      Value: base64Field(fields.get('value')),
      Flags: flags,
      Session: session,
      ModifyIndex: index > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(index),
    },
  };
}

/** A uint64 JSON number (the decoder hands integers beyond 2^53 over as exact bigints). */
function uint64Field(value: unknown, name: string): bigint {
  if (value === undefined || value === null) return 0n;
  if (typeof value === 'bigint' && value >= 0n && value <= UINT64_MAX) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  const kind = typeof value === 'number' || typeof value === 'bigint' ? `number ${String(value)}` : jsonKind(value);
  throw typeError(kind, `TxnKVOp.KV.${name}`, 'uint64');
}

/** []byte from JSON: standard padded base64, as encoding/json decodes it. */
function base64Field(value: unknown): Uint8Array | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw typeError(jsonKind(value), 'TxnKVOp.KV.Value', '[]uint8');
  const bad = firstBadBase64Byte(value);
  if (bad !== undefined) throw parseFailed(`illegal base64 data at input byte ${bad}`);
  return new Uint8Array(Buffer.from(value, 'base64'));
}

/** The offset Go's base64.StdEncoding reports for invalid input, or undefined if valid. */
function firstBadBase64Byte(text: string): number | undefined {
  // Go's JSON decoder drops \r and \n before decoding.
  const clean = text.replace(/[\r\n]/g, '');
  const body = /^[A-Za-z0-9+/]*/.exec(clean)?.[0] ?? '';
  const rest = clean.slice(body.length);
  if (rest === '' && body.length % 4 === 0) return undefined;
  const padding = body.length % 4 === 2 ? '==' : body.length % 4 === 3 ? '=' : undefined;
  if (padding !== undefined && rest === padding) return undefined;
  // Input ending inside a quantum is reported at the quantum's start; a bad byte at itself.
  if (rest === '') return body.length - (body.length % 4);
  return body.length;
}

function lowerCaseFields(object: Record<string, unknown>): Map<string, unknown> {
  // encoding/json matches field names case-insensitively; the last spelling wins.
  return new Map(Object.entries(object).map(([key, value]) => [key.toLowerCase(), value]));
}

function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'object';
  if (typeof value === 'boolean') return 'bool';
  return typeof value;
}

function typeError(kind: string, field: string, goType: string): HttpError {
  return parseFailed(`json: cannot unmarshal ${kind} into Go struct field ${field} of type ${goType}`);
}

function parseFailed(message: string): HttpError {
  return new HttpError(400, `Failed to parse body: ${message}`);
}
