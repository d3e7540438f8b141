// The agent's gossip membership: Consul's LAN pool on every agent and, on servers, the WAN pool.
//
// Every agent joins the LAN pool on serf_lan (8301) with Consul's tags (lib/agent.ts memberTags)
// under its node name; servers also join the WAN pool on serf_wan (8302) as `<node>.<dc>`. Both
// use memberlist's LAN/WAN profiles and serf's configuration as Consul sets them (lib/gossip.ts
// SerfPool), encrypted when `encrypt` is set. `-retry-join` (and `-join`, its alias) addresses
// are joined at start and retried every `retry_interval` until one answers or `retry_max`
// attempts are spent (Consul then exits; we log the error and stop retrying); `-retry-join-wan`
// the same for the WAN pool. Members are shown as Consul's /v1/agent/members does.
//
// What the rest of the agent gets: the member lists, the LAN servers' RPC addresses (role
// `consul` in our datacenter), joins and force-leaves on request, a graceful leave, and every
// member event (join, leave, failed, update, reap) through onMemberEvent for the cluster layer.
//
// The gossip keyring lives in `<data-dir>/serf/local.keyring` (LAN) and `remote.keyring` (WAN),
// a JSON list of base64 keys, primary first, as Consul keeps it: created from `encrypt` on first
// start, preferred over `encrypt` afterwards (Consul warns and uses the file), and rewritten
// (fsync, rename) whenever a key query changes it. keyringOperation runs serf's key queries
// (install, use, remove, list) on the pools, WAN first, and tallies the answers as Consul's
// KeyringResponse.
//
// Each pool also keeps serf's snapshot (`<data-dir>/serf/local.snapshot`, `remote.snapshot`:
// lib/serfsnapshot.ts): restarted, an agent restores its Lamport clocks and rejoins the members
// it last knew alive, unless it had left gracefully (then only with -rejoin, i.e.
// rejoin_after_leave).
//
// Both pools refuse what Consul's merge delegates refuse (agent/consul/merge.go): the LAN pool
// a member of another datacenter or segment, or one whose node ID is ours or another member's;
// the WAN pool any member that is not a server. A join into such a cluster fails with the reason.
//
// Not here: network segments (an Enterprise feature), cloud auto-join (`provider=...` addresses
// are refused). User events are handed out (onUserEvent) to lib/userevents.ts.
//
// References: Consul agent/retry_join.go (retryJoiner), agent/agent.go (JoinLAN, JoinWAN,
// ForceLeave, LANMembers), agent/consul/server_serf.go and client_serf.go (setupSerf).

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { RuntimeConfig } from './config.js';
import { writeFileDurably } from './disk.js';
import type { AgentMember } from './endpoints_agent.js';
import { Keyring, parseGossipKey } from './gossipcrypto.js';
import { addressText, multiErrorText, SerfPool, swimAddress } from './gossip.js';
import type { Logger } from './log.js';
import type { MetricLabels, Metrics } from './metrics.js';
import { withDefaultPort } from './rpc.js';
import { SerfError, type SerfEvent } from './serf.js';
import { replaySnapshot, SnapshotWriter } from './serfsnapshot.js';
import { isKeyQueryComplete, summarizeKeyResponses, type KeyOperation } from './serfquery.js';
import { MemberStatus, type SerfMember } from './serfwire.js';
import { distanceSeconds, type Coordinate } from './vivaldi.js';
import type { SwimAddress } from './swim.js';

// ---------------------------------------------------------------------------------------------
// Types

export type PoolName = 'lan' | 'wan';

