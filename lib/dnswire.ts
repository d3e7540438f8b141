// The DNS message codec: RFC 1035 messages as bytes and back, with the record types Consul's DNS
// interface reads or writes (A, AAAA, CNAME, NS, PTR, SRV, TXT, SOA, OPT) and every other type
// kept as raw RDATA. Pure functions over Uint8Array; no sockets, no lookups (lib/dns.ts).
//
// Wire behaviour follows miekg/dns, which Consul uses, where a client could tell the difference:
// - Names are presentation text with miekg's escapes ("\." for a dot inside a label, "\\", "\DDD"
//   for bytes outside 0x21..0x7e, a backslash before each of " ( ) ; @ $), fully qualified, case
//   preserved (0x20-randomised queries must be echoed byte for byte).
// - Compression (RFC 1035 §4.1.4) covers question and owner names and the names inside NS, CNAME,
//   PTR and SOA RDATA, matched case-insensitively (ASCII only) against earlier names. SRV targets
//   are written whole and are never pointer targets (RFC 2782: "name compression is not to be
//   used for this field"). Other types' RDATA is opaque and never rewritten.
// - Trailing bytes after the last record are ignored. The full RCODE is the header's 4 bits plus
//   the OPT record's extended-rcode byte (RFC 6891 §6.1.3).
//
// Decoding: every length is checked against the bytes left before it is read, every count
// against DNS_SECTION_RECORDS_MAX, and compression pointers must point strictly backwards of the
// segment that holds them, so a name's reading always terminates (with DNS_POINTER_HOPS_MAX as a
// second guard). Decoders throw nothing but DnsWireError. Decoded byte fields are copies, never
// views into the caller's buffer.
//
// Encoding: one module-level scratch buffer (the function is synchronous, so it is never shared
// between two calls in flight) and one compression hash table, emptied per message by a generation count; the result is a fresh
// copy sized to the message. Programmer errors (a port over 65535, an rcode over 15 without OPT)
// are assertions; bad names and addresses, and messages over 65,535 bytes, are DnsWireErrors.
//
// Not here: message validation (OPT placement, qdcount = 1: dns.ts does miekg's server checks),
// name comparison (dns.ts lowercases), DNSSEC types, TSIG, RFC 3597 generic text form.
//
// References: RFC 1035 §3.1, §3.3, §4.1; RFC 2782 (SRV); RFC 3596 (AAAA); RFC 5952 (IPv6 text);
// RFC 6891 §6 (OPT); miekg/dns msg.go (Pack/Unpack, compression), msg_helpers.go, types.go
// (escaping in sprintName), edns.go.

import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';

// ---------------------------------------------------------------------------------------------
// Exported types

/** RR types the interface reads or writes. Wire enum: append only. */
export const RR_TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, AXFR: 252, IXFR: 251, ANY: 255 } as const;
/** RR classes. Wire enum: append only. */
export const RR_CLASS = { IN: 1, CH: 3, ANY: 255 } as const;
/** Header opcodes. Wire enum: append only. */
export const OPCODE = { QUERY: 0, IQUERY: 1, STATUS: 2, NOTIFY: 4, UPDATE: 5 } as const;
/** RCODEs (4-bit header part; BADVERS=16 needs OPT's extended rcode). Wire enum: append only. */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;

/** The 12-byte message header, flags as predicates; counts are the section arrays' lengths. */
export interface DnsHeader {
  id: number; // 16 bits
  isResponse: boolean; // QR
  opcode: number; // 4 bits
  isAuthoritative: boolean; // AA
  isTruncated: boolean; // TC
  isRecursionDesired: boolean; // RD
  isRecursionAvailable: boolean; // RA
  isAuthenticData: boolean; // AD
  isCheckingDisabled: boolean; // CD
  /** Full rcode: low 4 bits go in the header; the high 8 bits in OPT's TTL (encoder does it when an OPT is present; asserts it is present when rcode > 15). */
  rcode: number;
}

/** One entry of the question section; `name` in the presentation form described at RecordData. */
export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

/** Names are presentation text, fully qualified with the trailing dot ("web.service.consul."; root is "."),
 *  case preserved, with miekg/dns's escapes: "\." for a dot inside a label, "\\" for a backslash,
 *  "\DDD" (3 decimal digits) for bytes < 0x21 or > 0x7e, and "\" before each of  " ( ) ; @ $  .
 *  decode produces this form; encode accepts it (and also accepts a name without the trailing dot, as fully qualified).
 *  Encode also accepts non-ASCII characters, written as their UTF-8 bytes (as a Go string would be). */
export type RecordData =
  | { readonly kind: 'a'; readonly address: string } // dotted quad
  | { readonly kind: 'aaaa'; readonly address: string } // decode yields RFC 5952 form; encode accepts any valid form incl. "::ffff:1.2.3.4"
  | { readonly kind: 'cname' | 'ns' | 'ptr'; readonly target: string }
  | { readonly kind: 'srv'; readonly priority: number; readonly weight: number; readonly port: number; readonly target: string }
  | { readonly kind: 'txt'; readonly strings: readonly string[] } // UTF-8; encode splits strings over 255 bytes; decode yields one string per character-string
  | { readonly kind: 'soa'; readonly mname: string; readonly rname: string; readonly serial: number; readonly refresh: number; readonly retry: number; readonly expire: number; readonly minimum: number }
  | { readonly kind: 'opt'; readonly options: readonly EdnsOption[] }
  | { readonly kind: 'raw'; readonly bytes: Uint8Array }; // any other type (and MX): RDATA kept verbatim, never compressed on write

/** One EDNS option (RFC 6891 §6.1.2): code and its data, a copy. */
export interface EdnsOption {
  readonly code: number;
  readonly data: Uint8Array;
}

/** A resource record. For OPT (RFC 6891): name ".", `class` is the requestor's UDP payload size, `ttl` packs extended-rcode(8) | version(8) | DO(1) | Z(15).
 *  The encoder writes `type` as given and the RDATA by `data.kind`; decode picks the kind from the type. */
export interface ResourceRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: RecordData;
}

/** A whole message; the header's counts are the arrays' lengths. */
export interface DnsMessage {
  header: DnsHeader;
  questions: DnsQuestion[];
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  additionals: ResourceRecord[];
}

