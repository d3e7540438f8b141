// Tests for the Raft log and stable stores (lib/logstore.ts) and the disk layer (lib/disk.ts):
// CRC32C known answers, one contract suite run against every LogStore implementation, recovery
// rules, seeded crash points on a simulated disk that forgets unsynced bytes and tears the last
// write (TESTING.md R3), seeded single-bit flips in segment files (R6), and the stable store.
// Randomized tests print SEED=<n>; replay one with LOGSTORE_SEED=<n>.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { NODE_DISK, SimulatedCrashError, SimulatedDisk, type Disk, type DiskFile } from '../lib/disk.js';
import { createLogger, MemorySink } from '../lib/log.js';
import {
  crc32c,
  FileLogStore,
  FileStableStore,
  LOG_APPEND_ENTRIES_MAX,
  LOG_ENTRY_DATA_BYTES_MAX,
  LOG_META_FILE,
  LOG_TYPE,
  LogStoreError,
  MemoryLogStore,
  MemoryStableStore,
  STABLE_KEY_BYTES_MAX,
  STABLE_VALUE_BYTES_MAX,
  type LogEntry,
  type LogStore,
  type LogType,
  type StableStore,
} from '../lib/logstore.js';
import { mulberry32 } from './support.js';

// ---------------------------------------------------------------------------------------------
// Helpers

const DIR = '/data/raft';
const REPLAY_SEED = process.env['LOGSTORE_SEED'] === undefined ? undefined : Number(process.env['LOGSTORE_SEED']);
const CRASH_SEEDS = 100;
const CRASH_CYCLES_PER_SEED = 3;
const BIT_FLIP_SEEDS = 50;

const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'logstore-test-'));
  tempDirs.push(dir);
  return dir;
}

function seeds(count: number): number[] {
  return REPLAY_SEED === undefined ? Array.from({ length: count }, (_, i) => i + 1) : [REPLAY_SEED];
}

function replayHint(seed: number): string {
  return `SEED=${seed} (replay: LOGSTORE_SEED=${seed} node --import tsx --test test/logstore.test.ts)`;
}

