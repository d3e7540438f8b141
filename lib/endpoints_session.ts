// The session endpoints: Consul's Session.Apply/Get/List/NodeSessions/Renew server methods and
// /v1/session/* on top.
//
// A session is created through Raft with a fresh UUID after the server's checks (node, behavior,
// TTL bounds: lib/sessions.ts validateSessionRequest), destroyed through Raft, and read from the
// state store with blocking queries. A TTL session is also given a leader timer
// (lib/sessionttl.ts) on create and renew; renew itself changes no state.
//
// What clients rely on (spec §3.5, §8.6, §8.7, §9.4, §9.9): create accepts an empty body and
// answers {"ID": ...}; info on an unknown id is [] with 200; renew of an unknown id is 404
// `Session id '<id>' not found`; destroy is idempotent `true`; `Invalid Session TTL ...` and
// `Missing node registration` are 500s with Consul's text.
//
// On a follower, create, destroy and renew are forwarded to the leader as Consul forwards them
// (Session.Apply, Session.Renew over the server port: lib/endpoints.ts forwardToLeader); the
// leader serves those two methods (sessionRpcMethods). Reads are served locally.
//
// Not here: ACLs (token accepted and ignored), namespaces (Enterprise).
//
// References: Consul agent/session_endpoint.go, agent/consul/session_endpoint.go (Apply, Get,
// List, NodeSessions, Renew), agent/structs/structs.go (Session, SessionRequest).

import { randomUUID } from 'node:crypto';
import { isPlainObject, typeProblem } from './decode.js';
import { applyCommand, decodeJsonBody, forwardToLeader, type EndpointDeps } from './endpoints.js';
import { checkRpcDatacenter, rpcFields, rpcString } from './endpoints_rpc.js';
import type { MsgpackValue } from './msgpack.js';
import type { RpcMethod } from './rpc.js';
import { HttpError, type AbortSignalLike, type HttpRequest, type HttpResponse, type HttpRoute } from './http.js';
import { blockingQuery, checkDatacenter, defaultQueryOptions, notLeaderText, parseQueryOptions, queryMetaHeaders, readQuery, type QueryOptions, type QueryReply } from './query.js';
import { StateError, type SessionRecord } from './schema.js';
import type { SessionTimers } from './sessionttl.js';
import { nodeSessions, normalizeSessionRequest, sessionGet, sessionList, validateSessionRequest, type SessionCreateBody, type SessionCreateRequest } from './sessions.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** structs.SessionRequest, as the two operations we carry. */
export type SessionApplyRequest = { readonly Op: 'create'; readonly Session: SessionCreateRequest } | { readonly Op: 'destroy'; readonly ID: string };

