// The memberlist core (lib/swim.ts, swimqueue.ts, swimsuspicion.ts): protocol math against
// memberlist 0.2.2's own formulas and test vectors (util_test.go, suspicion_test.go,
// awareness_test.go), the state rules (alive/suspect/dead incarnations, refutation, Left),
// the broadcast queue, packing under the UDP budget, push/pull merges and verifyProtocol, the
// probe cycle (ack, indirect + TCP fallback, suspicion, death), ping/ack addressing, leave, and
// fuzzed input that must only ever be counted.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Keyring } from '../lib/gossipcrypto.js';
import {
  decodePacket,
  decodeStream,
  encodeCompounds,
  encodeMessage,
  encodePacket,
  encodePushPull,
  encodeStream,
  encodeVsn,
  NodeState,
  type GossipMessage,
  type PushNodeState,
} from '../lib/gossipwire.js';
import { seededRng } from '../lib/rng.js';
import {
  applyAwarenessDelta,
  lanConfig,
  localConfig,
  nextTickAfterMs,
  pushPullScale,
  remainingSuspicionTimeMs,
  retransmitLimit,
  scaleTimeoutMs,
  suspicionConfirmationsK,
  suspicionTimeoutMs,
  SwimNode,
  wanConfig,
  type SwimAddress,
  type SwimConfig,
  type SwimDelegate,
  type SwimEffect,
  type SwimMember,
} from '../lib/swim.js';
import { BroadcastQueue } from '../lib/swimqueue.js';
import { Suspicion } from '../lib/swimsuspicion.js';

// ---------------------------------------------------------------------------------------------
// Harness

const ip = (last: number): Uint8Array => Uint8Array.of(10, 0, 0, last);
const addr = (last: number, port = 8301): SwimAddress => ({ addr: ip(last), port });
const VSN = encodeVsn({ pMin: 1, pMax: 5, pCur: 2, dMin: 2, dMax: 5, dCur: 4 });

interface Recorder {
  readonly events: string[];
  readonly pings: Array<{ name: string; rttMs: number; payload: Uint8Array }>;
  readonly userMsgs: Uint8Array[];
  readonly userStates: Uint8Array[];
  ackPayload: Uint8Array;
  userBroadcasts: Uint8Array[];
  isMergeAllowed: boolean;
}

function makeNode(name: string, last: number, options: { config?: Partial<SwimConfig>; seed?: number; now?: number; refuse?: string } = {}): { node: SwimNode; rec: Recorder } {
  const rec: Recorder = { events: [], pings: [], userMsgs: [], userStates: [], ackPayload: new Uint8Array(0), userBroadcasts: [], isMergeAllowed: true };
  const delegate: SwimDelegate = {
    nodeMeta: () => Uint8Array.of(1, 2, 3),
    notifyMsg: (payload) => void rec.userMsgs.push(payload),
    getBroadcasts: () => rec.userBroadcasts.splice(0),
    localState: () => Uint8Array.of(0x02, 0xaa),
    mergeRemoteState: (state) => void rec.userStates.push(state),
    ackPayload: () => rec.ackPayload,
    notifyPingComplete: (m, rttMs, payload) => void rec.pings.push({ name: m.name, rttMs, payload }),
    notifyJoin: (m) => void rec.events.push(`join ${m.name}`),
    notifyLeave: (m) => void rec.events.push(`${m.state === NodeState.left ? 'left' : 'dead'} ${m.name}`),
    notifyUpdate: (m) => void rec.events.push(`update ${m.name}`),
    notifyMerge: () => (rec.isMergeAllowed ? null : 'refused by the test'),
    ...(options.refuse !== undefined ? { notifyAlive: (m: SwimMember) => m.name !== options.refuse } : {}),
  };
  const rng = seededRng(options.seed ?? 1);
  const config: SwimConfig = { ...lanConfig(name, addr(last)), enableCompression: false, ...options.config };
  const node = new SwimNode(config, delegate, rng, (n) => Uint8Array.from({ length: n }, () => Math.floor(rng() * 256)), options.now ?? 0);
  return { node, rec };
}

function alivePacket(name: string, last: number, incarnation: number, meta = Uint8Array.of(9)): Uint8Array {
  return encodePacket(encodeMessage({ kind: 'alive', incarnation, node: name, addr: ip(last), port: 8301, meta, vsn: VSN }), { isCompressionEnabled: false });
}

function packet(message: GossipMessage): Uint8Array {
  return encodePacket(encodeMessage(message), { isCompressionEnabled: false });
}

/** Drains the outbox: UDP packets decoded into their messages, and stream effects. */
function drain(node: SwimNode): { packets: Array<{ to: SwimAddress; bytes: Uint8Array; messages: GossipMessage[] }>; streams: Array<Extract<SwimEffect, { kind: 'stream' }>> } {
  const packets: Array<{ to: SwimAddress; bytes: Uint8Array; messages: GossipMessage[] }> = [];
  const streams: Array<Extract<SwimEffect, { kind: 'stream' }>> = [];
  for (const effect of node.drainOutbox()) {
    if (effect.kind === 'stream') streams.push(effect);
    else packets.push({ to: effect.to, bytes: effect.bytes, messages: decodePacket(effect.bytes).messages });
  }
  return { packets, streams };
}

function memberOf(node: SwimNode, name: string): SwimMember | undefined {
  return node.members().find((m) => m.name === name);
}

/** Runs tick() at every deadline up to untilMs, collecting effects. */
function runUntil(node: SwimNode, fromMs: number, untilMs: number): ReturnType<typeof drain> {
  const all: ReturnType<typeof drain> = { packets: [], streams: [] };
  let now = fromMs;
  for (let guard = 0; guard < 100_000; guard++) {
    const next = Math.max(now, node.nextDeadlineMs());
    if (next > untilMs) break;
    now = next;
    node.tick(now);
    const d = drain(node);
    all.packets.push(...d.packets);
    all.streams.push(...d.streams);
  }
  return all;
}

const allMessages = (d: ReturnType<typeof drain>): GossipMessage[] => d.packets.flatMap((p) => p.messages);

/** Ticks until a probe of `target` starts (acking probes of others at once); returns its time and SeqNo. */
function probeUntil(node: SwimNode, target: string, fromMs = 0): { atMs: number; seqNo: number; packets: ReturnType<typeof drain>['packets'] } {
  let now = fromMs;
  for (let i = 0; i < 1000; i++) {
    now = Math.max(now, node.nextDeadlineMs());
    node.tick(now);
    const out = drain(node);
    const ping = allMessages(out).find((m): m is Extract<GossipMessage, { kind: 'ping' }> => m.kind === 'ping');
    if (ping?.node === target) return { atMs: now, seqNo: ping.seqNo, packets: out.packets };
    if (ping !== undefined) node.onPacket(addr(2), packet({ kind: 'ackResp', seqNo: ping.seqNo, payload: new Uint8Array(0) }), now);
  }
  throw new Error(`${target} was never probed`);
}

// ---------------------------------------------------------------------------------------------
// Protocol math

