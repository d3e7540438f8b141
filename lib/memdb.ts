// An in-memory database of tables with indexes, transactions and watch sets.
//
// Consul keeps its whole cluster state in memory (hashicorp/go-memdb) and changes it only by
// applying committed Raft commands; HTTP reads and blocking queries read it at a point in time.
// This module is that database:
// - Tables are declared by a schema (schema as data, as go-memdb does). Every table has a
//   unique `id` index first, and any number of secondary indexes: unique or not, single field,
//   compound, multi-valued (tags), conditional, case-insensitive, prefix-searchable.
// - Each index is a persistent B+tree (lib/btree.ts) from encoded index keys to objects. A read
//   transaction holds the roots current when it began: a consistent snapshot in O(1) that no
//   later write changes. One write transaction at a time builds new roots (mutating in place the
//   nodes it created itself) and publishes them all at once on commit; abort drops them.
// - A read transaction given a WatchSet records exactly what it looked at: an exact index key, a
//   prefix, or a whole table. A commit wakes only the watchers whose data changed. A watch set
//   that grows past WATCH_SET_SIZE_MAX falls back to whole-table watches, and a transaction that
//   changes more than CHANGED_KEYS_TRACKED_MAX keys of a table wakes every watcher of that table:
//   coarser wake-ups, never a missed one.
//
// Stored objects are treated as immutable: a write replaces an object, never edits it, so
// snapshots stay exact. Callers build a new object for every change.
//
// Key encoding: a non-unique string index value ends with "\x00", so an exact lookup of "web"
// never matches "web2" while a prefix lookup of "we" matches both; compound keys are their parts
// each so terminated. A non-unique index stores `<index key><id key>` so entries stay distinct.
// A unique single-field index needs no terminator: its keys are the values themselves.
//
// Not here: persistence (the FSM snapshots this state), Consul's semantics (lib/state.ts).

import assert from 'node:assert/strict';
import { BTree, Editor } from './btree.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** A value given to an index lookup. Booleans serve conditional indexes. */
export type IndexArg = string | boolean;

/** How one index derives its keys from an object and from lookup arguments. */
export interface IndexSchema<T> {
  readonly name: string;
  readonly isUnique: boolean;
  /** Whether an object may have no key in this index (it is then absent from the index). */
  readonly allowMissing: boolean;
  /** The encoded keys of an object: one, several (multi-valued), or none. */
  keysOf(object: T): readonly string[];
  /** The encoded key that an exact lookup with these arguments matches. */
  exactKey(args: readonly IndexArg[]): string;
  /** The encoded prefix for a prefix lookup: the last argument may be a partial value. */
  prefixKey(args: readonly IndexArg[]): string;
}

export interface TableSchema<T> {
  readonly name: string;
  /** The first index must be the unique, single-valued `id` index. */
  readonly indexes: readonly IndexSchema<T>[];
}

