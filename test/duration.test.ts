import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DurationError, formatDuration, parseDuration } from '../lib/duration.js';
import { mulberry32 } from './support.js';

// Expected values are Go's: time.ParseDuration and time.Duration.String() (Go 1.22).

const SECOND = 1e9;
const MINUTE = 60e9;
const HOUR = 3600e9;

/** Asserts that parsing `text` throws a DurationError carrying exactly Go's message. */
function assertParseError(text: string, message: string): void {
  assert.throws(
    () => parseDuration(text),
    (error: unknown) => {
      assert.ok(error instanceof DurationError, `expected a DurationError for ${JSON.stringify(text)}`);
      assert.equal(error.name, 'DurationError');
      assert.equal(error.message, message);
      return true;
    },
  );
}

describe('parseDuration accepts what time.ParseDuration accepts', () => {
  const cases: ReadonlyArray<readonly [string, number]> = [
    ['0', 0],
    ['+0', 0],
    ['-0', 0],
    ['0s', 0],
    ['10s', 10 * SECOND],
    ['+10s', 10 * SECOND],
    ['1m30s', 90 * SECOND],
    ['1.5h', 1.5 * HOUR],
    ['250ms', 250e6],
    ['2us', 2000],
    ['2\u00b5s', 2000], // U+00B5 MICRO SIGN
    ['2\u03bcs', 2000], // U+03BC GREEK SMALL LETTER MU
    ['100ns', 100],
    ['1h2m3s4ms5us6ns', HOUR + 2 * MINUTE + 3 * SECOND + 4e6 + 5e3 + 6],
    ['-2h45m', -(2 * HOUR + 45 * MINUTE)],
    ['-1.5h', -1.5 * HOUR],
    ['.5s', 0.5 * SECOND],
    ['5.s', 5 * SECOND],
    ['010s', 10 * SECOND],
  ];
  for (const [text, nanos] of cases) {
    test(`${JSON.stringify(text)} is ${nanos}ns`, () => {
      assert.equal(parseDuration(text), nanos);
    });
  }
});

describe('parseDuration reads the fractional forms real clients send', () => {
  const cases: ReadonlyArray<readonly [string, number]> = [
    ['15.0s', 15 * SECOND], // python-consul
    ['0.001s', 1e6],
    ['1.9956176280975342s', 1_995_617_628], // Go truncates the sub-nanosecond tail
    ['150.0s', 150 * SECOND],
    ['120000ms', 120 * SECOND], // node-consul
    ['0.5m', 30 * SECOND],
    ['2.3h', 8_280_000_000_000],
    ['1.000000001s', SECOND + 1],
  ];
  for (const [text, nanos] of cases) {
    test(`${JSON.stringify(text)} is ${nanos}ns`, () => {
      assert.equal(parseDuration(text), nanos);
    });
  }
});

// Go computes a fraction as uint64(float64(f) * (float64(unit) / scale)), so "0.57m" is
// 57 * 6e8 = exactly 34200000000. dividing the fraction by its scale first
// and then multiplying instead would land a hair below the integer, one nanosecond short.
describe('parseDuration rounds fractions exactly as Go does', () => {
  const cases: ReadonlyArray<readonly [string, number]> = [
    ['0.57m', 34_200_000_000],
    ['0.071m', 4_260_000_000],
    ['8.255328044s', 8_255_328_044],
    ['260.50189s', 260_501_890_000],
    ['3.506427ms', 3_506_427],
    ['958.25004ms', 958_250_040],
    ['470.58h', 1_694_088_000_000_000],
  ];
  for (const [text, nanos] of cases) {
    test(`${JSON.stringify(text)} is ${nanos}ns`, () => {
      assert.equal(parseDuration(text), nanos);
    });
  }
});

describe('parseDuration rejects with Go error messages', () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ['', 'time: invalid duration ""'],
    ['x', 'time: invalid duration "x"'],
    ['-', 'time: invalid duration "-"'],
    ['+', 'time: invalid duration "+"'],
    ['s', 'time: invalid duration "s"'],
    ['.', 'time: invalid duration "."'],
    ['.s', 'time: invalid duration ".s"'],
    ['-.s', 'time: invalid duration "-.s"'],
    ['+-1s', 'time: invalid duration "+-1s"'],
    ['10', 'time: missing unit in duration "10"'],
    ['1s5', 'time: missing unit in duration "1s5"'],
    ['-1.5', 'time: missing unit in duration "-1.5"'],
    ['1.5.s', 'time: missing unit in duration "1.5.s"'],
    ['10x', 'time: unknown unit "x" in duration "10x"'],
    ['1d', 'time: unknown unit "d" in duration "1d"'],
    ['1S', 'time: unknown unit "S" in duration "1S"'],
    ['10 s', 'time: unknown unit " s" in duration "10 s"'],
    ['1e3s', 'time: unknown unit "e" in duration "1e3s"'],
    ['9999999999h', 'time: invalid duration "9999999999h"'],
    ['2562048h', 'time: invalid duration "2562048h"'],
    ['99999999999999999999s', 'time: invalid duration "99999999999999999999s"'],
    // Go's time package writes control and non-ASCII bytes as \xNN in these messages.
    ['10\u00e9', 'time: unknown unit "\\xc3\\xa9" in duration "10\\xc3\\xa9"'],
    ['1\n', 'time: unknown unit "\\x0a" in duration "1\\x0a"'],
    ['"1"', 'time: invalid duration "\\"1\\""'],
  ];
  for (const [text, message] of cases) {
    test(`${JSON.stringify(text)} -> ${message}`, () => {
      assertParseError(text, message);
    });
  }

  test('"-0s" is zero, not negative zero', () => {
    assert.ok(Object.is(parseDuration('-0s'), 0));
  });

  test('DurationError is an Error named DurationError', () => {
    const error = new DurationError('time: invalid duration "x"');
    assert.ok(error instanceof Error);
    assert.equal(error.name, 'DurationError');
  });
});

