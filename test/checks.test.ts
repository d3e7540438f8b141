// Health check runners (lib/checks.ts). Thresholds, TTL and scheduling run on a fake clock with
// fake probes; the probes run against real servers started here on 127.0.0.1, and every server
// is closed at the end. No sleeps: conditions are awaited with deadlines.

import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createSecureServer as createSecureH2Server, createServer as createH2Server, type Http2SecureServer, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { gzipSync } from 'node:zlib';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  CheckError,
  decodeHealthCheckResponse,
  effectiveOutputMaxBytes,
  encodeHealthCheckRequest,
  probeGrpc,
  probeH2ping,
  probeHttp,
  probeTcp,
  probeUdp,
  randomStaggerMs,
  alignedDelayMs,
  REAL_CLOCK,
  runScript,
  startIntervalCheck,
  startPeriodic,
  startTtlCheck,
  StatusHandler,
  truncateTtlOutput,
  type CheckClock,
  type CheckOutcome,
  type CheckTimer,
} from '../lib/checks.js';
import type { CheckDefinition, CheckStatus } from '../lib/definitions.js';
import { createLogger, MemorySink, nullLogger } from '../lib/log.js';
import { seededRng } from '../lib/rng.js';
import { freePort, waitFor } from './support.js';

// ---- Fixtures ----------------------------------------------------------------------------------

const MS = 1e6;

/** A self-signed P-256 certificate for localhost and 127.0.0.1 (test only, valid until 2126). */
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgg5TDjz14pni4Kzcq
1nm6CeZuatdbwn4/gPIgb5qkxPihRANCAARoXAY+C/pCBh2Cscz8aTIpr0zCGt/B
FZaVFiJui1b4K6bJwpYl2DdQxvF6rZcXw7C5WZJX2yKfAnIdt5GGDXI/
-----END PRIVATE KEY-----`;
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBnjCCAUWgAwIBAgIUJEqNVxAxsT6YiLCIX2mX2yviNm0wCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLY2hlY2tzLXRlc3QwIBcNMjYxMTIyMDgxOTEzWhgPMjEyNjEw
MjkwODE5MTNaMBYxFDASBgNVBAMMC2NoZWNrcy10ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEaFwGPgv6QgYdgrHM/GkyKa9MwhrfwRWWlRYibotW+CumycKW
Jdg3UMbxeq2XF8OwuVmSV9sinwJyHbeRhg1yP6NvMG0wHQYDVR0OBBYEFLHISg82
UuwVlkrvp+Y254TzP/IWMB8GA1UdIwQYMBaAFLHISg82UuwVlkrvp+Y254TzP/IW
MA8GA1UdEwEB/wQFMAMBAf8wGgYDVR0RBBMwEYIJbG9jYWxob3N0hwR/AAABMAoG
CCqGSM49BAMCA0cAMEQCIDLfcZxWJvuVDFTAenwpdLC39HTCMxQeGKXZ+6Th65pk
AiBAFFZ46LDiouCEM3p5+oV1F6RyD58r/eNfLCAz1lehfw==
-----END CERTIFICATE-----`;

function definition(overrides: Partial<CheckDefinition>): CheckDefinition {
  return {
    id: 'c1', name: 'c1', notes: '', serviceId: '', status: '', args: [], http: '', method: '', header: {}, body: '',
    disableRedirects: false, tcp: '', tcpUseTls: false, udp: '', grpc: '', grpcUseTls: false, h2ping: '', h2pingUseTls: false,
    osService: '', dockerContainerId: '', shell: '', aliasNode: '', aliasService: '', tlsServerName: '', tlsSkipVerify: false,
    ttlNanos: 0, intervalNanos: 10_000 * MS, timeoutNanos: 0, deregisterCriticalServiceAfterNanos: 0, successBeforePassing: 0,
    failuresBeforeWarning: 0, failuresBeforeCritical: 0, outputMaxSize: 0, token: '',
    ...overrides,
  };
}

interface Update {
  readonly id: string;
  readonly status: CheckStatus;
  readonly output: string;
}

function recorder(): { updates: Update[]; sink: (id: string, status: CheckStatus, output: string) => void } {
  const updates: Update[] = [];
  return { updates, sink: (id, status, output) => updates.push({ id, status, output }) };
}

interface FakeTimer {
  readonly atMs: number;
  readonly delayMs: number;
  readonly callback: () => void;
  isCancelled: boolean;
}

/** A manual clock: timers fire only in advance(), in due order; delays asked for are recorded. */
class FakeClock implements CheckClock {
  private now = 0;
  readonly timers: FakeTimer[] = [];

  nowMs(): number {
    return this.now;
  }

  setTimeout(callback: () => void, ms: number): CheckTimer {
    const timer: FakeTimer = { atMs: this.now + ms, delayMs: ms, callback, isCancelled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.isCancelled = true) };
  }

  /** Delays of every timer requested so far. */
  delays(): number[] {
    return this.timers.map((timer) => timer.delayMs);
  }

  pending(): FakeTimer[] {
    return this.timers.filter((timer) => !timer.isCancelled && !fired.has(timer));
  }

  /** Moves time forward by `ms`, firing due timers and letting promise chains settle after each. */
  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      const due = this.pending()
        .filter((timer) => timer.atMs <= until)
        .sort((a, b) => a.atMs - b.atMs)[0];
      if (due === undefined) break;
      this.now = due.atMs;
      fired.add(due);
      due.callback();
      await settle();
    }
    this.now = until;
    await settle();
  }
}

