// The agent's own services and checks: what /v1/agent/service/register, /v1/agent/check/register
// and the service and check definitions of config files turn into. Definitions become entries of
// the local state (lib/antientropy.ts, which syncs them to the catalog), and each check gets its
// runner (lib/checks.ts) whose results flow back into the local state.
//
// Rules kept from Consul (agent/agent.go addServiceInternal, AddCheck, RemoveService,
// updateTTLCheck, EnableServiceMaintenance, EnableNodeMaintenance; agent_endpoint.go):
// - A service's ID defaults to its name. Its checks without an ID are `service:<id>` (one check)
//   or `service:<id>:<n>` (n counted from 1 when there are several), named `Service '<name>'
//   check`. A new check starts critical unless it declares a status; a check that survives a
//   re-registration keeps its status and output. With replace-existing-checks, the service's
//   checks missing from the new registration are removed.
// - Script checks run only when enable_script_checks allows it, or enable_local_script_checks
//   for definitions from config files; otherwise registration fails with Consul's message.
// - Maintenance mode is a critical check: `_service_maintenance:<id>` or `_node_maintenance`.
//
// Errors are LocalAgentErrors carrying the HTTP status and text Consul answers with; nothing is
// half-registered: every check of a service is validated before anything changes.
//
// Registrations made through the API (source 'remote') and TTL results are kept on disk
// (lib/agentpersist.ts) and restored at start; config-file definitions come from the config.
//
// deregister_critical_service_after: every 30 s, a service whose check has been critical for
// longer than that (at least a minute) is deregistered, as Consul's reaper does.
//
// Alias checks (lib/alias.ts): without alias_node they read this local state, re-evaluated after
// every local change (notifyLocalChange); with alias_node they read the catalog (aliasCatalog).
//
// Maintenance mode is persisted like an API registration and enabled again at restore.
//
// Not here: docker and OS-service checks, tokens and ACLs.

import type { RuntimeConfig } from './config.js';
import type { CheckDefinition, CheckStatus, ServiceDefinition } from './definitions.js';
import { readCheckDefinition, validateCheck } from './definitions.js';
import { ObjectReader } from './decode.js';
import { formatDuration } from './duration.js';
import type { CatalogClient, LocalCheck, LocalService, LocalState } from './antientropy.js';
import * as catalog from './catalog.js';
import type { EndpointDeps } from './endpoints.js';
import { deregisterAtLeader, registerAtLeader } from './endpoints_catalog.js';
import { blockingQuery, defaultQueryOptions, readQuery } from './query.js';
import { CheckError, startIntervalCheck, startTtlCheck, type CheckClock, type CheckRunnerOptions, type CheckTimer, type RunningCheck, type TtlCheck } from './checks.js';
import type { AgentPersistence } from './agentpersist.js';
import { startLocalAlias, startRemoteAlias, type AliasCatalog, type LocalAliasCheck } from './alias.js';
import type { Logger } from './log.js';
import type { ReadTxn } from './memdb.js';
import type { CheckDefinitionRecord, NodeRecord, ServiceRecord } from './schema.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** Where a definition came from: a config file ('local') or the HTTP API ('remote'). */
export type DefinitionSource = 'local' | 'remote';

export class LocalAgentError extends Error {
  constructor(
    readonly status: 400 | 404 | 500,
    message: string,
  ) {
    super(message);
    this.name = 'LocalAgentError';
  }
}

export interface LocalAgentOptions {
  readonly config: RuntimeConfig;
  readonly state: LocalState;
  readonly clock: CheckClock;
  readonly rng: () => number;
  readonly logger: Logger;
  /** Where API registrations and TTL results are kept across restarts; none in -dev mode. */
  readonly persistence?: AgentPersistence;
  /** Milliseconds since the epoch (TTL expiry of persisted check states). */
  readonly nowMs: () => number;
  /** Where alias checks with alias_node read that node's checks. */
  readonly aliasCatalog: AliasCatalog;
}

