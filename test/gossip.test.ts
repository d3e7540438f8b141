// The gossip transport (lib/gossip.ts) around the memberlist core (lib/swim.ts) and the serf core
// (lib/serf.ts), over real loopback sockets: two consul-ts nodes; consul-ts with a real
// hashicorp/memberlist peer (test/interop/memberlist_peer.go, built here from Debian's
// golang-github-hashicorp-memberlist-dev in GOPATH mode); and consul-ts's serf layer with real
// `serf agent` processes (Debian's serf). `.ci/run` installs golang-go, that package and serf.
//
// Timings use memberlist's Local profile with a shorter probe interval on our side, so a failure
// is detected in a few seconds; every wait is a condition with a deadline.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { Keyring } from '../lib/gossipcrypto.js';
import { GossipTransport, SerfPool, swimAddress } from '../lib/gossip.js';
import type { SerfEvent } from '../lib/serf.js';
import { createLogger, MemorySink } from '../lib/log.js';
import { localConfig, SwimNode, type SwimConfig } from '../lib/swim.js';
import { memberEventsDelegate } from './sim/swimsim.js';
import { freePort, mulberry32, waitFor } from './support.js';

const logger = createLogger({ level: 'error', json: false, nowMs: () => 0, sink: new MemorySink() });
const GOSSIP_KEY = Buffer.alloc(32, 7).toString('base64');

interface LocalNode {
  readonly name: string;
  readonly node: SwimNode;
  readonly transport: GossipTransport;
  /** Member events seen, as `join <name>`, `leave <name>`, `update <name>`. */
  readonly events: string[];
}

/**
 * A consul-ts memberlist node on loopback. Without a serf layer it speaks delegate protocol 0, as
 * a plain memberlist does (memberlist refuses a join whose delegate versions do not overlap).
 */
async function startNode(name: string, options: { key?: string } = {}): Promise<LocalNode> {
  const transport = await GossipTransport.listen({ bindHost: '127.0.0.1', port: 0, logger, streamTimeoutMs: 2_000 });
  const address = swimAddress('127.0.0.1', transport.port)!;
  const base = localConfig(name, address);
  const keyBytes = options.key === undefined ? undefined : Buffer.from(options.key, 'base64');
  const keyring = keyBytes === undefined ? undefined : new Keyring([keyBytes], keyBytes);
  const config: SwimConfig = { ...base, delegateVersions: { min: 0, max: 0, cur: 0 }, probeIntervalMs: 300, probeTimeoutMs: 150, gossipIntervalMs: 50, pushPullIntervalMs: 5_000, suspicionMult: 2, keyring, verifyIncoming: keyring !== undefined, verifyOutgoing: keyring !== undefined };
  const events: string[] = [];
  const delegate = memberEventsDelegate((kind, member) => void events.push(`${kind} ${member.name}`));
  const rng = mulberry32(name.length * 7919 + transport.port);
  const node = new SwimNode(config, delegate, rng, (count) => randomBytes(count), Date.now());
  transport.start(node);
  return { name, node, transport, events };
}

/** A member's state as seen by `node` (0 alive, 1 suspect, 2 dead, 3 left), or undefined. */
function stateOf(node: SwimNode, name: string): number | undefined {
  return node.members().find((member) => member.name === name)?.state;
}

