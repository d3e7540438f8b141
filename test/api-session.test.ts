// /v1/session/* against the spec (§3.5, §8.6, §8.7, §9.4, §9.9) on a real single-server Raft, and
// the leader's TTL timers (lib/sessionttl.ts) driven by a fake clock.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { EndpointDeps } from '../lib/endpoints.js';
import { kvRoutes } from '../lib/endpoints_kv.js';
import { sessionRoutes } from '../lib/endpoints_session.js';
import type { HttpRoute } from '../lib/http.js';
import { SESSION_INVALIDATE_ATTEMPTS_MAX, SessionTimers, type TimerClock } from '../lib/sessionttl.js';
import { startApi, type TestApi } from './api-support.js';
import { waitFor } from './support.js';

/** Timers that fire only when the test says so. */
class FakeClock implements TimerClock {
  private nextHandle = 1;
  readonly pending = new Map<number, { callback: () => void; delayMs: number }>();

  setTimeout(callback: () => void, delayMs: number): unknown {
    const handle = this.nextHandle++;
    this.pending.set(handle, { callback, delayMs });
    return handle;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** Fires every pending timer (those they arm stay pending). */
  fireAll(): void {
    const due = [...this.pending.entries()];
    for (const [handle, { callback }] of due) {
      this.pending.delete(handle);
      callback();
    }
  }

  delays(): number[] {
    return [...this.pending.values()].map((timer) => timer.delayMs);
  }
}

async function start(t: TestContext, timers = new SessionTimers()): Promise<TestApi> {
  const routes = (deps: EndpointDeps): HttpRoute[] => [...kvRoutes(deps), ...sessionRoutes(deps, timers)];
  return startApi(t, routes, { config: { devMode: false, nodeName: 'node1' } });
}

async function registerNode(api: TestApi, node = 'node1', checkStatus: 'passing' | 'critical' = 'passing'): Promise<void> {
  const result = await api.deps.apply({
    type: 'register',
    request: { Node: node, Address: '127.0.0.1', Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: checkStatus } },
  });
  assert.ok(result.ok, 'node registration applies');
}

