// Consul's catalog and health state: nodes, services, checks and coordinates on the memdb state
// store, with Consul's write rules and the index every read returns for blocking queries.
//
// What it does (Consul agent/consul/state/catalog.go, catalog_ce.go, coordinate.go):
// - Registration (ensureRegistration) writes a node, optionally one service and checks, in the
//   caller's write transaction. A write happens only when the stored record differs from the new
//   one, ignoring Raft indexes, so an anti-entropy sync that changes nothing moves no ModifyIndex
//   and wakes no watcher. CreateIndex is kept across updates.
// - Deletes cascade as Consul's do: a node takes its services, checks, coordinates and sessions;
//   a service takes its checks. A check that is (re)written critical, and a deleted check,
//   invalidate the sessions that depend on it (lib/sessions.ts does the invalidating).
// - Reads return `{ index, value }`. The index is what Consul returns for the same query: usually
//   a table's entry in the `index` table, but for service queries the per-service entry
//   `service.<name>`, for a node's services `node.<name>`, and once the last instance of a service
//   (or a node) is gone, the `service_last_extinction` (`node_last_extinction`) entry, so a
//   blocking query on a vanished service wakes and its index never goes backwards.
// - Node and service names compare case-insensitively (the memdb indexes are lowercase), as do the
//   derived keys of the index table (Consul's index table is lowercase; ours is not, so the keys
//   are lowercased here).
//
// - Transactions (/v1/txn): the Node, Service and Check ops with Consul's verbs (set, cas, get,
//   delete, delete-cas), CAS rules and error texts (state/txn.go), the server's pre-check that
//   vets and normalizes them (Txn.preCheck), and the dispatch of a txn mixing them with KV ops
//   (txnApply, txnRead): every op runs, each failure is reported with its OpIndex, and the caller
//   aborts the memdb transaction if any failed, so a txn commits whole or not at all.
//
// What it does not do: HTTP rendering, ACLs, mesh (gateways, virtual IPs, topology), peering,
// partitions, the `service_kind.*` indexes (no query here reads them), node dumps.
//
// Invariants:
// - Every service and check belongs to a node that exists; every service check's service exists.
// - `node.<name>` exists exactly while the node exists; `service.<name>` exists while some
//   instance of <name> exists and is deleted with the last one (as Consul's; like Consul's, it
//   can come back without instances when a check still carrying a renamed service's old name is
//   deleted, which only makes an empty query report that index).
// - Writers validate everything first and throw StateError before their first write; after that
//   nothing they do can fail. Callers abort the transaction on any throw anyway.
//
// Deviations from Consul, on purpose (each marked "Deviation:" below): nil and empty maps/lists
// are the same value; a check status outside passing/warning/critical is refused instead of being
// stored; a registration without a service name is refused with a plain message instead of a
// memdb index error; renaming a service (same ID, new name) moves the old name's index like a
// deregistration does, so blocking queries on the old name wake up.
//
// Consul quirks kept on purpose, because clients can observe them: a service update that changes
// only SocketPath, and a check update that changes only Type, Interval, Timeout or ExposedPort,
// is not written (IsSameService / HealthCheck.IsSame ignore those fields); a service check keeps
// the service name and tags it was written with until the check itself is rewritten; a renamed
// node keeps its old CreateIndex.
//
// References: Consul agent/consul/state/{catalog.go,catalog_ce.go,coordinate.go,txn.go},
// agent/consul/txn_endpoint.go (preCheck),
// agent/structs/structs.go (IsSame, IsSameService, ChangesNode), agent/consul/catalog_endpoint.go
// (Register pre-apply checks), api/health.go (AggregatedStatus); spec §3.2, §3.3, §3.10, §5.3.

import assert from 'node:assert/strict';
import { validateMeta } from './definitions.js';
import { DurationError, parseDuration } from './duration.js';
import {
  goQuote,
  isKvWriteOp,
  isTxnOpFailure,
  KV_TXN_VERBS as TXN_KV_VERBS,
  kvsTxnOp,
  kvsTxnPreCheckOp,
  kvsTxnReadOp,
  TxnOpError,
  type TxnError,
  type TxnKvOp,
  type TxnResult,
} from './kvs.js';
import type { ReadTxn, WriteTxn } from './memdb.js';
import {
  StateError,
  TABLES,
  bumpTableIndex,
  maxTableIndex,
  tableIndex,
  type CheckDefinitionRecord,
  type CheckRecord,
  type Coordinate,
  type CoordinateRecord,
  type HealthStatus,
  type IndexRecord,
  type NodeRecord,
  type QueryResult,
  type ServiceAddressRecord,
  type ServiceRecord,
} from './schema.js';
// serfHealth: the check every LAN member carries on servers (spec §5.3); it guards node-name takeovers.
import { SERF_CHECK_ID, invalidateCheckSessions, invalidateNodeSessions, type LockDelay } from './sessions.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** A service as a registration carries it (structs.NodeService). Absent fields take Consul's defaults. */
export interface NodeServiceInput {
  readonly Kind?: string;
  /** Defaults to Service. */
  readonly ID?: string;
  readonly Service?: string;
  readonly Tags?: readonly string[];
  readonly Address?: string;
  readonly TaggedAddresses?: Readonly<Record<string, ServiceAddressRecord>>;
  readonly Meta?: Readonly<Record<string, string>>;
  readonly Port?: number;
  readonly SocketPath?: string;
  /** Missing or invalid weights become {Passing: 1, Warning: 1} (structs ToServiceNode). */
  readonly Weights?: { readonly Passing: number; readonly Warning: number };
  readonly EnableTagOverride?: boolean;
  readonly Proxy?: unknown;
  readonly Connect?: unknown;
}

/** A check as a registration carries it (structs.HealthCheck). */
export interface HealthCheckInput {
  /** Defaults to the request's Node. */
  readonly Node?: string;
  /** Defaults to Name. */
  readonly CheckID?: string;
  readonly Name?: string;
  /** passing, warning or critical; "" or absent means critical. */
  readonly Status?: string;
  readonly Notes?: string;
  readonly Output?: string;
  /** A service on the same node; "" for a node-level check. */
  readonly ServiceID?: string;
  /** Overwritten from the service for service checks. */
  readonly ServiceName?: string;
  readonly ServiceTags?: readonly string[];
  /** Derived from Definition when absent (http, tcp, udp, grpc), as Catalog.Register does. */
  readonly Type?: string;
  readonly Interval?: string;
  readonly Timeout?: string;
  readonly ExposedPort?: number;
  readonly Definition?: CheckDefinitionRecord;
}

/** PUT /v1/catalog/register and the FSM's register command (structs.RegisterRequest). */
export interface RegisterRequest {
  readonly Datacenter?: string;
  /** The node's UUID, or "" / absent. */
  readonly ID?: string;
  readonly Node: string;
  readonly Address?: string;
  readonly TaggedAddresses?: Readonly<Record<string, string>>;
  readonly NodeMeta?: Readonly<Record<string, string>>;
  readonly Service?: NodeServiceInput;
  readonly Check?: HealthCheckInput;
  readonly Checks?: readonly HealthCheckInput[];
  /** Leave an existing node record alone (it is still created if missing). */
  readonly SkipNodeUpdate?: boolean;
}

/** PUT /v1/catalog/deregister (structs.DeregisterRequest). ServiceID wins over CheckID; neither means the node. */
export interface DeregisterRequest {
  readonly Datacenter?: string;
  readonly Node: string;
  readonly ServiceID?: string;
  readonly CheckID?: string;
}

/** A node record without its Raft indexes: what ensureNode writes. */
export type NodeInput = Omit<NodeRecord, 'CreateIndex' | 'ModifyIndex'>;

/** One service instance with its node (structs.ServiceNode, unflattened). */
export interface ServiceNode {
  readonly Node: NodeRecord;
  readonly Service: ServiceRecord;
}

/** A node and its services, in service ID order (structs.NodeServices / NodeServiceList). */
export interface NodeServices {
  readonly Node: NodeRecord;
  readonly Services: readonly ServiceRecord[];
}

/** One instance for the health endpoints: node checks first, then that instance's checks. */
export interface CheckServiceNode {
  readonly Node: NodeRecord;
  readonly Service: ServiceRecord;
  readonly Checks: readonly CheckRecord[];
}

/** `?node-meta=k:v` pairs: a node matches when it has every pair. */
export type MetaFilter = Readonly<Record<string, string>>;

export interface ServiceQueryOptions {
  /** Every tag must be present on the instance, compared case-insensitively. */
  readonly tags?: readonly string[];
  readonly nodeMeta?: MetaFilter;
}

