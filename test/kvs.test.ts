// Rule tests for the KV store (lib/kvs.ts): Consul's index rules, CAS, locks, tombstones, the
// txn verbs, watch precision, and a seeded model-based comparison against a naive KV model.
// Replay one seed of the model test with KVS_SEED=<n>.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  goQuote,
  kvsApply,
  kvsDelete,
  kvsDeleteCas,
  kvsDeleteTree,
  kvsGet,
  kvsKeys,
  kvsList,
  kvsLock,
  kvsPreApply,
  kvsSet,
  kvsSetCas,
  kvsTxn,
  kvsTxnPreCheck,
  kvsTxnRead,
  kvsUnlock,
  reapTombstones,
  TombstoneGc,
  type KvDirEntInput,
  type TxnKvOp,
  type TxnResponse,
} from '../lib/kvs.js';
import { MemDb, WatchSet, type ReadTxn } from '../lib/memdb.js';
import { STATE_SCHEMA, tableIndex, TABLES, type KvRecord, type TombstoneRecord } from '../lib/schema.js';
import { LockDelay, normalizeSessionRequest, sessionCreate, sessionDestroy } from '../lib/sessions.js';
import { assertStateError, read, registerNode, write } from './state-support.js';
import { mulberry32 } from './support.js';

// ---------------------------------------------------------------------------------------------
// Helpers

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array | null): string | null => (value === null ? null : Buffer.from(value).toString('utf8'));

function createSession(db: MemDb, index: number, id: string, options: { behavior?: 'release' | 'delete'; lockDelayNanos?: number } = {}): void {
  const request = normalizeSessionRequest({ NodeChecks: [], Behavior: options.behavior ?? 'release', LockDelay: options.lockDelayNanos ?? 15e9 }, 'node1', id);
  write(db, (txn) => sessionCreate(txn, index, request));
}

function set(db: MemDb, index: number, key: string, value: string | null, extra: Partial<KvDirEntInput> = {}): KvRecord {
  return write(db, (txn) => kvsSet(txn, index, { Key: key, Value: value === null ? null : bytes(value), ...extra }));
}

function get(db: MemDb, key: string): { index: number; value: KvRecord | undefined } {
  return read(db, (txn) => kvsGet(txn, key));
}

function listIndex(db: MemDb, prefix: string): number {
  return read(db, (txn) => kvsList(txn, prefix).index);
}

/** Runs a KV txn the way the caller must: commit on success, abort on errors. */
function runTxn(db: MemDb, index: number, ops: TxnKvOp[]): TxnResponse {
  const txn = db.writeTxn();
  const response = kvsTxn(txn, index, ops);
  if (response.Errors) txn.abort();
  else txn.commit();
  return response;
}

function op(Verb: TxnKvOp['Verb'], Key: string, extra: Partial<KvDirEntInput> = {}): TxnKvOp {
  return { Verb, DirEnt: { Key, ...extra } };
}

// ---------------------------------------------------------------------------------------------
// Index rules

describe('KV index rules', () => {
  test('a missing key on an empty store reports index 1, never 0', () => {
    const db = new MemDb(STATE_SCHEMA);
    assert.deepEqual(get(db, 'nope'), { index: 1, value: undefined });
    assert.equal(listIndex(db, ''), 1);
    assert.equal(listIndex(db, 'a/'), 1);
    assert.deepEqual(read(db, (txn) => kvsKeys(txn, '', '/')), { index: 1, value: [] });
  });

  test('an existing key reports its own ModifyIndex, not the table index', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 3, 'foo', 'bar');
    set(db, 7, 'other', 'x');
    const { index, value } = get(db, 'foo');
    assert.equal(index, 3);
    assert.equal(value?.ModifyIndex, 3);
    assert.equal(value?.CreateIndex, 3);
  });

  test('a missing key reports max(kvs, tombstones) table index, deletions included', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 2, 'a', '1');
    set(db, 5, 'b', '2');
    assert.equal(get(db, 'nope').index, 5);
    write(db, (txn) => kvsDelete(txn, 9, 'a'));
    assert.equal(get(db, 'a').index, 9);
    assert.equal(get(db, 'nope').index, 9);
  });

  test('a prefix list reports the max ModifyIndex under the prefix', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'foo', 'foo');
    set(db, 2, 'foo/bar', 'bar');
    set(db, 3, 'foo/bar/zip', 'zip');
    set(db, 4, 'foo/bar/zip/zorp', 'zorp');
    set(db, 5, 'foo/bar/baz', 'baz');
    const listed = read(db, (txn) => kvsList(txn, 'foo/bar/zip'));
    assert.equal(listed.index, 4);
    assert.deepEqual(
      listed.value.map((entry) => entry.Key),
      ['foo/bar/zip', 'foo/bar/zip/zorp'],
    );
    assert.equal(listIndex(db, ''), 5);
  });

  test('a delete under the prefix moves the list index to the tombstone, and an unrelated write does not', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'foo/bar/baz', 'baz');
    set(db, 2, 'foo/bar/zip', 'zip');
    write(db, (txn) => kvsDelete(txn, 6, 'foo/bar/baz'));
    assert.equal(listIndex(db, 'foo/bar/baz'), 6);
    set(db, 7, 'some/other/key', '');
    assert.equal(listIndex(db, 'foo/bar/baz'), 6);
    assert.equal(listIndex(db, 'foo/bar/'), 6);
  });

  test('after reaping, a prefix with nothing left reports the table index; with entries, their max', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'foo', 'foo');
    set(db, 2, 'foo/bar', 'bar');
    set(db, 5, 'foo/bar/baz', 'baz');
    write(db, (txn) => kvsDelete(txn, 6, 'foo/bar/baz'));
    set(db, 7, 'some/other/key', '');
    write(db, (txn) => reapTombstones(txn, 8, 6));
    assert.equal(listIndex(db, 'foo/bar/baz'), 7);
    assert.equal(listIndex(db, 'foo'), 2);
    assert.equal(listIndex(db, ''), 7);
  });

  test('keys with a separator roll up at the first separator after the prefix', () => {
    const db = new MemDb(STATE_SCHEMA);
    const keys = ['foo', 'foo/bar', 'foo/bar/baz', 'foo/bar/zip', 'foo/bar/zip/zam', 'foo/bar/zip/zorp', 'some/other/prefix'];
    keys.forEach((key, i) => set(db, i + 1, key, key));
    assert.deepEqual(read(db, (txn) => kvsKeys(txn, 'foo/bar/', '/')), { index: 6, value: ['foo/bar/baz', 'foo/bar/zip', 'foo/bar/zip/'] });
    assert.deepEqual(read(db, (txn) => kvsKeys(txn, 'foo', '')), { index: 6, value: keys.slice(0, 6) });
    assert.deepEqual(read(db, (txn) => kvsKeys(txn, '', '/')), { index: 7, value: ['foo', 'foo/', 'some/'] });
    assert.deepEqual(read(db, (txn) => kvsKeys(txn, 'foo/bar/zip', '/')).value, ['foo/bar/zip', 'foo/bar/zip/']);
    assert.deepEqual(read(db, (txn) => kvsKeys(txn, 'nothing/', '/')), { index: 7, value: [] });
  });

  test('a multi-character separator rolls up just past its first occurrence', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'a--b--c', '');
    set(db, 2, 'a--d', '');
    set(db, 3, 'ab', '');
    assert.deepEqual(read(db, (txn) => kvsKeys(txn, 'a', '--')).value, ['a--', 'ab']);
  });
});

