// hashicorp/raft NetworkTransport messages as bytes: the typed RPCs, their msgpack encoding and
// strict decoding, and the scanner that finds where one msgpack value ends in a TCP stream.
//
// Byte compatibility target: hashicorp/raft 1.1.2, protocol version 3, whose transport encodes
// with go-msgpack 0.5.5's MsgpackHandle ("old spec": raw str for strings and []byte, struct keys
// sorted, smallest integers, `c0` for nil). See shared/spec/wire.md §1 and §5. Newer peers are
// read too: raft ≥1.3 adds Log.AppendedAt, ≥1.3.7 adds RPCHeader.ID and Addr, ≥1.7 adds
// RequestPreVote (type 4). Unknown keys are skipped, as Go skips them.
//
// Frames (wire.md §5.2): a request is `[type byte][msgpack request]`; InstallSnapshot's request
// is followed by exactly `Size` raw snapshot bytes. A response is `[msgpack error string]
// [msgpack response]`; an error reply carries a nil (`c0`) body. This module builds and parses
// the msgpack parts; the socket handling lives in rafttransport.ts.
//
// Field mapping: every message keeps hashicorp's field names in camelCase (`prevLogEntry`, not
// `prevLogIndex`; `lastLog`; `noRetryBackoff`). RPCHeader is flattened into each message as
// `protocolVersion` (+ optional `id`/`addr`), as Go inlines the embedded struct. `leader` and
// `candidate` are the sender's address, sent as its string bytes (raft EncodePeer).
//
// Not here: the version policy relative to our own version (`< own-1`, the transport's job),
// struct-as-array decoding (go-msgpack accepts it, no raft peer sends it), []byte fields sent as
// arrays of small integers, and uint64 values of 2^53 and above (refused: JS numbers are exact
// only below that, and no real term or index gets there).
//
// Invariants: decoders of untrusted bytes throw nothing but RaftWireError; every count is
// checked against a named limit before anything it counts is decoded; decoded byte fields are
// views into the input, so callers must pass a buffer nobody will overwrite.
//
// References: hashicorp/raft v1.1.2 net_transport.go, commands.go, log.go, configuration.go;
// v1.7.3 commands.go (RequestPreVote).

import assert from 'node:assert/strict';
import type { LogEntry, LogType } from './logstore.js';
import { encode, MsgpackError, MsgpackReader, MSGPACK_DEPTH_MAX } from './msgpack.js';
import type { RaftServer } from './snapshot.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** RPC type bytes (raft net_transport.go). Wire enum: append only. */
export const RPC_TYPE = {
  appendEntries: 0,
  requestVote: 1,
  installSnapshot: 2,
  timeoutNow: 3,
  /** raft ≥1.7 only: a 1.1.2 server answers "unknown rpc type 4" by closing the connection. */
  requestPreVote: 4,
} as const;

export type RpcKind = keyof typeof RPC_TYPE;

/** raft's RPCHeader, inlined into every message. `id`/`addr` exist from raft 1.3.7 on. */
export interface RpcHeader {
  readonly protocolVersion: number;
  /** The sender's server ID. Omitted from the bytes when undefined (1.1.2 has no such key). */
  readonly id?: string;
  /** The sender's address. Omitted from the bytes when undefined. */
  readonly addr?: string;
}

/** A log entry as the transport carries it: raft's Log, with its opaque Extensions. */
export interface RaftLog extends LogEntry {
  /** Log.Extensions (go-raftchunking uses it); null or absent is `c0`. */
  readonly extensions?: Uint8Array | null;
}

export interface AppendEntriesRequest extends RpcHeader {
  readonly term: number;
  /** The leader's address (Leader []byte). */
  readonly leader: string;
  /** Index of the entry before `entries` (raft's PrevLogEntry). */
  readonly prevLogEntry: number;
  readonly prevLogTerm: number;
  readonly entries: readonly RaftLog[];
  readonly leaderCommitIndex: number;
}

export interface AppendEntriesResponse extends RpcHeader {
  readonly term: number;
  /** The follower's last log index, a hint for a faster catch-up. */
  readonly lastLog: number;
  readonly success: boolean;
  /** The leader may retry at once, without the failure backoff. */
  readonly noRetryBackoff: boolean;
}

export interface RequestVoteRequest extends RpcHeader {
  readonly term: number;
  /** The candidate's address (Candidate []byte). */
  readonly candidate: string;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Set when the vote follows a TimeoutNow: voters ignore their current leader. */
  readonly leadershipTransfer: boolean;
}

export interface RequestVoteResponse extends RpcHeader {
  readonly term: number;
  /** Legacy peer set, sent only below protocol 2; null (`c0`) otherwise. */
  readonly peers: Uint8Array | null;
  readonly granted: boolean;
}