/** Node, Service and Check verbs of a txn (api.NodeOp, ServiceOp, CheckOp). Wire enum: append only. */
export type CatalogTxnVerb = 'set' | 'cas' | 'get' | 'delete' | 'delete-cas';

/** A node as a txn op carries it (structs.Node): ModifyIndex is the CAS index of cas and delete-cas. */
export interface TxnNode extends NodeInput {
  readonly ModifyIndex: number;
}

/** structs.TxnNodeOp. */
export interface TxnNodeOp {
  readonly Verb: CatalogTxnVerb;
  readonly Node: TxnNode;
}

/** structs.TxnServiceOp: the service's ModifyIndex is the CAS index. */
export interface TxnServiceOp {
  readonly Verb: CatalogTxnVerb;
  readonly Node: string;
  readonly Service: NodeServiceInput & { readonly ModifyIndex?: number };
}

/** structs.TxnCheckOp: the check names its node; its ModifyIndex is the CAS index. */
export interface TxnCheckOp {
  readonly Verb: CatalogTxnVerb;
  readonly Check: HealthCheckInput & { readonly ModifyIndex?: number };
}

/** One op of a transaction (structs.TxnOp): exactly one kind. */
export type TxnOp = { readonly KV: TxnKvOp } | { readonly Node: TxnNodeOp } | { readonly Service: TxnServiceOp } | { readonly Check: TxnCheckOp };

/** One result (structs.TxnResult): the record an op read or wrote, as stored. */
export type TxnOpResult = TxnResult | { readonly Node: NodeRecord } | { readonly Service: ServiceRecord } | { readonly Check: CheckRecord };

/** structs.TxnResponse over every kind: Results when every op succeeded, else Errors. */
export interface TxnOpsResponse {
  readonly Results: TxnOpResult[] | null;
  readonly Errors: TxnError[] | null;
}

/** Aggregate status of a list of checks; "" when a check has an unknown status (api.HealthChecks). */
export type AggregateStatus = HealthStatus | '';

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** Checks one registration may carry (Check plus Checks). Bounded further by the HTTP body size. */
export const REGISTER_CHECKS_MAX = 4096;

/** Index-table entry moved when the last instance of any service goes away (Consul's name). */
export const INDEX_SERVICE_EXTINCTION = 'service_last_extinction';
/** Index-table entry moved when any node goes away (Consul's name). */
export const INDEX_NODE_EXTINCTION = 'node_last_extinction';

/** Maintenance check IDs (api.NodeMaint, api.ServiceMaintPrefix). */
export const NODE_MAINTENANCE_CHECK_ID = '_node_maintenance';
export const SERVICE_MAINTENANCE_CHECK_PREFIX = '_service_maintenance:';

/** Every catalog verb a txn op may carry. Wire enum: append only. */
export const CATALOG_TXN_VERBS: readonly CatalogTxnVerb[] = ['set', 'cas', 'get', 'delete', 'delete-cas'];

/** Node names shorter than this are never tried as node ID prefixes (minUUIDLookupLen). */
const UUID_LOOKUP_LENGTH_MIN = 2;

const CHECK_STATUSES: ReadonlySet<string> = new Set(['passing', 'warning', 'critical']);

/** The memdb error Consul returns when a record lacks its primary key; clients may see it. */
const MISSING_INDEX_VALUE_TEXT = "failed to build index 'id': object is missing a value for this index";

// ---------------------------------------------------------------------------------------------
// Writes

/**
 * Applies a catalog registration at Raft index `index`: the node (unless unchanged, or
 * SkipNodeUpdate and it exists), the service, then every check. Validates the whole request
 * first (Catalog.Register's pre-apply checks, then the state store's) and throws StateError with
 * Consul's message before writing anything.
 */
export function ensureRegistration(txn: WriteTxn, index: number, req: RegisterRequest, lockDelay: LockDelay): void {
  const plan = planRegistration(txn, req);
  if (plan.node) writeNode(txn, index, plan.node, lockDelay);
  if (plan.service) writeService(txn, index, plan.service);
  for (const check of plan.checks) writeCheck(txn, index, check, lockDelay);
}

/**
 * Applies a catalog deregistration (FSM applyDeregister): a service with its checks if ServiceID
 * is set, else a check if CheckID is set, else the whole node. Unknown targets are a no-op.
 */
export function deregister(txn: WriteTxn, index: number, req: DeregisterRequest, lockDelay: LockDelay): void {
  if (req.Node === '') throw new StateError('ERR_MISSING_NODE_NAME', 'Must provide node');
  if (req.ServiceID) deleteService(txn, index, req.Node, req.ServiceID, lockDelay);
  else if (req.CheckID) deleteCheck(txn, index, req.Node, req.CheckID, lockDelay);
  else deleteNode(txn, index, req.Node, lockDelay);
}

/**
 * Upserts a node record (ensureNodeTxn). A known node ID registered under a new name renames the
 * node: the old node is deleted with everything on it. Throws StateError when the name belongs
 * to another live node.
 */
export function ensureNode(txn: WriteTxn, index: number, node: NodeInput, lockDelay: LockDelay): void {
  if (node.Node === '') throw new StateError('ERR_MISSING_NODE_NAME', 'Must provide node');
  const problem = nodeWriteProblem(txn, node);
  if (problem) throw new StateError('ERR_NODE_NAME_RESERVED', problem);
  writeNode(txn, index, node, lockDelay);
}

/**
 * Upserts a service instance on an existing node (ensureServiceTxn). Throws StateError
 * "Missing node registration" if the node is unknown, or Consul's meta error.
 */
export function ensureService(txn: WriteTxn, index: number, node: string, service: NodeServiceInput): void {
  const draft = buildService(node, service);
  if (draft.ID === '' || draft.Service === '') throw new StateError('ERR_MISSING_SERVICE_NAME', 'Must provide service name');
  const metaProblem = serviceMetaProblem(draft);
  if (metaProblem) throw new StateError('ERR_INVALID_SERVICE_META', metaProblem);
  if (!txn.first<NodeRecord>(TABLES.nodes, 'id', node)) throw new StateError('ERR_MISSING_NODE', 'Missing node registration');
  writeService(txn, index, draft);
}

/**
 * Upserts a check (ensureCheckTxn). The node must exist ("Missing node registration"), and for
 * a service check the service on that node ("Missing service registration"). A critical check
 * invalidates the sessions that depend on it, even when nothing else changed.
 */
export function ensureCheck(txn: WriteTxn, index: number, check: HealthCheckInput, lockDelay: LockDelay): void {
  const draft = buildCheck(check, check.Node ?? '');
  const problem = checkRecordProblem(draft, check.Status);
  if (problem) throw new StateError(problem.code, problem.message);
  if (!txn.first<NodeRecord>(TABLES.nodes, 'id', draft.Node)) throw new StateError('ERR_MISSING_NODE', 'Missing node registration');
  if (draft.ServiceID !== '' && !txn.first<ServiceRecord>(TABLES.services, 'id', draft.Node, draft.ServiceID)) {
    throw new StateError('ERR_MISSING_SERVICE', 'Missing service registration');
  }
  writeCheck(txn, index, draft, lockDelay);
}

/** Deletes a node and its services, checks, coordinates and sessions (deleteNodeTxn). No-op if unknown. */
export function deleteNode(txn: WriteTxn, index: number, nodeName: string, lockDelay: LockDelay): void {
  const node = txn.first<NodeRecord>(TABLES.nodes, 'id', nodeName);
  if (!node) return;
  const services = [...txn.get<ServiceRecord>(TABLES.services, 'node', nodeName)];
  for (const service of services) raiseIndexEntry(txn, serviceIndexKey(service.Service), index);
  for (const service of services) deleteService(txn, index, nodeName, service.ID, lockDelay);
  const checks = [...txn.get<CheckRecord>(TABLES.checks, 'node', nodeName)];
  for (const check of checks) deleteCheck(txn, index, nodeName, check.CheckID, lockDelay);
  const coordinates = [...txn.get<CoordinateRecord>(TABLES.coordinates, 'node', nodeName)];
  for (const coordinate of coordinates) {
    txn.delete(TABLES.coordinates, coordinate);
    bumpTableIndex(txn, TABLES.coordinates, index);
  }
  txn.delete(TABLES.nodes, node);
  bumpTableIndex(txn, TABLES.nodes, index);
  dropIndexEntry(txn, nodeIndexKey(nodeName));
  raiseIndexEntry(txn, INDEX_NODE_EXTINCTION, index);
  invalidateNodeSessions(txn, index, node.Node, lockDelay);
}

