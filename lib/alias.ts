// Alias checks: a check whose status mirrors another service instance's (or node's) health, so
// that, for example, a sidecar is critical whenever the service it fronts is.
//
// What it does: the aggregate of the aliased instance's checks and of its node's node-level checks
// (any critical makes the alias critical, else any warning makes it warning, else passing), with
// Consul's output texts. An alias without alias_node watches this agent's local state: it is
// re-evaluated after each local change and at least once a minute. An alias with alias_node
// watches that node's checks in the catalog with blocking reads (stale allowed, at most 15 s
// behind), backing off after repeated failures and reporting them as critical.
//
// Invariants:
//   - The result depends only on the checks seen and on whether the aliased service exists.
//   - After stop() no sink call happens and no timer is left.
//   - An alias check never counts itself. Consul's reads every check of the node, itself included
//     when it is a node-level check (or aliases its own node through the catalog): once critical
//     it would stay critical for good, its output quoting itself deeper on every update. This is
//     our one deliberate difference.
//
// References: Consul agent/checks/alias.go (CheckAlias: runLocal, runQuery, processChecks,
// checkServiceExistsOnRemoteServer), agent/agent.go addCheck (alias wiring).

import type { CheckClock, CheckSink, CheckTimer, RunningCheck } from './checks.js';
import type { CheckStatus } from './definitions.js';
import { goQuote } from './kvs.js';
import type { Logger } from './log.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** What an alias check reads of a check (local state entries and catalog records both fit). */
export interface AliasedCheck {
  readonly CheckID: string;
  readonly Name: string;
  readonly Status: CheckStatus;
  readonly Output: string;
  readonly ServiceID: string;
}

/** What is aliased: a service instance by ID ('' for a node's own health) on a node ('' for this agent). */
export interface AliasTarget {
  readonly node: string;
  readonly serviceId: string;
}

/** The catalog reads a remote alias needs (Health.NodeChecks, Catalog.NodeServices). */
export interface AliasCatalog {
  /** The node's checks once the checks index passes minIndex, or after the wait (at most maxWaitMs). */
  nodeChecks(node: string, minIndex: number, maxWaitMs: number, signal: AbortSignal): Promise<{ index: number; checks: readonly AliasedCheck[] }>;
  /** Whether the node has a service instance with this ID. */
  nodeHasService(node: string, serviceId: string): Promise<boolean>;
}

export interface LocalAliasOptions {
  readonly checkId: string;
  readonly serviceId: string;
  readonly localChecks: () => Iterable<AliasedCheck>;
  readonly serviceExists: (serviceId: string) => boolean;
  readonly sink: CheckSink;
  readonly clock: CheckClock;
}

/** A local alias check; notifyChange() asks for a re-evaluation once the current task is done. */
export interface LocalAliasCheck extends RunningCheck {
  notifyChange(): void;
}

