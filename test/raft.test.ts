// Rule tests for the Raft core (lib/raft.ts), each named after the rule it checks. A small
// synchronous cluster drives the cores: every Ready is made durable (in memory) before its
// messages are delivered, messages are delivered in order unless a test cuts a link or drops
// them, and nothing happens unless a test ticks a server.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LOG_TYPE, type LogEntry } from '../lib/logstore.js';
import { decode } from '../lib/msgpack.js';
import { Raft, type HardState, type RaftMessage, type RaftOptions, type ReadState } from '../lib/raft.js';
import { SUFFRAGE } from '../lib/raftconfig.js';
import { decodeConfiguration, encodeConfiguration } from '../lib/raftwire.js';
import { Inflights, Progress, quorumValue, voteResult } from '../lib/raftprogress.js';
import type { RaftServer, SnapshotMeta } from '../lib/snapshot.js';
import { MemoryLog } from './sim/raftsim.js';
import { mulberry32 } from './support.js';

const T = 10;

interface Member {
  readonly id: string;
  core: Raft | undefined;
  readonly log: MemoryLog;
  hard: HardState;
  snapshot: { meta: SnapshotMeta; data: LogEntry[] } | undefined;
  incoming: Map<string, LogEntry[]>;
  applied: LogEntry[];
  reads: ReadState[];
  restarts: number;
}

function voters(ids: readonly string[]): RaftServer[] {
  return ids.map((id) => ({ suffrage: SUFFRAGE.voter, id, address: `${id}:8300` }));
}

function configurationEntry(index: number, term: number, servers: readonly RaftServer[]): LogEntry {
  return { index, term, type: LOG_TYPE.configuration, data: encodeConfiguration(servers) };
}

function command(index: number, term: number, text = `e${index}t${term}`): LogEntry {
  return { index, term, type: LOG_TYPE.command, data: Buffer.from(text) };
}

/** A synchronous cluster. Messages only move in drain(); ticks only where a test asks. */
class Cluster {
  readonly members = new Map<string, Member>();
  readonly blocked = new Set<string>();
  /** Sees every message before delivery: returns it (or a rewritten copy), or undefined to lose it. */
  intercept: ((message: RaftMessage) => RaftMessage | undefined) | undefined;
  readonly delivered: RaftMessage[] = [];
  private queue: { message: RaftMessage; snapshotData?: LogEntry[] }[] = [];

  constructor(
    ids: readonly string[],
    private readonly options: Partial<RaftOptions> = {},
    initial: { logs?: Record<string, LogEntry[]>; terms?: Record<string, number> } | undefined = undefined,
  ) {
    for (const id of ids) {
      const log = new MemoryLog();
      const entries = initial?.logs?.[id];
      if (entries !== undefined) log.write(entries);
      const term = initial?.terms?.[id] ?? 0;
      this.members.set(id, { id, core: undefined, log, hard: { term, vote: '', commitIndex: 0 }, snapshot: undefined, incoming: new Map(), applied: [], reads: [], restarts: 0 });
      this.start(id);
    }
    if (initial === undefined) {
      for (const id of ids) assert(this.core(id).bootstrap(voters(ids)).ok);
      this.drain();
    }
  }

  member(id: string): Member {
    const member = this.members.get(id);
    assert(member !== undefined, `no member ${id}`);
    return member;
  }

  core(id: string): Raft {
    const core = this.member(id).core;
    assert(core !== undefined, `${id} is down`);
    return core;
  }

  /** Boots a member from its durable state only. */
  start(id: string): void {
    const member = this.member(id);
    member.restarts++;
    member.applied = member.snapshot ? member.snapshot.data.slice() : [];
    member.incoming.clear();
    member.core = new Raft({
      id,
      storage: member.log,
      rng: mulberry32(id.charCodeAt(id.length - 1) * 97 + member.restarts),
      electionTimeoutTicks: T,
      heartbeatTicks: 1,
      hardState: member.hard,
      ...(member.snapshot ? { snapshot: member.snapshot.meta } : {}),
      ...this.options,
    });
  }

  crash(id: string): void {
    this.member(id).core = undefined;
  }

  isolate(id: string): void {
    for (const other of this.members.keys()) {
      if (other !== id) this.blocked.add(`${id}>${other}`).add(`${other}>${id}`);
    }
  }

  heal(): void {
    this.blocked.clear();
    this.intercept = undefined;
  }

