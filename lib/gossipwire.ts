// memberlist's wire format as bytes: message types, the msgpack bodies with Go's field names,
// and the packet and stream framing around them (compound, CRC, LZW compression, encryption,
// labels, push/pull and user-message streams). Pure functions over Uint8Array.
//
// Target: hashicorp/memberlist 0.2.2 as Debian ships it (what `serf` 0.9.4 and Consul's Debian
// builds speak), reading newer peers too. See shared/spec/wire.md §1 (msgpack dialect), §2.2
// (types), §2.3 (structs), §2.4 (packets), §2.5 (streams), §2.6 (encryption).
//
// Bodies are written in go-msgpack 0.5.5's dialect (`goCompatible`: raw str for strings and
// bytes, smallest integers, keys sorted as Go sorts struct fields, `c0` for nil). An empty byte
// field is written as nil (`c0`), as Go writes the nil slice its zero-value structs carry; both
// `c0` and an empty str decode to an empty array. Decoders are lenient where Go is: keys in any
// order, unknown keys skipped, any integer width, str or bin for bytes and strings, a struct sent
// as an array in declaration order, a []byte sent as an array of small integers, trailing bytes
// after the body ignored. Integers out of range for their Go type are errors, as in Go.
//
// Packets (receive, memberlist net.go ingestPacket + handleCommand): strip a label header (≥0.3.0),
// decrypt with every key, check and strip a top-level hasCrc, then dispatch: compound and compress
// recurse, a part that runs past the buffer is dropped as truncated, a failing part does not
// spoil its siblings. hasCrc is only valid at the top, as in memberlist. Send (rawSendMsgPacket):
// compress if smaller, CRC only if the peer's PMax ≥ 5, encrypt, prefix the label.
//
// Not here: sockets, timers, the SWIM state machine, merge rules, choosing which broadcasts to
// piggy-back (only the byte budget helper is here), serf's payloads (serfwire.ts).
//
// Invariants: decoders of untrusted bytes throw (or return in `errors`) nothing but
// GossipWireError; every length and count is checked against the bytes left and a named limit
// before use; decoded byte fields are copies, never views into the packet; Addr and Meta are kept
// verbatim (a 4-byte and a 16-byte form of one IP are different addresses to memberlist).
//
// References: hashicorp/memberlist net.go (types, structs, handleCommand, readStream,
// sendLocalState, readRemoteState, encryptLocalState, decryptRemoteState), util.go
// (makeCompoundMessage, decodeCompoundMessage, compressPayload, decompressBuffer), security.go,
// label.go (v0.3.0+), state.go (gossip budget), memberlist.go; Go hash/crc32 (IEEE).

import assert from 'node:assert/strict';
import type { MsgpackValue } from './msgpack.js';
import { MsgpackError, MsgpackReader, MsgpackWriter } from './msgpack.js';
import { decryptPayload, encryptedLength, encryptOverheadBytes, encryptPayload, GossipCryptoError, type EncryptionVersion, type Keyring, type RandomBytes } from './gossipcrypto.js';
import { LzwError, lzwCompress, lzwDecompress } from './lzw.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** memberlist message type bytes (net.go). Wire enum: append only. */
export const MessageType = {
  ping: 0,
  indirectPing: 1,
  ackResp: 2,
  suspect: 3,
  alive: 4,
  dead: 5,
  pushPull: 6,
  compound: 7,
  user: 8,
  compress: 9,
  encrypt: 10,
  nackResp: 11,
  hasCrc: 12,
  errResp: 13,
  hasLabel: 244,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** memberlist NodeStateType as carried in pushNodeState.State. Wire enum: append only. */
export const NodeState = { alive: 0, suspect: 1, dead: 2, left: 3 } as const;
export type NodeState = (typeof NodeState)[keyof typeof NodeState];

/** The six Vsn bytes: memberlist protocol range and current, then the delegate's (serf's). */
export interface ProtocolVersions {
  readonly pMin: number;
  readonly pMax: number;
  readonly pCur: number;
  readonly dMin: number;
  readonly dMax: number;
  readonly dCur: number;
}

/** ping (0). `node` is the target's name; the Source fields are omitempty. */
export interface Ping {
  readonly seqNo: number;
  readonly node: string;
  readonly sourceAddr: Uint8Array;
  readonly sourcePort: number;
  readonly sourceNode: string;
}

/** indirectPingReq (1). */
export interface IndirectPing {
  readonly seqNo: number;
  readonly target: Uint8Array;
  readonly port: number;
  readonly node: string;
  readonly nack: boolean;
  readonly sourceAddr: Uint8Array;
  readonly sourcePort: number;
  readonly sourceNode: string;
}

/** ackResp (2); an empty payload goes out as nil. */
export interface AckResp {
  readonly seqNo: number;
  readonly payload: Uint8Array;
}

/** nackResp (11). */
export interface NackResp {
  readonly seqNo: number;
}

/** errResp (13), streams only. */
export interface ErrResp {
  readonly error: string;
}

/** suspect (3) and dead (5). A dead with from === node is a graceful leave. */
export interface Suspect {
  readonly incarnation: number;
  readonly node: string;
  readonly from: string;
}
export type Dead = Suspect;

/** alive (4). `addr` verbatim (4 or 16 bytes); `vsn` the six raw version bytes. */
export interface Alive {
  readonly incarnation: number;
  readonly node: string;
  readonly addr: Uint8Array;
  readonly port: number;
  readonly meta: Uint8Array;
  readonly vsn: Uint8Array;
}

/** pushPullHeader. */
export interface PushPullHeader {
  readonly nodes: number;
  readonly userStateLen: number;
  readonly join: boolean;
}

/** pushNodeState: one member in a push/pull. */
export interface PushNodeState {
  readonly name: string;
  readonly addr: Uint8Array;
  readonly port: number;
  readonly meta: Uint8Array;
  readonly incarnation: number;
  readonly state: number;
  readonly vsn: Uint8Array;
}

/** A message that can travel alone in a packet (or, for errResp, a stream). */
export type GossipMessage =
  | ({ readonly kind: 'ping' } & Ping)
  | ({ readonly kind: 'indirectPing' } & IndirectPing)
  | ({ readonly kind: 'ackResp' } & AckResp)
  | ({ readonly kind: 'nackResp' } & NackResp)
  | ({ readonly kind: 'suspect' } & Suspect)
  | ({ readonly kind: 'alive' } & Alive)
  | ({ readonly kind: 'dead' } & Dead)
  | ({ readonly kind: 'errResp' } & ErrResp)
  | { readonly kind: 'user'; readonly payload: Uint8Array };

/** What one packet held: the messages that decoded, and why the others were dropped. */
export interface DecodedPacket {
  readonly messages: GossipMessage[];
  /** One per dropped packet or part. Empty when everything decoded. */
  readonly errors: GossipWireError[];
  /** Compound parts cut off by the end of their buffer (memberlist logs and drops them). */
  readonly truncatedParts: number;
  readonly label: string;
  readonly wasEncrypted: boolean;
  readonly hadCrc: boolean;
}

export interface DecodePacketOptions {
  /** Keys to decrypt with; null or an empty keyring means encryption is off. */
  readonly keyring?: Keyring | null;
  /** GossipVerifyIncoming (default true): when false, a packet no key opens is read as plaintext. */
  readonly isVerifyIncoming?: boolean;
  /** Our label (≥0.3.0, default none); a packet with another label is dropped. */
  readonly label?: string;
  /** Total decompressed bytes one packet may expand to (default PACKET_DECOMPRESSED_BYTES_MAX). */
  readonly decompressedBytesMax?: number;
}

export interface EncodePacketOptions {
  /** EnableCompression (default true): compress when the result is smaller. */
  readonly isCompressionEnabled?: boolean;
  /** The target's PMax if known; a CRC is added only when it is ≥ 5. */
  readonly peerProtocolMax?: number | null;
  /** Encrypt with the primary key when the keyring is enabled (and isVerifyOutgoing). */
  readonly keyring?: Keyring | null;
  readonly isVerifyOutgoing?: boolean;
  /** Default 1; 0 only when our protocol version is 1. */
  readonly encryptionVersion?: EncryptionVersion;
  /** Required when encrypting. */
  readonly randomBytes?: RandomBytes;
  /** ≥0.3.0 label (default none): prefixed and used as AAD. Never set one toward 0.2.2 peers. */
  readonly label?: string;
}

export type EncodeStreamOptions = Omit<EncodePacketOptions, 'peerProtocolMax'>;

export interface DecodeStreamOptions {
  readonly keyring?: Keyring | null;
  readonly isVerifyIncoming?: boolean;
  readonly label?: string;
  /** Largest decompressed stream (default STREAM_DECOMPRESSED_BYTES_MAX). */
  readonly decompressedBytesMax?: number;
}

/** A complete message read off a TCP connection. */
export type StreamMessage =
  | { readonly kind: 'pushPull'; readonly join: boolean; readonly nodes: PushNodeState[]; readonly userState: Uint8Array }
  | { readonly kind: 'user'; readonly payload: Uint8Array }
  | ({ readonly kind: 'ping' } & Ping)
  | ({ readonly kind: 'ackResp' } & AckResp)
  | ({ readonly kind: 'errResp' } & ErrResp);

/** decodeStream's answer: wait for more bytes, or one message and how many bytes it took. */
export type StreamFrame =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'message'; readonly message: StreamMessage; readonly bytesConsumed: number; readonly label: string; readonly wasEncrypted: boolean };

