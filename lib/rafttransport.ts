// The Raft RPC transport over TCP, byte-compatible with hashicorp/raft 1.1.2's NetworkTransport
// (protocol 3), so a consul-ts server can share a cluster with a hashicorp/raft node.
//
// Server side: every accepted connection first sends `01` (RPCRaft), because Consul multiplexes
// its server port on the first byte (wire.md §4.2); with `isRawRaftPort` the connection starts
// directly with the RPC type byte, as on a bare raft NetworkTransport. Then it carries requests
// `[type][msgpack request]`, answered `[msgpack error string][msgpack response]` strictly in
// order. Requests on one connection are handed to the handler as they complete, in order (raft
// must see a follower's AppendEntries in order), without waiting for earlier replies: a burst of
// pipelined AppendEntries is then stepped together and made durable by one fsync (hashicorp's
// follower serves one at a time, so one fsync each). Many connections are served at once, so
// heartbeats, votes, the pipeline and a snapshot never wait for each other. An InstallSnapshot request is followed
// by exactly `Size` raw bytes, which the handler reads as a stream; whatever it leaves unread is
// drained before the reply so the framing holds. Bytes that do not parse close the connection,
// as raft does ("failed to decode incoming command"); a handler error, or a ProtocolVersion we do
// not serve, becomes the error string with a nil body and the connection stays up.
//
// Client side: a pool of at most `maxPool` idle connections per peer (raft MaxPool, Consul uses
// 3); each RPC takes one, writes its request and reads its reply under a deadline, and returns
// it to the pool unless anything went wrong. AppendEntries can also go through a pipeline: a
// dedicated connection, requests written back to back, at most `pipelineInFlightMax` awaiting a
// reply, replies matched in order; any error closes it (raft then falls back to plain RPCs).
// InstallSnapshot streams its bytes with write backpressure on a connection that is never reused;
// its deadline scales with the size (Timeout × Size / 256 KiB, at least Timeout).
// RequestPreVote (raft ≥1.7) goes only to peers the caller marked with setPreVoteSupported: a
// 1.1.2 server drops the connection on type 4.
//
// Not here: TLS (Consul writes `03` and runs TLS before `01`), ID-to-address providers, and the
// raft-level policy of when to pipeline or back off (raft.ts owns that).
//
// Invariants: every socket has an error listener; every pending call settles exactly once (reply,
// deadline, connection loss, or close()); buffered input per connection stays under the frame
// limit plus a read-ahead window, enforced while framing, before the bytes are kept.
//
// References: hashicorp/raft v1.1.2 net_transport.go, tcp_transport.go, replication.go; Consul
// agent/consul/raft_rpc.go; shared/spec/wire.md §4.2 and §5.

import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from './log.js';
import { writeCoalesced } from './sockets.js';
import {
  decodeErrorString,
  decodeRequestUnchecked,
  decodeResponse,
  encodeRequestFrame,
  encodeResponse,
  encodeResponseFrame,
  isHeartbeat,
  MsgpackScanner,
  RAFT_APPEND_ENTRIES_MAX,
  RAFT_PROTOCOL_VERSION,
  RAFT_PROTOCOL_VERSION_MAX,
  RAFT_RPC_BYTES_MAX,
  RAFT_SNAPSHOT_BYTES_MAX,
  RaftWireError,
  rpcKindOf,
  UNSUPPORTED_PROTOCOL_MESSAGE,
  type AppendEntriesRequest,
  type AppendEntriesResponse,
  type InstallSnapshotRequest,
  type InstallSnapshotResponse,
  type RaftRequest,
  type RaftResponse,
  type RequestPreVoteRequest,
  type RequestPreVoteResponse,
  type RequestVoteRequest,
  type RequestVoteResponse,
  type RpcKind,
  type TimeoutNowRequest,
  type TimeoutNowResponse,
} from './raftwire.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** One incoming RPC as the handler sees it. `remoteAddress` is the TCP peer, for logs. */
export type RaftRpc =
  | { readonly kind: 'appendEntries'; readonly request: AppendEntriesRequest; readonly isHeartbeat: boolean; readonly remoteAddress: string }
  | { readonly kind: 'requestVote'; readonly request: RequestVoteRequest; readonly remoteAddress: string }
  | {
      readonly kind: 'installSnapshot';
      readonly request: InstallSnapshotRequest;
      /** Exactly `request.size` bytes, read once; unread bytes are discarded after the handler. */
      readonly data: AsyncIterable<Uint8Array>;
      readonly remoteAddress: string;
    }
  | { readonly kind: 'timeoutNow'; readonly request: TimeoutNowRequest; readonly remoteAddress: string }
  | { readonly kind: 'requestPreVote'; readonly request: RequestPreVoteRequest; readonly remoteAddress: string };

/** Any RPC response; it must be the one matching the request's kind. */
export type RaftRpcResponse = RaftResponse<RpcKind>;

/**
 * Serves one RPC. Resolves with the response for `rpc.kind`; a rejection's message is sent as
 * the error string (raft's RPCResponse.Error) with a nil body.
 */
export type RaftHandler = (rpc: RaftRpc) => Promise<RaftRpcResponse>;

export interface RaftTransportOptions {
  /** Address to listen on; port 0 picks a free port (see localAddress). */
  readonly host: string;
  readonly port: number;
  readonly handler: RaftHandler;
  readonly logger: Logger;
  /**
   * A bare raft port: accepted connections start with the RPC type byte, and dialed ones do not
   * send the `01` RPCRaft byte. Default false: Consul's multiplexed server port.
   */
  readonly isRawRaftPort?: boolean;
  /** Default deadline of one RPC (raft Timeout; Consul uses 10 s). */
  readonly timeoutMs?: number;
  /** Idle connections kept per peer (raft MaxPool). */
  readonly maxPool?: number;
  /** Replies a pipeline may await at once (raft 1.1.2 rpcMaxPipeline). */
  readonly pipelineInFlightMax?: number;
  /** Our protocol version; requests below version-1 are refused, as raft's checkRPCHeader does. */
  readonly protocolVersion?: number;
  /** Serve RequestPreVote (type 4) as raft ≥1.7 does; false answers it as 1.1.2 does (close). */
  readonly isPreVoteServed?: boolean;
  /** Limits, lowered in tests. */
  readonly rpcBytesMax?: number;
  readonly snapshotBytesMax?: number;
  readonly serverConnsMax?: number;
}