  /** Persists every Ready, then delivers messages, until nothing moves. */
  /**
   * Delivers until nothing moves. Once quiet, leaders get one broadcastCommit(), as the shell's
   * short commit-broadcast timer would fire, so followers learn the final commit index.
   */
  drain(): void {
    let isCommitBroadcast = false;
    for (let round = 0; round < 10_000; round++) {
      let moved = false;
      for (const member of this.members.values()) moved = this.handleReady(member) || moved;
      const queue = this.queue;
      this.queue = [];
      if (queue.length > 0) isCommitBroadcast = false;
      for (const { message: sent, snapshotData } of queue) {
        moved = true;
        const target = this.members.get(sent.to);
        if (target?.core === undefined || this.blocked.has(`${sent.from}>${sent.to}`)) continue;
        const message = this.intercept === undefined ? sent : this.intercept(sent);
        if (message === undefined) continue;
        if (message.type === 'installSnapshot' && snapshotData !== undefined) target.incoming.set(message.snapshot.id, snapshotData);
        this.delivered.push(message);
        target.core.step(message);
      }
      if (moved) continue;
      if (isCommitBroadcast) return;
      {
        isCommitBroadcast = true;
        for (const member of this.members.values()) member.core?.broadcastCommit();
      }
    }
    assert.fail('cluster did not settle');
  }

  /** Ticks the given servers (default: all live ones) n times, draining after each tick. */
  tick(n = 1, ids: readonly string[] = [...this.members.keys()]): void {
    for (let i = 0; i < n; i++) {
      for (const id of ids) this.members.get(id)?.core?.tick();
      this.drain();
    }
  }

  /** Ticks one server alone until it is leader. */
  elect(id: string): void {
    for (let i = 0; i < 4 * T && this.core(id).state !== 'leader'; i++) this.tick(1, [id]);
    assert.equal(this.core(id).state, 'leader', `${id} did not become leader`);
  }

  /** Takes a snapshot at the member's applied index and compacts its log as the core allows. */
  snapshot(id: string): SnapshotMeta {
    const member = this.member(id);
    const core = this.core(id);
    const index = core.appliedIndex;
    const configuration = core.snapshotConfiguration(index);
    assert(configuration !== undefined);
    const term = core.termAt(index);
    assert(term !== undefined);
    const meta: SnapshotMeta = { id: `${term}-${index}-0`, index, term, configuration: configuration.servers, configurationIndex: configuration.index, size: 0, version: 1 };
    member.snapshot = { meta, data: member.applied.slice() };
    member.log.compactPrefix(core.compactTo(meta));
    return meta;
  }

  commands(id: string): string[] {
    return this.member(id).applied.filter((e) => e.type === LOG_TYPE.command).map((e) => Buffer.from(e.data).toString());
  }

  private handleReady(member: Member): boolean {
    const core = member.core;
    if (core === undefined || !core.hasReady()) return false;
    const ready = core.ready();
    if (ready.snapshot !== undefined) {
      const data = member.incoming.get(ready.snapshot.id);
      assert(data !== undefined, 'snapshot data did not arrive');
      member.snapshot = { meta: ready.snapshot, data };
      member.log.clear();
      member.applied = data.slice();
    }
    member.log.write(ready.entries);
    if (ready.hardState !== undefined) member.hard = ready.hardState;
    for (const message of ready.messages) {
      const snapshotData = message.type === 'installSnapshot' ? member.snapshot?.data : undefined;
      this.queue.push(snapshotData === undefined ? { message } : { message, snapshotData });
    }
    for (const entry of ready.committedEntries) {
      assert.equal(entry.index, (member.applied[member.applied.length - 1]?.index ?? member.snapshot?.meta.index ?? 0) + 1, 'applied out of order');
      member.applied.push(entry);
    }
    member.reads.push(...ready.readStates);
    core.advance(ready);
    return true;
  }
}

function propose(cluster: Cluster, id: string, text: string): { index: number; term: number } {
  const result = cluster.core(id).propose(Buffer.from(text));
  assert(result.ok, result.ok ? '' : result.error.message);
  cluster.drain();
  return { index: result.index, term: result.term };
}

