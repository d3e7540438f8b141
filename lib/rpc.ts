// The server RPC port (Consul's 8300): one TCP listener multiplexed on the first byte of each
// connection, and the msgpack net/rpc protocol Consul servers speak on it.
//
// First byte (wire.md §4.2, Consul agent/pool/conn.go): `00` RPCConsul is served here; `01`
// RPCRaft is handed, with the bytes read past it, to the Raft transport (lib/rafttransport.ts);
// anything else (TLS, yamux, snapshot streams, which consul-ts does not have yet) closes the
// connection. A connection that sends nothing within RPC_FIRST_BYTE_TIMEOUT_MS is closed.
//
// RPCConsul framing (wire.md §4.3, net-rpc-msgpackrpc codec.go + Go net/rpc): each direction is
// two msgpack values back to back. A request is `{Seq, ServiceMethod}` then the args; a response
// is `{Error, Seq, ServiceMethod}` then the reply, with an empty map `80` as the body when Error
// is set. Calls may be pipelined: the server runs up to RPC_INFLIGHT_MAX of them at once per
// connection and answers each as it finishes, so replies are matched by Seq, not by order.
// Values are framed by scanning (no decode until a whole value is in), bounded by
// RPC_FRAME_BYTES_MAX; bytes that do not frame or a header of the wrong shape close the
// connection, as net/rpc does ("rpc: server cannot decode request").
//
// Methods are registered by the agent: Consul's (lib/endpoints_rpc.ts, plus `Status.Ping`) and
// `ConsulTS.ServerInfo`, which is ours, not Consul's: what -bootstrap-expect discovery needs
// until gossip exists (lib/discovery.ts).
//
// RpcPool keeps one connection per server for calls this agent makes to others (the HTTP layer's
// forwarding to the leader, lib/endpoints.ts forwardToLeader), closed when idle.
//
// Not here: TLS (`03`, `16`), yamux (`04`), snapshots (`05`), gRPC, rate limiting, ACLs; the
// server methods refuse on a follower (naming the leader) instead of forwarding (issue 9).
//
// Invariants: every socket has an error listener; every client call settles exactly once (reply,
// deadline, connection loss or close); buffered input per connection stays under
// RPC_FRAME_BYTES_MAX plus one read chunk before it is scanned.
//
// References: Consul agent/consul/rpc.go (handleConn, handleConsulConn), agent/pool/conn.go,
// hashicorp/net-rpc-msgpackrpc codec.go, Go net/rpc server.go and client.go.

import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from './log.js';
import { decode, encode, type MsgpackValue } from './msgpack.js';
import { MsgpackScanner } from './raftwire.js';
import { RPC_RAFT_BYTE } from './rafttransport.js';
import { writeCoalesced } from './sockets.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/**
 * Serves one call: receives the decoded args and returns the reply body. A thrown or rejected
 * error's message is sent as the response's Error (with an empty body).
 */
export type RpcMethod = (args: MsgpackValue, context: { readonly remoteAddress: string }) => unknown;

export interface RpcServerOptions {
  /** Address to listen on; port 0 picks a free port (see address). */
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  /** Methods by `Service.Method` name. */
  readonly methods: ReadonlyMap<string, RpcMethod>;
  /** Takes a `01` connection; `head` holds the bytes already read past that byte. */
  readonly onRaftConnection?: (socket: Socket, head: Uint8Array) => void;
  /** Limits, lowered in tests. */
  readonly frameBytesMax?: number;
  readonly inFlightMax?: number;
  readonly connsPerClientMax?: number;
}

export type RpcErrorCode =
  /** The deadline passed. */
  | 'ERR_RPC_TIMEOUT'
  /** Dial failure, reset, or the peer closed the connection. */
  | 'ERR_RPC_CONNECTION'
  /** The client was closed by us. */
  | 'ERR_RPC_CLOSED'
  /** The server answered with an Error string (the message is that string). */
  | 'ERR_RPC_REMOTE'
  /** The server's reply did not frame or parse. */
  | 'ERR_RPC_BAD_RESPONSE'
  /** A request did not frame or parse (the server closes the connection). */
  | 'ERR_RPC_BAD_REQUEST'
  /** Too many calls in flight on this client. */
  | 'ERR_RPC_BUSY';

