// Gossip (issue 8): join convergence, failure detection and steady-state bandwidth of a pool of N
// consul-ts memberlist nodes (lib/swim.ts SwimNode with lanConfig on real loopback
// GossipTransports) against a pool of N hashicorp/memberlist 0.2.2 instances with
// DefaultLANConfig (Consul's LAN profile), in the same run, measured the same way.
//
// Each side is ONE child process holding all N members (bench/interop/memberlist_pool.go for
// memberlist; this file with `pool` as its argument for consul-ts), driven over stdin/stdout with
// one line protocol (described in memberlist_pool.go), one pool at a time so they never compete
// for the two cores. Both sides speak delegate protocol 0 (a plain memberlist, no serf layer) and
// advertise no metadata. For each N in BENCH_GOSSIP_SIZES:
//   1. join convergence: member i > 0 joins member 0 (at most BENCH_GOSSIP_JOIN_PARALLEL joins
//      in flight); from the first join call until every member has been told (NotifyJoin) of all
//      N names; also the spread over members (p50, p99, max) to show a long tail.
//   2. steady state: after BENCH_GOSSIP_SETTLE_MS, UDP datagrams and payload bytes sent (what the
//      core hands to the socket: framed and compressed, without IP/UDP headers), TCP bytes written
//      (push/pull, TCP pings) and CPU of the pool process over BENCH_GOSSIP_WINDOW_MS, per member
//      per second. Counted by wrapping the transport on both sides (Go: a NetTransport wrapper;
//      consul-ts: a GossipCore wrapper that counts the effects the core returns).
//   3. failure detection: member N-1 is stopped abruptly (Go: Shutdown without Leave; consul-ts:
//      its GossipTransport closed, the core never called again); time until every other member
//      has declared it dead (NotifyLeave); also p50 over members.
// "false deaths" counts NotifyLeave for anyone but the victim (a false positive), per pool.
// Then the same phases for consul-ts cores alone in the seeded simulator (test/sim/swimsim.ts,
// virtual time, so 200 or 1000 members cost seconds): what the protocol does without the event
// loop, sockets and the second core in the way.
//
// Needs golang-go and golang-github-hashicorp-memberlist-dev (Debian), built offline here.
// Run: npm run bench -- gossip
// Knobs: BENCH_GOSSIP_SIZES (default 10,50; 200 works on 2 cores), BENCH_GOSSIP_RUNS (default 1;
// medians when more), BENCH_GOSSIP_WINDOW_MS (10000), BENCH_GOSSIP_SETTLE_MS (5000),
// BENCH_GOSSIP_JOIN_PARALLEL (8), BENCH_GOSSIP_SIM_SIZES (10,50,200; empty: none),
// BENCH_GOSSIP_SIM_SEEDS (5). BENCH_GOSSIP_SIZES= (empty) runs the simulation only.
// TCP (push/pull) bytes are 0 in the default window: memberlist's first periodic push/pull comes
// a random stagger plus one scaled interval (30-60 s) after start; BENCH_GOSSIP_SETTLE_MS=60000
// BENCH_GOSSIP_WINDOW_MS=60000 includes them.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { GossipTransport, swimAddress, type GossipCore } from '../lib/gossip.js';
import { nullLogger } from '../lib/log.js';
import { lanConfig, SwimNode, type SwimAddress, type SwimEffect } from '../lib/swim.js';
import { NodeState } from '../lib/gossipwire.js';
import { memberEventsDelegate, SwimSim } from '../test/sim/swimsim.js';
import { ChildProcesses } from './support.js';

