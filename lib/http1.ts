// HTTP/1.1 server connections on node:net: the wire layer under lib/http.ts.
//
// Why not node:http: a Consul agent parks blocking queries by the thousand, and node:http keeps
// an IncomingMessage, a ServerResponse, a parser and their listeners for each one: ~10 KB per
// parked query, over 100 MB for 10,000 (issue 5 allows 100 MB for the agent's whole cost), and
// ~33 us of JavaScript per answer on top of the kernel's write. Here a parked query costs its
// socket and one small exchange object, and the identical answers of one wake-up go out as one
// prebuilt buffer written to each socket (measured in docs/performance.md).
//
// What this module is: Go net/http's server side as Consul exposes it, minus TLS and HTTP/2 (which
// Consul's HTTP listener only offers over TLS). One request at a time per connection, read in
// order (pipelined requests wait in the buffer); Content-Length and chunked request bodies;
// `Expect: 100-continue` answered only when the body is read, so a 413 reaches the client before
// it sends; keep-alive by HTTP/1.1 default, `Connection: close`, and HTTP/1.0 `keep-alive`; a
// `Date` header on every response, as Go sends. Malformed requests get Go's raw answers (status
// line, body and `Connection: close`: server.go's readRequest errors) and the connection closes.
//
// What it is not: routing, Consul's headers, tokens, bodies' meaning (lib/http.ts owns them).
//
// Timeouts (Consul sets none; these bound slow clients): the request line and headers must arrive
// within headersTimeoutMs of the request's first byte (or of the connection's start), the body
// within requestTimeoutMs; both answer 408 and close. A keep-alive connection idle for
// keepAliveTimeoutMs is closed. Nothing times out while a handler works: blocking queries wait up
// to 10 minutes. One interval timer sweeps the connections that have a deadline; a parked query
// has none, so 10,000 of them cost the sweep nothing.
//
// Invariants: at most one exchange per connection is open (Connection.exchange); an exchange is
// answered at most once; a connection whose request body was not read to its end is closed after
// the answer (its remaining bytes cannot be told from the next request); no buffer grows past
// headersBytesMax + HTTP1_PIPELINE_BYTES_MAX before the socket is paused or answered 431.
//
// Reference: Go net/http server.go (readRequest errors, Expect handling, closing after an unread
// body), transfer.go (Content-Length and Transfer-Encoding rules), textproto (header lines), and
// RFC 9112 (message syntax, chunked coding).

import { STATUS_CODES } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from './log.js';

// ---------------------------------------------------------------------------------------------
// Types

/** Response headers as one flat list: [name, value, name, value, ...], names as they go out. */
export type HeaderList = readonly string[];

/** A listener of a request's abort: a function or an object with handleEvent, as for AbortSignal. */
export type AbortListener = (() => void) | { handleEvent(): void };

/**
 * The part of AbortSignal that request handlers use; an AbortSignal is one. A request is its own
 * signal (Http1Exchange implements this): a real AbortController and its EventTarget cost
 * ~600 bytes per parked query, more than the rest of the exchange.
 */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: AbortListener, options?: { readonly once?: boolean }): void;
  removeEventListener(type: 'abort', listener: AbortListener): void;
}

export interface Http1ServerOptions {
  /** Called once per request whose head parsed; the handler answers through the exchange. */
  readonly onRequest: (exchange: Http1Exchange) => void;
  /**
   * Called for each accepted socket before anything is read; false means the callee has taken
   * the socket over (go-connlimit's refusal) and this server must leave it alone.
   */
  readonly onConnection?: (socket: Socket) => boolean;
  /** Called when an accepted (not refused) socket has closed. */
  readonly onConnectionClosed?: (socket: Socket) => void;
  readonly logger: Logger;
  readonly headersBytesMax: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Bytes of further (pipelined) requests buffered while one is handled, before reading pauses. */
export const HTTP1_PIPELINE_BYTES_MAX = 64 * 1024;
/** The longest chunk-size line (hex digits and extensions) accepted in a chunked body. */
export const HTTP1_CHUNK_LINE_BYTES_MAX = 4096;
/** How long a closed connection's socket lingers half-closed (Go's rstAvoidanceDelay is 500 ms). */
export const HTTP1_CLOSE_LINGER_MS = 500;
/** Trailer bytes accepted after the last chunk (Go reads and keeps them; we read and drop them). */
export const HTTP1_TRAILER_BYTES_MAX = 64 * 1024;

/** Go's net/http answers to requests it cannot read (server.go), each followed by a close. */
export const GO_BAD_REQUEST = goErrorResponse(400, 'Bad Request', '');
export const GO_HEADERS_TOO_LARGE = goErrorResponse(431, 'Request Header Fields Too Large', '');
const REQUEST_TIMEOUT_RESPONSE = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n';
/** Go's answer to a transfer coding other than chunked: the detail in the body only. */
const UNSUPPORTED_TRANSFER_ENCODING_RESPONSE = 'HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nUnsupported transfer encoding';
const EXPECTATION_FAILED_RESPONSE = 'HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';
const CONTINUE_RESPONSE = 'HTTP/1.1 100 Continue\r\n\r\n';

// ---------------------------------------------------------------------------------------------
// Exported API

/** A listening HTTP/1.1 server. */
export class Http1Server {
  private readonly server: Server;
  /** Invariant: every connection whose socket has not closed. */
  private readonly connections = new Set<Connection>();
  /** Connections with a deadline (reading a head or a body, or idle between requests). */
  private readonly timed = new Set<Connection>();
  private readonly sweepTimer: NodeJS.Timeout;
  private isClosing = false;
  /** Set by close(): called when the last open exchange is answered or dropped. */
  private onDrained: (() => void) | undefined;

