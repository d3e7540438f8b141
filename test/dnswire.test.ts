// The DNS codec (lib/dnswire.ts): round trips of every record kind with and without compression,
// golden bytes (a dig query with an EDNS cookie, an A answer), a malformed corpus asserting each
// DnsWireError code, the presentation-text escapes, IP text helpers, and a seeded fuzz of both
// decoders (20,000 inputs; bench/dnsfuzz.bench.ts runs the same fuzz with 1,000,000).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzzSeeds, runFuzz, sampleSrvReply } from '../bench/dnsfuzz.bench.js';
import {
  decodeMessage,
  decodeQuery,
  DNS_SECTION_RECORDS_MAX,
  DnsWireError,
  encodeMessage,
  formatIpv6,
  ipv4Bytes,
  ipv6Bytes,
  nameWireLength,
  RCODE,
  replyTo,
  RR_CLASS,
  RR_TYPE,
  type DnsHeader,
  type DnsMessage,
  type DnsWireErrorCode,
  type RecordData,
  type ResourceRecord,
} from '../lib/dnswire.js';

function hex(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text.replace(/[^0-9a-f]/gi, ''), 'hex'));
}

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function header(overrides: Partial<DnsHeader> = {}): DnsHeader {
  return { id: 0x1234, isResponse: true, opcode: 0, isAuthoritative: true, isTruncated: false, isRecursionDesired: true, isRecursionAvailable: false, isAuthenticData: false, isCheckingDisabled: false, rcode: 0, ...overrides };
}

function record(name: string, type: number, data: RecordData, ttl = 0, rrClass: number = RR_CLASS.IN): ResourceRecord {
  return { name, type, class: rrClass, ttl, data };
}

function message(answers: ResourceRecord[], additionals: ResourceRecord[] = [], authorities: ResourceRecord[] = []): DnsMessage {
  return { header: header(), questions: [{ name: 'web.service.consul.', type: RR_TYPE.ANY, class: RR_CLASS.IN }], answers, authorities, additionals };
}

