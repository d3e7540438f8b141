import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BTree, BTREE_NODE_WIDTH_MAX, Editor } from '../lib/btree.js';
import { mulberry32, shuffled } from './support.js';

// The differential test replays from its seed: BTREE_SEED=<n> runs that one seed, BTREE_OPS=<n>
// changes the operations per seed (a soak: BTREE_SEEDS=500 BTREE_OPS=20000).
const SEED_COUNT = Number(process.env['BTREE_SEEDS'] ?? 20);
const OPS_PER_SEED = Number(process.env['BTREE_OPS'] ?? 2000);
const SEEDS = process.env['BTREE_SEED'] !== undefined ? [Number(process.env['BTREE_SEED'])] : Array.from({ length: SEED_COUNT }, (_, index) => 1000 + index);
/** Ops between full comparisons against the model (each op checks its own result). */
const FULL_CHECK_EVERY_OPS = 25;
/** Published snapshots the differential test keeps re-checking. */
const SNAPSHOTS_KEPT = 4;
/** Entries compared from the start of an entries(from) or values(from) walk. */
const WALK_COMPARE_ENTRIES = 40;

function contents<V>(tree: BTree<V>): Array<[string, V]> {
  return [...tree.entries()];
}

/** A BTree built under one editor from keys, each mapped to its index. */
function treeOf(keys: readonly string[]): BTree<number> {
  const editor = new Editor();
  let tree = BTree.empty<number>();
  keys.forEach((key, index) => {
    tree = tree.set(key, index, editor);
  });
  return tree;
}

function paddedKeys(count: number, prefix = 'k'): string[] {
  return Array.from({ length: count }, (_, index) => `${prefix}${String(index).padStart(8, '0')}`);
}

/** The naive oracle: a Map for lookups and a sorted key array for order. */
class Model {
  readonly map = new Map<string, number>();
  readonly sorted: string[] = [];

  set(key: string, value: number): void {
    if (!this.map.has(key)) this.sorted.splice(this.lowerIndex(key), 0, key);
    this.map.set(key, value);
  }

  delete(key: string): void {
    if (!this.map.delete(key)) return;
    this.sorted.splice(this.lowerIndex(key), 1);
  }

  lowerIndex(key: string): number {
    let low = 0;
    let high = this.sorted.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.sorted[middle]! < key) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  entriesFrom(from: string | undefined, limit = Infinity): Array<[string, number]> {
    const start = from === undefined ? 0 : this.lowerIndex(from);
    return this.sorted.slice(start, start + limit).map((key) => [key, this.map.get(key)!]);
  }

  withPrefix(prefix: string): Array<[string, number]> {
    const result: Array<[string, number]> = [];
    for (let index = this.lowerIndex(prefix); index < this.sorted.length && this.sorted[index]!.startsWith(prefix); index++) {
      result.push([this.sorted[index]!, this.map.get(this.sorted[index]!)!]);
    }
    return result;
  }

  clone(): Model {
    const copy = new Model();
    for (const key of this.sorted) {
      copy.sorted.push(key);
      copy.map.set(key, this.map.get(key)!);
    }
    return copy;
  }
}

/** deepEqual, fast on long arrays: compares pairwise and shows deepEqual's diff only around
 * the first difference. */
function assertSameEntries<T>(actual: readonly T[], expected: readonly T[], what: string): void {
  const length = Math.max(actual.length, expected.length);
  for (let index = 0; index < length; index++) {
    const left = actual[index];
    const right = expected[index];
    const isSame = Array.isArray(left) && Array.isArray(right) ? left[0] === right[0] && Object.is(left[1], right[1]) : Object.is(left, right);
    if (!isSame) {
      assert.deepEqual(actual.slice(Math.max(0, index - 2), index + 3), expected.slice(Math.max(0, index - 2), index + 3), `${what}: first difference at ${index} of ${actual.length} (expected ${expected.length})`);
      assert.fail(`${what}: differs at ${index}`);
    }
  }
}

function take<T>(iterator: Iterator<T>, count: number): T[] {
  const result: T[] = [];
  for (let step = 0; step < count; step++) {
    const next = iterator.next();
    if (next.done === true) break;
    result.push(next.value);
  }
  return result;
}

interface Snapshot {
  readonly tree: BTree<number>;
  readonly model: Model;
}

