import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CHANGED_KEYS_TRACKED_MAX,
  compoundIndex,
  conditionalIndex,
  MemDb,
  multiStringIndex,
  stringIndex,
  WATCH_SET_SIZE_MAX,
  WatchSet,
  type DbSchema,
  type TableSchema,
} from '../lib/memdb.js';
import { mulberry32 } from './support.js';

interface Item {
  readonly id: string;
  readonly group: string;
  readonly name: string;
  readonly tags: readonly string[];
  readonly isActive: boolean;
  readonly version: number;
}

const itemsTable: TableSchema<Item> = {
  name: 'items',
  indexes: [
    stringIndex('id', (i) => i.id, { isUnique: true }),
    stringIndex('group', (i) => i.group, { isLowercase: true, allowMissing: true }),
    compoundIndex('group_name', [(i) => i.group, (i) => i.name], { isLowercase: true }),
    multiStringIndex('tags', (i) => i.tags),
    conditionalIndex('active', (i) => i.isActive),
  ],
};
const otherTable: TableSchema<{ readonly id: string }> = { name: 'other', indexes: [stringIndex('id', (o) => o.id, { isUnique: true })] };
const SCHEMA: DbSchema = { tables: [itemsTable, otherTable] };

function item(id: string, overrides: Partial<Item> = {}): Item {
  return { id, group: 'g', name: id, tags: [], isActive: true, version: 0, ...overrides };
}

function insertAll(db: MemDb, items: readonly Item[]): void {
  const txn = db.writeTxn();
  for (const it of items) txn.insert('items', it);
  txn.commit();
}

function ids(values: Iterable<Item>): string[] {
  return [...values].map((value) => value.id);
}

describe('transactions', () => {
  test('a read transaction is a snapshot: later commits do not change what it sees', () => {
    const db = new MemDb(SCHEMA);
    insertAll(db, [item('a'), item('b')]);
    const before = db.readTxn();
    const iterator = before.all<Item>('items');
    assert.equal(iterator.next().value?.id, 'a');
    const txn = db.writeTxn();
    txn.insert('items', item('c'));
    txn.delete('items', item('b'));
    txn.insert('items', item('a', { version: 9 }));
    txn.commit();
    assert.deepEqual(ids(iterator), ['b']);
    assert.deepEqual(ids(before.all<Item>('items')), ['a', 'b']);
    assert.equal(before.first<Item>('items', 'id', 'a')?.version, 0);
    assert.deepEqual(ids(db.readTxn().all<Item>('items')), ['a', 'c']);
    assert.equal(db.readTxn().first<Item>('items', 'id', 'a')?.version, 9);
  });

  test('a write transaction reads its own writes; others see nothing until commit', () => {
    const db = new MemDb(SCHEMA);
    const txn = db.writeTxn();
    txn.insert('items', item('a'));
    assert.equal(txn.first<Item>('items', 'id', 'a')?.id, 'a');
    assert.equal(db.readTxn().first('items', 'id', 'a'), undefined);
    txn.commit();
    assert.equal(db.readTxn().first<Item>('items', 'id', 'a')?.id, 'a');
  });

  test('abort drops every change', () => {
    const db = new MemDb(SCHEMA);
    insertAll(db, [item('a')]);
    const txn = db.writeTxn();
    txn.insert('items', item('b'));
    txn.delete('items', item('a'));
    txn.abort();
    assert.deepEqual(ids(db.readTxn().all<Item>('items')), ['a']);
    assert.equal(db.sequence, 1);
  });

  test('only one write transaction at a time', () => {
    const db = new MemDb(SCHEMA);
    const txn = db.writeTxn();
    assert.throws(() => db.writeTxn(), /only one write transaction/);
    txn.abort();
    db.writeTxn().commit();
  });

  test('a committed transaction cannot be written again', () => {
    const db = new MemDb(SCHEMA);
    const txn = db.writeTxn();
    txn.commit();
    assert.throws(() => txn.insert('items', item('a')), /already committed/);
  });

  test('unique secondary indexes refuse a second holder', () => {
    const schema: DbSchema = { tables: [{ name: 'u', indexes: [stringIndex('id', (o: { id: string; email: string }) => o.id, { isUnique: true }), stringIndex('email', (o: { id: string; email: string }) => o.email, { isUnique: true })] }] };
    const db = new MemDb(schema);
    const txn = db.writeTxn();
    txn.insert('u', { id: '1', email: 'a@x' });
    txn.insert('u', { id: '1', email: 'a@x' });
    assert.throws(() => txn.insert('u', { id: '2', email: 'a@x' }), /unique index u.email/);
    txn.abort();
  });

  test('restore replaces everything on commit and nothing on abort', () => {
    const db = new MemDb(SCHEMA);
    insertAll(db, [item('a'), item('b')]);
    const failed = db.restoreTxn();
    failed.insert('items', item('z'));
    failed.abort();
    assert.deepEqual(ids(db.readTxn().all<Item>('items')), ['a', 'b']);
    const restore = db.restoreTxn();
    restore.insert('items', item('z'));
    restore.commit();
    assert.deepEqual(ids(db.readTxn().all<Item>('items')), ['z']);
  });
});

