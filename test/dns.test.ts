// DnsResolver against an in-memory catalog: every lookup form, the rcode rules, trimming, EDNS,
// the server-level screening of malformed messages, and recursion to fake upstream servers.
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { after, describe, it } from 'node:test';
import type { CheckServiceNode } from '../lib/catalog.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, NODE_HOST } from '../lib/config.js';
import { DnsLookupError, DnsResolver, type DnsCatalog, type DnsTransport } from '../lib/dns.js';
import { Recursor } from '../lib/dnsrecursor.js';
import { decodeMessage, encodeMessage, OPCODE, queryMessage, RCODE, RR_CLASS, RR_TYPE, type DnsMessage, type ResourceRecord } from '../lib/dnswire.js';
import { nullLogger } from '../lib/log.js';
import { seededRng } from '../lib/rng.js';
import type { CheckRecord, NodeRecord, ServiceRecord } from '../lib/schema.js';

const logger = nullLogger();
const NOW_MS = 1_700_000_000_000;

// -- Catalog fixtures --------------------------------------------------------------------------

function node(name: string, address: string, extra: Partial<NodeRecord> = {}): NodeRecord {
  return { ID: '', Node: name, Address: address, Datacenter: 'dc1', TaggedAddresses: {}, Meta: {}, CreateIndex: 1, ModifyIndex: 1, ...extra };
}

function service(nodeName: string, name: string, extra: Partial<ServiceRecord> = {}): ServiceRecord {
  return {
    Node: nodeName,
    ID: name,
    Service: name,
    Kind: '',
    Tags: [],
    Address: '',
    TaggedAddresses: {},
    Meta: {},
    Port: 8080,
    SocketPath: '',
    Weights: { Passing: 1, Warning: 1 },
    EnableTagOverride: false,
    CreateIndex: 1,
    ModifyIndex: 1,
    ...extra,
  };
}

function check(nodeName: string, status: CheckRecord['Status'], serviceName = '', checkId = serviceName === '' ? 'serfHealth' : `service:${serviceName}`): CheckRecord {
  return {
    Node: nodeName,
    CheckID: checkId,
    Name: checkId,
    Status: status,
    Notes: '',
    Output: '',
    ServiceID: serviceName,
    ServiceName: serviceName,
    ServiceTags: [],
    Type: '',
    Interval: '',
    Timeout: '',
    ExposedPort: 0,
    Definition: {},
    CreateIndex: 1,
    ModifyIndex: 1,
  };
}

interface Fixture {
  nodes: NodeRecord[];
  instances: CheckServiceNode[];
}

function instance(n: NodeRecord, s: Partial<ServiceRecord> & { Service: string }, statuses: { node?: CheckRecord['Status']; service?: CheckRecord['Status'] } = {}): CheckServiceNode {
  const checks = [check(n.Node, statuses.node ?? 'passing'), ...(statuses.service === undefined ? [] : [check(n.Node, statuses.service, s.Service)])];
  return { Node: n, Service: service(n.Node, s.Service, s), Checks: checks };
}

function fakeCatalog(fixture: Fixture, failure?: DnsLookupError): DnsCatalog {
  const local = (datacenter: string): void => {
    if (failure) throw failure;
    if (datacenter !== 'dc1') throw new DnsLookupError('ERR_NO_PATH', 'No path to datacenter');
  };
  const read = async <T>(datacenter: string, value: () => T): Promise<T> => {
    local(datacenter);
    return value();
  };
  return {
    serviceNodes: (r) => read(r.datacenter, () => fixture.instances.filter((i) => i.Service.Service === r.service && (r.tag === '' || i.Service.Tags.some((t) => t.toLowerCase() === r.tag.toLowerCase())))),
    node: (r) => read(r.datacenter, () => fixture.nodes.find((n) => n.Node === r.node)),
    nodes: (r) => read(r.datacenter, () => fixture.nodes),
    servicesAtAddress: (r) => read(r.datacenter, () => fixture.instances.filter((i) => i.Service.Address === r.address).map((i) => ({ Node: i.Node, Service: i.Service }))),
  };
}

