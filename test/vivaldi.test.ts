// Vivaldi coordinates: serf's coordinate package tests (client_test.go, coordinate_test.go)
// reproduced against lib/vivaldi.ts, the ack payload bytes (spec wire.md §3.10), and a small
// convergence check.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GossipWireError } from '../lib/gossipwire.js';
import { seededRng } from '../lib/rng.js';
import {
  applyForce,
  DEFAULT_VIVALDI_CONFIG,
  decodeCoordinatePayload,
  distanceNs,
  distanceSeconds,
  encodeCoordinatePayload,
  isCompatible,
  isValidCoordinate,
  newCoordinate,
  rawDistanceSeconds,
  VivaldiClient,
  VivaldiError,
  type Coordinate,
  type VivaldiConfig,
} from '../lib/vivaldi.js';

const TOLERANCE = 1.0e-6;

function near(actual: number, expected: number, what = 'value'): void {
  assert.ok(Math.abs(actual - expected) <= TOLERANCE, `${what}: ${actual} != ${expected}`);
}

function nearVec(actual: readonly number[], expected: readonly number[]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((value, i) => near(value, expected[i] ?? NaN, `vec[${i}]`));
}

function config(overrides: Partial<VivaldiConfig>): VivaldiConfig {
  return { ...DEFAULT_VIVALDI_CONFIG, ...overrides };
}

function at(cfg: VivaldiConfig, vec: number[], extra: Partial<Coordinate> = {}): Coordinate {
  return { ...newCoordinate(cfg), vec, ...extra };
}

describe('coordinate math (coordinate_test.go)', () => {
  it('NewCoordinate has the configured dimensionality, max error, min height', () => {
    const c = newCoordinate();
    assert.equal(c.vec.length, 8);
    assert.equal(c.error, 1.5);
    assert.equal(c.height, 1e-5);
    assert.equal(c.adjustment, 0);
  });

  it('IsValid rejects NaN and Inf in every field', () => {
    const base = newCoordinate();
    assert.ok(isValidCoordinate(base));
    for (const bad of [NaN, Infinity, -Infinity]) {
      assert.ok(!isValidCoordinate({ ...base, vec: [bad, 0, 0, 0, 0, 0, 0, 0] }));
      assert.ok(!isValidCoordinate({ ...base, error: bad }));
      assert.ok(!isValidCoordinate({ ...base, adjustment: bad }));
      assert.ok(!isValidCoordinate({ ...base, height: bad }));
    }
  });

  it('IsCompatibleWith compares dimensionality', () => {
    const c3 = newCoordinate(config({ dimensionality: 3 }));
    const c2 = newCoordinate(config({ dimensionality: 2 }));
    assert.ok(isCompatible(c3, c3));
    assert.ok(!isCompatible(c3, c2));
  });

  it('ApplyForce normalizes, scales, handles coincident points and the minimum height', () => {
    const cfg = config({ dimensionality: 3, heightMin: 0 });
    const rng = seededRng(1);
    const origin = newCoordinate(cfg);
    const above = at(cfg, [0, 0, 2.9]);
    let c = applyForce(cfg, origin, 5.3, above, rng);
    nearVec(c.vec, [0, 0, -5.3]);
    const right = at(cfg, [3.4, 0, -5.3]);
    c = applyForce(cfg, c, 2.0, right, rng);
    nearVec(c.vec, [-2.0, 0, -5.3]);
    c = applyForce(cfg, origin, 1.0, origin, rng);
    near(distanceSeconds(origin, c), 1.0, 'random unit step');

    const cfgH = config({ dimensionality: 3 });
    const originH = newCoordinate(cfgH);
    c = applyForce(cfgH, originH, 5.3, above, rng);
    nearVec(c.vec, [0, 0, -5.3]);
    near(c.height, cfgH.heightMin + (5.3 * cfgH.heightMin) / 2.9, 'height');
    c = applyForce(cfgH, originH, -5.3, above, rng);
    nearVec(c.vec, [0, 0, 5.3]);
    near(c.height, cfgH.heightMin, 'height floor');
    assert.throws(() => applyForce(cfgH, c, 1.0, at(cfgH, [0, 0, 0, 0]), rng));
  });

  it('DistanceTo: Euclidean plus heights, positive adjustments only', () => {
    const cfg = config({ dimensionality: 3, heightMin: 0 });
    const c1 = at(cfg, [-0.5, 1.3, 2.4]);
    const c2 = at(cfg, [1.2, -2.3, 3.4]);
    near(distanceSeconds(c1, c1), 0);
    near(distanceSeconds(c1, c2), distanceSeconds(c2, c1));
    near(distanceSeconds(c1, c2), 4.104875150354758);
    near(rawDistanceSeconds(c1, c2), 4.104875150354758);
    near(distanceSeconds({ ...c1, adjustment: -1.0e6 }, c2), 4.104875150354758);
    near(distanceSeconds({ ...c1, adjustment: 0.1 }, { ...c2, adjustment: 0.2 }), 4.104875150354758 + 0.3);
    near(distanceSeconds({ ...c1, adjustment: 0.1, height: 0.7 }, { ...c2, adjustment: 0.2, height: 0.1 }), 4.104875150354758 + 0.3 + 0.8);
    near(rawDistanceSeconds({ ...c1, adjustment: 1e6 }, c2), 4.104875150354758);
  });

  it('distances are Go Durations: whole nanoseconds', () => {
    const cfg = config({ dimensionality: 3, heightMin: 0 });
    const other = at(cfg, [0, 0, 12.345]);
    assert.equal(distanceNs(newCoordinate(cfg), other), Math.trunc(12.345 * 1e9));
    assert.ok(Number.isInteger(distanceNs(at(cfg, [0.1, 0.2, 0.3]), other)));
  });
});