describe('protocol math matches memberlist 0.2.2', () => {
  it('suspicionTimeout: SuspicionMult × max(1, log10 n) × interval, scale truncated to ms (util_test.go vectors)', () => {
    const expected: Record<number, number> = { 5: 1000, 10: 1000, 50: 1698, 100: 2000, 500: 2698, 1000: 3000 };
    for (const [n, ms] of Object.entries(expected)) assert.equal(suspicionTimeoutMs(3, Number(n), 1000) / 3, ms, `n=${n}`);
    assert.equal(suspicionTimeoutMs(4, 50, 1000), 6792);
    assert.equal(suspicionTimeoutMs(4, 0, 1000), 4000);
  });

  it('remainingSuspicionTime falls logarithmically with confirmations (suspicion_test.go vectors)', () => {
    const cases: Array<[number, number, number, number]> = [
      [0, 3, 0, 30_000],
      [1, 3, 2000, 14_000],
      [2, 3, 3000, 4810],
      [3, 3, 4000, -2000],
      [4, 3, 5000, -3000],
      [5, 3, 10_000, -8000],
    ];
    for (const [n, k, elapsed, expected] of cases) assert.equal(remainingSuspicionTimeMs(n, k, elapsed, 2000, 30_000), expected, `n=${n}`);
  });

  it('a Suspicion starts at max with k ≥ 1 (min with k = 0) and counts each new accuser once, up to k', () => {
    const s = new Suspicion('me', 3, 500, 2000, 100, 100);
    assert.equal(s.deadlineMs, 2100);
    assert.equal(s.confirm('me'), false);
    assert.equal(s.confirm('foo'), true);
    assert.equal(s.deadlineMs, 100 + 1250);
    assert.equal(s.confirm('foo'), false);
    assert.equal(s.confirm('bar'), true);
    assert.equal(s.confirm('baz'), true);
    assert.equal(s.deadlineMs, 100 + 500);
    assert.equal(s.confirm('qux'), false, 'no more than k confirmations');
    assert.equal(s.confirmations, 3);
    assert.equal(new Suspicion('me', 0, 500, 2000, 0, 0).deadlineMs, 500);
  });

  it('k = SuspicionMult − 2, or 0 when fewer than k other nodes could confirm', () => {
    assert.equal(suspicionConfirmationsK(4, 50), 2);
    assert.equal(suspicionConfirmationsK(4, 4), 2);
    assert.equal(suspicionConfirmationsK(4, 3), 0);
    assert.equal(suspicionConfirmationsK(6, 5), 0);
  });

  it('retransmitLimit = mult × ceil(log10(n+1)) (util_test.go vectors)', () => {
    assert.equal(retransmitLimit(3, 0), 0);
    assert.equal(retransmitLimit(3, 1), 3);
    assert.equal(retransmitLimit(3, 99), 6);
    assert.equal(retransmitLimit(4, 9), 4);
    assert.equal(retransmitLimit(4, 50), 8);
  });

  it('pushPullScale: ×1 up to 32 nodes, ×2 to 64, ×3 to 128 (util_test.go)', () => {
    for (let n = 0; n <= 32; n++) assert.equal(pushPullScale(1000, n), 1000);
    for (let n = 33; n <= 64; n++) assert.equal(pushPullScale(1000, n), 2000);
    for (let n = 65; n <= 128; n++) assert.equal(pushPullScale(1000, n), 3000);
  });

  it('awareness is clamped to [0, max−1] and scales the probe interval (awareness_test.go sequence)', () => {
    const steps: Array<[number, number, number]> = [
      [0, 0, 1000], [-1, 0, 1000], [-10, 0, 1000], [1, 1, 2000], [-1, 0, 1000], [10, 7, 8000], [-1, 6, 7000],
      [-1, 5, 6000], [-1, 4, 5000], [-1, 3, 4000], [-1, 2, 3000], [-1, 1, 2000], [-1, 0, 1000], [-1, 0, 1000],
    ];
    let score = 0;
    for (const [delta, expectedScore, timeout] of steps) {
      score = applyAwarenessDelta(score, delta, 8);
      assert.equal(score, expectedScore);
      assert.equal(scaleTimeoutMs(1000, score), timeout);
    }
  });

  it('tickers fire on their grid and skip missed ticks', () => {
    assert.equal(nextTickAfterMs(100, 1000, 50), 100);
    assert.equal(nextTickAfterMs(100, 1000, 100), 1100);
    assert.equal(nextTickAfterMs(100, 1000, 3650), 4100);
  });

  it('presets carry memberlist DefaultLAN/WAN/LocalConfig values', () => {
    const lan = lanConfig('a', addr(1));
    assert.deepEqual([lan.probeIntervalMs, lan.probeTimeoutMs, lan.suspicionMult, lan.gossipIntervalMs, lan.pushPullIntervalMs, lan.tcpTimeoutMs, lan.udpBufferBytes], [1000, 500, 4, 200, 30_000, 10_000, 1400]);
    const wan = wanConfig('a', addr(1));
    assert.deepEqual([wan.probeIntervalMs, wan.probeTimeoutMs, wan.suspicionMult, wan.gossipNodes, wan.gossipToTheDeadMs], [5000, 3000, 6, 4, 60_000]);
    const local = localConfig('a', addr(1));
    assert.deepEqual([local.indirectChecks, local.retransmitMult, local.suspicionMult, local.probeTimeoutMs, local.gossipIntervalMs], [1, 2, 3, 200, 100]);
  });
});

// ---------------------------------------------------------------------------------------------
// Broadcast queue

describe('broadcast queue (TransmitLimitedQueue)', () => {
  const msg = (n: number, fill = 0): Uint8Array => new Uint8Array(n).fill(fill);

  it('sends fewest-transmitted first, then larger, then newer', () => {
    const q = new BroadcastQueue(4);
    q.queue('a', msg(10, 1));
    q.queue('b', msg(20, 2));
    q.queue('c', msg(10, 3));
    assert.deepEqual(q.getBroadcasts(2, 1000, 9).map((m) => m[0]), [2, 3, 1]);
    q.queue('d', msg(5, 4));
    // d has 0 transmits, the others 1.
    assert.deepEqual(q.getBroadcasts(2, 1000, 9).map((m) => m[0]), [4, 2, 3, 1]);
  });

  it('takes the largest message that fits the remaining space, then smaller ones', () => {
    const q = new BroadcastQueue(4);
    q.queue('big', msg(100, 1));
    q.queue('mid', msg(40, 2));
    q.queue('small', msg(10, 3));
    // limit 60: big (102) does not fit; mid (42) does; then 18 left: small (12) fits.
    assert.deepEqual(q.getBroadcasts(2, 60, 9).map((m) => m[0]), [2, 3]);
    assert.deepEqual(q.getBroadcasts(2, 1000, 9).map((m) => m[0]), [1, 2, 3]);
  });

  it('a newer broadcast about the same node invalidates the queued one and finishes it', () => {
    const q = new BroadcastQueue(4);
    const finished: string[] = [];
    q.queue('n1', msg(10, 1), () => finished.push('first'));
    q.queue('n1', msg(10, 2), () => finished.push('second'));
    assert.deepEqual(finished, ['first']);
    assert.equal(q.size, 1);
    assert.deepEqual(q.getBroadcasts(2, 1000, 9).map((m) => m[0]), [2]);
  });

  it('drops a message after RetransmitMult × ceil(log10(n+1)) transmissions and reports it finished', () => {
    const q = new BroadcastQueue(2);
    let isFinished = false;
    q.queue('x', msg(10), () => (isFinished = true));
    const limit = retransmitLimit(2, 20); // 2 × 2 = 4
    for (let i = 0; i < limit; i++) assert.equal(q.getBroadcasts(2, 1000, 20).length, 1, `transmission ${i + 1}`);
    assert.equal(isFinished, true);
    assert.equal(q.size, 0);
    assert.deepEqual(q.getBroadcasts(2, 1000, 20), []);
  });

  it('prune keeps the least-sent messages; reset finishes everything', () => {
    const q = new BroadcastQueue(4);
    const finished: string[] = [];
    q.queue('old', msg(10), () => finished.push('old'));
    q.getBroadcasts(2, 1000, 9);
    q.queue('new', msg(10), () => finished.push('new'));
    q.prune(1);
    assert.deepEqual(finished, ['old']);
    q.reset();
    assert.deepEqual(finished, ['old', 'new']);
    assert.equal(q.size, 0);
  });
});

