// serf queries, the parts that do not touch membership: filter matching, collecting the acks and
// responses to a query we issued, and serf's internal key-management queries (the answers a node
// gives, and the tally the issuer makes of them, which is what `consul keyring` prints).
//
// A query is gossiped like a user event; every node that passes its filters may send an ack
// (when asked) and one response, by UDP, straight to the issuer's Addr:Port, and also through
// RelayFactor random members that forward it (spec wire.md §3.7). The issuer collects them until
// the query's deadline; key queries stop early once every member has answered.
//
// Not here: the query clock, dedup ring and broadcasting (serf.ts), sending bytes (the host).
//
// Invariants: a collector records at most one ack and one response per node, and nothing after it
// is closed; key answers never exceed the response size limit (list-keys truncates, as serf does).
//
// References: hashicorp/serf v0.9.4 serf/query.go (QueryParam, QueryResponse, shouldProcessQuery,
// kRandomMembers), serf/internal_query.go, serf/keymanager.go (streamKeyResp, handleKeyRequest).

import { compileRegex } from './bexpr.js';
import { decodeStdBase64, formatGossipKey, GossipCryptoError, type Keyring } from './gossipcrypto.js';
import { GossipWireError } from './gossipwire.js';
import { decodeFilter, decodeSerfMessage, encodeFilter, encodeSerfMessage, type SerfKeyResponse, type SerfMember } from './serfwire.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** serf QueryParam. `timeoutMs` 0 means the default (GossipInterval × QueryTimeoutMult × ceil(log10(n+1))). */
export interface QueryParams {
  readonly filterNodes?: readonly string[];
  readonly filterTags?: ReadonlyMap<string, string> | Readonly<Record<string, string>>;
  readonly requestAck?: boolean;
  readonly relayFactor?: number;
  readonly timeoutMs?: number;
}

/** The internal key operations (`_serf_<op>`). */
export type KeyOperation = 'install-key' | 'use-key' | 'remove-key' | 'list-keys';

/** serf KeyResponse: the tally of a key query (keymanager.go). */
export interface KeyResponse {
  /** Node name -> error or warning message. */
  readonly messages: Map<string, string>;
  readonly numNodes: number;
  readonly numResp: number;
  readonly numErr: number;
  /** Base64 key -> how many nodes have it installed (list-keys). */
  readonly keys: Map<string, number>;
  /** Base64 primary key -> how many nodes use it (list-keys; '' counts nodes that sent none). */
  readonly primaryKeys: Map<string, number>;
  /** serf's error for the whole operation, or null when every node answered with success. */
  readonly error: string | null;
}

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** Prefix of serf's own queries; they are answered internally and never reach the application. */
export const INTERNAL_QUERY_PREFIX = '_serf_';
/** Acks or responses one collector keeps (the issuer's channel buffers in serf). */
export const QUERY_RESPONSES_MAX = 65536;
/** serf minEncodedKeyLength: bounds how many keys a list-keys answer may try to carry. */
export const MIN_ENCODED_KEY_BYTES = 25;
/** Longest tag-filter regular expression we compile: a bound on what a query can make us parse (serf has none). */
export const TAG_FILTER_EXPR_BYTES_MAX = 256;

// ---------------------------------------------------------------------------------------------
// Exported API

/** QueryParam.encodeFilters: a node filter first (if any), then one tag filter per entry. */
export function encodeQueryFilters(params: QueryParams): Uint8Array[] {
  const filters: Uint8Array[] = [];
  if (params.filterNodes !== undefined && params.filterNodes.length > 0) filters.push(encodeFilter({ kind: 'node', nodes: [...params.filterNodes] }));
  const tags = params.filterTags instanceof Map ? [...params.filterTags.entries()] : Object.entries(params.filterTags ?? {});
  for (const [tag, expr] of tags) filters.push(encodeFilter({ kind: 'tag', tag, expr }));
  return filters;
}

/**
 * serf shouldProcessQuery: every filter must match; a node filter must list us, a tag filter's
 * regexp must match our tag value (unanchored, missing tag = ''). An undecodable filter, an
 * unknown filter type or a bad regexp means "do not process".
 */
export function matchesQueryFilters(filters: readonly Uint8Array[], nodeName: string, tags: ReadonlyMap<string, string>): boolean {
  for (const raw of filters) {
    let filter;
    try {
      filter = decodeFilter(raw);
    } catch (error) {
      if (error instanceof GossipWireError) return false;
      throw error;
    }
    if (filter.kind === 'node') {
      if (!filter.nodes.includes(nodeName)) return false;
    } else if (!matchesTagExpr(filter.expr, tags.get(filter.tag) ?? '')) {
      return false;
    }
  }
  return true;
}