export interface InstallSnapshotRequest extends RpcHeader {
  /** SnapshotVersion: 1 for every snapshot since raft 1.0. */
  readonly snapshotVersion: number;
  readonly term: number;
  readonly leader: string;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Legacy encoded peer set (a Go leader still fills it); null is `c0`. */
  readonly peers: Uint8Array | null;
  /** The snapshot's configuration, sent double-encoded (msgpack inside a []byte). */
  readonly configuration: readonly RaftServer[];
  readonly configurationIndex: number;
  /** Exact number of snapshot bytes that follow the request. */
  readonly size: number;
}

export interface InstallSnapshotResponse extends RpcHeader {
  readonly term: number;
  readonly success: boolean;
}

export type TimeoutNowRequest = RpcHeader;
export type TimeoutNowResponse = RpcHeader;

export interface RequestPreVoteRequest extends RpcHeader {
  readonly term: number;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
}

export interface RequestPreVoteResponse extends RpcHeader {
  readonly term: number;
  readonly granted: boolean;
}

/** Request and response type of each RPC. */
export interface RaftRpcTypes {
  appendEntries: { request: AppendEntriesRequest; response: AppendEntriesResponse };
  requestVote: { request: RequestVoteRequest; response: RequestVoteResponse };
  installSnapshot: { request: InstallSnapshotRequest; response: InstallSnapshotResponse };
  timeoutNow: { request: TimeoutNowRequest; response: TimeoutNowResponse };
  requestPreVote: { request: RequestPreVoteRequest; response: RequestPreVoteResponse };
}

export type RaftRequest<K extends RpcKind> = RaftRpcTypes[K]['request'];
export type RaftResponse<K extends RpcKind> = RaftRpcTypes[K]['response'];

export type RaftWireErrorCode =
  /** Not msgpack, truncated, or a field of the wrong type. */
  | 'ERR_RAFT_WIRE_INVALID'
  /** Over a named limit (entries, bytes, servers). */
  | 'ERR_RAFT_WIRE_TOO_LARGE'
  /** ProtocolVersion outside what we understand; the message is hashicorp's text. */
  | 'ERR_RAFT_UNSUPPORTED_PROTOCOL';

