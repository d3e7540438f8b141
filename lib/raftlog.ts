// The Raft log as the consensus core sees it: the durable log, plus entries not yet durable.
//
// The core never writes to disk. Entries it creates (as leader) or accepts (as follower) sit in
// an in-memory "unstable" suffix until the shell reports them durable (Raft.advance); reads go
// through one view that puts the unstable suffix over the durable log read from a RaftStorage.
// The shape is etcd-io/raft's raftLog + unstable (log.go, log_unstable.go).
//
// What this does not do: persist anything, decide what to append (raft.ts does), or know about
// terms of office, votes or peers.
//
// The view, from low to high indexes:
//   [snapshot]   index/term of the newest snapshot the log may be compacted behind
//   [durable]    storage entries [firstIndex, offset - 1]; anything the storage holds at or above
//                `offset` is stale (being replaced) and is never read
//   [unstable]   entries [offset, lastIndex], waiting to be made durable
// A snapshot received from a leader (`restore`) replaces the whole view until the shell has
// installed it: the durable log is then discarded by the shell.
//
// Invariants:
// - Indexes are contiguous from firstIndex() to lastIndex().
// - commitIndex <= lastIndex(); appliedIndex <= commitIndex; neither decreases.
// - Entries at or below commitIndex are never replaced (Raft section 5.3, Log Matching).
//
// References: Raft paper (Ongaro & Ousterhout 2014) sections 5.3 and 7; etcd-io/raft log.go.

import assert from 'node:assert/strict';
import type { LogEntry, LogStore } from './logstore.js';
import type { SnapshotMeta } from './snapshot.js';

// ---------------------------------------------------------------------------------------------
// Types

/**
 * The durable log as the core reads it, synchronously. Implementations: `logStoreStorage` (a
 * LogStore) and the simulator's memory log. The contents change only through the shell acting on
 * a Ready (append, truncate, compact, discard on snapshot install).
 */
export interface RaftStorage {
  /** The first index held, or 0 when empty. */
  firstIndex(): number;
  /** The last index held, or 0 when empty. */
  lastIndex(): number;
  /** The term of the entry at `index`, or undefined when not held. */
  term(index: number): number | undefined;
  /**
   * Entries [lo, hi), all held (the caller checks the bounds). Stops early before the total size
   * (`entryBytes`) would exceed maxBytes, but always returns at least one entry.
   */
  entries(lo: number, hi: number, maxBytes: number): LogEntry[];
}

/** A position in the log. */
export interface LogPosition {
  readonly index: number;
  readonly term: number;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Bytes an entry is charged beyond its data when sizing messages and batches (index, term, type, framing). */
export const RAFT_ENTRY_OVERHEAD_BYTES = 32;

// ---------------------------------------------------------------------------------------------
// API

/** The size an entry counts for in batch limits. */
export function entryBytes(entry: LogEntry): number {
  return entry.data.length + RAFT_ENTRY_OVERHEAD_BYTES;
}

/** Reads a LogStore (whose retained window is in memory) as RaftStorage. */
export function logStoreStorage(store: LogStore): RaftStorage {
  return {
    firstIndex: () => store.firstIndex(),
    lastIndex: () => store.lastIndex(),
    term: (index) => store.get(index)?.term,
    entries(lo, hi, maxBytes) {
      const result: LogEntry[] = [];
      let bytes = 0;
      for (let index = lo; index < hi; index++) {
        const entry = store.get(index);
        assert(entry !== undefined && entry.index === index, `log store is missing entry ${index}`);
        bytes += entryBytes(entry);
        if (result.length > 0 && bytes > maxBytes) break;
        result.push(entry);
      }
      return result;
    },
  };
}

/** The unstable suffix over the durable log, with commitIndex and appliedIndex. */
export class RaftLog {
  /** Invariant: the newest snapshot the durable log may be compacted behind (0/0 for none). */
  private snapshotIndex: number;
  private snapshotTerm: number;
  /** A snapshot accepted from a leader and not yet installed by the shell. */
  private incomingSnapshot: SnapshotMeta | undefined;
  /** Invariant: unstable[i].index === offset + i. */
  private unstable: LogEntry[] = [];
  /** Invariant: the first index that is not known to be durable. */
  private offset: number;
  private committed = 0;
  private applied = 0;

