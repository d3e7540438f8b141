// Lifeguard's protocol math for memberlist's SWIM core: the suspicion timer that shrinks as
// independent confirmations arrive (Lifeguard section IV-B, "Dogpile"), the local health
// awareness score that stretches our own probe interval when we are the slow one (Lifeguard
// section IV-A, "Self-awareness"), and the other size-scaled intervals (push/pull scale).
//
// Everything here is a pure function of its arguments or a small value object driven by
// explicit `nowMs` values: no clocks, no timers. swim.ts owns the timers and checks the
// deadlines computed here in its tick().
//
// Formulas follow hashicorp/memberlist v0.2.2 exactly (shared/spec/wire.md §2.8):
//   util.go suspicionTimeout, pushPullScale; suspicion.go newSuspicion, remainingSuspicionTime,
//   Confirm; awareness.go ApplyDelta, ScaleTimeout; state.go suspectNode (the choice of k).
//
// Not here: which node is suspected, gossip of the suspect message, refutation (swim.ts).
//
// Invariants: a Suspicion never counts more than k confirmations and never counts one accuser
// twice; its deadline never moves later after a confirmation; an awareness score stays in
// [0, max-1].

import assert from 'node:assert/strict';

// ---------------------------------------------------------------------------------------------
// Limits

/** memberlist pushPullScaleThreshold: push/pull intervals start growing above this many nodes. */
export const PUSH_PULL_SCALE_THRESHOLD = 32;
/** Distinct accusers one suspicion remembers; k is SuspicionMult-2, so this is generous. */
export const SUSPICION_CONFIRMATIONS_MAX = 64;

// ---------------------------------------------------------------------------------------------
// Exported API: formulas

/**
 * The minimum suspicion timeout (memberlist suspicionTimeout):
 * SuspicionMult × max(1, log10(max(1, n))) × ProbeInterval, where the node scale is truncated to
 * thousandths as memberlist does (`time.Duration(nodeScale*1000)`). `n` is the number of known nodes.
 */
export function suspicionTimeoutMs(suspicionMult: number, n: number, probeIntervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)));
  return (suspicionMult * Math.trunc(nodeScale * 1000) * probeIntervalMs) / 1000;
}

/** The maximum suspicion timeout: SuspicionMaxTimeoutMult × the minimum. */
export function suspicionMaxTimeoutMs(suspicionMaxTimeoutMult: number, minTimeoutMs: number): number {
  return suspicionMaxTimeoutMult * minTimeoutMs;
}

/**
 * Confirmations a suspicion waits for (memberlist suspectNode): SuspicionMult-2, so that with
 * the expected confirmations the timeout reaches its minimum about two probe intervals early;
 * 0 when the cluster has too few other nodes (n-2, without us and the suspect) to supply them.
 */
export function suspicionConfirmationsK(suspicionMult: number, n: number): number {
  const k = suspicionMult - 2;
  return n - 2 < k ? 0 : Math.max(0, k);
}

/**
 * memberlist remainingSuspicionTime: the timeout after `confirmations` of `k` expected, less the
 * time already elapsed. The timeout falls logarithmically from max toward min
 * (max - ln(c+1)/ln(k+1) × (max-min)), is floored to whole milliseconds, and never goes below min.
 * May be ≤ 0: the timer is then due now.
 */
export function remainingSuspicionTimeMs(confirmations: number, k: number, elapsedMs: number, minMs: number, maxMs: number): number {
  assert(k >= 1 && confirmations >= 0, 'remainingSuspicionTime needs k >= 1');
  const fraction = Math.log(confirmations + 1) / Math.log(k + 1);
  const rawSeconds = maxMs / 1000 - fraction * (maxMs / 1000 - minMs / 1000);
  const timeoutMs = Math.max(minMs, Math.floor(1000 * rawSeconds));
  return timeoutMs - elapsedMs;
}

/**
 * memberlist pushPullScale: the push/pull interval, multiplied by ceil(log2(n) - log2(32)) + 1
 * once there are more than 32 nodes, so full-state syncs do not saturate large clusters.
 */
export function pushPullScale(intervalMs: number, n: number): number {
  if (n <= PUSH_PULL_SCALE_THRESHOLD) return intervalMs;
  const multiplier = Math.ceil(Math.log2(n) - Math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1;
  return multiplier * intervalMs;
}

/** Lifeguard awareness (memberlist awareness.ApplyDelta): add delta and clamp to [0, max-1]. */
export function applyAwarenessDelta(score: number, delta: number, awarenessMaxMultiplier: number): number {
  return Math.min(Math.max(score + delta, 0), Math.max(awarenessMaxMultiplier - 1, 0));
}

/** memberlist awareness.ScaleTimeout: timeout × (score + 1). */
export function scaleTimeoutMs(timeoutMs: number, score: number): number {
  return timeoutMs * (score + 1);
}

// ---------------------------------------------------------------------------------------------
// Exported API: one suspicion timer

/**
 * The suspicion of one node (memberlist suspicion). It starts at `max` when confirmations are
 * expected (k ≥ 1), else at `min`; each new distinct accuser, up to k of them, pulls the deadline
 * in along remainingSuspicionTimeMs. The owner checks `deadlineMs` against its clock and, when it
 * is due, also checks `stateChangeMs` against the node (an epoch: a stale timer does nothing).
 */
export class Suspicion {
  /** Invariant: confirmations ≤ k; every accuser counted is in `accusers`. */
  private confirmationCount = 0;
  private readonly accusers = new Set<string>();
  /** Absolute time at which the node is declared dead, unless it refutes first. */
  deadlineMs: number;
  /** Set once the owner has re-probed the suspect ahead of the deadline (swim.ts, suspect rechecks). */
  isRechecked = false;
  /** While a push/pull with the suspect (begun because it answered a probe) is in flight, the deadline waits for it. */
  isAwaitingPull = false;

  constructor(
    from: string,
    readonly k: number,
    readonly minMs: number,
    readonly maxMs: number,
    readonly startMs: number,
    /** The node's StateChange when the suspicion began: the epoch the timeout re-checks. */
    readonly stateChangeMs: number,
  ) {
    assert(minMs >= 0 && maxMs >= minMs, 'suspicion bounds are ordered');
    this.accusers.add(from);
    this.deadlineMs = startMs + (k < 1 ? minMs : maxMs);
  }

  /** Confirmations counted so far (the original accuser is not one). */
  get confirmations(): number {
    return this.confirmationCount;
  }

  /**
   * A suspect message from `from` (memberlist Confirm). Returns true when it was a new
   * confirmation (the caller then re-gossips it), false when k is reached or `from` is known.
   */
  confirm(from: string): boolean {
    if (this.confirmationCount >= this.k) return false;
    if (this.accusers.has(from) || this.accusers.size >= SUSPICION_CONFIRMATIONS_MAX) return false;
    this.accusers.add(from);
    this.confirmationCount++;
    const before = this.deadlineMs;
    // Measured from the start, as memberlist re-arms its timer with (timeout - elapsed).
    this.deadlineMs = this.startMs + remainingSuspicionTimeMs(this.confirmationCount, this.k, 0, this.minMs, this.maxMs);
    assert(this.deadlineMs <= before, 'a confirmation never delays the suspicion timeout');
    return true;
  }
}