  constructor(readonly options: Http1ServerOptions) {
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    const sweepEveryMs = Math.max(10, Math.min(1_000, Math.floor(Math.min(options.headersTimeoutMs, options.keepAliveTimeoutMs) / 4)));
    this.sweepTimer = setInterval(() => this.sweep(), sweepEveryMs).unref();
  }

  /** Binds host:port; rejects with the bind error (EADDRINUSE, EACCES...). */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  get openExchanges(): number {
    let open = 0;
    for (const connection of this.connections) if (connection.exchange !== undefined) open++;
    return open;
  }

  /**
   * Stops accepting and closes idle connections now; aborts every open exchange, whose handlers
   * may still answer (with Connection: close) within graceMs; then drops what is left.
   */
  async close(graceMs: number): Promise<void> {
    this.isClosing = true;
    const closed = new Promise<Error | undefined>((resolve) => this.server.close(resolve));
    const drained = new Promise<void>((resolve) => (this.onDrained = resolve));
    for (const connection of [...this.connections]) {
      if (connection.exchange === undefined) connection.destroy();
      else connection.exchange.abort();
    }
    this.checkDrained();
    let graceTimer: NodeJS.Timeout | undefined;
    await Promise.race([drained, new Promise((resolve) => (graceTimer = setTimeout(resolve, graceMs)))]);
    clearTimeout(graceTimer);
    clearInterval(this.sweepTimer);
    for (const connection of [...this.connections]) connection.destroy();
    const error = await closed;
    if (error) throw error;
  }

  /** @internal Connection bookkeeping, called by Connection. */
  get closing(): boolean {
    return this.isClosing;
  }

  /** @internal */
  setTimed(connection: Connection, isTimed: boolean): void {
    if (isTimed) this.timed.add(connection);
    else this.timed.delete(connection);
  }

  /** @internal */
  forget(connection: Connection): void {
    this.connections.delete(connection);
    this.timed.delete(connection);
  }

  /** @internal An exchange was answered or dropped. */
  checkDrained(): void {
    if (this.onDrained !== undefined && this.openExchanges === 0) this.onDrained();
  }

  private accept(socket: Socket): void {
    if (this.isClosing) return void socket.destroy();
    if (this.options.onConnection !== undefined && !this.options.onConnection(socket)) return;
    const connection = new Connection(this, socket);
    this.connections.add(connection);
  }

  private sweep(): void {
    const nowMs = Date.now();
    for (const connection of this.timed) if (nowMs >= connection.deadlineMs) connection.onDeadline();
  }
}

/**
 * One request and its answer. The wire layer fills in the request; lib/http.ts reads it, reads
 * the body if it wants one, and answers exactly once (or drops the connection).
 */
export class Http1Exchange implements AbortSignalLike {
  /** Set when the client went away (or half-closed) or the server began closing. Invariant: never unset. */
  isAborted = false;
  isAnswered = false;
  /** The abort listeners; usually none or one (a parked blocking query). */
  private abortListeners: AbortListener[] | undefined;
  /** Invariant: the body is read at most once (a second read would consume the next request). */
  private isBodyRequested = false;

  constructor(
    readonly connection: Connection,
    readonly method: string,
    /** The request target as sent; each byte is one latin1 character. */
    readonly target: string,
    readonly isHttp10: boolean,
    /** [name, value, ...] as received, names in their sent case. */
    readonly rawHeaders: readonly string[],
    /** The declared body: 0 none, n bytes (Content-Length), or -1 chunked. */
    readonly bodyLength: number,
    readonly expectsContinue: boolean,
    /** Whether the client asked to keep the connection (HTTP/1.1 unless "close"; HTTP/1.0 "keep-alive"). */
    readonly wantsKeepAlive: boolean,
  ) {}