/** One seeded run of random edits and queries, compared with the Model as it goes. */
class DifferentialRun {
  private readonly random: () => number;
  private tree = BTree.empty<number>();
  private model = new Model();
  private editor = new Editor();
  /** Whether this.tree was made under this.editor, so further edits must return it itself. */
  private isTreeOwned = false;
  private readonly snapshots: Snapshot[] = [];
  private appendCounter = 0;
  private valueCounter = 0;

  constructor(seed: number) {
    this.random = mulberry32(seed);
  }

  run(ops: number): void {
    for (let op = 0; op < ops; op++) {
      this.step();
      assert.equal(this.tree.size, this.model.map.size, 'size');
      if (op % FULL_CHECK_EVERY_OPS === FULL_CHECK_EVERY_OPS - 1) this.fullCheck();
    }
    this.fullCheck();
  }

  private step(): void {
    const roll = this.random();
    if (roll < 0.3) this.set(this.randomKey());
    else if (roll < 0.45) this.delete(this.random() < 0.7 ? this.existingKey() : this.randomKey());
    else if (roll < 0.55) this.checkPoint(this.randomKey());
    else if (roll < 0.65) this.checkPrefix(this.randomPrefix());
    else if (roll < 0.75) this.checkWalk(this.random() < 0.1 ? undefined : this.randomKey());
    else if (roll < 0.8) this.setSameValue();
    else if (roll < 0.85) this.bulkInsert();
    else if (roll < 0.89) this.bulkDelete();
    else if (roll < 0.95) this.publish();
    else this.rollback();
  }

  /** Short keys over a four-letter alphabet with "\x00" and a non-ASCII letter, so keys and
   * prefixes collide; "" is among them. */
  private randomKey(): string {
    const alphabet = ['a', 'b', '\x00', '\u00e9'];
    const length = Math.floor(this.random() * 5);
    let key = '';
    for (let index = 0; index < length; index++) key += alphabet[Math.floor(this.random() * alphabet.length)];
    return key;
  }

  private randomPrefix(): string {
    return this.randomKey().slice(0, 1 + Math.floor(this.random() * 3));
  }

  private existingKey(): string {
    const sorted = this.model.sorted;
    return sorted.length === 0 ? this.randomKey() : sorted[Math.floor(this.random() * sorted.length)]!;
  }

  private set(key: string): void {
    const value = this.valueCounter++;
    const next = this.tree.set(key, value, this.editor);
    this.adopt(next);
    this.model.set(key, value);
    assert.equal(this.tree.get(key), value, `get after set ${JSON.stringify(key)}`);
  }

  private delete(key: string): void {
    const isPresent = this.model.map.has(key);
    const next = this.tree.delete(key, this.editor);
    if (!isPresent) assert.equal(next, this.tree, 'delete of an absent key returns the same tree');
    else this.adopt(next);
    this.model.delete(key);
    assert.equal(this.tree.has(key), false, `has after delete ${JSON.stringify(key)}`);
  }

  /** Setting a key to the value it already has changes nothing and returns the same tree. */
  private setSameValue(): void {
    if (this.model.map.size === 0) return;
    const key = this.existingKey();
    const next = this.tree.set(key, this.model.map.get(key)!, new Editor());
    assert.equal(next, this.tree, 'set to the same value returns the same tree');
  }

  /** Records an edit's result; under an editor that already made this tree it must be the tree. */
  private adopt(next: BTree<number>): void {
    if (this.isTreeOwned) assert.equal(next, this.tree, 'an edit under the same editor changes the tree in place');
    this.tree = next;
    this.isTreeOwned = true;
  }

  /** Runs of keys under one random prefix: ascending (the restore path), past every key (the
   * right-spine split), or shuffled. */
  private bulkInsert(): void {
    const count = 50 + Math.floor(this.random() * 400);
    const kind = this.random();
    const prefix = kind < 0.3 ? `\uffff${String(this.appendCounter++).padStart(4, '0')}/` : `${this.randomKey()}/`;
    let keys = paddedKeys(count, prefix).map((key, index) => (kind < 0.3 ? key : `${prefix}${String(index * 7).padStart(5, '0')}`));
    if (kind > 0.65) keys = shuffled(keys, this.random);
    for (const key of keys) this.set(key);
  }

