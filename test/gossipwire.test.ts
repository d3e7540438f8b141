// memberlist wire format: golden bytes from shared/spec/wire.md §1.4 and §2 (verified against
// memberlist 0.2.2 and a serf 0.9.4 agent), round trips of every message, packet framing
// (compound with truncation, CRC, compression, encryption, labels), streams (push/pull, user
// messages, partial reads), the piggy-back budget, and fuzzing of every decoder.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Keyring, type RandomBytes } from '../lib/gossipcrypto.js';
import {
  addCrc,
  compoundPartCostBytes,
  COMPOUND_PARTS_MAX_V022,
  crc32,
  decodeCompound,
  decodeMessage,
  decodePacket,
  decodePushPullBody,
  decodeStream,
  decodeVsn,
  encodeCompound,
  encodeCompounds,
  encodeCompress,
  encodeMessage,
  encodePacket,
  encodePushPull,
  encodeStream,
  encodeUserMsgStream,
  encodeVsn,
  GossipWireError,
  piggybackBytesAvailable,
  type GossipMessage,
  type PushNodeState,
} from '../lib/gossipwire.js';
import { seededRng } from '../lib/rng.js';

/** Hex with `"text"` runs for ASCII, as wire.md writes vectors. */
function wire(spec: string): Uint8Array {
  const out: number[] = [];
  for (const token of spec.match(/"[^"]*"|[0-9a-f]+/g) ?? []) {
    if (token.startsWith('"')) out.push(...Buffer.from(token.slice(1, -1)));
    else out.push(...Buffer.from(token, 'hex'));
  }
  return Uint8Array.from(out);
}

function seededBytes(seed: number): RandomBytes {
  const rng = seededRng(seed);
  return (n) => Uint8Array.from({ length: n }, () => Math.floor(rng() * 256));
}

const empty = new Uint8Array(0);
const SERF_VSN = Uint8Array.of(1, 5, 2, 2, 5, 5);

const MESSAGES: GossipMessage[] = [
  { kind: 'ping', seqNo: 1, node: 'n2', sourceAddr: Uint8Array.of(127, 0, 0, 1), sourcePort: 7946, sourceNode: 'n1' },
  { kind: 'ping', seqNo: 300, node: '', sourceAddr: empty, sourcePort: 0, sourceNode: '' },
  { kind: 'indirectPing', seqNo: 4294967295, target: Uint8Array.of(10, 0, 0, 9), port: 8301, node: 'web-1', nack: true, sourceAddr: Uint8Array.of(10, 0, 0, 1), sourcePort: 8301, sourceNode: 'me' },
  { kind: 'ackResp', seqNo: 7, payload: empty },
  { kind: 'ackResp', seqNo: 8, payload: Uint8Array.of(1, 0x84, 0xa0) },
  { kind: 'nackResp', seqNo: 65536 },
  { kind: 'suspect', incarnation: 3, node: 'a', from: 'b' },
  { kind: 'dead', incarnation: 0, node: 'a', from: 'a' },
  { kind: 'alive', incarnation: 9, node: 'real1', addr: Uint8Array.of(127, 0, 0, 1), port: 7946, meta: wire('ff 81 a4"role" a3"web"'), vsn: SERF_VSN },
  { kind: 'alive', incarnation: 1, node: 'v6', addr: Uint8Array.from([...new Uint8Array(10), 0xff, 0xff, 10, 0, 0, 1]), port: 8301, meta: new Uint8Array(300).fill(7), vsn: SERF_VSN },
  { kind: 'errResp', error: 'boom' },
  { kind: 'user', payload: wire('03 84 a2"CC" c3') },
];

function isWireError(code?: string): (error: unknown) => boolean {
  return (error) => error instanceof GossipWireError && (code === undefined || error.code === code);
}

function node(name: string, state = 0): PushNodeState {
  return { name, addr: Uint8Array.of(127, 0, 0, 1), port: 7946, meta: wire('ff 80'), incarnation: 2, state, vsn: SERF_VSN };
}

