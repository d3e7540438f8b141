// The HTTP API transport: node:http listeners, routing, limits and Consul's response conventions.
//
// Applications, the consul CLI and client libraries (npm `consul`, python-consul, the Go api
// package) speak to the agent over this API, and they match on details: status codes, plain-text
// error bodies, `Content-Type: application/json`, 405 with an `Allow` header, `?pretty`, the 413
// and 429 texts. This module owns those conventions so that endpoint code only returns values or
// throws an HttpError; it never writes to a socket itself.
//
// A request passes, in Consul's order: the per-client connection limit (go-connlimit: the
// (N+1)th concurrent connection from one IP gets a raw 429 and is closed), Go's request-line
// checks (bad percent-escape -> "400 Bad Request", missing Host -> 400), the printable-path
// filter (cleanhttp: 400, empty body), Go's ServeMux (unclean paths and "/tree" for a "/tree/"
// route -> 301), then for a routed path Consul's `wrap`: response headers, query parse (500),
// OPTIONS, method check (405), and here the body limit (413 before the handler runs, checked
// on Content-Length before anything is buffered, then counted as it streams).
//
// Routes are exact paths, or prefixes ending in "/" whose remainder is the parameter
// (`/v1/kv/` serves `/v1/kv/a/b` with param "a/b"). HEAD is not a synonym for GET: Consul's
// wrap answers it 405 like any unlisted method. JSON is escaped as Go's encoder does (<, >, &)
// and header names go out in Go's canonical case (X-Consul-Knownleader), as Consul sends them.
//
// Invariants: a handler never sees a body over its route's limit; every routed response, errors
// included, carries the configured response headers; close() leaves no request's signal unaborted.
//
// Not here: gzip (Consul compresses responses >= 1400 bytes for clients sending Accept-Encoding;
// we send `Vary: Accept-Encoding` but never compress), TLS, http_config.block_endpoints.
// Consul sets no read timeouts; we bound slow headers and bodies (slowloris) with named limits,
// and never time out the response side, where blocking queries wait up to 10m + jitter.
//
// Reference: Consul agent/http.go (wrap, Index, setHeaders, setACLDefaultPolicy,
// parseTokenInternal, parseTokenFromHeaders), agent/agent.go (listeners, connlimit with a 10 ms
// write deadline), agent/kvs_endpoint.go and agent/txn_endpoint.go (413 text shape),
// hashicorp/go-connlimit connlimit.go, hashicorp/go-cleanhttp handlers.go, Go net/http
// (server.go readRequest errors, ServeMux cleanPath and redirects).

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from './log.js';

/** A parsed request as endpoint handlers see it. */
export interface HttpRequest {
  readonly method: string;
  /** The percent-decoded path (`/v1/kv/locks%2Fjob` arrives as `/v1/kv/locks/job`); invalid UTF-8 becomes U+FFFD. */
  readonly path: string;
  /** For a prefix route, the decoded remainder after the prefix; "" for exact routes. */
  readonly param: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage['headers'];
  /** The request body, fully read (empty when none); never larger than the route's bodyBytesMax. */
  readonly body: Uint8Array;
  /** The ACL token: ?token, else X-Consul-Token, else Authorization: Bearer <t>, else '' (the caller applies the agent's default token). */
  readonly token: string;
  /** The client's IP address (IPv4-mapped IPv6 shown as IPv4), for logs and per-client limits. */
  readonly remoteAddress: string;
  /** Aborted when the client disconnects or the server shuts down (blocking queries stop waiting). */
  readonly signal: AbortSignal;
}

/** What a handler returns: `json` is serialized, `text` sent as text/plain, `bytes` as is. */
export type HttpResponse =
  | { readonly status?: number; readonly json: unknown; readonly headers?: Readonly<Record<string, string>> }
  | { readonly status?: number; readonly text: string; readonly headers?: Readonly<Record<string, string>> }
  | { readonly status?: number; readonly bytes: Uint8Array; readonly contentType: string; readonly headers?: Readonly<Record<string, string>> };