async function create(api: TestApi, body?: string): Promise<string> {
  const reply = await api.request('PUT', '/v1/session/create', body);
  assert.equal(reply.status, 200, reply.body);
  const parsed = reply.json() as { ID: string };
  assert.deepEqual(Object.keys(parsed), ['ID']);
  assert.match(parsed.ID, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  return parsed.ID;
}

function header(reply: { headers: Record<string, string | string[] | undefined> }, name: string): string {
  const value = reply.headers[name.toLowerCase()];
  return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
}

test('create with an empty body takes every default; info shows Consul JSON shape', async (t) => {
  const api = await start(t);
  await registerNode(api);
  const id = await create(api);
  const info = await api.request('GET', `/v1/session/info/${id}`);
  assert.equal(info.status, 200);
  assert.ok(Number(header(info, 'x-consul-index')) >= 1);
  const [session] = info.json() as Record<string, unknown>[];
  assert.ok(session);
  assert.deepEqual(Object.keys(session), ['ID', 'Name', 'Node', 'LockDelay', 'Behavior', 'TTL', 'NodeChecks', 'ServiceChecks', 'CreateIndex', 'ModifyIndex']);
  assert.deepEqual({ ...session, CreateIndex: 0, ModifyIndex: 0 }, {
    ID: id, Name: '', Node: 'node1', LockDelay: 15_000_000_000, Behavior: 'release', TTL: '', NodeChecks: ['serfHealth'], ServiceChecks: null, CreateIndex: 0, ModifyIndex: 0,
  });
});

test('create decodes keys case-insensitively; LockDelay numbers below 1000 are seconds; checks may be emptied', async (t) => {
  const api = await start(t);
  await registerNode(api);
  const id = await create(api, JSON.stringify({ name: 'web-lock', lockdelay: 5, behavior: 'delete', ttl: '30s', Checks: [] }));
  const [session] = (await api.request('GET', `/v1/session/info/${id}`)).json() as Record<string, unknown>[];
  assert.equal(session?.['Name'], 'web-lock');
  assert.equal(session?.['LockDelay'], 5_000_000_000);
  assert.equal(session?.['Behavior'], 'delete');
  assert.equal(session?.['TTL'], '30s');
  assert.equal(session?.['NodeChecks'], null);
  const id2 = await create(api, JSON.stringify({ LockDelay: '250ms', NodeChecks: ['serfHealth'] }));
  const [second] = (await api.request('GET', `/v1/session/info/${id2}`)).json() as Record<string, unknown>[];
  assert.equal(second?.['LockDelay'], 250_000_000);
});

test('create refuses with Consul status and text, and stores nothing', async (t) => {
  const api = await start(t);
  const noNode = await api.request('PUT', '/v1/session/create', '');
  assert.equal(noNode.status, 500);
  assert.equal(noNode.body, 'Missing node registration');
  await registerNode(api);
  await registerNode(api, 'sick', 'critical');
  const cases: [string, number, string][] = [
    ['{"TTL":"5s"}', 500, "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"],
    ['{"TTL":"25h"}', 500, "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]"],
    ['{"TTL":"abc"}', 500, 'Session TTL \'abc\' invalid: time: invalid duration "abc"'],
    ['{"Behavior":"bogus"}', 500, "Invalid Behavior setting 'bogus'"],
    ['{"Node":"ghost"}', 500, 'Missing node registration'],
    ['{"NodeChecks":["nope"]}', 500, "Missing check 'nope' registration"],
    ['{"Node":"sick"}', 500, "Check 'serfHealth' is in critical state"],
    ['{"Name":', 400, 'Request decode failed: unexpected EOF'],
    ['not json', 400, "Request decode failed: invalid character 'o' in literal null (expecting 'u')"],
    ['{"Name":5}', 400, "Request decode failed: 1 error(s) decoding:\n\n* 'Name' expected type 'string', got unconvertible type 'float64', value: '5'"],
    ['{"LockDelay":"soon"}', 400, 'Request decode failed: time: invalid duration "soon"'],
    ['[1]', 400, "Request decode failed: '' expected a map, got 'slice'"],
  ];
  for (const [body, status, text] of cases) {
    const reply = await api.request('PUT', '/v1/session/create', body);
    assert.equal(reply.status, status, body);
    assert.equal(reply.body, text, body);
  }
  assert.deepEqual((await api.request('GET', '/v1/session/list')).json(), []);
});

test('info on an unknown id is [] with 200; list and node list sessions; missing parameters are 400', async (t) => {
  const api = await start(t);
  await registerNode(api);
  await registerNode(api, 'node2');
  const unknown = await api.request('GET', '/v1/session/info/00000000-0000-0000-0000-000000000000');
  assert.equal(unknown.status, 200);
  assert.equal(unknown.body, '[]');
  assert.ok(Number(header(unknown, 'x-consul-index')) >= 1);
  const a = await create(api);
  const b = await create(api, JSON.stringify({ Node: 'node2' }));
  const list = (await api.request('GET', '/v1/session/list')).json() as { ID: string }[];
  assert.deepEqual(list.map((session) => session.ID).sort(), [a, b].sort());
  const onNode2 = (await api.request('GET', '/v1/session/node/node2')).json() as { ID: string }[];
  assert.deepEqual(onNode2.map((session) => session.ID), [b]);
  assert.equal((await api.request('GET', '/v1/session/node/none')).body, '[]');
  for (const [path, method, text] of [
    ['/v1/session/info/', 'GET', 'Missing session'],
    ['/v1/session/node/', 'GET', 'Missing node name'],
    ['/v1/session/destroy/', 'PUT', 'Missing session'],
    ['/v1/session/renew/', 'PUT', 'Missing session'],
  ] as const) {
    const reply = await api.request(method, path);
    assert.equal(reply.status, 400, path);
    assert.equal(reply.body, text, path);
  }
  assert.equal((await api.request('POST', '/v1/session/create')).status, 405);
  assert.equal((await api.request('GET', '/v1/session/destroy/x')).status, 405);
  assert.equal((await api.request('GET', '/v1/session/list?index=nope')).body, 'Invalid index');
});

test('destroy is idempotent true; renew answers the session, or 404 with Consul text once gone', async (t) => {
  const api = await start(t);
  await registerNode(api);
  const id = await create(api, JSON.stringify({ TTL: '10s' }));
  const renew = await api.request('PUT', `/v1/session/renew/${id}`);
  assert.equal(renew.status, 200);
  assert.equal((renew.json() as { ID: string }[])[0]?.ID, id);
  assert.equal(header(renew, 'x-consul-index'), '');
  assert.equal((await api.request('PUT', `/v1/session/destroy/${id}`)).body, 'true');
  assert.equal((await api.request('PUT', `/v1/session/destroy/${id}`)).body, 'true');
  assert.equal((await api.request('GET', `/v1/session/info/${id}`)).body, '[]');
  const gone = await api.request('PUT', `/v1/session/renew/${id}`);
  assert.equal(gone.status, 404);
  assert.equal(gone.body, `Session id '${id}' not found`);
});

test('a blocking session list is woken by a create', async (t) => {
  const api = await start(t);
  await registerNode(api);
  const first = await api.request('GET', '/v1/session/list');
  const blocked = api.request('GET', `/v1/session/list?index=${header(first, 'x-consul-index')}&wait=30s`);
  const id = await create(api);
  const woken = await blocked;
  assert.deepEqual((woken.json() as { ID: string }[]).map((session) => session.ID), [id]);
  assert.ok(Number(header(woken, 'x-consul-index')) > Number(header(first, 'x-consul-index')));
});

test('TTL timers: armed at TTL x 2 on create, reset on renew, expiry destroys the session and releases its locks', async (t) => {
  const clock = new FakeClock();
  const timers = new SessionTimers({ clock });
  const api = await start(t, timers);
  timers.start(api.deps);
  t.after(() => timers.stop());
  await registerNode(api);
  const plain = await create(api);
  assert.equal(timers.has(plain), false);
  const id = await create(api, JSON.stringify({ TTL: '10s', LockDelay: '0s' }));
  assert.deepEqual(clock.delays(), [20_000]);
  assert.equal((await api.request('PUT', `/v1/kv/held?acquire=${id}`, 'x')).body, 'true');
  await api.request('PUT', `/v1/session/renew/${id}`);
  assert.deepEqual(clock.delays(), [20_000], 'renew replaces the timer');
  clock.fireAll();
  await waitFor('the expired session to be destroyed', async () => ((await api.request('GET', `/v1/session/info/${id}`)).body === '[]' ? true : undefined));
  assert.equal(timers.size, 0);
  const [entry] = (await api.request('GET', '/v1/kv/held')).json() as { Session?: string }[];
  assert.equal(entry?.Session, undefined);
  assert.equal((await api.request('GET', `/v1/session/info/${plain}`)).status, 200);
  assert.equal(((await api.request('GET', `/v1/session/info/${plain}`)).json() as unknown[]).length, 1);
});

test('TTL timers: start() re-arms every TTL session from state, stop() drops them, stale callbacks do nothing', async (t) => {
  const clock = new FakeClock();
  const timers = new SessionTimers({ clock });
  const api = await start(t, timers);
  await registerNode(api);
  // Not started (not leader): creating arms nothing.
  const id = await create(api, JSON.stringify({ TTL: '15s' }));
  await create(api);
  assert.equal(timers.size, 0);
  timers.start(api.deps);
  assert.deepEqual(clock.delays(), [30_000]);
  const callbacks = [...clock.pending.values()].map((timer) => timer.callback);
  timers.stop();
  assert.equal(timers.size, 0);
  assert.equal(clock.pending.size, 0);
  // A timer from the earlier epoch fires late: nothing happens.
  for (const callback of callbacks) callback();
  timers.start(api.deps);
  t.after(() => timers.stop());
  assert.equal(((await api.request('GET', `/v1/session/info/${id}`)).json() as unknown[]).length, 1);
  // Destroying clears the timer.
  await api.request('PUT', `/v1/session/destroy/${id}`);
  assert.equal(timers.size, 0);
});

test('TTL timers: a failed destroy is retried with backoff, at most the attempt limit', async (t) => {
  const clock = new FakeClock();
  const timers = new SessionTimers({ clock, retryBaseMs: 100 });
  const api = await start(t, timers);
  await registerNode(api);
  const id = await create(api, JSON.stringify({ TTL: '10s' }));
  let attempts = 0;
  const failing: EndpointDeps = {
    ...api.deps,
    apply: () => {
      attempts++;
      return Promise.reject(Object.assign(new Error('boom'), { code: 'ERR_SHUTDOWN' }));
    },
  };
  timers.start(failing);
  t.after(() => timers.stop());
  for (let attempt = 1; attempt <= SESSION_INVALIDATE_ATTEMPTS_MAX; attempt++) {
    clock.fireAll();
    await waitFor(`attempt ${attempt}`, () => (attempts >= attempt && (attempt === SESSION_INVALIDATE_ATTEMPTS_MAX || clock.pending.size === 1) ? true : undefined));
    if (attempt < SESSION_INVALIDATE_ATTEMPTS_MAX) assert.deepEqual(clock.delays(), [100 * attempt]);
  }
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(clock.pending.size, 0, 'gives up after the last attempt');
  assert.equal(attempts, SESSION_INVALIDATE_ATTEMPTS_MAX);
  assert.equal(((await api.request('GET', `/v1/session/info/${id}`)).json() as unknown[]).length, 1);
});

test('the leader serves forwarded Session.Apply and Session.Renew; bad wire arguments are errors, not crashes', async (t) => {
  const timers = new SessionTimers();
  const api = await start(t, timers);
  await registerNode(api);
  const { sessionRpcMethods } = await import('../lib/endpoints_session.js');
  const methods = sessionRpcMethods(api.deps, timers);
  const apply = methods.get('Session.Apply')!;
  const renew = methods.get('Session.Renew')!;
  const context = { remoteAddress: '127.0.0.9:1' };
  const id = await apply({ Datacenter: 'dc1', Op: 'create', Session: { Name: 'fwd', Node: 'node1', NodeChecks: ['serfHealth'], ServiceChecks: null, LockDelay: 15_000_000_000, Behavior: 'release', TTL: '20s' } }, context);
  assert.equal(typeof id, 'string');
  const renewed = (await renew({ Datacenter: 'dc1', SessionID: id as string }, context)) as { Index: number; Sessions: { ID: string; TTL: string }[] };
  assert.deepEqual(renewed.Sessions.map((s) => [s.ID, s.TTL]), [[id, '20s']]);
  assert.deepEqual(((await renew({ SessionID: 'nope' }, context)) as { Sessions: unknown[] }).Sessions, []);
  assert.equal(await apply({ Op: 'destroy', Session: { ID: id as string } }, context), id);
  const bad: [unknown, RegExp][] = [
    ['not a map', /SessionRequest must be a map/],
    [{ Op: 'explode' }, /Invalid session operation 'explode'/],
    [{ Op: 'create', Session: { Name: 5 } }, /Name must be a string/],
    [{ Op: 'create', Session: { NodeChecks: [1] } }, /Session.NodeChecks must be a list of strings/],
    [{ Op: 'create', Datacenter: 'dc9', Session: {} }, /No path to datacenter/],
    [{ Op: 'create', Session: { Node: 'ghost', TTL: '20s' } }, /Missing node registration|Failed to lookup node|node/i],
  ];
  for (const [args, message] of bad) await assert.rejects(Promise.resolve().then(() => apply(args as never, context)), message);
  await assert.rejects(Promise.resolve().then(() => renew(42 as never, context)), /SessionSpecificRequest must be a map/);
});
