// The gossip transport: the thin I/O shell around the pure memberlist core (lib/swim.ts).
//
// memberlist listens on one port for both UDP (probes, acks, gossip) and TCP (push/pull state
// exchanges, TCP fallback pings, reliable user messages); Consul's LAN pool uses 8301 and its WAN
// pool 8302. This module binds both, feeds every datagram and stream to the core with the
// current time, carries out the effects the core returns (datagrams to send, streams to open),
// and drives the core's timers with one timer armed at the core's next deadline.
//
// Streams: one exchange per connection, as memberlist does. An outgoing stream writes its bytes
// and reads the peer's answer until the peer closes (memberlist's acceptor handles one message
// and closes) or the effect's timeout passes; a 'userMsg' stream only writes. An incoming stream
// is read until the core has a whole message, answered, and closed; it is dropped after the
// core's TCP timeout or past GOSSIP_STREAM_BYTES_MAX.
//
// SerfPool puts the transport, the memberlist core and the serf core together: one Consul
// gossip pool (LAN or WAN) with Consul's memberlist profile and serf configuration.
//
// Not here: protocol decisions (lib/swim.ts), serf semantics (lib/serf.ts), what the agent does
// with members (lib/agent.ts).
//
// Invariants: the core is called only from this event loop, with a non-decreasing nowMs; at
// most one timer is armed; every socket opened is closed by close(); a datagram or stream that
// fails never throws out of a socket callback (it is logged at debug and counted).
//
// References: hashicorp/memberlist net_transport.go (one UDP and one TCP listener on the same
// port, UDP read buffer 65536), net.go (handleConn, sendAndReceiveState, readStream).

import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIPv4, isIPv6, createServer, connect, type Server, type Socket } from 'node:net';
import type { Keyring } from './gossipcrypto.js';
import type { Logger } from './log.js';
import { consulSerfConfig, SerfNode, type MergeDelegate, type SerfEvent } from './serf.js';
import { CONSUL_DELEGATE_VERSIONS, lanConfig, SwimNode, wanConfig, type SwimAddress, type SwimConfig, type SwimEffect } from './swim.js';

// ---------------------------------------------------------------------------------------------
// Types

/** What the transport needs of the core: SwimNode's I/O surface. */
export type GossipCore = Pick<SwimNode, 'tick' | 'nextDeadlineMs' | 'onPacket' | 'onStream' | 'onStreamReply' | 'drainOutbox'>;

export interface GossipTransportOptions {
  /** The address to bind (bind_addr; "0.0.0.0" binds every IPv4 address). */
  readonly bindHost: string;
  /** serf_lan (8301) or serf_wan (8302); 0 picks a free port (tests). */
  readonly port: number;
  readonly logger: Logger;
  /** The core's TCP timeout for incoming streams (memberlist TCPTimeout). */
  readonly streamTimeoutMs: number;
  /** Injected for tests; Date.now by default. */
  readonly nowMs?: () => number;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** memberlist's UDP read buffer: no datagram we accept is larger. */
export const GOSSIP_DATAGRAM_BYTES_MAX = 65536;
/** An incoming or outgoing stream larger than this is cut (memberlist refuses > 20 MiB encrypted streams). */
export const GOSSIP_STREAM_BYTES_MAX = 24 * 1024 * 1024;
/** Incoming TCP connections served at once; more are closed at once (memberlist drops the 128th push/pull). */
export const GOSSIP_STREAMS_IN_MAX = 128;
/** Peers whose last stream error is kept (for join error messages). */
export const GOSSIP_STREAM_ERRORS_KEPT = 256;
/** The core's timer is re-armed no later than this, so a missed deadline cannot stall it for long. */
export const GOSSIP_TICK_MS_MAX = 1_000;

// ---------------------------------------------------------------------------------------------
// Exported API

/** A bound gossip port: UDP and TCP listeners driving one core. */
export class GossipTransport {
  private readonly udp: UdpSocket;
  private readonly tcp: Server;
  private readonly nowMs: () => number;
  private readonly streams = new Set<Socket>();
  private timer: NodeJS.Timeout | undefined;
  /** Invariant: the nowMs last given to the core; never goes back. */
  private lastNowMs = 0;
  private isClosed = false;
  private core: GossipCore | undefined;
  /** Outgoing exchanges not finished yet (a join waits for its push/pulls). */
  private outgoingInFlight = 0;
  /** The last failure of an outgoing exchange per peer address (`host:port`), for join errors. */
  readonly lastStreamErrors = new Map<string, string>();
  readonly counters = { datagramsIn: 0, datagramsOut: 0, datagramErrors: 0, streamsIn: 0, streamsOut: 0, streamErrors: 0, streamsRefused: 0 };

