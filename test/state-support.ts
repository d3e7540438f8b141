// Shared helpers for the state-store tests (catalog, KV, sessions): one write transaction that
// commits or aborts, reads, the rows those tests insert by hand, and the StateError check.

import assert from 'node:assert/strict';
import type { MemDb, ReadTxn, WatchSet, WriteTxn } from '../lib/memdb.js';
import type { Fsm } from '../lib/fsm.js';
import { bumpTableIndex, STATE_SCHEMA, StateError, TABLES, type CheckRecord, type NodeRecord } from '../lib/schema.js';

/** Applies `apply` in one write transaction and commits it; aborts and rethrows if it throws. */
export function write<T>(db: MemDb, apply: (txn: WriteTxn) => T): T {
  const txn = db.writeTxn();
  try {
    const result = apply(txn);
    txn.commit();
    return result;
  } catch (error) {
    txn.abort();
    throw error;
  }
}

/** Runs `query` in a fresh read transaction, watched by `watchSet` if given. */
export function read<T>(db: MemDb, query: (txn: ReadTxn) => T, watchSet?: WatchSet): T {
  return query(db.readTxn(watchSet));
}

/** Inserts a bare node row at Raft index `index` and bumps the nodes table index. */
export function registerNode(db: MemDb, index: number, node: string, address = '10.0.0.1'): void {
  write(db, (txn) => {
    txn.insert<NodeRecord>(TABLES.nodes, { ID: '', Node: node, Address: address, Datacenter: 'dc1', TaggedAddresses: {}, Meta: {}, CreateIndex: index, ModifyIndex: index });
    bumpTableIndex(txn, TABLES.nodes, index);
  });
}

/** The fields of a check row that differ between checks; the rest are what a plain registration stores. */
export type CheckFields = Pick<CheckRecord, 'Node' | 'CheckID' | 'Name' | 'Status' | 'ServiceID' | 'ServiceName' | 'ServiceTags'> & { readonly Output?: string };

/** A check row created at Raft index `index`: no notes, no definition, Output '' unless given. */
export function checkRecord(index: number, fields: CheckFields): CheckRecord {
  return {
    Node: fields.Node,
    CheckID: fields.CheckID,
    Name: fields.Name,
    Status: fields.Status,
    Notes: '',
    Output: fields.Output ?? '',
    ServiceID: fields.ServiceID,
    ServiceName: fields.ServiceName,
    ServiceTags: fields.ServiceTags,
    Type: '',
    Interval: '',
    Timeout: '',
    ExposedPort: 0,
    Definition: {},
    CreateIndex: index,
    ModifyIndex: index,
  };
}

/** Asserts that `run` throws a StateError with exactly this code and message. */
export function assertStateError(run: () => unknown, code: string, message: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof StateError, `expected StateError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.equal(error.message, message);
    return true;
  });
}

/** Every record of every table, KV values as hex, for comparing two FSMs' states. */
export function dumpState(fsm: Fsm): Record<string, unknown[]> {
  const txn = fsm.state.db.readTxn();
  const result: Record<string, unknown[]> = {};
  for (const table of STATE_SCHEMA.tables) {
    result[table.name] = [...txn.all<Record<string, unknown>>(table.name)].map((record) =>
      record['Value'] instanceof Uint8Array ? { ...record, Value: Buffer.from(record['Value']).toString('hex') } : record,
    );
  }
  return result;
}
