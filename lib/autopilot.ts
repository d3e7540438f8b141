// Autopilot's server promotion: a server the leader added as a nonvoter (lib/leader.ts, when it
// joined the LAN pool) becomes a voter once it has been healthy for server_stabilization_time,
// so a new server counts towards quorum only after it has caught up and stayed reachable.
//
// Healthy, as raft-autopilot judges a server: alive in the LAN pool, heard from within
// last_contact_threshold (the leader's replication to it answered), and no more than
// max_trailing_logs entries behind the leader's last index. The decision is a pure function
// (promotionsDue) over the leader's Raft status; Autopilot is the timer around it, running only
// while this server leads.
//
// Not here (issue 9): dead-server cleanup and min_quorum, server health and state in
// /v1/operator/autopilot/health and /state, /configuration, redundancy zones and upgrade
// migrations (Enterprise).
//
// Invariants: only nonvoters present in the latest configuration are promoted, one change at a
// time; a server's stable-since time is dropped the moment it is unhealthy; nothing is done by a
// follower or after stop().
//
// Reference: hashicorp/raft-autopilot (autopilot.go, reconcile.go: promoteStableServers,
// stable_server_promoter; state.go: server health), Consul agent/consul/autopilot.go.

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
  readonly promote: (id: string) => Promise<void>;
  readonly nowMs: () => number;
  readonly logger: Logger;
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

/** The leader's promotion loop. */
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

  /** One look: promotes the first stable nonvoter (configuration changes go one at a time). */
  async runOnce(): Promise<void> {
    if (this.isBusy || !this.deps.isLeader()) return;
    this.isBusy = true;
    try {
      const due = promotionsDue(this.deps.status(), this.deps.aliveServerIds(), this.deps.config, this.deps.tickMs, this.healthySince, this.deps.nowMs());
      const id = due[0];
      if (id === undefined) return;
      this.deps.logger.info('Promoting server', { id });
      await this.deps.promote(id);
      this.healthySince.delete(id);
    } catch (error) {
      this.deps.logger.error('failed to promote server', { error: error instanceof Error ? error.message : String(error) });
    } finally {
      this.isBusy = false;
    }
  }
}
