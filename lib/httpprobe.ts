// The HTTP/1.1 exchange of an HTTP health check: one request on a fresh connection, the response
// head parsed here, the body de-chunked (and gunzipped when asked) as it arrives, its bytes
// handed to the caller. Consul's checks never reuse connections, so there is no pool and no
// keep-alive: every request says `Connection: close` and the exchange ends with the socket.
//
// Why not node:http's client: with thousands of checks the per-request machinery of
// ClientRequest/IncomingMessage (an Agent per request without keep-alive, stream objects,
// parser bookkeeping) is most of a probe's cost in JavaScript; this exchange needs none of it
// (bench/checks.bench.ts, docs/performance.md "Health checks").
//
// Invariants:
//   - sendProbe resolves exactly once and never rejects; `bodyDone` resolves exactly once, after
//     the last onBody call, and never rejects.
//   - At most RESPONSE_HEAD_BYTES_MAX bytes of response head are buffered; the body is never
//     buffered here (the caller keeps what it wants of it).
//   - After the signal aborts, the socket is destroyed and no onBody call follows.
//
// References: Go net/http (transport.go, response.go ReadResponse, transfer.go body framing,
// chunked.go), RFC 9112 sections 4 (status line), 6 (message body) and 7.1 (chunked coding).

import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createGunzip, type Gunzip } from 'node:zlib';

// ---------------------------------------------------------------------------------------------
// Exported types

export interface ProbeRequest {
  readonly host: string;
  readonly port: number;
  /** TLS options for https; absent for plain http. */
  readonly tls?: { readonly servername: string; readonly rejectUnauthorized: boolean };
  readonly method: string;
  /** The request target: path and query. */
  readonly target: string;
  /** Header lines in order, Host first; validated by the caller (validateHeaderField). */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Buffer;
  /** Unpack a gzip Content-Encoding (the caller asked for gzip itself, as Go's transport does). */
  readonly gunzip: boolean;
  readonly signal: AbortSignal;
  /** Receives the (decoded) body as it arrives. */
  readonly onBody: (chunk: Buffer) => void;
}

export interface ProbeHead {
  readonly statusCode: number;
  /** Go's resp.Status: the status line after the protocol, e.g. `200 OK`. */
  readonly status: string;
  /** The first value of a response header (name in lower case). */
  header(name: string): string | undefined;
  /** Resolves when the body has ended, broken off, or been discarded. */
  readonly bodyDone: Promise<void>;
  /** Stops reading the body and closes the connection. */
  discard(): void;
}

/** How an exchange failed before a response head: a socket error, or Go's text for a bad response. */
export type ProbeFailure = { readonly socketError: NodeJS.ErrnoException } | { readonly text: string } | { readonly aborted: true };

// ---------------------------------------------------------------------------------------------
// Limits

/** Go's DefaultMaxHeaderBytes, the transport's default cap on a response head. */
export const RESPONSE_HEAD_BYTES_MAX = 1 << 20;
/** A chunk-size line longer than this is malformed (Go's chunked reader allows 4 KB lines). */
const CHUNK_LINE_BYTES_MAX = 4096;

// ---------------------------------------------------------------------------------------------
// Exported API

/** Header field checks Go's transport makes before sending; the error text when one fails. */
export function headerFieldProblem(name: string, value: string): string | undefined {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return `net/http: invalid header field name ${JSON.stringify(name)}`;
  // Go refuses CTLs other than horizontal tab in values.
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return `net/http: invalid header field value for ${JSON.stringify(name)}`;
  return undefined;
}

/** One exchange: resolves with the response head, or how it failed. */
export function sendProbe(request: ProbeRequest): Promise<{ head: ProbeHead } | { failure: ProbeFailure }> {
  return new Promise((resolve) => new Exchange(request, resolve).start());
}

// ---------------------------------------------------------------------------------------------
// Private: one exchange

type Settle = (result: { head: ProbeHead } | { failure: ProbeFailure }) => void;

/** Where the response is: reading its head, its body by one framing, or done. */
type Phase =
  | { readonly kind: 'head'; chunks: Buffer[]; bytes: number }
  | { readonly kind: 'length'; remaining: number }
  | { readonly kind: 'chunked'; pending: Buffer; chunkRemaining: number; state: 'size' | 'data' | 'data-end' | 'trailer' }
  | { readonly kind: 'until-close' }
  | { readonly kind: 'done' };

class Exchange {
  private socket: Socket | undefined;
  private phase: Phase = { kind: 'head', chunks: [], bytes: 0 };
  private settle: Settle | undefined;
  private gunzip: Gunzip | undefined;
  private finishBody: () => void = () => undefined;
  /** Invariant: once true, nothing more reaches the caller and the socket is gone. */
  private isStopped = false;
  private readonly onAbort = (): void => this.stop({ aborted: true });

