// serf 0.9.4 payloads: golden bytes from shared/spec/wire.md §3 (observed from a serf agent),
// round trips of every message, the 512-slot push/pull ring, tags in Meta, query filters,
// relays, and a fuzz of the decoders (GossipWireError only).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GossipWireError } from '../lib/gossipwire.js';
import { seededRng } from '../lib/rng.js';
import {
  decodeFilter,
  decodeSerfMessage,
  decodeTags,
  encodeFilter,
  encodeRelay,
  encodeSerfMessage,
  encodeTags,
  eventRing,
  QueryFlag,
  type SerfMessage,
} from '../lib/serfwire.js';

function wire(spec: string): Uint8Array {
  const out: number[] = [];
  for (const token of spec.match(/"[^"]*"|[0-9a-f]+/g) ?? []) {
    if (token.startsWith('"')) out.push(...Buffer.from(token.slice(1, -1)));
    else out.push(...Buffer.from(token, 'hex'));
  }
  return Uint8Array.from(out);
}

const empty = new Uint8Array(0);

function text(value: string): Uint8Array {
  return new Uint8Array(Buffer.from(value));
}

const MESSAGES: SerfMessage[] = [
  { kind: 'leave', lTime: 12n, node: 'web-1', prune: true },
  { kind: 'join', lTime: 2n, node: 'real1' },
  { kind: 'userEvent', lTime: 1n, name: 'deploy', payload: text('v1'), cc: true },
  { kind: 'userEvent', lTime: 0xffffffffffffffffn, name: 'x', payload: empty, cc: false },
  {
    kind: 'query',
    lTime: 5n,
    id: 0xdeadbeef,
    addr: Uint8Array.of(127, 0, 0, 1),
    port: 7946,
    sourceNode: 'n1',
    filters: [encodeFilter({ kind: 'node', nodes: ['a', 'b'] }), encodeFilter({ kind: 'tag', tag: 'role', expr: '^web$' })],
    flags: QueryFlag.ack,
    relayFactor: 2,
    timeoutNs: 3_200_000_000,
    name: '_serf_ping',
    payload: empty,
  },
  { kind: 'query', lTime: 6n, id: 1, addr: empty, port: 0, sourceNode: '', filters: [], flags: 0, relayFactor: 0, timeoutNs: 0, name: 'q', payload: Uint8Array.of(7) },
  { kind: 'queryResponse', lTime: 5n, id: 0xdeadbeef, from: 'n2', flags: QueryFlag.ack, payload: empty },
  {
    kind: 'pushPull',
    lTime: 3n,
    statusLTimes: new Map([
      ['serf1', 1n],
      ['real1', 2n],
    ]),
    leftMembers: ['gone'],
    eventLTime: 4n,
    events: eventRing([{ lTime: 3n, events: [{ name: 'deploy', payload: text('v1') }] }]),
    queryLTime: 2n,
  },
  {
    kind: 'conflictResponse',
    member: {
      name: 'dup',
      addr: Uint8Array.of(10, 0, 0, 2),
      port: 8301,
      tags: new Map([['role', 'node']]),
      status: 1,
      protocolMin: 1,
      protocolMax: 5,
      protocolCur: 2,
      delegateMin: 2,
      delegateMax: 5,
      delegateCur: 4,
    },
  },
  { kind: 'conflictResponse', member: null },
  { kind: 'keyRequest', key: new Uint8Array(32).fill(4) },
  { kind: 'keyResponse', result: true, message: '', keys: ['a2V5MQ==', 'a2V5Mg=='], primaryKey: 'a2V5MQ==' },
  { kind: 'keyResponse', result: false, message: 'no', keys: [], primaryKey: '' },
  { kind: 'relay', header: { destAddr: { ip: Uint8Array.of(10, 0, 0, 3), port: 8301, zone: '' }, destName: 'n3' }, inner: wire('05 80') },
];

function isWireError(code?: string): (error: unknown) => boolean {
  return (error) => error instanceof GossipWireError && (code === undefined || error.code === code);
}

