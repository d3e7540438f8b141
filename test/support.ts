// Shared helpers for tests that use real sockets and processes. No fixed sleeps: everything
// waits for a condition with a deadline. Also the seeded PRNG that the randomized tests and the
// benchmarks share, so a failing seed replays the same sequence everywhere.

import { request } from 'node:http';
import { createServer } from 'node:net';
import type { CheckClock, CheckTimer } from '../lib/checks.js';

/** A TCP port that was free a moment ago on 127.0.0.1 (the kernel picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** `-serf-lan-port` and `-serf-wan-port` flags with free ports, so test agents never share 8301/8302. */
export async function gossipPortArgs(): Promise<string[]> {
  return ['-serf-lan-port', String(await freePort()), '-serf-wan-port', String(await freePort())];
}

/** Polls `condition` until it returns a value other than undefined, or fails after the deadline. */
export async function waitFor<T>(what: string, condition: () => Promise<T | undefined> | T | undefined, deadlineMs = 10_000): Promise<T> {
  const giveUpAt = Date.now() + deadlineMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > giveUpAt) {
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface HttpReply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One HTTP request without keep-alive, so tests leave no sockets behind. */
export function httpRequest(port: number, method: string, path: string, host = '127.0.0.1'): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, method, path, agent: false, headers: { Connection: 'close' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** mulberry32, seeded: the same generator the simulated disk uses (lib/rng.ts). */
export { seededRng as mulberry32 } from '../lib/rng.js';

/** A Fisher-Yates shuffle of a copy of `items`, drawing one number from `random` for every position but the first. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const result = items.slice();
  for (let index = result.length - 1; index > 0; index--) {
    const other = Math.floor(random() * (index + 1));
    [result[index], result[other]] = [result[other]!, result[index]!];
  }
  return result;
}

/** Timers fire only in advance(), in due order. */
export class ManualClock implements CheckClock {
  private now = 0;
  private timers: { atMs: number; callback: () => void; isCancelled: boolean }[] = [];

  nowMs(): number {
    return this.now;
  }

  setTimeout(callback: () => void, ms: number): CheckTimer {
    const timer = { atMs: this.now + ms, callback, isCancelled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.isCancelled = true) };
  }

  /** Timers neither fired nor cancelled. */
  pendingCount(): number {
    return this.timers.filter((timer) => !timer.isCancelled).length;
  }

  advanceTo(ms: number): void {
    for (;;) {
      const due = this.timers.filter((timer) => !timer.isCancelled && timer.atMs <= ms).sort((a, b) => a.atMs - b.atMs)[0];
      if (due === undefined) break;
      due.isCancelled = true;
      this.now = due.atMs;
      due.callback();
    }
    this.now = ms;
  }
}