const SIZES = (process.env['BENCH_GOSSIP_SIZES'] ?? '10,50').split(',').filter((size) => size !== '').map(Number);
const RUNS = Number(process.env['BENCH_GOSSIP_RUNS'] ?? 1);
const WINDOW_MS = Number(process.env['BENCH_GOSSIP_WINDOW_MS'] ?? 10_000);
const SETTLE_MS = Number(process.env['BENCH_GOSSIP_SETTLE_MS'] ?? 5_000);
const JOIN_PARALLEL = Number(process.env['BENCH_GOSSIP_JOIN_PARALLEL'] ?? 8);
const SIM_SIZES = (process.env['BENCH_GOSSIP_SIM_SIZES'] ?? '10,50,200').split(',').filter((size) => size !== '').map(Number);
const SIM_SEEDS = Number(process.env['BENCH_GOSSIP_SIM_SEEDS'] ?? 5);
/** Virtual time a simulated join may take (two scaled push/pull rounds at 1000 members). */
const SIM_CONVERGE_DEADLINE_MS = 300_000;
/** How long a pool may take to bind all its members. */
const READY_DEADLINE_MS = 30_000;
/** How long a join may take to converge before the run is reported as not converged. */
const CONVERGE_DEADLINE_MS = 90_000;
/** memberlist's suspicion timeout at 200 members is ~4×log10(201)×1 s ≈ 9.2 s plus probe rounds; 60 s is far past it. */
const DETECT_DEADLINE_MS = 60_000;
/** A pool's answer to `status` or `quit`. */
const REPLY_DEADLINE_MS = 5_000;
/** A miss smaller than this ratio is within the run-to-run noise of one run (baselines.md: 10-30%). */
const NOISE_RATIO = 1.3;
/** Closer than this is a tie: timers and the window's length differ by milliseconds between sides. */
const TIE_RATIO = 1.02;
/** Bandwidth counts as no higher within this ratio (window lengths differ by milliseconds). */
const BANDWIDTH_TOLERANCE = 1.02;
const GO_POOL_SOURCE = join(import.meta.dirname, 'interop', 'memberlist_pool.go');

/** One pool's figures for one N (times in ms; rates per member per second). */
interface PoolRun {
  readonly convergeMs: number;
  readonly convergeP50Ms: number;
  readonly convergeP99Ms: number;
  /** The slowest run's convergence (equals convergeMs with one run): medians hide a push/pull-bound tail. */
  readonly convergeWorstMs: number;
  readonly joinFailures: number;
  readonly aliveMin: number;
  readonly detectMs: number;
  readonly detectP50Ms: number;
  readonly udpPackets: number;
  readonly udpBytes: number;
  readonly tcpBytes: number;
  /** Pool process CPU over the window, fraction of one core. */
  readonly cpu: number;
  readonly falseDeaths: number;
  /** Why a figure is missing (a deadline passed), or ''. */
  readonly problem: string;
}

type Side = 'consul-ts' | 'memberlist';

// ---------------------------------------------------------------------------------------------
// The consul-ts pool (child process): N SwimNodes, same line protocol as memberlist_pool.go

interface Counts {
  udpPackets: number;
  udpBytes: number;
  tcpBytes: number;
}

/** Counts what the transport sends for one core: the effects it drains and the replies to incoming streams. */
class CountingCore implements GossipCore {
  constructor(
    private readonly node: SwimNode,
    private readonly counts: Counts,
    private readonly onReply: () => void,
  ) {}
  tick(nowMs: number): void {
    this.node.tick(nowMs);
  }
  nextDeadlineMs(): number {
    return this.node.nextDeadlineMs();
  }
  onPacket(from: SwimAddress, bytes: Uint8Array, nowMs: number): void {
    this.node.onPacket(from, bytes, nowMs);
  }
  onStream(from: SwimAddress, bytes: Uint8Array, nowMs: number): ReturnType<SwimNode['onStream']> {
    const outcome = this.node.onStream(from, bytes, nowMs);
    if (outcome !== 'incomplete' && !(outcome instanceof Error) && outcome.reply !== undefined) this.counts.tcpBytes += outcome.reply.length;
    return outcome;
  }
  onStreamReply(id: number, reply: Uint8Array | Error, nowMs: number): void {
    this.node.onStreamReply(id, reply, nowMs);
    this.onReply();
  }
  drainOutbox(): SwimEffect[] {
    const effects = this.node.drainOutbox();
    for (const effect of effects) {
      if (effect.kind === 'packet') {
        this.counts.udpPackets++;
        this.counts.udpBytes += effect.bytes.length;
      } else this.counts.tcpBytes += effect.bytes.length;
    }
    return effects;
  }
}

