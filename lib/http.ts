// The HTTP API transport: listeners, routing, limits and Consul's response conventions.
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
// included, carries the configured response headers; close() leaves no request's signal unaborted
// (a signal first asked for after its request was aborted is born aborted).
//
// The wire (request parsing, keep-alive, timeouts, Go's answers to malformed requests) is
// lib/http1.ts, on node:net rather than node:http: see its header for the measured reason.
//
// Throughput (a KV GET is mostly this module's work): a request that declares no body and whose
// handler returns a value, not a promise, is answered in the tick it arrived; the AbortSignal is
// made only if a handler reads it; log-only strings are built only when logged. A frozen JSON
// value (one the handler promises never changes) is serialized once and its answer reused while
// the next one is identical: a write that wakes 10,000 blocking queries on a key then costs one
// serialization and one shared response buffer, not 10,000.
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
import type { AddressInfo, Socket } from 'node:net';
import { clientAddress, Http1Gone, Http1Server, type AbortSignalLike, type HeaderList, type Http1Exchange } from './http1.js';
import type { Logger } from './log.js';

/** A parsed request as endpoint handlers see it. */
export type { AbortSignalLike } from './http1.js';

export interface HttpRequest {
  readonly method: string;
  /** The percent-decoded path (`/v1/kv/locks%2Fjob` arrives as `/v1/kv/locks/job`); invalid UTF-8 becomes U+FFFD. */
  readonly path: string;
  /** For a prefix route, the decoded remainder after the prefix; "" for exact routes. */
  readonly param: string;
  readonly query: URLSearchParams;
  /** A header's first value by case-insensitive name (Go's Header.Get), or undefined. */
  header(name: string): string | undefined;
  /** The request body, fully read (empty when none); never larger than the route's bodyBytesMax. */
  readonly body: Uint8Array;
  /** The ACL token: ?token, else X-Consul-Token, else Authorization: Bearer <t>, else '' (the caller applies the agent's default token). */
  readonly token: string;
  /** The client's IP address (IPv4-mapped IPv6 shown as IPv4), for logs and per-client limits. */
  readonly remoteAddress: string;
  /** Aborted when the client disconnects or the server shuts down (blocking queries stop waiting). */
  readonly signal: AbortSignalLike;
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
export function parseToken(query: URLSearchParams, headers: Readonly<Record<string, readonly string[] | undefined>>): string {
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
  const address = await transport.wire.listen(port, host);
  return { address, close: () => transport.wire.close(HTTP_CLOSE_GRACE_MS) };
}

/** Matches paths to routes: exact routes first, then the longest matching prefix route. */
export class Router {
  private readonly exact = new Map<string, HttpRoute>();
  /** Invariant: sorted by descending prefix length, so the first match is the longest. */
  private readonly prefixes: HttpRoute[] = [];
  /** Each prefix route's path without its final slash ("/v1/kv" for "/v1/kv/"). */
  private readonly treeRoots = new Set<string>();

  constructor(routes: readonly HttpRoute[]) {
    for (const route of routes) {
      if (route.path.endsWith('/')) this.prefixes.push(route);
      else {
        if (this.exact.has(route.path)) throw new Error(`duplicate HTTP route ${route.path}`);
        this.exact.set(route.path, route);
      }
    }
    this.prefixes.sort((a, b) => b.path.length - a.path.length);
    for (const route of this.prefixes) this.treeRoots.add(route.path.slice(0, -1));
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
    return !this.exact.has(path) && this.treeRoots.has(path);
  }
}

const TOO_MANY_CONNS_RESPONSE =
  'HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n' +
  `Content-Length: ${Buffer.byteLength(TOO_MANY_CONNS_TEXT)}\r\nConnection: close\r\n\r\n${TOO_MANY_CONNS_TEXT}`;
/** Consul redacts tokens carried in the path of the legacy ACL endpoints. */
const LEGACY_ACL_PATH = /^(\/v1\/acl\/(?:create|update|destroy|info|clone|list)\/)[^?]+/;
/** unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
const NON_PRINTABLE = /[^\p{L}\p{M}\p{N}\p{P}\p{S} ]/u;

/** The HttpRequest handlers get; `signal` is its exchange's, made on first use. */
class RoutedRequest implements HttpRequest {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly param: string,
    readonly query: URLSearchParams,
    readonly body: Uint8Array,
    readonly token: string,
    private readonly exchange: Http1Exchange,
  ) {}