describe('gossipwire: golden bytes (wire.md §1.4, §2.3)', () => {
  it('encodes ping with sorted keys and omitempty Source fields', () => {
    assert.deepEqual(encodeMessage(MESSAGES[0] as GossipMessage), wire('00 85 a4"Node" a2"n2" a5"SeqNo" 01 aa"SourceAddr" a4 7f000001 aa"SourceNode" a2"n1" aa"SourcePort" cd 1f0a'));
    assert.deepEqual(encodeMessage(MESSAGES[1] as GossipMessage), wire('00 82 a4"Node" a0 a5"SeqNo" cd 012c'));
  });

  it('encodes ackResp with a nil payload as c0', () => {
    assert.deepEqual(encodeMessage({ kind: 'ackResp', seqNo: 7, payload: empty }), wire('02 82 a7"Payload" c0 a5"SeqNo" 07'));
  });

  it('encodes the push/pull header as memberlist does', () => {
    const plain = encodePushPull(true, [node('a'), node('b')], new Uint8Array(600));
    const header = wire('06 83 a4"Join" c3 a5"Nodes" 02 ac"UserStateLen" cd 0258');
    assert.deepEqual(plain.subarray(0, header.length), header);
  });

  it('writes Vsn as raw bytes a6 01 05 02 02 05 05 and reads it back', () => {
    const bytes = encodeMessage(MESSAGES[8] as GossipMessage);
    const at = Buffer.from(bytes).indexOf(Buffer.from('Vsn'));
    assert.deepEqual(bytes.subarray(at + 3, at + 10), wire('a6 010502020505'));
    assert.deepEqual(encodeVsn({ pMin: 1, pMax: 5, pCur: 2, dMin: 2, dMax: 5, dCur: 4 }), Uint8Array.of(1, 5, 2, 2, 5, 4));
    assert.deepEqual(decodeVsn(SERF_VSN), { pMin: 1, pMax: 5, pCur: 2, dMin: 2, dMax: 5, dCur: 5 });
    assert.equal(decodeVsn(Uint8Array.of(1, 5, 2, 2, 5)), null);
  });

  it('computes CRC-32/IEEE as Go hash/crc32 does', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
    assert.equal(crc32(empty), 0);
    assert.deepEqual(addCrc(Buffer.from('123456789')).subarray(0, 5), wire('0c cbf43926'));
  });
});

describe('gossipwire: messages', () => {
  it('round-trips every message kind', () => {
    for (const message of MESSAGES) assert.deepEqual(decodeMessage(encodeMessage(message)), message);
  });

  it('decodes what Go also accepts: any key order, unknown keys, bin for bytes, Vsn as an array, structs as arrays, trailing bytes', () => {
    const reordered = wire('04 87 a4"Port" cd 1f0a a3"Vsn" 96 01 05 02 02 05 05 a4"Node" c4 02 "n1" a4"Addr" c4 04 7f000001 a5"Extra" 93 01 02 03 ab"Incarnation" ce 00000005 a4"Meta" c0 ff ff');
    assert.deepEqual(decodeMessage(reordered), { kind: 'alive', incarnation: 5, node: 'n1', addr: Uint8Array.of(127, 0, 0, 1), port: 7946, meta: empty, vsn: SERF_VSN });
    // suspect as an array in declaration order: Incarnation, Node, From.
    assert.deepEqual(decodeMessage(wire('03 93 07 a1"x" a1"y"')), { kind: 'suspect', incarnation: 7, node: 'x', from: 'y' });
    // nil body: every field at its zero value.
    assert.deepEqual(decodeMessage(wire('0b c0')), { kind: 'nackResp', seqNo: 0 });
  });

  it('rejects values out of range for their Go type, wrong types and framing types', () => {
    assert.throws(() => decodeMessage(wire('0b 81 a5"SeqNo" cf 0000000100000000')), isWireError('ERR_GOSSIP_MALFORMED'));
    assert.throws(() => decodeMessage(wire('0b 81 a5"SeqNo" ff')), isWireError('ERR_GOSSIP_MALFORMED'));
    assert.throws(() => decodeMessage(wire('04 81 a4"Port" ce 00010000')), isWireError('ERR_GOSSIP_MALFORMED'));
    assert.throws(() => decodeMessage(wire('04 81 a4"Node" 05')), isWireError('ERR_GOSSIP_MALFORMED'));
    assert.throws(() => decodeMessage(wire('00 05')), isWireError('ERR_GOSSIP_MALFORMED'));
    assert.throws(() => decodeMessage(wire('00 85 a4"Node"')), isWireError('ERR_GOSSIP_TRUNCATED'));
    assert.throws(() => decodeMessage(empty), isWireError('ERR_GOSSIP_EMPTY'));
    for (const type of [6, 7, 9, 10, 12, 14, 244]) assert.throws(() => decodeMessage(Uint8Array.of(type, 0x80)), isWireError('ERR_GOSSIP_TYPE_UNSUPPORTED'));
  });

  it('refuses to encode what a Go peer would reject: overflowing integers, oversized meta', () => {
    assert.throws(() => encodeMessage({ kind: 'nackResp', seqNo: 2 ** 32 }), isWireError('ERR_GOSSIP_UNENCODABLE'));
    assert.throws(() => encodeMessage({ kind: 'nackResp', seqNo: -1 }), isWireError('ERR_GOSSIP_UNENCODABLE'));
    assert.throws(() => encodeMessage({ ...(MESSAGES[8] as GossipMessage & { kind: 'alive' }), port: 70000 }), isWireError('ERR_GOSSIP_UNENCODABLE'));
    assert.throws(() => encodeMessage({ ...(MESSAGES[8] as GossipMessage & { kind: 'alive' }), meta: new Uint8Array(513) }), isWireError('ERR_GOSSIP_UNENCODABLE'));
    assert.throws(() => encodeVsn({ pMin: 1, pMax: 256, pCur: 2, dMin: 2, dMax: 5, dCur: 4 }), isWireError('ERR_GOSSIP_UNENCODABLE'));
  });
});