describe('client (client_test.go)', () => {
  it('NewClient starts at the origin', () => {
    const client = new VivaldiClient(config({ dimensionality: 7 }), seededRng(1));
    assert.deepEqual(client.getCoordinate(), newCoordinate(config({ dimensionality: 7 })));
  });

  it('Update: an RTT longer than expected pushes us away; SetCoordinate sticks', () => {
    const cfg = config({ dimensionality: 3 });
    const client = new VivaldiClient(cfg, seededRng(1));
    nearVec(client.getCoordinate().vec, [0, 0, 0]);
    const other = at(cfg, [0, 0, 0.001]);
    const c = client.update('node', other, Math.trunc(2.0 * 0.001 * 1e9));
    assert.ok(!(c instanceof VivaldiError));
    assert.ok(c.vec[2] !== undefined && c.vec[2] < 0, `z ${c.vec[2]} should be < 0`);
    assert.equal(client.setCoordinate({ ...c, vec: [c.vec[0] ?? 0, c.vec[1] ?? 0, 99.0] }), null);
    near(client.getCoordinate().vec[2] ?? NaN, 99.0);
  });

  it('invalid RTTs are refused and change nothing', () => {
    const cfg = config({ dimensionality: 3 });
    const client = new VivaldiClient(cfg, seededRng(1));
    const other = at(cfg, [0, 0, 0.001]);
    const before = client.distanceNs(other);
    for (const rttNs of [Number.MAX_SAFE_INTEGER, -35e9, 11e9]) {
      const result = client.update('node', other, rttNs);
      assert.ok(result instanceof VivaldiError && result.code === 'ERR_VIVALDI_RTT_RANGE');
      assert.equal(client.distanceNs(other), before);
    }
  });

  it('DistanceTo from the client', () => {
    const cfg = config({ dimensionality: 3, heightMin: 0 });
    const client = new VivaldiClient(cfg, seededRng(1));
    assert.equal(client.distanceNs(at(cfg, [0, 0, 12.345])), Math.trunc(12.345 * 1e9));
  });

  it('latencyFilter: median of the last three, per node, forgotten on ForgetNode', () => {
    const client = new VivaldiClient(config({ latencyFilterSize: 3 }), seededRng(1));
    const steps: [string, number, number][] = [
      ['alice', 0.201, 0.201],
      ['alice', 0.2, 0.201],
      ['alice', 0.207, 0.201],
      ['alice', 1.9, 0.207],
      ['alice', 0.203, 0.207],
      ['alice', 0.199, 0.203],
      ['alice', 0.211, 0.203],
      ['bob', 0.31, 0.31],
    ];
    for (const [node, sample, median] of steps) near(client.latencyFilter(node, sample), median, `${node} ${sample}`);
    client.forgetNode('alice');
    near(client.latencyFilter('alice', 0.888), 0.888);
  });

  it('NaN defense: invalid or alien coordinates refused, a poisoned state resets', () => {
    const cfg = config({ dimensionality: 3 });
    const client = new VivaldiClient(cfg, seededRng(1));
    const bad = at(cfg, [NaN, 0, 0]);
    const r1 = client.update('node', bad, 250e6);
    assert.ok(r1 instanceof VivaldiError && r1.message.includes('coordinate is invalid'));
    assert.ok(client.setCoordinate(bad)?.message.includes('coordinate is invalid'));
    const alien = at(cfg, [0, 0, 0, 0, 0, 0]);
    const r2 = client.update('node', alien, 250e6);
    assert.ok(r2 instanceof VivaldiError && r2.message.includes("dimensions aren't compatible"));
    assert.ok(isValidCoordinate(client.getCoordinate()));
    // Poison the state through a huge but finite coordinate: the update overflows and resets.
    const huge = at(cfg, [1e308, 1e308, 1e308], { error: 1e-300 });
    client.update('node', huge, 250e6);
    assert.ok(isValidCoordinate(client.getCoordinate()));
    assert.equal(client.resets, 1);
  });

  it('converges: two nodes 10 ms apart estimate about 10 ms', () => {
    const rng = seededRng(7);
    const a = new VivaldiClient(DEFAULT_VIVALDI_CONFIG, rng);
    const b = new VivaldiClient(DEFAULT_VIVALDI_CONFIG, rng);
    for (let i = 0; i < 200; i++) {
      a.update('b', b.getCoordinate(), 10e6);
      b.update('a', a.getCoordinate(), 10e6);
    }
    const estimate = distanceSeconds(a.getCoordinate(), b.getCoordinate());
    assert.ok(Math.abs(estimate - 0.01) < 0.001, `estimate ${estimate}`);
    assert.ok(a.getCoordinate().error < 0.5);
  });
});