  private constructor(
    private readonly options: GossipTransportOptions,
    private readonly udpPort: number,
    udp: UdpSocket,
    tcp: Server,
  ) {
    this.udp = udp;
    this.tcp = tcp;
    this.nowMs = options.nowMs ?? Date.now;
  }

  /**
   * Binds TCP first (so port 0 picks one free port), then UDP on the same port. Rejects with the
   * bind error (EADDRINUSE...) and leaves nothing open.
   */
  static async listen(options: GossipTransportOptions): Promise<GossipTransport> {
    const tcp = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(options.port, options.bindHost, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    const port = (tcp.address() as { port: number }).port;
    const udp = createSocket({ type: isIPv6(options.bindHost) ? 'udp6' : 'udp4', recvBufferSize: 2 * 1024 * 1024 });
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, options.bindHost, () => {
          udp.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      tcp.close();
      udp.close();
      throw error;
    }
    return new GossipTransport(options, port, udp, tcp);
  }

  /** The bound port (UDP and TCP). */
  get port(): number {
    return this.udpPort;
  }

  /** Outgoing exchanges (push/pulls, TCP pings) still running. */
  get streamsInFlight(): number {
    return this.outgoingInFlight;
  }

  /** Starts feeding the core: datagrams, streams and its timers. Call once. */
  start(core: GossipCore): void {
    if (this.core !== undefined) throw new Error('gossip transport already started');
    this.core = core;
    this.udp.on('message', (bytes, remote) => this.onDatagram(bytes, remote.address, remote.port));
    this.udp.on('error', (error) => this.options.logger.warn('gossip UDP socket error', { error: error.message }));
    this.tcp.on('connection', (socket) => this.onIncomingStream(socket));
    this.tcp.on('error', (error) => this.options.logger.warn('gossip TCP listener error', { error: error.message }));
    this.run(() => undefined);
  }

  /**
   * Runs `action` against the core at the current time, then carries out the effects and re-arms
   * the timer: every entry into the core goes through here (agent calls such as join and leave too).
   */
  run<T>(action: (nowMs: number) => T): T {
    const core = this.requireCore();
    const nowMs = this.now();
    const result = action(nowMs);
    this.flush(core);
    return result;
  }

  /** Closes the listeners and every stream; the core is not called again. */
  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    clearTimeout(this.timer);
    for (const socket of this.streams) socket.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
    ]);
  }

  // -------------------------------------------------------------------------------------------
  // Private: the core's clock and effects

  private now(): number {
    this.lastNowMs = Math.max(this.lastNowMs, this.nowMs());
    return this.lastNowMs;
  }

  private requireCore(): GossipCore {
    if (this.core === undefined) throw new Error('gossip transport not started');
    return this.core;
  }

  /** Ticks the core, carries out its effects, and arms the timer for its next deadline. */
  private flush(core: GossipCore): void {
    if (this.isClosed) return;
    core.tick(this.now());
    for (const effect of core.drainOutbox()) this.perform(effect);
    clearTimeout(this.timer);
    const delayMs = Math.min(GOSSIP_TICK_MS_MAX, Math.max(0, core.nextDeadlineMs() - this.now()));
    this.timer = setTimeout(() => this.flush(core), delayMs);
    this.timer.unref();
  }

  private perform(effect: SwimEffect): void {
    if (effect.kind === 'packet') return this.sendDatagram(effect.to, effect.bytes);
    this.openStream(effect);
  }

  private sendDatagram(to: SwimAddress, bytes: Uint8Array): void {
    const host = addressText(to.addr);
    if (host === undefined) return void this.counters.datagramErrors++;
    this.counters.datagramsOut++;
    this.udp.send(bytes, to.port, host, (error) => {
      if (error === null || error === undefined) return;
      this.counters.datagramErrors++;
      this.options.logger.debug('gossip datagram not sent', { to: `${host}:${to.port}`, error: error.message });
    });
  }

  private onDatagram(bytes: Buffer, host: string, port: number): void {
    if (this.isClosed) return;
    const from = swimAddress(host, port);
    if (from === undefined || bytes.length > GOSSIP_DATAGRAM_BYTES_MAX) return void this.counters.datagramErrors++;
    this.counters.datagramsIn++;
    this.run((nowMs) => this.requireCore().onPacket(from, bytes, nowMs));
  }

  // -------------------------------------------------------------------------------------------
  // Private: streams

  /** An outgoing exchange: write, then read until the peer closes (or only write, for userMsg). */
  private openStream(effect: Extract<SwimEffect, { kind: 'stream' }>): void {
    const host = addressText(effect.to.addr);
    this.outgoingInFlight++;
    const settle = onceReply((reply) => {
      this.outgoingInFlight--;
      if (reply instanceof Error) {
        if (this.lastStreamErrors.size >= GOSSIP_STREAM_ERRORS_KEPT) this.lastStreamErrors.clear();
        this.lastStreamErrors.set(`${host}:${effect.to.port}`, reply.message);
      }
      if (!this.isClosed) this.run((nowMs) => this.requireCore().onStreamReply(effect.id, reply, nowMs));
    });
    if (host === undefined) return settle(new Error('unusable peer address'));
    this.counters.streamsOut++;
    const socket = connect({ host, port: effect.to.port });
    this.streams.add(socket);
    const chunks: Buffer[] = [];
    let received = 0;
    const timer = setTimeout(() => fail(new Error(`stream to ${host}:${effect.to.port} timed out after ${effect.timeoutMs} ms`)), effect.timeoutMs);
    timer.unref();
    const fail = (error: Error): void => {
      this.counters.streamErrors++;
      finish(error);
    };
    const finish = (reply: Uint8Array | Error): void => {
      clearTimeout(timer);
      this.streams.delete(socket);
      socket.destroy();
      settle(reply);
    };
    socket.on('connect', () => {
      socket.write(effect.bytes);
      if (effect.purpose === 'userMsg') socket.end(() => finish(new Uint8Array(0)));
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > GOSSIP_STREAM_BYTES_MAX) return fail(new Error('stream reply too large'));
      chunks.push(chunk);
    });
    socket.on('end', () => finish(Buffer.concat(chunks)));
    socket.on('error', (error) => fail(error));
    socket.on('close', () => finish(new Error('stream closed before an answer')));
  }

  /** An incoming exchange: read until the core has a whole message, answer, close. */
  private onIncomingStream(socket: Socket): void {
    if (this.isClosed || this.streams.size >= GOSSIP_STREAMS_IN_MAX) {
      this.counters.streamsRefused++;
      return void socket.destroy();
    }
    const from = swimAddress(socket.remoteAddress ?? '', socket.remotePort ?? 0);
    if (from === undefined) return void socket.destroy();
    this.counters.streamsIn++;
    this.streams.add(socket);
    let buffered = Buffer.alloc(0);
    let isDone = false;
    const timer = setTimeout(() => close(), this.options.streamTimeoutMs);
    timer.unref();
    const close = (): void => {
      isDone = true;
      clearTimeout(timer);
      this.streams.delete(socket);
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      if (isDone) return;
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length > GOSSIP_STREAM_BYTES_MAX) {
        this.counters.streamErrors++;
        return close();
      }
      const outcome = this.run((nowMs) => this.requireCore().onStream(from, buffered, nowMs));
      if (outcome === 'incomplete') return;
      isDone = true;
      if (outcome instanceof Error) {
        this.counters.streamErrors++;
        this.options.logger.debug('gossip stream refused', { from: `${socket.remoteAddress}:${socket.remotePort}`, error: outcome.message });
        return close();
      }
      clearTimeout(timer);
      if (outcome.reply === undefined) return close();
      socket.end(outcome.reply, () => close());
    });
    socket.on('end', () => {
      if (!isDone) close();
    });
    socket.on('error', () => close());
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

