// lib/autopilot.ts: a nonvoter becomes a voter once it has been healthy (alive in the pool,
// heard from within last_contact_threshold, at most max_trailing_logs behind) for
// server_stabilization_time; any unhealthy look starts the wait over. Failed servers are
// force-left, never more than (voters-1)/2 voters at once nor below min_quorum.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Autopilot, deadServerCleanup, operatorHealth, operatorState, promotionsDue, type LeaderView } from '../lib/autopilot.js';
import type { AutopilotConfig } from '../lib/config.js';
import { nullLogger } from '../lib/log.js';

const CONFIG: AutopilotConfig = { cleanupDeadServers: true, lastContactThresholdMs: 200, maxTrailingLogs: 250, minQuorum: 0, serverStabilizationTimeMs: 10_000 };
const TICK_MS = 50;

function view(match: number, ticksSinceResponse: number, suffrage: 0 | 1 = 1): LeaderView {
  return {
    id: 'a',
    term: 2,
    lastIndex: 1000,
    configuration: { servers: [{ id: 'a', address: 'a:8300', suffrage: 0 }, { id: 'b', address: 'b:8300', suffrage: 0 }, { id: 'n', address: 'n:8300', suffrage }] },
    progress: [{ id: 'b', match: 1000, ticksSinceResponse: 0 }, { id: 'n', match, ticksSinceResponse }],
  };
}

describe('autopilot promotion', () => {
  it('promotes a nonvoter healthy for the stabilization time, not before', () => {
    const since = new Map<string, number>();
    const alive = new Set(['a', 'b', 'n']);
    assert.deepEqual(promotionsDue(view(990, 1), alive, CONFIG, TICK_MS, since, 0), []);
    assert.deepEqual(promotionsDue(view(995, 2), alive, CONFIG, TICK_MS, since, 9_999), []);
    assert.deepEqual(promotionsDue(view(1000, 0), alive, CONFIG, TICK_MS, since, 10_000), ['n']);
  });

  it('any unhealthy look restarts the wait: too far behind, not heard from, or not alive in the pool', () => {
    const cases: [string, LeaderView, Set<string>][] = [
      ['trailing', view(1000 - 251, 0), new Set(['a', 'b', 'n'])],
      ['last contact', view(1000, 5), new Set(['a', 'b', 'n'])],
      ['not alive', view(1000, 0), new Set(['a', 'b'])],
    ];
    for (const [what, unhealthy, alive] of cases) {
      const since = new Map<string, number>();
      promotionsDue(view(1000, 0), new Set(['a', 'b', 'n']), CONFIG, TICK_MS, since, 0);
      assert.deepEqual(promotionsDue(unhealthy, alive, CONFIG, TICK_MS, since, 9_000), [], what);
      assert.deepEqual(promotionsDue(view(1000, 0), new Set(['a', 'b', 'n']), CONFIG, TICK_MS, since, 12_000), [], `${what}: the wait started over`);
      assert.deepEqual(promotionsDue(view(1000, 0), new Set(['a', 'b', 'n']), CONFIG, TICK_MS, since, 22_000), ['n'], what);
    }
  });

  it('voters are never candidates (their health is tracked all the same), and a server that left the configuration is forgotten', () => {
    const since = new Map<string, number>();
    assert.deepEqual(promotionsDue(view(1000, 0, 0), new Set(['a', 'b', 'n']), CONFIG, TICK_MS, since, 0), []);
    assert.deepEqual(promotionsDue(view(1000, 0, 0), new Set(['a', 'b', 'n']), CONFIG, TICK_MS, since, 60_000), []);
    assert.deepEqual([...since.keys()].sort(), ['a', 'b', 'n']);
    promotionsDue({ ...view(1000, 0), configuration: { servers: [] } }, new Set(), CONFIG, TICK_MS, since, 1);
    assert.equal(since.size, 0);
  });

  it('the loop promotes on the leader only, one server per look', async () => {
    let isLeader = false;
    let nowMs = 0;
    const promoted: string[] = [];
    const autopilot = new Autopilot({
      config: () => ({ ...CONFIG, serverStabilizationTimeMs: 0 }),
      isLeader: () => isLeader,
      status: () => ({ ...view(1000, 0), configuration: { servers: [...view(1000, 0).configuration.servers, { id: 'm', address: 'm:8300', suffrage: 1 }] }, progress: [...view(1000, 0).progress, { id: 'm', match: 1000, ticksSinceResponse: 0 }] }),
      tickMs: TICK_MS,
      poolServers: () => new Map(['a', 'b', 'm', 'n'].map((id) => [id, { name: `node-${id}`, status: 1 }])),
      promote: async (id) => void promoted.push(id),
      forceLeave: () => assert.fail('nothing to clean up'),
      nowMs: () => nowMs,
      logger: nullLogger(),
      selfId: 'a',
    });
    await autopilot.runOnce();
    assert.deepEqual(promoted, []);
    isLeader = true;
    await autopilot.runOnce();
    assert.deepEqual(promoted, ['m']);
    nowMs = 1;
    autopilot.stop();
  });
});

