// /v1/catalog/ routes against the spec (§3.2) and Consul's handlers: output shapes with their key
// order, status codes and texts, query parameters, blocking, and malformed input that must leave
// the state untouched.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { catalogRoutes, coordinateDistanceSeconds, sortByDistance } from '../lib/endpoints_catalog.js';
import { healthRoutes } from '../lib/endpoints_health.js';
import { bexprFields, FIELD_NAME_ANY, GO_NODE, GO_NODE_SERVICE, GO_SERVICE_NODE, type FieldConfigs, type GoType } from '../lib/bexprtypes.js';
import { startApi, type TestApi } from './api-support.js';

const NODE_ID = '8f5a0b4e-1111-2222-3333-444455556666';

async function start(t: Parameters<typeof startApi>[0]): Promise<TestApi> {
  return startApi(t, (deps) => [...catalogRoutes(deps), ...healthRoutes(deps)]);
}

async function put(api: TestApi, path: string, body: unknown): Promise<void> {
  const reply = await api.request('PUT', path, JSON.stringify(body));
  assert.equal(reply.status, 200, `${path}: ${reply.body}`);
  assert.equal(reply.body, 'true');
}

async function getJson(api: TestApi, path: string): Promise<{ json: unknown; index: number }> {
  const reply = await api.request('GET', path);
  assert.equal(reply.status, 200, `${path}: ${reply.body}`);
  assert.equal(reply.headers['content-type'], 'application/json');
  const index = Number(reply.headers['x-consul-index']);
  assert.ok(index >= 1, 'X-Consul-Index is never 0');
  return { json: reply.json(), index };
}

/** A state dump for "nothing changed" assertions. */
async function snapshot(api: TestApi): Promise<string> {
  const nodes = await api.request('GET', '/v1/catalog/nodes');
  const services = await api.request('GET', '/v1/catalog/services');
  return `${nodes.headers['x-consul-index']} ${nodes.body} ${services.body}`;
}

const WEB_REGISTRATION = {
  Node: 'n1',
  ID: NODE_ID,
  Address: '10.0.0.1',
  TaggedAddresses: { lan: '10.0.0.1', wan: '198.51.100.1' },
  NodeMeta: { rack: 'r1' },
  Service: { Service: 'web', Tags: ['v1', 'Primary'], Port: 8080, Meta: { version: '1' } },
  Check: { Name: 'web alive', Status: 'passing', ServiceID: 'web', Definition: { HTTP: 'http://10.0.0.1:8080/health', Interval: '10s', Timeout: '1m' } },
};

