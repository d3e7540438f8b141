// The Raft operator endpoints and the status methods: Consul's Operator.RaftGetConfiguration,
// Operator.RaftRemovePeerByAddress/ByID, Status.Leader and Status.Peers, with the
// /v1/operator/raft/ HTTP routes (the /v1/status/ routes are served by lib/agent.ts).
//
// GET /v1/operator/raft/configuration lists the servers of the latest Raft configuration with
// the node name the catalog holds for each server's node ID ("(unknown)" when none: Consul looks
// the address up among its Serf members instead; we have no Serf yet, and the catalog's node is
// the same member), ProtocolVersion "3" (raft protocol 3 is the only one spoken here), and
// LastIndex as this server knows it (its own last index; on the leader, each follower's match
// index). It is served by the leader unless `?stale`, like every RPC Consul forwards; it is not a
// blocking query, and Consul writes no X-Consul-Index for it.
//
// DELETE /v1/operator/raft/peer?id=|?address= removes one server from the configuration. As in
// Consul, naming a server that is not in the configuration is an error (an operator typo), and
// the request is a write: it waits for a leader like any write.
//
// GET /v1/operator/autopilot/configuration: autopilot's settings as Raft holds them (a new
// leader stores the agent's `autopilot` config there), api.AutopilotConfiguration with Go
// duration strings; before that, Consul's 500 `autopilot config not initialized yet`. PUT
// replaces them for every server (missing fields are zero, as Go decodes them), answering
// `true`, or with `?cas=<ModifyIndex>` whether it wrote.
//
// GET /v1/operator/autopilot/health: autopilot's view of every server (lib/autopilot.ts), from
// the leader; 200 when the cluster is healthy, 429 with the same body when it is not.
// GET /v1/operator/autopilot/state: the same view in api.AutopilotState's shape (servers by ID,
// Raft status, node meta, leader, voters).
//
// POST /v1/operator/raft/transfer-leader[?id=] hands leadership to that voter, or to the most
// up-to-date one (hashicorp LeadershipTransfer[ToServer], Consul's attemptLeadershipTransfer):
// {"Success": true}, or a 500 with the reason (Consul's text for an ID it cannot find).
//
// On a follower, peer removal and the autopilot PUT are forwarded to the leader
// (Operator.RaftRemovePeerByAddress/ByID, Operator.AutopilotSetConfiguration, served there by
// operatorRpcMethods); health, state and transfer-leader answer only on the leader.
//
// What it does not do: ACLs (operator:read/write), forwarding to the
// leader (a follower answers with NOT_LEADER_PREFIX and the leader's address, as writes do).
//
// References: Consul agent/operator_endpoint.go (OperatorRaftConfiguration, OperatorRaftPeer),
// agent/consul/operator_raft_endpoint.go, agent/status_endpoint.go,
// agent/consul/status_endpoint.go, agent/structs/operator.go (RaftServer,
// RaftConfigurationResponse); spec §3.7.

import type { EndpointDeps } from './endpoints.js';
import { HttpError, type HttpRequest, type HttpRoute } from './http.js';
import { goQuote } from './kvs.js';
import { checkDatacenter, parseQueryOptions, raftErrorToHttp, readQuery, waitForLeader, type QueryOptions } from './query.js';
import type { RaftStatus } from './raft.js';
import { autopilotConfig, autopilotConfigJson, parseAutopilotConfigBody, type AutopilotConfigInput, type AutopilotStateJson, type OperatorHealthJson } from './autopilot.js';
import { forwardToLeader, parseFirstJsonValue } from './endpoints.js';
import { checkRpcDatacenter, rpcFields, rpcString } from './endpoints_rpc.js';
import { parseAutopilotSetRequest } from './fsm.js';
import type { MsgpackValue } from './msgpack.js';
import type { RpcMethod } from './rpc.js';
import { SUFFRAGE } from './raftconfig.js';
import { TABLES, type NodeRecord } from './schema.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/**
 * What the operator endpoints need of the Raft node. lib/raftnode.ts RaftNode provides status(),
 * leader() and peers(); removeServer(id) is a membership change through the core's
 * changeConfiguration({op: 'removeServer', id}) that resolves once the change commits.
 */