  get remoteAddress(): string {
    return this.connection.remoteAddress;
  }

  /**
   * The first value of a header, by case-insensitive name, as Go's Header.Get reads it.
   * Looked up in the raw list on each call: no per-request map is built, since handlers
   * rarely ask and a parked query would keep it.
   */
  header(name: string): string | undefined {
    const { rawHeaders } = this;
    for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
      const candidate = rawHeaders[index]!;
      if (candidate.length === name.length && candidate.toLowerCase() === name.toLowerCase()) return rawHeaders[index + 1];
    }
    return undefined;
  }

  get aborted(): boolean {
    return this.isAborted;
  }

  get reason(): unknown {
    return this.isAborted ? new Error('request aborted') : undefined;
  }

  addEventListener(_type: 'abort', listener: AbortListener): void {
    if (this.isAborted || this.abortListeners?.includes(listener)) return;
    (this.abortListeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: AbortListener): void {
    const listeners = this.abortListeners;
    const index = listeners?.indexOf(listener) ?? -1;
    if (index !== -1) listeners!.splice(index, 1);
  }

  abort(): void {
    if (this.isAborted) return;
    this.isAborted = true;
    this.connection.abortBody(this);
    const listeners = this.abortListeners;
    this.abortListeners = undefined;
    for (const listener of listeners ?? []) {
      if (typeof listener === 'function') listener();
      else listener.handleEvent();
    }
  }

  /**
   * The body, or the byte count that broke `max` (a declared Content-Length is compared before
   * anything is read or 100 Continue sent). A request without a body has it at once. Rejects
   * with Http1Gone when the client leaves, or the server closes, before the body is complete.
   */
  readBody(max: number): Uint8Array | number | Promise<Uint8Array | number> {
    if (this.bodyLength === 0) return EMPTY_BODY;
    // Read once; afterwards the body is at its end, as Go's Body returns EOF (a second read must
    // not consume the next pipelined request).
    if (this.isBodyRequested) return EMPTY_BODY;
    this.isBodyRequested = true;
    if (this.bodyLength > max) return this.bodyLength;
    if (this.isAborted) throw new Http1Gone('request aborted before its body');
    return this.connection.readBody(this, max);
  }

  /**
   * Answers: the status line, `headers` (which must include Content-Length when a body may
   * follow), Date, Connection as needed, and the body (not sent for HEAD). `reason` replaces the
   * status text (Go's server errors put their detail there). `isClosing` asks for the
   * connection to close afterwards.
   */
  respond(status: number, headers: HeaderList, body: string | Uint8Array, reason?: string, isClosing = false): void {
    if (this.isAnswered) throw new Error(`exchange answered twice (status ${status})`);
    this.isAnswered = true;
    this.connection.respond(this, status, headers, body, reason, isClosing);
  }

  /** Drops the connection without an answer (the client left, or an answer already started). */
  destroy(): void {
    this.isAnswered = true;
    this.connection.destroy();
  }
}

/** A request's client left (or the server closed) before its body was complete. */
export class Http1Gone extends Error {
  override readonly name = 'Http1Gone';
}

/** The body of a request that declares none (shared: a zero-length buffer cannot be written to). */
export const EMPTY_BODY: Uint8Array = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------
// Connections

type ConnectionState =
  /** Waiting for (or reading) a request head. */
  | 'head'
  /** An exchange is open: its handler runs, possibly reading the body. */
  | 'exchange'
  /** Answered with Connection: close, or failed: nothing more is read. */
  | 'closing';

/** A body being read into memory for an exchange. */
interface BodyRead {
  readonly exchange: Http1Exchange;
  readonly max: number;
  readonly chunks: Buffer[];
  received: number;
  /** Bytes of the current chunk (or of a Content-Length body) still to come. */
  remaining: number;
  /** Chunked: where the decoder is. */
  phase: 'size' | 'data' | 'data-end' | 'trailer' | 'length';
  readonly resolve: (body: Uint8Array | number) => void;
  readonly reject: (error: Error) => void;
}

/** @internal One socket and its requests, one at a time. */
export class Connection {
  readonly remoteAddress: string;
  state: ConnectionState = 'head';
  exchange: Http1Exchange | undefined;
  /** When the current deadline passes (see Http1Server.sweep); meaningful while timed. */
  deadlineMs = 0;
  private deadlineKind: 'headers' | 'request' | 'idle' = 'headers';
  /** Received bytes not yet parsed. */
  private pending: Buffer | undefined;
  private body: BodyRead | undefined;
  /** Whether the open exchange's body was read to its end (else the connection cannot be reused). */
  private isBodyConsumed = true;
  private isReadEnded = false;
  private isPaused = false;
  /** Set while parse() runs: an answer given synchronously inside it lets parse()'s loop go on, never recursing. */
  private isParsing = false;