describe('raft: elections', () => {
  test('election safety: one leader per term, each server votes once per term even across a restart', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3'], { preVote: false });
    cluster.elect('n1');
    const term = cluster.core('n1').term;
    assert.equal(cluster.core('n2').leader, 'n1');
    // n3 campaigns in the same term after n2 restarts: n2's vote for n1 is durable.
    cluster.crash('n2');
    cluster.start('n2');
    const n3 = cluster.core('n3');
    n3.step({ type: 'requestVote', from: 'n3', to: 'n2', term, lastLogIndex: 100, lastLogTerm: term, leadershipTransfer: false });
    cluster.drain();
    assert.equal(cluster.member('n2').hard.vote, 'n1');
    const answers = cluster.delivered.filter((m) => m.type === 'requestVoteResponse' && m.from === 'n2' && m.to === 'n3');
    assert.ok(answers.every((m) => m.type === 'requestVoteResponse' && !m.granted));
    const leaders = [...cluster.members.values()].filter((m) => m.core?.state === 'leader' && m.core.term === term);
    assert.equal(leaders.length, 1);
  });

  test('a candidate whose log is behind cannot win (section 5.4.1, election restriction)', () => {
    // No check-quorum: n2 must refuse n3 for its log, not because it still follows n1.
    const cluster = new Cluster(['n1', 'n2', 'n3'], { preVote: false, checkQuorum: false });
    cluster.elect('n1');
    cluster.isolate('n3');
    propose(cluster, 'n1', 'x');
    cluster.heal();
    cluster.crash('n1');
    cluster.tick(4 * T, ['n3']);
    assert.notEqual(cluster.core('n3').state, 'leader');
    cluster.tick(8 * T, ['n2']);
    assert.equal(cluster.core('n2').state, 'leader');
  });

  test('pre-vote prevents term inflation from a partitioned node', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.elect('n1');
    const term = cluster.core('n1').term;
    cluster.isolate('n3');
    cluster.tick(20 * T, ['n3']);
    assert.equal(cluster.core('n3').term, term, 'pre-vote never bumps the term');
    assert.equal(cluster.core('n3').state, 'pre-candidate');
    cluster.heal();
    cluster.tick(3);
    assert.equal(cluster.core('n1').state, 'leader', 'the leader was not disrupted');
    assert.equal(cluster.core('n1').term, term);
    assert.equal(cluster.core('n3').leader, 'n1');
  });

  test('without pre-vote the same partition inflates the term and disrupts the leader on rejoin', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3'], { preVote: false, checkQuorum: false });
    cluster.elect('n1');
    const term = cluster.core('n1').term;
    cluster.isolate('n3');
    cluster.tick(20 * T, ['n3']);
    assert.ok(cluster.core('n3').term > term + 3);
    cluster.heal();
    cluster.tick(2 * T, ['n3']);
    assert.notEqual(cluster.core('n1').term, term, 'the leader adopted the inflated term');
    assert.notEqual(cluster.core('n1').state, 'leader');
  });

  test('check-quorum: a leader that hears from no majority steps down within an election timeout', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.elect('n1');
    cluster.isolate('n1');
    cluster.tick(T, ['n1']);
    assert.equal(cluster.core('n1').state, 'leader');
    cluster.tick(T, ['n1']);
    assert.equal(cluster.core('n1').state, 'follower');
    assert.equal(cluster.core('n1').leader, '');
  });

  test('leader stickiness: a follower that heard from its leader ignores vote requests, unless for a leadership transfer', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.elect('n1');
    const term = cluster.core('n1').term;
    const n2 = cluster.core('n2');
    const lastLogIndex = n2.lastIndex;
    const lastLogTerm = n2.termAt(lastLogIndex)!;
    n2.step({ type: 'requestVote', from: 'n3', to: 'n2', term: term + 1, lastLogIndex, lastLogTerm, leadershipTransfer: false });
    n2.step({ type: 'requestPreVote', from: 'n3', to: 'n2', term: term + 1, lastLogIndex, lastLogTerm });
    assert.equal(n2.term, term);
    assert.equal(n2.hasReady(), false, 'no answer at all');
    n2.step({ type: 'requestVote', from: 'n3', to: 'n2', term: term + 1, lastLogIndex, lastLogTerm, leadershipTransfer: true });
    const ready = n2.ready();
    assert.deepEqual(ready.hardState, { term: term + 1, vote: 'n3', commitIndex: n2.commitIndex });
    assert.ok(ready.messages.some((m) => m.type === 'requestVoteResponse' && m.granted));
    n2.advance(ready);
  });

  test('a vote is judged by the candidate\'s log alone, not by its place in the voter\'s configuration (thesis section 4.2.3)', () => {
    // A voter whose configuration is stale may not know the candidate; refusing it could leave
    // no electable server. Removed servers are kept out by pre-vote and leader stickiness instead.
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    const n2 = cluster.core('n2');
    n2.step({ type: 'requestVote', from: 'n9', to: 'n2', term: 5, lastLogIndex: 1, lastLogTerm: 1, leadershipTransfer: false });
    const ready = n2.ready();
    assert.ok(ready.messages.some((m) => m.type === 'requestVoteResponse' && m.to === 'n9' && m.granted && m.term === 5));
    n2.advance(ready);
  });

  test('a vote request with a stale term is refused with the current term, and the candidate steps down', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3'], { preVote: false, checkQuorum: false });
    cluster.isolate('n3');
    cluster.tick(6 * T, ['n3']);
    const inflated = cluster.core('n3').term;
    cluster.heal();
    cluster.isolate('n1');
    cluster.tick(3 * T, ['n1']);
    assert.equal(cluster.core('n1').state, 'candidate');
    assert.ok(cluster.core('n1').term < inflated);
    cluster.heal();
    cluster.core('n1').tick();
    for (let i = 0; i < 3 * T && cluster.core('n1').term <= inflated; i++) cluster.tick(1, ['n1']);
    assert.ok(cluster.delivered.some((m) => m.type === 'requestVoteResponse' && m.from === 'n3' && !m.granted && m.term === inflated));
    assert.ok(cluster.core('n1').term > inflated, 'n1 caught up with the newer term');
  });

  test('restart keeps term, vote, log and configuration', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.elect('n1');
    propose(cluster, 'n1', 'a');
    cluster.tick(1);
    const before = cluster.core('n2').status();
    cluster.crash('n2');
    cluster.start('n2');
    const after = cluster.core('n2').status();
    assert.equal(after.term, before.term);
    assert.equal(after.vote, before.vote);
    assert.equal(after.lastIndex, before.lastIndex);
    assert.deepEqual(after.configuration, before.configuration);
    assert.equal(after.lastContactTicks, undefined);
    cluster.tick(1);
    assert.equal(cluster.core('n2').lastContactTicks, 0);
  });
});

