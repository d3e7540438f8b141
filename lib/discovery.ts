// Finding the peers of a -bootstrap-expect server.
//
// Consul (agent/consul/leader.go maybeBootstrap) waits until serf shows `bootstrap_expect`
// servers of its datacenter with the same expectation, asks each whether it already has Raft
// peers, and only if none does calls BootstrapCluster with all of them. consul-ts takes the
// candidate servers from the LAN gossip pool (role `consul`, same datacenter, RPC address from
// the `port` tag: lib/membership.ts lanServers) and asks each, every -retry-interval, with the
// RPC `ConsulTS.ServerInfo` (lib/rpc.ts), which answers `{ID, Address, Expect, Datacenter,
// HasState}` (Consul reads the expectation from the serf tags and asks Status.RaftStats). Once it knows `expect` servers
// (itself included) with no Raft state, it bootstraps with exactly those servers sorted by ID,
// so every server proposes the identical configuration (hashicorp BootstrapCluster tolerates
// several servers bootstrapping the same one). If any server, or this one, already has state,
// it stops: an existing cluster adds servers, a new one must not be started beside it. A
// non-zero expect that differs from ours is an operator error: logged, never bootstrapped with.
//
// The decision is a pure function (bootstrapDecision); the shell polls with a timer.
//
// Invariants: at most one polling round runs at a time; timer callbacks check the epoch; after
// stop() resolves nothing is dialed and bootstrap is not called.
//
// Reference: Consul agent/consul/leader.go maybeBootstrap, agent/retry_join.go.

import type { Logger } from './log.js';
import type { MsgpackValue } from './msgpack.js';
import { RPC_CALL_TIMEOUT_MS, rpcCallOnce } from './rpc.js';
import type { RaftServer } from './snapshot.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** What `ConsulTS.ServerInfo` answers (field names as on the wire). */
export interface ServerInfo {
  readonly ID: string;
  /** The server's RPC (and Raft) address, `host:port`. */
  readonly Address: string;
  readonly Expect: number;
  readonly Datacenter: string;
  /** The server has Raft state (a term, a log or a snapshot): a cluster exists. */
  readonly HasState: boolean;
}

export type BootstrapDecision =
  | { readonly kind: 'wait'; readonly known: number }
  | { readonly kind: 'bootstrap'; readonly servers: readonly RaftServer[] }
  | { readonly kind: 'existingState'; readonly server: ServerInfo }
  | { readonly kind: 'expectMismatch'; readonly servers: readonly ServerInfo[] };

export interface DiscoveryOptions {
  /** This server, asked afresh every round (its HasState changes when a leader contacts it). */
  readonly self: () => ServerInfo;
  /** The candidate servers' RPC addresses (`ip:port`), asked afresh every round. */
  readonly candidates: () => readonly string[];
  readonly intervalMs: number;
  readonly logger: Logger;
  /** hashicorp BootstrapCluster; may throw when state appeared meanwhile. */
  readonly bootstrap: (servers: readonly RaftServer[]) => void;
  /** Asks one address for its ServerInfo; default: the RPC. Injected for tests. */
  readonly query?: (address: string, timeoutMs: number) => Promise<ServerInfo>;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** The RPC method, ours (not Consul's): named so no one mistakes it for a Consul endpoint. */
export const SERVER_INFO_METHOD = 'ConsulTS.ServerInfo';
/** Candidates asked per round; more are left for later rounds' luck (a datacenter has 3-7 servers). */
export const DISCOVERY_ADDRESSES_MAX = 64;

// ---------------------------------------------------------------------------------------------
// Exported API

/**
 * Decides from this server's and the others' infos (any order, duplicates allowed, other
 * datacenters ignored) whether to bootstrap now, wait, or give up.
 */
export function bootstrapDecision(self: ServerInfo, others: readonly ServerInfo[]): BootstrapDecision {
  if (self.HasState) return { kind: 'existingState', server: self };
  const byId = new Map<string, ServerInfo>([[self.ID, self]]);
  const mismatched: ServerInfo[] = [];
  for (const info of others) {
    if (info.Datacenter !== self.Datacenter || info.ID === self.ID) continue;
    if (info.HasState) return { kind: 'existingState', server: info };
    if (info.Expect !== self.Expect) {
      if (info.Expect !== 0) mismatched.push(info);
      continue;
    }
    byId.set(info.ID, info);
  }
  if (mismatched.length > 0) return { kind: 'expectMismatch', servers: mismatched };
  if (byId.size < self.Expect) return { kind: 'wait', known: byId.size };
  const servers = [...byId.values()].sort((a, b) => (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0));
  return { kind: 'bootstrap', servers: servers.map((info) => ({ suffrage: 0, id: info.ID, address: info.Address })) };
}

/** Parses a ServerInfo reply; undefined when it lacks a field. */
export function parseServerInfo(value: MsgpackValue): ServerInfo | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) return undefined;
  const fields = value as Record<string, MsgpackValue>;
  const { ID, Address, Expect, Datacenter, HasState } = fields;
  if (typeof ID !== 'string' || typeof Address !== 'string' || typeof Datacenter !== 'string' || typeof HasState !== 'boolean') return undefined;
  if (typeof Expect !== 'number' || !Number.isSafeInteger(Expect) || Expect < 0) return undefined;
  return { ID, Address, Expect, Datacenter, HasState };
}

