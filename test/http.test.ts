import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { HttpError, listenHttp, NON_API_PATH_TEXT, Router, UNKNOWN_ENDPOINT_TEXT, type HttpListener, type HttpRoute } from '../lib/http.js';
import { MemorySink, createLogger } from '../lib/log.js';
import { httpRequest } from './support.js';

const routes: HttpRoute[] = [
  { path: '/v1/echo', methods: ['GET'], handler: (request) => ({ json: { path: request.path, query: Object.fromEntries(request.query) } }) },
  { path: '/v1/kv/', methods: ['GET', 'PUT', 'DELETE'], handler: (request) => ({ json: { param: request.param, method: request.method } }) },
  { path: '/v1/kv/special', methods: ['GET'], handler: () => ({ json: 'exact beats prefix' }) },
  { path: '/v1/fail/http', methods: ['GET'], handler: () => { throw new HttpError(400, 'Missing key name'); } },
  { path: '/v1/fail/crash', methods: ['GET'], handler: () => { throw new Error('No cluster leader'); } },
  { path: '/v1/text', methods: ['GET'], handler: () => ({ text: 'plain', headers: { 'X-Custom': 'yes' } }) },
];

const logSink = new MemorySink();
const logger = createLogger({ level: 'debug', json: false, nowMs: () => 0, sink: logSink });
let compact: HttpListener;
let pretty: HttpListener;

before(async () => {
  compact = await listenHttp('127.0.0.1', 0, { routes, logger, isPrettyByDefault: false, isUiEnabled: false });
  pretty = await listenHttp('127.0.0.1', 0, { routes, logger, isPrettyByDefault: true, isUiEnabled: true });
});
after(async () => {
  await compact.close();
  await pretty.close();
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

  test('unknown /v1/ paths get Consul\'s 404 text', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/v1/nope');
    assert.equal(reply.status, 404);
    assert.equal(reply.body, `${UNKNOWN_ENDPOINT_TEXT}\n`);
    assert.match(String(reply.headers['content-type']), /^text\/plain/);
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

  test('OPTIONS answers 200 with Allow and an empty body', async () => {
    const reply = await httpRequest(compact.address.port, 'OPTIONS', '/v1/kv/x');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['allow'], 'OPTIONS,GET,PUT,DELETE');
    assert.equal(reply.body, '');
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

  test('GET / explains the UI is off, or redirects to it when on', async () => {
    const off = await httpRequest(compact.address.port, 'GET', '/');
    assert.equal(off.status, 200);
    assert.equal(off.body, 'Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent configuration and restart.');
    const on = await httpRequest(pretty.address.port, 'GET', '/');
    assert.equal(on.status, 301);
    assert.equal(on.headers['location'], '/ui/');
  });
});

describe('malformed requests', () => {
  test('a malformed percent-escape is a 400', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/v1/kv/%zz');
    assert.equal(reply.status, 400);
  });

  test('control characters in the path are a 400', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', '/v1/kv/a%00b');
    assert.equal(reply.status, 400);
    assert.equal(reply.body, 'Invalid URL path: contains non-printable characters');
  });

  test('an over-long URL is refused without routing', async () => {
    const reply = await httpRequest(compact.address.port, 'GET', `/v1/kv/${'a'.repeat(70_000)}`);
    assert.equal(reply.status, 414);
  });

  test('garbage on the socket gets 400 and the server keeps serving', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(compact.address.port, '127.0.0.1');
      let received = '';
      socket.on('data', (chunk) => (received += chunk.toString()));
      socket.on('end', () => resolve(received));
      socket.on('error', reject);
      socket.write('\x00\x01 not http at all\r\n\r\n');
    });
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request/);
    assert.equal((await httpRequest(compact.address.port, 'GET', '/v1/echo')).status, 200);
  });

  test('binding a port in use rejects with the bind error', async () => {
    await assert.rejects(listenHttp('127.0.0.1', compact.address.port, { routes, logger, isPrettyByDefault: false, isUiEnabled: false }), { code: 'EADDRINUSE' });
  });
});