export interface MembershipOptions {
  readonly config: RuntimeConfig;
  /** The gossip tags of this agent (lib/agent.ts memberTags). */
  readonly tags: Readonly<Record<string, string>>;
  readonly logger: Logger;
  /** Member events of either pool, for the cluster layer (and logs). */
  readonly onMemberEvent?: (pool: PoolName, event: Extract<SerfEvent, { kind: 'member' }>) => void;
  /** serf user events of the LAN pool (Consul's events ride on them). */
  readonly onUserEvent?: (event: Extract<SerfEvent, { kind: 'user' }>) => void;
  /** Where the pools' counters go (gossipMetricKey), every GOSSIP_METRICS_INTERVAL_MS. */
  readonly metrics?: Metrics;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Consul's uniqueIDMinVersion: members from this build on must have unique node IDs. */
const UNIQUE_ID_MIN_VERSION = [0, 8, 5];

/** How often the pools' counters are copied into the agent's metrics (go-metrics' interval). */
export const GOSSIP_METRICS_INTERVAL_MS = 10_000;

/** How long a join waits for its push/pulls (memberlist's LAN TCPTimeout). */
export const JOIN_DEADLINE_MS = 10_000;
/** A graceful leave waits at most this long for serf (broadcast timeout + propagate delay, with room). */
export const LEAVE_DEADLINE_MS = 15_000;
/** How often a key operation looks at its query's answers. */
const KEY_QUERY_POLL_MS = 20;
/** Consul's keyring file names under `<data-dir>/serf`. */
export const LAN_KEYRING_FILE = 'local.keyring';
export const WAN_KEYRING_FILE = 'remote.keyring';
/** serf's snapshot file names under `<data-dir>/serf`. */
export const LAN_SNAPSHOT_FILE = 'local.snapshot';
export const WAN_SNAPSHOT_FILE = 'remote.snapshot';

/** Consul's keyringErrorsOrNil: the multierror text of the pools' errors, or undefined. */
export function keyringErrorText(responses: readonly KeyringResponse[]): string | undefined {
  const errors: string[] = [];
  for (const response of responses) {
    if (response.Error === '') continue;
    errors.push(`${response.WAN ? 'WAN' : `${response.Datacenter} (LAN)`} error: ${response.Error}`);
    for (const [node, message] of Object.entries(response.Messages)) errors.push(`${node}: ${message}`);
  }
  return errors.length === 0 ? undefined : multiErrorText(errors);
}

/** The keys this agent holds, as a one-node list answer (?local-only=true). */
export function localKeyringResponse(keyring: Keyring, datacenter: string): KeyringResponse {
  const keys = keyring.listKeys();
  return { WAN: false, Datacenter: datacenter, Segment: '', Messages: {}, Keys: Object.fromEntries(keys.map((key) => [key, 1])), PrimaryKeys: keys.length === 0 ? {} : { [keys[0]!]: 1 }, NumNodes: 1, Error: '' };
}

/** Consul's KeyringResponse (structs.KeyringResponse) for one pool. */
export interface KeyringResponse {
  readonly WAN: boolean;
  readonly Datacenter: string;
  readonly Segment: string;
  readonly Messages: Record<string, string>;
  readonly Keys: Record<string, number>;
  readonly PrimaryKeys: Record<string, number>;
  readonly NumNodes: number;
  readonly Error: string;
}

// ---------------------------------------------------------------------------------------------
// Exported API

export class Membership {
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private isClosed = false;
  /** serf's snapshot writer per pool; none in -dev or without a data dir. */
  private readonly snapshots: { lan?: SnapshotWriter; wan?: SnapshotWriter } = {};
  /** Counter values already exported, by pool and `layer.name`. */
  private readonly exported = new Map<string, number>();
  private metricsTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly options: MembershipOptions,
    readonly lan: SerfPool,
    readonly wan: SerfPool | undefined,
    private readonly keyrings: { readonly lan: Keyring | undefined; readonly wan: Keyring | undefined },
  ) {}

  /** `?local-only=true`: this agent's own LAN keys, without asking the pool. */
  localKeyring(): KeyringResponse[] {
    if (this.keyrings.lan === undefined) throw new Error('Gossip encryption not enabled');
    return [localKeyringResponse(this.keyrings.lan, this.options.config.datacenter)];
  }

