// The KV store: entries, tombstones, advisory locks and the KV verbs of /v1/txn.
//
// This is Consul's state-store half of /v1/kv and /v1/txn (agent/consul/state/kvs.go, kvs_ce.go,
// graveyard.go, txn.go), plus the few endpoint rules that decide what a client sees (the index a
// read reports, the lock-delay pre-check, the txn error texts). Every write takes the Raft index
// being applied and changes the state only through the given memdb write transaction; reads take
// a read transaction and report the X-Consul-Index Consul would.
//
// What clients rely on (spec §3.4, §3.6, §8.5, §8.6, §9.2):
// - A single-key GET reports the entry's ModifyIndex, or the max of the kvs and tombstones table
//   indexes when the key is missing; a prefix list reports the max ModifyIndex of the entries and
//   tombstones under the prefix, falling back to the table indexes. Deletes leave tombstones so a
//   blocking prefix query sees the delete's index instead of sliding backwards.
// - Writing identical content is not a change: ModifyIndex and the table index stay put.
// - Locks are advisory. `lock` needs a live session, bumps LockIndex only on a new acquisition,
//   and succeeds again for the holder. A plain set or cas keeps the holder, and stores the
//   request's LockIndex (0 from the HTTP and txn APIs) exactly as Consul's kvsSetTxn does.
// - CAS and lock failures are `false`, not errors. Client mistakes that Consul reports as errors
//   throw StateError with Consul's text.
// - A KV transaction runs every op, collects one TxnError per failing op with Consul's `What`, and
//   then returns no results; the caller aborts the memdb transaction, so nothing is half-applied.
//   A transaction that mixes KV and catalog ops is dispatched by lib/catalog.ts (txnApply,
//   txnRead), which runs each KV op through kvsTxnOp / kvsTxnReadOp here and catches the same
//   TxnOpError / StateError failures.
//
// Not here: lock-delay enforcement (the leader checks it before Raft, see kvsPreApply and
// kvsTxnPreCheck; the delays themselves live in LockDelay, lib/sessions.ts), the tombstone GC
// timers (TombstoneGc below is the pure bookkeeping; the leader owns the clock and the Raft
// proposal), ACLs, and the HTTP encoding of entries.
//
// Invariants: stored records are never mutated; every write that changes a table raises that
// table's row in the index table to the Raft index being applied (reaping excepted, as in Consul).

import assert from 'node:assert/strict';
import type { ReadTxn, WriteTxn } from './memdb.js';
import { bumpTableIndex, maxTableIndex, StateError, TABLES, type KvRecord, type QueryResult, type SessionBehavior, type TombstoneRecord } from './schema.js';
import type { LockDelay } from './sessions.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/**
 * The entry a write request carries (structs.DirEntry as the endpoints fill it). Omitted fields
 * take the values Consul's HTTP and txn endpoints send: no value, Flags 0, no session,
 * LockIndex 0, ModifyIndex 0.
 */
export interface KvDirEntInput {
  readonly Key: string;
  readonly Value?: Uint8Array | null;
  /** uint64, exact. */
  readonly Flags?: bigint;
  /** The session for lock, unlock and check-session; set and cas ignore it. */
  readonly Session?: string;
  /** Stored as given by set and cas (Consul copies the request's LockIndex, which is 0). */
  readonly LockIndex?: number;
  /** The index compared by cas, delete-cas and check-index; 0 for cas means "only if absent". */
  readonly ModifyIndex?: number;
}

/** KV verbs, as Consul spells them (api.KVOp). Wire enum: append only. */
export type KvOp =
  | 'set'
  | 'delete'
  | 'delete-cas'
  | 'delete-tree'
  | 'cas'
  | 'lock'
  | 'unlock'
  | 'get'
  | 'get-or-empty'
  | 'get-tree'
  | 'check-session'
  | 'check-index'
  | 'check-not-exists';

/** Every KV verb a txn may carry (api.KVOp), in Consul's order. Wire enum: append only. */
export const KV_TXN_VERBS: readonly KvOp[] = ['set', 'delete', 'delete-cas', 'delete-tree', 'cas', 'lock', 'unlock', 'get', 'get-or-empty', 'get-tree', 'check-session', 'check-index', 'check-not-exists'];

