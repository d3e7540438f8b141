// /v1/kv/ against the spec (§3.4, §8.2-8.6, §9.1, §9.2, §9.7) on a real single-server Raft.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { loadConfig } from '../lib/config.js';
import type { EndpointDeps } from '../lib/endpoints.js';
import { kvRoutes } from '../lib/endpoints_kv.js';
import { sessionRoutes } from '../lib/endpoints_session.js';
import { SessionTimers } from '../lib/sessionttl.js';
import type { HttpRoute } from '../lib/http.js';
import { startApi, type TestApi } from './api-support.js';

const NODE_CONFIG = { devMode: false, nodeName: 'node1' };

async function start(t: TestContext, extra: Partial<{ kvMaxValueSize: number }> = {}): Promise<TestApi> {
  const routes = (deps: EndpointDeps): HttpRoute[] => [...kvRoutes(deps), ...sessionRoutes(deps, new SessionTimers())];
  const limits = { ...loadConfig(['-dev']).config.limits, ...extra };
  return startApi(t, routes, { config: { ...NODE_CONFIG, limits } });
}

/** Registers the agent's node with a passing serfHealth check, as the leader would. */
async function registerNode(api: TestApi, node = 'node1'): Promise<void> {
  const result = await api.deps.apply({
    type: 'register',
    request: { Node: node, Address: '127.0.0.1', Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' } },
  });
  assert.ok(result.ok, 'node registration applies');
}

async function createSession(api: TestApi, body: unknown = {}): Promise<string> {
  const reply = await api.request('PUT', '/v1/session/create', JSON.stringify(body));
  assert.equal(reply.status, 200, reply.body);
  return (reply.json() as { ID: string }).ID;
}

function header(reply: { headers: Record<string, string | string[] | undefined> }, name: string): string {
  const value = reply.headers[name.toLowerCase()];
  return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
}

test('PUT then GET returns an array of one DirEntry with base64 Value, its ModifyIndex as X-Consul-Index', async (t) => {
  const api = await start(t);
  const put = await api.request('PUT', '/v1/kv/app/config', 'hello');
  assert.equal(put.status, 200);
  assert.equal(put.body, 'true');
  assert.equal(header(put, 'content-type'), 'application/json');
  const got = await api.request('GET', '/v1/kv/app/config');
  assert.equal(got.status, 200);
  const entries = got.json() as Record<string, unknown>[];
  assert.equal(entries.length, 1);
  const entry = entries[0]!;
  assert.deepEqual(Object.keys(entry), ['LockIndex', 'Key', 'Flags', 'Value', 'CreateIndex', 'ModifyIndex']);
  assert.equal(entry['Key'], 'app/config');
  assert.equal(entry['Value'], Buffer.from('hello').toString('base64'));
  assert.equal(entry['Flags'], 0);
  assert.equal(header(got, 'x-consul-index'), String(entry['ModifyIndex']));
  assert.equal(header(got, 'x-consul-knownleader'), 'true');
  assert.equal(header(got, 'x-consul-lastcontact'), '0');
});

test('a missing key is 404 with an empty body and index headers; no key is 400 Missing key name', async (t) => {
  const api = await start(t);
  const missing = await api.request('GET', '/v1/kv/nope');
  assert.equal(missing.status, 404);
  assert.equal(missing.body, '');
  assert.ok(Number(header(missing, 'x-consul-index')) >= 1);
  await api.request('PUT', '/v1/kv/other', 'x');
  await api.request('DELETE', '/v1/kv/other');
  const afterDelete = await api.request('GET', '/v1/kv/nope');
  // A missing key reports the kvs/tombstones table index, deletes included (spec §9.2).
  const latest = await api.request('GET', '/v1/kv/?recurse');
  assert.equal(header(afterDelete, 'x-consul-index'), header(latest, 'x-consul-index'));
  for (const method of ['GET', 'PUT', 'DELETE']) {
    const reply = await api.request(method, '/v1/kv/');
    assert.equal(reply.status, 400, method);
    assert.equal(reply.body, 'Missing key name');
  }
});

test('recurse lists entries under a prefix in key order, 404 when none; keys rolls up at the separator', async (t) => {
  const api = await start(t);
  const empty = await api.request('GET', '/v1/kv/?keys');
  assert.equal(empty.status, 200);
  assert.deepEqual(empty.json(), []);
  for (const key of ['a/b/c', 'a/b/d', 'a/e', 'b']) await api.request('PUT', `/v1/kv/${key}`, key);
  const list = await api.request('GET', '/v1/kv/a/?recurse');
  assert.deepEqual((list.json() as { Key: string }[]).map((entry) => entry.Key), ['a/b/c', 'a/b/d', 'a/e']);
  assert.equal((await api.request('GET', '/v1/kv/zz?recurse')).status, 404);
  assert.deepEqual((await api.request('GET', '/v1/kv/a/?keys&separator=/')).json(), ['a/b/', 'a/e']);
  assert.deepEqual((await api.request('GET', '/v1/kv/a/?keys&seperator=/')).json(), ['a/b/', 'a/e']);
  assert.deepEqual((await api.request('GET', '/v1/kv/?keys')).json(), ['a/b/c', 'a/b/d', 'a/e', 'b']);
  const none = await api.request('GET', '/v1/kv/zz?keys');
  assert.equal(none.status, 404);
  assert.equal(none.body, '');
  assert.equal((await api.request('GET', '/v1/kv/?recurse')).status, 200);
});

test('raw returns the bare value with the XSS headers', async (t) => {
  const api = await start(t);
  await api.request('PUT', '/v1/kv/page', '<script>x</script>');
  const raw = await api.request('GET', '/v1/kv/page?raw');
  assert.equal(raw.status, 200);
  assert.equal(raw.body, '<script>x</script>');
  assert.equal(header(raw, 'content-type'), 'text/plain');
  assert.equal(header(raw, 'x-content-type-options'), 'nosniff');
  assert.equal(header(raw, 'content-security-policy'), 'sandbox');
  assert.ok(Number(header(raw, 'x-consul-index')) >= 1);
});

test('an empty PUT body stores a null Value; ?pretty indents by 4 with a trailing newline', async (t) => {
  const api = await start(t);
  await api.request('PUT', '/v1/kv/empty', '');
  const got = await api.request('GET', '/v1/kv/empty?pretty');
  assert.equal((got.json() as { Value: unknown }[])[0]?.Value, null);
  assert.ok(got.body.startsWith('[\n    {\n        "LockIndex": 0,'), got.body);
  assert.ok(got.body.endsWith('\n'));
});

test('Flags is a uint64 kept exact beyond 2^53; a bad flags value is 500 with Go strconv text and no write', async (t) => {
  const api = await start(t);
  for (const flags of ['3304740253564472344', '18446744073709551615']) {
    await api.request('PUT', `/v1/kv/f?flags=${flags}`, 'v');
    const got = await api.request('GET', '/v1/kv/f');
    assert.match(got.body, new RegExp(`"Flags":${flags},`));
  }
  const before = await api.request('GET', '/v1/kv/f');
  const cases: [string, string][] = [
    ['abc', 'strconv.ParseUint: parsing "abc": invalid syntax'],
    ['-1', 'strconv.ParseUint: parsing "-1": invalid syntax'],
    ['', 'strconv.ParseUint: parsing "": invalid syntax'],
    ['18446744073709551616', 'strconv.ParseUint: parsing "18446744073709551616": value out of range'],
  ];
  for (const [flags, text] of cases) {
    const reply = await api.request('PUT', `/v1/kv/f?flags=${flags}`, 'other');
    assert.equal(reply.status, 500);
    assert.equal(reply.body, text);
  }
  assert.equal((await api.request('GET', '/v1/kv/f')).body, before.body);
});

test('cas=0 creates only if absent, cas=N only at that ModifyIndex; failures are 200 false', async (t) => {
  const api = await start(t);
  assert.equal((await api.request('PUT', '/v1/kv/c?cas=0', 'one')).body, 'true');
  assert.equal((await api.request('PUT', '/v1/kv/c?cas=0', 'two')).body, 'false');
  const [entry] = (await api.request('GET', '/v1/kv/c')).json() as { ModifyIndex: number }[];
  assert.ok(entry);
  assert.equal((await api.request('PUT', `/v1/kv/c?cas=${entry.ModifyIndex + 1000}`, 'three')).body, 'false');
  assert.equal((await api.request('PUT', `/v1/kv/c?cas=${entry.ModifyIndex}`, 'four')).body, 'true');
  assert.equal((await api.request('GET', '/v1/kv/c?raw')).body, 'four');
  assert.equal((await api.request('PUT', '/v1/kv/c?cas=x', 'five')).status, 500);
});

test('concurrent CAS writers at one index: exactly one wins', async (t) => {
  const api = await start(t);
  await api.request('PUT', '/v1/kv/race', '0');
  const [entry] = (await api.request('GET', '/v1/kv/race')).json() as { ModifyIndex: number }[];
  assert.ok(entry);
  const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => api.request('PUT', `/v1/kv/race?cas=${entry.ModifyIndex}`, `w${i}`)));
  assert.deepEqual(replies.map((reply) => reply.status), Array(8).fill(200));
  const winners = replies.filter((reply) => reply.body === 'true');
  assert.equal(winners.length, 1);
});

