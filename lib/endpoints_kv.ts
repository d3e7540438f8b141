// The KV endpoints: Consul's KVS.Apply/Get/List/ListKeys server methods and /v1/kv/ on top.
//
// Two layers, as in Consul. The RPC-shaped layer (the `KVS` object) takes typed arguments and
// QueryOptions and returns a value plus query meta: writes go through Raft with applyCommand,
// reads run through blockingQuery against the state store, so a later RPC transport can carry
// the same calls. The HTTP layer (kvRoutes) parses /v1/kv/<key> requests into those arguments
// and renders the answers exactly as Consul's agent/kvs_endpoint.go does: 404 with an empty
// body and index headers for a missing key, `?raw` bytes, JSON `true`/`false` for writes.
//
// What clients rely on (spec §3.4, §8.2-8.6, §9.1, §9.2, §9.7): the index rules of lib/kvs.ts;
// Flags is a uint64 and must round-trip exactly, so KV responses are serialized here with a
// bigint-aware encoder rather than JSON.stringify; empty PUT bodies store a null Value; keys
// containing `../` or an encoded traversal are refused (Consul 1.21.6+), any other UTF-8 is
// accepted.
//
// Not here: ACLs (the token is accepted and ignored), namespaces and partitions (Enterprise),
// forwarding to another datacenter (`?dc=` naming another one gets `No path to datacenter`).
//
// Invariant: nothing reaches Raft before every parameter has been validated, so a malformed
// request never changes state.
//
// References: Consul agent/kvs_endpoint.go, agent/consul/kvs_endpoint.go (kvsPreApply, Apply,
// Get, List, ListKeys), agent/structs/structs.go (DirEntry, KVSRequest, KeyListRequest).

import { applyCommand, forwardToLeader, type EndpointDeps } from './endpoints.js';
import type { Command } from './fsm.js';
import { HttpError, type AbortSignalLike, type HttpRequest, type HttpResponse, type HttpRoute } from './http.js';
import { goQuote, kvsGet, kvsKeys, kvsList, kvsPreApply, type KvApplyOp, type KvDirEntInput } from './kvs.js';
import type { ReadTxn } from './memdb.js';
import { blockingQuery, checkDatacenter, parseQueryOptions, queryMetaHeaders, type QueryOptions, type QueryReply, UINT64_MAX } from './query.js';
import { StateError, type KvRecord, type QueryResult } from './schema.js';
import type { LockDelay } from './sessions.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** structs.KVSRequest: one KV write. */
export interface KvsApplyRequest {
  readonly Op: KvApplyOp;
  readonly DirEnt: KvDirEntInput;
}

/** What a read returns: the value and the meta blockingQuery reports (index, leader, contact). */