// ---------------------------------------------------------------------------------------------
// Set and CAS

describe('KV set and CAS', () => {
  test('an update keeps CreateIndex and moves ModifyIndex', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'foo', 'bar');
    set(db, 2, 'foo', 'baz');
    const entry = get(db, 'foo').value;
    assert.equal(entry?.CreateIndex, 1);
    assert.equal(entry?.ModifyIndex, 2);
    assert.equal(text(entry?.Value ?? null), 'baz');
  });

  test('writing identical content changes neither ModifyIndex nor the table index', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'foo', 'bar', { Flags: 7n });
    const result = set(db, 2, 'foo', 'bar', { Flags: 7n });
    assert.equal(result.ModifyIndex, 1);
    assert.equal(get(db, 'foo').value?.ModifyIndex, 1);
    assert.equal(read(db, (txn) => tableIndex(txn, TABLES.kvs)), 1);
    set(db, 3, 'foo', 'bar', { Flags: 8n });
    assert.equal(get(db, 'foo').value?.ModifyIndex, 3);
  });

  test('an empty value equals no value (bytes.Equal), so rewriting it is not a change', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'foo', null);
    set(db, 2, 'foo', '');
    const entry = get(db, 'foo').value;
    assert.equal(entry?.ModifyIndex, 1);
    assert.equal(entry?.Value, null);
  });

  test('Flags are a uint64 kept exact', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'a', 'x', { Flags: 3304740253564472344n });
    set(db, 2, 'b', 'x', { Flags: 18446744073709551615n });
    assert.equal(get(db, 'a').value?.Flags, 3304740253564472344n);
    assert.equal(get(db, 'b').value?.Flags, 18446744073709551615n);
  });

  test('set ignores a session in the request and keeps the lock holder', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'foo', 'zoo', { Session: 'nope' });
    assert.equal(get(db, 'foo').value?.Session, '');
    registerNode(db, 2, 'node1', '127.0.0.1');
    createSession(db, 3, 's1');
    assert.equal(
      write(db, (txn) => kvsLock(txn, 4, { Key: 'foo', Value: bytes('locked'), Session: 's1' })),
      true,
    );
    set(db, 5, 'foo', 'stoleit');
    const entry = get(db, 'foo').value;
    assert.equal(entry?.Session, 's1');
    assert.equal(text(entry?.Value ?? null), 'stoleit');
    // Consul's kvsSetTxn stores the request's LockIndex, which the HTTP API always sends as 0.
    assert.equal(entry?.LockIndex, 0);
  });

  test('cas with index 0 creates only when the key is absent', () => {
    const db = new MemDb(STATE_SCHEMA);
    assert.equal(
      write(db, (txn) => kvsSetCas(txn, 2, { Key: 'foo', Value: bytes('foo'), ModifyIndex: 0 })),
      true,
    );
    assert.deepEqual([get(db, 'foo').value?.CreateIndex, get(db, 'foo').value?.ModifyIndex], [2, 2]);
    assert.equal(
      write(db, (txn) => kvsSetCas(txn, 3, { Key: 'foo', Value: bytes('bar'), ModifyIndex: 0 })),
      false,
    );
    assert.equal(text(get(db, 'foo').value?.Value ?? null), 'foo');
  });

  test('cas with index N writes only if ModifyIndex is N, and never creates', () => {
    const db = new MemDb(STATE_SCHEMA);
    assert.equal(
      write(db, (txn) => kvsSetCas(txn, 2, { Key: 'foo', Value: bytes('x'), ModifyIndex: 1 })),
      false,
    );
    assert.equal(read(db, (txn) => tableIndex(txn, TABLES.kvs)), 0);
    set(db, 3, 'foo', 'foo');
    assert.equal(
      write(db, (txn) => kvsSetCas(txn, 4, { Key: 'foo', Value: bytes('bar'), ModifyIndex: 2 })),
      false,
    );
    assert.equal(
      write(db, (txn) => kvsSetCas(txn, 5, { Key: 'foo', Value: bytes('bar'), ModifyIndex: 3 })),
      true,
    );
    assert.deepEqual([get(db, 'foo').value?.CreateIndex, get(db, 'foo').value?.ModifyIndex], [3, 5]);
  });

  test('an empty key is refused with Must provide key', () => {
    const db = new MemDb(STATE_SCHEMA);
    assertStateError(() => write(db, (txn) => kvsSet(txn, 1, { Key: '' })), 'ERR_MISSING_KEY', 'Must provide key');
  });

  test('kvsApply returns true for set, delete and delete-tree, the outcome otherwise', () => {
    const db = new MemDb(STATE_SCHEMA);
    assert.equal(
      write(db, (txn) => kvsApply(txn, 1, 'set', { Key: 'a' })),
      true,
    );
    assert.equal(
      write(db, (txn) => kvsApply(txn, 2, 'cas', { Key: 'a', ModifyIndex: 9 })),
      false,
    );
    assert.equal(
      write(db, (txn) => kvsApply(txn, 3, 'delete', { Key: 'zzz' })),
      true,
    );
    assert.equal(
      write(db, (txn) => kvsApply(txn, 4, 'delete-tree', { Key: '' })),
      true,
    );
    assertStateError(() => write(db, (txn) => kvsApply(txn, 5, 'bogus' as 'set', { Key: 'a' })), 'ERR_INVALID_KVS_OPERATION', "Invalid KVS operation 'bogus'");
  });
});

