// The Raft log and stable store: segmented, checksummed files with group commit (FileLogStore,
// FileStableStore), and in-memory twins for -dev and tests (MemoryLogStore, MemoryStableStore).
//
// What it guarantees: append, truncateSuffix, compactPrefix and set resolve only after their
// effect is fsynced; reads are synchronous from memory and show only what is durable. After a
// crash, recovery returns exactly the entries that were made durable (plus, possibly, whole
// records of the write that was in flight, which were never acknowledged). A record that fails
// its CRC is accepted as a torn write only at the very end of the last segment; anywhere else
// open() refuses with an error naming the file and byte offset, so data is never dropped or
// served corrupt silently (TESTING.md R3, R6).
//
// Log on disk, in one directory:
// - `log-<first index, 20 digits>.seg`: a 24-byte header [magic "CTSRAFTL"][format version u8]
//   [3 zero bytes][first index u64][crc32c of the preceding 20 bytes], then records
//   [payload length u32][crc32c u32][payload]. The CRC covers the length field and the payload,
//   so a flipped length is caught too. Payload: [record version u8][type u8][term u64][index u64]
//   [data]. Integers big-endian. Indexes are contiguous within and across segments.
// - `log.meta`: a FileStableStore holding LogFirstIndex, the first index of the log. Entries
//   below it in a kept segment are hidden; it is written before segments are deleted by a
//   compaction, and before the first segment of an empty log is created, so recovery always
//   knows where the log starts and can tell a missing segment from a compacted one.
//
// Group commit: appends queue up; one writer takes every queued append, writes them with one
// pwrite and shares one fsync, then resolves them all. Appends that arrive during that fsync
// form the next batch. So at most one unsynced write exists per file at any time, which is what
// makes "only the tail can be torn" true. A new segment is started, before a batch, once the
// current one holds segmentBytes; its header and first batch go in one write, and the file and
// then the directory are fsynced before it counts.
//
// Failure: an I/O error (including a failed fsync, whose page-cache state is unknowable) fails
// the store: the operation and every later one reject with ERR_STORE_FAILED and the in-memory
// log stays as it was. Reopening recovers from disk; the records of a rejected append may or may
// not be there, which Raft tolerates like any unacknowledged entry.
//
// Not here: the Raft rules themselves (lib/raft.ts), snapshots (lib/snapshot.ts), locking the
// directory against a second process, preallocating segments.
//
// References: hashicorp/raft LogStore and StableStore; hashicorp/raft-wal (segments, group
// commit); etcd wal (CRC, torn-tail repair); Raft paper section 5.3 (log matching), 7 (log
// compaction).

import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import type { Disk, DiskFile } from './disk.js';
import { nullLogger, type Logger } from './log.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** hashicorp/raft LogType values. Wire and disk enum: append only. */
export const LOG_TYPE = {
  command: 0,
  noop: 1,
  addPeerDeprecated: 2,
  removePeerDeprecated: 3,
  barrier: 4,
  configuration: 5,
} as const;

export type LogType = (typeof LOG_TYPE)[keyof typeof LOG_TYPE];

/** One Raft log entry (hashicorp/raft Log, without the optional AppendedAt). */
export interface LogEntry {
  readonly index: number;
  readonly term: number;
  readonly type: LogType;
  readonly data: Uint8Array;
}

/**
 * The Raft log. Reads are synchronous (the retained window is kept in memory); writes resolve
 * only once durable. Invariant: indexes are contiguous from firstIndex() to lastIndex().
 *
 * Writes take effect in call order. Reads show an entry no later than when its append resolves
 * (the file store shows only durable entries; the memory store shows them at once). The store
 * keeps the entry objects it is given and get() returns them: callers must not mutate them.
 * Contract violations (a gap, an index below 1, an unknown type) are bugs and reject with an
 * AssertionError; operational failures reject with LogStoreError.
 */
export interface LogStore {
  /** The first index held, or 0 when the log is empty. */
  firstIndex(): number;
  /** The last index held, or 0 when the log is empty. */
  lastIndex(): number;
  /** The entry at `index`, or undefined outside [firstIndex, lastIndex]. */
  get(index: number): LogEntry | undefined;
  /**
   * Appends entries that continue the log (entries[0].index === lastIndex() + 1, or any index
   * when the log is empty, where "the log" includes writes issued but not yet resolved).
   * Resolves once they are fsynced; appends issued while an fsync is running share the next one
   * (group commit). Rejects without changing the log on I/O error.
   */
  append(entries: readonly LogEntry[]): Promise<void>;
  /** Removes every entry with index >= fromIndex (a conflicting suffix). Durable on resolve. */
  truncateSuffix(fromIndex: number): Promise<void>;
  /**
   * Removes every entry with index <= throughIndex (after a snapshot). Durable on resolve. With
   * throughIndex >= lastIndex() the log becomes empty and the next append may use any index.
   */
  compactPrefix(throughIndex: number): Promise<void>;
  /** Waits for pending writes and releases files. */
  close(): Promise<void>;
}

/**
 * Small durable values Raft must not lose (hashicorp/raft StableStore): CurrentTerm,
 * LastVoteTerm, LastVoteCand. Reads are synchronous; writes resolve once durable.
 */
export interface StableStore {
  /** The value last set (and made durable), or undefined. Callers must not mutate it. */
  get(key: string): Uint8Array | undefined;
  /** 0 when absent. */
  getUint64(key: string): number;
  set(key: string, value: Uint8Array): Promise<void>;
  setUint64(key: string, value: number): Promise<void>;
  close(): Promise<void>;
}

/** Operational error codes of the log and stable stores. */
export type LogStoreErrorCode =
  /** A log file is damaged somewhere other than a torn tail: open() refuses. */
  | 'ERR_LOG_CORRUPT'
  /** The stable store file is damaged: open() refuses. */
  | 'ERR_STABLE_CORRUPT'
  /** An I/O error failed the store; every later call rejects until it is reopened. */
  | 'ERR_STORE_FAILED'
  | 'ERR_STORE_CLOSED'
  /** An entry, append, key or value over its limit. */
  | 'ERR_TOO_LARGE'
  /** Too many writes waiting for the disk. */
  | 'ERR_QUEUE_FULL'
  /** The log holds LOG_RETAINED_ENTRIES_MAX entries: Raft is not compacting it. */
  | 'ERR_LOG_FULL';

