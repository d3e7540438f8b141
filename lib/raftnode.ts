// The Raft node: the thin I/O shell that runs one server around the pure core (raft.ts).
//
// It owns everything the core may not touch: a real tick timer, the log, stable and snapshot
// stores, the TCP transport, and the FSM. One processing loop drains the core's Readies, each in
// the order raft.ts's header asks for:
//   1. install a received snapshot: publish its sink (already written while the RPC streamed),
//      restore the FSM from it, then discard the log (a crash in between keeps the snapshot and
//      the old log, whose acknowledged entries the snapshot or the log still hold);
//   2. truncate the log store from entries[0].index and append the entries;
//   3. persist the hard state: CurrentTerm, then LastVoteCand, then LastVoteTerm (hashicorp's
//      keys; the vote counts only when LastVoteTerm equals CurrentTerm, so every crash point
//      between the three fsyncs leaves either the old vote or no vote, never a different one);
//   4. only then send the messages (every one may depend on steps 1-3);
//   5. apply committed entries in order: commands go to Fsm.apply, noop, configuration and
//      barrier entries only advance the applied index; each proposal resolves with its FSM
//      result when its (index, term) is applied, and is rejected with ERR_LEADERSHIP_LOST when
//      another term's entry lands at its index or this server stops being leader;
//   6. serve ReadIndex reads once their index is applied, and call advance.
// Snapshots are checked for on a randomized timer (snapshotIntervalMs to twice that, as
// hashicorp's runSnapshots does, so servers rarely snapshot together and a write burst does not
// snapshot every few seconds) and taken when the applied index is `snapshotThreshold` past the
// last one: the FSM's
// point-in-time stream goes into a SnapshotStore sink outside the loop, then compactTo tells the
// core and the log store drops the prefix the core allows (keeping `trailingLogs`).
//
// Message mapping (core message <-> hashicorp/raft RPC, request/response):
// - appendEntries -> AppendEntries on a per-peer pipeline (keeps order). Its response maps back
//   with rejectedIndex = the request's PrevLogEntry and, on failure, conflictIndex = LastLog,
//   conflictTerm 0 (the wire has no term hint: the leader probes from LastLog, as hashicorp's
//   does). On success lastLog = min(PrevLogEntry + len(Entries), LastLog): a Go follower's
//   LastLog may count stale entries past the request, and ours may answer with its commit index
//   without appending.
// - Our answer to AppendEntries: LastLog = lastLog on success, the conflict hint (at most our last
//   index, so a Go leader's min(next-1, LastLog+1) stays right) on failure.
// - heartbeat -> AppendEntries with no entries, PrevLogEntry 0, PrevLogTerm 0 and
//   LeaderCommitIndex = the core's capped commit (0 is hashicorp's own heartbeat). The ReadIndex
//   context never travels: the sender keeps it with the pending RPC and steps
//   heartbeatResponse{readContext} when that RPC is answered in the same term. The core never
//   sends an empty appendEntries at PrevLogEntry 0 (a leader holds at least its no-op), so an
//   incoming AppendEntries of that shape is always a heartbeat.
// - requestVote / requestPreVote / timeoutNow -> the RPCs of the same names (pre-vote goes to
//   every configured peer: this shell's peers all serve it); installSnapshot -> InstallSnapshot
//   streaming the newest stored snapshot, answered by reportSnapshot and installSnapshotResponse.
// - Incoming RPCs are stepped into the core; its reply (a response-type message to that peer,
//   matched first-in first-out per peer and RPC kind) answers the RPC. The core answers every
//   request in the step that received it, so an RPC still unanswered once the Ready holding that
//   step's messages has been sent gets a refusal (votes: not granted; others: an error string).
// - Peers are named by server ID in the core and by address on the wire: the header's ID
//   (raft >= 1.3.7) when present, otherwise the configuration's server with that address.
//
// Membership changes and leadership transfer are promises over the core's calls: a change
// resolves when its configuration entry is applied, a transfer when this server stops leading.
// Not here: TLS, autopilot, metrics. Known limit: a snapshot being streamed to a follower can be reaped by `retain` if two
// newer snapshots are taken meanwhile; the send then fails and is retried from the newest.
//
// Invariants: at most one Ready is processed at a time, in order; a proposal or read settles
// exactly once; every timer checks `epoch` before acting; nothing is sent before it is durable.
//
// References: etcd-io/raft README "Usage" (the Ready loop); hashicorp/raft api.go, raft.go
// (runFSM, takeSnapshot, installSnapshot), net_transport.go; Raft paper section 7.

import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { NODE_DISK } from './disk.js';
import type { ApplyResult, Fsm } from './fsm.js';
import type { Logger } from './log.js';
import { FileLogStore, FileStableStore, LOG_TYPE, MemoryLogStore, MemoryStableStore, type LogEntry, type LogStore, type StableStore } from './logstore.js';
import { Raft, RaftError, type HardState, type ProposeResult, type RaftErrorCode, type RaftMessage, type Ready } from './raft.js';
import { checkConfiguration, voterIds, type ConfigurationChange } from './raftconfig.js';
import { logStoreStorage } from './raftlog.js';
import { RaftTransport, type AppendPipeline, type RaftRpc, type RaftRpcResponse } from './rafttransport.js';
import { RAFT_PROTOCOL_VERSION, type AppendEntriesRequest, type AppendEntriesResponse as WireAppendResponse, type RpcHeader } from './raftwire.js';
import { flushCoalesced } from './sockets.js';
import { FileSnapshotStore, MemorySnapshotStore, type RaftServer, type SnapshotMeta, type SnapshotSink, type SnapshotStore } from './snapshot.js';

// ---------------------------------------------------------------------------------------------
// Exported types

export type RaftNodeErrorCode = RaftErrorCode | 'ERR_LEADERSHIP_LOST' | 'ERR_SHUTDOWN' | 'ERR_NODE_FAILED' | 'ERR_TRANSFER_TIMEOUT';

/** An operational error of the node. For ERR_NOT_LEADER, `leaderAddress` is the known leader or ''. */
export class RaftNodeError extends Error {
  override readonly name = 'RaftNodeError';
  constructor(
    readonly code: RaftNodeErrorCode,
    message: string,
    readonly leaderAddress = '',
  ) {
    super(message);
  }
}