const fired = new WeakSet<FakeTimer>();

/** Lets pending promise callbacks run (several hops of then-chains). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

function memoryLogger(): { logger: ReturnType<typeof nullLogger>; sink: MemorySink } {
  const sink = new MemorySink();
  return { logger: createLogger({ level: 'trace', json: false, sink, nowMs: () => 0 }), sink };
}

// ---- StatusHandler -------------------------------------------------------------------------------

function runHandler(success: number, warning: number, criticalAfter: number, inputs: CheckStatus[]): string[] {
  const { updates, sink } = recorder();
  const handler = new StatusHandler('c1', sink, success, warning, criticalAfter, nullLogger());
  const seen: string[] = [];
  for (const status of inputs) {
    const before = updates.length;
    handler.updateCheck(status, `out-${status}`);
    seen.push(updates.length === before ? '-' : (updates.at(-1)?.status ?? '?'));
  }
  return seen;
}

describe('StatusHandler follows Consul thresholds', () => {
  test('zero thresholds forward every result as is', () => {
    assert.deepEqual(runHandler(0, 0, 0, ['passing', 'critical', 'warning', 'critical']), ['passing', 'critical', 'warning', 'critical']);
  });

  test('counters start at the threshold: the first result applies immediately', () => {
    assert.deepEqual(runHandler(3, 3, 3, ['critical']), ['critical']);
    assert.deepEqual(runHandler(3, 3, 3, ['passing']), ['passing']);
  });

  test('success_before_passing holds passing back until that many consecutive successes', () => {
    assert.deepEqual(runHandler(2, 0, 0, ['passing', 'critical', 'passing', 'passing', 'passing']), ['passing', 'critical', '-', 'passing', 'passing']);
  });

  test('warning counts as a success and resets the failure counter', () => {
    assert.deepEqual(runHandler(0, 2, 2, ['critical', 'warning', 'critical', 'critical']), ['critical', 'warning', '-', 'critical']);
  });

  test('between failures_before_warning and failures_before_critical the status reported is warning', () => {
    assert.deepEqual(
      runHandler(0, 1, 3, ['passing', 'critical', 'critical', 'critical', 'critical', 'passing']),
      ['passing', 'warning', 'warning', 'critical', 'critical', 'passing'],
    );
  });

  test('a warning threshold of 0 with a critical threshold reports warning at once (the agent defaults it first)', () => {
    assert.deepEqual(runHandler(0, 0, 3, ['passing', 'critical', 'critical', 'critical']), ['passing', 'warning', 'warning', 'critical']);
  });

  test('the output of a held-back critical is forwarded with the warning', () => {
    const { updates, sink } = recorder();
    const handler = new StatusHandler('c9', sink, 0, 1, 2, nullLogger());
    handler.updateCheck('passing', 'fine');
    handler.updateCheck('critical', 'boom');
    assert.deepEqual(updates, [
      { id: 'c9', status: 'passing', output: 'fine' },
      { id: 'c9', status: 'warning', output: 'boom' },
    ]);
  });
});

// ---- TTL ---------------------------------------------------------------------------------------

describe('TTL checks', () => {
  const ttlOptions = (clock: FakeClock, sink: (id: string, status: CheckStatus, output: string) => void, outputMaxBytes = 4096) => ({
    checkId: 'ttl1',
    definition: definition({ ttlNanos: 5000 * MS, intervalNanos: 0 }),
    sink,
    clock,
    rng: seededRng(1),
    logger: nullLogger(),
    outputMaxBytes,
    allowScripts: false,
  });

  test('no update within the TTL turns the check critical "TTL expired"', async () => {
    const clock = new FakeClock();
    const { updates, sink } = recorder();
    const check = startTtlCheck(ttlOptions(clock, sink));
    await clock.advance(4999);
    assert.deepEqual(updates, []);
    await clock.advance(1);
    assert.deepEqual(updates, [{ id: 'ttl1', status: 'critical', output: 'TTL expired' }]);
    check.stop();
  });

  test('an update re-arms the timer and its output follows the expiry message', async () => {
    const clock = new FakeClock();
    const { updates, sink } = recorder();
    const check = startTtlCheck(ttlOptions(clock, sink));
    await clock.advance(4000);
    check.setStatus('passing', 'all good');
    await clock.advance(4000);
    assert.deepEqual(updates, [{ id: 'ttl1', status: 'passing', output: 'all good' }]);
    await clock.advance(1000);
    assert.deepEqual(updates.at(-1), { id: 'ttl1', status: 'critical', output: 'TTL expired (last output before timeout follows): all good' });
    check.stop();
  });

  test('an expired TTL fires once and is re-armed only by the next update', async () => {
    const clock = new FakeClock();
    const { updates, sink } = recorder();
    const check = startTtlCheck(ttlOptions(clock, sink));
    await clock.advance(20_000);
    assert.equal(updates.length, 1);
    check.setStatus('warning', '');
    await clock.advance(5000);
    assert.deepEqual(updates.map((u) => [u.status, u.output]), [['critical', 'TTL expired'], ['warning', ''], ['critical', 'TTL expired']]);
    check.stop();
  });

  test('notes longer than the output cap are cut as CheckTTL.SetStatus does', async () => {
    const clock = new FakeClock();
    const { updates, sink } = recorder();
    const check = startTtlCheck(ttlOptions(clock, sink, 4));
    assert.equal(check.setStatus('passing', 'abcdefghij'), 'abcd ... (captured 4 of 10 bytes)');
    assert.equal(updates[0]?.output, 'abcd ... (captured 4 of 10 bytes)');
    check.stop();
    assert.equal(truncateTtlOutput('abc', 3), 'abc');
    assert.equal(truncateTtlOutput('x'.repeat(5000), 0), `${'x'.repeat(4096)} ... (captured 4096 of 5000 bytes)`);
  });

  test('after stop() neither the timer nor setStatus reaches the sink', async () => {
    const clock = new FakeClock();
    const { updates, sink } = recorder();
    const check = startTtlCheck(ttlOptions(clock, sink));
    check.stop();
    check.setStatus('passing', 'late');
    await clock.advance(60_000);
    assert.deepEqual(updates, []);
  });
});

// ---- Scheduling --------------------------------------------------------------------------------

/** A probe whose runs the test resolves by hand. */
function manualProbe(): { probe: (signal: AbortSignal) => Promise<CheckOutcome>; runs: { resolve: (o: CheckOutcome) => void; signal: AbortSignal }[] } {
  const runs: { resolve: (o: CheckOutcome) => void; signal: AbortSignal }[] = [];
  return {
    runs,
    probe: (signal) => new Promise<CheckOutcome>((resolve) => runs.push({ resolve, signal })),
  };
}

