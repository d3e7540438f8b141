// lib/membership.ts: Consul's gossip merge delegates (agent/consul/merge.go): the LAN pool
// refuses members of another datacenter or segment and node-ID conflicts; the WAN pool refuses
// anything but servers (the texts are Consul's, since they reach the join's caller); and the
// pools' counters exported as metrics.

import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../lib/config.js';
import { nullLogger } from '../lib/log.js';
import { datacentersByDistance, gossipMetricKey, lanMergeRefusal, Membership, wanMergeRefusal } from '../lib/membership.js';
import { Metrics } from '../lib/metrics.js';
import { MemberStatus, type SerfMember } from '../lib/serfwire.js';
import { gossipPortArgs, waitFor } from './support.js';

const SELF = { name: 'self', tags: { dc: 'dc1', id: 'aaaaaaaa-0000-0000-0000-000000000001', segment: '', role: 'node' } };

function member(name: string, tags: Record<string, string>, status: number = MemberStatus.none): SerfMember {
  return { name, addr: Uint8Array.of(127, 0, 0, 2), port: 8301, tags: new Map(Object.entries(tags)), status, protocolMin: 1, protocolMax: 5, protocolCur: 2, delegateMin: 2, delegateMax: 5, delegateCur: 4 };
}

const client = (name: string, id: string, extra: Record<string, string> = {}): SerfMember => member(name, { role: 'node', dc: 'dc1', id, segment: '', build: '1.15.2:abcdef12', vsn: '2', ...extra });
const server = (name: string, id: string, extra: Record<string, string> = {}): SerfMember => member(name, { role: 'consul', dc: 'dc1', id, segment: '', build: '1.15.2:abcdef12', vsn: '2', port: '8300', expect: '3', ...extra });

describe('LAN merge delegate', () => {
  it('accepts members of our datacenter and segment, ourselves included, and plain serf or memberlist peers', () => {
    const members = [client('self', SELF.tags.id), client('c1', 'id-1'), server('s1', 'id-2'), member('serf-peer', { role: 'web' }), member('bare', {})];
    assert.equal(lanMergeRefusal(members, SELF), null);
  });

  it('refuses a client or a server of another datacenter', () => {
    assert.equal(lanMergeRefusal([client('c1', 'id-1'), client('c2', 'id-2', { dc: 'dc2' })], SELF), "Member 'c2' part of wrong datacenter 'dc2'");
    assert.equal(lanMergeRefusal([server('s9', 'id-9', { dc: 'east' })], SELF), "Member 's9' part of wrong datacenter 'east'");
  });

  it('a role=consul member whose tags do not parse as a server is not checked as one', () => {
    assert.equal(lanMergeRefusal([server('odd', 'id-3', { dc: 'dc2', port: 'x' })], SELF), null);
  });

  it('refuses another segment', () => {
    assert.equal(lanMergeRefusal([client('c3', 'id-3', { segment: 'alpha' })], SELF), "Member 'c3' part of wrong segment 'alpha' (expected '')");
  });

  it('refuses our node ID under another name, and two members sharing an ID', () => {
    assert.equal(lanMergeRefusal([client('impostor', SELF.tags.id)], SELF), `Member 'impostor' has conflicting node ID '${SELF.tags.id}' with this agent's ID`);
    assert.equal(lanMergeRefusal([client('a', 'id-7'), client('b', 'id-7')], SELF), "Member 'b' has conflicting node ID 'id-7' with member 'a'");
  });

  it('left members and builds before 0.8.5 do not take part in the ID check', () => {
    assert.equal(lanMergeRefusal([client('gone', SELF.tags.id)].map((m) => ({ ...m, status: MemberStatus.left })), SELF), null);
    assert.equal(lanMergeRefusal([client('old', 'id-8', { build: '0.8.4:0' }), client('new', 'id-8')], SELF), null);
    assert.equal(lanMergeRefusal([client('new', 'id-8'), client('newer', 'id-8')], SELF), "Member 'newer' has conflicting node ID 'id-8' with member 'new'");
  });
});

describe('WAN merge delegate', () => {
  it('accepts servers only', () => {
    assert.equal(wanMergeRefusal([server('s1.dc1', 'id-1'), server('s2.dc2', 'id-2', { dc: 'dc2' })]), null);
    assert.equal(wanMergeRefusal([server('s1.dc1', 'id-1'), client('c1.dc1', 'id-3')]), "Member 'c1.dc1' is not a server");
    assert.equal(wanMergeRefusal([member('serf-peer', { role: 'web' })]), "Member 'serf-peer' is not a server");
  });
});

