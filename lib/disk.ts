// The I/O edge under the Raft log and stable store: the few file operations they need, on the
// real file system (NODE_DISK) and on a simulated one for crash tests (SimulatedDisk).
//
// Why an interface: durability bugs (a missing fsync, a rename made before its data was synced, a
// directory never synced after a create) are invisible to `kill -9`, because the page cache
// survives a process crash. Only a disk that forgets what was never fsynced shows them, so the
// stores take a Disk and the tests hand them a SimulatedDisk (TESTING.md, R3 and R6).
//
// Durability model (POSIX, and what SimulatedDisk enforces):
// - A file's bytes and size survive a crash only once `DiskFile.sync()` returned for them.
// - A name (create, rename, unlink) survives a crash only once `syncDir()` of its directory
//   returned; an fsynced file whose name was never made durable is lost.
// - `mkdir` is durable when it returns (NODE_DISK fsyncs the parents it created).
//
// Not here: locking a data directory against a second process, preallocation, O_DIRECT.
//
// Reference: TigerBeetle's simulated storage; "Files are hard" (Pillai et al., OSDI 2014) for
// why directory fsyncs matter.

import { closeSync, constants as fsConstants, fdatasyncSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { posix } from 'node:path';
import { seededRng } from './rng.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** How to open a file: `readwrite` needs it to exist; `create` creates it or empties it. */
export type DiskOpenMode = 'readwrite' | 'create';

/** An open file. Positions are byte offsets; writes at a position past the end zero-fill the gap. */
export interface DiskFile {
  /** Writes all of `data` at `position` (pwrite). Not durable until sync(). */
  write(data: Uint8Array, position: number): Promise<void>;
  /** Reads up to `length` bytes at `position`; fewer at the end of the file. */
  read(position: number, length: number): Promise<Uint8Array>;
  /** Sets the file's size. Not durable until sync(). */
  truncate(size: number): Promise<void>;
  /** Makes the file's bytes and size durable (fdatasync on NODE_DISK). */
  sync(): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

/** The file-system operations the stores use. Paths are absolute, '/'-separated. */
export interface Disk {
  open(path: string, mode: DiskOpenMode): Promise<DiskFile>;
  /** The whole file. Callers bound the size with stat() first. */
  readFile(path: string): Promise<Uint8Array>;
  /** Names (not paths) of the entries in a directory, in no particular order. */
  readdir(dir: string): Promise<string[]>;
  /** The file's size, or undefined when it does not exist. */
  stat(path: string): Promise<{ readonly size: number } | undefined>;
  /** Creates the directory and its parents; durable on return. */
  mkdir(dir: string): Promise<void>;
  /** Atomically replaces `to` with `from`. Durable after syncDir of the directory. */
  rename(from: string, to: string): Promise<void>;
  /** Removes a file. Durable after syncDir of its directory. */
  unlink(path: string): Promise<void>;
  /** Makes creates, renames and unlinks in `dir` durable (fsync of the directory). */
  syncDir(dir: string): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// NODE_DISK

/**
 * The real file system through node:fs/promises. sync() is fdatasync, which also flushes the file
 * size (POSIX: the metadata needed to read the data back); it costs about 0.2-0.25 ms here
 * (spec/baselines.md), which is why the log store groups appends into one sync.
 */
export const NODE_DISK: Disk = {
  async open(path, mode) {
    const flags = mode === 'create' ? fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_TRUNC : fsConstants.O_RDWR;
    return new NodeFile(await fsp.open(path, flags, 0o644));
  },
  async readFile(path) {
    const buffer = await fsp.readFile(path);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  },
  async readdir(dir) {
    return fsp.readdir(dir);
  },
  async stat(path) {
    try {
      const stats = await fsp.stat(path);
      return { size: stats.size };
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined;
      throw error;
    }
  },
  async mkdir(dir) {
    const created = await fsp.mkdir(dir, { recursive: true });
    if (created === undefined) return;
    // Each new directory's name lives in its parent: sync from the deepest up to the parent of
    // the first one created.
    const stop = posix.dirname(created);
    for (let current = dir; ; current = posix.dirname(current)) {
      await NODE_DISK.syncDir(posix.dirname(current));
      if (posix.dirname(current) === stop || current === '/') break;
    }
  },
  async rename(from, to) {
    await fsp.rename(from, to);
  },
  async unlink(path) {
    await fsp.unlink(path);
  },
  async syncDir(dir) {
    const handle = await fsp.open(dir, fsConstants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/** Writes up to this size run inline on NODE_DISK (a page-cache copy of a few microseconds). */
export const NODE_INLINE_WRITE_BYTES_MAX = 256 * 1024;

class NodeFile implements DiskFile {
  constructor(private readonly handle: fsp.FileHandle) {}

  async write(data: Uint8Array, position: number): Promise<void> {
    let done = 0;
    // A small write only copies into the page cache: doing it inline saves a thread-pool round
    // trip per group commit (about 0.1 ms); large ones go to the pool so the loop is not blocked.
    if (data.length <= NODE_INLINE_WRITE_BYTES_MAX) {
      while (done < data.length) done += writeSync(this.handle.fd, data, done, data.length - done, position + done);
      return;
    }
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, position + done);
      if (bytesWritten <= 0) throw new Error(`short write at position ${position + done}`);
      done += bytesWritten;
    }
  }

  async read(position: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(out, done, length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return out.subarray(0, done);
  }

  async truncate(size: number): Promise<void> {
    await this.handle.truncate(size);
  }

  async sync(): Promise<void> {
    // Inline, as etcd's and hashicorp/raft's loops wait for their fsync: the thread-pool round
    // trip of the async call added about 0.1 ms per fsync here (110-135 us inline against
    // 200-240 us through the pool), and an acknowledged write waits for two fsyncs (leader and
    // follower). What arrives meanwhile is batched into the next Ready.
    fdatasyncSync(this.handle.fd);
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

// ---------------------------------------------------------------------------------------------
// SimulatedDisk

/** Options of SimulatedDisk. */
export interface SimulatedDiskOptions {
  /** Seeds the microtask delays of operations and the tear point of crashes. */
  readonly seed: number;
}

/** What a crash does to the write that was in flight. */
export interface CrashOptions {
  /**
   * Keep a random-length prefix (0 to all of its bytes) of the most recent write that was not
   * synced yet, as a disk that wrote part of it before power was lost. Default true.
   */
  readonly tear?: boolean;
  /**
   * For crashAtOp: crash at the first file sync at or after the operation number instead, the
   * moment a write is sure to be in flight. Default false.
   */
  readonly atSync?: boolean;
}

/** The error every operation throws once the simulated machine has crashed, until reboot(). */
export class SimulatedCrashError extends Error {
  override readonly name = 'SimulatedCrashError';
  readonly code = 'ESIMCRASH';
}

/** Upper bound on the microtask hops one operation waits, so interleavings vary with the seed. */
export const SIM_OP_DELAY_HOPS_MAX = 3;

interface Inode {
  readonly id: number;
  /** Invariant: bytes [0, size) are the file's current content; the rest is spare capacity. */
  buffer: Uint8Array;
  size: number;
  /** The content a crash returns to: what the last sync() saw. */
  durable: Uint8Array;
  /** The most recent write since the last sync, the one a crash may tear. */
  lastWrite: { readonly seq: number; readonly position: number; readonly bytes: Uint8Array } | undefined;
}

/**
 * An in-memory file system that remembers what was made durable. crash() throws away every
 * unsynced byte and every create, rename or unlink whose directory was not synced afterwards,
 * optionally keeping a torn prefix of the last unsynced write. Deterministic for a seed: each
 * operation waits a seeded number of microtasks, so concurrent callers interleave differently per
 * seed but identically per run. Test helpers flip bits, cut files and inject I/O errors.
 */
export class SimulatedDisk implements Disk {
  /** Operations started since creation (every Disk and DiskFile call counts one). */
  opCount = 0;
  /** DiskFile.sync() calls that completed. */
  syncCount = 0;
  /** syncDir() calls that completed. */
  dirSyncCount = 0;
  /** DiskFile.write() calls that completed. */
  writeCount = 0;

  private readonly random: () => number;
  private readonly dirs = new Set<string>(['/']);
  private files = new Map<string, Inode>();
  private durableFiles = new Map<string, Inode>();
  private nextInodeId = 1;
  private writeSeq = 0;
  /** Bumped by every crash: handles from before a crash stop working. */
  private generation = 0;
  private crashed = false;
  private crashAt: { readonly op: number; readonly options: CrashOptions } | undefined;
  private readonly failAt = new Set<number>();

  constructor(options: SimulatedDiskOptions) {
    this.random = seededRng(options.seed);
  }

  /** Whether the machine is down (after a crash, before reboot()). */
  get isCrashed(): boolean {
    return this.crashed;
  }

  async open(path: string, mode: DiskOpenMode): Promise<DiskFile> {
    const name = normalize(path);
    await this.enter();
    let inode = this.files.get(name);
    if (mode === 'readwrite') {
      if (inode === undefined) throw fsError('ENOENT', `open ${name}`);
    } else {
      if (!this.dirs.has(posix.dirname(name))) throw fsError('ENOENT', `open ${name}`);
      if (inode === undefined) {
        inode = { id: this.nextInodeId++, buffer: new Uint8Array(64), size: 0, durable: new Uint8Array(0), lastWrite: undefined };
        this.files.set(name, inode);
      } else {
        inode.size = 0;
      }
    }
    return new SimFile(this, inode, this.generation);
  }

  async readFile(path: string): Promise<Uint8Array> {
    const name = normalize(path);
    await this.enter();
    const inode = this.files.get(name);
    if (inode === undefined) throw fsError('ENOENT', `open ${name}`);
    return inode.buffer.slice(0, inode.size);
  }

  async readdir(dir: string): Promise<string[]> {
    const name = normalize(dir);
    await this.enter();
    if (!this.dirs.has(name)) throw fsError('ENOENT', `scandir ${name}`);
    const names: string[] = [];
    for (const path of this.files.keys()) if (posix.dirname(path) === name) names.push(posix.basename(path));
    return names;
  }

  async stat(path: string): Promise<{ readonly size: number } | undefined> {
    const name = normalize(path);
    await this.enter();
    const inode = this.files.get(name);
    return inode === undefined ? undefined : { size: inode.size };
  }

  async mkdir(dir: string): Promise<void> {
    const name = normalize(dir);
    await this.enter();
    for (let current = name; !this.dirs.has(current); current = posix.dirname(current)) this.dirs.add(current);
  }

  async rename(from: string, to: string): Promise<void> {
    const source = normalize(from);
    const target = normalize(to);
    await this.enter();
    const inode = this.files.get(source);
    if (inode === undefined) throw fsError('ENOENT', `rename ${source}`);
    this.files.delete(source);
    this.files.set(target, inode);
  }

  async unlink(path: string): Promise<void> {
    const name = normalize(path);
    await this.enter();
    if (!this.files.delete(name)) throw fsError('ENOENT', `unlink ${name}`);
  }

  async syncDir(dir: string): Promise<void> {
    const name = normalize(dir);
    await this.enter();
    if (!this.dirs.has(name)) throw fsError('ENOENT', `open ${name}`);
    for (const path of [...this.durableFiles.keys()]) {
      if (posix.dirname(path) === name && !this.files.has(path)) this.durableFiles.delete(path);
    }
    for (const [path, inode] of this.files) if (posix.dirname(path) === name) this.durableFiles.set(path, inode);
    this.dirSyncCount++;
  }

  // --- crash and fault injection ---------------------------------------------------------

  /**
   * Crashes now: every file returns to its last synced content, every name to its last synced
   * directory state; with `tear` (default) a random prefix of the most recent unsynced write
   * survives. Operations fail with SimulatedCrashError until reboot().
   */
  crash(options: CrashOptions = {}): void {
    const torn = (options.tear ?? true) ? this.lastUnsyncedWrite() : undefined;
    this.files = new Map(this.durableFiles);
    for (const inode of new Set(this.durableFiles.values())) {
      inode.buffer = inode.durable.slice();
      inode.size = inode.durable.length;
      inode.lastWrite = undefined;
    }
    if (torn !== undefined) {
      const keepBytes = Math.floor(this.random() * (torn.write.bytes.length + 1));
      if (keepBytes > 0) {
        writeInto(torn.inode, torn.write.bytes.subarray(0, keepBytes), torn.write.position);
        torn.inode.durable = torn.inode.buffer.slice(0, torn.inode.size);
      }
    }
    this.crashed = true;
    this.crashAt = undefined;
    this.generation++;
  }

  /**
   * Crashes (with `options`) when operation number `op` starts (or, with atSync, the first file
   * sync from then on); that operation and all later ones fail.
   */
  crashAtOp(op: number, options: CrashOptions = {}): void {
    this.crashAt = { op, options };
  }

  /** Operation number `op` fails with EIO (without crashing). */
  failAtOp(op: number): void {
    this.failAt.add(op);
  }

  /** Brings the machine back after a crash: operations work again; old handles stay dead. */
  reboot(): void {
    this.crashed = false;
  }

  /** Flips one bit of a file, in its current and its durable content (silent corruption). */
  flipBit(path: string, bit: number): void {
    const inode = this.mustExist(path);
    const byte = Math.floor(bit / 8);
    if (byte >= inode.size) throw new RangeError(`bit ${bit} is past the end of ${path}`);
    inode.buffer[byte] = (inode.buffer[byte] ?? 0) ^ (1 << bit % 8);
    if (byte < inode.durable.length) inode.durable[byte] = (inode.durable[byte] ?? 0) ^ (1 << bit % 8);
  }

  /** Cuts a file to `size` bytes, durably (a lost tail). */
  cut(path: string, size: number): void {
    const inode = this.mustExist(path);
    inode.size = Math.min(inode.size, size);
    inode.durable = inode.durable.slice(0, Math.min(inode.durable.length, size));
  }

  /** Test helper: a copy of a file's current content, or undefined. */
  peek(path: string): Uint8Array | undefined {
    const inode = this.files.get(normalize(path));
    return inode === undefined ? undefined : inode.buffer.slice(0, inode.size);
  }

  /** Test helper: every file path, sorted. */
  paths(): string[] {
    return [...this.files.keys()].sort();
  }

  // --- used by SimFile ---------------------------------------------------------------------

  /** Counts an operation, applies a scheduled crash or fault, then waits a seeded few microtasks. */
  async enter(generation = this.generation, isFileSync = false): Promise<void> {
    if (this.crashed || generation !== this.generation) throw new SimulatedCrashError('simulated machine is down');
    const op = ++this.opCount;
    const crashAt = this.crashAt;
    if (crashAt !== undefined && (crashAt.options.atSync === true ? isFileSync && op >= crashAt.op : op === crashAt.op)) {
      this.crash(crashAt.options);
      throw new SimulatedCrashError(`simulated crash at op ${op}`);
    }
    if (this.failAt.delete(op)) throw fsError('EIO', `injected I/O error at op ${op}`);
    const hops = Math.floor(this.random() * (SIM_OP_DELAY_HOPS_MAX + 1));
    for (let hop = 0; hop < hops; hop++) await Promise.resolve();
    // A crash may have happened while this operation waited: its effect must not land.
    if (this.crashed || generation !== this.generation) throw new SimulatedCrashError('simulated machine is down');
  }

  write(inode: Inode, data: Uint8Array, position: number): void {
    writeInto(inode, data, position);
    inode.lastWrite = { seq: ++this.writeSeq, position, bytes: data.slice() };
    this.writeCount++;
  }

  sync(inode: Inode): void {
    inode.durable = inode.buffer.slice(0, inode.size);
    inode.lastWrite = undefined;
    this.syncCount++;
  }

  private lastUnsyncedWrite(): { readonly inode: Inode; readonly write: NonNullable<Inode['lastWrite']> } | undefined {
    let best: { inode: Inode; write: NonNullable<Inode['lastWrite']> } | undefined;
    for (const inode of new Set(this.durableFiles.values())) {
      const write = inode.lastWrite;
      if (write !== undefined && (best === undefined || write.seq > best.write.seq)) best = { inode, write };
    }
    return best;
  }

  private mustExist(path: string): Inode {
    const inode = this.files.get(normalize(path));
    if (inode === undefined) throw fsError('ENOENT', `no file ${path}`);
    return inode;
  }
}

class SimFile implements DiskFile {
  constructor(
    private readonly disk: SimulatedDisk,
    private readonly inode: Inode,
    private readonly generation: number,
  ) {}

  async write(data: Uint8Array, position: number): Promise<void> {
    await this.disk.enter(this.generation);
    this.disk.write(this.inode, data, position);
  }

  async read(position: number, length: number): Promise<Uint8Array> {
    await this.disk.enter(this.generation);
    const end = Math.min(this.inode.size, position + length);
    return position >= end ? new Uint8Array(0) : this.inode.buffer.slice(position, end);
  }

  async truncate(size: number): Promise<void> {
    await this.disk.enter(this.generation);
    if (size > this.inode.size) writeInto(this.inode, new Uint8Array(size - this.inode.size), this.inode.size);
    this.inode.size = size;
  }

  async sync(): Promise<void> {
    await this.disk.enter(this.generation, true);
    this.disk.sync(this.inode);
  }

  async size(): Promise<number> {
    await this.disk.enter(this.generation);
    return this.inode.size;
  }

  async close(): Promise<void> {
    // Closing never fails, even after a crash: there is nothing left to release.
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

function writeInto(inode: Inode, data: Uint8Array, position: number): void {
  const end = position + data.length;
  if (end > inode.buffer.length) {
    const grown = new Uint8Array(Math.max(end, inode.buffer.length * 2));
    grown.set(inode.buffer.subarray(0, inode.size));
    inode.buffer = grown;
  }
  // Bytes between the old end and `position` read as zeros, as in a sparse file.
  if (position > inode.size) inode.buffer.fill(0, inode.size, position);
  inode.buffer.set(data, position);
  inode.size = Math.max(inode.size, end);
}

function normalize(path: string): string {
  const name = posix.normalize(path);
  return name.length > 1 && name.endsWith('/') ? name.slice(0, -1) : name;
}

function fsError(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

/** Writes a small file atomically: temp file, fsync, rename, fsync of the directory. */
export function writeFileDurably(path: string, contents: string): void {
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, 'w', 0o600);
  try {
    writeSync(fd, contents);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  const directory = openSync(posix.dirname(path), 'r');
  try {
    fsyncSync(directory);
  } finally {
    closeSync(directory);
  }
}
