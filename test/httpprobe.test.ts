// lib/httpprobe.ts against raw TCP servers that write exact bytes: every body framing, split
// across packets, gzip, 1xx answers, bodiless answers, malformed and oversized heads, early
// closes, aborts and discards. test/checks.test.ts covers the exchange through probeHttp
// against node:http servers (redirects, headers sent, TLS, timeouts).
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { headerFieldProblem, RESPONSE_HEAD_BYTES_MAX, sendProbe, type ProbeRequest } from '../lib/httpprobe.js';

/** What the server does with each connection: the test sets it. */
let answer: (socket: Socket, request: string) => void = (socket) => socket.destroy();
let server: Server;
let port = 0;
const requests: string[] = [];

before(async () => {
  server = createServer((socket) => {
    let received = '';
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      if (!received.includes('\r\n\r\n')) return;
      requests.push(received);
      answer(socket, received);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  port = typeof address === 'object' && address !== null ? address.port : 0;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Writes the parts with a pause between them, so each reaches the client as its own packet. */
function writeSlowly(socket: Socket, parts: (string | Buffer)[], close = true): void {
  const next = (): void => {
    const part = parts.shift();
    if (part === undefined) {
      if (close) socket.end();
      return;
    }
    socket.write(part);
    setTimeout(next, 5);
  };
  next();
}

async function exchange(overrides: Partial<ProbeRequest> = {}): Promise<{ result: string; status?: number; body: string }> {
  const chunks: Buffer[] = [];
  const outcome = await sendProbe({
    host: '127.0.0.1', port, method: 'GET', target: '/', headers: [['Host', `127.0.0.1:${port}`], ['Connection', 'close']], body: Buffer.alloc(0),
    gunzip: false, signal: new AbortController().signal, onBody: (chunk) => chunks.push(chunk), ...overrides,
  });
  if ('failure' in outcome) {
    const { failure } = outcome;
    return { result: 'aborted' in failure ? 'aborted' : 'text' in failure ? failure.text : `socket ${failure.socketError.code ?? ''}`, body: '' };
  }
  await outcome.head.bodyDone;
  return { result: outcome.head.status, status: outcome.head.statusCode, body: Buffer.concat(chunks).toString('latin1') };
}

describe('sendProbe', () => {
  test('sends the request line, the headers in order and the body, without half-closing', async () => {
    let halfClosed = false;
    answer = (socket) => {
      socket.once('end', () => (halfClosed = true));
      setTimeout(() => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'), 20);
    };
    const body = Buffer.from('ping');
    const reply = await exchange({ method: 'POST', target: '/a?b=c', headers: [['Host', 'h'], ['X-One', 'café'], ['Content-Length', '4']], body });
    assert.deepEqual(reply, { result: '200 OK', status: 200, body: 'ok' });
    // The server collects latin1 text: the header's UTF-8 bytes show as two characters.
    assert.equal(requests.at(-1), `POST /a?b=c HTTP/1.1\r\nHost: h\r\nX-One: ${Buffer.from('café').toString('latin1')}\r\nContent-Length: 4\r\n\r\nping`);
    assert.equal(halfClosed, false, 'the request is not ended by a FIN');
  });

  test('Content-Length framing stops at the length, even if more arrives', async () => {
    answer = (socket) => writeSlowly(socket, ['HTTP/1.1 503 Service Unavailable\r\nContent-', 'Length: 5\r\n\r\nab', 'cdeEXTRA'], false);
    assert.deepEqual(await exchange(), { result: '503 Service Unavailable', status: 503, body: 'abcde' });
  });

  test('chunked framing, split anywhere, with extensions and trailers', async () => {
    answer = (socket) => writeSlowly(socket, ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r', '\nwi', 'ki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: t\r', '\n\r\n'], false);
    assert.deepEqual(await exchange(), { result: '200 OK', status: 200, body: 'wikipedia' });
  });

  test('a broken chunked body ends with what arrived', async () => {
    answer = (socket) => socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nmore');
    assert.deepEqual(await exchange(), { result: '200 OK', status: 200, body: 'abc' });
  });

  test('without framing the body runs to the close', async () => {
    answer = (socket) => writeSlowly(socket, ['HTTP/1.0 200 OK\r\n\r\nfirst ', 'second']);
    assert.deepEqual(await exchange(), { result: '200 OK', status: 200, body: 'first second' });
  });

  test('gzip is unpacked when asked, under every framing; left packed when not', async () => {
    const packed = gzipSync('unpacked text');
    answer = (socket) => socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: ${packed.length}\r\n\r\n`), packed]));
    assert.equal((await exchange({ gunzip: true })).body, 'unpacked text');
    assert.equal((await exchange({ gunzip: false })).body, packed.toString('latin1'));
    answer = (socket) => writeSlowly(socket, ['HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n', `${packed.length.toString(16)}\r\n`, packed, '\r\n0\r\n\r\n'], false);
    assert.equal((await exchange({ gunzip: true })).body, 'unpacked text');
    answer = (socket) => writeSlowly(socket, ['HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n', packed]);
    assert.equal((await exchange({ gunzip: true })).body, 'unpacked text');
    answer = (socket) => socket.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n'), packed.subarray(0, 12)]));
    const cut = await exchange({ gunzip: true });
    assert.equal(cut.status, 200);
    assert.ok('unpacked text'.startsWith(cut.body) && cut.body.length < 'unpacked text'.length, 'a cut gzip stream ends the body where it broke');
  });

  test('1xx answers are skipped; HEAD, 204 and 304 have no body', async () => {
    answer = (socket) => writeSlowly(socket, ['HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew'], false);
    assert.deepEqual(await exchange(), { result: '201 Created', status: 201, body: 'new' });
    answer = (socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n');
    assert.deepEqual(await exchange({ method: 'HEAD' }), { result: '200 OK', status: 200, body: '' });
    answer = (socket) => socket.write('HTTP/1.1 204 No Content\r\n\r\n');
    assert.deepEqual(await exchange(), { result: '204 No Content', status: 204, body: '' });
  });

  test('a status line without a reason is just the code', async () => {
    answer = (socket) => socket.end('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n');
    assert.deepEqual(await exchange(), { result: '200', status: 200, body: '' });
  });

  test('bad responses get Go\'s texts: malformed status line or header, EOF, unexpected EOF, oversized head', async () => {
    answer = (socket) => socket.end('SSH-2.0-OpenSSH\r\n\r\n');
    assert.equal((await exchange()).result, 'net/http: HTTP/1.x transport connection broken: malformed HTTP response "SSH-2.0-OpenSSH"');
    answer = (socket) => socket.end('HTTP/1.1 200 OK\r\nno colon here\r\n\r\n');
    assert.equal((await exchange()).result, 'net/http: HTTP/1.x transport connection broken: malformed MIME header line: no colon here');
    answer = (socket) => socket.end();
    assert.equal((await exchange()).result, 'EOF');
    answer = (socket) => socket.end('HTTP/1.1 200 OK\r\nContent-');
    assert.equal((await exchange()).result, 'unexpected EOF');
    answer = (socket) => socket.end(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(RESPONSE_HEAD_BYTES_MAX + 10)}`);
    assert.equal((await exchange()).result, `net/http: server response headers exceeded ${RESPONSE_HEAD_BYTES_MAX} bytes; aborted`);
  });

  test('a refused connection is a socket error', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const address = closed.address();
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const reply = await exchange({ port: typeof address === 'object' && address !== null ? address.port : 0 });
    assert.equal(reply.result, 'socket ECONNREFUSED');
  });

  test('an abort ends a waiting exchange, and a body mid-way; discard ends the body at once', async () => {
    answer = () => undefined;
    const waiting = new AbortController();
    const pending = exchange({ signal: waiting.signal });
    setTimeout(() => waiting.abort(), 20);
    assert.equal((await pending).result, 'aborted');

    answer = (socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
    const reading = new AbortController();
    const chunks: Buffer[] = [];
    const outcome = await sendProbe({ host: '127.0.0.1', port, method: 'GET', target: '/', headers: [['Host', 'h']], body: Buffer.alloc(0), gunzip: false, signal: reading.signal, onBody: (chunk) => chunks.push(chunk) });
    assert.ok('head' in outcome);
    setTimeout(() => reading.abort(), 20);
    await outcome.head.bodyDone;
    assert.equal(Buffer.concat(chunks).toString(), 'partial');

    answer = (socket) => socket.write('HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 100\r\n\r\n');
    const redirected = await sendProbe({ host: '127.0.0.1', port, method: 'GET', target: '/', headers: [['Host', 'h']], body: Buffer.alloc(0), gunzip: false, signal: new AbortController().signal, onBody: () => assert.fail('no body after discard') });
    assert.ok('head' in redirected);
    assert.equal(redirected.head.header('location'), '/next');
    redirected.head.discard();
    await redirected.head.bodyDone;
  });
});

describe('headerFieldProblem', () => {
  test('Go\'s checks on header names and values', () => {
    assert.equal(headerFieldProblem('X-Fine', 'a\tb'), undefined);
    assert.equal(headerFieldProblem('Bad Name', 'v'), 'net/http: invalid header field name "Bad Name"');
    assert.equal(headerFieldProblem('', 'v'), 'net/http: invalid header field name ""');
    assert.equal(headerFieldProblem('X-Split', 'a\r\nInjected: 1'), 'net/http: invalid header field value for "X-Split"');
  });
});