test('register then every catalog read has Consul shape and key order', async (t) => {
  const api = await start(t);
  await put(api, '/v1/catalog/register', WEB_REGISTRATION);

  const nodes = await getJson(api, '/v1/catalog/nodes');
  const [node] = nodes.json as Record<string, unknown>[];
  assert.ok(node);
  const nodeIndex = node['CreateIndex'];
  const expectedNode = {
    ID: NODE_ID,
    Node: 'n1',
    Address: '10.0.0.1',
    Datacenter: 'dc1',
    TaggedAddresses: { lan: '10.0.0.1', wan: '198.51.100.1' },
    Meta: { rack: 'r1' },
    CreateIndex: nodeIndex,
    ModifyIndex: nodeIndex,
  };
  assert.equal(JSON.stringify(nodes.json), JSON.stringify([expectedNode]));

  const services = await getJson(api, '/v1/catalog/services');
  assert.equal(JSON.stringify(services.json), JSON.stringify({ web: ['Primary', 'v1'] }));

  const instances = await getJson(api, '/v1/catalog/service/web');
  const expectedServiceNode = {
    ID: NODE_ID,
    Node: 'n1',
    Address: '10.0.0.1',
    Datacenter: 'dc1',
    TaggedAddresses: { lan: '10.0.0.1', wan: '198.51.100.1' },
    NodeMeta: { rack: 'r1' },
    ServiceKind: '',
    ServiceID: 'web',
    ServiceName: 'web',
    ServiceTags: ['v1', 'Primary'],
    ServiceAddress: '',
    ServiceWeights: { Passing: 1, Warning: 1 },
    ServiceMeta: { version: '1' },
    ServicePort: 8080,
    ServiceSocketPath: '',
    ServiceEnableTagOverride: false,
    ServiceProxy: { MeshGateway: {}, Expose: {} },
    ServiceConnect: {},
    ServiceLocality: null,
    CreateIndex: nodeIndex,
    ModifyIndex: nodeIndex,
  };
  assert.equal(JSON.stringify(instances.json), JSON.stringify([expectedServiceNode]));
  assert.equal(instances.index, nodeIndex);

  const expectedNodeService = {
    ID: 'web',
    Service: 'web',
    Tags: ['v1', 'Primary'],
    Address: '',
    Meta: { version: '1' },
    Port: 8080,
    Weights: { Passing: 1, Warning: 1 },
    EnableTagOverride: false,
    Proxy: { MeshGateway: {}, Expose: {} },
    Connect: {},
    PeerName: '',
    CreateIndex: nodeIndex,
    ModifyIndex: nodeIndex,
  };
  const byNode = await getJson(api, '/v1/catalog/node/n1');
  assert.equal(JSON.stringify(byNode.json), JSON.stringify({ Node: expectedNode, Services: { web: expectedNodeService } }));
  const list = await getJson(api, '/v1/catalog/node-services/n1');
  assert.equal(JSON.stringify(list.json), JSON.stringify({ Node: expectedNode, Services: [expectedNodeService] }));

  // The node ID works in place of the name (a prefix of at least two characters).
  const byId = await getJson(api, `/v1/catalog/node/${NODE_ID.slice(0, 8)}`);
  assert.equal((byId.json as { Node: { Node: string } }).Node.Node, 'n1');
});

test('unknown things are empty values, never errors', async (t) => {
  const api = await start(t);
  assert.deepEqual((await getJson(api, '/v1/catalog/nodes')).json, []);
  assert.deepEqual((await getJson(api, '/v1/catalog/services')).json, {});
  assert.deepEqual((await getJson(api, '/v1/catalog/service/nope')).json, []);
  const node = await api.request('GET', '/v1/catalog/node/nope');
  assert.equal(node.status, 200);
  assert.equal(node.body, 'null');
  assert.equal(JSON.stringify((await getJson(api, '/v1/catalog/node-services/nope')).json), '{"Node":null,"Services":null}');
  // Not a blocking query: Consul sets no X-Consul-Index on it.
  const datacenters = await api.request('GET', '/v1/catalog/datacenters');
  assert.equal(datacenters.body, '["dc1"]');
  assert.equal(datacenters.headers['x-consul-index'], undefined);
});

test('missing names are 400 with Consul texts; wrong methods 405', async (t) => {
  const api = await start(t);
  for (const [path, text] of [
    ['/v1/catalog/service/', 'Missing service name'],
    ['/v1/catalog/node/', 'Missing node name'],
    ['/v1/catalog/node-services/', 'Missing node name'],
  ] as const) {
    const reply = await api.request('GET', path);
    assert.equal(reply.status, 400, path);
    assert.equal(reply.body, text);
  }
  const post = await api.request('POST', '/v1/catalog/register', JSON.stringify(WEB_REGISTRATION));
  assert.equal(post.status, 405);
  assert.equal(post.body, 'method POST not allowed');
  assert.equal(post.headers['allow'], 'OPTIONS,PUT');
  assert.equal((await api.request('PUT', '/v1/catalog/nodes')).status, 405);
  assert.deepEqual((await getJson(api, '/v1/catalog/nodes')).json, []);
});

