// Raft write throughput and latency (issue 4): a 3-server consul-ts cluster against a 3-member
// etcd 3.4 cluster, both on loopback with fsync on, in the same run, driven by the same load
// generator. consul-ts is driven with `KVS.Apply` over the server RPC port (HTTP KV does not
// exist yet; the HTTP issue repeats this end to end); etcd through its v3 HTTP gateway
// (`POST /v3/kv/put`). 256-byte values, a unique key per write.
//
// The load generator runs in a child process (this file with `load` as its argument): N
// closed-loop writers, each sending its next write when the previous one is acknowledged, for
// N = 1, 64, 256, each for BENCH_SECONDS (default 5) after a 1 s warm-up. Only one cluster runs
// at a time.
//
// Needs etcd (Debian package `etcd-server`). Run: npm run bench -- raft
// Knobs: BENCH_SECONDS, BENCH_WRITERS (e.g. `64`; the target lines need 1 and 64),
// BENCH_CPU_PROF=<dir> (`--cpu-prof` on the three consul-ts servers, written to <dir>).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RpcClient, RpcError } from '../lib/rpc.js';
import { buildRelease, ChildProcesses, httpJson } from './support.js';
import { freePort, waitFor } from '../test/support.js';

const DURATION_S = Number(process.env['BENCH_SECONDS'] ?? 5);
const WARMUP_S = 1;
const WRITER_COUNTS = (process.env['BENCH_WRITERS'] ?? '1,64,256').split(',').map(Number);
const VALUE_BYTES = 256;
/** RPC connections the generator opens to the consul-ts leader at most (calls are pipelined). */
const RPC_POOL_MAX = 32;
const ETCD = process.env['ETCD_BIN'] ?? '/usr/bin/etcd';

interface LoadSpec {
  readonly target: 'consul' | 'etcd';
  /** consul: the leader's server address; etcd: a member's client URL. */
  readonly address: string;
  readonly writers: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly keyPrefix: string;
}

interface LoadResult {
  readonly writes: number;
  readonly errors: number;
  readonly firstError: string;
  readonly writesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU the generator used during the measured window, as a fraction of one core. */
  readonly cpu: number;
}

// ---------------------------------------------------------------------------------------------
// Load generator (child process)

async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const value = Buffer.alloc(VALUE_BYTES, 'v');
  let send: (key: string) => Promise<void>;
  let close = (): void => {};
  if (spec.target === 'consul') {
    const pool: RpcClient[] = [];
    for (let i = 0; i < Math.min(spec.writers, RPC_POOL_MAX); i++) pool.push(await RpcClient.dial(spec.address, 5_000));
    let next = 0;
    send = async (key) => {
      const client = pool[next++ % pool.length]!;
      const reply = await client.call('KVS.Apply', { Datacenter: 'dc1', Op: 'set', DirEnt: { Key: key, Flags: 0, Value: value } }, 10_000);
      if (reply !== true) throw new Error(`KVS.Apply replied ${String(reply)}`);
    };
    close = () => pool.forEach((client) => client.close());
  } else {
    const url = new URL(spec.address);
    const agent = new Agent({ keepAlive: true, maxSockets: spec.writers });
    const valueB64 = value.toString('base64');
    send = (key) =>
      new Promise<void>((resolvePut, rejectPut) => {
        const body = `{"key":"${Buffer.from(key).toString('base64')}","value":"${valueB64}"}`;
        const req = request(
          { host: url.hostname, port: url.port, method: 'POST', path: '/v3/kv/put', agent, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('end', () => (res.statusCode === 200 ? resolvePut() : rejectPut(new Error(`put: HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString()}`))));
            res.on('error', rejectPut);
          },
        );
        req.on('error', rejectPut);
        req.end(body);
      });
    close = () => agent.destroy();
  }

  const start = performance.now();
  const measureFrom = start + spec.warmupMs;
  const stopAt = measureFrom + spec.durationMs;
  const latencies: number[] = [];
  let errors = 0;
  let firstError = '';
  let cpuAtMeasure: NodeJS.CpuUsage | undefined;
  const cpuTimer = setTimeout(() => (cpuAtMeasure = process.cpuUsage()), spec.warmupMs);
  const writer = async (id: number): Promise<void> => {
    for (let i = 0; performance.now() < stopAt; i++) {
      const sentAt = performance.now();
      try {
        await send(`${spec.keyPrefix}/${id}/${i}`);
        const doneAt = performance.now();
        if (sentAt >= measureFrom && doneAt <= stopAt) latencies.push(doneAt - sentAt);
      } catch (error) {
        errors++;
        if (firstError === '') firstError = String((error as Error).message ?? error);
        if (error instanceof RpcError && error.code === 'ERR_RPC_CONNECTION') return;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.writers }, (_, id) => writer(id)));
  clearTimeout(cpuTimer);
  const cpuUsed = process.cpuUsage(cpuAtMeasure);
  close();
  latencies.sort((a, b) => a - b);
  const quantile = (q: number): number => (latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!);
  return {
    writes: latencies.length,
    errors,
    firstError,
    writesPerSecond: latencies.length / (spec.durationMs / 1000),
    p50Ms: quantile(0.5),
    p99Ms: quantile(0.99),
    // The window ends when the last writer returns, a little after stopAt.
    cpu: (cpuUsed.user + cpuUsed.system) / 1000 / Math.max(1, performance.now() - measureFrom),
  };
}

