// The memberlist core: SWIM failure detection with Lifeguard, membership state, dissemination
// by piggy-backed gossip, and push/pull anti-entropy, as a pure deterministic state machine that
// speaks memberlist 0.2.2's wire protocol (shared/spec/wire.md §2, consul-ts issue 8).
//
// Shape (STYLE.md rule 4): the shell calls tick(nowMs) when nextDeadlineMs() is due,
// onPacket() for each UDP datagram, onStream() for each incoming TCP exchange and onStreamReply()
// with the outcome of each 'stream' effect; it performs what drainOutbox() returns. Time comes
// only from `nowMs` arguments and randomness only from the injected rng/randomBytes.
//
// Behaviour follows memberlist v0.2.2 (state.go, net.go, memberlist.go, util.go):
// - probe: one node per ProbeInterval, round-robin over a list shuffled at each wrap (new nodes
//   inserted at a random offset); a UDP ping (ping+suspect compound for a suspect target); after
//   ProbeTimeout, IndirectChecks indirect pings (asking PMax≥4 relays for nacks) and a TCP ping
//   (PMax≥3, unless disabled); the probe ends at ProbeInterval×(awareness+1); no ack: suspect.
// - Lifeguard: awareness ±1 per probe outcome and per refutation (+missed nacks); suspicion
//   timeouts shrink with independent confirmations (swimsuspicion.ts).
// - alive/suspect/dead rules with incarnations, refutation by incarnation bump, Left = dead from
//   the node itself, address conflicts (DeadNodeReclaimTime), Alive/Merge delegate vetoes.
// - gossip every GossipInterval to GossipNodes random alive/suspect/recently dead nodes; every
//   ping, ack, nack and indirect ping also carries broadcasts (sendMsg piggy-backing).
// - push/pull every PushPullInterval (scaled above 32 nodes); join = push/pull with Join:true;
//   verifyProtocol before merging; Left → dead{From: Name}, Dead/Suspect → suspect.
// - Dead nodes leave the list at a probe wrap once GossipToTheDeadTime has passed; Left nodes
//   stay (0.2.2: only ≥0.3.1 purges them). Reaping members is serf's job.
//
// Two additions to memberlist, local and wire-compatible (docs/gossip.md, "Two additions").
// Suspect rechecks: a member that missed every copy of a suspect's refutation would declare a live node dead
// (gossip gives each message about retransmitLimit sends per holder, and under loss one member
// in a few hundred misses them all). So a suspicion that could expire within RECHECK_LEAD_INTERVALS
// probe intervals gets one probe of our own ahead of the round-robin (same probe rate), and a
// suspect that answers any probe is asked for its state by a push/pull, whose merge brings its
// refuting alive; the deadline waits for that exchange. A crashed suspect answers nothing: the
// failed probe is one more confirmation, so a suspicion whose confirmations are slow to come
// (the round-robins reach the dead member late) still ends near the minimum timeout.
// Join catch-up: in a burst of joins some member misses some other's alive; a member whose join
// succeeded makes one more push/pull with a random member once no new member has appeared for
// JOIN_CATCH_UP_QUIET_ROUNDS gossip intervals, instead of leaving it to the periodic one.
//
// Not here: sockets, timers, DNS resolution of join addresses (the shell passes addresses),
// CIDR filters (IPAllowed), labels other than passing config.label to gossipwire, the
// 128-concurrent-push/pull cap (onStream is synchronous), reliable user messages out (no API).
//
// Invariants: the local node is always in the node map; nodes and nodeMap hold the same records;
// at most one probe is in flight; awareness stays in [0, AwarenessMaxMultiplier-1]; every
// collection fed by input has a named limit; no handler lets a decode error escape (bad bytes
// are counted in `counters`).
//
// References: hashicorp/memberlist v0.2.2 state.go (probe, probeNode, gossip, pushPull,
// aliveNode, suspectNode, deadNode, mergeState, verifyProtocol, refute), net.go (handleCommand,
// handlePing, handleIndirectPing, sendMsg, rawSendMsgPacket, handleConn, readRemoteState,
// mergeRemoteState), memberlist.go (Join, setAlive, UpdateNode, Leave, NumMembers), util.go,
// broadcast.go; Lifeguard (Dadgar, Phillips, Currey 2018); SWIM (Das, Gupta, Motivala 2002).

import assert from 'node:assert/strict';
import { encryptionVersionFor, type EncryptionVersion, type Keyring } from './gossipcrypto.js';
import {
  COMPOUND_PART_OVERHEAD_BYTES,
  decodePacket,
  decodeStream,
  decodeVsn,
  encodeCompounds,
  encodeMessage,
  encodePacket,
  encodePushPull,
  encodeStream,
  encodeVsn,
  GossipWireError,
  META_BYTES_MAX,
  MessageType,
  NodeState,
  piggybackBytesAvailable,
  PROTOCOL_VERSION_MAX,
  PROTOCOL_VERSION_MIN,
  UDP_BUFFER_BYTES,
  USER_MSG_OVERHEAD_BYTES,
  type Alive,
  type GossipMessage,
  type IndirectPing,
  type Ping,
  type ProtocolVersions,
  type PushNodeState,
  type StreamMessage,
  type Suspect,
} from './gossipwire.js';
import { BroadcastQueue } from './swimqueue.js';
import { applyAwarenessDelta, pushPullScale, scaleTimeoutMs, Suspicion, suspicionConfirmationsK, suspicionMaxTimeoutMs, suspicionTimeoutMs } from './swimsuspicion.js';

export { retransmitLimit } from './swimqueue.js';
export { applyAwarenessDelta, pushPullScale, remainingSuspicionTimeMs, scaleTimeoutMs, suspicionConfirmationsK, suspicionMaxTimeoutMs, suspicionTimeoutMs } from './swimsuspicion.js';
export type { NodeState, ProtocolVersions } from './gossipwire.js';

// ---------------------------------------------------------------------------------------------
// Exported types (the contract shared with serf.ts: /tmp/helpers/swim-interface.md)

/** A peer's transport address as memberlist carries it: Addr bytes verbatim (4 or 16) and port. */
export interface SwimAddress {
  readonly addr: Uint8Array;
  readonly port: number;
}

/** A member as memberlist knows it. States are gossipwire NodeState values: alive 0, suspect 1, dead 2, left 3. */
export interface SwimMember {
  readonly name: string;
  readonly address: SwimAddress;
  /** Delegate meta (serf tags), verbatim. */
  readonly meta: Uint8Array;
  /** uint32. */
  readonly incarnation: number;
  readonly state: NodeState;
  /** nowMs when the state last changed. */
  readonly stateChangeMs: number;
  readonly vsn: ProtocolVersions;
}

/** What memberlist asks of the layer above it (Delegate + EventDelegate + PingDelegate + Alive/Merge delegates). */
export interface SwimDelegate {
  /** Meta to advertise for the local node, at most limitBytes (META_BYTES_MAX). */
  nodeMeta(limitBytes: number): Uint8Array;
  /** A user message (type 8 payload, without the 8 byte) arrived by UDP (or a reliable stream). */
  notifyMsg(payload: Uint8Array, nowMs: number): void;
  /** User broadcasts to piggy-back: each already encoded, total <= limitBytes counting overheadBytes per message. */
  getBroadcasts(overheadBytes: number, limitBytes: number): Uint8Array[];
  /** Push/pull user state to send. */
  localState(isJoin: boolean, nowMs: number): Uint8Array;
  /** Remote push/pull user state received. */
  mergeRemoteState(state: Uint8Array, isJoin: boolean, nowMs: number): void;
  /** Payload for UDP acks, or empty. */
  ackPayload(): Uint8Array;
  /** An ack to our direct UDP ping arrived from `member` after rttMs with `payload` (may be empty). */
  notifyPingComplete(member: SwimMember, rttMs: number, payload: Uint8Array): void;
  /** Member events: first sight alive (also the local node, from the constructor), now dead/left, meta change. */
  notifyJoin(member: SwimMember, nowMs: number): void;
  notifyLeave(member: SwimMember, nowMs: number): void;
  notifyUpdate(member: SwimMember, nowMs: number): void;
  /** Return false to refuse an alive (memberlist AliveDelegate). */
  notifyAlive?(member: SwimMember): boolean;
  /** Return an error text to refuse a join push/pull (memberlist MergeDelegate), null to accept it. */
  notifyMerge?(members: readonly SwimMember[]): string | null;
}

