// The catalog endpoints: Consul's Catalog.* server methods and the /v1/catalog/ HTTP routes.
//
// Two layers, as in Consul. The RPC-shaped functions (catalogRegister, catalogListNodes, ...) are
// named after Consul's server methods (agent/consul/catalog_endpoint.go): they take typed
// arguments plus QueryOptions, write through Raft (applyCommand) or read through a blocking query,
// and return the value with its query meta. The HTTP routes (agent/catalog_endpoint.go) parse the
// request, call them, and normalise the output the way Consul's HTTP handlers do (empty lists are
// `[]`, nil tags become `[]`). On a follower, register and deregister go to the leader as
// Catalog.Register and Catalog.Deregister (catalogRpcMethods serves them there).
//
// Also here, because the health endpoints render the same records: the JSON renderers of
// structs.Node, structs.ServiceNode, structs.NodeService and structs.HealthCheck (field order and
// omitempty as Go's encoding/json writes them), `?near` sorting, and the query parameters every
// catalog and health read shares (`?node-meta`, `?tag`, `?near`).
//
// Request bodies are decoded as Consul decodes them (lib.DecodeJSON: encoding/json with
// DisallowUnknownFields): keys match exactly or case-insensitively, unknown keys and wrong types
// are refused with encoding/json's texts behind "Request decode failed: ". Consul fields we accept
// but do not keep (Locality, PeerName, check definition fields the catalog record lacks such as
// ScriptArgs or TTL) are validated for type and dropped.
//
// What it does not do: ACLs, WAN forwarding (another `?dc` is 500 "No path to datacenter"), the
// connect/mesh routes (/v1/catalog/connect/, gateway-services), `translate_wan_addrs`, agent
// caching. Node TaggedAddresses (lan, lan_ipv4, wan, wan_ipv4) are added by the agent's own
// registration (anti-entropy, agent/local), never by these endpoints: a node registered through
// /v1/catalog/register carries exactly what it was registered with.
//
// Deviation: a node or service registered without TaggedAddresses/Meta renders `{}` where Consul
// renders `null` (the state store does not tell a nil map from an empty one; see lib/catalog.ts).
//
// References: Consul agent/catalog_endpoint.go, agent/consul/catalog_endpoint.go, agent/consul/
// rtt.go (sortNodesByDistanceFrom), agent/structs/structs.go, lib/json.go, serf/coordinate;
// spec §2, §3.2.

import assert from 'node:assert/strict';
import { compileFilter, FilterError, filterList, filterMap, type Filter } from './bexpr.js';
import { GO_NODE, GO_NODE_SERVICE, GO_SERVICE_NODE, type GoType } from './bexprtypes.js';
import * as catalog from './catalog.js';
import type { DeregisterRequest, HealthCheckInput, MetaFilter, NodeServiceInput, RegisterRequest } from './catalog.js';
import { DurationError, formatDuration, parseDuration } from './duration.js';
import { applyCommand, decodeJsonBody, forwardToLeader, queryResponse, type EndpointDeps } from './endpoints.js';
import { parseDeregisterRequest, parseRegisterRequest } from './fsm.js';
import type { RpcMethod } from './rpc.js';
import { HttpError, type AbortSignalLike, type HttpRequest, type HttpRoute } from './http.js';
import type { ReadTxn } from './memdb.js';
import { blockingQuery, checkDatacenter, NO_PATH_TO_DATACENTER_TEXT, parseQueryOptions, type QueryOptions, type QueryReply } from './query.js';
import type { CheckDefinitionRecord, CheckRecord, Coordinate, NodeRecord, QueryResult, ServiceRecord } from './schema.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** What every RPC-shaped read returns: the value and the meta for the response headers. */

/** Arguments shared by the list reads (structs.DCSpecificRequest's filters, QuerySource). */
export interface ListArgs {
  /** `?node-meta=k:v` pairs; every pair must match. */
  readonly nodeMeta?: MetaFilter;
  /** Node name to sort by estimated round-trip time from (`?near`, `_agent` already resolved). */
  readonly near?: string;
}

/** structs.ServiceSpecificRequest as the catalog and health reads use it. */
export interface ServiceArgs extends ListArgs {
  readonly serviceName: string;
  /** Every tag must be on the instance (case-insensitive); undefined or [] means no tag filter. */
  readonly tags?: readonly string[];
}

/** A JSON object with its keys in the order Consul writes them. */
export type JsonObject = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// Limits

/** Register bodies: a node, a service and up to REGISTER_CHECKS_MAX checks fit comfortably. */
export const CATALOG_REGISTER_BODY_BYTES_MAX = 4 * 1024 * 1024;
/** Deregister bodies carry three names. */
export const CATALOG_DEREGISTER_BODY_BYTES_MAX = 64 * 1024;
/** `?tag` and `?node-meta` values one request may carry. */
export const QUERY_FILTER_VALUES_MAX = 64;
/** Nesting of opaque objects (Proxy, Connect) in a register body. */
const OPAQUE_DEPTH_MAX = 32;