describe('raft: replication', () => {
  test('log matching after conflicting appends: a follower replaces its conflicting suffix with the leader\'s', () => {
    // Raft Figure 7 in miniature: n2 holds an uncommitted suffix from term 2, n3 one from term 3,
    // and the leader a long one from term 4.
    const config = configurationEntry(1, 1, voters(['n1', 'n2', 'n3']));
    const range = (from: number, to: number, term: number): LogEntry[] => Array.from({ length: to - from + 1 }, (_, i) => command(from + i, term));
    const logs = {
      n1: [config, command(2, 1), ...range(3, 12, 4)],
      n2: [config, command(2, 1), ...range(3, 6, 2)],
      n3: [config, command(2, 1), ...range(3, 4, 3)],
    };
    const cluster = new Cluster(['n1', 'n2', 'n3'], { maxEntriesPerMsg: 2 }, { logs, terms: { n1: 4, n2: 4, n3: 4 } });
    cluster.elect('n1');
    propose(cluster, 'n1', 'after');
    cluster.tick(3);
    const reference = cluster.member('n1').log.entries(1, cluster.core('n1').lastIndex + 1, Infinity);
    for (const id of ['n2', 'n3']) {
      assert.deepEqual(cluster.member(id).log.entries(1, cluster.core(id).lastIndex + 1, Infinity), reference, `${id} log`);
      assert.deepEqual(cluster.commands(id), cluster.commands('n1'));
    }
    // Fast back-off: one rejection per conflicting term, not one per entry.
    for (const id of ['n2', 'n3']) {
      const rejections = cluster.delivered.filter((m) => m.type === 'appendEntriesResponse' && !m.success && m.from === id);
      assert.ok(rejections.length <= 2, `${id}: ${rejections.length} rejections`);
    }
  });

  test('a follower never commits beyond the last entry the leader verified', () => {
    const config = configurationEntry(1, 1, voters(['n1', 'n2']));
    const n1 = new Raft({ id: 'n1', storage: logOf([config, command(2, 1), command(3, 3), command(4, 3)]), rng: () => 0, hardState: { term: 3, vote: '', commitIndex: 0 } });
    n1.step({ type: 'appendEntries', from: 'n2', to: 'n1', term: 4, prevLogEntry: 1, prevLogTerm: 1, entries: [command(2, 1)], leaderCommitIndex: 10 });
    assert.equal(n1.commitIndex, 2, 'entries 3 and 4 were not verified against the leader');
  });

  test('commit rule (section 5.4.2, Figure 8): entries of an earlier term are never committed by counting replicas', () => {
    const config = configurationEntry(1, 1, voters(['s1', 's2', 's3', 's4', 's5']));
    const logs = {
      s1: [config, command(2, 2)],
      s2: [config, command(2, 2)],
      s3: [config],
      s4: [config],
      s5: [config, command(2, 3)],
    };
    const terms = { s1: 3, s2: 3, s3: 3, s4: 3, s5: 3 };
    const cluster = new Cluster(['s1', 's2', 's3', 's4', 's5'], { maxEntriesPerMsg: 1, preVote: false, checkQuorum: false }, { logs, terms });
    // (c): s1 leads term 4 and replicates index 2 (term 2) to a majority, but not its own entry.
    cluster.isolate('s5');
    cluster.intercept = (m) => (m.type === 'appendEntries' ? { ...m, entries: m.entries.filter((e) => e.term !== 4) } : m);
    cluster.elect('s1');
    assert.equal(cluster.core('s1').term, 4);
    cluster.tick(5, ['s1']);
    const replicas = ['s1', 's2', 's3', 's4'].filter((id) => cluster.core(id).termAt(2) === 2);
    assert.ok(replicas.length >= 3, 'index 2 from term 2 is on a majority');
    assert.ok(cluster.core('s1').commitIndex < 2, 'yet it is not committed');
    // (d): s1 crashes; s5 wins term 5 with its term-3 entry and overwrites index 2 everywhere.
    cluster.crash('s1');
    cluster.heal();
    cluster.isolate('s1');
    cluster.elect('s5');
    cluster.tick(5, ['s5']);
    for (const id of ['s2', 's3', 's4', 's5']) {
      assert.equal(cluster.core(id).termAt(2), 3, `${id} holds s5's entry`);
      assert.equal(cluster.member(id).applied.find((e) => e.index === 2)?.term ?? 3, 3, `${id} applied s5's entry`);
    }
  });

  test('commit rule (section 5.4.2): an entry of the current term on a majority commits the earlier ones with it', () => {
    const config = configurationEntry(1, 1, voters(['s1', 's2', 's3']));
    const logs = { s1: [config, command(2, 2)], s2: [config], s3: [config] };
    const cluster = new Cluster(['s1', 's2', 's3'], { maxEntriesPerMsg: 1 }, { logs, terms: { s1: 3, s2: 3, s3: 3 } });
    cluster.elect('s1');
    cluster.tick(3, ['s1']);
    assert.equal(cluster.core('s1').commitIndex, 3, 'the no-op at 3 (term 4) commits 2 (term 2) too');
    assert.equal(cluster.core('s1').termAt(3), cluster.core('s1').term);
  });

  test('a leader appends a no-op when elected; proposals return their index and term', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.elect('n1');
    const n1 = cluster.core('n1');
    assert.equal(n1.lastIndex, 2);
    assert.equal(cluster.member('n1').log.get(2)?.type, LOG_TYPE.noop);
    const at = propose(cluster, 'n1', 'hello');
    assert.deepEqual(at, { index: 3, term: n1.term });
    assert.deepEqual(cluster.commands('n2'), ['hello']);
    const refused = cluster.core('n2').propose(Buffer.from('no'));
    assert.ok(!refused.ok && refused.error.code === 'ERR_NOT_LEADER' && refused.error.leaderId === 'n1');
  });

  test('the in-flight window bounds unacknowledged AppendEntries per follower', () => {
    const cluster = new Cluster(['n1', 'n2'], { maxInflightMsgs: 2, maxEntriesPerMsg: 1 });
    cluster.elect('n1');
    cluster.isolate('n2');
    // n2 is in replicate state; with its answers lost at most two messages carry new entries.
    const n1 = cluster.core('n1');
    for (let i = 0; i < 10; i++) assert.ok(n1.propose(Buffer.from(`p${i}`)).ok);
    const ready = n1.ready();
    const appends = ready.messages.filter((m) => m.type === 'appendEntries' && m.entries.length > 0);
    assert.equal(appends.length, 2);
    n1.advance(ready);
  });

  test('committed entries are handed out only once durable, and commitIndex never decreases', () => {
    const cluster = new Cluster(['n1']);
    cluster.elect('n1');
    const n1 = cluster.core('n1');
    assert.ok(n1.propose(Buffer.from('one')).ok);
    const first = n1.ready();
    assert.equal(first.entries.length, 1);
    assert.equal(first.committedEntries.length, 0, 'not durable yet');
    cluster.member('n1').log.write(first.entries);
    n1.advance(first);
    const second = n1.ready();
    assert.equal(second.committedEntries.length, 1);
    assert.ok(second.hardState !== undefined && second.hardState.commitIndex === 3);
    n1.advance(second);
  });
});

