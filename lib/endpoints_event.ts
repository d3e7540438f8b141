// The event routes: PUT /v1/event/fire/<name> and GET /v1/event/list (lib/userevents.ts has the
// semantics). Both are the agent's own: no Raft, no state store.
//
// Reference: Consul agent/event_endpoint.go (EventFire, EventList), agent/http.go (parseWait).

import { HttpError, type HttpRequest, type HttpResponse, type HttpRoute } from './http.js';
import { NO_PATH_TO_DATACENTER_TEXT, parseWait } from './query.js';
import { newUserEvent, userEventIndex, userEventProblem, type UserEvent, type UserEventLog } from './userevents.js';

export interface EventEndpointDeps {
  readonly datacenter: string;
  readonly log: UserEventLog;
  /** Sends the event into the gossip pool (a serf user event); throws when gossip is down. */
  readonly fire: (event: UserEvent) => void;
}

/** Consul's maxQueryTime for the simulated blocking of /v1/event/list (10 minutes). */
export const EVENT_LIST_WAIT_MS_MAX = 10 * 60_000;

export function eventRoutes(deps: EventEndpointDeps): HttpRoute[] {
  return [
    { path: '/v1/event/fire/', methods: ['PUT'], handler: (request) => fireEvent(deps, request) },
    { path: '/v1/event/list', methods: ['GET'], handler: (request) => listEvents(deps, request) },
  ];
}

function fireEvent(deps: EventEndpointDeps, request: HttpRequest): HttpResponse {
  const dc = request.query.get('dc') ?? '';
  if (dc !== '' && dc !== deps.datacenter) throw new HttpError(500, NO_PATH_TO_DATACENTER_TEXT);
  if (request.param === '') return { status: 400, text: 'Missing name' };
  const filters = { node: request.query.get('node') ?? '', service: request.query.get('service') ?? '', tag: request.query.get('tag') ?? '' };
  const event = newUserEvent(request.param, request.body.length > 0 ? Uint8Array.from(request.body) : null, filters);
  const problem = userEventProblem(event);
  if (problem !== undefined) throw new HttpError(500, problem);
  deps.fire(event);
  return { json: eventJson(event) };
}

async function listEvents(deps: EventEndpointDeps, request: HttpRequest): Promise<HttpResponse> {
  const { index: requested, waitMs: askedMs } = parseWait(request.query);
  // Consul's EventList: without ?wait a blocking call waits maxQueryTime; never longer.
  const waitMs = askedMs > 0 ? Math.min(askedMs, EVENT_LIST_WAIT_MS_MAX) : EVENT_LIST_WAIT_MS_MAX;
  const minIndex = requested === 0n ? '' : requested.toString();
  const name = request.query.get('name') ?? '';
  const deadline = Date.now() + waitMs;
  for (;;) {
    const events = deps.log.list(name);
    const index = events.length === 0 ? '1' : userEventIndex(events[events.length - 1]!.ID);
    // Not monotonic: any index other than the client's is news.
    if (minIndex === '' || index !== minIndex || request.signal.aborted || Date.now() >= deadline) {
      return { json: events.map(eventJson), headers: { 'X-Consul-Index': index } };
    }
    await deps.log.waitForNext(deadline - Date.now(), request.signal);
  }
}

function eventJson(event: UserEvent): Record<string, unknown> {
  return {
    ID: event.ID,
    Name: event.Name,
    Payload: event.Payload === null ? null : Buffer.from(event.Payload).toString('base64'),
    NodeFilter: event.NodeFilter,
    ServiceFilter: event.ServiceFilter,
    TagFilter: event.TagFilter,
    Version: event.Version,
    LTime: event.LTime,
  };
}
