// The Raft node shell over real TCP on 127.0.0.1: bootstrap, replication to every FSM, leader
// failover without losing acknowledged writes, restart from the data directory, and a lagging
// follower caught up by InstallSnapshot after the leader compacted its log.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeCommand, Fsm } from '../lib/fsm.js';
import { kvsGet } from '../lib/kvs.js';
import { createLogger, type Logger } from '../lib/log.js';
import { RaftNode, type RaftNodeOptions } from '../lib/raftnode.js';
import type { RaftServer } from '../lib/snapshot.js';
import { StateStore } from '../lib/state.js';
import { freePort, waitFor } from './support.js';

const ELECTION_TIMEOUT_MS = 200;
const running = new Set<RaftNode>();
const tempDirs: string[] = [];

after(async () => {
  for (const node of running) await node.shutdown();
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

function capturingLogger(lines: string[]): Logger {
  return createLogger({ level: 'info', json: false, nowMs: () => Date.now(), sink: { write: (line) => lines.push(line) } });
}

function newFsm(): Fsm {
  return new Fsm(new StateStore({ nowMs: () => Date.now() }));
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'raftnode-'));
  tempDirs.push(dir);
  return dir;
}

async function servers(count: number): Promise<RaftServer[]> {
  const result: RaftServer[] = [];
  for (let i = 1; i <= count; i++) result.push({ suffrage: 0, id: `s${i}`, address: `127.0.0.1:${await freePort()}` });
  return result;
}

interface Member {
  node: RaftNode;
  fsm: Fsm;
  readonly server: RaftServer;
  readonly dataDir: string | undefined;
  readonly lines: string[];
}

async function startMember(server: RaftServer, all: readonly RaftServer[], dataDir: string | undefined, extra: Partial<RaftNodeOptions> = {}): Promise<Member> {
  const fsm = newFsm();
  const lines: string[] = [];
  const node = await RaftNode.start({
    id: server.id,
    address: server.address,
    ...(dataDir === undefined ? { inMemory: true } : { dataDir }),
    bootstrap: all,
    fsm,
    logger: capturingLogger(lines),
    electionTimeoutMs: ELECTION_TIMEOUT_MS,
    transport: { timeoutMs: 2000 },
    ...extra,
  });
  running.add(node);
  return { node, fsm, server, dataDir, lines };
}

async function stop(member: Member): Promise<void> {
  await member.node.shutdown();
  running.delete(member.node);
  const failures = member.lines.filter((line) => line.includes('raft node failed') || line.includes('another leader'));
  assert.deepEqual(failures, [], `${member.server.id} logged failures`);
}

function kvSet(node: RaftNode, key: string, value: string): Promise<unknown> {
  return node.apply(encodeCommand({ type: 'kvs', op: 'set', entry: { Key: key, Value: Buffer.from(value) } })).then((result) => {
    assert.ok(result.ok, 'kv set applied');
    return result.value;
  });
}

function kvValue(fsm: Fsm, key: string): string | undefined {
  const record = fsm.state.read((txn) => kvsGet(txn, key)).value;
  return record === undefined ? undefined : Buffer.from(record.Value ?? []).toString();
}

async function oneLeader(members: readonly Member[]): Promise<Member> {
  return waitFor('exactly one leader', () => {
    const leaders = members.filter((m) => m.node.isLeader);
    if (leaders.length !== 1) return undefined;
    const leader = leaders[0]!;
    // Everyone else knows it too.
    return members.every((m) => m.node.leader() === leader.server.address) ? leader : undefined;
  });
}

async function allHave(members: readonly Member[], expected: ReadonlyMap<string, string>): Promise<void> {
  await waitFor(`${expected.size} keys on ${members.length} servers`, () => {
    for (const member of members) for (const [key, value] of expected) if (kvValue(member.fsm, key) !== value) return undefined;
    return true;
  });
}

