import assert from 'node:assert/strict';
import { request as httpClientRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  HTTP_BODY_BYTES_MAX,
  HTTP_HEADERS_BYTES_MAX,
  HttpError,
  listenHttp,
  NON_API_PATH_TEXT,
  parseToken,
  Router,
  TOO_MANY_CONNS_TEXT,
  UNKNOWN_ENDPOINT_TEXT,
  type HttpListener,
  type HttpRoute,
  type HttpServerOptions,
} from '../lib/http.js';
import { MemorySink, createLogger } from '../lib/log.js';
import { httpRequest, mulberry32, waitFor } from './support.js';

const FROZEN_VALUE = Object.freeze([Object.freeze({ Key: '<k>', Value: 'dg==' })]);

/** Requests that reached a handler, by path: proves a 413 or a refusal came before the handler. */
const handled: string[] = [];
const parked = { entered: 0, aborted: 0 };

const routes: HttpRoute[] = [
  { path: '/v1/echo', methods: ['GET'], handler: (request) => ({ json: { path: request.path, query: Object.fromEntries(request.query) } }) },
  { path: '/v1/kv/', methods: ['GET', 'PUT', 'DELETE'], handler: (request) => ({ json: { param: request.param, method: request.method } }) },
  { path: '/v1/kv/special', methods: ['GET'], handler: () => ({ json: 'exact beats prefix' }) },
  { path: '/v1/fail/http', methods: ['GET'], handler: () => { throw new HttpError(400, 'Missing key name'); } },
  { path: '/v1/fail/crash', methods: ['GET'], handler: () => { throw new Error('No cluster leader'); } },
  { path: '/v1/text', methods: ['GET'], handler: () => ({ text: 'plain', headers: { 'X-Custom': 'yes' } }) },
  { path: '/v1/raw', methods: ['GET'], handler: () => ({ bytes: Uint8Array.from([0, 255, 10]), contentType: 'application/octet-stream', headers: { 'x-consul-index': '7' } }) },
  { path: '/v1/html', methods: ['GET'], handler: () => ({ json: { key: '<a> & \u2028' } }) },
  { path: '/v1/nil', methods: ['PUT'], handler: () => ({ json: undefined }) },
  {
    // The same frozen value for every request: the writer serializes it once and reuses the answer.
    path: '/v1/frozen', methods: ['GET'],
    handler: (request) => ({ status: Number(request.query.get('status') ?? 200), json: FROZEN_VALUE, headers: { 'X-Consul-Index': request.query.get('index') ?? '1' } }),
  },
  { path: '/v1/token', methods: ['GET'], handler: (request) => ({ json: { token: request.token, from: request.remoteAddress } }) },
  {
    path: '/v1/body', methods: ['GET', 'PUT'], bodyBytesMax: 100,
    handler: (request) => { handled.push('/v1/body'); return { json: { length: request.body.length, text: Buffer.from(request.body).toString() } }; },
  },
  { path: '/v1/kvbody', methods: ['PUT'], bodyBytesMax: 100, tooLargeText: (bytes, max) => `Request body(${bytes} bytes) too large, max size: ${max} bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.`, handler: () => { handled.push('/v1/kvbody'); return { json: true }; } },
  {
    path: '/v1/park-reject', methods: ['GET'],
    handler: (request) => { parked.entered++; return new Promise((_, reject) => request.signal.addEventListener('abort', () => reject(request.signal.reason))); },
  },
  {
    path: '/v1/park', methods: ['GET'],
    handler: (request) => {
      parked.entered++;
      return new Promise((resolve) => request.signal.addEventListener('abort', () => { parked.aborted++; resolve({ json: 'released' }); }));
    },
  },
];

const logSink = new MemorySink();
const logger = createLogger({ level: 'debug', json: false, nowMs: () => 0, sink: logSink });
const responseHeaders = { 'X-Consul-Default-ACL-Policy': 'allow', 'x-frame-options': 'DENY' };
const baseOptions: HttpServerOptions = { routes, logger, isPrettyByDefault: false, isUiEnabled: false, responseHeaders };
let compact: HttpListener;
let pretty: HttpListener;

