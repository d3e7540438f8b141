import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decode, encode, float64, MsgpackError, MsgpackExt, MsgpackReader, MsgpackWriter, MSGPACK_DEPTH_MAX } from '../lib/msgpack.js';
import { mulberry32 } from './support.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const ascii = (text: string): string => Buffer.from(text).toString('hex');

describe('Go compatibility (shared/spec/wire.md §1.4 test vectors)', () => {
  test('memberlist ping with every field', () => {
    const ping = { SeqNo: 1, Node: 'n2', SourceAddr: new Uint8Array([0x7f, 0, 0, 1]), SourcePort: 7946, SourceNode: 'n1' };
    const expected = `85 a4${ascii('Node')} a2${ascii('n2')} a5${ascii('SeqNo')} 01 aa${ascii('SourceAddr')} a4 7f000001 aa${ascii('SourceNode')} a2${ascii('n1')} aa${ascii('SourcePort')} cd 1f0a`;
    assert.equal(hex(encode(ping, { goCompatible: true })), expected.replace(/\s+/g, ''));
  });

  test('ping with empty optional fields left out', () => {
    assert.equal(hex(encode({ SeqNo: 300, Node: '' }, { goCompatible: true })), `82a4${ascii('Node')}a0a5${ascii('SeqNo')}cd012c`);
  });

  test('ackResp with a nil payload', () => {
    assert.equal(hex(encode({ SeqNo: 7, Payload: null }, { goCompatible: true })), `82a7${ascii('Payload')}c0a5${ascii('SeqNo')}07`);
  });

  test('pushPullHeader', () => {
    assert.equal(hex(encode({ Nodes: 2, UserStateLen: 600, Join: true }, { goCompatible: true })), `83a4${ascii('Join')}c3a5${ascii('Nodes')}02ac${ascii('UserStateLen')}cd0258`);
  });

  test('Go never writes str8: a 40-byte string uses str16', () => {
    const text = 'x'.repeat(40);
    assert.equal(hex(encode(text, { goCompatible: true })).slice(0, 6), 'da0028');
    assert.equal(hex(encode(text)).slice(0, 4), 'd928');
  });

  test('a short string of multi-byte characters still gets the smallest header', () => {
    assert.equal(hex(encode('\u00e9\u00e9', { goCompatible: true })), 'a4c3a9c3a9');
  });

  test('float64 fields are always 8-byte floats, even when integral', () => {
    assert.equal(hex(encode(float64(0))), 'cb0000000000000000');
    assert.equal(hex(encode(1.5)), 'cb3ff8000000000000');
  });

  test('Durations are the smallest integer: 3 s and 5 s', () => {
    assert.equal(hex(encode(3e9)), 'ceb2d05e00');
    assert.equal(hex(encode(5e9)), 'cf000000012a05f200');
  });
});

describe('round trips', () => {
  const values: unknown[] = [
    null, true, false, 0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER,
    -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, Number.MIN_SAFE_INTEGER,
    0.5, -1e300, 3304740253564472344n, 18446744073709551615n, -9223372036854775808n,
    '', 'a', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(300), 'x'.repeat(70000), 'h\u00e9llo \u{1f600}',
    new Uint8Array([]), new Uint8Array([1, 2, 3]), new Uint8Array(300), new Uint8Array(70000),
    [], [1, [2, [3]]], new Array(20).fill(7), { a: 1, b: [true, null], c: { d: 'e' } },
  ];
  for (const value of values) {
    test(`${typeof value} ${String(value).slice(0, 20)}`, () => {
      assert.deepEqual(decode(encode(value)), value);
    });
  }

  test('a map of 70,000 keys', () => {
    const big: Record<string, number> = {};
    for (let i = 0; i < 70_000; i++) big[`k${i}`] = i;
    assert.deepEqual(decode(encode(big)), big);
  });

  test('extensions are kept opaque', () => {
    const ext = new MsgpackExt(-1, new Uint8Array([1, 2, 3, 4]));
    assert.deepEqual(decode(encode(ext)), ext);
  });

  test('rawStrings returns str values as bytes, as Go decodes into []byte', () => {
    assert.deepEqual(decode(encode('ab', { goCompatible: true }), { rawStrings: true }), new Uint8Array([0x61, 0x62]));
  });

  test('a reader reads several framed values in a row', () => {
    const writer = new MsgpackWriter();
    writer.write(1);
    writer.write('two');
    const reader = new MsgpackReader(writer.finish());
    assert.equal(reader.read(), 1);
    assert.equal(reader.read(), 'two');
    assert.equal(reader.remaining, 0);
  });

  test('any integer width decodes to the same number', () => {
    for (const encoded of ['05', 'cc05', 'cd0005', 'ce00000005', 'cf0000000000000005', 'd005', 'd10005', 'd200000005', 'd30000000000000005']) {
      assert.equal(decode(fromHex(encoded)), 5, encoded);
    }
  });
});

