// Reads of the cluster state as Consul's HTTP API serves them: query parameters, consistency
// modes, blocking queries and the X-Consul-* response headers.
//
// Every read endpoint (KV, catalog, health, sessions...) runs its state query through here:
// - parseQueryOptions reads ?index ?wait ?stale ?consistent ?leader ?cached ?max_stale ?filter
//   and Cache-Control in the order Consul's HTTPHandlers.parse does, so that a request with two
//   mistakes gets the same 400 text as from Consul.
// - The consistency mode decides who may answer. `stale`: any server that has heard from a
//   leader at least once (Consul's "local DB is initialized" rule in ForwardRPC). `default`: the
//   leader; with no leader known we retry, each attempt after a random stagger of up to
//   rpcHoldTimeout/16, until rpcHoldTimeout passes, then answer 500 "No cluster leader".
//   `consistent`: the leader after a ReadIndex round (Consul's VerifyLeader + consistentRead).
// - ?max_stale=D reads stale unless the server's LastContact exceeds D; then the read is redone
//   once in default mode (Consul's RETRY_ONCE in the HTTP handlers).
// - Blocking (?index=N, N > 0): run the query with a WatchSet; if its index is above N, answer;
//   otherwise park on MemDb.watch until something the query read changes, then re-run. The wait
//   is ?wait (default default_query_time, clamped to max_query_time) plus a random jitter of up
//   to wait/16 (Consul's RandomStagger(wait / JitterFraction)). On expiry the last result is
//   returned with 200: Consul never tells a client its index is ahead; the documented client
//   contract is to reset to 0 when the returned index goes backwards.
//
// Not here (yet): forwarding to the leader or to another datacenter (issue 9). A follower
// therefore serves a default-mode read from its own state and reports it as "stale"; a
// consistent read on a follower is refused with NOT_LEADER_PREFIX and the leader's address.
// Also not here: ?cached (agent cache), discovery_max_stale, hash-based blocking of agent routes.
//
// Invariants: a parked query holds exactly one memdb watcher, one timer and one abort listener,
// and releases all three when it settles, whichever way; the reported index is never 0.
//
// References: Consul agent/http.go (parseWait, parseConsistency, parseCacheControl, setMeta,
// setIndex, setLastContact, setKnownLeader, setConsistency), agent/consul/rpc.go (ForwardRPC,
// canRetry, blockingQuery, setQueryMeta, consistentRead), agent/blockingquery/blockingquery.go,
// agent/structs/structs.go (QueryOptions.ConsistencyLevel, JitterFraction).

import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { parseDuration, NANOS_PER_MILLI } from './duration.js';
import { HttpError, type AbortSignalLike, type HttpRequest } from './http.js';
import { goQuote } from './kvs.js';
import { WatchSet, type ReadTxn } from './memdb.js';
import type { QueryResult } from './schema.js';
import type { StateStore } from './state.js';

// ---------------------------------------------------------------------------------------------
// Exported types

export type ConsistencyMode = 'default' | 'stale' | 'consistent';

/** The query part of a request (Consul's structs.QueryOptions, the fields we serve). */
export interface QueryOptions {
  /** ?index: 0 means not blocking. Values past 2^53 lose precision but still block. */
  readonly minQueryIndex: number;
  /** ?wait, defaulted to default_query_time and clamped to max_query_time. */
  readonly maxQueryTimeMs: number;
  readonly consistency: ConsistencyMode;
  /** ?max_stale (implies stale when positive); 0 if absent or not positive. */
  readonly maxStaleMs: number;
  /** ?filter's raw text, '' if none. */
  readonly filter: string;
  readonly token: string;
}

/** What a read endpoint answers: the value and its query meta. */
export interface QueryReply<T> {
  readonly value: T;
  readonly meta: QueryMeta;
}

/** What a read reports in its X-Consul-* headers (Consul's structs.QueryMeta). */
export interface QueryMeta {
  /** Never below 1. */
  readonly index: number;
  readonly lastContactMs: number;
  readonly knownLeader: boolean;
  readonly consistencyLevel: 'leader' | 'stale' | 'consistent';
}