before(async () => {
  compact = await listenHttp('127.0.0.1', 0, { ...baseOptions, headersTimeoutMs: 400, requestTimeoutMs: 600 });
  pretty = await listenHttp('127.0.0.1', 0, { routes, logger, isPrettyByDefault: true, isUiEnabled: true });
});
after(async () => {
  await compact.close();
  await pretty.close();
});

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; rawHeaders: string[]; body: string }

/** One request with custom headers and body, no keep-alive. */
function send(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpClientRequest({ host: '127.0.0.1', port, method, path, agent: false, headers: { Connection: 'close', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString('latin1') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Writes raw bytes and collects everything the server sends until it closes the connection. */
function raw(port: number, payload: string | Buffer, options: { endWrite?: boolean; deadlineMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no close within deadline; got ${Buffer.concat(chunks).toString('latin1').slice(0, 200)}`)); }, options.deadlineMs ?? 5_000);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')); });
    socket.on('error', () => undefined); // a reset after the answer still resolves on close
    socket.write(payload);
    if (options.endWrite) socket.end();
  });
}

/** A raw keep-alive connection that sends requests one at a time and reads one response each. */
class RawConnection {
  private buffer = '';
  private waiter: (() => void) | undefined;
  readonly socket: Socket;
  isClosed = false;
  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('data', (chunk) => { this.buffer += chunk.toString('latin1'); this.waiter?.(); });
    this.socket.on('close', () => { this.isClosed = true; this.waiter?.(); });
    this.socket.on('error', () => undefined);
  }
  async get(path: string): Promise<string> {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    return this.next();
  }
  async next(): Promise<string> {
    return waitFor('a full response', () => {
      const end = this.buffer.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(this.buffer.slice(0, end));
      if (end >= 0 && length && this.buffer.length >= end + 4 + Number(length[1])) {
        const response = this.buffer.slice(0, end + 4 + Number(length[1]));
        this.buffer = this.buffer.slice(response.length);
        return response;
      }
      if (this.isClosed) return this.buffer || 'closed';
      return undefined;
    }, 5_000);
  }
}

function rawHeader(reply: Reply, name: string): string | undefined {
  for (let index = 0; index < reply.rawHeaders.length; index += 2) if (reply.rawHeaders[index] === name) return reply.rawHeaders[index + 1];
  return undefined;
}

describe('frozen JSON answers', () => {
  test('a frozen value answered repeatedly keeps each answer\'s own status, headers and pretty form', async () => {
    const port = compact.address.port;
    const body = '[{"Key":"\\u003ck\\u003e","Value":"dg=="}]';
    for (const [query, status, index] of [['index=5', 200, '5'], ['index=5', 200, '5'], ['index=6', 200, '6'], ['index=6&status=201', 201, '6']] as const) {
      const reply = await send(port, 'GET', `/v1/frozen?${query}`);
      assert.equal(reply.status, status);
      assert.equal(reply.body, body);
      assert.equal(rawHeader(reply, 'X-Consul-Index'), index);
      assert.equal(rawHeader(reply, 'Content-Length'), String(Buffer.byteLength(body)));
      assert.equal(rawHeader(reply, 'Content-Type'), 'application/json');
      assert.equal(rawHeader(reply, 'X-Frame-Options'), 'DENY');
    }
    const prettyReply = await send(port, 'GET', '/v1/frozen?index=6&pretty');
    assert.equal(prettyReply.body, `${JSON.stringify(JSON.parse(body), null, 4).replace(/</g, '\\u003c').replace(/>/g, '\\u003e')}\n`);
    // The other listener has other base headers: none of the first listener's leak into its answer.
    const other = await send(pretty.address.port, 'GET', '/v1/frozen?index=6');
    assert.equal(rawHeader(other, 'X-Frame-Options'), undefined);
    assert.equal(rawHeader(other, 'X-Consul-Index'), '6');
  });
});

describe('routing', () => {
  test('an exact route answers with compact JSON and Content-Type application/json', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/v1/echo?a=1&b');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'application/json');
    assert.equal(reply.body, '{"path":"/v1/echo","query":{"a":"1","b":""}}');
  });

  test('a prefix route receives the percent-decoded remainder as its parameter', async () => {
    const reply = await httpRequest(compact.address.port, 'PUT', '/v1/kv/locks%2Fjob/a%20b');
    assert.deepEqual(JSON.parse(reply.body), { param: 'locks/job/a b', method: 'PUT' });
  });

  test('an exact route wins over a prefix route', async () => {
    assert.equal((await httpRequest(compact.address.port, 'GET', '/v1/kv/special')).body, '"exact beats prefix"');
  });

  test('an exact route does not match longer paths', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/v1/echo/more');
    assert.equal(reply.status, 404);
  });

  test('unknown /v1/ paths get Consul\'s 404 text, as does any path containing /v1/', async () => {
    for (const path of ['/v1/nope', '/x/v1/y']) {
      const reply = await httpRequest(compact.address.port, 'GET', path);
      assert.equal(reply.status, 404);
      assert.equal(reply.body, `${UNKNOWN_ENDPOINT_TEXT}\n`);
      assert.match(String(reply.headers['content-type']), /^text\/plain/);
    }
  });

  test('paths outside /v1/ get the hint to use /v1/', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/foo');
    assert.equal(reply.status, 404);
    assert.equal(reply.body, `${NON_API_PATH_TEXT}\n`);
  });

  test('the wrong method gets 405 with the Allow header', async () => {
    const reply = await httpRequest(compact.address.port, 'POST', '/v1/echo');
    assert.equal(reply.status, 405);
    assert.equal(reply.body, 'method POST not allowed');
    assert.equal(reply.headers['allow'], 'OPTIONS,GET');
  });

  test('HEAD is not GET: 405 with Allow and no body, as Consul\'s wrap answers it', async () => {
    const reply = await httpRequest(compact.address.port, 'HEAD', '/v1/echo');
    assert.equal(reply.status, 405);
    assert.equal(reply.headers['allow'], 'OPTIONS,GET');
    assert.equal(reply.body, '');
  });

  test('OPTIONS answers 200 with Allow and an empty body', async () => {
    const reply = await httpRequest(compact.address.port, 'OPTIONS', '/v1/kv/x');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['allow'], 'OPTIONS,GET,PUT,DELETE');
    assert.equal(reply.body, '');
  });

  test('unclean paths get Go ServeMux\'s 301 to the cleaned path, query kept', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/v1/kv/a//b/../c?x=1');
    assert.equal(reply.status, 301);
    assert.equal(reply.headers['location'], '/v1/kv/a/c?x=1');
    assert.equal(reply.body, '<a href="/v1/kv/a/c?x=1">Moved Permanently</a>.\n\n');
    const put = await httpRequest(compact.address.port, 'PUT', '/v1/kv/a//b');
    assert.equal(put.status, 301);
    assert.equal(put.headers['location'], '/v1/kv/a/b');
    assert.equal(put.body, '');
    // Go 1.22+ cleans the escaped path: encoded slashes are a key's own.
    const encoded = await httpRequest(compact.address.port, 'PUT', '/v1/kv/a%2F%2Fb/%2E%2E');
    assert.deepEqual(JSON.parse(encoded.body), { param: 'a//b/..', method: 'PUT' });
  });

  test('a prefix route\'s path without its slash redirects to it', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/v1/kv');
    assert.equal(reply.status, 301);
    assert.equal(reply.headers['location'], '/v1/kv/');
  });

  test('duplicate exact routes are a programming error', () => {
    assert.throws(() => new Router([routes[0]!, routes[0]!]), /duplicate HTTP route/);
  });
});

describe('responses', () => {
  test('?pretty indents with four spaces and ends with a newline', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/v1/echo?pretty');
    assert.equal(reply.body, '{\n    "path": "/v1/echo",\n    "query": {\n        "pretty": ""\n    }\n}\n');
  });

  test('dev mode pretty-prints every JSON response', async () => {
    const reply = await httpRequest(pretty.address.port, 'GET', '/v1/kv/a');
    assert.equal(reply.body, '{\n    "param": "a",\n    "method": "GET"\n}\n');
  });

  test('an HttpError becomes its status with a plain-text body', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/v1/fail/http');
    assert.equal(reply.status, 400);
    assert.equal(reply.body, 'Missing key name');
  });

  test('any other error is a 500 with its message, and the server keeps serving', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/v1/fail/crash');
    assert.equal(reply.status, 500);
    assert.equal(reply.body, 'No cluster leader');
    assert.equal((await httpRequest(compact.address.port, 'GET', '/v1/echo')).status, 200);
  });

  test('text responses carry their headers', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/v1/text');
    assert.equal(reply.body, 'plain');
    assert.equal(reply.headers['x-custom'], 'yes');
  });

  test('bytes responses are sent as is with their content type; header names go out in Go\'s canonical case', async () => {
    const reply = await send(compact.address.port, 'GET', '/v1/raw');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'application/octet-stream');
    assert.equal(reply.headers['content-length'], '3');
    assert.deepEqual(Buffer.from(reply.body, 'latin1'), Buffer.from([0, 255, 10]));
    assert.equal(rawHeader(reply, 'X-Consul-Index'), '7');
    assert.equal(rawHeader(reply, 'X-Consul-Default-Acl-Policy'), 'allow');
  });

  test('JSON escapes <, > and & as Go\'s encoder does', async () => {
    assert.equal((await httpRequest(compact.address.port, 'GET', '/v1/html')).body, '{"key":"\\u003ca\\u003e \\u0026 \\u2028"}');
  });

  test('an undefined result is 200 with an empty body and no Content-Type, like Consul\'s nil', async () => {
    const reply = await httpRequest(compact.address.port, 'PUT', '/v1/nil');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, '');
    assert.equal(reply.headers['content-type'], undefined);
    assert.equal(reply.headers['content-length'], '0');
  });

  test('configured headers and the ACL policy are on every routed response, errors included', async () => {
    const cases: Array<[string, string, number]> = [
      ['GET', '/v1/echo', 200], ['POST', '/v1/echo', 405], ['OPTIONS', '/v1/echo', 200],
      ['GET', '/v1/fail/http', 400], ['GET', '/v1/fail/crash', 500], ['GET', '/v1/echo?a=%zz', 500],
    ];
    for (const [method, path, status] of cases) {
      const reply = await send(compact.address.port, method, path);
      assert.equal(reply.status, status, `${method} ${path}`);
      assert.equal(reply.headers['x-consul-default-acl-policy'], 'allow', `${method} ${path}`);
      assert.equal(rawHeader(reply, 'X-Frame-Options'), 'DENY', `${method} ${path}`);
      assert.equal(reply.headers['vary'], 'Accept-Encoding', `${method} ${path}`);
    }
    const tooLarge = await send(compact.address.port, 'PUT', '/v1/body', {}, 'x'.repeat(101));
    assert.equal(tooLarge.headers['x-consul-default-acl-policy'], 'allow');
  });

  test('like Consul\'s Index handler, 404s and "/" carry configured headers but not the ACL policy', async () => {
    for (const path of ['/v1/nope', '/foo', '/']) {
      const reply = await send(compact.address.port, 'GET', path);
      assert.equal(reply.headers['x-frame-options'], 'DENY', path);
      assert.equal(reply.headers['x-consul-default-acl-policy'], undefined, path);
      assert.equal(reply.headers['vary'], undefined, path);
    }
  });

  test('GET / explains the UI is off, or redirects to it when on', async () => {
    const off = await httpRequest(compact.address.port, 'GET', '/');
    assert.equal(off.status, 200);
    assert.equal(off.body, 'Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent configuration and restart.');
    const on = await httpRequest(pretty.address.port, 'GET', '/');
    assert.equal(on.status, 301);
    assert.equal(on.headers['location'], '/ui/');
  });

  test('keep-alive: several requests share one connection', async () => {
    const connection = new RawConnection(compact.address.port);
    for (let round = 0; round < 3; round++) assert.match(await connection.get('/v1/echo'), /^HTTP\/1\.1 200 OK/);
    assert.equal(connection.isClosed, false);
    connection.socket.destroy();
  });
});

describe('request bodies', () => {
  test('a body within the limit reaches the handler whole', async () => {
    const reply = await send(compact.address.port, 'PUT', '/v1/body', {}, 'hello');
    assert.deepEqual(JSON.parse(reply.body), { length: 5, text: 'hello' });
  });

  test('Content-Length over the limit is a 413 with Consul\'s text (or the route\'s) before the handler runs', async () => {
    const before = handled.length;
    const reply = await send(compact.address.port, 'PUT', '/v1/body', {}, 'x'.repeat(150));
    assert.equal(reply.status, 413);
    assert.equal(reply.body, 'Request body(150 bytes) too large, max size: 100 bytes.');
    const kv = await send(compact.address.port, 'PUT', '/v1/kvbody', {}, 'x'.repeat(101));
    assert.equal(kv.body, 'Request body(101 bytes) too large, max size: 100 bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.');
    assert.equal(handled.length, before);
  });

  test('a chunked body is counted as it streams and cut at the limit', async () => {
    const before = handled.length;
    const reply = await send(compact.address.port, 'PUT', '/v1/body', { 'Transfer-Encoding': 'chunked' }, 'y'.repeat(5_000));
    assert.equal(reply.status, 413);
    assert.match(reply.body, /^Request body\(\d+ bytes\) too large, max size: 100 bytes\.$/);
    assert.equal(handled.length, before);
  });

  test('a huge declared body is refused without reading it, before 100 Continue', async () => {
    const answer = await raw(compact.address.port, 'PUT /v1/body HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\nExpect: 100-continue\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 413 Request Entity Too Large\r\n/);
    assert.doesNotMatch(answer, /100 Continue/);
    assert.match(answer, /Request body\(1073741824 bytes\) too large, max size: 100 bytes\.$/);
  });

  test('the default limit is HTTP_BODY_BYTES_MAX', async () => {
    const reply = await send(compact.address.port, 'PUT', '/v1/kv/big', { 'Content-Length': String(HTTP_BODY_BYTES_MAX + 1) });
    assert.equal(reply.status, 413);
  });

  test('a body on a GET is read and the request served', async () => {
    const reply = await send(compact.address.port, 'GET', '/v1/body', { 'Content-Length': '7' }, 'ignored');
    assert.deepEqual(JSON.parse(reply.body), { length: 7, text: 'ignored' });
    assert.equal(reply.status, 200);
    assert.ok(logSink.lines.some((line) => line.includes('GET request has a non-empty body')));
  });

  test('a client that stops sending mid-body is timed out and the handler never runs', async () => {
    const before = handled.length;
    const answer = await raw(compact.address.port, 'PUT /v1/body HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nabc');
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout/);
    assert.equal(handled.length, before);
  });

  test('a client that sends headers slowly is timed out (slowloris)', async () => {
    const started = Date.now();
    const answer = await raw(compact.address.port, 'GET /v1/echo HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n');
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout/);
    assert.ok(Date.now() - started < 3_000);
  });
});

describe('tokens', () => {
  const headersOf = (entries: Record<string, string[]>): Record<string, string[]> => entries;

  test('precedence: ?token, then X-Consul-Token, then Authorization: Bearer, else empty', () => {
    const all = headersOf({ 'x-consul-token': ['header'], authorization: ['Bearer bearer'] });
    assert.equal(parseToken(new URLSearchParams('token=query'), all), 'query');
    assert.equal(parseToken(new URLSearchParams('token='), all), 'header');
    assert.equal(parseToken(new URLSearchParams(''), headersOf({ authorization: ['Bearer bearer'] })), 'bearer');
    assert.equal(parseToken(new URLSearchParams(''), headersOf({})), '');
  });

  test('Authorization parsing follows Consul: scheme case-insensitive, first word only, other schemes ignored', () => {
    const parse = (value: string): string => parseToken(new URLSearchParams(), headersOf({ authorization: [value] }));
    assert.equal(parse('bearer abc'), 'abc');
    assert.equal(parse('BEARER  abc def'), 'abc');
    assert.equal(parse('Bearer'), '');
    assert.equal(parse('Basic dXNlcg=='), '');
    assert.equal(parse('Bearerabc'), '');
  });

  test('over HTTP the token reaches the handler and never the log', async () => {
    const viaQuery = await httpRequest(compact.address.port, 'GET', '/v1/token?token=s3cr3t-query');
    assert.deepEqual(JSON.parse(viaQuery.body), { token: 's3cr3t-query', from: '127.0.0.1' });
    const viaHeader = await send(compact.address.port, 'GET', '/v1/token', { 'X-Consul-Token': 's3cr3t-header' });
    assert.equal(JSON.parse(viaHeader.body).token, 's3cr3t-header');
    await httpRequest(compact.address.port, 'GET', '/v1/fail/http?token=s3cr3t-error');
    assert.ok(logSink.lines.some((line) => line.includes('token=<hidden>')));
    assert.ok(logSink.lines.every((line) => !line.includes('s3cr3t')));
  });
});

describe('malformed requests', () => {
  test('a malformed percent-escape in the path gets Go\'s 400 and the connection closes', async () => {
    const answer = await raw(compact.address.port, 'GET /v1/kv/%zz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(answer, /Connection: close/i);
    assert.match(answer, /\r\n\r\n400 Bad Request$/);
  });

  test('a malformed escape or ";" in the query is Consul\'s 500 with an empty body', async () => {
    for (const path of ['/v1/echo?a=%zz', '/v1/echo?a=1;b=2']) {
      const reply = await httpRequest(compact.address.port, 'GET', path);
      assert.equal(reply.status, 500, path);
      assert.equal(reply.body, '', path);
    }
  });

  test('invalid UTF-8 in the path is routed with U+FFFD, as Go routes the raw bytes', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/v1/kv/a%ffb');
    assert.equal(reply.status, 200);
    assert.equal(JSON.parse(reply.body).param, 'a\uFFFDb');
  });

  test('non-printable characters in the path are cleanhttp\'s bare 400', async () => {
    for (const path of ['/v1/kv/a%00b', '/v1/kv/a%7Fb', '/v1/kv/a%C2%A0b', '/nope/%E2%80%8B']) {
      const reply = await send(compact.address.port, 'GET', path);
      assert.equal(reply.status, 400, path);
      assert.equal(reply.body, '', path);
    }
  });

  test('a long URL is served; one past the header limit is Go\'s 431', async () => {
    const long = await httpRequest(compact.address.port, 'GET', `/v1/kv/${'a'.repeat(70_000)}`);
    assert.equal(long.status, 200);
    const answer = await raw(compact.address.port, `GET /v1/kv/${'a'.repeat(HTTP_HEADERS_BYTES_MAX)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n[^]*\r\n\r\n431 Request Header Fields Too Large$/);
  });

  test('an invalid header name is Go\'s 400', async () => {
    const answer = await raw(compact.address.port, 'GET /v1/echo HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n[^]*\r\n\r\n400 Bad Request$/);
  });

  test('HTTP/1.1 without Host is Go\'s 400 naming it; HTTP/1.0 needs none', async () => {
    const answer = await raw(compact.address.port, 'GET /v1/echo HTTP/1.1\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request: missing required Host header\r\n[^]*\r\n\r\n400 Bad Request: missing required Host header$/);
    assert.match(await raw(compact.address.port, 'GET /v1/echo HTTP/1.0\r\n\r\n'), /^HTTP\/1\.0 200 OK/);
  });

  test('a request target that is not a path is Go\'s 400', async () => {
    assert.match(await raw(compact.address.port, 'GET v1/echo HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 400 Bad Request/);
  });

  test('garbage on the socket gets 400 and the server keeps serving', async () => {
    const answer = await raw(compact.address.port, '\x00\x01 not http at all\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request/);
    assert.equal((await httpRequest(compact.address.port, 'GET', '/v1/echo')).status, 200);
  });

  test('seeded fuzz: 2,000 malformed raw requests never crash the server', async () => {
    const seed = Number(process.env['SEED'] ?? 20261122);
    const random = mulberry32(seed);
    const server = await listenHttp('127.0.0.1', 0, { ...baseOptions, maxConnsPerClient: 0, headersTimeoutMs: 200, requestTimeoutMs: 300 });
    try {
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
      const payloads = Array.from({ length: 2_000 }, () => fuzzRequest(random, pick));
      const statuses = new Set<string>();
      const logLinesBefore = logSink.lines.length;
      for (let start = 0; start < payloads.length; start += 50) {
        const answers = await Promise.all(payloads.slice(start, start + 50).map((payload) => raw(server.address.port, payload, { endWrite: true })));
        for (const answer of answers) {
          if (answer === '') continue;
          const status = /^HTTP\/1\.[01] (\d{3}) /.exec(answer);
          assert.ok(status, `SEED=${seed}: not an HTTP response: ${JSON.stringify(answer.slice(0, 80))}`);
          statuses.add(status[1]!);
        }
      }
      const allowed = ['100', '200', '301', '400', '404', '405', '408', '413', '417', '431', '500', '501', '505'];
      assert.ok([...statuses].every((status) => allowed.includes(status)), `SEED=${seed}: statuses ${[...statuses].join(',')}`);
      assert.ok(statuses.has('400') && statuses.has('200'), `SEED=${seed}: statuses ${[...statuses].join(',')}`);
      // No handler ever failed: every 500 was the bare answer to a malformed query.
      assert.equal(logSink.lines.slice(logLinesBefore).filter((line) => line.includes('Request error')).length, 0, `SEED=${seed}`);
      assert.equal((await httpRequest(server.address.port, 'GET', '/v1/echo')).status, 200);
    } finally {
      await server.close();
    }
  });

  test('binding a port in use rejects with the bind error', async () => {
    await assert.rejects(listenHttp('127.0.0.1', compact.address.port, { routes, logger, isPrettyByDefault: false, isUiEnabled: false }), { code: 'EADDRINUSE' });
  });
});

describe('per-client connection limit', () => {
  test('the (N+1)th connection gets go-connlimit\'s 429 while the others keep being served; closing one frees its slot', async (t) => {
    const server = await listenHttp('127.0.0.1', 0, { ...baseOptions, maxConnsPerClient: 3 });
    const open = [0, 1, 2].map(() => new RawConnection(server.address.port));
    t.after(async () => {
      for (const connection of open) connection.socket.destroy();
      await server.close();
    });
    for (const connection of open) assert.match(await connection.get('/v1/echo'), /^HTTP\/1\.1 200/);
    const refused = await raw(server.address.port, 'GET /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(refused, `HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: ${TOO_MANY_CONNS_TEXT.length}\r\nConnection: close\r\n\r\n${TOO_MANY_CONNS_TEXT}`);
    assert.match(await open[0]!.get('/v1/echo'), /^HTTP\/1\.1 200/);
    open[0]!.socket.destroy();
    await waitFor('a freed slot', async () => {
      const answer = await raw(server.address.port, 'GET /v1/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      return answer.startsWith('HTTP/1.1 200') ? true : undefined;
    });
  });
});

describe('signals and shutdown', () => {
  test('a parked handler\'s signal aborts when its client disconnects', async () => {
    const before = parked.aborted;
    const entered = parked.entered;
    const connection = new RawConnection(compact.address.port);
    connection.socket.write('GET /v1/park HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor('the request to reach the handler', () => (parked.entered > entered ? true : undefined));
    connection.socket.destroy();
    await waitFor('the abort', () => (parked.aborted > before ? true : undefined));
  });

  test('close() aborts parked requests, which still get their answer, and resolves promptly', async () => {
    const server = await listenHttp('127.0.0.1', 0, baseOptions);
    const before = parked.aborted;
    const entered = parked.entered;
    const pending = httpRequest(server.address.port, 'GET', '/v1/park');
    await waitFor('the request to park', () => (parked.entered > entered ? true : undefined));
    const started = Date.now();
    await server.close();
    assert.ok(Date.now() - started < 1_500, 'close() took too long');
    assert.ok(parked.aborted > before);
    const reply = await pending;
    assert.equal(reply.body, '"released"');
  });

  test('a handler that rejects with its abort on close() is dropped quietly, not answered 500', async () => {
    const server = await listenHttp('127.0.0.1', 0, baseOptions);
    const entered = parked.entered;
    const pending = httpRequest(server.address.port, 'GET', '/v1/park-reject').then(() => 'answered', () => 'dropped');
    await waitFor('the request to park', () => (parked.entered > entered ? true : undefined));
    const logLinesBefore = logSink.lines.length;
    await server.close();
    assert.equal(await pending, 'dropped');
    const lines = logSink.lines.slice(logLinesBefore);
    assert.ok(lines.some((line) => line.includes('Request cancelled')));
    assert.ok(lines.every((line) => !line.includes('[ERROR]')));
  });

  test('close() drops a client stuck mid-body and an idle keep-alive connection without waiting for them', async () => {
    const server = await listenHttp('127.0.0.1', 0, baseOptions);
    const idle = new RawConnection(server.address.port);
    assert.match(await idle.get('/v1/echo'), /^HTTP\/1\.1 200/);
    const stuck = new RawConnection(server.address.port);
    assert.match(await stuck.get('/v1/echo'), /^HTTP\/1\.1 200/);
    stuck.socket.write('PUT /v1/body HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nabc');
    const started = Date.now();
    await server.close();
    assert.ok(Date.now() - started < 1_500, 'close() took too long');
    await waitFor('the stuck connection to close', () => (stuck.isClosed ? true : undefined));
    await waitFor('the idle connection to close', () => (idle.isClosed ? true : undefined));
  });
});

/** One malformed request: a valid template with random damage. */
function fuzzRequest(random: () => number, pick: <T>(items: readonly T[]) => T): Buffer {
  const methods = ['GET', 'PUT', 'DELETE', 'POST', 'HEAD', 'OPTIONS', 'G\x00T', 'PATCH', '', 'get', 'CONNECT'];
  const paths = ['/v1/echo', '/v1/kv/a', '/v1/kv/%zz', '/v1/kv/%ff%fe', '/v1/kv/\x01', '/v1/body', '/v1/kv/a//b', '*', 'v1', '/v1/kv/é', '/v1/echo?token=%', '/%', '/v1/kv/a?x;y'];
  const versions = ['HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1\x7f', 'HTTX/1.1', ''];
  const headerSets = [
    'Host: x\r\n', '', 'Host: x\r\nContent-Length: 5\r\n', 'Host: x\r\nContent-Length: -1\r\n', 'Host: x\r\nContent-Length: 1, 2\r\n',
    'Host: x\r\nTransfer-Encoding: chunked\r\n', 'Host: x\r\nTransfer-Encoding: gzip\r\n', 'Host: x\r\nBad\x01Name: v\r\n', 'Host: x\r\nX: \x00\r\n',
    'Host: x\r\nAuthorization: Bearer\r\n', 'Host: x\r\n' + 'X-Long: ' + 'a'.repeat(2_000) + '\r\n', 'Host: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n',
  ];
  const bodies = ['', 'hello', '5\r\nhello\r\n0\r\n\r\n', 'zz\r\n', '\xff\xfe\x00'];
  let text = `${pick(methods)} ${pick(paths)} ${pick(versions)}\r\n${pick(headerSets)}\r\n${pick(bodies)}`;
  const bytes = Buffer.from(text, 'latin1');
  const damage = Math.floor(random() * 4);
  for (let hit = 0; hit < damage; hit++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
  if (random() < 0.1) text = text.slice(0, Math.floor(random() * text.length));
  return random() < 0.1 ? Buffer.from(text, 'latin1') : bytes;
}