// ---------------------------------------------------------------------------------------------
// State rules

describe('alive / suspect / dead rules', () => {
  it('the constructor makes the local node alive at incarnation 1 and reports its join', () => {
    const { node, rec } = makeNode('a', 1);
    assert.deepEqual(rec.events, ['join a']);
    const me = node.localMember();
    assert.equal(me.incarnation, 1);
    assert.equal(me.state, NodeState.alive);
    assert.deepEqual(me.vsn, { pMin: 1, pMax: 5, pCur: 2, dMin: 2, dMax: 5, dCur: 4 });
    assert.equal(node.numMembers(), 1);
  });

  it('alive applies only with a higher incarnation; suspect and dead with one at least as high', () => {
    const { node, rec } = makeNode('a', 1);
    const from = addr(2);
    node.onPacket(from, alivePacket('b', 2, 5), 10);
    assert.deepEqual(rec.events, ['join a', 'join b']);
    node.onPacket(from, alivePacket('b', 2, 5, Uint8Array.of(7)), 11);
    assert.deepEqual(memberOf(node, 'b')?.meta, Uint8Array.of(9), 'an equal incarnation does not update');
    node.onPacket(from, alivePacket('b', 2, 6, Uint8Array.of(7)), 12);
    assert.deepEqual(memberOf(node, 'b')?.meta, Uint8Array.of(7));
    assert.equal(rec.events.at(-1), 'update b');
    node.onPacket(from, packet({ kind: 'suspect', incarnation: 5, node: 'b', from: 'c' }), 13);
    assert.equal(memberOf(node, 'b')?.state, NodeState.alive, 'an older suspect is ignored');
    node.onPacket(from, packet({ kind: 'suspect', incarnation: 6, node: 'b', from: 'c' }), 14);
    assert.equal(memberOf(node, 'b')?.state, NodeState.suspect);
    assert.equal(memberOf(node, 'b')?.stateChangeMs, 14);
    node.onPacket(from, packet({ kind: 'dead', incarnation: 5, node: 'b', from: 'c' }), 15);
    assert.equal(memberOf(node, 'b')?.state, NodeState.suspect, 'an older dead is ignored');
    node.onPacket(from, packet({ kind: 'dead', incarnation: 6, node: 'b', from: 'c' }), 16);
    assert.equal(memberOf(node, 'b')?.state, NodeState.dead);
    assert.equal(rec.events.at(-1), 'dead b');
    node.onPacket(from, alivePacket('b', 2, 6), 17);
    assert.equal(memberOf(node, 'b')?.state, NodeState.dead, 'alive needs a newer incarnation to revive');
    node.onPacket(from, alivePacket('b', 2, 7), 18);
    assert.equal(memberOf(node, 'b')?.state, NodeState.alive);
    assert.equal(rec.events.at(-1), 'join b', 'dead → alive is a join');
    node.onPacket(from, packet({ kind: 'dead', incarnation: 7, node: 'b', from: 'b' }), 19);
    assert.equal(memberOf(node, 'b')?.state, NodeState.left, 'dead from the node itself is a leave');
    assert.equal(rec.events.at(-1), 'left b');
    node.onPacket(from, packet({ kind: 'suspect', incarnation: 1, node: 'unknown', from: 'c' }), 20);
    assert.equal(memberOf(node, 'unknown'), undefined, 'accusations about unknown nodes are ignored');
  });

  it('an alive from another address is a conflict unless the node left (or is dead past DeadNodeReclaimTime)', () => {
    const { node } = makeNode('a', 1, { config: { deadNodeReclaimMs: 1000 } });
    node.onPacket(addr(2), alivePacket('b', 2, 1), 0);
    node.onPacket(addr(3), alivePacket('b', 3, 2), 1);
    assert.deepEqual(memberOf(node, 'b')?.address.addr, ip(2));
    assert.equal(node.counters.aliveConflict, 1);
    node.onPacket(addr(2), packet({ kind: 'dead', incarnation: 1, node: 'b', from: 'c' }), 10);
    node.onPacket(addr(3), alivePacket('b', 3, 1), 500);
    assert.deepEqual(memberOf(node, 'b')?.address.addr, ip(2), 'dead but not yet reclaimable');
    node.onPacket(addr(3), alivePacket('b', 3, 1), 2000);
    assert.deepEqual(memberOf(node, 'b')?.address.addr, ip(3), 'reclaimed, even at the same incarnation');
    assert.equal(memberOf(node, 'b')?.state, NodeState.alive);
  });

  it('refutation: a suspect or dead about us bumps our incarnation past it and broadcasts alive', () => {
    const { node } = makeNode('a', 1);
    node.onPacket(addr(2), alivePacket('b', 2, 1), 0);
    drain(node);
    node.onPacket(addr(2), packet({ kind: 'suspect', incarnation: 7, node: 'a', from: 'b' }), 10);
    assert.equal(node.localMember().incarnation, 8);
    assert.equal(node.localMember().state, NodeState.alive);
    assert.equal(node.healthScore(), 1, 'a refutation costs local health');
    node.onPacket(addr(2), packet({ kind: 'dead', incarnation: 8, node: 'a', from: 'b' }), 20);
    assert.equal(node.localMember().incarnation, 9);
    const out = allMessages(runUntil(node, 20, 2000));
    const alives = out.filter((m): m is Extract<GossipMessage, { kind: 'alive' }> => m.kind === 'alive' && m.node === 'a');
    assert.ok(alives.some((m) => m.incarnation === 9), 'the refuting alive is gossiped');
    assert.equal(node.counters.refutations, 2);
  });

  it('refutation: an alive about us with our incarnation but other meta is out-bid; an identical one is ignored', () => {
    const { node } = makeNode('a', 1);
    node.onPacket(addr(2), encodePacket(encodeMessage({ kind: 'alive', incarnation: 1, node: 'a', addr: ip(1), port: 8301, meta: Uint8Array.of(1, 2, 3), vsn: node.localMember().vsn && encodeVsn(node.localMember().vsn) }), { isCompressionEnabled: false }), 5);
    assert.equal(node.localMember().incarnation, 1);
    node.onPacket(addr(2), encodePacket(encodeMessage({ kind: 'alive', incarnation: 1, node: 'a', addr: ip(1), port: 8301, meta: Uint8Array.of(6), vsn: VSN }), { isCompressionEnabled: false }), 6);
    assert.equal(node.localMember().incarnation, 2);
    assert.deepEqual(node.localMember().meta, Uint8Array.of(1, 2, 3), 'our own meta stands');
  });

  it('the Alive delegate can refuse an alive; with one installed an alive without a 6-byte Vsn is dropped', () => {
    const { node } = makeNode('a', 1, { refuse: 'evil' });
    node.onPacket(addr(2), alivePacket('evil', 2, 1), 1);
    assert.equal(memberOf(node, 'evil'), undefined);
    assert.equal(node.counters.aliveRefused, 1);
    node.onPacket(addr(3), encodePacket(encodeMessage({ kind: 'alive', incarnation: 1, node: 'c', addr: ip(3), port: 8301, meta: Uint8Array.of(1), vsn: Uint8Array.of(1, 5, 2) }), { isCompressionEnabled: false }), 2);
    assert.equal(memberOf(node, 'c'), undefined);
    assert.equal(node.counters.aliveNoVsn, 1);
    node.onPacket(addr(4), alivePacket('d', 4, 1), 3);
    assert.equal(memberOf(node, 'd')?.state, NodeState.alive);
  });

  it('alives with bad protocol versions are dropped', () => {
    const { node } = makeNode('a', 1);
    const send = (vsn: Uint8Array, meta = Uint8Array.of(1)): void => node.onPacket(addr(2), encodePacket(encodeMessage({ kind: 'alive', incarnation: 1, node: 'b', addr: ip(2), port: 8301, meta, vsn }), { isCompressionEnabled: false }), 1);
    send(Uint8Array.of(0, 5, 2, 2, 5, 4));
    send(Uint8Array.of(3, 2, 2, 2, 5, 4));
    assert.equal(node.counters.aliveBadVersion, 2);
    assert.equal(memberOf(node, 'b'), undefined);
  });

  it('updateMeta re-advertises with a new incarnation and notifies an update of ourselves', () => {
    let meta = Uint8Array.of(1);
    const rng = seededRng(3);
    const events: string[] = [];
    const delegate: SwimDelegate = {
      nodeMeta: () => meta, notifyMsg: () => undefined, getBroadcasts: () => [], localState: () => new Uint8Array(0), mergeRemoteState: () => undefined,
      ackPayload: () => new Uint8Array(0), notifyPingComplete: () => undefined,
      notifyJoin: (m) => void events.push(`join ${m.name}`), notifyLeave: () => undefined, notifyUpdate: (m) => void events.push(`update ${m.name}`),
    };
    const node = new SwimNode(lanConfig('a', addr(1)), delegate, rng, (n) => new Uint8Array(n), 0);
    meta = Uint8Array.of(2);
    node.updateMeta(5);
    assert.equal(node.localMember().incarnation, 2);
    assert.deepEqual(node.localMember().meta, Uint8Array.of(2));
    assert.deepEqual(events, ['join a', 'update a']);
  });
});