export interface OperatorRaft {
  status(): RaftStatus;
  leader(): string;
  peers(): string[];
  removeServer(id: string): Promise<void>;
  /** Resolves once this server is no longer the leader; rejects with the core's reason. */
  transferLeadership(targetId?: string): Promise<void>;
}

/** structs.RaftServer, in its JSON field order. */
export interface RaftServerJson {
  readonly ID: string;
  readonly Node: string;
  readonly Address: string;
  readonly Leader: boolean;
  readonly ProtocolVersion: string;
  readonly Voter: boolean;
  readonly LastIndex: number;
}

/** structs.RaftConfigurationResponse. */
export interface RaftConfigurationJson {
  readonly Servers: RaftServerJson[];
  readonly Index: number;
}

// ---------------------------------------------------------------------------------------------
// Limits and texts

/** Node name shown for a server the catalog does not know (Consul's text). */
export const UNKNOWN_NODE_NAME = '(unknown)';
/** The Raft protocol version every server here speaks. */
export const RAFT_PROTOCOL_VERSION = '3';
export const PEER_MISSING_PARAM_TEXT = "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove";
export const PEER_BOTH_PARAMS_TEXT = 'Must specify only one of ?id or ?address';

// ---------------------------------------------------------------------------------------------
// RPC-shaped methods

/** Status.Leader: the leader's Raft address, "" when none is known. */
export function statusLeader(raft: Pick<OperatorRaft, 'leader'>): string {
  return raft.leader();
}

/** Status.Peers: the voters' Raft addresses. */
export function statusPeers(raft: Pick<OperatorRaft, 'peers'>): string[] {
  return raft.peers();
}

/** Operator.RaftGetConfiguration: the latest configuration's servers, with their catalog node names. */
export async function operatorRaftGetConfiguration(deps: EndpointDeps, raft: OperatorRaft, options: QueryOptions): Promise<RaftConfigurationJson> {
  const reply = await readQuery(deps.query, options, (txn) => {
    const status = raft.status();
    const leader = raft.leader();
    const servers = status.configuration.servers.map((server): RaftServerJson => ({
      ID: server.id,
      Node: txn.first<NodeRecord>(TABLES.nodes, 'uuid', server.id)?.Node ?? UNKNOWN_NODE_NAME,
      Address: server.address,
      Leader: leader !== '' && server.address === leader,
      ProtocolVersion: RAFT_PROTOCOL_VERSION,
      Voter: server.suffrage === SUFFRAGE.voter,
      LastIndex: lastIndexOf(status, server.id),
    }));
    return { index: status.configuration.index, value: { Servers: servers, Index: status.configuration.index } };
  });
  return reply.value;
}

/** Operator.RaftRemovePeerByAddress: the server at `address` leaves the configuration. */
export async function operatorRaftRemovePeerByAddress(deps: EndpointDeps, raft: OperatorRaft, address: string): Promise<void> {
  await requireLeader(deps);
  const server = raft.status().configuration.servers.find((candidate) => candidate.address === address);
  if (server === undefined) throw new HttpError(500, `address ${goQuote(address)} was not found in the Raft configuration`);
  await removeServer(deps, raft, server.id);
}

/** Operator.RaftRemovePeerByID: the server with `id` leaves the configuration. */
export async function operatorRaftRemovePeerByID(deps: EndpointDeps, raft: OperatorRaft, id: string): Promise<void> {
  await requireLeader(deps);
  const server = raft.status().configuration.servers.find((candidate) => candidate.id === id);
  if (server === undefined) throw new HttpError(500, `id ${goQuote(id)} was not found in the Raft configuration`);
  await removeServer(deps, raft, server.id);
}

// ---------------------------------------------------------------------------------------------
// HTTP routes (agent/operator_endpoint.go)

/** What the autopilot routes read from the leader's autopilot (lib/autopilot.ts). */
export interface OperatorAutopilot {
  health(): OperatorHealthJson;
  state(): AutopilotStateJson;
}

