// lib/autopilot.ts: a nonvoter becomes a voter once it has been healthy (alive in the pool,
// heard from within last_contact_threshold, at most max_trailing_logs behind) for
// server_stabilization_time; any unhealthy look starts the wait over.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Autopilot, promotionsDue, type LeaderView } from '../lib/autopilot.js';
import type { AutopilotConfig } from '../lib/config.js';
import { nullLogger } from '../lib/log.js';

const CONFIG: AutopilotConfig = { cleanupDeadServers: true, lastContactThresholdMs: 200, maxTrailingLogs: 250, minQuorum: 0, serverStabilizationTimeMs: 10_000 };
const TICK_MS = 50;

function view(match: number, ticksSinceResponse: number, suffrage: 0 | 1 = 1): LeaderView {
  return {
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

  it('voters are never candidates, and a server that left the configuration is forgotten', () => {
    const since = new Map<string, number>();
    assert.deepEqual(promotionsDue(view(1000, 0, 0), new Set(['a', 'b', 'n']), CONFIG, TICK_MS, since, 0), []);
    assert.equal(since.size, 0);
    promotionsDue(view(1000, 0), new Set(['a', 'b', 'n']), CONFIG, TICK_MS, since, 0);
    assert.equal(since.size, 1);
    promotionsDue({ ...view(1000, 0), configuration: { servers: [] } }, new Set(), CONFIG, TICK_MS, since, 1);
    assert.equal(since.size, 0);
  });

  it('the loop promotes on the leader only, one server per look', async () => {
    let isLeader = false;
    let nowMs = 0;
    const promoted: string[] = [];
    const autopilot = new Autopilot({
      config: { ...CONFIG, serverStabilizationTimeMs: 0 },
      isLeader: () => isLeader,
      status: () => ({ ...view(1000, 0), configuration: { servers: [...view(1000, 0).configuration.servers, { id: 'm', address: 'm:8300', suffrage: 1 }] }, progress: [...view(1000, 0).progress, { id: 'm', match: 1000, ticksSinceResponse: 0 }] }),
      tickMs: TICK_MS,
      aliveServerIds: () => new Set(['a', 'b', 'm', 'n']),
      promote: async (id) => void promoted.push(id),
      nowMs: () => nowMs,
      logger: nullLogger(),
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