export interface RemoteAliasOptions {
  readonly checkId: string;
  readonly target: AliasTarget;
  /** The node this check is registered on: it reads its own record there, and must skip it. */
  readonly ownNode: string;
  readonly catalog: AliasCatalog;
  readonly sink: CheckSink;
  readonly clock: CheckClock;
  readonly logger: Logger;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** runLocal's maxDurationBetweenUpdates: a local alias re-reads at least this often. */
export const ALIAS_LOCAL_REFRESH_MS = 60_000;
/** runQuery's MaxQueryTime. */
export const ALIAS_QUERY_WAIT_MS = 60_000;
/** checkAliasBackoffMin: failed reads retried at once up to this many times, then backing off. */
export const ALIAS_BACKOFF_AFTER_ATTEMPTS = 3;
/** checkAliasBackoffMaxWait. */
export const ALIAS_BACKOFF_MAX_MS = 60_000;
/** checkServiceExistsOnRemoteServer: tries after the first, each after attempt x 1 s. */
const SERVICE_LOOKUP_RETRIES = 3;

// ---------------------------------------------------------------------------------------------
// Exported API

/**
 * processChecks: the alias's status and output from the checks seen. `serviceExists` is asked
 * only when no check of the aliased service was seen (it may then be a service without checks).
 */
export async function aliasOutcome(target: AliasTarget, checks: Iterable<AliasedCheck>, serviceExists: () => boolean | Promise<boolean>): Promise<{ status: CheckStatus; output: string }> {
  let status: CheckStatus = 'passing';
  let output = 'No checks found.';
  let isServiceFound = false;
  for (const check of checks) {
    const isServiceMatch = check.ServiceID === target.serviceId;
    if (check.ServiceID !== '' && !isServiceMatch) continue;
    if (isServiceMatch) isServiceFound = true;
    if (check.Status === 'critical' || check.Status === 'warning') {
      status = check.Status;
      output = `Aliased check ${goQuote(check.Name)} failing: ${check.Output}`;
      if (check.Status === 'critical') break;
    } else if (status === 'passing') {
      output = 'All checks passing.';
    }
  }
  if (!isServiceFound && !(await serviceExists())) {
    return { status: 'critical', output: `Service ${target.serviceId} could not be found on node ${target.node}` };
  }
  return { status, output };
}

/** runLocal: evaluated at once, after each notified change (coalesced), and every minute. */
export function startLocalAlias(options: LocalAliasOptions): LocalAliasCheck {
  const target: AliasTarget = { node: '', serviceId: options.serviceId };
  let isStopped = false;
  let refreshTimer: CheckTimer | undefined;
  let pendingChange: CheckTimer | undefined;

  const update = (): void => {
    pendingChange = undefined;
    refreshTimer?.cancel();
    refreshTimer = undefined;
    if (isStopped) return;
    const others = [...options.localChecks()].filter((check) => check.CheckID !== options.checkId);
    const exists = (): boolean => options.serviceExists(options.serviceId);
    void aliasOutcome(target, others, exists).then(({ status, output }) => {
      if (isStopped) return;
      options.sink(options.checkId, status, output);
      refreshTimer ??= options.clock.setTimeout(update, ALIAS_LOCAL_REFRESH_MS);
    });
  };

  update();
  return {
    notifyChange(): void {
      // The sink's own write is a local change too: coalescing keeps that from recursing.
      if (isStopped || pendingChange !== undefined) return;
      pendingChange = options.clock.setTimeout(update, 0);
    },
    stop(): void {
      isStopped = true;
      refreshTimer?.cancel();
      pendingChange?.cancel();
      refreshTimer = undefined;
      pendingChange = undefined;
    },
  };
}

/** runQuery: blocking reads of the node's checks, with Consul's retries and back-off. */
export function startRemoteAlias(options: RemoteAliasOptions): RunningCheck {
  const { target, catalog, clock } = options;
  const controller = new AbortController();
  let isStopped = false;
  let waitTimer: CheckTimer | undefined;
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      waitTimer = clock.setTimeout(resolve, ms);
    });

  const serviceExists = async (): Promise<boolean> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await catalog.nodeHasService(target.node, target.serviceId);
      } catch (error) {
        if (attempt > SERVICE_LOOKUP_RETRIES) {
          // Unknown: assume it exists rather than fail the alias on a lookup error.
          options.logger.debug('alias check could not look up the aliased service', { check: options.checkId, error: String(error) });
          return true;
        }
        await pause(attempt * 1000);
        if (isStopped) return true;
      }
    }
  };

  const run = async (): Promise<void> => {
    let minIndex = 0;
    let failures = 0;
    while (!isStopped) {
      if (failures > ALIAS_BACKOFF_AFTER_ATTEMPTS) {
        await pause(Math.min(ALIAS_BACKOFF_MAX_MS, 2 ** Math.min(31, failures - ALIAS_BACKOFF_AFTER_ATTEMPTS) * 1000));
        if (isStopped) return;
      }
      let read: { index: number; checks: readonly AliasedCheck[] };
      try {
        read = await catalog.nodeChecks(target.node, minIndex, ALIAS_QUERY_WAIT_MS, controller.signal);
      } catch (error) {
        if (isStopped) return;
        failures += 1;
        if (failures > 1) options.sink(options.checkId, 'critical', `Failure checking aliased node or service: ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      failures = 0;
      // Always block on the next read: index 0 would answer at once, a busy loop.
      minIndex = Math.max(1, read.index);
      const checks = target.node === options.ownNode ? read.checks.filter((check) => check.CheckID !== options.checkId) : read.checks;
      const outcome = await aliasOutcome(target, checks, serviceExists);
      if (isStopped) return;
      options.sink(options.checkId, outcome.status, outcome.output);
    }
  };

  void run();
  return {
    stop(): void {
      isStopped = true;
      waitTimer?.cancel();
      controller.abort();
    },
  };
}
