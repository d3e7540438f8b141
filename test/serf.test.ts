// serf core (lib/serf.ts, lib/serfquery.ts) against a stub memberlist host: Lamport clocks,
// intents and their ordering, member status and reaping, reconnects, user events and their ring,
// push/pull merge (spec wire.md §3.3), tags, the broadcast queue, queries with acks, responses
// and relays, serf's internal key queries against a Keyring, graceful leave, coordinates, and
// garbage input. Deterministic: seeded rng, explicit nowMs.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatGossipKey, Keyring } from '../lib/gossipcrypto.js';
import { NodeState, type ProtocolVersions } from '../lib/gossipwire.js';
import { seededRng } from '../lib/rng.js';
import {
  consulSerfConfig,
  LamportClock,
  retransmitLimit,
  SerfNode,
  serfDefaultConfig,
  TransmitQueue,
  type SerfConfig,
  type SerfEvent,
  type SwimAddressLike,
  type SwimHost,
  type SwimMemberLike,
} from '../lib/serf.js';
import { isKeyQueryComplete, summarizeKeyResponses } from '../lib/serfquery.js';
import { decodeSerfMessage, decodeTags, encodeRelay, encodeSerfMessage, encodeTags, MemberStatus, QueryFlag, type SerfMessage } from '../lib/serfwire.js';
import type { SwimNode } from '../lib/swim.js';
import { encodeCoordinatePayload, newCoordinate } from '../lib/vivaldi.js';

// Compile-time check: the real memberlist core can host a SerfNode.
const swimNodeIsAHost: SwimNode extends SwimHost ? true : never = true;
assert.ok(swimNodeIsAHost);

// ---------------------------------------------------------------------------------------------
// Harness

const VSN: ProtocolVersions = { pMin: 1, pMax: 5, pCur: 2, dMin: 2, dMax: 5, dCur: 4 };

function addressOf(index: number): SwimAddressLike {
  return { addr: Uint8Array.of(10, 0, 0, index), port: 8301 };
}

function swimMember(name: string, index: number, tags: Record<string, string> = {}, state: NodeState = NodeState.alive): SwimMemberLike {
  return { name, address: addressOf(index), meta: encodeTags(tags), incarnation: 1, state, stateChangeMs: 0, vsn: VSN };
}

/** A memberlist stand-in: records what serf asks of it. */
class StubHost implements SwimHost {
  readonly sent: { to: SwimAddressLike; payload: Uint8Array }[] = [];
  readonly joins: SwimAddressLike[][] = [];
  metaUpdates = 0;
  leaveCalls = 0;
  isLeaveDone = false;
  known: SwimMemberLike[] = [];

  constructor(readonly local: SwimMemberLike) {
    this.known = [local];
  }
  members(): readonly SwimMemberLike[] {
    return this.known;
  }
  localMember(): SwimMemberLike {
    return this.local;
  }
  sendUserPacket(to: SwimAddressLike, payload: Uint8Array): void {
    this.sent.push({ to, payload });
  }
  updateMeta(): void {
    this.metaUpdates++;
  }
  join(addresses: readonly SwimAddressLike[]): void {
    this.joins.push([...addresses]);
  }
  leave(): void {
    this.leaveCalls++;
  }
  isLeaveBroadcastDone(): boolean {
    return this.isLeaveDone;
  }
  numMembers(): number {
    return this.known.filter((m) => m.state === NodeState.alive || m.state === NodeState.suspect).length;
  }
}

interface TestNode {
  readonly serf: SerfNode;
  readonly host: StubHost;
  readonly index: number;
  readonly name: string;
}

function makeNode(name: string, index: number, overrides: Partial<SerfConfig> = {}, keyring?: Keyring, seed = index): TestNode {
  const config = { ...serfDefaultConfig(name, new Map([['role', 'test']])), ...overrides };
  let host: StubHost | undefined;
  const serf = new SerfNode(config, { rng: seededRng(seed), keyring, createHost: () => (host = new StubHost(swimMember(name, index, { role: 'test' }))) }, 0);
  assert.ok(host !== undefined);
  return { serf, host, index, name };
}

/** A few nodes that all know each other, with gossip and direct packets delivered by hand. */
class Cluster {
  readonly nodes: TestNode[] = [];
  constructor(count: number, keyrings: (Keyring | undefined)[] = []) {
    for (let i = 0; i < count; i++) this.nodes.push(makeNode(`n${i}`, i + 1, {}, keyrings[i]));
    for (const node of this.nodes) {
      for (const other of this.nodes) {
        if (other === node) continue;
        node.host.known.push(other.host.local);
        node.serf.notifyJoin(other.host.local, 0);
      }
      node.serf.drainEvents();
    }
  }
  node(i: number): TestNode {
    const node = this.nodes[i];
    assert.ok(node !== undefined);
    return node;
  }
  /** Rounds of gossip: every node hands its broadcasts to every other node, then packets flow. */
  settle(nowMs: number, rounds = 8): void {
    for (let r = 0; r < rounds; r++) {
      for (const node of this.nodes) {
        for (const msg of node.serf.getBroadcasts(2, 1400)) {
          for (const other of this.nodes) if (other !== node) other.serf.notifyMsg(msg, nowMs);
        }
      }
      this.deliverPackets(nowMs);
    }
  }
  deliverPackets(nowMs: number): void {
    for (let guard = 0; guard < 100; guard++) {
      let moved = false;
      for (const node of this.nodes) {
        const sent = node.host.sent.splice(0);
        for (const { to, payload } of sent) {
          moved = true;
          const target = this.nodes.find((n) => n.index === to.addr[3] && n.host.local.address.port === to.port);
          target?.serf.notifyMsg(payload, nowMs);
        }
      }
      if (!moved) return;
    }
  }
}

function memberEvents(events: SerfEvent[]): string[] {
  return events.flatMap((e) => (e.kind === 'member' ? e.members.map((m) => `${e.type}:${m.name}`) : []));
}

function msg(message: SerfMessage): Uint8Array {
  return encodeSerfMessage(message);
}

function text(value: string): Uint8Array {
  return new Uint8Array(Buffer.from(value));
}