/** The /v1/operator/raft/ and /v1/operator/autopilot/ routes (health and state only when `autopilot` is given). */
export function operatorRoutes(deps: EndpointDeps, raft: OperatorRaft, autopilot?: OperatorAutopilot): HttpRoute[] {
  return [
    ...(autopilot
      ? [
          { path: '/v1/operator/autopilot/health', methods: ['GET'], handler: (request: HttpRequest) => autopilotHealthRoute(deps, autopilot, request) },
          { path: '/v1/operator/autopilot/state', methods: ['GET'], handler: (request: HttpRequest) => autopilotStateRoute(deps, autopilot, request) },
        ]
      : []),
    { path: '/v1/operator/autopilot/configuration', methods: ['GET', 'PUT'], handler: (request) => autopilotConfigurationRoute(deps, request) },
    { path: '/v1/operator/raft/configuration', methods: ['GET'], handler: (request) => configurationRoute(deps, raft, request) },
    { path: '/v1/operator/raft/peer', methods: ['DELETE'], handler: (request) => peerRoute(deps, raft, request) },
    { path: '/v1/operator/raft/transfer-leader', methods: ['POST'], handler: (request) => transferLeaderRoute(deps, raft, request) },
  ];
}

// ---------------------------------------------------------------------------------------------
// Private helpers

async function configurationRoute(deps: EndpointDeps, raft: OperatorRaft, request: HttpRequest) {
  checkDatacenter(request, deps.config.datacenter);
  const options = parseQueryOptions(deps.query, request);
  return { json: await operatorRaftGetConfiguration(deps, raft, options) };
}

async function peerRoute(deps: EndpointDeps, raft: OperatorRaft, request: HttpRequest) {
  checkDatacenter(request, deps.config.datacenter);
  const hasId = request.query.has('id');
  const hasAddress = request.query.has('address');
  if (!hasId && !hasAddress) throw new HttpError(400, PEER_MISSING_PARAM_TEXT);
  if (hasId && hasAddress) throw new HttpError(400, PEER_BOTH_PARAMS_TEXT);
  const address = request.query.get('address') ?? '';
  const id = request.query.get('id') ?? '';
  // On a follower the leader removes it (Consul's ForwardRPC).
  const forwarded = hasAddress
    ? await forwardToLeader(deps, 'Operator.RaftRemovePeerByAddress', { Datacenter: deps.config.datacenter, Address: address })
    : await forwardToLeader(deps, 'Operator.RaftRemovePeerByID', { Datacenter: deps.config.datacenter, ID: id });
  if (forwarded === undefined) {
    if (hasAddress) await operatorRaftRemovePeerByAddress(deps, raft, address);
    else await operatorRaftRemovePeerByID(deps, raft, id);
  }
  // Consul's handler returns no object: 200 with an empty body.
  return { text: '' };
}

async function autopilotConfigurationRoute(deps: EndpointDeps, request: HttpRequest) {
  checkDatacenter(request, deps.config.datacenter);
  if (request.method === 'GET') {
    const options = parseQueryOptions(deps.query, request);
    const { value } = await readQuery(deps.query, options, (txn) => autopilotConfig(txn));
    if (value === undefined) throw new HttpError(500, AUTOPILOT_NOT_INITIALIZED_TEXT);
    return { json: autopilotConfigJson(value) };
  }
  const parsed = parseFirstJsonValue(request.body);
  if (parsed.error !== undefined || parsed.value === undefined) throw new HttpError(400, `Error parsing autopilot config: ${parsed.error ?? 'EOF'}`);
  let config;
  try {
    config = parseAutopilotConfigBody(parsed.value);
  } catch (error) {
    throw new HttpError(400, `Error parsing autopilot config: ${error instanceof Error ? error.message : String(error)}`);
  }
  let casIndex: number | undefined;
  if (request.query.has('cas')) {
    const text = request.query.get('cas') ?? '';
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new HttpError(400, `Error parsing cas value: strconv.ParseUint: parsing ${goQuote(text)}: invalid syntax`);
    casIndex = Number(text);
  }
  const forwarded = await forwardToLeader(deps, 'Operator.AutopilotSetConfiguration', { Datacenter: deps.config.datacenter, Config: { ...config, ModifyIndex: casIndex ?? 0 }, CAS: casIndex !== undefined });
  const wrote = forwarded === undefined ? await autopilotSetConfiguration(deps, config, casIndex) : forwarded.reply === true;
  // Only a CAS reports whether it wrote.
  return { json: casIndex === undefined ? true : wrote };
}

