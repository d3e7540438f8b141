// The finite state machine Raft drives: command encoding, apply, snapshot and restore.
//
// Every change to the cluster state is a command: encoded once by the leader, stored in the Raft
// log, and applied by every server in log order with apply(index, bytes). Applying the same
// commands in the same order gives every server the same state, so apply is deterministic and
// all-or-nothing: a command that fails leaves no trace (its memdb transaction is aborted) and
// its error is the result the client sees.
//
// Command bytes: [COMMAND_FORMAT_VERSION][message type][msgpack payload]. Message types keep
// Consul's numbers (structs.MessageType) and payloads Consul's request shapes, so the log reads
// like Consul's. Decoding checks every field's type and refuses unknown fields: a corrupt or
// foreign entry is rejected with FsmError before anything is applied.
//
// The txn command carries a list of ops of four kinds (KV, Node, Service, Check) applied in one
// memdb transaction that commits only if every op succeeded. Its first encoding carried KV ops
// only; that layout is a subset of the current one, so old log entries decode and apply
// unchanged (see TXN_REQUEST).
//
// Snapshots stream the state at one point in time, record by record, so a million keys never
// become one giant string: [SNAPSHOT_MAGIC] then frames [table u8][length u32 BE][msgpack
// record], then an end frame [0xff][32][sha256 of every preceding byte]. Restore parses the
// stream incrementally into a fresh database and publishes it only if every record is valid and
// the checksum matches; otherwise the old state stays in place.
//
// Reference: Consul agent/consul/fsm/{commands_ce.go,snapshot.go,snapshot_ce.go},
// hashicorp/raft FSM interface.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as catalog from './catalog.js';
import type { RegisterRequest, DeregisterRequest, TxnNodeOp, TxnOp, TxnOpsResponse } from './catalog.js';
import * as kvs from './kvs.js';
import type { KvApplyOp, KvDirEntInput, TxnKvOp } from './kvs.js';
import type { ReadTxn, WriteTxn } from './memdb.js';
import { decode, encode, MsgpackError, MsgpackReader, MsgpackWriter } from './msgpack.js';
import { StateError, STATE_SCHEMA, TABLES, type CoordinateRecord, type KvRecord } from './schema.js';
import { setAutopilotConfig, type AutopilotConfigInput } from './autopilot.js';
import * as sessions from './sessions.js';
import type { SessionCreateRequest } from './sessions.js';
import type { StateStore } from './state.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** Consul's structs.MessageType numbers for the commands we apply. Wire/disk enum: append only. */
export const MESSAGE_TYPE = {
  register: 0,
  deregister: 1,
  kvs: 2,
  session: 3,
  tombstone: 5,
  coordinateBatchUpdate: 6,
  txn: 8,
  autopilot: 9,
} as const;

export type Command =
  | { readonly type: 'register'; readonly request: RegisterRequest }
  | { readonly type: 'deregister'; readonly request: DeregisterRequest }
  | { readonly type: 'kvs'; readonly op: KvApplyOp; readonly entry: KvDirEntInput }
  | { readonly type: 'session-create'; readonly session: SessionCreateRequest }
  | { readonly type: 'session-destroy'; readonly id: string }
  | { readonly type: 'tombstone-reap'; readonly reapIndex: number }
  | { readonly type: 'coordinate-batch-update'; readonly updates: readonly CoordinateRecord[] }
  | { readonly type: 'txn'; readonly ops: readonly TxnOp[] }
  /** AutopilotSetConfigRequest: with casIndex, only if the stored ModifyIndex equals it. */
  | { readonly type: 'autopilot-set'; readonly config: AutopilotConfigInput; readonly casIndex?: number };

/** What applying a command produced: a value for the client, or Consul's refusal. */
export type ApplyResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: StateError };

export type FsmErrorCode = 'ERR_COMMAND_CORRUPT' | 'ERR_COMMAND_VERSION' | 'ERR_SNAPSHOT_CORRUPT' | 'ERR_SNAPSHOT_TRUNCATED' | 'ERR_SNAPSHOT_CHECKSUM';