/** Why bytes or a message could not be decoded or encoded. */
export type DnsWireErrorCode =
  | 'ERR_TRUNCATED' // ran past the end of the bytes
  | 'ERR_LABEL_TOO_LONG' // label > 63 bytes
  | 'ERR_NAME_TOO_LONG' // name > 255 bytes in wire form
  | 'ERR_POINTER_LOOP' // compression pointer loop, or pointer that does not point strictly backwards
  | 'ERR_POINTER_RANGE' // pointer past the message
  | 'ERR_BAD_LABEL_TYPE' // label type bits 01 / 10 (extended/reserved)
  | 'ERR_BAD_RDATA' // RDATA length disagrees with its type's fields (A not 4, AAAA not 16, names running past rdlength, ...)
  | 'ERR_TOO_MANY_RECORDS' // a count over its limit
  | 'ERR_BAD_NAME_TEXT' // encode: unparseable presentation name (bad escape, empty label "a..b")
  | 'ERR_BAD_ADDRESS' // encode: not an IPv4/IPv6 address
  | 'ERR_MESSAGE_TOO_BIG'; // encode: over 65535 bytes

/** The only error the codec throws for bad input (assertions aside, which mean a caller bug). */
export class DnsWireError extends Error {
  constructor(
    readonly code: DnsWireErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DnsWireError';
  }
}

// ---------------------------------------------------------------------------------------------
// Limits

/** RFC 1035 §4.2.2: TCP messages carry a 16-bit length, so no message is longer. */
export const DNS_MESSAGE_BYTES_MAX = 65_535;
/** RFC 1035 §3.1: a name is at most 255 bytes in wire form, length bytes and root included. */
export const DNS_NAME_BYTES_MAX = 255;
/** RFC 1035 §3.1: the top two bits of a length byte are the label type, leaving 6 bits. */
export const DNS_LABEL_BYTES_MAX = 63;
/** Records per section accepted by decode (a 64 KiB message cannot hold more than ~5,900 minimal RRs anyway). */
export const DNS_SECTION_RECORDS_MAX = 4_096;
/** Compression pointers followed while reading one name (guards against loops even if backwards-only is relaxed). */
export const DNS_POINTER_HOPS_MAX = 128;
/** RFC 1035 §3.3: a character-string has a one-byte length. */
export const DNS_TXT_STRING_BYTES_MAX = 255;

const HEADER_BYTES = 12;
/** Type, class, TTL and rdlength after an owner name. */
const RR_FIXED_BYTES = 10;
/** Type and class after a question name. */
const QUESTION_FIXED_BYTES = 4;
/** Pointers hold a 14-bit offset, so names written later than this cannot be pointer targets. */
const POINTER_OFFSET_MAX = 0x3fff;
/** At most 127 labels fit in 255 bytes (one length byte and one content byte each, plus root). */
const NAME_LABELS_MAX = 128;

// ---------------------------------------------------------------------------------------------
// Exported API: decoding

/** Decodes a whole message. Throws only DnsWireError (never TypeError/RangeError), never loops forever. Trailing bytes after the last record are ignored (as miekg/dns does). */
export function decodeMessage(bytes: Uint8Array): DnsMessage {
  const { header, counts, questions } = readHeaderAndQuestions(bytes);
  let offset = cursor;
  const sections: ResourceRecord[][] = [[], [], []];
  for (let section = 0; section < 3; section++) {
    const records = sections[section]!;
    for (let index = 0; index < counts[section + 1]!; index++) {
      records.push(readRecord(bytes, offset));
      offset = cursor;
    }
  }
  const additionals = sections[2]!;
  header.rcode |= extendedRcodeOf(lastOpt(additionals));
  return { header, questions, answers: sections[0]!, authorities: sections[1]!, additionals };
}

/** Fast path for a server: the header, the questions and the OPT record of the additional section (the last one, if
 *  several; its extended rcode merged into `header.rcode`). Answer, authority and other additional records are
 *  skipped by rdlength with full bounds checks, without building objects for them; use `decodeMessage` for those.
 *  Throws only DnsWireError. */
export function decodeQuery(bytes: Uint8Array): { header: DnsHeader; questions: DnsQuestion[]; opt: ResourceRecord | undefined } {
  const { header, counts, questions } = readHeaderAndQuestions(bytes);
  let offset = cursor;
  const skipped = counts[1]! + counts[2]!;
  for (let index = 0; index < skipped; index++) offset = skipRecord(bytes, offset);
  let opt: ResourceRecord | undefined;
  for (let index = 0; index < counts[3]!; index++) {
    const typeAt = skipName(bytes, offset);
    if (typeAt + 2 <= bytes.length && readU16(bytes, typeAt) === RR_TYPE.OPT) {
      opt = readRecord(bytes, offset);
      offset = cursor;
    } else {
      offset = skipRecord(bytes, offset);
    }
  }
  header.rcode |= extendedRcodeOf(opt);
  return { header, questions, opt };
}

// ---------------------------------------------------------------------------------------------
// Exported API: encoding

/** Encodes a message. With `compress` (default true), owner names and the names inside NS/CNAME/PTR/SOA RDATA are
 *  compressed against earlier names, suffixes compared case-insensitively. SRV targets are written
 *  uncompressed (RFC 2782; miekg does the same) and are not used as pointer targets.
 *  An OPT record in the additional section gets the high 8 bits of `header.rcode` in its TTL.
 *  Throws DnsWireError for an unencodable name/address or a message over 65,535 bytes. Returns a fresh Uint8Array (not a view into a shared scratch buffer). */
export function encodeMessage(message: DnsMessage, options?: { compress?: boolean }): Uint8Array {
  isCompressing = options?.compress ?? true;
  resetSuffixes();
  lastTargetName = '';
  at = 0;
  const { header } = message;
  assert(Number.isInteger(header.rcode) && header.rcode >= 0 && header.rcode <= 0xfff, 'rcode is 12 bits');
  assert(header.rcode <= 0xf || message.additionals.some((record) => record.data.kind === 'opt'), 'an extended rcode needs an OPT record');
  writeHeader(message);
  for (const question of message.questions) {
    writeName(question.name, isCompressing, true);
    ensureRoom(QUESTION_FIXED_BYTES);
    writeU16(question.type);
    writeU16(question.class);
  }
  for (const record of message.answers) writeRecord(record, record.ttl);
  for (const record of message.authorities) writeRecord(record, record.ttl);
  // RFC 6891 §6.1.3: the OPT TTL's top byte is the rcode's upper 8 bits.
  const extendedRcode = header.rcode >>> 4;
  for (const record of message.additionals) {
    const ttl = record.data.kind === 'opt' ? ((record.ttl & 0x00ffffff) | (extendedRcode << 24)) >>> 0 : record.ttl;
    writeRecord(record, ttl);
  }
  assert(at <= DNS_MESSAGE_BYTES_MAX, 'encoder stayed within the message limit');
  return out.slice(0, at);
}