describe('raft: snapshots', () => {
  test('snapshot install to a lagging follower, which then resumes replication', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3'], { trailingLogs: 0 });
    cluster.elect('n1');
    cluster.isolate('n3');
    for (let i = 0; i < 20; i++) propose(cluster, 'n1', `v${i}`);
    const meta = cluster.snapshot('n1');
    assert.ok(cluster.core('n1').firstIndex > cluster.core('n3').lastIndex + 1, 'the entries n3 needs are compacted');
    cluster.heal();
    cluster.tick(3);
    assert.ok(cluster.delivered.some((m) => m.type === 'installSnapshot' && m.to === 'n3' && m.snapshot.index === meta.index));
    assert.equal(cluster.member('n3').snapshot?.meta.index, meta.index);
    propose(cluster, 'n1', 'after');
    cluster.tick(1);
    assert.deepEqual(cluster.commands('n3'), cluster.commands('n1'));
    assert.equal(cluster.core('n3').appliedIndex, cluster.core('n1').appliedIndex);
    // A restart from the installed snapshot keeps going.
    cluster.crash('n3');
    cluster.start('n3');
    propose(cluster, 'n1', 'later');
    cluster.tick(1);
    assert.deepEqual(cluster.commands('n3'), cluster.commands('n1'));
  });

  test('compaction keeps a trailing window and never passes the applied index', () => {
    const cluster = new Cluster(['n1'], { trailingLogs: 5 });
    cluster.elect('n1');
    for (let i = 0; i < 20; i++) propose(cluster, 'n1', `v${i}`);
    const meta = cluster.snapshot('n1');
    assert.equal(cluster.core('n1').firstIndex, meta.index - 5 + 1);
    assert.throws(() => cluster.core('n1').compactTo({ ...meta, index: meta.index + 5 }), /beyond applied/);
  });
});