/** Effects the core asks the shell to perform; drained with drainOutbox(). */
export type SwimEffect =
  /** Send one UDP datagram, fully framed. */
  | { readonly kind: 'packet'; readonly to: SwimAddress; readonly bytes: Uint8Array }
  /**
   * Open a TCP connection to `to`, write `bytes`, read ONE framed stream message back (pushPull,
   * ping; none for userMsg), then call onStreamReply(id, reply | Error, nowMs) within timeoutMs.
   */
  | { readonly kind: 'stream'; readonly id: number; readonly to: SwimAddress; readonly bytes: Uint8Array; readonly purpose: 'pushPull' | 'ping' | 'userMsg'; readonly timeoutMs: number };

export interface SwimConfig {
  readonly name: string;
  readonly address: SwimAddress;
  readonly protocolVersion: number;
  readonly delegateVersions: { readonly min: number; readonly max: number; readonly cur: number };
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly indirectChecks: number;
  readonly retransmitMult: number;
  readonly suspicionMult: number;
  readonly suspicionMaxTimeoutMult: number;
  readonly pushPullIntervalMs: number;
  readonly gossipIntervalMs: number;
  readonly gossipNodes: number;
  readonly gossipToTheDeadMs: number;
  readonly awarenessMaxMultiplier: number;
  readonly tcpTimeoutMs: number;
  readonly udpBufferBytes: number;
  readonly disableTcpPings: boolean;
  readonly enableCompression: boolean;
  readonly keyring?: Keyring;
  readonly verifyIncoming: boolean;
  readonly verifyOutgoing: boolean;
  readonly label?: string;
  readonly deadNodeReclaimMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Members one node tracks; alives about new names beyond this are dropped and counted. */
export const SWIM_MEMBERS_MAX = 65536;
/** Pending indirect-ping relays (each lives ProbeTimeout); requests beyond this are dropped. */
export const SWIM_RELAYS_MAX = 4096;
/** Outstanding stream effects (joins, push/pulls, TCP pings); joins beyond this are refused. */
export const SWIM_STREAMS_PENDING_MAX = 1024;
/** Effects queued before the shell drains them; beyond this packets are dropped (UDP is lossy anyway). */
export const SWIM_OUTBOX_MAX = 65536;
/** Join refusals remembered for the join's caller (one per address joined through). */
export const SWIM_JOIN_REFUSALS_KEPT = 64;
const U32_MAX = 0xffffffff;
/** After a join, the catch-up push/pull waits until no new member has appeared for this many gossip intervals. */
const JOIN_CATCH_UP_QUIET_ROUNDS = 10;
/** A suspicion this many probe intervals from its deadline is probed ahead of the round-robin. */
const RECHECK_LEAD_INTERVALS = 2;

/** The delegate versions Consul's serf advertises (`Vsn 01 05 02 02 05 04`, wire.md §2.3). */
export const CONSUL_DELEGATE_VERSIONS = { min: 2, max: 5, cur: 4 } as const;

// ---------------------------------------------------------------------------------------------
// Exported API: presets (memberlist config.go, wire.md §2.9)

/** memberlist DefaultLANConfig with Consul's serf delegate versions; name/address from the caller. */
export function lanConfig(name: string, address: SwimAddress): SwimConfig {
  return {
    name,
    address,
    protocolVersion: 2,
    delegateVersions: CONSUL_DELEGATE_VERSIONS,
    probeIntervalMs: 1000,
    probeTimeoutMs: 500,
    indirectChecks: 3,
    retransmitMult: 4,
    suspicionMult: 4,
    suspicionMaxTimeoutMult: 6,
    pushPullIntervalMs: 30_000,
    gossipIntervalMs: 200,
    gossipNodes: 3,
    gossipToTheDeadMs: 30_000,
    awarenessMaxMultiplier: 8,
    tcpTimeoutMs: 10_000,
    udpBufferBytes: UDP_BUFFER_BYTES,
    disableTcpPings: false,
    enableCompression: true,
    verifyIncoming: true,
    verifyOutgoing: true,
    label: '',
    deadNodeReclaimMs: 0,
  };
}

/** memberlist DefaultWANConfig. */
export function wanConfig(name: string, address: SwimAddress): SwimConfig {
  return {
    ...lanConfig(name, address),
    tcpTimeoutMs: 30_000,
    suspicionMult: 6,
    pushPullIntervalMs: 60_000,
    probeTimeoutMs: 3000,
    probeIntervalMs: 5000,
    gossipNodes: 4,
    gossipIntervalMs: 500,
    gossipToTheDeadMs: 60_000,
  };
}

/** memberlist DefaultLocalConfig. */
export function localConfig(name: string, address: SwimAddress): SwimConfig {
  return {
    ...lanConfig(name, address),
    tcpTimeoutMs: 1000,
    indirectChecks: 1,
    retransmitMult: 2,
    suspicionMult: 3,
    pushPullIntervalMs: 15_000,
    probeTimeoutMs: 200,
    probeIntervalMs: 1000,
    gossipIntervalMs: 100,
    gossipToTheDeadMs: 15_000,
  };
}

/** The first periodic tick strictly after `nowMs` of a ticker that fired at `baseMs` + k × `intervalMs`. */
export function nextTickAfterMs(baseMs: number, intervalMs: number, nowMs: number): number {
  assert(intervalMs > 0, 'ticker interval is positive');
  if (nowMs < baseMs) return baseMs;
  return baseMs + (Math.floor((nowMs - baseMs) / intervalMs) + 1) * intervalMs;
}

/**
 * memberlist verifyProtocol over remote push/pull nodes and local members: the common
 * protocol/delegate range of all alive nodes must contain every node's current versions.
 * A Vsn shorter than 6 bytes counts as all zeros (memberlist would index out of range).
 */
export function verifyProtocol(remote: readonly PushNodeState[], local: readonly SwimMember[]): boolean {
  let maxPMin = 0;
  let minPMax = 255;
  let maxDMin = 0;
  let minDMax = 255;
  const remoteVsn = remote.map((node) => decodeVsn(node.vsn));
  const bound = (v: ProtocolVersions): void => {
    maxPMin = Math.max(maxPMin, v.pMin);
    minPMax = Math.min(minPMax, v.pMax);
    maxDMin = Math.max(maxDMin, v.dMin);
    minDMax = Math.min(minDMax, v.dMax);
  };
  remote.forEach((node, i) => {
    const v = remoteVsn[i];
    if (node.state === NodeState.alive && v) bound(v);
  });
  for (const member of local) if (member.state === NodeState.alive) bound(member.vsn);
  const fits = (pCur: number, dCur: number): boolean => pCur >= maxPMin && pCur <= minPMax && dCur >= maxDMin && dCur <= minDMax;
  for (const v of remoteVsn) if (!fits(v?.pCur ?? 0, v?.dCur ?? 0)) return false;
  return local.every((member) => fits(member.vsn.pCur, member.vsn.dCur));
}

// ---------------------------------------------------------------------------------------------
// Exported API: the node

/** One memberlist member: the pure core. See the header for the protocol. */
export class SwimNode {
  /** Counters for metrics: packets and bytes sent/received, drops by reason (`udpDropped.<code>`), state changes. Never reset. */
  readonly counters: Readonly<Record<string, number>>;
  private readonly counterValues: Record<string, number> = {};