/** Deletes a service instance and its checks (deleteServiceTxn). No-op if unknown. */
export function deleteService(txn: WriteTxn, index: number, nodeName: string, serviceId: string, lockDelay: LockDelay): void {
  const service = txn.first<ServiceRecord>(TABLES.services, 'id', nodeName, serviceId);
  if (!service) return;
  const checks = [...txn.get<CheckRecord>(TABLES.checks, 'node_service', nodeName, serviceId)];
  for (const check of checks) deleteCheck(txn, index, nodeName, check.CheckID, lockDelay);
  // Consul moves the checks index here even when the service had no checks.
  bumpTableIndex(txn, TABLES.checks, index);
  txn.delete(TABLES.services, service);
  bumpTableIndex(txn, TABLES.services, index);
  bumpTableIndex(txn, TABLES.nodes, index);
  raiseIndexEntry(txn, nodeIndexKey(nodeName), index);
  leaveServiceName(txn, index, service.Service);
}

/** Deletes a check and invalidates the sessions that depend on it (deleteCheckTxn). No-op if unknown. */
export function deleteCheck(txn: WriteTxn, index: number, nodeName: string, checkId: string, lockDelay: LockDelay): void {
  const check = txn.first<CheckRecord>(TABLES.checks, 'id', nodeName, checkId);
  if (!check) return;
  if (check.ServiceID !== '') {
    raiseIndexEntry(txn, serviceIndexKey(check.ServiceName), index);
  } else {
    // A node check is part of every instance's health on that node.
    raiseServiceIndexesOfNode(txn, index, check.Node);
    bumpTableIndex(txn, TABLES.services, index);
  }
  txn.delete(TABLES.checks, check);
  bumpTableIndex(txn, TABLES.checks, index);
  invalidateCheckSessions(txn, index, check.Node, check.CheckID, lockDelay);
}

/**
 * Stores network coordinates (CoordinateBatchUpdate). Updates with a non-finite component and
 * updates for nodes the catalog does not know are skipped silently, as Consul does: coordinates
 * are cleaned up with their node, and the sender retries on its next round.
 */
export function coordinateBatchUpdate(txn: WriteTxn, index: number, updates: readonly CoordinateRecord[]): void {
  for (const update of updates) {
    if (!isValidCoordinate(update.Coord)) continue;
    if (!txn.first<NodeRecord>(TABLES.nodes, 'id', update.Node)) continue;
    const coord: Coordinate = { Vec: [...update.Coord.Vec], Error: update.Coord.Error, Adjustment: update.Coord.Adjustment, Height: update.Coord.Height };
    txn.insert<CoordinateRecord>(TABLES.coordinates, { Node: update.Node, Segment: update.Segment, Coord: coord });
    bumpTableIndex(txn, TABLES.coordinates, index);
  }
}

// ---------------------------------------------------------------------------------------------
// Reads

/** One node by name (GetNode). Index: the nodes table. */
export function getNode(txn: ReadTxn, nodeName: string): QueryResult<NodeRecord | undefined> {
  return { index: tableIndex(txn, TABLES.nodes), value: txn.first<NodeRecord>(TABLES.nodes, 'id', nodeName) };
}

/** Every node in name order, or those matching every meta pair (Nodes, NodesByMeta). Index: nodes. */
export function nodes(txn: ReadTxn, nodeMeta?: MetaFilter): QueryResult<NodeRecord[]> {
  const index = tableIndex(txn, TABLES.nodes);
  if (!hasFilter(nodeMeta)) return { index, value: [...txn.all<NodeRecord>(TABLES.nodes)] };
  return { index, value: nodesByMeta(txn, nodeMeta) };
}

/**
 * Service names with the union of their tags, names sorted (Services, ServicesByNodeMeta, shaped
 * as /v1/catalog/services). Names keep their registered case, so "Web" and "web" are two keys, as
 * in Consul. Index: services, or max(services, nodes) with a meta filter.
 */
export function services(txn: ReadTxn, nodeMeta?: MetaFilter): QueryResult<Map<string, string[]>> {
  if (!hasFilter(nodeMeta)) {
    return { index: tableIndex(txn, TABLES.services), value: tagsByName(txn.all<ServiceRecord>(TABLES.services)) };
  }
  const matching: ServiceRecord[] = [];
  for (const node of nodesByMeta(txn, nodeMeta)) matching.push(...txn.get<ServiceRecord>(TABLES.services, 'node', node.Node));
  return { index: maxTableIndex(txn, TABLES.services, TABLES.nodes), value: tagsByName(matching) };
}

/**
 * The instances of a service with their nodes, in (node, service ID) order (ServiceNodes,
 * ServiceTagNodes, plus the endpoint's node-meta filter). Index: `service.<name>`, or the service
 * extinction index when no instance exists (maxIndexForService).
 */
export function serviceNodes(txn: ReadTxn, serviceName: string, options: ServiceQueryOptions = {}): QueryResult<ServiceNode[]> {
  const instances = [...txn.get<ServiceRecord>(TABLES.services, 'service', serviceName)];
  const value: ServiceNode[] = [];
  for (const service of instances) {
    if (!hasAllTags(service, options.tags)) continue;
    const node = nodeOf(txn, service);
    if (hasFilter(options.nodeMeta) && !satisfiesMeta(node.Meta, options.nodeMeta)) continue;
    value.push({ Node: node, Service: service });
  }
  return { index: maxIndexForService(txn, serviceName, instances.length > 0, false), value };
}

/**
 * A node and its services (NodeServices). A name that matches no node is tried as a node ID
 * prefix (at least two characters, an odd length cut to even); no match or an ambiguous one gives
 * null. Index: `node.<name>`; for an unknown node the node extinction index (0 when ambiguous or
 * too short, as Consul returns).
 */
export function nodeServices(txn: ReadTxn, nodeNameOrId: string): QueryResult<NodeServices | null> {
  let node = txn.first<NodeRecord>(TABLES.nodes, 'id', nodeNameOrId);
  if (!node) {
    if (nodeNameOrId.length < UUID_LOOKUP_LENGTH_MIN) return { index: 0, value: null };
    const prefix = nodeNameOrId.length % 2 === 0 ? nodeNameOrId : nodeNameOrId.slice(0, -1);
    const matches = txn.getPrefix<NodeRecord>(TABLES.nodes, 'uuid', prefix);
    const first = matches.next();
    if (first.done) return { index: readIndexValue(txn, INDEX_NODE_EXTINCTION), value: null };
    if (!matches.next().done) return { index: 0, value: null };
    node = first.value;
  }
  const list = [...txn.get<ServiceRecord>(TABLES.services, 'node', node.Node)];
  return { index: readIndexValue(txn, nodeIndexKey(node.Node)), value: { Node: node, Services: list } };
}

/** One service instance on a node (NodeService). Index: services. */
export function nodeService(txn: ReadTxn, nodeName: string, serviceId: string): QueryResult<ServiceRecord | undefined> {
  return { index: tableIndex(txn, TABLES.services), value: txn.first<ServiceRecord>(TABLES.services, 'id', nodeName, serviceId) };
}

/** Every check on a node, node and service checks, in check ID order (NodeChecks). Index: checks. */
export function nodeChecks(txn: ReadTxn, nodeName: string): QueryResult<CheckRecord[]> {
  return { index: tableIndex(txn, TABLES.checks), value: [...txn.get<CheckRecord>(TABLES.checks, 'node', nodeName)] };
}

/** One check (NodeCheck). Index: checks. */
export function nodeCheck(txn: ReadTxn, nodeName: string, checkId: string): QueryResult<CheckRecord | undefined> {
  return { index: tableIndex(txn, TABLES.checks), value: txn.first<CheckRecord>(TABLES.checks, 'id', nodeName, checkId) };
}

/**
 * The checks of every instance of a service, by the service name they were registered under
 * (ServiceChecks, ServiceChecksByNodeMeta). Index: checks; with a meta filter Consul uses
 * maxIndexForService instead, and so does this.
 */
export function serviceChecks(txn: ReadTxn, serviceName: string, nodeMeta?: MetaFilter): QueryResult<CheckRecord[]> {
  if (!hasFilter(nodeMeta)) {
    return { index: tableIndex(txn, TABLES.checks), value: [...txn.get<CheckRecord>(TABLES.checks, 'service', serviceName)] };
  }
  const index = maxIndexForService(txn, serviceName, true, true);
  return { index, value: filterChecksByNodeMeta(txn, txn.get<CheckRecord>(TABLES.checks, 'service', serviceName), nodeMeta) };
}

/**
 * Checks in a state: "any" for all, else the status compared case-insensitively; an unknown
 * state matches nothing (ChecksInState, ChecksInStateByNodeMeta). Index: checks.
 */
