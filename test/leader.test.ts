import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { memberTags, nodeMeta } from '../lib/agent.js';
import * as catalog from '../lib/catalog.js';
import { loadConfig, NODE_HOST, type RuntimeConfig } from '../lib/config.js';
import { localMember, nodeTaggedAddresses } from '../lib/endpoints_agent.js';
import { encodeCommand, Fsm, type ApplyResult, type Command } from '../lib/fsm.js';
import {
  consulService,
  LeaderReconciler,
  raftChanges,
  RECONCILE_INTERVAL_MS,
  selfRegistration,
  type GossipMember,
  type LeaderReconcilerDeps,
  type Timers,
} from '../lib/leader.js';
import { createLogger, MemorySink } from '../lib/log.js';
import { Metrics } from '../lib/metrics.js';
import { StateError } from '../lib/schema.js';
import { MemberStatus } from '../lib/serfwire.js';
import { StateStore } from '../lib/state.js';

const NODE_ID = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
const host = { ...NODE_HOST, hostname: () => 'leader-test' };

/** Timers driven by hand: advance(ms) fires what is due, in order. */
class ManualTimers implements Timers {
  nowMs = 0;
  private nextId = 1;
  readonly pending = new Map<number, { atMs: number; callback: () => void; delayMs: number }>();
  setTimeout(callback: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.pending.set(id, { atMs: this.nowMs + delayMs, callback, delayMs });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  delays(): number[] {
    return [...this.pending.values()].map((timer) => timer.delayMs);
  }
  async advance(ms: number): Promise<void> {
    const until = this.nowMs + ms;
    for (;;) {
      const due = [...this.pending.entries()].filter(([, timer]) => timer.atMs <= until).sort(([, a], [, b]) => a.atMs - b.atMs)[0];
      if (!due) break;
      this.pending.delete(due[0]);
      this.nowMs = due[1].atMs;
      due[1].callback();
      await settle();
    }
    this.nowMs = until;
  }
}

/** Lets promise continuations (the reconcile run) finish. */
async function settle(): Promise<void> {
  for (let round = 0; round < 10; round++) await new Promise<void>((resolve) => setImmediate(resolve));
}

function serverConfig(): RuntimeConfig {
  return loadConfig(['-server', '-bootstrap', '-node', 'n1', '-bind', '127.0.0.1', '-advertise', '10.0.0.7', '-data-dir', '/unused', '-node-meta', 'rack:r1'], host).config;
}

interface Harness {
  readonly state: StateStore;
  readonly timers: ManualTimers;
  readonly applied: Command[];
  readonly registration: LeaderReconciler;
  isLeader: boolean;
  /** The LAN pool as the reconcile sees it; undefined: gossip not running yet. */
  members: GossipMember[] | undefined;
  failNext: number;
  apply(command: Command): Promise<ApplyResult>;
}

function harness(config = serverConfig()): Harness {
  const state = new StateStore({ nowMs: () => 0 });
  const fsm = new Fsm(state);
  const timers = new ManualTimers();
  let index = 0;
  const h: Harness = {
    state,
    timers,
    applied: [],
    isLeader: true,
    members: undefined,
    failNext: 0,
    registration: undefined as unknown as LeaderReconciler,
    async apply(command) {
      return fsm.apply(++index, encodeCommand(command));
    },
  };
  const deps: LeaderReconcilerDeps = {
    isLeader: () => h.isLeader,
    datacenter: config.datacenter,
    selfName: config.nodeName,
    members: () => h.members,
    read: (query) => state.read(query),
    apply: async (command) => {
      h.applied.push(command);
      if (h.failNext > 0) {
        h.failNext -= 1;
        throw new Error('not leader');
      }
      return h.apply(command);
    },
    desiredSelf: () =>
      selfRegistration({
        datacenter: config.datacenter,
        nodeId: NODE_ID,
        member: localMember(config, memberTags(config, NODE_ID)),
        taggedAddresses: nodeTaggedAddresses(config),
        nodeMeta: nodeMeta(config),
      }),
    timers,
    nowMs: () => timers.nowMs,
    logger: createLogger({ level: 'error', json: false, nowMs: () => 0, sink: new MemorySink() }),
    metrics: new Metrics({ nowMs: () => timers.nowMs }),
  };
  (h as { registration: LeaderReconciler }).registration = new LeaderReconciler(deps);
  return h;
}

describe('the leader registers its own server', () => {
  test('the consul service carries handleAliveMember\'s Meta', () => {
    const config = serverConfig();
    const service = consulService(localMember(config, memberTags(config, NODE_ID)));
    assert.equal(
      JSON.stringify(service),
      '{"ID":"consul","Service":"consul","Port":8300,"Weights":{"Passing":1,"Warning":1},' +
        '"Meta":{"non_voter":"false","raft_version":"3","read_replica":"false","serf_protocol_current":"2","serf_protocol_max":"5","serf_protocol_min":"1","version":"1.21.0"}}',
    );
    // A client's member has no consul service (IsConsulServer is false).
    const client = loadConfig(['-node', 'c1', '-bind', '127.0.0.1', '-data-dir', '/unused'], host).config;
    assert.equal(consulService(localMember(client, memberTags(client, NODE_ID))), undefined);
    // gRPC ports advertised in tags become service meta.
    const withGrpc = { ...localMember(config, memberTags(config, NODE_ID)), Tags: { ...memberTags(config, NODE_ID), grpc_port: '8502' } };
    assert.equal(consulService(withGrpc)?.Meta?.['grpc_port'], '8502');
  });

  test('writes once, then nothing while the catalog matches', async () => {
    const h = harness();
    assert.equal(await h.registration.reconcileOnce(), 'written');
    assert.equal(h.applied.length, 1);
    assert.equal(await h.registration.reconcileOnce(), 'in-sync');
    assert.equal(await h.registration.reconcileOnce(), 'in-sync');
    assert.equal(h.applied.length, 1);

    const node = h.state.read((txn) => catalog.getNode(txn, 'n1')).value;
    assert.equal(node?.ID, NODE_ID);
    assert.equal(node?.Address, '10.0.0.7');
    assert.deepEqual(node?.TaggedAddresses, { lan: '10.0.0.7', lan_ipv4: '10.0.0.7', wan: '10.0.0.7', wan_ipv4: '10.0.0.7' });
    assert.deepEqual(node?.Meta, { rack: 'r1', 'consul-network-segment': '', 'consul-version': '1.21.0' });
    const service = h.state.read((txn) => catalog.nodeService(txn, 'n1', 'consul')).value;
    assert.equal(service?.Port, 8300);
    assert.deepEqual(service?.Tags, []);
    const check = h.state.read((txn) => catalog.nodeCheck(txn, 'n1', 'serfHealth')).value;
    assert.equal(check?.Name, 'Serf Health Status');
    assert.equal(check?.Status, 'passing');
    assert.equal(check?.Output, 'Agent alive and reachable');
    assert.equal(check?.ServiceID, '');
  });

  test('repairs a deleted serfHealth check, a critical one, and a changed service', async () => {
    const h = harness();
    await h.registration.reconcileOnce();
    await h.apply({ type: 'deregister', request: { Node: 'n1', CheckID: 'serfHealth' } });
    assert.equal(h.state.read((txn) => catalog.nodeCheck(txn, 'n1', 'serfHealth')).value, undefined);
    assert.equal(await h.registration.reconcileOnce(), 'written');
    assert.equal(h.state.read((txn) => catalog.nodeCheck(txn, 'n1', 'serfHealth')).value?.Status, 'passing');

    await h.apply({ type: 'register', request: { Node: 'n1', Address: '10.0.0.7', Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'critical' } } });
    assert.equal(await h.registration.reconcileOnce(), 'written');
    assert.equal(h.state.read((txn) => catalog.nodeCheck(txn, 'n1', 'serfHealth')).value?.Status, 'passing');

    await h.apply({ type: 'register', request: { Node: 'n1', Address: '10.0.0.7', Service: { ID: 'consul', Service: 'consul', Port: 9999 } } });
    assert.equal(await h.registration.reconcileOnce(), 'written');
    assert.equal(h.state.read((txn) => catalog.nodeService(txn, 'n1', 'consul')).value?.Port, 8300);
    assert.equal(await h.registration.reconcileOnce(), 'in-sync');
  });

  test('a follower writes nothing', async () => {
    const h = harness();
    h.isLeader = false;
    assert.equal(await h.registration.reconcileOnce(), 'not-leader');
    assert.equal(h.applied.length, 0);
  });

  test('retries with exponential back-off, then settles on the reconcile interval', async () => {
    const h = harness();
    h.failNext = 3;
    h.registration.start();
    await settle();
    assert.equal(h.applied.length, 1);
    assert.deepEqual(h.timers.delays(), [1_000]);
    await h.timers.advance(1_000);
    assert.deepEqual(h.timers.delays(), [2_000]);
    await h.timers.advance(2_000);
    assert.deepEqual(h.timers.delays(), [4_000]);
    await h.timers.advance(4_000);
    assert.equal(h.applied.length, 4);
    assert.equal(h.state.read((txn) => catalog.nodeCheck(txn, 'n1', 'serfHealth')).value?.Status, 'passing');
    assert.deepEqual(h.timers.delays(), [RECONCILE_INTERVAL_MS]);
    // Interval runs find the catalog in sync and write nothing.
    await h.timers.advance(RECONCILE_INTERVAL_MS * 3);
    assert.equal(h.applied.length, 4);
    h.registration.stop();
    assert.deepEqual(h.timers.delays(), []);
  });

  test('becoming leader reconciles at once; the interval repairs what was lost meanwhile', async () => {
    const h = harness();
    h.isLeader = false;
    h.registration.start();
    await settle();
    assert.equal(h.applied.length, 0);
    h.isLeader = true;
    h.registration.leadershipChanged(true);
    await settle();
    assert.equal(h.applied.length, 1);
    await h.apply({ type: 'deregister', request: { Node: 'n1', CheckID: 'serfHealth' } });
    await h.timers.advance(RECONCILE_INTERVAL_MS - 1);
    assert.equal(h.applied.length, 1);
    await h.timers.advance(1);
    assert.equal(h.applied.length, 2);
    assert.equal(h.state.read((txn) => catalog.nodeCheck(txn, 'n1', 'serfHealth')).value?.Status, 'passing');
    h.registration.stop();
    await h.timers.advance(RECONCILE_INTERVAL_MS * 2);
    assert.equal(h.applied.length, 2);
  });

  test('a refused command counts as a failure and is retried with back-off', async () => {
    const h = harness();
    h.apply = async () => ({ ok: false, error: new StateError('ERR_MISSING_NODE', 'Missing node registration') });
    h.registration.start();
    await settle();
    assert.equal(h.applied.length, 1);
    assert.deepEqual(h.timers.delays(), [1_000]);
    h.registration.stop();
  });
});