/** The verbs a KVS.Apply request (PUT/DELETE /v1/kv) may carry. */
export type KvApplyOp = Extract<KvOp, 'set' | 'delete' | 'delete-cas' | 'delete-tree' | 'cas' | 'lock' | 'unlock'>;

/** One KV operation of a transaction (structs.TxnKVOp). */
export interface TxnKvOp {
  readonly Verb: KvOp;
  readonly DirEnt: KvDirEntInput;
}

/** One result (structs.TxnResult, KV part). Value is null except for get, get-or-empty, get-tree. */
export interface TxnResult {
  readonly KV: KvRecord;
}

/** Why one operation failed (structs.TxnError). */
export interface TxnError {
  readonly OpIndex: number;
  readonly What: string;
}

/**
 * structs.TxnResponse: Results when every op succeeded (Errors null), else Errors (Results null)
 * and the caller must abort the memdb transaction.
 */
export interface TxnResponse {
  readonly Results: TxnResult[] | null;
  readonly Errors: TxnError[] | null;
}

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** How long a tombstone is kept before the leader reaps it (Consul tombstone_ttl default). */
export const TOMBSTONE_TTL_MS = 15 * 60_000;
/** Tombstone expirations are binned to this granularity (Consul TombstoneTTLGranularity). */
export const TOMBSTONE_TTL_GRANULARITY_MS = 30_000;

/** StateError codes of this module. Append only. */
export const KVS_ERRORS = {
  missingKey: 'ERR_MISSING_KEY',
  missingSession: 'ERR_MISSING_SESSION',
  invalidSession: 'ERR_INVALID_SESSION',
  invalidOperation: 'ERR_INVALID_KVS_OPERATION',
} as const;

// ---------------------------------------------------------------------------------------------
// Reads

/**
 * One key. Index: the entry's ModifyIndex, or max(kvs, tombstones) table index when missing
 * (Consul's KVS.Get). Never 0: Consul reports 1 for an empty store. Watches only this key, plus
 * the table indexes when the key is missing.
 */
export function kvsGet(txn: ReadTxn, key: string): QueryResult<KvRecord | undefined> {
  const entry = txn.first<KvRecord>(TABLES.kvs, 'id', key);
  if (entry) return { index: entry.ModifyIndex, value: entry };
  return { index: atLeastOne(maxTableIndex(txn, TABLES.kvs, TABLES.tombstones)), value: undefined };
}

/**
 * Every entry whose key starts with `prefix`, in key order. Index (kvsListTxn): the max
 * ModifyIndex of those entries and of the tombstones under the prefix; the whole-table index for
 * the empty prefix or when nothing matched. Never 0.
 */
export function kvsList(txn: ReadTxn, prefix: string): QueryResult<KvRecord[]> {
  const entries = [...txn.getPrefix<KvRecord>(TABLES.kvs, 'id', prefix)];
  let index = 0;
  if (prefix === '') {
    index = maxTableIndex(txn, TABLES.kvs, TABLES.tombstones);
  } else {
    for (const entry of entries) index = Math.max(index, entry.ModifyIndex);
    for (const stone of txn.getPrefix<TombstoneRecord>(TABLES.tombstones, 'id', prefix)) index = Math.max(index, stone.Index);
  }
  if (index === 0) index = maxTableIndex(txn, TABLES.kvs, TABLES.tombstones);
  return { index: atLeastOne(index), value: entries };
}

/**
 * The keys under `prefix` (KVS.ListKeys). With a separator, a key that has the separator after
 * the prefix is cut just past its first occurrence and reported once ("a/b/c" under "a/" with "/"
 * gives "a/b/"). Index as kvsList.
 */
export function kvsKeys(txn: ReadTxn, prefix: string, separator: string): QueryResult<string[]> {
  const { index, value: entries } = kvsList(txn, prefix);
  return { index, value: rollUpKeys(entries, prefix, separator) };
}

// ---------------------------------------------------------------------------------------------
// Writes