function drainIntents(node: TestNode): SerfMessage[] {
  const out: SerfMessage[] = [];
  for (let i = 0; i < 64; i++) {
    const batch = node.serf.getBroadcasts(2, 65536);
    if (batch.length === 0) break;
    if (i === 0) for (const b of batch) out.push(decodeSerfMessage(b));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Lamport clocks

describe('Lamport clocks (lamport.go, spec §3.6)', () => {
  it('witness moves to v+1 only when v is not older', () => {
    const clock = new LamportClock();
    assert.equal(clock.time(), 0n);
    assert.equal(clock.increment(), 1n);
    clock.witness(41n);
    assert.equal(clock.time(), 42n);
    clock.witness(30n);
    assert.equal(clock.time(), 42n);
    clock.witness(42n);
    assert.equal(clock.time(), 43n);
  });

  it('wraps at 2^64 as Go uint64 does', () => {
    const clock = new LamportClock();
    clock.witness((1n << 64n) - 2n);
    assert.equal(clock.time(), (1n << 64n) - 1n);
    assert.equal(clock.increment(), 0n);
  });

  it('a new node starts its three clocks at 1 and knows itself (one member-join)', () => {
    const { serf } = makeNode('a', 1);
    assert.deepEqual(memberEvents(serf.drainEvents()), ['member-join:a']);
    assert.equal(serf.clock.time(), 1n);
    assert.equal(serf.eventClock.time(), 1n);
    assert.equal(serf.queryClock.time(), 1n);
  });

  it('received intents are witnessed', () => {
    const { serf } = makeNode('a', 1);
    serf.notifyMsg(msg({ kind: 'join', lTime: 99n, node: 'ghost' }), 0);
    assert.equal(serf.clock.time(), 100n);
  });
});

// ---------------------------------------------------------------------------------------------
// Intents

describe('intents (serf.go handleNodeJoinIntent/handleNodeLeaveIntent)', () => {
  it('an intent for an unknown member is kept, rebroadcast once, and applied at memberlist join', () => {
    const node = makeNode('a', 1);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 7n, node: 'b', prune: false }), 0);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 7n, node: 'b', prune: false }), 0);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 5n, node: 'b', prune: false }), 0);
    assert.equal(drainIntents(node).length, 1, 'only the first sighting is rebroadcast');
    node.serf.notifyJoin(swimMember('b', 2), 10);
    assert.equal(node.serf.member('b')?.status, MemberStatus.leaving);
    assert.equal(node.serf.statusLTime('b'), 7n);
  });

  it('a newer join intent replaces a buffered leave intent', () => {
    const node = makeNode('a', 1);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 7n, node: 'b', prune: false }), 0);
    node.serf.notifyMsg(msg({ kind: 'join', lTime: 9n, node: 'b' }), 0);
    node.serf.notifyJoin(swimMember('b', 2), 10);
    assert.equal(node.serf.member('b')?.status, MemberStatus.alive);
    assert.equal(node.serf.statusLTime('b'), 9n);
  });

  it('buffered intents expire after recentIntentTimeout (checked at reap)', () => {
    const node = makeNode('a', 1, { reapIntervalMs: 1000, recentIntentTimeoutMs: 5000 });
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 7n, node: 'b', prune: false }), 0);
    node.serf.tick(6001);
    node.serf.notifyJoin(swimMember('b', 2), 6001);
    assert.equal(node.serf.member('b')?.status, MemberStatus.alive);
    assert.equal(node.serf.statusLTime('b'), 0n);
  });

  it('leave and join apply only when newer than statusLTime', () => {
    const node = makeNode('a', 1);
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 5n, node: 'b', prune: false }), 0);
    assert.equal(node.serf.member('b')?.status, MemberStatus.leaving);
    node.serf.notifyMsg(msg({ kind: 'join', lTime: 4n, node: 'b' }), 0);
    assert.equal(node.serf.member('b')?.status, MemberStatus.leaving, 'an older join is ignored');
    node.serf.notifyMsg(msg({ kind: 'join', lTime: 6n, node: 'b' }), 0);
    assert.equal(node.serf.member('b')?.status, MemberStatus.alive);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 6n, node: 'b', prune: false }), 0);
    assert.equal(node.serf.member('b')?.status, MemberStatus.alive, 'an equal leave is ignored');
    assert.equal(node.serf.statusLTime('b'), 6n);
  });

  it('a second leave for a leaving member updates statusLTime and is not bounced forever', () => {
    const node = makeNode('a', 1);
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 5n, node: 'b', prune: false }), 0);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 8n, node: 'b', prune: false }), 0);
    assert.equal(node.serf.statusLTime('b'), 8n);
    drainIntents(node);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 8n, node: 'b', prune: false }), 0);
    assert.equal(drainIntents(node).length, 0);
  });

  it('a leave about ourselves while alive is refuted with a newer join', () => {
    const node = makeNode('a', 1);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 10n, node: 'a', prune: false }), 0);
    assert.equal(node.serf.member('a')?.status, MemberStatus.alive);
    const sent = drainIntents(node);
    assert.equal(sent.length, 1);
    const join = sent[0];
    assert.ok(join?.kind === 'join' && join.node === 'a' && join.lTime > 10n);
  });

  it('memberlist leave: leaving -> left (member-leave), alive -> failed (member-failed)', () => {
    const node = makeNode('a', 1);
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.notifyJoin(swimMember('c', 3), 0);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 5n, node: 'b', prune: false }), 0);
    node.serf.drainEvents();
    node.serf.notifyLeave(swimMember('b', 2, {}, NodeState.left), 1);
    node.serf.notifyLeave(swimMember('c', 3, {}, NodeState.dead), 1);
    assert.deepEqual(memberEvents(node.serf.drainEvents()), ['member-leave:b', 'member-failed:c']);
    assert.equal(node.serf.member('b')?.status, MemberStatus.left);
    assert.equal(node.serf.member('c')?.status, MemberStatus.failed);
  });

  it('a leave intent for a failed member makes it left and emits member-leave', () => {
    const node = makeNode('a', 1);
    node.serf.notifyJoin(swimMember('c', 3), 0);
    node.serf.notifyLeave(swimMember('c', 3), 1);
    node.serf.drainEvents();
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 9n, node: 'c', prune: false }), 2);
    assert.deepEqual(memberEvents(node.serf.drainEvents()), ['member-leave:c']);
    assert.equal(node.serf.member('c')?.status, MemberStatus.left);
    assert.equal(node.serf.stats()['left'], '1');
    assert.equal(node.serf.stats()['failed'], '0');
  });

  it('a member event carries serf\'s member view', () => {
    const node = makeNode('a', 1);
    node.serf.drainEvents();
    node.serf.notifyJoin(swimMember('b', 2, { role: 'consul', dc: 'dc1' }), 0);
    const [event] = node.serf.drainEvents();
    assert.ok(event?.kind === 'member' && event.type === 'member-join');
    const m = event.members[0];
    assert.ok(m !== undefined);
    assert.deepEqual({ ...m, tags: Object.fromEntries(m.tags) }, {
      name: 'b', addr: Uint8Array.of(10, 0, 0, 2), port: 8301, tags: { role: 'consul', dc: 'dc1' }, status: 1,
      protocolMin: 1, protocolMax: 5, protocolCur: 2, delegateMin: 2, delegateMax: 5, delegateCur: 4,
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Reap and reconnect

describe('reap and reconnect (serf.go handleReap, reconnect)', () => {
  it('failed members are reaped only after reconnectTimeout, at a reap tick', () => {
    const node = makeNode('a', 1, { reapIntervalMs: 1000, reconnectTimeoutMs: 10_000, reconnectIntervalMs: 1e9 });
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.notifyLeave(swimMember('b', 2), 500);
    node.serf.drainEvents();
    node.serf.tick(10_500); // exactly the timeout: serf keeps it (<=)
    assert.ok(node.serf.member('b') !== null);
    node.serf.tick(10_999); // not a reap tick yet
    assert.ok(node.serf.member('b') !== null);
    node.serf.tick(11_500);
    assert.equal(node.serf.member('b'), null);
    assert.deepEqual(memberEvents(node.serf.drainEvents()), ['member-reap:b']);
  });

  it('left members are reaped after tombstoneTimeout', () => {
    const node = makeNode('a', 1, { reapIntervalMs: 1000, tombstoneTimeoutMs: 3000, reconnectTimeoutMs: 1e9 });
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 5n, node: 'b', prune: false }), 0);
    node.serf.notifyLeave(swimMember('b', 2), 0);
    node.serf.tick(3000);
    assert.ok(node.serf.member('b') !== null);
    node.serf.tick(4000);
    assert.equal(node.serf.member('b'), null);
  });

  it('a failed member that comes back is alive again and no longer reaped', () => {
    const node = makeNode('a', 1, { reapIntervalMs: 1000, reconnectTimeoutMs: 2000 });
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.notifyLeave(swimMember('b', 2), 0);
    node.serf.notifyJoin(swimMember('b', 2), 500);
    assert.equal(node.serf.counters['memberFlap'], 1);
    node.serf.tick(5000);
    assert.equal(node.serf.member('b')?.status, MemberStatus.alive);
  });

  it('reconnect joins a failed member with probability failed/alive', () => {
    const node = makeNode('a', 1, { reconnectIntervalMs: 1000 });
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.notifyLeave(swimMember('b', 2), 0);
    node.serf.tick(1000); // failed 1 / alive 1: always
    assert.deepEqual(node.host.joins, [[addressOf(2)]]);
  });

  it('forceLeave with prune erases a failed member at once (member-leave, member-reap)', () => {
    const node = makeNode('a', 1);
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.notifyJoin(swimMember('c', 3), 0);
    node.serf.notifyLeave(swimMember('c', 3), 0);
    node.serf.drainEvents();
    const id = node.serf.forceLeave('c', true, 1);
    assert.ok(id !== null);
    assert.deepEqual(memberEvents(node.serf.drainEvents()), ['member-leave:c', 'member-reap:c']);
    assert.equal(node.serf.member('c'), null);
    assert.equal(node.serf.isBroadcastFinished(id), false);
    drainIntents(node);
    assert.equal(node.serf.isBroadcastFinished(id), true);
  });

  it('prune of a leaving member waits broadcastTimeout + leavePropagateDelay', () => {
    const node = makeNode('a', 1, { broadcastTimeoutMs: 5000, leavePropagateDelayMs: 1000 });
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 5n, node: 'b', prune: true }), 100);
    node.serf.tick(6099);
    assert.ok(node.serf.member('b') !== null);
    node.serf.tick(6100);
    assert.equal(node.serf.member('b'), null);
  });
});

