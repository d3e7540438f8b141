import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { memberTags } from '../lib/agent.js';
import { loadConfig, NODE_HOST, type RuntimeConfig } from '../lib/config.js';
import { agentRoutes, buildInfo, localMember, nodeTaggedAddresses, type AgentEndpointDeps } from '../lib/endpoints_agent.js';
import { listenHttp, type HttpListener, type HttpRequest, type HttpResponse } from '../lib/http.js';
import { createLogger, MemorySink } from '../lib/log.js';
import { Metrics, PROMETHEUS_CONTENT_TYPE } from '../lib/metrics.js';
import { CONSUL_VERSION, REVISION } from '../lib/version.js';
import { httpRequest } from './support.js';

const NODE_ID = '11111111-2222-3333-4444-555555555555';
const host = { ...NODE_HOST, hostname: () => 'api-agent-test' };

function configFor(args: string[]): RuntimeConfig {
  return loadConfig([...args, '-node', 'n1', '-bind', '127.0.0.1', '-advertise', '10.0.0.1', '-data-dir', '/nonexistent-unused'], host).config;
}

function depsFor(config: RuntimeConfig, metrics = new Metrics({ nowMs: () => Date.UTC(2024, 0, 1) })): AgentEndpointDeps {
  return { config, nodeId: NODE_ID, metrics, members: () => [localMember(config, memberTags(config, NODE_ID))] };
}

async function serve(deps: AgentEndpointDeps): Promise<HttpListener> {
  const logger = createLogger({ level: 'error', json: false, nowMs: () => 0, sink: new MemorySink() });
  return listenHttp('127.0.0.1', 0, { routes: agentRoutes(deps), logger, isPrettyByDefault: false, isUiEnabled: false });
}

/** Calls a route's handler directly, for headers the HTTP layer may rewrite. */
async function callRoute(deps: AgentEndpointDeps, path: string, query: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
  const route = agentRoutes(deps).find((candidate) => candidate.path === path);
  assert.ok(route, `no route ${path}`);
  const request: HttpRequest = { method: 'GET', path, param: '', query: new URLSearchParams(query), header: (name) => Object.entries(headers).find(([candidate]) => candidate.toLowerCase() === name.toLowerCase())?.[1], body: new Uint8Array(), token: '', remoteAddress: '127.0.0.1', signal: new AbortController().signal };
  return route.handler(request);
}