/**
 * Stores a value (KVSSet). Keeps the existing lock holder; a new key has none. Returns the entry
 * as it now stands. Writing identical content changes nothing, indexes included.
 */
export function kvsSet(txn: WriteTxn, index: number, entry: KvDirEntInput): KvRecord {
  assertKey(entry.Key);
  return setEntry(txn, index, draftOf(entry), false);
}

/**
 * Check-and-set (KVSSetCAS) on entry.ModifyIndex: 0 writes only if the key is absent, N only if
 * the key's ModifyIndex is N. Returns whether it wrote (false is a normal outcome).
 */
export function kvsSetCas(txn: WriteTxn, index: number, entry: KvDirEntInput): boolean {
  assertKey(entry.Key);
  return setCasEntry(txn, index, entry) !== undefined;
}

/**
 * Acquires the lock on a key for entry.Session and writes the value (KVSLock). Returns false if
 * another session holds it. Throws `missing session` / `invalid session "id"`. Lock-delay is
 * not checked here (see kvsPreApply): followers must apply what the leader accepted.
 */
export function kvsLock(txn: WriteTxn, index: number, entry: KvDirEntInput): boolean {
  assertKey(entry.Key);
  return lockEntry(txn, index, entry) !== undefined;
}

/**
 * Releases the lock if entry.Session holds it, writing the value; LockIndex is kept (KVSUnlock).
 * Returns false if the key is missing or held by someone else. Starts no lock-delay.
 */
export function kvsUnlock(txn: WriteTxn, index: number, entry: KvDirEntInput): boolean {
  assertKey(entry.Key);
  return unlockEntry(txn, index, entry) !== undefined;
}

/** Deletes one key, leaving a tombstone (KVSDelete). A missing key is a no-op. */
export function kvsDelete(txn: WriteTxn, index: number, key: string): void {
  deleteEntry(txn, index, key);
}

/**
 * Deletes a key only if its ModifyIndex is `casIndex` (KVSDeleteCAS). A missing key counts as
 * success (true) without writing, as in Consul; a mismatch returns false.
 */
export function kvsDeleteCas(txn: WriteTxn, index: number, key: string, casIndex: number): boolean {
  const entry = txn.first<KvRecord>(TABLES.kvs, 'id', key);
  if (!entry) return true;
  if (entry.ModifyIndex !== casIndex) return false;
  deleteEntry(txn, index, key);
  return true;
}

/**
 * Deletes every key under `prefix` (KVSDeleteTree). If anything was deleted, one tombstone at the
 * prefix itself records the index (none for the empty prefix: the table index covers it).
 */
export function kvsDeleteTree(txn: WriteTxn, index: number, prefix: string): void {
  const deleted = txn.deletePrefix(TABLES.kvs, 'id', prefix);
  if (deleted === 0) return;
  if (prefix !== '') insertTombstone(txn, index, prefix);
  bumpTableIndex(txn, TABLES.kvs, index);
}

/**
 * Applies one KVS.Apply request as Consul's FSM does: true for set/delete/delete-tree, the
 * outcome for cas/delete-cas/lock/unlock. Throws StateError for client mistakes.
 */
export function kvsApply(txn: WriteTxn, index: number, op: KvApplyOp, entry: KvDirEntInput): boolean {
  switch (op) {
    case 'set':
      kvsSet(txn, index, entry);
      return true;
    case 'delete':
      kvsDelete(txn, index, entry.Key);
      return true;
    case 'delete-cas':
      return kvsDeleteCas(txn, index, entry.Key, entry.ModifyIndex ?? 0);
    case 'delete-tree':
      kvsDeleteTree(txn, index, entry.Key);
      return true;
    case 'cas':
      return kvsSetCas(txn, index, entry);
    case 'lock':
      return kvsLock(txn, index, entry);
    case 'unlock':
      return kvsUnlock(txn, index, entry);
    default:
      throw new StateError(KVS_ERRORS.invalidOperation, `Invalid KVS operation '${String(op)}'`);
  }
}

