// /v1/operator/raft/ routes against the spec (§3.7) and Consul's operator handlers: the
// configuration's shape and key order, node names from the catalog, and peer removal with its
// parameter checks and texts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { catalogRoutes } from '../lib/endpoints_catalog.js';
import { operatorRoutes, statusLeader, statusPeers, type OperatorRaft } from '../lib/endpoints_operator.js';
import type { RaftStatus } from '../lib/raft.js';
import { startApi, type TestApi } from './api-support.js';

const SELF_ID = '11111111-2222-3333-4444-555555555555';
const SELF_ADDRESS = '127.0.0.1:8300';

interface Harness {
  readonly api: TestApi;
  readonly removed: string[];
  /** Leadership transfers asked for ('' = any voter). */
  readonly transfers: string[];
  /** Makes the next transfers fail with this error. */
  failTransfersWith(error: Error): void;
  /** Replaces the configuration the routes see (the real node has only itself). */
  setStatus(change: (status: RaftStatus) => RaftStatus): void;
}

async function start(t: Parameters<typeof startApi>[0]): Promise<Harness> {
  const removed: string[] = [];
  const transfers: string[] = [];
  let transferError: Error | undefined;
  let change: (status: RaftStatus) => RaftStatus = (status) => status;
  let api: TestApi | undefined;
  const raft: OperatorRaft = {
    status: () => change(live().raft.status()),
    leader: () => live().raft.leader(),
    peers: () => live().raft.peers(),
    removeServer: async (id) => {
      removed.push(id);
    },
    transferLeadership: async (id) => {
      if (transferError) throw transferError;
      transfers.push(id ?? '');
    },
  };
  const live = (): TestApi => {
    assert.ok(api, 'routes run after the API started');
    return api;
  };
  api = await startApi(t, (deps) => [...catalogRoutes(deps), ...operatorRoutes(deps, raft)]);
  return { api, removed, transfers, failTransfersWith: (error) => (transferError = error), setStatus: (next) => (change = next) };
}

test('raft configuration: Consul shape, key order, node names from the catalog', async (t) => {
  const { api } = await start(t);
  const first = await api.request('GET', '/v1/operator/raft/configuration');
  assert.equal(first.status, 200, first.body);
  assert.equal(first.headers['content-type'], 'application/json');
  const status = api.raft.status();
  assert.equal(
    first.body,
    JSON.stringify({
      Servers: [{ ID: SELF_ID, Node: '(unknown)', Address: SELF_ADDRESS, Leader: true, ProtocolVersion: '3', Voter: true, LastIndex: (JSON.parse(first.body) as { Servers: { LastIndex: number }[] }).Servers[0]?.LastIndex }],
      Index: status.configuration.index,
    }),
  );
  assert.ok((JSON.parse(first.body) as { Servers: { LastIndex: number }[] }).Servers[0]!.LastIndex >= 1);
  const registered = await api.request('PUT', '/v1/catalog/register', JSON.stringify({ Node: 'server-1', ID: SELF_ID, Address: '127.0.0.1' }));
  assert.equal(registered.status, 200);
  const named = (await api.request('GET', '/v1/operator/raft/configuration?stale')).json() as { Servers: { Node: string }[] };
  assert.equal(named.Servers[0]?.Node, 'server-1');
  assert.equal(statusLeader(api.raft), SELF_ADDRESS);
  assert.deepEqual(statusPeers(api.raft), [SELF_ADDRESS]);
});

test('raft configuration lists voters, non-voters and who leads', async (t) => {
  const { api, setStatus } = await start(t);
  setStatus((status) => ({
    ...status,
    configuration: {
      index: 42,
      servers: [
        { suffrage: 0, id: SELF_ID, address: SELF_ADDRESS },
        { suffrage: 1, id: 'b', address: '10.0.0.2:8300' },
        { suffrage: 0, id: 'c', address: '10.0.0.3:8300' },
      ],
    },
    progress: [{ id: 'c', match: 17, next: 18, state: status.progress[0]?.state ?? ('replicate' as never), ticksSinceResponse: 0 }],
  }));
  const reply = (await api.request('GET', '/v1/operator/raft/configuration')).json() as { Servers: Record<string, unknown>[]; Index: number };
  assert.equal(reply.Index, 42);
  assert.deepEqual(reply.Servers.map((s) => [s['ID'], s['Leader'], s['Voter'], s['LastIndex']]), [
    [SELF_ID, true, true, api.raft.status().lastIndex],
    ['b', false, false, 0],
    ['c', false, true, 17],
  ]);
  assert.equal((await api.request('PUT', '/v1/operator/raft/configuration')).status, 405);
  assert.equal((await api.request('GET', '/v1/operator/raft/configuration?dc=x')).body, 'No path to datacenter');
  assert.equal((await api.request('GET', '/v1/operator/raft/configuration?stale&consistent')).status, 400);
});