  // Invariant: nodes and nodeMap hold the same records; the local node is always present.
  private nodes: NodeRecord[] = [];
  private readonly nodeMap = new Map<string, NodeRecord>();
  private probeIndex = 0;
  private readonly broadcasts: BroadcastQueue;
  /** Suspicion timers by node name (memberlist nodeTimers). */
  private readonly suspicions = new Map<string, Suspicion>();
  /** Indirect pings we relay, by the SeqNo of our own ping to the target. Invariant: size ≤ SWIM_RELAYS_MAX. */
  private readonly relays = new Map<number, Relay>();
  private readonly streams = new Map<number, PendingStream>();
  /** Merge-delegate refusals of our join push/pulls, by address. Invariant: size ≤ SWIM_JOIN_REFUSALS_KEPT. */
  private readonly joinRefusals = new Map<string, string>();
  private probe: ActiveProbe | null = null;
  /** A suspect that acked the probe in the packet being handled: pulled once the whole packet is merged. */
  private answeredSuspect: string | null = null;
  private outbox: SwimEffect[] = [];
  /** memberlist m.incarnation and m.sequenceNum: uint32 counters that wrap. */
  private incarnationCounter = 0;
  private seqNo = 0;
  private streamId = 0;
  /** Lifeguard local health. Invariant: 0 ≤ awareness < awarenessMaxMultiplier. */
  private awareness = 0;
  private readonly probeBaseMs: number;
  private readonly gossipBaseMs: number;
  private nextProbeMs: number;
  private nextGossipMs: number;
  private nextPushPullMs: number;
  /** False until the push/pull loop's initial random stagger has passed. */
  private isPushPullStaggered = false;
  private hasLeft = false;
  private isLeaveDone = false;
  private joins = 0;
  /** Set by a successful join: one push/pull once our view has been quiet for a while (join catch-up). */
  private isCatchUpPending = false;
  /** When we last learned of a member (new, or back from dead/left). */
  private lastNewMemberMs = -Infinity;
  private readonly encryptionVersion: EncryptionVersion;

  /**
   * Creates the local member (memberlist Create + setAlive): the delegate's nodeMeta() is read and
   * notifyJoin(local member) is called from inside this constructor, as memberlist does. Timers
   * start staggered by a random fraction of their interval.
   */
  constructor(
    private readonly config: SwimConfig,
    private readonly delegate: SwimDelegate,
    private readonly rng: () => number,
    private readonly randomBytes: (n: number) => Uint8Array,
    nowMs: number,
  ) {
    assert(config.probeIntervalMs > 0 && config.gossipIntervalMs > 0 && config.pushPullIntervalMs > 0, 'intervals are positive');
    assert(config.probeTimeoutMs > 0 && config.probeTimeoutMs <= config.probeIntervalMs, 'ProbeTimeout fits in ProbeInterval');
    assert(config.address.addr.length === 4 || config.address.addr.length === 16, 'advertised address is IPv4 or IPv6 bytes');
    this.counters = this.counterValues;
    this.broadcasts = new BroadcastQueue(config.retransmitMult);
    this.encryptionVersion = encryptionVersionFor(config.protocolVersion);
    // memberlist's tickers start with the node, so their phase is its start time (the random
    // stagger it sleeps first is shorter than one interval and so never moves the first tick).
    this.probeBaseMs = nowMs;
    this.gossipBaseMs = nowMs;
    this.nextProbeMs = nextTickAfterMs(nowMs, config.probeIntervalMs, nowMs);
    this.nextGossipMs = nextTickAfterMs(nowMs, config.gossipIntervalMs, nowMs);
    // The push/pull loop sleeps a random stagger, then a (scaled) interval before each exchange.
    this.nextPushPullMs = nowMs + Math.floor(rng() * config.pushPullIntervalMs);
    const meta = this.readNodeMeta();
    this.aliveNode({ incarnation: this.nextIncarnation(), node: config.name, addr: config.address.addr, port: config.address.port, meta, vsn: this.localVsnBytes() }, nowMs, true);
    assert(this.nodeMap.has(config.name), 'the local node is in the node map');
  }

  /** Runs every timer that is due at `nowMs`: relays, the probe, suspicions, probe/gossip/push-pull tickers. */
  tick(nowMs: number): void {
    this.expireRelays(nowMs);
    this.advanceProbe(nowMs);
    this.expireSuspicions(nowMs);
    if (this.probe === null && !this.hasLeft && nowMs >= this.nextProbeMs) this.probeNext(nowMs);
    if (nowMs >= this.nextGossipMs) {
      this.nextGossipMs = nextTickAfterMs(this.gossipBaseMs, this.config.gossipIntervalMs, nowMs);
      this.gossip(nowMs);
    }
    if (!this.hasLeft && nowMs >= this.catchUpDueMs()) {
      this.isCatchUpPending = false;
      this.bump('joinCatchUps');
      this.pushPullRandom(nowMs);
    }
    if (!this.hasLeft && nowMs >= this.nextPushPullMs) {
      this.nextPushPullMs = nowMs + pushPullScale(this.config.pushPullIntervalMs, this.nodes.length);
      if (this.isPushPullStaggered) this.pushPullRandom(nowMs);
      this.isPushPullStaggered = true;
    }
    this.checkInvariants();
  }

  /** The earliest nowMs at which tick() has work (may be ≤ now: call tick at once). */
  nextDeadlineMs(): number {
    let deadline = Math.min(this.nextGossipMs, this.hasLeft ? Infinity : Math.min(this.nextPushPullMs, this.catchUpDueMs()));
    if (this.probe !== null) deadline = Math.min(deadline, this.probe.isIndirect ? this.probe.deadlineMs : this.probe.probeTimeoutAtMs);
    else if (!this.hasLeft) deadline = Math.min(deadline, this.nextProbeMs);
    for (const suspicion of this.suspicions.values()) if (!suspicion.isAwaitingPull) deadline = Math.min(deadline, suspicion.deadlineMs);
    for (const relay of this.relays.values()) deadline = Math.min(deadline, relay.expiresMs);
    return deadline;
  }

  /** A UDP datagram from `from` (the socket peer). Never throws for bad bytes: they are counted. */
  onPacket(from: SwimAddress, bytes: Uint8Array, nowMs: number): void {
    this.bump('udpReceived');
    this.bump('udpReceivedBytes', bytes.length);
    const decoded = decodePacket(bytes, { keyring: this.config.keyring ?? null, isVerifyIncoming: this.config.verifyIncoming, label: this.config.label ?? '' });
    for (const error of decoded.errors) this.bump(`udpDropped.${error.code}`);
    if (decoded.truncatedParts > 0) this.bump('udpTruncatedParts', decoded.truncatedParts);
    for (const message of decoded.messages) {
      try {
        this.handleMessage(from, message, nowMs);
      } catch (error) {
        if (!(error instanceof GossipWireError)) throw error;
        this.bump(`udpDropped.${error.code}`);
      }
    }
    // After the whole compound: a refutation piggy-backed on the ack has already cleared it.
    if (this.answeredSuspect !== null) {
      const name = this.answeredSuspect;
      this.answeredSuspect = null;
      this.pullFromAnsweredSuspect(name, nowMs);
    }
  }

  /** An incoming TCP exchange (memberlist handleConn). Never throws for bad bytes. */
  onStream(from: SwimAddress, bytes: Uint8Array, nowMs: number): 'incomplete' | { readonly reply?: Uint8Array } | Error {
    let message: StreamMessage;
    try {
      const frame = decodeStream(bytes, { keyring: this.config.keyring ?? null, isVerifyIncoming: this.config.verifyIncoming, label: this.config.label ?? '' });
      if (frame.kind === 'incomplete') return 'incomplete';
      message = frame.message;
    } catch (error) {
      if (!(error instanceof GossipWireError)) throw error;
      this.bump(`tcpDropped.${error.code}`);
      // memberlist answers a failed readStream (decryption, decompression) with an errResp.
      if (STREAM_READ_ERRORS.has(error.code)) return { reply: this.frameStream(encodeMessage({ kind: 'errResp', error: error.message })) };
      return error;
    }
    this.bump('tcpAccepted');
    return this.handleStream(from, message, nowMs);
  }

  /** The outcome of a 'stream' effect. Unknown or stale ids are counted and ignored. */
  onStreamReply(id: number, reply: Uint8Array | Error, nowMs: number): void {
    const pending = this.streams.get(id);
    if (pending === undefined) {
      this.bump('tcpReplyUnknown');
      return;
    }
    this.streams.delete(id);
    if (pending.purpose === 'ping') return this.onTcpPingReply(pending.seqNo, reply);
    this.onPushPullReply(pending.to, pending.isJoin, reply, nowMs);
    if (pending.recheckOf === undefined) return;
    const suspicion = this.suspicions.get(pending.recheckOf);
    if (suspicion !== undefined) suspicion.isAwaitingPull = false;
  }

  /** memberlist Join: a push/pull with Join:true to each address; successes show in joinedCount(). */
  join(addresses: readonly SwimAddress[], nowMs: number): void {
    for (const address of addresses) {
      this.joinRefusals.delete(addressKey(address));
      this.startPushPull(address, true, nowMs);
    }
  }