/** Consul's texts. */
export const MISSING_NODE_NAME_TEXT = 'Missing node name';
export const MISSING_SERVICE_NAME_TEXT = 'Missing service name';
/** QuerySource.Node value that means "this agent". */
export const NEAR_AGENT = '_agent';

// ---------------------------------------------------------------------------------------------
// RPC-shaped methods (agent/consul/catalog_endpoint.go)

/** Catalog.Register: validates, commits through Raft, returns Consul's `true`. */
export async function catalogRegister(deps: EndpointDeps, args: RegisterRequest): Promise<boolean> {
  requireLocalDatacenter(deps, args.Datacenter);
  await applyCommand(deps, { type: 'register', request: args });
  return true;
}

/** Catalog.Deregister: a service (with its checks), a check, or the whole node. */
export async function catalogDeregister(deps: EndpointDeps, args: DeregisterRequest): Promise<boolean> {
  requireLocalDatacenter(deps, args.Datacenter);
  await applyCommand(deps, { type: 'deregister', request: args });
  return true;
}

/**
 * The leader's Catalog.Register and Catalog.Deregister for forwarded writes: the request read with
 * the register and deregister commands' shapes, then the methods above (which refuse on a
 * follower, naming the leader).
 */
export function catalogRpcMethods(deps: EndpointDeps): Map<string, RpcMethod> {
  return new Map<string, RpcMethod>([
    ['Catalog.Register', (args) => catalogRegister(deps, parseRegisterRequest(args))],
    ['Catalog.Deregister', (args) => catalogDeregister(deps, parseDeregisterRequest(args))],
  ]);
}

/** Catalog.Register wherever it must run: here on the leader, forwarded on a follower (Consul's ForwardRPC). */
export async function registerAtLeader(deps: EndpointDeps, args: RegisterRequest): Promise<boolean> {
  const forwarded = await forwardToLeader(deps, 'Catalog.Register', args);
  return forwarded === undefined ? catalogRegister(deps, args) : forwarded.reply === true;
}

/** Catalog.Deregister wherever it must run, as registerAtLeader. */
export async function deregisterAtLeader(deps: EndpointDeps, args: DeregisterRequest): Promise<boolean> {
  const forwarded = await forwardToLeader(deps, 'Catalog.Deregister', args);
  return forwarded === undefined ? catalogDeregister(deps, args) : forwarded.reply === true;
}

/** Catalog.ListDatacenters: without WAN federation, only this datacenter. Needs no leader. */
export function catalogListDatacenters(deps: EndpointDeps): string[] {
  return deps.datacenters?.() ?? [deps.config.datacenter];
}