/** Operator.AutopilotSetConfiguration on the leader: stores the settings (with casIndex, only if it matches). */
async function autopilotSetConfiguration(deps: EndpointDeps, config: AutopilotConfigInput, casIndex: number | undefined): Promise<boolean> {
  await requireLeader(deps);
  let result;
  try {
    result = await deps.apply(casIndex === undefined ? { type: 'autopilot-set', config } : { type: 'autopilot-set', config, casIndex });
  } catch (error) {
    throw raftErrorToHttp(error);
  }
  if (!result.ok) throw new HttpError(500, result.error.message);
  return result.value === true;
}

/**
 * The leader's Operator methods for forwarded writes: peer removal by address or ID, and the
 * autopilot settings (read with the autopilot command's shape). They refuse on a follower, naming
 * the leader.
 */
export function operatorRpcMethods(deps: EndpointDeps, raft: OperatorRaft): Map<string, RpcMethod> {
  const fields = (args: MsgpackValue, what: string): Record<string, MsgpackValue> => {
    const request = rpcFields(args, what);
    checkRpcDatacenter(request, deps.config.datacenter);
    return request;
  };
  return new Map<string, RpcMethod>([
    ['Operator.RaftRemovePeerByAddress', async (args) => {
      await operatorRaftRemovePeerByAddress(deps, raft, rpcString(fields(args, 'RaftRemovePeerRequest'), 'Address'));
      return {};
    }],
    ['Operator.RaftRemovePeerByID', async (args) => {
      await operatorRaftRemovePeerByID(deps, raft, rpcString(fields(args, 'RaftRemovePeerRequest'), 'ID'));
      return {};
    }],
    ['Operator.AutopilotSetConfiguration', (args) => {
      const request = fields(args, 'AutopilotSetConfigRequest');
      const { config, casIndex } = parseAutopilotSetRequest(request);
      return autopilotSetConfiguration(deps, config, casIndex);
    }],
  ]);
}

async function autopilotStateRoute(deps: EndpointDeps, autopilot: OperatorAutopilot, request: HttpRequest) {
  checkDatacenter(request, deps.config.datacenter);
  // Operator.AutopilotState always runs on the leader.
  await requireLeader(deps);
  return { json: autopilot.state() };
}

async function autopilotHealthRoute(deps: EndpointDeps, autopilot: OperatorAutopilot, request: HttpRequest) {
  checkDatacenter(request, deps.config.datacenter);
  // Operator.ServerHealth always runs on the leader.
  await requireLeader(deps);
  const health = autopilot.health();
  return { json: health, ...(health.Healthy ? {} : { status: 429 }) };
}

async function transferLeaderRoute(deps: EndpointDeps, raft: OperatorRaft, request: HttpRequest) {
  checkDatacenter(request, deps.config.datacenter);
  await requireLeader(deps);
  const id = request.query.get('id') ?? '';
  // serverLookup.ServerAddr's error: the ID must name a server of the configuration.
  if (id !== '' && !raft.status().configuration.servers.some((server) => server.id === id)) throw new HttpError(500, `Could not find address for server id ${id}`);
  try {
    await raft.transferLeadership(id === '' ? undefined : id);
  } catch (error) {
    deps.logger.warn('failed to transfer leadership', { id, error: error instanceof Error ? error.message : String(error) });
    throw raftErrorToHttp(error);
  }
  // api.TransferLeaderResponse.
  return { json: { Success: true } };
}

/** Operator.AutopilotGetConfiguration before a leader stored the settings. */
const AUTOPILOT_NOT_INITIALIZED_TEXT = 'autopilot config not initialized yet';

/** A write: held until a leader is known (or rpc_hold_timeout), refused on a follower. */
async function requireLeader(deps: EndpointDeps): Promise<void> {
  await waitForLeader(deps.query);
  const { server } = deps.query;
  if (!server.isLeader) throw raftErrorToHttp({ code: 'ERR_NOT_LEADER', leaderAddress: server.leader() });
}

async function removeServer(deps: EndpointDeps, raft: OperatorRaft, id: string): Promise<void> {
  try {
    await raft.removeServer(id);
  } catch (error) {
    deps.logger.warn('Failed to remove Raft peer', { id, error: error instanceof Error ? error.message : String(error) });
    throw raftErrorToHttp(error);
  }
  deps.logger.info('Removed Raft peer', { id });
}

/** The last log index this server knows for `id`: its own, or (on the leader) a follower's match. */
function lastIndexOf(status: RaftStatus, id: string): number {
  if (id === status.id) return status.lastIndex;
  return status.progress.find((progress) => progress.id === id)?.match ?? 0;
}
