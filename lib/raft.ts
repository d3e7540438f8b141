// The Raft consensus core: a deterministic state machine with no clock, no I/O and no randomness
// of its own.
//
// The shell drives it in etcd-io/raft's shape:
//   tick()            one logical clock tick (election timeouts and heartbeats are counted in ticks)
//   step(message)     a message from a peer
//   propose(data)     a new command (leader only), and changeConfiguration, transferLeadership,
//                     readIndex, bootstrap, compactTo, reportSnapshot
//   ready()           what to do now: state to persist, entries to append, a snapshot to install,
//                     committed entries to apply, messages to send, reads that may be served
//   advance(ready)    the shell did all of it
// The shell must, for each Ready, in this order: install the snapshot (discarding the whole log),
// replace the log from entries[0].index on with `entries`, persist `hardState`, and only when all
// of that is durable send `messages` (every message in a Ready may depend on that Ready's durable
// state: a vote, an acknowledgement, entries); then apply `committedEntries` in order, serve
// `readStates` once the state machine has applied their index, and call advance(ready). At most
// one Ready is outstanding; step() and tick() may be called while the shell works on it.
//
// Implemented: leader election with randomized timeouts in [T, 2T) ticks (section 5.2), where only
// a leader's message or a granted vote resets the timer and a stale-term vote request is answered
// with the newer term (Figure 2); pre-vote and check-quorum with leader stickiness (thesis
// sections 9.6, 6.2, 4.2.3); log replication with per-follower flow control and fast back-off
// (section 5.3, raftprogress.ts); commitment only by counting replicas of current-term entries
// (section 5.4.2); a no-op entry at the start of each term (as hashicorp/raft); snapshots and
// InstallSnapshot (section 7; the shell streams the data); single-server membership changes
// taking effect when appended (thesis chapter 4, raftconfig.ts); leadership transfer with
// TimeoutNow (thesis section 3.10); ReadIndex reads (thesis section 6.4); ticks since last
// contact with the leader (for ?stale and X-Consul-LastContact).
//
// Not here: the log's storage (raftlog.ts reads it), the wire format of messages (the transport
// maps these to hashicorp/raft's structs), snapshot data, timers.
//
// Invariants (asserted): commitIndex never decreases and never passes the last index; a leader
// never truncates its own log; entries at or below commitIndex are never replaced; at most one
// Ready is outstanding; a leader has committed an entry of its term before serving reads or
// changing membership.
//
// References: Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm" (2014);
// Ongaro, "Consensus: Bridging Theory and Practice" (2014); etcd-io/raft raft.go, read_only.go;
// hashicorp/raft raft.go, replication.go, configuration.go.

import assert from 'node:assert/strict';
import { LOG_TYPE, type LogEntry, type LogType } from './logstore.js';
import { nullLogger, type Logger } from './log.js';
import { checkConfiguration, Configurations, isVoter, nextConfiguration, voterIds, type Configuration, type ConfigurationChange } from './raftconfig.js';
import { decodeConfiguration, encodeConfiguration } from './raftwire.js';
import { RaftLog, type RaftStorage } from './raftlog.js';
import { Progress, quorumValue, RAFT_INFLIGHT_MSGS_MAX, voteResult, type ProgressState } from './raftprogress.js';
import type { RaftServer, SnapshotMeta } from './snapshot.js';

// ---------------------------------------------------------------------------------------------
// Exported types

export type RaftRole = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/** What must be durable before messages are sent (hashicorp StableStore: CurrentTerm, LastVoteCand). */
export interface HardState {
  readonly term: number;
  /** The server voted for in `term`, or '' for none. */
  readonly vote: string;
  /** May be persisted or not: on restart the core relearns it from the leader. */
  readonly commitIndex: number;
}

/** Volatile state the shell reports (leader for /v1/status/leader, role for metrics). */
export interface SoftState {
  readonly role: RaftRole;
  /** The known leader's ID, or '' when unknown. */
  readonly leaderId: string;
}

interface Header {
  readonly from: string;
  readonly to: string;
  readonly term: number;
}

/** hashicorp AppendEntriesRequest (PrevLogEntry, PrevLogTerm, Entries, LeaderCommitIndex). */
export interface AppendEntries extends Header {
  readonly type: 'appendEntries';
  readonly prevLogEntry: number;
  readonly prevLogTerm: number;
  readonly entries: readonly LogEntry[];
  readonly leaderCommitIndex: number;
}

/**
 * Answer to AppendEntries. On success `lastLog` is the index through which the follower's log
 * is durable and matches the leader's. On failure `rejectedIndex` is the prevLogEntry it could
 * not match and (conflictIndex, conflictTerm) the largest position at or below it whose term is
 * <= prevLogTerm: the leader skips back to it in one round trip.
 */
export interface AppendEntriesResponse extends Header {
  readonly type: 'appendEntriesResponse';
  readonly success: boolean;
  readonly lastLog: number;
  readonly rejectedIndex: number;
  readonly conflictIndex: number;
  readonly conflictTerm: number;
}

/** hashicorp RequestVoteRequest. LeadershipTransfer votes are granted despite leader stickiness. */
export interface RequestVote extends Header {
  readonly type: 'requestVote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  readonly leadershipTransfer: boolean;
}

export interface RequestVoteResponse extends Header {
  readonly type: 'requestVoteResponse';
  readonly granted: boolean;
}

/** hashicorp RequestPreVoteRequest: `term` is the term the sender would campaign in; nobody adopts it. */
export interface RequestPreVote extends Header {
  readonly type: 'requestPreVote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
}

export interface RequestPreVoteResponse extends Header {
  readonly type: 'requestPreVoteResponse';
  readonly granted: boolean;
}

/** hashicorp InstallSnapshotRequest without the data, which the shell streams after it. */
export interface InstallSnapshot extends Header {
  readonly type: 'installSnapshot';
  readonly snapshot: SnapshotMeta;
}

/** `lastLog`: the follower's log now matches the leader's through this index. */
export interface InstallSnapshotResponse extends Header {
  readonly type: 'installSnapshotResponse';
  readonly success: boolean;
  readonly lastLog: number;
}

/** hashicorp TimeoutNowRequest: start an election now (leadership transfer). */
export interface TimeoutNow extends Header {
  readonly type: 'timeoutNow';
}

/**
 * A heartbeat. leaderCommitIndex is capped at what the follower is known to hold.
 * readContext is the newest ReadIndex round; the follower echoes it.
 */
export interface Heartbeat extends Header {
  readonly type: 'heartbeat';
  readonly leaderCommitIndex: number;
  readonly readContext: number;
}

export interface HeartbeatResponse extends Header {
  readonly type: 'heartbeatResponse';
  readonly readContext: number;
}

/** Every message the core sends or accepts. Wire mapping lives in the transport. */
export type RaftMessage =
  | AppendEntries
  | AppendEntriesResponse
  | RequestVote
  | RequestVoteResponse
  | RequestPreVote
  | RequestPreVoteResponse
  | InstallSnapshot
  | InstallSnapshotResponse
  | TimeoutNow
  | Heartbeat
  | HeartbeatResponse;

/** A ReadIndex request's outcome: serve it once the state machine has applied `index`, or fail it. */
export type ReadState = { readonly ok: true; readonly requestId: number; readonly index: number } | { readonly ok: false; readonly requestId: number; readonly error: RaftError };