test('DELETE answers true even when absent; recurse deletes a prefix; cas deletes at an index only', async (t) => {
  const api = await start(t);
  assert.equal((await api.request('DELETE', '/v1/kv/absent')).body, 'true');
  for (const key of ['t/a', 't/b', 'u']) await api.request('PUT', `/v1/kv/${key}`, 'x');
  assert.equal((await api.request('DELETE', '/v1/kv/t/?recurse')).body, 'true');
  assert.equal((await api.request('GET', '/v1/kv/t/?recurse')).status, 404);
  const [entry] = (await api.request('GET', '/v1/kv/u')).json() as { ModifyIndex: number }[];
  assert.ok(entry);
  assert.equal((await api.request('DELETE', '/v1/kv/u?cas=0')).body, 'false');
  assert.equal((await api.request('DELETE', `/v1/kv/u?cas=${entry.ModifyIndex}`)).body, 'true');
  assert.equal((await api.request('GET', '/v1/kv/u')).status, 404);
});

test('conflicting flags are 400 with the encoded query, before anything is written', async (t) => {
  const api = await start(t);
  const put = await api.request('PUT', '/v1/kv/k?release=s2&cas=0&acquire=s1', 'x');
  assert.equal(put.status, 400);
  assert.equal(put.body, 'Conflicting flags: acquire=s1&cas=0&release=s2\n');
  const del = await api.request('DELETE', '/v1/kv/k?recurse&cas=3');
  assert.equal(del.status, 400);
  assert.equal(del.body, 'Conflicting flags: cas=3&recurse=\n');
  assert.equal((await api.request('GET', '/v1/kv/k')).status, 404);
});