/** An operational RPC error, with a code. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  constructor(
    readonly code: RpcErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Consul's server-port byte for msgpack net/rpc (pool.RPCConsul). */
export const RPC_CONSUL_BYTE = 0x00;
/** Bytes of one msgpack value (header or body); Consul's largest requests (KV, txn) fit. */
export const RPC_FRAME_BYTES_MAX = 4 * 1024 * 1024;
/** Calls served at once per connection; reading pauses beyond it. */
export const RPC_INFLIGHT_MAX = 64;
/** Connections at once from one remote IP (Consul's limits.rpc_max_conns_per_client default). */
export const RPC_CONNS_PER_CLIENT_MAX = 100;
/** Connections at once in total. */
export const RPC_SERVER_CONNS_MAX = 1024;
/** A new connection must send its protocol byte within this time. */
export const RPC_FIRST_BYTE_TIMEOUT_MS = 10_000;
/** Default deadline of one client call. */
export const RPC_CALL_TIMEOUT_MS = 5_000;
/** Calls a client may have awaiting a reply. */
export const RPC_CLIENT_INFLIGHT_MAX = 64;
/** A pooled connection unused this long is closed (Consul's pool keeps them 2 minutes). */
export const RPC_POOL_IDLE_MS = 120_000;
/** Repeated warnings are logged at most once per this interval. */
const WARN_INTERVAL_MS = 1000;

// ---------------------------------------------------------------------------------------------
// Exported API: framing

/** A request frame: `{Seq, ServiceMethod}` then the args. */
export function encodeRpcRequest(seq: number | bigint, serviceMethod: string, args: unknown): Uint8Array {
  return concat(encode({ Seq: seq, ServiceMethod: serviceMethod }), encode(args));
}

/** A response frame: `{Error, Seq, ServiceMethod}` then the body, or `80` when error is not ''. */
export function encodeRpcResponse(seq: number | bigint, serviceMethod: string, error: string, body: unknown): Uint8Array {
  return concat(encode({ Error: error, Seq: seq, ServiceMethod: serviceMethod }), encode(error === '' ? body : {}));
}

/**
 * Cuts a byte stream into msgpack values, each checked against a size limit while it is still
 * incomplete. Throws on bytes that are not msgpack or a value over the limit.
 */
export class MsgpackFramer {
  private buffer: Uint8Array = new Uint8Array(0);
  private scanner = new MsgpackScanner();

  constructor(private readonly bytesMax: number) {}

  /** Bytes held that are not part of a returned value yet. */
  get bufferedBytes(): number {
    return this.buffer.length;
  }

  push(chunk: Uint8Array): void {
    this.buffer = this.buffer.length === 0 ? chunk : concat(this.buffer, chunk);
  }

  /** The next complete value's bytes, or undefined until more arrive. */
  next(): Uint8Array | undefined {
    if (this.buffer.length === 0) return undefined;
    const length = this.scanner.scan(this.buffer, this.bytesMax);
    if (length < 0) {
      if (this.buffer.length > this.bytesMax) throw new RpcError('ERR_RPC_BAD_RESPONSE', `msgpack value longer than ${this.bytesMax} bytes`);
      return undefined;
    }
    const value = this.buffer.subarray(0, length);
    this.buffer = this.buffer.subarray(length);
    this.scanner = new MsgpackScanner();
    return value;
  }
}

// ---------------------------------------------------------------------------------------------
// Exported API: server

/** The server port listener. */
export class RpcServer {
  private readonly server: Server;
  private readonly conns = new Set<Socket>();
  private readonly connsByClient = new Map<string, number>();
  private isClosed = false;
  private lastWarnMs = 0;

  private constructor(private readonly options: RpcServerOptions) {
    this.server = createServer((socket) => this.accept(socket));
  }

