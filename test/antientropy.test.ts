// Tests of lib/antientropy.ts: the local state's diff against the catalog (updateSyncState),
// what a sync writes and in which order (SyncChanges), the output-only deferral of check updates,
// error handling (retry, ACL denial), scaleFactor and the StateSyncer's timing on a fake clock.
// Reference: Consul agent/local/state.go, agent/ae/ae.go; spec §6.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  AE_INTERVAL_DEFAULT_MS,
  AntiEntropyError,
  CHECK_UPDATE_INTERVAL_DEFAULT_MS,
  LocalState,
  RETRY_FAIL_INTERVAL_MS,
  SERVER_UP_INTERVAL_MS,
  StateSyncer,
  scaleFactor,
  type CatalogClient,
  type LocalCheck,
  type LocalService,
  type NodeIdentity,
} from '../lib/antientropy.js';
import type { DeregisterRequest, RegisterRequest } from '../lib/catalog.js';
import type { CheckClock, CheckTimer } from '../lib/checks.js';
import { nullLogger } from '../lib/log.js';
import { seededRng } from '../lib/rng.js';
import type { CheckRecord, NodeRecord, ServiceRecord } from '../lib/schema.js';

// ---------------------------------------------------------------------------------------------
// Fakes

interface FakeTimer {
  readonly atMs: number;
  readonly seq: number;
  readonly callback: () => void;
  isDone: boolean;
}

/** A manual clock: timers fire only in advance(), in due order, with promise chains settled after each. */
class FakeClock implements CheckClock {
  now = 0;
  private seq = 0;
  private readonly timers: FakeTimer[] = [];

  nowMs(): number {
    return this.now;
  }

  setTimeout(callback: () => void, ms: number): CheckTimer {
    const timer: FakeTimer = { atMs: this.now + ms, seq: this.seq++, callback, isDone: false };
    this.timers.push(timer);
    return { cancel: () => (timer.isDone = true) };
  }

  /** Due times of the timers still pending. */
  pendingAt(): number[] {
    return this.timers.filter((timer) => !timer.isDone).map((timer) => timer.atMs).sort((a, b) => a - b);
  }

  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      const due = this.timers.filter((timer) => !timer.isDone && timer.atMs <= until).sort((a, b) => a.atMs - b.atMs || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.now = due.atMs;
      due.isDone = true;
      due.callback();
      await settle();
    }
    this.now = until;
    await settle();
  }
}

/** Lets every pending promise chain run (setImmediate runs after the microtask queue drains). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * An in-memory catalog for one node that applies registrations roughly as lib/catalog.ts does and
 * records every call as a short line: `register node`, `register service=web checks=a,b skipNode`,
 * `register check=x service=web`, `deregister service=web`, `deregister check=x`, `read`.
 */
class FakeCatalog implements CatalogClient {
  node: NodeRecord | undefined;
  readonly services = new Map<string, ServiceRecord>();
  readonly checks = new Map<string, CheckRecord>();
  readonly calls: string[] = [];
  readonly requests: (RegisterRequest | DeregisterRequest)[] = [];
  readonly tokens: string[] = [];
  /** Failures to inject: a call whose line starts with `prefix` throws `error` (`times` times). */
  readonly failures: { prefix: string; error: Error; times: number }[] = [];
  /** When set, writes wait for it (a write in flight). */
  gate: Promise<void> | undefined;
  private index = 1;

  async readNode(nodeName: string): Promise<{ node: NodeRecord | undefined; services: ServiceRecord[]; checks: CheckRecord[] }> {
    this.record('read');
    assert.equal(nodeName, NODE.Node);
    return { node: this.node, services: [...this.services.values()], checks: [...this.checks.values()] };
  }