// ---------------------------------------------------------------------------------------------
// Deletes and tombstones

describe('KV deletes and tombstones', () => {
  test('delete leaves a tombstone at the delete index; deleting a missing key changes nothing', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'foo', 'foo');
    set(db, 2, 'foo/bar', 'bar');
    write(db, (txn) => kvsDelete(txn, 3, 'foo'));
    assert.equal(get(db, 'foo').value, undefined);
    assert.equal(get(db, 'foo/bar').value?.ModifyIndex, 2);
    assert.deepEqual(
      read(db, (txn) => [...txn.all<TombstoneRecord>(TABLES.tombstones)]),
      [{ Key: 'foo', Index: 3 }],
    );
    assert.equal(listIndex(db, 'foo'), 3);
    write(db, (txn) => kvsDelete(txn, 4, 'foo'));
    assert.equal(read(db, (txn) => tableIndex(txn, TABLES.kvs)), 3);
    assert.equal(read(db, (txn) => tableIndex(txn, TABLES.tombstones)), 3);
  });

  test('reaping removes tombstones with Index <= the reap index and leaves table indexes alone', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'a', '');
    set(db, 2, 'b', '');
    set(db, 3, 'c', '');
    write(db, (txn) => kvsDelete(txn, 4, 'a'));
    write(db, (txn) => kvsDelete(txn, 5, 'b'));
    write(db, (txn) => kvsDelete(txn, 6, 'c'));
    assert.equal(
      write(db, (txn) => reapTombstones(txn, 7, 5)),
      2,
    );
    assert.deepEqual(
      read(db, (txn) => [...txn.all<TombstoneRecord>(TABLES.tombstones)].map((stone) => stone.Key)),
      ['c'],
    );
    assert.equal(read(db, (txn) => tableIndex(txn, TABLES.tombstones)), 6);
    assert.equal(listIndex(db, 'a'), 6);
  });

  test('delete-cas deletes only at the matching index; a missing key counts as done', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'foo', 'foo');
    set(db, 2, 'bar', 'bar');
    set(db, 3, 'baz', 'baz');
    assert.equal(
      write(db, (txn) => kvsDeleteCas(txn, 4, 'bar', 1)),
      false,
    );
    assert.ok(get(db, 'bar').value);
    assert.equal(get(db, 'nope').index, 3);
    assert.equal(
      write(db, (txn) => kvsDeleteCas(txn, 4, 'bar', 2)),
      true,
    );
    assert.deepEqual(get(db, 'bar'), { index: 4, value: undefined });
    assert.equal(
      write(db, (txn) => kvsDeleteCas(txn, 6, 'bar', 2)),
      true,
    );
    assert.equal(read(db, (txn) => tableIndex(txn, TABLES.kvs)), 4);
  });

  test('delete-tree deletes the subtree and leaves one tombstone at the prefix', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'foo/bar', 'bar');
    set(db, 2, 'foo/bar/baz', 'baz');
    set(db, 3, 'foo/bar/zip', 'zip');
    set(db, 4, 'foo/zorp', 'zorp');
    write(db, (txn) => kvsDeleteTree(txn, 5, 'foo/nope'));
    assert.equal(read(db, (txn) => tableIndex(txn, TABLES.kvs)), 4);
    write(db, (txn) => kvsDeleteTree(txn, 6, 'foo/bar'));
    assert.deepEqual(
      read(db, (txn) => kvsList(txn, '').value.map((entry) => entry.Key)),
      ['foo/zorp'],
    );
    assert.deepEqual(
      read(db, (txn) => [...txn.all<TombstoneRecord>(TABLES.tombstones)]),
      [{ Key: 'foo/bar', Index: 6 }],
    );
    assert.equal(read(db, (txn) => tableIndex(txn, TABLES.kvs)), 6);
    assert.equal(listIndex(db, 'foo/'), 6);
  });

  test('delete-tree of the empty prefix deletes everything without a tombstone', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'a', '');
    set(db, 2, 'b/c', '');
    write(db, (txn) => kvsDeleteTree(txn, 3, ''));
    assert.equal(
      read(db, (txn) => txn.count(TABLES.kvs)),
      0,
    );
    assert.equal(
      read(db, (txn) => txn.count(TABLES.tombstones)),
      0,
    );
    assert.equal(get(db, 'a').index, 3);
  });
});

// ---------------------------------------------------------------------------------------------
// Locks