describe('raft: membership', () => {
  test('membership changes one server at a time: add a non-voter, promote it, remove a voter', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.members.set('n4', { id: 'n4', core: undefined, log: new MemoryLog(), hard: { term: 0, vote: '', commitIndex: 0 }, snapshot: undefined, incoming: new Map(), applied: [], reads: [], restarts: 0 });
    cluster.start('n4');
    cluster.elect('n1');
    const n1 = cluster.core('n1');
    const added = n1.changeConfiguration({ op: 'addNonvoter', id: 'n4', address: 'n4:8300' });
    assert.ok(added.ok);
    // Takes effect on append; the next change waits for it to commit.
    assert.ok(n1.configuration.servers.some((s) => s.id === 'n4' && s.suffrage === SUFFRAGE.nonvoter));
    const second = n1.changeConfiguration({ op: 'promote', id: 'n4' });
    assert.ok(!second.ok && second.error.code === 'ERR_CONFIGURATION_PENDING');
    cluster.drain();
    cluster.tick(1);
    assert.deepEqual(cluster.commands('n4'), cluster.commands('n1'));
    assert.equal(cluster.core('n4').configuration.index, added.index);
    const stale = n1.changeConfiguration({ op: 'promote', id: 'n4', prevIndex: added.index - 1 });
    assert.ok(!stale.ok && stale.error.code === 'ERR_CONFIGURATION_CHANGED');
    assert.ok(n1.changeConfiguration({ op: 'promote', id: 'n4', prevIndex: added.index }).ok);
    cluster.tick(1);
    assert.ok(cluster.core('n4').configuration.servers.every((s) => s.suffrage === SUFFRAGE.voter));
    // The stored entry is hashicorp's {Servers: [{Address, ID, Suffrage}]}.
    const entry = cluster.member('n4').log.get(cluster.core('n4').configuration.index)!;
    assert.equal(entry.type, LOG_TYPE.configuration);
    assert.deepEqual(decode(entry.data), { Servers: ['n1', 'n2', 'n3', 'n4'].map((id) => ({ Address: `${id}:8300`, ID: id, Suffrage: 0 })) });
    // Removing the leader: it steps down once the change commits, and the rest elect a leader.
    assert.ok(n1.changeConfiguration({ op: 'removeServer', id: 'n1' }).ok);
    cluster.tick(2);
    assert.equal(n1.state, 'follower');
    cluster.tick(4 * T, ['n2', 'n3', 'n4']);
    const leaders = ['n2', 'n3', 'n4'].filter((id) => cluster.core(id).state === 'leader');
    assert.equal(leaders.length, 1);
    assert.ok(cluster.core(leaders[0]!).configuration.servers.every((s) => s.id !== 'n1'));
  });

  test('a removed follower receives the entry that removed it, then nothing more (hashicorp replicates up to it)', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.elect('n1');
    const n1 = cluster.core('n1');
    const removal = n1.changeConfiguration({ op: 'removeServer', id: 'n3' });
    assert.ok(removal.ok);
    cluster.drain();
    cluster.tick(2);
    assert.equal(cluster.core('n3').configuration.index, removal.index, 'n3 holds its removal');
    assert.ok(cluster.core('n3').configuration.servers.every((s) => s.id !== 'n3'));
    assert.ok(n1.status().progress.every((p) => p.id !== 'n3'), 'not reported as a follower');
    propose(cluster, 'n1', 'after-removal');
    cluster.drain();
    cluster.tick(2);
    assert.ok(!cluster.commands('n3').includes('after-removal'), 'no entry after the removal reaches it');
    assert.ok(cluster.commands('n2').includes('after-removal'));
  });

  test('an unreachable removed follower is given up on after an election timeout', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.elect('n1');
    cluster.isolate('n3');
    const removal = cluster.core('n1').changeConfiguration({ op: 'removeServer', id: 'n3' });
    assert.ok(removal.ok);
    cluster.tick(2 * T, ['n1', 'n2']);
    cluster.heal();
    propose(cluster, 'n1', 'later');
    cluster.drain();
    cluster.tick(2, ['n1', 'n2']);
    assert.ok(!cluster.commands('n3').includes('later'));
    assert.notEqual(cluster.core('n3').configuration.index, removal.index, 'never told');
  });

  test('membership changes wait for the leader to commit an entry of its term, and keep at least one voter', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.intercept = (m) => (m.type === 'appendEntries' && m.entries.length > 0 ? undefined : m);
    cluster.elect('n1');
    const early = cluster.core('n1').changeConfiguration({ op: 'removeServer', id: 'n3' });
    assert.ok(!early.ok && early.error.code === 'ERR_CONFIGURATION_PENDING');
    const single = new Cluster(['n1']);
    single.elect('n1');
    const last = single.core('n1').changeConfiguration({ op: 'removeServer', id: 'n1' });
    assert.ok(!last.ok && last.error.code === 'ERR_CONFIGURATION_INVALID');
    const unknown = single.core('n1').changeConfiguration({ op: 'promote', id: 'n9' });
    assert.ok(!unknown.ok && unknown.error.code === 'ERR_CONFIGURATION_INVALID');
  });

  test('bootstrap only on a server with no state', () => {
    const cluster = new Cluster(['n1']);
    const again = cluster.core('n1').bootstrap(voters(['n1']));
    assert.ok(!again.ok && again.error.code === 'ERR_CANT_BOOTSTRAP');
    const fresh = new Raft({ id: 'x', storage: new MemoryLog(), rng: () => 0 });
    const duplicate = fresh.bootstrap([...voters(['a']), { suffrage: SUFFRAGE.voter, id: 'a', address: 'b:1' }]);
    assert.ok(!duplicate.ok && duplicate.error.code === 'ERR_CONFIGURATION_INVALID');
  });

  test('configuration encoding round-trips and matches hashicorp/raft\'s field names', () => {
    const servers: RaftServer[] = [
      { suffrage: SUFFRAGE.voter, id: 'a', address: '10.0.0.1:8300' },
      { suffrage: SUFFRAGE.nonvoter, id: 'b', address: '10.0.0.2:8300' },
    ];
    assert.deepEqual(decodeConfiguration(encodeConfiguration(servers)), servers);
  });
});