/** Everything the shell must do; see the header for the order. Fields are empty when there is nothing. */
export interface Ready {
  readonly softState: SoftState | undefined;
  readonly hardState: HardState | undefined;
  /** A snapshot to install: store its data, restore the state machine, discard the whole log. */
  readonly snapshot: SnapshotMeta | undefined;
  /** Entries that replace the log from entries[0].index on (truncate any stored suffix first). */
  readonly entries: readonly LogEntry[];
  readonly committedEntries: readonly LogEntry[];
  /** Send only after this Ready's snapshot, entries and hard state are durable. */
  readonly messages: readonly RaftMessage[];
  readonly readStates: readonly ReadState[];
}

/** Coded operational errors (one table for the module). */
export type RaftErrorCode =
  | 'ERR_NOT_LEADER'
  | 'ERR_PROPOSALS_DROPPED'
  | 'ERR_ENTRY_TOO_LARGE'
  | 'ERR_CONFIGURATION_PENDING'
  | 'ERR_CONFIGURATION_CHANGED'
  | 'ERR_CONFIGURATION_INVALID'
  | 'ERR_CANT_BOOTSTRAP'
  | 'ERR_TRANSFER_TARGET';

export class RaftError extends Error {
  override readonly name = 'RaftError';
  constructor(
    readonly code: RaftErrorCode,
    message: string,
    /** For ERR_NOT_LEADER: the leader this server knows of, or ''. */
    readonly leaderId = '',
  ) {
    super(message);
  }
}

export type RaftResult = { readonly ok: true } | { readonly ok: false; readonly error: RaftError };

/** Where a proposal landed: the shell fails it if a different term's entry is applied at `index`. */
export type ProposeResult = { readonly ok: true; readonly index: number; readonly term: number } | { readonly ok: false; readonly error: RaftError };

export interface RaftOptions {
  readonly id: string;
  /** The durable log (logStoreStorage(store) for a LogStore). */
  readonly storage: RaftStorage;
  /** Uniform in [0, 1): randomizes election timeouts. */
  readonly rng: () => number;
  /** T: a follower campaigns after a random [T, 2T) ticks without a leader. Default 10. */
  readonly electionTimeoutTicks?: number;
  /** Ticks between heartbeats; must be below T. Default 1. */
  readonly heartbeatTicks?: number;
  /**
   * On restart: the durable term, vote and (optionally) commit index from the previous run, with
   * `storage` holding the durable log, `snapshot` the newest snapshot and `appliedIndex` what the
   * state machine was restored to (the snapshot's index). Nothing else carries over.
   */
  readonly hardState?: HardState;
  /** The newest snapshot the state machine was restored from. */
  readonly snapshot?: SnapshotMeta;
  /** The index the state machine holds (default: the snapshot's). */
  readonly appliedIndex?: number;
  /** Default true. */
  readonly preVote?: boolean;
  /** Default true. */
  readonly checkQuorum?: boolean;
  /** Entries kept behind a snapshot for slow followers (hashicorp TrailingLogs). Default 10240. */
  readonly trailingLogs?: number;
  /** Default RAFT_INFLIGHT_MSGS_MAX. */
  readonly maxInflightMsgs?: number;
  /** Entries per AppendEntries; default and upper bound RAFT_ENTRIES_PER_MSG_MAX. */
  readonly maxEntriesPerMsg?: number;
  /** Entries a leader holds beyond commitIndex before dropping proposals; default and upper bound RAFT_UNCOMMITTED_ENTRIES_MAX. */
  readonly maxUncommittedEntries?: number;
  /** Ticks a follower stays in snapshot state without an answer. Default 5 T. */
  readonly snapshotTimeoutTicks?: number;
  readonly logger?: Logger;
}

/** A point-in-time summary for /v1/status, /v1/operator/raft and autopilot. */
export interface RaftStatus {
  readonly id: string;
  readonly role: RaftRole;
  readonly term: number;
  readonly vote: string;
  readonly leaderId: string;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** Ticks since the last message from the leader: 0 on the leader, undefined if never heard from. */
  readonly lastContactTicks: number | undefined;
  readonly configuration: Configuration;
  readonly committedConfiguration: Configuration;
  readonly leadTransferee: string;
  readonly progress: ReadonlyArray<{ readonly id: string; readonly match: number; readonly next: number; readonly state: ProgressState; readonly ticksSinceResponse: number }>;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Entries in one AppendEntries (hashicorp MaxAppendEntries). */
export const RAFT_ENTRIES_PER_MSG_MAX = 64;
/** Bytes of entries in one AppendEntries (one larger entry is still sent alone). */
export const RAFT_MSG_BYTES_MAX = 1024 * 1024;
/** Data bytes of one proposed entry. */
export const RAFT_ENTRY_BYTES_MAX = 8 * 1024 * 1024;
/** Entries a leader holds beyond its commit index before it drops proposals. */
export const RAFT_UNCOMMITTED_ENTRIES_MAX = 8192;
/** Committed entries handed out in one Ready (count and bytes). */
export const RAFT_COMMITTED_ENTRIES_PER_READY_MAX = 1024;
export const RAFT_COMMITTED_BYTES_PER_READY_MAX = 16 * 1024 * 1024;
/** ReadIndex requests waiting on the leader. */
export const RAFT_PENDING_READS_MAX = 4096;
/** Messages queued between two Ready calls; beyond it the core's caller is not draining. */
export const RAFT_OUTBOX_MSGS_MAX = 65536;

// ---------------------------------------------------------------------------------------------
// API

/** The Raft state machine of one server. */
export class Raft {
  readonly id: string;
  private currentTerm = 0;
  /** Invariant: the candidate voted for in currentTerm, or ''. */
  private vote = '';
  private role: RaftRole = 'follower';
  private leaderId = '';
  private readonly log: RaftLog;
  private readonly configurations: Configurations;
  /** The newest snapshot this server has (taken or installed): what it sends to lagging followers. */
  private snapshotMeta: SnapshotMeta | undefined;
  /** Leader only: one entry per other server in the latest configuration. */
  private readonly progress = new Map<string, Progress>();
  /**
   * Leader only: servers the latest configuration removed, still sent entries until they hold
   * the entry that removed them (so they learn it, as hashicorp/raft replicates up to that index
   * before stopping) or an election timeout passes. Their Progress stays in `progress`; nothing
   * that counts votes, commits or reads looks at it (those use the configuration's voters).
   */
  private readonly departing = new Map<string, { readonly index: number; readonly address: string; ticksLeft: number }>();
  /** (Pre-)candidate only: answers so far. */
  private readonly votes = new Map<string, boolean>();
  private outbox: RaftMessage[] = [];
  /**
   * Leader: entries or a commit index may be due to some follower. New entries and freed window
   * slots do not send at once: ready() sends what is due, so every entry proposed and every
   * answer stepped since the last Ready go out as one AppendEntries per follower.
   */
  private isAppendDue = false;
  /** Leader: broadcastCommit() was called; the next ready() tells idle followers the commit index. */
  private isCommitBroadcastDue = false;
  private readStates: ReadState[] = [];

  private readonly electionTimeoutTicks: number;
  private readonly heartbeatTicks: number;
  private readonly snapshotTimeoutTicks: number;
  private readonly trailingLogs: number;
  private readonly maxInflightMsgs: number;
  private readonly maxEntriesPerMsg: number;
  private readonly maxUncommittedEntries: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly rng: () => number;
  private readonly logger: Logger;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private leaderContactTicks: number | undefined;
  /** Leader only: the server leadership is being handed to, or ''. */
  private leadTransferee = '';