describe('ack payload (spec §3.10)', () => {
  it('a fresh node sends 01 + {Adjustment 0, Error 1.5, Height 1e-5, Vec zeros} as float64s', () => {
    const bytes = encodeCoordinatePayload(newCoordinate());
    const hex = Buffer.from(bytes).toString('hex');
    const f = (value: number): string => {
      const buf = Buffer.alloc(8);
      buf.writeDoubleBE(value);
      return 'cb' + buf.toString('hex');
    };
    const key = (name: string): string => (0xa0 + name.length).toString(16) + Buffer.from(name).toString('hex');
    const expected = '01' + '84' + key('Adjustment') + f(0) + key('Error') + f(1.5) + key('Height') + f(1e-5) + key('Vec') + '98' + f(0).repeat(8);
    assert.equal(hex, expected);
    assert.deepEqual(decodeCoordinatePayload(bytes), newCoordinate());
  });

  it('decoding: empty is null, other versions and garbage are GossipWireError', () => {
    assert.equal(decodeCoordinatePayload(new Uint8Array()), null);
    assert.throws(() => decodeCoordinatePayload(Uint8Array.of(2, 0x80)), GossipWireError);
    const rng = seededRng(3);
    for (let i = 0; i < 2000; i++) {
      const bytes = Uint8Array.from({ length: 1 + Math.floor(rng() * 40) }, () => Math.floor(rng() * 256));
      bytes[0] = 1;
      try {
        decodeCoordinatePayload(bytes);
      } catch (error) {
        assert.ok(error instanceof GossipWireError, String(error));
      }
    }
  });

  it('integers are accepted where Go accepts them for float64 fields', () => {
    // {Error: 1, Vec: [0, 2]}
    const bytes = Uint8Array.from([1, 0x82, 0xa5, ...Buffer.from('Error'), 0x01, 0xa3, ...Buffer.from('Vec'), 0x92, 0x00, 0x02]);
    assert.deepEqual(decodeCoordinatePayload(bytes), { vec: [0, 2], error: 1, adjustment: 0, height: 0 });
  });
});