class PoolState {
  readonly seen: Set<string>[];
  readonly convergedAt: (number | undefined)[];
  readonly deadAt: (number | undefined)[];
  readonly victim: string;
  joinStartMs = 0;
  killStartMs = 0;
  falseDeaths = 0;
  onConverged: () => void = () => undefined;
  onDetected: () => void = () => undefined;
  constructor(readonly n: number) {
    this.seen = Array.from({ length: n }, () => new Set<string>());
    this.convergedAt = new Array<number | undefined>(n).fill(undefined);
    this.deadAt = new Array<number | undefined>(n).fill(undefined);
    this.victim = `ts-${n - 1}`;
  }
  noteJoin(i: number, name: string): void {
    this.seen[i]!.add(name);
    if (this.seen[i]!.size !== this.n || this.convergedAt[i] !== undefined) return;
    this.convergedAt[i] = Date.now();
    if (this.convergedAt.every((at) => at !== undefined)) this.onConverged();
  }
  noteLeave(i: number, name: string): void {
    if (name !== this.victim || this.killStartMs === 0) return void this.falseDeaths++;
    if (this.deadAt[i] !== undefined) return;
    this.deadAt[i] = Date.now();
    if (this.deadAt.every((at, index) => at !== undefined || index === this.n - 1)) this.onDetected();
  }
}

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

async function runTsPool(n: number, parallel: number): Promise<void> {
  const state = new PoolState(n);
  const counts: Counts = { udpPackets: 0, udpBytes: 0, tcpBytes: 0 };
  const nodes: SwimNode[] = [];
  const transports: GossipTransport[] = [];
  let onJoinProgress = (): void => undefined;
  const logger = nullLogger();
  for (let i = 0; i < n; i++) {
    const transport = await GossipTransport.listen({ bindHost: '127.0.0.1', port: 0, logger, streamTimeoutMs: 10_000 });
    // A plain memberlist speaks delegate protocol 0 (memberlist refuses non-overlapping delegate versions).
    const config = { ...lanConfig(`ts-${i}`, swimAddress('127.0.0.1', transport.port)!), delegateVersions: { min: 0, max: 0, cur: 0 } };
    // No serf layer: no meta, no user state; member events go to the pool's records.
    const delegate = memberEventsDelegate((kind, member) => {
      if (kind === 'join') state.noteJoin(i, member.name);
      else if (kind === 'leave') state.noteLeave(i, member.name);
    });
    const node = new SwimNode(config, delegate, Math.random, (count) => randomBytes(count), Date.now());
    transport.start(new CountingCore(node, counts, () => onJoinProgress()));
    nodes.push(node);
    transports.push(transport);
  }
  emit({ event: 'ready', n });

  const join = (): void => {
    state.joinStartMs = Date.now();
    const seed = swimAddress('127.0.0.1', transports[0]!.port)!;
    const failedBefore = nodes.map((node) => node.counters['pushPullFailed'] ?? 0);
    const inFlight = new Set<number>();
    let next = 1;
    let failures = 0;
    let isReported = false;
    onJoinProgress = () => {
      for (const i of inFlight) {
        const isFailed = (nodes[i]!.counters['pushPullFailed'] ?? 0) > failedBefore[i]!;
        if (nodes[i]!.joinedCount() === 0 && !isFailed) continue;
        if (nodes[i]!.joinedCount() === 0) failures++;
        inFlight.delete(i);
      }
      while (inFlight.size < parallel && next < n) {
        const i = next++;
        inFlight.add(i);
        transports[i]!.run((nowMs) => nodes[i]!.join([seed], nowMs));
      }
      if (inFlight.size === 0 && next >= n && !isReported) {
        isReported = true;
        emit({ event: 'joined', ms: Date.now() - state.joinStartMs, failures });
      }
    };
    onJoinProgress();
  };
  state.onConverged = () => {
    const instanceMs = state.convergedAt.map((at) => at! - state.joinStartMs);
    const aliveMin = Math.min(...nodes.map((node) => node.members().filter((member) => member.state === 0).length));
    emit({ event: 'converged', ms: Math.max(...instanceMs), instanceMs, aliveMin });
  };
  state.onDetected = () => {
    const instanceMs = state.deadAt.slice(0, n - 1).map((at) => at! - state.killStartMs);
    emit({ event: 'detected', ms: Math.max(...instanceMs), instanceMs });
  };
  const window = (durationMs: number): void => {
    const before = { ...counts };
    const cpuBefore = process.cpuUsage();
    const startMs = Date.now();
    setTimeout(() => {
      const cpu = process.cpuUsage(cpuBefore);
      emit({
        event: 'window', ms: Date.now() - startMs, udpPackets: counts.udpPackets - before.udpPackets, udpBytes: counts.udpBytes - before.udpBytes,
        tcpBytes: counts.tcpBytes - before.tcpBytes, cpuMs: (cpu.user + cpu.system) / 1000, falseDeaths: state.falseDeaths,
      });
    }, durationMs);
  };
  const quit = async (): Promise<void> => {
    await Promise.all(transports.map((transport) => transport.close()));
    process.exit(0);
  };

  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const [command, argument] = line.trim().split(/\s+/);
    switch (command) {
      case 'join':
        return join();
      case 'window':
        return window(Number(argument));
      case 'kill':
        state.killStartMs = Date.now();
        return void transports[n - 1]!.close();
      case 'status':
        return emit({ event: 'status', seen: state.seen.map((names) => names.size), victimSeenDead: state.deadAt.filter((at) => at !== undefined).length });
      case 'quit':
        return void quit();
    }
  });
  // The benchmark went away: do not linger.
  lines.on('close', () => void quit());
}