export interface RpcOptions {
  /** Deadline for this call, from the call to the decoded reply. */
  readonly timeoutMs?: number;
}

export interface PipelineOptions extends RpcOptions {
  readonly inFlightMax?: number;
}

export type RaftTransportErrorCode =
  /** The deadline passed; the connection was closed. */
  | 'ERR_RAFT_TIMEOUT'
  /** The transport or the pipeline was closed by us. */
  | 'ERR_RAFT_CLOSED'
  /** Dial failure, reset, or the peer closed the connection. */
  | 'ERR_RAFT_CONNECTION'
  /** The peer answered with an error string (the message is that string). */
  | 'ERR_RAFT_REMOTE'
  /** The peer's reply did not parse or broke the protocol. */
  | 'ERR_RAFT_BAD_RESPONSE'
  /** The pipeline already has its maximum of requests in flight. */
  | 'ERR_RAFT_PIPELINE_FULL'
  /** RequestPreVote to a peer not marked as supporting it. */
  | 'ERR_RAFT_PREVOTE_UNSUPPORTED'
  /** A request over rpcBytesMax, or a snapshot over snapshotBytesMax. */
  | 'ERR_RAFT_TOO_LARGE'
  /** The snapshot data was longer or shorter than the request's Size. */
  | 'ERR_RAFT_SNAPSHOT_SIZE';

/** An operational transport error, with a code. */
export class RaftTransportError extends Error {
  override readonly name = 'RaftTransportError';
  constructor(
    readonly code: RaftTransportErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Consul's server-port byte for raft traffic (pool.RPCRaft). */
export const RPC_RAFT_BYTE = 0x01;
/** Idle pooled connections per peer (Consul's raft MaxPool). */
export const RAFT_POOL_CONNS_MAX = 3;
/** Replies a pipeline awaits at once (raft 1.1.2 rpcMaxPipeline). */
export const RAFT_PIPELINE_INFLIGHT_MAX = 128;
/** Default RPC deadline (Consul's raft transport Timeout). */
export const RAFT_RPC_TIMEOUT_MS = 10_000;
/** Snapshot deadlines grow by one RPC deadline per this many bytes (raft DefaultTimeoutScale). */
export const RAFT_SNAPSHOT_TIMEOUT_SCALE_BYTES = 256 * 1024;
/** Accepted connections at once; more are closed at accept. */
export const RAFT_SERVER_CONNS_MAX = 1024;
/** Requests on one connection handed to the handler and not yet answered (raft 1.1.2 rpcMaxPipeline). */
export const RAFT_SERVER_INFLIGHT_MAX = 128;
/** Bytes read past a request still being served before the socket is paused. */
export const RAFT_SERVER_READ_AHEAD_BYTES = 1024 * 1024;
/** Snapshot bytes buffered ahead of the handler before the socket is paused. */
export const RAFT_SNAPSHOT_BUFFER_BYTES = 1024 * 1024;
/** Bytes of one reply (`[error string][response]`); raft replies are a few dozen bytes. */
export const RAFT_REPLY_BYTES_MAX = 1024 * 1024;
/** Repeated decode warnings are logged at most once per this interval. */
const WARN_INTERVAL_MS = 1000;
const BYTE_QUEUE_INITIAL_BYTES = 16 * 1024;
/** A queue that grew past this returns to the initial size once empty. */
const BYTE_QUEUE_SHRINK_BYTES = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Exported API

/** raft's InstallSnapshot deadline: timeout × ⌊size / 256 KiB⌋, at least timeout. */
export function snapshotTimeoutMs(timeoutMs: number, sizeBytes: number): number {
  return Math.max(timeoutMs, timeoutMs * Math.floor(sizeBytes / RAFT_SNAPSHOT_TIMEOUT_SCALE_BYTES));
}

/** Splits `host:port` (`[v6]:port` too). Throws ERR_RAFT_CONNECTION for anything else. */
export function splitHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const portText = address.slice(colon + 1);
  const port = Number(portText);
  if (colon <= 0 || host === '' || !/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) {
    throw new RaftTransportError('ERR_RAFT_CONNECTION', `bad raft address ${JSON.stringify(address)}`);
  }
  return { host, port };
}

/** A Raft transport: serves incoming RPCs with `handler` and sends RPCs to peers. */
export class RaftTransport {
  private readonly server: Server;
  private readonly logger: Logger;
  private readonly handler: RaftHandler;
  private readonly isRawRaftPort: boolean;
  private readonly timeoutMs: number;
  private readonly maxPool: number;
  private readonly pipelineInFlightMax: number;
  private readonly protocolVersion: number;
  private readonly isPreVoteServed: boolean;
  private readonly rpcBytesMax: number;
  private readonly snapshotBytesMax: number;
  private readonly serverConnsMax: number;
  /** Idle connections per peer address. Invariant: every one is open and has no waiter. */
  private readonly pools = new Map<string, ClientConn[]>();
  /** Every client connection not yet closed (idle, busy, pipeline, snapshot). */
  private readonly clientConns = new Set<ClientConn>();
  private readonly pipelines = new Map<ClientConn, AppendPipeline>();
  private readonly serverConns = new Set<ServerConn>();
  private readonly preVotePeers = new Set<string>();
  private isClosed = false;
  private closing: Promise<void> | undefined;
  private lastWarnMs = 0;
  private suppressedWarnings = 0;