export function checksInState(txn: ReadTxn, state: string, nodeMeta?: MetaFilter): QueryResult<CheckRecord[]> {
  const index = tableIndex(txn, TABLES.checks);
  const found = state === 'any' ? txn.all<CheckRecord>(TABLES.checks) : txn.get<CheckRecord>(TABLES.checks, 'status', state);
  if (!hasFilter(nodeMeta)) return { index, value: [...found] };
  return { index, value: filterChecksByNodeMeta(txn, found, nodeMeta) };
}

/**
 * Every instance of a service with its node and checks: the node's node-level checks, then the
 * instance's own (CheckServiceNodes, CheckServiceTagNodes, plus the endpoint's node-meta filter).
 * All instances are returned whatever their health. Index: maxIndexForService with checks.
 */
export function checkServiceNodes(txn: ReadTxn, serviceName: string, options: ServiceQueryOptions = {}): QueryResult<CheckServiceNode[]> {
  const instances = [...txn.get<ServiceRecord>(TABLES.services, 'service', serviceName)];
  const index = maxIndexForService(txn, serviceName, instances.length > 0, true);
  const value: CheckServiceNode[] = [];
  for (const service of instances) {
    if (!hasAllTags(service, options.tags)) continue;
    const node = nodeOf(txn, service);
    if (hasFilter(options.nodeMeta) && !satisfiesMeta(node.Meta, options.nodeMeta)) continue;
    const checks = [...txn.get<CheckRecord>(TABLES.checks, 'node_service', service.Node, ''), ...txn.get<CheckRecord>(TABLES.checks, 'node_service', service.Node, service.ID)];
    value.push({ Node: node, Service: service, Checks: checks });
  }
  return { index, value };
}

/** Every stored coordinate, in (node, segment) order (Coordinates). Index: coordinates. */
export function coordinates(txn: ReadTxn): QueryResult<CoordinateRecord[]> {
  return { index: tableIndex(txn, TABLES.coordinates), value: [...txn.all<CoordinateRecord>(TABLES.coordinates)] };
}

/** One node's coordinates by network segment (Coordinate). Index: coordinates. */
export function coordinate(txn: ReadTxn, nodeName: string): QueryResult<Map<string, Coordinate>> {
  const value = new Map<string, Coordinate>();
  for (const record of txn.get<CoordinateRecord>(TABLES.coordinates, 'node', nodeName)) value.set(record.Segment, record.Coord);
  return { index: tableIndex(txn, TABLES.coordinates), value };
}

/**
 * Consul's aggregate health (api.HealthChecks.AggregatedStatus): maintenance if any check is a
 * maintenance check (`_node_maintenance`, `_service_maintenance:*`), else critical, warning,
 * passing in that order of precedence; passing for no checks; "" if a non-maintenance check has
 * an unknown status.
 */
export function aggregateStatus(checks: readonly { readonly CheckID: string; readonly Status: string }[]): AggregateStatus {
  let isMaintenance = false;
  let isCritical = false;
  let isWarning = false;
  for (const check of checks) {
    if (check.CheckID === NODE_MAINTENANCE_CHECK_ID || check.CheckID.startsWith(SERVICE_MAINTENANCE_CHECK_PREFIX)) {
      isMaintenance = true;
      continue;
    }
    if (check.Status === 'critical') isCritical = true;
    else if (check.Status === 'warning') isWarning = true;
    else if (check.Status !== 'passing') return '';
  }
  if (isMaintenance) return 'maintenance';
  if (isCritical) return 'critical';
  if (isWarning) return 'warning';
  return 'passing';
}

// ---------------------------------------------------------------------------------------------
// Transactions: the Node, Service and Check ops of /v1/txn, and the dispatch of a mixed txn
// (agent/consul/state/txn.go txnNode, txnService, txnCheck, txnDispatch; agent/consul/
// txn_endpoint.go preCheck). KV ops are run by lib/kvs.ts; this is where the kinds meet.

/**
 * Runs every op of a transaction in one write transaction (TxnRW). Like Consul it runs every op
 * and reports each failure with its OpIndex and Consul's What; if any failed, Results is null and
 * the caller must abort `txn` so that no op's effect survives. Unknown verbs are a caller bug
 * here: the endpoint refuses them before Raft and the FSM decoder refuses them in the log.
 */
export function txnApply(txn: WriteTxn, index: number, ops: readonly TxnOp[], lockDelay: LockDelay): TxnOpsResponse {
  return txnDispatch(ops, (op) => {
    if ('KV' in op) return kvsTxnOp(txn, index, op.KV);
    if ('Node' in op) return txnNode(txn, index, op.Node, lockDelay);
    if ('Service' in op) return txnService(txn, index, op.Service, lockDelay);
    return txnCheck(txn, index, op.Check, lockDelay);
  });
}

/** Runs read-only ops on a snapshot (TxnRO). A write verb is a caller bug. */
export function txnRead(txn: ReadTxn, ops: readonly TxnOp[]): TxnOpsResponse {
  for (const op of ops) assert.ok(!isTxnWriteOp(op), 'a read-only txn carries a write op');
  return txnDispatch(ops, (op) => {
    if ('KV' in op) return kvsTxnReadOp(txn, op.KV);
    if ('Node' in op) return txnNodeGet(txn, op.Node.Node);
    if ('Service' in op) return txnServiceGet(txn, op.Service.Node, op.Service.Service.ID ?? '');
    return txnCheckGet(txn, op.Check.Check.Node ?? '', op.Check.Check.CheckID ?? '');
  });
}

/**
 * Whether an op writes (convertOps' count): a KV write verb, or any catalog verb but `get`. An
 * unknown catalog verb counts as a write, as in Consul, so it goes the Apply way.
 */
export function isTxnWriteOp(op: TxnOp): boolean {
  if ('KV' in op) return isKvWriteOp(op.KV.Verb);
  if ('Node' in op) return op.Node.Verb !== 'get';
  if ('Service' in op) return op.Service.Verb !== 'get';
  return op.Check.Verb !== 'get';
}

/**
 * The server's checks before a txn runs (Txn.preCheck), for Apply and Read alike. Returns the
 * ops as Consul normalizes them on the way (a service ID defaults to its name, a check ID to its
 * name; `get` ops are left alone) and one error per refused op: a KV op with an empty key or
 * held by lock-delay, a node write without a name or with a malformed ID, a service write with
 * an ID but no name or a wildcard address. Nothing may run when errors is non-empty.
 */
export function txnPreCheck(ops: readonly TxnOp[], lockDelay: LockDelay): { readonly ops: TxnOp[]; readonly errors: TxnError[] } {
  const errors: TxnError[] = [];
  const checked = ops.map((op, opIndex): TxnOp => {
    const refuse = (what: string | undefined): void => {
      if (what !== undefined) errors.push({ OpIndex: opIndex, What: what });
    };
    if ('KV' in op) {
      refuse(kvsTxnPreCheckOp(op.KV, lockDelay));
      return op;
    }
    if ('Node' in op) {
      if (op.Node.Verb !== 'get') refuse(nodePreApplyProblem(op.Node.Node));
      return op;
    }
    if ('Service' in op) {
      if (op.Service.Verb === 'get') return op;
      const service = op.Service.Service;
      const normalized = !service.ID && service.Service ? { ...service, ID: service.Service } : service;
      refuse(servicePreApplyProblem(normalized));
      return { Service: { ...op.Service, Service: normalized } };
    }
    if (op.Check.Verb === 'get') return op;
    const check = op.Check.Check;
    // checkPreApply: the check ID defaults to the name.
    return !check.CheckID && check.Name ? { Check: { ...op.Check, Check: { ...check, CheckID: check.Name } } } : op;
  });
  return { ops: checked, errors };
}

/**
 * One error per op whose verb the state store does not know (`unknown Node verb "x"`, Consul's
 * text). The endpoint answers these itself, so an unknown verb never reaches the Raft log.
 */
export function txnUnknownVerbErrors(ops: readonly TxnOp[]): TxnError[] {
  const errors: TxnError[] = [];
  ops.forEach((op, opIndex) => {
    const [kind, verb, verbs] = txnOpVerb(op);
    if (!verbs.includes(verb)) errors.push({ OpIndex: opIndex, What: `unknown ${kind} verb ${goQuote(verb)}` });
  });
  return errors;
}