/** The acks and responses to one query we issued (serf QueryResponse). */
export class QueryCollector {
  readonly acks = new Set<string>();
  readonly responses = new Map<string, Uint8Array>();
  /** Responses in arrival order (what serf's ResponseCh would yield). */
  readonly responseOrder: string[] = [];
  private closed = false;

  constructor(
    readonly id: number,
    readonly lTime: bigint,
    readonly name: string,
    readonly deadlineMs: number,
    readonly wantsAck: boolean,
    /** NumMembers when the query was issued (the key manager's expected answer count). */
    readonly numNodes: number,
  ) {}

  /** Closed, or past the deadline (QueryResponse.Finished). */
  isFinished(nowMs: number): boolean {
    return this.closed || nowMs > this.deadlineMs;
  }

  close(): void {
    this.closed = true;
  }

  /** Records an ack; false for a duplicate, a query without acks, or a full or finished collector. */
  addAck(from: string, nowMs: number): boolean {
    if (!this.wantsAck || this.isFinished(nowMs) || this.acks.has(from) || this.acks.size >= QUERY_RESPONSES_MAX) return false;
    this.acks.add(from);
    return true;
  }

  /** Records a response; false for a duplicate or a full or finished collector. */
  addResponse(from: string, payload: Uint8Array, nowMs: number): boolean {
    if (this.isFinished(nowMs) || this.responses.has(from) || this.responses.size >= QUERY_RESPONSES_MAX) return false;
    this.responses.set(from, payload.slice());
    this.responseOrder.push(from);
    return true;
  }
}

/**
 * Answers one internal key query against `keyring` (internal_query.go handleInstallKey/UseKey/
 * RemoveKey/ListKeys). Returns the key-response payload (`08` + nodeKeyResponse) and whether the
 * keyring changed (so the caller persists it). `responseFits` tells whether an encoded answer fits
 * the response size limit; list-keys drops keys until it does.
 */
export function answerKeyQuery(op: KeyOperation, queryPayload: Uint8Array, keyring: Keyring | undefined, responseBytesMax: number, responseFits: (payload: Uint8Array) => boolean): { payload: Uint8Array | null; isChanged: boolean } {
  const response: { result: boolean; message: string; keys: string[]; primaryKey: string } = { result: false, message: '', keys: [], primaryKey: '' };
  let isChanged = false;
  const isEnabled = keyring !== undefined && keyring.isEnabled;
  if (op === 'list-keys') {
    if (!isEnabled) response.message = 'Keyring is empty (encryption not enabled)';
    else {
      response.keys = keyring.listKeys();
      const primary = keyring.getPrimaryKey();
      response.primaryKey = primary === null ? '' : formatGossipKey(primary);
      response.result = true;
    }
    return { payload: fitKeyList(response, responseBytesMax, responseFits), isChanged };
  }
  const key = decodeKeyRequest(queryPayload);
  if (key === null) {
    // serf answers an undecodable request with Result false and no message.
  } else if (!isEnabled) {
    response.message = 'No keyring to modify (encryption not enabled)';
  } else {
    const problem = applyKeyOperation(op, keyring, key);
    if (problem === null) {
      response.result = true;
      isChanged = true;
    } else {
      response.message = problem;
    }
  }
  const payload = encodeSerfMessage({ kind: 'keyResponse', ...response });
  return { payload: responseFits(payload) ? payload : null, isChanged };
}

/** Decodes the base64 key of a key operation (KeyManager.handleKeyRequest); a string is Go's error text. */
export function decodeKeyArgument(text: string): Uint8Array | string {
  try {
    return decodeStdBase64(text);
  } catch (error) {
    if (error instanceof GossipCryptoError) return error.message;
    throw error;
  }
}

/** The payload of a key query: `07` + keyRequest{Key}. */
export function encodeKeyRequest(key: Uint8Array): Uint8Array {
  return encodeSerfMessage({ kind: 'keyRequest', key });
}

