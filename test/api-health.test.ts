// /v1/health/ routes against the spec (§3.3, §8.10) and Consul's handlers: shapes with key order,
// ?passing (with Consul's swap-with-last removal), ?tag, ?filter, ?near, blocking wake-ups scoped
// to the service, and malformed input.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { catalogRoutes } from '../lib/endpoints_catalog.js';
import { bexprFields, FIELD_NAME_ANY, GO_CHECK_SERVICE_NODE, GO_HEALTH_CHECK, type FieldConfigs, type GoType } from '../lib/bexprtypes.js';
import { filterNonPassing, healthRoutes } from '../lib/endpoints_health.js';
import { startApi, type TestApi } from './api-support.js';

async function start(t: Parameters<typeof startApi>[0]): Promise<TestApi> {
  return startApi(t, (deps) => [...catalogRoutes(deps), ...healthRoutes(deps)]);
}

async function put(api: TestApi, path: string, body: unknown): Promise<void> {
  const reply = await api.request('PUT', path, JSON.stringify(body));
  assert.equal(reply.status, 200, `${path}: ${reply.body}`);
}

async function getJson<T = unknown>(api: TestApi, path: string): Promise<{ json: T; index: number }> {
  const reply = await api.request('GET', path);
  assert.equal(reply.status, 200, `${path}: ${reply.body}`);
  return { json: reply.json() as T, index: Number(reply.headers['x-consul-index']) };
}