  /** Why our merge delegate refused the last join through `address` (memberlist's Join error), if it did. */
  joinRefusal(address: SwimAddress): string | undefined {
    return this.joinRefusals.get(addressKey(address));
  }

  /** Join push/pulls that completed and merged. */
  joinedCount(): number {
    return this.joins;
  }

  /** memberlist Leave: broadcast dead{self, From: self}, stop probing and push/pull; keep gossiping and answering. */
  leave(nowMs: number): void {
    if (this.hasLeft) return;
    this.hasLeft = true;
    this.probe = null;
    const me = this.self();
    this.deadNode({ incarnation: me.incarnation, node: me.name, from: me.name }, nowMs);
    if (!this.anyAlive()) this.isLeaveDone = true;
  }

  /** True once the leave broadcast has gone out its retransmit limit (or been replaced), or there was no one to tell. */
  isLeaveBroadcastDone(): boolean {
    return this.isLeaveDone;
  }

  /** memberlist UpdateNode: bump the incarnation and broadcast alive with fresh delegate meta. */
  updateMeta(nowMs: number): void {
    const me = this.self();
    this.aliveNode({ incarnation: this.nextIncarnation(), node: me.name, addr: me.address.addr, port: me.address.port, meta: this.readNodeMeta(), vsn: this.localVsnBytes() }, nowMs, true);
  }

  /** memberlist SendToAddress: one UDP packet `08 payload` to `to` (no piggy-backing, no CRC). */
  sendUserPacket(to: SwimAddress, payload: Uint8Array): void {
    const message = new Uint8Array(1 + payload.length);
    message[0] = MessageType.user;
    message.set(payload, 1);
    this.rawSendPacket(to, message, null);
  }

  /** Every known node, the local one included, in probe-list order (dead ones until their removal). */
  members(): readonly SwimMember[] {
    return this.nodes.map(toMember);
  }

  localMember(): SwimMember {
    return toMember(this.self());
  }

  /** memberlist NumMembers: nodes neither dead nor left, the local one included. */
  numMembers(): number {
    return this.nodes.filter((node) => !isDeadOrLeft(node)).length;
  }

  /** Lifeguard local health score (memberlist GetHealthScore), 0 = healthy. */
  healthScore(): number {
    return this.awareness;
  }

  drainOutbox(): SwimEffect[] {
    const out = this.outbox;
    this.outbox = [];
    return out;
  }

  /** The node the probe in flight is checking, or null (simulation and metrics). */
  probeTarget(): string | null {
    return this.probe?.target.name ?? null;
  }

  /** Broadcasts queued by memberlist itself (tests, metrics). */
  queuedBroadcasts(): number {
    return this.broadcasts.size;
  }

  // -------------------------------------------------------------------------------------------
  // Probing (state.go probe, probeNode)

  private probeNext(nowMs: number): void {
    const recheck = this.suspectDueForRecheck(nowMs);
    if (recheck !== null) {
      this.bump('suspectRechecks');
      this.startProbe(recheck, nowMs);
      return;
    }
    let numCheck = 0;
    for (;;) {
      if (numCheck >= this.nodes.length) break;
      if (this.probeIndex >= this.nodes.length) {
        this.resetNodes(nowMs);
        this.probeIndex = 0;
        numCheck++;
        continue;
      }
      const node = this.nodes[this.probeIndex++];
      assert(node !== undefined, 'probe index in range');
      if (node.name === this.config.name || isDeadOrLeft(node)) {
        numCheck++;
        continue;
      }
      this.startProbe(node, nowMs);
      return;
    }
    this.nextProbeMs = nextTickAfterMs(this.probeBaseMs, this.config.probeIntervalMs, nowMs);
  }

  /**
   * The suspect whose earliest possible deadline (the current one, or the minimum timeout should
   * confirmations still come) is nearest and within RECHECK_LEAD_INTERVALS, unless we re-probed it
   * already; marks it. Using the earliest possible deadline means that when confirmations are
   * slow our own failed probe supplies one in time.
   */
  private suspectDueForRecheck(nowMs: number): NodeRecord | null {
    const leadMs = RECHECK_LEAD_INTERVALS * this.config.probeIntervalMs;
    let due: { node: NodeRecord; suspicion: Suspicion; atMs: number } | null = null;
    for (const [name, suspicion] of this.suspicions) {
      const atMs = Math.min(suspicion.deadlineMs, suspicion.startMs + suspicion.minMs);
      if (suspicion.isRechecked || atMs - nowMs > leadMs) continue;
      const node = this.suspectOf(name, suspicion);
      if (node === undefined) continue;
      if (due === null || atMs < due.atMs) due = { node, suspicion, atMs };
    }
    if (due === null) return null;
    due.suspicion.isRechecked = true;
    return due.node;
  }

  /**
   * A suspect answered our probe, so it is up, but we hold no refutation from it: ask it for its
   * state (a push/pull, as the periodic one), whose merge carries its current alive. The
   * suspicion's deadline waits for the exchange.
   */
  private pullFromAnsweredSuspect(name: string, nowMs: number): void {
    const suspicion = this.suspicions.get(name);
    const node = suspicion === undefined ? undefined : this.suspectOf(name, suspicion);
    if (node === undefined || suspicion === undefined || suspicion.isAwaitingPull) return;
    if (!this.startPushPull(node.address, false, nowMs, name)) return;
    suspicion.isAwaitingPull = true;
    this.bump('suspectPulls');
  }

  private startProbe(node: NodeRecord, nowMs: number): void {
    assert(node.name !== this.config.name, 'never probe ourselves');
    // Lifeguard: a degraded node stretches its probe interval (not the probe timeout).
    const intervalMs = scaleTimeoutMs(this.config.probeIntervalMs, this.awareness);
    if (intervalMs > this.config.probeIntervalMs) this.bump('probeDegraded');
    const ping: Ping & { kind: 'ping' } = { kind: 'ping', seqNo: this.nextSeqNo(), node: node.name, ...this.sourceFields() };
    this.probe = { seqNo: ping.seqNo, target: { ...node }, sentMs: nowMs, probeTimeoutAtMs: nowMs + this.config.probeTimeoutMs, deadlineMs: nowMs + intervalMs, isIndirect: false, expectedNacks: 0, nacks: 0, tcp: 'none' };
    // The ticker keeps running while we probe; a probe that overruns just skips ticks.
    this.nextProbeMs = nextTickAfterMs(this.probeBaseMs, this.config.probeIntervalMs, nowMs);
    this.bump('probes');
    if (node.state === NodeState.alive) {
      this.sendMsg(node.address, encodeMessage(ping));
      return;
    }
    // A suspect target gets the accusation along with the ping, so it can refute at once.
    const suspect = encodeMessage({ kind: 'suspect', incarnation: node.incarnation, node: node.name, from: this.config.name });
    for (const compound of encodeCompounds([encodeMessage(ping), suspect])) this.rawSendPacket(node.address, compound, node.vsn.pMax);
  }

  private advanceProbe(nowMs: number): void {
    const probe = this.probe;
    if (probe === null) return;
    if (!probe.isIndirect && nowMs >= probe.probeTimeoutAtMs) this.startIndirectProbe(probe, nowMs);
    if (nowMs >= probe.deadlineMs) this.failProbe(probe, nowMs);
  }

  /** After ProbeTimeout without an ack: indirect pings through k alive peers, and a TCP ping. */
  private startIndirectProbe(probe: ActiveProbe, nowMs: number): void {
    probe.isIndirect = true;
    const target = probe.target;
    const peers = this.kRandomNodes(this.config.indirectChecks, (n) => n.name === this.config.name || n.name === target.name || n.state !== NodeState.alive);
    for (const peer of peers) {
      // Only peers that speak protocol 4 send nacks (Lifeguard's signal that *we* are fine).
      const nack = peer.vsn.pMax >= 4;
      if (nack) probe.expectedNacks++;
      const request: IndirectPing & { kind: 'indirectPing' } = { kind: 'indirectPing', seqNo: probe.seqNo, target: target.address.addr, port: target.address.port, node: target.name, nack, ...this.sourceFields() };
      this.sendMsg(peer.address, encodeMessage(request));
    }
    this.bump('indirectProbes');
    if (this.config.disableTcpPings || target.vsn.pMax < 3) return;
    if (this.streams.size >= SWIM_STREAMS_PENDING_MAX) return this.bump('tcpStreamsFull');
    const ping = encodeMessage({ kind: 'ping', seqNo: probe.seqNo, node: target.name, ...this.sourceFields() });
    const id = this.startStream(target.address, this.frameStream(ping), 'ping', Math.max(0, probe.deadlineMs - nowMs));
    this.streams.set(id, { purpose: 'ping', seqNo: probe.seqNo });
    probe.tcp = 'pending';
  }

