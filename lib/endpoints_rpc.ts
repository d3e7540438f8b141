// Consul's server RPC methods served on the server port (lib/rpc.ts stays generic; this module
// maps Consul's argument and reply structs onto the Raft node and the state store).
//
// Served: `Status.Leader`, `Status.Peers`, `KVS.Apply`, `KVS.Get`, `KVS.List`, with the shapes
// of hashicorp/consul agent/structs (KVSRequest, KeyRequest, DirEntry, IndexedDirEntries,
// QueryMeta) and the replies of agent/consul/status_endpoint.go and kvs_endpoint.go.
//
// Not here (yet): forwarding to the leader or to another datacenter (issue 9). A write that
// reaches a follower is refused with NOT_LEADER_PREFIX plus the leader's address, so the caller
// can retry there; with no known leader it gets Consul's "No cluster leader". Reads are served
// from the local state store (a follower's default-consistency read is therefore stale, and says
// so in ConsistencyLevel); RequireConsistent runs a ReadIndex round first, which only the leader
// can do. Also left for later issues: blocking queries (MinQueryIndex) and ACLs (Token is
// accepted and ignored); namespaces and admin partitions are Enterprise features Consul OSS lacks.
//
// Invariant: arguments are untrusted; a malformed field is an error reply, never a throw past
// the method (rpc.ts turns rejections into the response's Error string anyway).
//
// References: Consul agent/consul/kvs_endpoint.go (Apply, Get, List), status_endpoint.go,
// agent/structs/structs.go, agent/consul/rpc.go (ErrNoLeader), hashicorp/raft ErrNotLeader.

import { kvsApplyCommand, kvsGetQuery, kvsListQuery } from './endpoints_kv.js';
import { encodeCommand, type ApplyResult } from './fsm.js';
import type { KvApplyOp, KvDirEntInput } from './kvs.js';
import type { MsgpackValue } from './msgpack.js';
import type { RpcMethod } from './rpc.js';
import type { KvRecord } from './schema.js';
import type { StateStore } from './state.js';
import { NO_PATH_TO_DATACENTER_TEXT, notLeaderText, UINT64_MAX } from './query.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** The Raft node as these endpoints use it (lib/raftnode.ts RaftNode satisfies it). */
export interface RpcRaft {
  apply(command: Uint8Array): Promise<ApplyResult>;
  readIndex(): Promise<void>;
  leader(): string;
  peers(): string[];
  readonly isLeader: boolean;
  readonly lastContactMs: number | undefined;
}

export interface RpcEndpointsOptions {
  readonly raft: RpcRaft;
  readonly state: StateStore;
  /** This server's datacenter: requests naming another one are refused (no WAN forwarding). */
  readonly datacenter: string;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** A KV key's bytes (the HTTP layer's limit is the same order; Consul has none of its own). */
const KEY_BYTES_MAX = 64 * 1024;
/** KVS.Apply verbs (api.KVOp). Wire enum: append only. */
const KV_APPLY_OPS: readonly KvApplyOp[] = ['set', 'delete', 'delete-cas', 'delete-tree', 'cas', 'lock', 'unlock'];

// ---------------------------------------------------------------------------------------------
// Exported API

/** Consul's RPC methods, by `Service.Method` name, for RpcServerOptions.methods. */
export function consulRpcMethods(options: RpcEndpointsOptions): Map<string, RpcMethod> {
  return new Map<string, RpcMethod>([
    ['Status.Leader', () => options.raft.leader()],
    ['Status.Peers', () => options.raft.peers()],
    ['KVS.Apply', (args) => kvsApplyEndpoint(options, args)],
    ['KVS.Get', (args) => kvsReadEndpoint(options, args, 'get')],
    ['KVS.List', (args) => kvsReadEndpoint(options, args, 'list')],
  ]);
}

/**
 * An RPC argument that must be a struct (a msgpack map) as the fields it holds; throws
 * `<what> must be a map` otherwise. Shared by every server method that decodes a request.
 */
export function rpcFields(value: MsgpackValue | undefined, what: string): Record<string, MsgpackValue> {
  const isMap = value !== null && value !== undefined && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Uint8Array) && [Object.prototype, null].includes(Object.getPrototypeOf(value));
  if (!isMap) throw new Error(`${what} must be a map`);
  return value as Record<string, MsgpackValue>;
}

/** A string field of an RPC argument ('' when absent); throws `<name> must be a string` otherwise. */
export function rpcString(fields: Record<string, MsgpackValue>, name: string): string {
  const value = fields[name] ?? '';
  if (typeof value !== 'string') throw new Error(`${name} must be a string`);
  return value;
}

/** A request's Datacenter: ours or empty; Consul answers this when it knows no route to another. */
export function checkRpcDatacenter(request: Record<string, MsgpackValue>, datacenter: string): void {
  const requested = request['Datacenter'] ?? '';
  if (typeof requested !== 'string') throw new Error('Datacenter must be a string');
  if (requested !== '' && requested !== datacenter) throw new Error(NO_PATH_TO_DATACENTER_TEXT);
}

// ---------------------------------------------------------------------------------------------
// Private helpers

/** KVS.Apply: KVSRequest {Datacenter, Op, DirEnt, Token} → bool (kvs_endpoint.go Apply). */
async function kvsApplyEndpoint(options: RpcEndpointsOptions, args: MsgpackValue): Promise<boolean> {
  const request = rpcFields(args, 'KVSRequest');
  checkDatacenter(options, request);
  const op = request['Op'];
  if (typeof op !== 'string' || !(KV_APPLY_OPS as readonly string[]).includes(op)) throw new Error(`Invalid KVS operation '${String(op)}'`);
  const entry = dirEntInput(request['DirEnt']);
  refuseUnlessLeader(options.raft);
  // The HTTP endpoint's pre-Raft check (lib/endpoints_kv.ts): a missing key is an error, a lock
  // refused by lock-delay answers false without a write.
  const command = kvsApplyCommand(options.state.lockDelay, { Op: op as KvApplyOp, DirEnt: entry });
  if (command === undefined) return false;
  let result: ApplyResult;
  try {
    result = await options.raft.apply(encodeCommand(command));
  } catch (error) {
    throw applyError(error);
  }
  if (!result.ok) throw new Error(result.error.message);
  return result.value === true;
}

