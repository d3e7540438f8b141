// Go compress/lzw compatibility (LSB, literal width 8): Go's own reader test vector, the framing
// Go ≥1.17's writer produces (leading clear, trailing EOF), round trips across the 4095-code
// reset, the output limit, and a seeded fuzz of lzwDecompress that must only ever throw LzwError.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LZW_CLEAR_CODE, LZW_EOF_CODE, LzwError, lzwCompress, lzwDecompress } from '../lib/lzw.js';
import { seededRng } from '../lib/rng.js';

const LIMIT = 1 << 24;

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** LSB-first code packer for hand-made streams. */
function packCodes(codes: readonly [number, number][]): Uint8Array {
  const out: number[] = [];
  let bits = 0;
  let nBits = 0;
  for (const [code, width] of codes) {
    bits |= code << nBits;
    nBits += width;
    while (nBits >= 8) {
      out.push(bits & 0xff);
      bits >>>= 8;
      nBits -= 8;
    }
  }
  if (nBits > 0) out.push(bits & 0xff);
  return Uint8Array.from(out);
}

describe('lzw', () => {
  it('decodes the Go reader test vector "tobe;LSB;8" (written without a leading clear code)', () => {
    const golden = Buffer.from('549e0829f2448a932754041234b8b0e0c1840101', 'hex');
    assert.equal(new TextDecoder().decode(lzwDecompress(golden, LIMIT)), 'TOBEORNOTTOBEORTOBEORNOT');
  });

  it('writes a leading clear code and a trailing EOF, as Go >=1.17 does', () => {
    assert.deepEqual([...lzwCompress(new Uint8Array(0))], [0x00, 0x03, 0x02]);
    const out = lzwCompress(bytesOf('TOBEORNOTTOBEORTOBEORNOT'));
    assert.equal(out[0], 0x00, 'first 8 bits of the 9-bit clear code 256');
    assert.equal((out[1] ?? 0) & 1, 1);
    assert.equal(new TextDecoder().decode(lzwDecompress(out, LIMIT)), 'TOBEORNOTTOBEORTOBEORNOT');
  });

  it('round-trips single bytes, repeats (the KwKwK case) and random data', () => {
    const rng = seededRng(7);
    const inputs = [Uint8Array.of(0), Uint8Array.of(255), new Uint8Array(1000).fill(97), bytesOf('abababababababab')];
    for (let n = 0; n < 20; n++) inputs.push(Uint8Array.from({ length: Math.floor(rng() * 3000) }, () => Math.floor(rng() * (n % 2 ? 4 : 256))));
    for (const input of inputs) assert.deepEqual(lzwDecompress(lzwCompress(input), LIMIT), input);
  });

  it('round-trips past 4095 codes, where the writer emits a clear code and starts over', () => {
    const rng = seededRng(11);
    const input = Uint8Array.from({ length: 200_000 }, () => Math.floor(rng() * 256));
    assert.deepEqual(lzwDecompress(lzwCompress(input), LIMIT), input);
    const text = Uint8Array.from({ length: 300_000 }, (_, i) => 97 + ((i * 7 + (i >> 5)) % 13));
    assert.deepEqual(lzwDecompress(lzwCompress(text), LIMIT), text);
  });

  it('keeps decoding with a full table and no clear code, as Go does', () => {
    // Literal 'a' then codes 258, 259... each defined one step earlier, up to a full 12-bit table.
    const codes: [number, number][] = [[97, 9]];
    let hi = 258;
    let width = 9;
    let expectedLength = 1;
    for (let code = 258; code <= 4095; code++) {
      // Sending `hi` itself is the KwKwK case: the previous string plus its first byte.
      codes.push([code, width]);
      expectedLength += code - 256;
      hi++;
      if (hi >= 1 << width && width < 12) width++;
    }
    // The table is full now: 4095 and 300 stay decodable, and nothing new is added.
    codes.push([4095, 12], [300, 12], [LZW_EOF_CODE, 12]);
    expectedLength += 4095 - 256 + (300 - 256);
    const out = lzwDecompress(packCodes(codes), 1 << 24);
    assert.equal(out.length, expectedLength);
    assert.ok(out.every((byte) => byte === 97));
  });

  it('refuses output beyond the named limit (a decompression bomb)', () => {
    const input = new Uint8Array(100_000);
    const compressed = lzwCompress(input);
    assert.ok(compressed.length < 2000);
    assert.throws(() => lzwDecompress(compressed, 99_999), (error: unknown) => error instanceof LzwError && error.code === 'ERR_LZW_TOO_LARGE');
    assert.equal(lzwDecompress(compressed, 100_000).length, 100_000);
  });

  it('treats a stream without the EOF code as truncated and an undefined code as corrupt', () => {
    const whole = lzwCompress(bytesOf('hello hello hello'));
    assert.throws(() => lzwDecompress(whole.subarray(0, whole.length - 2), LIMIT), (error: unknown) => error instanceof LzwError && error.code === 'ERR_LZW_TRUNCATED');
    assert.throws(() => lzwDecompress(new Uint8Array(0), LIMIT), (error: unknown) => error instanceof LzwError && error.code === 'ERR_LZW_TRUNCATED');
    // clear, then code 300 with nothing defined.
    assert.throws(() => lzwDecompress(packCodes([[LZW_CLEAR_CODE, 9], [300, 9], [LZW_EOF_CODE, 9]]), LIMIT), (error: unknown) => error instanceof LzwError && error.code === 'ERR_LZW_CORRUPT');
    // clear, then 258 right after the clear (hi is 257 = EOF, so 258 is past it).
    assert.throws(() => lzwDecompress(packCodes([[LZW_CLEAR_CODE, 9], [258, 9]]), LIMIT), (error: unknown) => error instanceof LzwError && error.code === 'ERR_LZW_CORRUPT');
  });

  it('ignores bytes after the EOF code, as Go does', () => {
    const whole = lzwCompress(bytesOf('abc'));
    const padded = new Uint8Array(whole.length + 5).fill(0xff);
    padded.set(whole);
    assert.equal(new TextDecoder().decode(lzwDecompress(padded, LIMIT)), 'abc');
  });

  it('fuzz: mutated and truncated streams only ever throw LzwError', () => {
    const rng = seededRng(2024);
    const seeds = [lzwCompress(bytesOf('the quick brown fox jumps over the lazy dog '.repeat(20))), lzwCompress(Uint8Array.from({ length: 500 }, (_, i) => i & 0xff))];
    for (let i = 0; i < 4000; i++) {
      const base = seeds[i % seeds.length] ?? new Uint8Array(0);
      const input = base.slice(0, Math.floor(rng() * (base.length + 1)));
      const flips = Math.floor(rng() * 4);
      for (let f = 0; f < flips && input.length > 0; f++) input[Math.floor(rng() * input.length)] = Math.floor(rng() * 256);
      try {
        lzwDecompress(input, 10_000);
      } catch (error) {
        assert.ok(error instanceof LzwError, `seed 2024 iteration ${i}: ${String(error)}`);
      }
    }
  });
});
