// The release contract: `dist/` built by `npm run build`, copied alone to a host with only
// Node, runs the agent; nothing in it imports anything but node: built-ins and its own files;
// package.json has no runtime dependencies.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CONSUL_TS_VERSION } from '../lib/version.js';
import { freePort, gossipPortArgs, httpRequest, waitFor } from './support.js';

const projectRoot = resolve(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-release-'));
/** The copied release: a folder with no node_modules anywhere above it. */
const hostDir = join(scratch, 'host', 'consul');
const running = new Set<ChildProcess>();

before(() => {
  const build = spawnSync(process.execPath, ['--import', 'tsx', join(projectRoot, 'scripts', 'build.ts'), join(scratch, 'build')], { cwd: projectRoot, encoding: 'utf8' });
  assert.equal(build.status, 0, `build failed:\n${build.stdout}\n${build.stderr}`);
  cpSync(join(scratch, 'build'), hostDir, { recursive: true });
});

after(() => {
  for (const child of running) child.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});

interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Starts `node bin/agent.js` in the copied release; the caller must stop it. */
function startAgent(args: string[]): { child: ChildProcess; finished: Promise<Finished>; output: () => string } {
  // No NODE_OPTIONS or NODE_PATH from the test runner: the release must stand alone.
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: scratch };
  const child = spawn(process.execPath, ['bin/agent.js', ...args], { cwd: hostDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const finished = new Promise<Finished>((resolveFinished) => {
    child.on('exit', (code) => {
      running.delete(child);
      // Let the pipes deliver what the process wrote before it exited.
      setImmediate(() => resolveFinished({ code, stdout, stderr }));
    });
  });
  return { child, finished, output: () => stdout };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

describe('package', () => {
  test('package.json has no runtime dependencies: the three development tools and one test client', () => {
    const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8'));
    assert.equal(pkg.dependencies, undefined);
    assert.equal(pkg.optionalDependencies, undefined);
    assert.equal(pkg.peerDependencies, undefined);
    // `consul` is the npm client library the real-client tests drive the agent with (issue 5);
    // nothing under lib/ or bin/ imports it (checked below on the built release).
    assert.deepEqual(Object.keys(pkg.devDependencies).sort(), ['@types/node', 'consul', 'tsx', 'typescript']);
    assert.equal(pkg.type, 'module');
    assert.equal(pkg.engines.node, '>=20');
    assert.equal(pkg.version, CONSUL_TS_VERSION);
  });

  test('dist/ imports only node: built-ins and its own files', () => {
    const files = filesUnder(hostDir).filter((file) => file.endsWith('.js'));
    assert.ok(files.some((file) => file.endsWith(join('bin', 'agent.js'))));
    assert.ok(files.some((file) => file.endsWith(join('lib', 'config.js'))));
    for (const file of files) {
      const source = readFileSync(file, 'utf8');
      const patterns = [/^(?:import|export)\s[^'"]*?\bfrom\s*['"]([^'"]+)['"]/gm, /^import\s*['"]([^'"]+)['"]/gm, /\bimport\(\s*['"]([^'"]+)['"]/g, /\brequire\(\s*['"]([^'"]+)['"]/g];
      const specifiers = patterns.flatMap((pattern) => [...source.matchAll(pattern)].map((match) => match[1] ?? ''));
      assert.ok(specifiers.length > 0 || !source.includes('import'), `${file}: no import found, the scan is broken`);
      for (const specifier of specifiers) {
        assert.ok(specifier.startsWith('node:') || specifier.startsWith('./') || specifier.startsWith('../'), `${file} imports ${specifier}`);
      }
    }
    const release = JSON.parse(readFileSync(join(hostDir, 'package.json'), 'utf8'));
    assert.equal(release.type, 'module');
    assert.equal(release.dependencies, undefined);
  });
});

describe('the copied release', () => {
  test('runs `node bin/agent.js -dev`, serves /v1/agent/self, and on SIGTERM stops without leaving (exit 1, as Consul)', async () => {
    const port = await freePort();
    const agent = startAgent(['-dev', '-server-port', String(await freePort()), ...(await gossipPortArgs()), '-node', 'release-test', '-http-port', String(port), '-dns-port', '-1']);
    try {
      const reply = await waitFor('the agent to answer', async () => {
        const answer = await httpRequest(port, 'GET', '/v1/agent/self');
        return answer.status === 200 ? answer : undefined;
      });
      const self = JSON.parse(reply.body);
      assert.equal(self.Config.NodeName, 'release-test');
      assert.equal(self.Config.Server, true);
      assert.match(agent.output(), /==> Starting Consul agent\.\.\./);
      assert.match(agent.output(), /Node name: 'release-test'/);
      assert.match(agent.output(), /Client Addr: \[127\.0\.0\.1\] \(HTTP: \d+, HTTPS: -1, gRPC: 8502, gRPC-TLS: 8503, DNS: -1\)/);
    } finally {
      agent.child.kill('SIGTERM');
    }
    const finished = await agent.finished;
    // A server's leave_on_terminate defaults to false: Consul stops at once and exits 1.
    assert.equal(finished.code, 1, finished.stderr);
    assert.match(finished.stdout, /\[INFO\]  agent: Caught: signal=terminated/);
    assert.match(finished.stdout, /\[INFO\]  agent: Graceful shutdown disabled\. Exiting/);
    assert.match(finished.stdout, /\[INFO\]  agent: shutdown complete/);
    // The log lines come after the banner, as Consul's gated writer arranges.
    assert.ok(finished.stdout.indexOf('Log data will now stream in') < finished.stdout.indexOf('Started HTTP server'));
  });

  test('SIGINT leaves gracefully and exits 0 when skip_leave_on_interrupt is false', async () => {
    const port = await freePort();
    const configFile = join(mkdtempSync(join(tmpdir(), 'release-leave-')), 'leave.json');
    writeFileSync(configFile, JSON.stringify({ skip_leave_on_interrupt: false }));
    const agent = startAgent(['-dev', '-config-file', configFile, '-server-port', String(await freePort()), ...(await gossipPortArgs()), '-http-port', String(port), '-dns-port', '-1']);
    try {
      await waitFor('the agent to answer', async () => ((await httpRequest(port, 'GET', '/v1/status/leader')).status === 200 ? true : undefined));
    } finally {
      agent.child.kill('SIGINT');
    }
    const finished = await agent.finished;
    assert.equal(finished.code, 0, finished.stdout);
    assert.match(finished.stdout, /Gracefully shutting down agent\.\.\./);
    assert.match(finished.stdout, /Graceful exit completed/);
  });

  test('PUT /v1/agent/leave answers 200, shuts the agent down and exits 0', async () => {
    const port = await freePort();
    const agent = startAgent(['-dev', '-server-port', String(await freePort()), ...(await gossipPortArgs()), '-http-port', String(port), '-dns-port', '-1']);
    try {
      await waitFor('the agent to answer', async () => ((await httpRequest(port, 'GET', '/v1/status/leader')).status === 200 ? true : undefined));
      const reply = await httpRequest(port, 'PUT', '/v1/agent/leave');
      assert.equal(reply.status, 200);
    } finally {
      const finished = await agent.finished;
      assert.equal(finished.code, 0, finished.stdout);
      assert.match(finished.stdout, /shutdown complete/);
    }
  });

  test('a persistent single server (-server -bootstrap -data-dir) keeps KV writes across a restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'release-persist-'));
    const port = await freePort();
    const args = ['-server', '-bootstrap', '-data-dir', dataDir, '-bind', '127.0.0.1', '-http-port', String(port), '-server-port', String(await freePort()), ...(await gossipPortArgs()), '-dns-port', '-1'];
    const leads = async (): Promise<true | undefined> => ((await httpRequest(port, 'GET', '/v1/status/leader').catch(() => undefined))?.body.startsWith('"127.0.0.1') ? true : undefined);
    const first = startAgent(args);
    try {
      await waitFor('the first start to lead', leads);
      const put = await fetch(`http://127.0.0.1:${port}/v1/kv/kept`, { method: 'PUT', body: 'across restarts' });
      assert.equal(await put.text(), 'true');
    } finally {
      first.child.kill('SIGTERM');
    }
    await first.finished;
    const second = startAgent(args);
    try {
      await waitFor('the restart to lead', leads);
      const reply = await httpRequest(port, 'GET', '/v1/kv/kept?raw');
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'across restarts');
    } finally {
      second.child.kill('SIGTERM');
      await second.finished;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('-log-json writes only JSON lines and no banner', async () => {
    const port = await freePort();
    const agent = startAgent(['-dev', '-server-port', String(await freePort()), ...(await gossipPortArgs()), '-log-json', '-http-port', String(port), '-dns-port', '-1']);
    try {
      await waitFor('the agent to answer', async () => ((await httpRequest(port, 'GET', '/v1/status/peers')).status === 200 ? true : undefined));
    } finally {
      agent.child.kill('SIGTERM');
    }
    const finished = await agent.finished;
    const lines = finished.stdout.split('\n').filter((line) => line !== '');
    assert.ok(lines.length > 0);
    for (const line of lines) {
      const record = JSON.parse(line);
      assert.equal(typeof record['@message'], 'string');
      assert.match(record['@timestamp'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    }
  });

  test('bad configuration exits 1 before binding anything, with Consul\'s message', async () => {
    const finished = await startAgent(['-dev', '-server-port', String(await freePort()), ...(await gossipPortArgs()), '-foo']).finished;
    assert.equal(finished.code, 1);
    assert.equal(finished.stderr, '==> error parsing flags: flag provided but not defined: -foo\n');
    assert.equal(finished.stdout, '');
    const several = await startAgent(['-bind=127.0.0.1', '-http-port=70000']).finished;
    assert.equal(several.code, 1);
    assert.equal(several.stderr, '==> 2 errors occurred:\n\t* ports.http: invalid port: 70000\n\t* data_dir cannot be empty\n\n');
  });

  test('a port in use fails the start with exit code 1', async () => {
    const port = await freePort();
    const first = startAgent(['-dev', '-server-port', String(await freePort()), ...(await gossipPortArgs()), '-http-port', String(port), '-dns-port', '-1']);
    try {
      await waitFor('the first agent', async () => ((await httpRequest(port, 'GET', '/v1/status/peers')).status === 200 ? true : undefined));
      const second = await startAgent(['-dev', '-server-port', String(await freePort()), ...(await gossipPortArgs()), '-http-port', String(port), '-dns-port', '-1']).finished;
      assert.equal(second.code, 1);
      assert.match(second.stdout, /\[ERROR\] agent: Error starting agent: error=".*EADDRINUSE/);
    } finally {
      first.child.kill('SIGTERM');
    }
    assert.equal((await first.finished).code, 1);
  });

  test('-help prints usage and exits 0', async () => {
    const finished = await startAgent(['-help']).finished;
    assert.equal(finished.code, 0);
    assert.match(finished.stdout, /^Usage: consul-ts agent \[options\]/);
    assert.match(finished.stdout, /-retry-join <value>/);
  });
});
