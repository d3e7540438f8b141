// The multi-process test (issue 4; TESTING.md R4 in miniature): three real agent processes from
// the built dist/, a writer sending KVS.Apply over the server port to whoever leads, `kill -9` of
// the leader mid-load, a restart from the same data dir that must catch up by InstallSnapshot
// (the logs are compacted far past it), and then: every acknowledged write is on all three
// servers, and nothing that was never sent is anywhere. Last, the leader leaves gracefully and
// hands leadership over (TimeoutNow) instead of letting the others wait out an election.
//
// No fixed sleeps: every wait is a condition with a deadline. Every process started is killed
// in `after`, also when an assertion fails.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { leaderFromNotLeaderText } from '../lib/query.js';
import type { MsgpackValue } from '../lib/msgpack.js';
import { RpcClient, RpcError } from '../lib/rpc.js';
import { freePort, waitFor } from './support.js';

const projectRoot = resolve(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-cluster-'));
const buildDir = join(scratch, 'build');
const running = new Set<ChildProcess>();

/** Acknowledged writes before the kill: past the snapshot threshold, so every server compacts. */
const WRITES_BEFORE_KILL = 80;
/** Acknowledged writes by the new leader while the old one is down: enough to compact past it. */
const WRITES_WHILE_DOWN = 160;
/** Acknowledged writes after the restart, while the restarted server catches up. */
const WRITES_AFTER_RESTART = 20;
const SNAPSHOT_THRESHOLD = 64;
const TRAILING_LOGS = 16;
const CALL_TIMEOUT_MS = 2_000;

before(() => {
  const build = spawnSync(process.execPath, ['--import', 'tsx', join(projectRoot, 'scripts', 'build.ts'), buildDir], { cwd: projectRoot, encoding: 'utf8' });
  assert.equal(build.status, 0, `build failed:\n${build.stdout}\n${build.stderr}`);
});

after(() => {
  for (const child of running) child.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});

interface Server {
  readonly name: string;
  readonly address: string;
  readonly args: string[];
  child: ChildProcess | undefined;
  /** Output of the current process only. */
  output: string;
  exited: Promise<void>;
}

function startServer(server: Server): void {
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: scratch };
  const child = spawn(process.execPath, [join(buildDir, 'bin', 'agent.js'), ...server.args], { cwd: scratch, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  server.child = child;
  server.output = '';
  child.stdout?.on('data', (chunk: Buffer) => (server.output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (server.output += chunk.toString()));
  server.exited = new Promise((resolveExit) =>
    child.on('exit', () => {
      running.delete(child);
      resolveExit();
    }),
  );
}

async function call(address: string, method: string, args: unknown): Promise<MsgpackValue> {
  const client = await RpcClient.dial(address, CALL_TIMEOUT_MS);
  try {
    return await client.call(method, args, CALL_TIMEOUT_MS);
  } finally {
    client.close();
  }
}

/** The leader as some live server reports it, if that server answers and knows one. */
async function findLeader(servers: readonly Server[]): Promise<string | undefined> {
  for (const server of servers) {
    if (server.child === undefined) continue;
    try {
      const leader = await call(server.address, 'Status.Leader', {});
      if (typeof leader === 'string' && leader !== '' && servers.some((s) => s.address === leader && s.child !== undefined)) return leader;
    } catch (error) {
      if (!(error instanceof RpcError)) throw error;
    }
  }
  return undefined;
}

/** Keys (and values) a server holds under `w/`, read from its local store or consistently. */
async function listWrites(address: string, isConsistent: boolean): Promise<Map<string, string>> {
  const reply = (await call(address, 'KVS.List', { Datacenter: 'dc1', Key: 'w/', RequireConsistent: isConsistent })) as { Entries: { Key: string; Value: Uint8Array }[] | null };
  return new Map((reply.Entries ?? []).map((entry) => [entry.Key, Buffer.from(entry.Value).toString()]));
}

/** Sequential writer: one KVS.Apply at a time, a fresh key per attempt, to the current leader. */
class Writer {
  readonly sent = new Set<string>();
  readonly acked = new Set<string>();
  private next = 0;
  private leader = '';

  constructor(private readonly servers: readonly Server[]) {}

  /** Writes until `count` more writes are acknowledged (or the deadline passes). */
  async writeAcked(count: number, deadlineMs: number): Promise<void> {
    const target = this.acked.size + count;
    const giveUpAt = Date.now() + deadlineMs;
    while (this.acked.size < target) {
      assert.ok(Date.now() < giveUpAt, `writer: only ${this.acked.size}/${target} acknowledged before the deadline`);
      if (this.leader === '') {
        this.leader = (await findLeader(this.servers)) ?? '';
        if (this.leader === '') {
          await new Promise((resolveWait) => setTimeout(resolveWait, 50));
          continue;
        }
      }
      const key = `w/${String(this.next++).padStart(6, '0')}`;
      this.sent.add(key);
      try {
        const reply = await call(this.leader, 'KVS.Apply', { Datacenter: 'dc1', Op: 'set', DirEnt: { Key: key, Flags: 0, Value: Buffer.from(`v-${key}`) } });
        assert.equal(reply, true);
        this.acked.add(key);
      } catch (error) {
        if (!(error instanceof RpcError)) throw error;
        // Not acknowledged: the write may or may not have committed. Retry at the named leader,
        // or rediscover it.
        this.leader = (error.code === 'ERR_RPC_REMOTE' ? leaderFromNotLeaderText(error.message) : undefined) ?? '';
      }
    }
  }
}

test('kill -9 of the leader under write load loses no acknowledged write; the restarted server catches up by snapshot', { timeout: 60_000 }, async () => {
  const tuning = join(scratch, 'tuning.json');
  // Autopilot's dead-server cleanup is off here: the killed server is to come back as a voter.
  writeFileSync(tuning, JSON.stringify({ performance: { raft_multiplier: 1 }, raft_snapshot_threshold: SNAPSHOT_THRESHOLD, raft_snapshot_interval: '100ms', raft_trailing_logs: TRAILING_LOGS, autopilot: { cleanup_dead_servers: false } }));
  const ports = await Promise.all([0, 1, 2].map(async () => ({ http: await freePort(), server: await freePort(), serfLan: await freePort(), serfWan: await freePort() })));
  const addresses = ports.map(({ server }) => `127.0.0.1:${server}`);
  // -retry-join names serf LAN addresses, as in Consul.
  const joinAddresses = ports.map(({ serfLan }) => `127.0.0.1:${serfLan}`);
  const servers: Server[] = ports.map((port, i) => ({
    name: `s${i}`,
    address: addresses[i]!,
    args: [
      '-server', '-bootstrap-expect=3',
      ...joinAddresses.filter((_, j) => j !== i).flatMap((address) => ['-retry-join', address]),
      '-retry-interval', '200ms', '-data-dir', join(scratch, `s${i}`), '-bind', '127.0.0.1', '-node', `s${i}`,
      '-config-file', tuning, '-http-port', String(port.http), '-server-port', String(port.server), '-serf-lan-port', String(port.serfLan), '-serf-wan-port', String(port.serfWan), '-dns-port', '-1',
    ],
    child: undefined,
    output: '',
    exited: Promise.resolve(),
  }));
  for (const server of servers) startServer(server);

  const firstLeader = await waitFor('a leader', () => findLeader(servers), 20_000);

  // A malformed request is an error reply; the server keeps serving.
  await assert.rejects(call(firstLeader, 'KVS.Apply', 'garbage'), /KVSRequest must be a map/);
  await assert.rejects(call(firstLeader, 'KVS.Apply', { Op: 'set', DirEnt: { Key: 'x', Flags: -1 } }), /DirEnt.Flags must be a uint64/);
  await assert.rejects(call(firstLeader, 'KVS.Apply', { Op: 'nope', DirEnt: { Key: 'x' } }), /Invalid KVS operation/);
  const peers = (await call(firstLeader, 'Status.Peers', {})) as string[];
  assert.deepEqual([...peers].sort(), [...addresses].sort());

  const writer = new Writer(servers);
  await writer.writeAcked(WRITES_BEFORE_KILL, 15_000);

  // kill -9 whoever leads now.
  const victimAddress = await waitFor('the current leader', () => findLeader(servers));
  const victim = servers.find((server) => server.address === victimAddress)!;
  victim.child!.kill('SIGKILL');
  await victim.exited;
  victim.child = undefined;

  await writer.writeAcked(WRITES_WHILE_DOWN, 20_000);
  const newLeader = await waitFor('a new leader', () => findLeader(servers));
  assert.notEqual(newLeader, victimAddress);
  // A follower refuses writes and names the leader (no forwarding yet, issue 9).
  const follower = servers.find((server) => server.child !== undefined && server.address !== newLeader)!;
  await assert.rejects(call(follower.address, 'KVS.Apply', { Op: 'set', DirEnt: { Key: 'never/sent' } }), (error: Error) => leaderFromNotLeaderText(error.message) === newLeader);
  // Over HTTP a follower forwards the write to the leader (KVS.Apply over the server port).
  const followerHttp = ports[servers.indexOf(follower)]!.http;
  const forwarded = await fetch(`http://127.0.0.1:${followerHttp}/v1/kv/forwarded/by-follower`, { method: 'PUT', body: 'yes' });
  assert.equal(forwarded.status, 200);
  assert.equal((await forwarded.text()).trim(), 'true');
  const cas = await fetch(`http://127.0.0.1:${followerHttp}/v1/kv/forwarded/by-follower?cas=1`, { method: 'PUT', body: 'no' });
  assert.equal((await cas.text()).trim(), 'false', 'a failed CAS answers false through the forward too');
  const onLeader = (await call(newLeader, 'KVS.Get', { Datacenter: 'dc1', Key: 'forwarded/by-follower', RequireConsistent: true })) as { Entries: { Value: Uint8Array }[] };
  assert.equal(Buffer.from(onLeader.Entries[0]!.Value).toString(), 'yes');
  // Sessions too: create, renew and destroy on the follower run on the leader (Session.Apply,
  // Session.Renew), and a lock taken through the follower holds on the leader.
  const followerApi = (method: string, path: string, body?: string) => fetch(`http://127.0.0.1:${followerHttp}${path}`, { method, ...(body === undefined ? {} : { body }) });
  const created = await waitFor('the follower\'s node in the catalog, then a session', async () => {
    const reply = await followerApi('PUT', '/v1/session/create', JSON.stringify({ TTL: '30s', Name: 'forwarded' }));
    return reply.status === 200 ? ((await reply.json()) as { ID: string }) : undefined;
  }, 20_000);
  const renewed = await followerApi('PUT', `/v1/session/renew/${created.ID}`);
  assert.equal(renewed.status, 200);
  assert.equal(((await renewed.json()) as { ID: string; TTL: string }[])[0]?.TTL, '30s');
  assert.equal((await followerApi('PUT', '/v1/session/renew/00000000-0000-4000-8000-000000000000')).status, 404);
  assert.equal((await (await followerApi('PUT', `/v1/kv/forwarded/lock?acquire=${created.ID}`, 'held')).text()).trim(), 'true');
  const locked = (await call(newLeader, 'KVS.Get', { Datacenter: 'dc1', Key: 'forwarded/lock', RequireConsistent: true })) as { Entries: { Session: string }[] };
  assert.equal(locked.Entries[0]?.Session, created.ID);
  assert.equal((await followerApi('PUT', `/v1/session/destroy/${created.ID}`)).status, 200);
  const released = (await call(newLeader, 'KVS.Get', { Datacenter: 'dc1', Key: 'forwarded/lock', RequireConsistent: true })) as { Entries: { Session?: string }[] };
  assert.equal(released.Entries[0]?.Session ?? '', '', 'destroying the session released the lock');
  // A transaction with writes (Txn.Apply): its results, and a failed one's 409 with the errors.
  const txn = await followerApi('PUT', '/v1/txn', JSON.stringify([{ KV: { Verb: 'set', Key: 'forwarded/txn', Value: Buffer.from('t').toString('base64'), Flags: 42 } }, { KV: { Verb: 'get', Key: 'forwarded/txn' } }]));
  assert.equal(txn.status, 200);
  const txnBody = (await txn.json()) as { Results: { KV: { Key: string; Value: string | null; Flags: number } }[]; Errors: unknown };
  assert.deepEqual(txnBody.Results.map((r) => [r.KV.Key, r.KV.Flags]), [['forwarded/txn', 42], ['forwarded/txn', 42]]);
  assert.equal(txnBody.Results[1]?.KV.Value, Buffer.from('t').toString('base64'));
  assert.equal(txnBody.Errors, null);
  const failedTxn = await followerApi('PUT', '/v1/txn', JSON.stringify([{ KV: { Verb: 'cas', Key: 'forwarded/txn', Value: '', Index: 1 } }]));
  assert.equal(failedTxn.status, 409);
  assert.equal(((await failedTxn.json()) as { Errors: { OpIndex: number }[] }).Errors[0]?.OpIndex, 0);
  // Catalog writes (Catalog.Register, Catalog.Deregister), read back on the leader.
  const leaderHttp = ports[servers.findIndex((server) => server.address === newLeader)]!.http;
  const registered = await followerApi('PUT', '/v1/catalog/register', JSON.stringify({ Node: 'external-db', Address: '192.0.2.10', Service: { Service: 'db', Port: 5432 } }));
  assert.equal(registered.status, 200);
  const external = await fetch(`http://127.0.0.1:${leaderHttp}/v1/catalog/node/external-db?consistent`);
  assert.equal(((await external.json()) as { Services: Record<string, { Port: number }> }).Services['db']?.Port, 5432);
  assert.equal((await followerApi('PUT', '/v1/catalog/deregister', JSON.stringify({ Node: 'external-db' }))).status, 200);
  assert.equal(await (await fetch(`http://127.0.0.1:${leaderHttp}/v1/catalog/node/external-db?consistent`)).text(), 'null');
  // A service registered with the follower's own agent reaches the catalog through anti-entropy,
  // which writes at the leader.
  assert.equal((await followerApi('PUT', '/v1/agent/service/register', JSON.stringify({ Name: 'on-follower', Port: 9090 }))).status, 200);
  await waitFor('the follower\'s service in the leader\'s catalog', async () => {
    const instances = (await (await fetch(`http://127.0.0.1:${leaderHttp}/v1/catalog/service/on-follower?consistent`)).json()) as { Node: string; ServicePort: number }[];
    return instances.length === 1 && instances[0]?.Node === follower.name && instances[0].ServicePort === 9090 ? true : undefined;
  }, 10_000);
  const badRegister = await followerApi('PUT', '/v1/catalog/register', JSON.stringify({ Node: 'x' }));
  assert.equal(badRegister.status, 500, 'the leader\'s refusal comes back');
  assert.equal(await badRegister.text(), 'Must provide address if SkipNodeUpdate is not set');

  startServer(victim);
  await writer.writeAcked(WRITES_AFTER_RESTART, 10_000);
  await waitFor('the restarted server to install a snapshot', () => (/installed snapshot/.test(victim.output) ? true : undefined), 15_000);

  const check = (holder: string, held: Map<string, string>): void => {
    for (const key of writer.acked) assert.equal(held.get(key), `v-${key}`, `${holder} lost acknowledged write ${key}`);
    for (const key of held.keys()) assert.ok(writer.sent.has(key), `${holder} holds ${key}, which was never sent`);
  };
  const leader = await waitFor('the leader', () => findLeader(servers));
  check(`leader ${leader} (consistent read)`, await listWrites(leader, true));
  for (const server of servers) {
    const held = await waitFor(`${server.name} to catch up`, async () => {
      const local = await listWrites(server.address, false);
      return [...writer.acked].every((key) => local.has(key)) ? local : undefined;
    });
    check(`${server.name} (local read)`, held);
  }
  // A single key by KVS.Get, from the restarted server's local store.
  const someKey = [...writer.acked][0]!;
  const got = (await call(victim.address, 'KVS.Get', { Datacenter: 'dc1', Key: someKey })) as { Entries: { Key: string }[]; Index: number };
  assert.equal(got.Entries[0]?.Key, someKey);
  assert.ok(got.Index > 0);

  // A graceful leave of the leader (PUT /v1/agent/leave) hands leadership over by TimeoutNow.
  const leaving = servers.find((server) => server.address === leader)!;
  const leavingPort = ports[servers.indexOf(leaving)]!.http;
  const left = await fetch(`http://127.0.0.1:${leavingPort}/v1/agent/leave`, { method: 'PUT' });
  assert.equal(left.status, 200);
  await leaving.exited;
  leaving.child = undefined;
  assert.match(leaving.output, /successfully transferred leadership/);
  const successor = await waitFor('a leader after the leave', () => findLeader(servers), 10_000);
  assert.notEqual(successor, leader);
  await writer.writeAcked(5, 10_000);

  for (const server of servers) server.child?.kill('SIGTERM');
  await Promise.all(servers.map((server) => server.exited));
});

test('a server joining a running cluster is added as a nonvoter and promoted once stable; when it leaves, the leader removes it; a killed one autopilot removes', { timeout: 90_000 }, async () => {
  const tuning = join(scratch, 'tuning-join.json');
  writeFileSync(tuning, JSON.stringify({ performance: { raft_multiplier: 1 }, autopilot: { server_stabilization_time: '1s' } }));
  const ports = await Promise.all([0, 1, 2, 3].map(async () => ({ http: await freePort(), server: await freePort(), serfLan: await freePort(), serfWan: await freePort() })));
  const joinAddresses = ports.map(({ serfLan }) => `127.0.0.1:${serfLan}`);
  const servers: Server[] = ports.map((port, i) => ({
    name: `j${i}`,
    address: `127.0.0.1:${port.server}`,
    args: [
      // The first three form the cluster; the fourth joins it later, with no expectation.
      ...(i < 3 ? ['-server', '-bootstrap-expect=3', ...joinAddresses.slice(0, 3).filter((_, j) => j !== i).flatMap((address) => ['-retry-join', address])] : ['-server', '-retry-join', joinAddresses[0]!]),
      '-retry-interval', '200ms', '-data-dir', join(scratch, `j${i}`), '-bind', '127.0.0.1', '-node', `j${i}`,
      '-config-file', tuning, '-http-port', String(port.http), '-server-port', String(port.server), '-serf-lan-port', String(port.serfLan), '-serf-wan-port', String(port.serfWan), '-dns-port', '-1',
    ],
    child: undefined,
    output: '',
    exited: Promise.resolve(),
  }));
  const [first, second, third, joiner] = servers as [Server, Server, Server, Server];
  for (const server of [first, second, third]) startServer(server);
  try {
    await waitFor('a leader among the first three', () => findLeader([first, second, third]), 20_000);
    startServer(joiner);
    /** The Raft configuration as the current leader's HTTP API shows it: node -> voter. */
    const configuration = async (): Promise<Map<string, boolean> | undefined> => {
      const leader = await findLeader(servers);
      if (leader === undefined) return undefined;
      const httpPort = ports[servers.findIndex((server) => server.address === leader)]!.http;
      const reply = await fetch(`http://127.0.0.1:${httpPort}/v1/operator/raft/configuration`);
      if (reply.status !== 200) return undefined;
      const body = (await reply.json()) as { Servers: { Node: string; Voter: boolean }[] };
      return new Map(body.Servers.map((server) => [server.Node, server.Voter]));
    };
    await waitFor('the joiner to become a voter', async () => ((await configuration())?.get('j3') === true ? true : undefined), 30_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${servers.map((server) => `--- ${server.name}\n${server.output.slice(-2_000)}`).join('\n')}`);
    });
    const leaderOutput = servers.map((server) => server.output).join('\n');
    assert.match(leaderOutput, /adding server as a nonvoter/);
    assert.match(leaderOutput, /Promoting server/);
    assert.equal((await call(joiner.address, 'Status.Peers', {}) as string[]).length, 4);

    // POST /v1/operator/raft/transfer-leader?id= hands leadership to the named server.
    const before = await waitFor('the leader', () => findLeader(servers));
    const leaderPort = ports[servers.findIndex((server) => server.address === before)]!.http;
    // Autopilot's health on the leader: four healthy voters, one of which may fail.
    const health = await waitFor('autopilot to see four healthy voters', async () => {
      const reply = (await (await fetch(`http://127.0.0.1:${leaderPort}/v1/operator/autopilot/health`)).json()) as { Healthy: boolean; FailureTolerance: number; Servers: { Name: string; Voter: boolean; Healthy: boolean; SerfStatus: string }[] };
      return reply.Healthy && reply.Servers.length === 4 ? reply : undefined;
    }, 10_000);
    assert.equal(health.FailureTolerance, 1);
    // The first leader stored the agents' autopilot settings in Raft; any server serves them.
    const settings = (await (await fetch(`http://127.0.0.1:${ports[3]!.http}/v1/operator/autopilot/configuration?stale`)).json()) as { ServerStabilizationTime: string; CleanupDeadServers: boolean; ModifyIndex: number };
    assert.deepEqual([settings.ServerStabilizationTime, settings.CleanupDeadServers], ['1s', true]);
    // A PUT through a follower is forwarded to the leader (Operator.AutopilotSetConfiguration).
    const followerPort = ports[servers.findIndex((server) => server.address !== before)]!.http;
    const put = await fetch(`http://127.0.0.1:${followerPort}/v1/operator/autopilot/configuration?cas=${settings.ModifyIndex}`, { method: 'PUT', body: JSON.stringify({ ...settings, MinQuorum: 2 }) });
    assert.equal((await put.text()).trim(), 'true');
    const after = (await (await fetch(`http://127.0.0.1:${leaderPort}/v1/operator/autopilot/configuration`)).json()) as { MinQuorum: number; ServerStabilizationTime: string };
    assert.deepEqual([after.MinQuorum, after.ServerStabilizationTime], [2, '1s']);
    assert.deepEqual(health.Servers.map((server) => [server.Name, server.Voter, server.SerfStatus]).sort(), [['j0', true, 'alive'], ['j1', true, 'alive'], ['j2', true, 'alive'], ['j3', true, 'alive']]);
    const target = [first, second, third].find((server) => server.address !== before)!;
    const raftServers = ((await (await fetch(`http://127.0.0.1:${leaderPort}/v1/operator/raft/configuration`)).json()) as { Servers: { ID: string; Node: string }[] }).Servers;
    const targetId = raftServers.find((server) => server.Node === target.name)!.ID;
    const transfer = await fetch(`http://127.0.0.1:${leaderPort}/v1/operator/raft/transfer-leader?id=${targetId}`, { method: 'POST' });
    assert.equal(transfer.status, 200, await transfer.clone().text());
    assert.deepEqual(await transfer.json(), { Success: true });
    await waitFor('the named server to lead', async () => ((await findLeader(servers)) === target.address ? true : undefined), 10_000);

    const left = await fetch(`http://127.0.0.1:${ports[3]!.http}/v1/agent/leave`, { method: 'PUT' });
    assert.equal(left.status, 200);
    await joiner.exited;
    joiner.child = undefined;
    await waitFor('the leaver to be removed from the configuration', async () => {
      const servers3 = await configuration();
      return servers3 !== undefined && !servers3.has('j3') && servers3.size === 3 ? true : undefined;
    }, 20_000);
    assert.doesNotMatch(joiner.output, /failed to leave raft configuration gracefully/);

    // kill -9 of a follower: gossip marks it failed, autopilot force-leaves it (one voter of
    // three may go), and the leader's reconcile removes it from Raft and from the catalog.
    const leaderAddress = await waitFor('the leader', () => findLeader([first, second, third]));
    const victim = [first, second, third].find((server) => server.address !== leaderAddress)!;
    victim.child!.kill('SIGKILL');
    await victim.exited;
    victim.child = undefined;
    await waitFor('autopilot to remove the killed server', async () => {
      const remaining = await configuration();
      return remaining !== undefined && remaining.size === 2 && !remaining.has(victim.name) ? true : undefined;
    }, 40_000);
    assert.match(servers.map((server) => server.output).join('\n'), new RegExp(`Attempting removal of failed server node: name=${victim.name}`));
  } finally {
    for (const server of servers) server.child?.kill('SIGTERM');
    await Promise.all(servers.map((server) => server.exited));
    // CLUSTER_DEBUG=1 keeps every server's log (/tmp/cluster-<name>.log) for a failure's post-mortem.
    if (process.env['CLUSTER_DEBUG']) for (const server of servers) writeFileSync(join(tmpdir(), `cluster-${server.name}.log`), server.output);
  }
});