export interface RaftNodeOptions {
  /** This server's ID (Consul uses the node ID). */
  readonly id: string;
  /** `host:port` to listen on and advertise to peers. */
  readonly address: string;
  /** Where the log (`raft/`), stable store (`raft/stable.bin`) and snapshots (`snapshots/`) live. */
  readonly dataDir?: string;
  /** Keep everything in memory (-dev): required when dataDir is absent. */
  readonly inMemory?: boolean;
  /** Servers to bootstrap with when there is no state at all (hashicorp BootstrapCluster). */
  readonly bootstrap?: readonly RaftServer[];
  /**
   * hashicorp RecoverCluster (an operator's peers.json): before starting, apply every entry of
   * the log to the FSM (committed or not), snapshot that state with this configuration, and
   * empty the log. Refused (throws) on a server with no state.
   */
  readonly recover?: readonly RaftServer[];
  readonly fsm: Fsm;
  readonly logger: Logger;
  /** Consul's raft ElectionTimeout (default 1000 ms, at least ELECTION_TIMEOUT_MS_MIN). */
  readonly electionTimeoutMs?: number;
  /** Applied entries between snapshots (hashicorp SnapshotThreshold; default 16384). */
  readonly snapshotThreshold?: number;
  /** How often the threshold is checked: every [interval, 2 × interval) (hashicorp SnapshotInterval; default 30 s, Consul's raft_snapshot_interval). */
  readonly snapshotIntervalMs?: number;
  /** Entries kept behind a snapshot (hashicorp TrailingLogs; default 10240). */
  readonly trailingLogs?: number;
  /** Uniform in [0, 1) for election timeouts (default Math.random). */
  readonly rng?: () => number;
  /**
   * isExternallyAccepted: do not listen; the owner of the server port hands over connections
   * whose `01` byte it has read, through acceptConnection (lib/rpc.ts).
   */
  readonly transport?: { readonly timeoutMs?: number; readonly isRawRaftPort?: boolean; readonly isExternallyAccepted?: boolean };
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Election timeout ticks (T). The tick is electionTimeoutMs / T, one heartbeat per tick. */
export const RAFT_NODE_ELECTION_TICKS = 10;
/**
 * The smallest election timeout: ten round trips of a loaded loopback with an fsync in each
 * (about 5 ms) stay under it, as the core's simulation asks (docs/reliability.md, Raft core).
 */
export const ELECTION_TIMEOUT_MS_MIN = 50;
export const ELECTION_TIMEOUT_MS_DEFAULT = 1000;
export const SNAPSHOT_THRESHOLD_DEFAULT = 16384;
export const SNAPSHOT_INTERVAL_MS_DEFAULT = 30_000;
/**
 * How long after commitment moves a leader tells idle followers the new commit index
 * (hashicorp/raft's CommitTimeout, 50 ms, plays this part). Short enough that a follower's
 * `?stale` reads trail by milliseconds; long enough that under load the commit index rides on
 * the next AppendEntries instead of an empty one and its answer per commit.
 */
export const COMMIT_BROADCAST_DELAY_MS = 5;
export const TRAILING_LOGS_DEFAULT = 10240;
/** Entries per LogStore.append call (under LOG_APPEND_ENTRIES_MAX). */
const APPEND_BATCH_ENTRIES_MAX = 1024;
/** Incoming RPCs awaiting the core's answer; beyond it new ones are refused. */
export const RAFT_NODE_PENDING_RPCS_MAX = 4096;

const KEY_CURRENT_TERM = 'CurrentTerm';
const KEY_LAST_VOTE_TERM = 'LastVoteTerm';
const KEY_LAST_VOTE_CAND = 'LastVoteCand';

// ---------------------------------------------------------------------------------------------
// API

type ReplyKind = 'appendEntries' | 'requestVote' | 'requestPreVote' | 'installSnapshot';

interface PendingRpc {
  readonly kind: ReplyKind;
  readonly from: string;
  /** The number of the ready() call whose messages include this step's answer. */
  readonly readySeq: number;
  readonly resolve: (response: RaftRpcResponse) => void;
  readonly reject: (error: Error) => void;
}

interface Proposal {
  readonly term: number;
  readonly resolve: (result: ApplyResult) => void;
  readonly reject: (error: Error) => void;
}

interface Stores {
  readonly log: LogStore;
  readonly stable: StableStore;
  readonly snapshots: SnapshotStore;
}

/** One Raft server: the core, its stores, its transport and its timer. */
export class RaftNode {
  readonly id: string;
  readonly address: string;
  readonly tickMs: number;
  private readonly raft: Raft;
  private readonly fsm: Fsm;
  private readonly stores: Stores;
  private readonly logger: Logger;
  private readonly snapshotThreshold: number;
  private readonly snapshotIntervalMs: number;
  private readonly rng: () => number;
  private snapshotTimer: ReturnType<typeof setTimeout> | undefined;
  private commitBroadcastTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set by the snapshot timer; the next maybeSnapshot checks the threshold once. */
  private isSnapshotDue = false;
  private transport!: RaftTransport;
  private timer: ReturnType<typeof setInterval> | undefined;
  /** Bumped by shutdown: timer callbacks and RPC callbacks from an older epoch do nothing. */
  private epoch = 0;
  private isClosed = false;
  private failure: Error | undefined;

  private isLoopRunning = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readyCount = 0;
  private persisted: { term: number; vote: string };
  /** Invariant: the index of the last entry handed to the FSM (or restored). */
  private appliedIndex: number;
  private appliedTerm: number;
  private lastSnapshotIndex: number;
  private isSnapshotting = false;

  private readonly proposals = new Map<number, Proposal>();
  private nextReadId = 1;
  private readonly reads = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  /** Reads confirmed by a quorum, waiting for the FSM to reach their index. */
  private readsAwaitingApply: { index: number; resolve: () => void }[] = [];
  private readonly pendingRpcs: PendingRpc[] = [];
  private incomingSnapshot: { meta: SnapshotMeta; sink: SnapshotSink } | undefined;
  private readonly pipelines = new Map<string, AppendPipeline>();
  private readonly snapshotSends = new Set<string>();
  private readonly leadershipListeners = new Set<(isLeader: boolean) => void>();
  private wasLeader = false;
  private readonly transferWaiters = new Set<{ resolve: () => void; reject: (error: Error) => void; timer: ReturnType<typeof setTimeout> }>();