describe('autopilot dead-server cleanup', () => {
  const servers = (voters: number, nonvoters = 0) => [
    ...Array.from({ length: voters }, (_, i) => ({ id: `v${i}`, address: `v${i}:8300`, suffrage: 0 as const })),
    ...Array.from({ length: nonvoters }, (_, i) => ({ id: `n${i}`, address: `n${i}:8300`, suffrage: 1 as const })),
  ];
  const pool = (failed: readonly string[], all: readonly string[]) => new Map(all.map((id) => [id, { name: `node-${id}`, status: failed.includes(id) ? 4 : 1 }]));

  it('force-leaves a failed voter of three, but not two of five at once beyond (voters-1)/2, nor this server', () => {
    assert.deepEqual(deadServerCleanup(servers(3), pool(['v2'], ['v0', 'v1', 'v2']), CONFIG, 'v0'), ['node-v2']);
    assert.deepEqual(deadServerCleanup(servers(5), pool(['v2', 'v3', 'v4'], ['v0', 'v1', 'v2', 'v3', 'v4']), CONFIG, 'v0'), ['node-v2', 'node-v3']);
    assert.deepEqual(deadServerCleanup(servers(3), pool(['v0'], ['v0', 'v1', 'v2']), CONFIG, 'v0'), []);
    assert.deepEqual(deadServerCleanup(servers(2), pool(['v1'], ['v0', 'v1']), CONFIG, 'v0'), [], 'removing one of two is never safe');
  });

  it('failed nonvoters always go; alive, left and unknown (stale) servers are left alone', () => {
    assert.deepEqual(deadServerCleanup(servers(1, 2), pool(['n0'], ['v0', 'n0', 'n1']), CONFIG, 'v0'), ['node-n0']);
    const left = new Map([['v0', { name: 'a', status: 1 }], ['v1', { name: 'b', status: 3 }]]);
    assert.deepEqual(deadServerCleanup(servers(3), left, CONFIG, 'v0'), []);
  });

  it('min_quorum and cleanup_dead_servers', () => {
    const five = pool(['v4'], ['v0', 'v1', 'v2', 'v3', 'v4']);
    assert.deepEqual(deadServerCleanup(servers(5), five, { ...CONFIG, minQuorum: 5 }, 'v0'), []);
    assert.deepEqual(deadServerCleanup(servers(5), five, { ...CONFIG, minQuorum: 4 }, 'v0'), ['node-v4']);
    assert.deepEqual(deadServerCleanup(servers(5), five, { ...CONFIG, cleanupDeadServers: false }, 'v0'), []);
  });
});