  get remoteAddress(): string {
    return this.exchange.remoteAddress;
  }

  header(name: string): string | undefined {
    return this.exchange.header(name);
  }

  /** The exchange is its own abort signal (see AbortSignalLike). */
  get signal(): AbortSignalLike {
    return this.exchange;
  }
}

/** One listener's state: connections per client and the routing pipeline. */
class Transport {
  readonly wire: Http1Server;
  private readonly router: Router;
  private readonly connsByClient = new Map<string, Set<Socket>>();
  /** What Consul's wrap sets before anything else, so errors carry them too: configured headers, then Vary. */
  private readonly routeHeaders: HeaderList;
  /** Consul's Index handler sends the configured headers without the ACL policy one. */
  private readonly indexHeaders: HeaderList;

  constructor(private readonly options: HttpServerOptions) {
    this.router = new Router(options.routes);
    const configured = Object.entries(options.responseHeaders ?? {});
    const routeHeaders = headerList(configured);
    putHeader(routeHeaders, 'Vary', 'Accept-Encoding');
    this.routeHeaders = routeHeaders;
    this.indexHeaders = headerList(configured.filter(([name]) => name.toLowerCase() !== ACL_POLICY_HEADER.toLowerCase()));
    const headersTimeoutMs = options.headersTimeoutMs ?? HTTP_HEADERS_TIMEOUT_MS;
    this.wire = new Http1Server({
      logger: options.logger,
      headersBytesMax: HTTP_HEADERS_BYTES_MAX,
      headersTimeoutMs,
      requestTimeoutMs: Math.max(options.requestTimeoutMs ?? HTTP_REQUEST_TIMEOUT_MS, headersTimeoutMs),
      keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? HTTP_KEEP_ALIVE_TIMEOUT_MS,
      onConnection: (socket) => this.admit(socket),
      onConnectionClosed: (socket) => this.release(socket),
      onRequest: (exchange) => {
        try {
          this.serve(exchange);
        } catch (error) {
          this.failed(exchange, [], error);
        }
      },
    });
  }

  /** go-connlimit: count connections per IP; over the limit, write the raw 429 and close. */
  private admit(socket: Socket): boolean {
    const limit = this.options.maxConnsPerClient ?? HTTP_MAX_CONNS_PER_CLIENT;
    const client = clientAddress(socket);
    const conns = this.connsByClient.get(client) ?? new Set<Socket>();
    if (limit > 0 && conns.size >= limit) {
      this.options.logger.debug('refused connection over the per-client limit', { from: client, limit });
      socket.on('error', (error) => this.options.logger.debug('refused connection failed', { error: error.message }));
      socket.end(TOO_MANY_CONNS_RESPONSE);
      setTimeout(() => socket.destroy(), HTTP_REFUSED_LINGER_MS).unref();
      return false;
    }
    conns.add(socket);
    this.connsByClient.set(client, conns);
    return true;
  }

  /** An admitted connection closed: its slot is free. */
  private release(socket: Socket): void {
    const client = clientAddress(socket);
    const conns = this.connsByClient.get(client);
    if (conns === undefined) return;
    conns.delete(socket);
    if (conns.size === 0) this.connsByClient.delete(client);
  }

  /** Go's request-target checks and ServeMux redirects; a routed path goes on to Consul's wrap (serveRoute). */
  private serve(exchange: Http1Exchange): void {
    const { method } = exchange;
    const target = parseTarget(exchange.target);
    if (target === 'asterisk') return method === 'OPTIONS' ? writeEmpty(exchange, 200, []) : writeGoError(exchange, 400, '');
    if (target === undefined) return writeGoError(exchange, 400, 'Bad Request');
    // cleanhttp.PrintablePathCheckHandler: a bare 400 before any routing.
    if (!isPrintable(target.path)) return writeEmpty(exchange, 400, []);
    // Go 1.22+ cleans the escaped path, so "%2F%2F" in a KV key routes while a literal "//" redirects.
    const cleaned = cleanPath(target.rawPath);
    if (cleaned !== target.rawPath) return writeRedirect(exchange, [], escapePath(Buffer.from(cleaned, 'latin1'), true), target.rawQuery);
    if (this.router.isTreeWithoutSlash(target.path)) {
      return writeRedirect(exchange, [], escapePath(Buffer.from(`${target.path}/`), false), target.rawQuery);
    }
    const match = this.router.match(target.path);
    if (match === undefined) return this.serveIndex(exchange, target.path);
    this.serveRoute(exchange, target, match.route, match.param);
  }

