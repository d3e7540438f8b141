// lib/agentpersist.ts and restarts: API registrations and TTL results survive an agent restart;
// bad files are set aside, never fatal.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Agent } from '../lib/agent.js';
import { AgentPersistence } from '../lib/agentpersist.js';
import { loadConfig, NODE_HOST } from '../lib/config.js';
import { ObjectReader } from '../lib/decode.js';
import { readCheckDefinition, readServiceDefinition } from '../lib/definitions.js';
import { createLogger, MemorySink, nullLogger } from '../lib/log.js';
import { freePort, gossipPortArgs, waitFor } from './support.js';

const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-persist-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const service = (fields: Record<string, unknown>) => readServiceDefinition(new ObjectReader(fields, '', []));
const check = (fields: Record<string, unknown>) => readCheckDefinition(new ObjectReader(fields, '', []));

describe('agent persistence files', () => {
  test('services, checks and TTL states round-trip; removals remove', () => {
    const dir = mkdtempSync(join(scratch, 'files-'));
    const store = new AgentPersistence(dir, nullLogger());
    store.saveService({ definition: service({ name: 'web', port: 80, tags: ['a'], check: { ttl: '10s' } }), source: 'remote' });
    store.saveService({ definition: service({ id: 'db/1', name: 'db' }), source: 'remote' });
    store.saveCheck({ definition: check({ id: 'disk', name: 'disk', ttl: '30s' }), source: 'remote' });
    store.saveCheckState({ checkId: 'disk', status: 'warning', output: '80% full', expiresAtMs: 123 });
    const loaded = store.load();
    assert.deepEqual(loaded.services.map((s) => s.definition.id || s.definition.name).sort(), ['db/1', 'web']);
    assert.deepEqual(loaded.services.find((s) => s.definition.name === 'web')?.definition.tags, ['a']);
    assert.equal(loaded.checks[0]?.definition.ttlNanos, 30e9);
    assert.deepEqual(loaded.checkStates.get('disk'), { checkId: 'disk', status: 'warning', output: '80% full', expiresAtMs: 123 });
    store.removeService('db/1');
    store.removeCheck('disk');
    const after = store.load();
    assert.deepEqual(after.services.map((s) => s.definition.name), ['web']);
    assert.equal(after.checks.length, 0);
    assert.equal(after.checkStates.size, 0);
  });

  test('torn, tampered, foreign and misnamed files are set aside with a warning; the rest loads', () => {
    const dir = mkdtempSync(join(scratch, 'bad-'));
    const sink = new MemorySink();
    const store = new AgentPersistence(dir, createLogger({ level: 'warn', json: false, nowMs: () => 0, sink }));
    store.saveService({ definition: service({ name: 'good' }), source: 'remote' });
    store.saveService({ definition: service({ name: 'torn' }), source: 'remote' });
    store.saveService({ definition: service({ name: 'flipped' }), source: 'remote' });
    const services = join(dir, 'services');
    const [good, torn, flipped] = ['good', 'torn', 'flipped'].map(md5);
    assert.equal(readdirSync(services).length, 3);
    writeFileSync(join(services, torn as string), '{"version":1,"kind":"serv');
    writeFileSync(join(services, flipped as string), JSON.stringify({ version: 1, kind: 'service', sha256: '00', payload: '{}' }));
    writeFileSync(join(services, md5('misnamed')), JSON.stringify({ version: 1, kind: 'service', sha256: sha256('{"definition":{"id":"other","name":"other"},"source":"remote"}'), payload: '{"definition":{"id":"other","name":"other"},"source":"remote"}' }));
    writeFileSync(join(services, `${good as string}.tmp`), 'left by a crash');
    const loaded = store.load();
    assert.deepEqual(loaded.services.map((s) => s.definition.name), ['good']);
    assert.ok(existsSync(join(services, `${torn as string}.corrupt`)));
    assert.ok(existsSync(join(services, `${flipped as string}.corrupt`)));
    assert.equal(sink.lines.filter((line) => line.includes('persisted agent file is unreadable')).length, 3);
    assert.deepEqual(store.load().services.map((s) => s.definition.name), ['good'], 'set-aside files are not read again');
  });
});

