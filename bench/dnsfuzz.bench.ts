// The DNS codec (lib/dnswire.ts) under a seeded fuzz and at speed, in one process on one core.
// Part one feeds 1,000,000 random and mutated inputs (bit flips, truncations, splices and
// overwrites of valid messages) to decodeMessage and decodeQuery, re-encodes whatever decodes,
// and counts outcomes per error code; anything other than a DnsWireError escaping is a failure
// and the process exits 1. Part two measures encode and decode of two typical replies: an A
// answer (`web.service.consul. A`, 3 A records) and an SRV answer (3 SRV, 3 A additionals, OPT).
//
// Run: npm run bench -- dnsfuzz (or node --import tsx bench/dnsfuzz.bench.ts [inputs]).
// test/dnswire.test.ts runs the same fuzz with 20,000 inputs through runFuzz below.
import { pathToFileURL } from 'node:url';
import { decodeMessage, decodeQuery, DnsWireError, encodeMessage, RR_CLASS, RR_TYPE, type DnsMessage, type ResourceRecord } from '../lib/dnswire.js';
import { seededRng } from '../lib/rng.js';

const FUZZ_INPUTS = 1_000_000;
const SEED = 0x5eed;
/** Each timing is the best of this many runs, after the JIT has seen the code once. */
const RUNS = 3;
const SPEED_MESSAGES = 200_000;

/** Outcome counts of one fuzz run: "ok" or a DnsWireError code per decoder, and escapes (anything else thrown). */
export interface FuzzReport {
  readonly inputs: number;
  readonly decodeMessage: Map<string, number>;
  readonly decodeQuery: Map<string, number>;
  readonly reencode: Map<string, number>;
  readonly escapes: string[];
}

/** A header for the sample messages. */
function header(id: number, isResponse: boolean, rcode = 0): DnsMessage['header'] {
  return { id, isResponse, opcode: 0, isAuthoritative: isResponse, isTruncated: false, isRecursionDesired: true, isRecursionAvailable: false, isAuthenticData: !isResponse, isCheckingDisabled: false, rcode };
}

function a(name: string, address: string): ResourceRecord {
  return { name, type: RR_TYPE.A, class: RR_CLASS.IN, ttl: 0, data: { kind: 'a', address } };
}

function srv(name: string, port: number, target: string): ResourceRecord {
  return { name, type: RR_TYPE.SRV, class: RR_CLASS.IN, ttl: 0, data: { kind: 'srv', priority: 1, weight: 1, port, target } };
}

function opt(udpBytes: number, options: ResourceRecord['data'] & { kind: 'opt' } = { kind: 'opt', options: [] }): ResourceRecord {
  return { name: '.', type: RR_TYPE.OPT, class: udpBytes, ttl: 0, data: options };
}

/** Typical reply: `web.service.consul. A` with three A answers. */
export function sampleAReply(): DnsMessage {
  const name = 'web.service.consul.';
  return { header: header(0x1234, true), questions: [{ name, type: RR_TYPE.A, class: RR_CLASS.IN }], answers: [a(name, '10.0.0.1'), a(name, '10.0.0.2'), a(name, '10.0.0.3')], authorities: [], additionals: [] };
}

/** Typical reply: `web.service.consul. SRV` with three SRV answers, their A records and an OPT. */
export function sampleSrvReply(): DnsMessage {
  const name = 'web.service.consul.';
  const targets = [1, 2, 3].map((index) => `0a00000${index}.addr.dc1.consul.`);
  return {
    header: header(0x4321, true),
    questions: [{ name, type: RR_TYPE.SRV, class: RR_CLASS.IN }],
    answers: targets.map((target, index) => srv(name, 8080 + index, target)),
    authorities: [],
    additionals: [...targets.map((target, index) => a(target, `10.0.0.${index + 1}`)), opt(4096)],
  };
}