describe('gossip between consul-ts nodes over loopback', () => {
  test('a join makes both nodes list each other alive; a node that stops answering is declared dead', async () => {
    const a = await startNode('node-a');
    const b = await startNode('node-b');
    try {
      b.transport.run((nowMs) => b.node.join([swimAddress('127.0.0.1', a.transport.port)!], nowMs));
      await waitFor('b to list a alive', () => (stateOf(b.node, 'node-a') === 0 ? true : undefined), 5_000);
      await waitFor('a to list b alive', () => (stateOf(a.node, 'node-b') === 0 ? true : undefined), 5_000);
      await b.transport.close();
      await waitFor('a to declare b dead', () => (stateOf(a.node, 'node-b') === 2 ? true : undefined), 15_000);
      assert.ok(a.events.includes('leave node-b'));
    } finally {
      await a.transport.close();
      await b.transport.close();
    }
  });

  test('a graceful leave is seen as left, not dead', async () => {
    const a = await startNode('node-c');
    const b = await startNode('node-d');
    try {
      b.transport.run((nowMs) => b.node.join([swimAddress('127.0.0.1', a.transport.port)!], nowMs));
      await waitFor('a to list d alive', () => (stateOf(a.node, 'node-d') === 0 ? true : undefined), 5_000);
      b.transport.run((nowMs) => b.node.leave(nowMs));
      await waitFor('d to finish broadcasting its leave', () => (b.node.isLeaveBroadcastDone() ? true : undefined), 5_000);
      await waitFor('c to list d as left', () => (stateOf(a.node, 'node-d') === 3 ? true : undefined), 5_000);
    } finally {
      await a.transport.close();
      await b.transport.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A real memberlist peer

const GO_PEER_SOURCE = resolve(import.meta.dirname, 'interop', 'memberlist_peer.go');
let goPeerBinary = '';
let goPeerDir = '';

/** A running Go memberlist peer, read line by line (JSON events) and driven through stdin. */
class GoPeer {
  readonly lines: Record<string, unknown>[] = [];
  private constructor(readonly child: ChildProcess, readonly port: number) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        this.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        this.lines.push({ event: 'unparsed', line });
      }
    });
  }

  static async start(name: string, options: { join?: number; key?: string } = {}): Promise<GoPeer> {
    const port = await freePort();
    const args = ['-name', name, '-bind', '127.0.0.1', '-port', String(port)];
    if (options.join !== undefined) args.push('-join', `127.0.0.1:${options.join}`);
    if (options.key !== undefined) args.push('-key', options.key);
    const child = spawn(goPeerBinary, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const peer = new GoPeer(child, port);
    await waitFor(`the Go peer ${name} to start`, () => (peer.lines.some((line) => line['event'] === 'ready') ? true : undefined), 10_000);
    return peer;
  }

  /** The peer's member list: name -> memberlist state number. */
  async members(): Promise<Map<string, number>> {
    const before = this.lines.length;
    this.child.stdin!.write('members\n');
    const reply = await waitFor('the Go peer to list members', () => this.lines.slice(before).find((line) => line['event'] === 'members'), 5_000);
    return new Map((reply['members'] as { name: string; state: number }[]).map((member) => [member.name, member.state]));
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolveExit) => this.child.once('exit', () => resolveExit()));
    this.child.kill('SIGKILL');
    await exited;
  }
}

