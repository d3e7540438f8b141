// DNS throughput: A and SRV lookups of a service with 20 healthy instances, answered by the
// agent, side by side with a bare node:dgram server that answers every query with one fixed
// packet (the runtime's ceiling for a UDP responder here). Load: dnsperf (Debian package
// `dnsperf`), one thread keeping many queries in flight (16 sockets, 500 outstanding), on
// loopback. Then each target again at half of its measured maximum rate for the latency
// percentiles, with at most 50 queries outstanding: with 500, dnsperf's own scheduling hiccups
// release bursts of hundreds of queries at once and the p99 measures the burst, not the server
// (the bare responder's p99 then swings between 1 and 4 ms on its own). Rounds alternate the
// targets, and the table gives medians, because this shared 2-vCPU machine drifts by 10-30%.
//
// Run: npm run bench -- dns   (BENCH_SECONDS=10 BENCH_ROUNDS=5 for longer runs)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '../test/support.js';
import { buildRelease, ChildProcesses, httpPut } from './support.js';

const DURATION_S = Number(process.env['BENCH_SECONDS'] ?? 5);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
/** Outstanding queries when measuring latency at half load. */
const LATENCY_IN_FLIGHT = 50;
const INSTANCES = 20;
const IN_FLIGHT = 500;
const CLIENTS = 16;

/** A bare node:dgram responder: every query gets one prebuilt reply with the query's ID. */
const BARE_SERVER = `
const dgram = require('node:dgram');
const reply = Buffer.from(process.argv[2], 'hex');
const socket = dgram.createSocket('udp4');
socket.on('message', (query, remote) => {
  reply[0] = query[0];
  reply[1] = query[1];
  socket.send(reply, remote.port, remote.address);
});
socket.bind(Number(process.argv[1]), '127.0.0.1');
`;

/** What an A answer with three records looks like on the wire (web.service.consul, compressed). */
const FIXED_REPLY_HEX =
  '0000' + '8500' + '0001' + '0003' + '0000' + '0000' +
  '03776562077365727669636506636f6e73756c00' + '0001' + '0001' +
  ['0a000001', '0a000002', '0a000003'].map((ip) => 'c00c' + '0001' + '0001' + '00000000' + '0004' + ip).join('');

interface PerfResult {
  readonly qps: number;
  readonly lost: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

function dnsperf(port: number, file: string, maxQps?: number): PerfResult {
  const inFlight = maxQps === undefined ? IN_FLIGHT : LATENCY_IN_FLIGHT;
  const clients = maxQps === undefined ? CLIENTS : 4;
  const args = ['-s', '127.0.0.1', '-p', String(port), '-d', file, '-l', String(DURATION_S), '-c', String(clients), '-T', '1', '-q', String(inFlight), '-t', '2'];
  if (maxQps !== undefined) args.push('-Q', String(Math.round(maxQps)), '-v');
  const result = spawnSync('dnsperf', args, { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (result.error) throw new Error(`dnsperf failed to start (apt-get install dnsperf): ${result.error.message}`);
  const qps = /Queries per second:\s+([\d.]+)/.exec(result.stdout);
  const lost = /Queries lost:\s+(\d+)/.exec(result.stdout);
  if (!qps) throw new Error(`could not read dnsperf output:\n${result.stdout.slice(-2_000)}${result.stderr}`);
  const latencies = [...result.stdout.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((match) => Number(match[1]) * 1000);
  latencies.sort((a, b) => a - b);
  const percentile = (p: number): number => latencies[Math.floor(latencies.length * p)] ?? Number.NaN;
  return { qps: Number(qps[1]), lost: Number(lost?.[1] ?? 0), p50Ms: percentile(0.5), p99Ms: percentile(0.99) };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-bench-dns-'));
  const children = new ChildProcesses();
  children.cleanUpOnSignal(scratch);
  try {
    buildRelease(join(scratch, 'dist'));
    const barePort = await freePort();
    children.start(process.execPath, ['-e', BARE_SERVER, String(barePort), FIXED_REPLY_HEX], scratch, 'bare dgram server');
    const httpPort = await freePort();
    const dnsPort = await freePort();
    const agentArgs = ['bin/agent.js', '-dev', '-node', 'bench', '-http-port', String(httpPort), '-dns-port', String(dnsPort), '-server-port', String(await freePort()), '-serf-lan-port', String(await freePort()), '-serf-wan-port', String(await freePort()), '-log-level', 'error'];
    children.start(process.execPath, agentArgs, join(scratch, 'dist'), 'agent');
    await waitFor('the agent', async () => ((await fetch(`http://127.0.0.1:${httpPort}/v1/status/leader`).then((r) => r.text())) !== '""' ? true : undefined), 30_000);
    await waitFor('a writable catalog', async () => {
      await httpPut(httpPort, '/v1/catalog/register', { Node: 'web-0', Address: '10.0.0.1' });
      return true;
    }, 30_000);
    for (let i = 0; i < INSTANCES; i++) {
      await httpPut(httpPort, '/v1/catalog/register', {
        Node: `web-${i}`,
        Address: `10.0.0.${i + 1}`,
        Service: { Service: 'web', Port: 8080 },
        Check: { CheckID: 'service:web', Name: 'web', Status: 'passing', ServiceID: 'web' },
      });
    }
    const aFile = join(scratch, 'a.txt');
    const srvFile = join(scratch, 'srv.txt');
    writeFileSync(aFile, 'web.service.consul A\n');
    writeFileSync(srvFile, 'web.service.consul SRV\n');

    const targets = [
      { name: 'bare node:dgram, fixed 3-record reply', port: barePort, file: aFile },
      { name: 'agent A web.service.consul', port: dnsPort, file: aFile },
      { name: 'agent SRV web.service.consul', port: dnsPort, file: srvFile },
    ];
    const full = targets.map((): PerfResult[] => []);
    const half = targets.map((): PerfResult[] => []);
    for (let round = 0; round < ROUNDS; round++) {
      targets.forEach((target, i) => full[i]?.push(dnsperf(target.port, target.file)));
      targets.forEach((target, i) => half[i]?.push(dnsperf(target.port, target.file, median((full[i] ?? []).map((r) => r.qps)) / 2)));
    }
    const bareQps = median((full[0] ?? []).map((r) => r.qps));
    console.log(`dnsperf -T 1, plain UDP (no EDNS: 3 answers), ${INSTANCES} healthy instances, loopback; medians of ${ROUNDS} alternating rounds of ${DURATION_S} s\n`);
    console.log(`| target | max qps (-c ${CLIENTS} -q ${IN_FLIGHT}) | ratio to bare dgram | half load qps (-q ${LATENCY_IN_FLIGHT}) | p50 ms | p99 ms |`);
    console.log('|---|---|---|---|---|---|');
    targets.forEach((target, i) => {
      const qps = median((full[i] ?? []).map((r) => r.qps));
      const h = half[i] ?? [];
      console.log(`| ${target.name} | ${Math.round(qps)} | ${(qps / bareQps).toFixed(2)} | ${Math.round(median(h.map((r) => r.qps)))} | ${median(h.map((r) => r.p50Ms)).toFixed(3)} | ${median(h.map((r) => r.p99Ms)).toFixed(3)} |`);
    });
    console.log(`\nper round max qps: ${targets.map((target, i) => `${target.name.split(',')[0]}: ${(full[i] ?? []).map((r) => Math.round(r.qps)).join(' / ')}`).join('; ')}`);
  } finally {
    await children.stopAll();
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