export type HttpHandler = (request: HttpRequest) => HttpResponse | Promise<HttpResponse>;

export interface HttpRoute {
  /** An exact path, or a prefix ending in "/" (Consul's convention for parameterized routes). */
  readonly path: string;
  /** Allowed methods, upper case; OPTIONS is added automatically. */
  readonly methods: readonly string[];
  readonly handler: HttpHandler;
  /** Largest request body this route accepts (default HTTP_BODY_BYTES_MAX); larger gets 413 before the handler runs. */
  readonly bodyBytesMax?: number;
  /** Text of the 413, given (bytes, max): bytes is the Content-Length, or for a body without one the count received when it crossed max. */
  readonly tooLargeText?: (bytes: number, max: number) => string;
}

export interface HttpServerOptions {
  readonly routes: readonly HttpRoute[];
  readonly logger: Logger;
  /** Consul pretty-prints every JSON response in -dev mode. */
  readonly isPrettyByDefault: boolean;
  readonly isUiEnabled: boolean;
  /** limits.http_max_conns_per_client (default HTTP_MAX_CONNS_PER_CLIENT); 0 = unlimited. */
  readonly maxConnsPerClient?: number;
  /**
   * http_config.response_headers plus X-Consul-Default-ACL-Policy. All go on every routed
   * response (errors, 405 and 413 included); like Consul, the not-found and "/" answers carry
   * the configured headers but not the ACL policy header.
   */
  readonly responseHeaders?: Readonly<Record<string, string>>;
  /** Overrides of the timeout limits below (tests shrink them). */
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  readonly keepAliveTimeoutMs?: number;
}

/** An error that becomes a plain-text response with Consul's status code and message. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A running HTTP listener. */
export interface HttpListener {
  readonly address: AddressInfo;
  /** Stops accepting, aborts every in-flight request's signal, and resolves once all connections are gone. */
  close(): Promise<void>;
}

/** Request line plus headers; Go's http.DefaultMaxHeaderBytes, which Consul keeps. Beyond: 431. */
export const HTTP_HEADERS_BYTES_MAX = 1024 * 1024;
/**
 * Default request body limit. Consul has no generic one; its two explicit limits, kv_max_value_size
 * and txn_max_req_len, both default to Raft's suggested entry size, 512 KiB, which we apply to all.
 */
export const HTTP_BODY_BYTES_MAX = 512 * 1024;
/** limits.http_max_conns_per_client default. */
export const HTTP_MAX_CONNS_PER_CLIENT = 200;
/** Time allowed for a request line and headers to arrive (slowloris). Consul sets none. */
export const HTTP_HEADERS_TIMEOUT_MS = 30_000;
/** Time allowed from the request's start until its body is complete; never applies to the response. */
export const HTTP_REQUEST_TIMEOUT_MS = 5 * 60_000;
/** An idle keep-alive connection is closed after this long. */
export const HTTP_KEEP_ALIVE_TIMEOUT_MS = 30_000;
/** How often the timeouts above are checked. */
export const HTTP_TIMEOUT_CHECK_INTERVAL_MS = 1_000;
/** A refused connection is destroyed this long after its 429, so the client can read it first. */
export const HTTP_REFUSED_LINGER_MS = 1_000;
/** close() waits this long for aborted handlers to answer before cutting their connections. */
export const HTTP_CLOSE_GRACE_MS = 2_000;

/** Consul's body for a /v1/ path that no route serves. */
export const UNKNOWN_ENDPOINT_TEXT = 'Invalid URL path: not a recognized HTTP API endpoint';
/** Consul's body for a path outside /v1/ (other than "/"). */
export const NON_API_PATH_TEXT = "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'";
export const UI_DISABLED_TEXT = 'Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent configuration and restart.';
/** go-connlimit's body for a connection over the per-client limit. */
export const TOO_MANY_CONNS_TEXT = 'Your IP is issuing too many concurrent connections, please rate limit your calls\n';
export const ACL_POLICY_HEADER = 'X-Consul-Default-ACL-Policy';

