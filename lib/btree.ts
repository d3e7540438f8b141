// A persistent (copy-on-write) B+tree: a sorted map from string keys to values, the storage
// under the in-memory database (memdb). Readers keep the root they started with while a writer
// builds new roots, so a snapshot is O(1): taking one is holding a BTree value.
//
// Persistence. A BTree value never changes once the batch that made it is published. An edit
// copies the nodes on the path from the root to the leaf it touches and shares everything else
// with the old tree, as in go-memdb's immutable radix tree (hashicorp/go-immutable-radix).
//
// Transients. Every node records the Editor that created it. An edit under editor E copies a
// node only if node.editor !== E; nodes E already owns are changed in place, and so is the BTree
// value itself when E made it (set and delete then return `this`). A batch of a million inserts
// under one editor therefore copies each node once, not once per insert. This is the trick of
// Clojure's transients and immer's drafts. The contract that makes it safe: once the caller
// publishes a tree made under E, it never passes E again. Iterating a tree while editing that
// same tree under its own editor is not supported (the iterator may see the edits half done);
// iterators over published trees are unaffected by any later edit under another editor.
//
// Shape. Leaves hold parallel keys[]/values[] arrays, so an entry costs two array slots and no
// object of its own. Internal nodes hold children[] and children.length - 1 separator keys.
// There are no leaf sibling links: a link would force every copy of a leaf to copy its
// neighbours, and so the whole chain. Iterators keep the path from the root instead.
//
// Invariants (checked by BTree.checkInvariants):
// - keys are strictly increasing in each leaf and across leaves, in UTF-16 code unit order
//   (JS `<`); "" and "\x00" are ordinary keys;
// - in an internal node, separator keys[i - 1] <= every key under children[i] < keys[i]. A
//   separator is not necessarily a key still in the tree (deletes leave it as a bound);
// - every leaf is at the same depth; the root is a leaf (possibly empty) or has >= 2 children;
// - a node's width (entries of a leaf, children of an internal node) is at most
//   BTREE_NODE_WIDTH_MAX, and at least BTREE_NODE_WIDTH_MIN (a quarter) except on the right
//   spine, the path of last children from the root, where a leaf needs one entry and an internal
//   node two children. The exemption lets an ascending fill (snapshot restore) split the
//   rightmost node into a full left node and an almost empty right one, as SQLite's
//   balance_quick() does, so that it leaves every node but the spine full instead of half full.
//   Off the spine a node never splits unevenly, so the quarter bound holds there.
//
// Not here: per-node counts (no rank queries), range deletes, watch channels (memdb's job).

import assert from 'node:assert/strict';

/**
 * Identity token for one batch of edits. Nodes created under an editor may be mutated in place
 * by later edits under the same editor; once the batch is published, the caller stops using
 * that editor forever.
 */
export class Editor {
  /** Makes the class nominal, so that a plain `{}` cannot pose as an editor. */
  declare private readonly isEditor: true;
}

/** Shape statistics returned by checkInvariants, for tests and benchmarks. */
export interface BTreeStats {
  readonly height: number;
  readonly leafCount: number;
  readonly internalCount: number;
  /** Entries divided by the capacity of all leaves: 1 when every leaf is full. */
  readonly leafFillRatio: number;
}

/** Most entries in a leaf and most children of an internal node. 64 keeps a leaf's binary search
 * to six comparisons and a path copy to a few hundred bytes per level. */
export const BTREE_NODE_WIDTH_MAX = 64;
/** Fewest entries or children of a node off the right spine: a quarter of the capacity, so a
 * delete rebalances rarely and the height stays below log16(n) + 2. */
export const BTREE_NODE_WIDTH_MIN = BTREE_NODE_WIDTH_MAX / 4;
/** A tree taller than this is a bug: 16 levels with fan-out 16 hold far more than 2^53 keys. */
export const BTREE_HEIGHT_MAX = 16;

/** A persistent sorted map from strings to V; see the header comment for the editing contract. */
export class BTree<V> {
  /** Invariant: root holds exactly count entries and has the given height (a leaf root is 1). */
  private root: Node<V>;
  private count: number;
  private height: number;
  /** The editor that made this tree value; edits under it change this value in place. */
  private readonly editor: Editor;