describe('interval scheduling', () => {
  test('the first run waits a random stagger in [0, interval)', () => {
    assert.equal(randomStaggerMs(10_000, () => 0), 0);
    assert.equal(randomStaggerMs(10_000, () => 0.25), 2500);
    assert.equal(randomStaggerMs(10_000, () => 0.999999999), 9999);
    assert.equal(randomStaggerMs(0, () => 0.5), 0);
    const rng = seededRng(7);
    for (let i = 0; i < 1000; i++) {
      const stagger = randomStaggerMs(1500, rng);
      assert.ok(stagger >= 0 && stagger < 1500 && Number.isInteger(stagger));
    }
  });

  test('runs land on a grid of 1% of the interval (1 ms to 100 ms), never earlier than asked', () => {
    assert.equal(alignedDelayMs(0, 2500, 10_000), 2500);
    assert.equal(alignedDelayMs(1234, 10_000, 10_000), 10_066); // lands at 11,300
    assert.equal(alignedDelayMs(1234, 10_000, 60_000), 10_066); // the tick stays at 100 ms
    assert.equal(alignedDelayMs(1234, 1000, 1000), 1006); // 10 ms tick: lands at 2,240
    assert.equal(alignedDelayMs(7, 0, 50), 0); // 1 ms tick: unchanged
    const rng = seededRng(3);
    for (let i = 0; i < 1000; i++) {
      const now = Math.floor(rng() * 1e9);
      const interval = 1000 + Math.floor(rng() * 100_000);
      const delay = Math.floor(rng() * interval);
      const aligned = alignedDelayMs(now, delay, interval);
      assert.ok(aligned >= delay && aligned - delay < Math.max(1, Math.min(100, interval / 100)));
      assert.equal((now + aligned) % Math.min(100, Math.floor(interval / 100)), 0);
    }
  });

  test('runs follow the stagger, then one interval after each run finishes (never overlapping)', async () => {
    const clock = new FakeClock();
    const { probe, runs } = manualProbe();
    const outcomes: CheckOutcome[] = [];
    const check = startPeriodic(probe, { checkId: 'p', intervalMs: 10_000, clock, rng: () => 0.25, logger: nullLogger(), onOutcome: (o) => outcomes.push(o) });
    assert.deepEqual(clock.delays(), [2500]);
    await clock.advance(2499);
    assert.equal(runs.length, 0);
    await clock.advance(1);
    assert.equal(runs.length, 1);
    // A slow probe: no new timer until it finishes.
    await clock.advance(30_000);
    assert.equal(runs.length, 1);
    assert.deepEqual(clock.delays(), [2500]);
    runs[0]?.resolve({ status: 'passing', output: 'one' });
    await settle();
    assert.deepEqual(outcomes, [{ status: 'passing', output: 'one' }]);
    assert.deepEqual(clock.delays(), [2500, 10_000]);
    await clock.advance(10_000);
    assert.equal(runs.length, 2);
    check.stop();
  });

  test('stop() aborts the in-flight probe and drops its late result', async () => {
    const clock = new FakeClock();
    const { probe, runs } = manualProbe();
    const outcomes: CheckOutcome[] = [];
    const check = startPeriodic(probe, { checkId: 'p', intervalMs: 1000, clock, rng: () => 0, logger: nullLogger(), onOutcome: (o) => outcomes.push(o) });
    await clock.advance(0);
    assert.equal(runs.length, 1);
    check.stop();
    assert.equal(runs[0]?.signal.aborted, true);
    runs[0]?.resolve({ status: 'critical', output: 'late' });
    await settle();
    await clock.advance(10_000);
    assert.deepEqual(outcomes, []);
    assert.equal(runs.length, 1);
  });

  test('stop() before the first run cancels the stagger timer', async () => {
    const clock = new FakeClock();
    const { probe, runs } = manualProbe();
    const check = startPeriodic(probe, { checkId: 'p', intervalMs: 1000, clock, rng: () => 0.5, logger: nullLogger(), onOutcome: () => undefined });
    check.stop();
    await clock.advance(5000);
    assert.equal(runs.length, 0);
  });

  test('a probe that rejects counts as critical and the schedule goes on', async () => {
    const clock = new FakeClock();
    const outcomes: CheckOutcome[] = [];
    let calls = 0;
    const check = startPeriodic(
      () => {
        calls++;
        return Promise.reject(new Error('bug'));
      },
      { checkId: 'p', intervalMs: 1000, clock, rng: () => 0, logger: nullLogger(), onOutcome: (o) => outcomes.push(o) },
    );
    await clock.advance(1000);
    assert.equal(calls, 2);
    assert.deepEqual(outcomes[0], { status: 'critical', output: 'bug' });
    check.stop();
  });
});