/** Node op (txnNode). set and cas answer the node as stored; get the node; deletes nothing. */
function txnNode(txn: WriteTxn, index: number, op: TxnNodeOp, lockDelay: LockDelay): TxnOpResult[] {
  const node = op.Node;
  const name = goQuote(node.Node);
  const { ModifyIndex: casIndex, ...input } = node;
  switch (op.Verb) {
    case 'get':
      return txnNodeGet(txn, node);
    case 'set':
      ensureNode(txn, index, input, lockDelay);
      return nodeResult(txn, node);
    case 'cas': {
      const existing = txn.first<NodeRecord>(TABLES.nodes, 'id', node.Node);
      if (!isCasMatch(existing, casIndex)) throw new TxnOpError(`failed to set node ${name}, index is stale`);
      ensureNode(txn, index, input, lockDelay);
      return nodeResult(txn, node);
    }
    case 'delete':
      deleteNode(txn, index, node.Node, lockDelay);
      return [];
    case 'delete-cas': {
      const existing = txn.first<NodeRecord>(TABLES.nodes, 'id', node.Node);
      if (existing === undefined || existing.ModifyIndex !== casIndex) throw new TxnOpError(`failed to delete node ${name}, index is stale`);
      deleteNode(txn, index, node.Node, lockDelay);
      return [];
    }
    default:
      throw new TxnOpError(`unknown Node verb ${goQuote(String(op.Verb))}`);
  }
}

/** Service op (txnService). set and cas answer the service as stored; get the service. */
function txnService(txn: WriteTxn, index: number, op: TxnServiceOp, lockDelay: LockDelay): TxnOpResult[] {
  const { ModifyIndex: casIndex = 0, ...service } = op.Service;
  const id = service.ID ?? '';
  const where = `${goQuote(id)} on node ${goQuote(op.Node)}`;
  const existing = (): ServiceRecord | undefined => txn.first<ServiceRecord>(TABLES.services, 'id', op.Node, id);
  switch (op.Verb) {
    case 'get':
      return txnServiceGet(txn, op.Node, id);
    case 'set':
      ensureService(txn, index, op.Node, service);
      return serviceResult(existing());
    case 'cas':
      if (!isCasMatch(existing(), casIndex)) throw new TxnOpError(`failed to set service ${where}, index is stale`);
      ensureService(txn, index, op.Node, service);
      return serviceResult(existing());
    case 'delete':
      deleteService(txn, index, op.Node, id, lockDelay);
      return [];
    case 'delete-cas': {
      const found = existing();
      if (found === undefined || found.ModifyIndex !== casIndex) throw new TxnOpError(`failed to delete service ${where}, index is stale`);
      deleteService(txn, index, op.Node, id, lockDelay);
      return [];
    }
    default:
      throw new TxnOpError(`unknown Service verb ${goQuote(String(op.Verb))}`);
  }
}

/** Check op (txnCheck). set and cas answer the check as stored; get the check. */
function txnCheck(txn: WriteTxn, index: number, op: TxnCheckOp, lockDelay: LockDelay): TxnOpResult[] {
  const { ModifyIndex: casIndex = 0, ...check } = op.Check;
  const nodeName = check.Node ?? '';
  const checkId = check.CheckID ?? '';
  const where = `${goQuote(checkId)} on node ${goQuote(nodeName)}`;
  const existing = (): CheckRecord | undefined => txn.first<CheckRecord>(TABLES.checks, 'id', nodeName, checkId);
  switch (op.Verb) {
    case 'get':
      return txnCheckGet(txn, nodeName, checkId);
    case 'set':
      ensureTxnCheck(txn, index, check, lockDelay);
      return checkResult(existing());
    case 'cas':
      if (!isCasMatch(existing(), casIndex)) throw new TxnOpError(`failed to set check ${where}, index is stale`);
      ensureTxnCheck(txn, index, check, lockDelay);
      return checkResult(existing());
    case 'delete':
      deleteCheck(txn, index, nodeName, checkId, lockDelay);
      return [];
    case 'delete-cas': {
      const found = existing();
      if (found === undefined || found.ModifyIndex !== casIndex) throw new TxnOpError(`failed to delete check ${where}, index is stale`);
      deleteCheck(txn, index, nodeName, checkId, lockDelay);
      return [];
    }
    default:
      throw new TxnOpError(`unknown Check verb ${goQuote(String(op.Verb))}`);
  }
}

/** Node get: by ID when the op carries one (a malformed ID is an error), else by name. */
function txnNodeGet(txn: ReadTxn, node: TxnNode): TxnOpResult[] {
  const found = txnLookupNode(txn, node);
  if (found === undefined) throw new TxnOpError(`node ${goQuote(node.Node)} doesn't exist`);
  return [{ Node: found }];
}

function txnServiceGet(txn: ReadTxn, nodeName: string, serviceId: string): TxnOpResult[] {
  const found = txn.first<ServiceRecord>(TABLES.services, 'id', nodeName, serviceId);
  if (found === undefined) throw new TxnOpError(`service ${goQuote(serviceId)} on node ${goQuote(nodeName)} doesn't exist`);
  return [{ Service: found }];
}

function txnCheckGet(txn: ReadTxn, nodeName: string, checkId: string): TxnOpResult[] {
  const found = txn.first<CheckRecord>(TABLES.checks, 'id', nodeName, checkId);
  if (found === undefined) throw new TxnOpError(`check ${goQuote(checkId)} on node ${goQuote(nodeName)} doesn't exist`);
  return [{ Check: found }];
}

/** txnNode's getNode: Consul looks a node up by ID when the op has one, by name otherwise. */
function txnLookupNode(txn: ReadTxn, node: TxnNode): NodeRecord | undefined {
  if (node.ID === '') return txn.first<NodeRecord>(TABLES.nodes, 'id', node.Node);
  const problem = parseUuidProblem(node.ID);
  if (problem !== undefined) throw new TxnOpError(`node lookup by ID failed, wrong UUID: ${problem}`);
  return txn.first<NodeRecord>(TABLES.nodes, 'uuid', node.ID);
}

function nodeResult(txn: ReadTxn, node: TxnNode): TxnOpResult[] {
  const found = txnLookupNode(txn, node);
  return found === undefined ? [] : [{ Node: found }];
}

function serviceResult(found: ServiceRecord | undefined): TxnOpResult[] {
  return found === undefined ? [] : [{ Service: found }];
}

function checkResult(found: CheckRecord | undefined): TxnOpResult[] {
  return found === undefined ? [] : [{ Check: found }];
}

/**
 * The ensure*CASTxn rule: index 0 means "only if absent"; otherwise the record must exist with
 * exactly that ModifyIndex.
 */
function isCasMatch(existing: { readonly ModifyIndex: number } | undefined, casIndex: number): boolean {
  if (casIndex === 0) return existing === undefined;
  return existing !== undefined && existing.ModifyIndex === casIndex;
}

/**
 * ensureCheckTxn's refusals in its own order (node, then service, then the record), which differs
 * from a registration's: a txn check names its node itself and is not vetted against a request.
 */
function ensureTxnCheck(txn: WriteTxn, index: number, check: HealthCheckInput, lockDelay: LockDelay): void {
  // Consul's txn path never derives Type from the definition (only registration does).
  const draft = { ...buildCheck(check, check.Node ?? ''), Type: check.Type ?? '' };
  if (!txn.first<NodeRecord>(TABLES.nodes, 'id', draft.Node)) throw new StateError('ERR_MISSING_NODE', 'Missing node registration');
  if (draft.ServiceID !== '' && !txn.first<ServiceRecord>(TABLES.services, 'id', draft.Node, draft.ServiceID)) {
    throw new StateError('ERR_MISSING_SERVICE', 'Missing service registration');
  }
  if (draft.CheckID === '') throw new StateError('ERR_MISSING_CHECK_ID', `failed inserting check: ${MISSING_INDEX_VALUE_TEXT}`);
  const problem = checkRecordProblem(draft, check.Status);
  if (problem) throw new StateError(problem.code, problem.message);
  writeCheck(txn, index, draft, lockDelay);
}

/** nodePreApply: a name, and an ID that parses as a UUID when given. */
function nodePreApplyProblem(node: TxnNode): string | undefined {
  if (node.Node === '') return 'Must provide node';
  if (node.ID === '') return undefined;
  const problem = parseUuidProblem(node.ID);
  return problem && `Bad node ID: ${problem}`;
}

/** servicePreApply without ACLs and mesh validation (the ID already defaulted to the name). */
function servicePreApplyProblem(service: NodeServiceInput): string | undefined {
  if (service.ID && !service.Service) return 'Must provide service name (Service.Service) when service ID is provided';
  if (isAnyAddress(service.Address ?? '')) return 'Invalid service address';
  return undefined;
}

function txnOpVerb(op: TxnOp): [kind: string, verb: string, verbs: readonly string[]] {
  if ('KV' in op) return ['KV', op.KV.Verb, TXN_KV_VERBS];
  if ('Node' in op) return ['Node', op.Node.Verb, CATALOG_TXN_VERBS];
  if ('Service' in op) return ['Service', op.Service.Verb, CATALOG_TXN_VERBS];
  return ['Check', op.Check.Verb, CATALOG_TXN_VERBS];
}