  /** Deletes every key with a random prefix, or a contiguous run: empties whole nodes. */
  private bulkDelete(): void {
    let keys: string[];
    if (this.random() < 0.5) {
      keys = this.model.withPrefix(this.random() < 0.05 ? '' : this.randomPrefix()).map(([key]) => key);
    } else {
      const start = this.model.lowerIndex(this.existingKey());
      keys = this.model.sorted.slice(start, start + Math.floor(this.random() * 300));
    }
    if (this.random() < 0.5) keys.reverse();
    for (const key of keys) this.delete(key);
  }

  /** Ends the batch: the tree becomes a snapshot, and the next edits use a new editor. */
  private publish(): void {
    this.snapshots.push({ tree: this.tree, model: this.model.clone() });
    if (this.snapshots.length > SNAPSHOTS_KEPT) this.snapshots.shift();
    this.editor = new Editor();
    this.isTreeOwned = false;
  }

  /** Aborts the batch: go back to the newest snapshot and edit it under a new editor. */
  private rollback(): void {
    const snapshot = this.snapshots[this.snapshots.length - 1];
    if (snapshot === undefined) return;
    this.tree = snapshot.tree;
    this.model = snapshot.model.clone();
    this.editor = new Editor();
    this.isTreeOwned = false;
  }

  private checkPoint(key: string): void {
    assert.equal(this.tree.get(key), this.model.map.get(key), `get ${JSON.stringify(key)}`);
    assert.equal(this.tree.has(key), this.model.map.has(key), `has ${JSON.stringify(key)}`);
    assert.deepEqual(this.tree.lowerBound(key), this.model.entriesFrom(key, 1)[0], `lowerBound ${JSON.stringify(key)}`);
  }

  private checkPrefix(prefix: string): void {
    const expected = this.model.withPrefix(prefix);
    assertSameEntries([...this.tree.entriesWithPrefix(prefix)], expected, `entriesWithPrefix ${JSON.stringify(prefix)}`);
    assertSameEntries([...this.tree.valuesWithPrefix(prefix)], expected.map(([, value]) => value), `valuesWithPrefix ${JSON.stringify(prefix)}`);
  }

  private checkWalk(from: string | undefined): void {
    const expected = this.model.entriesFrom(from, WALK_COMPARE_ENTRIES);
    assert.deepEqual(take(this.tree.entries(from), WALK_COMPARE_ENTRIES), expected, `entries from ${JSON.stringify(from)}`);
    assert.deepEqual(take(this.tree.values(from), WALK_COMPARE_ENTRIES), expected.map(([, value]) => value), `values from ${JSON.stringify(from)}`);
  }

  /** Structure and full contents of the tree and of every snapshot still held. */
  private fullCheck(): void {
    this.tree.checkInvariants();
    assertSameEntries(contents(this.tree), this.model.entriesFrom(undefined), 'full contents');
    for (const snapshot of this.snapshots) {
      snapshot.tree.checkInvariants();
      assertSameEntries(contents(snapshot.tree), snapshot.model.entriesFrom(undefined), 'a published snapshot changed');
    }
  }
}

