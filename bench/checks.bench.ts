// Health checks at scale: one agent running 5,000 HTTP checks at a 10 s interval (issue 7's
// target: under 10% of one core and under 200 MB). It builds dist/, starts a single server agent
// (-server -bootstrap, data on disk) and a bare
// node:http target in its own process, registers 5,000 services with one HTTP check each through
// /v1/agent/service/register (16 requests in flight), waits until every check has passed once, then
// reads the agent's CPU time (/proc/<pid>/stat) and RSS (/proc/<pid>/status) over a 30 s window
// (three check intervals). The target's own CPU is not counted.
//
// Run: npm run bench -- checks   (BENCH_CHECKS=1000 BENCH_WINDOW_SECONDS=60 to change the shape;
// BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the agent)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '../test/support.js';
import { buildRelease, ChildProcesses, httpPut } from './support.js';

const CHECKS = Number(process.env['BENCH_CHECKS'] ?? 5_000);
const WINDOW_S = Number(process.env['BENCH_WINDOW_SECONDS'] ?? 30);
const IN_FLIGHT = 16;
/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks. */
const CLOCK_TICKS_PER_S = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);

/**
 * The floor: a bare Node process doing the same probes (one plain node:http GET per check per
 * interval, no keep-alive, random first stagger, runs on the same 100 ms grid as the agent's) and
 * nothing else.
 */
const BARE_PROBER = `
const http = require('node:http');
const [port, count, intervalMs] = process.argv.slice(1).map(Number);
const probe = (i) => new Promise((resolve) => {
  const req = http.request({ hostname: '127.0.0.1', port, path: '/health/' + i, agent: false }, (res) => { res.resume(); res.on('end', resolve); });
  req.on('error', resolve);
  req.end();
});
const onGrid = (delay) => Math.ceil((Date.now() + delay) / 100) * 100 - Date.now();
for (let i = 0; i < count; i++) {
  const loop = () => probe(i).then(() => setTimeout(loop, onGrid(intervalMs)));
  setTimeout(loop, onGrid(Math.random() * intervalMs));
}
`;

const TARGET_SERVER = `
require('node:http').createServer((req, res) => res.end('ok')).listen(Number(process.argv[1]), '127.0.0.1');
`;

function cpuSeconds(pid: number): number {
  // Fields after the command name (which may hold spaces): utime is the 14th field, stime the 15th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
}

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? Number.NaN) / 1024;
}

/** CPU share of one core and highest RSS of `pid` over WINDOW_S, after `settleSeconds` (first staggered runs). */
async function measure(pid: number, settleSeconds: number): Promise<{ cpuShare: number; rssMax: number }> {
  const pause = (ms: number) => new Promise((resolveWait) => setTimeout(resolveWait, ms));
  await pause(settleSeconds * 1000);
  const cpuStart = cpuSeconds(pid);
  const windowStart = performance.now();
  let rssMax = 0;
  while (performance.now() - windowStart < WINDOW_S * 1000) {
    rssMax = Math.max(rssMax, rssMb(pid));
    await pause(1_000);
  }
  return { cpuShare: (cpuSeconds(pid) - cpuStart) / ((performance.now() - windowStart) / 1000), rssMax };
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-bench-checks-'));
  const children = new ChildProcesses();
  children.cleanUpOnSignal(scratch);
  try {
    buildRelease(join(scratch, 'dist'));
    const targetPort = await freePort();
    children.start(process.execPath, ['-e', TARGET_SERVER, String(targetPort)], scratch, 'target server');
    // The floor first, alone on the machine: the same probes from a bare process.
    const { child: prober } = children.start(process.execPath, ['-e', BARE_PROBER, String(targetPort), String(CHECKS), '10000'], scratch, 'bare prober');
    const proberPid = prober.pid;
    if (proberPid === undefined) throw new Error('prober did not start');
    const floor = await measure(proberPid, 10);
    await children.stop(prober);
    const httpPort = await freePort();
    // A persistent single server, as in production (-dev's 100 ms gossip and debug logging cost CPU of their own).
    const nodeArgs = (process.env['BENCH_NODE_ARGS'] ?? '').split(' ').filter((arg) => arg !== '');
    const args = [...nodeArgs, 'bin/agent.js', '-server', '-bootstrap', '-data-dir', join(scratch, 'data'), '-bind', '127.0.0.1', '-node', 'bench', '-http-port', String(httpPort), '-dns-port', '-1', '-server-port', String(await freePort()), '-serf-lan-port', String(await freePort()), '-serf-wan-port', String(await freePort()), '-log-level', 'error'];
    const { child: agent } = children.start(process.execPath, args, join(scratch, 'dist'), 'agent');
    const pid = agent.pid;
    if (pid === undefined) throw new Error('agent did not start');
    await waitFor('a leader', async () => ((await fetch(`http://127.0.0.1:${httpPort}/v1/status/leader`).then((r) => r.text())) !== '""' ? true : undefined), 30_000);
    const rssBefore = rssMb(pid);
    const registerStart = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < CHECKS) {
        const i = next++;
        await httpPut(httpPort, '/v1/agent/service/register', { Name: `svc-${i}`, Port: 10_000 + i, Check: { HTTP: `http://127.0.0.1:${targetPort}/health/${i}`, Interval: '10s' } });
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const registerSeconds = (performance.now() - registerStart) / 1000;
    await waitFor('every check to pass once', async () => {
      const checks = (await (await fetch(`http://127.0.0.1:${httpPort}/v1/agent/checks`)).json()) as Record<string, { Status: string }>;
      return Object.values(checks).filter((check) => check.Status === 'passing').length >= CHECKS ? true : undefined;
    }, 120_000);
    const { cpuShare, rssMax } = await measure(pid, 0);
    console.log(`${CHECKS} HTTP checks at a 10 s interval on one server agent, ${WINDOW_S} s window after all passed once\n`);
    console.log('| measure | value | target | ratio to target |');
    console.log('|---|---|---|---|');
    console.log(`| agent CPU, share of one core | ${(cpuShare * 100).toFixed(1)}% | 10% | ${(cpuShare / 0.1).toFixed(2)} |`);
    console.log(`| floor: bare node:http prober, same probes | ${(floor.cpuShare * 100).toFixed(1)}% (${floor.rssMax.toFixed(0)} MB) | - | agent / floor ${(cpuShare / floor.cpuShare).toFixed(2)} |`);
    console.log(`| agent RSS, highest in the window | ${rssMax.toFixed(0)} MB (${rssBefore.toFixed(0)} MB before registering) | 200 MB | ${(rssMax / 200).toFixed(2)} |`);
    console.log(`| registration of ${CHECKS} services (${IN_FLIGHT} in flight) | ${registerSeconds.toFixed(1)} s | - | - |`);
    if (nodeArgs.length > 0) {
      // A profiled agent writes its profile on a clean exit: SIGINT, then wait for it (bounded).
      const exited = new Promise<void>((resolveExit) => agent.once('exit', () => resolveExit()));
      children.signalAll('SIGINT');
      await Promise.race([exited, new Promise((resolveWait) => setTimeout(resolveWait, 30_000))]);
    }
  } finally {
    await children.stopAll();
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
