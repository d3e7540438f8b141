// Query parameters, consistency modes and blocking queries (lib/query.ts), and what endpoint
// modules share (lib/endpoints.ts): Consul's 400 texts, the blocking rules of rpc.go
// blockingQuery, the leader hold of ForwardRPC, and Go's JSON decode errors.

import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { applyCommand, decodeJsonBody, queryResponse, type EndpointDeps } from '../lib/endpoints.js';
import { encodeCommand, Fsm, type Command } from '../lib/fsm.js';
import { HttpError, type HttpRequest } from '../lib/http.js';
import { kvsGet } from '../lib/kvs.js';
import { nullLogger } from '../lib/log.js';
import { blockingQuery, checkDatacenter, NOT_LEADER_PREFIX, parseQueryOptions, queryMetaHeaders, readQuery, type QueryContext, type QueryOptions, type QueryServer } from '../lib/query.js';
import { StateStore } from '../lib/state.js';
import { startApi } from './api-support.js';
import { waitFor } from './support.js';

// ---------------------------------------------------------------------------------------------
// Fixtures

function fakeRequest(queryText: string, options: { headers?: Record<string, string>; body?: string; token?: string; signal?: AbortSignal } = {}): HttpRequest {
  return {
    method: 'GET',
    path: '/v1/kv/a',
    param: 'a',
    query: new URLSearchParams(queryText),
    header: (name) => Object.entries(options.headers ?? {}).find(([candidate]) => candidate.toLowerCase() === name.toLowerCase())?.[1],
    body: Buffer.from(options.body ?? '', 'utf8'),
    token: options.token ?? '',
    remoteAddress: '127.0.0.1',
    signal: options.signal ?? new AbortController().signal,
  };
}

interface StubServer extends QueryServer {
  isLeader: boolean;
  leaderAddress: string;
  lastContactMs: number | undefined;
  readIndexCalls: number;
  readIndexError: Error | undefined;
  isReadyForReads: boolean;
}

function stubServer(fields: Partial<Pick<StubServer, 'isLeader' | 'leaderAddress' | 'lastContactMs' | 'isReadyForReads'>> = {}): StubServer {
  const server: StubServer = {
    isLeader: fields.isLeader ?? true,
    leaderAddress: fields.leaderAddress ?? '127.0.0.1:8300',
    lastContactMs: 'lastContactMs' in fields ? fields.lastContactMs : 0,
    readIndexCalls: 0,
    readIndexError: undefined,
    isReadyForReads: fields.isReadyForReads ?? true,
    leader: () => server.leaderAddress,
    readIndex: async () => {
      server.readIndexCalls++;
      if (server.readIndexError) throw server.readIndexError;
    },
  };
  return server;
}

function setup(server: QueryServer = stubServer(), overrides: Partial<QueryContext> = {}): { ctx: QueryContext; fsm: Fsm; state: StateStore; nextIndex: () => number } {
  const state = new StateStore({ nowMs: () => 0 });
  const fsm = new Fsm(state);
  const ctx: QueryContext = { state, server, rpcHoldTimeoutMs: 100, rng: () => 0.5, defaultQueryTimeMs: 300_000, maxQueryTimeMs: 600_000, ...overrides };
  let index = 0;
  return { ctx, fsm, state, nextIndex: () => ++index };
}

function setKey(fsm: Fsm, index: number, key: string, value: string): void {
  const result = fsm.apply(index, encodeCommand({ type: 'kvs', op: 'set', entry: { Key: key, Value: Buffer.from(value), Flags: 0n } }));
  assert.ok(result.ok);
}

function registerNode(fsm: Fsm, index: number, node: string): void {
  const result = fsm.apply(index, encodeCommand({ type: 'register', request: { Node: node, Address: '10.0.0.1' } }));
  assert.ok(result.ok, JSON.stringify(result));
}

