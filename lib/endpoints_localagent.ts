// The agent routes over its own services and checks (spec §3.1): list, read, register,
// deregister, maintenance, TTL updates and the local health views. They act on lib/localagent.ts
// and answer from the local state, never from the catalog; a change is synced to the catalog
// before the answer, as Consul's register endpoints do (a failed sync is only logged: the
// anti-entropy loop retries it).
//
// Texts and codes are Consul's (agent/agent_endpoint.go): 400 `Missing service name`,
// `Invalid service address`, `Invalid Weights: ...`, `Missing check name`, `Bad check status`,
// `Invalid check status: 'x'`, `Missing value for enable`, `Invalid value for enable: "x"`;
// 404 for unknown IDs; /v1/agent/health/service/... answer 200/429/503 by aggregate status.
//
// ?filter on /v1/agent/services and /v1/agent/checks checks selectors against structs.NodeService
// and structs.HealthCheck (Consul's api.AgentService adds a few fields, such as Datacenter, that
// a filter here cannot name yet).
//
// Not here yet: ?format=text's Accept-header form, tokens and ACLs.
//
// References: Consul agent/agent_endpoint.go (AgentServices, AgentService, AgentChecks,
// AgentRegisterService, AgentDeregisterService, AgentServiceMaintenance, AgentNodeMaintenance,
// AgentRegisterCheck, AgentDeregisterCheck, AgentCheckPass/Warn/Fail/Update,
// AgentHealthServiceByID/Name), api/agent.go (AgentService, AgentServiceChecksInfo).

import { createHash } from 'node:crypto';
import { compileFilter, FilterError, filterMap } from './bexpr.js';
import { GO_HEALTH_CHECK, GO_NODE_SERVICE, type GoType } from './bexprtypes.js';
import type { LocalCheck, LocalService, LocalState } from './antientropy.js';
import { aggregateStatus } from './catalog.js';
import type { RuntimeConfig } from './config.js';
import { ObjectReader } from './decode.js';
import { readCheckDefinition, readServiceDefinition, validateMeta, validateWeights, type CheckStatus } from './definitions.js';
import { decodeJsonBody } from './endpoints.js';
import { renderCheck as renderCatalogCheck } from './endpoints_catalog.js';
import { goParseBool } from './endpoints_health.js';
import { JITTER_FRACTION, parseWait, TIMER_MS_MAX } from './query.js';
import { HttpError, type HttpRequest, type HttpResponse, type HttpRoute } from './http.js';
import { LocalAgentError, type LocalAgent } from './localagent.js';
import type { Logger } from './log.js';

// ---------------------------------------------------------------------------------------------
// Exported types