  /**
   * Consul's keyring operations (`consul keyring`, /v1/operator/keyring): serf's key query on
   * each pool (WAN first, as Consul answers), each answered when every member replied or the
   * query timed out. Throws Consul's error when gossip encryption is off.
   */
  async keyringOperation(op: KeyOperation, keyBase64: string, relayFactor: number): Promise<KeyringResponse[]> {
    if (this.keyrings.lan === undefined) throw new Error('Gossip encryption not enabled');
    const pools: [SerfPool, boolean][] = [...(this.wan !== undefined ? [[this.wan, true] as [SerfPool, boolean]] : []), [this.lan, false]];
    const responses: KeyringResponse[] = [];
    for (const [pool, isWan] of pools) {
      const collector = pool.transport.run((nowMs) => pool.serf.keyQuery(op, keyBase64, nowMs, relayFactor));
      const base = { WAN: isWan, Datacenter: this.options.config.datacenter, Segment: '' };
      if (collector instanceof SerfError) {
        responses.push({ ...base, Messages: {}, Keys: {}, PrimaryKeys: {}, NumNodes: 0, Error: collector.message });
        continue;
      }
      while (!isKeyQueryComplete(collector, Date.now())) await new Promise((resolveWait) => setTimeout(resolveWait, KEY_QUERY_POLL_MS));
      const tally = summarizeKeyResponses(collector);
      responses.push({
        ...base,
        Messages: Object.fromEntries(tally.messages),
        Keys: Object.fromEntries(tally.keys),
        PrimaryKeys: Object.fromEntries(tally.primaryKeys),
        NumNodes: tally.numNodes,
        Error: tally.error ?? '',
      });
    }
    return responses;
  }

  /** Binds the pools and starts the configured joins. Rejects with the bind error. */
  static async start(options: MembershipOptions): Promise<Membership> {
    const { config, logger } = options;
    const lanKeyring = loadKeyring(config, LAN_KEYRING_FILE, logger);
    const wanKeyring = config.serverMode ? loadKeyring(config, WAN_KEYRING_FILE, logger) : undefined;
    const events = { lan: [] as SerfEvent[], wan: [] as SerfEvent[] };
    let membership: Membership | undefined;
    const onEvent = (pool: PoolName) => (event: SerfEvent): void => {
      if (membership === undefined) events[pool].push(event);
      else membership.onEvent(pool, event);
    };
    const lan = await SerfPool.start({
      bindHost: config.serfBindAddrLan, port: config.ports.serfLan, advertiseHost: config.advertiseAddrLan,
      nodeName: config.nodeName, tags: new Map(Object.entries(options.tags)), pool: 'lan', merge: (members) => lanMergeRefusal(members, { name: config.nodeName, tags: options.tags }), keyring: lanKeyring, verifyIncoming: config.encryptVerifyIncoming, verifyOutgoing: config.encryptVerifyOutgoing, logger: logger.named('serf').named('lan'), onEvent: onEvent('lan'),
    });
    let wan: SerfPool | undefined;
    try {
      if (config.serverMode && config.ports.serfWan > 0) {
        wan = await SerfPool.start({
          bindHost: config.serfBindAddrWan, port: config.ports.serfWan, advertiseHost: config.advertiseAddrWan,
          nodeName: `${config.nodeName}.${config.datacenter}`, tags: new Map(Object.entries(options.tags)), pool: 'wan', merge: wanMergeRefusal, keyring: wanKeyring, verifyIncoming: config.encryptVerifyIncoming, verifyOutgoing: config.encryptVerifyOutgoing, logger: logger.named('serf').named('wan'), onEvent: onEvent('wan'),
        });
      }
    } catch (error) {
      await lan.close();
      throw error;
    }
    membership = new Membership(options, lan, wan, { lan: lanKeyring, wan: wanKeyring });
    const { metrics } = options;
    if (metrics !== undefined) {
      const exporter = membership;
      exporter.metricsTimer = setInterval(() => exporter.exportMetrics(metrics), GOSSIP_METRICS_INTERVAL_MS).unref();
    }
    membership.restoreSnapshot('lan', LAN_SNAPSHOT_FILE);
    if (wan !== undefined) membership.restoreSnapshot('wan', WAN_SNAPSHOT_FILE);
    for (const pool of ['lan', 'wan'] as const) for (const event of events[pool]) membership.onEvent(pool, event);
    membership.retryJoin('lan', config.retryJoinLan, config.retryIntervalLanMs, config.retryMaxAttemptsLan);
    if (wan !== undefined) membership.retryJoin('wan', config.retryJoinWan, config.retryIntervalWanMs, config.retryMaxAttemptsWan);
    return membership;
  }

