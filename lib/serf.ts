// serf's core as a pure state machine: cluster membership with Lamport-ordered join and leave
// intents, user events, queries (with serf's internal ping, conflict and key-management queries),
// tags in memberlist metadata, push/pull state merging, reaping and reconnecting, graceful leave,
// and Vivaldi coordinates in ping acks. It sits on a memberlist core (lib/swim.ts) as that core's
// delegate (SwimDelegate) and drives it only through the SwimHost methods below.
//
// Wire-compatible with serf 0.9.4 (Debian) and Consul's configuration of it (spec wire.md §3,
// §4.1). Time comes in as `nowMs` arguments and randomness from an injected rng: this module has
// no timers and no I/O. The shell calls tick(nowMs) (nextDeadlineMs() says when), feeds the
// SwimDelegate callbacks from the SwimNode, and drains events with drainEvents().
//
// Behaviour (serf serf.go, delegate.go, event_delegate.go, ping_delegate.go):
// - Members come from memberlist's join/leave/update notifications. Join and leave intents carry
//   the member clock; an intent applies only when newer than the member's statusLTime, intents
//   about unknown members wait in recentIntents (5 min) for the memberlist join.
// - A memberlist leave makes a Leaving member Left and an Alive one Failed. Failed members are
//   reaped after reconnectTimeout, left ones after tombstoneTimeout (checked every reapInterval);
//   every reconnectInterval we retry one failed member with probability failed/alive.
// - User events and queries are deduplicated in rings of EventBuffer/QueryBuffer slots indexed by
//   LTime; only a first sighting is delivered and rebroadcast.
// - Broadcasts are serf's own three TransmitLimitedQueues (intents, queries, events), handed to
//   memberlist through getBroadcasts, each message sent RetransmitMult × ceil(log10(n+1)) times.
// - No event coalescing: Consul configures none, so events come out as serf's EventCh gives them.
//
// Not here: name-conflict resolution (Consul disables it and the SwimHost contract has no
// conflict hook), serf snapshots (the agent persists what it needs), the keyring file (the shell
// persists the keyring on a 'keyring-changed' event), message droppers (serf test hooks).
//
// Invariants: clocks only move forward (modulo 2^64, as Go's uint64 wraps); a member name is in
// at most one of failed/left and only when its status says so; every queue and buffer that grows
// from input has a named bound; notifyMsg and mergeRemoteState never throw on bad bytes (counted).
//
// References: hashicorp/serf v0.9.4 serf/{serf,delegate,event_delegate,lamport,messages,query,
// internal_query,keymanager,ping_delegate,merge_delegate,broadcast,config,event}.go;
// hashicorp/memberlist v0.2.2 queue.go (TransmitLimitedQueue), util.go (retransmitLimit);
// consul lib/serf.go and agent/consul/server_serf.go (overrides).

import assert from 'node:assert/strict';
import type { Keyring } from './gossipcrypto.js';
import { GossipWireError, META_BYTES_MAX, NodeState } from './gossipwire.js';
import { decodeKeyArgument, INTERNAL_QUERY_PREFIX, answerKeyQuery, encodeKeyRequest, encodeQueryFilters, kRandomMembers, matchesQueryFilters, QueryCollector, type KeyOperation, type QueryParams } from './serfquery.js';
import { decodeSerfMessage, decodeTags, encodeRelay, encodeSerfMessage, encodeTags, MemberStatus, QueryFlag, SERF_EVENT_BUFFER, type LamportTime, type SerfLeave, type SerfJoin, type SerfMember, type SerfQuery, type SerfQueryResponse, type SerfUserEvent, type SerfUserEvents } from './serfwire.js';
import type { SwimAddress, SwimDelegate, SwimMember } from './swim.js';
import { decodeCoordinatePayload, encodeCoordinatePayload, VivaldiClient, VivaldiError, type Coordinate } from './vivaldi.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** A transport address as memberlist carries it (lib/swim.ts SwimAddress). */
export type SwimAddressLike = SwimAddress;

/** A memberlist node (lib/swim.ts SwimMember). */
export type SwimMemberLike = SwimMember;

/** What serf uses of the memberlist core (a subset of lib/swim.ts SwimNode, which satisfies it). */
export interface SwimHost {
  members(): readonly SwimMemberLike[];
  localMember(): SwimMemberLike;
  sendUserPacket(to: SwimAddressLike, payload: Uint8Array): void;
  updateMeta(nowMs: number): void;
  join(addresses: readonly SwimAddressLike[], nowMs: number): void;
  leave(nowMs: number): void;
  isLeaveBroadcastDone(): boolean;
  numMembers(): number;
}

/** serf Config, the parts that matter to the core (times in ms). */
export interface SerfConfig {
  readonly nodeName: string;
  /** serf protocol (delegate version): 2..5; Consul uses 4. */
  readonly protocolVersion: number;
  readonly tags: ReadonlyMap<string, string>;
  readonly broadcastTimeoutMs: number;
  readonly leavePropagateDelayMs: number;
  readonly eventBuffer: number;
  readonly queryBuffer: number;
  readonly reapIntervalMs: number;
  readonly reconnectIntervalMs: number;
  readonly reconnectTimeoutMs: number;
  readonly tombstoneTimeoutMs: number;
  readonly recentIntentTimeoutMs: number;
  readonly flapTimeoutMs: number;
  readonly queueCheckIntervalMs: number;
  readonly queueDepthWarning: number;
  readonly maxQueueDepth: number;
  /** > 0: the queue limit is max(2 × members, minQueueDepth) instead of maxQueueDepth. */
  readonly minQueueDepth: number;
  readonly queryTimeoutMult: number;
  readonly querySizeLimit: number;
  readonly queryResponseSizeLimit: number;
  readonly userEventSizeLimit: number;
  readonly enableNameConflictResolution: boolean;
  readonly disableCoordinates: boolean;
  /** memberlist settings serf reads: RetransmitMult (its queues) and GossipInterval (query timeout). */
  readonly retransmitMult: number;
  readonly gossipIntervalMs: number;
}

/** serf's own state (SerfState). */
export type SerfState = 'alive' | 'leaving' | 'left' | 'shutdown';

/** Member event types as serf's EventType names them. */
export type MemberEventType = 'member-join' | 'member-leave' | 'member-failed' | 'member-update' | 'member-reap';

/** A query delivered to the application; answer it with SerfNode.respond before deadlineMs. */
export interface SerfQueryEvent {
  readonly kind: 'query';
  readonly lTime: LamportTime;
  readonly name: string;
  readonly payload: Uint8Array;
  readonly id: number;
  readonly sourceNode: string;
  readonly addr: Uint8Array;
  readonly port: number;
  readonly deadlineMs: number;
  readonly relayFactor: number;
}

/** What drainEvents() yields (serf's EventCh, plus a keyring-changed note for the shell). */
export type SerfEvent =
  | { readonly kind: 'member'; readonly type: MemberEventType; readonly members: SerfMember[] }
  | { readonly kind: 'user'; readonly lTime: LamportTime; readonly name: string; readonly payload: Uint8Array; readonly coalesce: boolean }
  | SerfQueryEvent
  | { readonly kind: 'keyring-changed' };

/** Where a graceful leave stands (serf Leave's blocking steps, as state). */
export type LeavePhase = 'idle' | 'intent' | 'memberlist' | 'propagate' | 'done' | 'failed';

export type SerfErrorCode =
  | 'ERR_SERF_NOT_ALIVE'
  | 'ERR_SERF_LEAVE_IN_PROGRESS'
  | 'ERR_SERF_SHUTDOWN'
  | 'ERR_SERF_LEAVE_TIMEOUT'
  | 'ERR_SERF_EVENT_TOO_LARGE'
  | 'ERR_SERF_QUERY_TOO_LARGE'
  | 'ERR_SERF_RESPONSE_TOO_LARGE'
  | 'ERR_SERF_RESPONSE_SENT'
  | 'ERR_SERF_PAST_DEADLINE'
  | 'ERR_SERF_UNKNOWN_QUERY'
  | 'ERR_SERF_TAGS_TOO_LARGE'
  | 'ERR_SERF_FEATURE_NOT_SUPPORTED'
  | 'ERR_SERF_BAD_KEY'
  | 'ERR_SERF_TOO_MANY_QUERIES'
  | 'ERR_SERF_BAD_PARAMS';

