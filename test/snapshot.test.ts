// Snapshot stores: one contract suite run against the memory and file stores, then what only
// the file store can get wrong (crashes before the rename, damaged files, the on-disk layout),
// and the round trip of a real FSM snapshot through both.
//
// The bit-flip tests (TESTING R6) replay from their seed:
//   SNAPSHOT_SEED=<n> node --import tsx --test test/snapshot.test.ts
// and SNAPSHOT_FLIPS=<n> changes the number of flips per file (T1 uses 500).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeCommand, Fsm, type Command } from '../lib/fsm.js';
import { createLogger, MemorySink, type Logger } from '../lib/log.js';
import {
  FileSnapshotStore,
  MemorySnapshotStore,
  SnapshotError,
  type RaftServer,
  type SnapshotErrorCode,
  type SnapshotMeta,
  type SnapshotStore,
  type SnapshotStoreOptions,
} from '../lib/snapshot.js';
import { StateStore } from '../lib/state.js';
import { mulberry32 } from './support.js';
import { dumpState } from './state-support.js';

const SEED = Number(process.env['SNAPSHOT_SEED'] ?? 20260301);
const FLIPS = Number(process.env['SNAPSHOT_FLIPS'] ?? 50);
const REPLAY = `SNAPSHOT_SEED=${SEED} node --import tsx --test test/snapshot.test.ts`;

const CONFIGURATION: readonly RaftServer[] = [
  { suffrage: 0, id: 'server-1', address: '10.0.0.1:8300' },
  { suffrage: 1, id: 'server-2', address: '10.0.0.2:8300' },
];
const START_MS = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// Helpers

const tempRoots: string[] = [];
after(async () => {
  for (const dir of tempRoots) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'consul-ts-snapshot-'));
  tempRoots.push(dir);
  return dir;
}

/** A clock the test moves by hand. */
function manualClock(): { nowMs: () => number; advance(ms?: number): void } {
  let now = START_MS;
  return { nowMs: () => now, advance: (ms = 1) => void (now += ms) };
}

function testLogger(): { logger: Logger; lines: string[] } {
  const sink = new MemorySink();
  return { logger: createLogger({ level: 'debug', json: false, sink, nowMs: () => 0 }), lines: sink.lines };
}

function metaFor(term: number, index: number, version = 1): Omit<SnapshotMeta, 'id' | 'size'> {
  return { term, index, configuration: CONFIGURATION, configurationIndex: 1, version };
}

/** Deterministic bytes that differ with `salt`. */
function pattern(length: number, salt: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + salt * 7 + (i >> 8)) & 0xff;
  return bytes;
}

async function writeSnapshot(store: SnapshotStore, term: number, index: number, chunks: readonly Uint8Array[]): Promise<SnapshotMeta> {
  const sink = await store.create(metaFor(term, index));
  for (const chunk of chunks) await sink.write(chunk);
  return sink.close();
}

async function readAll(data: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of data) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

async function readSnapshot(store: SnapshotStore, id: string): Promise<Buffer> {
  return readAll((await store.open(id)).data);
}