/** hashicorp/go-multierror's text for a list of errors, as Consul prints joins' and keyrings'. */
export function multiErrorText(errors: readonly string[]): string {
  return `${errors.length} error${errors.length === 1 ? '' : 's'} occurred:\n${errors.map((error) => `\t* ${error}`).join('\n')}\n\n`;
}

/** A socket's peer as memberlist carries addresses: 4 bytes for IPv4, 16 for IPv6. */
export function swimAddress(host: string, port: number): SwimAddress | undefined {
  const mapped = host.startsWith('::ffff:') && isIPv4(host.slice(7)) ? host.slice(7) : host;
  if (isIPv4(mapped)) return { addr: Uint8Array.from(mapped.split('.').map(Number)), port };
  if (!isIPv6(mapped)) return undefined;
  return { addr: ipv6Bytes(mapped), port };
}

/** The text form of 4- or 16-byte address bytes (an IPv4-mapped IPv6 address as IPv4). */
export function addressText(addr: Uint8Array): string | undefined {
  if (addr.length === 4) return Array.from(addr).join('.');
  if (addr.length !== 16) return undefined;
  const isMapped = addr.subarray(0, 10).every((byte) => byte === 0) && addr[10] === 0xff && addr[11] === 0xff;
  if (isMapped) return Array.from(addr.subarray(12)).join('.');
  const groups: string[] = [];
  for (let index = 0; index < 16; index += 2) groups.push(((addr[index]! << 8) | addr[index + 1]!).toString(16));
  return groups.join(':');
}