/** Polls the join addresses until it bootstraps or learns that a cluster exists. */
export class BootstrapDiscovery {
  private readonly query: (address: string, timeoutMs: number) => Promise<ServerInfo>;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private round: Promise<void> = Promise.resolve();
  private epoch = 0;
  private isStopped = false;
  private lastKnown = -1;
  private readonly reportedMismatches = new Set<string>();

  private constructor(private readonly options: DiscoveryOptions) {
    this.query = options.query ?? queryServerInfo;
  }

  /** Starts polling at once. */
  static start(options: DiscoveryOptions): BootstrapDiscovery {
    const discovery = new BootstrapDiscovery(options);
    const self = options.self();
    options.logger.info('looking for bootstrap_expect peers among the LAN servers', { expect: self.Expect, interval: `${options.intervalMs}ms` });
    discovery.schedule(0);
    return discovery;
  }

  /** Whether polling ended (bootstrapped, a cluster exists, or stopped). */
  get isDone(): boolean {
    return this.isStopped;
  }

  /** Stops polling; resolves once a round in progress has finished. */
  async stop(): Promise<void> {
    this.isStopped = true;
    this.epoch++;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.round;
  }

  private schedule(delayMs: number): void {
    const epoch = this.epoch;
    this.timer = setTimeout(() => {
      if (epoch !== this.epoch || this.isStopped) return;
      this.round = this.poll(epoch).then(
        () => {
          if (!this.isStopped) this.schedule(this.options.intervalMs);
        },
        (error: unknown) => {
          this.options.logger.error('bootstrap discovery failed', { error: (error as Error).message });
          this.isStopped = true;
        },
      );
    }, delayMs);
  }

  private async poll(epoch: number): Promise<void> {
    const { logger } = this.options;
    const timeoutMs = Math.min(RPC_CALL_TIMEOUT_MS, Math.max(this.options.intervalMs, 1000));
    const self = this.options.self();
    const selfAddress = self.Address;
    const targets = [...new Set(this.options.candidates())].filter((address) => address !== selfAddress).slice(0, DISCOVERY_ADDRESSES_MAX);
    const replies = await Promise.all(
      targets.map((address) =>
        this.query(address, timeoutMs).then(
          (info) => info,
          (error: unknown) => {
            logger.debug('bootstrap peer not reachable, will retry', { address, error: (error as Error).message });
            return undefined;
          },
        ),
      ),
    );
    if (epoch !== this.epoch || this.isStopped) return;
    this.act(bootstrapDecision(this.options.self(), replies.filter((info): info is ServerInfo => info !== undefined)));
  }

  private act(decision: BootstrapDecision): void {
    const { logger } = this.options;
    switch (decision.kind) {
      case 'wait':
        if (decision.known !== this.lastKnown) logger.info('waiting for bootstrap_expect servers', { known: decision.known, expect: this.options.self().Expect });
        this.lastKnown = decision.known;
        return;
      case 'existingState':
        if (decision.server.ID === this.options.self().ID) logger.info('Raft data found, disabling bootstrap mode');
        else logger.info('Existing Raft peers reported by server, disabling bootstrap mode', { server: decision.server.Address });
        this.isStopped = true;
        return;
      case 'expectMismatch':
        for (const server of decision.servers) {
          if (this.reportedMismatches.has(server.ID)) continue;
          this.reportedMismatches.add(server.ID);
          logger.error('Member has a conflicting expect value. All nodes should expect the same number.', { member: server.Address, expect: server.Expect });
        }
        return;
      case 'bootstrap':
        this.bootstrap(decision.servers);
        return;
      default: {
        const never: never = decision;
        throw new Error(`unknown decision ${JSON.stringify(never)}`);
      }
    }
  }

  private bootstrap(servers: readonly RaftServer[]): void {
    const { logger } = this.options;
    logger.info('Found expected number of peers, attempting bootstrap', { peers: servers.map((server) => server.address).join(',') });
    this.isStopped = true;
    try {
      this.options.bootstrap(servers);
    } catch (error) {
      logger.error('failed to bootstrap cluster', { error: (error as Error).message });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

async function queryServerInfo(address: string, timeoutMs: number): Promise<ServerInfo> {
  const reply = await rpcCallOnce(address, SERVER_INFO_METHOD, {}, timeoutMs);
  const info = parseServerInfo(reply);
  if (info === undefined) throw new Error(`${address} answered ${SERVER_INFO_METHOD} with an unexpected shape`);
  return info;
}