// ---------------------------------------------------------------------------------------------
// User events

describe('user events (serf.go UserEvent, handleUserEvent)', () => {
  it('delivered locally once, stamped with the event clock, rebroadcast once', () => {
    const node = makeNode('a', 1);
    node.serf.drainEvents();
    assert.equal(node.serf.userEvent('deploy', text('v1'), true, 0), null);
    const [event] = node.serf.drainEvents();
    assert.ok(event?.kind === 'user' && event.lTime === 1n && event.name === 'deploy' && event.coalesce);
    assert.equal(node.serf.eventClock.time(), 2n);
    const wire = msg({ kind: 'userEvent', lTime: 1n, name: 'deploy', payload: text('v1'), cc: true });
    assert.deepEqual(node.serf.getBroadcasts(2, 1400), [wire]);
    node.serf.notifyMsg(wire, 0);
    assert.equal(node.serf.drainEvents().length, 0, 'a duplicate is not delivered');
  });

  it('same LTime, different payload: both delivered', () => {
    const node = makeNode('a', 1);
    node.serf.notifyMsg(msg({ kind: 'userEvent', lTime: 3n, name: 'x', payload: text('1'), cc: false }), 0);
    node.serf.notifyMsg(msg({ kind: 'userEvent', lTime: 3n, name: 'x', payload: text('2'), cc: false }), 0);
    assert.equal(node.serf.drainEvents().filter((e) => e.kind === 'user').length, 2);
  });

  it('events older than the ring (clock - 512) are dropped', () => {
    const node = makeNode('a', 1);
    node.serf.notifyMsg(msg({ kind: 'userEvent', lTime: 1000n, name: 'new', payload: new Uint8Array(), cc: false }), 0);
    node.serf.drainEvents();
    node.serf.notifyMsg(msg({ kind: 'userEvent', lTime: 488n, name: 'old', payload: new Uint8Array(), cc: false }), 0);
    assert.equal(node.serf.drainEvents().length, 0);
    assert.equal(node.serf.counters['eventsTooOld'], 1);
    node.serf.notifyMsg(msg({ kind: 'userEvent', lTime: 489n, name: 'edge', payload: new Uint8Array(), cc: false }), 0);
    assert.equal(node.serf.drainEvents().length, 1, 'exactly clock - 512 is still accepted');
  });

  it('a ring slot reused by a newer LTime forgets the older events', () => {
    const node = makeNode('a', 1);
    const e = (lTime: bigint): Uint8Array => msg({ kind: 'userEvent', lTime, name: 'x', payload: new Uint8Array(), cc: false });
    node.serf.notifyMsg(e(5n), 0);
    node.serf.notifyMsg(e(517n), 0);
    node.serf.notifyMsg(e(517n), 0);
    assert.equal(node.serf.drainEvents().filter((event) => event.kind === 'user').length, 2);
    const state = decodeSerfMessage(node.serf.localState(false, 0));
    assert.ok(state.kind === 'pushPull');
    assert.equal(state.events.length, 512);
    assert.equal(state.events[5]?.lTime, 517n);
  });

  it('size limits: name + payload over 512 bytes is refused before and after encoding', () => {
    const node = makeNode('a', 1);
    assert.equal(node.serf.userEvent('x', new Uint8Array(512), false, 0)?.code, 'ERR_SERF_EVENT_TOO_LARGE');
    assert.equal(node.serf.userEvent('x', new Uint8Array(500), false, 0)?.code, 'ERR_SERF_EVENT_TOO_LARGE', 'encoded size counts too');
    assert.equal(node.serf.userEvent('x', new Uint8Array(400), false, 0), null);
    assert.equal(node.serf.eventClock.time(), 2n, 'refused events do not tick the clock');
  });
});

// ---------------------------------------------------------------------------------------------
// Push/pull