const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-dns-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let configFiles = 0;

function dnsConfig(json: Record<string, unknown> = {}, flags: string[] = []) {
  const file = join(scratch, `c${++configFiles}.json`);
  writeFileSync(file, JSON.stringify(json));
  return loadConfig(['-dev', '-config-file', file, ...flags], { ...NODE_HOST, hostname: () => 'dns-test' }).config;
}

function resolver(fixture: Fixture, options: { json?: Record<string, unknown>; flags?: string[]; failure?: DnsLookupError; recursor?: Recursor; seed?: number } = {}): DnsResolver {
  const config = dnsConfig(options.json, options.flags);
  return new DnsResolver({
    config: config.dns,
    domain: config.domain,
    altDomain: config.altDomain,
    datacenter: 'dc1',
    catalog: fakeCatalog(fixture, options.failure),
    recursor: options.recursor,
    rng: seededRng(options.seed ?? 7),
    nowMs: () => NOW_MS,
    logger,
  });
}

// -- Queries -----------------------------------------------------------------------------------

interface QueryOptions {
  readonly id?: number;
  readonly ednsUdpSize?: number;
  readonly ednsOptions?: { code: number; data: Uint8Array }[];
}

function queryBytes(name: string, type: number, options: QueryOptions = {}): Uint8Array {
  const additionals: ResourceRecord[] = options.ednsUdpSize === undefined ? [] : [{ name: '.', type: RR_TYPE.OPT, class: options.ednsUdpSize, ttl: 0, data: { kind: 'opt', options: options.ednsOptions ?? [] } }];
  const query = queryMessage(options.id ?? 4242, { name, type, class: RR_CLASS.IN });
  query.additionals = additionals;
  return encodeMessage(query);
}

async function ask(r: DnsResolver, name: string, type: number, options: QueryOptions = {}, transport: DnsTransport = 'udp'): Promise<DnsMessage> {
  const reply = await r.answerBytes(queryBytes(name, type, options), transport);
  assert.ok(reply !== undefined, 'a query is answered');
  return decodeMessage(reply);
}

const addresses = (records: readonly ResourceRecord[]): string[] => records.map((record) => (record.data.kind === 'a' || record.data.kind === 'aaaa' ? record.data.address : `${record.data.kind}`));

// -- A fleet: web on 20 nodes, api with mixed health ---------------------------------------------

const web = Array.from({ length: 20 }, (_, i) => node(`web-${i}`, `10.0.0.${i + 1}`));
const db = node('db-1', '10.0.1.1', { Meta: { rack: 'r1', 'rfc1035-raw': 'v=spf1', 'we=ird ': 'a`b' } });
const v6 = node('v6-node', '2001:db8::7');
const dotted = node('host.example', '10.0.2.2');
const server = node('server-1', '10.0.9.1');
const fleet: Fixture = {
  nodes: [...web, db, v6, dotted, server],
  instances: [
    ...web.map((n, i) => instance(n, { Service: 'web', Tags: i % 2 === 0 ? ['primary'] : ['secondary'] })),
    instance(web[0] as NodeRecord, { Service: 'api', Port: 9000, Weights: { Passing: 10, Warning: 3 } }, { service: 'passing' }),
    instance(web[1] as NodeRecord, { Service: 'api', Port: 9000, Weights: { Passing: 10, Warning: 3 } }, { service: 'warning' }),
    instance(web[2] as NodeRecord, { Service: 'api', Port: 9000 }, { service: 'critical' }),
    instance(web[3] as NodeRecord, { Service: 'api', Port: 9000 }, { node: 'critical' }),
    instance(db, { Service: 'db', Port: 5432, Address: '10.0.1.100' }),
    instance(v6, { Service: 'six', Port: 80 }),
    instance(db, { Service: 'ext', Port: 443, Address: 'db-1.node.consul' }),
    instance(server, { Service: 'consul', Port: 8300 }),
    instance(web[4] as NodeRecord, { Service: 'down' }, { service: 'critical' }),
  ],
};