describe('raft: leadership transfer', () => {
  test('leadership transfer: the leader catches the target up, then TimeoutNow makes it campaign at once', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.elect('n1');
    const term = cluster.core('n1').term;
    cluster.isolate('n2');
    propose(cluster, 'n1', 'behind');
    cluster.heal();
    cluster.blocked.add('n1>n2');
    assert.ok(cluster.core('n1').transferLeadership('n2').ok);
    const dropped = cluster.core('n1').propose(Buffer.from('no'));
    assert.ok(!dropped.ok && dropped.error.code === 'ERR_PROPOSALS_DROPPED');
    assert.ok(!cluster.delivered.some((m) => m.type === 'timeoutNow'));
    cluster.blocked.clear();
    cluster.tick(1, ['n1']);
    assert.equal(cluster.core('n2').state, 'leader');
    assert.equal(cluster.core('n2').term, term + 1);
    assert.equal(cluster.core('n1').state, 'follower');
    assert.deepEqual(cluster.commands('n2'), ['behind']);
  });

  test('leadership transfer is abandoned after an election timeout', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.elect('n1');
    cluster.isolate('n2');
    assert.ok(cluster.core('n1').transferLeadership('n2').ok);
    cluster.tick(T + 1, ['n1']);
    assert.equal(cluster.core('n1').state, 'leader');
    assert.equal(cluster.core('n1').status().leadTransferee, '');
    assert.ok(cluster.core('n1').propose(Buffer.from('ok')).ok);
    const self = cluster.core('n1').transferLeadership('n1');
    assert.ok(!self.ok && self.error.code === 'ERR_TRANSFER_TARGET');
  });
});

