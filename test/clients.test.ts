// Real Consul clients against a real agent process (issue 5): the npm `consul` package (a
// devDependency) and Debian's python3-consul (installed by .ci/run), each driving KV
// get/set/delete/recurse/keys, CAS, catalog and health queries, a session and a lock, and a
// blocking watch that must see a change. The agent is the built dist/ in -dev mode, as a user
// runs it.
//
// No fixed sleeps: every wait is a condition with a deadline; the agent is killed in `after`.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Consul from 'consul';
import { freePort, gossipPortArgs, httpRequest, waitFor } from './support.js';

const projectRoot = resolve(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-clients-'));
const PYTHON = '/usr/bin/python3';
let agent: ChildProcess | undefined;
let output = '';
let httpPort = 0;

before(async () => {
  const build = spawnSync(process.execPath, ['--import', 'tsx', join(projectRoot, 'scripts', 'build.ts'), join(scratch, 'build')], { cwd: projectRoot, encoding: 'utf8' });
  assert.equal(build.status, 0, `build failed:\n${build.stdout}\n${build.stderr}`);
  httpPort = await freePort();
  const args = ['-dev', '-node', 'clients-test', '-http-port', String(httpPort), '-server-port', String(await freePort()), ...(await gossipPortArgs()), '-dns-port', '-1', '-log-level', 'warn'];
  agent = spawn(process.execPath, [join(scratch, 'build', 'bin', 'agent.js'), ...args], { cwd: scratch, stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  agent.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  // Ready once a leader exists and the leader has registered its own node (sessions need it).
  await waitFor('the agent to register itself', async () => {
    const reply = await httpRequest(httpPort, 'GET', '/v1/catalog/node/clients-test').catch(() => undefined);
    return reply?.status === 200 && reply.body !== 'null' ? true : undefined;
  }, 20_000);
});

after(() => {
  agent?.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});

describe('the npm consul client', () => {
  const consul = (): Consul => new Consul({ host: '127.0.0.1', port: httpPort });
  // The client (through papi) resolves a JSON `false` body and a 404 as undefined, against Consul
  // as against us; refusals are therefore checked as "not true" plus the state they left.
  const refused = (result: unknown): void => assert.equal(result, undefined);

  test('KV: set, get, keys, recurse, CAS and delete', async () => {
    const kv = consul().kv;
    assert.equal(await kv.set('app/config/a', 'one'), true);
    assert.equal(await kv.set('app/config/b', 'two'), true);
    assert.equal(await kv.set({ key: 'app/other', value: 'three', flags: 42 }), true);
    const a = await kv.get('app/config/a');
    assert.ok(a !== null && !Array.isArray(a));
    assert.equal(a.Value, 'one');
    assert.ok(a.ModifyIndex > 0);
    assert.equal(await kv.get('app/missing'), undefined);
    assert.deepEqual(await kv.keys({ key: 'app/', separator: '/' }), ['app/config/', 'app/other']);
    const all = await kv.get({ key: 'app/', recurse: true });
    assert.ok(Array.isArray(all));
    assert.deepEqual(all.map((entry) => [entry.Key, entry.Value]), [['app/config/a', 'one'], ['app/config/b', 'two'], ['app/other', 'three']]);
    assert.equal(all[2]!.Flags, 42);
    // CAS: only the current ModifyIndex wins; cas=0 creates only if absent.
    refused(await kv.set({ key: 'app/config/a', value: 'stale', cas: a.ModifyIndex - 1 }));
    assert.equal(await kv.set({ key: 'app/config/a', value: 'fresh', cas: a.ModifyIndex }), true);
    refused(await kv.set({ key: 'app/config/a', value: 'again', cas: 0 }));
    assert.equal(((await kv.get('app/config/a')) as { Value: string }).Value, 'fresh');
    assert.equal(await kv.del('app/other'), true);
    assert.equal(await kv.get('app/other'), undefined);
    assert.equal(await kv.del({ key: 'app/', recurse: true }), true);
    assert.equal(await kv.get({ key: 'app/', recurse: true }), undefined);
  });

  test('catalog and health: register a service, list and query it', async () => {
    const client = consul();
    await client.catalog.register({
      Node: 'web-node', Address: '10.1.2.3',
      Service: { ID: 'web-1', Service: 'web', Tags: ['v1'], Port: 8080 },
      Check: { CheckID: 'web-alive', Name: 'web alive', Status: 'passing', ServiceID: 'web-1' },
    } as never);
    const services = (await client.catalog.service.list()) as Record<string, string[]>;
    assert.deepEqual(services['web'], ['v1']);
    assert.ok('consul' in services, 'the server registers the consul service');
    const nodes = (await client.catalog.service.nodes('web')) as { Node: string; ServicePort: number; ServiceTags: string[] }[];
    assert.deepEqual(nodes.map((n) => [n.Node, n.ServicePort, n.ServiceTags]), [['web-node', 8080, ['v1']]]);
    const healthy = (await client.health.service({ service: 'web', passing: true })) as { Service: { ID: string }; Checks: { Status: string }[] }[];
    assert.deepEqual(healthy.map((entry) => entry.Service.ID), ['web-1']);
    const critical = (await client.health.state('critical')) as unknown[];
    assert.deepEqual(critical, []);
    const catalogNodes = (await client.catalog.node.list()) as { Node: string }[];
    assert.deepEqual(catalogNodes.map((n) => n.Node), ['clients-test', 'web-node']);
  });

  test('sessions and a lock: acquire, contend, release, destroy', async () => {
    const client = consul();
    const first = (await client.session.create({ Name: 'first', TTL: '30s' } as never)) as { ID: string };
    const second = (await client.session.create({ Name: 'second' } as never)) as { ID: string };
    assert.match(first.ID, /^[0-9a-f-]{36}$/);
    assert.equal(await client.kv.set({ key: 'locks/job', value: 'first', acquire: first.ID }), true);
    refused(await client.kv.set({ key: 'locks/job', value: 'second', acquire: second.ID }));
    const held = (await client.kv.get('locks/job')) as { Session?: string; LockIndex: number };
    assert.equal(held.Session, first.ID);
    assert.equal(held.LockIndex, 1);
    assert.equal(await client.kv.set({ key: 'locks/job', value: 'done', release: first.ID }), true);
    assert.equal(await client.kv.set({ key: 'locks/job', value: 'second', acquire: second.ID }), true);
    // session.info answers the first element of Consul's array.
    const info = (await client.session.info(first.ID)) as unknown as { TTL: string };
    assert.equal(info.TTL, '30s');
    const renewed = (await client.session.renew(first.ID)) as { ID: string }[];
    assert.equal(renewed[0]?.ID, first.ID);
    await client.session.destroy(second.ID);
    const after = (await client.kv.get('locks/job')) as { Session?: string };
    assert.equal(after.Session, undefined, 'destroying the holder releases the lock');
    await client.session.destroy(first.ID);
    assert.equal(await client.session.info(first.ID), undefined);
  });

  test('a watch (blocking-query loop) sees a change', async () => {
    const client = consul();
    await client.kv.set('watched/key', 'before');
    const changes: string[] = [];
    const watch = client.watch({ method: client.kv.get, options: { key: 'watched/key' } });
    try {
      watch.on('change', (data: { Value: string } | null) => changes.push(data?.Value ?? '<none>'));
      watch.on('error', (error: Error) => changes.push(`error: ${error.message}`));
      await waitFor('the first answer', () => (changes.length >= 1 ? true : undefined));
      await client.kv.set('watched/key', 'after');
      await waitFor('the change', () => (changes.includes('after') ? true : undefined), 10_000);
      assert.deepEqual(changes, ['before', 'after']);
    } finally {
      watch.end();
    }
  });
});

describe('python-consul (Debian python3-consul)', () => {
  test('KV, CAS, catalog, health, a session lock and a blocking index', () => {
    const probe = spawnSync(PYTHON, ['-c', 'import consul'], { encoding: 'utf8' });
    assert.equal(probe.status, 0, `python3-consul is needed (apt-get install python3-consul): ${probe.stderr}`);
    const script = `
import consul, json, sys
c = consul.Consul(host='127.0.0.1', port=${httpPort})
assert c.kv.put('py/a', 'one') is True
index, data = c.kv.get('py/a')
assert data['Value'] == b'one', data
assert c.kv.put('py/a', 'two', cas=data['ModifyIndex'] - 1) is False
assert c.kv.put('py/a', 'two', cas=data['ModifyIndex']) is True
index, keys = c.kv.get('py/', keys=True)
assert keys == ['py/a'], keys
# A blocking get with an index returns once the key changes or the wait ends.
index, data = c.kv.get('py/a')
index2, data2 = c.kv.get('py/a', index=index, wait='100ms')
assert index2 == index and data2['Value'] == b'two', (index, index2)
c.catalog.register('py-node', '10.9.9.9', service={'service': 'py', 'port': 9000, 'tags': ['x']})
index, nodes = c.catalog.service('py')
assert [n['ServicePort'] for n in nodes] == [9000], nodes
index, entries = c.health.service('py', passing=True)
assert [e['Service']['Service'] for e in entries] == ['py'], entries
session = c.session.create(name='py-lock', ttl=20)
assert c.kv.put('py/lock', 'me', acquire=session) is True
index, held = c.kv.get('py/lock')
assert held['Session'] == session
assert c.kv.put('py/lock', 'me', release=session) is True
assert c.session.destroy(session) is True
assert c.kv.delete('py/', recurse=True) is True
index, gone = c.kv.get('py/a')
assert gone is None
print('ok')
`;
    const run = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 0, `python-consul failed:\n${run.stdout}\n${run.stderr}\nagent output:\n${output.slice(-2000)}`);
    assert.equal(run.stdout.trim(), 'ok');
  });
});
