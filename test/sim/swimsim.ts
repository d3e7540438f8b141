// A seeded, deterministic network simulator for the memberlist core (lib/swim.ts).
//
// N SwimNodes with a trivial delegate live on a virtual clock. The loop advances time to the
// earliest of: a scheduled network event, or a member's nextDeadlineMs(); so time jumps between
// events and one run of minutes of virtual time costs only what the protocol does in it.
//
// Network model:
// - UDP: each datagram is delayed by a uniform latency (so datagrams reorder), dropped with the
//   current loss rate, and dropped across a partition (pairs of member indexes cut both ways).
// - TCP streams: reliable, but a lost handshake packet costs a 1 s SYN retransmit and a lost data
//   segment a 200 ms RTO (Linux minimums), so under loss a TCP ping can miss its probe deadline.
//   A crashed peer refuses at once (RST after one round trip); a partitioned one times out.
// - Paused members (SIGSTOP): nothing runs; their datagrams and stream requests queue up (like a
//   socket buffer, bounded) and are handled on resume, before the member's overdue timers.
// - Crashed members stop for good; their traffic is lost.
//
// Observations: every notifyJoin/notifyLeave/notifyUpdate, with time, observer and subject, so a
// test can ask when each member saw a crash and whether anyone ever declared a healthy member dead.
//
// Used by test/swimsim.test.ts (R10 in shared/TESTING.md). Replays exactly from a seed.

import assert from 'node:assert/strict';
import { NodeState } from '../../lib/gossipwire.js';
import { seededRng, type Rng } from '../../lib/rng.js';
import { lanConfig, SwimNode, type SwimAddress, type SwimConfig, type SwimDelegate, type SwimEffect, type SwimMember } from '../../lib/swim.js';

// ---------------------------------------------------------------------------------------------
// Types and limits

export interface SwimSimOptions {
  readonly seed: number;
  readonly members: number;
  /** Adjust each member's config (default: memberlist's LAN config). */
  readonly configure?: (config: SwimConfig) => SwimConfig;
  readonly latencyMinMs?: number;
  readonly latencyMaxMs?: number;
  readonly trace?: (line: string) => void;
}

/** One membership event as a member's delegate saw it. */
export interface SimObservation {
  readonly atMs: number;
  readonly observer: string;
  readonly subject: string;
  readonly kind: 'join' | 'leave' | 'update';
  readonly state: NodeState;
}

export type MemberStatus = 'down' | 'up' | 'paused' | 'crashed';

/** Datagrams and stream requests a paused member's kernel buffers before dropping. */
export const SIM_PAUSED_INBOX_MAX = 4096;
/** Steps one run may take before the simulator assumes a livelock. */
export const SIM_STEPS_MAX = 50_000_000;
const SYN_RETRANSMIT_MS = 1000;
const TCP_RTO_MS = 200;

// ---------------------------------------------------------------------------------------------
// Simulator

export class SwimSim {
  nowMs = 0;
  lossRate = 0;
  readonly members: SimMember[] = [];
  readonly observations: SimObservation[] = [];
  private readonly rng: Rng;
  private readonly byAddress = new Map<string, SimMember>();
  private readonly cuts = new Set<string>();
  private readonly events = new EventHeap();
  private steps = 0;
  packetsSent = 0;
  bytesSent = 0;
  /** When set, the time the first probe of this member started (detection is measured from it too). */
  watchedName: string | null = null;
  firstProbeOfWatchedMs: number | null = null;

  constructor(private readonly options: SwimSimOptions) {
    this.rng = seededRng(options.seed);
    for (let i = 0; i < options.members; i++) {
      const address: SwimAddress = { addr: Uint8Array.of(10, 0, Math.floor(i / 250), (i % 250) + 1), port: 8301 };
      const member: SimMember = { index: i, name: `node-${i}`, address, node: null, status: 'down', deadlineMs: Infinity, inbox: [], probeTarget: null };
      this.members.push(member);
      this.byAddress.set(addressKey(address), member);
    }
  }

