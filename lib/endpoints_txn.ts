// The transaction endpoint: Consul's Txn.Apply and Txn.Read server methods and PUT /v1/txn.
//
// A transaction is a list of operations applied atomically: every op runs, and if any fails
// none takes effect and the client gets 409 with one error per failing op. Ops are KV ops and
// catalog ops (Node, Service, Check), freely mixed: a KV set and a service registration commit
// together or not at all. A transaction with no write verb is served as a read (Txn.Read): no
// Raft, consistency modes honoured, no blocking, and only X-Consul-KnownLeader /
// X-Consul-LastContact headers. Writes go through the server's pre-check (lock-delay, empty
// keys, node names and IDs, service names and addresses) and then Raft as one `txn` command.
//
// What clients rely on (spec §3.6): `{"Results":[{"KV":DirEntry}|{"Node":Node}|{"Service":
// NodeService}|{"Check":HealthCheck}],"Errors":null}`, each record rendered exactly as the
// catalog and health endpoints render it; KV results carry Value null except get/get-tree;
// 409 `{"Results":null,"Errors":[{"OpIndex","What"}]}` with Consul's What texts (`node "n"
// doesn't exist`, `failed to set service "s" on node "n", index is stale`...); 413 for too many
// ops, a value over kv_max_value_size or a body over txn_max_req_len; 400 `Failed to parse
// body: ...` for a body that does not decode.
//
// Catalog ops are decoded as convertOps does: a node op's Datacenter defaults to the agent's; a
// service op keeps only the fields Consul copies (no TaggedAddresses, SocketPath or Connect, and
// of Proxy only the destination, local-service, mesh-gateway and transparent-proxy fields); a
// check op keeps its Definition's HTTP/TCP/GRPC settings and durations, not Type or UDP.
//
// On a follower a transaction with writes is forwarded to the leader (Txn.Apply over the server
// port, served there by txnRpcMethods); read-only ones are served locally.
//
// Not here: ACLs (no token is checked, nothing is filtered), namespaces, partitions and peering
// (accepted and ignored), Session and Intention ops (Consul's HTTP API does not take them
// either), and NodeService.Validate's mesh checks on service writes.
//
// Invariant: nothing reaches Raft unless every op decoded, has a known verb and passed the
// pre-checks.
//
// References: Consul agent/txn_endpoint.go (convertOps, Txn, maxTxnOps), agent/consul/
// txn_endpoint.go (Apply, Read, preCheck), agent/consul/state/txn.go, agent/structs/txn.go,
// api/txn.go (KVTxnOp, NodeTxnOp, ServiceTxnOp, CheckTxnOp).

import { isTxnWriteOp, txnPreCheck, txnRead, txnUnknownVerbErrors, type CatalogTxnVerb, type TxnCheckOp, type TxnNodeOp, type TxnOp, type TxnOpResult, type TxnOpsResponse, type TxnServiceOp } from './catalog.js';
import { isPlainObject } from './decode.js';
import { DurationError, formatDuration, parseDuration } from './duration.js';
import { renderCheck, renderNode, renderNodeService } from './endpoints_catalog.js';
import { applyCommand, decodeJsonBody, DECODE_FAILED_PREFIX, forwardToLeader, type EndpointDeps } from './endpoints.js';
import { checkRpcDatacenter, rpcFields } from './endpoints_rpc.js';
import { parseTxnOps } from './fsm.js';
import type { RpcMethod } from './rpc.js';
import { dirEntryJson } from './endpoints_kv.js';
import { HttpError, type HttpRequest, type HttpResponse, type HttpRoute } from './http.js';
import { goQuote, type KvOp, type TxnKvOp } from './kvs.js';
import { checkDatacenter, parseQueryOptions, queryMetaHeaders, readQuery, type QueryOptions, type QueryReply, UINT64_MAX } from './query.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** One decoded op of a /v1/txn body (structs.TxnOp as convertOps builds it). */
export type TxnInputOp = TxnOp;