// ---------------------------------------------------------------------------------------------
// Limits and texts

export const NODE_MAINTENANCE_CHECK_ID = '_node_maintenance';
export const SERVICE_MAINTENANCE_PREFIX = '_service_maintenance:';
const NODE_MAINTENANCE_DEFAULT_REASON = 'Maintenance mode is enabled for this node, but no reason was provided. This is a default message.';
const SERVICE_MAINTENANCE_DEFAULT_REASON = 'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.';
const SCRIPTS_DISABLED_REMOTE = "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true";
/** Consul's checkReapInterval: how often long-critical services are looked for. */
export const REAP_INTERVAL_MS = 30_000;
/** How far behind the leader an alias check's catalog read may be (alias.go's MaxStaleDuration). */
const ALIAS_MAX_STALE_MS = 15_000;
/** Consul's CheckDeregisterIntervalMin: deregister_critical_service_after below this is raised to it. */
export const REAP_AFTER_MS_MIN = 60_000;
const SCRIPTS_DISABLED_LOCAL = "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true";

// ---------------------------------------------------------------------------------------------
// Exported API

export class LocalAgent {
  private readonly options: LocalAgentOptions;
  /** The runner of each check that has one (TTL checks are TtlChecks). */
  private readonly runners = new Map<string, RunningCheck>();
  /** The local alias checks among the runners: each local change notifies them, and only them. */
  private readonly localAliases = new Map<string, LocalAliasCheck>();
  private readonly checkLogger: Logger;
  /** The TTL of each TTL check, for the expiry of its persisted result. */
  private readonly ttlNanos = new Map<string, number>();
  /** When each critical check turned critical (Consul's CriticalTime), for the reaper. */
  private readonly criticalSinceMs = new Map<string, number>();
  /** deregister_critical_service_after of each service check that has one (at least a minute). */
  private readonly reapAfterMs = new Map<string, number>();
  private reapTimer: CheckTimer | undefined;
  /** IDs of the services and node checks that came from the config files (replaced on reload). */
  private readonly configServiceIds = new Set<string>();
  private readonly configCheckIds = new Set<string>();
  private isStopped = false;

  constructor(options: LocalAgentOptions) {
    this.options = options;
    this.checkLogger = options.logger.named('checks');
    this.scheduleReap();
  }

  /** agent.AddService: the service and its checks, all validated first. */
  registerService(definition: ServiceDefinition, source: DefinitionSource, replaceExistingChecks = false): void {
    const service = localService(definition);
    const checks = definition.checks.map((check, index) => {
      const id = check.id !== '' ? check.id : definition.checks.length === 1 ? `service:${service.ID}` : `service:${service.ID}:${index + 1}`;
      const name = check.name !== '' ? check.name : `Service '${service.Service}' check`;
      return { ...check, id, name, serviceId: service.ID };
    });
    for (const check of checks) this.validateCheckDefinition(check, source);
    const { state } = this.options;
    state.addService(service);
    const kept = new Set(checks.map((check) => check.id));
    if (replaceExistingChecks) {
      for (const existing of state.checks()) {
        if (existing.ServiceID === service.ID && !kept.has(existing.CheckID) && !existing.CheckID.startsWith(SERVICE_MAINTENANCE_PREFIX)) this.removeCheckAndRunner(existing.CheckID);
      }
    }
    for (const check of checks) this.addCheckAndRunner(check, service);
    if (source === 'remote') this.options.persistence?.saveService({ definition, source });
    else this.configServiceIds.add(service.ID);
  }