/** An operational failure of a store. `file` and `offset` locate corruption. */
export class LogStoreError extends Error {
  override readonly name = 'LogStoreError';
  constructor(
    readonly code: LogStoreErrorCode,
    message: string,
    readonly file?: string,
    readonly offset?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Options of FileLogStore.open. */
export interface FileLogStoreOptions {
  readonly disk: Disk;
  readonly logger?: Logger;
  /** A segment takes no new batch once it holds this many bytes. Default LOG_SEGMENT_BYTES_DEFAULT. */
  readonly segmentBytes?: number;
}

/** Options of FileStableStore.open. */
export interface FileStableStoreOptions {
  readonly disk: Disk;
  readonly logger?: Logger;
}

// ---------------------------------------------------------------------------------------------
// Limits and formats

/** Segment size at which a new segment is started (hashicorp/raft-wal uses 64 MiB too). */
export const LOG_SEGMENT_BYTES_DEFAULT = 64 * 1024 * 1024;
/** Bounds for the segmentBytes option. */
export const LOG_SEGMENT_BYTES_MIN = 256;
export const LOG_SEGMENT_BYTES_MAX = 1024 * 1024 * 1024;
/** Data bytes of one entry. Consul caps KV values and txns at 512 KiB; this leaves headroom. */
export const LOG_ENTRY_DATA_BYTES_MAX = 8 * 1024 * 1024;
/** Entries in one append call. */
export const LOG_APPEND_ENTRIES_MAX = 4096;
/** Encoded bytes of one append call. */
export const LOG_APPEND_BYTES_MAX = 64 * 1024 * 1024;
/** Bytes one group-commit write gathers (always at least one whole append). */
export const LOG_BATCH_BYTES_MAX = 64 * 1024 * 1024;
/** Writes waiting for the disk. */
export const LOG_QUEUE_OPS_MAX = 16_384;
/** Entries held (in memory) at once. Raft snapshots keep the log near 26k; this is a backstop. */
export const LOG_RETAINED_ENTRIES_MAX = 1_000_000;
/** Segment files in a log directory at open. */
export const LOG_SEGMENT_FILES_MAX = 65_536;
/** Stable store: key bytes (UTF-8), value bytes, number of keys. */
export const STABLE_KEY_BYTES_MAX = 256;
export const STABLE_VALUE_BYTES_MAX = 64 * 1024;
export const STABLE_KEYS_MAX = 256;

/** Disk format versions. A new layout gets a new number; old ones stay readable. */
export const LOG_SEGMENT_FORMAT_VERSION = 1;
export const LOG_RECORD_FORMAT_VERSION = 1;
export const STABLE_FORMAT_VERSION = 1;

/** File names inside a log directory. */
export const LOG_META_FILE = 'log.meta';
/** The LogFirstIndex key in log.meta. */
export const LOG_META_FIRST_INDEX = 'LogFirstIndex';

const SEGMENT_MAGIC = new TextEncoder().encode('CTSRAFTL');
const SEGMENT_HEADER_BYTES = 24;
const SEGMENT_NAME = /^log-(\d{20})\.seg$/;
/** [payload length u32][crc32c u32] */
const FRAME_HEADER_BYTES = 8;
/** [record version u8][type u8][term u64][index u64] */
const PAYLOAD_FIXED_BYTES = 18;
const RECORD_PAYLOAD_BYTES_MAX = PAYLOAD_FIXED_BYTES + LOG_ENTRY_DATA_BYTES_MAX;
/** The largest segment file open() reads: one we could have written. */
const SEGMENT_FILE_BYTES_MAX = SEGMENT_HEADER_BYTES + LOG_SEGMENT_BYTES_MAX + LOG_BATCH_BYTES_MAX;

const STABLE_MAGIC = new TextEncoder().encode('CTSS');
/** [magic 4][version u8][3 zero bytes][payload length u32][crc32c u32 of bytes 0-11 and payload] */
const STABLE_HEADER_BYTES = 16;
const STABLE_FILE_BYTES_MAX = STABLE_HEADER_BYTES + 4 + STABLE_KEYS_MAX * (2 + STABLE_KEY_BYTES_MAX + 4 + STABLE_VALUE_BYTES_MAX);
const STABLE_TEMP_SUFFIX = '.tmp';

const KNOWN_LOG_TYPES: ReadonlySet<number> = new Set(Object.values(LOG_TYPE));
const TWO_TO_32 = 2 ** 32;

// ---------------------------------------------------------------------------------------------
// CRC32C

const CRC32C_TABLE = makeCrc32cTable(0x82f63b78);

/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven, as iSCSI, ext4 and etcd's
 * WAL use it. Pass a previous result as `crc` to continue over more bytes:
 * crc32c(b, crc32c(a)) === crc32c(a + b). crc32c("123456789") === 0xE3069283.
 */
export function crc32c(data: Uint8Array | string, crc = 0): number {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  return crc32cRange(bytes, 0, bytes.length, crc);
}

function crc32cRange(bytes: Uint8Array, start: number, end: number, crc: number): number {
  let c = ~crc;
  for (let i = start; i < end; i++) c = CRC32C_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function makeCrc32cTable(polynomial: number): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let bit = 0; bit < 8; bit++) c = c & 1 ? polynomial ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

// ---------------------------------------------------------------------------------------------
// MemoryLogStore

/** The log in memory, for -dev and tests: the LogStore contract without I/O. */
export class MemoryLogStore implements LogStore {
  /** Invariant: entries[i].index === first + i. */
  private first = 0;
  private entries: LogEntry[] = [];
  private isClosed = false;

  firstIndex(): number {
    return this.entries.length === 0 ? 0 : this.first;
  }

  lastIndex(): number {
    return this.entries.length === 0 ? 0 : this.first + this.entries.length - 1;
  }

  get(index: number): LogEntry | undefined {
    return this.entries.length === 0 ? undefined : this.entries[index - this.first];
  }

  async append(entries: readonly LogEntry[]): Promise<void> {
    this.checkOpen();
    checkAppend(entries, this.lastIndex(), this.entries.length);
    const head = entries[0];
    if (head === undefined) return;
    if (this.entries.length === 0) this.first = head.index;
    for (const entry of entries) this.entries.push(entry);
  }

  async truncateSuffix(fromIndex: number): Promise<void> {
    this.checkOpen();
    checkIndexArgument(fromIndex, 'truncateSuffix');
    if (this.entries.length === 0 || fromIndex > this.lastIndex()) return;
    this.entries.length = Math.max(0, fromIndex - this.first);
  }

  async compactPrefix(throughIndex: number): Promise<void> {
    this.checkOpen();
    checkIndexArgument(throughIndex, 'compactPrefix');
    if (this.entries.length === 0 || throughIndex < this.first) return;
    this.entries.splice(0, throughIndex - this.first + 1);
    this.first = throughIndex + 1;
  }

  async close(): Promise<void> {
    this.isClosed = true;
  }

  private checkOpen(): void {
    if (this.isClosed) throw new LogStoreError('ERR_STORE_CLOSED', 'log store is closed');
  }
}

// ---------------------------------------------------------------------------------------------
// FileLogStore

/** A segment file. Invariant: holds records first .. first + offsets.length - 1, contiguous. */
interface Segment {
  readonly first: number;
  readonly path: string;
  /** Byte offset of each record: offsets[i] is index first + i (hidden ones included). */
  readonly offsets: number[];
  /** Bytes of header and whole records; where the next batch goes. */
  size: number;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

type QueuedOp =
  | (Waiter & { readonly kind: 'append'; readonly entries: readonly LogEntry[]; readonly records: Uint8Array; readonly offsets: readonly number[] })
  | (Waiter & { readonly kind: 'truncate'; readonly fromIndex: number })
  | (Waiter & { readonly kind: 'compact'; readonly throughIndex: number });

/** What recovery found: the durable log, ready to serve. */
interface RecoveredLog {
  readonly segments: Segment[];
  readonly entries: LogEntry[];
}

/**
 * The Raft log in segment files with group commit (format and guarantees in the header comment).
 * The retained window lives in memory for synchronous reads; open() reads and verifies every
 * segment that holds part of it.
 */
export class FileLogStore implements LogStore {
  // Durable state. Invariant: view[i].index === viewFirst + i; segments are empty exactly when
  // view is; the last segment is the one appends go to.
  private viewFirst = 0;
  private view: LogEntry[];
  private readonly segments: Segment[];
  private active: DiskFile | undefined;
  /** LogFirstIndex as persisted in log.meta (0 before the first append of a new log). */
  private startIndex: number;

  // Accepted state: the log once every queued operation is done; appends are checked against it.
  private acceptedFirst: number;
  private acceptedLast: number;

  private readonly queue: QueuedOp[] = [];
  /** The writer loop, while it runs. */
  private drain: Promise<void> | undefined;
  private failure: LogStoreError | undefined;
  private isClosed = false;

  private constructor(
    private readonly dir: string,
    private readonly disk: Disk,
    private readonly logger: Logger,
    private readonly segmentBytes: number,
    private readonly meta: FileStableStore,
    recovered: RecoveredLog,
  ) {
    this.segments = recovered.segments;
    this.view = recovered.entries;
    this.viewFirst = recovered.entries[0]?.index ?? 0;
    this.startIndex = meta.getUint64(LOG_META_FIRST_INDEX);
    this.acceptedFirst = this.firstIndex();
    this.acceptedLast = this.lastIndex();
  }

  /**
   * Opens (creating if needed) the log in `dir` and recovers it: a torn tail of the last segment
   * is cut with a warning; any other damage rejects with ERR_LOG_CORRUPT naming file and offset.
   */
  static async open(dir: string, options: FileLogStoreOptions): Promise<FileLogStore> {
    const { disk } = options;
    const logger = options.logger ?? nullLogger();
    const segmentBytes = options.segmentBytes ?? LOG_SEGMENT_BYTES_DEFAULT;
    assert(
      Number.isSafeInteger(segmentBytes) && segmentBytes >= LOG_SEGMENT_BYTES_MIN && segmentBytes <= LOG_SEGMENT_BYTES_MAX,
      `segmentBytes must be within [${LOG_SEGMENT_BYTES_MIN}, ${LOG_SEGMENT_BYTES_MAX}]`,
    );
    await disk.mkdir(dir);
    const meta = await FileStableStore.open(join(dir, LOG_META_FILE), { disk, logger });
    const recovered = await recoverLog(dir, disk, logger, meta.getUint64(LOG_META_FIRST_INDEX));
    const store = new FileLogStore(dir, disk, logger, segmentBytes, meta, recovered);
    logger.debug('log store opened', { dir, first: store.firstIndex(), last: store.lastIndex(), segments: recovered.segments.length });
    return store;
  }

  firstIndex(): number {
    return this.view.length === 0 ? 0 : this.viewFirst;
  }

  lastIndex(): number {
    return this.view.length === 0 ? 0 : this.viewFirst + this.view.length - 1;
  }

  get(index: number): LogEntry | undefined {
    return this.view.length === 0 ? undefined : this.view[index - this.viewFirst];
  }

  async append(entries: readonly LogEntry[]): Promise<void> {
    this.checkUsable();
    const retained = this.acceptedLast === 0 ? 0 : this.acceptedLast - this.acceptedFirst + 1;
    checkAppend(entries, this.acceptedLast, retained);
    const head = entries[0];
    if (head === undefined) return;
    const { records, offsets } = encodeRecords(entries);
    if (this.acceptedLast === 0) this.acceptedFirst = head.index;
    this.acceptedLast = head.index + entries.length - 1;
    return this.enqueue((waiter) => ({ ...waiter, kind: 'append', entries, records, offsets }));
  }

  async truncateSuffix(fromIndex: number): Promise<void> {
    this.checkUsable();
    checkIndexArgument(fromIndex, 'truncateSuffix');
    if (this.acceptedLast !== 0 && fromIndex <= this.acceptedLast) {
      if (fromIndex <= this.acceptedFirst) this.acceptedFirst = this.acceptedLast = 0;
      else this.acceptedLast = fromIndex - 1;
    }
    return this.enqueue((waiter) => ({ ...waiter, kind: 'truncate', fromIndex }));
  }

  async compactPrefix(throughIndex: number): Promise<void> {
    this.checkUsable();
    checkIndexArgument(throughIndex, 'compactPrefix');
    if (this.acceptedLast !== 0 && throughIndex >= this.acceptedFirst) {
      if (throughIndex >= this.acceptedLast) this.acceptedFirst = this.acceptedLast = 0;
      else this.acceptedFirst = throughIndex + 1;
    }
    return this.enqueue((waiter) => ({ ...waiter, kind: 'compact', throughIndex }));
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    await this.drain;
    const active = this.active;
    this.active = undefined;
    await active?.close();
    await this.meta.close();
  }

  // --- the writer ------------------------------------------------------------------------

  private checkUsable(): void {
    if (this.isClosed) throw new LogStoreError('ERR_STORE_CLOSED', 'log store is closed');
    if (this.failure !== undefined) throw this.failure;
    if (this.queue.length >= LOG_QUEUE_OPS_MAX) {
      throw new LogStoreError('ERR_QUEUE_FULL', `log store has ${LOG_QUEUE_OPS_MAX} writes waiting for the disk`);
    }
  }

  private enqueue(make: (waiter: Waiter) => QueuedOp): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push(make({ resolve, reject }));
      this.drain ??= this.runWriter();
    });
  }