// ---------------------------------------------------------------------------------------------
// Limits

/** Most operations in one transaction (Consul 1.21's maxTxnOps). */
export const TXN_OPS_MAX = 128;
/** Where Consul's 413 text for an oversized txn body points. */
const TXN_MAX_REQ_LEN_DOC = 'https://www.consul.io/docs/agent/config/config-files#txn_max_req_len';
/** How deep a catalog op's JSON may nest before it is refused (the deepest Consul field is 4 levels). */
const CATALOG_OP_DEPTH_MAX = 8;

// ---------------------------------------------------------------------------------------------
// The RPC-shaped layer

/** Consul's Txn server methods. */
export const Txn = {
  /**
   * Txn.Apply: the pre-check (which also normalizes service and check IDs), then one Raft
   * command. Errors (pre-check, unknown verbs or FSM) come back in the response with Results
   * null; nothing was applied then.
   */
  async Apply(deps: EndpointDeps, args: { readonly Ops: readonly TxnOp[] }): Promise<TxnOpsResponse> {
    const { ops, errors } = txnPreCheck(args.Ops, deps.query.state.lockDelay);
    if (errors.length > 0) return { Results: null, Errors: errors };
    // Consul's state store answers an unknown verb per op; we answer before Raft so that the
    // log only ever carries verbs every server knows.
    const unknown = txnUnknownVerbErrors(ops);
    if (unknown.length > 0) return { Results: null, Errors: unknown };
    return (await applyCommand(deps, { type: 'txn', ops })) as TxnOpsResponse;
  },
  /** Txn.Read: the pre-check, then read-only ops on a snapshot, under the request's consistency mode. */
  Read(deps: EndpointDeps, args: { readonly Ops: readonly TxnOp[] }, options: QueryOptions): Promise<QueryReply<TxnOpsResponse>> {
    return readQuery(deps.query, options, (txn) => {
      const { ops, errors } = txnPreCheck(args.Ops, deps.query.state.lockDelay);
      if (errors.length > 0) return { index: 1, value: { Results: null, Errors: errors } };
      return { index: 1, value: txnRead(txn, ops) };
    });
  },
} as const;

/**
 * The leader's Txn.Apply for forwarded writes (structs.TxnRequest {Datacenter, Ops}); the ops are
 * read with the txn command's shapes. Txn.Apply refuses on a follower, naming the leader.
 */
export function txnRpcMethods(deps: EndpointDeps): Map<string, RpcMethod> {
  return new Map<string, RpcMethod>([
    ['Txn.Apply', (args) => {
      const request = rpcFields(args, 'TxnRequest');
      checkRpcDatacenter(request, deps.config.datacenter);
      return Txn.Apply(deps, { Ops: parseTxnOps(request['Ops'] ?? []) });
    }],
  ]);
}

// ---------------------------------------------------------------------------------------------
// HTTP routes

/**
 * PUT /v1/txn. The body limit is max(txn_max_req_len, kv_max_value_size) (Consul keeps the
 * larger for compatibility), checked before buffering.
 */
export function txnRoutes(deps: EndpointDeps): HttpRoute[] {
  const { limits } = deps.config;
  return [
    {
      path: '/v1/txn',
      methods: ['PUT'],
      bodyBytesMax: txnBodyBytesMax(deps),
      tooLargeText: txnTooLargeText,
      handler: (request) => txnHandler(deps, request, limits.kvMaxValueSize),
    },
  ];
}

/** Consul's 413 text for a txn body over the limit. */
export function txnTooLargeText(bytes: number, max: number): string {
  return `Request body(${bytes} bytes) too large, max size: ${max} bytes. See ${TXN_MAX_REQ_LEN_DOC}.`;
}

/**
 * Decodes a /v1/txn body as Go's encoding/json would decode api.TxnOps and convertOps would
 * convert it: field names match case-insensitively, unknown fields are ignored, an op with none
 * of KV/Node/Service/Check is dropped, a node op without a Datacenter gets `datacenter`. Throws
 * HttpError 400 `Failed to parse body: ...` or 413.
 */