  /** The probe's time is up with no UDP ack: unless the TCP ping got through, suspect the target. */
  private failProbe(probe: ActiveProbe, nowMs: number): void {
    if (probe.tcp === 'ok') {
      this.bump('probeTcpOnly');
      this.finishProbe(-1, nowMs);
      if (probe.target.state === NodeState.suspect) this.pullFromAnsweredSuspect(probe.target.name, nowMs);
      return;
    }
    // Lifeguard: missed nacks mean *we* may be the problem; with no nack peers, any failure counts.
    let delta = 1;
    if (probe.expectedNacks > 0) delta = Math.max(0, probe.expectedNacks - probe.nacks);
    this.finishProbe(delta, nowMs);
    this.bump('probeFailed');
    this.suspectNode({ incarnation: probe.target.incarnation, node: probe.target.name, from: this.config.name }, nowMs);
  }

  private finishProbe(awarenessDelta: number, nowMs: number): void {
    this.probe = null;
    this.awareness = applyAwarenessDelta(this.awareness, awarenessDelta, this.config.awarenessMaxMultiplier);
    this.nextProbeMs = Math.max(this.nextProbeMs, nowMs);
  }

  /** A probe wrap (memberlist resetNodes): drop dead nodes past GossipToTheDeadTime, shuffle the rest. */
  private resetNodes(nowMs: number): void {
    const kept: NodeRecord[] = [];
    for (const node of this.nodes) {
      if (node.state === NodeState.dead && nowMs - node.stateChangeMs > this.config.gossipToTheDeadMs) {
        this.nodeMap.delete(node.name);
        this.suspicions.delete(node.name);
        this.bump('nodesRemoved');
      } else {
        kept.push(node);
      }
    }
    for (let i = kept.length - 1; i > 0; i--) {
      const j = Math.floor(this.rng() * (i + 1));
      [kept[i], kept[j]] = [kept[j] as NodeRecord, kept[i] as NodeRecord];
    }
    this.nodes = kept;
  }

  // -------------------------------------------------------------------------------------------
  // Incoming packets (net.go handleCommand and handlers)

  private handleMessage(from: SwimAddress, message: GossipMessage, nowMs: number): void {
    switch (message.kind) {
      case 'ping':
        return this.handlePing(from, message);
      case 'indirectPing':
        return this.handleIndirectPing(from, message, nowMs);
      case 'ackResp':
        return this.handleAck(message.seqNo, message.payload, nowMs);
      case 'nackResp':
        if (this.probe !== null && this.probe.seqNo === message.seqNo && this.probe.nacks <= this.config.indirectChecks) this.probe.nacks++;
        return;
      case 'suspect':
        this.bump('msgSuspect');
        return this.suspectNode(message, nowMs);
      case 'dead':
        this.bump('msgDead');
        return this.deadNode(message, nowMs);
      case 'alive':
        this.bump('msgAlive');
        return this.aliveNode(this.fixAlivePort(message), nowMs, false);
      case 'user':
        this.bump('msgUser');
        return this.delegate.notifyMsg(message.payload, nowMs);
      case 'errResp':
        return this.bump('udpDropped.unexpectedType');
      default:
        return assertNever(message);
    }
  }

  private handlePing(from: SwimAddress, ping: Ping): void {
    if (ping.node !== '' && ping.node !== this.config.name) return this.bump('pingForOtherNode');
    const ack = encodeMessage({ kind: 'ackResp', seqNo: ping.seqNo, payload: this.delegate.ackPayload() });
    this.sendMsg(replyAddress(from, ping), ack);
  }

  private handleIndirectPing(from: SwimAddress, request: IndirectPing, nowMs: number): void {
    if (this.relays.size >= SWIM_RELAYS_MAX) return this.bump('relaysFull');
    const port = this.config.protocolVersion < 2 || request.port === 0 ? this.config.address.port : request.port;
    const seqNo = this.nextSeqNo();
    this.relays.set(seqNo, { originSeqNo: request.seqNo, origin: replyAddress(from, request), expiresMs: nowMs + this.config.probeTimeoutMs, isNackRequested: request.nack });
    this.bump('relayedPings');
    this.sendMsg({ addr: request.target, port }, encodeMessage({ kind: 'ping', seqNo, node: request.node, ...this.sourceFields() }));
  }

  private handleAck(seqNo: number, payload: Uint8Array, nowMs: number): void {
    const probe = this.probe;
    if (probe !== null && probe.seqNo === seqNo) {
      // Only an ack inside ProbeTimeout is a direct round trip worth a coordinate update.
      if (!probe.isIndirect && nowMs < probe.probeTimeoutAtMs) this.delegate.notifyPingComplete(toMember(probe.target), nowMs - probe.sentMs, payload);
      this.finishProbe(-1, nowMs);
      if (probe.target.state === NodeState.suspect) this.answeredSuspect = probe.target.name;
      return;
    }
    const relay = this.relays.get(seqNo);
    if (relay === undefined) return this.bump('ackUnknown');
    this.relays.delete(seqNo);
    this.sendMsg(relay.origin, encodeMessage({ kind: 'ackResp', seqNo: relay.originSeqNo, payload: EMPTY }));
  }

  private expireRelays(nowMs: number): void {
    for (const [seqNo, relay] of this.relays) {
      if (nowMs < relay.expiresMs) continue;
      this.relays.delete(seqNo);
      if (relay.isNackRequested) this.sendMsg(relay.origin, encodeMessage({ kind: 'nackResp', seqNo: relay.originSeqNo }));
    }
  }

  /** memberlist handleAlive: protocol < 2 or Port 0 means our own bind port. */
  private fixAlivePort(alive: Alive): Alive {
    return this.config.protocolVersion < 2 || alive.port === 0 ? { ...alive, port: this.config.address.port } : alive;
  }

  // -------------------------------------------------------------------------------------------
  // State changes (state.go aliveNode, suspectNode, deadNode, refute)

  private aliveNode(a: Alive, nowMs: number, isBootstrap: boolean): void {
    const isLocal = a.node === this.config.name;
    if (this.hasLeft && isLocal) return;
    if (a.vsn.length >= 3) {
      const [pMin = 0, pMax = 0] = a.vsn;
      if (pMin === 0 || pMax === 0 || pMin > pMax) return this.bump('aliveBadVersion');
    }
    // gossipwire cannot re-encode oversized meta (memberlist would relay it); drop it instead.
    if (a.meta.length > META_BYTES_MAX) return this.bump('aliveMetaTooLarge');
    if (this.delegate.notifyAlive !== undefined) {
      const v = decodeVsn(a.vsn);
      if (v === null) return this.bump('aliveNoVsn');
      const candidate: SwimMember = { name: a.node, address: { addr: a.addr, port: a.port }, meta: a.meta, incarnation: a.incarnation, state: NodeState.alive, stateChangeMs: nowMs, vsn: v };
      if (!this.delegate.notifyAlive(candidate)) return this.bump('aliveRefused');
    }
    let state = this.nodeMap.get(a.node);
    let isAddressUpdate = false;
    if (state === undefined) {
      if (this.nodes.length >= SWIM_MEMBERS_MAX) return this.bump('membersFull');
      state = { name: a.node, address: { addr: a.addr, port: a.port }, meta: a.meta, incarnation: 0, state: NodeState.dead, stateChangeMs: nowMs, vsn: decodeVsn(a.vsn) ?? ZERO_VSN };
      this.insertNode(state);
    } else if (!sameAddress(state.address, { addr: a.addr, port: a.port })) {
      const reclaimMs = this.config.deadNodeReclaimMs ?? 0;
      const canReclaim = reclaimMs > 0 && nowMs - state.stateChangeMs > reclaimMs;
      if (!(state.state === NodeState.left || (state.state === NodeState.dead && canReclaim))) return this.bump('aliveConflict');
      isAddressUpdate = true;
    }
    if (a.incarnation <= state.incarnation && !isLocal && !isAddressUpdate) return;
    if (a.incarnation < state.incarnation && isLocal) return;
    this.suspicions.delete(a.node);
    const oldState = state.state;
    const oldMeta = state.meta;
    if (!isBootstrap && isLocal) {
      // Someone gossips us with our own incarnation: fine if identical, else (e.g. a restart with
      // new meta) out-bid it so the cluster converges on what we say now.
      if (a.incarnation === state.incarnation && bytesEqual(a.meta, state.meta) && bytesEqual(a.vsn, encodeVsn(state.vsn))) return;
      this.refute(state, a.incarnation);
    } else {
      this.broadcasts.queue(a.node, encodeMessage({ ...a, kind: 'alive' }));
      const v = decodeVsn(a.vsn);
      if (v !== null) state.vsn = v;
      state.incarnation = a.incarnation;
      state.meta = a.meta;
      state.address = { addr: a.addr, port: a.port };
      if (state.state !== NodeState.alive) {
        state.state = NodeState.alive;
        state.stateChangeMs = nowMs;
      }
    }
    if (oldState === NodeState.dead || oldState === NodeState.left) {
      if (!isLocal) this.lastNewMemberMs = nowMs;
      this.delegate.notifyJoin(toMember(state), nowMs);
    }
    else if (!bytesEqual(oldMeta, state.meta)) this.delegate.notifyUpdate(toMember(state), nowMs);
  }

