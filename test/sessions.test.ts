// Rule tests for sessions (lib/sessions.ts): creation checks and defaults, destruction with
// release and delete behaviour, invalidation by check and by node, lock-delay, and the request
// helpers' exact error texts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { kvsGet, kvsList, kvsLock, kvsPreApply } from '../lib/kvs.js';
import { MemDb, WatchSet } from '../lib/memdb.js';
import { bumpTableIndex, STATE_SCHEMA, tableIndex, TABLES, type CheckRecord, type HealthStatus, type SessionCheckRecord, type TombstoneRecord } from '../lib/schema.js';
import {
  invalidateCheckSessions,
  invalidateNodeSessions,
  LOCK_DELAY_SWEEP_KEYS_MIN,
  LockDelay,
  nodeSessions,
  normalizeSessionRequest,
  sessionCreate,
  sessionDestroy,
  sessionGet,
  sessionList,
  sessionTtlValidation,
  SESSION_TTL_MAX_NANOS,
  SESSION_TTL_MIN_DEFAULT_NANOS,
  validateSessionRequest,
  type SessionCreateBody,
  type SessionCreateRequest,
} from '../lib/sessions.js';
import { assertStateError, checkRecord, read, registerNode, write } from './state-support.js';

// ---------------------------------------------------------------------------------------------
// Helpers

function registerCheck(db: MemDb, index: number, node: string, checkId: string, status: Exclude<HealthStatus, 'maintenance'>, serviceId = ''): void {
  write(db, (txn) => {
    txn.insert<CheckRecord>(TABLES.checks, checkRecord(index, { Node: node, CheckID: checkId, Name: checkId, Status: status, ServiceID: serviceId, ServiceName: serviceId, ServiceTags: [] }));
    bumpTableIndex(txn, TABLES.checks, index);
  });
}

function request(id: string, body: SessionCreateBody = {}, agentNode = 'node1'): SessionCreateRequest {
  return normalizeSessionRequest(body, agentNode, id);
}

function create(db: MemDb, index: number, id: string, body: SessionCreateBody = {}): void {
  write(db, (txn) => sessionCreate(txn, index, request(id, body)));
}

function lock(db: MemDb, index: number, key: string, session: string): boolean {
  return write(db, (txn) => kvsLock(txn, index, { Key: key, Value: new TextEncoder().encode('v'), Session: session }));
}

/** A node with a passing serfHealth check: what a joined agent looks like. */
function healthyNode(): MemDb {
  const db = new MemDb(STATE_SCHEMA);
  registerNode(db, 1, 'node1');
  registerCheck(db, 2, 'node1', 'serfHealth', 'passing');
  return db;
}

const sessionIds = (db: MemDb): string[] => read(db, (txn) => sessionList(txn).value.map((session) => session.ID));
const sessionCheckRows = (db: MemDb): SessionCheckRecord[] => read(db, (txn) => [...txn.all<SessionCheckRecord>(TABLES.sessionChecks)]);

// ---------------------------------------------------------------------------------------------
// Request defaults and validation (the endpoint's part)