// ---------------------------------------------------------------------------------------------
// The simulated pool: the same phases on test/sim/swimsim.ts's virtual clock and network
// (0.5-2 ms latency, no loss), consul-ts only (memberlist has no simulator), seeded

/** One seeded simulated run of `n` members: join all through member 0 at once, settle, window, crash n-1. */
function simulatePool(n: number, seed: number): PoolRun {
  const sim = new SwimSim({ seed, members: n });
  for (let i = 0; i < n; i++) sim.start(i);
  const joinMs = sim.nowMs;
  for (let i = 1; i < n; i++) sim.join(i, [0]);
  const seen = new Map<string, Set<string>>();
  const convergedAt = new Map<string, number>();
  let observed = 0;
  const absorb = (): void => {
    for (; observed < sim.observations.length; observed++) {
      const o = sim.observations[observed]!;
      if (o.kind !== 'join') continue;
      const names = seen.get(o.observer) ?? new Set<string>();
      seen.set(o.observer, names);
      names.add(o.subject);
      if (names.size === n && !convergedAt.has(o.observer)) convergedAt.set(o.observer, o.atMs - joinMs);
    }
    return undefined;
  };
  const isConverged = sim.run(joinMs + SIM_CONVERGE_DEADLINE_MS, () => (absorb(), convergedAt.size === n), 50);
  const convergedMs = [...convergedAt.values()];
  sim.run(sim.nowMs + SETTLE_MS);
  const [packets0, bytes0, windowStartMs] = [sim.packetsSent, sim.bytesSent, sim.nowMs];
  sim.run(sim.nowMs + WINDOW_MS);
  const windowS = (sim.nowMs - windowStartMs) / 1000;
  const [udpPackets, udpBytes] = [(sim.packetsSent - packets0) / n / windowS, (sim.bytesSent - bytes0) / n / windowS];
  const victim = sim.member(n - 1).name;
  const crashMs = sim.nowMs;
  sim.crash(n - 1);
  const deadAt = new Map<string, number>();
  let watched = sim.observations.length;
  sim.run(crashMs + DETECT_DEADLINE_MS, () => {
    for (; watched < sim.observations.length; watched++) {
      const o = sim.observations[watched]!;
      if (o.kind === 'leave' && o.subject === victim && o.state === NodeState.dead && !deadAt.has(o.observer)) deadAt.set(o.observer, o.atMs - crashMs);
    }
    return deadAt.size >= n - 1;
  }, 50);
  const detectedMs = [...deadAt.values()];
  const falseDeaths = sim.observations.filter((o) => o.kind === 'leave' && o.subject !== victim).length;
  const problems = [isConverged ? '' : `no convergence within ${SIM_CONVERGE_DEADLINE_MS} ms (seed ${seed})`, deadAt.size >= n - 1 ? '' : `victim not dead everywhere (seed ${seed})`];
  return {
    convergeMs: isConverged ? Math.max(...convergedMs) : NaN, convergeP50Ms: percentile(convergedMs, 50), convergeP99Ms: percentile(convergedMs, 99), convergeWorstMs: isConverged ? Math.max(...convergedMs) : Infinity, joinFailures: 0, aliveMin: n,
    detectMs: deadAt.size >= n - 1 ? Math.max(...detectedMs) : NaN, detectP50Ms: percentile(detectedMs, 50), udpPackets, udpBytes, tcpBytes: NaN, cpu: NaN, falseDeaths,
    problem: problems.filter((problem) => problem !== '').join('; '),
  };
}

