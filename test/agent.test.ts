import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Agent, memberTags, NODE_ID_FILE } from '../lib/agent.js';
import { loadConfig, NODE_HOST, type RuntimeConfig } from '../lib/config.js';
import { kvsGet } from '../lib/kvs.js';
import { createLogger, MemorySink } from '../lib/log.js';
import { CONSUL_VERSION } from '../lib/version.js';
import { freePort, gossipPortArgs, httpRequest, waitFor } from './support.js';

const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-agent-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const host = { ...NODE_HOST, hostname: () => 'agent-test' };

async function configFor(args: string[]): Promise<RuntimeConfig> {
  const port = await freePort();
  const serverPort = await freePort();
  return loadConfig([...args, '-http-port', String(port), '-server-port', String(serverPort), ...(await gossipPortArgs()), '-dns-port', '-1'], host).config;
}

async function withAgent<T>(config: RuntimeConfig, use: (agent: Agent, port: number) => Promise<T>, sink = new MemorySink()): Promise<T> {
  const agent = await Agent.start({ config, logger: createLogger({ level: 'debug', json: false, nowMs: () => 0, sink }) });
  try {
    return await use(agent, config.ports.http);
  } finally {
    await agent.shutdown();
  }
}

describe('the dev agent\'s endpoints', () => {
  test('GET /v1/agent/self has Consul\'s shape', async () => {
    const config = await configFor(['-dev', '-node', 'n1', '-node-meta', 'rack:r1']);
    await withAgent(config, async (agent, port) => {
      const reply = await httpRequest(port, 'GET', '/v1/agent/self');
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-consul-default-acl-policy'], 'allow');
      // Dev mode pretty-prints, as Consul does.
      assert.ok(reply.body.startsWith('{\n    "Config": {'));
      const self = JSON.parse(reply.body);
      assert.deepEqual(Object.keys(self), ['Config', 'DebugConfig', 'Coord', 'Member', 'Stats', 'Meta']);
      assert.deepEqual(Object.keys(self.Config), ['Datacenter', 'PrimaryDatacenter', 'NodeName', 'NodeID', 'Revision', 'Server', 'Version', 'BuildDate']);
      assert.equal(self.Config.Datacenter, 'dc1');
      assert.equal(self.Config.NodeName, 'n1');
      assert.equal(self.Config.NodeID, agent.nodeId);
      assert.match(agent.nodeId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.equal(self.Config.Server, true);
      assert.equal(self.Config.Version, CONSUL_VERSION);
      assert.deepEqual(self.Coord, { Vec: [0, 0, 0, 0, 0, 0, 0, 0], Error: 1.5, Adjustment: 0, Height: 1e-5 });
      assert.equal(self.Member.Name, 'n1');
      assert.equal(self.Member.Addr, '127.0.0.1');
      assert.equal(self.Member.Port, config.ports.serfLan);
      assert.equal(self.Member.Status, 1);
      assert.equal(self.Member.Tags.role, 'consul');
      assert.equal(self.Member.Tags.id, agent.nodeId);
      assert.equal(self.DebugConfig.DevMode, true);
      assert.equal(self.DebugConfig.EncryptKey, 'hidden');
      assert.deepEqual(self.DebugConfig.HTTPAddrs, [`tcp://127.0.0.1:${port}`]);
      assert.equal(self.Stats.consul.server, 'true');
      assert.equal(self.Stats.build.version, CONSUL_VERSION);
      assert.deepEqual(self.Meta, { rack: 'r1', 'consul-network-segment': '', 'consul-version': CONSUL_VERSION });
      for (const section of Object.values(self.Stats) as Record<string, unknown>[]) {
        for (const value of Object.values(section)) assert.equal(typeof value, 'string', 'Consul\'s Stats values are all strings');
      }
    });
  });

  test('a dev server elects itself and the status endpoints answer from Raft', async () => {
    const config = await configFor(['-dev']);
    const address = `127.0.0.1:${config.ports.server}`;
    await withAgent(config, async (_agent, port) => {
      const leader = await waitFor('a leader', async () => {
        const reply = await httpRequest(port, 'GET', '/v1/status/leader');
        return JSON.parse(reply.body) === address ? reply : undefined;
      });
      assert.equal(leader.status, 200);
      assert.equal(leader.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse((await httpRequest(port, 'GET', '/v1/status/peers')).body), [address]);
      const self = JSON.parse((await httpRequest(port, 'GET', '/v1/agent/self')).body);
      assert.equal(self.Stats.consul.leader, 'true');
      assert.equal(self.Stats.consul.leader_addr, address);
    });
  });

  test('a client agent has no Raft: no leader and no peers, as Consul reports them', async () => {
    const config = await configFor(['-data-dir', join(scratch, 'client'), '-bind', '127.0.0.1']);
    await withAgent(config, async (_agent, port) => {
      assert.equal(JSON.parse((await httpRequest(port, 'GET', '/v1/status/leader')).body), '');
      assert.deepEqual(JSON.parse((await httpRequest(port, 'GET', '/v1/status/peers')).body), []);
    });
  });

  test('a -bootstrap server keeps committed state across a restart', async () => {
    // raft_multiplier 1 (Consul's production tuning) makes the election timeout 1 s instead of 5 s.
    const tuning = join(scratch, 'fast-raft.json');
    writeFileSync(tuning, JSON.stringify({ performance: { raft_multiplier: 1 } }));
    const config = await configFor(['-server', '-bootstrap', '-data-dir', join(scratch, 'bootstrap'), '-bind', '127.0.0.1', '-config-file', tuning]);
    const value = new TextEncoder().encode('survives');
    await withAgent(config, async (agent, port) => {
      await waitFor('a leader', async () => (JSON.parse((await httpRequest(port, 'GET', '/v1/status/leader')).body) !== '' ? true : undefined), 30_000);
      const result = await agent.applyCommand({ type: 'kvs', op: 'set', entry: { Key: 'restart/key', Value: value } });
      assert.deepEqual(result, { ok: true, value: true });
    });
    await withAgent(config, async (agent) => {
      const entry = await waitFor('the restored key', () => agent.state.read((txn) => kvsGet(txn, 'restart/key')).value, 30_000);
      assert.equal(Buffer.from(entry.Value ?? []).toString(), 'survives');
    });
  });

  test('writes to read-only endpoints get 405', async () => {
    const config = await configFor(['-dev']);
    await withAgent(config, async (_agent, port) => {
      const reply = await httpRequest(port, 'PUT', '/v1/status/leader');
      assert.equal(reply.status, 405);
      assert.equal(reply.headers['allow'], 'OPTIONS,GET');
    });
  });

  test('compact JSON outside dev mode', async () => {
    const config = await configFor(['-data-dir', join(scratch, 'compact'), '-bind', '127.0.0.1']);
    await withAgent(config, async (_agent, port) => {
      assert.equal((await httpRequest(port, 'GET', '/v1/status/peers')).body, '[]');
    });
  });
});

describe('node identity', () => {
  test('the node ID is created once, persisted, and kept across restarts', async () => {
    const dataDir = join(scratch, 'persist');
    const config = await configFor(['-data-dir', dataDir, '-bind', '127.0.0.1']);
    const first = await withAgent(config, async (agent) => agent.nodeId);
    assert.equal(readFileSync(join(dataDir, NODE_ID_FILE), 'utf8'), first);
    const second = await withAgent(config, async (agent) => agent.nodeId);
    assert.equal(second, first);
  });

  test('a configured node ID wins', async () => {
    const config = await configFor(['-dev', '-node-id', '11111111-2222-4333-8444-555555555555']);
    assert.equal(await withAgent(config, async (agent) => agent.nodeId), '11111111-2222-4333-8444-555555555555');
  });

  test('a corrupt node-id file stops the start instead of changing identity', async () => {
    const dataDir = mkdtempSync(join(scratch, 'corrupt-'));
    writeFileSync(join(dataDir, NODE_ID_FILE), 'not-a-uuid');
    const config = await configFor(['-data-dir', dataDir, '-bind', '127.0.0.1']);
    await assert.rejects(Agent.start({ config, logger: createLogger({ level: 'error', json: false, nowMs: () => 0, sink: new MemorySink() }) }), /failed to setup node ID: loaded node ID is invalid/);
  });

  test('a port in use fails the start and releases what was bound', async () => {
    const config = await configFor(['-dev']);
    await withAgent(config, async () => {
      await assert.rejects(Agent.start({ config, logger: createLogger({ level: 'error', json: false, nowMs: () => 0, sink: new MemorySink() }) }), { code: 'EADDRINUSE' });
    });
  });

  test('a service definition whose check may not run stops the start with Consul\'s message', async () => {
    const file = join(scratch, 'svc.json');
    writeFileSync(file, JSON.stringify({ service: { name: 'web', check: { args: ['/bin/true'], interval: '10s' } } }));
    await assert.rejects(
      Agent.start({ config: await configFor(['-dev', '-config-file', file]), logger: createLogger({ level: 'error', json: false, nowMs: () => 0, sink: new MemorySink() }) }),
      /Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true/,
    );
  });
});

describe('gossip tags', () => {
  test('servers advertise their RPC port and bootstrap expectation; clients their role', async () => {
    const server = loadConfig(['-data-dir', scratch, '-bind', '127.0.0.1', '-server', '-bootstrap-expect=3'], host).config;
    const tags = memberTags(server, 'id-1');
    assert.equal(tags['role'], 'consul');
    assert.equal(tags['port'], '8300');
    assert.equal(tags['expect'], '3');
    assert.equal(tags['raft_vsn'], '3');
    assert.equal(tags['build'], `${CONSUL_VERSION}:consul-ts-0.1.0`);
    const client = memberTags(loadConfig(['-data-dir', scratch, '-bind', '127.0.0.1'], host).config, 'id-2');
    assert.equal(client['role'], 'node');
    assert.equal(client['port'], undefined);
  });
});
