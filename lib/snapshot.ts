// Raft snapshots on disk (and in memory for -dev): hashicorp/raft's SnapshotStore.
//
// Raft asks for a sink with create(meta), streams the FSM snapshot into it and closes it; later
// it lists the snapshots (newest first) and opens one to restore the FSM at start-up or to send
// it to a follower (InstallSnapshot). The store treats the data as opaque bytes: the FSM stream
// has its own format and checksum (lib/fsm.ts); the store adds a sha256 of the whole file and
// checks the size, so a damaged snapshot fails loudly with SnapshotError rather than being
// restored (TESTING R6).
//
// Invariants:
// - A snapshot becomes visible only when complete and durable: written under `<id>.tmp`, fsynced,
//   renamed to `<id>`, and the parent directory fsynced (the rename is the commit point).
// - list() returns only snapshots whose meta.json checks out and whose state.bin has the
//   recorded size; open() also verifies the sha256 while streaming and fails the iteration at
//   the end if it differs. Damaged snapshots are skipped with a warning, never deleted.
// - At most `retain` complete snapshots remain after each close (the oldest are reaped).
//
// Not here: deciding when to snapshot or which snapshot to restore (Raft's job: hashicorp/raft
// falls back to an older snapshot when the newest fails to restore), compacting the log, and
// Consul's `consul snapshot save` archives (a tar of meta.json, state.bin and SHA256SUMS).
//
// Reference: hashicorp/raft snapshot.go, file_snapshot.go, inmem_snapshot.go; Raft paper
// section 7 (log compaction); Consul agent/consul/server.go (snapshotsRetained = 2).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { nullLogger, type Logger } from './log.js';

// ---------------------------------------------------------------------------------------------
// Exported types (fixed first so the Raft core and this store could be built in parallel)

/** A server in a Raft configuration (hashicorp/raft Server). Suffrage: Voter 0, Nonvoter 1, Staging 2. */
export interface RaftServer {
  readonly suffrage: 0 | 1 | 2;
  readonly id: string;
  readonly address: string;
}

/** What a snapshot covers (hashicorp/raft SnapshotMeta). */
export interface SnapshotMeta {
  /** `<term>-<index>-<unix ms>`, as hashicorp/raft names them. */
  readonly id: string;
  readonly index: number;
  readonly term: number;
  readonly configuration: readonly RaftServer[];
  readonly configurationIndex: number;
  /** Bytes of FSM data. */
  readonly size: number;
  readonly version: number;
}

/**
 * A snapshot being written: write the FSM stream, then close() to make it durable, or cancel().
 * Calls are sequential: await each before the next.
 */
export interface SnapshotSink {
  readonly id: string;
  /**
   * Appends `chunk`. It has been copied or written out when this resolves, so the caller may
   * reuse its buffer (Fsm.snapshot() does).
   */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Checksums, fsyncs and publishes the snapshot, then reaps the oldest beyond `retain`;
   * resolves with its final meta. Nothing is visible to list() or open() before. On failure
   * nothing is published. A second call returns the first call's result.
   */
  close(): Promise<SnapshotMeta>;
  /** Discards everything written; a no-op once closed or cancelled. */
  cancel(): Promise<void>;
}

/** Stores Raft snapshots (hashicorp/raft SnapshotStore). */
export interface SnapshotStore {
  /**
   * Starts a snapshot; its ID is `<term>-<index>-<unix ms>`. Rejects a version outside
   * [SNAPSHOT_VERSION_MIN, SNAPSHOT_VERSION_MAX] with ERR_SNAPSHOT_VERSION_UNSUPPORTED.
   */
  create(meta: Omit<SnapshotMeta, 'id' | 'size'>): Promise<SnapshotSink>;
  /** Valid snapshots, newest first (term, then index, then creation time). */
  list(): Promise<SnapshotMeta[]>;
  /**
   * Opens a snapshot for reading (ERR_SNAPSHOT_NOT_FOUND if there is none). The data is
   * verified against its size and checksum as it streams: the iteration throws SnapshotError
   * (at the latest after the last chunk) if they do not match, so consumers must not commit what
   * they read before the iteration ends. `data` can be iterated once; chunks are the
   * consumer's to keep.
   */
  open(id: string): Promise<{ meta: SnapshotMeta; data: AsyncIterable<Uint8Array> }>;
}

// ---------------------------------------------------------------------------------------------
// Errors, options, limits