  /**
   * The config files' services and node checks after a reload: those no longer declared are
   * deregistered, the others (re)registered; registration keeps surviving checks' status. Every
   * definition is validated first, so a bad reload changes nothing.
   */
  reloadDefinitions(services: readonly ServiceDefinition[], checks: readonly CheckDefinition[]): void {
    for (const service of services) {
      if (service.name === '') throw new LocalAgentError(400, 'Missing service name');
      for (const check of service.checks) this.validateCheckDefinition(check, 'local');
    }
    for (const check of checks) {
      if (check.name === '') throw new LocalAgentError(400, 'Missing check name');
      this.validateCheckDefinition(check, 'local');
    }
    const keptServices = new Set(services.map((service) => (service.id !== '' ? service.id : service.name)));
    const keptChecks = new Set(checks.map((check) => (check.id !== '' ? check.id : check.name)));
    for (const id of [...this.configCheckIds]) {
      if (keptChecks.has(id)) continue;
      this.configCheckIds.delete(id);
      if (this.options.state.check(id) !== undefined) this.removeCheckAndRunner(id);
    }
    for (const id of [...this.configServiceIds]) {
      if (keptServices.has(id)) continue;
      this.configServiceIds.delete(id);
      if (this.options.state.service(id) !== undefined) this.deregisterService(id);
    }
    for (const service of services) this.registerService(service, 'local', true);
    for (const check of checks) this.registerCheck(check, 'local');
  }

  /**
   * Loads what the API registered before a restart (loadServices, loadChecks, loadCheckState).
   * A definition that also comes from the config files is left to the config; one that no longer
   * registers is logged and dropped; a TTL result not yet expired is restored.
   */
  restore(): void {
    const persistence = this.options.persistence;
    if (persistence === undefined) return;
    const { state, logger } = this.options;
    const loaded = persistence.load();
    for (const { definition, source } of loaded.services) {
      const id = definition.id !== '' ? definition.id : definition.name;
      if (state.service(id) !== undefined) continue;
      try {
        this.registerService(definition, source);
      } catch (error) {
        logger.warn('dropping a persisted service that no longer registers', { service: id, error: String(error) });
        persistence.removeService(id);
      }
    }
    for (const { definition, source, isMaintenance } of loaded.checks) {
      if (state.check(definition.id) !== undefined) continue;
      try {
        if (isMaintenance === true) this.restoreMaintenance(definition);
        else this.registerCheck(definition, source);
      } catch (error) {
        logger.warn('dropping a persisted check that no longer registers', { check: definition.id, error: String(error) });
        persistence.removeCheck(definition.id);
      }
    }
    for (const saved of loaded.checkStates.values()) {
      if (saved.expiresAtMs <= this.options.nowMs() || !this.isTtl(saved.checkId)) {
        persistence.removeCheckState(saved.checkId);
        continue;
      }
      state.updateCheck(saved.checkId, saved.status, saved.output);
    }
  }

  private restoreMaintenance(definition: CheckDefinition): void {
    if (definition.serviceId === '') this.nodeMaintenance(true, definition.notes);
    else this.serviceMaintenance(definition.serviceId, true, definition.notes);
  }

  /** agent.RemoveService: the service and its checks. */
  deregisterService(id: string): void {
    const { state } = this.options;
    if (state.service(id) === undefined) throw new LocalAgentError(404, `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`);
    for (const check of state.checks()) {
      if (check.ServiceID !== id) continue;
      this.stopRunner(check.CheckID);
      this.options.persistence?.removeCheck(check.CheckID);
    }
    state.removeService(id);
    this.options.persistence?.removeService(id);
  }

  /** agent.AddCheck for /v1/agent/check/register and node checks from config files. */
  registerCheck(definition: CheckDefinition, source: DefinitionSource): void {
    if (definition.name === '') throw new LocalAgentError(400, 'Missing check name');
    const check = { ...definition, id: definition.id !== '' ? definition.id : definition.name };
    const service = check.serviceId === '' ? undefined : this.options.state.service(check.serviceId);
    if (check.serviceId !== '' && service === undefined) throw new LocalAgentError(404, `ServiceID ${JSON.stringify(check.serviceId)} does not exist`);
    this.validateCheckDefinition(check, source);
    this.addCheckAndRunner(check, service);
    if (source === 'remote') this.options.persistence?.saveCheck({ definition: check, source });
    else this.configCheckIds.add(check.id);
  }

