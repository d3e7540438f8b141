// lib/dnscatalog.ts: the DNS interface's catalog reads on a server, through the query path.
// Stale reads within max_stale are answered (and remembered until the next commit); beyond it
// they are read again without stale and not remembered; other datacenters have no path
// (NXDOMAIN), and a client agent reaches no server (SERVFAIL).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig, NODE_HOST } from '../lib/config.js';
import { DnsLookupError } from '../lib/dns.js';
import { localDnsCatalog, unreachableDnsCatalog } from '../lib/dnscatalog.js';
import type { EndpointDeps } from '../lib/endpoints.js';
import { encodeCommand, Fsm } from '../lib/fsm.js';
import { nullLogger } from '../lib/log.js';
import type { QueryServer } from '../lib/query.js';
import { StateStore } from '../lib/state.js';

const config = loadConfig(['-dev'], { ...NODE_HOST, hostname: () => 'dnscatalog-test' }).config;

function setup(server: Partial<QueryServer>) {
  const state = new StateStore({ nowMs: () => 0 });
  const fsm = new Fsm(state);
  const fullServer: QueryServer = { isLeader: false, leader: () => '10.0.0.9:8300', lastContactMs: 0, readIndex: () => Promise.resolve(), isReadyForReads: true, ...server };
  const deps: EndpointDeps = {
    query: { state, server: fullServer, rpcHoldTimeoutMs: 100, rng: () => 0.5, defaultQueryTimeMs: 300_000, maxQueryTimeMs: 600_000 },
    apply: () => Promise.reject(new Error('no writes here')),
    config,
    logger: nullLogger(),
    nowMs: () => 0,
  };
  let index = 0;
  const register = (node: string): void => {
    const result = fsm.apply(++index, encodeCommand({ type: 'register', request: { Node: node, Address: '10.0.0.1', Service: { Service: 'web', Port: 80 } } }));
    assert.ok(result.ok, JSON.stringify(result));
  };
  return { catalog: localDnsCatalog(deps), register };
}

const request = { datacenter: 'dc1', allowStale: true, maxStaleMs: 1_000, service: 'web', tag: '' };

async function failureCode(run: () => unknown): Promise<string> {
  try {
    await run();
  } catch (error) {
    assert.ok(error instanceof DnsLookupError, String(error));
    return error.code;
  }
  return 'none';
}

describe('DNS catalog reads', () => {
  it('answers a stale read on a follower within max_stale, and remembers it until the next commit', async () => {
    const { catalog, register } = setup({ lastContactMs: 200 });
    register('a');
    const first = await catalog.serviceNodes(request);
    assert.deepEqual(first.map((instance) => instance.Node.Node), ['a']);
    assert.equal(await catalog.serviceNodes(request), first, 'the same answer, from memory');
    register('b');
    const second = await catalog.serviceNodes(request);
    assert.notEqual(second, first);
    assert.deepEqual(second.map((instance) => instance.Node.Node), ['a', 'b']);
  });

  it('reads again as a default read beyond max_stale, and does not remember that answer', async () => {
    // The default read goes to the leader in Consul; a follower without RPC forwarding (issue 9)
    // answers it from its own state, as the HTTP API does.
    const { catalog, register } = setup({ lastContactMs: 5_000 });
    register('a');
    const first = await catalog.serviceNodes(request);
    assert.deepEqual(first.map((instance) => instance.Node.Node), ['a']);
    assert.notEqual(await catalog.serviceNodes(request), first);
  });

  it('does not remember what was read without allow_stale', async () => {
    const { catalog, register } = setup({ isLeader: true });
    register('a');
    const fresh = { ...request, allowStale: false };
    const first = await catalog.serviceNodes(fresh);
    assert.notEqual(await catalog.serviceNodes(fresh), first);
  });

  it('has no path to another datacenter, and a client agent reaches no server', async () => {
    const { catalog } = setup({ isLeader: true });
    assert.equal(await failureCode(() => catalog.serviceNodes({ ...request, datacenter: 'dc2' })), 'ERR_NO_PATH');
    assert.equal(await failureCode(() => unreachableDnsCatalog('No known Consul servers').nodes(request)), 'ERR_RPC');
  });

  it('finds nodes by name and services by address', async () => {
    const { catalog, register } = setup({ isLeader: true });
    register('a');
    assert.equal((await catalog.node({ ...request, node: 'a' }))?.Address, '10.0.0.1');
    assert.equal(await catalog.node({ ...request, node: 'zz' }), undefined);
    assert.equal((await catalog.nodes(request)).length, 1);
    assert.deepEqual(await catalog.servicesAtAddress({ ...request, address: '10.9.9.9' }), []);
  });
});
