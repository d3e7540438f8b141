// Session TTL timers: the leader destroys a TTL session that was not renewed in time.
//
// Consul's leader keeps one timer per session with a TTL, armed for TTL × 2 (the server's grace
// for clients renewing late: structs.SessionTTLMultiplier) at create and reset at every renew.
// When a timer fires, the leader proposes the session's destruction through Raft, which
// releases or deletes its locks and starts their lock-delay like any other invalidation. A new
// leader re-arms a timer for every TTL session in the state (it cannot know how long ago each
// was renewed, so each gets a full TTL × 2); a server losing leadership drops them all.
//
// Soft, leader-only state: nothing here is persisted or replicated. The clock is injected so
// tests drive expiry without waiting.
//
// Invariants: at most one timer per session ID; a timer callback acts only if the epoch it
// captured is still current (style rule 15), so a timer from an earlier term or an earlier reset
// never destroys anything; timers exist only between start() and stop().
//
// Reference: Consul agent/consul/session_ttl.go (initializeSessionTimers, resetSessionTimer,
// createSessionTimer, invalidateSession, clearSessionTimer, clearAllSessionTimers).

import assert from 'node:assert/strict';
import { DurationError, parseDuration, NANOS_PER_MILLI } from './duration.js';
import { applyCommand, type EndpointDeps } from './endpoints.js';
import { SESSION_TTL_MULTIPLIER, sessionList } from './sessions.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** The timer half of a clock (node's setTimeout by default; a fake in tests). */
export interface TimerClock {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface SessionTimersOptions {
  readonly clock?: TimerClock;
  /** Base of the linear backoff between destroy attempts (Consul's invalidateRetryBase). */
  readonly retryBaseMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Destroy attempts per expired session before giving up (Consul's maxInvalidateAttempts). */
export const SESSION_INVALIDATE_ATTEMPTS_MAX = 6;
/** Attempt n waits n × this before retrying (Consul's invalidateRetryBase). */
export const SESSION_INVALIDATE_RETRY_BASE_MS = 10_000;
/** setTimeout's largest delay; a 24h TTL × 2 is well below it. */
const TIMER_DELAY_MS_MAX = 2 ** 31 - 1;

/** Node's timers, unref'd so a pending TTL never keeps the process alive. */
export const SYSTEM_TIMER_CLOCK: TimerClock = {
  setTimeout(callback, delayMs) {
    const handle = setTimeout(callback, delayMs);
    handle.unref();
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

// ---------------------------------------------------------------------------------------------
// Exported API

/** The leader's TTL timers. */
export class SessionTimers {
  /** session ID -> timer handle. Invariant: only sessions with a positive TTL, only while started. */
  private readonly timers = new Map<string, unknown>();
  private deps: EndpointDeps | undefined;
  /** Bumped by start/stop: callbacks from an earlier epoch do nothing. */
  private epoch = 0;
  private readonly clock: TimerClock;
  private readonly retryBaseMs: number;

  constructor(options: SessionTimersOptions = {}) {
    this.clock = options.clock ?? SYSTEM_TIMER_CLOCK;
    this.retryBaseMs = options.retryBaseMs ?? SESSION_INVALIDATE_RETRY_BASE_MS;
  }

  /** Became leader: arm a timer for every TTL session in the state (initializeSessionTimers). */
  start(deps: EndpointDeps): void {
    this.stop();
    this.deps = deps;
    const { value: sessions } = deps.query.state.read((txn) => sessionList(txn));
    for (const session of sessions) this.reset(session);
  }

  /** Lost leadership or shutting down: drop every timer (clearAllSessionTimers). */
  stop(): void {
    this.epoch++;
    for (const handle of this.timers.values()) this.clock.clearTimeout(handle);
    this.timers.clear();
    this.deps = undefined;
  }

  /**
   * A session was created or renewed: (re)arm its timer for TTL × 2. No-op for sessions without
   * a TTL, for an unparsable TTL (the endpoint refused those), and when not started (not leader).
   */
  reset(session: { readonly ID: string; readonly TTL: string }): void {
    if (this.deps === undefined) return;
    const ttlMs = ttlMillis(session.TTL);
    if (ttlMs === 0) return;
    this.clear(session.ID);
    const epoch = this.epoch;
    const delayMs = Math.min(ttlMs * SESSION_TTL_MULTIPLIER, TIMER_DELAY_MS_MAX);
    const handle = this.clock.setTimeout(() => this.expire(session.ID, epoch, handle), delayMs);
    this.timers.set(session.ID, handle);
  }

  /** The session was destroyed: forget its timer. */
  clear(id: string): void {
    const handle = this.timers.get(id);
    if (handle === undefined) return;
    this.clock.clearTimeout(handle);
    this.timers.delete(id);
  }

  /** Number of armed timers. */
  get size(): number {
    return this.timers.size;
  }

  /** Whether a timer is armed for this session. */
  has(id: string): boolean {
    return this.timers.has(id);
  }

  private expire(id: string, epoch: number, handle: unknown): void {
    // A reset replaced this timer, or leadership changed: not ours to act on.
    if (epoch !== this.epoch || this.timers.get(id) !== handle) return;
    this.timers.delete(id);
    void this.invalidate(id, epoch, 1);
  }

  /** Proposes the destroy, retrying with a linear backoff while still leader of this epoch. */
  private async invalidate(id: string, epoch: number, attempt: number): Promise<void> {
    const deps = this.deps;
    assert.ok(deps !== undefined, 'a live epoch has deps');
    try {
      await applyCommand(deps, { type: 'session-destroy', id });
      deps.logger.debug('session TTL expired', { session: id });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (attempt >= SESSION_INVALIDATE_ATTEMPTS_MAX) {
        deps.logger.error('failed to invalidate expired session', { session: id, attempts: attempt, error: reason });
        return;
      }
      deps.logger.warn('session invalidation failed, retrying', { session: id, attempt, error: reason });
      this.clock.setTimeout(() => {
        if (epoch === this.epoch && !this.timers.has(id)) void this.invalidate(id, epoch, attempt + 1);
      }, this.retryBaseMs * attempt);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

/** The TTL in milliseconds, 0 for none (or for a TTL the endpoint would have refused). */
function ttlMillis(ttl: string): number {
  if (ttl === '') return 0;
  try {
    return Math.max(0, parseDuration(ttl) / NANOS_PER_MILLI);
  } catch (error) {
    if (error instanceof DurationError) return 0;
    throw error;
  }
}
