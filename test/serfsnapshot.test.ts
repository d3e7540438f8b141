import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { replaySnapshot, SNAPSHOT_BYTES_MAX, SnapshotWriter } from '../lib/serfsnapshot.js';

const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-serfsnapshot-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('serf snapshots (serf/snapshot.go)', () => {
  test('replay keeps the members still alive at the end, the last clocks, and the leave', () => {
    const path = join(scratch, 'replay.snapshot');
    writeFileSync(path, ['alive: a 10.0.0.1:8301', 'alive: b 10.0.0.2:8301', 'clock: 7', 'not-alive: a', 'event-clock: 3', 'query-clock: 2', '# a comment', 'garbage line', 'clock: x', 'alive: c 10.0.0.3:8301', ''].join('\n'));
    assert.deepEqual(replaySnapshot(path), { aliveMembers: ['10.0.0.2:8301', '10.0.0.3:8301'], clock: 7n, eventClock: 3n, queryClock: 2n, hasLeft: false });
    writeFileSync(path, 'alive: b 10.0.0.2:8301\nleave\n');
    assert.deepEqual(replaySnapshot(path).hasLeft, true);
    assert.deepEqual(replaySnapshot(path).aliveMembers, []);
    assert.deepEqual(replaySnapshot(join(scratch, 'missing')).aliveMembers, []);
  });

  test('the writer appends only changes, and compacts past the size limit to what is still true', () => {
    const path = join(scratch, 'write.snapshot');
    const writer = new SnapshotWriter(path, replaySnapshot(path));
    writer.alive('a', '10.0.0.1:8301');
    writer.alive('a', '10.0.0.1:8301');
    writer.clocksAt(5n, 1n, 1n);
    writer.notAlive('a');
    assert.equal(readFileSync(path, 'utf8'), 'alive: a 10.0.0.1:8301\nclock: 5\nevent-clock: 1\nquery-clock: 1\nnot-alive: a\n');
    for (let i = 0; readFileSync(path).length <= SNAPSHOT_BYTES_MAX / 2; i++) {
      writer.alive(`n${i}`, '10.0.0.9:8301');
      writer.notAlive(`n${i}`);
    }
    writer.alive('keep', '10.0.0.5:8301');
    for (let i = 0; i < 10_000; i++) writer.clocksAt(BigInt(10 + i), 1n, 1n);
    const compacted = readFileSync(path, 'utf8');
    assert.ok(compacted.length < SNAPSHOT_BYTES_MAX);
    const replay = replaySnapshot(path);
    assert.deepEqual(replay.aliveMembers, ['10.0.0.5:8301']);
    assert.equal(replay.clock, 10_009n);
  });
});