describe('push/pull (delegate.go LocalState/MergeRemoteState, spec §3.3)', () => {
  it('local state lists every member with its statusLTime, left members and the 512-slot ring', () => {
    const node = makeNode('a', 1);
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.notifyMsg(msg({ kind: 'join', lTime: 4n, node: 'b' }), 0);
    node.serf.notifyJoin(swimMember('c', 3), 0);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 6n, node: 'c', prune: false }), 0);
    node.serf.notifyLeave(swimMember('c', 3), 0);
    const state = decodeSerfMessage(node.serf.localState(false, 0));
    assert.ok(state.kind === 'pushPull');
    assert.deepEqual(Object.fromEntries(state.statusLTimes), { a: 0n, b: 4n, c: 6n });
    assert.deepEqual(state.leftMembers, ['c']);
    assert.equal(state.lTime, node.serf.clock.time());
    assert.equal(state.events.length, 512);
    assert.ok(state.events.every((slot) => slot === null));
    const hex = Buffer.from(node.serf.localState(false, 0)).toString('hex');
    assert.ok(hex.startsWith('02'));
    assert.ok(hex.includes('a6' + Buffer.from('Events').toString('hex') + 'dc0200' + 'c0'.repeat(512)), 'the whole ring, as serf sends it (spec §3.3)');
  });

  it('merge: clocks witness value-1, left -> leave intent at StatusLTimes+1, others -> join intents, events replayed', () => {
    const node = makeNode('a', 1);
    node.serf.notifyJoin(swimMember('f', 6), 0);
    node.serf.notifyLeave(swimMember('f', 6), 0); // failed here
    node.serf.drainEvents();
    const remote = msg({
      kind: 'pushPull',
      lTime: 50n,
      statusLTimes: new Map([['f', 20n], ['y', 30n]]),
      leftMembers: ['f'],
      eventLTime: 40n,
      events: [{ lTime: 12n, events: [{ name: 'deploy', payload: text('p') }] }],
      queryLTime: 9n,
    });
    node.serf.mergeRemoteState(remote, false, 0);
    assert.equal(node.serf.clock.time(), 50n, 'witness(49) -> 50');
    assert.equal(node.serf.eventClock.time(), 40n);
    assert.equal(node.serf.queryClock.time(), 9n);
    assert.equal(node.serf.member('f')?.status, MemberStatus.left);
    assert.equal(node.serf.statusLTime('f'), 21n);
    node.serf.notifyJoin(swimMember('y', 7), 0);
    assert.equal(node.serf.statusLTime('y'), 30n, 'the join intent was buffered for y');
    const events = node.serf.drainEvents();
    assert.deepEqual(memberEvents(events), ['member-leave:f', 'member-join:y']);
    assert.ok(events.some((e) => e.kind === 'user' && e.name === 'deploy' && e.lTime === 12n));
  });

  it('a join with ignoreOld sets eventMinTime and drops the replayed events', () => {
    const node = makeNode('a', 1);
    node.serf.drainEvents();
    assert.equal(node.serf.join([addressOf(2)], true, 0), null);
    assert.deepEqual(node.host.joins, [[addressOf(2)]]);
    const remote = msg({ kind: 'pushPull', lTime: 5n, statusLTimes: new Map(), leftMembers: [], eventLTime: 40n, events: [{ lTime: 12n, events: [{ name: 'old', payload: new Uint8Array() }] }], queryLTime: 1n });
    node.serf.mergeRemoteState(remote, true, 0);
    node.serf.joinFinished(1, 0);
    assert.equal(node.serf.drainEvents().filter((e) => e.kind === 'user').length, 0);
    node.serf.notifyMsg(msg({ kind: 'userEvent', lTime: 39n, name: 'older', payload: new Uint8Array(), cc: false }), 0);
    node.serf.notifyMsg(msg({ kind: 'userEvent', lTime: 40n, name: 'new', payload: new Uint8Array(), cc: false }), 0);
    assert.deepEqual(node.serf.drainEvents().flatMap((e) => (e.kind === 'user' ? [e.name] : [])), ['new']);
  });

  it('restored clocks: events up to the saved event time are not delivered again', () => {
    const node = makeNode('a', 1);
    node.serf.restoreClocks({ clock: 10n, eventClock: 20n, queryClock: 30n });
    assert.deepEqual([node.serf.clock.time(), node.serf.eventClock.time(), node.serf.queryClock.time()], [11n, 21n, 31n]);
    node.serf.notifyMsg(msg({ kind: 'userEvent', lTime: 20n, name: 'old', payload: new Uint8Array(), cc: false }), 0);
    node.serf.notifyMsg(msg({ kind: 'userEvent', lTime: 21n, name: 'new', payload: new Uint8Array(), cc: false }), 0);
    assert.deepEqual(node.serf.drainEvents().flatMap((e) => (e.kind === 'user' ? [e.name] : [])), ['new']);
  });

  it('without ignoreOld, a join replays old events', () => {
    const node = makeNode('a', 1);
    node.serf.drainEvents();
    node.serf.join([addressOf(2)], false, 0);
    const remote = msg({ kind: 'pushPull', lTime: 5n, statusLTimes: new Map(), leftMembers: [], eventLTime: 40n, events: [{ lTime: 12n, events: [{ name: 'old', payload: new Uint8Array() }] }], queryLTime: 1n });
    node.serf.mergeRemoteState(remote, true, 0);
    assert.equal(node.serf.drainEvents().filter((e) => e.kind === 'user').length, 1);
  });

  it('joinFinished broadcasts our join intent only when someone was contacted', () => {
    const node = makeNode('a', 1);
    node.serf.joinFinished(0, 0);
    assert.equal(drainIntents(node).length, 0);
    node.serf.joinFinished(2, 0);
    const [join] = drainIntents(node);
    assert.ok(join?.kind === 'join' && join.node === 'a' && join.lTime === 1n);
    assert.equal(node.serf.clock.time(), 2n);
  });

  it('two nodes converge through push/pull', () => {
    const a = makeNode('a', 1);
    const b = makeNode('b', 2);
    a.serf.userEvent('e1', text('x'), false, 0);
    b.serf.mergeRemoteState(a.serf.localState(true, 0), true, 0);
    assert.ok(b.serf.drainEvents().some((e) => e.kind === 'user' && e.name === 'e1'));
  });

  it('bad remote state is counted, never thrown', () => {
    const node = makeNode('a', 1);
    node.serf.mergeRemoteState(new Uint8Array(), false, 0);
    node.serf.mergeRemoteState(Uint8Array.of(1, 0x80), false, 0);
    node.serf.mergeRemoteState(Uint8Array.of(2, 0xc1), false, 0);
    assert.equal(node.serf.counters['remoteStateRejected'], 2);
    assert.equal(node.serf.counters['remoteStateDecodeErrors'], 1);
  });
});

// ---------------------------------------------------------------------------------------------
// Tags

