// State store throughput and memory, in-process on one core (issue 3's targets):
// - KV get, KV set (state store, and the whole FSM apply path: decode + apply), prefix list,
//   catalog registration: operations per second;
// - FSM snapshot and restore of 1,000,000 KV pairs with 256-byte values: seconds and peak RSS;
// - resident memory per key with those pairs loaded.
// The million-key phases run in child processes with --expose-gc: one loads the keys and
// streams a snapshot to a file (a live server snapshotting), a fresh one restores it (a server
// restarting), so neither measures the other's heap. Figures are compared with the targets and with etcd 3.4's figures measured on this
// kind of machine (shared/spec/baselines.md): etcd is not run here, because loading a million
// keys into it takes minutes.
//
// Run: npm run bench -- state        (BENCH_KEYS=200000 for a quicker memory phase)
import { spawnSync } from 'node:child_process';
import { closeSync, createReadStream, fsyncSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

interface PhaseReport {
  readonly seconds: number;
  readonly bytesPerKey: number;
  readonly peakRssMb: number;
  readonly fileMb: number;
}

function forceGc(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  gc();
}

/** Child process: load the keys as the cluster does (FSM commands), then stream a snapshot to `file`. */
function loadAndSnapshot(file: string): PhaseReport {
  forceGc();
  const baseRss = process.memoryUsage().rss;
  const fsm = new Fsm(new StateStore({ nowMs: () => 0 }));
  const value = new Uint8Array(VALUE_BYTES);
  for (let i = 0; i < MEMORY_KEYS; i++) {
    fsm.apply(i + 1, encodeCommand({ type: 'kvs', op: 'set', entry: { Key: keyOf(i), Value: value.fill(i % 251) } }));
  }
  forceGc();
  const loadedRss = process.memoryUsage().rss;
  let peakRss = loadedRss;
  const started = performance.now();
  const fd = openSync(file, 'w');
  let chunks = 0;
  for (const chunk of fsm.snapshot().chunks()) {
    writeSync(fd, chunk);
    if (++chunks % 32 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  fsyncSync(fd);
  closeSync(fd);
  const seconds = (performance.now() - started) / 1000;
  return { seconds, bytesPerKey: (loadedRss - baseRss) / MEMORY_KEYS, peakRssMb: Math.max(peakRss, process.memoryUsage().rss) / 1e6, fileMb: statSync(file).size / 1e6 };
}

/** Child process: a fresh server restoring the snapshot file, as after a restart. */
async function restoreFromFile(file: string): Promise<PhaseReport> {
  forceGc();
  const baseRss = process.memoryUsage().rss;
  let peakRss = baseRss;
  const fsm = new Fsm(new StateStore({ nowMs: () => 0 }));
  const started = performance.now();
  const timer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
  await fsm.restore(createReadStream(file, { highWaterMark: 1024 * 1024 }), 1);
  clearInterval(timer);
  const seconds = (performance.now() - started) / 1000;
  forceGc();
  return { seconds, bytesPerKey: (process.memoryUsage().rss - baseRss) / MEMORY_KEYS, peakRssMb: Math.max(peakRss, process.memoryUsage().rss) / 1e6, fileMb: statSync(file).size / 1e6 };
}

function runPhase(phase: string, file: string): PhaseReport {
  const child = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', '--import', 'tsx', import.meta.filename, phase, file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (child.status !== 0) throw new Error(`${phase} failed`);
  return JSON.parse(child.stdout) as PhaseReport;
}

const phase = process.argv[2];
if (phase === '--snapshot-phase') console.log(JSON.stringify(loadAndSnapshot(process.argv[3] ?? '')));
else if (phase === '--restore-phase') console.log(JSON.stringify(await restoreFromFile(process.argv[3] ?? '')));
else {
  throughput();
  const dir = mkdtempSync(join(tmpdir(), 'consul-ts-state-bench-'));
  try {
    const file = join(dir, 'state.snap');
    const snapshot = runPhase('--snapshot-phase', file);
    const restore = runPhase('--restore-phase', file);
    const scale = MEMORY_KEYS / 1_000_000;
    console.log(`\n${MEMORY_KEYS.toLocaleString('en-US')} KV pairs, ${VALUE_BYTES}-byte values; snapshot file ${snapshot.fileMb.toFixed(0)} MB\n`);
    console.log('| measure | consul-ts | target (etcd 3.4 on this machine) | ratio to target |');
    console.log('|---|---|---|---|');
    console.log(`| snapshot to a file (live server), seconds | ${snapshot.seconds.toFixed(2)} | ${(2.4 * scale).toFixed(2)} | ${(snapshot.seconds / (2.4 * scale)).toFixed(2)} |`);
    console.log(`| restore from the file (fresh server), seconds | ${restore.seconds.toFixed(2)} | ${(3.4 * scale).toFixed(2)} | ${(restore.seconds / (3.4 * scale)).toFixed(2)} |`);
    console.log(`| resident memory per key, loaded by writes, bytes | ${Math.round(snapshot.bytesPerKey)} | 800 (etcd: 1,360) | ${(snapshot.bytesPerKey / 800).toFixed(2)} |`);
    console.log(`| resident memory per key, after restore, bytes | ${Math.round(restore.bytesPerKey)} | 800 (etcd: 1,360) | ${(restore.bytesPerKey / 800).toFixed(2)} |`);
    console.log(`| peak RSS while snapshotting / restoring, MB | ${Math.round(snapshot.peakRssMb)} / ${Math.round(restore.peakRssMb)} | - | - |`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
