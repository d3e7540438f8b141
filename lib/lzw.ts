// LZW compression as Go's compress/lzw writes and reads it, for memberlist's compress message.
//
// memberlist wraps packets and streams in `compress{Algo: 0, Buf}` where Buf is
// `lzw.NewWriter(w, lzw.LSB, 8)` output (memberlist util.go compressPayload/decompressBuffer).
// The format (shared/spec/wire.md §2.4): codes are packed least-significant bit first; literal
// codes are 0..255, the clear code is 256, the end-of-data code is 257; the code width starts at
// 9 bits and grows by one each time the next free code reaches a power of two, up to 12 bits.
// Go's writer (since go1.17, what Debian's serf is built with) starts with a clear code and ends
// with the end-of-data code; when the next free code reaches 4095 it emits a clear code and
// starts over. Go's reader also accepts streams without the leading clear code, and when it has
// used every 12-bit code it stops adding codes until the next clear code; ours does the same.
//
// Not here: the msgpack `compress` wrapper (gossipwire.ts) and streaming I/O (whole buffers only:
// packets are at most 64 KiB and push/pull state at most 20 MiB).
//
// Invariants: lzwCompress output is byte-identical to Go's for the same input (greedy longest
// match, same code numbering, same clear points). lzwDecompress throws nothing but LzwError; it
// never produces more than the caller's `outputBytesMax` (a decompression bomb is an error, as in
// memberlist ≥0.5.x's maxDecompressedBytes), never reads a dictionary entry that was not
// assigned since the last clear (Go reads stale entries there; we refuse the stream), and a
// stream that ends before the end-of-data code is an error, as Go returns io.ErrUnexpectedEOF.
// Bytes after the end-of-data code are ignored, as Go ignores them.
//
// References: Go src/compress/lzw/{reader,writer}.go; hashicorp/memberlist util.go.

// ---------------------------------------------------------------------------------------------
// Exported types

export type LzwErrorCode = 'ERR_LZW_CORRUPT' | 'ERR_LZW_TRUNCATED' | 'ERR_LZW_TOO_LARGE';