  private suspectNode(s: Suspect, nowMs: number): void {
    const state = this.nodeMap.get(s.node);
    if (state === undefined || s.incarnation < state.incarnation) return;
    const timer = this.suspicions.get(s.node);
    if (timer !== undefined) {
      // An independent accuser: shrink the timeout and pass the news on (Lifeguard IV-B).
      if (timer.confirm(s.from)) this.broadcasts.queue(s.node, encodeMessage({ ...s, kind: 'suspect' }));
      return;
    }
    if (state.state !== NodeState.alive) return;
    if (state.name === this.config.name) {
      this.refute(state, s.incarnation);
      return;
    }
    this.broadcasts.queue(s.node, encodeMessage({ ...s, kind: 'suspect' }));
    this.bump('suspected');
    state.incarnation = s.incarnation;
    state.state = NodeState.suspect;
    state.stateChangeMs = nowMs;
    const n = this.nodes.length;
    const minMs = suspicionTimeoutMs(this.config.suspicionMult, n, this.config.probeIntervalMs);
    const maxMs = suspicionMaxTimeoutMs(this.config.suspicionMaxTimeoutMult, minMs);
    this.suspicions.set(s.node, new Suspicion(s.from, suspicionConfirmationsK(this.config.suspicionMult, n), minMs, maxMs, nowMs, nowMs));
  }

  /**
   * The node `suspicion` is about, if it is still the suspicion of this suspect period: the epoch
   * check that keeps a stale timer from acting (only the suspicion that began this period may kill
   * the node, be rechecked or hold a pull).
   */
  private suspectOf(name: string, suspicion: Suspicion): NodeRecord | undefined {
    const node = this.nodeMap.get(name);
    return node !== undefined && node.state === NodeState.suspect && node.stateChangeMs === suspicion.stateChangeMs ? node : undefined;
  }

  private expireSuspicions(nowMs: number): void {
    for (const [name, suspicion] of this.suspicions) {
      if (nowMs < suspicion.deadlineMs || suspicion.isAwaitingPull) continue;
      const state = this.suspectOf(name, suspicion);
      if (state === undefined) {
        this.suspicions.delete(name);
        continue;
      }
      if (suspicion.k > 0 && suspicion.confirmations < suspicion.k) this.bump('suspicionDegradedTimeout');
      this.deadNode({ incarnation: state.incarnation, node: name, from: this.config.name }, nowMs);
    }
  }

  private deadNode(d: Suspect, nowMs: number): void {
    const state = this.nodeMap.get(d.node);
    if (state === undefined || d.incarnation < state.incarnation) return;
    this.suspicions.delete(d.node);
    if (isDeadOrLeft(state)) return;
    if (state.name === this.config.name) {
      if (!this.hasLeft) {
        this.refute(state, d.incarnation);
        return;
      }
      this.broadcasts.queue(d.node, encodeMessage({ ...d, kind: 'dead' }), () => {
        this.isLeaveDone = true;
      });
    } else {
      this.broadcasts.queue(d.node, encodeMessage({ ...d, kind: 'dead' }));
    }
    state.incarnation = d.incarnation;
    // A node announcing its own death is leaving gracefully.
    state.state = d.node === d.from ? NodeState.left : NodeState.dead;
    state.stateChangeMs = nowMs;
    this.bump(state.state === NodeState.left ? 'markedLeft' : 'markedDead');
    this.delegate.notifyLeave(toMember(state), nowMs);
  }

  /** Out-bid an accusation about us: a higher incarnation, broadcast as alive (memberlist refute). */
  private refute(me: NodeRecord, accusedIncarnation: number): void {
    let incarnation = this.nextIncarnation();
    if (accusedIncarnation >= incarnation) incarnation = this.skipIncarnation(accusedIncarnation - incarnation + 1);
    me.incarnation = incarnation;
    this.awareness = applyAwarenessDelta(this.awareness, 1, this.config.awarenessMaxMultiplier);
    this.bump('refutations');
    const alive = encodeMessage({ kind: 'alive', incarnation, node: me.name, addr: me.address.addr, port: me.address.port, meta: me.meta, vsn: encodeVsn(me.vsn) });
    // memberlist names this broadcast by the address string, not the node name (quirk kept).
    this.broadcasts.queue(`addr:${me.address.addr.join('.')}`, alive);
  }

  private insertNode(state: NodeRecord): void {
    // A random slot keeps the expected time until someone probes a new node low (state.go).
    const n = this.nodes.length;
    const offset = n === 0 ? 0 : Math.floor(this.rng() * n);
    this.nodes.push(state);
    [this.nodes[offset], this.nodes[n]] = [state, this.nodes[offset] as NodeRecord];
    this.nodeMap.set(state.name, state);
  }

  // -------------------------------------------------------------------------------------------
  // Push/pull (state.go pushPull, net.go sendAndReceiveState, handleConn, mergeRemoteState)

  private pushPullRandom(nowMs: number): void {
    const [peer] = this.kRandomNodes(1, (n) => n.name === this.config.name || n.state !== NodeState.alive);
    if (peer !== undefined) this.startPushPull(peer.address, false, nowMs);
  }

  /** When the join catch-up push/pull is due: JOIN_CATCH_UP_QUIET_ROUNDS gossip intervals after the last new member. */
  private catchUpDueMs(): number {
    if (!this.isCatchUpPending) return Infinity;
    return Math.max(this.lastNewMemberMs, 0) + JOIN_CATCH_UP_QUIET_ROUNDS * this.config.gossipIntervalMs;
  }

  /** Starts a push/pull exchange; false when too many streams are pending. `recheckOf`: the suspect it asks. */
  private startPushPull(to: SwimAddress, isJoin: boolean, nowMs: number, recheckOf?: string): boolean {
    if (this.streams.size >= SWIM_STREAMS_PENDING_MAX) {
      this.bump('tcpStreamsFull');
      return false;
    }
    const id = this.startStream(to, this.localStateStream(isJoin, nowMs), 'pushPull', this.config.tcpTimeoutMs);
    this.streams.set(id, recheckOf === undefined ? { purpose: 'pushPull', to, isJoin } : { purpose: 'pushPull', to, isJoin, recheckOf });
    this.bump(isJoin ? 'joinsStarted' : 'pushPullsStarted');
    return true;
  }

  private noteJoinRefusal(to: SwimAddress, refusal: string): void {
    if (this.joinRefusals.size >= SWIM_JOIN_REFUSALS_KEPT) this.joinRefusals.clear();
    this.joinRefusals.set(addressKey(to), refusal);
  }