/** Wire length of one name (uncompressed), or throws DnsWireError: for callers that size answers. */
export function nameWireLength(name: string): number {
  return parseNameInto(name, nameScratch, 0);
}

/** A query for one question: recursion desired, nothing else set. */
export function queryMessage(id: number, question: DnsQuestion): DnsMessage {
  return {
    header: { id, isResponse: false, opcode: OPCODE.QUERY, isAuthoritative: false, isTruncated: false, isRecursionDesired: true, isRecursionAvailable: false, isAuthenticData: false, isCheckingDisabled: false, rcode: RCODE.NOERROR },
    questions: [question],
    answers: [],
    authorities: [],
    additionals: [],
  };
}

/** A reply skeleton for a query: same id, opcode, RD, CD, the questions copied; QR set; everything else false/empty; rcode 0. */
export function replyTo(query: { header: DnsHeader; questions: DnsQuestion[] }): DnsMessage {
  const { header } = query;
  return {
    header: {
      id: header.id,
      isResponse: true,
      opcode: header.opcode,
      isAuthoritative: false,
      isTruncated: false,
      isRecursionDesired: header.isRecursionDesired,
      isRecursionAvailable: false,
      isAuthenticData: false,
      isCheckingDisabled: header.isCheckingDisabled,
      rcode: RCODE.NOERROR,
    },
    questions: query.questions.map((question) => ({ name: question.name, type: question.type, class: question.class })),
    answers: [],
    authorities: [],
    additionals: [],
  };
}

/** IPv4 dotted quad (four decimal parts 0..255, no leading zeros, as Go's net.ParseIP) to 4 bytes, or undefined. */
export function ipv4Bytes(text: string): Uint8Array | undefined {
  const bytes = new Uint8Array(4);
  return parseIpv4Into(text, 0, text.length, bytes, 0) ? bytes : undefined;
}

/** IPv6 text (any RFC 4291 §2.2 form, including an embedded dotted quad; no zone) to 16 bytes, or undefined. */
export function ipv6Bytes(text: string): Uint8Array | undefined {
  const bytes = new Uint8Array(16);
  return parseIpv6Into(text, bytes, 0) ? bytes : undefined;
}

/** 16 bytes to RFC 5952 text: lower-case hex, no leading zeros, the longest (first on a tie) run of two or more
 *  zero groups as "::", and IPv4-mapped addresses as "::ffff:a.b.c.d" (RFC 5952 §5). */
export function formatIpv6(bytes: Uint8Array): string {
  assert(bytes.length === 16, 'an IPv6 address is 16 bytes');
  return formatIpv6At(bytes, 0);
}

// ---------------------------------------------------------------------------------------------
// Private helpers: decoding

/** The header, the section counts and the question section; leaves `cursor` just past the questions. */
function readHeaderAndQuestions(bytes: Uint8Array): { header: DnsHeader; counts: ReturnType<typeof readCounts>; questions: DnsQuestion[] } {
  const header = readHeader(bytes);
  const counts = readCounts(bytes);
  let offset = HEADER_BYTES;
  const questions: DnsQuestion[] = [];
  for (let index = 0; index < counts[0]!; index++) {
    questions.push(readQuestion(bytes, offset));
    offset = cursor;
  }
  cursor = offset;
  return { header, counts, questions };
}

/** Offset just past the last name or record read: a module-level cursor instead of a tuple per read. */
let cursor = 0;

/** Name text scratch: the worst case is 255 wire bytes each written as "\DDD". */
const nameText = Buffer.alloc(DNS_NAME_BYTES_MAX * 4 + 8);

const BYTE_PLAIN = 0;
const BYTE_BACKSLASH = 1;
const BYTE_DECIMAL = 2;
/** How each label byte appears in text, after miekg's sprintName: as is, after a backslash, or as "\DDD". */
const byteEscapes = new Uint8Array(256).map((_, byte) => {
  if (byte < 0x21 || byte > 0x7e) return BYTE_DECIMAL;
  return '."();@$\\'.includes(String.fromCharCode(byte)) ? BYTE_BACKSLASH : BYTE_PLAIN;
});

const utf8 = new TextDecoder('utf-8');

function fail(code: DnsWireErrorCode, message: string): never {
  throw new DnsWireError(code, message);
}

function readU16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!;
}

function readU32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
}

function readHeader(bytes: Uint8Array): DnsHeader {
  if (bytes.length < HEADER_BYTES) fail('ERR_TRUNCATED', `header needs ${HEADER_BYTES} bytes, got ${bytes.length}`);
  const flags = readU16(bytes, 2);
  return {
    id: readU16(bytes, 0),
    isResponse: (flags & 0x8000) !== 0,
    opcode: (flags >>> 11) & 0xf,
    isAuthoritative: (flags & 0x0400) !== 0,
    isTruncated: (flags & 0x0200) !== 0,
    isRecursionDesired: (flags & 0x0100) !== 0,
    isRecursionAvailable: (flags & 0x0080) !== 0,
    isAuthenticData: (flags & 0x0020) !== 0,
    isCheckingDisabled: (flags & 0x0010) !== 0,
    rcode: flags & 0xf,
  };
}

/** qdcount, ancount, nscount, arcount, each checked against the limit before anything is built. */
function readCounts(bytes: Uint8Array): number[] {
  const counts = [readU16(bytes, 4), readU16(bytes, 6), readU16(bytes, 8), readU16(bytes, 10)];
  for (const count of counts) {
    if (count > DNS_SECTION_RECORDS_MAX) fail('ERR_TOO_MANY_RECORDS', `section count ${count} over ${DNS_SECTION_RECORDS_MAX}`);
  }
  return counts;
}

