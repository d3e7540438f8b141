// A single-server HTTP API in this process, for the route tests of the endpoint modules.
//
// startApi builds what the agent builds for -dev (lib/config.ts loadConfig(['-dev'])), minus the
// agent: a StateStore and its Fsm, an in-memory RaftNode bootstrapped alone with a 50 ms
// election timeout (so it leads within about 100 ms), the EndpointDeps the routes are made with,
// and an HTTP listener on 127.0.0.1:0. It resolves once the node leads, and stops everything when
// the test ends.

import { request as httpRequest } from 'node:http';
import type { TestContext } from 'node:test';
import { loadConfig, type RuntimeConfig } from '../lib/config.js';
import type { EndpointDeps } from '../lib/endpoints.js';
import { encodeCommand, Fsm } from '../lib/fsm.js';
import { listenHttp, type HttpRoute } from '../lib/http.js';
import { nullLogger } from '../lib/log.js';
import type { QueryContext } from '../lib/query.js';
import { ELECTION_TIMEOUT_MS_MIN, RaftNode } from '../lib/raftnode.js';
import { StateStore } from '../lib/state.js';
import { waitFor } from './support.js';

export interface ApiReply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  json(): unknown;
}

export interface ApiOverrides {
  readonly rpcHoldTimeoutMs: number;
  readonly defaultQueryTimeMs: number;
  readonly maxQueryTimeMs: number;
  readonly config: Partial<RuntimeConfig>;
}

export interface TestApi {
  readonly url: string;
  readonly deps: EndpointDeps;
  readonly raft: RaftNode;
  readonly state: StateStore;
  /** One request without keep-alive; `body` is sent as is. */
  request(method: string, path: string, body?: string | Uint8Array, headers?: Record<string, string>): Promise<ApiReply>;
}

/** The node ID and Raft address of the test server (nothing listens on it: one server, no peers). */
const NODE_ID = '11111111-2222-3333-4444-555555555555';
const RAFT_ADDRESS = '127.0.0.1:8300';

/** Starts the API serving `routes(deps)`; waits until the Raft node leads; stops with the test. */
export async function startApi(t: TestContext, routes: (deps: EndpointDeps) => HttpRoute[], overrides: Partial<ApiOverrides> = {}): Promise<TestApi> {
  const config: RuntimeConfig = {
    ...loadConfig(['-dev']).config,
    ...overrides.config,
    ...(overrides.rpcHoldTimeoutMs === undefined ? {} : { rpcHoldTimeoutMs: overrides.rpcHoldTimeoutMs }),
    ...(overrides.defaultQueryTimeMs === undefined ? {} : { defaultQueryTimeMs: overrides.defaultQueryTimeMs }),
    ...(overrides.maxQueryTimeMs === undefined ? {} : { maxQueryTimeMs: overrides.maxQueryTimeMs }),
  };
  const logger = nullLogger();
  const state = new StateStore({ nowMs: Date.now });
  const fsm = new Fsm(state);
  const raft = await RaftNode.start({
    id: NODE_ID,
    address: RAFT_ADDRESS,
    inMemory: true,
    bootstrap: [{ suffrage: 0, id: NODE_ID, address: RAFT_ADDRESS }],
    fsm,
    logger,
    electionTimeoutMs: ELECTION_TIMEOUT_MS_MIN,
    transport: { isExternallyAccepted: true },
  });
  t.after(() => raft.shutdown());
  const query: QueryContext = {
    state,
    server: raft,
    rpcHoldTimeoutMs: config.rpcHoldTimeoutMs,
    rng: Math.random,
    defaultQueryTimeMs: config.defaultQueryTimeMs,
    maxQueryTimeMs: config.maxQueryTimeMs,
  };
  const deps: EndpointDeps = { query, apply: (command) => raft.apply(encodeCommand(command)), config, logger, nowMs: Date.now };
  const listener = await listenHttp('127.0.0.1', 0, { routes: routes(deps), logger, isPrettyByDefault: false, isUiEnabled: false });
  t.after(() => listener.close());
  await waitFor('the test server to lead', () => (raft.isLeader ? true : undefined), 5_000);
  const { port } = listener.address;
  return { url: `http://127.0.0.1:${port}`, deps, raft, state, request: (method, path, body, headers) => send(port, method, path, body, headers) };
}

function send(port: number, method: string, path: string, body?: string | Uint8Array, headers: Record<string, string> = {}): Promise<ApiReply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
    const outgoing = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: { Connection: 'close', ...(payload === undefined ? {} : { 'Content-Length': String(payload.length) }), ...headers },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text, json: () => JSON.parse(text) as unknown });
        });
      },
    );
    outgoing.on('error', reject);
    outgoing.end(payload);
  });
}
