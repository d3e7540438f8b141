// MessagePack encoding and decoding.
//
// Three things in Consul speak msgpack: memberlist/serf gossip, hashicorp/raft's transport, and
// Consul's own RPC and Raft log payloads. consul-ts also uses it for its FSM commands and
// snapshot records. One codec serves all of them; options select the dialect:
// - `goCompatible` (memberlist 0.2.2, serf, raft 1.x with go-msgpack 0.5.5, "old spec"): strings
//   and byte slices are both written as the str family and never as bin, with no str8 header
//   (0xd9), map keys sorted byte-wise as Go sorts struct fields. See shared/spec/wire.md §1.
// - default: str8 allowed, bytes as bin, keys in insertion order (what our own formats use).
// The decoder accepts both dialects, every integer width, nil anywhere, and skips extension
// types by returning them as MsgpackExt.
//
// Decoding untrusted bytes never throws anything but MsgpackError: every length is checked
// against the bytes left before anything is read or allocated, nesting depth is bounded, and a
// map key `__proto__` is stored as a plain property, never as a prototype.
//
// Integers: the smallest encoding for the value, as Go writes them. Decoded integers are JS
// numbers when exact, bigint beyond 2^53. JS numbers that are integers encode as integers; wrap
// a value in float64() to force the 8-byte float form Go uses for float64 fields.

// ---------------------------------------------------------------------------------------------
// Types

/** A msgpack value as decoded. str is a string (or bytes with `rawStrings`), bin is bytes. */
export type MsgpackValue = null | boolean | number | bigint | string | Uint8Array | MsgpackValue[] | { [key: string]: MsgpackValue } | MsgpackExt | Float64;

/** An extension value (type -1 is the msgpack timestamp). Kept opaque. */
export class MsgpackExt {
  constructor(
    readonly type: number,
    readonly data: Uint8Array,
  ) {}
}

/** Marks a number to be written as an 8-byte float even when it is integral (Go float64 fields). */
export class Float64 {
  constructor(readonly value: number) {}
}

export function float64(value: number): Float64 {
  return new Float64(value);
}

export type MsgpackErrorCode = 'ERR_MSGPACK_TRUNCATED' | 'ERR_MSGPACK_INVALID' | 'ERR_MSGPACK_DEPTH' | 'ERR_MSGPACK_UNENCODABLE';