/** KVS.Get / KVS.List: KeyRequest {Datacenter, Key, QueryOptions} → IndexedDirEntries. */
async function kvsReadEndpoint(options: RpcEndpointsOptions, args: MsgpackValue, kind: 'get' | 'list'): Promise<Record<string, unknown>> {
  const request = rpcFields(args, 'KeyRequest');
  checkDatacenter(options, request);
  const key = request['Key'] ?? '';
  if (typeof key !== 'string' || Buffer.byteLength(key) > KEY_BYTES_MAX) throw new Error('KeyRequest.Key must be a string of at most 64 KiB');
  const isConsistent = optionalBool(request, 'RequireConsistent');
  const isStale = optionalBool(request, 'AllowStale');
  if (isConsistent) {
    refuseUnlessLeader(options.raft);
    try {
      await options.raft.readIndex();
    } catch (error) {
      throw applyError(error);
    }
  }
  // The same queries as the HTTP endpoint's KVS.Get and KVS.List (lib/endpoints_kv.ts).
  const { index, value: entries } = options.state.read(kind === 'list' ? kvsListQuery(key) : kvsGetQuery(key));
  const { raft } = options;
  return {
    // Consul leaves Entries nil when nothing matched.
    Entries: entries.length === 0 ? null : entries.map(dirEntryReply),
    Index: index,
    // time.Duration, in nanoseconds.
    LastContact: raft.isLeader ? 0 : (raft.lastContactMs ?? 0) * 1_000_000,
    KnownLeader: raft.leader() !== '',
    ConsistencyLevel: isConsistent ? 'consistent' : isStale || !raft.isLeader ? 'stale' : 'default',
    NotModified: false,
    ResultsFilteredByACLs: false,
  };
}

/** structs.DirEntry as Consul encodes it (EnterpriseMeta fields are empty in OSS and omitted). */
function dirEntryReply(record: KvRecord): Record<string, unknown> {
  return {
    CreateIndex: record.CreateIndex,
    Flags: record.Flags,
    Key: record.Key,
    LockIndex: record.LockIndex,
    ModifyIndex: record.ModifyIndex,
    Session: record.Session,
    Value: record.Value,
  };
}

/** A follower refuses writes and consistent reads; Consul would forward them (issue 9). */
function refuseUnlessLeader(raft: RpcRaft): void {
  if (raft.isLeader) return;
  throw new Error(notLeaderText(raft.leader()));
}

/** Maps the Raft node's coded errors to the strings a Consul client sees. */
function applyError(error: unknown): Error {
  const code = (error as { code?: unknown } | null)?.code;
  const leader = (error as { leaderAddress?: unknown } | null)?.leaderAddress;
  if (code === 'ERR_NOT_LEADER') return new Error(notLeaderText(leader));
  // hashicorp/raft's text: the entry may or may not commit later.
  if (code === 'ERR_LEADERSHIP_LOST') return new Error('leadership lost while committing log');
  return error instanceof Error ? error : new Error(String(error));
}

function checkDatacenter(options: RpcEndpointsOptions, request: Record<string, MsgpackValue>): void {
  checkRpcDatacenter(request, options.datacenter);
}

/** structs.DirEntry from a request, checked field by field. */
function dirEntInput(value: MsgpackValue | undefined): KvDirEntInput {
  const fields = rpcFields(value ?? null, 'DirEnt');
  const key = fields['Key'] ?? '';
  if (typeof key !== 'string' || Buffer.byteLength(key) > KEY_BYTES_MAX) throw new Error('DirEnt.Key must be a string of at most 64 KiB');
  const rawValue = fields['Value'] ?? null;
  let bytes: Uint8Array | null;
  if (rawValue === null || rawValue instanceof Uint8Array) bytes = rawValue;
  else if (typeof rawValue === 'string') bytes = new Uint8Array(Buffer.from(rawValue, 'utf8'));
  else throw new Error('DirEnt.Value must be bytes');
  const session = fields['Session'] ?? '';
  if (typeof session !== 'string') throw new Error('DirEnt.Session must be a string');
  return {
    Key: key,
    Value: bytes,
    Flags: uint64(fields['Flags'], 'DirEnt.Flags'),
    Session: session,
    LockIndex: safeIndex(fields['LockIndex'], 'DirEnt.LockIndex'),
    ModifyIndex: safeIndex(fields['ModifyIndex'], 'DirEnt.ModifyIndex'),
  };
}


function optionalBool(fields: Record<string, MsgpackValue>, name: string): boolean {
  const value = fields[name] ?? false;
  if (typeof value === 'boolean') return value;
  // Go's decoder takes 0 and 1 for a bool (wire.md §1.3).
  if (value === 0 || value === 1) return value === 1;
  throw new Error(`${name} must be a bool`);
}

function uint64(value: MsgpackValue | undefined, name: string): bigint {
  if (value === undefined || value === null) return 0n;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === 'bigint' && value >= 0n && value <= UINT64_MAX) return value;
  throw new Error(`${name} must be a uint64`);
}

function safeIndex(value: MsgpackValue | undefined, name: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'bigint' && value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(value);
  throw new Error(`${name} must be an index below 2^53`);
}