/** Bad bytes from a peer, with a code. The only error this module's decoders throw. */
export class RaftWireError extends Error {
  override readonly name = 'RaftWireError';
  constructor(
    readonly code: RaftWireErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Limits

/** The protocol version we speak (Consul's and raft 1.1.2's default). */
export const RAFT_PROTOCOL_VERSION = 3;
/** Highest ProtocolVersion accepted (raft ProtocolVersionMax). */
export const RAFT_PROTOCOL_VERSION_MAX = 3;
/** raft's ErrUnsupportedProtocol text, sent verbatim as the error string. */
export const UNSUPPORTED_PROTOCOL_MESSAGE = 'operation not supported with current protocol version';
/** Entries in one AppendEntries; raft refuses a MaxAppendEntries above 1024 (default 64). */
export const RAFT_APPEND_ENTRIES_MAX = 1024;
/** Bytes of one msgpack request or response, checked while framing, before buffering it whole. */
export const RAFT_RPC_BYTES_MAX = 64 * 1024 * 1024;
/** Declared size of one streamed snapshot. */
export const RAFT_SNAPSHOT_BYTES_MAX = 64 * 1024 * 1024 * 1024;
/** Servers in one configuration (Consul clusters have a handful). */
export const RAFT_CONFIGURATION_SERVERS_MAX = 1024;
/** Highest LogType we know (LogConfiguration); later types are refused rather than misread. */
const LOG_TYPE_MAX = 5;

// ---------------------------------------------------------------------------------------------
// Exported API: whole messages

/** The RPC kind for a request type byte, or undefined for an unknown byte. */
export function rpcKindOf(typeByte: number): RpcKind | undefined {
  for (const kind of Object.keys(RPC_TYPE) as RpcKind[]) if (RPC_TYPE[kind] === typeByte) return kind;
  return undefined;
}

/** Encodes a request's msgpack body as go-msgpack 0.5.5 does (no type byte). */
export function encodeRequest<K extends RpcKind>(kind: K, request: RaftRequest<K>): Uint8Array {
  return encode(requestShape(kind, request), GO);
}

/** `[type byte][msgpack request]`, ready to write. */
export function encodeRequestFrame<K extends RpcKind>(kind: K, request: RaftRequest<K>): Uint8Array {
  const body = encodeRequest(kind, request);
  const frame = new Uint8Array(1 + body.length);
  frame[0] = RPC_TYPE[kind];
  frame.set(body, 1);
  return frame;
}

/** Encodes a response's msgpack body. */
export function encodeResponse<K extends RpcKind>(kind: K, response: RaftResponse<K>): Uint8Array {
  return encode(responseShape(kind, response), GO);
}

/** `[error string][body]`; an error reply (non-empty text) carries `c0` as its body, as raft's does. */
export function encodeResponseFrame(errorText: string, body: Uint8Array | null): Uint8Array {
  assert.ok(errorText === '' || body === null, 'an error reply has a nil body');
  const head = encode(errorText, GO);
  const tail = body ?? NIL;
  const frame = new Uint8Array(head.length + tail.length);
  frame.set(head, 0);
  frame.set(tail, head.length);
  return frame;
}

/**
 * Decodes a request body and checks its ProtocolVersion (0..3). Throws RaftWireError only;
 * ERR_RAFT_UNSUPPORTED_PROTOCOL carries hashicorp's message.
 */
export function decodeRequest<K extends RpcKind>(kind: K, bytes: Uint8Array): RaftRequest<K> {
  const request = decodeRequestUnchecked(kind, bytes);
  checkProtocolVersion(request.protocolVersion);
  return request;
}

/**
 * Decodes a request body without the version check, for a server that must still read a
 * request it refuses (InstallSnapshot's Size says how many bytes follow). Throws RaftWireError.
 */
export function decodeRequestUnchecked<K extends RpcKind>(kind: K, bytes: Uint8Array): RaftRequest<K> {
  return guarded(bytes, (cursor) => REQUEST_DECODERS[kind](cursor) as RaftRequest<K>);
}

/** Decodes a response body (`c0` gives zero values, as in Go) and checks its version. Throws RaftWireError. */
export function decodeResponse<K extends RpcKind>(kind: K, bytes: Uint8Array): RaftResponse<K> {
  const response = guarded(bytes, (cursor) => RESPONSE_DECODERS[kind](cursor) as RaftResponse<K>);
  checkProtocolVersion(response.protocolVersion);
  return response;
}

/** Decodes the error string that starts every response (`c0` is ""). Throws RaftWireError. */
export function decodeErrorString(bytes: Uint8Array): string {
  return guarded(bytes, (cursor) => (bytesToText(readBytes(cursor, 'error')) ?? ''));
}

/** Throws ERR_RAFT_UNSUPPORTED_PROTOCOL unless 0 ≤ version ≤ RAFT_PROTOCOL_VERSION_MAX. */
export function checkProtocolVersion(version: number): void {
  if (version < 0 || version > RAFT_PROTOCOL_VERSION_MAX) throw new RaftWireError('ERR_RAFT_UNSUPPORTED_PROTOCOL', UNSUPPORTED_PROTOCOL_MESSAGE);
}

/**
 * raft's heartbeat test (net_transport.go handleCommand): a term and a leader, and nothing else.
 * LeaderCommitIndex 0 in a heartbeat is not a regression of the commit index.
 */
export function isHeartbeat(request: AppendEntriesRequest): boolean {
  return request.term !== 0 && request.leader !== '' && request.prevLogEntry === 0 && request.prevLogTerm === 0 && request.entries.length === 0 && request.leaderCommitIndex === 0;
}

/** raft EncodeConfiguration: msgpack `{Servers: [{Address, ID, Suffrage}]}`. */
export function encodeConfiguration(servers: readonly RaftServer[]): Uint8Array {
  return encode({ Servers: servers.map((server) => ({ Address: server.address, ID: server.id, Suffrage: server.suffrage })) }, GO);
}

/** raft DecodeConfiguration; `c0` or no bytes give no servers. Throws RaftWireError. */
export function decodeConfiguration(bytes: Uint8Array): RaftServer[] {
  if (bytes.length === 0) return [];
  return guarded(bytes, readConfiguration);
}

// ---------------------------------------------------------------------------------------------
// Exported API: framing

/**
 * Finds where one msgpack value ends in a growing buffer, without decoding it, so a stream
 * reader buffers exactly one frame. Resumable: call scan() again with the same bytes plus more
 * and it continues where it stopped, so a large frame costs O(its length) in total. The value
 * is refused as soon as its declared lengths pass `bytesMax`, or a container declares more than
 * `containerItemsMax` elements (map entries or array items), before those bytes arrive: with
 * RAFT_APPEND_ENTRIES_MAX this bounds Entries while the request is still being framed.
 */
export class MsgpackScanner {
  /** Bytes of the value consumed so far. Invariant: points at the start of an item. */
  private offset = 0;
  /** Items still expected in each open container, innermost last. */
  private readonly open: number[] = [];

  /**
   * Scans `bytes`, which start at the value's first byte. Returns the value's length once
   * complete (and resets for the next value), or -1 if more bytes are needed. Throws
   * RaftWireError for an invalid descriptor, nesting beyond MSGPACK_DEPTH_MAX, a value longer
   * than `bytesMax`, or a container over `containerItemsMax`.
   */
  scan(bytes: Uint8Array, bytesMax: number, containerItemsMax = Number.MAX_SAFE_INTEGER): number {
    for (;;) {
      const item = itemAt(bytes, this.offset);
      if (item === undefined) return -1;
      const end = this.offset + item.headerBytes + item.payloadBytes;
      // Each contained item takes at least one byte: refuse a count that cannot fit.
      if (end + item.items > bytesMax) throw new RaftWireError('ERR_RAFT_WIRE_TOO_LARGE', `msgpack value longer than ${bytesMax} bytes`);
      if (item.elements > containerItemsMax) throw new RaftWireError('ERR_RAFT_WIRE_TOO_LARGE', `msgpack container of ${item.elements} elements exceeds ${containerItemsMax}`);
      if (end > bytes.length) return -1;
      this.offset = end;
      if (item.items > 0) {
        if (this.open.length >= MSGPACK_DEPTH_MAX) throw new RaftWireError('ERR_RAFT_WIRE_INVALID', `msgpack nesting deeper than ${MSGPACK_DEPTH_MAX}`);
        this.open.push(item.items);
        continue;
      }
      // A scalar or empty container completed: close every container it completes.
      while (this.open.length > 0) {
        const last = this.open.length - 1;
        const left = (this.open[last] ?? 1) - 1;
        if (left > 0) {
          this.open[last] = left;
          break;
        }
        this.open.pop();
      }
      if (this.open.length === 0) {
        const length = this.offset;
        this.offset = 0;
        return length;
      }
    }
  }

  /** Forgets a partial scan (the stream was reset). */
  reset(): void {
    this.offset = 0;
    this.open.length = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Private: encoding shapes (Go field names; the encoder sorts the keys)

const GO = { goCompatible: true } as const;
const NIL = new Uint8Array([0xc0]);
const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder('utf-8');

type Shape = Record<string, unknown>;

function requestShape(kind: RpcKind, request: RaftRequest<RpcKind>): Shape {
  switch (kind) {
    case 'appendEntries': return appendEntriesShape(request as AppendEntriesRequest);
    case 'requestVote': {
      const r = request as RequestVoteRequest;
      return { ...headerShape(r), Term: u(r.term), Candidate: text(r.candidate), LastLogIndex: u(r.lastLogIndex), LastLogTerm: u(r.lastLogTerm), LeadershipTransfer: bool(r.leadershipTransfer) };
    }
    case 'installSnapshot': {
      const r = request as InstallSnapshotRequest;
      assert.ok(r.size <= RAFT_SNAPSHOT_BYTES_MAX, `snapshot of ${r.size} bytes is over RAFT_SNAPSHOT_BYTES_MAX`);
      return {
        ...headerShape(r), SnapshotVersion: u(r.snapshotVersion), Term: u(r.term), Leader: text(r.leader), LastLogIndex: u(r.lastLogIndex), LastLogTerm: u(r.lastLogTerm),
        Peers: r.peers ?? null, Configuration: encodeConfiguration(r.configuration), ConfigurationIndex: u(r.configurationIndex), Size: u(r.size),
      };
    }
    case 'timeoutNow': return headerShape(request);
    case 'requestPreVote': {
      const r = request as RequestPreVoteRequest;
      return { ...headerShape(r), Term: u(r.term), LastLogIndex: u(r.lastLogIndex), LastLogTerm: u(r.lastLogTerm) };
    }
    default: return unreachable(kind);
  }
}

function appendEntriesShape(r: AppendEntriesRequest): Shape {
  assert.ok(r.entries.length <= RAFT_APPEND_ENTRIES_MAX, `${r.entries.length} entries exceed RAFT_APPEND_ENTRIES_MAX`);
  // raft's heartbeat leaves Entries nil (c0); replication sends a non-nil, maybe empty, slice (90).
  const entries = r.entries.length === 0 && isHeartbeat(r) ? null : r.entries.map(logShape);
  return { ...headerShape(r), Term: u(r.term), Leader: text(r.leader), PrevLogEntry: u(r.prevLogEntry), PrevLogTerm: u(r.prevLogTerm), Entries: entries, LeaderCommitIndex: u(r.leaderCommitIndex) };
}

function logShape(entry: RaftLog): Shape {
  assert.ok(Number.isInteger(entry.type) && entry.type >= 0 && entry.type <= LOG_TYPE_MAX, `log type ${entry.type}`);
  // Noop and barrier entries carry nil Data in Go (c0); we cannot tell nil from empty, so empty is nil.
  return { Data: entry.data.length === 0 ? null : entry.data, Extensions: entry.extensions ?? null, Index: u(entry.index), Term: u(entry.term), Type: entry.type };
}

function responseShape(kind: RpcKind, response: RaftResponse<RpcKind>): Shape {
  switch (kind) {
    case 'appendEntries': {
      const r = response as AppendEntriesResponse;
      return { ...headerShape(r), Term: u(r.term), LastLog: u(r.lastLog), Success: bool(r.success), NoRetryBackoff: bool(r.noRetryBackoff) };
    }
    case 'requestVote': {
      const r = response as RequestVoteResponse;
      return { ...headerShape(r), Term: u(r.term), Peers: r.peers ?? null, Granted: bool(r.granted) };
    }
    case 'installSnapshot': {
      const r = response as InstallSnapshotResponse;
      return { ...headerShape(r), Term: u(r.term), Success: bool(r.success) };
    }
    case 'timeoutNow': return headerShape(response);
    case 'requestPreVote': {
      const r = response as RequestPreVoteResponse;
      return { ...headerShape(r), Term: u(r.term), Granted: bool(r.granted) };
    }
    default: return unreachable(kind);
  }
}

function headerShape(header: RpcHeader): Shape {
  assert.ok(Number.isSafeInteger(header.protocolVersion), `ProtocolVersion ${String(header.protocolVersion)}`);
  const shape: Shape = { ProtocolVersion: header.protocolVersion };
  if (header.id !== undefined) shape['ID'] = text(header.id);
  if (header.addr !== undefined) shape['Addr'] = text(header.addr);
  return shape;
}

/** A uint64 field: asserts the caller passed a non-negative safe integer. */
function u(value: number): number {
  assert.ok(Number.isSafeInteger(value) && value >= 0, `expected a non-negative integer, got ${String(value)}`);
  return value;
}

function bool(value: boolean): boolean {
  assert.equal(typeof value, 'boolean');
  return value;
}

/** A string sent as []byte (EncodePeer, RPCHeader.ID/Addr): raw str of its UTF-8 bytes. */
function text(value: string): Uint8Array {
  assert.equal(typeof value, 'string');
  return TEXT_ENCODER.encode(value);
}

function unreachable(value: never): never {
  throw new Error(`unreachable: ${String(value)}`);
}

// ---------------------------------------------------------------------------------------------
// Private: decoding

/** Reads positioned msgpack from one buffer: the reader plus raw access for map headers. */
interface Cursor {
  readonly reader: MsgpackReader;
  readonly bytes: Uint8Array;
}

/** Runs a decoder over exactly `bytes`, turning MsgpackError into RaftWireError. */
function guarded<T>(bytes: Uint8Array, read: (cursor: Cursor) => T): T {
  const cursor: Cursor = { reader: new MsgpackReader(bytes, { rawStrings: true }), bytes };
  try {
    const value = read(cursor);
    if (cursor.reader.offset !== bytes.length) throw invalid(`${bytes.length - cursor.reader.offset} trailing bytes`);
    return value;
  } catch (error) {
    if (error instanceof MsgpackError) throw new RaftWireError(error.code === 'ERR_MSGPACK_DEPTH' ? 'ERR_RAFT_WIRE_TOO_LARGE' : 'ERR_RAFT_WIRE_INVALID', error.message);
    throw error;
  }
}

function invalid(message: string): RaftWireError {
  return new RaftWireError('ERR_RAFT_WIRE_INVALID', message);
}

type FieldReader = (cursor: Cursor, key: string) => boolean;

/**
 * Reads a struct sent as a map, calling `field` for each key; `field` consumes the value and
 * returns true, or returns false and the value is skipped (keys from newer raft versions).
 * A nil struct reads as no fields (Go's zero value).
 */
function readStruct(cursor: Cursor, field: FieldReader): void {
  const count = readMapCount(cursor);
  for (let i = 0; i < count; i++) {
    const key = cursor.reader.read();
    if (!(key instanceof Uint8Array)) throw invalid('a struct key is not a string');
    if (!field(cursor, TEXT_DECODER.decode(key))) cursor.reader.read();
  }
}

/** A map header's entry count, or 0 for nil. */
function readMapCount(cursor: Cursor): number {
  const { reader, bytes } = cursor;
  const at = reader.offset;
  const byte = bytes[at];
  let count: number;
  let size = 1;
  if (byte === undefined) throw invalid('input ends before a struct');
  if (byte === 0xc0) count = 0;
  else if ((byte & 0xf0) === 0x80) count = byte & 0x0f;
  else if (byte === 0xde || byte === 0xdf) {
    size = byte === 0xde ? 3 : 5;
    if (at + size > bytes.length) throw invalid('input ends inside a map header');
    count = size === 3 ? ((bytes[at + 1] ?? 0) << 8) | (bytes[at + 2] ?? 0) : readUint32(bytes, at + 1);
  } else throw invalid(`expected a struct (map) at offset ${at}, found 0x${byte.toString(16)}`);
  reader.offset = at + size;
  if (count * 2 > reader.remaining) throw invalid(`map of ${count} entries is longer than the input`);
  return count;
}

/** A msgpack array header's count (nil is 0), checked against `max` before any item is read. */
function readArrayCount(cursor: Cursor, max: number, what: string): number {
  if (cursor.bytes[cursor.reader.offset] === 0xc0) {
    cursor.reader.offset++;
    return 0;
  }
  const count = cursor.reader.readArrayLength();
  if (count > max) throw new RaftWireError('ERR_RAFT_WIRE_TOO_LARGE', `${count} ${what} exceed the limit of ${max}`);
  if (count > cursor.reader.remaining) throw invalid(`array of ${count} ${what} is longer than the input`);
  return count;
}

function readUint32(bytes: Uint8Array, at: number): number {
  return (((bytes[at] ?? 0) << 24) >>> 0) + (((bytes[at + 1] ?? 0) << 16) | ((bytes[at + 2] ?? 0) << 8) | (bytes[at + 3] ?? 0));
}

/** A uint64 field (any integer width; nil is 0). Values ≥ 2^53 are refused, see the header. */
function readUint(cursor: Cursor, name: string): number {
  const value = cursor.reader.read();
  if (value === null) return 0;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  throw invalid(`${name} is not an unsigned integer below 2^53`);
}

/** A Go int field (ProtocolVersion). */
function readInt(cursor: Cursor, name: string): number {
  const value = cursor.reader.read();
  if (value === null) return 0;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  throw invalid(`${name} is not an integer`);
}

/** A bool field: c2/c3, or 0/1 as go-msgpack also accepts; nil is false. */
function readBool(cursor: Cursor, name: string): boolean {
  const value = cursor.reader.read();
  if (value === null || value === false || value === 0) return false;
  if (value === true || value === 1) return true;
  throw invalid(`${name} is not a bool`);
}

/** A []byte field: raw str, str8 or bin (newer peers), or nil. */
function readBytes(cursor: Cursor, name: string): Uint8Array | null {
  const value = cursor.reader.read();
  if (value === null || value instanceof Uint8Array) return value;
  throw invalid(`${name} is not bytes`);
}

function bytesToText(bytes: Uint8Array | null): string | undefined {
  return bytes === null ? undefined : TEXT_DECODER.decode(bytes);
}

/** Header fields shared by every message; returns false for other keys. */
function readHeaderField(cursor: Cursor, key: string, header: { protocolVersion: number; id?: string; addr?: string }): boolean {
  switch (key) {
    case 'ProtocolVersion': header.protocolVersion = readInt(cursor, key); return true;
    case 'ID': setOptional(header, 'id', bytesToText(readBytes(cursor, key))); return true;
    case 'Addr': setOptional(header, 'addr', bytesToText(readBytes(cursor, key))); return true;
    default: return false;
  }
}

function setOptional(header: { id?: string; addr?: string }, key: 'id' | 'addr', value: string | undefined): void {
  if (value === undefined) delete header[key];
  else header[key] = value;
}

type Mutable<T> = { -readonly [P in keyof T]: T[P] };

function decodeAppendEntriesRequest(cursor: Cursor): AppendEntriesRequest {
  const m: Mutable<AppendEntriesRequest> = { protocolVersion: 0, term: 0, leader: '', prevLogEntry: 0, prevLogTerm: 0, entries: [], leaderCommitIndex: 0 };
  readStruct(cursor, (c, key) => {
    switch (key) {
      case 'Term': m.term = readUint(c, key); return true;
      case 'Leader': m.leader = bytesToText(readBytes(c, key)) ?? ''; return true;
      case 'PrevLogEntry': m.prevLogEntry = readUint(c, key); return true;
      case 'PrevLogTerm': m.prevLogTerm = readUint(c, key); return true;
      case 'LeaderCommitIndex': m.leaderCommitIndex = readUint(c, key); return true;
      case 'Entries': m.entries = readEntries(c); return true;
      default: return readHeaderField(c, key, m);
    }
  });
  return m;
}

function readEntries(cursor: Cursor): RaftLog[] {
  const count = readArrayCount(cursor, RAFT_APPEND_ENTRIES_MAX, 'entries');
  const entries: RaftLog[] = new Array(count);
  for (let i = 0; i < count; i++) entries[i] = readLog(cursor);
  return entries;
}

function readLog(cursor: Cursor): RaftLog {
  if (cursor.bytes[cursor.reader.offset] === 0xc0) throw invalid('a nil log entry');
  let index = 0;
  let term = 0;
  let type = 0;
  let data: Uint8Array = EMPTY;
  let extensions: Uint8Array | null = null;
  // Log.AppendedAt (raft ≥1.3) and any later field are skipped.
  readStruct(cursor, (c, key) => {
    switch (key) {
      case 'Index': index = readUint(c, key); return true;
      case 'Term': term = readUint(c, key); return true;
      case 'Type': type = readUint(c, key); return true;
      case 'Data': data = readBytes(c, key) ?? EMPTY; return true;
      case 'Extensions': extensions = readBytes(c, key); return true;
      default: return false;
    }
  });
  if (type > LOG_TYPE_MAX) throw invalid(`unknown log type ${type}`);
  return { index, term, type: type as LogType, data, extensions };
}

const EMPTY = new Uint8Array(0);

function decodeAppendEntriesResponse(cursor: Cursor): AppendEntriesResponse {
  const m: Mutable<AppendEntriesResponse> = { protocolVersion: 0, term: 0, lastLog: 0, success: false, noRetryBackoff: false };
  readStruct(cursor, (c, key) => {
    switch (key) {
      case 'Term': m.term = readUint(c, key); return true;
      case 'LastLog': m.lastLog = readUint(c, key); return true;
      case 'Success': m.success = readBool(c, key); return true;
      case 'NoRetryBackoff': m.noRetryBackoff = readBool(c, key); return true;
      default: return readHeaderField(c, key, m);
    }
  });
  return m;
}

function decodeRequestVoteRequest(cursor: Cursor): RequestVoteRequest {
  const m: Mutable<RequestVoteRequest> = { protocolVersion: 0, term: 0, candidate: '', lastLogIndex: 0, lastLogTerm: 0, leadershipTransfer: false };
  readStruct(cursor, (c, key) => {
    switch (key) {
      case 'Term': m.term = readUint(c, key); return true;
      case 'Candidate': m.candidate = bytesToText(readBytes(c, key)) ?? ''; return true;
      case 'LastLogIndex': m.lastLogIndex = readUint(c, key); return true;
      case 'LastLogTerm': m.lastLogTerm = readUint(c, key); return true;
      case 'LeadershipTransfer': m.leadershipTransfer = readBool(c, key); return true;
      default: return readHeaderField(c, key, m);
    }
  });
  return m;
}

function decodeRequestVoteResponse(cursor: Cursor): RequestVoteResponse {
  const m: Mutable<RequestVoteResponse> = { protocolVersion: 0, term: 0, peers: null, granted: false };
  readStruct(cursor, (c, key) => {
    switch (key) {
      case 'Term': m.term = readUint(c, key); return true;
      case 'Peers': m.peers = readBytes(c, key); return true;
      case 'Granted': m.granted = readBool(c, key); return true;
      default: return readHeaderField(c, key, m);
    }
  });
  return m;
}

function decodeInstallSnapshotRequest(cursor: Cursor): InstallSnapshotRequest {
  const m: Mutable<InstallSnapshotRequest> = {
    protocolVersion: 0, snapshotVersion: 0, term: 0, leader: '', lastLogIndex: 0, lastLogTerm: 0, peers: null, configuration: [], configurationIndex: 0, size: 0,
  };
  readStruct(cursor, (c, key) => {
    switch (key) {
      case 'SnapshotVersion': m.snapshotVersion = readUint(c, key); return true;
      case 'Term': m.term = readUint(c, key); return true;
      case 'Leader': m.leader = bytesToText(readBytes(c, key)) ?? ''; return true;
      case 'LastLogIndex': m.lastLogIndex = readUint(c, key); return true;
      case 'LastLogTerm': m.lastLogTerm = readUint(c, key); return true;
      case 'Peers': m.peers = readBytes(c, key); return true;
      case 'Configuration': m.configuration = decodeConfiguration(readBytes(c, key) ?? EMPTY); return true;
      case 'ConfigurationIndex': m.configurationIndex = readUint(c, key); return true;
      case 'Size': m.size = readUint(c, key); return true;
      default: return readHeaderField(c, key, m);
    }
  });
  if (m.size > RAFT_SNAPSHOT_BYTES_MAX) throw new RaftWireError('ERR_RAFT_WIRE_TOO_LARGE', `snapshot of ${m.size} bytes exceeds the limit of ${RAFT_SNAPSHOT_BYTES_MAX}`);
  return m;
}

function decodeInstallSnapshotResponse(cursor: Cursor): InstallSnapshotResponse {
  const m: Mutable<InstallSnapshotResponse> = { protocolVersion: 0, term: 0, success: false };
  readStruct(cursor, (c, key) => {
    switch (key) {
      case 'Term': m.term = readUint(c, key); return true;
      case 'Success': m.success = readBool(c, key); return true;
      default: return readHeaderField(c, key, m);
    }
  });
  return m;
}

function decodeHeaderOnly(cursor: Cursor): RpcHeader {
  const m: { protocolVersion: number; id?: string; addr?: string } = { protocolVersion: 0 };
  readStruct(cursor, (c, key) => readHeaderField(c, key, m));
  return m;
}

function decodeRequestPreVoteRequest(cursor: Cursor): RequestPreVoteRequest {
  const m: Mutable<RequestPreVoteRequest> = { protocolVersion: 0, term: 0, lastLogIndex: 0, lastLogTerm: 0 };
  readStruct(cursor, (c, key) => {
    switch (key) {
      case 'Term': m.term = readUint(c, key); return true;
      case 'LastLogIndex': m.lastLogIndex = readUint(c, key); return true;
      case 'LastLogTerm': m.lastLogTerm = readUint(c, key); return true;
      default: return readHeaderField(c, key, m);
    }
  });
  return m;
}

function decodeRequestPreVoteResponse(cursor: Cursor): RequestPreVoteResponse {
  const m: Mutable<RequestPreVoteResponse> = { protocolVersion: 0, term: 0, granted: false };
  readStruct(cursor, (c, key) => {
    switch (key) {
      case 'Term': m.term = readUint(c, key); return true;
      case 'Granted': m.granted = readBool(c, key); return true;
      default: return readHeaderField(c, key, m);
    }
  });
  return m;
}

const REQUEST_DECODERS: { readonly [K in RpcKind]: (cursor: Cursor) => RaftRequest<K> } = {
  appendEntries: decodeAppendEntriesRequest,
  requestVote: decodeRequestVoteRequest,
  installSnapshot: decodeInstallSnapshotRequest,
  timeoutNow: decodeHeaderOnly,
  requestPreVote: decodeRequestPreVoteRequest,
};

const RESPONSE_DECODERS: { readonly [K in RpcKind]: (cursor: Cursor) => RaftResponse<K> } = {
  appendEntries: decodeAppendEntriesResponse,
  requestVote: decodeRequestVoteResponse,
  installSnapshot: decodeInstallSnapshotResponse,
  timeoutNow: decodeHeaderOnly,
  requestPreVote: decodeRequestPreVoteResponse,
};

function readConfiguration(cursor: Cursor): RaftServer[] {
  const servers: RaftServer[] = [];
  readStruct(cursor, (c, key) => {
    if (key !== 'Servers') return false;
    const count = readArrayCount(c, RAFT_CONFIGURATION_SERVERS_MAX, 'servers');
    servers.length = 0;
    for (let i = 0; i < count; i++) servers.push(readServer(c));
    return true;
  });
  return servers;
}

function readServer(cursor: Cursor): RaftServer {
  let suffrage = 0;
  let id = '';
  let address = '';
  readStruct(cursor, (c, key) => {
    switch (key) {
      case 'Suffrage': suffrage = readUint(c, key); return true;
      case 'ID': id = bytesToText(readBytes(c, key)) ?? ''; return true;
      case 'Address': address = bytesToText(readBytes(c, key)) ?? ''; return true;
      default: return false;
    }
  });
  if (suffrage !== 0 && suffrage !== 1 && suffrage !== 2) throw invalid(`unknown suffrage ${suffrage}`);
  return { suffrage, id, address };
}

// ---------------------------------------------------------------------------------------------
// Private: msgpack item sizes for the scanner

interface ItemSize {
  readonly headerBytes: number;
  /** Bytes after the header that belong to this item itself (str, bin, ext, number). */
  readonly payloadBytes: number;
  /** Child items that follow (a map counts keys and values). */
  readonly items: number;
  /** Declared elements: map entries or array items. */
  readonly elements: number;
}

const SCALAR: ItemSize = { headerBytes: 1, payloadBytes: 0, items: 0, elements: 0 };

/** Sizes of the item starting at `at`, or undefined while its header is incomplete. */
function itemAt(bytes: Uint8Array, at: number): ItemSize | undefined {
  const byte = bytes[at];
  if (byte === undefined) return undefined;
  if (byte <= 0x7f || byte >= 0xe0) return SCALAR;
  if (byte <= 0x8f) return { headerBytes: 1, payloadBytes: 0, items: (byte & 0x0f) * 2, elements: byte & 0x0f };
  if (byte <= 0x9f) return { headerBytes: 1, payloadBytes: 0, items: byte & 0x0f, elements: byte & 0x0f };
  if (byte <= 0xbf) return { headerBytes: 1, payloadBytes: byte & 0x1f, items: 0, elements: 0 };
  const fixed = FIXED_PAYLOAD[byte - 0xc0];
  if (fixed !== undefined && fixed >= 0) return { headerBytes: 1, payloadBytes: fixed, items: 0, elements: 0 };
  const spec = LENGTH_PREFIXED[byte];
  if (spec === undefined) throw invalid(`unrecognized msgpack descriptor 0x${byte.toString(16)}`);
  const [lengthBytes, extra, kind] = spec;
  if (at + 1 + lengthBytes > bytes.length) return undefined;
  const length = lengthBytes === 1 ? (bytes[at + 1] ?? 0) : lengthBytes === 2 ? ((bytes[at + 1] ?? 0) << 8) | (bytes[at + 2] ?? 0) : readUint32(bytes, at + 1);
  const headerBytes = 1 + lengthBytes;
  if (kind === 'raw') return { headerBytes, payloadBytes: length + extra, items: 0, elements: 0 };
  return { headerBytes, payloadBytes: 0, items: kind === 'map' ? length * 2 : length, elements: length };
}

/** Payload bytes of the fixed-size items 0xc0..0xdf (-1: not fixed-size or invalid). */
const FIXED_PAYLOAD: readonly number[] = [
  0, -1, 0, 0, -1, -1, -1, -1, -1, -1, 4, 8, 1, 2, 4, 8, // c0..cf: nil, (c1), false, true, bin/ext (prefixed), float32/64, uint8..64
  1, 2, 4, 8, 2, 3, 5, 9, 17, -1, -1, -1, -1, -1, -1, -1, // d0..df: int8..64, fixext 1..16 (+ type byte), then prefixed
];

/** Length-prefixed items: [length bytes, extra payload bytes (ext type), what follows]. */
const LENGTH_PREFIXED: Readonly<Record<number, readonly [number, number, 'raw' | 'array' | 'map']>> = {
  0xc4: [1, 0, 'raw'], 0xc5: [2, 0, 'raw'], 0xc6: [4, 0, 'raw'],
  0xc7: [1, 1, 'raw'], 0xc8: [2, 1, 'raw'], 0xc9: [4, 1, 'raw'],
  0xd9: [1, 0, 'raw'], 0xda: [2, 0, 'raw'], 0xdb: [4, 0, 'raw'],
  0xdc: [2, 0, 'array'], 0xdd: [4, 0, 'array'], 0xde: [2, 0, 'map'], 0xdf: [4, 0, 'map'],
};
