// Service and check definitions: what an operator declares in a config file (`service`,
// `services`, `check`, `checks`) or sends to /v1/agent/service/register and
// /v1/agent/check/register.
//
// Both paths share this reader so a definition means the same thing wherever it comes from:
// keys in snake_case, CamelCase or any case (`ScriptArgs` and `args` alike), durations as Go
// strings or nanosecond numbers, and Consul's validation messages
// (agent/structs/check_type.go Validate, agent/config/builder.go serviceVal).
//
// Not here: default IDs and names for service checks (`service:<id>`), initial status, and
// running checks; those belong to the local agent state that registers the definition.

import { type ObjectReader } from './decode.js';

export type CheckStatus = 'passing' | 'warning' | 'critical';

export interface ServiceWeights {
  readonly passing: number;
  readonly warning: number;
}

export interface ServiceAddress {
  readonly address: string;
  readonly port: number;
}

/** A check as declared; durations in nanoseconds, 0 when unset. */
export interface CheckDefinition {
  readonly id: string;
  readonly name: string;
  readonly notes: string;
  readonly serviceId: string;
  /** The declared initial status, or "" for Consul's default (critical). */
  readonly status: CheckStatus | '';
  readonly args: readonly string[];
  readonly http: string;
  readonly method: string;
  readonly header: Readonly<Record<string, readonly string[]>>;
  readonly body: string;
  readonly disableRedirects: boolean;
  readonly tcp: string;
  readonly tcpUseTls: boolean;
  readonly udp: string;
  readonly grpc: string;
  readonly grpcUseTls: boolean;
  readonly h2ping: string;
  readonly h2pingUseTls: boolean;
  readonly osService: string;
  readonly dockerContainerId: string;
  readonly shell: string;
  readonly aliasNode: string;
  readonly aliasService: string;
  readonly tlsServerName: string;
  readonly tlsSkipVerify: boolean;
  readonly ttlNanos: number;
  readonly intervalNanos: number;
  readonly timeoutNanos: number;
  readonly deregisterCriticalServiceAfterNanos: number;
  readonly successBeforePassing: number;
  readonly failuresBeforeWarning: number;
  readonly failuresBeforeCritical: number;
  readonly outputMaxSize: number;
  readonly token: string;
}

/** A service as declared. */
export interface ServiceDefinition {
  readonly id: string;
  readonly name: string;
  readonly kind: string;
  readonly tags: readonly string[];
  readonly address: string;
  readonly taggedAddresses: Readonly<Record<string, ServiceAddress>>;
  readonly meta: Readonly<Record<string, string>>;
  readonly port: number;
  readonly socketPath: string;
  readonly enableTagOverride: boolean;
  readonly weights: ServiceWeights;
  readonly token: string;
  readonly checks: readonly CheckDefinition[];
  /** Mesh settings, kept as declared until the mesh features exist. */
  readonly connect: unknown;
  readonly proxy: unknown;
}

/** Consul's limits on node and service metadata (agent/structs/structs.go). */
export const META_PAIRS_MAX = 64;
export const META_KEY_LENGTH_MAX = 128;
export const META_VALUE_LENGTH_MAX = 512;
export const SERVICE_WEIGHT_MAX = 65535;
const META_KEY_PATTERN = /^[a-zA-Z0-9_-]+$/;
const RESERVED_META_PREFIX = 'consul-';

const CHECK_STATUSES: readonly string[] = ['passing', 'warning', 'critical'];

/** Reads a service definition; type and unknown-key problems go to the reader's list. */
export function readServiceDefinition(reader: ObjectReader): ServiceDefinition {
  const checks: CheckDefinition[] = [];
  const single = reader.object('check');
  if (single) checks.push(readCheckDefinition(single));
  for (const check of reader.objectList('checks') ?? []) checks.push(readCheckDefinition(check));
  const weightsReader = reader.object('weights');
  const weights = { passing: weightsReader?.int('passing') ?? 1, warning: weightsReader?.int('warning') ?? 1 };
  weightsReader?.finish();
  const definition: ServiceDefinition = {
    id: reader.string('id') ?? '',
    name: reader.string('name') ?? '',
    kind: reader.string('kind') ?? '',
    tags: reader.stringList('tags') ?? [],
    address: reader.string('address') ?? '',
    taggedAddresses: readTaggedAddresses(reader),
    meta: reader.stringMap('meta') ?? {},
    port: reader.int('port') ?? 0,
    socketPath: reader.string('socket_path') ?? '',
    enableTagOverride: reader.bool('enable_tag_override') ?? false,
    weights,
    token: reader.string('token') ?? '',
    checks,
    connect: reader.raw('connect'),
    proxy: reader.raw('proxy'),
  };
  reader.finish();
  return definition;
}

