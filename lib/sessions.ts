// Sessions: creation, destruction and invalidation, and the lock-delay that follows.
//
// A session ties advisory KV locks to the health of a node: it names a node and the checks it
// depends on, and it ends when it is destroyed, when its node is deregistered, when one of its
// checks goes critical or is removed, or when its TTL runs out. Ending it releases or deletes
// every key it holds (its Behavior) and puts those keys in lock-delay for the session's
// LockDelay, during which nobody may acquire them (Chubby's lock-delay; spec §3.5, §8.6).
//
// This is Consul's agent/consul/state/session.go and session_ce.go (state half), delay.go (the
// lock-delay table), and the request rules of agent/session_endpoint.go and
// agent/consul/session_endpoint.go (defaults and validation, as pure helpers).
//
// Not here: TTL timers (the leader runs them and destroys expired sessions through Raft), the
// session ID (the endpoint generates a UUID before Raft), renew (a leader timer reset), ACLs.
// No clock is read here: LockDelay gets one injected.
//
// Invariants: a stored session's node exists; each of its checks has one session_checks row
// (node, check, session) until the session ends; every change bumps the tables it touched.

import { formatDuration, parseDuration, DurationError, NANOS_PER_SECOND } from './duration.js';
import { kvsInvalidateSession } from './kvs.js';
import type { ReadTxn, WriteTxn } from './memdb.js';
import { bumpTableIndex, StateError, tableIndex, TABLES, type CheckRecord, type QueryResult, type SessionCheckRecord, type SessionRecord } from './schema.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** A service check a session depends on (structs.ServiceCheck). */
export interface ServiceCheckRef {
  readonly ID: string;
  readonly Namespace: string;
}

/**
 * A session-create request after defaults (structs.Session as Session.Apply receives it). The ID
 * is the endpoint's fresh UUID. Behavior "" means release; anything but release/delete is refused.
 */
export interface SessionCreateRequest {
  readonly ID: string;
  readonly Name: string;
  readonly Node: string;
  readonly NodeChecks: readonly string[];
  readonly ServiceChecks: readonly ServiceCheckRef[];
  /** Nanoseconds. Stored as given; capped at LOCK_DELAY_MAX_NANOS when applied. */
  readonly LockDelay: number;
  readonly Behavior: string;
  /** A Go duration string or "" (no TTL); validate with sessionTtlValidation first. */
  readonly TTL: string;
}

/** A decoded PUT /v1/session/create body. Absent (undefined) fields keep Consul's defaults. */
export interface SessionCreateBody {
  readonly Name?: string;
  readonly Node?: string;
  /** A Go duration string or a JSON number of nanoseconds; below 1000 either means seconds. */
  readonly LockDelay?: unknown;
  readonly Behavior?: string;
  readonly TTL?: string;
  /** null means an explicit empty list (Go decodes null into a nil slice). */
  readonly NodeChecks?: readonly string[] | null;
  /** Deprecated since Consul 1.7; still honoured. */
  readonly Checks?: readonly string[] | null;
  readonly ServiceChecks?: readonly { readonly ID: string; readonly Namespace?: string }[] | null;
}

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** The node check every session depends on unless told otherwise (structs.SerfCheckID). */
export const SERF_CHECK_ID = 'serfHealth';
/** Default LockDelay of a new session (the HTTP endpoint's default). */
export const LOCK_DELAY_DEFAULT_NANOS = 15 * NANOS_PER_SECOND;
/** Lock-delay applied on invalidation never exceeds this (structs.MaxLockDelay). */
export const LOCK_DELAY_MAX_NANOS = 60 * NANOS_PER_SECOND;
/** A LockDelay below this many nanoseconds was meant as seconds (lockDelayMinThreshold). */
export const LOCK_DELAY_SECONDS_BELOW = 1000;
/** Session TTL bounds: the server's session_ttl_min default and structs.SessionTTLMax. */
export const SESSION_TTL_MIN_DEFAULT_NANOS = 10 * NANOS_PER_SECOND;
export const SESSION_TTL_MAX_NANOS = 24 * 3600 * NANOS_PER_SECOND;
/** The leader invalidates a TTL session after TTL × this (structs.SessionTTLMultiplier). */
export const SESSION_TTL_MULTIPLIER = 2;
/** Lock-delay keys kept before expired ones are swept (soft state; expired entries are inert). */
export const LOCK_DELAY_SWEEP_KEYS_MIN = 1024;