  deregisterCheck(id: string): void {
    if (this.options.state.check(id) === undefined) throw new LocalAgentError(404, `Unknown check ID ${JSON.stringify(id)}. Ensure that the check ID is passed, not the check name.`);
    this.removeCheckAndRunner(id);
    this.options.persistence?.removeCheck(id);
  }

  /** updateTTLCheck: pass/warn/fail/update on a TTL check. */
  updateTtl(id: string, status: CheckStatus, output: string): void {
    if (this.options.state.check(id) === undefined) throw new LocalAgentError(404, `Unknown check ID ${JSON.stringify(id)}. Ensure that the check ID is passed, not the check name.`);
    const runner = this.runners.get(id);
    if (runner === undefined || !isTtlCheck(runner)) throw new LocalAgentError(500, `CheckID ${JSON.stringify(id)} does not have associated TTL`);
    const recorded = runner.setStatus(status, output);
    const ttlNanos = this.ttlNanos.get(id) ?? 0;
    this.options.persistence?.saveCheckState({ checkId: id, status, output: recorded, expiresAtMs: this.options.nowMs() + ttlNanos / 1e6 });
  }

  /** EnableServiceMaintenance / DisableServiceMaintenance; kept across restarts, as Consul persists the check. */
  serviceMaintenance(serviceId: string, enable: boolean, reason: string): void {
    const service = this.options.state.service(serviceId);
    if (service === undefined) throw new LocalAgentError(404, `No service registered with ID ${JSON.stringify(serviceId)}`);
    this.setMaintenance(maintenanceCheck(`${SERVICE_MAINTENANCE_PREFIX}${serviceId}`, 'Service Maintenance Mode', reason || SERVICE_MAINTENANCE_DEFAULT_REASON, service), enable);
  }

  /** EnableNodeMaintenance / DisableNodeMaintenance; kept across restarts. */
  nodeMaintenance(enable: boolean, reason: string): void {
    this.setMaintenance(maintenanceCheck(NODE_MAINTENANCE_CHECK_ID, 'Node Maintenance Mode', reason || NODE_MAINTENANCE_DEFAULT_REASON, undefined), enable);
  }

  /** Whether the check is a TTL check (for views that say so). */
  isTtl(id: string): boolean {
    const runner = this.runners.get(id);
    return runner !== undefined && isTtlCheck(runner);
  }

  /**
   * reapServicesInternal: a service whose check has been critical for longer than its
   * deregister_critical_service_after is deregistered (with all its checks).
   */
  reapCriticalServices(): void {
    const now = this.options.clock.nowMs();
    for (const [checkId, afterMs] of this.reapAfterMs) {
      const since = this.criticalSinceMs.get(checkId);
      const check = this.options.state.check(checkId);
      if (since === undefined || check === undefined || check.ServiceID === '' || now - since <= afterMs) continue;
      if (this.options.state.service(check.ServiceID) === undefined) continue;
      this.options.logger.info('Check for service has been critical for too long; deregistered service', { service: check.ServiceID, check: checkId });
      this.deregisterService(check.ServiceID);
    }
  }

  /** Re-evaluates the local alias checks after a change of the local state. */
  notifyLocalChange(): void {
    for (const alias of this.localAliases.values()) alias.notifyChange();
  }

  /** Stops every check runner (agent shutdown). */
  stop(): void {
    this.isStopped = true;
    this.reapTimer?.cancel();
    for (const runner of this.runners.values()) runner.stop();
    this.runners.clear();
  }

  /** Adds or removes a maintenance check (enabling twice keeps the first reason, as Consul does). */
  private setMaintenance(check: LocalCheck, enable: boolean): void {
    const { state, persistence } = this.options;
    const isEnabled = state.check(check.CheckID) !== undefined;
    if (!enable) {
      if (isEnabled) state.removeCheck(check.CheckID);
      persistence?.removeCheck(check.CheckID);
      return;
    }
    if (isEnabled) return;
    state.addCheck(check);
    const fields = { CheckID: check.CheckID, Name: check.Name, Notes: check.Notes, ServiceID: check.ServiceID };
    persistence?.saveCheck({ definition: readCheckDefinition(new ObjectReader(fields, '', [])), source: 'local', isMaintenance: true });
  }

