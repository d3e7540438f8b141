// The health endpoints: Consul's Health.* server methods and the /v1/health/ HTTP routes.
//
// Like lib/endpoints_catalog.ts, two layers: RPC-shaped reads named after Consul's server methods
// (agent/consul/health_endpoint.go) returning value + query meta through a blocking query, and
// the HTTP routes (agent/health_endpoint.go) that parse parameters and normalise the output.
//
// Behaviours kept from Consul on purpose, because clients see them:
// - /v1/health/service/:name returns every instance whatever its health; `?passing` (presence,
//   or a Go ParseBool value) keeps the instances whose every check is passing, and it is applied
//   on the HTTP side after the RPC, with Consul's swap-with-last removal, so a removed instance's
//   place is taken by the last one (filterNonPassing). The index is the query's, unaffected.
// - Consul parses `?passing` only after the RPC (its source notes it should move), so a bad
//   value costs a query there but still answers 400 "Invalid value for ?passing"; here it is
//   parsed first, with the same answer.
// - /v1/health/state/:state with an unknown state returns [] (the state store matches nothing).
//
// What it does not do: /v1/health/connect/ and /v1/health/ingress/ (mesh), ?cached, streaming,
// peering (?peer), merge-central-config.
//
// References: Consul agent/health_endpoint.go, agent/consul/health_endpoint.go,
// agent/structs/structs.go (CheckServiceNode, HealthCheck); spec §3.3, §8.10.

import type { Filter } from './bexpr.js';
import { GO_CHECK_SERVICE_NODE, GO_HEALTH_CHECK } from './bexprtypes.js';
import * as catalog from './catalog.js';
import {
  applyFilter,
  compileOptionalFilter,
  listArgs,
  MISSING_NODE_NAME_TEXT,
  MISSING_SERVICE_NAME_TEXT,
  parseTags,
  readRoute,
  renderCheck,
  renderNode,
  renderNodeService,
  sortByDistance,
  type JsonObject,
  type ListArgs,
  type ServiceArgs,
} from './endpoints_catalog.js';
import type { EndpointDeps } from './endpoints.js';
import { HttpError, type AbortSignalLike, type HttpRequest, type HttpRoute } from './http.js';
import type { ReadTxn } from './memdb.js';
import { blockingQuery, type QueryOptions, type QueryReply } from './query.js';
import type { CheckRecord } from './schema.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** structs.CheckServiceNode as rendered. */
export interface CheckServiceNodeJson {
  readonly Node: JsonObject;
  readonly Service: JsonObject;
  readonly Checks: JsonObject[];
}

// ---------------------------------------------------------------------------------------------
// Limits and texts

export const MISSING_CHECK_STATE_TEXT = 'Missing check state';
export const INVALID_PASSING_TEXT = 'Invalid value for ?passing';

/** Go strconv.ParseBool's accepted spellings. */
const GO_BOOL_TRUE: ReadonlySet<string> = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const GO_BOOL_FALSE: ReadonlySet<string> = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

// ---------------------------------------------------------------------------------------------
// RPC-shaped methods (agent/consul/health_endpoint.go)