describe('agent endpoints on a server', () => {
  const config = configFor(['-server', '-bootstrap-expect', '3']);
  let listener: HttpListener;
  let port = 0;
  before(async () => {
    listener = await serve(depsFor(config));
    port = listener.address.port;
  });
  after(() => listener.close());

  test('GET /v1/agent/members lists this agent in serf.Member\'s shape', async () => {
    const reply = await httpRequest(port, 'GET', '/v1/agent/members');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'application/json');
    assert.equal(reply.headers['x-consul-default-acl-policy'], 'allow');
    const members = JSON.parse(reply.body) as Record<string, unknown>[];
    assert.equal(members.length, 1);
    assert.deepEqual(Object.keys(members[0]!), ['Name', 'Addr', 'Port', 'Tags', 'Status', 'ProtocolMin', 'ProtocolMax', 'ProtocolCur', 'DelegateMin', 'DelegateMax', 'DelegateCur']);
    assert.equal(members[0]!['Name'], 'n1');
    assert.equal(members[0]!['Addr'], '10.0.0.1');
    assert.equal(members[0]!['Port'], 8301);
    assert.equal(members[0]!['Status'], 1);
    assert.equal((members[0]!['Tags'] as Record<string, string>)['role'], 'consul');
    assert.equal((members[0]!['Tags'] as Record<string, string>)['expect'], '3');
  });

  test('?wan=1 lists WAN members named <node>.<dc>; a bare ?wan is the LAN, as Consul reads it', async () => {
    const wan = JSON.parse((await httpRequest(port, 'GET', '/v1/agent/members?wan=1')).body) as Record<string, unknown>[];
    assert.equal(wan[0]!['Name'], 'n1.dc1');
    assert.equal(wan[0]!['Port'], 8302);
    const bare = JSON.parse((await httpRequest(port, 'GET', '/v1/agent/members?wan')).body) as Record<string, unknown>[];
    assert.equal(bare[0]!['Name'], 'n1');
  });

  test('segments: _all is every member, a named one is refused as Consul CE servers do', async () => {
    assert.equal((await httpRequest(port, 'GET', '/v1/agent/members?segment=_all')).status, 200);
    const named = await httpRequest(port, 'GET', '/v1/agent/members?segment=alpha');
    assert.equal(named.status, 500);
    assert.equal(named.body, 'Network segments are not supported in this version of Consul');
    const wanSegment = await httpRequest(port, 'GET', '/v1/agent/members?wan=true&segment=alpha');
    assert.equal(wanSegment.status, 400);
    assert.equal(wanSegment.body, 'Cannot provide a segment with wan=true');
    assert.equal((await httpRequest(port, 'GET', '/v1/agent/members?wan=true&segment=_all')).status, 200);
  });

  test('wrong methods get 405 with Allow', async () => {
    for (const path of ['/v1/agent/members', '/v1/agent/host', '/v1/agent/version', '/v1/agent/metrics']) {
      const reply = await httpRequest(port, 'PUT', path);
      assert.equal(reply.status, 405, path);
      assert.equal(reply.body, 'method PUT not allowed');
      assert.equal(reply.headers['allow'], 'OPTIONS,GET');
    }
  });

  test('GET /v1/agent/version has BuildInfo\'s shape', async () => {
    const reply = await httpRequest(port, 'GET', '/v1/agent/version');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, JSON.stringify({ SHA: REVISION, BuildDate: '2026-11-22T00:00:00Z', HumanVersion: CONSUL_VERSION, FIPS: '' }));
    assert.deepEqual(JSON.parse(reply.body), buildInfo());
  });

  test('GET /v1/agent/host reports real host data in debug.HostInfo\'s shape', async () => {
    const reply = await httpRequest(port, 'GET', '/v1/agent/host');
    assert.equal(reply.status, 200);
    const info = JSON.parse(reply.body) as Record<string, unknown>;
    assert.deepEqual(Object.keys(info), ['Memory', 'CPU', 'Host', 'Disk', 'CollectionTime', 'Errors']);
    assert.equal(info['Errors'], null);
    const memory = info['Memory'] as Record<string, number>;
    assert.deepEqual(Object.keys(memory).slice(0, 5), ['total', 'available', 'used', 'usedPercent', 'free']);
    assert.ok(memory['total']! > 0);
    const disk = info['Disk'] as Record<string, unknown>;
    assert.deepEqual(Object.keys(disk), ['path', 'fstype', 'total', 'free', 'used', 'usedPercent', 'inodesTotal', 'inodesUsed', 'inodesFree', 'inodesUsedPercent']);
    assert.equal(disk['path'], '/');
    const hostInfo = info['Host'] as Record<string, unknown>;
    assert.deepEqual(Object.keys(hostInfo), ['hostname', 'uptime', 'bootTime', 'procs', 'os', 'platform', 'platformFamily', 'platformVersion', 'kernelVersion', 'kernelArch', 'virtualizationSystem', 'virtualizationRole', 'hostId']);
    const cpu = (info['CPU'] as Record<string, unknown>[])[0]!;
    assert.deepEqual(Object.keys(cpu), ['cpu', 'vendorId', 'family', 'model', 'stepping', 'physicalId', 'coreId', 'cores', 'modelName', 'mhz', 'cacheSize', 'flags', 'microcode']);
    // CollectionTime is Unix nanoseconds.
    assert.ok(Math.abs((info['CollectionTime'] as number) / 1e6 - Date.now()) < 60_000);
  });

  test('GET /v1/agent/metrics returns the summary; Prometheus is refused without retention', async () => {
    const reply = await httpRequest(port, 'GET', '/v1/agent/metrics');
    assert.equal(reply.status, 200);
    assert.deepEqual(Object.keys(JSON.parse(reply.body) as object), ['Timestamp', 'Gauges', 'Points', 'Counters', 'Samples']);
    const refused = await httpRequest(port, 'GET', '/v1/agent/metrics?format=prometheus');
    assert.equal(refused.status, 415);
    assert.equal(refused.body, 'Prometheus is not enabled since its retention time is not positive');
    // Any other format value is the JSON summary, as Consul's check is an exact match.
    assert.equal((await httpRequest(port, 'GET', '/v1/agent/metrics?format=xml')).status, 200);
  });
});