describe('startIntervalCheck applies the agent rules', () => {
  test('an interval below 1s is raised to 1s with a warning', async () => {
    const port = await freePort();
    const clock = new FakeClock();
    const { logger, sink: logSink } = memoryLogger();
    const { updates, sink } = recorder();
    const check = startIntervalCheck({
      checkId: 'fast', definition: definition({ tcp: `127.0.0.1:${port}`, intervalNanos: 100 * MS, timeoutNanos: 1000 * MS }),
      sink, clock, rng: () => 0.5, logger, outputMaxBytes: 0, allowScripts: false,
    });
    assert.deepEqual(clock.delays(), [500]);
    assert.ok(logSink.lines.some((line) => line.includes('check has interval below minimum') && line.includes('minimum_interval=1s')), logSink.lines.join(''));
    await clock.advance(500);
    await waitFor('the first result', () => (updates.length > 0 ? true : undefined));
    assert.deepEqual(updates[0], { id: 'fast', status: 'critical', output: `dial tcp 127.0.0.1:${port}: connect: connection refused` });
    await waitFor('the next timer', () => (clock.delays().length === 2 ? true : undefined));
    assert.deepEqual(clock.delays(), [500, 1000]);
    check.stop();
  });

  test('failures_before_warning defaults to failures_before_critical', async () => {
    const server: TcpServer = createTcpServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const clock = new FakeClock();
    const { updates, sink } = recorder();
    const check = startIntervalCheck({
      checkId: 'fbc', definition: definition({ tcp: `127.0.0.1:${port}`, intervalNanos: 1000 * MS, timeoutNanos: 1000 * MS, failuresBeforeCritical: 2 }),
      sink, clock, rng: () => 0, logger: nullLogger(), outputMaxBytes: 0, allowScripts: false,
    });
    const runOnce = async (expectedTimers: number): Promise<void> => {
      await clock.advance(1000);
      await waitFor(`run ${expectedTimers - 1} to finish`, () => (clock.delays().length >= expectedTimers ? true : undefined));
    };
    await clock.advance(0);
    await waitFor('run 1 to finish', () => (clock.delays().length >= 2 ? true : undefined));
    await new Promise<void>((resolve) => server.close(() => resolve()));
    // Run 2 fails once: with failures_before_warning 0 it would report warning; defaulted to 2 it reports nothing.
    await runOnce(3);
    assert.deepEqual(updates.map((u) => u.status), ['passing']);
    await runOnce(4);
    assert.deepEqual(updates.map((u) => u.status), ['passing', 'critical']);
    check.stop();
  });

  test('script checks need allowScripts; other kinds are refused with Consul messages', () => {
    const base = { checkId: 's', sink: () => undefined, clock: new FakeClock(), rng: () => 0, logger: nullLogger(), outputMaxBytes: 0 };
    assert.throws(
      () => startIntervalCheck({ ...base, definition: definition({ args: ['/bin/true'] }), allowScripts: false }),
      (error: unknown) => error instanceof CheckError && error.code === 'ERR_SCRIPTS_DISABLED' && error.message.startsWith('Scripts are disabled on this agent'),
    );
    assert.throws(
      () => startIntervalCheck({ ...base, definition: definition({ aliasService: 'web', intervalNanos: 0 }), allowScripts: true }),
      (error: unknown) => error instanceof CheckError && error.code === 'ERR_CHECK_TYPE' && error.message === 'Check type is not valid',
    );
  });

  test('the output cap is the agent cap unless the definition sets a smaller positive one', () => {
    assert.equal(effectiveOutputMaxBytes(0, 0), 4096);
    assert.equal(effectiveOutputMaxBytes(8192, 0), 8192);
    assert.equal(effectiveOutputMaxBytes(8192, 100), 100);
    assert.equal(effectiveOutputMaxBytes(100, 8192), 100);
  });

  test('a script timeout reaches the sink past the thresholds', async () => {
    const clock = new FakeClock();
    const { updates, sink } = recorder();
    const check = startIntervalCheck({
      checkId: 'slow', definition: definition({ args: ['/bin/sh', '-c', 'exec sleep 30'], timeoutNanos: 200 * MS, successBeforePassing: 5, failuresBeforeCritical: 5 }),
      sink, clock, rng: () => 0, logger: nullLogger(), outputMaxBytes: 0, allowScripts: true,
    });
    // With failures_before_critical 5 a filtered failure would count but report nothing (no wait).
    await clock.advance(0);
    await waitFor('the timeout result', () => (updates.length === 1 ? true : undefined));
    assert.deepEqual(updates[0], { id: 'slow', status: 'critical', output: 'Timed out (200ms) running check' });
    check.stop();
  });
});

