// The leader's reconciliation of the LAN gossip pool into the catalog (Consul leader.go
// reconcile, reconcileMember, reconcileReaped).
//
// Every member of our datacenter (clients with role `node`, servers with role `consul`) gets a
// catalog node with the `serfHealth` check: alive members are registered with it passing ("Agent
// alive and reachable") and, for servers, the `consul` service whose Meta carries the Raft and
// Serf protocol versions; failed members already in the catalog get it critical ("Agent not live
// or unreachable"); members that left, and catalog nodes carrying `serfHealth` whom the pool no
// longer knows (reaped, or gone while we were not leader), are deregistered. Registrations of
// other members use SkipNodeUpdate, as Consul's do: the node's own agent owns its address, tagged
// addresses and meta. This server's own registration writes those too (from the same
// configuration its agent uses), so the catalog shows what Consul's does from the first moment.
//
// LeaderReconciler compares before it writes, so a reconcile that finds everything in place
// proposes nothing and moves no index. A full reconcile runs when this server becomes leader,
// then every reconcile interval (Consul's reconcile_interval, 60 s); a member event reconciles
// that member at once (Consul's reconcileCh). A failed write is retried with exponential
// back-off. Only the leader writes.
//
// The same pass keeps Raft in step with the pool's servers (raftChanges: joinConsulServer,
// removeConsulServer): alive servers missing from the configuration are added as nonvoters
// (lib/autopilot.ts promotes them), servers that left are removed.
//
// Not here: the leader does not deregister itself (a successor does, as in Consul).
//
// Invariants: at most one reconcile runs at a time; every timer callback carries the epoch it
// was scheduled in and does nothing once the epoch moved on (stop, leadership change).
//
// Reference: Consul agent/consul/leader.go (reconcile, reconcileReaped, reconcileMember,
// shouldHandleMember, handleAliveMember, handleFailedMember, handleDeregisterMember),
// agent/metadata/server.go (IsConsulServer), agent/structs/structs.go (SerfCheckID,
// SerfCheckName, SerfCheckAliveOutput, SerfCheckFailedOutput, ConsulServiceID,
// ConsulServiceName); spec §3.2, §5.3.

import { isDeepStrictEqual } from 'node:util';
import * as catalog from './catalog.js';
import type { HealthCheckInput, NodeServiceInput, RegisterRequest } from './catalog.js';
import type { ApplyResult, Command } from './fsm.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { ReadTxn } from './memdb.js';
import type { CheckRecord, NodeRecord, ServiceRecord } from './schema.js';
import type { RaftServer } from './snapshot.js';
import { MemberStatus } from './serfwire.js';
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

/** A LAN member as the reconcile sees it (/v1/agent/members' shape fits). */
export interface GossipMember extends ServerMember {
  /** serf.MemberStatus: 1 alive, 2 leaving, 3 left, 4 failed. */
  readonly Status: number;
}

/** The Raft configuration as the reconcile changes it (lib/raftnode.ts RaftNode fits through a thin adapter). */
export interface RaftMembership {
  /** The latest configuration's servers. */
  servers(): readonly RaftServer[];
  /** hashicorp AddNonvoter: autopilot promotes it once it is stable (lib/autopilot.ts). */
  addNonvoter(id: string, address: string): Promise<void>;
  removeServer(id: string): Promise<void>;
}

/** One change to the Raft configuration the reconcile wants (joinConsulServer, removeConsulServer). */
export type RaftChange = { readonly op: 'addNonvoter'; readonly id: string; readonly address: string } | { readonly op: 'removeServer'; readonly id: string; readonly why: string };