/** Bad input, with a code. The only error this module throws. */
export class MsgpackError extends Error {
  override readonly name = 'MsgpackError';
  constructor(
    readonly code: MsgpackErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface EncodeOptions {
  /** go-msgpack 0.5.5's dialect: raw str for strings and bytes, no str8, keys sorted. */
  readonly goCompatible?: boolean;
}

export interface DecodeOptions {
  /** Return every str as bytes (Uint8Array) rather than a string: Go's RawToString=false. */
  readonly rawStrings?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Containers nested deeper than this are refused (no peer sends more than a few levels). */
export const MSGPACK_DEPTH_MAX = 64;

// ---------------------------------------------------------------------------------------------
// Encoding

/** Encodes one value. */
export function encode(value: unknown, options: EncodeOptions = {}): Uint8Array {
  const writer = new MsgpackWriter(options);
  writer.write(value);
  return writer.finish();
}

/** Decodes exactly one value filling `bytes`; trailing bytes are an error. */
export function decode(bytes: Uint8Array, options: DecodeOptions = {}): MsgpackValue {
  const reader = new MsgpackReader(bytes, options);
  const value = reader.read();
  if (reader.offset !== bytes.length) throw new MsgpackError('ERR_MSGPACK_INVALID', `${bytes.length - reader.offset} trailing bytes after the value`);
  return value;
}

/** Decodes values one after another from a buffer (framed protocols read several in a row). */
export class MsgpackReader {
  offset = 0;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly options: DecodeOptions = {},
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes not consumed yet. */
  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  /** Reads the next value. Throws MsgpackError on malformed or truncated input. */
  read(): MsgpackValue {
    return this.readValue(0);
  }

  /** Reads an array header and returns its length (for positional records). */
  readArrayLength(): number {
    const byte = this.u8();
    if ((byte & 0xf0) === 0x90) return byte & 0x0f;
    if (byte === 0xdc) return this.u16();
    if (byte === 0xdd) return this.u32();
    throw new MsgpackError('ERR_MSGPACK_INVALID', `expected an array at offset ${this.offset - 1}`);
  }

  /** Reads a value that must be a string. */
  readString(): string {
    const value = this.read();
    if (typeof value === 'string') return value;
    if (value instanceof Uint8Array) return TEXT_DECODER.decode(value);
    throw new MsgpackError('ERR_MSGPACK_INVALID', `expected a string before offset ${this.offset}`);
  }

  /** Reads a value that must be a safe integer. */
  readInteger(): number {
    const value = this.read();
    if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
    throw new MsgpackError('ERR_MSGPACK_INVALID', `expected an integer before offset ${this.offset}`);
  }

  /** Reads a value that must be a non-negative integer below 2^64, as a bigint. */
  readUint64(): bigint {
    const value = this.read();
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value === 0 ? 0n : BigInt(value);
    if (typeof value === 'bigint' && value >= 0n) return value;
    throw new MsgpackError('ERR_MSGPACK_INVALID', `expected a uint64 before offset ${this.offset}`);
  }

  /** Reads bytes (bin or raw str) or nil. The bytes are a view into the input. */
  readBytesOrNil(): Uint8Array | null {
    const byte = this.bytes[this.offset];
    if (byte === 0xc0) {
      this.offset++;
      return null;
    }
    const value = this.readValue(0);
    if (value instanceof Uint8Array) return value;
    if (typeof value === 'string') return TEXT_ENCODER.encode(value);
    throw new MsgpackError('ERR_MSGPACK_INVALID', `expected bytes before offset ${this.offset}`);
  }

  private readValue(depth: number): MsgpackValue {
    if (depth > MSGPACK_DEPTH_MAX) throw new MsgpackError('ERR_MSGPACK_DEPTH', `nesting deeper than ${MSGPACK_DEPTH_MAX}`);
    const byte = this.u8();
    if (byte <= 0x7f) return byte;
    if (byte >= 0xe0) return byte - 0x100;
    if ((byte & 0xe0) === 0xa0) return this.str(byte & 0x1f);
    if ((byte & 0xf0) === 0x90) return this.array(byte & 0x0f, depth);
    if ((byte & 0xf0) === 0x80) return this.map(byte & 0x0f, depth);
    switch (byte) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bin(this.u8());
      case 0xc5: return this.bin(this.u16());
      case 0xc6: return this.bin(this.u32());
      case 0xc7: return this.ext(this.u8());
      case 0xc8: return this.ext(this.u16());
      case 0xc9: return this.ext(this.u32());
      case 0xca: return this.need(4) && this.advance(4, this.view.getFloat32(this.offset));
      case 0xcb: return this.need(8) && this.advance(8, this.view.getFloat64(this.offset));
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: return exactInteger(this.need(8) && this.advance(8, this.view.getBigUint64(this.offset)));
      case 0xd0: return this.need(1) && this.advance(1, this.view.getInt8(this.offset));
      case 0xd1: return this.need(2) && this.advance(2, this.view.getInt16(this.offset));
      case 0xd2: return this.need(4) && this.advance(4, this.view.getInt32(this.offset));
      case 0xd3: return exactInteger(this.need(8) && this.advance(8, this.view.getBigInt64(this.offset)));
      case 0xd4: return this.ext(1);
      case 0xd5: return this.ext(2);
      case 0xd6: return this.ext(4);
      case 0xd7: return this.ext(8);
      case 0xd8: return this.ext(16);
      case 0xd9: return this.str(this.u8());
      case 0xda: return this.str(this.u16());
      case 0xdb: return this.str(this.u32());
      case 0xdc: return this.array(this.u16(), depth);
      case 0xdd: return this.array(this.u32(), depth);
      case 0xde: return this.map(this.u16(), depth);
      case 0xdf: return this.map(this.u32(), depth);
      default: throw new MsgpackError('ERR_MSGPACK_INVALID', `unrecognized descriptor byte 0x${byte.toString(16)} at offset ${this.offset - 1}`);
    }
  }

  private str(length: number): string | Uint8Array {
    const bytes = this.take(length);
    return this.options.rawStrings ? bytes : TEXT_DECODER.decode(bytes);
  }

  private bin(length: number): Uint8Array {
    return this.take(length);
  }

  private ext(length: number): MsgpackExt {
    const type = this.need(1) && this.advance(1, this.view.getInt8(this.offset));
    return new MsgpackExt(type, this.take(length));
  }

  private array(count: number, depth: number): MsgpackValue[] {
    // Every element takes at least one byte: a count beyond the bytes left is a lie.
    if (count > this.remaining) throw truncated(this.offset, count);
    const result: MsgpackValue[] = new Array(count);
    for (let i = 0; i < count; i++) result[i] = this.readValue(depth + 1);
    return result;
  }

  private map(count: number, depth: number): { [key: string]: MsgpackValue } {
    if (count * 2 > this.remaining) throw truncated(this.offset, count * 2);
    const result: { [key: string]: MsgpackValue } = {};
    for (let i = 0; i < count; i++) {
      const rawKey = this.readValue(depth + 1);
      const key = typeof rawKey === 'string' ? rawKey : rawKey instanceof Uint8Array ? TEXT_DECODER.decode(rawKey) : typeof rawKey === 'number' || typeof rawKey === 'bigint' ? String(rawKey) : undefined;
      if (key === undefined) throw new MsgpackError('ERR_MSGPACK_INVALID', `map key at offset ${this.offset} is not a string`);
      const value = this.readValue(depth + 1);
      // A key named __proto__ must stay data: assignment would replace the prototype.
      if (key === '__proto__') Object.defineProperty(result, key, { value, enumerable: true, writable: true, configurable: true });
      else result[key] = value;
    }
    return result;
  }

  private take(length: number): Uint8Array {
    this.need(length);
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }

  private u8(): number {
    this.need(1);
    return this.bytes[this.offset++] ?? 0;
  }

  private u16(): number {
    this.need(2);
    return this.advance(2, this.view.getUint16(this.offset));
  }

  private u32(): number {
    this.need(4);
    return this.advance(4, this.view.getUint32(this.offset));
  }

  /** Checks that `length` bytes remain; returns true so it can guard an expression. */
  private need(length: number): true {
    if (length > this.remaining) throw truncated(this.offset, length);
    return true;
  }

  private advance<T>(length: number, value: T): T {
    this.offset += length;
    return value;
  }
}

const TEXT_DECODER = new TextDecoder('utf-8');
const TEXT_ENCODER = new TextEncoder();

function truncated(offset: number, wanted: number): MsgpackError {
  return new MsgpackError('ERR_MSGPACK_TRUNCATED', `input ends before ${wanted} more bytes at offset ${offset}`);
}

function exactInteger(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/** Appends msgpack values to a growing buffer. Reusable for framing several values. */
export class MsgpackWriter {
  private buffer: Uint8Array;
  private view: DataView;
  private length = 0;

  constructor(
    private readonly options: EncodeOptions = {},
    initialCapacity = 256,
  ) {
    this.buffer = new Uint8Array(Math.max(16, initialCapacity));
    this.view = new DataView(this.buffer.buffer);
  }

  /** Bytes written so far. */
  get byteLength(): number {
    return this.length;
  }

  /** Appends bytes as they are (framing around msgpack values). */
  writeRaw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** Appends one raw byte. */
  writeRawByte(value: number): void {
    this.byte(value & 0xff);
  }

  /** Appends a big-endian uint32 (a length placeholder to patch later). */
  writeRawUint32(value: number): void {
    this.ensure(4);
    this.view.setUint32(this.length, value);
    this.length += 4;
  }

  /** Overwrites a big-endian uint32 written earlier at `offset`. */
  patchUint32(offset: number, value: number): void {
    if (offset < 0 || offset + 4 > this.length) throw new MsgpackError('ERR_MSGPACK_UNENCODABLE', `patch at ${offset} is outside the ${this.length} bytes written`);
    this.view.setUint32(offset, value);
  }

  /** Appends an array header for `count` items that the caller writes next. */
  writeArrayHeader(count: number): void {
    this.header(count, 0x90, 0xdc, 0xdd);
  }

  /** Appends one value. Throws MsgpackError for values msgpack cannot carry (functions, symbols, NaN keys...). */
  write(value: unknown, depth = 0): void {
    if (depth > MSGPACK_DEPTH_MAX) throw new MsgpackError('ERR_MSGPACK_DEPTH', `nesting deeper than ${MSGPACK_DEPTH_MAX}`);
    if (value === null || value === undefined) return this.byte(0xc0);
    switch (typeof value) {
      case 'boolean': return this.byte(value ? 0xc3 : 0xc2);
      case 'number': return isInt64Range(value) ? this.integer(value) : this.float(value);
      case 'bigint': return this.bigInteger(value);
      case 'string': return this.string(value);
      case 'object': return this.object(value, depth);
      default: throw new MsgpackError('ERR_MSGPACK_UNENCODABLE', `cannot encode a ${typeof value}`);
    }
  }

  /** The bytes written so far (a copy-free view; do not write after taking it). */
  finish(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }

  /** Forgets what was written, keeping the buffer for reuse. */
  reset(): void {
    this.length = 0;
  }

  private object(value: object, depth: number): void {
    if (value instanceof Uint8Array) return this.bytes(value);
    if (value instanceof Float64) return this.float(value.value);
    if (value instanceof MsgpackExt) return this.ext(value);
    if (Array.isArray(value)) {
      this.header(value.length, 0x90, 0xdc, 0xdd);
      for (const item of value) this.write(item, depth + 1);
      return;
    }
    const keys = Object.keys(value).filter((key) => (value as Record<string, unknown>)[key] !== undefined);
    if (this.options.goCompatible) keys.sort(compareBytewise);
    this.header(keys.length, 0x80, 0xde, 0xdf);
    for (const key of keys) {
      this.string(key);
      this.write((value as Record<string, unknown>)[key], depth + 1);
    }
  }

  private integer(value: number): void {
    if (!Number.isSafeInteger(value)) return this.bigInteger(BigInt(value));
    if (value >= 0) {
      if (value <= 0x7f) return this.byte(value);
      if (value <= 0xff) return this.bytesOf(0xcc, 1, () => this.view.setUint8(this.length, value));
      if (value <= 0xffff) return this.bytesOf(0xcd, 2, () => this.view.setUint16(this.length, value));
      if (value <= 0xffffffff) return this.bytesOf(0xce, 4, () => this.view.setUint32(this.length, value));
      return this.bytesOf(0xcf, 8, () => this.view.setBigUint64(this.length, BigInt(value)));
    }
    if (value >= -32) return this.byte(value + 0x100);
    if (value >= -0x80) return this.bytesOf(0xd0, 1, () => this.view.setInt8(this.length, value));
    if (value >= -0x8000) return this.bytesOf(0xd1, 2, () => this.view.setInt16(this.length, value));
    if (value >= -0x80000000) return this.bytesOf(0xd2, 4, () => this.view.setInt32(this.length, value));
    return this.bytesOf(0xd3, 8, () => this.view.setBigInt64(this.length, BigInt(value)));
  }

  private bigInteger(value: bigint): void {
    if (value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)) return this.integer(Number(value));
    if (value > 0n) {
      if (value > 0xffffffffffffffffn) throw new MsgpackError('ERR_MSGPACK_UNENCODABLE', `integer ${value} does not fit in 64 bits`);
      return this.bytesOf(0xcf, 8, () => this.view.setBigUint64(this.length, value));
    }
    if (value < -0x8000000000000000n) throw new MsgpackError('ERR_MSGPACK_UNENCODABLE', `integer ${value} does not fit in 64 bits`);
    return this.bytesOf(0xd3, 8, () => this.view.setBigInt64(this.length, value));
  }

  private float(value: number): void {
    this.bytesOf(0xcb, 8, () => this.view.setFloat64(this.length, value));
  }

  private string(value: string): void {
    // Most strings are ASCII and short: encode straight into the buffer.
    const maxBytes = value.length * 3;
    this.ensure(5 + maxBytes);
    const reserved = this.strHeaderSize(maxBytes);
    const start = this.length + reserved;
    const { written } = TEXT_ENCODER.encodeInto(value, this.buffer.subarray(start));
    // Go writes the smallest header for the actual length; close the gap if we reserved more.
    const needed = this.strHeaderSize(written);
    if (needed < reserved) this.buffer.copyWithin(this.length + needed, start, start + written);
    this.strHeaderAt(written, needed);
    this.length += needed + written;
  }

  private strHeaderSize(length: number): number {
    if (length < 32) return 1;
    if (length < 256 && !this.options.goCompatible) return 2;
    return length < 65536 ? 3 : 5;
  }

  /** Writes a str header of `length` in exactly `size` bytes (the size was chosen for the worst case). */
  private strHeaderAt(length: number, size: number): void {
    const at = this.length;
    if (size === 1) this.buffer[at] = 0xa0 | length;
    else if (size === 2) {
      this.buffer[at] = 0xd9;
      this.buffer[at + 1] = length;
    } else if (size === 3) {
      this.buffer[at] = 0xda;
      this.view.setUint16(at + 1, length);
    } else {
      this.buffer[at] = 0xdb;
      this.view.setUint32(at + 1, length);
    }
  }

  private bytes(value: Uint8Array): void {
    const length = value.length;
    if (this.options.goCompatible) {
      // go-msgpack 0.5.5 writes []byte as raw str, with the smallest header but never str8.
      if (length < 32) this.byte(0xa0 | length);
      else if (length < 65536) this.bytesOf(0xda, 2, () => this.view.setUint16(this.length, length));
      else this.bytesOf(0xdb, 4, () => this.view.setUint32(this.length, length));
    } else if (length < 256) this.bytesOf(0xc4, 1, () => this.view.setUint8(this.length, length));
    else if (length < 65536) this.bytesOf(0xc5, 2, () => this.view.setUint16(this.length, length));
    else this.bytesOf(0xc6, 4, () => this.view.setUint32(this.length, length));
    this.ensure(length);
    this.buffer.set(value, this.length);
    this.length += length;
  }

  private ext(value: MsgpackExt): void {
    const length = value.data.length;
    const fixed = [1, 2, 4, 8, 16].indexOf(length);
    if (fixed !== -1) this.byte(0xd4 + fixed);
    else if (length < 256) this.bytesOf(0xc7, 1, () => this.view.setUint8(this.length, length));
    else if (length < 65536) this.bytesOf(0xc8, 2, () => this.view.setUint16(this.length, length));
    else this.bytesOf(0xc9, 4, () => this.view.setUint32(this.length, length));
    this.byte(value.type & 0xff);
    this.ensure(length);
    this.buffer.set(value.data, this.length);
    this.length += length;
  }

  private header(count: number, fix: number, wide16: number, wide32: number): void {
    if (count < 16) this.byte(fix | count);
    else if (count < 65536) this.bytesOf(wide16, 2, () => this.view.setUint16(this.length, count));
    else this.bytesOf(wide32, 4, () => this.view.setUint32(this.length, count));
  }

  private byte(value: number): void {
    this.ensure(1);
    this.buffer[this.length++] = value;
  }

  /** Writes a marker byte, then `size` bytes via `write` at the current position. */
  private bytesOf(marker: number, size: number, write: () => void): void {
    this.ensure(1 + size);
    this.buffer[this.length++] = marker;
    write();
    this.length += size;
  }

  private ensure(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    let capacity = this.buffer.length * 2;
    while (capacity < this.length + extra) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }
}

/** Integral and within 64-bit integer range: written as an integer, as Go writes int fields. */
function isInt64Range(value: number): boolean {
  return Number.isInteger(value) && value >= -(2 ** 63) && value < 2 ** 64;
}

/** Byte-wise order of UTF-8 strings, as Go sorts struct field names (ASCII in practice). */
function compareBytewise(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