describe('session request defaults', () => {
  test('an empty body gets the agent node, serfHealth, 15s lock-delay, release and no TTL', () => {
    assert.deepEqual(normalizeSessionRequest(undefined, 'agent-node', 'id-1'), {
      ID: 'id-1',
      Name: '',
      Node: 'agent-node',
      NodeChecks: ['serfHealth'],
      ServiceChecks: [],
      LockDelay: 15e9,
      Behavior: 'release',
      TTL: '',
    });
  });

  test('giving NodeChecks, even empty, replaces the default', () => {
    assert.deepEqual(request('i', { NodeChecks: [] }).NodeChecks, []);
    assert.deepEqual(request('i', { NodeChecks: null }).NodeChecks, []);
    assert.deepEqual(request('i', { NodeChecks: ['a', 'b'] }).NodeChecks, ['a', 'b']);
  });

  test('legacy Checks follow fixupEmptySessionChecks', () => {
    // An explicit empty Checks empties NodeChecks, whatever NodeChecks says.
    assert.deepEqual(request('i', { Checks: [] }).NodeChecks, []);
    assert.deepEqual(request('i', { Checks: [], NodeChecks: ['x'] }).NodeChecks, []);
    // The default check in Checks defers to NodeChecks.
    assert.deepEqual(request('i', { Checks: ['serfHealth'], NodeChecks: ['x'] }).NodeChecks, ['x']);
    // Other legacy checks are kept next to NodeChecks (default included) ...
    assert.deepEqual(request('i', { Checks: ['a'] }).NodeChecks, ['a', 'serfHealth']);
    assert.deepEqual(request('i', { Checks: ['a'], NodeChecks: ['b'] }).NodeChecks, ['a', 'b']);
    // ... unless NodeChecks is explicitly empty.
    assert.deepEqual(request('i', { Checks: ['a'], NodeChecks: [] }).NodeChecks, []);
  });

  test('LockDelay numbers and strings below 1000 ns mean seconds', () => {
    assert.equal(request('i', { LockDelay: 5 }).LockDelay, 5e9);
    assert.equal(request('i', { LockDelay: 0 }).LockDelay, 0);
    assert.equal(request('i', { LockDelay: 2e9 }).LockDelay, 2e9);
    assert.equal(request('i', { LockDelay: 1500.7 }).LockDelay, 1500);
    assert.equal(request('i', { LockDelay: '30s' }).LockDelay, 30e9);
    assert.equal(request('i', { LockDelay: '500ns' }).LockDelay, 500e9);
    assert.equal(request('i', { LockDelay: '0.5s' }).LockDelay, 5e8);
    assert.equal(request('i', { LockDelay: null }).LockDelay, 15e9);
    assertStateError(() => request('i', { LockDelay: '15 seconds' }), 'ERR_REQUEST_DECODE', 'time: unknown unit " seconds" in duration "15 seconds"');
  });

  test('ServiceChecks default their namespace to ""', () => {
    assert.deepEqual(request('i', { ServiceChecks: [{ ID: 'service:web' }] }).ServiceChecks, [{ ID: 'service:web', Namespace: '' }]);
  });

  test("the endpoint's refusals use Consul's texts", () => {
    assert.equal(validateSessionRequest(request('i', { Node: '' })), 'Must provide Node');
    assert.equal(validateSessionRequest(request('i', { Behavior: 'explode' })), "Invalid Behavior setting 'explode'");
    assert.equal(validateSessionRequest(request('i', { Behavior: 'delete', TTL: '30s' })), undefined);
    assert.equal(validateSessionRequest(request('i', { TTL: '5s' })), "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]");
  });

  test('TTL validation accepts none, zero and [10s, 24h] and words errors as Consul does', () => {
    const check = (ttl: string): string | undefined => sessionTtlValidation(ttl, SESSION_TTL_MIN_DEFAULT_NANOS, SESSION_TTL_MAX_NANOS);
    assert.equal(check(''), undefined);
    assert.equal(check('0s'), undefined);
    assert.equal(check('10s'), undefined);
    assert.equal(check('24h'), undefined);
    assert.equal(check('15.0s'), undefined);
    assert.equal(check('9s'), "Invalid Session TTL '9000000000', must be between [10s=24h0m0s]");
    assert.equal(check('25h'), "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]");
    assert.equal(check('-30s'), "Invalid Session TTL '-30000000000', must be between [10s=24h0m0s]");
    assert.equal(check('abc'), `Session TTL 'abc' invalid: time: invalid duration "abc"`);
    assert.equal(sessionTtlValidation('1s', 2e9, 3600e9), "Invalid Session TTL '1000000000', must be between [2s=1h0m0s]");
    assert.equal(sessionTtlValidation('2h', 500e6, 3600e9), "Invalid Session TTL '7200000000000', must be between [500ms=1h0m0s]");
  });
});

// ---------------------------------------------------------------------------------------------
// Creation

