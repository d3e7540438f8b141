// The agent: one per host, composed of the subsystems the configuration turns on.
//
// It owns the node's identity (name, node ID persisted in the data directory), starts the
// listeners, serves the agent and status endpoints, and shuts everything down in reverse
// order. A server listens on the server port (lib/rpc.ts), which serves RPCConsul and hands Raft
// connections to its Raft node (lib/raftnode.ts): with -dev or -bootstrap it bootstraps a
// single-server cluster when it has no state; with -bootstrap-expect it polls its -retry-join
// addresses until it knows the expected servers (lib/discovery.ts) and bootstraps with them.
// Gossip, the catalog endpoints and DNS join here as their modules land.
//
// Reference: Consul agent/agent.go (Start, ShutdownAgent, setupNodeID) and
// agent/agent_endpoint.go (AgentSelf), agent/status_endpoint.go.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { arch, availableParallelism, hostname, platform } from 'node:os';
import { join } from 'node:path';
import type { RuntimeConfig } from './config.js';
import { formatDuration, NANOS_PER_MILLI } from './duration.js';
import { encodeCommand, Fsm, type ApplyResult, type Command } from './fsm.js';
import { BootstrapDiscovery, SERVER_INFO_METHOD, type ServerInfo } from './discovery.js';
import { writeFileDurably } from './disk.js';
import type { EndpointDeps } from './endpoints.js';
import { agentRoutes, localMember, nodeTaggedAddresses, type AgentMember } from './endpoints_agent.js';
import { catalogRoutes, catalogRpcMethods } from './endpoints_catalog.js';
import { healthRoutes } from './endpoints_health.js';
import { kvRoutes } from './endpoints_kv.js';
import { operatorRoutes, operatorRpcMethods } from './endpoints_operator.js';
import { consulRpcMethods } from './endpoints_rpc.js';
import { sessionRoutes, sessionRpcMethods } from './endpoints_session.js';
import { txnRoutes, txnRpcMethods } from './endpoints_txn.js';
import { HttpError, listenHttp, type HttpListener, type HttpRequest, type HttpResponse, type HttpRoute } from './http.js';
import { buildVersion, LeaderReconciler, selfRegistration } from './leader.js';
import { Autopilot, autopilotConfig, autopilotInputFromConfig, configFromAutopilotRecord, nodeMetaById } from './autopilot.js';
import type { Logger } from './log.js';
import { keyringErrorText, Membership, type PoolName } from './membership.js';
import { decodeJsonBody, parseFirstJsonValue } from './endpoints.js';
import { peersFromJson } from './raftconfig.js';
import type { RaftServer } from './snapshot.js';
import { DnsResolver, listenDns, type DnsListener } from './dns.js';
import { localDnsCatalog, unreachableDnsCatalog } from './dnscatalog.js';
import { Recursor } from './dnsrecursor.js';
import { AgentPersistence } from './agentpersist.js';
import { LocalState, StateSyncer } from './antientropy.js';
import { REAL_CLOCK } from './checks.js';
import { localAgentRoutes } from './endpoints_localagent.js';
import { LocalAgent, LocalAgentError, serverAliasCatalog, serverCatalogClient, unreachableAliasCatalog, unreachableCatalogClient } from './localagent.js';
import type { KeyOperation } from './serfquery.js';
import { eventRoutes } from './endpoints_event.js';
import { decodeUserEvent, encodeUserEvent, matchesTarget, REMOTE_EXEC_EVENT, USER_EVENT_PREFIX, USER_EVENT_VERSION, UserEventLog } from './userevents.js';
import { Metrics, startRuntimeStats } from './metrics.js';
import { RaftNode } from './raftnode.js';
import { RpcPool, RpcServer, type RpcMethod } from './rpc.js';
import { SessionTimers } from './sessionttl.js';
import { StateStore } from './state.js';
import { CONSUL_VERSION, RELEASE_DATE, REVISION } from './version.js';

/** Consul's answer on a client agent, which cannot reach a server until the RPC layer exists (issue 9). */
export const NO_SERVERS_TEXT = 'No known Consul servers';

/** Consul's leadershipTransfer retry count on leave. */
const LEADERSHIP_TRANSFER_ATTEMPTS = 3;
/** How long a leaving follower waits to be removed from the Raft configuration (Consul: 5 s). */
const LEAVE_RAFT_REMOVAL_WAIT_MS = 5_000;
const LEAVE_RAFT_REMOVAL_POLL_MS = 50;
/** What peers.info says to an operator who finds it (our words; Consul writes its own). */
const PEERS_INFO_TEXT = `This directory holds consul-ts's Raft data.

For outage recovery, as in Consul, write peers.json here while every server is stopped: a JSON
list of the servers that are to form the cluster, each {"id": "<node ID>", "address":
"<ip>:<server port>", "non_voter": false}. On its next start a server applies that list as its
Raft configuration and deletes the file. Use it only when a quorum of servers is lost for good:
entries that were not committed may be applied.

This file marks the directory as started by a version that reads peers.json; a peers.json found
before it existed is deleted unread.
`;

/** The file in the data directory that keeps the node ID across restarts (Consul's name). */
export const NODE_ID_FILE = 'node-id';

export interface AgentOptions {
  readonly config: RuntimeConfig;
  readonly logger: Logger;
  /** Produces a node ID when none is configured or persisted; injected for tests. */
  readonly newNodeId?: () => string;
  /** Reads the configuration again (same flags and files), for SIGHUP and PUT /v1/agent/reload; throws ConfigError. */
  readonly reloadConfig?: () => RuntimeConfig;
}