test('raft peer removal: parameter checks, unknown peers, success is 200 with an empty body', async (t) => {
  const { api, removed, setStatus } = await start(t);
  setStatus((status) => ({
    ...status,
    configuration: { index: 9, servers: [{ suffrage: 0, id: SELF_ID, address: SELF_ADDRESS }, { suffrage: 0, id: 'peer-2', address: '10.0.0.2:8300' }] },
  }));
  const cases: [string, number, string][] = [
    ['/v1/operator/raft/peer', 400, "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove"],
    ['/v1/operator/raft/peer?id=a&address=b', 400, 'Must specify only one of ?id or ?address'],
    ['/v1/operator/raft/peer?address=10.9.9.9:8300', 500, 'address "10.9.9.9:8300" was not found in the Raft configuration'],
    ['/v1/operator/raft/peer?id=nobody', 500, 'id "nobody" was not found in the Raft configuration'],
    ['/v1/operator/raft/peer?id=', 500, 'id "" was not found in the Raft configuration'],
    ['/v1/operator/raft/peer?id=x&dc=elsewhere', 500, 'No path to datacenter'],
  ];
  for (const [path, status, text] of cases) {
    const reply = await api.request('DELETE', path);
    assert.equal(reply.status, status, path);
    assert.equal(reply.body, text);
  }
  assert.deepEqual(removed, []);
  const byAddress = await api.request('DELETE', '/v1/operator/raft/peer?address=10.0.0.2:8300');
  assert.equal(byAddress.status, 200);
  assert.equal(byAddress.body, '');
  const byId = await api.request('DELETE', '/v1/operator/raft/peer?id=peer-2');
  assert.equal(byId.status, 200);
  assert.deepEqual(removed, ['peer-2', 'peer-2']);
  const get = await api.request('GET', '/v1/operator/raft/peer?id=peer-2');
  assert.equal(get.status, 405);
  assert.equal(get.headers['allow'], 'OPTIONS,DELETE');
});

test('a failed removal is a 500 with the Raft error', async (t) => {
  const { api } = await start(t);
  const raft: OperatorRaft = {
    status: () => api.raft.status(),
    leader: () => api.raft.leader(),
    peers: () => api.raft.peers(),
    removeServer: () => Promise.reject(Object.assign(new Error('a configuration change is still being committed'), { code: 'ERR_CONFIGURATION_PENDING' })),
    transferLeadership: () => Promise.resolve(),
  };
  const { operatorRaftRemovePeerByID } = await import('../lib/endpoints_operator.js');
  await assert.rejects(operatorRaftRemovePeerByID(api.deps, raft, SELF_ID), { status: 500, message: 'a configuration change is still being committed' });
});

test('leadership transfer: POST only, to a named voter or any; an unknown ID is Consul\'s 500, a Raft refusal a 500 with its reason', async (t) => {
  const { api, transfers, setStatus, failTransfersWith } = await start(t);
  setStatus((status) => ({
    ...status,
    configuration: { index: 9, servers: [{ suffrage: 0, id: SELF_ID, address: SELF_ADDRESS }, { suffrage: 0, id: 'peer-2', address: '10.0.0.2:8300' }] },
  }));
  const any = await api.request('POST', '/v1/operator/raft/transfer-leader');
  assert.equal(any.status, 200);
  assert.deepEqual(JSON.parse(any.body), { Success: true });
  const named = await api.request('POST', '/v1/operator/raft/transfer-leader?id=peer-2');
  assert.equal(named.status, 200);
  assert.deepEqual(transfers, ['', 'peer-2']);
  const unknown = await api.request('POST', '/v1/operator/raft/transfer-leader?id=nobody');
  assert.equal(unknown.status, 500);
  assert.equal(unknown.body, 'Could not find address for server id nobody');
  assert.equal((await api.request('PUT', '/v1/operator/raft/transfer-leader')).status, 405);
  assert.deepEqual(transfers, ['', 'peer-2']);
  failTransfersWith(Object.assign(new Error('leadership transfer timed out'), { code: 'ERR_TRANSFER_TIMEOUT' }));
  const failed = await api.request('POST', '/v1/operator/raft/transfer-leader?id=peer-2');
  assert.equal(failed.status, 500);
  assert.equal(failed.body, 'leadership transfer timed out');
});