/** StateError codes of this module. Append only. */
export const SESSION_ERRORS = {
  missingSessionId: 'ERR_MISSING_SESSION_ID',
  invalidBehavior: 'ERR_INVALID_SESSION_BEHAVIOR',
  missingNode: 'ERR_MISSING_NODE',
  missingCheck: 'ERR_MISSING_CHECK',
  criticalCheck: 'ERR_CHECK_CRITICAL',
  requestDecode: 'ERR_REQUEST_DECODE',
} as const;

// ---------------------------------------------------------------------------------------------
// Lock-delay

/**
 * Keys that may not be locked yet because the session holding them was invalidated (delay.go).
 * Server-local soft state: only the leader's opinion counts, and it is checked before Raft, so
 * followers never consult it while applying. A later invalidation replaces the expiry, even with
 * a shorter one, as Consul's map does. Expired entries are dropped lazily.
 */
export class LockDelay {
  /** key -> expiry in ms on the injected clock. Invariant: size stays near the live keys. */
  private readonly expiresAtMs = new Map<string, number>();
  private sweepAtSize = LOCK_DELAY_SWEEP_KEYS_MIN;

  constructor(private readonly nowMs: () => number) {}

  /** Puts `key` in lock-delay for `delayNanos` from now. */
  setExpiration(key: string, delayNanos: number): void {
    this.expiresAtMs.set(key, this.nowMs() + delayNanos / 1e6);
    if (this.expiresAtMs.size >= this.sweepAtSize) this.sweep();
  }

  /** Whether `key` is still in lock-delay (its expiry is after now). */
  isLocked(key: string): boolean {
    return this.expiration(key) !== undefined;
  }

  /** The key's lock-delay expiry (ms on the injected clock), or undefined if none is active. */
  expiration(key: string): number | undefined {
    const expiresAtMs = this.expiresAtMs.get(key);
    if (expiresAtMs === undefined) return undefined;
    if (expiresAtMs > this.nowMs()) return expiresAtMs;
    this.expiresAtMs.delete(key);
    return undefined;
  }

  /** Number of keys tracked, expired ones not yet swept included. */
  get size(): number {
    return this.expiresAtMs.size;
  }

  private sweep(): void {
    const now = this.nowMs();
    for (const [key, expiresAtMs] of this.expiresAtMs) if (expiresAtMs <= now) this.expiresAtMs.delete(key);
    // Sweep again only once the map has doubled, so sweeping costs O(1) per insertion.
    this.sweepAtSize = Math.max(LOCK_DELAY_SWEEP_KEYS_MIN, 2 * this.expiresAtMs.size);
  }
}

// ---------------------------------------------------------------------------------------------
// Request helpers (the endpoint's part)

/**
 * Fills a create request the way PUT /v1/session/create does: the agent's node, NodeChecks
 * ["serfHealth"], LockDelay 15s, release; LockDelay numbers and strings below 1000 ns mean
 * seconds; and Consul's reconciliation of the legacy Checks field with NodeChecks
 * (fixupEmptySessionChecks): an explicit empty Checks empties NodeChecks, the default check in
 * Checks defers to NodeChecks, an explicit empty NodeChecks drops Checks. Legacy checks that
 * remain are folded into NodeChecks (the record has no Checks field). Throws StateError
 * ERR_REQUEST_DECODE (HTTP 400 `Request decode failed: <message>`) for a bad LockDelay string.
 */
export function normalizeSessionRequest(body: SessionCreateBody | undefined, agentNode: string, id: string): SessionCreateRequest {
  const given = body ?? {};
  let nodeChecks: readonly string[] = given.NodeChecks === undefined ? [SERF_CHECK_ID] : (given.NodeChecks ?? []);
  let legacyChecks: readonly string[] = given.Checks === undefined ? [SERF_CHECK_ID] : (given.Checks ?? []);
  if (legacyChecks.length === 0) {
    nodeChecks = [];
  } else if (legacyChecks.length === 1 && legacyChecks[0] === SERF_CHECK_ID) {
    legacyChecks = [];
  } else if (nodeChecks.length === 0) {
    legacyChecks = [];
  }
  return {
    ID: id,
    Name: given.Name ?? '',
    Node: given.Node ?? agentNode,
    NodeChecks: [...new Set([...legacyChecks, ...nodeChecks])],
    ServiceChecks: (given.ServiceChecks ?? []).map((check) => ({ ID: check.ID, Namespace: check.Namespace ?? '' })),
    LockDelay: given.LockDelay === undefined || given.LockDelay === null ? LOCK_DELAY_DEFAULT_NANOS : lockDelayNanos(given.LockDelay),
    Behavior: given.Behavior ?? 'release',
    TTL: given.TTL ?? '',
  };
}