/** A running agent. */
export class Agent {
  private readonly listeners: HttpListener[] = [];
  private readonly dnsListeners: DnsListener[] = [];
  /** This agent's own services and checks, their runners, and the loop syncing them to the catalog. */
  private localState: LocalState | undefined;
  private localAgent: LocalAgent | undefined;
  private stateSyncer: StateSyncer | undefined;
  /** Settles at the next local change, then is replaced: one promise shared by every hash-blocking read. */
  private localChange = changeSignal();
  private isShutDown = false;
  /** The cluster state this server replicates (empty on client agents, which forward reads). */
  readonly state = new StateStore({ nowMs: Date.now });
  private readonly fsm = new Fsm(this.state);
  private raft: RaftNode | undefined;
  private rpc: RpcServer | undefined;
  /** Connections to the other servers, for calls forwarded to the leader. */
  private readonly rpcPool = new RpcPool();
  private discovery: BootstrapDiscovery | undefined;
  /** The gossip pools (LAN; WAN on servers). */
  private membership: Membership | undefined;
  /** The user events this agent received and kept (/v1/event/list). */
  private readonly userEvents = new UserEventLog();
  private requestShutdown: () => void = () => undefined;
  readonly metrics: Metrics;
  private readonly stopRuntimeStats: () => void;
  /** The leader's duties: session TTL timers and its own catalog registration (servers only). */
  private sessionTimers: SessionTimers | undefined;
  private leaderReconciler: LeaderReconciler | undefined;
  private autopilot: Autopilot | undefined;
  private endpointDeps: EndpointDeps | undefined;
  /** Resolves when the agent asks to be stopped (after PUT /v1/agent/leave), for bin/agent.ts. */
  readonly whenShutdownRequested = new Promise<void>((resolve) => (this.requestShutdown = resolve));

  private constructor(
    readonly config: RuntimeConfig,
    readonly nodeId: string,
    private readonly logger: Logger,
    private readonly reloadConfig: (() => RuntimeConfig) | undefined = undefined,
  ) {
    const { telemetry } = config;
    this.metrics = new Metrics({
      nowMs: Date.now,
      serviceName: telemetry.metricsPrefix,
      prometheusRetentionMs: telemetry.prometheusRetentionMs,
      ...(telemetry.disableHostname ? {} : { hostName: hostname() }),
    });
    this.stopRuntimeStats = startRuntimeStats(this.metrics);
  }

  /** Starts the agent: resolves the node ID, binds every listener. Rejects on bind failure. */
  static async start(options: AgentOptions): Promise<Agent> {
    const { config } = options;
    const logger = options.logger.named('agent');
    const nodeId = resolveNodeId(config, options.newNodeId ?? randomUUID, logger);
    const agent = new Agent(config, nodeId, logger, options.reloadConfig);
    try {
      if (config.serverMode) await agent.startRaft();
      await agent.startGossip();
      agent.startLocalState();
      await agent.startHttp();
      await agent.startDns();
    } catch (error) {
      await agent.shutdown();
      throw error;
    }
    return agent;
  }