/** The default 413 text: Consul's shape without a config link (Consul itself has no generic limit). */
export function bodyTooLargeText(bytes: number, max: number): string {
  return `Request body(${bytes} bytes) too large, max size: ${max} bytes.`;
}

/**
 * The request's ACL token as Consul reads it: a non-empty ?token, else X-Consul-Token, else the
 * first word after "Bearer " (scheme case-insensitive) in Authorization, else ''.
 */
export function parseToken(query: URLSearchParams, headers: IncomingMessage['headersDistinct']): string {
  const fromQuery = query.get('token');
  if (fromQuery) return fromQuery;
  const fromHeader = headers['x-consul-token']?.[0];
  if (fromHeader) return fromHeader;
  const parts = (headers['authorization']?.[0] ?? '').split(' ');
  if (parts.length < 2 || parts[0]!.toLowerCase() !== 'bearer') return '';
  return (parts.slice(1).join(' ').trim().split(' ')[0] ?? '').trim();
}

/**
 * Starts one listener on host:port serving the routes. Resolves once bound; rejects with the
 * bind error (EADDRINUSE, EACCES...) so the agent can report it and exit.
 */
export async function listenHttp(host: string, port: number, options: HttpServerOptions): Promise<HttpListener> {
  const transport = new Transport(options);
  await new Promise<void>((resolve, reject) => {
    transport.server.once('error', reject);
    transport.server.listen(port, host, () => {
      transport.server.off('error', reject);
      resolve();
    });
  });
  return { address: transport.server.address() as AddressInfo, close: () => transport.close() };
}

/** Matches paths to routes: exact routes first, then the longest matching prefix route. */
export class Router {
  private readonly exact = new Map<string, HttpRoute>();
  /** Invariant: sorted by descending prefix length, so the first match is the longest. */
  private readonly prefixes: HttpRoute[] = [];

  constructor(routes: readonly HttpRoute[]) {
    for (const route of routes) {
      if (route.path.endsWith('/')) this.prefixes.push(route);
      else {
        if (this.exact.has(route.path)) throw new Error(`duplicate HTTP route ${route.path}`);
        this.exact.set(route.path, route);
      }
    }
    this.prefixes.sort((a, b) => b.path.length - a.path.length);
  }

  /** The route serving `path` and the parameter it extracts, or undefined. */
  match(path: string): { route: HttpRoute; param: string } | undefined {
    const exact = this.exact.get(path);
    if (exact) return { route: exact, param: '' };
    for (const route of this.prefixes) {
      if (path.startsWith(route.path)) return { route, param: path.slice(route.path.length) };
    }
    return undefined;
  }

  /** Go's mux sends "/tree" to "/tree/" when only the prefix route "/tree/" exists. */
  isTreeWithoutSlash(path: string): boolean {
    return !this.exact.has(path) && this.prefixes.some((route) => route.path === `${path}/`);
  }
}

/** Go's net/http answer to a request it cannot parse (server.go), written raw on the socket. */
const GO_BAD_REQUEST = goErrorResponse('400 Bad Request', '400 Bad Request');
const GO_HEADERS_TOO_LARGE = goErrorResponse('431 Request Header Fields Too Large', '431 Request Header Fields Too Large');
const REQUEST_TIMEOUT_RESPONSE = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n';
const TOO_MANY_CONNS_RESPONSE =
  'HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n' +
  `Content-Length: ${Buffer.byteLength(TOO_MANY_CONNS_TEXT)}\r\nConnection: close\r\n\r\n${TOO_MANY_CONNS_TEXT}`;
/** Consul redacts tokens carried in the path of the legacy ACL endpoints. */
const LEGACY_ACL_PATH = /^(\/v1\/acl\/(?:create|update|destroy|info|clone|list)\/)[^?]+/;
/** unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
const NON_PRINTABLE = /[^\p{L}\p{M}\p{N}\p{P}\p{S} ]/u;

/** Thrown inside a request when its client went away: nothing is left to answer. */
class RequestGone extends Error {}