describe('RaftNode', { timeout: 60_000 }, () => {
  test('a single node bootstraps, applies KV commands and reads them back', async () => {
    const [server] = await servers(1);
    const member = await startMember(server!, [server!], undefined);
    try {
      await oneLeader([member]);
      assert.equal(await kvSet(member.node, 'a', '1'), true);
      assert.equal(await kvSet(member.node, 'b', '2'), true);
      await member.node.readIndex();
      assert.equal(kvValue(member.fsm, 'a'), '1');
      assert.equal(kvValue(member.fsm, 'b'), '2');
      assert.deepEqual(member.node.peers(), [server!.address]);
      assert.equal(member.node.lastContactMs, 0);
    } finally {
      await stop(member);
    }
    await assert.rejects(member.node.apply(encodeCommand({ type: 'tombstone-reap', reapIndex: 0 })), { code: 'ERR_SHUTDOWN' });
  });

  test('a 3-server cluster elects one leader, replicates to every FSM and survives losing the leader', async () => {
    const all = await servers(3);
    const members = await Promise.all(all.map((s) => startMember(s, all, undefined)));
    try {
      const leader = await oneLeader(members);
      const acknowledged = new Map<string, string>();
      await Promise.all(Array.from({ length: 20 }, (_, i) => kvSet(leader.node, `k${i}`, `v${i}`).then(() => acknowledged.set(`k${i}`, `v${i}`))));
      await allHave(members, acknowledged);
      const follower = members.find((m) => m !== leader)!;
      await assert.rejects(kvSet(follower.node, 'x', 'y'), { code: 'ERR_NOT_LEADER', leaderAddress: leader.server.address });

      await stop(leader);
      const survivors = members.filter((m) => m !== leader);
      const next = await oneLeader(survivors);
      assert.notEqual(next.server.id, leader.server.id);
      for (let i = 20; i < 30; i++) {
        await kvSet(next.node, `k${i}`, `v${i}`);
        acknowledged.set(`k${i}`, `v${i}`);
      }
      await next.node.verifyLeader();
      await allHave(survivors, acknowledged);
      assert.deepEqual(next.node.peers().sort(), all.map((s) => s.address).sort());
    } finally {
      for (const member of members) await stop(member);
    }
  });

  test('transfers leadership on request, and adds then removes a server through the log', async () => {
    const all = await servers(4);
    const initial = all.slice(0, 3);
    const members = await Promise.all(initial.map((s) => startMember(s, initial, undefined)));
    try {
      const leader = await oneLeader(members);
      const changes: string[] = [];
      for (const member of members) member.node.onLeadershipChange((isLeader) => changes.push(`${member.server.id}:${isLeader}`));
      await kvSet(leader.node, 'before', 'transfer');
      await leader.node.transferLeadership();
      assert.equal(leader.node.isLeader, false);
      const next = await oneLeader(members);
      assert.notEqual(next.server.id, leader.server.id);
      await assert.rejects(leader.node.transferLeadership(), { code: 'ERR_NOT_LEADER' });
      await waitFor('leadership change events', () => (changes.length === 2 ? true : undefined));
      assert.deepEqual(changes.sort(), [`${leader.server.id}:false`, `${next.server.id}:true`].sort());

      // A fourth server started with no bootstrap list joins when the leader adds it.
      const joining = await startMember(all[3]!, [], undefined, { bootstrap: undefined });
      members.push(joining);
      await next.node.changeConfiguration({ op: 'addVoter', id: all[3]!.id, address: all[3]!.address });
      assert.deepEqual(next.node.peers().sort(), all.map((s) => s.address).sort());
      await kvSet(next.node, 'after', 'join');
      await allHave(members, new Map([['before', 'transfer'], ['after', 'join']]));

      const removed = members.find((m) => m !== next && m !== joining)!;
      await next.node.changeConfiguration({ op: 'removeServer', id: removed.server.id });
      assert.ok(!next.node.peers().includes(removed.server.address), 'removed from the peers');
      await assert.rejects(next.node.changeConfiguration({ op: 'removeServer', id: 'nobody' }), (error: Error & { code?: string }) => typeof error.code === 'string');
    } finally {
      for (const member of members) await stop(member);
    }
  });

  test('a node restarted from its data dir gets back all committed state (log and snapshot)', async () => {
    const [server] = await servers(1);
    const dataDir = await tempDir();
    const options = { snapshotThreshold: 8, snapshotIntervalMs: 20, trailingLogs: 3 };
    let member = await startMember(server!, [server!], dataDir, options);
    const expected = new Map<string, string>();
    try {
      await oneLeader([member]);
      for (let i = 0; i < 25; i++) {
        await kvSet(member.node, `r${i}`, `${i}`);
        expected.set(`r${i}`, `${i}`);
      }
      await waitFor('a snapshot', () => (member.lines.some((l) => l.includes('snapshot complete')) ? true : undefined));
    } finally {
      await stop(member);
    }
    const termBefore = member.node.status().term;
    member = await startMember(server!, [server!], dataDir, options);
    try {
      assert.ok(member.lines.some((l) => l.includes('restored from snapshot')), 'restarted from a snapshot');
      await oneLeader([member]);
      await member.node.readIndex();
      await allHave([member], expected);
      assert.ok(member.node.status().term > termBefore, 'a new term after restart');
      await kvSet(member.node, 'after', 'restart');
      assert.equal(kvValue(member.fsm, 'after'), 'restart');
    } finally {
      await stop(member);
    }
  });

  test('recover (peers.json): a lone survivor of three, restarted with itself as the configuration, leads with all its state', async () => {
    const all = await servers(3);
    const dirs = await Promise.all(all.map(() => tempDir()));
    const options = { snapshotThreshold: 8, snapshotIntervalMs: 20, trailingLogs: 3 };
    const members = await Promise.all(all.map((server, i) => startMember(server, all, dirs[i], options)));
    const expected = new Map<string, string>();
    try {
      const leader = await oneLeader(members);
      for (let i = 0; i < 20; i++) {
        await kvSet(leader.node, `p${i}`, `${i}`);
        expected.set(`p${i}`, `${i}`);
      }
      await allHave(members, expected);
    } finally {
      for (const member of members) await stop(member);
    }
    // Two servers are gone for good: the third cannot elect itself without the operator.
    const survivor = all[2]!;
    const recovered = await startMember(survivor, [], dirs[2], { ...options, recover: [survivor] });
    try {
      assert.ok(recovered.lines.some((l) => l.includes('recovered cluster configuration')), 'recovered');
      await oneLeader([recovered]);
      await allHave([recovered], expected);
      assert.deepEqual(recovered.node.status().configuration.servers.map((s) => s.id), [survivor.id]);
      await kvSet(recovered.node, 'after', 'recovery');
    } finally {
      await stop(recovered);
    }
  });

  test('recover refuses a server with no state, and an invalid configuration', async () => {
    const [server] = await servers(1);
    await assert.rejects(startMember(server!, [], await tempDir(), { recover: [server!] }), /refused to recover cluster with no initial state/);
    const dataDir = await tempDir();
    const member = await startMember(server!, [server!], dataDir);
    await oneLeader([member]);
    await stop(member);
    await assert.rejects(startMember(server!, [], dataDir, { recover: [{ ...server!, suffrage: 1 }] }), /need at least one voter in configuration/);
  });

  test('a lagging follower catches up by InstallSnapshot after the leader compacted its log', async () => {
    const all = await servers(3);
    const dirs = [await tempDir(), await tempDir(), await tempDir()];
    const options = { snapshotThreshold: 10, snapshotIntervalMs: 20, trailingLogs: 2 };
    const members = await Promise.all(all.map((s, i) => startMember(s, all, dirs[i], options)));
    try {
      const leader = await oneLeader(members);
      const expected = new Map<string, string>();
      for (let i = 0; i < 5; i++) {
        await kvSet(leader.node, `s${i}`, `${i}`);
        expected.set(`s${i}`, `${i}`);
      }
      await allHave(members, expected);
      const laggingIndex = members.findIndex((m) => m !== leader);
      const lagging = members[laggingIndex]!;
      const laggingLastIndex = lagging.node.status().lastIndex;
      await stop(lagging);
      for (let i = 5; i < 60; i++) {
        await kvSet(leader.node, `s${i}`, `${i}`);
        expected.set(`s${i}`, `${i}`);
      }
      const compactedThrough = (): number => Math.max(0, ...leader.lines.map((l) => Number(/snapshot complete.*compactThrough=(\d+)/.exec(l)?.[1] ?? 0)));
      await waitFor('the leader compacted past the lagging follower', () => (compactedThrough() > laggingLastIndex ? true : undefined));
      const restarted = await startMember(lagging.server, all, lagging.dataDir, options);
      members[laggingIndex] = restarted;
      await allHave([restarted], expected);
      // The restored state is visible before the log is compacted and the install logged: wait for the line.
      await waitFor('the follower to log its InstallSnapshot', () => (restarted.lines.some((l) => l.includes('installed snapshot')) ? true : undefined));
      assert.ok(leader.lines.some((l) => l.includes('sent snapshot to follower')));
      await kvSet(leader.node, 'last', 'one');
      expected.set('last', 'one');
      await allHave(members, expected);
    } finally {
      for (const member of members) await stop(member);
    }
  });
});