function readQuestion(bytes: Uint8Array, offset: number): DnsQuestion {
  const name = readName(bytes, offset, bytes.length, 'ERR_TRUNCATED');
  const fixedAt = cursor;
  if (fixedAt + QUESTION_FIXED_BYTES > bytes.length) fail('ERR_TRUNCATED', 'question type and class run past the message');
  cursor = fixedAt + QUESTION_FIXED_BYTES;
  return { name, type: readU16(bytes, fixedAt), class: readU16(bytes, fixedAt + 2) };
}

function readRecord(bytes: Uint8Array, offset: number): ResourceRecord {
  const name = readName(bytes, offset, bytes.length, 'ERR_TRUNCATED');
  const fixedAt = cursor;
  if (fixedAt + RR_FIXED_BYTES > bytes.length) fail('ERR_TRUNCATED', 'record header runs past the message');
  const type = readU16(bytes, fixedAt);
  const rrClass = readU16(bytes, fixedAt + 2);
  const ttl = readU32(bytes, fixedAt + 4);
  const rdStart = fixedAt + RR_FIXED_BYTES;
  const rdEnd = rdStart + readU16(bytes, fixedAt + 8);
  if (rdEnd > bytes.length) fail('ERR_TRUNCATED', 'rdlength runs past the message');
  const data = readRdata(bytes, type, rdStart, rdEnd);
  cursor = rdEnd;
  return { name, type, class: rrClass, ttl, data };
}

/** RDATA by type; each branch consumes exactly rdStart..rdEnd or fails with ERR_BAD_RDATA (miekg's "bad rdlength"). */
function readRdata(bytes: Uint8Array, type: number, rdStart: number, rdEnd: number): RecordData {
  const length = rdEnd - rdStart;
  switch (type) {
    case RR_TYPE.A:
      if (length !== 4) fail('ERR_BAD_RDATA', `A rdlength ${length}, not 4`);
      return { kind: 'a', address: `${bytes[rdStart]!}.${bytes[rdStart + 1]!}.${bytes[rdStart + 2]!}.${bytes[rdStart + 3]!}` };
    case RR_TYPE.AAAA:
      if (length !== 16) fail('ERR_BAD_RDATA', `AAAA rdlength ${length}, not 16`);
      return { kind: 'aaaa', address: formatIpv6At(bytes, rdStart) };
    case RR_TYPE.CNAME:
    case RR_TYPE.NS:
    case RR_TYPE.PTR: {
      const target = readRdataName(bytes, rdStart, rdEnd);
      expectRdataEnd(rdEnd);
      return { kind: type === RR_TYPE.CNAME ? 'cname' : type === RR_TYPE.NS ? 'ns' : 'ptr', target };
    }
    case RR_TYPE.SRV: {
      if (length < 7) fail('ERR_BAD_RDATA', `SRV rdlength ${length} leaves no room for a target`);
      const target = readRdataName(bytes, rdStart + 6, rdEnd);
      expectRdataEnd(rdEnd);
      return { kind: 'srv', priority: readU16(bytes, rdStart), weight: readU16(bytes, rdStart + 2), port: readU16(bytes, rdStart + 4), target };
    }
    case RR_TYPE.TXT:
      return { kind: 'txt', strings: readCharacterStrings(bytes, rdStart, rdEnd) };
    case RR_TYPE.SOA:
      return readSoa(bytes, rdStart, rdEnd);
    case RR_TYPE.OPT:
      return { kind: 'opt', options: readEdnsOptions(bytes, rdStart, rdEnd) };
    default:
      return { kind: 'raw', bytes: copyOf(bytes, rdStart, rdEnd) };
  }
}

/** A plain Uint8Array copy: `bytes.slice` would be a view when the caller passes a Node Buffer (a socket's). */
function copyOf(bytes: Uint8Array, start: number, end: number): Uint8Array {
  const copy = new Uint8Array(end - start);
  for (let index = start; index < end; index++) copy[index - start] = bytes[index]!;
  return copy;
}

function readRdataName(bytes: Uint8Array, offset: number, rdEnd: number): string {
  return readName(bytes, offset, rdEnd, rdEnd === bytes.length ? 'ERR_TRUNCATED' : 'ERR_BAD_RDATA');
}

function expectRdataEnd(rdEnd: number): void {
  if (cursor !== rdEnd) fail('ERR_BAD_RDATA', `RDATA fields end ${rdEnd - cursor} bytes before rdlength`);
}

function readCharacterStrings(bytes: Uint8Array, rdStart: number, rdEnd: number): string[] {
  const strings: string[] = [];
  let offset = rdStart;
  while (offset < rdEnd) {
    const end = offset + 1 + bytes[offset]!;
    if (end > rdEnd) fail('ERR_BAD_RDATA', 'TXT character-string runs past rdlength');
    strings.push(utf8.decode(bytes.subarray(offset + 1, end)));
    offset = end;
  }
  return strings;
}

function readSoa(bytes: Uint8Array, rdStart: number, rdEnd: number): RecordData {
  const mname = readRdataName(bytes, rdStart, rdEnd);
  const rname = readRdataName(bytes, cursor, rdEnd);
  const at = cursor;
  if (at + 20 !== rdEnd) fail('ERR_BAD_RDATA', 'SOA numbers do not fill the rest of rdlength');
  return { kind: 'soa', mname, rname, serial: readU32(bytes, at), refresh: readU32(bytes, at + 4), retry: readU32(bytes, at + 8), expire: readU32(bytes, at + 12), minimum: readU32(bytes, at + 16) };
}

function readEdnsOptions(bytes: Uint8Array, rdStart: number, rdEnd: number): EdnsOption[] {
  const options: EdnsOption[] = [];
  let offset = rdStart;
  while (offset < rdEnd) {
    if (offset + 4 > rdEnd) fail('ERR_BAD_RDATA', 'EDNS option header runs past rdlength');
    const end = offset + 4 + readU16(bytes, offset + 2);
    if (end > rdEnd) fail('ERR_BAD_RDATA', 'EDNS option data runs past rdlength');
    options.push({ code: readU16(bytes, offset), data: copyOf(bytes, offset + 4, end) });
    offset = end;
  }
  return options;
}

/**
 * Reads the name at `offset` as presentation text and leaves `cursor` just past its inline part
 * (the root byte, or the first pointer). Inline bytes may not pass `limit` (the RDATA end, or the
 * message end), failing with `limitCode`. A pointer must land strictly before the start of the
 * segment it sits in, so offsets strictly decrease from jump to jump and the walk ends.
 */