test('a value over kv_max_value_size is 413 with Consul text and is not stored', async (t) => {
  const api = await start(t, { kvMaxValueSize: 16 });
  const reply = await api.request('PUT', '/v1/kv/big', 'x'.repeat(17));
  assert.equal(reply.status, 413);
  assert.equal(reply.body, 'Request body(17 bytes) too large, max size: 16 bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.');
  assert.equal((await api.request('GET', '/v1/kv/big')).status, 404);
  assert.equal((await api.request('PUT', '/v1/kv/big', 'x'.repeat(16))).body, 'true');
});

test('key validation: traversal forms and surrounding spaces are 400, other UTF-8 is fine', async (t) => {
  const api = await start(t);
  // A literal `../` is cleaned by the HTTP layer first (Go's mux redirects such paths); an
  // escaped `..%2F` is not (Go 1.22+ cleans the escaped path) and reaches the key check.
  assert.equal((await api.request('GET', '/v1/kv/a/../b')).status, 301);
  const escaped = await api.request('GET', '/v1/kv/a/..%2Fb');
  assert.equal(escaped.status, 400);
  assert.equal(escaped.body, 'key contains path traversal sequence');
  const refused: [string, string][] = [
    ['/v1/kv/a/..%5Cb', 'key contains path traversal sequence'],
    ['/v1/kv/a/..%252fb', 'key contains encoded path traversal sequence'],
    ['/v1/kv/a/%252E%252E%252Fb', 'key contains encoded path traversal sequence'],
    ['/v1/kv/%20a', 'key must not have leading or trailing whitespace'],
    ['/v1/kv/a%20', 'key must not have leading or trailing whitespace'],
  ];
  for (const [path, text] of refused) {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const reply = await api.request(method, path, method === 'PUT' ? 'x' : undefined);
      assert.equal(reply.status, 400, `${method} ${path}`);
      assert.equal(reply.body, text, `${method} ${path}`);
    }
  }
  assert.deepEqual((await api.request('GET', '/v1/kv/?keys')).json(), []);
  for (const key of ['ç/a b', 'locks%2Fjob', 'a:b', 'x..y']) {
    assert.equal((await api.request('PUT', `/v1/kv/${encodeURIComponent(key)}`, 'v')).body, 'true', key);
  }
  assert.equal((await api.request('PUT', '/v1/kv/locks%2Fjob', 'v')).body, 'true');
  assert.deepEqual((await api.request('GET', '/v1/kv/?keys')).json(), ['a:b', 'locks%2Fjob', 'locks/job', 'x..y', 'ç/a b']);
  // The HTTP layer redirects a path with `//` to its clean form, as Go's mux does.
  const doubled = await api.request('PUT', '/v1/kv/d//e', 'v');
  assert.equal(doubled.status, 301);
  assert.equal(header(doubled, 'location'), '/v1/kv/d/e');
});