function ipv6Bytes(text: string): Uint8Array {
  const [head = '', tail = ''] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const headGroups = parse(head);
  const tailGroups = text.includes('::') ? parse(tail) : [];
  const groups = [...headGroups, ...new Array<number>(8 - headGroups.length - tailGroups.length).fill(0), ...tailGroups];
  const bytes = new Uint8Array(16);
  groups.forEach((group, index) => {
    bytes[index * 2] = group >> 8;
    bytes[index * 2 + 1] = group & 0xff;
  });
  return bytes;
}

/** Wraps a reply callback so that only its first call counts (a stream can end and error). */
function onceReply(callback: (reply: Uint8Array | Error) => void): (reply: Uint8Array | Error) => void {
  let isCalled = false;
  return (reply) => {
    if (isCalled) return;
    isCalled = true;
    callback(reply);
  };
}

// ---------------------------------------------------------------------------------------------
// A serf pool: the transport, the memberlist core and the serf core together

export interface SerfPoolOptions {
  readonly bindHost: string;
  /** serf_lan (8301) or serf_wan (8302); 0 picks a free port (tests). */
  readonly port: number;
  /** The address other members reach us at (advertise); the bound one by default. */
  readonly advertiseHost?: string;
  readonly nodeName: string;
  readonly tags: ReadonlyMap<string, string>;
  readonly pool: 'lan' | 'wan';
  readonly keyring?: Keyring;
  /** encrypt_verify_incoming / encrypt_verify_outgoing (both default true in Consul). */
  readonly verifyIncoming?: boolean;
  readonly verifyOutgoing?: boolean;
  readonly logger: Logger;
  /** Every serf event (member changes, user events, queries, keyring changes), in order. */
  readonly onEvent?: (event: SerfEvent) => void;
  /** Overrides of the memberlist profile (tests shorten the intervals). */
  readonly memberlist?: Partial<SwimConfig>;
  readonly rng?: () => number;
  /** Consul's merge delegate for this pool: an error text refuses a joining cluster or an alive. */
  readonly merge?: MergeDelegate;
}

/**
 * One gossip pool (Consul's LAN or WAN serf): memberlist and serf cores over one bound port.
 * Every call into the cores goes through the transport's run(), so effects and timers follow.
 */
/** How often joinAndWait looks at the join's exchanges. */
const JOIN_POLL_MS = 10;

export class SerfPool {
  private joinedSeen = 0;

  private constructor(
    readonly transport: GossipTransport,
    readonly swim: SwimNode,
    readonly serf: SerfNode,
    private readonly onEvent: ((event: SerfEvent) => void) | undefined,
  ) {}