describe('KV locks', () => {
  function lockDb(): MemDb {
    const db = new MemDb(STATE_SCHEMA);
    registerNode(db, 1, 'node1', '127.0.0.1');
    createSession(db, 2, 's1');
    createSession(db, 3, 's2');
    return db;
  }
  const lock = (db: MemDb, index: number, key: string, session: string, value = 'v'): boolean => write(db, (txn) => kvsLock(txn, index, { Key: key, Value: bytes(value), Session: session }));
  const unlock = (db: MemDb, index: number, key: string, session: string, value = 'v'): boolean =>
    write(db, (txn) => kvsUnlock(txn, index, { Key: key, Value: bytes(value), Session: session }));

  test('a lock needs a session, and a live one', () => {
    const db = lockDb();
    assertStateError(() => write(db, (txn) => kvsLock(txn, 4, { Key: 'k' })), 'ERR_MISSING_SESSION', 'missing session');
    assertStateError(() => lock(db, 4, 'k', 'nope'), 'ERR_INVALID_SESSION', 'invalid session "nope"');
    assertStateError(() => write(db, (txn) => kvsUnlock(txn, 4, { Key: 'k' })), 'ERR_MISSING_SESSION', 'missing session');
  });

  test('acquiring a new key creates it with LockIndex 1', () => {
    const db = lockDb();
    assert.equal(lock(db, 4, 'k', 's1'), true);
    const entry = get(db, 'k').value;
    assert.deepEqual([entry?.LockIndex, entry?.Session, entry?.CreateIndex, entry?.ModifyIndex], [1, 's1', 4, 4]);
  });

  test('the holder re-acquires without incrementing LockIndex; identical content keeps ModifyIndex', () => {
    const db = lockDb();
    lock(db, 4, 'k', 's1', 'a');
    assert.equal(lock(db, 5, 'k', 's1', 'a'), true);
    assert.deepEqual([get(db, 'k').value?.LockIndex, get(db, 'k').value?.ModifyIndex], [1, 4]);
    assert.equal(lock(db, 6, 'k', 's1', 'b'), true);
    assert.deepEqual([get(db, 'k').value?.LockIndex, get(db, 'k').value?.ModifyIndex], [1, 6]);
  });

  test('another session cannot acquire a held lock', () => {
    const db = lockDb();
    lock(db, 4, 'k', 's1');
    assert.equal(lock(db, 5, 'k', 's2', 'x'), false);
    assert.deepEqual([get(db, 'k').value?.Session, get(db, 'k').value?.ModifyIndex], ['s1', 4]);
  });

  test('release clears Session, keeps LockIndex, writes the value; only the holder may release', () => {
    const db = lockDb();
    lock(db, 4, 'k', 's1', 'held');
    assert.equal(unlock(db, 5, 'k', 's2'), false);
    assert.equal(unlock(db, 5, 'missing', 's1'), false);
    assert.equal(unlock(db, 6, 'k', 's1', 'released'), true);
    const entry = get(db, 'k').value;
    assert.deepEqual([entry?.Session, entry?.LockIndex, entry?.ModifyIndex, text(entry?.Value ?? null)], ['', 1, 6, 'released']);
  });

  test('a new acquisition after release increments LockIndex', () => {
    const db = lockDb();
    lock(db, 4, 'k', 's1');
    unlock(db, 5, 'k', 's1');
    assert.equal(lock(db, 6, 'k', 's2'), true);
    assert.deepEqual([get(db, 'k').value?.LockIndex, get(db, 'k').value?.Session, get(db, 'k').value?.CreateIndex], [2, 's2', 4]);
  });

  test('acquiring an existing unlocked key bumps its LockIndex from what it has', () => {
    const db = lockDb();
    set(db, 4, 'k', 'plain');
    assert.equal(lock(db, 5, 'k', 's1'), true);
    assert.deepEqual([get(db, 'k').value?.LockIndex, get(db, 'k').value?.CreateIndex], [1, 4]);
  });

  test('lock-delay refuses an acquisition before Raft, and only for locks', () => {
    let now = 1_000;
    const lockDelay = new LockDelay(() => now);
    lockDelay.setExpiration('k', 15e9);
    assert.equal(kvsPreApply('lock', 'k', lockDelay), false);
    assert.equal(kvsPreApply('lock', 'other', lockDelay), true);
    assert.equal(kvsPreApply('set', 'k', lockDelay), true);
    now += 15_000;
    assert.equal(kvsPreApply('lock', 'k', lockDelay), true);
    assertStateError(() => kvsPreApply('set', '', lockDelay), 'ERR_MISSING_KEY', 'Must provide key');
    assert.equal(kvsPreApply('delete-tree', '', lockDelay), true);
  });

  test('destroying the holder with release behaviour frees the key for another session', () => {
    const db = lockDb();
    const lockDelay = new LockDelay(() => 0);
    lock(db, 4, 'k', 's1');
    write(db, (txn) => sessionDestroy(txn, 5, 's1', lockDelay));
    assert.deepEqual([get(db, 'k').value?.Session, get(db, 'k').value?.LockIndex, get(db, 'k').value?.ModifyIndex], ['', 1, 5]);
    assert.equal(kvsPreApply('lock', 'k', lockDelay), false);
    assert.equal(lock(db, 6, 'k', 's2'), true);
    assert.equal(get(db, 'k').value?.LockIndex, 2);
  });
});

// ---------------------------------------------------------------------------------------------
// Transactions