function txnDispatch(ops: readonly TxnOp[], run: (op: TxnOp) => TxnOpResult[]): TxnOpsResponse {
  const results: TxnOpResult[] = [];
  const errors: TxnError[] = [];
  ops.forEach((op, opIndex) => {
    try {
      results.push(...run(op));
    } catch (error) {
      if (!isTxnOpFailure(error)) throw error;
      errors.push({ OpIndex: opIndex, What: error.message });
    }
  });
  return errors.length > 0 ? { Results: null, Errors: errors } : { Results: results, Errors: null };
}

// ---------------------------------------------------------------------------------------------
// Registration planning: every refusal is found here, before the first write.

type NodeDraft = Omit<NodeRecord, 'CreateIndex' | 'ModifyIndex'>;
type ServiceDraft = Omit<ServiceRecord, 'CreateIndex' | 'ModifyIndex'>;
type CheckDraft = Omit<CheckRecord, 'CreateIndex' | 'ModifyIndex'>;

interface RegistrationPlan {
  /** The node record to write, or undefined when the node exists and is left alone. */
  readonly node: NodeDraft | undefined;
  readonly service: ServiceDraft | undefined;
  readonly checks: readonly CheckDraft[];
}

interface Problem {
  readonly code: string;
  readonly message: string;
}

function planRegistration(txn: ReadTxn, req: RegisterRequest): RegistrationPlan {
  const nodeDraft = buildNode(req);
  const requestProblem = registerRequestProblem(req);
  if (requestProblem) throw new StateError(requestProblem.code, requestProblem.message);
  const service = req.Service ? buildService(req.Node, req.Service) : undefined;
  if (service && (service.ID === '' || service.Service === '')) {
    // Deviation: Consul lets an empty service through to a memdb index error.
    throw new StateError('ERR_MISSING_SERVICE_NAME', 'Must provide service name');
  }
  // Catalog.Register flattens Check after Checks.
  const inputs = [...(req.Checks ?? []), ...(req.Check ? [req.Check] : [])];
  if (inputs.length > REGISTER_CHECKS_MAX) throw new StateError('ERR_TOO_MANY_CHECKS', `Too many checks in one registration (limit: ${REGISTER_CHECKS_MAX})`);
  const checks = inputs.map((input) => buildCheck(input, req.Node));
  for (const [i, check] of checks.entries()) {
    const problem = vetCheckProblem(txn, req, service, check);
    if (problem) throw new StateError(problem.code, problem.message);
    const recordProblem = checkRecordProblem(check, inputs[i]?.Status);
    if (recordProblem) throw new StateError(recordProblem.code, recordProblem.message);
  }
  const existing = txn.first<NodeRecord>(TABLES.nodes, 'id', req.Node);
  const isNodeWritten = existing === undefined || changesNode(req, nodeDraft, existing);
  if (isNodeWritten) {
    const problem = nodeWriteProblem(txn, nodeDraft);
    if (problem) throw new StateError('ERR_NODE_NAME_RESERVED', `failed inserting node: ${problem}`);
  }
  if (service) {
    const problem = serviceMetaProblem(service);
    if (problem) throw new StateError('ERR_INVALID_SERVICE_META', `failed inserting service: ${problem}`);
  }
  return { node: isNodeWritten ? nodeDraft : undefined, service, checks };
}

/** Catalog.Register's checks on the request itself (nodePreApply, servicePreApply). */
function registerRequestProblem(req: RegisterRequest): Problem | undefined {
  if (req.Node === '') return { code: 'ERR_MISSING_NODE_NAME', message: 'Must provide node' };
  if (req.ID) {
    const uuidProblem = parseUuidProblem(req.ID);
    if (uuidProblem) return { code: 'ERR_BAD_NODE_ID', message: `Bad node ID: ${uuidProblem}` };
  }
  if (!req.Address && !req.SkipNodeUpdate) return { code: 'ERR_MISSING_ADDRESS', message: 'Must provide address if SkipNodeUpdate is not set' };
  const service = req.Service;
  if (service) {
    if (service.ID && !service.Service) {
      return { code: 'ERR_MISSING_SERVICE_NAME', message: 'Must provide service name (Service.Service) when service ID is provided' };
    }
    if (isAnyAddress(service.Address ?? '')) return { code: 'ERR_INVALID_SERVICE_ADDRESS', message: 'Invalid service address' };
  }
  return undefined;
}

/**
 * vetRegisterWithACL's structural checks, which run with or without ACLs: a check must name the
 * request's node, and a service check must name the request's service or a service already on
 * the node, by exact ID.
 */
function vetCheckProblem(txn: ReadTxn, req: RegisterRequest, service: ServiceDraft | undefined, check: CheckDraft): Problem | undefined {
  if (!equalFold(check.Node, req.Node)) {
    return { code: 'ERR_CHECK_NODE_MISMATCH', message: `Node '${check.Node}' for check '${check.CheckID}' doesn't match register request node '${req.Node}'` };
  }
  if (check.ServiceID === '' || (service && service.ID === check.ServiceID)) return undefined;
  const existing = txn.first<ServiceRecord>(TABLES.services, 'id', req.Node, check.ServiceID);
  if (existing && existing.ID === check.ServiceID) return undefined;
  return { code: 'ERR_UNKNOWN_SERVICE_ID', message: `Unknown service ID '${check.ServiceID}' for check ID '${check.CheckID}'` };
}

/** What ensureCheckTxn would fail on for this record, in Consul's words. */
function checkRecordProblem(check: CheckDraft, givenStatus: string | undefined): Problem | undefined {
  if (check.Node === '' || check.CheckID === '') {
    return { code: 'ERR_MISSING_CHECK_ID', message: `failed inserting check on node ${JSON.stringify(check.Node)}: failed inserting check: ${MISSING_INDEX_VALUE_TEXT}` };
  }
  if (givenStatus && !CHECK_STATUSES.has(givenStatus)) {
    // Deviation: Consul's catalog stores any status string; ours stores only the three it knows.
    return { code: 'ERR_INVALID_CHECK_STATUS', message: `Invalid check status: ${JSON.stringify(givenStatus)}` };
  }
  return undefined;
}

/** ValidateServiceMetadata as ensureServiceTxn reports it. */
function serviceMetaProblem(service: ServiceDraft): string | undefined {
  const problem = validateMeta(service.Meta);
  return problem && `Invalid Service Meta for node ${service.Node} and serviceID ${service.ID}: ${problem}`;
}

/**
 * Why ensureNodeTxn would refuse this node, or undefined. A node ID moving to a new name, or a
 * new node ID taking a name, must not take the name from another node whose serfHealth is
 * passing or warning (a nodeless-ID holder may be replaced when the new record has an ID).
 */
function nodeWriteProblem(txn: ReadTxn, node: NodeDraft): string | undefined {
  if (node.ID === '') return undefined;
  const byId = txn.first<NodeRecord>(TABLES.nodes, 'uuid', node.ID);
  if (byId) {
    if (equalFold(byId.Node, node.Node)) return undefined;
    const clash = similarNameProblem(txn, node, false);
    return clash && `Error while renaming Node ID: ${JSON.stringify(node.ID)} (${node.Address}): ${clash}`;
  }
  const clash = similarNameProblem(txn, node, true);
  return clash && `Error while renaming Node ID: ${JSON.stringify(node.ID)}: ${clash}`;
}

/** ensureNoNodeWithSimilarNameTxn: names compare case-insensitively, so one lookup finds the holder. */
function similarNameProblem(txn: ReadTxn, node: NodeDraft, isClashWithoutIdAllowed: boolean): string | undefined {
  const holder = txn.first<NodeRecord>(TABLES.nodes, 'id', node.Node);
  if (!holder || holder.ID === node.ID) return undefined;
  const serf = txn.first<CheckRecord>(TABLES.checks, 'id', holder.Node, SERF_CHECK_ID);
  const isHealthy = serf !== undefined && serf.Status !== 'critical';
  if ((holder.ID === '' && isClashWithoutIdAllowed) || !isHealthy) return undefined;
  return `Node name ${node.Node} is reserved by node ${holder.ID} with name ${holder.Node} (${holder.Address})`;
}

/** RegisterRequest.ChangesNode: would the request alter the stored node record? */
function changesNode(req: RegisterRequest, draft: NodeDraft, existing: NodeRecord): boolean {
  if (req.SkipNodeUpdate) return false;
  return !isSameNode(existing, draft);
}