function printSimulated(results: Map<number, PoolRun>): void {
  const fmt = (value: number, digits = 2): string => (Number.isFinite(value) ? value.toFixed(digits) : '-');
  const s = (ms: number): string => fmt(ms / 1000);
  console.log(`\nSimulated (test/sim/swimsim.ts: virtual clock, 0.5-2 ms latency, no loss; consul-ts cores only; all members join member 0 at once; medians of ${SIM_SEEDS} seeds):\n`);
  console.log('| members | join converged s (member p50 / p99 / all; slowest seed) | crashed member dead everywhere s (p50 / all) | UDP packets /member/s | UDP bytes /member/s | false deaths |');
  console.log('|---|---|---|---|---|---|');
  for (const [n, r] of results) console.log(`| ${n} | ${s(r.convergeP50Ms)} / ${s(r.convergeP99Ms)} / ${s(r.convergeMs)}; ${s(r.convergeWorstMs)} | ${s(r.detectP50Ms)} / ${s(r.detectMs)} | ${fmt(r.udpPackets)} | ${fmt(r.udpBytes, 1)} | ${r.falseDeaths} |`);
  const problems = [...results].filter(([, r]) => r.problem !== '').map(([n, r]) => `- simulated, ${n} members: ${r.problem}`);
  if (problems.length > 0) console.log(`\n${problems.join('\n')}`);
}

// ---------------------------------------------------------------------------------------------
// Orchestration (parent process)

