// Health check runners: the probes Consul's agent runs for the checks registered on it, their
// schedule, and the thresholds between a probe result and the status the agent records.
//
// What it does: HTTP, TCP (optionally TLS), UDP, gRPC (grpc.health.v1) and HTTP/2 PING probes and
// script checks (argv, no shell, own process group), each bounded by a timeout; interval checks
// that first run after a random stagger in [0, interval) and then again one interval after each
// run finishes (so runs never overlap, as in Consul's run loops), each run rounded up onto a shared
// grid of 1% of the interval so that many checks share wake-ups; TTL checks that turn critical
// when no update arrives in time; and Consul's StatusHandler (success_before_passing,
// failures_before_warning, failures_before_critical). The HTTP exchange itself is
// lib/httpprobe.ts; the rules around it (headers, redirects, outputs) are here.
//
// What it does not: store, persist or sync results (the sink does: local agent state), alias
// checks (lib/alias.ts), docker and OS service checks, Connect-exposed check paths, and the agent's own TLS
// configuration (HTTPS/TLS probes verify against Node's default CAs; tls_skip_verify and
// tls_server_name are honoured).
//
// Invariants:
//   - Probes resolve, never reject, and settle within their timeout (plus process exit for scripts).
//   - After stop() no sink call happens: every timer and probe callback re-checks a stopped flag.
//   - Texts that clients see (check Output) are Consul's, byte for byte where Consul's come from
//     its own format strings; Go error texts (dial, TLS, gRPC) are reproduced on a best-effort basis.
//
// References: Consul agent/checks/check.go (CheckMonitor, CheckTTL, CheckHTTP, CheckTCP, CheckUDP,
// CheckH2PING, StatusHandler), agent/checks/grpc.go, agent/agent.go addCheck (interval floor,
// output size cap, failures_before_warning default), docs "Health Checks"; spec consul-api.md §5.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Readable } from 'node:stream';
import type { CheckDefinition, CheckStatus } from './definitions.js';
import { formatDuration, NANOS_PER_MILLI } from './duration.js';
import { headerFieldProblem, sendProbe, type ProbeHead } from './httpprobe.js';
import type { Logger } from './log.js';

/** One result of a probe. */
export interface CheckOutcome {
  readonly status: CheckStatus;
  readonly output: string;
  /**
   * Consul reports a few script outcomes (timeout, failure to start) straight to the agent state,
   * past the StatusHandler; such outcomes set this so the thresholds neither apply nor count them.
   */
  readonly bypassesThresholds?: boolean;
}

/** Where results go: the local agent state (it stores, persists and syncs them). */
export type CheckSink = (checkId: string, status: CheckStatus, output: string) => void;

/** Timers and time, injected so tests run on a fake clock. */
export interface CheckClock {
  nowMs(): number;
  setTimeout(callback: () => void, ms: number): CheckTimer;
}

export interface CheckTimer {
  cancel(): void;
}

export interface CheckRunnerOptions {
  readonly checkId: string;
  /** Exactly one of http/tcp/udp/grpc/h2ping/args/ttl is set (validated earlier). */
  readonly definition: CheckDefinition;
  readonly sink: CheckSink;
  readonly clock: CheckClock;
  /** Uniform in [0, 1): the stagger of the first run. */
  readonly rng: () => number;
  readonly logger: Logger;
  /** Agent-wide cap (check_output_max_size, 0 = default 4096); a smaller positive definition outputMaxSize wins. */
  readonly outputMaxBytes: number;
  /** Whether script checks may run (the caller decides from enable_*_script_checks and the source). */
  readonly allowScripts: boolean;
}

/** A scheduled check. stop() cancels timers and in-flight probes (kills a script's process group). */
export interface RunningCheck {
  stop(): void;
}

/** A TTL check: critical "TTL expired" when no update arrives within the TTL. */
export interface TtlCheck extends RunningCheck {
  /**
   * pass/warn/fail/update: truncates the output as Consul's CheckTTL.SetStatus does, forwards it to
   * the sink, re-arms the TTL timer, and returns the (possibly truncated) output so the caller can
   * persist exactly what was recorded. A no-op after stop().
   */
  setStatus(status: CheckStatus, output: string): string;
}

/** A probe as the scheduler sees it; the signal aborts it when the check stops. */
export type Probe = (signal: AbortSignal) => Promise<CheckOutcome>;

export interface PeriodicOptions {
  readonly checkId: string;
  readonly intervalMs: number;
  readonly clock: CheckClock;
  readonly rng: () => number;
  readonly logger: Logger;
  /** Receives every outcome of a run that finished before stop(). */
  readonly onOutcome: (outcome: CheckOutcome) => void;
}

export type CheckErrorCode = 'ERR_CHECK_TYPE' | 'ERR_SCRIPTS_DISABLED';