  /**
   * /v1/catalog/datacenters: every datacenter with a server in the WAN pool (ours always), nearest
   * first by the median estimated RTT from us to its servers (Consul's router). Without a WAN
   * pool (a client agent), just ours.
   */
  datacentersByDistance(): string[] {
    const own = this.options.config.datacenter;
    const wan = this.wan;
    if (wan === undefined) return [own];
    const servers = wan.serf.membersList()
      .filter((member) => member.tags.get('role') === 'consul' && member.status !== MemberStatus.left)
      .map((member) => ({ datacenter: member.tags.get('dc') ?? '', coordinate: wan.serf.getCachedCoordinate(member.name) }));
    return datacentersByDistance(own, wan.serf.getCoordinate(), servers);
  }

  /** /v1/agent/members: the pool's members in Consul's shape (WAN on a client: none). */
  members(pool: PoolName): AgentMember[] | undefined {
    const serfPool = pool === 'lan' ? this.lan : this.wan;
    return serfPool?.serf.membersList().map(agentMember);
  }

  /** The RPC addresses (`ip:port`) of the alive servers of our datacenter in the LAN pool. */
  lanServers(): string[] {
    return this.lan.serf.membersList()
      .filter((member) => member.status === 1 && member.tags.get('role') === 'consul' && member.tags.get('dc') === this.options.config.datacenter && member.tags.has('port'))
      .map((member) => `${addressText(member.addr) ?? ''}:${member.tags.get('port')}`);
  }

  /**
   * Consul's JoinLAN/JoinWAN: joins each address (`host` or `host:port`, default the pool's
   * port); resolves with how many answered, rejects with memberlist's error text when none did.
   */
  async join(pool: PoolName, addresses: readonly string[]): Promise<number> {
    const serfPool = pool === 'lan' ? this.lan : this.wan;
    if (serfPool === undefined) throw new Error('WAN pool is not available on a client agent');
    const defaultPort = pool === 'lan' ? this.options.config.ports.serfLan : this.options.config.ports.serfWan;
    const targets = await resolveJoinAddresses(addresses, defaultPort);
    return serfPool.joinAndWait(targets, JOIN_DEADLINE_MS);
  }

  /**
   * Consul's ForceLeave: a failed member is marked left (and with `prune`, forgotten). Throws
   * when the node is not a member, as serf does.
   */
  forceLeave(pool: PoolName, node: string, prune: boolean): void {
    const serfPool = pool === 'lan' ? this.lan : this.wan;
    if (serfPool === undefined) throw new Error('WAN pool is not available on a client agent');
    if (serfPool.serf.member(node) === null) throw new Error(`agent: No node found with name '${node}'`);
    serfPool.transport.run((nowMs) => serfPool.serf.forceLeave(node, prune, nowMs));
  }

  /** serf Leave on every pool (the intent is broadcast, then memberlist's leave), bounded; the snapshots say so. */
  async leave(): Promise<void> {
    await Promise.all([this.lan.leave(LEAVE_DEADLINE_MS), this.wan?.leave(LEAVE_DEADLINE_MS)]);
    this.snapshots.lan?.leave();
    this.snapshots.wan?.leave();
  }

  /**
   * Adds what the pools counted since the last call to the agent's metrics (counters under
   * memberlist's and serf's names where they have one, labelled with the pool), and the Lifeguard
   * health score as memberlist.health.score.
   */
  exportMetrics(metrics: Metrics): void {
    for (const [pool, serfPool] of [['lan', this.lan], ['wan', this.wan]] as const) {
      if (serfPool === undefined) continue;
      const layers = [['memberlist', serfPool.swim.counters], ['serf', serfPool.serf.counters], ['transport', serfPool.transport.counters]] as const;
      for (const [layer, counters] of layers) {
        for (const [name, value] of Object.entries(counters)) {
          const id = `${pool}.${layer}.${name}`;
          const delta = value - (this.exported.get(id) ?? 0);
          if (delta <= 0) continue;
          this.exported.set(id, value);
          const { key, labels } = gossipMetricKey(layer, name);
          metrics.incrCounter(key, delta, { ...labels, network: pool });
        }
      }
      metrics.setGauge(['memberlist', 'health', 'score'], serfPool.swim.healthScore(), { network: pool });
    }
  }