/** The JSON shape of structs.DirEntry (Session omitted when empty, as Consul's omitempty). */
export interface DirEntryJson {
  readonly LockIndex: number;
  readonly Key: string;
  /** A number while it is exact (at most 2^53 - 1), else the bigint. */
  readonly Flags: number | bigint;
  readonly Value: string | null;
  readonly Session?: string;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** Where Consul's 413 text for a KV value points. */
const KV_MAX_VALUE_SIZE_DOC = 'https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size';
/** Traversal forms Consul 1.21.6+ refuses in a key, compared case-insensitively. */
const ENCODED_TRAVERSALS = ['%2e%2e%2f', '%2e%2e/', '..%2f', '%2e%2e%5c', '..%5c'] as const;

// ---------------------------------------------------------------------------------------------
// The RPC-shaped layer

/**
 * Consul's KVS server methods. Writes reject before Raft what Consul's kvsPreApply rejects
 * (`Must provide key`, 500) and answer `false` for a lock refused by lock-delay; reads block
 * per QueryOptions and report the index rules of lib/kvs.ts.
 */
export const KVS = {
  /** KVS.Apply: the FSM's answer (true for set/delete/delete-tree; the outcome otherwise). */
  async Apply(deps: EndpointDeps, args: KvsApplyRequest): Promise<boolean> {
    // On a follower, the leader runs it (Consul's ForwardRPC of KVS.Apply).
    const forwarded = await forwardToLeader(deps, 'KVS.Apply', { Datacenter: deps.config.datacenter, Op: args.Op, DirEnt: args.DirEnt });
    if (forwarded !== undefined) return forwarded.reply === true;
    const command = kvsApplyCommand(lockDelayOf(deps), args);
    if (command === undefined) return false;
    return (await applyCommand(deps, command)) === true;
  },
  /** KVS.Get: the entry as a list of zero or one. */
  Get(deps: EndpointDeps, args: { readonly Key: string }, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<KvRecord[]>> {
    return blockingQuery(deps.query, options, signal, kvsGetQuery(args.Key));
  },
  /** KVS.List: every entry under the prefix. */
  List(deps: EndpointDeps, args: { readonly Key: string }, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<KvRecord[]>> {
    return blockingQuery(deps.query, options, signal, kvsListQuery(args.Key));
  },
  /** KVS.ListKeys: the keys under the prefix, rolled up at Seperator (Consul's spelling). */
  ListKeys(deps: EndpointDeps, args: { readonly Prefix: string; readonly Seperator: string }, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<string[]>> {
    return blockingQuery(deps.query, options, signal, (txn) => kvsKeys(txn, args.Prefix, args.Seperator));
  },
} as const;

/**
 * The leader's half of KVS.Apply before Raft (shared with the RPC transport): the command to
 * propose, or undefined when a lock is refused by lock-delay. Throws HttpError 500 with
 * Consul's text for a missing key.
 */
export function kvsApplyCommand(lockDelay: LockDelay, args: KvsApplyRequest): Command | undefined {
  try {
    if (!kvsPreApply(args.Op, args.DirEnt.Key, lockDelay)) return undefined;
  } catch (error) {
    if (error instanceof StateError) throw new HttpError(500, error.message);
    throw error;
  }
  return { type: 'kvs', op: args.Op, entry: args.DirEnt };
}

/** KVS.Get's query (shared with the RPC transport). */
export function kvsGetQuery(key: string): (txn: ReadTxn) => QueryResult<KvRecord[]> {
  return (txn) => {
    const { index, value } = kvsGet(txn, key);
    return { index, value: value === undefined ? [] : [value] };
  };
}

/** KVS.List's query (shared with the RPC transport). */
export function kvsListQuery(prefix: string): (txn: ReadTxn) => QueryResult<KvRecord[]> {
  return (txn) => kvsList(txn, prefix);
}

// ---------------------------------------------------------------------------------------------
// HTTP routes

/** `/v1/kv/` GET|PUT|DELETE. The body limit is limits.kv_max_value_size, checked before buffering. */
export function kvRoutes(deps: EndpointDeps): HttpRoute[] {
  const max = deps.config.limits.kvMaxValueSize;
  return [
    {
      path: '/v1/kv/',
      methods: ['GET', 'PUT', 'DELETE'],
      bodyBytesMax: max,
      tooLargeText: kvTooLargeText,
      handler: (request) => kvHandler(deps, request),
    },
  ];
}

/** Consul's 413 text for a KV value over kv_max_value_size. */
export function kvTooLargeText(bytes: number, max: number): string {
  return `Request body(${bytes} bytes) too large, max size: ${max} bytes. See ${KV_MAX_VALUE_SIZE_DOC}.`;
}

/**
 * structs.DirEntry as Consul's JSON shows it: Value standard base64 or null, Session omitted
 * when the key is not locked.
 */
const MAX_SAFE_FLAGS = BigInt(Number.MAX_SAFE_INTEGER);

export function dirEntryJson(record: KvRecord): DirEntryJson {
  return {
    LockIndex: record.LockIndex,
    Key: record.Key,
    // A number while exact, so the common response needs no bigint handling when serialized.
    Flags: record.Flags <= MAX_SAFE_FLAGS ? Number(record.Flags) : record.Flags,
    Value: record.Value === null ? null : Buffer.from(record.Value.buffer, record.Value.byteOffset, record.Value.byteLength).toString('base64'),
    ...(record.Session === '' ? {} : { Session: record.Session }),
    CreateIndex: record.CreateIndex,
    ModifyIndex: record.ModifyIndex,
  };
}

/**
 * Go's strconv.ParseUint(text, 10, 64): decimal digits only. Throws HttpError 500 with Go's
 * error text, which Consul's KV endpoint returns as is.
 */
export function parseUint64(text: string): bigint {
  if (!/^[0-9]+$/.test(text)) throw new HttpError(500, `strconv.ParseUint: parsing ${goQuote(text)}: invalid syntax`);
  const value = BigInt(text);
  if (value > UINT64_MAX) throw new HttpError(500, `strconv.ParseUint: parsing ${goQuote(text)}: value out of range`);
  return value;
}

/**
 * Go's url.Values.Encode: keys sorted, `k=v` pairs query-escaped and joined with `&` (Consul
 * echoes the query this way in `Conflicting flags: ...`).
 */
export function goEncodeQuery(query: URLSearchParams): string {
  const keys = [...new Set(query.keys())].sort();
  const pairs: string[] = [];
  for (const key of keys) for (const value of query.getAll(key)) pairs.push(`${goQueryEscape(key)}=${goQueryEscape(value)}`);
  return pairs.join('&');
}

/** 400 `Conflicting flags: <query>\n` when more than one of `flags` is present (conflictingFlags). */
export function refuseConflictingFlags(query: URLSearchParams, flags: readonly string[]): void {
  if (flags.filter((flag) => query.has(flag)).length > 1) throw new HttpError(400, `Conflicting flags: ${goEncodeQuery(query)}\n`);
}

// ---------------------------------------------------------------------------------------------
// Private helpers: HTTP

/** Not async: a parked GET then holds its query's promise and one reaction, no suspended frame. */
function kvHandler(deps: EndpointDeps, request: HttpRequest): HttpResponse | Promise<HttpResponse> {
  checkDatacenter(request, deps.config.datacenter);
  const options = parseQueryOptions(deps.query, request);
  const key = kvKeyOf(request.param);
  switch (request.method) {
    case 'GET':
      return request.query.has('keys') ? kvGetKeys(deps, request, key, options) : kvGet(deps, request, key, options);
    case 'PUT':
      return kvPut(deps, request, key).then((json) => ({ json }));
    case 'DELETE':
      return kvDelete(deps, request, key).then((json) => ({ json }));
    default:
      throw new HttpError(405, `method ${request.method} not allowed`);
  }
}

function kvGet(deps: EndpointDeps, request: HttpRequest, key: string, options: QueryOptions): Promise<HttpResponse> {
  const isRecurse = request.query.has('recurse');
  if (!isRecurse && key === '') throw new HttpError(400, 'Missing key name');
  const { signal } = request;
  const reply = isRecurse ? KVS.List(deps, { Key: key }, options, signal) : KVS.Get(deps, { Key: key }, options, signal);
  return reply.then((value) => kvGetResponse(request, value, isRecurse));
}

function kvGetResponse(request: HttpRequest, reply: QueryReply<KvRecord[]>, isRecurse: boolean): HttpResponse {
  const headers = queryMetaHeaders(reply.meta);
  if (reply.value.length === 0) return notFound(headers);
  const first = reply.value[0];
  if (!isRecurse && request.query.has('raw') && first !== undefined) {
    // Consul's XSS defences for stored values served as a document.
    return {
      status: 200,
      bytes: first.Value ?? new Uint8Array(0),
      contentType: 'text/plain',
      headers: { ...headers, 'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': 'sandbox' },
    };
  }
  const json = isRecurse || first === undefined ? reply.value.map(dirEntryJson) : frozenEntryList(first);
  return { json, headers };
}

/**
 * The JSON list of one record, frozen and cached per record (records are never changed in
 * place: a write stores a new one). Every blocking query woken by a write to the key answers
 * with this same object, which lets lib/http.ts serialize it once for all of them.
 */
function frozenEntryList(record: KvRecord): readonly DirEntryJson[] {
  let list = entryLists.get(record);
  if (list === undefined) {
    list = Object.freeze([Object.freeze(dirEntryJson(record))]);
    entryLists.set(record, list);
  }
  return list;
}

const entryLists = new WeakMap<KvRecord, readonly DirEntryJson[]>();

async function kvGetKeys(deps: EndpointDeps, request: HttpRequest, prefix: string, options: QueryOptions): Promise<HttpResponse> {
  // The misspelt parameter is older; the correct spelling wins when both are given.
  const separator = request.query.get('separator') ?? request.query.get('seperator') ?? '';
  const reply = await KVS.ListKeys(deps, { Prefix: prefix, Seperator: separator }, options, request.signal);
  const headers = queryMetaHeaders(reply.meta);
  if (reply.value.length === 0 && prefix !== '') return notFound(headers);
  return { json: reply.value, headers };
}

async function kvPut(deps: EndpointDeps, request: HttpRequest, key: string): Promise<boolean> {
  if (key === '') throw new HttpError(400, 'Missing key name');
  const { query } = request;
  refuseConflictingFlags(query, ['cas', 'acquire', 'release']);
  let op: KvApplyOp = 'set';
  let flags = 0n;
  let modifyIndex = 0;
  let session = '';
  if (query.has('flags')) flags = parseUint64(query.get('flags') ?? '');
  if (query.has('cas')) {
    modifyIndex = indexOf(parseUint64(query.get('cas') ?? ''));
    op = 'cas';
  }
  if (query.has('acquire')) {
    session = query.get('acquire') ?? '';
    op = 'lock';
  }
  if (query.has('release')) {
    session = query.get('release') ?? '';
    op = 'unlock';
  }
  const max = deps.config.limits.kvMaxValueSize;
  if (request.body.length > max) throw new HttpError(413, kvTooLargeText(request.body.length, max));
  // An empty body stores no value at all (Go's empty bytes.Buffer yields a nil slice).
  const value = request.body.length === 0 ? null : new Uint8Array(request.body);
  const out = await KVS.Apply(deps, { Op: op, DirEnt: { Key: key, Value: value, Flags: flags, Session: session, ModifyIndex: modifyIndex } });
  return op === 'set' ? true : out;
}

async function kvDelete(deps: EndpointDeps, request: HttpRequest, key: string): Promise<boolean> {
  const { query } = request;
  refuseConflictingFlags(query, ['recurse', 'cas']);
  let op: KvApplyOp = 'delete';
  let modifyIndex = 0;
  if (query.has('recurse')) op = 'delete-tree';
  else if (key === '') throw new HttpError(400, 'Missing key name');
  if (query.has('cas')) {
    modifyIndex = indexOf(parseUint64(query.get('cas') ?? ''));
    op = 'delete-cas';
  }
  const out = await KVS.Apply(deps, { Op: op, DirEnt: { Key: key, ModifyIndex: modifyIndex } });
  return op === 'delete-cas' ? out : true;
}

/**
 * The key from the path remainder: repeated slashes collapse and a leading one goes (Go's mux
 * cleans `/v1/kv//a` to `/v1/kv/a`); traversal forms and surrounding spaces are refused with
 * 400, as Consul 1.21.6+ does unless disable_kv_key_validation is set.
 */
function kvKeyOf(param: string): string {
  const key = param.replace(/\/{2,}/g, '/').replace(/^\//, '');
  if (key === '') return key;
  if (key.includes('../') || key.includes('..\\')) throw new HttpError(400, 'key contains path traversal sequence');
  const lower = key.toLowerCase();
  if (ENCODED_TRAVERSALS.some((form) => lower.includes(form))) throw new HttpError(400, 'key contains encoded path traversal sequence');
  if (key.trim() !== key) throw new HttpError(400, 'key must not have leading or trailing whitespace');
  return key;
}

/** A uint64 index as our indexes are held: beyond 2^53 no index exists, so it can never match. */
function indexOf(value: bigint): number {
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
}

/** Consul's 404 for a missing key: no body at all, index headers kept. */
function notFound(headers: Readonly<Record<string, string>>): HttpResponse {
  return { status: 404, bytes: new Uint8Array(0), contentType: '', headers };
}

/** The lock-delay table lives with the state store the queries read. */
function lockDelayOf(deps: EndpointDeps): LockDelay {
  return deps.query.state.lockDelay;
}

/** Go's url.QueryEscape: unreserved bytes as they are, space as `+`, the rest %XX (upper case). */
function goQueryEscape(text: string): string {
  let escaped = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const character = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~]/.test(character)) escaped += character;
    else if (byte === 0x20) escaped += '+';
    else escaped += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return escaped;
}