/**
 * The leader's check before proposing a KVS.Apply (kvsPreApply): throws `Must provide key` for an
 * empty key (delete-tree excepted); returns false when a lock is refused by lock-delay (the
 * endpoint then answers `false`), true otherwise.
 */
export function kvsPreApply(op: KvOp, key: string, lockDelay: LockDelay): boolean {
  if (key === '' && op !== 'delete-tree') throw new StateError(KVS_ERRORS.missingKey, 'Must provide key');
  return !(op === 'lock' && lockDelay.isLocked(key));
}

/**
 * Session invalidation's KV half (deleteSessionTxn): every key the session holds is released
 * (Session cleared, LockIndex kept, ModifyIndex bumped) or deleted with a tombstone, per the
 * session's Behavior. Returns the affected keys, for lock-delay.
 */
export function kvsInvalidateSession(txn: WriteTxn, index: number, sessionId: string, behavior: SessionBehavior): string[] {
  const held = [...txn.get<KvRecord>(TABLES.kvs, 'session', sessionId)];
  for (const entry of held) {
    if (behavior === 'delete') {
      deleteEntry(txn, index, entry.Key);
    } else {
      assert.equal(behavior, 'release', 'unknown session behavior');
      setEntry(txn, index, { ...entry, Session: '' }, true);
    }
  }
  return held.map((entry) => entry.Key);
}

/**
 * Removes the tombstones with Index <= reapIndex (ReapTombstones). Like Consul it leaves the
 * tombstones table index alone, so reaping neither wakes nor moves blocking queries. Returns the
 * number removed.
 */
export function reapTombstones(txn: WriteTxn, index: number, reapIndex: number): number {
  assert.ok(reapIndex <= index, 'tombstones are reaped only below the index being applied');
  const stones = [...txn.all<TombstoneRecord>(TABLES.tombstones)].filter((stone) => stone.Index <= reapIndex);
  for (const stone of stones) txn.delete(TABLES.tombstones, stone);
  return stones.length;
}

// ---------------------------------------------------------------------------------------------
// Transactions

/** Whether a verb writes (Consul's isWrite); a txn with none is served as a read. */
export function isKvWriteOp(verb: KvOp): boolean {
  return verb === 'set' || verb === 'delete' || verb === 'delete-cas' || verb === 'delete-tree' || verb === 'cas' || verb === 'lock' || verb === 'unlock';
}

/**
 * The leader's checks before a txn goes to Raft (Txn.preCheck, KV part): every op with an empty
 * key (delete-tree excepted) and every lock refused by lock-delay yields an error. An empty list
 * means the txn may be proposed.
 */
export function kvsTxnPreCheck(ops: readonly TxnKvOp[], lockDelay: LockDelay): TxnError[] {
  const errors: TxnError[] = [];
  ops.forEach((op, opIndex) => {
    const what = kvsTxnPreCheckOp(op, lockDelay);
    if (what !== undefined) errors.push({ OpIndex: opIndex, What: what });
  });
  return errors;
}

/** kvsTxnPreCheck for one op: Consul's What when the op is refused, else undefined. */
export function kvsTxnPreCheckOp(op: TxnKvOp, lockDelay: LockDelay): string | undefined {
  try {
    if (!kvsPreApply(op.Verb, op.DirEnt.Key, lockDelay)) return `failed to lock key ${goQuote(op.DirEnt.Key)} due to lock delay`;
  } catch (error) {
    if (!(error instanceof StateError)) throw error;
    return error.message;
  }
  return undefined;
}

/**
 * Runs KV operations in one write transaction (TxnRW's dispatch). Like Consul it runs every op
 * and reports each failure with its OpIndex; if any failed, Results is null and the caller must
 * abort `txn` so that no op's effect survives.
 */
export function kvsTxn(txn: WriteTxn, index: number, ops: readonly TxnKvOp[]): TxnResponse {
  return dispatch(ops, (op) => applyTxnOp(txn, index, op));
}

/**
 * One KV op of a mixed transaction in a write transaction (txnKVS). Throws TxnOpError or
 * StateError, whose message is Consul's What; the caller collects it and aborts `txn`.
 */
export function kvsTxnOp(txn: WriteTxn, index: number, op: TxnKvOp): TxnResult[] {
  return applyTxnOp(txn, index, op);
}