  private constructor(options: RaftTransportOptions) {
    this.logger = options.logger;
    this.handler = options.handler;
    this.isRawRaftPort = options.isRawRaftPort ?? false;
    this.timeoutMs = options.timeoutMs ?? RAFT_RPC_TIMEOUT_MS;
    this.maxPool = options.maxPool ?? RAFT_POOL_CONNS_MAX;
    this.pipelineInFlightMax = options.pipelineInFlightMax ?? RAFT_PIPELINE_INFLIGHT_MAX;
    this.protocolVersion = options.protocolVersion ?? RAFT_PROTOCOL_VERSION;
    this.isPreVoteServed = options.isPreVoteServed ?? true;
    this.rpcBytesMax = Math.min(options.rpcBytesMax ?? RAFT_RPC_BYTES_MAX, RAFT_RPC_BYTES_MAX);
    this.snapshotBytesMax = Math.min(options.snapshotBytesMax ?? RAFT_SNAPSHOT_BYTES_MAX, RAFT_SNAPSHOT_BYTES_MAX);
    this.serverConnsMax = options.serverConnsMax ?? RAFT_SERVER_CONNS_MAX;
    assert.ok(this.timeoutMs > 0 && this.maxPool >= 0 && this.pipelineInFlightMax > 0, 'transport limits must be positive');
    this.server = createServer((socket) => this.acceptConnection(socket));
  }

  /** Starts listening and resolves once bound. */
  static async listen(options: RaftTransportOptions): Promise<RaftTransport> {
    const transport = new RaftTransport(options);
    await new Promise<void>((resolve, reject) => {
      transport.server.once('error', reject);
      transport.server.listen(options.port, options.host, () => {
        transport.server.off('error', reject);
        resolve();
      });
    });
    transport.server.on('error', (error) => transport.logger.error('raft listener failed', { error: error.message }));
    return transport;
  }

  /**
   * A transport that does not listen: incoming connections arrive through acceptConnection from
   * a listener that owns the port (Consul's server port multiplexer, lib/rpc.ts).
   */
  static unbound(options: Omit<RaftTransportOptions, 'host' | 'port'>): RaftTransport {
    return new RaftTransport({ ...options, host: '', port: 0 });
  }

  /** The bound `host:port` (the address peers dial and the one to put in Leader/Candidate). */
  get localAddress(): string {
    const address = this.server.address();
    assert.ok(address !== null && typeof address === 'object', 'transport is listening');
    return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
  }

  /** Marks whether `address` runs raft ≥1.7 and so understands RequestPreVote (default: no). */
  setPreVoteSupported(address: string, isSupported: boolean): void {
    if (isSupported) this.preVotePeers.add(address);
    else this.preVotePeers.delete(address);
  }

  appendEntries(address: string, request: AppendEntriesRequest, options?: RpcOptions): Promise<AppendEntriesResponse> {
    return this.call('appendEntries', address, request, options);
  }

  requestVote(address: string, request: RequestVoteRequest, options?: RpcOptions): Promise<RequestVoteResponse> {
    return this.call('requestVote', address, request, options);
  }

  /** Rejects with ERR_RAFT_PREVOTE_UNSUPPORTED, without touching the network, unless the peer was marked. */
  requestPreVote(address: string, request: RequestPreVoteRequest, options?: RpcOptions): Promise<RequestPreVoteResponse> {
    if (!this.preVotePeers.has(address)) {
      return Promise.reject(new RaftTransportError('ERR_RAFT_PREVOTE_UNSUPPORTED', `peer ${address} is not known to support pre-vote`));
    }
    return this.call('requestPreVote', address, request, options);
  }

  timeoutNow(address: string, request: TimeoutNowRequest, options?: RpcOptions): Promise<TimeoutNowResponse> {
    return this.call('timeoutNow', address, request, options);
  }

  /**
   * Sends a snapshot: the request, then exactly `request.size` bytes from `data`, then reads the
   * reply. The connection is closed afterwards. The deadline is snapshotTimeoutMs(timeout, size).
   * If the peer answers before all bytes are sent, sending stops and its answer is returned.
   */
  async installSnapshot(address: string, request: InstallSnapshotRequest, data: AsyncIterable<Uint8Array>, options?: RpcOptions): Promise<InstallSnapshotResponse> {
    this.checkOpen();
    if (request.size > this.snapshotBytesMax) throw new RaftTransportError('ERR_RAFT_TOO_LARGE', `snapshot of ${request.size} bytes exceeds ${this.snapshotBytesMax}`);
    const frame = this.requestFrame('installSnapshot', request);
    const conn = this.takeConn(address);
    let isReplied = false;
    const reply = new Promise<RawReply>((resolve, reject) => conn.expectReply(snapshotTimeoutMs(options?.timeoutMs ?? this.timeoutMs, request.size), resolve, reject));
    // Observed from the start: the reply may fail while we are still streaming.
    const outcome = reply.then(
      (value) => {
        isReplied = true;
        return { value };
      },
      (error: unknown) => ({ error }),
    );
    try {
      conn.write(frame);
      await streamSnapshot(conn, request.size, data, () => isReplied);
      const settled = await outcome;
      if ('error' in settled) throw settled.error;
      return this.finishReply('installSnapshot', conn, settled.value, false);
    } finally {
      conn.destroy(new RaftTransportError('ERR_RAFT_CLOSED', 'snapshot connections are not reused'));
    }
  }