describe('DNS service lookups', () => {
  it('answers A with the healthy instances only: critical service or node checks drop an instance, warning is kept', async () => {
    const reply = await ask(resolver(fleet), 'api.service.consul.', RR_TYPE.A, { ednsUdpSize: 4096 });
    assert.equal(reply.header.rcode, RCODE.NOERROR);
    assert.equal(reply.header.isAuthoritative, true);
    assert.equal(reply.header.isRecursionAvailable, false);
    assert.deepEqual(addresses(reply.answers).sort(), ['10.0.0.1', '10.0.0.2']);
    for (const answer of reply.answers) {
      assert.equal(answer.name, 'api.service.consul.');
      assert.equal(answer.ttl, 0);
    }
  });

  it('only_passing drops warning instances too', async () => {
    const reply = await ask(resolver(fleet, { json: { dns_config: { only_passing: true } } }), 'api.service.consul.', RR_TYPE.A);
    assert.deepEqual(addresses(reply.answers), ['10.0.0.1']);
  });

  it('shuffles the instances on every answer', async () => {
    const r = resolver(fleet, { seed: 3 });
    const orders = new Set<string>();
    for (let i = 0; i < 10; i++) orders.add(addresses((await ask(r, 'web.service.consul.', RR_TYPE.A, { ednsUdpSize: 4096 })).answers).join(','));
    assert.ok(orders.size > 1, 'answers come in more than one order');
  });

  it('caps plain UDP at udp_answer_limit (3) answers without setting TC by default', async () => {
    const reply = await ask(resolver(fleet), 'web.service.consul.', RR_TYPE.A);
    assert.equal(reply.answers.length, 3);
    assert.equal(reply.header.isTruncated, false);
  });

  it('sets TC when trimming with enable_truncate', async () => {
    const reply = await ask(resolver(fleet, { json: { dns_config: { enable_truncate: true } } }), 'web.service.consul.', RR_TYPE.A);
    assert.equal(reply.answers.length, 3);
    assert.equal(reply.header.isTruncated, true);
  });

  it('caps udp_answer_limit at 8 and honours smaller limits', async () => {
    assert.equal((await ask(resolver(fleet, { json: { dns_config: { udp_answer_limit: 50 } } }), 'web.service.consul.', RR_TYPE.A)).answers.length, 8);
    assert.equal((await ask(resolver(fleet, { json: { dns_config: { udp_answer_limit: 1 } } }), 'web.service.consul.', RR_TYPE.A)).answers.length, 1);
  });

  it('answers every instance over EDNS0 and TCP', async () => {
    assert.equal((await ask(resolver(fleet), 'web.service.consul.', RR_TYPE.A, { ednsUdpSize: 1232 })).answers.length, 20);
    assert.equal((await ask(resolver(fleet), 'web.service.consul.', RR_TYPE.A, {}, 'tcp')).answers.length, 20);
  });

  it('trims an EDNS0 answer to the advertised buffer (measured without the UDP header)', async () => {
    const many: Fixture = { nodes: [], instances: Array.from({ length: 200 }, (_, i) => instance(node(`n${i}`, `10.1.${i >> 8}.${i & 255}`), { Service: 'big' })) };
    const reply = await ask(resolver(many), 'big.service.consul.', RR_TYPE.A, { ednsUdpSize: 1232 });
    const bytes = encodeMessage(reply).length;
    assert.ok(bytes <= 1232 - 8, `reply of ${bytes} bytes fits`);
    assert.ok(reply.answers.length > 50 && reply.answers.length < 200);
  });

  it('a_record_limit caps A answers', async () => {
    const reply = await ask(resolver(fleet, { json: { dns_config: { a_record_limit: 2 } } }), 'web.service.consul.', RR_TYPE.A, { ednsUdpSize: 4096 });
    assert.equal(reply.answers.length, 2);
  });

  it('filters by tag: <tag>.<service>.service and RFC 2782 _<service>._<tag>', async () => {
    const tagged = await ask(resolver(fleet), 'primary.web.service.consul.', RR_TYPE.A, { ednsUdpSize: 4096 });
    assert.equal(tagged.answers.length, 10);
    const srv = await ask(resolver(fleet), '_web._secondary.service.consul.', RR_TYPE.SRV, { ednsUdpSize: 4096 });
    assert.equal(srv.answers.length, 10);
    const all = await ask(resolver(fleet), '_web._tcp.service.consul.', RR_TYPE.SRV, { ednsUdpSize: 4096 });
    assert.equal(all.answers.length, 20);
    const bare = await ask(resolver(fleet), '_web._tcp.consul.', RR_TYPE.SRV, { ednsUdpSize: 4096 });
    assert.equal(bare.answers.length, 20, 'SRV may leave out .service');
  });

  it('answers SRV with priority 1, weights by health, the port, the node name as target and its A in Additional', async () => {
    const reply = await ask(resolver(fleet), 'api.service.consul.', RR_TYPE.SRV);
    assert.equal(reply.answers.length, 2);
    const byTarget = new Map(reply.answers.map((answer) => [answer.data.kind === 'srv' ? answer.data.target : '', answer.data]));
    assert.deepEqual(byTarget.get('web-0.node.dc1.consul.'), { kind: 'srv', priority: 1, weight: 10, port: 9000, target: 'web-0.node.dc1.consul.' });
    assert.deepEqual(byTarget.get('web-1.node.dc1.consul.'), { kind: 'srv', priority: 1, weight: 3, port: 9000, target: 'web-1.node.dc1.consul.' });
    const glue = reply.additionals.filter((record) => record.type === RR_TYPE.A).map((record) => `${record.name} ${addresses([record])[0]}`).sort();
    assert.deepEqual(glue, ['web-0.node.dc1.consul. 10.0.0.1', 'web-1.node.dc1.consul. 10.0.0.2']);
  });

  it('targets <hex ip>.addr.<dc>.<domain> when the service has its own address, with node meta TXT beside it', async () => {
    const reply = await ask(resolver(fleet), 'db.service.consul.', RR_TYPE.SRV);
    assert.deepEqual(reply.answers[0]?.data, { kind: 'srv', priority: 1, weight: 1, port: 5432, target: '0a000164.addr.dc1.consul.' });
    const a = reply.additionals.find((record) => record.type === RR_TYPE.A);
    assert.equal(a?.name, '0a000164.addr.dc1.consul.');
    assert.deepEqual(addresses(a ? [a] : []), ['10.0.1.100']);
    const txt = reply.additionals.filter((record) => record.type === RR_TYPE.TXT);
    assert.ok(txt.length === 3 && txt.every((record) => record.name === 'db-1.node.dc1.consul.'));
  });

  it('answers a hostname service address with a CNAME and what the name resolves to in our domain', async () => {
    const reply = await ask(resolver(fleet), 'ext.service.consul.', RR_TYPE.A);
    assert.deepEqual(reply.answers.map((record) => record.type), [RR_TYPE.CNAME, RR_TYPE.A]);
    assert.deepEqual(reply.answers[0]?.data, { kind: 'cname', target: 'db-1.node.consul.' });
    assert.deepEqual(addresses(reply.answers.slice(1)), ['10.0.1.1']);
  });

  it('answers AAAA for IPv6 instances, and NODATA (NOERROR, empty, SOA) when the service has no address of the type', async () => {
    const six = await ask(resolver(fleet), 'six.service.consul.', RR_TYPE.AAAA);
    assert.deepEqual(addresses(six.answers), ['2001:db8::7']);
    const none = await ask(resolver(fleet), 'web.service.consul.', RR_TYPE.AAAA);
    assert.equal(none.header.rcode, RCODE.NOERROR);
    assert.equal(none.answers.length, 0);
    assert.equal(none.authorities[0]?.type, RR_TYPE.SOA);
  });

  it('answers NXDOMAIN with the SOA for unknown services, services with no healthy instance, unknown and unreachable datacenters', async () => {
    for (const name of ['nope.service.consul.', 'down.service.consul.', 'web.service.dc2.consul.', 'web.service.dc2.dc.consul.', 'web.service.a.b.c.consul.', 'service.consul.', 'consul.', 'web.bogus.consul.']) {
      const reply = await ask(resolver(fleet), name, RR_TYPE.A);
      assert.equal(reply.header.rcode, RCODE.NXDOMAIN, name);
      assert.equal(reply.answers.length, 0, name);
      assert.equal(reply.authorities[0]?.type, RR_TYPE.SOA, name);
    }
  });

  it('accepts the datacenter as <dc> or <dc>.dc', async () => {
    assert.equal((await ask(resolver(fleet), 'api.service.dc1.consul.', RR_TYPE.A)).answers.length, 2);
    assert.equal((await ask(resolver(fleet), 'api.service.dc1.dc.consul.', RR_TYPE.A)).answers.length, 2);
  });

  it('keeps the question case in owner names and answers case-insensitively', async () => {
    const reply = await ask(resolver(fleet), 'ApI.SeRvIcE.CoNsUl.', RR_TYPE.SRV);
    assert.equal(reply.questions[0]?.name, 'ApI.SeRvIcE.CoNsUl.');
    assert.equal(reply.answers[0]?.name, 'ApI.SeRvIcE.CoNsUl.');
    assert.match(reply.answers[0]?.data.kind === 'srv' ? reply.answers[0].data.target : '', /\.node\.dc1\.CoNsUl\.$/);
  });

  it('uses service_ttl (exact, then the longest prefix*) and node_ttl', async () => {
    const r = resolver(fleet, { json: { dns_config: { service_ttl: { 'we*': '10s', 'web': '30s', '*': '5s' }, node_ttl: '7s' } } });
    assert.equal((await ask(r, 'web.service.consul.', RR_TYPE.A)).answers[0]?.ttl, 30);
    assert.equal((await ask(r, 'api.service.consul.', RR_TYPE.A)).answers[0]?.ttl, 5);
    assert.equal((await ask(r, 'web-3.node.consul.', RR_TYPE.A)).answers[0]?.ttl, 7);
  });

  it('answers SERVFAIL when the catalog cannot be read', async () => {
    const reply = await ask(resolver(fleet, { failure: new DnsLookupError('ERR_RPC', 'No known Consul servers') }), 'web.service.consul.', RR_TYPE.A);
    assert.equal(reply.header.rcode, RCODE.SERVFAIL);
    assert.equal(reply.authorities.length, 0);
  });

  it('answers .query names NXDOMAIN (no prepared queries) and .virtual names NOERROR empty', async () => {
    assert.equal((await ask(resolver(fleet), 'web.query.consul.', RR_TYPE.A)).header.rcode, RCODE.NXDOMAIN);
    const virtual = await ask(resolver(fleet), 'web.virtual.consul.', RR_TYPE.A);
    assert.equal(virtual.header.rcode, RCODE.NOERROR);
    assert.equal(virtual.authorities.length, 0);
  });
});