  /** Starts listening and resolves once bound. */
  static async listen(options: RpcServerOptions): Promise<RpcServer> {
    const rpc = new RpcServer(options);
    await new Promise<void>((resolve, reject) => {
      rpc.server.once('error', reject);
      rpc.server.listen(options.port, options.host, () => {
        rpc.server.off('error', reject);
        resolve();
      });
    });
    rpc.server.on('error', (error) => options.logger.error('rpc listener failed', { error: error.message }));
    return rpc;
  }

  /** The bound port. */
  get port(): number {
    const address = this.server.address();
    return address !== null && typeof address === 'object' ? address.port : 0;
  }

  /**
   * Stops accepting and closes every RPCConsul connection. Resolves once every accepted
   * connection is closed, including those handed to Raft, which its transport closes.
   */
  close(): Promise<void> {
    this.isClosed = true;
    for (const socket of this.conns) socket.destroy();
    this.conns.clear();
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    socket.on('error', (error) => this.options.logger.debug('rpc connection error', { error: error.message }));
    const client = socket.remoteAddress ?? '';
    const clientConns = this.connsByClient.get(client) ?? 0;
    if (this.isClosed || this.conns.size >= RPC_SERVER_CONNS_MAX || clientConns >= (this.options.connsPerClientMax ?? RPC_CONNS_PER_CLIENT_MAX)) {
      this.warnRateLimited('rpc connection limit reached, closing a new connection', { client });
      socket.destroy();
      return;
    }
    this.conns.add(socket);
    this.connsByClient.set(client, clientConns + 1);
    let isCounted = true;
    const release = (): void => {
      this.conns.delete(socket);
      if (!isCounted) return;
      isCounted = false;
      const left = (this.connsByClient.get(client) ?? 1) - 1;
      if (left > 0) this.connsByClient.set(client, left);
      else this.connsByClient.delete(client);
    };
    socket.once('close', release);
    socket.setTimeout(RPC_FIRST_BYTE_TIMEOUT_MS, () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      socket.setTimeout(0);
      this.dispatch(socket, chunk, release);
    });
  }

  private dispatch(socket: Socket, chunk: Buffer, release: () => void): void {
    const head = chunk.subarray(1);
    switch (chunk[0]) {
      case RPC_CONSUL_BYTE:
        new ConsulConn(socket, this.options).start(head);
        return;
      case RPC_RAFT_BYTE:
        if (this.options.onRaftConnection !== undefined) {
          // Raft's transport owns the socket and its limits from here.
          // Synchronous: the transport attaches its data listener before the next chunk arrives.
          release();
          this.options.onRaftConnection(socket, head);
          return;
        }
        break;
      default:
        break;
    }
    this.options.logger.debug('unsupported rpc connection type, closing', { type: chunk[0], client: socket.remoteAddress });
    socket.destroy();
  }

  private warnRateLimited(message: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.lastWarnMs < WARN_INTERVAL_MS) return;
    this.lastWarnMs = now;
    this.options.logger.warn(message, fields);
  }
}

// ---------------------------------------------------------------------------------------------
// Exported API: client