describe('an agent restart', () => {
  test('keeps API-registered services and checks, a TTL check\'s last result, and maintenance mode', async () => {
    const dataDir = mkdtempSync(join(scratch, 'agent-'));
    const port = await freePort();
    const args = ['-server', '-bootstrap', '-data-dir', dataDir, '-bind', '127.0.0.1', '-node', 'persist-test', '-http-port', String(port), '-dns-port', '-1', '-server-port', String(await freePort()), ...(await gossipPortArgs())];
    const start = () => Agent.start({ config: loadConfig(args, { ...NODE_HOST, hostname: () => 'persist-test' }).config, logger: createLogger({ level: 'error', json: false, nowMs: Date.now, sink: new MemorySink() }) });
    const api = (method: string, path: string, body?: unknown) => fetch(`http://127.0.0.1:${port}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    let agent = await start();
    try {
      await waitFor('a leader', async () => ((await (await api('GET', '/v1/status/leader')).json()) !== '' ? true : undefined), 20_000);
      assert.equal((await api('PUT', '/v1/agent/service/register', { Name: 'web', Port: 80, Check: { TTL: '5m' } })).status, 200);
      assert.equal((await api('PUT', '/v1/agent/check/register', { Name: 'node-ttl', TTL: '5m' })).status, 200);
      assert.equal((await api('PUT', '/v1/agent/check/warn/service:web?note=slow')).status, 200);
      assert.equal((await api('PUT', '/v1/agent/check/register', { Name: 'gone', TTL: '5m' })).status, 200);
      assert.equal((await api('PUT', '/v1/agent/check/deregister/gone')).status, 200);
      assert.equal((await api('PUT', '/v1/agent/service/maintenance/web?enable=true&reason=deploying')).status, 200);
      assert.equal((await api('PUT', '/v1/agent/maintenance?enable=true')).status, 200);
      assert.equal((await api('PUT', '/v1/agent/maintenance?enable=false')).status, 200);
    } finally {
      await agent.shutdown();
    }
    agent = await start();
    try {
      const services = (await (await api('GET', '/v1/agent/services')).json()) as Record<string, { Port: number }>;
      assert.equal(services['web']?.Port, 80);
      const checks = (await (await api('GET', '/v1/agent/checks')).json()) as Record<string, { Status: string; Output: string }>;
      assert.deepEqual([checks['service:web']?.Status, checks['service:web']?.Output], ['warning', 'slow']);
      assert.equal(checks['node-ttl']?.Status, 'critical');
      assert.equal(checks['gone'], undefined);
      const maintenance = checks['_service_maintenance:web'] as { Status: string; Notes?: string; ServiceID?: string } | undefined;
      assert.deepEqual([maintenance?.Status, maintenance?.Notes, maintenance?.ServiceID], ['critical', 'deploying', 'web']);
      assert.equal(checks['_node_maintenance'], undefined, 'node maintenance was disabled before the restart');
      assert.equal((await api('PUT', '/v1/agent/service/maintenance/web?enable=false')).status, 200);
    } finally {
      await agent.shutdown();
    }
    agent = await start();
    try {
      const checks = (await (await api('GET', '/v1/agent/checks')).json()) as Record<string, unknown>;
      assert.equal(checks['_service_maintenance:web'], undefined, 'disabled maintenance stays disabled');
    } finally {
      await agent.shutdown();
    }
  });
});

function md5(id: string): string {
  return createHashHex('md5', id);
}

function sha256(text: string): string {
  return createHashHex('sha256', text);
}

function createHashHex(algorithm: string, text: string): string {
  return createHash(algorithm).update(text).digest('hex');
}

describe('peers.json outage recovery', () => {
  test('read on start, applied and deleted; one found on a first start is deleted unread; a bad one fails the start with Consul\'s text', async () => {
    const dataDir = mkdtempSync(join(scratch, 'peers-'));
    const raftDir = join(dataDir, 'raft');
    const port = await freePort();
    const serverPort = await freePort();
    const tuning = join(scratch, 'peers-tuning.json');
    writeFileSync(tuning, JSON.stringify({ performance: { raft_multiplier: 1 } }));
    const args = (extra: string[]) => ['-server', ...extra, '-data-dir', dataDir, '-bind', '127.0.0.1', '-node', 'peers-test', '-http-port', String(port), '-dns-port', '-1', '-server-port', String(serverPort), '-config-file', tuning, ...gossipPorts];
    const gossipPorts = await gossipPortArgs();
    let sink = new MemorySink();
    const start = (extra: string[]) => {
      sink = new MemorySink();
      return Agent.start({ config: loadConfig(args(extra), { ...NODE_HOST, hostname: () => 'peers-test' }).config, logger: createLogger({ level: 'info', json: false, nowMs: Date.now, sink }) });
    };
    const api = (method: string, path: string, body?: string) => fetch(`http://127.0.0.1:${port}${path}`, { method, ...(body === undefined ? {} : { body }) });
    const leader = () => waitFor('a leader', async () => ((await (await api('GET', '/v1/status/leader')).json()) !== '' ? true : undefined), 20_000);

    // A peers.json left from before this data dir was ever started is deleted unread.
    mkdirSync(raftDir, { recursive: true });
    writeFileSync(join(raftDir, 'peers.json'), '[{"id": "stale", "address": "10.9.9.9:8300"}]');
    let agent = await start(['-bootstrap']);
    let nodeId = '';
    try {
      assert.ok(!existsSync(join(raftDir, 'peers.json')));
      assert.ok(existsSync(join(raftDir, 'peers.info')));
      assert.ok(sink.lines.some((line) => line.includes('deleted peers.json file (see peers.info for details)')));
      await leader();
      assert.equal((await api('PUT', '/v1/kv/kept', 'before the outage')).status, 200);
      nodeId = ((await (await api('GET', '/v1/agent/self')).json()) as { Config: { NodeID: string } }).Config.NodeID;
    } finally {
      await agent.shutdown();
    }

    writeFileSync(join(raftDir, 'peers.json'), JSON.stringify([{ id: nodeId, address: `127.0.0.1:${serverPort}`, non_voter: false }]));
    agent = await start([]);
    try {
      assert.ok(sink.lines.some((line) => line.includes('found peers.json file, recovering Raft configuration...')));
      assert.ok(sink.lines.some((line) => line.includes('deleted peers.json file after successful recovery')));
      assert.ok(!existsSync(join(raftDir, 'peers.json')));
      await leader();
      assert.equal(await (await api('GET', '/v1/kv/kept?raw')).text(), 'before the outage');
      const servers = ((await (await api('GET', '/v1/operator/raft/configuration')).json()) as { Servers: { ID: string }[] }).Servers;
      assert.deepEqual(servers.map((server) => server.ID), [nodeId]);
    } finally {
      await agent.shutdown();
    }

    writeFileSync(join(raftDir, 'peers.json'), '[{"id": "x"');
    await assert.rejects(start([]), /^Error: recovery failed to parse peers\.json: /);
    writeFileSync(join(raftDir, 'peers.json'), JSON.stringify([{ id: nodeId, address: `127.0.0.1:${serverPort}`, non_voter: true }]));
    await assert.rejects(start([]), /recovery failed to parse peers\.json: need at least one voter in configuration/);
    assert.ok(existsSync(join(raftDir, 'peers.json')), 'a failed recovery leaves the file for the operator');
  });
});