  constructor(
    private readonly server: Http1Server,
    private readonly socket: Socket,
  ) {
    this.remoteAddress = clientAddress(socket);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onReadEnd());
    socket.on('error', (error) => server.options.logger.debug('HTTP connection error', { from: this.remoteAddress, error: error.message }));
    socket.on('close', () => this.onClose());
    this.setDeadline('headers', server.options.headersTimeoutMs);
  }

  destroy(): void {
    this.state = 'closing';
    this.socket.destroy();
  }

  /** Called by the sweep when deadlineMs has passed. */
  onDeadline(): void {
    this.server.setTimed(this, false);
    if (this.deadlineKind === 'idle') return this.destroy();
    if (this.deadlineKind === 'request' && this.body !== undefined) {
      const { reject } = this.body;
      this.body = undefined;
      reject(new Http1Gone('request body timed out'));
    }
    this.fail(REQUEST_TIMEOUT_RESPONSE);
  }

  respond(exchange: Http1Exchange, status: number, headers: HeaderList, body: string | Uint8Array, reason: string | undefined, isClosing: boolean): void {
    if (exchange !== this.exchange || this.state !== 'exchange') return; // the connection failed or closed meanwhile
    const isHead = exchange.method === 'HEAD';
    const isKeptAlive = !isClosing && this.isBodyConsumed && !this.server.closing && (!this.isReadEnded || this.pending !== undefined) && exchange.wantsKeepAlive;
    // Go: HTTP/1.0 gets an HTTP/1.0 status line, "keep-alive" when kept, and never "close".
    const connectionHeader = exchange.isHttp10 ? (isKeptAlive ? 'keep-alive' : '') : isKeptAlive ? '' : 'close';
    const message = serializeResponse(exchange.isHttp10, status, reason, headers, isHead ? '' : body, connectionHeader);
    if (typeof message === 'string' || message instanceof Uint8Array) this.socket.write(message);
    else {
      this.socket.cork();
      this.socket.write(message.head);
      this.socket.write(message.body);
      this.socket.uncork();
    }
    this.exchange = undefined;
    this.server.checkDrained();
    if (!isKeptAlive) return this.closeSoon();
    this.state = 'head';
    this.setDeadline('idle', this.server.options.keepAliveTimeoutMs);
    if (this.isPaused) {
      this.isPaused = false;
      this.socket.resume();
    }
    if (!this.isParsing) this.parse();
  }

  /** Stops the exchange's body read, if one runs: its promise rejects with Http1Gone. */
  abortBody(exchange: Http1Exchange): void {
    const read = this.body;
    if (read === undefined || read.exchange !== exchange) return;
    this.body = undefined;
    this.server.setTimed(this, false);
    read.reject(new Http1Gone('request aborted mid-body'));
  }

  /** Reads the open exchange's body (after the head, whatever is buffered first). */
  readBody(exchange: Http1Exchange, max: number): Promise<Uint8Array | number> {
    if (exchange.expectsContinue && !exchange.isHttp10) this.socket.write(CONTINUE_RESPONSE);
    if (this.isPaused) {
      this.isPaused = false;
      this.socket.resume();
    }
    this.isBodyConsumed = false;
    this.setDeadline('request', this.server.options.requestTimeoutMs);
    return new Promise((resolve, reject) => {
      const isChunked = exchange.bodyLength === -1;
      this.body = { exchange, max, chunks: [], received: 0, remaining: isChunked ? 0 : exchange.bodyLength, phase: isChunked ? 'size' : 'length', resolve, reject };
      if (this.pending !== undefined) {
        const buffered = this.pending;
        this.pending = undefined;
        this.feedBody(buffered);
      }
    });
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closing') return;
    if (this.body !== undefined) return this.feedBody(chunk);
    this.pending = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    if (this.state === 'head') return this.parse();
    // A pipelined request arrives while one is handled: keep it, but only so much of it.
    if (this.pending.length > this.server.options.headersBytesMax + HTTP1_PIPELINE_BYTES_MAX && !this.isPaused) {
      this.isPaused = true;
      this.socket.pause();
    }
  }

  /** The client closed its sending side: Go cancels the open request, as for a disconnect. */
  private onReadEnd(): void {
    this.isReadEnded = true;
    if (this.body !== undefined) {
      const { reject } = this.body;
      this.body = undefined;
      reject(new Http1Gone('client went away mid-body'));
    }
    // Go cancels the open request, still serves complete requests already buffered, and
    // closes silently on EOF before or inside a request head (isCommonNetReadError).
    if (this.exchange !== undefined) this.exchange.abort();
    else if (this.state === 'head') this.parse();
  }