/** One RPCConsul connection to a server: calls are pipelined and matched by Seq. */
export class RpcClient {
  private readonly framer = new MsgpackFramer(RPC_FRAME_BYTES_MAX);
  private readonly pending = new Map<number, { method: string; resolve: (value: MsgpackValue) => void; reject: (error: Error) => void; timer: ReturnType<typeof setTimeout> }>();
  private nextSeq = 1;
  private header: MsgpackValue | undefined;
  private failure: RpcError | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly address: string,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(new RpcError('ERR_RPC_CONNECTION', `rpc connection to ${address}: ${error.message}`)));
    socket.on('close', () => this.fail(new RpcError('ERR_RPC_CONNECTION', `rpc connection to ${address} closed`)));
  }

  /** Connects to `host:port`, writes the `00` byte, and resolves once connected. */
  static dial(address: string, timeoutMs = RPC_CALL_TIMEOUT_MS): Promise<RpcClient> {
    const { host, port } = splitHostPort(address);
    return new Promise<RpcClient>((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new RpcError('ERR_RPC_TIMEOUT', `dial ${address} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(new RpcError('ERR_RPC_CONNECTION', `dial ${address}: ${error.message}`));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        socket.write(Uint8Array.of(RPC_CONSUL_BYTE));
        resolve(new RpcClient(socket, address));
      });
    });
  }

  /** Calls `serviceMethod`; resolves with the reply body, rejects with an RpcError. */
  call(serviceMethod: string, args: unknown, timeoutMs = RPC_CALL_TIMEOUT_MS): Promise<MsgpackValue> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.pending.size >= RPC_CLIENT_INFLIGHT_MAX) return Promise.reject(new RpcError('ERR_RPC_BUSY', `${RPC_CLIENT_INFLIGHT_MAX} calls already in flight to ${this.address}`));
    const seq = this.nextSeq++;
    return new Promise<MsgpackValue>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(new RpcError('ERR_RPC_TIMEOUT', `rpc ${serviceMethod} to ${this.address} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(seq, { method: serviceMethod, resolve, reject, timer });
      writeCoalesced(this.socket, encodeRpcRequest(seq, serviceMethod, args));
    });
  }

  /** Closes the connection; calls still waiting fail with ERR_RPC_CLOSED. */
  close(): void {
    this.fail(new RpcError('ERR_RPC_CLOSED', 'rpc client closed'));
  }

  private onData(chunk: Buffer): void {
    try {
      this.framer.push(chunk);
      for (let bytes = this.framer.next(); bytes !== undefined; bytes = this.framer.next()) {
        const value = decode(bytes);
        if (this.header === undefined) {
          this.header = value;
          continue;
        }
        const header = this.header;
        this.header = undefined;
        this.settle(header, value);
      }
    } catch (error) {
      this.fail(error instanceof RpcError ? error : new RpcError('ERR_RPC_BAD_RESPONSE', `bad rpc response from ${this.address}: ${(error as Error).message}`));
    }
  }

  private settle(header: MsgpackValue, body: MsgpackValue): void {
    const fields = asMap(header);
    const seq = fields?.['Seq'];
    const error = fields?.['Error'];
    if (typeof seq !== 'number' || (typeof error !== 'string' && error !== null && error !== undefined)) {
      throw new RpcError('ERR_RPC_BAD_RESPONSE', 'response header is not {Error, Seq, ServiceMethod}');
    }
    const call = this.pending.get(seq);
    if (call === undefined) return; // timed out already, as Go's client drops it
    this.pending.delete(seq);
    clearTimeout(call.timer);
    if (typeof error === 'string' && error !== '') call.reject(new RpcError('ERR_RPC_REMOTE', error));
    else call.resolve(body);
  }

  private fail(error: RpcError): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.socket.destroy();
    for (const call of this.pending.values()) {
      clearTimeout(call.timer);
      call.reject(error);
    }
    this.pending.clear();
  }
}

/**
 * Connections to other servers, one per address, shared by every caller and reused while they
 * work (Consul's ConnPool): a connection that fails is dropped and the next call dials again; one
 * unused for `idleMs` is closed. Calls may run concurrently on one connection (matched by Seq).
 */
export class RpcPool {
  private readonly conns = new Map<string, { client: Promise<RpcClient>; lastUsedMs: number }>();
  private readonly reaper: ReturnType<typeof setInterval>;
  private isClosed = false;

  constructor(private readonly idleMs = RPC_POOL_IDLE_MS) {
    this.reaper = setInterval(() => this.closeIdle(), Math.max(1, Math.floor(idleMs / 2)));
    this.reaper.unref();
  }

