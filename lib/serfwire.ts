// serf's messages as bytes: the payloads serf puts inside memberlist user messages, the push/pull
// user-state tail, query filters and internal-query payloads, and the tags serf encodes into
// memberlist node metadata.
//
// Framing (shared/spec/wire.md §3.1): a serf message is `[type][msgpack map]`; in a gossip packet
// it rides as a memberlist user part, `08 <type> <map>`. Push/pull state is `02 <map>` in the
// memberlist push/pull tail. A relay is `09 {DestAddr, DestName} <inner type> <inner map>`: the
// relaying member forwards the inner bytes as a user packet. Key requests and responses and
// conflict responses are the first byte of a query or query-response payload (types 6, 7, 8).
// Tags (§3.4): `ff` + msgpack map[string]string when the serf protocol is ≥3, else the bare role.
//
// Bodies use go-msgpack 0.5.5's dialect and the decoding leniency described in gossipwire.ts,
// whose Go-struct helpers and GossipWireError this module shares (serf is a memberlist delegate:
// one error type covers a whole gossip packet). Lamport times are uint64 in Go and bigint here,
// exact over the whole range; Go wraps them at 2^64 and so must the clocks that use these values.
//
// Not here: clocks, intents, event and query buffers, coalescing, filter matching (regexps),
// choosing relays; only bytes. Consul's tag set (role, dc, vsn...) is built by its callers.
//
// Invariants: decoders throw nothing but GossipWireError; encodeTags refuses tags that would
// exceed META_BYTES_MAX, as serf's SetTags does; decoded byte fields are copies.
//
// References: hashicorp/serf v0.9.4 serf/messages.go (types, structs, encodeMessage,
// encodeRelayMessage, encodeFilter), serf/serf.go (userEvents, Member, encodeTags, decodeTags),
// serf/delegate.go (NotifyMsg, LocalState, MergeRemoteState), serf/internal_query.go
// (nodeKeyResponse, conflict responses), serf/keymanager.go (keyRequest).

import { MsgpackReader, type MsgpackValue } from './msgpack.js';
import { asStringMap, asWireError, encodeGoMessage, GoStruct, GossipWireError, META_BYTES_MAX, nilIfEmpty, RAW_STRINGS, readGoStruct, readGoStructFrom, uintField } from './gossipwire.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** serf message type bytes (messages.go). Wire enum: append only. */
export const SerfMessageType = {
  leave: 0,
  join: 1,
  pushPull: 2,
  userEvent: 3,
  query: 4,
  queryResponse: 5,
  conflictResponse: 6,
  keyRequest: 7,
  keyResponse: 8,
  relay: 9,
} as const;
export type SerfMessageType = (typeof SerfMessageType)[keyof typeof SerfMessageType];

/** Query and query-response flag bits. Wire enum: append only. */
export const QueryFlag = { ack: 1, noBroadcast: 2 } as const;

/** Query filter type bytes. Wire enum: append only. */
export const FilterType = { node: 0, tag: 1 } as const;

/** serf MemberStatus numbers (what Consul exposes). Wire enum: append only. */
export const MemberStatus = { none: 0, alive: 1, leaving: 2, left: 3, failed: 4 } as const;

/** serf LamportTime: a uint64. */
export type LamportTime = bigint;

export interface SerfJoin {
  readonly lTime: LamportTime;
  readonly node: string;
}

export interface SerfLeave {
  readonly lTime: LamportTime;
  readonly node: string;
  readonly prune: boolean;
}

/** messageUserEvent; `cc` = may be coalesced. */
export interface SerfUserEvent {
  readonly lTime: LamportTime;
  readonly name: string;
  readonly payload: Uint8Array;
  readonly cc: boolean;
}

/** messageQuery. `filters` are encoded filters (encodeFilter); `timeoutNs` a Go time.Duration. */
export interface SerfQuery {
  readonly lTime: LamportTime;
  readonly id: number;
  readonly addr: Uint8Array;
  readonly port: number;
  readonly sourceNode: string;
  readonly filters: Uint8Array[];
  readonly flags: number;
  readonly relayFactor: number;
  readonly timeoutNs: number;
  readonly name: string;
  readonly payload: Uint8Array;
}