/** The JSON shape of structs.Session (empty check lists are null, as Go's nil slices). */
export interface SessionJson {
  readonly ID: string;
  readonly Name: string;
  readonly Node: string;
  readonly LockDelay: number;
  readonly Behavior: string;
  readonly TTL: string;
  readonly NodeChecks: readonly string[] | null;
  readonly ServiceChecks: readonly { readonly ID: string; readonly Namespace: string }[] | null;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Fresh UUIDs tried before giving up (a collision is astronomically unlikely; Consul loops). */
const SESSION_ID_ATTEMPTS_MAX = 8;
/** Checks one create request may name (the decoder's list bound). */
export const SESSION_CHECKS_MAX = 4096;

// ---------------------------------------------------------------------------------------------
// The RPC-shaped layer

/** Consul's Session server methods. `timers` is the leader's TTL timer set. */
export const Session = {
  /**
   * Session.Apply: create answers the new ID (the request's ID is replaced by a fresh UUID, as
   * Consul does); destroy answers the ID and skips Raft when no such session exists.
   * Validation failures are HttpError 500 with Consul's text.
   */
  async Apply(deps: EndpointDeps, timers: SessionTimers, args: SessionApplyRequest): Promise<string> {
    if (args.Op === 'destroy') {
      if (args.ID === '') throw new HttpError(500, 'Must provide ID');
      if (deps.query.state.read((txn) => sessionGet(txn, args.ID)).value !== undefined) {
        await applyCommand(deps, { type: 'session-destroy', id: args.ID });
      }
      timers.clear(args.ID);
      return args.ID;
    }
    const problem = validateSessionRequest(args.Session, deps.config.sessionTtlMinMs * 1e6);
    if (problem !== undefined) throw new HttpError(500, problem);
    const session: SessionCreateRequest = { ...args.Session, ID: freshSessionId(deps) };
    const id = await applyCommand(deps, { type: 'session-create', session });
    if (typeof id !== 'string') throw new HttpError(500, 'session create returned no ID');
    timers.reset({ ID: id, TTL: session.TTL });
    return id;
  },
  /** Session.Get: zero or one session; index = the sessions table index. */
  Get(deps: EndpointDeps, args: { readonly SessionID: string }, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<SessionRecord[]>> {
    return blockingQuery(deps.query, options, signal, (txn) => {
      const { index, value } = sessionGet(txn, args.SessionID);
      return { index, value: value === undefined ? [] : [value] };
    });
  },
  /** Session.List: every session. */
  List(deps: EndpointDeps, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<SessionRecord[]>> {
    return blockingQuery(deps.query, options, signal, (txn) => sessionList(txn));
  },
  /** Session.NodeSessions: the sessions of one node. */
  NodeSessions(deps: EndpointDeps, args: { readonly Node: string }, options: QueryOptions, signal: AbortSignalLike): Promise<QueryReply<SessionRecord[]>> {
    return blockingQuery(deps.query, options, signal, (txn) => nodeSessions(txn, args.Node));
  },
  /**
   * Session.Renew: restarts the session's TTL timer and answers it, or [] when there is no
   * such session (the HTTP layer turns that into 404). Changes no state.
   */
  async Renew(deps: EndpointDeps, timers: SessionTimers, args: { readonly SessionID: string }, options: QueryOptions): Promise<QueryReply<SessionRecord[]>> {
    const reply = await readQuery(deps.query, options, (txn) => {
      const { index, value } = sessionGet(txn, args.SessionID);
      return { index, value: value === undefined ? [] : [value] };
    });
    for (const session of reply.value) timers.reset(session);
    return reply;
  },
} as const;

/** structs.Session as Consul's JSON shows it. */
export function sessionJson(session: SessionRecord): SessionJson {
  return {
    ID: session.ID,
    Name: session.Name,
    Node: session.Node,
    LockDelay: session.LockDelay,
    Behavior: session.Behavior,
    TTL: session.TTL,
    NodeChecks: session.NodeChecks.length === 0 ? null : session.NodeChecks,
    ServiceChecks: session.ServiceChecks.length === 0 ? null : session.ServiceChecks,
    CreateIndex: session.CreateIndex,
    ModifyIndex: session.ModifyIndex,
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP routes

/** /v1/session/{create,destroy/,info/,node/,list,renew/}. */
export function sessionRoutes(deps: EndpointDeps, timers: SessionTimers): HttpRoute[] {
  return [
    { path: '/v1/session/create', methods: ['PUT'], handler: (request) => sessionCreate(deps, timers, request) },
    { path: '/v1/session/destroy/', methods: ['PUT'], handler: (request) => sessionDestroy(deps, timers, request) },
    { path: '/v1/session/renew/', methods: ['PUT'], handler: (request) => sessionRenew(deps, timers, request) },
    { path: '/v1/session/info/', methods: ['GET'], handler: (request) => sessionRead(deps, request, 'Missing session', (options) => Session.Get(deps, { SessionID: request.param }, options, request.signal)) },
    { path: '/v1/session/node/', methods: ['GET'], handler: (request) => sessionRead(deps, request, 'Missing node name', (options) => Session.NodeSessions(deps, { Node: request.param }, options, request.signal)) },
    { path: '/v1/session/list', methods: ['GET'], handler: (request) => sessionRead(deps, request, '', (options) => Session.List(deps, options, request.signal)) },
  ];
}

/**
 * Decodes a PUT /v1/session/create body the way Consul's decodeBody + FixupLockDelay +
 * FixupChecks do: keys case-insensitive, unknown keys ignored, a wrong type is 400 `Request
 * decode failed: ...`. An empty body means every default.
 */
export function decodeSessionCreateBody(raw: unknown): SessionCreateBody | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isPlainObject(raw)) throw decodeFailed(`'' expected a map, got '${goKind(raw)}'`);
  const fields = new Map<string, unknown>();
  for (const [key, value] of Object.entries(raw)) {
    // encoding/json keeps the last of two spellings of one field.
    fields.set(key.toLowerCase(), value);
  }
  const problems: string[] = [];
  const body: Record<string, unknown> = {};
  for (const name of ['Name', 'Node', 'Behavior', 'TTL']) {
    const value = fields.get(name.toLowerCase());
    if (value === undefined || value === null) continue;
    if (typeof value === 'string') body[name] = value;
    else problems.push(typeProblem(name, 'string', value));
  }
  const lockDelay = fields.get('lockdelay');
  if (lockDelay !== undefined && lockDelay !== null) {
    if (typeof lockDelay === 'string' || typeof lockDelay === 'number') body['LockDelay'] = lockDelay;
    else problems.push(typeProblem('LockDelay', 'time.Duration', lockDelay));
  }
  for (const name of ['NodeChecks', 'Checks']) {
    const key = name.toLowerCase();
    if (!fields.has(key)) continue;
    const value = fields.get(key);
    if (value === null) body[name] = null;
    else if (Array.isArray(value) && value.length <= SESSION_CHECKS_MAX && value.every((item) => typeof item === 'string')) body[name] = value;
    else problems.push(typeProblem(name, '[]types.CheckID', value));
  }
  const serviceChecks = decodeServiceChecks(fields, problems);
  if (serviceChecks !== undefined) body['ServiceChecks'] = serviceChecks;
  if (problems.length > 0) throw decodeFailed(`${problems.length} error(s) decoding:\n\n${problems.map((problem) => `* ${problem}`).join('\n')}`);
  return body as SessionCreateBody;
}

// ---------------------------------------------------------------------------------------------
// Private helpers

async function sessionCreate(deps: EndpointDeps, timers: SessionTimers, request: HttpRequest): Promise<HttpResponse> {
  checkDatacenter(request, deps.config.datacenter);
  // Consul decodes the body only when there is one; an empty body keeps every default.
  const body = request.body.length === 0 ? undefined : decodeSessionCreateBody(decodeJsonBody(request));
  let session: SessionCreateRequest;
  try {
    session = normalizeSessionRequest(body, deps.config.nodeName, '');
  } catch (error) {
    if (error instanceof StateError) throw decodeFailed(error.message);
    throw error;
  }
  const forwarded = await forwardToLeader(deps, 'Session.Apply', { Datacenter: deps.config.datacenter, Op: 'create', Session: session });
  const id = forwarded === undefined ? await Session.Apply(deps, timers, { Op: 'create', Session: session }) : forwarded.reply;
  if (typeof id !== 'string') throw new HttpError(500, 'session create returned no ID');
  return { json: { ID: id } };
}

async function sessionDestroy(deps: EndpointDeps, timers: SessionTimers, request: HttpRequest): Promise<HttpResponse> {
  checkDatacenter(request, deps.config.datacenter);
  if (request.param === '') throw new HttpError(400, 'Missing session');
  const forwarded = await forwardToLeader(deps, 'Session.Apply', { Datacenter: deps.config.datacenter, Op: 'destroy', Session: { ID: request.param } });
  if (forwarded === undefined) await Session.Apply(deps, timers, { Op: 'destroy', ID: request.param });
  return { json: true };
}

async function sessionRenew(deps: EndpointDeps, timers: SessionTimers, request: HttpRequest): Promise<HttpResponse> {
  checkDatacenter(request, deps.config.datacenter);
  const options = parseQueryOptions(deps.query, request);
  if (request.param === '') throw new HttpError(400, 'Missing session');
  // The TTL timer lives on the leader: a follower forwards the renew.
  const forwarded = await forwardToLeader(deps, 'Session.Renew', { Datacenter: deps.config.datacenter, SessionID: request.param });
  const sessions = forwarded === undefined ? (await Session.Renew(deps, timers, { SessionID: request.param }, options)).value : sessionsFromWire(forwarded.reply);
  // Consul's renew sets no index headers.
  if (sessions.length === 0) throw new HttpError(404, `Session id '${request.param}' not found`);
  return { json: sessions.map(sessionJson) };
}

/**
 * The leader's Session.Apply and Session.Renew for forwarded calls (structs.SessionRequest,
 * structs.SessionSpecificRequest): decoded, then run by the Session methods above, which refuse on
 * a follower (naming the leader) instead of forwarding again.
 */
export function sessionRpcMethods(deps: EndpointDeps, timers: SessionTimers): Map<string, RpcMethod> {
  return new Map<string, RpcMethod>([
    ['Session.Apply', (args) => {
      const request = rpcFields(args, 'SessionRequest');
      checkRpcDatacenter(request, deps.config.datacenter);
      const session = rpcFields(request['Session'] ?? {}, 'SessionRequest.Session');
      if (request['Op'] === 'destroy') return Session.Apply(deps, timers, { Op: 'destroy', ID: rpcString(session, 'ID') });
      if (request['Op'] !== 'create') throw new Error(`Invalid session operation '${String(request['Op'])}'`);
      return Session.Apply(deps, timers, { Op: 'create', Session: sessionCreateFromWire(session) });
    }],
    ['Session.Renew', async (args) => {
      const request = rpcFields(args, 'SessionSpecificRequest');
      checkRpcDatacenter(request, deps.config.datacenter);
      // The TTL timer is the leader's: a follower names it rather than renew here.
      if (!deps.query.server.isLeader) throw new HttpError(500, notLeaderText(deps.query.server.leader()));
      const reply = await Session.Renew(deps, timers, { SessionID: rpcString(request, 'SessionID') }, defaultQueryOptions(deps.query));
      return { Index: reply.meta.index, Sessions: reply.value };
    }],
  ]);
}

/** A forwarded renew's IndexedSessions.Sessions, as the records sessionJson renders. */
function sessionsFromWire(reply: MsgpackValue): SessionRecord[] {
  const sessions = rpcFields(reply, 'IndexedSessions')['Sessions'];
  if (sessions === null || sessions === undefined) return [];
  if (!Array.isArray(sessions)) throw new HttpError(500, 'IndexedSessions.Sessions must be a list');
  return sessions as unknown as SessionRecord[];
}

function sessionCreateFromWire(session: Record<string, MsgpackValue>): SessionCreateRequest {
  const strings = (name: string): string[] => {
    const value = session[name] ?? [];
    if (value === null) return [];
    if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw new Error(`Session.${name} must be a list of strings`);
    return value as string[];
  };
  const serviceChecks = session['ServiceChecks'] ?? [];
  if (serviceChecks !== null && !Array.isArray(serviceChecks)) throw new Error('Session.ServiceChecks must be a list');
  const lockDelay = session['LockDelay'] ?? 0;
  if (typeof lockDelay !== 'number' && typeof lockDelay !== 'bigint') throw new Error('Session.LockDelay must be an integer');
  return {
    ID: '',
    Name: rpcString(session, 'Name'),
    Node: rpcString(session, 'Node'),
    NodeChecks: strings('NodeChecks'),
    ServiceChecks: (serviceChecks ?? []).map((item, i) => {
      const check = rpcFields(item, `Session.ServiceChecks[${i}]`);
      return { ID: rpcString(check, 'ID'), Namespace: rpcString(check, 'Namespace') };
    }),
    LockDelay: Number(lockDelay),
    Behavior: rpcString(session, 'Behavior'),
    TTL: rpcString(session, 'TTL'),
  };
}

/** info/node/list: `missing` is the 400 text for an empty parameter ('' for exact routes). */
async function sessionRead(deps: EndpointDeps, request: HttpRequest, missing: string, read: (options: QueryOptions) => Promise<QueryReply<SessionRecord[]>>): Promise<HttpResponse> {
  checkDatacenter(request, deps.config.datacenter);
  const options = parseQueryOptions(deps.query, request);
  if (missing !== '' && request.param === '') throw new HttpError(400, missing);
  const reply = await read(options);
  return { json: reply.value.map(sessionJson), headers: queryMetaHeaders(reply.meta) };
}

function decodeServiceChecks(fields: ReadonlyMap<string, unknown>, problems: string[]): { ID: string; Namespace?: string }[] | null | undefined {
  if (!fields.has('servicechecks')) return undefined;
  const value = fields.get('servicechecks');
  if (value === null) return null;
  if (!Array.isArray(value) || value.length > SESSION_CHECKS_MAX) {
    problems.push(typeProblem('ServiceChecks', '[]structs.ServiceCheck', value));
    return undefined;
  }
  const checks: { ID: string; Namespace?: string }[] = [];
  value.forEach((item: unknown, index) => {
    const check = decodeServiceCheck(item, `ServiceChecks[${index}]`, problems);
    if (check !== undefined) checks.push(check);
  });
  return checks;
}

function decodeServiceCheck(item: unknown, path: string, problems: string[]): { ID: string; Namespace: string } | undefined {
  if (!isPlainObject(item)) {
    problems.push(`'${path}' expected a map, got '${goKind(item)}'`);
    return undefined;
  }
  const entries = new Map(Object.entries(item).map(([key, field]) => [key.toLowerCase(), field]));
  const id = entries.get('id') ?? '';
  const namespace = entries.get('namespace') ?? '';
  if (typeof id !== 'string') problems.push(typeProblem(`${path}.ID`, 'string', id));
  else if (typeof namespace !== 'string') problems.push(typeProblem(`${path}.Namespace`, 'string', namespace));
  else return { ID: id, Namespace: namespace };
  return undefined;
}

/** A fresh session UUID not already in use (Consul's uniqueness loop). */
function freshSessionId(deps: EndpointDeps): string {
  for (let attempt = 0; attempt < SESSION_ID_ATTEMPTS_MAX; attempt++) {
    const id = randomUUID();
    if (deps.query.state.read((txn) => sessionGet(txn, id)).value === undefined) return id;
  }
  throw new HttpError(500, 'Session ID generation failed');
}

function decodeFailed(message: string): HttpError {
  return new HttpError(400, `Request decode failed: ${message}`);
}

/** mapstructure's kind names in "expected a map, got '<kind>'". */
function goKind(value: unknown): string {
  if (Array.isArray(value)) return 'slice';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'number') return 'float64';
  if (typeof value === 'boolean') return 'bool';
  return 'invalid';
}
