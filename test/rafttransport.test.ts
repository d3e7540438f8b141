// The Raft TCP transport on loopback with real sockets: every RPC, Consul's `01` prefix and the
// raw port, FIFO pipelining, streamed snapshots, deadlines, broken peers, malformed input, limits
// and close(). No fixed sleeps: every wait is on an event or a condition with a deadline.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { createLogger, MemorySink } from '../lib/log.js';
import { encode } from '../lib/msgpack.js';
import {
  RaftTransport,
  RaftTransportError,
  snapshotTimeoutMs,
  splitHostPort,
  type RaftHandler,
  type RaftRpc,
  type RaftTransportOptions,
} from '../lib/rafttransport.js';
import {
  encodeRequest,
  encodeRequestFrame,
  encodeResponse,
  encodeResponseFrame,
  UNSUPPORTED_PROTOCOL_MESSAGE,
  type AppendEntriesRequest,
  type InstallSnapshotRequest,
  type RequestVoteRequest,
} from '../lib/raftwire.js';
import { freePort, mulberry32, waitFor } from './support.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** Bytes from wire.md's notation: hex bytes and `"ASCII"` runs, e.g. `a4"boom" c0`. */
function wire(notation: string): Uint8Array {
  const out: number[] = [];
  for (const token of notation.match(/"[^"]*"|[0-9a-f]+/g) ?? []) {
    if (token.startsWith('"')) for (const char of token.slice(1, -1)) out.push(char.charCodeAt(0));
    else for (let i = 0; i < token.length; i += 2) out.push(parseInt(token.slice(i, i + 2), 16));
  }
  return new Uint8Array(out);
}

function append(prevLogEntry: number, data = new Uint8Array([1, 2, 3])): AppendEntriesRequest {
  return { protocolVersion: 3, term: 4, leader: '127.0.0.1:1', prevLogEntry, prevLogTerm: 4, leaderCommitIndex: prevLogEntry, entries: [{ index: prevLogEntry + 1, term: 4, type: 0, data }] };
}

const VOTE: RequestVoteRequest = { protocolVersion: 3, term: 7, candidate: '127.0.0.1:2', lastLogIndex: 10, lastLogTerm: 6, leadershipTransfer: false };

function snapshotRequest(size: number): InstallSnapshotRequest {
  return {
    protocolVersion: 3, snapshotVersion: 1, term: 5, leader: '127.0.0.1:1', lastLogIndex: 100, lastLogTerm: 5, peers: null,
    configuration: [{ suffrage: 0, id: 'a', address: '127.0.0.1:1' }], configurationIndex: 1, size,
  };
}

/** Answers every RPC plainly and records it; snapshot data is hashed. */
function recordingHandler(seen: RaftRpc[], digests: string[] = []): RaftHandler {
  return async (rpc) => {
    seen.push(rpc);
    switch (rpc.kind) {
      case 'appendEntries': return { protocolVersion: 3, term: rpc.request.term, lastLog: rpc.request.prevLogEntry + rpc.request.entries.length, success: true, noRetryBackoff: false };
      case 'requestVote': return { protocolVersion: 3, term: rpc.request.term, peers: null, granted: !rpc.request.leadershipTransfer };
      case 'installSnapshot': {
        const hash = createHash('sha256');
        let received = 0;
        for await (const chunk of rpc.data) {
          hash.update(chunk);
          received += chunk.length;
          // A slow reader: the socket must pause rather than buffer the whole snapshot.
          await new Promise((resolve) => setImmediate(resolve));
        }
        digests.push(hash.digest('hex'));
        return { protocolVersion: 3, term: rpc.request.term, success: received === rpc.request.size };
      }
      case 'timeoutNow': return { protocolVersion: 3 };
      case 'requestPreVote': return { protocolVersion: 3, term: rpc.request.term, granted: true };
      default: throw new Error('unreachable');
    }
  };
}

async function start(t: TestContext, handler: RaftHandler, options: Partial<RaftTransportOptions> = {}): Promise<{ transport: RaftTransport; sink: MemorySink }> {
  const sink = new MemorySink();
  const logger = createLogger({ level: 'debug', json: false, sink, nowMs: () => 0 });
  const transport = await RaftTransport.listen({ host: '127.0.0.1', port: 0, handler, logger, ...options });
  t.after(() => transport.close());
  return { transport, sink };
}

