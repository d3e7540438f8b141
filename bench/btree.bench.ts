// The persistent B+tree under memdb against a plain JS Map, in one process on one core: ops/s
// for an ascending bulk load (the snapshot-restore path), random gets, random sets each under a
// fresh editor (the one-write-per-raft-apply path, which copies a root-to-leaf path every time),
// and prefix scans; then heap bytes per entry for 1M entries with 20-byte keys. Ratios are
// btree / Map, so 0.5 means half Map's speed; the Map is the ceiling, not a competitor: it has
// no order, no snapshots and no prefix scan.
//
// Run: npm run bench -- btree (or node --expose-gc --import tsx bench/btree.bench.ts for
// forced GC from the command line; without the flag it is switched on at run time).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BTree, Editor } from '../lib/btree.js';
import { mulberry32, shuffled } from '../test/support.js';

const ENTRIES = 1_000_000;
const PERSISTENT_SETS = 200_000;
/** Keys per scanned prefix: the last two of sixteen digits vary. */
const PREFIX_SCAN_KEYS = 100;
const PREFIX_SCANS = 10_000;
/** Each timing is the best of this many runs, after the JIT has seen the code once. */
const RUNS = 3;

/** A 20-character key: "key/" and sixteen digits. A template literal this long would be a V8
 * cons string; the latin1 round trip makes it flat, as keys decoded from the wire or disk are. */
function keyOf(index: number): string {
  return Buffer.from(`key/${String(index).padStart(16, '0')}`, 'latin1').toString('latin1');
}

/** Sink for results, so the JIT cannot drop the work that produced them. */
let sink = 0;

/** Ops per second of the best of RUNS runs of `run` (which does `ops` operations); `setup`
 * runs before each, untimed. */
function opsPerSecond(ops: number, run: () => void, setup: () => void = () => {}): number {
  let bestMs = Infinity;
  for (let attempt = 0; attempt < RUNS; attempt++) {
    setup();
    const started = performance.now();
    run();
    bestMs = Math.min(bestMs, performance.now() - started);
  }
  return (ops / bestMs) * 1000;
}

/** A way to force a full GC, and how it was obtained, for the memory table's caption. */
function findGc(): { gc: (() => void) | undefined; method: string } {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed !== undefined) return { gc: exposed, method: 'forced full GC (node --expose-gc)' };
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    return { gc, method: 'forced full GC (--expose-gc set at run time with v8.setFlagsFromString)' };
  } catch (error) {
    return { gc: undefined, method: `process.memoryUsage deltas without forced GC, noisy (${String(error)})` };
  }
}

function heapUsedBytes(gc: (() => void) | undefined): number {
  if (gc !== undefined) {
    gc();
    gc();
  }
  return process.memoryUsage().heapUsed;
}

