import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Agent } from '../lib/agent.js';
import { loadConfig, NODE_HOST } from '../lib/config.js';
import { bootstrapDecision, BootstrapDiscovery, type ServerInfo } from '../lib/discovery.js';
import { kvsGet } from '../lib/kvs.js';
import { createLogger, MemorySink } from '../lib/log.js';
import type { RaftServer } from '../lib/snapshot.js';
import { freePort, httpRequest, waitFor } from './support.js';

const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-discovery-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const info = (id: string, overrides: Partial<ServerInfo> = {}): ServerInfo => ({ ID: id, Address: `10.0.0.${id}:8300`, Expect: 3, Datacenter: 'dc1', HasState: false, ...overrides });

describe('bootstrap_expect decision', () => {
  test('bootstraps once expect servers are known, with all of them sorted by ID', () => {
    const decision = bootstrapDecision(info('2'), [info('3'), info('1'), info('3')]);
    assert.deepEqual(decision, {
      kind: 'bootstrap',
      servers: [
        { suffrage: 0, id: '1', address: '10.0.0.1:8300' },
        { suffrage: 0, id: '2', address: '10.0.0.2:8300' },
        { suffrage: 0, id: '3', address: '10.0.0.3:8300' },
      ],
    });
    // Every server computes the same configuration.
    assert.deepEqual(bootstrapDecision(info('3'), [info('2'), info('1')]), decision);
  });

  test('waits while fewer servers are known; other datacenters and expect-0 servers do not count', () => {
    assert.deepEqual(bootstrapDecision(info('1'), [info('2'), info('3', { Datacenter: 'dc2' }), info('4', { Expect: 0 })]), { kind: 'wait', known: 2 });
  });

  test('does not bootstrap when any server, or this one, already has Raft state', () => {
    assert.deepEqual(bootstrapDecision(info('1'), [info('2'), info('3', { HasState: true })]), { kind: 'existingState', server: info('3', { HasState: true }) });
    assert.equal(bootstrapDecision(info('1', { HasState: true }), [info('2'), info('3')]).kind, 'existingState');
  });

  test('a conflicting expect value never bootstraps', () => {
    assert.deepEqual(bootstrapDecision(info('1'), [info('2'), info('3'), info('4', { Expect: 5 })]), { kind: 'expectMismatch', servers: [info('4', { Expect: 5 })] });
  });

  test('expect 1 bootstraps with itself alone', () => {
    assert.equal(bootstrapDecision(info('1', { Expect: 1 }), []).kind, 'bootstrap');
  });

  test('the poller logs a mismatch once, keeps polling, and stops after bootstrapping', async () => {
    const sink = new MemorySink();
    const logger = createLogger({ level: 'debug', json: false, nowMs: () => 0, sink });
    let peers: ServerInfo[] = [info('2'), info('3', { Expect: 5 })];
    let queries = 0;
    const bootstraps: (readonly RaftServer[])[] = [];
    const discovery = BootstrapDiscovery.start({
      self: () => info('1'),
      candidates: () => ['10.0.0.2:8300', '10.0.0.3:8300', '10.0.0.1:8300'],
      intervalMs: 5,
      logger,
      bootstrap: (servers) => bootstraps.push(servers),
      query: async (address) => {
        queries++;
        const found = peers.find((peer) => peer.Address === address);
        if (found === undefined) throw new Error(`no server at ${address}`);
        return found;
      },
    });
    try {
      await waitFor('several rounds', () => (queries >= 6 ? true : undefined));
      assert.equal(bootstraps.length, 0);
      assert.equal(sink.lines.filter((line) => line.includes('conflicting expect value')).length, 1);
      peers = [info('2'), info('3')];
      await waitFor('the bootstrap', () => (discovery.isDone ? true : undefined));
      assert.equal(bootstraps.length, 1);
      assert.deepEqual(bootstraps[0]!.map((server) => server.id), ['1', '2', '3']);
      assert.ok(sink.lines.some((line) => line.includes('Found expected number of peers, attempting bootstrap') && line.includes('peers="10.0.0.1:8300,10.0.0.2:8300,10.0.0.3:8300"')));
    } finally {
      await discovery.stop();
    }
  });
});

describe('three servers started with -bootstrap-expect=3', () => {
  test('find each other over -retry-join, bootstrap one cluster and replicate a write', async () => {
    const tuning = join(scratch, 'fast-raft.json');
    writeFileSync(tuning, JSON.stringify({ performance: { raft_multiplier: 1 } }));
    const ports = await Promise.all([0, 1, 2].map(async () => ({ http: await freePort(), server: await freePort(), serfLan: await freePort(), serfWan: await freePort() })));
    const addresses = ports.map(({ server }) => `127.0.0.1:${server}`);
    // -retry-join names serf LAN addresses, as in Consul; the servers find each other's RPC ports in the gossip tags.
    const joinAddresses = ports.map(({ serfLan }) => `127.0.0.1:${serfLan}`);
    const agents: Agent[] = [];
    try {
      for (const [i, port] of ports.entries()) {
        const joins = joinAddresses.filter((_, j) => j !== i).flatMap((address) => ['-retry-join', address]);
        const args = ['-server', '-bootstrap-expect=3', ...joins, '-retry-interval', '100ms', '-data-dir', join(scratch, `s${i}`), '-bind', '127.0.0.1', '-node', `s${i}`];
        const config = loadConfig([...args, '-config-file', tuning, '-http-port', String(port.http), '-server-port', String(port.server), '-serf-lan-port', String(port.serfLan), '-serf-wan-port', String(port.serfWan), '-dns-port', '-1'], { ...NODE_HOST, hostname: () => `s${i}` }).config;
        agents.push(await Agent.start({ config, logger: createLogger({ level: 'info', json: false, nowMs: () => 0, sink: new MemorySink() }) }));
      }
      const leader = await waitFor(
        'one leader reported by all three',
        async () => {
          const leaders = await Promise.all(ports.map(async ({ http }) => JSON.parse((await httpRequest(http, 'GET', '/v1/status/leader')).body) as string));
          return leaders[0] !== '' && leaders.every((value) => value === leaders[0]) ? leaders[0] : undefined;
        },
        20_000,
      );
      assert.ok(addresses.includes(leader!));
      for (const { http } of ports) {
        const peers = JSON.parse((await httpRequest(http, 'GET', '/v1/status/peers')).body) as string[];
        assert.deepEqual([...peers].sort(), [...addresses].sort());
      }
      const leaderAgent = agents[addresses.indexOf(leader!)]!;
      const result = await leaderAgent.applyCommand({ type: 'kvs', op: 'set', entry: { Key: 'cluster/key', Value: new TextEncoder().encode('everywhere') } });
      assert.deepEqual(result, { ok: true, value: true });
      for (const agent of agents) {
        const entry = await waitFor('the replicated key', () => agent.state.read((txn) => kvsGet(txn, 'cluster/key')).value, 10_000);
        assert.equal(Buffer.from(entry.Value ?? []).toString(), 'everywhere');
      }
      // One server stops while the others still run (its Raft connections close with it).
      await agents.shift()!.shutdown();
    } finally {
      await Promise.all(agents.map((agent) => agent.shutdown()));
    }
  });
});
