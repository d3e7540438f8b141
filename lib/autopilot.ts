// Autopilot on the leader: promotion and dead-server cleanup.
//
// Promotion: a server the leader added as a nonvoter (lib/leader.ts, when it joined the LAN
// pool) becomes a voter once it has been healthy for server_stabilization_time, so a new server
// counts towards quorum only after it has caught up and stayed reachable.
//
// Cleanup (cleanup_dead_servers, on by default): servers in the Raft configuration that the LAN
// pool shows as failed are force-left there (the leader's reconcile then removes them from Raft,
// as for any server that left); nonvoters first, then voters, never more voters than
// (voters-1)/2 at a time and never below min_quorum voters, so a partition that makes the leader
// see half the cluster as failed cannot make it remove them. Unlike raft-autopilot, servers the
// pool does not know at all (stale) are left alone: right after a start the pool may simply not
// have met them yet.
//
// Healthy, as raft-autopilot judges a server: alive in the LAN pool, heard from within
// last_contact_threshold (the leader's replication to it answered), and no more than
// max_trailing_logs entries behind the leader's last index. The decision is a pure function
// (promotionsDue) over the leader's Raft status; Autopilot is the timer around it, running only
// while this server leads.
//
// Health and state (operatorHealth, operatorState: /v1/operator/autopilot/health and /state):
// every server of the configuration as the leader sees it, with the stable-since times the loop
// keeps.
//
// Settings: the servers share them through Raft (the `autopilot-config` table, Consul's
// AutopilotRequestType command), so /v1/operator/autopilot/configuration changes them for the
// whole cluster; a new leader writes the agent's `autopilot` config there when the table is empty
// (Consul's getOrCreateAutopilotConfig), and the loop reads them at every look.
//
// Not here: redundancy zones and upgrade migrations, Enterprise features (their settings are
// stored and shown, and do nothing, as in Consul CE).
//
// Invariants: only nonvoters present in the latest configuration are promoted, one change at a
// time; a server's stable-since time is dropped the moment it is unhealthy; nothing is done by a
// follower or after stop().
//
// Reference: hashicorp/raft-autopilot (autopilot.go, reconcile.go: promoteStableServers,
// pruneDeadServers; stable_server_promoter; state.go: server health), Consul
// agent/consul/autopilot.go (RemoveFailedServer: a force-leave).

import type { AutopilotConfig } from './config.js';
import { formatDuration, parseDuration } from './duration.js';
import type { ReadTxn, WriteTxn } from './memdb.js';
import { TABLES, bumpTableIndex, tableIndex, type AutopilotConfigRecord, type NodeRecord, type QueryResult } from './schema.js';
import type { Logger } from './log.js';
import { SUFFRAGE } from './raftconfig.js';
import { MemberStatus } from './serfwire.js';
import type { RaftServer } from './snapshot.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** What autopilot needs of the leader's Raft status (lib/raft.ts RaftStatus fits). */
export interface LeaderView {
  /** The leader's own server ID. */
  readonly id: string;
  readonly term: number;
  readonly lastIndex: number;
  readonly configuration: { readonly servers: readonly RaftServer[] };
  /** Replication to each other server: its match index and ticks since it last answered. */
  readonly progress: readonly { readonly id: string; readonly match: number; readonly ticksSinceResponse: number }[];
}

export interface AutopilotDeps {
  /** The settings in force (read at every look: they may change through Raft). */
  readonly config: () => AutopilotConfig;
  readonly isLeader: () => boolean;
  readonly status: () => LeaderView;
  /** Milliseconds per Raft tick (ticksSinceResponse × tickMs = time since last contact). */
  readonly tickMs: number;
  /** The LAN pool's servers by ID: node name, serf status (1 alive, 3 left, 4 failed), Consul version. */
  readonly poolServers: () => ReadonlyMap<string, PoolServer>;
  readonly promote: (id: string) => Promise<void>;
  /** serf force-leave of a failed server (its leave then reaches the leader's reconcile). */
  readonly forceLeave: (name: string) => void;
  readonly nowMs: () => number;
  readonly logger: Logger;
  /** This server's ID: never cleaned up. */
  readonly selfId: string;
  readonly intervalMs?: number;
}