/** Health.NodeChecks: every check on a node, node-level and service checks. */
export function healthNodeChecks(deps: EndpointDeps, node: string, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<JsonObject[]>> {
  const filter = compileOptionalFilter(options, GO_HEALTH_CHECK);
  return blockingQuery(deps.query, options, signal, (txn) => {
    const result = catalog.nodeChecks(txn, node);
    return { index: result.index, value: applyFilter(filter, result.value.map(renderCheck)) };
  });
}

/** Health.ServiceChecks: the checks of every instance of a service. */
export function healthServiceChecks(deps: EndpointDeps, args: ServiceArgs, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<JsonObject[]>> {
  const filter = compileOptionalFilter(options, GO_HEALTH_CHECK);
  return blockingQuery(deps.query, options, signal, (txn) => {
    const result = catalog.serviceChecks(txn, args.serviceName, args.nodeMeta);
    return { index: result.index, value: renderChecks(txn, result.value, args.near, filter) };
  });
}

/** Health.ChecksInState: checks in `any`, `passing`, `warning` or `critical`. */
export function healthChecksInState(deps: EndpointDeps, state: string, args: ListArgs, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<JsonObject[]>> {
  const filter = compileOptionalFilter(options, GO_HEALTH_CHECK);
  return blockingQuery(deps.query, options, signal, (txn) => {
    const result = catalog.checksInState(txn, state, args.nodeMeta);
    return { index: result.index, value: renderChecks(txn, result.value, args.near, filter) };
  });
}

/** Health.ServiceNodes: every instance with its node and checks (node checks first). */
export function healthServiceNodes(deps: EndpointDeps, args: ServiceArgs, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<CheckServiceNodeJson[]>> {
  if (args.serviceName === '') throw new HttpError(500, 'Must provide service name');
  const filter = compileOptionalFilter(options, GO_CHECK_SERVICE_NODE);
  return blockingQuery(deps.query, options, signal, (txn) => {
    const query = { ...(args.tags && args.tags.length > 0 ? { tags: args.tags } : {}), ...(args.nodeMeta ? { nodeMeta: args.nodeMeta } : {}) };
    const result = catalog.checkServiceNodes(txn, args.serviceName, query);
    const sorted = sortByDistance(txn, result.value, (entry) => entry.Node.Node, args.near);
    const rendered = sorted.map((entry): CheckServiceNodeJson => ({ Node: renderNode(entry.Node), Service: renderNodeService(entry.Service), Checks: entry.Checks.map(renderCheck) }));
    return { index: result.index, value: applyFilter(filter, rendered) };
  });
}

/**
 * filterNonPassing: drops every instance with a check that is not passing. Removal swaps the
 * last remaining instance into the removed one's place, exactly as Consul's loop does, so the
 * order clients see matches Consul's.
 */
export function filterNonPassing<T extends { readonly Checks: readonly { readonly Status?: unknown }[] }>(entries: readonly T[]): T[] {
  const out = [...entries];
  let n = out.length;
  for (let i = 0; i < n; i++) {
    const entry = out[i];
    if (entry === undefined || entry.Checks.every((check) => check.Status === 'passing')) continue;
    out[i] = out[n - 1] as T;
    n--;
    i--;
  }
  return out.slice(0, n);
}

/** getBoolQueryParam: absent is false, present without a value is true, else Go's ParseBool. */
export function parsePassing(request: HttpRequest): boolean {
  if (!request.query.has('passing')) return false;
  const value = request.query.get('passing') ?? '';
  const parsed = value === '' ? true : goParseBool(value);
  if (parsed === undefined) throw new HttpError(400, INVALID_PASSING_TEXT);
  return parsed;
}

/** Go's strconv.ParseBool: true or false for its spellings, undefined for anything else. */
export function goParseBool(text: string): boolean | undefined {
  if (GO_BOOL_TRUE.has(text)) return true;
  if (GO_BOOL_FALSE.has(text)) return false;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// HTTP routes (agent/health_endpoint.go)

/** The /v1/health/ routes, all GET. */
export function healthRoutes(deps: EndpointDeps): HttpRoute[] {
  return [
    { path: '/v1/health/node/', methods: ['GET'], handler: (request) => nodeChecksRoute(deps, request) },
    { path: '/v1/health/checks/', methods: ['GET'], handler: (request) => serviceChecksRoute(deps, request) },
    { path: '/v1/health/state/', methods: ['GET'], handler: (request) => checksInStateRoute(deps, request) },
    { path: '/v1/health/service/', methods: ['GET'], handler: (request) => serviceNodesRoute(deps, request) },
  ];
}

// ---------------------------------------------------------------------------------------------
// Private helpers

function nodeChecksRoute(deps: EndpointDeps, request: HttpRequest) {
  return readRoute(deps, request, (options) => {
    if (request.param === '') throw new HttpError(400, MISSING_NODE_NAME_TEXT);
    return healthNodeChecks(deps, request.param, options, request.signal);
  });
}

function serviceChecksRoute(deps: EndpointDeps, request: HttpRequest) {
  return readRoute(deps, request, (options) => {
    if (request.param === '') throw new HttpError(400, MISSING_SERVICE_NAME_TEXT);
    return healthServiceChecks(deps, { ...listArgs(deps, request), serviceName: request.param }, options, request.signal);
  });
}

function checksInStateRoute(deps: EndpointDeps, request: HttpRequest) {
  return readRoute(deps, request, (options) => {
    if (request.param === '') throw new HttpError(400, MISSING_CHECK_STATE_TEXT);
    return healthChecksInState(deps, request.param, listArgs(deps, request), options, request.signal);
  });
}

function serviceNodesRoute(deps: EndpointDeps, request: HttpRequest) {
  return readRoute(deps, request, async (options) => {
    const args: ServiceArgs = { ...listArgs(deps, request), serviceName: request.param, tags: parseTags(request) };
    if (args.serviceName === '') throw new HttpError(400, MISSING_SERVICE_NAME_TEXT);
    const isPassingOnly = parsePassing(request);
    const reply = await healthServiceNodes(deps, args, options, request.signal);
    return isPassingOnly ? { ...reply, value: filterNonPassing(reply.value) } : reply;
  });
}

/** Checks sorted by their node's distance from `near`, rendered and filtered. */
function renderChecks(txn: ReadTxn, checks: readonly CheckRecord[], near: string | undefined, filter: Filter | undefined): JsonObject[] {
  const sorted = sortByDistance(txn, checks, (check) => check.Node, near);
  return applyFilter(filter, sorted.map(renderCheck));
}
