// The DNS interface answering a real resolver client: `dig` (Debian's bind9-dnsutils, installed
// by .ci/run) against a running agent process, over UDP and TCP, for every lookup form, checking
// flags, sections, TTLs and truncation. Services are registered through the HTTP catalog API.
//
// No fixed sleeps: every wait is a condition with a deadline; the agent is killed in `after`.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeMessage, encodeMessage, queryMessage, RCODE, RR_CLASS, RR_TYPE } from '../lib/dnswire.js';
import { freePort, gossipPortArgs, waitFor } from './support.js';

const projectRoot = resolve(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-dig-'));
let agent: ChildProcess | undefined;
let output = '';
let httpPort = 0;
let dnsPort = 0;

/** What dig printed, split into the parts the tests look at. */
interface DigReply {
  readonly status: string;
  readonly flags: readonly string[];
  readonly answer: readonly string[][];
  readonly authority: readonly string[][];
  readonly additional: readonly string[][];
  readonly text: string;
}

function dig(...args: string[]): DigReply {
  const result = spawnSync('dig', ['@127.0.0.1', '-p', String(dnsPort), '+noall', '+comments', '+answer', '+authority', '+additional', '+time=5', '+tries=1', ...args], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(result.status, 0, `dig ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`);
  return parseDig(result.stdout);
}

function parseDig(text: string): DigReply {
  const status = /status: ([A-Z]+)/.exec(text)?.[1] ?? '';
  const flags = (/;; flags: ([a-z ]*);/.exec(text)?.[1] ?? '').trim().split(/\s+/);
  const sections: Record<string, string[][]> = { ANSWER: [], AUTHORITY: [], ADDITIONAL: [] };
  let current: string[][] | undefined;
  for (const line of text.split('\n')) {
    const heading = /^;; (ANSWER|AUTHORITY|ADDITIONAL) SECTION:/.exec(line);
    if (heading) {
      current = sections[heading[1] ?? ''];
      continue;
    }
    if (line.trim() === '' || line.startsWith(';')) {
      if (line.trim() === '') current = undefined;
      continue;
    }
    current?.push(line.trim().split(/\s+/));
  }
  return { status, flags, answer: sections['ANSWER'] ?? [], authority: sections['AUTHORITY'] ?? [], additional: sections['ADDITIONAL'] ?? [], text };
}

async function put(path: string, body: unknown): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${httpPort}${path}`, { method: 'PUT', body: JSON.stringify(body) });
  assert.equal(response.status, 200, `${path}: ${await response.text()}`);
}

const register = (node: string, address: string, service: Record<string, unknown> | undefined, checkStatus = 'passing', meta: Record<string, string> = {}) =>
  put('/v1/catalog/register', {
    Node: node,
    Address: address,
    NodeMeta: meta,
    ...(service ? { Service: service, Check: { CheckID: `service:${String(service['ID'] ?? service['Service'])}`, Name: 'svc', Status: checkStatus, ServiceID: service['ID'] ?? service['Service'] } } : {}),
  });

before(async () => {
  httpPort = await freePort();
  dnsPort = await freePort();
  const config = join(scratch, 'dns.json');
  writeFileSync(config, JSON.stringify({ alt_domain: 'alt.test', dns_config: { enable_truncate: true, node_ttl: '10s', service_ttl: { 'web*': '15s' } } }));
  const args = ['-dev', '-node', 'dig-server', '-http-port', String(httpPort), '-dns-port', String(dnsPort), '-server-port', String(await freePort()), ...(await gossipPortArgs()), '-config-file', config, '-log-level', 'warn'];
  agent = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'bin', 'agent.ts'), ...args], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  agent.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor('the agent to register itself', async () => {
    const response = await fetch(`http://127.0.0.1:${httpPort}/v1/catalog/node/dig-server`).catch(() => undefined);
    return response?.status === 200 && (await response.text()) !== 'null' ? true : undefined;
  }, 30_000).catch((error: unknown) => assert.fail(`${String(error)}\n${output}`));
  for (let i = 1; i <= 12; i++) await register(`web-${i}`, `10.0.0.${i}`, { Service: 'web', Port: 8000 + i, Tags: i <= 4 ? ['primary'] : [] });
  await register('db-1', '10.0.1.1', { Service: 'db', Port: 5432, Address: '10.0.1.100' }, 'passing', { rack: 'r1', 'rfc1035-spf': 'v=spf1 -all' });
  await register('sick-1', '10.0.2.1', { Service: 'sick', Port: 80 }, 'critical');
  await register('warn-1', '10.0.3.1', { Service: 'api', Port: 81, Weights: { Passing: 10, Warning: 2 } }, 'warning');
  await register('v6-1', '2001:db8::1', { Service: 'six', Port: 80 });
});