/** Catalog.ListNodes: every node, by name, or by `near` distance; filtered per node. */
export function catalogListNodes(deps: EndpointDeps, args: ListArgs, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<JsonObject[]>> {
  const filter = compileOptionalFilter(options, GO_NODE);
  return blockingQuery(deps.query, options, signal, (txn) => {
    const result = catalog.nodes(txn, args.nodeMeta);
    const sorted = sortByDistance(txn, result.value, (node) => node.Node, args.near);
    return { index: result.index, value: applyFilter(filter, sorted.map(renderNode)) };
  });
}

/**
 * Catalog.ListServices: service name -> the union of its tags. As in Consul, `?filter` applies to
 * the service instances (structs.ServiceNode) before they are folded into names and tags, so a
 * name whose every instance is filtered out is absent.
 */
export function catalogListServices(deps: EndpointDeps, args: ListArgs, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<Record<string, string[]>>> {
  const filter = compileOptionalFilter(options, GO_SERVICE_NODE);
  return blockingQuery(deps.query, options, signal, (txn) => {
    const result = catalog.services(txn, args.nodeMeta);
    if (!filter) return { index: result.index, value: Object.fromEntries(result.value) };
    return { index: result.index, value: filteredServiceTags(txn, [...result.value.keys()], args.nodeMeta, filter) };
  });
}

/** Catalog.ServiceNodes: the instances of a service, flattened with their node (structs.ServiceNode). */
export function catalogServiceNodes(deps: EndpointDeps, args: ServiceArgs, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<JsonObject[]>> {
  if (args.serviceName === '') throw new HttpError(500, 'Must provide service name');
  const filter = compileOptionalFilter(options, GO_SERVICE_NODE);
  return blockingQuery(deps.query, options, signal, (txn) => {
    const result = catalog.serviceNodes(txn, args.serviceName, serviceQuery(args));
    const sorted = sortByDistance(txn, result.value, (entry) => entry.Node.Node, args.near);
    return { index: result.index, value: applyFilter(filter, sorted.map((entry) => renderServiceNode(entry.Node, entry.Service))) };
  });
}

/** Catalog.NodeServices: a node and its services keyed by service ID, or null for an unknown node. */
export function catalogNodeServices(deps: EndpointDeps, node: string, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<JsonObject | null>> {
  if (node === '') throw new HttpError(500, 'Must provide node');
  const filter = compileOptionalFilter(options, GO_NODE_SERVICE);
  return blockingQuery(deps.query, options, signal, (txn) => {
    const result = catalog.nodeServices(txn, node);
    if (result.value === null) return { index: result.index, value: null };
    const services = Object.fromEntries(result.value.Services.map((service) => [service.ID, renderNodeService(service)]));
    return { index: result.index, value: { Node: renderNode(result.value.Node), Services: filter ? withFilterErrors(() => filterMap(filter, services)) : services } };
  });
}

/** Catalog.NodeServiceList: a node and its services as a list; `{Node: null, Services: null}` if unknown. */
export function catalogNodeServiceList(deps: EndpointDeps, node: string, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<JsonObject>> {
  if (node === '') throw new HttpError(500, 'Must provide node');
  const filter = compileOptionalFilter(options, GO_NODE_SERVICE);
  return blockingQuery(deps.query, options, signal, (txn): QueryResult<JsonObject> => {
    const result = catalog.nodeServices(txn, node);
    if (result.value === null) return { index: result.index, value: { Node: null, Services: null } };
    const services = applyFilter(filter, result.value.Services.map(renderNodeService));
    return { index: result.index, value: { Node: renderNode(result.value.Node), Services: services } };
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP routes (agent/catalog_endpoint.go)

/** The /v1/catalog/ routes. Writes are PUT only; reads GET only (Consul's method whitelist). */
export function catalogRoutes(deps: EndpointDeps): HttpRoute[] {
  return [
    { path: '/v1/catalog/register', methods: ['PUT'], bodyBytesMax: CATALOG_REGISTER_BODY_BYTES_MAX, handler: async (request) => ({ json: await registerAtLeader(deps, decodeRegisterRequest(deps, request)) }) },
    { path: '/v1/catalog/deregister', methods: ['PUT'], bodyBytesMax: CATALOG_DEREGISTER_BODY_BYTES_MAX, handler: async (request) => ({ json: await deregisterAtLeader(deps, decodeDeregisterRequest(deps, request)) }) },
    { path: '/v1/catalog/datacenters', methods: ['GET'], handler: () => ({ json: catalogListDatacenters(deps) }) },
    { path: '/v1/catalog/nodes', methods: ['GET'], handler: (request) => readRoute(deps, request, (options) => catalogListNodes(deps, listArgs(deps, request), options, request.signal)) },
    { path: '/v1/catalog/services', methods: ['GET'], handler: (request) => readRoute(deps, request, (options) => catalogListServices(deps, { nodeMeta: parseNodeMeta(request) }, options, request.signal)) },
    { path: '/v1/catalog/service/', methods: ['GET'], handler: (request) => serviceNodesRoute(deps, request) },
    { path: '/v1/catalog/node/', methods: ['GET'], handler: (request) => nodeRoute(deps, request, catalogNodeServices) },
    { path: '/v1/catalog/node-services/', methods: ['GET'], handler: (request) => nodeRoute(deps, request, catalogNodeServiceList) },
  ];
}

// ---------------------------------------------------------------------------------------------
// Shared with the health endpoints

/**
 * The common read steps of Consul's handlers: `?dc`, the query options (400 on bad ones), then
 * the RPC, rendered with the X-Consul-* headers.
 */
export async function readRoute<T>(deps: EndpointDeps, request: HttpRequest, run: (options: QueryOptions) => Promise<QueryReply<T>>) {
  checkDatacenter(request, deps.config.datacenter);
  const options = parseQueryOptions(deps.query, request);
  return queryResponse(await run(options));
}

/** `?node-meta=k:v` (repeatable; a value without ':' means key with empty value), as parseMetaFilter. */
export function parseNodeMeta(request: HttpRequest): MetaFilter | undefined {
  const pairs = request.query.getAll('node-meta');
  if (pairs.length === 0) return undefined;
  if (pairs.length > QUERY_FILTER_VALUES_MAX) throw new HttpError(400, `Too many node-meta filters (at most ${QUERY_FILTER_VALUES_MAX})`);
  const filter: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf(':');
    if (at === -1) filter[pair] = '';
    else filter[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return filter;
}

/** `?tag=` (repeatable, all must match); undefined when absent. */
export function parseTags(request: HttpRequest): string[] | undefined {
  if (!request.query.has('tag')) return undefined;
  const tags = request.query.getAll('tag');
  if (tags.length > QUERY_FILTER_VALUES_MAX) throw new HttpError(400, `Too many tag filters (at most ${QUERY_FILTER_VALUES_MAX})`);
  return tags;
}

/** `?near=` as parseSource reads it: `_agent` is this agent's node; "" means no sorting. */
export function parseNear(deps: EndpointDeps, request: HttpRequest): string | undefined {
  const near = request.query.get('near') ?? '';
  if (near === '') return undefined;
  return near === NEAR_AGENT ? deps.config.nodeName : near;
}

/** The filters shared by list reads. */
export function listArgs(deps: EndpointDeps, request: HttpRequest): ListArgs {
  return { nodeMeta: parseNodeMeta(request), near: parseNear(deps, request) };
}

/**
 * Compiles `?filter` against the Go element type the endpoint filters (Consul's
 * `bexpr.CreateFilter(args.Filter, nil, reply.X)`) before any blocking, so a bad expression or a
 * selector the type lacks is answered at once. Consul answers it with 500 and "Failed to create
 * boolean expression evaluator: ..." (the error comes back from the server as a plain RPC error,
 * which agent/http.go maps to 500), and so do we.
 */
export function compileOptionalFilter(options: QueryOptions, type: GoType): Filter | undefined {
  if (!options.filter) return undefined;
  return withFilterErrors(() => compileFilter(options.filter, type));
}

/** Keeps the elements that pass; an evaluation error is Consul's 500 with go-bexpr's text. */
export function applyFilter<T>(filter: Filter | undefined, items: T[]): T[] {
  return filter ? withFilterErrors(() => filterList(filter, items)) : items;
}

function withFilterErrors<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof FilterError) throw new HttpError(error.statusCode, error.message);
    throw error;
  }
}

/**
 * sortNodesByDistanceFrom: a stable sort by estimated RTT from `near`'s coordinate (segment "").
 * Without a source, or when the source has no coordinate, the order is left as it is, as Consul
 * leaves it; nodes without a coordinate sort last.
 */
export function sortByDistance<T>(txn: ReadTxn, items: readonly T[], nodeOf: (item: T) => string, near: string | undefined): T[] {
  if (near === undefined || items.length < 2) return [...items];
  const source = catalog.coordinate(txn, near).value.get('');
  if (source === undefined) return [...items];
  const distances = new Map<string, number>();
  const distanceOf = (node: string): number => {
    let distance = distances.get(node);
    if (distance === undefined) {
      const target = catalog.coordinate(txn, node).value.get('');
      distance = target === undefined ? Infinity : coordinateDistanceSeconds(source, target);
      distances.set(node, distance);
    }
    return distance;
  };
  // Array.prototype.sort is stable, as sort.Stable is.
  return [...items].sort((a, b) => distanceOf(nodeOf(a)) - distanceOf(nodeOf(b)) || 0);
}

/**
 * serf/coordinate DistanceTo in seconds: Euclidean distance plus both heights, plus both
 * adjustments when that stays positive. Mismatched dimensions cannot be compared (Infinity).
 */
export function coordinateDistanceSeconds(a: Coordinate, b: Coordinate): number {
  if (a.Vec.length !== b.Vec.length) return Infinity;
  let sum = 0;
  for (const [i, value] of a.Vec.entries()) sum += (value - (b.Vec[i] ?? 0)) ** 2;
  const raw = Math.sqrt(sum) + a.Height + b.Height;
  const adjusted = raw + a.Adjustment + b.Adjustment;
  return adjusted > 0 ? adjusted : raw;
}

/** structs.Node. */
export function renderNode(node: NodeRecord): JsonObject {
  return {
    ID: node.ID,
    Node: node.Node,
    Address: node.Address,
    Datacenter: node.Datacenter,
    TaggedAddresses: { ...node.TaggedAddresses },
    Meta: { ...node.Meta },
    CreateIndex: node.CreateIndex,
    ModifyIndex: node.ModifyIndex,
  };
}

/** structs.ServiceNode: the node's fields, then the service's, with the service's Raft indexes. */
export function renderServiceNode(node: NodeRecord, service: ServiceRecord): JsonObject {
  const result: JsonObject = {
    ID: node.ID,
    Node: node.Node,
    Address: node.Address,
    Datacenter: node.Datacenter,
    TaggedAddresses: { ...node.TaggedAddresses },
    NodeMeta: { ...node.Meta },
    ServiceKind: service.Kind,
    ServiceID: service.ID,
    ServiceName: service.Service,
    ServiceTags: [...service.Tags],
    ServiceAddress: service.Address,
  };
  // omitempty
  if (Object.keys(service.TaggedAddresses).length > 0) result['ServiceTaggedAddresses'] = renderServiceAddresses(service);
  Object.assign(result, {
    ServiceWeights: { Passing: service.Weights.Passing, Warning: service.Weights.Warning },
    ServiceMeta: { ...service.Meta },
    ServicePort: service.Port,
    ServiceSocketPath: service.SocketPath,
    ServiceEnableTagOverride: service.EnableTagOverride,
    ServiceProxy: renderProxy(service.Proxy),
    ServiceConnect: renderOpaque(service.Connect),
    ServiceLocality: null,
    CreateIndex: service.CreateIndex,
    ModifyIndex: service.ModifyIndex,
  });
  return result;
}

/** structs.NodeService: Kind, TaggedAddresses, Port and SocketPath are omitempty; PeerName is not. */
export function renderNodeService(service: ServiceRecord): JsonObject {
  const result: JsonObject = {};
  if (service.Kind !== '') result['Kind'] = service.Kind;
  Object.assign(result, { ID: service.ID, Service: service.Service, Tags: [...service.Tags], Address: service.Address });
  if (Object.keys(service.TaggedAddresses).length > 0) result['TaggedAddresses'] = renderServiceAddresses(service);
  result['Meta'] = { ...service.Meta };
  if (service.Port !== 0) result['Port'] = service.Port;
  if (service.SocketPath !== '') result['SocketPath'] = service.SocketPath;
  Object.assign(result, {
    Weights: { Passing: service.Weights.Passing, Warning: service.Weights.Warning },
    EnableTagOverride: service.EnableTagOverride,
    Proxy: renderProxy(service.Proxy),
    Connect: renderOpaque(service.Connect),
    PeerName: '',
    CreateIndex: service.CreateIndex,
    ModifyIndex: service.ModifyIndex,
  });
  return result;
}

/** structs.HealthCheck (PeerName omitempty, Definition through its MarshalJSON). */
export function renderCheck(check: CheckRecord): JsonObject {
  return {
    Node: check.Node,
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
    ExposedPort: check.ExposedPort,
    Definition: renderDefinition(check.Definition),
    CreateIndex: check.CreateIndex,
    ModifyIndex: check.ModifyIndex,
  };
}

/** Rejects another datacenter: without WAN federation there is no path to it. */
export function requireLocalDatacenter(deps: EndpointDeps, datacenter: string | undefined): void {
  if (datacenter && datacenter !== deps.config.datacenter) throw new HttpError(500, NO_PATH_TO_DATACENTER_TEXT);
}

// ---------------------------------------------------------------------------------------------
// Private: routes

async function serviceNodesRoute(deps: EndpointDeps, request: HttpRequest) {
  checkDatacenter(request, deps.config.datacenter);
  const options = parseQueryOptions(deps.query, request);
  if (request.param === '') throw new HttpError(400, MISSING_SERVICE_NAME_TEXT);
  const args: ServiceArgs = { ...listArgs(deps, request), serviceName: request.param, tags: parseTags(request) };
  return queryResponse(await catalogServiceNodes(deps, args, options, request.signal));
}

type NodeRead = (deps: EndpointDeps, node: string, options: QueryOptions, signal: AbortSignalLike) => Promise<QueryReply<unknown>>;

async function nodeRoute(deps: EndpointDeps, request: HttpRequest, read: NodeRead) {
  checkDatacenter(request, deps.config.datacenter);
  const options = parseQueryOptions(deps.query, request);
  if (request.param === '') throw new HttpError(400, MISSING_NODE_NAME_TEXT);
  return queryResponse(await read(deps, request.param, options, request.signal));
}

function serviceQuery(args: ServiceArgs): catalog.ServiceQueryOptions {
  return { ...(args.tags && args.tags.length > 0 ? { tags: args.tags } : {}), ...(args.nodeMeta ? { nodeMeta: args.nodeMeta } : {}) };
}

/**
 * servicesTagsByName over the instances that pass `filter`: each instance is rendered as the
 * structs.ServiceNode the filter was validated for. Names and tags are sorted, as catalog.services
 * sorts them; instances are deduplicated because name lookups may fold case.
 */
function filteredServiceTags(txn: ReadTxn, names: readonly string[], nodeMeta: MetaFilter | undefined, filter: Filter): Record<string, string[]> {
  const seen = new Set<string>();
  const tags = new Map<string, Set<string>>();
  for (const name of names) {
    for (const entry of catalog.serviceNodes(txn, name, nodeMeta ? { nodeMeta } : {}).value) {
      const key = `${entry.Node.Node}\u0000${entry.Service.ID}`;
      if (seen.has(key)) continue;
      seen.add(key);
      if (!withFilterErrors(() => filter.matches(renderServiceNode(entry.Node, entry.Service)))) continue;
      let set = tags.get(entry.Service.Service);
      if (!set) tags.set(entry.Service.Service, (set = new Set()));
      for (const tag of entry.Service.Tags) set.add(tag);
    }
  }
  const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return Object.fromEntries([...tags.keys()].sort(byCodeUnit).map((name) => [name, [...tags.get(name)!].sort(byCodeUnit)]));
}

// ---------------------------------------------------------------------------------------------
// Private: rendering

function renderServiceAddresses(service: ServiceRecord): JsonObject {
  return Object.fromEntries(Object.entries(service.TaggedAddresses).map(([key, value]) => [key, { Address: value.Address, Port: value.Port }]));
}

/**
 * structs.ConnectProxyConfig as it marshals: every scalar is omitempty, MeshGateway and Expose are
 * structs (always written), TransparentProxy and AccessLogs only when set.
 */
function renderProxy(proxy: unknown): JsonObject {
  const stored = isJsonObject(proxy) ? proxy : {};
  const result: JsonObject = {};
  for (const [key, value] of Object.entries(stored)) {
    if (key === 'MeshGateway' || key === 'Expose') continue;
    result[key] = value;
  }
  result['MeshGateway'] = isJsonObject(stored['MeshGateway']) ? stored['MeshGateway'] : {};
  result['Expose'] = isJsonObject(stored['Expose']) ? stored['Expose'] : {};
  return result;
}

function renderOpaque(value: unknown): JsonObject {
  return isJsonObject(value) ? { ...value } : {};
}

/** HealthCheckDefinition.MarshalJSON: the durations first, then the other fields, all omitempty. */
function renderDefinition(definition: CheckDefinitionRecord): JsonObject {
  const result: JsonObject = {};
  const put = (key: string, value: unknown): void => {
    const isEmpty = value === undefined || value === '' || value === false || (isJsonObject(value) && Object.keys(value).length === 0);
    if (!isEmpty) result[key] = value;
  };
  put('Interval', definition.Interval);
  put('Timeout', definition.Timeout);
  put('DeregisterCriticalServiceAfter', definition.DeregisterCriticalServiceAfter);
  put('HTTP', definition.HTTP);
  put('TLSServerName', definition.TLSServerName);
  put('TLSSkipVerify', definition.TLSSkipVerify);
  put('Header', definition.Header);
  put('Method', definition.Method);
  put('Body', definition.Body);
  put('TCP', definition.TCP);
  put('UDP', definition.UDP);
  put('GRPC', definition.GRPC);
  return result;
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

// ---------------------------------------------------------------------------------------------
// Private: request bodies, decoded as encoding/json with DisallowUnknownFields would

/** A field's Go type, as encoding/json names it in errors, and how to read it. */
type FieldKind =
  | 'string'
  | 'int'
  | 'bool'
  | '[]string'
  | 'map[string]string'
  | 'map[string][]string'
  | 'duration'
  | 'opaque'
  | { readonly struct: StructSpec }
  | { readonly list: StructSpec }
  | { readonly map: StructSpec };

interface StructSpec {
  /** The Go type name used in messages (`structs.NodeService`). */
  readonly goType: string;
  readonly fields: Readonly<Record<string, FieldKind>>;
  /** Custom UnmarshalJSON methods that use plain json.Unmarshal accept unknown fields. */
  readonly isLenient?: boolean;
}

class BodyProblem extends Error {}

const SERVICE_ADDRESS: StructSpec = { goType: 'structs.ServiceAddress', fields: { Address: 'string', Port: 'int' } };
const WEIGHTS: StructSpec = { goType: 'structs.Weights', fields: { Passing: 'int', Warning: 'int' } };
const LOCALITY: StructSpec = { goType: 'structs.Locality', fields: { Region: 'string', Zone: 'string' } };
const RAFT_INDEX = { CreateIndex: 'int', ModifyIndex: 'int' } as const;

const NODE_SERVICE: StructSpec = {
  goType: 'structs.NodeService',
  fields: {
    Kind: 'string', ID: 'string', Service: 'string', Tags: '[]string', Address: 'string', TaggedAddresses: { map: SERVICE_ADDRESS },
    Meta: 'map[string]string', Port: 'int', SocketPath: 'string', Weights: { struct: WEIGHTS }, EnableTagOverride: 'bool',
    Locality: { struct: LOCALITY }, Proxy: 'opaque', Connect: 'opaque', PeerName: 'string', ...RAFT_INDEX,
  },
};

const CHECK_DEFINITION: StructSpec = {
  goType: 'structs.HealthCheckDefinition',
  isLenient: true,
  fields: {
    HTTP: 'string', TLSServerName: 'string', TLSSkipVerify: 'bool', Header: 'map[string][]string', Method: 'string', Body: 'string',
    DisableRedirects: 'bool', TCP: 'string', UDP: 'string', H2PING: 'string', OSService: 'string', H2PingUseTLS: 'bool',
    Interval: 'duration', OutputMaxSize: 'int', Timeout: 'duration', DeregisterCriticalServiceAfter: 'duration', ScriptArgs: '[]string',
    DockerContainerID: 'string', Shell: 'string', GRPC: 'string', GRPCUseTLS: 'bool', AliasNode: 'string', AliasService: 'string', TTL: 'duration',
  },
};

const HEALTH_CHECK: StructSpec = {
  goType: 'structs.HealthCheck',
  fields: {
    Node: 'string', CheckID: 'string', Name: 'string', Status: 'string', Notes: 'string', Output: 'string', ServiceID: 'string',
    ServiceName: 'string', ServiceTags: '[]string', Type: 'string', Interval: 'string', Timeout: 'string', ExposedPort: 'int',
    PeerName: 'string', Definition: { struct: CHECK_DEFINITION }, ...RAFT_INDEX,
  },
};

const REGISTER_REQUEST: StructSpec = {
  goType: 'structs.RegisterRequest',
  fields: {
    Datacenter: 'string', ID: 'string', Node: 'string', Address: 'string', TaggedAddresses: 'map[string]string', NodeMeta: 'map[string]string',
    Service: { struct: NODE_SERVICE }, Check: { struct: HEALTH_CHECK }, Checks: { list: HEALTH_CHECK }, SkipNodeUpdate: 'bool',
    PeerName: 'string', Locality: { struct: LOCALITY }, Token: 'string',
  },
};

const DEREGISTER_REQUEST: StructSpec = {
  goType: 'structs.DeregisterRequest',
  fields: { Datacenter: 'string', Node: 'string', ServiceID: 'string', CheckID: 'string', PeerName: 'string', Token: 'string' },
};

/** PUT /v1/catalog/register's body as a RegisterRequest; 400 "Request decode failed: ..." otherwise. */
function decodeRegisterRequest(deps: EndpointDeps, request: HttpRequest): RegisterRequest {
  const raw = decodeStruct(decodeJsonBody(request), REGISTER_REQUEST, deps);
  const result: Record<string, unknown> = {};
  copyDefined(raw, result, ['Datacenter', 'ID', 'Node', 'Address', 'TaggedAddresses', 'NodeMeta', 'SkipNodeUpdate']);
  result['Node'] ??= '';
  // The handler fills in the agent's datacenter, and the node record keeps it.
  result['Datacenter'] ||= deps.config.datacenter;
  if (raw['Service'] !== undefined) result['Service'] = serviceInput(raw['Service'] as Record<string, unknown>);
  if (raw['Check'] !== undefined) result['Check'] = checkInput(raw['Check'] as Record<string, unknown>);
  if (raw['Checks'] !== undefined) result['Checks'] = (raw['Checks'] as Record<string, unknown>[]).map(checkInput);
  const checkCount = (result['Check'] ? 1 : 0) + ((result['Checks'] as unknown[] | undefined)?.length ?? 0);
  if (checkCount > catalog.REGISTER_CHECKS_MAX) throw new HttpError(400, `Request decode failed: too many checks (at most ${catalog.REGISTER_CHECKS_MAX})`);
  return result as unknown as RegisterRequest;
}

function decodeDeregisterRequest(deps: EndpointDeps, request: HttpRequest): DeregisterRequest {
  const raw = decodeStruct(decodeJsonBody(request), DEREGISTER_REQUEST, deps);
  const result: Record<string, unknown> = {};
  copyDefined(raw, result, ['Datacenter', 'Node', 'ServiceID', 'CheckID']);
  result['Node'] ??= '';
  result['Datacenter'] ||= deps.config.datacenter;
  return result as unknown as DeregisterRequest;
}

function serviceInput(raw: Record<string, unknown>): NodeServiceInput {
  const result: Record<string, unknown> = {};
  copyDefined(raw, result, ['Kind', 'ID', 'Service', 'Tags', 'Address', 'TaggedAddresses', 'Meta', 'Port', 'SocketPath', 'Weights', 'EnableTagOverride']);
  // Empty mesh settings are the zero value; storing them would only make records differ.
  if (isJsonObject(raw['Proxy']) && Object.keys(raw['Proxy']).length > 0) result['Proxy'] = raw['Proxy'];
  if (isJsonObject(raw['Connect']) && Object.keys(raw['Connect']).length > 0) result['Connect'] = raw['Connect'];
  return result as NodeServiceInput;
}

function checkInput(raw: Record<string, unknown>): HealthCheckInput {
  const result: Record<string, unknown> = {};
  copyDefined(raw, result, ['Node', 'CheckID', 'Name', 'Status', 'Notes', 'Output', 'ServiceID', 'ServiceName', 'ServiceTags', 'Type', 'Interval', 'Timeout', 'ExposedPort']);
  const definition = raw['Definition'] as Record<string, unknown> | undefined;
  if (definition !== undefined) {
    const kept: Record<string, unknown> = {};
    copyDefined(definition, kept, ['HTTP', 'TLSServerName', 'TLSSkipVerify', 'Header', 'Method', 'Body', 'TCP', 'UDP', 'GRPC', 'Interval', 'Timeout', 'DeregisterCriticalServiceAfter']);
    result['Definition'] = kept;
  }
  return result as HealthCheckInput;
}

function copyDefined(from: Record<string, unknown>, to: Record<string, unknown>, keys: readonly string[]): void {
  for (const key of keys) if (from[key] !== undefined) to[key] = from[key];
}

/** Decodes one JSON object into a struct's canonical field names; throws HttpError 400 on the first problem. */
function decodeStruct(value: unknown, spec: StructSpec, deps: EndpointDeps): Record<string, unknown> {
  try {
    // An empty body is io.EOF to json.Decoder.
    if (value === undefined) throw new BodyProblem('EOF');
    if (value === null) return {};
    if (!isJsonObject(value)) throw new BodyProblem(`json: cannot unmarshal ${jsonKind(value)} into Go value of type ${spec.goType}`);
    return readStruct(value, spec, '');
  } catch (error) {
    if (!(error instanceof BodyProblem)) throw error;
    deps.logger.debug('request body refused', { reason: error.message });
    throw new HttpError(400, `Request decode failed: ${error.message}`);
  }
}

function readStruct(value: Record<string, unknown>, spec: StructSpec, path: string): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  const names = Object.keys(spec.fields);
  for (const [key, item] of Object.entries(value)) {
    // encoding/json prefers an exact match, then a case-insensitive one.
    const name = names.includes(key) ? key : names.find((candidate) => candidate.toLowerCase() === key.toLowerCase());
    if (name === undefined) {
      if (spec.isLenient) continue;
      throw new BodyProblem(`json: unknown field ${JSON.stringify(key)}`);
    }
    const kind = spec.fields[name];
    assert.ok(kind !== undefined, 'a matched field has a kind');
    const fieldPath = path === '' ? name : `${path}.${name}`;
    const decoded = readField(item, kind, spec, fieldPath);
    if (decoded !== undefined) result[name] = decoded;
  }
  return result;
}

function readField(value: unknown, kind: FieldKind, owner: StructSpec, path: string): unknown {
  // JSON null leaves a Go field at its zero value.
  if (value === null) return undefined;
  const wrongType = (goType: string): BodyProblem => new BodyProblem(`json: cannot unmarshal ${jsonKind(value)} into Go struct field ${owner.goType.replace(/^structs\./, '')}.${path} of type ${goType}`);
  if (typeof kind === 'object') return readNested(value, kind, path, wrongType);
  switch (kind) {
    case 'string':
      if (typeof value !== 'string') throw wrongType('string');
      return value;
    case 'int':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw wrongType('int');
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw wrongType('bool');
      return value;
    case '[]string':
      if (!Array.isArray(value) || !value.every((item) => typeof item === 'string' || item === null)) throw wrongType('[]string');
      return value.map((item) => item ?? '');
    case 'map[string]string':
      if (!isJsonObject(value) || !Object.values(value).every((item) => typeof item === 'string' || item === null)) throw wrongType('map[string]string');
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v ?? '']));
    case 'map[string][]string':
      if (!isJsonObject(value) || !Object.values(value).every((item) => Array.isArray(item) && item.every((s) => typeof s === 'string'))) throw wrongType('map[string][]string');
      return value;
    case 'duration':
      return readDuration(value);
    case 'opaque':
      if (!isJsonObject(value) || depthOf(value) > OPAQUE_DEPTH_MAX) throw wrongType(path.endsWith('Proxy') ? 'structs.ConnectProxyConfig' : 'structs.ServiceConnect');
      return value;
    default: {
      const exhaustive: never = kind;
      return exhaustive;
    }
  }
}

function readNested(value: unknown, kind: Extract<FieldKind, object>, path: string, wrongType: (goType: string) => BodyProblem): unknown {
  if ('struct' in kind) {
    if (!isJsonObject(value)) throw wrongType(kind.struct.goType);
    return readStruct(value, kind.struct, path);
  }
  if ('list' in kind) {
    if (!Array.isArray(value)) throw wrongType(`[]*${kind.list.goType}`);
    return value.filter((item) => item !== null).map((item) => {
      if (!isJsonObject(item)) throw wrongType(kind.list.goType);
      return readStruct(item, kind.list, path);
    });
  }
  if (!isJsonObject(value)) throw wrongType(`map[string]${kind.map.goType}`);
  return Object.fromEntries(Object.entries(value).map(([key, item]) => {
    if (!isJsonObject(item)) throw wrongType(kind.map.goType);
    return [key, readStruct(item, kind.map, path)];
  }));
}

/**
 * HealthCheckDefinition.UnmarshalJSON: a string is parsed as a Go duration (its error is the
 * whole message), a number is nanoseconds, anything else is ignored. Kept in Go's String() form,
 * which is how Consul writes it back; zero is "unset" (omitempty).
 */
function readDuration(value: unknown): string | undefined {
  let nanos: number;
  if (typeof value === 'string') {
    try {
      nanos = parseDuration(value);
    } catch (error) {
      if (error instanceof DurationError) throw new BodyProblem(error.message);
      throw error;
    }
  } else if (typeof value === 'number' && Number.isFinite(value)) nanos = Math.trunc(value);
  else return undefined;
  return nanos === 0 ? undefined : formatDuration(nanos);
}

function depthOf(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  let deepest = 0;
  for (const item of Object.values(value)) {
    deepest = Math.max(deepest, depthOf(item));
    if (deepest > OPAQUE_DEPTH_MAX) break;
  }
  return deepest + 1;
}

/** The JSON kind encoding/json names in UnmarshalTypeError ("number 1.5" for a fraction into an int). */
function jsonKind(value: unknown): string {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'number') return Number.isInteger(value) ? 'number' : `number ${String(value)}`;
  if (typeof value === 'boolean') return 'bool';
  if (Array.isArray(value)) return 'array';
  return 'object';
}