export interface LocalAgentEndpointDeps {
  readonly config: RuntimeConfig;
  readonly agent: LocalAgent;
  readonly state: LocalState;
  /** Pushes local changes to the catalog now; resolves when done (or failed: the error is logged). */
  syncNow(): Promise<void>;
  /** Resolves at the next change of the local state (a service or check added, changed or removed). */
  nextChange(): Promise<void>;
  readonly logger: Logger;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Largest register body (Consul reads it whole; a service with its checks is small). */
export const AGENT_REGISTER_BODY_BYTES_MAX = 512 * 1024;

// ---------------------------------------------------------------------------------------------
// Exported API

export function localAgentRoutes(deps: LocalAgentEndpointDeps): HttpRoute[] {
  const change = (run: (request: HttpRequest) => void) => async (request: HttpRequest): Promise<HttpResponse> => {
    try {
      run(request);
    } catch (error) {
      if (error instanceof LocalAgentError) throw new HttpError(error.status, error.message);
      throw error;
    }
    await deps.syncNow();
    return { text: '' };
  };
  const ttl = (status: CheckStatus) => change((request) => deps.agent.updateTtl(request.param, status, request.query.get('note') ?? ''));
  return [
    { path: '/v1/agent/services', methods: ['GET'], handler: (request) => ({ json: filtered(request, GO_NODE_SERVICE, Object.fromEntries(deps.state.services().map((service) => [service.ID, renderService(deps.config, service)]))) }) },
    { path: '/v1/agent/service/', methods: ['GET'], handler: (request) => serviceById(deps, request) },
    { path: '/v1/agent/checks', methods: ['GET'], handler: (request) => ({ json: filtered(request, GO_HEALTH_CHECK, Object.fromEntries(deps.state.checks().map((check) => [check.CheckID, renderCheck(deps.config, check)]))) }) },
    { path: '/v1/agent/service/register', methods: ['PUT'], bodyBytesMax: AGENT_REGISTER_BODY_BYTES_MAX, handler: change((request) => registerService(deps, request)) },
    { path: '/v1/agent/service/deregister/', methods: ['PUT'], handler: change((request) => deps.agent.deregisterService(request.param)) },
    { path: '/v1/agent/service/maintenance/', methods: ['PUT'], handler: change((request) => deps.agent.serviceMaintenance(requireServiceId(request), parseEnable(request), request.query.get('reason') ?? '')) },
    { path: '/v1/agent/maintenance', methods: ['PUT'], handler: change((request) => deps.agent.nodeMaintenance(parseEnable(request), request.query.get('reason') ?? '')) },
    { path: '/v1/agent/check/register', methods: ['PUT'], bodyBytesMax: AGENT_REGISTER_BODY_BYTES_MAX, handler: change((request) => registerCheck(deps, request)) },
    { path: '/v1/agent/check/deregister/', methods: ['PUT'], handler: change((request) => deps.agent.deregisterCheck(request.param)) },
    { path: '/v1/agent/check/pass/', methods: ['PUT'], handler: ttl('passing') },
    { path: '/v1/agent/check/warn/', methods: ['PUT'], handler: ttl('warning') },
    { path: '/v1/agent/check/fail/', methods: ['PUT'], handler: ttl('critical') },
    { path: '/v1/agent/check/update/', methods: ['PUT'], handler: change((request) => updateCheck(deps, request)) },
    { path: '/v1/agent/health/service/name/', methods: ['GET'], handler: (request) => healthByName(deps, request) },
    { path: '/v1/agent/health/service/id/', methods: ['GET'], handler: (request) => healthById(deps, request) },
  ];
}

// ---------------------------------------------------------------------------------------------
// Private helpers: handlers

/** The registration body as a reader; `finish` throws Consul's decode error for the first problem the read found. */
function bodyReader(request: HttpRequest): { fields: Record<string, unknown>; reader: ObjectReader; finish: () => void } {
  const body = decodeJsonBody(request) ?? {};
  const problems: string[] = [];
  const reader = ObjectReader.of(body, '', problems, unknownFieldMessage);
  if (!reader) throw new HttpError(400, `Request decode failed: ${problems[0] ?? 'not an object'}`);
  const finish = (): void => {
    if (problems.length > 0) throw new HttpError(400, `Request decode failed: ${problems[0]}`);
  };
  return { fields: body as Record<string, unknown>, reader, finish };
}

function registerService(deps: LocalAgentEndpointDeps, request: HttpRequest): void {
  const { reader, finish } = bodyReader(request);
  const definition = readServiceDefinition(reader);
  finish();
  if (definition.name === '') throw new HttpError(400, 'Missing service name');
  const metaProblem = validateMeta(definition.meta);
  if (metaProblem) throw new HttpError(400, `Invalid Service Meta: ${metaProblem}`);
  const weightsProblem = validateWeights(definition.weights);
  if (weightsProblem) throw new HttpError(400, `Invalid Weights: ${weightsProblem}`);
  if (definition.address === '0.0.0.0' || definition.address === '::' || definition.address === '[::]') throw new HttpError(400, 'Invalid service address');
  const replace = request.query.has('replace-existing-checks') && goParseBool(request.query.get('replace-existing-checks') || 'true') !== false;
  deps.agent.registerService(definition, 'remote', replace);
}

function registerCheck(deps: LocalAgentEndpointDeps, request: HttpRequest): void {
  const { fields, reader, finish } = bodyReader(request);
  const statusKey = Object.keys(fields).find((key) => key.toLowerCase() === 'status');
  const status = statusKey === undefined ? '' : fields[statusKey];
  if (status !== '' && status !== 'passing' && status !== 'warning' && status !== 'critical') throw new HttpError(400, 'Bad check status');
  const definition = readCheckDefinition(reader);
  finish();
  deps.agent.registerCheck(definition, 'remote');
}

function updateCheck(deps: LocalAgentEndpointDeps, request: HttpRequest): void {
  const body = decodeJsonBody(request);
  const fields = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  const status = String(fields['Status'] ?? fields['status'] ?? '');
  if (status !== 'passing' && status !== 'warning' && status !== 'critical') throw new HttpError(400, `Invalid check status: '${status}'`);
  deps.agent.updateTtl(request.param, status, String(fields['Output'] ?? fields['output'] ?? ''));
}

/** encoding/json with DisallowUnknownFields, as Consul decodes agent registrations. */
function unknownFieldMessage(path: string): string {
  return `json: unknown field ${JSON.stringify(path.split('.').pop() ?? path)}`;
}

/**
 * AgentService, with hash blocking: given ?hash equal to the current ContentHash, the answer
 * waits (?wait, 5 minutes by default, at most 10, plus Consul's 1/16 jitter) until the service
 * changes or goes away, or the wait ends; then it answers with whatever is current.
 */
async function serviceById(deps: LocalAgentEndpointDeps, request: HttpRequest): Promise<HttpResponse> {
  const id = request.param;
  const hash = request.query.get('hash') ?? '';
  const { waitMs } = parseWait(request.query);
  const blockMs = Math.min(waitMs > 0 ? waitMs : deps.config.defaultQueryTimeMs, deps.config.maxQueryTimeMs);
  const giveUpAt = performance.now() + blockMs + Math.random() * (blockMs / JITTER_FRACTION);
  for (;;) {
    const current = renderedService(deps, id);
    if (hash === '' || current === undefined || current.contentHash !== hash || performance.now() >= giveUpAt || request.signal.aborted) {
      if (current === undefined) throw new HttpError(404, `unknown service ID: ${id}`);
      return { json: { ...current.json, ContentHash: current.contentHash }, headers: { 'X-Consul-ContentHash': current.contentHash } };
    }
    await untilChangeOrTimeout(deps, giveUpAt - performance.now(), request);
  }
}

function renderedService(deps: LocalAgentEndpointDeps, id: string): { json: Record<string, unknown>; contentHash: string } | undefined {
  const service = deps.state.service(id);
  if (service === undefined) return undefined;
  const json = renderService(deps.config, service);
  return { json, contentHash: createHash('sha256').update(JSON.stringify(json)).digest('hex').slice(0, 16) };
}

function untilChangeOrTimeout(deps: LocalAgentEndpointDeps, ms: number, request: HttpRequest): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      request.signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, Math.min(ms, TIMER_MS_MAX)));
    request.signal.addEventListener('abort', done, { once: true });
    void deps.nextChange().then(done);
  });
}

