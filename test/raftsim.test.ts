// Deterministic cluster simulation of the Raft core (TESTING.md R1, R2). The default run covers
// 1000 seeds; RAFT_SEEDS=<n> runs more (npm run verify), RAFT_SEED=<n> replays one with a trace.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSimulation, SimViolation, type SimStats } from './sim/raftsim.js';

const DEFAULT_SEEDS = 1000;

function seedsToRun(): number[] {
  const one = process.env['RAFT_SEED'];
  if (one !== undefined && one !== '') return [Number(one)];
  const count = Number(process.env['RAFT_SEEDS'] ?? DEFAULT_SEEDS);
  assert(Number.isInteger(count) && count > 0, 'RAFT_SEEDS must be a positive integer');
  return Array.from({ length: count }, (_, i) => i + 1);
}

test('raft simulation: election safety, log matching, leader completeness, state machine safety, linearizable reads; leader and convergence after healing', (t) => {
  const seeds = seedsToRun();
  const replaying = seeds.length === 1;
  const totals = { acknowledgedWrites: 0, reads: 0, elections: 0, crashes: 0, snapshotsInstalled: 0, configurationChanges: 0, worstLeaderMs: 0, worstConvergeMs: 0 };
  const startedAt = performance.now();
  for (const seed of seeds) {
    const lines: string[] = [];
    let stats: SimStats;
    try {
      stats = runSimulation({ seed, ...(replaying ? { trace: (line: string) => lines.push(line) } : {}) });
    } catch (error) {
      if (replaying) for (const line of lines) t.diagnostic(line);
      const reason = error instanceof SimViolation ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
      assert.fail(`SEED=${seed} ${reason}\nreplay: RAFT_SEED=${seed} node --import tsx --test test/raftsim.test.ts`);
    }
    totals.acknowledgedWrites += stats.acknowledgedWrites;
    totals.reads += stats.reads;
    totals.elections += stats.elections;
    totals.crashes += stats.crashes;
    totals.snapshotsInstalled += stats.snapshotsInstalled;
    totals.configurationChanges += stats.configurationChanges;
    totals.worstLeaderMs = Math.max(totals.worstLeaderMs, stats.leaderAfterHealMs);
    totals.worstConvergeMs = Math.max(totals.worstConvergeMs, stats.convergedAfterHealMs);
  }
  t.diagnostic(`seeds=${seeds.length} ms=${Math.round(performance.now() - startedAt)} ${Object.entries(totals).map(([k, v]) => `${k}=${v}`).join(' ')}`);
});