  async register(request: RegisterRequest, token?: string): Promise<void> {
    const line = describeRegister(request);
    this.requests.push(request);
    this.tokens.push(token ?? '');
    await this.gate;
    this.record(line);
    const index = this.index++;
    if (!this.node || !request.SkipNodeUpdate) {
      this.node = { ID: request.ID ?? '', Node: request.Node, Address: request.Address ?? '', Datacenter: request.Datacenter ?? '', TaggedAddresses: { ...request.TaggedAddresses }, Meta: { ...request.NodeMeta }, CreateIndex: index, ModifyIndex: index };
    }
    const s = request.Service;
    if (s) {
      this.services.set(s.ID ?? '', {
        Node: request.Node, ID: s.ID ?? '', Service: s.Service ?? '', Kind: s.Kind ?? '', Tags: [...(s.Tags ?? [])], Address: s.Address ?? '',
        TaggedAddresses: { ...s.TaggedAddresses }, Meta: { ...s.Meta }, Port: s.Port ?? 0, SocketPath: s.SocketPath ?? '',
        Weights: s.Weights ?? { Passing: 1, Warning: 1 }, EnableTagOverride: s.EnableTagOverride ?? false, CreateIndex: index, ModifyIndex: index,
      });
    }
    for (const c of [...(request.Check ? [request.Check] : []), ...(request.Checks ?? [])]) {
      this.checks.set(c.CheckID ?? '', {
        Node: request.Node, CheckID: c.CheckID ?? '', Name: c.Name ?? '', Status: (c.Status ?? 'critical') as CheckRecord['Status'], Notes: c.Notes ?? '',
        Output: c.Output ?? '', ServiceID: c.ServiceID ?? '', ServiceName: c.ServiceName ?? '', ServiceTags: [...(c.ServiceTags ?? [])], Type: c.Type ?? '',
        Interval: c.Interval ?? '', Timeout: c.Timeout ?? '', ExposedPort: 0, Definition: { ...c.Definition }, CreateIndex: index, ModifyIndex: index,
      });
    }
  }

  async deregister(request: DeregisterRequest, token?: string): Promise<void> {
    const line = request.ServiceID ? `deregister service=${request.ServiceID}` : `deregister check=${request.CheckID}`;
    this.requests.push(request);
    this.tokens.push(token ?? '');
    await this.gate;
    this.record(line);
    if (request.ServiceID) {
      this.services.delete(request.ServiceID);
      for (const [id, check] of this.checks) if (check.ServiceID === request.ServiceID) this.checks.delete(id);
    } else if (request.CheckID) {
      this.checks.delete(request.CheckID);
    }
  }

  /** Calls recorded since the last take, cleared. */
  take(): string[] {
    return this.calls.splice(0);
  }

  /** Calls other than reads since the last take. */
  writes(): string[] {
    return this.take().filter((line) => line !== 'read');
  }

  private record(line: string): void {
    const failure = this.failures.find((f) => f.times > 0 && line.startsWith(f.prefix));
    if (failure) {
      failure.times -= 1;
      this.calls.push(`${line} FAILED`);
      throw failure.error;
    }
    this.calls.push(line);
  }
}

function describeRegister(request: RegisterRequest): string {
  const checks = [...(request.Check ? [request.Check] : []), ...(request.Checks ?? [])].map((c) => c.CheckID);
  const parts = ['register'];
  if (request.Service) parts.push(`service=${request.Service.ID}`);
  if (request.Service && checks.length > 0) parts.push(`checks=${checks.join(',')}`);
  if (!request.Service && checks.length > 0) parts.push(`check=${checks.join(',')}`);
  if (!request.Service && checks.length === 0) parts.push('node');
  if (request.SkipNodeUpdate) parts.push('skipNode');
  return parts.join(' ');
}