/** Node `name` with service `service` and one service check in `status`, plus a passing node check. */
async function instance(api: TestApi, name: string, service: string, status: string, tags: string[] = []): Promise<void> {
  await put(api, '/v1/catalog/register', {
    Node: name,
    Address: `10.0.0.${name.charCodeAt(0) % 250}`,
    Service: { Service: service, Tags: tags },
    Checks: [
      { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' },
      { CheckID: `${service}-check`, Name: `${service} check`, Status: status, ServiceID: service },
    ],
  });
}

test('health/service: every instance with node and service checks, in Consul key order', async (t) => {
  const api = await start(t);
  await put(api, '/v1/catalog/register', {
    Node: 'n1',
    Address: '10.0.0.1',
    Service: { Service: 'web', Port: 80 },
    Checks: [
      { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', Output: 'Agent alive and reachable' },
      { CheckID: 'web-http', Name: 'web http', Status: 'critical', ServiceID: 'web', Definition: { HTTP: 'http://10.0.0.1/', Interval: '10s' } },
    ],
  });
  const { json } = await getJson<Record<string, unknown>[]>(api, '/v1/health/service/web');
  assert.equal(json.length, 1, 'critical instances are listed without ?passing');
  const [entry] = json;
  assert.ok(entry);
  assert.deepEqual(Object.keys(entry), ['Node', 'Service', 'Checks']);
  assert.deepEqual(Object.keys(entry['Node'] as object), ['ID', 'Node', 'Address', 'Datacenter', 'TaggedAddresses', 'Meta', 'CreateIndex', 'ModifyIndex']);
  assert.deepEqual(Object.keys(entry['Service'] as object), ['ID', 'Service', 'Tags', 'Address', 'Meta', 'Port', 'Weights', 'EnableTagOverride', 'Proxy', 'Connect', 'PeerName', 'CreateIndex', 'ModifyIndex']);
  const checks = entry['Checks'] as Record<string, unknown>[];
  assert.deepEqual(checks.map((c) => c['CheckID']), ['serfHealth', 'web-http']);
  const index = checks[1]?.['CreateIndex'];
  const expectedCheck = {
    Node: 'n1',
    CheckID: 'web-http',
    Name: 'web http',
    Status: 'critical',
    Notes: '',
    Output: '',
    ServiceID: 'web',
    ServiceName: 'web',
    ServiceTags: [],
    Type: 'http',
    Interval: '',
    Timeout: '',
    ExposedPort: 0,
    Definition: { Interval: '10s', HTTP: 'http://10.0.0.1/' },
    CreateIndex: index,
    ModifyIndex: index,
  };
  assert.equal(JSON.stringify(checks[1]), JSON.stringify(expectedCheck));
  assert.deepEqual((await getJson(api, '/v1/health/service/web?passing')).json, []);
  assert.deepEqual((await getJson(api, '/v1/health/service/nope')).json, []);
});

test('?passing keeps instances whose every check passes, in Consul order; bad values are 400', async (t) => {
  const api = await start(t);
  await instance(api, 'a', 'web', 'critical');
  await instance(api, 'b', 'web', 'passing');
  await instance(api, 'c', 'web', 'warning');
  await instance(api, 'd', 'web', 'passing');
  const nodes = async (query: string): Promise<string[]> => (await getJson<{ Node: { Node: string } }[]>(api, `/v1/health/service/web${query}`)).json.map((e) => e.Node.Node);
  assert.deepEqual(await nodes(''), ['a', 'b', 'c', 'd']);
  // filterNonPassing swaps the last instance into a removed one's place: a goes, d takes its slot.
  assert.deepEqual(await nodes('?passing'), ['d', 'b']);
  assert.deepEqual(await nodes('?passing=true'), ['d', 'b']);
  assert.deepEqual(await nodes('?passing=1'), ['d', 'b']);
  assert.deepEqual(await nodes('?passing=false'), ['a', 'b', 'c', 'd']);
  const bad = await api.request('GET', '/v1/health/service/web?passing=maybe');
  assert.equal(bad.status, 400);
  assert.equal(bad.body, 'Invalid value for ?passing');
  assert.deepEqual(filterNonPassing([{ Checks: [{ Status: 'warning' }] }, { Checks: [] }]), [{ Checks: [] }]);
});

test('?tag, ?node-meta and ?filter on health/service', async (t) => {
  const api = await start(t);
  await instance(api, 'a', 'web', 'passing', ['v1', 'blue']);
  await instance(api, 'b', 'web', 'passing', ['v1']);
  const nodes = async (query: string): Promise<string[]> => (await getJson<{ Node: { Node: string } }[]>(api, `/v1/health/service/web${query}`)).json.map((e) => e.Node.Node);
  assert.deepEqual(await nodes('?tag=v1&tag=Blue'), ['a']);
  assert.deepEqual(await nodes(`?filter=${encodeURIComponent('Node.Node == "b"')}`), ['b']);
  assert.deepEqual(await nodes(`?filter=${encodeURIComponent('"blue" in Service.Tags')}`), ['a']);
  const bad = await api.request('GET', `/v1/health/service/web?filter=${encodeURIComponent('Node.Node ==')}`);
  assert.equal(bad.status, 500);
  assert.match(bad.body, /^Failed to create boolean expression evaluator: 1:13 /);
});

test('health/node, health/checks and health/state', async (t) => {
  const api = await start(t);
  await instance(api, 'a', 'web', 'critical');
  await instance(api, 'b', 'db', 'warning');
  const ids = (checks: { Node: string; CheckID: string }[]): string[] => checks.map((c) => `${c.Node}/${c.CheckID}`);
  assert.deepEqual(ids((await getJson<{ Node: string; CheckID: string }[]>(api, '/v1/health/node/a')).json), ['a/serfHealth', 'a/web-check']);
  assert.deepEqual(ids((await getJson<{ Node: string; CheckID: string }[]>(api, '/v1/health/checks/web')).json), ['a/web-check']);
  assert.deepEqual(ids((await getJson<{ Node: string; CheckID: string }[]>(api, '/v1/health/state/critical')).json), ['a/web-check']);
  assert.deepEqual(ids((await getJson<{ Node: string; CheckID: string }[]>(api, '/v1/health/state/passing')).json), ['a/serfHealth', 'b/serfHealth']);
  assert.equal((await getJson<unknown[]>(api, '/v1/health/state/any')).json.length, 4);
  assert.deepEqual((await getJson(api, '/v1/health/state/bogus')).json, []);
  assert.deepEqual((await getJson(api, '/v1/health/node/nope')).json, []);
  assert.deepEqual((await getJson(api, '/v1/health/checks/nope')).json, []);
  const filtered = await getJson<{ CheckID: string }[]>(api, `/v1/health/state/any?filter=${encodeURIComponent('Status == "warning"')}`);
  assert.deepEqual(filtered.json.map((c) => c.CheckID), ['db-check']);
  for (const [path, text] of [
    ['/v1/health/node/', 'Missing node name'],
    ['/v1/health/checks/', 'Missing service name'],
    ['/v1/health/service/', 'Missing service name'],
    ['/v1/health/state/', 'Missing check state'],
  ] as const) {
    const reply = await api.request('GET', path);
    assert.equal(reply.status, 400, path);
    assert.equal(reply.body, text);
  }
  assert.equal((await api.request('PUT', '/v1/health/state/any')).status, 405);
  assert.equal((await api.request('GET', '/v1/health/node/a?dc=other')).body, 'No path to datacenter');
  assert.equal((await api.request('GET', '/v1/health/checks/web?stale&consistent')).status, 400);
});

test('health/service blocking wakes on its own check status change, not on another service', async (t) => {
  const api = await start(t);
  await instance(api, 'a', 'web', 'passing');
  await instance(api, 'b', 'db', 'passing');
  const { index } = await getJson(api, '/v1/health/service/web');
  const waiting = api.request('GET', `/v1/health/service/web?index=${index}&wait=10s`);
  let isSettled = false;
  void waiting.then(() => (isSettled = true));
  // db's check turning critical is not web's business.
  await put(api, '/v1/catalog/register', { Node: 'b', Address: '10.0.0.98', Check: { CheckID: 'db-check', Name: 'db check', Status: 'critical', ServiceID: 'db' }, SkipNodeUpdate: true });
  await getJson(api, '/v1/health/service/db');
  assert.equal(isSettled, false, 'another service woke the query');
  await put(api, '/v1/catalog/register', { Node: 'a', Address: '10.0.0.97', Check: { CheckID: 'web-check', Name: 'web check', Status: 'critical', ServiceID: 'web' }, SkipNodeUpdate: true });
  const woken = await waiting;
  assert.equal(woken.status, 200);
  assert.ok(Number(woken.headers['x-consul-index']) > index);
  const [entry] = woken.json() as { Checks: { CheckID: string; Status: string }[] }[];
  assert.equal(entry?.Checks.find((c) => c.CheckID === 'web-check')?.Status, 'critical');
});

test('?near sorts health results by distance from the named node', async (t) => {
  const api = await start(t);
  await instance(api, 'a', 'web', 'passing');
  await instance(api, 'b', 'web', 'passing');
  const coord = (x: number) => ({ Vec: [x, 0, 0, 0, 0, 0, 0, 0], Error: 1.5, Adjustment: 0, Height: 1e-5 });
  const result = await api.deps.apply({ type: 'coordinate-batch-update', updates: [{ Node: 'a', Segment: '', Coord: coord(1) }, { Node: 'b', Segment: '', Coord: coord(0) }] });
  assert.ok(result.ok);
  const nodes = (await getJson<{ Node: { Node: string } }[]>(api, '/v1/health/service/web?near=b')).json.map((e) => e.Node.Node);
  assert.deepEqual(nodes, ['b', 'a']);
  const checks = (await getJson<{ Node: string }[]>(api, '/v1/health/state/passing?near=b')).json.map((c) => c.Node);
  assert.deepEqual(checks, ['b', 'b', 'a', 'a']);
});

// ---------------------------------------------------------------------------------------------
// ?filter validated against the Go type each endpoint filters (HealthCheck, CheckServiceNode)

const FILTER_PREFIX = 'Failed to create boolean expression evaluator: ';

async function filtered(api: TestApi, path: string, expression: string): Promise<{ status: number; body: string; json: unknown }> {
  const reply = await api.request('GET', `${path}${path.includes('?') ? '&' : '?'}filter=${encodeURIComponent(expression)}`);
  return { status: reply.status, body: reply.body, json: reply.status === 200 ? reply.json() : undefined };
}

/** Every selector of a field table, with the first operator it allows, as an expression. */
function everySelector(fields: FieldConfigs, prefix: string[] = []): string[] {
  const out: string[] = [];
  for (const [name, config] of fields) {
    const path = [...prefix, name === FIELD_NAME_ANY ? 'k' : name];
    const literal = config.coerceKind === 'int' ? '0' : config.coerceKind === 'bool' ? 'false' : '"x"';
    const op = config.operators[0];
    if (op === 'Equal') out.push(`${path.join('.')} == ${literal}`);
    else if (op === 'In') out.push(`${literal} in ${path.join('.')}`);
    else if (op === 'Is Empty') out.push(`${path.join('.')} is empty`);
    out.push(...everySelector(config.subFields, path));
  }
  return out;
}

test('?filter: a misspelt field is Consul\'s creation error on every health endpoint, before any data or blocking', async (t) => {
  const api = await start(t);
  await instance(api, 'a', 'web', 'passing');
  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ['/v1/health/node/a', 'CheckId == serfHealth', 'Selector "CheckId" is not valid'],
    ['/v1/health/node/nope', 'Definition.HTTP == x', 'Selector "Definition" is not valid'],
    ['/v1/health/checks/web', 'Status is empty', 'Invalid match operator "Is Empty" for selector "Status"'],
    ['/v1/health/checks/web', 'ExposedPort == none', 'Failed to coerce value "none" for selector "ExposedPort": strconv.ParseInt: parsing "none": invalid syntax'],
    ['/v1/health/state/any', 'ServiceTags == x', 'Invalid match operator "Equal" for selector "ServiceTags"'],
    ['/v1/health/state/critical', 'Node.Node == a', 'Selector "Node.Node" is not valid'],
    ['/v1/health/service/web', 'Nodes.Node == a', 'Selector "Nodes" is not valid'],
    ['/v1/health/service/web', 'Service.ServiceName == web', 'Selector "Service.ServiceName" is not valid'],
    ['/v1/health/service/web', 'Checks.Status contains', '1:23 (22): no match found, expected: [ \\t\\r\\n]'],
    ['/v1/health/service/web', 'Checks.CheckID is empty', 'Invalid match operator "Is Empty" for selector "Checks.CheckID"'],
    ['/v1/health/service/web', 'Service.Port == 80 and Checks.Status matches "("', 'Failed to compile regular expression "(": error parsing regexp: missing closing ): `(`'],
  ];
  for (const [path, expression, text] of cases) {
    const started = Date.now();
    const reply = await filtered(api, `${path}?index=999999&wait=30s`, expression);
    assert.equal(reply.status, 500, `${path} ${expression}: ${reply.body}`);
    assert.equal(reply.body, FILTER_PREFIX + text, `${path} ${expression}`);
    assert.ok(Date.now() - started < 5_000, 'answered without blocking');
  }
});

test('?filter: map selectors and any-element slice semantics on health endpoints', async (t) => {
  const api = await start(t);
  await put(api, '/v1/catalog/register', { Node: 'a', Address: '10.0.0.1', NodeMeta: { rack: 'r1' }, Service: { Service: 'web', Tags: ['v1'], Meta: { env: 'prod' } },
    Checks: [{ CheckID: 'serfHealth', Name: 'serf', Status: 'passing' }, { CheckID: 'web-check', Name: 'web', Status: 'critical', ServiceID: 'web' }] });
  await put(api, '/v1/catalog/register', { Node: 'b', Address: '10.0.0.2', NodeMeta: { rack: 'r2' }, Service: { Service: 'web', Tags: ['v2'] },
    Checks: [{ CheckID: 'serfHealth', Name: 'serf', Status: 'passing' }, { CheckID: 'web-check', Name: 'web', Status: 'passing', ServiceID: 'web' }] });
  const nodes = async (expression: string): Promise<string[]> => {
    const reply = await filtered(api, '/v1/health/service/web', expression);
    assert.equal(reply.status, 200, `${expression}: ${reply.body}`);
    return (reply.json as { Node: { Node: string } }[]).map((e) => e.Node.Node);
  };
  assert.deepEqual(await nodes('Node.Meta.rack == r2'), ['b']);
  assert.deepEqual(await nodes('Service.Meta.env == prod'), ['a']);
  assert.deepEqual(await nodes('Service.Meta.env != prod'), ['b'], 'a missing map key is != everything');
  assert.deepEqual(await nodes('env in Service.Meta'), ['a']);
  assert.deepEqual(await nodes('Checks.Status == critical'), ['a']);
  assert.deepEqual(await nodes('Checks.Status != passing'), ['a'], 'some check is not passing');
  assert.deepEqual(await nodes('not Checks.Status != passing'), ['b'], 'every check is passing');
  assert.deepEqual(await nodes('Checks.Status == passing'), ['a', 'b'], 'some check is passing');
  assert.deepEqual(await nodes('Checks is not empty and Service.Weights.Passing == 1 and Node.PeerName == ""'), ['a', 'b']);
  assert.deepEqual(await nodes('Checks.ServiceTags contains v2'), ['b']);
  const checks = async (path: string, expression: string): Promise<string[]> => {
    const reply = await filtered(api, path, expression);
    assert.equal(reply.status, 200, `${path} ${expression}: ${reply.body}`);
    return (reply.json as { Node: string; CheckID: string }[]).map((c) => `${c.Node}/${c.CheckID}`);
  };
  assert.deepEqual(await checks('/v1/health/state/any', 'ServiceName == web and Status != passing'), ['a/web-check']);
  assert.deepEqual(await checks('/v1/health/checks/web', 'v2 in ServiceTags'), ['b/web-check']);
  assert.deepEqual(await checks('/v1/health/node/a', 'ServiceID == "" and PeerName == "" and ExposedPort == 0'), ['a/serfHealth']);
});

test('?filter: every field of HealthCheck and CheckServiceNode is a valid selector on its endpoints', async (t) => {
  const api = await start(t);
  await instance(api, 'a', 'web', 'passing', ['v1']);
  const endpoints: ReadonlyArray<readonly [string, GoType]> = [
    ['/v1/health/node/a', GO_HEALTH_CHECK], ['/v1/health/checks/web', GO_HEALTH_CHECK], ['/v1/health/state/any', GO_HEALTH_CHECK],
    ['/v1/health/service/web', GO_CHECK_SERVICE_NODE],
  ];
  let count = 0;
  for (const [path, type] of endpoints) {
    for (const expression of everySelector(bexprFields(type))) {
      const reply = await filtered(api, path, expression);
      assert.equal(reply.status, 200, `${path} ${expression}: ${reply.body}`);
      count++;
    }
  }
  assert.ok(count > 100, `tried ${count} selectors`);
});