/** Valid messages of every record kind, the seeds that mutations start from. */
export function fuzzSeeds(): Uint8Array[] {
  const soa: ResourceRecord = { name: 'consul.', type: RR_TYPE.SOA, class: RR_CLASS.IN, ttl: 0, data: { kind: 'soa', mname: 'ns.consul.', rname: 'hostmaster.consul.', serial: 1700000000, refresh: 3600, retry: 600, expire: 86400, minimum: 0 } };
  const mixed: DnsMessage = {
    header: header(9, true, 3),
    questions: [{ name: 'db.Service.Consul.', type: RR_TYPE.ANY, class: RR_CLASS.IN }],
    answers: [
      { name: 'db.service.consul.', type: RR_TYPE.CNAME, class: RR_CLASS.IN, ttl: 30, data: { kind: 'cname', target: 'primary.db.service.consul.' } },
      { name: 'primary.db.service.consul.', type: RR_TYPE.AAAA, class: RR_CLASS.IN, ttl: 30, data: { kind: 'aaaa', address: '2001:db8::1' } },
      { name: 'db.service.consul.', type: RR_TYPE.TXT, class: RR_CLASS.IN, ttl: 0, data: { kind: 'txt', strings: ['rack=a', '', 'x'.repeat(300)] } },
      { name: '1.0.0.10.in-addr.arpa.', type: RR_TYPE.PTR, class: RR_CLASS.IN, ttl: 0, data: { kind: 'ptr', target: 'node1.node.dc1.consul.' } },
      { name: 'consul.', type: RR_TYPE.MX, class: RR_CLASS.IN, ttl: 0, data: { kind: 'raw', bytes: Uint8Array.of(0, 10, 2, 109, 120, 0) } },
    ],
    authorities: [soa, { name: 'consul.', type: RR_TYPE.NS, class: RR_CLASS.IN, ttl: 0, data: { kind: 'ns', target: 'ns.consul.' } }],
    additionals: [opt(1232, { kind: 'opt', options: [{ code: 10, data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) }] })],
  };
  const query: DnsMessage = { header: header(0xbeef, false), questions: [{ name: 'web.service.consul.', type: RR_TYPE.SRV, class: RR_CLASS.IN }], answers: [], authorities: [], additionals: [opt(1232)] };
  const seeds: Uint8Array[] = [];
  for (const message of [query, sampleAReply(), sampleSrvReply(), mixed]) {
    seeds.push(encodeMessage(message), encodeMessage(message, { compress: false }));
  }
  return seeds;
}

/** Bytes a mutation likes to plant: label-type bits, pointer starts, maximal counts, zero. */
const INTERESTING = [0x00, 0x01, 0x3f, 0x40, 0x80, 0xc0, 0xc0, 0xff, 0x0c, 0x29];

/** One fuzz input: random bytes, or a seed with bit flips, a truncation, a splice or planted bytes. */
export function fuzzInput(seeds: readonly Uint8Array[], random: () => number): Uint8Array {
  const pick = (count: number): number => Math.floor(random() * count);
  const seed = seeds[pick(seeds.length)]!;
  switch (pick(5)) {
    case 0: {
      const bytes = new Uint8Array(pick(300));
      for (let index = 0; index < bytes.length; index++) bytes[index] = pick(256);
      // Half the time, small section counts, so random bytes get past the count check.
      if (random() < 0.5) for (let index = 4; index < Math.min(12, bytes.length); index += 2) bytes[index] = 0;
      return bytes;
    }
    case 1: {
      const bytes = seed.slice();
      for (let flips = 1 + pick(8); flips > 0; flips--) bytes[pick(bytes.length)]! ^= 1 << pick(8);
      return bytes;
    }
    case 2:
      return seed.slice(0, pick(seed.length + 1));
    case 3: {
      const other = seeds[pick(seeds.length)]!;
      const head = seed.subarray(0, pick(seed.length + 1));
      const tail = other.subarray(pick(other.length + 1));
      const bytes = new Uint8Array(head.length + tail.length);
      bytes.set(head);
      bytes.set(tail, head.length);
      return bytes;
    }
    default: {
      const bytes = seed.slice();
      for (let plants = 1 + pick(4); plants > 0; plants--) bytes[pick(bytes.length)] = INTERESTING[pick(INTERESTING.length)]!;
      return bytes;
    }
  }
}

function count(outcomes: Map<string, number>, key: string): void {
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
}

/** Runs `action`, counting "ok" or the DnsWireError code; anything else is recorded as an escape. Returns the result or undefined. */
function attempt<T>(outcomes: Map<string, number>, escapes: string[], input: Uint8Array, action: () => T): T | undefined {
  try {
    const result = action();
    count(outcomes, 'ok');
    return result;
  } catch (error) {
    if (error instanceof DnsWireError) {
      count(outcomes, error.code);
    } else {
      count(outcomes, 'ESCAPED');
      escapes.push(`${String(error)} on input ${Buffer.from(input).toString('hex')}`);
    }
    return undefined;
  }
}

