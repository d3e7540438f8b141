import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { createLogger, MemorySink } from '../lib/log.js';
import { decode, encode, type MsgpackValue } from '../lib/msgpack.js';
import { RaftTransport } from '../lib/rafttransport.js';
import { RAFT_PROTOCOL_VERSION } from '../lib/raftwire.js';
import { encodeRpcRequest, encodeRpcResponse, MsgpackFramer, RpcClient, RpcError, RpcServer, withDefaultPort, type RpcMethod, type RpcServerOptions } from '../lib/rpc.js';
import { waitFor } from './support.js';

const logger = createLogger({ level: 'debug', json: false, nowMs: () => 0, sink: new MemorySink() });
const ascii = (text: string): number[] => [...Buffer.from(text)];
const servers: RpcServer[] = [];
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

async function serve(methods: Record<string, RpcMethod>, options: Partial<RpcServerOptions> = {}): Promise<RpcServer> {
  const server = await RpcServer.listen({ host: '127.0.0.1', port: 0, logger, methods: new Map(Object.entries(methods)), ...options });
  servers.push(server);
  return server;
}

/** A raw connection that collects the msgpack values the server sends, and whether it closed. */
async function rawConn(port: number, first: Uint8Array): Promise<{ socket: Socket; values: Uint8Array[]; closed: Promise<void> }> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => undefined);
  const framer = new MsgpackFramer(1 << 20);
  const values: Uint8Array[] = [];
  socket.on('data', (chunk: Buffer) => {
    framer.push(chunk);
    for (let value = framer.next(); value !== undefined; value = framer.next()) values.push(value);
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(first);
  return { socket, values, closed };
}

describe('RPCConsul framing (wire.md §4.3)', () => {
  test('a request header is {Seq, ServiceMethod} as net-rpc-msgpackrpc writes it', () => {
    const frame = encodeRpcRequest(1, 'Status.Ping', {});
    assert.deepEqual([...frame], [0x82, 0xa3, ...ascii('Seq'), 0x01, 0xad, ...ascii('ServiceMethod'), 0xab, ...ascii('Status.Ping'), 0x80]);
  });

  test('a response header is {Error, Seq, ServiceMethod}; an error sends the empty body 80', () => {
    const header = [0x83, 0xa5, ...ascii('Error'), 0xa0, 0xa3, ...ascii('Seq'), 0x01, 0xad, ...ascii('ServiceMethod'), 0xab, ...ascii('Status.Ping')];
    assert.deepEqual([...encodeRpcResponse(1, 'Status.Ping', '', true)], [...header, 0xc3]);
    const failed = encodeRpcResponse(2, 'X.Y', 'boom', { ignored: 1 });
    assert.equal(failed[failed.length - 1], 0x80);
    assert.deepEqual(decode(failed.subarray(0, failed.length - 1)), { Error: 'boom', Seq: 2, ServiceMethod: 'X.Y' });
  });

  test('the framer cuts values across arbitrary chunk boundaries and refuses oversize ones', () => {
    const bytes = encodeRpcRequest(7, 'KVS.Apply', { Key: 'k'.repeat(300), Value: new Uint8Array(70) });
    const framer = new MsgpackFramer(1024);
    const values: MsgpackValue[] = [];
    for (const byte of bytes) {
      framer.push(Uint8Array.of(byte));
      for (let value = framer.next(); value !== undefined; value = framer.next()) values.push(decode(value));
    }
    assert.equal(values.length, 2);
    assert.deepEqual(values[0], { Seq: 7, ServiceMethod: 'KVS.Apply' });
    const small = new MsgpackFramer(16);
    small.push(encode('x'.repeat(40)));
    assert.throws(() => small.next());
  });

  test('host, host:port and IPv6 retry-join addresses get the default port', () => {
    assert.equal(withDefaultPort('10.0.0.1', 8300), '10.0.0.1:8300');
    assert.equal(withDefaultPort('10.0.0.1:9000', 8300), '10.0.0.1:9000');
    assert.equal(withDefaultPort('consul.example', 8300), 'consul.example:8300');
    assert.equal(withDefaultPort('::1', 8300), '[::1]:8300');
    assert.equal(withDefaultPort('[::1]:9000', 8300), '[::1]:9000');
  });
});

describe('the server port', () => {
  test('Status.Ping round trips through the client', async () => {
    const server = await serve({ 'Status.Ping': () => ({}) });
    const client = await RpcClient.dial(`127.0.0.1:${server.port}`);
    try {
      assert.deepEqual(await client.call('Status.Ping', {}), {});
    } finally {
      client.close();
    }
  });

  test('pipelined calls are answered as they finish and matched by Seq', async () => {
    let releaseSlow: () => void = () => undefined;
    const slowGate = new Promise<void>((resolve) => (releaseSlow = resolve));
    const server = await serve({
      'Test.Slow': async (args) => {
        await slowGate;
        return { slow: args };
      },
      'Test.Fast': (args) => ({ fast: args }),
    });
    const { socket, values } = await rawConn(server.port, Uint8Array.of(0x00));
    try {
      socket.write(encodeRpcRequest(1, 'Test.Slow', 'a'));
      socket.write(encodeRpcRequest(2, 'Test.Fast', 'b'));
      await waitFor('the fast reply', () => (values.length >= 2 ? true : undefined));
      assert.deepEqual(decode(values[0]!), { Error: '', Seq: 2, ServiceMethod: 'Test.Fast' });
      assert.deepEqual(decode(values[1]!), { fast: 'b' });
      releaseSlow();
      await waitFor('the slow reply', () => (values.length >= 4 ? true : undefined));
      assert.deepEqual(decode(values[2]!), { Error: '', Seq: 1, ServiceMethod: 'Test.Slow' });
      assert.deepEqual(decode(values[3]!), { slow: 'a' });
    } finally {
      socket.destroy();
    }
    // The client matches them the same way.
    const client = await RpcClient.dial(`127.0.0.1:${server.port}`);
    try {
      const [fast, slow] = await Promise.all([client.call('Test.Fast', 1), client.call('Test.Slow', 2), client.call('Test.Fast', 3)]);
      assert.deepEqual([fast, slow], [{ fast: 1 }, { slow: 2 }]);
    } finally {
      client.close();
    }
  });

  test('an unknown method or a failing one answers Error with body 80 and the connection stays up', async () => {
    const server = await serve({ 'Test.Fail': () => Promise.reject(new Error('boom')), 'Test.Ok': () => 1 });
    const { socket, values } = await rawConn(server.port, Uint8Array.of(0x00));
    try {
      socket.write(encodeRpcRequest(1, 'Nope.Ping', {}));
      await waitFor('the reply', () => (values.length >= 2 ? true : undefined));
      assert.deepEqual(decode(values[0]!), { Error: "rpc: can't find service Nope.Ping", Seq: 1, ServiceMethod: 'Nope.Ping' });
      assert.deepEqual([...values[1]!], [0x80]);
      socket.write(encodeRpcRequest(2, 'Test.Fail', {}));
      socket.write(encodeRpcRequest(3, 'Test.Missing', {}));
      socket.write(encodeRpcRequest(4, 'Test.Ok', {}));
      await waitFor('three more replies', () => (values.length >= 8 ? true : undefined));
      const headers = [values[2], values[4], values[6]].map((value) => decode(value!)) as Record<string, MsgpackValue>[];
      const bySeq = new Map(headers.map((header, i) => [header['Seq'], { header, body: [...values[3 + 2 * i]!] }]));
      assert.equal(bySeq.get(2)?.header['Error'], 'boom');
      assert.deepEqual(bySeq.get(2)?.body, [0x80]);
      assert.equal(bySeq.get(3)?.header['Error'], "rpc: can't find method Test.Missing");
      assert.deepEqual(bySeq.get(4), { header: { Error: '', Seq: 4, ServiceMethod: 'Test.Ok' }, body: [0x01] });
    } finally {
      socket.destroy();
    }
    const client = await RpcClient.dial(`127.0.0.1:${server.port}`);
    try {
      await assert.rejects(client.call('Test.Fail', {}), (error: unknown) => error instanceof RpcError && error.code === 'ERR_RPC_REMOTE' && error.message === 'boom');
    } finally {
      client.close();
    }
  });

  test('malformed bytes close the connection and the server keeps serving', async () => {
    const server = await serve({ 'Status.Ping': () => ({}) }, { frameBytesMax: 256 });
    const cases: Uint8Array[] = [
      Uint8Array.of(0x00, 0xc1), // never-used descriptor
      Uint8Array.of(0x00, 0x92, 0x01, 0xa1, 0x78, 0x80), // header as an array
      Uint8Array.of(0x00, 0x82, 0xa3, ...ascii('Seq'), 0xff, 0xad, ...ascii('ServiceMethod'), 0xa1, 0x78), // negative Seq
      Uint8Array.of(0x00, 0xdb, 0x7f, 0xff, 0xff, 0xff), // a 2 GiB string header
      Uint8Array.of(0x00, 0xda, 0x01, 0x00, ...new Uint8Array(256)), // over frameBytesMax
      Uint8Array.of(0x07), // an unsupported connection type
      Uint8Array.of(0x16, 0x03, 0x01), // TLS, not served
    ];
    for (const bytes of cases) {
      const { closed } = await rawConn(server.port, bytes);
      await closed;
    }
    const client = await RpcClient.dial(`127.0.0.1:${server.port}`);
    try {
      assert.deepEqual(await client.call('Status.Ping', {}), {});
    } finally {
      client.close();
    }
  });

  test('calls beyond the in-flight limit wait until earlier ones finish', async () => {
    let started = 0;
    const gates: (() => void)[] = [];
    const server = await serve(
      {
        'Test.Block': () => {
          started++;
          return new Promise<number>((resolve) => gates.push(() => resolve(started)));
        },
      },
      { inFlightMax: 2 },
    );
    const client = await RpcClient.dial(`127.0.0.1:${server.port}`);
    try {
      const calls = [1, 2, 3, 4].map((n) => client.call('Test.Block', n));
      await waitFor('two calls started', () => (started === 2 ? true : undefined));
      // Give the server every chance to start a third one: it must not.
      await client.call('Test.Block', 0, 50).catch((error: unknown) => assert.equal((error as RpcError).code, 'ERR_RPC_TIMEOUT'));
      assert.equal(started, 2);
      for (let released = 0; released < 5; released++) {
        await waitFor('a waiting call', () => (gates.length > 0 ? true : undefined));
        gates.shift()!();
      }
      assert.equal((await Promise.all(calls)).length, 4);
    } finally {
      client.close();
    }
  });

  test('connections per client are limited', async () => {
    const server = await serve({ 'Status.Ping': () => ({}) }, { connsPerClientMax: 1 });
    const first = await RpcClient.dial(`127.0.0.1:${server.port}`);
    try {
      assert.deepEqual(await first.call('Status.Ping', {}), {});
      const second = await RpcClient.dial(`127.0.0.1:${server.port}`);
      await assert.rejects(second.call('Status.Ping', {}, 2000), (error: unknown) => error instanceof RpcError && error.code === 'ERR_RPC_CONNECTION');
      second.close();
    } finally {
      first.close();
    }
  });

  test('a client call times out when the server does not answer', async () => {
    const server = await serve({ 'Test.Never': () => new Promise<never>(() => undefined) });
    const client = await RpcClient.dial(`127.0.0.1:${server.port}`);
    try {
      await assert.rejects(client.call('Test.Never', {}, 50), (error: unknown) => error instanceof RpcError && error.code === 'ERR_RPC_TIMEOUT');
    } finally {
      client.close();
    }
  });

  test('01 connections are handed to the Raft transport with the bytes after the 01 byte', async () => {
    const votes: string[] = [];
    const raft = RaftTransport.unbound({
      logger,
      handler: async (rpc) => {
        assert.equal(rpc.kind, 'requestVote');
        votes.push(rpc.remoteAddress);
        return { protocolVersion: RAFT_PROTOCOL_VERSION, term: 3, granted: true, peers: null };
      },
    });
    const server = await serve({}, { onRaftConnection: (socket, head) => raft.acceptConnection(socket, { isPrefixRead: true, head }) });
    // A multiplexed-port client (writes 01, then the request, often in one segment).
    const dialer = await RaftTransport.listen({ host: '127.0.0.1', port: 0, logger, handler: () => Promise.reject(new Error('unused')) });
    try {
      const request = { protocolVersion: RAFT_PROTOCOL_VERSION, term: 3, candidate: '127.0.0.1:1', lastLogIndex: 0, lastLogTerm: 0, leadershipTransfer: false };
      for (let i = 0; i < 3; i++) {
        const response = await dialer.requestVote(`127.0.0.1:${server.port}`, request);
        assert.equal(response.granted, true);
        assert.equal(response.term, 3);
      }
      assert.equal(votes.length, 3);
    } finally {
      await dialer.close();
      await raft.close();
    }
  });
});

describe('fuzzing the RPC decoders (issue 9: every RPC decoder fuzzed)', () => {
  /** Valid request frames for Consul's methods, the seeds the mutations start from. */
  const seedFrames: Uint8Array[] = [
    encodeRpcRequest(1, 'Status.Ping', {}),
    encodeRpcRequest(2, 'KVS.Apply', { Datacenter: 'dc1', Op: 'set', DirEnt: { Key: 'k', Flags: 3, Value: Uint8Array.of(1, 2) } }),
    encodeRpcRequest(3, 'KVS.Get', { Datacenter: 'dc1', Key: 'k', MinQueryIndex: 0, RequireConsistent: false }),
    encodeRpcRequest(4, 'KVS.List', { Datacenter: 'dc1', Key: '', AllowStale: true }),
  ];

  function mutate(rng: () => number, base: Uint8Array): Uint8Array {
    const bytes = Uint8Array.from(base);
    const roll = rng();
    if (roll < 0.3) {
      for (let i = 0; i < 1 + Math.floor(rng() * 4); i++) bytes[Math.floor(rng() * bytes.length)] = Math.floor(rng() * 256);
      return bytes;
    }
    if (roll < 0.5) return bytes.subarray(0, Math.floor(rng() * bytes.length));
    if (roll < 0.7) return Uint8Array.from({ length: Math.floor(rng() * 64) }, () => Math.floor(rng() * 256));
    // A value type byte with a huge declared length (bin32, str32, array32, map32).
    const lengthy = [0xc6, 0xdb, 0xdd, 0xdf][Math.floor(rng() * 4)] ?? 0xc6;
    return Uint8Array.of(lengthy, 0xff, 0xff, 0xff, Math.floor(rng() * 256), ...bytes);
  }

  test('framing and header decoding: 20,000 mutated inputs yield values or coded errors, never anything else, quickly', async () => {
    const { seededRng } = await import('../lib/rng.js');
    const { MsgpackError } = await import('../lib/msgpack.js');
    const { RaftWireError } = await import('../lib/raftwire.js');
    const rng = seededRng(2026);
    const started = Date.now();
    for (let i = 0; i < 20_000; i++) {
      const input = mutate(rng, seedFrames[i % seedFrames.length] ?? new Uint8Array(0));
      const framer = new MsgpackFramer(64 * 1024);
      try {
        // Fed in random chunk sizes, as TCP delivers it.
        for (let at = 0; at < input.length; ) {
          const size = 1 + Math.floor(rng() * 16);
          framer.push(input.subarray(at, at + size));
          at += size;
          for (let value = framer.next(); value !== undefined; value = framer.next()) decode(value);
        }
      } catch (error) {
        // The framer's scanner is the Raft wire's (RaftWireError); values decode with MsgpackError.
        assert.ok(error instanceof RpcError || error instanceof MsgpackError || error instanceof RaftWireError, `input ${Buffer.from(input).toString('hex')} threw ${String(error)}`);
      }
    }
    assert.ok(Date.now() - started < 20_000, 'no input is slow to refuse');
  });

  test("Consul's methods answer mutated arguments with a value or an Error, never a crash", async () => {
    const { seededRng } = await import('../lib/rng.js');
    const { consulRpcMethods } = await import('../lib/endpoints_rpc.js');
    const { StateStore } = await import('../lib/state.js');
    const { Fsm } = await import('../lib/fsm.js');
    const state = new StateStore({ nowMs: () => 0 });
    const fsm = new Fsm(state);
    let index = 0;
    const methods = consulRpcMethods({
      state,
      datacenter: 'dc1',
      raft: { apply: async (command) => fsm.apply(++index, command), readIndex: async () => undefined, leader: () => '127.0.0.1:8300', peers: () => ['127.0.0.1:8300'], isLeader: true, lastContactMs: 0 },
    });
    const rng = seededRng(9);
    for (let i = 0; i < 2_000; i++) {
      const frame = seedFrames[1 + (i % 3)]!;
      const framer = new MsgpackFramer(1 << 20);
      framer.push(frame);
      framer.next();
      const body = framer.next()!;
      let args: MsgpackValue;
      try {
        args = decode(mutate(rng, body));
      } catch {
        continue;
      }
      const method = methods.get(['KVS.Apply', 'KVS.Get', 'KVS.List'][i % 3]!)!;
      try {
        await method(args, { remoteAddress: 'fuzz' });
      } catch (error) {
        assert.ok(error instanceof Error, `a thrown non-Error: ${String(error)}`);
      }
    }
  });

  test('a live server closes connections that send garbage and keeps serving', async () => {
    const { seededRng } = await import('../lib/rng.js');
    const server = await serve({ 'Status.Ping': () => ({}) });
    const rng = seededRng(77);
    for (let i = 0; i < 40; i++) {
      const garbage = mutate(rng, seedFrames[i % seedFrames.length]!);
      const conn = await rawConn(server.port, Uint8Array.of(0x00, ...garbage));
      conn.socket.end();
      await conn.closed;
    }
    const client = await RpcClient.dial(`127.0.0.1:${server.port}`);
    try {
      assert.deepEqual(await client.call('Status.Ping', {}), {});
    } finally {
      client.close();
    }
  });
});

describe('the connection pool and forwarding to the leader', () => {
  test('calls to one address share a connection; a remote error keeps it; idle ones are closed and redialled', async () => {
    const { RpcPool } = await import('../lib/rpc.js');
    // Each connection shows as its own client port.
    const server = await serve({ 'Test.Who': (_args, context) => context.remoteAddress, 'Test.Echo': (args) => args });
    const pool = new RpcPool(200);
    try {
      const address = `127.0.0.1:${server.port}`;
      const who = await Promise.all([1, 2, 3, 4].map(() => pool.call(address, 'Test.Who', {})));
      assert.equal(new Set(who).size, 1, 'one connection for four concurrent calls');
      await assert.rejects(pool.call(address, 'Test.Missing', {}), (error: RpcError) => error.code === 'ERR_RPC_REMOTE');
      assert.equal(await pool.call(address, 'Test.Who', {}), who[0], 'a remote error keeps the connection');
      await waitFor('the idle connection to close', () => (pool.size === 0 ? true : undefined), 5_000);
      assert.notEqual(await pool.call(address, 'Test.Who', {}), who[0], 'the next call dials again');
    } finally {
      pool.close();
    }
    await assert.rejects(pool.call('127.0.0.1:1', 'Test.Echo', {}), (error: RpcError) => error.code === 'ERR_RPC_CLOSED');
  });

  test('a forwarded write follows a leader that moved on; the leader\'s errors keep their texts; an unreachable leader is a 500', async () => {
    const { forwardToLeader } = await import('../lib/endpoints.js');
    const { HttpError } = await import('../lib/http.js');
    const calls: string[] = [];
    const replies = new Map<string, () => Promise<MsgpackValue>>([
      ['a:8300', () => Promise.reject(new RpcError('ERR_RPC_REMOTE', 'node is not the leader; leader=b:8300'))],
      ['b:8300', () => Promise.resolve(true)],
    ]);
    const deps = {
      query: { server: { isLeader: false, leader: () => 'a:8300' }, rpcHoldTimeoutMs: 1000, rng: () => 0.5 },
      forward: (address: string, method: string) => {
        calls.push(`${address} ${method}`);
        return (replies.get(address) ?? (() => Promise.reject(new RpcError('ERR_RPC_CONNECTION', `dial ${address}: connection refused`))))();
      },
    } as unknown as Parameters<typeof forwardToLeader>[0];
    assert.deepEqual(await forwardToLeader(deps, 'KVS.Apply', {}), { reply: true });
    assert.deepEqual(calls, ['a:8300 KVS.Apply', 'b:8300 KVS.Apply']);
    replies.set('a:8300', () => Promise.reject(new RpcError('ERR_RPC_REMOTE', 'Permission denied')));
    await assert.rejects(forwardToLeader(deps, 'KVS.Apply', {}), (error: InstanceType<typeof HttpError>) => error.status === 403 && error.message === 'Permission denied');
    replies.delete('a:8300');
    await assert.rejects(forwardToLeader(deps, 'KVS.Apply', {}), (error: InstanceType<typeof HttpError>) => error.status === 500 && error.message === 'rpc error making call: dial a:8300: connection refused');
    const leaderDeps = { ...deps, query: { ...(deps as unknown as { query: object }).query, server: { isLeader: true, leader: () => 'self' } } } as unknown as Parameters<typeof forwardToLeader>[0];
    assert.equal(await forwardToLeader(leaderDeps, 'KVS.Apply', {}), undefined, 'the leader runs it itself');
  });
});
