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
// Not here (issue 9): server health and state in /v1/operator/autopilot/health and /state,
// /configuration (the settings come from the agent's config, not from Raft), redundancy zones
// and upgrade migrations (Enterprise).
//
// Invariants: only nonvoters present in the latest configuration are promoted, one change at a
// time; a server's stable-since time is dropped the moment it is unhealthy; nothing is done by a
// follower or after stop().
//
// Reference: hashicorp/raft-autopilot (autopilot.go, reconcile.go: promoteStableServers,
// pruneDeadServers; stable_server_promoter; state.go: server health), Consul
// agent/consul/autopilot.go (RemoveFailedServer: a force-leave).

import type { AutopilotConfig } from './config.js';
import type { Logger } from './log.js';
import type { RaftServer } from './snapshot.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** What promotion needs of the leader's Raft status (lib/raft.ts RaftStatus fits). */
export interface LeaderView {
  readonly lastIndex: number;
  readonly configuration: { readonly servers: readonly RaftServer[] };
  /** Replication to each other server: its match index and ticks since it last answered. */
  readonly progress: readonly { readonly id: string; readonly match: number; readonly ticksSinceResponse: number }[];
}

export interface AutopilotDeps {
  readonly config: AutopilotConfig;
  readonly isLeader: () => boolean;
  readonly status: () => LeaderView;
  /** Milliseconds per Raft tick (ticksSinceResponse × tickMs = time since last contact). */
  readonly tickMs: number;
  /** IDs (the `id` tag) of the servers alive in the LAN pool. */
  readonly aliveServerIds: () => ReadonlySet<string>;
  /** The LAN pool's servers by ID: node name and serf status (1 alive, 3 left, 4 failed). */
  readonly poolServers: () => ReadonlyMap<string, { readonly name: string; readonly status: number }>;
  readonly promote: (id: string) => Promise<void>;
  /** serf force-leave of a failed server (its leave then reaches the leader's reconcile). */
  readonly forceLeave: (name: string) => void;
  readonly nowMs: () => number;
  readonly logger: Logger;
  /** This server's ID: never cleaned up. */
  readonly selfId: string;
  readonly intervalMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** How often the leader looks at its servers (raft-autopilot's update interval). */
export const AUTOPILOT_INTERVAL_MS = 2_000;
const NONVOTER = 1;

// ---------------------------------------------------------------------------------------------
// Exported API

/**
 * Updates `healthySince` (server ID → when it became healthy, for nonvoters only) from the
 * leader's view and returns the nonvoters stable long enough to become voters.
 */
export function promotionsDue(view: LeaderView, aliveIds: ReadonlySet<string>, config: AutopilotConfig, tickMs: number, healthySince: Map<string, number>, nowMs: number): string[] {
  const progress = new Map(view.progress.map((p) => [p.id, p]));
  const nonvoters = view.configuration.servers.filter((server) => server.suffrage === NONVOTER);
  const due: string[] = [];
  for (const id of [...healthySince.keys()]) if (!nonvoters.some((server) => server.id === id)) healthySince.delete(id);
  for (const server of nonvoters) {
    const replication = progress.get(server.id);
    const isHealthy =
      aliveIds.has(server.id) &&
      replication !== undefined &&
      replication.ticksSinceResponse * tickMs <= config.lastContactThresholdMs &&
      view.lastIndex - replication.match <= config.maxTrailingLogs;
    if (!isHealthy) {
      healthySince.delete(server.id);
      continue;
    }
    const since = healthySince.get(server.id) ?? nowMs;
    healthySince.set(server.id, since);
    if (nowMs - since >= config.serverStabilizationTimeMs) due.push(server.id);
  }
  return due.sort();
}

const SERF_FAILED = 4;

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
    return server.id !== selfId && member?.status === SERF_FAILED ? member.name : undefined;
  };
  for (const server of servers) {
    const name = server.suffrage !== 0 ? failedName(server) : undefined;
    if (name !== undefined) chosen.push(name);
  }
  const voters = servers.filter((server) => server.suffrage === 0);
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

  /**
   * One look: promotes the first stable nonvoter, or else cleans up dead servers (configuration
   * changes go one at a time).
   */
  async runOnce(): Promise<void> {
    if (this.isBusy || !this.deps.isLeader()) return;
    this.isBusy = true;
    try {
      const view = this.deps.status();
      const due = promotionsDue(view, this.deps.aliveServerIds(), this.deps.config, this.deps.tickMs, this.healthySince, this.deps.nowMs());
      const id = due[0];
      if (id !== undefined) {
        this.deps.logger.info('Promoting server', { id });
        await this.deps.promote(id);
        this.healthySince.delete(id);
        return;
      }
      for (const name of deadServerCleanup(view.configuration.servers, this.deps.poolServers(), this.deps.config, this.deps.selfId)) {
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