/** An operational error, returned (not thrown); messages follow serf's. */
export class SerfError extends Error {
  override readonly name = 'SerfError';
  constructor(
    readonly code: SerfErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Consul's merge/alive delegate: an error text refuses the members, null accepts them. */
export type MergeDelegate = (members: readonly SerfMember[]) => string | null;

export interface SerfNodeOptions {
  readonly rng: () => number;
  /** Builds the memberlist core with this node as its delegate (the SwimNode constructor). */
  readonly createHost: (delegate: SerfNode) => SwimHost;
  /** The memberlist keyring key queries act on; undefined when encryption is off. */
  readonly keyring?: Keyring;
  readonly merge?: MergeDelegate;
}

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** serf ProtocolVersionMin/Max: the delegate versions serf understands. */
export const SERF_PROTOCOL_MIN = 2;
export const SERF_PROTOCOL_MAX = 5;
/** Queries need serf protocol 4. */
export const SERF_QUERY_PROTOCOL_MIN = 4;
/** serf UserEventSizeLimit: the hard cap on an event's name plus payload. */
export const SERF_USER_EVENT_BYTES_HARD_MAX = 9 * 1024;
/** Events waiting in drainEvents(); beyond it the oldest are dropped (counted). */
export const SERF_EVENTS_QUEUED_MAX = 65536;
/** Distinct user events kept for one Lamport time (dedup slot). */
export const SERF_EVENTS_PER_LTIME_MAX = 256;
/** Distinct query IDs kept for one Lamport time. */
export const SERF_QUERY_IDS_PER_LTIME_MAX = 1024;
/** Intents buffered for members memberlist has not told us about yet. */
export const SERF_RECENT_INTENTS_MAX = 65536;
/** Queries we issued whose answers we are still collecting. */
export const SERF_QUERIES_IN_FLIGHT_MAX = 1024;
/** Received queries the application may still answer. */
export const SERF_PENDING_QUERIES_MAX = 4096;
/** Leave/force-leave broadcasts whose completion is remembered for isBroadcastFinished. */
export const SERF_NOTIFIES_MAX = 1024;

const HOUR_MS = 60 * 60 * 1000;

/** serf.DefaultConfig() with memberlist's LAN RetransmitMult and GossipInterval. */
export function serfDefaultConfig(nodeName: string, tags: ReadonlyMap<string, string> = new Map()): SerfConfig {
  return {
    nodeName,
    protocolVersion: 4,
    tags,
    broadcastTimeoutMs: 5000,
    leavePropagateDelayMs: 1000,
    eventBuffer: SERF_EVENT_BUFFER,
    queryBuffer: SERF_EVENT_BUFFER,
    reapIntervalMs: 15_000,
    reconnectIntervalMs: 30_000,
    reconnectTimeoutMs: 24 * HOUR_MS,
    tombstoneTimeoutMs: 24 * HOUR_MS,
    recentIntentTimeoutMs: 5 * 60 * 1000,
    flapTimeoutMs: 60_000,
    queueCheckIntervalMs: 30_000,
    queueDepthWarning: 128,
    maxQueueDepth: 4096,
    minQueueDepth: 0,
    queryTimeoutMult: 16,
    querySizeLimit: 1024,
    queryResponseSizeLimit: 1024,
    userEventSizeLimit: 512,
    enableNameConflictResolution: true,
    disableCoordinates: false,
    retransmitMult: 4,
    gossipIntervalMs: 200,
  };
}

/**
 * Consul's serf configuration (lib/serf.go SerfDefaultConfig + server_serf.go setupSerfConfig):
 * QueueDepthWarning 1e6, MinQueueDepth 4096, LeavePropagateDelay 3 s, ReconnectTimeout 72 h,
 * no name-conflict resolution. `pool` picks memberlist's LAN or WAN gossip interval.
 */
export function consulSerfConfig(nodeName: string, tags: ReadonlyMap<string, string>, pool: 'lan' | 'wan' = 'lan'): SerfConfig {
  return {
    ...serfDefaultConfig(nodeName, tags),
    queueDepthWarning: 1_000_000,
    minQueueDepth: 4096,
    leavePropagateDelayMs: 3000,
    reconnectTimeoutMs: 72 * HOUR_MS,
    enableNameConflictResolution: false,
    gossipIntervalMs: pool === 'lan' ? 200 : 500,
  };
}

// ---------------------------------------------------------------------------------------------
// Exported API: Lamport clock and broadcast queue

const U64_MASK = (1n << 64n) - 1n;

/** serf LamportClock: a uint64 counter (wrapping as Go's does). */
export class LamportClock {
  private counter = 0n;

  time(): LamportTime {
    return this.counter;
  }

  increment(): LamportTime {
    this.counter = (this.counter + 1n) & U64_MASK;
    return this.counter;
  }

  /** Witness(v): move to v+1 when v is not older than the counter. */
  witness(v: LamportTime): void {
    if (v < this.counter) return;
    this.counter = (v + 1n) & U64_MASK;
  }
}

interface QueuedBroadcast {
  transmits: number;
  readonly msg: Uint8Array;
  id: number;
  readonly notifyId: number | null;
}

/**
 * memberlist's TransmitLimitedQueue for serf's broadcasts (which never invalidate each other):
 * fewest transmits first, then larger messages, then newer ones; each message goes out
 * retransmitLimit(mult, n) times.
 */
export class TransmitQueue {
  private items: QueuedBroadcast[] = [];
  private idGen = 0;

  constructor(
    private readonly retransmitMult: number,
    private readonly onFinished: (notifyId: number) => void,
  ) {}

  get length(): number {
    return this.items.length;
  }

  queue(msg: Uint8Array, notifyId: number | null = null): void {
    this.idGen++;
    this.items.push({ transmits: 0, msg, id: this.idGen, notifyId });
  }

  /** Messages to piggy-back, total ≤ limit counting `overhead` per message (queue.go GetBroadcasts). */
  getBroadcasts(overhead: number, limit: number, numNodes: number): Uint8Array[] {
    if (this.items.length === 0) return [];
    const transmitLimit = retransmitLimit(this.retransmitMult, numNodes);
    const sorted = this.items.slice().sort(compareBroadcasts);
    const minTr = sorted[0]?.transmits ?? 0;
    const maxTr = sorted[sorted.length - 1]?.transmits ?? 0;
    const taken = new Set<QueuedBroadcast>();
    const out: Uint8Array[] = [];
    let bytesUsed = 0;
    for (let transmits = minTr; transmits <= maxTr; ) {
      const free = limit - bytesUsed - overhead;
      if (free <= 0) break;
      const keep = sorted.find((item) => item.transmits === transmits && !taken.has(item) && item.msg.length <= free);
      if (keep === undefined) {
        transmits++;
        continue;
      }
      taken.add(keep);
      bytesUsed += overhead + keep.msg.length;
      out.push(keep.msg);
    }
    for (const item of taken) {
      if (item.transmits + 1 >= transmitLimit) this.remove(item);
      else item.transmits++;
    }
    if (this.items.length === 0) this.idGen = 0;
    return out;
  }

  /** Drops the least useful messages (most transmitted, smallest, oldest) beyond maxRetain. */
  prune(maxRetain: number): number {
    const before = this.items.length;
    if (before <= maxRetain) return 0;
    const sorted = this.items.slice().sort(compareBroadcasts);
    for (const item of sorted.slice(maxRetain)) this.remove(item);
    return before - this.items.length;
  }

  private remove(item: QueuedBroadcast): void {
    const index = this.items.indexOf(item);
    assert(index !== -1, 'removing a queued broadcast that is not queued');
    this.items.splice(index, 1);
    if (item.notifyId !== null) this.onFinished(item.notifyId);
  }
}

/** memberlist retransmitLimit: mult × ceil(log10(n+1)). */
export function retransmitLimit(retransmitMult: number, numNodes: number): number {
  return retransmitMult * Math.ceil(Math.log10(numNodes + 1));
}

// ---------------------------------------------------------------------------------------------
// Exported API: the node

interface MemberRecord {
  member: { name: string; addr: Uint8Array; port: number; tags: Map<string, string>; status: number; protocolMin: number; protocolMax: number; protocolCur: number; delegateMin: number; delegateMax: number; delegateCur: number };
  statusLTime: LamportTime;
  /** nowMs when it failed or left; 0 = not set (Go's zero time.Time). */
  leaveTimeMs: number;
}

interface NodeIntent {
  readonly type: 'join' | 'leave';
  readonly wallMs: number;
  readonly lTime: LamportTime;
}

interface PendingQuery {
  readonly lTime: LamportTime;
  readonly id: number;
  readonly addr: Uint8Array;
  readonly port: number;
  readonly sourceNode: string;
  readonly deadlineMs: number;
  readonly relayFactor: number;
}

/** One serf instance: lib/swim.ts's delegate. */
export class SerfNode implements SwimDelegate {
  readonly clock = new LamportClock();
  readonly eventClock = new LamportClock();
  readonly queryClock = new LamportClock();
  /** Counters for metrics and tests (decode errors, drops, flaps, coordinate rejections...). */
  readonly counters: Record<string, number> = {};

  private readonly host: SwimHost;
  private readonly rng: () => number;
  private readonly keyring: Keyring | undefined;
  private readonly merge: MergeDelegate | undefined;
  private tags: Map<string, string>;
  private state: SerfState = 'alive';

  private readonly members = new Map<string, MemberRecord>();
  // Invariant: names in failed have status failed, names in left have status left; each at most once.
  private failed: string[] = [];
  private left: string[] = [];
  private readonly recentIntents = new Map<string, NodeIntent>();

  private readonly eventBuffer: (SerfUserEvents | null)[];
  private eventMinTime: LamportTime = 0n;
  private isEventJoinIgnore = false;
  private readonly queryBuffer: ({ lTime: LamportTime; ids: number[] } | null)[];
  private queryMinTime: LamportTime = 0n;
  private readonly collectors = new Map<LamportTime, QueryCollector>();
  private readonly pendingQueries = new Map<string, PendingQuery>();

  private readonly intentQueue: TransmitQueue;
  private readonly eventQueue: TransmitQueue;
  private readonly queryQueue: TransmitQueue;
  private nextNotifyId = 1;
  private readonly finishedNotifies = new Set<number>();

  private events: SerfEvent[] = [];
  private readonly pendingPrunes = new Map<string, number>();
  private nextReapMs: number;
  private nextReconnectMs: number;
  private nextQueueCheckMs: number;

  private leavePhase: LeavePhase = 'idle';
  private leaveDeadlineMs = 0;
  private leaveNotifyId: number | null = null;
  private leaveError: SerfError | null = null;

  private readonly vivaldi: VivaldiClient | null;
  private readonly coordCache = new Map<string, Coordinate>();

  constructor(
    readonly config: SerfConfig,
    options: SerfNodeOptions,
    nowMs: number,
  ) {
    assert(config.protocolVersion >= SERF_PROTOCOL_MIN && config.protocolVersion <= SERF_PROTOCOL_MAX, `serf protocol ${config.protocolVersion} outside ${SERF_PROTOCOL_MIN}..${SERF_PROTOCOL_MAX}`);
    assert(config.userEventSizeLimit <= SERF_USER_EVENT_BYTES_HARD_MAX, 'user event size limit exceeds the hard limit');
    assert(config.eventBuffer > 0 && config.queryBuffer > 0, 'event and query buffers must be non-empty');
    this.rng = options.rng;
    this.keyring = options.keyring;
    this.merge = options.merge;
    this.tags = new Map(config.tags);
    encodeTags(this.tags, config.protocolVersion); // throws ERR_GOSSIP_TOO_LARGE, as serf.Create refuses
    this.eventBuffer = new Array<SerfUserEvents | null>(config.eventBuffer).fill(null);
    this.queryBuffer = new Array<{ lTime: LamportTime; ids: number[] } | null>(config.queryBuffer).fill(null);
    const onFinished = (id: number): void => this.noteFinished(id);
    this.intentQueue = new TransmitQueue(config.retransmitMult, onFinished);
    this.eventQueue = new TransmitQueue(config.retransmitMult, onFinished);
    this.queryQueue = new TransmitQueue(config.retransmitMult, onFinished);
    // serf starts every clock at 1 so that the zero LTime of a default join never counts as news.
    this.clock.increment();
    this.eventClock.increment();
    this.queryClock.increment();
    this.vivaldi = config.disableCoordinates ? null : new VivaldiClient(undefined, this.rng);
    if (this.vivaldi !== null) this.coordCache.set(config.nodeName, this.vivaldi.getCoordinate());
    this.nextReapMs = nowMs + config.reapIntervalMs;
    this.nextReconnectMs = nowMs + config.reconnectIntervalMs;
    this.nextQueueCheckMs = nowMs + config.queueCheckIntervalMs;
    this.host = options.createHost(this);
    // memberlist announces the local node to its event delegate while it is being created
    // (setAlive); if the host did not, do it here so serf always knows itself.
    if (!this.members.has(config.nodeName)) this.notifyJoin(this.host.localMember(), nowMs);
  }

  // -- Timers --------------------------------------------------------------------------------

  /** Runs what is due: reaping, reconnecting, queue pruning, delayed prunes, query expiry, leave steps. */
  tick(nowMs: number): void {
    if (this.state === 'shutdown') return;
    if (nowMs >= this.nextReapMs) {
      this.nextReapMs = nowMs + this.config.reapIntervalMs;
      this.reap(nowMs);
    }
    if (nowMs >= this.nextReconnectMs) {
      this.nextReconnectMs = nowMs + this.config.reconnectIntervalMs;
      this.reconnect(nowMs);
    }
    if (nowMs >= this.nextQueueCheckMs) {
      this.nextQueueCheckMs = nowMs + this.config.queueCheckIntervalMs;
      this.checkQueueDepths();
    }
    for (const [name, dueMs] of this.pendingPrunes) {
      if (nowMs >= dueMs) {
        this.pendingPrunes.delete(name);
        this.prune(name);
      }
    }
    this.expireQueries(nowMs);
    this.advanceLeave(nowMs);
  }

  /** The next nowMs at which tick() has something to do (0: at once, a leave step is ready). */
  nextDeadlineMs(): number {
    const isLeaveStepReady =
      (this.leavePhase === 'intent' && this.leaveNotifyId !== null && this.finishedNotifies.has(this.leaveNotifyId)) ||
      (this.leavePhase === 'memberlist' && this.host.isLeaveBroadcastDone());
    if (isLeaveStepReady) return 0;
    let next = Math.min(this.nextReapMs, this.nextReconnectMs, this.nextQueueCheckMs);
    for (const dueMs of this.pendingPrunes.values()) next = Math.min(next, dueMs);
    for (const collector of this.collectors.values()) next = Math.min(next, collector.deadlineMs + 1);
    if (this.leavePhase === 'intent' || this.leavePhase === 'memberlist' || this.leavePhase === 'propagate') next = Math.min(next, this.leaveDeadlineMs);
    return next;
  }

  // -- Members -------------------------------------------------------------------------------

  /** Every known member (serf Members), copies. */
  membersList(): SerfMember[] {
    return [...this.members.values()].map((record) => snapshot(record));
  }

  /** One member by name, or null. */
  member(name: string): SerfMember | null {
    const record = this.members.get(name);
    return record === undefined ? null : snapshot(record);
  }

  /** The member clock time at which we last learned this member's status (tests, debugging). */
  statusLTime(name: string): LamportTime | null {
    return this.members.get(name)?.statusLTime ?? null;
  }

  /** The local member as serf reports it. */
  localMember(): SerfMember | null {
    return this.member(this.config.nodeName);
  }

  /** len(members): every status counts (serf NumNodes, also the queues' n). */
  numNodes(): number {
    return this.members.size;
  }

  /** serf State(): alive, leaving (Leave under way or failed), left, shutdown. */
  serfState(): SerfState {
    return this.state;
  }

  /** serf Stats(), as strings. */
  stats(): Record<string, string> {
    const out: Record<string, string> = {
      members: String(this.members.size),
      failed: String(this.failed.length),
      left: String(this.left.length),
      member_time: this.clock.time().toString(),
      event_time: this.eventClock.time().toString(),
      query_time: this.queryClock.time().toString(),
      intent_queue: String(this.intentQueue.length),
      event_queue: String(this.eventQueue.length),
      query_queue: String(this.queryQueue.length),
      encrypted: String(this.keyring !== undefined && this.keyring.isEnabled),
    };
    if (this.vivaldi !== null) out['coordinate_resets'] = String(this.vivaldi.resets);
    return out;
  }

  /** Events since the last call, in order. */
  drainEvents(): SerfEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  /**
   * Restores the clocks from a snapshot (serf Create with SnapshotPath): each clock witnesses its
   * saved value, and events and queries up to the saved times are not delivered again.
   */
  restoreClocks(saved: { readonly clock: LamportTime; readonly eventClock: LamportTime; readonly queryClock: LamportTime }): void {
    this.clock.witness(saved.clock);
    this.eventClock.witness(saved.eventClock);
    this.queryClock.witness(saved.queryClock);
    this.eventMinTime = (saved.eventClock + 1n) & U64_MASK;
    this.queryMinTime = (saved.queryClock + 1n) & U64_MASK;
  }

  // -- Join, leave, tags ------------------------------------------------------------------------

  /**
   * serf Join, first half: memberlist push/pulls with `addresses`. With ignoreOld, user events
   * older than the remote's event clock are ignored. Call joinFinished when the attempts are over.
   */
  join(addresses: readonly SwimAddressLike[], ignoreOld: boolean, nowMs: number): SerfError | null {
    if (this.state !== 'alive') return new SerfError('ERR_SERF_NOT_ALIVE', "Serf can't Join after Leave or Shutdown");
    if (ignoreOld) this.isEventJoinIgnore = true;
    this.host.join(addresses, nowMs);
    return null;
  }

  /** serf Join, second half: with at least one node contacted, broadcast our join intent. */
  joinFinished(contacted: number, nowMs: number): void {
    this.isEventJoinIgnore = false;
    if (contacted > 0 && this.state === 'alive') this.broadcastJoin(this.clock.time(), nowMs);
  }

  /**
   * serf Leave: a leave intent (waited for up to broadcastTimeout when others are alive), then
   * memberlist's leave (also up to broadcastTimeout), then leavePropagateDelay, then state left.
   * Progress happens in tick(); leaveStatus() reports it.
   */
  leave(nowMs: number): SerfError | null {
    if (this.state === 'left') return null;
    if (this.state === 'leaving') return new SerfError('ERR_SERF_LEAVE_IN_PROGRESS', 'Leave already in progress');
    if (this.state === 'shutdown') return new SerfError('ERR_SERF_SHUTDOWN', 'Leave called after Shutdown');
    this.state = 'leaving';
    const message: SerfLeave = { lTime: this.clock.time(), node: this.config.nodeName, prune: false };
    this.clock.increment();
    this.handleLeaveIntent(message, nowMs);
    if (this.hasAliveMembers()) {
      this.leaveNotifyId = this.queueIntent({ kind: 'leave', ...message }, true);
      this.leavePhase = 'intent';
      this.leaveDeadlineMs = nowMs + this.config.broadcastTimeoutMs;
    } else {
      this.startMemberlistLeave(nowMs);
    }
    this.advanceLeave(nowMs);
    return null;
  }

  /** Where the graceful leave is; `error` is set when it failed (serf Leave's returned error). */
  leaveStatus(): { readonly phase: LeavePhase; readonly deadlineMs: number; readonly error: SerfError | null } {
    return { phase: this.leavePhase, deadlineMs: this.leaveDeadlineMs, error: this.leaveError };
  }

  /**
   * serf forceLeave (RemoveFailedNode / RemoveFailedNodePrune): a leave intent for `node`. Returns
   * a broadcast id to wait on with isBroadcastFinished (serf waits up to broadcastTimeout), or
   * null when no other member is alive and nothing is broadcast.
   */
  forceLeave(node: string, prune: boolean, nowMs: number): number | null {
    const message: SerfLeave = { lTime: this.clock.time(), node, prune };
    this.clock.increment();
    this.handleLeaveIntent(message, nowMs);
    if (!this.hasAliveMembers()) return null;
    return this.queueIntent({ kind: 'leave', ...message }, true);
  }

  /** True once a broadcast returned by forceLeave has been sent its full number of times. */
  isBroadcastFinished(notifyId: number): boolean {
    return this.finishedNotifies.has(notifyId);
  }

  /** Stops everything (serf Shutdown); a leave should come first or others will see a failure. */
  shutdown(): void {
    this.state = 'shutdown';
  }

  /** The current tags (a copy). */
  currentTags(): Map<string, string> {
    return new Map(this.tags);
  }

  /** serf SetTags: replace our tags and re-advertise them (memberlist alive with a new incarnation). */
  setTags(tags: ReadonlyMap<string, string>, nowMs: number): SerfError | null {
    try {
      encodeTags(tags, this.config.protocolVersion);
    } catch (error) {
      if (error instanceof GossipWireError) return new SerfError('ERR_SERF_TAGS_TOO_LARGE', `Encoded length of tags exceeds limit of ${META_BYTES_MAX} bytes`);
      throw error;
    }
    this.tags = new Map(tags);
    this.host.updateMeta(nowMs);
    return null;
  }

  // -- User events --------------------------------------------------------------------------------

  /** serf UserEvent: size checks, stamp with the event clock, deliver locally, broadcast. */
  userEvent(name: string, payload: Uint8Array, coalesce: boolean, nowMs: number): SerfError | null {
    const rawSize = TEXT_ENCODER.encode(name).length + payload.length;
    if (rawSize > this.config.userEventSizeLimit) return new SerfError('ERR_SERF_EVENT_TOO_LARGE', `user event exceeds configured limit of ${this.config.userEventSizeLimit} bytes before encoding`);
    if (rawSize > SERF_USER_EVENT_BYTES_HARD_MAX) return new SerfError('ERR_SERF_EVENT_TOO_LARGE', `user event exceeds sane limit of ${SERF_USER_EVENT_BYTES_HARD_MAX} bytes before encoding`);
    const message: SerfUserEvent = { lTime: this.eventClock.time(), name, payload: payload.slice(), cc: coalesce };
    const raw = encodeSerfMessage({ kind: 'userEvent', ...message });
    if (raw.length > this.config.userEventSizeLimit) return new SerfError('ERR_SERF_EVENT_TOO_LARGE', `encoded user event exceeds configured limit of ${this.config.userEventSizeLimit} bytes after encoding`);
    this.eventClock.increment();
    this.handleUserEvent(message, nowMs);
    this.eventQueue.queue(raw);
    return null;
  }

  // -- Queries -------------------------------------------------------------------------------

  /** serf DefaultQueryTimeout: GossipInterval × QueryTimeoutMult × ceil(log10(n+1)), n = memberlist NumMembers. */
  defaultQueryTimeoutMs(): number {
    return this.config.gossipIntervalMs * this.config.queryTimeoutMult * Math.ceil(Math.log10(this.host.numMembers() + 1));
  }

  /**
   * serf Query: broadcast a query and collect acks and responses until its deadline (the
   * collector closes then; tick() does it). The query is also handled locally, as serf does.
   */
  query(name: string, payload: Uint8Array, params: QueryParams, nowMs: number): QueryCollector | SerfError {
    if (this.config.protocolVersion < SERF_QUERY_PROTOCOL_MIN) return new SerfError('ERR_SERF_FEATURE_NOT_SUPPORTED', 'Feature not supported');
    if (this.collectors.size >= SERF_QUERIES_IN_FLIGHT_MAX) return new SerfError('ERR_SERF_TOO_MANY_QUERIES', `${SERF_QUERIES_IN_FLIGHT_MAX} queries already in flight`);
    const relayFactor = params.relayFactor ?? 0;
    if (!Number.isInteger(relayFactor) || relayFactor < 0 || relayFactor > RELAY_FACTOR_MAX) return new SerfError('ERR_SERF_BAD_PARAMS', `relay factor ${relayFactor} is not in 0..${RELAY_FACTOR_MAX}`);
    const timeoutMs = params.timeoutMs !== undefined && params.timeoutMs > 0 ? params.timeoutMs : this.defaultQueryTimeoutMs();
    if (!Number.isFinite(timeoutMs)) return new SerfError('ERR_SERF_BAD_PARAMS', 'query timeout is not finite');
    const local = this.host.localMember();
    const message: SerfQuery = {
      lTime: this.queryClock.time(),
      id: Math.floor(this.rng() * 0x80000000),
      addr: local.address.addr.slice(),
      port: local.address.port,
      sourceNode: local.name,
      filters: encodeQueryFilters(params),
      flags: params.requestAck === true ? QueryFlag.ack : 0,
      relayFactor,
      timeoutNs: Math.round(timeoutMs * 1e6),
      name,
      payload: payload.slice(),
    };
    const raw = encodeSerfMessage({ kind: 'query', ...message });
    if (raw.length > this.config.querySizeLimit) return new SerfError('ERR_SERF_QUERY_TOO_LARGE', `query exceeds limit of ${this.config.querySizeLimit} bytes`);
    const collector = new QueryCollector(message.id, message.lTime, name, nowMs + timeoutMs, params.requestAck === true, this.host.numMembers());
    this.collectors.set(message.lTime, collector);
    this.handleQuery(message, nowMs);
    this.queryQueue.queue(raw);
    return collector;
  }

  /**
   * serf KeyManager: runs `_serf_<op>` with `07{Key}` as the payload. Tally the answers with
   * serfquery summarizeKeyResponses once isKeyQueryComplete says so.
   */
  keyQuery(op: KeyOperation, keyBase64: string, nowMs: number, relayFactor = 0): QueryCollector | SerfError {
    const key = op === 'list-keys' ? new Uint8Array() : decodeKeyArgument(keyBase64);
    if (typeof key === 'string') return new SerfError('ERR_SERF_BAD_KEY', key);
    return this.query(INTERNAL_QUERY_PREFIX + op, encodeKeyRequest(key), { relayFactor }, nowMs);
  }

  /** Query.Respond: one response per query, before its deadline, within the size limit. */
  respond(query: SerfQueryEvent, payload: Uint8Array, nowMs: number): SerfError | null {
    const pending = this.pendingQueries.get(pendingKey(query.lTime, query.id));
    if (pending === undefined) return new SerfError('ERR_SERF_RESPONSE_SENT', 'response already sent');
    return this.respondTo(pending, payload, nowMs);
  }

  // -- Coordinates --------------------------------------------------------------------------------

  /** Our Vivaldi coordinate, or null when coordinates are disabled. */
  getCoordinate(): Coordinate | null {
    return this.vivaldi?.getCoordinate() ?? null;
  }

  /** The last coordinate a member sent us (ours for our own name), or null. */
  getCachedCoordinate(name: string): Coordinate | null {
    return this.coordCache.get(name) ?? null;
  }

  // -- SwimDelegate ---------------------------------------------------------------------------------

  /** Our tags as Meta; serf panics when they exceed the limit, SetTags keeps that from happening. */
  nodeMeta(limitBytes: number): Uint8Array {
    const meta = encodeTags(this.tags, this.config.protocolVersion);
    assert(meta.length <= limitBytes, `node tags exceed the length limit of ${limitBytes} bytes`);
    return meta;
  }

  /** A serf message from gossip or a direct packet (delegate.go NotifyMsg). */
  notifyMsg(payload: Uint8Array, nowMs: number): void {
    if (payload.length === 0 || this.state === 'shutdown') return;
    let message;
    try {
      message = decodeSerfMessage(payload);
    } catch (error) {
      if (!(error instanceof GossipWireError)) throw error;
      this.count(error.code === 'ERR_GOSSIP_TYPE_UNSUPPORTED' ? 'msgUnknownType' : 'msgDecodeErrors');
      return;
    }
    let rebroadcast = false;
    let queue = this.intentQueue;
    switch (message.kind) {
      case 'leave':
        rebroadcast = this.handleLeaveIntent(message, nowMs);
        break;
      case 'join':
        rebroadcast = this.handleJoinIntent(message, nowMs);
        break;
      case 'userEvent':
        rebroadcast = this.handleUserEvent(message, nowMs);
        queue = this.eventQueue;
        break;
      case 'query':
        rebroadcast = this.handleQuery(message, nowMs);
        queue = this.queryQueue;
        break;
      case 'queryResponse':
        this.handleQueryResponse(message, nowMs);
        break;
      case 'relay':
        this.sendTo(message.header.destAddr.ip, message.header.destAddr.port, message.inner, 'relayed');
        break;
      default:
        // push/pull, conflict and key payloads are not gossip messages: serf warns and drops them.
        this.count('msgUnknownType');
    }
    if (rebroadcast) queue.queue(payload.slice());
  }

  /** Intents, then queries, then events, within `limitBytes` (delegate.go GetBroadcasts). */
  getBroadcasts(overheadBytes: number, limitBytes: number): Uint8Array[] {
    const n = this.members.size;
    const out = this.intentQueue.getBroadcasts(overheadBytes, limitBytes, n);
    let used = out.reduce((sum, msg) => sum + msg.length + overheadBytes, 0);
    const queries = this.queryQueue.getBroadcasts(overheadBytes, limitBytes - used, n);
    used += queries.reduce((sum, msg) => sum + msg.length + overheadBytes, 0);
    const events = this.eventQueue.getBroadcasts(overheadBytes, limitBytes - used, n);
    return [...out, ...queries, ...events];
  }

  /** `02` + pushPull: clocks, every member's statusLTime, left members, the whole event ring. */
  localState(_isJoin: boolean, _nowMs: number): Uint8Array {
    const statusLTimes = new Map<string, LamportTime>();
    for (const [name, record] of this.members) statusLTimes.set(name, record.statusLTime);
    return encodeSerfMessage({
      kind: 'pushPull',
      lTime: this.clock.time(),
      statusLTimes,
      leftMembers: [...this.left],
      eventLTime: this.eventClock.time(),
      events: this.eventBuffer.slice(),
      queryLTime: this.queryClock.time(),
    });
  }

  /** Merges a remote push/pull state (delegate.go MergeRemoteState; spec §3.3). */
  mergeRemoteState(state: Uint8Array, isJoin: boolean, nowMs: number): void {
    if (state.length === 0 || state[0] !== 2) {
      this.count('remoteStateRejected');
      return;
    }
    let message;
    try {
      message = decodeSerfMessage(state);
    } catch (error) {
      if (!(error instanceof GossipWireError)) throw error;
      this.count('remoteStateDecodeErrors');
      return;
    }
    assert(message.kind === 'pushPull', 'a 02 state decodes as a push/pull');
    if (message.lTime > 0n) this.clock.witness(message.lTime - 1n);
    if (message.eventLTime > 0n) this.eventClock.witness(message.eventLTime - 1n);
    if (message.queryLTime > 0n) this.queryClock.witness(message.queryLTime - 1n);
    const leftNames = new Set(message.leftMembers);
    for (const name of message.leftMembers) {
      const lTime = ((message.statusLTimes.get(name) ?? 0n) + 1n) & U64_MASK;
      this.handleLeaveIntent({ lTime, node: name, prune: false }, nowMs);
    }
    for (const [name, lTime] of message.statusLTimes) {
      if (!leftNames.has(name)) this.handleJoinIntent({ lTime, node: name }, nowMs);
    }
    // serf raises eventMinTime before replaying, so a join that ignores old events drops them here.
    if (isJoin && this.isEventJoinIgnore && message.eventLTime > this.eventMinTime) this.eventMinTime = message.eventLTime;
    for (const slot of message.events) {
      if (slot === null) continue;
      for (const event of slot.events) this.handleUserEvent({ lTime: slot.lTime, name: event.name, payload: event.payload, cc: false }, nowMs);
    }
  }

  /** `01` + our coordinate, or nothing when coordinates are disabled (ping_delegate.go AckPayload). */
  ackPayload(): Uint8Array {
    if (this.vivaldi === null) return new Uint8Array();
    return encodeCoordinatePayload(this.vivaldi.getCoordinate());
  }

  /** Feeds a direct ping's RTT and the peer's coordinate to Vivaldi (NotifyPingComplete). */
  notifyPingComplete(member: SwimMemberLike, rttMs: number, payload: Uint8Array): void {
    if (this.vivaldi === null || payload.length === 0) return;
    let other: Coordinate | null;
    try {
      other = decodeCoordinatePayload(payload);
    } catch (error) {
      if (!(error instanceof GossipWireError)) throw error;
      this.count('coordinateDecodeErrors');
      return;
    }
    if (other === null) return;
    const after = this.vivaldi.update(member.name, other, Math.trunc(rttMs * 1e6));
    if (after instanceof VivaldiError) {
      this.count('coordinateRejected');
      return;
    }
    this.coordCache.set(member.name, other);
    this.coordCache.set(this.config.nodeName, after);
  }

  /** memberlist saw a node alive for the first time (serf handleNodeJoin). */
  notifyJoin(node: SwimMemberLike, nowMs: number): void {
    let record = this.members.get(node.name);
    let oldStatus: number = MemberStatus.none;
    if (record === undefined) {
      record = { member: { ...memberFromNode(node, this.decodeMeta(node.meta)), status: MemberStatus.alive }, statusLTime: 0n, leaveTimeMs: 0 };
      const intent = this.recentIntents.get(node.name);
      if (intent?.type === 'join') record.statusLTime = intent.lTime;
      if (intent?.type === 'leave') {
        record.member.status = MemberStatus.leaving;
        record.statusLTime = intent.lTime;
      }
      this.members.set(node.name, record);
    } else {
      oldStatus = record.member.status;
      if (oldStatus === MemberStatus.failed && nowMs - record.leaveTimeMs < this.config.flapTimeoutMs) this.count('memberFlap');
      Object.assign(record.member, memberFromNode(node, this.decodeMeta(node.meta)), { status: MemberStatus.alive });
      record.leaveTimeMs = 0;
    }
    if (oldStatus === MemberStatus.failed || oldStatus === MemberStatus.left) {
      this.failed = this.failed.filter((name) => name !== node.name);
      this.left = this.left.filter((name) => name !== node.name);
    }
    this.emitMember('member-join', record);
  }

  /** memberlist declared a node dead or left (serf handleNodeLeave). */
  notifyLeave(node: SwimMemberLike, nowMs: number): void {
    const record = this.members.get(node.name);
    if (record === undefined) return;
    if (record.member.status === MemberStatus.leaving) {
      record.member.status = MemberStatus.left;
      record.leaveTimeMs = nowMs;
      this.left.push(node.name);
      this.emitMember('member-leave', record);
    } else if (record.member.status === MemberStatus.alive) {
      record.member.status = MemberStatus.failed;
      record.leaveTimeMs = nowMs;
      this.failed.push(node.name);
      this.emitMember('member-failed', record);
    } else {
      this.count('leaveInBadState');
    }
  }

  /** memberlist saw new meta or a new address (serf handleNodeUpdate). */
  notifyUpdate(node: SwimMemberLike, _nowMs: number): void {
    const record = this.members.get(node.name);
    if (record === undefined) return;
    const status = record.member.status;
    Object.assign(record.member, memberFromNode(node, this.decodeMeta(node.meta)), { status });
    this.emitMember('member-update', record);
  }

  /** memberlist AliveDelegate through serf's merge delegate: false refuses the node. */
  notifyAlive(node: SwimMemberLike): boolean {
    if (this.merge === undefined) return true;
    return this.merge([this.nodeToMember(node)]) === null;
  }

  /** memberlist MergeDelegate through serf's merge delegate: an error text aborts the push/pull merge. */
  notifyMerge(nodes: readonly SwimMemberLike[]): string | null {
    if (this.merge === undefined) return null;
    return this.merge(nodes.map((node) => this.nodeToMember(node)));
  }

  // -- Intents ---------------------------------------------------------------------------------

  private broadcastJoin(lTime: LamportTime, nowMs: number): void {
    const message: SerfJoin = { lTime, node: this.config.nodeName };
    this.clock.witness(lTime);
    this.handleJoinIntent(message, nowMs);
    this.queueIntent({ kind: 'join', ...message }, false);
  }

  /** serf handleNodeLeaveIntent; true means rebroadcast. */
  private handleLeaveIntent(message: SerfLeave, nowMs: number): boolean {
    this.clock.witness(message.lTime);
    const record = this.members.get(message.node);
    if (record === undefined) return this.upsertIntent(message.node, 'leave', message.lTime, nowMs);
    if (message.lTime <= record.statusLTime) return false;
    if (message.node === this.config.nodeName && this.state === 'alive') {
      // An older leave about us is going around (say, from before a restart): refute it.
      this.broadcastJoin(this.clock.time(), nowMs);
      return false;
    }
    // serf records the time even when the status does not change, so two leaves for one member
    // cannot bounce between nodes forever (consul issues 7960, 8179).
    record.statusLTime = message.lTime;
    switch (record.member.status) {
      case MemberStatus.alive:
        record.member.status = MemberStatus.leaving;
        if (message.prune) this.schedulePrune(message.node, nowMs);
        return true;
      case MemberStatus.failed:
        record.member.status = MemberStatus.left;
        this.failed = this.failed.filter((name) => name !== message.node);
        this.left.push(message.node);
        this.emitMember('member-leave', record);
        if (message.prune) this.schedulePrune(message.node, nowMs);
        return true;
      case MemberStatus.leaving:
      case MemberStatus.left:
        if (message.prune) this.schedulePrune(message.node, nowMs);
        return true;
      default:
        return false;
    }
  }

  /** serf handleNodeJoinIntent; true means rebroadcast. */
  private handleJoinIntent(message: SerfJoin, nowMs: number): boolean {
    this.clock.witness(message.lTime);
    const record = this.members.get(message.node);
    if (record === undefined) return this.upsertIntent(message.node, 'join', message.lTime, nowMs);
    if (message.lTime <= record.statusLTime) return false;
    record.statusLTime = message.lTime;
    if (record.member.status === MemberStatus.leaving) record.member.status = MemberStatus.alive;
    return true;
  }

  /** Keeps the newest intent per unknown node; true when it was news. */
  private upsertIntent(node: string, type: 'join' | 'leave', lTime: LamportTime, nowMs: number): boolean {
    const existing = this.recentIntents.get(node);
    if (existing !== undefined && lTime <= existing.lTime) return false;
    if (existing === undefined && this.recentIntents.size >= SERF_RECENT_INTENTS_MAX) {
      this.count('intentsDropped');
      return false;
    }
    this.recentIntents.set(node, { type, wallMs: nowMs, lTime });
    return true;
  }

  private queueIntent(message: { kind: 'join' } & SerfJoin | { kind: 'leave' } & SerfLeave, wantsNotify: boolean): number | null {
    const notifyId = wantsNotify ? this.nextNotifyId++ : null;
    this.intentQueue.queue(encodeSerfMessage(message), notifyId);
    return notifyId;
  }

  private noteFinished(notifyId: number): void {
    this.finishedNotifies.add(notifyId);
    if (this.finishedNotifies.size > SERF_NOTIFIES_MAX) {
      const oldest = this.finishedNotifies.values().next().value;
      if (oldest !== undefined) this.finishedNotifies.delete(oldest);
    }
  }

  private hasAliveMembers(): boolean {
    for (const [name, record] of this.members) {
      if (name !== this.config.nodeName && record.member.status === MemberStatus.alive) return true;
    }
    return false;
  }

  // -- Leave, prune, reap, reconnect -----------------------------------------------------------

  private startMemberlistLeave(nowMs: number): void {
    this.host.leave(nowMs);
    this.leavePhase = 'memberlist';
    this.leaveDeadlineMs = nowMs + this.config.broadcastTimeoutMs;
  }

  private advanceLeave(nowMs: number): void {
    if (this.leavePhase === 'intent') {
      if (this.leaveNotifyId !== null && this.finishedNotifies.has(this.leaveNotifyId)) this.startMemberlistLeave(nowMs);
      else if (nowMs >= this.leaveDeadlineMs) this.failLeave('timeout while waiting for graceful leave');
    }
    if (this.leavePhase === 'memberlist') {
      if (this.host.isLeaveBroadcastDone()) {
        this.leavePhase = 'propagate';
        this.leaveDeadlineMs = nowMs + this.config.leavePropagateDelayMs;
      } else if (nowMs >= this.leaveDeadlineMs) {
        this.failLeave('timeout waiting for leave broadcast');
      }
    }
    if (this.leavePhase === 'propagate' && nowMs >= this.leaveDeadlineMs) {
      this.leavePhase = 'done';
      if (this.state !== 'shutdown') this.state = 'left';
    }
  }

  private failLeave(message: string): void {
    // serf's Leave returns the error and stays in the leaving state; Consul shuts down anyway.
    this.leavePhase = 'failed';
    this.leaveError = new SerfError('ERR_SERF_LEAVE_TIMEOUT', message);
  }

  /** handlePrune: a leaving member is erased after broadcastTimeout + leavePropagateDelay, others now. */
  private schedulePrune(name: string, nowMs: number): void {
    const record = this.members.get(name);
    if (record === undefined) return;
    if (record.member.status === MemberStatus.leaving) this.pendingPrunes.set(name, nowMs + this.config.broadcastTimeoutMs + this.config.leavePropagateDelayMs);
    else this.prune(name);
  }

  private prune(name: string): void {
    const record = this.members.get(name);
    if (record === undefined) return;
    if (record.member.status === MemberStatus.leaving || record.member.status === MemberStatus.left) this.left = this.left.filter((other) => other !== name);
    this.failed = this.failed.filter((other) => other !== name);
    this.eraseNode(record);
  }

  private eraseNode(record: MemberRecord): void {
    this.members.delete(record.member.name);
    this.pendingPrunes.delete(record.member.name);
    this.vivaldi?.forgetNode(record.member.name);
    this.coordCache.delete(record.member.name);
    this.emitMember('member-reap', record);
  }

  /** handleReap: failed past reconnectTimeout, left past tombstoneTimeout, stale intents. */
  private reap(nowMs: number): void {
    this.failed = this.reapList(this.failed, nowMs, this.config.reconnectTimeoutMs);
    this.left = this.reapList(this.left, nowMs, this.config.tombstoneTimeoutMs);
    for (const [node, intent] of this.recentIntents) {
      if (nowMs - intent.wallMs > this.config.recentIntentTimeoutMs) this.recentIntents.delete(node);
    }
  }

  private reapList(names: string[], nowMs: number, timeoutMs: number): string[] {
    const kept: string[] = [];
    for (const name of names) {
      const record = this.members.get(name);
      if (record === undefined) continue;
      if (nowMs - record.leaveTimeMs <= timeoutMs) kept.push(name);
      else this.eraseNode(record);
    }
    return kept;
  }

  /** serf reconnect: with probability failed/alive, try one random failed member again. */
  private reconnect(nowMs: number): void {
    const n = this.failed.length;
    if (n === 0 || this.state !== 'alive') return;
    const numAlive = Math.max(1, this.members.size - n - this.left.length);
    if (this.rng() > n / numAlive) return;
    const name = this.failed[Math.floor(this.rng() * n)];
    const record = name === undefined ? undefined : this.members.get(name);
    if (record === undefined) return;
    this.count('reconnectAttempts');
    this.host.join([{ addr: record.member.addr.slice(), port: record.member.port }], nowMs);
  }

  /** checkQueueDepth for each queue: warn (counted) and prune beyond the limit. */
  private checkQueueDepths(): void {
    const max = this.config.minQueueDepth > 0 ? Math.max(2 * this.members.size, this.config.minQueueDepth) : this.config.maxQueueDepth;
    for (const queue of [this.intentQueue, this.eventQueue, this.queryQueue]) {
      if (queue.length >= this.config.queueDepthWarning) this.count('queueDepthWarnings');
      if (queue.length > max) this.count('queuePruned', queue.prune(max));
    }
  }

  // -- User events and queries (receive side) ---------------------------------------------------

  /** serf handleUserEvent; true means rebroadcast. */
  private handleUserEvent(message: SerfUserEvent, _nowMs: number): boolean {
    this.eventClock.witness(message.lTime);
    if (message.lTime < this.eventMinTime) return false;
    const size = BigInt(this.eventBuffer.length);
    const current = this.eventClock.time();
    if (current > size && message.lTime < current - size) {
      this.count('eventsTooOld');
      return false;
    }
    const index = Number(message.lTime % size);
    let slot = this.eventBuffer[index] ?? null;
    if (slot !== null && slot.lTime === message.lTime) {
      if (slot.events.some((seen) => seen.name === message.name && equalBytes(seen.payload, message.payload))) return false;
      if (slot.events.length >= SERF_EVENTS_PER_LTIME_MAX) {
        this.count('eventsDropped');
        return false;
      }
    } else {
      slot = { lTime: message.lTime, events: [] };
      this.eventBuffer[index] = slot;
    }
    slot.events.push({ name: message.name, payload: message.payload.slice() });
    this.count('userEvents');
    this.emit({ kind: 'user', lTime: message.lTime, name: message.name, payload: message.payload.slice(), coalesce: message.cc });
    return true;
  }

  /** serf handleQuery; true means rebroadcast. */
  private handleQuery(query: SerfQuery, nowMs: number): boolean {
    this.queryClock.witness(query.lTime);
    if (query.lTime < this.queryMinTime) return false;
    const size = BigInt(this.queryBuffer.length);
    const current = this.queryClock.time();
    if (current > size && query.lTime < current - size) {
      this.count('queriesTooOld');
      return false;
    }
    const index = Number(query.lTime % size);
    let slot = this.queryBuffer[index] ?? null;
    if (slot !== null && slot.lTime === query.lTime) {
      if (slot.ids.includes(query.id)) return false;
      if (slot.ids.length >= SERF_QUERY_IDS_PER_LTIME_MAX) {
        this.count('queriesDropped');
        return false;
      }
    } else {
      slot = { lTime: query.lTime, ids: [] };
      this.queryBuffer[index] = slot;
    }
    slot.ids.push(query.id);
    this.count('queries');
    const rebroadcast = (query.flags & QueryFlag.noBroadcast) === 0;
    // Filtered out: not answered here, but a first sighting is still passed on.
    if (!matchesQueryFilters(query.filters, this.config.nodeName, this.tags)) return rebroadcast;
    if ((query.flags & QueryFlag.ack) !== 0) this.sendAck(query);
    const pending: PendingQuery = { lTime: query.lTime, id: query.id, addr: query.addr, port: query.port, sourceNode: query.sourceNode, deadlineMs: nowMs + query.timeoutNs / 1e6, relayFactor: query.relayFactor };
    if (query.name.startsWith(INTERNAL_QUERY_PREFIX)) {
      this.handleInternalQuery(query, pending, nowMs);
      return rebroadcast;
    }
    this.rememberPending(pending);
    this.emit({ kind: 'query', lTime: query.lTime, name: query.name, payload: query.payload.slice(), id: query.id, sourceNode: query.sourceNode, addr: query.addr.slice(), port: query.port, deadlineMs: pending.deadlineMs, relayFactor: query.relayFactor });
    return rebroadcast;
  }

  private sendAck(query: SerfQuery): void {
    const ack: SerfQueryResponse = { lTime: query.lTime, id: query.id, from: this.config.nodeName, flags: QueryFlag.ack, payload: new Uint8Array() };
    this.sendTo(query.addr, query.port, encodeSerfMessage({ kind: 'queryResponse', ...ack }), 'queryAcksSent');
    this.relayResponse(query.relayFactor, query.addr, query.port, query.sourceNode, ack);
  }

  /** serfQueries.handleQuery: ping needs nothing (the ack did it), conflict and key ops answer. */
  private handleInternalQuery(query: SerfQuery, pending: PendingQuery, nowMs: number): void {
    const op = query.name.slice(INTERNAL_QUERY_PREFIX.length);
    switch (op) {
      case 'ping':
        return;
      case 'conflict': {
        const node = TEXT_DECODER.decode(query.payload);
        if (node === this.config.nodeName) return;
        const record = this.members.get(node);
        this.respondTo(pending, encodeSerfMessage({ kind: 'conflictResponse', member: record === undefined ? null : snapshot(record) }), nowMs);
        return;
      }
      case 'install-key':
      case 'use-key':
      case 'remove-key':
      case 'list-keys': {
        const limit = this.config.queryResponseSizeLimit;
        const fits = (payload: Uint8Array): boolean => this.encodeResponse(pending, payload).length <= limit;
        const answer = answerKeyQuery(op, query.payload, this.keyring, limit, fits);
        if (answer.isChanged) this.emit({ kind: 'keyring-changed' });
        if (answer.payload !== null) this.respondTo(pending, answer.payload, nowMs);
        else this.count('keyResponseTooLarge');
        return;
      }
      default:
        this.count('internalQueryUnknown');
    }
  }

  private rememberPending(pending: PendingQuery): void {
    if (this.pendingQueries.size >= SERF_PENDING_QUERIES_MAX) {
      const oldest = this.pendingQueries.keys().next().value;
      if (oldest !== undefined) this.pendingQueries.delete(oldest);
      this.count('pendingQueriesDropped');
    }
    this.pendingQueries.set(pendingKey(pending.lTime, pending.id), pending);
  }

  private encodeResponse(pending: PendingQuery, payload: Uint8Array): Uint8Array {
    return encodeSerfMessage({ kind: 'queryResponse', lTime: pending.lTime, id: pending.id, from: this.config.nodeName, flags: 0, payload });
  }

  /** Query.respondWithMessageAndResponse: size, once, deadline; then send and relay. */
  private respondTo(pending: PendingQuery, payload: Uint8Array, nowMs: number): SerfError | null {
    const raw = this.encodeResponse(pending, payload);
    if (raw.length > this.config.queryResponseSizeLimit) return new SerfError('ERR_SERF_RESPONSE_TOO_LARGE', `response exceeds limit of ${this.config.queryResponseSizeLimit} bytes`);
    if (nowMs > pending.deadlineMs) {
      this.pendingQueries.delete(pendingKey(pending.lTime, pending.id));
      return new SerfError('ERR_SERF_PAST_DEADLINE', 'response is past the deadline');
    }
    this.pendingQueries.delete(pendingKey(pending.lTime, pending.id));
    this.sendTo(pending.addr, pending.port, raw, 'queryResponsesSent');
    const response: SerfQueryResponse = { lTime: pending.lTime, id: pending.id, from: this.config.nodeName, flags: 0, payload };
    this.relayResponse(pending.relayFactor, pending.addr, pending.port, pending.sourceNode, response);
    return null;
  }

  /** relayResponse: the same response through relayFactor random alive members with PMax ≥ 5. */
  private relayResponse(relayFactor: number, addr: Uint8Array, port: number, sourceNode: string, response: SerfQueryResponse): void {
    if (relayFactor === 0) return;
    const members = this.membersList();
    if (members.length < relayFactor + 1) return;
    const inner = encodeSerfMessage({ kind: 'queryResponse', ...response });
    const raw = encodeRelay({ destAddr: { ip: addr, port, zone: '' }, destName: sourceNode }, inner);
    if (raw.length > this.config.queryResponseSizeLimit) {
      this.count('relayTooLarge');
      return;
    }
    const exclude = (member: SerfMember): boolean => member.status !== MemberStatus.alive || member.protocolMax < 5 || member.name === this.config.nodeName;
    for (const relay of kRandomMembers(relayFactor, members, exclude, this.rng)) this.host.sendUserPacket({ addr: relay.addr, port: relay.port }, raw);
  }

  /** serf handleQueryResponse: route an ack or response to the collector of a running query. */
  private handleQueryResponse(response: SerfQueryResponse, nowMs: number): void {
    const collector = this.collectors.get(response.lTime);
    if (collector === undefined || collector.id !== response.id) {
      this.count('responsesUnmatched');
      return;
    }
    if (collector.isFinished(nowMs)) return;
    const isAck = (response.flags & QueryFlag.ack) !== 0;
    const isNew = isAck ? collector.addAck(response.from, nowMs) : collector.addResponse(response.from, response.payload, nowMs);
    if (!isNew) this.count(isAck ? 'duplicateAcks' : 'duplicateResponses');
  }

  private expireQueries(nowMs: number): void {
    for (const [lTime, collector] of this.collectors) {
      if (collector.isFinished(nowMs)) {
        collector.close();
        this.collectors.delete(lTime);
      }
    }
    for (const [key, pending] of this.pendingQueries) {
      if (nowMs > pending.deadlineMs) this.pendingQueries.delete(key);
    }
  }

  // -- Small helpers --------------------------------------------------------------------------

  /** Sends a user packet to an address taken from a message; one that cannot be an IP:port is dropped (counted). */
  private sendTo(addr: Uint8Array, port: number, payload: Uint8Array, counter: string): void {
    if ((addr.length !== 4 && addr.length !== 16) || port <= 0 || port > 0xffff) {
      this.count('unsendableAddress');
      return;
    }
    this.host.sendUserPacket({ addr: addr.slice(), port }, payload);
    this.count(counter);
  }

  private decodeMeta(meta: Uint8Array): Map<string, string> {
    try {
      return decodeTags(meta);
    } catch (error) {
      if (!(error instanceof GossipWireError)) throw error;
      // serf logs and keeps what it decoded, which for a malformed map is nothing.
      this.count('tagDecodeErrors');
      return new Map();
    }
  }

  private nodeToMember(node: SwimMemberLike): SerfMember {
    return { ...memberFromNode(node, this.decodeMeta(node.meta)), status: node.state === NodeState.left ? MemberStatus.left : MemberStatus.none };
  }

  private emitMember(type: MemberEventType, record: MemberRecord): void {
    this.emit({ kind: 'member', type, members: [snapshot(record)] });
  }

  private emit(event: SerfEvent): void {
    if (this.events.length >= SERF_EVENTS_QUEUED_MAX) {
      this.events.shift();
      this.count('eventsOverflow');
    }
    this.events.push(event);
  }

  private count(name: string, by = 1): void {
    this.counters[name] = (this.counters[name] ?? 0) + by;
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder('utf-8');
/** A query's RelayFactor is a uint8 on the wire. */
const RELAY_FACTOR_MAX = 0xff;

function compareBroadcasts(a: QueuedBroadcast, b: QueuedBroadcast): number {
  if (a.transmits !== b.transmits) return a.transmits - b.transmits;
  if (a.msg.length !== b.msg.length) return b.msg.length - a.msg.length;
  return b.id - a.id;
}

function memberFromNode(node: SwimMemberLike, tags: Map<string, string>): Omit<SerfMember, 'status'> {
  return {
    name: node.name,
    addr: node.address.addr.slice(),
    port: node.address.port,
    tags,
    protocolMin: node.vsn.pMin,
    protocolMax: node.vsn.pMax,
    protocolCur: node.vsn.pCur,
    delegateMin: node.vsn.dMin,
    delegateMax: node.vsn.dMax,
    delegateCur: node.vsn.dCur,
  };
}

function snapshot(record: MemberRecord): SerfMember {
  const m = record.member;
  return { ...m, addr: m.addr.slice(), tags: new Map(m.tags) };
}

function pendingKey(lTime: LamportTime, id: number): string {
  return `${lTime}:${id}`;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