  /** ReadIndex (leader only): the newest read round, reads confirmed by a quorum, reads waiting for a commit. */
  private readSeq = 0;
  private pendingReads: { requestId: number; index: number; seq: number }[] = [];
  private readsAwaitingCommit: number[] = [];

  private prevHardState: HardState;
  private prevSoftState: SoftState;
  private outstanding: Ready | undefined;

  constructor(options: RaftOptions) {
    assert(options.id !== '', 'server ID must not be empty');
    this.id = options.id;
    this.rng = options.rng;
    this.logger = options.logger ?? nullLogger();
    this.electionTimeoutTicks = options.electionTimeoutTicks ?? 10;
    this.heartbeatTicks = options.heartbeatTicks ?? 1;
    assert(this.heartbeatTicks > 0 && this.heartbeatTicks < this.electionTimeoutTicks, 'heartbeatTicks must be in [1, electionTimeoutTicks)');
    this.snapshotTimeoutTicks = options.snapshotTimeoutTicks ?? 5 * this.electionTimeoutTicks;
    this.trailingLogs = options.trailingLogs ?? 10240;
    this.maxInflightMsgs = Math.min(options.maxInflightMsgs ?? RAFT_INFLIGHT_MSGS_MAX, RAFT_INFLIGHT_MSGS_MAX);
    this.maxEntriesPerMsg = Math.min(options.maxEntriesPerMsg ?? RAFT_ENTRIES_PER_MSG_MAX, RAFT_ENTRIES_PER_MSG_MAX);
    this.maxUncommittedEntries = Math.min(options.maxUncommittedEntries ?? RAFT_UNCOMMITTED_ENTRIES_MAX, RAFT_UNCOMMITTED_ENTRIES_MAX);
    assert(this.maxInflightMsgs > 0 && this.maxEntriesPerMsg > 0 && this.maxUncommittedEntries > 0, 'flow-control limits must be positive');
    this.preVote = options.preVote ?? true;
    this.checkQuorum = options.checkQuorum ?? true;

    const snapshot = options.snapshot;
    this.snapshotMeta = snapshot;
    this.log = new RaftLog(options.storage, snapshot);
    const hard = options.hardState ?? { term: 0, vote: '', commitIndex: 0 };
    assert(hard.commitIndex <= this.log.lastIndex(), `stored commit index ${hard.commitIndex} is beyond the last index ${this.log.lastIndex()}`);
    this.currentTerm = hard.term;
    this.vote = hard.vote;
    this.log.commitTo(hard.commitIndex);
    const applied = options.appliedIndex ?? snapshot?.index ?? 0;
    if (applied > this.log.appliedIndex) this.log.appliedTo(applied);

    this.configurations = new Configurations(snapshot ? { index: snapshot.configurationIndex, servers: snapshot.configuration } : { index: 0, servers: [] });
    this.loadConfigurations();
    this.prevHardState = this.hardState();
    this.prevSoftState = this.softState();
    this.resetRandomizedElectionTimeout();
    this.logger.info('initial configuration', { index: this.configurations.latest.index, servers: this.configurations.latest.servers.length });
  }

  // --- inputs ---------------------------------------------------------------------------------