/** A pool child read line by line. */
class PoolProcess {
  private readonly events: Record<string, unknown>[] = [];
  private waiter: (() => void) | undefined;
  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        this.events.push({ event: 'unparsed', line });
      }
      this.waiter?.();
    });
    child.on('exit', () => this.waiter?.());
  }

  send(command: string): void {
    this.child.stdin!.write(`${command}\n`);
  }

  /** The first unconsumed event named `name`, or undefined once `deadlineMs` passes or the child exits. */
  async next(name: string, deadlineMs: number): Promise<Record<string, unknown> | undefined> {
    const giveUpAt = Date.now() + deadlineMs;
    for (;;) {
      const index = this.events.findIndex((event) => event['event'] === name);
      if (index >= 0) return this.events.splice(index, 1)[0];
      const leftMs = giveUpAt - Date.now();
      if (leftMs <= 0 || this.child.exitCode !== null || this.child.signalCode !== null) return undefined;
      await new Promise<void>((resolveWait) => {
        const timer = setTimeout(resolveWait, leftMs);
        this.waiter = () => {
          clearTimeout(timer);
          resolveWait();
        };
      });
    }
  }
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Runs one pool of `n` members through join, window and kill; every wait has a deadline. */
async function measurePool(children: ChildProcesses, side: Side, n: number, goBinary: string, stderrTail: string[]): Promise<PoolRun> {
  const child =
    side === 'memberlist'
      ? spawn(goBinary, ['-n', String(n), '-parallel', String(JOIN_PARALLEL)], { stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn(process.execPath, ['--import', 'tsx', import.meta.filename, 'pool', JSON.stringify({ n, parallel: JOIN_PARALLEL })], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderrTail.push(chunk.toString());
    if (stderrTail.length > 50) stderrTail.shift();
  });
  children.track(child);
  const pool = new PoolProcess(child);
  const problems: string[] = [];
  const missing = async (what: string): Promise<void> => {
    pool.send('status');
    const status = await pool.next('status', REPLY_DEADLINE_MS);
    const seen = (status?.['seen'] as number[] | undefined) ?? [];
    problems.push(`${what} (members fully joined: ${seen.filter((count) => count === n).length}/${n}, victim seen dead by ${String(status?.['victimSeenDead'] ?? '?')})`);
  };
  try {
    if ((await pool.next('ready', READY_DEADLINE_MS)) === undefined) throw new Error(`${side} pool of ${n} did not start: ${stderrTail.join('').slice(-1_000)}`);
    pool.send('join');
    const converged = await pool.next('converged', CONVERGE_DEADLINE_MS);
    if (converged === undefined) await missing(`no convergence within ${CONVERGE_DEADLINE_MS} ms`);
    const joined = await pool.next('joined', REPLY_DEADLINE_MS);
    const convergedMs = (converged?.['instanceMs'] as number[] | undefined) ?? [];
    await new Promise((resolveWait) => setTimeout(resolveWait, SETTLE_MS));
    pool.send(`window ${WINDOW_MS}`);
    const window = await pool.next('window', WINDOW_MS + 10_000);
    if (window === undefined) problems.push('no window report');
    pool.send('kill');
    const detected = await pool.next('detected', DETECT_DEADLINE_MS);
    if (detected === undefined) await missing(`the victim not dead everywhere within ${DETECT_DEADLINE_MS} ms`);
    const detectedMs = (detected?.['instanceMs'] as number[] | undefined) ?? [];
    pool.send('status');
    const final = await pool.next('status', REPLY_DEADLINE_MS);
    void final;
    const perMemberSecond = (key: string): number => (window === undefined ? NaN : Number(window[key]) / n / (Number(window['ms']) / 1000));
    return {
      convergeMs: converged === undefined ? NaN : Number(converged['ms']),
      convergeP50Ms: percentile(convergedMs, 50),
      convergeP99Ms: percentile(convergedMs, 99),
      convergeWorstMs: converged === undefined ? Infinity : Number(converged['ms']),
      joinFailures: Number(joined?.['failures'] ?? NaN),
      aliveMin: Number(converged?.['aliveMin'] ?? NaN),
      detectMs: detected === undefined ? NaN : Number(detected['ms']),
      detectP50Ms: percentile(detectedMs, 50),
      udpPackets: perMemberSecond('udpPackets'),
      udpBytes: perMemberSecond('udpBytes'),
      tcpBytes: perMemberSecond('tcpBytes'),
      cpu: window === undefined ? NaN : Number(window['cpuMs']) / Number(window['ms']),
      falseDeaths: Number(window?.['falseDeaths'] ?? NaN),
      problem: problems.join('; '),
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
      pool.send('quit');
      await Promise.race([exited, new Promise((resolveWait) => setTimeout(resolveWait, REPLY_DEADLINE_MS))]);
      await children.stop(child);
    }
  }
}

/** Medians over runs, field by field (problems joined). */
function combine(runs: readonly PoolRun[]): PoolRun {
  const field = (key: Exclude<keyof PoolRun, 'problem'>): number => median(runs.map((run) => run[key]).filter((value) => Number.isFinite(value)));
  return {
    convergeMs: field('convergeMs'), convergeP50Ms: field('convergeP50Ms'), convergeP99Ms: field('convergeP99Ms'), convergeWorstMs: Math.max(...runs.map((run) => run.convergeWorstMs)), joinFailures: field('joinFailures'),
    aliveMin: Math.min(...runs.map((run) => run.aliveMin)), detectMs: field('detectMs'), detectP50Ms: field('detectP50Ms'), udpPackets: field('udpPackets'),
    udpBytes: field('udpBytes'), tcpBytes: field('tcpBytes'), cpu: field('cpu'), falseDeaths: Math.max(...runs.map((run) => run.falseDeaths)),
    problem: runs.map((run) => run.problem).filter((problem) => problem !== '').join('; '),
  };
}

function buildGoPool(dir: string): string {
  const binary = join(dir, 'memberlist_pool');
  const build = spawnSync('go', ['build', '-o', binary, GO_POOL_SOURCE], {
    env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOPROXY: 'off', CGO_ENABLED: '0', GOCACHE: join(dir, 'cache') },
    encoding: 'utf8',
  });
  if (build.error !== undefined || build.status !== 0) {
    throw new Error(`building the memberlist pool failed (apt-get install golang-go golang-github-hashicorp-memberlist-dev): ${build.error?.message ?? build.stderr}`);
  }
  return binary;
}