/** Asserts that `promise` rejects with SnapshotError `code` and a message matching `message`. */
async function rejectsWith(promise: Promise<unknown>, code: SnapshotErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof SnapshotError, `expected SnapshotError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

const ids = (metas: readonly SnapshotMeta[]): string[] => metas.map((meta) => meta.id);

// ---------------------------------------------------------------------------------------------
// An FSM with real state

function newFsm(): Fsm {
  return new Fsm(new StateStore({ nowMs: () => 1_000_000 }));
}

/** An FSM holding nodes, services, sessions, locks and `keys` KV entries of about 1 KiB. */
function buildFsm(keys: number): Fsm {
  const fsm = newFsm();
  const session = '00000001-0000-4000-8000-000000000000';
  const commands: Command[] = [
    { type: 'register', request: { Node: 'n1', Address: '10.0.0.1', Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' } } },
    { type: 'register', request: { Node: 'n2', Address: '10.0.0.2', Service: { ID: 'web-1', Service: 'web', Tags: ['v1'], Port: 80 } } },
    { type: 'session-create', session: { ID: session, Name: 's', Node: 'n1', NodeChecks: ['serfHealth'], ServiceChecks: [], LockDelay: 15e9, Behavior: 'release', TTL: '' } },
    { type: 'kvs', op: 'lock', entry: { Key: 'locks/leader', Value: Buffer.from('n1'), Session: session } },
  ];
  for (let i = 0; i < keys; i++) commands.push({ type: 'kvs', op: 'set', entry: { Key: `app/${i % 10}/${i}`, Value: pattern(1000 + (i % 50), i), Flags: BigInt(i) } });
  commands.push({ type: 'kvs', op: 'delete', entry: { Key: 'app/0/0' } });
  for (const command of commands) {
    const result = fsm.apply(fsm.appliedIndex + 1, encodeCommand(command));
    assert.ok(result.ok, `setup command ${command.type} failed`);
  }
  return fsm;
}


/** Streams a live FSM snapshot into the store (its chunks reuse one buffer). */
async function saveFsm(store: SnapshotStore, fsm: Fsm, term: number): Promise<SnapshotMeta> {
  const snapshot = fsm.snapshot();
  const sink = await store.create(metaFor(term, snapshot.index));
  for (const chunk of snapshot.chunks()) await sink.write(chunk);
  return sink.close();
}

// ---------------------------------------------------------------------------------------------
// The contract, against both stores

interface Harness {
  readonly name: string;
  make(options?: SnapshotStoreOptions): Promise<SnapshotStore>;
}

const HARNESSES: readonly Harness[] = [
  { name: 'MemorySnapshotStore', make: async (options) => new MemorySnapshotStore(options) },
  { name: 'FileSnapshotStore', make: async (options) => FileSnapshotStore.open(await tempDir(), options) },
];

/** Directory entries of a file store (nothing to check for the memory store). */
async function entries(store: SnapshotStore): Promise<string[] | undefined> {
  return store instanceof FileSnapshotStore ? (await readdir(store.path)).sort() : undefined;
}

for (const harness of HARNESSES) {
  describe(`SnapshotStore contract: ${harness.name}`, () => {
    test('create, write, close, list and open round-trip the bytes and the meta', async () => {
      const clock = manualClock();
      const store = await harness.make({ nowMs: clock.nowMs });
      const chunks = [pattern(10, 1), pattern(300_000, 2), pattern(1, 3), new Uint8Array(0), pattern(1_500_000, 4), pattern(7, 5)];
      const meta = await writeSnapshot(store, 3, 42, chunks);
      assert.deepEqual(meta, { id: `3-42-${START_MS}`, index: 42, term: 3, configuration: CONFIGURATION, configurationIndex: 1, size: 1_800_018, version: 1 });
      assert.deepEqual(await store.list(), [meta]);
      const opened = await store.open(meta.id);
      assert.deepEqual(opened.meta, meta);
      assert.ok((await readAll(opened.data)).equals(Buffer.concat(chunks)));
      assert.deepEqual(await entries(store), store instanceof FileSnapshotStore ? [meta.id] : undefined);
    });

    test('an empty snapshot round-trips', async () => {
      const store = await harness.make();
      const meta = await writeSnapshot(store, 1, 1, []);
      assert.equal(meta.size, 0);
      assert.equal((await readSnapshot(store, meta.id)).length, 0);
    });

    test('write copies or writes each chunk before resolving: callers may reuse their buffer', async () => {
      const store = await harness.make();
      const sink = await store.create(metaFor(1, 5));
      const buffer = Buffer.alloc(100_000);
      const expected: Buffer[] = [];
      for (let round = 0; round < 8; round++) {
        buffer.fill(round + 1);
        const chunk = buffer.subarray(0, 1000 + round * 10_000);
        expected.push(Buffer.from(chunk));
        await sink.write(chunk);
      }
      buffer.fill(0xee);
      const meta = await sink.close();
      assert.ok((await readSnapshot(store, meta.id)).equals(Buffer.concat(expected)));
    });

    test('nothing is visible before close', async () => {
      const store = await harness.make();
      const sink = await store.create(metaFor(1, 5));
      await sink.write(pattern(100, 1));
      assert.deepEqual(await store.list(), []);
      await rejectsWith(store.open(sink.id), 'ERR_SNAPSHOT_NOT_FOUND');
      const meta = await sink.close();
      assert.deepEqual(ids(await store.list()), [meta.id]);
      assert.equal(await sink.close(), meta, 'a second close returns the first result');
      await sink.cancel();
      assert.deepEqual(ids(await store.list()), [meta.id], 'cancel after close changes nothing');
    });

    test('cancel leaves nothing behind', async () => {
      const store = await harness.make();
      const sink = await store.create(metaFor(1, 5));
      await sink.write(pattern(400_000, 1));
      await sink.cancel();
      await sink.cancel();
      assert.deepEqual(await store.list(), []);
      await rejectsWith(store.open(sink.id), 'ERR_SNAPSHOT_NOT_FOUND');
      await rejectsWith(sink.close(), 'ERR_SNAPSHOT_SINK_FAILED', /cancelled/);
      assert.deepEqual(await entries(store), store instanceof FileSnapshotStore ? [] : undefined);
    });

    test('retain (default 2) keeps the newest two and reaps the rest on close', async () => {
      const clock = manualClock();
      const store = await harness.make({ nowMs: clock.nowMs });
      const written: SnapshotMeta[] = [];
      for (const [term, index] of [[1, 10], [1, 20], [2, 25], [2, 30]] as const) {
        written.push(await writeSnapshot(store, term, index, [pattern(50, index)]));
        clock.advance();
      }
      const [first, second, third, fourth] = written as [SnapshotMeta, SnapshotMeta, SnapshotMeta, SnapshotMeta];
      assert.deepEqual(ids(await store.list()), [fourth.id, third.id]);
      await rejectsWith(store.open(first.id), 'ERR_SNAPSHOT_NOT_FOUND');
      await rejectsWith(store.open(second.id), 'ERR_SNAPSHOT_NOT_FOUND');
      assert.ok((await readSnapshot(store, third.id)).equals(pattern(50, 25)));
      assert.deepEqual(await entries(store), store instanceof FileSnapshotStore ? [third.id, fourth.id].sort() : undefined);
    });

    test('list is newest first: by term, then index, then creation time', async () => {
      const clock = manualClock();
      const store = await harness.make({ nowMs: clock.nowMs, retain: 10 });
      const made: Record<string, SnapshotMeta> = {};
      for (const [name, term, index] of [['a', 1, 50], ['b', 2, 10], ['c', 2, 10], ['d', 1, 60], ['e', 2, 9]] as const) {
        made[name] = await writeSnapshot(store, term, index, [pattern(5, index)]);
        clock.advance(1000);
      }
      const expected = ['c', 'b', 'e', 'd', 'a'].map((name) => made[name]?.id);
      assert.deepEqual(ids(await store.list()), expected);
    });

    test('IDs are <term>-<index>-<unix ms>; a taken ID moves to the next millisecond', async () => {
      const clock = manualClock();
      const store = await harness.make({ nowMs: clock.nowMs, retain: 10 });
      const one = await store.create(metaFor(7, 99));
      const two = await store.create(metaFor(7, 99));
      assert.equal(one.id, `7-99-${START_MS}`);
      assert.equal(two.id, `7-99-${START_MS + 1}`);
      await one.write(pattern(10, 1));
      await two.write(pattern(10, 2));
      await two.close();
      await one.close();
      const three = await store.create(metaFor(7, 99));
      assert.equal(three.id, `7-99-${START_MS + 2}`, 'published IDs are taken too');
      await three.cancel();
      assert.deepEqual(ids(await store.list()), [two.id, one.id]);
      assert.ok((await readSnapshot(store, one.id)).equals(pattern(10, 1)));
    });

    test('open of an unknown or malformed ID fails with ERR_SNAPSHOT_NOT_FOUND', async () => {
      const store = await harness.make();
      await writeSnapshot(store, 1, 1, [pattern(3, 1)]);
      for (const id of ['1-2-3', 'nope', '../snapshots', '', '1-1-1.tmp']) await rejectsWith(store.open(id), 'ERR_SNAPSHOT_NOT_FOUND');
    });

    test('create refuses snapshot versions outside hashicorp/raft 0..1', async () => {
      const store = await harness.make();
      await rejectsWith(store.create(metaFor(1, 1, 2)), 'ERR_SNAPSHOT_VERSION_UNSUPPORTED');
      const meta = await (await store.create(metaFor(1, 1, 0))).close();
      assert.equal(meta.version, 0);
      assert.deepEqual(await store.list(), [meta]);
    });

    test('an FSM snapshot written through a sink restores into a fresh FSM', async () => {
      const fsm = buildFsm(2500);
      const store = await harness.make();
      const meta = await saveFsm(store, fsm, 4);
      assert.equal(meta.index, fsm.appliedIndex);
      assert.ok(meta.size > 2 * 1024 * 1024, 'the snapshot spans several reused chunks');
      const fresh = newFsm();
      const opened = await store.open(meta.id);
      await fresh.restore(opened.data, opened.meta.index);
      assert.equal(fresh.appliedIndex, fsm.appliedIndex);
      assert.deepEqual(dumpState(fresh), dumpState(fsm));
    });
  });
}

test('retain must be between 1 and SNAPSHOT_RETAIN_MAX', async () => {
  assert.throws(() => new MemorySnapshotStore({ retain: 0 }), /retain/);
  await assert.rejects(FileSnapshotStore.open(await tempDir(), { retain: 0 }), /retain/);
});

// ---------------------------------------------------------------------------------------------
// The file store

/** A file store holding an older and a newer valid snapshot. */
async function twoSnapshots(retain = 2): Promise<{ dir: string; store: FileSnapshotStore; lines: string[]; older: SnapshotMeta; newer: SnapshotMeta }> {
  const dir = await tempDir();
  const clock = manualClock();
  const { logger, lines } = testLogger();
  const store = await FileSnapshotStore.open(dir, { nowMs: clock.nowMs, logger, retain });
  const older = await writeSnapshot(store, 1, 10, [pattern(5000, 10)]);
  clock.advance();
  const newer = await writeSnapshot(store, 1, 20, [pattern(5000, 20)]);
  return { dir, store, lines, older, newer };
}

/** The older snapshot is still listed and reads back intact. */
async function assertOlderIntact(store: FileSnapshotStore, older: SnapshotMeta): Promise<void> {
  assert.ok(ids(await store.list()).includes(older.id));
  assert.ok((await readSnapshot(store, older.id)).equals(pattern(5000, 10)));
}

describe('FileSnapshotStore on disk', () => {
  test('layout: <dir>/snapshots/<id>/{meta.json,state.bin}, meta.json with hashicorp field names', async () => {
    const { dir, store, newer } = await twoSnapshots();
    assert.deepEqual(await readdir(dir), ['snapshots']);
    assert.equal(store.path, join(dir, 'snapshots'));
    assert.deepEqual((await readdir(join(store.path, newer.id))).sort(), ['meta.json', 'state.bin']);
    const state = await readFile(join(store.path, newer.id, 'state.bin'));
    assert.ok(state.equals(pattern(5000, 20)));
    const meta = JSON.parse(await readFile(join(store.path, newer.id, 'meta.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(meta), ['Format', 'Version', 'ID', 'Index', 'Term', 'Configuration', 'ConfigurationIndex', 'Size', 'SHA256', 'MetaSHA256']);
    assert.deepEqual(
      { ...meta, MetaSHA256: undefined },
      {
        Format: 1, Version: 1, ID: newer.id, Index: 20, Term: 1,
        Configuration: { Servers: [{ Suffrage: 0, ID: 'server-1', Address: '10.0.0.1:8300' }, { Suffrage: 1, ID: 'server-2', Address: '10.0.0.2:8300' }] },
        ConfigurationIndex: 1, Size: 5000, SHA256: createHash('sha256').update(state).digest('hex'), MetaSHA256: undefined,
      },
    );
  });

  test('a reopened store lists and opens the same snapshots', async () => {
    const { dir, store, older, newer } = await twoSnapshots();
    const reopened = await FileSnapshotStore.open(dir);
    assert.deepEqual(await reopened.list(), await store.list());
    assert.deepEqual(ids(await reopened.list()), [newer.id, older.id]);
    assert.ok((await readSnapshot(reopened, newer.id)).equals(pattern(5000, 20)));
  });

  test('a crash before the rename leaves no snapshot, the old ones intact, and the leftovers are removed on open', async () => {
    const { dir, store, lines, older, newer } = await twoSnapshots();
    // Crash while writing: a sink that is never closed.
    const abandoned = await store.create(metaFor(2, 30));
    await abandoned.write(pattern(100_000, 30));
    // Crash after meta.json was written, before the rename: a complete directory still named .tmp.
    const crashedId = `2-40-${START_MS + 99}`;
    await cp(join(store.path, newer.id), join(store.path, `${crashedId}.tmp`), { recursive: true });

    assert.deepEqual(ids(await store.list()), [newer.id, older.id]);
    assert.ok(lines.some((line) => line.includes('found temporary snapshot') && line.includes(crashedId)), 'a foreign .tmp directory is reported');
    assert.ok(!lines.some((line) => line.includes('found temporary snapshot') && line.includes(abandoned.id)), 'our own sink in progress is not');

    // The restarted process.
    const restarted = testLogger();
    const reopened = await FileSnapshotStore.open(dir, { logger: restarted.logger });
    assert.deepEqual((await readdir(reopened.path)).sort(), [newer.id, older.id].sort());
    assert.equal(restarted.lines.filter((line) => line.includes('removing unfinished snapshot')).length, 2);
    assert.deepEqual(ids(await reopened.list()), [newer.id, older.id]);
    assert.ok((await readSnapshot(reopened, newer.id)).equals(pattern(5000, 20)));
    await assertOlderIntact(reopened, older);
    await abandoned.cancel();
  });

  test('a close that fails (its .tmp directory vanished) publishes nothing', async () => {
    const { store, older, newer } = await twoSnapshots();
    const sink = await store.create(metaFor(3, 50));
    await sink.write(pattern(1000, 50));
    await rm(join(store.path, `${sink.id}.tmp`), { recursive: true });
    await assert.rejects(sink.close(), /ENOENT/);
    assert.deepEqual(ids(await store.list()), [newer.id, older.id]);
    assert.deepEqual((await readdir(store.path)).sort(), [newer.id, older.id].sort());
  });

  test('a truncated state.bin is skipped by list and fails on open; the older snapshot still opens', async () => {
    const { store, lines, older, newer } = await twoSnapshots();
    await truncate(join(store.path, newer.id, 'state.bin'), 4000);
    assert.deepEqual(ids(await store.list()), [older.id]);
    assert.ok(lines.some((line) => line.includes('skipping unreadable snapshot') && line.includes(newer.id)));
    await rejectsWith(store.open(newer.id), 'ERR_SNAPSHOT_SIZE_MISMATCH', /state\.bin has 4000 bytes, meta\.json records 5000/);
    await assertOlderIntact(store, older);
  });

  test('a state.bin with bytes appended is skipped by list and fails on open', async () => {
    const { store, older, newer } = await twoSnapshots();
    await writeFile(join(store.path, newer.id, 'state.bin'), Buffer.concat([pattern(5000, 20), Buffer.from([0])]));
    assert.deepEqual(ids(await store.list()), [older.id]);
    await rejectsWith(store.open(newer.id), 'ERR_SNAPSHOT_SIZE_MISMATCH');
    await assertOlderIntact(store, older);
  });

  test('a missing state.bin is skipped by list and fails on open', async () => {
    const { store, older, newer } = await twoSnapshots();
    await rm(join(store.path, newer.id, 'state.bin'));
    assert.deepEqual(ids(await store.list()), [older.id]);
    await rejectsWith(store.open(newer.id), 'ERR_SNAPSHOT_SIZE_MISMATCH', /missing/);
  });

  test('a flipped byte in state.bin fails the read with ERR_SNAPSHOT_CHECKSUM_MISMATCH; the older snapshot still opens', async () => {
    const { store, older, newer } = await twoSnapshots();
    const path = join(store.path, newer.id, 'state.bin');
    const bytes = await readFile(path);
    bytes[1234] = (bytes[1234] ?? 0) ^ 0x10;
    await writeFile(path, bytes);
    // Same size, so only reading the data can tell; list() does not read every snapshot whole.
    assert.deepEqual(ids(await store.list()), [newer.id, older.id]);
    const opened = await store.open(newer.id);
    await rejectsWith(readAll(opened.data), 'ERR_SNAPSHOT_CHECKSUM_MISMATCH', /damaged snapshot/);
    await assertOlderIntact(store, older);
  });

  for (const [what, damage] of [
    ['not JSON', async (path: string) => writeFile(path, '{"Version": 1, "ID": ')],
    ['missing', async (path: string) => rm(path)],
    ['empty', async (path: string) => writeFile(path, '')],
    ['an edited Index (valid JSON)', async (path: string) => writeFile(path, (await readFile(path, 'utf8')).replace('"Index": 20', '"Index": 21'))],
    ['an unknown field', async (path: string) => writeFile(path, (await readFile(path, 'utf8')).replace('"Format": 1', '"Format": 1, "Extra": 0'))],
  ] as const) {
    test(`a meta.json that is ${what} is skipped by list and fails on open; the older snapshot still opens`, async () => {
      const { store, lines, older, newer } = await twoSnapshots();
      await damage(join(store.path, newer.id, 'meta.json'));
      assert.deepEqual(ids(await store.list()), [older.id]);
      assert.ok(lines.some((line) => line.includes('skipping unreadable snapshot') && line.includes(newer.id)));
      await rejectsWith(store.open(newer.id), 'ERR_SNAPSHOT_META_INVALID', new RegExp(`snapshot ${newer.id}: meta\\.json`));
      await assertOlderIntact(store, older);
    });
  }

  test('a directory that is not a snapshot is skipped with a warning', async () => {
    const { store, lines, older, newer } = await twoSnapshots();
    await mkdir(join(store.path, 'lost+found'));
    await writeFile(join(store.path, 'notes.txt'), 'x');
    assert.deepEqual(ids(await store.list()), [newer.id, older.id]);
    assert.ok(lines.some((line) => line.includes('not a snapshot') && line.includes('lost+found')));
  });
});

// ---------------------------------------------------------------------------------------------
// R6: every flipped bit is detected

/** Flips one bit of `path` per round and runs `check`; restores the file after each round. */
async function flipRounds(path: string, random: () => number, check: (round: number, offset: number) => Promise<void>): Promise<void> {
  const original = await readFile(path);
  for (let round = 0; round < FLIPS; round++) {
    const offset = Math.floor(random() * original.length);
    const bit = Math.floor(random() * 8);
    const damaged = Buffer.from(original);
    damaged[offset] = (damaged[offset] ?? 0) ^ (1 << bit);
    await writeFile(path, damaged);
    try {
      await check(round, offset);
    } catch (error) {
      throw new Error(`SEED=${SEED} round=${round} offset=${offset} bit=${bit} (replay: ${REPLAY}): ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  }
  await writeFile(path, original);
}