describe('KV transactions', () => {
  test('a successful txn returns results without values except for get and get-tree', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'tree/a', 'A');
    const response = runTxn(db, 2, [
      op('set', 'x', { Value: bytes('1'), Flags: 5n }),
      op('get', 'x'),
      op('delete', 'nothing'),
      op('check-not-exists', 'y'),
      op('get-tree', 'tree/'),
      op('cas', 'x', { Value: bytes('2'), ModifyIndex: 2 }),
    ]);
    assert.equal(response.Errors, null);
    const results = response.Results ?? [];
    assert.equal(results.length, 4);
    assert.deepEqual(results[0]?.KV, { LockIndex: 0, Key: 'x', Flags: 5n, Value: null, Session: '', CreateIndex: 2, ModifyIndex: 2 });
    assert.equal(text(results[1]?.KV.Value ?? null), '1');
    assert.equal(text(results[2]?.KV.Value ?? null), 'A');
    // The cas saw the set made earlier in the same txn and wrote identical indexes (same Raft index).
    assert.deepEqual([results[3]?.KV.Key, results[3]?.KV.Value, results[3]?.KV.ModifyIndex], ['x', null, 2]);
    assert.equal(text(get(db, 'x').value?.Value ?? null), '2');
  });

  test('a failed op rolls back the whole txn and every failure is reported with its OpIndex', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 4, 'k', 'v');
    const response = runTxn(db, 5, [op('set', 'new', { Value: bytes('n') }), op('cas', 'k', { Value: bytes('w'), ModifyIndex: 3 }), op('delete', 'k'), op('get', 'nope')]);
    assert.equal(response.Results, null);
    assert.deepEqual(response.Errors, [
      { OpIndex: 1, What: 'failed to set key "k", index is stale' },
      { OpIndex: 3, What: 'key "nope" doesn\'t exist' },
    ]);
    assert.equal(get(db, 'new').value, undefined);
    assert.equal(text(get(db, 'k').value?.Value ?? null), 'v');
    assert.equal(read(db, (txn) => tableIndex(txn, TABLES.kvs)), 4);
    assert.equal(read(db, (txn) => txn.count(TABLES.tombstones)), 0);
  });

  test("txn error texts are Consul's", () => {
    const db = new MemDb(STATE_SCHEMA);
    registerNode(db, 1, 'node1', '127.0.0.1');
    createSession(db, 2, 's1');
    createSession(db, 3, 's2');
    write(db, (txn) => kvsLock(txn, 4, { Key: 'held', Session: 's1' }));
    set(db, 5, 'plain', 'p');
    const cases: [TxnKvOp, string][] = [
      [op('delete-cas', 'plain', { ModifyIndex: 4 }), 'failed to delete key "plain", index is stale'],
      [op('lock', 'held', { Session: 's2' }), 'failed to lock key "held", lock is already held'],
      [op('lock', 'held', { Session: 'gone' }), 'invalid session "gone"'],
      [op('lock', 'held'), 'missing session'],
      [op('unlock', 'held', { Session: 's2' }), 'failed to unlock key "held", lock isn\'t held, or is held by another session'],
      [op('check-index', 'plain', { ModifyIndex: 4 }), 'failed index check for key "plain", current modify index 5 != 4'],
      [op('check-index', 'nope', { ModifyIndex: 4 }), 'failed to check index, key "nope" doesn\'t exist'],
      [op('check-session', 'held', { Session: 's2' }), 'failed session check for key "held", current session "s1" != "s2"'],
      [op('check-session', 'nope', { Session: 's2' }), 'failed to check session, key "nope" doesn\'t exist'],
      [op('check-not-exists', 'plain'), 'key "plain" exists'],
      [op('get', 'nope'), 'key "nope" doesn\'t exist'],
      [op('frob' as 'get', 'plain'), 'unknown KV verb "frob"'],
    ];
    for (const [failing, what] of cases) {
      assert.deepEqual(runTxn(db, 6, [op('get', 'plain'), failing]).Errors, [{ OpIndex: 1, What: what }], what);
    }
  });

  test('check verbs that pass return the entry without its value; get-or-empty echoes a missing key', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 5, 'plain', 'p', { Flags: 1n });
    const response = read(db, (txn) => kvsTxnRead(txn, [op('check-index', 'plain', { ModifyIndex: 5 }), op('check-session', 'plain', { Session: '' }), op('get-or-empty', 'missing', { Flags: 3n, ModifyIndex: 9 })]));
    assert.equal(response.Errors, null);
    const results = response.Results ?? [];
    assert.deepEqual(
      results.map((result) => [result.KV.Key, result.KV.Value, result.KV.ModifyIndex]),
      [
        ['plain', null, 5],
        ['plain', null, 5],
        ['missing', null, 9],
      ],
    );
    assert.equal(results[2]?.KV.Flags, 3n);
  });

  test('lock and unlock results carry the lock state', () => {
    const db = new MemDb(STATE_SCHEMA);
    registerNode(db, 1, 'node1', '127.0.0.1');
    createSession(db, 2, 's1');
    const locked = runTxn(db, 3, [op('lock', 'k', { Session: 's1', Value: bytes('x') })]);
    assert.deepEqual(locked.Results?.[0]?.KV, { LockIndex: 1, Key: 'k', Flags: 0n, Value: null, Session: 's1', CreateIndex: 3, ModifyIndex: 3 });
    const unlocked = runTxn(db, 4, [op('unlock', 'k', { Session: 's1' })]);
    assert.deepEqual(unlocked.Results?.[0]?.KV, { LockIndex: 1, Key: 'k', Flags: 0n, Value: null, Session: '', CreateIndex: 3, ModifyIndex: 4 });
  });

  test('the pre-check refuses empty keys and locks in lock-delay, reporting every such op', () => {
    const lockDelay = new LockDelay(() => 0);
    lockDelay.setExpiration('locked', 5e9);
    const errors = kvsTxnPreCheck([op('set', ''), op('delete-tree', ''), op('lock', 'locked', { Session: 's' }), op('lock', 'free', { Session: 's' })], lockDelay);
    assert.deepEqual(errors, [
      { OpIndex: 0, What: 'Must provide key' },
      { OpIndex: 2, What: 'failed to lock key "locked" due to lock delay' },
    ]);
  });

  test('Go %q quoting of keys in error texts', () => {
    assert.equal(goQuote('plain/key'), '"plain/key"');
    assert.equal(goQuote('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(goQuote('line\nbreak\ttab\x07'), '"line\\nbreak\\ttab\\a"');
    assert.equal(goQuote('\x00\x1f\x7f'), '"\\x00\\x1f\\x7f"');
    assert.equal(goQuote('héllo 日本 😀'), '"héllo 日本 😀"');
    assert.equal(goQuote('\u00a0\u2028'), '"\\u00a0\\u2028"');
  });
});

// ---------------------------------------------------------------------------------------------
// Watch precision