  private constructor(root: Node<V>, count: number, height: number, editor: Editor) {
    this.root = root;
    this.count = count;
    this.height = height;
    this.editor = editor;
  }

  /** A new empty tree. No editor owns it, so the first edit under any editor copies. */
  static empty<V>(): BTree<V> {
    return new BTree<V>(new LeafNode<V>(NO_EDITOR, [], []), 0, 1, NO_EDITOR);
  }

  /** Number of keys. O(1). */
  get size(): number {
    return this.count;
  }

  /** The value stored under key, or undefined. */
  get(key: string): V | undefined {
    const leaf = findLeaf(this.root, key);
    const index = lowerBound(leaf.keys, key);
    return leaf.keys[index] === key ? leaf.values[index] : undefined;
  }

  /** Whether key is present (also when its value is undefined). */
  has(key: string): boolean {
    const leaf = findLeaf(this.root, key);
    return leaf.keys[lowerBound(leaf.keys, key)] === key;
  }

  /**
   * Returns the tree with key set to value (this tree is unchanged unless its nodes belong to
   * `editor`). Returns this tree itself when key already maps to value (Object.is).
   */
  set(key: string, value: V, editor: Editor): BTree<V> {
    insertAdded = false;
    insertAppended = false;
    let root = insert(this.root, key, value, editor, true);
    // Same root and no new key: nothing changed, or a value was replaced in a root this editor
    // owns, in which case it owns this tree value too (it made the root, so it made the value).
    if (root === this.root && !insertAdded) return this;
    // A root changed in place belongs to the editor, and so, then, does this tree value.
    assert(root !== this.root || this.editor === editor, 'a tree value shares its root only with its own editor');
    let height = this.height;
    if (width(root) > BTREE_NODE_WIDTH_MAX) {
      root = splitRoot(root, insertAppended, editor);
      height++;
      assert(height <= BTREE_HEIGHT_MAX, 'btree height over BTREE_HEIGHT_MAX');
    }
    return this.withRoot(root, this.count + (insertAdded ? 1 : 0), height, editor);
  }

  /** Returns the tree without key (same object if key absent). */
  delete(key: string, editor: Editor): BTree<V> {
    removeDone = false;
    let root = remove(this.root, key, editor, true);
    if (!removeDone) return this;
    let height = this.height;
    // A root left with one child adds a level and nothing else: its child becomes the root.
    while (!root.isLeaf && root.children.length === 1) {
      root = root.children[0]!;
      height--;
    }
    return this.withRoot(root, this.count - 1, height, editor);
  }

  /**
   * Entries in key order with key >= from (all entries if from is undefined). This and the other
   * iterators read the tree as it was when they started, whatever other editors do later; they
   * are not for a tree being edited under its own editor, which changes nodes in place.
   */
  entries(from?: string): IterableIterator<[string, V]> {
    return new EntryCursor(this.root, from, undefined);
  }

  /** Entries whose key starts with prefix, in key order. */
  entriesWithPrefix(prefix: string): IterableIterator<[string, V]> {
    return new EntryCursor(this.root, prefix, prefix);
  }

  /** Values only, in key order, from `from` (convenience for the hot path; avoid allocating tuples). */
  values(from?: string): IterableIterator<V> {
    return new ValueCursor(this.root, from, undefined);
  }

  /** Values whose key starts with prefix, in key order, without allocating a tuple per entry. */
  valuesWithPrefix(prefix: string): IterableIterator<V> {
    return new ValueCursor(this.root, prefix, prefix);
  }

  /** The first entry with key >= from, or undefined. Allocates only the returned tuple. */
  lowerBound(from: string): [string, V] | undefined {
    let node = this.root;
    // The leftmost subtree to the right of the path so far: where the answer is when no key in
    // the leaf we land in is >= from.
    let nextSubtree: Node<V> | undefined;
    while (!node.isLeaf) {
      const index = upperBound(node.keys, from);
      if (index + 1 < node.children.length) nextSubtree = node.children[index + 1];
      node = node.children[index]!;
    }
    let index = lowerBound(node.keys, from);
    if (index === node.keys.length) {
      if (nextSubtree === undefined) return undefined;
      node = leftmostLeaf(nextSubtree);
      index = 0;
    }
    return [node.keys[index]!, node.values[index] as V];
  }