  private constructor(options: RaftNodeOptions, stores: Stores, raft: Raft, restored: { index: number; term: number }, tickMs: number) {
    this.id = options.id;
    this.address = options.address;
    this.fsm = options.fsm;
    this.logger = options.logger;
    this.stores = stores;
    this.raft = raft;
    this.tickMs = tickMs;
    this.snapshotThreshold = options.snapshotThreshold ?? SNAPSHOT_THRESHOLD_DEFAULT;
    this.snapshotIntervalMs = options.snapshotIntervalMs ?? SNAPSHOT_INTERVAL_MS_DEFAULT;
    this.rng = options.rng ?? Math.random;
    this.appliedIndex = restored.index;
    this.appliedTerm = restored.term;
    this.lastSnapshotIndex = restored.index;
    this.persisted = { term: raft.term, vote: raft.status().vote };
  }

  /**
   * Opens (or creates) the stores, restores the FSM from the newest snapshot, bootstraps a new
   * cluster if asked and there is no state, starts listening and ticking.
   */
  static async start(options: RaftNodeOptions): Promise<RaftNode> {
    const electionTimeoutMs = options.electionTimeoutMs ?? ELECTION_TIMEOUT_MS_DEFAULT;
    assert(electionTimeoutMs >= ELECTION_TIMEOUT_MS_MIN, `electionTimeoutMs must be at least ${ELECTION_TIMEOUT_MS_MIN}`);
    assert(options.dataDir !== undefined || options.inMemory === true, 'a raft node needs dataDir or inMemory');
    const tickMs = Math.floor(electionTimeoutMs / RAFT_NODE_ELECTION_TICKS);
    const stores = await openStores(options);
    let snapshot = await restoreNewestSnapshot(stores.snapshots, options.fsm, options.logger);
    if (options.recover !== undefined) {
      await recoverCluster(stores, options.fsm, snapshot, options.recover, options.logger);
      snapshot = await restoreNewestSnapshot(stores.snapshots, options.fsm, options.logger);
    }
    const hardState = readHardState(stores.stable);
    const raft = new Raft({
      id: options.id,
      storage: logStoreStorage(stores.log),
      rng: options.rng ?? Math.random,
      electionTimeoutTicks: RAFT_NODE_ELECTION_TICKS,
      heartbeatTicks: 1,
      hardState,
      ...(snapshot === undefined ? {} : { snapshot }),
      trailingLogs: options.trailingLogs ?? TRAILING_LOGS_DEFAULT,
      logger: options.logger.named('core'),
    });
    if (options.bootstrap !== undefined && hardState.term === 0 && stores.log.lastIndex() === 0 && snapshot === undefined) {
      const result = raft.bootstrap(options.bootstrap);
      if (!result.ok) throw result.error;
    }
    const node = new RaftNode(options, stores, raft, { index: snapshot?.index ?? 0, term: snapshot?.term ?? 0 }, tickMs);
    const { host, port } = splitAddress(options.address);
    const transportOptions = {
      handler: (rpc: RaftRpc) => node.handle(rpc),
      logger: options.logger.named('transport'),
      ...(options.transport?.timeoutMs === undefined ? {} : { timeoutMs: options.transport.timeoutMs }),
      ...(options.transport?.isRawRaftPort === undefined ? {} : { isRawRaftPort: options.transport.isRawRaftPort }),
    };
    node.transport = options.transport?.isExternallyAccepted === true ? RaftTransport.unbound(transportOptions) : await RaftTransport.listen({ host, port, ...transportOptions });
    const epoch = node.epoch;
    node.timer = setInterval(() => node.onTick(epoch), tickMs);
    node.armSnapshotTimer(epoch);
    node.logger.info('raft node started', { id: node.id, address: node.address, tickMs, index: raft.lastIndex, term: raft.term });
    node.kick();
    return node;
  }

  /** Proposes a command; resolves with the FSM's result once it is committed and applied here. */
  apply(command: Uint8Array): Promise<ApplyResult> {
    const refusal = this.refusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    return this.untilApplied(this.raft.propose(command));
  }

  /**
   * Proposes a one-server membership change (hashicorp AddVoter, AddNonvoter, RemoveServer,
   * DemoteVoter); resolves once the new configuration is committed and applied here. Refused
   * with ERR_CONFIGURATION_PENDING while another change is uncommitted.
   */
  changeConfiguration(change: ConfigurationChange): Promise<void> {
    const refusal = this.refusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    return this.untilApplied(this.raft.changeConfiguration(change)).then(() => undefined);
  }

  /** Settles with the entry's FSM result once (index, term) is applied, or the core's refusal. */
  private untilApplied(result: ProposeResult): Promise<ApplyResult> {
    if (!result.ok) return Promise.reject(this.nodeError(result.error));
    return new Promise<ApplyResult>((resolve, reject) => {
      this.proposals.set(result.index, { term: result.term, resolve, reject });
      this.kick();
    });
  }

  /** hashicorp RemoveServer: drops `id` from the configuration (what operator raft peer removal uses). */
  removeServer(id: string): Promise<void> {
    return this.changeConfiguration({ op: 'removeServer', id });
  }

  /**
   * hashicorp LeadershipTransfer: brings `targetId` (default: the most up-to-date voter) up to
   * date and tells it to campaign (TimeoutNow). Resolves once this server is no longer leader;
   * rejects with ERR_TRANSFER_TIMEOUT if it still leads after two election timeouts (the core
   * abandons a transfer after one).
   */
  transferLeadership(targetId?: string): Promise<void> {
    const refusal = this.refusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    const result = this.raft.transferLeadership(targetId);
    if (!result.ok) return Promise.reject(this.nodeError(result.error));
    this.kick();
    return new Promise<void>((resolve, reject) => {
      const waiter = { resolve, reject, timer: setTimeout(() => {
        this.transferWaiters.delete(waiter);
        reject(new RaftNodeError('ERR_TRANSFER_TIMEOUT', 'leadership transfer timed out'));
      }, 2 * this.tickMs * RAFT_NODE_ELECTION_TICKS) };
      this.transferWaiters.add(waiter);
    });
  }

  /** Resolves once a quorum confirmed this server is leader and the FSM applied the read index. */
  readIndex(): Promise<void> {
    const refusal = this.refusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    const requestId = this.nextReadId++;
    const result = this.raft.readIndex(requestId);
    if (!result.ok) return Promise.reject(this.nodeError(result.error));
    return new Promise<void>((resolve, reject) => {
      this.reads.set(requestId, { resolve, reject });
      this.kick();
    });
  }