/** A command or snapshot that cannot be decoded. Nothing was applied. */
export class FsmError extends Error {
  override readonly name = 'FsmError';
  constructor(
    readonly code: FsmErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Limits and formats

/** Version byte of command encodings; a new encoding gets a new number, old ones stay readable. */
export const COMMAND_FORMAT_VERSION = 1;
/** Magic and version at the start of every snapshot stream. */
export const SNAPSHOT_MAGIC = Buffer.from('CTSSNAP1');
/** One snapshot record may not exceed this (a KV value is at most 512 KiB by default). */
export const SNAPSHOT_RECORD_BYTES_MAX = 64 * 1024 * 1024;
/** Snapshot chunks are about this size: large enough for throughput, small enough for memory. */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

const END_FRAME = 0xff;
const CHECKSUM_BYTES = 32;
const FRAME_HEADER_BYTES = 5;

/** Snapshot frame numbers of the tables. Disk enum: append only. */
const SNAPSHOT_TABLES = [
  [1, TABLES.nodes],
  [2, TABLES.services],
  [3, TABLES.checks],
  [4, TABLES.kvs],
  [5, TABLES.tombstones],
  [6, TABLES.sessions],
  [7, TABLES.sessionChecks],
  [8, TABLES.coordinates],
  [9, TABLES.index],
  [10, TABLES.autopilot],
] as const;
const TABLE_BY_FRAME = new Map<number, string>(SNAPSHOT_TABLES);

// ---------------------------------------------------------------------------------------------
// Commands

/**
 * Encodes a command for the Raft log. The payload is first checked against the shapes the FSM
 * will decode it with: a command the FSM would refuse once committed would stop every server
 * that applies it (and again at each restart), so it is refused here, before it is proposed.
 */
export function encodeCommand(command: Command): Uint8Array {
  const [type, payload] = commandPayload(command);
  parseCommand(type, payload);
  const body = encode(payload);
  const bytes = new Uint8Array(2 + body.length);
  bytes[0] = COMMAND_FORMAT_VERSION;
  bytes[1] = type;
  bytes.set(body, 2);
  return bytes;
}

/** Decodes and checks a command. Throws FsmError for anything malformed. */
export function decodeCommand(bytes: Uint8Array): Command {
  if (bytes.length < 2) throw new FsmError('ERR_COMMAND_CORRUPT', `command of ${bytes.length} bytes is too short`);
  if (bytes[0] !== COMMAND_FORMAT_VERSION) throw new FsmError('ERR_COMMAND_VERSION', `unknown command format version ${bytes[0]}`);
  let payload: unknown;
  try {
    payload = decode(bytes.subarray(2));
  } catch (error) {
    if (error instanceof MsgpackError) throw new FsmError('ERR_COMMAND_CORRUPT', `command payload: ${error.message}`);
    throw error;
  }
  return parseCommand(bytes[1] ?? -1, payload);
}

function commandPayload(command: Command): [number, unknown] {
  switch (command.type) {
    case 'register': return [MESSAGE_TYPE.register, command.request];
    case 'deregister': return [MESSAGE_TYPE.deregister, command.request];
    case 'kvs': return [MESSAGE_TYPE.kvs, { Op: command.op, DirEnt: command.entry }];
    case 'session-create': return [MESSAGE_TYPE.session, { Op: 'create', Session: command.session }];
    case 'session-destroy': return [MESSAGE_TYPE.session, { Op: 'destroy', Session: { ID: command.id } }];
    case 'tombstone-reap': return [MESSAGE_TYPE.tombstone, { Op: 'reap', ReapIndex: command.reapIndex }];
    case 'coordinate-batch-update': return [MESSAGE_TYPE.coordinateBatchUpdate, { Updates: command.updates }];
    case 'txn': return [MESSAGE_TYPE.txn, { Ops: command.ops }];
    case 'autopilot-set': return [MESSAGE_TYPE.autopilot, { Config: { ...command.config, ModifyIndex: command.casIndex ?? 0 }, CAS: command.casIndex !== undefined }];
    default: {
      const unknown: never = command;
      throw new Error(`unhandled command ${JSON.stringify(unknown)}`);
    }
  }
}

function parseCommand(type: number, payload: unknown): Command {
  switch (type) {
    case MESSAGE_TYPE.register: return { type: 'register', request: REGISTER_REQUEST(payload, 'register') };
    case MESSAGE_TYPE.deregister: return { type: 'deregister', request: DEREGISTER_REQUEST(payload, 'deregister') };
    case MESSAGE_TYPE.kvs: {
      const request = KVS_REQUEST(payload, 'kvs');
      return { type: 'kvs', op: request.Op, entry: request.DirEnt };
    }
    case MESSAGE_TYPE.session: {
      const request = SESSION_REQUEST(payload, 'session');
      if (request.Op === 'destroy') return { type: 'session-destroy', id: SESSION_DESTROY(request.Session, 'session.Session').ID };
      return { type: 'session-create', session: SESSION_CREATE(request.Session, 'session.Session') };
    }
    case MESSAGE_TYPE.tombstone: return { type: 'tombstone-reap', reapIndex: TOMBSTONE_REQUEST(payload, 'tombstone').ReapIndex };
    case MESSAGE_TYPE.coordinateBatchUpdate: return { type: 'coordinate-batch-update', updates: COORDINATE_BATCH(payload, 'coordinates').Updates };
    case MESSAGE_TYPE.txn: return { type: 'txn', ops: TXN_REQUEST(payload, 'txn').Ops };
    case MESSAGE_TYPE.autopilot: {
      const request = AUTOPILOT_REQUEST(payload, 'autopilot');
      const { ModifyIndex: casIndex, ...config } = request.Config;
      return request.CAS ? { type: 'autopilot-set', config, casIndex } : { type: 'autopilot-set', config };
    }
    default: throw new FsmError('ERR_COMMAND_CORRUPT', `unknown message type ${type}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The FSM

export class Fsm {
  /** Invariant: commands are applied in strictly increasing index order. */
  private lastAppliedIndex = 0;

  constructor(readonly state: StateStore) {}

  /** The index of the last command applied (or restored from a snapshot). */
  get appliedIndex(): number {
    return this.lastAppliedIndex;
  }

  /**
   * Applies the command committed at `index`. Consul refusals come back as `{ok: false}`;
   * undecodable bytes throw FsmError (the log is corrupt: nothing is applied).
   */
  apply(index: number, bytes: Uint8Array): ApplyResult {
    assert.ok(index > this.lastAppliedIndex, `apply index ${index} after ${this.lastAppliedIndex}`);
    const command = decodeCommand(bytes);
    this.lastAppliedIndex = index;
    try {
      return { ok: true, value: this.applyCommand(index, command) };
    } catch (error) {
      if (error instanceof StateError) return { ok: false, error };
      throw error;
    }
  }

  private applyCommand(index: number, command: Command): unknown {
    const { state } = this;
    const { lockDelay } = state;
    switch (command.type) {
      case 'register': return state.write((txn) => catalog.ensureRegistration(txn, index, command.request, lockDelay));
      case 'deregister': return state.write((txn) => catalog.deregister(txn, index, command.request, lockDelay));
      case 'kvs': return state.write((txn) => kvs.kvsApply(txn, index, command.op, command.entry));
      case 'session-create': return state.write((txn) => sessions.sessionCreate(txn, index, command.session).ID);
      case 'session-destroy': return state.write((txn) => sessions.sessionDestroy(txn, index, command.id, lockDelay));
      case 'tombstone-reap': return state.write((txn) => kvs.reapTombstones(txn, index, command.reapIndex));
      case 'coordinate-batch-update': return state.write((txn) => catalog.coordinateBatchUpdate(txn, index, command.updates));
      case 'txn': return state.write((txn): TxnOpsResponse => catalog.txnApply(txn, index, command.ops, lockDelay), (response) => response.Errors === null);
      case 'autopilot-set': return state.write((txn) => setAutopilotConfig(txn, index, command.config, command.casIndex));
      default: {
        const unknown: never = command;
        throw new Error(`unhandled command ${JSON.stringify(unknown)}`);
      }
    }
  }

  /**
   * A point-in-time snapshot: `chunks()` streams it while writes go on (it reads the memdb
   * snapshot taken now). `index` is the last applied index it contains.
   * Each chunk is a view into one buffer that is reused for the next chunk: write it out or copy
   * it before asking for the next. (Handing out a fresh megabyte per chunk makes V8 run a full
   * collection over the whole state every few chunks; reuse makes a million-key snapshot
   * several times cheaper.)
   */
  snapshot(): { readonly index: number; chunks(): Generator<Uint8Array> } {
    const txn = this.state.db.readTxn();
    return { index: this.lastAppliedIndex, chunks: () => snapshotChunks(txn) };
  }

  /**
   * Replaces the whole state with a snapshot stream, atomically: on any error (truncated,
   * corrupt, bad checksum) the previous state stays and FsmError is thrown. `index` becomes the
   * applied index.
   */
  async restore(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, index: number): Promise<void> {
    const txn = this.state.db.restoreTxn();
    try {
      const parser = new SnapshotParser((table, record) => insertRestored(txn, table, record));
      for await (const chunk of chunks) parser.push(chunk);
      parser.finish();
      txn.commit();
      this.lastAppliedIndex = index;
    } finally {
      txn.abort();
    }
  }
}

/**
 * Inserts one restored record. A snapshot is input from outside (PUT /v1/snapshot): records that
 * break the database's invariants (two nodes with one ID) are a corrupt snapshot, not a crash.
 */
function insertRestored(txn: WriteTxn, table: string, record: unknown): void {
  try {
    txn.insert(table, record);
  } catch (error) {
    throw new FsmError('ERR_SNAPSHOT_CORRUPT', `${table} record refused: ${error instanceof Error ? error.message : String(error)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Snapshot writing

function* snapshotChunks(txn: ReadTxn): Generator<Uint8Array> {
  const hash = createHash('sha256');
  // Frames are written straight into a chunk-sized buffer, handed out when full and then reused.
  const writer = new MsgpackWriter({}, SNAPSHOT_CHUNK_BYTES + 64 * 1024);
  writer.writeRaw(SNAPSHOT_MAGIC);
  for (const [frame, table] of SNAPSHOT_TABLES) {
    for (const record of txn.all<unknown>(table)) {
      const start = writer.byteLength;
      writer.writeRawByte(frame);
      writer.writeRawUint32(0);
      if (table === TABLES.kvs) writeKvRecord(writer, record as KvRecord);
      else writer.write(record);
      writer.patchUint32(start + 1, writer.byteLength - start - FRAME_HEADER_BYTES);
      if (writer.byteLength >= SNAPSHOT_CHUNK_BYTES) {
        const out = writer.finish();
        hash.update(out);
        yield out;
        writer.reset();
      }
    }
  }
  writer.writeRawByte(END_FRAME);
  writer.writeRawUint32(CHECKSUM_BYTES);
  const tail = writer.finish();
  hash.update(tail);
  yield Buffer.concat([tail, hash.digest()]);
}

/** KV records are most of a large state: a positional array, written field by field. */
function writeKvRecord(writer: MsgpackWriter, record: KvRecord): void {
  writer.writeArrayHeader(7);
  writer.write(record.Key);
  writer.write(record.Flags);
  writer.write(record.Value);
  writer.write(record.Session);
  writer.write(record.LockIndex);
  writer.write(record.CreateIndex);
  writer.write(record.ModifyIndex);
}

/**
 * Reads a record written by writeKvRecord from `reader`, which is positioned at it; the value is
 * copied out of the snapshot chunk into `values`.
 */
function readKvRecord(reader: MsgpackReader, values: ValueSlabs): KvRecord {
  if (reader.readArrayLength() !== 7) throw new FsmError('ERR_SNAPSHOT_CORRUPT', 'kvs record: expected 7 fields');
  return {
    Key: reader.readString(),
    Flags: reader.readUint64(),
    Value: values.copy(reader.readBytesOrNil()),
    Session: reader.readString(),
    LockIndex: reader.readInteger(),
    CreateIndex: reader.readInteger(),
    ModifyIndex: reader.readInteger(),
  };
}

/** Restored values at most this large share slabs; larger ones get their own buffer. */
const SLAB_VALUE_BYTES_MAX = 16 * 1024;
const SLAB_BYTES = 256 * 1024;

/**
 * Copies restored values into shared slabs, so a million values cost a few thousand
 * allocations rather than a million (the allocations, not the copying, dominate a restore). A
 * slab lives while any value in it does, as Node's own Buffer pool does with its 8 KiB slabs.
 */
class ValueSlabs {
  private slab = new Uint8Array(0);
  private used = 0;

  copy(bytes: Uint8Array | null): Uint8Array | null {
    if (bytes === null) return null;
    const length = bytes.length;
    if (length > SLAB_VALUE_BYTES_MAX) return Uint8Array.from(bytes);
    if (this.used + length > this.slab.length) {
      this.slab = new Uint8Array(SLAB_BYTES);
      this.used = 0;
    }
    const copy = this.slab.subarray(this.used, this.used + length);
    copy.set(bytes);
    this.used += length;
    return copy;
  }
}

// ---------------------------------------------------------------------------------------------
// Snapshot reading

/**
 * Parses a snapshot stream pushed chunk by chunk; calls `onRecord` for every valid record.
 * Invariant: `pending` holds the bytes not yet parsed, and every byte before them has been fed
 * to the hash, so the end frame can be checked against exactly what came before it.
 */
class SnapshotParser {
  private readonly hash = createHash('sha256');
  private pending: Buffer = Buffer.alloc(0);
  private hasMagic = false;
  private isEnded = false;
  private readonly values = new ValueSlabs();

  constructor(private readonly onRecord: (table: string, record: unknown) => void) {}

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.isEnded) throw new FsmError('ERR_SNAPSHOT_CORRUPT', 'data after the end of the snapshot');
    const incoming = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.pending = this.pending.length === 0 ? incoming : Buffer.concat([this.pending, incoming]);
    let offset = 0;
    if (!this.hasMagic) {
      if (this.pending.length < SNAPSHOT_MAGIC.length) return;
      if (!this.pending.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) throw new FsmError('ERR_SNAPSHOT_CORRUPT', 'not a consul-ts snapshot (bad magic)');
      offset = SNAPSHOT_MAGIC.length;
      this.hasMagic = true;
    }
    offset = this.frames(offset);
    if (this.isEnded) {
      if (offset !== this.pending.length) throw new FsmError('ERR_SNAPSHOT_CORRUPT', 'data after the end of the snapshot');
    } else this.hash.update(this.pending.subarray(0, offset));
    this.pending = Buffer.from(this.pending.subarray(offset));
  }

  /** Checks that the stream ended with a valid end frame. */
  finish(): void {
    if (!this.isEnded) throw new FsmError('ERR_SNAPSHOT_TRUNCATED', 'snapshot ends before its end frame');
  }

  /** Consumes whole frames from `offset`; returns the offset of the first unconsumed byte. */
  private frames(start: number): number {
    const buffer = this.pending;
    // One reader for the whole buffer, moved from record to record (a reader per record costs
    // more than decoding a small record).
    const reader = new MsgpackReader(buffer);
    let offset = start;
    while (buffer.length - offset >= FRAME_HEADER_BYTES) {
      const frame = buffer[offset] ?? 0;
      const length = buffer.readUInt32BE(offset + 1);
      if (length > SNAPSHOT_RECORD_BYTES_MAX) throw new FsmError('ERR_SNAPSHOT_CORRUPT', `record of ${length} bytes exceeds the limit`);
      if (buffer.length - offset - FRAME_HEADER_BYTES < length) break;
      const bodyStart = offset + FRAME_HEADER_BYTES;
      if (frame === END_FRAME) {
        if (length !== CHECKSUM_BYTES) throw new FsmError('ERR_SNAPSHOT_CORRUPT', 'end frame has no sha256');
        // The digest covers every byte before it, this frame's header included.
        this.hash.update(buffer.subarray(0, bodyStart));
        if (!this.hash.digest().equals(buffer.subarray(bodyStart, bodyStart + length))) {
          throw new FsmError('ERR_SNAPSHOT_CHECKSUM', 'snapshot checksum does not match its contents');
        }
        this.isEnded = true;
        return bodyStart + length;
      }
      reader.offset = bodyStart;
      this.record(frame, reader, bodyStart + length);
      offset = bodyStart + length;
    }
    return offset;
  }

  /** Reads the record at reader.offset, which must end exactly at `end`. */
  private record(frame: number, reader: MsgpackReader, end: number): void {
    const table = TABLE_BY_FRAME.get(frame);
    if (table === undefined) throw new FsmError('ERR_SNAPSHOT_CORRUPT', `unknown snapshot frame ${frame}`);
    let checked: unknown;
    try {
      if (table === TABLES.kvs) checked = readKvRecord(reader, this.values);
      else {
        const shape = RECORD_SHAPES.get(table);
        assert.ok(shape, `no record shape for table ${table}`);
        checked = shape(reader.read(), table);
      }
    } catch (error) {
      if (error instanceof MsgpackError || error instanceof FsmError) throw new FsmError('ERR_SNAPSHOT_CORRUPT', `${table} record: ${error.message}`);
      throw error;
    }
    if (reader.offset !== end) throw new FsmError('ERR_SNAPSHOT_CORRUPT', `${table} record does not fill its frame`);
    this.onRecord(table, checked);
  }
}

// ---------------------------------------------------------------------------------------------
// Shapes: strict checks that decoded msgpack has the types a command or record needs. Each
// returns the value (converted where msgpack loses a type, such as uint64 Flags) or throws.

type Shape<T> = (value: unknown, path: string) => T;

function corrupt(path: string, expected: string, value: unknown): never {
  const actual = value === null ? 'nil' : value instanceof Uint8Array ? 'bytes' : Array.isArray(value) ? 'array' : typeof value;
  throw new FsmError('ERR_COMMAND_CORRUPT', `${path}: expected ${expected}, got ${actual}`);
}

const str: Shape<string> = (v, p) => (typeof v === 'string' ? v : corrupt(p, 'a string', v));
const bool: Shape<boolean> = (v, p) => (typeof v === 'boolean' ? v : corrupt(p, 'a boolean', v));
const int: Shape<number> = (v, p) => (typeof v === 'number' && Number.isSafeInteger(v) ? v : corrupt(p, 'an integer', v));
const float: Shape<number> = (v, p) => (typeof v === 'number' ? v : corrupt(p, 'a number', v));
const bytes: Shape<Uint8Array> = (v, p) => (v instanceof Uint8Array ? v : corrupt(p, 'bytes', v));
const anything: Shape<unknown> = (v) => v;
/** uint64, which msgpack hands back as a number when small: always a bigint here. */
const uint64: Shape<bigint> = (v, p) => {
  if (typeof v === 'bigint' && v >= 0n) return v;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  return corrupt(p, 'a uint64', v);
};

function optional<T>(shape: Shape<T>): Shape<T | undefined> {
  return (v, p) => (v === undefined || v === null ? undefined : shape(v, p));
}

function nullable<T>(shape: Shape<T>): Shape<T | null> {
  return (v, p) => (v === null || v === undefined ? null : shape(v, p));
}

function array<T>(shape: Shape<T>): Shape<T[]> {
  return (v, p) => (Array.isArray(v) ? v.map((item, i) => shape(item, `${p}[${i}]`)) : corrupt(p, 'an array', v));
}

function record<T>(shape: Shape<T>): Shape<Record<string, T>> {
  return (v, p) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return corrupt(p, 'a map', v);
    const result: Record<string, T> = {};
    for (const [key, item] of Object.entries(v)) result[key] = shape(item, `${p}.${key}`);
    return result;
  };
}

function oneOf<T extends string>(...values: T[]): Shape<T> {
  return (v, p) => (typeof v === 'string' && (values as string[]).includes(v) ? (v as T) : corrupt(p, `one of ${values.join(', ')}`, v));
}

type ShapeFields = Record<string, Shape<unknown>>;
type ShapedObject<F extends ShapeFields> = { [K in keyof F]: ReturnType<F[K]> };

/** A map with exactly these fields (absent optional fields stay absent; unknown ones are refused). */
function object<F extends ShapeFields>(fields: F): Shape<ShapedObject<F>> {
  return (v, p) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return corrupt(p, 'a map', v);
    const input = v as Record<string, unknown>;
    for (const key of Object.keys(input)) if (!(key in fields)) throw new FsmError('ERR_COMMAND_CORRUPT', `${p}: unknown field ${key}`);
    const result: Record<string, unknown> = {};
    for (const [key, shape] of Object.entries(fields)) {
      const value = shape(input[key], `${p}.${key}`);
      if (value !== undefined) result[key] = value;
    }
    return result as ShapedObject<F>;
  };
}

const stringMap = record(str);
const stringList = array(str);
const SERVICE_ADDRESS = object({ Address: str, Port: int });
const WEIGHTS = object({ Passing: int, Warning: int });
const CHECK_DEFINITION = object({
  HTTP: optional(str), TLSServerName: optional(str), TLSSkipVerify: optional(bool), Header: optional(record(stringList)),
  Method: optional(str), Body: optional(str), TCP: optional(str), UDP: optional(str), GRPC: optional(str),
  Interval: optional(str), Timeout: optional(str), DeregisterCriticalServiceAfter: optional(str),
});
const COORDINATE = object({ Vec: array(float), Error: float, Adjustment: float, Height: float });

const NODE_SERVICE_INPUT = object({
  Kind: optional(str), ID: optional(str), Service: optional(str), Tags: optional(stringList), Address: optional(str),
  TaggedAddresses: optional(record(SERVICE_ADDRESS)), Meta: optional(stringMap), Port: optional(int), SocketPath: optional(str),
  Weights: optional(WEIGHTS), EnableTagOverride: optional(bool), Proxy: anything, Connect: anything,
});
const HEALTH_CHECK_INPUT = object({
  Node: optional(str), CheckID: optional(str), Name: optional(str), Status: optional(str), Notes: optional(str), Output: optional(str),
  ServiceID: optional(str), ServiceName: optional(str), ServiceTags: optional(stringList), Type: optional(str), Interval: optional(str),
  Timeout: optional(str), ExposedPort: optional(int), Definition: optional(CHECK_DEFINITION),
});
const REGISTER_REQUEST: Shape<RegisterRequest> = object({
  Datacenter: optional(str), ID: optional(str), Node: str, Address: optional(str), TaggedAddresses: optional(stringMap),
  NodeMeta: optional(stringMap), Service: optional(NODE_SERVICE_INPUT), Check: optional(HEALTH_CHECK_INPUT),
  Checks: optional(array(HEALTH_CHECK_INPUT)), SkipNodeUpdate: optional(bool),
});
const DEREGISTER_REQUEST: Shape<DeregisterRequest> = object({ Datacenter: optional(str), Node: str, ServiceID: optional(str), CheckID: optional(str) });
/**
 * A value that outlives the command it came in: copied, because a view would pin the whole
 * buffer the command was read from (a Raft batch, a log segment) for as long as the key lives.
 */
const ownedBytes: Shape<Uint8Array> = (v, p) => Buffer.from(bytes(v, p));
const KV_DIRENT: Shape<KvDirEntInput> = object({
  Key: str, Value: optional(nullable(ownedBytes)), Flags: optional(uint64), Session: optional(str), LockIndex: optional(int), ModifyIndex: optional(int),
});
const KV_APPLY_OPS: KvApplyOp[] = ['set', 'delete', 'delete-cas', 'delete-tree', 'cas', 'lock', 'unlock'];
const KVS_REQUEST = object({ Op: oneOf(...KV_APPLY_OPS), DirEnt: KV_DIRENT });
const SESSION_REQUEST = object({ Op: oneOf('create', 'destroy'), Session: anything });
const SESSION_DESTROY = object({ ID: str });
const SESSION_CREATE: Shape<SessionCreateRequest> = object({
  ID: str, Name: str, Node: str, NodeChecks: stringList, ServiceChecks: array(object({ ID: str, Namespace: str })),
  LockDelay: int, Behavior: str, TTL: str,
});
const TOMBSTONE_REQUEST = object({ Op: oneOf('reap'), ReapIndex: int });
const COORDINATE_UPDATE = object({ Node: str, Segment: str, Coord: COORDINATE });
const COORDINATE_BATCH = object({ Updates: array(COORDINATE_UPDATE) });
const KV_OPS = [...KV_APPLY_OPS, 'get', 'get-or-empty', 'get-tree', 'check-session', 'check-index', 'check-not-exists'] as const;
/**
 * The txn command's payload: {Ops: [{KV: {Verb, DirEnt}} | {Node: {Verb, Node}} |
 * {Service: {Verb, Node, Service}} | {Check: {Verb, Check}}]}, each op exactly one kind.
 * Backward compatibility: the first encoding carried KV ops only, in exactly the {KV: ...} form
 * kept here, so an old entry is a valid new one and decodes unchanged; catalog ops were added as
 * new op kinds, not a new layout, which is why COMMAND_FORMAT_VERSION did not change. (A server
 * from before catalog ops refuses an entry carrying one as ERR_COMMAND_CORRUPT: upgrade every
 * server before clients send catalog txns.) Catalog records reuse the register command's shapes.
 */
const TXN_KV_OP = object({ Verb: oneOf(...KV_OPS), DirEnt: KV_DIRENT }) as Shape<TxnKvOp>;
const CATALOG_VERBS = ['set', 'cas', 'get', 'delete', 'delete-cas'] as const;
const TXN_NODE_OP: Shape<TxnNodeOp> = object({
  Verb: oneOf(...CATALOG_VERBS),
  Node: object({ ID: str, Node: str, Address: str, Datacenter: str, TaggedAddresses: stringMap, Meta: stringMap, ModifyIndex: int }),
});
const TXN_SERVICE_OP = object({ Verb: oneOf(...CATALOG_VERBS), Node: str, Service: withModifyIndex(NODE_SERVICE_INPUT) });
const TXN_CHECK_OP = object({ Verb: oneOf(...CATALOG_VERBS), Check: withModifyIndex(HEALTH_CHECK_INPUT) });
const TXN_OP_KINDS = { KV: TXN_KV_OP, Node: TXN_NODE_OP, Service: TXN_SERVICE_OP, Check: TXN_CHECK_OP } as const;
const TXN_OP: Shape<TxnOp> = (v, p) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return corrupt(p, 'a map', v);
  const kinds = Object.keys(v);
  const kind = kinds[0];
  if (kinds.length !== 1 || kind === undefined || !(kind in TXN_OP_KINDS)) {
    throw new FsmError('ERR_COMMAND_CORRUPT', `${p}: expected exactly one of ${Object.keys(TXN_OP_KINDS).join(', ')}, got ${kinds.join(', ') || 'none'}`);
  }
  const shape = TXN_OP_KINDS[kind as keyof typeof TXN_OP_KINDS] as Shape<unknown>;
  return { [kind]: shape((v as Record<string, unknown>)[kind], `${p}.${kind}`) } as TxnOp;
};
const TXN_REQUEST = object({ Ops: array(TXN_OP) });

/** An AutopilotSetConfigRequest as it travels in a forwarded Operator.AutopilotSetConfiguration (the autopilot command's shape). Throws FsmError. */
export function parseAutopilotSetRequest(value: unknown): { config: AutopilotConfigInput; casIndex: number | undefined } {
  const request = AUTOPILOT_REQUEST(value, 'AutopilotSetConfigRequest');
  const { ModifyIndex: casIndex, ...config } = request.Config;
  return { config, casIndex: request.CAS ? casIndex : undefined };
}

/** A register request as it travels in a forwarded Catalog.Register (the register command's shape). Throws FsmError. */
export function parseRegisterRequest(value: unknown): RegisterRequest {
  return REGISTER_REQUEST(value, 'RegisterRequest');
}

/** A deregister request as it travels in a forwarded Catalog.Deregister. Throws FsmError. */
export function parseDeregisterRequest(value: unknown): DeregisterRequest {
  return DEREGISTER_REQUEST(value, 'DeregisterRequest');
}

/**
 * Txn ops as they travel in a forwarded Txn.Apply (the shapes of the txn command's payload).
 * Throws FsmError (ERR_COMMAND_CORRUPT) with the first field that does not fit.
 */
export function parseTxnOps(ops: unknown): TxnOp[] {
  return [...TXN_REQUEST({ Ops: ops }, 'Ops').Ops];
}
const AUTOPILOT_CONFIG = {
  CleanupDeadServers: bool, LastContactThreshold: int, MaxTrailingLogs: int, MinQuorum: int, ServerStabilizationTime: int,
  RedundancyZoneTag: str, DisableUpgradeMigration: bool, UpgradeVersionTag: str,
};
const AUTOPILOT_REQUEST = object({ Datacenter: optional(str), Config: object({ ...AUTOPILOT_CONFIG, ModifyIndex: int }), CAS: bool });

/** A record shape plus an optional ModifyIndex (the CAS index a txn op carries). */
function withModifyIndex<T>(shape: Shape<T>): Shape<T & { ModifyIndex?: number }> {
  return (v, p) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return corrupt(p, 'a map', v);
    const { ModifyIndex: raw, ...rest } = v as Record<string, unknown>;
    const base = shape(rest, p);
    const modifyIndex = optional(int)(raw, `${p}.ModifyIndex`);
    return (modifyIndex === undefined ? base : { ...base, ModifyIndex: modifyIndex }) as T & { ModifyIndex?: number };
  };
}