// ---------------------------------------------------------------------------------------------
// Record building

function buildNode(req: RegisterRequest): NodeDraft {
  return {
    ID: req.ID ?? '',
    Node: req.Node,
    Address: req.Address ?? '',
    Datacenter: req.Datacenter ?? '',
    TaggedAddresses: { ...req.TaggedAddresses },
    Meta: { ...req.NodeMeta },
  };
}

function buildService(node: string, input: NodeServiceInput): ServiceDraft {
  const name = input.Service ?? '';
  const weights = input.Weights && input.Weights.Passing >= 1 && input.Weights.Warning >= 0 ? input.Weights : { Passing: 1, Warning: 1 };
  const draft: ServiceDraft = {
    Node: node,
    ID: input.ID || name,
    Service: name,
    Kind: input.Kind ?? '',
    Tags: [...(input.Tags ?? [])],
    Address: input.Address ?? '',
    TaggedAddresses: copyTaggedAddresses(input.TaggedAddresses),
    Meta: { ...input.Meta },
    Port: input.Port ?? 0,
    SocketPath: input.SocketPath ?? '',
    Weights: { Passing: weights.Passing, Warning: weights.Warning },
    EnableTagOverride: input.EnableTagOverride ?? false,
  };
  if (input.Proxy === undefined && input.Connect === undefined) return draft;
  return { ...draft, Proxy: input.Proxy, Connect: input.Connect };
}

function buildCheck(input: HealthCheckInput, defaultNode: string): CheckDraft {
  const definition: CheckDefinitionRecord = { ...input.Definition };
  return {
    Node: input.Node || defaultNode,
    CheckID: input.CheckID || input.Name || '',
    Name: input.Name ?? '',
    Status: input.Status && CHECK_STATUSES.has(input.Status) ? (input.Status as CheckRecord['Status']) : 'critical',
    Notes: input.Notes ?? '',
    Output: input.Output ?? '',
    ServiceID: input.ServiceID ?? '',
    ServiceName: input.ServiceName ?? '',
    ServiceTags: [...(input.ServiceTags ?? [])],
    Type: input.Type || checkTypeOf(definition),
    Interval: input.Interval ?? '',
    Timeout: input.Timeout ?? '',
    ExposedPort: input.ExposedPort ?? 0,
    Definition: definition,
  };
}

function copyTaggedAddresses(input: Readonly<Record<string, ServiceAddressRecord>> | undefined): Record<string, ServiceAddressRecord> {
  const result: Record<string, ServiceAddressRecord> = {};
  for (const [key, value] of Object.entries(input ?? {})) result[key] = { Address: value.Address, Port: value.Port };
  return result;
}

/** CheckType.Type() for the definition fields the catalog keeps. */
function checkTypeOf(definition: CheckDefinitionRecord): string {
  if (!hasPositiveInterval(definition.Interval)) return '';
  if (definition.GRPC) return 'grpc';
  if (definition.HTTP) return 'http';
  if (definition.TCP) return 'tcp';
  if (definition.UDP) return 'udp';
  return '';
}

function hasPositiveInterval(interval: string | undefined): boolean {
  if (!interval) return false;
  try {
    return parseDuration(interval) > 0;
  } catch (error) {
    // An unparsable interval counts as unset, as a zero Go duration would.
    if (error instanceof DurationError) return false;
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Record writing (validated input only)

/** ensureNodeTxn after validation; see nodeWriteProblem for the refusals. */
function writeNode(txn: WriteTxn, index: number, draft: NodeDraft, lockDelay: LockDelay): void {
  let existing: NodeRecord | undefined;
  if (draft.ID !== '') {
    existing = txn.first<NodeRecord>(TABLES.nodes, 'uuid', draft.ID);
    // The same ID under a new name is a rename: the old node goes, with all it carried. The new
    // record keeps the old CreateIndex, as Consul's does.
    if (existing && !equalFold(existing.Node, draft.Node)) deleteNode(txn, index, existing.Node, lockDelay);
  }
  existing ??= txn.first<NodeRecord>(TABLES.nodes, 'id', draft.Node);
  if (existing && isSameNode(existing, draft)) return;
  txn.insert<NodeRecord>(TABLES.nodes, { ...draft, CreateIndex: existing?.CreateIndex ?? index, ModifyIndex: index });
  bumpTableIndex(txn, TABLES.nodes, index);
  raiseIndexEntry(txn, nodeIndexKey(draft.Node), index);
  // Health queries embed the node record, so every service on it changed too.
  raiseServiceIndexesOfNode(txn, index, draft.Node);
}

/** ensureServiceTxn after validation: the node exists. */
function writeService(txn: WriteTxn, index: number, draft: ServiceDraft): void {
  assert.ok(txn.first<NodeRecord>(TABLES.nodes, 'id', draft.Node), 'a service is written only on an existing node');
  const existing = txn.first<ServiceRecord>(TABLES.services, 'id', draft.Node, draft.ID);
  if (existing && isSameService(existing, draft)) return;
  txn.insert<ServiceRecord>(TABLES.services, { ...draft, CreateIndex: existing?.CreateIndex ?? index, ModifyIndex: index });
  bumpTableIndex(txn, TABLES.services, index);
  raiseIndexEntry(txn, serviceIndexKey(draft.Service), index);
  // Node queries list the node's services.
  bumpTableIndex(txn, TABLES.nodes, index);
  raiseIndexEntry(txn, nodeIndexKey(draft.Node), index);
  // Deviation: Consul leaves the old name's index alone when an ID changes its service name, so
  // a blocking query on the old name would miss the instance leaving. Treat it as a departure.
  if (existing && !equalFold(existing.Service, draft.Service)) leaveServiceName(txn, index, existing.Service);
}

/** ensureCheckTxn after validation: the node exists, and the service for a service check. */
function writeCheck(txn: WriteTxn, index: number, draft: CheckDraft, lockDelay: LockDelay): void {
  assert.ok(txn.first<NodeRecord>(TABLES.nodes, 'id', draft.Node), 'a check is written only on an existing node');
  const existing = txn.first<CheckRecord>(TABLES.checks, 'id', draft.Node, draft.CheckID);
  let check = draft;
  if (draft.ServiceID !== '') {
    const service = txn.first<ServiceRecord>(TABLES.services, 'id', draft.Node, draft.ServiceID);
    assert.ok(service, 'a service check is written only for an existing service');
    // Copied at write time; a later service update does not rewrite its checks (as in Consul).
    check = { ...draft, ServiceName: service.Service, ServiceTags: service.Tags };
  }
  const isModified = existing === undefined || !isSameCheck(existing, check);
  if (isModified && check.ServiceID !== '') raiseIndexEntry(txn, serviceIndexKey(check.ServiceName), index);
  if (isModified && check.ServiceID === '') raiseServiceIndexesOfNode(txn, index, check.Node);
  // Consul invalidates on every critical write, changed or not.
  if (check.Status === 'critical') invalidateCheckSessions(txn, index, check.Node, check.CheckID, lockDelay);
  if (!isModified) return;
  txn.insert<CheckRecord>(TABLES.checks, { ...check, CreateIndex: existing?.CreateIndex ?? index, ModifyIndex: index });
  bumpTableIndex(txn, TABLES.checks, index);
}

/** After an instance of `serviceName` went away: move its index, or retire it if it was the last. */
function leaveServiceName(txn: WriteTxn, index: number, serviceName: string): void {
  if (txn.first<ServiceRecord>(TABLES.services, 'service', serviceName)) {
    raiseIndexEntry(txn, serviceIndexKey(serviceName), index);
    return;
  }
  dropIndexEntry(txn, serviceIndexKey(serviceName));
  raiseIndexEntry(txn, INDEX_SERVICE_EXTINCTION, index);
}

/** updateAllServiceIndexesOfNode: every service on the node sees a node-level change. */
function raiseServiceIndexesOfNode(txn: WriteTxn, index: number, nodeName: string): void {
  const names = new Set<string>();
  for (const service of txn.get<ServiceRecord>(TABLES.services, 'node', nodeName)) names.add(serviceIndexKey(service.Service));
  for (const key of names) raiseIndexEntry(txn, key, index);
}

// ---------------------------------------------------------------------------------------------
// Comparisons: Consul's IsSame family, which decide whether a write happens at all.

/** Node.IsSame: everything but the Raft indexes; the name case-insensitively. */
function isSameNode(a: NodeDraft, b: NodeDraft): boolean {
  return (
    a.ID === b.ID &&
    equalFold(a.Node, b.Node) &&
    a.Address === b.Address &&
    a.Datacenter === b.Datacenter &&
    isDeepEqual(a.TaggedAddresses, b.TaggedAddresses) &&
    isDeepEqual(a.Meta, b.Meta)
  );
}

/** ServiceNode.IsSameService. Like Consul's it does not compare SocketPath. */
function isSameService(a: ServiceDraft, b: ServiceDraft): boolean {
  return (
    equalFold(a.Node, b.Node) &&
    a.Kind === b.Kind &&
    a.ID === b.ID &&
    a.Service === b.Service &&
    isDeepEqual(a.Tags, b.Tags) &&
    a.Address === b.Address &&
    isDeepEqual(a.TaggedAddresses, b.TaggedAddresses) &&
    a.Port === b.Port &&
    isDeepEqual(a.Meta, b.Meta) &&
    isDeepEqual(a.Weights, b.Weights) &&
    a.EnableTagOverride === b.EnableTagOverride &&
    isDeepEqual(a.Proxy, b.Proxy) &&
    isDeepEqual(a.Connect, b.Connect)
  );
}

/** HealthCheck.IsSame. Like Consul's it ignores Type, Interval, Timeout and ExposedPort. */
function isSameCheck(a: CheckDraft, b: CheckDraft): boolean {
  return (
    equalFold(a.Node, b.Node) &&
    a.CheckID === b.CheckID &&
    a.Name === b.Name &&
    a.Status === b.Status &&
    a.Notes === b.Notes &&
    a.Output === b.Output &&
    a.ServiceID === b.ServiceID &&
    a.ServiceName === b.ServiceName &&
    isDeepEqual(a.ServiceTags, b.ServiceTags) &&
    isDeepEqual(a.Definition, b.Definition)
  );
}

/**
 * Structural equality of plain data (records, arrays, primitives). A property set to undefined
 * equals a missing one. Deviation: Go's reflect.DeepEqual tells a nil map from an empty one; the
 * records here have no nil, so an absent map and {} are the same value.
 */
function isDeepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((value, i) => isDeepEqual(value, b[i]));
  }
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left).filter((key) => left[key] !== undefined);
  if (keys.length !== Object.keys(right).filter((key) => right[key] !== undefined).length) return false;
  return keys.every((key) => Object.hasOwn(right, key) && isDeepEqual(left[key], right[key]));
}

