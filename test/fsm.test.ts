import assert from 'node:assert/strict';
import { autopilotConfig } from '../lib/autopilot.js';
import { describe, test } from 'node:test';
import { nodes, serviceNodes } from '../lib/catalog.js';
import { COMMAND_FORMAT_VERSION, decodeCommand, encodeCommand, Fsm, FsmError, SNAPSHOT_MAGIC, type Command } from '../lib/fsm.js';
import { kvsGet, kvsList } from '../lib/kvs.js';
import { WatchSet } from '../lib/memdb.js';
import { encode } from '../lib/msgpack.js';
import { StateStore } from '../lib/state.js';
import { mulberry32 } from './support.js';
import { dumpState } from './state-support.js';

/** Values come back from decoding as Buffers (copied out of the command), so tests build Buffers. */
const bytes = (text: string): Uint8Array => Buffer.from(text);

function newFsm(): Fsm {
  return new Fsm(new StateStore({ nowMs: () => 1_000_000 }));
}

/** Applies commands at indexes 1, 2, ... and returns the results. */
function applyAll(fsm: Fsm, commands: readonly Command[]): unknown[] {
  return commands.map((command) => {
    const result = fsm.apply(fsm.appliedIndex + 1, encodeCommand(command));
    return result.ok ? result.value : result.error;
  });
}


/** The whole snapshot; each chunk is copied because the generator reuses its buffer. */
async function snapshotBytes(fsm: Fsm): Promise<Buffer> {
  return Buffer.concat(Array.from(fsm.snapshot().chunks(), (chunk) => Buffer.from(chunk)));
}

/** A random but valid sequence of commands touching every table. */
const AUTOPILOT_SAMPLE = { CleanupDeadServers: true, LastContactThreshold: 200e6, MaxTrailingLogs: 250, MinQuorum: 0, ServerStabilizationTime: 10e9, RedundancyZoneTag: '', DisableUpgradeMigration: false, UpgradeVersionTag: '' };

function randomCommands(seed: number, count: number): Command[] {
  const random = mulberry32(seed);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)] as T;
  const nodeNames = ['n1', 'n2', 'n3'];
  const commands: Command[] = nodeNames.map((node, i) => ({
    type: 'register',
    request: { Node: node, Address: `10.0.0.${i + 1}`, Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' } },
  }));
  for (let i = 0; i < count; i++) {
    const roll = random();
    const node = pick(nodeNames);
    if (roll < 0.2) {
      commands.push({
        type: 'register',
        request: {
          Node: node, Address: '10.0.0.9', NodeMeta: { rack: pick(['a', 'b']) },
          Service: { ID: `web-${i % 4}`, Service: pick(['web', 'db']), Tags: [pick(['v1', 'v2'])], Port: 80 + (i % 3), Meta: { k: 'v' } },
          Check: { CheckID: `chk-${i % 4}`, Name: 'check', Status: pick(['passing', 'warning', 'critical']), ServiceID: `web-${i % 4}`, Definition: { HTTP: 'http://x/health', Interval: '10s' } },
        },
      });
    } else if (roll < 0.5) {
      const value = random() < 0.1 ? null : bytes(`value-${i}-${'x'.repeat(Math.floor(random() * 40))}`);
      commands.push({ type: 'kvs', op: 'set', entry: { Key: `app/${pick(['a', 'b', 'c'])}/${i % 7}`, Value: value, Flags: random() < 0.3 ? 3304740253564472344n : BigInt(i) } });
    } else if (roll < 0.6) {
      commands.push({ type: 'kvs', op: pick(['delete', 'delete-tree']), entry: { Key: `app/${pick(['a', 'b', 'c'])}` } });
    } else if (roll < 0.7) {
      commands.push({ type: 'session-create', session: { ID: `0000000${i % 10}-0000-4000-8000-000000000000`, Name: 's', Node: node, NodeChecks: ['serfHealth'], ServiceChecks: [], LockDelay: 15e9, Behavior: pick(['release', 'delete']), TTL: '' } });
    } else if (roll < 0.8) {
      commands.push({ type: 'kvs', op: 'lock', entry: { Key: `locks/${i % 3}`, Value: bytes('held'), Session: `0000000${i % 10}-0000-4000-8000-000000000000` } });
    } else if (roll < 0.72) {
      commands.push({ type: 'autopilot-set', config: { ...AUTOPILOT_SAMPLE, MaxTrailingLogs: i } });
    } else if (roll < 0.85) {
      commands.push({ type: 'coordinate-batch-update', updates: [{ Node: node, Segment: '', Coord: { Vec: [0.1, 0, 0, 0, 0, 0, 0, random()], Error: 1.5, Adjustment: 0, Height: 1e-5 } }] });
    } else if (roll < 0.9) {
      commands.push({ type: 'deregister', request: { Node: node, ServiceID: `web-${i % 4}` } });
    } else if (roll < 0.95) {
      commands.push({
        type: 'txn',
        ops: [
          { KV: { Verb: 'set', DirEnt: { Key: `txn/${i}`, Value: bytes('t') } } },
          { KV: { Verb: 'check-not-exists', DirEnt: { Key: `txn/${i % 5}` } } },
          { Service: { Verb: 'set', Node: node, Service: { ID: `txn-${i % 3}`, Service: 'txn', Tags: ['t'], Port: 9000 + (i % 3) } } },
          { Check: { Verb: pick(['set', 'delete']), Check: { Node: node, CheckID: `txn-chk-${i % 3}`, Name: 'txn check', Status: pick(['passing', 'critical']) } } },
        ],
      });
    } else {
      commands.push({ type: 'tombstone-reap', reapIndex: Math.floor(commands.length / 2) });
    }
  }
  return commands;
}