function fixed(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

interface Row {
  readonly name: string;
  readonly btree: number;
  readonly reference: number;
  readonly referenceName: string;
}

function speedTable(keys: readonly string[], random: () => number): Row[] {
  const rows: Row[] = [];
  let tree = BTree.empty<number>();
  const ascending = opsPerSecond(ENTRIES, () => {
    const editor = new Editor();
    tree = BTree.empty<number>();
    for (let index = 0; index < ENTRIES; index++) tree = tree.set(keys[index]!, index, editor);
  });
  let map = new Map<string, number>();
  const mapAscending = opsPerSecond(ENTRIES, () => {
    map = new Map();
    for (let index = 0; index < ENTRIES; index++) map.set(keys[index]!, index);
  });
  rows.push({ name: `${fixed(ENTRIES)} ascending sets, one editor`, btree: ascending, reference: mapAscending, referenceName: 'Map.set' });

  const order = shuffled(keys, random);
  const gets = opsPerSecond(ENTRIES, () => {
    for (let index = 0; index < ENTRIES; index++) sink += tree.get(order[index]!)!;
  });
  const mapGets = opsPerSecond(ENTRIES, () => {
    for (let index = 0; index < ENTRIES; index++) sink += map.get(order[index]!)!;
  });
  rows.push({ name: `${fixed(ENTRIES)} random gets`, btree: gets, reference: mapGets, referenceName: 'Map.get' });

  // New keys between the existing ones (a 17th digit), so inserts land all over the tree.
  const fresh = Array.from({ length: PERSISTENT_SETS }, () => `${keys[Math.floor(random() * ENTRIES)]!}5`);
  const base = tree;
  const persistent = opsPerSecond(PERSISTENT_SETS, () => {
    let current = base;
    for (let index = 0; index < PERSISTENT_SETS; index++) current = current.set(fresh[index]!, index, new Editor());
    sink += current.size;
  });
  let copy = new Map<string, number>();
  const mapSets = opsPerSecond(
    PERSISTENT_SETS,
    () => {
      for (let index = 0; index < PERSISTENT_SETS; index++) copy.set(fresh[index]!, index);
      sink += copy.size;
    },
    () => {
      copy = new Map(map);
    },
  );
  rows.push({ name: `${fixed(PERSISTENT_SETS)} random sets, a fresh editor each`, btree: persistent, reference: mapSets, referenceName: 'Map.set (in place: no snapshot)' });

  rows.push(...scanRows(tree, map, random));
  return rows;
}

/** Prefix scans, in entries per second, against walking a Map's values (which cannot filter). */
function scanRows(tree: BTree<number>, map: Map<string, number>, random: () => number): Row[] {
  const prefixes = Array.from({ length: PREFIX_SCANS }, () => keyOf(Math.floor(random() * (ENTRIES / PREFIX_SCAN_KEYS)) * PREFIX_SCAN_KEYS).slice(0, -2));
  const scanned = PREFIX_SCANS * PREFIX_SCAN_KEYS;
  const entries = opsPerSecond(scanned, () => {
    for (const prefix of prefixes) for (const [, value] of tree.entriesWithPrefix(prefix)) sink += value;
  });
  const values = opsPerSecond(scanned, () => {
    for (const prefix of prefixes) for (const value of tree.valuesWithPrefix(prefix)) sink += value;
  });
  const mapWalk = opsPerSecond(ENTRIES, () => {
    for (const value of map.values()) sink += value;
  });
  const referenceName = 'walking Map.values() (entries/s)';
  return [
    { name: `${fixed(PREFIX_SCANS)} prefix scans of ${PREFIX_SCAN_KEYS} entries, entriesWithPrefix (entries/s)`, btree: entries, reference: mapWalk, referenceName },
    { name: `${fixed(PREFIX_SCANS)} prefix scans of ${PREFIX_SCAN_KEYS} entries, valuesWithPrefix (entries/s)`, btree: values, reference: mapWalk, referenceName },
  ];
}

/** Heap bytes per entry of each structure over keys that are already live, so the figure is
 * the structure's own cost; the keys' cost is reported on its own line. */
function memoryTable(keys: readonly string[], random: () => number): string[] {
  const { gc, method } = findGc();
  const lines = [`Heap per entry, ${fixed(ENTRIES)} entries, 20-byte keys, small-integer values; ${method}.`, '', '| structure | bytes/entry |', '|---|---|'];
  const perEntry = (build: () => unknown): number => {
    const before = heapUsedBytes(gc);
    const built = build();
    const after = heapUsedBytes(gc);
    sink += built === undefined ? 0 : 1;
    return (after - before) / ENTRIES;
  };
  const keyBytes = perEntry(() => Array.from({ length: ENTRIES }, (_, index) => keyOf(index)));
  lines.push(`| for scale: the keys themselves, 20-byte strings in an array (8 of the bytes are the array slot) | ${keyBytes.toFixed(1)} |`);
  const randomOrder = shuffled(keys, random);
  const builds: Array<[string, () => unknown]> = [
    ['BTree, ascending, one editor', () => buildTree(keys, false)],
    ['BTree, random order, one editor', () => buildTree(randomOrder, false)],
    ['BTree, random order, a fresh editor per set', () => buildTree(randomOrder, true)],
    ['Map, same entries', () => new Map(keys.map((key, index) => [key, index]))],
  ];
  for (const [name, build] of builds) lines.push(`| ${name} | ${perEntry(build).toFixed(1)} |`);
  return lines;
}

function buildTree(keys: readonly string[], isEditorPerSet: boolean): BTree<number> {
  let tree = BTree.empty<number>();
  const editor = new Editor();
  for (let index = 0; index < keys.length; index++) tree = tree.set(keys[index]!, index, isEditorPerSet ? new Editor() : editor);
  return tree;
}

function main(): void {
  const random = mulberry32(42);
  const keys = Array.from({ length: ENTRIES }, (_, index) => keyOf(index));
  const started = performance.now();
  const rows = speedTable(keys, random);
  console.log(`node ${process.version}, one process, best of ${RUNS} runs\n`);
  console.log('| operation | btree ops/s | reference ops/s | btree / reference | reference |');
  console.log('|---|---|---|---|---|');
  for (const row of rows) {
    console.log(`| ${row.name} | ${fixed(row.btree)} | ${fixed(row.reference)} | ${(row.btree / row.reference).toFixed(2)} | ${row.referenceName} |`);
  }
  console.log('');
  for (const line of memoryTable(keys, random)) console.log(line);
  console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s; sink ${sink > 0 ? 'ok' : 'empty'})`);
}

main();