// ---------------------------------------------------------------------------------------------
// Query helpers

/**
 * maxIndexAndWatchChForService: with no instance, the service extinction index once any service
 * has gone extinct; else the service's own entry; else the catalog tables' maximum.
 */
function maxIndexForService(txn: ReadTxn, serviceName: string, doesExist: boolean, isWithChecks: boolean): number {
  if (!doesExist) {
    const extinction = readIndexEntry(txn, INDEX_SERVICE_EXTINCTION);
    if (extinction) return extinction.Value;
  }
  const entry = readIndexEntry(txn, serviceIndexKey(serviceName));
  if (entry) return entry.Value;
  return isWithChecks ? maxTableIndex(txn, TABLES.checks, TABLES.services, TABLES.nodes) : maxTableIndex(txn, TABLES.services, TABLES.nodes);
}

/** NodesByMeta: look up one pair through the meta index, then check the rest. */
function nodesByMeta(txn: ReadTxn, filter: MetaFilter): NodeRecord[] {
  const [firstKey] = Object.keys(filter).sort();
  assert.ok(firstKey !== undefined, 'a meta filter has at least one pair');
  const candidates = txn.get<NodeRecord>(TABLES.nodes, 'meta', `${firstKey}\x00${filter[firstKey] ?? ''}`);
  return [...candidates].filter((node) => satisfiesMeta(node.Meta, filter));
}

/** parseChecksByNodeMeta: keep checks whose node has every pair. */
function filterChecksByNodeMeta(txn: ReadTxn, checks: Iterable<CheckRecord>, filter: MetaFilter): CheckRecord[] {
  const result: CheckRecord[] = [];
  for (const check of checks) {
    const node = txn.first<NodeRecord>(TABLES.nodes, 'id', check.Node);
    assert.ok(node, `check ${check.CheckID} belongs to a stored node`);
    if (satisfiesMeta(node.Meta, filter)) result.push(check);
  }
  return result;
}

/** structs.Services built as Catalog.ListServices does: name -> distinct tags (sorted here). */
function tagsByName(services: Iterable<ServiceRecord>): Map<string, string[]> {
  const tags = new Map<string, Set<string>>();
  for (const service of services) {
    let set = tags.get(service.Service);
    if (!set) tags.set(service.Service, (set = new Set()));
    for (const tag of service.Tags) set.add(tag);
  }
  const names = [...tags.keys()].sort(compareStrings);
  return new Map(names.map((name) => [name, [...(tags.get(name) ?? [])].sort(compareStrings)]));
}

function nodeOf(txn: ReadTxn, service: ServiceRecord): NodeRecord {
  const node = txn.first<NodeRecord>(TABLES.nodes, 'id', service.Node);
  assert.ok(node, `service ${service.ID} belongs to a stored node`);
  return node;
}

/** serviceTagsFilter, inverted: every wanted tag is on the instance, case-insensitively. */
function hasAllTags(service: ServiceRecord, tags: readonly string[] | undefined): boolean {
  if (!tags || tags.length === 0) return true;
  const present = new Set(service.Tags.map((tag) => tag.toLowerCase()));
  return tags.every((tag) => present.has(tag.toLowerCase()));
}

/** structs.SatisfiesMetaFilters. */
function satisfiesMeta(meta: Readonly<Record<string, string>>, filter: MetaFilter): boolean {
  return Object.entries(filter).every(([key, value]) => Object.hasOwn(meta, key) && meta[key] === value);
}

function hasFilter(filter: MetaFilter | undefined): filter is MetaFilter {
  return filter !== undefined && Object.keys(filter).length > 0;
}

// ---------------------------------------------------------------------------------------------
// The index table's per-service and per-node entries

function serviceIndexKey(serviceName: string): string {
  return `service.${serviceName.toLowerCase()}`;
}

function nodeIndexKey(nodeName: string): string {
  return `node.${nodeName.toLowerCase()}`;
}

/**
 * Read without a watch, like tableIndex: every query here reads (and so watches) the data it
 * returns, so a bookkeeping entry moving must not wake it by itself.
 */
function readIndexEntry(txn: ReadTxn, key: string): IndexRecord | undefined {
  return txn.peek<IndexRecord>(TABLES.index, 'id', key);
}

function readIndexValue(txn: ReadTxn, key: string): number {
  return readIndexEntry(txn, key)?.Value ?? 0;
}

/** indexUpdateMaxTxn: an entry only ever moves up. */
function raiseIndexEntry(txn: WriteTxn, key: string, index: number): void {
  const entry = readIndexEntry(txn, key);
  if (entry === undefined || index > entry.Value) txn.insert<IndexRecord>(TABLES.index, { Key: key, Value: index });
}

function dropIndexEntry(txn: WriteTxn, key: string): void {
  const entry = readIndexEntry(txn, key);
  if (entry) txn.delete(TABLES.index, entry);
}

// ---------------------------------------------------------------------------------------------
// Small pure helpers

function equalFold(a: string, b: string): boolean {
  return a === b || a.toLowerCase() === b.toLowerCase();
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** ipaddr.IsAny: the unspecified addresses a service may not advertise. */
function isAnyAddress(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === '[::]';
}

function isValidCoordinate(coord: Coordinate): boolean {
  return coord.Vec.every(Number.isFinite) && Number.isFinite(coord.Error) && Number.isFinite(coord.Adjustment) && Number.isFinite(coord.Height);
}

/** go-uuid ParseUUID's refusals, in its words (the length is Go's, in bytes). */
function parseUuidProblem(id: string): string | undefined {
  const bytes = Buffer.from(id, 'utf8');
  if (bytes.length !== 36) return 'uuid string is wrong length';
  if (bytes[8] !== 0x2d || bytes[13] !== 0x2d || bytes[18] !== 0x2d || bytes[23] !== 0x2d) return 'uuid is improperly formatted';
  for (const [i, byte] of bytes.entries()) {
    if (i === 8 || i === 13 || i === 18 || i === 23) continue;
    const isHex = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
    if (!isHex) return `encoding/hex: invalid byte: ${goRuneVerbose(byte)}`;
  }
  return undefined;
}

/** Go's %#U of a byte taken as a rune: `U+0067 'g'`, without the quote when unprintable. */
function goRuneVerbose(byte: number): string {
  const code = `U+${byte.toString(16).toUpperCase().padStart(4, '0')}`;
  const isPrintable = (byte >= 0x20 && byte < 0x7f) || byte >= 0xa0;
  return isPrintable ? `${code} '${String.fromCharCode(byte)}'` : code;
}