  /**
   * Opens an AppendEntries pipeline to `address` on its own connection. Close it when done; it
   * closes itself on any error (see AppendPipeline).
   */
  appendEntriesPipeline(address: string, options?: PipelineOptions): AppendPipeline {
    this.checkOpen();
    const conn = this.takeConn(address);
    const pipeline = new AppendPipeline(conn, {
      timeoutMs: options?.timeoutMs ?? this.timeoutMs,
      inFlightMax: Math.min(options?.inFlightMax ?? this.pipelineInFlightMax, this.pipelineInFlightMax),
      frame: (request) => this.requestFrame('appendEntries', request),
      decode: (reply) => this.finishReply('appendEntries', conn, reply, false),
    });
    this.pipelines.set(conn, pipeline);
    return pipeline;
  }

  /**
   * Serves a connection accepted elsewhere (Consul's server port, after it read the `01`
   * byte): `head` holds any bytes already read past that byte. With isPrefixRead false, the
   * connection is expected to start as on our own listener.
   */
  acceptConnection(socket: Socket, options: { isPrefixRead?: boolean; head?: Uint8Array } = {}): void {
    socket.on('error', (error) => this.logger.debug('raft connection error', { error: error.message }));
    if (this.isClosed) {
      socket.destroy();
      return;
    }
    if (this.serverConns.size >= this.serverConnsMax) {
      this.warnRateLimited('too many raft connections, closing a new one', { limit: this.serverConnsMax });
      socket.destroy();
      return;
    }
    const conn = new ServerConn(socket, this.serverContext, !(this.isRawRaftPort || options.isPrefixRead === true));
    this.serverConns.add(conn);
    this.logger.debug('accepted connection', { 'remote-address': conn.remoteAddress });
    conn.start(options.head);
  }

  /** Ends every socket and fails every pending call with ERR_RAFT_CLOSED ("transport shutdown"). */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.isClosed = true;
    const error = new RaftTransportError('ERR_RAFT_CLOSED', 'transport shutdown');
    for (const conn of [...this.clientConns]) conn.destroy(error);
    this.pools.clear();
    for (const conn of [...this.serverConns]) conn.close();
    this.closing = this.server.listening ? new Promise<void>((resolve) => this.server.close(() => resolve())) : Promise.resolve();
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------
  // Client internals

  private async call<K extends RpcKind>(kind: K, address: string, request: RaftRequest<K>, options: RpcOptions | undefined): Promise<RaftResponse<K>> {
    this.checkOpen();
    const frame = this.requestFrame(kind, request);
    const conn = this.takeConn(address);
    const reply = new Promise<RawReply>((resolve, reject) => conn.expectReply(options?.timeoutMs ?? this.timeoutMs, resolve, reject));
    conn.write(frame);
    return this.finishReply(kind, conn, await reply, true);
  }

  /** Turns a raw reply into the response or a coded error; returns the connection to the pool when allowed. */
  private finishReply<K extends RpcKind>(kind: K, conn: ClientConn, reply: RawReply, isReusable: boolean): RaftResponse<K> {
    if (reply.errorText !== '') {
      if (isReusable) this.returnConn(conn);
      throw new RaftTransportError('ERR_RAFT_REMOTE', reply.errorText);
    }
    let response: RaftResponse<K>;
    try {
      response = decodeResponse(kind, reply.body);
    } catch (error) {
      if (!(error instanceof RaftWireError)) throw error;
      const failure = new RaftTransportError('ERR_RAFT_BAD_RESPONSE', `bad ${kind} response from ${conn.address}: ${error.message}`, { cause: error });
      conn.destroy(failure);
      throw failure;
    }
    if (isReusable) this.returnConn(conn);
    return response;
  }

  private requestFrame<K extends RpcKind>(kind: K, request: RaftRequest<K>): Uint8Array {
    const frame = encodeRequestFrame(kind, request);
    if (frame.length - 1 > this.rpcBytesMax) throw new RaftTransportError('ERR_RAFT_TOO_LARGE', `${kind} request of ${frame.length - 1} bytes exceeds ${this.rpcBytesMax}`);
    return frame;
  }

  private checkOpen(): void {
    if (this.isClosed) throw new RaftTransportError('ERR_RAFT_CLOSED', 'transport shutdown');
  }

  /** An idle pooled connection (newest first, as raft takes them) or a new one. */
  private takeConn(address: string): ClientConn {
    const idle = this.pools.get(address);
    while (idle !== undefined && idle.length > 0) {
      const conn = idle.pop();
      if (conn?.isOpen === true) return conn;
    }
    const { host, port } = splitHostPort(address);
    // Writes before the connection is up are queued by the socket, and a failed dial surfaces as
    // an error event that fails the waiting call, so there is no separate dial step.
    const conn = new ClientConn(address, connect({ host, port }), (closed, error) => this.onClientClosed(closed, error));
    this.clientConns.add(conn);
    if (!this.isRawRaftPort) conn.write(PREFIX);
    return conn;
  }

  private returnConn(conn: ClientConn): void {
    if (!conn.isOpen) return;
    const idle = this.pools.get(conn.address) ?? [];
    if (this.isClosed || conn.pendingReplies > 0 || idle.length >= this.maxPool) {
      conn.destroy(new RaftTransportError('ERR_RAFT_CLOSED', 'connection pool is full'));
      return;
    }
    idle.push(conn);
    this.pools.set(conn.address, idle);
  }

