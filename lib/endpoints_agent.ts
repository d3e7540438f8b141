// The agent endpoints that need no local service state: members, host, version, metrics.
//
// GET /v1/agent/members lists gossip members (LAN, or WAN with ?wan=<non-empty>), GET
// /v1/agent/host describes the machine as Consul's debug.CollectHostInfo does (gopsutil's
// shapes: Memory, CPU, Host, Disk, CollectionTime in ns, Errors), GET /v1/agent/version gives the
// build, and GET /v1/agent/metrics the telemetry (lib/metrics.ts) as JSON or, with
// ?format=prometheus or an OpenMetrics Accept header, as Prometheus text.
//
// Until gossip exists the member list is whatever `members()` returns; the agent passes its own
// member (localMember below, which lib/agent.ts's member() should call so both stay one shape).
//
// Not here: ACL enforcement (agent:read / operator:read), ?filter= on members (no bexpr
// evaluator yet), partitions, the metrics stream.
//
// Reference: Consul agent/agent_endpoint.go (AgentMembers, AgentHost, AgentVersion,
// AgentMetrics, acceptsOpenMetricsMimeType), agent/debug/host.go, version/version.go
// (GetBuildInfo), agent/consul/server_ce.go and client.go (LANMembers); gopsutil v3 JSON tags.

import { readdirSync, readFileSync, statfsSync } from 'node:fs';
import { cpus, freemem, hostname, machine, platform, release, totalmem, uptime } from 'node:os';
import { isIPv4, isIPv6 } from 'node:net';
import type { RuntimeConfig } from './config.js';
import { HttpError, type HttpRequest, type HttpResponse, type HttpRoute } from './http.js';
import { PROMETHEUS_CONTENT_TYPE, type Metrics } from './metrics.js';
import { CONSUL_VERSION, RELEASE_DATE, REVISION } from './version.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** A gossip member as /v1/agent/members and agent/self show it (serf.Member). */
export interface AgentMember {
  readonly Name: string;
  readonly Addr: string;
  readonly Port: number;
  readonly Tags: Readonly<Record<string, string>>;
  /** serf.MemberStatus: 0 none, 1 alive, 2 leaving, 3 left, 4 failed. */
  readonly Status: number;
  readonly ProtocolMin: number;
  readonly ProtocolMax: number;
  readonly ProtocolCur: number;
  readonly DelegateMin: number;
  readonly DelegateMax: number;
  readonly DelegateCur: number;
}

export interface AgentEndpointDeps {
  readonly config: RuntimeConfig;
  readonly nodeId: string;
  readonly metrics: Metrics;
  /** The LAN members this agent knows (itself alone until gossip exists). */
  members(): readonly AgentMember[];
  /** The WAN members (servers only); a client agent has none and Consul answers null. */
  wanMembers?(): readonly AgentMember[];
  /** Collects /v1/agent/host; injected in tests. Defaults to collectHostInfo. */
  hostInfo?(): HostInfo;
}

/** /v1/agent/host (debug.HostInfo). Errors is null when every collector succeeded. */
export interface HostInfo {
  readonly Memory: Record<string, number> | null;
  readonly CPU: readonly Record<string, unknown>[] | null;
  readonly Host: Record<string, unknown> | null;
  readonly Disk: Record<string, unknown> | null;
  readonly CollectionTime: number;
  /** Go marshals each error value as {} (no exported fields); we do the same. */
  readonly Errors: readonly Record<string, never>[] | null;
}

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** serf.StatusAlive. */
export const MEMBER_STATUS_ALIVE = 1;
/** The gossip protocol versions Consul advertises (serf/memberlist). */
export const MEMBER_PROTOCOL = { ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2, DelegateMin: 2, DelegateMax: 5, DelegateCur: 4 } as const;
/** api.AllSegments. */
export const ALL_SEGMENTS = '_all';
/** The filesystem /v1/agent/host reports (debug.DiskUsagePath). */
export const HOST_DISK_PATH = '/';
/** Bytes read from one /proc or /etc file for /v1/agent/host. */
const HOST_FILE_BYTES_MAX = 1024 * 1024;

export const PROMETHEUS_DISABLED_TEXT = 'Prometheus is not enabled since its retention time is not positive';
export const SEGMENT_WITH_WAN_TEXT = 'Cannot provide a segment with wan=true';
/** structs.ErrSegmentsNotSupported, what a CE server answers for ?segment=<name>. */
export const SEGMENTS_NOT_SUPPORTED_TEXT = 'Network segments are not supported in this version of Consul';

// ---------------------------------------------------------------------------------------------
// Exported API