  /** Runs queued operations in order until the queue is empty; appends in a row share a write. */
  private async runWriter(): Promise<void> {
    // Appends issued in the same tick as the first one join its batch.
    await Promise.resolve();
    for (;;) {
      const head = this.queue[0];
      if (head === undefined) {
        this.drain = undefined;
        return;
      }
      const taken = head.kind === 'append' ? this.takeBatch() : [this.queue.shift()!];
      try {
        if (this.failure !== undefined) throw this.failure;
        switch (head.kind) {
          case 'append':
            await this.writeBatch(taken as Extract<QueuedOp, { kind: 'append' }>[]);
            break;
          case 'truncate':
            await this.applyTruncate(head.fromIndex);
            break;
          case 'compact':
            await this.applyCompact(head.throughIndex);
            break;
          default:
            assertNever(head);
        }
        this.checkInvariants();
        for (const op of taken) op.resolve();
      } catch (error) {
        this.fail(error);
        for (const op of taken) op.reject(this.failure);
      }
    }
  }

  private takeBatch(): Extract<QueuedOp, { kind: 'append' }>[] {
    const batch: Extract<QueuedOp, { kind: 'append' }>[] = [];
    let bytes = 0;
    for (let op = this.queue[0]; op !== undefined && op.kind === 'append'; op = this.queue[0]) {
      if (batch.length > 0 && bytes + op.records.length > LOG_BATCH_BYTES_MAX) break;
      bytes += op.records.length;
      batch.push(op);
      this.queue.shift();
    }
    return batch;
  }

