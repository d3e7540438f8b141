// Alias checks (lib/alias.ts): the aggregate rules and texts of Consul's processChecks, the local
// form following the local state, and the remote form's blocking reads, retries and back-off, on
// a manual clock. test/localagent.test.ts covers alias checks registered on a real agent.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { aliasOutcome, startLocalAlias, startRemoteAlias, ALIAS_LOCAL_REFRESH_MS, type AliasCatalog, type AliasedCheck } from '../lib/alias.js';
import type { CheckStatus } from '../lib/definitions.js';
import { nullLogger } from '../lib/log.js';
import { ManualClock } from './support.js';

const check = (CheckID: string, ServiceID: string, Status: CheckStatus, Output = ''): AliasedCheck => ({ CheckID, Name: `${CheckID} name`, Status, Output, ServiceID });
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function recorder(): { results: [CheckStatus, string][]; sink: (id: string, status: CheckStatus, output: string) => void } {
  const results: [CheckStatus, string][] = [];
  return { results, sink: (_id, status, output) => results.push([status, output]) };
}

describe('aliasOutcome (processChecks)', () => {
  const web = { node: 'n1', serviceId: 'web' };
  const exists = () => true;

  test('the worst of the service checks and the node checks; other services do not count', async () => {
    assert.deepEqual(await aliasOutcome(web, [check('a', 'web', 'passing')], exists), { status: 'passing', output: 'All checks passing.' });
    assert.deepEqual(await aliasOutcome(web, [check('a', 'web', 'passing'), check('b', 'db', 'critical')], exists), { status: 'passing', output: 'All checks passing.' });
    assert.deepEqual(await aliasOutcome(web, [check('a', 'web', 'warning', 'slow'), check('b', 'web', 'passing')], exists), { status: 'warning', output: 'Aliased check "a name" failing: slow' });
    assert.deepEqual(await aliasOutcome(web, [check('a', 'web', 'warning', 'slow'), check('serf', '', 'critical', 'gone'), check('c', 'web', 'warning')], exists), {
      status: 'critical',
      output: 'Aliased check "serf name" failing: gone',
    });
  });

  test('a service without checks passes with "No checks found."; a missing one is critical', async () => {
    assert.deepEqual(await aliasOutcome(web, [], () => true), { status: 'passing', output: 'No checks found.' });
    assert.deepEqual(await aliasOutcome(web, [check('serf', '', 'passing')], () => false), { status: 'critical', output: 'Service web could not be found on node n1' });
    let asked = 0;
    await aliasOutcome(web, [check('a', 'web', 'passing')], () => (asked++, false));
    assert.equal(asked, 0, 'existence is asked only when no check of the service was seen');
  });

  test('an alias of a node (no service) follows its node-level checks', async () => {
    const node = { node: 'n1', serviceId: '' };
    assert.deepEqual(await aliasOutcome(node, [check('serf', '', 'passing'), check('a', 'web', 'critical')], exists), { status: 'passing', output: 'All checks passing.' });
    assert.deepEqual(await aliasOutcome(node, [], () => false), { status: 'critical', output: 'Service  could not be found on node n1' });
  });
});

describe('local alias checks', () => {
  test('evaluated at once, after notified changes (coalesced), every minute, never counting itself, silent after stop', async () => {
    const clock = new ManualClock();
    let checks = [check('service:web', 'web', 'passing'), check('alias', '', 'critical')];
    let reads = 0;
    const { results, sink } = recorder();
    const alias = startLocalAlias({ checkId: 'alias', serviceId: 'web', localChecks: () => (reads++, checks), serviceExists: () => true, sink, clock });
    await settle();
    assert.deepEqual(results, [['passing', 'All checks passing.']]);
    checks = [check('service:web', 'web', 'critical', 'down'), check('alias', '', 'passing')];
    alias.notifyChange();
    alias.notifyChange();
    clock.advanceTo(0);
    await settle();
    assert.equal(reads, 2, 'two notifications before the timer fired: one evaluation');
    assert.deepEqual(results.at(-1), ['critical', 'Aliased check "service:web name" failing: down']);
    checks = [check('service:web', 'web', 'passing')];
    clock.advanceTo(ALIAS_LOCAL_REFRESH_MS);
    await settle();
    assert.deepEqual(results.at(-1), ['passing', 'All checks passing.'], 'the minute refresh catches a missed change');
    alias.stop();
    alias.notifyChange();
    clock.advanceTo(10 * ALIAS_LOCAL_REFRESH_MS);
    await settle();
    assert.equal(results.length, 3);
    assert.equal(clock.pendingCount(), 0);
  });

  test('an aliased service that is not registered here is critical, with an empty node in the text', async () => {
    const { results, sink } = recorder();
    const alias = startLocalAlias({ checkId: 'alias', serviceId: 'ghost', localChecks: () => [], serviceExists: () => false, sink, clock: new ManualClock() });
    await settle();
    assert.deepEqual(results, [['critical', 'Service ghost could not be found on node ']]);
    alias.stop();
  });
});