/** Reads a check definition; type and unknown-key problems go to the reader's list. */
export function readCheckDefinition(reader: ObjectReader): CheckDefinition {
  const status = reader.string('status') ?? '';
  if (status !== '' && !CHECK_STATUSES.includes(status)) reader.problems.push(`${reader.path}: Bad check status ${JSON.stringify(status)}`);
  const definition: CheckDefinition = {
    id: reader.string('id', 'check_id') ?? '',
    name: reader.string('name') ?? '',
    notes: reader.string('notes') ?? '',
    serviceId: reader.string('service_id') ?? '',
    status: CHECK_STATUSES.includes(status) ? (status as CheckStatus) : '',
    args: reader.stringList('args', 'script_args') ?? [],
    http: reader.string('http') ?? '',
    method: reader.string('method') ?? '',
    header: readHeader(reader),
    body: reader.string('body') ?? '',
    disableRedirects: reader.bool('disable_redirects') ?? false,
    tcp: reader.string('tcp') ?? '',
    tcpUseTls: reader.bool('tcp_use_tls') ?? false,
    udp: reader.string('udp') ?? '',
    grpc: reader.string('grpc') ?? '',
    grpcUseTls: reader.bool('grpc_use_tls') ?? false,
    h2ping: reader.string('h2ping') ?? '',
    h2pingUseTls: reader.bool('h2ping_use_tls') ?? true,
    osService: reader.string('os_service') ?? '',
    dockerContainerId: reader.string('docker_container_id') ?? '',
    shell: reader.string('shell') ?? '',
    aliasNode: reader.string('alias_node') ?? '',
    aliasService: reader.string('alias_service') ?? '',
    tlsServerName: reader.string('tls_server_name') ?? '',
    tlsSkipVerify: reader.bool('tls_skip_verify') ?? false,
    ttlNanos: reader.durationNanos('ttl') ?? 0,
    intervalNanos: reader.durationNanos('interval') ?? 0,
    timeoutNanos: reader.durationNanos('timeout') ?? 0,
    deregisterCriticalServiceAfterNanos: reader.durationNanos('deregister_critical_service_after') ?? 0,
    successBeforePassing: reader.int('success_before_passing') ?? 0,
    failuresBeforeWarning: reader.int('failures_before_warning') ?? 0,
    failuresBeforeCritical: reader.int('failures_before_critical') ?? 0,
    outputMaxSize: reader.int('output_max_size') ?? 0,
    token: reader.string('token') ?? '',
  };
  reader.finish();
  return definition;
}

/**
 * Consul's check validation (CheckType.Validate): which kind of check this is decides which
 * timing fields it needs. Returns the problems, empty when valid.
 */
export function validateCheck(check: CheckDefinition): string[] {
  const problems: string[] = [];
  const isIntervalCheck =
    check.args.length > 0 || check.http !== '' || check.tcp !== '' || check.udp !== '' || check.grpc !== '' || check.h2ping !== '' || check.osService !== '';
  const isAlias = check.aliasNode !== '' || check.aliasService !== '';
  if (check.intervalNanos > 0 && check.ttlNanos > 0) problems.push('Interval and TTL cannot both be specified');
  if (isIntervalCheck && check.intervalNanos <= 0) {
    problems.push('Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks');
  }
  if (isAlias) {
    if (check.ttlNanos > 0) problems.push('TTL must be not be set for Alias checks');
    if (check.intervalNanos > 0) problems.push('Interval cannot be set for Alias checks');
  }
  if (!isIntervalCheck && !isAlias && check.ttlNanos <= 0) problems.push('TTL must be > 0 for TTL checks');
  if (check.outputMaxSize < 0) problems.push('MaxOutputMaxSize must be positive');
  if (check.failuresBeforeWarning > check.failuresBeforeCritical && check.failuresBeforeCritical > 0) {
    problems.push("FailuresBeforeWarning can't be higher than FailuresBeforeCritical");
  }
  for (const [field, value] of [
    ['SuccessBeforePassing', check.successBeforePassing],
    ['FailuresBeforeWarning', check.failuresBeforeWarning],
    ['FailuresBeforeCritical', check.failuresBeforeCritical],
  ] as const) {
    if (value < 0) problems.push(`${field} must be greater than or equal to zero`);
  }
  return problems;
}