  private onPushPullReply(to: SwimAddress, isJoin: boolean, reply: Uint8Array | Error, nowMs: number): void {
    if (reply instanceof Error) return this.bump('pushPullFailed');
    let message: StreamMessage;
    try {
      const frame = decodeStream(reply, { keyring: this.config.keyring ?? null, isVerifyIncoming: this.config.verifyIncoming, label: this.config.label ?? '' });
      if (frame.kind === 'incomplete') return this.bump('pushPullFailed');
      message = frame.message;
    } catch (error) {
      if (!(error instanceof GossipWireError)) throw error;
      this.bump(`tcpDropped.${error.code}`);
      return this.bump('pushPullFailed');
    }
    if (message.kind !== 'pushPull') return this.bump(message.kind === 'errResp' ? 'pushPullRemoteError' : 'pushPullFailed');
    // The merge follows our own join flag, as pushPullNode does.
    const refusal = this.mergeRemoteState(isJoin, message.nodes, message.userState, nowMs);
    if (refusal !== null) {
      if (isJoin) this.noteJoinRefusal(to, refusal);
      return this.bump('pushPullFailed');
    }
    if (!isJoin) return;
    this.joins++;
    this.isCatchUpPending = true;
  }

  private handleStream(from: SwimAddress, message: StreamMessage, nowMs: number): { readonly reply?: Uint8Array } | Error {
    switch (message.kind) {
      case 'pushPull': {
        // Like memberlist, answer with our state first (echoing Join), then merge theirs.
        const reply = this.localStateStream(message.join, nowMs);
        this.bump('pushPullsAccepted');
        this.mergeRemoteState(message.join, message.nodes, message.userState, nowMs);
        return { reply };
      }
      case 'user':
        if (message.payload.length > 0) this.delegate.notifyMsg(message.payload, nowMs);
        return {};
      case 'ping':
        if (message.node !== '' && message.node !== this.config.name) {
          this.bump('pingForOtherNode');
          return new GossipWireError('ERR_GOSSIP_MALFORMED', `got ping for unexpected node ${message.node}`);
        }
        // TCP acks carry no payload (no coordinate), as in memberlist.
        return { reply: this.frameStream(encodeMessage({ kind: 'ackResp', seqNo: message.seqNo, payload: EMPTY })) };
      case 'ackResp':
      case 'errResp':
        this.bump(`tcpDropped.unexpectedType`);
        return new GossipWireError('ERR_GOSSIP_TYPE_UNSUPPORTED', `received invalid msgType ${message.kind} from ${from.addr.join('.')}`);
      default:
        return assertNever(message);
    }
  }

  /**
   * memberlist mergeRemoteState: verify versions, let the merge delegate veto a join, merge, then
   * the user state. Returns null when merged, else why not (the merge delegate's text).
   */
  private mergeRemoteState(isJoin: boolean, remoteNodes: readonly PushNodeState[], userState: Uint8Array, nowMs: number): string | null {
    const nodes = remoteNodes.map((node) => (this.config.protocolVersion < 2 || node.port === 0 ? { ...node, port: this.config.address.port } : node));
    if (!verifyProtocol(nodes, this.members())) {
      this.bump('pushPullVersionMismatch');
      return 'incompatible protocol versions';
    }
    if (isJoin && this.delegate.notifyMerge !== undefined) {
      const members = nodes.map((node): SwimMember => ({ name: node.name, address: { addr: node.addr, port: node.port }, meta: node.meta, incarnation: node.incarnation, state: toNodeState(node.state), stateChangeMs: nowMs, vsn: decodeVsn(node.vsn) ?? ZERO_VSN }));
      const refusal = this.delegate.notifyMerge(members);
      if (refusal !== null) {
        this.bump('pushPullMergeRefused');
        return refusal;
      }
    }
    for (const node of nodes) this.mergeNode(node, nowMs);
    if (userState.length > 0) this.delegate.mergeRemoteState(userState, isJoin, nowMs);
    return null;
  }

  /** memberlist mergeState for one node: a remote's verdict of death only makes us suspect. */
  private mergeNode(node: PushNodeState, nowMs: number): void {
    switch (node.state) {
      case NodeState.alive:
        return this.aliveNode({ incarnation: node.incarnation, node: node.name, addr: node.addr, port: node.port, meta: node.meta, vsn: node.vsn }, nowMs, false);
      case NodeState.left:
        return this.deadNode({ incarnation: node.incarnation, node: node.name, from: node.name }, nowMs);
      case NodeState.dead:
      case NodeState.suspect:
        return this.suspectNode({ incarnation: node.incarnation, node: node.name, from: this.config.name }, nowMs);
      default:
        return this.bump('pushPullUnknownState');
    }
  }

  private localStateStream(isJoin: boolean, nowMs: number): Uint8Array {
    const nodes: PushNodeState[] = this.nodes.map((n) => ({ name: n.name, addr: n.address.addr, port: n.address.port, meta: n.meta, incarnation: n.incarnation, state: n.state, vsn: encodeVsn(n.vsn) }));
    return this.frameStream(encodePushPull(isJoin, nodes, this.delegate.localState(isJoin, nowMs)));
  }