  /** Calls `serviceMethod` at `address`; rejects with an RpcError (ERR_RPC_REMOTE for the server's own error). */
  async call(address: string, serviceMethod: string, args: unknown, timeoutMs = RPC_CALL_TIMEOUT_MS): Promise<MsgpackValue> {
    if (this.isClosed) throw new RpcError('ERR_RPC_CLOSED', 'rpc pool closed');
    let entry = this.conns.get(address);
    if (entry === undefined) {
      const client = RpcClient.dial(address, timeoutMs);
      entry = { client, lastUsedMs: Date.now() };
      this.conns.set(address, entry);
      client.catch(() => this.drop(address, client));
    }
    entry.lastUsedMs = Date.now();
    const client = await entry.client;
    try {
      return await client.call(serviceMethod, args, timeoutMs);
    } catch (error) {
      if (error instanceof RpcError && error.code !== 'ERR_RPC_REMOTE') this.drop(address, entry.client);
      throw error;
    }
  }

  /** Connections open or being dialled. */
  get size(): number {
    return this.conns.size;
  }

  /** Closes every connection; later calls fail with ERR_RPC_CLOSED. */
  close(): void {
    this.isClosed = true;
    clearInterval(this.reaper);
    for (const address of [...this.conns.keys()]) this.drop(address);
  }

  private closeIdle(): void {
    const now = Date.now();
    for (const [address, entry] of this.conns) if (now - entry.lastUsedMs >= this.idleMs) this.drop(address, entry.client);
  }

  /** Forgets the connection to `address` (only if it is still `which`) and closes it. */
  private drop(address: string, which?: Promise<RpcClient>): void {
    const entry = this.conns.get(address);
    if (entry === undefined || (which !== undefined && entry.client !== which)) return;
    this.conns.delete(address);
    entry.client.then((client) => client.close(), () => undefined);
  }
}

/** Dials, makes one call, and closes: for callers that poll (discovery). */
export async function rpcCallOnce(address: string, serviceMethod: string, args: unknown, timeoutMs = RPC_CALL_TIMEOUT_MS): Promise<MsgpackValue> {
  const client = await RpcClient.dial(address, timeoutMs);
  try {
    return await client.call(serviceMethod, args, timeoutMs);
  } finally {
    client.close();
  }
}

/**
 * `host:port`, `[v6]:port`, or a bare host (IPv4, name, or bracketless IPv6) with `defaultPort`.
 * Throws RpcError ERR_RPC_CONNECTION for anything else.
 */
export function withDefaultPort(address: string, defaultPort: number): string {
  const trimmed = address.trim();
  if (/^\[[^\]]+\]:\d+$/.test(trimmed) || /^[^:\s]+:\d+$/.test(trimmed)) return trimmed;
  if (/^\[[^\]]+\]$/.test(trimmed)) return `${trimmed}:${defaultPort}`;
  if (trimmed.includes(':')) return `[${trimmed}]:${defaultPort}`;
  if (trimmed === '') throw new RpcError('ERR_RPC_CONNECTION', 'empty address');
  return `${trimmed}:${defaultPort}`;
}

// ---------------------------------------------------------------------------------------------
// Private helpers

/** One served RPCConsul connection. */
class ConsulConn {
  private readonly framer: MsgpackFramer;
  private readonly inFlightMax: number;
  private readonly frameBytesMax: number;
  private header: { seq: number | bigint; method: string } | undefined;
  private inFlight = 0;
  private isClosed = false;
  private readonly remoteAddress: string;

  constructor(
    private readonly socket: Socket,
    private readonly options: RpcServerOptions,
  ) {
    this.frameBytesMax = options.frameBytesMax ?? RPC_FRAME_BYTES_MAX;
    this.framer = new MsgpackFramer(this.frameBytesMax);
    this.inFlightMax = options.inFlightMax ?? RPC_INFLIGHT_MAX;
    this.remoteAddress = `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`;
  }

  start(head: Uint8Array): void {
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.once('close', () => {
      this.isClosed = true;
    });
    if (head.length > 0) this.onData(head);
  }

  private onData(chunk: Uint8Array): void {
    if (this.isClosed) return;
    if (this.framer.bufferedBytes + chunk.length > 2 * this.frameBytesMax) {
      // Only reachable while paused at the in-flight limit and the peer keeps sending.
      this.options.logger.warn('rpc: client sent too far ahead, closing connection', { client: this.remoteAddress });
      this.close();
      return;
    }
    this.framer.push(chunk);
    this.drain();
  }

