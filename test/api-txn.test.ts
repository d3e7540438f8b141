// PUT /v1/txn against the spec (§3.6) on a real single-server Raft.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { loadConfig } from '../lib/config.js';
import type { EndpointDeps } from '../lib/endpoints.js';
import { kvRoutes } from '../lib/endpoints_kv.js';
import { sessionRoutes } from '../lib/endpoints_session.js';
import { TXN_OPS_MAX, txnRoutes } from '../lib/endpoints_txn.js';
import type { HttpRoute } from '../lib/http.js';
import { SessionTimers } from '../lib/sessionttl.js';
import { startApi, type TestApi } from './api-support.js';

async function start(t: TestContext, limits: Partial<{ kvMaxValueSize: number; txnMaxReqLen: number }> = {}): Promise<TestApi> {
  const routes = (deps: EndpointDeps): HttpRoute[] => [...kvRoutes(deps), ...txnRoutes(deps), ...sessionRoutes(deps, new SessionTimers())];
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
  const node = await txn(api, [{ KV: { Verb: 'set', Key: 'a' } }, { Node: { Verb: 'set', Node: { Node: 'n1', Address: '1.2.3.4' } } }]);
  assert.equal(node.status, 409);
  assert.deepEqual(node.json(), { Results: null, Errors: [{ OpIndex: 1, What: 'Node operations are not supported in transactions by this server' }] });
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