  async close(): Promise<void> {
    this.isClosed = true;
    if (this.metricsTimer !== undefined) clearInterval(this.metricsTimer);
    for (const timer of this.retryTimers) clearTimeout(timer);
    await Promise.all([this.lan.close(), this.wan?.close()]);
  }

  /** A serf user event on the LAN pool (Consul fires its user events there). */
  userEvent(name: string, payload: Uint8Array): void {
    this.lan.userEvent(name, payload, false);
  }

  private onEvent(pool: PoolName, event: SerfEvent): void {
    if (event.kind === 'user' && pool === 'lan') return this.options.onUserEvent?.(event);
    if (event.kind === 'keyring-changed') return this.persistKeyring(pool);
    this.recordSnapshot(pool, event);
    if (event.kind !== 'member') return;
    const { logger } = this.options;
    for (const member of event.members) logger.info(`serf: ${EVENT_LOG_NAMES[event.type]}`, { member: member.name, address: addressText(member.addr) ?? '', pool });
    this.options.onMemberEvent?.(pool, event);
  }

  /**
   * serf's snapshot replay: restore the clocks, then (unless we left, without -rejoin) join the
   * members that were alive, in the background, as serf does at start.
   */
  private restoreSnapshot(pool: PoolName, file: string): void {
    const path = serfFilePath(this.options.config, file);
    const serfPool = pool === 'lan' ? this.lan : this.wan;
    if (path === undefined || serfPool === undefined) return;
    const replay = replaySnapshot(path);
    this.snapshots[pool] = new SnapshotWriter(path, replay);
    if (replay.clock > 0n) serfPool.serf.restoreClocks(replay);
    const self = `${addressText(serfPool.swim.localMember().address.addr) ?? ''}:${serfPool.transport.port}`;
    const previous = replay.aliveMembers.filter((address) => address !== self);
    if (previous.length === 0) return;
    if (replay.hasLeft && !this.options.config.rejoinAfterLeave) {
      this.options.logger.info('serf: Ignoring previous node list, due to leave', { pool });
      return;
    }
    this.options.logger.info('serf: Attempting re-join to previously known nodes', { pool, nodes: previous.join(',') });
    this.join(pool, previous).then(
      (joined) => this.options.logger.info('serf: Re-joined previously known nodes', { pool, num_nodes: joined }),
      (error: unknown) => this.options.logger.warn('serf: Failed to re-join any previously known node', { pool, error: (error as Error).message }),
    );
  }

  /** Appends what changed to the pool's snapshot: members alive or gone, and the clocks. */
  private recordSnapshot(pool: PoolName, event: SerfEvent): void {
    const writer = this.snapshots[pool];
    const serfPool = pool === 'lan' ? this.lan : this.wan;
    if (writer === undefined || serfPool === undefined) return;
    const { serf } = serfPool;
    try {
      if (event.kind === 'member') {
        for (const member of event.members) {
          if (member.name === serf.localMember()?.name) continue;
          if (event.type === 'member-join' || event.type === 'member-update') writer.alive(member.name, `${addressText(member.addr) ?? ''}:${member.port}`);
          else writer.notAlive(member.name);
        }
      }
      writer.clocksAt(serf.clock.time(), serf.eventClock.time(), serf.queryClock.time());
    } catch (error) {
      this.options.logger.error('failed to write the serf snapshot', { pool, error: (error as Error).message });
    }
  }

  /** Writes the pool's keyring file after a key query changed the keyring (no file in -dev). */
  private persistKeyring(pool: PoolName): void {
    const keyring = this.keyrings[pool];
    const path = serfFilePath(this.options.config, pool === 'lan' ? LAN_KEYRING_FILE : WAN_KEYRING_FILE);
    if (keyring === undefined || path === undefined) return;
    try {
      writeFileDurably(path, JSON.stringify(keyring.listKeys()));
    } catch (error) {
      this.options.logger.error('failed to persist the gossip keyring', { path, error: (error as Error).message });
    }
  }

