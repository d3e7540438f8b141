// The state store: Consul's cluster state in memdb, read by queries and changed only by the FSM.
//
// This is the seam between the state logic (lib/catalog.ts, lib/kvs.ts, lib/sessions.ts, which
// are functions over a memdb transaction) and its users: the FSM writes through write(), at the
// Raft index it applies; HTTP reads through read(), optionally with a WatchSet for blocking
// queries, and gets back the index to report as X-Consul-Index.
//
// The lock-delay table lives here too: it is server-local soft state (Consul keeps it outside
// memdb, not in snapshots), driven by an injected clock.
//
// Reference: Consul agent/consul/state/state_store.go.

import { MemDb, WatchSet, type ReadTxn, type WriteTxn } from './memdb.js';
import { STATE_SCHEMA, type QueryResult } from './schema.js';
import { LockDelay } from './sessions.js';

export interface StateStoreOptions {
  /** Milliseconds since the epoch; drives lock-delay expiry. */
  readonly nowMs: () => number;
}

export class StateStore {
  readonly db = new MemDb(STATE_SCHEMA);
  readonly lockDelay: LockDelay;

  constructor(options: StateStoreOptions) {
    this.lockDelay = new LockDelay(options.nowMs);
  }

  /**
   * Runs a query on a consistent snapshot. With a watch set, the query's reads are recorded
   * for MemDb.watch. The index is never below 1, as Consul never reports X-Consul-Index 0.
   */
  read<T>(query: (txn: ReadTxn) => QueryResult<T>, watchSet?: WatchSet): QueryResult<T> {
    const result = query(this.db.readTxn(watchSet));
    return result.index >= 1 ? result : { index: 1, value: result.value };
  }

  /**
   * Runs `change` in one write transaction and commits when it returns, unless `shouldCommit`
   * says otherwise (a KV transaction that reports errors is rolled back); a throw aborts.
   * Either way nothing is half-applied.
   */
  write<T>(change: (txn: WriteTxn) => T, shouldCommit: (result: T) => boolean = () => true): T {
    const txn = this.db.writeTxn();
    try {
      const result = change(txn);
      if (shouldCommit(result)) txn.commit();
      return result;
    } finally {
      txn.abort();
    }
  }
}