test('register refusals: Consul status and text, and no state change', async (t) => {
  const api = await start(t);
  await put(api, '/v1/catalog/register', WEB_REGISTRATION);
  const before = await snapshot(api);
  const cases: [string | Uint8Array, number, string | RegExp][] = [
    ['', 400, 'Request decode failed: EOF'],
    ['{"Node":', 400, 'Request decode failed: unexpected EOF'],
    ['{bad json}', 400, "Request decode failed: invalid character 'b' looking for beginning of object key string"],
    ['[]', 400, 'Request decode failed: json: cannot unmarshal array into Go value of type structs.RegisterRequest'],
    ['{"Node":7,"Address":"a"}', 400, 'Request decode failed: json: cannot unmarshal number into Go struct field RegisterRequest.Node of type string'],
    ['{"Node":"x","Address":"a","Service":{"Service":"s","Port":"80"}}', 400, 'Request decode failed: json: cannot unmarshal string into Go struct field NodeService.Service.Port of type int'],
    ['{"Node":"x","Address":"a","Service":{"Service":"s","Port":1.5}}', 400, 'Request decode failed: json: cannot unmarshal number 1.5 into Go struct field NodeService.Service.Port of type int'],
    ['{"Node":"x","Address":"a","Service":{"Service":"s","Tags":"t"}}', 400, 'Request decode failed: json: cannot unmarshal string into Go struct field NodeService.Service.Tags of type []string'],
    ['{"Node":"x","Address":"a","Bogus":1}', 400, 'Request decode failed: json: unknown field "Bogus"'],
    ['{"Node":"x","Address":"a","Check":{"Name":"c","Definition":{"Interval":"soon"}}}', 400, 'Request decode failed: time: invalid duration "soon"'],
    ['{"Address":"10.0.0.9"}', 500, 'Must provide node'],
    ['{"Node":"n2"}', 500, 'Must provide address if SkipNodeUpdate is not set'],
    ['{"Node":"n2","Address":"a","ID":"not-a-uuid"}', 500, /^Bad node ID: /],
    ['{"Node":"n2","Address":"a","Service":{"ID":"x"}}', 500, /^Must provide service name/],
    ['{"Node":"n2","Address":"a","Service":{"Service":"s","Address":"0.0.0.0"}}', 500, 'Invalid service address'],
    ['{"Node":"n2","Address":"a","Datacenter":"dc9"}', 500, 'No path to datacenter'],
  ];
  for (const [body, status, text] of cases) {
    const reply = await api.request('PUT', '/v1/catalog/register', body);
    assert.equal(reply.status, status, `${String(body)} -> ${reply.body}`);
    if (typeof text === 'string') assert.equal(reply.body, text);
    else assert.match(reply.body, text);
  }
  const huge = await api.request('PUT', '/v1/catalog/register', Buffer.alloc(5 * 1024 * 1024, 0x20));
  assert.equal(huge.status, 413);
  assert.equal(await snapshot(api), before);
});

test('register keys match case-insensitively; Go duration forms are normalised', async (t) => {
  const api = await start(t);
  await put(api, '/v1/catalog/register', {
    node: 'n1',
    address: '10.0.0.1',
    service: { service: 'db', tags: null, port: 5432, enabletagoverride: true, weights: { passing: 3, warning: 1 } },
    checks: [{ name: 'db tcp', serviceid: 'db', status: 'warning', definition: { tcp: '10.0.0.1:5432', interval: 15_000_000_000, timeout: '0.5s', unknownIsIgnoredHere: 1 } }],
  });
  const [instance] = (await getJson(api, '/v1/catalog/service/db')).json as Record<string, unknown>[];
  assert.ok(instance);
  assert.deepEqual(instance['ServiceTags'], []);
  assert.equal(instance['ServiceEnableTagOverride'], true);
  assert.deepEqual(instance['ServiceWeights'], { Passing: 3, Warning: 1 });
  assert.equal(instance['ServicePort'], 5432);
  await put(api, '/v1/catalog/register', { Node: 'n1', Address: '10.0.0.1', Service: { Service: 'lb', taggedaddresses: { wan: { address: '198.51.100.9', port: 443 } } } });
  const [lb] = (await getJson(api, '/v1/catalog/service/lb')).json as Record<string, unknown>[];
  assert.ok(lb);
  const keys = Object.keys(lb);
  assert.equal(keys[keys.indexOf('ServiceAddress') + 1], 'ServiceTaggedAddresses');
  assert.deepEqual(lb['ServiceTaggedAddresses'], { wan: { Address: '198.51.100.9', Port: 443 } });
  const lbService = ((await getJson(api, '/v1/catalog/node/n1')).json as { Services: Record<string, Record<string, unknown>> }).Services['lb'];
  assert.deepEqual(Object.keys(lbService ?? {}).slice(0, 6), ['ID', 'Service', 'Tags', 'Address', 'TaggedAddresses', 'Meta']);
  assert.equal(lbService?.['Port'], undefined, 'Port is omitempty in structs.NodeService');
  const [check] = (await getJson(api, '/v1/health/checks/db')).json as Record<string, unknown>[];
  assert.ok(check);
  assert.equal(check['CheckID'], 'db tcp');
  assert.equal(check['Type'], 'tcp');
  assert.equal(JSON.stringify(check['Definition']), JSON.stringify({ Interval: '15s', Timeout: '500ms', TCP: '10.0.0.1:5432' }));
});