/** A transport used only as a client (it listens too, but nobody calls it). */
async function client(t: TestContext, options: Partial<RaftTransportOptions> = {}): Promise<RaftTransport> {
  return (await start(t, () => Promise.reject(new Error('not a server')), options)).transport;
}

async function expectCode(promise: Promise<unknown>, code: RaftTransportError['code'], message?: string | RegExp): Promise<RaftTransportError> {
  const error = await promise.then(
    () => assert.fail(`expected ${code}`),
    (reason: unknown) => reason,
  );
  assert.ok(error instanceof RaftTransportError, `expected RaftTransportError ${code}, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  if (typeof message === 'string') assert.equal(error.message, message);
  else if (message !== undefined) assert.match(error.message, message);
  return error;
}

/** A plain socket that collects what it receives, for byte-level checks. */
class RawPeer {
  readonly socket: Socket;
  private received = Buffer.alloc(0);
  private readonly waiters: (() => void)[] = [];
  readonly closed: Promise<void>;

  constructor(port: number) {
    this.socket = connect({ host: '127.0.0.1', port });
    this.socket.on('error', () => undefined);
    this.socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) => this.socket.on('close', () => {
      resolve();
      for (const wake of this.waiters.splice(0)) wake();
    }));
  }

  /** Waits for `count` bytes (or the close) and consumes them. */
  async read(count: number): Promise<Uint8Array> {
    while (this.received.length < count && !this.socket.destroyed) await new Promise<void>((resolve) => this.waiters.push(resolve));
    const out = this.received.subarray(0, count);
    this.received = this.received.subarray(count);
    return new Uint8Array(out);
  }
}

async function* chunked(bytes: Uint8Array, chunkBytes: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += chunkBytes) yield bytes.subarray(at, at + chunkBytes);
}

function pseudoRandomBytes(seed: number, length: number): Uint8Array {
  const random = mulberry32(seed);
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

/** A TCP server under the test's control, closed with the test. */
async function fakePeer(t: TestContext, onConnection: (socket: Socket) => void): Promise<string> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  }));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return `127.0.0.1:${address.port}`;
}


/** A server whose handler answers nothing until the test ends (for deadline tests). */
async function startStalledServer(t: TestContext): Promise<RaftTransport> {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  t.after(() => release());
  const { transport } = await start(t, async (rpc) => {
    await gate;
    return recordingHandler([])(rpc);
  });
  return transport;
}

describe('raft transport: request/response round trips', () => {
  it('carries every RPC over the Consul server-port framing (01 first)', async (t) => {
    const seen: RaftRpc[] = [];
    const { transport: server } = await start(t, recordingHandler(seen));
    const peer = await client(t);
    const address = server.localAddress;
    assert.deepEqual(await peer.appendEntries(address, append(5)), { protocolVersion: 3, term: 4, lastLog: 6, success: true, noRetryBackoff: false });
    assert.deepEqual(await peer.requestVote(address, VOTE), { protocolVersion: 3, term: 7, peers: null, granted: true });
    assert.deepEqual(await peer.requestVote(address, { ...VOTE, leadershipTransfer: true }), { protocolVersion: 3, term: 7, peers: null, granted: false });
    assert.deepEqual(await peer.timeoutNow(address, { protocolVersion: 3 }), { protocolVersion: 3 });
    peer.setPreVoteSupported(address, true);
    assert.deepEqual(await peer.requestPreVote(address, { protocolVersion: 3, term: 8, lastLogIndex: 10, lastLogTerm: 6 }), { protocolVersion: 3, term: 8, granted: true });
    const data = pseudoRandomBytes(1, 1000);
    assert.deepEqual(await peer.installSnapshot(address, snapshotRequest(data.length), chunked(data, 100)), { protocolVersion: 3, term: 5, success: true });
    assert.deepEqual(seen.map((rpc) => rpc.kind), ['appendEntries', 'requestVote', 'requestVote', 'timeoutNow', 'requestPreVote', 'installSnapshot']);
    const first = seen[0];
    assert.ok(first?.kind === 'appendEntries' && !first.isHeartbeat);
    assert.deepEqual(first.request.entries[0]?.data, new Uint8Array([1, 2, 3]));
  });

  it('flags heartbeats (term and leader only) for the fast path', async (t) => {
    const seen: RaftRpc[] = [];
    const { transport: server } = await start(t, recordingHandler(seen));
    const peer = await client(t);
    await peer.appendEntries(server.localAddress, { protocolVersion: 3, term: 9, leader: '127.0.0.1:1', prevLogEntry: 0, prevLogTerm: 0, leaderCommitIndex: 0, entries: [] });
    assert.ok(seen[0]?.kind === 'appendEntries' && seen[0].isHeartbeat);
  });

  it('answers a raw socket with the exact bytes raft 1.1.2 sends (wire.md §5.2)', async (t) => {
    const { transport: server } = await start(t, async () => ({ protocolVersion: 3, term: 7, peers: null, granted: true }));
    const raw = new RawPeer(Number(server.localAddress.split(':')[1]));
    t.after(() => raw.socket.destroy());
    raw.socket.write(new Uint8Array([0x01, ...encodeRequestFrame('requestVote', VOTE)]));
    const expected = wire('a0 84 a7"Granted" c3 a5"Peers" c0 af"ProtocolVersion" 03 a4"Term" 07');
    assert.equal(hex(await raw.read(expected.length)), hex(expected));
  });

  it('sends a handler error as the error string with a nil body, and keeps the connection', async (t) => {
    let calls = 0;
    const { transport: server } = await start(t, async () => {
      calls++;
      if (calls === 1) throw new Error('boom');
      return { protocolVersion: 3, term: 7, peers: null, granted: true };
    });
    const raw = new RawPeer(Number(server.localAddress.split(':')[1]));
    t.after(() => raw.socket.destroy());
    const frame = encodeRequestFrame('requestVote', VOTE);
    raw.socket.write(new Uint8Array([0x01, ...frame, ...frame]));
    assert.equal(hex(await raw.read(6)), hex(wire('a4"boom" c0')));
    const success = encodeResponseFrame('', encodeResponse('requestVote', { protocolVersion: 3, term: 7, peers: null, granted: true }));
    assert.equal(hex(await raw.read(success.length)), hex(success));
  });

  it('reports an error reply as ERR_RAFT_REMOTE and reuses the connection', async (t) => {
    const seen: RaftRpc[] = [];
    const { transport: server } = await start(t, async (rpc) => {
      seen.push(rpc);
      if (rpc.kind === 'requestVote' && rpc.request.term === 13) throw new Error('vote refused: boom');
      return recordingHandler([])(rpc);
    });
    const peer = await client(t);
    await expectCode(peer.requestVote(server.localAddress, { ...VOTE, term: 13 }), 'ERR_RAFT_REMOTE', 'vote refused: boom');
    await peer.requestVote(server.localAddress, VOTE);
    assert.equal(seen[0]?.remoteAddress, seen[1]?.remoteAddress);
  });

  it('refuses protocol versions it does not serve with raft\'s text, connection kept', async (t) => {
    let handled = 0;
    const { transport: server } = await start(t, async () => {
      handled++;
      return { protocolVersion: 3, term: 7, peers: null, granted: true };
    });
    const raw = new RawPeer(Number(server.localAddress.split(':')[1]));
    t.after(() => raw.socket.destroy());
    const refusal = new Uint8Array([...encode(UNSUPPORTED_PROTOCOL_MESSAGE, { goCompatible: true }), 0xc0]);
    for (const protocolVersion of [4, 1]) {
      raw.socket.write(new Uint8Array([...(protocolVersion === 4 ? [0x01] : []), ...encodeRequestFrame('requestVote', { ...VOTE, protocolVersion })]));
      assert.equal(hex(await raw.read(refusal.length)), hex(refusal));
    }
    raw.socket.write(encodeRequestFrame('requestVote', { ...VOTE, protocolVersion: 2 }));
    assert.equal((await raw.read(1))[0], 0xa0);
    assert.equal(handled, 1);
    const peer = await client(t);
    await expectCode(peer.timeoutNow(server.localAddress, { protocolVersion: 4 }), 'ERR_RAFT_REMOTE', UNSUPPORTED_PROTOCOL_MESSAGE);
  });

  it('speaks a raw raft port (no 01 byte) when configured, both ways', async (t) => {
    const { transport: server } = await start(t, recordingHandler([]), { isRawRaftPort: true });
    const raw = new RawPeer(Number(server.localAddress.split(':')[1]));
    t.after(() => raw.socket.destroy());
    raw.socket.write(encodeRequestFrame('timeoutNow', { protocolVersion: 3 }));
    assert.equal(hex(await raw.read(19)), hex(wire('a0 81 af"ProtocolVersion" 03')));
    const peer = await client(t, { isRawRaftPort: true });
    assert.equal((await peer.appendEntries(server.localAddress, append(1))).lastLog, 2);
  });

  it('serves a socket handed over by a multiplexer that already read the 01 byte', async (t) => {
    const { transport: server } = await start(t, recordingHandler([]));
    const mux = await fakePeer(t, (socket) => {
      socket.once('data', (chunk: Buffer) => {
        assert.equal(chunk[0], 0x01);
        server.acceptConnection(socket, { isPrefixRead: true, head: chunk.subarray(1) });
      });
    });
    const peer = await client(t);
    assert.equal((await peer.appendEntries(mux, append(41))).lastLog, 42);
  });

  it('keeps at most maxPool idle connections per peer and reuses them', async (t) => {
    const seen: RaftRpc[] = [];
    const { transport: server } = await start(t, recordingHandler(seen));
    const peer = await client(t, { maxPool: 3 });
    await Promise.all(Array.from({ length: 5 }, (_, i) => peer.appendEntries(server.localAddress, append(i))));
    await Promise.all(Array.from({ length: 6 }, (_, i) => peer.appendEntries(server.localAddress, append(i))));
    // 5 connections for the first burst; 3 of them stay pooled, so the second needs 3 more.
    assert.equal(new Set(seen.map((rpc) => rpc.remoteAddress)).size, 8);
  });
});

describe('raft transport: pipelining', () => {
  it('keeps 100 AppendEntries in flight, hands them over without waiting, answers in FIFO order', async (t) => {
    const order: number[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const random = mulberry32(7);
    const { transport: server } = await start(t, async (rpc) => {
      assert.ok(rpc.kind === 'appendEntries' || rpc.kind === 'requestVote');
      if (rpc.kind === 'requestVote') return { protocolVersion: 3, term: 7, peers: null, granted: true };
      order.push(rpc.request.prevLogEntry);
      if (order.length === 1) await gate;
      // Uneven service times: replies must still come back in request order.
      for (let i = Math.floor(random() * 5); i > 0; i--) await new Promise((resolve) => setImmediate(resolve));
      return { protocolVersion: 3, term: 4, lastLog: rpc.request.prevLogEntry, success: true, noRetryBackoff: false };
    });
    const peer = await client(t);
    const pipeline = peer.appendEntriesPipeline(server.localAddress);
    t.after(() => pipeline.close());
    const replies = Array.from({ length: 100 }, (_, i) => pipeline.appendEntries(append(i)));
    assert.equal(pipeline.inFlight, 100);
    // Later requests reach the handler while the first is held (so a follower can step them
    // together), and other connections are served meanwhile.
    await waitFor('every append at the server', () => (order.length === 100 ? true : undefined));
    assert.equal((await peer.requestVote(server.localAddress, VOTE)).granted, true);
    assert.equal(pipeline.inFlight, 100);
    release();
    const responses = await Promise.all(replies);
    assert.deepEqual(responses.map((response) => response.lastLog), Array.from({ length: 100 }, (_, i) => i));
    assert.deepEqual(order, Array.from({ length: 100 }, (_, i) => i));
    assert.equal(pipeline.inFlight, 0);
  });

  it('serves an InstallSnapshot alone between appends written back to back on one connection', async (t) => {
    const seen: RaftRpc[] = [];
    const digests: string[] = [];
    const { transport: server } = await start(t, recordingHandler(seen, digests));
    const raw = new RawPeer(Number(server.localAddress.split(':')[1]));
    t.after(() => raw.socket.destroy());
    const data = pseudoRandomBytes(11, 300_000);
    raw.socket.write(new Uint8Array([0x01, ...encodeRequestFrame('appendEntries', append(1)), ...encodeRequestFrame('installSnapshot', snapshotRequest(data.length)), ...data, ...encodeRequestFrame('appendEntries', append(2))]));
    const replies = [
      encodeResponseFrame('', encodeResponse('appendEntries', { protocolVersion: 3, term: 4, lastLog: 2, success: true, noRetryBackoff: false })),
      encodeResponseFrame('', encodeResponse('installSnapshot', { protocolVersion: 3, term: 5, success: true })),
      encodeResponseFrame('', encodeResponse('appendEntries', { protocolVersion: 3, term: 4, lastLog: 3, success: true, noRetryBackoff: false })),
    ];
    for (const reply of replies) assert.equal(hex(await raw.read(reply.length)), hex(reply));
    assert.deepEqual(seen.map((rpc) => rpc.kind), ['appendEntries', 'installSnapshot', 'appendEntries']);
    assert.deepEqual(digests, [createHash('sha256').update(data).digest('hex')]);
  });

  it('refuses a request beyond inFlightMax without closing the pipeline', async (t) => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { transport: server } = await start(t, async (rpc) => {
      await gate;
      return recordingHandler([])(rpc);
    });
    const peer = await client(t);
    const pipeline = peer.appendEntriesPipeline(server.localAddress, { inFlightMax: 2 });
    t.after(() => pipeline.close());
    const first = [pipeline.appendEntries(append(1)), pipeline.appendEntries(append(2))];
    await expectCode(pipeline.appendEntries(append(3)), 'ERR_RAFT_PIPELINE_FULL');
    release();
    assert.deepEqual((await Promise.all(first)).map((response) => response.lastLog), [2, 3]);
    assert.equal((await pipeline.appendEntries(append(3))).lastLog, 4);
  });

  it('closes on the first error and fails everything in flight', async (t) => {
    const { transport: server } = await start(t, async (rpc) => {
      if (rpc.kind === 'appendEntries' && rpc.request.prevLogEntry === 3) throw new Error('log mismatch');
      return recordingHandler([])(rpc);
    });
    const peer = await client(t);
    const pipeline = peer.appendEntriesPipeline(server.localAddress);
    const replies = Array.from({ length: 6 }, (_, i) => pipeline.appendEntries(append(i)).then((response) => response.lastLog, (error: unknown) => error));
    const settled = await Promise.all(replies);
    assert.deepEqual(settled.slice(0, 3), [1, 2, 3]);
    for (const outcome of settled.slice(3)) assert.ok(outcome instanceof RaftTransportError && outcome.code === 'ERR_RAFT_REMOTE', String(outcome));
    assert.equal((await pipeline.closed).message, 'log mismatch');
    assert.ok(pipeline.isClosed);
    await expectCode(pipeline.appendEntries(append(9)), 'ERR_RAFT_REMOTE');
  });

  it('times out the oldest reply and closes', async (t) => {
    const server = await startStalledServer(t);
    const peer = await client(t);
    const pipeline = peer.appendEntriesPipeline(server.localAddress, { timeoutMs: 50 });
    const replies = [pipeline.appendEntries(append(1)), pipeline.appendEntries(append(2))];
    for (const reply of replies) await expectCode(reply, 'ERR_RAFT_TIMEOUT');
    assert.equal((await pipeline.closed).code, 'ERR_RAFT_TIMEOUT');
  });

  it('close() fails requests in flight with "append pipeline closed"', async (t) => {
    const gate = new Promise<void>(() => undefined);
    const { transport: server } = await start(t, async () => gate.then(() => ({ protocolVersion: 3 })));
    const peer = await client(t);
    const pipeline = peer.appendEntriesPipeline(server.localAddress);
    const reply = pipeline.appendEntries(append(1));
    pipeline.close();
    await expectCode(reply, 'ERR_RAFT_CLOSED', 'append pipeline closed');
  });
});

describe('raft transport: InstallSnapshot', () => {
  it('streams a few MB with backpressure, byte for byte, and scales the deadline', async (t) => {
    const digests: string[] = [];
    const { transport: server } = await start(t, recordingHandler([], digests));
    const peer = await client(t);
    const data = pseudoRandomBytes(99, 5 * 1024 * 1024 + 123);
    const response = await peer.installSnapshot(server.localAddress, snapshotRequest(data.length), chunked(data, 64 * 1024));
    assert.deepEqual(response, { protocolVersion: 3, term: 5, success: true });
    assert.deepEqual(digests, [createHash('sha256').update(data).digest('hex')]);
    assert.equal(snapshotTimeoutMs(10_000, data.length), 200_000);
    assert.equal(snapshotTimeoutMs(10_000, 1000), 10_000);
  });

  it('pauses the sender while the handler does not read (write backpressure end to end)', async (t) => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    t.after(() => release());
    let received = 0;
    const { transport: server } = await start(t, async (rpc) => {
      assert.ok(rpc.kind === 'installSnapshot');
      await gate;
      for await (const chunk of rpc.data) received += chunk.length;
      return { protocolVersion: 3, term: 5, success: true };
    });
    const peer = await client(t);
    const size = 32 * 1024 * 1024;
    let pulled = 0;
    async function* source(): AsyncGenerator<Uint8Array> {
      const chunk = new Uint8Array(64 * 1024);
      while (pulled < size) {
        pulled += chunk.length;
        yield chunk;
      }
    }
    const reply = peer.installSnapshot(server.localAddress, snapshotRequest(size), source());
    // Wait until the sender stalls (its count stops moving), then check it stalled early: the
    // kernel buffers plus our read-ahead, not the whole snapshot.
    let last = -1;
    let stable = 0;
    await waitFor('the sender to stall', () => {
      stable = pulled === last && pulled > 0 ? stable + 1 : 0;
      last = pulled;
      return stable >= 5 ? true : undefined;
    });
    assert.ok(pulled < size / 2, `sender pulled ${pulled} of ${size} bytes while the receiver was blocked`);
    release();
    assert.equal((await reply).success, true);
    assert.equal(received, size);
  });

  it('refuses a snapshot with an unsupported protocol version after draining its bytes', async (t) => {
    const { transport: server } = await start(t, recordingHandler([]));
    const peer = await client(t);
    const request = { ...snapshotRequest(200_000), protocolVersion: 4 };
    await expectCode(peer.installSnapshot(server.localAddress, request, chunked(new Uint8Array(200_000), 8192)), 'ERR_RAFT_REMOTE', UNSUPPORTED_PROTOCOL_MESSAGE);
  });

  it('drains bytes the handler does not read, so its reply still frames correctly', async (t) => {
    const { transport: server } = await start(t, async (rpc) => ({ protocolVersion: 3, term: rpc.kind === 'installSnapshot' ? rpc.request.term + 1 : 0, success: false }));
    const peer = await client(t);
    const data = pseudoRandomBytes(3, 3 * 1024 * 1024);
    assert.deepEqual(await peer.installSnapshot(server.localAddress, snapshotRequest(data.length), chunked(data, 32 * 1024)), { protocolVersion: 3, term: 6, success: false });
  });

  it('refuses data shorter or longer than Size', async (t) => {
    const { transport: server } = await start(t, recordingHandler([]));
    const peer = await client(t);
    await expectCode(peer.installSnapshot(server.localAddress, snapshotRequest(1000), chunked(new Uint8Array(999), 100)), 'ERR_RAFT_SNAPSHOT_SIZE');
    await expectCode(peer.installSnapshot(server.localAddress, snapshotRequest(1000), chunked(new Uint8Array(1001), 100)), 'ERR_RAFT_SNAPSHOT_SIZE');
    assert.equal((await peer.installSnapshot(server.localAddress, snapshotRequest(0), chunked(new Uint8Array(0), 1))).success, true);
  });

  it('refuses a snapshot over the limit, at the client and at the server', async (t) => {
    const { transport: server, sink } = await start(t, recordingHandler([]), { snapshotBytesMax: 1000 });
    const small = await client(t, { snapshotBytesMax: 1000 });
    await expectCode(small.installSnapshot(server.localAddress, snapshotRequest(1001), chunked(new Uint8Array(1001), 100)), 'ERR_RAFT_TOO_LARGE');
    const peer = await client(t);
    await expectCode(peer.installSnapshot(server.localAddress, snapshotRequest(5000), chunked(new Uint8Array(5000), 100)), 'ERR_RAFT_CONNECTION');
    assert.ok(sink.lines.some((line) => line.includes('failed to decode incoming command') && line.includes('exceeds 1000')), sink.lines.join('\n'));
  });
});

describe('raft transport: deadlines and broken peers', () => {
  it('fails a call at its deadline and closes that connection', async (t) => {
    const server = await startStalledServer(t);
    const peer = await client(t);
    const started = performance.now();
    await expectCode(peer.requestVote(server.localAddress, VOTE, { timeoutMs: 60 }), 'ERR_RAFT_TIMEOUT', /timed out after 60 ms/);
    assert.ok(performance.now() - started >= 55);
  });

  it('reports a server that closes mid-response as a connection error', async (t) => {
    const reply = encodeResponseFrame('', encodeResponse('requestVote', { protocolVersion: 3, term: 7, peers: null, granted: true }));
    const address = await fakePeer(t, (socket) => {
      socket.once('data', () => {
        socket.write(reply.subarray(0, 10));
        socket.destroy();
      });
    });
    const peer = await client(t);
    await expectCode(peer.requestVote(address, VOTE), 'ERR_RAFT_CONNECTION');
  });

  it('reports unparseable replies as ERR_RAFT_BAD_RESPONSE', async (t) => {
    const replies = [wire('c1'), wire('a0 91 01'), wire('a0 81 af"ProtocolVersion" 05')];
    let next = 0;
    const address = await fakePeer(t, (socket) => socket.once('data', () => socket.write(replies[next++] ?? new Uint8Array(0))));
    const peer = await client(t);
    for (let i = 0; i < 3; i++) await expectCode(peer.requestVote(address, VOTE), 'ERR_RAFT_BAD_RESPONSE');
  });

  it('reports a refused dial and a bad address as connection errors', async (t) => {
    const peer = await client(t);
    await expectCode(peer.requestVote(`127.0.0.1:${await freePort()}`, VOTE), 'ERR_RAFT_CONNECTION');
    await expectCode(peer.requestVote('no-port', VOTE), 'ERR_RAFT_CONNECTION');
    assert.deepEqual(splitHostPort('[::1]:8300'), { host: '::1', port: 8300 });
  });

  it('sends pre-vote only to peers marked as supporting it', async (t) => {
    const { transport: old } = await start(t, recordingHandler([]), { isPreVoteServed: false });
    const peer = await client(t);
    const request = { protocolVersion: 3, term: 8, lastLogIndex: 1, lastLogTerm: 1 };
    await expectCode(peer.requestPreVote(old.localAddress, request), 'ERR_RAFT_PREVOTE_UNSUPPORTED');
    peer.setPreVoteSupported(old.localAddress, true);
    // A 1.1.2 server closes the connection on type 4.
    await expectCode(peer.requestPreVote(old.localAddress, request), 'ERR_RAFT_CONNECTION');
  });

  it('refuses an oversized request before sending, and the server refuses one before buffering it', async (t) => {
    const { transport: server, sink } = await start(t, recordingHandler([]), { rpcBytesMax: 1024 });
    const small = await client(t, { rpcBytesMax: 1024 });
    await expectCode(small.appendEntries(server.localAddress, append(1, new Uint8Array(2000))), 'ERR_RAFT_TOO_LARGE');
    const peer = await client(t);
    await expectCode(peer.appendEntries(server.localAddress, append(1, new Uint8Array(64 * 1024))), 'ERR_RAFT_CONNECTION');
    assert.ok(sink.lines.some((line) => line.includes('longer than 1024 bytes')), sink.lines.join('\n'));
    assert.equal((await peer.appendEntries(server.localAddress, append(1))).lastLog, 2);
  });
});

describe('raft transport: malformed input from a raw socket', () => {
  const BAD_INPUTS: readonly [string, string][] = [
    ['not RPCRaft', '02 00 80'],
    ['unknown rpc type', '01 09 80'],
    ['invalid descriptor', '01 00 c1'],
    ['struct sent as an array', '01 01 91 03'],
    ['a string where an integer goes', '01 01 81 a4"Term" a1"x"'],
    ['a declared length past the limit', '01 00 db 7fffffff'],
    ['too many entries', '01 00 81 a7"Entries" dc 0401 00'],
    ['an unknown log type', '01 00 81 a7"Entries" 91 81 a4"Type" 09'],
  ];

  for (const [name, notation] of BAD_INPUTS) {
    it(`closes the connection on ${name} and keeps serving`, async (t) => {
      const { transport: server, sink } = await start(t, recordingHandler([]));
      const raw = new RawPeer(Number(server.localAddress.split(':')[1]));
      raw.socket.write(wire(notation));
      await raw.closed;
      assert.ok(sink.lines.some((line) => line.includes('failed to decode incoming command')), sink.lines.join('\n'));
      assert.equal((await (await client(t)).appendEntries(server.localAddress, append(1))).lastLog, 2);
    });
  }

  it('survives 300 connections of seeded random bytes (SEED=5150)', async (t) => {
    const { transport: server } = await start(t, recordingHandler([]));
    const port = Number(server.localAddress.split(':')[1]);
    const random = mulberry32(5150);
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(Array.from({ length: 30 }, async () => {
        const raw = new RawPeer(port);
        const body = pseudoRandomBytes(Math.floor(random() * 2 ** 31), 1 + Math.floor(random() * 200));
        const prefix = random() < 0.8 ? [0x01, Math.floor(random() * 5)] : [];
        raw.socket.end(new Uint8Array([...prefix, ...body]));
        await raw.closed;
      }));
    }
    assert.equal((await (await client(t)).appendEntries(server.localAddress, append(1))).lastLog, 2);
  });
});

describe('raft transport: close()', () => {
  it('ends every socket and fails pending calls with "transport shutdown"', async (t) => {
    const gate = new Promise<void>(() => undefined);
    const { transport: server } = await start(t, async () => gate.then(() => ({ protocolVersion: 3 })));
    const peer = await client(t);
    const pending = peer.timeoutNow(server.localAddress, { protocolVersion: 3 });
    const pipeline = peer.appendEntriesPipeline(server.localAddress);
    const piped = pipeline.appendEntries(append(1));
    const raw = new RawPeer(Number(server.localAddress.split(':')[1]));
    raw.socket.write(new Uint8Array([0x01]));
    await waitFor('server connections', () => (raw.socket.readyState === 'open' ? true : undefined));
    await peer.close();
    await expectCode(pending, 'ERR_RAFT_CLOSED', 'transport shutdown');
    await expectCode(piped, 'ERR_RAFT_CLOSED', 'transport shutdown');
    await expectCode(peer.requestVote(server.localAddress, VOTE), 'ERR_RAFT_CLOSED');
    await server.close();
    await raw.closed;
  });
});

describe('raft transport: request encoding reaches the handler intact', () => {
  it('delivers the golden AppendEntries request as sent by a Go leader', async (t) => {
    const seen: RaftRpc[] = [];
    const { transport: server } = await start(t, recordingHandler(seen));
    const raw = new RawPeer(Number(server.localAddress.split(':')[1]));
    t.after(() => raw.socket.destroy());
    const golden = encodeRequest('appendEntries', { protocolVersion: 3, term: 2, leader: '127.0.0.1:8300', prevLogEntry: 5, prevLogTerm: 1, leaderCommitIndex: 5, entries: [{ index: 6, term: 2, type: 0, data: new Uint8Array([1, 2]) }] });
    // Written one byte at a time: framing must not depend on how TCP splits the stream.
    for (const byte of [0x01, 0x00, ...golden]) raw.socket.write(new Uint8Array([byte]));
    const reply = encodeResponseFrame('', encodeResponse('appendEntries', { protocolVersion: 3, term: 2, lastLog: 6, success: true, noRetryBackoff: false }));
    assert.equal(hex(await raw.read(reply.length)), hex(reply));
    assert.ok(seen[0]?.kind === 'appendEntries');
    assert.equal(seen[0].request.leader, '127.0.0.1:8300');
  });
});