export type GossipWireErrorCode =
  | 'ERR_GOSSIP_EMPTY'
  | 'ERR_GOSSIP_TRUNCATED'
  | 'ERR_GOSSIP_MALFORMED'
  | 'ERR_GOSSIP_TYPE_UNSUPPORTED'
  | 'ERR_GOSSIP_CRC'
  | 'ERR_GOSSIP_COMPRESS'
  | 'ERR_GOSSIP_TOO_LARGE'
  | 'ERR_GOSSIP_DEPTH'
  | 'ERR_GOSSIP_LABEL'
  | 'ERR_GOSSIP_DECRYPT'
  | 'ERR_GOSSIP_NOT_ENCRYPTED'
  | 'ERR_GOSSIP_UNENCODABLE';

/** Bad gossip bytes (memberlist and serf layers), with a code. The only error these decoders throw. */
export class GossipWireError extends Error {
  override readonly name = 'GossipWireError';
  constructor(
    readonly code: GossipWireErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Limits

/** memberlist's UDP receive buffer: no packet is larger. */
export const GOSSIP_PACKET_BYTES_MAX = 65536;
/** UDPBufferSize: the largest packet we build (Consul and memberlist default). */
export const UDP_BUFFER_BYTES = 1400;
/** MetaMaxSize: node metadata (serf tags) never exceeds this. */
export const META_BYTES_MAX = 512;
/** maxPushStateBytes: an encrypted stream blob or a user state tail is at most this. */
export const STREAM_BYTES_MAX = 20 * 1024 * 1024;
/** memberlist ≥0.5.x maxDecompressedBytes: a compressed stream expands to at most this. */
export const STREAM_DECOMPRESSED_BYTES_MAX = 2 * STREAM_BYTES_MAX;
/** Total a packet may expand to through compress messages. Legitimate packets expand to < 64 KiB. */
export const PACKET_DECOMPRESSED_BYTES_MAX = 1024 * 1024;
/** A compound header counts parts in one byte. */
export const COMPOUND_PARTS_MAX = 255;
/** memberlist 0.2.2 multiplies the part count in uint8: more than 127 parts are mis-parsed there. */
export const COMPOUND_PARTS_MAX_V022 = 127;
/** A compound part's length is a u16. */
export const COMPOUND_PART_BYTES_MAX = 65535;
/** Nesting of compound/compress inside each other within one packet. */
export const PACKET_NESTING_DEPTH_MAX = 8;
/** Messages one packet may yield, all nesting included. */
export const PACKET_MESSAGES_MAX = 4096;
/** memberlist ≥0.5.x maxPushStateNodes. */
export const PUSH_PULL_NODES_MAX = 1024 * 1024;
/** Labels are at most 255 bytes (memberlist label.go LabelMaxSize). */
export const LABEL_BYTES_MAX = 255;
/** Bytes of compound header assumed by the gossip budget (compoundHeaderOverhead). */
export const COMPOUND_HEADER_OVERHEAD_BYTES = 2;
/** Bytes each compound part costs beyond its own (compoundOverhead). */
export const COMPOUND_PART_OVERHEAD_BYTES = 2;
/** Extra byte of a user part (userMsgOverhead: the `08` type byte). */
export const USER_MSG_OVERHEAD_BYTES = 1;
/** memberlist's protocol range (ProtocolVersionMin/Max) and the version it speaks by default. */
export const PROTOCOL_VERSION_MIN = 1;
export const PROTOCOL_VERSION_MAX = 5;
export const PROTOCOL_VERSION_DEFAULT = 2;
/** Compression algorithm id for LZW in compress{Algo}. Wire enum: append only. */
export const COMPRESSION_ALGO_LZW = 0;

// ---------------------------------------------------------------------------------------------
// Exported API: versions, messages

/** The 6-byte Vsn field. Throws ERR_GOSSIP_UNENCODABLE for values outside 0..255. */
export function encodeVsn(versions: ProtocolVersions): Uint8Array {
  const bytes = [versions.pMin, versions.pMax, versions.pCur, versions.dMin, versions.dMax, versions.dCur];
  for (const value of bytes) if (!Number.isInteger(value) || value < 0 || value > 255) throw new GossipWireError('ERR_GOSSIP_UNENCODABLE', `version ${value} is not a byte`);
  return Uint8Array.from(bytes);
}

/** Reads a Vsn field; null when it has fewer than 6 bytes (serf and Consul then drop the alive). */
export function decodeVsn(vsn: Uint8Array): ProtocolVersions | null {
  if (vsn.length < 6) return null;
  const [pMin = 0, pMax = 0, pCur = 0, dMin = 0, dMax = 0, dCur = 0] = vsn;
  return { pMin, pMax, pCur, dMin, dMax, dCur };
}

/** Encodes one message as `[type][msgpack body]` (user: `08` + payload). */
export function encodeMessage(message: GossipMessage): Uint8Array {
  switch (message.kind) {
    case 'ping':
      return encodeGoMessage(MessageType.ping, { Node: message.node, SeqNo: uintField(message.seqNo, U32_MAX, 'ping.SeqNo'), ...sourceFields(message) });
    case 'indirectPing':
      return encodeGoMessage(MessageType.indirectPing, {
        Nack: message.nack,
        Node: message.node,
        Port: uintField(message.port, U16_MAX, 'indirectPingReq.Port'),
        SeqNo: uintField(message.seqNo, U32_MAX, 'indirectPingReq.SeqNo'),
        Target: nilIfEmpty(message.target),
        ...sourceFields(message),
      });
    case 'ackResp':
      return encodeGoMessage(MessageType.ackResp, { Payload: nilIfEmpty(message.payload), SeqNo: uintField(message.seqNo, U32_MAX, 'ackResp.SeqNo') });
    case 'nackResp':
      return encodeGoMessage(MessageType.nackResp, { SeqNo: uintField(message.seqNo, U32_MAX, 'nackResp.SeqNo') });
    case 'suspect':
      return encodeGoMessage(MessageType.suspect, { From: message.from, Incarnation: uintField(message.incarnation, U32_MAX, 'suspect.Incarnation'), Node: message.node });
    case 'dead':
      return encodeGoMessage(MessageType.dead, { From: message.from, Incarnation: uintField(message.incarnation, U32_MAX, 'dead.Incarnation'), Node: message.node });
    case 'alive':
      // memberlist refuses (panics on) node metadata over MetaMaxSize; refuse before sending.
      if (message.meta.length > META_BYTES_MAX) throw new GossipWireError('ERR_GOSSIP_UNENCODABLE', `node meta of ${message.meta.length} bytes exceeds ${META_BYTES_MAX}`);
      return encodeGoMessage(MessageType.alive, {
        Addr: nilIfEmpty(message.addr),
        Incarnation: uintField(message.incarnation, U32_MAX, 'alive.Incarnation'),
        Meta: nilIfEmpty(message.meta),
        Node: message.node,
        Port: uintField(message.port, U16_MAX, 'alive.Port'),
        Vsn: nilIfEmpty(message.vsn),
      });
    case 'errResp':
      return encodeGoMessage(MessageType.errResp, { Error: message.error });
    case 'user':
      return prefixByte(MessageType.user, message.payload);
    default:
      return assertNever(message);
  }
}

/**
 * Decodes one message `[type][body]` of a kind that travels alone (ping, indirectPing, ackResp,
 * nackResp, suspect, alive, dead, errResp, user). Framing types (compound, compress, hasCrc,
 * encrypt, label) and pushPull are ERR_GOSSIP_TYPE_UNSUPPORTED here: see decodePacket/decodeStream.
 */
export function decodeMessage(bytes: Uint8Array): GossipMessage {
  if (bytes.length === 0) throw new GossipWireError('ERR_GOSSIP_EMPTY', 'empty message');
  const type = bytes[0] ?? 0;
  const body = bytes.subarray(1);
  switch (type) {
    case MessageType.ping:
      return { kind: 'ping', ...decodePingBody(body) };
    case MessageType.indirectPing:
      return { kind: 'indirectPing', ...decodeIndirectPingBody(body) };
    case MessageType.ackResp:
      return { kind: 'ackResp', ...decodeAckBody(body) };
    case MessageType.nackResp: {
      const s = readGoStruct(body, 'nackResp', ['SeqNo']);
      return { kind: 'nackResp', seqNo: s.uint('SeqNo', U32_MAX) };
    }
    case MessageType.suspect:
      return { kind: 'suspect', ...decodeAccusation(body, 'suspect') };
    case MessageType.dead:
      return { kind: 'dead', ...decodeAccusation(body, 'dead') };
    case MessageType.alive:
      return { kind: 'alive', ...decodeAliveBody(body) };
    case MessageType.errResp: {
      const s = readGoStruct(body, 'errResp', ['Error']);
      return { kind: 'errResp', error: s.string('Error') };
    }
    case MessageType.user:
      return { kind: 'user', payload: body.slice() };
    default:
      throw new GossipWireError('ERR_GOSSIP_TYPE_UNSUPPORTED', `msg type (${type}) not supported here`);
  }
}

// ---------------------------------------------------------------------------------------------
// Exported API: framing pieces

/**
 * `07 count u16BE-lengths parts`. Throws for more than COMPOUND_PARTS_MAX parts or a part longer
 * than 65535 bytes; use encodeCompounds to split.
 */
export function encodeCompound(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length > COMPOUND_PARTS_MAX) throw new GossipWireError('ERR_GOSSIP_UNENCODABLE', `${parts.length} parts do not fit one compound`);
  let total = 2 + 2 * parts.length;
  for (const part of parts) {
    if (part.length > COMPOUND_PART_BYTES_MAX) throw new GossipWireError('ERR_GOSSIP_UNENCODABLE', `a ${part.length}-byte part does not fit a compound`);
    total += part.length;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out[0] = MessageType.compound;
  out[1] = parts.length;
  let offset = 2;
  for (const part of parts) {
    view.setUint16(offset, part.length);
    offset += 2;
  }
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  assert(offset === total, 'compound length accounting');
  return out;
}

/** Splits parts into compounds of at most `partsMax` (default 127, safe for memberlist 0.2.2). */
export function encodeCompounds(parts: readonly Uint8Array[], partsMax = COMPOUND_PARTS_MAX_V022): Uint8Array[] {
  if (!Number.isInteger(partsMax) || partsMax < 1 || partsMax > COMPOUND_PARTS_MAX) throw new GossipWireError('ERR_GOSSIP_UNENCODABLE', `bad parts limit ${partsMax}`);
  const out: Uint8Array[] = [];
  for (let i = 0; i < parts.length; i += partsMax) out.push(encodeCompound(parts.slice(i, i + partsMax)));
  return out;
}

/**
 * Splits a compound body (the bytes after `07`). Parts that run past the buffer are dropped and
 * counted, as memberlist decodeCompoundMessage does. Part views alias `body`.
 */
export function decodeCompound(body: Uint8Array): { parts: Uint8Array[]; truncatedParts: number } {
  if (body.length < 1) throw new GossipWireError('ERR_GOSSIP_TRUNCATED', 'missing compound length byte');
  const count = body[0] ?? 0;
  if (body.length < 1 + 2 * count) throw new GossipWireError('ERR_GOSSIP_TRUNCATED', 'truncated len slice');
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const parts: Uint8Array[] = [];
  let offset = 1 + 2 * count;
  for (let i = 0; i < count; i++) {
    const length = view.getUint16(1 + 2 * i);
    if (offset + length > body.length) return { parts, truncatedParts: count - i };
    parts.push(body.subarray(offset, offset + length));
    offset += length;
  }
  return { parts, truncatedParts: 0 };
}

/** CRC-32/IEEE (Go hash/crc32 ChecksumIEEE, zlib's crc32). */
export function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = (CRC_TABLE[(crc ^ (bytes[i] ?? 0)) & 0xff] ?? 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** `0c crc32(BE) message`. */
export function addCrc(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  out[0] = MessageType.hasCrc;
  new DataView(out.buffer).setUint32(1, crc32(message));
  out.set(message, 5);
  return out;
}

/** `09 {Algo: 0, Buf: lzw(payload)}`. */
export function encodeCompress(payload: Uint8Array): Uint8Array {
  return encodeGoMessage(MessageType.compress, { Algo: COMPRESSION_ALGO_LZW, Buf: nilIfEmpty(lzwCompress(payload)) });
}

/**
 * Inflates a compress body (the bytes after `09`). Returns the inner bytes and the body length
 * consumed. Throws for an unknown Algo, corrupt LZW, or more than `outputBytesMax` bytes.
 */
export function decodeCompress(body: Uint8Array, outputBytesMax: number): { payload: Uint8Array; bytesConsumed: number } {
  const reader = new MsgpackReader(body, RAW_STRINGS);
  const s = readGoStructFrom(reader, 'compress', ['Algo', 'Buf']);
  const algo = s.int('Algo');
  if (algo !== COMPRESSION_ALGO_LZW) throw new GossipWireError('ERR_GOSSIP_COMPRESS', `Cannot decompress unknown algorithm ${algo}`);
  try {
    return { payload: lzwDecompress(s.bytesView('Buf'), outputBytesMax), bytesConsumed: reader.offset };
  } catch (error) {
    if (!(error instanceof LzwError)) throw error;
    throw new GossipWireError(error.code === 'ERR_LZW_TOO_LARGE' ? 'ERR_GOSSIP_TOO_LARGE' : 'ERR_GOSSIP_COMPRESS', `lzw: ${error.message}`);
  }
}

/** `f4 len label` + bytes (memberlist ≥0.3.0). An empty label adds nothing. */
export function addLabelHeader(bytes: Uint8Array, label: string): Uint8Array {
  if (label === '') return bytes;
  const labelBytes = TEXT_ENCODER.encode(label);
  if (labelBytes.length > LABEL_BYTES_MAX) throw new GossipWireError('ERR_GOSSIP_UNENCODABLE', `label "${label}" is too long`);
  const out = new Uint8Array(2 + labelBytes.length + bytes.length);
  out[0] = MessageType.hasLabel;
  out[1] = labelBytes.length;
  out.set(labelBytes, 2);
  out.set(bytes, 2 + labelBytes.length);
  return out;
}

/**
 * Strips a label header if there is one (memberlist RemoveLabelHeaderFromPacket). Returns the
 * label ('' when none) and the rest. `isComplete: false` means the header itself is cut short
 * (an error for a packet, "read more" for a stream).
 */
export function removeLabelHeader(bytes: Uint8Array): { label: string; rest: Uint8Array; isComplete: boolean } {
  if (bytes.length === 0 || bytes[0] !== MessageType.hasLabel) return { label: '', rest: bytes, isComplete: true };
  if (bytes.length < 2) return { label: '', rest: bytes, isComplete: false };
  const size = bytes[1] ?? 0;
  if (size < 1) throw new GossipWireError('ERR_GOSSIP_LABEL', 'label header cannot be empty when present');
  if (bytes.length < 2 + size) return { label: '', rest: bytes, isComplete: false };
  return { label: TEXT_DECODER.decode(bytes.subarray(2, 2 + size)), rest: bytes.subarray(2 + size), isComplete: true };
}

// ---------------------------------------------------------------------------------------------
// Exported API: packets

/**
 * Frames one message or compound for UDP (memberlist rawSendMsgPacket, wire.md §2.4 steps 2–5):
 * compress when that is smaller, CRC when the peer's PMax ≥ 5, encrypt (no `0a` byte on packets),
 * then the label header.
 */
export function encodePacket(payload: Uint8Array, options: EncodePacketOptions = {}): Uint8Array {
  let bytes = payload;
  if (options.isCompressionEnabled ?? true) {
    const compressed = encodeCompress(bytes);
    if (compressed.length < bytes.length) bytes = compressed;
  }
  if ((options.peerProtocolMax ?? 0) >= 5) bytes = addCrc(bytes);
  const label = options.label ?? '';
  if (isEncrypting(options)) bytes = encryptWith(options, bytes, label === '' ? null : TEXT_ENCODER.encode(label));
  return addLabelHeader(bytes, label);
}

/**
 * Decodes a received UDP packet into its messages (memberlist ingestPacket + handleCommand).
 * Never throws for bad input: a packet-level failure (label, decryption, CRC) yields no messages
 * and one error; a bad part is skipped with an error while its siblings are kept.
 */
export function decodePacket(bytes: Uint8Array, options: DecodePacketOptions = {}): DecodedPacket {
  const result = { messages: [] as GossipMessage[], errors: [] as GossipWireError[], truncatedParts: 0, label: '', wasEncrypted: false, hadCrc: false };
  try {
    if (bytes.length > GOSSIP_PACKET_BYTES_MAX) throw new GossipWireError('ERR_GOSSIP_TOO_LARGE', `packet of ${bytes.length} bytes is over ${GOSSIP_PACKET_BYTES_MAX}`);
    const labelled = removeLabelHeader(bytes);
    if (!labelled.isComplete) throw new GossipWireError('ERR_GOSSIP_LABEL', 'cannot decode label; packet has been truncated');
    result.label = labelled.label;
    if (labelled.label !== (options.label ?? '')) throw new GossipWireError('ERR_GOSSIP_LABEL', `discarding packet with unacceptable label "${labelled.label}"`);
    let buf = labelled.rest;
    const keyring = options.keyring;
    if (keyring && keyring.isEnabled) {
      const aad = labelled.label === '' ? null : TEXT_ENCODER.encode(labelled.label);
      const plain = tryDecrypt(keyring, buf, aad);
      if (plain !== null) {
        buf = plain;
        result.wasEncrypted = true;
      } else if (options.isVerifyIncoming ?? true) {
        throw new GossipWireError('ERR_GOSSIP_DECRYPT', 'Decrypt packet failed: no installed key could decrypt the message');
      }
    }
    if (buf.length >= 5 && buf[0] === MessageType.hasCrc) {
      const expected = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(1);
      buf = buf.subarray(5);
      const actual = crc32(buf);
      if (actual !== expected) throw new GossipWireError('ERR_GOSSIP_CRC', `Got invalid checksum for UDP packet: ${actual.toString(16)}, ${expected.toString(16)}`);
      result.hadCrc = true;
    }
    const budget = { decompressedBytesLeft: options.decompressedBytesMax ?? PACKET_DECOMPRESSED_BYTES_MAX };
    handleCommand(buf, 0, budget, result);
  } catch (error) {
    result.errors.push(asWireError(error));
  }
  return result;
}

/**
 * Bytes left for piggy-backed broadcasts in one packet (memberlist sendMsg/gossip): the UDP buffer
 * less the first message (0 for a pure gossip packet), the compound header, the encryption
 * overhead when encrypting, and a label header (≥0.3.0). Each part then costs compoundPartCostBytes.
 */
export function piggybackBytesAvailable(options: { udpBufferBytes?: number; firstMessageBytes?: number; encryptionVersion?: EncryptionVersion | null; label?: string } = {}): number {
  const labelBytes = options.label ? 2 + TEXT_ENCODER.encode(options.label).length : 0;
  const encryption = options.encryptionVersion === undefined || options.encryptionVersion === null ? 0 : encryptOverheadBytes(options.encryptionVersion);
  return (options.udpBufferBytes ?? UDP_BUFFER_BYTES) - (options.firstMessageBytes ?? 0) - COMPOUND_HEADER_OVERHEAD_BYTES - encryption - labelBytes;
}

/** What one piggy-backed part costs against the budget: its bytes + 2, + 1 more for a user message body. */
export function compoundPartCostBytes(partBytes: number, isUserPayload = false): number {
  return partBytes + COMPOUND_PART_OVERHEAD_BYTES + (isUserPayload ? USER_MSG_OVERHEAD_BYTES : 0);
}

// ---------------------------------------------------------------------------------------------
// Exported API: streams

/** `06 {header} {node}×n userState`: the plaintext of a push/pull (memberlist sendLocalState). */
export function encodePushPull(join: boolean, nodes: readonly PushNodeState[], userState: Uint8Array | null): Uint8Array {
  const writer = new MsgpackWriter(GO_COMPATIBLE, 64 + nodes.length * 96 + (userState?.length ?? 0));
  writer.writeRawByte(MessageType.pushPull);
  writer.write({ Join: join, Nodes: nodes.length, UserStateLen: userState?.length ?? 0 });
  for (const node of nodes) {
    writer.write({
      Addr: nilIfEmpty(node.addr),
      Incarnation: uintField(node.incarnation, U32_MAX, 'pushNodeState.Incarnation'),
      Meta: nilIfEmpty(node.meta),
      Name: node.name,
      Port: uintField(node.port, U16_MAX, 'pushNodeState.Port'),
      State: node.state,
      Vsn: nilIfEmpty(node.vsn),
    });
  }
  if (userState !== null) writer.writeRaw(userState);
  return writer.finish().slice();
}

/** `08 {UserMsgLen} payload`: a reliable user message (memberlist sendUserMsg). */
export function encodeUserMsgStream(payload: Uint8Array): Uint8Array {
  const writer = new MsgpackWriter(GO_COMPATIBLE, 16 + payload.length);
  writer.writeRawByte(MessageType.user);
  writer.write({ UserMsgLen: payload.length });
  writer.writeRaw(payload);
  return writer.finish().slice();
}

/**
 * Frames a stream plaintext `[type][msgpack][tail]` for TCP (memberlist rawSendMsgStream):
 * always compressed when enabled (no size check), then `0a` + u32 BE length + blob with those 5
 * bytes (plus the label) as AAD, then the label header (≥0.3.0).
 */
export function encodeStream(plaintext: Uint8Array, options: EncodeStreamOptions = {}): Uint8Array {
  let bytes = (options.isCompressionEnabled ?? true) ? encodeCompress(plaintext) : plaintext;
  const label = options.label ?? '';
  if (isEncrypting(options)) {
    const version = options.encryptionVersion ?? 1;
    const header = new Uint8Array(5);
    header[0] = MessageType.encrypt;
    new DataView(header.buffer).setUint32(1, encryptedLength(version, bytes.length));
    const blob = encryptWith(options, bytes, concatBytes(header, TEXT_ENCODER.encode(label)));
    bytes = concatBytes(header, blob);
  }
  return addLabelHeader(bytes, label);
}

/**
 * Reads one message from the bytes received so far on a connection (memberlist readStream and
 * the handlers behind it). Returns `incomplete` while `bytes` is a valid prefix; throws
 * GossipWireError for anything else that is wrong.
 */
export function decodeStream(bytes: Uint8Array, options: DecodeStreamOptions = {}): StreamFrame {
  const labelled = removeLabelHeader(bytes);
  if (!labelled.isComplete) return INCOMPLETE;
  if (labelled.label !== (options.label ?? '')) throw new GossipWireError('ERR_GOSSIP_LABEL', `discarding stream with unacceptable label "${labelled.label}"`);
  const headerBytes = bytes.length - labelled.rest.length;
  const buf = labelled.rest;
  if (buf.length === 0) return INCOMPLETE;
  const keyring = options.keyring;
  const isEncryptionOn = keyring !== null && keyring !== undefined && keyring.isEnabled;
  const decompressedBytesMax = options.decompressedBytesMax ?? STREAM_DECOMPRESSED_BYTES_MAX;
  if (buf[0] === MessageType.encrypt) {
    if (!isEncryptionOn) throw new GossipWireError('ERR_GOSSIP_DECRYPT', 'Remote state is encrypted and encryption is not configured');
    if (buf.length < 5) return INCOMPLETE;
    const length = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(1);
    if (length > STREAM_BYTES_MAX) throw new GossipWireError('ERR_GOSSIP_TOO_LARGE', `Remote node state is larger than limit (${length})`);
    if (buf.length < 5 + length) return INCOMPLETE;
    const aad = concatBytes(buf.subarray(0, 5), TEXT_ENCODER.encode(labelled.label));
    const plain = tryDecrypt(keyring, buf.subarray(5, 5 + length), aad);
    if (plain === null) throw new GossipWireError('ERR_GOSSIP_DECRYPT', 'No installed keys could decrypt the message');
    const message = decodeStreamPlaintext(plain, decompressedBytesMax, true);
    if (message === null) throw new GossipWireError('ERR_GOSSIP_TRUNCATED', 'encrypted stream message is truncated');
    return { kind: 'message', message: message.message, bytesConsumed: headerBytes + 5 + length, label: labelled.label, wasEncrypted: true };
  }
  if (isEncryptionOn && (options.isVerifyIncoming ?? true)) throw new GossipWireError('ERR_GOSSIP_NOT_ENCRYPTED', 'Encryption is configured but remote state is not encrypted');
  const message = decodeStreamPlaintext(buf, decompressedBytesMax, false);
  if (message === null) {
    if (buf.length >= STREAM_BYTES_MAX) throw new GossipWireError('ERR_GOSSIP_TOO_LARGE', `stream message exceeds ${STREAM_BYTES_MAX} bytes`);
    return INCOMPLETE;
  }
  return { kind: 'message', message: message.message, bytesConsumed: headerBytes + message.bytesConsumed, label: labelled.label, wasEncrypted: false };
}

/**
 * Decodes a push/pull body (after `06`): header, nodes, and exactly UserStateLen bytes of user
 * state. Returns null when `body` ends early (the caller waits for more bytes or reports truncation).
 */
export function decodePushPullBody(body: Uint8Array): { join: boolean; nodes: PushNodeState[]; userState: Uint8Array; bytesConsumed: number } | null {
  const reader = new MsgpackReader(body, RAW_STRINGS);
  return whileComplete(() => {
    const header = readGoStructFrom(reader, 'pushPullHeader', ['Nodes', 'UserStateLen', 'Join']);
    const count = header.int('Nodes');
    const userStateLen = header.int('UserStateLen');
    if (count < 0 || count > PUSH_PULL_NODES_MAX) throw new GossipWireError('ERR_GOSSIP_TOO_LARGE', `number of nodes in header (${count}) exceeds limit`);
    if (userStateLen < 0 || userStateLen > STREAM_BYTES_MAX) throw new GossipWireError('ERR_GOSSIP_TOO_LARGE', `user state length (${userStateLen}) exceeds limit`);
    const nodes: PushNodeState[] = [];
    for (let i = 0; i < count; i++) {
      if (reader.remaining === 0) throw new MsgpackError('ERR_MSGPACK_TRUNCATED', 'push/pull ends before its nodes');
      const s = readGoStructFrom(reader, 'pushNodeState', PUSH_NODE_STATE_FIELDS);
      nodes.push({
        name: s.string('Name'),
        addr: s.bytes('Addr'),
        port: s.uint('Port', U16_MAX),
        meta: s.bytes('Meta'),
        incarnation: s.uint('Incarnation', U32_MAX),
        state: s.int('State'),
        vsn: s.bytes('Vsn'),
      });
    }
    if (reader.remaining < userStateLen) throw new MsgpackError('ERR_MSGPACK_TRUNCATED', 'push/pull ends before its user state');
    const userState = body.slice(reader.offset, reader.offset + userStateLen);
    return { join: header.bool('Join'), nodes, userState, bytesConsumed: reader.offset + userStateLen };
  });
}

// ---------------------------------------------------------------------------------------------
// Exported API: Go struct helpers shared with serfwire.ts

/** Decoder options that keep str values as bytes, so []byte fields survive exactly. */
export const RAW_STRINGS = { rawStrings: true } as const;
const GO_COMPATIBLE = { goCompatible: true } as const;

/** `[type]` + the go-msgpack encoding of `fields` (a struct as a map of Go field names, keys get sorted; or any value). */
export function encodeGoMessage(type: number | null, fields: unknown): Uint8Array {
  const writer = new MsgpackWriter(GO_COMPATIBLE);
  if (type !== null) writer.writeRawByte(type);
  try {
    writer.write(fields);
  } catch (error) {
    if (error instanceof MsgpackError) throw new GossipWireError('ERR_GOSSIP_UNENCODABLE', error.message);
    throw error;
  }
  return writer.finish().slice();
}

/** An empty byte field goes out as nil (`c0`), as Go's zero-value structs carry nil slices. */
export function nilIfEmpty(bytes: Uint8Array | null | undefined): Uint8Array | null {
  return bytes && bytes.length > 0 ? bytes : null;
}

/** Checks an unsigned field before encoding: Go peers reject a value that overflows its type. */
export function uintField(value: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new GossipWireError('ERR_GOSSIP_UNENCODABLE', `${what} ${value} is not an integer in 0..${max}`);
  return value;
}

/** Reads one Go struct (a map, an array in declaration order, or nil) from the start of `bytes`. */
export function readGoStruct(bytes: Uint8Array, what: string, declarationOrder: readonly string[]): GoStruct {
  return readGoStructFrom(new MsgpackReader(bytes, RAW_STRINGS), what, declarationOrder);
}

/** Reads one Go struct at the reader's position; MsgpackError is converted to GossipWireError. */
export function readGoStructFrom(reader: MsgpackReader, what: string, declarationOrder: readonly string[]): GoStruct {
  let value: MsgpackValue;
  try {
    value = reader.read();
  } catch (error) {
    throw asWireError(error, what);
  }
  if (value === null || Array.isArray(value) || isPlainMap(value)) return new GoStruct(what, value, declarationOrder);
  throw new GossipWireError('ERR_GOSSIP_MALFORMED', `${what}: expected a map`);
}

/** Typed field access with Go's conversions and range checks. */
export class GoStruct {
  constructor(
    private readonly what: string,
    private readonly fields: { [key: string]: MsgpackValue } | MsgpackValue[] | null,
    private readonly order: readonly string[],
  ) {}

  /** The raw decoded value of a field (null when absent). */
  raw(name: string): MsgpackValue {
    const fields = this.fields;
    if (fields === null) return null;
    if (Array.isArray(fields)) {
      const index = this.order.indexOf(name);
      return index < 0 ? null : (fields[index] ?? null);
    }
    return Object.hasOwn(fields, name) ? (fields[name] ?? null) : null;
  }

  /** An unsigned integer of at most `max` (uint8/16/32). */
  uint(name: string, max: number): number {
    const value = this.raw(name);
    if (value === null) return 0;
    if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max) return value;
    throw this.bad(name, `an unsigned integer up to ${max}`);
  }

  /** A Go int (exact JS integers only). */
  int(name: string): number {
    const value = this.raw(name);
    if (value === null) return 0;
    if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
    throw this.bad(name, 'an integer');
  }

  /** A uint64 (serf LamportTime) as bigint. */
  u64(name: string): bigint {
    const value = this.raw(name);
    return asU64(value, () => this.bad(name, 'a uint64'));
  }

  bool(name: string): boolean {
    const value = this.raw(name);
    if (value === null || value === false || value === 0) return false;
    if (value === true || value === 1) return true;
    throw this.bad(name, 'a bool');
  }

  string(name: string): string {
    const value = this.raw(name);
    if (value === null) return '';
    if (value instanceof Uint8Array) return TEXT_DECODER.decode(value);
    if (typeof value === 'string') return value;
    throw this.bad(name, 'a string');
  }

  /** A []byte field as a copy (str, bin, nil, or an array of small integers). */
  bytes(name: string): Uint8Array {
    return this.bytesView(name).slice();
  }

  /** A []byte field as a view into the input (for immediate use only). */
  bytesView(name: string): Uint8Array {
    return asBytes(this.raw(name), () => this.bad(name, 'bytes'));
  }

  /** A []string; nil gives []. */
  stringList(name: string): string[] {
    const value = this.raw(name);
    if (value === null) return [];
    if (!Array.isArray(value)) throw this.bad(name, 'an array of strings');
    return value.map((item) => {
      if (item instanceof Uint8Array) return TEXT_DECODER.decode(item);
      if (typeof item === 'string') return item;
      if (item === null) return '';
      throw this.bad(name, 'an array of strings');
    });
  }

  /** A [][]byte; nil gives null (serf sends `c0` for no filters). */
  bytesListOrNull(name: string): Uint8Array[] | null {
    const value = this.raw(name);
    if (value === null) return null;
    if (!Array.isArray(value)) throw this.bad(name, 'an array of bytes');
    return value.map((item) => asBytes(item, () => this.bad(name, 'an array of bytes')).slice());
  }

  /** A nested struct field. */
  struct(name: string, declarationOrder: readonly string[]): GoStruct {
    const value = this.raw(name);
    if (value === null || Array.isArray(value) || isPlainMap(value)) return new GoStruct(`${this.what}.${name}`, value, declarationOrder);
    throw this.bad(name, 'a struct');
  }

  /** A map[string]string; nil gives an empty map. */
  stringMap(name: string): Map<string, string> {
    return asStringMap(this.raw(name), () => this.bad(name, 'a map of strings'));
  }

  /** A map[string]uint64 (serf StatusLTimes). */
  u64Map(name: string): Map<string, bigint> {
    const value = this.raw(name);
    const out = new Map<string, bigint>();
    if (value === null) return out;
    if (!isPlainMap(value)) throw this.bad(name, 'a map');
    for (const [key, item] of Object.entries(value)) out.set(key, asU64(item, () => this.bad(name, 'a map of uint64')));
    return out;
  }

  private bad(name: string, expected: string): GossipWireError {
    return new GossipWireError('ERR_GOSSIP_MALFORMED', `${this.what}.${name}: expected ${expected}`);
  }
}

/** Converts any error from a decoder to a GossipWireError (MsgpackError, LzwError, crypto). */
export function asWireError(error: unknown, what = 'message'): GossipWireError {
  if (error instanceof GossipWireError) return error;
  if (error instanceof MsgpackError) return new GossipWireError(error.code === 'ERR_MSGPACK_TRUNCATED' ? 'ERR_GOSSIP_TRUNCATED' : 'ERR_GOSSIP_MALFORMED', `${what}: ${error.message}`);
  if (error instanceof GossipCryptoError) return new GossipWireError('ERR_GOSSIP_DECRYPT', error.message);
  if (error instanceof LzwError) return new GossipWireError('ERR_GOSSIP_COMPRESS', error.message);
  throw error;
}

/** Reads a map[string]string value. */
export function asStringMap(value: MsgpackValue, fail: () => GossipWireError): Map<string, string> {
  const out = new Map<string, string>();
  if (value === null) return out;
  if (!isPlainMap(value)) throw fail();
  for (const [key, item] of Object.entries(value)) {
    if (item instanceof Uint8Array) out.set(key, TEXT_DECODER.decode(item));
    else if (typeof item === 'string') out.set(key, item);
    else if (item === null) out.set(key, '');
    else throw fail();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Private helpers

const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder('utf-8');
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
const INCOMPLETE: StreamFrame = { kind: 'incomplete' };
const PING_FIELDS = ['SeqNo', 'Node', 'SourceAddr', 'SourcePort', 'SourceNode'];
const INDIRECT_PING_FIELDS = ['SeqNo', 'Target', 'Port', 'Node', 'Nack', 'SourceAddr', 'SourcePort', 'SourceNode'];
const ALIVE_FIELDS = ['Incarnation', 'Node', 'Addr', 'Port', 'Meta', 'Vsn'];
const ACCUSATION_FIELDS = ['Incarnation', 'Node', 'From'];
const PUSH_NODE_STATE_FIELDS = ['Name', 'Addr', 'Port', 'Meta', 'Incarnation', 'State', 'Vsn'];

const CRC_TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

interface PacketResult {
  messages: GossipMessage[];
  errors: GossipWireError[];
  truncatedParts: number;
}

/** memberlist handleCommand: dispatch one message; compound and compress recurse. */
function handleCommand(buf: Uint8Array, depth: number, budget: { decompressedBytesLeft: number }, result: PacketResult): void {
  if (depth > PACKET_NESTING_DEPTH_MAX) throw new GossipWireError('ERR_GOSSIP_DEPTH', `messages nested deeper than ${PACKET_NESTING_DEPTH_MAX}`);
  if (buf.length === 0) throw new GossipWireError('ERR_GOSSIP_EMPTY', 'empty message');
  const type = buf[0];
  if (type === MessageType.compound) {
    const { parts, truncatedParts } = decodeCompound(buf.subarray(1));
    result.truncatedParts += truncatedParts;
    for (const part of parts) {
      try {
        handleCommand(part, depth + 1, budget, result);
      } catch (error) {
        // One bad part is dropped alone, as memberlist handles each part separately.
        result.errors.push(asWireError(error));
      }
    }
    return;
  }
  if (type === MessageType.compress) {
    const { payload } = decodeCompress(buf.subarray(1), budget.decompressedBytesLeft);
    budget.decompressedBytesLeft -= payload.length;
    handleCommand(payload, depth + 1, budget, result);
    return;
  }
  if (type === MessageType.pushPull || type === MessageType.errResp || type === MessageType.encrypt || type === MessageType.hasCrc) {
    throw new GossipWireError('ERR_GOSSIP_TYPE_UNSUPPORTED', `msg type (${type}) not supported`);
  }
  if (result.messages.length >= PACKET_MESSAGES_MAX) throw new GossipWireError('ERR_GOSSIP_TOO_LARGE', `more than ${PACKET_MESSAGES_MAX} messages in one packet`);
  result.messages.push(decodeMessage(buf));
}

/** Plaintext stream message (after any decryption). null = needs more bytes (only when !isWhole). */
function decodeStreamPlaintext(buf: Uint8Array, decompressedBytesMax: number, isWhole: boolean): { message: StreamMessage; bytesConsumed: number } | null {
  if (buf.length === 0) {
    if (isWhole) throw new GossipWireError('ERR_GOSSIP_EMPTY', 'empty stream message');
    return null;
  }
  if (buf[0] === MessageType.compress) {
    const reader = new MsgpackReader(buf.subarray(1), RAW_STRINGS);
    const isComplete = whileComplete(() => {
      reader.read();
      return true;
    });
    if (isComplete === null) {
      if (isWhole) throw new GossipWireError('ERR_GOSSIP_TRUNCATED', 'compress message is truncated');
      return null;
    }
    const { payload, bytesConsumed } = decodeCompress(buf.subarray(1), decompressedBytesMax);
    if (payload.length === 0) throw new GossipWireError('ERR_GOSSIP_EMPTY', 'decompressed message is empty');
    const inner = decodeStreamBody(payload);
    if (inner === null) throw new GossipWireError('ERR_GOSSIP_TRUNCATED', 'compressed stream message is truncated');
    return { message: inner.message, bytesConsumed: 1 + bytesConsumed };
  }
  const message = decodeStreamBody(buf);
  if (message === null && isWhole) throw new GossipWireError('ERR_GOSSIP_TRUNCATED', 'stream message is truncated');
  return message;
}

/** `[type][...]` of a stream: pushPull, user, ping, ackResp or errResp. null = truncated. */
function decodeStreamBody(buf: Uint8Array): { message: StreamMessage; bytesConsumed: number } | null {
  const type = buf[0];
  const body = buf.subarray(1);
  switch (type) {
    case MessageType.pushPull: {
      const pushPull = decodePushPullBody(body);
      if (pushPull === null) return null;
      return { message: { kind: 'pushPull', join: pushPull.join, nodes: pushPull.nodes, userState: pushPull.userState }, bytesConsumed: 1 + pushPull.bytesConsumed };
    }
    case MessageType.user: {
      const reader = new MsgpackReader(body, RAW_STRINGS);
      return whileComplete(() => {
        const length = readGoStructFrom(reader, 'userMsgHeader', ['UserMsgLen']).int('UserMsgLen');
        if (length < 0 || length > STREAM_BYTES_MAX) throw new GossipWireError('ERR_GOSSIP_TOO_LARGE', `user message length (${length}) exceeds limit`);
        if (reader.remaining < length) throw new MsgpackError('ERR_MSGPACK_TRUNCATED', 'user message ends early');
        const payload = body.slice(reader.offset, reader.offset + length);
        return { message: { kind: 'user', payload }, bytesConsumed: 1 + reader.offset + length };
      });
    }
    case MessageType.ping:
    case MessageType.ackResp:
    case MessageType.errResp: {
      const reader = new MsgpackReader(body, RAW_STRINGS);
      const end = whileComplete(() => {
        reader.read();
        return reader.offset;
      });
      if (end === null) return null;
      const message = decodeMessage(buf.subarray(0, 1 + end));
      if (message.kind !== 'ping' && message.kind !== 'ackResp' && message.kind !== 'errResp') throw new GossipWireError('ERR_GOSSIP_TYPE_UNSUPPORTED', `stream type ${type}`);
      return { message, bytesConsumed: 1 + end };
    }
    default:
      throw new GossipWireError('ERR_GOSSIP_TYPE_UNSUPPORTED', `Received invalid msgType (${type ?? -1})`);
  }
}

/** Runs a parse; a msgpack truncation (or one we raise as such) becomes null, other errors pass. */
function whileComplete<T>(parse: () => T): T | null {
  try {
    return parse();
  } catch (error) {
    if (error instanceof MsgpackError && error.code === 'ERR_MSGPACK_TRUNCATED') return null;
    if (error instanceof GossipWireError && error.code === 'ERR_GOSSIP_TRUNCATED') return null;
    throw asWireError(error);
  }
}

function decodePingBody(body: Uint8Array): Ping {
  const s = readGoStruct(body, 'ping', PING_FIELDS);
  return { seqNo: s.uint('SeqNo', U32_MAX), node: s.string('Node'), sourceAddr: s.bytes('SourceAddr'), sourcePort: s.uint('SourcePort', U16_MAX), sourceNode: s.string('SourceNode') };
}

function decodeIndirectPingBody(body: Uint8Array): IndirectPing {
  const s = readGoStruct(body, 'indirectPingReq', INDIRECT_PING_FIELDS);
  return {
    seqNo: s.uint('SeqNo', U32_MAX),
    target: s.bytes('Target'),
    port: s.uint('Port', U16_MAX),
    node: s.string('Node'),
    nack: s.bool('Nack'),
    sourceAddr: s.bytes('SourceAddr'),
    sourcePort: s.uint('SourcePort', U16_MAX),
    sourceNode: s.string('SourceNode'),
  };
}

function decodeAckBody(body: Uint8Array): AckResp {
  const s = readGoStruct(body, 'ackResp', ['SeqNo', 'Payload']);
  return { seqNo: s.uint('SeqNo', U32_MAX), payload: s.bytes('Payload') };
}

function decodeAccusation(body: Uint8Array, what: string): Suspect {
  const s = readGoStruct(body, what, ACCUSATION_FIELDS);
  return { incarnation: s.uint('Incarnation', U32_MAX), node: s.string('Node'), from: s.string('From') };
}

function decodeAliveBody(body: Uint8Array): Alive {
  const s = readGoStruct(body, 'alive', ALIVE_FIELDS);
  return { incarnation: s.uint('Incarnation', U32_MAX), node: s.string('Node'), addr: s.bytes('Addr'), port: s.uint('Port', U16_MAX), meta: s.bytes('Meta'), vsn: s.bytes('Vsn') };
}

/** The omitempty Source fields: present only when set, as go-msgpack omits empty ones. */
function sourceFields(message: { sourceAddr: Uint8Array; sourcePort: number; sourceNode: string }): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  if (message.sourceAddr.length > 0) fields.SourceAddr = message.sourceAddr;
  if (message.sourceNode !== '') fields.SourceNode = message.sourceNode;
  if (message.sourcePort !== 0) fields.SourcePort = uintField(message.sourcePort, U16_MAX, 'SourcePort');
  return fields;
}

function isEncrypting(options: EncodePacketOptions): boolean {
  return Boolean(options.keyring && options.keyring.isEnabled && (options.isVerifyOutgoing ?? true));
}

function encryptWith(options: EncodePacketOptions, plaintext: Uint8Array, aad: Uint8Array | null): Uint8Array {
  const key = options.keyring?.getPrimaryKey();
  if (!key || !options.randomBytes) throw new GossipWireError('ERR_GOSSIP_UNENCODABLE', 'encryption needs a primary key and randomBytes');
  return encryptPayload(options.encryptionVersion ?? 1, key, plaintext, aad, options.randomBytes);
}

/** Decrypts with every key; null when none fits or the blob is malformed. */
function tryDecrypt(keyring: Keyring, blob: Uint8Array, aad: Uint8Array | null): Uint8Array | null {
  try {
    return decryptPayload(keyring.getKeys(), blob, aad);
  } catch (error) {
    if (error instanceof GossipCryptoError) return null;
    throw error;
  }
}

function asBytes(value: MsgpackValue, fail: () => GossipWireError): Uint8Array {
  if (value === null) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return TEXT_ENCODER.encode(value);
  if (Array.isArray(value)) {
    const out = new Uint8Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (typeof item !== 'number' || !Number.isInteger(item) || item < 0 || item > 255) throw fail();
      out[i] = item;
    }
    return out;
  }
  throw fail();
}

function asU64(value: MsgpackValue, fail: () => GossipWireError): bigint {
  if (value === null) return 0n;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === 'bigint' && value >= 0n && value <= 0xffffffffffffffffn) return value;
  throw fail();
}

function isPlainMap(value: MsgpackValue): value is { [key: string]: MsgpackValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array) && Object.getPrototypeOf(value) === Object.prototype;
}

function prefixByte(type: number, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + bytes.length);
  out[0] = type;
  out.set(bytes, 1);
  return out;
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function assertNever(value: never): never {
  throw new GossipWireError('ERR_GOSSIP_UNENCODABLE', `unknown message kind ${JSON.stringify(value)}`);
}