describe('serfwire: golden bytes (wire.md §3)', () => {
  it('encodes the observed user event 03 84 CC LTime Name Payload', () => {
    assert.deepEqual(encodeSerfMessage(MESSAGES[2] as SerfMessage), wire('03 84 a2"CC" c3 a5"LTime" 01 a4"Name" a6"deploy" a7"Payload" a2"v1"'));
  });

  it('encodes join as 01 {LTime, Node}, the 21-byte user part of the observed gossip packet', () => {
    assert.deepEqual(encodeSerfMessage(MESSAGES[1] as SerfMessage), wire('01 82 a5"LTime" 02 a4"Node" a5"real1"'));
  });

  it('encodes tags as ff + msgpack map, and the legacy role string below protocol 3', () => {
    assert.deepEqual(encodeTags({ role: 'web' }), wire('ff 81 a4"role" a3"web"'));
    assert.deepEqual(encodeTags(new Map([['role', 'web'], ['dc', 'dc1']]), 2), text('web'));
    assert.deepEqual(decodeTags(wire('ff 81 a4"role" a3"web"')), new Map([['role', 'web']]));
    assert.deepEqual(decodeTags(text('lb')), new Map([['role', 'lb']]));
    assert.deepEqual(decodeTags(empty), new Map([['role', '']]));
    // Arbitrary string tags, including a __proto__ key, survive.
    const tags = new Map([['__proto__', 'x'], ['id', '8a1f'], ['vsn', '2'], ['port', '8300']]);
    assert.deepEqual(decodeTags(encodeTags(tags)), tags);
    assert.throws(() => encodeTags({ big: 'x'.repeat(600) }), isWireError('ERR_GOSSIP_TOO_LARGE'));
    assert.throws(() => decodeTags(wire('ff 81 a4"role" 05')), isWireError('ERR_GOSSIP_MALFORMED'));
    assert.throws(() => decodeTags(wire('ff 82 a4"role"')), isWireError());
  });

  it('sends the push/pull ring as 512 slots, mostly c0, as the observed 589-byte tail', () => {
    const tail = encodeSerfMessage({ kind: 'pushPull', lTime: 2n, statusLTimes: new Map([['serf1', 1n]]), leftMembers: [], eventLTime: 1n, events: eventRing([]), queryLTime: 1n });
    const at = Buffer.from(tail).indexOf(Buffer.from('Events'));
    assert.deepEqual(tail.subarray(at + 6, at + 11), wire('dc 0200 c0 c0'));
    assert.equal(tail.length, 589, 'one 5-letter member and small clocks give the observed tail length');
    assert.deepEqual(tail.subarray(0, 2), wire('02 86'));
  });

  it('accepts a ring with fewer entries and a nil ring', () => {
    const decoded = decodeSerfMessage(wire('02 82 a6"Events" 92 c0 82 a6"Events" 91 82 a4"Name" a1"e" a7"Payload" c0 a5"LTime" 09 a5"LTime" 03'));
    assert.ok(decoded.kind === 'pushPull');
    assert.deepEqual(decoded.events, [null, { lTime: 9n, events: [{ name: 'e', payload: empty }] }]);
    assert.equal(decoded.lTime, 3n);
    const none = decodeSerfMessage(wire('02 81 a6"Events" c0'));
    assert.ok(none.kind === 'pushPull' && none.events.length === 0 && none.statusLTimes.size === 0);
  });

  it('encodes filters as 00 + []string and 01 + {Expr, Tag}', () => {
    assert.deepEqual(encodeFilter({ kind: 'node', nodes: ['a', 'b'] }), wire('00 92 a1"a" a1"b"'));
    assert.deepEqual(encodeFilter({ kind: 'tag', tag: 'role', expr: 'web' }), wire('01 82 a4"Expr" a3"web" a3"Tag" a4"role"'));
    assert.deepEqual(decodeFilter(wire('00 92 a1"a" a1"b"')), { kind: 'node', nodes: ['a', 'b'] });
    assert.deepEqual(decodeFilter(wire('01 82 a3"Tag" a4"role" a4"Expr" a3"web"')), { kind: 'tag', tag: 'role', expr: 'web' });
    assert.throws(() => decodeFilter(Uint8Array.of(2, 0x90)), isWireError('ERR_GOSSIP_TYPE_UNSUPPORTED'));
    assert.throws(() => decodeFilter(Uint8Array.of(0, 0x81)), isWireError());
  });

  it('encodes a query with c0 Filters when there are none, and the Timeout in nanoseconds', () => {
    const bytes = encodeSerfMessage(MESSAGES[5] as SerfMessage);
    const at = Buffer.from(bytes).indexOf(Buffer.from('Filters'));
    assert.equal(bytes[at + 7], 0xc0);
    const timed = encodeSerfMessage({ ...(MESSAGES[5] as SerfMessage & { kind: 'query' }), timeoutNs: 5_000_000_000 });
    const t = Buffer.from(timed).indexOf(Buffer.from('Timeout'));
    assert.deepEqual(timed.subarray(t + 7, t + 16), wire('cf 000000012a05f200'));
  });

  it('frames a relay as 09 header + the inner message, kept verbatim for forwarding', () => {
    const inner = encodeSerfMessage(MESSAGES[6] as SerfMessage);
    const relay = encodeRelay({ destAddr: { ip: Uint8Array.of(127, 0, 0, 1), port: 7946, zone: '' }, destName: 'n1' }, inner);
    assert.deepEqual(relay.subarray(0, 2), wire('09 82'));
    const decoded = decodeSerfMessage(relay);
    assert.ok(decoded.kind === 'relay');
    assert.deepEqual(decoded.inner, inner);
    assert.deepEqual(decodeSerfMessage(decoded.inner), MESSAGES[6]);
  });
});