/** One listener's state: connections per client, in-flight requests, and the routing pipeline. */
class Transport {
  readonly server: Server;
  private readonly router: Router;
  private readonly connsByClient = new Map<string, Set<Socket>>();
  /** Sockets answered 429: requests parsed on them are ignored. */
  private readonly refused = new WeakSet<Socket>();
  /** The response in progress on each socket, so a client error mid-response only drops it. */
  private readonly responding = new WeakMap<Socket, ServerResponse>();
  /** Invariant: holds exactly the requests whose response has not closed. */
  private readonly inflight = new Set<AbortController>();
  private readonly signals = new WeakMap<IncomingMessage, AbortSignal>();
  private isClosing = false;
  /** Set by close(): called when the last in-flight request's response closes. */
  private onDrained: (() => void) | undefined;

  constructor(private readonly options: HttpServerOptions) {
    this.router = new Router(options.routes);
    const headersTimeout = options.headersTimeoutMs ?? HTTP_HEADERS_TIMEOUT_MS;
    const requestTimeout = Math.max(options.requestTimeoutMs ?? HTTP_REQUEST_TIMEOUT_MS, headersTimeout);
    this.server = createServer({
      maxHeaderSize: HTTP_HEADERS_BYTES_MAX,
      headersTimeout,
      requestTimeout,
      connectionsCheckingInterval: Math.max(10, Math.min(HTTP_TIMEOUT_CHECK_INTERVAL_MS, Math.floor(headersTimeout / 4))),
      keepAliveTimeout: options.keepAliveTimeoutMs ?? HTTP_KEEP_ALIVE_TIMEOUT_MS,
      // Go answers a missing Host with a body naming the problem; we check it ourselves.
      requireHostHeader: false,
    });
    // Blocking queries hold a response open for minutes: no inactivity timeout on sockets.
    this.server.timeout = 0;
    const onRequest = (request: IncomingMessage, response: ServerResponse): void => {
      this.serve(request, response).catch((error: unknown) => this.failed(request, response, error));
    };
    this.server.on('request', onRequest);
    // Answering 100 Continue only when the body is wanted lets a 413 reach the client before it sends.
    this.server.on('checkContinue', onRequest);
    this.server.on('connection', (socket: Socket) => this.admit(socket));
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => this.onClientError(error, socket));
  }

  async close(): Promise<void> {
    this.isClosing = true;
    const closed = new Promise<Error | undefined>((resolve) => this.server.close(resolve));
    this.server.closeIdleConnections();
    const drained = new Promise<void>((resolve) => (this.onDrained = resolve));
    for (const controller of this.inflight) controller.abort();
    if (this.inflight.size === 0) this.onDrained?.();
    let graceTimer: NodeJS.Timeout | undefined;
    await Promise.race([drained, new Promise((resolve) => (graceTimer = setTimeout(resolve, HTTP_CLOSE_GRACE_MS)))]);
    clearTimeout(graceTimer);
    // Handlers that ignored their signal, and keep-alive connections that just answered, go now.
    this.server.closeAllConnections();
    const error = await closed;
    if (error) throw error;
  }

  /** go-connlimit: count connections per IP; over the limit, write the raw 429 and close. */
  private admit(socket: Socket): void {
    const limit = this.options.maxConnsPerClient ?? HTTP_MAX_CONNS_PER_CLIENT;
    const client = clientAddress(socket);
    const conns = this.connsByClient.get(client) ?? new Set<Socket>();
    if (limit > 0 && conns.size >= limit) {
      this.refused.add(socket);
      this.options.logger.debug('refused connection over the per-client limit', { from: client, limit });
      socket.on('error', (error) => this.options.logger.debug('refused connection failed', { error: error.message }));
      socket.end(TOO_MANY_CONNS_RESPONSE);
      setTimeout(() => socket.destroy(), HTTP_REFUSED_LINGER_MS).unref();
      return;
    }
    conns.add(socket);
    this.connsByClient.set(client, conns);
    socket.once('close', () => {
      conns.delete(socket);
      if (conns.size === 0 && this.connsByClient.get(client) === conns) this.connsByClient.delete(client);
    });
  }

  /** Go's answers to unparseable requests; Node's timeouts also arrive here. */
  private onClientError(error: NodeJS.ErrnoException, socket: Socket): void {
    this.options.logger.debug('malformed HTTP request', { code: error.code ?? '', error: error.message });
    const inProgress = this.responding.get(socket);
    if (!socket.writable || this.refused.has(socket) || inProgress?.headersSent || error.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') socket.end(REQUEST_TIMEOUT_RESPONSE);
    else if (error.code === 'HPE_HEADER_OVERFLOW') socket.end(GO_HEADERS_TOO_LARGE);
    else socket.end(GO_BAD_REQUEST);
    socket.destroySoon();
  }

  private async serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (this.refused.has(request.socket)) return;
    const controller = this.track(request, response);
    const method = request.method ?? 'GET';
    if (request.httpVersion === '1.1' && request.headers.host === undefined) {
      return writeGoError(response, 400, 'Bad Request: missing required Host header');
    }
    const target = parseTarget(request.url ?? '/');
    if (target === 'asterisk') return method === 'OPTIONS' ? writeEmpty(response, 200) : writeGoError(response, 400, '');
    if (target === undefined) return writeGoError(response, 400, 'Bad Request');
    // cleanhttp.PrintablePathCheckHandler: a bare 400 before any routing.
    if (NON_PRINTABLE.test(target.path)) return writeEmpty(response, 400);
    // Go 1.22+ cleans the escaped path, so "%2F%2F" in a KV key routes while a literal "//" redirects.
    const cleaned = cleanPath(target.rawPath);
    if (cleaned !== target.rawPath) return writeRedirect(response, method, escapePath(Buffer.from(cleaned, 'latin1'), true), target.rawQuery);
    if (this.router.isTreeWithoutSlash(target.path)) {
      return writeRedirect(response, method, escapePath(Buffer.from(`${target.path}/`), false), target.rawQuery);
    }
    const match = this.router.match(target.path);
    if (match === undefined) return this.serveIndex(method, target.path, response);
    this.setRouteHeaders(response);
    const logUrl = redactUrl(target.rawPath, target.rawQuery);
    const query = parseQuery(target.rawQuery);
    if (query === undefined) {
      this.options.logger.error('Failed to decode query', { from: clientAddress(request.socket) });
      return writeEmpty(response, 500);
    }
    const allowed = ['OPTIONS', ...match.route.methods].join(',');
    if (method === 'OPTIONS') return writeEmpty(response, 200, { Allow: allowed });
    if (!match.route.methods.includes(method)) {
      response.setHeader('Allow', allowed);
      return writeText(response, 405, `method ${method} not allowed`);
    }
    if (method === 'GET' && Number(request.headers['content-length'] ?? 0) > 0) {
      this.options.logger.warn('GET request has a non-empty body that will be ignored', { url: logUrl, from: clientAddress(request.socket) });
    }
    const max = match.route.bodyBytesMax ?? HTTP_BODY_BYTES_MAX;
    const body = await readBody(request, response, max, controller.signal);
    if (typeof body === 'number') {
      response.setHeader('Connection', 'close');
      return writeText(response, 413, (match.route.tooLargeText ?? bodyTooLargeText)(body, max));
    }
    const parsed = { method, path: target.path, param: match.param, query, headers: request.headers };
    const token = parseToken(query, request.headersDistinct);
    const remoteAddress = clientAddress(request.socket);
    await this.invoke(match.route, { ...parsed, body, token, remoteAddress, signal: controller.signal }, response, logUrl);
  }

  private async invoke(route: HttpRoute, request: HttpRequest, response: ServerResponse, logUrl: string): Promise<void> {
    let result: HttpResponse;
    try {
      result = await route.handler(request);
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      this.options.logger.error('Request error', { method: request.method, url: logUrl, from: request.remoteAddress, error: error.message });
      return writeText(response, error.status, error.message);
    }
    this.options.logger.debug('Request finished', { method: request.method, url: logUrl, from: request.remoteAddress });
    writeResult(response, result, this.options.isPrettyByDefault || request.query.has('pretty'));
  }

  /** Consul's Index handler: "/" and every path no route serves. */
  private serveIndex(method: string, path: string, response: ServerResponse): void {
    for (const [name, value] of Object.entries(this.options.responseHeaders ?? {})) {
      if (name.toLowerCase() !== ACL_POLICY_HEADER.toLowerCase()) response.setHeader(canonicalHeaderName(name), value);
    }
    if (path !== '/') return writeText(response, 404, `${path.includes('/v1/') ? UNKNOWN_ENDPOINT_TEXT : NON_API_PATH_TEXT}\n`);
    if (this.options.isUiEnabled) return writeRedirect(response, method, '/ui/', '');
    writeText(response, 200, UI_DISABLED_TEXT);
  }

  /** What Consul's wrap sets before anything else, so errors carry them too. */
  private setRouteHeaders(response: ServerResponse): void {
    for (const [name, value] of Object.entries(this.options.responseHeaders ?? {})) response.setHeader(canonicalHeaderName(name), value);
    response.setHeader('Vary', 'Accept-Encoding');
  }

  /** Registers the request for close() and aborts its signal when its client goes away. */
  private track(request: IncomingMessage, response: ServerResponse): AbortController {
    const controller = new AbortController();
    this.inflight.add(controller);
    this.signals.set(request, controller.signal);
    this.responding.set(request.socket, response);
    response.once('close', () => {
      this.inflight.delete(controller);
      if (this.inflight.size === 0) this.onDrained?.();
      if (this.responding.get(request.socket) === response) this.responding.delete(request.socket);
      if (!response.writableFinished) controller.abort();
    });
    if (this.isClosing) {
      response.shouldKeepAlive = false;
      controller.abort();
    }
    return controller;
  }

  private failed(request: IncomingMessage, response: ServerResponse, error: unknown): void {
    // A client gone mid-body gets no answer; its connection is dropped so close() need not wait.
    if (error instanceof RequestGone || response.destroyed) return void response.destroy();
    // A handler that gave up because its signal aborted (disconnect, shutdown): Consul logs "Request cancelled".
    if (this.signals.get(request)?.aborted) {
      this.options.logger.info('Request cancelled', { method: request.method ?? '', from: clientAddress(request.socket), error: describe(error) });
      return void response.destroy();
    }
    this.options.logger.error('Request error', { method: request.method ?? '', from: clientAddress(request.socket), error: describe(error) });
    if (!response.headersSent) writeText(response, 500, describe(error));
    else response.destroy();
  }
}