/** The routes this module serves. */
export function agentRoutes(deps: AgentEndpointDeps): HttpRoute[] {
  const headers = { 'X-Consul-Default-ACL-Policy': deps.config.aclDefaultPolicy };
  return [
    { path: '/v1/agent/members', methods: ['GET'], handler: (request) => ({ json: membersFor(deps, request), headers }) },
    { path: '/v1/agent/host', methods: ['GET'], handler: () => ({ json: (deps.hostInfo ?? collectHostInfo)(), headers }) },
    { path: '/v1/agent/version', methods: ['GET'], handler: () => ({ json: buildInfo(), headers }) },
    { path: '/v1/agent/metrics', methods: ['GET'], handler: (request) => metricsResponse(deps.metrics, request, headers) },
  ];
}

/**
 * This agent as a gossip member; Status is alive, since an agent is alive to itself. `memberTags`
 * is lib/agent.ts's (passed in so this module does not import the agent).
 */
export function localMember(config: RuntimeConfig, tags: Readonly<Record<string, string>>): AgentMember {
  return { Name: config.nodeName, Addr: config.advertiseAddrLan, Port: config.ports.serfLan, Tags: tags, Status: MEMBER_STATUS_ALIVE, ...MEMBER_PROTOCOL };
}

/** The same member as the WAN pool sees it: named `<node>.<dc>`, on the WAN address and port. */
export function wanMember(config: RuntimeConfig, lan: AgentMember): AgentMember {
  return { ...lan, Name: `${config.nodeName}.${config.datacenter}`, Addr: config.advertiseAddrWan, Port: config.ports.serfWan };
}

/** GET /v1/agent/version (version.GetBuildInfo). FIPS is "" outside FIPS builds. */
export function buildInfo(): { SHA: string; BuildDate: string; HumanVersion: string; FIPS: string } {
  return { SHA: REVISION, BuildDate: RELEASE_DATE.toISOString().replace('.000Z', 'Z'), HumanVersion: CONSUL_VERSION, FIPS: '' };
}

/**
 * The node's tagged addresses as Consul's runtime config derives them: configured ones, plus
 * lan/wan and their _ipv4/_ipv6 forms from the advertise addresses. Keys in sorted order, as Go
 * encodes maps.
 */
