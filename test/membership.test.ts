// Consul's gossip merge delegates (agent/consul/merge.go) as lib/membership.ts applies them: the
// LAN pool refuses members of another datacenter or segment and node-ID conflicts; the WAN pool
// refuses anything but servers. The texts are Consul's, since they reach the join's caller.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lanMergeRefusal, wanMergeRefusal } from '../lib/membership.js';
import { MemberStatus, type SerfMember } from '../lib/serfwire.js';

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