describe('session creation', () => {
  test('the node must be registered', () => {
    const db = new MemDb(STATE_SCHEMA);
    assertStateError(() => create(db, 1, 's1', { NodeChecks: [] }), 'ERR_MISSING_NODE', 'Missing node registration');
    assert.deepEqual(sessionIds(db), []);
  });

  test('every check must exist on the node', () => {
    const db = new MemDb(STATE_SCHEMA);
    registerNode(db, 1, 'node1');
    assertStateError(() => create(db, 2, 's1'), 'ERR_MISSING_CHECK', "Missing check 'serfHealth' registration");
    registerCheck(db, 3, 'other', 'mine', 'passing');
    assertStateError(() => create(db, 4, 's1', { NodeChecks: ['mine'] }), 'ERR_MISSING_CHECK', "Missing check 'mine' registration");
  });

  test('no check may be critical, whether node or service check', () => {
    const db = healthyNode();
    registerCheck(db, 3, 'node1', 'disk', 'critical');
    registerCheck(db, 4, 'node1', 'service:web', 'critical', 'web');
    assertStateError(() => create(db, 5, 's1', { NodeChecks: ['serfHealth', 'disk'] }), 'ERR_CHECK_CRITICAL', "Check 'disk' is in critical state");
    assertStateError(() => create(db, 5, 's1', { ServiceChecks: [{ ID: 'service:web' }] }), 'ERR_CHECK_CRITICAL', "Check 'service:web' is in critical state");
    registerCheck(db, 6, 'node1', 'mem', 'warning');
    create(db, 7, 's1', { NodeChecks: ['serfHealth', 'mem'] });
    assert.deepEqual(sessionIds(db), ['s1']);
  });

  test('the state store refuses an empty ID and an unknown behaviour', () => {
    const db = healthyNode();
    assertStateError(() => create(db, 3, ''), 'ERR_MISSING_SESSION_ID', 'Missing session ID');
    assertStateError(() => create(db, 3, 's1', { Behavior: 'explode' }), 'ERR_INVALID_SESSION_BEHAVIOR', 'Invalid session behavior: explode');
    write(db, (txn) => sessionCreate(txn, 4, { ...request('s2'), Behavior: '' }));
    assert.equal(read(db, (txn) => sessionGet(txn, 's2').value?.Behavior), 'release');
  });

  test('a session records its indexes and links every check it depends on', () => {
    const db = healthyNode();
    registerCheck(db, 3, 'node1', 'service:web', 'passing', 'web');
    create(db, 4, 's1', { Name: 'leader', TTL: '30s', ServiceChecks: [{ ID: 'service:web' }] });
    const session = read(db, (txn) => sessionGet(txn, 's1'));
    assert.equal(session.index, 4);
    assert.deepEqual(session.value, {
      ID: 's1',
      Name: 'leader',
      Node: 'node1',
      NodeChecks: ['serfHealth'],
      ServiceChecks: [{ ID: 'service:web', Namespace: '' }],
      LockDelay: 15e9,
      Behavior: 'release',
      TTL: '30s',
      CreateIndex: 4,
      ModifyIndex: 4,
    });
    assert.deepEqual(
      sessionCheckRows(db).map((row) => [row.Node, row.CheckID, row.Session]),
      [
        ['node1', 'serfHealth', 's1'],
        ['node1', 'service:web', 's1'],
      ],
    );
    assert.equal(read(db, (txn) => tableIndex(txn, TABLES.sessions)), 4);
  });

  test('reads report the sessions table index; an unknown session is undefined', () => {
    const db = healthyNode();
    registerNode(db, 3, 'node2');
    create(db, 4, 'a');
    write(db, (txn) => sessionCreate(txn, 5, request('b', { Node: 'node2', NodeChecks: [] })));
    assert.deepEqual(read(db, (txn) => sessionGet(txn, 'nope')), { index: 5, value: undefined });
    assert.equal(read(db, (txn) => sessionGet(txn, 'a')).index, 5);
    assert.deepEqual(
      read(db, (txn) => nodeSessions(txn, 'node2')).value.map((session) => session.ID),
      ['b'],
    );
    assert.equal(read(db, (txn) => nodeSessions(txn, 'node1')).index, 5);
    assert.deepEqual(sessionIds(db), ['a', 'b']);
  });
});

// ---------------------------------------------------------------------------------------------
// Destruction and invalidation

