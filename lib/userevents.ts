// Consul's user events: `PUT /v1/event/fire/<name>` and `GET /v1/event/list`, carried by serf.
//
// A fired event is Consul's UserEvent struct (a fresh UUID, the name, the payload, optional
// node/service/tag regular expressions, Version 1) encoded with go-msgpack and sent as the
// payload of a serf user event named `consul:event:<name>`. Every agent that receives one
// decodes it, stamps serf's Lamport time on it, drops it unless its filters match this agent
// (the node name; a local service, and one of its tags), and keeps the last 256 in a ring that
// /v1/event/list returns oldest first. That list "blocks" on an index that is not monotonic:
// the XOR of the two 64-bit halves of the newest listed event's UUID (1 when none), and a
// blocking call returns as soon as that value differs from ?index.
//
// Not here: remote exec (`_rexec` events are ignored, as with Consul's default
// disable_remote_exec), ACLs, forwarding the fire to a server in another datacenter. Consul
// fires through a server (RPC Internal.EventFire); until client agents have RPC (issue 9) every
// agent fires into its own LAN pool, which gossips it the same way.
//
// Invariants: the ring holds at most USER_EVENTS_KEPT events; a waiter is released at most
// once and removed when released, timed out or aborted.
//
// References: Consul agent/event_endpoint.go (EventFire, EventList, uuidToUint64),
// agent/user_event.go (UserEvent, validateUserEventParams, shouldProcessUserEvent,
// ingestUserEvent), agent/consul/internal_endpoint.go (EventFire), agent/consul/client.go
// (userEventName prefix).

import { randomUUID } from 'node:crypto';
import { compileRegex, type Regex } from './bexpr.js';
import { decode, encode, MsgpackError } from './msgpack.js';

// ---------------------------------------------------------------------------------------------
// Types

/** Consul's UserEvent, with its JSON field names. */
export interface UserEvent {
  readonly ID: string;
  readonly Name: string;
  readonly Payload: Uint8Array | null;
  readonly NodeFilter: string;
  readonly ServiceFilter: string;
  readonly TagFilter: string;
  readonly Version: number;
  /** serf's Lamport time of the event; 0 in the fire answer. */
  readonly LTime: number;
}