/** Bad or oversized LZW input. The only error lzwDecompress throws. */
export class LzwError extends Error {
  override readonly name = 'LzwError';
  constructor(
    readonly code: LzwErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** Literal width memberlist passes to lzw.NewWriter/NewReader (lzwLitWidth). */
export const LZW_LITERAL_WIDTH = 8;
/** The clear code: 1 << literal width. */
export const LZW_CLEAR_CODE = 256;
/** The end-of-data code: clear + 1. */
export const LZW_EOF_CODE = 257;
/** Codes never get wider than this (Go's maxWidth). */
export const LZW_CODE_WIDTH_MAX = 12;
/** The largest code (Go's maxCode, 1<<12 - 1). */
export const LZW_CODE_MAX = (1 << LZW_CODE_WIDTH_MAX) - 1;
/** Largest output lzwCompress accepts; beyond it the caller should not be compressing a whole buffer. */
export const LZW_INPUT_BYTES_MAX = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Exported API

/** Compresses `input` exactly as Go's lzw.NewWriter(w, lzw.LSB, 8) followed by Close would. */
export function lzwCompress(input: Uint8Array): Uint8Array {
  if (input.length > LZW_INPUT_BYTES_MAX) throw new LzwError('ERR_LZW_TOO_LARGE', `input of ${input.length} bytes is over ${LZW_INPUT_BYTES_MAX}`);
  const out = new BitWriter(input.length + 16);
  const table = new Uint32Array(HASH_TABLE_SIZE).fill(INVALID_ENTRY);
  let width = LZW_LITERAL_WIDTH + 1;
  let hi = LZW_EOF_CODE;
  let overflow = 1 << width;
  out.write(LZW_CLEAR_CODE, width);
  if (input.length === 0) {
    out.write(LZW_EOF_CODE, width);
    return out.finish();
  }
  // Go's incHi: the next free code grows the width at a power of two and forces a clear at 4095.
  const incrementHi = (): boolean => {
    hi++;
    if (hi === overflow) {
      width++;
      overflow <<= 1;
    }
    if (hi !== LZW_CODE_MAX) return true;
    out.write(LZW_CLEAR_CODE, width);
    width = LZW_LITERAL_WIDTH + 1;
    hi = LZW_EOF_CODE;
    overflow = 1 << width;
    table.fill(INVALID_ENTRY);
    return false;
  };
  let code = input[0] ?? 0;
  outer: for (let i = 1; i < input.length; i++) {
    const literal = input[i] ?? 0;
    const key = (code << 8) | literal;
    let hash = ((key >>> 12) ^ key) & HASH_MASK;
    for (let entry = table[hash] ?? INVALID_ENTRY; entry !== INVALID_ENTRY; entry = table[hash] ?? INVALID_ENTRY) {
      if (entry >>> 12 === key) {
        code = entry & LZW_CODE_MAX;
        continue outer;
      }
      hash = (hash + 1) & HASH_MASK;
    }
    out.write(code, width);
    code = literal;
    if (!incrementHi()) continue;
    while (table[hash] !== INVALID_ENTRY) hash = (hash + 1) & HASH_MASK;
    table[hash] = ((key << 12) | hi) >>> 0;
  }
  out.write(code, width);
  incrementHi();
  out.write(LZW_EOF_CODE, width);
  return out.finish();
}

/**
 * Decompresses a Go lzw (LSB, literal width 8) stream. Throws LzwError when the stream is
 * corrupt, ends before the end-of-data code, or would produce more than `outputBytesMax` bytes.
 */
export function lzwDecompress(input: Uint8Array, outputBytesMax: number): Uint8Array {
  if (!Number.isSafeInteger(outputBytesMax) || outputBytesMax < 0) throw new LzwError('ERR_LZW_TOO_LARGE', `output limit ${outputBytesMax} is not a byte count`);
  const out = new ByteSink(Math.min(outputBytesMax, Math.max(64, input.length * 3)), outputBytesMax);
  const prefix = new Uint16Array(LZW_CODE_MAX + 1);
  const suffix = new Uint8Array(LZW_CODE_MAX + 1);
  const stack = new Uint8Array(LZW_CODE_MAX + 2);
  let width = LZW_LITERAL_WIDTH + 1;
  let hi = LZW_EOF_CODE;
  let overflow = 1 << width;
  let last = INVALID_CODE;
  // Set once every 12-bit code is assigned: entry `hi` (4095) then exists while `last` is invalid.
  let isFull = false;
  let bits = 0;
  let nBits = 0;
  let offset = 0;
  for (;;) {
    while (nBits < width) {
      if (offset >= input.length) throw new LzwError('ERR_LZW_TRUNCATED', `stream ends without the end-of-data code after ${out.length} bytes`);
      bits |= (input[offset++] ?? 0) << nBits;
      nBits += 8;
    }
    const code = bits & ((1 << width) - 1);
    bits >>>= width;
    nBits -= width;
    if (code === LZW_CLEAR_CODE) {
      width = LZW_LITERAL_WIDTH + 1;
      hi = LZW_EOF_CODE;
      overflow = 1 << width;
      last = INVALID_CODE;
      isFull = false;
      continue;
    }
    if (code === LZW_EOF_CODE) return out.finish();
    let first: number;
    if (code < LZW_CLEAR_CODE) {
      out.push(code);
      first = code;
    } else if (code < hi || (code === hi && isFull)) {
      first = expand(code, prefix, suffix, stack, out, -1);
    } else if (code === hi && last !== INVALID_CODE) {
      // The code being defined right now: the previous string plus its own first byte.
      first = expand(last, prefix, suffix, stack, out, firstByte(last, prefix));
    } else {
      throw new LzwError('ERR_LZW_CORRUPT', `code ${code} is not defined (next free code ${hi}) at byte ${offset}`);
    }
    if (last !== INVALID_CODE) {
      suffix[hi] = first;
      prefix[hi] = last;
    }
    last = code;
    hi++;
    if (hi >= overflow) {
      if (width === LZW_CODE_WIDTH_MAX) {
        // Out of codes: keep decoding with the full table and add nothing until a clear code.
        last = INVALID_CODE;
        hi--;
        isFull = true;
      } else {
        width++;
        overflow <<= 1;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

// Go's writer hash table: 4 × 4096 slots, linear probing, entry = key<<12 | code.
const HASH_TABLE_SIZE = 4 * (1 << LZW_CODE_WIDTH_MAX);
const HASH_MASK = HASH_TABLE_SIZE - 1;
const INVALID_ENTRY = 0xffffffff;
const INVALID_CODE = 0xffff;

/** The first (literal) byte of a defined code's string. Chains end: prefix[c] < c always. */
function firstByte(code: number, prefix: Uint16Array): number {
  let c = code;
  while (c >= LZW_CLEAR_CODE) c = prefix[c] ?? 0;
  return c;
}

/**
 * Appends the string of `code` (plus `extra` when ≥0) to `out`, returns the string's first byte.
 * The string is built backwards in `stack`, then copied out in order.
 */
function expand(code: number, prefix: Uint16Array, suffix: Uint8Array, stack: Uint8Array, out: ByteSink, extra: number): number {
  let i = stack.length;
  if (extra >= 0) stack[--i] = extra;
  let c = code;
  while (c >= LZW_CLEAR_CODE) {
    stack[--i] = suffix[c] ?? 0;
    c = prefix[c] ?? 0;
  }
  stack[--i] = c;
  out.pushAll(stack.subarray(i));
  return c;
}

/** LSB-first bit packer with a growing buffer. */
class BitWriter {
  private buffer: Uint8Array;
  private length = 0;
  private bits = 0;
  private nBits = 0;

  constructor(capacity: number) {
    this.buffer = new Uint8Array(Math.max(16, capacity));
  }

  write(code: number, width: number): void {
    this.bits |= code << this.nBits;
    this.nBits += width;
    while (this.nBits >= 8) {
      this.byte(this.bits & 0xff);
      this.bits >>>= 8;
      this.nBits -= 8;
    }
  }

  finish(): Uint8Array {
    if (this.nBits > 0) this.byte(this.bits & 0xff);
    this.bits = 0;
    this.nBits = 0;
    return this.buffer.slice(0, this.length);
  }

  private byte(value: number): void {
    if (this.length === this.buffer.length) {
      const grown = new Uint8Array(this.buffer.length * 2);
      grown.set(this.buffer);
      this.buffer = grown;
    }
    this.buffer[this.length++] = value;
  }
}

/** Output buffer that refuses to grow past a limit. */
class ByteSink {
  private buffer: Uint8Array;
  length = 0;

  constructor(
    capacity: number,
    private readonly bytesMax: number,
  ) {
    this.buffer = new Uint8Array(Math.max(16, capacity));
  }

  push(value: number): void {
    this.reserve(1);
    this.buffer[this.length++] = value;
  }

  pushAll(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }

  private reserve(extra: number): void {
    const needed = this.length + extra;
    if (needed > this.bytesMax) throw new LzwError('ERR_LZW_TOO_LARGE', `decompressed data exceeds the limit of ${this.bytesMax} bytes`);
    if (needed <= this.buffer.length) return;
    let capacity = this.buffer.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(Math.min(capacity, Math.max(needed, this.bytesMax)));
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
  }
}