  private onClientClosed(conn: ClientConn, error: RaftTransportError): void {
    this.clientConns.delete(conn);
    const idle = this.pools.get(conn.address);
    if (idle !== undefined) {
      const at = idle.indexOf(conn);
      if (at >= 0) idle.splice(at, 1);
      if (idle.length === 0) this.pools.delete(conn.address);
    }
    const pipeline = this.pipelines.get(conn);
    if (pipeline !== undefined) {
      this.pipelines.delete(conn);
      pipeline.onConnectionClosed(error);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Server internals

  private readonly serverContext: ServerContext = {
    handler: (rpc) => this.handler(rpc),
    logger: () => this.logger,
    rpcBytesMax: () => this.rpcBytesMax,
    snapshotBytesMax: () => this.snapshotBytesMax,
    isPreVoteServed: () => this.isPreVoteServed,
    versionError: (version) => (version < 0 || version > RAFT_PROTOCOL_VERSION_MAX || version < this.protocolVersion - 1 ? UNSUPPORTED_PROTOCOL_MESSAGE : ''),
    warnDecode: (error, remoteAddress) => this.warnRateLimited('failed to decode incoming command', { error: messageOf(error), 'remote-address': remoteAddress }),
    onClosed: (conn) => this.serverConns.delete(conn),
  };

  /** A peer sending garbage must not flood the log: one line per interval, with a count. */
  private warnRateLimited(message: string, fields: Record<string, unknown>): void {
    const nowMs = Date.now();
    if (nowMs - this.lastWarnMs < WARN_INTERVAL_MS) {
      this.suppressedWarnings++;
      return;
    }
    this.lastWarnMs = nowMs;
    this.logger.warn(message, this.suppressedWarnings > 0 ? { ...fields, suppressed: this.suppressedWarnings } : fields);
    this.suppressedWarnings = 0;
  }
}

/**
 * AppendEntries requests written back to back on one connection, replies matched in order
 * (raft's netPipeline). Each reply must arrive within the timeout counted from when it became
 * the oldest one awaited. Any failure (deadline, connection loss, an error string, a bad reply)
 * closes the pipeline and fails every request in flight with that error.
 */
export class AppendPipeline {
  private inFlightCount = 0;
  private failure: RaftTransportError | undefined;
  private resolveClosed: (error: RaftTransportError) => void = () => undefined;
  /** Settles with the reason once the pipeline is closed (never rejects). */
  readonly closed: Promise<RaftTransportError>;

  /** @internal Created by RaftTransport.appendEntriesPipeline. */
  constructor(
    private readonly conn: ClientConn,
    private readonly context: PipelineContext,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  /** Requests written and not yet answered. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  get isClosed(): boolean {
    return this.failure !== undefined;
  }

  /**
   * Writes one request and resolves with its response, in the order requests were sent. Rejects
   * at once with ERR_RAFT_PIPELINE_FULL when inFlightMax requests await replies (the pipeline
   * stays open), or with the closing error once closed.
   */
  appendEntries(request: AppendEntriesRequest): Promise<AppendEntriesResponse> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.inFlightCount >= this.context.inFlightMax) {
      return Promise.reject(new RaftTransportError('ERR_RAFT_PIPELINE_FULL', `${this.inFlightCount} appends in flight to ${this.conn.address}`));
    }
    let frame: Uint8Array;
    try {
      frame = this.context.frame(request);
    } catch (error) {
      return Promise.reject(error);
    }
    // Replies are settled synchronously in arrival order, so an error closes the pipeline before
    // any later reply already buffered can be delivered as a success.
    const reply = new Promise<AppendEntriesResponse>((resolve, reject) => {
      this.conn.expectReply(
        this.context.timeoutMs,
        (raw) => {
          this.inFlightCount--;
          let response: AppendEntriesResponse;
          try {
            response = this.context.decode(raw);
          } catch (error) {
            if (!(error instanceof RaftTransportError)) throw error;
            reject(error);
            this.fail(error);
            return;
          }
          resolve(response);
        },
        (error) => {
          this.inFlightCount--;
          reject(error);
          this.fail(error);
        },
      );
    });
    this.conn.write(frame);
    this.inFlightCount++;
    return reply;
  }

  /** Closes the connection; requests in flight fail with ERR_RAFT_CLOSED ("append pipeline closed"). */
  close(): void {
    this.fail(new RaftTransportError('ERR_RAFT_CLOSED', 'append pipeline closed'));
  }

  /** @internal The transport reports the connection's end. */
  onConnectionClosed(error: RaftTransportError): void {
    this.fail(error);
  }

  private fail(error: RaftTransportError): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.conn.destroy(error);
    this.resolveClosed(error);
  }
}

// ---------------------------------------------------------------------------------------------
// Private: shared pieces

const PREFIX = new Uint8Array([RPC_RAFT_BYTE]);

interface RawReply {
  readonly errorText: string;
  readonly body: Uint8Array;
}

interface PipelineContext {
  readonly timeoutMs: number;
  readonly inFlightMax: number;
  frame(request: AppendEntriesRequest): Uint8Array;
  decode(reply: RawReply): AppendEntriesResponse;
}

interface ServerContext {
  handler(rpc: RaftRpc): Promise<RaftRpcResponse>;
  logger(): Logger;
  rpcBytesMax(): number;
  snapshotBytesMax(): number;
  isPreVoteServed(): boolean;
  /** raft's checkRPCHeader: "" when the version is served, else the error text. */
  versionError(version: number): string;
  warnDecode(error: unknown, remoteAddress: string): void;
  onClosed(conn: ServerConn): void;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function asBytes(chunk: Buffer | Uint8Array): Uint8Array {
  return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Writes `size` bytes of `data` to `conn`, waiting for drain when the socket asks to. */
async function streamSnapshot(conn: ClientConn, size: number, data: AsyncIterable<Uint8Array>, isReplied: () => boolean): Promise<void> {
  let sentBytes = 0;
  for await (const chunk of data) {
    if (conn.failure !== undefined) throw conn.failure;
    if (isReplied()) return;
    sentBytes += chunk.length;
    if (sentBytes > size) throw new RaftTransportError('ERR_RAFT_SNAPSHOT_SIZE', `snapshot data is longer than its Size ${size}`);
    if (!conn.write(chunk)) await conn.whenDrained();
  }
  if (conn.failure !== undefined) throw conn.failure;
  if (sentBytes < size && !isReplied()) throw new RaftTransportError('ERR_RAFT_SNAPSHOT_SIZE', `snapshot data ended after ${sentBytes} of ${size} bytes`);
}

/**
 * Received bytes awaiting a parse: one buffer with a read and a write position, compacted or
 * doubled as needed (amortized O(1) per byte). view() is valid until the next append.
 */
class ByteQueue {
  private buffer = new Uint8Array(BYTE_QUEUE_INITIAL_BYTES);
  private start = 0;
  private end = 0;

  get length(): number {
    return this.end - this.start;
  }

  append(chunk: Uint8Array): void {
    if (this.end + chunk.length > this.buffer.length) this.makeRoom(chunk.length);
    this.buffer.set(chunk, this.end);
    this.end += chunk.length;
  }

  view(): Uint8Array {
    return this.buffer.subarray(this.start, this.end);
  }

  peekByte(): number | undefined {
    return this.start < this.end ? this.buffer[this.start] : undefined;
  }

  /** A copy of the next `count` bytes (callers keep views into it), consumed. */
  take(count: number): Uint8Array {
    const bytes = this.buffer.slice(this.start, this.start + count);
    this.skip(count);
    return bytes;
  }

  skip(count: number): void {
    assert.ok(count <= this.length, 'skip past the queued bytes');
    this.start += count;
    if (this.start === this.end) {
      this.start = this.end = 0;
      if (this.buffer.length > BYTE_QUEUE_SHRINK_BYTES) this.buffer = new Uint8Array(BYTE_QUEUE_INITIAL_BYTES);
    }
  }

  private makeRoom(extra: number): void {
    const length = this.length;
    // Compact only when that frees at least half the buffer, else copies would go quadratic.
    if (length + extra <= this.buffer.length / 2) this.buffer.copyWithin(0, this.start, this.end);
    else {
      let capacity = this.buffer.length * 2;
      while (capacity < length + extra) capacity *= 2;
      const grown = new Uint8Array(capacity);
      grown.set(this.buffer.subarray(this.start, this.end));
      this.buffer = grown;
    }
    this.start = 0;
    this.end = length;
  }
}

// ---------------------------------------------------------------------------------------------
// Private: client connection

interface ReplyWaiter {
  readonly timeoutMs: number;
  resolve(reply: RawReply): void;
  reject(error: RaftTransportError): void;
}

/**
 * One outgoing connection. Replies are matched to waiters in order; the oldest waiter's
 * deadline is armed when it becomes the oldest. Any failure destroys the socket and fails every
 * waiter with the same error.
 */
class ClientConn {
  private readonly input = new ByteQueue();
  private readonly scanner = new MsgpackScanner();
  /** Length of the reply's error string once scanned; -1 while it is incomplete. */
  private errorLength = -1;
  private readonly waiters: ReplyWaiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Invariant: bumped whenever the deadline timer is re-armed or cleared; a stale timer does nothing. */
  private timerEpoch = 0;
  /** Set once; the connection is unusable from then on. */
  failure: RaftTransportError | undefined;

  constructor(
    readonly address: string,
    private readonly socket: Socket,
    private readonly onClosed: (conn: ClientConn, error: RaftTransportError) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.destroy(new RaftTransportError('ERR_RAFT_CONNECTION', `raft connection to ${address}: ${error.message}`, { cause: error })));
    socket.on('close', () => this.destroy(new RaftTransportError('ERR_RAFT_CONNECTION', `raft connection to ${address} closed`)));
  }

  get isOpen(): boolean {
    return this.failure === undefined;
  }

  get pendingReplies(): number {
    return this.waiters.length;
  }

  /** Writes bytes; false means the socket buffers past its high-water mark (wait for drain). */
  write(bytes: Uint8Array): boolean {
    if (this.failure !== undefined) return true;
    return writeCoalesced(this.socket, bytes);
  }

  /** Resolves on 'drain' or when the connection ends (check `failure` after). */
  whenDrained(): Promise<void> {
    if (this.failure !== undefined) return Promise.resolve();
    return drainedOrClosed(this.socket);
  }


  /**
   * Registers for the next reply in order, to arrive within `timeoutMs` of becoming the oldest.
   * Exactly one callback runs, synchronously as the reply is parsed (or on failure); a callback
   * that destroys the connection fails every later waiter before their replies are looked at.
   */
  expectReply(timeoutMs: number, resolve: (reply: RawReply) => void, reject: (error: RaftTransportError) => void): void {
    if (this.failure !== undefined) {
      reject(this.failure);
      return;
    }
    this.waiters.push({ timeoutMs, resolve, reject });
    if (this.waiters.length === 1) this.armTimer();
  }

  destroy(error: RaftTransportError): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.clearTimer();
    this.socket.destroy();
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    this.onClosed(this, error);
  }