  /**
   * Calls `listener(isLeader)` each time this server becomes leader or stops leading (hashicorp
   * LeaderCh), outside the Ready loop. Leader duties should await readIndex() (a barrier) before
   * reading the state. Returns a function that removes the listener.
   */
  onLeadershipChange(listener: (isLeader: boolean) => void): () => void {
    this.leadershipListeners.add(listener);
    return () => this.leadershipListeners.delete(listener);
  }

  /** hashicorp VerifyLeader: the same round as readIndex (for ?consistent). */
  verifyLeader(): Promise<void> {
    return this.readIndex();
  }

  /** The known leader's address, or '' (for /v1/status/leader). */
  leader(): string {
    const leaderId = this.raft.leader;
    if (leaderId === '') return '';
    return this.addressOf(leaderId) ?? '';
  }

  get isLeader(): boolean {
    return this.raft.state === 'leader';
  }

  /** Leader whose FSM has applied an entry of its own term: it holds every earlier commit. */
  get isReadyForReads(): boolean {
    return this.raft.state === 'leader' && this.appliedTerm === this.raft.term;
  }

  /** Addresses of the voters in the configuration in force (for /v1/status/peers). */
  peers(): string[] {
    const servers = this.raft.configuration.servers;
    return voterIds(servers).map((id) => servers.find((s) => s.id === id)!.address);
  }

  /** Milliseconds since the leader was last heard from: 0 on the leader, undefined if never. */
  get lastContactMs(): number | undefined {
    const ticks = this.raft.lastContactTicks;
    return ticks === undefined ? undefined : ticks * this.tickMs;
  }

  /** The index of the last entry applied to the FSM. */
  get lastApplied(): number {
    return this.appliedIndex;
  }

  /** The core's status, for /v1/operator/raft and tests. */
  status(): ReturnType<Raft['status']> {
    return this.raft.status();
  }

  /**
   * hashicorp HasExistingState: a term, a log entry or a snapshot. A server with state never
   * bootstraps again (Consul then disables bootstrap_expect).
   */
  get hasExistingState(): boolean {
    return this.raft.term > 0 || this.raft.lastIndex > 0 || this.lastSnapshotIndex > 0;
  }

  /**
   * hashicorp BootstrapCluster on a running node: writes the first configuration if this
   * server has no state at all. Every server bootstrapped with the same list writes the same
   * entry 1 at term 1, so several may do it. Throws the core's ERR_CANT_BOOTSTRAP otherwise.
   */
  bootstrap(servers: readonly RaftServer[]): void {
    const refusal = this.refusal();
    if (refusal !== undefined) throw refusal;
    const result = this.raft.bootstrap(servers);
    if (!result.ok) throw this.nodeError(result.error);
    this.logger.info('bootstrapped cluster', { servers: servers.length });
    this.kick();
  }

  /** Serves a server-port connection whose `01` byte was read; `head` holds the bytes after it. */
  acceptConnection(socket: Socket, head?: Uint8Array): void {
    this.transport.acceptConnection(socket, { isPrefixRead: true, ...(head === undefined ? {} : { head }) });
  }

  /** Stops ticking, fails everything waiting, closes the transport and the stores. */
  async shutdown(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    this.epoch++;
    if (this.timer !== undefined) clearInterval(this.timer);
    clearTimeout(this.snapshotTimer);
    clearTimeout(this.commitBroadcastTimer);
    this.failAll(new RaftNodeError('ERR_SHUTDOWN', 'raft node is shut down'));
    this.noteLeadership();
    for (const pipeline of this.pipelines.values()) pipeline.close();
    this.pipelines.clear();
    await this.transport.close();
    await this.loopDone;
    await this.incomingSnapshot?.sink.cancel();
    this.incomingSnapshot = undefined;
    await this.stores.log.close();
    await this.stores.stable.close();
    this.logger.info('raft node stopped', { id: this.id });
  }

  // --- the processing loop ----------------------------------------------------------------------

  private onTick(epoch: number): void {
    if (epoch !== this.epoch || this.isClosed) return;
    this.raft.tick();
    this.kick();
  }

  /**
   * Runs the loop unless it is running (it re-checks hasReady before it stops). An idle loop
   * starts on the next setImmediate, not at once: every proposal and message that arrived in the
   * same I/O phase then goes into one Ready, one append and one fsync.
   */
  private kick(): void {
    if (this.isLoopRunning || this.isClosed || this.failure !== undefined) return;
    this.isLoopRunning = true;
    let started: () => void = () => undefined;
    this.loopDone = new Promise<void>((resolve) => (started = resolve))
      .then(() => this.loop())
      .finally(() => {
        this.isLoopRunning = false;
      });
    setImmediate(started);
  }