// ---------------------------------------------------------------------------------------------
// Pings, acks, probes

describe('probe cycle', () => {
  it('a ping addressed to another name is ignored', () => {
    const { node } = makeNode('a', 1);
    node.onPacket(addr(2), packet({ kind: 'ping', seqNo: 4, node: 'someone-else', sourceAddr: ip(2), sourcePort: 8301, sourceNode: 'b' }), 1);
    assert.equal(drain(node).packets.length, 0);
    assert.equal(node.counters.pingForOtherNode, 1);
  });

  it('an ack carries the delegate ackPayload and goes to SourceAddr:SourcePort when set, else to the UDP source', () => {
    const { node, rec } = makeNode('a', 1);
    rec.ackPayload = Uint8Array.of(1, 0x81, 0xa1, 0x78, 0x01);
    node.onPacket(addr(5, 1234), packet({ kind: 'ping', seqNo: 9, node: 'a', sourceAddr: ip(9), sourcePort: 9999, sourceNode: 'b' }), 1);
    const [ack] = drain(node).packets;
    assert.deepEqual(ack?.to, { addr: ip(9), port: 9999 });
    assert.deepEqual(ack?.messages[0], { kind: 'ackResp', seqNo: 9, payload: rec.ackPayload });
    node.onPacket(addr(5, 1234), packet({ kind: 'ping', seqNo: 10, node: '', sourceAddr: new Uint8Array(0), sourcePort: 0, sourceNode: '' }), 2);
    assert.deepEqual(drain(node).packets[0]?.to, addr(5, 1234));
  });

  it('a successful probe reports the round trip to the ping delegate and lowers awareness', () => {
    const { node, rec } = makeNode('a', 1);
    node.onPacket(addr(2), alivePacket('b', 2, 1), 0);
    drain(node);
    let now = 0;
    let ping: Extract<GossipMessage, { kind: 'ping' }> | undefined;
    while (ping === undefined && now < 5000) {
      now = Math.max(now, node.nextDeadlineMs());
      node.tick(now);
      ping = allMessages(drain(node)).find((m): m is Extract<GossipMessage, { kind: 'ping' }> => m.kind === 'ping');
    }
    assert.ok(ping !== undefined, 'a ping went out');
    assert.equal(ping.node, 'b');
    assert.equal(node.probeTarget(), 'b');
    node.onPacket(addr(2), packet({ kind: 'ackResp', seqNo: ping.seqNo, payload: Uint8Array.of(7) }), now + 12);
    assert.deepEqual(rec.pings, [{ name: 'b', rttMs: 12, payload: Uint8Array.of(7) }]);
    assert.equal(node.probeTarget(), null);
    assert.equal(node.healthScore(), 0);
  });

  it('no ack: indirect pings (nack requested) and a TCP ping after ProbeTimeout, suspect at the interval, dead after the suspicion timeout', () => {
    const { node, rec } = makeNode('a', 1, { config: { disableTcpPings: false } });
    node.onPacket(addr(2), alivePacket('b', 2, 1), 0);
    node.onPacket(addr(3), alivePacket('c', 3, 1), 0);
    drain(node);
    // Probe until b is the target (c is acked when probed).
    let now = 0;
    let seqNo = -1;
    for (let i = 0; i < 10 && seqNo < 0; i++) {
      now = Math.max(now, node.nextDeadlineMs());
      node.tick(now);
      const ping = allMessages(drain(node)).find((m): m is Extract<GossipMessage, { kind: 'ping' }> => m.kind === 'ping');
      if (ping?.node === 'c') node.onPacket(addr(3), packet({ kind: 'ackResp', seqNo: ping.seqNo, payload: new Uint8Array(0) }), now + 1);
      else if (ping?.node === 'b') seqNo = ping.seqNo;
    }
    assert.ok(seqNo >= 0, 'b was probed');
    const sentMs = now;
    node.tick(sentMs + 500);
    const out = drain(node);
    const indirect = allMessages(out).filter((m) => m.kind === 'indirectPing');
    assert.deepEqual(indirect, [{ kind: 'indirectPing', seqNo, target: ip(2), port: 8301, node: 'b', nack: true, sourceAddr: ip(1), sourcePort: 8301, sourceNode: 'a' }]);
    assert.equal(out.streams.length, 1);
    assert.equal(out.streams[0]?.purpose, 'ping');
    assert.equal(out.streams[0]?.timeoutMs, 500);
    node.onStreamReply(out.streams[0]?.id ?? -1, new Error('connection refused'), sentMs + 600);
    node.onPacket(addr(3), packet({ kind: 'nackResp', seqNo }), sentMs + 900);
    node.tick(sentMs + 1000);
    assert.equal(memberOf(node, 'b')?.state, NodeState.suspect);
    assert.equal(node.healthScore(), 0, 'the relay nacked: we are healthy');
    // n = 3: k = 0, so the timer is the minimum: 4 × 1 s.
    const deadAt = sentMs + 1000 + suspicionTimeoutMs(4, 3, 1000);
    runUntil(node, sentMs + 1000, deadAt - 1);
    assert.equal(memberOf(node, 'b')?.state, NodeState.suspect);
    runUntil(node, deadAt - 1, deadAt);
    assert.equal(memberOf(node, 'b')?.state, NodeState.dead);
    assert.ok(rec.events.includes('dead b'), 'expected condition');
  });

  it('missed nacks raise awareness, which stretches the next probe', () => {
    const { node } = makeNode('a', 1, { config: { disableTcpPings: true } });
    node.onPacket(addr(2), alivePacket('b', 2, 1), 0);
    node.onPacket(addr(3), alivePacket('c', 3, 1), 0);
    drain(node);
    const { atMs: start } = probeUntil(node, 'b');
    runUntil(node, start, start + 1000);
    assert.equal(node.healthScore(), 1, 'one expected nack never came');
  });

  it('a TCP ping that succeeds saves a probe whose UDP failed', () => {
    const { node } = makeNode('a', 1);
    node.onPacket(addr(2), alivePacket('b', 2, 1), 0);
    drain(node);
    const { atMs: start } = probeUntil(node, 'b');
    node.tick(start + 500);
    const [stream] = drain(node).streams;
    assert.ok(stream !== undefined, 'a TCP ping stream');
    const frame = decodeStream(stream.bytes);
    assert.ok(frame.kind === 'message' && frame.message.kind === 'ping', 'expected condition');
    const reply = encodeStream(encodeMessage({ kind: 'ackResp', seqNo: frame.message.seqNo, payload: new Uint8Array(0) }), { isCompressionEnabled: false });
    node.onStreamReply(stream.id, reply, start + 510);
    node.tick(start + 1000);
    assert.equal(memberOf(node, 'b')?.state, NodeState.alive);
    assert.equal(node.counters.probeTcpOnly, 1);
  });

  it('an indirect ping is relayed with our own SeqNo, the ack forwarded under the original one, or a nack sent', () => {
    const { node } = makeNode('a', 1);
    const request = { kind: 'indirectPing' as const, seqNo: 77, target: ip(3), port: 8301, node: 'c', nack: true, sourceAddr: ip(2), sourcePort: 8301, sourceNode: 'b' };
    node.onPacket(addr(2), packet(request), 0);
    const [relayed] = drain(node).packets;
    assert.deepEqual(relayed?.to, addr(3));
    const ping = relayed?.messages[0];
    assert.ok(ping?.kind === 'ping' && ping.node === 'c' && ping.seqNo !== 77, 'expected condition');
    node.onPacket(addr(3), packet({ kind: 'ackResp', seqNo: ping.seqNo, payload: Uint8Array.of(5) }), 10);
    assert.deepEqual(drain(node).packets[0]?.messages[0], { kind: 'ackResp', seqNo: 77, payload: new Uint8Array(0) });
    node.onPacket(addr(2), packet({ ...request, seqNo: 78 }), 20);
    drain(node);
    const later = allMessages(runUntil(node, 20, 20 + 500));
    assert.ok(later.some((m) => m.kind === 'nackResp' && m.seqNo === 78), 'a nack after ProbeTimeout without an ack');
    assert.ok(!later.some((m) => m.kind === 'nackResp' && m.seqNo === 77), 'no nack for the acked relay');
  });

  it('independent confirmations shrink the suspicion timeout from max toward min (Lifeguard)', () => {
    const { node } = makeNode('a', 1);
    for (const [name, last] of [['b', 2], ['c', 3], ['d', 4], ['e', 5]] as const) node.onPacket(addr(last), alivePacket(name, last, 1), 0);
    // n = 5 (with us): k = 2, min = 4 s, max = 24 s.
    node.onPacket(addr(3), packet({ kind: 'suspect', incarnation: 1, node: 'b', from: 'c' }), 1000);
    drain(node);
    node.onPacket(addr(4), packet({ kind: 'suspect', incarnation: 1, node: 'b', from: 'd' }), 2000);
    const regossiped = allMessages(runUntil(node, 2000, 2300)).filter((m) => m.kind === 'suspect' && m.node === 'b');
    assert.ok(regossiped.some((m) => m.kind === 'suspect' && m.from === 'd'), 'a new confirmation is re-gossiped');
    assert.equal(node.counters.suspected, 1);
    // One confirmation: max − ln2/ln3 × (max − min) = 24 − 0.6309 × 20 = 11.38 s after the start.
    const oneConfirmationMs = 1000 + remainingSuspicionTimeMs(1, 2, 0, 4000, 24_000);
    assert.equal(oneConfirmationMs, 1000 + 11_381);
    node.onPacket(addr(5), packet({ kind: 'suspect', incarnation: 1, node: 'b', from: 'e' }), 3000);
    // Two confirmations = k: the minimum, 4 s after the suspicion began.
    runUntil(node, 3000, 4999);
    assert.equal(memberOf(node, 'b')?.state, NodeState.suspect);
    runUntil(node, 4999, 5000);
    assert.equal(memberOf(node, 'b')?.state, NodeState.dead);
  });

  it('dead nodes are dropped from the list at a probe wrap once GossipToTheDeadTime has passed; left nodes stay (0.2.2)', () => {
    const { node } = makeNode('a', 1, { config: { gossipToTheDeadMs: 2000 } });
    node.onPacket(addr(2), alivePacket('b', 2, 1), 0);
    node.onPacket(addr(3), alivePacket('c', 3, 1), 0);
    node.onPacket(addr(4), alivePacket('l', 4, 1), 0);
    node.onPacket(addr(2), packet({ kind: 'dead', incarnation: 1, node: 'b', from: 'c' }), 10);
    node.onPacket(addr(4), packet({ kind: 'dead', incarnation: 1, node: 'l', from: 'l' }), 10);
    const acker = (): void => {
      for (const m of allMessages(drain(node))) if (m.kind === 'ping') node.onPacket(addr(3), packet({ kind: 'ackResp', seqNo: m.seqNo, payload: new Uint8Array(0) }), 0);
    };
    let now = 10;
    while (now < 6000) {
      now = Math.max(now, node.nextDeadlineMs());
      node.tick(now);
      acker();
    }
    assert.equal(memberOf(node, 'b'), undefined, 'b was forgotten');
    assert.equal(memberOf(node, 'l')?.state, NodeState.left, 'left nodes are kept');
    assert.equal(node.counters.nodesRemoved, 1);
  });

  it('gossip to a PMax ≥ 5 peer carries a CRC; pings and acks (sendMsg) do not, as in 0.2.2', () => {
    const { node } = makeNode('a', 1);
    node.onPacket(addr(2), alivePacket('b', 2, 1), 0);
    drain(node);
    const out = runUntil(node, 0, 400);
    const gossip = out.packets.filter((p) => p.messages.every((m) => m.kind !== 'ping' && m.kind !== 'ackResp'));
    assert.ok(gossip.length > 0 && gossip.every((p) => p.bytes[0] === 12), 'gossip packets start with hasCrc');
    node.onPacket(addr(2), packet({ kind: 'ping', seqNo: 1, node: 'a', sourceAddr: ip(2), sourcePort: 8301, sourceNode: 'b' }), 500);
    const [ack] = drain(node).packets;
    assert.notEqual(ack?.bytes[0], 12, 'the ack has no CRC');
  });

  it('a suspect target gets a ping+suspect compound so it can refute at once', () => {
    const { node } = makeNode('a', 1);
    node.onPacket(addr(2), alivePacket('b', 2, 1), 0);
    node.onPacket(addr(2), packet({ kind: 'suspect', incarnation: 1, node: 'b', from: 'c' }), 0);
    drain(node);
    const { packets } = probeUntil(node, 'b');
    const toB = packets.filter((p) => p.to.addr[3] === 2);
    const kinds = toB.flatMap((p) => p.messages.map((m) => m.kind));
    assert.ok(kinds.includes('ping') && kinds.includes('suspect'), `got ${kinds.join(',')}`);
  });
});