/** A check that cannot be started, with Consul's message. The only error this module throws. */
export class CheckError extends Error {
  override readonly name = 'CheckError';
  constructor(
    readonly code: CheckErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ---- Limits ----------------------------------------------------------------------------------

/** Consul's MinInterval: shorter intervals are raised to this (they risk fork-bombing the host). */
export const CHECK_INTERVAL_MS_MIN = 1000;
/** Timeout of HTTP, TCP, UDP, gRPC and H2PING probes when the definition sets none. */
export const CHECK_TIMEOUT_MS_DEFAULT = 10_000;
/** Timeout of script checks when the definition sets none (CheckMonitor). */
export const SCRIPT_TIMEOUT_MS_DEFAULT = 30_000;
/** Consul's DefaultBufSize: check output kept when check_output_max_size is unset. */
export const CHECK_OUTPUT_BYTES_DEFAULT = 4096;
/** Go's http.Client fails a redirect once this many requests were made (so 9 redirects are followed). */
export const HTTP_REDIRECTS_MAX = 10;
/** Bytes of a gRPC health response buffered at most (a real one is a few bytes). */
export const GRPC_RESPONSE_BYTES_MAX = 64 * 1024;
/** Consul's User-Agent for HTTP checks. */
export const HTTP_CHECK_USER_AGENT = 'Consul Health Check';
export const HTTP_CHECK_ACCEPT = 'text/plain, text/*, */*';

/** RFC 9110 token: what Go's NewRequest accepts as a method. */
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const GRPC_HEALTH_PATH = '/grpc.health.v1.Health/Check';
/** grpc.health.v1.HealthCheckResponse.ServingStatus; a wire enum, append-only. */
const GRPC_SERVING_STATUS_NAMES: readonly string[] = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
const GRPC_SERVING = 1;
/** grpc-go's codes.Code names, indexed by code; a wire enum, append-only. */
const GRPC_CODE_NAMES: readonly string[] = [
  'OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists', 'PermissionDenied',
  'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented', 'Internal', 'Unavailable',
  'DataLoss', 'Unauthenticated',
];

/** Go's texts for the errnos a probe meets (syscall.Errno.Error()). */
const ERRNO_TEXTS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by peer',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network is unreachable',
  ETIMEDOUT: 'connection timed out',
  EADDRNOTAVAIL: 'cannot assign requested address',
  EPIPE: 'broken pipe',
  EACCES: 'permission denied',
  ENOENT: 'no such file or directory',
};

// ---- Real clock --------------------------------------------------------------------------------

/** Wall-clock time and unref'd timers: a scheduled check never keeps the process alive. */
export const REAL_CLOCK: CheckClock = {
  nowMs: () => Date.now(),
  setTimeout(callback: () => void, ms: number): CheckTimer {
    const handle = setTimeout(callback, ms);
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};

// ---- Thresholds --------------------------------------------------------------------------------

/**
 * Consul's StatusHandler. Passing and warning results count as successes, critical as failures;
 * each kind resets the other's counter. Both counters start at their threshold, so with zero
 * thresholds (or on the very first result) a result applies at once. A failure at or past
 * failuresBeforeCritical reports critical; at or past failuresBeforeWarning it reports warning;
 * below both, and a success below successBeforePassing, nothing is reported.
 * The agent defaults failuresBeforeWarning to failuresBeforeCritical before constructing one
 * (startIntervalCheck does the same); this class takes the numbers as given.
 */
export class StatusHandler {
  /** Invariant: consecutive successes since the last failure (starts at the threshold). */
  private successCount: number;
  /** Invariant: consecutive failures since the last success (starts at the critical threshold). */
  private failureCount: number;

  constructor(
    private readonly checkId: string,
    private readonly sink: CheckSink,
    private readonly successBeforePassing: number,
    private readonly failuresBeforeWarning: number,
    private readonly failuresBeforeCritical: number,
    private readonly logger: Logger,
  ) {
    this.successCount = successBeforePassing;
    this.failureCount = failuresBeforeCritical;
  }

  /** Counts the result and forwards it (or warning in place of critical) when a threshold is met. */
  updateCheck(status: CheckStatus, output: string): void {
    if (status === 'passing' || status === 'warning') {
      this.successCount++;
      this.failureCount = 0;
      if (this.successCount >= this.successBeforePassing) {
        this.logger.debug('Check status updated', { check: this.checkId, status });
        this.sink(this.checkId, status, output);
        return;
      }
      this.logger.warn('Check passed but has not reached success threshold', {
        check: this.checkId,
        status,
        success_count: this.successCount,
        success_threshold: this.successBeforePassing,
      });
      return;
    }
    this.failureCount++;
    this.successCount = 0;
    if (this.failureCount >= this.failuresBeforeCritical) {
      this.logger.warn('Check is now critical', { check: this.checkId });
      this.sink(this.checkId, status, output);
      return;
    }
    if (this.failureCount >= this.failuresBeforeWarning) {
      this.logger.warn('Check is now warning', { check: this.checkId });
      this.sink(this.checkId, 'warning', output);
      return;
    }
    this.logger.warn('Check failed but has not reached warning/failure threshold', {
      check: this.checkId,
      status,
      failure_count: this.failureCount,
      warning_threshold: this.failuresBeforeWarning,
      failure_threshold: this.failuresBeforeCritical,
    });
  }
}

// ---- Scheduling ----------------------------------------------------------------------------------

/** Consul's lib.RandomStagger: uniform in [0, intervalMs), 0 for a zero interval. */
export function randomStaggerMs(intervalMs: number, rng: () => number): number {
  if (intervalMs <= 0) return 0;
  return Math.min(intervalMs - 1, Math.floor(rng() * intervalMs));
}

/**
 * `delayMs`, lengthened so the run lands on the agent-wide grid of runTickMs(intervalMs). Checks
 * that come due within one tick then share one event-loop wake-up: with thousands of checks the
 * wake-ups, not the probes, are most of the CPU (5,000 HTTP checks at 10 s: 14% of a core with
 * each check on its own timer, 7% on a 50 ms grid; bench/checks.bench.ts). A run moves by less
 * than one tick, at most 1% of its interval.
 */
export function alignedDelayMs(nowMs: number, delayMs: number, intervalMs: number): number {
  const tickMs = runTickMs(intervalMs);
  return Math.ceil((nowMs + delayMs) / tickMs) * tickMs - nowMs;
}

/** The grid step for a check with this interval: 1% of it, between 1 ms and 100 ms. */
function runTickMs(intervalMs: number): number {
  return Math.min(100, Math.max(1, Math.floor(intervalMs / 100)));
}

/** The output cap Consul's agent applies: the agent's (default 4096), or the definition's when positive and smaller. */
export function effectiveOutputMaxBytes(agentOutputMaxBytes: number, definitionOutputMaxSize: number): number {
  const agentCap = agentOutputMaxBytes > 0 ? agentOutputMaxBytes : CHECK_OUTPUT_BYTES_DEFAULT;
  return definitionOutputMaxSize > 0 && agentCap > definitionOutputMaxSize ? definitionOutputMaxSize : agentCap;
}

/**
 * Runs `probe` after a random stagger in [0, interval), then again one interval after each run
 * finishes, as Consul's check loops do (the next timer starts only when check() returns). A probe
 * that rejects despite its contract counts as critical with the error's message.
 */
export function startPeriodic(probe: Probe, options: PeriodicOptions): RunningCheck {
  let isStopped = false;
  let timer: CheckTimer | undefined;
  let inFlight: AbortController | undefined;

  const schedule = (delayMs: number): void => {
    timer = options.clock.setTimeout(run, alignedDelayMs(options.clock.nowMs(), delayMs, options.intervalMs));
  };
  const finish = (outcome: CheckOutcome): void => {
    inFlight = undefined;
    if (isStopped) return;
    options.onOutcome(outcome);
    if (!isStopped) schedule(options.intervalMs);
  };
  function run(): void {
    timer = undefined;
    if (isStopped) return;
    const controller = new AbortController();
    inFlight = controller;
    probe(controller.signal).then(finish, (error: unknown) => {
      options.logger.error('check probe failed unexpectedly', { check: options.checkId, error: String(error) });
      finish({ status: 'critical', output: error instanceof Error ? error.message : String(error) });
    });
  }

  schedule(randomStaggerMs(options.intervalMs, options.rng));
  return {
    stop(): void {
      if (isStopped) return;
      isStopped = true;
      timer?.cancel();
      timer = undefined;
      inFlight?.abort();
      inFlight = undefined;
    },
  };
}

/**
 * Starts an interval check (http, tcp, udp, grpc, h2ping or script) with Consul's agent rules:
 * interval raised to 1s, timeout defaulted, output capped, failures_before_warning defaulted to
 * failures_before_critical, results through a StatusHandler to the sink.
 * Throws CheckError for a definition that is no interval check or a script when scripts are off.
 */
export function startIntervalCheck(options: CheckRunnerOptions): RunningCheck {
  const { definition, checkId, logger } = options;
  let intervalMs = definition.intervalNanos / NANOS_PER_MILLI;
  if (intervalMs < CHECK_INTERVAL_MS_MIN) {
    logger.warn('check has interval below minimum', { check: checkId, minimum_interval: formatDuration(CHECK_INTERVAL_MS_MIN * NANOS_PER_MILLI) });
    intervalMs = CHECK_INTERVAL_MS_MIN;
  }
  const probe = intervalProbe(options);
  const failuresBeforeWarning = definition.failuresBeforeWarning === 0 ? definition.failuresBeforeCritical : definition.failuresBeforeWarning;
  const handler = new StatusHandler(checkId, options.sink, definition.successBeforePassing, failuresBeforeWarning, definition.failuresBeforeCritical, logger);
  return startPeriodic(probe, {
    checkId,
    intervalMs,
    clock: options.clock,
    rng: options.rng,
    logger,
    onOutcome: (outcome) => {
      if (outcome.bypassesThresholds) options.sink(checkId, outcome.status, outcome.output);
      else handler.updateCheck(outcome.status, outcome.output);
    },
  });
}

/** Starts a TTL check: armed now, re-armed by every setStatus, critical on expiry. */
export function startTtlCheck(options: CheckRunnerOptions): TtlCheck {
  const { checkId, clock, logger, sink } = options;
  const ttlMs = options.definition.ttlNanos / NANOS_PER_MILLI;
  const outputMaxBytes = effectiveOutputMaxBytes(options.outputMaxBytes, options.definition.outputMaxSize);
  let isStopped = false;
  let epoch = 0;
  let lastOutput = '';
  let timer: CheckTimer | undefined;

  const arm = (): void => {
    timer?.cancel();
    const armedEpoch = ++epoch;
    timer = clock.setTimeout(() => {
      if (isStopped || armedEpoch !== epoch) return;
      timer = undefined;
      logger.warn('Check missed TTL, is now critical', { check: checkId });
      sink(checkId, 'critical', ttlExpiredOutput(lastOutput));
    }, ttlMs);
  };
  arm();
  return {
    setStatus(status: CheckStatus, output: string): string {
      const recorded = truncateTtlOutput(output, outputMaxBytes);
      if (isStopped) return recorded;
      logger.debug('Check status updated', { check: checkId, status });
      sink(checkId, status, recorded);
      lastOutput = recorded;
      arm();
      return recorded;
    },
    stop(): void {
      isStopped = true;
      epoch++;
      timer?.cancel();
      timer = undefined;
    },
  };
}

/** CheckTTL's expiry output: the last recorded output follows when there is one. */
export function ttlExpiredOutput(lastOutput: string): string {
  return lastOutput === '' ? 'TTL expired' : `TTL expired (last output before timeout follows): ${lastOutput}`;
}

/** CheckTTL.SetStatus truncation: the first N bytes, then " ... (captured N of M bytes)". */
export function truncateTtlOutput(output: string, outputMaxBytes: number): string {
  const cap = outputMaxBytes < 1 ? CHECK_OUTPUT_BYTES_DEFAULT : outputMaxBytes;
  const bytes = Buffer.from(output, 'utf8');
  if (bytes.length <= cap) return output;
  return `${bytes.subarray(0, cap).toString('utf8')} ... (captured ${cap} of ${bytes.length} bytes)`;
}

// ---- Probes ------------------------------------------------------------------------------------

/**
 * CheckHTTP: one request (following redirects like Go's client unless disableRedirects), bounded
 * by timeoutMs including the body. 2xx passing, 429 warning, anything else or a transport error
 * critical. Output `HTTP <METHOD> <url>: <status line> Output: <last outputMaxBytes of the body>`.
 */
export async function probeHttp(definition: CheckDefinition, timeoutMs: number, outputMaxBytes: number, signal?: AbortSignal): Promise<CheckOutcome> {
  const method = definition.method === '' ? 'GET' : definition.method;
  const op = method.slice(0, 1) + method.slice(1).toLowerCase();
  let url: URL;
  try {
    url = new URL(definition.http);
  } catch {
    return critical(`parse ${goQuote(definition.http)}: invalid URI for request`);
  }
  // http.NewRequest refuses a bad method before any I/O, and Consul reports its error as is.
  if (!HTTP_TOKEN.test(method)) return critical(`net/http: invalid method ${goQuote(method)}`);
  const deadline = deadlineSignal(timeoutMs, signal);
  try {
    let hop: HttpHop = { url, urlText: definition.http, method, includeBody: true, hostOverride: headerValue(definition.header, 'host'), referer: undefined };
    for (let redirects = 0; ; redirects++) {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        return critical(`${op} ${goQuote(hop.urlText)}: unsupported protocol scheme ${goQuote(hop.url.protocol.slice(0, -1))}`);
      }
      const tail = new TailBuffer(outputMaxBytes < 1 ? CHECK_OUTPUT_BYTES_DEFAULT : outputMaxBytes);
      const sent = await sendHttp(definition, hop, deadline.signal, (chunk) => tail.write(chunk));
      if ('error' in sent) {
        const reason = deadline.isTimedOut() ? 'context deadline exceeded (Client.Timeout exceeded while awaiting headers)' : sent.error;
        return critical(`${op} ${goQuote(hop.urlText)}: ${reason}`);
      }
      const { head } = sent;
      const next = definition.disableRedirects ? undefined : redirectHop(hop, head);
      if (next === undefined) {
        // Consul logs a body read error and reports what it read so far; so do we (timeouts included).
        await head.bodyDone;
        return { status: httpStatusToHealth(head.statusCode), output: `HTTP ${method} ${definition.http}: ${head.status} Output: ${tail.contents().toString('utf8')}` };
      }
      head.discard();
      if (redirects + 1 >= HTTP_REDIRECTS_MAX) return critical(`${op} ${goQuote(head.header('location') ?? '')}: stopped after ${HTTP_REDIRECTS_MAX} redirects`);
      hop = next;
      url = next.url;
    }
  } finally {
    deadline.dispose();
  }
}

/** CheckTCP: a connection (and TLS handshake when tcpUseTls) within timeoutMs. */
export async function probeTcp(definition: CheckDefinition, timeoutMs: number, signal?: AbortSignal): Promise<CheckOutcome> {
  const useTls = definition.tcpUseTls;
  const dialed = await dial(definition.tcp, timeoutMs, signal, useTls ? tlsOptions(definition, undefined) : undefined);
  if ('error' in dialed) return critical(dialed.error);
  dialed.socket.destroy();
  return passing(`${useTls ? 'TCP+TLS' : 'TCP'} connect ${definition.tcp}: Success`);
}

/**
 * CheckUDP: sends an empty datagram (Consul's Message is never set) on a connected socket, then
 * waits for one reply. A reply or no answer passes; an error (ICMP port unreachable surfaces as
 * connection refused) is critical. Consul's read has no deadline; here the timeout bounds it and
 * counts as its "i/o timeout", which Consul treats as passing.
 */
export async function probeUdp(definition: CheckDefinition, timeoutMs: number, signal?: AbortSignal): Promise<CheckOutcome> {
  const address = splitHostPort(definition.udp);
  if ('error' in address) return critical(`dial udp: ${address.error}`);
  const success = passing(`UDP connect ${definition.udp}: Success`);
  const family = isIP(address.host) === 6 ? 'udp6' : 'udp4';
  const socket = createSocket(family);
  const deadline = deadlineSignal(timeoutMs, signal);
  try {
    return await new Promise<CheckOutcome>((resolve) => {
      let local = '';
      let remote = '';
      socket.on('message', () => resolve(success));
      socket.on('error', (error: NodeJS.ErrnoException) => {
        const text = errnoText(error);
        if (remote === '') resolve(critical(`dial udp: ${text}`));
        else resolve(critical(`read udp ${local}->${remote}: read: ${text}`));
      });
      whenAborted(deadline.signal, () => resolve(deadline.isTimedOut() ? success : critical('check stopped')));
      const onConnect = (): void => {
        local = formatAddress(socket.address().address, socket.address().port);
        remote = formatAddress(socket.remoteAddress().address, socket.remoteAddress().port);
        socket.send(Buffer.alloc(0));
      };
      try {
        socket.connect(address.port, address.host, onConnect);
      } catch (error) {
        // Node refuses some addresses Go would try (port 0): report them as a failed dial.
        resolve(critical(`dial udp ${formatAddress(address.host, address.port)}: ${(error as Error).message}`));
      }
    });
  } finally {
    deadline.dispose();
    closeUdp(socket);
  }
}

/**
 * CheckGRPC: grpc.health.v1.Health/Check over HTTP/2 (h2c, or TLS with ALPN h2 when grpcUseTls)
 * on `host:port[/service]`. SERVING passes with `gRPC check <target>: success`; any other status
 * or error is critical with grpc-go's text.
 */
export async function probeGrpc(definition: CheckDefinition, timeoutMs: number, signal?: AbortSignal): Promise<CheckOutcome> {
  const target = definition.grpc;
  const slash = target.indexOf('/');
  const server = slash < 0 ? target : target.slice(0, slash);
  const service = slash < 0 ? '' : target.slice(slash + 1);
  const deadline = deadlineSignal(timeoutMs, signal);
  try {
    const address = withDefaultPort(server, 443);
    const dialed = await dial(address, timeoutMs, deadline.signal, definition.grpcUseTls ? tlsOptions(definition, ['h2']) : undefined);
    if ('error' in dialed) {
      if (deadline.isTimedOut()) return critical('rpc error: code = DeadlineExceeded desc = context deadline exceeded');
      return critical(`rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: ${dialed.error}"`);
    }
    const reply = await grpcHealthCall(dialed.socket, definition.grpcUseTls, server, service, timeoutMs, deadline.signal).finally(() => dialed.socket.destroy());
    if (deadline.isTimedOut()) return critical('rpc error: code = DeadlineExceeded desc = context deadline exceeded');
    if ('error' in reply) return critical(reply.error);
    if (reply.servingStatus === GRPC_SERVING) return passing(`gRPC check ${target}: success`);
    const name = GRPC_SERVING_STATUS_NAMES[reply.servingStatus] ?? String(reply.servingStatus);
    return critical(`gRPC ${target} serving status: ${name}`);
  } finally {
    deadline.dispose();
  }
}

/** CheckH2PING: an HTTP/2 connection (TLS with ALPN h2 when h2pingUseTls) and one PING. */
export async function probeH2ping(definition: CheckDefinition, timeoutMs: number, signal?: AbortSignal): Promise<CheckOutcome> {
  const target = definition.h2ping;
  const deadline = deadlineSignal(timeoutMs, signal);
  try {
    const dialed = await dial(target, timeoutMs, deadline.signal, definition.h2pingUseTls ? tlsOptions(definition, ['h2']) : undefined);
    if ('error' in dialed) return critical(`Failed to dial to ${target}: ${deadline.isTimedOut() ? 'context deadline exceeded' : dialed.error}`);
    // The session is destroyed after use, but the socket is ours to close too: a session that
    // failed its handshake can leave it half-open otherwise.
    const error = await h2Ping(dialed.socket, definition.h2pingUseTls, target, deadline.signal).finally(() => dialed.socket.destroy());
    if (error === undefined) return passing('HTTP2 ping was successful');
    return critical(`HTTP2 ping failed: ${deadline.isTimedOut() ? 'context deadline exceeded' : error}`);
  } finally {
    deadline.dispose();
  }
}

/**
 * CheckMonitor's script run: args[0] with args[1..] (no shell), in its own process group, output
 * = stdout and stderr interleaved, keeping the last outputMaxBytes with Consul's
 * "Captured N of M bytes\n...\n" prefix. Exit 0 passing, 1 warning, anything else critical.
 * On timeout the whole group gets SIGKILL and the result is critical
 * "Timed out (<t>) running check" (plus the output), reported past the thresholds as Consul does.
 */
export function runScript(args: readonly string[], timeoutMs: number, outputMaxBytes: number, signal?: AbortSignal, logger?: Logger): Promise<CheckOutcome> {
  const command = args[0];
  if (command === undefined || command === '') return Promise.resolve({ status: 'critical', output: 'need an executable to run', bypassesThresholds: true });
  const output = new TailBuffer(outputMaxBytes < 1 ? CHECK_OUTPUT_BYTES_DEFAULT : outputMaxBytes);
  return new Promise<CheckOutcome>((resolve) => {
    let child: ChildProcessByStdio<null, Readable, Readable>;
    try {
      child = spawn(command, args.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      // Arguments Node refuses outright (a NUL byte, say) fail like a command that cannot start.
      resolve({ status: 'critical', output: `fork/exec ${command}: ${(error as Error).message}`, bypassesThresholds: true });
      return;
    }
    let isSettled = false;
    let isTimedOut = false;
    let hasExited = false;
    const settle = (outcome: CheckOutcome): void => {
      if (isSettled) return;
      isSettled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch (error) {
        // ESRCH: the whole group is gone already. Anything else (EPERM from a setuid child) is
        // what Consul logs as a failed kill; the run still ends when the child exits.
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') logger?.warn('Check failed to kill after timeout', { error: String(error) });
      }
    };
    const onAbort = (): void => {
      killGroup();
      settle({ status: 'critical', output: 'check stopped', bypassesThresholds: true });
    };
    // After a timeout the result is reported once the child has exited; descendants that escaped
    // the group may still hold the pipes, so the streams are cut rather than drained.
    const finishTimedOut = (): void => {
      child.stdout.destroy();
      child.stderr.destroy();
      const captured = output.text();
      const message = `Timed out (${formatDuration(timeoutMs * NANOS_PER_MILLI)}) running check`;
      settle({ status: 'critical', output: captured === '' ? message : `${message}\n\n${captured}`, bypassesThresholds: true });
    };
    const timer = setTimeout(() => {
      isTimedOut = true;
      killGroup();
      if (hasExited) finishTimedOut();
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => output.write(chunk));
    child.stderr.on('data', (chunk: Buffer) => output.write(chunk));
    child.on('error', (error: NodeJS.ErrnoException) => settle({ status: 'critical', output: spawnErrorText(command, error), bypassesThresholds: true }));
    child.on('exit', () => {
      hasExited = true;
      if (isTimedOut) finishTimedOut();
    });
    child.on('close', (code: number | null) => {
      if (isTimedOut) return;
      settle({ status: code === 0 ? 'passing' : code === 1 ? 'warning' : 'critical', output: output.text() });
    });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// ---- Private helpers: choosing a probe ---------------------------------------------------------

function intervalProbe(options: CheckRunnerOptions): Probe {
  const { definition } = options;
  const timeoutMs = definition.timeoutNanos > 0 ? definition.timeoutNanos / NANOS_PER_MILLI : CHECK_TIMEOUT_MS_DEFAULT;
  const outputMaxBytes = effectiveOutputMaxBytes(options.outputMaxBytes, definition.outputMaxSize);
  if (definition.http !== '') return (signal) => probeHttp(definition, timeoutMs, outputMaxBytes, signal);
  if (definition.tcp !== '') return (signal) => probeTcp(definition, timeoutMs, signal);
  if (definition.udp !== '') return (signal) => probeUdp(definition, timeoutMs, signal);
  if (definition.grpc !== '') return (signal) => probeGrpc(definition, timeoutMs, signal);
  if (definition.h2ping !== '') return (signal) => probeH2ping(definition, timeoutMs, signal);
  if (definition.args.length > 0 && definition.dockerContainerId === '') {
    if (!options.allowScripts) {
      throw new CheckError('ERR_SCRIPTS_DISABLED', "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true");
    }
    const scriptTimeoutMs = definition.timeoutNanos > 0 ? timeoutMs : SCRIPT_TIMEOUT_MS_DEFAULT;
    return (signal) => runScript(definition.args, scriptTimeoutMs, outputMaxBytes, signal, options.logger);
  }
  throw new CheckError('ERR_CHECK_TYPE', 'Check type is not valid');
}

function passing(output: string): CheckOutcome {
  return { status: 'passing', output };
}

function critical(output: string): CheckOutcome {
  return { status: 'critical', output };
}

// ---- Private helpers: deadlines, addresses, errors -----------------------------------------

/** Runs `callback` once when `signal` aborts, at once if it already has (events do not replay). */
function whenAborted(signal: AbortSignal, callback: () => void): void {
  if (signal.aborted) callback();
  else signal.addEventListener('abort', callback, { once: true });
}

interface Deadline {
  readonly signal: AbortSignal;
  isTimedOut(): boolean;
  dispose(): void;
}

/** An abort signal that fires at the timeout or when `outer` aborts, whichever comes first. */
function deadlineSignal(timeoutMs: number, outer: AbortSignal | undefined): Deadline {
  const controller = new AbortController();
  let isTimedOut = false;
  const timer = setTimeout(() => {
    isTimedOut = true;
    controller.abort();
  }, timeoutMs);
  const onOuterAbort = (): void => controller.abort();
  if (outer?.aborted) controller.abort();
  else outer?.addEventListener('abort', onOuterAbort, { once: true });
  return {
    signal: controller.signal,
    isTimedOut: () => isTimedOut,
    dispose: () => {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuterAbort);
    },
  };
}

interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Go's net.SplitHostPort for dial addresses; errors carry Go's text. */
function splitHostPort(address: string): HostPort | { error: string } {
  const missingPort = { error: `address ${address}: missing port in address` };
  let host: string;
  let portText: string;
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close < 0) return { error: `address ${address}: missing ']' in address` };
    if (address[close + 1] !== ':') return missingPort;
    host = address.slice(1, close);
    portText = address.slice(close + 2);
  } else {
    const colon = address.lastIndexOf(':');
    if (colon < 0) return missingPort;
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
    if (host.includes(':')) return { error: `address ${address}: too many colons in address` };
  }
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : -1;
  if (port < 0 || port > 65535) return { error: `address ${portText}: invalid port` };
  return { host: host === '' ? 'localhost' : host, port };
}

function withDefaultPort(address: string, port: number): string {
  const split = splitHostPort(address);
  if (!('error' in split)) return address;
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

function errnoText(error: NodeJS.ErrnoException): string {
  return ERRNO_TEXTS[error.code ?? ''] ?? error.message;
}

/** Go's %q for the ASCII strings URLs are; close enough for the rest. */
function goQuote(text: string): string {
  return JSON.stringify(text);
}

function spawnErrorText(command: string, error: NodeJS.ErrnoException): string {
  if (error.code === 'ENOENT' && !command.includes('/')) return `exec: ${goQuote(command)}: executable file not found in $PATH`;
  return `fork/exec ${command}: ${errnoText(error)}`;
}

interface TlsDialOptions {
  readonly servername: string | undefined;
  readonly rejectUnauthorized: boolean;
  readonly alpn: readonly string[] | undefined;
}

function tlsOptions(definition: CheckDefinition, alpn: readonly string[] | undefined): TlsDialOptions {
  return { servername: definition.tlsServerName === '' ? undefined : definition.tlsServerName, rejectUnauthorized: !definition.tlsSkipVerify, alpn };
}

/** Node's TLS verification codes in Go's words (crypto/x509), best effort. */
function tlsErrorText(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return 'tls: failed to verify certificate: x509: certificate signed by unknown authority';
    case 'CERT_HAS_EXPIRED':
      return 'tls: failed to verify certificate: x509: certificate has expired or is not yet valid';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `tls: failed to verify certificate: x509: ${error.message}`;
    default:
      return error.code && ERRNO_TEXTS[error.code] ? `read: ${ERRNO_TEXTS[error.code]}` : error.message;
  }
}

type Dialed = { readonly socket: Socket } | { readonly error: string };

/**
 * A TCP connection (with a TLS handshake when `tls` is given) within timeoutMs, or Go's dial
 * error text: `dial tcp <ip:port>: connect: connection refused`, `... i/o timeout`.
 */
function dial(address: string, timeoutMs: number, signal: AbortSignal | undefined, tls: TlsDialOptions | undefined): Promise<Dialed> {
  const split = splitHostPort(address);
  if ('error' in split) return Promise.resolve({ error: `dial tcp: ${split.error}` });
  return new Promise<Dialed>((resolve) => {
    const isTls = tls !== undefined;
    let socket: Socket;
    try {
      socket = isTls
      ? tlsConnect({
          host: split.host,
          port: split.port,
          servername: tls.servername ?? (isIP(split.host) === 0 ? split.host : ''),
          rejectUnauthorized: tls.rejectUnauthorized,
          ...(tls.alpn ? { ALPNProtocols: [...tls.alpn] } : {}),
        })
      : netConnect({ host: split.host, port: split.port });
    } catch (error) {
      // Node refuses some addresses Go would try (port 0): report them as a failed dial.
      resolve({ error: `dial tcp ${formatAddress(split.host, split.port)}: ${(error as Error).message}` });
      return;
    }
    let isSettled = false;
    const settle = (result: Dialed): void => {
      if (isSettled) return;
      isSettled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if ('error' in result) socket.destroy();
      resolve(result);
    };
    const onAbort = (): void => settle({ error: 'operation was canceled' });
    const timer = setTimeout(() => {
      const remote = socket.remoteAddress;
      if (isTls && remote !== undefined) settle({ error: 'tls: DialWithDialer timed out' });
      else settle({ error: `dial tcp ${formatAddress(remote ?? split.host, split.port)}: i/o timeout` });
    }, timeoutMs);
    socket.once(isTls ? 'secureConnect' : 'connect', () => settle({ socket }));
    socket.once('error', (error: NodeJS.ErrnoException & { address?: string; port?: number }) => {
      settle({ error: dialErrorText(error, split, isTls) });
    });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function dialErrorText(error: NodeJS.ErrnoException & { address?: string; port?: number }, target: HostPort, isTls: boolean): string {
  if (error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN') return `dial tcp: lookup ${target.host}: no such host`;
  if (error.syscall === 'connect') return `dial tcp ${formatAddress(error.address ?? target.host, error.port ?? target.port)}: connect: ${errnoText(error)}`;
  return isTls ? tlsErrorText(error) : errnoText(error);
}

// ---- Private helpers: HTTP ---------------------------------------------------------------------

interface HttpHop {
  readonly url: URL;
  /** The URL as Go prints it in errors: the definition's text first, then the resolved redirect. */
  readonly urlText: string;
  readonly method: string;
  readonly includeBody: boolean;
  readonly hostOverride: string | undefined;
  /** Go's client sends the previous URL as Referer on redirects (never from https to http). */
  readonly referer: string | undefined;
}

type HttpSent = { readonly head: ProbeHead } | { readonly error: string };

function headerValue(header: Readonly<Record<string, readonly string[]>>, name: string): string | undefined {
  for (const [key, values] of Object.entries(header)) {
    if (key.toLowerCase() === name && values.length > 0) return values[0];
  }
  return undefined;
}

/** The request headers Go's client sends for a check: the definition's plus Consul's defaults. */
/** The request's header lines, Host first, as Go's client would send them for this check. */
function httpHeaders(definition: CheckDefinition, hop: HttpHop, bodyBytes: number): [string, string][] {
  const hostOverride = hop.hostOverride !== undefined && hop.hostOverride !== '' ? hop.hostOverride : undefined;
  const headers: [string, string][] = [['Host', hostOverride ?? hop.url.host]];
  for (const [key, values] of Object.entries(definition.header)) {
    // Host is above; the connection and the body framing are the transport's own.
    if (['host', 'connection', 'content-length', 'transfer-encoding'].includes(key.toLowerCase())) continue;
    for (const value of values) headers.push([key, value]);
  }
  if (headerValue(definition.header, 'user-agent') === undefined) headers.push(['User-Agent', HTTP_CHECK_USER_AGENT]);
  if (headerValue(definition.header, 'accept') === undefined) headers.push(['Accept', HTTP_CHECK_ACCEPT]);
  if (hop.referer !== undefined && headerValue(definition.header, 'referer') === undefined) headers.push(['Referer', hop.referer]);
  // Go's transport asks for gzip (and unpacks it) unless the caller chose an encoding itself.
  if (headerValue(definition.header, 'accept-encoding') === undefined && headerValue(definition.header, 'range') === undefined && hop.method !== 'HEAD') {
    headers.push(['Accept-Encoding', 'gzip']);
  }
  // Consul disables keep-alives so a check never reuses a stale connection.
  headers.push(['Connection', 'close']);
  if (bodyBytes > 0 || ['POST', 'PUT', 'PATCH'].includes(hop.method)) headers.push(['Content-Length', String(bodyBytes)]);
  return headers;
}

/** One hop of an HTTP check over lib/httpprobe.ts; errors as Go's client words them. */
async function sendHttp(definition: CheckDefinition, hop: HttpHop, signal: AbortSignal, onBody: (chunk: Buffer) => void): Promise<HttpSent> {
  const body = hop.includeBody ? Buffer.from(definition.body, 'utf8') : Buffer.alloc(0);
  const isHttps = hop.url.protocol === 'https:';
  const host = hop.url.hostname.startsWith('[') ? hop.url.hostname.slice(1, -1) : hop.url.hostname;
  const port = hop.url.port === '' ? (isHttps ? 443 : 80) : Number(hop.url.port);
  const headers = httpHeaders(definition, hop, body.length);
  for (const [name, value] of headers) {
    // Go's transport refuses a bad header field before any I/O.
    const problem = headerFieldProblem(name, value);
    if (problem !== undefined) return { error: problem };
  }
  const result = await sendProbe({
    host,
    port,
    ...(isHttps ? { tls: { servername: definition.tlsServerName !== '' ? definition.tlsServerName : isIP(host) === 0 ? host : '', rejectUnauthorized: !definition.tlsSkipVerify } } : {}),
    method: hop.method,
    target: `${hop.url.pathname}${hop.url.search}`,
    headers,
    body,
    gunzip: headers.some(([name, value]) => name === 'Accept-Encoding' && value === 'gzip'),
    signal,
    onBody,
  });
  if ('head' in result) return result;
  const { failure } = result;
  if ('aborted' in failure) return { error: 'context canceled' };
  if ('text' in failure) return { error: failure.text };
  return { error: dialErrorText(failure.socketError, { host, port }, isHttps) };
}

function redirectHop(hop: HttpHop, head: ProbeHead): HttpHop | undefined {
  const code = head.statusCode;
  const location = head.header('location');
  if (location === undefined || ![301, 302, 303, 307, 308].includes(code)) return undefined;
  let url: URL;
  try {
    url = new URL(location, hop.url);
  } catch {
    return undefined;
  }
  const isRelative = !/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(location);
  const keepsMethod = code === 307 || code === 308;
  const method = keepsMethod || hop.method === 'GET' || hop.method === 'HEAD' ? hop.method : 'GET';
  // Go keeps a Host override only for redirects that stay relative to the same host.
  const previous = new URL(hop.url.href);
  previous.username = '';
  previous.password = '';
  previous.hash = '';
  const referer = previous.protocol === 'https:' && url.protocol === 'http:' ? undefined : previous.href;
  return { url, urlText: url.href, method, includeBody: keepsMethod && hop.includeBody, hostOverride: isRelative ? hop.hostOverride : undefined, referer };
}

function httpStatusToHealth(code: number): CheckStatus {
  if (code >= 200 && code <= 299) return 'passing';
  return code === 429 ? 'warning' : 'critical';
}

/** Go's resp.Status for HTTP/1.x: the code and the reason phrase the server sent. */
/** Reads a stream to its end (or error) keeping the last `bytesMax` bytes, like Consul's circbuf. */
/** armon/circbuf: keeps the last `capacity` bytes written and counts them all. */
class TailBuffer {
  /** The chunks that may hold kept bytes: dropping the first would leave fewer than capacity. */
  private readonly chunks: Buffer[] = [];
  private chunkBytes = 0;
  /** Invariant: total bytes ever written; the kept ones are the last min(total, capacity). */
  private totalBytes = 0;

  constructor(private readonly capacity: number) {}

  write(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.chunkBytes += chunk.length;
    this.totalBytes += chunk.length;
    // Chunks are kept, not copied: a probe's few small reads cost no allocation of their own.
    for (let first = this.chunks[0]; first !== undefined && this.chunkBytes - first.length >= this.capacity; first = this.chunks[0]) {
      this.chunks.shift();
      this.chunkBytes -= first.length;
    }
  }

  contents(): Buffer {
    const joined = this.chunks.length === 1 && this.chunks[0] !== undefined ? this.chunks[0] : Buffer.concat(this.chunks, this.chunkBytes);
    return joined.subarray(Math.max(0, joined.length - this.capacity));
  }

  /** CheckMonitor's output text: the kept bytes, prefixed with a note when some were dropped. */
  text(): string {
    const kept = this.contents().toString('utf8');
    if (this.totalBytes <= this.capacity) return kept;
    return `Captured ${this.capacity} of ${this.totalBytes} bytes\n...\n${kept}`;
  }
}

// ---- Private helpers: HTTP/2, gRPC and UDP -----------------------------------------------------

/** Opens an HTTP/2 session over an established socket and waits for the handshake. */
function openSession(socket: Socket, isTls: boolean, authority: string, signal: AbortSignal): Promise<{ session: ClientHttp2Session } | { error: string }> {
  return new Promise((resolve) => {
    const session = http2Connect(`${isTls ? 'https' : 'http'}://${authority}`, { createConnection: () => socket });
    const onAbort = (): void => {
      session.destroy();
      resolve({ error: 'context canceled' });
    };
    session.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      resolve({ session });
    });
    // Kept for the session's life: a later error must not go unhandled; callers see it as a close.
    session.on('error', (error: NodeJS.ErrnoException) => {
      signal.removeEventListener('abort', onAbort);
      session.destroy();
      resolve({ error: errnoText(error) });
    });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function h2Ping(socket: Socket, isTls: boolean, authority: string, signal: AbortSignal): Promise<string | undefined> {
  const opened = await openSession(socket, isTls, authority, signal);
  if ('error' in opened) return opened.error;
  const { session } = opened;
  try {
    return await new Promise<string | undefined>((resolve) => {
      const onAbort = (): void => resolve('context canceled');
      whenAborted(signal, onAbort);
      session.once('error', (error: Error) => resolve(error.message));
      session.once('close', () => resolve('http2: client connection lost'));
      const isSent = session.ping((error) => {
        signal.removeEventListener('abort', onAbort);
        resolve(error ? error.message : undefined);
      });
      if (!isSent) resolve('http2: client connection lost');
    });
  } finally {
    session.destroy();
  }
}

/** A decoded health reply, or grpc-go style error text. */
export type GrpcReply = { readonly servingStatus: number } | { readonly error: string };

/** One unary Health/Check call on a fresh session; the response is decoded defensively. */
async function grpcHealthCall(socket: Socket, isTls: boolean, authority: string, service: string, timeoutMs: number, signal: AbortSignal): Promise<GrpcReply> {
  const opened = await openSession(socket, isTls, authority, signal);
  if ('error' in opened) return { error: `rpc error: code = Unavailable desc = connection error: desc = "transport: ${opened.error}"` };
  const { session } = opened;
  try {
    return await new Promise<GrpcReply>((resolve) => {
      const stream = session.request({
        ':method': 'POST',
        ':path': GRPC_HEALTH_PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': grpcTimeoutHeader(timeoutMs),
      });
      const chunks: Buffer[] = [];
      let receivedBytes = 0;
      let httpStatus = 0;
      let grpcStatus: string | undefined;
      let grpcMessage = '';
      const readStatus = (headers: Record<string, unknown>): void => {
        if (typeof headers['grpc-status'] === 'string') grpcStatus = headers['grpc-status'];
        if (typeof headers['grpc-message'] === 'string') grpcMessage = decodeGrpcMessage(headers['grpc-message']);
      };
      const onAbort = (): void => {
        stream.close();
        resolve({ error: 'rpc error: code = Canceled desc = context canceled' });
      };
      whenAborted(signal, onAbort);
      stream.on('response', (headers) => {
        httpStatus = Number(headers[':status'] ?? 0);
        readStatus(headers);
      });
      stream.on('trailers', (trailers) => readStatus(trailers));
      stream.on('data', (chunk: Buffer) => {
        receivedBytes += chunk.length;
        if (receivedBytes > GRPC_RESPONSE_BYTES_MAX) {
          stream.close();
          resolve({ error: `rpc error: code = ResourceExhausted desc = grpc: received message larger than max (${receivedBytes} vs. ${GRPC_RESPONSE_BYTES_MAX})` });
          return;
        }
        chunks.push(chunk);
      });
      stream.on('error', (error: Error) => resolve({ error: `rpc error: code = Unavailable desc = ${error.message}` }));
      stream.on('close', () => {
        signal.removeEventListener('abort', onAbort);
        resolve(grpcResult(httpStatus, grpcStatus, grpcMessage, Buffer.concat(chunks)));
      });
      stream.end(encodeHealthCheckRequest(service));
    });
  } finally {
    session.destroy();
  }
}

/** A grpc.health.v1.HealthCheckRequest in one gRPC message frame: `service` is field 1 (string). */
export function encodeHealthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), encodeVarint(name.length), name]);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

/**
 * Reads the serving status (field 1, varint) from one gRPC frame holding a HealthCheckResponse.
 * Returns a grpc-go style error for anything malformed; never throws.
 */
export function decodeHealthCheckResponse(frame: Buffer): GrpcReply {
  const malformed = (why: string): GrpcReply => ({ error: `rpc error: code = Internal desc = grpc: failed to unmarshal the received message: ${why}` });
  if (frame.length < 5) return { error: 'rpc error: code = Internal desc = server closed the stream without sending a response' };
  if (frame[0] !== 0) return { error: 'rpc error: code = Internal desc = grpc: compressed message received without a decompressor' };
  const length = frame.readUInt32BE(1);
  if (frame.length - 5 < length) return malformed('unexpected EOF');
  const message = frame.subarray(5, 5 + length);
  let offset = 0;
  let servingStatus = 0;
  while (offset < message.length) {
    const tag = readVarint(message, offset);
    if (tag === undefined) return malformed('unexpected EOF');
    offset = tag.next;
    const field = Math.floor(tag.value / 8);
    const wireType = tag.value % 8;
    if (wireType === 0) {
      const value = readVarint(message, offset);
      if (value === undefined) return malformed('unexpected EOF');
      if (field === 1) servingStatus = value.value;
      offset = value.next;
    } else if (wireType === 2) {
      const size = readVarint(message, offset);
      if (size === undefined || size.next + size.value > message.length) return malformed('unexpected EOF');
      offset = size.next + size.value;
    } else if (wireType === 1 || wireType === 5) {
      offset += wireType === 1 ? 8 : 4;
      if (offset > message.length) return malformed('unexpected EOF');
    } else {
      return malformed(`proto: cannot parse invalid wire-format data`);
    }
  }
  return { servingStatus };
}

function grpcResult(httpStatus: number, grpcStatus: string | undefined, grpcMessage: string, body: Buffer): GrpcReply {
  if (httpStatus !== 200) {
    const code = grpcCodeForHttpStatus(httpStatus);
    return { error: `rpc error: code = ${code} desc = unexpected HTTP status code received from server: ${httpStatus}` };
  }
  if (grpcStatus === undefined) return { error: 'rpc error: code = Internal desc = server closed the stream without sending trailers' };
  const code = Number(grpcStatus);
  if (code !== 0) return { error: `rpc error: code = ${GRPC_CODE_NAMES[code] ?? `Code(${grpcStatus})`} desc = ${grpcMessage}` };
  return decodeHealthCheckResponse(body);
}

/** The grpc-timeout header: at most 8 digits, so long timeouts switch to seconds. */
function grpcTimeoutHeader(timeoutMs: number): string {
  const ms = Math.max(1, Math.ceil(timeoutMs));
  return ms <= 99_999_999 ? `${ms}m` : `${Math.min(99_999_999, Math.ceil(ms / 1000))}S`;
}

/** grpc-go's mapping of a non-200 HTTP status to a gRPC code. */
function grpcCodeForHttpStatus(httpStatus: number): string {
  switch (httpStatus) {
    case 400:
      return 'Internal';
    case 401:
      return 'Unauthenticated';
    case 403:
      return 'PermissionDenied';
    case 404:
      return 'Unimplemented';
    case 429:
    case 502:
    case 503:
    case 504:
      return 'Unavailable';
    default:
      return 'Unknown';
  }
}

/** grpc-message is percent-encoded; a bad escape leaves the text as sent. */
function decodeGrpcMessage(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function encodeVarint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** A protobuf varint of at most 7 bytes (values stay exact in a double); undefined when truncated or longer. */
function readVarint(bytes: Buffer, offset: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = offset; i < bytes.length && i < offset + 7; i++) {
    const byte = bytes[i] ?? 0;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return { value, next: i + 1 };
    scale *= 0x80;
  }
  return undefined;
}

function closeUdp(socket: UdpSocket): void {
  try {
    socket.close();
  } catch (error) {
    // Closing twice throws ERR_SOCKET_DGRAM_NOT_RUNNING; the socket is closed either way.
    if ((error as NodeJS.ErrnoException).code !== 'ERR_SOCKET_DGRAM_NOT_RUNNING') throw error;
  }
}