describe(`R6 bit flips, SEED=${SEED}`, () => {
  test(`${FLIPS} single-bit flips in state.bin of an FSM snapshot are all detected; the FSM keeps its state`, async () => {
    const random = mulberry32(SEED);
    const { store, older } = await twoSnapshots(3);
    const meta = await saveFsm(store, buildFsm(200), 2);
    const target = newFsm();
    const before = dumpState(target);
    await flipRounds(join(store.path, meta.id, 'state.bin'), random, async () => {
      await rejectsWith(readSnapshot(store, meta.id), 'ERR_SNAPSHOT_CHECKSUM_MISMATCH');
      await assert.rejects(target.restore((await store.open(meta.id)).data, meta.index));
      assert.deepEqual(dumpState(target), before);
      assert.equal(target.appliedIndex, 0);
    });
    await assertOlderIntact(store, older);
    await target.restore((await store.open(meta.id)).data, meta.index);
    assert.equal(target.appliedIndex, meta.index, 'the restored file is whole again');
  });

  test(`${FLIPS} single-bit flips in meta.json are all detected: skipped by list, refused by open`, async () => {
    const random = mulberry32(SEED + 1);
    const { store, older, newer } = await twoSnapshots();
    await flipRounds(join(store.path, newer.id, 'meta.json'), random, async () => {
      assert.deepEqual(ids(await store.list()), [older.id]);
      await assert.rejects(store.open(newer.id), SnapshotError);
    });
    assert.deepEqual(ids(await store.list()), [newer.id, older.id]);
  });
});