export interface SerfQueryResponse {
  readonly lTime: LamportTime;
  readonly id: number;
  readonly from: string;
  readonly flags: number;
  readonly payload: Uint8Array;
}

/** One slot of serf's event ring: the events seen at one Lamport time. */
export interface SerfUserEvents {
  readonly lTime: LamportTime;
  readonly events: { readonly name: string; readonly payload: Uint8Array }[];
}

/** messagePushPull: the user-state tail of a memberlist push/pull. */
export interface SerfPushPull {
  readonly lTime: LamportTime;
  readonly statusLTimes: Map<string, LamportTime>;
  readonly leftMembers: string[];
  readonly eventLTime: LamportTime;
  /** serf sends its whole ring (512 slots, mostly null); fewer entries are fine. */
  readonly events: (SerfUserEvents | null)[];
  readonly queryLTime: LamportTime;
}

/** relayHeader: where a relay member must forward the inner message. */
export interface SerfRelayHeader {
  readonly destAddr: { readonly ip: Uint8Array; readonly port: number; readonly zone: string };
  readonly destName: string;
}

export interface SerfKeyRequest {
  readonly key: Uint8Array;
}

/** nodeKeyResponse; `keys` and `primaryKey` are base64. */
export interface SerfKeyResponse {
  readonly result: boolean;
  readonly message: string;
  readonly keys: string[];
  readonly primaryKey: string;
}

/** serf Member as a conflict response carries it. */
export interface SerfMember {
  readonly name: string;
  readonly addr: Uint8Array;
  readonly port: number;
  readonly tags: Map<string, string>;
  readonly status: number;
  readonly protocolMin: number;
  readonly protocolMax: number;
  readonly protocolCur: number;
  readonly delegateMin: number;
  readonly delegateMax: number;
  readonly delegateCur: number;
}

/** A query filter as serf encodes it into messageQuery.Filters. */
export type SerfFilter = { readonly kind: 'node'; readonly nodes: string[] } | { readonly kind: 'tag'; readonly tag: string; readonly expr: string };

export type SerfMessage =
  | ({ readonly kind: 'leave' } & SerfLeave)
  | ({ readonly kind: 'join' } & SerfJoin)
  | ({ readonly kind: 'pushPull' } & SerfPushPull)
  | ({ readonly kind: 'userEvent' } & SerfUserEvent)
  | ({ readonly kind: 'query' } & SerfQuery)
  | ({ readonly kind: 'queryResponse' } & SerfQueryResponse)
  | { readonly kind: 'conflictResponse'; readonly member: SerfMember | null }
  | ({ readonly kind: 'keyRequest' } & SerfKeyRequest)
  | ({ readonly kind: 'keyResponse' } & SerfKeyResponse)
  | { readonly kind: 'relay'; readonly header: SerfRelayHeader; readonly inner: Uint8Array };

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** serf EventBuffer and QueryBuffer default: the ring serf sends in push/pull. */
export const SERF_EVENT_BUFFER = 512;
/** Most ring slots we accept from a peer (one configured with a larger EventBuffer). */
export const SERF_PUSH_PULL_EVENTS_MAX = 65536;
/** First byte of tag-encoded Meta (serf tagMagicByte). */
export const TAG_MAGIC_BYTE = 0xff;
/** serf protocol version from which tags (rather than a bare role) are encoded. */
export const SERF_TAGS_PROTOCOL_MIN = 3;
/** serf's size limits on user payloads (query, response, event; DefaultConfig). */
export const SERF_QUERY_BYTES_MAX = 1024;
export const SERF_QUERY_RESPONSE_BYTES_MAX = 1024;
export const SERF_USER_EVENT_BYTES_MAX = 512;

// ---------------------------------------------------------------------------------------------
// Exported API