describe('tags (spec §3.4)', () => {
  it('nodeMeta is ff + msgpack tags and round-trips', () => {
    const tags = new Map([['role', 'consul'], ['dc', 'dc1'], ['port', '8300']]);
    const node = makeNode('a', 1, { tags });
    const meta = node.serf.nodeMeta(512);
    assert.equal(meta[0], 0xff);
    assert.deepEqual(decodeTags(meta), tags);
  });

  it('setTags re-advertises through updateMeta; oversized tags are refused', () => {
    const node = makeNode('a', 1);
    assert.equal(node.serf.setTags(new Map([['role', 'web']]), 0), null);
    assert.equal(node.host.metaUpdates, 1);
    assert.deepEqual(decodeTags(node.serf.nodeMeta(512)), new Map([['role', 'web']]));
    assert.equal(node.serf.setTags(new Map([['big', 'x'.repeat(600)]]), 0)?.code, 'ERR_SERF_TAGS_TOO_LARGE');
    assert.deepEqual(node.serf.currentTags(), new Map([['role', 'web']]));
    assert.equal(node.host.metaUpdates, 1);
  });

  it('a meta update becomes member-update with the new tags; bad meta gives empty tags', () => {
    const node = makeNode('a', 1);
    node.serf.notifyJoin(swimMember('b', 2, { role: 'x' }), 0);
    node.serf.drainEvents();
    node.serf.notifyUpdate(swimMember('b', 2, { role: 'y' }), 0);
    const [event] = node.serf.drainEvents();
    assert.ok(event?.kind === 'member' && event.type === 'member-update');
    assert.equal(event.members[0]?.tags.get('role'), 'y');
    node.serf.notifyUpdate({ ...swimMember('b', 2), meta: Uint8Array.of(0xff, 0x81) }, 0);
    assert.equal(node.serf.member('b')?.tags.size, 0);
    assert.equal(node.serf.counters['tagDecodeErrors'], 1);
    node.serf.notifyUpdate({ ...swimMember('b', 2), meta: text('web') }, 0);
    assert.deepEqual(node.serf.member('b')?.tags, new Map([['role', 'web']]), 'a bare role (protocol < 3)');
  });
});

// ---------------------------------------------------------------------------------------------
// Broadcast queue

describe('broadcast queue (memberlist queue.go)', () => {
  it('retransmit limit is RetransmitMult x ceil(log10(n+1))', () => {
    assert.equal(retransmitLimit(4, 1), 4);
    assert.equal(retransmitLimit(4, 9), 4);
    assert.equal(retransmitLimit(4, 10), 8);
    assert.equal(retransmitLimit(4, 100), 12);
  });

  it('each message is handed out exactly the transmit limit times, then dropped (notify fires)', () => {
    const finished: number[] = [];
    const queue = new TransmitQueue(4, (id) => finished.push(id));
    queue.queue(Uint8Array.of(1, 2, 3), 7);
    let count = 0;
    for (let i = 0; i < 10; i++) count += queue.getBroadcasts(2, 1400, 5).length;
    assert.equal(count, 4);
    assert.deepEqual(finished, [7]);
    assert.equal(queue.length, 0);
  });

  it('respects the byte limit counting the overhead, larger messages first', () => {
    const queue = new TransmitQueue(4, () => undefined);
    queue.queue(new Uint8Array(100));
    queue.queue(new Uint8Array(300));
    queue.queue(new Uint8Array(200));
    const out = queue.getBroadcasts(10, 520, 3);
    assert.deepEqual(out.map((m) => m.length), [300, 200]);
    const next = queue.getBroadcasts(10, 120, 3);
    assert.deepEqual(next.map((m) => m.length), [100], 'fewest transmits first');
    assert.deepEqual(queue.getBroadcasts(10, 10, 3), []);
  });

  it('SerfNode.getBroadcasts: intents, then queries, then events, within the limit', () => {
    const node = makeNode('a', 1);
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.userEvent('e', new Uint8Array(100), false, 0);
    node.serf.notifyMsg(msg({ kind: 'join', lTime: 9n, node: 'zz' }), 0);
    const out = node.serf.getBroadcasts(3, 1400);
    assert.deepEqual(out.map((m) => m[0]), [1, 3]);
    const small = makeNode('s', 9);
    small.serf.userEvent('e', new Uint8Array(100), false, 0);
    small.serf.notifyMsg(msg({ kind: 'join', lTime: 9n, node: 'zz' }), 0);
    const limited = small.serf.getBroadcasts(3, 40);
    assert.ok(limited.reduce((sum, m) => sum + m.length + 3, 0) <= 40);
    assert.deepEqual(limited.map((m) => m[0]), [1]);
  });

  it('the queue depth check prunes to max(2 x members, MinQueueDepth) for Consul', () => {
    const node = makeNode('a', 1, { ...consulSerfConfig('a', new Map()), minQueueDepth: 3, queueCheckIntervalMs: 1000, reapIntervalMs: 1e9, reconnectIntervalMs: 1e9 });
    for (let i = 0; i < 10; i++) node.serf.notifyMsg(msg({ kind: 'join', lTime: BigInt(10 + i), node: `ghost${i}` }), 0);
    assert.equal(node.serf.stats()['intent_queue'], '10');
    node.serf.tick(1000);
    assert.equal(node.serf.stats()['intent_queue'], '3');
    assert.equal(node.serf.counters['queuePruned'], 7);
  });
});

// ---------------------------------------------------------------------------------------------
// Queries