  /** Consul's wrap: its headers on every answer, then the query, OPTIONS, the method, and the body limit. */
  private serveRoute(exchange: Http1Exchange, target: ParsedTarget, route: HttpRoute, param: string): void {
    const { method } = exchange;
    const query = parseQuery(target.rawQuery);
    if (query === undefined) {
      this.options.logger.error('Failed to decode query', { from: exchange.remoteAddress });
      return writeEmpty(exchange, 500, this.routeHeaders);
    }
    if (method === 'OPTIONS' || !route.methods.includes(method)) {
      const headers = [...this.routeHeaders];
      putHeader(headers, 'Allow', ['OPTIONS', ...route.methods].join(','));
      return method === 'OPTIONS' ? writeEmpty(exchange, 200, headers) : writeText(exchange, 405, headers, `method ${method} not allowed`);
    }
    if (method === 'GET' && exchange.bodyLength !== 0) {
      this.options.logger.warn('GET request has a non-empty body that will be ignored', { url: redactUrl(target), from: exchange.remoteAddress });
    }
    const max = route.bodyBytesMax ?? HTTP_BODY_BYTES_MAX;
    const onBody = (body: Uint8Array | number): void => {
      if (typeof body === 'number') return writeText(exchange, 413, this.routeHeaders, (route.tooLargeText ?? bodyTooLargeText)(body, max), true);
      const token = parseToken(query, tokenHeaders(exchange.rawHeaders));
      const routed = new RoutedRequest(method, target.path, param, query, body, token, exchange);
      this.invoke(exchange, route, routed, target);
    };
    let body: Uint8Array | number | Promise<Uint8Array | number>;
    try {
      body = exchange.readBody(max);
    } catch (error) {
      return this.failed(exchange, this.routeHeaders, error);
    }
    whenReady(body, onBody, (error) => this.failed(exchange, this.routeHeaders, error));
  }

  /** Runs the handler; answers with its result, or with the text of the HttpError it threw. */
  private invoke(exchange: Http1Exchange, route: HttpRoute, request: RoutedRequest, target: ParsedTarget): void {
    const onError = (error: unknown): void => this.answerError(exchange, request, target, error);
    let result: HttpResponse | Promise<HttpResponse>;
    try {
      result = route.handler(request);
    } catch (error) {
      return onError(error);
    }
    whenReady(result, (value) => this.answer(exchange, request, target, value), onError);
  }

  private answer(exchange: Http1Exchange, request: RoutedRequest, target: ParsedTarget, result: HttpResponse): void {
    const { logger } = this.options;
    if (logger.isEnabled('debug')) logger.debug('Request finished', { method: request.method, url: redactUrl(target), from: request.remoteAddress });
    writeResult(exchange, this.routeHeaders, result, this.options.isPrettyByDefault || request.query.has('pretty'));
  }

  private answerError(exchange: Http1Exchange, request: RoutedRequest, target: ParsedTarget, error: unknown): void {
    if (!(error instanceof HttpError)) return this.failed(exchange, this.routeHeaders, error);
    this.options.logger.error('Request error', { method: request.method, url: redactUrl(target), from: request.remoteAddress, error: error.message });
    writeText(exchange, error.status, this.routeHeaders, error.message);
  }

  /** Consul's Index handler: "/" and every path no route serves. */
  private serveIndex(exchange: Http1Exchange, path: string): void {
    const headers = this.indexHeaders;
    if (path !== '/') return writeText(exchange, 404, headers, `${path.includes('/v1/') ? UNKNOWN_ENDPOINT_TEXT : NON_API_PATH_TEXT}\n`);
    if (this.options.isUiEnabled) return writeRedirect(exchange, headers, '/ui/', '');
    writeText(exchange, 200, headers, UI_DISABLED_TEXT);
  }