describe('autopilot health (/v1/operator/autopilot/health)', () => {
  const pool = new Map([
    ['a', { name: 'node-a', status: 1, version: '1.21.0' }],
    ['b', { name: 'node-b', status: 1, version: '1.21.0' }],
    ['n', { name: 'node-n', status: 4, version: '1.21.0' }],
  ]);

  it("api.OperatorHealthReply's shape: every server with its health, the leader marked, failure tolerance over healthy voters", () => {
    const since = new Map([['a', 1_000], ['b', 1_400]]);
    const reply = operatorHealth(view(990, 1, 0), pool, CONFIG, TICK_MS, since, 5_000);
    assert.deepEqual(Object.keys(reply), ['Healthy', 'FailureTolerance', 'Servers']);
    assert.deepEqual(Object.keys(reply.Servers[0]!), ['ID', 'Name', 'Address', 'SerfStatus', 'Version', 'Leader', 'LastContact', 'LastTerm', 'LastIndex', 'Healthy', 'Voter', 'StableSince']);
    assert.deepEqual(reply.Servers[0], { ID: 'a', Name: 'node-a', Address: 'a:8300', SerfStatus: 'alive', Version: '1.21.0', Leader: true, LastContact: '0s', LastTerm: 2, LastIndex: 1000, Healthy: true, Voter: true, StableSince: '1970-01-01T00:00:01Z' });
    assert.equal(reply.Servers[1]?.StableSince, '1970-01-01T00:00:01Z', 'rounded to the second');
    // n failed in the pool: unhealthy; with three voters (quorum 2) and two healthy, tolerance 0.
    assert.deepEqual({ serf: reply.Servers[2]?.SerfStatus, healthy: reply.Servers[2]?.Healthy, contact: reply.Servers[2]?.LastContact, index: reply.Servers[2]?.LastIndex }, { serf: 'failed', healthy: false, contact: '50ms', index: 990 });
    assert.equal(reply.Healthy, false);
    assert.equal(reply.FailureTolerance, 0);
  });

  it('all healthy: tolerance is healthy voters less the quorum', () => {
    const alive = new Map([...pool].map(([id, member]) => [id, { ...member, status: 1 }]));
    const reply = operatorHealth(view(1000, 0, 0), alive, CONFIG, TICK_MS, new Map(), 5_000);
    assert.equal(reply.Healthy, true);
    assert.equal(reply.FailureTolerance, 1);
  });
});

describe('autopilot state (/v1/operator/autopilot/state)', () => {
  it("api.AutopilotState as Consul CE fills it: servers by ID with Raft status and node meta; a leaving member is alive", () => {
    const pool = new Map([
      ['a', { name: 'node-a', status: 1, version: '1.21.0' }],
      ['b', { name: 'node-b', status: 2, version: '1.21.0' }],
      ['n', { name: 'node-n', status: 1, version: '1.21.0' }],
    ]);
    const meta = (id: string) => (id === 'a' ? { 'consul-version': '1.21.0' } : undefined);
    const state = operatorState(view(1000, 0), pool, CONFIG, TICK_MS, new Map([['a', 1_500]]), 5_000, meta);
    assert.deepEqual(Object.keys(state), ['Healthy', 'FailureTolerance', 'OptimisticFailureTolerance', 'Servers', 'Leader', 'Voters']);
    assert.deepEqual({ leader: state.Leader, voters: state.Voters, healthy: state.Healthy, tolerance: [state.FailureTolerance, state.OptimisticFailureTolerance] }, { leader: 'a', voters: ['a', 'b'], healthy: true, tolerance: [0, 0] });
    assert.deepEqual(Object.keys(state.Servers), ['a', 'b', 'n']);
    assert.deepEqual(state.Servers['a'], {
      ID: 'a', Name: 'node-a', Address: 'a:8300', NodeStatus: 'alive', Version: '1.21.0', LastContact: '0s', LastTerm: 2, LastIndex: 1000,
      Healthy: true, StableSince: '1970-01-01T00:00:01.500Z', ReadReplica: false, Status: 'leader', Meta: { 'consul-version': '1.21.0' }, NodeType: 'voter',
    });
    assert.deepEqual([state.Servers['b']?.NodeStatus, state.Servers['b']?.Status, state.Servers['n']?.Status, state.Servers['n']?.Meta], ['alive', 'voter', 'non-voter', {}]);
  });
});