/** A LAN member as /v1/agent/members shows it; its node ID is a UUID derived from its name. */
function gossipMember(name: string, addr: string, status: number, tags: Record<string, string> = {}): GossipMember {
  const id = `00000000-0000-4000-8000-${Buffer.from(name).toString('hex').padStart(12, '0').slice(-12)}`;
  return { Name: name, Addr: addr, Tags: { role: 'node', dc: 'dc1', id, segment: '', build: '1.21.0:abc', vsn: '2', ...tags }, Status: status, ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2 };
}

/** This server as its own pool lists it. */
function selfMember(config = serverConfig()): GossipMember {
  return { ...localMember(config, memberTags(config, NODE_ID)), Status: MemberStatus.alive };
}

const serfCheck = (h: Harness, node: string) => h.state.read((txn) => catalog.nodeCheck(txn, node, 'serfHealth')).value;
const nodeOf = (h: Harness, node: string) => h.state.read((txn) => catalog.getNode(txn, node)).value;

describe('the leader reconciles the LAN pool into the catalog', () => {
  test('alive members: registered with serfHealth passing, servers with the consul service; then nothing while in sync', async () => {
    const h = harness();
    h.members = [selfMember(), gossipMember('c1', '10.0.0.21', MemberStatus.alive), gossipMember('s2', '10.0.0.22', MemberStatus.alive, { role: 'consul', port: '8300', expect: '3', raft_vsn: '3' })];
    assert.equal(await h.registration.reconcileOnce(), 'written');
    assert.equal(h.applied.length, 3);
    for (const name of ['n1', 'c1', 's2']) assert.equal(serfCheck(h, name)?.Status, 'passing', name);
    assert.equal(serfCheck(h, 'c1')?.Output, 'Agent alive and reachable');
    assert.equal(nodeOf(h, 'c1')?.Address, '10.0.0.21');
    assert.equal(nodeOf(h, 'c1')?.ID, gossipMember('c1', '', 0).Tags['id']);
    assert.equal(h.state.read((txn) => catalog.nodeService(txn, 's2', 'consul')).value?.Port, 8300);
    assert.equal(h.state.read((txn) => catalog.nodeService(txn, 'c1', 'consul')).value, undefined, 'a client has no consul service');
    assert.equal(await h.registration.reconcileOnce(), 'in-sync');
    assert.equal(h.applied.length, 3);
  });

  test("another member's registration does not clobber what its own agent wrote (SkipNodeUpdate)", async () => {
    const h = harness();
    await h.apply({ type: 'register', request: { Node: 'c1', Address: '10.0.0.21', TaggedAddresses: { lan: '10.0.0.21' }, NodeMeta: { rack: 'r9' } } });
    h.members = [selfMember(), gossipMember('c1', '10.0.0.21', MemberStatus.alive)];
    assert.equal(await h.registration.reconcileOnce(), 'written');
    assert.deepEqual(nodeOf(h, 'c1')?.Meta, { rack: 'r9' });
    assert.deepEqual(nodeOf(h, 'c1')?.TaggedAddresses, { lan: '10.0.0.21' });
    assert.equal(serfCheck(h, 'c1')?.Status, 'passing');
  });

  test('a failed member is marked critical (once); one the catalog never had stays out', async () => {
    const h = harness();
    h.members = [selfMember(), gossipMember('c1', '10.0.0.21', MemberStatus.alive)];
    await h.registration.reconcileOnce();
    h.members = [selfMember(), gossipMember('c1', '10.0.0.21', MemberStatus.failed), gossipMember('ghost', '10.0.0.29', MemberStatus.failed)];
    const before = h.applied.length;
    assert.equal(await h.registration.reconcileOnce(), 'written');
    assert.equal(h.applied.length, before + 1);
    assert.equal(serfCheck(h, 'c1')?.Status, 'critical');
    assert.equal(serfCheck(h, 'c1')?.Output, 'Agent not live or unreachable');
    assert.equal(nodeOf(h, 'ghost'), undefined);
    assert.equal(await h.registration.reconcileOnce(), 'in-sync');
  });

  test('a member that left is deregistered, this server never; reaped nodes (serfHealth, unknown to the pool) too, other registrations not', async () => {
    const h = harness();
    h.members = [selfMember(), gossipMember('c1', '10.0.0.21', MemberStatus.alive), gossipMember('c2', '10.0.0.22', MemberStatus.alive)];
    await h.registration.reconcileOnce();
    // An external service registered through the catalog API has no serfHealth: not ours to reap.
    await h.apply({ type: 'register', request: { Node: 'external', Address: '192.0.2.1', Service: { Service: 'db', Port: 5432 } } });
    h.members = [{ ...selfMember(), Status: MemberStatus.left }, gossipMember('c1', '10.0.0.21', MemberStatus.left)];
    assert.equal(await h.registration.reconcileOnce(), 'written');
    assert.equal(nodeOf(h, 'c1'), undefined, 'left');
    assert.equal(nodeOf(h, 'c2'), undefined, 'reaped');
    assert.ok(nodeOf(h, 'n1'), 'the leader does not deregister itself');
    assert.ok(nodeOf(h, 'external'));
  });

  test('members of another datacenter or segment, and plain serf peers, stay out of the catalog', async () => {
    const h = harness();
    h.members = [selfMember(), gossipMember('far', '10.0.0.31', MemberStatus.alive, { dc: 'dc2' }), gossipMember('seg', '10.0.0.32', MemberStatus.alive, { role: 'consul', port: '8300', segment: 'alpha' }), { ...gossipMember('serf', '10.0.0.33', MemberStatus.alive), Tags: { role: 'web' } }];
    await h.registration.reconcileOnce();
    for (const name of ['far', 'seg', 'serf']) assert.equal(nodeOf(h, name), undefined, name);
  });

  test('until gossip runs only this server is reconciled, and nothing is reaped', async () => {
    const h = harness();
    await h.apply({ type: 'register', request: { Node: 'c9', Address: '10.0.0.9', Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' } } });
    h.members = undefined;
    await h.registration.reconcileOnce();
    assert.ok(nodeOf(h, 'c9'));
    assert.equal(serfCheck(h, 'n1')?.Status, 'passing');
  });

  test('a member event reconciles that member at once, leaving the others and the interval timer to the full run', async () => {
    const h = harness();
    h.members = [selfMember()];
    h.registration.start();
    await settle();
    assert.deepEqual(h.timers.delays(), [RECONCILE_INTERVAL_MS]);
    await h.timers.advance(10_000);
    // c1 joined (event); c2 is in the pool too but its event has not come.
    h.members = [selfMember(), gossipMember('c1', '10.0.0.21', MemberStatus.alive), gossipMember('c2', '10.0.0.22', MemberStatus.alive)];
    h.registration.memberChanged('c1');
    await settle();
    assert.equal(serfCheck(h, 'c1')?.Status, 'passing');
    assert.equal(nodeOf(h, 'c2'), undefined);
    // The interval still counts from the start: the full run at 60 s brings c2 in.
    await h.timers.advance(RECONCILE_INTERVAL_MS - 10_000 - 1);
    assert.equal(nodeOf(h, 'c2'), undefined);
    await h.timers.advance(1);
    assert.equal(serfCheck(h, 'c2')?.Status, 'passing');
    // A reap event: the pool no longer has c1.
    h.members = [selfMember(), gossipMember('c2', '10.0.0.22', MemberStatus.alive)];
    h.registration.memberChanged('c1');
    await settle();
    assert.equal(nodeOf(h, 'c1'), undefined);
    // Events on a follower do nothing.
    h.isLeader = false;
    h.members = [selfMember()];
    const before = h.applied.length;
    h.registration.memberChanged('c2');
    await settle();
    assert.equal(h.applied.length, before);
    h.registration.stop();
  });
});

describe('servers joining and leaving change the Raft configuration (joinConsulServer, removeConsulServer)', () => {
  const input = { datacenter: 'dc1', selfName: 'n1' };
  const server = (name: string, addr: string, status: number, extra: Record<string, string> = {}): GossipMember => gossipMember(name, addr, status, { role: 'consul', port: '8300', expect: '3', raft_vsn: '3', ...extra });
  const voters = [{ id: 'id-a', address: '10.0.0.1:8300', suffrage: 0 as const }, { id: 'id-b', address: '10.0.0.2:8300', suffrage: 0 as const }, { id: 'id-c', address: '10.0.0.3:8300', suffrage: 0 as const }];

  test('an alive server missing from the configuration is added as a nonvoter; one present is left alone', () => {
    const joiner = server('s4', '10.0.0.4', MemberStatus.alive);
    assert.deepEqual(raftChanges(joiner, voters, [joiner], input), [{ op: 'addNonvoter', id: joiner.Tags['id'], address: '10.0.0.4:8300' }]);
    const present = [...voters, { id: joiner.Tags['id'] ?? '', address: '10.0.0.4:8300', suffrage: 1 as const }];
    assert.deepEqual(raftChanges(joiner, present, [joiner], input), []);
  });

  test('a stale entry with the same address or the same ID is removed first', () => {
    const joiner = server('s4', '10.0.0.3', MemberStatus.alive);
    assert.deepEqual(raftChanges(joiner, voters, [joiner], input), [{ op: 'removeServer', id: 'id-c', why: 'duplicate address' }, { op: 'addNonvoter', id: joiner.Tags['id'], address: '10.0.0.3:8300' }]);
    const moved = [...voters, { id: joiner.Tags['id'] ?? '', address: '10.0.0.9:8300', suffrage: 0 as const }];
    assert.deepEqual(raftChanges(server('s4', '10.0.0.4', MemberStatus.alive), moved, [], input).map((c) => c.op), ['removeServer', 'addNonvoter']);
  });

  test('a server that left is removed; failed servers, clients, other datacenters and this small cluster\'s own entry are not touched', () => {
    const leaver = server('s4', '10.0.0.4', MemberStatus.left);
    const withLeaver = [...voters, { id: leaver.Tags['id'] ?? '', address: '10.0.0.4:8300', suffrage: 0 as const }];
    assert.deepEqual(raftChanges(leaver, withLeaver, [], input), [{ op: 'removeServer', id: leaver.Tags['id'], why: 'left' }]);
    assert.deepEqual(raftChanges(server('s4', '10.0.0.4', MemberStatus.failed), withLeaver, [], input), []);
    assert.deepEqual(raftChanges(gossipMember('c1', '10.0.0.21', MemberStatus.alive), voters, [], input), []);
    assert.deepEqual(raftChanges(server('far', '10.0.0.5', MemberStatus.alive, { dc: 'dc2' }), voters, [], input), []);
    assert.deepEqual(raftChanges(server('n1', '10.0.0.7', MemberStatus.alive), voters.slice(0, 1), [], input), [], 'a cluster under three servers');
    assert.deepEqual(raftChanges(server('n1', '10.0.0.7', MemberStatus.left), voters, [], input), [], 'the leader never removes itself');
  });

  test('two alive servers in bootstrap mode: nothing is added', () => {
    const a = server('s4', '10.0.0.4', MemberStatus.alive, { bootstrap: '1' });
    const b = server('s5', '10.0.0.5', MemberStatus.alive, { bootstrap: '1' });
    assert.deepEqual(raftChanges(a, voters, [a, b], input), []);
  });
});