/** AgentHealthServiceByName: every instance of the name, the worst aggregate status decides the code. */
function healthByName(deps: LocalAgentEndpointDeps, request: HttpRequest): HttpResponse {
  const name = request.param;
  const entries = deps.state.services().filter((service) => service.Service === name).map((service) => healthEntry(deps, service));
  if (entries.length === 0) return healthReply(request, 404, 'critical', `ServiceName ${name} Not Found`, []);
  const worst = entries.reduce((status, entry) => ((STATUS_RANK[entry.AggregatedStatus] ?? 2) > (STATUS_RANK[status] ?? 2) ? entry.AggregatedStatus : status), 'passing');
  return healthReply(request, statusCode(worst), worst, '', entries);
}

function healthById(deps: LocalAgentEndpointDeps, request: HttpRequest): HttpResponse {
  const service = deps.state.service(request.param);
  if (service === undefined) return healthReply(request, 404, 'critical', `ServiceId ${request.param} not found`, { AggregatedStatus: 'critical', Service: null, Checks: null });
  const entry = healthEntry(deps, service);
  return healthReply(request, statusCode(entry.AggregatedStatus), entry.AggregatedStatus, '', entry);
}

// ---------------------------------------------------------------------------------------------
// Private helpers: rendering and parsing

const STATUS_RANK: Readonly<Record<string, number>> = { passing: 0, warning: 1, critical: 2, maintenance: 3 };