/** One read-only KV op of a mixed transaction (txnKVS under TxnRO). Throws like kvsTxnOp. */
export function kvsTxnReadOp(txn: ReadTxn, op: TxnKvOp): TxnResult[] {
  assert.ok(!isKvWriteOp(op.Verb), `read-only txn carries write verb ${op.Verb}`);
  return applyTxnRead(txn, op);
}

/** Whether `error` is an op failure a txn reports as a TxnError (anything else is a bug). */
export function isTxnOpFailure(error: unknown): error is Error {
  return error instanceof TxnOpError || error instanceof StateError;
}

/** Runs read-only KV operations on a snapshot (TxnRO). Write verbs are a caller bug. */
export function kvsTxnRead(txn: ReadTxn, ops: readonly TxnKvOp[]): TxnResponse {
  for (const op of ops) assert.ok(!isKvWriteOp(op.Verb), `read-only txn carries write verb ${op.Verb}`);
  return dispatch(ops, (op) => applyTxnRead(txn, op));
}

// ---------------------------------------------------------------------------------------------
// Tombstone GC bookkeeping

/**
 * Which tombstones are old enough to reap (Consul's TombstoneGC, without its timers). The FSM
 * hints it with the index of every commit that added tombstones; the leader asks takeExpired()
 * when nextExpiryMs() passes and proposes ReapTombstones for the index it returns. Expirations
 * are binned by granularity so one reap covers many deletes. Soft, leader-only state.
 */
export class TombstoneGc {
  /** expiry time (ms) -> highest tombstone index that expires then. Invariant: size <= binsMax. */
  private readonly bins = new Map<number, number>();
  private readonly binsMax: number;
  private isEnabled = false;

  constructor(
    private readonly nowMs: () => number,
    private readonly ttlMs = TOMBSTONE_TTL_MS,
    private readonly granularityMs = TOMBSTONE_TTL_GRANULARITY_MS,
  ) {
    assert.ok(ttlMs > 0 && granularityMs > 0, 'Tombstone TTL and granularity must be positive');
    this.binsMax = Math.ceil(ttlMs / granularityMs) + 2;
  }

  /** Only the leader tracks expirations; disabling forgets them (SetEnabled). */
  setEnabled(isEnabled: boolean): void {
    if (!isEnabled) this.bins.clear();
    this.isEnabled = isEnabled;
  }

  /**
   * Tombstones up to `index` were just written (Hint). If the leader has not collected expired
   * bins and the bin count reaches its bound, the latest bin is folded into the new one: those
   * tombstones are reaped a little later, never earlier.
   */
  hint(index: number): void {
    if (!this.isEnabled) return;
    const expiresMs = this.nextExpiresMs();
    let maxIndex = Math.max(index, this.bins.get(expiresMs) ?? 0);
    if (!this.bins.has(expiresMs) && this.bins.size >= this.binsMax) {
      const latest = Math.max(...this.bins.keys());
      maxIndex = Math.max(maxIndex, this.bins.get(latest) ?? 0);
      this.bins.delete(latest);
    }
    this.bins.set(expiresMs, maxIndex);
  }

  /** When the earliest bin expires, or undefined when nothing is pending. */
  nextExpiryMs(): number | undefined {
    let earliest: number | undefined;
    for (const expiresMs of this.bins.keys()) if (earliest === undefined || expiresMs < earliest) earliest = expiresMs;
    return earliest;
  }

  /** Removes the bins that have expired and returns their highest index, or 0 if none. */
  takeExpired(): number {
    const now = this.nowMs();
    let reapIndex = 0;
    for (const [expiresMs, index] of [...this.bins]) {
      if (expiresMs > now) continue;
      this.bins.delete(expiresMs);
      reapIndex = Math.max(reapIndex, index);
    }
    return reapIndex;
  }

  /** Whether any expiration is pending (PendingExpiration). */
  hasPending(): boolean {
    return this.bins.size > 0;
  }