// ---------------------------------------------------------------------------------------------
// Orchestration (parent process)

const children = new ChildProcesses();

function runLoadChild(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolveLoad, rejectLoad) => {
    const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, 'load', JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.track(child);
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), spec.warmupMs + spec.durationMs + 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolveLoad(JSON.parse(out) as LoadResult);
      else rejectLoad(new Error(`load generator exited with ${code}: ${out}`));
    });
  });
}


async function rpcCall(address: string, method: string, args: unknown): Promise<unknown> {
  const client = await RpcClient.dial(address, 2_000);
  try {
    return await client.call(method, args, 2_000);
  } finally {
    client.close();
  }
}

async function benchConsul(scratch: string, distDir: string): Promise<Map<number, LoadResult>> {
  const tuning = join(scratch, 'consul-tuning.json');
  writeFileSync(tuning, JSON.stringify({ performance: { raft_multiplier: 1 } }));
  const ports = await Promise.all([0, 1, 2].map(async () => ({ http: await freePort(), server: await freePort() })));
  const addresses = ports.map(({ server }) => `127.0.0.1:${server}`);
  ports.forEach((port, i) => {
    const args = [
      join(distDir, 'bin', 'agent.js'), '-server', '-bootstrap-expect=3',
      ...addresses.filter((_, j) => j !== i).flatMap((address) => ['-retry-join', address]),
      '-retry-interval', '200ms', '-data-dir', join(scratch, `consul-s${i}`), '-bind', '127.0.0.1', '-node', `s${i}`,
      '-config-file', tuning, '-http-port', String(port.http), '-server-port', String(port.server), '-dns-port', '-1', '-log-level', 'warn',
    ];
    if (process.env['BENCH_CPU_PROF'] !== undefined) args.unshift('--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_CPU_PROF']}`);
    children.start(process.execPath, args, scratch, `consul-ts s${i}`);
  });
  const leader = await waitFor(
    'a consul-ts leader',
    async () => {
      for (const address of addresses) {
        const reported = await rpcCall(address, 'Status.Leader', {}).catch(() => undefined);
        if (typeof reported === 'string' && addresses.includes(reported)) return reported;
      }
      return undefined;
    },
    30_000,
  );
  // One acknowledged write: the leader has committed an entry of its term.
  await waitFor('a first consul-ts write', async () => ((await rpcCall(leader, 'KVS.Apply', { Datacenter: 'dc1', Op: 'set', DirEnt: { Key: 'ready', Value: Buffer.from('x') } })) === true ? true : undefined), 10_000);
  const results = new Map<number, LoadResult>();
  for (const writers of WRITER_COUNTS) {
    results.set(writers, await runLoadChild({ target: 'consul', address: leader, writers, warmupMs: WARMUP_S * 1000, durationMs: DURATION_S * 1000, keyPrefix: `bench/c${writers}` }));
  }
  // SIGTERM first so a --cpu-prof run can write its profile.
  if (process.env['BENCH_CPU_PROF'] !== undefined) {
    children.signalAll('SIGINT');
    await new Promise((resolveWait) => setTimeout(resolveWait, 3_000));
  }
  await children.stopAll();
  return results;
}

async function benchEtcd(scratch: string): Promise<Map<number, LoadResult>> {
  const members = await Promise.all([0, 1, 2].map(async (i) => ({ name: `e${i}`, client: `http://127.0.0.1:${await freePort()}`, peer: `http://127.0.0.1:${await freePort()}` })));
  const initialCluster = members.map((member) => `${member.name}=${member.peer}`).join(',');
  for (const member of members) {
    children.start(ETCD, [
      '--name', member.name, '--data-dir', join(scratch, `etcd-${member.name}`),
      '--listen-client-urls', member.client, '--advertise-client-urls', member.client,
      '--listen-peer-urls', member.peer, '--initial-advertise-peer-urls', member.peer,
      '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', 'consul-ts-bench',
      '--logger', 'zap', '--log-level', 'error',
    ], scratch, `etcd ${member.name}`);
  }
  const leader = await waitFor(
    'an etcd leader',
    async () => {
      for (const member of members) {
        const status = (await httpJson(member.client, '/v3/maintenance/status', {}).catch(() => undefined)) as { leader?: string; header?: { member_id?: string } } | undefined;
        if (status?.leader !== undefined && status.leader !== '0' && status.leader === status.header?.member_id) return member.client;
      }
      return undefined;
    },
    30_000,
  );
  await waitFor('a first etcd write', async () => ((await httpJson(leader, '/v3/kv/put', { key: Buffer.from('ready').toString('base64'), value: 'eA==' })) ? true : undefined), 10_000);
  const results = new Map<number, LoadResult>();
  for (const writers of WRITER_COUNTS) {
    results.set(writers, await runLoadChild({ target: 'etcd', address: leader, writers, warmupMs: WARMUP_S * 1000, durationMs: DURATION_S * 1000, keyPrefix: `bench/e${writers}` }));
  }
  await children.stopAll();
  return results;
}

async function main(): Promise<void> {
  if (!existsSync(ETCD)) {
    process.stderr.write(`etcd not found at ${ETCD}: this benchmark compares with a 3-member etcd 3.4 cluster. Install it with: apt-get install etcd-server (or set ETCD_BIN)\n`);
    process.exit(2);
  }
  const version = spawnSync(ETCD, ['--version'], { encoding: 'utf8' });
  const etcdVersion = /etcd Version: (\S+)/.exec(version.stdout ?? '')?.[1] ?? 'unknown';
  const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-raft-bench-'));
  children.cleanUpOnSignal(scratch);
  try {
    const distDir = join(scratch, 'dist');
    buildRelease(distDir);

    const consul = await benchConsul(scratch, distDir);
    const etcd = await benchEtcd(scratch);

    const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');
    console.log(`3 servers each, loopback, fsync on, ${VALUE_BYTES}-byte values, unique keys; closed-loop writers, ${WARMUP_S} s warm-up + ${DURATION_S} s measured; etcd ${etcdVersion}.`);
    console.log('consul-ts is driven over the server RPC port (KVS.Apply to the leader; HTTP KV does not exist yet); the HTTP issue repeats this end to end. etcd through its v3 HTTP gateway (POST /v3/kv/put) to the leader.\n');
    console.log('| writers | consul-ts writes/s | p50 ms | p99 ms | etcd writes/s | p50 ms | p99 ms | throughput ratio | p99 ratio |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const writers of WRITER_COUNTS) {
      const c = consul.get(writers)!;
      const e = etcd.get(writers)!;
      console.log(`| ${writers} | ${Math.round(c.writesPerSecond)} | ${fmt(c.p50Ms)} | ${fmt(c.p99Ms)} | ${Math.round(e.writesPerSecond)} | ${fmt(e.p50Ms)} | ${fmt(e.p99Ms)} | ${fmt(c.writesPerSecond / e.writesPerSecond)} | ${fmt(c.p99Ms / e.p99Ms)} |`);
    }
    console.log('\nLoad generator (one process, one core at most):');
    for (const writers of WRITER_COUNTS) {
      for (const [name, result] of [['consul-ts', consul.get(writers)!], ['etcd', etcd.get(writers)!]] as const) {
        const note = result.cpu > 0.9 ? ' SATURATED: the generator may be the bottleneck' : '';
        const errors = result.errors > 0 ? `, ${result.errors} errors (first: ${result.firstError})` : '';
        console.log(`- ${name}, ${writers} writers: generator CPU ${Math.round(result.cpu * 100)}% of a core${note}${errors}`);
      }
    }
    const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
    console.log('\nTargets (issue 4):');
    const c64 = consul.get(64);
    const e64 = etcd.get(64);
    if (c64 !== undefined && e64 !== undefined) {
      console.log(`- 64 writers, throughput >= 1.5x etcd: ${fmt(c64.writesPerSecond / e64.writesPerSecond)}x, ${verdict(c64.writesPerSecond >= 1.5 * e64.writesPerSecond)}`);
      console.log(`- 64 writers, p99 no worse than etcd: ${fmt(c64.p99Ms)} vs ${fmt(e64.p99Ms)} ms, ${verdict(c64.p99Ms <= e64.p99Ms)}`);
    }
    const c1 = consul.get(1);
    const e1 = etcd.get(1);
    if (c1 !== undefined && e1 !== undefined) console.log(`- 1 writer, p50 no worse than etcd: ${fmt(c1.p50Ms)} vs ${fmt(e1.p50Ms)} ms, ${verdict(c1.p50Ms <= e1.p50Ms)}`);
  } finally {
    await children.stopAll();
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'load') {
  const result = await runLoad(JSON.parse(process.argv[3]!) as LoadSpec);
  process.stdout.write(JSON.stringify(result));
  process.exit(0);
} else {
  await main();
}