function readName(bytes: Uint8Array, offset: number, limit: number, limitCode: DnsWireErrorCode): string {
  let position = offset;
  let bound = limit;
  let boundCode = limitCode;
  let segmentStart = offset;
  let inlineEnd = -1;
  let wireBytes = 1;
  let textBytes = 0;
  let hops = 0;
  for (;;) {
    if (position >= bound) fail(boundCode, 'name runs past its bounds');
    const length = bytes[position]!;
    const labelType = length & 0xc0;
    if (labelType === 0) {
      if (length === 0) {
        if (inlineEnd < 0) inlineEnd = position + 1;
        break;
      }
      const end = position + 1 + length;
      if (end > bound) fail(boundCode, 'label runs past its bounds');
      wireBytes += length + 1;
      if (wireBytes > DNS_NAME_BYTES_MAX) fail('ERR_NAME_TOO_LONG', `name over ${DNS_NAME_BYTES_MAX} bytes`);
      textBytes = appendLabelText(bytes, position + 1, end, textBytes);
      position = end;
    } else if (labelType === 0xc0) {
      if (position + 2 > bound) fail(boundCode, 'compression pointer runs past its bounds');
      const target = ((length & 0x3f) << 8) | bytes[position + 1]!;
      if (target >= bytes.length) fail('ERR_POINTER_RANGE', `pointer to ${target} past the message`);
      if (target >= segmentStart) fail('ERR_POINTER_LOOP', `pointer to ${target} does not point backwards`);
      if (++hops > DNS_POINTER_HOPS_MAX) fail('ERR_POINTER_LOOP', `over ${DNS_POINTER_HOPS_MAX} pointers in one name`);
      if (inlineEnd < 0) inlineEnd = position + 2;
      position = target;
      segmentStart = target;
      bound = bytes.length;
      boundCode = 'ERR_TRUNCATED';
    } else {
      fail('ERR_BAD_LABEL_TYPE', `label type 0x${labelType.toString(16)} is not supported`);
    }
  }
  cursor = inlineEnd;
  return textBytes === 0 ? '.' : nameText.toString('latin1', 0, textBytes);
}

/** Writes one label and its trailing dot into `nameText` from `textBytes` on, escaping as miekg prints. */
function appendLabelText(bytes: Uint8Array, start: number, end: number, textBytes: number): number {
  let written = textBytes;
  for (let index = start; index < end; index++) {
    const byte = bytes[index]!;
    const escape = byteEscapes[byte]!;
    if (escape === BYTE_PLAIN) {
      nameText[written++] = byte;
    } else if (escape === BYTE_BACKSLASH) {
      nameText[written++] = 0x5c;
      nameText[written++] = byte;
    } else {
      nameText[written++] = 0x5c;
      nameText[written++] = 0x30 + Math.floor(byte / 100);
      nameText[written++] = 0x30 + (Math.floor(byte / 10) % 10);
      nameText[written++] = 0x30 + (byte % 10);
    }
  }
  nameText[written++] = 0x2e;
  return written;
}

/** Offset after the name at `offset`, without building its text; pointers end it, and are range- and direction-checked. */
function skipName(bytes: Uint8Array, offset: number): number {
  let position = offset;
  for (;;) {
    if (position >= bytes.length) fail('ERR_TRUNCATED', 'name runs past the message');
    const length = bytes[position]!;
    const labelType = length & 0xc0;
    if (labelType === 0) {
      if (length === 0) return position + 1;
      position += 1 + length;
    } else if (labelType === 0xc0) {
      if (position + 2 > bytes.length) fail('ERR_TRUNCATED', 'compression pointer runs past the message');
      const target = ((length & 0x3f) << 8) | bytes[position + 1]!;
      if (target >= bytes.length) fail('ERR_POINTER_RANGE', `pointer to ${target} past the message`);
      if (target >= offset) fail('ERR_POINTER_LOOP', `pointer to ${target} does not point backwards`);
      return position + 2;
    } else {
      fail('ERR_BAD_LABEL_TYPE', `label type 0x${labelType.toString(16)} is not supported`);
    }
  }
}

function skipRecord(bytes: Uint8Array, offset: number): number {
  const fixedAt = skipName(bytes, offset);
  if (fixedAt + RR_FIXED_BYTES > bytes.length) fail('ERR_TRUNCATED', 'record header runs past the message');
  const end = fixedAt + RR_FIXED_BYTES + readU16(bytes, fixedAt + 8);
  if (end > bytes.length) fail('ERR_TRUNCATED', 'rdlength runs past the message');
  return end;
}

function lastOpt(records: readonly ResourceRecord[]): ResourceRecord | undefined {
  for (let index = records.length - 1; index >= 0; index--) {
    if (records[index]!.data.kind === 'opt') return records[index];
  }
  return undefined;
}

/** RFC 6891 §6.1.3: the upper 8 bits of the 12-bit rcode, already shifted into place. */
function extendedRcodeOf(opt: ResourceRecord | undefined): number {
  return opt === undefined ? 0 : (opt.ttl >>> 24) << 4;
}