  /** now + TTL, rounded up to the next multiple of the granularity (always strictly past it). */
  private nextExpiresMs(): number {
    const expiresMs = this.nowMs() + this.ttlMs;
    return expiresMs + this.granularityMs - (expiresMs % this.granularityMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers: entries

/** The fields of an entry that a write decides; indexes are filled by setEntry. */
interface KvDraft {
  readonly Key: string;
  readonly Value: Uint8Array | null;
  readonly Flags: bigint;
  readonly Session: string;
  readonly LockIndex: number;
}

function draftOf(entry: KvDirEntInput): KvDraft {
  return { Key: entry.Key, Value: entry.Value ?? null, Flags: entry.Flags ?? 0n, Session: entry.Session ?? '', LockIndex: entry.LockIndex ?? 0 };
}

/**
 * Consul's kvsSetTxn: CreateIndex from the existing entry, the session kept unless
 * `isSessionUpdate`, and no write at all when the content (LockIndex, Key, Flags, Value, Session)
 * is unchanged. Returns the entry as it now stands.
 */
function setEntry(txn: WriteTxn, index: number, draft: KvDraft, isSessionUpdate: boolean): KvRecord {
  const existing = txn.first<KvRecord>(TABLES.kvs, 'id', draft.Key);
  const next: KvRecord = {
    LockIndex: draft.LockIndex,
    Key: draft.Key,
    Flags: draft.Flags,
    Value: draft.Value,
    Session: isSessionUpdate ? draft.Session : (existing?.Session ?? ''),
    CreateIndex: existing?.CreateIndex ?? index,
    ModifyIndex: index,
  };
  if (existing && isSameContent(existing, next)) return { ...next, ModifyIndex: existing.ModifyIndex };
  txn.insert<KvRecord>(TABLES.kvs, next);
  bumpTableIndex(txn, TABLES.kvs, index);
  return next;
}

/** kvsSetCASTxn; undefined when the CAS index does not match. */
function setCasEntry(txn: WriteTxn, index: number, entry: KvDirEntInput): KvRecord | undefined {
  const existing = txn.first<KvRecord>(TABLES.kvs, 'id', entry.Key);
  const casIndex = entry.ModifyIndex ?? 0;
  if (casIndex === 0 ? existing !== undefined : existing?.ModifyIndex !== casIndex) return undefined;
  return setEntry(txn, index, draftOf(entry), false);
}

/** kvsLockTxn; undefined when another session holds the lock. */
function lockEntry(txn: WriteTxn, index: number, entry: KvDirEntInput): KvRecord | undefined {
  const session = requireSession(entry);
  if (txn.first(TABLES.sessions, 'id', session) === undefined) {
    throw new StateError(KVS_ERRORS.invalidSession, `invalid session ${goQuote(session)}`);
  }
  const existing = txn.first<KvRecord>(TABLES.kvs, 'id', entry.Key);
  if (existing && existing.Session !== '' && existing.Session !== session) return undefined;
  // A new acquisition bumps LockIndex; the holder acquiring again keeps it.
  const lockIndex = existing === undefined ? 1 : existing.Session === session ? existing.LockIndex : existing.LockIndex + 1;
  return setEntry(txn, index, { ...draftOf(entry), Session: session, LockIndex: lockIndex }, true);
}

/** kvsUnlockTxn; undefined when the key is missing or not held by this session. */
function unlockEntry(txn: WriteTxn, index: number, entry: KvDirEntInput): KvRecord | undefined {
  const session = requireSession(entry);
  const existing = txn.first<KvRecord>(TABLES.kvs, 'id', entry.Key);
  if (!existing || existing.Session !== session) return undefined;
  return setEntry(txn, index, { ...draftOf(entry), Session: '', LockIndex: existing.LockIndex }, true);
}

/** kvsDeleteTxn: tombstone, delete, bump. Returns whether the key existed. */
function deleteEntry(txn: WriteTxn, index: number, key: string): boolean {
  const entry = txn.first<KvRecord>(TABLES.kvs, 'id', key);
  if (!entry) return false;
  insertTombstone(txn, index, key);
  txn.delete(TABLES.kvs, entry);
  bumpTableIndex(txn, TABLES.kvs, index);
  return true;
}

function insertTombstone(txn: WriteTxn, index: number, key: string): void {
  txn.insert<TombstoneRecord>(TABLES.tombstones, { Key: key, Index: index });
  bumpTableIndex(txn, TABLES.tombstones, index);
}

function requireSession(entry: KvDirEntInput): string {
  const session = entry.Session ?? '';
  if (session === '') throw new StateError(KVS_ERRORS.missingSession, 'missing session');
  return session;
}

/** The endpoints refuse empty keys before Raft; reaching the store with one is a caller bug. */
function assertKey(key: string): void {
  if (key === '') throw new StateError(KVS_ERRORS.missingKey, 'Must provide key');
}

/** DirEntry.Equal: LockIndex, Key, Flags, Value (nil equals empty) and Session. */
function isSameContent(a: KvRecord, b: KvRecord): boolean {
  return a.LockIndex === b.LockIndex && a.Key === b.Key && a.Flags === b.Flags && a.Session === b.Session && isSameBytes(a.Value, b.Value);
}

function isSameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  const left = a ?? EMPTY_BYTES;
  const right = b ?? EMPTY_BYTES;
  if (left.length !== right.length) return false;
  for (let i = 0; i < left.length; i++) if (left[i] !== right[i]) return false;
  return true;
}

const EMPTY_BYTES = new Uint8Array(0);

function rollUpKeys(entries: readonly KvRecord[], prefix: string, separator: string): string[] {
  if (separator === '') return entries.map((entry) => entry.Key);
  const keys: string[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    const at = entry.Key.indexOf(separator, prefix.length);
    if (at < 0) {
      keys.push(entry.Key);
      continue;
    }
    const key = entry.Key.slice(0, at + separator.length);
    if (seen.has(key)) continue;
    seen.add(key);
    keys.push(key);
  }
  return keys;
}

function atLeastOne(index: number): number {
  return Math.max(1, index);
}

// ---------------------------------------------------------------------------------------------
// Private helpers: transactions

/** A failed txn op; `message` is Consul's What. Exported so catalog txn ops fail the same way. */
export class TxnOpError extends Error {}

function dispatch(ops: readonly TxnKvOp[], run: (op: TxnKvOp) => TxnResult[]): TxnResponse {
  const results: TxnResult[] = [];
  const errors: TxnError[] = [];
  ops.forEach((op, opIndex) => {
    try {
      results.push(...run(op));
    } catch (error) {
      if (!(error instanceof TxnOpError) && !(error instanceof StateError)) throw error;
      errors.push({ OpIndex: opIndex, What: error.message });
    }
  });
  return errors.length > 0 ? { Results: null, Errors: errors } : { Results: results, Errors: null };
}

/** txnKVS for one op in a write transaction. Throws TxnOpError/StateError on failure. */
function applyTxnOp(txn: WriteTxn, index: number, op: TxnKvOp): TxnResult[] {
  const entry = op.DirEnt;
  const key = goQuote(entry.Key);
  switch (op.Verb) {
    case 'set':
      assertKey(entry.Key);
      return [withoutValue(setEntry(txn, index, draftOf(entry), false))];
    case 'cas':
      assertKey(entry.Key);
      return [withoutValue(orFail(setCasEntry(txn, index, entry), `failed to set key ${key}, index is stale`))];
    case 'lock':
      assertKey(entry.Key);
      return [withoutValue(orFail(lockEntry(txn, index, entry), `failed to lock key ${key}, lock is already held`))];
    case 'unlock':
      assertKey(entry.Key);
      return [withoutValue(orFail(unlockEntry(txn, index, entry), `failed to unlock key ${key}, lock isn't held, or is held by another session`))];
    case 'delete':
      deleteEntry(txn, index, entry.Key);
      return [];
    case 'delete-cas':
      if (!kvsDeleteCas(txn, index, entry.Key, entry.ModifyIndex ?? 0)) throw new TxnOpError(`failed to delete key ${key}, index is stale`);
      return [];
    case 'delete-tree':
      kvsDeleteTree(txn, index, entry.Key);
      return [];
    default:
      return applyTxnRead(txn, op);
  }
}

/** txnKVS for the verbs that only read. */
function applyTxnRead(txn: ReadTxn, op: TxnKvOp): TxnResult[] {
  const entry = op.DirEnt;
  const key = goQuote(entry.Key);
  const existing = (): KvRecord | undefined => txn.first<KvRecord>(TABLES.kvs, 'id', entry.Key);
  switch (op.Verb) {
    case 'get':
      return [{ KV: orFail(existing(), `key ${key} doesn't exist`) }];
    case 'get-or-empty':
      return [{ KV: existing() ?? { ...requestRecord(entry), Value: null } }];
    case 'get-tree':
      return [...txn.getPrefix<KvRecord>(TABLES.kvs, 'id', entry.Key)].map((found) => ({ KV: found }));
    case 'check-session': {
      const found = orFail(existing(), `failed to check session, key ${key} doesn't exist`);
      const session = entry.Session ?? '';
      if (found.Session !== session) {
        throw new TxnOpError(`failed session check for key ${key}, current session ${goQuote(found.Session)} != ${goQuote(session)}`);
      }
      return [withoutValue(found)];
    }
    case 'check-index': {
      const found = orFail(existing(), `failed to check index, key ${key} doesn't exist`);
      const casIndex = entry.ModifyIndex ?? 0;
      if (found.ModifyIndex !== casIndex) throw new TxnOpError(`failed index check for key ${key}, current modify index ${found.ModifyIndex} != ${casIndex}`);
      return [withoutValue(found)];
    }
    case 'check-not-exists':
      if (existing() !== undefined) throw new TxnOpError(`key ${key} exists`);
      return [];
    default:
      throw new TxnOpError(`unknown KV verb ${goQuote(String(op.Verb))}`);
  }
}

function orFail<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new TxnOpError(what);
  return value;
}

/** Results of non-get verbs carry no value (Consul blanks it to save space). */
function withoutValue(entry: KvRecord): TxnResult {
  return { KV: { ...entry, Value: null } };
}

/** The request's DirEntry as a record (get-or-empty on a missing key echoes it). */
function requestRecord(entry: KvDirEntInput): KvRecord {
  return {
    LockIndex: entry.LockIndex ?? 0,
    Key: entry.Key,
    Flags: entry.Flags ?? 0n,
    Value: entry.Value ?? null,
    Session: entry.Session ?? '',
    CreateIndex: 0,
    ModifyIndex: entry.ModifyIndex ?? 0,
  };
}

/**
 * Go's %q of a string (strconv.Quote): printable characters as they are, `"` and `\` escaped,
 * \a \b \f \n \r \t \v, other control bytes as \xNN, other non-printable runes as \uNNNN or
 * \UNNNNNNNN. A lone surrogate (invalid UTF-8 in Go) prints as U+FFFD, which Go's JSON decoder
 * would have substituted.
 */
export function goQuote(text: string): string {
  let quoted = '"';
  for (const character of text) {
    const code = character.codePointAt(0) ?? 0;
    quoted += quoteRune(code >= 0xd800 && code <= 0xdfff ? 0xfffd : code);
  }
  return `${quoted}"`;
}

const GO_SHORT_ESCAPES: ReadonlyMap<number, string> = new Map([
  [0x07, '\\a'],
  [0x08, '\\b'],
  [0x0c, '\\f'],
  [0x0a, '\\n'],
  [0x0d, '\\r'],
  [0x09, '\\t'],
  [0x0b, '\\v'],
]);

/** unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
const GO_PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

function quoteRune(code: number): string {
  const character = String.fromCodePoint(code);
  if (character === '"' || character === '\\') return `\\${character}`;
  if (GO_PRINTABLE.test(character)) return character;
  const short = GO_SHORT_ESCAPES.get(code);
  if (short !== undefined) return short;
  if (code < 0x20 || code === 0x7f) return `\\x${code.toString(16).padStart(2, '0')}`;
  if (code < 0x10000) return `\\u${code.toString(16).padStart(4, '0')}`;
  return `\\U${code.toString(16).padStart(8, '0')}`;
}