const NODE: NodeIdentity = { ID: '11111111-2222-3333-4444-555555555555', Node: 'agent-one', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.1', wan: '10.0.0.1' }, Meta: { rack: 'r1' } };

function service(id: string, extra: Partial<LocalService> = {}): LocalService {
  return { ID: id, Service: id, Kind: '', Tags: ['v1'], Address: '', TaggedAddresses: {}, Meta: {}, Port: 8080, SocketPath: '', Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false, ...extra };
}

function check(id: string, serviceId = '', extra: Partial<LocalCheck> = {}): LocalCheck {
  return { CheckID: id, Name: `check ${id}`, Status: 'critical', Notes: '', Output: '', ServiceID: serviceId, ServiceName: '', ServiceTags: [], Type: 'ttl', Interval: '', Timeout: '', Definition: {}, ...extra };
}

function harness(options: { intervalMs?: number; rng?: () => number } = {}): { state: LocalState; catalog: FakeCatalog; clock: FakeClock; changes: () => number } {
  const clock = new FakeClock();
  let changes = 0;
  const state = new LocalState({
    node: NODE,
    clock,
    rng: options.rng ?? (() => 0.5),
    checkUpdateIntervalMs: options.intervalMs ?? CHECK_UPDATE_INTERVAL_DEFAULT_MS,
    logger: nullLogger(),
    onChange: () => (changes += 1),
  });
  return { state, catalog: new FakeCatalog(), clock, changes: () => changes };
}

/** A state whose web service (with check web-alive) and node check `mem` are in the catalog. */
async function synced(options: { intervalMs?: number } = {}): Promise<ReturnType<typeof harness>> {
  const h = harness(options);
  h.state.addService(service('web'));
  h.state.addCheck(check('web-alive', 'web'));
  h.state.addCheck(check('mem'));
  await h.state.syncFull(h.catalog);
  h.catalog.take();
  assert.equal(h.state.pendingCount(), 0);
  return h;
}

// ---------------------------------------------------------------------------------------------
// Local state

describe('LocalState bookkeeping (state.go AddService/AddCheck/RemoveService)', () => {
  test('services() and checks() list live entries sorted by ID; a service check takes its service name and tags', () => {
    const { state } = harness();
    state.addService(service('b', { Service: 'bee', Tags: ['x'] }));
    state.addService(service('a'));
    state.addCheck(check('z'));
    state.addCheck(check('y', 'b'));
    assert.deepEqual(state.services().map((s) => s.ID), ['a', 'b']);
    assert.deepEqual(state.checks().map((c) => c.CheckID), ['y', 'z']);
    assert.equal(state.check('y')?.ServiceName, 'bee');
    assert.deepEqual(state.check('y')?.ServiceTags, ['x']);
  });

  test('a check of an unknown service is refused with Consul\'s AddCheck text', () => {
    const { state } = harness();
    assert.throws(() => state.addCheck(check('c', 'nope')), (error: unknown) => error instanceof AntiEntropyError && error.message === 'Check ID "c" refers to non-existent service ID "nope"');
  });

  test('removeService removes the service and its checks locally and returns false when unknown', () => {
    const { state } = harness();
    state.addService(service('web'));
    state.addCheck(check('web-alive', 'web'));
    state.addCheck(check('mem'));
    assert.equal(state.removeService('web'), true);
    assert.equal(state.service('web'), undefined);
    assert.deepEqual(state.checks().map((c) => c.CheckID), ['mem']);
    assert.equal(state.removeService('web'), false);
    assert.equal(state.removeCheck('nope'), false);
  });

  test('every change calls onChange', () => {
    const { state, changes } = harness();
    state.addService(service('web'));
    state.addCheck(check('c', 'web'));
    state.updateCheck('c', 'passing', 'ok');
    state.removeCheck('c');
    state.removeService('web');
    state.setNode({ ...NODE, Meta: { rack: 'r2' } });
    assert.equal(changes(), 6);
  });
});

describe('SyncChanges writes exactly what differs', () => {
  test('the first sync registers the node, then each service with its checks in one request, then node checks', async () => {
    const { state, catalog } = harness();
    state.addService(service('web'));
    state.addCheck(check('web-alive', 'web'));
    state.addCheck(check('web-port', 'web'));
    state.addCheck(check('mem'));
    assert.equal(state.pendingCount(), 5);
    await state.syncFull(catalog);
    assert.deepEqual(catalog.take(), ['read', 'register node', 'register service=web checks=web-alive,web-port skipNode', 'register check=mem skipNode']);
    assert.equal(state.pendingCount(), 0);
    const first = catalog.requests[0] as RegisterRequest;
    assert.deepEqual(first, { Datacenter: 'dc1', ID: NODE.ID, Node: 'agent-one', Address: '10.0.0.1', TaggedAddresses: NODE.TaggedAddresses, NodeMeta: NODE.Meta });
  });

  test('a sync with nothing changed writes nothing', async () => {
    const { state, catalog } = await synced();
    await state.syncFull(catalog);
    assert.deepEqual(catalog.take(), ['read']);
    await state.syncChanges(catalog);
    assert.deepEqual(catalog.take(), []);
  });

  test('adding, changing and removing entries writes only those entries', async () => {
    const { state, catalog } = await synced();
    state.addService(service('api'));
    state.addService(service('web'));
    await state.syncFull(catalog);
    assert.deepEqual(catalog.writes(), ['register service=api skipNode'], 're-adding an identical service is not a change');
    state.addService(service('web', { Port: 9090 }));
    state.removeCheck('mem');
    await state.syncChanges(catalog);
    assert.deepEqual(catalog.writes(), ['deregister check=mem', 'register service=web skipNode']);
    state.removeService('web');
    await state.syncChanges(catalog);
    assert.deepEqual(catalog.writes(), ['deregister service=web'], 'the service takes its checks along');
    assert.equal(catalog.checks.has('web-alive'), false);
    assert.equal(state.pendingCount(), 0);
  });

  test('re-registering a service with new tags updates its checks\' service tags; identical re-adds write nothing', async () => {
    const { state, catalog } = await synced();
    state.addCheck(check('mem'));
    state.addService(service('web', { Tags: ['v2'] }));
    assert.deepEqual(state.check('web-alive')?.ServiceTags, ['v2']);
    await state.syncChanges(catalog);
    assert.deepEqual(catalog.writes(), ['register service=web checks=web-alive skipNode']);
    assert.deepEqual(catalog.checks.get('web-alive')?.ServiceTags, ['v2']);
  });

  test('order: service deletions, check deletions, node info, services, checks', async () => {
    const { state, catalog } = await synced();
    state.addService(service('db'));
    state.addCheck(check('disk'));
    state.removeService('web');
    state.removeCheck('mem');
    state.setNode({ ...NODE, Address: '10.0.0.2' });
    await state.syncChanges(catalog);
    assert.deepEqual(catalog.take(), ['deregister service=web', 'deregister check=mem', 'register node', 'register service=db skipNode', 'register check=disk skipNode']);
  });

  test('node info out of sync is carried by the node write and a changed node reaches the catalog', async () => {
    const { state, catalog } = await synced();
    state.setNode({ ...NODE, Meta: { rack: 'r9' }, TaggedAddresses: { lan: '10.0.0.1' } });
    assert.equal(state.pendingCount(), 1);
    await state.syncChanges(catalog);
    assert.deepEqual(catalog.take(), ['register node']);
    assert.deepEqual(catalog.node?.Meta, { rack: 'r9' });
    assert.deepEqual(catalog.node?.TaggedAddresses, { lan: '10.0.0.1' });
  });

  test('tokens: a service and the checks sharing its token ride together; others register alone; deletions use the agent token', async () => {
    const clock = new FakeClock();
    const state = new LocalState({ node: NODE, clock, rng: () => 0.5, checkUpdateIntervalMs: 0, logger: nullLogger(), onChange: () => undefined, agentToken: () => 'agent-tok', userToken: () => 'default-tok' });
    const catalog = new FakeCatalog();
    state.addService(service('web'), 'svc-tok');
    state.addCheck(check('a', 'web'), 'svc-tok');
    state.addCheck(check('b', 'web'));
    await state.syncFull(catalog);
    // b registers alone with its own token (syncCheck brings its service along, as Consul's does).
    assert.deepEqual(catalog.take(), ['read', 'register node', 'register service=web checks=a skipNode', 'register service=web checks=b skipNode']);
    assert.deepEqual(catalog.tokens, ['agent-tok', 'svc-tok', 'default-tok']);
    state.removeService('web');
    await state.syncChanges(catalog);
    assert.equal(catalog.tokens.at(-1), 'agent-tok');
  });
});

describe('updateSyncState: the catalog is repaired to match the agent', () => {
  test('catalog services and checks unknown locally are deregistered, except consul and serfHealth', async () => {
    const { state, catalog } = await synced();
    await state.syncFull(catalog);
    catalog.take();
    const base = catalog.services.get('web');
    assert.ok(base);
    catalog.services.set('consul', { ...base, ID: 'consul', Service: 'consul' });
    catalog.services.set('stale', { ...base, ID: 'stale', Service: 'stale' });
    const mem = catalog.checks.get('mem');
    assert.ok(mem);
    catalog.checks.set('serfHealth', { ...mem, CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' });
    catalog.checks.set('old', { ...mem, CheckID: 'old' });
    catalog.checks.set('stale-check', { ...mem, CheckID: 'stale-check', ServiceID: 'stale', ServiceName: 'stale' });
    await state.syncFull(catalog);
    assert.deepEqual(catalog.writes(), ['deregister service=stale', 'deregister check=old'], "the stale service's check went with it");
    assert.deepEqual([...catalog.services.keys()].sort(), ['consul', 'web']);
    assert.deepEqual([...catalog.checks.keys()].sort(), ['mem', 'serfHealth', 'web-alive']);
    await state.syncFull(catalog);
    assert.deepEqual(catalog.writes(), []);
    assert.deepEqual(state.services().map((s) => s.ID), ['web']);
  });

  test('a service edited and a check added behind the agent\'s back are repaired', async () => {
    const { state, catalog } = await synced();
    const web = catalog.services.get('web');
    assert.ok(web);
    catalog.services.set('web', { ...web, Port: 1, Meta: { hacked: 'yes' } });
    const mem = catalog.checks.get('mem');
    assert.ok(mem);
    catalog.checks.set('extra', { ...mem, CheckID: 'extra' });
    catalog.checks.set('mem', { ...mem, Status: 'passing' });
    await state.syncFull(catalog);
    assert.deepEqual(catalog.writes(), ['deregister check=extra', 'register service=web skipNode', 'register check=mem skipNode']);
    assert.equal(catalog.services.get('web')?.Port, 8080);
    assert.deepEqual(catalog.services.get('web')?.Meta, {});
    assert.equal(catalog.checks.get('mem')?.Status, 'critical');
  });

  test('entries missing from the catalog and a changed node record are written again', async () => {
    const { state, catalog } = await synced();
    catalog.services.delete('web');
    catalog.checks.delete('web-alive');
    catalog.checks.delete('mem');
    assert.ok(catalog.node);
    catalog.node = { ...catalog.node, Address: '192.168.0.9' };
    await state.syncFull(catalog);
    assert.deepEqual(catalog.writes(), ['register node', 'register service=web checks=web-alive skipNode', 'register check=mem skipNode']);
    assert.equal(catalog.node?.Address, '10.0.0.1');
  });

  test('EnableTagOverride: catalog tags are adopted locally, not overwritten; other fields are still corrected', async () => {
    const { state, catalog } = harness();
    state.addService(service('web', { EnableTagOverride: true, Tags: ['local'] }));
    state.addService(service('api', { Tags: ['local'] }));
    await state.syncFull(catalog);
    catalog.take();
    for (const id of ['web', 'api']) {
      const record = catalog.services.get(id);
      assert.ok(record);
      catalog.services.set(id, { ...record, Tags: ['edited'] });
    }
    await state.syncFull(catalog);
    assert.deepEqual(catalog.writes(), ['register service=api skipNode']);
    assert.deepEqual(catalog.services.get('web')?.Tags, ['edited']);
    assert.deepEqual(state.service('web')?.Tags, ['edited']);
    assert.deepEqual(catalog.services.get('api')?.Tags, ['local']);
    const web = catalog.services.get('web');
    assert.ok(web);
    catalog.services.set('web', { ...web, Port: 1 });
    await state.syncFull(catalog);
    assert.deepEqual(catalog.writes(), ['register service=web skipNode']);
    assert.equal(catalog.services.get('web')?.Port, 8080);
    assert.deepEqual(catalog.services.get('web')?.Tags, ['edited']);
  });
});

describe('check updates: output-only changes deferred, status changes immediate (UpdateCheck)', () => {
  test('an output-only update is stored, then written after interval/2 + random(0..interval)', async () => {
    const { state, catalog, clock, changes } = await synced();
    const before = changes();
    state.updateCheck('mem', 'critical', 'load 0.9');
    assert.equal(state.check('mem')?.Output, 'load 0.9');
    assert.equal(state.pendingCount(), 0);
    assert.equal(changes(), before);
    // rng 0.5: 150s + 150s = 300s.
    assert.deepEqual(clock.pendingAt(), [300_000]);
    state.updateCheck('mem', 'critical', 'load 1.0');
    assert.deepEqual(clock.pendingAt(), [300_000], 'one timer per check');
    await state.syncFull(catalog);
    assert.deepEqual(catalog.writes(), [], 'a full sync within the window ignores the output');
    await clock.advance(299_999);
    assert.equal(state.pendingCount(), 0);
    await clock.advance(1);
    assert.equal(state.pendingCount(), 1);
    assert.equal(changes(), before + 1);
    await state.syncChanges(catalog);
    assert.deepEqual(catalog.writes(), ['register check=mem skipNode']);
    assert.equal(catalog.checks.get('mem')?.Output, 'load 1.0');
  });

  test('a status change is out of sync at once and carries the latest output', async () => {
    const { state, catalog, changes } = await synced();
    const before = changes();
    state.updateCheck('mem', 'critical', 'slow');
    state.updateCheck('mem', 'passing', 'fine');
    assert.equal(changes(), before + 1);
    assert.equal(state.pendingCount(), 1);
    await state.syncChanges(catalog);
    assert.deepEqual(catalog.writes(), ['register check=mem skipNode']);
    assert.equal(catalog.checks.get('mem')?.Status, 'passing');
    assert.equal(catalog.checks.get('mem')?.Output, 'fine');
  });

  test('an identical update changes nothing; an unknown check is ignored', async () => {
    const { state, clock, changes } = await synced();
    const before = changes();
    state.updateCheck('mem', 'critical', '');
    state.updateCheck('nope', 'passing', 'x');
    assert.equal(changes(), before);
    assert.deepEqual(clock.pendingAt(), []);
  });

  test('without a pending write-back, a full sync does compare the output', async () => {
    const { state, catalog } = await synced();
    const mem = catalog.checks.get('mem');
    assert.ok(mem);
    catalog.checks.set('mem', { ...mem, Output: 'stale output' });
    await state.syncFull(catalog);
    assert.deepEqual(catalog.writes(), ['register check=mem skipNode']);
  });

  test('check_update_interval 0 disables the deferral', async () => {
    const { state, catalog, clock, changes } = await synced({ intervalMs: 0 });
    const before = changes();
    state.updateCheck('mem', 'critical', 'load 0.9');
    assert.equal(changes(), before + 1);
    assert.equal(state.pendingCount(), 1);
    assert.deepEqual(clock.pendingAt(), []);
    await state.syncChanges(catalog);
    assert.equal(catalog.checks.get('mem')?.Output, 'load 0.9');
  });

  test('a removed check\'s pending write-back does nothing', async () => {
    const { state, catalog, clock } = await synced();
    state.updateCheck('mem', 'critical', 'x');
    state.removeCheck('mem');
    await state.syncChanges(catalog);
    catalog.take();
    await clock.advance(CHECK_UPDATE_INTERVAL_DEFAULT_MS * 2);
    assert.equal(state.pendingCount(), 0);
  });
});

describe('write failures', () => {
  test('a failed write is retried on the next sync; the others still go through', async () => {
    const { state, catalog } = harness();
    state.addService(service('api'));
    state.addService(service('web'));
    catalog.failures.push({ prefix: 'register service=api', error: new Error('rpc error: No cluster leader'), times: 1 });
    await assert.rejects(state.syncFull(catalog), (error: unknown) => error instanceof AntiEntropyError && error.code === 'ERR_SYNC_WRITE_FAILED');
    assert.deepEqual(catalog.take(), ['read', 'register node', 'register service=api skipNode FAILED', 'register service=web skipNode']);
    assert.equal(state.pendingCount(), 1);
    await state.syncChanges(catalog);
    assert.deepEqual(catalog.take(), ['register service=api skipNode']);
    assert.equal(state.pendingCount(), 0);
  });

  test('a failed deletion is retried', async () => {
    const { state, catalog } = await synced();
    state.removeCheck('mem');
    catalog.failures.push({ prefix: 'deregister check=mem', error: new Error('connection reset'), times: 1 });
    await assert.rejects(state.syncChanges(catalog));
    await state.syncChanges(catalog);
    assert.deepEqual(catalog.take(), ['deregister check=mem FAILED', 'deregister check=mem']);
    assert.equal(catalog.checks.has('mem'), false);
  });

  test('a read failure rejects syncFull and writes nothing', async () => {
    const { state } = harness();
    state.addService(service('web'));
    const failing: CatalogClient = {
      readNode: () => Promise.reject(new Error('No known Consul servers')),
      register: () => assert.fail('no write expected'),
      deregister: () => assert.fail('no write expected'),
    };
    await assert.rejects(state.syncFull(failing), /No known Consul servers/);
    assert.equal(state.pendingCount(), 2);
  });

  test('Permission denied marks the item in sync (no retry loop) until the next full sync', async () => {
    const { state, catalog } = await synced();
    state.addService(service('secret'));
    catalog.failures.push({ prefix: 'register service=secret', error: new Error('Permission denied: token lacks service:write'), times: 99 });
    await state.syncChanges(catalog);
    assert.equal(state.pendingCount(), 0);
    await state.syncChanges(catalog);
    assert.deepEqual(catalog.take(), ['register service=secret skipNode FAILED']);
    await state.syncFull(catalog);
    assert.deepEqual(catalog.take(), ['read', 'register service=secret skipNode FAILED'], 'a full sync finds it missing again');
  });

  test('Permission denied on a deletion stops partial retries; the next full sync tries again', async () => {
    const { state, catalog } = await synced();
    state.removeCheck('mem');
    catalog.failures.push({ prefix: 'deregister check=mem', error: new Error('Permission denied'), times: 1 });
    await state.syncChanges(catalog);
    await state.syncChanges(catalog);
    assert.deepEqual(catalog.take(), ['deregister check=mem FAILED']);
    await state.syncFull(catalog);
    assert.deepEqual(catalog.take(), ['read', 'deregister check=mem']);
    assert.equal(catalog.checks.has('mem'), false);
  });

  test('"Unknown service" on a deletion counts as deleted', async () => {
    const { state, catalog } = await synced();
    state.removeService('web');
    catalog.failures.push({ prefix: 'deregister service=web', error: new Error('Unknown service "web"'), times: 1 });
    await state.syncChanges(catalog);
    assert.equal(state.pendingCount(), 0);
  });

  test('a change made while its write is in flight stays out of sync', async () => {
    const { state, catalog } = await synced();
    state.addService(service('web', { Port: 1 }));
    let open = (): void => undefined;
    catalog.gate = new Promise<void>((resolve) => (open = resolve));
    const sync = state.syncChanges(catalog);
    await settle();
    state.addService(service('web', { Port: 2 }));
    catalog.gate = undefined;
    open();
    await sync;
    assert.equal(state.pendingCount(), 1);
    await state.syncChanges(catalog);
    assert.equal(catalog.services.get('web')?.Port, 2);
    assert.equal(state.pendingCount(), 0);
  });
});

describe('scaleFactor (ae.go)', () => {
  test('1 up to 128 nodes, then one more per doubling', () => {
    const table: [number, number][] = [[0, 1], [1, 1], [64, 1], [128, 1], [129, 2], [200, 2], [256, 2], [257, 3], [512, 3], [513, 4], [1024, 4], [1025, 5], [4096, 6], [8192, 7]];
    for (const [nodes, factor] of table) assert.equal(scaleFactor(nodes), factor, `nodes=${nodes}`);
  });
});

// ---------------------------------------------------------------------------------------------
// StateSyncer

function syncerHarness(options: { rng?: () => number; clusterSize?: number } = {}): { syncer: StateSyncer; state: LocalState; catalog: FakeCatalog; clock: FakeClock } {
  const clock = new FakeClock();
  const catalog = new FakeCatalog();
  let syncer: StateSyncer | undefined;
  const state = new LocalState({ node: NODE, clock, rng: () => 0.5, checkUpdateIntervalMs: CHECK_UPDATE_INTERVAL_DEFAULT_MS, logger: nullLogger(), onChange: () => syncer?.trigger() });
  syncer = new StateSyncer({ state, client: catalog, clock, rng: options.rng ?? (() => 0.5), logger: nullLogger(), clusterSize: () => options.clusterSize ?? 3 });
  return { syncer, state, catalog, clock };
}

describe('StateSyncer timing (ae.go)', () => {
  test('first full sync after a stagger of up to 3s, then every interval + random(0..interval*scale)', async () => {
    const { syncer, catalog, clock } = syncerHarness();
    syncer.start();
    assert.deepEqual(clock.pendingAt(), [SERVER_UP_INTERVAL_MS / 2]);
    await clock.advance(1_499);
    assert.deepEqual(catalog.take(), []);
    await clock.advance(1);
    assert.deepEqual(catalog.take(), ['read', 'register node']);
    // Timed from the start of the sync: 1.5s + 60s + 30s.
    assert.deepEqual(clock.pendingAt(), [1_500 + AE_INTERVAL_DEFAULT_MS + AE_INTERVAL_DEFAULT_MS / 2]);
    await clock.advance(90_000);
    assert.deepEqual(catalog.take(), ['read']);
    syncer.stop();
    assert.deepEqual(clock.pendingAt(), []);
  });

  test('the full sync interval scales with the cluster size', async () => {
    const { syncer, clock } = syncerHarness({ rng: () => 1 - 2 ** -20, clusterSize: 1024 });
    syncer.start();
    const [first] = clock.pendingAt();
    assert.ok(first !== undefined && first > SERVER_UP_INTERVAL_MS * 3.99 && first < SERVER_UP_INTERVAL_MS * 4);
    await clock.advance(first);
    const [next] = clock.pendingAt();
    assert.ok(next !== undefined && next - first > AE_INTERVAL_DEFAULT_MS * 4.99 && next - first < AE_INTERVAL_DEFAULT_MS * 5);
    syncer.stop();
  });

  test('a local change triggers a partial sync without a catalog read', async () => {
    const { syncer, state, catalog, clock } = syncerHarness();
    syncer.start();
    await clock.advance(1_500);
    catalog.take();
    state.addService(service('web'));
    await settle();
    assert.deepEqual(catalog.take(), ['register service=web skipNode']);
    syncer.stop();
  });

  test('partial syncs are coalesced: one in flight, one queued', async () => {
    const { syncer, state, catalog, clock } = syncerHarness();
    syncer.start();
    await clock.advance(1_500);
    catalog.take();
    let open = (): void => undefined;
    catalog.gate = new Promise<void>((resolve) => (open = resolve));
    state.addService(service('a'));
    await settle();
    state.addService(service('b'));
    state.addService(service('c'));
    syncer.trigger();
    await settle();
    catalog.gate = undefined;
    open();
    await settle();
    assert.deepEqual(catalog.take(), ['register service=a skipNode', 'register service=b skipNode', 'register service=c skipNode']);
    syncer.stop();
  });

  test('a failed full sync is retried after 15s + random(0..15s*scale)', async () => {
    const { syncer, catalog, clock } = syncerHarness();
    catalog.failures.push({ prefix: 'read', error: new Error('No known Consul servers'), times: 1 });
    syncer.start();
    await clock.advance(1_500);
    assert.deepEqual(catalog.take(), ['read FAILED']);
    assert.deepEqual(clock.pendingAt(), [1_500 + RETRY_FAIL_INTERVAL_MS + RETRY_FAIL_INTERVAL_MS / 2]);
    await clock.advance(RETRY_FAIL_INTERVAL_MS * 1.5);
    assert.deepEqual(catalog.take(), ['read', 'register node']);
    assert.deepEqual(clock.pendingAt(), [24_000 + 90_000]);
    syncer.stop();
  });

  test('whenSynced resolves after a sync that started after the call, not one already running', async () => {
    const { syncer, state, catalog, clock } = syncerHarness();
    syncer.start();
    await clock.advance(1_500);
    catalog.take();
    let open = (): void => undefined;
    catalog.gate = new Promise<void>((resolve) => (open = resolve));
    state.addService(service('a'));
    await settle();
    // The sync writing `a` is in flight; a caller registering `b` must wait for the next one.
    state.addService(service('b'));
    let isDone = false;
    const waiting = syncer.whenSynced().then(() => (isDone = true));
    const gate = catalog.gate;
    let openNext = (): void => undefined;
    catalog.gate = new Promise<void>((resolve) => (openNext = resolve));
    open();
    await gate;
    await settle();
    assert.equal(isDone, false, 'the sync that was running when whenSynced was called does not count');
    catalog.gate = undefined;
    openNext();
    await waiting;
    assert.equal(catalog.services.has('b'), true);
    syncer.stop();
  });

  test('whenSynced after a local change resolves once the change is in the catalog', async () => {
    const { syncer, state, catalog, clock } = syncerHarness();
    syncer.start();
    await clock.advance(1_500);
    state.addService(service('web'));
    await syncer.whenSynced();
    assert.equal(catalog.services.has('web'), true);
    syncer.stop();
  });

  test('pause holds partial syncs and defers a due full sync; resume triggers a partial sync', async () => {
    const { syncer, state, catalog, clock } = syncerHarness();
    syncer.start();
    await clock.advance(1_500);
    catalog.take();
    syncer.pause();
    state.addService(service('web'));
    await settle();
    assert.deepEqual(catalog.take(), []);
    await clock.advance(90_000);
    assert.deepEqual(catalog.take(), [], 'the due full sync is put off while paused');
    assert.deepEqual(clock.pendingAt(), [91_500 + 22_500]);
    syncer.resume();
    await settle();
    assert.deepEqual(catalog.take(), ['register service=web skipNode']);
    assert.throws(() => syncer.resume(), /unbalanced pause\/resume/);
    syncer.stop();
  });

  test('stop releases waiters and later timers do nothing', async () => {
    const { syncer, catalog, clock } = syncerHarness({ rng: seededRng(7) });
    syncer.start();
    syncer.pause();
    const waiting = syncer.whenSynced();
    syncer.stop();
    await waiting;
    await clock.advance(10 * AE_INTERVAL_DEFAULT_MS);
    assert.deepEqual(catalog.take(), []);
    await syncer.whenSynced();
  });
});