  private noteStatus(checkId: string, status: CheckStatus): void {
    if (status !== 'critical') this.criticalSinceMs.delete(checkId);
    else if (!this.criticalSinceMs.has(checkId)) this.criticalSinceMs.set(checkId, this.options.clock.nowMs());
  }

  private scheduleReap(): void {
    this.reapTimer = this.options.clock.setTimeout(() => {
      if (this.isStopped) return;
      this.reapCriticalServices();
      this.scheduleReap();
    }, REAP_INTERVAL_MS);
  }

  private validateCheckDefinition(check: CheckDefinition, source: DefinitionSource): void {
    const problems = validateCheck(check);
    if (problems.length > 0) throw new LocalAgentError(400, `Invalid check: ${problems[0]}`);
    if (check.args.length > 0 && !this.allowsScripts(source)) throw new LocalAgentError(500, source === 'remote' ? SCRIPTS_DISABLED_REMOTE : SCRIPTS_DISABLED_LOCAL);
    if (check.dockerContainerId !== '' || check.osService !== '') {
      throw new LocalAgentError(400, 'Invalid check: docker and OS service checks are not supported by this agent');
    }
  }

  private allowsScripts(source: DefinitionSource): boolean {
    const { config } = this.options;
    return config.enableRemoteScriptChecks || (source === 'local' && config.enableLocalScriptChecks);
  }

  /** Adds the check to the local state (keeping a surviving check's status and output) and (re)starts its runner. */
  private addCheckAndRunner(definition: CheckDefinition, service: LocalService | undefined): void {
    const { state, config } = this.options;
    const previous = state.check(definition.id);
    const check = localCheck(definition, service);
    state.addCheck(previous === undefined ? check : { ...check, Status: previous.Status, Output: previous.Output });
    this.stopRunner(definition.id);
    if (definition.ttlNanos > 0) this.ttlNanos.set(definition.id, definition.ttlNanos);
    this.noteStatus(definition.id, state.check(definition.id)?.Status ?? 'critical');
    if (definition.deregisterCriticalServiceAfterNanos > 0 && service !== undefined) {
      const afterMs = definition.deregisterCriticalServiceAfterNanos / 1e6;
      if (afterMs < REAP_AFTER_MS_MIN) this.options.logger.warn('check has deregister interval below minimum', { check: definition.id, minimum: formatDuration(REAP_AFTER_MS_MIN * 1e6) });
      this.reapAfterMs.set(definition.id, Math.max(afterMs, REAP_AFTER_MS_MIN));
    }
    const runnerOptions = {
      checkId: definition.id,
      definition,
      sink: (checkId: string, status: CheckStatus, output: string) => {
        this.noteStatus(checkId, status);
        state.updateCheck(checkId, status, output);
      },
      clock: this.options.clock,
      rng: this.options.rng,
      logger: this.checkLogger,
      outputMaxBytes: config.checkOutputMaxSize,
      allowScripts: true,
    };
    try {
      this.runners.set(definition.id, this.startRunner(definition, runnerOptions));
    } catch (error) {
      state.removeCheck(definition.id);
      if (error instanceof CheckError) throw new LocalAgentError(error.code === 'ERR_SCRIPTS_DISABLED' ? 500 : 400, error.message);
      throw error;
    }
  }