  constructor(
    private readonly request: ProbeRequest,
    settle: Settle,
  ) {
    this.settle = settle;
  }

  start(): void {
    const { request } = this;
    if (request.signal.aborted) {
      this.resolveOnce({ failure: { aborted: true } });
      return;
    }
    request.signal.addEventListener('abort', this.onAbort, { once: true });
    const socket = request.tls === undefined
      ? netConnect({ host: request.host, port: request.port })
      : tlsConnect({ host: request.host, port: request.port, servername: request.tls.servername || undefined, rejectUnauthorized: request.tls.rejectUnauthorized });
    this.socket = socket;
    // write, not end: a half-close reads as the end of the request to many servers (Node's among them).
    socket.once(request.tls === undefined ? 'connect' : 'secureConnect', () => socket.write(this.requestBytes()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => this.stop({ socketError: error }));
    socket.on('close', () => this.onClose());
  }

  private requestBytes(): Buffer {
    const { request } = this;
    let head = `${request.method} ${request.target} HTTP/1.1\r\n`;
    for (const [name, value] of request.headers) head += `${name}: ${value}\r\n`;
    // Go writes a header's string as it is: UTF-8.
    return Buffer.concat([Buffer.from(`${head}\r\n`, 'utf8'), request.body]);
  }

  private onData(chunk: Buffer): void {
    const phase = this.phase;
    if (phase.kind === 'head') this.readHead(phase, chunk);
    else this.readBody(chunk);
  }

  private readHead(phase: Extract<Phase, { kind: 'head' }>, chunk: Buffer): void {
    phase.chunks.push(chunk);
    phase.bytes += chunk.length;
    const buffered = phase.chunks.length === 1 ? chunk : Buffer.concat(phase.chunks, phase.bytes);
    phase.chunks = [buffered];
    const end = buffered.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buffered.length > RESPONSE_HEAD_BYTES_MAX) this.stop({ text: `net/http: server response headers exceeded ${RESPONSE_HEAD_BYTES_MAX} bytes; aborted` });
      return;
    }
    const parsed = parseHead(buffered.toString('latin1', 0, end));
    if (typeof parsed === 'string') {
      this.stop({ text: parsed });
      return;
    }
    const rest = buffered.subarray(end + 4);
    // 1xx answers (100 Continue and the like) come before the real one: skip them.
    if (parsed.statusCode >= 100 && parsed.statusCode < 200 && parsed.statusCode !== 101) {
      this.phase = { kind: 'head', chunks: [], bytes: 0 };
      if (rest.length > 0) this.onData(rest);
      return;
    }
    this.beginBody(parsed);
    if (this.phase.kind === 'done') this.stop(undefined);
    else if (rest.length > 0) this.readBody(rest);
  }

  private beginBody(parsed: ParsedHead): void {
    const { request } = this;
    const bodyDone = new Promise<void>((resolve) => (this.finishBody = resolve));
    const head: ProbeHead = {
      statusCode: parsed.statusCode,
      status: parsed.status,
      header: (name) => parsed.headers.get(name),
      bodyDone,
      discard: () => this.stop(undefined),
    };
    const hasNoBody = request.method === 'HEAD' || parsed.statusCode === 204 || parsed.statusCode === 304;
    const length = parsed.headers.get('content-length');
    if (hasNoBody) this.phase = { kind: 'done' };
    else if (/(^|,)\s*chunked\s*$/i.test(parsed.headers.get('transfer-encoding') ?? '')) this.phase = { kind: 'chunked', pending: Buffer.alloc(0), chunkRemaining: 0, state: 'size' };
    else if (length !== undefined && /^\d+$/.test(length.trim())) this.phase = Number(length) === 0 ? { kind: 'done' } : { kind: 'length', remaining: Number(length) };
    else this.phase = { kind: 'until-close' };
    if (request.gunzip && parsed.headers.get('content-encoding')?.toLowerCase() === 'gzip' && this.phase.kind !== 'done') {
      const gunzip = createGunzip();
      gunzip.on('data', (decoded: Buffer) => this.deliver(decoded));
      // A broken gzip stream ends the body where it broke, as Go's gzip reader does.
      gunzip.on('error', () => this.stop(undefined));
      gunzip.on('end', () => this.stop(undefined));
      this.gunzip = gunzip;
    }
    this.resolveOnce({ head });
  }

  private readBody(chunk: Buffer): void {
    const phase = this.phase;
    switch (phase.kind) {
      case 'length': {
        const taken = chunk.length > phase.remaining ? chunk.subarray(0, phase.remaining) : chunk;
        phase.remaining -= taken.length;
        this.receive(taken);
        if (phase.remaining === 0) this.endOfBody();
        return;
      }
      case 'chunked':
        this.readChunked(phase, chunk);
        return;
      case 'until-close':
        this.receive(chunk);
        return;
      case 'head':
      case 'done':
        return;
    }
  }

  private readChunked(phase: Extract<Phase, { kind: 'chunked' }>, chunk: Buffer): void {
    let data = phase.pending.length > 0 ? Buffer.concat([phase.pending, chunk]) : chunk;
    phase.pending = Buffer.alloc(0);
    while (data.length > 0 && this.phase === phase) {
      if (phase.state === 'data') {
        const taken = data.subarray(0, Math.min(data.length, phase.chunkRemaining));
        phase.chunkRemaining -= taken.length;
        data = data.subarray(taken.length);
        this.receive(taken);
        if (phase.chunkRemaining === 0) phase.state = 'data-end';
        continue;
      }
      const lineEnd = data.indexOf('\r\n');
      if (lineEnd < 0) {
        if (data.length > CHUNK_LINE_BYTES_MAX) this.breakBody();
        else phase.pending = Buffer.from(data);
        return;
      }
      const line = data.toString('latin1', 0, lineEnd);
      data = data.subarray(lineEnd + 2);
      if (phase.state === 'data-end') {
        if (line !== '') return this.breakBody();
        phase.state = 'size';
      } else if (phase.state === 'size') {
        const size = /^([0-9a-fA-F]{1,15})[ \t]*(;.*)?$/.exec(line);
        if (size === null) return this.breakBody();
        phase.chunkRemaining = parseInt(size[1] ?? '0', 16);
        phase.state = phase.chunkRemaining === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        // The empty line after the trailer fields ends the body.
        return this.endOfBody();
      }
    }
  }

  /** Raw body bytes: through gunzip when unpacking, else to the caller. */
  private receive(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (this.gunzip !== undefined) this.gunzip.write(bytes);
    else this.deliver(bytes);
  }

  private deliver(bytes: Buffer): void {
    if (!this.isStopped) this.request.onBody(bytes);
  }

  /** The framing says the body is complete. */
  private endOfBody(): void {
    this.phase = { kind: 'done' };
    if (this.gunzip !== undefined) this.gunzip.end();
    else this.stop(undefined);
  }

  /** A body that breaks its own framing: Go's reader returns what it had and an error. */
  private breakBody(): void {
    this.stop(undefined);
  }

  private onClose(): void {
    if (this.isStopped) return;
    if (this.phase.kind === 'head') {
      const hasBytes = this.phase.bytes > 0;
      this.stop({ text: hasBytes ? 'unexpected EOF' : 'EOF' });
      return;
    }
    // A body cut short (or read to the close) ends here. Unpacking, gunzip first flushes what
    // arrived; its end (or error) stops the exchange.
    if (this.gunzip !== undefined) {
      if (this.phase.kind !== 'done') this.endOfBody();
      return;
    }
    this.stop(undefined);
  }

  /** Ends the exchange: the socket goes, the head (if not sent) becomes `failure`, the body ends. */
  private stop(failure: ProbeFailure | undefined): void {
    if (this.isStopped) return;
    this.isStopped = true;
    this.request.signal.removeEventListener('abort', this.onAbort);
    this.phase = { kind: 'done' };
    this.socket?.destroy();
    if (this.gunzip !== undefined) {
      const gunzip = this.gunzip;
      this.gunzip = undefined;
      gunzip.removeAllListeners('data');
      gunzip.destroy();
    }
    if (this.settle !== undefined) this.resolveOnce({ failure: failure ?? { text: 'EOF' } });
    this.finishBody();
  }

  private resolveOnce(result: { head: ProbeHead } | { failure: ProbeFailure }): void {
    const settle = this.settle;
    this.settle = undefined;
    settle?.(result);
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

interface ParsedHead {
  readonly statusCode: number;
  readonly status: string;
  readonly headers: Map<string, string>;
}

/** ReadResponse's checks: a status line `HTTP/1.x NNN reason` and `Name: value` fields. */
function parseHead(text: string): ParsedHead | string {
  const lines = text.split('\r\n');
  const statusLine = lines[0] ?? '';
  const match = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  if (match === null) return `net/http: HTTP/1.x transport connection broken: malformed HTTP response ${JSON.stringify(statusLine)}`;
  const code = match[1] ?? '';
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return `net/http: HTTP/1.x transport connection broken: malformed MIME header line: ${line}`;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  return { statusCode: Number(code), status: match[2] === undefined ? code : `${code} ${match[2]}`, headers };
}