/** What queries need of the local server (lib/raftnode.ts RaftNode satisfies it). */
export interface QueryServer {
  readonly isLeader: boolean;
  /** The known leader's address, or ''. */
  leader(): string;
  /** Milliseconds since the leader was last heard from: 0 on the leader, undefined if never. */
  readonly lastContactMs: number | undefined;
  /** Resolves once a quorum confirmed this server leads and the FSM reached the read index. */
  readIndex(): Promise<void>;
  /**
   * The leader's FSM holds every write committed before it was elected: it has applied an entry
   * of its own term (Consul's isReadyForConsistentReads, set after the leader's barrier).
   */
  readonly isReadyForReads: boolean;
}

export interface QueryContext {
  readonly state: StateStore;
  readonly server: QueryServer;
  /** How long to wait for a leader before answering "No cluster leader" (rpc_hold_timeout). */
  readonly rpcHoldTimeoutMs: number;
  /** Uniform in [0, 1): jitter of blocking waits and leader retries. */
  readonly rng: () => number;
  readonly defaultQueryTimeMs: number;
  readonly maxQueryTimeMs: number;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Consul's structs.JitterFraction: blocking waits and leader retries stagger by up to 1/16. */
export const JITTER_FRACTION = 16;
/** The largest delay setTimeout honours (a larger one fires at once, with a warning). */
export const TIMER_MS_MAX = 2 ** 31 - 1;
/** The shortest pause between leader checks, so a tiny stagger never spins. */
export const LEADER_RETRY_MS_MIN = 5;
/**
 * Woken parked queries answered per macrotask. Large on purpose: measured with 10,000 parked
 * queries, batches of 256 or 1,024 made the last answer ~1.7x later than one batch, because the
 * closes and new requests of already-answered clients are then served in between. The bound
 * only keeps a larger crowd from holding the event loop for more than about a second.
 */
export const WAKE_BATCH_MAX = 16_384;
/** Distinct jitter values of parked waits with the same ?wait (see parkingJitterMs). */
export const PARK_JITTER_STEPS = 64;
/** Largest uint64 (Go's): ?index, KV Flags, txn Flags and indexes. */
export const UINT64_MAX = (1n << 64n) - 1n;
/** Consul's error when no leader is known (structs.ErrNoLeader). */
export const ERR_NO_LEADER_MESSAGE = 'No cluster leader';
/**
 * Our refusal of a write or consistent read on a follower, followed by the leader's address.
 * Consul would forward instead (issue 9); hashicorp/raft's own text is "node is not the leader".
 */
export const NOT_LEADER_PREFIX = 'node is not the leader; leader=';
/** Consul's answer for another datacenter (no WAN forwarding here). */
export const NO_PATH_TO_DATACENTER_TEXT = 'No path to datacenter';

// ---------------------------------------------------------------------------------------------
// Exported API

/**
 * Parses ?index ?wait ?stale ?consistent ?leader ?cached ?max_stale ?filter, Cache-Control and
 * the token, checking in Consul's order. Throws HttpError(400, Consul's text) on bad values.
 */
/** A plain read's options, as a request with no query parameters has them (default consistency, no blocking). */
export function defaultQueryOptions(ctx: QueryContext): QueryOptions {
  return { minQueryIndex: 0, maxQueryTimeMs: ctx.defaultQueryTimeMs, consistency: 'default', maxStaleMs: 0, filter: '', token: '' };
}

export function parseQueryOptions(ctx: QueryContext, request: HttpRequest): QueryOptions {
  const { query } = request;
  const filter = query.get('filter') ?? '';
  const { consistency, maxStaleMs } = parseConsistency(query);
  checkCacheControl(request.header('cache-control') ?? '');
  const { waitMs, index } = parseWait(query);
  return {
    minQueryIndex: Number(index),
    maxQueryTimeMs: effectiveWaitMs(waitMs, ctx),
    consistency,
    maxStaleMs,
    filter,
    token: request.token,
  };
}

/**
 * Consul's parseWait: ?wait as a Go duration in ms (0 when absent) and ?index as an exact uint64
 * (0n when absent). Throws HttpError 400 "Invalid wait time" / "Invalid index".
 */
export function parseWait(query: URLSearchParams): { waitMs: number; index: bigint } {
  const waitText = query.get('wait') ?? '';
  let waitMs = 0;
  if (waitText !== '') {
    try {
      waitMs = parseDuration(waitText) / NANOS_PER_MILLI;
    } catch {
      // Consul answers every unparsable ?wait with the same fixed text, not Go's parse error.
      throw new HttpError(400, 'Invalid wait time');
    }
  }
  const indexText = query.get('index') ?? '';
  if (indexText === '') return { waitMs, index: 0n };
  if (!/^[0-9]+$/.test(indexText) || BigInt(indexText) > UINT64_MAX) throw new HttpError(400, 'Invalid index');
  return { waitMs, index: BigInt(indexText) };
}

/** Throws HttpError(500, 'No path to datacenter') unless ?dc is absent, empty or the local one. */
export function checkDatacenter(request: HttpRequest, datacenter: string): void {
  const requested = request.query.get('dc') ?? '';
  // Consul would forward to a federated datacenter; with no WAN routes it knows none.
  if (requested !== '' && requested !== datacenter) throw new HttpError(500, NO_PATH_TO_DATACENTER_TEXT);
}

/**
 * Runs `run` under the consistency mode and, when options.minQueryIndex > 0, blocks until the
 * result's index exceeds it, the wait (plus jitter) expires, or `signal` aborts (rejecting with
 * the abort reason, which the HTTP layer drops). Returns the last result and its meta. The
 * signal is looked at only before waiting (for a leader, or parked): a read that waits for
 * nothing completes even if it was already aborted.
 */
export function blockingQuery<T>(ctx: QueryContext, options: QueryOptions, signal: AbortSignalLike, run: (txn: ReadTxn) => QueryResult<T>): Promise<{ value: T; meta: QueryMeta }> {
  // Plain functions and one promise, no async frames: a parked query holds only what it needs
  // (BlockingRun), which matters with thousands parked.
  const first = whenAdmitted(admitRead(ctx, options, signal), (mode) => runBlocking(ctx, options, mode, signal, run));
  if (options.consistency !== 'stale' || options.maxStaleMs === 0) return first;
  return first.then((result) => {
    if (!isTooStale(ctx, options, result.meta)) return result;
    const fresh = withoutStale(options);
    return whenAdmitted(admitRead(ctx, fresh, signal), (mode) => runBlocking(ctx, fresh, mode, signal, run));
  });
}

/** A read that never blocks but still reports meta (txn reads): consistency handling only. */
export async function readQuery<T>(ctx: QueryContext, options: QueryOptions, run: (txn: ReadTxn) => QueryResult<T>): Promise<{ value: T; meta: QueryMeta }> {
  const nonBlocking = { ...options, minQueryIndex: 0 };
  return blockingQuery(ctx, nonBlocking, NEVER_ABORTED, run);
}

/** The X-Consul-* headers of a read, as Consul's setMeta writes them. */
export function queryMetaHeaders(meta: QueryMeta): Record<string, string> {
  return {
    // An index of 0 would make every client's next ?index=0 return at once: a busy loop.
    'X-Consul-Index': String(Math.max(1, Math.floor(meta.index))),
    'X-Consul-KnownLeader': meta.knownLeader ? 'true' : 'false',
    'X-Consul-LastContact': String(Math.max(0, Math.floor(meta.lastContactMs))),
    'X-Consul-Effective-Consistency': meta.consistencyLevel,
  };
}

/**
 * Waits until this server is leader or knows one, retrying after a random stagger of up to
 * rpcHoldTimeout/16 (Consul's ForwardRPC loop). Throws HttpError(500, 'No cluster leader') when
 * rpcHoldTimeout passes first; rejects with the abort reason if `signal` aborts.
 */
export async function waitForLeader(ctx: QueryContext, signal: AbortSignalLike = NEVER_ABORTED): Promise<void> {
  const giveUpAt = performance.now() + ctx.rpcHoldTimeoutMs;
  while (!ctx.server.isLeader && ctx.server.leader() === '') {
    const remainingMs = giveUpAt - performance.now();
    if (remainingMs <= 0) throw new HttpError(500, ERR_NO_LEADER_MESSAGE);
    const staggerMs = Math.max(LEADER_RETRY_MS_MIN, randomStagger(ctx.rng, ctx.rpcHoldTimeoutMs / JITTER_FRACTION));
    await sleep(Math.min(staggerMs, remainingMs), signal);
  }
}

/** What a client is told by a server that is not the leader: the leader's address, or that there is none. */
/** The leader's address in a notLeaderText message, or undefined for any other message. */
export function leaderFromNotLeaderText(message: string): string | undefined {
  return message.startsWith(NOT_LEADER_PREFIX) ? message.slice(NOT_LEADER_PREFIX.length) : undefined;
}

export function notLeaderText(leader: unknown): string {
  return typeof leader === 'string' && leader !== '' ? `${NOT_LEADER_PREFIX}${leader}` : ERR_NO_LEADER_MESSAGE;
}

/**
 * Maps a Raft node error (lib/raftnode.ts RaftNodeError codes) to the HttpError a Consul client
 * sees; anything else becomes a 500 with its message.
 */
export function raftErrorToHttp(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const leader = (error as { leaderAddress?: unknown } | null)?.leaderAddress;
  if (code === 'ERR_NOT_LEADER') return new HttpError(500, notLeaderText(leader));
  // hashicorp/raft's texts (ErrLeadershipLost, ErrRaftShutdown).
  if (code === 'ERR_LEADERSHIP_LOST') return new HttpError(500, 'leadership lost while committing log');
  if (code === 'ERR_SHUTDOWN') return new HttpError(500, 'raft is already shutdown');
  return new HttpError(500, error instanceof Error ? error.message : String(error));
}

// ---------------------------------------------------------------------------------------------
// Private helpers

/** How a read is admitted: who answers, and what level it reports. */
interface ReadMode {
  readonly isConsistent: boolean;
  readonly level: QueryMeta['consistencyLevel'];
}

/** A signal that never aborts, for reads that cannot be cancelled. */
const NEVER_ABORTED: AbortSignalLike = new AbortController().signal;

function parseConsistency(query: URLSearchParams): { consistency: ConsistencyMode; maxStaleMs: number } {
  let isStale = query.has('stale');
  const isConsistent = query.has('consistent');
  let maxStaleMs = 0;
  const maxStaleText = query.get('max_stale') ?? '';
  if (maxStaleText !== '') {
    let nanos: number;
    try {
      nanos = parseDuration(maxStaleText);
    } catch {
      throw new HttpError(400, `Invalid max_stale value ${goQuote(maxStaleText)}`);
    }
    if (nanos > 0) {
      maxStaleMs = nanos / NANOS_PER_MILLI;
      isStale = true;
    }
  }
  if (isStale && isConsistent) throw new HttpError(400, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
  // http_config.use_cache defaults to true, so ?cached always asks for the agent cache.
  if (query.has('cached') && isConsistent) throw new HttpError(400, 'Cannot specify ?cached with ?consistent, conflicting semantics.');
  // ?leader asks for the default mode explicitly; it only matters against discovery_max_stale.
  return { consistency: isConsistent ? 'consistent' : isStale ? 'stale' : 'default', maxStaleMs };
}

/** Consul validates max-age and stale-if-error as integers (strconv.Atoi) and refuses the rest. */
function checkCacheControl(raw: string): void {
  for (const part of raw.toLowerCase().split(',')) {
    const directive = part.trim();
    for (const name of ['max-age=', 'stale-if-error=']) {
      if (directive.startsWith(name) && !/^[+-]?[0-9]+$/.test(directive.slice(name.length))) {
        throw new HttpError(400, 'Invalid Cache-Control header.');
      }
    }
  }
}

/** Consul's blockingQuery rule: above max_query_time -> the max; zero or negative -> the default. */
function effectiveWaitMs(waitMs: number, ctx: QueryContext): number {
  if (waitMs > ctx.maxQueryTimeMs) return ctx.maxQueryTimeMs;
  if (waitMs <= 0) return ctx.defaultQueryTimeMs;
  return waitMs;
}

/**
 * Decides who answers before the first run: at once when the mode needs no waiting (the usual
 * case: this server leads, or the read is stale), else after waiting for a leader.
 */
function admitRead(ctx: QueryContext, options: QueryOptions, signal: AbortSignalLike): ReadMode | Promise<ReadMode> {
  const { server } = ctx;
  const isConsistent = options.consistency === 'consistent';
  // A stale read needs a state that has been fed by a leader at least once.
  if (options.consistency === 'stale' && (server.isLeader || server.lastContactMs !== undefined)) return { isConsistent, level: 'stale' };
  if (server.isLeader && (isConsistent || server.isReadyForReads)) return { isConsistent, level: isConsistent ? 'consistent' : options.consistency === 'stale' ? 'stale' : 'leader' };
  return admitReadAfterWaiting(ctx, options, signal);
}

/** admitRead when there is no leader yet, or a fresh leader has not applied its inheritance. */
async function admitReadAfterWaiting(ctx: QueryContext, options: QueryOptions, signal: AbortSignalLike): Promise<ReadMode> {
  const { server } = ctx;
  const isConsistent = options.consistency === 'consistent';
  await waitForLeader(ctx, signal);
  if (server.isLeader) {
    // A leader elected a moment ago (after a restart, say) may not have applied the entries it
    // inherited yet: a default read waits for its first barrier instead of answering from them.
    if (!isConsistent && !server.isReadyForReads) await confirmReadIndex(ctx);
    return { isConsistent, level: isConsistent ? 'consistent' : options.consistency === 'stale' ? 'stale' : 'leader' };
  }
  // A follower that knows the leader: it cannot forward yet (issue 9).
  if (isConsistent) throw new HttpError(500, `${NOT_LEADER_PREFIX}${server.leader()}`);
  return { isConsistent, level: 'stale' };
}

function whenAdmitted<R>(mode: ReadMode | Promise<ReadMode>, next: (mode: ReadMode) => Promise<R>): Promise<R> {
  return mode instanceof Promise ? mode.then(next) : next(mode);
}

/** The run-park-rerun loop; answers at once when not blocking. */
function runBlocking<T>(ctx: QueryContext, options: QueryOptions, mode: ReadMode, signal: AbortSignalLike, run: (txn: ReadTxn) => QueryResult<T>): Promise<{ value: T; meta: QueryMeta }> {
  if (options.minQueryIndex === 0) {
    if (mode.isConsistent) return confirmReadIndex(ctx).then(() => readNow(ctx, mode, run, undefined));
    try {
      return Promise.resolve(readNow(ctx, mode, run, undefined));
    } catch (error) {
      return Promise.reject(error);
    }
  }
  if (signal.aborted) return Promise.reject(abortReason(signal));
  const waitMs = options.maxQueryTimeMs + parkingJitterMs(ctx.rng, options.maxQueryTimeMs / JITTER_FRACTION);
  return new Promise((resolve, reject) => new BlockingRun(ctx, options, mode, signal, run, Math.min(waitMs, TIMER_MS_MAX), resolve, reject).next());
}

/** A consistent read first confirms leadership with a ReadIndex round (Consul's consistentRead). */
async function confirmReadIndex(ctx: QueryContext): Promise<void> {
  try {
    await ctx.server.readIndex();
  } catch (error) {
    throw raftErrorToHttp(error);
  }
}

/** Reads the state now; synchronous so that a woken query answers in the same macrotask. */
function readNow<T>(ctx: QueryContext, mode: ReadMode, run: (txn: ReadTxn) => QueryResult<T>, watchSet: WatchSet | undefined): { value: T; meta: QueryMeta } {
  const result = ctx.state.read(run, watchSet);
  assert.ok(result.index >= 1, 'StateStore.read never reports index 0');
  return { value: result.value, meta: queryMeta(ctx.server, result.index, mode.level) };
}

/** Consul's setQueryMeta: the leader reports contact 0; a follower its time since contact. */
function queryMeta(server: QueryServer, index: number, level: QueryMeta['consistencyLevel']): QueryMeta {
  if (server.isLeader) return { index, lastContactMs: 0, knownLeader: true, consistencyLevel: level };
  return { index, lastContactMs: server.lastContactMs ?? 0, knownLeader: server.leader() !== '', consistencyLevel: level };
}

/** ?max_stale: a stale answer from a server out of touch longer than allowed is redone. */
function isTooStale(ctx: QueryContext, options: QueryOptions, meta: QueryMeta): boolean {
  return options.consistency === 'stale' && options.maxStaleMs > 0 && !ctx.server.isLeader && meta.lastContactMs > options.maxStaleMs;
}

function withoutStale(options: QueryOptions): QueryOptions {
  return { ...options, consistency: 'default', maxStaleMs: 0 };
}

/**
 * The jitter of a parked wait: RandomStagger rounded down to one of PARK_JITTER_STEPS steps,
 * still in [0, limit). Node keeps one timer list per distinct duration in a priority queue;
 * 10,000 queries with the same ?wait and millisecond jitter made ~7,700 lists, and every
 * clearTimeout an O(log n) queue removal (~2 us each when a crowd is released). With steps
 * they share a few dozen lists. A short wait keeps millisecond steps.
 */
function parkingJitterMs(rng: () => number, limitMs: number): number {
  const stepMs = Math.max(1, Math.ceil(limitMs / PARK_JITTER_STEPS));
  return Math.floor(randomStagger(rng, limitMs) / stepMs) * stepMs;
}

/** Consul's lib.RandomStagger: uniform in [0, limit). */
function randomStagger(rng: () => number, limitMs: number): number {
  if (!(limitMs > 0)) return 0;
  return Math.floor(rng() * limitMs);
}

/**
 * One blocking query from its first run to its answer: it runs the query with a fresh WatchSet,
 * answers when the index passed the client's, went back (the state was restored from a
 * snapshot: Consul answers when its state store is abandoned) or the wait is over, and
 * otherwise parks on what it read until memdb reports a change, then runs again.
 *
 * Kept small, since thousands may be parked: a parked query costs this object (which is also
 * its timer argument and abort listener), one memdb callback capturing only `this` (never the
 * WatchSet: the memdb registry keeps its own copy of the targets), one memdb watcher, its last
 * result, and the promise its caller waits on. No async frame stays suspended.
 * Invariant: at most one memdb watch is armed; close() releases the timer, the abort listener
 * and the watch, once, before the promise settles.
 */
class BlockingRun<T> {
  private isExpired = false;
  private isSettled = false;
  /** The index of the last run, to see the state go back. */
  private previousIndex = 0;
  /** The last result: what a wait that times out answers. */
  private last: { value: T; meta: QueryMeta } | undefined;
  /** Disarms the current memdb watch; undefined when not parked. */
  private cancelWatch: (() => void) | undefined;
  private readonly timer: ReturnType<typeof setTimeout>;
  /** memdb calls this inside the writer's commit: defer the answer so the writer replies first. */
  private readonly onChange = (): void => queueWake(this);

  constructor(
    private readonly ctx: QueryContext,
    private readonly options: QueryOptions,
    private readonly mode: ReadMode,
    private readonly signal: AbortSignalLike,
    private readonly run: (txn: ReadTxn) => QueryResult<T>,
    waitMs: number,
    private readonly resolve: (result: { value: T; meta: QueryMeta }) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    // The run itself is the timer argument and the abort listener: no closure per query.
    this.timer = setTimeout(expireRun, waitMs, this);
    signal.addEventListener('abort', this, { once: true });
  }

  /** Runs the query (after a ReadIndex round in consistent mode), then answers or parks. */
  next(): void {
    if (!this.mode.isConsistent) return this.readOrPark();
    confirmReadIndex(this.ctx).then(
      () => this.readOrPark(),
      (error: unknown) => this.settle(undefined, error),
    );
  }

  /** Called from the wake queue: what the query read changed. A settled run ignores it. */
  wakeChanged(): void {
    if (this.cancelWatch === undefined) return;
    this.cancelWatch();
    this.cancelWatch = undefined;
    this.next();
  }

  /** The wait timer fired: answer the last result now, or after a run in progress. */
  expire(): void {
    this.isExpired = true;
    if (this.cancelWatch !== undefined) this.settle(this.last);
  }

  /** The abort listener (EventListenerObject): the client went away or the server stops. */
  handleEvent(): void {
    this.settle(undefined, abortReason(this.signal));
  }

  private readOrPark(): void {
    if (this.isSettled) return;
    const watchSet = new WatchSet();
    let result: { value: T; meta: QueryMeta };
    try {
      result = readNow(this.ctx, this.mode, this.run, watchSet);
    } catch (error) {
      return this.settle(undefined, error);
    }
    const wentBack = result.meta.index < this.previousIndex;
    if (result.meta.index > this.options.minQueryIndex || wentBack || this.isExpired) return this.settle(result);
    this.previousIndex = result.meta.index;
    this.last = result;
    // memdb fires at the earliest on a microtask, so the watch is armed before any wake.
    this.cancelWatch = this.ctx.state.db.watch(watchSet, this.onChange);
  }

  /** Releases everything, then resolves with `result` or rejects with `error`; once. */
  private settle(result: { value: T; meta: QueryMeta } | undefined, error?: unknown): void {
    if (this.isSettled) return;
    this.isSettled = true;
    clearTimeout(this.timer);
    this.signal.removeEventListener('abort', this);
    this.cancelWatch?.();
    this.cancelWatch = undefined;
    if (result !== undefined) this.resolve(result);
    else this.reject(error);
  }
}

/** What the timer and the wake queue see of a BlockingRun (whatever its result type). */
interface ParkedRun {
  wakeChanged(): void;
  expire(): void;
}

function expireRun(run: ParkedRun): void {
  run.expire();
}

/**
 * Parked queries whose data changed, answered from a later macrotask (setImmediate), in batches
 * of WAKE_BATCH_MAX. A commit fires its watchers synchronously inside the Raft apply; answering
 * them there put 10,000 re-runs ahead of the writer's own reply (acknowledged ~200 ms late) and
 * of every other socket. Bounded by the number of parked queries (each queues at most once per
 * wait, and a parked query holds one HTTP connection).
 */
const wakeQueue: ParkedRun[] = [];
let isWakeDrainScheduled = false;

function queueWake(run: ParkedRun): void {
  wakeQueue.push(run);
  if (isWakeDrainScheduled) return;
  isWakeDrainScheduled = true;
  setImmediate(drainWakes);
}

/** Wakes one batch; each woken query re-runs and answers in this macrotask's microtasks. */
function drainWakes(): void {
  isWakeDrainScheduled = false;
  const batch = wakeQueue.splice(0, WAKE_BATCH_MAX);
  for (const run of batch) run.wakeChanged();
  if (wakeQueue.length > 0 && !isWakeDrainScheduled) {
    isWakeDrainScheduled = true;
    setImmediate(drainWakes);
  }
}

function abortReason(signal: AbortSignalLike): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('blocking query aborted');
}

/** Resolves after `ms`, or rejects with the abort reason if `signal` aborts first. */
function sleep(ms: number, signal: AbortSignalLike): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortReason(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