  private onClose(): void {
    this.state = 'closing';
    this.server.forget(this);
    this.server.options.onConnectionClosed?.(this.socket);
    if (this.body !== undefined) {
      const { reject } = this.body;
      this.body = undefined;
      reject(new Http1Gone('client went away mid-body'));
    }
    const exchange = this.exchange;
    this.exchange = undefined;
    if (exchange !== undefined) {
      exchange.abort();
      this.server.checkDrained();
    }
  }

  /** Parses request heads from the buffer while the connection waits for one. */
  private parse(): void {
    if (this.isParsing) return;
    this.isParsing = true;
    try {
      this.parseHeads();
    } finally {
      this.isParsing = false;
    }
    // A client that closed its side is served what it had sent, then closed (Go serves the buffer).
    if (this.isReadEnded && this.state === 'head' && this.pending === undefined) this.closeSoon();
  }

  private parseHeads(): void {
    while (this.state === 'head' && this.pending !== undefined) {
      const buffer = this.pending;
      const start = skipEmptyLines(buffer);
      if (start === buffer.length) {
        this.pending = undefined;
        return;
      }
      if (this.deadlineKind === 'idle') this.setDeadline('headers', this.server.options.headersTimeoutMs);
      const end = headEnd(buffer, start);
      if (end === -1) {
        if (buffer.length - start > this.server.options.headersBytesMax) this.fail(GO_HEADERS_TOO_LARGE);
        return;
      }
      if (end.headLength > this.server.options.headersBytesMax) return this.fail(GO_HEADERS_TOO_LARGE);
      this.pending = end.next < buffer.length ? buffer.subarray(end.next) : undefined;
      const head = parseHead(buffer.toString('latin1', start, start + end.headLength));
      if (typeof head === 'string') return this.fail(head);
      this.open(head);
    }
  }

  private open(head: ParsedHead): void {
    if (head.expectation !== undefined && head.expectation !== '100-continue') return this.fail(EXPECTATION_FAILED_RESPONSE);
    const exchange = new Http1Exchange(this, head.method, head.target, head.isHttp10, head.rawHeaders, head.bodyLength, head.expectation === '100-continue', head.wantsKeepAlive);
    this.state = 'exchange';
    this.exchange = exchange;
    this.isBodyConsumed = head.bodyLength === 0;
    this.server.setTimed(this, false);
    if (this.server.closing || this.isReadEnded) exchange.abort();
    this.server.options.onRequest(exchange);
  }

  /** Consumes body bytes; what follows the body stays pending for the next request. */
  private feedBody(chunk: Buffer): void {
    const read = this.body!;
    let offset = 0;
    while (offset < chunk.length && this.body === read) {
      if (read.phase === 'length' || read.phase === 'data') {
        const take = Math.min(read.remaining, chunk.length - offset);
        if (!this.keepBodyBytes(read, chunk.subarray(offset, offset + take))) return;
        read.remaining -= take;
        offset += take;
        if (read.remaining === 0) {
          if (read.phase === 'length') return this.finishBody(read, chunk.subarray(offset));
          read.phase = 'data-end';
        }
        continue;
      }
      const line = this.takeLine(chunk, offset, read.phase === 'trailer' ? HTTP1_TRAILER_BYTES_MAX : HTTP1_CHUNK_LINE_BYTES_MAX);
      if (line === undefined) return; // an incomplete line waits in pending
      if (line === 'too long') return this.failBody(read);
      offset = line.next;
      // Go requires CRLF after chunk data and on chunk-size lines (bare LF: CVE-2025-22871).
      if (read.phase !== 'trailer' && !line.hasCarriageReturn) return this.failBody(read);
      if (read.phase === 'data-end') {
        if (line.text !== '') return this.failBody(read);
        read.phase = 'size';
      } else if (read.phase === 'size') {
        const size = parseChunkSize(line.text);
        if (size === undefined) return this.failBody(read);
        if (size === 0) read.phase = 'trailer';
        else {
          read.remaining = size;
          read.phase = 'data';
        }
      } else if (line.text === '') return this.finishBody(read, chunk.subarray(offset));
    }
  }

  /**
   * One CRLF (or LF) terminated line starting at offset, joined with any partial line kept in
   * pending from earlier chunks; undefined (the partial kept) when the line is incomplete.
   */
  private takeLine(chunk: Buffer, offset: number, lineBytesMax: number): { text: string; next: number; hasCarriageReturn: boolean } | 'too long' | undefined {
    const newline = chunk.indexOf(0x0a, offset);
    const partial = this.pending;
    if (newline === -1) {
      this.pending = partial === undefined ? chunk.subarray(offset) : Buffer.concat([partial, chunk.subarray(offset)]);
      return this.pending.length > lineBytesMax ? 'too long' : undefined;
    }
    this.pending = undefined;
    let text = (partial === undefined ? '' : partial.toString('latin1')) + chunk.toString('latin1', offset, newline);
    const hasCarriageReturn = text.endsWith('\r');
    if (hasCarriageReturn) text = text.slice(0, -1);
    return text.length > lineBytesMax ? 'too long' : { text, next: newline + 1, hasCarriageReturn };
  }

