// PUT /v1/txn against the spec (§3.6) on a real single-server Raft.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { loadConfig } from '../lib/config.js';
import type { EndpointDeps } from '../lib/endpoints.js';
import { catalogRoutes } from '../lib/endpoints_catalog.js';
import { healthRoutes } from '../lib/endpoints_health.js';
import { kvRoutes } from '../lib/endpoints_kv.js';
import { sessionRoutes } from '../lib/endpoints_session.js';
import { TXN_OPS_MAX, txnRoutes } from '../lib/endpoints_txn.js';
import type { HttpRoute } from '../lib/http.js';
import { TABLES, type ServiceRecord } from '../lib/schema.js';
import { SessionTimers } from '../lib/sessionttl.js';
import { startApi, type TestApi } from './api-support.js';

async function start(t: TestContext, limits: Partial<{ kvMaxValueSize: number; txnMaxReqLen: number }> = {}): Promise<TestApi> {
  const routes = (deps: EndpointDeps): HttpRoute[] => [...kvRoutes(deps), ...txnRoutes(deps), ...sessionRoutes(deps, new SessionTimers()), ...catalogRoutes(deps), ...healthRoutes(deps)];
  return startApi(t, routes, { config: { devMode: false, nodeName: 'node1', limits: { ...loadConfig(['-dev']).config.limits, ...limits } } });
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

function header(reply: { headers: Record<string, string | string[] | undefined> }, name: string): string {
  const value = reply.headers[name.toLowerCase()];
  return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
}

async function txn(api: TestApi, ops: unknown, query = ''): Promise<{ status: number; body: string; json: () => unknown; headers: Record<string, string | string[] | undefined> }> {
  return api.request('PUT', `/v1/txn${query}`, typeof ops === 'string' ? ops : JSON.stringify(ops));
}

test('a write txn applies every op and answers Results with Value null except for reads', async (t) => {
  const api = await start(t);
  const reply = await txn(api, [
    { KV: { Verb: 'set', Key: 'a', Value: b64('one'), Flags: 7 } },
    { kv: { verb: 'set', key: 'b', value: b64('two') } },
    { KV: { Verb: 'get', Key: 'a' } },
    { KV: { Verb: 'delete', Key: 'b' } },
    { KV: { Verb: 'check-not-exists', Key: 'b' } },
  ]);
  assert.equal(reply.status, 200, reply.body);
  assert.equal(header(reply, 'content-type'), 'application/json');
  const body = reply.json() as { Results: { KV: Record<string, unknown> }[]; Errors: unknown };
  assert.equal(body.Errors, null);
  assert.equal(body.Results.length, 3);
  assert.deepEqual(body.Results.map((result) => [result.KV['Key'], result.KV['Value']]), [['a', null], ['b', null], ['a', b64('one')]]);
  assert.equal(body.Results[0]?.KV['Flags'], 7);
  assert.deepEqual(Object.keys(body.Results[0]?.KV ?? {}), ['LockIndex', 'Key', 'Flags', 'Value', 'CreateIndex', 'ModifyIndex']);
  assert.equal((await api.request('GET', '/v1/kv/a?raw')).body, 'one');
  assert.equal((await api.request('GET', '/v1/kv/b')).status, 404);
});

test('a failing op rolls the whole txn back: 409 with OpIndex and What, nothing applied', async (t) => {
  const api = await start(t);
  await api.request('PUT', '/v1/kv/k', 'v');
  const reply = await txn(api, [
    { KV: { Verb: 'set', Key: 'new', Value: b64('x') } },
    { KV: { Verb: 'cas', Key: 'k', Value: b64('y'), Index: 99999 } },
    { KV: { Verb: 'get', Key: 'missing' } },
  ]);
  assert.equal(reply.status, 409);
  assert.equal(header(reply, 'content-type'), 'application/json');
  assert.deepEqual(reply.json(), {
    Results: null,
    Errors: [
      { OpIndex: 1, What: 'failed to set key "k", index is stale' },
      { OpIndex: 2, What: 'key "missing" doesn\'t exist' },
    ],
  });
  assert.equal((await api.request('GET', '/v1/kv/new')).status, 404);
  assert.equal((await api.request('GET', '/v1/kv/k?raw')).body, 'v');
});

test('a read-only txn is served as a read: consistency honoured, leader headers, no index header', async (t) => {
  const api = await start(t);
  await api.request('PUT', '/v1/kv/r/1', 'a');
  await api.request('PUT', '/v1/kv/r/2', 'b');
  const reply = await txn(api, [{ KV: { Verb: 'get-tree', Key: 'r/' } }, { KV: { Verb: 'get-or-empty', Key: 'r/none' } }], '?consistent');
  assert.equal(reply.status, 200, reply.body);
  const body = reply.json() as { Results: { KV: { Key: string; Value: string | null } }[] };
  assert.deepEqual(body.Results.map((result) => [result.KV.Key, result.KV.Value]), [['r/1', b64('a')], ['r/2', b64('b')], ['r/none', null]]);
  assert.equal(header(reply, 'x-consul-knownleader'), 'true');
  assert.equal(header(reply, 'x-consul-lastcontact'), '0');
  assert.equal(header(reply, 'x-consul-index'), '');
  const missing = await txn(api, [{ KV: { Verb: 'get', Key: 'zz' } }]);
  assert.equal(missing.status, 409);
  assert.deepEqual(missing.json(), { Results: null, Errors: [{ OpIndex: 0, What: 'key "zz" doesn\'t exist' }] });
  const bad = await txn(api, [{ KV: { Verb: 'get', Key: 'r/1' } }], '?stale&consistent');
  assert.equal(bad.status, 400);
  assert.equal(bad.body, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
});

test('Flags beyond 2^53 round-trip exactly through a txn', async (t) => {
  const api = await start(t);
  const reply = await txn(api, '[{"KV":{"Verb":"set","Key":"f","Value":null,"Flags":18446744073709551615}},{"KV":{"Verb":"get","Key":"f"}}]');
  assert.equal(reply.status, 200, reply.body);
  assert.match(reply.body, /"Flags":18446744073709551615,.*"Flags":18446744073709551615,/);
  assert.match((await api.request('GET', '/v1/kv/f')).body, /"Flags":18446744073709551615,/);
});

test('limits: too many ops, an oversized value, an oversized body are 413 with Consul text and apply nothing', async (t) => {
  const api = await start(t, { kvMaxValueSize: 64, txnMaxReqLen: 32 * 1024 });
  const many = Array.from({ length: TXN_OPS_MAX + 1 }, (_, i) => ({ KV: { Verb: 'set', Key: `k${i}` } }));
  const tooMany = await txn(api, many);
  assert.equal(tooMany.status, 413);
  assert.equal(tooMany.body, `Transaction contains too many operations (${TXN_OPS_MAX + 1} > ${TXN_OPS_MAX})`);
  assert.equal((await txn(api, many.slice(0, TXN_OPS_MAX))).status, 200);
  const big = await txn(api, [{ KV: { Verb: 'set', Key: 'big', Value: b64('x'.repeat(65)) } }]);
  assert.equal(big.status, 413);
  assert.equal(big.body, 'Value for key "big" is too large (65 > 64 bytes)');
  const huge = JSON.stringify([{ KV: { Verb: 'set', Key: 'huge', Value: b64('x'.repeat(40 * 1024)) } }]);
  const hugeReply = await txn(api, huge);
  assert.equal(hugeReply.status, 413);
  assert.equal(hugeReply.body, `Request body(${huge.length} bytes) too large, max size: 32768 bytes. See https://www.consul.io/docs/agent/config/config-files#txn_max_req_len.`);
  assert.equal((await api.request('GET', '/v1/kv/big')).status, 404);
  assert.equal((await api.request('GET', '/v1/kv/huge')).status, 404);
});

test('malformed bodies are 400 Failed to parse body with Go decoder text', async (t) => {
  const api = await start(t);
  const cases: [string, string][] = [
    ['', 'Failed to parse body: EOF'],
    ['[{"KV":', 'Failed to parse body: unexpected EOF'],
    ['nope', "Failed to parse body: invalid character 'o' in literal null (expecting 'u')"],
    ['{"KV":{}}', 'Failed to parse body: json: cannot unmarshal object into Go value of type api.TxnOps'],
    ['[5]', 'Failed to parse body: json: cannot unmarshal number into Go value of type api.TxnOp'],
    ['[{"KV":{"Verb":"set","Key":5}}]', 'Failed to parse body: json: cannot unmarshal number into Go struct field TxnKVOp.KV.Key of type string'],
    ['[{"KV":{"Verb":"set","Key":"k","Flags":-1}}]', 'Failed to parse body: json: cannot unmarshal number -1 into Go struct field TxnKVOp.KV.Flags of type uint64'],
    ['[{"KV":{"Verb":"set","Key":"k","Value":"!!!!"}}]', 'Failed to parse body: illegal base64 data at input byte 0'],
    ['[{"KV":{"Verb":"set","Key":"k","Value":"abc"}}]', 'Failed to parse body: illegal base64 data at input byte 0'],
  ];
  for (const [body, text] of cases) {
    const reply = await txn(api, body);
    assert.equal(reply.status, 400, body);
    assert.equal(reply.body, text, body);
  }
  assert.deepEqual((await api.request('GET', '/v1/kv/?keys')).json(), []);
  assert.equal((await api.request('POST', '/v1/txn', '[]')).status, 405);
  assert.equal((await api.request('GET', '/v1/txn')).status, 405);
});

test('unknown verbs, empty keys and catalog ops are per-op errors with nothing applied', async (t) => {
  const api = await start(t);
  const unknown = await txn(api, [{ KV: { Verb: 'set', Key: 'a' } }, { KV: { Verb: 'frobnicate', Key: 'a' } }]);
  assert.equal(unknown.status, 409);
  assert.deepEqual(unknown.json(), { Results: null, Errors: [{ OpIndex: 1, What: 'unknown KV verb "frobnicate"' }] });
  const noKey = await txn(api, [{ KV: { Verb: 'set', Key: '' } }]);
  assert.equal(noKey.status, 409);
  assert.deepEqual(noKey.json(), { Results: null, Errors: [{ OpIndex: 0, What: 'Must provide key' }] });
  const node = await txn(api, [{ KV: { Verb: 'set', Key: 'a' } }, { Node: { Verb: 'set', Node: { Address: '1.2.3.4' } } }]);
  assert.equal(node.status, 409);
  assert.deepEqual(node.json(), { Results: null, Errors: [{ OpIndex: 1, What: 'Must provide node' }] });
  assert.equal((await api.request('GET', '/v1/kv/a')).status, 404);
  // An op naming no operation is dropped, as Go's decoder leaves it empty.
  const empty = await txn(api, [{}, { KV: { Verb: 'set', Key: 'b' } }]);
  assert.equal(empty.status, 200, empty.body);
  const nothing = await txn(api, '[]');
  assert.equal(nothing.status, 200);
  assert.deepEqual(nothing.json(), { Results: [], Errors: null });
});

test('lock ops: lock-delay after a session is destroyed refuses a txn lock', async (t) => {
  const api = await start(t);
  const registered = await api.deps.apply({ type: 'register', request: { Node: 'node1', Address: '127.0.0.1', Check: { CheckID: 'serfHealth', Status: 'passing' } } });
  assert.ok(registered.ok);
  const create = async (): Promise<string> => ((await api.request('PUT', '/v1/session/create', '')).json() as { ID: string }).ID;
  const first = await create();
  const second = await create();
  const locked = await txn(api, [{ KV: { Verb: 'lock', Key: 'l', Session: first, Value: b64('x') } }, { KV: { Verb: 'check-session', Key: 'l', Session: first } }]);
  assert.equal(locked.status, 200, locked.body);
  assert.equal((locked.json() as { Results: { KV: { LockIndex: number; Session: string } }[] }).Results[0]?.KV.Session, first);
  await api.request('PUT', `/v1/session/destroy/${first}`);
  const refused = await txn(api, [{ KV: { Verb: 'lock', Key: 'l', Session: second } }]);
  assert.equal(refused.status, 409);
  assert.deepEqual(refused.json(), { Results: null, Errors: [{ OpIndex: 0, What: 'failed to lock key "l" due to lock delay' }] });
});

// ---------------------------------------------------------------------------------------------
// Node, Service and Check operations (agent/consul/state/txn.go)

type Json = Record<string, unknown>;

/** Sends a txn that must succeed and returns its Results. */
async function ok(api: TestApi, ops: unknown): Promise<Json[]> {
  const reply = await txn(api, ops);
  assert.equal(reply.status, 200, reply.body);
  const body = reply.json() as { Results: Json[]; Errors: unknown };
  assert.equal(body.Errors, null);
  return body.Results;
}

/** Sends a txn that must be rolled back and returns its Errors. */
async function refused(api: TestApi, ops: unknown): Promise<unknown> {
  const reply = await txn(api, ops);
  assert.equal(reply.status, 409, reply.body);
  const body = reply.json() as { Results: unknown; Errors: unknown };
  assert.equal(body.Results, null);
  return body.Errors;
}

function only(what: string, opIndex = 0): unknown {
  return [{ OpIndex: opIndex, What: what }];
}

const NODE_ID = '9c7f3d2a-1b4e-4c5d-8e6f-7a8b9c0d1e2f';

test('Node ops: set, get, cas, delete-cas, delete with Consul results and error texts', async (t) => {
  const api = await start(t);
  const [set] = await ok(api, [{ Node: { Verb: 'set', Node: { ID: NODE_ID, Node: 'n1', Address: '10.0.0.1', TaggedAddresses: { lan: '10.0.0.1' }, Meta: { rack: 'a' } } } }]);
  // The result is the node as stored, rendered as /v1/catalog/node renders it (datacenter defaulted).
  const catalogNode = ((await api.request('GET', '/v1/catalog/node/n1')).json() as { Node: Json }).Node;
  assert.deepEqual(set, { Node: catalogNode });
  assert.equal(catalogNode['Datacenter'], 'dc1');
  assert.deepEqual(Object.keys(catalogNode), ['ID', 'Node', 'Address', 'Datacenter', 'TaggedAddresses', 'Meta', 'CreateIndex', 'ModifyIndex']);
  const modifyIndex = catalogNode['ModifyIndex'] as number;
  // get by name, and by ID when the op carries one.
  assert.deepEqual(await ok(api, [{ Node: { Verb: 'get', Node: { Node: 'n1' } } }, { Node: { Verb: 'get', Node: { ID: NODE_ID.toUpperCase(), Node: 'whatever' } } }]), [{ Node: catalogNode }, { Node: catalogNode }]);
  assert.deepEqual(await refused(api, [{ Node: { Verb: 'get', Node: { Node: 'nope' } } }]), only('node "nope" doesn\'t exist'));
  assert.deepEqual(await refused(api, [{ Node: { Verb: 'get', Node: { ID: 'not-a-uuid', Node: 'n1' } } }]), only('node lookup by ID failed, wrong UUID: uuid string is wrong length'));
  // cas: index 0 means "only if absent"; otherwise the ModifyIndex must match.
  assert.deepEqual(await refused(api, [{ Node: { Verb: 'cas', Node: { ID: NODE_ID, Node: 'n1', Address: '10.0.0.2' } } }]), only('failed to set node "n1", index is stale'));
  assert.deepEqual(await refused(api, [{ Node: { Verb: 'cas', Node: { Node: 'n1', Address: '10.0.0.2', ModifyIndex: modifyIndex + 100 } } }]), only('failed to set node "n1", index is stale'));
  const [cas] = await ok(api, [{ Node: { Verb: 'cas', Node: { ID: NODE_ID, Node: 'n1', Address: '10.0.0.2', ModifyIndex: modifyIndex } } }]);
  assert.equal((cas?.['Node'] as Json)['Address'], '10.0.0.2');
  assert.ok(((cas?.['Node'] as Json)['ModifyIndex'] as number) > modifyIndex);
  const [created] = await ok(api, [{ Node: { Verb: 'cas', Node: { Node: 'n2', Address: '10.0.0.3', ModifyIndex: 0 } } }]);
  assert.equal((created?.['Node'] as Json)['Node'], 'n2');
  // delete-cas: a missing node or a stale index is an error; delete of a missing node is not.
  const current = (cas?.['Node'] as Json)['ModifyIndex'] as number;
  assert.deepEqual(await refused(api, [{ Node: { Verb: 'delete-cas', Node: { Node: 'n1', ModifyIndex: current - 1 } } }]), only('failed to delete node "n1", index is stale'));
  assert.deepEqual(await refused(api, [{ Node: { Verb: 'delete-cas', Node: { Node: 'ghost', ModifyIndex: 1 } } }]), only('failed to delete node "ghost", index is stale'));
  assert.deepEqual(await ok(api, [{ Node: { Verb: 'delete-cas', Node: { Node: 'n1', ModifyIndex: current } } }, { Node: { Verb: 'delete', Node: { Node: 'n2' } } }, { Node: { Verb: 'delete', Node: { Node: 'ghost' } } }]), []);
  assert.deepEqual((await api.request('GET', '/v1/catalog/nodes')).json(), []);
  // The server's pre-check: a write needs a node name, and an ID must be a UUID.
  assert.deepEqual(await refused(api, [{ Node: { Verb: 'set', Node: { Address: '10.0.0.1' } } }]), only('Must provide node'));
  assert.deepEqual(await refused(api, [{ Node: { Verb: 'delete', Node: {} } }]), only('Must provide node'));
  assert.deepEqual(await refused(api, [{ Node: { Verb: 'set', Node: { ID: 'abc', Node: 'n1', Address: '10.0.0.1' } } }]), only('Bad node ID: uuid string is wrong length'));
});

test('Service ops: set, get, cas, delete-cas, delete with Consul results and error texts', async (t) => {
  const api = await start(t);
  await ok(api, [{ Node: { Verb: 'set', Node: { Node: 'n1', Address: '10.0.0.1' } } }]);
  // The ID defaults to the name; TaggedAddresses and SocketPath are not copied by convertOps.
  const [set] = await ok(api, [{ Service: { Verb: 'set', Node: 'n1', Service: { Service: 'web', Tags: ['v1'], Port: 80, Meta: { env: 'prod' }, TaggedAddresses: { lan: { Address: '1.1.1.1', Port: 1 } }, SocketPath: '/x' } } }]);
  const services = ((await api.request('GET', '/v1/catalog/node/n1')).json() as { Services: Record<string, Json> }).Services;
  assert.deepEqual(Object.keys(services), ['web']);
  assert.deepEqual(set, { Service: services['web'] });
  const web = services['web'] as Json;
  assert.deepEqual([web['ID'], web['Tags'], web['Port'], web['Weights'], web['TaggedAddresses'], web['SocketPath']], ['web', ['v1'], 80, { Passing: 1, Warning: 1 }, undefined, undefined]);
  assert.deepEqual(await ok(api, [{ Service: { Verb: 'get', Node: 'n1', Service: { ID: 'web' } } }]), [{ Service: web }]);
  assert.deepEqual(await refused(api, [{ Service: { Verb: 'get', Node: 'n1', Service: { ID: 'nope' } } }]), only('service "nope" on node "n1" doesn\'t exist'));
  // A get skips the pre-check, so its ID does not default to the name.
  assert.deepEqual(await refused(api, [{ Service: { Verb: 'get', Node: 'n1', Service: { Service: 'web' } } }]), only('service "" on node "n1" doesn\'t exist'));
  const modifyIndex = web['ModifyIndex'] as number;
  assert.deepEqual(await refused(api, [{ Service: { Verb: 'cas', Node: 'n1', Service: { Service: 'web', Port: 81 } } }]), only('failed to set service "web" on node "n1", index is stale'));
  assert.deepEqual(await refused(api, [{ Service: { Verb: 'cas', Node: 'n1', Service: { Service: 'db', Port: 81, ModifyIndex: 5 } } }]), only('failed to set service "db" on node "n1", index is stale'));
  const [cas] = await ok(api, [{ Service: { Verb: 'cas', Node: 'n1', Service: { ID: 'web', Service: 'web', Port: 81, ModifyIndex: modifyIndex } } }]);
  assert.equal((cas?.['Service'] as Json)['Port'], 81);
  const current = (cas?.['Service'] as Json)['ModifyIndex'] as number;
  // Consul quirk: every service write, deletes included, goes through servicePreApply, which
  // wants a name whenever an ID is given.
  assert.deepEqual(await refused(api, [{ Service: { Verb: 'delete', Node: 'n1', Service: { ID: 'web' } } }]), only('Must provide service name (Service.Service) when service ID is provided'));
  assert.deepEqual(await refused(api, [{ Service: { Verb: 'delete-cas', Node: 'n1', Service: { ID: 'web', Service: 'web', ModifyIndex: modifyIndex } } }]), only('failed to delete service "web" on node "n1", index is stale'));
  assert.deepEqual(await refused(api, [{ Service: { Verb: 'delete-cas', Node: 'n1', Service: { Service: 'ghost', ModifyIndex: 1 } } }]), only('failed to delete service "ghost" on node "n1", index is stale'));
  assert.deepEqual(await ok(api, [{ Service: { Verb: 'delete-cas', Node: 'n1', Service: { Service: 'web', ModifyIndex: current } } }, { Service: { Verb: 'delete', Node: 'n1', Service: { Service: 'ghost' } } }]), []);
  assert.deepEqual((await api.request('GET', '/v1/catalog/service/web')).json(), []);
  // The state store's and the pre-check's refusals.
  assert.deepEqual(await refused(api, [{ Service: { Verb: 'set', Node: 'nobody', Service: { Service: 'web' } } }]), only('Missing node registration'));
  assert.deepEqual(await refused(api, [{ Service: { Verb: 'set', Node: 'n1', Service: { ID: 'web-1' } } }]), only('Must provide service name (Service.Service) when service ID is provided'));
  assert.deepEqual(await refused(api, [{ Service: { Verb: 'set', Node: 'n1', Service: { Service: 'web', Address: '0.0.0.0' } } }]), only('Invalid service address'));
});

test('Check ops: set, get, cas, delete-cas, delete with Consul results and error texts', async (t) => {
  const api = await start(t);
  await ok(api, [{ Node: { Verb: 'set', Node: { Node: 'n1', Address: '10.0.0.1' } } }, { Service: { Verb: 'set', Node: 'n1', Service: { Service: 'web', Port: 80 } } }]);
  // The check ID defaults to the name; the status to critical; the definition keeps its durations.
  const [set, serviceCheck] = await ok(api, [
    { Check: { Verb: 'set', Check: { Node: 'n1', Name: 'mem', Notes: 'n', Definition: { HTTP: 'http://127.0.0.1/health', Interval: '10s', Timeout: 2_000_000_000, UDP: 'dropped' } } } },
    { Check: { Verb: 'set', Check: { Node: 'n1', CheckID: 'web-alive', Name: 'alive', Status: 'passing', ServiceID: 'web' } } },
  ]);
  const checks = (await api.request('GET', '/v1/health/node/n1')).json() as Json[];
  assert.deepEqual(checks.map((check) => check['CheckID']), ['mem', 'web-alive']);
  assert.deepEqual(set, { Check: checks[0] });
  assert.deepEqual(serviceCheck, { Check: checks[1] });
  const mem = checks[0] as Json;
  assert.deepEqual([mem['Status'], mem['Type'], mem['Definition']], ['critical', '', { Interval: '10s', Timeout: '2s', HTTP: 'http://127.0.0.1/health' }]);
  assert.equal((checks[1] as Json)['ServiceName'], 'web');
  assert.deepEqual(await ok(api, [{ Check: { Verb: 'get', Check: { Node: 'n1', CheckID: 'mem' } } }]), [{ Check: mem }]);
  assert.deepEqual(await refused(api, [{ Check: { Verb: 'get', Check: { Node: 'n1', CheckID: 'nope' } } }]), only('check "nope" on node "n1" doesn\'t exist'));
  const modifyIndex = mem['ModifyIndex'] as number;
  assert.deepEqual(await refused(api, [{ Check: { Verb: 'cas', Check: { Node: 'n1', Name: 'mem', Status: 'passing' } } }]), only('failed to set check "mem" on node "n1", index is stale'));
  const [cas] = await ok(api, [{ Check: { Verb: 'cas', Check: { Node: 'n1', CheckID: 'mem', Name: 'mem', Status: 'passing', ModifyIndex: modifyIndex } } }]);
  assert.equal((cas?.['Check'] as Json)['Status'], 'passing');
  const current = (cas?.['Check'] as Json)['ModifyIndex'] as number;
  assert.deepEqual(await refused(api, [{ Check: { Verb: 'delete-cas', Check: { Node: 'n1', CheckID: 'mem', ModifyIndex: modifyIndex } } }]), only('failed to delete check "mem" on node "n1", index is stale'));
  assert.deepEqual(await refused(api, [{ Check: { Verb: 'delete-cas', Check: { Node: 'n1', CheckID: 'ghost', ModifyIndex: 1 } } }]), only('failed to delete check "ghost" on node "n1", index is stale'));
  assert.deepEqual(await ok(api, [{ Check: { Verb: 'delete-cas', Check: { Node: 'n1', CheckID: 'mem', ModifyIndex: current } } }, { Check: { Verb: 'delete', Check: { Node: 'n1', CheckID: 'ghost' } } }]), []);
  assert.deepEqual(((await api.request('GET', '/v1/health/node/n1')).json() as Json[]).map((check) => check['CheckID']), ['web-alive']);
  assert.deepEqual(await refused(api, [{ Check: { Verb: 'set', Check: { Node: 'nobody', Name: 'x' } } }]), only('Missing node registration'));
  assert.deepEqual(await refused(api, [{ Check: { Verb: 'set', Check: { Node: 'n1', Name: 'x', ServiceID: 'db' } } }]), only('Missing service registration'));
});

test('a mixed KV and catalog txn is atomic: one failing op anywhere rolls back every other op with 409', async (t) => {
  const api = await start(t);
  const errors = await refused(api, [
    { KV: { Verb: 'set', Key: 'config/web', Value: b64('on') } },
    { Node: { Verb: 'set', Node: { Node: 'n1', Address: '10.0.0.1' } } },
    { Service: { Verb: 'set', Node: 'n1', Service: { Service: 'web', Port: 80 } } },
    { Check: { Verb: 'set', Check: { Node: 'n1', Name: 'db-alive', ServiceID: 'db' } } },
    { KV: { Verb: 'get', Key: 'config/missing' } },
  ]);
  assert.deepEqual(errors, [{ OpIndex: 3, What: 'Missing service registration' }, { OpIndex: 4, What: 'key "config/missing" doesn\'t exist' }]);
  assert.equal((await api.request('GET', '/v1/kv/config/web')).status, 404);
  assert.deepEqual((await api.request('GET', '/v1/catalog/nodes')).json(), []);
  // The same ops without the failing ones commit together, results in op order.
  const results = await ok(api, [
    { KV: { Verb: 'set', Key: 'config/web', Value: b64('on') } },
    { Node: { Verb: 'set', Node: { Node: 'n1', Address: '10.0.0.1' } } },
    { Service: { Verb: 'set', Node: 'n1', Service: { Service: 'web', Port: 80 } } },
    { KV: { Verb: 'get', Key: 'config/web' } },
  ]);
  assert.deepEqual(results.map((result) => Object.keys(result)[0]), ['KV', 'Node', 'Service', 'KV']);
  const indexes = results.map((result) => (Object.values(result)[0] as Json)['ModifyIndex']);
  assert.equal(new Set(indexes).size, 1, 'every op of a txn is applied at one Raft index');
  assert.equal((await api.request('GET', '/v1/kv/config/web?raw')).body, 'on');
});

test('a read-only catalog txn is served as a read: no Raft, leader headers, 409 on a missing record', async (t) => {
  const api = await start(t);
  await ok(api, [
    { Node: { Verb: 'set', Node: { Node: 'n1', Address: '10.0.0.1' } } },
    { Service: { Verb: 'set', Node: 'n1', Service: { Service: 'web' } } },
    { Check: { Verb: 'set', Check: { Node: 'n1', Name: 'alive', Status: 'passing' } } },
  ]);
  let applies = 0;
  const deps = api.deps as { apply: EndpointDeps['apply'] };
  const apply = deps.apply;
  deps.apply = (command) => {
    applies++;
    return apply(command);
  };
  const reply = await txn(api, [
    { Node: { Verb: 'get', Node: { Node: 'n1' } } },
    { Service: { Verb: 'get', Node: 'n1', Service: { ID: 'web' } } },
    { Check: { Verb: 'get', Check: { Node: 'n1', CheckID: 'alive' } } },
    { KV: { Verb: 'get-or-empty', Key: 'none' } },
  ], '?stale');
  assert.equal(reply.status, 200, reply.body);
  const body = reply.json() as { Results: Json[] };
  assert.deepEqual(body.Results.map((result) => Object.keys(result)[0]), ['Node', 'Service', 'Check', 'KV']);
  assert.equal(header(reply, 'x-consul-knownleader'), 'true');
  assert.equal(header(reply, 'x-consul-lastcontact'), '0');
  assert.equal(header(reply, 'x-consul-index'), '');
  const missing = await txn(api, [{ Node: { Verb: 'get', Node: { Node: 'n1' } } }, { Check: { Verb: 'get', Check: { Node: 'n1', CheckID: 'gone' } } }]);
  assert.equal(missing.status, 409);
  assert.equal(header(missing, 'x-consul-knownleader'), 'true');
  assert.deepEqual(missing.json(), { Results: null, Errors: [{ OpIndex: 1, What: 'check "gone" on node "n1" doesn\'t exist' }] });
  assert.equal(applies, 0, 'a read-only txn never goes through Raft');
  await ok(api, [{ Node: { Verb: 'delete', Node: { Node: 'n9' } } }]);
  assert.equal(applies, 1, 'any catalog verb but get is a write');
});

test('malformed catalog ops are 400 with Go decoder text; unknown verbs are per-op errors', async (t) => {
  const api = await start(t);
  const cases: [unknown, string][] = [
    [[{ Node: 'x' }], 'json: cannot unmarshal string into Go struct field TxnOp.Node of type api.NodeTxnOp'],
    [[{ Node: { Verb: 5 } }], 'json: cannot unmarshal number into Go struct field NodeTxnOp.Node.Verb of type api.NodeOp'],
    [[{ Node: { Verb: 'set', Node: [] } }], 'json: cannot unmarshal array into Go struct field NodeTxnOp.Node.Node of type api.Node'],
    [[{ Node: { Verb: 'set', Node: { Node: 5 } } }], 'json: cannot unmarshal number into Go struct field Node.Node.Node.Node of type string'],
    [[{ Node: { Verb: 'set', Node: { Node: 'n', ModifyIndex: -1 } } }], 'json: cannot unmarshal number -1 into Go struct field Node.Node.Node.ModifyIndex of type uint64'],
    [[{ Node: { Verb: 'set', Node: { Node: 'n', Meta: { a: 1 } } } }], 'json: cannot unmarshal number into Go struct field Node.Node.Node.Meta of type string'],
    [[{ Service: { Verb: 'set', Node: 7 } }], 'json: cannot unmarshal number into Go struct field ServiceTxnOp.Service.Node of type string'],
    [[{ Service: { Verb: 'set', Node: 'n', Service: { Port: '80' } } }], 'json: cannot unmarshal string into Go struct field AgentService.Service.Service.Port of type int'],
    [[{ Service: { Verb: 'set', Node: 'n', Service: { Port: 1.5 } } }], 'json: cannot unmarshal number 1.5 into Go struct field AgentService.Service.Service.Port of type int'],
    [[{ Service: { Verb: 'set', Node: 'n', Service: { Tags: 'a' } } }], 'json: cannot unmarshal string into Go struct field AgentService.Service.Service.Tags of type []string'],
    [[{ Service: { Verb: 'set', Node: 'n', Service: { Weights: { Passing: true } } } }], 'json: cannot unmarshal bool into Go struct field AgentWeights.Service.Service.Weights.Passing of type int'],
    [[{ Check: { Verb: 'set', Check: { Name: ['x'] } } }], 'json: cannot unmarshal array into Go struct field HealthCheck.Check.Check.Name of type string'],
    [[{ Check: { Verb: 'set', Check: { Definition: { Interval: 'abc' } } } }], 'time: invalid duration "abc"'],
    [[{ Check: { Verb: 'set', Check: { Definition: { HTTP: 1 } } } }], 'json: cannot unmarshal number into Go struct field .HTTP of type string'],
  ];
  for (const [ops, text] of cases) {
    const reply = await txn(api, ops);
    assert.equal(reply.status, 400, JSON.stringify(ops));
    assert.equal(reply.body, `Failed to parse body: ${text}`, JSON.stringify(ops));
  }
  // Go decodes every field of an op, then convertOps takes the first kind present.
  const both = await txn(api, [{ KV: { Verb: 'set', Key: 'k' }, Node: { Verb: 5 } }]);
  assert.equal(both.status, 400);
  const unknown = await refused(api, [
    { KV: { Verb: 'set', Key: 'a' } },
    { Node: { Verb: 'frob', Node: { Node: 'n1' } } },
    { Service: { Verb: 'upsert', Node: 'n1', Service: { Service: 'web' } } },
    { Check: { Verb: 'GET', Check: { Node: 'n1', CheckID: 'c' } } },
  ]);
  assert.deepEqual(unknown, [
    { OpIndex: 1, What: 'unknown Node verb "frob"' },
    { OpIndex: 2, What: 'unknown Service verb "upsert"' },
    { OpIndex: 3, What: 'unknown Check verb "GET"' },
  ]);
  assert.equal((await api.request('GET', '/v1/kv/a')).status, 404);
});

test('a service op keeps only what convertOps copies: Kind, the listed Proxy fields, Weights defaulted', async (t) => {
  const api = await start(t);
  await ok(api, [{ Node: { Verb: 'set', Node: { Node: 'n1', Address: '10.0.0.1' } } }]);
  await ok(api, [{
    Service: {
      Verb: 'set',
      Node: 'n1',
      Service: {
        Kind: 'connect-proxy', Service: 'web-proxy', Port: 21000, Weights: { Passing: 3, Warning: 2 },
        Proxy: { DestinationServiceName: 'web', LocalServicePort: 8080, Upstreams: [{ DestinationName: 'db' }], MeshGateway: { Mode: 'local' } },
        Connect: { Native: true },
      },
    },
  }, { Service: { Verb: 'set', Node: 'n1', Service: { Service: 'plain', Weights: { Passing: 0, Warning: 0 } } } }]);
  const proxy = api.state.read((txn) => ({ index: 1, value: txn.first<ServiceRecord>(TABLES.services, 'id', 'n1', 'web-proxy') })).value;
  assert.equal(proxy?.Kind, 'connect-proxy');
  assert.deepEqual(proxy?.Proxy, { DestinationServiceName: 'web', LocalServicePort: 8080, MeshGateway: { Mode: 'local' } });
  assert.equal(proxy?.Connect, undefined);
  assert.deepEqual(proxy?.Weights, { Passing: 3, Warning: 2 });
  const plain = api.state.read((txn) => ({ index: 1, value: txn.first<ServiceRecord>(TABLES.services, 'id', 'n1', 'plain') })).value;
  assert.deepEqual(plain?.Weights, { Passing: 1, Warning: 1 });
});

test('the leader serves forwarded Txn.Apply: ops in the txn command\'s shapes; bad arguments are errors, not crashes', async (t) => {
  const api = await start(t);
  const { txnRpcMethods } = await import('../lib/endpoints_txn.js');
  const apply = txnRpcMethods(api.deps).get('Txn.Apply')!;
  const context = { remoteAddress: '127.0.0.9:1' };
  const reply = (await apply({ Datacenter: 'dc1', Ops: [{ KV: { Verb: 'set', DirEnt: { Key: 'wire', Value: Uint8Array.of(7), Flags: 3n } } }] }, context)) as { Results: { KV: { Key: string } }[] | null; Errors: unknown };
  assert.deepEqual(reply.Results?.map((r) => r.KV.Key), ['wire']);
  assert.equal(reply.Errors, null);
  const bad: [unknown, RegExp][] = [
    ['junk', /TxnRequest must be a map/],
    [{ Datacenter: 'dc9', Ops: [] }, /No path to datacenter/],
    [{ Ops: [{ KV: { Verb: 'set', DirEnt: { Key: 5 } } }] }, /Ops/],
    [{ Ops: 'many' }, /Ops/],
  ];
  for (const [args, message] of bad) await assert.rejects(Promise.resolve().then(() => apply(args as never, context)), message);
});