/** `[type][msgpack]` for any serf message (relay: header then the inner bytes as given). */
export function encodeSerfMessage(message: SerfMessage): Uint8Array {
  switch (message.kind) {
    case 'leave':
      return encodeGoMessage(SerfMessageType.leave, { LTime: message.lTime, Node: message.node, Prune: message.prune });
    case 'join':
      return encodeGoMessage(SerfMessageType.join, { LTime: message.lTime, Node: message.node });
    case 'userEvent':
      return encodeGoMessage(SerfMessageType.userEvent, { CC: message.cc, LTime: message.lTime, Name: message.name, Payload: nilIfEmpty(message.payload) });
    case 'query':
      return encodeGoMessage(SerfMessageType.query, queryFields(message));
    case 'queryResponse':
      return encodeGoMessage(SerfMessageType.queryResponse, {
        Flags: uintField(message.flags, U32_MAX, 'messageQueryResponse.Flags'),
        From: message.from,
        ID: uintField(message.id, U32_MAX, 'messageQueryResponse.ID'),
        LTime: message.lTime,
        Payload: nilIfEmpty(message.payload),
      });
    case 'pushPull':
      return encodeGoMessage(SerfMessageType.pushPull, pushPullFields(message));
    case 'conflictResponse':
      return encodeGoMessage(SerfMessageType.conflictResponse, message.member === null ? null : memberFields(message.member));
    case 'keyRequest':
      return encodeGoMessage(SerfMessageType.keyRequest, { Key: nilIfEmpty(message.key) });
    case 'keyResponse':
      return encodeGoMessage(SerfMessageType.keyResponse, { Keys: message.keys.length > 0 ? message.keys : null, Message: message.message, PrimaryKey: message.primaryKey, Result: message.result });
    case 'relay':
      return encodeRelay(message.header, message.inner);
    default:
      return assertNever(message);
  }
}

/**
 * Decodes `[type][msgpack]` (a user message body, a push/pull tail, or a query payload).
 * Trailing bytes after the map are ignored, as Go's decoder ignores them; a relay keeps them as
 * the inner message.
 */
export function decodeSerfMessage(bytes: Uint8Array): SerfMessage {
  if (bytes.length === 0) throw new GossipWireError('ERR_GOSSIP_EMPTY', 'empty serf message');
  const type = bytes[0];
  const body = bytes.subarray(1);
  switch (type) {
    case SerfMessageType.leave: {
      const s = readGoStruct(body, 'messageLeave', ['LTime', 'Node', 'Prune']);
      return { kind: 'leave', lTime: s.u64('LTime'), node: s.string('Node'), prune: s.bool('Prune') };
    }
    case SerfMessageType.join: {
      const s = readGoStruct(body, 'messageJoin', ['LTime', 'Node']);
      return { kind: 'join', lTime: s.u64('LTime'), node: s.string('Node') };
    }
    case SerfMessageType.userEvent: {
      const s = readGoStruct(body, 'messageUserEvent', ['LTime', 'Name', 'Payload', 'CC']);
      return { kind: 'userEvent', lTime: s.u64('LTime'), name: s.string('Name'), payload: s.bytes('Payload'), cc: s.bool('CC') };
    }
    case SerfMessageType.query:
      return { kind: 'query', ...decodeQuery(readGoStruct(body, 'messageQuery', QUERY_FIELDS)) };
    case SerfMessageType.queryResponse: {
      const s = readGoStruct(body, 'messageQueryResponse', ['LTime', 'ID', 'From', 'Flags', 'Payload']);
      return { kind: 'queryResponse', lTime: s.u64('LTime'), id: s.uint('ID', U32_MAX), from: s.string('From'), flags: s.uint('Flags', U32_MAX), payload: s.bytes('Payload') };
    }
    case SerfMessageType.pushPull:
      return { kind: 'pushPull', ...decodePushPull(readGoStruct(body, 'messagePushPull', PUSH_PULL_FIELDS)) };
    case SerfMessageType.conflictResponse:
      // serf answers `06 c0` when it does not know the member.
      return { kind: 'conflictResponse', member: body[0] === 0xc0 ? null : decodeMember(readGoStruct(body, 'Member', MEMBER_FIELDS)) };
    case SerfMessageType.keyRequest:
      return { kind: 'keyRequest', key: readGoStruct(body, 'keyRequest', ['Key']).bytes('Key') };
    case SerfMessageType.keyResponse: {
      const s = readGoStruct(body, 'nodeKeyResponse', ['Result', 'Message', 'Keys', 'PrimaryKey']);
      return { kind: 'keyResponse', result: s.bool('Result'), message: s.string('Message'), keys: s.stringList('Keys'), primaryKey: s.string('PrimaryKey') };
    }
    case SerfMessageType.relay:
      return decodeRelay(body);
    default:
      throw new GossipWireError('ERR_GOSSIP_TYPE_UNSUPPORTED', `Received message of unknown type: ${type ?? -1}`);
  }
}