  /**
   * Keeps body bytes; false once they pass the limit, when the read ends with the count that
   * crossed it (the rest is never read: the connection closes after the 413).
   */
  private keepBodyBytes(read: BodyRead, bytes: Buffer): boolean {
    read.received += bytes.length;
    if (read.received <= read.max) {
      read.chunks.push(bytes);
      return true;
    }
    this.body = undefined;
    this.server.setTimed(this, false);
    read.resolve(read.received);
    return false;
  }

  private finishBody(read: BodyRead, rest: Buffer): void {
    this.body = undefined;
    this.isBodyConsumed = true;
    this.server.setTimed(this, false);
    if (rest.length > 0) this.pending = this.pending === undefined ? rest : Buffer.concat([this.pending, rest]);
    read.resolve(read.chunks.length === 1 ? read.chunks[0]! : Buffer.concat(read.chunks));
  }

  /** A malformed chunked body: Go answers 400 and closes; the handler never runs. */
  private failBody(read: BodyRead): void {
    this.body = undefined;
    read.reject(new Http1Gone('malformed chunked body'));
    this.fail(GO_BAD_REQUEST);
  }

  /** Writes a raw error answer (Go's) and closes; an open exchange is dropped. */
  private fail(response: string): void {
    this.server.options.logger.debug('malformed HTTP request', { from: this.remoteAddress, answer: response.slice(9, response.indexOf('\r\n')) });
    const exchange = this.exchange;
    this.exchange = undefined;
    this.state = 'closing';
    this.pending = undefined;
    this.server.setTimed(this, false);
    if (exchange !== undefined) {
      exchange.isAnswered = true;
      exchange.abort();
      this.server.checkDrained();
    }
    if (!this.socket.writable) return void this.socket.destroy();
    this.socket.write(response);
    this.closeSoon();
  }

  /**
   * Sends FIN, then destroys the socket after HTTP1_CLOSE_LINGER_MS: like Go's closeWriteAndWait,
   * so a client still sending is not reset before it reads the answer, and one that never
   * closes its side does not keep the socket.
   */
  private closeSoon(): void {
    this.state = 'closing';
    this.pending = undefined;
    this.server.setTimed(this, false);
    this.socket.end();
    setTimeout(() => this.socket.destroy(), HTTP1_CLOSE_LINGER_MS).unref();
  }