describe('interoperability with hashicorp/memberlist 0.2.2 (Debian)', () => {
  before(() => {
    goPeerDir = mkdtempSync(join(tmpdir(), 'consul-ts-gopeer-'));
    goPeerBinary = join(goPeerDir, 'memberlist_peer');
    const build = spawnSync('go', ['build', '-o', goPeerBinary, GO_PEER_SOURCE], {
      env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOPROXY: 'off', CGO_ENABLED: '0', GOCACHE: join(goPeerDir, 'cache') },
      encoding: 'utf8',
    });
    if (build.error !== undefined || build.status !== 0) {
      throw new Error(`building the Go memberlist peer failed (apt-get install golang-go golang-github-hashicorp-memberlist-dev): ${build.error?.message ?? build.stderr}`);
    }
  });
  after(() => rmSync(goPeerDir, { recursive: true, force: true }));

  for (const encrypted of [false, true]) {
    const key = encrypted ? GOSSIP_KEY : undefined;
    const label = encrypted ? ' (encrypted)' : '';
    test(`we join a Go peer and it joins us: both list each other alive${label}`, async () => {
      const ours = await startNode('ts-1', { key });
      const goJoiner = await GoPeer.start('go-joiner', { join: ours.transport.port, key });
      const goJoined = await GoPeer.start('go-joined', { key });
      try {
        await waitFor('us to list the joining Go peer alive', () => (stateOf(ours.node, 'go-joiner') === 0 ? true : undefined), 10_000);
        ours.transport.run((nowMs) => ours.node.join([swimAddress('127.0.0.1', goJoined.port)!], nowMs));
        await waitFor('us to list the joined Go peer alive', () => (stateOf(ours.node, 'go-joined') === 0 ? true : undefined), 10_000);
        await waitFor('the Go peers to list us and each other alive', async () => {
          const [joiner, joined] = [await goJoiner.members(), await goJoined.members()];
          return joiner.get('ts-1') === 0 && joined.get('ts-1') === 0 && joiner.get('go-joined') === 0 ? true : undefined;
        }, 15_000);
      } finally {
        await goJoiner.stop();
        await goJoined.stop();
        await ours.transport.close();
      }
    });
  }

  test('a kill -9 of the Go peer is detected as dead; our leave is seen by it as a leave', async () => {
    const ours = await startNode('ts-2');
    const leaver = await startNode('ts-3');
    const go = await GoPeer.start('go-victim', { join: ours.transport.port });
    try {
      leaver.transport.run((nowMs) => leaver.node.join([swimAddress('127.0.0.1', go.port)!], nowMs));
      await waitFor('everyone to list everyone', async () => {
        const members = await go.members();
        return members.get('ts-2') === 0 && members.get('ts-3') === 0 && stateOf(ours.node, 'ts-3') === 0 ? true : undefined;
      }, 15_000);
      leaver.transport.run((nowMs) => leaver.node.leave(nowMs));
      await waitFor('the Go peer to see ts-3 leave', () => (go.lines.some((line) => line['event'] === 'leave' && line['node'] === 'ts-3') ? true : undefined), 10_000);
      go.kill();
      await waitFor('us to declare the killed Go peer dead', () => (stateOf(ours.node, 'go-victim') === 2 ? true : undefined), 20_000);
    } finally {
      await go.stop();
      await leaver.transport.close();
      await ours.transport.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A real serf agent (Debian's `serf`), against our serf layer (lib/serf.ts) in a SerfPool

/** A running `serf agent`, its output kept, driven with the serf CLI over its RPC port. */
class SerfAgent {
  output = '';
  private constructor(readonly child: ChildProcess, readonly port: number, readonly rpcPort: number) {
    child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
  }

  static async start(name: string, options: { join?: number; key?: string } = {}): Promise<SerfAgent> {
    const [port, rpcPort] = [await freePort(), await freePort()];
    const args = ['agent', '-node', name, '-bind', `127.0.0.1:${port}`, '-rpc-addr', `127.0.0.1:${rpcPort}`, '-tag', 'role=web', '-log-level', 'debug'];
    if (options.join !== undefined) args.push('-join', `127.0.0.1:${options.join}`);
    if (options.key !== undefined) args.push('-encrypt', options.key);
    const agent = new SerfAgent(spawn('serf', args, { stdio: ['ignore', 'pipe', 'pipe'] }), port, rpcPort);
    await waitFor(`serf agent ${name} to answer RPC`, () => (agent.cli('members').status === 0 ? true : undefined), 10_000);
    return agent;
  }

  cli(...args: string[]): { status: number | null; stdout: string } {
    const result = spawnSync('serf', [args[0]!, '-rpc-addr', `127.0.0.1:${this.rpcPort}`, ...args.slice(1)], { encoding: 'utf8' });
    return { status: result.status, stdout: result.stdout ?? '' };
  }

  /** `serf members -format json`: name -> { status, tags }. */
  members(): Map<string, { status: string; tags: Record<string, string> }> {
    const listed = JSON.parse(this.cli('members', '-format', 'json').stdout) as { members: { name: string; status: string; tags: Record<string, string> }[] };
    return new Map(listed.members.map((member) => [member.name, { status: member.status, tags: member.tags }]));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolveExit) => this.child.once('exit', () => resolveExit()));
    this.child.kill('SIGKILL');
    await exited;
  }
}

async function startPool(name: string, key?: string): Promise<{ pool: SerfPool; events: SerfEvent[] }> {
  const events: SerfEvent[] = [];
  const keyBytes = key === undefined ? undefined : Buffer.from(key, 'base64');
  const pool = await SerfPool.start({
    bindHost: '127.0.0.1', port: 0, nodeName: name, tags: new Map([['role', 'node'], ['dc', 'dc1']]), pool: 'lan', logger,
    keyring: keyBytes === undefined ? undefined : new Keyring([keyBytes], keyBytes),
    memberlist: { probeIntervalMs: 300, probeTimeoutMs: 150, suspicionMult: 2 },
    onEvent: (event) => events.push(event),
  });
  return { pool, events };
}

/** Our member list: name -> serf status number (1 alive, 2 leaving, 3 left, 4 failed). */
function serfStatus(pool: SerfPool, name: string): number | undefined {
  return pool.serf.membersList().find((member) => member.name === name)?.status;
}

function userEvents(events: readonly SerfEvent[]): string[] {
  return events.flatMap((event) => (event.kind === 'user' ? [`${event.name}=${Buffer.from(event.payload).toString()}`] : []));
}

describe('interoperability with a serf agent (Debian serf)', () => {
  for (const encrypted of [false, true]) {
    const key = encrypted ? GOSSIP_KEY : undefined;
    const label = encrypted ? ' (encrypted)' : '';
    test(`a serf agent joins us and we join another: members, tags and user events cross both ways${label}`, async () => {
      const { pool, events } = await startPool('ts-serf', key);
      const joiner = await SerfAgent.start('serf-joiner', { join: pool.transport.port, key });
      const joined = await SerfAgent.start('serf-joined', { key });
      try {
        pool.join([swimAddress('127.0.0.1', joined.port)!]);
        await waitFor('us to list both serf agents alive', () => (serfStatus(pool, 'serf-joiner') === 1 && serfStatus(pool, 'serf-joined') === 1 ? true : undefined), 10_000);
        assert.deepEqual(Object.fromEntries(pool.serf.member('serf-joiner')!.tags), { role: 'web' });
        await waitFor('the serf agents to list us alive with our tags', () => {
          const ours = joined.members().get('ts-serf');
          return ours?.status === 'alive' && joiner.members().get('ts-serf')?.status === 'alive' && ours.tags['dc'] === 'dc1' && ours.tags['role'] === 'node' ? true : undefined;
        }, 10_000);
        assert.equal(joiner.cli('event', 'deploy', 'v1').status, 0);
        await waitFor('the serf user event to reach us', () => (userEvents(events).includes('deploy=v1') ? true : undefined), 10_000);
        pool.userEvent('ours', Buffer.from('x'), false);
        await waitFor('our user event to reach both serf agents', () => (joiner.output.includes('Received event: user-event: ours') && joined.output.includes('Received event: user-event: ours') ? true : undefined), 10_000);
      } finally {
        await joiner.stop();
        await joined.stop();
        await pool.close();
      }
    });
  }

  test('a kill -9 of the serf agent makes it failed here; our graceful leave makes us left there', async () => {
    const { pool, events } = await startPool('ts-leaver');
    const watcher = await startPool('ts-watcher');
    const agent = await SerfAgent.start('serf-victim', { join: pool.transport.port });
    try {
      watcher.pool.join([swimAddress('127.0.0.1', agent.port)!]);
      await waitFor('the serf agent to list both of us', () => {
        const members = agent.members();
        return members.get('ts-leaver')?.status === 'alive' && members.get('ts-watcher')?.status === 'alive' ? true : undefined;
      }, 10_000);
      await pool.leave(10_000);
      assert.equal(pool.serf.leaveStatus().phase, 'done');
      await waitFor('the serf agent to list ts-leaver as left', () => (agent.members().get('ts-leaver')?.status === 'left' ? true : undefined), 10_000);
      await agent.stop();
      await waitFor('the watcher to list the killed agent as failed', () => (serfStatus(watcher.pool, 'serf-victim') === 4 ? true : undefined), 20_000);
      assert.ok(watcher.events.some((event) => event.kind === 'member' && event.type === 'member-failed' && event.members.some((member) => member.name === 'serf-victim')));
      assert.ok(events.some((event) => event.kind === 'member' && event.type === 'member-join'));
    } finally {
      await agent.stop();
      await watcher.pool.close();
      await pool.close();
    }
  });
});