describe('KV watch precision', () => {
  function watch(db: MemDb, query: (txn: ReadTxn) => unknown): { fired: boolean; cancel: () => void } {
    const watchSet = new WatchSet();
    read(db, query, watchSet);
    const state = { fired: false, cancel: () => {} };
    state.cancel = db.watch(watchSet, () => {
      state.fired = true;
    });
    return state;
  }

  test('a single-key get wakes on that key and not on another key', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'a', '1');
    set(db, 2, 'b', '1');
    const watcher = watch(db, (txn) => kvsGet(txn, 'a'));
    set(db, 3, 'b', '2');
    set(db, 4, 'ab', '1');
    write(db, (txn) => kvsDelete(txn, 5, 'b'));
    assert.equal(watcher.fired, false);
    set(db, 6, 'a', '2');
    assert.equal(watcher.fired, true);
  });

  test('a single-key get wakes when that key is deleted', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'a', '1');
    const watcher = watch(db, (txn) => kvsGet(txn, 'a'));
    write(db, (txn) => kvsDelete(txn, 2, 'a'));
    assert.equal(watcher.fired, true);
    assert.equal(get(db, 'a').index, 2);
  });

  test('a prefix list wakes on a delete under the prefix and not on a key outside it', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'p/1', '1');
    set(db, 2, 'p/2', '1');
    set(db, 3, 'q', '1');
    const watcher = watch(db, (txn) => kvsList(txn, 'p/'));
    set(db, 4, 'q', '2');
    set(db, 5, 'p', 'outside: no separator');
    set(db, 6, 'px/1', 'outside');
    assert.equal(watcher.fired, false);
    write(db, (txn) => kvsDelete(txn, 7, 'p/1'));
    assert.equal(watcher.fired, true);
    assert.equal(listIndex(db, 'p/'), 7);
  });

  test('a prefix list wakes on a delete-tree above the prefix', () => {
    const db = new MemDb(STATE_SCHEMA);
    set(db, 1, 'p/a/1', '1');
    const watcher = watch(db, (txn) => kvsList(txn, 'p/a/'));
    write(db, (txn) => kvsDeleteTree(txn, 2, 'p/'));
    assert.equal(watcher.fired, true);
  });
});

// ---------------------------------------------------------------------------------------------
// Tombstone GC bookkeeping

describe('tombstone GC', () => {
  test('hints expire after the TTL, binned by granularity, and yield the highest index', () => {
    let now = 0;
    const gc = new TombstoneGc(() => now, 60_000, 10_000);
    gc.hint(3);
    assert.equal(gc.hasPending(), false, 'disabled until leadership');
    gc.setEnabled(true);
    now = 1_000;
    gc.hint(3);
    now = 2_000;
    gc.hint(7);
    assert.equal(gc.nextExpiryMs(), 70_000);
    now = 69_999;
    assert.equal(gc.takeExpired(), 0);
    now = 70_000;
    assert.equal(gc.takeExpired(), 7);
    assert.equal(gc.hasPending(), false);
  });

  test('bins stay bounded when nobody collects them, and nothing is reaped early', () => {
    let now = 0;
    const gc = new TombstoneGc(() => now, 60_000, 10_000);
    gc.setEnabled(true);
    for (let i = 1; i <= 100; i++) {
      now = i * 10_000;
      gc.hint(i);
    }
    // Index i was hinted at i * 10s and expires at i * 10s + 70s (TTL, rounded up to a bin).
    now = 79_999;
    assert.equal(gc.takeExpired(), 0);
    now = 80_000;
    assert.equal(gc.takeExpired(), 1);
    // Only TTL / granularity + 2 = 8 bins are kept: the newest hints were folded into the last
    // bin, so index 8 (due at 150s) waits for it: later than due, never earlier.
    now = 150_000;
    assert.equal(gc.takeExpired(), 7);
    now = 1_069_999;
    assert.equal(gc.takeExpired(), 0);
    now = 1_070_000;
    assert.equal(gc.takeExpired(), 100);
    gc.hint(1);
    gc.setEnabled(false);
    assert.equal(gc.hasPending(), false);
  });
});

// ---------------------------------------------------------------------------------------------
// Model-based randomized test

interface ModelEntry {
  readonly Value: string | null;
  readonly Flags: bigint;
  readonly Session: string;
  readonly LockIndex: number;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** A deliberately naive KV store: maps, linear scans, Consul's documented rules. */
class KvModel {
  readonly entries = new Map<string, ModelEntry>();
  readonly tombstones = new Map<string, number>();
  readonly sessions = new Map<string, { behavior: 'release' | 'delete'; lockDelayNanos: number }>();
  readonly delayedKeys = new Set<string>();
  kvsIndex = 0;
  tombstonesIndex = 0;

  write(index: number, key: string, next: Omit<ModelEntry, 'CreateIndex' | 'ModifyIndex'>): void {
    const existing = this.entries.get(key);
    const isSame =
      existing !== undefined &&
      existing.LockIndex === next.LockIndex &&
      existing.Flags === next.Flags &&
      existing.Session === next.Session &&
      (existing.Value ?? '') === (next.Value ?? '');
    if (isSame) return;
    this.entries.set(key, { ...next, CreateIndex: existing?.CreateIndex ?? index, ModifyIndex: index });
    this.kvsIndex = index;
  }

  set(index: number, key: string, value: string | null, flags: bigint): void {
    this.write(index, key, { Value: value, Flags: flags, Session: this.entries.get(key)?.Session ?? '', LockIndex: 0 });
  }

  cas(index: number, key: string, value: string | null, flags: bigint, casIndex: number): boolean {
    const existing = this.entries.get(key);
    if (casIndex === 0 ? existing !== undefined : existing?.ModifyIndex !== casIndex) return false;
    this.set(index, key, value, flags);
    return true;
  }

  delete(index: number, key: string): void {
    if (!this.entries.delete(key)) return;
    this.tombstones.set(key, index);
    this.tombstonesIndex = index;
    this.kvsIndex = index;
  }

  deleteCas(index: number, key: string, casIndex: number): boolean {
    const existing = this.entries.get(key);
    if (existing === undefined) return true;
    if (existing.ModifyIndex !== casIndex) return false;
    this.delete(index, key);
    return true;
  }