export interface LeaderReconcilerDeps {
  readonly isLeader: () => boolean;
  readonly datacenter: string;
  /** This server's node name: its registration comes from `desiredSelf`, and it never deregisters itself. */
  readonly selfName: string;
  /** The LAN pool's members now, this server included; undefined until gossip runs (then only this server is reconciled, and nothing is reaped). */
  readonly members: () => readonly GossipMember[] | undefined;
  /** Runs a read on the server's state store (StateStore.read fits). */
  readonly read: <T>(query: (txn: ReadTxn) => { index: number; value: T }) => { index: number; value: T };
  /** Proposes a command through Raft (Agent.applyCommand fits); rejects when not leader. */
  readonly apply: (command: Command) => Promise<ApplyResult>;
  /** The registration this server should have, recomputed at every run. */
  readonly desiredSelf: () => RegisterRequest;
  /** Servers that join are added to Raft, servers that leave removed; absent: the catalog only. */
  readonly raft?: RaftMembership;
  readonly timers: Timers;
  readonly nowMs: () => number;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly reconcileIntervalMs?: number;
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
}

/** What one reconcile did (`failed` if any write failed, else `written` if any was made). */
export type ReconcileOutcome = 'not-leader' | 'in-sync' | 'written' | 'failed';

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** Consul's reconcile_interval default. */
export const RECONCILE_INTERVAL_MS = 60_000;
/** First retry after a failed write, doubled per failure up to RECONCILE_RETRY_MAX_MS. */
export const RECONCILE_RETRY_BASE_MS = 1_000;
export const RECONCILE_RETRY_MAX_MS = 30_000;
/** Member events remembered between runs; past this a full reconcile is run instead. */
export const RECONCILE_CHANGED_MAX = 4096;

/** structs.SerfCheckID / SerfCheckName / SerfCheckAliveOutput. */
export const SERF_CHECK_NAME = 'Serf Health Status';
export const SERF_CHECK_ALIVE_OUTPUT = 'Agent alive and reachable';
export const SERF_CHECK_FAILED_OUTPUT = 'Agent not live or unreachable';
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

/**
 * Consul's shouldHandleMember: clients (role `node`) and servers (role `consul`, default
 * segment) of our datacenter. Other pool members (plain serf agents, other datacenters) are left
 * out of the catalog.
 */
export function isMemberOfDatacenter(member: ServerMember, datacenter: string): boolean {
  const tags = member.Tags;
  if (tags['dc'] !== datacenter) return false;
  if (tags['role'] === 'node') return true;
  return consulService(member) !== undefined && (tags['segment'] ?? '') === '';
}

/**
 * The command that brings one member's catalog entry in line (reconcileMember), or null when it
 * is in line or the member is none of the catalog's business. `self` is this server's desired
 * registration when `member` is this server.
 */
export function memberCommand(txn: ReadTxn, member: GossipMember, input: { readonly datacenter: string; readonly selfName: string; readonly desiredSelf: () => RegisterRequest }): Command | null {
  if (!isMemberOfDatacenter(member, input.datacenter)) return null;
  const isSelf = member.Name === input.selfName;
  switch (member.Status) {
    case MemberStatus.alive: {
      if (isSelf) {
        const desired = input.desiredSelf();
        return isRegistrationInSync(txn, desired) ? null : { type: 'register', request: desired };
      }
      return isAliveInSync(txn, member) ? null : { type: 'register', request: memberRegistration(member, input.datacenter, 'passing') };
    }
    case MemberStatus.failed: {
      const node = catalog.getNode(txn, member.Name).value;
      // handleFailedMember: a member the catalog never had stays out of it.
      if (!node) return null;
      const check = catalog.nodeCheck(txn, member.Name, SERF_CHECK_ID).value;
      if (node.Address === member.Addr && check?.Status === 'critical') return null;
      return { type: 'register', request: memberRegistration(member, input.datacenter, 'critical') };
    }
    case MemberStatus.left:
      return deregistration(txn, member.Name, input);
    default:
      return null;
  }
}

/**
 * The Raft changes a server member calls for (Consul's joinConsulServer and removeConsulServer):
 * an alive server missing from the configuration is added as a nonvoter, after removing any
 * entry holding its address or its ID; one that left is removed. Nothing for clients, other
 * datacenters, failed servers (autopilot's dead-server cleanup decides those), or this server
 * while the configuration has fewer than three servers (fixing our own entry would make us step
 * down). Two alive servers in bootstrap mode: nothing is added, as in Consul.
 */
