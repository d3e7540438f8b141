// The agent's local state and anti-entropy: the agent is the source of truth for its own node
// (node record, services, checks) and keeps the catalog equal to it.
//
// What it does (Consul agent/local/state.go, agent/ae/ae.go; spec §6):
// - LocalState holds the node identity, the services and checks registered on this agent, an ACL
//   token per entry, and for every entry whether the catalog is known to agree with it (in sync)
//   and whether it was removed locally but not yet from the catalog (deleted).
// - syncFull reads this node's catalog entries, marks what differs out of sync (updateSyncState)
//   and writes what is out of sync (syncChanges). Catalog entries the agent does not know are
//   deregistered, except the `consul` service (the leader manages it) and the `serfHealth` check
//   (the servers manage it).
// - Output-only check updates are kept locally and written after check_update_interval/2 plus a
//   random part of the interval; a status change is written at once.
// - StateSyncer runs the full sync on a timer that grows with the cluster (scaleFactor), retries a
//   failed full sync after 15s, and runs partial syncs when the local state changes.
//
// What it does not do: persistence of services and checks (the agent does that), discard of check
// output (discard_check_output), alias-check notifications, critical-time tracking for the reaper,
// partitions and namespaces.
//
// Invariants:
// - An entry's `version` changes with every local change that must reach the catalog; a write only
//   marks the entry in sync if the version it carried is still current, so a change made while a
//   write is in flight is never lost (Consul holds a lock across the write; we cannot).
// - A deleted entry stays in the maps until the catalog confirms its removal, because the removal
//   needs its token (and, for a check, the service it belonged to).
//
// Deviations from Consul, on purpose: SyncChanges runs in a fixed order (service deletions, check
// deletions, node info, services, checks) instead of Go map order, so tests and traces are
// stable; a check deletion whose service deletion just succeeded is not sent (the catalog removed
// it with the service); a deletion refused by ACLs is retried at the next full sync instead of on
// every partial sync; partial syncs also run while a failed full sync waits for its retry (Consul's
// HTTP handlers call SyncChanges directly in that state, whenSynced stands in for that).
//
// References: Consul agent/local/state.go, agent/ae/ae.go, agent/structs/structs.go
// (NodeService.IsSame, HealthCheck.IsSame), spec §6.


import type { DeregisterRequest, HealthCheckInput, NodeServiceInput, RegisterRequest } from './catalog.js';
import type { CheckClock, CheckTimer } from './checks.js';
import { goQuote } from './kvs.js';
import type { Logger } from './log.js';
import type { CheckRecord, NodeRecord, ServiceRecord } from './schema.js';
import { SERF_CHECK_ID } from './sessions.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** A service as the local state holds it: the catalog's record without its node, mesh fields and Raft indexes. */
export type LocalService = Omit<ServiceRecord, 'Node' | 'Proxy' | 'Connect' | 'CreateIndex' | 'ModifyIndex'>;

/** A check as the local state holds it: the catalog's record without its node, exposed port and Raft indexes. */
export type LocalCheck = Omit<CheckRecord, 'Node' | 'ExposedPort' | 'CreateIndex' | 'ModifyIndex'>;

/** This agent's node as the local state syncs it: the catalog's record without its Raft indexes. */
export type NodeIdentity = Omit<NodeRecord, 'CreateIndex' | 'ModifyIndex'>;

/** What anti-entropy needs of the servers (on a server agent: its own state store and Raft). Errors reject. */
export interface CatalogClient {
  /** This node's catalog entries: Catalog.NodeServices + Health.NodeChecks. node undefined when not registered. */
  readNode(nodeName: string): Promise<{ readonly node: NodeRecord | undefined; readonly services: readonly ServiceRecord[]; readonly checks: readonly CheckRecord[] }>;
  /** Catalog.Register. `token` is the ACL token the write is made with ("" or absent: the anonymous/default token). */
  register(request: RegisterRequest, token?: string): Promise<void>;
  /** Catalog.Deregister, with the token as for register. */
  deregister(request: DeregisterRequest, token?: string): Promise<void>;
}

export interface LocalStateOptions {
  readonly node: NodeIdentity;
  readonly clock: CheckClock;
  readonly rng: () => number;
  /** check_update_interval (default 5m); 0 disables the deferral of output-only updates. */
  readonly checkUpdateIntervalMs: number;
  readonly logger: Logger;
  /** Called when something is out of sync and a partial sync should run soon (the syncer's trigger). */
  readonly onChange: () => void;
  /** acl.tokens.agent: used for node info and for deletions (Consul deletes with the agent token). */
  readonly agentToken?: () => string;
  /** acl.tokens.default: used for a service or check registered without a token of its own. */
  readonly userToken?: () => string;
}

/** Operational errors of this module; codes are append-only. */
export const ANTI_ENTROPY_ERRORS = {
  /** addCheck for a service that is not registered locally. */
  serviceMissing: 'ERR_CHECK_SERVICE_MISSING',
  /** addService/addCheck past LOCAL_ENTRIES_MAX. */
  tooManyEntries: 'ERR_TOO_MANY_LOCAL_ENTRIES',
  /** At least one write of a sync failed (each is logged; the items stay out of sync). */
  syncWriteFailed: 'ERR_SYNC_WRITE_FAILED',
} as const;