/** `09 {DestAddr, DestName}` + inner (an encoded serf message, its type byte included). */
export function encodeRelay(header: SerfRelayHeader, inner: Uint8Array): Uint8Array {
  const head = encodeGoMessage(SerfMessageType.relay, {
    DestAddr: { IP: nilIfEmpty(header.destAddr.ip), Port: uintField(header.destAddr.port, U16_MAX, 'relayHeader.DestAddr.Port'), Zone: header.destAddr.zone },
    DestName: header.destName,
  });
  const out = new Uint8Array(head.length + inner.length);
  out.set(head);
  out.set(inner, head.length);
  return out;
}

/** A query filter: `00` + msgpack []string, or `01` + {Expr, Tag}. */
export function encodeFilter(filter: SerfFilter): Uint8Array {
  if (filter.kind === 'node') return encodeGoMessage(FilterType.node, filter.nodes);
  return encodeGoMessage(FilterType.tag, { Expr: filter.expr, Tag: filter.tag });
}

/** Decodes one encoded filter. Unknown filter types are errors (serf then does not answer). */
export function decodeFilter(bytes: Uint8Array): SerfFilter {
  if (bytes.length === 0) throw new GossipWireError('ERR_GOSSIP_EMPTY', 'empty filter');
  const body = bytes.subarray(1);
  if (bytes[0] === FilterType.node) {
    return { kind: 'node', nodes: fieldHolder('filterNode', readValue(body, 'filterNode')).stringList('value') };
  }
  if (bytes[0] === FilterType.tag) {
    const s = readGoStruct(body, 'filterTag', ['Tag', 'Expr']);
    return { kind: 'tag', tag: s.string('Tag'), expr: s.string('Expr') };
  }
  throw new GossipWireError('ERR_GOSSIP_TYPE_UNSUPPORTED', `Unknown filter type: ${bytes[0] ?? -1}`);
}

/**
 * serf's node Meta for a tag set: `ff` + msgpack map (serf protocol ≥3), or the bare `role` tag
 * below that. Throws ERR_GOSSIP_TOO_LARGE beyond META_BYTES_MAX, as serf refuses such tags.
 */
export function encodeTags(tags: ReadonlyMap<string, string> | Readonly<Record<string, string>>, serfProtocolVersion = 4): Uint8Array {
  const entries = tags instanceof Map ? [...tags.entries()] : Object.entries(tags);
  let meta: Uint8Array;
  if (serfProtocolVersion < SERF_TAGS_PROTOCOL_MIN) {
    const role = entries.find(([key]) => key === 'role')?.[1] ?? '';
    meta = TEXT_ENCODER.encode(role);
  } else {
    // fromEntries defines own properties, so a tag named __proto__ stays a tag.
    meta = encodeGoMessage(TAG_MAGIC_BYTE, Object.fromEntries(entries));
  }
  if (meta.length > META_BYTES_MAX) throw new GossipWireError('ERR_GOSSIP_TOO_LARGE', `Encoded length of tags exceeds limit of ${META_BYTES_MAX} bytes`);
  return meta;
}

/**
 * Reads tags from node Meta: empty Meta or a first byte other than `ff` means {role: meta}.
 * Throws GossipWireError for a malformed map (serf logs and keeps what it decoded, usually nothing;
 * callers should then use an empty tag set).
 */
export function decodeTags(meta: Uint8Array): Map<string, string> {
  if (meta.length === 0 || meta[0] !== TAG_MAGIC_BYTE) return new Map([['role', TEXT_DECODER.decode(meta)]]);
  return asStringMap(readValue(meta.subarray(1), 'tags'), () => new GossipWireError('ERR_GOSSIP_MALFORMED', 'tags: expected a map of strings'));
}