/** Why a snapshot cannot be created or read. One table for the module. */
export type SnapshotErrorCode =
  | 'ERR_SNAPSHOT_NOT_FOUND'
  | 'ERR_SNAPSHOT_META_INVALID'
  | 'ERR_SNAPSHOT_SIZE_MISMATCH'
  | 'ERR_SNAPSHOT_CHECKSUM_MISMATCH'
  | 'ERR_SNAPSHOT_VERSION_UNSUPPORTED'
  | 'ERR_SNAPSHOT_SINK_FAILED';

/** An operational snapshot error: a missing or damaged snapshot, or a refused create. */
export class SnapshotError extends Error {
  override readonly name = 'SnapshotError';
  constructor(
    readonly code: SnapshotErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Options shared by both stores. */
export interface SnapshotStoreOptions {
  /** How many complete snapshots to keep (hashicorp/raft's retain; Consul keeps 2). At least 1. */
  readonly retain?: number;
  /** Warnings about skipped or leftover snapshots and info about creating and reaping go here. */
  readonly logger?: Logger;
  /** Milliseconds since the epoch, for snapshot IDs; injected so tests are deterministic. */
  readonly nowMs?: () => number;
}

/** hashicorp/raft SnapshotVersionMin/Max: the range of SnapshotMeta.version we accept. */
export const SNAPSHOT_VERSION_MIN = 0;
export const SNAPSHOT_VERSION_MAX = 1;
/** Consul's default number of retained snapshots (snapshotsRetained). */
export const SNAPSHOT_RETAIN_DEFAULT = 2;
/** Upper bound on `retain`, so a typo cannot keep a disk's worth of snapshots. */
export const SNAPSHOT_RETAIN_MAX = 100;
/** Layout version of meta.json itself (its `Format` field). A new layout gets a new number. */
export const SNAPSHOT_META_FORMAT = 1;
/** meta.json is read whole; anything larger is not ours. */
export const SNAPSHOT_META_BYTES_MAX = 1024 * 1024;
/** The file sink gathers small writes into a buffer of this size before writing them out. */
export const SNAPSHOT_WRITE_BUFFER_BYTES = 256 * 1024;
/** Data is read back in chunks of this size (the FSM writes chunks of about 1 MiB too). */
export const SNAPSHOT_READ_CHUNK_BYTES = 1024 * 1024;
/** How many later milliseconds create() tries when an ID is taken (same term, index and ms). */
const SNAPSHOT_ID_ATTEMPTS_MAX = 1000;

/** Names inside the store directory, as hashicorp/raft's FileSnapshotStore spells them. */
const SNAPSHOTS_DIR = 'snapshots';
const META_FILE = 'meta.json';
const STATE_FILE = 'state.bin';
const TMP_SUFFIX = '.tmp';
const PERMISSION_TEST_FILE = 'permTest';

const ID_PATTERN = /^(\d{1,16})-(\d{1,16})-(\d{1,16})$/;
const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;

// ---------------------------------------------------------------------------------------------
// IDs and ordering

/** hashicorp/raft's snapshot name: `<term>-<index>-<unix ms>`. */
export function snapshotId(term: number, index: number, createdMs: number): string {
  assert.ok(isCount(term) && isCount(index) && isCount(createdMs), `snapshot id parts must be non-negative integers: ${term} ${index} ${createdMs}`);
  return `${term}-${index}-${createdMs}`;
}

/** The parts of an ID made by snapshotId, or undefined for anything else (including `..`). */
export function parseSnapshotId(id: string): { term: number; index: number; createdMs: number } | undefined {
  const match = ID_PATTERN.exec(id);
  if (!match) return undefined;
  const [term, index, createdMs] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (!isCount(term) || !isCount(index) || !isCount(createdMs)) return undefined;
  return { term, index, createdMs };
}

/** Sort order of list(): newest first by term, then index, then creation time, then ID. */
export function compareNewestFirst(a: SnapshotMeta, b: SnapshotMeta): number {
  if (a.term !== b.term) return b.term - a.term;
  if (a.index !== b.index) return b.index - a.index;
  const aMs = parseSnapshotId(a.id)?.createdMs ?? 0;
  const bMs = parseSnapshotId(b.id)?.createdMs ?? 0;
  if (aMs !== bMs) return bMs - aMs;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

// ---------------------------------------------------------------------------------------------
// FileSnapshotStore

/**
 * Snapshots on disk, one directory each (hashicorp/raft FileSnapshotStore):
 *
 *   <dir>/snapshots/<term>-<index>-<ms>/meta.json   what the snapshot covers, with checksums
 *   <dir>/snapshots/<term>-<index>-<ms>/state.bin   the FSM stream, byte for byte
 *   <dir>/snapshots/<id>.tmp/                       a snapshot being written (or a crash leftover)
 *
 * A snapshot exists only once its directory has its final name: close() makes data and meta
 * durable inside `<id>.tmp`, then renames it and fsyncs the parent, so a crash at any point
 * leaves either the complete snapshot or a `.tmp` directory that is skipped and, on the next
 * open, removed. Invariant: every directory without the `.tmp` suffix was complete when renamed.
 */
export class FileSnapshotStore implements SnapshotStore {
  /** Invariant: IDs of sinks neither closed nor cancelled; their `.tmp` directories are live. */
  private readonly pendingIds = new Set<string>();

  private constructor(
    /** `<dir>/snapshots`. */
    readonly path: string,
    private readonly retain: number,
    private readonly logger: Logger,
    private readonly nowMs: () => number,
  ) {}

  /**
   * Opens (creating if needed) the store under `dir`, checks that it is writable, and removes
   * the `.tmp` directories of snapshots that were being written when the process stopped.
   */
  static async open(dir: string, options: SnapshotStoreOptions = {}): Promise<FileSnapshotStore> {
    const retain = checkRetain(options.retain);
    const path = join(dir, SNAPSHOTS_DIR);
    await mkdir(path, { recursive: true });
    await fsyncDir(dir);
    const store = new FileSnapshotStore(path, retain, options.logger ?? nullLogger(), options.nowMs ?? Date.now);
    await store.testPermissions();
    await store.removeLeftovers();
    return store;
  }

  async create(meta: Omit<SnapshotMeta, 'id' | 'size'>): Promise<SnapshotSink> {
    checkCreateMeta(meta);
    const isTaken = async (candidate: string): Promise<boolean> =>
      this.pendingIds.has(candidate) || (await exists(join(this.path, candidate))) || (await exists(join(this.path, candidate + TMP_SUFFIX)));
    const id = await uniqueId(meta.term, meta.index, this.nowMs, isTaken);
    const tmpPath = join(this.path, id + TMP_SUFFIX);
    this.pendingIds.add(id);
    try {
      await mkdir(tmpPath);
    } catch (error) {
      this.pendingIds.delete(id);
      throw error;
    }
    let file: FileHandle;
    try {
      file = await open(join(tmpPath, STATE_FILE), 'wx');
    } catch (error) {
      this.pendingIds.delete(id);
      await rm(tmpPath, { recursive: true, force: true });
      throw error;
    }
    this.logger.info('creating new snapshot', { path: tmpPath });
    return new FileSnapshotSink({
      id, meta, tmpPath, file, logger: this.logger,
      finalPath: join(this.path, id),
      publish: () => this.published(id),
      release: () => this.pendingIds.delete(id),
    });
  }

  /**
   * Complete snapshots whose meta.json is valid and whose state.bin has the recorded size,
   * newest first. Others are skipped with a warning (never deleted: they are evidence).
   */
  async list(): Promise<SnapshotMeta[]> {
    const metas: SnapshotMeta[] = [];
    for (const entry of await readdir(this.path, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const name = entry.name;
      if (name.endsWith(TMP_SUFFIX)) {
        if (!this.pendingIds.has(name.slice(0, -TMP_SUFFIX.length))) this.logger.warn('found temporary snapshot', { name });
        continue;
      }
      if (!parseSnapshotId(name)) {
        this.logger.warn('skipping directory that is not a snapshot', { name });
        continue;
      }
      const found = await this.readValid(name);
      if (found) metas.push(found.meta);
    }
    return metas.sort(compareNewestFirst);
  }

  /**
   * Opens a snapshot. meta.json and the size of state.bin are checked now, the sha256 while the
   * data streams: the iteration throws SnapshotError instead of ending if the bytes differ, so
   * consumers must not commit before it ends (Fsm.restore does not). The file is open from now
   * until `data` has been iterated to its end or left early (break, throw): iterate it.
   */
  async open(id: string): Promise<{ meta: SnapshotMeta; data: AsyncIterable<Uint8Array> }> {
    if (!parseSnapshotId(id)) throw new SnapshotError('ERR_SNAPSHOT_NOT_FOUND', `snapshot ${JSON.stringify(id)} not found`);
    const { meta, sha256 } = await this.readMeta(id);
    const file = await openState(join(this.path, id, STATE_FILE), id);
    try {
      await checkStateSize(file, meta);
    } catch (error) {
      await file.close();
      throw error;
    }
    return { meta, data: readOnce(verified(readFile(file), id, meta.size, sha256)) };
  }

  /**
   * After a sink's rename: makes the rename durable, then removes all but the newest `retain`
   * snapshots. A failed reap is logged, not thrown: the new snapshot is already durable.
   */
  private async published(id: string): Promise<void> {
    this.pendingIds.delete(id);
    await fsyncDir(this.path);
    try {
      for (const meta of (await this.list()).slice(this.retain)) {
        const path = join(this.path, meta.id);
        this.logger.info('reaping snapshot', { path });
        await rm(path, { recursive: true, force: true });
      }
    } catch (error) {
      this.logger.error('failed to reap snapshots', { error: error instanceof Error ? error.message : String(error) });
    }
  }

  /** Reads and checks meta.json; a missing directory is ERR_SNAPSHOT_NOT_FOUND. */
  private async readMeta(id: string): Promise<{ meta: SnapshotMeta; sha256: string }> {
    const dirPath = join(this.path, id);
    let text: string;
    try {
      text = await readSmallFile(join(dirPath, META_FILE), SNAPSHOT_META_BYTES_MAX);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
      if (!(await exists(dirPath))) throw new SnapshotError('ERR_SNAPSHOT_NOT_FOUND', `snapshot ${id} not found`);
      throw new SnapshotError('ERR_SNAPSHOT_META_INVALID', `snapshot ${id}: meta.json is missing`);
    }
    return decodeMeta(text, id);
  }

  /** The meta of a listable snapshot, or undefined (with a warning unless it just vanished). */
  private async readValid(id: string): Promise<{ meta: SnapshotMeta } | undefined> {
    try {
      const found = await this.readMeta(id);
      const file = await openState(join(this.path, id, STATE_FILE), id);
      try {
        await checkStateSize(file, found.meta);
      } finally {
        await file.close();
      }
      return found;
    } catch (error) {
      // A snapshot reaped while we listed is simply gone; anything else is a damaged snapshot,
      // which hashicorp/raft also skips with a warning so that an older one can be used.
      if (error instanceof SnapshotError && error.code === 'ERR_SNAPSHOT_NOT_FOUND') return undefined;
      if (!(error instanceof SnapshotError) && errorCode(error) === undefined) throw error;
      this.logger.warn('skipping unreadable snapshot', { id, error: error instanceof Error ? error.message : String(error) });
      return undefined;
    }
  }

  /** hashicorp/raft testPermissions: fail at start-up, not at the first snapshot hours later. */
  private async testPermissions(): Promise<void> {
    const path = join(this.path, PERMISSION_TEST_FILE);
    const file = await open(path, 'w');
    await file.close();
    await rm(path);
  }

  /** Removes `.tmp` directories: snapshots a crashed or killed process never finished. */
  private async removeLeftovers(): Promise<void> {
    let removed = 0;
    for (const entry of await readdir(this.path, { withFileTypes: true })) {
      if (!entry.isDirectory() || !entry.name.endsWith(TMP_SUFFIX)) continue;
      this.logger.warn('removing unfinished snapshot', { name: entry.name });
      await rm(join(this.path, entry.name), { recursive: true, force: true });
      removed++;
    }
    if (removed > 0) await fsyncDir(this.path);
  }
}

type SinkState = 'open' | 'closing' | 'closed' | 'cancelled' | 'failed';

/** What a file sink needs from its store. */
interface FileSinkParts {
  readonly id: string;
  readonly meta: Omit<SnapshotMeta, 'id' | 'size'>;
  /** `<snapshots>/<id>.tmp`, holding state.bin (open as `file`) until close(). */
  readonly tmpPath: string;
  readonly finalPath: string;
  readonly file: FileHandle;
  readonly logger: Logger;
  /** After the rename: fsync the parent directory and reap. */
  publish(): Promise<void>;
  /** The sink is done (cancelled or failed): its ID may be reused. */
  release(): void;
}

/**
 * Writes state.bin through a small buffer, hashing as it goes. Invariant: at most one of
 * write/close/cancel runs at a time (callers await each), and every chunk has been copied into
 * the buffer or written to the file before write() resolves, so callers may reuse it.
 */
class FileSnapshotSink implements SnapshotSink {
  private state: SinkState = 'open';
  private isBusy = false;
  private readonly hash = createHash('sha256');
  private size = 0;
  private readonly buffer = Buffer.allocUnsafe(SNAPSHOT_WRITE_BUFFER_BYTES);
  private buffered = 0;
  private closing: Promise<SnapshotMeta> | undefined;

  readonly id: string;

  constructor(private readonly parts: FileSinkParts) {
    this.id = parts.id;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.state === 'failed') throw new SnapshotError('ERR_SNAPSHOT_SINK_FAILED', `snapshot ${this.id}: an earlier write failed`);
    assert.ok(this.state === 'open' && !this.isBusy, `snapshot ${this.id}: write while ${this.isBusy ? 'another call runs' : this.state}`);
    this.isBusy = true;
    try {
      this.hash.update(chunk);
      this.size += chunk.length;
      if (this.buffered + chunk.length > this.buffer.length) await this.flush();
      if (chunk.length >= this.buffer.length) await writeAll(this.parts.file, chunk);
      else {
        this.buffer.set(chunk, this.buffered);
        this.buffered += chunk.length;
      }
    } catch (error) {
      this.state = 'failed';
      throw error;
    } finally {
      this.isBusy = false;
    }
  }

  /**
   * Makes the snapshot durable and visible: fsync state.bin, write and fsync meta.json, fsync
   * the `.tmp` directory, rename it, fsync the parent; then reap old snapshots. On failure before
   * the rename the `.tmp` directory is removed and nothing is published. A second call returns
   * the first call's result.
   */
  close(): Promise<SnapshotMeta> {
    if (this.closing) return this.closing;
    assert.ok(!this.isBusy, `snapshot ${this.id}: close while a write runs`);
    if (this.state === 'cancelled') return Promise.reject(new SnapshotError('ERR_SNAPSHOT_SINK_FAILED', `snapshot ${this.id} was cancelled`));
    this.closing = this.finish();
    return this.closing;
  }

  async cancel(): Promise<void> {
    if (this.state === 'closed' || this.state === 'cancelled' || this.state === 'closing') return;
    assert.ok(!this.isBusy, `snapshot ${this.id}: cancel while a write runs`);
    this.state = 'cancelled';
    await this.discard();
  }

  private async finish(): Promise<SnapshotMeta> {
    if (this.state === 'failed') {
      await this.discard();
      throw new SnapshotError('ERR_SNAPSHOT_SINK_FAILED', `snapshot ${this.id}: an earlier write failed`);
    }
    this.state = 'closing';
    const { file, tmpPath } = this.parts;
    let meta: SnapshotMeta;
    try {
      await this.flush();
      await file.sync();
      await file.close();
      meta = freezeMeta({ ...this.parts.meta, id: this.id, size: this.size });
      await writeDurably(join(tmpPath, META_FILE), encodeMeta(meta, this.hash.digest('hex')));
      await fsyncDir(tmpPath);
      await rename(tmpPath, this.parts.finalPath);
    } catch (error) {
      this.state = 'failed';
      this.parts.logger.error('failed to write snapshot', { id: this.id, error: error instanceof Error ? error.message : String(error) });
      await this.discard();
      throw error;
    }
    this.state = 'closed';
    this.parts.logger.info('snapshot complete', { id: this.id, size: this.size });
    await this.parts.publish();
    return meta;
  }

  private async flush(): Promise<void> {
    if (this.buffered === 0) return;
    await writeAll(this.parts.file, this.buffer.subarray(0, this.buffered));
    this.buffered = 0;
  }

  /** Closes the file (a no-op if already closed) and removes the `.tmp` directory. */
  private async discard(): Promise<void> {
    try {
      await this.parts.file.close();
    } finally {
      await rm(this.parts.tmpPath, { recursive: true, force: true });
      this.parts.release();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// MemorySnapshotStore

interface MemorySnapshot {
  readonly meta: SnapshotMeta;
  readonly data: Buffer;
  readonly sha256: string;
}

/**
 * Snapshots in memory, for -dev and tests, with the file store's contract: same IDs, retain,
 * order, checksum on read, and nothing visible before close().
 */
export class MemorySnapshotStore implements SnapshotStore {
  private readonly snapshots = new Map<string, MemorySnapshot>();
  /** Invariant: IDs of sinks neither closed nor cancelled. */
  private readonly pendingIds = new Set<string>();
  private readonly retain: number;
  private readonly nowMs: () => number;

  constructor(options: SnapshotStoreOptions = {}) {
    this.retain = checkRetain(options.retain);
    this.nowMs = options.nowMs ?? Date.now;
  }

  async create(meta: Omit<SnapshotMeta, 'id' | 'size'>): Promise<SnapshotSink> {
    checkCreateMeta(meta);
    const id = await uniqueId(meta.term, meta.index, this.nowMs, (candidate) => this.snapshots.has(candidate) || this.pendingIds.has(candidate));
    this.pendingIds.add(id);
    return new MemorySnapshotSink(id, meta, (snapshot) => this.publish(snapshot), () => this.pendingIds.delete(id));
  }

  async list(): Promise<SnapshotMeta[]> {
    return Array.from(this.snapshots.values(), (snapshot) => snapshot.meta).sort(compareNewestFirst);
  }

  async open(id: string): Promise<{ meta: SnapshotMeta; data: AsyncIterable<Uint8Array> }> {
    const snapshot = this.snapshots.get(id);
    if (!snapshot) throw new SnapshotError('ERR_SNAPSHOT_NOT_FOUND', `snapshot ${JSON.stringify(id)} not found`);
    return { meta: snapshot.meta, data: readOnce(verified(memoryChunks(snapshot.data), id, snapshot.meta.size, snapshot.sha256)) };
  }

  private async publish(snapshot: MemorySnapshot): Promise<void> {
    this.pendingIds.delete(snapshot.meta.id);
    this.snapshots.set(snapshot.meta.id, snapshot);
    for (const meta of (await this.list()).slice(this.retain)) this.snapshots.delete(meta.id);
  }
}

/** Copies every chunk on write (callers reuse their buffers). */
class MemorySnapshotSink implements SnapshotSink {
  private state: 'open' | 'closed' | 'cancelled' = 'open';
  private readonly chunks: Buffer[] = [];
  private closed: SnapshotMeta | undefined;

  constructor(
    readonly id: string,
    private readonly meta: Omit<SnapshotMeta, 'id' | 'size'>,
    private readonly publish: (snapshot: MemorySnapshot) => Promise<void>,
    private readonly release: () => void,
  ) {}

  async write(chunk: Uint8Array): Promise<void> {
    assert.ok(this.state === 'open', `snapshot ${this.id}: write while ${this.state}`);
    this.chunks.push(Buffer.from(chunk));
  }

  async close(): Promise<SnapshotMeta> {
    if (this.closed) return this.closed;
    if (this.state === 'cancelled') throw new SnapshotError('ERR_SNAPSHOT_SINK_FAILED', `snapshot ${this.id} was cancelled`);
    this.state = 'closed';
    const data = Buffer.concat(this.chunks);
    this.chunks.length = 0;
    const meta = freezeMeta({ ...this.meta, id: this.id, size: data.length });
    this.closed = meta;
    await this.publish({ meta, data, sha256: createHash('sha256').update(data).digest('hex') });
    return meta;
  }

  async cancel(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'cancelled';
    this.chunks.length = 0;
    this.release();
  }
}

// ---------------------------------------------------------------------------------------------
// meta.json
//
// hashicorp/raft's fileSnapshotMeta with its field names (Version, ID, Index, Term,
// Configuration.Servers[].{Suffrage,ID,Address}, ConfigurationIndex, Size), a sha256 of
// state.bin instead of its crc64 (`SHA256`, hex), the layout version (`Format`), and
// `MetaSHA256`: the sha256 of the other fields as compact JSON in this order. Without it a
// flipped digit in Index or Term would parse fine and restore the state under the wrong index.
// The deprecated Peers field (version 0 snapshots) is not written.

function metaBody(meta: SnapshotMeta, sha256: string): Record<string, unknown> {
  return {
    Format: SNAPSHOT_META_FORMAT,
    Version: meta.version,
    ID: meta.id,
    Index: meta.index,
    Term: meta.term,
    Configuration: { Servers: meta.configuration.map((server) => ({ Suffrage: server.suffrage, ID: server.id, Address: server.address })) },
    ConfigurationIndex: meta.configurationIndex,
    Size: meta.size,
    SHA256: sha256,
  };
}

/** The text of meta.json for a finished snapshot. */
function encodeMeta(meta: SnapshotMeta, sha256: string): string {
  const body = metaBody(meta, sha256);
  const text = `${JSON.stringify({ ...body, MetaSHA256: sha256Hex(JSON.stringify(body)) }, null, 2)}\n`;
  assert.deepEqual(decodeMeta(text, meta.id).meta, meta, 'meta.json must read back as written');
  return text;
}

const META_KEYS = ['Format', 'Version', 'ID', 'Index', 'Term', 'Configuration', 'ConfigurationIndex', 'Size', 'SHA256', 'MetaSHA256'];
const SERVER_KEYS = ['Suffrage', 'ID', 'Address'];

/** Parses and checks meta.json of snapshot `id`; any defect is ERR_SNAPSHOT_META_INVALID. */
function decodeMeta(text: string, id: string): { meta: SnapshotMeta; sha256: string } {
  const invalid = (why: string): SnapshotError => new SnapshotError('ERR_SNAPSHOT_META_INVALID', `snapshot ${id}: meta.json ${why}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw invalid(`is not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  const raw = objectWithKeys(parsed, META_KEYS, 'meta.json', invalid);
  if (raw['Format'] !== SNAPSHOT_META_FORMAT) throw invalid(`has unknown Format ${JSON.stringify(raw['Format'])}`);
  const version = raw['Version'];
  if (!isCount(version)) throw invalid('has a bad Version');
  if (raw['ID'] !== id) throw invalid(`names snapshot ${JSON.stringify(raw['ID'])}`);
  for (const key of ['Index', 'Term', 'ConfigurationIndex', 'Size']) if (!isCount(raw[key])) throw invalid(`has a bad ${key}`);
  const sha256 = raw['SHA256'];
  if (typeof sha256 !== 'string' || !SHA256_HEX_PATTERN.test(sha256)) throw invalid('has a bad SHA256');
  const configuration = objectWithKeys(raw['Configuration'], ['Servers'], 'Configuration', invalid)['Servers'];
  if (!Array.isArray(configuration)) throw invalid('has a bad Configuration.Servers');
  const servers = configuration.map((value: unknown): RaftServer => {
    const server = objectWithKeys(value, SERVER_KEYS, 'Configuration.Servers[]', invalid);
    const { Suffrage: suffrage, ID: serverId, Address: address } = server;
    if ((suffrage !== 0 && suffrage !== 1 && suffrage !== 2) || typeof serverId !== 'string' || typeof address !== 'string') throw invalid('has a bad server');
    return { suffrage, id: serverId, address };
  });
  const meta = freezeMeta({ id, version, index: raw['Index'] as number, term: raw['Term'] as number, configuration: servers, configurationIndex: raw['ConfigurationIndex'] as number, size: raw['Size'] as number });
  if (raw['MetaSHA256'] !== sha256Hex(JSON.stringify(metaBody(meta, sha256)))) throw invalid('does not match its MetaSHA256 (damaged)');
  if (version < SNAPSHOT_VERSION_MIN || version > SNAPSHOT_VERSION_MAX) throw new SnapshotError('ERR_SNAPSHOT_VERSION_UNSUPPORTED', `snapshot ${id}: version ${version} is not supported`);
  return { meta, sha256 };
}

/** `value` as an object with exactly `keys` (unknown or missing keys are a damaged file). */
function objectWithKeys(value: unknown, keys: readonly string[], what: string, invalid: (why: string) => SnapshotError): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`has ${what} that is not an object`);
  const actual = Object.keys(value);
  const unexpected = actual.find((key) => !keys.includes(key));
  if (unexpected !== undefined) throw invalid(`has unknown field ${JSON.stringify(unexpected)} in ${what}`);
  const missing = keys.find((key) => !actual.includes(key));
  if (missing !== undefined) throw invalid(`lacks ${missing} in ${what}`);
  return value as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// Private helpers

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function checkRetain(retain: number = SNAPSHOT_RETAIN_DEFAULT): number {
  assert.ok(Number.isInteger(retain) && retain >= 1 && retain <= SNAPSHOT_RETAIN_MAX, `must retain between 1 and ${SNAPSHOT_RETAIN_MAX} snapshots, not ${retain}`);
  return retain;
}

/** Refuses versions hashicorp/raft refuses; other fields come from Raft itself, so they assert. */
function checkCreateMeta(meta: Omit<SnapshotMeta, 'id' | 'size'>): void {
  if (!Number.isInteger(meta.version) || meta.version < SNAPSHOT_VERSION_MIN || meta.version > SNAPSHOT_VERSION_MAX) {
    throw new SnapshotError('ERR_SNAPSHOT_VERSION_UNSUPPORTED', `snapshot version ${meta.version} is not supported`);
  }
  assert.ok(isCount(meta.index) && isCount(meta.term) && isCount(meta.configurationIndex), 'snapshot index, term and configurationIndex are non-negative integers');
  for (const server of meta.configuration) assert.ok([0, 1, 2].includes(server.suffrage) && typeof server.id === 'string' && typeof server.address === 'string', 'snapshot configuration servers are well formed');
}

/**
 * `<term>-<index>-<ms>`, moved to a later millisecond while `isTaken` (two snapshots of one
 * index within a millisecond, or a clock that went back), so two sinks never share a name.
 */
async function uniqueId(term: number, index: number, nowMs: () => number, isTaken: (id: string) => boolean | Promise<boolean>): Promise<string> {
  const startMs = Math.max(0, Math.floor(nowMs()));
  for (let attempt = 0; attempt < SNAPSHOT_ID_ATTEMPTS_MAX; attempt++) {
    const id = snapshotId(term, index, startMs + attempt);
    if (!(await isTaken(id))) return id;
  }
  assert.fail(`no free snapshot id for term ${term} index ${index} near ${startMs}`);
}

function freezeMeta(meta: SnapshotMeta): SnapshotMeta {
  const configuration = Object.freeze(meta.configuration.map((server) => Object.freeze({ suffrage: server.suffrage, id: server.id, address: server.address })));
  return Object.freeze({ id: meta.id, index: meta.index, term: meta.term, configuration, configurationIndex: meta.configurationIndex, size: meta.size, version: meta.version });
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Passes `source` through, counting and hashing; throws SnapshotError as soon as there are
 * more bytes than `size`, and at the end if there are fewer or the sha256 differs.
 */
async function* verified(source: AsyncIterable<Uint8Array>, id: string, size: number, sha256: string): AsyncGenerator<Uint8Array> {
  const hash = createHash('sha256');
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    if (total > size) throw new SnapshotError('ERR_SNAPSHOT_SIZE_MISMATCH', `snapshot ${id}: state.bin is longer than the ${size} bytes meta.json records`);
    hash.update(chunk);
    yield chunk;
  }
  if (total !== size) throw new SnapshotError('ERR_SNAPSHOT_SIZE_MISMATCH', `snapshot ${id}: state.bin has ${total} bytes, meta.json records ${size}`);
  if (hash.digest('hex') !== sha256) throw new SnapshotError('ERR_SNAPSHOT_CHECKSUM_MISMATCH', `snapshot ${id}: state.bin does not match the sha256 in meta.json (damaged snapshot)`);
}

/** An iterable that can be iterated once: a second pass would silently see no data. */
function readOnce(generator: AsyncGenerator<Uint8Array>): AsyncIterable<Uint8Array> {
  let isTaken = false;
  return {
    [Symbol.asyncIterator]() {
      assert.ok(!isTaken, 'snapshot data can be read once; open the snapshot again');
      isTaken = true;
      return generator;
    },
  };
}

/** Reads `file` to the end in fresh buffers (consumers may keep them) and closes it. */
async function* readFile(file: FileHandle): AsyncGenerator<Uint8Array> {
  try {
    for (;;) {
      const buffer = Buffer.allocUnsafe(SNAPSHOT_READ_CHUNK_BYTES);
      const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) return;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await file.close();
  }
}

/** Copies, so a consumer that writes into a chunk cannot damage the stored snapshot. */
async function* memoryChunks(data: Buffer): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < data.length; offset += SNAPSHOT_READ_CHUNK_BYTES) {
    yield Buffer.from(data.subarray(offset, offset + SNAPSHOT_READ_CHUNK_BYTES));
  }
}

async function openState(path: string, id: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') throw new SnapshotError('ERR_SNAPSHOT_SIZE_MISMATCH', `snapshot ${id}: state.bin is missing`);
    throw error;
  }
}

async function checkStateSize(file: FileHandle, meta: SnapshotMeta): Promise<void> {
  const { size } = await file.stat();
  if (size !== meta.size) throw new SnapshotError('ERR_SNAPSHOT_SIZE_MISMATCH', `snapshot ${meta.id}: state.bin has ${size} bytes, meta.json records ${meta.size}`);
}

async function readSmallFile(path: string, bytesMax: number): Promise<string> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    if (size > bytesMax) throw new SnapshotError('ERR_SNAPSHOT_META_INVALID', `${path} has ${size} bytes, more than ${bytesMax}`);
    return (await file.readFile()).toString('utf8');
  } finally {
    await file.close();
  }
}

async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await file.write(bytes, offset, bytes.length - offset, null);
    assert.ok(bytesWritten > 0, 'a file write made no progress');
    offset += bytesWritten;
  }
}

async function writeDurably(path: string, text: string): Promise<void> {
  const file = await open(path, 'wx');
  try {
    await writeAll(file, Buffer.from(text));
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Makes a directory's entries (creations, renames) durable. */
async function fsyncDir(path: string): Promise<void> {
  const dir = await open(path, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw error;
  }
}

function errorCode(error: unknown): string | undefined {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' ? (error as NodeJS.ErrnoException).code : undefined;
}