  /**
   * Asserts every structural invariant listed in the header (order, separators, widths, equal
   * leaf depth, size and height bookkeeping) and returns shape statistics. O(n); for tests.
   */
  checkInvariants(): BTreeStats {
    const stats = { leafCount: 0, internalCount: 0, leafDepth: -1 };
    if (!this.root.isLeaf) assert(this.root.children.length >= 2, 'an internal root has at least two children');
    const counted = checkNode(this.root, undefined, undefined, 1, true, true, stats);
    assert.equal(counted, this.count, 'size matches the entries in the tree');
    assert.equal(stats.leafDepth, this.height, 'height matches the depth of the leaves');
    const capacity = stats.leafCount * BTREE_NODE_WIDTH_MAX;
    return {
      height: this.height,
      leafCount: stats.leafCount,
      internalCount: stats.internalCount,
      leafFillRatio: capacity === 0 ? 0 : counted / capacity,
    };
  }

  /** This tree value changed in place if `editor` made it, else a new value sharing the root. */
  private withRoot(root: Node<V>, count: number, height: number, editor: Editor): BTree<V> {
    if (this.editor !== editor) return new BTree(root, count, height, editor);
    this.root = root;
    this.count = count;
    this.height = height;
    return this;
  }
}

// ---------------------------------------------------------------------------------------------
// Nodes

/** Owner of nodes that no caller can hold an editor for: the empty tree's root. */
const NO_EDITOR = new Editor();

/** A leaf: parallel arrays, keys strictly increasing. Mutable only by its editor. */
class LeafNode<V> {
  readonly isLeaf = true;
  constructor(
    readonly editor: Editor,
    public keys: string[],
    public values: V[],
  ) {}
}

/** An internal node: keys.length === children.length - 1 separators. Mutable only by its editor. */
class InternalNode<V> {
  readonly isLeaf = false;
  constructor(
    readonly editor: Editor,
    public keys: string[],
    public children: Node<V>[],
  ) {}
}

type Node<V> = LeafNode<V> | InternalNode<V>;

/** ES2023's copying splice. Node 20 (V8 11.3) has it; the project's tsconfig lib is ES2022, so
 * it is typed here. It allocates the result at its exact length, where slice + splice would
 * grow the copy by half: path copies would then waste a third of their memory. */
interface CopyingArray<T> extends Array<T> {
  toSpliced(start: number, deleteCount: number, ...items: T[]): T[];
}
assert.equal(typeof (Array.prototype as CopyingArray<unknown>).toSpliced, 'function', 'Array.prototype.toSpliced needs Node 20+');

/** The module's insert and remove walk the tree recursively and report back through these,
 * instead of allocating a result object per call. Set only inside set() and delete(), which
 * are synchronous and call no user code. */
let insertAdded = false;
let insertAppended = false;
let removeDone = false;

/** Entries of a leaf or children of an internal node. */
function width<V>(node: Node<V>): number {
  return node.isLeaf ? node.keys.length : node.children.length;
}

/** The least width allowed for a non-root node, see the header's note on the right spine. */
function widthMin<V>(node: Node<V>, isSpine: boolean): number {
  if (!isSpine) return BTREE_NODE_WIDTH_MIN;
  return node.isLeaf ? 1 : 2;
}

/** Index of the first key >= key (keys.length if none). */
function lowerBound(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (keys[middle]! < key) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** Index of the first key > key: in an internal node, the child whose range holds key. */
function upperBound(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (key < keys[middle]!) high = middle;
    else low = middle + 1;
  }
  return low;
}

function findLeaf<V>(root: Node<V>, key: string): LeafNode<V> {
  let node = root;
  while (!node.isLeaf) node = node.children[upperBound(node.keys, key)]!;
  return node;
}

function leftmostLeaf<V>(root: Node<V>): LeafNode<V> {
  let node = root;
  while (!node.isLeaf) node = node.children[0]!;
  return node;
}

function ownLeaf<V>(leaf: LeafNode<V>, editor: Editor): LeafNode<V> {
  return leaf.editor === editor ? leaf : new LeafNode(editor, leaf.keys.slice(), leaf.values.slice());
}