// ---------------------------------------------------------------------------------------------
// Suspect rechecks (our addition: a member that missed a refutation asks the suspect)

describe('suspect rechecks', () => {
  /** a knows b..e (n = 5: k = 2, min 4 s, max 24 s); c, d and e accuse b from t = 1 s, so b is due dead at 5 s. */
  function suspectWithDeadlineAt5s(): { node: SwimNode; rec: Recorder } {
    const made = makeNode('a', 1, { config: { disableTcpPings: true } });
    for (const [name, last] of [['b', 2], ['c', 3], ['d', 4], ['e', 5]] as const) made.node.onPacket(addr(last), alivePacket(name, last, 1), 0);
    made.node.onPacket(addr(3), packet({ kind: 'suspect', incarnation: 1, node: 'b', from: 'c' }), 1000);
    made.node.onPacket(addr(4), packet({ kind: 'suspect', incarnation: 1, node: 'b', from: 'd' }), 1000);
    made.node.onPacket(addr(5), packet({ kind: 'suspect', incarnation: 1, node: 'b', from: 'e' }), 1000);
    drain(made.node);
    return made;
  }

  /**
   * Ticks from 1 s, acking probes of others and leaving round-robin probes of b unanswered (b is
   * paused), up to the first probe that starts at or after 3 s, which must be of b: returns it.
   */
  function firstProbeOfB(node: SwimNode): { atMs: number; seqNo: number } {
    let now = 1000;
    for (let i = 0; i < 100; i++) {
      now = Math.max(now, node.nextDeadlineMs());
      node.tick(now);
      for (const p of drain(node).packets) {
        const ping = p.messages.find((m): m is Extract<GossipMessage, { kind: 'ping' }> => m.kind === 'ping');
        if (ping === undefined) continue;
        if (now >= 3000 && node.probeTarget() === ping.node) {
          assert.equal(ping.node, 'b', `the first probe after 3 s is of b, not ${ping.node}`);
          return { atMs: now, seqNo: ping.seqNo };
        }
        if (ping.node !== 'b') node.onPacket(p.to, packet({ kind: 'ackResp', seqNo: ping.seqNo, payload: new Uint8Array(0) }), now);
      }
    }
    throw new Error('no probe after 3 s');
  }

  it('a suspicion due within two probe intervals is probed ahead of the round-robin', () => {
    const { node } = suspectWithDeadlineAt5s();
    const { atMs } = firstProbeOfB(node);
    assert.ok(atMs >= 3000 && atMs < 5000, `b probed at ${atMs}`);
    assert.equal(node.counters.suspectRechecks, 1);
  });

  it('a suspect that acks is asked for its state; the deadline waits for the push/pull, whose refutation clears it', () => {
    const { node, rec } = suspectWithDeadlineAt5s();
    const { atMs, seqNo } = firstProbeOfB(node);
    node.onPacket(addr(2), packet({ kind: 'ackResp', seqNo, payload: new Uint8Array(0) }), atMs + 5);
    const [pull] = drain(node).streams;
    assert.ok(pull !== undefined && pull.purpose === 'pushPull', 'a push/pull to b');
    assert.deepEqual(pull.to, addr(2));
    const frame = decodeStream(pull.bytes);
    assert.ok(frame.kind === 'message' && frame.message.kind === 'pushPull' && !frame.message.join, 'a periodic (non-join) push/pull');
    runUntil(node, atMs + 5, 8000);
    assert.equal(memberOf(node, 'b')?.state, NodeState.suspect, 'the deadline (5 s) waits for the exchange');
    node.onStreamReply(pull.id, pushPullBytes([pushNode('b', 2, NodeState.alive, 2)]), 8000);
    assert.equal(memberOf(node, 'b')?.state, NodeState.alive);
    assert.equal(memberOf(node, 'b')?.incarnation, 2);
    assert.ok(!rec.events.includes('dead b'), 'b was never declared dead');
    assert.equal(node.counters.suspectPulls, 1);
  });

  it('a refutation piggy-backed on the ack needs no push/pull', () => {
    const { node } = suspectWithDeadlineAt5s();
    const { atMs, seqNo } = firstProbeOfB(node);
    const ack = encodeMessage({ kind: 'ackResp', seqNo, payload: new Uint8Array(0) });
    const refutation = encodeMessage({ kind: 'alive', incarnation: 2, node: 'b', addr: ip(2), port: 8301, meta: Uint8Array.of(9), vsn: VSN });
    const [compound] = encodeCompounds([ack, refutation]);
    assert.ok(compound !== undefined, 'one compound');
    node.onPacket(addr(2), encodePacket(compound, { isCompressionEnabled: false }), atMs + 5);
    assert.equal(drain(node).streams.length, 0);
    assert.equal(memberOf(node, 'b')?.state, NodeState.alive);
    assert.equal(node.counters.suspectPulls ?? 0, 0);
  });

  it('a push/pull that fails or brings no refutation lets the overdue suspicion fire', () => {
    for (const outcome of ['error', 'stale'] as const) {
      const { node, rec } = suspectWithDeadlineAt5s();
      const { atMs, seqNo } = firstProbeOfB(node);
      node.onPacket(addr(2), packet({ kind: 'ackResp', seqNo, payload: new Uint8Array(0) }), atMs + 5);
      const [pull] = drain(node).streams;
      assert.ok(pull !== undefined, 'a push/pull');
      runUntil(node, atMs + 5, 6000);
      node.onStreamReply(pull.id, outcome === 'error' ? new Error('i/o timeout') : pushPullBytes([pushNode('b', 2, NodeState.alive, 1)]), 6000);
      runUntil(node, 6000, 6000);
      assert.equal(memberOf(node, 'b')?.state, NodeState.dead, outcome);
      assert.ok(rec.events.includes('dead b'), outcome);
    }
  });

  it('with no confirmations yet, the recheck comes two intervals before the minimum timeout; our failed probe confirms', () => {
    const { node, rec } = makeNode('a', 1, { config: { disableTcpPings: true } });
    for (const [name, last] of [['b', 2], ['c', 3], ['d', 4], ['e', 5]] as const) node.onPacket(addr(last), alivePacket(name, last, 1), 0);
    // Only c accuses b: deadline at the maximum, 1 s + 24 s.
    node.onPacket(addr(3), packet({ kind: 'suspect', incarnation: 1, node: 'b', from: 'c' }), 1000);
    drain(node);
    const { atMs } = firstProbeOfB(node);
    assert.ok(atMs >= 3000 && atMs < 4000, `rechecked at ${atMs} (minimum deadline 5 s)`);
    // Unanswered: our own failed probe is the first confirmation, so 1 s + 11.381 s instead of 25 s.
    const deadAt = 1000 + remainingSuspicionTimeMs(1, 2, 0, 4000, 24_000);
    runUntil(node, atMs, deadAt - 1);
    assert.equal(memberOf(node, 'b')?.state, NodeState.suspect);
    runUntil(node, deadAt - 1, deadAt);
    assert.ok(rec.events.includes('dead b'));
  });

  it('a crashed suspect answers nothing: declared dead at the deadline, as without rechecks', () => {
    const { node, rec } = suspectWithDeadlineAt5s();
    firstProbeOfB(node);
    runUntil(node, 3000, 4999);
    assert.equal(memberOf(node, 'b')?.state, NodeState.suspect);
    runUntil(node, 4999, 5000);
    assert.equal(memberOf(node, 'b')?.state, NodeState.dead);
    assert.deepEqual(rec.events.filter((e) => e.endsWith(' b')), ['join b', 'dead b']);
    assert.equal(node.counters.suspectPulls ?? 0, 0);
  });
});

