// The agent's own services and checks through its HTTP API, on an in-process -dev agent: the
// register/deregister/maintenance/TTL routes with Consul's answers, checks run against real
// local servers, and the catalog following the local state (anti-entropy).
//
// No fixed sleeps: every wait is a condition with a deadline; servers and the agent are closed.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Consul from 'consul';
import { Agent } from '../lib/agent.js';
import { loadConfig, NODE_HOST } from '../lib/config.js';
import { createLogger, MemorySink } from '../lib/log.js';
import { freePort, gossipPortArgs, waitFor } from './support.js';

const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-localagent-'));
let agent: Agent | undefined;
let port = 0;
/** A local HTTP server whose answer the tests set. */
let target: Server | undefined;
let targetStatus = 200;
let targetPort = 0;

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; text: string; json: () => unknown }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await response.text();
  return { status: response.status, text, json: () => JSON.parse(text) as unknown };
}

async function catalogServiceNodes(name: string): Promise<{ ServiceID: string; ServiceTags: string[] }[]> {
  return (await api('GET', `/v1/catalog/service/${name}`)).json() as { ServiceID: string; ServiceTags: string[] }[];
}

async function checkStatus(id: string): Promise<string | undefined> {
  const checks = (await api('GET', '/v1/agent/checks')).json() as Record<string, { Status: string }>;
  return checks[id]?.Status;
}

before(async () => {
  target = createServer((_, res) => {
    res.statusCode = targetStatus;
    res.end(`status ${targetStatus}`);
  });
  await new Promise<void>((resolve) => target?.listen(0, '127.0.0.1', resolve));
  const address = target.address();
  assert.ok(address !== null && typeof address === 'object');
  targetPort = address.port;
  port = await freePort();
  const file = join(scratch, 'config.json');
  writeFileSync(file, JSON.stringify({ service: { name: 'from-config', port: 7000, check: { ttl: '30s', status: 'passing' } } }));
  const config = loadConfig(['-dev', '-node', 'local-test', '-http-port', String(port), '-dns-port', '-1', '-server-port', String(await freePort()), ...(await gossipPortArgs()), '-config-file', file], { ...NODE_HOST, hostname: () => 'local-test' }).config;
  agent = await Agent.start({ config, logger: createLogger({ level: 'error', json: false, nowMs: Date.now, sink: new MemorySink() }) });
  await waitFor('the agent to register its node', async () => ((await api('GET', '/v1/catalog/node/local-test')).text !== 'null' ? true : undefined), 20_000);
});