describe('agent endpoints on a client', () => {
  const config = configFor([]);

  test('?wan on a client has no WAN pool: null', async () => {
    const listener = await serve(depsFor(config));
    try {
      const reply = await httpRequest(listener.address.port, 'GET', '/v1/agent/members?wan=1');
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'null');
      const segment = await httpRequest(listener.address.port, 'GET', '/v1/agent/members?segment=beta');
      assert.equal(segment.status, 500);
      assert.equal(segment.body, 'segment "beta" not found');
      const members = JSON.parse((await httpRequest(listener.address.port, 'GET', '/v1/agent/members')).body) as { Tags: Record<string, string> }[];
      assert.equal(members[0]?.Tags['role'], 'node');
    } finally {
      await listener.close();
    }
  });
});

describe('Prometheus output', () => {
  test('format=prometheus and OpenMetrics Accept headers get the text exposition', async () => {
    const config = configFor(['-server']);
    const metrics = new Metrics({ nowMs: () => Date.UTC(2024, 0, 1), prometheusRetentionMs: 60_000 });
    metrics.incrCounter(['catalog', 'register'], 1);
    const deps = depsFor(config, metrics);
    for (const [query, headers] of [['format=prometheus', {}], ['', { accept: 'application/openmetrics-text; version=1.0.0' }], ['', { accept: 'text/plain;version=0.4.0' }]] as const) {
      const response = await callRoute(deps, '/v1/agent/metrics', query, headers);
      assert.ok('bytes' in response);
      assert.equal(response.contentType, PROMETHEUS_CONTENT_TYPE);
      assert.equal(Buffer.from(response.bytes).toString('utf8'), '# HELP consul_catalog_register consul_catalog_register\n# TYPE consul_catalog_register counter\nconsul_catalog_register 1\n');
    }
    const json = await callRoute(deps, '/v1/agent/metrics', '', { accept: 'application/json' });
    assert.ok('json' in json);
    const listener = await serve(deps);
    try {
      const reply = await httpRequest(listener.address.port, 'GET', '/v1/agent/metrics?format=prometheus');
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['content-type'], PROMETHEUS_CONTENT_TYPE);
      assert.match(reply.body, /^consul_catalog_register 1$/m);
    } finally {
      await listener.close();
    }
  });
});

describe('node tagged addresses', () => {
  test('lan and wan with their IPv4 forms, sorted, configured ones kept', () => {
    const config = configFor(['-server']);
    assert.equal(JSON.stringify(nodeTaggedAddresses(config)), '{"lan":"10.0.0.1","lan_ipv4":"10.0.0.1","wan":"10.0.0.1","wan_ipv4":"10.0.0.1"}');
    const custom = { ...config, advertiseAddrWan: '::1', taggedAddresses: { lan: '192.168.0.9' } };
    assert.equal(JSON.stringify(nodeTaggedAddresses(custom)), '{"lan":"192.168.0.9","lan_ipv4":"10.0.0.1","wan":"::1","wan_ipv6":"::1"}');
  });
});