// ---------------------------------------------------------------------------------------------
// Gossip packing

describe('gossip and piggy-backing under the UDP budget', () => {
  for (const isEncrypted of [false, true]) {
    it(`every packet fits UDPBufferSize${isEncrypted ? ' after encryption' : ''}, with up to 127 parts per compound`, () => {
      const keyring = isEncrypted ? new Keyring([], new Uint8Array(32).fill(7)) : undefined;
      const { node, rec } = makeNode('a', 1, { config: keyring ? { keyring } : {} });
      for (let i = 0; i < 120; i++) node.onPacket(addr(2), encryptIf(alivePacket(`node-with-a-long-name-${i}`, 2 + (i % 200), 1, new Uint8Array(40).fill(i)), keyring), 0);
      assert.equal(node.numMembers(), 121);
      rec.userBroadcasts = Array.from({ length: 300 }, (_, i) => Uint8Array.of(3, i & 0xff));
      const out = runUntil(node, 0, 1000);
      assert.ok(out.packets.length > 0, `packets sent: ${out.packets.map((p) => p.bytes.length).join(',')}`);
      for (const p of out.packets) {
        const decoded = decodePacket(p.bytes, { keyring: keyring ?? null });
        // memberlist's budget does not count the 5-byte CRC header it adds for PMax ≥ 5 peers.
        const crcBytes = decoded.hadCrc ? 5 : 0;
        assert.ok(p.bytes.length - crcBytes <= 1400, `packet of ${p.bytes.length} bytes (CRC ${crcBytes})`);
        assert.deepEqual(decoded.errors, []);
        assert.equal(decoded.wasEncrypted, isEncrypted);
      }
      assert.ok(out.packets.length >= 2, 'the backlog is spread over several packets');
    });
  }

  it('pings and acks carry queued broadcasts; the delegate fills what is left with user messages', () => {
    const { node, rec } = makeNode('a', 1);
    node.onPacket(addr(2), alivePacket('b', 2, 1), 0);
    rec.userBroadcasts = [Uint8Array.of(3, 1, 2, 3)];
    node.onPacket(addr(2), packet({ kind: 'ping', seqNo: 1, node: 'a', sourceAddr: ip(2), sourcePort: 8301, sourceNode: 'b' }), 1);
    const [reply] = drain(node).packets;
    const kinds = reply?.messages.map((m) => m.kind);
    assert.deepEqual(kinds?.slice(0, 1), ['ackResp']);
    assert.ok(kinds?.includes('alive'), 'expected condition');
    assert.deepEqual(reply?.messages.find((m) => m.kind === 'user'), { kind: 'user', payload: Uint8Array.of(3, 1, 2, 3) });
  });

  it('sendUserPacket sends `08 payload` alone', () => {
    const { node } = makeNode('a', 1);
    node.sendUserPacket(addr(4), Uint8Array.of(4, 5));
    assert.deepEqual(drain(node).packets, [{ to: addr(4), bytes: Uint8Array.of(8, 4, 5), messages: [{ kind: 'user', payload: Uint8Array.of(4, 5) }] }]);
  });
});