/**
 * The body, or the byte count that broke `max` (Content-Length first, so nothing is buffered).
 * Rejects with RequestGone when the client disconnects or times out mid-body.
 */
function readBody(request: IncomingMessage, response: ServerResponse, max: number, signal: AbortSignal): Promise<Uint8Array | number> {
  const declared = Number(request.headers['content-length'] ?? -1);
  if (declared > max) return Promise.resolve(declared);
  if (/100-continue/i.test(String(request.headers['expect'] ?? ''))) response.writeContinue();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const finish = (outcome: () => void): void => {
      request.off('data', onData).off('end', onEnd).off('error', onGone).off('aborted', onGone);
      signal.removeEventListener('abort', onGone);
      outcome();
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > max) finish(() => resolve(received));
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish(() => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    const onGone = (): void => finish(() => reject(new RequestGone('client went away mid-body')));
    if (signal.aborted) return onGone();
    request.on('data', onData).on('end', onEnd).on('error', onGone).on('aborted', onGone);
    signal.addEventListener('abort', onGone);
  });
}

type Target = { path: string; rawPath: string; rawQuery: string } | 'asterisk' | undefined;

/**
 * Splits the request target as Go's url.ParseRequestURI does: origin form, absolute form, or
 * "*". The path's escapes must be well formed; its bytes are UTF-8 with U+FFFD for bad
 * sequences. Node hands us the target's bytes as latin1 characters.
 */