/** serf's ring of `size` slots with each entry at `lTime % size` (what LocalState sends). */
export function eventRing(events: readonly SerfUserEvents[], size = SERF_EVENT_BUFFER): (SerfUserEvents | null)[] {
  const ring: (SerfUserEvents | null)[] = new Array<SerfUserEvents | null>(size).fill(null);
  for (const entry of events) ring[Number(entry.lTime % BigInt(size))] = entry;
  return ring;
}

// ---------------------------------------------------------------------------------------------
// Private helpers

const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder('utf-8');
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
const QUERY_FIELDS = ['LTime', 'ID', 'Addr', 'Port', 'SourceNode', 'Filters', 'Flags', 'RelayFactor', 'Timeout', 'Name', 'Payload'];
const PUSH_PULL_FIELDS = ['LTime', 'StatusLTimes', 'LeftMembers', 'EventLTime', 'Events', 'QueryLTime'];
const MEMBER_FIELDS = ['Name', 'Addr', 'Port', 'Tags', 'Status', 'ProtocolMin', 'ProtocolMax', 'ProtocolCur', 'DelegateMin', 'DelegateMax', 'DelegateCur'];

function queryFields(query: SerfQuery): Record<string, unknown> {
  return {
    Addr: nilIfEmpty(query.addr),
    Filters: query.filters.length > 0 ? query.filters : null,
    Flags: uintField(query.flags, U32_MAX, 'messageQuery.Flags'),
    ID: uintField(query.id, U32_MAX, 'messageQuery.ID'),
    LTime: query.lTime,
    Name: query.name,
    Payload: nilIfEmpty(query.payload),
    Port: uintField(query.port, U16_MAX, 'messageQuery.Port'),
    RelayFactor: uintField(query.relayFactor, 0xff, 'messageQuery.RelayFactor'),
    SourceNode: query.sourceNode,
    Timeout: goDuration(query.timeoutNs),
  };
}

/** A time.Duration (int64 nanoseconds); a fraction would go out as a float, which Go rejects. */
function goDuration(nanoseconds: number): number {
  if (!Number.isSafeInteger(nanoseconds)) throw new GossipWireError('ERR_GOSSIP_UNENCODABLE', `duration ${nanoseconds} ns is not an integer`);
  return nanoseconds;
}

function decodeQuery(s: GoStruct): SerfQuery {
  return {
    lTime: s.u64('LTime'),
    id: s.uint('ID', U32_MAX),
    addr: s.bytes('Addr'),
    port: s.uint('Port', U16_MAX),
    sourceNode: s.string('SourceNode'),
    filters: s.bytesListOrNull('Filters') ?? [],
    flags: s.uint('Flags', U32_MAX),
    relayFactor: s.uint('RelayFactor', 0xff),
    timeoutNs: s.int('Timeout'),
    name: s.string('Name'),
    payload: s.bytes('Payload'),
  };
}

function pushPullFields(pushPull: SerfPushPull): Record<string, unknown> {
  return {
    EventLTime: pushPull.eventLTime,
    Events: pushPull.events.map((slot) => (slot === null ? null : { Events: slot.events.map((event) => ({ Name: event.name, Payload: nilIfEmpty(event.payload) })), LTime: slot.lTime })),
    LTime: pushPull.lTime,
    LeftMembers: pushPull.leftMembers,
    QueryLTime: pushPull.queryLTime,
    StatusLTimes: Object.fromEntries(pushPull.statusLTimes),
  };
}

function decodePushPull(s: GoStruct): SerfPushPull {
  const rawEvents = s.raw('Events');
  const events: (SerfUserEvents | null)[] = [];
  if (rawEvents !== null) {
    if (!Array.isArray(rawEvents)) throw new GossipWireError('ERR_GOSSIP_MALFORMED', 'messagePushPull.Events: expected an array');
    if (rawEvents.length > SERF_PUSH_PULL_EVENTS_MAX) throw new GossipWireError('ERR_GOSSIP_TOO_LARGE', `${rawEvents.length} event slots exceed ${SERF_PUSH_PULL_EVENTS_MAX}`);
    for (const slot of rawEvents) events.push(decodeEventSlot(slot));
  }
  return {
    lTime: s.u64('LTime'),
    statusLTimes: s.u64Map('StatusLTimes'),
    leftMembers: s.stringList('LeftMembers'),
    eventLTime: s.u64('EventLTime'),
    events,
    queryLTime: s.u64('QueryLTime'),
  };
}