describe('commands', () => {
  const samples: Command[] = [
    { type: 'register', request: { Node: 'n1', Address: '10.0.0.1', Service: { Service: 'web', Port: 80 }, Checks: [{ Name: 'c', Status: 'passing' }] } },
    { type: 'deregister', request: { Node: 'n1', ServiceID: 'web' } },
    { type: 'kvs', op: 'cas', entry: { Key: 'k', Value: bytes('v'), Flags: 18446744073709551615n, ModifyIndex: 0 } },
    { type: 'session-create', session: { ID: 'abc', Name: '', Node: 'n1', NodeChecks: ['serfHealth'], ServiceChecks: [{ ID: 'svc', Namespace: '' }], LockDelay: 15e9, Behavior: 'release', TTL: '30s' } },
    { type: 'session-destroy', id: 'abc' },
    { type: 'tombstone-reap', reapIndex: 42 },
    { type: 'autopilot-set', config: AUTOPILOT_SAMPLE },
    { type: 'autopilot-set', config: AUTOPILOT_SAMPLE, casIndex: 12 },
    { type: 'coordinate-batch-update', updates: [{ Node: 'n1', Segment: '', Coord: { Vec: [0.5, 0, 0, 0, 0, 0, 0, 0], Error: 1.5, Adjustment: 0, Height: 1e-5 } }] },
    { type: 'txn', ops: [{ KV: { Verb: 'get-tree', DirEnt: { Key: 'a/' } } }, { KV: { Verb: 'delete-cas', DirEnt: { Key: 'a/b', ModifyIndex: 7 } } }] },
    {
      type: 'txn',
      ops: [
        { Node: { Verb: 'cas', Node: { ID: '11111111-2222-4333-8444-555555555555', Node: 'n1', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.1' }, Meta: { rack: 'a' }, ModifyIndex: 0 } } },
        { Service: { Verb: 'set', Node: 'n1', Service: { ID: 'web', Service: 'web', Tags: ['v1'], Port: 80, Weights: { Passing: 1, Warning: 1 }, Proxy: { DestinationServiceName: 'x' }, ModifyIndex: 3 } } },
        { Check: { Verb: 'delete-cas', Check: { Node: 'n1', CheckID: 'c', Status: 'passing', Definition: { HTTP: 'http://x', Interval: '10s' }, ModifyIndex: 9 } } },
        { KV: { Verb: 'set', DirEnt: { Key: 'k', Value: bytes('v') } } },
      ],
    },
  ];
  for (const command of samples) {
    test(`${command.type} round-trips through its encoding`, () => {
      const encoded = encodeCommand(command);
      assert.equal(encoded[0], COMMAND_FORMAT_VERSION);
      assert.deepEqual(decodeCommand(encoded), command);
    });
  }

  const corrupt: [string, Uint8Array, string][] = [
    ['empty', new Uint8Array([]), 'ERR_COMMAND_CORRUPT'],
    ['unknown format version', new Uint8Array([9, 0, 0x80]), 'ERR_COMMAND_VERSION'],
    ['unknown message type', new Uint8Array([1, 77, 0x80]), 'ERR_COMMAND_CORRUPT'],
    ['truncated payload', encodeCommand(samples[0]!).subarray(0, 12), 'ERR_COMMAND_CORRUPT'],
    ['wrong field type', new Uint8Array([1, 0, ...encode({ Node: 5 })]), 'ERR_COMMAND_CORRUPT'],
    ['missing required field', new Uint8Array([1, 1, ...encode({ ServiceID: 'x' })]), 'ERR_COMMAND_CORRUPT'],
    ['unknown field', new Uint8Array([1, 1, ...encode({ Node: 'n', Sneaky: true })]), 'ERR_COMMAND_CORRUPT'],
    ['unknown KV op', new Uint8Array([1, 2, ...encode({ Op: 'explode', DirEnt: { Key: 'k' } })]), 'ERR_COMMAND_CORRUPT'],
    ['negative flags', new Uint8Array([1, 2, ...encode({ Op: 'set', DirEnt: { Key: 'k', Flags: -1 } })]), 'ERR_COMMAND_CORRUPT'],
    ['payload not a map', new Uint8Array([1, 5, ...encode([1, 2])]), 'ERR_COMMAND_CORRUPT'],
    ['txn op of two kinds', new Uint8Array([1, 8, ...encode({ Ops: [{ KV: { Verb: 'get', DirEnt: { Key: 'k' } }, Check: { Verb: 'get', Check: {} } }] })]), 'ERR_COMMAND_CORRUPT'],
    ['txn op of no kind', new Uint8Array([1, 8, ...encode({ Ops: [{}] })]), 'ERR_COMMAND_CORRUPT'],
    ['unknown Node verb', new Uint8Array([1, 8, ...encode({ Ops: [{ Node: { Verb: 'explode', Node: { ID: '', Node: 'n', Address: '', Datacenter: '', TaggedAddresses: {}, Meta: {}, ModifyIndex: 0 } } }] })]), 'ERR_COMMAND_CORRUPT'],
    ['txn service with an unknown field', new Uint8Array([1, 8, ...encode({ Ops: [{ Service: { Verb: 'set', Node: 'n', Service: { Service: 'web', Sneaky: 1 } } }] })]), 'ERR_COMMAND_CORRUPT'],
  ];
  test('a command the FSM would refuse is refused when encoded, before it can reach the log', () => {
    const definition = { HTTP: 'http://x', AliasNode: 'n2' } as unknown as Record<string, string>;
    const register = { type: 'register', request: { Node: 'n', Address: '127.0.0.1', Check: { CheckID: 'c', Name: 'c', Status: 'passing', Definition: definition } } } as unknown as Command;
    assert.throws(() => encodeCommand(register), (error: unknown) => error instanceof FsmError && error.code === 'ERR_COMMAND_CORRUPT' && /unknown field AliasNode/.test(error.message));
    const badFlags = { type: 'kvs', op: 'set', entry: { Key: 'k', Flags: -1n } } as unknown as Command;
    assert.throws(() => encodeCommand(badFlags), FsmError);
  });

  for (const [name, input, code] of corrupt) {
    test(`a command with ${name} is refused with ${code}, and nothing is applied`, () => {
      const fsm = newFsm();
      const before = dumpState(fsm);
      assert.throws(() => fsm.apply(1, input), (error: unknown) => error instanceof FsmError && error.code === code);
      assert.deepEqual(dumpState(fsm), before);
    });
  }
});

describe('apply', () => {
  test('commands change the state at their index and return Consul\'s results', () => {
    const fsm = newFsm();
    const results = applyAll(fsm, [
      { type: 'register', request: { Node: 'n1', Address: '10.0.0.1', Service: { Service: 'web', Port: 80 } } },
      { type: 'kvs', op: 'set', entry: { Key: 'a', Value: bytes('1') } },
      { type: 'kvs', op: 'cas', entry: { Key: 'a', Value: bytes('2'), ModifyIndex: 99 } },
      { type: 'session-create', session: { ID: '11111111-2222-4333-8444-555555555555', Name: '', Node: 'n1', NodeChecks: [], ServiceChecks: [], LockDelay: 0, Behavior: 'release', TTL: '' } },
    ]);
    assert.deepEqual(results, [undefined, true, false, '11111111-2222-4333-8444-555555555555']);
    const entry = fsm.state.read((txn) => kvsGet(txn, 'a'));
    assert.equal(entry.index, 2);
    assert.equal(Buffer.from(entry.value?.Value ?? []).toString(), '1');
    assert.equal(fsm.state.read((txn) => serviceNodes(txn, 'web')).value.length, 1);
  });

  test('a refused command is returned as an error value and leaves no trace', () => {
    const fsm = newFsm();
    const before = dumpState(fsm);
    const result = fsm.apply(1, encodeCommand({ type: 'session-create', session: { ID: 'x', Name: '', Node: 'nobody', NodeChecks: [], ServiceChecks: [], LockDelay: 0, Behavior: 'release', TTL: '' } }));
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.error.message, 'Missing node registration');
    assert.deepEqual(dumpState(fsm), before);
    assert.equal(fsm.appliedIndex, 1, 'a refused command still consumes its log index');
  });

  test('a KV transaction with a failing op rolls back every op', () => {
    const fsm = newFsm();
    applyAll(fsm, [{ type: 'kvs', op: 'set', entry: { Key: 'exists', Value: bytes('x') } }]);
    const before = dumpState(fsm);
    const [response] = applyAll(fsm, [{ type: 'txn', ops: [{ KV: { Verb: 'set', DirEnt: { Key: 'new', Value: bytes('y') } } }, { KV: { Verb: 'check-not-exists', DirEnt: { Key: 'exists' } } }] }]);
    assert.deepEqual(response, { Results: null, Errors: [{ OpIndex: 1, What: 'key "exists" exists' }] });
    assert.deepEqual(dumpState(fsm), before);
  });

  test('a txn entry in the first, KV-only encoding still decodes and applies', () => {
    // Golden bytes of a txn command as the KV-only encoder wrote it: version 1, type 8,
    // {Ops: [{KV: {Verb: set, DirEnt: {Key: old/a, Value: v1, Flags: 7}}}, {KV: {Verb: get, ...}}]}.
    // Never regenerate: old Raft logs hold exactly these bytes.
    const golden = Buffer.from(
      '010881a34f70739281a24b5682a456657262a3736574a6446972456e7483a34b6579a56f6c642f61a556616c7565c4027631a5466c6167730781a24b5682a456657262a3676574a6446972456e7481a34b6579a56f6c642f61',
      'hex',
    );
    assert.deepEqual(decodeCommand(golden), {
      type: 'txn',
      ops: [{ KV: { Verb: 'set', DirEnt: { Key: 'old/a', Value: bytes('v1'), Flags: 7n } } }, { KV: { Verb: 'get', DirEnt: { Key: 'old/a' } } }],
    });
    const fsm = newFsm();
    const result = fsm.apply(1, golden);
    assert.ok(result.ok);
    const response = result.value as { Results: { KV: { Key: string; Value: Uint8Array | null; Flags: bigint } }[]; Errors: null };
    assert.equal(response.Errors, null);
    assert.deepEqual(response.Results.map((r) => [r.KV.Key, r.KV.Value === null ? null : Buffer.from(r.KV.Value).toString(), r.KV.Flags]), [['old/a', null, 7n], ['old/a', 'v1', 7n]]);
    assert.equal(Buffer.from(fsm.state.read((txn) => kvsGet(txn, 'old/a')).value?.Value ?? []).toString(), 'v1');
  });

  test('a mixed KV and catalog txn applies at one index; a failing catalog op rolls back the KV ops', () => {
    const fsm = newFsm();
    const node = { ID: '', Node: 'n1', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {}, ModifyIndex: 0 };
    const [applied] = applyAll(fsm, [{
      type: 'txn',
      ops: [
        { KV: { Verb: 'set', DirEnt: { Key: 'k', Value: bytes('v') } } },
        { Node: { Verb: 'set', Node: node } },
        { Service: { Verb: 'set', Node: 'n1', Service: { ID: 'web', Service: 'web', Port: 80 } } },
        { Check: { Verb: 'set', Check: { Node: 'n1', CheckID: 'c', Name: 'c', Status: 'passing', ServiceID: 'web' } } },
      ],
    }]);
    const response = applied as { Results: Record<string, { ModifyIndex: number }>[]; Errors: null };
    assert.equal(response.Errors, null);
    assert.deepEqual(response.Results.map((r) => [Object.keys(r)[0], Object.values(r)[0]?.ModifyIndex]), [['KV', 1], ['Node', 1], ['Service', 1], ['Check', 1]]);
    const before = dumpState(fsm);
    const [refused] = applyAll(fsm, [{
      type: 'txn',
      ops: [
        { KV: { Verb: 'delete', DirEnt: { Key: 'k' } } },
        { Node: { Verb: 'delete', Node: node } },
        { Service: { Verb: 'get', Node: 'n1', Service: { ID: 'web' } } },
      ],
    }]);
    assert.deepEqual(refused, { Results: null, Errors: [{ OpIndex: 2, What: 'service "web" on node "n1" doesn\'t exist' }] });
    assert.deepEqual(dumpState(fsm), before);
    assert.equal(fsm.state.read((txn) => nodes(txn)).value.length, 1);
  });

  test('autopilot settings: set, then CAS only against the stored ModifyIndex (0: only if none)', () => {
    const fsm = newFsm();
    assert.deepEqual(fsm.apply(1, encodeCommand({ type: 'autopilot-set', config: AUTOPILOT_SAMPLE, casIndex: 5 })), { ok: true, value: false });
    assert.deepEqual(fsm.apply(2, encodeCommand({ type: 'autopilot-set', config: AUTOPILOT_SAMPLE, casIndex: 0 })), { ok: true, value: true });
    assert.deepEqual(fsm.apply(3, encodeCommand({ type: 'autopilot-set', config: { ...AUTOPILOT_SAMPLE, MinQuorum: 3 }, casIndex: 0 })), { ok: true, value: false });
    assert.deepEqual(fsm.apply(4, encodeCommand({ type: 'autopilot-set', config: { ...AUTOPILOT_SAMPLE, MinQuorum: 3 }, casIndex: 2 })), { ok: true, value: true });
    assert.deepEqual(fsm.apply(5, encodeCommand({ type: 'autopilot-set', config: { ...AUTOPILOT_SAMPLE, MinQuorum: 5 } })), { ok: true, value: true });
    const stored = fsm.state.read((txn) => autopilotConfig(txn));
    assert.equal(stored.index, 5);
    assert.deepEqual(stored.value, { ...AUTOPILOT_SAMPLE, MinQuorum: 5, CreateIndex: 2, ModifyIndex: 5 });
  });

  test('indexes must increase', () => {
    const fsm = newFsm();
    fsm.apply(5, encodeCommand({ type: 'tombstone-reap', reapIndex: 0 }));
    assert.throws(() => fsm.apply(5, encodeCommand({ type: 'tombstone-reap', reapIndex: 0 })), /apply index 5 after 5/);
  });
});

describe('snapshot and restore', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    test(`a random state round-trips exactly (SEED=${seed})`, async () => {
      const source = newFsm();
      applyAll(source, randomCommands(seed, 300));
      const snapshot = source.snapshot();
      const target = newFsm();
      applyAll(target, randomCommands(seed + 100, 50));
      await target.restore(snapshot.chunks(), snapshot.index);
      assert.deepEqual(dumpState(target), dumpState(source), `SEED=${seed}`);
      assert.equal(target.appliedIndex, source.appliedIndex);
      // The restored state keeps working: the same next command gives the same result on both.
      const next: Command = { type: 'kvs', op: 'set', entry: { Key: 'after', Value: bytes('z') } };
      assert.deepEqual(applyAll(target, [next]), applyAll(source, [next]));
      assert.deepEqual(dumpState(target), dumpState(source));
    });
  }

  test('a snapshot is the state when it was taken, whatever is applied while it streams', async () => {
    const fsm = newFsm();
    applyAll(fsm, [{ type: 'kvs', op: 'set', entry: { Key: 'k', Value: bytes('before') } }]);
    const expected = dumpState(fsm);
    const snapshot = fsm.snapshot();
    applyAll(fsm, [{ type: 'kvs', op: 'set', entry: { Key: 'k', Value: bytes('after') } }, { type: 'kvs', op: 'set', entry: { Key: 'k2', Value: bytes('x') } }]);
    const target = newFsm();
    await target.restore(snapshot.chunks(), snapshot.index);
    assert.deepEqual(dumpState(target), expected);
  });

  test('a snapshot of several chunks streams straight into a restore although chunks reuse one buffer', async () => {
    const source = newFsm();
    const value = new Uint8Array(600);
    applyAll(source, Array.from({ length: 6000 }, (_, i): Command => ({ type: 'kvs', op: 'set', entry: { Key: `big/${i}`, Value: value.fill(i % 251) } })));
    const chunks = Array.from(source.snapshot().chunks(), (chunk) => chunk.length);
    assert.ok(chunks.length >= 3, `expected several chunks, got ${chunks.length}`);
    const target = newFsm();
    await target.restore(source.snapshot().chunks(), source.appliedIndex);
    assert.deepEqual(dumpState(target), dumpState(source));
  });

  test('restore accepts the stream in chunks of any size', async () => {
    const source = newFsm();
    applyAll(source, randomCommands(42, 60));
    const whole = await snapshotBytes(source);
    for (const size of [1, 3, 7, 64, 1000]) {
      const pieces: Uint8Array[] = [];
      for (let i = 0; i < whole.length; i += size) pieces.push(whole.subarray(i, i + size));
      const target = newFsm();
      await target.restore(pieces, source.appliedIndex);
      assert.deepEqual(dumpState(target), dumpState(source), `chunk size ${size}`);
    }
  });

  test('every truncation is refused and leaves the old state in place', async () => {
    const source = newFsm();
    applyAll(source, randomCommands(9, 40));
    const whole = await snapshotBytes(source);
    const target = newFsm();
    applyAll(target, [{ type: 'kvs', op: 'set', entry: { Key: 'keep', Value: bytes('me') } }]);
    const before = dumpState(target);
    const cuts = new Set([0, 1, SNAPSHOT_MAGIC.length, SNAPSHOT_MAGIC.length + 3, Math.floor(whole.length / 2), whole.length - 33, whole.length - 1]);
    for (let cut = 0; cut < whole.length; cut += Math.max(1, Math.floor(whole.length / 60))) cuts.add(cut);
    for (const cut of cuts) {
      await assert.rejects(target.restore([whole.subarray(0, cut)], 99), (error: unknown) => error instanceof FsmError, `cut at ${cut}`);
      assert.deepEqual(dumpState(target), before, `cut at ${cut}`);
    }
  });

  test('one flipped bit anywhere is refused and leaves the old state in place', async () => {
    const source = newFsm();
    applyAll(source, randomCommands(10, 40));
    const whole = await snapshotBytes(source);
    const target = newFsm();
    const before = dumpState(target);
    const random = mulberry32(7);
    for (let i = 0; i < 50; i++) {
      const copy = Buffer.from(whole);
      const position = Math.floor(random() * copy.length);
      copy[position] = (copy[position] ?? 0) ^ (1 << Math.floor(random() * 8));
      await assert.rejects(target.restore([copy], 99), (error: unknown) => error instanceof FsmError, `SEED=7 flip at ${position}`);
      assert.deepEqual(dumpState(target), before);
    }
  });

  test('trailing data, a bad magic and an empty stream are refused', async () => {
    const source = newFsm();
    applyAll(source, randomCommands(11, 10));
    const whole = await snapshotBytes(source);
    const target = newFsm();
    await assert.rejects(target.restore([whole, Buffer.from([0])], 1), { code: 'ERR_SNAPSHOT_CORRUPT' });
    await assert.rejects(target.restore([Buffer.from('NOTASNAP'), whole.subarray(8)], 1), { code: 'ERR_SNAPSHOT_CORRUPT' });
    await assert.rejects(target.restore([], 1), { code: 'ERR_SNAPSHOT_TRUNCATED' });
  });

  test('a well-formed snapshot whose records break an invariant is refused, not a crash', async () => {
    const source = newFsm();
    applyAll(source, [
      { type: 'register', request: { Node: 'a', ID: '11111111-2222-4333-8444-555555555555', Address: '10.0.0.1' } },
      { type: 'register', request: { Node: 'b', ID: '11111111-2222-4333-8444-666666666666', Address: '10.0.0.2' } },
    ]);
    // Rewrite b's node ID to a's and re-checksum: valid framing, impossible state.
    const whole = await snapshotBytes(source);
    const tampered = Buffer.from(whole.toString('latin1').replace('666666666666', '555555555555'), 'latin1');
    const body = tampered.subarray(0, tampered.length - 32);
    const { createHash } = await import('node:crypto');
    const resealed = Buffer.concat([body, createHash('sha256').update(body).digest()]);
    const target = newFsm();
    await assert.rejects(target.restore([resealed], 2), { code: 'ERR_SNAPSHOT_CORRUPT' });
    assert.equal(target.state.read((txn) => nodes(txn)).value.length, 0);
  });

  test('a restore wakes blocking queries', async () => {
    const fsm = newFsm();
    applyAll(fsm, [{ type: 'kvs', op: 'set', entry: { Key: 'app/x', Value: bytes('1') } }]);
    const snapshot = await snapshotBytes(fsm);
    const ws = new WatchSet();
    fsm.state.read((txn) => kvsList(txn, 'app/'), ws);
    let woken = 0;
    fsm.state.db.watch(ws, () => woken++);
    await fsm.restore([snapshot], fsm.appliedIndex);
    assert.equal(woken, 1);
  });
});