  private startRunner(definition: CheckDefinition, runnerOptions: CheckRunnerOptions): RunningCheck {
    const { sink, clock } = runnerOptions;
    if (definition.aliasNode !== '') {
      const target = { node: definition.aliasNode, serviceId: definition.aliasService };
      const ownNode = this.options.state.nodeIdentity().Node;
      return startRemoteAlias({ checkId: definition.id, target, ownNode, catalog: this.options.aliasCatalog, sink, clock, logger: this.checkLogger });
    }
    if (definition.aliasService !== '') {
      const { state } = this.options;
      const serviceExists = (id: string): boolean => state.service(id) !== undefined;
      const alias = startLocalAlias({ checkId: definition.id, serviceId: definition.aliasService, localChecks: () => state.checks(), serviceExists, sink, clock });
      this.localAliases.set(definition.id, alias);
      return alias;
    }
    return definition.ttlNanos > 0 ? startTtlCheck(runnerOptions) : startIntervalCheck(runnerOptions);
  }

  private removeCheckAndRunner(id: string): void {
    this.stopRunner(id);
    this.options.state.removeCheck(id);
  }

  private stopRunner(id: string): void {
    this.runners.get(id)?.stop();
    this.runners.delete(id);
    this.localAliases.delete(id);
    this.ttlNanos.delete(id);
    this.criticalSinceMs.delete(id);
    this.reapAfterMs.delete(id);
  }
}

/**
 * Anti-entropy's view of the servers on a server agent: its own state store (read as a default,
 * not stale, read, as Consul's anti-entropy does) and Raft for the writes.
 */
export function serverCatalogClient(deps: EndpointDeps): CatalogClient {
  return {
    async readNode(nodeName) {
      const reply = await readQuery(deps.query, defaultQueryOptions(deps.query), (txn) => {
        const node = catalog.getNode(txn, nodeName).value;
        return { index: 1, value: { node, services: servicesOfNode(txn, node), checks: catalog.nodeChecks(txn, nodeName).value } };
      });
      return reply.value;
    },
    // A follower's anti-entropy writes at the leader, as Consul's agent does through RPC.
    async register(request) {
      await registerAtLeader(deps, request);
    },
    async deregister(request) {
      await deregisterAtLeader(deps, request);
    },
  };
}

/**
 * Alias checks' reads on a server agent: its own state store, stale allowed up to 15 s behind
 * (the leader's view otherwise), blocking on the checks table as Health.NodeChecks does.
 */
export function serverAliasCatalog(deps: EndpointDeps): AliasCatalog {
  const options = (minQueryIndex: number, maxQueryTimeMs: number) => ({ minQueryIndex, maxQueryTimeMs, consistency: 'stale' as const, maxStaleMs: ALIAS_MAX_STALE_MS, filter: '', token: '' });
  return {
    async nodeChecks(node, minIndex, maxWaitMs, signal) {
      const reply = await blockingQuery(deps.query, options(minIndex, maxWaitMs), signal, (txn) => catalog.nodeChecks(txn, node));
      return { index: reply.meta.index, checks: reply.value };
    },
    async nodeHasService(node, serviceId) {
      const reply = await readQuery(deps.query, options(0, deps.query.defaultQueryTimeMs), (txn) => ({ index: 1, value: servicesOfNode(txn, catalog.getNode(txn, node).value).some((service) => service.ID === serviceId) }));
      return reply.value;
    },
  };
}

/** A client agent's view until RPC forwarding exists (issue 9): no server to sync with. */
export function unreachableCatalogClient(reason: string): CatalogClient {
  const fail = (): Promise<never> => Promise.reject(new Error(reason));
  return { readNode: fail, register: fail, deregister: fail };
}

/** A client agent's alias reads until RPC forwarding exists (issue 9): every read fails with `reason`. */
export function unreachableAliasCatalog(reason: string): AliasCatalog {
  const fail = (): Promise<never> => Promise.reject(new Error(reason));
  return { nodeChecks: fail, nodeHasService: fail };
}

// ---------------------------------------------------------------------------------------------
// Private helpers

function isTtlCheck(runner: RunningCheck): runner is TtlCheck {
  return typeof (runner as Partial<TtlCheck>).setStatus === 'function';
}