export function nodeTaggedAddresses(config: RuntimeConfig): Record<string, string> {
  const tagged: Record<string, string> = { ...config.taggedAddresses };
  for (const [tag, address] of [['lan', config.advertiseAddrLan], ['wan', config.advertiseAddrWan]] as const) {
    tagged[tag] ??= address;
    if (isIPv4(address)) tagged[`${tag}_ipv4`] ??= address;
    else if (isIPv6(address)) tagged[`${tag}_ipv6`] ??= address;
  }
  return Object.fromEntries(Object.entries(tagged).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Collects /v1/agent/host from node:os, /proc and statfs; a failing collector adds an error. */
export function collectHostInfo(nowNs: () => number = () => Date.now() * 1e6): HostInfo {
  const errors: Record<string, never>[] = [];
  const attempt = <T>(collect: () => T): T | null => {
    try {
      return collect();
    } catch {
      // Consul reports each failed collector as one (empty) error and leaves its field null.
      errors.push({});
      return null;
    }
  };
  return {
    Memory: attempt(memoryStat),
    CPU: attempt(cpuInfo),
    Host: attempt(hostStat),
    Disk: attempt(() => diskUsage(HOST_DISK_PATH)),
    CollectionTime: nowNs(),
    Errors: errors.length === 0 ? null : errors,
  };
}

// ---------------------------------------------------------------------------------------------
// Private helpers: routes

function membersFor(deps: AgentEndpointDeps, request: HttpRequest): readonly AgentMember[] | null {
  // Consul tests `Get("wan") != ""`: a bare ?wan selects the LAN.
  const isWan = (request.query.get('wan') ?? '') !== '';
  const segment = request.query.get('segment') ?? '';
  if (isWan) {
    if (segment !== '' && segment !== ALL_SEGMENTS) throw new HttpError(400, SEGMENT_WITH_WAN_TEXT);
    if (!deps.config.serverMode) return null;
    return deps.wanMembers?.() ?? deps.members().map((member) => wanMember(deps.config, member));
  }
  if (segment !== '' && segment !== ALL_SEGMENTS) {
    // A CE server refuses every named segment; a client knows only its own, the default "".
    throw new HttpError(500, deps.config.serverMode ? SEGMENTS_NOT_SUPPORTED_TEXT : `segment ${goQuote(segment)} not found`);
  }
  return deps.members();
}

function metricsResponse(metrics: Metrics, request: HttpRequest, headers: Readonly<Record<string, string>>): HttpResponse {
  if (!wantsPrometheus(request)) return { json: metrics.displayMetrics(), headers };
  if (!metrics.isPrometheusEnabled) throw new HttpError(415, PROMETHEUS_DISABLED_TEXT);
  return { bytes: Buffer.from(metrics.prometheusText(), 'utf8'), contentType: PROMETHEUS_CONTENT_TYPE, headers };
}

/** ?format=prometheus, or an Accept header naming OpenMetrics or text/plain;version=0.4.0. */
function wantsPrometheus(request: HttpRequest): boolean {
  if (request.query.get('format') === 'prometheus') return true;
  const acceptText = request.header('accept') ?? '';
  return acceptText.split(',').some((mediaRange) => {
    const [type = '', firstParameter] = mediaRange.split(';');
    const mime = type.trim().toLowerCase();
    return mime === 'application/openmetrics-text' || (mime === 'text/plain' && firstParameter?.trim() === 'version=0.4.0');
  });
}

/** Go's %q for the printable strings members' errors quote. */
function goQuote(text: string): string {
  return JSON.stringify(text);
}

// ---------------------------------------------------------------------------------------------
// Private helpers: host information (gopsutil v3 field names and units)

/** mem.VirtualMemoryStat: bytes, from /proc/meminfo on Linux, node:os elsewhere. */
function memoryStat(): Record<string, number> {
  const info = platform() === 'linux' ? parseMeminfo(readSmall('/proc/meminfo')) : undefined;
  if (info === undefined) {
    const total = totalmem();
    const free = freemem();
    return { total, available: free, used: total - free, usedPercent: percent(total - free, total), free };
  }
  const kb = (field: string): number => (info.get(field) ?? 0) * 1024;
  const total = kb('MemTotal');
  const free = kb('MemFree');
  const buffers = kb('Buffers');
  // gopsutil counts reclaimable slab as cache, and derives used from the rest.
  const cached = kb('Cached') + kb('SReclaimable');
  const available = info.has('MemAvailable') ? kb('MemAvailable') : free + buffers + cached;
  const used = total - free - buffers - cached;
  return {
    total, available, used, usedPercent: percent(used, total), free,
    active: kb('Active'), inactive: kb('Inactive'), wired: 0, laundry: 0, buffers, cached,
    writeBack: kb('Writeback'), dirty: kb('Dirty'), writeBackTmp: kb('WritebackTmp'), shared: kb('Shmem'),
    slab: kb('Slab'), sreclaimable: kb('SReclaimable'), sunreclaim: kb('SUnreclaim'), pageTables: kb('PageTables'),
    swapCached: kb('SwapCached'), commitLimit: kb('CommitLimit'), committedAS: kb('Committed_AS'),
    highTotal: kb('HighTotal'), highFree: kb('HighFree'), lowTotal: kb('LowTotal'), lowFree: kb('LowFree'),
    swapTotal: kb('SwapTotal'), swapFree: kb('SwapFree'), mapped: kb('Mapped'),
    vmallocTotal: kb('VmallocTotal'), vmallocUsed: kb('VmallocUsed'), vmallocChunk: kb('VmallocChunk'),
    hugePagesTotal: info.get('HugePages_Total') ?? 0, hugePagesFree: info.get('HugePages_Free') ?? 0,
    hugePagesRsvd: info.get('HugePages_Rsvd') ?? 0, hugePagesSurp: info.get('HugePages_Surp') ?? 0,
    hugePageSize: kb('Hugepagesize'),
  };
}

function parseMeminfo(text: string | undefined): Map<string, number> | undefined {
  if (text === undefined) return undefined;
  const fields = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z0-9_()]+):\s+(\d+)/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) fields.set(match[1], Number(match[2]));
  }
  return fields;
}

/** cpu.InfoStat per logical CPU: /proc/cpuinfo on Linux, node:os elsewhere. */
function cpuInfo(): Record<string, unknown>[] {
  const processors = platform() === 'linux' ? parseCpuinfo(readSmall('/proc/cpuinfo')) : [];
  if (processors.length > 0) return processors.map((fields, index) => cpuFromProc(fields, index));
  return cpus().map((cpu, index) => ({
    cpu: index, vendorId: '', family: '', model: '', stepping: 0, physicalId: '', coreId: '', cores: 1,
    modelName: cpu.model.trim(), mhz: cpu.speed, cacheSize: 0, flags: [], microcode: '',
  }));
}