test('deregister: a check, a service with its checks, a whole node; refusals change nothing', async (t) => {
  const api = await start(t);
  await put(api, '/v1/catalog/register', WEB_REGISTRATION);
  await put(api, '/v1/catalog/register', { Node: 'n1', Address: '10.0.0.1', ID: NODE_ID, Check: { Name: 'disk', Status: 'passing' } });
  const before = await snapshot(api);
  for (const [body, status, text] of [
    ['', 400, 'Request decode failed: EOF'],
    ['{"Node":"n1","Nope":true}', 400, 'Request decode failed: json: unknown field "Nope"'],
    ['{"Node":["n1"]}', 400, 'Request decode failed: json: cannot unmarshal array into Go struct field DeregisterRequest.Node of type string'],
    ['{"ServiceID":"web"}', 500, 'Must provide node'],
    ['{"Node":"n1","Datacenter":"elsewhere"}', 500, 'No path to datacenter'],
  ] as const) {
    const reply = await api.request('PUT', '/v1/catalog/deregister', body);
    assert.equal(reply.status, status, body);
    assert.equal(reply.body, text);
  }
  assert.equal(await snapshot(api), before);

  await put(api, '/v1/catalog/deregister', { Node: 'n1', CheckID: 'disk' });
  assert.deepEqual(((await getJson(api, '/v1/health/node/n1')).json as { CheckID: string }[]).map((c) => c.CheckID), ['web alive']);
  await put(api, '/v1/catalog/deregister', { Node: 'n1', ServiceID: 'web' });
  assert.deepEqual((await getJson(api, '/v1/catalog/service/web')).json, []);
  assert.deepEqual((await getJson(api, '/v1/health/node/n1')).json, []);
  // Deregistering what is not there is still `true`.
  await put(api, '/v1/catalog/deregister', { Node: 'n1', ServiceID: 'web' });
  await put(api, '/v1/catalog/deregister', { Node: 'n1' });
  assert.deepEqual((await getJson(api, '/v1/catalog/nodes')).json, []);
});

test('?tag is repeatable, ANDed and case-insensitive; ?node-meta filters nodes', async (t) => {
  const api = await start(t);
  await put(api, '/v1/catalog/register', { Node: 'a', Address: '10.0.0.1', NodeMeta: { zone: 'z1' }, Service: { Service: 'web', Tags: ['v1', 'blue'] } });
  await put(api, '/v1/catalog/register', { Node: 'b', Address: '10.0.0.2', NodeMeta: { zone: 'z2' }, Service: { Service: 'web', Tags: ['v1'] } });
  const nodesOf = async (query: string): Promise<string[]> => ((await getJson(api, `/v1/catalog/service/web${query}`)).json as { Node: string }[]).map((s) => s.Node);
  assert.deepEqual(await nodesOf(''), ['a', 'b']);
  assert.deepEqual(await nodesOf('?tag=V1'), ['a', 'b']);
  assert.deepEqual(await nodesOf('?tag=v1&tag=BLUE'), ['a']);
  assert.deepEqual(await nodesOf('?tag=v1&tag=green'), []);
  assert.deepEqual(await nodesOf('?node-meta=zone:z2'), ['b']);
  assert.deepEqual(await nodesOf('?node-meta=zone:z2&tag=blue'), []);
  assert.deepEqual(((await getJson(api, '/v1/catalog/nodes?node-meta=zone:z1')).json as { Node: string }[]).map((n) => n.Node), ['a']);
  assert.deepEqual((await getJson(api, '/v1/catalog/services?node-meta=zone:z2')).json, { web: ['v1'] });
  // Unknown parameters are ignored, as Consul ignores them.
  assert.deepEqual(await nodesOf('?bogus=1&tagz=x'), ['a', 'b']);
});