test('bad index, wait or consistency parameters are 400 with Consul text; unknown parameters are ignored', async (t) => {
  const api = await start(t);
  await api.request('PUT', '/v1/kv/k', 'v');
  const cases: [string, string][] = [
    ['?index=abc', 'Invalid index'],
    ['?index=-1', 'Invalid index'],
    ['?index=1&wait=forever', 'Invalid wait time'],
    ['?stale&consistent', 'Cannot specify ?stale with ?consistent, conflicting semantics.'],
  ];
  for (const [query, text] of cases) {
    const reply = await api.request('GET', `/v1/kv/k${query}`);
    assert.equal(reply.status, 400, query);
    assert.equal(reply.body, text, query);
  }
  const put = await api.request('PUT', '/v1/kv/k?index=zz', 'changed');
  assert.equal(put.status, 400);
  assert.equal((await api.request('GET', '/v1/kv/k?raw')).body, 'v');
  assert.equal((await api.request('GET', '/v1/kv/k?bogus=1&raw')).body, 'v');
  assert.equal((await api.request('GET', '/v1/kv/k?dc=elsewhere')).body, 'No path to datacenter');
  assert.equal((await api.request('POST', '/v1/kv/k')).status, 405);
});

test('a blocking GET is woken by a write to its key, not by a write to another key', async (t) => {
  const api = await start(t);
  await api.request('PUT', '/v1/kv/watched', 'v1');
  const first = await api.request('GET', '/v1/kv/watched');
  const index = header(first, 'x-consul-index');
  let isSettled = false;
  const blocked = api.request('GET', `/v1/kv/watched?index=${index}&wait=30s`).then((reply) => {
    isSettled = true;
    return reply;
  });
  // Let the query park, then write elsewhere: it must stay parked.
  await new Promise((resolve) => setImmediate(resolve));
  await api.request('PUT', '/v1/kv/other', 'x');
  await api.request('GET', '/v1/kv/other');
  assert.equal(isSettled, false);
  await api.request('PUT', '/v1/kv/watched', 'v2');
  const woken = await blocked;
  assert.equal(woken.status, 200);
  const [entry] = woken.json() as { ModifyIndex: number; Value: string }[];
  assert.ok(entry);
  assert.equal(Buffer.from(entry.Value, 'base64').toString(), 'v2');
  assert.equal(header(woken, 'x-consul-index'), String(entry.ModifyIndex));
  assert.ok(entry.ModifyIndex > Number(index));
});