describe('indexes', () => {
  const db = new MemDb(SCHEMA);
  insertAll(db, [
    item('1', { group: 'Web', name: 'a', tags: ['v1', 'primary'] }),
    item('2', { group: 'web', name: 'b', tags: ['v2'], isActive: false }),
    item('3', { group: 'web2', name: 'a', tags: ['v1', 'v1'] }),
    item('4', { group: '', name: 'c' }),
  ]);
  const txn = db.readTxn();

  test('exact lookups on a non-unique index do not match longer values', () => {
    assert.deepEqual(ids(txn.get<Item>('items', 'group', 'web')), ['1', '2']);
    assert.equal(txn.first<Item>('items', 'group', 'WEB')?.id, '1');
  });

  test('prefix lookups match longer values', () => {
    assert.deepEqual(ids(txn.getPrefix<Item>('items', 'group', 'we')), ['1', '2', '3']);
  });

  test('an empty string field is missing from an allowMissing index', () => {
    assert.deepEqual(ids(txn.getPrefix<Item>('items', 'group')), ['1', '2', '3']);
  });

  test('compound indexes take all fields for exact lookups and fewer for prefixes', () => {
    assert.deepEqual(ids(txn.get<Item>('items', 'group_name', 'web', 'a')), ['1']);
    assert.deepEqual(ids(txn.getPrefix<Item>('items', 'group_name', 'web')), ['1', '2', '3']);
    assert.deepEqual(ids(txn.getPrefix<Item>('items', 'group_name', 'web', '')), ['1', '2']);
  });

  test('multi-valued indexes hold each distinct value once', () => {
    assert.deepEqual(ids(txn.get<Item>('items', 'tags', 'v1')), ['1', '3']);
    assert.deepEqual(ids(txn.get<Item>('items', 'tags', 'primary')), ['1']);
  });

  test('conditional indexes split by the predicate', () => {
    assert.deepEqual(ids(txn.get<Item>('items', 'active', false)), ['2']);
    assert.deepEqual(ids(txn.get<Item>('items', 'active', true)), ['1', '3', '4']);
  });

  test('lower bound iterates from the first key at or after the value', () => {
    assert.deepEqual(ids(txn.lowerBound<Item>('items', 'id', '2')), ['2', '3', '4']);
  });

  test('count and unknown names', () => {
    assert.equal(txn.count('items'), 4);
    assert.throws(() => txn.first('nope', 'id', 'x'), /unknown table/);
    assert.throws(() => txn.first('items', 'nope', 'x'), /unknown index/);
  });

  test('deletePrefix removes every match', () => {
    const local = new MemDb(SCHEMA);
    insertAll(local, [item('a1'), item('a2'), item('b1')]);
    const write = local.writeTxn();
    assert.equal(write.deletePrefix('items', 'id', 'a'), 2);
    write.commit();
    assert.deepEqual(ids(local.readTxn().all<Item>('items')), ['b1']);
  });
});