describe('gossipwire: packets (wire.md §2.4)', () => {
  it('splits compounds and drops parts that run past the buffer', () => {
    const parts = [encodeMessage(MESSAGES[6] as GossipMessage), encodeMessage(MESSAGES[7] as GossipMessage), Uint8Array.of(8, 1, 2, 3)];
    const compound = encodeCompound(parts);
    assert.deepEqual(compound.subarray(0, 8), Uint8Array.of(7, 3, 0, parts[0]?.length ?? 0, 0, parts[1]?.length ?? 0, 0, 4));
    assert.deepEqual(decodeCompound(compound.subarray(1)), { parts, truncatedParts: 0 });
    const cut = decodeCompound(compound.subarray(1, compound.length - 1));
    assert.equal(cut.parts.length, 2);
    assert.equal(cut.truncatedParts, 1);
    const decoded = decodePacket(compound.subarray(0, compound.length - 1));
    assert.equal(decoded.messages.length, 2);
    assert.equal(decoded.truncatedParts, 1);
    assert.throws(() => decodeCompound(Uint8Array.of(3, 0, 1)), isWireError('ERR_GOSSIP_TRUNCATED'));
    assert.throws(() => decodeCompound(empty), isWireError('ERR_GOSSIP_TRUNCATED'));
  });

  it('matches memberlist TestDecodeCompoundMessage_Trunc: 3 pings of 15 bytes cut at 38 give 2 parts and 1 truncated', () => {
    const ping = encodeMessage({ kind: 'ping', seqNo: 100, node: '', sourceAddr: empty, sourcePort: 0, sourceNode: '' });
    assert.equal(ping.length, 15);
    const compound = encodeCompound([ping, ping, ping]);
    const { parts, truncatedParts } = decodeCompound(compound.subarray(1, 38));
    assert.equal(truncatedParts, 1);
    assert.deepEqual(parts, [ping, ping]);
  });

  it('splits sends at 127 parts for memberlist 0.2.2 and decodes up to 255', () => {
    const parts = Array.from({ length: 300 }, (_, i) => encodeMessage({ kind: 'nackResp', seqNo: i }));
    const compounds = encodeCompounds(parts);
    assert.deepEqual(compounds.map((c) => c[1]), [127, 127, 46]);
    assert.ok(compounds.every((c) => (c[1] ?? 0) <= COMPOUND_PARTS_MAX_V022));
    const big = encodeCompound(parts.slice(0, 255));
    const decoded = decodePacket(big, { decompressedBytesMax: 0 });
    assert.equal(decoded.messages.length, 255);
    assert.deepEqual(decoded.messages[200], { kind: 'nackResp', seqNo: 200 });
    assert.throws(() => encodeCompound(parts), isWireError('ERR_GOSSIP_UNENCODABLE'));
  });

  it('keeps good parts when one part is bad, and reports the bad one', () => {
    const packet = encodeCompound([encodeMessage(MESSAGES[6] as GossipMessage), Uint8Array.of(6, 0x80), empty, Uint8Array.of(12, 0, 0, 0, 0, 0), encodeMessage(MESSAGES[3] as GossipMessage)]);
    const decoded = decodePacket(packet);
    assert.deepEqual(decoded.messages.map((m) => m.kind), ['suspect', 'ackResp']);
    assert.deepEqual(decoded.errors.map((e) => e.code), ['ERR_GOSSIP_TYPE_UNSUPPORTED', 'ERR_GOSSIP_EMPTY', 'ERR_GOSSIP_TYPE_UNSUPPORTED']);
  });

  it('reproduces the observed gossip packet shape: 0c crc 09 {Algo, Buf} around a compound of alive, alive, serf join', () => {
    const fake = encodeMessage({ kind: 'alive', incarnation: 1, node: 'fake1', addr: Uint8Array.of(127, 0, 0, 1), port: 7947, meta: wire('ff 81 a4"role" ab"fake-member"'), vsn: SERF_VSN });
    const real = encodeMessage({ kind: 'alive', incarnation: 1, node: 'real1', addr: Uint8Array.of(127, 0, 0, 1), port: 7946, meta: wire('ff 81 a4"role" a3"web"'), vsn: SERF_VSN });
    const join = encodeMessage({ kind: 'user', payload: wire('01 82 a5"LTime" 02 a4"Node" a5"real1"') });
    assert.deepEqual([fake.length, real.length, join.length], [0x50, 0x48, 0x15]);
    const compound = encodeCompound([fake, real, join]);
    assert.deepEqual(compound.subarray(0, 8), wire('07 03 0050 0048 0015'));
    const packet = encodePacket(compound, { peerProtocolMax: 5 });
    assert.equal(packet[0], 0x0c);
    assert.equal(new DataView(packet.buffer, packet.byteOffset).getUint32(1), crc32(packet.subarray(5)));
    assert.deepEqual(packet.subarray(5, 18), wire('09 82 a4"Algo" 00 a3"Buf" da'));
    assert.ok(packet.length < compound.length + 5);
    const decoded = decodePacket(packet);
    assert.deepEqual(decoded.errors, []);
    assert.ok(decoded.hadCrc);
    assert.deepEqual(decoded.messages.map((m) => m.kind), ['alive', 'alive', 'user']);
    assert.deepEqual(decoded.messages[2], { kind: 'user', payload: wire('01 82 a5"LTime" 02 a4"Node" a5"real1"') });
  });

  it('compresses only when smaller and adds a CRC only for PMax >= 5', () => {
    const ping = encodeMessage(MESSAGES[0] as GossipMessage);
    assert.deepEqual(encodePacket(ping, {}), ping, 'a ping does not shrink: it goes out plain, 00 85 ...');
    assert.deepEqual(encodePacket(ping, { peerProtocolMax: 4 }), ping);
    assert.deepEqual(encodePacket(ping, { peerProtocolMax: 5 }), addCrc(ping));
    const big = encodeMessage({ kind: 'user', payload: new Uint8Array(1000).fill(65) });
    assert.equal(encodePacket(big)[0], 9);
    assert.deepEqual(encodePacket(big, { isCompressionEnabled: false }), big);
  });

  it('drops packets with a bad CRC, and accepts both CRC and plain packets', () => {
    const ping = encodeMessage(MESSAGES[0] as GossipMessage);
    const withCrc = addCrc(ping);
    withCrc[3] = (withCrc[3] ?? 0) ^ 1;
    const decoded = decodePacket(withCrc);
    assert.deepEqual(decoded.messages, []);
    assert.equal(decoded.errors[0]?.code, 'ERR_GOSSIP_CRC');
    assert.equal(decodePacket(addCrc(ping)).messages.length, 1);
    assert.equal(decodePacket(ping).messages.length, 1);
    // A CRC header shorter than 5 bytes is an unsupported type 12, as in memberlist.
    assert.equal(decodePacket(Uint8Array.of(12, 0, 0)).errors[0]?.code, 'ERR_GOSSIP_TYPE_UNSUPPORTED');
  });

  it('encrypts packets without AAD or 0a byte, decrypts with any key, and honours verify-incoming', () => {
    const keyA = new Uint8Array(32).fill(1);
    const keyB = new Uint8Array(16).fill(2);
    const sender = new Keyring([], keyA);
    const receiver = new Keyring([keyA], keyB);
    const ping = encodeMessage(MESSAGES[0] as GossipMessage);
    const packet = encodePacket(ping, { keyring: sender, randomBytes: seededBytes(5) });
    assert.equal(packet[0], 1, 'version byte 1, no 0a prefix');
    assert.equal(packet.length, 1 + 12 + ping.length + 16);
    const decoded = decodePacket(packet, { keyring: receiver });
    assert.ok(decoded.wasEncrypted);
    assert.deepEqual(decoded.messages, [MESSAGES[0]]);
    assert.equal(decodePacket(packet, { keyring: new Keyring([], keyB) }).errors[0]?.code, 'ERR_GOSSIP_DECRYPT');
    assert.equal(decodePacket(ping, { keyring: receiver }).errors[0]?.code, 'ERR_GOSSIP_DECRYPT');
    assert.deepEqual(decodePacket(ping, { keyring: receiver, isVerifyIncoming: false }).messages, [MESSAGES[0]]);
    assert.deepEqual(encodePacket(ping, { keyring: sender, isVerifyOutgoing: false }), ping);
    const v0 = encodePacket(ping, { keyring: sender, randomBytes: seededBytes(6), encryptionVersion: 0 });
    assert.equal(v0[0], 0);
    assert.deepEqual(decodePacket(v0, { keyring: receiver }).messages, [MESSAGES[0]]);
  });

  it('labels (memberlist >=0.3.0): prefix f4 len label, used as AAD, mismatches dropped', () => {
    const ping = encodeMessage(MESSAGES[1] as GossipMessage);
    const labelled = encodePacket(ping, { label: 'dc1' });
    assert.deepEqual(labelled.subarray(0, 5), wire('f4 03 "dc1"'));
    assert.deepEqual(decodePacket(labelled, { label: 'dc1' }).messages, [MESSAGES[1]]);
    assert.equal(decodePacket(labelled).errors[0]?.code, 'ERR_GOSSIP_LABEL');
    assert.equal(decodePacket(ping, { label: 'dc1' }).errors[0]?.code, 'ERR_GOSSIP_LABEL');
    assert.equal(decodePacket(Uint8Array.of(0xf4, 0)).errors[0]?.code, 'ERR_GOSSIP_LABEL');
    assert.equal(decodePacket(Uint8Array.of(0xf4, 5, 1)).errors[0]?.code, 'ERR_GOSSIP_LABEL');
    const keyring = new Keyring([], new Uint8Array(16).fill(3));
    const sealed = encodePacket(ping, { label: 'dc1', keyring, randomBytes: seededBytes(7) });
    assert.deepEqual(decodePacket(sealed, { label: 'dc1', keyring }).messages, [MESSAGES[1]]);
    // Same blob under another label: the AAD differs, so no key opens it.
    const relabelled = Uint8Array.from([0xf4, 3, ...Buffer.from('dc2'), ...sealed.subarray(5)]);
    assert.equal(decodePacket(relabelled, { label: 'dc2', keyring }).errors[0]?.code, 'ERR_GOSSIP_DECRYPT');
  });

  it('bounds decompression and nesting', () => {
    const bomb = encodeCompress(encodeMessage({ kind: 'user', payload: new Uint8Array(2_000_000) }));
    assert.ok(bomb.length < 65536);
    assert.equal(decodePacket(bomb).errors[0]?.code, 'ERR_GOSSIP_TOO_LARGE');
    let nested = encodeMessage(MESSAGES[5] as GossipMessage);
    for (let i = 0; i < 12; i++) nested = encodeCompound([nested]);
    assert.equal(decodePacket(nested).errors[0]?.code, 'ERR_GOSSIP_DEPTH');
    assert.equal(decodePacket(new Uint8Array(65537)).errors[0]?.code, 'ERR_GOSSIP_TOO_LARGE');
    assert.throws(() => decodeMessage(wire('09 82 a4"Algo" 01 a3"Buf" a0')), isWireError());
    assert.equal(decodePacket(wire('09 82 a4"Algo" 01 a3"Buf" a0')).errors[0]?.code, 'ERR_GOSSIP_COMPRESS');
  });

  it('computes the piggy-back budget as memberlist does', () => {
    assert.equal(piggybackBytesAvailable(), 1398);
    assert.equal(piggybackBytesAvailable({ firstMessageBytes: 100 }), 1298);
    assert.equal(piggybackBytesAvailable({ firstMessageBytes: 100, encryptionVersion: 1 }), 1269);
    assert.equal(piggybackBytesAvailable({ encryptionVersion: 0 }), 1353);
    assert.equal(piggybackBytesAvailable({ label: 'dc1' }), 1393);
    assert.equal(compoundPartCostBytes(50), 52);
    assert.equal(compoundPartCostBytes(50, true), 53);
  });
});