  private fail(error: unknown): void {
    if (this.failure !== undefined) return;
    const reason = error instanceof Error ? error.message : String(error);
    this.failure = new LogStoreError('ERR_STORE_FAILED', `log store failed, reopen it to recover: ${reason}`, undefined, undefined, {
      cause: error,
    });
    this.logger.error('log store failed', { dir: this.dir, error: reason });
  }

  /** One write and one fsync for a run of appends; a new segment first if the current one is full. */
  private async writeBatch(batch: readonly Extract<QueuedOp, { kind: 'append' }>[]): Promise<void> {
    const firstIndex = batch[0]!.entries[0]!.index;
    assert(this.view.length === 0 || firstIndex === this.lastIndex() + 1, 'writer: batch does not continue the log');
    if (this.segments.length === 0 && this.startIndex !== firstIndex) {
      // Recovery must know the log now starts here, before a segment says so.
      await this.meta.setUint64(LOG_META_FIRST_INDEX, firstIndex);
      this.startIndex = firstIndex;
    }
    const current = this.segments.at(-1);
    const isNewSegment = current === undefined || current.size >= this.segmentBytes;
    const headerBytes = isNewSegment ? SEGMENT_HEADER_BYTES : 0;
    let total = headerBytes;
    for (const op of batch) total += op.records.length;
    const buffer = new Uint8Array(total);
    if (isNewSegment) buffer.set(encodeSegmentHeader(firstIndex), 0);
    let at = headerBytes;
    for (const op of batch) {
      buffer.set(op.records, at);
      at += op.records.length;
    }
    const segment = isNewSegment ? await this.createSegment(firstIndex, buffer) : await this.appendToSegment(current, buffer);
    let base = segment.size;
    for (const op of batch) {
      for (const offset of op.offsets) segment.offsets.push(base + offset);
      base += op.records.length;
      if (this.view.length === 0) this.viewFirst = op.entries[0]!.index;
      for (const entry of op.entries) this.view.push(entry);
    }
    segment.size = base;
  }

  /** Writes a new segment (header and first batch), then fsyncs it and its directory. */
  private async createSegment(firstIndex: number, buffer: Uint8Array): Promise<Segment> {
    const path = join(this.dir, segmentName(firstIndex));
    const file = await this.disk.open(path, 'create');
    try {
      await file.write(buffer, 0);
      await file.sync();
      await this.disk.syncDir(this.dir);
    } catch (error) {
      await closeAfterError(file, this.logger);
      throw error;
    }
    const previous = this.active;
    this.active = file;
    await previous?.close();
    const segment: Segment = { first: firstIndex, path, offsets: [], size: SEGMENT_HEADER_BYTES };
    this.segments.push(segment);
    return segment;
  }

  private async appendToSegment(segment: Segment, buffer: Uint8Array): Promise<Segment> {
    const file = await this.activeFile();
    await file.write(buffer, segment.size);
    await file.sync();
    return segment;
  }

  private async applyTruncate(fromIndex: number): Promise<void> {
    if (this.view.length === 0 || fromIndex > this.lastIndex()) return;
    // Newest segments first, each unlink durable before the next, so a crash in between leaves
    // a shorter log, never one with a hole.
    const keepAny = fromIndex > this.viewFirst;
    for (let last = this.segments.at(-1); last !== undefined && (!keepAny || last.first >= fromIndex); last = this.segments.at(-1)) {
      await this.removeLastSegment();
    }
    if (keepAny) {
      const segment = this.segments.at(-1)!;
      const cut = segment.offsets[fromIndex - segment.first];
      assert(cut !== undefined, 'truncate: the index to cut at is not in the last kept segment');
      const file = await this.activeFile();
      await file.truncate(cut);
      await file.sync();
      segment.offsets.length = fromIndex - segment.first;
      segment.size = cut;
    }
    this.view.length = keepAny ? fromIndex - this.viewFirst : 0;
  }

  private async removeLastSegment(): Promise<void> {
    const segment = this.segments.at(-1)!;
    const active = this.active;
    this.active = undefined;
    await active?.close();
    await this.disk.unlink(segment.path);
    await this.disk.syncDir(this.dir);
    this.segments.pop();
  }

  private async applyCompact(throughIndex: number): Promise<void> {
    if (this.view.length === 0 || throughIndex < this.viewFirst) return;
    const newFirst = throughIndex + 1;
    // Persist where the log starts before deleting anything: recovery then treats leftover
    // segments below it as compacted, not as data.
    await this.meta.setUint64(LOG_META_FIRST_INDEX, newFirst);
    this.startIndex = newFirst;
    let drop = 0;
    while (drop < this.segments.length && segmentLast(this.segments[drop]!) < newFirst) drop++;
    if (drop === this.segments.length) {
      const active = this.active;
      this.active = undefined;
      await active?.close();
    }
    for (const segment of this.segments.slice(0, drop)) await this.disk.unlink(segment.path);
    if (drop > 0) await this.disk.syncDir(this.dir);
    this.segments.splice(0, drop);
    if (newFirst > this.lastIndex()) {
      this.view = [];
      this.viewFirst = 0;
    } else {
      this.view.splice(0, newFirst - this.viewFirst);
      this.viewFirst = newFirst;
    }
  }

  private async activeFile(): Promise<DiskFile> {
    const segment = this.segments.at(-1);
    assert(segment !== undefined, 'writer: no segment to write to');
    this.active ??= await this.disk.open(segment.path, 'readwrite');
    return this.active;
  }