test('?filter selects elements; a bad expression is Consul\'s 500 at once, even on a blocking request', async (t) => {
  const api = await start(t);
  await put(api, '/v1/catalog/register', { Node: 'a', Address: '10.0.0.1', Service: { Service: 'web', Port: 80, Meta: { env: 'prod' } } });
  await put(api, '/v1/catalog/register', { Node: 'b', Address: '10.0.0.2', Service: { Service: 'web', Port: 81 } });
  const filtered = await getJson(api, `/v1/catalog/service/web?filter=${encodeURIComponent('ServiceMeta.env == "prod"')}`);
  assert.deepEqual((filtered.json as { Node: string }[]).map((s) => s.Node), ['a']);
  const nodes = await getJson(api, `/v1/catalog/nodes?filter=${encodeURIComponent('Address == "10.0.0.2"')}`);
  assert.deepEqual((nodes.json as { Node: string }[]).map((n) => n.Node), ['b']);
  const services = await getJson(api, `/v1/catalog/node/a?filter=${encodeURIComponent('Port == 81')}`);
  assert.deepEqual((services.json as { Services: object }).Services, {});
  const started = Date.now();
  const bad = await api.request('GET', `/v1/catalog/service/web?index=999999&wait=30s&filter=${encodeURIComponent('ServiceMeta.env ==')}`);
  assert.equal(bad.status, 500);
  assert.equal(bad.body, `Failed to create boolean expression evaluator: 1:19 (18): no match found, expected: "-", "0", "\\"", "\`", [ \\t\\r\\n], [1-9] or [a-zA-Z]`);
  assert.ok(Date.now() - started < 5_000, 'answered without blocking');
});