describe('gossipwire: streams (wire.md §2.5)', () => {
  const nodes = [node('a'), node('b', 3), { ...node('c', 1), meta: empty, vsn: empty }];
  const userState = wire('02 80');

  it('round-trips a push/pull plain, compressed, and encrypted with the 0a header as AAD', () => {
    const plain = encodePushPull(false, nodes, userState);
    const keyring = new Keyring([], new Uint8Array(32).fill(9));
    const variants = [
      { bytes: encodeStream(plain, { isCompressionEnabled: false }), options: {} },
      { bytes: encodeStream(plain), options: {} },
      { bytes: encodeStream(plain, { keyring, randomBytes: seededBytes(8) }), options: { keyring } },
      { bytes: encodeStream(plain, { keyring, randomBytes: seededBytes(9), label: 'x' }), options: { keyring, label: 'x' } },
    ];
    assert.equal(variants[1]?.bytes[0], 9, 'streams are always compressed when compression is on');
    assert.equal(variants[2]?.bytes[0], 10);
    for (const { bytes, options } of variants) {
      const frame = decodeStream(bytes, options);
      assert.equal(frame.kind, 'message');
      if (frame.kind !== 'message') continue;
      assert.equal(frame.bytesConsumed, bytes.length);
      assert.deepEqual(frame.message, { kind: 'pushPull', join: false, nodes, userState });
    }
    const sealed = variants[2]?.bytes ?? empty;
    assert.equal(new DataView(sealed.buffer, sealed.byteOffset).getUint32(1), sealed.length - 5);
    // Flip the length's top byte: the declared length now exceeds 20 MiB.
    const tampered = sealed.slice();
    tampered[1] = 0x7f;
    assert.throws(() => decodeStream(tampered, { keyring }), isWireError('ERR_GOSSIP_TOO_LARGE'));
  });

  it('reports incomplete for every proper prefix, then the message', () => {
    const plain = encodePushPull(true, nodes, userState);
    for (const bytes of [plain, encodeStream(plain)]) {
      for (let cut = 0; cut < bytes.length; cut++) assert.deepEqual(decodeStream(bytes.subarray(0, cut)), { kind: 'incomplete' }, `cut ${cut}`);
      const frame = decodeStream(Uint8Array.from([...bytes, 0xaa]));
      assert.ok(frame.kind === 'message' && frame.bytesConsumed === bytes.length);
    }
  });

  it('enforces the encryption policy on streams', () => {
    const keyring = new Keyring([], new Uint8Array(16).fill(1));
    const plain = encodeStream(encodePushPull(false, [], null));
    assert.throws(() => decodeStream(plain, { keyring }), isWireError('ERR_GOSSIP_NOT_ENCRYPTED'));
    assert.equal(decodeStream(plain, { keyring, isVerifyIncoming: false }).kind, 'message');
    const sealed = encodeStream(encodePushPull(false, [], null), { keyring, randomBytes: seededBytes(1) });
    assert.throws(() => decodeStream(sealed), isWireError('ERR_GOSSIP_DECRYPT'));
    assert.throws(() => decodeStream(sealed, { keyring: new Keyring([], new Uint8Array(16).fill(2)) }), isWireError('ERR_GOSSIP_DECRYPT'));
  });

  it('carries user messages, TCP pings, acks and errResp', () => {
    const user = encodeUserMsgStream(Uint8Array.of(1, 2, 3));
    assert.deepEqual(user, wire('08 81 aa"UserMsgLen" 03 010203'));
    const cases: [Uint8Array, unknown][] = [
      [user, { kind: 'user', payload: Uint8Array.of(1, 2, 3) }],
      [encodeMessage(MESSAGES[0] as GossipMessage), MESSAGES[0]],
      [encodeMessage(MESSAGES[3] as GossipMessage), MESSAGES[3]],
      [encodeMessage(MESSAGES[10] as GossipMessage), MESSAGES[10]],
    ];
    for (const [bytes, expected] of cases) {
      const frame = decodeStream(encodeStream(bytes));
      assert.ok(frame.kind === 'message');
      assert.deepEqual(frame.message, expected);
    }
    assert.throws(() => decodeStream(encodeStream(encodeMessage(MESSAGES[6] as GossipMessage))), isWireError('ERR_GOSSIP_TYPE_UNSUPPORTED'));
    assert.throws(() => decodeStream(wire('08 81 aa"UserMsgLen" ce 7fffffff')), isWireError('ERR_GOSSIP_TOO_LARGE'));
  });

  it('refuses absurd push/pull headers before reading nodes', () => {
    assert.throws(() => decodePushPullBody(wire('83 a4"Join" c2 a5"Nodes" ce 7fffffff ac"UserStateLen" 00')), isWireError('ERR_GOSSIP_TOO_LARGE'));
    assert.throws(() => decodePushPullBody(wire('83 a4"Join" c2 a5"Nodes" ff ac"UserStateLen" 00')), isWireError('ERR_GOSSIP_TOO_LARGE'));
    assert.equal(decodePushPullBody(wire('83 a4"Join" c2 a5"Nodes" 05 ac"UserStateLen" 00')), null);
    const decoded = decodePushPullBody(wire('83 a4"Join" c3 a5"Nodes" 00 ac"UserStateLen" 02 0280'));
    assert.deepEqual(decoded, { join: true, nodes: [], userState: wire('02 80'), bytesConsumed: 30 });
  });
});