  deleteTree(index: number, prefix: string): void {
    const doomed = [...this.entries.keys()].filter((key) => key.startsWith(prefix));
    if (doomed.length === 0) return;
    for (const key of doomed) this.entries.delete(key);
    if (prefix !== '') {
      this.tombstones.set(prefix, index);
      this.tombstonesIndex = index;
    }
    this.kvsIndex = index;
  }

  /** Returns undefined when the session is unknown (the store throws). */
  lock(index: number, key: string, value: string | null, flags: bigint, session: string): boolean | undefined {
    if (!this.sessions.has(session)) return undefined;
    const existing = this.entries.get(key);
    if (existing && existing.Session !== '' && existing.Session !== session) return false;
    const lockIndex = existing === undefined ? 1 : existing.Session === session ? existing.LockIndex : existing.LockIndex + 1;
    this.write(index, key, { Value: value, Flags: flags, Session: session, LockIndex: lockIndex });
    return true;
  }

  unlock(index: number, key: string, value: string | null, flags: bigint, session: string): boolean {
    const existing = this.entries.get(key);
    if (!existing || existing.Session !== session) return false;
    this.write(index, key, { Value: value, Flags: flags, Session: '', LockIndex: existing.LockIndex });
    return true;
  }

  destroySession(index: number, session: string): void {
    const info = this.sessions.get(session);
    if (!info) return;
    this.sessions.delete(session);
    for (const [key, entry] of [...this.entries]) {
      if (entry.Session !== session) continue;
      if (info.behavior === 'delete') this.delete(index, key);
      else this.write(index, key, { ...entry, Session: '' });
      if (info.lockDelayNanos > 0) this.delayedKeys.add(key);
    }
  }

  reap(reapIndex: number): void {
    for (const [key, index] of [...this.tombstones]) if (index <= reapIndex) this.tombstones.delete(key);
  }

  get(key: string): { index: number; entry: ModelEntry | undefined } {
    const entry = this.entries.get(key);
    return { index: entry ? entry.ModifyIndex : Math.max(1, this.kvsIndex, this.tombstonesIndex), entry };
  }

  list(prefix: string): { index: number; keys: string[] } {
    const keys = [...this.entries.keys()].filter((key) => key.startsWith(prefix)).sort(compareUtf8);
    let index = 0;
    if (prefix === '') index = Math.max(this.kvsIndex, this.tombstonesIndex);
    for (const key of keys) if (prefix !== '') index = Math.max(index, this.entries.get(key)?.ModifyIndex ?? 0);
    for (const [key, stoneIndex] of this.tombstones) if (prefix !== '' && key.startsWith(prefix)) index = Math.max(index, stoneIndex);
    if (index === 0) index = Math.max(this.kvsIndex, this.tombstonesIndex);
    return { index: Math.max(1, index), keys };
  }