  private failed(exchange: Http1Exchange, baseHeaders: HeaderList, error: unknown): void {
    // A client gone mid-body gets no answer; its connection is dropped so close() need not wait.
    if (error instanceof Http1Gone || exchange.isAnswered) return exchange.destroy();
    // A handler that gave up because its request was aborted (disconnect, shutdown): Consul logs "Request cancelled".
    if (exchange.isAborted) {
      this.options.logger.info('Request cancelled', { method: exchange.method, from: exchange.remoteAddress, error: describe(error) });
      return exchange.destroy();
    }
    this.options.logger.error('Request error', { method: exchange.method, from: exchange.remoteAddress, error: describe(error) });
    writeText(exchange, 500, baseHeaders, describe(error));
  }
}

/**
 * Calls `next` with the value: at once when it is not a promise, else once the promise
 * fulfils. Most requests wait for nothing, and answering them in the tick they arrived saves
 * the microtask hops an await would cost. `onError` gets the promise's rejection or whatever
 * `next` throws.
 */
function whenReady<T>(value: T | Promise<T>, next: (value: T) => void, onError: (error: unknown) => void): void {
  if (value instanceof Promise) {
    // One reaction, not then().catch()'s two promises: a parked query keeps it until answered.
    value.then((resolved) => {
      try {
        next(resolved);
      } catch (error) {
        onError(error);
      }
    }, onError);
    return;
  }
  try {
    next(value);
  } catch (error) {
    onError(error);
  }
}

/** The two headers parseToken reads, each with its values in arrival order (headersDistinct's shape, without building it all). */
function tokenHeaders(rawHeaders: readonly string[]): Record<string, string[]> {
  const found: Record<string, string[]> = {};
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const raw = rawHeaders[index]!;
    if (raw.length !== TOKEN_HEADER.length && raw.length !== AUTHORIZATION_HEADER.length) continue;
    const name = raw.toLowerCase();
    if (name === TOKEN_HEADER || name === AUTHORIZATION_HEADER) (found[name] ??= []).push(rawHeaders[index + 1]!);
  }
  return found;
}

const TOKEN_HEADER = 'x-consul-token';
const AUTHORIZATION_HEADER = 'authorization';

interface ParsedTarget {
  /** Decoded. */
  readonly path: string;
  /** As received (latin1 characters for the bytes). */
  readonly rawPath: string;
  readonly rawQuery: string;
}

type Target = ParsedTarget | 'asterisk' | undefined;

/**
 * Splits the request target as Go's url.ParseRequestURI does: origin form, absolute form, or
 * "*". The path's escapes must be well formed; its bytes are UTF-8 with U+FFFD for bad
 * sequences. Node hands us the target's bytes as latin1 characters.
 */
function parseTarget(url: string): Target {
  if (url === '*') return 'asterisk';
  const absolute = url.startsWith('/') ? null : /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*/.exec(url);
  const rest = absolute ? url.slice(absolute[0].length) : url;
  if (!absolute && !rest.startsWith('/')) return undefined;
  const queryStart = rest.indexOf('?');
  const rawPath = queryStart === -1 ? rest : rest.slice(0, queryStart);
  const rawQuery = queryStart === -1 ? '' : rest.slice(queryStart + 1);
  // Plain ASCII without escapes is its own decoding.
  if (isAscii(rawPath) && !rawPath.includes('%')) return { path: rawPath, rawPath, rawQuery };
  const bytes = percentDecode(Buffer.from(rawPath, 'latin1'));
  if (bytes === undefined) return undefined;
  return { path: UTF8.decode(bytes), rawPath, rawQuery };
}

/** Replaces invalid sequences with U+FFFD, as Go's routing of raw bytes shows them. */
const UTF8 = new TextDecoder('utf-8');

/** Whether every character is below 0x80 (so latin1 and UTF-8 readings agree). */
function isAscii(text: string): boolean {
  for (let index = 0; index < text.length; index++) if (text.charCodeAt(index) >= 0x80) return false;
  return true;
}

