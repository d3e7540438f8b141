// Recursion to upstream DNS servers (`recursors`): names outside Consul's domain are forwarded,
// and hostnames that services and nodes use as addresses are looked up, as Consul's DNS server
// does with miekg/dns's client.
//
// forward() sends the client's query bytes unchanged (same ID, flags and EDNS) to each recursor
// in turn, over the transport the client used, and relays the first reply that decodes with
// NOERROR or NXDOMAIN (or is truncated, so the client retries over TCP); a recursor that times
// out, answers something else or answers garbage is skipped. The order is the configured one,
// or a fresh random permutation per query with `recursor_strategy = "random"`. lookup() asks an
// A question over UDP and returns the first reply, whatever its rcode (resolveCNAME).
//
// Each exchange uses its own socket (a fresh source port and ID space, as miekg's Exchange),
// ignores replies with another ID (late answers to earlier queries), and gives up after
// `recursor_timeout` (2s).
//
// References: Consul agent/dns.go (handleRecurse, resolveCNAME), structs.RecursorStrategy;
// miekg/dns client.go (Exchange); RFC 7766 (TCP framing).

import { createSocket } from 'node:dgram';
import { connect, isIP } from 'node:net';
import { decodeMessage, DnsWireError, encodeMessage, queryMessage, RCODE, RR_CLASS, type DnsMessage } from './dnswire.js';
import type { DnsTransport } from './dns.js';
import type { Logger } from './log.js';
import type { Rng } from './rng.js';

// ---------------------------------------------------------------------------------------------
// Exported types

export interface RecursorOptions {
  /** `ip:port` or `[ipv6]:port`, as lib/config.ts normalises them. */
  readonly recursors: readonly string[];
  readonly strategy: 'sequential' | 'random';
  readonly timeoutMs: number;
  readonly rng: Rng;
  readonly logger: Logger;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Upstream exchanges in flight at once; past it, queries fail at once (SERVFAIL) instead of piling up sockets. */
export const RECURSIONS_IN_FLIGHT_MAX = 1_024;
/** The largest DNS message (a TCP frame's 16-bit length). */
export const RECURSOR_REPLY_BYTES_MAX = 65_535;

// ---------------------------------------------------------------------------------------------
// Exported API

export class Recursor {
  private readonly options: RecursorOptions;
  private readonly targets: readonly { readonly host: string; readonly port: number }[];
  private inFlight = 0;

  constructor(options: RecursorOptions) {
    this.options = options;
    this.targets = options.recursors.map(parseHostPort);
  }

  /** Relays `query` to the recursors; the first acceptable reply's bytes, or undefined when all failed. */
  async forward(query: Uint8Array, transport: DnsTransport): Promise<Uint8Array | undefined> {
    const id = readId(query);
    for (const index of this.order()) {
      const target = this.targets[index];
      if (target === undefined) continue;
      try {
        const bytes = await this.exchange(query, id, target, transport);
        const reply = decodeMessage(bytes);
        const { rcode } = reply.header;
        if (rcode === RCODE.NOERROR || rcode === RCODE.NXDOMAIN || reply.header.isTruncated) return bytes;
        this.options.logger.debug('recurse failed for question', { recursor: describe(target), rcode });
      } catch (error) {
        this.options.logger.error('recurse failed', { recursor: describe(target), error: errorText(error) });
      }
    }
    return undefined;
  }

  /** Asks the recursors for `name` (type `type`, over UDP); the first decodable reply, or undefined. */
  async lookup(name: string, type: number): Promise<DnsMessage | undefined> {
    const id = Math.floor(this.options.rng() * 0x10000) & 0xffff;
    const query = encodeMessage(queryMessage(id, { name, type, class: RR_CLASS.IN }));
    for (const index of this.order()) {
      const target = this.targets[index];
      if (target === undefined) continue;
      try {
        return decodeMessage(await this.exchange(query, id, target, 'udp'));
      } catch (error) {
        this.options.logger.error('cname recurse failed for name', { name, error: errorText(error) });
      }
    }
    this.options.logger.error('all resolvers failed for name', { name });
    return undefined;
  }

  /** RecursorStrategy.Indexes: the configured order, or a random permutation. */
  private order(): number[] {
    const indexes = this.targets.map((_, index) => index);
    if (this.options.strategy === 'random') {
      for (let i = indexes.length - 1; i > 0; i--) {
        const j = Math.floor(this.options.rng() * (i + 1));
        [indexes[i], indexes[j]] = [indexes[j] as number, indexes[i] as number];
      }
    }
    return indexes;
  }

  private async exchange(query: Uint8Array, id: number, target: { host: string; port: number }, transport: DnsTransport): Promise<Uint8Array> {
    if (this.inFlight >= RECURSIONS_IN_FLIGHT_MAX) throw new Error('too many recursive queries in flight');
    this.inFlight++;
    try {
      return await (transport === 'udp' ? exchangeUdp(query, id, target, this.options.timeoutMs) : exchangeTcp(query, id, target, this.options.timeoutMs));
    } finally {
      this.inFlight--;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

function parseHostPort(text: string): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (bracketed) return { host: bracketed[1] ?? '', port: Number(bracketed[2]) };
  const colon = text.lastIndexOf(':');
  return { host: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
}

function describe(target: { host: string; port: number }): string {
  return isIP(target.host) === 6 ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
}

function readId(bytes: Uint8Array): number {
  return ((bytes[0] ?? 0) << 8) | (bytes[1] ?? 0);
}

function errorText(error: unknown): string {
  if (error instanceof DnsWireError) return `bad reply: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

function exchangeUdp(query: Uint8Array, id: number, target: { host: string; port: number }, timeoutMs: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIP(target.host) === 6 ? 'udp6' : 'udp4');
    const finish = (error: Error | undefined, reply?: Uint8Array): void => {
      clearTimeout(timer);
      socket.close();
      if (error) reject(error);
      else resolve(reply as Uint8Array);
    };
    const timer = setTimeout(() => finish(new Error(`read udp ${describe(target)}: i/o timeout`)), timeoutMs);
    socket.on('error', (error) => finish(error));
    socket.on('message', (message, remote) => {
      // Only the recursor's answer to this ID counts; anything else is a stray or a late reply.
      if (remote.port !== target.port || message.length < 2 || readId(message) !== id) return;
      finish(undefined, new Uint8Array(message));
    });
    socket.send(query, target.port, target.host, (error) => {
      if (error) finish(error);
    });
  });
}

function exchangeTcp(query: Uint8Array, id: number, target: { host: string; port: number }, timeoutMs: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.host, port: target.port });
    let buffered: Buffer = Buffer.alloc(0);
    let isDone = false;
    const finish = (error: Error | undefined, reply?: Uint8Array): void => {
      if (isDone) return;
      isDone = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(reply as Uint8Array);
    };
    const timer = setTimeout(() => finish(new Error(`read tcp ${describe(target)}: i/o timeout`)), timeoutMs);
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(new Error(`read tcp ${describe(target)}: connection closed`)));
    socket.on('connect', () => {
      const frame = Buffer.allocUnsafe(2 + query.length);
      frame.writeUInt16BE(query.length, 0);
      frame.set(query, 2);
      socket.write(frame);
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) {
          if (buffered.length > 2 + RECURSOR_REPLY_BYTES_MAX) finish(new Error('reply too large'));
          return;
        }
        const message = new Uint8Array(buffered.subarray(2, 2 + length));
        buffered = buffered.subarray(2 + length);
        if (message.length >= 2 && readId(message) === id) {
          finish(undefined, message);
          return;
        }
      }
    });
  });
}