/**
 * Consul's service validation as the config builder applies it: name, weights, metadata,
 * socket path, and every embedded check. Messages name the service the way Consul does.
 */
export function validateService(service: ServiceDefinition): string[] {
  const label = service.id || service.name;
  const problems: string[] = [];
  if (service.name === '') problems.push(`Failed to register service ${JSON.stringify(label)}: Service name missing`);
  const weightProblem = validateWeights(service.weights);
  if (weightProblem) problems.push(`Invalid weight definition for service ${label}: ${weightProblem}`);
  const metaProblem = validateMeta(service.meta);
  if (metaProblem) problems.push(`invalid meta for service ${label}: ${metaProblem}`);
  if (service.socketPath !== '' && (service.address !== '' || service.port !== 0)) {
    problems.push(`service ${label} cannot have both socket path ${service.socketPath} and address/port`);
  }
  if (service.port < 0 || service.port > 65535) problems.push(`service ${JSON.stringify(label)}: invalid port ${service.port}`);
  if (service.address === '0.0.0.0' || service.address === '::' || service.address === '[::]') {
    problems.push(`service ${JSON.stringify(label)}: Invalid service address`);
  }
  for (const check of service.checks) {
    for (const problem of validateCheck(check)) {
      problems.push(`service ${JSON.stringify(label)}: check ${JSON.stringify(check.id || check.name)}: ${problem}`);
    }
  }
  return problems;
}

/** Weights as Consul bounds them; returns the problem or undefined. */
export function validateWeights(weights: ServiceWeights): string | undefined {
  if (weights.passing <= 0) return 'Passing must be greater than 0';
  if (weights.warning < 0) return 'Warning must be greater or equal than 0';
  if (weights.passing > SERVICE_WEIGHT_MAX || weights.warning > SERVICE_WEIGHT_MAX) return 'DNS Weight must be between 0 and 65535';
  return undefined;
}

/**
 * Node and service metadata limits (structs.ValidateNodeMetadata). Returns the first problem,
 * in key order so the message is stable, or undefined.
 */
export function validateMeta(meta: Readonly<Record<string, string>>): string | undefined {
  const keys = Object.keys(meta).sort();
  if (keys.length > META_PAIRS_MAX) return `Node metadata cannot contain more than ${META_PAIRS_MAX} key/value pairs`;
  for (const key of keys) {
    const value = meta[key] ?? '';
    const problem = metaPairProblem(key, value);
    if (problem) return `Couldn't load metadata pair ('${key}', '${value}'): ${problem}`;
  }
  return undefined;
}

function metaPairProblem(key: string, value: string): string | undefined {
  if (key === '') return 'Key cannot be blank';
  if (!META_KEY_PATTERN.test(key)) return 'Key contains invalid characters';
  if (key.length > META_KEY_LENGTH_MAX) return `Key is too long (limit: ${META_KEY_LENGTH_MAX} characters)`;
  if (key.startsWith(RESERVED_META_PREFIX)) return `Key prefix '${RESERVED_META_PREFIX}' is reserved for internal use`;
  if (value.length > META_VALUE_LENGTH_MAX) return `Value is too long (limit: ${META_VALUE_LENGTH_MAX} characters)`;
  return undefined;
}

function readTaggedAddresses(reader: ObjectReader): Record<string, ServiceAddress> {
  const tagged = reader.object('tagged_addresses');
  if (!tagged) return {};
  const result: Record<string, ServiceAddress> = {};
  for (const name of tagged.keys()) {
    const entry = tagged.object(name);
    if (!entry) continue;
    result[name] = { address: entry.string('address') ?? '', port: entry.int('port') ?? 0 };
    entry.finish();
  }
  tagged.finish();
  return result;
}

/** HTTP check headers: `{"Name": ["v1", "v2"]}`, as Go's http.Header. */
function readHeader(reader: ObjectReader): Record<string, string[]> {
  const header = reader.object('header');
  if (!header) return {};
  const result: Record<string, string[]> = {};
  for (const name of header.keys()) {
    const values = header.stringList(name);
    if (values) result[name] = values;
  }
  header.finish();
  return result;
}