/** The settings as written through Raft: the record without its indexes (Config.ModifyIndex is the CAS index). */
export type AutopilotConfigInput = Omit<AutopilotConfigRecord, 'CreateIndex' | 'ModifyIndex'>;

/** api.AutopilotConfiguration: durations as Go duration strings. */
export interface AutopilotConfigJson {
  readonly CleanupDeadServers: boolean;
  readonly LastContactThreshold: string;
  readonly MaxTrailingLogs: number;
  readonly MinQuorum: number;
  readonly ServerStabilizationTime: string;
  readonly RedundancyZoneTag: string;
  readonly DisableUpgradeMigration: boolean;
  readonly UpgradeVersionTag: string;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** A server as the LAN pool shows it. */
export interface PoolServer {
  readonly name: string;
  readonly status: number;
  readonly version?: string;
}

/** api.ServerHealth, in its JSON field order. */
export interface ServerHealthJson {
  readonly ID: string;
  readonly Name: string;
  readonly Address: string;
  readonly SerfStatus: string;
  readonly Version: string;
  readonly Leader: boolean;
  readonly LastContact: string;
  readonly LastTerm: number;
  readonly LastIndex: number;
  readonly Healthy: boolean;
  readonly Voter: boolean;
  readonly StableSince: string;
}

/** api.AutopilotServer, in its JSON field order (CE: no zone or upgrade fields). */
export interface AutopilotServerJson {
  readonly ID: string;
  readonly Name: string;
  readonly Address: string;
  readonly NodeStatus: string;
  readonly Version: string;
  readonly LastContact: string;
  readonly LastTerm: number;
  readonly LastIndex: number;
  readonly Healthy: boolean;
  readonly StableSince: string;
  readonly ReadReplica: boolean;
  readonly Status: string;
  readonly Meta: Readonly<Record<string, string>>;
  readonly NodeType: string;
}

/** api.AutopilotState as Consul CE fills it. */
export interface AutopilotStateJson {
  readonly Healthy: boolean;
  readonly FailureTolerance: number;
  readonly OptimisticFailureTolerance: number;
  readonly Servers: Readonly<Record<string, AutopilotServerJson>>;
  readonly Leader: string;
  readonly Voters: readonly string[];
}

/** api.OperatorHealthReply. */
export interface OperatorHealthJson {
  readonly Healthy: boolean;
  readonly FailureTolerance: number;
  readonly Servers: readonly ServerHealthJson[];
}

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** How often the leader looks at its servers (raft-autopilot's update interval). */
export const AUTOPILOT_INTERVAL_MS = 2_000;
/** raft-autopilot's RaftState by suffrage (voter, nonvoter, staging); the leader is "leader". */
const RAFT_STATUS_NAMES: readonly string[] = ['voter', 'non-voter', 'staging'];

// ---------------------------------------------------------------------------------------------
// Exported API

/**
 * Updates `healthySince` (server ID → when it last became healthy; absent while unhealthy) for
 * every server of the configuration and returns the nonvoters stable long enough to become
 * voters. The leader is healthy while it is alive in the pool.
 */
export function promotionsDue(view: LeaderView, aliveIds: ReadonlySet<string>, config: AutopilotConfig, tickMs: number, healthySince: Map<string, number>, nowMs: number): string[] {
  const servers = view.configuration.servers;
  const due: string[] = [];
  for (const id of [...healthySince.keys()]) if (!servers.some((server) => server.id === id)) healthySince.delete(id);
  for (const server of servers) {
    if (!isServerHealthy(view, server.id, aliveIds, config, tickMs)) {
      healthySince.delete(server.id);
      continue;
    }
    const since = healthySince.get(server.id) ?? nowMs;
    healthySince.set(server.id, since);
    if (server.suffrage === SUFFRAGE.nonvoter && nowMs - since >= config.serverStabilizationTimeMs) due.push(server.id);
  }
  return due.sort();
}

/** One server as the leader's autopilot judges it (raft-autopilot's ServerState). */
interface ServerState {
  readonly server: RaftServer;
  readonly member: PoolServer | undefined;
  readonly isLeader: boolean;
  readonly lastContactMs: number;
  readonly lastIndex: number;
  readonly isHealthy: boolean;
  readonly stableSinceMs: number;
}

/** Every server of the configuration, and the cluster's health and failure tolerance. */
function clusterState(view: LeaderView, pool: ReadonlyMap<string, PoolServer>, config: AutopilotConfig, tickMs: number, healthySince: ReadonlyMap<string, number>, nowMs: number): { servers: ServerState[]; isHealthy: boolean; failureTolerance: number } {
  const aliveIds = new Set([...pool].filter(([, member]) => member.status === MemberStatus.alive || member.status === MemberStatus.leaving).map(([id]) => id));
  const progress = new Map(view.progress.map((p) => [p.id, p]));
  const servers = view.configuration.servers.map((server): ServerState => {
    const isLeader = server.id === view.id;
    const replication = progress.get(server.id);
    return {
      server,
      member: pool.get(server.id),
      isLeader,
      lastContactMs: isLeader ? 0 : (replication?.ticksSinceResponse ?? 0) * tickMs,
      lastIndex: isLeader ? view.lastIndex : (replication?.match ?? 0),
      isHealthy: isServerHealthy(view, server.id, aliveIds, config, tickMs),
      stableSinceMs: healthySince.get(server.id) ?? nowMs,
    };
  });
  const voters = servers.filter((state) => state.server.suffrage === SUFFRAGE.voter);
  const quorum = Math.floor(voters.length / 2) + 1;
  const healthyVoters = voters.filter((state) => state.isHealthy).length;
  return { servers, isHealthy: servers.every((state) => state.isHealthy), failureTolerance: Math.max(0, healthyVoters - quorum) };
}

/**
 * The autopilot health reply (Consul's Operator.ServerHealth): every server of the
 * configuration with its health and stable-since time, the cluster healthy when every server
 * is, and the failure tolerance: how many healthy voters could fail with a quorum left.
 */
export function operatorHealth(view: LeaderView, pool: ReadonlyMap<string, PoolServer>, config: AutopilotConfig, tickMs: number, healthySince: ReadonlyMap<string, number>, nowMs: number): OperatorHealthJson {
  const cluster = clusterState(view, pool, config, tickMs, healthySince, nowMs);
  const servers = cluster.servers.map((state): ServerHealthJson => ({
    ID: state.server.id,
    Name: state.member?.name ?? '',
    Address: state.server.address,
    SerfStatus: nodeStatus(state.member) === 'unknown' ? 'none' : nodeStatus(state.member),
    Version: state.member?.version ?? '',
    Leader: state.isLeader,
    LastContact: formatDuration(state.lastContactMs * 1e6),
    LastTerm: view.term,
    LastIndex: state.lastIndex,
    Healthy: state.isHealthy,
    Voter: state.server.suffrage === SUFFRAGE.voter,
    // Go's time.Round(time.Second).UTC() in RFC 3339.
    StableSince: new Date(Math.round(state.stableSinceMs / 1000) * 1000).toISOString().replace('.000Z', 'Z'),
  }));
  return { Healthy: cluster.isHealthy, FailureTolerance: cluster.failureTolerance, Servers: servers };
}

/**
 * The autopilot state reply (Consul's Operator.AutopilotState, api.AutopilotState as CE fills
 * it): servers by ID with their Raft status and node meta, the leader, the voters; with no
 * Enterprise features the optimistic failure tolerance is the failure tolerance.
 */
export function operatorState(view: LeaderView, pool: ReadonlyMap<string, PoolServer>, config: AutopilotConfig, tickMs: number, healthySince: ReadonlyMap<string, number>, nowMs: number, nodeMeta: (id: string) => Readonly<Record<string, string>> | undefined): AutopilotStateJson {
  const cluster = clusterState(view, pool, config, tickMs, healthySince, nowMs);
  const servers: Record<string, AutopilotServerJson> = {};
  for (const state of cluster.servers) {
    servers[state.server.id] = {
      ID: state.server.id,
      Name: state.member?.name ?? '',
      Address: state.server.address,
      NodeStatus: nodeStatus(state.member),
      Version: state.member?.version ?? '',
      LastContact: formatDuration(state.lastContactMs * 1e6),
      LastTerm: view.term,
      LastIndex: state.lastIndex,
      Healthy: state.isHealthy,
      StableSince: new Date(state.stableSinceMs).toISOString(),
      ReadReplica: false,
      Status: state.isLeader ? 'leader' : (RAFT_STATUS_NAMES[state.server.suffrage] ?? 'none'),
      Meta: { ...(nodeMeta(state.server.id) ?? {}) },
      NodeType: 'voter',
    };
  }
  return {
    Healthy: cluster.isHealthy,
    FailureTolerance: cluster.failureTolerance,
    OptimisticFailureTolerance: cluster.failureTolerance,
    Servers: servers,
    Leader: view.id,
    Voters: cluster.servers.filter((state) => state.server.suffrage === SUFFRAGE.voter).map((state) => state.server.id),
  };
}

/** raft-autopilot's NodeStatus from the serf member: leaving counts as alive. */
function nodeStatus(member: PoolServer | undefined): string {
  switch (member?.status) {
    case MemberStatus.alive:
    case MemberStatus.leaving:
      return 'alive';
    case MemberStatus.left:
      return 'left';
    case MemberStatus.failed:
      return 'failed';
    default:
      return 'unknown';
  }
}

/** A server's catalog node meta, found by its node ID (Consul's autopilotServerFromMetadata). */
export function nodeMetaById(txn: ReadTxn, id: string): Readonly<Record<string, string>> | undefined {
  return txn.first<NodeRecord>(TABLES.nodes, 'uuid', id)?.Meta;
}

/** The shared settings (AutopilotGetConfiguration). Index: the autopilot-config table. */
export function autopilotConfig(txn: ReadTxn): QueryResult<AutopilotConfigRecord | undefined> {
  return { index: tableIndex(txn, TABLES.autopilot), value: txn.first<AutopilotConfigRecord>(TABLES.autopilot, 'id', 'config') };
}

/**
 * AutopilotSetConfig / AutopilotCASConfig: stores the settings at `index`; with `casIndex` only
 * if the stored ModifyIndex equals it (0: only if none is stored). Returns whether it wrote.
 */
export function setAutopilotConfig(txn: WriteTxn, index: number, input: AutopilotConfigInput, casIndex?: number): boolean {
  const existing = txn.first<AutopilotConfigRecord>(TABLES.autopilot, 'id', 'config');
  if (casIndex !== undefined && (existing?.ModifyIndex ?? 0) !== casIndex) return false;
  txn.insert<AutopilotConfigRecord>(TABLES.autopilot, { ...pickAutopilotInput(input), CreateIndex: existing?.CreateIndex ?? index, ModifyIndex: index });
  bumpTableIndex(txn, TABLES.autopilot, index);
  return true;
}

/** The agent's `autopilot` config block as the settings Raft stores. */
export function autopilotInputFromConfig(config: AutopilotConfig): AutopilotConfigInput {
  return {
    CleanupDeadServers: config.cleanupDeadServers,
    LastContactThreshold: config.lastContactThresholdMs * 1e6,
    MaxTrailingLogs: config.maxTrailingLogs,
    MinQuorum: config.minQuorum,
    ServerStabilizationTime: config.serverStabilizationTimeMs * 1e6,
    RedundancyZoneTag: '',
    DisableUpgradeMigration: false,
    UpgradeVersionTag: '',
  };
}

/** The stored settings as the loop uses them. */
export function configFromAutopilotRecord(record: AutopilotConfigInput): AutopilotConfig {
  return {
    cleanupDeadServers: record.CleanupDeadServers,
    lastContactThresholdMs: record.LastContactThreshold / 1e6,
    maxTrailingLogs: record.MaxTrailingLogs,
    minQuorum: record.MinQuorum,
    serverStabilizationTimeMs: record.ServerStabilizationTime / 1e6,
  };
}

export function autopilotConfigJson(record: AutopilotConfigRecord): AutopilotConfigJson {
  return {
    CleanupDeadServers: record.CleanupDeadServers,
    LastContactThreshold: formatDuration(record.LastContactThreshold),
    MaxTrailingLogs: record.MaxTrailingLogs,
    MinQuorum: record.MinQuorum,
    ServerStabilizationTime: formatDuration(record.ServerStabilizationTime),
    RedundancyZoneTag: record.RedundancyZoneTag,
    DisableUpgradeMigration: record.DisableUpgradeMigration,
    UpgradeVersionTag: record.UpgradeVersionTag,
    CreateIndex: record.CreateIndex,
    ModifyIndex: record.ModifyIndex,
  };
}

/**
 * A PUT body (api.AutopilotConfiguration) as Go's decoder reads it into the struct: missing
 * fields are zero, durations are Go duration strings. Throws with Go's text on a bad field.
 */
export function parseAutopilotConfigBody(body: unknown): AutopilotConfigInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('json: cannot unmarshal non-object into Go value of type api.AutopilotConfiguration');
  const fields = body as Record<string, unknown>;
  const bool = (name: string): boolean => {
    const value = fields[name];
    if (value === undefined || value === null) return false;
    if (typeof value !== 'boolean') throw new Error(`json: cannot unmarshal ${goJsonKind(value)} into Go struct field AutopilotConfiguration.${name} of type bool`);
    return value;
  };
  const uint = (name: string): number => {
    const value = fields[name];
    if (value === undefined || value === null) return 0;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new Error(`json: cannot unmarshal ${goJsonKind(value)} into Go struct field AutopilotConfiguration.${name} of type uint64`);
    return value;
  };
  const text = (name: string): string => {
    const value = fields[name];
    if (value === undefined || value === null) return '';
    if (typeof value !== 'string') throw new Error(`json: cannot unmarshal ${goJsonKind(value)} into Go struct field AutopilotConfiguration.${name} of type string`);
    return value;
  };
  // api.ReadableDuration: a Go duration string, or a bare number of nanoseconds.
  const duration = (name: string): number => {
    const value = fields[name];
    if (value === undefined || value === null) return 0;
    if (typeof value === 'number') return Math.trunc(value);
    if (typeof value !== 'string') throw new Error(`strconv.ParseFloat: parsing ${JSON.stringify(JSON.stringify(value))}: invalid syntax`);
    return parseDuration(value);
  };
  return {
    CleanupDeadServers: bool('CleanupDeadServers'),
    LastContactThreshold: duration('LastContactThreshold'),
    MaxTrailingLogs: uint('MaxTrailingLogs'),
    MinQuorum: uint('MinQuorum'),
    ServerStabilizationTime: duration('ServerStabilizationTime'),
    RedundancyZoneTag: text('RedundancyZoneTag'),
    DisableUpgradeMigration: bool('DisableUpgradeMigration'),
    UpgradeVersionTag: text('UpgradeVersionTag'),
  };
}

function pickAutopilotInput(input: AutopilotConfigInput): AutopilotConfigInput {
  const { CleanupDeadServers, LastContactThreshold, MaxTrailingLogs, MinQuorum, ServerStabilizationTime, RedundancyZoneTag, DisableUpgradeMigration, UpgradeVersionTag } = input;
  return { CleanupDeadServers, LastContactThreshold, MaxTrailingLogs, MinQuorum, ServerStabilizationTime, RedundancyZoneTag, DisableUpgradeMigration, UpgradeVersionTag };
}

/** How encoding/json names a JSON value's kind in an UnmarshalTypeError. */
function goJsonKind(value: unknown): string {
  if (typeof value === 'number') return 'number';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'bool';
  if (Array.isArray(value)) return 'array';
  return 'object';
}

/** Healthy as raft-autopilot judges: alive in the pool, heard from recently, not far behind. */
function isServerHealthy(view: LeaderView, id: string, aliveIds: ReadonlySet<string>, config: AutopilotConfig, tickMs: number): boolean {
  if (!aliveIds.has(id)) return false;
  if (id === view.id) return true;
  const replication = view.progress.find((p) => p.id === id);
  return replication !== undefined && replication.ticksSinceResponse * tickMs <= config.lastContactThresholdMs && view.lastIndex - replication.match <= config.maxTrailingLogs;
}


/**
 * raft-autopilot's pruneDeadServers for failed servers: the node names to force-leave, nonvoters
 * first (always), then voters while fewer than (voters-1)/2 have been chosen in this pass and
 * more than min_quorum voters would remain. `selfId` is never chosen.
 */
export function deadServerCleanup(servers: readonly RaftServer[], pool: ReadonlyMap<string, { readonly name: string; readonly status: number }>, config: AutopilotConfig, selfId: string): string[] {
  if (!config.cleanupDeadServers) return [];
  const chosen: string[] = [];
  const failedName = (server: RaftServer): string | undefined => {
    const member = pool.get(server.id);
    return server.id !== selfId && member?.status === MemberStatus.failed ? member.name : undefined;
  };
  for (const server of servers) {
    const name = server.suffrage !== SUFFRAGE.voter ? failedName(server) : undefined;
    if (name !== undefined) chosen.push(name);
  }
  const voters = servers.filter((server) => server.suffrage === SUFFRAGE.voter);
  let maxRemoval = Math.floor((voters.length - 1) / 2);
  let remaining = voters.length;
  for (const server of voters) {
    const name = failedName(server);
    if (name === undefined) continue;
    if (maxRemoval < 1 || (config.minQuorum > 0 && remaining <= config.minQuorum)) break;
    chosen.push(name);
    maxRemoval--;
    remaining--;
  }
  return chosen;
}

/** The leader's autopilot loop: promotion, then cleanup. */
export class Autopilot {
  private readonly healthySince = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private isBusy = false;