  private setDeadline(kind: 'headers' | 'request' | 'idle', afterMs: number): void {
    this.deadlineKind = kind;
    this.deadlineMs = Date.now() + afterMs;
    this.server.setTimed(this, true);
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers: request heads

interface ParsedHead {
  readonly method: string;
  readonly target: string;
  readonly isHttp10: boolean;
  readonly rawHeaders: string[];
  readonly bodyLength: number;
  /** The Expect header, lower-cased, if sent. */
  readonly expectation: string | undefined;
  readonly wantsKeepAlive: boolean;
}

/** RFC 9110 tchar: the characters of methods and header names. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Header values: visible characters, spaces, tabs and obs-text; no other control character. */
const FIELD_VALUE_INVALID = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Offset of the first byte after leading empty lines (RFC 9112 2.2: a server ignores them). */
function skipEmptyLines(buffer: Buffer): number {
  let offset = 0;
  while (offset < buffer.length && (buffer[offset] === 0x0d || buffer[offset] === 0x0a)) offset++;
  return offset;
}

/** The head's length (without the blank line) and where the next bytes start; -1 if incomplete. */
function headEnd(buffer: Buffer, start: number): { headLength: number; next: number } | -1 {
  let newline = buffer.indexOf(0x0a, start);
  while (newline !== -1) {
    // A blank line: "\n\n" or "\n\r\n" (Go's textproto accepts bare LF line ends).
    if (buffer[newline + 1] === 0x0a) return { headLength: newline - start, next: newline + 2 };
    if (buffer[newline + 1] === 0x0d && buffer[newline + 2] === 0x0a) return { headLength: newline - start, next: newline + 3 };
    if (newline + 2 >= buffer.length) return -1;
    newline = buffer.indexOf(0x0a, newline + 1);
  }
  return -1;
}

/** The request line and headers, or the raw answer Go gives when they are malformed. */
function parseHead(text: string): ParsedHead | string {
  const lines = text.split('\n');
  const requestLine = trimCarriageReturn(lines[0]!);
  const firstSpace = requestLine.indexOf(' ');
  const secondSpace = requestLine.indexOf(' ', firstSpace + 1);
  if (firstSpace <= 0 || secondSpace === -1) return GO_BAD_REQUEST;
  const method = requestLine.slice(0, firstSpace);
  const target = requestLine.slice(firstSpace + 1, secondSpace);
  const version = /^HTTP\/(\d)\.(\d)$/.exec(requestLine.slice(secondSpace + 1));
  if (!TOKEN.test(method) || version === null || target === '') return GO_BAD_REQUEST;
  if (version[1] !== '1') return goErrorResponse(505, 'HTTP Version Not Supported', 'unsupported protocol version');
  const rawHeaders: string[] = [];
  // The few headers the wire layer itself reads, each with every value sent.
  let hostCount = 0;
  let lengths: string[] | undefined;
  let encodings: string[] | undefined;
  let expectation: string | undefined;
  let connection = '';
  for (let index = 1; index < lines.length; index++) {
    const line = trimCarriageReturn(lines[index]!);
    const colon = line.indexOf(':');
    // Go's textproto rejects a line without a colon, a name that is not a token (spaces, obs-fold
    // continuation lines, "Name :") and control bytes in values, all as a plain 400.
    if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) return GO_BAD_REQUEST;
    const name = line.slice(0, colon);
    const value = trimOptionalWhitespace(line.slice(colon + 1));
    if (FIELD_VALUE_INVALID.test(value)) return GO_BAD_REQUEST;
    rawHeaders.push(name, value);
    switch (name.length <= WIRE_HEADER_LENGTH_MAX ? name.toLowerCase() : '') {
      case 'host':
        hostCount++;
        if (!VALID_HOST.test(value)) return goErrorResponse(400, 'Bad Request', 'malformed Host header');
        break;
      case 'content-length':
        (lengths ??= []).push(value);
        break;
      case 'transfer-encoding':
        (encodings ??= []).push(value);
        break;
      case 'expect':
        expectation ??= value.toLowerCase();
        break;
      case 'connection':
        connection = connection === '' ? value : `${connection}, ${value}`;
        break;
    }
  }
  const isHttp10 = version[2] === '0';
  if (!isHttp10 && hostCount === 0 && method !== 'CONNECT') return goErrorResponse(400, 'Bad Request', 'missing required Host header');
  if (hostCount > 1) return goErrorResponse(400, 'Bad Request', 'too many Host headers');
  // Go ignores Transfer-Encoding on HTTP/1.0 (golang/go#12785).
  const bodyLength = declaredBodyLength(lengths, isHttp10 ? undefined : encodings);
  if (typeof bodyLength === 'string') return bodyLength;
  return { method, target, isHttp10, rawHeaders, bodyLength, expectation, wantsKeepAlive: wantsKeepAlive(isHttp10, connection) };
}

/** The longest header name parseHead looks at ("transfer-encoding"). */
const WIRE_HEADER_LENGTH_MAX = 'transfer-encoding'.length;

/**
 * Go's transfer.go: Transfer-Encoding must be exactly "chunked" (else 501), and then wins over
 * Content-Length; Content-Length values must be digits and agree. 0 means no body, -1 chunked.
 */
function declaredBodyLength(lengths: readonly string[] | undefined, encodings: readonly string[] | undefined): number | string {
  // Content-Length is checked first, even when chunked wins (Go's fixLength).
  let length = 0;
  if (lengths !== undefined) {
    const first = lengths[0]!;
    if (!/^\d{1,19}$/.test(first) || BigInt(first) > CONTENT_LENGTH_MAX || lengths.some((other) => other !== first)) return GO_BAD_REQUEST;
    length = Number(first);
  }
  if (encodings !== undefined) {
    if (encodings.length !== 1 || encodings[0]!.toLowerCase() !== 'chunked') return UNSUPPORTED_TRANSFER_ENCODING_RESPONSE;
    return -1;
  }
  return length;
}

/** Go parses Content-Length with strconv.ParseUint(v, 10, 63). */
const CONTENT_LENGTH_MAX = (1n << 63n) - 1n;
/** httpguts.ValidHostHeader's bytes: letters, digits and the punctuation of hosts, IPv6 literals and zones. */
const VALID_HOST = /^[A-Za-z0-9!$%&'()*+,\-.:;=[\]_~]*$/;

/**
 * A chunk-size line as Go's readChunkLine reads it: trailing spaces and tabs dropped, then
 * ";extensions" cut, then hex digits only (no spaces); undefined when malformed. Sizes past
 * 2^48 are refused here (Go allows 16 hex digits; no body we accept comes near).
 */
function parseChunkSize(line: string): number | undefined {
  const trimmed = line.replace(/[ \t]+$/, '');
  const semicolon = trimmed.indexOf(';');
  const digits = semicolon === -1 ? trimmed : trimmed.slice(0, semicolon);
  if (!/^[0-9A-Fa-f]{1,12}$/.test(digits)) return undefined;
  return parseInt(digits, 16);
}

/** RFC 9110 OWS: spaces and tabs only (String.prototype.trim would also eat \xA0, \v, \f and CR). */
function trimOptionalWhitespace(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text.charCodeAt(start) === 0x20 || text.charCodeAt(start) === 0x09)) start++;
  while (end > start && (text.charCodeAt(end - 1) === 0x20 || text.charCodeAt(end - 1) === 0x09)) end--;
  return text.slice(start, end);
}