/** Tallies the responses to a key query as serf's streamKeyResp and handleKeyRequest do. */
export function summarizeKeyResponses(collector: QueryCollector): KeyResponse {
  const messages = new Map<string, string>();
  const keys = new Map<string, number>();
  const primaryKeys = new Map<string, number>();
  let numResp = 0;
  let numErr = 0;
  for (const from of collector.responseOrder) {
    if (numResp === collector.numNodes) break;
    numResp++;
    const answer = decodeKeyResponse(collector.responses.get(from) ?? new Uint8Array());
    if (typeof answer === 'string') {
      messages.set(from, answer);
      numErr++;
      continue;
    }
    if (!answer.result) {
      messages.set(from, answer.message);
      numErr++;
    }
    if (answer.result && answer.message.length > 0) messages.set(from, answer.message);
    for (const key of answer.keys) keys.set(key, (keys.get(key) ?? 0) + 1);
    primaryKeys.set(answer.primaryKey, (primaryKeys.get(answer.primaryKey) ?? 0) + 1);
  }
  const numNodes = collector.numNodes;
  let error: string | null = null;
  if (numErr !== 0) error = `${numErr}/${numNodes} nodes reported failure`;
  else if (numResp !== numNodes) error = `${numResp}/${numNodes} nodes reported success`;
  return { messages, numNodes, numResp, numErr, keys, primaryKeys, error };
}

/** True once a key query is over: every member answered (serf stops reading then) or it timed out. */
export function isKeyQueryComplete(collector: QueryCollector, nowMs: number): boolean {
  return collector.responses.size >= collector.numNodes || collector.isFinished(nowMs);
}

/** Picks up to `k` distinct members at random that `exclude` does not reject (serf kRandomMembers: 3n tries). */
export function kRandomMembers(k: number, members: readonly SerfMember[], exclude: (member: SerfMember) => boolean, rng: () => number): SerfMember[] {
  const out: SerfMember[] = [];
  const n = members.length;
  for (let i = 0; i < 3 * n && out.length < k; i++) {
    const member = members[Math.floor(rng() * n)];
    if (member === undefined || exclude(member)) continue;
    if (out.some((chosen) => chosen.name === member.name)) continue;
    out.push(member);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Private helpers

function matchesTagExpr(expr: string, value: string): boolean {
  if (expr.length > TAG_FILTER_EXPR_BYTES_MAX) return false;
  const pattern = compileRegex(expr);
  // serf: "failed to compile filter regex" means the query is not processed here.
  if (typeof pattern === 'string') return false;
  return pattern.test(value);
}

function decodeKeyRequest(payload: Uint8Array): Uint8Array | null {
  try {
    if (payload.length === 0) return null;
    // serf decodes payload[1:] whatever the first byte says.
    const request = payload.slice();
    request[0] = 7;
    const message = decodeSerfMessage(request);
    return message.kind === 'keyRequest' ? message.key : null;
  } catch (error) {
    if (error instanceof GossipWireError) return null;
    throw error;
  }
}

/** Applies one mutation; returns the error text serf would put in Message, or null. */
function applyKeyOperation(op: Exclude<KeyOperation, 'list-keys'>, keyring: Keyring, key: Uint8Array): string | null {
  try {
    if (op === 'install-key') keyring.addKey(key);
    else if (op === 'use-key') keyring.useKey(key);
    else keyring.removeKey(key);
    return null;
  } catch (error) {
    if (error instanceof GossipCryptoError) return error.message;
    throw error;
  }
}

/** serf keyListResponseWithCorrectSize: drop keys until the answer fits, saying so in Message. */
function fitKeyList(response: { result: boolean; message: string; keys: string[]; primaryKey: string }, responseBytesMax: number, responseFits: (payload: Uint8Array) => boolean): Uint8Array | null {
  const actual = response.keys.length;
  const maxKeys = Math.floor(responseBytesMax / MIN_ENCODED_KEY_BYTES);
  for (let i = maxKeys; i >= 0; i--) {
    const payload = encodeSerfMessage({ kind: 'keyResponse', ...response });
    if (responseFits(payload)) return payload;
    response.keys = response.keys.slice(0, Math.min(i, response.keys.length));
    response.message = `truncated key list response, showing first ${i} of ${actual} keys`;
  }
  return null;
}

function decodeKeyResponse(payload: Uint8Array): SerfKeyResponse | string {
  if (payload.length < 1 || payload[0] !== 8) return `Invalid key query response type: ${Array.from(payload).join(' ')}`;
  try {
    const message = decodeSerfMessage(payload);
    if (message.kind === 'keyResponse') return message;
  } catch (error) {
    if (!(error instanceof GossipWireError)) throw error;
  }
  return `Failed to decode key query response: ${Array.from(payload).join(' ')}`;
}