  /** Starts member i's core (memberlist Create). */
  start(i: number): void {
    const member = this.member(i);
    assert(member.status === 'down', `${member.name} already started`);
    const base = lanConfig(member.name, member.address);
    const config = this.options.configure ? this.options.configure(base) : base;
    const nodeRng = seededRng((this.options.seed * 7919 + i * 104729) >>> 0);
    const randomBytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => Math.floor(nodeRng() * 256));
    member.status = 'up';
    member.node = new SwimNode(config, this.delegateFor(member), nodeRng, randomBytes, this.nowMs);
    this.afterCall(member);
  }

  /** Member i joins through the given members (push/pull with Join:true). */
  join(i: number, through: readonly number[]): void {
    const member = this.member(i);
    this.call(member, (node) => node.join(through.map((j) => this.member(j).address), this.nowMs));
  }

  crash(i: number): void {
    const member = this.member(i);
    member.status = 'crashed';
    member.inbox = [];
    member.deadlineMs = Infinity;
    this.trace(`crash ${member.name}`);
  }

  pause(i: number): void {
    const member = this.member(i);
    assert(member.status === 'up', 'only a running member pauses');
    member.status = 'paused';
    this.trace(`pause ${member.name}`);
  }

  resume(i: number): void {
    const member = this.member(i);
    assert(member.status === 'paused', 'only a paused member resumes');
    member.status = 'up';
    this.trace(`resume ${member.name}`);
    const queued = member.inbox;
    member.inbox = [];
    for (const run of queued) if (member.status === 'up') run();
    if (member.status === 'up') this.call(member, (node) => node.tick(this.nowMs));
  }

  leave(i: number): void {
    this.call(this.member(i), (node) => node.leave(this.nowMs));
    this.trace(`leave ${this.member(i).name}`);
  }

  /** Cuts (or heals) the link between members a and b, both ways. */
  setCut(a: number, b: number, isCut: boolean): void {
    const key = a < b ? `${a}:${b}` : `${b}:${a}`;
    if (isCut) this.cuts.add(key);
    else this.cuts.delete(key);
  }

  /**
   * Runs events and timers until `untilMs`, or until `stop()` returns true. `stop` is checked at
   * most once per `checkEveryMs` of virtual time (0: after every step), since it may be costly.
   */
  run(untilMs: number, stop?: () => boolean, checkEveryMs = 0): boolean {
    let nextCheckMs = -Infinity;
    for (;;) {
      if (stop !== undefined && this.nowMs >= nextCheckMs) {
        if (stop()) return true;
        nextCheckMs = this.nowMs + checkEveryMs;
      }
      let due: SimMember | null = null;
      for (const member of this.members) if (member.status === 'up' && (due === null || member.deadlineMs < due.deadlineMs)) due = member;
      const eventAt = this.events.peekAt();
      const nextAt = Math.min(eventAt, due?.deadlineMs ?? Infinity);
      if (nextAt > untilMs) {
        this.nowMs = untilMs;
        return false;
      }
      this.nowMs = Math.max(this.nowMs, nextAt);
      assert(++this.steps < SIM_STEPS_MAX, 'simulation livelock');
      if (eventAt <= nextAt) this.events.pop()?.run();
      else if (due !== null) this.call(due, (node) => node.tick(this.nowMs));
    }
  }

  /** Member i's view: state of every node it knows. */
  view(i: number): Map<string, NodeState> {
    const node = this.member(i).node;
    return new Map((node?.members() ?? []).map((m) => [m.name, m.state]));
  }

  member(i: number): SimMember {
    const member = this.members[i];
    assert(member !== undefined, `no member ${i}`);
    return member;
  }

  /** Members currently running (up or paused). */
  live(): SimMember[] {
    return this.members.filter((m) => m.status === 'up' || m.status === 'paused');
  }

  trace(line: string): void {
    this.options.trace?.(`${this.nowMs.toFixed(1)} ${line}`);
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing

  private call(member: SimMember, fn: (node: SwimNode) => void): void {
    if (member.node === null || member.status === 'crashed' || member.status === 'down') return;
    if (member.status === 'paused') {
      if (member.inbox.length < SIM_PAUSED_INBOX_MAX) member.inbox.push(() => this.call(member, fn));
      return;
    }
    fn(member.node);
    this.afterCall(member);
  }

  private afterCall(member: SimMember): void {
    const node = member.node;
    if (node === null) return;
    for (const effect of node.drainOutbox()) this.perform(member, effect);
    member.deadlineMs = node.nextDeadlineMs();
    const target = node.probeTarget();
    if (target !== member.probeTarget) {
      member.probeTarget = target;
      if (target !== null && target === this.watchedName && this.firstProbeOfWatchedMs === null) this.firstProbeOfWatchedMs = this.nowMs;
    }
  }

  private perform(from: SimMember, effect: SwimEffect): void {
    const to = this.byAddress.get(addressKey(effect.to));
    if (effect.kind === 'packet') {
      this.packetsSent++;
      this.bytesSent += effect.bytes.length;
      if (to === undefined || this.isCut(from, to) || this.rng() < this.lossRate) return;
      const bytes = effect.bytes;
      this.schedule(this.latency(), () => this.call(to, (node) => node.onPacket(from.address, bytes, this.nowMs)));
      return;
    }
    this.performStream(from, to, effect);
  }

  private performStream(from: SimMember, to: SimMember | undefined, effect: Extract<SwimEffect, { kind: 'stream' }>): void {
    let isDone = false;
    const finish = (reply: Uint8Array | Error): void => {
      if (isDone) return;
      isDone = true;
      this.call(from, (node) => node.onStreamReply(effect.id, reply, this.nowMs));
    };
    this.schedule(effect.timeoutMs, () => finish(new Error('i/o timeout')));
    if (to === undefined || this.isCut(from, to)) return;
    if (to.status === 'crashed' || to.status === 'down') {
      this.schedule(2 * this.latency(), () => finish(new Error('connection refused')));
      return;
    }
    const connectMs = this.tcpDelay(2, SYN_RETRANSMIT_MS) + this.tcpDelay(1, TCP_RTO_MS);
    this.schedule(connectMs, () =>
      this.call(to, (node) => {
        const result = node.onStream(from.address, effect.bytes, this.nowMs);
        if (effect.purpose === 'userMsg') return;
        const reply = result === 'incomplete' ? new Error('stream incomplete') : result instanceof Error ? result : (result.reply ?? new Error('closed without reply'));
        this.schedule(this.tcpDelay(1, TCP_RTO_MS), () => finish(reply));
      }),
    );
  }

  /** One-way latency plus a retransmit penalty for each of `packets` lost (retried until through). */
  private tcpDelay(packets: number, penaltyMs: number): number {
    let delay = this.latency();
    for (let i = 0; i < packets; i++) for (let tries = 0; tries < 5 && this.rng() < this.lossRate; tries++) delay += penaltyMs * 2 ** tries;
    return delay;
  }

  private latency(): number {
    const min = this.options.latencyMinMs ?? 0.2;
    const max = this.options.latencyMaxMs ?? 2;
    return min + this.rng() * (max - min);
  }

  private isCut(a: SimMember, b: SimMember): boolean {
    return this.cuts.has(a.index < b.index ? `${a.index}:${b.index}` : `${b.index}:${a.index}`);
  }

  private schedule(delayMs: number, run: () => void): void {
    this.events.push(this.nowMs + delayMs, run);
  }

  private delegateFor(member: SimMember): SwimDelegate {
    const observe = (kind: SimObservation['kind'], subject: SwimMember, atMs: number): void => {
      this.observations.push({ atMs, observer: member.name, subject: subject.name, kind, state: subject.state });
      if (kind !== 'update') this.trace(`${member.name} ${kind} ${subject.name} state=${subject.state}`);
    };
    return memberEventsDelegate(observe, Uint8Array.of(0x72, member.index & 0xff));
  }
}

