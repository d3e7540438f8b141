// A seeded, deterministic cluster simulator for the Raft core (lib/raft.ts).
//
// Each simulated server is the pure core plus a model of the shell: a durable part (hard state,
// log, snapshots) that survives crashes, and a volatile part (the core, the state machine, the
// Ready being written) that does not. A Ready is taken, "written" after a random disk latency,
// and only then are its messages sent, its committed entries applied and advance() called, so
// a crash in between loses exactly what a real server would lose: whatever was not durable.
//
// The network drops (0-30%), duplicates, delays and so reorders messages, and partitions the
// cluster (symmetric splits, an isolated server, one-way cuts). Servers crash and restart from
// their durable state, pause (messages queue up for them), and tick at skewed rates. Clients
// write unique commands through the leader and read with ReadIndex; membership changes and
// leadership transfers happen at random. Time is virtual: one step is one millisecond.
//
// Checked after every step: election safety (one leader per term, over all time); log matching
// (an (index, term) pair names one entry with one predecessor term, everywhere and forever);
// leader completeness (a leader of a term later than any term seen when an entry was applied
// holds that entry); state machine safety (no two servers apply different entries at an index);
// linearizable reads (a read sees every write acknowledged, and every state read, before it
// began). After the faults heal: a leader within 10 election timeouts and every acknowledged
// write applied on every member within 30.
//
// A violation throws SimViolation; the test prints the seed and a replay command.

import assert from 'node:assert/strict';
import { createLogger, type Logger } from '../../lib/log.js';
import { LOG_TYPE, type LogEntry } from '../../lib/logstore.js';
import { Raft, type HardState, type RaftMessage, type Ready } from '../../lib/raft.js';
import { COMMIT_BROADCAST_DELAY_MS } from '../../lib/raftnode.js';
import { SUFFRAGE } from '../../lib/raftconfig.js';
import { entryBytes, type RaftStorage } from '../../lib/raftlog.js';
import type { RaftServer, SnapshotMeta } from '../../lib/snapshot.js';
import { mulberry32 } from '../support.js';

// ---------------------------------------------------------------------------------------------
// Types and limits

export class SimViolation extends Error {
  override readonly name = 'SimViolation';
}

export interface SimOptions {
  readonly seed: number;
  /** Collects a line per notable event (for replaying a failing seed). */
  readonly trace?: (line: string) => void;
}

export interface SimStats {
  readonly servers: number;
  readonly acknowledgedWrites: number;
  readonly reads: number;
  readonly elections: number;
  readonly crashes: number;
  readonly snapshotsInstalled: number;
  readonly configurationChanges: number;
  readonly leaderAfterHealMs: number;
  readonly convergedAfterHealMs: number;
  readonly dropRate: number;
}

/** Virtual milliseconds per nominal tick. */
export const SIM_TICK_MS = 10;
/** Election timeout in ticks (T); one nominal election timeout is T * SIM_TICK_MS. */
export const SIM_ELECTION_TICKS = 10;
const ELECTION_MS = SIM_TICK_MS * SIM_ELECTION_TICKS;
/** How long faults are injected, then how long liveness may take after healing. */
const CHAOS_MS = 60 * ELECTION_MS;
const LEADER_DEADLINE_MS = 10 * ELECTION_MS;
const CONVERGE_DEADLINE_MS = 30 * ELECTION_MS;
/** Snapshots each server keeps (a leader may still be streaming an older one). */
const SNAPSHOTS_RETAINED = 3;

/** What the trivial state machine holds: the commands applied, in order, with their positions. */
interface Applied {
  readonly index: number;
  readonly term: number;
  readonly command: string;
}

interface Envelope {
  readonly message: RaftMessage;
  readonly snapshotData?: readonly Applied[];
}

// ---------------------------------------------------------------------------------------------
// API

/** Runs one seed to completion. Throws SimViolation on any safety or liveness failure. */
export function runSimulation(options: SimOptions): SimStats {
  return new Simulation(options).run();
}

/** An in-memory durable log: what a LogStore holds after its writes resolved. */
export class MemoryLog implements RaftStorage {
  private start = 0;
  private entriesHeld: LogEntry[] = [];

  firstIndex(): number {
    return this.entriesHeld.length === 0 ? 0 : this.start;
  }

  lastIndex(): number {
    return this.entriesHeld.length === 0 ? 0 : this.start + this.entriesHeld.length - 1;
  }

  term(index: number): number | undefined {
    return this.get(index)?.term;
  }

  get(index: number): LogEntry | undefined {
    return index >= this.start ? this.entriesHeld[index - this.start] : undefined;
  }