describe('serfwire: messages', () => {
  it('round-trips every message kind', () => {
    for (const message of MESSAGES) assert.deepEqual(decodeSerfMessage(encodeSerfMessage(message)), message, message.kind);
  });

  it('rejects unknown types, empty input and out-of-range fields', () => {
    assert.throws(() => decodeSerfMessage(empty), isWireError('ERR_GOSSIP_EMPTY'));
    assert.throws(() => decodeSerfMessage(Uint8Array.of(10, 0x80)), isWireError('ERR_GOSSIP_TYPE_UNSUPPORTED'));
    assert.throws(() => decodeSerfMessage(wire('01 81 a5"LTime" ff')), isWireError('ERR_GOSSIP_MALFORMED'));
    assert.throws(() => decodeSerfMessage(wire('04 81 a2"ID" cf 0000000100000000')), isWireError('ERR_GOSSIP_MALFORMED'));
    assert.throws(() => decodeSerfMessage(wire('09 82 a8"DestAddr" 81 a4"Port" ce 00010000 a8"DestName" a1"x"')), isWireError('ERR_GOSSIP_MALFORMED'));
    assert.equal((decodeSerfMessage(wire('01 81 a5"LTime" cf ffffffffffffffff')) as { lTime: bigint }).lTime, 0xffffffffffffffffn);
  });

  it('fuzz: decodeSerfMessage, decodeTags and decodeFilter only ever fail with GossipWireError', () => {
    const rng = seededRng(777);
    const seeds = [...MESSAGES.map(encodeSerfMessage), encodeTags({ role: 'web', dc: 'dc1' })];
    for (let i = 0; i < 4000; i++) {
      const base = seeds[i % seeds.length] ?? empty;
      const bytes = base.slice(0, rng() < 0.3 ? Math.floor(rng() * (base.length + 1)) : base.length);
      const flips = Math.floor(rng() * 4);
      for (let f = 0; f < flips && bytes.length > 0; f++) bytes[Math.floor(rng() * bytes.length)] = Math.floor(rng() * 256);
      for (const fn of [() => decodeSerfMessage(bytes), () => decodeTags(bytes), () => decodeFilter(bytes)]) {
        try {
          fn();
        } catch (error) {
          assert.ok(error instanceof GossipWireError, `SEED=777 iteration ${i}: ${String(error)}`);
        }
      }
    }
  });
});
