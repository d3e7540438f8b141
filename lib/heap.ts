// The agent's V8 heap policy: how far the old generation may grow past its live size before a
// full collection.
//
// Why: V8 lets the old generation grow to up to 4x its live size. An agent running thousands of
// checks opens a socket per probe, and V8 keeps each socket object (with what it references)
// through young-generation collections until the next full one, so the old generation fills
// steadily and the heap settled at ~3x its live size (5,000 HTTP checks: 56 MB live, 187 MB of
// heap, 280-300 MB RSS). Growing the old generation by 30% before a full collection, with the
// young generation (up to 48 MB) on top, keeps the whole heap near twice its live size: the
// target Go's default GOGC=100 sets for Consul. At that load it brought RSS to 184-187 MB for
// about a point of CPU, within the noise of the runs (docs/performance.md, "Health checks").
//
// A --heap-growing-percent given to node (on its command line or in NODE_OPTIONS) wins.

import { setFlagsFromString } from 'node:v8';

/** Growth of the old generation past its live size before a full collection, in percent. */
export const HEAP_GROWING_PERCENT = 30;

/** The V8 flag to set, or undefined when the operator chose one. */
export function heapGrowthFlag(execArgv: readonly string[], nodeOptions: string): string | undefined {
  const isChosen = [...execArgv, ...nodeOptions.split(/\s+/)].some((arg) => /^--heap[-_]growing[-_]percent(=|$)/.test(arg));
  return isChosen ? undefined : `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
}

/** Applies the policy to this process (call once, at start-up). */
export function boundHeapGrowth(): void {
  const flag = heapGrowthFlag(process.execArgv, process.env['NODE_OPTIONS'] ?? '');
  if (flag !== undefined) setFlagsFromString(flag);
}
