// State store throughput and memory, in-process on one core (issue 3's targets):
// - KV get, KV set (state store, and the whole FSM apply path: decode + apply), prefix list,
//   catalog registration: operations per second;
// - FSM snapshot and restore of 1,000,000 KV pairs with 256-byte values: seconds and peak RSS;
// - resident memory per key with those pairs loaded.
// The memory phase runs in a fresh child process with --expose-gc so earlier phases do not
// pollute it. Figures are compared with the targets and with etcd 3.4's figures measured on this
// kind of machine (shared/spec/baselines.md): etcd is not run here, because loading a million
// keys into it takes minutes.
//
// Run: npm run bench -- state        (BENCH_KEYS=200000 for a quicker memory phase)
import { spawnSync } from 'node:child_process';
import { ensureRegistration } from '../lib/catalog.js';
import { encodeCommand, Fsm } from '../lib/fsm.js';
import { kvsGet, kvsList, kvsSet } from '../lib/kvs.js';
import { StateStore } from '../lib/state.js';

const MEMORY_KEYS = Number(process.env['BENCH_KEYS'] ?? 1_000_000);
const VALUE_BYTES = 256;

function opsPerSecond(count: number, run: (i: number) => void): number {
  const started = performance.now();
  for (let i = 0; i < count; i++) run(i);
  return count / ((performance.now() - started) / 1000);
}

function keyOf(i: number): string {
  return `app/service-${i % 100}/config/key-${i}`;
}

function throughput(): void {
  const store = new StateStore({ nowMs: () => 0 });
  const value = new Uint8Array(VALUE_BYTES).fill(97);
  const keys = 100_000;
  let index = 0;
  store.write((txn) => {
    for (let i = 0; i < keys; i++) kvsSet(txn, ++index, { Key: keyOf(i), Value: value });
  });
  const rows: [string, number, number][] = [];
  let seed = 1;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed;
  };
  rows.push(['KV get (state.read + kvsGet), 100k keys', opsPerSecond(500_000, () => store.read((txn) => kvsGet(txn, keyOf(random() % keys)))), 200_000]);
  rows.push(['KV set, one write txn each (state.write + kvsSet)', opsPerSecond(100_000, (i) => store.write((txn) => kvsSet(txn, ++index, { Key: keyOf(i * 7), Value: value }))), 50_000]);
  const fsm = new Fsm(store);
  const commands = Array.from({ length: 100_000 }, (_, i) => encodeCommand({ type: 'kvs', op: 'set', entry: { Key: keyOf(i * 3), Value: value } }));
  rows.push(['KV set through the FSM (decode + apply)', opsPerSecond(commands.length, (i) => fsm.apply(++index, commands[i] ?? new Uint8Array())), 50_000]);
  rows.push(['KV prefix list, ~1,000 keys per prefix', opsPerSecond(2_000, (i) => store.read((txn) => kvsList(txn, `app/service-${i % 100}/`))), 0]);
  rows.push(['catalog registration (node + service + check)', opsPerSecond(50_000, (i) =>
    store.write((txn) => ensureRegistration(txn, ++index, {
      Node: `node-${i % 5000}`, Address: `10.0.${(i >> 8) & 255}.${i & 255}`,
      Service: { ID: `web-${i % 3}`, Service: 'web', Port: 8080, Tags: ['v1'] },
      Check: { CheckID: `web-${i % 3}-check`, Name: 'http', Status: 'passing', ServiceID: `web-${i % 3}` },
    }, store.lockDelay))), 0]);
  console.log('| operation (in-process, one core) | ops/s | target | ratio to target |');
  console.log('|---|---|---|---|');
  for (const [name, rate, target] of rows) {
    console.log(`| ${name} | ${Math.round(rate).toLocaleString('en-US')} | ${target ? target.toLocaleString('en-US') : '-'} | ${target ? (rate / target).toFixed(2) : '-'} |`);
  }
}

async function memoryAndSnapshot(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  gc();
  const baseRss = process.memoryUsage().rss;
  const store = new StateStore({ nowMs: () => 0 });
  const fsm = new Fsm(store);
  let index = 0;
  const batch = 10_000;
  for (let start = 0; start < MEMORY_KEYS; start += batch) {
    store.write((txn) => {
      for (let i = start; i < Math.min(start + batch, MEMORY_KEYS); i++) {
        // Each value is its own 256-byte buffer, as values arriving in HTTP bodies are.
        const value = Buffer.alloc(VALUE_BYTES, i % 251);
        kvsSet(txn, ++index, { Key: keyOf(i), Value: value });
      }
    });
  }
  fsm.apply(++index, encodeCommand({ type: 'tombstone-reap', reapIndex: 0 }));
  gc();
  const loadedRss = process.memoryUsage().rss;
  let peakRss = loadedRss;
  const sample = (): void => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  };

  const snapshotStarted = performance.now();
  const chunks: Uint8Array[] = [];
  let snapshotBytes = 0;
  for (const chunk of fsm.snapshot().chunks()) {
    chunks.push(chunk);
    snapshotBytes += chunk.length;
    if (chunks.length % 64 === 0) sample();
  }
  const snapshotSeconds = (performance.now() - snapshotStarted) / 1000;
  sample();

  const target = new Fsm(new StateStore({ nowMs: () => 0 }));
  const restoreStarted = performance.now();
  await target.restore(chunks, index);
  const restoreSeconds = (performance.now() - restoreStarted) / 1000;
  sample();
  const perKey = (loadedRss - baseRss) / MEMORY_KEYS;
  const scale = MEMORY_KEYS / 1_000_000;
  console.log(`\n${MEMORY_KEYS.toLocaleString('en-US')} KV pairs, ${VALUE_BYTES}-byte values; snapshot ${(snapshotBytes / 1e6).toFixed(0)} MB\n`);
  console.log('| measure | consul-ts | target (etcd 3.4 here) | ratio to target |');
  console.log('|---|---|---|---|');
  console.log(`| snapshot, seconds | ${snapshotSeconds.toFixed(2)} | ${(2.4 * scale).toFixed(2)} | ${(snapshotSeconds / (2.4 * scale)).toFixed(2)} |`);
  console.log(`| restore, seconds | ${restoreSeconds.toFixed(2)} | ${(3.4 * scale).toFixed(2)} | ${(restoreSeconds / (3.4 * scale)).toFixed(2)} |`);
  console.log(`| resident memory per key, bytes | ${Math.round(perKey)} | 800 (etcd: 1,360) | ${(perKey / 800).toFixed(2)} |`);
  console.log(`| peak RSS during snapshot + restore, MB | ${Math.round(peakRss / 1e6)} | - | - |`);
}

if (process.argv.includes('--memory-phase')) {
  await memoryAndSnapshot();
} else {
  throughput();
  const child = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', '--import', 'tsx', import.meta.filename, '--memory-phase'], { stdio: 'inherit' });
  if (child.status !== 0) process.exit(child.status ?? 1);
}