describe('session destruction', () => {
  test('release behaviour clears the lock, keeps LockIndex, bumps ModifyIndex and starts lock-delay', () => {
    const db = healthyNode();
    create(db, 3, 's1', { LockDelay: '10s' });
    lock(db, 4, 'leader', 's1');
    let now = 50_000;
    const lockDelay = new LockDelay(() => now);
    assert.equal(
      write(db, (txn) => sessionDestroy(txn, 5, 's1', lockDelay)),
      true,
    );
    const entry = read(db, (txn) => kvsGet(txn, 'leader')).value;
    assert.deepEqual([entry?.Session, entry?.LockIndex, entry?.CreateIndex, entry?.ModifyIndex], ['', 1, 4, 5]);
    assert.deepEqual(sessionIds(db), []);
    assert.deepEqual(sessionCheckRows(db), []);
    assert.deepEqual(
      read(db, (txn) => [tableIndex(txn, TABLES.sessions), tableIndex(txn, TABLES.kvs), tableIndex(txn, TABLES.sessionChecks)]),
      [5, 5, 5],
    );
    assert.equal(lockDelay.isLocked('leader'), true);
    assert.equal(lockDelay.expiration('leader'), 60_000);
    assert.equal(kvsPreApply('lock', 'leader', lockDelay), false);
    now = 60_000;
    assert.equal(lockDelay.isLocked('leader'), false);
  });

  test('delete behaviour deletes held keys with tombstones and starts lock-delay', () => {
    const db = healthyNode();
    create(db, 3, 's1', { Behavior: 'delete' });
    lock(db, 4, 'locks/a', 's1');
    lock(db, 5, 'locks/b', 's1');
    const lockDelay = new LockDelay(() => 0);
    write(db, (txn) => sessionDestroy(txn, 6, 's1', lockDelay));
    assert.deepEqual(read(db, (txn) => kvsList(txn, 'locks/')), { index: 6, value: [] });
    assert.deepEqual(
      read(db, (txn) => [...txn.all<TombstoneRecord>(TABLES.tombstones)]),
      [
        { Key: 'locks/a', Index: 6 },
        { Key: 'locks/b', Index: 6 },
      ],
    );
    assert.equal(lockDelay.isLocked('locks/a'), true);
    assert.equal(lockDelay.isLocked('locks/b'), true);
  });

  test('keys the session does not hold are untouched', () => {
    const db = healthyNode();
    create(db, 3, 's1');
    create(db, 4, 's2');
    lock(db, 5, 'mine', 's1');
    lock(db, 6, 'theirs', 's2');
    const lockDelay = new LockDelay(() => 0);
    write(db, (txn) => sessionDestroy(txn, 7, 's1', lockDelay));
    assert.deepEqual(
      read(db, (txn) => [kvsGet(txn, 'theirs').value?.Session, kvsGet(txn, 'theirs').value?.ModifyIndex]),
      ['s2', 6],
    );
    assert.equal(lockDelay.isLocked('theirs'), false);
  });

  test('lock-delay is capped at 60s, and a zero LockDelay sets none', () => {
    const db = healthyNode();
    create(db, 3, 'slow', { LockDelay: 3600e9 });
    create(db, 4, 'none', { LockDelay: 0 });
    lock(db, 5, 'a', 'slow');
    lock(db, 6, 'b', 'none');
    const lockDelay = new LockDelay(() => 0);
    write(db, (txn) => sessionDestroy(txn, 7, 'slow', lockDelay));
    write(db, (txn) => sessionDestroy(txn, 8, 'none', lockDelay));
    assert.equal(lockDelay.expiration('a'), 60_000);
    assert.equal(lockDelay.isLocked('b'), false);
  });

  test('destroying an unknown session is a no-op', () => {
    const db = healthyNode();
    assert.equal(
      write(db, (txn) => sessionDestroy(txn, 3, 'nope', new LockDelay(() => 0))),
      false,
    );
    assert.equal(read(db, (txn) => tableIndex(txn, TABLES.sessions)), 0);
  });

  test('a check going critical destroys exactly the sessions that depend on it', () => {
    const db = healthyNode();
    registerCheck(db, 3, 'node1', 'disk', 'passing');
    registerNode(db, 4, 'node2');
    registerCheck(db, 5, 'node2', 'disk', 'passing');
    create(db, 6, 'on-disk', { NodeChecks: ['serfHealth', 'disk'] });
    create(db, 7, 'serf-only');
    write(db, (txn) => sessionCreate(txn, 8, request('other-node', { Node: 'node2', NodeChecks: ['disk'] })));
    lock(db, 9, 'k', 'on-disk');
    const lockDelay = new LockDelay(() => 0);
    write(db, (txn) => invalidateCheckSessions(txn, 10, 'node1', 'disk', lockDelay));
    assert.deepEqual(sessionIds(db), ['other-node', 'serf-only']);
    assert.deepEqual(
      read(db, (txn) => [kvsGet(txn, 'k').value?.Session, kvsGet(txn, 'k').value?.ModifyIndex]),
      ['', 10],
    );
    assert.equal(lockDelay.isLocked('k'), true);
    assert.ok(sessionCheckRows(db).every((row) => row.Session !== 'on-disk'));
  });

  test('a check shared by several sessions destroys them all, each with its own behaviour', () => {
    const db = healthyNode();
    create(db, 3, 'r', { Behavior: 'release' });
    create(db, 4, 'd', { Behavior: 'delete' });
    lock(db, 5, 'released', 'r');
    lock(db, 6, 'deleted', 'd');
    write(db, (txn) => invalidateCheckSessions(txn, 7, 'node1', 'serfHealth', new LockDelay(() => 0)));
    assert.deepEqual(sessionIds(db), []);
    assert.deepEqual(
      read(db, (txn) => kvsList(txn, '').value.map((entry) => [entry.Key, entry.Session])),
      [['released', '']],
    );
    assert.deepEqual(sessionCheckRows(db), []);
  });

  test('deleting a node destroys every session on it and only those', () => {
    const db = healthyNode();
    registerNode(db, 3, 'node2');
    create(db, 4, 'a', { Behavior: 'delete' });
    create(db, 5, 'b');
    write(db, (txn) => sessionCreate(txn, 6, request('c', { Node: 'node2', NodeChecks: [] })));
    lock(db, 7, 'x', 'a');
    lock(db, 8, 'y', 'b');
    lock(db, 9, 'z', 'c');
    const lockDelay = new LockDelay(() => 0);
    write(db, (txn) => invalidateNodeSessions(txn, 10, 'node1', lockDelay));
    assert.deepEqual(sessionIds(db), ['c']);
    assert.deepEqual(
      read(db, (txn) => kvsList(txn, '').value.map((entry) => [entry.Key, entry.Session, entry.ModifyIndex])),
      [
        ['y', '', 10],
        ['z', 'c', 9],
      ],
    );
    assert.deepEqual(
      [lockDelay.isLocked('x'), lockDelay.isLocked('y'), lockDelay.isLocked('z')],
      [true, true, false],
    );
  });

  test('a blocking session info query wakes when the session is destroyed', () => {
    const db = healthyNode();
    create(db, 3, 's1');
    const watchSet = new WatchSet();
    read(db, (txn) => sessionGet(txn, 's1'), watchSet);
    let isFired = false;
    db.watch(watchSet, () => {
      isFired = true;
    });
    write(db, (txn) => sessionDestroy(txn, 4, 's1', new LockDelay(() => 0)));
    assert.equal(isFired, true);
  });
});