/** The shape of every snapshot record kept as a map, by table. */
const RECORD_SHAPES = new Map<string, Shape<unknown>>([
  [TABLES.nodes, object({ ID: str, Node: str, Address: str, Datacenter: str, TaggedAddresses: stringMap, Meta: stringMap, CreateIndex: int, ModifyIndex: int })],
  [TABLES.services, object({
    Node: str, ID: str, Service: str, Kind: str, Tags: stringList, Address: str, TaggedAddresses: record(SERVICE_ADDRESS), Meta: stringMap,
    Port: int, SocketPath: str, Weights: WEIGHTS, EnableTagOverride: bool, Proxy: anything, Connect: anything, CreateIndex: int, ModifyIndex: int,
  })],
  [TABLES.checks, object({
    Node: str, CheckID: str, Name: str, Status: oneOf('passing', 'warning', 'critical'), Notes: str, Output: str, ServiceID: str,
    ServiceName: str, ServiceTags: stringList, Type: str, Interval: str, Timeout: str, ExposedPort: int, Definition: CHECK_DEFINITION,
    CreateIndex: int, ModifyIndex: int,
  })],
  [TABLES.tombstones, object({ Key: str, Index: int })],
  [TABLES.sessions, object({
    ID: str, Name: str, Node: str, NodeChecks: stringList, ServiceChecks: array(object({ ID: str, Namespace: str })), LockDelay: int,
    Behavior: oneOf('release', 'delete'), TTL: str, CreateIndex: int, ModifyIndex: int,
  })],
  [TABLES.sessionChecks, object({ Node: str, CheckID: str, Session: str })],
  [TABLES.coordinates, COORDINATE_UPDATE],
  [TABLES.autopilot, object({ ...AUTOPILOT_CONFIG, CreateIndex: int, ModifyIndex: int })],
  [TABLES.index, object({ Key: str, Value: int })],
]);

assert.deepEqual([...RECORD_SHAPES.keys(), TABLES.kvs].sort(), STATE_SCHEMA.tables.map((table) => table.name).sort(), 'every table needs a snapshot record shape (KV records are read positionally)');
