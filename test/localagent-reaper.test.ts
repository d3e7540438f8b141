// deregister_critical_service_after on a manual clock: a service whose check stays critical longer
// than that (at least a minute) is deregistered by the 30 s reaper; a check that recovers restarts
// the count.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LocalState } from '../lib/antientropy.js';
import { loadConfig, NODE_HOST } from '../lib/config.js';
import { ObjectReader } from '../lib/decode.js';
import { readServiceDefinition } from '../lib/definitions.js';
import { LocalAgent, unreachableAliasCatalog } from '../lib/localagent.js';
import { nullLogger } from '../lib/log.js';
import { ManualClock } from './support.js';

function setup() {
  const clock = new ManualClock();
  const config = loadConfig(['-dev'], { ...NODE_HOST, hostname: () => 'reaper-test' }).config;
  const node = { ID: 'id', Node: 'reaper-test', Address: '127.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} };
  const state = new LocalState({ node, clock, rng: () => 0.5, checkUpdateIntervalMs: 0, logger: nullLogger(), onChange: () => undefined });
  const agent = new LocalAgent({ config, state, clock, rng: () => 0.5, logger: nullLogger(), nowMs: () => clock.nowMs(), aliasCatalog: unreachableAliasCatalog('No known Consul servers') });
  const register = (fields: Record<string, unknown>) => agent.registerService(readServiceDefinition(new ObjectReader(fields, '', [])), 'remote');
  return { clock, state, agent, register };
}

describe('the critical service reaper', () => {
  test('deregisters a service critical for longer than deregister_critical_service_after, counting from the last time it turned critical', () => {
    const { clock, state, agent, register } = setup();
    register({ name: 'web', check: { ttl: '10s', deregister_critical_service_after: '90s' } });
    clock.advanceTo(60_000);
    assert.ok(state.service('web'), 'critical for 60 s: kept');
    clock.advanceTo(61_000);
    agent.updateTtl('service:web', 'passing', 'back');
    clock.advanceTo(150_000);
    assert.ok(state.service('web'), 'critical again since its TTL ran out at 71 s: 79 s is not enough');
    clock.advanceTo(180_000);
    assert.equal(state.service('web'), undefined);
    assert.equal(state.check('service:web'), undefined);
    agent.stop();
  });

  test('raises a timeout below a minute to a minute, and leaves services without one alone', () => {
    const { clock, state, agent, register } = setup();
    register({ name: 'fast', check: { ttl: '10s', deregister_critical_service_after: '10s' } });
    register({ name: 'plain', check: { ttl: '10s' } });
    clock.advanceTo(60_000);
    assert.ok(state.service('fast'), 'not before a minute');
    clock.advanceTo(90_000);
    assert.equal(state.service('fast'), undefined);
    clock.advanceTo(600_000);
    assert.ok(state.service('plain'));
    agent.stop();
  });
});