/** unicode.IsPrint over the path; printable ASCII (0x20-0x7E) is checked without the Unicode regex. */
function isPrintable(path: string): boolean {
  for (let index = 0; index < path.length; index++) {
    const code = path.charCodeAt(index);
    if (code < 0x20 || code > 0x7e) return !NON_PRINTABLE.test(path);
  }
  return true;
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
  if (rawQuery.includes(';') || (rawQuery.includes('%') && /%(?![0-9A-Fa-f]{2})/.test(rawQuery))) return undefined;
  // The characters are the target's bytes: read them as UTF-8 unless they are plain ASCII already.
  return new URLSearchParams(isAscii(rawQuery) ? rawQuery : Buffer.from(rawQuery, 'latin1').toString('utf8'));
}

/** Go ServeMux's cleanPath: path.Clean, keeping a trailing slash. */
function cleanPath(path: string): string {
  if (isCleanPath(path)) return path;
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const cleaned = `/${segments.join('/')}`;
  return path.endsWith('/') && cleaned !== '/' ? `${cleaned}/` : cleaned;
}

/** A rooted path with no empty (but a trailing), "." or ".." segment: cleanPath leaves it as it is. */
function isCleanPath(path: string): boolean {
  if (!path.startsWith('/') || path.includes('//')) return false;
  return !(path.includes('/./') || path.includes('/../') || path.endsWith('/.') || path.endsWith('/..'));
}

/** The URL for logs: ?token values and legacy ACL path tokens hidden, as Consul does. */
function redactUrl(target: ParsedTarget): string {
  const path = target.rawPath.replace(LEGACY_ACL_PATH, '$1<hidden>');
  if (target.rawQuery === '') return path;
  const parts = target.rawQuery.split('&').map((part) => (/^token(=|$)/.test(part) ? 'token=<hidden>' : part));
  return `${path}?${parts.join('&')}`;
}

/** Writes a handler's result after `baseHeaders`; the result's own headers replace same-named ones. */
function writeResult(exchange: Http1Exchange, baseHeaders: HeaderList, result: HttpResponse, isPretty: boolean): void {
  if ('json' in result && result.json !== undefined && Object.isFrozen(result.json)) return writeFrozenJson(exchange, baseHeaders, result, isPretty);
  let headers = baseHeaders;
  if (result.headers !== undefined) {
    const merged = [...baseHeaders];
    for (const [name, value] of Object.entries(result.headers)) putHeader(merged, canonicalHeaderName(name), value);
    headers = merged;
  }
  const status = result.status ?? 200;
  if ('text' in result) return writeText(exchange, status, headers, result.text);
  if ('bytes' in result) return writeBody(exchange, status, headers, result.contentType, result.bytes);
  // Consul's wrap writes no body for a nil result (agent service register answers 200, empty).
  if (result.json === undefined) return writeEmpty(exchange, status, headers);
  writeBody(exchange, status, headers, 'application/json', goJsonEscape(serializeJson(result.json, isPretty)));
}

/**
 * The last answer built from a frozen JSON value, reused while the next answer is the same: the
 * same value object (frozen, so its text cannot have changed), the same base headers, status,
 * pretty flag and extra headers. A write wakes every blocking query parked on a key at once and
 * they all answer with one record and one index: 10,000 answers then cost one serialization.
 * One entry, so it holds at most one body.
 */
interface FrozenAnswer {
  readonly json: unknown;
  readonly baseHeaders: HeaderList;
  readonly status: number;
  readonly isPretty: boolean;
  readonly extra: Readonly<Record<string, string>> | undefined;
  readonly headers: HeaderList;
  /** Text, so lib/http1.ts can recognise the same answer by identity and reuse its response buffer. */
  readonly body: string;
}

let lastFrozenAnswer: FrozenAnswer | undefined;

/**
 * A JSON result whose value is frozen (the caller promises it is deeply immutable, as
 * lib/endpoints_kv.ts's cached entries are): serialized once, then written from the cache.
 */