describe('DNS node, addr, SOA, NS and PTR lookups', () => {
  it('answers a node A record, with its meta as TXT in Additional', async () => {
    const reply = await ask(resolver(fleet), 'db-1.node.consul.', RR_TYPE.A);
    assert.deepEqual(addresses(reply.answers), ['10.0.1.1']);
    const txt = reply.additionals.filter((record) => record.type === RR_TYPE.TXT).map((record) => (record.data.kind === 'txt' ? record.data.strings.join('') : '')).sort();
    assert.deepEqual(txt, ['rack=r1', 'v=spf1', 'we`=ird` =a``b']);
  });

  it('answers node TXT with the meta in Answer, and leaves Additional empty with enable_additional_node_meta_txt off', async () => {
    const txt = await ask(resolver(fleet), 'db-1.node.dc1.consul.', RR_TYPE.TXT);
    assert.equal(txt.answers.length, 3);
    const off = await ask(resolver(fleet, { json: { dns_config: { enable_additional_node_meta_txt: false } } }), 'db-1.node.consul.', RR_TYPE.A);
    assert.equal(off.additionals.length, 0);
  });

  it('allows dots in node names', async () => {
    assert.deepEqual(addresses((await ask(resolver(fleet), 'host.example.node.consul.', RR_TYPE.A)).answers), ['10.0.2.2']);
  });

  it('answers NXDOMAIN for an unknown node, NOERROR without records for a node of another type or family', async () => {
    const unknown = await ask(resolver(fleet), 'ghost.node.consul.', RR_TYPE.A);
    assert.equal(unknown.header.rcode, RCODE.NXDOMAIN);
    assert.equal(unknown.authorities[0]?.type, RR_TYPE.SOA);
    for (const [name, type] of [['web-1.node.consul.', RR_TYPE.SRV], ['web-1.node.consul.', RR_TYPE.AAAA]] as const) {
      const reply = await ask(resolver(fleet), name, type);
      assert.equal(reply.header.rcode, RCODE.NOERROR);
      assert.equal(reply.answers.length, 0);
      assert.equal(reply.authorities.length, 0, 'Consul adds no SOA to an empty node answer');
    }
  });

  it('decodes <hex>.addr names to A and AAAA, in Additional when the type does not match', async () => {
    assert.deepEqual(addresses((await ask(resolver(fleet), '7f000001.addr.dc1.consul.', RR_TYPE.A)).answers), ['127.0.0.1']);
    assert.deepEqual(addresses((await ask(resolver(fleet), '20010db8000000000000000000000007.addr.consul.', RR_TYPE.AAAA)).answers), ['2001:db8::7']);
    const other = await ask(resolver(fleet), '7f000001.addr.consul.', RR_TYPE.TXT);
    assert.equal(other.answers.length, 0);
    assert.deepEqual(addresses(other.additionals), ['127.0.0.1']);
    for (const bad of ['7f00001.addr.consul.', 'zz000001.addr.consul.', 'a.7f000001.addr.consul.']) assert.equal((await ask(resolver(fleet), bad, RR_TYPE.A)).header.rcode, RCODE.NXDOMAIN, bad);
  });

  it('answers SOA with the SOA, the servers as NS and their addresses as glue', async () => {
    const reply = await ask(resolver(fleet), 'consul.', RR_TYPE.SOA);
    assert.equal(reply.header.rcode, RCODE.NOERROR);
    assert.deepEqual(reply.answers[0], {
      name: 'consul.',
      type: RR_TYPE.SOA,
      class: RR_CLASS.IN,
      ttl: 0,
      data: { kind: 'soa', mname: 'ns.consul.', rname: 'hostmaster.consul.', serial: NOW_MS / 1000, refresh: 3600, retry: 600, expire: 86400, minimum: 0 },
    });
    assert.deepEqual(reply.authorities.map((record) => record.data), [{ kind: 'ns', target: 'server-1.node.dc1.consul.' }]);
    assert.deepEqual(addresses(reply.additionals), ['10.0.9.1']);
  });

  it('answers NS with the servers and glue', async () => {
    const reply = await ask(resolver(fleet), 'consul.', RR_TYPE.NS);
    assert.deepEqual(reply.answers.map((record) => `${record.name} ${record.data.kind === 'ns' ? record.data.target : ''}`), ['consul. server-1.node.dc1.consul.']);
    assert.equal(reply.additionals[0]?.name, 'server-1.node.dc1.consul.');
  });

  it('refuses zone transfers with NOTIMP', async () => {
    assert.equal((await ask(resolver(fleet), 'consul.', RR_TYPE.AXFR)).header.rcode, RCODE.NOTIMP);
  });

  it('answers PTR for node addresses and service addresses, NXDOMAIN otherwise', async () => {
    const nodePtr = await ask(resolver(fleet), '1.1.0.10.in-addr.arpa.', RR_TYPE.PTR);
    assert.deepEqual(nodePtr.answers[0]?.data, { kind: 'ptr', target: 'db-1.node.dc1.consul.' });
    const servicePtr = await ask(resolver(fleet), '100.1.0.10.in-addr.arpa.', RR_TYPE.PTR);
    assert.deepEqual(servicePtr.answers[0]?.data, { kind: 'ptr', target: 'db.service.dc1.consul.' });
    const v6Ptr = await ask(resolver(fleet), '7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.', RR_TYPE.PTR);
    assert.deepEqual(v6Ptr.answers[0]?.data, { kind: 'ptr', target: 'v6-node.node.dc1.consul.' });
    const unknown = await ask(resolver(fleet), '9.9.9.9.in-addr.arpa.', RR_TYPE.PTR);
    assert.equal(unknown.header.rcode, RCODE.NXDOMAIN);
    assert.equal(unknown.authorities[0]?.type, RR_TYPE.SOA);
  });

  it('answers in the alternative domain when asked in it', async () => {
    const r = resolver(fleet, { flags: ['-alt-domain', 'test-domain'] });
    const reply = await ask(r, 'api.service.test-domain.', RR_TYPE.SRV);
    assert.ok(reply.answers.every((record) => record.data.kind === 'srv' && record.data.target.endsWith('.node.dc1.test-domain.')));
    const soa = await ask(r, 'nope.service.test-domain.', RR_TYPE.A);
    assert.equal(soa.authorities[0]?.name, 'test-domain.');
    assert.equal((await ask(r, 'api.service.consul.', RR_TYPE.A)).answers.length, 2, 'the primary domain still answers');
  });

  it('accepts -domain with or without the trailing dot', async () => {
    for (const domain of ['example.org', 'example.org.']) {
      const reply = await ask(resolver(fleet, { flags: ['-domain', domain] }), 'api.service.example.org.', RR_TYPE.A);
      assert.equal(reply.answers.length, 2, domain);
    }
  });
});