export function decodeTxnOps(request: HttpRequest, kvMaxValueSize: number, datacenter: string): TxnOp[] {
  const raw = parseBody(request);
  if (raw === null) return [];
  if (!Array.isArray(raw)) throw parseFailed(`json: cannot unmarshal ${jsonKind(raw)} into Go value of type api.TxnOps`);
  // Go decodes the whole list before counting it.
  const ops: TxnOp[] = [];
  const decoded = raw.map((item: unknown) => decodeOp(item, datacenter));
  if (raw.length > TXN_OPS_MAX) throw new HttpError(413, `Transaction contains too many operations (${raw.length} > ${TXN_OPS_MAX})`);
  for (const op of decoded) {
    if (op === undefined) continue;
    if ('KV' in op) {
      const size = op.KV.DirEnt.Value?.length ?? 0;
      if (size > kvMaxValueSize) throw new HttpError(413, `Value for key ${goQuote(op.KV.DirEnt.Key)} is too large (${size} > ${kvMaxValueSize} bytes)`);
    }
    ops.push(op);
  }
  return ops;
}

/** A txn result as JSON: KV as /v1/kv renders it, catalog records as /v1/catalog and /v1/health do. */
export function txnResultJson(result: TxnOpResult): unknown {
  if ('KV' in result) return { KV: dirEntryJson(result.KV) };
  if ('Node' in result) return { Node: renderNode(result.Node) };
  if ('Service' in result) return { Service: renderNodeService(result.Service) };
  return { Check: renderCheck(result.Check) };
}

// ---------------------------------------------------------------------------------------------
// Private helpers: HTTP

async function txnHandler(deps: EndpointDeps, request: HttpRequest, kvMaxValueSize: number): Promise<HttpResponse> {
  const max = txnBodyBytesMax(deps);
  if (request.body.length > max) throw new HttpError(413, txnTooLargeText(request.body.length, max));
  const ops = decodeTxnOps(request, kvMaxValueSize, deps.config.datacenter);
  const writes = ops.filter(isTxnWriteOp).length;
  let response: TxnOpsResponse;
  let headers: Record<string, string> = {};
  checkDatacenter(request, deps.config.datacenter);
  if (writes === 0) {
    const options = parseQueryOptions(deps.query, request);
    const reply = await Txn.Read(deps, { Ops: ops }, options);
    // Txn.Read does not block, so Consul sends only these two of the query headers.
    const meta = queryMetaHeaders(reply.meta);
    headers = pick(meta, ['X-Consul-KnownLeader', 'X-Consul-LastContact']);
    response = reply.value;
  } else {
    // On a follower the leader runs it (Consul's ForwardRPC of Txn.Apply).
    const forwarded = await forwardToLeader(deps, 'Txn.Apply', { Datacenter: deps.config.datacenter, Ops: ops });
    response = forwarded === undefined ? await Txn.Apply(deps, { Ops: ops }) : (forwarded.reply as unknown as TxnOpsResponse);
  }
  if (response.Errors !== null && response.Errors.length > 0) return { status: 409, json: txnResponseJson(response), headers };
  return { json: txnResponseJson(response), headers };
}

function txnBodyBytesMax(deps: EndpointDeps): number {
  const { limits } = deps.config;
  return Math.max(limits.txnMaxReqLen, limits.kvMaxValueSize);
}

function txnResponseJson(response: TxnOpsResponse): unknown {
  return { Results: response.Results === null ? null : response.Results.map(txnResultJson), Errors: response.Errors };
}

function pick(headers: Readonly<Record<string, string>>, names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = headers[name];
    if (value !== undefined) picked[name] = value;
  }
  return picked;
}

// ---------------------------------------------------------------------------------------------
// Private helpers: decoding

