// Catalog and health state: Consul's write rules, the index each read returns, watch precision,
// session invalidation, and a seeded model-based comparison against plain Maps.
//
// Replay one seed of the model test: CATALOG_SEED=<n> node --import tsx --test test/catalog.test.ts

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  aggregateStatus,
  checkServiceNodes,
  checksInState,
  coordinate,
  coordinateBatchUpdate,
  coordinates,
  deleteCheck,
  deregister,
  ensureCheck,
  ensureRegistration,
  ensureService,
  getNode,
  nodeCheck,
  nodeChecks,
  nodeService,
  nodeServices,
  nodes,
  serviceChecks,
  serviceNodes,
  services,
  txnApply,
  txnPreCheck,
  txnRead,
  txnUnknownVerbErrors,
  type DeregisterRequest,
  type TxnNode,
  type TxnOp,
  type TxnOpsResponse,
  type HealthCheckInput,
  type RegisterRequest,
} from '../lib/catalog.js';
import { MemDb, WatchSet, type ReadTxn } from '../lib/memdb.js';
import { STATE_SCHEMA, StateError, TABLES, type CheckRecord, type CoordinateRecord, type IndexRecord, type NodeRecord, type ServiceRecord } from '../lib/schema.js';
import { LockDelay, sessionCreate, sessionGet } from '../lib/sessions.js';
import { assertStateError, checkRecord, read, write } from './state-support.js';
import { mulberry32 } from './support.js';

// ---------------------------------------------------------------------------------------------
// Helpers

const lockDelay = new LockDelay(() => 0);

function newDb(): MemDb {
  return new MemDb(STATE_SCHEMA);
}

function register(db: MemDb, index: number, req: RegisterRequest): void {
  write(db, (txn) => ensureRegistration(txn, index, req, lockDelay));
}

function dereg(db: MemDb, index: number, req: DeregisterRequest): void {
  write(db, (txn) => deregister(txn, index, req, lockDelay));
}

function indexEntry(db: MemDb, key: string): number | undefined {
  return read(db, (txn) => txn.first<IndexRecord>(TABLES.index, 'id', key)?.Value);
}

const webCheck: HealthCheckInput = { CheckID: 'service:web-1', Name: 'web alive', Status: 'passing', ServiceID: 'web-1' };