function parseCpuinfo(text: string | undefined): Map<string, string>[] {
  if (text === undefined) return [];
  const processors: Map<string, string>[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of block.split('\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    if (fields.has('processor')) processors.push(fields);
  }
  return processors;
}

function cpuFromProc(fields: Map<string, string>, index: number): Record<string, unknown> {
  const text = (name: string): string => fields.get(name) ?? '';
  const integer = (name: string): number => Number.parseInt(text(name), 10) || 0;
  return {
    cpu: integer('processor') || index,
    vendorId: text('vendor_id'),
    family: text('cpu family'),
    model: text('model'),
    stepping: integer('stepping'),
    physicalId: text('physical id'),
    coreId: text('core id'),
    cores: 1,
    modelName: text('model name'),
    mhz: Number.parseFloat(text('cpu MHz')) || 0,
    cacheSize: integer('cache size'),
    flags: text('flags') === '' ? [] : text('flags').split(/\s+/),
    microcode: text('microcode'),
  };
}

/** host.InfoStat. Platform fields come from /etc/os-release where it exists. */
function hostStat(): Record<string, unknown> {
  const uptimeSeconds = Math.floor(uptime());
  const osRelease = parseOsRelease(readSmall('/etc/os-release'));
  return {
    hostname: hostname(),
    uptime: uptimeSeconds,
    bootTime: Math.floor(Date.now() / 1000) - uptimeSeconds,
    procs: countProcesses(),
    os: platform(),
    platform: osRelease.get('ID') ?? '',
    platformFamily: platformFamily(osRelease),
    platformVersion: osRelease.get('VERSION_ID') ?? '',
    kernelVersion: release(),
    kernelArch: machine(),
    virtualizationSystem: '',
    virtualizationRole: '',
    hostId: hostId(),
  };
}

function parseOsRelease(text: string | undefined): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of (text ?? '').split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) fields.set(match[1], match[2].replace(/^"(.*)"$/, '$1'));
  }
  return fields;
}

/** gopsutil's families: the distribution's ID_LIKE base where it names one Consul recognises. */
function platformFamily(osRelease: Map<string, string>): string {
  const ids = `${osRelease.get('ID') ?? ''} ${osRelease.get('ID_LIKE') ?? ''}`.split(/\s+/);
  for (const family of ['debian', 'rhel', 'fedora', 'suse', 'arch', 'alpine', 'gentoo']) {
    if (ids.includes(family)) return family;
  }
  return ids.includes('ubuntu') ? 'debian' : (osRelease.get('ID') ?? '');
}

function countProcesses(): number {
  if (platform() !== 'linux') return 0;
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).length;
}

/** The machine's ID: the DMI product UUID when readable, else /etc/machine-id as a UUID. */
function hostId(): string {
  const product = readSmall('/sys/class/dmi/id/product_uuid')?.trim();
  if (product) return product.toLowerCase();
  const machineId = readSmall('/etc/machine-id')?.trim() ?? '';
  if (!/^[0-9a-f]{32}$/i.test(machineId)) return '';
  return `${machineId.slice(0, 8)}-${machineId.slice(8, 12)}-${machineId.slice(12, 16)}-${machineId.slice(16, 20)}-${machineId.slice(20)}`.toLowerCase();
}

/** disk.UsageStat for the filesystem holding `path`. */
function diskUsage(path: string): Record<string, unknown> {
  const stats = statfsSync(path);
  const total = stats.blocks * stats.bsize;
  const free = stats.bavail * stats.bsize;
  const used = (stats.blocks - stats.bfree) * stats.bsize;
  const inodesUsed = stats.files - stats.ffree;
  return {
    path,
    fstype: FILESYSTEM_TYPES.get(stats.type) ?? '',
    total,
    free,
    used,
    usedPercent: percent(used, used + free),
    inodesTotal: stats.files,
    inodesUsed,
    inodesFree: stats.ffree,
    inodesUsedPercent: percent(inodesUsed, stats.files),
  };
}

/** statfs f_type magic numbers to gopsutil's names, for the filesystems servers run on. */
const FILESYSTEM_TYPES: ReadonlyMap<number, string> = new Map([
  [0xef53, 'ext2/ext3'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x794c7630, 'overlayfs'],
  [0x01021994, 'tmpfs'],
  [0x6969, 'nfs'],
  [0x2fc12fc1, 'zfs'],
  [0x65735546, 'fuse'],
  [0x4d44, 'msdos'],
]);

function percent(part: number, whole: number): number {
  return whole === 0 ? 0 : (part / whole) * 100;
}

/** A small system file, or undefined when it does not exist or is unreadable. */
function readSmall(path: string): string | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    return text.length > HOST_FILE_BYTES_MAX ? text.slice(0, HOST_FILE_BYTES_MAX) : text;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'ENOTDIR') return undefined;
    throw error;
  }
}