describe('DNS EDNS0 and malformed messages', () => {
  it('echoes the OPT with the requested UDP size and the client subnet (scope 0), not the cookie', async () => {
    const subnet = Uint8Array.from([0, 1, 24, 24, 192, 168, 1]);
    const cookie = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const reply = await ask(resolver(fleet), 'web.service.consul.', RR_TYPE.A, { ednsUdpSize: 1400, ednsOptions: [{ code: 10, data: cookie }, { code: 8, data: subnet }] });
    const opt = reply.additionals.find((record) => record.type === RR_TYPE.OPT);
    assert.equal(opt?.class, 1400);
    assert.deepEqual(opt?.data, { kind: 'opt', options: [{ code: 8, data: Uint8Array.from([0, 1, 24, 0, 192, 168, 1]) }] });
  });

  it('ignores responses and runts, answers NOTIMP to other opcodes and FORMERR to bad counts and undecodable questions', async () => {
    const r = resolver(fleet);
    const query = queryBytes('web.service.consul.', RR_TYPE.A);
    const response = Uint8Array.from(query);
    response[2] = (response[2] ?? 0) | 0x80;
    assert.equal(await r.answerBytes(response, 'udp'), undefined);
    assert.equal(await r.answerBytes(query.subarray(0, 11), 'udp'), undefined);
    const update = Uint8Array.from(query);
    update[2] = ((update[2] ?? 0) & 0x87) | (OPCODE.UPDATE << 3);
    const notimp = decodeMessage((await r.answerBytes(update, 'udp')) as Uint8Array);
    assert.equal(notimp.header.rcode, RCODE.NOTIMP);
    assert.equal(notimp.header.opcode, OPCODE.UPDATE);
    const twoQuestions = Uint8Array.from(query);
    twoQuestions[5] = 2;
    assert.equal(decodeMessage((await r.answerBytes(twoQuestions, 'udp')) as Uint8Array).header.rcode, RCODE.FORMERR);
    const cut = query.subarray(0, query.length - 3);
    const formerr = decodeMessage((await r.answerBytes(cut, 'udp')) as Uint8Array);
    assert.equal(formerr.header.rcode, RCODE.FORMERR);
    assert.equal(formerr.header.id, 4242);
  });

  it('answers REFUSED for names outside the domain when no recursor is configured', async () => {
    const reply = await ask(resolver(fleet), 'example.com.', RR_TYPE.A);
    assert.equal(reply.header.rcode, RCODE.REFUSED);
    assert.equal(reply.header.isAuthoritative, false);
  });
});

