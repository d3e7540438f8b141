// The HTTP API transport: node:http listeners, routing, and Consul's response conventions.
//
// Applications, the consul CLI and client libraries (npm `consul`, python-consul, the Go
// api package) speak to the agent over this API, and they match on details: status codes,
// plain-text error bodies, `Content-Type: application/json`, 405 with an `Allow` header for
// the wrong method, `?pretty` output. This module owns those conventions so that endpoint
// code only returns values or throws an HttpError; it never writes to a socket itself.
//
// Routes are exact paths, or prefixes ending in "/" whose remainder is the parameter
// (`/v1/kv/` serves `/v1/kv/a/b` with param "a/b"), as in Consul's mux. Each route lists the
// methods it allows; OPTIONS is answered for every route.
//
// Not here yet: request bodies (later endpoints add them with a size limit checked before
// buffering), blocking queries, ACL tokens, TLS.
//
// Reference: Consul agent/http.go (wrap, IsUIEnabled, Index) and agent/http_register.go.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './log.js';

/** A parsed request as endpoint handlers see it. */
export interface HttpRequest {
  readonly method: string;
  /** The percent-decoded path (`/v1/kv/locks%2Fjob` arrives as `/v1/kv/locks/job`). */
  readonly path: string;
  /** For a prefix route, the decoded remainder after the prefix; "" for exact routes. */
  readonly param: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage['headers'];
}

/** What a handler returns. A `json` body is serialized; `text` is sent as text/plain. */
export type HttpResponse =
  | { readonly status?: number; readonly json: unknown; readonly headers?: Readonly<Record<string, string>> }
  | { readonly status?: number; readonly text: string; readonly headers?: Readonly<Record<string, string>> };

export type HttpHandler = (request: HttpRequest) => HttpResponse | Promise<HttpResponse>;

export interface HttpRoute {
  /** An exact path, or a prefix ending in "/" (Consul's convention for parameterized routes). */
  readonly path: string;
  /** Allowed methods, upper case; OPTIONS is added automatically. */
  readonly methods: readonly string[];
  readonly handler: HttpHandler;
}

export interface HttpServerOptions {
  readonly routes: readonly HttpRoute[];
  readonly logger: Logger;
  /** Consul pretty-prints every JSON response in -dev mode. */
  readonly isPrettyByDefault: boolean;
  readonly isUiEnabled: boolean;
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

/** Limits on what a client can make the agent hold. */
export const HTTP_URL_BYTES_MAX = 64 * 1024;
export const HTTP_HEADERS_BYTES_MAX = 1024 * 1024;

/** Consul's body for a /v1/ path that no route serves. */
export const UNKNOWN_ENDPOINT_TEXT = 'Invalid URL path: not a recognized HTTP API endpoint';

/** Consul's body for a path outside /v1/ (other than "/"). */
export const NON_API_PATH_TEXT = "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'";

/** A running HTTP listener. */
export interface HttpListener {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/**
 * Starts one listener on host:port serving the routes. Resolves once bound; rejects with the
 * bind error (EADDRINUSE, EACCES...) so the agent can report it and exit.
 */
export async function listenHttp(host: string, port: number, options: HttpServerOptions): Promise<HttpListener> {
  const router = new Router(options.routes);
  const server = createServer({ maxHeaderSize: HTTP_HEADERS_BYTES_MAX }, (request, response) => {
    serve(router, options, request, response).catch((error: unknown) => {
      options.logger.error('request handling failed', { method: request.method, error: describe(error) });
      if (!response.headersSent) writeText(response, 500, describe(error));
      else response.destroy();
    });
  });
  // Consul's agent does not keep idle clients forever; neither do we.
  server.keepAliveTimeout = 30_000;
  server.on('clientError', (error, socket) => {
    options.logger.debug('malformed HTTP request', { error: error.message });
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { address: server.address() as AddressInfo, close: () => closeServer(server) };
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
}

async function serve(router: Router, options: HttpServerOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const method = request.method ?? 'GET';
  const rawUrl = request.url ?? '/';
  if (rawUrl.length > HTTP_URL_BYTES_MAX) return writeText(response, 414, 'URI Too Long');
  const parsed = parseUrl(rawUrl);
  if (parsed === undefined) return writeText(response, 400, `Invalid URL: ${JSON.stringify(rawUrl)}`);
  const { path, query } = parsed;
  // Consul refuses paths carrying control characters rather than route them anywhere.
  if (/[\x00-\x1f\x7f]/.test(path)) return writeText(response, 400, `Invalid URL path: contains non-printable characters`);
  if (!path.startsWith('/v1/')) return serveNonApi(options, path, response);

  const match = router.match(path);
  if (match === undefined) return writeText(response, 404, `${UNKNOWN_ENDPOINT_TEXT}\n`);
  const allowed = ['OPTIONS', ...match.route.methods];
  if (method === 'OPTIONS') {
    response.writeHead(200, { Allow: allowed.join(',') });
    response.end();
    return;
  }
  if (!match.route.methods.includes(method)) {
    response.setHeader('Allow', allowed.join(','));
    return writeText(response, 405, `method ${method} not allowed`);
  }
  let result: HttpResponse;
  try {
    result = await match.route.handler({ method, path, param: match.param, query, headers: request.headers });
  } catch (error) {
    if (error instanceof HttpError) return writeText(response, error.status, error.message);
    throw error;
  }
  const isPretty = options.isPrettyByDefault || query.has('pretty');
  writeResult(response, result, isPretty);
}

/** `/` and other paths outside the API, as Consul's Index handler answers them. */
function serveNonApi(options: HttpServerOptions, path: string, response: ServerResponse): void {
  if (path !== '/') return writeText(response, 404, `${NON_API_PATH_TEXT}\n`);
  if (options.isUiEnabled) {
    const body = '<a href="/ui/">Moved Permanently</a>.\n\n';
    response.writeHead(301, { Location: '/ui/', 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    response.end(body);
    return;
  }
  writeText(response, 200, 'Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent configuration and restart.');
}

function parseUrl(rawUrl: string): { path: string; query: URLSearchParams } | undefined {
  const queryStart = rawUrl.indexOf('?');
  const rawPath = queryStart === -1 ? rawUrl : rawUrl.slice(0, queryStart);
  const rawQuery = queryStart === -1 ? '' : rawUrl.slice(queryStart + 1);
  try {
    return { path: decodeURIComponent(rawPath), query: new URLSearchParams(rawQuery) };
  } catch {
    // decodeURIComponent throws URIError on a malformed escape such as "%zz": that is the
    // client's mistake, answered with 400 by the caller.
    return undefined;
  }
}

function writeResult(response: ServerResponse, result: HttpResponse, isPretty: boolean): void {
  for (const [name, value] of Object.entries(result.headers ?? {})) response.setHeader(name, value);
  const status = result.status ?? 200;
  if ('text' in result) return writeText(response, status, result.text);
  const body = isPretty ? JSON.stringify(result.json, null, 4) + '\n' : JSON.stringify(result.json);
  response.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  response.end(body);
}

function writeText(response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  response.end(text);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    // Idle keep-alive connections would hold close() open until they time out.
    server.closeIdleConnections();
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