  /** Consul's retryJoiner: join now, and every interval until one address answers. */
  private retryJoin(pool: PoolName, addresses: readonly string[], intervalMs: number, maxAttempts: number): void {
    if (addresses.length === 0) return;
    const { logger } = this.options;
    const label = pool === 'lan' ? 'LAN' : 'WAN';
    logger.info(`Retry join is supported for the following discovery methods`, { cluster: label, discovery_methods: 'none' });
    logger.info('Joining cluster...', { cluster: label });
    let attempt = 0;
    const tryOnce = (): void => {
      if (this.isClosed) return;
      attempt++;
      this.join(pool, addresses).then(
        (joined) => logger.info('Join cluster completed. Synced with initial agents', { cluster: label, num_agents: joined }),
        (error: unknown) => {
          if (this.isClosed) return;
          if (maxAttempts > 0 && attempt >= maxAttempts) {
            logger.error('Max join retry exhausted, giving up', { cluster: label, error: (error as Error).message });
            return;
          }
          logger.warn('Join cluster failed, will retry', { cluster: label, retry_interval: `${intervalMs}ms`, error: (error as Error).message });
          const timer = setTimeout(() => {
            this.retryTimers.delete(timer);
            tryOnce();
          }, intervalMs);
          timer.unref();
          this.retryTimers.add(timer);
        },
      );
    };
    tryOnce();
  }
}

/** A serf member as /v1/agent/members shows it (serf.Member with Go's field names). */
/**
 * Consul's LAN merge delegate: why a joining cluster (or one alive member) must not merge into
 * ours, or null. `self`: our node name and gossip tags (`dc`, `id`, `segment` are compared).
 */
export function lanMergeRefusal(members: readonly SerfMember[], self: { readonly name: string; readonly tags: Readonly<Record<string, string>> }): string | null {
  const selfTags = self.tags;
  const idOwners = new Map<string, string>();
  for (const member of members) {
    const nodeId = member.tags.get('id') ?? '';
    if (nodeId !== '' && member.status !== MemberStatus.left) {
      if (nodeId === selfTags['id'] && member.name !== self.name) return `Member '${member.name}' has conflicting node ID '${nodeId}' with this agent's ID`;
      const other = idOwners.get(nodeId);
      if (other !== undefined) return `Member '${member.name}' has conflicting node ID '${nodeId}' with member '${other}'`;
      // Only builds from 0.8.5 on insist on unique IDs (Consul's uniqueIDMinVersion).
      const build = buildVersionOf(member);
      if (build !== null && compareVersions(build, UNIQUE_ID_MIN_VERSION) >= 0) idOwners.set(nodeId, member.name);
    }
    const role = member.tags.get('role');
    const datacenter = member.tags.get('dc') ?? '';
    if ((role === 'node' || isConsulServerMember(member)) && datacenter !== selfTags['dc']) return `Member '${member.name}' part of wrong datacenter '${datacenter}'`;
    const segment = member.tags.get('segment') ?? '';
    const ourSegment = selfTags['segment'] ?? '';
    if (segment !== ourSegment) return `Member '${member.name}' part of wrong segment '${segment}' (expected '${ourSegment}')`;
  }
  return null;
}

/** Consul's WAN merge delegate: only servers belong in the WAN pool. */
export function wanMergeRefusal(members: readonly SerfMember[]): string | null {
  const stranger = members.find((member) => !isConsulServerMember(member));
  return stranger === undefined ? null : `Member '${stranger.name}' is not a server`;
}

/** metadata.IsConsulServer's test: role `consul` with parseable expect, port, build and vsn tags. */
function isConsulServerMember(member: SerfMember): boolean {
  const tags = member.tags;
  if (tags.get('role') !== 'consul') return false;
  const expect = tags.get('expect');
  if (expect !== undefined && !isDecimal(expect)) return false;
  if (!isDecimal(tags.get('port') ?? '') || !isDecimal(tags.get('vsn') ?? '')) return false;
  return buildVersionOf(member) !== null;
}