  private onData(chunk: Buffer): void {
    if (this.failure !== undefined) return;
    if (this.waiters.length === 0) {
      this.destroy(new RaftTransportError('ERR_RAFT_BAD_RESPONSE', `unexpected bytes from ${this.address} with no request outstanding`));
      return;
    }
    this.input.append(asBytes(chunk));
    try {
      this.parseReplies();
    } catch (error) {
      if (!(error instanceof RaftWireError)) throw error;
      this.destroy(new RaftTransportError('ERR_RAFT_BAD_RESPONSE', `bad reply from ${this.address}: ${error.message}`, { cause: error }));
    }
  }

  /** Completes waiters for every whole `[error string][body]` pair buffered. */
  private parseReplies(): void {
    while (this.waiters.length > 0 && this.failure === undefined) {
      const bytes = this.input.view();
      if (this.errorLength < 0) {
        const length = this.scanner.scan(bytes, RAFT_REPLY_BYTES_MAX, RAFT_APPEND_ENTRIES_MAX);
        if (length < 0) return;
        this.errorLength = length;
      }
      const bodyLength = this.scanner.scan(bytes.subarray(this.errorLength), RAFT_REPLY_BYTES_MAX - this.errorLength, RAFT_APPEND_ENTRIES_MAX);
      if (bodyLength < 0) return;
      const errorText = decodeErrorString(this.input.take(this.errorLength));
      const body = this.input.take(bodyLength);
      this.errorLength = -1;
      const waiter = this.waiters.shift();
      assert.ok(waiter !== undefined, 'a reply has a waiter');
      this.armTimer();
      waiter.resolve({ errorText, body });
    }
    if (this.input.length > 0 && this.waiters.length === 0) {
      throw new RaftWireError('ERR_RAFT_WIRE_INVALID', 'bytes after the last expected reply');
    }
  }