describe('queries (query.go, spec §3.7)', () => {
  it('ack and response reach the issuer; duplicates ignored; collector closes at the deadline', () => {
    const cluster = new Cluster(3);
    const a = cluster.node(0);
    const collector = a.serf.query('hello', text('hi'), { requestAck: true, timeoutMs: 1000 }, 0);
    assert.ok(!(collector instanceof Error));
    cluster.settle(10);
    for (const node of cluster.nodes) {
      const query = node.serf.drainEvents().find((e) => e.kind === 'query');
      assert.ok(query?.kind === 'query' && query.name === 'hello', `${node.name} got the query`);
      assert.equal(node.serf.respond(query, text(`from ${node.name}`), 20), null);
      assert.equal(node.serf.respond(query, text('again'), 20)?.code, 'ERR_SERF_RESPONSE_SENT');
    }
    cluster.deliverPackets(20);
    assert.deepEqual([...collector.acks].sort(), ['n0', 'n1', 'n2']);
    assert.deepEqual([...collector.responses.keys()].sort(), ['n0', 'n1', 'n2']);
    assert.deepEqual(Buffer.from(collector.responses.get('n1') ?? []).toString(), 'from n1');
    a.serf.tick(1001);
    assert.ok(collector.isFinished(1001));
  });

  it('responses after the deadline are refused', () => {
    const cluster = new Cluster(2);
    cluster.node(0).serf.query('q', new Uint8Array(), { timeoutMs: 100 }, 0);
    cluster.settle(0);
    const b = cluster.node(1);
    const query = b.serf.drainEvents().find((e) => e.kind === 'query');
    assert.ok(query?.kind === 'query');
    assert.equal(b.serf.respond(query, text('late'), 101)?.code, 'ERR_SERF_PAST_DEADLINE');
  });

  it('filters: a node filter that does not list us means no answer, but the query is still passed on', () => {
    const cluster = new Cluster(3);
    cluster.node(0).serf.query('q', new Uint8Array(), { filterNodes: ['n2'], requestAck: true, timeoutMs: 1000 }, 0);
    const b = cluster.node(1);
    const [raw] = cluster.node(0).serf.getBroadcasts(2, 1400);
    assert.ok(raw !== undefined);
    b.serf.notifyMsg(raw, 0);
    assert.equal(b.serf.drainEvents().filter((e) => e.kind === 'query').length, 0);
    assert.equal(b.host.sent.length, 0, 'no ack');
    assert.equal(b.serf.getBroadcasts(2, 1400).length, 1, 'rebroadcast');
  });

  it('tag filters are regexps over our tags', () => {
    const cluster = new Cluster(2);
    const a = cluster.node(0);
    a.serf.query('q', new Uint8Array(), { filterTags: { role: '^te' }, timeoutMs: 1000 }, 0);
    a.serf.query('r', new Uint8Array(), { filterTags: { role: '^web$' }, timeoutMs: 1000 }, 0);
    a.serf.query('s', new Uint8Array(), { filterTags: { role: '([' }, timeoutMs: 1000 }, 0);
    a.serf.query('t', new Uint8Array(), { filterTags: { role: '(?i)^TEST$' }, timeoutMs: 1000 }, 0);
    a.serf.query('u', new Uint8Array(), { filterTags: { role: 'te', missing: '^$' }, timeoutMs: 1000 }, 0);
    cluster.settle(0);
    assert.deepEqual(cluster.node(1).serf.drainEvents().flatMap((e) => (e.kind === 'query' ? [e.name] : [])).sort(), ['q', 't', 'u']);
  });

  it('relayed responses: relay members forward the inner message to the issuer', () => {
    const cluster = new Cluster(3);
    const a = cluster.node(0);
    const collector = a.serf.query('q', new Uint8Array(), { relayFactor: 1, timeoutMs: 1000 }, 0);
    assert.ok(!(collector instanceof Error));
    cluster.settle(0);
    const c = cluster.node(2);
    const query = c.serf.drainEvents().find((e) => e.kind === 'query');
    assert.ok(query?.kind === 'query');
    c.serf.respond(query, text('r'), 1);
    assert.equal(c.host.sent.length, 2, 'direct plus one relay');
    const relay = decodeSerfMessage(c.host.sent[1]?.payload ?? new Uint8Array());
    assert.ok(relay.kind === 'relay' && relay.header.destName === 'n0');
    cluster.deliverPackets(1);
    assert.equal(collector.responses.get('n2')?.length, 1);
    assert.equal(a.serf.counters['duplicateResponses'], 1, 'the relayed copy is a duplicate');
  });

  it('queries are deduplicated by ID in the query ring', () => {
    const node = makeNode('a', 1);
    const q = msg({ kind: 'query', lTime: 5n, id: 77, addr: Uint8Array.of(10, 0, 0, 9), port: 8301, sourceNode: 'x', filters: [], flags: 0, relayFactor: 0, timeoutNs: 1e9, name: 'q', payload: new Uint8Array() });
    node.serf.notifyMsg(q, 0);
    node.serf.notifyMsg(q, 0);
    assert.equal(node.serf.drainEvents().filter((e) => e.kind === 'query').length, 1);
  });

  it('NoBroadcast queries are answered but not passed on', () => {
    const node = makeNode('a', 1);
    node.serf.notifyMsg(msg({ kind: 'query', lTime: 5n, id: 1, addr: Uint8Array.of(10, 0, 0, 9), port: 8301, sourceNode: 'x', filters: [], flags: QueryFlag.noBroadcast, relayFactor: 0, timeoutNs: 1e9, name: 'q', payload: new Uint8Array() }), 0);
    assert.equal(node.serf.drainEvents().filter((e) => e.kind === 'query').length, 1);
    assert.equal(node.serf.getBroadcasts(2, 1400).length, 0);
  });

  it('_serf_ping is acked and never reaches the application; _serf_conflict answers with the member', () => {
    const cluster = new Cluster(3);
    const a = cluster.node(0);
    const ping = a.serf.query('_serf_ping', new Uint8Array(), { requestAck: true, timeoutMs: 1000 }, 0);
    const conflict = a.serf.query('_serf_conflict', text('n2'), { timeoutMs: 1000 }, 0);
    assert.ok(!(ping instanceof Error) && !(conflict instanceof Error));
    cluster.settle(0);
    for (const node of cluster.nodes) assert.equal(node.serf.drainEvents().filter((e) => e.kind === 'query').length, 0);
    assert.equal(ping.acks.size, 3);
    assert.deepEqual([...conflict.responses.keys()].sort(), ['n0', 'n1'], 'n2 does not answer about itself');
    const answer = decodeSerfMessage(conflict.responses.get('n1') ?? new Uint8Array());
    assert.ok(answer.kind === 'conflictResponse' && answer.member?.name === 'n2' && answer.member.status === MemberStatus.alive);
  });

  it('the default timeout is GossipInterval x 16 x ceil(log10(n+1))', () => {
    const cluster = new Cluster(3);
    assert.equal(cluster.node(0).serf.defaultQueryTimeoutMs(), 3200);
  });

  it('bad parameters are refused as values, not thrown', () => {
    const node = makeNode('a', 1);
    const result = node.serf.query('q', new Uint8Array(), { relayFactor: 300 }, 0);
    assert.ok(result instanceof Error && result.code === 'ERR_SERF_BAD_PARAMS');
  });

  it('oversized queries are refused', () => {
    const node = makeNode('a', 1);
    const result = node.serf.query('q', new Uint8Array(1100), {}, 0);
    assert.ok(result instanceof Error && result.code === 'ERR_SERF_QUERY_TOO_LARGE');
  });
});

// ---------------------------------------------------------------------------------------------
// Key queries

const KEY1 = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const KEY2 = Uint8Array.from({ length: 16 }, (_, i) => 100 + i);