/** The body as JSON, decoded as Go's json.Decoder does (uint64s beyond 2^53 stay exact bigints). */
function parseBody(request: HttpRequest): unknown {
  let value: unknown;
  try {
    value = decodeJsonBody(request);
  } catch (error) {
    // The txn endpoint words the same decoder errors differently from the others.
    if (error instanceof HttpError && error.message.startsWith(DECODE_FAILED_PREFIX)) throw parseFailed(error.message.slice(DECODE_FAILED_PREFIX.length));
    throw error;
  }
  // Go's decoder reports an empty body as EOF.
  if (value === undefined) throw parseFailed('EOF');
  return value;
}

/** One element of the body; undefined for an op that names no operation (Go skips those). */
function decodeOp(item: unknown, datacenter: string): TxnOp | undefined {
  if (item === null) return undefined;
  if (!isPlainObject(item)) throw parseFailed(`json: cannot unmarshal ${jsonKind(item)} into Go value of type api.TxnOp`);
  const fields = lowerCaseFields(item);
  const present = (name: string): unknown => {
    const value = fields.get(name);
    return value === null ? undefined : value;
  };
  // Go decodes every field; convertOps then takes the first of KV, Node, Service, Check.
  const kv = present('kv');
  const node = present('node');
  const service = present('service');
  const check = present('check');
  const decodedKv = kv === undefined ? undefined : decodeKvOp(kv);
  const decodedNode = node === undefined ? undefined : decodeNodeOp(node, datacenter);
  const decodedService = service === undefined ? undefined : decodeServiceOp(service);
  const decodedCheck = check === undefined ? undefined : decodeCheckOp(check);
  if (decodedKv !== undefined) return { KV: decodedKv };
  if (decodedNode !== undefined) return { Node: decodedNode };
  if (decodedService !== undefined) return { Service: decodedService };
  if (decodedCheck !== undefined) return { Check: decodedCheck };
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Private helpers: decoding catalog ops (api.NodeTxnOp, ServiceTxnOp, CheckTxnOp)

/** A Go field type as encoding/json names it in errors, or a nested struct. */
type GoField = 'string' | 'bool' | 'int' | 'uint64' | '[]string' | 'map[string]string' | 'map[string][]string' | 'duration' | 'durationAny' | GoStruct | GoNamedString;

/** A named Go string type (api.NodeOp): decoded as a string, named in errors. */
interface GoNamedString {
  readonly namedString: string;
}

interface GoStruct {
  /** The type as Go prints it (`api.Node`); its last part names the struct in errors. */
  readonly goType: string;
  /** The struct name in type errors when it differs (a custom UnmarshalJSON's anonymous aux struct is ""). */
  readonly errorName?: string;
  readonly fields: Readonly<Record<string, GoField>>;
}

const GO_NODE: GoStruct = {
  goType: 'api.Node',
  fields: {
    ID: 'string', Node: 'string', Address: 'string', Datacenter: 'string', TaggedAddresses: 'map[string]string', Meta: 'map[string]string',
    CreateIndex: 'uint64', ModifyIndex: 'uint64', Partition: 'string', PeerName: 'string',
  },
};
const GO_NODE_OP: GoStruct = { goType: 'api.NodeTxnOp', fields: { Verb: { namedString: 'api.NodeOp' }, Node: GO_NODE } };
const GO_PROXY: GoStruct = {
  goType: 'api.AgentServiceConnectProxyConfig',
  fields: {
    DestinationServiceName: 'string', DestinationServiceID: 'string', LocalServiceAddress: 'string', LocalServicePort: 'int',
    LocalServiceSocketPath: 'string', MeshGateway: { goType: 'api.MeshGatewayConfig', fields: { Mode: 'string' } },
    TransparentProxy: { goType: 'api.TransparentProxyConfig', fields: { OutboundListenerPort: 'int', DialedDirectly: 'bool' } },
  },
};
const GO_SERVICE: GoStruct = {
  goType: 'api.AgentService',
  fields: {
    Kind: { namedString: 'api.ServiceKind' }, ID: 'string', Service: 'string', Tags: '[]string', Meta: 'map[string]string', Port: 'int', Address: 'string',
    SocketPath: 'string', Weights: { goType: 'api.AgentWeights', fields: { Passing: 'int', Warning: 'int' } }, EnableTagOverride: 'bool',
    CreateIndex: 'uint64', ModifyIndex: 'uint64', ContentHash: 'string', Proxy: GO_PROXY, PeerName: 'string', Namespace: 'string',
    Partition: 'string', Datacenter: 'string',
  },
};
const GO_SERVICE_OP: GoStruct = { goType: 'api.ServiceTxnOp', fields: { Verb: { namedString: 'api.ServiceOp' }, Node: 'string', Service: GO_SERVICE } };
/** api.HealthCheckDefinition decodes through a custom UnmarshalJSON, so its errors name no struct. */
const GO_DEFINITION: GoStruct = {
  goType: 'api.HealthCheckDefinition',
  errorName: '',
  fields: {
    HTTP: 'string', Header: 'map[string][]string', Method: 'string', Body: 'string', TLSServerName: 'string', TLSSkipVerify: 'bool',
    TCP: 'string', TCPUseTLS: 'bool', UDP: 'string', GRPC: 'string', GRPCUseTLS: 'bool', OSService: 'string', Interval: 'duration',
    Timeout: 'duration', DeregisterCriticalServiceAfter: 'duration', IntervalDuration: 'durationAny', TimeoutDuration: 'durationAny',
    DeregisterCriticalServiceAfterDuration: 'durationAny',
  },
};
const GO_CHECK: GoStruct = {
  goType: 'api.HealthCheck',
  fields: {
    Node: 'string', CheckID: 'string', Name: 'string', Status: 'string', Notes: 'string', Output: 'string', ServiceID: 'string',
    ServiceName: 'string', ServiceTags: '[]string', Type: 'string', Namespace: 'string', Partition: 'string', ExposedPort: 'int',
    PeerName: 'string', Definition: GO_DEFINITION, CreateIndex: 'uint64', ModifyIndex: 'uint64',
  },
};
const GO_CHECK_OP: GoStruct = { goType: 'api.CheckTxnOp', fields: { Verb: { namedString: 'api.CheckOp' }, Check: GO_CHECK } };
/** Definition fields convertOps copies into the stored check (durations are handled apart). */
const KEPT_DEFINITION_FIELDS = ['HTTP', 'TLSServerName', 'TLSSkipVerify', 'Header', 'Method', 'Body', 'TCP', 'GRPC'] as const;

/** convertOps for a node op: the node's fields, the agent's datacenter by default. */
function decodeNodeOp(raw: unknown, datacenter: string): TxnNodeOp {
  const op = readGoStruct(raw, GO_NODE_OP, 'Node', 'TxnOp');
  const node = (op['Node'] ?? {}) as Record<string, unknown>;
  const text = (name: string): string => (node[name] as string | undefined) ?? '';
  return {
    Verb: ((op['Verb'] as string | undefined) ?? '') as CatalogTxnVerb,
    Node: {
      ID: text('ID'),
      Node: text('Node'),
      Address: text('Address'),
      Datacenter: text('Datacenter') || datacenter,
      TaggedAddresses: (node['TaggedAddresses'] as Record<string, string> | undefined) ?? {},
      Meta: (node['Meta'] as Record<string, string> | undefined) ?? {},
      ModifyIndex: safeIndex(node['ModifyIndex']),
    },
  };
}

/** convertOps for a service op: only the fields Consul copies into the NodeService. */
function decodeServiceOp(raw: unknown): TxnServiceOp {
  const op = readGoStruct(raw, GO_SERVICE_OP, 'Service', 'TxnOp');
  const service = (op['Service'] ?? {}) as Record<string, unknown>;
  const weights = (service['Weights'] ?? {}) as Record<string, number | undefined>;
  const result: Record<string, unknown> = {
    ID: service['ID'] ?? '',
    Service: service['Service'] ?? '',
    Kind: service['Kind'] ?? '',
    Tags: service['Tags'] ?? [],
    Address: service['Address'] ?? '',
    Meta: service['Meta'] ?? {},
    Port: service['Port'] ?? 0,
    // A missing Weights is the zero value here, which the store replaces by {1, 1}.
    Weights: { Passing: weights['Passing'] ?? 0, Warning: weights['Warning'] ?? 0 },
    EnableTagOverride: service['EnableTagOverride'] ?? false,
    ModifyIndex: safeIndex(service['ModifyIndex']),
  };
  const proxy = proxyConfig(service['Proxy'] as Record<string, unknown> | undefined);
  if (proxy !== undefined) result['Proxy'] = proxy;
  return { Verb: ((op['Verb'] as string | undefined) ?? '') as CatalogTxnVerb, Node: (op['Node'] as string | undefined) ?? '', Service: result as TxnServiceOp['Service'] };
}

/** convertOps for a check op: the check's fields and its Definition's kept fields and durations. */
function decodeCheckOp(raw: unknown): TxnCheckOp {
  const op = readGoStruct(raw, GO_CHECK_OP, 'Check', 'TxnOp');
  const check = (op['Check'] ?? {}) as Record<string, unknown>;
  const result: Record<string, unknown> = {};
  for (const name of ['Node', 'CheckID', 'Name', 'Status', 'Notes', 'Output', 'ServiceID', 'ServiceName', 'ServiceTags', 'ExposedPort']) {
    if (check[name] !== undefined) result[name] = check[name];
  }
  const definition = (check['Definition'] ?? {}) as Record<string, unknown>;
  const kept: Record<string, unknown> = {};
  for (const name of KEPT_DEFINITION_FIELDS) if (definition[name] !== undefined) kept[name] = definition[name];
  // The old *Duration spellings win when present (Consul issue 5477's compatibility path).
  for (const name of ['Interval', 'Timeout', 'DeregisterCriticalServiceAfter']) {
    const nanos = (definition[`${name}Duration`] ?? definition[name]) as number | undefined;
    if (nanos !== undefined && nanos !== 0) kept[name] = formatDuration(nanos);
  }
  result['Definition'] = kept;
  result['ModifyIndex'] = safeIndex(check['ModifyIndex']);
  return { Verb: ((op['Verb'] as string | undefined) ?? '') as CatalogTxnVerb, Check: result as TxnCheckOp['Check'] };
}

/** The proxy fields convertOps copies, or undefined when none is set (the zero config). */
function proxyConfig(raw: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (raw === undefined) return undefined;
  const proxy: Record<string, unknown> = {};
  for (const name of ['DestinationServiceName', 'DestinationServiceID', 'LocalServiceAddress', 'LocalServicePort', 'LocalServiceSocketPath']) {
    if (raw[name]) proxy[name] = raw[name];
  }
  const mode = (raw['MeshGateway'] as Record<string, unknown> | undefined)?.['Mode'];
  if (mode) proxy['MeshGateway'] = { Mode: mode };
  const transparent = raw['TransparentProxy'] as Record<string, unknown> | undefined;
  if (transparent?.['DialedDirectly'] || transparent?.['OutboundListenerPort']) {
    proxy['TransparentProxy'] = { OutboundListenerPort: transparent['OutboundListenerPort'] ?? 0, DialedDirectly: transparent['DialedDirectly'] ?? false };
  }
  return Object.keys(proxy).length > 0 ? proxy : undefined;
}

/** A uint64 CAS index as a number; beyond 2^53 it cannot match any stored index anyway. */
function safeIndex(value: unknown): number {
  const index = typeof value === 'bigint' ? value : 0n;
  return index > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(index);
}

/**
 * Reads a JSON object into a Go struct's fields: names match case-insensitively (the last
 * spelling wins), unknown fields and nulls are skipped, a wrong type is Go's UnmarshalTypeError
 * naming the innermost struct and the field path from the op. Returns canonical name -> value.
 */
function readGoStruct(raw: unknown, spec: GoStruct, path: string, owner: string, depth = 0): Record<string, unknown> {
  if (!isPlainObject(raw)) throw typeError(jsonKind(raw), `${owner}.${path}`, spec.goType);
  if (depth > CATALOG_OP_DEPTH_MAX) throw parseFailed('exceeded max depth');
  const byLowerName = new Map(Object.keys(spec.fields).map((name) => [name.toLowerCase(), name]));
  const structName = spec.errorName ?? spec.goType.replace(/^[a-z]+\./, '');
  // A custom UnmarshalJSON decodes its own bytes: the path starts again at its fields.
  const basePath = spec.errorName === undefined ? path : '';
  const result: Record<string, unknown> = {};
  for (const [key, value] of lowerCaseFields(raw)) {
    const name = byLowerName.get(key);
    if (name === undefined || value === null) continue;
    const field = spec.fields[name];
    if (field === undefined) continue;
    const fieldPath = basePath === '' ? name : `${basePath}.${name}`;
    result[name] = readGoField(value, field, fieldPath, structName, depth);
  }
  return result;
}

function readGoField(value: unknown, field: GoField, path: string, owner: string, depth: number): unknown {
  const wrong = (goType: string): HttpError => typeError(numberAwareKind(value, goType), `${owner}.${path}`, goType);
  if (typeof field === 'object' && 'namedString' in field) {
    if (typeof value !== 'string') throw wrong(field.namedString);
    return value;
  }
  if (typeof field === 'object') return readGoStruct(value, field, path, owner, depth + 1);
  switch (field) {
    case 'string':
      if (typeof value !== 'string') throw wrong('string');
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw wrong('bool');
      return value;
    case 'int':
      if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
      throw wrong('int');
    case 'uint64':
      if (typeof value === 'bigint' && value >= 0n && value <= UINT64_MAX) return value;
      if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
      throw wrong('uint64');
    case '[]string':
      if (!Array.isArray(value)) throw wrong('[]string');
      return value.map((item) => {
        if (item !== null && typeof item !== 'string') throw typeError(jsonKind(item), `${owner}.${path}`, 'string');
        return item ?? '';
      });
    case 'map[string]string':
      if (!isPlainObject(value)) throw wrong('map[string]string');
      return Object.fromEntries(Object.entries(value).map(([key, item]) => {
        if (item !== null && typeof item !== 'string') throw typeError(jsonKind(item), `${owner}.${path}`, 'string');
        return [key, item ?? ''];
      }));
    case 'map[string][]string':
      if (!isPlainObject(value)) throw wrong('map[string][]string');
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, readGoField(item ?? [], '[]string', path, owner, depth)]));
    case 'duration':
      return readableDuration(value);
    case 'durationAny':
      return anyDuration(value);
    default: {
      const exhaustive: never = field;
      return exhaustive;
    }
  }
}