  entries(lo: number, hi: number, maxBytes: number): LogEntry[] {
    const result: LogEntry[] = [];
    let bytes = 0;
    for (let index = lo; index < hi; index++) {
      const entry = this.get(index);
      assert(entry !== undefined, `memory log is missing ${index}`);
      bytes += entryBytes(entry);
      if (result.length > 0 && bytes > maxBytes) break;
      result.push(entry);
    }
    return result;
  }

  /** Replaces everything from entries[0].index on (the Ready contract). */
  write(entries: readonly LogEntry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    if (this.entriesHeld.length === 0) {
      this.start = first.index;
      this.entriesHeld = entries.slice();
      return;
    }
    assert(first.index >= this.start && first.index <= this.lastIndex() + 1, `write at ${first.index} outside [${this.start}, ${this.lastIndex() + 1}]`);
    this.entriesHeld.length = first.index - this.start;
    for (const entry of entries) this.entriesHeld.push(entry);
  }

  compactPrefix(throughIndex: number): void {
    if (throughIndex < this.start) return;
    this.entriesHeld = this.entriesHeld.slice(throughIndex + 1 - this.start);
    this.start = throughIndex + 1;
  }

  clear(): void {
    this.entriesHeld = [];
    this.start = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// The simulation

class SimServer {
  readonly durable = { hardState: { term: 0, vote: '', commitIndex: 0 } as HardState, log: new MemoryLog(), snapshots: [] as { meta: SnapshotMeta; data: readonly Applied[] }[] };
  core: Raft | undefined;
  fsm: Applied[] = [];
  applied = 0;
  appliedTerm = 0;
  writing: { ready: Ready; doneAt: number } | undefined;
  /** When the shell's commit-broadcast timer fires (lib/raftnode.ts COMMIT_BROADCAST_DELAY_MS). */
  commitBroadcastAt: number | undefined;
  received = new Map<string, readonly Applied[]>();
  paused = false;
  held: Envelope[] = [];
  tickCredit = 0;
  restarts = 0;

  constructor(
    readonly id: string,
    readonly address: string,
    public tickRate: number,
  ) {}

  get latestSnapshot(): { meta: SnapshotMeta; data: readonly Applied[] } | undefined {
    return this.durable.snapshots[this.durable.snapshots.length - 1];
  }
}

class Simulation {
  private readonly random: () => number;
  private readonly servers: SimServer[] = [];
  private readonly byId = new Map<string, SimServer>();
  private now = 0;
  private readonly queue = new Map<number, Envelope[]>();
  private readonly blocked = new Set<string>();
  private readonly restartAt = new Map<string, number>();
  private readonly resumeAt = new Map<string, number>();

  // Fault mix, drawn per seed.
  private dropRate: number;
  private readonly duplicateRate: number;
  private readonly delayMaxMs: number;
  private readonly diskLatencyMaxMs: number;
  private readonly snapshotEvery: number;
  private readonly trailingLogs: number;
  private readonly maxInflight: number;
  private readonly maxEntriesPerMsg: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly membershipChanges: boolean;
  private readonly writeRate: number;
  private readonly partitionRate: number;
  private readonly crashRate: number;
  private readonly pauseRate: number;
  /** Chance to crash a server the moment it has sent a granted vote or an acknowledgement. */
  private readonly crashAfterPromiseRate: number;

  // Checker state.
  private readonly leaderOfTerm = new Map<number, string>();
  private readonly entryIds = new Map<string, { key: string; prevTerm: number | undefined }>();
  private readonly committed = new Map<number, { term: number; key: string; seenAtTerm: number }>();
  private readonly leadersChecked = new Set<string>();
  private maxTerm = 0;

  // Clients.
  private nextCommand = 0;
  /** Proposals waiting for their proposer to apply their index, by `server/index`. */
  private readonly pendingWrites = new Map<string, { command: string; term: number }>();
  private readonly acknowledged = new Map<string, number>();
  private maxAcknowledgedIndex = 0;
  private nextReadId = 1;
  private readonly pendingReads = new Map<number, { server: string; floor: number; index: number | undefined }>();
  private maxReadIndexServed = 0;
  private clientsOn = true;

  private stats = { acknowledgedWrites: 0, reads: 0, elections: 0, crashes: 0, snapshotsInstalled: 0, configurationChanges: 0 };

  constructor(private readonly options: SimOptions) {
    this.random = mulberry32(options.seed);
    const count = this.random() < 0.5 ? 3 : 5;
    this.dropRate = this.random() * 0.3;
    this.duplicateRate = this.random() * 0.05;
    // Up to a fifth of the election timeout one way: Raft needs broadcast time well below it
    // (section 5.6), and with T = 10 ticks, round trips near T make split votes repeat.
    this.delayMaxMs = 1 + Math.floor(this.random() * 20);
    this.diskLatencyMaxMs = Math.floor(this.random() * 6);
    this.snapshotEvery = this.random() < 0.2 ? Infinity : 5 + Math.floor(this.random() * 40);
    this.trailingLogs = Math.floor(this.random() * 10);
    this.maxInflight = 1 + Math.floor(this.random() * 16);
    this.maxEntriesPerMsg = this.random() < 0.5 ? 1 + Math.floor(this.random() * 4) : 64;
    this.checkQuorum = this.random() < 0.8;
    this.membershipChanges = this.random() < 0.5;
    // Without pre-vote, a server that cannot win but campaigns on a faster clock takes every new
    // term first; once membership changes leave servers with different configurations, the one
    // that could win may never hear of those terms in time (a livelock, not a safety problem).
    // Pre-vote is the default; it is turned off only where configurations stay the same.
    this.preVote = this.membershipChanges || this.random() < 0.6;
    this.writeRate = 0.02 + this.random() * 0.15;
    this.partitionRate = this.random() * 0.006;
    this.crashRate = this.random() * 0.004;
    this.pauseRate = this.random() * 0.002;
    this.crashAfterPromiseRate = this.random() < 0.4 ? 0 : this.random() * 0.2;
    for (let i = 1; i <= count; i++) {
      const server = new SimServer(`n${i}`, `10.0.0.${i}:8300`, 0.8 + this.random() * 0.45);
      this.servers.push(server);
      this.byId.set(server.id, server);
    }
    const configuration: RaftServer[] = this.servers.map((s) => ({ suffrage: SUFFRAGE.voter, id: s.id, address: s.address }));
    for (const server of this.servers) {
      this.start(server);
      const result = server.core!.bootstrap(configuration);
      assert(result.ok, 'bootstrap failed');
    }
  }

  run(): SimStats {
    for (; this.now < CHAOS_MS; this.now++) {
      this.injectFaults();
      this.clientActions();
      this.step();
    }
    this.heal();
    const healedAt = this.now;
    let leaderAt = -1;
    let convergedAt = -1;
    for (; this.now < healedAt + CONVERGE_DEADLINE_MS; this.now++) {
      this.step();
      if (this.options.trace !== undefined && (this.now - healedAt) % 250 === 0) this.trace(this.describe());
      if (leaderAt < 0 && this.stableLeader() !== undefined) leaderAt = this.now;
      if (leaderAt >= 0 && this.converged()) {
        convergedAt = this.now;
        break;
      }
      if (leaderAt < 0 && this.now >= healedAt + LEADER_DEADLINE_MS) this.fail(`no leader within ${LEADER_DEADLINE_MS} ms of healing; ${this.describe()}`);
    }
    if (convergedAt < 0) this.fail(`acknowledged writes not applied everywhere within ${CONVERGE_DEADLINE_MS} ms of healing: ${this.convergenceReport()}; ${this.describe()}`);
    this.checkAllLogsMatch();
    return { servers: this.servers.length, ...this.stats, leaderAfterHealMs: leaderAt - healedAt, convergedAfterHealMs: convergedAt - healedAt, dropRate: this.dropRate };
  }

  // --- one millisecond ------------------------------------------------------------------------

  private step(): void {
    this.restartAndResume();
    const due = this.queue.get(this.now);
    if (due !== undefined) {
      this.queue.delete(this.now);
      for (const envelope of due) this.deliver(envelope);
    }
    for (const server of this.servers) {
      if (server.core === undefined || server.paused) continue;
      if (server.commitBroadcastAt !== undefined && server.commitBroadcastAt <= this.now) {
        server.commitBroadcastAt = undefined;
        server.core.broadcastCommit();
      }
      server.tickCredit += server.tickRate / SIM_TICK_MS;
      while (server.tickCredit >= 1) {
        server.tickCredit -= 1;
        server.core.tick();
      }
    }
    for (const server of this.servers) this.driveShell(server);
    this.checkLeaders();
  }

  private deliver(envelope: Envelope): void {
    const server = this.byId.get(envelope.message.to);
    if (server === undefined || server.core === undefined) return;
    if (server.paused) {
      server.held.push(envelope);
      return;
    }
    if (envelope.snapshotData !== undefined && envelope.message.type === 'installSnapshot') {
      server.received.set(envelope.message.snapshot.id, envelope.snapshotData);
    }
    server.core.step(envelope.message);
  }

  /** The shell loop: take a Ready, write it after the disk latency, then send, apply, advance. */
  private driveShell(server: SimServer): void {
    for (;;) {
      const core = server.core;
      if (core === undefined || server.paused) return;
      if (server.writing !== undefined) {
        if (server.writing.doneAt > this.now) return;
        const ready = server.writing.ready;
        server.writing = undefined;
        this.finishReady(server, core, ready);
        continue;
      }
      if (!core.hasReady()) return;
      server.writing = { ready: core.ready(), doneAt: this.now + Math.floor(this.random() * (this.diskLatencyMaxMs + 1)) };
    }
  }

  private finishReady(server: SimServer, core: Raft, ready: Ready): void {
    // 1. Durable: snapshot (discarding the log), entries, hard state, all at once.
    if (ready.snapshot !== undefined) {
      const data = server.received.get(ready.snapshot.id);
      assert(data !== undefined, `snapshot ${ready.snapshot.id} data never arrived`);
      this.checkSnapshotData(server, ready.snapshot, data);
      this.keepSnapshot(server, ready.snapshot, data);
      server.durable.log.clear();
      server.fsm = data.slice();
      server.applied = ready.snapshot.index;
      server.appliedTerm = ready.snapshot.term;
      this.stats.snapshotsInstalled++;
      // Proposals the snapshot skipped over end with "leadership lost", outcome unknown.
      for (const key of this.pendingWrites.keys()) {
        if (key.startsWith(`${server.id}/`) && Number(key.slice(key.indexOf('/') + 1)) <= ready.snapshot.index) this.pendingWrites.delete(key);
      }
    }
    if (ready.entries.length > 0) {
      server.durable.log.write(ready.entries);
      this.checkPersistedEntries(server, ready.entries);
    }
    if (ready.hardState !== undefined) {
      assert(ready.hardState.term >= server.durable.hardState.term, 'durable term went backwards');
      server.durable.hardState = ready.hardState;
    }
    // 2. Only now may messages leave.
    for (const message of ready.messages) this.send(server, core, message);
    if (this.clientsOn && this.crashAfterPromiseRate > 0 && ready.messages.some(isPromise) && this.random() < this.crashAfterPromiseRate) {
      // The promise is on the wire and on disk; whatever was not durable is gone.
      this.crash(server);
      return;
    }
    // 3. Apply, serve reads, acknowledge.
    for (const entry of ready.committedEntries) this.apply(server, entry);
    if (ready.hardState !== undefined && core.state === 'leader') server.commitBroadcastAt ??= this.now + COMMIT_BROADCAST_DELAY_MS;
    for (const read of ready.readStates) {
      const pending = this.pendingReads.get(read.requestId);
      if (pending === undefined) continue;
      if (read.ok) pending.index = read.index;
      else this.pendingReads.delete(read.requestId);
    }
    core.advance(ready);
    this.serveReads(server);
    this.maybeSnapshot(server, core);
    if (ready.softState?.role === 'leader') this.stats.elections++;
  }

  private apply(server: SimServer, entry: LogEntry): void {
    assert(entry.index === server.applied + 1, `${server.id} applied ${entry.index} after ${server.applied}`);
    const key = entryKey(entry);
    const known = this.committed.get(entry.index);
    if (known === undefined) this.committed.set(entry.index, { term: entry.term, key, seenAtTerm: this.currentMaxTerm() });
    else if (known.term !== entry.term || known.key !== key) {
      this.fail(`state machine safety: ${server.id} applied term ${entry.term} at ${entry.index}, another server applied term ${known.term}`);
    }
    server.applied = entry.index;
    server.appliedTerm = entry.term;
    if (entry.type !== LOG_TYPE.command) {
      this.resolveWrite(server, entry.index, entry.term, undefined);
      return;
    }
    const command = Buffer.from(entry.data).toString('utf8');
    server.fsm.push({ index: entry.index, term: entry.term, command });
    this.resolveWrite(server, entry.index, entry.term, command);
  }

  /** The proposer learns its write's fate when it applies that index: same term, or lost. */
  private resolveWrite(server: SimServer, index: number, term: number, command: string | undefined): void {
    const key = `${server.id}/${index}`;
    const pending = this.pendingWrites.get(key);
    if (pending === undefined) return;
    this.pendingWrites.delete(key);
    if (pending.term !== term || pending.command !== command) return;
    this.acknowledged.set(pending.command, index);
    this.maxAcknowledgedIndex = Math.max(this.maxAcknowledgedIndex, index);
    this.stats.acknowledgedWrites++;
  }

  private serveReads(server: SimServer): void {
    for (const [id, read] of this.pendingReads) {
      if (read.server !== server.id || read.index === undefined || server.applied < read.index) continue;
      this.pendingReads.delete(id);
      if (server.applied < read.floor) {
        this.fail(`linearizability: read ${id} on ${server.id} saw index ${server.applied}, but index ${read.floor} was acknowledged or read before it began`);
      }
      this.maxReadIndexServed = Math.max(this.maxReadIndexServed, server.applied);
      this.stats.reads++;
    }
  }

  private maybeSnapshot(server: SimServer, core: Raft): void {
    const last = server.latestSnapshot?.meta.index ?? 0;
    if (server.applied - last < this.snapshotEvery) return;
    const configuration = core.snapshotConfiguration(server.applied);
    if (configuration === undefined) return;
    const meta: SnapshotMeta = {
      id: `${server.appliedTerm}-${server.applied}-${this.now}`,
      index: server.applied,
      term: server.appliedTerm,
      configuration: configuration.servers,
      configurationIndex: configuration.index,
      size: server.fsm.length,
      version: 1,
    };
    this.keepSnapshot(server, meta, server.fsm.slice());
    const through = core.compactTo(meta);
    server.durable.log.compactPrefix(through);
  }

  private keepSnapshot(server: SimServer, meta: SnapshotMeta, data: readonly Applied[]): void {
    server.durable.snapshots.push({ meta, data });
    if (server.durable.snapshots.length > SNAPSHOTS_RETAINED) server.durable.snapshots.shift();
  }

  // --- network --------------------------------------------------------------------------------

  private send(server: SimServer, core: Raft, message: RaftMessage): void {
    let snapshotData: readonly Applied[] | undefined;
    if (message.type === 'installSnapshot') {
      snapshotData = server.durable.snapshots.find((s) => s.meta.id === message.snapshot.id)?.data;
      if (snapshotData === undefined) {
        core.reportSnapshot(message.to, false);
        return;
      }
    }
    if (this.blocked.has(`${message.from}>${message.to}`)) return;
    if (this.random() < this.dropRate) return;
    const copies = this.random() < this.duplicateRate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const at = this.now + 1 + Math.floor(this.random() * this.delayMaxMs);
      const envelope: Envelope = snapshotData === undefined ? { message } : { message, snapshotData };
      const bucket = this.queue.get(at);
      if (bucket === undefined) this.queue.set(at, [envelope]);
      else bucket.push(envelope);
    }
  }

  // --- faults ---------------------------------------------------------------------------------

  private injectFaults(): void {
    let roll = this.random();
    if ((roll -= this.partitionRate) < 0) this.partition();
    else if ((roll -= this.partitionRate) < 0) this.blocked.clear();
    else if ((roll -= this.crashRate) < 0) this.crash(this.crashVictim());
    else if ((roll -= this.pauseRate) < 0) this.pauseSomeone();
    else if ((roll -= 0.0002) < 0) this.pick(this.servers).tickRate = 0.6 + this.random() * 0.8;
    else if ((roll -= 0.001) < 0 && this.membershipChanges) this.changeMembership();
    else if ((roll -= 0.0005) < 0) this.transferLeadership();
  }

  /** Half the time a leader or candidate: crashes in the middle of an election or a write matter most. */
  private crashVictim(): SimServer {
    const busy = this.servers.filter((s) => s.core !== undefined && s.core.state !== 'follower');
    return busy.length > 0 && this.random() < 0.5 ? this.pick(busy) : this.pick(this.servers);
  }

  private partition(): void {
    this.blocked.clear();
    const ids = this.servers.map((s) => s.id);
    const kind = this.random();
    if (kind < 0.4) {
      // Symmetric split into two sides.
      const side = new Set(ids.filter(() => this.random() < 0.5));
      for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}>${b}`);
      this.trace(`partition ${[...side].join(',')} | rest`);
    } else if (kind < 0.7) {
      // Isolate one server (often the leader).
      const leader = this.servers.find((s) => s.core?.state === 'leader');
      const victim = leader !== undefined && this.random() < 0.6 ? leader.id : this.pick(ids);
      for (const other of ids) if (other !== victim) this.blocked.add(`${victim}>${other}`).add(`${other}>${victim}`);
      this.trace(`isolate ${victim}`);
    } else {
      // One-way cuts: a server that can send but not receive, or the reverse, or random links.
      const victim = this.pick(ids);
      const inbound = this.random() < 0.5;
      for (const other of ids) {
        if (other === victim || this.random() < 0.3) continue;
        this.blocked.add(inbound ? `${other}>${victim}` : `${victim}>${other}`);
      }
      this.trace(`one-way ${inbound ? 'into' : 'out of'} ${victim}`);
    }
  }

  private crash(server: SimServer): void {
    if (server.core === undefined) return;
    this.trace(`crash ${server.id}`);
    server.core = undefined;
    server.writing = undefined;
    server.commitBroadcastAt = undefined;
    server.received.clear();
    server.held = [];
    server.paused = false;
    this.resumeAt.delete(server.id);
    for (const [id, read] of this.pendingReads) if (read.server === server.id) this.pendingReads.delete(id);
    for (const key of this.pendingWrites.keys()) if (key.startsWith(`${server.id}/`)) this.pendingWrites.delete(key);
    this.restartAt.set(server.id, this.now + 1 + Math.floor(this.random() * (this.random() < 0.5 ? 30 : 5 * ELECTION_MS)));
    this.stats.crashes++;
  }

  private pauseSomeone(): void {
    const server = this.pick(this.servers);
    if (server.core === undefined || server.paused) return;
    this.trace(`pause ${server.id}`);
    server.paused = true;
    this.resumeAt.set(server.id, this.now + 20 + Math.floor(this.random() * 3 * ELECTION_MS));
  }

  private restartAndResume(): void {
    for (const server of this.servers) {
      const restart = this.restartAt.get(server.id);
      if (restart !== undefined && restart <= this.now) {
        this.restartAt.delete(server.id);
        this.trace(`restart ${server.id}`);
        this.start(server);
      }
      const resume = this.resumeAt.get(server.id);
      if (resume !== undefined && resume <= this.now) {
        this.resumeAt.delete(server.id);
        server.paused = false;
        const held = server.held;
        server.held = [];
        for (const envelope of held) this.deliver(envelope);
      }
    }
  }

  /** Boots a server from its durable state only. */
  private start(server: SimServer): void {
    const snapshot = server.latestSnapshot;
    server.fsm = snapshot ? snapshot.data.slice() : [];
    server.applied = snapshot?.meta.index ?? 0;
    server.appliedTerm = snapshot?.meta.term ?? 0;
    server.received.clear();
    server.restarts++;
    server.core = new Raft({
      id: server.id,
      storage: server.durable.log,
      rng: mulberry32(this.options.seed * 7919 + server.restarts * 104729 + server.id.charCodeAt(1)),
      electionTimeoutTicks: SIM_ELECTION_TICKS,
      heartbeatTicks: 1 + (server.id.charCodeAt(1) % 3),
      hardState: server.durable.hardState,
      ...(snapshot ? { snapshot: snapshot.meta } : {}),
      trailingLogs: this.trailingLogs,
      maxInflightMsgs: this.maxInflight,
      maxEntriesPerMsg: this.maxEntriesPerMsg,
      maxUncommittedEntries: 64,
      preVote: this.preVote,
      checkQuorum: this.checkQuorum,
      ...(this.options.trace ? { logger: this.traceLogger(server.id) } : {}),
    });
  }

  private heal(): void {
    this.trace('heal');
    this.blocked.clear();
    this.dropRate = 0;
    this.clientsOn = false;
    for (const server of this.servers) {
      if (server.core === undefined) {
        this.restartAt.delete(server.id);
        this.start(server);
      }
      if (server.paused) this.resumeAt.set(server.id, this.now);
    }
  }

  // --- clients, membership, transfers ---------------------------------------------------------

  private clientActions(): void {
    if (!this.clientsOn) return;
    const roll = this.random();
    if (roll >= this.writeRate + 0.02) return;
    const server = this.pick(this.servers);
    const core = server.core;
    if (core === undefined || server.paused || core.state !== 'leader') return;
    if (roll < this.writeRate) {
      const burst = 1 + Math.floor(this.random() * 4);
      for (let i = 0; i < burst; i++) {
        const command = `c${this.nextCommand++}`;
        const result = core.propose(Buffer.from(command));
        if (result.ok) this.pendingWrites.set(`${server.id}/${result.index}`, { command, term: result.term });
      }
    } else {
      const requestId = this.nextReadId++;
      if (core.readIndex(requestId).ok) {
        this.pendingReads.set(requestId, { server: server.id, floor: Math.max(this.maxAcknowledgedIndex, this.maxReadIndexServed), index: undefined });
      }
    }
  }

  private changeMembership(): void {
    const leader = this.servers.find((s) => s.core?.state === 'leader' && !s.paused);
    const core = leader?.core;
    if (core === undefined) return;
    const servers = core.configuration.servers;
    const voters = servers.filter((s) => s.suffrage === SUFFRAGE.voter);
    const absent = this.servers.filter((s) => !servers.some((c) => c.id === s.id));
    const nonvoters = servers.filter((s) => s.suffrage !== SUFFRAGE.voter);
    const minVoters = this.servers.length === 5 ? 3 : 2;
    const roll = this.random();
    let result;
    if (absent.length > 0 && roll < 0.5) {
      const target = this.pick(absent);
      result = core.changeConfiguration(this.random() < 0.5 ? { op: 'addNonvoter', id: target.id, address: target.address } : { op: 'addVoter', id: target.id, address: target.address });
    } else if (nonvoters.length > 0 && roll < 0.8) {
      result = core.changeConfiguration({ op: 'promote', id: this.pick(nonvoters).id });
    } else if (voters.length > minVoters) {
      const target = this.pick(voters);
      result = core.changeConfiguration(this.random() < 0.7 ? { op: 'removeServer', id: target.id } : { op: 'demoteVoter', id: target.id });
    } else {
      return;
    }
    if (result.ok) {
      this.stats.configurationChanges++;
      this.trace(`configuration change at ${result.index}`);
    }
  }

  private transferLeadership(): void {
    const leader = this.servers.find((s) => s.core?.state === 'leader' && !s.paused);
    if (leader?.core === undefined) return;
    const target = this.random() < 0.5 ? undefined : this.pick(this.servers).id;
    const result = leader.core.transferLeadership(target);
    if (result.ok) this.trace(`transfer from ${leader.id} to ${target ?? 'best'}`);
  }

  // --- checks ---------------------------------------------------------------------------------

  /** Election safety and leader completeness, for every server that is leader now. */
  private checkLeaders(): void {
    for (const server of this.servers) {
      const core = server.core;
      if (core === undefined) continue;
      if (core.term > this.maxTerm) this.maxTerm = core.term;
      if (core.state !== 'leader') continue;
      const holder = this.leaderOfTerm.get(core.term);
      if (holder === undefined) this.leaderOfTerm.set(core.term, server.id);
      else if (holder !== server.id) this.fail(`election safety: ${holder} and ${server.id} both leaders in term ${core.term}`);
      const checkKey = `${core.term}/${server.id}`;
      if (this.leadersChecked.has(checkKey)) continue;
      this.leadersChecked.add(checkKey);
      for (const [index, entry] of this.committed) {
        if (entry.seenAtTerm >= core.term) continue;
        if (index > core.lastIndex) this.fail(`leader completeness: leader ${server.id} of term ${core.term} lacks committed entry ${index} (last ${core.lastIndex})`);
        if (index < core.firstIndex) continue;
        const term = core.termAt(index);
        if (term !== entry.term) this.fail(`leader completeness: leader ${server.id} of term ${core.term} has term ${term} at committed index ${index}, not ${entry.term}`);
      }
    }
  }

  /** Log matching: an (index, term) pair always names the same entry after the same term. */
  private checkPersistedEntries(server: SimServer, entries: readonly LogEntry[]): void {
    const log = server.durable.log;
    for (const entry of entries) {
      const id = `${entry.index}/${entry.term}`;
      const key = entryKey(entry);
      const prev = entry.index - 1;
      const snapshot = server.latestSnapshot?.meta;
      const prevTerm = log.term(prev) ?? (prev === 0 ? 0 : snapshot?.index === prev ? snapshot.term : undefined);
      const known = this.entryIds.get(id);
      if (known === undefined) {
        this.entryIds.set(id, { key, prevTerm });
        continue;
      }
      if (known.key !== key) this.fail(`log matching: ${server.id} holds a different entry at index ${entry.index} term ${entry.term}`);
      if (known.prevTerm !== undefined && prevTerm !== undefined && known.prevTerm !== prevTerm) {
        this.fail(`log matching: ${server.id} has term ${prevTerm} before ${id}, elsewhere ${known.prevTerm}`);
      } else if (known.prevTerm === undefined && prevTerm !== undefined) {
        this.entryIds.set(id, { key, prevTerm });
      }
    }
  }

  /** A snapshot's data must be the committed commands through its index. */
  private checkSnapshotData(server: SimServer, meta: SnapshotMeta, data: readonly Applied[]): void {
    for (const applied of data) {
      const known = this.committed.get(applied.index);
      if (known !== undefined && known.term !== applied.term) this.fail(`state machine safety: snapshot on ${server.id} has term ${applied.term} at ${applied.index}`);
      if (applied.index > meta.index) this.fail(`snapshot ${meta.id} holds entry ${applied.index} beyond its index`);
    }
  }

  /** Every pair of durable logs agrees on every index where both hold the same term. */
  private checkAllLogsMatch(): void {
    for (const a of this.servers) {
      for (const b of this.servers) {
        if (a.id >= b.id) continue;
        const la = a.durable.log;
        const lb = b.durable.log;
        if (la.lastIndex() === 0 || lb.lastIndex() === 0) continue;
        const lo = Math.max(la.firstIndex(), lb.firstIndex());
        let top = Math.min(la.lastIndex(), lb.lastIndex());
        while (top >= lo && la.term(top) !== lb.term(top)) top--;
        for (let i = lo; i <= top; i++) {
          if (entryKey(la.get(i)!) !== entryKey(lb.get(i)!)) this.fail(`log matching: ${a.id} and ${b.id} differ at ${i} below a common entry at ${top}`);
        }
      }
    }
  }

  /** A leader a majority of its configuration's voters follow in its term. */
  private stableLeader(): string | undefined {
    for (const server of this.servers) {
      const core = server.core;
      if (core === undefined || core.state !== 'leader') continue;
      const voters = core.configuration.servers.filter((s) => s.suffrage === SUFFRAGE.voter);
      const following = voters.filter((v) => {
        const other = this.byId.get(v.id)?.core;
        return other !== undefined && other.term === core.term && other.leader === server.id;
      });
      if (following.length > voters.length / 2) return server.id;
    }
    return undefined;
  }

  /** Every member of the leader's configuration has applied every acknowledged write. */
  private converged(): boolean {
    return this.convergenceReport() === '';
  }

  private convergenceReport(): string {
    const leaderId = this.stableLeader();
    const leader = leaderId === undefined ? undefined : this.byId.get(leaderId)?.core;
    if (leader === undefined) return 'no leader';
    const members = new Set(leader.configuration.servers.map((s) => s.id));
    for (const [key, write] of this.pendingWrites) {
      const proposer = key.slice(0, key.indexOf('/'));
      const index = Number(key.slice(key.indexOf('/') + 1));
      // A write the stable leader's log does not hold can never commit: its client times out.
      const term = leader.termAt(index);
      if (index > leader.lastIndex || (term !== undefined && term !== write.term)) this.pendingWrites.delete(key);
      else if (members.has(proposer)) return `write ${key} still unresolved`;
    }
    for (const id of members) {
      const server = this.byId.get(id)!;
      if (server.applied < this.maxAcknowledgedIndex) return `${id} applied ${server.applied} < ${this.maxAcknowledgedIndex}`;
    }
    for (const id of members) {
      const server = this.byId.get(id)!;
      const applied = new Map(server.fsm.map((a) => [a.index, a.command]));
      for (const [command, index] of this.acknowledged) {
        if (applied.get(index) !== command) this.fail(`acknowledged write lost: ${id} has ${applied.get(index)} at ${index}, not ${command}`);
      }
    }
    return '';
  }

  // --- helpers --------------------------------------------------------------------------------

  /** One line per server, for liveness failures. */
  private describe(): string {
    return this.servers
      .map((server) => {
        const core = server.core;
        if (core === undefined) return `${server.id}: down`;
        const st = core.status();
        const members = st.configuration.servers.map((m) => `${m.id}${m.suffrage === SUFFRAGE.voter ? '' : '~'}`).join(',');
        const progress = st.progress.map((p) => `${p.id}:${p.state}:${p.match}/${p.next}`).join(',');
        return `${server.id}: ${st.role} term=${st.term} leader=${st.leaderId} commit=${st.commitIndex} applied=${server.applied} last=${st.lastIndex}@${st.lastTerm} first=${core.firstIndex} config=${st.configuration.index}[${members}] ${progress}`;
      })
      .join(' | ');
  }

  /** Core log lines go to the trace, stamped with virtual time (only when replaying a seed). */
  private traceLogger(id: string): Logger {
    return createLogger({ level: 'info', json: false, nowMs: () => 0, name: id, sink: { write: (line) => this.trace(line.replace(/^\S+ /, '').trimEnd()) } });
  }

  private currentMaxTerm(): number {
    for (const server of this.servers) if (server.core !== undefined && server.core.term > this.maxTerm) this.maxTerm = server.core.term;
    return this.maxTerm;
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!;
  }

  private trace(line: string): void {
    this.options.trace?.(`${this.now}ms ${line}`);
  }

  private fail(reason: string): never {
    throw new SimViolation(`${reason} (at ${this.now} ms)`);
  }
}

/** A message that promises something durable: a granted vote or an acknowledgement of entries. */
function isPromise(message: RaftMessage): boolean {
  return (message.type === 'requestVoteResponse' && message.granted) || (message.type === 'appendEntriesResponse' && message.success);
}

function entryKey(entry: LogEntry): string {
  return `${entry.type}|${Buffer.from(entry.data).toString('latin1')}`;
}