after(async () => {
  await agent?.shutdown();
  target?.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe('local services and checks', () => {
  test('a service from a config file is registered locally and synced to the catalog', async () => {
    const services = (await api('GET', '/v1/agent/services')).json() as Record<string, unknown>;
    assert.deepEqual(services['from-config'], { ID: 'from-config', Service: 'from-config', Tags: [], Meta: {}, Port: 7000, Address: '', Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false, Datacenter: 'dc1' });
    await waitFor('the catalog to show it', async () => ((await catalogServiceNodes('from-config')).length === 1 ? true : undefined));
    assert.equal(await checkStatus('service:from-config'), 'passing');
  });

  test('register answers 200 with an empty body, and the catalog has the service when it does', async () => {
    const reply = await api('PUT', '/v1/agent/service/register', { Name: 'web', Tags: ['v1'], Port: 8080, Check: { HTTP: `http://127.0.0.1:${targetPort}/health`, Interval: '1s' } });
    assert.equal(reply.status, 200);
    assert.equal(reply.text, '');
    assert.deepEqual((await catalogServiceNodes('web')).map((entry) => entry.ServiceID), ['web']);
    const check = ((await api('GET', '/v1/agent/checks')).json() as Record<string, { Name: string; Type: string; ServiceName: string }>)['service:web'];
    assert.equal(check?.Name, "Service 'web' check");
    assert.equal(check?.Type, 'http');
    assert.equal(check?.ServiceName, 'web');
  });

  test('an HTTP check turns passing, then warning on 429 and critical on 503, locally and in the catalog', async () => {
    targetStatus = 200;
    await waitFor('passing', async () => ((await checkStatus('service:web')) === 'passing' ? true : undefined));
    targetStatus = 429;
    await waitFor('warning', async () => ((await checkStatus('service:web')) === 'warning' ? true : undefined));
    targetStatus = 503;
    await waitFor('critical', async () => ((await checkStatus('service:web')) === 'critical' ? true : undefined));
    await waitFor('the catalog to follow', async () => {
      const checks = (await api('GET', '/v1/health/checks/web')).json() as { Status: string }[];
      return checks[0]?.Status === 'critical' ? true : undefined;
    });
    targetStatus = 200;
  });

  test('TTL checks: pass/warn/fail with a note, and Consul\'s errors for unknown and non-TTL checks', async () => {
    assert.equal((await api('PUT', '/v1/agent/check/register', { Name: 'heartbeat', TTL: '30s' })).status, 200);
    assert.equal(await checkStatus('heartbeat'), 'critical', 'a new check starts critical');
    assert.equal((await api('PUT', '/v1/agent/check/pass/heartbeat?note=all%20good')).status, 200);
    const checks = (await api('GET', '/v1/agent/checks')).json() as Record<string, { Status: string; Output: string }>;
    assert.deepEqual([checks['heartbeat']?.Status, checks['heartbeat']?.Output], ['passing', 'all good']);
    assert.equal((await api('PUT', '/v1/agent/check/update/heartbeat', { Status: 'warning', Output: 'slow' })).status, 200);
    assert.equal(await checkStatus('heartbeat'), 'warning');
    const unknown = await api('PUT', '/v1/agent/check/fail/nope');
    assert.deepEqual([unknown.status, unknown.text], [404, 'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.']);
    const notTtl = await api('PUT', '/v1/agent/check/pass/service:web');
    assert.deepEqual([notTtl.status, notTtl.text], [500, 'CheckID "service:web" does not have associated TTL']);
    const badStatus = await api('PUT', '/v1/agent/check/update/heartbeat', { Status: 'bogus' });
    assert.deepEqual([badStatus.status, badStatus.text], [400, "Invalid check status: 'bogus'"]);
    assert.equal((await api('PUT', '/v1/agent/check/deregister/heartbeat')).status, 200);
  });

  test('alias checks follow the aliased service: locally, and through the catalog with alias_node', async () => {
    assert.equal((await api('PUT', '/v1/agent/service/register', { Name: 'aliased', Port: 9100, Check: { TTL: '30s', Status: 'passing' } })).status, 200);
    assert.equal((await api('PUT', '/v1/agent/service/register', { Name: 'sidecar', Port: 9101, Check: { AliasService: 'aliased' } })).status, 200);
    assert.equal((await api('PUT', '/v1/agent/check/register', { Name: 'remote-alias', ServiceID: 'sidecar', AliasNode: 'local-test', AliasService: 'aliased' })).status, 200);
    const output = async (id: string) => ((await api('GET', '/v1/agent/checks')).json() as Record<string, { Status: string; Output: string; Type: string }>)[id];
    await waitFor('both aliases to pass', async () => ((await output('service:sidecar'))?.Status === 'passing' && (await output('remote-alias'))?.Status === 'passing' ? true : undefined));
    assert.deepEqual(await output('service:sidecar'), { ...(await output('service:sidecar')), Output: 'All checks passing.', Type: 'alias' });
    assert.equal((await api('PUT', '/v1/agent/check/fail/service:aliased?note=down')).status, 200);
    await waitFor('both aliases to turn critical', async () => ((await output('service:sidecar'))?.Status === 'critical' && (await output('remote-alias'))?.Status === 'critical' ? true : undefined));
    assert.equal((await output('remote-alias'))?.Output, 'Aliased check "Service \'aliased\' check" failing: down');
    await waitFor('the catalog to show the sidecar critical', async () => {
      const entries = (await api('GET', '/v1/health/checks/sidecar')).json() as { Status: string }[];
      return entries[0]?.Status === 'critical' ? true : undefined;
    });
    assert.equal((await api('PUT', '/v1/agent/check/pass/service:aliased')).status, 200);
    await waitFor('the local alias to pass again', async () => ((await output('service:sidecar'))?.Status === 'passing' ? true : undefined));
    // The node's own checks count too: a failing node-level check fails every alias of a service on it.
    assert.equal((await api('PUT', '/v1/agent/check/register', { Name: 'node-ttl', TTL: '30s', Status: 'warning', Notes: '' })).status, 200);
    await waitFor('the alias to turn warning', async () => ((await output('service:sidecar'))?.Output === 'Aliased check "node-ttl" failing: ' ? true : undefined));
    assert.equal((await output('service:sidecar'))?.Status, 'warning');
    assert.equal((await api('PUT', '/v1/agent/check/deregister/node-ttl')).status, 200);
    const invalid = await api('PUT', '/v1/agent/check/register', { Name: 'bad-alias', AliasService: 'aliased', TTL: '10s' });
    assert.deepEqual([invalid.status, invalid.text], [400, 'Invalid check: TTL must be not be set for Alias checks']);
    for (const id of ['sidecar', 'aliased']) assert.equal((await api('PUT', `/v1/agent/service/deregister/${id}`)).status, 200);
  });

  test('user events with a service (and tag) filter are kept only when a local service matches', async () => {
    assert.equal((await api('PUT', '/v1/agent/service/register', { Name: 'evt-svc', Tags: ['blue'], Port: 9200 })).status, 200);
    const listed = async () => ((await api('GET', '/v1/event/list')).json() as { Name: string }[]).map((event) => event.Name);
    assert.equal((await api('PUT', '/v1/event/fire/for-green?service=evt-svc&tag=green')).status, 200);
    assert.equal((await api('PUT', '/v1/event/fire/for-nobody?service=%5Eother%24')).status, 200);
    assert.equal((await api('PUT', '/v1/event/fire/for-blue?service=evt&tag=bl')).status, 200);
    await waitFor('the matching event', async () => ((await listed()).includes('for-blue') ? true : undefined));
    const names = await listed();
    assert.equal(names.includes('for-green'), false);
    assert.equal(names.includes('for-nobody'), false);
    assert.equal((await api('PUT', '/v1/agent/service/deregister/evt-svc')).status, 200);
  });

  test('?filter selects services and checks with go-bexpr; a bad filter is a 500', async () => {
    const services = (await api('GET', `/v1/agent/services?filter=${encodeURIComponent('Service == "web" and "v1" in Tags')}`)).json() as Record<string, unknown>;
    assert.deepEqual(Object.keys(services), ['web']);
    const checks = (await api('GET', `/v1/agent/checks?filter=${encodeURIComponent('ServiceName == "from-config"')}`)).json() as Record<string, unknown>;
    assert.deepEqual(Object.keys(checks), ['service:from-config']);
    const bad = await api('GET', `/v1/agent/services?filter=${encodeURIComponent('Nope == 1')}`);
    assert.equal(bad.status, 500);
    assert.match(bad.text, /Nope/);
  });

  test('GET /v1/agent/service/:id blocks on ?hash until the service changes, or the wait ends', async () => {
    const first = await fetch(`http://127.0.0.1:${port}/v1/agent/service/web`);
    const hash = first.headers.get('x-consul-contenthash') ?? '';
    assert.equal(((await first.json()) as { ContentHash: string }).ContentHash, hash);
    const timedOut = await api('GET', `/v1/agent/service/web?hash=${hash}&wait=100ms`);
    assert.equal(timedOut.status, 200, 'an unchanged service is answered when the wait ends');
    const blocked = fetch(`http://127.0.0.1:${port}/v1/agent/service/web?hash=${hash}&wait=30s`).then(async (response) => ({ hash: response.headers.get('x-consul-contenthash'), body: (await response.json()) as { Tags: string[] } }));
    assert.equal((await api('PUT', '/v1/agent/service/register', { Name: 'web', Tags: ['v2'], Port: 8080, Check: { HTTP: `http://127.0.0.1:${targetPort}/health`, Interval: '1s' } })).status, 200);
    const changed = await blocked;
    assert.notEqual(changed.hash, hash);
    assert.deepEqual(changed.body.Tags, ['v2']);
    assert.equal((await api('GET', '/v1/agent/service/ghost')).status, 404);
  });

  test('bad registrations get Consul\'s errors and change nothing', async () => {
    const cases: [string, unknown, number, string][] = [
      ['/v1/agent/service/register', { Port: 1 }, 400, 'Missing service name'],
      ['/v1/agent/service/register', { Name: 'x', Address: '0.0.0.0' }, 400, 'Invalid service address'],
      ['/v1/agent/service/register', { Name: 'x', Weights: { Passing: 0, Warning: 1 } }, 400, 'Invalid Weights: Passing must be greater than 0'],
      ['/v1/agent/service/register', { Name: 'x', Check: { HTTP: 'http://127.0.0.1:1/' } }, 400, 'Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks'],
      ['/v1/agent/service/register', { Name: 'x', Check: { Args: ['/bin/true'], Interval: '10s' } }, 500, "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true"],
      ['/v1/agent/check/register', { TTL: '10s' }, 400, 'Missing check name'],
      ['/v1/agent/check/register', { Name: 'c', TTL: '10s', Status: 'great' }, 400, 'Bad check status'],
      ['/v1/agent/check/register', { Name: 'c', TTL: '10s', ServiceID: 'ghost' }, 404, 'ServiceID "ghost" does not exist'],
    ];
    for (const [path, body, status, text] of cases) {
      const reply = await api('PUT', path, body);
      assert.deepEqual([reply.status, reply.text], [status, text], JSON.stringify(body));
    }
    const services = (await api('GET', '/v1/agent/services')).json() as Record<string, unknown>;
    assert.equal(services['x'], undefined, 'nothing half-registered');
  });

  test('maintenance mode adds and removes the critical maintenance checks', async () => {
    assert.equal((await api('PUT', '/v1/agent/service/maintenance/web?enable=true&reason=deploy')).status, 200);
    const checks = (await api('GET', '/v1/agent/checks')).json() as Record<string, { Status: string; Notes: string }>;
    assert.deepEqual([checks['_service_maintenance:web']?.Status, checks['_service_maintenance:web']?.Notes], ['critical', 'deploy']);
    assert.equal((await api('PUT', '/v1/agent/service/maintenance/web?enable=false')).status, 200);
    assert.equal(await checkStatus('_service_maintenance:web'), undefined);
    assert.deepEqual(await api('PUT', '/v1/agent/service/maintenance/web').then((r) => [r.status, r.text]), [400, 'Missing value for enable']);
    assert.deepEqual(await api('PUT', '/v1/agent/service/maintenance/ghost?enable=true').then((r) => [r.status, r.text]), [404, 'No service registered with ID "ghost"']);
    assert.equal((await api('PUT', '/v1/agent/maintenance?enable=true')).status, 200);
    assert.equal(await checkStatus('_node_maintenance'), 'critical');
    assert.equal((await api('PUT', '/v1/agent/maintenance?enable=false')).status, 200);
  });

  test('/v1/agent/health/service answers 200/429/503 by aggregate status', async () => {
    targetStatus = 200;
    await waitFor('passing', async () => ((await checkStatus('service:web')) === 'passing' ? true : undefined));
    await api('PUT', '/v1/agent/check/deregister/heartbeat');
    const byName = await api('GET', '/v1/agent/health/service/name/web');
    assert.equal(byName.status, 200);
    assert.equal((byName.json() as { AggregatedStatus: string }[])[0]?.AggregatedStatus, 'passing');
    assert.equal((await api('GET', '/v1/agent/health/service/name/web?format=text')).text, 'passing');
    const missing = await api('GET', '/v1/agent/health/service/id/ghost');
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json(), { AggregatedStatus: 'critical', Service: null, Checks: null });
  });

  test('deregister removes the service and its checks from the agent and the catalog', async () => {
    assert.equal((await api('PUT', '/v1/agent/service/deregister/web')).status, 200);
    assert.deepEqual(await catalogServiceNodes('web'), []);
    assert.equal(await checkStatus('service:web'), undefined);
    const again = await api('PUT', '/v1/agent/service/deregister/web');
    assert.deepEqual([again.status, again.text], [404, 'Unknown service ID "web". Ensure that the service ID is passed, not the service name.']);
  });

  test('the npm consul client registers a service with an HTTP check and sees it turn passing, then critical', async () => {
    const consul = new Consul({ host: '127.0.0.1', port });
    targetStatus = 200;
    await consul.agent.service.register({ name: 'npm-web', port: 9090, check: { name: 'npm-web http', http: `http://127.0.0.1:${targetPort}/`, interval: '1s', timeout: '1s' } });
    const statusOf = async (): Promise<string | undefined> => {
      const entries = (await consul.health.service('npm-web')) as { Checks: { ServiceID: string; Status: string }[] }[];
      return entries[0]?.Checks.find((check) => check.ServiceID === 'npm-web')?.Status;
    };
    await waitFor('passing in the catalog', async () => ((await statusOf()) === 'passing' ? true : undefined));
    targetStatus = 500;
    await waitFor('critical in the catalog', async () => ((await statusOf()) === 'critical' ? true : undefined));
    await consul.agent.service.deregister('npm-web');
  });
});