/** api.ReadableDuration.UnmarshalJSON: a quoted Go duration, or a number of nanoseconds. */
function readableDuration(value: unknown): number {
  if (typeof value === 'string') return goDuration(value);
  if (typeof value === 'number') return Math.trunc(value);
  if (typeof value === 'bigint') return Number(value);
  throw parseFailed(`strconv.ParseFloat: parsing ${goQuote(JSON.stringify(value))}: invalid syntax`);
}

/** The interface{}-typed *Duration fields: a string is parsed, a number taken, anything else ignored. */
function anyDuration(value: unknown): number | undefined {
  if (typeof value === 'string') return goDuration(value);
  if (typeof value === 'number') return Math.trunc(value);
  if (typeof value === 'bigint') return Number(value);
  return undefined;
}

function goDuration(text: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    // A custom UnmarshalJSON's error reaches the client unwrapped.
    if (error instanceof DurationError) throw parseFailed(error.message);
    throw error;
  }
}

/** The kind encoding/json reports: a number that does not fit a numeric field is "number -1", "number 1.5". */
function numberAwareKind(value: unknown, goType: string): string {
  const isNumeric = goType === 'int' || goType === 'uint64';
  if (isNumeric && (typeof value === 'number' || typeof value === 'bigint')) return `number ${String(value)}`;
  return jsonKind(value);
}

