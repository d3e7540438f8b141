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
// Not here: gossip keyring persistence and rotation (`<data-dir>/serf/local.keyring`, /v1/
// operator/keyring), serf snapshots and -rejoin, network segments, cloud auto-join
// (`provider=...` addresses are refused). User events are handed out (onUserEvent) to
// lib/userevents.ts.
//
// References: Consul agent/retry_join.go (retryJoiner), agent/agent.go (JoinLAN, JoinWAN,
// ForceLeave, LANMembers), agent/consul/server_serf.go and client_serf.go (setupSerf).

import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { RuntimeConfig } from './config.js';
import type { AgentMember } from './endpoints_agent.js';
import { Keyring, parseGossipKey } from './gossipcrypto.js';
import { addressText, SerfPool, swimAddress } from './gossip.js';
import type { Logger } from './log.js';
import { withDefaultPort } from './rpc.js';
import type { SerfEvent } from './serf.js';
import type { SerfMember } from './serfwire.js';
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
}

// ---------------------------------------------------------------------------------------------
// Limits

/** How long a join waits for its push/pulls (memberlist's LAN TCPTimeout). */
export const JOIN_DEADLINE_MS = 10_000;
/** A graceful leave waits at most this long for serf (broadcast timeout + propagate delay, with room). */
export const LEAVE_DEADLINE_MS = 15_000;

// ---------------------------------------------------------------------------------------------
// Exported API

export class Membership {
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private isClosed = false;

  private constructor(
    private readonly options: MembershipOptions,
    readonly lan: SerfPool,
    readonly wan: SerfPool | undefined,
  ) {}

  /** Binds the pools and starts the configured joins. Rejects with the bind error. */
  static async start(options: MembershipOptions): Promise<Membership> {
    const { config, logger } = options;
    const keyring = gossipKeyring(config.encryptKey);
    const events = { lan: [] as SerfEvent[], wan: [] as SerfEvent[] };
    let membership: Membership | undefined;
    const onEvent = (pool: PoolName) => (event: SerfEvent): void => {
      if (membership === undefined) events[pool].push(event);
      else membership.onEvent(pool, event);
    };
    const lan = await SerfPool.start({
      bindHost: config.serfBindAddrLan, port: config.ports.serfLan, advertiseHost: config.advertiseAddrLan,
      nodeName: config.nodeName, tags: new Map(Object.entries(options.tags)), pool: 'lan', keyring, verifyIncoming: config.encryptVerifyIncoming, verifyOutgoing: config.encryptVerifyOutgoing, logger: logger.named('serf').named('lan'), onEvent: onEvent('lan'),
    });
    let wan: SerfPool | undefined;
    try {
      if (config.serverMode && config.ports.serfWan > 0) {
        wan = await SerfPool.start({
          bindHost: config.serfBindAddrWan, port: config.ports.serfWan, advertiseHost: config.advertiseAddrWan,
          nodeName: `${config.nodeName}.${config.datacenter}`, tags: new Map(Object.entries(options.tags)), pool: 'wan', keyring, verifyIncoming: config.encryptVerifyIncoming, verifyOutgoing: config.encryptVerifyOutgoing, logger: logger.named('serf').named('wan'), onEvent: onEvent('wan'),
        });
      }
    } catch (error) {
      await lan.close();
      throw error;
    }
    membership = new Membership(options, lan, wan);
    for (const pool of ['lan', 'wan'] as const) for (const event of events[pool]) membership.onEvent(pool, event);
    membership.retryJoin('lan', config.retryJoinLan, config.retryIntervalLanMs, config.retryMaxAttemptsLan);
    if (wan !== undefined) membership.retryJoin('wan', config.retryJoinWan, config.retryIntervalWanMs, config.retryMaxAttemptsWan);
    return membership;
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

  /** serf Leave on every pool (the intent is broadcast, then memberlist's leave), bounded. */
  async leave(): Promise<void> {
    await Promise.all([this.lan.leave(LEAVE_DEADLINE_MS), this.wan?.leave(LEAVE_DEADLINE_MS)]);
  }

  async close(): Promise<void> {
    this.isClosed = true;
    for (const timer of this.retryTimers) clearTimeout(timer);
    await Promise.all([this.lan.close(), this.wan?.close()]);
  }

  /** A serf user event on the LAN pool (Consul fires its user events there). */
  userEvent(name: string, payload: Uint8Array): void {
    this.lan.userEvent(name, payload, false);
  }

  private onEvent(pool: PoolName, event: SerfEvent): void {
    if (event.kind === 'user' && pool === 'lan') return this.options.onUserEvent?.(event);
    if (event.kind !== 'member') return;
    const { logger } = this.options;
    for (const member of event.members) logger.info(`serf: ${EVENT_LOG_NAMES[event.type]}`, { member: member.name, address: addressText(member.addr) ?? '', pool });
    this.options.onMemberEvent?.(pool, event);
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

function gossipKeyring(encryptKey: string): Keyring | undefined {
  if (encryptKey === '') return undefined;
  const key = parseGossipKey(encryptKey);
  return new Keyring([key], key);
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