  private async loop(): Promise<void> {
    try {
      while (!this.isClosed && this.raft.hasReady()) {
        const ready = this.raft.ready();
        this.readyCount++;
        await this.handleReady(ready, this.readyCount);
        this.raft.advance(ready);
        this.maybeSnapshot();
      }
      // Nothing more to send: every stepped RPC without an answer gets a refusal now.
      this.answerUnanswered(Number.MAX_SAFE_INTEGER);
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private async handleReady(ready: Ready, seq: number): Promise<void> {
    // A leader may replicate entries before its own copy is durable (Raft thesis 10.2.1): the
    // core counts the leader's copy toward commitment only after advance(). Only in a Ready that
    // changes no term or vote, though: a term or vote must be durable before anyone hears of it,
    // or a leader restarted without them could vote a second time in the same term.
    const isEarlySend = this.raft.state === 'leader' && ready.snapshot === undefined && !this.changesTermOrVote(ready.hardState);
    const early: RaftMessage[] = isEarlySend ? ready.messages.filter((message) => message.type === 'appendEntries') : [];
    for (const message of early) this.sendOrDrop(message);
    // The log store's fsync below blocks the loop: the early messages must be on the wire first.
    if (early.length > 0) flushCoalesced();
    if (ready.snapshot !== undefined) await this.installSnapshot(ready.snapshot);
    if (ready.entries.length > 0) await this.appendEntries(ready.entries);
    if (ready.hardState !== undefined) await this.persistHardState(ready.hardState);
    if (this.isClosed) return;
    for (const message of ready.messages) if (!early.includes(message)) this.sendOrDrop(message);
    this.answerUnanswered(seq);
    for (const entry of ready.committedEntries) this.applyEntry(entry);
    if (ready.hardState !== undefined && this.raft.state === 'leader') this.scheduleCommitBroadcast();
    this.serveReads(ready);
    if (ready.softState !== undefined) this.logger.info('raft state changed', { role: ready.softState.role, leader: ready.softState.leaderId, term: this.raft.term });
    if (this.raft.state !== 'leader') this.settleTransfers(undefined);
    this.noteLeadership();
    if (this.raft.state !== 'leader' && this.proposals.size > 0) {
      const error = new RaftNodeError('ERR_LEADERSHIP_LOST', 'leadership lost while the command was being committed', this.leader());
      for (const proposal of this.proposals.values()) proposal.reject(error);
      this.proposals.clear();
    }
  }

  private async installSnapshot(meta: SnapshotMeta): Promise<void> {
    const incoming = this.incomingSnapshot;
    assert(incoming !== undefined && incoming.meta.id === meta.id, `Ready snapshot ${meta.id} was not received`);
    this.incomingSnapshot = undefined;
    const published = await incoming.sink.close();
    const { data } = await this.stores.snapshots.open(published.id);
    await this.fsm.restore(data, meta.index);
    await this.stores.log.compactPrefix(Math.max(meta.index, this.stores.log.lastIndex()));
    this.appliedIndex = meta.index;
    this.appliedTerm = meta.term;
    this.lastSnapshotIndex = meta.index;
    this.logger.info('installed snapshot', { index: meta.index, term: meta.term, id: published.id });
  }

  private async appendEntries(entries: readonly LogEntry[]): Promise<void> {
    const log = this.stores.log;
    const first = entries[0]!.index;
    if (log.lastIndex() !== 0 && first <= log.lastIndex()) await log.truncateSuffix(first);
    for (let start = 0; start < entries.length; start += APPEND_BATCH_ENTRIES_MAX) {
      await log.append(entries.slice(start, start + APPEND_BATCH_ENTRIES_MAX));
    }
  }

  private changesTermOrVote(hard: HardState | undefined): boolean {
    return hard !== undefined && (hard.term !== this.persisted.term || (hard.vote !== '' && hard.vote !== this.persisted.vote));
  }

  /** CurrentTerm, then LastVoteCand, then LastVoteTerm: see the header for why this order. */
  private async persistHardState(hard: HardState): Promise<void> {
    const stable = this.stores.stable;
    if (hard.term !== this.persisted.term) await stable.setUint64(KEY_CURRENT_TERM, hard.term);
    if (hard.vote !== '' && (hard.vote !== this.persisted.vote || hard.term !== this.persisted.term)) {
      await stable.set(KEY_LAST_VOTE_CAND, new TextEncoder().encode(hard.vote));
      await stable.setUint64(KEY_LAST_VOTE_TERM, hard.term);
    }
    this.persisted = { term: hard.term, vote: hard.vote };
  }

  private applyEntry(entry: LogEntry): void {
    assert(entry.index === this.appliedIndex + 1, `applying ${entry.index} after ${this.appliedIndex}`);
    let result: ApplyResult = { ok: true, value: undefined };
    if (entry.type === LOG_TYPE.command) result = this.fsm.apply(entry.index, entry.data);
    this.appliedIndex = entry.index;
    this.appliedTerm = entry.term;
    const proposal = this.proposals.get(entry.index);
    if (proposal === undefined) return;
    this.proposals.delete(entry.index);
    if (proposal.term === entry.term) proposal.resolve(result);
    else proposal.reject(new RaftNodeError('ERR_LEADERSHIP_LOST', `entry ${entry.index} was overwritten by term ${entry.term}`, this.leader()));
  }

  private serveReads(ready: Ready): void {
    for (const state of ready.readStates) {
      const read = this.reads.get(state.requestId);
      if (read === undefined) continue;
      this.reads.delete(state.requestId);
      if (!state.ok) read.reject(this.nodeError(state.error));
      else this.readsAwaitingApply.push({ index: state.index, resolve: read.resolve });
    }
    const waiting = this.readsAwaitingApply;
    this.readsAwaitingApply = waiting.filter((read) => read.index > this.appliedIndex);
    for (const read of waiting) if (read.index <= this.appliedIndex) read.resolve();
  }

  // --- snapshots ----------------------------------------------------------------------------------

  private scheduleCommitBroadcast(): void {
    if (this.commitBroadcastTimer !== undefined) return;
    const epoch = this.epoch;
    this.commitBroadcastTimer = setTimeout(() => {
      this.commitBroadcastTimer = undefined;
      if (epoch !== this.epoch || this.isClosed) return;
      this.raft.broadcastCommit();
      this.kick();
    }, COMMIT_BROADCAST_DELAY_MS);
  }

  private armSnapshotTimer(epoch: number): void {
    const delayMs = this.snapshotIntervalMs * (1 + this.rng());
    this.snapshotTimer = setTimeout(() => {
      if (epoch !== this.epoch || this.isClosed) return;
      this.isSnapshotDue = true;
      // A running loop checks after its current Ready; an idle one is checked now.
      if (!this.isLoopRunning) this.maybeSnapshot();
      this.armSnapshotTimer(epoch);
    }, delayMs);
  }

  private maybeSnapshot(): void {
    if (!this.isSnapshotDue) return;
    this.isSnapshotDue = false;
    if (this.isSnapshotting || this.appliedIndex - this.lastSnapshotIndex < this.snapshotThreshold) return;
    const configuration = this.raft.snapshotConfiguration(this.appliedIndex);
    if (configuration === undefined) return;
    this.isSnapshotting = true;
    const index = this.appliedIndex;
    const term = this.appliedTerm;
    // Taken now, between Readies: the memdb snapshot holds exactly the entries through `index`.
    const image = this.fsm.snapshot();
    const epoch = this.epoch;
    void writeSnapshot(this.stores.snapshots, { index, term, configuration: configuration.servers, configurationIndex: configuration.index, version: 1 }, image)
      .then((meta) => {
        if (epoch !== this.epoch) return;
        this.lastSnapshotIndex = meta.index;
        const compactThrough = this.raft.compactTo(meta);
        this.logger.info('snapshot complete', { index: meta.index, compactThrough });
        return compactThrough > 0 ? this.stores.log.compactPrefix(compactThrough) : undefined;
      })
      .catch((error: unknown) => this.logger.error('failed to take snapshot', { error: String(error) }))
      .finally(() => {
        this.isSnapshotting = false;
      });
  }

  // --- outgoing messages --------------------------------------------------------------------------

  /** A message that cannot even be handed to the transport (bad address, closed) is lost, as Raft allows. */
  private sendOrDrop(message: RaftMessage): void {
    try {
      this.send(message);
    } catch (error) {
      if (error instanceof assert.AssertionError) throw error;
      this.logger.warn('raft message dropped', { id: message.to, type: message.type, error: String(error) });
    }
  }

  private send(message: RaftMessage): void {
    switch (message.type) {
      case 'appendEntriesResponse':
      case 'heartbeatResponse':
      case 'requestVoteResponse':
      case 'requestPreVoteResponse':
      case 'installSnapshotResponse':
        this.answer(message);
        return;
      default:
        break;
    }
    const address = this.addressOf(message.to);
    if (address === undefined) {
      this.logger.warn('no address for peer, message dropped', { id: message.to, type: message.type });
      return;
    }
    const header = this.header();
    switch (message.type) {
      case 'appendEntries': {
        assert(message.prevLogEntry !== 0 || message.entries.length > 0, 'an empty AppendEntries at 0 would read as a heartbeat');
        const request: AppendEntriesRequest = { ...header, term: message.term, leader: this.address, prevLogEntry: message.prevLogEntry, prevLogTerm: message.prevLogTerm, entries: message.entries, leaderCommitIndex: message.leaderCommitIndex };
        this.deliver(message.to, this.pipelineTo(address).appendEntries(request), (r) => appendResponse(message.to, this.id, request, r));
        return;
      }
      case 'heartbeat': {
        const request: AppendEntriesRequest = { ...header, term: message.term, leader: this.address, prevLogEntry: 0, prevLogTerm: 0, entries: [], leaderCommitIndex: message.leaderCommitIndex };
        this.deliver(message.to, this.transport.appendEntries(address, request), (r) => ({ type: 'heartbeatResponse', from: message.to, to: this.id, term: r.term, readContext: message.readContext }));
        return;
      }
      case 'requestVote': {
        const request = { ...header, term: message.term, candidate: this.address, lastLogIndex: message.lastLogIndex, lastLogTerm: message.lastLogTerm, leadershipTransfer: message.leadershipTransfer };
        this.deliver(message.to, this.transport.requestVote(address, request), (r) => ({ type: 'requestVoteResponse', from: message.to, to: this.id, term: r.term, granted: r.granted }));
        return;
      }
      case 'requestPreVote': {
        this.transport.setPreVoteSupported(address, true);
        const request = { ...header, term: message.term, lastLogIndex: message.lastLogIndex, lastLogTerm: message.lastLogTerm };
        this.deliver(message.to, this.transport.requestPreVote(address, request), (r) => ({ type: 'requestPreVoteResponse', from: message.to, to: this.id, term: r.term, granted: r.granted }));
        return;
      }
      case 'timeoutNow':
        this.deliver(message.to, this.transport.timeoutNow(address, header), () => undefined);
        return;
      case 'installSnapshot':
        void this.sendSnapshot(message.to, address, message.term, message.snapshot);
        return;
      default: {
        const never: never = message;
        throw new Error(`unknown message ${String(never)}`);
      }
    }
  }

  /** Steps the mapped answer of an outgoing RPC; a transport failure is a lost message. */
  private deliver<T>(peer: string, call: Promise<T>, map: (response: T) => RaftMessage | undefined): void {
    const epoch = this.epoch;
    call.then(
      (response) => {
        if (epoch !== this.epoch || this.failure !== undefined) return;
        const message = map(response);
        if (message === undefined) return;
        this.raft.step(message);
        this.kick();
      },
      (error: unknown) => {
        if (epoch === this.epoch) this.logger.debug('raft rpc failed', { id: peer, error: String(error) });
      },
    );
  }

  private pipelineTo(address: string): AppendPipeline {
    let pipeline = this.pipelines.get(address);
    if (pipeline === undefined || pipeline.isClosed) {
      pipeline = this.transport.appendEntriesPipeline(address);
      this.pipelines.set(address, pipeline);
    }
    return pipeline;
  }

  private async sendSnapshot(to: string, address: string, term: number, meta: SnapshotMeta): Promise<void> {
    if (this.snapshotSends.has(to)) return;
    this.snapshotSends.add(to);
    const epoch = this.epoch;
    let message: RaftMessage | undefined;
    try {
      const { data } = await this.stores.snapshots.open(meta.id);
      const request = { ...this.header(), snapshotVersion: meta.version, term, leader: this.address, lastLogIndex: meta.index, lastLogTerm: meta.term, peers: null, configuration: meta.configuration, configurationIndex: meta.configurationIndex, size: meta.size };
      const response = await this.transport.installSnapshot(address, request, data);
      message = { type: 'installSnapshotResponse', from: to, to: this.id, term: response.term, success: response.success, lastLog: response.success ? meta.index : 0 };
      this.logger.info('sent snapshot to follower', { id: to, index: meta.index, success: response.success });
    } catch (error) {
      this.logger.warn('failed to send snapshot', { id: to, index: meta.index, error: String(error) });
    } finally {
      this.snapshotSends.delete(to);
    }
    if (epoch !== this.epoch || this.failure !== undefined) return;
    if (message === undefined) this.raft.reportSnapshot(to, false);
    else this.raft.step(message);
    this.kick();
  }

  // --- incoming RPCs ------------------------------------------------------------------------------

  private async handle(rpc: RaftRpc): Promise<RaftRpcResponse> {
    const refusal = this.refusal();
    if (refusal !== undefined) throw refusal;
    const from = this.senderOf(rpc);
    switch (rpc.kind) {
      case 'appendEntries': {
        const r = rpc.request;
        if (r.prevLogEntry === 0 && r.prevLogTerm === 0 && r.entries.length === 0) {
          // Safe only because senders cap it (ours at the follower's match, hashicorp's is 0).
          const leaderCommitIndex = Math.min(r.leaderCommitIndex, this.raft.lastIndex);
          return this.stepAndWait('appendEntries', from, { type: 'heartbeat', from, to: this.id, term: r.term, leaderCommitIndex, readContext: 0 });
        }
        const entries = r.entries.map((e): LogEntry => ({ index: e.index, term: e.term, type: e.type, data: e.data }));
        return this.stepAndWait('appendEntries', from, { type: 'appendEntries', from, to: this.id, term: r.term, prevLogEntry: r.prevLogEntry, prevLogTerm: r.prevLogTerm, entries, leaderCommitIndex: r.leaderCommitIndex });
      }
      case 'requestVote': {
        const r = rpc.request;
        return this.stepAndWait('requestVote', from, { type: 'requestVote', from, to: this.id, term: r.term, lastLogIndex: r.lastLogIndex, lastLogTerm: r.lastLogTerm, leadershipTransfer: r.leadershipTransfer });
      }
      case 'requestPreVote': {
        const r = rpc.request;
        return this.stepAndWait('requestPreVote', from, { type: 'requestPreVote', from, to: this.id, term: r.term, lastLogIndex: r.lastLogIndex, lastLogTerm: r.lastLogTerm });
      }
      case 'timeoutNow':
        this.raft.step({ type: 'timeoutNow', from, to: this.id, term: this.raft.term });
        this.kick();
        return this.header();
      case 'installSnapshot':
        return this.receiveSnapshot(from, rpc);
      default: {
        const never: never = rpc;
        throw new Error(`unknown rpc ${String(never)}`);
      }
    }
  }

  /** Writes the streamed data into a sink, then steps InstallSnapshot; the Ready publishes it. */
  private async receiveSnapshot(from: string, rpc: Extract<RaftRpc, { kind: 'installSnapshot' }>): Promise<RaftRpcResponse> {
    const r = rpc.request;
    if (this.incomingSnapshot !== undefined) throw new Error('another snapshot is being installed');
    const sink = await this.stores.snapshots.create({ index: r.lastLogIndex, term: r.lastLogTerm, configuration: r.configuration, configurationIndex: r.configurationIndex, version: r.snapshotVersion });
    try {
      for await (const chunk of rpc.data) await sink.write(chunk);
    } catch (error) {
      await sink.cancel();
      throw error;
    }
    const refusal = this.refusal();
    if (refusal !== undefined || this.incomingSnapshot !== undefined) {
      await sink.cancel();
      throw refusal ?? new Error('another snapshot is being installed');
    }
    const meta: SnapshotMeta = { id: sink.id, index: r.lastLogIndex, term: r.lastLogTerm, configuration: r.configuration, configurationIndex: r.configurationIndex, size: r.size, version: r.snapshotVersion };
    this.incomingSnapshot = { meta, sink };
    try {
      return await this.stepAndWait('installSnapshot', from, { type: 'installSnapshot', from, to: this.id, term: r.term, snapshot: meta });
    } finally {
      // Not taken by a Ready (stale term, or already covered): discard it.
      if (this.incomingSnapshot?.sink === sink) {
        this.incomingSnapshot = undefined;
        await sink.cancel();
      }
    }
  }

  private stepAndWait(kind: ReplyKind, from: string, message: RaftMessage): Promise<RaftRpcResponse> {
    if (this.pendingRpcs.length >= RAFT_NODE_PENDING_RPCS_MAX) return Promise.reject(new Error(`more than ${RAFT_NODE_PENDING_RPCS_MAX} raft RPCs pending`));
    return new Promise<RaftRpcResponse>((resolve, reject) => {
      this.pendingRpcs.push({ kind, from, readySeq: this.readyCount + 1, resolve, reject });
      this.raft.step(message);
      this.kick();
    });
  }

  /** Answers the oldest pending RPC from message.to of the matching kind. */
  private answer(message: Extract<RaftMessage, { type: `${string}Response` }>): void {
    const kind: ReplyKind = message.type === 'heartbeatResponse' || message.type === 'appendEntriesResponse' ? 'appendEntries' : message.type === 'requestVoteResponse' ? 'requestVote' : message.type === 'requestPreVoteResponse' ? 'requestPreVote' : 'installSnapshot';
    const at = this.pendingRpcs.findIndex((p) => p.kind === kind && p.from === message.to);
    if (at < 0) {
      this.logger.debug('core answer without a pending rpc', { id: message.to, type: message.type });
      return;
    }
    const [pending] = this.pendingRpcs.splice(at, 1);
    pending!.resolve(this.wireAnswer(message));
  }

  private wireAnswer(message: Extract<RaftMessage, { type: `${string}Response` }>): RaftRpcResponse {
    const header = this.header();
    switch (message.type) {
      case 'appendEntriesResponse':
        return { ...header, term: message.term, success: message.success, lastLog: message.success ? message.lastLog : message.rejectedIndex === 0 ? this.raft.lastIndex : message.conflictIndex, noRetryBackoff: false };
      case 'heartbeatResponse':
        return { ...header, term: message.term, success: true, lastLog: this.raft.lastIndex, noRetryBackoff: false };
      case 'requestVoteResponse':
        return { ...header, term: message.term, peers: null, granted: message.granted };
      case 'requestPreVoteResponse':
        return { ...header, term: message.term, granted: message.granted };
      case 'installSnapshotResponse':
        return { ...header, term: message.term, success: message.success };
      default: {
        const never: never = message;
        throw new Error(`unknown answer ${String(never)}`);
      }
    }
  }

  /** RPCs whose step's messages (Ready `seq` or earlier) are all sent and held no answer. */
  private answerUnanswered(seq: number): void {
    for (let i = 0; i < this.pendingRpcs.length; ) {
      const pending = this.pendingRpcs[i]!;
      if (pending.readySeq > seq) {
        i++;
        continue;
      }
      this.pendingRpcs.splice(i, 1);
      const term = this.raft.term;
      if (pending.kind === 'requestVote') pending.resolve({ ...this.header(), term, peers: null, granted: false });
      else if (pending.kind === 'requestPreVote') pending.resolve({ ...this.header(), term, granted: false });
      else pending.reject(new Error(`${pending.kind} refused by raft (term ${term})`));
    }
  }

  // --- helpers ------------------------------------------------------------------------------------

  private header(): RpcHeader {
    return { protocolVersion: RAFT_PROTOCOL_VERSION, id: this.id, addr: this.address };
  }

  private addressOf(id: string): string | undefined {
    if (id === this.id) return this.address;
    return this.raft.peerAddress(id);
  }

  /** The sender's server ID: the header's (raft >= 1.3.7), else the configuration's for its address. */
  private senderOf(rpc: RaftRpc): string {
    const request = rpc.request;
    if (request.id !== undefined && request.id !== '') return request.id;
    const address = 'leader' in request ? request.leader : 'candidate' in request ? request.candidate : (request.addr ?? '');
    return this.raft.configuration.servers.find((s) => s.address === address)?.id ?? address;
  }

  private refusal(): RaftNodeError | undefined {
    if (this.isClosed) return new RaftNodeError('ERR_SHUTDOWN', 'raft node is shut down');
    if (this.failure !== undefined) return new RaftNodeError('ERR_NODE_FAILED', `raft node failed: ${this.failure.message}`);
    return undefined;
  }

  private nodeError(error: RaftError): RaftNodeError {
    return new RaftNodeError(error.code, error.message, error.code === 'ERR_NOT_LEADER' ? this.leader() : '');
  }

  /** A store or FSM failure: the node stops taking part (an I/O error leaves durability unknown). */
  private fail(error: Error): void {
    this.failure = error;
    this.epoch++;
    if (this.timer !== undefined) clearInterval(this.timer);
    clearTimeout(this.snapshotTimer);
    clearTimeout(this.commitBroadcastTimer);
    this.logger.error('raft node failed, restart it', { error: error.message });
    this.failAll(new RaftNodeError('ERR_NODE_FAILED', `raft node failed: ${error.message}`));
    this.noteLeadership();
  }

  private noteLeadership(): void {
    const isLeader = this.raft.state === 'leader' && !this.isClosed && this.failure === undefined;
    if (isLeader === this.wasLeader) return;
    this.wasLeader = isLeader;
    for (const listener of this.leadershipListeners) queueMicrotask(() => listener(isLeader));
  }

  /** Resolves (no error) or rejects every leadership transfer being waited for. */
  private settleTransfers(error: RaftNodeError | undefined): void {
    for (const waiter of this.transferWaiters) {
      clearTimeout(waiter.timer);
      if (error === undefined) waiter.resolve();
      else waiter.reject(error);
    }
    this.transferWaiters.clear();
  }

  private failAll(error: RaftNodeError): void {
    this.settleTransfers(error);
    for (const proposal of this.proposals.values()) proposal.reject(error);
    this.proposals.clear();
    for (const read of this.reads.values()) read.reject(error);
    this.reads.clear();
    this.readsAwaitingApply = [];
    for (const pending of this.pendingRpcs.splice(0)) pending.reject(error);
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

/** Maps an AppendEntries answer to the core's (see the header for the rules). */
function appendResponse(peer: string, self: string, request: AppendEntriesRequest, response: WireAppendResponse): RaftMessage {
  const base = { type: 'appendEntriesResponse', from: peer, to: self, term: response.term } as const;
  if (response.term > request.term) return { ...base, success: false, lastLog: 0, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0 };
  if (response.success) {
    const lastLog = Math.min(request.prevLogEntry + request.entries.length, response.lastLog);
    return { ...base, success: true, lastLog, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0 };
  }
  return { ...base, success: false, lastLog: 0, rejectedIndex: request.prevLogEntry, conflictIndex: Math.min(response.lastLog, request.prevLogEntry), conflictTerm: 0 };
}

async function openStores(options: RaftNodeOptions): Promise<Stores> {
  if (options.dataDir === undefined) return { log: new MemoryLogStore(), stable: new MemoryStableStore(), snapshots: new MemorySnapshotStore() };
  const logger = options.logger.named('store');
  const raftDir = join(options.dataDir, 'raft');
  await NODE_DISK.mkdir(raftDir);
  const log = await FileLogStore.open(raftDir, { disk: NODE_DISK, logger });
  const stable = await FileStableStore.open(join(options.dataDir, 'raft', 'stable.bin'), { disk: NODE_DISK, logger });
  const snapshots = await FileSnapshotStore.open(join(options.dataDir, 'snapshots'));
  return { log, stable, snapshots };
}

/**
 * hashicorp RecoverCluster on opened stores, with the FSM holding the newest snapshot's state:
 * applies the log past it, writes a snapshot of the result at the last entry carrying
 * `servers` as its configuration, and removes every log entry. The caller restores from that
 * snapshot afterwards.
 */
async function recoverCluster(stores: Stores, fsm: Fsm, snapshot: SnapshotMeta | undefined, servers: readonly RaftServer[], logger: Logger): Promise<void> {
  const problem = checkConfiguration(servers);
  if (problem !== undefined) throw new Error(problem);
  const lastLogIndex = stores.log.lastIndex();
  if (snapshot === undefined && lastLogIndex === 0) throw new Error('refused to recover cluster with no initial state, this is probably an operator error');
  let index = snapshot?.index ?? 0;
  let term = snapshot?.term ?? 0;
  for (let next = Math.max(index + 1, stores.log.firstIndex()); next <= lastLogIndex && next > 0; next++) {
    const entry = stores.log.get(next);
    assert(entry !== undefined, `log entry ${next} readable`);
    if (entry.type === LOG_TYPE.command) fsm.apply(entry.index, entry.data);
    index = entry.index;
    term = entry.term;
  }
  // Configuration index 1, as hashicorp writes it: older than any entry that could follow.
  await writeSnapshot(stores.snapshots, { index, term, configuration: servers, configurationIndex: 1, version: 1 }, fsm.snapshot());
  if (lastLogIndex > 0) await stores.log.compactPrefix(lastLogIndex);
  logger.info('recovered cluster configuration', { index, term, servers: servers.length });
}

/** Streams an FSM image into a new snapshot; a failed write is cancelled, leaving no partial snapshot. */
async function writeSnapshot(store: SnapshotStore, meta: Parameters<SnapshotStore['create']>[0], image: ReturnType<Fsm['snapshot']>): Promise<SnapshotMeta> {
  const sink = await store.create(meta);
  try {
    for (const chunk of image.chunks()) await sink.write(chunk);
    return await sink.close();
  } catch (error) {
    await sink.cancel();
    throw error;
  }
}

/** Restores the FSM from the newest snapshot that restores; a damaged one falls back to the next. */
async function restoreNewestSnapshot(store: SnapshotStore, fsm: Fsm, logger: Logger): Promise<SnapshotMeta | undefined> {
  for (const meta of await store.list()) {
    try {
      const { data } = await store.open(meta.id);
      await fsm.restore(data, meta.index);
      logger.info('restored from snapshot', { id: meta.id, index: meta.index });
      return meta;
    } catch (error) {
      logger.warn('failed to restore snapshot, trying an older one', { id: meta.id, error: String(error) });
    }
  }
  return undefined;
}

function readHardState(stable: StableStore): HardState {
  const term = stable.getUint64(KEY_CURRENT_TERM);
  const voteTerm = stable.getUint64(KEY_LAST_VOTE_TERM);
  const candidate = stable.get(KEY_LAST_VOTE_CAND);
  const vote = voteTerm === term && term > 0 && candidate !== undefined ? new TextDecoder().decode(candidate) : '';
  return { term, vote, commitIndex: 0 };
}

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  assert(colon > 0 && Number.isInteger(port) && port >= 0 && port <= 65535, `bad raft address ${address}`);
  return { host: address.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port };
}