describe('DNS recursion', () => {
  const upstreams: UdpSocket[] = [];
  after(() => {
    for (const socket of upstreams) socket.close();
  });

  /** A fake upstream that answers every query with `rcode` and one A record (or stays silent). */
  async function upstream(behaviour: { rcode: number } | 'silent'): Promise<string> {
    const socket = createSocket('udp4');
    upstreams.push(socket);
    socket.on('message', (bytes, remote) => {
      if (behaviour === 'silent') return;
      const query = decodeMessage(bytes);
      const answers: ResourceRecord[] = behaviour.rcode === RCODE.NOERROR ? [{ name: query.questions[0]?.name ?? '.', type: RR_TYPE.A, class: RR_CLASS.IN, ttl: 60, data: { kind: 'a', address: '93.184.216.34' } }] : [];
      const reply = { ...query, header: { ...query.header, isResponse: true, isRecursionAvailable: true, rcode: behaviour.rcode }, answers, additionals: [] };
      socket.send(encodeMessage(reply), remote.port, remote.address);
    });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return `127.0.0.1:${socket.address().port}`;
  }

  const recursorOf = (recursors: string[], timeoutMs = 300) => new Recursor({ recursors, strategy: 'sequential', timeoutMs, rng: seededRng(1), logger });

  it('relays the first NOERROR or NXDOMAIN reply, skipping recursors that fail or time out', async () => {
    const recursors = [await upstream('silent'), await upstream({ rcode: RCODE.SERVFAIL }), await upstream({ rcode: RCODE.NOERROR })];
    const r = resolver(fleet, { recursor: recursorOf(recursors) });
    const reply = await ask(r, 'example.com.', RR_TYPE.A, { id: 777 });
    assert.equal(reply.header.id, 777);
    assert.equal(reply.header.rcode, RCODE.NOERROR);
    assert.deepEqual(addresses(reply.answers), ['93.184.216.34']);
  });

  it('answers SERVFAIL with RA when every recursor fails', async () => {
    const r = resolver(fleet, { recursor: recursorOf([await upstream({ rcode: RCODE.REFUSED }), await upstream('silent')]) });
    const reply = await ask(r, 'example.com.', RR_TYPE.A);
    assert.equal(reply.header.rcode, RCODE.SERVFAIL);
    assert.equal(reply.header.isRecursionAvailable, true);
  });

  it('forwards over TCP when the client asked over TCP', async () => {
    const server: TcpServer = createTcpServer((socket) => {
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length < 2 || buffered.length < 2 + buffered.readUInt16BE(0)) return;
        const query = decodeMessage(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
        const answers: ResourceRecord[] = [{ name: query.questions[0]?.name ?? '.', type: RR_TYPE.A, class: RR_CLASS.IN, ttl: 30, data: { kind: 'a', address: '192.0.2.9' } }];
        const reply = encodeMessage({ ...query, header: { ...query.header, isResponse: true }, answers, additionals: [] });
        socket.end(Buffer.concat([Buffer.from([reply.length >> 8, reply.length & 0xff]), reply]));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const address = server.address();
      assert.ok(address !== null && typeof address === 'object');
      const r = resolver(fleet, { recursor: recursorOf([`127.0.0.1:${address.port}`]) });
      const reply = await ask(r, 'example.org.', RR_TYPE.A, { id: 99 }, 'tcp');
      assert.equal(reply.header.id, 99);
      assert.deepEqual(addresses(reply.answers), ['192.0.2.9']);
    } finally {
      server.close();
    }
  });

  it('sets RA on local answers when recursors are configured, and recurses for unknown PTR names', async () => {
    const r = resolver(fleet, { recursor: recursorOf([await upstream({ rcode: RCODE.NXDOMAIN })]) });
    assert.equal((await ask(r, 'web.service.consul.', RR_TYPE.A)).header.isRecursionAvailable, true);
    const ptr = await ask(r, '9.9.9.9.in-addr.arpa.', RR_TYPE.PTR);
    assert.equal(ptr.header.rcode, RCODE.NXDOMAIN);
    assert.equal(ptr.header.isAuthoritative, false, 'the upstream reply is relayed as it came');
  });
});