describe('key queries (internal_query.go, keymanager.go)', () => {
  function keyCluster(): { cluster: Cluster; rings: Keyring[] } {
    const rings = [new Keyring([], KEY1), new Keyring([], KEY1), new Keyring([], KEY1)];
    return { cluster: new Cluster(3, rings), rings };
  }

  function run(cluster: Cluster, op: 'install-key' | 'use-key' | 'remove-key' | 'list-keys', key: Uint8Array | null, doneAtMs = 0): ReturnType<typeof summarizeKeyResponses> {
    const collector = cluster.node(0).serf.keyQuery(op, key === null ? '' : formatGossipKey(key), 0);
    assert.ok(!(collector instanceof Error), String(collector));
    cluster.settle(0);
    assert.ok(isKeyQueryComplete(collector, doneAtMs));
    return summarizeKeyResponses(collector);
  }

  it('install, use, list, and refusing to remove the primary key', () => {
    const { cluster, rings } = keyCluster();
    const install = run(cluster, 'install-key', KEY2);
    assert.equal(install.error, null);
    assert.equal(install.numResp, 3);
    for (const ring of rings) assert.equal(ring.getKeys().length, 2);
    assert.ok(cluster.node(1).serf.drainEvents().some((e) => e.kind === 'keyring-changed'));

    const use = run(cluster, 'use-key', KEY2);
    assert.equal(use.error, null);
    for (const ring of rings) assert.deepEqual(ring.getPrimaryKey(), KEY2);

    const list = run(cluster, 'list-keys', null);
    assert.equal(list.error, null);
    assert.deepEqual(Object.fromEntries(list.keys), { [formatGossipKey(KEY2)]: 3, [formatGossipKey(KEY1)]: 3 });
    assert.deepEqual(Object.fromEntries(list.primaryKeys), { [formatGossipKey(KEY2)]: 3 });

    const removePrimary = run(cluster, 'remove-key', KEY2);
    assert.equal(removePrimary.numErr, 3);
    assert.equal(removePrimary.error, '3/3 nodes reported failure');
    assert.equal(removePrimary.messages.get('n1'), 'Removing the primary key is not allowed');

    const remove = run(cluster, 'remove-key', KEY1);
    assert.equal(remove.error, null);
    for (const ring of rings) assert.equal(ring.getKeys().length, 1);
  });

  it('use of an unknown key fails on every node', () => {
    const { cluster } = keyCluster();
    const use = run(cluster, 'use-key', KEY2);
    assert.equal(use.numErr, 3);
    assert.equal(use.messages.get('n2'), 'Requested key is not in the keyring');
  });

  it('without encryption nodes answer that there is no keyring', () => {
    const cluster = new Cluster(2);
    const install = run(cluster, 'install-key', KEY2);
    assert.equal(install.numErr, 2);
    assert.equal(install.messages.get('n1'), 'No keyring to modify (encryption not enabled)');
    const list = run(cluster, 'list-keys', null);
    assert.equal(list.messages.get('n1'), 'Keyring is empty (encryption not enabled)');
  });

  it('a missing node shows up as N-1/N success', () => {
    const { cluster } = keyCluster();
    cluster.node(0).host.known.push(swimMember('ghost', 99));
    const list = run(cluster, 'list-keys', null, 60_000);
    assert.equal(list.error, '3/4 nodes reported success');
  });

  it('a bad base64 key is refused before any query', () => {
    const node = makeNode('a', 1);
    const result = node.serf.keyQuery('install-key', 'not base64!', 0);
    assert.ok(result instanceof Error && result.code === 'ERR_SERF_BAD_KEY');
  });

  it('list-keys truncates to fit the response limit', () => {
    const keys = Array.from({ length: 30 }, (_, k) => Uint8Array.from({ length: 32 }, (_, i) => (k * 7 + i) & 0xff));
    const ring = new Keyring(keys.slice(1), keys[0]);
    const cluster = new Cluster(1, [ring]);
    const list = run(cluster, 'list-keys', null);
    assert.equal(list.numResp, 1);
    const listed = [...list.keys.keys()].length;
    assert.ok(listed < 30 && listed > 10, `listed ${listed}`);
    assert.match(list.messages.get('n0') ?? '', /^truncated key list response, showing first \d+ of 30 keys$/);
  });
});

// ---------------------------------------------------------------------------------------------
// Leave

describe('graceful leave (serf.go Leave)', () => {
  it('intent broadcast, then memberlist leave, then the propagate delay, then left', () => {
    const node = makeNode('a', 1, { broadcastTimeoutMs: 5000, leavePropagateDelayMs: 3000 });
    node.serf.notifyJoin(swimMember('b', 2), 0);
    assert.equal(node.serf.leave(100), null);
    assert.equal(node.serf.serfState(), 'leaving');
    assert.equal(node.serf.leave(100)?.code, 'ERR_SERF_LEAVE_IN_PROGRESS');
    assert.equal(node.serf.member('a')?.status, MemberStatus.leaving);
    assert.equal(node.serf.leaveStatus().phase, 'intent');
    assert.equal(node.serf.nextDeadlineMs(), 5100, 'waiting for the intent, at most broadcastTimeout');
    const [leave] = drainIntents(node);
    assert.ok(leave?.kind === 'leave' && leave.node === 'a' && leave.lTime === 1n);
    assert.equal(node.serf.nextDeadlineMs(), 0, 'the intent went out: the next step is due now');
    node.serf.tick(200);
    assert.equal(node.serf.leaveStatus().phase, 'memberlist');
    assert.equal(node.host.leaveCalls, 1);
    node.host.isLeaveDone = true;
    node.serf.tick(300);
    assert.equal(node.serf.leaveStatus().phase, 'propagate');
    assert.equal(node.serf.nextDeadlineMs(), 3300);
    node.serf.tick(3299);
    assert.equal(node.serf.serfState(), 'leaving');
    node.serf.tick(3300);
    assert.equal(node.serf.serfState(), 'left');
    assert.equal(node.serf.leave(4000), null);
    assert.equal(node.serf.join([addressOf(2)], false, 4000)?.code, 'ERR_SERF_NOT_ALIVE');
  });

  it('alone: no intent broadcast, straight to the memberlist leave', () => {
    const node = makeNode('a', 1);
    node.host.isLeaveDone = true;
    node.serf.leave(0);
    assert.equal(node.host.leaveCalls, 1);
    assert.equal(node.serf.leaveStatus().phase, 'propagate');
    assert.equal(node.serf.getBroadcasts(2, 1400).length, 0);
  });

  it('a leave intent that does not go out within broadcastTimeout fails the leave', () => {
    const node = makeNode('a', 1, { broadcastTimeoutMs: 5000 });
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.leave(0);
    node.serf.tick(5000);
    const status = node.serf.leaveStatus();
    assert.equal(status.phase, 'failed');
    assert.equal(status.error?.message, 'timeout while waiting for graceful leave');
    assert.equal(node.host.leaveCalls, 0);
  });

  it('a leaving node does not refute its own leave', () => {
    const node = makeNode('a', 1);
    node.serf.notifyJoin(swimMember('b', 2), 0);
    node.serf.leave(0);
    drainIntents(node);
    node.serf.notifyMsg(msg({ kind: 'leave', lTime: 50n, node: 'a', prune: false }), 0);
    assert.ok(drainIntents(node).every((m) => m.kind !== 'join'));
  });
});

// ---------------------------------------------------------------------------------------------
// Coordinates and merge delegate