describe('btree matches a sorted-array model under random operations', () => {
  for (const seed of SEEDS) {
    test(`SEED=${seed}, ${OPS_PER_SEED} ops`, () => {
      try {
        new DifferentialRun(seed).run(OPS_PER_SEED);
      } catch (error) {
        const replay = `BTREE_SEED=${seed} node --import tsx --test test/btree.test.ts`;
        throw new Error(`SEED=${seed} (replay: ${replay}): ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
    });
  }
});

describe('btree basics', () => {
  test('an empty tree has no entries', () => {
    const tree = BTree.empty<string>();
    assert.equal(tree.size, 0);
    assert.equal(tree.get(''), undefined);
    assert.equal(tree.has(''), false);
    assert.equal(tree.lowerBound(''), undefined);
    assert.deepEqual([...tree.entries()], []);
    assert.deepEqual([...tree.values('a')], []);
    assert.deepEqual([...tree.entriesWithPrefix('')], []);
    assert.equal(tree.delete('a', new Editor()), tree);
    tree.checkInvariants();
  });

  test('keys order by UTF-16 code unit, with "" and "\\x00" as ordinary keys', () => {
    const keys = ['b', '', 'a\x00', 'a', '\x00', 'a\x00\x00', '\uffff', '\u00e9', 'B', 'a\x01'];
    const tree = treeOf(keys);
    assert.deepEqual(
      [...tree.entries()].map(([key]) => key),
      keys.slice().sort((left, right) => (left < right ? -1 : left > right ? 1 : 0)),
    );
    assert.equal(tree.get(''), 1);
    assert.equal(tree.get('\x00'), 4);
    assert.deepEqual([...tree.entriesWithPrefix('a\x00')].map(([key]) => key), ['a\x00', 'a\x00\x00']);
    assert.deepEqual(tree.lowerBound('a\x00\x00\x00'), ['a\x01', 9]);
    assert.equal(tree.entriesWithPrefix('').next().done, false, 'prefix "" matches every key');
  });

  test('a value of undefined is stored and reported by has', () => {
    const tree = BTree.empty<undefined>().set('x', undefined, new Editor());
    assert.equal(tree.size, 1);
    assert.equal(tree.has('x'), true);
    assert.deepEqual([...tree.entries()], [['x', undefined]]);
  });

  test('values compare with Object.is: -0 replaces +0, NaN does not replace NaN', () => {
    const editor = new Editor();
    const zero = BTree.empty<number>().set('z', 0, editor).set('n', NaN, editor);
    const other = new Editor();
    assert.notEqual(zero.set('z', -0, other), zero);
    assert.ok(Object.is(zero.set('z', -0, other).get('z'), -0));
    assert.equal(zero.set('n', NaN, other), zero);
  });

  test('lowerBound finds the next leaf after deletes leave stale separators', () => {
    const keys = paddedKeys(5000);
    let tree = treeOf(keys);
    const editor = new Editor();
    // Remove every key ending in 0..4, leaving separators that name deleted keys.
    for (const key of keys) if (Number(key.slice(-1)) < 5) tree = tree.delete(key, editor);
    tree.checkInvariants();
    for (let index = 0; index < keys.length; index++) {
      const expected = keys.slice(index).find((key) => Number(key.slice(-1)) >= 5);
      assert.equal(tree.lowerBound(keys[index]!)?.[0], expected);
    }
  });
});

describe('btree persistence', () => {
  test('snapshots between batches under different editors keep their contents', () => {
    const random = mulberry32(7);
    const keys = shuffled(paddedKeys(3000), random);
    const snapshots: Array<{ tree: BTree<number>; expected: Array<[string, number]> }> = [];
    let tree = BTree.empty<number>();
    for (let batch = 0; batch < 10; batch++) {
      const editor = new Editor();
      for (let index = 0; index < 600; index++) {
        const key = keys[Math.floor(random() * keys.length)]!;
        tree = random() < 0.7 ? tree.set(key, batch * 1000 + index, editor) : tree.delete(key, editor);
      }
      snapshots.push({ tree, expected: contents(tree) });
      for (const snapshot of snapshots) {
        snapshot.tree.checkInvariants();
        assert.deepEqual(contents(snapshot.tree), snapshot.expected);
      }
    }
  });

  test('edits under the same editor return the same tree value; another editor copies', () => {
    const published = treeOf(paddedKeys(1000));
    const before = contents(published);
    const editor = new Editor();
    const first = published.set('new', 1, editor);
    assert.notEqual(first, published, 'the first edit under a new editor copies');
    assert.equal(first.set('new', 2, editor), first, 'a replace under the same editor is in place');
    assert.equal(first.set('newer', 3, editor), first, 'an insert under the same editor is in place');
    assert.equal(first.delete(paddedKeys(1)[0]!, editor), first, 'a delete under the same editor is in place');
    assert.equal(first.size, 1001);
    assert.deepEqual(contents(published), before, 'the published tree did not change');
    const forked = published.set('fork', 9, new Editor());
    assert.notEqual(forked, published);
    assert.equal(forked.has('new'), false, 'a fork of the published tree does not see the other batch');
    assert.deepEqual(contents(published), before);
  });

  test('one set under a fresh editor leaves the base tree as it was', () => {
    const base = treeOf(paddedKeys(20_000));
    const next = base.set('k00000000x', 1, new Editor());
    assert.equal(base.size, 20_000);
    assert.equal(next.size, 20_001);
    assert.equal(base.has('k00000000x'), false);
    next.checkInvariants();
    base.checkInvariants();
  });
});

describe('btree iterators over snapshots', () => {
  test('iterators started on a snapshot continue unchanged after edits under a new editor', () => {
    const keys = paddedKeys(5000);
    const snapshot = treeOf(keys);
    const expected = contents(snapshot);
    const entries = snapshot.entries();
    const values = snapshot.values(keys[100]);
    const prefixed = snapshot.entriesWithPrefix('k00001');
    const seen = take(entries, 1234);
    const seenValues = take(values, 10);
    const seenPrefixed = take(prefixed, 7);

    const editor = new Editor();
    let edited = snapshot;
    for (let index = 0; index < keys.length; index += 2) edited = edited.delete(keys[index]!, editor);
    for (let index = 0; index < 3000; index++) edited = edited.set(`k00001${index}`, -index, editor);
    for (let index = 1; index < keys.length; index += 2) edited = edited.delete(keys[index]!, editor);
    edited.checkInvariants();

    assert.deepEqual([...seen, ...entries], expected);
    assert.deepEqual([...seenValues, ...values], expected.slice(100).map(([, value]) => value));
    assert.deepEqual([...seenPrefixed, ...prefixed], expected.filter(([key]) => key.startsWith('k00001')));
    assert.deepEqual(contents(snapshot), expected);
  });

  test('a finished iterator stays finished', () => {
    const iterator = treeOf(['a']).entries();
    assert.deepEqual(iterator.next(), { done: false, value: ['a', 0] });
    assert.equal(iterator.next().done, true);
    assert.equal(iterator.next().done, true);
  });
});

describe('btree shape', () => {
  test('an ascending fill of 100k keys is fast and leaves the leaves nearly full', () => {
    const keys = paddedKeys(100_000);
    const started = performance.now();
    const tree = treeOf(keys);
    const elapsedMs = performance.now() - started;
    const stats = tree.checkInvariants();
    assert.equal(tree.size, keys.length);
    assert.ok(stats.leafFillRatio > 0.98, `leaf fill ${stats.leafFillRatio} after an ascending fill`);
    // Generous: about 30 ms here; a copy per insert would be seconds.
    assert.ok(elapsedMs < 2000, `100k ascending inserts took ${elapsedMs} ms`);
  });

  test('an ascending fill with one editor per insert also leaves the leaves nearly full', () => {
    let tree = BTree.empty<number>();
    const keys = paddedKeys(20_000);
    keys.forEach((key, index) => {
      tree = tree.set(key, index, new Editor());
    });
    assert.ok(tree.checkInvariants().leafFillRatio > 0.98);
  });

  test('a descending fill and random fills keep every invariant', () => {
    const keys = paddedKeys(20_000);
    const descending = treeOf(keys.slice().reverse());
    assert.ok(descending.checkInvariants().leafFillRatio >= 0.5);
    const random = treeOf(shuffled(keys, mulberry32(3)));
    assert.ok(random.checkInvariants().leafFillRatio >= 0.5);
  });

  test('deleting every key, in ascending, descending and random order, shrinks the tree back to a leaf', () => {
    const keys = paddedKeys(20_000);
    const orders = [keys, keys.slice().reverse(), shuffled(keys, mulberry32(11))];
    for (const order of orders) {
      let tree = treeOf(shuffled(keys, mulberry32(5)));
      const editor = new Editor();
      order.forEach((key, index) => {
        tree = tree.delete(key, editor);
        if (index % 997 === 0) tree.checkInvariants();
      });
      const stats = tree.checkInvariants();
      assert.equal(tree.size, 0);
      assert.equal(stats.height, 1);
      assert.equal(stats.leafCount, 1);
    }
  });

  test('height stays logarithmic', () => {
    const stats = treeOf(shuffled(paddedKeys(50_000), mulberry32(9))).checkInvariants();
    // 50k keys at fan-out >= 16 need at most 1 + ceil(log16(50k)) levels; at 64 it is 3.
    assert.ok(stats.height <= 1 + Math.ceil(Math.log(50_000) / Math.log(16)), `height ${stats.height}`);
    assert.ok(stats.leafCount * BTREE_NODE_WIDTH_MAX >= 50_000);
  });
});