export type AntiEntropyErrorCode = (typeof ANTI_ENTROPY_ERRORS)[keyof typeof ANTI_ENTROPY_ERRORS];

export class AntiEntropyError extends Error {
  override readonly name = 'AntiEntropyError';
  constructor(
    readonly code: AntiEntropyErrorCode,
    message: string,
    /** For ERR_SYNC_WRITE_FAILED: the errors of the failed writes. */
    readonly causes: readonly unknown[] = [],
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Limits

/** check_update_interval's default (Consul: 5 minutes). */
export const CHECK_UPDATE_INTERVAL_DEFAULT_MS = 5 * 60_000;
/** Services, and separately checks, one agent holds at most (deleted ones pending removal included). */
export const LOCAL_ENTRIES_MAX = 65_536;
/** Full sync interval before scaling (Consul's ae_interval). */
export const AE_INTERVAL_DEFAULT_MS = 60_000;
/** Upper bound (before scaling) of the delay of a full sync after start or after a server joins (ae.serverUpIntv). */
export const SERVER_UP_INTERVAL_MS = 3_000;
/** Minimum delay before a failed full sync is retried (ae.retryFailIntv). */
export const RETRY_FAIL_INTERVAL_MS = 15_000;
/** Cluster size from which full syncs spread out (ae.scaleThreshold; a power of two since the scale is log2). */
export const SCALE_THRESHOLD_NODES = 128;
/** whenSynced callers waiting at once; past this they resolve at once rather than grow memory. */
export const SYNC_WAITERS_MAX = 10_000;

/** The service the leader registers for servers; never deregistered by an agent (structs.ConsulServiceID). */
export const CONSUL_SERVICE_ID = 'consul';
/** Prefix of tagged addresses the servers set on services; merged back into the local state. */
const RESERVED_TAGGED_ADDRESS_PREFIX = 'consul-';

// ---------------------------------------------------------------------------------------------
// Local state

interface ServiceEntry {
  /** undefined only for a catalog service unknown locally (deleted, waiting for deregistration). */
  service: LocalService | undefined;
  readonly token: string;
  isInSync: boolean;
  isDeleted: boolean;
  /** Invariant: bumped on every local change that must be written. */
  version: number;
}

interface CheckEntry {
  /** For a catalog check unknown locally only CheckID and ServiceID are meaningful. */
  check: LocalCheck;
  readonly token: string;
  isInSync: boolean;
  isDeleted: boolean;
  version: number;
  /** Pending write-back of an output-only update (Consul's DeferCheck). */
  deferTimer: CheckTimer | undefined;
}

/** Why a write ended the way it did: decides what becomes of the entry's sync flag. */
type WriteOutcome = 'ok' | 'denied' | 'failed';

export class LocalState {
  private readonly options: LocalStateOptions;
  private node: NodeIdentity;
  /** Invariant: false until a write carrying the current node identity succeeded. */
  private isNodeInfoInSync = false;
  private nodeVersion = 0;
  private readonly serviceEntries = new Map<string, ServiceEntry>();
  private readonly checkEntries = new Map<string, CheckEntry>();

  constructor(options: LocalStateOptions) {
    this.options = options;
    this.node = cloneNode(options.node);
  }

  /** Adds or replaces a service (out of sync until synced). Keeps token per service. */
  addService(service: LocalService, token = ''): void {
    const stored = cloneService(service);
    const old = this.serviceEntries.get(stored.ID);
    if (old === undefined) this.assertRoom(this.serviceEntries.size, 'services');
    const isSame = old !== undefined && !old.isDeleted && old.service !== undefined && isSameService(old.service, stored);
    this.serviceEntries.set(stored.ID, { service: stored, token, isInSync: isSame && old.isInSync, isDeleted: false, version: (old?.version ?? 0) + 1 });
    this.refreshServiceChecks(stored);
    this.options.onChange();
  }

  /** Removes a service and its checks locally; they are deregistered from the catalog on the next sync. Returns false if unknown. */
  removeService(id: string): boolean {
    const entry = this.serviceEntries.get(id);
    if (entry === undefined || entry.isDeleted) return false;
    markDeleted(entry);
    for (const check of this.checkEntries.values()) if (!check.isDeleted && check.check.ServiceID === id) this.markCheckDeleted(check);
    this.options.onChange();
    return true;
  }

  service(id: string): LocalService | undefined {
    const entry = this.serviceEntries.get(id);
    return entry === undefined || entry.isDeleted ? undefined : entry.service;
  }

  /** The live services, sorted by ID. */
  services(): LocalService[] {
    const result: LocalService[] = [];
    for (const entry of this.serviceEntries.values()) if (!entry.isDeleted && entry.service) result.push(entry.service);
    return result.sort((a, b) => compareStrings(a.ID, b.ID));
  }

  /**
   * Adds or replaces a check. A service check needs its service registered here (else throws
   * AntiEntropyError with Consul's AddCheck text); its ServiceName/ServiceTags come from the service.
   */
  addCheck(check: LocalCheck, token = ''): void {
    let stored = cloneCheck(check);
    if (stored.ServiceID !== '') {
      const service = this.service(stored.ServiceID);
      if (service === undefined) {
        throw new AntiEntropyError(ANTI_ENTROPY_ERRORS.serviceMissing, `Check ID ${goQuote(stored.CheckID)} refers to non-existent service ID ${goQuote(stored.ServiceID)}`);
      }
      stored = { ...stored, ServiceName: service.Service, ServiceTags: [...service.Tags] };
    }
    const old = this.checkEntries.get(stored.CheckID);
    if (old === undefined) this.assertRoom(this.checkEntries.size, 'checks');
    old?.deferTimer?.cancel();
    const isSame = old !== undefined && !old.isDeleted && isSameCheck(old.check, stored, false);
    this.checkEntries.set(stored.CheckID, { check: stored, token, isInSync: isSame && old.isInSync, isDeleted: false, version: (old?.version ?? 0) + 1, deferTimer: undefined });
    this.options.onChange();
  }

  removeCheck(id: string): boolean {
    const entry = this.checkEntries.get(id);
    if (entry === undefined || entry.isDeleted) return false;
    this.markCheckDeleted(entry);
    this.options.onChange();
    return true;
  }

  check(id: string): LocalCheck | undefined {
    const entry = this.checkEntries.get(id);
    return entry === undefined || entry.isDeleted ? undefined : entry.check;
  }

  /** The live checks, sorted by CheckID. */
  checks(): LocalCheck[] {
    const result: LocalCheck[] = [];
    for (const entry of this.checkEntries.values()) if (!entry.isDeleted) result.push(entry.check);
    return result.sort((a, b) => compareStrings(a.CheckID, b.CheckID));
  }

  /**
   * UpdateCheck: a status change is out of sync at once (onChange); an output-only change is stored
   * and marked out of sync after interval/2 + random(0..interval), unless the interval is 0. The
   * deferral rate-limits checks whose output changes every run (timestamps, counters) without
   * delaying anything that changes health.
   */
  updateCheck(id: string, status: LocalCheck['Status'], output: string): void {
    const entry = this.checkEntries.get(id);
    if (entry === undefined || entry.isDeleted) {
      this.options.logger.debug('check update for an unknown check ignored', { check: id });
      return;
    }
    const current = entry.check;
    if (current.Status === status && current.Output === output) return;
    const intervalMs = this.options.checkUpdateIntervalMs;
    if (intervalMs > 0 && current.Status === status) {
      // Not a version bump: a write in flight still counts as syncing this check.
      entry.check = { ...current, Output: output };
      if (entry.deferTimer === undefined) entry.deferTimer = this.startDeferTimer(entry, intervalMs);
      return;
    }
    entry.check = { ...current, Status: status, Output: output };
    markOutOfSync(entry);
    this.options.onChange();
  }

  /** Replaces the node identity (address/meta/tagged addresses changed on reload): node info out of sync. */
  setNode(node: NodeIdentity): void {
    this.node = cloneNode(node);
    this.isNodeInfoInSync = false;
    this.nodeVersion += 1;
    this.options.onChange();
  }

  /** The node identity the state syncs. */
  nodeIdentity(): NodeIdentity {
    return this.node;
  }

  /**
   * Anti-entropy: compares with the catalog (updateSyncState) and writes what differs
   * (syncChanges). Rejects if the read fails, and as syncChanges does.
   */
  async syncFull(client: CatalogClient): Promise<void> {
    const remote = await client.readNode(this.node.Node);
    this.updateSyncState(remote);
    await this.syncChanges(client);
  }

  /**
   * Writes only what is known to be out of sync (no catalog read first): the partial sync. Every
   * item is attempted; a failed write is logged and leaves its item out of sync, and the promise
   * then rejects with ERR_SYNC_WRITE_FAILED (as Consul's SyncChanges returns the errors), so the
   * syncer retries a failed full sync early.
   */
  async syncChanges(client: CatalogClient): Promise<void> {
    const failures: unknown[] = [];
    const record = (error: unknown): void => {
      if (error !== undefined) failures.push(error);
    };
    const deletedServices = new Set<string>();
    // Only the entries out of sync are sorted (for a deterministic write order): a partial sync
    // after one change on an agent with thousands of services stays a linear scan.
    for (const id of sortedKeysWhere(this.serviceEntries, (entry) => entry.isDeleted && !entry.isInSync)) {
      const entry = this.serviceEntries.get(id);
      if (entry?.isDeleted && !entry.isInSync) {
        const error = await this.deleteService(client, id, entry);
        if (error === undefined) deletedServices.add(id);
        record(error);
      }
    }
    for (const id of sortedKeysWhere(this.checkEntries, (entry) => entry.isDeleted && !entry.isInSync)) {
      const entry = this.checkEntries.get(id);
      if (entry?.isDeleted && !entry.isInSync) record(await this.deleteCheck(client, id, entry, deletedServices));
    }
    if (!this.isNodeInfoInSync) record(await this.syncNodeInfo(client));
    for (const id of sortedKeysWhere(this.serviceEntries, (entry) => !entry.isDeleted && !entry.isInSync)) {
      const entry = this.serviceEntries.get(id);
      if (entry && !entry.isDeleted && !entry.isInSync) record(await this.syncService(client, id, entry));
    }
    for (const id of sortedKeysWhere(this.checkEntries, (entry) => !entry.isDeleted && !entry.isInSync)) {
      const entry = this.checkEntries.get(id);
      if (entry && !entry.isDeleted && !entry.isInSync) record(await this.syncCheck(client, id, entry));
    }
    if (failures.length > 0) {
      throw new AntiEntropyError(ANTI_ENTROPY_ERRORS.syncWriteFailed, `${failures.length} catalog write(s) failed: ${errorText(failures[0])}`, failures);
    }
  }

  /** For tests and /v1/agent/self-like views: what is not in sync yet. */
  pendingCount(): number {
    let count = this.isNodeInfoInSync ? 0 : 1;
    for (const entry of this.serviceEntries.values()) if (!entry.isInSync) count += 1;
    for (const entry of this.checkEntries.values()) if (!entry.isInSync) count += 1;
    return count;
  }

  // ---- updateSyncState ------------------------------------------------------------------------

  /** Marks out of sync whatever the catalog disagrees with, and schedules the catalog's extras for deletion. */
  private updateSyncState(remote: Awaited<ReturnType<CatalogClient['readNode']>>): void {
    const node = this.node;
    const remoteNode = remote.node;
    if (remoteNode === undefined || remoteNode.ID !== node.ID || remoteNode.Address !== node.Address || !isSameRecord(remoteNode.TaggedAddresses, node.TaggedAddresses) || !isSameRecord(remoteNode.Meta, node.Meta)) {
      this.isNodeInfoInSync = false;
    }
    this.compareServices(remote.services);
    this.compareChecks(remote.checks);
  }

  private compareServices(remoteServices: readonly ServiceRecord[]): void {
    const remoteById = new Map(remoteServices.map((service) => [service.ID, service]));
    for (const [id, entry] of this.serviceEntries) {
      if (remoteById.has(id)) continue;
      // A local removal the catalog already reflects needs no write; anything else must be pushed.
      if (entry.isDeleted) this.serviceEntries.delete(id);
      else entry.isInSync = false;
    }
    for (const [id, remote] of remoteById) {
      const entry = this.serviceEntries.get(id);
      if (entry === undefined) {
        if (id === CONSUL_SERVICE_ID) continue;
        this.assertRoom(this.serviceEntries.size, 'services');
        this.serviceEntries.set(id, { service: undefined, token: '', isInSync: false, isDeleted: true, version: 1 });
        continue;
      }
      if (entry.isDeleted || entry.service === undefined) {
        // Still in the catalog: try again (a deletion refused by ACLs was marked in sync).
        entry.isInSync = false;
        continue;
      }
      entry.service = adoptRemoteFields(entry.service, remote);
      entry.isInSync = isSameService(entry.service, remote) && remote.Proxy === undefined && remote.Connect === undefined;
    }
  }

  private compareChecks(remoteChecks: readonly CheckRecord[]): void {
    const remoteById = new Map(remoteChecks.map((check) => [check.CheckID, check]));
    for (const [id, entry] of this.checkEntries) {
      if (remoteById.has(id)) continue;
      if (entry.isDeleted) this.pruneCheck(id);
      else entry.isInSync = false;
    }
    for (const [id, remote] of remoteById) {
      const entry = this.checkEntries.get(id);
      if (entry === undefined) {
        if (id === SERF_CHECK_ID) {
          this.options.logger.debug('skipping remote check since it is managed automatically', { check: id });
          continue;
        }
        this.assertRoom(this.checkEntries.size, 'checks');
        this.checkEntries.set(id, { check: placeholderCheck(remote), token: '', isInSync: false, isDeleted: true, version: 1, deferTimer: undefined });
        continue;
      }
      if (entry.isDeleted) {
        entry.isInSync = false;
        continue;
      }
      // With a deferred write-back pending, the output is allowed to differ: the timer will push
      // it. Without one the output must match too, or a check whose status never changes would
      // never get its output into the catalog.
      const isOutputIgnored = this.options.checkUpdateIntervalMs > 0 && entry.deferTimer !== undefined;
      entry.isInSync = remote.Node.toLowerCase() === this.node.Node.toLowerCase() && isSameCheck(entry.check, remote, isOutputIgnored);
    }
  }

  // ---- writes ---------------------------------------------------------------------------------

  private async deleteService(client: CatalogClient, id: string, entry: ServiceEntry): Promise<unknown> {
    const version = entry.version;
    const request: DeregisterRequest = { Datacenter: this.node.Datacenter, Node: this.node.Node, ServiceID: id };
    const { outcome, error } = await attempt(() => client.deregister(request, this.agentToken()), 'Unknown service');
    const isCurrent = this.serviceEntries.get(id) === entry && entry.version === version;
    if (outcome === 'ok') {
      if (isCurrent) this.serviceEntries.delete(id);
      // The catalog removed the service's checks with it.
      for (const [checkId, check] of this.checkEntries) if (check.isDeleted && check.check.ServiceID === id) this.pruneCheck(checkId);
      this.options.logger.info('Deregistered service', { service: id });
      return undefined;
    }
    if (outcome === 'denied') {
      if (isCurrent) entry.isInSync = true;
      this.options.logger.warn('Service deregistration blocked by ACLs', { service: id });
      return undefined;
    }
    this.options.logger.warn('Deregistering service failed.', { service: id, error: errorText(error) });
    return error;
  }

  private async deleteCheck(client: CatalogClient, id: string, entry: CheckEntry, deletedServices: ReadonlySet<string>): Promise<unknown> {
    if (entry.check.ServiceID !== '' && deletedServices.has(entry.check.ServiceID)) {
      this.pruneCheck(id);
      return undefined;
    }
    const version = entry.version;
    const request: DeregisterRequest = { Datacenter: this.node.Datacenter, Node: this.node.Node, CheckID: id };
    const { outcome, error } = await attempt(() => client.deregister(request, this.agentToken()), 'Unknown check');
    const isCurrent = this.checkEntries.get(id) === entry && entry.version === version;
    if (outcome === 'ok') {
      if (isCurrent) this.pruneCheck(id);
      this.options.logger.info('Deregistered check', { check: id });
      return undefined;
    }
    if (outcome === 'denied') {
      if (isCurrent) entry.isInSync = true;
      this.options.logger.warn('Check deregistration blocked by ACLs', { check: id });
      return undefined;
    }
    this.options.logger.warn('Deregistering check failed.', { check: id, error: errorText(error) });
    return error;
  }

  private async syncNodeInfo(client: CatalogClient): Promise<unknown> {
    const nodeVersion = this.nodeVersion;
    const { outcome, error } = await attempt(() => client.register(this.nodeRequest(false), this.agentToken()), undefined);
    if (outcome === 'failed') {
      this.options.logger.warn('Syncing node info failed.', { error: errorText(error) });
      return error;
    }
    if (this.nodeVersion === nodeVersion) this.isNodeInfoInSync = true;
    if (outcome === 'ok') this.options.logger.info('Synced node info');
    else this.options.logger.warn('Node info update blocked by ACLs', { node: this.node.ID });
    return undefined;
  }

  /**
   * Registers a service with its out-of-sync checks in one request, so they appear atomically;
   * only checks with the service's token ride along, lest they borrow its privileges.
   */
  private async syncService(client: CatalogClient, id: string, entry: ServiceEntry): Promise<unknown> {
    const service = entry.service;
    if (service === undefined) return undefined;
    const token = this.effectiveToken(entry.token);
    const riders: { readonly id: string; readonly entry: CheckEntry; readonly version: number }[] = [];
    for (const [checkId, check] of this.checkEntries) {
      if (check.isDeleted || check.isInSync || check.check.ServiceID !== id || this.effectiveToken(check.token) !== token) continue;
      riders.push({ id: checkId, entry: check, version: check.version });
    }
    riders.sort((a, b) => compareStrings(a.id, b.id));
    const checks = riders.map((rider) => checkInput(rider.entry.check, this.node.Node));
    const request: RegisterRequest = {
      ...this.nodeRequest(this.isNodeInfoInSync),
      Service: serviceInput(service),
      ...(checks.length === 1 ? { Check: checks[0] } : checks.length > 1 ? { Checks: checks } : {}),
    };
    const version = entry.version;
    const nodeVersion = this.nodeVersion;
    for (const rider of riders) rider.entry.deferTimer?.cancel();
    for (const rider of riders) rider.entry.deferTimer = undefined;
    const { outcome, error } = await attempt(() => client.register(request, token), undefined);
    if (outcome === 'failed') {
      this.options.logger.warn('Syncing service failed.', { service: id, error: errorText(error) });
      return error;
    }
    if (this.serviceEntries.get(id) === entry && entry.version === version) entry.isInSync = true;
    for (const rider of riders) if (this.checkEntries.get(rider.id) === rider.entry && rider.entry.version === rider.version) rider.entry.isInSync = true;
    if (outcome === 'ok') {
      // The registration carried the node's fields too (unless it skipped the node update).
      if (this.nodeVersion === nodeVersion) this.isNodeInfoInSync = true;
      this.options.logger.info('Synced service', { service: id });
    } else {
      this.options.logger.warn('Service registration blocked by ACLs', { service: id });
    }
    return undefined;
  }

  private async syncCheck(client: CatalogClient, id: string, entry: CheckEntry): Promise<unknown> {
    const serviceId = entry.check.ServiceID;
    const serviceEntry = serviceId === '' ? undefined : this.serviceEntries.get(serviceId);
    // The catalog refuses a check of a missing service; one being deleted takes its checks along.
    if (serviceEntry?.isDeleted) return undefined;
    const request: RegisterRequest = {
      ...this.nodeRequest(this.isNodeInfoInSync),
      ...(serviceEntry?.service ? { Service: serviceInput(serviceEntry.service) } : {}),
      Check: checkInput(entry.check, this.node.Node),
    };
    const version = entry.version;
    const nodeVersion = this.nodeVersion;
    entry.deferTimer?.cancel();
    entry.deferTimer = undefined;
    const { outcome, error } = await attempt(() => client.register(request, this.effectiveToken(entry.token)), undefined);
    if (outcome === 'failed') {
      this.options.logger.warn('Syncing check failed.', { check: id, error: errorText(error) });
      return error;
    }
    if (this.checkEntries.get(id) === entry && entry.version === version) entry.isInSync = true;
    if (outcome === 'ok') {
      if (this.nodeVersion === nodeVersion) this.isNodeInfoInSync = true;
      this.options.logger.info('Synced check', { check: id });
    } else {
      this.options.logger.warn('Check registration blocked by ACLs', { check: id });
    }
    return undefined;
  }

  // ---- helpers --------------------------------------------------------------------------------

  private nodeRequest(isNodeUpdateSkipped: boolean): RegisterRequest {
    const node = this.node;
    return {
      Datacenter: node.Datacenter,
      ID: node.ID,
      Node: node.Node,
      Address: node.Address,
      TaggedAddresses: { ...node.TaggedAddresses },
      NodeMeta: { ...node.Meta },
      ...(isNodeUpdateSkipped ? { SkipNodeUpdate: true } : {}),
    };
  }

  private startDeferTimer(entry: CheckEntry, intervalMs: number): CheckTimer {
    const delayMs = Math.floor(intervalMs / 2 + this.options.rng() * intervalMs);
    const timer = this.options.clock.setTimeout(() => {
      // Stale-timer guard: the entry may have been replaced, synced or removed since.
      if (entry.deferTimer !== timer) return;
      entry.deferTimer = undefined;
      if (entry.isDeleted || this.checkEntries.get(entry.check.CheckID) !== entry) return;
      markOutOfSync(entry);
      this.options.onChange();
    }, delayMs);
    return timer;
  }

  /** A replaced service's checks take its new name and tags, as Consul's agent re-adds them. */
  private refreshServiceChecks(service: LocalService): void {
    for (const entry of this.checkEntries.values()) {
      const check = entry.check;
      if (entry.isDeleted || check.ServiceID !== service.ID) continue;
      if (check.ServiceName === service.Service && isSameList(check.ServiceTags, service.Tags)) continue;
      entry.check = { ...check, ServiceName: service.Service, ServiceTags: [...service.Tags] };
      markOutOfSync(entry);
    }
  }

  private markCheckDeleted(entry: CheckEntry): void {
    entry.deferTimer?.cancel();
    entry.deferTimer = undefined;
    markDeleted(entry);
  }

  private pruneCheck(id: string): void {
    this.checkEntries.get(id)?.deferTimer?.cancel();
    this.checkEntries.delete(id);
  }

  private effectiveToken(token: string): string {
    return token !== '' ? token : (this.options.userToken?.() ?? '');
  }

  private agentToken(): string {
    return this.options.agentToken?.() ?? '';
  }

  private assertRoom(size: number, what: string): void {
    if (size >= LOCAL_ENTRIES_MAX) throw new AntiEntropyError(ANTI_ENTROPY_ERRORS.tooManyEntries, `too many local ${what} (limit ${LOCAL_ENTRIES_MAX})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Scale

/** ae.go's scaleFactor: 1 up to 128 nodes, then ceil(log2(n) - log2(128)) + 1. */
export function scaleFactor(nodes: number): number {
  if (!(nodes > SCALE_THRESHOLD_NODES)) return 1;
  return Math.ceil(Math.log2(nodes) - Math.log2(SCALE_THRESHOLD_NODES)) + 1;
}

// ---------------------------------------------------------------------------------------------
// State syncer

export interface StateSyncerOptions {
  readonly state: LocalState;
  readonly client: CatalogClient;
  readonly clock: CheckClock;
  readonly rng: () => number;
  readonly logger: Logger;
  /** The LAN pool's size, for scaleFactor. */
  readonly clusterSize: () => number;
  /** Full sync interval before scaling (Consul: 1 minute). */
  readonly intervalMs?: number;
}

/**
 * ae.StateSyncer. A full sync runs shortly after start (random delay up to 3s, scaled), then the
 * next is due interval + random(0..interval*scale) after the previous one started; a failed one is
 * retried after 15s + random(0..15s*scale). Partial syncs run when triggered, coalesced: one sync
 * (full or partial) at a time and at most one partial queued. pause()/resume() nest (Consul pauses
 * around reloads); while paused nothing is written and a due full sync is put off as after a failure.
 */
export class StateSyncer {
  private readonly options: StateSyncerOptions;
  private isStarted = false;
  /** Invariant: bumped by start and stop; a timer or queued step of an older epoch does nothing. */
  private epoch = 0;
  private isSyncing = false;
  private isFullDue = false;
  private isPartialPending = false;
  private isStepQueued = false;
  private pauseCount = 0;
  private fullTimer: CheckTimer | undefined;
  private waiters: (() => void)[] = [];

  constructor(options: StateSyncerOptions) {
    this.options = options;
  }

  start(): void {
    if (this.isStarted) return;
    this.isStarted = true;
    this.epoch += 1;
    this.scheduleFull(this.jitterMs(SERVER_UP_INTERVAL_MS));
  }

  /** Stops timers; a sync in flight finishes on its own. Callers of whenSynced are released. */
  stop(): void {
    if (!this.isStarted) return;
    this.isStarted = false;
    this.epoch += 1;
    this.fullTimer?.cancel();
    this.fullTimer = undefined;
    this.releaseWaiters(this.waiters);
    this.waiters = [];
  }

  /** Runs a partial sync soon (SyncChanges.Trigger). */
  trigger(): void {
    this.isPartialPending = true;
    this.queueStep();
  }

  /** A full sync within SERVER_UP_INTERVAL_MS (scaled), as when a server joins (SyncFull.Trigger). */
  triggerFull(): void {
    if (!this.isStarted) return;
    this.scheduleFull(this.jitterMs(SERVER_UP_INTERVAL_MS));
  }

  /**
   * Resolves after the next sync (full or partial) that starts after this call has finished, and
   * triggers a partial sync so that one comes soon; whether it succeeded does not matter (Consul's
   * register endpoints log a failed sync and answer anyway). Resolves at once when not started
   * (and when stopped); while paused it waits for resume().
   */
  whenSynced(): Promise<void> {
    if (!this.isStarted) return Promise.resolve();
    if (this.waiters.length >= SYNC_WAITERS_MAX) {
      this.options.logger.warn('too many callers waiting for a sync; not waiting', { waiters: this.waiters.length });
      return Promise.resolve();
    }
    const promise = new Promise<void>((resolve) => this.waiters.push(resolve));
    this.trigger();
    return promise;
  }

  pause(): void {
    this.pauseCount += 1;
  }

  /** Ends one pause(); the last one triggers a partial sync. Throws on an unbalanced call, as Consul panics. */
  resume(): void {
    if (this.pauseCount === 0) throw new Error('unbalanced pause/resume');
    this.pauseCount -= 1;
    if (this.pauseCount === 0) this.trigger();
  }

  isPaused(): boolean {
    return this.pauseCount > 0;
  }

  // ---- private --------------------------------------------------------------------------------

  /** Runs the next sync on a microtask, so a caller that triggers and then waits sees it start after. */
  private queueStep(): void {
    if (!this.isStarted || this.isSyncing || this.isStepQueued) return;
    this.isStepQueued = true;
    const epoch = this.epoch;
    void Promise.resolve().then(() => {
      this.isStepQueued = false;
      if (epoch === this.epoch) this.step();
    });
  }

  private step(): void {
    if (!this.isStarted || this.isSyncing) return;
    if (this.isFullDue) {
      this.isFullDue = false;
      if (this.pauseCount > 0) {
        this.scheduleFull(this.retryDelayMs());
        return;
      }
      void this.run('full');
      return;
    }
    if (this.isPartialPending && this.pauseCount === 0) {
      this.isPartialPending = false;
      void this.run('partial');
    }
  }

  private async run(kind: 'full' | 'partial'): Promise<void> {
    const { state, client, logger } = this.options;
    const epoch = this.epoch;
    this.isSyncing = true;
    const waiters = this.waiters;
    this.waiters = [];
    // Like ae.go, the next full sync is timed from the start of this one.
    if (kind === 'full') this.scheduleFull(this.intervalMs() + this.jitterMs(this.intervalMs()));
    try {
      if (kind === 'full') await state.syncFull(client);
      else await state.syncChanges(client);
    } catch (error) {
      if (kind === 'full') {
        logger.error('failed to sync remote state', { error: errorText(error) });
        if (epoch === this.epoch) this.scheduleFull(this.retryDelayMs());
      } else {
        logger.error('failed to sync changes', { error: errorText(error) });
      }
    } finally {
      this.isSyncing = false;
      this.releaseWaiters(waiters);
      this.queueStep();
    }
  }

  private scheduleFull(delayMs: number): void {
    this.fullTimer?.cancel();
    const epoch = this.epoch;
    const timer = this.options.clock.setTimeout(() => {
      if (epoch !== this.epoch || this.fullTimer !== timer) return;
      this.fullTimer = undefined;
      this.isFullDue = true;
      this.queueStep();
    }, delayMs);
    this.fullTimer = timer;
  }

  private releaseWaiters(waiters: readonly (() => void)[]): void {
    for (const resolve of waiters) resolve();
  }

  private intervalMs(): number {
    return this.options.intervalMs ?? AE_INTERVAL_DEFAULT_MS;
  }

  private retryDelayMs(): number {
    return RETRY_FAIL_INTERVAL_MS + this.jitterMs(RETRY_FAIL_INTERVAL_MS);
  }

  /** ae's cluster-size Delayer: random(0 .. delay * scaleFactor(cluster size)). */
  private jitterMs(delayMs: number): number {
    return Math.floor(this.options.rng() * delayMs * scaleFactor(this.options.clusterSize()));
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

/** Runs a catalog write and classifies its failure the way state.go does. */
async function attempt(write: () => Promise<void>, notFoundText: string | undefined): Promise<{ readonly outcome: WriteOutcome; readonly error?: unknown }> {
  try {
    await write();
    return { outcome: 'ok' };
  } catch (error) {
    const text = errorText(error);
    // Deleting what the catalog no longer has is success.
    if (notFoundText !== undefined && text.includes(notFoundText)) return { outcome: 'ok' };
    // acl.IsErrPermissionDenied / IsErrNotFound: retrying cannot help until the token changes.
    if (text.includes('Permission denied') || text.includes('ACL not found')) return { outcome: 'denied', error };
    return { outcome: 'failed', error };
  }
}

function markDeleted(entry: { isInSync: boolean; isDeleted: boolean; version: number }): void {
  entry.isDeleted = true;
  entry.isInSync = false;
  entry.version += 1;
}

function markOutOfSync(entry: { isInSync: boolean; version: number }): void {
  entry.isInSync = false;
  entry.version += 1;
}

/**
 * What the local service takes from the catalog's copy before comparing: the tags when
 * EnableTagOverride is set (the catalog may have been edited on purpose), and the tagged
 * addresses the servers reserve (`consul-` prefix).
 */
function adoptRemoteFields(local: LocalService, remote: ServiceRecord): LocalService {
  let next = local;
  if (local.EnableTagOverride && !isSameList(local.Tags, remote.Tags)) next = { ...next, Tags: [...remote.Tags] };
  const reserved = Object.entries(remote.TaggedAddresses).filter(([key]) => key.startsWith(RESERVED_TAGGED_ADDRESS_PREFIX));
  if (reserved.length > 0 && !isSameJson(local.TaggedAddresses, remote.TaggedAddresses)) {
    const merged: Record<string, { Address: string; Port: number }> = { ...local.TaggedAddresses };
    for (const [key, value] of reserved) merged[key] = { Address: value.Address, Port: value.Port };
    next = { ...next, TaggedAddresses: merged };
  }
  return next;
}

/** NodeService.IsSame over the fields a LocalService has. */
function isSameService(local: LocalService, other: LocalService | ServiceRecord): boolean {
  return (
    local.ID === other.ID &&
    local.Service === other.Service &&
    isSameList(local.Tags, other.Tags) &&
    local.Address === other.Address &&
    local.Port === other.Port &&
    local.SocketPath === other.SocketPath &&
    isSameJson(local.TaggedAddresses, other.TaggedAddresses) &&
    local.Weights.Passing === other.Weights.Passing &&
    local.Weights.Warning === other.Weights.Warning &&
    isSameRecord(local.Meta, other.Meta) &&
    local.EnableTagOverride === other.EnableTagOverride &&
    local.Kind === other.Kind
  );
}

/** HealthCheck.IsSame: the Raft indexes, Type, Interval, Timeout and ExposedPort are not compared, as Consul's. */
function isSameCheck(local: LocalCheck, other: LocalCheck | CheckRecord, isOutputIgnored: boolean): boolean {
  return (
    local.CheckID === other.CheckID &&
    local.Name === other.Name &&
    local.Status === other.Status &&
    local.Notes === other.Notes &&
    (isOutputIgnored || local.Output === other.Output) &&
    local.ServiceID === other.ServiceID &&
    local.ServiceName === other.ServiceName &&
    isSameList(local.ServiceTags, other.ServiceTags) &&
    isSameJson(local.Definition, other.Definition)
  );
}

function isSameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, index) => value === b[index]);
}

function isSameRecord(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.prototype.hasOwnProperty.call(b, key) && a[key] === b[key]);
}

/** Deep equality of plain JSON-like values; an absent key and an undefined value are the same (omitempty). */
function isSameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((value, index) => isSameJson(value, b[index]));
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(left), ...Object.keys(right)]);
  for (const key of keys) if (!isSameJson(left[key], right[key])) return false;
  return true;
}

function serviceInput(service: LocalService): NodeServiceInput {
  return {
    Kind: service.Kind,
    ID: service.ID,
    Service: service.Service,
    Tags: [...service.Tags],
    Address: service.Address,
    TaggedAddresses: cloneTaggedAddresses(service.TaggedAddresses),
    Meta: { ...service.Meta },
    Port: service.Port,
    SocketPath: service.SocketPath,
    Weights: { Passing: service.Weights.Passing, Warning: service.Weights.Warning },
    EnableTagOverride: service.EnableTagOverride,
  };
}

function checkInput(check: LocalCheck, node: string): HealthCheckInput {
  return {
    Node: node,
    CheckID: check.CheckID,
    Name: check.Name,
    Status: check.Status,
    Notes: check.Notes,
    Output: check.Output,
    ServiceID: check.ServiceID,
    ServiceName: check.ServiceName,
    ServiceTags: [...check.ServiceTags],
    Type: check.Type,
    Interval: check.Interval,
    Timeout: check.Timeout,
    Definition: structuredClone(check.Definition),
  };
}

/** A catalog check unknown locally, kept only until it is deregistered. */
function placeholderCheck(remote: CheckRecord): LocalCheck {
  return {
    CheckID: remote.CheckID,
    Name: remote.Name,
    Status: remote.Status,
    Notes: '',
    Output: '',
    ServiceID: remote.ServiceID,
    ServiceName: remote.ServiceName,
    ServiceTags: [],
    Type: remote.Type,
    Interval: '',
    Timeout: '',
    Definition: {},
  };
}

function cloneService(service: LocalService): LocalService {
  return {
    ID: service.ID !== '' ? service.ID : service.Service,
    Service: service.Service,
    Kind: service.Kind,
    Tags: [...service.Tags],
    Address: service.Address,
    TaggedAddresses: cloneTaggedAddresses(service.TaggedAddresses),
    Meta: { ...service.Meta },
    Port: service.Port,
    SocketPath: service.SocketPath,
    Weights: { Passing: service.Weights.Passing, Warning: service.Weights.Warning },
    EnableTagOverride: service.EnableTagOverride,
  };
}

function cloneCheck(check: LocalCheck): LocalCheck {
  return { ...check, ServiceTags: [...check.ServiceTags], Definition: structuredClone(check.Definition) };
}

function cloneNode(node: NodeIdentity): NodeIdentity {
  return { ...node, TaggedAddresses: { ...node.TaggedAddresses }, Meta: { ...node.Meta } };
}

function cloneTaggedAddresses(input: LocalService['TaggedAddresses']): Record<string, { Address: string; Port: number }> {
  const result: Record<string, { Address: string; Port: number }> = {};
  for (const [key, value] of Object.entries(input)) result[key] = { Address: value.Address, Port: value.Port };
  return result;
}

/** The keys whose entries match, sorted. */
function sortedKeysWhere<T>(map: ReadonlyMap<string, T>, matches: (entry: T) => boolean): string[] {
  const keys: string[] = [];
  for (const [key, entry] of map) if (matches(entry)) keys.push(key);
  return keys.sort(compareStrings);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