describe('ping delegate and merge delegate', () => {
  it('ack payload is our coordinate; a ping completion updates it and caches the peer', () => {
    const node = makeNode('a', 1);
    assert.deepEqual(node.serf.ackPayload(), encodeCoordinatePayload(newCoordinate()));
    const other = { ...newCoordinate(), vec: [0.01, 0, 0, 0, 0, 0, 0, 0] };
    node.serf.notifyPingComplete(swimMember('b', 2), 5, encodeCoordinatePayload(other));
    assert.deepEqual(node.serf.getCachedCoordinate('b'), other);
    assert.notDeepEqual(node.serf.getCoordinate(), newCoordinate());
    node.serf.notifyPingComplete(swimMember('b', 2), 5, new Uint8Array());
    node.serf.notifyPingComplete(swimMember('b', 2), 5, Uint8Array.of(2));
    node.serf.notifyPingComplete(swimMember('b', 2), 50_000, encodeCoordinatePayload(other));
    assert.equal(node.serf.counters['coordinateDecodeErrors'], 1);
    assert.equal(node.serf.counters['coordinateRejected'], 1);
  });

  it('coordinates disabled: empty ack payload and nothing cached', () => {
    const node = makeNode('a', 1, { disableCoordinates: true });
    assert.equal(node.serf.ackPayload().length, 0);
    assert.equal(node.serf.getCoordinate(), null);
  });

  it('the merge delegate sees serf members (left -> status left, else none) and can refuse', () => {
    const seen: number[] = [];
    let host: StubHost | undefined;
    const serf = new SerfNode(serfDefaultConfig('a'), {
      rng: seededRng(1),
      createHost: () => (host = new StubHost(swimMember('a', 1))),
      merge: (members) => {
        seen.push(...members.map((m) => m.status));
        return members.some((m) => m.tags.get('dc') === 'dc2') ? 'wrong dc' : null;
      },
    }, 0);
    assert.ok(host !== undefined);
    assert.equal(serf.notifyAlive(swimMember('b', 2, { dc: 'dc1' })), true);
    assert.equal(serf.notifyAlive(swimMember('c', 3, { dc: 'dc2' })), false);
    assert.equal(serf.notifyMerge([swimMember('d', 4, {}, NodeState.left)]), null);
    assert.equal(serf.notifyMerge([swimMember('e', 5, { dc: 'dc2' })]), 'wrong dc', 'the refusal text reaches memberlist (the join error)');
    assert.deepEqual(seen, [MemberStatus.none, MemberStatus.none, MemberStatus.left, MemberStatus.none]);
  });
});

// ---------------------------------------------------------------------------------------------
// Garbage

describe('bad input', () => {
  it('random and mutated user messages never throw; they are counted', () => {
    const node = makeNode('a', 1);
    node.serf.notifyJoin(swimMember('b', 2), 0);
    const rng = seededRng(42);
    const seeds = [
      msg({ kind: 'join', lTime: 3n, node: 'b' }),
      msg({ kind: 'leave', lTime: 3n, node: 'b', prune: true }),
      msg({ kind: 'userEvent', lTime: 3n, name: 'x', payload: text('y'), cc: false }),
      msg({ kind: 'query', lTime: 3n, id: 1, addr: Uint8Array.of(1, 2, 3, 4), port: 1, sourceNode: 's', filters: [Uint8Array.of(0, 0x91, 0xa1, 0x61)], flags: 1, relayFactor: 2, timeoutNs: 1e9, name: 'q', payload: new Uint8Array() }),
      msg({ kind: 'queryResponse', lTime: 3n, id: 1, from: 'b', flags: 0, payload: text('r') }),
    ];
    for (let i = 0; i < 5000; i++) {
      let bytes: Uint8Array;
      if (i % 2 === 0) {
        bytes = Uint8Array.from({ length: Math.floor(rng() * 64) }, () => Math.floor(rng() * 256));
      } else {
        const seed = seeds[i % seeds.length] ?? new Uint8Array();
        bytes = seed.slice();
        for (let k = 0; k < 3; k++) bytes[Math.floor(rng() * bytes.length)] = Math.floor(rng() * 256);
        if (rng() < 0.3) bytes = bytes.subarray(0, Math.floor(rng() * bytes.length));
      }
      node.serf.notifyMsg(bytes, i);
      node.serf.mergeRemoteState(bytes, false, i);
    }
    const counted = (node.serf.counters['msgDecodeErrors'] ?? 0) + (node.serf.counters['msgUnknownType'] ?? 0);
    assert.ok(counted > 1000, `counted ${counted}`);
    for (const { to } of node.host.sent) assert.ok((to.addr.length === 4 || to.addr.length === 16) && to.port > 0, 'only real addresses are sent to');
  });

  it('mutated push/pull states never throw', () => {
    const node = makeNode('a', 1);
    const rng = seededRng(9);
    const seed = msg({ kind: 'pushPull', lTime: 5n, statusLTimes: new Map([['a', 1n], ['b', 2n]]), leftMembers: ['b'], eventLTime: 3n, events: [null, { lTime: 2n, events: [{ name: 'e', payload: text('p') }] }], queryLTime: 4n });
    for (let i = 0; i < 3000; i++) {
      let bytes = seed.slice();
      for (let k = 0; k < 1 + Math.floor(rng() * 4); k++) bytes[1 + Math.floor(rng() * (bytes.length - 1))] = Math.floor(rng() * 256);
      if (rng() < 0.3) bytes = bytes.subarray(0, Math.floor(rng() * bytes.length));
      node.serf.mergeRemoteState(bytes, rng() < 0.5, i);
    }
    assert.ok((node.serf.counters['remoteStateDecodeErrors'] ?? 0) > 100);
  });

  it('a relay to an address that is not an IP is dropped and counted', () => {
    const node = makeNode('a', 1);
    const inner = msg({ kind: 'queryResponse', lTime: 1n, id: 1, from: 'x', flags: 0, payload: new Uint8Array() });
    node.serf.notifyMsg(encodeRelay({ destAddr: { ip: Uint8Array.of(1, 2, 3), port: 80, zone: '' }, destName: 'x' }, inner), 0);
    node.serf.notifyMsg(encodeRelay({ destAddr: { ip: Uint8Array.of(1, 2, 3, 4), port: 80, zone: '' }, destName: 'x' }, inner), 0);
    assert.equal(node.serf.counters['unsendableAddress'], 1);
    assert.deepEqual(node.host.sent.map((p) => [Array.from(p.to.addr), p.to.port, p.payload]), [[[1, 2, 3, 4], 80, inner]]);
  });
});

describe('presets (spec §3.11)', () => {
  it('serf defaults and Consul overrides', () => {
    const d = serfDefaultConfig('x');
    assert.deepEqual([d.protocolVersion, d.leavePropagateDelayMs, d.reconnectTimeoutMs, d.tombstoneTimeoutMs, d.queueDepthWarning, d.maxQueueDepth, d.enableNameConflictResolution], [4, 1000, 86_400_000, 86_400_000, 128, 4096, true]);
    const c = consulSerfConfig('x', new Map(), 'wan');
    assert.deepEqual([c.protocolVersion, c.leavePropagateDelayMs, c.reconnectTimeoutMs, c.tombstoneTimeoutMs, c.queueDepthWarning, c.minQueueDepth, c.enableNameConflictResolution, c.gossipIntervalMs], [4, 3000, 259_200_000, 86_400_000, 1_000_000, 4096, false, 500]);
  });
});