function decodeEventSlot(slot: MsgpackValue): SerfUserEvents | null {
  if (slot === null) return null;
  const holder = fieldHolder('messagePushPull.Events', slot).struct('value', ['LTime', 'Events']);
  const rawList = holder.raw('Events');
  const list: { name: string; payload: Uint8Array }[] = [];
  if (rawList !== null) {
    if (!Array.isArray(rawList)) throw new GossipWireError('ERR_GOSSIP_MALFORMED', 'userEvents.Events: expected an array');
    for (const item of rawList) {
      const event = fieldHolder('userEvents.Events', item).struct('value', ['Name', 'Payload']);
      list.push({ name: event.string('Name'), payload: event.bytes('Payload') });
    }
  }
  return { lTime: holder.u64('LTime'), events: list };
}

function memberFields(member: SerfMember): Record<string, unknown> {
  return {
    Addr: nilIfEmpty(member.addr),
    DelegateCur: uintField(member.delegateCur, 0xff, 'Member.DelegateCur'),
    DelegateMax: uintField(member.delegateMax, 0xff, 'Member.DelegateMax'),
    DelegateMin: uintField(member.delegateMin, 0xff, 'Member.DelegateMin'),
    Name: member.name,
    Port: uintField(member.port, U16_MAX, 'Member.Port'),
    ProtocolCur: uintField(member.protocolCur, 0xff, 'Member.ProtocolCur'),
    ProtocolMax: uintField(member.protocolMax, 0xff, 'Member.ProtocolMax'),
    ProtocolMin: uintField(member.protocolMin, 0xff, 'Member.ProtocolMin'),
    Status: member.status,
    Tags: Object.fromEntries(member.tags),
  };
}

function decodeMember(s: GoStruct): SerfMember {
  return {
    name: s.string('Name'),
    addr: s.bytes('Addr'),
    port: s.uint('Port', U16_MAX),
    tags: s.stringMap('Tags'),
    status: s.int('Status'),
    protocolMin: s.uint('ProtocolMin', 0xff),
    protocolMax: s.uint('ProtocolMax', 0xff),
    protocolCur: s.uint('ProtocolCur', 0xff),
    delegateMin: s.uint('DelegateMin', 0xff),
    delegateMax: s.uint('DelegateMax', 0xff),
    delegateCur: s.uint('DelegateCur', 0xff),
  };
}

function decodeRelay(body: Uint8Array): SerfMessage {
  const reader = new MsgpackReader(body, RAW_STRINGS);
  const s = readGoStructFrom(reader, 'relayHeader', ['DestAddr', 'DestName']);
  const addr = s.struct('DestAddr', ['IP', 'Port', 'Zone']);
  const port = addr.int('Port');
  if (port < 0 || port > U16_MAX) throw new GossipWireError('ERR_GOSSIP_MALFORMED', `relayHeader.DestAddr.Port ${port} is not a port`);
  const header: SerfRelayHeader = { destAddr: { ip: addr.bytes('IP'), port, zone: addr.string('Zone') }, destName: s.string('DestName') };
  return { kind: 'relay', header, inner: body.slice(reader.offset) };
}

/** Reads the one msgpack value at the start of `bytes` (trailing bytes ignored, as in Go). */
function readValue(bytes: Uint8Array, what: string): MsgpackValue {
  try {
    return new MsgpackReader(bytes, RAW_STRINGS).read();
  } catch (error) {
    throw asWireError(error, what);
  }
}

/** Wraps a bare value so GoStruct's typed, range-checked accessors apply to it (as field `value`). */
function fieldHolder(what: string, value: MsgpackValue): GoStruct {
  return new GoStruct(what, { value }, ['value']);
}

function assertNever(value: never): never {
  throw new GossipWireError('ERR_GOSSIP_UNENCODABLE', `unknown serf message kind ${JSON.stringify(value)}`);
}