function writeFrozenJson(exchange: Http1Exchange, baseHeaders: HeaderList, result: HttpResponse & { readonly json: unknown }, isPretty: boolean): void {
  const status = result.status ?? 200;
  let answer = lastFrozenAnswer;
  if (answer === undefined || answer.json !== result.json || answer.baseHeaders !== baseHeaders || answer.status !== status || answer.isPretty !== isPretty || !isSameHeaders(answer.extra, result.headers)) {
    answer = frozenAnswer(baseHeaders, result, status, isPretty);
    lastFrozenAnswer = answer;
  }
  exchange.respond(status, answer.headers, answer.body);
}

function frozenAnswer(baseHeaders: HeaderList, result: HttpResponse & { readonly json: unknown }, status: number, isPretty: boolean): FrozenAnswer {
  const headers = [...baseHeaders];
  if (result.headers !== undefined) for (const [name, value] of Object.entries(result.headers)) putHeader(headers, canonicalHeaderName(name), value);
  const body = goJsonEscape(serializeJson(result.json, isPretty));
  putHeader(headers, 'Content-Type', 'application/json');
  putHeader(headers, 'Content-Length', String(Buffer.byteLength(body)));
  // Copied: the handler's header object may be changed after it returned.
  const extra = result.headers === undefined ? undefined : { ...result.headers };
  return { json: result.json, baseHeaders, status, isPretty, extra, headers, body };
}

/** The same names with the same values, in the same order (the order decides the header list). */
function isSameHeaders(a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>> | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const aNames = Object.keys(a);
  const bNames = Object.keys(b);
  if (aNames.length !== bNames.length) return false;
  for (let index = 0; index < aNames.length; index++) {
    const name = aNames[index]!;
    if (name !== bNames[index] || a[name] !== b[name]) return false;
  }
  return true;
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
function writeText(exchange: Http1Exchange, status: number, headers: HeaderList, text: string, isClosing = false): void {
  if (text === '') return writeEmpty(exchange, status, headers, isClosing);
  writeBody(exchange, status, headers, 'text/plain; charset=utf-8', text, isClosing);
}

function writeBody(exchange: Http1Exchange, status: number, headers: HeaderList, contentType: string, body: string | Uint8Array, isClosing = false): void {
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  const all = [...headers];
  putHeader(all, 'Content-Type', contentType);
  putHeader(all, 'Content-Length', String(length));
  exchange.respond(status, all, body, undefined, isClosing);
}

function writeEmpty(exchange: Http1Exchange, status: number, headers: HeaderList, isClosing = false): void {
  const all = [...headers];
  putHeader(all, 'Content-Length', '0');
  exchange.respond(status, all, '', undefined, isClosing);
}

/** Go's http.Redirect with 301 to an escaped path: an HTML body for GET only. */
function writeRedirect(exchange: Http1Exchange, baseHeaders: HeaderList, escapedPath: string, rawQuery: string): void {
  const location = escapedPath + (rawQuery === '' ? '' : `?${rawQuery}`);
  const headers = [...baseHeaders];
  putHeader(headers, 'Location', location);
  if (exchange.method !== 'GET' && exchange.method !== 'HEAD') return writeEmpty(exchange, 301, headers);
  const body = exchange.method === 'GET' ? `<a href="${htmlEscape(location)}">Moved Permanently</a>.\n\n` : '';
  writeBody(exchange, 301, headers, 'text/html; charset=utf-8', body);
}

/** A Go server-level error: status line reason carries the detail, body repeats it, then close. */
function writeGoError(exchange: Http1Exchange, status: number, reason: string): void {
  if (reason === '') return writeEmpty(exchange, status, [], true);
  const body = `${status} ${reason}`;
  exchange.respond(status, ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(Buffer.byteLength(body))], body, reason, true);
}

/** Configured headers as a list, in Go's canonical case, a later duplicate replacing an earlier one. */
function headerList(entries: readonly (readonly [string, string])[]): string[] {
  const headers: string[] = [];
  for (const [name, value] of entries) putHeader(headers, canonicalHeaderName(name), value);
  return headers;
}

/**
 * Sets `name` in the list as setHeader would: replacing its value in place when present, else
 * appending. Names are in canonical case, so one header has one spelling.
 */
function putHeader(headers: string[], name: string, value: string): void {
  for (let index = 0; index < headers.length; index += 2) {
    if (headers[index] === name) {
      headers[index + 1] = value;
      return;
    }
  }
  headers.push(name, value);
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


function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