describe('malformed input', () => {
  const bad: [string, string][] = [
    ['', 'ERR_MSGPACK_TRUNCATED'],
    ['c1', 'ERR_MSGPACK_INVALID'],
    ['cd00', 'ERR_MSGPACK_TRUNCATED'],
    ['a5616263', 'ERR_MSGPACK_TRUNCATED'],
    ['dbffffffff', 'ERR_MSGPACK_TRUNCATED'],
    ['ddffffffff', 'ERR_MSGPACK_TRUNCATED'],
    ['dfffffffff', 'ERR_MSGPACK_TRUNCATED'],
    ['9301', 'ERR_MSGPACK_TRUNCATED'],
    ['81c001', 'ERR_MSGPACK_INVALID'],
    ['0102', 'ERR_MSGPACK_INVALID'],
  ];
  for (const [input, code] of bad) {
    test(`${input || '(empty)'} is ${code}`, () => {
      assert.throws(() => decode(fromHex(input)), (error: unknown) => error instanceof MsgpackError && error.code === code);
    });
  }

  test('nesting beyond the limit is refused', () => {
    const deep = new Uint8Array(MSGPACK_DEPTH_MAX + 2).fill(0x91);
    assert.throws(() => decode(deep), (error: unknown) => error instanceof MsgpackError && error.code === 'ERR_MSGPACK_DEPTH');
  });

  test('a __proto__ key is data, not a prototype', () => {
    const bytes = fromHex(`81a9${ascii('__proto__')}81a1${ascii('x')}01`);
    const value = decode(bytes) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
    assert.deepEqual(Object.keys(value), ['__proto__']);
    assert.equal(({} as Record<string, unknown>)['x'], undefined);
  });

  test('20,000 random inputs never throw anything but MsgpackError, each quickly', () => {
    const next = mulberry32(20261122);
    const samples = [encode({ a: [1, 'x', { b: new Uint8Array(3) }] }), encode('hello'), encode([1, 2, 3, -1, 1.5])];
    for (let i = 0; i < 20_000; i++) {
      const base = samples[i % samples.length] ?? new Uint8Array();
      const input = new Uint8Array(i % 4 === 0 ? Math.floor(next() * 64) : base.length);
      if (i % 4 === 0) for (let j = 0; j < input.length; j++) input[j] = Math.floor(next() * 256);
      else {
        input.set(base);
        input[Math.floor(next() * input.length)] = Math.floor(next() * 256);
      }
      const started = performance.now();
      try {
        decode(input);
      } catch (error) {
        assert.ok(error instanceof MsgpackError, `SEED=20261122 input ${hex(input)} threw ${String(error)}`);
      }
      assert.ok(performance.now() - started < 50, `input ${hex(input)} took too long`);
    }
  });

  test('values msgpack cannot carry are refused on encode', () => {
    assert.throws(() => encode(() => 1), MsgpackError);
    assert.throws(() => encode(2n ** 64n), MsgpackError);
  });
});