export interface DbSchema {
  readonly tables: readonly TableSchema<any>[];
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Watch entries one query may hold before it falls back to whole-table watches (go-memdb: 2048+). */
export const WATCH_SET_SIZE_MAX = 8192;
/** Changed keys a write transaction tracks per table before it wakes the whole table. */
export const CHANGED_KEYS_TRACKED_MAX = 16384;

// ---------------------------------------------------------------------------------------------
// Index constructors

const TERMINATOR = '\x00';

export interface StringIndexOptions {
  readonly isUnique?: boolean;
  /** Compare case-insensitively (Consul does for node and service names). */
  readonly isLowercase?: boolean;
  /** An empty value means "not indexed" instead of an error. */
  readonly allowMissing?: boolean;
}

/**
 * An index on one string field; an empty string counts as missing. A unique index stores the
 * value itself as its key: with no id appended there is nothing to separate, the order and
 * prefix matches are the same as with a terminator, and the key string is the record's own
 * (no copy per entry, which matters at a million KV keys).
 */
export function stringIndex<T>(name: string, field: (object: T) => string, options: StringIndexOptions = {}): IndexSchema<T> {
  const normalize = options.isLowercase ? (text: string) => text.toLowerCase() : (text: string) => text;
  const terminator = options.isUnique ? '' : TERMINATOR;
  return {
    name,
    isUnique: options.isUnique ?? false,
    allowMissing: options.allowMissing ?? false,
    keysOf: (object) => {
      const value = field(object);
      return value === '' ? [] : [normalize(value) + terminator];
    },
    exactKey: (args) => normalize(stringArg(name, args, 0)) + terminator,
    prefixKey: (args) => (args.length === 0 ? '' : normalize(stringArg(name, args, 0))),
  };
}

/**
 * An index on several string fields together (services by node and service ID). Lookups may give
 * fewer arguments than fields for a prefix lookup. An empty field is a value like any other
 * (a node-level check has ServiceID ""), so every object is indexed.
 */
export function compoundIndex<T>(name: string, fields: readonly ((object: T) => string)[], options: StringIndexOptions = {}): IndexSchema<T> {
  const normalize = options.isLowercase ? (text: string) => text.toLowerCase() : (text: string) => text;
  const encode = (args: readonly IndexArg[], count: number): string => {
    let key = '';
    for (let i = 0; i < count; i++) key += normalize(stringArg(name, args, i)) + TERMINATOR;
    return key;
  };
  return {
    name,
    isUnique: options.isUnique ?? false,
    allowMissing: options.allowMissing ?? false,
    keysOf: (object) => {
      let key = '';
      for (const field of fields) key += normalize(field(object)) + TERMINATOR;
      return [key];
    },
    exactKey: (args) => {
      assert.equal(args.length, fields.length, `index ${name} needs ${fields.length} arguments`);
      return encode(args, fields.length);
    },
    prefixKey: (args) => {
      assert.ok(args.length <= fields.length, `index ${name} takes at most ${fields.length} arguments`);
      if (args.length === 0) return '';
      return encode(args, args.length - 1) + normalize(stringArg(name, args, args.length - 1));
    },
  };
}

/** A multi-valued index: one entry per distinct value (service tags, node meta pairs). */
export function multiStringIndex<T>(name: string, field: (object: T) => readonly string[], options: StringIndexOptions = {}): IndexSchema<T> {
  const normalize = options.isLowercase ? (text: string) => text.toLowerCase() : (text: string) => text;
  return {
    name,
    isUnique: false,
    allowMissing: true,
    keysOf: (object) => [...new Set(field(object).filter((value) => value !== '').map((value) => normalize(value) + TERMINATOR))],
    exactKey: (args) => normalize(stringArg(name, args, 0)) + TERMINATOR,
    prefixKey: (args) => (args.length === 0 ? '' : normalize(stringArg(name, args, 0))),
  };
}

/** A boolean index: objects split by a predicate (go-memdb's ConditionalIndex). */
export function conditionalIndex<T>(name: string, predicate: (object: T) => boolean): IndexSchema<T> {
  const encode = (value: boolean): string => (value ? '\x01' : TERMINATOR);
  return {
    name,
    isUnique: false,
    allowMissing: false,
    keysOf: (object) => [encode(predicate(object))],
    exactKey: (args) => {
      const value = args[0];
      assert.equal(typeof value, 'boolean', `index ${name} takes a boolean`);
      return encode(value === true);
    },
    prefixKey: () => {
      throw new Error(`index ${name} does not support prefix lookups`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Watch sets

/** What one read looked at. */
type WatchTarget =
  | { readonly kind: 'table'; readonly table: string }
  | { readonly kind: 'exact' | 'prefix'; readonly table: string; readonly index: string; readonly key: string };

/**
 * The things a query read, to be woken when any of them changes. Filled by a ReadTxn created
 * with it; handed to MemDb.watch. Bounded: past WATCH_SET_SIZE_MAX entries it keeps whole-table
 * watches instead (coarser, never missing a change).
 */
export class WatchSet {
  private readonly targets = new Map<string, WatchTarget>();
  private readonly coarseTables = new Set<string>();
  /** The commit sequence of the snapshot that was read; changes after it must wake the watch. */
  sequence = -1;

  /** Records interest in a whole table. */
  addTable(table: string): void {
    this.coarseTables.add(table);
  }

  /** Records interest in an exact index key or an index prefix. */
  addKey(kind: 'exact' | 'prefix', table: string, index: string, key: string): void {
    if (this.coarseTables.has(table)) return;
    if (this.targets.size >= WATCH_SET_SIZE_MAX) {
      this.coarsen();
      this.coarseTables.add(table);
      return;
    }
    this.targets.set(`${kind}\x00${table}\x00${index}\x00${key}`, { kind, table, index, key });
  }

  /** Number of entries held (whole-table watches count one each). */
  get size(): number {
    return this.targets.size + this.coarseTables.size;
  }

  /** Every target, whole-table watches replacing the keys of their tables. */
  list(): WatchTarget[] {
    const result: WatchTarget[] = [...this.coarseTables].map((table) => ({ kind: 'table', table }));
    for (const target of this.targets.values()) if (!this.coarseTables.has(target.table)) result.push(target);
    return result;
  }

  private coarsen(): void {
    for (const target of this.targets.values()) this.coarseTables.add(target.table);
    this.targets.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// The database

/** Published state: one B+tree per index per table. Never changed once published. */
interface DbRoot {
  /** Invariant: trees[t][i] is index i of table t, in schema order. */
  readonly trees: readonly (readonly BTree<unknown>[])[];
  readonly sequence: number;
}

interface Watcher {
  readonly callback: () => void;
  isDone: boolean;
  /**
   * The groups this watcher is in, to leave them all once it fires or is cancelled. Holding the
   * shared groups (not one record per registration) keeps a parked query's watcher to two
   * small objects: thousands of queries parked on one key share one group.
   */
  readonly groups: WatchGroup[];
}

/** The watchers of one index key or prefix, or of a whole table. */
interface WatchGroup {
  /** Invariant: only watchers that are not done; a group in a map is never empty. */
  readonly watchers: Set<Watcher>;
  /** The map holding this group under `key`, so an emptied group is dropped; undefined for a table. */
  readonly owner: Map<string, WatchGroup> | undefined;
  readonly key: string;
}

interface TableWatchers {
  readonly whole: WatchGroup;
  /** index name -> key -> watchers */
  readonly exact: Map<string, Map<string, WatchGroup>>;
  readonly prefix: Map<string, Map<string, WatchGroup>>;
}

/** Resolved names for fast lookups. */
interface TableInfo {
  readonly number: number;
  readonly schema: TableSchema<unknown>;
  readonly indexNumbers: ReadonlyMap<string, number>;
}

export class MemDb {
  private readonly tableInfo = new Map<string, TableInfo>();
  private root: DbRoot;
  private isWriteOpen = false;
  private readonly watchers = new Map<string, TableWatchers>();

  constructor(readonly schema: DbSchema) {
    schema.tables.forEach((table, number) => {
      assert.ok(!this.tableInfo.has(table.name), `duplicate table ${table.name}`);
      const first = table.indexes[0];
      assert.ok(first && first.name === 'id' && first.isUnique && !first.allowMissing, `table ${table.name} needs a unique id index first`);
      const indexNumbers = new Map(table.indexes.map((index, i) => [index.name, i] as const));
      assert.equal(indexNumbers.size, table.indexes.length, `duplicate index in table ${table.name}`);
      this.tableInfo.set(table.name, { number, schema: table as TableSchema<unknown>, indexNumbers });
      this.watchers.set(table.name, { whole: { watchers: new Set(), owner: undefined, key: '' }, exact: new Map(), prefix: new Map() });
    });
    this.root = emptyRoot(schema, 0);
  }

  /** The commit sequence: how many transactions have been published. */
  get sequence(): number {
    return this.root.sequence;
  }

  /** A consistent snapshot of the current state; `watchSet` records what its reads touch. */
  readTxn(watchSet?: WatchSet): ReadTxn {
    if (watchSet) watchSet.sequence = this.root.sequence;
    return new ReadTxn(this.tableInfo, this.root, watchSet);
  }

  /** Opens the one write transaction. Throws if another is open. */
  writeTxn(): WriteTxn {
    return this.openWrite(this.root);
  }

  /**
   * A write transaction that starts from an empty database: committing it replaces everything
   * (snapshot restore). Aborting leaves the current state untouched.
   */
  restoreTxn(): WriteTxn {
    const txn = this.openWrite(emptyRoot(this.schema, this.root.sequence));
    txn.changeAllTables();
    return txn;
  }

  /**
   * Calls `callback` once, when anything the watch set recorded changes (or at once, on the
   * next microtask, if something already changed since the snapshot it recorded). Returns a
   * function that cancels the watch. The caller owns timeouts.
   */
  watch(watchSet: WatchSet, callback: () => void): () => void {
    const watcher: Watcher = { callback, isDone: false, groups: [] };
    if (watchSet.sequence !== this.root.sequence) {
      queueMicrotask(() => this.fire(watcher));
      return () => this.cancel(watcher);
    }
    for (const target of watchSet.list()) this.register(watcher, target);
    return () => this.cancel(watcher);
  }

  /** Number of watchers registered (for tests and metrics). */
  watcherCount(): number {
    const all = new Set<Watcher>();
    for (const table of this.watchers.values()) {
      for (const watcher of table.whole.watchers) all.add(watcher);
      for (const byKey of [...table.exact.values(), ...table.prefix.values()]) for (const group of byKey.values()) for (const watcher of group.watchers) all.add(watcher);
    }
    return all.size;
  }

  private openWrite(base: DbRoot): WriteTxn {
    assert.ok(!this.isWriteOpen, 'only one write transaction may be open at a time');
    this.isWriteOpen = true;
    return new WriteTxn(this.tableInfo, base, {
      publish: (root, changes) => this.publish(root, changes),
      close: () => {
        this.isWriteOpen = false;
      },
    });
  }

  private publish(trees: BTree<unknown>[][], changes: ChangeLog): void {
    this.root = { trees, sequence: this.root.sequence + 1 };
    const toFire = new Set<Watcher>();
    for (const [table, changed] of changes) this.collectWatchers(table, changed, toFire);
    for (const watcher of toFire) this.fire(watcher);
  }

  private collectWatchers(table: string, changed: TableChanges, into: Set<Watcher>): void {
    const watchers = this.watchers.get(table);
    assert.ok(watchers);
    for (const watcher of watchers.whole.watchers) into.add(watcher);
    if (changed === 'all') {
      for (const byKey of [...watchers.exact.values(), ...watchers.prefix.values()]) for (const group of byKey.values()) for (const watcher of group.watchers) into.add(watcher);
      return;
    }
    for (const [index, keys] of changed) {
      const exact = watchers.exact.get(index);
      const prefix = watchers.prefix.get(index);
      for (const key of keys) {
        const group = exact?.get(key);
        if (group) for (const watcher of group.watchers) into.add(watcher);
        if (prefix && prefix.size > 0) collectPrefixWatchers(prefix, key, into);
      }
    }
  }

  private register(watcher: Watcher, target: WatchTarget): void {
    const table = this.watchers.get(target.table);
    assert.ok(table, `unknown table ${target.table}`);
    if (target.kind === 'table') {
      table.whole.watchers.add(watcher);
      watcher.groups.push(table.whole);
      return;
    }
    const byIndex = target.kind === 'exact' ? table.exact : table.prefix;
    let byKey = byIndex.get(target.index);
    if (!byKey) byIndex.set(target.index, (byKey = new Map()));
    let group = byKey.get(target.key);
    if (!group) byKey.set(target.key, (group = { watchers: new Set(), owner: byKey, key: target.key }));
    group.watchers.add(watcher);
    watcher.groups.push(group);
  }

  private fire(watcher: Watcher): void {
    if (watcher.isDone) return;
    this.cancel(watcher);
    watcher.callback();
  }

  /** O(groups of this watcher): each leave is a Set delete. */
  private cancel(watcher: Watcher): void {
    watcher.isDone = true;
    for (const group of watcher.groups) {
      group.watchers.delete(watcher);
      // Drop emptied groups so the registry holds only live watches.
      if (group.watchers.size === 0 && group.owner?.get(group.key) === group) group.owner.delete(group.key);
    }
    watcher.groups.length = 0;
  }
}

/** Watchers of any prefix of `key`: scan the shorter of the key's prefixes or the registrations. */
function collectPrefixWatchers(prefixes: Map<string, WatchGroup>, key: string, into: Set<Watcher>): void {
  if (prefixes.size < key.length + 1) {
    for (const [prefix, group] of prefixes) if (key.startsWith(prefix)) for (const watcher of group.watchers) into.add(watcher);
    return;
  }
  for (let length = 0; length <= key.length; length++) {
    const group = prefixes.get(key.slice(0, length));
    if (group) for (const watcher of group.watchers) into.add(watcher);
  }
}

function emptyRoot(schema: DbSchema, sequence: number): DbRoot {
  return { trees: schema.tables.map((table) => table.indexes.map(() => BTree.empty<unknown>())), sequence };
}

// ---------------------------------------------------------------------------------------------
// Transactions

/** Reads at one point in time. Iterators stay valid and unchanged whatever is written later. */
export class ReadTxn {
  constructor(
    protected readonly tableInfo: ReadonlyMap<string, TableInfo>,
    protected root: DbRoot,
    private readonly watchSet: WatchSet | undefined,
  ) {}

  /** The first object whose index key equals the arguments, or undefined. */
  first<T>(table: string, index: string, ...args: IndexArg[]): T | undefined {
    const { tree, schema } = this.index(table, index);
    const key = schema.exactKey(args);
    this.watchSet?.addKey('exact', table, index, key);
    if (schema.isUnique) return tree.get(key) as T | undefined;
    for (const value of tree.valuesWithPrefix(key)) return value as T;
    return undefined;
  }

  /**
   * Like first(), but records no watch: for bookkeeping reads whose changes should not wake a
   * query by themselves (the index table, read to compute X-Consul-Index).
   */
  peek<T>(table: string, index: string, ...args: IndexArg[]): T | undefined {
    const { tree, schema } = this.index(table, index);
    const key = schema.exactKey(args);
    if (schema.isUnique) return tree.get(key) as T | undefined;
    for (const value of tree.valuesWithPrefix(key)) return value as T;
    return undefined;
  }

  /** Every object whose index key equals the arguments, in index order. */
  get<T>(table: string, index: string, ...args: IndexArg[]): IterableIterator<T> {
    const { tree, schema } = this.index(table, index);
    const key = schema.exactKey(args);
    this.watchSet?.addKey('exact', table, index, key);
    if (schema.isUnique) {
      const value = tree.get(key);
      return (value === undefined ? [] : [value]).values() as IterableIterator<T>;
    }
    return tree.valuesWithPrefix(key) as IterableIterator<T>;
  }

  /** Every object whose index key starts with the (partial) arguments, in index order. */
  getPrefix<T>(table: string, index: string, ...args: IndexArg[]): IterableIterator<T> {
    const { tree, schema } = this.index(table, index);
    const prefix = schema.prefixKey(args);
    this.watchSet?.addKey('prefix', table, index, prefix);
    return tree.valuesWithPrefix(prefix) as IterableIterator<T>;
  }

  /** Objects from the first index key >= the arguments onward, in index order. Watches the table. */
  lowerBound<T>(table: string, index: string, ...args: IndexArg[]): IterableIterator<T> {
    const { tree, schema } = this.index(table, index);
    this.watchSet?.addTable(table);
    return tree.values(schema.prefixKey(args)) as IterableIterator<T>;
  }

  /** Every object of the table, in id order. Watches the whole table. */
  all<T>(table: string): IterableIterator<T> {
    this.watchSet?.addTable(table);
    return this.index(table, 'id').tree.values() as IterableIterator<T>;
  }

  /** Number of objects in the table. */
  count(table: string): number {
    return this.index(table, 'id').tree.size;
  }

  protected index(table: string, index: string): { tree: BTree<unknown>; schema: IndexSchema<unknown>; tableNumber: number; indexNumber: number } {
    const info = this.tableInfo.get(table);
    assert.ok(info, `unknown table ${table}`);
    const indexNumber = info.indexNumbers.get(index);
    assert.ok(indexNumber !== undefined, `unknown index ${table}.${index}`);
    const tree = this.root.trees[info.number]?.[indexNumber];
    const schema = info.schema.indexes[indexNumber];
    assert.ok(tree && schema);
    return { tree, schema, tableNumber: info.number, indexNumber };
  }
}

/** Per table: index name -> changed index keys, or 'all' when too many to track. */
type TableChanges = Map<string, Set<string>> | 'all';
type ChangeLog = Map<string, TableChanges>;

interface WriteHooks {
  publish(trees: BTree<unknown>[][], changes: ChangeLog): void;
  close(): void;
}

/**
 * The one writer. Reads see its own writes. Nothing is visible to others until commit().
 * Iterating while inserting or deleting in the same transaction is not supported: collect
 * first, then write.
 */
export class WriteTxn extends ReadTxn {
  private readonly editor = new Editor();
  private readonly trees: BTree<unknown>[][];
  private readonly changes: ChangeLog = new Map();
  private isOpen = true;

  constructor(
    tableInfo: ReadonlyMap<string, TableInfo>,
    base: DbRoot,
    private readonly hooks: WriteHooks,
  ) {
    super(tableInfo, base, undefined);
    this.trees = base.trees.map((indexes) => [...indexes]);
    this.root = { trees: this.trees, sequence: base.sequence };
  }

  /** Inserts or replaces (by id) an object. Throws if a unique index would hold two objects. */
  insert<T>(table: string, object: T): void {
    this.assertOpen();
    const info = this.info(table);
    const trees = this.trees[info.number];
    assert.ok(trees);
    const indexes = info.schema.indexes;
    const idKey = this.idKeyOf(info, object);
    const existing = trees[0]?.get(idKey);
    for (let i = 0; i < indexes.length; i++) {
      const index = indexes[i];
      let tree = trees[i];
      assert.ok(index && tree);
      const newKeys = index.keysOf(object);
      assert.ok(newKeys.length > 0 || index.allowMissing, `object in ${table} has no key for index ${index.name}`);
      const oldKeys = existing === undefined ? NO_KEYS : index.keysOf(existing);
      // Entries whose key stays are replaced by set(); only keys that went away are deleted.
      for (const key of oldKeys) if (!newKeys.includes(key)) tree = tree.delete(storageKey(index, key, idKey), this.editor);
      for (const key of newKeys) {
        if (index.isUnique && i > 0 && !oldKeys.includes(key)) {
          assert.ok(tree.get(key) === undefined, `unique index ${table}.${index.name} already holds ${JSON.stringify(key)}`);
        }
        tree = tree.set(storageKey(index, key, idKey), object, this.editor);
      }
      trees[i] = tree;
      this.recordChange(table, index.name, oldKeys, newKeys);
    }
  }

  /** Deletes an object (matched by its id). Returns whether it existed. */
  delete<T>(table: string, object: T): boolean {
    this.assertOpen();
    const info = this.info(table);
    const trees = this.trees[info.number];
    assert.ok(trees);
    const idKey = this.idKeyOf(info, object);
    const existing = trees[0]?.get(idKey);
    if (existing === undefined) return false;
    info.schema.indexes.forEach((index, i) => {
      const oldKeys = index.keysOf(existing);
      let tree = trees[i];
      assert.ok(tree);
      for (const key of oldKeys) tree = tree.delete(storageKey(index, key, idKey), this.editor);
      trees[i] = tree;
      this.recordChange(table, index.name, oldKeys, []);
    });
    return true;
  }

  /** Deletes every object whose index key starts with the arguments. Returns how many. */
  deletePrefix(table: string, index: string, ...args: IndexArg[]): number {
    const victims = [...this.getPrefix(table, index, ...args)];
    for (const victim of victims) this.delete(table, victim);
    return victims.length;
  }

  /** Publishes every change at once and wakes the watchers of what changed. */
  commit(): void {
    this.assertOpen();
    this.isOpen = false;
    this.hooks.close();
    this.hooks.publish(this.trees, this.changes);
  }

  /** Drops every change. Safe after commit or a previous abort. */
  abort(): void {
    if (!this.isOpen) return;
    this.isOpen = false;
    this.hooks.close();
  }

  /** Marks every table as wholly changed (restore replaces everything). */
  changeAllTables(): void {
    for (const table of this.tableInfo.keys()) this.changes.set(table, 'all');
  }



  private recordChange(table: string, index: string, oldKeys: readonly string[], newKeys: readonly string[]): void {
    let changed = this.changes.get(table);
    if (changed === 'all') return;
    if (!changed) this.changes.set(table, (changed = new Map()));
    let keys = changed.get(index);
    if (!keys) changed.set(index, (keys = new Set()));
    for (const key of oldKeys) keys.add(key);
    for (const key of newKeys) keys.add(key);
    if (keys.size > CHANGED_KEYS_TRACKED_MAX) this.changes.set(table, 'all');
  }

  private info(table: string): TableInfo {
    const info = this.tableInfo.get(table);
    assert.ok(info, `unknown table ${table}`);
    return info;
  }

  private idKeyOf(info: TableInfo, object: unknown): string {
    const keys = info.schema.indexes[0]?.keysOf(object) ?? [];
    assert.equal(keys.length, 1, `object in ${info.schema.name} needs exactly one id`);
    return keys[0] ?? '';
  }

  private assertOpen(): void {
    assert.ok(this.isOpen, 'transaction is already committed or aborted');
  }
}

const NO_KEYS: readonly string[] = [];

/** Where an index keeps an object: its key, plus the id for non-unique indexes (keys stay distinct). */
function storageKey(index: IndexSchema<unknown>, key: string, idKey: string): string {
  return index.isUnique ? key : key + idKey;
}

function stringArg(index: string, args: readonly IndexArg[], position: number): string {
  const value = args[position];
  assert.equal(typeof value, 'string', `index ${index} argument ${position} must be a string`);
  return value as string;
}