  /** Advances the logical clock by one tick. */
  tick(): void {
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /** Handles one message from a peer. Messages not addressed to this server are dropped. */
  step(message: RaftMessage): void {
    if (message.to !== this.id || message.from === this.id) return;
    if (!this.stepTerm(message)) return;
    switch (message.type) {
      case 'requestVote':
      case 'requestPreVote':
        this.handleVoteRequest(message);
        return;
      default:
        break;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(message);
        return;
      case 'candidate':
      case 'pre-candidate':
        this.stepCandidate(message);
        return;
      case 'follower':
        this.stepFollower(message);
        return;
      default: {
        const never: never = this.role;
        throw new Error(`unknown role ${String(never)}`);
      }
    }
  }

  /** Appends a command (or barrier) to the log. Leader only. */
  propose(data: Uint8Array, type: LogType = LOG_TYPE.command): ProposeResult {
    assert(type === LOG_TYPE.command || type === LOG_TYPE.barrier, 'only commands and barriers are proposed directly');
    const refusal = this.proposalRefusal();
    if (refusal !== undefined) return { ok: false, error: refusal };
    if (data.length > RAFT_ENTRY_BYTES_MAX) return { ok: false, error: new RaftError('ERR_ENTRY_TOO_LARGE', `entry of ${data.length} bytes exceeds ${RAFT_ENTRY_BYTES_MAX}`) };
    const entry = this.appendEntry(type, data);
    this.isAppendDue = true;
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * Proposes a one-server membership change. Refused while another change is uncommitted or
   * before this leader has committed an entry of its term (the single-server change fix from
   * Ongaro's raft-dev post of 2015).
   */
  changeConfiguration(change: ConfigurationChange): ProposeResult {
    const refusal = this.proposalRefusal();
    if (refusal !== undefined) return { ok: false, error: refusal };
    const latest = this.configurations.latest;
    if (!this.committedInTerm() || latest.index > this.log.commitIndex) {
      return { ok: false, error: new RaftError('ERR_CONFIGURATION_PENDING', 'a configuration change is still being committed') };
    }
    if (change.prevIndex !== undefined && change.prevIndex !== 0 && change.prevIndex !== latest.index) {
      return { ok: false, error: new RaftError('ERR_CONFIGURATION_CHANGED', `configuration changed since ${change.prevIndex} (latest is ${latest.index})`) };
    }
    const next = nextConfiguration(latest.servers, change);
    if ('reason' in next) return { ok: false, error: new RaftError('ERR_CONFIGURATION_INVALID', next.reason) };
    const entry = this.appendEntry(LOG_TYPE.configuration, encodeConfiguration(next.servers));
    this.logger.info('updating configuration', { op: change.op, id: change.id, index: entry.index });
    this.broadcastAppend();
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * Writes the first configuration (hashicorp BootstrapCluster): only on a server with no state
   * at all. Every server bootstrapped with the same list writes the same entry 1 at term 1.
   */
  bootstrap(servers: readonly RaftServer[]): RaftResult {
    if (this.currentTerm !== 0 || this.log.lastIndex() !== 0 || this.snapshotMeta !== undefined) {
      return { ok: false, error: new RaftError('ERR_CANT_BOOTSTRAP', 'bootstrap only works on new clusters') };
    }
    const problem = checkConfiguration(servers);
    if (problem !== undefined) return { ok: false, error: new RaftError('ERR_CONFIGURATION_INVALID', problem) };
    this.becomeFollower(1, '');
    const entry: LogEntry = { index: 1, term: 1, type: LOG_TYPE.configuration, data: encodeConfiguration(servers) };
    this.log.append([entry]);
    this.configurations.appended(1, servers.slice());
    return { ok: true };
  }

  /**
   * Hands leadership to `targetId` (default: the most up-to-date voter): it is brought up to date,
   * then told to campaign at once. Proposals are dropped until it succeeds or an election timeout
   * passes; the shell sees the outcome in softState.
   */
  transferLeadership(targetId?: string): RaftResult {
    if (this.role !== 'leader') return { ok: false, error: new RaftError('ERR_NOT_LEADER', 'not the leader', this.leaderId) };
    const target = targetId ?? this.mostUpToDateVoter();
    if (target === undefined || target === this.id || !isVoter(this.configurations.latest.servers, target) || !this.progress.has(target)) {
      return { ok: false, error: new RaftError('ERR_TRANSFER_TARGET', `cannot transfer leadership to ${target ?? 'nobody'}`) };
    }
    if (this.leadTransferee === target) return { ok: true };
    this.leadTransferee = target;
    this.electionElapsed = 0;
    this.logger.info('starting leadership transfer', { id: target });
    const progress = this.progress.get(target)!;
    if (progress.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', from: this.id, to: target, term: this.currentTerm });
    else this.sendAppend(target, true);
    return { ok: true };
  }

  /**
   * Starts a linearizable read (ReadIndex, thesis section 6.4). The outcome arrives in a later
   * Ready's readStates under `requestId`: the commit index to wait for once a majority has
   * confirmed this server is still leader, or an error if leadership is lost first.
   */
  readIndex(requestId: number): RaftResult {
    if (this.role !== 'leader') return { ok: false, error: new RaftError('ERR_NOT_LEADER', 'not the leader', this.leaderId) };
    if (this.pendingReads.length + this.readsAwaitingCommit.length >= RAFT_PENDING_READS_MAX) {
      return { ok: false, error: new RaftError('ERR_PROPOSALS_DROPPED', `more than ${RAFT_PENDING_READS_MAX} reads pending`) };
    }
    if (!this.committedInTerm()) this.readsAwaitingCommit.push(requestId);
    else this.startReads([requestId]);
    return { ok: true };
  }

  /**
   * The shell took a snapshot (durable in its SnapshotStore) covering entries through meta.index,
   * which must have been applied. Returns the index through which the shell may now compact the
   * log (LogStore.compactPrefix), keeping `trailingLogs` entries for slow followers; 0 for none.
   */
  compactTo(meta: SnapshotMeta): number {
    assert(meta.index <= this.log.appliedIndex, `snapshot ${meta.index} beyond applied ${this.log.appliedIndex}`);
    if (this.snapshotMeta === undefined || meta.index > this.snapshotMeta.index) {
      this.log.snapshotTaken(meta.index, meta.term);
      this.snapshotMeta = meta;
    }
    return Math.max(0, Math.min(this.snapshotMeta.index - this.trailingLogs, this.log.persistedIndex()));
  }

  /**
   * The configuration a snapshot taken at `appliedIndex` must carry, or undefined when the
   * committed configuration is newer than that index (hashicorp refuses the snapshot then too).
   */
  snapshotConfiguration(appliedIndex: number): Configuration | undefined {
    const committed = this.configurations.committed;
    return committed.index <= appliedIndex ? committed : undefined;
  }

  /**
   * The shell finished (ok) or failed to stream the snapshot to `to` (etcd ReportSnapshot). Either
   * way the follower is probed again after its next heartbeat answer; a failure also forgets the
   * snapshot, so probing starts from what the follower is known to hold.
   */
  reportSnapshot(to: string, ok: boolean): void {
    const progress = this.progress.get(to);
    if (this.role !== 'leader' || progress === undefined || progress.state !== 'snapshot') return;
    if (!ok) progress.pendingSnapshot = 0;
    progress.becomeProbe();
    progress.probeSent = true;
  }

  // --- outputs --------------------------------------------------------------------------------

  /** Whether ready() has anything to do. */
  hasReady(): boolean {
    if (this.outstanding !== undefined) return false;
    return (
      this.outbox.length > 0 ||
      this.isAppendDue ||
      this.readStates.length > 0 ||
      this.log.hasUnstableEntries() ||
      this.log.pendingSnapshot !== undefined ||
      this.log.hasNextCommittedEntries() ||
      !sameHardState(this.hardState(), this.prevHardState) ||
      !sameSoftState(this.softState(), this.prevSoftState)
    );
  }

  /** Collects the work for the shell. Call advance(ready) when done; one Ready at a time. */
  ready(): Ready {
    assert(this.outstanding === undefined, 'ready() called before advance() of the previous Ready');
    if (this.isAppendDue) this.sendDueAppends();
    const hard = this.hardState();
    const soft = this.softState();
    assert(hard.commitIndex >= this.prevHardState.commitIndex, 'commitIndex decreased');
    assert(hard.term >= this.prevHardState.term, 'term decreased');
    const ready: Ready = {
      softState: sameSoftState(soft, this.prevSoftState) ? undefined : soft,
      hardState: sameHardState(hard, this.prevHardState) ? undefined : hard,
      snapshot: this.log.pendingSnapshot,
      entries: this.log.unstableEntries(),
      committedEntries: this.log.nextCommittedEntries(RAFT_COMMITTED_ENTRIES_PER_READY_MAX, RAFT_COMMITTED_BYTES_PER_READY_MAX),
      messages: this.outbox,
      readStates: this.readStates,
    };
    this.prevHardState = hard;
    this.prevSoftState = soft;
    this.outbox = [];
    this.readStates = [];
    this.outstanding = ready;
    return ready;
  }

  /** The shell has persisted, sent and applied everything in `ready`. */
  advance(ready: Ready): void {
    assert(ready === this.outstanding, 'advance() of a Ready that is not outstanding');
    this.outstanding = undefined;
    if (ready.snapshot !== undefined) {
      this.log.stableSnapshotTo(ready.snapshot.index);
      if (this.snapshotMeta === undefined || ready.snapshot.index > this.snapshotMeta.index) this.snapshotMeta = ready.snapshot;
    }
    const last = ready.entries[ready.entries.length - 1];
    if (last !== undefined) this.log.stableTo(last.index, last.term);
    const applied = ready.committedEntries[ready.committedEntries.length - 1];
    if (applied !== undefined) this.log.appliedTo(applied.index);
    // The leader counts its own copy only once durable, so commitment may move now.
    if (this.role === 'leader' && this.maybeCommit()) this.afterCommit();
  }

  // --- queries --------------------------------------------------------------------------------

  get term(): number {
    return this.currentTerm;
  }

  get state(): RaftRole {
    return this.role;
  }

  get leader(): string {
    return this.leaderId;
  }

  get commitIndex(): number {
    return this.log.commitIndex;
  }

  get appliedIndex(): number {
    return this.log.appliedIndex;
  }

  get lastIndex(): number {
    return this.log.lastIndex();
  }

  /** The term of the entry at `index` in this server's log, or undefined if not held. */
  termAt(index: number): number | undefined {
    return this.log.term(index);
  }

  /** The first index still readable from the log. */
  get firstIndex(): number {
    return this.log.firstIndex();
  }

  /** The configuration in force (the latest in the log). */
  get configuration(): Configuration {
    return this.configurations.latest;
  }

  /** Where messages to `id` go: its address in the latest configuration, or, for a server being removed, its last one. */
  peerAddress(id: string): string | undefined {
    const address = this.configurations.latest.servers.find((s) => s.id === id)?.address ?? this.departing.get(id)?.address;
    return address === '' ? undefined : address;
  }

  /** Ticks since the last message from the leader (0 on the leader; undefined if never). */
  get lastContactTicks(): number | undefined {
    return this.role === 'leader' ? 0 : this.leaderContactTicks;
  }

  status(): RaftStatus {
    return {
      id: this.id,
      role: this.role,
      term: this.currentTerm,
      vote: this.vote,
      leaderId: this.leaderId,
      commitIndex: this.log.commitIndex,
      appliedIndex: this.log.appliedIndex,
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      lastContactTicks: this.lastContactTicks,
      configuration: this.configurations.latest,
      committedConfiguration: this.configurations.committed,
      leadTransferee: this.leadTransferee,
      progress: [...this.progress].filter(([id]) => !this.departing.has(id)).map(([id, p]) => ({ id, match: p.match, next: p.next, state: p.state, ticksSinceResponse: p.ticksSinceResponse })),
    };
  }

  // --- ticks ----------------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.leaderContactTicks !== undefined) this.leaderContactTicks++;
    if (this.isPromotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.logger.warn('heartbeat timeout reached, starting election', { term: this.currentTerm, leader: this.leaderId });
      this.campaign(this.preVote ? 'pre' : 'real', false);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    for (const [id, departure] of this.departing) if (--departure.ticksLeft <= 0) this.endDeparture(id);
    for (const [id, progress] of this.progress) {
      progress.ticksSinceResponse++;
      if (progress.state === 'snapshot' && ++progress.snapshotElapsedTicks >= this.snapshotTimeoutTicks) {
        this.logger.warn('snapshot to follower timed out', { id, index: progress.pendingSnapshot });
        progress.pendingSnapshot = 0;
        progress.becomeProbe();
      }
    }
    if (this.electionElapsed >= this.electionTimeoutTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum && !this.quorumActive()) {
        this.logger.warn('failed to contact quorum of nodes, stepping down', { term: this.currentTerm });
        this.becomeFollower(this.currentTerm, '');
        return;
      }
      for (const progress of this.progress.values()) progress.recentActive = false;
      if (this.leadTransferee !== '') {
        this.logger.warn('leadership transfer timed out', { id: this.leadTransferee });
        this.leadTransferee = '';
      }
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  // --- role changes ---------------------------------------------------------------------------

  private reset(term: number): void {
    if (term !== this.currentTerm) {
      this.currentTerm = term;
      this.vote = '';
    }
    this.failPendingReads();
    this.leaderId = '';
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.leadTransferee = '';
    this.votes.clear();
    this.progress.clear();
    this.departing.clear();
    this.resetRandomizedElectionTimeout();
  }

  private becomeFollower(term: number, leaderId: string): void {
    const wasFollower = this.role === 'follower';
    this.reset(term);
    this.role = 'follower';
    this.leaderId = leaderId;
    if (leaderId !== '') this.leaderContactTicks = 0;
    if (!wasFollower) this.logger.info('entering follower state', { term, leader: leaderId });
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'a leader cannot become a pre-candidate');
    // Pre-vote changes neither the term nor the vote (thesis section 9.6).
    this.failPendingReads();
    this.role = 'pre-candidate';
    this.leaderId = '';
    this.votes.clear();
    this.resetRandomizedElectionTimeout();
    this.logger.info('entering pre-candidate state', { term: this.currentTerm });
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'a leader cannot become a candidate');
    this.reset(this.currentTerm + 1);
    this.vote = this.id;
    this.role = 'candidate';
    this.logger.info('entering candidate state', { term: this.currentTerm });
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', 'only a candidate becomes leader');
    this.reset(this.currentTerm);
    this.role = 'leader';
    this.leaderId = this.id;
    this.syncProgress();
    // Every progress counts as active for the first check-quorum round.
    for (const progress of this.progress.values()) progress.recentActive = true;
    // hashicorp/raft and the thesis (section 6.4): a no-op of the new term lets the leader learn
    // which entries are committed, and so commit older-term entries by section 5.4.2.
    this.appendEntry(LOG_TYPE.noop, new Uint8Array(0));
    this.logger.info('entering leader state', { term: this.currentTerm, index: this.log.lastIndex() });
  }

  private campaign(kind: 'pre' | 'real', leadershipTransfer: boolean): void {
    if (kind === 'pre') this.becomePreCandidate();
    else this.becomeCandidate();
    const voteTerm = kind === 'pre' ? this.currentTerm + 1 : this.currentTerm;
    const voters = voterIds(this.configurations.latest.servers);
    if (this.recordVote(this.id, true, voters)) return;
    const lastLogIndex = this.log.lastIndex();
    const lastLogTerm = this.log.lastTerm();
    for (const to of voters) {
      if (to === this.id) continue;
      if (kind === 'pre') this.send({ type: 'requestPreVote', from: this.id, to, term: voteTerm, lastLogIndex, lastLogTerm });
      else this.send({ type: 'requestVote', from: this.id, to, term: voteTerm, lastLogIndex, lastLogTerm, leadershipTransfer });
    }
  }

  /** Records one answer; returns true when the election is decided (and acted on). */
  private recordVote(from: string, granted: boolean, voters: readonly string[]): boolean {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    const result = voteResult(voters, this.votes);
    if (result === 'pending') return false;
    if (result === 'lost') {
      this.becomeFollower(this.currentTerm, '');
      return true;
    }
    if (this.role === 'pre-candidate') {
      this.campaign('real', false);
    } else {
      this.logger.info('election won', { term: this.currentTerm, tally: this.votes.size });
      this.becomeLeader();
      this.broadcastAppend();
    }
    return true;
  }

  // --- message handling -----------------------------------------------------------------------

  /** Term rules shared by every role (etcd Step). Returns false when the message is done with. */
  private stepTerm(message: RaftMessage): boolean {
    if (message.term > this.currentTerm) {
      if (message.type === 'requestVote' || message.type === 'requestPreVote') {
        const force = message.type === 'requestVote' && message.leadershipTransfer;
        const inLease = this.checkQuorum && this.leaderId !== '' && this.electionElapsed < this.electionTimeoutTicks;
        // Leader stickiness (thesis section 4.2.3): a server that heard from a leader within the
        // minimum election timeout ignores votes, so a partitioned or removed server cannot
        // depose a healthy leader.
        if (!force && inLease) return false;
      }
      if (message.type === 'requestPreVote') return true;
      if (message.type === 'requestPreVoteResponse' && message.granted) return true;
      const fromLeader = message.type === 'appendEntries' || message.type === 'heartbeat' || message.type === 'installSnapshot';
      const elapsed = this.electionElapsed;
      this.becomeFollower(message.term, fromLeader ? message.from : '');
      // Raft Figure 2 (and hashicorp/raft): only a current leader or a granted vote resets the
      // election timer. A newer term alone must not, or a candidate whose log is too stale to win
      // could keep a better one from ever timing out (no pre-vote, skewed clocks).
      if (!fromLeader) this.electionElapsed = elapsed;
      return true;
    }
    if (message.term < this.currentTerm) {
      if ((this.checkQuorum || this.preVote) && (message.type === 'appendEntries' || message.type === 'heartbeat')) {
        // A stale leader learns the newer term from this answer and steps down; without it a
        // leader cut off by check-quorum-sticky followers could stay stuck (etcd Step).
        this.send({ type: 'appendEntriesResponse', from: this.id, to: message.from, term: this.currentTerm, success: false, lastLog: 0, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0 });
      } else if (message.type === 'requestPreVote') {
        this.send({ type: 'requestPreVoteResponse', from: this.id, to: message.from, term: this.currentTerm, granted: false });
      } else if (message.type === 'requestVote') {
        // Raft Figure 2: reply false with our term. A candidate behind in terms learns it at once;
        // silence could leave it a step behind a server that keeps campaigning (etcd stays silent).
        this.send({ type: 'requestVoteResponse', from: this.id, to: message.from, term: this.currentTerm, granted: false });
      }
      return false;
    }
    return true;
  }

  /**
   * Grants at most one vote per term, to a candidate whose log is at least as up to date as ours
   * (section 5.4.1). Whether the candidate is in our configuration does not matter (thesis
   * section 4.2.3, etcd): a server with a stale configuration could otherwise refuse the only
   * electable candidate. Removed servers are kept out by pre-vote and leader stickiness instead.
   */
  private handleVoteRequest(message: RequestVote | RequestPreVote): void {
    const isPreVote = message.type === 'requestPreVote';
    const canVote = this.vote === message.from || (this.vote === '' && this.leaderId === '') || (isPreVote && message.term > this.currentTerm);
    const granted = canVote && this.log.isUpToDate(message.lastLogIndex, message.lastLogTerm);
    const term = granted ? message.term : this.currentTerm;
    if (isPreVote) {
      this.send({ type: 'requestPreVoteResponse', from: this.id, to: message.from, term, granted });
      return;
    }
    if (granted) {
      this.electionElapsed = 0;
      this.vote = message.from;
    }
    this.send({ type: 'requestVoteResponse', from: this.id, to: message.from, term, granted });
  }

  private stepLeader(message: RaftMessage): void {
    switch (message.type) {
      case 'appendEntriesResponse':
        this.handleAppendResponse(message);
        return;
      case 'heartbeatResponse':
        this.handleHeartbeatResponse(message);
        return;
      case 'installSnapshotResponse':
        this.handleSnapshotResponse(message);
        return;
      case 'appendEntries':
      case 'heartbeat':
      case 'installSnapshot':
        this.logger.error('another leader in the same term', { term: this.currentTerm, from: message.from });
        return;
      case 'requestVote':
      case 'requestPreVote':
      case 'requestVoteResponse':
      case 'requestPreVoteResponse':
      case 'timeoutNow':
        return;
      default: {
        const never: never = message;
        throw new Error(`unknown message ${String(never)}`);
      }
    }
  }

  private stepCandidate(message: RaftMessage): void {
    switch (message.type) {
      case 'appendEntries':
      case 'heartbeat':
      case 'installSnapshot':
        this.becomeFollower(this.currentTerm, message.from);
        this.stepFollower(message);
        return;
      case 'requestVoteResponse':
        if (this.role === 'candidate') this.recordVote(message.from, message.granted, voterIds(this.configurations.latest.servers));
        return;
      case 'requestPreVoteResponse':
        if (this.role === 'pre-candidate') this.recordVote(message.from, message.granted, voterIds(this.configurations.latest.servers));
        return;
      case 'appendEntriesResponse':
      case 'heartbeatResponse':
      case 'installSnapshotResponse':
      case 'requestVote':
      case 'requestPreVote':
      case 'timeoutNow':
        return;
      default: {
        const never: never = message;
        throw new Error(`unknown message ${String(never)}`);
      }
    }
  }

  private stepFollower(message: RaftMessage): void {
    switch (message.type) {
      case 'appendEntries':
        this.heardFromLeader(message.from);
        this.handleAppendEntries(message);
        return;
      case 'heartbeat':
        this.heardFromLeader(message.from);
        this.log.commitTo(message.leaderCommitIndex);
        this.configurations.committedTo(this.log.commitIndex);
        this.send({ type: 'heartbeatResponse', from: this.id, to: message.from, term: this.currentTerm, readContext: message.readContext });
        return;
      case 'installSnapshot':
        this.heardFromLeader(message.from);
        this.handleInstallSnapshot(message);
        return;
      case 'timeoutNow':
        if (this.isPromotable()) {
          this.logger.info('received leadership transfer request, starting election', { term: this.currentTerm, from: message.from });
          this.campaign('real', true);
        }
        return;
      case 'appendEntriesResponse':
      case 'heartbeatResponse':
      case 'installSnapshotResponse':
      case 'requestVote':
      case 'requestPreVote':
      case 'requestVoteResponse':
      case 'requestPreVoteResponse':
        return;
      default: {
        const never: never = message;
        throw new Error(`unknown message ${String(never)}`);
      }
    }
  }

  private heardFromLeader(from: string): void {
    this.electionElapsed = 0;
    this.leaderId = from;
    this.leaderContactTicks = 0;
  }

  /** Follower side of AppendEntries (Raft section 5.3 receiver rules 2-5). */
  private handleAppendEntries(message: AppendEntries): void {
    const reply = { type: 'appendEntriesResponse', from: this.id, to: message.from, term: this.currentTerm } as const;
    const commit = this.log.commitIndex;
    if (message.prevLogEntry < commit) {
      // Everything through our commit index matches any current leader's log (section 5.4).
      this.send({ ...reply, success: true, lastLog: commit, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0 });
      return;
    }
    if (!entriesAreContiguous(message)) {
      this.logger.warn('dropped AppendEntries with non-contiguous entries', { from: message.from });
      return;
    }
    if (!this.log.matchTerm(message.prevLogEntry, message.prevLogTerm)) {
      const hint = this.log.findConflictByTerm(Math.min(message.prevLogEntry, this.log.lastIndex()), message.prevLogTerm);
      this.send({ ...reply, success: false, lastLog: 0, rejectedIndex: message.prevLogEntry, conflictIndex: hint.index, conflictTerm: hint.term });
      return;
    }
    const conflict = this.log.findConflict(message.entries);
    if (conflict !== 0) {
      assert(this.role !== 'leader', 'a leader never truncates its own log');
      assert(conflict > commit, `conflicting entry ${conflict} at or below commit ${commit}`);
      if (conflict <= this.log.lastIndex()) this.configurations.truncatedFrom(conflict);
      const fresh = message.entries.slice(conflict - message.prevLogEntry - 1);
      this.log.append(fresh);
      this.noteConfigurationEntries(fresh);
    }
    const lastNew = message.prevLogEntry + message.entries.length;
    this.log.commitTo(Math.min(message.leaderCommitIndex, lastNew));
    this.configurations.committedTo(this.log.commitIndex);
    this.send({ ...reply, success: true, lastLog: lastNew, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0 });
  }

  /** Follower side of InstallSnapshot (Raft section 7; etcd restore). */
  private handleInstallSnapshot(message: InstallSnapshot): void {
    const snapshot = message.snapshot;
    const reply = { type: 'installSnapshotResponse', from: this.id, to: message.from, term: this.currentTerm, success: true } as const;
    if (snapshot.index <= this.log.commitIndex) {
      this.send({ ...reply, lastLog: this.log.commitIndex });
      return;
    }
    if (this.log.matchTerm(snapshot.index, snapshot.term)) {
      // We hold the entry the snapshot ends with, so its prefix matches: just learn the commit.
      this.log.commitTo(snapshot.index);
      this.configurations.committedTo(this.log.commitIndex);
      this.send({ ...reply, lastLog: snapshot.index });
      return;
    }
    this.logger.info('installing snapshot', { index: snapshot.index, term: snapshot.term, from: message.from });
    this.log.restore(snapshot);
    this.configurations.restore({ index: snapshot.configurationIndex, servers: snapshot.configuration });
    this.send({ ...reply, lastLog: snapshot.index });
  }

  private handleAppendResponse(message: AppendEntriesResponse): void {
    const progress = this.progress.get(message.from);
    if (progress === undefined) return;
    this.heardFromFollower(progress);
    if (!message.success) {
      // rejectedIndex 0 is the answer to a stale-term message, already handled by the term rules.
      if (message.rejectedIndex === 0) return;
      let hint = message.conflictIndex;
      if (message.conflictTerm > 0) hint = this.log.findConflictByTerm(message.conflictIndex, message.conflictTerm).index;
      if (progress.maybeDecrTo(message.rejectedIndex, hint)) {
        if (progress.state === 'replicate') progress.becomeProbe();
        this.sendAppend(message.from, true);
      }
      return;
    }
    this.acknowledged(message.from, progress, message.lastLog);
  }

  private handleSnapshotResponse(message: InstallSnapshotResponse): void {
    const progress = this.progress.get(message.from);
    if (progress === undefined) return;
    this.heardFromFollower(progress);
    if (!message.success) {
      if (progress.state === 'snapshot') {
        progress.pendingSnapshot = 0;
        progress.becomeProbe();
      }
      return;
    }
    this.acknowledged(message.from, progress, message.lastLog);
    // The snapshot is done with either way; probing finds out whether another one is needed.
    if (progress.state === 'snapshot') {
      progress.becomeProbe();
      this.sendAppend(message.from, true);
    }
  }

  /** A durable match through `index` from a follower (etcd stepLeader MsgAppResp). */
  private acknowledged(id: string, progress: Progress, index: number): void {
    const wasPaused = progress.isPaused();
    if (!progress.maybeUpdate(index)) return;
    const departure = this.departing.get(id);
    if (departure !== undefined) {
      if (progress.match >= departure.index) this.endDeparture(id);
      else this.isAppendDue = true;
      return;
    }
    if (progress.state === 'probe') progress.becomeReplicate();
    else if (progress.state === 'snapshot' && progress.match + 1 >= this.log.firstIndex()) {
      progress.becomeProbe();
      progress.becomeReplicate();
    } else if (progress.state === 'replicate') progress.inflights.freeLE(index);
    if (this.maybeCommit()) {
      this.afterCommit();
      if (this.role !== 'leader') return;
    } else if (wasPaused) {
      this.sendAppend(id, true);
    }
    this.isAppendDue = true;
    if (id === this.leadTransferee && progress.match === this.log.lastIndex()) {
      this.logger.info('transferee caught up, sending TimeoutNow', { id });
      this.send({ type: 'timeoutNow', from: this.id, to: id, term: this.currentTerm });
    }
  }

  private handleHeartbeatResponse(message: HeartbeatResponse): void {
    const progress = this.progress.get(message.from);
    if (progress === undefined) return;
    this.heardFromFollower(progress);
    progress.probeSent = false;
    // An answer while the window is full means a message was lost: free a slot (etcd).
    if (progress.state === 'replicate' && progress.inflights.isFull()) progress.inflights.freeFirstOne();
    if (progress.match < this.log.lastIndex() || progress.state === 'probe') this.sendAppend(message.from, true);
    if (message.readContext > progress.readAck) {
      progress.readAck = message.readContext;
      this.releaseReads();
    }
  }

  private heardFromFollower(progress: Progress): void {
    progress.recentActive = true;
    progress.ticksSinceResponse = 0;
  }

  // --- replication ----------------------------------------------------------------------------

  /** Sends entries (or a probe, or a snapshot) to one follower. Returns whether anything was sent. */
  private sendAppend(to: string, sendIfEmpty: boolean): boolean {
    const progress = this.progress.get(to);
    if (progress === undefined || progress.isPaused()) return false;
    const prevLogEntry = progress.next - 1;
    const prevLogTerm = this.log.term(prevLogEntry);
    const hi = Math.min(this.log.lastIndex() + 1, progress.next + this.maxEntriesPerMsg);
    const entries = prevLogTerm === undefined ? undefined : this.log.entries(progress.next, hi, RAFT_MSG_BYTES_MAX);
    if (prevLogTerm === undefined || entries === undefined) return this.sendSnapshot(to, progress);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: 'appendEntries', from: this.id, to, term: this.currentTerm, prevLogEntry, prevLogTerm, entries, leaderCommitIndex: this.log.commitIndex });
    progress.sentEntries(entries.length, prevLogEntry + entries.length);
    progress.commitSent = this.log.commitIndex;
    return true;
  }

  /**
   * Leader: tells every follower with nothing in flight a commit index it was not sent, with an
   * empty AppendEntries, at the next ready(). The shell calls it a short while after commitment
   * moves (hashicorp/raft's CommitTimeout plays this part), so that under load the commit index
   * rides on the next AppendEntries instead of costing a message and an answer per commit.
   * Heartbeats carry it too, so a follower is never left without it for long.
   */
  broadcastCommit(): void {
    if (this.role !== 'leader') return;
    const commitIndex = this.log.commitIndex;
    if (![...this.progress.values()].some((progress) => progress.commitSent < commitIndex)) return;
    this.isCommitBroadcastDue = true;
    this.isAppendDue = true;
  }

  /**
   * Leader, at ready(): fills every follower's in-flight window with the entries it lacks, then,
   * if broadcastCommit() asked, sends the commit index alone to followers with nothing in flight
   * (a busy one gets it with the AppendEntries its answers bring).
   */
  private sendDueAppends(): void {
    const isCommitBroadcast = this.isCommitBroadcastDue;
    this.isAppendDue = false;
    this.isCommitBroadcastDue = false;
    if (this.role !== 'leader') return;
    for (const [id, progress] of this.progress) {
      let isSent = false;
      while (this.sendAppend(id, false)) isSent = true;
      const isBusy = progress.state === 'replicate' && progress.inflights.size > 0;
      if (isCommitBroadcast && !isSent && !isBusy && progress.commitSent < this.log.commitIndex) this.sendAppend(id, true);
    }
  }

  private sendSnapshot(to: string, progress: Progress): boolean {
    // etcd: a snapshot is only worth sending to a follower known to be alive.
    if (!progress.recentActive) return false;
    const snapshot = this.snapshotMeta;
    assert(snapshot !== undefined, 'log compacted without a snapshot');
    this.logger.info('sending snapshot to follower', { id: to, index: snapshot.index });
    this.send({ type: 'installSnapshot', from: this.id, to, term: this.currentTerm, snapshot });
    progress.becomeSnapshot(snapshot.index);
    return true;
  }

  private broadcastAppend(): void {
    for (const id of this.progress.keys()) this.sendAppend(id, true);
  }

  private broadcastHeartbeat(): void {
    for (const [to, progress] of this.progress) {
      const leaderCommitIndex = Math.min(progress.match, this.log.commitIndex);
      this.send({ type: 'heartbeat', from: this.id, to, term: this.currentTerm, leaderCommitIndex, readContext: this.readSeq });
    }
  }

  /** Leader: append one entry of the current term. */
  private appendEntry(type: LogType, data: Uint8Array): LogEntry {
    assert(this.role === 'leader', 'only a leader appends new entries');
    const entry: LogEntry = { index: this.log.lastIndex() + 1, term: this.currentTerm, type, data };
    assert(this.log.append([entry]) === entry.index, 'a leader only appends at the end of its log');
    this.noteConfigurationEntries([entry]);
    return entry;
  }

  /** Commitment by counting replicas, only for entries of the current term (section 5.4.2). */
  private maybeCommit(): boolean {
    const voters = voterIds(this.configurations.latest.servers);
    if (voters.length === 0) return false;
    const matches = voters.map((id) => (id === this.id ? this.log.persistedIndex() : (this.progress.get(id)?.match ?? 0)));
    const candidate = quorumValue(matches);
    if (candidate <= this.log.commitIndex || this.log.term(candidate) !== this.currentTerm) return false;
    this.log.commitTo(candidate);
    this.configurations.committedTo(candidate);
    return true;
  }

  /** Leader: commitIndex moved. Tells followers, starts deferred reads, steps down if removed. */
  private afterCommit(): void {
    this.isAppendDue = true;
    if (this.readsAwaitingCommit.length > 0 && this.committedInTerm()) {
      const waiting = this.readsAwaitingCommit;
      this.readsAwaitingCommit = [];
      this.startReads(waiting);
    }
    const committed = this.configurations.committed;
    if (committed.index === this.configurations.latest.index && !isVoter(committed.servers, this.id)) {
      // hashicorp/raft: a leader that committed its own removal (or demotion) steps down.
      this.logger.info('removed ourself, stepping down', { term: this.currentTerm, index: committed.index });
      this.becomeFollower(this.currentTerm, '');
    }
  }

  // --- configuration --------------------------------------------------------------------------

  /** Rebuilds the configurations from the snapshot and the log on start-up (hashicorp NewRaft). */
  private loadConfigurations(): void {
    const last = this.log.lastIndex();
    const snapshotIndex = this.snapshotMeta?.index ?? 0;
    for (let lo = Math.max(this.log.firstIndex(), snapshotIndex + 1); lo <= last; ) {
      const batch = this.log.entries(lo, Math.min(last + 1, lo + RAFT_COMMITTED_ENTRIES_PER_READY_MAX), RAFT_COMMITTED_BYTES_PER_READY_MAX);
      assert(batch !== undefined && batch.length > 0, `log unreadable at ${lo}`);
      for (const entry of batch) {
        if (entry.type === LOG_TYPE.configuration) this.configurations.appended(entry.index, decodeConfiguration(entry.data));
      }
      lo += batch.length;
    }
    this.configurations.committedTo(this.log.commitIndex);
  }

  /** Configuration entries take effect when appended (thesis section 4.1). */
  private noteConfigurationEntries(entries: readonly LogEntry[]): void {
    for (const entry of entries) {
      if (entry.type === LOG_TYPE.configuration) this.configurations.appended(entry.index, decodeConfiguration(entry.data));
    }
    if (this.role === 'leader') this.syncProgress();
  }

  /** Leader: one Progress per other server in the latest configuration, plus the departing. */
  private syncProgress(): void {
    const servers = this.configurations.latest.servers;
    const ids = new Set(servers.map((s) => s.id));
    for (const id of [...this.progress.keys()]) {
      if (ids.has(id) || this.departing.has(id)) continue;
      // The removal is not committed yet: the committed configuration still has its address.
      const address = this.configurations.committed.servers.find((s) => s.id === id)?.address ?? '';
      this.departing.set(id, { index: this.configurations.latest.index, address, ticksLeft: this.electionTimeoutTicks });
    }
    for (const server of servers) {
      this.departing.delete(server.id);
      if (server.id === this.id || this.progress.has(server.id)) continue;
      const progress = new Progress(this.log.lastIndex() + 1, this.maxInflightMsgs);
      progress.recentActive = true;
      this.progress.set(server.id, progress);
    }
    if (this.leadTransferee !== '' && (!this.progress.has(this.leadTransferee) || this.departing.has(this.leadTransferee))) this.leadTransferee = '';
  }

  private endDeparture(id: string): void {
    this.departing.delete(id);
    this.progress.delete(id);
  }

  // --- reads ----------------------------------------------------------------------------------

  /** Starts one ReadIndex round for `requestIds` at the current commit index. */
  private startReads(requestIds: readonly number[]): void {
    this.readSeq++;
    for (const requestId of requestIds) this.pendingReads.push({ requestId, index: this.log.commitIndex, seq: this.readSeq });
    this.broadcastHeartbeat();
    this.releaseReads();
  }

  /** Answers every read whose round a majority of voters has echoed in this term. */
  private releaseReads(): void {
    const voters = voterIds(this.configurations.latest.servers);
    const acks = voters.map((id) => (id === this.id ? this.readSeq : (this.progress.get(id)?.readAck ?? 0)));
    const confirmed = quorumValue(acks);
    while (this.pendingReads.length > 0 && this.pendingReads[0]!.seq <= confirmed) {
      const read = this.pendingReads.shift()!;
      this.readStates.push({ ok: true, requestId: read.requestId, index: read.index });
    }
  }

  private failPendingReads(): void {
    const error = new RaftError('ERR_NOT_LEADER', 'leadership lost before the read was confirmed', '');
    for (const read of this.pendingReads) this.readStates.push({ ok: false, requestId: read.requestId, error });
    for (const requestId of this.readsAwaitingCommit) this.readStates.push({ ok: false, requestId, error });
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
  }

  // --- small helpers --------------------------------------------------------------------------

  private send(message: RaftMessage): void {
    assert(this.outbox.length < RAFT_OUTBOX_MSGS_MAX, 'outbox overflow: ready() is not being called');
    this.outbox.push(message);
  }

  private proposalRefusal(): RaftError | undefined {
    if (this.role !== 'leader') return new RaftError('ERR_NOT_LEADER', 'not the leader', this.leaderId);
    if (this.leadTransferee !== '') return new RaftError('ERR_PROPOSALS_DROPPED', 'leadership transfer in progress');
    if (this.log.lastIndex() - this.log.commitIndex >= this.maxUncommittedEntries) {
      return new RaftError('ERR_PROPOSALS_DROPPED', `more than ${this.maxUncommittedEntries} uncommitted entries`);
    }
    return undefined;
  }

  /** Whether this leader has committed an entry of its own term (its no-op at least). */
  private committedInTerm(): boolean {
    return this.log.term(this.log.commitIndex) === this.currentTerm;
  }

  /** Only voters of the latest configuration campaign. */
  private isPromotable(): boolean {
    return isVoter(this.configurations.latest.servers, this.id) && this.log.pendingSnapshot === undefined;
  }

  /** Check-quorum: a majority of voters (counting ourselves) answered in the last election timeout. */
  private quorumActive(): boolean {
    const voters = voterIds(this.configurations.latest.servers);
    const answers = new Map<string, boolean>();
    for (const id of voters) answers.set(id, id === this.id || this.progress.get(id)?.recentActive === true);
    return voteResult(voters, answers) === 'won';
  }

  private mostUpToDateVoter(): string | undefined {
    let best: string | undefined;
    let bestMatch = -1;
    for (const id of voterIds(this.configurations.latest.servers)) {
      const progress = this.progress.get(id);
      if (id === this.id || progress === undefined || progress.match <= bestMatch) continue;
      best = id;
      bestMatch = progress.match;
    }
    return best;
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeoutTicks + Math.floor(this.rng() * this.electionTimeoutTicks);
  }

  private hardState(): HardState {
    return { term: this.currentTerm, vote: this.vote, commitIndex: this.log.commitIndex };
  }

  private softState(): SoftState {
    return { role: this.role, leaderId: this.leaderId };
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commitIndex === b.commitIndex;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leaderId === b.leaderId;
}

function entriesAreContiguous(message: AppendEntries): boolean {
  return message.entries.every((entry, i) => entry.index === message.prevLogEntry + 1 + i && entry.term <= message.term);
}