// ---- HTTP ----------------------------------------------------------------------------------------

describe('HTTP probe', () => {
  let server: HttpServer;
  let base = '';
  const flips: number[] = [];
  let lastRequest: { method: string; headers: Record<string, unknown>; body: string } | undefined;

  before(async () => {
    server = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        lastRequest = { method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
        const path = req.url ?? '';
        if (path === '/flip') {
          res.writeHead(flips.shift() ?? 200);
          res.end('flip body');
        } else if (path === '/redirect') {
          res.writeHead(302, { Location: '/ok' });
          res.end();
        } else if (path.startsWith('/loop')) {
          res.writeHead(302, { Location: `/loop${path.length}` });
          res.end();
        } else if (path === '/hang') {
          // Never answers: the probe's timeout must end it.
        } else if (path === '/gzip') {
          res.writeHead(200, { 'Content-Encoding': 'gzip' });
          res.end(gzipSync('unpacked'));
        } else if (path === '/big') {
          res.writeHead(200);
          res.end('a'.repeat(100) + 'TAIL');
        } else {
          res.writeHead(200);
          res.end('ok');
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });
  after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('2xx is passing, 429 warning, anything else critical, with Consul output', async () => {
    flips.push(200, 429, 503);
    const def = definition({ http: `${base}/flip` });
    assert.deepEqual(await probeHttp(def, 2000, 4096), { status: 'passing', output: `HTTP GET ${base}/flip: 200 OK Output: flip body` });
    assert.deepEqual(await probeHttp(def, 2000, 4096), { status: 'warning', output: `HTTP GET ${base}/flip: 429 Too Many Requests Output: flip body` });
    assert.deepEqual(await probeHttp(def, 2000, 4096), { status: 'critical', output: `HTTP GET ${base}/flip: 503 Service Unavailable Output: flip body` });
  });

  test('default headers, method, body and Host override are sent; no keep-alive', async () => {
    const def = definition({ http: `${base}/echo`, method: 'POST', body: 'ping', header: { Host: ['example.test'], 'X-Multi': ['a', 'b'] } });
    const outcome = await probeHttp(def, 2000, 4096);
    assert.equal(outcome.output, `HTTP POST ${base}/echo: 200 OK Output: ok`);
    assert.equal(lastRequest?.method, 'POST');
    assert.equal(lastRequest?.body, 'ping');
    assert.equal(lastRequest?.headers['host'], 'example.test');
    assert.equal(lastRequest?.headers['user-agent'], 'Consul Health Check');
    assert.equal(lastRequest?.headers['accept'], 'text/plain, text/*, */*');
    assert.equal(lastRequest?.headers['x-multi'], 'a, b');
    assert.equal(lastRequest?.headers['connection'], 'close');
    await probeHttp(definition({ http: `${base}/echo`, header: { 'User-Agent': ['mine'], Accept: ['application/json'] } }), 2000, 4096);
    assert.equal(lastRequest?.headers['user-agent'], 'mine');
    assert.equal(lastRequest?.headers['accept'], 'application/json');
  });

  test('redirects are followed unless disableRedirects; the output names the URL as configured', async () => {
    assert.deepEqual(await probeHttp(definition({ http: `${base}/redirect` }), 2000, 4096), { status: 'passing', output: `HTTP GET ${base}/redirect: 200 OK Output: ok` });
    assert.deepEqual(await probeHttp(definition({ http: `${base}/redirect`, disableRedirects: true }), 2000, 4096), {
      status: 'critical',
      output: `HTTP GET ${base}/redirect: 302 Found Output: `,
    });
  });

  test('redirect loops stop as Go client does', async () => {
    const outcome = await probeHttp(definition({ http: `${base}/loop` }), 2000, 4096);
    assert.equal(outcome.status, 'critical');
    assert.match(outcome.output, /^Get "\/loop\d+": stopped after 10 redirects$/);
  });

  test('the body is cut to its last outputMaxBytes bytes', async () => {
    const outcome = await probeHttp(definition({ http: `${base}/big` }), 2000, 4);
    assert.equal(outcome.output, `HTTP GET ${base}/big: 200 OK Output: TAIL`);
  });

  test('no answer within the timeout is critical with Go client timeout text', async () => {
    const outcome = await probeHttp(definition({ http: `${base}/hang` }), 200, 4096);
    assert.deepEqual(outcome, { status: 'critical', output: `Get "${base}/hang": context deadline exceeded (Client.Timeout exceeded while awaiting headers)` });
  });

  test('a gzip body is unpacked as Go transport does', async () => {
    const outcome = await probeHttp(definition({ http: `${base}/gzip` }), 2000, 4096);
    assert.equal(outcome.output, `HTTP GET ${base}/gzip: 200 OK Output: unpacked`);
    assert.equal(lastRequest?.headers['accept-encoding'], 'gzip');
  });

  test('https with tls_skip_verify passes; without it an untrusted certificate is critical', async () => {
    const secure = createHttpsServer({ key: TEST_KEY, cert: TEST_CERT }, (_req, res) => res.end('secure'));
    await new Promise<void>((resolve) => secure.listen(0, '127.0.0.1', resolve));
    const address = secure.address();
    const url = `https://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`;
    try {
      assert.deepEqual(await probeHttp(definition({ http: url, tlsSkipVerify: true }), 2000, 4096), { status: 'passing', output: `HTTP GET ${url}: 200 OK Output: secure` });
      const refused = await probeHttp(definition({ http: url }), 2000, 4096);
      assert.equal(refused.status, 'critical');
      assert.equal(refused.output, `Get "${url}": tls: failed to verify certificate: x509: certificate signed by unknown authority`);
    } finally {
      secure.closeAllConnections();
      await new Promise<void>((resolve) => secure.close(() => resolve()));
    }
  });

  test('a refused connection is critical with a Go-like error', async () => {
    const port = await freePort();
    const outcome = await probeHttp(definition({ http: `http://127.0.0.1:${port}/x` }), 2000, 4096);
    assert.deepEqual(outcome, { status: 'critical', output: `Get "http://127.0.0.1:${port}/x": dial tcp 127.0.0.1:${port}: connect: connection refused` });
  });
});

// ---- TCP -----------------------------------------------------------------------------------------

describe('TCP probe', () => {
  test('a listener passes "TCP connect <addr>: Success"; once closed the probe is critical', async () => {
    const server: TcpServer = createTcpServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const addr = `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    assert.deepEqual(await probeTcp(definition({ tcp: addr }), 2000), { status: 'passing', output: `TCP connect ${addr}: Success` });
    await new Promise<void>((resolve) => server.close(() => resolve()));
    assert.deepEqual(await probeTcp(definition({ tcp: addr }), 2000), { status: 'critical', output: `dial tcp ${addr}: connect: connection refused` });
  });

  test('tcp_use_tls does a TLS handshake: "TCP+TLS connect"; an untrusted certificate is critical', async () => {
    const server = createTlsServer({ key: TEST_KEY, cert: TEST_CERT }, (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const addr = `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    try {
      assert.deepEqual(await probeTcp(definition({ tcp: addr, tcpUseTls: true, tlsSkipVerify: true }), 2000), { status: 'passing', output: `TCP+TLS connect ${addr}: Success` });
      assert.deepEqual(await probeTcp(definition({ tcp: addr, tcpUseTls: true }), 2000), {
        status: 'critical',
        output: 'tls: failed to verify certificate: x509: certificate signed by unknown authority',
      });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('an address without a port is critical with Go text', async () => {
    assert.deepEqual(await probeTcp(definition({ tcp: '127.0.0.1' }), 2000), { status: 'critical', output: 'dial tcp: address 127.0.0.1: missing port in address' });
  });
});

// ---- UDP -----------------------------------------------------------------------------------------

async function udpBind(onMessage?: (socket: UdpSocket, message: Buffer, port: number, address: string) => void): Promise<{ socket: UdpSocket; port: number }> {
  const socket = createSocket('udp4');
  if (onMessage) socket.on('message', (message, remote) => onMessage(socket, message, remote.port, remote.address));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, port: socket.address().port };
}

describe('UDP probe', () => {
  test('a reply passes "UDP connect <addr>: Success"', async () => {
    const echo = await udpBind((socket, message, port, address) => socket.send(message.length ? message : Buffer.from('x'), port, address));
    try {
      assert.deepEqual(await probeUdp(definition({ udp: `127.0.0.1:${echo.port}` }), 2000), { status: 'passing', output: `UDP connect 127.0.0.1:${echo.port}: Success` });
    } finally {
      echo.socket.close();
    }
  });

  test('no reply within the timeout passes, as Consul treats the read timeout', async () => {
    const silent = await udpBind();
    try {
      assert.deepEqual(await probeUdp(definition({ udp: `127.0.0.1:${silent.port}` }), 200), { status: 'passing', output: `UDP connect 127.0.0.1:${silent.port}: Success` });
    } finally {
      silent.socket.close();
    }
  });

  test('a port with nothing bound (ICMP unreachable) is critical', async () => {
    const probe = await udpBind();
    const port = probe.port;
    await new Promise<void>((resolve) => probe.socket.close(resolve));
    const outcome = await probeUdp(definition({ udp: `127.0.0.1:${port}` }), 2000);
    assert.equal(outcome.status, 'critical');
    assert.match(outcome.output, new RegExp(`^read udp 127\\.0\\.0\\.1:\\d+->127\\.0\\.0\\.1:${port}: read: connection refused$`));
  });
});

// ---- gRPC and H2PING -------------------------------------------------------------------------------

/** grpc.health.v1 server: "" and "web" SERVING, "down" NOT_SERVING, anything else NOT_FOUND. */
function grpcHealthServer(): Http2Server {
  const server = createH2Server();
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      const request = Buffer.concat(chunks);
      const service = request.length > 7 ? request.subarray(7).toString() : '';
      assert.equal(headers[':path'], '/grpc.health.v1.Health/Check');
      if (service !== '' && service !== 'web' && service !== 'down') {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'unknown%20service' }, { endStream: true });
        return;
      }
      const status = service === 'down' ? 2 : 1;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 2, 0x08, status]));
    });
  });
  return server;
}