function parseTarget(url: string): Target {
  if (url === '*') return 'asterisk';
  const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*/.exec(url);
  const rest = absolute ? url.slice(absolute[0].length) : url;
  if (!absolute && !rest.startsWith('/')) return undefined;
  const queryStart = rest.indexOf('?');
  const rawPath = queryStart === -1 ? rest : rest.slice(0, queryStart);
  const rawQuery = queryStart === -1 ? '' : rest.slice(queryStart + 1);
  const bytes = percentDecode(Buffer.from(rawPath, 'latin1'));
  if (bytes === undefined) return undefined;
  return { path: new TextDecoder('utf-8').decode(bytes), rawPath, rawQuery };
}

/** Decodes %XX escapes over bytes; undefined for a malformed escape (Go: 400). */
function percentDecode(input: Buffer): Buffer | undefined {
  if (!input.includes(0x25)) return input;
  const output = Buffer.alloc(input.length);
  let length = 0;
  for (let index = 0; index < input.length; index++) {
    const byte = input[index]!;
    if (byte !== 0x25) {
      output[length++] = byte;
      continue;
    }
    const hex = input.toString('latin1', index + 1, index + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
    output[length++] = parseInt(hex, 16);
    index += 2;
  }
  return output.subarray(0, length);
}

/** Go's url.ParseQuery: undefined on a malformed escape or a ';' separator (Consul answers 500). */
function parseQuery(rawQuery: string): URLSearchParams | undefined {
  if (rawQuery.includes(';') || /%(?![0-9A-Fa-f]{2})/.test(rawQuery)) return undefined;
  const bytes = Buffer.from(rawQuery, 'latin1');
  return new URLSearchParams(bytes.toString('utf8'));
}

/** Go ServeMux's cleanPath: path.Clean, keeping a trailing slash. */
function cleanPath(path: string): string {
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const cleaned = `/${segments.join('/')}`;
  return path.endsWith('/') && cleaned !== '/' ? `${cleaned}/` : cleaned;
}

/** The URL for logs: ?token values and legacy ACL path tokens hidden, as Consul does. */
function redactUrl(rawPath: string, rawQuery: string): string {
  const path = rawPath.replace(LEGACY_ACL_PATH, '$1<hidden>');
  if (rawQuery === '') return path;
  const parts = rawQuery.split('&').map((part) => (/^token(=|$)/.test(part) ? 'token=<hidden>' : part));
  return `${path}?${parts.join('&')}`;
}

function writeResult(response: ServerResponse, result: HttpResponse, isPretty: boolean): void {
  for (const [name, value] of Object.entries(result.headers ?? {})) response.setHeader(canonicalHeaderName(name), value);
  const status = result.status ?? 200;
  if ('text' in result) return writeText(response, status, result.text);
  if ('bytes' in result) return writeBody(response, status, result.contentType, result.bytes);
  // Consul's wrap writes no body for a nil result (agent service register answers 200, empty).
  if (result.json === undefined) return writeEmpty(response, status);
  writeBody(response, status, 'application/json', goJsonEscape(serializeJson(result.json, isPretty)));
}

/** Marks bigints inside JSON.stringify's output; random per process, so user data cannot forge it. */
const BIGINT_MARKER = `bigint-${randomUUID()}-`;
const BIGINT_MARKED = new RegExp(`"${BIGINT_MARKER}(-?\\d+)"`, 'g');

/**
 * JSON text, with bigints (uint64 values past 2^53, such as KV Flags) as exact integer literals
 * the way Go writes them. The common case, no bigint, is one plain JSON.stringify: it throws a
 * TypeError on a bigint, and only then is the value serialized again with a marking replacer.
 */
function serializeJson(value: unknown, isPretty: boolean): string {
  const indent = isPretty ? 4 : undefined;
  let text: string;
  try {
    text = JSON.stringify(value, null, indent);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    text = JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? `${BIGINT_MARKER}${item.toString()}` : item), indent).replace(BIGINT_MARKED, '$1');
  }
  return isPretty ? `${text}\n` : text;
}