  keys(prefix: string, separator: string): { index: number; keys: string[] } {
    const { index, keys } = this.list(prefix);
    if (separator === '') return { index, keys };
    const out: string[] = [];
    for (const key of keys) {
      const rest = key.slice(prefix.length);
      const at = rest.indexOf(separator);
      const shown = at < 0 ? key : prefix + rest.slice(0, at + separator.length);
      if (!out.includes(shown)) out.push(shown);
    }
    return { index, keys: out };
  }
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

const MODEL_SEEDS = 50;
const MODEL_OPS_PER_SEED = 400;
const SEGMENTS = ['a', 'b', 'c'];
const VALUES: (string | null)[] = [null, '', 'x', 'y', 'longer value'];

/** One seed's run: the real store, the model, and the shared random stream. */
interface ModelRun {
  readonly seed: number;
  readonly db: MemDb;
  readonly model: KvModel;
  readonly lockDelay: LockDelay;
  readonly random: () => number;
  index: number;
  sessionCounter: number;
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

function randomKey(random: () => number): string {
  const depth = 1 + Math.floor(random() * 3);
  const key = Array.from({ length: depth }, () => pick(random, SEGMENTS)).join('/');
  return random() < 0.1 ? `${key}/` : key;
}

function randomPrefix(random: () => number): string {
  if (random() < 0.15) return '';
  const key = randomKey(random);
  return key.slice(0, 1 + Math.floor(random() * key.length));
}

function runModelSeed(seed: number): void {
  const run: ModelRun = { seed, db: new MemDb(STATE_SCHEMA), model: new KvModel(), lockDelay: new LockDelay(() => 0), random: mulberry32(seed), index: 1, sessionCounter: 0 };
  registerNode(run.db, run.index, 'node1', '127.0.0.1');
  for (let step = 0; step < MODEL_OPS_PER_SEED; step++) {
    run.index += 1 + Math.floor(run.random() * 2);
    const what = applyRandomOp(run, step);
    checkAgainstModel(run, `seed ${seed} step ${step} after ${what}`);
  }
  // Final full comparison, tombstones included.
  assert.deepEqual(
    read(run.db, (txn) => kvsList(txn, '').value.map((entry) => [entry.Key, toModel(entry)])),
    [...run.model.entries].sort(([a], [b]) => compareUtf8(a, b)),
  );
  assert.deepEqual(
    read(run.db, (txn) => [...txn.all<TombstoneRecord>(TABLES.tombstones)].map((stone) => [stone.Key, stone.Index])),
    [...run.model.tombstones].sort(([a], [b]) => compareUtf8(a, b)),
  );
}

/** Applies one random operation to the store (its own write txn) and to the model; returns what it did. */
function applyRandomOp(run: ModelRun, step: number): string {
  const { db, model, random, index } = run;
  const key = randomKey(random);
  const value = pick(random, VALUES);
  const flags = random() < 0.8 ? 0n : BigInt(Math.floor(random() * 3)) << 62n;
  const entry: KvDirEntInput = { Key: key, Value: value === null ? null : bytes(value), Flags: flags };
  const existingIndex = model.entries.get(key)?.ModifyIndex ?? 0;
  const casIndex = pick(random, [0, existingIndex, existingIndex, index - 1]);
  const sessionIds = [...model.sessions.keys()];
  const session = random() < 0.9 && sessionIds.length > 0 ? pick(random, sessionIds) : `gone-${Math.floor(random() * 3)}`;
  const context = (what: string): string => `seed ${run.seed} step ${step}: ${what}`;
  const roll = random();
  if (roll < 0.25) {
    write(db, (txn) => kvsSet(txn, index, entry));
    model.set(index, key, value, flags);
    return `set ${key}`;
  }
  if (roll < 0.37) {
    const ok = write(db, (txn) => kvsSetCas(txn, index, { ...entry, ModifyIndex: casIndex }));
    assert.equal(ok, model.cas(index, key, value, flags, casIndex), context(`cas ${key}@${casIndex}`));
    return `cas ${key}@${casIndex}`;
  }
  if (roll < 0.47) {
    write(db, (txn) => kvsDelete(txn, index, key));
    model.delete(index, key);
    return `delete ${key}`;
  }
  if (roll < 0.53) {
    const ok = write(db, (txn) => kvsDeleteCas(txn, index, key, casIndex));
    assert.equal(ok, model.deleteCas(index, key, casIndex), context(`delete-cas ${key}@${casIndex}`));
    return `delete-cas ${key}@${casIndex}`;
  }
  if (roll < 0.57) {
    const prefix = randomPrefix(random);
    write(db, (txn) => kvsDeleteTree(txn, index, prefix));
    model.deleteTree(index, prefix);
    return `delete-tree ${prefix}`;
  }
  if (roll < 0.75) {
    const expected = model.lock(index, key, value, flags, session);
    const attempt = (): boolean => write(db, (txn) => kvsLock(txn, index, { ...entry, Session: session }));
    if (expected === undefined) assert.throws(attempt, /invalid session/, context(`lock ${key} by ${session}`));
    else assert.equal(attempt(), expected, context(`lock ${key} by ${session}`));
    return `lock ${key} by ${session}`;
  }
  if (roll < 0.87) {
    const ok = write(db, (txn) => kvsUnlock(txn, index, { ...entry, Session: session }));
    assert.equal(ok, model.unlock(index, key, value, flags, session), context(`unlock ${key} by ${session}`));
    return `unlock ${key} by ${session}`;
  }
  return applyRandomSessionOp(run, roll, session);
}

function applyRandomSessionOp(run: ModelRun, roll: number, session: string): string {
  const { db, model, random, index } = run;
  if (roll < 0.93) {
    const id = `s${++run.sessionCounter}`;
    const behavior = random() < 0.5 ? 'release' : 'delete';
    const lockDelayNanos = random() < 0.5 ? 0 : 15e9;
    createSession(db, index, id, { behavior, lockDelayNanos });
    model.sessions.set(id, { behavior, lockDelayNanos });
    return `create session ${id} ${behavior}`;
  }
  if (roll < 0.98) {
    write(db, (txn) => sessionDestroy(txn, index, session, run.lockDelay));
    model.destroySession(index, session);
    return `destroy session ${session}`;
  }
  const reapIndex = Math.floor(random() * index);
  write(db, (txn) => reapTombstones(txn, index, reapIndex));
  model.reap(reapIndex);
  return `reap <= ${reapIndex}`;
}

/** Compares random gets (with lock-delay), lists and keys of the store against the model. */
function checkAgainstModel(run: ModelRun, context: string): void {
  const { db, model, random } = run;
  const keys = [randomKey(random), randomKey(random), randomKey(random), ...[...model.entries.keys()].slice(0, 1)];
  for (const key of keys) {
    const actual = get(db, key);
    const expected = model.get(key);
    assert.equal(actual.index, expected.index, `${context}: get ${key} index`);
    assert.deepEqual(toModel(actual.value), expected.entry, `${context}: get ${key}`);
    assert.equal(run.lockDelay.isLocked(key), model.delayedKeys.has(key), `${context}: lock-delay of ${key}`);
  }
  for (const prefix of [randomPrefix(random), randomPrefix(random)]) {
    const actual = read(db, (txn) => kvsList(txn, prefix));
    const expected = model.list(prefix);
    assert.equal(actual.index, expected.index, `${context}: list ${prefix} index`);
    assert.deepEqual(
      actual.value.map((entry) => entry.Key),
      expected.keys,
      `${context}: list ${prefix}`,
    );
    for (const entry of actual.value) assert.deepEqual(toModel(entry), model.entries.get(entry.Key), `${context}: list entry ${entry.Key}`);
  }
  const prefix = randomPrefix(random);
  const separator = random() < 0.7 ? '/' : '';
  const expected = model.keys(prefix, separator);
  assert.deepEqual(read(db, (txn) => kvsKeys(txn, prefix, separator)), { index: expected.index, value: expected.keys }, `${context}: keys ${prefix} ${separator}`);
}

function toModel(entry: KvRecord | undefined): ModelEntry | undefined {
  if (!entry) return undefined;
  return { Value: text(entry.Value), Flags: entry.Flags, Session: entry.Session, LockIndex: entry.LockIndex, CreateIndex: entry.CreateIndex, ModifyIndex: entry.ModifyIndex };
}

describe('KV store against a naive model', () => {
  test(`random set/cas/delete/delete-cas/delete-tree/lock/unlock/session ops match the model (${MODEL_SEEDS} seeds x ${MODEL_OPS_PER_SEED} ops)`, () => {
    const replay = process.env['KVS_SEED'];
    const seeds = replay === undefined ? Array.from({ length: MODEL_SEEDS }, (_, i) => i + 1) : [Number(replay)];
    for (const seed of seeds) {
      try {
        runModelSeed(seed);
      } catch (error) {
        console.error(`SEED=${seed}  replay: KVS_SEED=${seed} node --import tsx --test test/kvs.test.ts`);
        throw error;
      }
    }
  });
});
