// The leader's registration of its own server in the catalog.
//
// In Consul every server's gossip member is reconciled by the leader (leader.go reconcile ->
// handleAliveMember): the node is registered with the `serfHealth` check passing ("Serf Health
// Status", "Agent alive and reachable") and, for servers, the `consul` service whose Meta carries
// the Raft and Serf protocol versions. The node's tagged addresses and meta come from the server's
// own agent (anti-entropy); until that exists, this module writes them too, from the same
// configuration the agent would use, so the catalog shows what Consul's does.
//
// LeaderRegistration reads the catalog first and proposes one register command only when
// something differs, so a reconcile that finds everything in place writes nothing to Raft and
// moves no index. It runs when this server becomes leader (leadershipChanged), then every
// reconcile interval (Consul's reconcile_interval, 60 s), and after a failure retries with
// exponential back-off. Only the leader writes; a follower's timer does nothing.
//
// Not here: reconciling other members (needs gossip), failed/left/reaped members, autopilot.
//
// Invariants: at most one reconcile runs at a time; every timer callback carries the epoch it
// was scheduled in and does nothing once the epoch moved on (stop, leadership change).
//
// Reference: Consul agent/consul/leader.go (reconcile, reconcileMember, handleAliveMember),
// agent/metadata/server.go (IsConsulServer), agent/structs/structs.go (SerfCheckID,
// SerfCheckName, SerfCheckAliveOutput, ConsulServiceID, ConsulServiceName); spec §3.2, §5.3.