function assertWireError(action: () => unknown, code: DnsWireErrorCode): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof DnsWireError, `expected DnsWireError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

/** Header bytes: id 0x1234, the given flags and counts. */
function headerHex(flags: string, qd: number, an = 0, ns = 0, ar = 0): string {
  const u16 = (value: number): string => value.toString(16).padStart(4, '0');
  return `1234 ${flags} ${u16(qd)} ${u16(an)} ${u16(ns)} ${u16(ar)}`;
}

const WEB_SERVICE_CONSUL = '03 776562 07 73657276696365 06 636f6e73756c 00';

const everyKind: ResourceRecord[] = [
  record('web.service.consul.', RR_TYPE.A, { kind: 'a', address: '10.0.0.1' }, 30),
  record('web.service.consul.', RR_TYPE.AAAA, { kind: 'aaaa', address: '2001:db8::8:800:200c:417a' }),
  record('alias.service.consul.', RR_TYPE.CNAME, { kind: 'cname', target: 'web.service.consul.' }),
  record('consul.', RR_TYPE.NS, { kind: 'ns', target: 'ns.consul.' }),
  record('1.0.0.10.in-addr.arpa.', RR_TYPE.PTR, { kind: 'ptr', target: 'node1.node.dc1.consul.' }),
  record('_web._tcp.service.consul.', RR_TYPE.SRV, { kind: 'srv', priority: 1, weight: 2, port: 8080, target: 'node1.node.dc1.consul.' }),
  record('node1.node.dc1.consul.', RR_TYPE.TXT, { kind: 'txt', strings: ['rack=a', '', 'ünïcode'] }),
  record('consul.', RR_TYPE.SOA, { kind: 'soa', mname: 'ns.consul.', rname: 'hostmaster.consul.', serial: 4294967295, refresh: 3600, retry: 600, expire: 86400, minimum: 0 }),
  record('consul.', RR_TYPE.MX, { kind: 'raw', bytes: Uint8Array.of(0, 10, 2, 109, 120, 0) }),
];
const optRecord = record('.', RR_TYPE.OPT, { kind: 'opt', options: [{ code: 10, data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) }, { code: 8, data: Uint8Array.of(0, 1, 24, 0, 10, 0, 0) }] }, 0x00008000, 1232);

describe('round trips', () => {
  for (const compress of [true, false]) {
    it(`every RecordData kind decodes to what was encoded (compress=${compress})`, () => {
      const original: DnsMessage = { ...message(everyKind.slice(0, 5), [optRecord], everyKind.slice(5)) };
      const decoded = decodeMessage(encodeMessage(original, { compress }));
      assert.deepEqual(decoded, original);
    });
  }

  it('compression shrinks a message with repeated suffixes, and its pointers land on the right labels', () => {
    const original = sampleSrvReply();
    const compressed = encodeMessage(original);
    const plain = encodeMessage(original, { compress: false });
    assert.ok(compressed.length < plain.length - 60, `${compressed.length} vs ${plain.length}`);
    assert.deepEqual(decodeMessage(compressed), decodeMessage(plain));
    assert.deepEqual(decodeMessage(compressed), original);
    // The first answer's owner is a pointer to the question name at offset 12.
    const answerAt = 12 + nameWireLength('web.service.consul.') + 4;
    assert.equal(toHex(compressed.subarray(answerAt, answerAt + 2)), 'c00c');
  });

  it('SRV targets are written whole and are not pointer targets, owner names after them still compress', () => {
    const target = 'node1.node.dc1.consul.';
    const original = message([record('web.service.consul.', RR_TYPE.SRV, { kind: 'srv', priority: 1, weight: 1, port: 80, target })], [record(target, RR_TYPE.A, { kind: 'a', address: '10.0.0.1' })]);
    const bytes = encodeMessage(original);
    const text = Buffer.from(bytes).toString('latin1');
    assert.equal(text.split('\x05node1\x04node\x03dc1\x06consul\x00').length - 1, 1, 'the SRV target appears in full once');
    assert.ok(text.includes('\x05node1\x04node\x03dc1\xc0'), 'the A owner reuses "consul." from the question, not the SRV target');
    assert.deepEqual(decodeMessage(bytes), original);
  });

  it('compression matches suffixes case-insensitively but keeps the first spelling in the bytes', () => {
    const original: DnsMessage = { ...message([record('WEB.service.CONSUL.', RR_TYPE.A, { kind: 'a', address: '10.0.0.1' })]), questions: [{ name: 'wEb.SeRvIcE.cOnSuL.', type: RR_TYPE.A, class: RR_CLASS.IN }] };
    const bytes = encodeMessage(original);
    const decoded = decodeMessage(bytes);
    assert.equal(decoded.questions[0]!.name, 'wEb.SeRvIcE.cOnSuL.', '0x20 case is echoed');
    assert.equal(decoded.answers[0]!.name, 'wEb.SeRvIcE.cOnSuL.', 'the owner became a pointer to the question');
    assert.equal(decodeMessage(encodeMessage(original, { compress: false })).answers[0]!.name, 'WEB.service.CONSUL.');
  });

  it('names past the 14-bit pointer range still compress against earlier names and round-trip', () => {
    const answers = Array.from({ length: 1500 }, (_, index) => record(`n${index}.svc${index % 7}.dc1.consul.`, RR_TYPE.CNAME, { kind: 'cname', target: `t${index}.node.dc1.consul.` }));
    const original: DnsMessage = { ...message(answers), questions: [] };
    const bytes = encodeMessage(original);
    assert.ok(bytes.length > 0x4000 && bytes.length < 40_000, `${bytes.length} bytes`);
    assert.deepEqual(decodeMessage(bytes), original);
  });

  it('a TXT string over 255 bytes is split into 255-byte character-strings', () => {
    const original = message([record('t.consul.', RR_TYPE.TXT, { kind: 'txt', strings: ['x'.repeat(600)] })]);
    const decoded = decodeMessage(encodeMessage(original));
    assert.deepEqual(decoded.answers[0]!.data, { kind: 'txt', strings: ['x'.repeat(255), 'x'.repeat(255), 'x'.repeat(90)] });
  });

  it('names without the trailing dot are fully qualified; the root is "."', () => {
    const original = message([record('web.service.consul', RR_TYPE.CNAME, { kind: 'cname', target: '.' })]);
    const decoded = decodeMessage(encodeMessage(original));
    assert.equal(decoded.answers[0]!.name, 'web.service.consul.');
    assert.deepEqual(decoded.answers[0]!.data, { kind: 'cname', target: '.' });
  });

  it('the extended rcode travels in the OPT TTL (RFC 6891 §6.1.3)', () => {
    const original: DnsMessage = { ...message([], [record('.', RR_TYPE.OPT, { kind: 'opt', options: [] }, 0, 1232)]), header: header({ rcode: RCODE.BADVERS }) };
    const bytes = encodeMessage(original);
    assert.equal(bytes[3]! & 0xf, 0, 'low 4 bits of BADVERS');
    const decoded = decodeMessage(bytes);
    assert.equal(decoded.header.rcode, RCODE.BADVERS);
    assert.equal(decoded.additionals[0]!.ttl, 0x01000000);
    assert.equal(decodeQuery(bytes).header.rcode, RCODE.BADVERS);
    assert.throws(() => encodeMessage({ ...message([]), header: header({ rcode: RCODE.BADVERS }) }), /extended rcode needs an OPT/);
  });

  it('replyTo copies id, opcode, RD, CD and the questions, and sets QR', () => {
    const query = decodeQuery(hex(`${headerHex('0130', 1)} ${WEB_SERVICE_CONSUL} 0021 0001`));
    const reply = replyTo(query);
    assert.deepEqual(reply.header, header({ isAuthoritative: false, isCheckingDisabled: true }));
    assert.deepEqual(reply.questions, query.questions);
    assert.notEqual(reply.questions[0], query.questions[0]);
    assert.deepEqual([reply.answers, reply.authorities, reply.additionals], [[], [], []]);
  });
});

describe('golden bytes', () => {
  // dig @127.0.0.1 -p 8600 web.service.consul SRV: RD and AD set, EDNS0 with a 1232-byte UDP
  // size and an 8-byte client COOKIE (option 10). Hand-assembled, and byte for byte what DiG
  // 9.18.49 sent to a test listener (there with id 0x50fa, "WeB" and a random cookie).
  const digQuery = hex(`${headerHex('0120', 1, 0, 0, 1)} ${WEB_SERVICE_CONSUL} 0021 0001  00 0029 04d0 00000000 000c 000a 0008 0102030405060708`);
  const capturedDigQuery = hex('50fa0120000100000000000103576542077365727669636506636f6e73756c000021000100002904d000000000000c000a00089003538c0a74f5ef');

  it('the captured dig query decodes, 0x20 case kept', () => {
    const query = decodeQuery(capturedDigQuery);
    assert.equal(query.header.id, 0x50fa);
    assert.deepEqual(query.questions, [{ name: 'WeB.service.consul.', type: RR_TYPE.SRV, class: RR_CLASS.IN }]);
    assert.deepEqual(query.opt?.data, { kind: 'opt', options: [{ code: 10, data: hex('9003538c0a74f5ef') }] });
  });

  it('a dig SRV query with an EDNS cookie decodes to its fields', () => {
    const expectedOpt = record('.', RR_TYPE.OPT, { kind: 'opt', options: [{ code: 10, data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) }] }, 0, 1232);
    const query = decodeQuery(digQuery);
    assert.deepEqual(query.header, header({ isResponse: false, isAuthoritative: false, isAuthenticData: true }));
    assert.deepEqual(query.questions, [{ name: 'web.service.consul.', type: RR_TYPE.SRV, class: RR_CLASS.IN }]);
    assert.deepEqual(query.opt, expectedOpt);
    const full = decodeMessage(digQuery);
    assert.deepEqual(full.additionals, [expectedOpt]);
    assert.deepEqual(encodeMessage(full), digQuery);
  });

  it('an A answer encodes to hand-written bytes', () => {
    const reply = message([record('web.service.consul.', RR_TYPE.A, { kind: 'a', address: '10.0.0.1' }, 0)]);
    reply.questions[0]!.type = RR_TYPE.A;
    const expected = hex(`${headerHex('8500', 1, 1)} ${WEB_SERVICE_CONSUL} 0001 0001  c00c 0001 0001 00000000 0004 0a000001`);
    assert.equal(toHex(encodeMessage(reply)), toHex(expected));
  });

  it('decoded byte fields are plain copies, even from a Node Buffer', () => {
    const input = Buffer.from(digQuery);
    const data = decodeQuery(input).opt!.data;
    assert.ok(data.kind === 'opt' && !Buffer.isBuffer(data.options[0]!.data));
    input.fill(0);
    assert.deepEqual(data, { kind: 'opt', options: [{ code: 10, data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) }] });
  });

  it('trailing bytes after the last record are ignored', () => {
    const bytes = new Uint8Array(digQuery.length + 3);
    bytes.set(digQuery);
    assert.deepEqual(decodeMessage(bytes), decodeMessage(digQuery));
  });
});

describe('malformed messages throw a DnsWireError with the right code', () => {
  const query = (name: string, rest = '0001 0001'): Uint8Array => hex(`${headerHex('0100', 1)} ${name} ${rest}`);
  const answer = (type: string, rdata: string, rdlength?: number): Uint8Array => {
    const length = (rdlength ?? hex(rdata).length).toString(16).padStart(4, '0');
    return hex(`${headerHex('8000', 0, 1)} 00 ${type} 0001 00000000 ${length} ${rdata}`);
  };
  const both = (bytes: Uint8Array, code: DnsWireErrorCode): void => {
    assertWireError(() => decodeMessage(bytes), code);
    assertWireError(() => decodeQuery(bytes), code);
  };

  it('truncated header', () => both(hex('1234 0100 0001 0000 0000'), 'ERR_TRUNCATED'));
  it('truncated question name', () => both(hex(`${headerHex('0100', 1)} 03 7765`), 'ERR_TRUNCATED'));
  it('truncated question type and class', () => both(query(WEB_SERVICE_CONSUL, '0001'), 'ERR_TRUNCATED'));
  it('a label of 64 is label type 01 on the wire', () => both(query(`40 ${'61'.repeat(64)} 00`), 'ERR_BAD_LABEL_TYPE'));
  it('a name of 256 wire bytes', () => both(query(`${'3f'.concat('61'.repeat(63)).repeat(4)} 00`), 'ERR_NAME_TOO_LONG'));
  it('a name of 255 wire bytes is fine', () => {
    const bytes = query(`${'3f'.concat('61'.repeat(63)).repeat(3)} 3d ${'61'.repeat(61)} 00`);
    assert.equal(nameWireLength(decodeMessage(bytes).questions[0]!.name), 255);
  });
  it('a pointer to itself', () => both(query('c00c'), 'ERR_POINTER_LOOP'));
  it('a two-pointer cycle', () => both(hex(`${headerHex('0100', 2)} 01 61 c0 1a 0001 0001 01 62 c0 0c 0001 0001`), 'ERR_POINTER_LOOP'));
  it('a pointer back into its own name', () => both(query('01 61 c0 0c'), 'ERR_POINTER_LOOP'));
  it('a forward pointer', () => both(query('c0 10 0001 0001 01 61 00'), 'ERR_POINTER_LOOP'));
  it('a pointer past the message', () => both(query('c0 ff'), 'ERR_POINTER_RANGE'));
  it('label type 0x40', () => both(query('41 00'), 'ERR_BAD_LABEL_TYPE'));
  it('label type 0x80', () => both(query('80 00'), 'ERR_BAD_LABEL_TYPE'));
  it('rdlength past the end', () => both(answer('0001', '0a000001', 5), 'ERR_TRUNCATED'));
  it('A with rdlength 3', () => assertWireError(() => decodeMessage(answer('0001', '0a0000')), 'ERR_BAD_RDATA'));
  it('AAAA with rdlength 15', () => assertWireError(() => decodeMessage(answer('001c', '00'.repeat(15))), 'ERR_BAD_RDATA'));
  it('SRV whose target runs past rdlength', () => {
    const bytes = hex(`${headerHex('8000', 0, 2)} 00 0021 0001 00000000 0009 0001 0001 0050 04 6e6f6465 00  00 0001 0001 00000000 0004 0a000001`);
    assertWireError(() => decodeMessage(bytes), 'ERR_BAD_RDATA');
  });
  it('SRV whose target ends before rdlength', () => assertWireError(() => decodeMessage(answer('0021', '0001 0001 0050 00 ff')), 'ERR_BAD_RDATA'));
  it('TXT string length past rdlength', () => assertWireError(() => decodeMessage(hex(`${headerHex('8000', 0, 2)} 00 0010 0001 00000000 0003 05 6869 00 0001 0001 00000000 0004 0a000001`)), 'ERR_BAD_RDATA'));
  it('EDNS option length past rdlength', () => assertWireError(() => decodeMessage(answer('0029', '000a 0009 0102030405060708')), 'ERR_BAD_RDATA'));
  it('SOA numbers short of rdlength', () => assertWireError(() => decodeMessage(answer('0006', `00 00 ${'00'.repeat(19)}`)), 'ERR_BAD_RDATA'));
  for (const section of ['qdcount', 'ancount', 'nscount', 'arcount']) {
    it(`${section} of 65535 with no records`, () => {
      const counts = ['qdcount', 'ancount', 'nscount', 'arcount'].map((name) => (name === section ? 0xffff : 0));
      both(hex(headerHex('0100', counts[0]!, counts[1], counts[2], counts[3])), 'ERR_TOO_MANY_RECORDS');
    });
  }
  it(`a count at the limit (${DNS_SECTION_RECORDS_MAX}) with no records is only truncated`, () => both(hex(headerHex('0100', DNS_SECTION_RECORDS_MAX)), 'ERR_TRUNCATED'));
  it('OPT in the answer section is decoded, not judged', () => {
    const decoded = decodeMessage(answer('0029', '000a 0002 0102'));
    assert.deepEqual(decoded.answers[0]!.data, { kind: 'opt', options: [{ code: 10, data: Uint8Array.of(1, 2) }] });
  });
  it('decodeQuery finds the OPT after other additional records, skipping compressed names', () => {
    const bytes = hex(`${headerHex('0100', 1, 1, 0, 2)} ${WEB_SERVICE_CONSUL} 0001 0001  c00c 0001 0001 00000000 0004 0a000001  c00c 0001 0001 00000000 0004 0a000002  00 0029 1000 00000000 0000`);
    assert.equal(decodeQuery(bytes).opt?.class, 4096);
    assert.equal(decodeMessage(bytes).additionals.length, 2);
  });
});

describe('presentation text', () => {
  it('a label containing "." and a byte 0x00 round-trips through the text form', () => {
    const bytes = hex(`${headerHex('0100', 1)} 05 612e6200 63 06 636f6e73756c 00 0001 0001`);
    const decoded = decodeMessage(bytes);
    assert.equal(decoded.questions[0]!.name, 'a\\.b\\000c.consul.');
    assert.deepEqual(encodeMessage(decoded), bytes);
  });

  it('miekg escapes: backslash, the special characters, and bytes outside 0x21..0x7e as \\DDD', () => {
    const label = Uint8Array.from(Buffer.from('\\"();@$ \x7f\xff~', 'latin1'));
    const bytes = hex(`${headerHex('0100', 1)} ${label.length.toString(16).padStart(2, '0')} ${toHex(label)} 00 0001 0001`);
    const name = decodeMessage(bytes).questions[0]!.name;
    assert.equal(name, '\\\\\\"\\(\\)\\;\\@\\$\\032\\127\\255~.');
    assert.deepEqual(encodeMessage(decodeMessage(bytes)), bytes);
  });

  it('encode accepts "\\X" for any X and UTF-8 for non-ASCII text', () => {
    assert.equal(nameWireLength('\\a\\b.c'), 6);
    assert.equal(nameWireLength('é.'), 4);
    assert.equal(nameWireLength('.'), 1);
  });

  const bad: Array<[string, DnsWireErrorCode]> = [
    ['a..b', 'ERR_BAD_NAME_TEXT'],
    ['.a', 'ERR_BAD_NAME_TEXT'],
    ['', 'ERR_BAD_NAME_TEXT'],
    ['a\\', 'ERR_BAD_NAME_TEXT'],
    ['a\\25', 'ERR_BAD_NAME_TEXT'],
    ['a\\256', 'ERR_BAD_NAME_TEXT'],
    ['\ud800.a', 'ERR_BAD_NAME_TEXT'],
    [`${'a'.repeat(64)}.consul.`, 'ERR_LABEL_TOO_LONG'],
    [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}.`, 'ERR_NAME_TOO_LONG'],
  ];
  for (const [text, code] of bad) {
    it(`${JSON.stringify(text).slice(0, 40)} is ${code}`, () => {
      assertWireError(() => nameWireLength(text), code);
      assertWireError(() => encodeMessage(message([record(text, RR_TYPE.A, { kind: 'a', address: '1.2.3.4' })])), code);
    });
  }

  it('a 255-byte name is the longest accepted', () => {
    assert.equal(nameWireLength(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}.`), 255);
  });
});

describe('addresses', () => {
  it('IPv4 text is a strict dotted quad', () => {
    assert.deepEqual(ipv4Bytes('10.0.0.255'), Uint8Array.of(10, 0, 0, 255));
    for (const text of ['10.0.0', '10.0.0.256', '01.2.3.4', '1.2.3.4.', '1..2.3', ' 1.2.3.4', '1.2.3.4.5', '']) assert.equal(ipv4Bytes(text), undefined, text);
  });

  it('IPv6 text in every RFC 4291 form parses, and formats in RFC 5952 canonical form', () => {
    const cases: Array<[string, string]> = [
      ['::', '::'],
      ['::1', '::1'],
      ['1::', '1::'],
      ['2001:DB8:0:0:8:800:200C:417A', '2001:db8::8:800:200c:417a'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
      ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
      ['::1.2.3.4', '::102:304'],
    ];
    for (const [text, canonical] of cases) assert.equal(formatIpv6(ipv6Bytes(text)!), canonical, text);
    for (const text of [':1', '1:', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::', '::1.2.3', '1:2:3:4:5:6:7:1.2.3.4', 'fe80::1%eth0', '1.2.3.4']) assert.equal(ipv6Bytes(text), undefined, text);
  });

  it('encode rejects bad addresses with ERR_BAD_ADDRESS', () => {
    assertWireError(() => encodeMessage(message([record('a.', RR_TYPE.A, { kind: 'a', address: '::1' })])), 'ERR_BAD_ADDRESS');
    assertWireError(() => encodeMessage(message([record('a.', RR_TYPE.AAAA, { kind: 'aaaa', address: '1.2.3.4' })])), 'ERR_BAD_ADDRESS');
  });

  it('a message over 65,535 bytes is ERR_MESSAGE_TOO_BIG, and the encoder works normally afterwards', () => {
    const big = Array.from({ length: 300 }, () => record('t.', RR_TYPE.TXT, { kind: 'txt', strings: ['x'.repeat(255)] }));
    assertWireError(() => encodeMessage(message(big)), 'ERR_MESSAGE_TOO_BIG');
    const small = message([record('web.service.consul.', RR_TYPE.A, { kind: 'a', address: '10.0.0.1' })]);
    assert.deepEqual(decodeMessage(encodeMessage(small)), small);
  });

  it('encode returns a fresh array each time', () => {
    const first = encodeMessage(sampleSrvReply());
    const copy = first.slice();
    encodeMessage(message([record('other.', RR_TYPE.A, { kind: 'a', address: '1.1.1.1' })]));
    assert.deepEqual(first, copy);
    assert.equal(first.byteLength, first.buffer.byteLength);
  });
});

describe('fuzz', () => {
  it('20,000 random and mutated inputs: decoders throw only DnsWireError, and what decodes re-encodes', () => {
    const report = runFuzz(20_000, 0xd15);
    assert.deepEqual(report.escapes, []);
    assert.ok((report.decodeMessage.get('ok') ?? 0) > 1_000, 'mutations keep some messages valid');
    assert.ok(report.decodeMessage.size >= 5, `several error codes seen: ${[...report.decodeMessage.keys()].join(' ')}`);
  });

  it('the fuzz seeds are valid messages that survive a decode/encode round trip', () => {
    for (const seed of fuzzSeeds()) {
      const decoded = decodeMessage(seed);
      assert.deepEqual(decodeMessage(encodeMessage(decoded, { compress: false })), decoded);
      // Compressed, a name may take the spelling of an earlier name with the same suffix (case-insensitive match).
      const lower = (value: DnsMessage): string => JSON.stringify(value, (_, field: unknown) => (typeof field === 'string' ? field.toLowerCase() : field instanceof Uint8Array ? toHex(field) : field));
      assert.equal(lower(decodeMessage(encodeMessage(decoded))), lower(decoded));
    }
  });
});