function ownInternal<V>(node: InternalNode<V>, editor: Editor): InternalNode<V> {
  return node.editor === editor ? node : new InternalNode(editor, node.keys.slice(), node.children.slice());
}

function own<V>(node: Node<V>, editor: Editor): Node<V> {
  return node.isLeaf ? ownLeaf(node, editor) : ownInternal(node, editor);
}

// ---------------------------------------------------------------------------------------------
// Insert

/**
 * Sets key in the subtree and returns its root: `node` itself if unchanged or changed in place,
 * else an editor-owned copy. The result may hold one entry or child too many; the caller splits
 * it, so that no split result needs allocating here.
 */
function insert<V>(node: Node<V>, key: string, value: V, editor: Editor, isSpine: boolean): Node<V> {
  if (node.isLeaf) return insertIntoLeaf(node, key, value, editor, isSpine);
  const index = childIndexForInsert(node.keys, key);
  const child = node.children[index]!;
  const isChildSpine = isSpine && index === node.keys.length;
  const newChild = insert(child, key, value, editor, isChildSpine);
  if (newChild === child && width(child) <= BTREE_NODE_WIDTH_MAX) return node;
  const owned = ownInternal(node, editor);
  owned.children[index] = newChild;
  if (width(newChild) > BTREE_NODE_WIDTH_MAX) splitChild(owned, index, isChildSpine && insertAppended, editor);
  return owned;
}

function insertIntoLeaf<V>(leaf: LeafNode<V>, key: string, value: V, editor: Editor, isSpine: boolean): LeafNode<V> {
  const keys = leaf.keys;
  const count = keys.length;
  // Ascending fills append to the last leaf; one comparison settles that case.
  const index = count === 0 || keys[count - 1]! < key ? count : lowerBound(keys, key);
  if (index < count && keys[index] === key) {
    if (Object.is(leaf.values[index], value)) return leaf;
    const owned = ownLeaf(leaf, editor);
    owned.values[index] = value;
    return owned;
  }
  insertAdded = true;
  insertAppended = isSpine && index === count;
  if (leaf.editor !== editor) {
    // Copy and insert in one exact-size allocation each: most edits in production are single
    // writes under a fresh editor, and their copies are what long-lived trees are made of.
    return new LeafNode(editor, withInserted(keys, index, key), withInserted(leaf.values, index, value));
  }
  if (index === count) {
    keys.push(key);
    leaf.values.push(value);
  } else {
    keys.splice(index, 0, key);
    leaf.values.splice(index, 0, value);
  }
  return leaf;
}

/** upperBound, with a first check for the ascending-fill case (key past the last separator). */
function childIndexForInsert(keys: readonly string[], key: string): number {
  const count = keys.length;
  return count === 0 || !(key < keys[count - 1]!) ? count : upperBound(keys, key);
}

/**
 * Splits parent.children[index], which holds one entry or child too many, in two. Even halves,
 * except for a right-spine node that just took a key past every other: then the left half stays
 * full and the right keeps the spine's minimum (SQLite's balance_quick()).
 */
function splitChild<V>(parent: InternalNode<V>, index: number, isAppend: boolean, editor: Editor): void {
  const child = parent.children[index]!;
  assert(child.editor === editor, 'only a node edited under this editor can overflow');
  const total = width(child);
  const at = isAppend ? total - widthMin(child, true) : total - (total >> 1);
  let separator: string;
  let right: Node<V>;
  if (child.isLeaf) {
    right = new LeafNode(editor, child.keys.slice(at), child.values.slice(at));
    // slice rather than truncate: the left half keeps an exact-size array, not its grown one.
    child.keys = child.keys.slice(0, at);
    child.values = child.values.slice(0, at);
    separator = right.keys[0]!;
  } else {
    // The left half keeps children [0, at) and separators [0, at - 1); separator at - 1 moves up.
    right = new InternalNode(editor, child.keys.slice(at), child.children.slice(at));
    separator = child.keys[at - 1]!;
    child.keys = child.keys.slice(0, at - 1);
    child.children = child.children.slice(0, at);
  }
  parent.keys.splice(index, 0, separator);
  parent.children.splice(index + 1, 0, right);
}

