// PUT /v1/agent/reload (and SIGHUP, which calls the same Agent.reload): the config files' services
// and checks are re-read; removed definitions are deregistered, new ones registered, and a bad
// reload answers 500 and changes nothing.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Agent } from '../lib/agent.js';
import { loadConfig, NODE_HOST } from '../lib/config.js';
import { createLogger, MemorySink } from '../lib/log.js';
import { freePort, gossipPortArgs, waitFor } from './support.js';

const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-reload-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('a reload applies the config files\' services and checks, and a bad one changes nothing', async () => {
  const file = join(scratch, 'services.json');
  writeFileSync(file, JSON.stringify({ services: [{ name: 'alpha', port: 1 }, { name: 'beta', port: 2, check: { ttl: '1m' } }] }));
  const port = await freePort();
  const args = ['-dev', '-node', 'reload-test', '-http-port', String(port), '-dns-port', '-1', '-server-port', String(await freePort()), ...(await gossipPortArgs()), '-config-file', file];
  const load = () => loadConfig(args, { ...NODE_HOST, hostname: () => 'reload-test' }).config;
  const agent = await Agent.start({ config: load(), logger: createLogger({ level: 'error', json: false, nowMs: Date.now, sink: new MemorySink() }), reloadConfig: load });
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: response.status, text: await response.text() };
  };
  const serviceIds = async () => Object.keys(JSON.parse((await api('GET', '/v1/agent/services')).text) as Record<string, unknown>).sort();
  try {
    await waitFor('a leader', async () => ((await api('GET', '/v1/status/leader')).text !== '""' ? true : undefined), 20_000);
    assert.equal((await api('PUT', '/v1/agent/service/register', { Name: 'from-api' })).status, 200);
    assert.equal((await api('PUT', '/v1/agent/check/pass/service:beta')).status, 200);
    writeFileSync(file, JSON.stringify({ services: [{ name: 'beta', port: 2, check: { ttl: '1m' } }, { name: 'gamma', port: 3 }] }));
    assert.deepEqual(await api('PUT', '/v1/agent/reload'), { status: 200, text: '' });
    assert.deepEqual(await serviceIds(), ['beta', 'from-api', 'gamma'], 'alpha removed, gamma added, API registrations kept');
    const checks = JSON.parse((await api('GET', '/v1/agent/checks')).text) as Record<string, { Status: string }>;
    assert.equal(checks['service:beta']?.Status, 'passing', 'a surviving check keeps its status');
    const catalog = JSON.parse((await api('GET', '/v1/catalog/services')).text) as Record<string, unknown>;
    assert.equal(catalog['alpha'], undefined);
    assert.ok('gamma' in catalog);
    writeFileSync(file, '{"services": [');
    const bad = await api('PUT', '/v1/agent/reload');
    assert.equal(bad.status, 500);
    assert.match(bad.text, /^Failed to reload configs: /);
    assert.deepEqual(await serviceIds(), ['beta', 'from-api', 'gamma']);
  } finally {
    await agent.shutdown();
  }
});