async function listenH2(server: Http2Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

function closeH2(server: Http2Server): Promise<void> {
  return new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('gRPC probe', () => {
  let server: Http2Server;
  let port = 0;
  before(async () => {
    server = grpcHealthServer();
    port = await listenH2(server);
  });
  after(() => closeH2(server));

  test('SERVING passes "gRPC check <target>: success"', async () => {
    assert.deepEqual(await probeGrpc(definition({ grpc: `127.0.0.1:${port}` }), 2000), { status: 'passing', output: `gRPC check 127.0.0.1:${port}: success` });
    assert.deepEqual(await probeGrpc(definition({ grpc: `127.0.0.1:${port}/web` }), 2000), { status: 'passing', output: `gRPC check 127.0.0.1:${port}/web: success` });
  });

  test('NOT_SERVING is critical with the serving status', async () => {
    assert.deepEqual(await probeGrpc(definition({ grpc: `127.0.0.1:${port}/down` }), 2000), {
      status: 'critical',
      output: `gRPC 127.0.0.1:${port}/down serving status: NOT_SERVING`,
    });
  });

  test('a gRPC error status is critical with grpc-go text', async () => {
    assert.deepEqual(await probeGrpc(definition({ grpc: `127.0.0.1:${port}/nope` }), 2000), {
      status: 'critical',
      output: 'rpc error: code = NotFound desc = unknown service',
    });
  });

  test('a refused connection is critical Unavailable', async () => {
    const closed = await freePort();
    assert.deepEqual(await probeGrpc(definition({ grpc: `127.0.0.1:${closed}` }), 2000), {
      status: 'critical',
      output: `rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:${closed}: connect: connection refused"`,
    });
  });

  test('health messages encode and decode; malformed frames become coded errors, not exceptions', () => {
    assert.deepEqual([...encodeHealthCheckRequest('')], [0, 0, 0, 0, 0]);
    assert.deepEqual([...encodeHealthCheckRequest('web')], [0, 0, 0, 0, 5, 0x0a, 3, 0x77, 0x65, 0x62]);
    assert.deepEqual(decodeHealthCheckResponse(Buffer.from([0, 0, 0, 0, 2, 0x08, 1])), { servingStatus: 1 });
    assert.deepEqual(decodeHealthCheckResponse(Buffer.from([0, 0, 0, 0, 0])), { servingStatus: 0 });
    // Unknown length-delimited field before the status is skipped.
    assert.deepEqual(decodeHealthCheckResponse(Buffer.from([0, 0, 0, 0, 5, 0x12, 1, 0x41, 0x08, 2])), { servingStatus: 2 });
    for (const bad of [[0, 0], [0, 0, 0, 0, 9, 0x08], [0, 0, 0, 0, 1, 0x08], [0, 0, 0, 0, 3, 0x12, 9, 1], [0, 0, 0, 0, 1, 0x0f], [1, 0, 0, 0, 0]]) {
      const reply = decodeHealthCheckResponse(Buffer.from(bad));
      assert.ok('error' in reply && reply.error.startsWith('rpc error: code = Internal'), JSON.stringify(reply));
    }
  });
});

describe('H2PING probe', () => {
  test('h2ping_use_tls negotiates h2 over TLS', async () => {
    const server: Http2SecureServer = createSecureH2Server({ key: TEST_KEY, cert: TEST_CERT });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const target = `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    try {
      assert.deepEqual(await probeH2ping(definition({ h2ping: target, h2pingUseTls: true, tlsSkipVerify: true }), 2000), { status: 'passing', output: 'HTTP2 ping was successful' });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('a server that does not speak HTTP/2 fails the ping', async () => {
    const server: TcpServer = createTcpServer((socket) => socket.resume().end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const target = `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    try {
      const outcome = await probeH2ping(definition({ h2ping: target }), 2000);
      assert.equal(outcome.status, 'critical');
      assert.match(outcome.output, /^HTTP2 ping failed: /);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('an h2c server answers the PING; a closed port is critical', async () => {
    const server = createH2Server();
    const port = await listenH2(server);
    try {
      assert.deepEqual(await probeH2ping(definition({ h2ping: `127.0.0.1:${port}` }), 2000), { status: 'passing', output: 'HTTP2 ping was successful' });
    } finally {
      await closeH2(server);
    }
    assert.deepEqual(await probeH2ping(definition({ h2ping: `127.0.0.1:${port}` }), 2000), {
      status: 'critical',
      output: `Failed to dial to 127.0.0.1:${port}: dial tcp 127.0.0.1:${port}: connect: connection refused`,
    });
  });
});

// ---- Robustness --------------------------------------------------------------------------------

describe('probes resolve, never reject', () => {
  test('odd definitions come back critical with an explanation', async () => {
    const cases: [string, Promise<CheckOutcome>][] = [
      ['bad method', probeHttp(definition({ http: 'http://127.0.0.1:1/', method: 'GE T' }), 500, 4096)],
      ['bad header name', probeHttp(definition({ http: 'http://127.0.0.1:1/', header: { 'Bad Name': ['x'] } }), 500, 4096)],
      ['bad url', probeHttp(definition({ http: 'not a url' }), 500, 4096)],
      ['bad scheme', probeHttp(definition({ http: 'ftp://127.0.0.1/' }), 500, 4096)],
      ['tcp port 0', probeTcp(definition({ tcp: '127.0.0.1:0' }), 500)],
      ['tcp bad port', probeTcp(definition({ tcp: '127.0.0.1:99999' }), 500)],
      ['udp no port', probeUdp(definition({ udp: 'localhost' }), 500)],
      ['udp port 0', probeUdp(definition({ udp: '127.0.0.1:0' }), 500)],
      ['grpc bad port', probeGrpc(definition({ grpc: '127.0.0.1:99999/x' }), 500)],
      ['h2ping no port', probeH2ping(definition({ h2ping: '127.0.0.1' }), 500)],
      ['script NUL', runScript(['/bin/echo', 'a\0b'], 500, 4096)],
      ['script empty', runScript([], 500, 4096)],
    ];
    for (const [name, pending] of cases) {
      const outcome = await pending;
      assert.equal(outcome.status, 'critical', name);
      assert.ok(outcome.output.length > 0, name);
    }
    assert.equal((await cases[0]![1]).output, 'net/http: invalid method "GE T"');
    assert.equal((await cases[2]![1]).output, 'parse "not a url": invalid URI for request');
    assert.equal((await cases[3]![1]).output, 'Get "ftp://127.0.0.1/": unsupported protocol scheme "ftp"');
    assert.equal((await cases[5]![1]).output, 'dial tcp: address 99999: invalid port');
    assert.equal((await cases[6]![1]).output, 'dial udp: address localhost: missing port in address');
  });
});

// ---- Scripts ---------------------------------------------------------------------------------------

/** Whether a process still runs; a zombie waiting for PID 1 to reap it counts as dead. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/\) Z /.test(stat)) return false;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

describe('REAL_CLOCK', () => {
  test('timers fire and can be cancelled', async () => {
    let fired = 0;
    REAL_CLOCK.setTimeout(() => fired++, 1);
    REAL_CLOCK.setTimeout(() => fired += 10, 1).cancel();
    await waitFor('the timer', () => (fired > 0 ? true : undefined), 2000);
    assert.equal(fired, 1);
    assert.ok(Math.abs(REAL_CLOCK.nowMs() - Date.now()) < 1000);
  });
});

describe('script checks', () => {
  test('exit 0 is passing, 1 warning, anything else critical; stdout and stderr are combined', async () => {
    assert.deepEqual(await runScript(['/bin/sh', '-c', 'echo out; echo err >&2'], 5000, 4096), { status: 'passing', output: 'out\nerr\n' });
    assert.deepEqual(await runScript(['/bin/sh', '-c', 'exit 1'], 5000, 4096), { status: 'warning', output: '' });
    assert.deepEqual(await runScript(['/bin/sh', '-c', 'echo bad; exit 2'], 5000, 4096), { status: 'critical', output: 'bad\n' });
  });

  test('long output keeps its tail behind the "Captured N of M bytes" note', async () => {
    assert.deepEqual(await runScript(['/bin/sh', '-c', 'printf abcdefghij'], 5000, 4), { status: 'passing', output: 'Captured 4 of 10 bytes\n...\nghij' });
  });

  test('arguments go to the program as is, without a shell', async () => {
    assert.deepEqual(await runScript(['/bin/echo', '$HOME', '*'], 5000, 4096), { status: 'passing', output: '$HOME *\n' });
  });

  test('a missing program is critical with Go exec text', async () => {
    const outcome = await runScript(['/no/such/program'], 5000, 4096);
    assert.equal(outcome.status, 'critical');
    assert.equal(outcome.output, 'fork/exec /no/such/program: no such file or directory');
  });

  test('a timed-out script is killed with its process group and reported critical', async () => {
    const outcome = await runScript(['/bin/sh', '-c', 'sleep 30 & echo "child $!"; wait'], 300, 4096);
    assert.equal(outcome.status, 'critical');
    const match = /^Timed out \(300ms\) running check\n\nchild (\d+)\n$/.exec(outcome.output);
    assert.ok(match, JSON.stringify(outcome.output));
    const childPid = Number(match[1]);
    await waitFor('the grandchild to die', () => (isAlive(childPid) ? undefined : true), 5000);
  });

  test('stop() of a running script check kills its process group and reports nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'checks-test-'));
    const pidFile = join(dir, 'pid');
    try {
      const clock = new FakeClock();
      const { updates, sink } = recorder();
      const check = startIntervalCheck({
        checkId: 'script', definition: definition({ args: ['/bin/sh', '-c', `sleep 30 & echo $! > ${pidFile}; wait`] }),
        sink, clock, rng: () => 0, logger: nullLogger(), outputMaxBytes: 0, allowScripts: true,
      });
      await clock.advance(0);
      const pid = await waitFor('the script to start', () => {
        const text = existsSync(pidFile) ? readFileSync(pidFile, 'utf8').trim() : '';
        return text === '' ? undefined : Number(text);
      });
      check.stop();
      await waitFor('the script child to die', () => (isAlive(pid) ? undefined : true), 5000);
      await settle();
      assert.deepEqual(updates, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('aborting a run kills the script', async () => {
    const controller = new AbortController();
    const running = runScript(['/bin/sh', '-c', 'echo started; exec sleep 30'], 30_000, 4096, controller.signal);
    controller.abort();
    const outcome = await running;
    assert.equal(outcome.status, 'critical');
  });
});
