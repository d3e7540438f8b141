// The agent's configuration: command-line flags and JSON config files, merged in Consul's order
// and validated into one frozen RuntimeConfig.
//
// Operators reuse their Consul command lines and config directories unchanged, so this module
// accepts Consul's flag spellings (`-server`, `--server`, `-http-port=8501`, `-http-port 8501`),
// its config keys (matched case-insensitively, as mapstructure does), its defaults, its `-dev`
// meaning, and reports mistakes with Consul's messages. Sources merge in Consul's order
// (agent/config/builder.go): defaults, then -dev overrides, then list-valued flags, then each
// -config-file / -config-dir in command-line order (a directory's .json files in byte order),
// then scalar flags. Scalars: the last source that sets one wins; lists append; maps merge key by
// key.
//
// Unlike Consul, which stops at the first hard error, every problem is collected so one run shows
// them all; each names the flag, or the file and key.
//
// Not here: HCL files and -hcl (refused with a clear message), go-sockaddr templates other
// than {{ GetPrivateIP }} and {{ GetInterfaceIP "name" }}, TLS, ACL tokens, telemetry; keys for
// those Consul features are accepted with a warning that they are ignored.

import { readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { hostname, networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { extname, join } from 'node:path';
import { isIP } from 'node:net';
import { configKeyMessage, durationProblem, ObjectReader } from './decode.js';
import { readCheckDefinition, readServiceDefinition, validateCheck, validateMeta, validateService, type CheckDefinition, type ServiceDefinition } from './definitions.js';
import { DurationError, NANOS_PER_MILLI, nanosToMillis, parseDuration } from './duration.js';
import { parseLogLevel, type LogLevel } from './log.js';

// ---------------------------------------------------------------------------------------------
// Exported types

export interface PortsConfig {
  /** -1 means disabled, as in Consul. */
  readonly http: number;
  readonly https: number;
  readonly dns: number;
  readonly server: number;
  readonly serfLan: number;
  readonly serfWan: number;
  readonly grpc: number;
  readonly grpcTls: number;
}

export interface DnsConfig {
  readonly recursors: readonly string[];
  readonly recursorStrategy: 'sequential' | 'random';
  readonly recursorTimeoutMs: number;
  readonly allowStale: boolean;
  readonly maxStaleMs: number;
  readonly nodeTtlMs: number;
  /** Per-service TTLs; a key ending in "*" is a prefix wildcard. */
  readonly serviceTtlMs: Readonly<Record<string, number>>;
  readonly udpAnswerLimit: number;
  readonly aRecordLimit: number;
  readonly onlyPassing: boolean;
  readonly enableTruncate: boolean;
  readonly enableAdditionalNodeMetaTxt: boolean;
  readonly disableCompression: boolean;
  readonly soa: { readonly refresh: number; readonly retry: number; readonly expire: number; readonly minTtl: number };
}

export interface GossipConfig {
  readonly gossipIntervalMs: number;
  readonly gossipNodes: number;
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly suspicionMult: number;
  readonly retransmitMult: number;
}

export interface RaftConfig {
  readonly multiplier: number;
  readonly electionTimeoutMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly leaderLeaseTimeoutMs: number;
  readonly snapshotThreshold: number;
  readonly snapshotIntervalMs: number;
  readonly trailingLogs: number;
  readonly protocol: number;
}

export interface AutopilotConfig {
  readonly cleanupDeadServers: boolean;
  readonly lastContactThresholdMs: number;
  readonly maxTrailingLogs: number;
  readonly minQuorum: number;
  readonly serverStabilizationTimeMs: number;
}

/** telemetry: what the in-memory metrics and the Prometheus endpoint use (sinks are not built). */
export interface TelemetryConfig {
  /** telemetry.disable_hostname: no host name in gauge names. */
  readonly disableHostname: boolean;
  /** telemetry.prometheus_retention_time; 0 (the default) disables /v1/agent/metrics?format=prometheus. */
  readonly prometheusRetentionMs: number;
  /** telemetry.metrics_prefix (default "consul"). */
  readonly metricsPrefix: string;
}

export interface LimitsConfig {
  readonly httpMaxConnsPerClient: number;
  readonly rpcMaxConnsPerClient: number;
  readonly kvMaxValueSize: number;
  readonly txnMaxReqLen: number;
}

/** The validated configuration every subsystem reads. Frozen: nothing changes it after load. */
export interface RuntimeConfig {
  readonly devMode: boolean;
  readonly serverMode: boolean;
  readonly bootstrap: boolean;
  readonly bootstrapExpect: number;
  readonly datacenter: string;
  readonly primaryDatacenter: string;
  readonly domain: string;
  readonly altDomain: string;
  /** "" only in -dev mode without -data-dir: state then lives in memory. */
  readonly dataDir: string;
  readonly nodeName: string;
  /** "" when not configured: the agent reads or creates `<data_dir>/node-id`. */
  readonly nodeId: string;
  readonly nodeMeta: Readonly<Record<string, string>>;
  readonly bindAddr: string;
  readonly advertiseAddrLan: string;
  readonly advertiseAddrWan: string;
  readonly serfBindAddrLan: string;
  readonly serfBindAddrWan: string;
  readonly clientAddrs: readonly string[];
  readonly ports: PortsConfig;
  readonly retryJoinLan: readonly string[];
  readonly retryJoinWan: readonly string[];
  readonly retryIntervalLanMs: number;
  readonly retryIntervalWanMs: number;
  /** 0 means retry forever. */
  readonly retryMaxAttemptsLan: number;
  readonly retryMaxAttemptsWan: number;
  readonly rejoinAfterLeave: boolean;
  readonly leaveOnTerm: boolean;
  readonly skipLeaveOnInt: boolean;
  readonly logLevel: LogLevel;
  readonly logJson: boolean;
  /** The base64 gossip key, "" when gossip encryption is off. */
  readonly encryptKey: string;
  readonly encryptVerifyIncoming: boolean;
  readonly encryptVerifyOutgoing: boolean;
  readonly disableKeyringFile: boolean;
  readonly uiEnabled: boolean;
  readonly uiContentPath: string;
  readonly dns: DnsConfig;
  readonly gossipLan: GossipConfig;
  readonly gossipWan: GossipConfig;
  readonly raft: RaftConfig;
  readonly autopilot: AutopilotConfig;
  readonly limits: LimitsConfig;
  readonly telemetry: TelemetryConfig;
  readonly aclEnabled: boolean;
  readonly aclDefaultPolicy: 'allow' | 'deny';
  readonly aclDownPolicy: string;
  readonly defaultQueryTimeMs: number;
  readonly maxQueryTimeMs: number;
  readonly rpcHoldTimeoutMs: number;
  readonly leaveDrainTimeMs: number;
  readonly checkUpdateIntervalMs: number;
  readonly checkOutputMaxSize: number;
  readonly sessionTtlMinMs: number;
  readonly reconnectTimeoutLanMs: number;
  readonly reconnectTimeoutWanMs: number;
  readonly enableRemoteScriptChecks: boolean;
  readonly enableLocalScriptChecks: boolean;
  readonly disableRemoteExec: boolean;
  readonly disableUpdateCheck: boolean;
  readonly disableCoordinates: boolean;
  readonly translateWanAddrs: boolean;
  readonly taggedAddresses: Readonly<Record<string, string>>;
  readonly services: readonly ServiceDefinition[];
  readonly checks: readonly CheckDefinition[];
  /** The config files read, in merge order. */
  readonly configFiles: readonly string[];
}

/** Configuration that could not be loaded; `problems` holds one message per mistake. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(formatProblems(problems));
  }
}

/** `-h`, `-help` or `--help` was given: print usage and exit 0. */
export class HelpRequested extends Error {
  override readonly name = 'HelpRequested';
  constructor() {
    super(usageText());
  }
}

export interface LoadedConfig {
  readonly config: RuntimeConfig;
  /** Messages to log as warnings once logging is up (Consul logs them after the banner). */
  readonly warnings: readonly string[];
}

/** The host facts configuration depends on; injected so tests control them. */
export interface ConfigHost {
  hostname(): string;
  networkInterfaces(): NodeJS.Dict<NetworkInterfaceInfo[]>;
  readFile(path: string): string;
  /** undefined when the path does not exist. */
  stat(path: string): Stats | undefined;
  readdir(path: string): string[];
}

// ---------------------------------------------------------------------------------------------
// Limits and defaults

export const CONFIG_FILE_BYTES_MAX = 16 * 1024 * 1024;
export const CONFIG_FILES_MAX = 4096;
export const RAFT_MULTIPLIER_MAX = 10;
export const DEFAULT_PORTS: PortsConfig = { http: 8500, https: -1, dns: 8600, server: 8300, serfLan: 8301, serfWan: 8302, grpc: -1, grpcTls: -1 };

const ANY_ADDRESSES = new Set(['0.0.0.0', '::', '[::]']);
const BASIC_NAME_PATTERN = /^[a-z0-9_-]+$/;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const GOSSIP_KEY_LENGTHS = [16, 24, 32];

/** The real host. */
export const NODE_HOST: ConfigHost = {
  hostname,
  networkInterfaces,
  readFile: (path) => {
    const size = statSync(path).size;
    if (size > CONFIG_FILE_BYTES_MAX) throw new Error(`file is ${size} bytes, over the ${CONFIG_FILE_BYTES_MAX}-byte limit`);
    return readFileSync(path, 'utf8');
  },
  stat: (path) => statSync(path, { throwIfNoEntry: false }),
  readdir: (path) => readdirSync(path),
};

// ---------------------------------------------------------------------------------------------
// Exported API

/**
 * Loads the configuration from agent arguments (without `node` and the script path; a leading
 * `agent` word, as in `consul agent -dev`, is skipped). Throws ConfigError listing every problem,
 * or HelpRequested.
 */
export function loadConfig(argv: readonly string[], host: ConfigHost = NODE_HOST): LoadedConfig {
  const args = argv[0] === 'agent' ? argv.slice(1) : argv;
  const flags = parseFlags(args);
  if (flags.problems.length > 0) throw new ConfigError(flags.problems);
  const problems: string[] = [];
  const warnings: string[] = [...flags.warnings];
  const files = expandConfigPaths(flags.configPaths, flags.isJsonForced, host, problems, warnings);
  const fileSources: ConfigSource[] = [];
  for (const file of files) {
    const source = readConfigFile(file, flags.isJsonForced, host, problems, warnings);
    if (source) fileSources.push(source);
  }
  const merged = mergeSources([flags.devMode ? DEV_SOURCE : {}, flags.listValues, ...fileSources, flags.scalarValues]);
  const config = buildRuntimeConfig(merged, { devMode: flags.devMode, configFiles: files }, host, problems, warnings);
  if (problems.length > 0) throw new ConfigError(problems);
  return { config: deepFreeze(config), warnings };
}

/** Consul's rendering of load errors: one line, or go-multierror's bulleted list. */
export function formatProblems(problems: readonly string[]): string {
  if (problems.length === 1) return problems[0] ?? '';
  return `${problems.length} errors occurred:\n${problems.map((problem) => `\t* ${problem}`).join('\n')}\n`;
}

/** The `-help` text: every flag this agent accepts. */
export function usageText(): string {
  const lines = ['Usage: consul-ts agent [options]', '', '  Starts the agent. Flags follow Consul\'s `consul agent`.', '', 'Options:', ''];
  for (const [name, spec] of Object.entries(FLAGS).sort(([a], [b]) => a.localeCompare(b))) {
    const value = spec.kind === 'bool' ? '' : spec.kind === 'map' ? ' key:value' : spec.kind === 'int' ? ' <int>' : ' <value>';
    lines.push(`  -${name}${value}`, `      ${spec.help}${spec.kind === 'list' ? ' May be repeated.' : ''}`);
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Sources: a partial configuration from defaults, flags or one file.

/** Everything a source may set; unset fields are absent. Durations are nanoseconds. */
interface ConfigSource {
  server?: boolean;
  bootstrap?: boolean;
  bootstrapExpect?: number;
  datacenter?: string;
  primaryDatacenter?: string;
  domain?: string;
  altDomain?: string;
  dataDir?: string;
  nodeName?: string;
  /** `segment` / `segments` (Enterprise network segments): only kept to be refused, as Consul CE does. */
  segment?: string;
  segmentCount?: number;
  nodeId?: string;
  nodeMeta?: Record<string, string>;
  bindAddr?: string;
  advertiseAddr?: string;
  advertiseAddrWan?: string;
  serfLan?: string;
  serfWan?: string;
  clientAddr?: string;
  ports?: Partial<Record<keyof PortsConfig, number>>;
  retryJoin?: string[];
  retryJoinWan?: string[];
  retryInterval?: number;
  retryIntervalWan?: number;
  retryMax?: number;
  retryMaxWan?: number;
  rejoinAfterLeave?: boolean;
  leaveOnTerminate?: boolean;
  skipLeaveOnInterrupt?: boolean;
  logLevel?: string;
  logJson?: boolean;
  encrypt?: string;
  encryptVerifyIncoming?: boolean;
  encryptVerifyOutgoing?: boolean;
  disableKeyringFile?: boolean;
  uiEnabled?: boolean;
  uiContentPath?: string;
  recursors?: string[];
  dns?: DnsSource;
  gossipLan?: GossipSource;
  gossipWan?: GossipSource;
  raftMultiplier?: number;
  rpcHoldTimeout?: number;
  leaveDrainTime?: number;
  raftSnapshotThreshold?: number;
  raftSnapshotInterval?: number;
  raftTrailingLogs?: number;
  raftProtocol?: number;
  autopilot?: Partial<Record<'cleanupDeadServers', boolean> & Record<'lastContactThreshold' | 'maxTrailingLogs' | 'minQuorum' | 'serverStabilizationTime', number>>;
  limits?: Partial<LimitsConfig>;
  telemetry?: { disableHostname?: boolean; prometheusRetentionTime?: number; metricsPrefix?: string };
  aclEnabled?: boolean;
  aclDefaultPolicy?: string;
  aclDownPolicy?: string;
  defaultQueryTime?: number;
  maxQueryTime?: number;
  checkUpdateInterval?: number;
  checkOutputMaxSize?: number;
  sessionTtlMin?: number;
  reconnectTimeout?: number;
  reconnectTimeoutWan?: number;
  enableScriptChecks?: boolean;
  enableLocalScriptChecks?: boolean;
  disableRemoteExec?: boolean;
  disableUpdateCheck?: boolean;
  disableCoordinates?: boolean;
  translateWanAddrs?: boolean;
  taggedAddresses?: Record<string, string>;
  services?: ServiceDefinition[];
  checks?: CheckDefinition[];
}

interface DnsSource {
  recursorStrategy?: string;
  recursorTimeout?: number;
  allowStale?: boolean;
  maxStale?: number;
  nodeTtl?: number;
  serviceTtl?: Record<string, number>;
  udpAnswerLimit?: number;
  aRecordLimit?: number;
  onlyPassing?: boolean;
  enableTruncate?: boolean;
  enableAdditionalNodeMetaTxt?: boolean;
  disableCompression?: boolean;
  soa?: Partial<Record<'refresh' | 'retry' | 'expire' | 'minTtl', number>>;
}

type GossipSource = Partial<Record<'gossipInterval' | 'gossipNodes' | 'probeInterval' | 'probeTimeout' | 'suspicionMult' | 'retransmitMult', number>>;

/** Consul's -dev overrides (agent/config/default.go DevSource). */
const DEV_SOURCE: ConfigSource = {
  server: true,
  bindAddr: '127.0.0.1',
  disableKeyringFile: true,
  uiEnabled: true,
  logLevel: 'DEBUG',
  ports: { grpc: 8502 },
  raftMultiplier: 1,
  gossipLan: { gossipInterval: 100 * NANOS_PER_MILLI, probeInterval: 100 * NANOS_PER_MILLI, probeTimeout: 100 * NANOS_PER_MILLI, suspicionMult: 3 },
  gossipWan: { gossipInterval: 100 * NANOS_PER_MILLI, probeInterval: 100 * NANOS_PER_MILLI, probeTimeout: 100 * NANOS_PER_MILLI, suspicionMult: 3 },
};

/** Merges sources left to right: later scalars win, lists append, objects merge key by key. */
function mergeSources(sources: readonly ConfigSource[]): ConfigSource {
  let merged: Record<string, unknown> = {};
  for (const source of sources) merged = mergeObjects(merged, source as Record<string, unknown>);
  return merged as ConfigSource;
}

function mergeObjects(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    const previous = result[key];
    if (Array.isArray(previous) && Array.isArray(value)) result[key] = [...previous, ...value];
    else if (isRecord(previous) && isRecord(value)) result[key] = mergeObjects(previous, value);
    else result[key] = value;
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Flags

type FlagKind = 'bool' | 'int' | 'string' | 'duration' | 'list' | 'map';

interface FlagSpec {
  readonly kind: FlagKind;
  /** Dotted path into ConfigSource; absent for flags handled by the parser itself. */
  readonly target?: string;
  /** The config key Consul names in value errors (`retry_interval: invalid duration: ...`). */
  readonly configKey?: string;
  readonly help: string;
  /** Consul accepts this flag but consul-ts does not act on it: warn instead of failing. */
  readonly isIgnored?: boolean;
}

/** Every flag of `consul agent` (agent/config/flags.go). */
const FLAGS: Readonly<Record<string, FlagSpec>> = {
  'advertise': { kind: 'string', target: 'advertiseAddr', help: 'Sets the advertise address to use.' },
  'advertise-wan': { kind: 'string', target: 'advertiseAddrWan', help: 'Sets address to advertise on WAN instead of -advertise address.' },
  'alt-domain': { kind: 'string', target: 'altDomain', help: 'Alternate domain to use for DNS interface.' },
  'bind': { kind: 'string', target: 'bindAddr', help: 'Sets the bind address for cluster communication.' },
  'bootstrap': { kind: 'bool', target: 'bootstrap', help: 'Sets server to bootstrap mode.' },
  'bootstrap-expect': { kind: 'int', target: 'bootstrapExpect', help: 'Sets server to expect bootstrap mode.' },
  'check_output_max_size': { kind: 'int', target: 'checkOutputMaxSize', help: 'Sets the maximum size of check output kept.' },
  'client': { kind: 'string', target: 'clientAddr', help: 'Sets the address to bind for client access (HTTP, DNS).' },
  'config-dir': { kind: 'list', help: 'Path to a directory to read configuration files from, in lexical order.' },
  'config-file': { kind: 'list', help: 'Path to a file in JSON format to read configuration from.' },
  'config-format': { kind: 'string', help: 'Config files are in this format irrespective of their extension ("json").' },
  'data-dir': { kind: 'string', target: 'dataDir', help: 'Path to a data directory to store agent state.' },
  'datacenter': { kind: 'string', target: 'datacenter', help: 'Datacenter of the agent.' },
  'default-query-time': { kind: 'duration', target: 'defaultQueryTime', configKey: 'default_query_time', help: 'Duration of a blocking query without ?wait.' },
  'dev': { kind: 'bool', help: 'Starts the agent in development mode: an in-memory single-server cluster.' },
  'disable-host-node-id': { kind: 'bool', help: 'Node IDs are always random here; accepted for compatibility.', isIgnored: true },
  'disable-keyring-file': { kind: 'bool', target: 'disableKeyringFile', help: 'Disables the backing up of the keyring to a file.' },
  'dns-port': { kind: 'int', target: 'ports.dns', help: 'DNS port to use.' },
  'domain': { kind: 'string', target: 'domain', help: 'Domain to use for DNS interface.' },
  'enable-local-script-checks': { kind: 'bool', target: 'enableLocalScriptChecks', help: 'Enables health check scripts from configuration file.' },
  'enable-script-checks': { kind: 'bool', target: 'enableScriptChecks', help: 'Enables health check scripts.' },
  'encrypt': { kind: 'string', target: 'encrypt', help: 'Provides the gossip encryption key.' },
  'grpc-port': { kind: 'int', target: 'ports.grpc', help: 'Sets the gRPC API port to listen on.' },
  'grpc-tls-port': { kind: 'int', target: 'ports.grpcTls', help: 'Sets the gRPC-TLS API port to listen on.' },
  'hcl': { kind: 'list', help: 'HCL configuration fragment (not supported by consul-ts).' },
  'http-port': { kind: 'int', target: 'ports.http', help: 'Sets the HTTP API port to listen on.' },
  'https-port': { kind: 'int', target: 'ports.https', help: 'Sets the HTTPS API port to listen on.' },
  'join': { kind: 'list', target: 'retryJoin', help: 'Deprecated alias of -retry-join.' },
  'join-wan': { kind: 'list', target: 'retryJoinWan', help: 'Deprecated alias of -retry-join-wan.' },
  'log-json': { kind: 'bool', target: 'logJson', help: 'Output logs in JSON format.' },
  'log-level': { kind: 'string', target: 'logLevel', help: 'Log level of the agent.' },
  'max-query-time': { kind: 'duration', target: 'maxQueryTime', configKey: 'max_query_time', help: 'The maximum ?wait of a blocking query.' },
  'node': { kind: 'string', target: 'nodeName', help: 'Name of this node. Must be unique in the cluster.' },
  'node-id': { kind: 'string', target: 'nodeId', help: 'A unique ID for this node across space and time.' },
  'node-meta': { kind: 'map', target: 'nodeMeta', help: 'An arbitrary metadata key/value pair for this node. May be repeated.' },
  'recursor': { kind: 'list', target: 'recursors', help: 'Address of an upstream DNS server.' },
  'rejoin': { kind: 'bool', target: 'rejoinAfterLeave', help: 'Ignores a previous leave and attempts to rejoin the cluster.' },
  'retry-interval': { kind: 'duration', target: 'retryInterval', configKey: 'retry_interval', help: 'Time to wait between join attempts.' },
  'retry-interval-wan': { kind: 'duration', target: 'retryIntervalWan', configKey: 'retry_interval_wan', help: 'Time to wait between WAN join attempts.' },
  'retry-join': { kind: 'list', target: 'retryJoin', help: 'Address of an agent to join at start time with retries enabled.' },
  'retry-join-wan': { kind: 'list', target: 'retryJoinWan', help: 'Address of a server to join -wan at start time with retries enabled.' },
  'retry-max': { kind: 'int', target: 'retryMax', help: 'Maximum number of join attempts. Defaults to 0, which retries forever.' },
  'retry-max-wan': { kind: 'int', target: 'retryMaxWan', help: 'Maximum number of WAN join attempts. 0 retries forever.' },
  'serf-lan-bind': { kind: 'string', target: 'serfLan', help: 'Address to bind Serf LAN listeners to.' },
  'serf-lan-port': { kind: 'int', target: 'ports.serfLan', help: 'Sets the Serf LAN port to listen on.' },
  'serf-wan-bind': { kind: 'string', target: 'serfWan', help: 'Address to bind Serf WAN listeners to.' },
  'serf-wan-port': { kind: 'int', target: 'ports.serfWan', help: 'Sets the Serf WAN port to listen on.' },
  'server': { kind: 'bool', target: 'server', help: 'Switches agent to server mode.' },
  'server-port': { kind: 'int', target: 'ports.server', help: 'Sets the server port to listen on.' },
  'ui': { kind: 'bool', target: 'uiEnabled', help: 'Enables the built-in static web UI server.' },
  'ui-content-path': { kind: 'string', target: 'uiContentPath', help: 'Sets the external UI path to a string.' },
  'allow-write-http-from': { kind: 'list', help: 'Only allow write endpoint calls from given network.', isIgnored: true },
  'auto-reload-config': { kind: 'bool', help: 'Watches config files for changes.', isIgnored: true },
  'log-file': { kind: 'string', help: 'Path to the file the logs get written to.', isIgnored: true },
  'log-rotate-bytes': { kind: 'int', help: 'Maximum number of bytes that should be written to a log file.', isIgnored: true },
  'log-rotate-duration': { kind: 'string', help: 'Time after which log rotation needs to be performed.', isIgnored: true },
  'log-rotate-max-files': { kind: 'int', help: 'Maximum number of log file archives to keep.', isIgnored: true },
  'non-voting-server': { kind: 'bool', help: 'Enterprise-only read replica mode.', isIgnored: true },
  'read-replica': { kind: 'bool', help: 'Enterprise-only read replica mode.', isIgnored: true },
  'pid-file': { kind: 'string', help: 'Path to file to store agent PID.', isIgnored: true },
  'primary-gateway': { kind: 'list', help: 'Address of a mesh gateway in the primary datacenter.', isIgnored: true },
  'protocol': { kind: 'int', help: 'Sets the protocol version. Defaults to latest.', isIgnored: true },
  'raft-protocol': { kind: 'int', target: 'raftProtocol', help: 'Sets the Raft protocol version. Defaults to latest.' },
  'segment': { kind: 'string', target: 'segment', help: 'Enterprise-only network segment (refused, as Consul CE does).' },
  'serf-lan-allowed-cidrs': { kind: 'list', help: 'Networks allowed for Serf LAN.', isIgnored: true },
  'serf-wan-allowed-cidrs': { kind: 'list', help: 'Networks allowed for Serf WAN.', isIgnored: true },
  'syslog': { kind: 'bool', help: 'Enables logging to syslog.', isIgnored: true },
  'ui-dir': { kind: 'string', help: 'Path to directory containing the web UI resources.', isIgnored: true },
};

interface ParsedFlags {
  readonly devMode: boolean;
  /** -config-file and -config-dir values, in command-line order. */
  readonly configPaths: string[];
  /** List-valued flags: merged before config files, as Consul's "flags.slices" source. */
  readonly listValues: ConfigSource;
  /** Everything else: merged after config files, so flags win. */
  readonly scalarValues: ConfigSource;
  readonly problems: string[];
  readonly warnings: string[];
  /** -config-format=json: every file is JSON whatever its extension. */
  isJsonForced: boolean;
}

const HCL_UNSUPPORTED = 'HCL configuration is not supported by consul-ts; use JSON config files';

/**
 * Parses arguments with Go's flag package rules: `-x` and `--x` alike, `-x=v` always,
 * `-x v` for non-boolean flags, `--` or the first non-flag argument ends the flags.
 */
function parseFlags(args: readonly string[]): ParsedFlags {
  const parsed: ParsedFlags = { devMode: false, configPaths: [], listValues: {}, scalarValues: {}, problems: [], warnings: [], isJsonForced: false };
  let devMode = false;
  let index = 0;
  for (; index < args.length; index++) {
    const arg = args[index] ?? '';
    if (arg === '--') {
      index++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    if (body === '' || body.startsWith('-') || body.startsWith('=')) return fail(parsed, `bad flag syntax: ${arg}`);
    const equals = body.indexOf('=');
    const name = equals === -1 ? body : body.slice(0, equals);
    if (name === 'h' || name === 'help') throw new HelpRequested();
    const spec = FLAGS[name];
    if (spec === undefined) return fail(parsed, `flag provided but not defined: -${name}`);
    let value: string;
    if (equals !== -1) value = body.slice(equals + 1);
    else if (spec.kind === 'bool') value = 'true';
    else {
      if (index + 1 >= args.length) return fail(parsed, `flag needs an argument: -${name}`);
      value = args[++index] ?? '';
    }
    const problem = applyFlag(parsed, name, spec, value);
    if (problem) return fail(parsed, problem);
    if (name === 'dev') devMode = parseGoBool(value) ?? false;
  }
  if (index < args.length) {
    parsed.problems.push(`Unexpected extra arguments: [${args.slice(index).join(' ')}]`);
  }
  return { ...parsed, devMode };
}

function fail(parsed: ParsedFlags, message: string): ParsedFlags {
  parsed.problems.push(`error parsing flags: ${message}`);
  return parsed;
}

/** Applies one flag value; returns Go's error text for a bad value. */
function applyFlag(parsed: ParsedFlags, name: string, spec: FlagSpec, value: string): string | undefined {
  let typed: unknown = value;
  if (spec.kind === 'bool') {
    typed = parseGoBool(value);
    if (typed === undefined) return `invalid boolean value ${JSON.stringify(value)} for -${name}: strconv.ParseBool: parsing ${JSON.stringify(value)}: invalid syntax`;
  } else if (spec.kind === 'int') {
    typed = parseGoInt(value);
    if (typeof typed === 'string') return `invalid value ${JSON.stringify(value)} for flag -${name}: strconv.Atoi: parsing ${JSON.stringify(value)}: ${typed}`;
  } else if (spec.kind === 'duration') {
    try {
      typed = parseDuration(value);
    } catch (error) {
      if (!(error instanceof DurationError)) throw error;
      parsed.problems.push(durationProblem(spec.configKey ?? name, value, error));
      return undefined;
    }
  }
  if (name === 'config-file' || name === 'config-dir') parsed.configPaths.push(value);
  if (name === 'config-format') {
    if (value === 'json') parsed.isJsonForced = true;
    else if (value === 'hcl') parsed.problems.push(HCL_UNSUPPORTED);
    else parsed.problems.push(`config: -config-format must be either 'hcl' or 'json'`);
  }
  if (name === 'hcl') parsed.problems.push(HCL_UNSUPPORTED);
  if (spec.isIgnored) parsed.warnings.push(`flag -${name} is not supported by consul-ts and is ignored`);
  if (name === 'join' || name === 'join-wan') {
    parsed.warnings.push(`The '${name === 'join' ? 'start_join' : 'start_join_wan'}' field is deprecated. Use the '${name === 'join' ? 'retry_join' : 'retry_join_wan'}' field instead.`);
  }
  if (spec.target === undefined || spec.isIgnored) return undefined;
  if (spec.kind === 'list') appendAtPath(parsed.listValues, spec.target, [typed]);
  else if (spec.kind === 'map') {
    const colon = value.indexOf(':');
    const pair = colon === -1 ? { [value]: '' } : { [value.slice(0, colon)]: value.slice(colon + 1) };
    appendAtPath(parsed.scalarValues, spec.target, pair);
  } else setAtPath(parsed.scalarValues, spec.target, typed);
  return undefined;
}

/** strconv.ParseBool. */
function parseGoBool(text: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(text)) return false;
  return undefined;
}

/** strconv.Atoi: the number, or the reason text Go gives. */
function parseGoInt(text: string): number | string {
  if (!/^[+-]?\d+$/.test(text)) return 'invalid syntax';
  const value = Number(text);
  // Go's int is 64 bits; past 2^53 JS loses precision, and no setting needs such values.
  if (!Number.isSafeInteger(value)) return 'value out of range';
  return value;
}

function setAtPath(target: Record<string, unknown> | ConfigSource, path: string, value: unknown): void {
  const parts = path.split('.');
  let cursor = target as Record<string, unknown>;
  for (const part of parts.slice(0, -1)) {
    if (!isRecord(cursor[part])) cursor[part] = {};
    cursor = cursor[part] as Record<string, unknown>;
  }
  cursor[parts[parts.length - 1] ?? path] = value;
}

function appendAtPath(target: ConfigSource, path: string, value: unknown[] | Record<string, string>): void {
  const existing = (target as Record<string, unknown>)[path];
  setAtPath(target, path, Array.isArray(value) ? [...((existing as unknown[]) ?? []), ...value] : { ...(existing as object), ...value });
}

// ---------------------------------------------------------------------------------------------
// Files

/** Turns -config-file/-config-dir arguments into the ordered list of files to read. */
function expandConfigPaths(paths: readonly string[], isJsonForced: boolean, host: ConfigHost, problems: string[], warnings: string[]): string[] {
  const files: string[] = [];
  for (const path of paths) {
    const stats = host.stat(path);
    if (stats === undefined) {
      problems.push(`config: Open failed on ${path}. open ${path}: no such file or directory`);
      continue;
    }
    if (!stats.isDirectory()) {
      if (!isJsonForced && !isConfigExtension(path)) problems.push(`file ${path} has unknown extension; must be .hcl or .json, or config format must be set`);
      else files.push(path);
      continue;
    }
    // Byte order, as Go compares names; subdirectories are not descended into.
    const names = host.readdir(path).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) {
      const full = join(path, name);
      if (host.stat(full)?.isDirectory()) continue;
      if (!isJsonForced && !isConfigExtension(full)) warnings.push(`skipping file ${full}, extension must be .hcl or .json, or config format must be set`);
      else files.push(full);
    }
  }
  if (files.length > CONFIG_FILES_MAX) problems.push(`config: more than ${CONFIG_FILES_MAX} config files`);
  return files.slice(0, CONFIG_FILES_MAX);
}

function isConfigExtension(path: string): boolean {
  const extension = extname(path);
  return extension === '.json' || extension === '.hcl';
}

/** Reads one file into a source; its problems are prefixed `failed to parse <file>: `. */
function readConfigFile(file: string, isJsonForced: boolean, host: ConfigHost, problems: string[], warnings: string[]): ConfigSource | undefined {
  if (!isJsonForced && extname(file) === '.hcl') {
    problems.push(`failed to parse ${file}: ${HCL_UNSUPPORTED}`);
    return undefined;
  }
  let text: string;
  try {
    text = host.readFile(file);
  } catch (error) {
    problems.push(`config: failed to read ${file}: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
  // Consul skips an empty file rather than failing on it.
  if (text.trim() === '') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    problems.push(`failed to parse ${file}: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
  const fileProblems: string[] = [];
  const reader = ObjectReader.of(json, '', fileProblems, configKeyMessage);
  const source = reader ? readConfigObject(reader, warnings) : undefined;
  problems.push(...fileProblems.map((problem) => `failed to parse ${file}: ${problem}`));
  return source;
}

/** How many entries a list-valued key has (0 for anything else). */
function countOf(value: unknown): number {
  return Array.isArray(value) ? value.length : 0;
}

/** structs.ErrSegmentsNotSupported. */
const SEGMENTS_UNSUPPORTED = 'Network segments are not supported in this version of Consul';

/** Consul config keys that consul-ts accepts without acting on them yet. */
const IGNORED_KEYS: readonly string[] = [
  'addresses', 'advertise_addr_ipv4', 'advertise_addr_ipv6', 'advertise_addr_wan_ipv4', 'advertise_addr_wan_ipv6',
  'advertise_reconnect_timeout', 'audit', 'auto_config', 'auto_encrypt', 'auto_reload_config', 'cache', 'cloud',
  'config_entries', 'connect', 'default_intention_policy', 'disable_anonymous_signature', 'disable_host_node_id',
  'disable_http_unprintable_char_filter', 'discard_check_output', 'discovery_max_stale', 'enable_acl_replication',
  'enable_agent_tls_for_checks', 'enable_central_service_config', 'enable_debug', 'enable_syslog', 'experiments',
  'http_config', 'license_path', 'locality', 'log_file', 'log_rotate_bytes', 'log_rotate_duration',
  'log_rotate_max_files', 'peering', 'pid_file', 'primary_gateways', 'primary_gateways_interval', 'protocol',
  'raft_logstore', 'read_replica', 'reporting', 'rpc', 'serf_lan_allowed_cidrs',
  'serf_wan_allowed_cidrs', 'server_name', 'server_rejoin_age_max', 'syslog_facility', 'tls',
  'unix_sockets', 'use_streaming_backend', 'watches', 'xds', 'ui_dir', 'verify_incoming', 'verify_outgoing',
  'verify_server_hostname', 'ca_file', 'cert_file', 'key_file',
];

/** Reads the top level of a config file. Field names are Consul's (agent/config/config.go). */
function readConfigObject(r: ObjectReader, warnings: string[]): ConfigSource {
  const source: ConfigSource = {
    server: r.bool('server'),
    bootstrap: r.bool('bootstrap'),
    bootstrapExpect: r.int('bootstrap_expect'),
    datacenter: r.string('datacenter'),
    primaryDatacenter: r.string('primary_datacenter'),
    domain: r.string('domain'),
    altDomain: r.string('alt_domain'),
    dataDir: r.string('data_dir'),
    nodeName: r.string('node_name'),
    segment: r.string('segment'),
    segmentCount: countOf(r.raw('segments')),
    nodeId: r.string('node_id'),
    nodeMeta: r.stringMap('node_meta'),
    bindAddr: r.string('bind_addr'),
    advertiseAddr: r.string('advertise_addr'),
    advertiseAddrWan: r.string('advertise_addr_wan'),
    serfLan: r.string('serf_lan'),
    serfWan: r.string('serf_wan'),
    clientAddr: r.string('client_addr'),
    ports: readPorts(r.object('ports')),
    retryJoin: r.stringList('retry_join'),
    retryJoinWan: r.stringList('retry_join_wan'),
    retryInterval: r.durationNanos('retry_interval'),
    retryIntervalWan: r.durationNanos('retry_interval_wan'),
    retryMax: r.int('retry_max'),
    retryMaxWan: r.int('retry_max_wan'),
    rejoinAfterLeave: r.bool('rejoin_after_leave'),
    leaveOnTerminate: r.bool('leave_on_terminate'),
    skipLeaveOnInterrupt: r.bool('skip_leave_on_interrupt'),
    logLevel: r.string('log_level'),
    logJson: r.bool('log_json'),
    encrypt: r.string('encrypt'),
    encryptVerifyIncoming: r.bool('encrypt_verify_incoming'),
    encryptVerifyOutgoing: r.bool('encrypt_verify_outgoing'),
    disableKeyringFile: r.bool('disable_keyring_file'),
    recursors: r.stringList('recursors'),
    dns: readDnsConfig(r.object('dns_config')),
    raftSnapshotThreshold: r.int('raft_snapshot_threshold'),
    raftSnapshotInterval: r.durationNanos('raft_snapshot_interval'),
    raftTrailingLogs: r.int('raft_trailing_logs'),
    raftProtocol: r.int('raft_protocol'),
    autopilot: readAutopilot(r.object('autopilot')),
    limits: readLimits(r.object('limits')),
    telemetry: readTelemetry(r.object('telemetry'), warnings),
    defaultQueryTime: r.durationNanos('default_query_time'),
    maxQueryTime: r.durationNanos('max_query_time'),
    checkUpdateInterval: r.durationNanos('check_update_interval'),
    checkOutputMaxSize: r.int('check_output_max_size'),
    sessionTtlMin: r.durationNanos('session_ttl_min'),
    reconnectTimeout: r.durationNanos('reconnect_timeout'),
    reconnectTimeoutWan: r.durationNanos('reconnect_timeout_wan'),
    enableScriptChecks: r.bool('enable_script_checks'),
    enableLocalScriptChecks: r.bool('enable_local_script_checks'),
    disableRemoteExec: r.bool('disable_remote_exec'),
    disableUpdateCheck: r.bool('disable_update_check'),
    disableCoordinates: r.bool('disable_coordinates'),
    translateWanAddrs: r.bool('translate_wan_addrs'),
    taggedAddresses: r.stringMap('tagged_addresses'),
  };
  readPerformance(r.object('performance'), source);
  readUi(r, source, warnings);
  readAcl(r.object('acl'), source, warnings);
  const startJoin = r.stringList('start_join');
  if (startJoin) {
    warnings.push("The 'start_join' field is deprecated. Use the 'retry_join' field instead.");
    source.retryJoin = [...startJoin, ...(source.retryJoin ?? [])];
  }
  const startJoinWan = r.stringList('start_join_wan');
  if (startJoinWan) {
    warnings.push("The 'start_join_wan' field is deprecated. Use the 'retry_join_wan' field instead.");
    source.retryJoinWan = [...startJoinWan, ...(source.retryJoinWan ?? [])];
  }
  // A single `service` or `check` joins the list rather than replacing it (Consul does the same).
  const single = r.object('service');
  source.services = [...(single ? [readServiceDefinition(single)] : []), ...(r.objectList('services') ?? []).map(readServiceDefinition)];
  const singleCheck = r.object('check');
  source.checks = [...(singleCheck ? [readCheckDefinition(singleCheck)] : []), ...(r.objectList('checks') ?? []).map(readCheckDefinition)];
  for (const key of r.ignore(IGNORED_KEYS)) warnings.push(`config key "${key}" is not supported by consul-ts and is ignored`);
  r.finish();
  return source;
}

function readPorts(r: ObjectReader | undefined): ConfigSource['ports'] {
  if (!r) return undefined;
  const ports = {
    http: r.int('http'),
    https: r.int('https'),
    dns: r.int('dns'),
    server: r.int('server'),
    serfLan: r.int('serf_lan'),
    serfWan: r.int('serf_wan'),
    grpc: r.int('grpc'),
    grpcTls: r.int('grpc_tls'),
  };
  r.ignore(['proxy_min_port', 'proxy_max_port', 'sidecar_min_port', 'sidecar_max_port', 'expose_min_port', 'expose_max_port']);
  r.finish();
  return ports;
}

function readDnsConfig(r: ObjectReader | undefined): DnsSource | undefined {
  if (!r) return undefined;
  const soaReader = r.object('soa');
  const dns: DnsSource = {
    recursorStrategy: r.string('recursor_strategy'),
    recursorTimeout: r.durationNanos('recursor_timeout'),
    allowStale: r.bool('allow_stale'),
    maxStale: r.durationNanos('max_stale'),
    nodeTtl: r.durationNanos('node_ttl'),
    serviceTtl: readDurationMap(r.object('service_ttl')),
    udpAnswerLimit: r.int('udp_answer_limit'),
    aRecordLimit: r.int('a_record_limit'),
    onlyPassing: r.bool('only_passing'),
    enableTruncate: r.bool('enable_truncate'),
    enableAdditionalNodeMetaTxt: r.bool('enable_additional_node_meta_txt'),
    disableCompression: r.bool('disable_compression'),
    soa: soaReader ? { refresh: soaReader.int('refresh'), retry: soaReader.int('retry'), expire: soaReader.int('expire'), minTtl: soaReader.int('min_ttl') } : undefined,
  };
  soaReader?.finish();
  r.ignore(['use_cache', 'cache_max_age', 'prefer_namespace']);
  r.finish();
  return dns;
}

function readDurationMap(r: ObjectReader | undefined): Record<string, number> | undefined {
  if (!r) return undefined;
  const result: Record<string, number> = {};
  for (const key of r.keys()) {
    const nanos = r.durationNanos(key);
    if (nanos !== undefined) result[key] = nanos;
  }
  r.finish();
  return result;
}

function readAutopilot(r: ObjectReader | undefined): ConfigSource['autopilot'] {
  if (!r) return undefined;
  const autopilot = {
    cleanupDeadServers: r.bool('cleanup_dead_servers'),
    lastContactThreshold: r.durationNanos('last_contact_threshold'),
    maxTrailingLogs: r.int('max_trailing_logs'),
    minQuorum: r.int('min_quorum'),
    serverStabilizationTime: r.durationNanos('server_stabilization_time'),
  };
  r.ignore(['redundancy_zone_tag', 'disable_upgrade_migration', 'upgrade_version_tag']);
  r.finish();
  return autopilot;
}

function readLimits(r: ObjectReader | undefined): ConfigSource['limits'] {
  if (!r) return undefined;
  const limits = {
    httpMaxConnsPerClient: r.int('http_max_conns_per_client'),
    rpcMaxConnsPerClient: r.int('rpc_max_conns_per_client'),
    kvMaxValueSize: r.int('kv_max_value_size'),
    txnMaxReqLen: r.int('txn_max_req_len'),
  };
  r.ignore(['https_handshake_timeout', 'rpc_handshake_timeout', 'rpc_client_timeout', 'rpc_rate', 'rpc_max_burst', 'request_limits']);
  r.finish();
  return limits;
}

/** The telemetry keys consul-ts acts on; the sinks (statsd, dogstatsd, circonus...) are accepted and ignored. */
function readTelemetry(r: ObjectReader | undefined, warnings: string[]): ConfigSource['telemetry'] {
  if (!r) return undefined;
  const telemetry = {
    disableHostname: r.bool('disable_hostname'),
    prometheusRetentionTime: r.durationNanos('prometheus_retention_time'),
    metricsPrefix: r.string('metrics_prefix'),
  };
  for (const key of r.ignore(r.keys())) warnings.push(`config key "${key}" is not supported by consul-ts and is ignored`);
  r.finish();
  return telemetry;
}

function readPerformance(r: ObjectReader | undefined, source: ConfigSource): void {
  if (!r) return;
  source.raftMultiplier = r.int('raft_multiplier');
  source.rpcHoldTimeout = r.durationNanos('rpc_hold_timeout');
  source.leaveDrainTime = r.durationNanos('leave_drain_time');
  r.finish();
}

function readUi(r: ObjectReader, source: ConfigSource, warnings: string[]): void {
  const legacy = r.bool('ui');
  if (legacy !== undefined) {
    warnings.push("The 'ui' field is deprecated. Use the 'ui_config.enabled' field instead.");
    source.uiEnabled = legacy;
  }
  const legacyPath = r.string('ui_content_path');
  if (legacyPath !== undefined) {
    warnings.push("The 'ui_content_path' field is deprecated. Use the 'ui_config.content_path' field instead.");
    source.uiContentPath = legacyPath;
  }
  const ui = r.object('ui_config');
  if (!ui) return;
  source.uiEnabled = ui.bool('enabled') ?? source.uiEnabled;
  source.uiContentPath = ui.string('content_path') ?? source.uiContentPath;
  ui.ignore(['dir', 'metrics_provider', 'metrics_provider_files', 'metrics_provider_options_json', 'metrics_proxy', 'dashboard_url_templates']);
  ui.finish();
}

function readAcl(r: ObjectReader | undefined, source: ConfigSource, warnings: string[]): void {
  if (!r) return;
  source.aclEnabled = r.bool('enabled');
  source.aclDefaultPolicy = r.string('default_policy');
  source.aclDownPolicy = r.string('down_policy');
  for (const key of r.ignore(['tokens', 'token_ttl', 'policy_ttl', 'role_ttl', 'enable_key_list_policy', 'enable_token_replication', 'enable_token_persistence', 'msp_disable_bootstrap'])) {
    warnings.push(`config key "${key}" is not supported by consul-ts and is ignored`);
  }
  r.finish();
}

// ---------------------------------------------------------------------------------------------
// Building the runtime configuration

interface BuildContext {
  readonly devMode: boolean;
  readonly configFiles: readonly string[];
}

function buildRuntimeConfig(s: ConfigSource, context: BuildContext, host: ConfigHost, problems: string[], warnings: string[]): RuntimeConfig {
  const { devMode } = context;
  const serverMode = s.server ?? false;
  const { bootstrap, bootstrapExpect } = buildBootstrap(s, serverMode, devMode, problems, warnings);
  const datacenter = (s.datacenter ?? 'dc1').toLowerCase();
  validateBasicName('datacenter', datacenter, false, problems);
  const primaryDatacenter = (s.primaryDatacenter ?? '').toLowerCase();
  validateBasicName('primary_datacenter', primaryDatacenter, true, problems);
  const ports = buildPorts(s.ports ?? {}, serverMode, problems);
  const addresses = buildAddresses(s, host, problems);
  const multiplier = s.raftMultiplier ?? 5;
  if (!Number.isInteger(multiplier) || multiplier < 1 || multiplier > RAFT_MULTIPLIER_MAX) {
    problems.push(`performance.raft_multiplier cannot be ${multiplier}. Must be between 1 and ${RAFT_MULTIPLIER_MAX}`);
  }
  const config: RuntimeConfig = {
    devMode,
    serverMode,
    bootstrap,
    bootstrapExpect,
    datacenter,
    primaryDatacenter: primaryDatacenter || datacenter,
    domain: normalizeDomain(s.domain ?? 'consul.'),
    altDomain: s.altDomain ? normalizeDomain(s.altDomain) : '',
    dataDir: buildDataDir(s.dataDir ?? '', devMode, host, problems),
    nodeName: buildNodeName(s.nodeName, host, problems, warnings),
    nodeId: buildNodeId(s.nodeId ?? '', problems),
    nodeMeta: buildNodeMeta(s.nodeMeta ?? {}, problems),
    ...addresses,
    ports,
    retryJoinLan: s.retryJoin ?? [],
    retryJoinWan: s.retryJoinWan ?? [],
    retryIntervalLanMs: nonNegativeMillis('retry_interval', s.retryInterval, 30_000, problems),
    retryIntervalWanMs: nonNegativeMillis('retry_interval_wan', s.retryIntervalWan, 30_000, problems),
    retryMaxAttemptsLan: nonNegativeInt('retry_max', s.retryMax ?? 0, problems),
    retryMaxAttemptsWan: nonNegativeInt('retry_max_wan', s.retryMaxWan ?? 0, problems),
    rejoinAfterLeave: s.rejoinAfterLeave ?? false,
    // Consul: clients leave on SIGTERM and servers do not; servers stay on SIGINT.
    leaveOnTerm: s.leaveOnTerminate ?? !serverMode,
    skipLeaveOnInt: s.skipLeaveOnInterrupt ?? serverMode,
    logLevel: buildLogLevel(s.logLevel ?? 'INFO', problems),
    logJson: s.logJson ?? false,
    encryptKey: buildEncryptKey(s.encrypt ?? '', problems),
    encryptVerifyIncoming: s.encryptVerifyIncoming ?? true,
    encryptVerifyOutgoing: s.encryptVerifyOutgoing ?? true,
    disableKeyringFile: s.disableKeyringFile ?? false,
    uiEnabled: s.uiEnabled ?? false,
    uiContentPath: buildUiContentPath(s.uiContentPath ?? '/ui/', problems),
    dns: buildDns(s.dns ?? {}, s.recursors ?? [], problems),
    gossipLan: buildGossip(s.gossipLan ?? {}, { gossipIntervalMs: 200, gossipNodes: 3, probeIntervalMs: 1000, probeTimeoutMs: 500, suspicionMult: 4, retransmitMult: 4 }),
    gossipWan: buildGossip(s.gossipWan ?? {}, { gossipIntervalMs: 500, gossipNodes: 3, probeIntervalMs: 5000, probeTimeoutMs: 3000, suspicionMult: 6, retransmitMult: 4 }),
    raft: buildRaft(s, multiplier, devMode, problems),
    autopilot: buildAutopilot(s.autopilot ?? {}, problems),
    limits: buildLimits(s.limits ?? {}, problems),
    telemetry: {
      disableHostname: s.telemetry?.disableHostname ?? false,
      prometheusRetentionMs: nonNegativeMillis('telemetry.prometheus_retention_time', s.telemetry?.prometheusRetentionTime, 0, problems),
      metricsPrefix: s.telemetry?.metricsPrefix ?? 'consul',
    },
    aclEnabled: s.aclEnabled ?? false,
    aclDefaultPolicy: buildAclPolicy(s.aclDefaultPolicy ?? 'allow', problems),
    aclDownPolicy: s.aclDownPolicy ?? 'extend-cache',
    defaultQueryTimeMs: positiveMillis('default_query_time', s.defaultQueryTime, 300_000, problems),
    maxQueryTimeMs: positiveMillis('max_query_time', s.maxQueryTime, 600_000, problems),
    rpcHoldTimeoutMs: positiveMillis('performance.rpc_hold_timeout', s.rpcHoldTimeout, 7_000, problems),
    leaveDrainTimeMs: nonNegativeMillis('performance.leave_drain_time', s.leaveDrainTime, 5_000, problems),
    checkUpdateIntervalMs: nonNegativeMillis('check_update_interval', s.checkUpdateInterval, 300_000, problems),
    checkOutputMaxSize: buildCheckOutputMaxSize(s.checkOutputMaxSize ?? 4096, problems),
    sessionTtlMinMs: positiveMillis('session_ttl_min', s.sessionTtlMin, 10_000, problems),
    reconnectTimeoutLanMs: reconnectTimeout('reconnect_timeout', s.reconnectTimeout, problems),
    reconnectTimeoutWanMs: reconnectTimeout('reconnect_timeout_wan', s.reconnectTimeoutWan, problems),
    enableRemoteScriptChecks: s.enableScriptChecks ?? false,
    enableLocalScriptChecks: (s.enableLocalScriptChecks ?? false) || (s.enableScriptChecks ?? false),
    disableRemoteExec: s.disableRemoteExec ?? true,
    disableUpdateCheck: s.disableUpdateCheck ?? false,
    disableCoordinates: s.disableCoordinates ?? false,
    translateWanAddrs: s.translateWanAddrs ?? false,
    taggedAddresses: s.taggedAddresses ?? {},
    services: buildServices(s.services ?? [], problems),
    checks: buildChecks(s.checks ?? [], problems),
    configFiles: context.configFiles,
  };
  validateDistinctAddresses(config, problems);
  // Consul CE's validateSegments: segments are an Enterprise feature.
  if ((s.segment ?? '') !== '' || (s.segmentCount ?? 0) > 0) problems.push(SEGMENTS_UNSUPPORTED);
  return config;
}

function buildBootstrap(s: ConfigSource, serverMode: boolean, devMode: boolean, problems: string[], warnings: string[]): { bootstrap: boolean; bootstrapExpect: number } {
  let bootstrap = s.bootstrap ?? false;
  let bootstrapExpect = s.bootstrapExpect ?? 0;
  if (bootstrapExpect === 1) {
    warnings.push('BootstrapExpect is set to 1; this is the same as Bootstrap mode.');
    bootstrap = true;
    bootstrapExpect = 0;
  }
  if (bootstrap && !serverMode) problems.push("'bootstrap = true' requires 'server = true'");
  if (bootstrapExpect < 0) problems.push(`bootstrap_expect cannot be ${bootstrapExpect}. Must be greater than or equal to zero`);
  if (bootstrapExpect > 0 && !serverMode) problems.push("'bootstrap_expect > 0' requires 'server = true'");
  if (bootstrapExpect > 0 && devMode) problems.push("'bootstrap_expect > 0' not allowed in dev mode");
  if (bootstrapExpect > 0 && bootstrap) problems.push("'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive");
  if (bootstrapExpect === 2) {
    warnings.push('bootstrap_expect = 2: A cluster with 2 servers will provide no failure tolerance. See https://www.consul.io/docs/internals/consensus.html#deployment-table');
  } else if (bootstrapExpect > 2 && bootstrapExpect % 2 === 0) {
    warnings.push('bootstrap_expect is even number: A cluster with an even number of servers does not achieve optimum fault tolerance. See https://www.consul.io/docs/internals/consensus.html#deployment-table');
  }
  if (bootstrap && !devMode) warnings.push('bootstrap = true: do not enable unless necessary');
  if (serverMode && !devMode && !bootstrap && bootstrapExpect > 1) warnings.push(`bootstrap_expect > 0: expecting ${bootstrapExpect} servers`);
  return { bootstrap, bootstrapExpect };
}

function buildPorts(source: NonNullable<ConfigSource['ports']>, serverMode: boolean, problems: string[]): PortsConfig {
  const port = (key: keyof PortsConfig, name: string, fallback: number): number => {
    const value = source[key] ?? fallback;
    if (value <= 0) return -1;
    if (value > 65535) problems.push(`ports.${name}: invalid port: ${value}`);
    return value;
  };
  if ((source.server ?? 1) <= 0) problems.push('server-port must be greater than zero');
  if ((source.serfLan ?? 1) <= 0) problems.push('serf-lan-port must be greater than zero');
  return {
    http: port('http', 'http', DEFAULT_PORTS.http),
    https: port('https', 'https', DEFAULT_PORTS.https),
    dns: port('dns', 'dns', DEFAULT_PORTS.dns),
    server: port('server', 'server', DEFAULT_PORTS.server),
    serfLan: port('serfLan', 'serf_lan', DEFAULT_PORTS.serfLan),
    serfWan: port('serfWan', 'serf_wan', DEFAULT_PORTS.serfWan),
    grpc: port('grpc', 'grpc', DEFAULT_PORTS.grpc),
    // Consul servers serve gRPC-TLS on 8503 unless told otherwise.
    grpcTls: port('grpcTls', 'grpc_tls', serverMode ? 8503 : DEFAULT_PORTS.grpcTls),
  };
}

type AddressFields = Pick<RuntimeConfig, 'bindAddr' | 'advertiseAddrLan' | 'advertiseAddrWan' | 'serfBindAddrLan' | 'serfBindAddrWan' | 'clientAddrs'>;

function buildAddresses(s: ConfigSource, host: ConfigHost, problems: string[]): AddressFields {
  const bindAddr = expandSingleAddress('bind_addr', s.bindAddr ?? '0.0.0.0', host, problems);
  if (bindAddr === undefined) problems.push('bind_addr cannot be empty');
  const bind = bindAddr ?? '0.0.0.0';
  let advertiseLan = s.advertiseAddr === undefined ? bind : expandSingleAddress('advertise_addr', s.advertiseAddr, host, problems) ?? bind;
  if (s.advertiseAddr !== undefined && ANY_ADDRESSES.has(s.advertiseAddr)) problems.push('Advertise address cannot be 0.0.0.0, :: or [::]');
  if (s.advertiseAddrWan !== undefined && ANY_ADDRESSES.has(s.advertiseAddrWan)) problems.push('Advertise WAN address cannot be 0.0.0.0, :: or [::]');
  if (ANY_ADDRESSES.has(advertiseLan)) advertiseLan = detectAddress(bind === '0.0.0.0' ? 4 : 6, host, problems);
  const advertiseWan = s.advertiseAddrWan === undefined ? advertiseLan : expandSingleAddress('advertise_addr_wan', s.advertiseAddrWan, host, problems) ?? advertiseLan;
  // Consul expands a template before splitting the list on whitespace.
  const clientText = s.clientAddr ?? '127.0.0.1';
  const clientParts = clientText.includes('{{') ? [clientText] : clientText.split(/\s+/).filter((item) => item !== '');
  const clientAddrs: string[] = [];
  for (const part of clientParts) {
    const address = expandSingleAddress('client_addr', part, host, problems);
    if (address !== undefined) clientAddrs.push(address);
  }
  return {
    bindAddr: bind,
    advertiseAddrLan: advertiseLan,
    advertiseAddrWan: advertiseWan,
    serfBindAddrLan: s.serfLan === undefined ? bind : expandSingleAddress('serf_lan', s.serfLan, host, problems) ?? bind,
    serfBindAddrWan: s.serfWan === undefined ? bind : expandSingleAddress('serf_wan', s.serfWan, host, problems) ?? bind,
    clientAddrs,
  };
}

/**
 * One IP address, or the single address a supported go-sockaddr template yields. Problems use
 * Consul's texts (`bind_addr: invalid ip address: foo`). Returns undefined when invalid.
 */
function expandSingleAddress(key: string, text: string, host: ConfigHost, problems: string[]): string | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  if (trimmed.startsWith('unix://')) {
    problems.push(`${key} cannot be a unix socket`);
    return undefined;
  }
  if (trimmed.includes('{{')) return expandTemplate(key, trimmed, host, problems);
  const bare = trimmed.startsWith('[') && trimmed.endsWith(']') ? trimmed.slice(1, -1) : trimmed;
  if (isIP(bare) === 0) {
    problems.push(`${key}: invalid ip address: ${trimmed}`);
    return undefined;
  }
  return bare;
}

function expandTemplate(key: string, template: string, host: ConfigHost, problems: string[]): string | undefined {
  const privateIp = /^\{\{\s*GetPrivateIP\s*\}\}$/.exec(template);
  if (privateIp) return detectAddress(4, host, problems);
  const interfaceIp = /^\{\{\s*GetInterfaceIP\s+"([^"]+)"\s*\}\}$/.exec(template);
  if (interfaceIp) {
    const name = interfaceIp[1] ?? '';
    const address = (host.networkInterfaces()[name] ?? []).find((info) => info.family === 'IPv4');
    if (address) return address.address;
    problems.push(`${key}: error parsing ${JSON.stringify(template)}: no IPv4 address on interface ${JSON.stringify(name)}`);
    return undefined;
  }
  problems.push(`${key}: error parsing ${JSON.stringify(template)}: only {{ GetPrivateIP }} and {{ GetInterfaceIP "name" }} templates are supported by consul-ts`);
  return undefined;
}

/**
 * The one private IPv4 (or public IPv6) address of this host, as Consul picks it to advertise
 * when binding to 0.0.0.0. Private means the RFC 6890 special-purpose ranges go-sockaddr uses.
 */
function detectAddress(family: 4 | 6, host: ConfigHost, problems: string[]): string {
  const kind = family === 4 ? 'private IPv4' : 'public IPv6';
  const candidates = Object.values(host.networkInterfaces())
    .flatMap((infos) => infos ?? [])
    .filter((info) => !info.internal && (family === 4 ? info.family === 'IPv4' && isPrivateIpv4(info.address) : info.family === 'IPv6' && !info.address.startsWith('fe80') && !info.address.startsWith('fd') && !info.address.startsWith('fc')))
    .map((info) => info.address);
  const unique = [...new Set(candidates)];
  if (unique.length === 0) problems.push(`No ${kind} address found`);
  if (unique.length > 1) problems.push(`Multiple ${kind} addresses found. Please configure one with 'bind' and/or 'advertise'.`);
  return unique[0] ?? (family === 4 ? '0.0.0.0' : '::');
}

const PRIVATE_IPV4_RANGES: readonly (readonly [string, number])[] = [
  ['10.0.0.0', 8], ['100.64.0.0', 10], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.0.2.0', 24],
  ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
];

function isPrivateIpv4(address: string): boolean {
  const value = ipv4ToInt(address);
  return PRIVATE_IPV4_RANGES.some(([base, bits]) => {
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return ((value & mask) >>> 0) === ((ipv4ToInt(base) & mask) >>> 0);
  });
}

function ipv4ToInt(address: string): number {
  return address.split('.').reduce((total, octet) => ((total << 8) >>> 0) + Number(octet), 0) >>> 0;
}

function buildDataDir(dataDir: string, devMode: boolean, host: ConfigHost, problems: string[]): string {
  if (dataDir === '') {
    if (!devMode) problems.push('data_dir cannot be empty');
    return '';
  }
  const stats = host.stat(dataDir);
  if (stats !== undefined && !stats.isDirectory()) problems.push(`data_dir ${JSON.stringify(dataDir)} is not a directory`);
  return dataDir;
}

function buildNodeName(configured: string | undefined, host: ConfigHost, problems: string[], warnings: string[]): string {
  const name = (configured ?? host.hostname()).trim();
  if (name === '') {
    problems.push('node_name cannot be empty');
    return name;
  }
  const quoted = JSON.stringify(name);
  if (/[^A-Za-z0-9-]/.test(name)) {
    warnings.push(`Node name ${quoted} will not be discoverable via DNS due to invalid characters. Valid characters include all alpha-numerics and dashes.`);
  } else if (name.length > 63) {
    warnings.push(`Node name ${quoted} will not be discoverable via DNS due to it being too long. Valid lengths are between 1 and 63 bytes.`);
  }
  return name;
}

function buildNodeId(nodeId: string, problems: string[]): string {
  if (nodeId === '') return '';
  if (nodeId.length !== 36) problems.push('failed to setup node ID: uuid string is wrong length');
  else if (!UUID_PATTERN.test(nodeId)) problems.push('failed to setup node ID: uuid is improperly formatted');
  return nodeId.toLowerCase();
}

function buildNodeMeta(meta: Record<string, string>, problems: string[]): Record<string, string> {
  const problem = validateMeta(meta);
  if (problem) problems.push(`node_meta invalid: ${problem}`);
  return meta;
}

function buildLogLevel(text: string, problems: string[]): LogLevel {
  const level = parseLogLevel(text);
  if (level === undefined) problems.push(`Invalid log level: ${JSON.stringify(text)}. Valid log levels are: [TRACE DEBUG INFO WARN ERR ERROR]`);
  return level ?? 'info';
}

function buildEncryptKey(key: string, problems: string[]): string {
  if (key === '') return '';
  const invalidAt = key.search(/[^A-Za-z0-9+/=]/);
  const padding = key.indexOf('=');
  if (invalidAt !== -1 || key.length % 4 !== 0 || (padding !== -1 && !/^=*$/.test(key.slice(padding)))) {
    const at = invalidAt !== -1 ? invalidAt : padding !== -1 && !/^=*$/.test(key.slice(padding)) ? padding : key.length - (key.length % 4);
    problems.push(`encrypt has invalid key: illegal base64 data at input byte ${at}`);
    return key;
  }
  const length = Buffer.from(key, 'base64').length;
  if (!GOSSIP_KEY_LENGTHS.includes(length)) problems.push(`encrypt has invalid key: key size must be 16, 24 or 32 bytes, got ${length}`);
  return key;
}

function buildUiContentPath(path: string, problems: string[]): string {
  if (!/^[A-Za-z0-9/_-]*$/.test(path)) problems.push(`ui-content-path can only contain alphanumeric, -, _, or /. received: ${JSON.stringify(path)}`);
  const trimmed = `/${path.replace(/^\/+|\/+$/g, '')}/`;
  return trimmed === '//' ? '/' : trimmed;
}

function buildDns(d: DnsSource, recursors: readonly string[], problems: string[]): DnsConfig {
  const strategy = d.recursorStrategy ?? 'sequential';
  if (strategy !== 'sequential' && strategy !== 'random') problems.push(`dns_config.recursor_strategy: invalid strategy: ${JSON.stringify(strategy)}`);
  const udpAnswerLimit = d.udpAnswerLimit ?? 3;
  const aRecordLimit = d.aRecordLimit ?? 0;
  if (udpAnswerLimit < 0) problems.push(`dns_config.udp_answer_limit cannot be ${udpAnswerLimit}. Must be greater than or equal to zero`);
  if (aRecordLimit < 0) problems.push(`dns_config.a_record_limit cannot be ${aRecordLimit}. Must be greater than or equal to zero`);
  const serviceTtlMs: Record<string, number> = {};
  for (const [name, nanos] of Object.entries(d.serviceTtl ?? {})) serviceTtlMs[name] = nanosToMillis(nanos);
  return {
    recursors: [...new Set(recursors.map((recursor) => buildRecursor(recursor, problems)))],
    recursorStrategy: strategy === 'random' ? 'random' : 'sequential',
    recursorTimeoutMs: positiveMillis('dns_config.recursor_timeout', d.recursorTimeout, 2_000, problems),
    allowStale: d.allowStale ?? true,
    maxStaleMs: nonNegativeMillis('dns_config.max_stale', d.maxStale, 87600 * 3600_000, problems),
    nodeTtlMs: nonNegativeMillis('dns_config.node_ttl', d.nodeTtl, 0, problems),
    serviceTtlMs,
    udpAnswerLimit,
    aRecordLimit,
    onlyPassing: d.onlyPassing ?? false,
    enableTruncate: d.enableTruncate ?? false,
    enableAdditionalNodeMetaTxt: d.enableAdditionalNodeMetaTxt ?? true,
    disableCompression: d.disableCompression ?? false,
    soa: { refresh: d.soa?.refresh ?? 3600, retry: d.soa?.retry ?? 600, expire: d.soa?.expire ?? 86400, minTtl: d.soa?.minTtl ?? 0 },
  };
}

/** A recursor as `ip:port`, with Consul's default port 53 added. */
function buildRecursor(text: string, problems: string[]): string {
  if (text.startsWith('unix://')) {
    problems.push(`DNS Recursors cannot be unix sockets: ${text}`);
    return text;
  }
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const [hostPart, portPart] = bracketed ? [bracketed[1] ?? '', bracketed[2]] : isIP(text) === 6 ? [text, undefined] : text.split(':', 2);
  const address = hostPart ?? '';
  if (ANY_ADDRESSES.has(address)) problems.push('DNS recursor address cannot be 0.0.0.0, :: or [::]');
  else if (isIP(address) === 0) problems.push(`Invalid DNS recursor address: ${JSON.stringify(text)}`);
  const port = portPart ?? '53';
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

function buildGossip(source: GossipSource, defaults: GossipConfig): GossipConfig {
  return {
    gossipIntervalMs: source.gossipInterval === undefined ? defaults.gossipIntervalMs : nanosToMillis(source.gossipInterval),
    gossipNodes: source.gossipNodes ?? defaults.gossipNodes,
    probeIntervalMs: source.probeInterval === undefined ? defaults.probeIntervalMs : nanosToMillis(source.probeInterval),
    probeTimeoutMs: source.probeTimeout === undefined ? defaults.probeTimeoutMs : nanosToMillis(source.probeTimeout),
    suspicionMult: source.suspicionMult ?? defaults.suspicionMult,
    retransmitMult: source.retransmitMult ?? defaults.retransmitMult,
  };
}

function buildRaft(s: ConfigSource, multiplier: number, devMode: boolean, problems: string[]): RaftConfig {
  const protocol = s.raftProtocol ?? 3;
  if (protocol !== 3) problems.push(`raft_protocol version ${protocol} is not supported by this version of Consul`);
  // hashicorp/raft's defaults scaled by raft_multiplier; -dev uses Consul's fast test timings.
  return {
    multiplier,
    electionTimeoutMs: devMode ? 52 : 1000 * multiplier,
    heartbeatTimeoutMs: devMode ? 35 : 1000 * multiplier,
    leaderLeaseTimeoutMs: devMode ? 20 : 500 * multiplier,
    snapshotThreshold: nonNegativeInt('raft_snapshot_threshold', s.raftSnapshotThreshold ?? 16384, problems),
    snapshotIntervalMs: positiveMillis('raft_snapshot_interval', s.raftSnapshotInterval, 30_000, problems),
    trailingLogs: nonNegativeInt('raft_trailing_logs', s.raftTrailingLogs ?? 10240, problems),
    protocol,
  };
}

function buildAutopilot(a: NonNullable<ConfigSource['autopilot']>, problems: string[]): AutopilotConfig {
  const maxTrailingLogs = a.maxTrailingLogs ?? 250;
  if (maxTrailingLogs < 0) problems.push(`autopilot.max_trailing_logs cannot be ${maxTrailingLogs}. Must be greater than or equal to zero`);
  return {
    cleanupDeadServers: a.cleanupDeadServers ?? true,
    lastContactThresholdMs: nonNegativeMillis('autopilot.last_contact_threshold', a.lastContactThreshold, 200, problems),
    maxTrailingLogs,
    minQuorum: nonNegativeInt('autopilot.min_quorum', a.minQuorum ?? 0, problems),
    serverStabilizationTimeMs: nonNegativeMillis('autopilot.server_stabilization_time', a.serverStabilizationTime, 10_000, problems),
  };
}

function buildLimits(l: Partial<LimitsConfig>, problems: string[]): LimitsConfig {
  return {
    httpMaxConnsPerClient: nonNegativeInt('limits.http_max_conns_per_client', l.httpMaxConnsPerClient ?? 200, problems),
    rpcMaxConnsPerClient: nonNegativeInt('limits.rpc_max_conns_per_client', l.rpcMaxConnsPerClient ?? 100, problems),
    kvMaxValueSize: positiveInt('limits.kv_max_value_size', l.kvMaxValueSize ?? 524288, problems),
    txnMaxReqLen: positiveInt('limits.txn_max_req_len', l.txnMaxReqLen ?? 524288, problems),
  };
}

function buildAclPolicy(policy: string, problems: string[]): 'allow' | 'deny' {
  if (policy === 'allow' || policy === 'deny') return policy;
  problems.push(`acl.default_policy: invalid policy ${JSON.stringify(policy)}, must be "allow" or "deny"`);
  return 'allow';
}

function buildCheckOutputMaxSize(size: number, problems: string[]): number {
  if (size < 1) problems.push('check_output_max_size must be positive, to discard check output use the discard_check_output flag');
  return size;
}

function buildServices(services: readonly ServiceDefinition[], problems: string[]): ServiceDefinition[] {
  for (const service of services) problems.push(...validateService(service));
  return [...services];
}

function buildChecks(checks: readonly CheckDefinition[], problems: string[]): CheckDefinition[] {
  for (const check of checks) {
    for (const problem of validateCheck(check)) problems.push(`check ${JSON.stringify(check.id || check.name)}: ${problem}`);
  }
  return [...checks];
}

/** Consul refuses two listeners on one address (`HTTP address 127.0.0.1:8600 already configured for DNS`). */
function validateDistinctAddresses(config: RuntimeConfig, problems: string[]): void {
  const seen = new Map<string, string>();
  const claim = (name: string, network: 'tcp' | 'udp', host: string, port: number): void => {
    if (port <= 0) return;
    const address = `${host}:${port}`;
    const key = `${network}://${address}`;
    const owner = seen.get(key);
    if (owner !== undefined && owner !== name) problems.push(`${name} address ${address} already configured for ${owner}`);
    else seen.set(key, name);
  };
  for (const client of config.clientAddrs) {
    claim('DNS', 'tcp', client, config.ports.dns);
    claim('DNS', 'udp', client, config.ports.dns);
    claim('HTTP', 'tcp', client, config.ports.http);
    claim('HTTPS', 'tcp', client, config.ports.https);
  }
  if (config.serverMode) claim('RPC Advertise', 'tcp', config.advertiseAddrLan, config.ports.server);
  claim('Serf Advertise LAN', 'tcp', config.advertiseAddrLan, config.ports.serfLan);
  claim('Serf Advertise LAN', 'udp', config.advertiseAddrLan, config.ports.serfLan);
  if (config.serverMode) {
    claim('Serf Advertise WAN', 'tcp', config.advertiseAddrWan, config.ports.serfWan);
    claim('Serf Advertise WAN', 'udp', config.advertiseAddrWan, config.ports.serfWan);
  }
}

function validateBasicName(key: string, name: string, isEmptyAllowed: boolean, problems: string[]): void {
  if (name === '') {
    if (!isEmptyAllowed) problems.push(`${key} cannot be empty`);
    return;
  }
  if (!BASIC_NAME_PATTERN.test(name)) problems.push(`${key} can only contain lowercase alphanumeric, - or _ characters. received: ${JSON.stringify(name)}`);
}

/** Domains are kept fully qualified and lower case ("consul."), as DNS compares them. */
function normalizeDomain(domain: string): string {
  const lower = domain.toLowerCase();
  return lower.endsWith('.') ? lower : `${lower}.`;
}

function reconnectTimeout(key: string, nanos: number | undefined, problems: string[]): number {
  const ms = nonNegativeMillis(key, nanos, 72 * 3600_000, problems);
  // Consul raises values under 8 hours to 8 hours: reaping sooner could drop a member that is
  // only partitioned.
  return nanos === undefined ? ms : Math.max(ms, 8 * 3600_000);
}

function positiveMillis(key: string, nanos: number | undefined, fallbackMs: number, problems: string[]): number {
  if (nanos === undefined) return fallbackMs;
  if (nanos <= 0) problems.push(`${key} cannot be ${nanos === 0 ? '0s' : 'negative'}. Must be positive`);
  return nanosToMillis(nanos);
}

function nonNegativeMillis(key: string, nanos: number | undefined, fallbackMs: number, problems: string[]): number {
  if (nanos === undefined) return fallbackMs;
  if (nanos < 0) problems.push(`${key} cannot be negative`);
  return nanosToMillis(nanos);
}

function positiveInt(key: string, value: number, problems: string[]): number {
  if (value <= 0) problems.push(`${key} cannot be ${value}. Must be greater than zero`);
  return value;
}

function nonNegativeInt(key: string, value: number, problems: string[]): number {
  if (value < 0) problems.push(`${key} cannot be ${value}. Must be greater than or equal to zero`);
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