describe('remote alias checks', () => {
  /** A catalog whose reads the test answers one at a time. */
  function scriptedCatalog() {
    const reads: { minIndex: number; resolve: (value: { index: number; checks: AliasedCheck[] }) => void; reject: (error: Error) => void; signal: AbortSignal }[] = [];
    let hasService = true;
    const catalog: AliasCatalog = {
      nodeChecks: (_node, minIndex, _wait, signal) => new Promise((resolve, reject) => reads.push({ minIndex, resolve, reject, signal })),
      nodeHasService: async () => hasService,
    };
    return { catalog, reads, setHasService: (value: boolean) => (hasService = value) };
  }

  test('blocking reads follow the index; results mirror the node\'s checks', async () => {
    const clock = new ManualClock();
    const { catalog, reads, setHasService } = scriptedCatalog();
    const { results, sink } = recorder();
    const alias = startRemoteAlias({ checkId: 'alias', target: { node: 'n2', serviceId: 'web' }, ownNode: 'n1', catalog, sink, clock, logger: nullLogger() });
    await settle();
    assert.equal(reads[0]?.minIndex, 0);
    reads[0]?.resolve({ index: 0, checks: [check('serf', '', 'passing')] });
    await settle();
    assert.deepEqual(results.at(-1), ['passing', 'All checks passing.']);
    assert.equal(reads[1]?.minIndex, 1, 'index 0 becomes 1 so the next read blocks');
    setHasService(false);
    reads[1]?.resolve({ index: 42, checks: [check('serf', '', 'passing')] });
    await settle();
    assert.deepEqual(results.at(-1), ['critical', 'Service web could not be found on node n2']);
    assert.equal(reads[2]?.minIndex, 42);
    alias.stop();
    assert.equal(reads[2]?.signal.aborted, true, 'stop aborts the parked read');
  });

  test('failures: the first is quiet, later ones are critical; after three, back-off doubling to a minute', async () => {
    const clock = new ManualClock();
    const { catalog, reads } = scriptedCatalog();
    const { results, sink } = recorder();
    const alias = startRemoteAlias({ checkId: 'alias', target: { node: 'n2', serviceId: 'web' }, ownNode: 'n1', catalog, sink, clock, logger: nullLogger() });
    for (let attempt = 0; attempt < 4; attempt++) {
      await settle();
      reads[attempt]?.reject(new Error('No known Consul servers'));
    }
    await settle();
    assert.equal(results.length, 3, 'attempts 2 to 4 report');
    assert.deepEqual(results[0], ['critical', 'Failure checking aliased node or service: No known Consul servers']);
    assert.equal(reads.length, 4, 'the fifth read waits for the back-off');
    clock.advanceTo(1999);
    await settle();
    assert.equal(reads.length, 4);
    clock.advanceTo(2000);
    await settle();
    assert.equal(reads.length, 5, '2 s after the fourth failure');
    reads[4]?.reject(new Error('still down'));
    await settle();
    clock.advanceTo(2000 + 3999);
    await settle();
    assert.equal(reads.length, 5);
    clock.advanceTo(6000);
    await settle();
    assert.equal(reads.length, 6, 'then 4 s');
    reads[5]?.resolve({ index: 9, checks: [check('a', 'web', 'passing')] });
    await settle();
    assert.deepEqual(results.at(-1), ['passing', 'All checks passing.']);
    assert.equal(reads.length, 7, 'a success resets the back-off');
    alias.stop();
    assert.equal(clock.pendingCount(), 0);
  });
});