  /** Serves every complete request while under the in-flight limit; pauses reading beyond it. */
  private drain(): void {
    try {
      while (!this.isClosed && this.inFlight < this.inFlightMax) {
        const bytes = this.framer.next();
        if (bytes === undefined) break;
        const value = decode(bytes);
        if (this.header === undefined) {
          this.header = parseRequestHeader(value);
          continue;
        }
        const header = this.header;
        this.header = undefined;
        this.serve(header.seq, header.method, value);
      }
    } catch (error) {
      this.options.logger.warn('rpc: server cannot decode request, closing connection', { client: this.remoteAddress, error: (error as Error).message });
      this.close();
      return;
    }
    if (this.inFlight >= this.inFlightMax) this.socket.pause();
  }

  private serve(seq: number | bigint, serviceMethod: string, args: MsgpackValue): void {
    this.inFlight++;
    const method = this.options.methods.get(serviceMethod);
    const reply =
      method === undefined
        ? Promise.reject(new Error(unknownMethodMessage(this.options.methods, serviceMethod)))
        : new Promise<unknown>((resolve) => resolve(method(args, { remoteAddress: this.remoteAddress })));
    reply.then(
      (body) => this.respond(seq, serviceMethod, '', body),
      (error: unknown) => this.respond(seq, serviceMethod, error instanceof Error ? error.message : String(error), {}),
    );
  }

  private respond(seq: number | bigint, serviceMethod: string, error: string, body: unknown): void {
    this.inFlight--;
    if (this.isClosed) return;
    let frame: Uint8Array;
    try {
      frame = encodeRpcResponse(seq, serviceMethod, error, body);
    } catch (encodeError) {
      this.options.logger.error('rpc reply does not encode', { method: serviceMethod, error: (encodeError as Error).message });
      frame = encodeRpcResponse(seq, serviceMethod, 'rpc: reply could not be encoded', {});
    }
    writeCoalesced(this.socket, frame);
    if (this.socket.isPaused() && this.inFlight < this.inFlightMax) {
      this.socket.resume();
      this.drain();
    }
  }

  private close(): void {
    this.isClosed = true;
    this.socket.destroy();
  }
}

/** `{Seq, ServiceMethod}`; anything else breaks the framing and closes the connection. */
function parseRequestHeader(value: MsgpackValue): { seq: number | bigint; method: string } {
  const fields = asMap(value);
  const seq = fields?.['Seq'];
  const method = fields?.['ServiceMethod'];
  const isSeq = (typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0) || (typeof seq === 'bigint' && seq >= 0n);
  if (!isSeq || typeof method !== 'string') throw new RpcError('ERR_RPC_BAD_REQUEST', 'request header is not {Seq, ServiceMethod}');
  return { seq: seq as number | bigint, method };
}

/** Go net/rpc's texts for a name it cannot serve (server.go readRequestHeader). */
function unknownMethodMessage(methods: ReadonlyMap<string, RpcMethod>, serviceMethod: string): string {
  const dot = serviceMethod.lastIndexOf('.');
  if (dot < 0) return `rpc: service/method request ill-formed: ${serviceMethod}`;
  const service = serviceMethod.slice(0, dot);
  const isServiceKnown = [...methods.keys()].some((name) => name.startsWith(`${service}.`));
  return isServiceKnown ? `rpc: can't find method ${serviceMethod}` : `rpc: can't find service ${serviceMethod}`;
}

function asMap(value: MsgpackValue): Record<string, MsgpackValue> | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) return undefined;
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return undefined;
  return value as Record<string, MsgpackValue>;
}

function splitHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const portText = address.slice(colon + 1);
  const port = Number(portText);
  if (colon <= 0 || host === '' || !/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) {
    throw new RpcError('ERR_RPC_CONNECTION', `bad rpc address ${JSON.stringify(address)}`);
  }
  return { host, port };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a, 0);
  joined.set(b, a.length);
  return joined;
}