/**
 * A delegate for a plain memberlist (no serf layer): fixed meta, no user messages, broadcasts or
 * push/pull state, empty ack payloads; member events go to `onMemberEvent`. Shared by the
 * simulator, test/gossip.test.ts and bench/gossip.bench.ts.
 */
export function memberEventsDelegate(onMemberEvent: (kind: 'join' | 'leave' | 'update', member: SwimMember, nowMs: number) => void, meta: Uint8Array = new Uint8Array(0)): SwimDelegate {
  return {
    nodeMeta: () => meta,
    notifyMsg: () => undefined,
    getBroadcasts: () => [],
    localState: () => new Uint8Array(0),
    mergeRemoteState: () => undefined,
    ackPayload: () => new Uint8Array(0),
    notifyPingComplete: () => undefined,
    notifyJoin: (member, nowMs) => onMemberEvent('join', member, nowMs),
    notifyLeave: (member, nowMs) => onMemberEvent('leave', member, nowMs),
    notifyUpdate: (member, nowMs) => onMemberEvent('update', member, nowMs),
  };
}

export interface SimMember {
  readonly index: number;
  readonly name: string;
  readonly address: SwimAddress;
  node: SwimNode | null;
  status: MemberStatus;
  deadlineMs: number;
  inbox: Array<() => void>;
  probeTarget: string | null;
}

// ---------------------------------------------------------------------------------------------
// Helpers

function addressKey(address: SwimAddress): string {
  return `${address.addr.join('.')}:${address.port}`;
}

/** A binary min-heap of timed callbacks; ties run in scheduling order. */
class EventHeap {
  private readonly items: Array<{ at: number; seq: number; run: () => void }> = [];
  private seq = 0;

  push(at: number, run: () => void): void {
    const items = this.items;
    items.push({ at, seq: this.seq++, run });
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  peekAt(): number {
    return this.items[0]?.at ?? Infinity;
  }

  pop(): { at: number; run: () => void } | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    items[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < items.length && this.less(l, smallest)) smallest = l;
      if (r < items.length && this.less(r, smallest)) smallest = r;
      if (smallest === i) break;
      this.swap(i, smallest);
      i = smallest;
    }
    return top;
  }

  private less(a: number, b: number): boolean {
    const x = this.items[a];
    const y = this.items[b];
    assert(x !== undefined && y !== undefined, 'heap index in range');
    return x.at < y.at || (x.at === y.at && x.seq < y.seq);
  }

  private swap(a: number, b: number): void {
    const x = this.items[a];
    const y = this.items[b];
    assert(x !== undefined && y !== undefined, 'heap index in range');
    this.items[a] = y;
    this.items[b] = x;
  }
}