describe('formatDuration matches Duration.String', () => {
  const cases: ReadonlyArray<readonly [number, string]> = [
    [0, '0s'],
    [-0, '0s'],
    [1, '1ns'],
    [999, '999ns'],
    [1000, '1\u00b5s'],
    [1500, '1.5\u00b5s'],
    [1_000_001, '1.000001ms'],
    [250e6, '250ms'],
    [999_999_999, '999.999999ms'],
    [SECOND, '1s'],
    [1.5 * SECOND, '1.5s'],
    [SECOND + 1, '1.000000001s'],
    [90 * SECOND, '1m30s'],
    [MINUTE, '1m0s'],
    [MINUTE + 500e6, '1m0.5s'],
    [HOUR, '1h0m0s'],
    [HOUR + 1, '1h0m0.000000001s'],
    [72 * HOUR, '72h0m0s'],
    [87600 * HOUR, '87600h0m0s'],
    [-1, '-1ns'],
    [-1500, '-1.5\u00b5s'],
    [-90 * SECOND, '-1m30s'],
    [-(2 * HOUR + 45 * MINUTE), '-2h45m0s'],
  ];
  for (const [nanos, text] of cases) {
    test(`${nanos}ns is ${JSON.stringify(text)}`, () => {
      assert.equal(formatDuration(nanos), text);
    });
  }
});

/** Go's Duration.String(), transcribed over BigInt: the naive oracle for formatDuration. */
function goDurationString(d: bigint): string {
  const negative = d < 0n;
  let u = negative ? -d : d;
  const fraction = (value: bigint, precision: number): [string, bigint] => {
    let digits = '';
    let print = false;
    for (let i = 0; i < precision; i++) {
      const digit = value % 10n;
      print ||= digit !== 0n;
      if (print) digits = String(digit) + digits;
      value /= 10n;
    }
    return [print ? `.${digits}` : '', value];
  };
  let text: string;
  if (u === 0n) return '0s';
  if (u < 1000n) {
    text = `${u}ns`;
  } else if (u < 1_000_000n) {
    const [frac, whole] = fraction(u, 3);
    text = `${whole}${frac}\u00b5s`;
  } else if (u < 1_000_000_000n) {
    const [frac, whole] = fraction(u, 6);
    text = `${whole}${frac}ms`;
  } else {
    const [frac, seconds] = fraction(u, 9);
    u = seconds / 60n;
    text = `${seconds % 60n}${frac}s`;
    if (u > 0n) {
      text = `${u % 60n}m${text}`;
      u /= 60n;
      if (u > 0n) text = `${u}h${text}`;
    }
  }
  return negative ? `-${text}` : text;
}

const SEED = Number(process.env['DURATION_SEED'] ?? 20260101);
const REPLAY = `DURATION_SEED=${SEED} node --import tsx --test test/duration.test.ts`;

/**
 * Integer nanoseconds spread over every magnitude from 1ns to about 104 days (2^53 ns),
 * both signs, so each unit and fraction length of Duration.String() appears.
 */
function randomNanos(random: () => number, count: number): number[] {
  const values: number[] = [];
  for (let i = 0; i < count; i++) {
    const digits = 1 + Math.floor(random() * 16);
    const magnitude = Math.min(Math.floor(random() * 10 ** digits), Number.MAX_SAFE_INTEGER);
    values.push(random() < 0.25 ? -magnitude : magnitude);
  }
  return values;
}

describe('formatDuration and parseDuration agree with Go on random values', () => {
  test('formatDuration matches a BigInt transcription of Duration.String', () => {
    const mismatches = randomNanos(mulberry32(SEED), 2000)
      .map((nanos) => ({ nanos, expected: goDurationString(BigInt(nanos)), actual: formatDuration(nanos) }))
      .filter((row) => row.expected !== row.actual);
    assert.deepEqual(mismatches, [], `SEED=${SEED} replay: ${REPLAY}`);
  });

  // Every Duration.String() output parses back to itself in Go (its fractions have at most
  // nine digits, so Go's float arithmetic is exact).
  test(
    'parseDuration(formatDuration(n)) === n',
    () => {
      const failures = randomNanos(mulberry32(SEED), 2000)
        .map((nanos) => ({ nanos, text: formatDuration(nanos), parsed: parseDuration(formatDuration(nanos)) }))
        .filter((row) => row.parsed !== row.nanos);
      assert.deepEqual(
        failures.slice(0, 5),
        [],
        `SEED=${SEED}: ${failures.length} of 2000 values do not round-trip; replay: ${REPLAY}`,
      );
    },
  );
});