function decodeKvOp(raw: unknown): TxnKvOp {
  if (!isPlainObject(raw)) throw typeError(jsonKind(raw), 'TxnOp.KV', 'api.TxnKVOp');
  const fields = lowerCaseFields(raw);
  const text = (name: string, goType = 'string'): string => {
    const value = fields.get(name.toLowerCase());
    if (value === undefined || value === null) return '';
    if (typeof value !== 'string') throw typeError(jsonKind(value), `TxnKVOp.KV.${name}`, goType);
    return value;
  };
  const verb = text('Verb', 'api.KVOp');
  const key = text('Key');
  const session = text('Session');
  text('Namespace');
  text('Partition');
  const flags = uint64Field(fields.get('flags'), 'Flags');
  const index = uint64Field(fields.get('index'), 'Index');
  return {
    Verb: verb as KvOp,
    DirEnt: {
      Key: key,
      Value: base64Field(fields.get('value')),
      Flags: flags,
      Session: session,
      ModifyIndex: index > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(index),
    },
  };
}

/** A uint64 JSON number (the decoder hands integers beyond 2^53 over as exact bigints). */
function uint64Field(value: unknown, name: string): bigint {
  if (value === undefined || value === null) return 0n;
  if (typeof value === 'bigint' && value >= 0n && value <= UINT64_MAX) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  const kind = typeof value === 'number' || typeof value === 'bigint' ? `number ${String(value)}` : jsonKind(value);
  throw typeError(kind, `TxnKVOp.KV.${name}`, 'uint64');
}