export function raftChanges(member: GossipMember, servers: readonly RaftServer[], pool: readonly GossipMember[], input: { readonly datacenter: string; readonly selfName: string }): RaftChange[] {
  if (!isMemberOfDatacenter(member, input.datacenter) || consulService(member) === undefined) return [];
  const id = member.Tags['id'] ?? '';
  const address = `${member.Addr}:${member.Tags['port'] ?? ''}`;
  if (id === '') return [];
  if (member.Status === MemberStatus.left) {
    if (member.Name === input.selfName) return [];
    return servers.some((server) => server.id === id) ? [{ op: 'removeServer', id, why: 'left' }] : [];
  }
  if (member.Status !== MemberStatus.alive) return [];
  if (member.Name === input.selfName && servers.length < 3) return [];
  if (member.Tags['bootstrap'] !== undefined && pool.some((other) => other.Name !== member.Name && other.Status === MemberStatus.alive && other.Tags['bootstrap'] !== undefined && consulService(other) !== undefined)) return [];
  if (servers.some((server) => server.id === id && server.address === address)) return [];
  const changes: RaftChange[] = [];
  for (const server of servers) {
    if (server.address === address) changes.push({ op: 'removeServer', id: server.id, why: 'duplicate address' });
    else if (server.id === id) changes.push({ op: 'removeServer', id: server.id, why: 'duplicate ID' });
  }
  changes.push({ op: 'addNonvoter', id, address });
  return changes;
}

/**
 * reconcileReaped: catalog nodes carrying `serfHealth` that the pool no longer knows (reaped, or
 * gone while we were not the leader) are deregistered; never this server.
 */
export function reapedCommands(txn: ReadTxn, knownNames: ReadonlySet<string>, input: { readonly datacenter: string; readonly selfName: string }): Command[] {
  const names = new Set<string>();
  for (const check of catalog.checksInState(txn, 'any').value) {
    if (check.CheckID === SERF_CHECK_ID && !knownNames.has(check.Node)) names.add(check.Node);
  }
  const commands: Command[] = [];
  for (const name of [...names].sort()) {
    const command = deregistration(txn, name, input);
    if (command) commands.push(command);
  }
  return commands;
}

/** Keeps the catalog in line with the LAN pool while this server is the leader. */
export class LeaderReconciler {
  private readonly reconcileIntervalMs: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  /** Invariant: bumped whenever pending timers must be ignored (stop, new leadership). */
  private epoch = 0;
  private timer: unknown;
  private failures = 0;
  private isRunning = false;
  /** A full reconcile is wanted after the run in flight (or next). */
  private isFullRunWanted = false;
  /** Members whose events arrived since the last run; reconciled alone when no full run is due. */
  private readonly changedMembers = new Set<string>();
  private isStopped = false;

  constructor(private readonly deps: LeaderReconcilerDeps) {
    this.reconcileIntervalMs = deps.reconcileIntervalMs ?? RECONCILE_INTERVAL_MS;
    this.retryBaseMs = deps.retryBaseMs ?? RECONCILE_RETRY_BASE_MS;
    this.retryMaxMs = deps.retryMaxMs ?? RECONCILE_RETRY_MAX_MS;
  }

  /** Starts the reconcile loop: a full run now, then one per reconcile interval. */
  start(): void {
    this.isStopped = false;
    this.kick(true);
  }

  /**
   * Tells the loop that leadership changed. Becoming leader reconciles at once (Consul's
   * establishLeadership path) with the back-off reset; losing it cancels pending retries.
   */
  leadershipChanged(isLeader: boolean): void {
    if (this.isStopped) return;
    this.failures = 0;
    if (isLeader) this.kick(true);
    else this.schedule(this.reconcileIntervalMs);
  }

  /** The pool as a whole changed (gossip started): a full reconcile now if leader. */
  poolChanged(): void {
    if (this.isStopped || !this.deps.isLeader()) return;
    this.kick(true);
  }

  /** A gossip event about `name` (join, update, failed, left, reaped): reconcile it now if leader. */
  memberChanged(name: string): void {
    if (this.isStopped || !this.deps.isLeader()) return;
    if (this.changedMembers.size < RECONCILE_CHANGED_MAX) this.changedMembers.add(name);
    else this.isFullRunWanted = true;
    this.kick(false);
  }