  constructor(
    private readonly storage: RaftStorage,
    snapshot: LogPosition | undefined,
  ) {
    this.snapshotIndex = snapshot?.index ?? 0;
    this.snapshotTerm = snapshot?.term ?? 0;
    const storedLast = storage.lastIndex();
    if (storedLast > 0) {
      assert(storage.firstIndex() <= this.snapshotIndex + 1, 'log store has a gap after the snapshot');
    }
    this.offset = Math.max(storedLast, this.snapshotIndex) + 1;
    this.committed = this.snapshotIndex;
    this.applied = this.snapshotIndex;
  }

  get commitIndex(): number {
    return this.committed;
  }

  get appliedIndex(): number {
    return this.applied;
  }

  /** The first index readable from the view. */
  firstIndex(): number {
    if (this.incomingSnapshot !== undefined) return this.incomingSnapshot.index + 1;
    const storedFirst = this.storage.firstIndex();
    if (storedFirst === 0) return this.snapshotIndex + 1;
    return Math.min(storedFirst, this.offset);
  }

  lastIndex(): number {
    return this.offset + this.unstable.length - 1;
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex());
    assert(term !== undefined, 'the last entry has no term');
    return term;
  }

  /** The term at `index`, or undefined when it is compacted or beyond the end. term(0) is 0. */
  term(index: number): number | undefined {
    if (index === 0) return 0;
    const incoming = this.incomingSnapshot;
    if (incoming !== undefined && index <= incoming.index) return index === incoming.index ? incoming.term : undefined;
    if (index >= this.offset) return this.unstable[index - this.offset]?.term;
    if (index === this.snapshotIndex) return this.snapshotTerm;
    if (index < this.firstIndex()) return undefined;
    return this.storage.term(index);
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft section 5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Entries [lo, hi) limited to maxBytes (at least one), or undefined when lo is compacted.
   * Requires hi <= lastIndex() + 1.
   */
  entries(lo: number, hi: number, maxBytes: number): LogEntry[] | undefined {
    assert(hi <= this.lastIndex() + 1, `entries beyond the end: ${hi} > ${this.lastIndex() + 1}`);
    if (lo < this.firstIndex()) return undefined;
    if (lo >= hi) return [];
    let result: LogEntry[] = [];
    let bytes = 0;
    if (lo < this.offset) {
      result = this.storage.entries(lo, Math.min(hi, this.offset), maxBytes);
      for (const entry of result) bytes += entryBytes(entry);
      if (result.length < Math.min(hi, this.offset) - lo) return result;
    }
    for (let index = Math.max(lo, this.offset); index < hi; index++) {
      const entry = this.unstable[index - this.offset];
      assert(entry !== undefined, `unstable entry ${index} missing`);
      bytes += entryBytes(entry);
      if (result.length > 0 && bytes > maxBytes) break;
      result.push(entry);
    }
    return result;
  }

  /**
   * The index of the first entry in `entries` whose term conflicts with ours or that we lack, or
   * 0 when we hold all of them (etcd findConflict). Entries must be contiguous.
   */
  findConflict(entries: readonly LogEntry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * The largest position at or below `index` whose term is <= `term`: the fast back-off hint a
   * follower returns on rejection and the leader uses to skip a whole term per round trip
   * (etcd findConflictByTerm). Stops at the first compacted index.
   */
  findConflictByTerm(index: number, term: number): LogPosition {
    let at = Math.min(index, this.lastIndex());
    for (; at > 0; at--) {
      const atTerm = this.term(at);
      if (atTerm === undefined) return { index: at, term: 0 };
      if (atTerm <= term) return { index: at, term: atTerm };
    }
    return { index: 0, term: 0 };
  }

  /**
   * Appends entries that continue the log at some index in (commitIndex, lastIndex + 1],
   * replacing everything from entries[0].index on. Returns the new last index.
   */
  append(entries: readonly LogEntry[]): number {
    const first = entries[0];
    if (first === undefined) return this.lastIndex();
    assert(first.index > this.committed, `replacing committed entry ${first.index} (commit ${this.committed})`);
    assert(first.index <= this.lastIndex() + 1, `append leaves a gap at ${this.lastIndex() + 1}`);
    for (let i = 1; i < entries.length; i++) assert(entries[i]!.index === first.index + i, 'appended entries are not contiguous');
    if (first.index === this.offset + this.unstable.length) {
      for (const entry of entries) this.unstable.push(entry);
    } else if (first.index <= this.offset) {
      this.offset = first.index;
      this.unstable = entries.slice();
    } else {
      this.unstable = this.unstable.slice(0, first.index - this.offset).concat(entries);
    }
    return this.lastIndex();
  }

  /** Moves commitIndex forward (never back). Requires the log to hold the new commit index. */
  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), `commit ${index} is beyond the last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Records that entries through `index` were handed to the state machine. */
  appliedTo(index: number): void {
    assert(index >= this.applied && index <= this.committed, `applied ${index} outside [${this.applied}, ${this.committed}]`);
    this.applied = index;
  }

  /** Entries [lo, offset) are durable: the leader counts only these toward commitment. */
  persistedIndex(): number {
    return this.incomingSnapshot !== undefined ? 0 : this.offset - 1;
  }

  /** Committed, durable, not yet applied entries, limited to maxBytes (at least one). */
  nextCommittedEntries(maxCount: number, maxBytes: number): LogEntry[] {
    if (this.incomingSnapshot !== undefined) return [];
    const hi = Math.min(this.committed, this.offset - 1) + 1;
    const lo = this.applied + 1;
    if (lo >= hi) return [];
    const entries = this.entries(lo, Math.min(hi, lo + maxCount), maxBytes);
    assert(entries !== undefined, `committed entries from ${lo} were compacted before being applied`);
    return entries;
  }

  hasNextCommittedEntries(): boolean {
    return this.incomingSnapshot === undefined && Math.min(this.committed, this.offset - 1) > this.applied;
  }

  /** The entries waiting to become durable (a copy). */
  unstableEntries(): LogEntry[] {
    return this.unstable.slice();
  }

  hasUnstableEntries(): boolean {
    return this.unstable.length > 0;
  }

  /** The snapshot waiting to be installed by the shell, if any. */
  get pendingSnapshot(): SnapshotMeta | undefined {
    return this.incomingSnapshot;
  }

  /**
   * The shell made entries through (index, term) durable. Ignored when that entry has since
   * been replaced (a later append truncated it before the shell finished).
   */
  stableTo(index: number, term: number): void {
    if (index < this.offset || this.term(index) !== term) return;
    this.unstable = this.unstable.slice(index + 1 - this.offset);
    this.offset = index + 1;
  }

  /** The shell installed the incoming snapshot and discarded the old log. */
  stableSnapshotTo(index: number): void {
    const incoming = this.incomingSnapshot;
    if (incoming === undefined || incoming.index !== index) return;
    this.snapshotIndex = incoming.index;
    this.snapshotTerm = incoming.term;
    this.incomingSnapshot = undefined;
    if (this.applied < index) this.applied = index;
  }

  /**
   * Replaces the whole log with a snapshot received from a leader (etcd restore). Requires the
   * snapshot to be beyond commitIndex.
   */
  restore(snapshot: SnapshotMeta): void {
    assert(snapshot.index > this.committed, `restoring snapshot ${snapshot.index} at or below commit ${this.committed}`);
    this.incomingSnapshot = snapshot;
    this.unstable = [];
    this.offset = snapshot.index + 1;
    this.committed = snapshot.index;
  }

  /** The shell took a snapshot covering entries through (index, term); older entries may be compacted. */
  snapshotTaken(index: number, term: number): void {
    assert(index <= this.applied, `snapshot ${index} is beyond the applied index ${this.applied}`);
    if (index <= this.snapshotIndex) return;
    const known = this.term(index);
    assert(known === undefined || known === term, `snapshot term ${term} differs from the log's ${known} at ${index}`);
    this.snapshotIndex = index;
    this.snapshotTerm = term;
  }
}
