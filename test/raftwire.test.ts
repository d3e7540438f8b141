// hashicorp/raft NetworkTransport codec: golden bytes from shared/spec/wire.md §5 (verified
// against raft 1.1.2), round trips for every message, newer-peer keys, limits, the stream
// scanner, and R7 fuzzing of every decoder.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode, MsgpackError, decode } from '../lib/msgpack.js';
import {
  decodeConfiguration,
  decodeErrorString,
  decodeRequest,
  decodeRequestUnchecked,
  decodeResponse,
  encodeConfiguration,
  encodeRequest,
  encodeRequestFrame,
  encodeResponse,
  encodeResponseFrame,
  isHeartbeat,
  MsgpackScanner,
  RAFT_APPEND_ENTRIES_MAX,
  RAFT_CONFIGURATION_SERVERS_MAX,
  RaftWireError,
  rpcKindOf,
  RPC_TYPE,
  UNSUPPORTED_PROTOCOL_MESSAGE,
  type AppendEntriesRequest,
  type RaftRequest,
  type RaftResponse,
  type RpcKind,
} from '../lib/raftwire.js';
import { mulberry32 } from './support.js';

/** Bytes from wire.md's notation: hex bytes and `"ASCII"` runs, e.g. `a4"boom" c0`. */
function wire(notation: string): Uint8Array {
  const out: number[] = [];
  for (const token of notation.match(/"[^"]*"|[0-9a-f]+/g) ?? []) {
    if (token.startsWith('"')) for (const char of token.slice(1, -1)) out.push(char.charCodeAt(0));
    else {
      assert.equal(token.length % 2, 0, `odd hex token ${token}`);
      for (let i = 0; i < token.length; i += 2) out.push(parseInt(token.slice(i, i + 2), 16));
    }
  }
  return new Uint8Array(out);
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

const GOLDEN_APPEND_ENTRIES =
  '87 a7"Entries" 91 85 a4"Data" a2 0102 aa"Extensions" c0 a5"Index" 06 a4"Term" 02 a4"Type" 00 a6"Leader" ae"127.0.0.1:8300" b1"LeaderCommitIndex" 05 ac"PrevLogEntry" 05 ab"PrevLogTerm" 01 af"ProtocolVersion" 03 a4"Term" 02';

const GOLDEN_APPEND_REQUEST: AppendEntriesRequest = {
  protocolVersion: 3,
  term: 2,
  leader: '127.0.0.1:8300',
  prevLogEntry: 5,
  prevLogTerm: 1,
  entries: [{ index: 6, term: 2, type: 0, data: new Uint8Array([1, 2]), extensions: null }],
  leaderCommitIndex: 5,
};

const SERVERS = [
  { suffrage: 0, id: '5e2f7c1a-0000-4000-8000-000000000001', address: '10.0.0.1:8300' },
  { suffrage: 1, id: 'b', address: '10.0.0.2:8300' },
  { suffrage: 2, id: 'c', address: '[::1]:8300' },
] as const;

/** Valid examples of every message, the seeds for round trips and fuzzing. */
const REQUESTS: { readonly [K in RpcKind]: readonly RaftRequest<K>[] } = {
  appendEntries: [
    GOLDEN_APPEND_REQUEST,
    { protocolVersion: 3, term: 9, leader: '10.0.0.1:8300', prevLogEntry: 0, prevLogTerm: 0, entries: [], leaderCommitIndex: 0 },
    {
      protocolVersion: 3, id: 'node-1', addr: '10.0.0.1:8300', term: 2 ** 40, leader: '10.0.0.1:8300', prevLogEntry: 1000, prevLogTerm: 7, leaderCommitIndex: 990,
      entries: [
        { index: 1001, term: 7, type: 1, data: new Uint8Array(0), extensions: null },
        { index: 1002, term: 7, type: 5, data: encodeConfiguration(SERVERS), extensions: null },
        { index: 1003, term: 7, type: 0, data: new Uint8Array(300).fill(7), extensions: new Uint8Array([9, 9]) },
      ],
    },
  ],
  requestVote: [
    { protocolVersion: 3, term: 3, candidate: '127.0.0.1:8300', lastLogIndex: 12, lastLogTerm: 2, leadershipTransfer: false },
    { protocolVersion: 2, id: 'n2', term: 4, candidate: '127.0.0.1:8301', lastLogIndex: 70000, lastLogTerm: 4, leadershipTransfer: true },
  ],
  installSnapshot: [
    { protocolVersion: 3, snapshotVersion: 1, term: 5, leader: '127.0.0.1:8300', lastLogIndex: 100, lastLogTerm: 4, peers: null, configuration: SERVERS, configurationIndex: 90, size: 4096 },
    { protocolVersion: 3, snapshotVersion: 1, term: 5, leader: 'x', lastLogIndex: 1, lastLogTerm: 1, peers: new Uint8Array([0x91, 0xa1, 0x78]), configuration: [], configurationIndex: 0, size: 0 },
  ],
  timeoutNow: [{ protocolVersion: 3 }, { protocolVersion: 3, id: 'n1', addr: '127.0.0.1:1' }],
  requestPreVote: [{ protocolVersion: 3, id: 'n1', addr: '127.0.0.1:8300', term: 6, lastLogIndex: 44, lastLogTerm: 5 }],
};

const RESPONSES: { readonly [K in RpcKind]: readonly RaftResponse<K>[] } = {
  appendEntries: [
    { protocolVersion: 3, term: 2, lastLog: 6, success: true, noRetryBackoff: false },
    { protocolVersion: 3, term: 3, lastLog: 0, success: false, noRetryBackoff: true },
  ],
  requestVote: [
    { protocolVersion: 3, term: 7, peers: null, granted: true },
    { protocolVersion: 1, term: 8, peers: new Uint8Array([1, 2, 3]), granted: false },
  ],
  installSnapshot: [{ protocolVersion: 3, term: 5, success: true }],
  timeoutNow: [{ protocolVersion: 3 }],
  requestPreVote: [{ protocolVersion: 3, id: 'n2', addr: '127.0.0.1:8301', term: 6, granted: true }],
};

const KINDS = Object.keys(RPC_TYPE) as RpcKind[];

function expectWireError(run: () => unknown, code: RaftWireError['code'], message?: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof RaftWireError, `expected RaftWireError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (message !== undefined) assert.equal(error.message, message);
    return true;
  });
}

describe('raftwire golden bytes (wire.md §5, verified against raft 1.1.2)', () => {
  it('encodes AppendEntries with one entry byte for byte', () => {
    assert.equal(hex(encodeRequest('appendEntries', GOLDEN_APPEND_REQUEST)), hex(wire(GOLDEN_APPEND_ENTRIES)));
  });

  it('frames a request as [type][msgpack]', () => {
    assert.equal(hex(encodeRequestFrame('appendEntries', GOLDEN_APPEND_REQUEST)), '00' + hex(wire(GOLDEN_APPEND_ENTRIES)));
    assert.equal(encodeRequestFrame('requestPreVote', REQUESTS.requestPreVote[0]!)[0], 4);
  });

  it('decodes the verified AppendEntries bytes back to the message', () => {
    assert.deepEqual(decodeRequest('appendEntries', wire(GOLDEN_APPEND_ENTRIES)), GOLDEN_APPEND_REQUEST);
  });

  it('encodes the verified RequestVoteResponse success reply', () => {
    const frame = encodeResponseFrame('', encodeResponse('requestVote', { protocolVersion: 3, term: 7, peers: null, granted: true }));
    assert.equal(hex(frame), hex(wire('a0 84 a7"Granted" c3 a5"Peers" c0 af"ProtocolVersion" 03 a4"Term" 07')));
  });

  it('encodes the verified error reply with a nil body', () => {
    assert.equal(hex(encodeResponseFrame('boom', null)), hex(wire('a4"boom" c0')));
    assert.equal(decodeErrorString(wire('a4"boom"')), 'boom');
    assert.equal(decodeErrorString(wire('a0')), '');
    assert.equal(decodeErrorString(wire('c0')), '');
  });

  it('writes a Configuration as msgpack {Servers: [{Address, ID, Suffrage}]} inside a []byte', () => {
    const inner = encodeConfiguration([{ suffrage: 0, id: 'a', address: '1.2.3.4:8300' }]);
    assert.equal(hex(inner), hex(wire('81 a7"Servers" 91 83 a7"Address" ac"1.2.3.4:8300" a2"ID" a1"a" a8"Suffrage" 00')));
    const request = REQUESTS.installSnapshot[0]!;
    const outer = decode(encodeRequest('installSnapshot', request), { rawStrings: true }) as Record<string, unknown>;
    assert.deepEqual(Object.keys(outer), ['Configuration', 'ConfigurationIndex', 'LastLogIndex', 'LastLogTerm', 'Leader', 'Peers', 'ProtocolVersion', 'Size', 'SnapshotVersion', 'Term']);
    assert.equal(hex(outer['Configuration'] as Uint8Array), hex(encodeConfiguration(SERVERS)));
  });

  it('sends a heartbeat with nil Entries, as raft heartbeat() does, and detects it', () => {
    const heartbeat = REQUESTS.appendEntries[1]!;
    assert.ok(isHeartbeat(heartbeat));
    const fields = decode(encodeRequest('appendEntries', heartbeat)) as Record<string, unknown>;
    assert.equal(fields['Entries'], null);
    assert.ok(!isHeartbeat(GOLDEN_APPEND_REQUEST));
    assert.ok(!isHeartbeat({ ...heartbeat, leaderCommitIndex: 1 }));
  });

  it('keeps the wire numbers of every RPC type', () => {
    assert.deepEqual(KINDS.map((kind) => [kind, RPC_TYPE[kind]]), [['appendEntries', 0], ['requestVote', 1], ['installSnapshot', 2], ['timeoutNow', 3], ['requestPreVote', 4]]);
    assert.equal(rpcKindOf(2), 'installSnapshot');
    assert.equal(rpcKindOf(5), undefined);
  });
});

describe('raftwire round trips', () => {
  for (const kind of KINDS) {
    it(`${kind} request and response survive encode then decode`, () => {
      for (const request of REQUESTS[kind]) assert.deepEqual(decodeRequest(kind, encodeRequest(kind, request as never)), normalized(request));
      for (const response of RESPONSES[kind]) assert.deepEqual(decodeResponse(kind, encodeResponse(kind, response as never)), response);
    });
  }

  it('writes the RPCHeader ID and Addr keys only when set (1.1.2 has neither)', () => {
    const plain = decode(encodeRequest('timeoutNow', { protocolVersion: 3 })) as Record<string, unknown>;
    assert.deepEqual(Object.keys(plain), ['ProtocolVersion']);
    const newer = decode(encodeRequest('timeoutNow', { protocolVersion: 3, id: 'n1', addr: 'a:1' })) as Record<string, unknown>;
    assert.deepEqual(Object.keys(newer), ['Addr', 'ID', 'ProtocolVersion']);
  });
});

/** Decoded entries always carry `extensions`; absent and null mean the same on the wire. */
function normalized<T>(request: T): T {
  const r = request as unknown as { entries?: readonly Record<string, unknown>[] };
  if (r.entries === undefined) return request;
  return { ...request, entries: r.entries.map((entry) => ({ ...entry, extensions: entry['extensions'] ?? null })) } as T;
}

describe('raftwire accepts what newer peers send', () => {
  it('skips Log.AppendedAt (raft ≥1.3) and reads RPCHeader ID/Addr (raft ≥1.3.7)', () => {
    const appendedAt = wire('01 0000000e dd7b1d80 00000000 ffff');
    const bytes = encode({
      Addr: utf8('10.0.0.1:8300'), ID: utf8('node-1'), ProtocolVersion: 3, Term: 2, Leader: utf8('127.0.0.1:8300'), PrevLogEntry: 5, PrevLogTerm: 1, LeaderCommitIndex: 5,
      Entries: [{ AppendedAt: appendedAt, Data: new Uint8Array([1, 2]), Extensions: null, Index: 6, Term: 2, Type: 0 }],
    }, { goCompatible: true });
    assert.deepEqual(decodeRequest('appendEntries', bytes), { ...GOLDEN_APPEND_REQUEST, id: 'node-1', addr: '10.0.0.1:8300' });
  });

  it('accepts str8, bin, any integer width, keys in any order, unknown keys, and c0 for nil', () => {
    const bytes = wire('86 a4"Term" cf 0000000000000007 a7"Granted" 01 a9"Something" 92 01 c0 af"ProtocolVersion" d0 03 a5"Peers" c4 02 0102 a2"ID" d9 02"n2"');
    assert.deepEqual(decodeResponse('requestVote', bytes), { protocolVersion: 3, term: 7, peers: new Uint8Array([1, 2]), granted: true, id: 'n2' });
    assert.deepEqual(decodeResponse('appendEntries', wire('c0')), { protocolVersion: 0, term: 0, lastLog: 0, success: false, noRetryBackoff: false });
  });

  it('reads the PreVote messages of raft 1.7', () => {
    const bytes = wire('86 a4"Addr" a1"a" a2"ID" a1"i" ac"LastLogIndex" 05 ab"LastLogTerm" 02 af"ProtocolVersion" 03 a4"Term" 09');
    assert.deepEqual(decodeRequest('requestPreVote', bytes), { protocolVersion: 3, id: 'i', addr: 'a', term: 9, lastLogIndex: 5, lastLogTerm: 2 });
  });
});

describe('raftwire refuses what it must', () => {
  it('refuses ProtocolVersion above 3 with raft ErrUnsupportedProtocol text, yet can still read the request', () => {
    const bytes = encodeRequest('installSnapshot', { ...REQUESTS.installSnapshot[0]!, protocolVersion: 4 });
    expectWireError(() => decodeRequest('installSnapshot', bytes), 'ERR_RAFT_UNSUPPORTED_PROTOCOL', UNSUPPORTED_PROTOCOL_MESSAGE);
    assert.equal(decodeRequestUnchecked('installSnapshot', bytes).size, 4096);
    expectWireError(() => decodeResponse('timeoutNow', wire('81 af"ProtocolVersion" 04')), 'ERR_RAFT_UNSUPPORTED_PROTOCOL', 'operation not supported with current protocol version');
    expectWireError(() => decodeResponse('timeoutNow', wire('81 af"ProtocolVersion" ff')), 'ERR_RAFT_UNSUPPORTED_PROTOCOL');
  });

  it('checks the entry count against RAFT_APPEND_ENTRIES_MAX before reading any entry', () => {
    const count = RAFT_APPEND_ENTRIES_MAX + 1;
    const bytes = wire(`81 a7"Entries" dc ${count.toString(16).padStart(4, '0')} 00`);
    expectWireError(() => decodeRequest('appendEntries', bytes), 'ERR_RAFT_WIRE_TOO_LARGE');
  });

  it('checks the server count against RAFT_CONFIGURATION_SERVERS_MAX', () => {
    const bytes = wire(`81 a7"Servers" dc ${(RAFT_CONFIGURATION_SERVERS_MAX + 1).toString(16).padStart(4, '0')} 00`);
    expectWireError(() => decodeConfiguration(bytes), 'ERR_RAFT_WIRE_TOO_LARGE');
  });

  it('refuses an unknown log type, a negative or 2^53+ index, a nil entry, a bad suffrage, trailing bytes', () => {
    const entry = (fields: string): Uint8Array => wire(`81 a7"Entries" 91 ${fields}`);
    expectWireError(() => decodeRequest('appendEntries', entry('81 a4"Type" 06')), 'ERR_RAFT_WIRE_INVALID');
    expectWireError(() => decodeRequest('appendEntries', entry('81 a5"Index" ff')), 'ERR_RAFT_WIRE_INVALID');
    expectWireError(() => decodeRequest('appendEntries', entry('81 a5"Index" cf 0020000000000000')), 'ERR_RAFT_WIRE_INVALID');
    expectWireError(() => decodeRequest('appendEntries', entry('c0')), 'ERR_RAFT_WIRE_INVALID');
    expectWireError(() => decodeConfiguration(wire('81 a7"Servers" 91 81 a8"Suffrage" 03')), 'ERR_RAFT_WIRE_INVALID');
    expectWireError(() => decodeResponse('timeoutNow', wire('80 00')), 'ERR_RAFT_WIRE_INVALID');
    expectWireError(() => decodeResponse('timeoutNow', wire('91 03')), 'ERR_RAFT_WIRE_INVALID');
    expectWireError(() => decodeResponse('installSnapshot', wire('81 a7"Success" a1"x"')), 'ERR_RAFT_WIRE_INVALID');
  });

  it('refuses a declared snapshot Size over the limit', () => {
    const bytes = wire('81 a4"Size" cf 0000100000000001');
    expectWireError(() => decodeRequest('installSnapshot', bytes), 'ERR_RAFT_WIRE_TOO_LARGE');
  });
});

describe('MsgpackScanner frames a stream', () => {
  it('finds the same length fed one byte at a time as all at once', () => {
    const frame = encodeRequest('appendEntries', REQUESTS.appendEntries[2]!);
    const scanner = new MsgpackScanner();
    let found = -1;
    for (let end = 0; end <= frame.length && found < 0; end++) found = scanner.scan(frame.subarray(0, end), 1 << 20);
    assert.equal(found, frame.length);
    assert.equal(new MsgpackScanner().scan(frame, 1 << 20), frame.length);
  });

  it('stops at the end of the first value and resets for the next', () => {
    const both = wire('a4"boom" c0 a0 81 a1"x" 92 01 02');
    const scanner = new MsgpackScanner();
    assert.equal(scanner.scan(both, 100), 5);
    assert.equal(scanner.scan(both.subarray(5), 100), 1);
    assert.equal(scanner.scan(both.subarray(6), 100), 1);
    assert.equal(scanner.scan(both.subarray(7), 100), 6);
  });

  it('refuses a value whose declared length passes the limit before its bytes arrive', () => {
    expectWireError(() => new MsgpackScanner().scan(wire('db 7fffffff'), 1 << 20), 'ERR_RAFT_WIRE_TOO_LARGE');
    expectWireError(() => new MsgpackScanner().scan(wire('dd 7fffffff'), 1 << 20), 'ERR_RAFT_WIRE_TOO_LARGE');
    expectWireError(() => new MsgpackScanner().scan(wire('c1'), 100), 'ERR_RAFT_WIRE_INVALID');
    expectWireError(() => new MsgpackScanner().scan(wire('81 a7"Entries" dc 0401'), 1 << 20, RAFT_APPEND_ENTRIES_MAX), 'ERR_RAFT_WIRE_TOO_LARGE');
    expectWireError(() => new MsgpackScanner().scan(wire('de 0401'), 1 << 20, RAFT_APPEND_ENTRIES_MAX), 'ERR_RAFT_WIRE_TOO_LARGE');
    assert.equal(new MsgpackScanner().scan(wire('81 a7"Entries" dc 0400'), 1 << 20, RAFT_APPEND_ENTRIES_MAX), -1);
    expectWireError(() => new MsgpackScanner().scan(new Uint8Array(100).fill(0x91), 1000), 'ERR_RAFT_WIRE_INVALID');
  });

  it('agrees with the msgpack decoder on random inputs (differential, SEED=424242)', () => {
    const random = mulberry32(424242);
    for (let n = 0; n < 20_000; n++) {
      const input = n % 2 === 0 ? randomBytes(random, 1 + Math.floor(random() * 40)) : mutate(random, encode(randomValue(random, 0), { goCompatible: true }));
      let length: number;
      try {
        length = new MsgpackScanner().scan(input, 1 << 20);
      } catch (error) {
        assert.ok(error instanceof RaftWireError, `SEED=424242 n=${n} ${hex(input)} threw ${String(error)}`);
        continue;
      }
      if (length < 0) {
        assert.throws(() => decode(input), MsgpackError, `SEED=424242 n=${n} scanner wants more of ${hex(input)}`);
        continue;
      }
      try {
        decode(input.subarray(0, length));
      } catch (error) {
        // The scanner sizes items; only the decoder checks nesting beyond the limit and str contents.
        assert.ok(error instanceof MsgpackError, `SEED=424242 n=${n} ${hex(input)}: ${String(error)}`);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// R7: every decoder, 20,000 mutated or random inputs, no exception but RaftWireError, < 50 ms each.

const FUZZ_INPUTS = 20_000;
const FUZZ_SEED = 20260704;

function randomBytes(random: () => number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

/** Bytes the decoders branch on: headers with large lengths, nil, bools, ext. */
const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc6, 0xc7, 0xcb, 0xcf, 0xd3, 0xd4, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff];

function mutate(random: () => number, seed: Uint8Array): Uint8Array {
  const bytes = Array.from(seed);
  const edits = 1 + Math.floor(random() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(random() * (bytes.length + 1));
    switch (Math.floor(random() * 6)) {
      case 0: bytes[at] = Math.floor(random() * 256); break;
      case 1: bytes[at] = INTERESTING[Math.floor(random() * INTERESTING.length)] ?? 0; break;
      case 2: bytes.splice(at, 0, Math.floor(random() * 256)); break;
      case 3: bytes.splice(at, 1 + Math.floor(random() * 8)); break;
      case 4: bytes.length = Math.min(bytes.length, at); break;
      default: bytes.splice(at, 0, ...bytes.slice(Math.floor(random() * bytes.length), Math.floor(random() * bytes.length))); break;
    }
  }
  return new Uint8Array(bytes.slice(0, 1 << 16));
}

function randomValue(random: () => number, depth: number): unknown {
  const pick = Math.floor(random() * (depth > 3 ? 5 : 8));
  switch (pick) {
    case 0: return Math.floor(random() * 2 ** 33) - 2 ** 20;
    case 1: return random() < 0.5;
    case 2: return null;
    case 3: return 'k'.repeat(Math.floor(random() * 40));
    case 4: return randomBytes(random, Math.floor(random() * 40));
    case 5: return Array.from({ length: Math.floor(random() * 5) }, () => randomValue(random, depth + 1));
    default: {
      const keys = ['Term', 'Entries', 'Data', 'Index', 'Type', 'Servers', 'Size', 'ProtocolVersion', 'Leader', 'x'];
      return Object.fromEntries(Array.from({ length: Math.floor(random() * 5) }, () => [keys[Math.floor(random() * keys.length)] ?? 'x', randomValue(random, depth + 1)]));
    }
  }
}

function timed(run: () => void): number {
  const started = performance.now();
  try {
    run();
  } catch (error) {
    if (!(error instanceof RaftWireError)) throw error;
  }
  return performance.now() - started;
}

function fuzz(name: string, seeds: readonly Uint8Array[], run: (bytes: Uint8Array) => unknown): void {
  it(`${name}: ${FUZZ_INPUTS} inputs, only RaftWireError, each under 50 ms (SEED=${FUZZ_SEED})`, () => {
    const random = mulberry32(FUZZ_SEED);
    for (let n = 0; n < FUZZ_INPUTS; n++) {
      const roll = random();
      const input = roll < 0.7 ? mutate(random, seeds[Math.floor(random() * seeds.length)] ?? new Uint8Array(0))
        : roll < 0.85 ? encode(randomValue(random, 0), { goCompatible: true })
        : randomBytes(random, Math.floor(random() * 64));
      let elapsedMs = timed(() => {
        try {
          run(input);
        } catch (error) {
          assert.ok(error instanceof RaftWireError, `SEED=${FUZZ_SEED} ${name} n=${n} input ${hex(input)} threw ${String(error)}`);
        }
      });
      // A GC pause or a descheduled test process can stall any one call; a slow input stays slow.
      for (let retry = 0; retry < 2 && elapsedMs >= 50; retry++) elapsedMs = Math.min(elapsedMs, timed(() => run(input)));
      assert.ok(elapsedMs < 50, `SEED=${FUZZ_SEED} ${name} n=${n} input ${hex(input)} took ${elapsedMs} ms`);
    }
  });
}

describe('raftwire decoders under fuzzing (R7)', () => {
  for (const kind of KINDS) {
    fuzz(`decodeRequest(${kind})`, REQUESTS[kind].map((request) => encodeRequest(kind, request as never)), (bytes) => decodeRequest(kind, bytes));
    fuzz(`decodeResponse(${kind})`, RESPONSES[kind].map((response) => encodeResponse(kind, response as never)), (bytes) => decodeResponse(kind, bytes));
  }
  fuzz('decodeConfiguration', [encodeConfiguration(SERVERS), encodeConfiguration([])], decodeConfiguration);
  fuzz('decodeErrorString', [wire('a4"boom"'), wire('a0'), wire('c0')], decodeErrorString);
  fuzz('MsgpackScanner.scan', [encodeRequest('appendEntries', REQUESTS.appendEntries[2]!), wire('a4"boom" c0')], (bytes) => new MsgpackScanner().scan(bytes, 1 << 16));
});