/** A new root above an overflowing root, with the old root split under it. */
function splitRoot<V>(root: Node<V>, isAppend: boolean, editor: Editor): InternalNode<V> {
  const newRoot = new InternalNode<V>(editor, [], [root]);
  splitChild(newRoot, 0, isAppend, editor);
  return newRoot;
}

function withInserted<T>(items: T[], index: number, item: T): T[] {
  return (items as CopyingArray<T>).toSpliced(index, 0, item);
}

// ---------------------------------------------------------------------------------------------
// Delete

/**
 * Removes key from the subtree and returns its root (node itself if key is absent or the change
 * was in place). Sets removeDone when a key was removed. The result may be under its minimum
 * width; the caller rebalances it with a sibling.
 */
function remove<V>(node: Node<V>, key: string, editor: Editor, isSpine: boolean): Node<V> {
  if (node.isLeaf) return removeFromLeaf(node, key, editor);
  const index = upperBound(node.keys, key);
  const isChildSpine = isSpine && index === node.keys.length;
  const newChild = remove(node.children[index]!, key, editor, isChildSpine);
  if (!removeDone) return node;
  const owned = ownInternal(node, editor);
  owned.children[index] = newChild;
  if (width(newChild) < widthMin(newChild, isChildSpine)) rebalanceChild(owned, index, editor);
  return owned;
}

function removeFromLeaf<V>(leaf: LeafNode<V>, key: string, editor: Editor): LeafNode<V> {
  const index = lowerBound(leaf.keys, key);
  if (leaf.keys[index] !== key) return leaf;
  removeDone = true;
  if (leaf.editor !== editor) {
    return new LeafNode(editor, withRemoved(leaf.keys, index), withRemoved(leaf.values, index));
  }
  leaf.keys.splice(index, 1);
  leaf.values.splice(index, 1);
  return leaf;
}

/**
 * Restores the minimum width of parent.children[index] using its left sibling (its right one if
 * it is the first child): merge the two when they fit in one node, which also drops an empty
 * node, else share their entries evenly. Evenly rather than just enough, so the next delete
 * does not rebalance the same pair again.
 */
function rebalanceChild<V>(parent: InternalNode<V>, index: number, editor: Editor): void {
  const leftIndex = index > 0 ? index - 1 : index;
  const left = own(parent.children[leftIndex]!, editor);
  parent.children[leftIndex] = left;
  const right = parent.children[leftIndex + 1];
  assert(right !== undefined, 'a non-root node has a sibling');
  const separator = parent.keys[leftIndex]!;
  if (width(left) + width(right) <= BTREE_NODE_WIDTH_MAX) {
    mergeInto(left, right, separator);
    parent.keys.splice(leftIndex, 1);
    parent.children.splice(leftIndex + 1, 1);
    return;
  }
  const ownedRight = own(right, editor);
  parent.children[leftIndex + 1] = ownedRight;
  parent.keys[leftIndex] = left.isLeaf
    ? shareLeaves(left, ownedRight as LeafNode<V>)
    : shareInternals(left, ownedRight as InternalNode<V>, separator);
}

/** Appends right's contents to left (same kind of node); separator divides them. */
function mergeInto<V>(left: Node<V>, right: Node<V>, separator: string): void {
  if (left.isLeaf) {
    assert(right.isLeaf, 'siblings are at the same depth');
    left.keys.push(...right.keys);
    left.values.push(...right.values);
    return;
  }
  assert(!right.isLeaf, 'siblings are at the same depth');
  left.keys.push(separator, ...right.keys);
  left.children.push(...right.children);
}

/** Moves entries between two owned sibling leaves until they differ by at most one; returns
 * the new separator, right's first key. */
function shareLeaves<V>(left: LeafNode<V>, right: LeafNode<V>): string {
  const total = left.keys.length + right.keys.length;
  const leftCount = total >> 1;
  if (left.keys.length < leftCount) {
    const moved = leftCount - left.keys.length;
    left.keys.push(...right.keys.splice(0, moved));
    left.values.push(...right.values.splice(0, moved));
  } else {
    right.keys.unshift(...left.keys.splice(leftCount));
    right.values.unshift(...left.values.splice(leftCount));
  }
  return right.keys[0]!;
}