function trimCarriageReturn(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** HTTP/1.1 keeps the connection unless told "close"; HTTP/1.0 only when told "keep-alive". */
function wantsKeepAlive(isHttp10: boolean, connection: string): boolean {
  const tokens = connection.toLowerCase();
  const hasClose = /(^|,)\s*close\s*(,|$)/.test(tokens);
  if (isHttp10) return !hasClose && /(^|,)\s*keep-alive\s*(,|$)/.test(tokens);
  return !hasClose;
}

// ---------------------------------------------------------------------------------------------
// Private helpers: responses

/**
 * The last serialized answer, reused while the next one has the same parts: a write that wakes
 * 10,000 blocking queries on one key answers them all with one header list and one body (lib/
 * http.ts caches frozen answers), so the 10,000 writes share one buffer. Identity comparisons
 * only: the header list is never mutated after it is built, strings are immutable.
 */
let lastResponse: { isHttp10: boolean; status: number; reason: string | undefined; headers: HeaderList; body: string; connection: string; date: string; bytes: Buffer } | undefined;

/** Go's Date header value, recomputed once a second. */
let dateText = '';
let dateSecond = -1;

function httpDate(): string {
  const nowMs = Date.now();
  const second = Math.floor(nowMs / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(nowMs).toUTCString();
  }
  return dateText;
}

/** The whole response as one string or buffer, or a head and a byte body to write together. */
function serializeResponse(isHttp10: boolean, status: number, reason: string | undefined, headers: HeaderList, body: string | Uint8Array, connection: string): string | Buffer | { head: string; body: Uint8Array } {
  const date = httpDate();
  if (typeof body === 'string') {
    const last = lastResponse;
    if (last !== undefined && last.headers === headers && last.body === body && last.status === status && last.reason === reason && last.connection === connection && last.date === date && last.isHttp10 === isHttp10) return last.bytes;
    const bytes = Buffer.from(responseHead(isHttp10, status, reason, headers, date, connection) + body);
    // Only answers worth sharing are kept: a body of some size that is likely to repeat at once.
    if (body.length > 0) lastResponse = { isHttp10, status, reason, headers, body, connection, date, bytes };
    return bytes;
  }
  const head = responseHead(isHttp10, status, reason, headers, date, connection);
  return body.byteLength === 0 ? head : { head, body };
}

function responseHead(isHttp10: boolean, status: number, reason: string | undefined, headers: HeaderList, date: string, connection: string): string {
  let head = `HTTP/1.${isHttp10 ? 0 : 1} ${status} ${reason ?? goStatusText(status)}\r\n`;
  for (let index = 0; index + 1 < headers.length; index += 2) head += `${headers[index]}: ${headers[index + 1]}\r\n`;
  head += `Date: ${date}\r\n`;
  if (connection !== '') head += `Connection: ${connection}\r\n`;
  return `${head}\r\n`;
}

/** Go's StatusText where it differs from Node's STATUS_CODES (Node follows newer RFC names). */
const GO_STATUS_TEXTS: Readonly<Record<number, string>> = {
  413: 'Request Entity Too Large',
  414: 'Request URI Too Long',
  416: 'Requested Range Not Satisfiable',
  418: "I'm a teapot",
  509: '',
};

/** The reason phrase Go writes: its StatusText, or "status code N" for a code it does not name. */
function goStatusText(status: number): string {
  const text = GO_STATUS_TEXTS[status] ?? STATUS_CODES[status] ?? '';
  return text === '' ? `status code ${status}` : text;
}

/** A Go server-level error: the detail goes in the status line and the body, then close. */
export function goErrorResponse(status: number, text: string, detail: string): string {
  const line = detail === '' ? `${status} ${text}` : `${status} ${text}: ${detail}`;
  return `HTTP/1.1 ${line}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${line}`;
}

/** The client's IP as go-connlimit keys it; IPv4-mapped IPv6 is shown as IPv4. */
export function clientAddress(socket: Socket): string {
  const address = socket.remoteAddress ?? '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}