describe('model-based: random operations against a naive model', () => {
  const seeds = process.env['MEMDB_SEED'] ? [Number(process.env['MEMDB_SEED'])] : Array.from({ length: 40 }, (_, i) => i + 1);
  const groups = ['a', 'A', 'ab', 'b', ''];
  const tags = ['x', 'y', 'xy'];

  for (const seed of seeds) {
    test(`seed ${seed}`, () => {
      const random = mulberry32(seed);
      const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)] as T;
      const db = new MemDb(SCHEMA);
      let model = new Map<string, Item>();
      const snapshots: { txn: ReturnType<MemDb['readTxn']>; model: Map<string, Item> }[] = [];
      for (let step = 0; step < 400; step++) {
        const txn = db.writeTxn();
        const next = new Map(model);
        const operations = 1 + Math.floor(random() * 3);
        for (let o = 0; o < operations; o++) {
          const roll = random();
          const id = `k${Math.floor(random() * 30)}`;
          if (roll < 0.6) {
            const value = item(id, { group: pick(groups), name: pick(['n1', 'n2']), tags: [pick(tags), pick(tags)], isActive: random() < 0.5, version: step });
            txn.insert('items', value);
            next.set(id, value);
          } else if (roll < 0.9) {
            assert.equal(txn.delete('items', item(id)), next.delete(id));
          } else {
            const prefix = `k${Math.floor(random() * 3)}`;
            const expected = [...next.keys()].filter((key) => key.startsWith(prefix));
            assert.equal(txn.deletePrefix('items', 'id', prefix), expected.length);
            for (const key of expected) next.delete(key);
          }
        }
        if (random() < 0.1) {
          txn.abort();
        } else {
          txn.commit();
          model = next;
        }
        if (random() < 0.05) snapshots.push({ txn: db.readTxn(), model });
        if (step % 10 === 0) compare(db.readTxn(), model, `SEED=${seed} step=${step}`);
      }
      for (const snapshot of snapshots) compare(snapshot.txn, snapshot.model, `SEED=${seed} snapshot`);
    });
  }

  function compare(txn: ReturnType<MemDb['readTxn']>, model: Map<string, Item>, where: string): void {
    const byId = [...model.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    assert.deepEqual([...txn.all<Item>('items')], byId, where);
    assert.equal(txn.count('items'), model.size, where);
    for (const group of ['a', 'ab', 'b']) {
      const expected = byId.filter((i) => i.group.toLowerCase() === group).map((i) => i.id);
      assert.deepEqual(ids(txn.get<Item>('items', 'group', group)), expected, `${where} group=${group}`);
      const prefixed = byId.filter((i) => i.group !== '' && i.group.toLowerCase().startsWith(group)).sort((x, y) => compareKeys(x.group.toLowerCase(), y.group.toLowerCase()) || (x.id < y.id ? -1 : 1));
      assert.deepEqual(ids(txn.getPrefix<Item>('items', 'group', group)), prefixed.map((i) => i.id), `${where} group prefix=${group}`);
    }
    for (const tag of tags) {
      assert.deepEqual(ids(txn.get<Item>('items', 'tags', tag)), byId.filter((i) => i.tags.includes(tag)).map((i) => i.id), `${where} tag=${tag}`);
    }
    assert.deepEqual(ids(txn.get<Item>('items', 'active', true)), byId.filter((i) => i.isActive).map((i) => i.id), where);
    for (const id of ['k0', 'k5', 'k29', 'missing']) assert.deepEqual(txn.first('items', 'id', id), model.get(id), `${where} id=${id}`);
  }

  /** Index order: "a\0" sorts before "ab\0", as the encoded keys do. */
  function compareKeys(a: string, b: string): number {
    const x = `${a}\x00`;
    const y = `${b}\x00`;
    return x < y ? -1 : x > y ? 1 : 0;
  }
});