// ---------------------------------------------------------------------------------------------
// Lock-delay table

describe('LockDelay', () => {
  test('a key is locked until its expiry, exclusive', () => {
    let now = 1_000;
    const lockDelay = new LockDelay(() => now);
    lockDelay.setExpiration('k', 2e9);
    assert.equal(lockDelay.isLocked('k'), true);
    now = 2_999;
    assert.equal(lockDelay.isLocked('k'), true);
    now = 3_000;
    assert.equal(lockDelay.isLocked('k'), false);
    assert.equal(lockDelay.isLocked('never'), false);
  });

  test('a later invalidation replaces the expiry, even with a shorter one', () => {
    let now = 0;
    const lockDelay = new LockDelay(() => now);
    lockDelay.setExpiration('k', 60e9);
    now = 1_000;
    lockDelay.setExpiration('k', 1e9);
    assert.equal(lockDelay.expiration('k'), 2_000);
  });

  test('expired keys are swept so the table stays near the live keys', () => {
    let now = 0;
    const lockDelay = new LockDelay(() => now);
    for (let i = 0; i < 10 * LOCK_DELAY_SWEEP_KEYS_MIN; i++) {
      now = i;
      lockDelay.setExpiration(`key-${i}`, 1e6);
    }
    assert.ok(lockDelay.size <= 2 * LOCK_DELAY_SWEEP_KEYS_MIN, `size ${lockDelay.size}`);
    assert.equal(lockDelay.isLocked(`key-${10 * LOCK_DELAY_SWEEP_KEYS_MIN - 1}`), true);
  });
});