test('query options: ?dc, ?stale with ?consistent, bad ?index and ?wait', async (t) => {
  const api = await start(t);
  const other = await api.request('GET', '/v1/catalog/nodes?dc=dc2');
  assert.equal(other.status, 500);
  assert.equal(other.body, 'No path to datacenter');
  assert.equal((await api.request('GET', '/v1/catalog/nodes?dc=dc1')).status, 200);
  const both = await api.request('GET', '/v1/catalog/service/web?stale&consistent');
  assert.equal(both.status, 400);
  assert.equal(both.body, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
  assert.equal((await api.request('GET', '/v1/catalog/services?index=abc')).body, 'Invalid index');
  assert.equal((await api.request('GET', '/v1/catalog/node/x?index=1&wait=forever')).body, 'Invalid wait time');
  const stale = await api.request('GET', '/v1/catalog/nodes?stale');
  assert.equal(stale.headers['x-consul-effective-consistency'], 'stale');
  const consistent = await api.request('GET', '/v1/catalog/nodes?consistent');
  assert.equal(consistent.headers['x-consul-effective-consistency'], 'consistent');
  assert.equal(consistent.headers['x-consul-knownleader'], 'true');
});

test('a blocking service query wakes on that service, and times out with 200 otherwise', async (t) => {
  const api = await start(t);
  await put(api, '/v1/catalog/register', { Node: 'a', Address: '10.0.0.1', Service: { Service: 'web' } });
  const { index } = await getJson(api, '/v1/catalog/service/web');
  const waiting = api.request('GET', `/v1/catalog/service/web?index=${index}&wait=10s`);
  let isSettled = false;
  void waiting.then(() => (isSettled = true));
  // Another service does not wake it.
  await put(api, '/v1/catalog/register', { Node: 'a', Address: '10.0.0.1', Service: { Service: 'db' } });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(isSettled, false);
  await put(api, '/v1/catalog/register', { Node: 'b', Address: '10.0.0.2', Service: { Service: 'web' } });
  const woken = await waiting;
  assert.equal(woken.status, 200);
  assert.ok(Number(woken.headers['x-consul-index']) > index);
  assert.equal((woken.json() as unknown[]).length, 2);
  const timedOut = await api.request('GET', `/v1/catalog/service/web?index=${woken.headers['x-consul-index']}&wait=50ms`);
  assert.equal(timedOut.status, 200);
  assert.equal(timedOut.headers['x-consul-index'], woken.headers['x-consul-index']);
});

test('?near sorts by coordinate distance; without coordinates the order stays', async (t) => {
  const api = await start(t);
  for (const [name, address] of [['a', '10.0.0.1'], ['b', '10.0.0.2'], ['c', '10.0.0.3']]) {
    await put(api, '/v1/catalog/register', { Node: name, Address: address, Service: { Service: 'web' } });
  }
  const order = async (query: string): Promise<string[]> => ((await getJson(api, `/v1/catalog/service/web${query}`)).json as { Node: string }[]).map((s) => s.Node);
  assert.deepEqual(await order('?near=c'), ['a', 'b', 'c']);
  const coord = (x: number) => ({ Vec: [x, 0, 0, 0, 0, 0, 0, 0], Error: 1.5, Adjustment: 0, Height: 1e-5 });
  const result = await api.deps.apply({ type: 'coordinate-batch-update', updates: [{ Node: 'c', Segment: '', Coord: coord(0) }, { Node: 'b', Segment: '', Coord: coord(0.5) }] });
  assert.ok(result.ok);
  // a has no coordinate: last.
  assert.deepEqual(await order('?near=c'), ['c', 'b', 'a']);
  assert.deepEqual(((await getJson(api, '/v1/catalog/nodes?near=b')).json as { Node: string }[]).map((n) => n.Node), ['b', 'c', 'a']);
  // _agent is this agent's node, which has no coordinate here: order unchanged.
  assert.deepEqual(await order('?near=_agent'), ['a', 'b', 'c']);
});

test('coordinate distance is serf/coordinate DistanceTo', () => {
  const a = { Vec: [0, 0], Error: 0, Adjustment: 0, Height: 0.001 };
  const b = { Vec: [3, 4], Error: 0, Adjustment: -0.5, Height: 0.002 };
  assert.equal(coordinateDistanceSeconds(a, b), 5 + 0.003 - 0.5);
  assert.equal(coordinateDistanceSeconds(a, { ...b, Adjustment: -10 }), 5.003);
  assert.equal(coordinateDistanceSeconds(a, { ...b, Vec: [1] }), Infinity);
  assert.equal(typeof sortByDistance, 'function');
});

// ---------------------------------------------------------------------------------------------
// ?filter validated against the Go type each endpoint filters (bexpr.CreateFilter(..., reply.X))

const FILTER_PREFIX = 'Failed to create boolean expression evaluator: ';

/** Every selector of a field table, with the first operator it allows, as an expression. */
function everySelector(fields: FieldConfigs, prefix: string[] = []): string[] {
  const out: string[] = [];
  for (const [name, config] of fields) {
    const path = [...prefix, name === FIELD_NAME_ANY ? 'k' : name].join('.');
    const literal = config.coerceKind === 'int' ? '0' : config.coerceKind === 'bool' ? 'false' : '"x"';
    const op = config.operators[0];
    if (op === 'Equal') out.push(`${path} == ${literal}`);
    else if (op === 'In') out.push(`${literal} in ${path}`);
    else if (op === 'Is Empty') out.push(`${path} is empty`);
    out.push(...everySelector(config.subFields, [...prefix, name === FIELD_NAME_ANY ? 'k' : name]));
  }
  return out;
}

async function filtered(api: TestApi, path: string, expression: string): Promise<{ status: number; body: string; json: unknown }> {
  const reply = await api.request('GET', `${path}${path.includes('?') ? '&' : '?'}filter=${encodeURIComponent(expression)}`);
  return { status: reply.status, body: reply.body, json: reply.status === 200 ? reply.json() : undefined };
}

test('?filter: a misspelt field is Consul\'s creation error on every catalog endpoint, before any data or blocking', async (t) => {
  const api = await start(t);
  await put(api, '/v1/catalog/register', { Node: 'a', Address: '10.0.0.1', Service: { Service: 'web', Port: 80 } });
  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ['/v1/catalog/nodes', 'Adress == x', 'Selector "Adress" is not valid'],
    ['/v1/catalog/nodes', 'Meta == x', 'Invalid match operator "Equal" for selector "Meta"'],
    ['/v1/catalog/nodes', 'CreateIndex == 1', 'Selector "CreateIndex" is not valid'],
    // Catalog.ListServices filters the instances (structs.ServiceNode), not the name -> tags map
    ['/v1/catalog/services', 'Service == web', 'Selector "Service" is not valid'],
    ['/v1/catalog/services', 'ServicePort == http', 'Failed to coerce value "http" for selector "ServicePort": strconv.ParseInt: parsing "http": invalid syntax'],
    ['/v1/catalog/service/web', 'Service == web', 'Selector "Service" is not valid'],
    ['/v1/catalog/service/web', 'ServiceTags == v1', 'Invalid match operator "Equal" for selector "ServiceTags"'],
    ['/v1/catalog/service/web', 'ServiceEnableTagOverride == maybe', 'Failed to coerce value "maybe" for selector "ServiceEnableTagOverride": strconv.ParseBool: parsing "maybe": invalid syntax'],
    ['/v1/catalog/service/nope', 'ServiceMeta.env.x == 1', 'Selector "ServiceMeta.env.x" is not valid'],
    ['/v1/catalog/node/a', 'ServiceName == web', 'Selector "ServiceName" is not valid'],
    ['/v1/catalog/node/a', 'Port contains 8', 'Invalid match operator "In" for selector "Port"'],
    ['/v1/catalog/node/nope', 'Weights.passing == 1', 'Selector "Weights.passing" is not valid'],
    ['/v1/catalog/node-services/a', 'ServiceName == web', 'Selector "ServiceName" is not valid'],
    ['/v1/catalog/node-services/nope', 'Proxy.Config.x == 1', 'Selector "Proxy.Config" is not valid'],
  ];
  for (const [path, expression, text] of cases) {
    const started = Date.now();
    const reply = await filtered(api, `${path}?index=999999&wait=30s`, expression);
    assert.equal(reply.status, 500, `${path} ${expression}: ${reply.body}`);
    assert.equal(reply.body, FILTER_PREFIX + text, `${path} ${expression}`);
    assert.ok(Date.now() - started < 5_000, 'answered without blocking');
  }
});