function formatIpv6At(bytes: Uint8Array, offset: number): string {
  let isMapped = bytes[offset + 10] === 0xff && bytes[offset + 11] === 0xff;
  for (let index = 0; isMapped && index < 10; index++) isMapped = bytes[offset + index] === 0;
  if (isMapped) return `::ffff:${bytes[offset + 12]!}.${bytes[offset + 13]!}.${bytes[offset + 14]!}.${bytes[offset + 15]!}`;
  // RFC 5952 §4.2: the longest run of at least two zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  let runStart = -1;
  for (let group = 0; group <= 8; group++) {
    const isZero = group < 8 && bytes[offset + group * 2] === 0 && bytes[offset + group * 2 + 1] === 0;
    if (isZero) {
      if (runStart < 0) runStart = group;
    } else if (runStart >= 0) {
      if (group - runStart > bestLength) {
        bestStart = runStart;
        bestLength = group - runStart;
      }
      runStart = -1;
    }
  }
  let text = '';
  for (let group = 0; group < 8; group++) {
    if (group === bestStart) {
      text += '::';
      group += bestLength - 1;
      continue;
    }
    if (text.length > 0 && !text.endsWith(':')) text += ':';
    text += readU16(bytes, offset + group * 2).toString(16);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Private helpers: encoding

/** Encoder scratch, with room for one name past the limit (plus the one character, up to 4 UTF-8
 *  bytes, written before parseNameInto's length check) so a name is parsed before the size check. */
const out = new Uint8Array(DNS_MESSAGE_BYTES_MAX + DNS_NAME_BYTES_MAX + 8);
const outText = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
/** Next free byte of `out`. Invariant: at <= DNS_MESSAGE_BYTES_MAX between writes. */
let at = 0;
let isCompressing = true;
/**
 * Compression table: an open-addressed hash set of name suffixes written so far (hash of the
 * lower-cased wire suffix -> offset in `out`), verified byte by byte on a hash match. Slots carry a
 * generation so a new message starts empty without clearing. Sized for the worst case: suffixes
 * start at distinct offsets within pointer range, two bytes apart at least, so at most 8,192 are
 * live, half the slots.
 */
const SUFFIX_SLOTS = 16_384;
const SUFFIX_SLOTS_MASK = SUFFIX_SLOTS - 1;
const slotGenerations = new Uint32Array(SUFFIX_SLOTS);
const slotHashes = new Int32Array(SUFFIX_SLOTS);
const slotOffsets = new Int32Array(SUFFIX_SLOTS);
let generation = 0;
const suffixHashes = new Int32Array(NAME_LABELS_MAX);
/** The last name written where a pointer may aim, and its offset: repeats become one pointer. */
let lastTargetName = '';
let lastTargetOffset = 0;
const HASH_BASIS = 0x811c9dc5 | 0;
const HASH_PRIME = 0x01000193;
/** RFC 4343: only ASCII letters fold. */
const asciiLower = new Uint8Array(256).map((_, byte) => (byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte));
/** Offsets of the labels of the name last parsed by parseNameInto, and how many. */
const labelStarts = new Int32Array(NAME_LABELS_MAX);
let labelCount = 0;
const nameScratch = new Uint8Array(DNS_NAME_BYTES_MAX + 8);

function ensureRoom(bytes: number): void {
  if (at + bytes > DNS_MESSAGE_BYTES_MAX) fail('ERR_MESSAGE_TOO_BIG', `message over ${DNS_MESSAGE_BYTES_MAX} bytes`);
}

function writeU16(value: number): void {
  assert(Number.isInteger(value) && value >= 0 && value <= 0xffff, 'a 16-bit field holds 0..65535');
  out[at++] = value >>> 8;
  out[at++] = value & 0xff;
}

function writeU32(value: number): void {
  assert(Number.isInteger(value) && value >= 0 && value <= 0xffffffff, 'a 32-bit field holds 0..2^32-1');
  out[at++] = value >>> 24;
  out[at++] = (value >>> 16) & 0xff;
  out[at++] = (value >>> 8) & 0xff;
  out[at++] = value & 0xff;
}

function writeHeader(message: DnsMessage): void {
  const { header } = message;
  assert(Number.isInteger(header.opcode) && header.opcode >= 0 && header.opcode <= 0xf, 'opcode is 4 bits');
  let flags = (header.opcode << 11) | (header.rcode & 0xf);
  if (header.isResponse) flags |= 0x8000;
  if (header.isAuthoritative) flags |= 0x0400;
  if (header.isTruncated) flags |= 0x0200;
  if (header.isRecursionDesired) flags |= 0x0100;
  if (header.isRecursionAvailable) flags |= 0x0080;
  if (header.isAuthenticData) flags |= 0x0020;
  if (header.isCheckingDisabled) flags |= 0x0010;
  writeU16(header.id);
  writeU16(flags);
  writeU16(message.questions.length);
  writeU16(message.answers.length);
  writeU16(message.authorities.length);
  writeU16(message.additionals.length);
}

function writeRecord(record: ResourceRecord, ttl: number): void {
  writeName(record.name, isCompressing, true);
  ensureRoom(RR_FIXED_BYTES);
  writeU16(record.type);
  writeU16(record.class);
  writeU32(ttl);
  const lengthAt = at;
  at += 2;
  writeRdata(record.data);
  const length = at - lengthAt - 2;
  out[lengthAt] = length >>> 8;
  out[lengthAt + 1] = length & 0xff;
}

function writeRdata(data: RecordData): void {
  switch (data.kind) {
    case 'a':
      ensureRoom(4);
      if (!parseIpv4Into(data.address, 0, data.address.length, out, at)) fail('ERR_BAD_ADDRESS', `not an IPv4 address: ${JSON.stringify(data.address)}`);
      at += 4;
      return;
    case 'aaaa':
      ensureRoom(16);
      if (!parseIpv6Into(data.address, out, at)) fail('ERR_BAD_ADDRESS', `not an IPv6 address: ${JSON.stringify(data.address)}`);
      at += 16;
      return;
    case 'cname':
    case 'ns':
    case 'ptr':
      writeName(data.target, isCompressing, true);
      return;
    case 'srv':
      ensureRoom(6);
      writeU16(data.priority);
      writeU16(data.weight);
      writeU16(data.port);
      writeName(data.target, false, false);
      return;
    case 'txt':
      for (const text of data.strings) writeCharacterStrings(text);
      return;
    case 'soa':
      writeName(data.mname, isCompressing, true);
      writeName(data.rname, isCompressing, true);
      ensureRoom(20);
      for (const value of [data.serial, data.refresh, data.retry, data.expire, data.minimum]) writeU32(value);
      return;
    case 'opt':
      for (const option of data.options) {
        ensureRoom(4 + option.data.length);
        writeU16(option.code);
        writeU16(option.data.length);
        out.set(option.data, at);
        at += option.data.length;
      }
      return;
    case 'raw':
      ensureRoom(data.bytes.length);
      out.set(data.bytes, at);
      at += data.bytes.length;
      return;
    default:
      return assertNever(data);
  }
}

/** One TXT string as UTF-8, cut into 255-byte character-strings; "" is one empty character-string. */
function writeCharacterStrings(text: string): void {
  const length = Buffer.byteLength(text, 'utf8');
  ensureRoom(length + Math.max(1, Math.ceil(length / DNS_TXT_STRING_BYTES_MAX)));
  if (length <= DNS_TXT_STRING_BYTES_MAX) {
    out[at++] = length;
    at += outText.write(text, at, 'utf8');
    return;
  }
  // Rare: encode once, then copy out in pieces with a length byte before each.
  const encoded = Buffer.from(text, 'utf8');
  for (let start = 0; start < length; start += DNS_TXT_STRING_BYTES_MAX) {
    const piece = encoded.subarray(start, Math.min(length, start + DNS_TXT_STRING_BYTES_MAX));
    out[at++] = piece.length;
    out.set(piece, at);
    at += piece.length;
  }
}

/**
 * Writes a name at `at`. The name is parsed in place first; with compression, its suffixes are
 * looked up longest first, and at the first match a pointer replaces the rest. Suffixes written
 * in full become pointer targets when `isTarget` and they start within pointer range.
 */
function writeName(name: string, isCompressed: boolean, isTarget: boolean): void {
  // The same text as the last pointer target (every answer's owner is the question's name):
  // a pointer to where it starts, without parsing it again.
  if (isCompressed && name === lastTargetName && lastTargetOffset <= POINTER_OFFSET_MAX) {
    if (at + 2 > DNS_MESSAGE_BYTES_MAX) fail('ERR_MESSAGE_TOO_BIG', `message over ${DNS_MESSAGE_BYTES_MAX} bytes`);
    out[at] = 0xc0 | (lastTargetOffset >>> 8);
    out[at + 1] = lastTargetOffset & 0xff;
    at += 2;
    return;
  }
  if (isCompressed && isTarget) {
    lastTargetName = name;
    lastTargetOffset = at;
  }
  const end = parseNameInto(name, out, at) + at;
  if (!isCompressed || labelCount === 0) {
    if (end > DNS_MESSAGE_BYTES_MAX) fail('ERR_MESSAGE_TOO_BIG', `message over ${DNS_MESSAGE_BYTES_MAX} bytes`);
    at = end;
    return;
  }
  // Hashes of every suffix, shortest first, so each label is hashed once.
  let hash = HASH_BASIS;
  for (let label = labelCount - 1; label >= 0; label--) {
    hash = hashLabel(hash, labelStarts[label]!);
    suffixHashes[label] = hash;
  }
  let matched = labelCount;
  let pointer = -1;
  for (let label = 0; label < labelCount; label++) {
    pointer = findSuffix(suffixHashes[label]!, labelStarts[label]!);
    if (pointer >= 0) {
      matched = label;
      break;
    }
  }
  const finalEnd = pointer < 0 ? end : labelStarts[matched]! + 2;
  if (finalEnd > DNS_MESSAGE_BYTES_MAX) fail('ERR_MESSAGE_TOO_BIG', `message over ${DNS_MESSAGE_BYTES_MAX} bytes`);
  // The suffixes before the match were just looked up and missed, so they are new targets.
  for (let label = 0; isTarget && label < matched && labelStarts[label]! <= POINTER_OFFSET_MAX; label++) {
    addSuffix(suffixHashes[label]!, labelStarts[label]!);
  }
  if (pointer >= 0) {
    out[labelStarts[matched]!] = 0xc0 | (pointer >>> 8);
    out[labelStarts[matched]! + 1] = pointer & 0xff;
  }
  at = finalEnd;
}

/** FNV-1a over one label (length byte and ASCII-lower-cased content) continuing from `hash`. */
function hashLabel(hash: number, offset: number): number {
  let value = hash;
  const end = offset + 1 + out[offset]!;
  for (let index = offset; index < end; index++) value = Math.imul(value ^ asciiLower[out[index]!]!, HASH_PRIME);
  return value;
}

/** The offset of an earlier name suffix equal (ASCII case-insensitively) to the one at `offset`, or -1. */
function findSuffix(hash: number, offset: number): number {
  for (let slot = hash & SUFFIX_SLOTS_MASK; slotGenerations[slot] === generation; slot = (slot + 1) & SUFFIX_SLOTS_MASK) {
    if (slotHashes[slot] === hash && isSameSuffix(slotOffsets[slot]!, offset)) return slotOffsets[slot]!;
  }
  return -1;
}

function addSuffix(hash: number, offset: number): void {
  let slot = hash & SUFFIX_SLOTS_MASK;
  while (slotGenerations[slot] === generation) slot = (slot + 1) & SUFFIX_SLOTS_MASK;
  slotGenerations[slot] = generation;
  slotHashes[slot] = hash;
  slotOffsets[slot] = offset;
}

/** Compares an earlier suffix at `earlier` (it may end in pointers, all written by this encoder and
 *  pointing backwards) with the uncompressed suffix at `fresh`, label by label. */
function isSameSuffix(earlier: number, fresh: number): boolean {
  let left = earlier;
  let right = fresh;
  for (;;) {
    let length = out[left]!;
    while (length >= 0xc0) {
      left = ((length & 0x3f) << 8) | out[left + 1]!;
      length = out[left]!;
    }
    if (length !== out[right]) return false;
    if (length === 0) return true;
    for (let index = 1; index <= length; index++) {
      if (asciiLower[out[left + index]!] !== asciiLower[out[right + index]!]) return false;
    }
    left += length + 1;
    right += length + 1;
  }
}

/** Starts a fresh compression table without clearing it: slots of older generations are empty. */
function resetSuffixes(): void {
  generation = (generation + 1) >>> 0;
  if (generation === 0) {
    slotGenerations.fill(0);
    generation = 1;
  }
}

/**
 * Parses presentation text into wire form at target[start..], returning its length, and records
 * the labels' offsets in `labelStarts`/`labelCount`. Accepts names with or without the final dot;
 * "." is the root. `target` needs DNS_NAME_BYTES_MAX + 1 bytes of room after `start`.
 */
function parseNameInto(text: string, target: Uint8Array, start: number): number {
  const length = text.length;
  if (length === 0) fail('ERR_BAD_NAME_TEXT', 'empty name');
  labelCount = 0;
  if (length === 1 && text.charCodeAt(0) === 0x2e) {
    target[start] = 0;
    return 1;
  }
  let labelStart = start;
  let position = start + 1;
  for (let index = 0; index < length; index++) {
    let code = text.charCodeAt(index);
    if (code === 0x2e) {
      closeLabel(target, labelStart, position, text);
      labelStart = position++;
      continue;
    }
    if (code === 0x5c) {
      if (++index >= length) fail('ERR_BAD_NAME_TEXT', `name ends in a backslash: ${JSON.stringify(text)}`);
      code = text.charCodeAt(index);
      if (isDigit(code)) {
        code = decimalEscape(text, index);
        index += 2;
        target[position++] = code;
      } else {
        position = writeNameChar(text, index, code, target, position);
        if (code >= 0xd800 && code <= 0xdbff) index++;
      }
    } else if (code < 0x80) {
      target[position++] = code;
    } else {
      position = writeNameChar(text, index, code, target, position);
      if (code >= 0xd800 && code <= 0xdbff) index++;
    }
    if (position - labelStart - 1 > DNS_LABEL_BYTES_MAX) fail('ERR_LABEL_TOO_LONG', `label over ${DNS_LABEL_BYTES_MAX} bytes in ${JSON.stringify(text)}`);
    if (position - start + 1 > DNS_NAME_BYTES_MAX) fail('ERR_NAME_TOO_LONG', `name over ${DNS_NAME_BYTES_MAX} bytes: ${JSON.stringify(text)}`);
  }
  if (position === labelStart + 1) {
    // The text ended with a dot: the reserved length byte is the root.
    target[labelStart] = 0;
    return labelStart + 1 - start;
  }
  closeLabel(target, labelStart, position, text);
  target[position] = 0;
  return position + 1 - start;
}

function closeLabel(target: Uint8Array, labelStart: number, position: number, text: string): void {
  const labelBytes = position - labelStart - 1;
  if (labelBytes === 0) fail('ERR_BAD_NAME_TEXT', `empty label in ${JSON.stringify(text)}`);
  target[labelStart] = labelBytes;
  labelStarts[labelCount++] = labelStart;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/** The value of "\DDD" whose first digit is at `index`: exactly three digits, at most 255. */
function decimalEscape(text: string, index: number): number {
  const second = text.charCodeAt(index + 1);
  const third = text.charCodeAt(index + 2);
  if (!isDigit(second) || !isDigit(third)) fail('ERR_BAD_NAME_TEXT', `\\DDD needs three digits in ${JSON.stringify(text)}`);
  const value = (text.charCodeAt(index) - 0x30) * 100 + (second - 0x30) * 10 + (third - 0x30);
  if (value > 255) fail('ERR_BAD_NAME_TEXT', `\\${value} is over 255 in ${JSON.stringify(text)}`);
  return value;
}

/** One character as its UTF-8 bytes (a surrogate pair counts as one character), as a Go string holds it. */
function writeNameChar(text: string, index: number, code: number, target: Uint8Array, position: number): number {
  let at = position;
  if (code < 0x80) {
    target[at++] = code;
  } else if (code < 0x800) {
    target[at++] = 0xc0 | (code >>> 6);
    target[at++] = 0x80 | (code & 0x3f);
  } else if (code >= 0xd800 && code <= 0xdfff) {
    const low = text.charCodeAt(index + 1);
    if (code > 0xdbff || !(low >= 0xdc00 && low <= 0xdfff)) fail('ERR_BAD_NAME_TEXT', `lone surrogate in ${JSON.stringify(text)}`);
    const point = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
    target[at++] = 0xf0 | (point >>> 18);
    target[at++] = 0x80 | ((point >>> 12) & 0x3f);
    target[at++] = 0x80 | ((point >>> 6) & 0x3f);
    target[at++] = 0x80 | (point & 0x3f);
  } else {
    target[at++] = 0xe0 | (code >>> 12);
    target[at++] = 0x80 | ((code >>> 6) & 0x3f);
    target[at++] = 0x80 | (code & 0x3f);
  }
  return at;
}

/** Strict dotted quad over text[from..to) into target[offset..offset+4): four parts of 1-3 digits, 0..255, no leading zeros. */
function parseIpv4Into(text: string, from: number, to: number, target: Uint8Array, offset: number): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let index = from; index <= to; index++) {
    const code = index < to ? text.charCodeAt(index) : 0x2e;
    if (isDigit(code)) {
      if (digits === 1 && value === 0) return false;
      value = value * 10 + (code - 0x30);
      if (++digits > 3 || value > 255) return false;
    } else if (code === 0x2e) {
      if (digits === 0 || part > 3) return false;
      target[offset + part++] = value;
      value = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  return part === 4;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  return -1;
}

/** RFC 4291 §2.2 text into target[offset..offset+16): hex groups of 1-4 digits, at most one "::", an optional dotted-quad tail. */
function parseIpv6Into(text: string, target: Uint8Array, offset: number): boolean {
  const length = text.length;
  if (length < 2 || length > 45) return false;
  let groups = 0;
  let gapAt = -1;
  let index = 0;
  if (text.charCodeAt(0) === 0x3a) {
    if (text.charCodeAt(1) !== 0x3a) return false;
    gapAt = 0;
    index = 2;
  }
  while (index < length) {
    const groupStart = index;
    let value = 0;
    let digit = hexValue(text.charCodeAt(index));
    while (digit >= 0 && index - groupStart < 4) {
      value = value * 16 + digit;
      digit = hexValue(text.charCodeAt(++index));
    }
    if (index < length && text.charCodeAt(index) === 0x2e) {
      // An IPv4 tail fills the last two groups (RFC 4291 §2.2 form 3).
      if (groups > 6 || !parseIpv4Into(text, groupStart, length, target, offset + groups * 2)) return false;
      groups += 2;
      break;
    }
    if (index === groupStart || groups >= 8) return false;
    target[offset + groups * 2] = value >>> 8;
    target[offset + groups * 2 + 1] = value & 0xff;
    groups++;
    if (index === length) break;
    if (text.charCodeAt(index) !== 0x3a || ++index === length) return false;
    if (text.charCodeAt(index) === 0x3a) {
      if (gapAt >= 0) return false;
      gapAt = groups;
      index++;
    }
  }
  if (gapAt < 0) return groups === 8;
  if (groups >= 8) return false;
  // Move the groups after "::" to the end and zero the gap.
  const tailBytes = (groups - gapAt) * 2;
  target.copyWithin(offset + 16 - tailBytes, offset + gapAt * 2, offset + groups * 2);
  target.fill(0, offset + gapAt * 2, offset + 16 - tailBytes);
  return true;
}

function assertNever(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`);
}