function encryptIf(bytes: Uint8Array, keyring: Keyring | undefined): Uint8Array {
  if (!keyring) return bytes;
  const decoded = decodePacket(bytes);
  const [message] = decoded.messages;
  assert.ok(message !== undefined, 'one message');
  return encodePacket(encodeMessage(message), { keyring, randomBytes: (n) => new Uint8Array(n).fill(1), isCompressionEnabled: false });
}

// ---------------------------------------------------------------------------------------------
// Push/pull

function pushPullBytes(nodes: PushNodeState[], isJoin = false, userState = Uint8Array.of(0x02, 0x01)): Uint8Array {
  return encodeStream(encodePushPull(isJoin, nodes, userState), { isCompressionEnabled: true });
}

const pushNode = (name: string, last: number, state: number, incarnation = 1, vsn = VSN): PushNodeState => ({ name, addr: ip(last), port: 8301, meta: Uint8Array.of(1), incarnation, state, vsn });

describe('push/pull', () => {
  it('merge: Alive → alive, Left → dead{From: Name} (left), Dead and Suspect → suspect; user state handed over; our state echoed', () => {
    const { node, rec } = makeNode('a', 1);
    for (const [name, last] of [['l', 3], ['d', 4], ['s', 5]] as const) node.onPacket(addr(last), alivePacket(name, last, 1), 0);
    const result = node.onStream(addr(2), pushPullBytes([pushNode('b', 2, NodeState.alive), pushNode('l', 3, NodeState.left), pushNode('d', 4, NodeState.dead), pushNode('s', 5, NodeState.suspect), pushNode('zz', 6, NodeState.dead)], true), 100);
    assert.ok(typeof result === 'object' && !(result instanceof Error) && result.reply, 'expected condition');
    const frame = decodeStream(result.reply);
    assert.ok(frame.kind === 'message' && frame.message.kind === 'pushPull', 'expected condition');
    assert.equal(frame.message.join, true, 'the acceptor echoes Join');
    assert.deepEqual(frame.message.userState, Uint8Array.of(0x02, 0xaa));
    assert.equal(frame.message.nodes.length, 4, 'our state (a, l, d, s) was taken before the merge');
    assert.equal(memberOf(node, 'b')?.state, NodeState.alive);
    assert.equal(memberOf(node, 'l')?.state, NodeState.left);
    assert.equal(memberOf(node, 'd')?.state, NodeState.suspect, 'a remote verdict of death only makes us suspect');
    assert.equal(memberOf(node, 's')?.state, NodeState.suspect);
    assert.equal(memberOf(node, 'zz'), undefined);
    assert.deepEqual(rec.userStates, [Uint8Array.of(0x02, 0x01)]);
  });

  it('Port 0 in a remote state means our bind port', () => {
    const { node } = makeNode('a', 1);
    node.onStream(addr(2), pushPullBytes([{ ...pushNode('b', 2, NodeState.alive), port: 0 }]), 1);
    assert.equal(memberOf(node, 'b')?.address.port, 8301);
  });

  it('verifyProtocol refuses a merge whose versions do not fit the common range', () => {
    const { node, rec } = makeNode('a', 1);
    const tooNew = encodeVsn({ pMin: 3, pMax: 5, pCur: 3, dMin: 2, dMax: 5, dCur: 4 });
    node.onStream(addr(2), pushPullBytes([pushNode('b', 2, NodeState.alive, 1, tooNew)]), 1);
    assert.equal(memberOf(node, 'b'), undefined);
    assert.deepEqual(rec.userStates, [], 'user state is not merged either');
    assert.equal(node.counters.pushPullVersionMismatch, 1);
    node.onStream(addr(2), pushPullBytes([pushNode('c', 3, NodeState.dead, 1, new Uint8Array(0))]), 2);
    assert.equal(node.counters.pushPullVersionMismatch, 2, 'an empty Vsn counts as version 0');
  });

  it('join: a push/pull with Join:true; success counted after the merge; a merge-delegate veto fails it', () => {
    const { node, rec } = makeNode('a', 1);
    node.join([addr(2), addr(3)], 0);
    const { streams } = drain(node);
    assert.equal(streams.length, 2);
    const sent = decodeStream(streams[0]?.bytes ?? new Uint8Array(0));
    assert.ok(sent.kind === 'message' && sent.message.kind === 'pushPull' && sent.message.join, 'expected condition');
    node.onStreamReply(streams[0]?.id ?? -1, pushPullBytes([pushNode('b', 2, NodeState.alive)], true), 5);
    assert.equal(node.joinedCount(), 1);
    rec.isMergeAllowed = false;
    node.onStreamReply(streams[1]?.id ?? -1, pushPullBytes([pushNode('c', 3, NodeState.alive)], true), 6);
    assert.equal(node.joinedCount(), 1);
    assert.equal(memberOf(node, 'c'), undefined);
    assert.equal(node.joinRefusal(streams[1]!.to), 'refused by the test', "the merge delegate's text is kept for the join's error");
    assert.equal(node.joinRefusal(streams[0]!.to), undefined);
    node.onStreamReply(12345, new Error('stale'), 7);
    assert.equal(node.counters.tcpReplyUnknown, 1);
  });

  it('join catch-up: one push/pull with a random member once no new member has appeared for 10 gossip intervals', () => {
    const { node } = makeNode('a', 1, { config: { pushPullIntervalMs: 600_000 } });
    node.join([addr(2)], 0);
    const [joinStream] = drain(node).streams;
    assert.ok(joinStream !== undefined, 'the join push/pull');
    node.onStreamReply(joinStream.id, pushPullBytes([pushNode('b', 2, NodeState.alive), pushNode('c', 3, NodeState.alive)], true), 100);
    // Another member appears at 1.5 s: the quiet period restarts from it.
    node.onPacket(addr(4), alivePacket('d', 4, 1), 1500);
    const pushPulls = (d: ReturnType<typeof drain>): Array<Extract<SwimEffect, { kind: 'stream' }>> => d.streams.filter((stream) => stream.purpose === 'pushPull');
    const acking = (fromMs: number, untilMs: number): ReturnType<typeof drain> => {
      const all: ReturnType<typeof drain> = { packets: [], streams: [] };
      let now = fromMs;
      while (Math.max(now, node.nextDeadlineMs()) <= untilMs) {
        now = Math.max(now, node.nextDeadlineMs());
        node.tick(now);
        const d = drain(node);
        all.packets.push(...d.packets);
        all.streams.push(...d.streams);
        for (const m of allMessages(d)) if (m.kind === 'ping') node.onPacket(addr(2), packet({ kind: 'ackResp', seqNo: m.seqNo, payload: new Uint8Array(0) }), now);
      }
      return all;
    };
    assert.deepEqual(pushPulls(acking(1500, 3499)), [], 'not before 1.5 s + 2 s');
    const [catchUp] = pushPulls(acking(3499, 3500));
    assert.ok(catchUp !== undefined, 'the catch-up push/pull at 3.5 s');
    const frame = decodeStream(catchUp.bytes);
    assert.ok(frame.kind === 'message' && frame.message.kind === 'pushPull' && !frame.message.join, 'a periodic (non-join) exchange');
    assert.ok([2, 3, 4].includes(catchUp.to.addr[3] ?? 0), 'with a member');
    node.onPacket(addr(5), alivePacket('e', 5, 1), 4000);
    assert.deepEqual(pushPulls(acking(4000, 60_000)), [], 'once per join');
    assert.equal(node.counters.joinCatchUps, 1);
  });

  it('a remote errResp fails the push/pull; a TCP ping gets an ack without payload; a ping for another node gets nothing', () => {
    const { node, rec } = makeNode('a', 1);
    node.join([addr(2)], 0);
    const [stream] = drain(node).streams;
    node.onStreamReply(stream?.id ?? -1, encodeStream(encodeMessage({ kind: 'errResp', error: 'nope' })), 1);
    assert.equal(node.joinedCount(), 0);
    assert.equal(node.counters.pushPullRemoteError, 1);
    rec.ackPayload = Uint8Array.of(9);
    const ping = encodeStream(encodeMessage({ kind: 'ping', seqNo: 3, node: 'a', sourceAddr: ip(2), sourcePort: 8301, sourceNode: 'b' }));
    const result = node.onStream(addr(2), ping, 2);
    assert.ok(typeof result === 'object' && !(result instanceof Error) && result.reply, 'expected condition');
    const frame = decodeStream(result.reply);
    assert.ok(frame.kind === 'message', 'expected condition');
    assert.deepEqual(frame.message, { kind: 'ackResp', seqNo: 3, payload: new Uint8Array(0) });
    assert.ok(node.onStream(addr(2), encodeStream(encodeMessage({ kind: 'ping', seqNo: 3, node: 'x', sourceAddr: ip(2), sourcePort: 8301, sourceNode: 'b' })), 3) instanceof Error);
    assert.equal(node.onStream(addr(2), ping.subarray(0, 3), 4), 'incomplete');
  });

  it('an encrypted node answers a plaintext stream with an errResp and drops plaintext packets', () => {
    const keyring = new Keyring([], new Uint8Array(16).fill(3));
    const { node } = makeNode('a', 1, { config: { keyring } });
    const result = node.onStream(addr(2), pushPullBytes([pushNode('b', 2, NodeState.alive)]), 1);
    assert.ok(typeof result === 'object' && !(result instanceof Error) && result.reply, 'expected condition');
    const frame = decodeStream(result.reply, { keyring });
    assert.ok(frame.kind === 'message' && frame.message.kind === 'errResp', 'expected condition');
    node.onPacket(addr(2), alivePacket('b', 2, 1), 2);
    assert.equal(memberOf(node, 'b'), undefined);
    assert.equal(node.counters['udpDropped.ERR_GOSSIP_DECRYPT'], 1);
  });
});