test('?filter: map selectors, zero-valued absent fields and nested structs select as in Consul', async (t) => {
  const api = await start(t);
  await put(api, '/v1/catalog/register', {
    Node: 'a', Address: '10.0.0.1', NodeMeta: { rack: 'r1' }, TaggedAddresses: { wan: '198.51.100.1' },
    Service: { ID: 'web-a', Service: 'web', Tags: ['v1', 'blue'], Port: 80, Meta: { env: 'prod' }, TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 8080 } }, Weights: { Passing: 3, Warning: 1 } },
  });
  await put(api, '/v1/catalog/register', { Node: 'b', Address: '10.0.0.2', NodeMeta: { rack: 'r2' }, Service: { ID: 'web-b', Service: 'web', Tags: ['v2'], Port: 81 } });
  await put(api, '/v1/catalog/register', { Node: 'b', Address: '10.0.0.2', NodeMeta: { rack: 'r2' }, Service: { ID: 'db-b', Service: 'db', Tags: ['primary'], Port: 5432 } });
  const names = (json: unknown): string[] => (json as { Node: string }[]).map((n) => n.Node);
  const ok = async (path: string, expression: string): Promise<unknown> => {
    const reply = await filtered(api, path, expression);
    assert.equal(reply.status, 200, `${path} ${expression}: ${reply.body}`);
    return reply.json;
  };
  assert.deepEqual(names(await ok('/v1/catalog/nodes', 'Meta.rack == r1')), ['a']);
  assert.deepEqual(names(await ok('/v1/catalog/nodes', 'Meta["rack"] != r1')), ['b']);
  assert.deepEqual(names(await ok('/v1/catalog/nodes', 'wan in TaggedAddresses')), ['a']);
  assert.deepEqual(names(await ok('/v1/catalog/nodes', 'Meta.missing != x and PeerName == "" and Partition == ""')), ['a', 'b']);
  assert.deepEqual(names(await ok('/v1/catalog/service/web', 'NodeMeta.rack == r2')), ['b']);
  assert.deepEqual(names(await ok('/v1/catalog/service/web', 'ServiceMeta.env == prod and ServiceWeights.Passing == 3')), ['a']);
  assert.deepEqual(names(await ok('/v1/catalog/service/web', 'ServiceTaggedAddresses.lan.Port == 8080')), ['a']);
  assert.deepEqual(names(await ok('/v1/catalog/service/web', 'ServiceTaggedAddresses is empty')), ['b']);
  assert.deepEqual(names(await ok('/v1/catalog/service/web', 'ServiceProxy.Upstreams is empty and ServiceConnect.Native == false and ServiceKind == ""')), ['a', 'b']);
  assert.deepEqual(names(await ok('/v1/catalog/service/web', '"blue" in ServiceTags')), ['a']);
  assert.deepEqual(await ok('/v1/catalog/services', 'NodeMeta.rack == r2'), { db: ['primary'], web: ['v2'] });
  assert.deepEqual(await ok('/v1/catalog/services', 'ServiceMeta.env == prod'), { web: ['blue', 'v1'] });
  assert.deepEqual(await ok('/v1/catalog/services', 'ServicePort == 5432'), { db: ['primary'] });
  assert.deepEqual(await ok('/v1/catalog/services?node-meta=rack:r2', 'ServiceName == web'), { web: ['v2'] });
  assert.deepEqual(await ok('/v1/catalog/services', 'ServiceName == nope'), {});
  const node = await ok('/v1/catalog/node/b', 'Port == 5432 and Kind == "" and SocketPath == "" and PeerName == ""') as { Services: Record<string, unknown> };
  assert.deepEqual(Object.keys(node.Services), ['db-b']);
  const list = await ok('/v1/catalog/node-services/b', 'Weights.Passing == 1 and "v2" in Tags') as { Services: { ID: string }[] };
  assert.deepEqual(list.Services.map((s) => s.ID), ['web-b']);
  assert.deepEqual(await ok('/v1/catalog/node-services/nope', 'Port == 1'), { Node: null, Services: null });
});

test('?filter: every field of every catalog type is a valid selector on its endpoint', async (t) => {
  const api = await start(t);
  await put(api, '/v1/catalog/register', WEB_REGISTRATION);
  const endpoints: ReadonlyArray<readonly [string, GoType]> = [
    ['/v1/catalog/nodes', GO_NODE], ['/v1/catalog/services', GO_SERVICE_NODE], ['/v1/catalog/service/web', GO_SERVICE_NODE],
    ['/v1/catalog/node/n1', GO_NODE_SERVICE], ['/v1/catalog/node-services/n1', GO_NODE_SERVICE],
  ];
  let count = 0;
  for (const [path, type] of endpoints) {
    for (const expression of everySelector(bexprFields(type))) {
      const reply = await filtered(api, path, expression);
      assert.equal(reply.status, 200, `${path} ${expression}: ${reply.body}`);
      count++;
    }
  }
  assert.ok(count > 200, `tried ${count} selectors`);
});
