// DNS throughput: A and SRV lookups of a service with 20 healthy instances, answered by the
// agent, side by side with a bare node:dgram server that answers every query with one fixed
// packet (the runtime's ceiling for a UDP responder here). Load: dnsperf (Debian package
// `dnsperf`), one thread keeping many queries in flight, on loopback. Then each lookup again at
// half of its measured maximum rate, for the p99 latency.
//
// Run: npm run bench -- dns   (BENCH_SECONDS=10 for longer runs)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, waitFor } from '../test/support.js';
import { ChildProcesses } from './support.js';

const DURATION_S = Number(process.env['BENCH_SECONDS'] ?? 5);
const INSTANCES = 20;
const IN_FLIGHT = 256;

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
  readonly p99Ms: number | undefined;
}

function dnsperf(port: number, file: string, maxQps?: number): PerfResult {
  const args = ['-s', '127.0.0.1', '-p', String(port), '-d', file, '-l', String(DURATION_S), '-c', '4', '-T', '1', '-q', String(IN_FLIGHT), '-t', '2'];
  if (maxQps !== undefined) args.push('-Q', String(Math.round(maxQps)), '-v');
  const result = spawnSync('dnsperf', args, { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (result.error) throw new Error(`dnsperf failed to start (apt-get install dnsperf): ${result.error.message}`);
  const qps = /Queries per second:\s+([\d.]+)/.exec(result.stdout);
  const lost = /Queries lost:\s+(\d+)/.exec(result.stdout);
  if (!qps) throw new Error(`could not read dnsperf output:\n${result.stdout.slice(-2_000)}${result.stderr}`);
  let p99Ms: number | undefined;
  if (maxQps !== undefined) {
    const latencies = [...result.stdout.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((match) => Number(match[1]));
    latencies.sort((a, b) => a - b);
    p99Ms = (latencies[Math.floor(latencies.length * 0.99)] ?? Number.NaN) * 1000;
  }
  return { qps: Number(qps[1]), lost: Number(lost?.[1] ?? 0), p99Ms };
}

async function put(port: number, path: string, body: unknown): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'PUT', body: JSON.stringify(body) });
  if (response.status !== 200) throw new Error(`${path}: ${response.status} ${await response.text()}`);
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-bench-dns-'));
  const children = new ChildProcesses();
  children.cleanUpOnSignal(scratch);
  try {
    const root = resolve(import.meta.dirname, '..');
    const build = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'build.ts'), join(scratch, 'dist')], { stdio: 'inherit' });
    if (build.status !== 0) throw new Error('build failed');
    const barePort = await freePort();
    children.start(process.execPath, ['-e', BARE_SERVER, String(barePort), FIXED_REPLY_HEX], scratch, 'bare dgram server');
    const httpPort = await freePort();
    const dnsPort = await freePort();
    const agentArgs = ['bin/agent.js', '-dev', '-node', 'bench', '-http-port', String(httpPort), '-dns-port', String(dnsPort), '-server-port', String(await freePort()), '-serf-lan-port', String(await freePort()), '-serf-wan-port', String(await freePort()), '-log-level', 'error'];
    children.start(process.execPath, agentArgs, join(scratch, 'dist'), 'agent');
    await waitFor('the agent', async () => ((await fetch(`http://127.0.0.1:${httpPort}/v1/status/leader`).then((r) => r.text())) !== '""' ? true : undefined), 30_000);
    await waitFor('a writable catalog', async () => {
      await put(httpPort, '/v1/catalog/register', { Node: 'web-0', Address: '10.0.0.1' });
      return true;
    }, 30_000);
    for (let i = 0; i < INSTANCES; i++) {
      await put(httpPort, '/v1/catalog/register', {
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

    const bare = dnsperf(barePort, aFile);
    const a = dnsperf(dnsPort, aFile);
    const srv = dnsperf(dnsPort, srvFile);
    const bareHalf = dnsperf(barePort, aFile, bare.qps / 2);
    const aHalf = dnsperf(dnsPort, aFile, a.qps / 2);
    const srvHalf = dnsperf(dnsPort, srvFile, srv.qps / 2);
    const row = (name: string, full: PerfResult, half: PerfResult): string =>
      `| ${name} | ${Math.round(full.qps)} | ${full.lost} | ${(full.qps / bare.qps).toFixed(2)} | ${Math.round(half.qps)} | ${half.p99Ms?.toFixed(3)} |`;
    console.log(`dnsperf -T 1 -c 4 -q ${IN_FLIGHT} -l ${DURATION_S}, plain UDP (no EDNS: 3 answers), ${INSTANCES} healthy instances, loopback, same run\n`);
    console.log('| target | max qps | lost | ratio to bare dgram | qps at half load | p99 ms at half load |');
    console.log('|---|---|---|---|---|---|');
    console.log(row('bare node:dgram, fixed 3-record reply', bare, bareHalf));
    console.log(row('agent A web.service.consul', a, aHalf));
    console.log(row('agent SRV web.service.consul', srv, srvHalf));
  } finally {
    await children.stopAll();
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
