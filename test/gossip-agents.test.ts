// Gossip between real agent processes (issue 8): five client agents on 127.0.0.2-6, each on the
// default LAN port 8301 of its own loopback address, joined through the first with -retry-join.
// Two are killed with SIGKILL: the other three list them as failed within memberlist's LAN
// detection bound; one of them is force-left (PUT /v1/agent/force-leave) and becomes left.
// Restarted, they join again and every agent lists all five alive. Last, one leaves gracefully
// (PUT /v1/agent/leave) and is listed as left, not failed.
//
// No fixed sleeps: every wait is a condition with a deadline. Every process started is killed
// in `after`, also when an assertion fails.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { httpRequest, waitFor } from './support.js';

const projectRoot = resolve(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-gossip-agents-'));
const running = new Set<ChildProcess>();
/** The HTTP port of every agent, each on its own loopback address. */
const HTTP_PORT = 18500;
/**
 * LAN profile, 5 members: a failed member is suspected within a probe round or two and
 * declared dead after the suspicion timeout, which Lifeguard shrinks from 24 s towards 4 s as
 * the other members confirm it. Generous, so a loaded CI machine does not fail the test.
 */
const DETECTION_DEADLINE_MS = 40_000;

after(() => {
  for (const child of running) child.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});

interface AgentProcess {
  readonly name: string;
  readonly ip: string;
  child: ChildProcess | undefined;
  output: string;
}

function startAgent(agent: AgentProcess, seed: string, extra: readonly string[] = []): void {
  const args = [
    '--import', 'tsx', join(projectRoot, 'bin', 'agent.ts'),
    '-node', agent.name, '-bind', agent.ip, '-client', agent.ip, '-data-dir', join(scratch, agent.name),
    '-http-port', String(HTTP_PORT), '-dns-port', '-1', '-retry-join', seed, '-retry-interval', '200ms', ...extra,
  ];
  const child = spawn(process.execPath, args, { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  agent.child = child;
  agent.output = '';
  child.stdout?.on('data', (chunk: Buffer) => (agent.output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (agent.output += chunk.toString()));
  child.on('exit', () => running.delete(child));
}

async function kill(agent: AgentProcess): Promise<void> {
  const child = agent.child;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  child.kill('SIGKILL');
  await exited;
}

/** /v1/agent/members of `agent`: name -> serf status (1 alive, 3 left, 4 failed). */
async function members(agent: AgentProcess): Promise<Map<string, number>> {
  const reply = await httpRequest(HTTP_PORT, 'GET', '/v1/agent/members', agent.ip);
  if (reply.status !== 200) throw new Error(`${agent.name}: HTTP ${reply.status}`);
  return new Map((JSON.parse(reply.body) as { Name: string; Status: number }[]).map((member) => [member.Name, member.Status]));
}

/** PUT /v1/event/fire/<nameAndQuery> with `payload` as the body, on the agent at `ip`. */
function fireEvent(ip: string, nameAndQuery: string, payload: string): Promise<{ status: number; body: string }> {
  return new Promise((resolveFire, rejectFire) => {
    const req = request({ host: ip, port: HTTP_PORT, method: 'PUT', path: `/v1/event/fire/${nameAndQuery}`, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolveFire({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', rejectFire);
    req.end(payload);
  });
}

async function everyoneSees(observers: readonly AgentProcess[], expected: Record<string, number>): Promise<true | undefined> {
  for (const observer of observers) {
    const seen = await members(observer);
    if (Object.entries(expected).some(([name, status]) => seen.get(name) !== status)) return undefined;
  }
  return true;
}

test('five agents gossip: two killed are failed everywhere, restarted they rejoin, a leave is a leave', { timeout: 180_000 }, async () => {
  const agents: AgentProcess[] = [2, 3, 4, 5, 6].map((host) => ({ name: `g${host}`, ip: `127.0.0.${host}`, child: undefined, output: '' }));
  const seed = `${agents[0]!.ip}:8301`;
  for (const agent of agents) startAgent(agent, seed);
  const allAlive = Object.fromEntries(agents.map((agent) => [agent.name, 1]));
  await waitFor('every agent to list all five alive', () => everyoneSees(agents, allAlive), 30_000).catch((error: unknown) => {
    throw new Error(`${String(error)}\n${agents.map((agent) => `--- ${agent.name}\n${agent.output.slice(-1_500)}`).join('\n')}`);
  });

  const [victimA, victimB] = [agents[3]!, agents[4]!];
  const survivors = agents.slice(0, 3);
  const killedAt = Date.now();
  await Promise.all([kill(victimA), kill(victimB)]);
  await waitFor('the survivors to list both killed agents as failed', () => everyoneSees(survivors, { [victimA.name]: 4, [victimB.name]: 4 }), DETECTION_DEADLINE_MS);
  const detectionMs = Date.now() - killedAt;
  assert.ok(detectionMs < DETECTION_DEADLINE_MS, `detected after ${detectionMs} ms`);

  // force-leave: a failed member becomes left everywhere; an unknown name is an error.
  const forced = await httpRequest(HTTP_PORT, 'PUT', `/v1/agent/force-leave/${victimB.name}`, survivors[0]!.ip);
  assert.equal(forced.status, 200);
  await waitFor('the survivors to list the force-left agent as left', () => everyoneSees(survivors, { [victimB.name]: 3 }), 10_000);
  const unknown = await httpRequest(HTTP_PORT, 'PUT', '/v1/agent/force-leave/no-such-node', survivors[0]!.ip);
  assert.equal(unknown.status, 500);

  startAgent(victimA, seed);
  startAgent(victimB, seed);
  await waitFor('every agent to list all five alive again', () => everyoneSees(agents, allAlive), 30_000);

  const leaver = agents[2]!;
  const left = await httpRequest(HTTP_PORT, 'PUT', '/v1/agent/leave', leaver.ip);
  assert.equal(left.status, 200);
  const others = agents.filter((agent) => agent !== leaver);
  await waitFor('the others to list the leaver as left', () => everyoneSees(others, { [leaver.name]: 3 }), 20_000);
});

test('PUT /v1/agent/join joins the LAN pool (a join nobody answers is a 500); user events cross it, filtered by node; a restarted agent rejoins from its serf snapshot', { timeout: 60_000 }, async () => {
  const lone: AgentProcess = { name: 'j7', ip: '127.0.0.7', child: undefined, output: '' };
  const other: AgentProcess = { name: 'j8', ip: '127.0.0.8', child: undefined, output: '' };
  // Each seeds itself: nothing joins until asked.
  startAgent(lone, `${lone.ip}:8301`);
  startAgent(other, `${other.ip}:8301`);
  try {
    await waitFor('both agents to answer', async () => ((await members(lone)).has('j7') && (await members(other)).has('j8') ? true : undefined), 30_000);
    const joined = await httpRequest(HTTP_PORT, 'PUT', `/v1/agent/join/${other.ip}`, lone.ip);
    assert.equal(joined.status, 200, joined.body);
    await waitFor('both to list each other', () => everyoneSees([lone, other], { j7: 1, j8: 1 }), 10_000);
    const refused = await httpRequest(HTTP_PORT, 'PUT', '/v1/agent/join/127.0.0.9:1', lone.ip);
    assert.equal(refused.status, 500);
    assert.match(refused.body, /Failed to join 127\.0\.0\.9:1/);

    // User events ride on serf: fired on one agent, listed on the agents their filters select.
    const before = await httpRequest(HTTP_PORT, 'GET', '/v1/event/list', other.ip);
    assert.equal(before.headers['x-consul-index'], '1');
    const blocked = httpRequest(HTTP_PORT, 'GET', '/v1/event/list?index=1&wait=20s', other.ip);
    const fired = await fireEvent(lone.ip, 'deploy?node=j8', 'v1');
    assert.equal(fired.status, 200, fired.body);
    const event = JSON.parse(fired.body) as { ID: string; Name: string; Payload: string; NodeFilter: string; Version: number; LTime: number };
    assert.deepEqual({ Name: event.Name, Payload: event.Payload, NodeFilter: event.NodeFilter, Version: event.Version, LTime: event.LTime }, { Name: 'deploy', Payload: 'djE=', NodeFilter: 'j8', Version: 1, LTime: 0 });
    const woken = await blocked;
    const listed = JSON.parse(woken.body) as { ID: string; LTime: number }[];
    assert.deepEqual(listed.map((entry) => entry.ID), [event.ID]);
    assert.ok(listed[0]!.LTime > 0);
    assert.notEqual(woken.headers['x-consul-index'], '1');
    // The node filter names j8: j7 fired it but does not keep it.
    assert.deepEqual(JSON.parse((await httpRequest(HTTP_PORT, 'GET', '/v1/event/list', lone.ip)).body), []);
    assert.equal((await fireEvent(lone.ip, 'bad?tag=x', '')).status, 500);

    // serf's snapshot: killed and restarted with nothing to join but itself, j8 rejoins j7,
    // which it knew alive, from <data-dir>/serf/local.snapshot.
    await kill(other);
    await waitFor('j7 to list j8 as failed', () => everyoneSees([lone], { j8: 4 }), 40_000);
    startAgent(other, `${other.ip}:8301`);
    await waitFor('j8 to rejoin from its snapshot', () => everyoneSees([lone, other], { j7: 1, j8: 1 }), 30_000);
    assert.match(other.output, /Attempting re-join to previously known nodes/);
  } finally {
    await kill(lone);
    await kill(other);
  }
});

test("the LAN pool refuses another datacenter: a join fails with Consul's merge-delegate text and neither lists the other", { timeout: 60_000 }, async () => {
  const east: AgentProcess = { name: 'm14', ip: '127.0.0.14', child: undefined, output: '' };
  const west: AgentProcess = { name: 'm15', ip: '127.0.0.15', child: undefined, output: '' };
  startAgent(east, `${east.ip}:8301`);
  startAgent(west, `${west.ip}:8301`, ['-datacenter', 'dc2']);
  try {
    await waitFor('both agents to answer', async () => ((await members(east)).has('m14') && (await members(west)).has('m15') ? true : undefined), 30_000);
    const joined = await httpRequest(HTTP_PORT, 'PUT', `/v1/agent/join/${west.ip}`, east.ip);
    assert.equal(joined.status, 500);
    assert.match(joined.body, /Failed to join 127\.0\.0\.15:8301: Member 'm15' part of wrong datacenter 'dc2'/);
    assert.deepEqual([...(await members(east)).keys()], ['m14']);
    assert.deepEqual([...(await members(west)).keys()], ['m15']);
  } finally {
    await kill(east);
    await kill(west);
  }
});

test('the leader reconciles the pool into the catalog: clients registered with serfHealth, a killed one critical, a leaver deregistered', { timeout: 90_000 }, async () => {
  const server: AgentProcess = { name: 'r16', ip: '127.0.0.16', child: undefined, output: '' };
  const killed: AgentProcess = { name: 'r17', ip: '127.0.0.17', child: undefined, output: '' };
  const leaver: AgentProcess = { name: 'r18', ip: '127.0.0.18', child: undefined, output: '' };
  const seed = `${server.ip}:8301`;
  startAgent(server, seed, ['-server', '-bootstrap']);
  startAgent(killed, seed);
  startAgent(leaver, seed);
  /** The server's catalog view: node -> serfHealth status and output. */
  const serfHealth = async (): Promise<Map<string, { Status: string; Output: string }>> => {
    const reply = await httpRequest(HTTP_PORT, 'GET', '/v1/health/state/any', server.ip);
    if (reply.status !== 200) throw new Error(`HTTP ${reply.status}: ${reply.body}`);
    const checks = JSON.parse(reply.body) as { Node: string; CheckID: string; Status: string; Output: string }[];
    return new Map(checks.filter((check) => check.CheckID === 'serfHealth').map((check) => [check.Node, { Status: check.Status, Output: check.Output }]));
  };
  try {
    await waitFor('the three nodes in the catalog with serfHealth passing', async () => {
      const health = await serfHealth().catch(() => new Map());
      return ['r16', 'r17', 'r18'].every((name) => health.get(name)?.Status === 'passing') ? true : undefined;
    }, 40_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${[server, killed, leaver].map((agent) => `--- ${agent.name}\n${agent.output.slice(-1_500)}`).join('\n')}`);
    });
    const nodes = JSON.parse((await httpRequest(HTTP_PORT, 'GET', '/v1/catalog/nodes', server.ip)).body) as { Node: string; Address: string }[];
    assert.deepEqual(nodes.map((node) => [node.Node, node.Address]), [['r16', '127.0.0.16'], ['r17', '127.0.0.17'], ['r18', '127.0.0.18']]);

    await kill(killed);
    await waitFor('the killed client critical in the catalog', async () => ((await serfHealth()).get('r17')?.Status === 'critical' ? true : undefined), DETECTION_DEADLINE_MS);
    assert.equal((await serfHealth()).get('r17')?.Output, 'Agent not live or unreachable');

    assert.equal((await httpRequest(HTTP_PORT, 'PUT', '/v1/agent/leave', leaver.ip)).status, 200);
    await waitFor('the leaver deregistered', async () => {
      const names = (JSON.parse((await httpRequest(HTTP_PORT, 'GET', '/v1/catalog/nodes', server.ip)).body) as { Node: string }[]).map((node) => node.Node);
      return names.includes('r18') ? undefined : names;
    }, 20_000);
    assert.equal((await serfHealth()).get('r16')?.Status, 'passing', 'the leader itself stays');
  } finally {
    await kill(server);
    await kill(killed);
    await kill(leaver);
  }
});

test('two datacenters over the WAN pool: servers join with ?wan=1 and each lists both datacenters, its own first', { timeout: 60_000 }, async () => {
  const east: AgentProcess = { name: 'w19', ip: '127.0.0.19', child: undefined, output: '' };
  const west: AgentProcess = { name: 'w20', ip: '127.0.0.20', child: undefined, output: '' };
  startAgent(east, `${east.ip}:8301`, ['-server', '-bootstrap', '-datacenter', 'east']);
  startAgent(west, `${west.ip}:8301`, ['-server', '-bootstrap', '-datacenter', 'west']);
  const datacenters = async (agent: AgentProcess): Promise<string[]> => JSON.parse((await httpRequest(HTTP_PORT, 'GET', '/v1/catalog/datacenters', agent.ip)).body) as string[];
  try {
    await waitFor('both servers to answer', async () => ((await datacenters(east).catch(() => [])).length === 1 && (await datacenters(west).catch(() => [])).length === 1 ? true : undefined), 30_000);
    assert.deepEqual(await datacenters(east), ['east']);
    const joined = await httpRequest(HTTP_PORT, 'PUT', `/v1/agent/join/${west.ip}:8302?wan=1`, east.ip);
    assert.equal(joined.status, 200, joined.body);
    await waitFor('each to know both datacenters', async () => ((await datacenters(east)).length === 2 && (await datacenters(west)).length === 2 ? true : undefined), 20_000);
    assert.deepEqual(await datacenters(east), ['east', 'west']);
    assert.deepEqual(await datacenters(west), ['west', 'east']);
    const wanMembers = JSON.parse((await httpRequest(HTTP_PORT, 'GET', '/v1/agent/members?wan=1', east.ip)).body) as { Name: string }[];
    assert.deepEqual(wanMembers.map((member) => member.Name).sort(), ['w19.east', 'w20.west']);
  } finally {
    await kill(east);
    await kill(west);
  }
});

test('the gossip keyring: list, install, use and remove a key across the pool, kept in the data dir across a restart', { timeout: 90_000 }, async () => {
  const keyA = Buffer.alloc(32, 1).toString('base64');
  const keyB = Buffer.alloc(32, 2).toString('base64');
  const first: AgentProcess = { name: 'k10', ip: '127.0.0.10', child: undefined, output: '' };
  const second: AgentProcess = { name: 'k11', ip: '127.0.0.11', child: undefined, output: '' };
  const seed = `${first.ip}:8301`;
  startAgent(first, seed, ['-encrypt', keyA]);
  startAgent(second, seed, ['-encrypt', keyA]);
  const keyring = async (method: string, body?: string, query = ''): Promise<{ status: number; body: string }> =>
    new Promise((resolveCall, rejectCall) => {
      // Content-Length set by hand: node's client sends a DELETE body unframed otherwise.
      const headers = body === undefined ? {} : { 'Content-Length': String(Buffer.byteLength(body)) };
      const req = request({ host: first.ip, port: HTTP_PORT, method, path: `/v1/operator/keyring${query}`, agent: false, headers }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolveCall({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', rejectCall);
      req.end(body);
    });
  const keysOf = async (): Promise<{ Keys: Record<string, number>; PrimaryKeys: Record<string, number>; NumNodes: number }> => {
    const reply = await keyring('GET');
    assert.equal(reply.status, 200, reply.body);
    return (JSON.parse(reply.body) as { Keys: Record<string, number>; PrimaryKeys: Record<string, number>; NumNodes: number }[])[0]!;
  };
  try {
    await waitFor('the encrypted pair to see each other', () => everyoneSees([first, second], { k10: 1, k11: 1 }), 30_000);
    assert.deepEqual(await keysOf(), { ...(await keysOf()), Keys: { [keyA]: 2 }, PrimaryKeys: { [keyA]: 2 }, NumNodes: 2 });
    assert.equal((await keyring('POST', JSON.stringify({ Key: keyB }))).status, 200);
    assert.deepEqual((await keysOf()).Keys, { [keyA]: 2, [keyB]: 2 });
    assert.equal((await keyring('PUT', JSON.stringify({ Key: keyB }))).status, 200);
    assert.deepEqual((await keysOf()).PrimaryKeys, { [keyB]: 2 });
    const removePrimary = await keyring('DELETE', JSON.stringify({ Key: keyB }));
    assert.equal(removePrimary.status, 500);
    assert.match(removePrimary.body, /dc1 \(LAN\) error: 2\/2 nodes reported failure/);
    assert.match(removePrimary.body, /k10: Removing the primary key is not allowed/);
    assert.equal((await keyring('DELETE', JSON.stringify({ Key: keyA }))).status, 200);
    assert.deepEqual((await keysOf()).Keys, { [keyB]: 2 });
    const local = JSON.parse((await keyring('GET', undefined, '?local-only=true')).body) as { Keys: Record<string, number>; NumNodes: number }[];
    assert.deepEqual(local.map((entry) => [entry.Keys, entry.NumNodes]), [[{ [keyB]: 1 }, 1]]);
    // Restarted with the old -encrypt key, the agent uses its keyring file (key B) and rejoins.
    await kill(second);
    await waitFor('k11 to be failed', () => everyoneSees([first], { k11: 4 }), 40_000);
    startAgent(second, seed, ['-encrypt', keyA]);
    await waitFor('k11 to rejoin with the keyring from its data dir', () => everyoneSees([first, second], { k10: 1, k11: 1 }), 30_000);
  } finally {
    await kill(first);
    await kill(second);
  }
});