/**
 * Go's encoding/json escapes <, >, & and U+2028/U+2029 inside strings; those characters can
 * only occur inside strings in JSON text, so replacing them in the output is exact.
 */
function goJsonEscape(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Plain text; an empty text is an empty body without Content-Type, as Go sends a bare WriteHeader. */
function writeText(response: ServerResponse, status: number, text: string): void {
  if (text === '') return writeEmpty(response, status);
  writeBody(response, status, 'text/plain; charset=utf-8', text);
}

function writeBody(response: ServerResponse, status: number, contentType: string, body: string | Uint8Array): void {
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  response.writeHead(status, { 'Content-Type': contentType, 'Content-Length': length });
  response.end(body);
}

function writeEmpty(response: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  response.writeHead(status, { ...headers, 'Content-Length': 0 });
  response.end();
}

/** Go's http.Redirect with 301 to an escaped path: an HTML body for GET only. */
function writeRedirect(response: ServerResponse, method: string, escapedPath: string, rawQuery: string): void {
  const location = escapedPath + (rawQuery === '' ? '' : `?${rawQuery}`);
  response.setHeader('Location', location);
  if (method !== 'GET' && method !== 'HEAD') return writeEmpty(response, 301);
  const body = method === 'GET' ? `<a href="${htmlEscape(location)}">Moved Permanently</a>.\n\n` : '';
  writeBody(response, 301, 'text/html; charset=utf-8', body);
}

/** A Go server-level error: status line reason carries the detail, body repeats it, then close. */
function writeGoError(response: ServerResponse, status: number, reason: string): void {
  response.shouldKeepAlive = false;
  if (reason === '') return writeEmpty(response, status, { Connection: 'close' });
  const body = `${status} ${reason}`;
  response.writeHead(status, reason, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close', 'Content-Length': Buffer.byteLength(body) });
  response.end(body);
}

function goErrorResponse(statusLine: string, body: string): string {
  return `HTTP/1.1 ${statusLine}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${body}`;
}

/** Go's url.URL path escaping: unreserved characters and $&+,/:;=@ stay (and % when already escaped), other bytes become %XX. */
function escapePath(bytes: Uint8Array, isEscaped: boolean): string {
  let escaped = '';
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    const isKept = /[A-Za-z0-9\-_.~$&+,/:;=@]/.test(char) || (isEscaped && char === '%');
    escaped += isKept ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return escaped;
}

function htmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&#34;').replace(/'/g, '&#39;');
}

/** Go's CanonicalHeaderKey, so names go on the wire as Consul sends them (X-Consul-Knownleader). */
function canonicalHeaderName(name: string): string {
  const cached = canonicalNames.get(name);
  if (cached !== undefined) return cached;
  const canonical = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name) ? name.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash: string, letter: string) => dash + letter.toUpperCase()) : name;
  // Header names come from our own code and configuration, so the cache stays small; the bound
  // only guards against a future caller passing request data.
  if (canonicalNames.size < CANONICAL_NAMES_CACHED_MAX) canonicalNames.set(name, canonical);
  return canonical;
}

/** Canonical header names computed so far (every response sets the same few). */
const canonicalNames = new Map<string, string>();
const CANONICAL_NAMES_CACHED_MAX = 1024;

/** The client's IP as go-connlimit keys it; IPv4-mapped IPv6 is shown as IPv4. */
function clientAddress(socket: Socket): string {
  const address = socket.remoteAddress ?? '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