  constructor(private readonly deps: AutopilotDeps) {}

  /** Starts (or restarts, fresh) the loop; call when this server becomes leader. */
  start(): void {
    this.stop();
    this.timer = setInterval(() => void this.runOnce(), this.deps.intervalMs ?? AUTOPILOT_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.healthySince.clear();
  }

  /** /v1/operator/autopilot/health as of now (health is re-judged; stable-since times are the loop's). */
  health(): OperatorHealthJson {
    return operatorHealth(this.deps.status(), this.deps.poolServers(), this.deps.config(), this.deps.tickMs, this.healthySince, this.deps.nowMs());
  }

  /** /v1/operator/autopilot/state as of now; `nodeMeta` finds a server's catalog node meta by node ID. */
  state(nodeMeta: (id: string) => Readonly<Record<string, string>> | undefined): AutopilotStateJson {
    return operatorState(this.deps.status(), this.deps.poolServers(), this.deps.config(), this.deps.tickMs, this.healthySince, this.deps.nowMs(), nodeMeta);
  }

  /**
   * One look: promotes the first stable nonvoter, or else cleans up dead servers (configuration
   * changes go one at a time).
   */
  async runOnce(): Promise<void> {
    if (this.isBusy || !this.deps.isLeader()) return;
    this.isBusy = true;
    try {
      const view = this.deps.status();
      const pool = this.deps.poolServers();
      const aliveIds = new Set([...pool].filter(([, member]) => member.status === MemberStatus.alive).map(([id]) => id));
      const config = this.deps.config();
      const due = promotionsDue(view, aliveIds, config, this.deps.tickMs, this.healthySince, this.deps.nowMs());
      const id = due[0];
      if (id !== undefined) {
        this.deps.logger.info('Promoting server', { id });
        await this.deps.promote(id);
        this.healthySince.delete(id);
        return;
      }
      for (const name of deadServerCleanup(view.configuration.servers, pool, config, this.deps.selfId)) {
        this.deps.logger.info('Attempting removal of failed server node', { name });
        this.deps.forceLeave(name);
      }
    } catch (error) {
      this.deps.logger.error('autopilot failed', { error: error instanceof Error ? error.message : String(error) });
    } finally {
      this.isBusy = false;
    }
  }
}