/** n1 with web-1 (tags v1, primary), its check, and a passing serfHealth: indexes 1..3. */
function seedWeb(db: MemDb): void {
  register(db, 1, { Node: 'n1', Address: '10.0.0.1', NodeMeta: { env: 'prod' } });
  register(db, 2, { Node: 'n1', Address: '10.0.0.1', NodeMeta: { env: 'prod' }, Service: { ID: 'web-1', Service: 'web', Tags: ['v1', 'Primary'], Port: 80 }, Checks: [webCheck] });
  register(db, 3, { Node: 'n1', Address: '10.0.0.1', NodeMeta: { env: 'prod' }, Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' } });
}

// ---------------------------------------------------------------------------------------------
// Rule tests

describe('registration', () => {
  test('registering a node creates it with CreateIndex = ModifyIndex = the Raft index', () => {
    const db = newDb();
    register(db, 5, { Node: 'n1', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.1' }, NodeMeta: { rack: 'a' } });
    const node = read(db, (txn) => getNode(txn, 'n1'));
    assert.equal(node.index, 5);
    assert.deepEqual(node.value, { ID: '', Node: 'n1', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.1' }, Meta: { rack: 'a' }, CreateIndex: 5, ModifyIndex: 5 });
  });

  test('a service registration for an unknown node creates the node too', () => {
    const db = newDb();
    register(db, 7, { Node: 'n1', Address: '10.0.0.1', Service: { Service: 'web', Port: 80 } });
    const node = read(db, (txn) => getNode(txn, 'n1').value);
    assert.equal(node?.CreateIndex, 7);
    const instance = read(db, (txn) => nodeService(txn, 'n1', 'web').value);
    assert.equal(instance?.ID, 'web', 'the service ID defaults to its name');
    assert.deepEqual(instance?.Weights, { Passing: 1, Warning: 1 }, 'weights default to 1/1');
    assert.equal(instance?.CreateIndex, 7);
  });

  test('a check registration for an unknown node creates the node too', () => {
    const db = newDb();
    register(db, 4, { Node: 'n1', Address: '10.0.0.1', Check: { Name: 'disk' } });
    assert.ok(read(db, (txn) => getNode(txn, 'n1').value));
    const check = read(db, (txn) => nodeCheck(txn, 'n1', 'disk').value);
    assert.equal(check?.CheckID, 'disk', 'the check ID defaults to its name');
    assert.equal(check?.Status, 'critical', 'a check without a status is critical');
    assert.equal(check?.Node, 'n1', "a check's node defaults to the request's");
  });

  test('SkipNodeUpdate leaves an existing node alone but still creates a missing one', () => {
    const db = newDb();
    register(db, 1, { Node: 'n1', Address: '10.0.0.1' });
    register(db, 2, { Node: 'n1', Address: '10.9.9.9', SkipNodeUpdate: true, Service: { Service: 'web' } });
    assert.equal(read(db, (txn) => getNode(txn, 'n1').value?.Address), '10.0.0.1');
    register(db, 3, { Node: 'n2', SkipNodeUpdate: true, Check: { Name: 'x', Status: 'passing' } });
    assert.equal(read(db, (txn) => getNode(txn, 'n2').value?.CreateIndex), 3);
  });

  test('a service check copies the service name and tags into the check', () => {
    const db = newDb();
    seedWeb(db);
    const check = read(db, (txn) => nodeCheck(txn, 'n1', 'service:web-1').value);
    assert.equal(check?.ServiceName, 'web');
    assert.deepEqual(check?.ServiceTags, ['v1', 'Primary']);
  });
});

describe('refusals', () => {
  test("a check naming an unknown service is refused with Consul's message before anything is written", () => {
    const db = newDb();
    const txn = db.writeTxn();
    const req: RegisterRequest = { Node: 'n9', Address: '10.0.0.9', Service: { Service: 'web' }, Checks: [{ CheckID: 'c1', ServiceID: 'nope' }] };
    assertStateError(() => ensureRegistration(txn, 1, req, lockDelay), 'ERR_UNKNOWN_SERVICE_ID', "Unknown service ID 'nope' for check ID 'c1'");
    assert.equal(txn.first(TABLES.nodes, 'id', 'n9'), undefined, 'validation happens before the first write');
    assert.equal(txn.first(TABLES.index, 'id', 'nodes'), undefined);
    txn.abort();
  });

  test('a service check must name the service ID exactly; the state-level writers say "Missing ... registration"', () => {
    const db = newDb();
    seedWeb(db);
    assertStateError(() => register(db, 4, { Node: 'n1', Address: '10.0.0.1', Check: { CheckID: 'c2', ServiceID: 'WEB-1' } }), 'ERR_UNKNOWN_SERVICE_ID', "Unknown service ID 'WEB-1' for check ID 'c2'");
    assertStateError(() => write(db, (txn) => ensureCheck(txn, 4, { Node: 'n1', CheckID: 'c2', ServiceID: 'ghost' }, lockDelay)), 'ERR_MISSING_SERVICE', 'Missing service registration');
    assertStateError(() => write(db, (txn) => ensureCheck(txn, 4, { Node: 'ghost', CheckID: 'c2' }, lockDelay)), 'ERR_MISSING_NODE', 'Missing node registration');
    assertStateError(() => write(db, (txn) => ensureService(txn, 4, 'ghost', { Service: 'web' })), 'ERR_MISSING_NODE', 'Missing node registration');
  });

  test("malformed registrations are refused with Catalog.Register's messages", () => {
    const db = newDb();
    const cases: [RegisterRequest, string, string][] = [
      [{ Node: '', Address: 'a' }, 'ERR_MISSING_NODE_NAME', 'Must provide node'],
      [{ Node: 'n1' }, 'ERR_MISSING_ADDRESS', 'Must provide address if SkipNodeUpdate is not set'],
      [{ Node: 'n1', Address: 'a', ID: 'abc' }, 'ERR_BAD_NODE_ID', 'Bad node ID: uuid string is wrong length'],
      [{ Node: 'n1', Address: 'a', ID: '0123456789abcdef0123456789abcdef0123' }, 'ERR_BAD_NODE_ID', 'Bad node ID: uuid is improperly formatted'],
      [{ Node: 'n1', Address: 'a', ID: 'g1234567-89ab-cdef-0123-456789abcdef' }, 'ERR_BAD_NODE_ID', "Bad node ID: encoding/hex: invalid byte: U+0067 'g'"],
      [{ Node: 'n1', Address: 'a', Service: { ID: 'x' } }, 'ERR_MISSING_SERVICE_NAME', 'Must provide service name (Service.Service) when service ID is provided'],
      [{ Node: 'n1', Address: 'a', Service: { Service: 'web', Address: '0.0.0.0' } }, 'ERR_INVALID_SERVICE_ADDRESS', 'Invalid service address'],
      [{ Node: 'n1', Address: 'a', Check: { Node: 'n2', CheckID: 'c' } }, 'ERR_CHECK_NODE_MISMATCH', "Node 'n2' for check 'c' doesn't match register request node 'n1'"],
      [
        { Node: 'n1', Address: 'a', Service: { Service: 'web', Meta: { 'bad key': 'v' } } },
        'ERR_INVALID_SERVICE_META',
        "failed inserting service: Invalid Service Meta for node n1 and serviceID web: Couldn't load metadata pair ('bad key', 'v'): Key contains invalid characters",
      ],
      [{ Node: 'n1', Address: 'a', Check: { Status: 'passing' } }, 'ERR_MISSING_CHECK_ID', `failed inserting check on node "n1": failed inserting check: failed to build index 'id': object is missing a value for this index`],
      [{ Node: 'n1', Address: 'a', Check: { CheckID: 'c', Status: 'bogus' } }, 'ERR_INVALID_CHECK_STATUS', 'Invalid check status: "bogus"'],
    ];
    for (const [req, code, message] of cases) assertStateError(() => register(db, 1, req), code, message);
    assert.equal(read(db, (txn) => nodes(txn).value.length), 0);
  });

  test('a node ID may not take a name held by another node whose serfHealth is passing', () => {
    const db = newDb();
    const idA = 'aaaaaaaa-0000-0000-0000-000000000001';
    const idB = 'bbbbbbbb-0000-0000-0000-000000000002';
    register(db, 1, { ID: idA, Node: 'n1', Address: '10.0.0.1', Check: { CheckID: 'serfHealth', Status: 'passing' } });
    assertStateError(
      () => register(db, 2, { ID: idB, Node: 'N1', Address: '10.0.0.2' }),
      'ERR_NODE_NAME_RESERVED',
      `failed inserting node: Error while renaming Node ID: "${idB}": Node name N1 is reserved by node ${idA} with name n1 (10.0.0.1)`,
    );
    // Once serfHealth is critical the name is free: the record is replaced in place.
    register(db, 3, { Node: 'n1', Address: '10.0.0.1', ID: idA, Check: { CheckID: 'serfHealth', Status: 'critical' } });
    register(db, 4, { ID: idB, Node: 'n1', Address: '10.0.0.2' });
    assert.equal(read(db, (txn) => getNode(txn, 'n1').value?.ID), idB);
  });

  test('a known node ID under a new name renames the node: the old node goes with all it carried', () => {
    const db = newDb();
    const id = 'aaaaaaaa-0000-0000-0000-000000000001';
    register(db, 1, { ID: id, Node: 'old', Address: '10.0.0.1', Service: { Service: 'web' } });
    register(db, 2, { ID: id, Node: 'new', Address: '10.0.0.1' });
    assert.equal(read(db, (txn) => getNode(txn, 'old').value), undefined);
    assert.deepEqual(read(db, (txn) => serviceNodes(txn, 'web').value), []);
    const renamed = read(db, (txn) => getNode(txn, 'new').value);
    assert.equal(renamed?.CreateIndex, 1, 'the renamed node keeps its CreateIndex, as in Consul');
    assert.equal(renamed?.ModifyIndex, 2);
  });
});

describe('ModifyIndex', () => {
  test('re-registering identical data moves no ModifyIndex and no index entry', () => {
    const db = newDb();
    seedWeb(db);
    const before = read(db, (txn) => [...txn.all<IndexRecord>(TABLES.index)]);
    const sequence = db.sequence;
    register(db, 9, { Node: 'n1', Address: '10.0.0.1', NodeMeta: { env: 'prod' }, Service: { ID: 'web-1', Service: 'web', Tags: ['v1', 'Primary'], Port: 80 }, Checks: [webCheck] });
    register(db, 10, { Node: 'n1', Address: '10.0.0.1', NodeMeta: { env: 'prod' }, Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' } });
    assert.equal(db.sequence, sequence + 2);
    assert.deepEqual(read(db, (txn) => [...txn.all<IndexRecord>(TABLES.index)]), before);
    assert.equal(read(db, (txn) => getNode(txn, 'n1').value?.ModifyIndex), 1);
    assert.equal(read(db, (txn) => nodeService(txn, 'n1', 'web-1').value?.ModifyIndex), 2);
    assert.equal(read(db, (txn) => nodeCheck(txn, 'n1', 'service:web-1').value?.ModifyIndex), 2);
  });

  test('changed data moves ModifyIndex and keeps CreateIndex', () => {
    const db = newDb();
    seedWeb(db);
    register(db, 4, { Node: 'n1', Address: '10.0.0.2', NodeMeta: { env: 'prod' } });
    register(db, 5, { Node: 'n1', Address: '10.0.0.2', NodeMeta: { env: 'prod' }, Service: { ID: 'web-1', Service: 'web', Tags: ['v1', 'Primary'], Port: 81 } });
    register(db, 6, { Node: 'n1', Address: '10.0.0.2', NodeMeta: { env: 'prod' }, Check: { ...webCheck, Status: 'warning' } });
    const node = read(db, (txn) => getNode(txn, 'n1').value);
    assert.deepEqual([node?.CreateIndex, node?.ModifyIndex], [1, 4]);
    const service = read(db, (txn) => nodeService(txn, 'n1', 'web-1').value);
    assert.deepEqual([service?.CreateIndex, service?.ModifyIndex], [2, 5]);
    const check = read(db, (txn) => nodeCheck(txn, 'n1', 'service:web-1').value);
    assert.deepEqual([check?.CreateIndex, check?.ModifyIndex, check?.Status], [2, 6, 'warning']);
  });

  test("like Consul's IsSame, a check differing only in Type is not rewritten", () => {
    const db = newDb();
    register(db, 1, { Node: 'n1', Address: 'a', Check: { CheckID: 'c', Status: 'passing', Type: 'ttl' } });
    register(db, 2, { Node: 'n1', Address: 'a', Check: { CheckID: 'c', Status: 'passing', Type: 'http' } });
    const check = read(db, (txn) => nodeCheck(txn, 'n1', 'c').value);
    assert.deepEqual([check?.Type, check?.ModifyIndex], ['ttl', 1]);
  });

  test('a check type is derived from its definition when not given', () => {
    const db = newDb();
    register(db, 1, { Node: 'n1', Address: 'a', Check: { CheckID: 'h', Definition: { HTTP: 'http://x/', Interval: '10s' } } });
    register(db, 2, { Node: 'n1', Address: 'a', Check: { CheckID: 't', Definition: { TCP: 'x:1' } } });
    assert.equal(read(db, (txn) => nodeCheck(txn, 'n1', 'h').value?.Type), 'http');
    assert.equal(read(db, (txn) => nodeCheck(txn, 'n1', 't').value?.Type), '', 'no interval, no type');
  });
});

describe('deregistration', () => {
  test('deregistering a node removes its services, checks and coordinates', () => {
    const db = newDb();
    seedWeb(db);
    write(db, (txn) => coordinateBatchUpdate(txn, 4, [{ Node: 'n1', Segment: '', Coord: { Vec: [1, 2], Error: 0.1, Adjustment: 0, Height: 0.01 } }]));
    register(db, 5, { Node: 'n2', Address: '10.0.0.2', Service: { Service: 'web', ID: 'web-2' } });
    dereg(db, 6, { Node: 'N1' });
    assert.equal(read(db, (txn) => getNode(txn, 'n1').value), undefined);
    assert.deepEqual(read(db, (txn) => nodeChecks(txn, 'n1').value), []);
    assert.deepEqual(
      read(db, (txn) => serviceNodes(txn, 'web').value.map((entry) => entry.Node.Node)),
      ['n2'],
    );
    assert.deepEqual(read(db, (txn) => coordinates(txn)), { index: 6, value: [] });
    assert.deepEqual(read(db, (txn) => checksInState(txn, 'any').value), []);
  });

  test('deregistering a service removes its checks and nothing else', () => {
    const db = newDb();
    seedWeb(db);
    register(db, 4, { Node: 'n1', Address: '10.0.0.1', NodeMeta: { env: 'prod' }, Service: { Service: 'db', ID: 'db-1' }, Check: { CheckID: 'service:db-1', ServiceID: 'db-1', Status: 'passing' } });
    dereg(db, 5, { Node: 'n1', ServiceID: 'web-1', CheckID: 'serfHealth' });
    assert.deepEqual(
      read(db, (txn) => nodeChecks(txn, 'n1').value.map((check) => check.CheckID)),
      ['serfHealth', 'service:db-1'],
      'ServiceID takes precedence over CheckID',
    );
    assert.deepEqual(read(db, (txn) => nodeServices(txn, 'n1').value?.Services.map((service) => service.ID)), ['db-1']);
  });

  test('deregistering a check removes that check only; unknown targets are a no-op', () => {
    const db = newDb();
    seedWeb(db);
    dereg(db, 4, { Node: 'n1', CheckID: 'serfHealth' });
    assert.deepEqual(read(db, (txn) => nodeChecks(txn, 'n1').value.map((check) => check.CheckID)), ['service:web-1']);
    const sequence = db.sequence;
    dereg(db, 5, { Node: 'n1', CheckID: 'ghost' });
    dereg(db, 6, { Node: 'n1', ServiceID: 'ghost' });
    dereg(db, 7, { Node: 'ghost' });
    assert.equal(db.sequence, sequence + 3);
    assert.equal(read(db, (txn) => tableIndexOf(txn, 'checks')), 4, 'no-op deletes move no index');
    assertStateError(() => dereg(db, 8, { Node: '' }), 'ERR_MISSING_NODE_NAME', 'Must provide node');
  });
});

function tableIndexOf(txn: ReadTxn, key: string): number | undefined {
  return txn.first<IndexRecord>(TABLES.index, 'id', key)?.Value;
}

describe('indexes', () => {
  test('writes move the index table entries of what they changed, as Consul does', () => {
    const db = newDb();
    register(db, 1, { Node: 'n1', Address: '10.0.0.1' });
    assert.deepEqual([indexEntry(db, 'nodes'), indexEntry(db, 'node.n1'), indexEntry(db, 'services')], [1, 1, undefined]);
    register(db, 2, { Node: 'n1', Address: '10.0.0.1', Service: { ID: 'web-1', Service: 'Web' } });
    assert.deepEqual([indexEntry(db, 'services'), indexEntry(db, 'service.web'), indexEntry(db, 'nodes'), indexEntry(db, 'node.n1')], [2, 2, 2, 2]);
    register(db, 3, { Node: 'n1', Address: '10.0.0.1', Check: webCheck });
    assert.deepEqual([indexEntry(db, 'checks'), indexEntry(db, 'service.web'), indexEntry(db, 'services')], [3, 3, 2]);
    register(db, 4, { Node: 'n1', Address: '10.0.0.1', Check: { CheckID: 'serfHealth', Status: 'passing' } });
    assert.deepEqual([indexEntry(db, 'checks'), indexEntry(db, 'service.web')], [4, 4], 'a node check counts for every service on the node');
    register(db, 5, { Node: 'n1', Address: '10.0.0.5' });
    assert.deepEqual([indexEntry(db, 'nodes'), indexEntry(db, 'node.n1'), indexEntry(db, 'service.web')], [5, 5, 5], 'a node change counts for its services');
    dereg(db, 6, { Node: 'n1', ServiceID: 'web-1' });
    assert.deepEqual(
      [indexEntry(db, 'checks'), indexEntry(db, 'services'), indexEntry(db, 'nodes'), indexEntry(db, 'node.n1'), indexEntry(db, 'service.web'), indexEntry(db, 'service_last_extinction')],
      [6, 6, 6, 6, undefined, 6],
      'the last instance takes its service entry with it and moves the extinction index',
    );
    dereg(db, 7, { Node: 'n1' });
    assert.deepEqual([indexEntry(db, 'nodes'), indexEntry(db, 'node.n1'), indexEntry(db, 'node_last_extinction'), indexEntry(db, 'checks')], [7, undefined, 7, 7]);
  });

  test('each query returns the index Consul returns for it', () => {
    const db = newDb();
    seedWeb(db);
    register(db, 4, { Node: 'n2', Address: '10.0.0.2', Service: { Service: 'db' } });
    const at = (query: (txn: ReadTxn) => { index: number }): number => read(db, query).index;
    assert.equal(at((txn) => nodes(txn)), 4);
    assert.equal(at((txn) => nodes(txn, { env: 'prod' })), 4);
    assert.equal(at((txn) => services(txn)), 4);
    assert.equal(at((txn) => services(txn, { env: 'prod' })), 4);
    assert.equal(at((txn) => serviceNodes(txn, 'web')), 3, 'service.web, not the services table');
    assert.equal(at((txn) => checkServiceNodes(txn, 'web')), 3);
    assert.equal(at((txn) => serviceNodes(txn, 'ghost')), 4, 'never seen, nothing extinct: max(services, nodes)');
    assert.equal(at((txn) => nodeServices(txn, 'n1')), 2, 'node.n1');
    assert.equal(at((txn) => nodeServices(txn, 'ghost')), 0);
    assert.equal(at((txn) => nodeChecks(txn, 'n1')), 3);
    assert.equal(at((txn) => serviceChecks(txn, 'web')), 3);
    assert.equal(at((txn) => checksInState(txn, 'passing')), 3);
    dereg(db, 5, { Node: 'n2', ServiceID: 'db' });
    assert.equal(at((txn) => serviceNodes(txn, 'db')), 5, 'gone: the extinction index');
    assert.equal(at((txn) => serviceNodes(txn, 'ghost')), 5, 'never seen: the extinction index too');
    assert.equal(at((txn) => serviceNodes(txn, 'web')), 3);
    dereg(db, 6, { Node: 'n2' });
    assert.equal(at((txn) => nodeServices(txn, 'n2')), 6, 'gone: the node extinction index');
    assert.equal(at((txn) => nodeServices(txn, 'x')), 0, 'too short to be an ID prefix');
  });
});

describe('lookups', () => {
  test('node and service names compare case-insensitively', () => {
    const db = newDb();
    seedWeb(db);
    assert.equal(read(db, (txn) => getNode(txn, 'N1').value?.Node), 'n1');
    assert.equal(read(db, (txn) => serviceNodes(txn, 'WEB').value.length), 1);
    assert.equal(read(db, (txn) => checkServiceNodes(txn, 'Web').value.length), 1);
    assert.equal(read(db, (txn) => nodeServices(txn, 'N1').value?.Node.Node), 'n1');
    assert.equal(read(db, (txn) => nodeChecks(txn, 'N1').value.length), 2);
    assert.equal(read(db, (txn) => serviceChecks(txn, 'wEb').value.length), 1);
    assert.equal(read(db, (txn) => nodeService(txn, 'N1', 'WEB-1').value?.ID), 'web-1');
    // A re-registration differing only in the node name's case changes nothing.
    register(db, 4, { Node: 'N1', Address: '10.0.0.1', NodeMeta: { env: 'prod' } });
    assert.equal(read(db, (txn) => getNode(txn, 'n1').value?.ModifyIndex), 1);
  });

  test('nodes can be found by a unique ID prefix', () => {
    const db = newDb();
    register(db, 1, { ID: 'abcdef01-0000-0000-0000-000000000001', Node: 'n1', Address: 'a' });
    register(db, 2, { ID: 'abcdef02-0000-0000-0000-000000000002', Node: 'n2', Address: 'b' });
    assert.equal(read(db, (txn) => nodeServices(txn, 'ABCDEF01').value?.Node.Node), 'n1');
    assert.equal(read(db, (txn) => nodeServices(txn, 'abcdef02-0').value?.Node.Node), 'n2', 'odd lengths are cut to even');
    assert.deepEqual(read(db, (txn) => nodeServices(txn, 'abcdef')), { index: 0, value: null }, 'ambiguous');
  });

  test('tag filtering is case-insensitive and needs every tag', () => {
    const db = newDb();
    seedWeb(db);
    register(db, 4, { Node: 'n2', Address: '10.0.0.2', Service: { ID: 'web-2', Service: 'web', Tags: ['v1'] } });
    const by = (tags: string[]): string[] => read(db, (txn) => serviceNodes(txn, 'web', { tags }).value.map((entry) => entry.Service.ID));
    assert.deepEqual(by([]), ['web-1', 'web-2']);
    assert.deepEqual(by(['V1']), ['web-1', 'web-2']);
    assert.deepEqual(by(['v1', 'primary']), ['web-1']);
    assert.deepEqual(by(['v1', 'v2']), []);
    assert.deepEqual(read(db, (txn) => checkServiceNodes(txn, 'web', { tags: ['PRIMARY'] }).value.map((entry) => entry.Service.ID)), ['web-1']);
  });

  test('a node meta filter needs every pair', () => {
    const db = newDb();
    register(db, 1, { Node: 'a', Address: '1', NodeMeta: { env: 'prod', rack: 'r1' }, Service: { Service: 'web' }, Check: { CheckID: 'c', ServiceID: 'web', Status: 'passing' } });
    register(db, 2, { Node: 'b', Address: '2', NodeMeta: { env: 'prod', rack: 'r2' }, Service: { Service: 'web' }, Check: { CheckID: 'c', ServiceID: 'web', Status: 'passing' } });
    register(db, 3, { Node: 'c', Address: '3', NodeMeta: { env: 'dev' }, Service: { Service: 'db' } });
    const names = (list: { Node: string }[]): string[] => list.map((node) => node.Node);
    assert.deepEqual(names(read(db, (txn) => nodes(txn, { env: 'prod' }).value)), ['a', 'b']);
    assert.deepEqual(names(read(db, (txn) => nodes(txn, { env: 'prod', rack: 'r2' }).value)), ['b']);
    assert.deepEqual(names(read(db, (txn) => nodes(txn, { env: 'prod', rack: 'r3' }).value)), []);
    assert.deepEqual(names(read(db, (txn) => nodes(txn, {}).value)), ['a', 'b', 'c'], 'an empty filter matches everything');
    assert.deepEqual([...read(db, (txn) => services(txn, { env: 'dev' }).value.keys())], ['db']);
    assert.deepEqual(read(db, (txn) => serviceNodes(txn, 'web', { nodeMeta: { rack: 'r1' } }).value.map((entry) => entry.Node.Node)), ['a']);
    assert.deepEqual(read(db, (txn) => checkServiceNodes(txn, 'web', { nodeMeta: { rack: 'r2' } }).value.map((entry) => entry.Node.Node)), ['b']);
    assert.deepEqual(read(db, (txn) => serviceChecks(txn, 'web', { rack: 'r2' }).value.map((check) => check.Node)), ['b']);
    assert.deepEqual(read(db, (txn) => checksInState(txn, 'passing', { rack: 'r1' }).value.map((check) => check.Node)), ['a']);
  });

  test('empty results are [] and an unknown node is null', () => {
    const db = newDb();
    assert.deepEqual(read(db, (txn) => nodes(txn).value), []);
    assert.deepEqual([...read(db, (txn) => services(txn).value)], []);
    assert.deepEqual(read(db, (txn) => serviceNodes(txn, 'web').value), []);
    assert.deepEqual(read(db, (txn) => checkServiceNodes(txn, 'web').value), []);
    assert.deepEqual(read(db, (txn) => nodeChecks(txn, 'n1').value), []);
    assert.deepEqual(read(db, (txn) => serviceChecks(txn, 'web').value), []);
    assert.deepEqual(read(db, (txn) => checksInState(txn, 'any').value), []);
    assert.deepEqual(read(db, (txn) => checksInState(txn, 'bogus').value), []);
    assert.deepEqual(read(db, (txn) => coordinates(txn).value), []);
    assert.deepEqual(read(db, (txn) => nodeServices(txn, 'n1').value), null);
    assert.deepEqual([...read(db, (txn) => coordinate(txn, 'n1').value)], []);
    register(db, 1, { Node: 'n1', Address: 'a' });
    assert.deepEqual(read(db, (txn) => nodeServices(txn, 'n1').value?.Services), [], 'a node without services has []');
    assert.deepEqual(read(db, (txn) => serviceNodes(txn, 'web', { tags: ['x'] }).value), []);
  });

  test('services maps each name to its distinct tags', () => {
    const db = newDb();
    register(db, 1, { Node: 'a', Address: '1', Service: { Service: 'web', Tags: ['v2', 'v1'] } });
    register(db, 2, { Node: 'b', Address: '2', Service: { Service: 'web', Tags: ['v1', 'v3'] } });
    register(db, 3, { Node: 'b', Address: '2', Service: { Service: 'consul' } });
    assert.deepEqual(
      [...read(db, (txn) => services(txn).value)],
      [
        ['consul', []],
        ['web', ['v1', 'v2', 'v3']],
      ],
    );
  });

  test("health entries carry the node's checks first, then the instance's own, whatever their status", () => {
    const db = newDb();
    seedWeb(db);
    register(db, 4, { Node: 'n1', Address: '10.0.0.1', NodeMeta: { env: 'prod' }, Service: { ID: 'web-2', Service: 'web' }, Checks: [{ CheckID: 'a-web-2', ServiceID: 'web-2', Status: 'critical' }] });
    const entries = read(db, (txn) => checkServiceNodes(txn, 'web').value);
    assert.deepEqual(
      entries.map((entry) => [entry.Service.ID, entry.Checks.map((check) => check.CheckID)]),
      [
        ['web-1', ['serfHealth', 'service:web-1']],
        ['web-2', ['serfHealth', 'a-web-2']],
      ],
    );
    assert.deepEqual(entries.map((entry) => aggregateStatus(entry.Checks)), ['passing', 'critical']);
  });

  test('aggregate status: maintenance > critical > warning > passing', () => {
    const check = (CheckID: string, Status: string) => ({ CheckID, Status });
    assert.equal(aggregateStatus([]), 'passing');
    assert.equal(aggregateStatus([check('a', 'passing'), check('b', 'warning')]), 'warning');
    assert.equal(aggregateStatus([check('a', 'warning'), check('b', 'critical')]), 'critical');
    assert.equal(aggregateStatus([check('a', 'critical'), check('_node_maintenance', 'critical')]), 'maintenance');
    assert.equal(aggregateStatus([check('_service_maintenance:web', 'passing')]), 'maintenance');
    assert.equal(aggregateStatus([check('a', 'bogus')]), '', 'an unknown status gives ""');
    assert.equal(aggregateStatus([check('_node_maintenance', 'bogus'), check('a', 'passing')]), 'maintenance');
  });
});

describe('coordinates', () => {
  test('coordinates are stored only for known nodes and only when finite', () => {
    const db = newDb();
    register(db, 1, { Node: 'n1', Address: 'a' });
    const coord = { Vec: [0.1, 0.2], Error: 1.5, Adjustment: 0, Height: 0.00001 };
    write(db, (txn) =>
      coordinateBatchUpdate(txn, 2, [
        { Node: 'n1', Segment: '', Coord: coord },
        { Node: 'n1', Segment: 'alpha', Coord: { ...coord, Height: Number.NaN } },
        { Node: 'ghost', Segment: '', Coord: coord },
      ]),
    );
    assert.deepEqual(read(db, (txn) => coordinates(txn)), { index: 2, value: [{ Node: 'n1', Segment: '', Coord: coord }] });
    assert.deepEqual([...read(db, (txn) => coordinate(txn, 'N1').value)], [['', coord]]);
    write(db, (txn) => coordinateBatchUpdate(txn, 3, [{ Node: 'ghost', Segment: '', Coord: coord }]));
    assert.equal(read(db, (txn) => coordinates(txn).index), 2, 'nothing stored, no index move');
  });
});

// ---------------------------------------------------------------------------------------------
// Sessions

describe('sessions', () => {
  function createSession(db: MemDb, index: number, id: string, nodeChecks: string[]): void {
    write(db, (txn) => {
      sessionCreate(txn, index, { ID: id, Name: '', Node: 'n1', NodeChecks: nodeChecks, ServiceChecks: [], LockDelay: 0, Behavior: 'release', TTL: '' });
    });
  }
  const hasSession = (db: MemDb, id: string): boolean => read(db, (txn) => sessionGet(txn, id).value !== undefined);

  test('a check turning critical invalidates the sessions that depend on it', () => {
    const db = newDb();
    seedWeb(db);
    createSession(db, 4, 's-serf', ['serfHealth']);
    createSession(db, 5, 's-web', ['service:web-1']);
    register(db, 6, { Node: 'n1', Address: '10.0.0.1', NodeMeta: { env: 'prod' }, Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'critical' } });
    assert.equal(hasSession(db, 's-serf'), false);
    assert.equal(hasSession(db, 's-web'), true, 'sessions on other checks stay');
  });

  test('deleting a check invalidates the sessions that depend on it', () => {
    const db = newDb();
    seedWeb(db);
    createSession(db, 4, 's-web', ['service:web-1']);
    write(db, (txn) => deleteCheck(txn, 5, 'n1', 'service:web-1', lockDelay));
    assert.equal(hasSession(db, 's-web'), false);
  });

  test("deregistering a service invalidates the sessions on its checks", () => {
    const db = newDb();
    seedWeb(db);
    createSession(db, 4, 's-web', ['service:web-1']);
    dereg(db, 5, { Node: 'n1', ServiceID: 'web-1' });
    assert.equal(hasSession(db, 's-web'), false);
  });

  test("deleting a node removes the node's sessions", () => {
    const db = newDb();
    seedWeb(db);
    createSession(db, 4, 's-none', []);
    dereg(db, 5, { Node: 'n1' });
    assert.equal(hasSession(db, 's-none'), false);
    assert.equal(indexEntry(db, 'sessions'), 5);
  });
});

// ---------------------------------------------------------------------------------------------
// Transactions (state/txn.go txnNode, txnService, txnCheck; Txn.preCheck)

describe('transactions', () => {
  /** Applies a txn as the FSM does: commit only when no op failed. */
  function applyTxn(db: MemDb, index: number, ops: TxnOp[]): TxnOpsResponse {
    const txn = db.writeTxn();
    const response = txnApply(txn, index, ops, lockDelay);
    if (response.Errors === null) txn.commit();
    else txn.abort();
    return response;
  }
  const node = (name: string, fields: Partial<TxnNode> = {}): TxnNode => ({ ID: '', Node: name, Address: '10.0.0.9', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {}, ModifyIndex: 0, ...fields });

  test('results are the records as stored, in op order; deletes yield none', () => {
    const db = newDb();
    const response = applyTxn(db, 5, [
      { Node: { Verb: 'set', Node: node('n2') } },
      { Service: { Verb: 'set', Node: 'n2', Service: { ID: 'db-1', Service: 'db', Port: 5432 } } },
      { Check: { Verb: 'set', Check: { Node: 'n2', CheckID: 'db-alive', Name: 'db alive', Status: 'passing', ServiceID: 'db-1' } } },
      { Node: { Verb: 'delete', Node: node('ghost') } },
    ]);
    assert.equal(response.Errors, null);
    const stored = read(db, (txn) => [getNode(txn, 'n2').value, nodeService(txn, 'n2', 'db-1').value, nodeCheck(txn, 'n2', 'db-alive').value]);
    assert.deepEqual(response.Results, [{ Node: stored[0] }, { Service: stored[1] }, { Check: stored[2] }]);
    assert.equal((stored[2] as CheckRecord).ServiceName, 'db');
    assert.equal((stored[0] as NodeRecord).ModifyIndex, 5);
  });

  test('a failing op rolls back the ops before and after it, each error keeps its OpIndex', () => {
    const db = newDb();
    seedWeb(db);
    const response = applyTxn(db, 9, [
      { Service: { Verb: 'delete', Node: 'n1', Service: { ID: 'web-1', Service: 'web' } } },
      { Node: { Verb: 'get', Node: node('nope') } },
      { Check: { Verb: 'set', Check: { Node: 'n1', CheckID: 'c', Name: 'c', ServiceID: 'web-1' } } },
    ]);
    // The service delete ran first, so the check's service is gone when op 2 runs.
    assert.deepEqual(response, { Results: null, Errors: [{ OpIndex: 1, What: 'node "nope" doesn\'t exist' }, { OpIndex: 2, What: 'Missing service registration' }] });
    assert.equal(read(db, (txn) => nodeService(txn, 'n1', 'web-1').value?.ModifyIndex), 2);
  });

  test('cas follows ensure*CASTxn: 0 means only-if-absent, else the ModifyIndex must match', () => {
    const db = newDb();
    seedWeb(db);
    const stale = (ops: TxnOp[]): string | undefined => applyTxn(db, 10, ops).Errors?.[0]?.What;
    assert.equal(stale([{ Node: { Verb: 'cas', Node: node('n1') } }]), 'failed to set node "n1", index is stale');
    assert.equal(stale([{ Node: { Verb: 'cas', Node: node('n9', { ModifyIndex: 1 }) } }]), 'failed to set node "n9", index is stale');
    assert.equal(stale([{ Service: { Verb: 'cas', Node: 'n1', Service: { ID: 'web-1', Service: 'web', ModifyIndex: 1 } } }]), 'failed to set service "web-1" on node "n1", index is stale');
    assert.equal(stale([{ Check: { Verb: 'cas', Check: { Node: 'n1', CheckID: 'serfHealth', ModifyIndex: 2 } } }]), 'failed to set check "serfHealth" on node "n1", index is stale');
    const response = applyTxn(db, 11, [
      { Node: { Verb: 'cas', Node: node('n1', { Address: '10.0.0.2', ModifyIndex: 1 }) } },
      { Service: { Verb: 'cas', Node: 'n1', Service: { ID: 'web-1', Service: 'web', Port: 81, ModifyIndex: 2 } } },
      { Check: { Verb: 'cas', Check: { Node: 'n1', CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'warning', ModifyIndex: 3 } } },
    ]);
    assert.equal(response.Errors, null);
    assert.deepEqual(response.Results?.map((result) => (Object.values(result)[0] as { ModifyIndex: number }).ModifyIndex), [11, 11, 11]);
  });

  test('delete-cas of a missing record is stale, unlike KV delete-cas', () => {
    const db = newDb();
    seedWeb(db);
    const what = (ops: TxnOp[]): string | undefined => applyTxn(db, 10, ops).Errors?.[0]?.What;
    assert.equal(what([{ Node: { Verb: 'delete-cas', Node: node('ghost') } }]), 'failed to delete node "ghost", index is stale');
    assert.equal(what([{ Service: { Verb: 'delete-cas', Node: 'n1', Service: { ID: 'ghost' } } }]), 'failed to delete service "ghost" on node "n1", index is stale');
    assert.equal(what([{ Check: { Verb: 'delete-cas', Check: { Node: 'n1', CheckID: 'ghost' } } }]), 'failed to delete check "ghost" on node "n1", index is stale');
    assert.equal(applyTxn(db, 11, [{ Check: { Verb: 'delete-cas', Check: { Node: 'n1', CheckID: 'serfHealth', ModifyIndex: 3 } } }]).Errors, null);
    assert.equal(read(db, (txn) => nodeCheck(txn, 'n1', 'serfHealth').value), undefined);
  });

  test('a check set critical by a txn invalidates the sessions on it, and a rollback keeps them', () => {
    const db = newDb();
    seedWeb(db);
    write(db, (txn) => sessionCreate(txn, 4, { ID: 's', Name: '', Node: 'n1', NodeChecks: ['serfHealth'], ServiceChecks: [], LockDelay: 0, Behavior: 'release', TTL: '' }));
    const critical: TxnOp = { Check: { Verb: 'set', Check: { Node: 'n1', CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'critical' } } };
    applyTxn(db, 5, [critical, { Node: { Verb: 'get', Node: node('nope') } }]);
    assert.notEqual(read(db, (txn) => sessionGet(txn, 's').value), undefined);
    applyTxn(db, 6, [critical]);
    assert.equal(read(db, (txn) => sessionGet(txn, 's').value), undefined);
  });

  test('pre-check: IDs default to names for writes only, and node and service writes are vetted', () => {
    const { ops, errors } = txnPreCheck([
      { Service: { Verb: 'set', Node: 'n1', Service: { Service: 'web' } } },
      { Service: { Verb: 'get', Node: 'n1', Service: { Service: 'web' } } },
      { Check: { Verb: 'set', Check: { Node: 'n1', Name: 'mem' } } },
      { Check: { Verb: 'get', Check: { Node: 'n1', Name: 'mem' } } },
      { Node: { Verb: 'delete', Node: node('') } },
      { Node: { Verb: 'get', Node: node('') } },
      { Node: { Verb: 'set', Node: node('n1', { ID: '0123456789abcdef0123456789abcdefxxxx' }) } },
      { Service: { Verb: 'delete', Node: 'n1', Service: { ID: 'web' } } },
      { Service: { Verb: 'set', Node: 'n1', Service: { Service: 'web', Address: '::' } } },
      { KV: { Verb: 'get', DirEnt: { Key: '' } } },
    ], lockDelay);
    assert.deepEqual(ops.slice(0, 4).map((op) => ('Service' in op ? op.Service.Service.ID : 'Check' in op ? op.Check.Check.CheckID : undefined)), ['web', undefined, 'mem', undefined]);
    assert.deepEqual(errors, [
      { OpIndex: 4, What: 'Must provide node' },
      { OpIndex: 6, What: 'Bad node ID: uuid is improperly formatted' },
      { OpIndex: 7, What: 'Must provide service name (Service.Service) when service ID is provided' },
      { OpIndex: 8, What: 'Invalid service address' },
      { OpIndex: 9, What: 'Must provide key' },
    ]);
  });

  test('unknown verbs are named per kind; read-only txns run on a snapshot', () => {
    assert.deepEqual(txnUnknownVerbErrors([{ Node: { Verb: 'x' as never, Node: node('n') } }, { KV: { Verb: 'get', DirEnt: { Key: 'k' } } }, { KV: { Verb: 'y' as never, DirEnt: { Key: 'k' } } }]), [
      { OpIndex: 0, What: 'unknown Node verb "x"' },
      { OpIndex: 2, What: 'unknown KV verb "y"' },
    ]);
    const db = newDb();
    seedWeb(db);
    const response = read(db, (txn) => txnRead(txn, [{ Node: { Verb: 'get', Node: node('N1') } }, { Service: { Verb: 'get', Node: 'n1', Service: { ID: 'web-1' } } }]));
    assert.deepEqual(response.Results?.map((result) => Object.keys(result)[0]), ['Node', 'Service']);
    assert.throws(() => read(db, (txn) => txnRead(txn, [{ Node: { Verb: 'delete', Node: node('n1') } }])), /read-only txn carries a write op/);
  });
});

// ---------------------------------------------------------------------------------------------
// Watch precision

describe('watches', () => {
  function watchedDb(): MemDb {
    const db = newDb();
    seedWeb(db);
    register(db, 4, { Node: 'n2', Address: '10.0.0.2', Service: { ID: 'db-1', Service: 'db' } });
    return db;
  }

  async function fires(db: MemDb, query: (txn: ReadTxn) => unknown, change: () => void): Promise<boolean> {
    const ws = new WatchSet();
    query(db.readTxn(ws));
    let count = 0;
    const cancel = db.watch(ws, () => count++);
    change();
    await Promise.resolve();
    cancel();
    return count > 0;
  }

  test('a serviceNodes watch ignores other services and fires for its own', async () => {
    const db = watchedDb();
    const query = (txn: ReadTxn) => serviceNodes(txn, 'web');
    assert.equal(await fires(db, query, () => register(db, 5, { Node: 'n2', Address: '10.0.0.2', Check: { CheckID: 'db-check', ServiceID: 'db-1', Status: 'passing' } })), false, 'a check for db');
    assert.equal(await fires(db, query, () => register(db, 6, { Node: 'n3', Address: '10.0.0.3', Service: { Service: 'cache' } })), false, 'a new service on a new node');
    assert.equal(await fires(db, query, () => register(db, 7, { Node: 'n1', Address: '10.0.0.1', NodeMeta: { env: 'prod' }, Service: { ID: 'db-2', Service: 'db' } })), false, 'another service on the same node');
    assert.equal(await fires(db, query, () => register(db, 8, { Node: 'n1', Address: '10.0.0.1', NodeMeta: { env: 'prod' }, Service: { ID: 'web-1', Service: 'web', Port: 8080 } })), true, 'a web instance changed');
    assert.equal(await fires(db, query, () => register(db, 9, { Node: 'n2', Address: '10.0.0.2', Service: { ID: 'web-9', Service: 'web' } })), true, 'a web instance added');
    assert.equal(await fires(db, query, () => register(db, 10, { Node: 'n1', Address: '10.0.0.9', NodeMeta: { env: 'prod' } })), true, "a web instance's node changed");
    assert.equal(await fires(db, query, () => register(db, 11, { Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'mem', Status: 'warning' } })), false, 'a node check: not part of this result');
  });

  test('a checkServiceNodes watch ignores checks of other services and fires for its own', async () => {
    const db = watchedDb();
    const query = (txn: ReadTxn) => checkServiceNodes(txn, 'web');
    assert.equal(await fires(db, query, () => register(db, 5, { Node: 'n2', Address: '10.0.0.2', Check: { CheckID: 'db-check', ServiceID: 'db-1', Status: 'passing' } })), false);
    assert.equal(await fires(db, query, () => register(db, 6, { Node: 'n2', SkipNodeUpdate: true, Check: { CheckID: 'mem', Status: 'warning' } })), false, "a node check on another service's node");
    assert.equal(await fires(db, query, () => register(db, 7, { Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'mem', Status: 'warning' } })), true, "a node check on a web instance's node");
    assert.equal(await fires(db, query, () => register(db, 8, { Node: 'n1', Address: '10.0.0.1', NodeMeta: { env: 'prod' }, Check: { ...webCheck, Status: 'critical' } })), true, "the instance's own check");
  });
});

// ---------------------------------------------------------------------------------------------
// Model-based randomized test

const lower = (text: string): string => text.toLowerCase();
const key2 = (a: string, b: string): string => `${lower(a)}\x00${lower(b)}`;
const byKey = <T>(keyOf: (item: T) => string) => (a: T, b: T): number => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0);

/** Plain-Map catalog implementing Consul's rules the obvious way. Records match lib/catalog's. */
class Model {
  readonly nodes = new Map<string, NodeRecord>();
  readonly services = new Map<string, ServiceRecord>();
  readonly checks = new Map<string, CheckRecord>();
  readonly coords = new Map<string, CoordinateRecord>();

  /** Applies a registration; returns the error message it must fail with, or undefined. */
  register(index: number, req: RegisterRequest): string | undefined {
    const checks = [...(req.Checks ?? []), ...(req.Check ? [req.Check] : [])];
    const serviceId = req.Service ? req.Service.ID || req.Service.Service || '' : undefined;
    for (const check of checks) {
      const sid = check.ServiceID ?? '';
      if (sid === '' || sid === serviceId) continue;
      if (this.services.get(key2(req.Node, sid))?.ID !== sid) return `Unknown service ID '${sid}' for check ID '${check.CheckID}'`;
    }
    const node: NodeRecord = { ID: req.ID ?? '', Node: req.Node, Address: req.Address ?? '', Datacenter: '', TaggedAddresses: {}, Meta: { ...req.NodeMeta }, CreateIndex: index, ModifyIndex: index };
    const existing = this.nodes.get(lower(req.Node));
    if (!existing || (!req.SkipNodeUpdate && !sameNode(existing, node))) {
      this.nodes.set(lower(req.Node), { ...node, CreateIndex: existing?.CreateIndex ?? index });
    }
    if (req.Service) this.registerService(index, req.Node, req.Service);
    for (const check of checks) this.registerCheck(index, req.Node, check);
    return undefined;
  }

  deregister(req: DeregisterRequest): void {
    if (req.ServiceID) {
      const service = this.services.get(key2(req.Node, req.ServiceID));
      if (!service) return;
      for (const [key, check] of this.checks) if (lower(check.Node) === lower(req.Node) && lower(check.ServiceID) === lower(req.ServiceID)) this.checks.delete(key);
      this.services.delete(key2(req.Node, req.ServiceID));
    } else if (req.CheckID) {
      this.checks.delete(key2(req.Node, req.CheckID));
    } else {
      if (!this.nodes.delete(lower(req.Node))) return;
      for (const map of [this.services, this.checks, this.coords] as Map<string, { Node: string }>[]) {
        for (const [key, item] of map) if (lower(item.Node) === lower(req.Node)) map.delete(key);
      }
    }
  }

  updateCoordinate(update: CoordinateRecord): void {
    if (this.nodes.has(lower(update.Node))) this.coords.set(key2(update.Node, update.Segment), update);
  }

  private registerService(index: number, nodeName: string, input: NonNullable<RegisterRequest['Service']>): void {
    const service: ServiceRecord = {
      Node: nodeName,
      ID: input.ID || input.Service || '',
      Service: input.Service ?? '',
      Kind: '',
      Tags: [...(input.Tags ?? [])],
      Address: '',
      TaggedAddresses: {},
      Meta: { ...input.Meta },
      Port: input.Port ?? 0,
      SocketPath: '',
      Weights: { Passing: 1, Warning: 1 },
      EnableTagOverride: false,
      CreateIndex: index,
      ModifyIndex: index,
    };
    const key = key2(nodeName, service.ID);
    const existing = this.services.get(key);
    if (existing && sameIgnoring(existing, service, ['Node', 'CreateIndex', 'ModifyIndex']) && lower(existing.Node) === lower(nodeName)) return;
    this.services.set(key, { ...service, CreateIndex: existing?.CreateIndex ?? index });
  }

  private registerCheck(index: number, nodeName: string, input: HealthCheckInput): void {
    const serviceId = input.ServiceID ?? '';
    const service = serviceId === '' ? undefined : this.services.get(key2(nodeName, serviceId));
    const check = checkRecord(index, {
      Node: nodeName,
      CheckID: input.CheckID ?? '',
      Name: input.Name ?? '',
      Status: (input.Status || 'critical') as CheckRecord['Status'],
      Output: input.Output ?? '',
      ServiceID: serviceId,
      ServiceName: service?.Service ?? '',
      ServiceTags: service ? service.Tags : [],
    });
    const key = key2(nodeName, check.CheckID);
    const existing = this.checks.get(key);
    if (existing && sameIgnoring(existing, check, ['Node', 'CreateIndex', 'ModifyIndex']) && lower(existing.Node) === lower(nodeName)) return;
    this.checks.set(key, { ...check, CreateIndex: existing?.CreateIndex ?? index });
  }

  // Queries, in the orders the memdb indexes give.

  nodeList(meta?: Record<string, string>): NodeRecord[] {
    return [...this.nodes.values()].filter((node) => !meta || matches(node.Meta, meta)).sort(byKey((node) => lower(node.Node)));
  }

  serviceMap(meta?: Record<string, string>): [string, string[]][] {
    const tags = new Map<string, Set<string>>();
    for (const service of this.services.values()) {
      if (meta && !matches(this.nodeOf(service.Node).Meta, meta)) continue;
      const set = tags.get(service.Service) ?? new Set<string>();
      for (const tag of service.Tags) set.add(tag);
      tags.set(service.Service, set);
    }
    return [...tags.entries()].map(([name, set]): [string, string[]] => [name, [...set].sort()]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }

  instances(name: string, tags: readonly string[] = [], meta?: Record<string, string>): ServiceRecord[] {
    return [...this.services.values()]
      .filter((service) => lower(service.Service) === lower(name))
      .filter((service) => tags.every((tag) => service.Tags.some((t) => lower(t) === lower(tag))))
      .filter((service) => !meta || matches(this.nodeOf(service.Node).Meta, meta))
      .sort(byKey((service) => key2(service.Node, service.ID)));
  }

  nodeServiceList(name: string): { Node: NodeRecord; Services: ServiceRecord[] } | null {
    const node = this.nodes.get(lower(name));
    if (!node) return null;
    const list = [...this.services.values()].filter((service) => lower(service.Node) === lower(name)).sort(byKey((service) => lower(service.ID)));
    return { Node: node, Services: list };
  }

  checkList(filter: (check: CheckRecord) => boolean): CheckRecord[] {
    return [...this.checks.values()].filter(filter).sort(byKey((check) => key2(check.Node, check.CheckID)));
  }

  healthEntries(name: string, tags: readonly string[] = []): { Node: NodeRecord; Service: ServiceRecord; Checks: CheckRecord[] }[] {
    return this.instances(name, tags).map((service) => ({
      Node: this.nodeOf(service.Node),
      Service: service,
      Checks: [
        ...this.checkList((check) => lower(check.Node) === lower(service.Node) && check.ServiceID === ''),
        ...this.checkList((check) => lower(check.Node) === lower(service.Node) && check.ServiceID !== '' && lower(check.ServiceID) === lower(service.ID)),
      ],
    }));
  }

  coordList(): CoordinateRecord[] {
    return [...this.coords.values()].sort(byKey((coord) => key2(coord.Node, coord.Segment)));
  }

  nodeOf(name: string): NodeRecord {
    const node = this.nodes.get(lower(name));
    assert.ok(node, `model: node ${name} exists`);
    return node;
  }
}

function matches(meta: Readonly<Record<string, string>>, filter: Record<string, string>): boolean {
  return Object.entries(filter).every(([key, value]) => meta[key] === value);
}

function sameNode(a: NodeRecord, b: NodeRecord): boolean {
  return a.ID === b.ID && lower(a.Node) === lower(b.Node) && a.Address === b.Address && canonical(a.Meta) === canonical(b.Meta);
}

function sameIgnoring<T extends object>(a: T, b: T, ignored: string[]): boolean {
  const strip = (value: T) => Object.fromEntries(Object.entries(value).filter(([key]) => !ignored.includes(key)));
  return canonical(strip(a)) === canonical(strip(b));
}

/** JSON with sorted object keys and Maps as entry lists, for order-insensitive record comparison. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (item instanceof Map) return [...item.entries()];
    if (item && typeof item === 'object' && !Array.isArray(item)) {
      return Object.fromEntries(Object.entries(item as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)));
    }
    return item;
  });
}

const NODE_BASES = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];
const SERVICE_IDS: readonly (readonly [string, string])[] = [
  ['web-1', 'web'],
  ['web-2', 'web'],
  ['db-1', 'db'],
  ['db-2', 'db'],
  ['cache-1', 'cache'],
];
const STATUSES = ['passing', 'warning', 'critical'] as const;
const QUERY_NAMES = ['web', 'WEB', 'db', 'cache', 'ghost'];

interface Op {
  readonly describe: string;
  applyReal(db: MemDb, index: number): void;
  applyModel(model: Model, index: number): string | undefined;
}

function randomOp(rng: () => number, model: Model): Op {
  const pick = <T>(items: readonly T[]): T => {
    const item = items[Math.floor(rng() * items.length)];
    assert.ok(item !== undefined);
    return item;
  };
  const variant = (text: string): string => (rng() < 0.15 ? text.toUpperCase() : rng() < 0.1 ? (text[0] ?? '').toUpperCase() + text.slice(1) : text);
  const base = pick(NODE_BASES);
  const nodeName = variant(base);
  const nodePart = (): Omit<RegisterRequest, 'Node'> => {
    const meta: Record<string, string> = { env: pick(['prod', 'dev']) };
    if (rng() < 0.5) meta['rack'] = pick(['a', 'b']);
    const id = rng() < 0.5 ? `00000000-0000-0000-0000-00000000000${NODE_BASES.indexOf(base)}` : '';
    return rng() < 0.2 ? { SkipNodeUpdate: true } : { ID: id, Address: pick(['10.0.0.1', '10.0.0.2']), NodeMeta: meta };
  };
  const randomCheck = (serviceIds: string[]): HealthCheckInput => {
    const status = pick(STATUSES);
    const output = pick(['', 'ok', 'boom']);
    if (serviceIds.length > 0 && rng() < 0.6) {
      const serviceId = pick(serviceIds);
      return { CheckID: `service:${lower(serviceId)}`, Name: 'svc', Status: status, Output: output, ServiceID: serviceId };
    }
    return { CheckID: pick(['serfHealth', 'mem']), Name: 'node', Status: status, Output: output };
  };
  const registration = (req: RegisterRequest): Op => ({
    describe: `register ${JSON.stringify(req)}`,
    applyReal: (db, index) => register(db, index, req),
    applyModel: (m, index) => m.register(index, req),
  });
  const deregistration = (req: DeregisterRequest): Op => ({
    describe: `deregister ${JSON.stringify(req)}`,
    applyReal: (db, index) => dereg(db, index, req),
    applyModel: (m) => {
      m.deregister(req);
      return undefined;
    },
  });

  const roll = rng();
  if (roll < 0.12) return registration({ Node: nodeName, ...nodePart() });
  if (roll < 0.37) {
    const [id, name] = pick(SERVICE_IDS);
    const serviceId = variant(id);
    const tags = ['v1', 'v2', 'Primary'].filter(() => rng() < 0.5).map(variant);
    const service = { ID: serviceId, Service: rng() < 0.1 ? name.toUpperCase() : name, Tags: tags, Port: pick([80, 8080]), Meta: rng() < 0.3 ? { version: pick(['1', '2']) } : ({} as Record<string, string>) };
    const checks = rng() < 0.5 ? [randomCheck([serviceId])] : [];
    return registration({ Node: nodeName, ...nodePart(), Service: service, Checks: checks });
  }
  if (roll < 0.55) {
    const serviceIds = SERVICE_IDS.map(([id]) => (rng() < 0.1 ? id.toUpperCase() : id));
    return registration({ Node: nodeName, ...nodePart(), ...(rng() < 0.5 ? { Check: randomCheck(serviceIds) } : { Checks: [randomCheck(serviceIds), randomCheck(serviceIds)] }) });
  }
  if (roll < 0.72 && model.checks.size > 0) {
    // A status update, as anti-entropy or serfHealth sends it.
    const check = pick([...model.checks.values()]);
    const update: HealthCheckInput = { CheckID: check.CheckID, Name: check.Name, Status: pick(STATUSES), Output: check.Output, ServiceID: check.ServiceID };
    return registration({ Node: check.Node, SkipNodeUpdate: true, Check: update });
  }
  if (roll < 0.82) {
    const known = [...model.services.values()];
    const serviceId = known.length > 0 && rng() < 0.8 ? pick(known).ID : pick(SERVICE_IDS)[0];
    const node = known.find((service) => service.ID === serviceId)?.Node ?? nodeName;
    return deregistration({ Node: variant(node), ServiceID: variant(serviceId) });
  }
  if (roll < 0.9) {
    const known = [...model.checks.values()];
    const check = known.length > 0 ? pick(known) : undefined;
    return deregistration({ Node: check ? variant(check.Node) : nodeName, CheckID: check ? check.CheckID : 'mem' });
  }
  if (roll < 0.95) return deregistration({ Node: nodeName });
  const update: CoordinateRecord = { Node: nodeName, Segment: pick(['', 'seg']), Coord: { Vec: [rng(), rng()], Error: rng(), Adjustment: 0, Height: rng() } };
  return {
    describe: `coordinates ${JSON.stringify(update)}`,
    applyReal: (db, index) => write(db, (txn) => coordinateBatchUpdate(txn, index, [update])),
    applyModel: (m) => {
      m.updateCoordinate(update);
      return undefined;
    },
  };
}

interface Query {
  readonly name: string;
  real(txn: ReadTxn): { index: number; value: unknown };
  model(model: Model): unknown;
}

/** A Map-valued result as an entry list, which JSON can show. */
function entriesOf<K, V>(result: { index: number; value: Map<K, V> }): { index: number; value: [K, V][] } {
  return { index: result.index, value: [...result.value] };
}

function modelQueries(): Query[] {
  const queries: Query[] = [
    { name: 'nodes', real: (txn) => nodes(txn), model: (m) => m.nodeList() },
    { name: 'nodes env=prod', real: (txn) => nodes(txn, { env: 'prod' }), model: (m) => m.nodeList({ env: 'prod' }) },
    { name: 'nodes env=prod rack=a', real: (txn) => nodes(txn, { env: 'prod', rack: 'a' }), model: (m) => m.nodeList({ env: 'prod', rack: 'a' }) },
    { name: 'services', real: (txn) => entriesOf(services(txn)), model: (m) => m.serviceMap() },
    { name: 'services env=dev', real: (txn) => entriesOf(services(txn, { env: 'dev' })), model: (m) => m.serviceMap({ env: 'dev' }) },
    { name: 'coordinates', real: (txn) => coordinates(txn), model: (m) => m.coordList() },
  ];
  for (const state of ['any', ...STATUSES]) {
    queries.push({ name: `checksInState ${state}`, real: (txn) => checksInState(txn, state), model: (m) => m.checkList((check) => state === 'any' || check.Status === state) });
  }
  for (const name of QUERY_NAMES) {
    const toPairs = (m: Model, list: ServiceRecord[]) => list.map((service) => ({ Node: m.nodeOf(service.Node), Service: service }));
    queries.push(
      { name: `serviceNodes ${name}`, real: (txn) => serviceNodes(txn, name), model: (m) => toPairs(m, m.instances(name)) },
      { name: `serviceNodes ${name} tag=V1`, real: (txn) => serviceNodes(txn, name, { tags: ['V1'] }), model: (m) => toPairs(m, m.instances(name, ['V1'])) },
      { name: `serviceNodes ${name} tags=v1,primary`, real: (txn) => serviceNodes(txn, name, { tags: ['v1', 'primary'] }), model: (m) => toPairs(m, m.instances(name, ['v1', 'primary'])) },
      { name: `serviceNodes ${name} env=prod`, real: (txn) => serviceNodes(txn, name, { nodeMeta: { env: 'prod' } }), model: (m) => toPairs(m, m.instances(name, [], { env: 'prod' })) },
      { name: `checkServiceNodes ${name}`, real: (txn) => checkServiceNodes(txn, name), model: (m) => m.healthEntries(name) },
      { name: `checkServiceNodes ${name} tag=v2`, real: (txn) => checkServiceNodes(txn, name, { tags: ['v2'] }), model: (m) => m.healthEntries(name, ['v2']) },
      { name: `serviceChecks ${name}`, real: (txn) => serviceChecks(txn, name), model: (m) => m.checkList((check) => lower(check.ServiceName) === lower(name)) },
      {
        name: `serviceChecks ${name} env=prod`,
        real: (txn) => serviceChecks(txn, name, { env: 'prod' }),
        model: (m) => m.checkList((check) => lower(check.ServiceName) === lower(name) && m.nodeOf(check.Node).Meta['env'] === 'prod'),
      },
    );
  }
  for (const node of [...NODE_BASES, 'ALPHA', 'zulu']) {
    queries.push(
      { name: `nodeServices ${node}`, real: (txn) => nodeServices(txn, node), model: (m) => m.nodeServiceList(node) },
      { name: `nodeChecks ${node}`, real: (txn) => nodeChecks(txn, node), model: (m) => m.checkList((check) => lower(check.Node) === lower(node)) },
    );
  }
  return queries;
}

/** One seed: random operations on both, every query compared after each, and the blocking-index rules. */
function runSeed(seed: number, operations: number, queries: readonly Query[]): void {
  const rng = mulberry32(seed);
  const db = newDb();
  const model = new Model();
  const last = new Map<string, { index: number; value: unknown }>();
  for (let i = 1; i <= operations; i++) {
    const op = randomOp(rng, model);
    const context = `SEED=${seed} op=${i} ${op.describe}`;
    const expectedError = op.applyModel(model, i);
    try {
      op.applyReal(db, i);
      assert.equal(undefined, expectedError, 'the catalog accepted what the model refused');
    } catch (error) {
      if (!(error instanceof StateError) || error.message !== expectedError) {
        throw new Error(`${context}: unexpected outcome: ${String(error)}; expected ${String(expectedError)}`, { cause: error });
      }
    }
    const txn = db.readTxn();
    for (const query of queries) {
      const result = query.real(txn);
      const expected = query.model(model);
      if (!isSameData(result.value, expected)) {
        assert.fail(`${context}: ${query.name} differs\n  catalog: ${canonical(result.value)}\n  model:   ${canonical(expected)}`);
      }
      const previous = last.get(query.name);
      assert.ok(result.index <= i, `${context}: ${query.name} index ${result.index} is ahead of the Raft index`);
      if (previous) {
        assert.ok(result.index >= previous.index, `${context}: ${query.name} index went back from ${previous.index} to ${result.index}`);
        if (!isSameData(previous.value, result.value)) assert.ok(result.index > previous.index, `${context}: ${query.name} changed but its index stayed ${result.index}`);
      }
      last.set(query.name, { index: result.index, value: result.value });
    }
  }
}

/** Structural equality of plain data, key order ignored; fast when unchanged records are shared. */
function isSameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => isSameData(item, b[i]));
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left);
  return keys.length === Object.keys(right).length && keys.every((key) => Object.hasOwn(right, key) && isSameData(left[key], right[key]));
}

describe('model', () => {
  const replay = process.env['CATALOG_SEED'];
  const seeds = replay === undefined ? Array.from({ length: 50 }, (_, i) => i + 1) : [Number(replay)];
  test(`random registrations and deregistrations match a plain-Map model (${seeds.length} seeds x 300 operations)`, () => {
    const queries = modelQueries();
    for (const seed of seeds) {
      try {
        runSeed(seed, 300, queries);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        const prefix = message.startsWith('SEED=') ? '' : `SEED=${seed}: `;
        throw new Error(`${prefix}${message}\n  replay: CATALOG_SEED=${seed} node --import tsx --test test/catalog.test.ts`, { cause: error });
      }
    }
  });
});