import { isDeepStrictEqual } from 'node:util';
import * as catalog from './catalog.js';
import type { HealthCheckInput, NodeServiceInput, RegisterRequest } from './catalog.js';
import type { ApplyResult, Command } from './fsm.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { ReadTxn } from './memdb.js';
import type { CheckRecord, NodeRecord, ServiceRecord } from './schema.js';
import { SERF_CHECK_ID } from './sessions.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** Timers, injected so tests drive time by hand. */
export interface Timers {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The gossip member facts the registration is derived from (serf.Member's relevant half). */
export interface ServerMember {
  readonly Name: string;
  readonly Addr: string;
  readonly Tags: Readonly<Record<string, string>>;
  readonly ProtocolMin: number;
  readonly ProtocolMax: number;
  readonly ProtocolCur: number;
}

/** What the registration needs besides the member. */
export interface SelfRegistrationInput {
  readonly datacenter: string;
  readonly nodeId: string;
  readonly member: ServerMember;
  /** lan, wan and their _ipv4/_ipv6 forms (lib/endpoints_agent.ts nodeTaggedAddresses). */
  readonly taggedAddresses: Readonly<Record<string, string>>;
  /** lib/agent.ts nodeMeta(config). */
  readonly nodeMeta: Readonly<Record<string, string>>;
}

export interface LeaderRegistrationDeps {
  readonly isLeader: () => boolean;
  /** Runs a read on the server's state store (StateStore.read fits). */
  readonly read: <T>(query: (txn: ReadTxn) => { index: number; value: T }) => { index: number; value: T };
  /** Proposes a command through Raft (Agent.applyCommand fits); rejects when not leader. */
  readonly apply: (command: Command) => Promise<ApplyResult>;
  /** The registration this server should have, recomputed at every run. */
  readonly desired: () => RegisterRequest;
  readonly timers: Timers;
  readonly nowMs: () => number;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly reconcileIntervalMs?: number;
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
}

/** What one reconcile did. */
export type ReconcileOutcome = 'not-leader' | 'in-sync' | 'written' | 'failed';

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** Consul's reconcile_interval default. */
export const RECONCILE_INTERVAL_MS = 60_000;
/** First retry after a failed write, doubled per failure up to RECONCILE_RETRY_MAX_MS. */
export const RECONCILE_RETRY_BASE_MS = 1_000;
export const RECONCILE_RETRY_MAX_MS = 30_000;

/** structs.SerfCheckID / SerfCheckName / SerfCheckAliveOutput. */
export const SERF_CHECK_NAME = 'Serf Health Status';
export const SERF_CHECK_ALIVE_OUTPUT = 'Agent alive and reachable';
/** structs.ConsulServiceID / ConsulServiceName. */
export const CONSUL_SERVICE_ID = 'consul';
export const CONSUL_SERVICE_NAME = 'consul';

// ---------------------------------------------------------------------------------------------
// Exported API

/**
 * The register request Consul's leader makes for a live server member: node, passing serfHealth,
 * and the `consul` service (omitted when the tags do not describe a server, as IsConsulServer).
 */
export function selfRegistration(input: SelfRegistrationInput): RegisterRequest {
  const { member } = input;
  const service = consulService(member);
  const check: HealthCheckInput = { Node: member.Name, CheckID: SERF_CHECK_ID, Name: SERF_CHECK_NAME, Status: 'passing', Output: SERF_CHECK_ALIVE_OUTPUT };
  return {
    Datacenter: input.datacenter,
    ID: input.nodeId,
    Node: member.Name,
    Address: member.Addr,
    TaggedAddresses: input.taggedAddresses,
    NodeMeta: input.nodeMeta,
    ...(service ? { Service: service } : {}),
    Check: check,
  };
}

/** The `consul` service for a server member, with handleAliveMember's Meta; undefined for non-servers. */
export function consulService(member: ServerMember): NodeServiceInput | undefined {
  const tags = member.Tags;
  if (tags['role'] !== 'consul') return undefined;
  const port = Number.parseInt(tags['port'] ?? '', 10);
  if (!Number.isInteger(port)) return undefined;
  const meta: Record<string, string> = {
    non_voter: String(tags['nonvoter'] === '1'),
    raft_version: String(Number.parseInt(tags['raft_vsn'] ?? '0', 10) || 0),
    read_replica: String(tags['read_replica'] === '1'),
    serf_protocol_current: String(member.ProtocolCur),
    serf_protocol_max: String(member.ProtocolMax),
    serf_protocol_min: String(member.ProtocolMin),
    version: buildVersion(tags['build'] ?? ''),
  };
  const grpcPort = Number.parseInt(tags['grpc_port'] ?? '', 10);
  const grpcTlsPort = Number.parseInt(tags['grpc_tls_port'] ?? '', 10);
  if (grpcPort > 0) meta['grpc_port'] = String(grpcPort);
  if (grpcTlsPort > 0) meta['grpc_tls_port'] = String(grpcTlsPort);
  return { ID: CONSUL_SERVICE_ID, Service: CONSUL_SERVICE_NAME, Port: port, Weights: { Passing: 1, Warning: 1 }, Meta: sortedRecord(meta) };
}

/**
 * Whether the catalog already holds `desired` exactly: the node's ID, address, tagged addresses
 * and meta, the service's identity, port, address, tags and meta, and the check passing with its
 * name and output. Indexes and fields the request does not set are not compared.
 */
export function isRegistrationInSync(txn: ReadTxn, desired: RegisterRequest): boolean {
  const node = catalog.getNode(txn, desired.Node).value;
  if (!node || !isNodeInSync(node, desired)) return false;
  if (desired.Service) {
    const serviceId = desired.Service.ID ?? desired.Service.Service ?? '';
    const service = catalog.nodeService(txn, desired.Node, serviceId).value;
    if (!service || !isServiceInSync(service, desired.Service)) return false;
  }
  for (const check of [...(desired.Check ? [desired.Check] : []), ...(desired.Checks ?? [])]) {
    const checkId = check.CheckID ?? check.Name ?? '';
    const stored = catalog.nodeCheck(txn, desired.Node, checkId).value;
    if (!stored || !isCheckInSync(stored, check)) return false;
  }
  return true;
}

/** Keeps this server's own registration in the catalog while it is the leader. */
export class LeaderRegistration {
  private readonly reconcileIntervalMs: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  /** Invariant: bumped whenever pending timers must be ignored (stop, new leadership). */
  private epoch = 0;
  private timer: unknown;
  private failures = 0;
  private isRunning = false;
  private isRerunWanted = false;
  private isStopped = false;

  constructor(private readonly deps: LeaderRegistrationDeps) {
    this.reconcileIntervalMs = deps.reconcileIntervalMs ?? RECONCILE_INTERVAL_MS;
    this.retryBaseMs = deps.retryBaseMs ?? RECONCILE_RETRY_BASE_MS;
    this.retryMaxMs = deps.retryMaxMs ?? RECONCILE_RETRY_MAX_MS;
  }

  /** Starts the reconcile loop: a run now, then one per reconcile interval. */
  start(): void {
    this.isStopped = false;
    this.kick();
  }

  /**
   * Tells the loop that leadership changed. Becoming leader reconciles at once (Consul's
   * establishLeadership path) with the back-off reset; losing it cancels pending retries.
   */
  leadershipChanged(isLeader: boolean): void {
    if (this.isStopped) return;
    this.failures = 0;
    if (isLeader) this.kick();
    else this.schedule(this.reconcileIntervalMs);
  }

  /** Stops every timer; a run in flight finishes but schedules nothing. Safe to call twice. */
  stop(): void {
    this.isStopped = true;
    this.epoch += 1;
    if (this.timer !== undefined) this.deps.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * One reconcile: compares the catalog with the desired registration and proposes a register
   * command if they differ. Never throws; failures are logged and reported as 'failed'.
   */
  async reconcileOnce(): Promise<ReconcileOutcome> {
    if (!this.deps.isLeader()) return 'not-leader';
    const startMs = this.deps.nowMs();
    try {
      const desired = this.deps.desired();
      if (this.deps.read((txn) => ({ index: 0, value: isRegistrationInSync(txn, desired) })).value) return 'in-sync';
      this.deps.logger.info('member joined, marking health alive', { member: desired.Node });
      const result = await this.deps.apply({ type: 'register', request: desired });
      if (!result.ok) {
        this.deps.logger.error('failed to reconcile member', { member: desired.Node, error: result.error.message });
        return 'failed';
      }
      return 'written';
    } catch (error) {
      this.deps.logger.error('failed to reconcile member', { error: error instanceof Error ? error.message : String(error) });
      return 'failed';
    } finally {
      this.deps.metrics?.measureSince(['leader', 'reconcileMember'], startMs);
    }
  }

  /** Runs now, unless a run is in flight, in which case one more run follows it. */
  private kick(): void {
    this.epoch += 1;
    if (this.timer !== undefined) this.deps.timers.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.isRunning) {
      this.isRerunWanted = true;
      return;
    }
    void this.run();
  }

  private async run(): Promise<void> {
    this.isRunning = true;
    let outcome: ReconcileOutcome;
    do {
      this.isRerunWanted = false;
      outcome = await this.reconcileOnce();
    } while (this.isRerunWanted && !this.isStopped);
    this.isRunning = false;
    if (this.isStopped) return;
    if (outcome === 'failed') {
      this.failures += 1;
      this.schedule(Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.min(this.failures - 1, 30)));
    } else {
      this.failures = 0;
      this.schedule(this.reconcileIntervalMs);
    }
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined) this.deps.timers.clearTimeout(this.timer);
    const epoch = ++this.epoch;
    this.timer = this.deps.timers.setTimeout(() => {
      if (epoch !== this.epoch || this.isStopped) return;
      this.timer = undefined;
      void this.run();
    }, delayMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

function isNodeInSync(node: NodeRecord, desired: RegisterRequest): boolean {
  return (
    node.Node === desired.Node &&
    (desired.ID === undefined || node.ID === desired.ID) &&
    (desired.Address === undefined || node.Address === desired.Address) &&
    (desired.TaggedAddresses === undefined || isDeepStrictEqual({ ...node.TaggedAddresses }, { ...desired.TaggedAddresses })) &&
    (desired.NodeMeta === undefined || isDeepStrictEqual({ ...node.Meta }, { ...desired.NodeMeta }))
  );
}

function isServiceInSync(service: ServiceRecord, desired: NodeServiceInput): boolean {
  return (
    service.Service === (desired.Service ?? '') &&
    service.Port === (desired.Port ?? 0) &&
    service.Address === (desired.Address ?? '') &&
    isDeepStrictEqual([...service.Tags], [...(desired.Tags ?? [])]) &&
    isDeepStrictEqual({ ...service.Meta }, { ...(desired.Meta ?? {}) }) &&
    (desired.Weights === undefined || isDeepStrictEqual({ ...service.Weights }, { ...desired.Weights }))
  );
}

function isCheckInSync(check: CheckRecord, desired: HealthCheckInput): boolean {
  return (
    check.Status === desired.Status &&
    check.Name === (desired.Name ?? '') &&
    check.Output === (desired.Output ?? '') &&
    check.ServiceID === (desired.ServiceID ?? '')
  );
}

/** metadata.Build: the first `x.y.z` in the build tag, as go-version prints it. */
function buildVersion(build: string): string {
  return /\d+\.\d+\.\d+/.exec(build)?.[0] ?? '';
}

function sortedRecord(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