  private armTimer(): void {
    this.clearTimer();
    const head = this.waiters[0];
    if (head === undefined) return;
    const epoch = this.timerEpoch;
    this.timer = setTimeout(() => {
      if (epoch !== this.timerEpoch) return;
      this.destroy(new RaftTransportError('ERR_RAFT_TIMEOUT', `raft rpc to ${this.address} timed out after ${head.timeoutMs} ms`));
    }, head.timeoutMs);
  }

  private clearTimer(): void {
    this.timerEpoch++;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Private: server connection

interface ParsedRpc {
  readonly rpc: RaftRpc;
  /** "" to call the handler; otherwise the error string to answer with. */
  readonly errorText: string;
  readonly snapshot: SnapshotStream | undefined;
}

/**
 * One accepted connection: parses requests and hands each to the handler as soon as it is
 * complete, in order, so a follower steps a burst of pipelined AppendEntries together and makes
 * them durable with one fsync; replies are written strictly in request order. An InstallSnapshot
 * is served alone: nothing after it is parsed until its bytes are read and its reply is queued.
 * The socket is paused when the read-ahead or snapshot buffer is full.
 */
class ServerConn {
  private readonly input = new ByteQueue();
  private readonly scanner = new MsgpackScanner();
  /** Requests handed to the handler whose replies are not written yet. */
  private inFlight = 0;
  /** Replies are written in this chain's order, which is the requests' order. */
  private replies: Promise<void> = Promise.resolve();
  private isClosed = false;
  /** The snapshot whose bytes arrive now. Invariant: set only while its request is being served. */
  private snapshot: SnapshotStream | undefined;
  readonly remoteAddress: string;

  constructor(
    private readonly socket: Socket,
    private readonly context: ServerContext,
    private isPrefixPending: boolean,
  ) {
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
  }

  start(head: Uint8Array | undefined): void {
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.onData(asBytes(chunk)));
    this.socket.on('close', () => this.close());
    if (head !== undefined && head.length > 0) this.onData(head);
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.snapshot?.fail(new RaftTransportError('ERR_RAFT_CONNECTION', 'connection closed before the snapshot ended'));
    this.socket.destroy();
    this.context.onClosed(this);
  }

  private onData(chunk: Uint8Array): void {
    if (this.isClosed) return;
    let bytes = chunk;
    const stream = this.snapshot;
    if (stream !== undefined && stream.remainingBytes > 0) {
      const count = Math.min(stream.remainingBytes, bytes.length);
      stream.push(bytes.subarray(0, count));
      bytes = bytes.subarray(count);
    }
    if (bytes.length > 0) this.input.append(bytes);
    this.pump();
  }

  /** Hands every complete request to the handler, up to RAFT_SERVER_INFLIGHT_MAX awaiting replies. */
  private pump(): void {
    while (!this.isClosed && this.snapshot === undefined && this.inFlight < RAFT_SERVER_INFLIGHT_MAX) {
      let parsed: ParsedRpc | undefined;
      try {
        parsed = this.parseNext();
      } catch (error) {
        this.fail(error);
        return;
      }
      if (parsed === undefined) break;
      this.inFlight++;
      // Called now, in arrival order: the handler steps each request before the next is parsed.
      const reply = this.serve(parsed);
      this.replies = this.replies
        .then(async () => {
          const frame = await reply;
          if (this.isClosed) return;
          await this.write(frame);
          this.inFlight--;
          this.pump();
        })
        .catch((error: unknown) => this.fail(error));
    }
    this.updateFlow();
  }
  private parseNext(): ParsedRpc | undefined {
    if (this.isPrefixPending) {
      const first = this.input.peekByte();
      if (first === undefined) return undefined;
      if (first !== RPC_RAFT_BYTE) throw new RaftWireError('ERR_RAFT_WIRE_INVALID', `first byte 0x${first.toString(16)} is not RPCRaft`);
      this.input.skip(1);
      this.isPrefixPending = false;
    }
    const typeByte = this.input.peekByte();
    if (typeByte === undefined) return undefined;
    const kind = rpcKindOf(typeByte);
    if (kind === undefined || (kind === 'requestPreVote' && !this.context.isPreVoteServed())) throw new RaftWireError('ERR_RAFT_WIRE_INVALID', `unknown rpc type ${typeByte}`);
    const length = this.scanner.scan(this.input.view().subarray(1), this.context.rpcBytesMax(), RAFT_APPEND_ENTRIES_MAX);
    if (length < 0) return undefined;
    this.input.skip(1);
    const request = decodeRequestUnchecked(kind, this.input.take(length));
    const errorText = this.context.versionError(request.protocolVersion);
    const remoteAddress = this.remoteAddress;
    if (kind === 'appendEntries') {
      const appendRequest = request as AppendEntriesRequest;
      return { rpc: { kind, request: appendRequest, isHeartbeat: isHeartbeat(appendRequest), remoteAddress }, errorText, snapshot: undefined };
    }
    if (kind !== 'installSnapshot') return { rpc: { kind, request, remoteAddress } as RaftRpc, errorText, snapshot: undefined };
    const snapshotRequest = request as InstallSnapshotRequest;
    if (snapshotRequest.size > this.context.snapshotBytesMax()) throw new RaftWireError('ERR_RAFT_WIRE_TOO_LARGE', `snapshot of ${snapshotRequest.size} bytes exceeds ${this.context.snapshotBytesMax()}`);
    const stream = new SnapshotStream(snapshotRequest.size, () => this.updateFlow());
    this.snapshot = stream;
    // Snapshot bytes that came in with the request.
    const early = Math.min(stream.remainingBytes, this.input.length);
    if (early > 0) stream.push(this.input.take(early));
    return { rpc: { kind, request: snapshotRequest, data: stream, remoteAddress }, errorText, snapshot: stream };
  }

  /** Runs the handler (synchronously up to its first await) and resolves with the reply frame. */
  private async serve(parsed: ParsedRpc): Promise<Uint8Array> {
    let errorText = parsed.errorText;
    let response: RaftRpcResponse | undefined;
    if (errorText === '') {
      try {
        response = await this.context.handler(parsed.rpc);
      } catch (error) {
        // raft sends RPCResponse.Error's text; an empty text would read as success.
        errorText = messageOf(error) || 'unknown error';
      }
    }
    if (parsed.snapshot !== undefined) {
      parsed.snapshot.discard();
      await parsed.snapshot.whenReceived();
      this.snapshot = undefined;
      // Requests that followed the snapshot's bytes can be parsed now.
      queueMicrotask(() => this.pump());
    }
    const body = errorText === '' && response !== undefined ? encodeResponse(parsed.rpc.kind, response) : null;
    return encodeResponseFrame(errorText === '' && body === null ? 'handler returned no response' : errorText, body);
  }

  /** Writes a reply; resolves at once, or on drain (or close) when the socket is full. */
  private write(frame: Uint8Array): Promise<void> {
    return writeCoalesced(this.socket, frame) ? Promise.resolve() : drainedOrClosed(this.socket);
  }


  /** Pauses reading while the handler is behind, resumes when it catches up. */
  private updateFlow(): void {
    if (this.isClosed) return;
    const stream = this.snapshot;
    const isStreamFull = stream !== undefined && stream.bufferedBytes >= RAFT_SNAPSHOT_BUFFER_BYTES;
    const isAheadFull = this.inFlight > 0 && this.input.length >= RAFT_SERVER_READ_AHEAD_BYTES;
    if (isStreamFull || isAheadFull) this.socket.pause();
    else this.socket.resume();
  }

  private fail(error: unknown): void {
    if (this.isClosed) return;
    if (error instanceof RaftWireError) this.context.warnDecode(error, this.remoteAddress);
    else this.context.logger().error('raft connection failed', { error: messageOf(error), 'remote-address': this.remoteAddress });
    this.close();
  }
}

/**
 * The snapshot bytes following an InstallSnapshot request, as an async iterable the handler
 * reads once. Bytes are pushed by the connection; once discard() is called (the handler is
 * done, or left the loop early) they are dropped instead of kept.
 */
class SnapshotStream implements AsyncIterable<Uint8Array>, AsyncIterator<Uint8Array> {
  /** Bytes not yet received from the socket. */
  remainingBytes: number;
  /** Bytes received and not yet read by the handler. */
  bufferedBytes = 0;
  private readonly chunks: Uint8Array[] = [];
  private reader: { resolve: (result: IteratorResult<Uint8Array>) => void; reject: (error: Error) => void } | undefined;
  private failure: Error | undefined;
  private isDiscarding = false;
  private received: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(
    sizeBytes: number,
    private readonly onProgress: () => void,
  ) {
    this.remainingBytes = sizeBytes;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    assert.ok(this.reader === undefined, 'one reader at a time');
    const chunk = this.chunks.shift();
    if (chunk !== undefined) {
      this.bufferedBytes -= chunk.length;
      this.onProgress();
      return Promise.resolve({ value: chunk, done: false });
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.remainingBytes === 0 || this.isDiscarding) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.reader = { resolve, reject }));
  }