/** Moves children between two owned sibling internal nodes until they differ by at most one,
 * rotating separators through the parent's (`separator`); returns the new parent separator. */
function shareInternals<V>(left: InternalNode<V>, right: InternalNode<V>, separator: string): string {
  const total = left.children.length + right.children.length;
  const leftCount = total >> 1;
  if (left.children.length < leftCount) {
    const moved = leftCount - left.children.length;
    // Right's first `moved` children go left, with the old separator and moved - 1 of right's
    // keys between them; right's key at moved - 1 becomes the parent's separator.
    const movedKeys = right.keys.splice(0, moved);
    const newSeparator = movedKeys.pop()!;
    left.keys.push(separator, ...movedKeys);
    left.children.push(...right.children.splice(0, moved));
    return newSeparator;
  }
  // Left keeps leftCount children and leftCount - 1 keys; its key at leftCount - 1 moves up and
  // the rest go right, ahead of the old separator.
  const movedKeys = left.keys.splice(leftCount - 1);
  const newSeparator = movedKeys.shift()!;
  right.keys.unshift(...movedKeys, separator);
  right.children.unshift(...left.children.splice(leftCount));
  return newSeparator;
}

function withRemoved<T>(items: T[], index: number): T[] {
  return (items as CopyingArray<T>).toSpliced(index, 1);
}

// ---------------------------------------------------------------------------------------------
// Iteration

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * A position in a tree: the leaf, the index in it, and the path from the root with the child
 * index taken at each level. Holds nodes, never arrays detached from them, and published nodes
 * never change, so a cursor over a snapshot is unaffected by later edits under other editors.
 */
class Cursor<V> {
  /** The leaf under the cursor; undefined once the walk is over. */
  protected leaf: LeafNode<V> | undefined;
  /** Invariant: while leaf is defined, position < end <= leaf.keys.length. */
  protected position = 0;
  /** Where the walk leaves this leaf: its length, or the first key without the prefix (the
   * next leaf then has no key with it either, and the walk ends on entering it). */
  private end = 0;
  /** Invariant: ancestors[d].children[indexes[d]] is the node at depth d + 1 on the path. */
  private readonly ancestors: InternalNode<V>[] = [];
  private readonly indexes: number[] = [];

  /** Starts at the first key >= from (the first key if undefined); stops at the first key
   * without `prefix` when one is given. */
  constructor(
    root: Node<V>,
    from: string | undefined,
    private readonly prefix: string | undefined,
  ) {
    let node = root;
    while (!node.isLeaf) {
      const index = from === undefined ? 0 : upperBound(node.keys, from);
      this.ancestors.push(node);
      this.indexes.push(index);
      node = node.children[index]!;
    }
    const position = from === undefined ? 0 : lowerBound(node.keys, from);
    if (position < node.keys.length) this.enterLeaf(node, position);
    else this.nextLeaf();
  }

  /** Steps past the current entry. */
  protected advance(): void {
    if (++this.position >= this.end) this.nextLeaf();
  }

  /**
   * Puts the cursor on leaf at position and works out where the walk leaves it. The keys with
   * a prefix are one contiguous run starting at the prefix itself, so when the leaf's last key
   * has the prefix every key from position on has it too: one startsWith per leaf, not per key.
   */
  private enterLeaf(leaf: LeafNode<V>, position: number): void {
    const keys = leaf.keys;
    let end = keys.length;
    if (this.prefix !== undefined && !keys[end - 1]!.startsWith(this.prefix)) {
      end = firstWithoutPrefix(keys, position, this.prefix);
    }
    this.leaf = position < end ? leaf : undefined;
    this.position = position;
    this.end = end;
  }

  /** Moves to the first entry of the next leaf, or ends the walk (leaf undefined). Every leaf
   * but an empty root has an entry, so one step up and down always lands on one. */
  private nextLeaf(): void {
    for (let depth = this.ancestors.length - 1; depth >= 0; depth--) {
      const parent = this.ancestors[depth]!;
      const index = this.indexes[depth]! + 1;
      if (index >= parent.children.length) continue;
      this.indexes[depth] = index;
      let node = parent.children[index]!;
      for (let below = depth + 1; !node.isLeaf; below++) {
        this.ancestors[below] = node;
        this.indexes[below] = 0;
        node = node.children[0]!;
      }
      this.enterLeaf(node, 0);
      return;
    }
    this.leaf = undefined;
  }
}

