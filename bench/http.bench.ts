// HTTP transport overhead: the agent's HTTP layer against a bare node:http server in the same
// run, both loaded by wrk (64 connections, one thread) on loopback. Reports requests/s and p99,
// and the agent's ratio to the bare server, which is the ceiling for any Node HTTP API here.
//
// Needs wrk (Debian package `wrk`). Run: npm run bench -- http
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, httpRequest, waitFor } from '../test/support.js';
import { buildRelease } from './support.js';

const DURATION_S = Number(process.env['BENCH_SECONDS'] ?? 5);
const CONNECTIONS = 64;

/** A bare node:http server answering like /v1/status/leader does: a JSON string. */
const BARE_SERVER = `
const http = require('node:http');
const body = '""';
http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}).listen(Number(process.argv[1]), '127.0.0.1');
`;

interface WrkResult {
  readonly requestsPerSecond: number;
  readonly p99Ms: number;
}

function runWrk(port: number, path: string): WrkResult {
  const result = spawnSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${DURATION_S}s`, '--latency', `http://127.0.0.1:${port}${path}`], { encoding: 'utf8' });
  if (result.error) throw new Error(`wrk failed to start (apt-get install wrk): ${result.error.message}`);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(result.stdout);
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(result.stdout);
  if (!rps || !p99) throw new Error(`could not read wrk output:\n${result.stdout}${result.stderr}`);
  const scale = p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1;
  return { requestsPerSecond: Number(rps[1]), p99Ms: Number(p99[1]) * scale };
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-bench-'));
  const children: ChildProcess[] = [];
  try {
    buildRelease(join(scratch, 'dist'));
    const barePort = await freePort();
    children.push(spawn(process.execPath, ['-e', BARE_SERVER, String(barePort)], { stdio: 'ignore' }));
    const agentPort = await freePort();
    const agentArgs = ['bin/agent.js', '-data-dir', join(scratch, 'data'), '-bind', '127.0.0.1', '-http-port', String(agentPort), '-dns-port', '-1', '-log-level', 'error'];
    children.push(spawn(process.execPath, agentArgs, { cwd: join(scratch, 'dist'), stdio: 'ignore' }));
    await waitFor('the bare server', async () => ((await httpRequest(barePort, 'GET', '/')).status === 200 ? true : undefined));
    await waitFor('the agent', async () => ((await httpRequest(agentPort, 'GET', '/v1/status/leader')).status === 200 ? true : undefined));

    const bare = runWrk(barePort, '/');
    const leader = runWrk(agentPort, '/v1/status/leader');
    const self = runWrk(agentPort, '/v1/agent/self');
    const row = (name: string, result: WrkResult): string =>
      `| ${name} | ${Math.round(result.requestsPerSecond)} | ${result.p99Ms.toFixed(2)} | ${(result.requestsPerSecond / bare.requestsPerSecond).toFixed(2)} |`;
    console.log(`wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s, loopback, same run\n`);
    console.log('| target | req/s | p99 ms | ratio to bare node:http |');
    console.log('|---|---|---|---|');
    console.log(row('bare node:http, 2-byte JSON', bare));
    console.log(row('agent GET /v1/status/leader', leader));
    console.log(row('agent GET /v1/agent/self (~3 KB)', self));
  } finally {
    for (const child of children) child.kill('SIGKILL');
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