function printReport(results: Map<number, Record<Side, PoolRun>>): void {
  const version = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'golang-github-hashicorp-memberlist-dev'], { encoding: 'utf8' }).stdout || 'unknown';
  const fmt = (value: number, digits = 2): string => (Number.isFinite(value) ? value.toFixed(digits) : '-');
  const s = (ms: number): string => fmt(ms / 1000);
  console.log(`${new Date().toISOString().slice(0, 10)}; N members in one process per side, loopback; memberlist ${version} DefaultLANConfig vs consul-ts lanConfig; delegate protocol 0, no meta.`);
  console.log(`Joins: member i>0 joins member 0, ${JOIN_PARALLEL} at a time; steady state over ${WINDOW_MS / 1000} s after ${SETTLE_MS / 1000} s settling; ${RUNS} run(s)${RUNS > 1 ? ', medians' : ''}.\n`);
  console.log('| members | side | join converged s (member p50 / p99 / all; slowest run) | killed member dead everywhere s (p50 / all) | UDP packets /member/s | UDP bytes /member/s | TCP bytes /member/s | pool CPU % of a core | false deaths |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const [n, sides] of results) {
    for (const side of ['consul-ts', 'memberlist'] as const) {
      const r = sides[side];
      console.log(`| ${n} | ${side} | ${s(r.convergeP50Ms)} / ${s(r.convergeP99Ms)} / ${s(r.convergeMs)}; ${s(r.convergeWorstMs)} | ${s(r.detectP50Ms)} / ${s(r.detectMs)} | ${fmt(r.udpPackets)} | ${fmt(r.udpBytes, 1)} | ${fmt(r.tcpBytes, 0)} | ${fmt(r.cpu * 100, 1)} | ${r.falseDeaths} |`);
    }
  }
  console.log('\nRatios consul-ts / memberlist (below 1 is better for consul-ts; runs are noisy by 10-30%):\n');
  console.log('| members | convergence | detection | UDP packets | UDP bytes | TCP bytes | CPU |');
  console.log('|---|---|---|---|---|---|---|');
  for (const [n, { 'consul-ts': c, memberlist: m }] of results) {
    console.log(`| ${n} | ${fmt(c.convergeMs / m.convergeMs)} | ${fmt(c.detectMs / m.detectMs)} | ${fmt(c.udpPackets / m.udpPackets)} | ${fmt(c.udpBytes / m.udpBytes)} | ${fmt(c.tcpBytes / m.tcpBytes)} | ${fmt(c.cpu / m.cpu)} |`);
  }
  const notes: string[] = [];
  for (const [n, sides] of results) {
    for (const side of ['consul-ts', 'memberlist'] as const) {
      const r = sides[side];
      if (r.problem !== '') notes.push(`- ${side}, ${n} members: ${r.problem}`);
      if (r.joinFailures > 0) notes.push(`- ${side}, ${n} members: ${r.joinFailures} join(s) failed`);
      if (RUNS > 1 && r.convergeWorstMs > 3 * Math.max(1, r.convergeMs)) notes.push(`- ${side}, ${n} members: the slowest of ${RUNS} runs converged in ${s(r.convergeWorstMs)} s (median ${s(r.convergeMs)} s): a member missed an alive and learned it only at a periodic push/pull`);
      if (Number.isFinite(r.aliveMin) && r.aliveMin < n) notes.push(`- ${side}, ${n} members: at convergence one member listed only ${r.aliveMin} alive (others suspect)`);
    }
  }
  if (notes.length > 0) console.log(`\nProblems:\n${notes.join('\n')}`);

  const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  // Convergence moves in gossip rounds (200 ms) and detection with where the probe round-robin
  // stands at the kill, so a single run is noisy: a miss by less than NOISE_RATIO says so.
  const compare = (ours: number, theirs: number): string => {
    if (ours <= theirs) return 'met';
    if (ours <= TIE_RATIO * theirs) return `tie (within ${Math.round((TIE_RATIO - 1) * 100)}%)`;
    const hint = RUNS > 1 ? '' : ' (BENCH_GOSSIP_RUNS=3 for medians)';
    return ours <= NOISE_RATIO * theirs ? `NOT met, by ${fmt(ours / theirs)}x, within noise${hint}` : `NOT met, by ${fmt(ours / theirs)}x`;
  };
  // Both sides send the same datagrams; the window's length varies by a few ms.
  const compareBandwidth = (ours: number, theirs: number): string => (ours <= BANDWIDTH_TOLERANCE * theirs ? 'met' : `NOT met, by ${fmt(ours / theirs)}x`);
  console.log('\nTargets (issue 8): detection and convergence no slower, bandwidth no higher, and no long tail on joins of 200.');
  for (const [n, { 'consul-ts': c, memberlist: m }] of results) {
    console.log(`- ${n} members: convergence ${s(c.convergeMs)} vs ${s(m.convergeMs)} s, ${compare(c.convergeMs, m.convergeMs)}; detection ${s(c.detectMs)} vs ${s(m.detectMs)} s, ${compare(c.detectMs, m.detectMs)}; UDP bytes ${fmt(c.udpBytes, 1)} vs ${fmt(m.udpBytes, 1)} /member/s, ${compareBandwidth(c.udpBytes, m.udpBytes)}`);
  }
  const big = results.get(200);
  if (big === undefined) console.log('- joins of 200: not run (BENCH_GOSSIP_SIZES=10,50,200)');
  else {
    // A long tail: the last member to learn everyone lags the typical one by far, or memberlist's last.
    const c = big['consul-ts'];
    const isTailFree = c.convergeWorstMs <= Math.max(3 * c.convergeP50Ms, big.memberlist.convergeWorstMs);
    console.log(`- joins of 200, no long tail (slowest run's last member <= max(3 x member p50, memberlist's slowest run)): ${s(c.convergeWorstMs)} s vs p50 ${s(c.convergeP50Ms)} s and memberlist ${s(big.memberlist.convergeWorstMs)} s, ${verdict(isTailFree)}`);
  }
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-bench-gossip-'));
  const children = new ChildProcesses();
  children.cleanUpOnSignal(scratch);
  try {
    const goBinary = buildGoPool(scratch);
    const results = new Map<number, Record<Side, PoolRun>>();
    for (const n of SIZES) {
      const runs: Record<Side, PoolRun[]> = { 'consul-ts': [], memberlist: [] };
      for (let run = 0; run < RUNS; run++) {
        for (const side of ['memberlist', 'consul-ts'] as const) {
          const stderrTail: string[] = [];
          const started = Date.now();
          const result = await measurePool(children, side, n, goBinary, stderrTail);
          process.stderr.write(`${side} ${n} members run ${run + 1}: converged ${result.convergeMs} ms, dead everywhere ${result.detectMs} ms (${Math.round((Date.now() - started) / 1000)} s)\n`);
          runs[side].push(result);
        }
      }
      results.set(n, { 'consul-ts': combine(runs['consul-ts']), memberlist: combine(runs.memberlist) });
    }
    if (results.size > 0) printReport(results);
    if (SIM_SIZES.length > 0) {
      const simulated = new Map<number, PoolRun>();
      for (const n of SIM_SIZES) simulated.set(n, combine(Array.from({ length: SIM_SEEDS }, (_, seed) => simulatePool(n, seed + 1))));
      printSimulated(simulated);
    }
  } finally {
    await children.stopAll();
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'pool') {
  const spec = JSON.parse(process.argv[3]!) as { n: number; parallel: number };
  await runTsPool(spec.n, spec.parallel);
} else {
  await main();
}