/** What the filters look at on this agent. */
export interface LocalTarget {
  readonly nodeName: string;
  /** The local service instances: name and tags of each. */
  readonly services: () => Iterable<{ readonly Service: string; readonly Tags: readonly string[] }>;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** The serf user event name prefix Consul uses for its events. */
export const USER_EVENT_PREFIX = 'consul:event:';
/** Consul keeps the last 256 events (agent eventBuf). */
export const USER_EVENTS_KEPT = 256;
/** userEventMaxVersion. */
export const USER_EVENT_VERSION = 1;
/** Parked /v1/event/list calls per agent; more are answered at once. */
export const USER_EVENT_WAITERS_MAX = 4096;
/** Consul's remote exec event, which we never run. */
export const REMOTE_EXEC_EVENT = '_rexec';

// ---------------------------------------------------------------------------------------------
// Exported API

/** Consul's validateUserEventParams: the error text, or undefined when the event may be fired. */
export function userEventProblem(event: Pick<UserEvent, 'Name' | 'NodeFilter' | 'ServiceFilter' | 'TagFilter'>): string | undefined {
  if (event.Name === '') return 'User event missing name';
  if (event.TagFilter !== '' && event.ServiceFilter === '') return 'Cannot provide tag filter without service filter';
  for (const [what, pattern] of [['node', event.NodeFilter], ['service', event.ServiceFilter], ['tag', event.TagFilter]] as const) {
    if (pattern === '') continue;
    const compiled = compileRegex(pattern);
    if (typeof compiled === 'string') return `Invalid ${what} filter: ${compiled}`;
  }
  return undefined;
}

/** A new event to fire: a fresh ID, Version 1, LTime 0 (serf stamps it on receipt). */
export function newUserEvent(name: string, payload: Uint8Array | null, filters: { node: string; service: string; tag: string }): UserEvent {
  return { ID: randomUUID(), Name: name, Payload: payload, NodeFilter: filters.node, ServiceFilter: filters.service, TagFilter: filters.tag, Version: USER_EVENT_VERSION, LTime: 0 };
}

/** The serf payload: go-msgpack of UserEvent with its codec tags (ID, n, p, nf, sf, tf, v). */
export function encodeUserEvent(event: UserEvent): Uint8Array {
  const fields: Record<string, unknown> = { ID: event.ID, n: event.Name, v: event.Version };
  if (event.Payload !== null && event.Payload.length > 0) fields['p'] = event.Payload;
  if (event.NodeFilter !== '') fields['nf'] = event.NodeFilter;
  if (event.ServiceFilter !== '') fields['sf'] = event.ServiceFilter;
  if (event.TagFilter !== '') fields['tf'] = event.TagFilter;
  return encode(fields, { goCompatible: true });
}

/** Decodes a serf payload into a UserEvent stamped with `lTime`; undefined when it is not one. */
export function decodeUserEvent(bytes: Uint8Array, lTime: number): UserEvent | undefined {
  let value: unknown;
  try {
    value = decode(bytes, { rawStrings: true });
  } catch (error) {
    if (error instanceof MsgpackError) return undefined;
    throw error;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) return undefined;
  const fields = value as Record<string, unknown>;
  const text = (key: string): string | undefined => {
    const field = fields[key];
    if (field === undefined || field === null) return '';
    return field instanceof Uint8Array ? Buffer.from(field).toString('utf8') : typeof field === 'string' ? field : undefined;
  };
  const [id, name, nodeFilter, serviceFilter, tagFilter] = [text('ID'), text('n'), text('nf'), text('sf'), text('tf')];
  const payload = fields['p'];
  const version = fields['v'];
  if (id === undefined || name === undefined || nodeFilter === undefined || serviceFilter === undefined || tagFilter === undefined) return undefined;
  if (payload !== undefined && payload !== null && !(payload instanceof Uint8Array)) return undefined;
  if (typeof version !== 'number' || !Number.isSafeInteger(version)) return undefined;
  return { ID: id, Name: name, Payload: payload instanceof Uint8Array && payload.length > 0 ? payload : null, NodeFilter: nodeFilter, ServiceFilter: serviceFilter, TagFilter: tagFilter, Version: version, LTime: lTime };
}

/** Consul's uuidToUint64: the XOR of the UUID's two 64-bit halves, as a decimal string. */
export function userEventIndex(id: string): string {
  const hex = id.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return '1';
  return (BigInt(`0x${hex.slice(0, 16)}`) ^ BigInt(`0x${hex.slice(16)}`)).toString();
}

/** Consul's shouldProcessUserEvent: whether this agent's node and services pass the filters. */
export function matchesTarget(event: UserEvent, target: LocalTarget): boolean {
  if (event.NodeFilter !== '' && !testPattern(event.NodeFilter, target.nodeName)) return false;
  if (event.ServiceFilter === '') return true;
  for (const { Service, Tags } of target.services()) {
    if (!testPattern(event.ServiceFilter, Service)) continue;
    if (event.TagFilter === '' || Tags.some((tag) => testPattern(event.TagFilter, tag))) return true;
  }
  return false;
}

/** The agent's ring of recent events and the /v1/event/list calls waiting for a new one. */
export class UserEventLog {
  private readonly events: UserEvent[] = [];
  private readonly waiters = new Set<() => void>();

  /** Keeps an event that passed the filters (oldest dropped past USER_EVENTS_KEPT) and wakes the waiters. */
  add(event: UserEvent): void {
    this.events.push(event);
    if (this.events.length > USER_EVENTS_KEPT) this.events.shift();
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }

  /** The kept events, oldest first, only those named `name` when given. */
  list(name: string): UserEvent[] {
    return name === '' ? [...this.events] : this.events.filter((event) => event.Name === name);
  }

  /** Resolves at the next event, at `timeoutMs`, or when `signal` aborts, whichever is first. */
  waitForNext(timeoutMs: number, signal: { readonly aborted: boolean; addEventListener(type: 'abort', listener: () => void): void; removeEventListener(type: 'abort', listener: () => void): void }): Promise<void> {
    if (signal.aborted || this.waiters.size >= USER_EVENT_WAITERS_MAX) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(finish);
        signal.removeEventListener('abort', finish);
        resolve();
      };
      const timer = setTimeout(finish, timeoutMs);
      this.waiters.add(finish);
      signal.addEventListener('abort', finish);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

/** Compiled filters, so a crowd of events with one filter compiles it once (null: does not compile). */
const patterns = new Map<string, Regex | null>();
const PATTERNS_CACHED_MAX = 256;

/** Go's regexp.MatchString (RE2, unanchored, lib/bexpr.ts's engine); an invalid pattern matches nothing. */
function testPattern(pattern: string, text: string): boolean {
  let compiled = patterns.get(pattern);
  if (compiled === undefined) {
    const result = compileRegex(pattern);
    compiled = typeof result === 'string' ? null : result;
    if (patterns.size >= PATTERNS_CACHED_MAX) patterns.clear();
    patterns.set(pattern, compiled);
  }
  return compiled !== null && compiled.test(text);
}