const getKey = (key: string) => (txn: Parameters<typeof kvsGet>[0]) => kvsGet(txn, key);

function options(ctx: QueryContext, queryText: string): QueryOptions {
  return parseQueryOptions(ctx, fakeRequest(queryText));
}

/** Lets pending promise callbacks and the microtasks they queue run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function httpError(status: number, message: string): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof HttpError, `expected HttpError, got ${String(error)}`);
    assert.equal(error.message, message);
    assert.equal(error.status, status);
    return true;
  };
}

// ---------------------------------------------------------------------------------------------
// Parameters

describe('parseQueryOptions', () => {
  const { ctx } = setup();

  test('defaults: not blocking, default_query_time, default consistency', () => {
    assert.deepEqual(options(ctx, ''), { minQueryIndex: 0, maxQueryTimeMs: 300_000, consistency: 'default', maxStaleMs: 0, filter: '', token: '' });
  });

  test('reads index, wait, filter and the token', () => {
    const parsed = parseQueryOptions(ctx, fakeRequest('index=42&wait=1.5s&filter=Key%20%3D%3D%20%22a%22', { token: 'secret' }));
    assert.deepEqual(parsed, { minQueryIndex: 42, maxQueryTimeMs: 1500, consistency: 'default', maxStaleMs: 0, filter: 'Key == "a"', token: 'secret' });
  });

  test('wait is clamped to max_query_time, and zero or negative means default_query_time', () => {
    assert.equal(options(ctx, 'index=1&wait=1h').maxQueryTimeMs, 600_000);
    assert.equal(options(ctx, 'index=1&wait=-5s').maxQueryTimeMs, 300_000);
    assert.equal(options(ctx, 'index=1&wait=0').maxQueryTimeMs, 300_000);
    assert.equal(options(ctx, 'index=1&wait=').maxQueryTimeMs, 300_000);
    assert.equal(options(ctx, 'index=1&wait=120000ms').maxQueryTimeMs, 120_000);
  });

  test('consistency flags are presence-based; max_stale implies stale', () => {
    assert.equal(options(ctx, 'stale').consistency, 'stale');
    assert.equal(options(ctx, 'stale=false').consistency, 'stale');
    assert.equal(options(ctx, 'consistent').consistency, 'consistent');
    assert.equal(options(ctx, 'leader').consistency, 'default');
    assert.equal(options(ctx, 'leader&stale').consistency, 'stale');
    assert.deepEqual([options(ctx, 'max_stale=2s').consistency, options(ctx, 'max_stale=2s').maxStaleMs], ['stale', 2000]);
    assert.deepEqual([options(ctx, 'max_stale=0s').consistency, options(ctx, 'max_stale=0s').maxStaleMs], ['default', 0]);
    assert.equal(options(ctx, 'max_stale=-1s').consistency, 'default');
  });

  const refusals: [string, string, Record<string, string>?][] = [
    ['wait=abc', 'Invalid wait time'],
    ['wait=10', 'Invalid wait time'],
    ['index=abc', 'Invalid index'],
    ['index=-1', 'Invalid index'],
    ['index=%2B1', 'Invalid index'],
    ['index=1.5', 'Invalid index'],
    ['index=18446744073709551616', 'Invalid index'],
    ['stale&consistent', 'Cannot specify ?stale with ?consistent, conflicting semantics.'],
    ['max_stale=5s&consistent', 'Cannot specify ?stale with ?consistent, conflicting semantics.'],
    ['cached&consistent', 'Cannot specify ?cached with ?consistent, conflicting semantics.'],
    ['max_stale=soon', 'Invalid max_stale value "soon"'],
    ['max_stale=%22x%0A', 'Invalid max_stale value "\\"x\\n"'],
    // Consul checks consistency before Cache-Control, and ?wait before ?index.
    ['max_stale=x&wait=y&index=z', 'Invalid max_stale value "x"'],
    ['wait=y&index=z', 'Invalid wait time'],
    ['', 'Invalid Cache-Control header.', { 'cache-control': 'max-age=soon' }],
    ['wait=y', 'Invalid Cache-Control header.', { 'cache-control': 'no-cache, stale-if-error=1.5' }],
  ];
  for (const [queryText, message, headers] of refusals) {
    test(`?${queryText} ${headers ? JSON.stringify(headers) : ''} -> 400 ${message}`, () => {
      assert.throws(() => parseQueryOptions(ctx, fakeRequest(queryText, headers ? { headers } : {})), httpError(400, message));
    });
  }

  test('the largest uint64 index is accepted; valid Cache-Control passes', () => {
    assert.ok(options(ctx, 'index=18446744073709551615').minQueryIndex > Number.MAX_SAFE_INTEGER);
    assert.doesNotThrow(() => parseQueryOptions(ctx, fakeRequest('', { headers: { 'cache-control': 'max-age=30, must-revalidate, stale-if-error=-1' } })));
  });

  test('checkDatacenter: absent, empty or local is fine; any other is 500 No path to datacenter', () => {
    for (const queryText of ['', 'dc=', 'dc=dc1']) assert.doesNotThrow(() => checkDatacenter(fakeRequest(queryText), 'dc1'));
    assert.throws(() => checkDatacenter(fakeRequest('dc=dc2'), 'dc1'), httpError(500, 'No path to datacenter'));
  });
});

// ---------------------------------------------------------------------------------------------
// Blocking

describe('blockingQuery', () => {
  test('returns at once for index 0 and for an index below the result; never reports 0', async () => {
    const { ctx, fsm, nextIndex } = setup();
    const empty = await blockingQuery(ctx, options(ctx, ''), new AbortController().signal, getKey('a'));
    assert.deepEqual(empty.meta, { index: 1, lastContactMs: 0, knownLeader: true, consistencyLevel: 'leader' });
    assert.equal(queryMetaHeaders({ ...empty.meta, index: 0 })['X-Consul-Index'], '1');
    setKey(fsm, nextIndex(), 'a', 'one');
    setKey(fsm, nextIndex(), 'a', 'two');
    const result = await blockingQuery(ctx, options(ctx, 'index=1&wait=10m'), new AbortController().signal, getKey('a'));
    assert.equal(result.meta.index, 2);
    assert.equal(Buffer.from(result.value!.Value!).toString(), 'two');
  });

  test('wakes on a change to the watched key, not on another key or another table', async () => {
    const { ctx, fsm, nextIndex, state } = setup();
    setKey(fsm, nextIndex(), 'a', 'one');
    let settled = undefined as { index: number } | undefined;
    const pending = blockingQuery(ctx, options(ctx, 'index=1&wait=10m'), new AbortController().signal, getKey('a')).then((r) => (settled = r.meta));
    await settle();
    assert.equal(state.db.watcherCount(), 1);
    registerNode(fsm, nextIndex(), 'node-1');
    setKey(fsm, nextIndex(), 'b', 'other');
    await settle();
    assert.equal(settled, undefined, 'still parked after unrelated writes');
    assert.equal(state.db.watcherCount(), 1);
    setKey(fsm, nextIndex(), 'a', 'two');
    await pending;
    assert.equal((settled as { index: number } | undefined)?.index, 4);
    assert.equal(state.db.watcherCount(), 0);
  });

  test('times out with the current data after wait plus jitter, jitter below wait/16', async (t: TestContext) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    for (const [rng, jitterMs] of [[0, 0], [0.999, 9]] as const) {
      const { ctx, fsm, state } = setup(stubServer(), { rng: () => rng });
      setKey(fsm, 7, 'a', 'one');
      let settled = undefined as { index: number } | undefined;
      const pending = blockingQuery(ctx, options(ctx, 'index=7&wait=160ms'), new AbortController().signal, getKey('a')).then((r) => (settled = r.meta));
      await settle();
      t.mock.timers.tick(160 + jitterMs - 1);
      await settle();
      assert.equal(settled, undefined, `parked until ${160 + jitterMs} ms`);
      t.mock.timers.tick(1);
      await pending;
      assert.equal((settled as { index: number } | undefined)?.index, 7, 'the current data, unchanged');
      assert.equal(state.db.watcherCount(), 0);
    }
  });

  test('a long wait jitters in PARK_JITTER_STEPS steps, still below wait/16', async (t: TestContext) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    // wait=5m: jitter limit 18,750 ms, step ceil(18,750 / 64) = 293 ms; rng 0.999 -> 18,731 -> 63 steps.
    const expectedMs = 300_000 + 63 * 293;
    assert.ok(expectedMs - 300_000 < 300_000 / 16);
    const { ctx, fsm } = setup(stubServer(), { rng: () => 0.999 });
    setKey(fsm, 7, 'a', 'one');
    let settled = false;
    const pending = blockingQuery(ctx, options(ctx, 'index=7&wait=5m'), new AbortController().signal, getKey('a')).then(() => (settled = true));
    await settle();
    t.mock.timers.tick(expectedMs - 1);
    await settle();
    assert.equal(settled, false);
    t.mock.timers.tick(1);
    await pending;
  });

  test('a real short wait returns 200-style data after about the wait', async () => {
    const { ctx, fsm } = setup(stubServer(), { rng: () => 0.999 });
    setKey(fsm, 3, 'a', 'one');
    const started = performance.now();
    const result = await blockingQuery(ctx, options(ctx, 'index=3&wait=50ms'), new AbortController().signal, getKey('a'));
    const elapsedMs = performance.now() - started;
    assert.equal(result.meta.index, 3);
    assert.ok(elapsedMs >= 49, `waited ${elapsedMs} ms`);
    assert.ok(elapsedMs < 2_000, `waited ${elapsedMs} ms`);
  });

  test('an index that goes back while parked (snapshot restore) answers at once', async () => {
    const { ctx, fsm, state } = setup();
    setKey(fsm, 5, 'a', 'one');
    const pending = blockingQuery(ctx, options(ctx, 'index=5&wait=10m'), new AbortController().signal, getKey('a'));
    await settle();
    state.db.restoreTxn().commit();
    const result = await pending;
    assert.equal(result.meta.index, 1);
    assert.equal(result.value, undefined);
  });

  test('abort releases a parked query and leaves no watcher', async () => {
    const { ctx, fsm, state } = setup();
    setKey(fsm, 1, 'a', 'one');
    const controller = new AbortController();
    const pending = blockingQuery(ctx, options(ctx, 'index=1&wait=10m'), controller.signal, getKey('a'));
    await settle();
    assert.equal(state.db.watcherCount(), 1);
    controller.abort(new Error('client went away'));
    await assert.rejects(pending, /client went away/);
    assert.equal(state.db.watcherCount(), 0);
    await assert.rejects(blockingQuery(ctx, options(ctx, 'index=1'), controller.signal, getKey('a')), /client went away/);
  });

  test('10,000 parked queries on one key are all released by one write', async (t: TestContext) => {
    const { ctx, fsm, state } = setup();
    setKey(fsm, 1, 'hot', 'one');
    const opts = options(ctx, 'index=1&wait=10m');
    const heapBefore = process.memoryUsage().heapUsed;
    const pending: Promise<{ meta: { index: number } }>[] = [];
    for (let i = 0; i < 10_000; i++) pending.push(blockingQuery(ctx, opts, new AbortController().signal, getKey('hot')));
    await settle();
    assert.equal(state.db.watcherCount(), 10_000);
    const heapDeltaMb = (process.memoryUsage().heapUsed - heapBefore) / 1e6;
    const started = performance.now();
    setKey(fsm, 2, 'hot', 'two');
    const results = await Promise.all(pending);
    const elapsedMs = performance.now() - started;
    assert.ok(results.every((r) => r.meta.index === 2));
    assert.equal(state.db.watcherCount(), 0);
    assert.ok(elapsedMs < 3_000, `released in ${elapsedMs} ms`);
    assert.ok(heapDeltaMb < 200, `parked heap ${heapDeltaMb} MB`);
    t.diagnostic(`10k parked: heap +${heapDeltaMb.toFixed(1)} MB, released in ${elapsedMs.toFixed(0)} ms`);
  });

  test('a write answers parked queries after its own turn, not inside the commit', async () => {
    const { ctx, fsm, state } = setup();
    setKey(fsm, 1, 'a', 'one');
    let answered = 0;
    const pending = [1, 2, 3].map(() => blockingQuery(ctx, options(ctx, 'index=1&wait=10m'), new AbortController().signal, getKey('a')).then((r) => (answered++, r)));
    await settle();
    setKey(fsm, 2, 'a', 'two');
    assert.equal(state.db.watcherCount(), 0, 'the commit released the watchers at once');
    // The writer answers from promise callbacks after its commit: none of the woken queries may
    // run before them.
    for (let i = 0; i < 20; i++) await Promise.resolve();
    assert.equal(answered, 0, 'no parked query answered in the writer\'s microtasks');
    const results = await Promise.all(pending);
    assert.deepEqual(results.map((r) => r.meta.index), [2, 2, 2]);
  });

  test('a query woken and aborted in the same turn rejects with the abort, and the late wake is ignored', async () => {
    const { ctx, fsm, state } = setup();
    setKey(fsm, 1, 'a', 'one');
    const controller = new AbortController();
    const pending = blockingQuery(ctx, options(ctx, 'index=1&wait=10m'), controller.signal, getKey('a'));
    await settle();
    setKey(fsm, 2, 'a', 'two');
    controller.abort(new Error('client went away'));
    await assert.rejects(pending, /client went away/);
    await settle();
    assert.equal(state.db.watcherCount(), 0);
  });
});

// ---------------------------------------------------------------------------------------------
// Consistency

describe('consistency modes', () => {
  test('stale is served by a follower without a leader, with its LastContact', async () => {
    const server = stubServer({ isLeader: false, leaderAddress: '', lastContactMs: 1500 });
    const { ctx } = setup(server);
    const result = await readQuery(ctx, options(ctx, 'stale'), getKey('a'));
    assert.deepEqual(result.meta, { index: 1, lastContactMs: 1500, knownLeader: false, consistencyLevel: 'stale' });
    assert.deepEqual(queryMetaHeaders(result.meta), { 'X-Consul-Index': '1', 'X-Consul-KnownLeader': 'false', 'X-Consul-LastContact': '1500', 'X-Consul-Effective-Consistency': 'stale' });
  });

  test('default with no leader: 500 No cluster leader after rpc_hold_timeout', async () => {
    const { ctx } = setup(stubServer({ isLeader: false, leaderAddress: '', lastContactMs: undefined }), { rpcHoldTimeoutMs: 80 });
    const started = performance.now();
    await assert.rejects(readQuery(ctx, options(ctx, ''), getKey('a')), httpError(500, 'No cluster leader'));
    assert.ok(performance.now() - started >= 79);
    // A server that never heard from a leader cannot serve stale reads either (Consul's rule).
    await assert.rejects(readQuery(ctx, options(ctx, 'stale'), getKey('a')), httpError(500, 'No cluster leader'));
  });

  test('default waits for a leader elected within rpc_hold_timeout', async () => {
    const server = stubServer({ isLeader: false, leaderAddress: '' });
    const { ctx } = setup(server, { rpcHoldTimeoutMs: 5_000 });
    setTimeout(() => (server.isLeader = true), 30);
    const result = await readQuery(ctx, options(ctx, ''), getKey('a'));
    assert.equal(result.meta.consistencyLevel, 'leader');
  });

  test('max_stale: served stale when contact is recent enough, redone in default mode when not', async () => {
    const server = stubServer({ isLeader: false, leaderAddress: '', lastContactMs: 5_000 });
    const { ctx } = setup(server, { rpcHoldTimeoutMs: 50 });
    assert.equal((await readQuery(ctx, options(ctx, 'max_stale=10s'), getKey('a'))).meta.consistencyLevel, 'stale');
    await assert.rejects(readQuery(ctx, options(ctx, 'max_stale=1s'), getKey('a')), httpError(500, 'No cluster leader'));
  });

  test('default: a leader that has not applied an entry of its term yet waits for a barrier first', async () => {
    const server = stubServer({ isReadyForReads: false });
    const { ctx, fsm } = setup(server);
    setKey(fsm, 1, 'a', 'one');
    const result = await readQuery(ctx, options(ctx, ''), getKey('a'));
    assert.equal(server.readIndexCalls, 1);
    assert.equal(result.meta.consistencyLevel, 'leader');
    server.isReadyForReads = true;
    await readQuery(ctx, options(ctx, ''), getKey('a'));
    assert.equal(server.readIndexCalls, 1, 'a ready leader answers default reads without a round');
  });

  test('consistent runs a ReadIndex round before every run', async () => {
    const server = stubServer();
    const { ctx, fsm } = setup(server);
    setKey(fsm, 1, 'a', 'one');
    const pending = blockingQuery(ctx, options(ctx, 'consistent&index=1&wait=10m'), new AbortController().signal, getKey('a'));
    await settle();
    assert.equal(server.readIndexCalls, 1);
    setKey(fsm, 2, 'a', 'two');
    const result = await pending;
    assert.equal(server.readIndexCalls, 2);
    assert.equal(result.meta.consistencyLevel, 'consistent');
  });

  test('consistent: a lost leadership or a follower is refused with Consul-style texts', async () => {
    const server = stubServer();
    const { ctx } = setup(server);
    server.readIndexError = Object.assign(new Error('not leader'), { code: 'ERR_NOT_LEADER', leaderAddress: '' });
    await assert.rejects(readQuery(ctx, options(ctx, 'consistent'), getKey('a')), httpError(500, 'No cluster leader'));
    server.isLeader = false;
    server.leaderAddress = '10.0.0.9:8300';
    await assert.rejects(readQuery(ctx, options(ctx, 'consistent'), getKey('a')), httpError(500, `${NOT_LEADER_PREFIX}10.0.0.9:8300`));
    // A follower serves default reads from its own state until forwarding exists, and says so.
    server.lastContactMs = 40;
    assert.deepEqual((await readQuery(ctx, options(ctx, ''), getKey('a'))).meta, { index: 1, lastContactMs: 40, knownLeader: true, consistencyLevel: 'stale' });
  });
});

// ---------------------------------------------------------------------------------------------
// Endpoint helpers

describe('decodeJsonBody', () => {
  test('empty or blank bodies are undefined; the first value is returned and the rest ignored', () => {
    assert.equal(decodeJsonBody(fakeRequest('', { body: '' })), undefined);
    assert.equal(decodeJsonBody(fakeRequest('', { body: ' \n\t' })), undefined);
    assert.deepEqual(decodeJsonBody(fakeRequest('', { body: '{"a":[1,2,{"b":null}]} trailing junk' })), { a: [1, 2, { b: null }] });
    assert.equal(decodeJsonBody(fakeRequest('', { body: '"x\\u00e9\\ud83d\\ude00"' })), 'x\u00e9\u{1f600}');
    assert.equal(decodeJsonBody(fakeRequest('', { body: '"\\ud800"' })), '\ufffd');
    assert.equal(decodeJsonBody(fakeRequest('', { body: '3304740253564472344' })), 3304740253564472344n);
    assert.equal(decodeJsonBody(fakeRequest('', { body: '-1.5e3' })), -1500);
    const polluted = decodeJsonBody(fakeRequest('', { body: '{"__proto__":{"x":1}}' })) as Record<string, unknown>;
    assert.equal(({} as Record<string, unknown>)['x'], undefined);
    assert.deepEqual(Object.keys(polluted), ['__proto__']);
  });

  const failures: [string, string][] = [
    ['{', 'unexpected EOF'],
    ['{"a":', 'unexpected EOF'],
    ['tru', 'unexpected EOF'],
    ['-', 'unexpected EOF'],
    ['x', "invalid character 'x' looking for beginning of value"],
    ['{a}', "invalid character 'a' looking for beginning of object key string"],
    ['{"a" 1}', "invalid character '1' after object key"],
    ['{"a":1 "b":2}', `invalid character '"' after object key:value pair`],
    ['{"a":1,}', "invalid character '}' looking for beginning of object key string"],
    ['[1 2]', "invalid character '2' after array element"],
    ['[1,]', "invalid character ']' looking for beginning of value"],
    ['[01]', "invalid character '1' after array element"],
    ['[1.]', "invalid character ']' after decimal point in numeric literal"],
    ['[1e]', "invalid character ']' in exponent of numeric literal"],
    ['[-a]', "invalid character 'a' in numeric literal"],
    ['nul!', "invalid character '!' in literal null (expecting 'l')"],
    ['"a\nb"', "invalid character '\\n' in string literal"],
    ['"\\x"', "invalid character 'x' in string escape code"],
    ['"\\u12g4"', "invalid character 'g' in \\u hexadecimal character escape"],
    ["{'a':1}", "invalid character '\\'' looking for beginning of object key string"],
    ['\ufeff{}', "invalid character 'ï' looking for beginning of value"],
    ['['.repeat(10_001), 'exceeded max depth'],
  ];
  for (const [body, reason] of failures) {
    test(`${JSON.stringify(body.slice(0, 20))} -> 400 Request decode failed: ${reason}`, () => {
      assert.throws(() => decodeJsonBody(fakeRequest('', { body })), httpError(400, `Request decode failed: ${reason}`));
    });
  }
});

describe('applyCommand and queryResponse', () => {
  const command: Command = { type: 'kvs', op: 'set', entry: { Key: 'a', Value: Buffer.from('v'), Flags: 0n } };

  function deps(server: QueryServer, apply: EndpointDeps['apply'], rpcHoldTimeoutMs = 60): EndpointDeps {
    const { ctx } = setup(server, { rpcHoldTimeoutMs });
    return { query: ctx, apply, config: {} as EndpointDeps['config'], logger: nullLogger(), nowMs: () => 0 };
  }

  test('maps no leader, a known other leader, Raft errors and FSM refusals to Consul texts', async () => {
    const never = async (): Promise<never> => assert.fail('must not apply');
    await assert.rejects(applyCommand(deps(stubServer({ isLeader: false, leaderAddress: '' }), never), command), httpError(500, 'No cluster leader'));
    await assert.rejects(applyCommand(deps(stubServer({ isLeader: false, leaderAddress: '10.0.0.2:8300' }), never), command), httpError(500, `${NOT_LEADER_PREFIX}10.0.0.2:8300`));
    const lost = async (): Promise<never> => {
      throw Object.assign(new Error('lost'), { code: 'ERR_LEADERSHIP_LOST' });
    };
    await assert.rejects(applyCommand(deps(stubServer(), lost), command), httpError(500, 'leadership lost while committing log'));
    const refused = deps(stubServer(), async () => ({ ok: false, error: Object.assign(new Error('Permission denied'), { code: 'X' }) as never }));
    await assert.rejects(applyCommand(refused, command), httpError(403, 'Permission denied'));
    const invalid = deps(stubServer(), async () => ({ ok: false, error: Object.assign(new Error('Invalid session'), { code: 'X' }) as never }));
    await assert.rejects(applyCommand(invalid, command), httpError(500, 'Invalid session'));
    assert.equal(await applyCommand(deps(stubServer(), async () => ({ ok: true, value: true })), command), true);
  });

  test('a proposal refused for lost leadership with no new leader is held and retried', async () => {
    const server = stubServer();
    let attempts = 0;
    const apply: EndpointDeps['apply'] = async () => {
      attempts++;
      if (attempts === 1) {
        server.isLeader = false;
        server.leaderAddress = '';
        setTimeout(() => (server.isLeader = true), 20);
        throw Object.assign(new Error('not leader'), { code: 'ERR_NOT_LEADER', leaderAddress: '' });
      }
      return { ok: true, value: 'done' };
    };
    assert.equal(await applyCommand(deps(server, apply, 5_000), command), 'done');
    assert.equal(attempts, 2);
  });

  test('queryResponse carries the value and the meta headers', () => {
    const response = queryResponse({ value: [1], meta: { index: 9, lastContactMs: 0, knownLeader: true, consistencyLevel: 'leader' } }, 404);
    assert.deepEqual(response, {
      status: 404,
      json: [1],
      headers: { 'X-Consul-Index': '9', 'X-Consul-KnownLeader': 'true', 'X-Consul-LastContact': '0', 'X-Consul-Effective-Consistency': 'leader' },
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Through HTTP (test/api-support.ts)

describe('over HTTP with startApi', () => {
  test('a blocking GET wakes on a PUT through Raft; errors are plain text', async (t) => {
    const api = await startApi(t, (deps) => [
      {
        path: '/v1/test/kv/',
        methods: ['GET', 'PUT'],
        handler: async (request) => {
          if (request.method === 'PUT') {
            const body = decodeJsonBody(request) as { Value?: string } | undefined;
            const value = await applyCommand(deps, { type: 'kvs', op: 'set', entry: { Key: request.param, Value: Buffer.from(body?.Value ?? ''), Flags: 0n } });
            return { json: value };
          }
          checkDatacenter(request, deps.config.datacenter);
          const opts = parseQueryOptions(deps.query, request);
          const { value, meta } = await blockingQuery(deps.query, opts, request.signal, getKey(request.param));
          return queryResponse({ value: value?.Value ? Buffer.from(value.Value).toString() : null, meta });
        },
      },
    ]);
    const first = await api.request('GET', '/v1/test/kv/k');
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-consul-knownleader'], 'true');
    assert.equal(first.headers['x-consul-lastcontact'], '0');
    assert.equal(first.headers['x-consul-effective-consistency'], 'leader');
    const index = Number(first.headers['x-consul-index']);
    assert.ok(index >= 1);
    const parked = api.request('GET', `/v1/test/kv/k?index=${index}&wait=30s`);
    await waitFor('the GET to park', () => (api.state.db.watcherCount() === 1 ? true : undefined));
    const put = await api.request('PUT', '/v1/test/kv/k', '{"Value":"hello"}');
    assert.equal(put.status, 200);
    assert.equal(put.body, 'true');
    const woke = await parked;
    assert.equal(woke.status, 200);
    assert.ok(Number(woke.headers['x-consul-index']) > index);
    assert.equal(woke.json(), 'hello');
    const bad = await api.request('GET', '/v1/test/kv/k?wait=soon');
    assert.deepEqual([bad.status, bad.body], [400, 'Invalid wait time']);
    const badBody = await api.request('PUT', '/v1/test/kv/k', '{"Value":');
    assert.deepEqual([badBody.status, badBody.body], [400, 'Request decode failed: unexpected EOF']);
    const dc = await api.request('GET', '/v1/test/kv/k?dc=elsewhere');
    assert.deepEqual([dc.status, dc.body], [500, 'No path to datacenter']);
  });
});