  /** Stops every timer; a run in flight finishes but schedules nothing. Safe to call twice. */
  stop(): void {
    this.isStopped = true;
    this.epoch += 1;
    if (this.timer !== undefined) this.deps.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * One full reconcile: every member of the pool, then the reaped. Never throws; failures are
   * logged and reported as 'failed' (the other members are still reconciled).
   */
  reconcileOnce(): Promise<ReconcileOutcome> {
    return this.reconcile(null);
  }

  /** Reconciles `only` those members (null: all, and the reaped). */
  private async reconcile(only: ReadonlySet<string> | null): Promise<ReconcileOutcome> {
    if (!this.deps.isLeader()) return 'not-leader';
    const { datacenter, selfName, desiredSelf } = this.deps;
    const input = { datacenter, selfName, desiredSelf };
    let commands: Command[];
    let changes: RaftChange[] = [];
    try {
      const members = this.deps.members();
      const raft = this.deps.raft;
      if (raft !== undefined && members !== undefined) {
        const servers = raft.servers();
        for (const member of members) if (only === null || only.has(member.Name)) changes.push(...raftChanges(member, servers, members, input));
      }
      const byName = new Map((members ?? []).map((member) => [member.Name, member]));
      commands = this.deps.read((txn) => {
        if (members === undefined) {
          const desired = desiredSelf();
          return { index: 0, value: isRegistrationInSync(txn, desired) ? [] : [{ type: 'register', request: desired } as const] };
        }
        const planned: Command[] = [];
        for (const member of members) {
          if (only !== null && !only.has(member.Name)) continue;
          const command = memberCommand(txn, member, input);
          if (command) planned.push(command);
        }
        if (only === null) planned.push(...reapedCommands(txn, new Set(byName.keys()), input));
        else for (const name of only) if (!byName.has(name)) {
          // An event for a member the pool no longer has: it was reaped (handleReapMember).
          const command = deregistration(txn, name, input);
          if (command) planned.push(command);
        }
        return { index: 0, value: planned };
      }).value;
    } catch (error) {
      this.deps.logger.error('failed to reconcile', { error: error instanceof Error ? error.message : String(error) });
      return 'failed';
    }
    if (commands.length === 0 && changes.length === 0) return 'in-sync';
    let outcome: ReconcileOutcome = 'written';
    for (const command of commands) if (!(await this.write(command))) outcome = 'failed';
    for (const change of changes) if (!(await this.changeRaft(change))) outcome = 'failed';
    return outcome;
  }

  /** Applies one Raft configuration change; false (logged) when it failed. */
  private async changeRaft(change: RaftChange): Promise<boolean> {
    const raft = this.deps.raft;
    if (raft === undefined) return true;
    try {
      if (change.op === 'addNonvoter') {
        this.deps.logger.info('adding server as a nonvoter', { id: change.id, address: change.address });
        await raft.addNonvoter(change.id, change.address);
      } else {
        this.deps.logger.info('removing server', { id: change.id, reason: change.why });
        await raft.removeServer(change.id);
      }
      return true;
    } catch (error) {
      this.deps.logger.error('failed to change the Raft configuration', { op: change.op, id: change.id, error: error instanceof Error ? error.message : String(error) });
      return false;
    }
  }

  /** Proposes one reconcile command; false (logged) when it failed. */
  private async write(command: Command): Promise<boolean> {
    const startMs = this.deps.nowMs();
    const member = command.type === 'register' || command.type === 'deregister' ? command.request.Node : '';
    try {
      if (command.type === 'deregister') this.deps.logger.info('deregistering member', { member, reason: 'left' });
      else if (command.type === 'register' && command.request.Check?.Status === 'critical') this.deps.logger.info('member failed, marking health critical', { member });
      else this.deps.logger.info('member joined, marking health alive', { member });
      const result = await this.deps.apply(command);
      if (result.ok) return true;
      this.deps.logger.error('failed to reconcile member', { member, error: result.error.message });
      return false;
    } catch (error) {
      this.deps.logger.error('failed to reconcile member', { member, error: error instanceof Error ? error.message : String(error) });
      return false;
    } finally {
      this.deps.metrics?.measureSince(['leader', 'reconcileMember'], startMs);
    }
  }

  /**
   * Runs now, unless a run is in flight, which then goes on with this work. A full run replaces
   * the pending timer (the interval restarts after it); a member's run leaves it be.
   */
  private kick(isFull: boolean): void {
    if (isFull) {
      this.isFullRunWanted = true;
      this.epoch += 1;
      if (this.timer !== undefined) this.deps.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (!this.isRunning) void this.run();
  }

  private async run(): Promise<void> {
    this.isRunning = true;
    let lastFullOutcome: ReconcileOutcome | null = null;
    let isFailed = false;
    while (!this.isStopped && (this.isFullRunWanted || this.changedMembers.size > 0)) {
      const isFull = this.isFullRunWanted;
      const only = isFull ? null : new Set(this.changedMembers);
      this.isFullRunWanted = false;
      this.changedMembers.clear();
      const outcome = await this.reconcile(only);
      if (isFull) lastFullOutcome = outcome;
      if (outcome === 'failed') isFailed = true;
    }
    this.isRunning = false;
    if (this.isStopped) return;
    if (isFailed) {
      this.failures += 1;
      // A failed event-driven run is repaired by a full one.
      this.isFullRunWanted = true;
      this.schedule(Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.min(this.failures - 1, 30)));
    } else {
      if (lastFullOutcome !== null) this.failures = 0;
      if (lastFullOutcome !== null || this.timer === undefined) this.schedule(this.reconcileIntervalMs);
    }
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined) this.deps.timers.clearTimeout(this.timer);
    const epoch = ++this.epoch;
    this.timer = this.deps.timers.setTimeout(() => {
      if (epoch !== this.epoch || this.isStopped) return;
      this.timer = undefined;
      this.isFullRunWanted = true;
      if (!this.isRunning) void this.run();
    }, delayMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

/** handleAliveMember's test: the node at the member's address, its consul service Meta (servers), serfHealth passing. */
function isAliveInSync(txn: ReadTxn, member: GossipMember): boolean {
  const node = catalog.getNode(txn, member.Name).value;
  if (!node || node.Address !== member.Addr) return false;
  const service = consulService(member);
  if (service) {
    const stored = catalog.nodeService(txn, member.Name, CONSUL_SERVICE_ID).value;
    if (!stored || !isDeepStrictEqual({ ...stored.Meta }, { ...service.Meta })) return false;
  }
  return catalog.nodeCheck(txn, member.Name, SERF_CHECK_ID).value?.Status === 'passing';
}

/** handleAliveMember / handleFailedMember's register request for another member. */
function memberRegistration(member: GossipMember, datacenter: string, status: 'passing' | 'critical'): RegisterRequest {
  const service = status === 'passing' ? consulService(member) : undefined;
  const check: HealthCheckInput = { Node: member.Name, CheckID: SERF_CHECK_ID, Name: SERF_CHECK_NAME, Status: status, Output: status === 'passing' ? SERF_CHECK_ALIVE_OUTPUT : SERF_CHECK_FAILED_OUTPUT };
  return {
    Datacenter: datacenter,
    ID: member.Tags['id'] ?? '',
    Node: member.Name,
    Address: member.Addr,
    ...(service ? { Service: service } : {}),
    Check: check,
    // The node's own agent owns its record: only create it if missing.
    SkipNodeUpdate: true,
  };
}

/** handleDeregisterMember: deregister the node if the catalog has it; never this server. */
function deregistration(txn: ReadTxn, name: string, input: { readonly datacenter: string; readonly selfName: string }): Command | null {
  if (name === input.selfName) return null;
  if (!catalog.getNode(txn, name).value) return null;
  return { type: 'deregister', request: { Datacenter: input.datacenter, Node: name } };
}

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
export function buildVersion(build: string): string {
  return /\d+\.\d+\.\d+/.exec(build)?.[0] ?? '';
}

function sortedRecord(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