after(() => {
  agent?.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});

describe('dig against a running agent', () => {
  test('A over plain UDP: three shuffled answers, TC set (enable_truncate), AA, the service TTL', () => {
    const reply = dig('+noedns', '+ignore', 'web.service.consul', 'A');
    assert.equal(reply.status, 'NOERROR');
    assert.deepEqual([...reply.flags].sort(), ['aa', 'qr', 'rd', 'tc']);
    assert.equal(reply.answer.length, 3);
    for (const record of reply.answer) {
      assert.equal(record[0], 'web.service.consul.');
      assert.equal(record[1], '15');
      assert.deepEqual(record.slice(2, 4), ['IN', 'A']);
      assert.match(record[4] ?? '', /^10\.0\.0\.\d+$/);
    }
    const orders = new Set(Array.from({ length: 8 }, () => dig('+noedns', '+ignore', 'web.service.consul', 'A').answer.map((record) => record[4]).join(',')));
    assert.ok(orders.size > 1, 'instances are shuffled between answers');
  });

  test('a truncated UDP answer makes dig retry over TCP and get every instance', () => {
    const reply = dig('+noedns', 'web.service.consul', 'A');
    assert.equal(reply.answer.length, 12);
    assert.ok(!reply.flags.includes('tc'));
  });

  test('EDNS0 (dig default) and TCP carry all instances', () => {
    const edns = dig('web.service.consul', 'A');
    assert.equal(edns.answer.length, 12);
    assert.match(edns.text, /; EDNS: version: 0, flags:; udp: 1232/);
    assert.equal(dig('+tcp', 'web.service.consul', 'A').answer.length, 12);
  });

  test('SRV: priority 1, weight, port, node target, the A record in Additional', () => {
    const reply = dig('primary.web.service.consul', 'SRV');
    assert.equal(reply.answer.length, 4);
    for (const record of reply.answer) {
      const [priority, weight, port, target] = record.slice(4);
      assert.equal(priority, '1');
      assert.equal(weight, '1');
      const index = Number(/^web-(\d+)\.node\.dc1\.consul\.$/.exec(target ?? '')?.[1]);
      assert.ok(index >= 1 && index <= 4, target);
      assert.equal(port, String(8000 + index));
      assert.ok(reply.additional.some((extra) => extra[0] === target && extra[3] === 'A' && extra[4] === `10.0.0.${index}`));
    }
  });

  test('RFC 2782 names, the warning weight and the addr target of a service address', () => {
    const rfc = dig('_web._tcp.service.consul', 'SRV');
    assert.equal(rfc.answer.length, 12);
    const api = dig('_api._tcp.service.consul', 'SRV');
    assert.equal(api.answer[0]?.[5], '2', 'a warning instance gets Weights.Warning');
    const db = dig('db.service.consul', 'SRV');
    assert.equal(db.answer[0]?.[7], '0a000164.addr.dc1.consul.');
    assert.ok(db.additional.some((extra) => extra[0] === '0a000164.addr.dc1.consul.' && extra[4] === '10.0.1.100'));
    assert.ok(db.additional.some((extra) => extra[0] === 'db-1.node.dc1.consul.' && extra[3] === 'TXT'));
  });

  test('NXDOMAIN with the SOA for an unknown service and one with no healthy instance; NODATA for AAAA', () => {
    for (const name of ['nope.service.consul', 'sick.service.consul']) {
      const reply = dig(name, 'A');
      assert.equal(reply.status, 'NXDOMAIN', name);
      assert.deepEqual(reply.authority[0]?.slice(0, 6), ['consul.', '0', 'IN', 'SOA', 'ns.consul.', 'hostmaster.consul.']);
    }
    const nodata = dig('web.service.consul', 'AAAA');
    assert.equal(nodata.status, 'NOERROR');
    assert.equal(nodata.answer.length, 0);
    assert.equal(nodata.authority[0]?.[3], 'SOA');
    assert.equal(dig('six.service.consul', 'AAAA').answer[0]?.[4], '2001:db8::1');
  });

  test('node lookups: A with the node TTL, meta TXT, case kept', () => {
    const reply = dig('DB-1.Node.Consul', 'A');
    assert.deepEqual(reply.answer[0], ['DB-1.Node.Consul.', '10', 'IN', 'A', '10.0.1.1']);
    const txt = dig('db-1.node.dc1.consul', 'TXT');
    assert.deepEqual(txt.answer.map((record) => record.slice(4).join(' ')).sort(), ['"rack=r1"', '"v=spf1 -all"']);
  });

  test('addr, PTR, SOA and NS', () => {
    assert.deepEqual(dig('0a000001.addr.dc1.consul', 'A').answer[0]?.slice(3), ['A', '10.0.0.1']);
    assert.deepEqual(dig('-x', '10.0.1.1').answer[0]?.slice(3), ['PTR', 'db-1.node.dc1.consul.']);
    const soa = dig('consul', 'SOA');
    assert.equal(soa.answer[0]?.[3], 'SOA');
    assert.deepEqual(soa.authority[0]?.slice(3), ['NS', 'dig-server.node.dc1.consul.']);
    assert.deepEqual(soa.additional.find((record) => record[3] === 'A')?.slice(0, 1), ['dig-server.node.dc1.consul.']);
    assert.deepEqual(dig('consul', 'NS').answer[0]?.slice(3), ['NS', 'dig-server.node.dc1.consul.']);
  });

  test('the alternative domain answers in its own name', () => {
    const reply = dig('db.service.alt.test', 'SRV');
    assert.equal(reply.answer[0]?.[7], '0a000164.addr.dc1.alt.test.');
  });

  test('several queries over one TCP connection', () => {
    const result = spawnSync('dig', ['@127.0.0.1', '-p', String(dnsPort), '+tcp', '+keepopen', '+noall', '+answer', 'db-1.node.consul', 'A', 'web-1.node.consul', 'A', 'web-2.node.consul', 'A'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(result.status, 0, result.stderr);
    const addresses = result.stdout.trim().split('\n').map((line) => line.trim().split(/\s+/)[4]);
    assert.deepEqual(addresses, ['10.0.1.1', '10.0.0.1', '10.0.0.2']);
  });

  test('a check turning critical removes the instance from answers', async () => {
    await register('web-12', '10.0.0.12', { Service: 'web', Port: 8012 }, 'critical');
    const reply = dig('web.service.consul', 'A');
    assert.equal(reply.answer.length, 11);
    assert.ok(!reply.answer.some((record) => record[4] === '10.0.0.12'));
  });

  test('names outside the domain are refused without recursors', () => {
    assert.equal(dig('example.com', 'A').status, 'REFUSED');
  });

  test('malformed datagrams get FORMERR or nothing, and the agent keeps answering', async () => {
    const socket = createSocket('udp4');
    const replies: Buffer[] = [];
    socket.on('message', (message) => replies.push(message));
    await new Promise<void>((resolveBind) => socket.bind(0, '127.0.0.1', resolveBind));
    try {
      const send = (bytes: Uint8Array) => new Promise<void>((resolveSend, rejectSend) => socket.send(bytes, dnsPort, '127.0.0.1', (error) => (error ? rejectSend(error) : resolveSend())));
      await send(Uint8Array.from([1, 2, 3, 4, 5])); // a runt: ignored
      await send(Uint8Array.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f, 0x61])); // a label running off the end
      const reply = await waitFor('the FORMERR answer', () => replies[0]);
      const message = decodeMessage(reply);
      assert.equal(message.header.id, 0x1234);
      assert.equal(message.header.rcode, RCODE.FORMERR);
      assert.equal(replies.length, 1, 'the runt got no answer');
    } finally {
      socket.close();
    }
    assert.equal(dig('db-1.node.consul', 'A').answer[0]?.[4], '10.0.1.1');
  });

  test('over TCP, a malformed message gets FORMERR and the connection goes on', async () => {
    const query = encodeMessage(queryMessage(7, { name: 'db-1.node.consul.', type: RR_TYPE.A, class: RR_CLASS.IN }));
    const garbage = Uint8Array.from([0, 9, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c]); // a pointer to itself
    const frame = (bytes: Uint8Array) => Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes]);
    const socket = connect(dnsPort, '127.0.0.1');
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    try {
      socket.write(Buffer.concat([frame(garbage), frame(query)]));
      const messages = await waitFor('two framed answers', () => {
        const out: Uint8Array[] = [];
        let at = 0;
        while (at + 2 <= received.length && at + 2 + received.readUInt16BE(at) <= received.length) {
          out.push(received.subarray(at + 2, at + 2 + received.readUInt16BE(at)));
          at += 2 + received.readUInt16BE(at);
        }
        return out.length === 2 ? out : undefined;
      });
      assert.equal(decodeMessage(messages[0] as Uint8Array).header.rcode, RCODE.FORMERR);
      const answer = decodeMessage(messages[1] as Uint8Array);
      assert.equal(answer.header.id, 7);
      assert.deepEqual(answer.answers[0]?.data, { kind: 'a', address: '10.0.1.1' });
    } finally {
      socket.destroy();
    }
  });
});