  private checkInvariants(): void {
    assert((this.segments.length === 0) === (this.view.length === 0), 'log store: segments and entries disagree on emptiness');
    const last = this.segments.at(-1);
    if (last !== undefined) assert(segmentLast(last) === this.lastIndex(), 'log store: last segment does not end at the last index');
  }
}

// ---------------------------------------------------------------------------------------------
// Stable stores

/** StableStore in memory, for -dev and tests. */
export class MemoryStableStore implements StableStore {
  private readonly values = new Map<string, Uint8Array>();

  get(key: string): Uint8Array | undefined {
    return this.values.get(key);
  }

  getUint64(key: string): number {
    return decodeUint64Value(key, this.values.get(key));
  }

  async set(key: string, value: Uint8Array): Promise<void> {
    checkStableEntry(key, value, this.values);
    this.values.set(key, value.slice());
  }

  async setUint64(key: string, value: number): Promise<void> {
    return this.set(key, encodeUint64Value(value));
  }

  async close(): Promise<void> {
    // Nothing to release.
  }
}

/**
 * StableStore in one small checksummed file, replaced atomically on every write: temp file,
 * fsync, rename, fsync of the directory. Concurrent sets share one write. A leftover temp file
 * is an interrupted write whose set() never resolved: it is discarded and the previous file,
 * untouched by that write, is used. A damaged main file rejects open() with ERR_STABLE_CORRUPT.
 */
export class FileStableStore implements StableStore {
  /** What is on disk; reads see only this. */
  private durable: Map<string, Uint8Array>;
  /** What will be on disk once queued sets are written. */
  private readonly pending: Map<string, Uint8Array>;
  private waiters: Waiter[] = [];
  private drain: Promise<void> | undefined;
  private failure: LogStoreError | undefined;
  private isClosed = false;

  private constructor(
    private readonly path: string,
    private readonly disk: Disk,
    private readonly logger: Logger,
    values: Map<string, Uint8Array>,
  ) {
    this.durable = values;
    this.pending = new Map(values);
  }

  static async open(path: string, options: FileStableStoreOptions): Promise<FileStableStore> {
    const { disk } = options;
    const logger = options.logger ?? nullLogger();
    const dir = dirname(path);
    await disk.mkdir(dir);
    const temp = path + STABLE_TEMP_SUFFIX;
    if ((await disk.stat(temp)) !== undefined) {
      logger.warn('stable store: discarding an interrupted write', { file: temp });
      await disk.unlink(temp);
      await disk.syncDir(dir);
    }
    const stat = await disk.stat(path);
    let values = new Map<string, Uint8Array>();
    if (stat !== undefined) {
      if (stat.size > STABLE_FILE_BYTES_MAX) {
        throw new LogStoreError('ERR_STABLE_CORRUPT', `stable store ${path} is ${stat.size} bytes, more than any we write`, path, 0);
      }
      values = decodeStableFile(await disk.readFile(path), path);
    }
    return new FileStableStore(path, disk, logger, values);
  }

  get(key: string): Uint8Array | undefined {
    return this.durable.get(key);
  }

  getUint64(key: string): number {
    return decodeUint64Value(key, this.durable.get(key));
  }

  async set(key: string, value: Uint8Array): Promise<void> {
    if (this.isClosed) throw new LogStoreError('ERR_STORE_CLOSED', 'stable store is closed');
    if (this.failure !== undefined) throw this.failure;
    checkStableEntry(key, value, this.pending);
    this.pending.set(key, value.slice());
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.drain ??= this.runWriter();
    });
  }

  async setUint64(key: string, value: number): Promise<void> {
    return this.set(key, encodeUint64Value(value));
  }

  async close(): Promise<void> {
    this.isClosed = true;
    await this.drain;
  }

  private async runWriter(): Promise<void> {
    await Promise.resolve();
    while (this.waiters.length > 0) {
      const batch = this.waiters;
      this.waiters = [];
      const values = new Map(this.pending);
      try {
        if (this.failure !== undefined) throw this.failure;
        await this.writeFile(values);
        this.durable = values;
        for (const waiter of batch) waiter.resolve();
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        this.failure ??= new LogStoreError('ERR_STORE_FAILED', `stable store failed, reopen it to recover: ${reason}`, this.path, undefined, {
          cause: error,
        });
        this.logger.error('stable store failed', { file: this.path, error: reason });
        for (const waiter of batch) waiter.reject(this.failure);
      }
    }
    this.drain = undefined;
  }

  private async writeFile(values: ReadonlyMap<string, Uint8Array>): Promise<void> {
    const bytes = encodeStableFile(values);
    const temp = this.path + STABLE_TEMP_SUFFIX;
    const file = await this.disk.open(temp, 'create');
    try {
      await file.write(bytes, 0);
      await file.sync();
    } finally {
      await file.close();
    }
    await this.disk.rename(temp, this.path);
    await this.disk.syncDir(dirname(this.path));
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers: validation

function checkAppend(entries: readonly LogEntry[], lastIndex: number, retained: number): void {
  if (entries.length > LOG_APPEND_ENTRIES_MAX) {
    throw new LogStoreError('ERR_TOO_LARGE', `append of ${entries.length} entries is over the limit of ${LOG_APPEND_ENTRIES_MAX}`);
  }
  const head = entries[0];
  if (head === undefined) return;
  assert(lastIndex === 0 || head.index === lastIndex + 1, `append: entry index ${head.index} does not follow last index ${lastIndex} (not contiguous)`);
  let bytes = 0;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    assert(Number.isSafeInteger(entry.index) && entry.index >= 1, `append: entry index ${entry.index} is not a positive integer`);
    assert(entry.index === head.index + i, `append: entry index ${entry.index} is not contiguous (expected ${head.index + i})`);
    assert(Number.isSafeInteger(entry.term) && entry.term >= 0, `append: entry ${entry.index} has term ${entry.term}`);
    assert(KNOWN_LOG_TYPES.has(entry.type), `append: entry ${entry.index} has unknown type ${entry.type}`);
    if (entry.data.length > LOG_ENTRY_DATA_BYTES_MAX) {
      throw new LogStoreError('ERR_TOO_LARGE', `entry ${entry.index} holds ${entry.data.length} bytes, over the limit of ${LOG_ENTRY_DATA_BYTES_MAX}`);
    }
    bytes += FRAME_HEADER_BYTES + PAYLOAD_FIXED_BYTES + entry.data.length;
  }
  if (bytes > LOG_APPEND_BYTES_MAX) {
    throw new LogStoreError('ERR_TOO_LARGE', `append of ${bytes} bytes is over the limit of ${LOG_APPEND_BYTES_MAX}`);
  }
  if (retained + entries.length > LOG_RETAINED_ENTRIES_MAX) {
    throw new LogStoreError('ERR_LOG_FULL', `log holds ${retained} entries; ${LOG_RETAINED_ENTRIES_MAX} is the most it keeps`);
  }
}