/**
 * The Session.Apply endpoint's checks of a create request, in Consul's order; returns Consul's
 * error text (HTTP 500) or undefined.
 */
export function validateSessionRequest(request: SessionCreateRequest, ttlMinNanos = SESSION_TTL_MIN_DEFAULT_NANOS, ttlMaxNanos = SESSION_TTL_MAX_NANOS): string | undefined {
  if (request.Node === '') return 'Must provide Node';
  if (request.Behavior !== '' && request.Behavior !== 'release' && request.Behavior !== 'delete') {
    return `Invalid Behavior setting '${request.Behavior}'`;
  }
  return sessionTtlValidation(request.TTL, ttlMinNanos, ttlMaxNanos);
}

/**
 * Consul's TTL check (Session.Apply): "" and zero mean no TTL; otherwise the TTL must parse and
 * lie in [min, max]. Returns the exact error text clients grep (`Invalid Session TTL '<ns>', must
 * be between [10s=24h0m0s]`, `Session TTL '<ttl>' invalid: <parse error>`) or undefined.
 */
export function sessionTtlValidation(ttl: string, minTtlNanos: number, maxTtlNanos: number): string | undefined {
  if (ttl === '') return undefined;
  let nanos: number;
  try {
    nanos = parseDuration(ttl);
  } catch (error) {
    if (!(error instanceof DurationError)) throw error;
    return `Session TTL '${ttl}' invalid: ${error.message}`;
  }
  if (nanos !== 0 && (nanos < minTtlNanos || nanos > maxTtlNanos)) {
    return `Invalid Session TTL '${nanos}', must be between [${formatDuration(minTtlNanos)}=${formatDuration(maxTtlNanos)}]`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Writes

/**
 * Registers a session (sessionCreateTxn). Refuses, with Consul's texts: an empty ID (`Missing
 * session ID`), a bad Behavior (`Invalid session behavior: x`), an unknown node (`Missing node
 * registration`), an unknown check (`Missing check 'x' registration`) or a critical one (`Check
 * 'x' is in critical state`). Checks are NodeChecks then ServiceChecks, all on the session's node.
 */
export function sessionCreate(txn: WriteTxn, index: number, request: SessionCreateRequest): SessionRecord {
  if (request.ID === '') throw new StateError(SESSION_ERRORS.missingSessionId, 'Missing session ID');
  const behavior = request.Behavior === '' ? 'release' : request.Behavior;
  if (behavior !== 'release' && behavior !== 'delete') {
    throw new StateError(SESSION_ERRORS.invalidBehavior, `Invalid session behavior: ${request.Behavior}`);
  }
  if (txn.first(TABLES.nodes, 'id', request.Node) === undefined) throw new StateError(SESSION_ERRORS.missingNode, 'Missing node registration');
  const checkIds = [...request.NodeChecks, ...request.ServiceChecks.map((check) => check.ID)];
  for (const checkId of checkIds) validateSessionCheck(txn, request.Node, checkId);

  const session: SessionRecord = {
    ID: request.ID,
    Name: request.Name,
    Node: request.Node,
    NodeChecks: [...request.NodeChecks],
    ServiceChecks: request.ServiceChecks.map((check) => ({ ID: check.ID, Namespace: check.Namespace })),
    LockDelay: request.LockDelay,
    Behavior: behavior,
    TTL: request.TTL,
    CreateIndex: index,
    ModifyIndex: index,
  };
  txn.insert<SessionRecord>(TABLES.sessions, session);
  bumpTableIndex(txn, TABLES.sessions, index);
  for (const checkId of checkIds) txn.insert<SessionCheckRecord>(TABLES.sessionChecks, { Node: session.Node, CheckID: checkId, Session: session.ID });
  if (checkIds.length > 0) bumpTableIndex(txn, TABLES.sessionChecks, index);
  return session;
}

/**
 * Ends a session (deleteSessionTxn): deletes it, releases or deletes every key it holds per its
 * Behavior, puts those keys in lock-delay for min(LockDelay, 60s) when positive, and drops its
 * session_checks rows. Idempotent: returns false if there was no such session.
 */
export function sessionDestroy(txn: WriteTxn, index: number, sessionId: string, lockDelay: LockDelay): boolean {
  const session = txn.first<SessionRecord>(TABLES.sessions, 'id', sessionId);
  if (!session) return false;
  txn.delete(TABLES.sessions, session);
  bumpTableIndex(txn, TABLES.sessions, index);

  const delayNanos = Math.min(session.LockDelay, LOCK_DELAY_MAX_NANOS);
  const keys = kvsInvalidateSession(txn, index, session.ID, session.Behavior);
  if (delayNanos > 0) for (const key of keys) lockDelay.setExpiration(key, delayNanos);

  const links = [...txn.get<SessionCheckRecord>(TABLES.sessionChecks, 'session', session.ID)];
  for (const link of links) txn.delete(TABLES.sessionChecks, link);
  if (links.length > 0) bumpTableIndex(txn, TABLES.sessionChecks, index);
  return true;
}

/** A check went critical or was deleted: destroy every session that depends on it. */
export function invalidateCheckSessions(txn: WriteTxn, index: number, node: string, checkId: string, lockDelay: LockDelay): void {
  const links = [...txn.get<SessionCheckRecord>(TABLES.sessionChecks, 'node_check', node, checkId)];
  for (const link of links) sessionDestroy(txn, index, link.Session, lockDelay);
}

/** The node was deleted: destroy every session on it. */
export function invalidateNodeSessions(txn: WriteTxn, index: number, node: string, lockDelay: LockDelay): void {
  const sessions = [...txn.get<SessionRecord>(TABLES.sessions, 'node', node)];
  for (const session of sessions) sessionDestroy(txn, index, session.ID, lockDelay);
}

// ---------------------------------------------------------------------------------------------
// Reads (index: the sessions table index, as SessionGet/SessionList/NodeSessions report)

/** One session, or undefined (the HTTP layer answers `[]`). */
export function sessionGet(txn: ReadTxn, sessionId: string): QueryResult<SessionRecord | undefined> {
  const session = txn.first<SessionRecord>(TABLES.sessions, 'id', sessionId);
  return { index: tableIndex(txn, TABLES.sessions), value: session };
}

/** Every session, in ID order. */
export function sessionList(txn: ReadTxn): QueryResult<SessionRecord[]> {
  const sessions = [...txn.all<SessionRecord>(TABLES.sessions)];
  return { index: tableIndex(txn, TABLES.sessions), value: sessions };
}

/** The sessions of one node. */
export function nodeSessions(txn: ReadTxn, node: string): QueryResult<SessionRecord[]> {
  const sessions = [...txn.get<SessionRecord>(TABLES.sessions, 'node', node)];
  return { index: tableIndex(txn, TABLES.sessions), value: sessions };
}

// ---------------------------------------------------------------------------------------------
// Private helpers

function validateSessionCheck(txn: WriteTxn, node: string, checkId: string): void {
  const check = txn.first<CheckRecord>(TABLES.checks, 'id', node, checkId);
  if (!check) throw new StateError(SESSION_ERRORS.missingCheck, `Missing check '${checkId}' registration`);
  if (check.Status === 'critical') throw new StateError(SESSION_ERRORS.criticalCheck, `Check '${checkId}' is in ${check.Status} state`);
}

/**
 * structs.Session's LockDelay decoding: a string is a Go duration, a number is nanoseconds
 * (truncated like Go's float64 -> Duration); either below 1000 ns is taken as seconds. Other JSON
 * types decode to 0.
 */
function lockDelayNanos(raw: unknown): number {
  let nanos = 0;
  if (typeof raw === 'string') {
    try {
      nanos = parseDuration(raw);
    } catch (error) {
      if (!(error instanceof DurationError)) throw error;
      throw new StateError(SESSION_ERRORS.requestDecode, error.message);
    }
  } else if (typeof raw === 'number' && Number.isFinite(raw)) {
    nanos = Math.trunc(raw) + 0; // + 0 turns -0 into 0
  }
  return nanos < LOCK_DELAY_SECONDS_BELOW ? nanos * NANOS_PER_SECOND : nanos;
}