  static async start(options: SerfPoolOptions): Promise<SerfPool> {
    const profile = options.pool === 'lan' ? lanConfig : wanConfig;
    const transport = await GossipTransport.listen({ bindHost: options.bindHost, port: options.port, logger: options.logger, streamTimeoutMs: profile('', { addr: new Uint8Array(4), port: 0 }).tcpTimeoutMs });
    const address = swimAddress(options.advertiseHost ?? options.bindHost, transport.port);
    if (address === undefined) {
      await transport.close();
      throw new Error(`gossip advertise address is not an IP address: ${options.advertiseHost ?? options.bindHost}`);
    }
    const rng = options.rng ?? Math.random;
    const swimConfig: SwimConfig = {
      ...profile(options.nodeName, address),
      delegateVersions: CONSUL_DELEGATE_VERSIONS,
      keyring: options.keyring,
      verifyIncoming: options.keyring !== undefined && (options.verifyIncoming ?? true),
      verifyOutgoing: options.keyring !== undefined && (options.verifyOutgoing ?? true),
      ...options.memberlist,
    };
    let swim: SwimNode | undefined;
    const nowMs = Date.now();
    const serf = new SerfNode(consulSerfConfig(options.nodeName, options.tags, options.pool), {
      rng,
      keyring: options.keyring,
      ...(options.merge ? { merge: options.merge } : {}),
      createHost: (delegate) => (swim = new SwimNode(swimConfig, delegate, rng, (count) => randomBytes(count), nowMs)),
    }, nowMs);
    const pool = new SerfPool(transport, swim!, serf, options.onEvent);
    transport.start(pool.core());
    return pool;
  }

  /** serf Join: push/pulls with each address; the join intent follows the first success. */
  join(addresses: readonly SwimAddress[]): void {
    this.transport.run((nowMs) => {
      const error = this.serf.join(addresses, false, nowMs);
      if (error !== null) throw error;
    });
  }

  /**
   * serf Join, waited for: resolves with the number of addresses that answered the join
   * push/pull, or rejects with memberlist's "Failed to join ..." text when none did.
   */
  async joinAndWait(addresses: readonly SwimAddress[], deadlineMs: number): Promise<number> {
    const before = this.swim.joinedCount();
    this.join(addresses);
    const giveUpAt = Date.now() + deadlineMs;
    while (this.transport.streamsInFlight > 0 && Date.now() < giveUpAt) await new Promise((resolveWait) => setTimeout(resolveWait, JOIN_POLL_MS));
    const joined = this.swim.joinedCount() - before;
    if (joined > 0) return joined;
    const failures = addresses.map((address) => {
      const text = `${addressText(address.addr) ?? '?'}:${address.port}`;
      return `Failed to join ${text}: ${this.swim.joinRefusal(address) ?? this.transport.lastStreamErrors.get(text) ?? 'no answer'}`;
    });
    throw new Error(multiErrorText(failures));
  }

  /** Starts serf's graceful leave; resolves when it is done (or failed) or after deadlineMs. */
  async leave(deadlineMs: number): Promise<void> {
    this.transport.run((nowMs) => this.serf.leave(nowMs));
    const giveUpAt = Date.now() + deadlineMs;
    while (Date.now() < giveUpAt) {
      const { phase } = this.serf.leaveStatus();
      if (phase === 'done' || phase === 'failed') return;
      await new Promise((resolveWait) => setTimeout(resolveWait, 20));
    }
  }

  userEvent(name: string, payload: Uint8Array, coalesce: boolean): void {
    this.transport.run((nowMs) => {
      const error = this.serf.userEvent(name, payload, coalesce, nowMs);
      if (error !== null) throw error;
    });
  }

  async close(): Promise<void> {
    this.serf.shutdown();
    await this.transport.close();
  }

  /** The cores as the transport drives them: memberlist for I/O, serf's timers beside it. */
  private core(): GossipCore {
    const { swim, serf } = this;
    return {
      tick: (nowMs) => {
        swim.tick(nowMs);
        serf.tick(nowMs);
        this.afterCores(nowMs);
      },
      nextDeadlineMs: () => Math.min(swim.nextDeadlineMs(), serf.nextDeadlineMs()),
      onPacket: (from, bytes, nowMs) => swim.onPacket(from, bytes, nowMs),
      onStream: (from, bytes, nowMs) => swim.onStream(from, bytes, nowMs),
      onStreamReply: (id, reply, nowMs) => swim.onStreamReply(id, reply, nowMs),
      drainOutbox: () => swim.drainOutbox(),
    };
  }

  /** Tells serf about finished joins and hands its events out. */
  private afterCores(nowMs: number): void {
    const joined = this.swim.joinedCount();
    if (joined > this.joinedSeen) {
      this.serf.joinFinished(joined - this.joinedSeen, nowMs);
      this.joinedSeen = joined;
    }
    for (const event of this.serf.drainEvents()) this.onEvent?.(event);
  }
}