describe('gossip metrics', () => {
  it("counters keep memberlist's and serf's names where they have one; drops carry their reason", () => {
    assert.deepEqual(gossipMetricKey('memberlist', 'udpReceivedBytes'), { key: ['memberlist', 'udp', 'received'], labels: {} });
    assert.deepEqual(gossipMetricKey('memberlist', 'msgSuspect'), { key: ['memberlist', 'msg', 'suspect'], labels: {} });
    assert.deepEqual(gossipMetricKey('memberlist', 'udpDropped.ERR_GOSSIP_DECRYPT'), { key: ['memberlist', 'udp', 'dropped'], labels: { reason: 'ERR_GOSSIP_DECRYPT' } });
    assert.deepEqual(gossipMetricKey('memberlist', 'tcpDropped.ERR_GOSSIP_MALFORMED'), { key: ['memberlist', 'tcp', 'dropped'], labels: { reason: 'ERR_GOSSIP_MALFORMED' } });
    assert.deepEqual(gossipMetricKey('serf', 'memberFlap'), { key: ['serf', 'member', 'flap'], labels: {} });
    assert.deepEqual(gossipMetricKey('memberlist', 'suspectRechecks'), { key: ['memberlist', 'suspectRechecks'], labels: {} });
    assert.deepEqual(gossipMetricKey('transport', 'streamsOut'), { key: ['memberlist', 'tcp', 'connect'], labels: {} });
    assert.deepEqual(gossipMetricKey('transport', 'datagramErrors'), { key: ['gossip', 'transport', 'datagramErrors'], labels: {} });
  });

  it('a garbage datagram to a running pool is dropped and shows in the metrics, once per event', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'consul-ts-membership-'));
    const ports = await gossipPortArgs();
    const config = loadConfig(['-node', 'm1', '-bind', '127.0.0.1', '-data-dir', dataDir, ...ports]).config;
    const metrics = new Metrics({ nowMs: Date.now });
    const membership = await Membership.start({ config, tags: { role: 'node', dc: 'dc1' }, logger: nullLogger(), metrics });
    const socket = createSocket('udp4');
    try {
      await new Promise<void>((resolve, reject) => socket.send(Uint8Array.of(0xff, 1, 2, 3), config.ports.serfLan, '127.0.0.1', (error) => (error ? reject(error) : resolve())));
      await waitFor('the pool to count the datagram', () => (membership.lan.swim.counters['udpReceived'] ? true : undefined), 5_000);
      const dropped = (): number => metrics.displayMetrics().Counters.filter((c) => c.Name === 'consul.memberlist.udp.dropped' && c.Labels['network'] === 'lan').reduce((sum, c) => sum + c.Count, 0);
      membership.exportMetrics(metrics);
      assert.equal(dropped(), 1);
      membership.exportMetrics(metrics);
      assert.equal(dropped(), 1, 'exported once');
      const score = metrics.displayMetrics().Gauges.find((g) => g.Name === 'consul.memberlist.health.score');
      assert.equal(score?.Value, 0);
      assert.equal(score?.Labels['network'], 'lan');
    } finally {
      socket.close();
      await membership.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('datacenters by distance (/v1/catalog/datacenters)', () => {
  const at = (x: number) => ({ vec: [x, 0, 0, 0, 0, 0, 0, 0], error: 0.1, adjustment: 0, height: 0 });
  it('nearest first by the upper median RTT to each datacenter\'s servers; without coordinates last, by name; ours always listed', () => {
    const servers = [
      { datacenter: 'dc1', coordinate: at(0) },
      { datacenter: 'far', coordinate: at(0.3) },
      { datacenter: 'near', coordinate: at(0.05) },
      { datacenter: 'near', coordinate: at(0.5) },
      { datacenter: 'near', coordinate: at(0.01) },
      { datacenter: 'zeta', coordinate: null },
      { datacenter: 'alpha', coordinate: null },
    ];
    // near: RTTs 0.01, 0.05, 0.5 -> upper median 0.05; far 0.3.
    assert.deepEqual(datacentersByDistance('dc1', at(0), servers), ['dc1', 'near', 'far', 'alpha', 'zeta']);
    assert.deepEqual(datacentersByDistance('dc1', null, servers), ['alpha', 'dc1', 'far', 'near', 'zeta'], 'no coordinate of ours: all unknown, by name');
    assert.deepEqual(datacentersByDistance('solo', at(0), []), ['solo']);
  });
});