// ---------------------------------------------------------------------------------------------
// Leave

describe('leave', () => {
  it('broadcasts dead{self, From: self}, stops probing, ignores alives about itself, and completes after the retransmit limit', () => {
    const { node } = makeNode('a', 1);
    node.onPacket(addr(2), alivePacket('b', 2, 1), 0);
    drain(node);
    node.leave(10);
    assert.equal(node.localMember().state, NodeState.left);
    assert.equal(node.isLeaveBroadcastDone(), false);
    const out = runUntil(node, 10, 10_000);
    const deads = allMessages(out).filter((m) => m.kind === 'dead');
    assert.ok(deads.length >= 1 && deads.every((m) => m.kind === 'dead' && m.node === 'a' && m.from === 'a'), 'expected condition');
    assert.equal(allMessages(out).filter((m) => m.kind === 'ping').length, 0, 'no probes after leaving');
    assert.equal(node.isLeaveBroadcastDone(), true);
    node.onPacket(addr(2), encodePacket(encodeMessage({ kind: 'alive', incarnation: 50, node: 'a', addr: ip(1), port: 8301, meta: Uint8Array.of(1), vsn: VSN }), { isCompressionEnabled: false }), 10_001);
    assert.equal(node.localMember().state, NodeState.left);
  });

  it('with no one else alive the leave is done at once', () => {
    const { node } = makeNode('a', 1);
    node.leave(1);
    assert.equal(node.isLeaveBroadcastDone(), true);
  });
});

// ---------------------------------------------------------------------------------------------
// Bad input

describe('bad input is counted, never thrown', () => {
  it('random and mutated packets and streams', () => {
    const { node } = makeNode('a', 1);
    const rng = seededRng(42);
    const valid = [
      alivePacket('b', 2, 1),
      packet({ kind: 'ping', seqNo: 1, node: 'a', sourceAddr: ip(2), sourcePort: 8301, sourceNode: 'b' }),
      packet({ kind: 'indirectPing', seqNo: 1, target: ip(3), port: 8301, node: 'c', nack: true, sourceAddr: ip(2), sourcePort: 8301, sourceNode: 'b' }),
      encodePacket(encodeMessage({ kind: 'suspect', incarnation: 1, node: 'b', from: 'c' })),
    ];
    const streams = [pushPullBytes([pushNode('b', 2, NodeState.alive)]), encodeStream(encodeMessage({ kind: 'ping', seqNo: 1, node: 'a', sourceAddr: ip(2), sourcePort: 1, sourceNode: 'b' }))];
    for (let i = 0; i < 3000; i++) {
      const base = i % 3 === 0 ? Uint8Array.from({ length: Math.floor(rng() * 80) }, () => Math.floor(rng() * 256)) : (i % 3 === 1 ? valid : streams)[Math.floor(rng() * 2)]?.slice() ?? new Uint8Array(0);
      for (let flips = Math.floor(rng() * 4); flips > 0 && base.length > 0; flips--) base[Math.floor(rng() * base.length)] = Math.floor(rng() * 256);
      const cut = base.subarray(0, Math.floor(rng() * (base.length + 1)));
      assert.doesNotThrow(() => node.onPacket(addr(2), cut, i));
      assert.doesNotThrow(() => {
        const result = node.onStream(addr(2), cut, i);
        assert.ok(result === 'incomplete' || result instanceof Error || typeof result === 'object', 'expected condition');
      });
      node.tick(i);
      node.drainOutbox();
    }
    const dropped = Object.entries(node.counters).filter(([key]) => key.startsWith('udpDropped.')).reduce((sum, [, v]) => sum + v, 0);
    assert.ok(dropped > 100, `drops counted (${dropped})`);
    assert.ok(Object.keys(node.counters).some((key) => key.startsWith('tcpDropped.')), 'expected condition');
    assert.equal(node.localMember().state, NodeState.alive);
  });
});