function isDecimal(text: string): boolean {
  return /^[+-]?\d+$/.test(text);
}

/** The version in a `build` tag (`1.15.2:abcdef12`), as numbers; null when it does not parse. */
function buildVersionOf(member: SerfMember): number[] | null {
  const match = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec((member.tags.get('build') ?? '').split(':')[0] ?? '');
  return match === null ? null : [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const difference = (a[i] ?? 0) - (b[i] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

/**
 * The metric key for one of the gossip layers' counters: memberlist's and serf's own names where
 * they count the same thing (memberlist.udp.received is bytes, as in memberlist), drops by reason
 * as memberlist.udp.dropped / memberlist.tcp.dropped with a `reason` label, anything else under
 * its layer (`memberlist.suspectRechecks`, `serf.queriesDropped`, `gossip.transport.streamErrors`).
 */
export function gossipMetricKey(layer: 'memberlist' | 'serf' | 'transport', name: string): { key: string[]; labels: MetricLabels } {
  const named = GOSSIP_METRIC_NAMES[`${layer}.${name}`];
  if (named !== undefined) return { key: named, labels: {} };
  const drop = /^(udp|tcp)Dropped\.(.+)$/.exec(name);
  if (layer === 'memberlist' && drop !== null) return { key: ['memberlist', drop[1] ?? '', 'dropped'], labels: { reason: drop[2] ?? '' } };
  return { key: layer === 'transport' ? ['gossip', 'transport', name] : [layer, name], labels: {} };
}

/** memberlist 0.2.2's and serf's metric names for the counters that have one. */
const GOSSIP_METRIC_NAMES: Readonly<Record<string, string[]>> = {
  'memberlist.udpReceivedBytes': ['memberlist', 'udp', 'received'],
  'memberlist.udpSentBytes': ['memberlist', 'udp', 'sent'],
  'memberlist.tcpSentBytes': ['memberlist', 'tcp', 'sent'],
  'memberlist.tcpAccepted': ['memberlist', 'tcp', 'accept'],
  'memberlist.msgAlive': ['memberlist', 'msg', 'alive'],
  'memberlist.msgSuspect': ['memberlist', 'msg', 'suspect'],
  'memberlist.msgDead': ['memberlist', 'msg', 'dead'],
  'memberlist.probeDegraded': ['memberlist', 'degraded', 'probe'],
  'memberlist.suspicionDegradedTimeout': ['memberlist', 'degraded', 'timeout'],
  'transport.streamsOut': ['memberlist', 'tcp', 'connect'],
  'serf.memberFlap': ['serf', 'member', 'flap'],
  'serf.userEvents': ['serf', 'events'],
  'serf.queries': ['serf', 'queries'],
};

/**
 * Consul's GetDatacentersByDistance: each datacenter's RTT is the upper median of the estimated
 * RTTs from `ours` to its servers with a coordinate (none: last); ties and unknowns by name.
 * `own` is always listed.
 */
export function datacentersByDistance(own: string, ours: Coordinate | null, servers: readonly { readonly datacenter: string; readonly coordinate: Coordinate | null }[]): string[] {
  const rtts = new Map<string, number[]>([[own, []]]);
  for (const server of servers) {
    if (server.datacenter === '') continue;
    const list = rtts.get(server.datacenter) ?? [];
    rtts.set(server.datacenter, list);
    if (ours !== null && server.coordinate !== null) list.push(distanceSeconds(ours, server.coordinate));
  }
  const median = (list: number[]): number => (list.length === 0 ? Infinity : [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? Infinity);
  return [...rtts]
    .map(([datacenter, list]) => ({ datacenter, rtt: median(list) }))
    .sort((a, b) => (a.rtt !== b.rtt ? (a.rtt < b.rtt ? -1 : 1) : a.datacenter < b.datacenter ? -1 : a.datacenter > b.datacenter ? 1 : 0))
    .map((entry) => entry.datacenter);
}

export function agentMember(member: SerfMember): AgentMember {
  return {
    Name: member.name,
    Addr: addressText(member.addr) ?? '',
    Port: member.port,
    Tags: Object.fromEntries(member.tags),
    Status: member.status,
    ProtocolMin: member.protocolMin,
    ProtocolMax: member.protocolMax,
    ProtocolCur: member.protocolCur,
    DelegateMin: member.delegateMin,
    DelegateMax: member.delegateMax,
    DelegateCur: member.delegateCur,
  };
}

// ---------------------------------------------------------------------------------------------
// Private helpers

/** serf's log names for member events (serf/event.go EventType.String). */
const EVENT_LOG_NAMES: Record<Extract<SerfEvent, { kind: 'member' }>['type'], string> = {
  'member-join': 'EventMemberJoin',
  'member-leave': 'EventMemberLeave',
  'member-failed': 'EventMemberFailed',
  'member-update': 'EventMemberUpdate',
  'member-reap': 'EventMemberReap',
};

/** `<data-dir>/serf/<file>`, or undefined in -dev or without a data dir (kept in memory only). */
function serfFilePath(config: RuntimeConfig, file: string): string | undefined {
  if (config.devMode || config.dataDir === '') return undefined;
  return join(config.dataDir, 'serf', file);
}

/**
 * The pool's keyring: the keyring file when there is one (Consul prefers it to `encrypt`), else
 * `encrypt` (written to the file for the next start), else none (encryption off).
 */
function loadKeyring(config: RuntimeConfig, file: string, logger: Logger): Keyring | undefined {
  const path = serfFilePath(config, file);
  if (path !== undefined && existsSync(path)) {
    const keys = parseKeyringFile(readFileSync(path, 'utf8'), path);
    if (config.encryptKey !== '') logger.warn(`${file === LAN_KEYRING_FILE ? 'LAN' : 'WAN'} keyring exists but -encrypt given, using keyring`);
    return new Keyring(keys, keys[0]);
  }
  if (config.encryptKey === '') return undefined;
  const key = parseGossipKey(config.encryptKey);
  if (path !== undefined) {
    mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
    writeFileDurably(path, JSON.stringify([config.encryptKey]));
  }
  return new Keyring([key], key);
}

/** A keyring file: a JSON list of base64 keys, primary first; anything else stops the agent. */
function parseKeyringFile(text: string, path: string): Uint8Array[] {
  let keys: unknown;
  try {
    keys = JSON.parse(text);
  } catch (error) {
    throw new Error(`Failed to read keyring file ${path}: ${(error as Error).message}`);
  }
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((key): key is string => typeof key === 'string')) {
    throw new Error(`Failed to read keyring file ${path}: not a non-empty list of keys`);
  }
  return keys.map((key) => parseGossipKey(key));
}

/** `host`, `host:port`, `[v6]:port` -> addresses, hostnames resolved (every address they have). */
async function resolveJoinAddresses(addresses: readonly string[], defaultPort: number): Promise<SwimAddress[]> {
  const resolved: SwimAddress[] = [];
  for (const address of addresses) {
    if (address.startsWith('provider=')) throw new Error(`cloud auto-join is not supported: ${address}`);
    const { host, port } = splitHostPort(address, defaultPort);
    const ips = isIP(host) !== 0 ? [host] : (await lookup(host, { all: true })).map((entry) => entry.address);
    for (const ip of ips) {
      const target = swimAddress(ip, port);
      if (target !== undefined) resolved.push(target);
    }
  }
  return resolved;
}

/** `host`, `host:port`, `[v6]:port` or a bare IPv6 address, with `defaultPort` when none is given. */
function splitHostPort(address: string, defaultPort: number): { host: string; port: number } {
  const match = /^\[(.+)\]:(\d+)$|^([^:]+):(\d+)$/.exec(withDefaultPort(address, defaultPort));
  const port = Number(match?.[2] ?? match?.[4]);
  if (match === null || !(port > 0 && port <= 65535)) throw new Error(`invalid join address ${JSON.stringify(address)}`);
  return { host: match[1] ?? match[3]!, port };
}