/** []byte from JSON: standard padded base64, as encoding/json decodes it. */
function base64Field(value: unknown): Uint8Array | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw typeError(jsonKind(value), 'TxnKVOp.KV.Value', '[]uint8');
  const bad = firstBadBase64Byte(value);
  if (bad !== undefined) throw parseFailed(`illegal base64 data at input byte ${bad}`);
  return new Uint8Array(Buffer.from(value, 'base64'));
}

/** The offset Go's base64.StdEncoding reports for invalid input, or undefined if valid. */
function firstBadBase64Byte(text: string): number | undefined {
  // Go's JSON decoder drops \r and \n before decoding.
  const clean = text.replace(/[\r\n]/g, '');
  const body = /^[A-Za-z0-9+/]*/.exec(clean)?.[0] ?? '';
  const rest = clean.slice(body.length);
  if (rest === '' && body.length % 4 === 0) return undefined;
  const padding = body.length % 4 === 2 ? '==' : body.length % 4 === 3 ? '=' : undefined;
  if (padding !== undefined && rest === padding) return undefined;
  // Input ending inside a quantum is reported at the quantum's start; a bad byte at itself.
  if (rest === '') return body.length - (body.length % 4);
  return body.length;
}

function lowerCaseFields(object: Record<string, unknown>): Map<string, unknown> {
  // encoding/json matches field names case-insensitively; the last spelling wins.
  return new Map(Object.entries(object).map(([key, value]) => [key.toLowerCase(), value]));
}

function jsonKind(value: unknown): string {
  if (typeof value === 'bigint') return 'number';
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'object';
  if (typeof value === 'boolean') return 'bool';
  return typeof value;
}

function typeError(kind: string, field: string, goType: string): HttpError {
  return parseFailed(`json: cannot unmarshal ${kind} into Go struct field ${field} of type ${goType}`);
}

function parseFailed(message: string): HttpError {
  return new HttpError(400, `Failed to parse body: ${message}`);
}