function checkIndexArgument(index: number, what: string): void {
  assert(Number.isSafeInteger(index) && index >= 0, `${what}: index ${index} is not a non-negative integer`);
}

function checkStableEntry(key: string, value: Uint8Array, values: ReadonlyMap<string, Uint8Array>): void {
  const keyBytes = Buffer.byteLength(key, 'utf8');
  if (keyBytes === 0 || keyBytes > STABLE_KEY_BYTES_MAX) {
    throw new LogStoreError('ERR_TOO_LARGE', `stable store key of ${keyBytes} bytes is outside [1, ${STABLE_KEY_BYTES_MAX}]`);
  }
  if (value.length > STABLE_VALUE_BYTES_MAX) {
    throw new LogStoreError('ERR_TOO_LARGE', `stable store value of ${value.length} bytes is over the limit of ${STABLE_VALUE_BYTES_MAX}`);
  }
  if (!values.has(key) && values.size >= STABLE_KEYS_MAX) {
    throw new LogStoreError('ERR_TOO_LARGE', `stable store holds ${STABLE_KEYS_MAX} keys, the most it keeps`);
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected value ${JSON.stringify(value)}`);
}

async function closeAfterError(file: DiskFile, logger: Logger): Promise<void> {
  try {
    await file.close();
  } catch (error) {
    logger.warn('log store: closing a file after an error failed too', { error: error instanceof Error ? error.message : String(error) });
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers: records and segments

function segmentName(firstIndex: number): string {
  return `log-${String(firstIndex).padStart(20, '0')}.seg`;
}

function segmentLast(segment: Segment): number {
  return segment.first + segment.offsets.length - 1;
}

function writeUint64(view: DataView, at: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, `encode: ${value} is not a non-negative safe integer`);
  view.setUint32(at, Math.floor(value / TWO_TO_32));
  view.setUint32(at + 4, value >>> 0);
}

/** A u64 that fits a JS number exactly, or undefined. */
function readUint64(view: DataView, at: number): number | undefined {
  const high = view.getUint32(at);
  return high >= 2 ** 21 ? undefined : high * TWO_TO_32 + view.getUint32(at + 4);
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function encodeSegmentHeader(firstIndex: number): Uint8Array {
  const header = new Uint8Array(SEGMENT_HEADER_BYTES);
  const view = dataView(header);
  header.set(SEGMENT_MAGIC, 0);
  header[8] = LOG_SEGMENT_FORMAT_VERSION;
  writeUint64(view, 12, firstIndex);
  view.setUint32(20, crc32cRange(header, 0, 20, 0));
  return header;
}

/** Every entry's record back to back, and where each one starts. */
function encodeRecords(entries: readonly LogEntry[]): { records: Uint8Array; offsets: number[] } {
  let total = 0;
  for (const entry of entries) total += FRAME_HEADER_BYTES + PAYLOAD_FIXED_BYTES + entry.data.length;
  const records = new Uint8Array(total);
  const view = dataView(records);
  const offsets: number[] = [];
  let at = 0;
  for (const entry of entries) {
    const payloadBytes = PAYLOAD_FIXED_BYTES + entry.data.length;
    offsets.push(at);
    view.setUint32(at, payloadBytes);
    records[at + 8] = LOG_RECORD_FORMAT_VERSION;
    records[at + 9] = entry.type;
    writeUint64(view, at + 10, entry.term);
    writeUint64(view, at + 18, entry.index);
    records.set(entry.data, at + 26);
    const end = at + FRAME_HEADER_BYTES + payloadBytes;
    view.setUint32(at + 4, crc32cRange(records, at + 8, end, crc32cRange(records, at, at + 4, 0)));
    at = end;
  }
  assert(at === total, 'encode: records do not fill their buffer');
  return { records, offsets };
}

type RecordRead =
  | { readonly kind: 'ok'; readonly entry: LogEntry; readonly end: number }
  /** Unreadable: a torn write looks like this, and so does corruption. */
  | { readonly kind: 'bad'; readonly reason: string }
  /** The checksum holds but the content is impossible: never a torn write. */
  | { readonly kind: 'invalid'; readonly reason: string };

/** Reads the record at `at`, checking the frame before the payload. Data is copied out. */
function readRecord(bytes: Uint8Array, view: DataView, at: number, wantData: boolean): RecordRead {
  const frame = checkFrame(bytes, view, at);
  if (typeof frame === 'string') return { kind: 'bad', reason: frame };
  const version = bytes[at + 8]!;
  if (version !== LOG_RECORD_FORMAT_VERSION) return { kind: 'invalid', reason: `unknown record format version ${version}` };
  const type = bytes[at + 9]!;
  if (!KNOWN_LOG_TYPES.has(type)) return { kind: 'invalid', reason: `unknown entry type ${type}` };
  const term = readUint64(view, at + 10);
  const index = readUint64(view, at + 18);
  if (term === undefined || index === undefined || index < 1) return { kind: 'invalid', reason: 'term or index out of range' };
  const data = wantData ? bytes.slice(at + 26, frame) : new Uint8Array(0);
  return { kind: 'ok', entry: { index, term, type: type as LogType, data }, end: frame };
}

/** The end offset of a well-formed frame at `at`, or why it is not one. */
function checkFrame(bytes: Uint8Array, view: DataView, at: number): number | string {
  if (bytes.length - at < FRAME_HEADER_BYTES) return 'record header is cut short';
  const payloadBytes = view.getUint32(at);
  if (payloadBytes < PAYLOAD_FIXED_BYTES || payloadBytes > RECORD_PAYLOAD_BYTES_MAX) return `record length ${payloadBytes} is out of range`;
  const end = at + FRAME_HEADER_BYTES + payloadBytes;
  if (end > bytes.length) return 'record is cut short';
  const crc = crc32cRange(bytes, at + 8, end, crc32cRange(bytes, at, at + 4, 0));
  return crc === view.getUint32(at + 4) ? end : 'record checksum mismatch';
}

/**
 * Whether any well-formed record starts at or after `from`: then damage before it is not a torn
 * tail. Positions are screened on the fixed payload fields (version, known type, the high bits a
 * u64 below 2^53 leaves zero) before any CRC, so scanning a torn multi-MiB record stays linear.
 */
function hasFrameFrom(bytes: Uint8Array, view: DataView, from: number): boolean {
  for (let at = from; at + FRAME_HEADER_BYTES + PAYLOAD_FIXED_BYTES <= bytes.length; at++) {
    const looksLikeRecord =
      bytes[at + 8] === LOG_RECORD_FORMAT_VERSION &&
      KNOWN_LOG_TYPES.has(bytes[at + 9]!) &&
      bytes[at + 10] === 0 &&
      bytes[at + 11]! < 0x20 &&
      bytes[at + 18] === 0 &&
      bytes[at + 19]! < 0x20;
    if (looksLikeRecord && typeof checkFrame(bytes, view, at) === 'number') return true;
  }
  return false;
}

function corrupt(file: string, offset: number, reason: string): LogStoreError {
  return new LogStoreError(
    'ERR_LOG_CORRUPT',
    `raft log is corrupt in ${file} at byte offset ${offset}: ${reason}; refusing to open (restore this server from a snapshot or remove its data)`,
    file,
    offset,
  );
}

interface SegmentScan {
  readonly offsets: number[];
  /** Entries at or above keepFrom. */
  readonly entries: LogEntry[];
  /** Bytes of header and whole good records. */
  readonly goodBytes: number;
  /** The first unreadable record, if any. */
  readonly bad: { readonly offset: number; readonly reason: string } | undefined;
}

/**
 * Reads one segment: header, then records while they verify. Stops at the first unreadable
 * record (reported in `bad`, for the caller to judge); throws on damage a torn write cannot
 * cause (a checksummed header or record with impossible content, an index out of sequence).
 */
function scanSegment(bytes: Uint8Array, path: string, first: number, keepFrom: number): SegmentScan {
  const view = dataView(bytes);
  const headerProblem = checkSegmentHeader(bytes, view, path, first);
  if (headerProblem !== undefined) return { offsets: [], entries: [], goodBytes: 0, bad: { offset: 0, reason: headerProblem } };
  const offsets: number[] = [];
  const entries: LogEntry[] = [];
  let at = SEGMENT_HEADER_BYTES;
  while (at < bytes.length) {
    const index = first + offsets.length;
    const record = readRecord(bytes, view, at, index >= keepFrom);
    if (record.kind === 'bad') return { offsets, entries, goodBytes: at, bad: { offset: at, reason: record.reason } };
    if (record.kind === 'invalid') throw corrupt(path, at, record.reason);
    if (record.entry.index !== index) throw corrupt(path, at, `record holds index ${record.entry.index} where ${index} was expected`);
    offsets.push(at);
    if (index >= keepFrom) entries.push(record.entry);
    at = record.end;
  }
  return { offsets, entries, goodBytes: at, bad: undefined };
}

/** Undefined when the header is good; a reason when it is unreadable; throws when it is impossible. */
function checkSegmentHeader(bytes: Uint8Array, view: DataView, path: string, first: number): string | undefined {
  if (bytes.length < SEGMENT_HEADER_BYTES) return 'segment header is cut short';
  if (crc32cRange(bytes, 0, 20, 0) !== view.getUint32(20)) return 'segment header checksum mismatch';
  for (let i = 0; i < SEGMENT_MAGIC.length; i++) if (bytes[i] !== SEGMENT_MAGIC[i]) throw corrupt(path, 0, 'not a raft log segment (bad magic)');
  if (bytes[8] !== LOG_SEGMENT_FORMAT_VERSION) throw corrupt(path, 8, `unknown segment format version ${bytes[8]}`);
  const headerFirst = readUint64(view, 12);
  if (headerFirst !== first) throw corrupt(path, 12, `segment header says first index ${headerFirst}, its name says ${first}`);
  return undefined;
}

/** Lists the segment files of `dir`, ordered by first index. */
async function listSegments(dir: string, disk: Disk): Promise<{ first: number; path: string }[]> {
  const listed: { first: number; path: string }[] = [];
  for (const name of await disk.readdir(dir)) {
    const match = SEGMENT_NAME.exec(name);
    if (match === null) continue;
    const first = Number(match[1]);
    if (!Number.isSafeInteger(first) || first < 1) throw corrupt(join(dir, name), 0, 'segment name holds an impossible index');
    listed.push({ first, path: join(dir, name) });
  }
  if (listed.length > LOG_SEGMENT_FILES_MAX) {
    throw corrupt(dir, 0, `${listed.length} segment files, more than the ${LOG_SEGMENT_FILES_MAX} a log directory may hold`);
  }
  return listed.sort((a, b) => a.first - b.first);
}

/**
 * Reads the log back after a restart (see the header comment). `startIndex` is LogFirstIndex
 * (0 for a log never written). Repairs only what a crash can leave: a torn tail, a half-created
 * last segment, segments a compaction had not deleted yet. Anything else throws ERR_LOG_CORRUPT.
 */
async function recoverLog(dir: string, disk: Disk, logger: Logger, startIndex: number): Promise<RecoveredLog> {
  const listed = await listSegments(dir, disk);
  if (listed.length > 0 && startIndex === 0) throw corrupt(join(dir, LOG_META_FILE), 0, 'segment files exist but the log meta file does not');
  // Segments whose successor starts at or below startIndex hold only compacted entries.
  let keepFrom = 0;
  while (keepFrom + 1 < listed.length && listed[keepFrom + 1]!.first <= startIndex) keepFrom++;
  const stale = listed.slice(0, keepFrom).map((segment) => segment.path);
  const segments: Segment[] = [];
  const entries: LogEntry[] = [];
  let torn: { segment: Segment; offset: number } | undefined;
  for (let i = keepFrom; i < listed.length; i++) {
    const { first, path } = listed[i]!;
    const previous = segments.at(-1);
    if (previous !== undefined && first !== segmentLast(previous) + 1) {
      throw corrupt(path, 0, `segment starts at index ${first} but the previous one ends at ${segmentLast(previous)} (a segment is missing or overlaps)`);
    }
    const size = (await disk.stat(path))?.size ?? 0;
    if (size > SEGMENT_FILE_BYTES_MAX) throw corrupt(path, 0, `segment is ${size} bytes, more than any we write`);
    const bytes = await disk.readFile(path);
    const scan = scanSegment(bytes, path, first, startIndex);
    const segment: Segment = { first, path, offsets: scan.offsets, size: scan.goodBytes };
    if (scan.bad !== undefined) {
      const isLast = i === listed.length - 1;
      if (!isLast) throw corrupt(path, scan.bad.offset, `${scan.bad.reason}, in a segment that is not the last`);
      if (hasFrameFrom(bytes, dataView(bytes), scan.bad.offset + 1)) {
        throw corrupt(path, scan.bad.offset, `${scan.bad.reason}, and good records follow it`);
      }
      logger.warn('raft log: cutting a torn tail', { file: path, offset: scan.bad.offset, bytes: bytes.length - scan.bad.offset, reason: scan.bad.reason });
      torn = { segment, offset: scan.bad.offset };
    }
    segments.push(segment);
    for (const entry of scan.entries) entries.push(entry);
    if (entries.length > LOG_RETAINED_ENTRIES_MAX) throw corrupt(path, 0, `log holds more than ${LOG_RETAINED_ENTRIES_MAX} entries`);
  }
  // A last segment without one whole record is a create that never completed.
  const last = segments.at(-1);
  const isHalfCreated = last !== undefined && last.offsets.length === 0;
  if (isHalfCreated) segments.pop();
  // A compaction that persisted startIndex but had not yet deleted every segment below it.
  const remaining = segments.at(-1);
  if (remaining !== undefined && segmentLast(remaining) < startIndex) stale.push(...segments.splice(0).map((segment) => segment.path));
  const head = segments[0];
  if (head !== undefined && head.first > startIndex) {
    throw corrupt(head.path, 0, `the log starts at index ${startIndex} but its first segment starts at ${head.first} (a segment is missing)`);
  }
  await repairAfterCrash(dir, disk, logger, { torn: isHalfCreated ? undefined : torn, halfCreated: isHalfCreated ? last.path : undefined, stale });
  assert(entries.length === 0 || entries[0]!.index === startIndex, 'recover: the first kept entry is not LogFirstIndex');
  return { segments, entries: segments.length === 0 ? [] : entries };
}

async function repairAfterCrash(
  dir: string,
  disk: Disk,
  logger: Logger,
  repairs: { torn: { segment: Segment; offset: number } | undefined; halfCreated: string | undefined; stale: string[] },
): Promise<void> {
  if (repairs.torn !== undefined) {
    const file = await disk.open(repairs.torn.segment.path, 'readwrite');
    try {
      await file.truncate(repairs.torn.offset);
      await file.sync();
    } finally {
      await file.close();
    }
  }
  const removals = [...repairs.stale, ...(repairs.halfCreated === undefined ? [] : [repairs.halfCreated])];
  if (repairs.halfCreated !== undefined) logger.warn('raft log: removing a segment whose creation was interrupted', { file: repairs.halfCreated });
  if (repairs.stale.length > 0) logger.info('raft log: removing segments an interrupted compaction left', { count: repairs.stale.length });
  for (const path of removals) await disk.unlink(path);
  if (removals.length > 0) await disk.syncDir(dir);
}

// ---------------------------------------------------------------------------------------------
// Private helpers: the stable store file

function encodeUint64Value(value: number): Uint8Array {
  const bytes = new Uint8Array(8);
  writeUint64(dataView(bytes), 0, value);
  return bytes;
}

function decodeUint64Value(key: string, value: Uint8Array | undefined): number {
  if (value === undefined) return 0;
  assert(value.length === 8, `stable store: ${key} holds ${value.length} bytes, not a uint64`);
  const number = readUint64(dataView(value), 0);
  assert(number !== undefined, `stable store: ${key} is beyond 2^53`);
  return number;
}

function encodeStableFile(values: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const encoder = new TextEncoder();
  const keys = [...values.keys()].sort();
  const encodedKeys = keys.map((key) => encoder.encode(key));
  let payloadBytes = 4;
  keys.forEach((key, i) => (payloadBytes += 2 + encodedKeys[i]!.length + 4 + values.get(key)!.length));
  const bytes = new Uint8Array(STABLE_HEADER_BYTES + payloadBytes);
  const view = dataView(bytes);
  bytes.set(STABLE_MAGIC, 0);
  bytes[4] = STABLE_FORMAT_VERSION;
  view.setUint32(8, payloadBytes);
  let at = STABLE_HEADER_BYTES;
  view.setUint32(at, keys.length);
  at += 4;
  keys.forEach((key, i) => {
    const keyBytes = encodedKeys[i]!;
    const value = values.get(key)!;
    view.setUint16(at, keyBytes.length);
    bytes.set(keyBytes, at + 2);
    at += 2 + keyBytes.length;
    view.setUint32(at, value.length);
    bytes.set(value, at + 4);
    at += 4 + value.length;
  });
  assert(at === bytes.length, 'stable store: encoding does not fill its buffer');
  view.setUint32(12, crc32cRange(bytes, STABLE_HEADER_BYTES, bytes.length, crc32cRange(bytes, 0, 12, 0)));
  return bytes;
}

/** Parses a stable store file, checking every length before reading; throws ERR_STABLE_CORRUPT. */
function decodeStableFile(bytes: Uint8Array, path: string): Map<string, Uint8Array> {
  const bad = (offset: number, reason: string): LogStoreError =>
    new LogStoreError('ERR_STABLE_CORRUPT', `stable store ${path} is corrupt at byte offset ${offset}: ${reason}; refusing to open`, path, offset);
  const view = dataView(bytes);
  if (bytes.length < STABLE_HEADER_BYTES + 4) throw bad(0, 'file is cut short');
  for (let i = 0; i < STABLE_MAGIC.length; i++) if (bytes[i] !== STABLE_MAGIC[i]) throw bad(0, 'bad magic');
  if (view.getUint32(8) !== bytes.length - STABLE_HEADER_BYTES) throw bad(8, 'length does not match the file size');
  if (crc32cRange(bytes, STABLE_HEADER_BYTES, bytes.length, crc32cRange(bytes, 0, 12, 0)) !== view.getUint32(12)) throw bad(12, 'checksum mismatch');
  if (bytes[4] !== STABLE_FORMAT_VERSION) throw bad(4, `unknown format version ${bytes[4]}`);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const values = new Map<string, Uint8Array>();
  const count = view.getUint32(STABLE_HEADER_BYTES);
  if (count > STABLE_KEYS_MAX) throw bad(STABLE_HEADER_BYTES, `${count} keys`);
  let at = STABLE_HEADER_BYTES + 4;
  for (let i = 0; i < count; i++) {
    if (bytes.length - at < 2) throw bad(at, 'key length is cut short');
    const keyBytes = view.getUint16(at);
    if (keyBytes === 0 || keyBytes > STABLE_KEY_BYTES_MAX || bytes.length - at - 2 < keyBytes + 4) throw bad(at, 'bad key length');
    let key: string;
    try {
      key = decoder.decode(bytes.subarray(at + 2, at + 2 + keyBytes));
    } catch (error) {
      throw bad(at + 2, `key is not UTF-8 (${error instanceof Error ? error.message : String(error)})`);
    }
    at += 2 + keyBytes;
    const valueBytes = view.getUint32(at);
    if (valueBytes > STABLE_VALUE_BYTES_MAX || bytes.length - at - 4 < valueBytes) throw bad(at, 'bad value length');
    if (values.has(key)) throw bad(at, `duplicate key ${key}`);
    values.set(key, bytes.slice(at + 4, at + 4 + valueBytes));
    at += 4 + valueBytes;
  }
  if (at !== bytes.length) throw bad(at, 'bytes after the last key');
  return values;
}