  /** The addresses the HTTP API is listening on (host:port), for banners and tests. */
  httpAddresses(): string[] {
    return this.listeners.map(({ address }) => (address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`));
  }

  /**
   * Commits a state change through Raft and resolves with the FSM's result. Rejects with the
   * Raft node's coded error when this agent is not the leader or leadership is lost.
   */
  async applyCommand(command: Command): Promise<ApplyResult> {
    if (!this.raft) throw new Error('this agent is not a server: it has no Raft to apply commands to');
    return this.raft.apply(encodeCommand(command));
  }

  /**
   * Prepares for a graceful stop (Consul Server.Leave): a leader with other voters hands
   * leadership to one of them (TimeoutNow), trying three times as Consul does, and removes
   * itself from the configuration if that fails, so the cluster never waits out an election
   * timeout for a server that left on purpose. Then the gossip leave; a follower then waits (up
   * to LEAVE_RAFT_REMOVAL_WAIT_MS) until the leader, seeing it leave, has removed it from the
   * Raft configuration, so stopping cannot cost the cluster its quorum (Consul Server.Leave).
   */
  async leave(): Promise<void> {
    const wasLeader = this.raft?.isLeader ?? false;
    await this.transferLeadershipForLeave();
    await this.membership?.leave();
    if (!wasLeader) await this.waitForRaftRemoval();
  }

  private async waitForRaftRemoval(): Promise<void> {
    const raft = this.raft;
    if (raft === undefined) return;
    const isMember = (): boolean => raft.status().configuration.servers.some((server) => server.id === this.nodeId);
    const giveUpAt = Date.now() + LEAVE_RAFT_REMOVAL_WAIT_MS;
    while (isMember()) {
      if (Date.now() >= giveUpAt) {
        this.logger.warn('failed to leave raft configuration gracefully, timeout');
        return;
      }
      await new Promise((resolveWait) => setTimeout(resolveWait, LEAVE_RAFT_REMOVAL_POLL_MS));
    }
  }

  private async transferLeadershipForLeave(): Promise<void> {
    const raft = this.raft;
    if (raft === undefined || !raft.isLeader || raft.peers().length <= 1) return;
    this.logger.info('server starting leave');
    for (let attempt = 0; attempt < LEADERSHIP_TRANSFER_ATTEMPTS; attempt++) {
      try {
        await raft.transferLeadership();
        this.logger.info('successfully transferred leadership', { attempt, retry_limit: LEADERSHIP_TRANSFER_ATTEMPTS });
        return;
      } catch (error) {
        this.logger.error('failed to transfer leadership attempt, will retry', { attempt, retry_limit: LEADERSHIP_TRANSFER_ATTEMPTS, error: String(error) });
        if (!raft.isLeader) return;
      }
    }
    this.logger.error('failed to transfer leadership, removing the server', { error: `failed to transfer leadership in ${LEADERSHIP_TRANSFER_ATTEMPTS} attempts` });
    await raft.changeConfiguration({ op: 'removeServer', id: this.nodeId });
  }

  /**
   * Consul's ReloadConfig, for the parts that can change at run time here: the services and
   * checks of the config files (new ones registered, removed ones deregistered). Rejects with
   * the reason (a config error, a definition that does not register) and then changes nothing.
   */
  async reload(): Promise<void> {
    if (this.reloadConfig === undefined || this.localAgent === undefined) throw new Error('this agent has no configuration source to reload');
    const fresh = this.reloadConfig();
    this.logger.info('Reloading configuration...');
    this.localAgent.reloadDefinitions(fresh.services, fresh.checks);
    await this.stateSyncer?.whenSynced();
  }

  /** Stops the listeners first (no new requests), then Raft. Safe to call more than once. */
  async shutdown(): Promise<void> {
    if (this.isShutDown) return;
    this.isShutDown = true;
    this.logger.info('Requesting shutdown');
    await this.discovery?.stop();
    this.stateSyncer?.stop();
    this.localAgent?.stop();
    await this.membership?.close();
    this.sessionTimers?.stop();
    this.leaderReconciler?.stop();
    this.autopilot?.stop();
    this.stopRuntimeStats();
    await Promise.all(this.listeners.splice(0).map((listener) => listener.close()));
    await Promise.all(this.dnsListeners.splice(0).map((listener) => listener.close()));
    // The RPC listener stops accepting at once but only finishes when every connection it
    // accepted is gone, including those handed to Raft, which Raft's shutdown closes.
    const rpcClosed = this.rpc?.close();
    this.rpcPool.close();
    await this.raft?.shutdown();
    await rpcClosed;
    this.logger.info('shutdown complete');
  }

  private async startRaft(): Promise<void> {
    const { config } = this;
    const address = `${config.advertiseAddrLan}:${config.ports.server}`;
    const isBootstrapping = config.devMode || config.bootstrap;
    const hasDataDir = config.dataDir !== '' && !config.devMode;
    const recovery = hasDataDir ? this.peersJsonRecovery(join(config.dataDir, 'raft')) : undefined;
    const raft = await RaftNode.start({
      id: this.nodeId,
      address,
      ...(config.dataDir !== '' && !config.devMode ? { dataDir: config.dataDir } : { inMemory: true }),
      bootstrap: isBootstrapping ? [{ suffrage: 0, id: this.nodeId, address }] : undefined,
      fsm: this.fsm,
      logger: this.logger.named('server').named('raft'),
      electionTimeoutMs: config.raft.electionTimeoutMs,
      snapshotThreshold: config.raft.snapshotThreshold,
      snapshotIntervalMs: config.raft.snapshotIntervalMs,
      trailingLogs: config.raft.trailingLogs,
      transport: { isExternallyAccepted: true },
      ...(recovery === undefined ? {} : { recover: recovery.servers }),
    }).catch((error: unknown) => {
      throw recovery === undefined ? error : new Error(`recovery failed: ${error instanceof Error ? error.message : String(error)}`);
    });
    if (recovery !== undefined) {
      try {
        rmSync(recovery.path);
      } catch (error) {
        await raft.shutdown();
        throw new Error(`recovery failed to delete peers.json, please delete manually (see peers.info for details): ${String(error)}`);
      }
      this.logger.info('deleted peers.json file after successful recovery');
    }
    this.raft = raft;
    this.startLeaderDuties(raft);
    this.rpc = await RpcServer.listen({
      host: config.bindAddr,
      port: config.ports.server,
      logger: this.logger.named('server').named('rpc'),
      methods: this.rpcMethods(raft),
      onRaftConnection: (socket, head) => raft.acceptConnection(socket, head),
    });
    this.logger.info('Started RPC server', { address: `${config.bindAddr}:${this.rpc.port}` });
    if (isBootstrapping || config.bootstrapExpect === 0) return;
    if (raft.hasExistingState) {
      this.logger.info('Raft data found, disabling bootstrap mode');
      return;
    }
    this.discovery = BootstrapDiscovery.start({
      self: () => this.serverInfo(),
      candidates: () => this.membership?.lanServers() ?? [],
      intervalMs: config.retryIntervalLanMs,
      logger: this.logger.named('server'),
      bootstrap: (servers) => raft.bootstrap(servers),
    });
  }

  /**
   * What the API endpoints run on, and the leader's duties (Consul's establishLeadership): on
   * becoming leader, after a barrier (so the FSM holds every committed entry), arm the session
   * TTL timers and reconcile this server's own catalog registration; stop both on losing it.
   */
  private startLeaderDuties(raft: RaftNode): void {
    const { config } = this;
    const deps: EndpointDeps = {
      query: { state: this.state, server: raft, rpcHoldTimeoutMs: config.rpcHoldTimeoutMs, rng: Math.random, defaultQueryTimeMs: config.defaultQueryTimeMs, maxQueryTimeMs: config.maxQueryTimeMs },
      apply: (command) => raft.apply(encodeCommand(command)),
      config,
      logger: this.logger.named('http'),
      nowMs: Date.now,
      datacenters: () => this.membership?.datacentersByDistance() ?? [config.datacenter],
      forward: (address, serviceMethod, args) => this.rpcPool.call(address, serviceMethod, args),
    };
    this.endpointDeps = deps;
    const timers = new SessionTimers();
    this.sessionTimers = timers;
    const registration = new LeaderReconciler({
      isLeader: () => raft.isLeader,
      datacenter: config.datacenter,
      selfName: config.nodeName,
      members: () => this.membership?.members('lan'),
      read: (query) => this.state.read(query),
      apply: (command) => raft.apply(encodeCommand(command)),
      desiredSelf: () => selfRegistration({ datacenter: config.datacenter, nodeId: this.nodeId, member: this.member(), taggedAddresses: nodeTaggedAddresses(config), nodeMeta: nodeMeta(config) }),
      raft: {
        servers: () => raft.status().configuration.servers,
        addNonvoter: (id, address) => raft.changeConfiguration({ op: 'addNonvoter', id, address }),
        removeServer: (id) => raft.removeServer(id),
      },
      timers: { setTimeout: (callback, delayMs) => setTimeout(callback, delayMs).unref(), clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>) },
      nowMs: Date.now,
      logger: this.logger.named('leader'),
      metrics: this.metrics,
    });
    this.leaderReconciler = registration;
    registration.start();
    const autopilot = new Autopilot({
      config: () => {
        const stored = this.state.read((txn) => autopilotConfig(txn)).value;
        return stored ? configFromAutopilotRecord(stored) : config.autopilot;
      },
      isLeader: () => raft.isLeader,
      status: () => raft.status(),
      tickMs: raft.tickMs,
      poolServers: () => new Map((this.membership?.members('lan') ?? []).filter((member) => member.Tags['role'] === 'consul' && member.Tags['dc'] === config.datacenter).map((member) => [member.Tags['id'] ?? '', { name: member.Name, status: member.Status, version: buildVersion(member.Tags['build'] ?? '') }])),
      promote: (id) => raft.changeConfiguration({ op: 'promote', id }),
      forceLeave: (name) => this.membership?.forceLeave('lan', name, false),
      nowMs: Date.now,
      logger: this.logger.named('autopilot'),
      selfId: this.nodeId,
    });
    this.autopilot = autopilot;
    raft.onLeadershipChange((isLeader) => {
      if (!isLeader) {
        timers.stop();
        registration.leadershipChanged(false);
        autopilot.stop();
        return;
      }
      raft.readIndex().then(
        () => {
          if (!raft.isLeader) return;
          timers.start(deps);
          registration.leadershipChanged(true);
          autopilot.start();
          void this.initializeAutopilotConfig(raft);
        },
        (error: unknown) => this.logger.warn('barrier after gaining leadership failed', { error: String(error) }),
      );
    });
  }

  /** Consul's getOrCreateAutopilotConfig: a new leader stores the agent's settings if Raft has none. */
  private async initializeAutopilotConfig(raft: RaftNode): Promise<void> {
    if (this.state.read((txn) => autopilotConfig(txn)).value !== undefined) return;
    try {
      // CAS on 0: a concurrent operator PUT wins.
      await raft.apply(encodeCommand({ type: 'autopilot-set', config: autopilotInputFromConfig(this.config.autopilot), casIndex: 0 }));
    } catch (error) {
      this.logger.warn('failed to initialize the autopilot configuration', { error: String(error) });
    }
  }

  private runningAutopilot(): Autopilot {
    if (this.autopilot === undefined) throw new HttpError(500, 'autopilot is not running');
    return this.autopilot;
  }

  /**
   * Consul's peers.json outage recovery. `<raft dir>/peers.info` marks a data dir this version
   * has started on: written (with an explanation) on the first start, when a peers.json found
   * beside it is deleted unread, as Consul does for one left by an old version. Later, a
   * peers.json is read and its servers become the configuration (RaftNode `recover`); the
   * caller deletes the file once Raft has started. Throws Consul's texts.
   */
  private peersJsonRecovery(raftDir: string): { path: string; servers: RaftServer[] } | undefined {
    const peersFile = join(raftDir, 'peers.json');
    const infoFile = join(raftDir, 'peers.info');
    if (!existsSync(infoFile)) {
      mkdirSync(raftDir, { recursive: true });
      writeFileSync(infoFile, PEERS_INFO_TEXT);
      if (existsSync(peersFile)) {
        rmSync(peersFile);
        this.logger.info('deleted peers.json file (see peers.info for details)');
      }
      return undefined;
    }
    if (!existsSync(peersFile)) return undefined;
    this.logger.info('found peers.json file, recovering Raft configuration...');
    const parsed = parseFirstJsonValue(readFileSync(peersFile));
    try {
      if (parsed.error !== undefined) throw new Error(parsed.error);
      if (parsed.value === undefined) throw new Error('EOF');
      return { path: peersFile, servers: peersFromJson(parsed.value) };
    } catch (error) {
      throw new Error(`recovery failed to parse peers.json: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** The server port's methods: Consul's (lib/endpoints_rpc.ts) and our discovery query. */
  private rpcMethods(raft: RaftNode): Map<string, RpcMethod> {
    const deps = this.endpointDeps;
    const timers = this.sessionTimers;
    assert(deps !== undefined && timers !== undefined, 'leader duties are set up before the RPC server');
    return new Map<string, RpcMethod>([
      ...consulRpcMethods({ raft, state: this.state, datacenter: this.config.datacenter }),
      // The write methods followers forward here: sessions, txn, catalog, operator.
      ...sessionRpcMethods(deps, timers),
      ...txnRpcMethods(deps),
      ...catalogRpcMethods(deps),
      ...operatorRpcMethods(deps, raft),
      // Consul's Status.Ping has an empty struct reply, `80` on the wire.
      ['Status.Ping', () => ({})],
      [SERVER_INFO_METHOD, () => this.serverInfo()],
    ]);
  }

  /** This server as bootstrap_expect discovery sees it. */
  private serverInfo(): ServerInfo {
    const { config } = this;
    return {
      ID: this.nodeId,
      Address: `${config.advertiseAddrLan}:${config.ports.server}`,
      Expect: config.bootstrapExpect,
      Datacenter: config.datacenter,
      HasState: this.raft?.hasExistingState ?? false,
    };
  }

  /** Binds the gossip pools and starts the configured joins (Consul's setupSerf and retryJoin). */
  private async startGossip(): Promise<void> {
    this.membership = await Membership.start({
      config: this.config,
      tags: memberTags(this.config, this.nodeId),
      logger: this.logger,
      onUserEvent: (event) => this.onUserEvent(event.name, event.payload, Number(event.lTime)),
      metrics: this.metrics,
      onMemberEvent: (pool, event) => {
        if (pool === 'lan') for (const member of event.members) this.leaderReconciler?.memberChanged(member.name);
      },
    });
    // The pool is known from now on: reconcile all of it (and reap what it no longer has).
    this.leaderReconciler?.poolChanged();
    this.logger.info('Started gossip', { lan: `${this.config.serfBindAddrLan}:${this.membership.lan.transport.port}`, ...(this.membership.wan ? { wan: `${this.config.serfBindAddrWan}:${this.membership.wan.transport.port}` } : {}) });
  }

  /** /v1/operator/keyring: serf's key queries over the pools, Consul's answers and errors. */
  private async keyring(request: HttpRequest): Promise<HttpResponse> {
    const { method, query } = request;
    let key = '';
    if (method !== 'GET') {
      const body = decodeJsonBody(request) as { Key?: unknown } | null;
      const given = body !== null && typeof body === 'object' ? Object.entries(body).find(([name]) => name.toLowerCase() === 'key')?.[1] : undefined;
      if (given !== undefined && typeof given !== 'string') throw new HttpError(400, 'Request decode failed: json: cannot unmarshal into Go struct field keyringArgs.Key of type string');
      key = given ?? '';
    }
    let relayFactor = 0;
    const relayText = query.get('relay-factor') ?? '';
    if (relayText !== '') {
      if (!/^-?\d+$/.test(relayText)) throw new HttpError(400, `Error parsing relay factor: strconv.Atoi: parsing ${JSON.stringify(relayText)}: invalid syntax`);
      relayFactor = Number(relayText);
      if (relayFactor < 0 || relayFactor > 5) throw new HttpError(400, 'Invalid relay-factor: relay factor must be in range: [0, 5]');
    }
    const localOnlyText = query.get('local-only') ?? '';
    const isLocalOnly = /^(1|t|T|TRUE|true|True)$/.test(localOnlyText);
    if (localOnlyText !== '' && !isLocalOnly && !/^(0|f|F|FALSE|false|False)$/.test(localOnlyText)) throw new HttpError(400, `Error parsing local-only: strconv.ParseBool: parsing ${JSON.stringify(localOnlyText)}: invalid syntax`);
    if (isLocalOnly && method !== 'GET') throw new HttpError(400, 'Invalid use of local-only: local-only can only be set for GET requests');
    const membership = this.requireMembership();
    const operations: Record<string, KeyOperation> = { GET: 'list-keys', POST: 'install-key', PUT: 'use-key', DELETE: 'remove-key' };
    let responses;
    try {
      responses = isLocalOnly ? membership.localKeyring() : await membership.keyringOperation(operations[method]!, key, relayFactor);
    } catch (error) {
      throw new HttpError(500, (error as Error).message);
    }
    const errors = keyringErrorText(responses);
    if (errors !== undefined) throw new HttpError(500, errors);
    return method === 'GET' ? { json: responses } : { text: '' };
  }

  /** Consul's handleEvents: decode, filter on this node (and its services), keep. */
  private onUserEvent(name: string, payload: Uint8Array, lTime: number): void {
    if (!name.startsWith(USER_EVENT_PREFIX)) return;
    const event = decodeUserEvent(payload, lTime);
    if (event === undefined) return this.logger.error('Failed to decode event', { name });
    if (event.Version > USER_EVENT_VERSION) this.logger.warn('Event version may have unsupported features', { version: event.Version, event: event.Name });
    if (!matchesTarget(event, { nodeName: this.config.nodeName, services: () => this.localState?.services() ?? [] })) return;
    if (event.Name === REMOTE_EXEC_EVENT) return this.logger.info('ignoring remote exec event, disabled', { id: event.ID });
    this.logger.debug('new event', { event: event.Name, id: event.ID });
    this.userEvents.add(event);
  }

  private requireMembership(): Membership {
    if (this.membership === undefined) throw new HttpError(500, 'gossip is not running');
    return this.membership;
  }

  private async startHttp(): Promise<void> {
    const { config } = this;
    if (config.ports.http <= 0) return;
    const httpLogger = this.logger.named('http');
    for (const host of config.clientAddrs) {
      const listener = await listenHttp(host, config.ports.http, {
        routes: this.routes(),
        logger: httpLogger,
        isPrettyByDefault: config.devMode,
        isUiEnabled: config.uiEnabled,
        maxConnsPerClient: config.limits.httpMaxConnsPerClient,
        // Consul sends the default ACL policy on every routed response, ACLs on or off.
        responseHeaders: { 'X-Consul-Default-ACL-Policy': config.aclDefaultPolicy },
      });
      this.listeners.push(listener);
      this.logger.info('Started HTTP server', { address: `${host}:${listener.address.port}`, network: 'tcp' });
    }
  }

  /**
   * The local state: services and checks from the config files, their check runners, and the
   * anti-entropy loop that keeps the catalog in step (on a server, through its own Raft; a client
   * agent has no server to sync with until RPC forwarding exists, issue 9, and keeps retrying).
   */
  private startLocalState(): void {
    const { config } = this;
    const logger = this.logger.named('local');
    const syncer: { current: StateSyncer | undefined } = { current: undefined };
    const localAgent: { current: LocalAgent | undefined } = { current: undefined };
    const state = new LocalState({
      node: { ID: this.nodeId, Node: config.nodeName, Address: config.advertiseAddrLan, Datacenter: config.datacenter, TaggedAddresses: nodeTaggedAddresses(config), Meta: nodeMeta(config) },
      clock: REAL_CLOCK,
      rng: Math.random,
      checkUpdateIntervalMs: config.checkUpdateIntervalMs,
      logger,
      onChange: () => {
        syncer.current?.trigger();
        localAgent.current?.notifyLocalChange();
        this.signalLocalChange();
      },
    });
    const persistence = config.dataDir !== '' && !config.devMode ? new AgentPersistence(config.dataDir, logger) : undefined;
    const deps = this.endpointDeps;
    const aliasCatalog = deps === undefined ? unreachableAliasCatalog(NO_SERVERS_TEXT) : serverAliasCatalog(deps);
    const agent = new LocalAgent({ config, state, clock: REAL_CLOCK, rng: Math.random, logger, nowMs: Date.now, aliasCatalog, ...(persistence ? { persistence } : {}) });
    localAgent.current = agent;
    try {
      for (const service of config.services) agent.registerService(service, 'local');
      for (const check of config.checks) agent.registerCheck(check, 'local');
      agent.restore();
    } catch (error) {
      agent.stop();
      if (error instanceof LocalAgentError) throw new Error(`Failed to register service or check from the configuration: ${error.message}`);
      throw error;
    }
    const client = deps === undefined ? unreachableCatalogClient(NO_SERVERS_TEXT) : serverCatalogClient(deps);
    syncer.current = new StateSyncer({ state, client, clock: REAL_CLOCK, rng: Math.random, logger: logger.named('anti_entropy'), clusterSize: () => this.membership?.members('lan')?.length ?? 1 });
    this.localState = state;
    this.localAgent = agent;
    this.stateSyncer = syncer.current;
    syncer.current.start();
  }

  /** DNS on every client address, UDP and TCP (ports.dns, 8600; negative disables it). */
  private async startDns(): Promise<void> {
    const { config } = this;
    if (config.ports.dns <= 0) return;
    const logger = this.logger.named('dns');
    const deps = this.endpointDeps;
    const resolver = new DnsResolver({
      config: config.dns,
      domain: config.domain,
      altDomain: config.altDomain,
      datacenter: config.datacenter,
      // A client agent has no state store; its reads need RPC forwarding to a server (issue 9).
      catalog: deps === undefined ? unreachableDnsCatalog(NO_SERVERS_TEXT) : localDnsCatalog(deps),
      recursor: config.dns.recursors.length === 0 ? undefined : new Recursor({ recursors: config.dns.recursors, strategy: config.dns.recursorStrategy, timeoutMs: config.dns.recursorTimeoutMs, rng: Math.random, logger }),
      rng: Math.random,
      nowMs: Date.now,
      logger,
    });
    for (const host of config.clientAddrs) {
      const listener = await listenDns(host, config.ports.dns, resolver, logger);
      this.dnsListeners.push(listener);
      this.logger.info('Started DNS server', { address: `${host}:${listener.udpPort}`, network: 'udp' });
      this.logger.info('Started DNS server', { address: `${host}:${listener.tcpPort}`, network: 'tcp' });
    }
  }

  private routes(): HttpRoute[] {
    const members = (pool: PoolName): AgentMember[] | undefined => this.membership?.members(pool);
    return [
      ...this.localRoutes(),
      ...this.localAgentRoutes(),
      ...agentRoutes({ config: this.config, nodeId: this.nodeId, metrics: this.metrics, members: () => members('lan') ?? [this.member()], wanMembers: () => members('wan') ?? [] }),
      ...eventRoutes({
        datacenter: this.config.datacenter,
        log: this.userEvents,
        fire: (event) => this.requireMembership().userEvent(`${USER_EVENT_PREFIX}${event.Name}`, encodeUserEvent(event)),
      }),
      ...this.clusterRoutes(),
    ];
  }

  /**
   * The Raft-backed routes (catalog, health, KV, sessions, txn, operator). A client agent has no
   * server to ask until the RPC layer exists (issue 9): it answers them with Consul's
   * "No known Consul servers" at once (Consul first holds the request for rpc_hold_timeout).
   */
  private clusterRoutes(): HttpRoute[] {
    const deps = this.endpointDeps;
    const raft = this.raft;
    if (deps === undefined || raft === undefined || this.sessionTimers === undefined) {
      const refuse = (): never => {
        throw new HttpError(500, NO_SERVERS_TEXT);
      };
      const paths: [string, string[]][] = [
        ['/v1/kv/', ['GET', 'PUT', 'DELETE']], ['/v1/txn', ['PUT']], ['/v1/catalog/', ['GET', 'PUT']], ['/v1/health/', ['GET']],
        ['/v1/session/', ['GET', 'PUT']], ['/v1/operator/raft/', ['GET', 'DELETE']],
      ];
      return paths.map(([path, methods]) => ({ path, methods, handler: refuse }));
    }
    return [...kvRoutes(deps), ...txnRoutes(deps), ...sessionRoutes(deps, this.sessionTimers), ...catalogRoutes(deps), ...healthRoutes(deps), ...operatorRoutes(deps, raft, { health: () => this.runningAutopilot().health(), state: () => this.runningAutopilot().state((id) => this.state.read((txn) => ({ index: 0, value: nodeMetaById(txn, id) })).value) })];
  }

  private signalLocalChange(): void {
    const settled = this.localChange;
    this.localChange = changeSignal();
    settled.resolve();
  }

  private localAgentRoutes(): HttpRoute[] {
    const { localAgent: agent, localState: state, stateSyncer: syncer } = this;
    if (agent === undefined || state === undefined || syncer === undefined) return [];
    const logger = this.logger.named('http');
    const syncNow = async (): Promise<void> => {
      syncer.trigger();
      // Consul syncs before answering a registration; a failure is logged and retried by the loop.
      await syncer.whenSynced().catch((error: unknown) => logger.warn('failed to sync the local state', { error: String(error) }));
    };
    return localAgentRoutes({ config: this.config, agent, state, syncNow, nextChange: () => this.localChange.promise, logger });
  }

  private localRoutes(): HttpRoute[] {
    return [
      { path: '/v1/agent/self', methods: ['GET'], handler: () => ({ json: this.self() }) },
      {
        path: '/v1/agent/reload',
        methods: ['PUT'],
        handler: async () => {
          try {
            await this.reload();
          } catch (error) {
            throw new HttpError(500, `Failed to reload configs: ${error instanceof Error ? error.message : String(error)}`);
          }
          return { text: '' };
        },
      },
      // A client agent has no Raft of its own and, until the RPC layer exists, no server to ask:
      // it knows of no leader and no peers, which Consul reports as "" and [].
      { path: '/v1/status/leader', methods: ['GET'], handler: () => ({ json: this.raft?.leader() ?? '' }) },
      { path: '/v1/status/peers', methods: ['GET'], handler: () => ({ json: this.raft?.peers() ?? [] }) },
      // Consul's AgentJoin: 200 with an empty body, or 500 with the join error.
      {
        path: '/v1/agent/join/',
        methods: ['PUT'],
        handler: async (request) => {
          const pool: PoolName = (request.query.get('wan') ?? '') !== '' ? 'wan' : 'lan';
          await this.requireMembership().join(pool, [request.param]).catch((error: unknown) => {
            throw new HttpError(500, (error as Error).message);
          });
          return { text: '' };
        },
      },
      // Consul's AgentForceLeave: a failed (or any) member is marked left; ?prune forgets it.
      {
        path: '/v1/agent/force-leave/',
        methods: ['PUT'],
        handler: (request) => {
          const pool: PoolName = (request.query.get('wan') ?? '') !== '' ? 'wan' : 'lan';
          try {
            this.requireMembership().forceLeave(pool, request.param, request.query.has('prune'));
          } catch (error) {
            throw new HttpError(500, (error as Error).message);
          }
          return { text: '' };
        },
      },
      // Consul's OperatorKeyringEndpoint: list (GET), install (POST), use (PUT), remove (DELETE).
      { path: '/v1/operator/keyring', methods: ['GET', 'POST', 'PUT', 'DELETE'], handler: (request) => this.keyring(request) },
      // Consul's AgentLeave: leave, then shut down; the command then exits 0.
      {
        path: '/v1/agent/leave',
        methods: ['PUT'],
        handler: async () => {
          await this.leave();
          setImmediate(this.requestShutdown);
          return { text: '' };
        },
      },
    ];
  }

  /** GET /v1/agent/self, in Consul's shape (agent/agent_endpoint.go Self). */
  self(): Record<string, unknown> {
    const { config } = this;
    return {
      Config: {
        Datacenter: config.datacenter,
        PrimaryDatacenter: config.primaryDatacenter,
        NodeName: config.nodeName,
        NodeID: this.nodeId,
        Revision: REVISION,
        Server: config.serverMode,
        Version: CONSUL_VERSION,
        BuildDate: RELEASE_DATE.toISOString().replace('.000Z', 'Z'),
      },
      DebugConfig: debugConfig(config, this.nodeId),
      Coord: config.disableCoordinates ? null : { Vec: [0, 0, 0, 0, 0, 0, 0, 0], Error: 1.5, Adjustment: 0, Height: 1e-5 },
      Member: this.member(),
      Stats: this.stats(),
      Meta: nodeMeta(config),
    };
  }

  /** This agent as a gossip member; Status is alive, since an agent is alive to itself. */
  private member(): AgentMember {
    return localMember(this.config, memberTags(this.config, this.nodeId));
  }

  private stats(): Record<string, Record<string, string>> {
    const { config } = this;
    const consul: Record<string, string> = config.serverMode
      ? { acl: config.aclEnabled ? 'enabled' : 'disabled', bootstrap: String(config.bootstrap), known_datacenters: String(this.membership?.datacentersByDistance().length ?? 1), leader: String(this.raft?.isLeader ?? false), leader_addr: this.raft?.leader() ?? '', server: 'true' }
      : { acl: config.aclEnabled ? 'enabled' : 'disabled', known_servers: '0', server: 'false' };
    return {
      build: { prerelease: '', revision: REVISION, version: CONSUL_VERSION, version_metadata: '' },
      consul,
      runtime: { arch: goArch(arch()), cpu_count: String(availableParallelism()), max_procs: String(availableParallelism()), os: platform(), version: process.version },
    };
  }
}

/**
 * The tags this agent advertises in gossip (Consul agent/consul/server.go and client.go):
 * how other agents learn its role, datacenter, ID, versions and, for servers, the RPC port.
 */
export function memberTags(config: RuntimeConfig, nodeId: string): Record<string, string> {
  const tags: Record<string, string> = {
    acls: config.aclEnabled ? '1' : '0',
    build: `${CONSUL_VERSION}:${REVISION}`,
    dc: config.datacenter,
    id: nodeId,
    role: config.serverMode ? 'consul' : 'node',
    segment: '',
    vsn: '2',
    vsn_max: '3',
    vsn_min: '2',
  };
  if (!config.serverMode) return tags;
  tags['port'] = String(config.ports.server);
  tags['raft_vsn'] = String(config.raft.protocol);
  tags['wan_join_port'] = String(config.ports.serfWan);
  if (config.bootstrap) tags['bootstrap'] = '1';
  if (config.bootstrapExpect > 0) tags['expect'] = String(config.bootstrapExpect);
  return tags;
}

/** Node meta as the catalog shows it: the configured pairs plus Consul's reserved keys. */
export function nodeMeta(config: RuntimeConfig): Record<string, string> {
  return { ...config.nodeMeta, 'consul-network-segment': '', 'consul-version': CONSUL_VERSION };
}

/**
 * The node ID: configured, else read from `<data_dir>/node-id`, else new (and persisted, with
 * fsync, so a restart keeps the identity other agents know this node by).
 */
function resolveNodeId(config: RuntimeConfig, newNodeId: () => string, logger: Logger): string {
  if (config.nodeId !== '') return config.nodeId;
  if (config.dataDir === '' || config.devMode) return newNodeId();
  const path = join(config.dataDir, NODE_ID_FILE);
  const existing = readOptional(path)?.trim();
  if (existing) {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(existing)) {
      throw new Error(`failed to setup node ID: loaded node ID is invalid: ${JSON.stringify(existing)}`);
    }
    return existing.toLowerCase();
  }
  const nodeId = newNodeId();
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  writeFileDurably(path, nodeId);
  logger.info('generated new node ID', { id: nodeId });
  return nodeId;
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Go's GOARCH names for Node's arch names, so tools reading Stats.runtime see familiar values. */
function goArch(nodeArch: string): string {
  return nodeArch === 'x64' ? 'amd64' : nodeArch === 'ia32' ? '386' : nodeArch;
}

/**
 * The sanitized runtime configuration Consul returns as DebugConfig, with Consul's field names
 * for the settings this agent has. Secrets are always "hidden", as Consul does.
 */
function debugConfig(config: RuntimeConfig, nodeId: string): Record<string, unknown> {
  const duration = (ms: number): string => formatDuration(ms * NANOS_PER_MILLI);
  const clientUrls = (network: string, port: number): string[] => (port > 0 ? config.clientAddrs.map((host) => `${network}://${host}:${port}`) : []);
  return {
    ACLDefaultPolicy: config.aclDefaultPolicy,
    ACLDownPolicy: config.aclDownPolicy,
    ACLsEnabled: config.aclEnabled,
    AdvertiseAddrLAN: config.advertiseAddrLan,
    AdvertiseAddrWAN: config.advertiseAddrWan,
    AutopilotCleanupDeadServers: config.autopilot.cleanupDeadServers,
    AutopilotLastContactThreshold: duration(config.autopilot.lastContactThresholdMs),
    AutopilotMaxTrailingLogs: config.autopilot.maxTrailingLogs,
    AutopilotMinQuorum: config.autopilot.minQuorum,
    AutopilotServerStabilizationTime: duration(config.autopilot.serverStabilizationTimeMs),
    BindAddr: config.bindAddr,
    Bootstrap: config.bootstrap,
    BootstrapExpect: config.bootstrapExpect,
    CheckOutputMaxSize: config.checkOutputMaxSize,
    CheckUpdateInterval: duration(config.checkUpdateIntervalMs),
    ClientAddrs: config.clientAddrs,
    ConsulRaftElectionTimeout: duration(config.raft.electionTimeoutMs),
    ConsulRaftHeartbeatTimeout: duration(config.raft.heartbeatTimeoutMs),
    ConsulRaftLeaderLeaseTimeout: duration(config.raft.leaderLeaseTimeoutMs),
    DNSAddrs: [...clientUrls('tcp', config.ports.dns), ...clientUrls('udp', config.ports.dns)],
    DNSARecordLimit: config.dns.aRecordLimit,
    DNSAllowStale: config.dns.allowStale,
    DNSAltDomain: config.altDomain,
    DNSDomain: config.domain,
    DNSEnableTruncate: config.dns.enableTruncate,
    DNSMaxStale: duration(config.dns.maxStaleMs),
    DNSNodeMetaTXT: config.dns.enableAdditionalNodeMetaTxt,
    DNSNodeTTL: duration(config.dns.nodeTtlMs),
    DNSOnlyPassing: config.dns.onlyPassing,
    DNSPort: config.ports.dns,
    DNSRecursorStrategy: config.dns.recursorStrategy,
    DNSRecursorTimeout: duration(config.dns.recursorTimeoutMs),
    DNSRecursors: config.dns.recursors,
    DNSUDPAnswerLimit: config.dns.udpAnswerLimit,
    DataDir: config.dataDir,
    Datacenter: config.datacenter,
    DefaultQueryTime: duration(config.defaultQueryTimeMs),
    DevMode: config.devMode,
    DisableCoordinates: config.disableCoordinates,
    DisableKeyringFile: config.disableKeyringFile,
    DisableRemoteExec: config.disableRemoteExec,
    DisableUpdateCheck: config.disableUpdateCheck,
    EnableLocalScriptChecks: config.enableLocalScriptChecks,
    EnableRemoteScriptChecks: config.enableRemoteScriptChecks,
    EncryptKey: 'hidden',
    EncryptVerifyIncoming: config.encryptVerifyIncoming,
    EncryptVerifyOutgoing: config.encryptVerifyOutgoing,
    GRPCPort: config.ports.grpc,
    GRPCTLSPort: config.ports.grpcTls,
    GossipLANProbeInterval: duration(config.gossipLan.probeIntervalMs),
    GossipLANProbeTimeout: duration(config.gossipLan.probeTimeoutMs),
    GossipLANSuspicionMult: config.gossipLan.suspicionMult,
    HTTPAddrs: clientUrls('tcp', config.ports.http),
    HTTPMaxConnsPerClient: config.limits.httpMaxConnsPerClient,
    HTTPPort: config.ports.http,
    HTTPSPort: config.ports.https,
    KVMaxValueSize: config.limits.kvMaxValueSize,
    LeaveOnTerm: config.leaveOnTerm,
    Logging: { LogJSON: config.logJson, LogLevel: config.logLevel.toUpperCase() },
    MaxQueryTime: duration(config.maxQueryTimeMs),
    NodeID: nodeId,
    NodeMeta: config.nodeMeta,
    NodeName: config.nodeName,
    PrimaryDatacenter: config.primaryDatacenter,
    RPCHoldTimeout: duration(config.rpcHoldTimeoutMs),
    RaftProtocol: config.raft.protocol,
    RaftSnapshotInterval: duration(config.raft.snapshotIntervalMs),
    RaftSnapshotThreshold: config.raft.snapshotThreshold,
    RaftTrailingLogs: config.raft.trailingLogs,
    ReconnectTimeoutLAN: duration(config.reconnectTimeoutLanMs),
    ReconnectTimeoutWAN: duration(config.reconnectTimeoutWanMs),
    RejoinAfterLeave: config.rejoinAfterLeave,
    RetryJoinIntervalLAN: duration(config.retryIntervalLanMs),
    RetryJoinIntervalWAN: duration(config.retryIntervalWanMs),
    RetryJoinLAN: config.retryJoinLan,
    RetryJoinMaxAttemptsLAN: config.retryMaxAttemptsLan,
    RetryJoinMaxAttemptsWAN: config.retryMaxAttemptsWan,
    RetryJoinWAN: config.retryJoinWan,
    Revision: REVISION,
    SerfAdvertiseAddrLAN: `tcp://${config.advertiseAddrLan}:${config.ports.serfLan}`,
    SerfBindAddrLAN: `tcp://${config.serfBindAddrLan}:${config.ports.serfLan}`,
    SerfPortLAN: config.ports.serfLan,
    SerfPortWAN: config.ports.serfWan,
    ServerMode: config.serverMode,
    ServerPort: config.ports.server,
    SessionTTLMin: duration(config.sessionTtlMinMs),
    SkipLeaveOnInt: config.skipLeaveOnInt,
    TaggedAddresses: config.taggedAddresses,
    TranslateWANAddrs: config.translateWanAddrs,
    TxnMaxReqLen: config.limits.txnMaxReqLen,
    UIConfig: { ContentPath: config.uiContentPath, Enabled: config.uiEnabled },
    Version: CONSUL_VERSION,
  };
}

/** A promise and the function that settles it. */
function changeSignal(): { readonly promise: Promise<void>; readonly resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((settle) => (resolve = settle));
  return { promise, resolve };
}