/** The fuzz: `inputs` inputs from a seeded generator through both decoders, re-encoding (compressed and not) what decodes. */
export function runFuzz(inputs: number, seed: number): FuzzReport {
  const random = seededRng(seed);
  const seeds = fuzzSeeds();
  const report: FuzzReport = { inputs, decodeMessage: new Map(), decodeQuery: new Map(), reencode: new Map(), escapes: [] };
  for (let index = 0; index < inputs; index++) {
    const input = fuzzInput(seeds, random);
    const message = attempt(report.decodeMessage, report.escapes, input, () => decodeMessage(input));
    attempt(report.decodeQuery, report.escapes, input, () => decodeQuery(input));
    if (message !== undefined) {
      attempt(report.reencode, report.escapes, input, () => encodeMessage(message));
      attempt(report.reencode, report.escapes, input, () => encodeMessage(message, { compress: false }));
    }
  }
  return report;
}

function fixed(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** Messages per second of the best of RUNS runs of `run`, which handles `messages` messages. */
function perSecond(messages: number, run: () => void): number {
  let bestMs = Infinity;
  for (let index = 0; index <= RUNS; index++) {
    const started = performance.now();
    run();
    if (index > 0) bestMs = Math.min(bestMs, performance.now() - started);
  }
  return (messages / bestMs) * 1000;
}

let sink = 0;

function speedRows(): string[] {
  const rows = ['| message | bytes | encode msgs/s | encode uncompressed msgs/s | decodeMessage msgs/s | decodeQuery msgs/s |', '|---|---|---|---|---|---|'];
  for (const [label, message] of [
    ['A reply: 3 A answers', sampleAReply()],
    ['SRV reply: 3 SRV + 3 A additionals + OPT', sampleSrvReply()],
  ] as const) {
    const bytes = encodeMessage(message);
    const encode = perSecond(SPEED_MESSAGES, () => {
      for (let index = 0; index < SPEED_MESSAGES; index++) sink += encodeMessage(message).length;
    });
    const encodePlain = perSecond(SPEED_MESSAGES, () => {
      for (let index = 0; index < SPEED_MESSAGES; index++) sink += encodeMessage(message, { compress: false }).length;
    });
    const decode = perSecond(SPEED_MESSAGES, () => {
      for (let index = 0; index < SPEED_MESSAGES; index++) sink += decodeMessage(bytes).answers.length;
    });
    const query = perSecond(SPEED_MESSAGES, () => {
      for (let index = 0; index < SPEED_MESSAGES; index++) sink += decodeQuery(bytes).questions.length;
    });
    rows.push(`| ${label} | ${bytes.length} | ${fixed(encode)} | ${fixed(encodePlain)} | ${fixed(decode)} | ${fixed(query)} |`);
  }
  return rows;
}

function outcomeRows(report: FuzzReport): string[] {
  const keys = [...new Set([...report.decodeMessage.keys(), ...report.decodeQuery.keys(), ...report.reencode.keys()])].sort();
  const rows = ['| outcome | decodeMessage | decodeQuery | re-encode (2 per decoded message) |', '|---|---|---|---|'];
  for (const key of keys) {
    rows.push(`| ${key} | ${fixed(report.decodeMessage.get(key) ?? 0)} | ${fixed(report.decodeQuery.get(key) ?? 0)} | ${fixed(report.reencode.get(key) ?? 0)} |`);
  }
  return rows;
}

function main(): void {
  const inputs = Number(process.argv[2] ?? FUZZ_INPUTS);
  const started = performance.now();
  const report = runFuzz(inputs, SEED);
  const fuzzSeconds = (performance.now() - started) / 1000;
  console.log(`node ${process.version}, one process; fuzz seed 0x${SEED.toString(16)}, ${fixed(inputs)} inputs\n`);
  for (const row of outcomeRows(report)) console.log(row);
  console.log(`\nFuzz: ${fixed(inputs / fuzzSeconds)} inputs/s through both decoders and the re-encodes (${fuzzSeconds.toFixed(1)} s).\n`);
  console.log(`Typical replies, best of ${RUNS} runs of ${fixed(SPEED_MESSAGES)} messages:\n`);
  for (const row of speedRows()) console.log(row);
  console.log(`\n(sink ${sink > 0 ? 'ok' : 'empty'})`);
  if (report.escapes.length > 0) {
    console.log(`\nFAILED: ${report.escapes.length} throws other than DnsWireError; first ones:`);
    for (const escape of report.escapes.slice(0, 5)) console.log(`- ${escape}`);
    process.exit(1);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