describe('watch sets', () => {
  function watched(db: MemDb, read: (txn: ReturnType<MemDb['readTxn']>) => void): { fired: () => number; cancel: () => void; ws: WatchSet } {
    const ws = new WatchSet();
    read(db.readTxn(ws));
    let count = 0;
    const cancel = db.watch(ws, () => count++);
    return { fired: () => count, cancel, ws };
  }

  test('a write to one key wakes its watchers and no others', () => {
    const db = new MemDb(SCHEMA);
    insertAll(db, [item('a'), item('b')]);
    const onA = watched(db, (txn) => txn.first('items', 'id', 'a'));
    const onB = watched(db, (txn) => txn.first('items', 'id', 'b'));
    insertAll(db, [item('a', { version: 1 })]);
    assert.equal(onA.fired(), 1);
    assert.equal(onB.fired(), 0);
  });

  test('a missing key is watched too: inserting it wakes the watcher', () => {
    const db = new MemDb(SCHEMA);
    const onMissing = watched(db, (txn) => txn.first('items', 'id', 'later'));
    insertAll(db, [item('other')]);
    assert.equal(onMissing.fired(), 0);
    insertAll(db, [item('later')]);
    assert.equal(onMissing.fired(), 1);
  });

  test('a prefix watch wakes for keys under the prefix, including deletes', () => {
    const db = new MemDb(SCHEMA);
    insertAll(db, [item('app/1'), item('other')]);
    const onPrefix = watched(db, (txn) => [...txn.getPrefix('items', 'id', 'app/')]);
    insertAll(db, [item('zzz')]);
    assert.equal(onPrefix.fired(), 0);
    const txn = db.writeTxn();
    txn.delete('items', item('app/1'));
    txn.commit();
    assert.equal(onPrefix.fired(), 1);
  });

  test('secondary index watches fire when a matching object changes', () => {
    const db = new MemDb(SCHEMA);
    insertAll(db, [item('1', { group: 'web' }), item('2', { group: 'db' })]);
    const onWeb = watched(db, (txn) => [...txn.get('items', 'group', 'web')]);
    insertAll(db, [item('2', { group: 'db', version: 2 })]);
    assert.equal(onWeb.fired(), 0);
    insertAll(db, [item('2', { group: 'web' })]);
    assert.equal(onWeb.fired(), 1);
  });

  test('a whole-table read wakes on any change to that table only', () => {
    const db = new MemDb(SCHEMA);
    const onAll = watched(db, (txn) => [...txn.all('items')]);
    const txn = db.writeTxn();
    txn.insert('other', { id: 'x' });
    txn.commit();
    assert.equal(onAll.fired(), 0);
    insertAll(db, [item('a')]);
    assert.equal(onAll.fired(), 1);
  });

  test('a watcher fires once and then unregisters; cancel unregisters', () => {
    const db = new MemDb(SCHEMA);
    const once = watched(db, (txn) => txn.first('items', 'id', 'a'));
    const cancelled = watched(db, (txn) => txn.first('items', 'id', 'a'));
    cancelled.cancel();
    insertAll(db, [item('a')]);
    insertAll(db, [item('a', { version: 2 })]);
    assert.equal(once.fired(), 1);
    assert.equal(cancelled.fired(), 0);
    assert.equal(db.watcherCount(), 0);
  });

  test('many watchers of one key: each fires once, a cancelled one never, and the key leaves the registry', () => {
    const db = new MemDb(SCHEMA);
    insertAll(db, [item('hot'), item('cold')]);
    const watchers = Array.from({ length: 2_000 }, () => watched(db, (txn) => txn.first('items', 'id', 'hot')));
    const onCold = watched(db, (txn) => txn.first('items', 'id', 'cold'));
    for (let i = 0; i < watchers.length; i += 2) watchers[i]!.cancel();
    assert.equal(db.watcherCount(), 1_001);
    insertAll(db, [item('hot', { version: 1 })]);
    watchers.forEach((watcher, i) => assert.equal(watcher.fired(), i % 2, `watcher ${i}`));
    assert.equal(onCold.fired(), 0);
    assert.equal(db.watcherCount(), 1, 'only the other key is still watched');
    insertAll(db, [item('hot', { version: 2 })]);
    assert.ok(watchers.every((watcher, i) => watcher.fired() === i % 2), 'a fired watcher never fires again');
    onCold.cancel();
    onCold.cancel();
    assert.equal(db.watcherCount(), 0, 'cancel is idempotent');
  });

  test('a change between the read and the watch fires at once', async () => {
    const db = new MemDb(SCHEMA);
    const ws = new WatchSet();
    db.readTxn(ws).first('items', 'id', 'a');
    insertAll(db, [item('unrelated')]);
    let count = 0;
    db.watch(ws, () => count++);
    await Promise.resolve();
    assert.equal(count, 1);
  });

  test('an aborted write wakes nobody', () => {
    const db = new MemDb(SCHEMA);
    const onA = watched(db, (txn) => txn.first('items', 'id', 'a'));
    const txn = db.writeTxn();
    txn.insert('items', item('a'));
    txn.abort();
    assert.equal(onA.fired(), 0);
  });

  test('past WATCH_SET_SIZE_MAX entries a watch set falls back to whole tables, never missing a change', () => {
    const db = new MemDb(SCHEMA);
    const big = watched(db, (txn) => {
      for (let i = 0; i <= WATCH_SET_SIZE_MAX; i++) txn.first('items', 'id', `key${i}`);
    });
    assert.ok(big.ws.size <= WATCH_SET_SIZE_MAX);
    assert.deepEqual(big.ws.list(), [{ kind: 'table', table: 'items' }]);
    insertAll(db, [item('anything')]);
    assert.equal(big.fired(), 1);
  });

  test('a transaction touching more keys than it tracks wakes every watcher of the table', () => {
    const db = new MemDb(SCHEMA);
    const onLast = watched(db, (txn) => txn.first('items', 'id', 'never-written'));
    const many = Array.from({ length: CHANGED_KEYS_TRACKED_MAX + 1 }, (_, i) => item(`bulk${i}`));
    insertAll(db, many);
    assert.equal(onLast.fired(), 1);
  });

  test('a restore wakes every watcher', () => {
    const db = new MemDb(SCHEMA);
    insertAll(db, [item('a')]);
    const onA = watched(db, (txn) => txn.first('items', 'id', 'a'));
    const onOther = watched(db, (txn) => [...txn.all('other')]);
    const restore = db.restoreTxn();
    restore.insert('items', item('a'));
    restore.commit();
    assert.equal(onA.fired(), 1);
    assert.equal(onOther.fired(), 1);
  });
});
