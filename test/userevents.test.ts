// lib/userevents.ts: Consul's event filters (shouldProcessUserEvent) against this agent's node and
// local service instances, and the parameter checks. test/gossip-agents.test.ts carries events
// between agents; test/localagent.test.ts filters them on an agent's registered services.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeUserEvent, encodeUserEvent, matchesTarget, newUserEvent, userEventProblem } from '../lib/userevents.js';

const event = (node = '', service = '', tag = '') => newUserEvent('deploy', null, { node, service, tag });

describe('matchesTarget (shouldProcessUserEvent)', () => {
  const target = {
    nodeName: 'web-01',
    services: () => [
      { Service: 'web', Tags: ['v1'] },
      { Service: 'web', Tags: ['canary'] },
      { Service: 'db', Tags: [] },
    ],
  };

  test('no filter, and a node filter as a regular expression on the node name', () => {
    assert.equal(matchesTarget(event(), target), true);
    assert.equal(matchesTarget(event('^web-'), target), true);
    assert.equal(matchesTarget(event('^db-'), target), false);
  });

  test('a service filter needs a local instance; a tag filter, an instance of that service with the tag', () => {
    assert.equal(matchesTarget(event('', 'web'), target), true);
    assert.equal(matchesTarget(event('', '^cache$'), target), false);
    assert.equal(matchesTarget(event('', 'web', 'canary'), target), true, 'any instance of the service may carry the tag');
    assert.equal(matchesTarget(event('', 'db', 'v1'), target), false, 'the tag must be on the matching service');
    assert.equal(matchesTarget(event('^web', 'db'), target), true);
    assert.equal(matchesTarget(event('^db', 'db'), target), false, 'both filters must pass');
    assert.equal(matchesTarget(event('', 'web'), { nodeName: 'n', services: () => [] }), false, 'no local services: a service filter matches nothing');
  });
});

describe('parameters and encoding', () => {
  test('validateUserEventParams texts', () => {
    assert.equal(userEventProblem(event('', '', 'v1')), 'Cannot provide tag filter without service filter');
    assert.equal(userEventProblem({ ...event(), Name: '' }), 'User event missing name');
    assert.match(userEventProblem(event('(')) ?? '', /^Invalid node filter: /);
    assert.equal(userEventProblem(event('a', 'b', 'c')), undefined);
  });

  test('an event round-trips through its serf payload, stamped with the receiver\'s Lamport time', () => {
    const fired = { ...newUserEvent('deploy', Buffer.from('v2'), { node: 'n', service: 's', tag: 't' }) };
    const received = decodeUserEvent(encodeUserEvent(fired), 42);
    assert.deepEqual(received && { ...received, Payload: Buffer.from(received.Payload ?? []).toString() }, { ...fired, Payload: 'v2', LTime: 42 });
    assert.equal(decodeUserEvent(new Uint8Array([0xc1]), 1), undefined, 'not msgpack: dropped, no throw');
  });
});
