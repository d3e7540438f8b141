// serf's snapshot file: what an agent remembers of its gossip pool across restarts.
//
// serf (snapshot.go) appends one line per change to `<data-dir>/serf/local.snapshot` (WAN:
// `remote.snapshot`): `alive: <name> <ip:port>` when a member joins or comes back,
// `not-alive: <name>` when it fails, leaves or is reaped, `clock: <n>`, `event-clock: <n>` and
// `query-clock: <n>` as the Lamport clocks move, and `leave` when this agent leaves gracefully.
// On start the file is replayed: the clocks are restored (so old events are not replayed as
// new), and unless the last word was `leave` (or rejoin_after_leave is set) the agent joins the
// members that were alive, so a restarted agent finds its pool without -retry-join. The file
// is rewritten compactly once it grows past SNAPSHOT_BYTES_MAX.
//
// Not here: serf's coordinate lines (we keep no coordinates across restarts); every write is
// appended without fsync (serf flushes a buffer every 500 ms; losing the tail costs a rejoin
// attempt, never state).
//
// Reference: hashicorp/serf serf/snapshot.go (Snapshotter, replay, compact).

import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** What a replayed snapshot tells the agent. */
export interface SnapshotReplay {
  /** `ip:port` of the members alive when the snapshot ended. */
  readonly aliveMembers: readonly string[];
  readonly clock: bigint;
  readonly eventClock: bigint;
  readonly queryClock: bigint;
  /** The agent left gracefully last time. */
  readonly hasLeft: boolean;
}

/** Past this size the snapshot is rewritten with only the live facts (serf: 128 KiB minimum). */
export const SNAPSHOT_BYTES_MAX = 128 * 1024;
/** Lines in a snapshot we read; the rest of a runaway file is ignored. */
export const SNAPSHOT_LINES_MAX = 1_000_000;

/** Reads a snapshot file; a missing file is an empty replay, unknown lines are skipped as serf does. */
export function replaySnapshot(path: string): SnapshotReplay {
  const alive = new Map<string, string>();
  let clock = 0n;
  let eventClock = 0n;
  let queryClock = 0n;
  let hasLeft = false;
  if (!existsSync(path)) return { aliveMembers: [], clock, eventClock, queryClock, hasLeft };
  const lines = readFileSync(path, 'utf8').split('\n').slice(0, SNAPSHOT_LINES_MAX);
  for (const line of lines) {
    const [word = '', ...rest] = line.split(': ');
    const value = rest.join(': ');
    if (line === 'leave') {
      hasLeft = true;
      alive.clear();
    } else if (word === 'alive') {
      const space = value.lastIndexOf(' ');
      if (space > 0) alive.set(value.slice(0, space), value.slice(space + 1));
      hasLeft = false;
    } else if (word === 'not-alive') {
      alive.delete(value);
    } else if (word === 'clock' || word === 'event-clock' || word === 'query-clock') {
      if (!/^\d{1,20}$/.test(value)) continue;
      const time = BigInt(value);
      if (word === 'clock') clock = time;
      else if (word === 'event-clock') eventClock = time;
      else queryClock = time;
    }
  }
  return { aliveMembers: [...alive.values()], clock, eventClock, queryClock, hasLeft };
}

/** Appends facts to the snapshot and compacts it when it grows too long. */
export class SnapshotWriter {
  private bytes: number;
  private readonly aliveMembers = new Map<string, string>();
  private clocks = { clock: 0n, eventClock: 0n, queryClock: 0n };

  constructor(private readonly path: string, replay: SnapshotReplay) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.bytes = existsSync(path) ? readFileSync(path).length : 0;
    this.clocks = { clock: replay.clock, eventClock: replay.eventClock, queryClock: replay.queryClock };
  }

  /** A member (not us) is alive at `address` (`ip:port`). */

  alive(name: string, address: string): void {
    if (this.aliveMembers.get(name) === address) return;
    this.aliveMembers.set(name, address);
    this.append(`alive: ${name} ${address}\n`);
  }

  notAlive(name: string): void {
    if (!this.aliveMembers.delete(name)) return;
    this.append(`not-alive: ${name}\n`);
  }

  clocksAt(clock: bigint, eventClock: bigint, queryClock: bigint): void {
    const lines: string[] = [];
    if (clock > this.clocks.clock) lines.push(`clock: ${clock}\n`);
    if (eventClock > this.clocks.eventClock) lines.push(`event-clock: ${eventClock}\n`);
    if (queryClock > this.clocks.queryClock) lines.push(`query-clock: ${queryClock}\n`);
    this.clocks = { clock, eventClock, queryClock };
    if (lines.length > 0) this.append(lines.join(''));
  }

  leave(): void {
    this.append('leave\n');
  }

  private append(text: string): void {
    appendFileSync(this.path, text, { mode: 0o600 });
    this.bytes += Buffer.byteLength(text);
    if (this.bytes > SNAPSHOT_BYTES_MAX) this.compact();
  }

  /** serf compact: the live facts only, written beside and renamed over. */
  private compact(): void {
    const lines = [...this.aliveMembers].map(([name, address]) => `alive: ${name} ${address}\n`);
    lines.push(`clock: ${this.clocks.clock}\n`, `event-clock: ${this.clocks.eventClock}\n`, `query-clock: ${this.clocks.queryClock}\n`);
    const text = lines.join('');
    writeFileSync(`${this.path}.compact`, text, { mode: 0o600 });
    renameSync(`${this.path}.compact`, this.path);
    this.bytes = Buffer.byteLength(text);
  }
}