/** The services of a node found by name (getNode); none when not found: nodeServices alone would also match a node ID prefix. */
function servicesOfNode(txn: ReadTxn, node: NodeRecord | undefined): readonly ServiceRecord[] {
  return node === undefined ? [] : (catalog.nodeServices(txn, node.Node).value?.Services ?? []);
}

function localService(definition: ServiceDefinition): LocalService {
  const taggedAddresses: Record<string, { Address: string; Port: number }> = {};
  for (const [name, address] of Object.entries(definition.taggedAddresses)) taggedAddresses[name] = { Address: address.address, Port: address.port };
  return {
    ID: definition.id !== '' ? definition.id : definition.name,
    Service: definition.name,
    Kind: definition.kind,
    Tags: [...definition.tags],
    Address: definition.address,
    TaggedAddresses: taggedAddresses,
    Meta: { ...definition.meta },
    Port: definition.port,
    SocketPath: definition.socketPath,
    Weights: { Passing: definition.weights.passing, Warning: definition.weights.warning },
    EnableTagOverride: definition.enableTagOverride,
  };
}

/** structs.CheckType -> structs.HealthCheck: type, timings and the definition the catalog shows. */
function localCheck(definition: CheckDefinition, service: LocalService | undefined): LocalCheck {
  const duration = (nanos: number): string => (nanos > 0 ? formatDuration(nanos) : '');
  const record: Record<string, unknown> = {};
  if (definition.http !== '') Object.assign(record, { HTTP: definition.http, Method: definition.method || undefined, Header: Object.keys(definition.header).length > 0 ? definition.header : undefined, Body: definition.body || undefined });
  if (definition.tcp !== '') record['TCP'] = definition.tcp;
  if (definition.udp !== '') record['UDP'] = definition.udp;
  if (definition.grpc !== '') record['GRPC'] = definition.grpc;
  if (definition.tlsServerName !== '') record['TLSServerName'] = definition.tlsServerName;
  if (definition.tlsSkipVerify) record['TLSSkipVerify'] = true;
  if (definition.intervalNanos > 0) record['Interval'] = duration(definition.intervalNanos);
  if (definition.timeoutNanos > 0) record['Timeout'] = duration(definition.timeoutNanos);
  if (definition.deregisterCriticalServiceAfterNanos > 0) record['DeregisterCriticalServiceAfter'] = duration(definition.deregisterCriticalServiceAfterNanos);
  for (const key of Object.keys(record)) if (record[key] === undefined) delete record[key];
  return {
    CheckID: definition.id,
    Name: definition.name,
    Status: definition.status === '' ? 'critical' : definition.status,
    Notes: definition.notes,
    Output: '',
    ServiceID: service?.ID ?? '',
    ServiceName: service?.Service ?? '',
    ServiceTags: service ? [...service.Tags] : [],
    Type: checkType(definition),
    Interval: duration(definition.intervalNanos),
    Timeout: duration(definition.timeoutNanos),
    Definition: record as CheckDefinitionRecord,
  };
}

/** structs.CheckType.Type(). */
function checkType(definition: CheckDefinition): string {
  if (definition.ttlNanos > 0) return 'ttl';
  if (definition.http !== '') return 'http';
  if (definition.tcp !== '') return 'tcp';
  if (definition.udp !== '') return 'udp';
  if (definition.grpc !== '') return 'grpc';
  if (definition.h2ping !== '') return 'h2ping';
  if (definition.args.length > 0) return 'script';
  if (definition.aliasNode !== '' || definition.aliasService !== '') return 'alias';
  return '';
}

function maintenanceCheck(id: string, name: string, notes: string, service: LocalService | undefined): LocalCheck {
  return {
    CheckID: id,
    Name: name,
    Status: 'critical',
    Notes: notes,
    Output: '',
    ServiceID: service?.ID ?? '',
    ServiceName: service?.Service ?? '',
    ServiceTags: service ? [...service.Tags] : [],
    Type: 'maintenance',
    Interval: '',
    Timeout: '',
    Definition: {},
  };
}