/** Runs `body`; a failure is rethrown with the seed in front. */
async function withSeed(seed: number, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${replayHint(seed)}: ${message}`, { cause: error });
  }
}

function entry(index: number, term = 1, data: string | Uint8Array = `entry-${index}`, type: LogType = LOG_TYPE.command): LogEntry {
  return { index, term, type, data: typeof data === 'string' ? new TextEncoder().encode(data) : data };
}

function entries(from: number, count: number, term = 1): LogEntry[] {
  return Array.from({ length: count }, (_, i) => entry(from + i, term));
}

function sameEntry(a: LogEntry | undefined, b: LogEntry | undefined): boolean {
  return (
    a !== undefined &&
    b !== undefined &&
    a.index === b.index &&
    a.term === b.term &&
    a.type === b.type &&
    Buffer.from(a.data).equals(Buffer.from(b.data))
  );
}

/** Every entry the store holds, checking that they are contiguous. */
function readAll(store: LogStore): LogEntry[] {
  const first = store.firstIndex();
  const last = store.lastIndex();
  if (first === 0 || last === 0) {
    assert.equal(first, 0, 'an empty log reports firstIndex 0');
    assert.equal(last, 0, 'an empty log reports lastIndex 0');
    return [];
  }
  assert.ok(first <= last, `firstIndex ${first} > lastIndex ${last}`);
  const out: LogEntry[] = [];
  for (let index = first; index <= last; index++) {
    const got = store.get(index);
    assert.ok(got !== undefined, `get(${index}) is missing inside [${first}, ${last}]`);
    assert.equal(got.index, index, `get(${index}) returned index ${got.index}`);
    out.push(got);
  }
  assert.equal(store.get(first - 1), undefined);
  assert.equal(store.get(last + 1), undefined);
  return out;
}

function assertSameLog(actual: readonly LogEntry[], expected: readonly LogEntry[], what = 'log'): void {
  const show = (log: readonly LogEntry[]): string => (log.length === 0 ? 'empty' : `[${log[0]!.index}..${log.at(-1)!.index}]`);
  assert.equal(actual.length, expected.length, `${what}: ${show(actual)} where ${show(expected)} was expected`);
  actual.forEach((got, i) => assert.ok(sameEntry(got, expected[i]), `${what}: entry ${got.index} differs`));
}

function segmentPaths(disk: SimulatedDisk, dir = DIR): string[] {
  return disk.paths().filter((path) => path.startsWith(`${dir}/log-`) && path.endsWith('.seg'));
}

/** Wraps a Disk to count file syncs, so group commit can be checked on the real disk too. */
function countingDisk(inner: Disk): { disk: Disk; syncs: () => number } {
  let syncs = 0;
  const wrapFile = (file: DiskFile): DiskFile => ({
    write: (data, position) => file.write(data, position),
    read: (position, length) => file.read(position, length),
    truncate: (size) => file.truncate(size),
    sync: async () => {
      await file.sync();
      syncs++;
    },
    size: () => file.size(),
    close: () => file.close(),
  });
  const disk: Disk = {
    open: async (path, mode) => wrapFile(await inner.open(path, mode)),
    readFile: (path) => inner.readFile(path),
    readdir: (dir) => inner.readdir(dir),
    stat: (path) => inner.stat(path),
    mkdir: (dir) => inner.mkdir(dir),
    rename: (from, to) => inner.rename(from, to),
    unlink: (path) => inner.unlink(path),
    syncDir: (dir) => inner.syncDir(dir),
  };
  return { disk, syncs: () => syncs };
}

function silentLogger(): { logger: ReturnType<typeof createLogger>; sink: MemorySink } {
  const sink = new MemorySink();
  return { logger: createLogger({ level: 'debug', json: false, nowMs: () => 0, sink }), sink };
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<LogStoreError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof LogStoreError, `expected LogStoreError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected a rejection with ${code}`);
}

// ---------------------------------------------------------------------------------------------
// CRC32C

describe('crc32c', () => {
  test('known answers (RFC 3720 B.4 and the check value)', () => {
    assert.equal(crc32c('123456789'), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(0)), 0);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  });

  test('continues over split input', () => {
    const bytes = new TextEncoder().encode('The quick brown fox jumps over the lazy dog');
    for (const cut of [0, 1, 7, 20, bytes.length]) {
      assert.equal(crc32c(bytes.subarray(cut), crc32c(bytes.subarray(0, cut))), crc32c(bytes));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Contract suite

interface Harness {
  readonly open: () => Promise<LogStore>;
  /** File stores only: close and open again on the same directory. */
  readonly isDurable: boolean;
  /** File syncs so far. */
  readonly syncs?: () => number;
  readonly segmentCount?: () => Promise<number>;
}

const SMALL_SEGMENT_BYTES = 512;

const IMPLEMENTATIONS: { name: string; isDurable: boolean; make: (segmentBytes?: number) => Harness }[] = [
  {
    name: 'MemoryLogStore',
    isDurable: false,
    make: () => {
      const store = new MemoryLogStore();
      return { open: async () => store, isDurable: false };
    },
  },
  {
    name: 'FileLogStore on SimulatedDisk',
    isDurable: true,
    make: (segmentBytes) => {
      const disk = new SimulatedDisk({ seed: 7 });
      return {
        open: () => FileLogStore.open(DIR, { disk, segmentBytes }),
        isDurable: true,
        syncs: () => disk.syncCount,
        segmentCount: async () => segmentPaths(disk).length,
      };
    },
  },
  {
    name: 'FileLogStore on NODE_DISK',
    isDurable: true,
    make: (segmentBytes) => {
      const dir = join(tempDir(), 'raft');
      const { disk, syncs } = countingDisk(NODE_DISK);
      return {
        open: () => FileLogStore.open(dir, { disk, segmentBytes }),
        isDurable: true,
        syncs,
        segmentCount: async () => (await NODE_DISK.readdir(dir)).filter((name) => name.endsWith('.seg')).length,
      };
    },
  },
];

for (const implementation of IMPLEMENTATIONS) {
  describe(`LogStore contract: ${implementation.name}`, () => {
    const reopen = async (harness: Harness, store: LogStore): Promise<LogStore> => {
      if (!harness.isDurable) return store;
      await store.close();
      return harness.open();
    };

    test('an empty log has no entries', async () => {
      const store = await implementation.make().open();
      assert.equal(store.firstIndex(), 0);
      assert.equal(store.lastIndex(), 0);
      assert.equal(store.get(0), undefined);
      assert.equal(store.get(1), undefined);
      await store.close();
    });

    test('append then get, firstIndex, lastIndex', async () => {
      const store = await implementation.make().open();
      await store.append(entries(1, 3));
      await store.append([entry(4, 2, new Uint8Array([0, 255, 7]), LOG_TYPE.configuration)]);
      await store.append([]);
      assert.equal(store.firstIndex(), 1);
      assert.equal(store.lastIndex(), 4);
      assertSameLog(readAll(store), [...entries(1, 3), entry(4, 2, new Uint8Array([0, 255, 7]), LOG_TYPE.configuration)]);
      assert.equal(store.get(0), undefined);
      assert.equal(store.get(5), undefined);
      await store.close();
    });

    test('an empty log accepts any first index', async () => {
      const store = await implementation.make().open();
      await store.append(entries(100, 2));
      assert.equal(store.firstIndex(), 100);
      assert.equal(store.lastIndex(), 101);
      await store.close();
    });

    test('appends must be contiguous with the log and within themselves', async () => {
      const store = await implementation.make().open();
      await store.append(entries(1, 2));
      await assert.rejects(store.append([entry(4)]), /not contiguous/);
      await assert.rejects(store.append([entry(2)]), /not contiguous/);
      await assert.rejects(store.append([entry(3), entry(5)]), /not contiguous/);
      await assert.rejects(store.append([entry(3), entry(3)]), /not contiguous/);
      await assert.rejects(store.append([{ ...entry(3), type: 99 as LogType }]), /unknown type/);
      await assert.rejects(store.append([{ ...entry(3), term: -1 }]), /term/);
      assertSameLog(readAll(store), entries(1, 2), 'after rejected appends');
      await store.append([entry(3)]);
      assert.equal(store.lastIndex(), 3);
      await store.close();
    });

    test('an empty log refuses index 0', async () => {
      const store = await implementation.make().open();
      await assert.rejects(store.append([entry(0)]), /positive integer/);
      await store.close();
    });

    test('limits: entries per append and bytes per entry', async () => {
      const store = await implementation.make().open();
      await rejectsWithCode(store.append(entries(1, LOG_APPEND_ENTRIES_MAX + 1)), 'ERR_TOO_LARGE');
      await rejectsWithCode(store.append([entry(1, 1, new Uint8Array(LOG_ENTRY_DATA_BYTES_MAX + 1))]), 'ERR_TOO_LARGE');
      assert.equal(store.lastIndex(), 0);
      await store.close();
    });

    test('truncateSuffix cuts the tail, and the log continues from the cut', async () => {
      const harness = implementation.make();
      let store = await harness.open();
      await store.append(entries(1, 10));
      await store.truncateSuffix(11); // beyond the end: nothing
      assert.equal(store.lastIndex(), 10);
      await store.truncateSuffix(7);
      assertSameLog(readAll(store), entries(1, 6));
      await store.append(entries(7, 2, 5));
      store = await reopen(harness, store);
      assertSameLog(readAll(store), [...entries(1, 6), ...entries(7, 2, 5)]);
      await store.close();
    });

    test('truncateSuffix at or below the first index empties the log', async () => {
      const harness = implementation.make();
      let store = await harness.open();
      await store.append(entries(5, 5));
      await store.truncateSuffix(5);
      assert.equal(store.firstIndex(), 0);
      assert.equal(store.lastIndex(), 0);
      store = await reopen(harness, store);
      assert.equal(store.lastIndex(), 0);
      await store.append(entries(3, 2));
      store = await reopen(harness, store);
      assertSameLog(readAll(store), entries(3, 2));
      await store.close();
    });

    test('compactPrefix hides the head; past the end it empties the log', async () => {
      const harness = implementation.make();
      let store = await harness.open();
      await store.append(entries(1, 10));
      await store.compactPrefix(0);
      assert.equal(store.firstIndex(), 1);
      await store.compactPrefix(4);
      assertSameLog(readAll(store), entries(5, 6));
      await store.compactPrefix(3); // below the first index: nothing
      assert.equal(store.firstIndex(), 5);
      store = await reopen(harness, store);
      assertSameLog(readAll(store), entries(5, 6), 'after reopen');
      await store.compactPrefix(20);
      assert.equal(store.firstIndex(), 0);
      assert.equal(store.lastIndex(), 0);
      store = await reopen(harness, store);
      assert.equal(store.lastIndex(), 0, 'empty after reopen');
      await store.append(entries(21, 3));
      store = await reopen(harness, store);
      assertSameLog(readAll(store), entries(21, 3));
      await store.close();
    });

    test('writes apply in call order without waiting for each other', async () => {
      const harness = implementation.make();
      let store = await harness.open();
      const pending = [store.append(entries(1, 5)), store.truncateSuffix(4), store.append(entries(4, 3, 2)), store.compactPrefix(2), store.append(entries(7, 1, 2))];
      await Promise.all(pending);
      const expected = [...entries(3, 1), ...entries(4, 4, 2)];
      assertSameLog(readAll(store), expected);
      store = await reopen(harness, store);
      assertSameLog(readAll(store), expected, 'after reopen');
      await store.close();
    });

    if (implementation.isDurable) test('reopen keeps everything', async () => {
      const harness = implementation.make();
      let store = await harness.open();
      const written: LogEntry[] = [];
      for (let i = 1; i <= 40; i++) written.push(entry(i, Math.ceil(i / 10), `value ${i} `.repeat(i % 7)));
      for (let i = 0; i < 40; i += 8) await store.append(written.slice(i, i + 8));
      store = await reopen(harness, store);
      assertSameLog(readAll(store), written);
      await store.append([entry(41, 5)]);
      store = await reopen(harness, store);
      assertSameLog(readAll(store), [...written, entry(41, 5)]);
      await store.close();
    });

    if (implementation.isDurable) test('group commit: concurrent appends share fsyncs', async () => {
      const harness = implementation.make();
      const store = await harness.open();
      await store.append([entry(1)]);
      const before = harness.syncs!();
      const count = 200;
      const pending: Promise<void>[] = [];
      // Half arrive in the same tick, half while the first batch is being written.
      for (let i = 0; i < count / 2; i++) pending.push(store.append([entry(2 + i)]));
      for (let hop = 0; hop < 3; hop++) await Promise.resolve();
      for (let i = count / 2; i < count; i++) pending.push(store.append([entry(2 + i)]));
      await Promise.all(pending);
      const syncs = harness.syncs!() - before;
      assert.ok(syncs < count / 10, `${count} appends took ${syncs} fsyncs`);
      assertSameLog(readAll(store), entries(1, count + 1));
      await store.close();
    });

    if (implementation.isDurable) test('segments roll over, and compaction deletes whole old segments', async () => {
      const harness = implementation.make(SMALL_SEGMENT_BYTES);
      let store = await harness.open();
      const written: LogEntry[] = [];
      for (let i = 1; i <= 60; i++) {
        written.push(entry(i, 1, 'x'.repeat(40)));
        await store.append([written.at(-1)!]);
      }
      const segmentsBefore = await harness.segmentCount!();
      assert.ok(segmentsBefore >= 5, `expected several segments, got ${segmentsBefore}`);
      store = await reopen(harness, store);
      assertSameLog(readAll(store), written, 'after reopen');
      await store.compactPrefix(45);
      const segmentsAfter = await harness.segmentCount!();
      assert.ok(segmentsAfter < segmentsBefore, `compaction left ${segmentsAfter} of ${segmentsBefore} segments`);
      store = await reopen(harness, store);
      assertSameLog(readAll(store), written.slice(45), 'after compaction and reopen');
      await store.truncateSuffix(50);
      await store.append([entry(50, 2)]);
      store = await reopen(harness, store);
      assertSameLog(readAll(store), [...written.slice(45, 49), entry(50, 2)], 'after truncation and reopen');
      await store.close();
    });

    test('a closed store refuses writes', async () => {
      const store = await implementation.make().open();
      await store.close();
      await rejectsWithCode(store.append([entry(1)]), 'ERR_STORE_CLOSED');
    });
  });
}

// ---------------------------------------------------------------------------------------------
// FileLogStore specifics

describe('FileLogStore', () => {
  test('an entry is not visible before its fsync returns', async () => {
    const disk = new SimulatedDisk({ seed: 3 });
    const store = await FileLogStore.open(DIR, { disk });
    const syncsBefore = disk.syncCount;
    let isResolved = false;
    const pending = store.append([entry(1)]).then(() => (isResolved = true));
    while (disk.syncCount === syncsBefore) {
      assert.equal(store.lastIndex(), 0, 'visible before any fsync');
      await Promise.resolve();
    }
    await pending;
    assert.ok(isResolved);
    assert.equal(store.lastIndex(), 1);
    await store.close();
  });

  test('an I/O error fails the append and the store; reopening recovers', async () => {
    const disk = new SimulatedDisk({ seed: 4 });
    const { logger, sink } = silentLogger();
    const store = await FileLogStore.open(DIR, { disk, logger });
    await store.append(entries(1, 3));
    disk.failAtOp(disk.opCount + 2); // the fsync of the next batch
    await rejectsWithCode(store.append(entries(4, 2)), 'ERR_STORE_FAILED');
    assertSameLog(readAll(store), entries(1, 3), 'in memory after the failure');
    await rejectsWithCode(store.append(entries(4, 2)), 'ERR_STORE_FAILED');
    assert.ok(sink.lines.some((line) => line.includes('log store failed')));
    await store.close();
    const reopened = await FileLogStore.open(DIR, { disk });
    const log = readAll(reopened);
    assert.ok(log.length === 3 || log.length === 5, `recovered ${log.length} entries`);
    assertSameLog(log, entries(1, log.length));
    await reopened.close();
  });

  test('a torn tail is cut at the last whole record, with a warning', async () => {
    const disk = new SimulatedDisk({ seed: 5 });
    let store = await FileLogStore.open(DIR, { disk });
    await store.append(entries(1, 5));
    await store.close();
    const [path] = segmentPaths(disk);
    disk.cut(path!, disk.peek(path!)!.length - 3);
    const { logger, sink } = silentLogger();
    store = await FileLogStore.open(DIR, { disk, logger });
    assertSameLog(readAll(store), entries(1, 4));
    assert.ok(sink.lines.some((line) => line.includes('cutting a torn tail') && line.includes(path!)), sink.lines.join('\n'));
    await store.append(entries(5, 1, 2));
    await store.close();
    store = await FileLogStore.open(DIR, { disk });
    assertSameLog(readAll(store), [...entries(1, 4), ...entries(5, 1, 2)]);
    await store.close();
  });

  test('a damaged record followed by good ones refuses to open, naming file and offset', async () => {
    const disk = new SimulatedDisk({ seed: 6 });
    const store = await FileLogStore.open(DIR, { disk });
    await store.append(entries(1, 5));
    await store.close();
    const [path] = segmentPaths(disk);
    disk.flipBit(path!, (24 + 8 + 20) * 8); // inside the first record's payload
    const error = await rejectsWithCode(FileLogStore.open(DIR, { disk }), 'ERR_LOG_CORRUPT');
    assert.equal(error.file, path);
    assert.equal(error.offset, 24);
    assert.match(error.message, /log-00000000000000000001\.seg at byte offset 24/);
  });

  test('a cut middle segment, a missing segment or a missing meta file refuses to open', async () => {
    const build = async (): Promise<SimulatedDisk> => {
      const disk = new SimulatedDisk({ seed: 8 });
      const store = await FileLogStore.open(DIR, { disk, segmentBytes: SMALL_SEGMENT_BYTES });
      for (let i = 1; i <= 30; i++) await store.append([entry(i, 1, 'y'.repeat(50))]);
      await store.close();
      return disk;
    };
    let disk = await build();
    const middle = segmentPaths(disk)[1]!;
    disk.cut(middle, disk.peek(middle)!.length - 10);
    let error = await rejectsWithCode(FileLogStore.open(DIR, { disk }), 'ERR_LOG_CORRUPT');
    assert.equal(error.file, middle);

    disk = await build();
    await disk.unlink(segmentPaths(disk)[1]!);
    error = await rejectsWithCode(FileLogStore.open(DIR, { disk }), 'ERR_LOG_CORRUPT');
    assert.match(error.message, /missing/);

    disk = await build();
    await disk.unlink(segmentPaths(disk)[0]!);
    error = await rejectsWithCode(FileLogStore.open(DIR, { disk }), 'ERR_LOG_CORRUPT');
    assert.match(error.message, /missing/);

    disk = await build();
    await disk.unlink(`${DIR}/${LOG_META_FILE}`);
    await rejectsWithCode(FileLogStore.open(DIR, { disk }), 'ERR_LOG_CORRUPT');
  });

  test('a last segment whose creation was interrupted is removed', async () => {
    const disk = new SimulatedDisk({ seed: 9 });
    let store = await FileLogStore.open(DIR, { disk, segmentBytes: SMALL_SEGMENT_BYTES });
    for (let i = 1; i <= 20; i++) await store.append([entry(i, 1, 'z'.repeat(50))]);
    await store.close();
    const paths = segmentPaths(disk);
    const last = paths.at(-1)!;
    const lastFirst = Number(/log-(\d+)/.exec(last)![1]);
    disk.cut(last, 10);
    store = await FileLogStore.open(DIR, { disk, segmentBytes: SMALL_SEGMENT_BYTES });
    assertSameLog(readAll(store), Array.from({ length: lastFirst - 1 }, (_, i) => entry(i + 1, 1, 'z'.repeat(50))));
    assert.deepEqual(segmentPaths(disk), paths.slice(0, -1));
    await store.close();
  });
});

// ---------------------------------------------------------------------------------------------
// R3: crash points

type ModelOp =
  | { readonly kind: 'append'; readonly entries: readonly LogEntry[] }
  | { readonly kind: 'truncate'; readonly fromIndex: number }
  | { readonly kind: 'compact'; readonly throughIndex: number };

/** The naive model: the log as an array. */
function applyModel(log: readonly LogEntry[], op: ModelOp): LogEntry[] {
  const first = log[0]?.index ?? 0;
  switch (op.kind) {
    case 'append':
      return [...log, ...op.entries];
    case 'truncate':
      return log.length === 0 || op.fromIndex <= first ? [] : log.slice(0, Math.max(0, op.fromIndex - first));
    case 'compact':
      return log.length === 0 || op.throughIndex < first ? [...log] : log.slice(op.throughIndex - first + 1);
  }
}

function sameLog(a: readonly LogEntry[], b: readonly LogEntry[]): boolean {
  return a.length === b.length && a.every((got, i) => sameEntry(got, b[i]));
}

function isPrefix(prefix: readonly LogEntry[], log: readonly LogEntry[]): boolean {
  return prefix.length <= log.length && prefix.every((got, i) => sameEntry(got, log[i]));
}

/**
 * What may be on disk after a crash: the state after every resolved operation and possibly
 * some later ones, plus a partial effect of the next one (a prefix of an append's entries, a
 * truncation that removed only some of the tail, a compaction done or not).
 */
function isAcceptableAfterCrash(actual: readonly LogEntry[], base: readonly LogEntry[], ops: readonly ModelOp[], resolved: number): boolean {
  let state = base;
  for (let j = 0; j <= ops.length; j++) {
    const op = ops[j];
    const next = op === undefined ? state : applyModel(state, op);
    if (j >= resolved) {
      if (sameLog(actual, state)) return true;
      if (op?.kind === 'append' && isPrefix(state, actual) && isPrefix(actual, next)) return true;
      if (op?.kind === 'truncate' && isPrefix(actual, state) && actual.length >= next.length) return true;
      if (op?.kind === 'compact' && sameLog(actual, next)) return true;
    }
    state = next;
  }
  return false;
}

function randomBytes(random: () => number, length: number): Uint8Array {
  return Uint8Array.from({ length }, () => Math.floor(random() * 256));
}

interface CrashCycle {
  readonly ops: ModelOp[];
  readonly resolved: number;
}

/** Issues random writes (not waiting for most) until the disk crashes. */
async function crashWorkload(store: LogStore, disk: SimulatedDisk, random: () => number, base: readonly LogEntry[], nextHint: number): Promise<CrashCycle> {
  const ops: ModelOp[] = [];
  const status: ('pending' | 'ok' | 'failed')[] = [];
  const pending: Promise<void>[] = [];
  let accepted = [...base];
  let term = base.at(-1)?.term ?? 1;
  let emptyNext = nextHint;
  const issue = (op: ModelOp, promise: Promise<void>): void => {
    const i = ops.length;
    ops.push(op);
    status.push('pending');
    accepted = applyModel(accepted, op);
    pending.push(promise.then(() => void (status[i] = 'ok'), () => void (status[i] = 'failed')));
  };
  for (let step = 0; step < 600 && !disk.isCrashed; step++) {
    const roll = random();
    const first = accepted[0]?.index ?? 0;
    const last = accepted.at(-1)?.index ?? 0;
    if (roll < 0.5) {
      if (random() < 0.1) term++;
      const start = last === 0 ? emptyNext : last + 1;
      const batch = Array.from({ length: 1 + Math.floor(random() * 4) }, (_, i) =>
        entry(start + i, term, randomBytes(random, random() < 0.15 ? 200 + Math.floor(random() * 400) : Math.floor(random() * 40))),
      );
      issue({ kind: 'append', entries: batch }, store.append(batch));
    } else if (roll < 0.56 && last > 0) {
      const fromIndex = first + Math.floor(random() * (last - first + 2)) - (random() < 0.1 ? 1 : 0);
      if (fromIndex <= first) emptyNext = fromIndex;
      issue({ kind: 'truncate', fromIndex }, store.truncateSuffix(Math.max(0, fromIndex)));
    } else if (roll < 0.62 && last > 0) {
      const throughIndex = first - 1 + Math.floor(random() * (last - first + 4));
      if (throughIndex >= last) emptyNext = throughIndex + 1;
      issue({ kind: 'compact', throughIndex }, store.compactPrefix(throughIndex));
    } else if (roll < 0.93) {
      const hops = 1 + Math.floor(random() * 8);
      for (let hop = 0; hop < hops; hop++) await Promise.resolve();
    } else {
      await Promise.all(pending);
    }
  }
  if (!disk.isCrashed) disk.crash({ tear: true });
  await Promise.all(pending);
  const resolved = status.indexOf('pending') === -1 ? status.filter((s) => s === 'ok').length : -1;
  assert.notEqual(resolved, -1, 'every write settles after a crash');
  assert.ok(status.slice(0, resolved).every((s) => s === 'ok'), `writes resolved out of order: ${status.join(',')}`);
  return { ops, resolved };
}

describe('R3: crash points on a simulated disk', () => {
  test(`${CRASH_SEEDS} seeds x ${CRASH_CYCLES_PER_SEED} crashes: acknowledged writes survive, nothing else appears, the log stays contiguous`, async (t) => {
    let crashPoints = 0;
    let crashesDuringOpen = 0;
    let tornTails = 0;
    let unacknowledgedKept = 0;
    let writesIssued = 0;
    for (const seed of seeds(CRASH_SEEDS)) {
      await withSeed(seed, async () => {
        const random = mulberry32(seed);
        const disk = new SimulatedDisk({ seed });
        const { logger, sink } = silentLogger();
        // Mostly segments that take many batches (so crashes tear writes into existing files),
        // sometimes tiny ones (so crashes land in segment creation, rollover and deletion).
        const segmentBytes = random() < 0.3 ? SMALL_SEGMENT_BYTES : 16 * 1024;
        let log: LogEntry[] = [];
        let nextHint = 1 + Math.floor(random() * 5);
        let cycle: CrashCycle = { ops: [], resolved: 0 };
        for (let round = 0; round <= CRASH_CYCLES_PER_SEED; round++) {
          // Sometimes crash again during recovery itself.
          let store: LogStore | undefined;
          while (store === undefined) {
            if (round > 0 && random() < 0.3) disk.crashAtOp(disk.opCount + 1 + Math.floor(random() * 12), { tear: true });
            try {
              store = await FileLogStore.open(DIR, { disk, segmentBytes, logger });
            } catch (error) {
              if (!(error instanceof SimulatedCrashError)) throw error;
              crashesDuringOpen++;
              crashPoints++;
              disk.reboot();
            }
            disk.crashAtOp(Number.MAX_SAFE_INTEGER);
          }
          const recovered = readAll(store);
          assert.ok(
            isAcceptableAfterCrash(recovered, log, cycle.ops, cycle.resolved),
            `round ${round}: recovered [${recovered[0]?.index ?? '-'}..${recovered.at(-1)?.index ?? '-'}] is not the log after ${cycle.resolved} resolved of ${cycle.ops.length} writes`,
          );
          const acknowledged = cycle.ops.slice(0, cycle.resolved).reduce(applyModel, log);
          if (!sameLog(recovered, acknowledged)) unacknowledgedKept++;
          log = recovered;
          nextHint = (log.at(-1)?.index ?? Math.max(nextHint, ...cycle.ops.map(maxIndexOf))) + 1;
          if (round === CRASH_CYCLES_PER_SEED) {
            await store.append([entry(log.at(-1) === undefined ? nextHint : log.at(-1)!.index + 1, 99)]);
            await store.close();
            break;
          }
          disk.crashAtOp(disk.opCount + 1 + Math.floor(random() * 150), { tear: true, atSync: random() < 0.5 });
          cycle = await crashWorkload(store, disk, random, log, nextHint);
          writesIssued += cycle.ops.length;
          crashPoints++;
          disk.reboot();
        }
        tornTails += sink.lines.filter((line) => line.includes('cutting a torn tail')).length;
      });
    }
    t.diagnostic(`crash points ${crashPoints} (${crashesDuringOpen} during recovery), writes issued ${writesIssued}, torn tails cut ${tornTails}, recoveries holding unacknowledged writes ${unacknowledgedKept}`);
    if (REPLAY_SEED === undefined) {
      assert.ok(crashPoints >= 100, `only ${crashPoints} crash points`);
      assert.ok(crashesDuringOpen > 0, 'no crash landed inside recovery');
    }
  });
});

function maxIndexOf(op: ModelOp): number {
  switch (op.kind) {
    case 'append':
      return op.entries.at(-1)?.index ?? 0;
    case 'truncate':
      return op.fromIndex - 1;
    case 'compact':
      return op.throughIndex;
  }
}

// ---------------------------------------------------------------------------------------------
// R6: bit flips

/** The index of the record holding byte `offset` of a segment, or undefined for the header. */
function recordIndexAt(bytes: Uint8Array, first: number, offset: number): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 24;
  for (let index = first; at < bytes.length; index++) {
    const end = at + 8 + view.getUint32(at);
    if (offset >= at && offset < end) return index;
    at = end;
  }
  return undefined;
}

describe('R6: single bit flips in segment files', () => {
  test(`${BIT_FLIP_SEEDS} seeds: a prefix with every record before the flip, or a refusal naming file and offset`, async (t) => {
    const outcomes = { refused: 0, truncated: 0 };
    for (const seed of seeds(BIT_FLIP_SEEDS)) {
      await withSeed(seed, async () => {
        const random = mulberry32(seed * 7919);
        const disk = new SimulatedDisk({ seed });
        let store = await FileLogStore.open(DIR, { disk, segmentBytes: SMALL_SEGMENT_BYTES });
        const written: LogEntry[] = [];
        for (let index = 1; index <= 60; ) {
          const batch = Array.from({ length: 1 + Math.floor(random() * 4) }, (_, i) => entry(index + i, 1 + Math.floor(index / 20), randomBytes(random, Math.floor(random() * 120))));
          await store.append(batch);
          written.push(...batch);
          index += batch.length;
        }
        const compactThrough = Math.floor(random() * 20);
        await store.compactPrefix(compactThrough);
        await store.close();
        const original = written.slice(compactThrough);
        const paths = segmentPaths(disk);
        // A third of the flips go to the last record, the only place a flip is cut, not refused.
        const targetsTail = random() < 1 / 3;
        const path = targetsTail ? paths.at(-1)! : paths[Math.floor(random() * paths.length)]!;
        const bytes = disk.peek(path)!;
        const first = Number(/log-(\d+)/.exec(path)![1]);
        const lastStart = bytes.length - (8 + 18 + original.at(-1)!.data.length);
        const byte = targetsTail ? lastStart + Math.floor(random() * (bytes.length - lastStart)) : Math.floor(random() * bytes.length);
        const flippedIndex = recordIndexAt(bytes, first, byte) ?? first;
        disk.flipBit(path, byte * 8 + Math.floor(random() * 8));
        try {
          store = await FileLogStore.open(DIR, { disk, segmentBytes: SMALL_SEGMENT_BYTES });
        } catch (error) {
          assert.ok(error instanceof LogStoreError && error.code === 'ERR_LOG_CORRUPT', `open failed with ${String(error)}`);
          assert.equal(error.file, path, error.message);
          assert.ok(error.offset !== undefined && error.offset <= byte, `reported offset ${error.offset} is past the flipped byte ${byte}`);
          assert.ok(error.message.includes(path) && error.message.includes(`offset ${error.offset}`), error.message);
          outcomes.refused++;
          return;
        }
        const recovered = readAll(store);
        assert.ok(isPrefix(recovered, original), 'recovered log is not a prefix of what was written (corrupt data served)');
        const mustHave = Math.min(original.at(-1)!.index, flippedIndex - 1);
        assert.ok((recovered.at(-1)?.index ?? 0) >= mustHave, `recovered up to ${recovered.at(-1)?.index}, lost records before the flip at ${flippedIndex}`);
        outcomes.truncated++;
        await store.close();
      });
    }
    t.diagnostic(`bit flips: ${JSON.stringify(outcomes)}`);
    if (REPLAY_SEED === undefined) {
      assert.ok(outcomes.refused > 0 && outcomes.truncated > 0, `outcomes ${JSON.stringify(outcomes)}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Stable stores

const STABLE_PATH = '/data/raft/stable.bin';

const STABLE_IMPLEMENTATIONS: { name: string; open: () => Promise<StableStore> }[] = [
  { name: 'MemoryStableStore', open: async () => new MemoryStableStore() },
  { name: 'FileStableStore on SimulatedDisk', open: () => FileStableStore.open(STABLE_PATH, { disk: new SimulatedDisk({ seed: 1 }) }) },
  { name: 'FileStableStore on NODE_DISK', open: () => FileStableStore.open(join(tempDir(), 'stable.bin'), { disk: NODE_DISK }) },
];

for (const implementation of STABLE_IMPLEMENTATIONS) {
  describe(`StableStore contract: ${implementation.name}`, () => {
    test('set, get, uint64 values, absent keys', async () => {
      const store = await implementation.open();
      assert.equal(store.get('CurrentTerm'), undefined);
      assert.equal(store.getUint64('CurrentTerm'), 0);
      await store.setUint64('CurrentTerm', 2 ** 40 + 5);
      await store.set('LastVoteCand', new TextEncoder().encode('server-1'));
      await Promise.all([store.setUint64('LastVoteTerm', 3), store.setUint64('LastVoteTerm', 4)]);
      assert.equal(store.getUint64('CurrentTerm'), 2 ** 40 + 5);
      assert.equal(store.getUint64('LastVoteTerm'), 4);
      assert.equal(Buffer.from(store.get('LastVoteCand')!).toString(), 'server-1');
      await store.close();
    });

    test('limits on key and value sizes', async () => {
      const store = await implementation.open();
      await rejectsWithCode(store.set('k'.repeat(STABLE_KEY_BYTES_MAX + 1), new Uint8Array(1)), 'ERR_TOO_LARGE');
      await rejectsWithCode(store.set('', new Uint8Array(1)), 'ERR_TOO_LARGE');
      await rejectsWithCode(store.set('big', new Uint8Array(STABLE_VALUE_BYTES_MAX + 1)), 'ERR_TOO_LARGE');
      await store.close();
    });
  });
}

describe('FileStableStore', () => {
  test('values persist across reopen (simulated and real disk)', async () => {
    const sim = new SimulatedDisk({ seed: 2 });
    for (const [disk, path] of [
      [sim, STABLE_PATH],
      [NODE_DISK, join(tempDir(), 'nested', 'stable.bin')],
    ] as const) {
      let store = await FileStableStore.open(path, { disk });
      await store.setUint64('CurrentTerm', 7);
      await store.set('LastVoteCand', new Uint8Array([1, 2, 3]));
      await store.close();
      store = await FileStableStore.open(path, { disk });
      assert.equal(store.getUint64('CurrentTerm'), 7);
      assert.deepEqual([...store.get('LastVoteCand')!], [1, 2, 3]);
      await store.close();
    }
    sim.crash();
    sim.reboot();
    const store = await FileStableStore.open(STABLE_PATH, { disk: sim });
    assert.equal(store.getUint64('CurrentTerm'), 7, 'survives a crash once set() resolved');
  });

  test('a crash at every step of a write keeps the old value or, once resolved, the new one', async () => {
    const { logger } = silentLogger();
    for (let step = 1; step <= 8; step++) {
      const disk = new SimulatedDisk({ seed: step });
      let store = await FileStableStore.open(STABLE_PATH, { disk });
      await store.setUint64('CurrentTerm', 1);
      disk.crashAtOp(disk.opCount + step, { tear: true });
      const isResolved = await store.setUint64('CurrentTerm', 2).then(
        () => true,
        () => false,
      );
      if (!disk.isCrashed) disk.crash();
      disk.reboot();
      store = await FileStableStore.open(STABLE_PATH, { disk, logger });
      const term = store.getUint64('CurrentTerm');
      assert.ok(term === 2 || (term === 1 && !isResolved), `step ${step}: term ${term}, set resolved: ${isResolved}`);
      assert.equal(disk.peek(`${STABLE_PATH}.tmp`), undefined, 'the temp file is cleaned up');
    }
  });

  test('an interrupted write (temp file written, not renamed) keeps the previous file', async () => {
    const disk = new SimulatedDisk({ seed: 3 });
    let store = await FileStableStore.open(STABLE_PATH, { disk });
    await store.setUint64('CurrentTerm', 5);
    await store.close();
    // A torn temp file, as a crash between its write and the rename leaves it.
    const temp = await disk.open(`${STABLE_PATH}.tmp`, 'create');
    await temp.write(new Uint8Array([0x43, 0x54, 0x53]), 0);
    await temp.sync();
    await disk.syncDir('/data/raft');
    const { logger, sink } = silentLogger();
    store = await FileStableStore.open(STABLE_PATH, { disk, logger });
    assert.equal(store.getUint64('CurrentTerm'), 5);
    assert.ok(sink.lines.some((line) => line.includes('interrupted write')));
    assert.equal(disk.peek(`${STABLE_PATH}.tmp`), undefined);
  });

  test('a corrupt or cut file refuses to open, naming file and offset', async () => {
    for (const damage of ['flip', 'cut'] as const) {
      const disk = new SimulatedDisk({ seed: 4 });
      const store = await FileStableStore.open(STABLE_PATH, { disk });
      await store.setUint64('CurrentTerm', 5);
      await store.set('LastVoteCand', new TextEncoder().encode('server-2'));
      await store.close();
      if (damage === 'flip') disk.flipBit(STABLE_PATH, 8 * 30 + 3);
      else disk.cut(STABLE_PATH, 25);
      const error = await rejectsWithCode(FileStableStore.open(STABLE_PATH, { disk }), 'ERR_STABLE_CORRUPT');
      assert.equal(error.file, STABLE_PATH);
      assert.match(error.message, /stable\.bin is corrupt at byte offset \d+/);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// SimulatedDisk

describe('SimulatedDisk', () => {
  test('a crash forgets unsynced bytes and unsynced names', async () => {
    const disk = new SimulatedDisk({ seed: 1 });
    await disk.mkdir('/d');
    const synced = await disk.open('/d/a', 'create');
    await synced.write(new Uint8Array([1, 2, 3]), 0);
    await synced.sync();
    await disk.syncDir('/d');
    await synced.write(new Uint8Array([4, 5]), 3);
    const unnamed = await disk.open('/d/b', 'create');
    await unnamed.write(new Uint8Array([9]), 0);
    await unnamed.sync();
    disk.crash({ tear: false });
    await assert.rejects(disk.stat('/d/a'), SimulatedCrashError);
    disk.reboot();
    assert.deepEqual([...disk.peek('/d/a')!], [1, 2, 3]);
    assert.equal(disk.peek('/d/b'), undefined, 'a file whose directory was never synced is gone');
    await assert.rejects(synced.write(new Uint8Array([1]), 0), SimulatedCrashError);
  });

  test('a torn write keeps a prefix of the last unsynced write', async () => {
    const lengths = new Set<number>();
    for (let seed = 1; seed <= 30; seed++) {
      const disk = new SimulatedDisk({ seed });
      await disk.mkdir('/d');
      const file = await disk.open('/d/a', 'create');
      await file.write(new Uint8Array([1, 1]), 0);
      await file.sync();
      await disk.syncDir('/d');
      await file.write(new Uint8Array([2, 3, 4, 5, 6, 7]), 2);
      disk.crash({ tear: true });
      disk.reboot();
      const after = disk.peek('/d/a')!;
      assert.deepEqual([...after], [1, 1, 2, 3, 4, 5, 6, 7].slice(0, after.length));
      lengths.add(after.length);
    }
    assert.ok(lengths.size > 3, `tears at ${[...lengths].join(',')}`);
  });

  test('renames and unlinks are durable only after a directory sync', async () => {
    const disk = new SimulatedDisk({ seed: 2 });
    await disk.mkdir('/d');
    for (const name of ['x', 'y']) {
      const file = await disk.open(`/d/${name}`, 'create');
      await file.write(new TextEncoder().encode(name), 0);
      await file.sync();
    }
    await disk.syncDir('/d');
    await disk.rename('/d/y', '/d/x');
    disk.crash();
    disk.reboot();
    assert.deepEqual(disk.paths(), ['/d/x', '/d/y']);
    assert.equal(Buffer.from(disk.peek('/d/x')!).toString(), 'x');
    await disk.unlink('/d/x');
    await disk.syncDir('/d');
    disk.crash();
    disk.reboot();
    assert.deepEqual(disk.paths(), ['/d/y']);
  });
});