describe('gossipwire: fuzz', () => {
  function mutate(rng: () => number, base: Uint8Array): Uint8Array {
    const bytes = base.slice(0, rng() < 0.3 ? Math.floor(rng() * (base.length + 1)) : base.length);
    const flips = Math.floor(rng() * 4);
    for (let f = 0; f < flips && bytes.length > 0; f++) bytes[Math.floor(rng() * bytes.length)] = Math.floor(rng() * 256);
    return bytes;
  }

  it('decodeMessage, decodePacket, decodeStream and decodePushPullBody only ever fail with GossipWireError', () => {
    const rng = seededRng(4242);
    const keyring = new Keyring([], new Uint8Array(16).fill(5));
    const packetSeeds = [
      ...MESSAGES.map(encodeMessage),
      encodeCompound(MESSAGES.map(encodeMessage)),
      encodePacket(encodeCompound(MESSAGES.map(encodeMessage)), { peerProtocolMax: 5 }),
      encodeCompress(encodeCompound(MESSAGES.slice(0, 4).map(encodeMessage))),
    ];
    const streamSeeds = [encodePushPull(true, nodes3(), wire('02 80')), encodeStream(encodePushPull(false, nodes3(), null)), encodeStream(encodeUserMsgStream(Uint8Array.of(1)), { keyring, randomBytes: seededBytes(2) })];
    for (let i = 0; i < 4000; i++) {
      const packet = mutate(rng, packetSeeds[i % packetSeeds.length] ?? empty);
      try {
        decodeMessage(packet);
      } catch (error) {
        assert.ok(error instanceof GossipWireError, `SEED=4242 iteration ${i} decodeMessage: ${String(error)}`);
      }
      const decoded = decodePacket(packet, { keyring: i % 7 === 0 ? keyring : null, isVerifyIncoming: false });
      assert.ok(decoded.errors.every((error) => error instanceof GossipWireError));
      const stream = mutate(rng, streamSeeds[i % streamSeeds.length] ?? empty);
      for (const fn of [() => decodeStream(stream, { keyring: i % 3 === 2 ? keyring : null }), () => decodePushPullBody(stream.subarray(1))]) {
        try {
          fn();
        } catch (error) {
          assert.ok(error instanceof GossipWireError, `SEED=4242 iteration ${i} stream: ${String(error)}`);
        }
      }
    }
  });

  function nodes3(): PushNodeState[] {
    return [node('a'), node('b', 2), node('c', 3)];
  }
});