describe('raft: reads', () => {
  test('ReadIndex waits for a committed entry in the current term', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.intercept = (m) => (m.type === 'appendEntries' && m.entries.length > 0 ? undefined : m);
    cluster.elect('n1');
    assert.ok(cluster.core('n1').readIndex(7).ok);
    cluster.tick(2, ['n1']);
    assert.deepEqual(cluster.member('n1').reads, [], 'the no-op is not committed yet');
    cluster.heal();
    cluster.tick(1, ['n1']);
    const read = cluster.member('n1').reads[0];
    assert.ok(read?.ok);
    assert.equal(read.requestId, 7);
    assert.equal(read.index, cluster.core('n1').commitIndex);
  });

  test('ReadIndex waits for a heartbeat quorum, and a deposed leader\'s read fails', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.elect('n1');
    propose(cluster, 'n1', 'w');
    cluster.isolate('n1');
    assert.ok(cluster.core('n1').readIndex(1).ok);
    cluster.drain();
    assert.deepEqual(cluster.member('n1').reads, [], 'no majority answered');
    cluster.tick(2 * T, ['n1']);
    assert.equal(cluster.core('n1').state, 'follower');
    const failed = cluster.member('n1').reads[0];
    assert.ok(failed !== undefined && !failed.ok && failed.error.code === 'ERR_NOT_LEADER');
    cluster.heal();
    cluster.elect('n2');
    assert.ok(cluster.core('n2').readIndex(2).ok);
    cluster.drain();
    const served = cluster.member('n2').reads[0];
    assert.ok(served?.ok && served.index >= 3);
    const notLeader = cluster.core('n3').readIndex(3);
    assert.ok(!notLeader.ok && notLeader.error.code === 'ERR_NOT_LEADER' && notLeader.error.leaderId === 'n2');
  });

  test('followers count ticks since last contact with the leader', () => {
    const cluster = new Cluster(['n1', 'n2', 'n3']);
    cluster.elect('n1');
    assert.equal(cluster.core('n1').lastContactTicks, 0);
    assert.equal(cluster.core('n2').lastContactTicks, 0);
    cluster.isolate('n2');
    cluster.tick(5, ['n2']);
    assert.equal(cluster.core('n2').lastContactTicks, 5);
  });
});

describe('raft: progress and quorum math', () => {
  test('quorumValue is the value a majority has reached', () => {
    assert.equal(quorumValue([5]), 5);
    assert.equal(quorumValue([5, 3]), 3);
    assert.equal(quorumValue([5, 3, 1]), 3);
    assert.equal(quorumValue([9, 7, 5, 3, 1]), 5);
    assert.equal(quorumValue([]), 0);
  });

  test('quorum math agrees with a naive majority count', () => {
    const random = mulberry32(42);
    for (let round = 0; round < 500; round++) {
      const values = Array.from({ length: 1 + Math.floor(random() * 7) }, () => Math.floor(random() * 10));
      const naive = Math.max(0, ...values.filter((v) => values.filter((w) => w >= v).length > values.length / 2));
      assert.equal(quorumValue(values), naive, String(values));
      const ids = values.map((_, i) => `v${i}`);
      const answers = new Map<string, boolean>();
      for (const id of ids) if (random() < 0.7) answers.set(id, random() < 0.5);
      const granted = [...answers.values()].filter(Boolean).length;
      const open = ids.length - answers.size;
      const expected = granted > ids.length / 2 ? 'won' : granted + open > ids.length / 2 ? 'pending' : 'lost';
      assert.equal(voteResult(ids, answers), expected);
    }
  });

  test('inflights free in order and bound the window', () => {
    const inflights = new Inflights(3);
    inflights.add(5);
    inflights.add(7);
    inflights.add(9);
    assert.ok(inflights.isFull());
    assert.throws(() => inflights.add(11), /overflow/);
    inflights.freeLE(7);
    assert.equal(inflights.size, 1);
    inflights.freeFirstOne();
    assert.equal(inflights.size, 0);
  });

  test('progress: a stale rejection is ignored; a fresh one backs off to the hint', () => {
    const progress = new Progress(11, 4);
    progress.match = 3;
    assert.equal(progress.maybeDecrTo(5, 2), false, 'probe state: rejection of an index we did not send last');
    assert.equal(progress.maybeDecrTo(10, 6), true);
    assert.equal(progress.next, 7);
    progress.becomeReplicate();
    assert.equal(progress.maybeDecrTo(2, 0), false, 'at or below match: stale');
  });
});

function logOf(entries: LogEntry[]): MemoryLog {
  const log = new MemoryLog();
  log.write(entries);
  return log;
}
