// lib/heap.ts: the heap growth flag is set unless the operator chose one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HEAP_GROWING_PERCENT, heapGrowthFlag } from '../lib/heap.js';

test('the agent bounds heap growth unless node was given its own --heap-growing-percent', () => {
  assert.equal(heapGrowthFlag([], ''), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  assert.equal(heapGrowthFlag(['--max-old-space-size=512'], '--enable-source-maps'), '--heap-growing-percent=30');
  assert.equal(heapGrowthFlag(['--heap-growing-percent=20'], ''), undefined);
  assert.equal(heapGrowthFlag([], '--trace-gc  --heap_growing_percent=80'), undefined);
  assert.equal(heapGrowthFlag(['--heap-growing-percentage=1'], ''), '--heap-growing-percent=30', 'only the flag itself counts');
});