  private onTcpPingReply(seqNo: number, reply: Uint8Array | Error): void {
    const probe = this.probe;
    if (probe === null || probe.seqNo !== seqNo) return this.bump('tcpPingLate');
    probe.tcp = 'failed';
    if (reply instanceof Error) return;
    try {
      const frame = decodeStream(reply, { keyring: this.config.keyring ?? null, isVerifyIncoming: this.config.verifyIncoming, label: this.config.label ?? '' });
      if (frame.kind === 'message' && frame.message.kind === 'ackResp' && frame.message.seqNo === seqNo) probe.tcp = 'ok';
    } catch (error) {
      if (!(error instanceof GossipWireError)) throw error;
      this.bump(`tcpDropped.${error.code}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Sending (state.go gossip, net.go sendMsg, rawSendMsgPacket, broadcast.go getBroadcasts)

  private gossip(nowMs: number): void {
    const peers = this.kRandomNodes(this.config.gossipNodes, (n) => {
      if (n.name === this.config.name) return true;
      if (n.state === NodeState.alive || n.state === NodeState.suspect) return false;
      if (n.state === NodeState.dead) return nowMs - n.stateChangeMs > this.config.gossipToTheDeadMs;
      return true;
    });
    const isEncrypting = this.config.keyring?.isEnabled ?? false;
    const bytesAvailable = piggybackBytesAvailable({ udpBufferBytes: this.config.udpBufferBytes, firstMessageBytes: 0, encryptionVersion: isEncrypting ? this.encryptionVersion : null, label: this.config.label ?? '' });
    for (const peer of peers) {
      const messages = this.getBroadcasts(COMPOUND_PART_OVERHEAD_BYTES, bytesAvailable);
      if (messages.length === 0) return;
      this.bump('gossipPackets');
      if (messages.length === 1) this.rawSendPacket(peer.address, messages[0] as Uint8Array, peer.vsn.pMax);
      else for (const compound of encodeCompounds(messages)) this.rawSendPacket(peer.address, compound, peer.vsn.pMax);
    }
  }

  /** memberlist sendMsg: one message plus whatever broadcasts fit; no CRC (0.2.2 looks the peer up by IP and misses). */
  private sendMsg(to: SwimAddress, message: Uint8Array): void {
    const bytesAvailable = piggybackBytesAvailable({ udpBufferBytes: this.config.udpBufferBytes, firstMessageBytes: message.length, encryptionVersion: this.isEncryptingOutgoing() ? this.encryptionVersion : null, label: this.config.label ?? '' });
    const extra = this.getBroadcasts(COMPOUND_PART_OVERHEAD_BYTES, bytesAvailable);
    if (extra.length === 0) return this.rawSendPacket(to, message, null);
    for (const compound of encodeCompounds([message, ...extra])) this.rawSendPacket(to, compound, null);
  }

  /** Our queued broadcasts first, then the delegate's (serf's) in the space left, each as a user message. */
  private getBroadcasts(overheadBytes: number, limitBytes: number): Uint8Array[] {
    const toSend = this.broadcasts.getBroadcasts(overheadBytes, limitBytes, this.nodes.length);
    let bytesUsed = toSend.reduce((sum, m) => sum + m.length + overheadBytes, 0);
    const available = limitBytes - bytesUsed;
    if (available <= overheadBytes + USER_MSG_OVERHEAD_BYTES) return toSend;
    for (const payload of this.delegate.getBroadcasts(overheadBytes + USER_MSG_OVERHEAD_BYTES, available)) {
      const cost = payload.length + overheadBytes + USER_MSG_OVERHEAD_BYTES;
      // A delegate that overfills would push the packet past UDPBufferSize; drop the excess.
      if (bytesUsed + cost > limitBytes) {
        this.bump('delegateBroadcastsOverBudget');
        continue;
      }
      bytesUsed += cost;
      const message = new Uint8Array(1 + payload.length);
      message[0] = MessageType.user;
      message.set(payload, 1);
      toSend.push(message);
    }
    return toSend;
  }

  /** Compress (if smaller), CRC (peer PMax ≥ 5), encrypt, label: gossipwire encodePacket. */
  private rawSendPacket(to: SwimAddress, payload: Uint8Array, peerProtocolMax: number | null): void {
    const bytes = encodePacket(payload, {
      isCompressionEnabled: this.config.enableCompression,
      peerProtocolMax,
      keyring: this.config.keyring ?? null,
      isVerifyOutgoing: this.config.verifyOutgoing,
      encryptionVersion: this.encryptionVersion,
      randomBytes: this.randomBytes,
      label: this.config.label ?? '',
    });
    if (this.outbox.length >= SWIM_OUTBOX_MAX) return this.bump('outboxFull');
    this.outbox.push({ kind: 'packet', to, bytes });
    this.bump('udpSent');
    this.bump('udpSentBytes', bytes.length);
  }

  private frameStream(plaintext: Uint8Array): Uint8Array {
    return encodeStream(plaintext, {
      isCompressionEnabled: this.config.enableCompression,
      keyring: this.config.keyring ?? null,
      isVerifyOutgoing: this.config.verifyOutgoing,
      encryptionVersion: this.encryptionVersion,
      randomBytes: this.randomBytes,
      label: this.config.label ?? '',
    });
  }

  private startStream(to: SwimAddress, bytes: Uint8Array, purpose: 'pushPull' | 'ping', timeoutMs: number): number {
    this.streamId = this.streamId >= Number.MAX_SAFE_INTEGER ? 1 : this.streamId + 1;
    this.outbox.push({ kind: 'stream', id: this.streamId, to, bytes, purpose, timeoutMs });
    this.bump('tcpSent');
    this.bump('tcpSentBytes', bytes.length);
    return this.streamId;
  }

  // -------------------------------------------------------------------------------------------
  // Small helpers

  /** memberlist kRandomNodes: up to k distinct nodes not filtered out, from 3n random draws. */
  private kRandomNodes(k: number, isExcluded: (node: NodeRecord) => boolean): NodeRecord[] {
    const n = this.nodes.length;
    const picked: NodeRecord[] = [];
    for (let i = 0; i < 3 * n && picked.length < k; i++) {
      const node = this.nodes[Math.floor(this.rng() * n)];
      if (node === undefined || isExcluded(node) || picked.includes(node)) continue;
      picked.push(node);
    }
    return picked;
  }

  private anyAlive(): boolean {
    return this.nodes.some((node) => node.name !== this.config.name && !isDeadOrLeft(node));
  }

  private self(): NodeRecord {
    const me = this.nodeMap.get(this.config.name);
    assert(me !== undefined, 'the local node is in the node map');
    return me;
  }

  private sourceFields(): { sourceAddr: Uint8Array; sourcePort: number; sourceNode: string } {
    return { sourceAddr: this.config.address.addr, sourcePort: this.config.address.port, sourceNode: this.config.name };
  }

  private localVsnBytes(): Uint8Array {
    const d = this.config.delegateVersions;
    return encodeVsn({ pMin: PROTOCOL_VERSION_MIN, pMax: PROTOCOL_VERSION_MAX, pCur: this.config.protocolVersion, dMin: d.min, dMax: d.max, dCur: d.cur });
  }

  private readNodeMeta(): Uint8Array {
    const meta = this.delegate.nodeMeta(META_BYTES_MAX);
    assert(meta.length <= META_BYTES_MAX, 'delegate node meta exceeds META_BYTES_MAX');
    return meta;
  }

  private isEncryptingOutgoing(): boolean {
    return (this.config.keyring?.isEnabled ?? false) && this.config.verifyOutgoing;
  }

  private nextIncarnation(): number {
    this.incarnationCounter = (this.incarnationCounter + 1) >>> 0;
    return this.incarnationCounter;
  }

  private skipIncarnation(offset: number): number {
    this.incarnationCounter = (this.incarnationCounter + offset) % (U32_MAX + 1);
    return this.incarnationCounter;
  }

  private nextSeqNo(): number {
    this.seqNo = (this.seqNo + 1) >>> 0;
    return this.seqNo;
  }

  private bump(key: string, by = 1): void {
    this.counterValues[key] = (this.counterValues[key] ?? 0) + by;
  }

  private checkInvariants(): void {
    assert(this.nodes.length === this.nodeMap.size, 'probe list and node map agree');
    assert(this.awareness >= 0 && this.awareness < Math.max(this.config.awarenessMaxMultiplier, 1), 'awareness within bounds');
    assert(this.relays.size <= SWIM_RELAYS_MAX, 'relay table within its limit');
  }
}

// ---------------------------------------------------------------------------------------------
// Private types and helpers

/** Our view of one node (memberlist nodeState). Mutable; copied out as SwimMember. */
interface NodeRecord {
  name: string;
  address: SwimAddress;
  meta: Uint8Array;
  incarnation: number;
  state: NodeState;
  stateChangeMs: number;
  vsn: ProtocolVersions;
}

/** The probe in flight (memberlist probeNode's locals and its ack/nack channels). */
interface ActiveProbe {
  readonly seqNo: number;
  /** A snapshot: the probe acts on what it saw when it started, as memberlist copies the node. */
  readonly target: NodeRecord;
  readonly sentMs: number;
  readonly probeTimeoutAtMs: number;
  /** sent + ProbeInterval × (awareness + 1): when the ack handler is reaped. */
  readonly deadlineMs: number;
  isIndirect: boolean;
  expectedNacks: number;
  nacks: number;
  tcp: 'none' | 'pending' | 'ok' | 'failed';
}

interface Relay {
  readonly originSeqNo: number;
  readonly origin: SwimAddress;
  readonly expiresMs: number;
  readonly isNackRequested: boolean;
}

type PendingStream = { readonly purpose: 'pushPull'; readonly to: SwimAddress; readonly isJoin: boolean; readonly recheckOf?: string } | { readonly purpose: 'ping'; readonly seqNo: number };

const EMPTY = new Uint8Array(0);
const ZERO_VSN: ProtocolVersions = { pMin: 0, pMax: 0, pCur: 0, dMin: 0, dMax: 0, dCur: 0 };
/** decodeStream failures that memberlist's readStream reports back with an errResp. */
const STREAM_READ_ERRORS = new Set<string>(['ERR_GOSSIP_DECRYPT', 'ERR_GOSSIP_NOT_ENCRYPTED', 'ERR_GOSSIP_COMPRESS']);

function toMember(node: NodeRecord): SwimMember {
  return { name: node.name, address: node.address, meta: node.meta, incarnation: node.incarnation, state: node.state, stateChangeMs: node.stateChangeMs, vsn: node.vsn };
}

function toNodeState(state: number): NodeState {
  return state === NodeState.suspect || state === NodeState.dead || state === NodeState.left ? state : NodeState.alive;
}

function isDeadOrLeft(node: NodeRecord): boolean {
  return node.state === NodeState.dead || node.state === NodeState.left;
}

/** Where an ack goes (handlePing/handleIndirectPing): SourceAddr:SourcePort when both are set, else the UDP source. */
function replyAddress(from: SwimAddress, message: { readonly sourceAddr: Uint8Array; readonly sourcePort: number }): SwimAddress {
  return message.sourceAddr.length > 0 && message.sourcePort > 0 ? { addr: message.sourceAddr, port: message.sourcePort } : from;
}

function addressKey(address: SwimAddress): string {
  return `${address.addr.join('.')}:${address.port}`;
}

function sameAddress(a: SwimAddress, b: SwimAddress): boolean {
  return a.port === b.port && bytesEqual(a.addr, b.addr);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function assertNever(value: never): never {
  throw new Error(`unhandled case ${JSON.stringify(value)}`);
}