  return(): Promise<IteratorResult<Uint8Array>> {
    this.discard();
    return Promise.resolve({ value: undefined, done: true });
  }

  push(chunk: Uint8Array): void {
    assert.ok(chunk.length <= this.remainingBytes, 'snapshot bytes past Size');
    this.remainingBytes -= chunk.length;
    if (!this.isDiscarding) {
      const reader = this.reader;
      this.reader = undefined;
      if (reader !== undefined) reader.resolve({ value: chunk, done: false });
      else {
        this.chunks.push(chunk);
        this.bufferedBytes += chunk.length;
      }
    }
    if (this.remainingBytes === 0) this.finishReader();
    this.onProgress();
  }

  /** Drops buffered and future bytes (the handler will not read them). */
  discard(): void {
    this.isDiscarding = true;
    this.chunks.length = 0;
    this.bufferedBytes = 0;
    this.finishReader();
    this.onProgress();
  }

  /** Resolves once all Size bytes have arrived; rejects if the connection ends first. */
  whenReceived(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.remainingBytes === 0) return Promise.resolve();
    return new Promise((resolve, reject) => (this.received = { resolve, reject }));
  }

  fail(error: Error): void {
    if (this.failure !== undefined || this.remainingBytes === 0) return;
    this.failure = error;
    this.reader?.reject(error);
    this.reader = undefined;
    this.received?.reject(error);
    this.received = undefined;
  }

  private finishReader(): void {
    if (this.remainingBytes === 0) {
      this.received?.resolve();
      this.received = undefined;
    }
    if (this.reader !== undefined && (this.remainingBytes === 0 || this.isDiscarding)) {
      this.reader.resolve({ value: undefined, done: true });
      this.reader = undefined;
    }
  }
}

/** Resolves when a full socket drains, or when it closes (whichever comes first). */
function drainedOrClosed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}