/** The first index >= from whose key lacks prefix (keys.length if none), given that the keys
 * from `from` on that have it come first. */
function firstWithoutPrefix(keys: readonly string[], from: number, prefix: string): number {
  let low = from;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (keys[middle]!.startsWith(prefix)) low = middle + 1;
    else high = middle;
  }
  return low;
}

class EntryCursor<V> extends Cursor<V> implements IterableIterator<[string, V]> {
  next(): IteratorResult<[string, V], undefined> {
    const leaf = this.leaf;
    if (leaf === undefined) return DONE;
    const entry: [string, V] = [leaf.keys[this.position]!, leaf.values[this.position] as V];
    this.advance();
    return { done: false, value: entry };
  }

  [Symbol.iterator](): EntryCursor<V> {
    return this;
  }
}

class ValueCursor<V> extends Cursor<V> implements IterableIterator<V> {
  next(): IteratorResult<V, undefined> {
    const leaf = this.leaf;
    if (leaf === undefined) return DONE;
    const value = leaf.values[this.position] as V;
    this.advance();
    return { done: false, value };
  }

  [Symbol.iterator](): ValueCursor<V> {
    return this;
  }
}

// ---------------------------------------------------------------------------------------------
// Invariant checks

interface CheckStats {
  leafCount: number;
  internalCount: number;
  leafDepth: number;
}

/**
 * Asserts the invariants of the subtree whose keys must lie in [low, high) (undefined: open)
 * and returns its entry count.
 */
function checkNode<V>(
  node: Node<V>,
  low: string | undefined,
  high: string | undefined,
  depth: number,
  isSpine: boolean,
  isRoot: boolean,
  stats: CheckStats,
): number {
  assert(depth <= BTREE_HEIGHT_MAX, 'height within BTREE_HEIGHT_MAX');
  const nodeWidth = width(node);
  if (nodeWidth > BTREE_NODE_WIDTH_MAX) assert.fail(`width ${nodeWidth} over the maximum at depth ${depth}`);
  // Spelled out rather than calling widthMin, so that a wrong widthMin cannot agree with itself.
  const nodeWidthMin = isRoot ? 0 : !isSpine ? BTREE_NODE_WIDTH_MIN : node.isLeaf ? 1 : 2;
  if (nodeWidth < nodeWidthMin) {
    assert.fail(`width ${nodeWidth} under the minimum at depth ${depth}, spine=${isSpine}`);
  }
  assertKeysInRange(node.keys, low, high);
  if (node.isLeaf) {
    assert.equal(node.values.length, node.keys.length, 'a leaf has one value per key');
    if (stats.leafDepth === -1) stats.leafDepth = depth;
    assert.equal(depth, stats.leafDepth, 'every leaf is at the same depth');
    stats.leafCount++;
    return node.keys.length;
  }
  assert.equal(node.keys.length, node.children.length - 1, 'one separator between each pair of children');
  stats.internalCount++;
  let count = 0;
  for (let index = 0; index < node.children.length; index++) {
    const childLow = index === 0 ? low : node.keys[index - 1];
    const childHigh = index === node.keys.length ? high : node.keys[index];
    const isChildSpine = isSpine && index === node.keys.length;
    count += checkNode(node.children[index]!, childLow, childHigh, depth + 1, isChildSpine, false, stats);
  }
  return count;
}

/** Asserts keys strictly increase and lie in [low, high). */
function assertKeysInRange(keys: readonly string[], low: string | undefined, high: string | undefined): void {
  // Messages are built only on failure: this runs once per key.
  for (let index = 0; index < keys.length; index++) {
    const key = keys[index]!;
    if (index > 0 && !(keys[index - 1]! < key)) assert.fail(`keys out of order: ${JSON.stringify(keys[index - 1])} then ${JSON.stringify(key)}`);
    if (low !== undefined && !(low <= key)) assert.fail(`key ${JSON.stringify(key)} below its lower bound ${JSON.stringify(low)}`);
    if (high !== undefined && !(key < high)) assert.fail(`key ${JSON.stringify(key)} not below its upper bound ${JSON.stringify(high)}`);
  }
}
