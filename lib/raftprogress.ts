// What a Raft leader knows about each follower's log, and the quorum arithmetic over it.
//
// One Progress per other server in the configuration (voters and non-voters). It is the flow
// control of replication, in etcd-io/raft's shape (tracker/progress.go, tracker/inflights.go):
// - probe: we do not know where the follower's log ends; send one AppendEntries at a time and
//   wait for its answer (or the next heartbeat answer) before sending another;
// - replicate: the follower is caught up to `match`; stream entries optimistically, moving
//   `next` ahead of the acknowledgements, with at most a window of messages in flight;
// - snapshot: the entries it needs are compacted; an InstallSnapshot is under way, and nothing
//   else is sent until it is answered, reported failed, or times out.
//
// Not here: deciding what to send (raft.ts) or reading the log (raftlog.ts).
//
// Invariants: 0 <= match < next; match never decreases while the leader holds its term;
// inflight indexes are increasing.
//
// References: Raft paper section 5.3; Ongaro's thesis section 10.2 (pipelining, flow control);
// etcd-io/raft tracker/.

import assert from 'node:assert/strict';

// ---------------------------------------------------------------------------------------------
// Types

/** Replication state of one follower (etcd StateProbe/StateReplicate/StateSnapshot). */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

// ---------------------------------------------------------------------------------------------
// Limits

/** AppendEntries messages in flight to one follower in the replicate state. */
export const RAFT_INFLIGHT_MSGS_MAX = 64;

// ---------------------------------------------------------------------------------------------
// API

/** The largest value that a majority of `values` has reached (0 for none): commit and read math. */
export function quorumValue(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = values.slice().sort((a, b) => b - a);
  return sorted[Math.floor(values.length / 2)] ?? 0;
}

/** The outcome of an election given each voter's answer so far (true granted, false rejected). */
export function voteResult(voters: readonly string[], answers: ReadonlyMap<string, boolean>): 'won' | 'lost' | 'pending' {
  const majority = Math.floor(voters.length / 2) + 1;
  let granted = 0;
  let rejected = 0;
  for (const voter of voters) {
    const answer = answers.get(voter);
    if (answer === true) granted++;
    else if (answer === false) rejected++;
  }
  if (granted >= majority) return 'won';
  if (voters.length - rejected < majority) return 'lost';
  return 'pending';
}

/** Last indexes of the AppendEntries messages in flight to one follower: a ring buffer. */
export class Inflights {
  private readonly buffer: number[];
  private start = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    assert(capacity > 0 && capacity <= RAFT_INFLIGHT_MSGS_MAX, `inflight capacity ${capacity} outside [1, ${RAFT_INFLIGHT_MSGS_MAX}]`);
    this.buffer = new Array<number>(capacity).fill(0);
  }

  get size(): number {
    return this.count;
  }

  isFull(): boolean {
    return this.count === this.capacity;
  }

  /** Records a message whose last entry is `index`. */
  add(index: number): void {
    assert(!this.isFull(), 'inflight window overflow');
    if (this.count > 0) {
      const last = this.buffer[(this.start + this.count - 1) % this.capacity]!;
      assert(index > last, `inflight index ${index} not above ${last}`);
    }
    this.buffer[(this.start + this.count) % this.capacity] = index;
    this.count++;
  }

  /** Frees every message whose last index is <= index (they were acknowledged). */
  freeLE(index: number): void {
    while (this.count > 0 && this.buffer[this.start]! <= index) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
  }

  /** Frees the oldest message: a heartbeat answer shows the follower is alive, so one was lost. */
  freeFirstOne(): void {
    if (this.count === 0) return;
    this.start = (this.start + 1) % this.capacity;
    this.count--;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
  }
}

/** The leader's view of one follower. */
export class Progress {
  /** Invariant: the highest index known to be durable on the follower and to match our log. */
  match = 0;
  /** Invariant: next > match; the next index to send. */
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: a message was sent and is not answered yet. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** In snapshot state: ticks since it was sent (the leader gives up after a timeout). */
  snapshotElapsedTicks = 0;
  /** Heard from since the last check-quorum round (Raft thesis section 6.2). */
  recentActive = false;
  /** Ticks since any answer from this follower (for autopilot and operators). */
  ticksSinceResponse = 0;
  /** The highest LeaderCommitIndex sent in an AppendEntries (the follower may not know more). */
  commitSent = 0;
  /** The highest read-index context the follower has echoed in this term (ReadIndex). */
  readAck = 0;
  readonly inflights: Inflights;

  constructor(next: number, inflightCapacity: number) {
    this.next = next;
    this.inflights = new Inflights(inflightCapacity);
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.resetState('probe');
  }

  becomeReplicate(): void {
    this.next = this.match + 1;
    this.resetState('replicate');
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** Whether sending must wait (etcd IsPaused). */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.isFull();
      case 'snapshot':
        return true;
      default: {
        const never: never = this.state;
        throw new Error(`unknown progress state ${String(never)}`);
      }
    }
  }

  /** An acknowledgement through `index`. Returns whether match moved. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /** We sent entries ending at `lastIndex` (count > 0), or an empty probe (count 0). */
  sentEntries(count: number, lastIndex: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /**
   * A rejection of an AppendEntries whose prevLogEntry was `rejected`, with the follower's hint
   * already mapped to our log (`matchHint`). Returns false for a stale rejection (etcd MaybeDecrTo).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  private resetState(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotElapsedTicks = 0;
    this.inflights.reset();
  }
}