test('lock cycle: acquire, refuse another session, release, re-acquire bumps LockIndex, lock-delay after destroy', async (t) => {
  const api = await start(t);
  await registerNode(api);
  const holder = await createSession(api);
  const other = await createSession(api);
  assert.equal((await api.request('PUT', `/v1/kv/lock?acquire=${holder}`, 'mine')).body, 'true');
  assert.equal((await api.request('PUT', `/v1/kv/lock?acquire=${holder}`, 'again')).body, 'true');
  assert.equal((await api.request('PUT', `/v1/kv/lock?acquire=${other}`, 'theirs')).body, 'false');
  let [entry] = (await api.request('GET', '/v1/kv/lock')).json() as { LockIndex: number; Session?: string }[];
  assert.deepEqual([entry?.LockIndex, entry?.Session], [1, holder]);
  assert.equal((await api.request('PUT', `/v1/kv/lock?release=${other}`)).body, 'false');
  assert.equal((await api.request('PUT', `/v1/kv/lock?release=${holder}`)).body, 'true');
  [entry] = (await api.request('GET', '/v1/kv/lock')).json() as { LockIndex: number; Session?: string }[];
  assert.deepEqual([entry?.LockIndex, entry?.Session], [1, undefined]);
  // An explicit release starts no lock-delay; a new holder bumps LockIndex.
  assert.equal((await api.request('PUT', `/v1/kv/lock?acquire=${other}`)).body, 'true');
  [entry] = (await api.request('GET', '/v1/kv/lock')).json() as { LockIndex: number; Session?: string }[];
  assert.deepEqual([entry?.LockIndex, entry?.Session], [2, other]);
  // A plain PUT keeps the holder and, as Consul's kvsSetTxn, stores the request's LockIndex (0).
  assert.equal((await api.request('PUT', '/v1/kv/lock', 'plain')).body, 'true');
  [entry] = (await api.request('GET', '/v1/kv/lock')).json() as { LockIndex: number; Session?: string }[];
  assert.deepEqual([entry?.LockIndex, entry?.Session], [0, other]);
  // Destroying the holder releases the key and puts it in lock-delay (15 s default).
  assert.equal((await api.request('PUT', `/v1/session/destroy/${other}`)).body, 'true');
  [entry] = (await api.request('GET', '/v1/kv/lock')).json() as { LockIndex: number; Session?: string }[];
  assert.deepEqual([entry?.LockIndex, entry?.Session], [0, undefined]);
  assert.equal((await api.request('PUT', `/v1/kv/lock?acquire=${holder}`)).body, 'false');
  assert.equal(((await api.request('GET', '/v1/kv/lock')).json() as { Session?: string }[])[0]?.Session, undefined);
  // A session with no lock-delay frees its keys at once.
  const quick = await createSession(api, { LockDelay: '0s' });
  assert.equal((await api.request('PUT', `/v1/kv/quick?acquire=${quick}`)).body, 'true');
  await api.request('PUT', `/v1/session/destroy/${quick}`);
  assert.equal((await api.request('PUT', `/v1/kv/quick?acquire=${holder}`)).body, 'true');
});

test('acquire with an unknown session is 500 invalid session; an empty one is 500 missing session', async (t) => {
  const api = await start(t);
  const unknown = await api.request('PUT', '/v1/kv/l?acquire=0000-nope', 'x');
  assert.equal(unknown.status, 500);
  assert.equal(unknown.body, 'invalid session "0000-nope"');
  const empty = await api.request('PUT', '/v1/kv/l?acquire=', 'x');
  assert.equal(empty.status, 500);
  assert.equal(empty.body, 'missing session');
  assert.equal((await api.request('GET', '/v1/kv/l')).status, 404);
});