test('autopilot health: 200 when healthy, 429 with the same body when not; state: 200', async (t) => {
  let healthy = true;
  const reply = () => ({ Healthy: healthy, FailureTolerance: healthy ? 1 : 0, Servers: [] });
  const api = await startApi(t, (deps) => operatorRoutes(deps, { status: () => api.raft.status(), leader: () => api.raft.leader(), peers: () => api.raft.peers(), removeServer: async () => undefined, transferLeadership: async () => undefined }, { health: reply, state: () => ({ Healthy: healthy, FailureTolerance: 0, OptimisticFailureTolerance: 0, Servers: {}, Leader: 'a', Voters: ['a'] }) }));
  const ok = await api.request('GET', '/v1/operator/autopilot/health');
  assert.equal(ok.status, 200);
  assert.deepEqual(JSON.parse(ok.body), { Healthy: true, FailureTolerance: 1, Servers: [] });
  healthy = false;
  const sick = await api.request('GET', '/v1/operator/autopilot/health');
  assert.equal(sick.status, 429);
  assert.deepEqual(JSON.parse(sick.body), { Healthy: false, FailureTolerance: 0, Servers: [] });
  // /state is always 200, healthy or not.
  const state = await api.request('GET', '/v1/operator/autopilot/state');
  assert.equal(state.status, 200);
  assert.equal((JSON.parse(state.body) as { Leader: string }).Leader, 'a');
});

test('autopilot configuration: 500 until stored; PUT stores it (Go zero values for missing fields), CAS reports whether it wrote; bad bodies and cas values are 400s', async (t) => {
  const { api } = await start(t);
  const first = await api.request('GET', '/v1/operator/autopilot/configuration');
  assert.equal(first.status, 500);
  assert.equal(first.body, 'autopilot config not initialized yet');

  const put = await api.request('PUT', '/v1/operator/autopilot/configuration', JSON.stringify({ CleanupDeadServers: true, LastContactThreshold: '200ms', MaxTrailingLogs: 250, ServerStabilizationTime: '10s' }));
  assert.equal(put.status, 200);
  assert.equal(put.body.trim(), 'true');
  const got = await api.request('GET', '/v1/operator/autopilot/configuration');
  assert.equal(got.status, 200);
  const config = JSON.parse(got.body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(config), ['CleanupDeadServers', 'LastContactThreshold', 'MaxTrailingLogs', 'MinQuorum', 'ServerStabilizationTime', 'RedundancyZoneTag', 'DisableUpgradeMigration', 'UpgradeVersionTag', 'CreateIndex', 'ModifyIndex']);
  assert.deepEqual({ ...config, CreateIndex: 0, ModifyIndex: 0 }, { CleanupDeadServers: true, LastContactThreshold: '200ms', MaxTrailingLogs: 250, MinQuorum: 0, ServerStabilizationTime: '10s', RedundancyZoneTag: '', DisableUpgradeMigration: false, UpgradeVersionTag: '', CreateIndex: 0, ModifyIndex: 0 });
  const modifyIndex = config['ModifyIndex'] as number;
  assert.ok(modifyIndex > 0);

  const stale = await api.request('PUT', `/v1/operator/autopilot/configuration?cas=${modifyIndex - 1}`, JSON.stringify({ MinQuorum: 3 }));
  assert.equal(stale.body.trim(), 'false');
  const fresh = await api.request('PUT', `/v1/operator/autopilot/configuration?cas=${modifyIndex}`, JSON.stringify({ MinQuorum: 3, LastContactThreshold: '1m30s' }));
  assert.equal(fresh.body.trim(), 'true');
  const after = JSON.parse((await api.request('GET', '/v1/operator/autopilot/configuration')).body) as Record<string, unknown>;
  assert.deepEqual([after['MinQuorum'], after['LastContactThreshold'], after['CleanupDeadServers']], [3, '1m30s', false]);
  // A bare number is nanoseconds, as api.ReadableDuration reads it.
  await api.request('PUT', '/v1/operator/autopilot/configuration', JSON.stringify({ ServerStabilizationTime: 2500000000 }));
  assert.equal((JSON.parse((await api.request('GET', '/v1/operator/autopilot/configuration')).body) as Record<string, unknown>)['ServerStabilizationTime'], '2.5s');

  const bad: [string, string, string][] = [
    ['', '', 'Error parsing autopilot config: EOF'],
    ['', '{"MinQuorum":', 'Error parsing autopilot config: unexpected EOF'],
    ['', '{"LastContactThreshold":"soon"}', 'Error parsing autopilot config: time: invalid duration "soon"'],
    ['', '{"MaxTrailingLogs":"many"}', 'Error parsing autopilot config: json: cannot unmarshal string into Go struct field AutopilotConfiguration.MaxTrailingLogs of type uint64'],
    ['', '{"ServerStabilizationTime":true}', 'Error parsing autopilot config: strconv.ParseFloat: parsing "true": invalid syntax'],
    ['?cas=x', '{}', 'Error parsing cas value: strconv.ParseUint: parsing "x": invalid syntax'],
  ];
  for (const [query, body, text] of bad) {
    const reply = await api.request('PUT', `/v1/operator/autopilot/configuration${query}`, body);
    assert.equal(reply.status, 400, body);
    assert.equal(reply.body, text);
  }
});