function statusCode(status: string): number {
  if (status === 'passing') return 200;
  if (status === 'warning') return 429;
  return 503;
}

function healthEntry(deps: LocalAgentEndpointDeps, service: LocalService): { AggregatedStatus: string; Service: unknown; Checks: unknown[] } {
  const checks = deps.state.checks().filter((check) => check.ServiceID === service.ID || check.ServiceID === '');
  return { AggregatedStatus: aggregateStatus(checks) || 'critical', Service: renderService(deps.config, service), Checks: checks.map((check) => renderCheck(deps.config, check)) };
}

/** The body, or with ?format=text just the status word; the reason also in X-Consul-Reason. */
function healthReply(request: HttpRequest, code: number, status: string, reason: string, json: unknown): HttpResponse {
  const headers = reason === '' ? undefined : { 'X-Consul-Reason': reason };
  if (request.query.get('format') === 'text') return { status: code, text: reason === '' ? status : reason, ...(headers ? { headers } : {}) };
  return { status: code, json, ...(headers ? { headers } : {}) };
}

/** api.AgentService: Tags and Meta never null, optional fields omitted when empty. */
function renderService(config: RuntimeConfig, service: LocalService): Record<string, unknown> {
  return {
    ...(service.Kind !== '' ? { Kind: service.Kind } : {}),
    ID: service.ID,
    Service: service.Service,
    Tags: [...service.Tags],
    Meta: { ...service.Meta },
    Port: service.Port,
    Address: service.Address,
    ...(service.SocketPath !== '' ? { SocketPath: service.SocketPath } : {}),
    ...(Object.keys(service.TaggedAddresses).length > 0 ? { TaggedAddresses: service.TaggedAddresses } : {}),
    Weights: service.Weights,
    EnableTagOverride: service.EnableTagOverride,
    Datacenter: config.datacenter,
  };
}

/** structs.HealthCheck as the agent shows it: the catalog's rendering, with no Raft indexes yet. */
function renderCheck(config: RuntimeConfig, check: LocalCheck): Record<string, unknown> {
  return renderCatalogCheck({ ...check, Node: config.nodeName, ExposedPort: 0, CreateIndex: 0, ModifyIndex: 0 });
}

/** ?filter over a map's values (go-bexpr applies a filter to a map's elements); Consul's 500 with go-bexpr's text when it does not compile. */
function filtered<T>(request: HttpRequest, type: GoType, items: Record<string, T>): Record<string, T> {
  const expression = request.query.get('filter') ?? '';
  if (expression === '') return items;
  try {
    return filterMap(compileFilter(expression, type), items);
  } catch (error) {
    if (error instanceof FilterError) throw new HttpError(error.statusCode, error.message);
    throw error;
  }
}

function requireServiceId(request: HttpRequest): string {
  if (request.param === '') throw new HttpError(400, 'Missing service ID');
  return request.param;
}

/** ?enable for maintenance: required, Go ParseBool. */
function parseEnable(request: HttpRequest): boolean {
  const text = request.query.get('enable');
  if (text === null || text === '') throw new HttpError(400, 'Missing value for enable');
  const enable = goParseBool(text);
  if (enable === undefined) throw new HttpError(400, `Invalid value for enable: ${JSON.stringify(text)}`);
  return enable;
}