test('the leader serves forwarded operator writes: peer removal by ID or address, autopilot settings; bad arguments are errors', async (t) => {
  const { api, removed, setStatus } = await start(t);
  setStatus((status) => ({
    ...status,
    configuration: { index: 9, servers: [{ suffrage: 0, id: SELF_ID, address: SELF_ADDRESS }, { suffrage: 0, id: 'peer-2', address: '10.0.0.2:8300' }] },
  }));
  const { operatorRpcMethods } = await import('../lib/endpoints_operator.js');
  const raft: OperatorRaft = { status: () => ({ ...api.raft.status(), configuration: { index: 9, servers: [{ suffrage: 0, id: SELF_ID, address: SELF_ADDRESS }, { suffrage: 0, id: 'peer-2', address: '10.0.0.2:8300' }] } }), leader: () => api.raft.leader(), peers: () => api.raft.peers(), removeServer: async (id) => void removed.push(id), transferLeadership: async () => undefined };
  const methods = operatorRpcMethods(api.deps, raft);
  const context = { remoteAddress: '127.0.0.9:1' };
  assert.deepEqual(await methods.get('Operator.RaftRemovePeerByID')!({ Datacenter: 'dc1', ID: 'peer-2' }, context), {});
  assert.deepEqual(await methods.get('Operator.RaftRemovePeerByAddress')!({ Address: '10.0.0.2:8300' }, context), {});
  assert.deepEqual(removed, ['peer-2', 'peer-2']);
  await assert.rejects(Promise.resolve().then(() => methods.get('Operator.RaftRemovePeerByID')!({ ID: 'nobody' }, context)), /id "nobody" was not found in the Raft configuration/);
  await assert.rejects(Promise.resolve().then(() => methods.get('Operator.RaftRemovePeerByID')!('junk', context)), /RaftRemovePeerRequest must be a map/);
  const set = methods.get('Operator.AutopilotSetConfiguration')!;
  const config = { CleanupDeadServers: false, LastContactThreshold: 300e6, MaxTrailingLogs: 9, MinQuorum: 2, ServerStabilizationTime: 5e9, RedundancyZoneTag: '', DisableUpgradeMigration: false, UpgradeVersionTag: '' };
  assert.equal(await set({ Datacenter: 'dc1', Config: { ...config, ModifyIndex: 0 }, CAS: false }, context), true);
  const stored = JSON.parse((await api.request('GET', '/v1/operator/autopilot/configuration')).body) as Record<string, unknown>;
  assert.deepEqual([stored['MinQuorum'], stored['LastContactThreshold'], stored['ServerStabilizationTime']], [2, '300ms', '5s']);
  assert.equal(await set({ Config: { ...config, ModifyIndex: 1 }, CAS: true }, context), false, 'a stale CAS');
  await assert.rejects(Promise.resolve().then(() => set({ Config: { MinQuorum: 'x' }, CAS: false }, context)), /AutopilotSetConfigRequest/);
});
