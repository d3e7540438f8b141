import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { NetworkInterfaceInfo } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, formatProblems, HelpRequested, loadConfig, NODE_HOST, type ConfigHost, type LoadedConfig } from '../lib/config.js';

const scratch = mkdtempSync(join(tmpdir(), 'consul-ts-config-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let fileCounter = 0;

function iface(address: string, family: 'IPv4' | 'IPv6' = 'IPv4', internal = false): NetworkInterfaceInfo {
  return { address, family, internal, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: null } as NetworkInterfaceInfo;
}

/** The real file system, with a fixed hostname and one private interface. */
function hostWith(interfaces: Record<string, NetworkInterfaceInfo[]> = { lo: [iface('127.0.0.1', 'IPv4', true)], eth0: [iface('10.1.2.3')] }): ConfigHost {
  return { ...NODE_HOST, hostname: () => 'testhost', networkInterfaces: () => interfaces };
}

/** A valid non-dev base so a test varies one thing. */
const BASE = ['-data-dir', join(tmpdir(), 'consul-ts-config-data'), '-bind', '127.0.0.1'];

function load(args: string[], host = hostWith()): LoadedConfig {
  return loadConfig(args, host);
}

function problemsOf(args: string[], host = hostWith()): readonly string[] {
  try {
    loadConfig(args, host);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  assert.fail(`expected a ConfigError for ${args.join(' ')}`);
}

function writeConfig(contents: unknown, name = `c${++fileCounter}.json`, dir = scratch): string {
  const path = join(dir, name);
  writeFileSync(path, typeof contents === 'string' ? contents : JSON.stringify(contents));
  return path;
}

describe('defaults', () => {
  test('a plain agent gets Consul defaults', () => {
    const { config } = load(BASE);
    assert.deepEqual(config.ports, { http: 8500, https: -1, dns: 8600, server: 8300, serfLan: 8301, serfWan: 8302, grpc: -1, grpcTls: -1 });
    assert.equal(config.datacenter, 'dc1');
    assert.equal(config.primaryDatacenter, 'dc1');
    assert.equal(config.domain, 'consul.');
    assert.deepEqual(config.clientAddrs, ['127.0.0.1']);
    assert.equal(config.serverMode, false);
    assert.equal(config.nodeName, 'testhost');
    assert.equal(config.logLevel, 'info');
    assert.equal(config.leaveOnTerm, true);
    assert.equal(config.skipLeaveOnInt, false);
    assert.equal(config.retryIntervalLanMs, 30_000);
    assert.equal(config.defaultQueryTimeMs, 300_000);
    assert.equal(config.maxQueryTimeMs, 600_000);
    assert.equal(config.dns.udpAnswerLimit, 3);
    assert.equal(config.dns.allowStale, true);
    assert.equal(config.limits.kvMaxValueSize, 524288);
    assert.equal(config.limits.httpMaxConnsPerClient, 200);
    assert.equal(config.raft.electionTimeoutMs, 5000);
    assert.equal(config.uiEnabled, false);
    assert.equal(config.disableRemoteExec, true);
  });

  test('servers keep their place on SIGTERM and serve gRPC-TLS on 8503', () => {
    const { config } = load([...BASE, '-server']);
    assert.equal(config.leaveOnTerm, false);
    assert.equal(config.skipLeaveOnInt, true);
    assert.equal(config.ports.grpcTls, 8503);
  });

  test('-dev means an in-memory server on loopback with fast timings', () => {
    const { config } = load(['-dev']);
    assert.equal(config.devMode, true);
    assert.equal(config.serverMode, true);
    assert.equal(config.bootstrap, false);
    assert.equal(config.dataDir, '');
    assert.equal(config.bindAddr, '127.0.0.1');
    assert.equal(config.advertiseAddrLan, '127.0.0.1');
    assert.equal(config.uiEnabled, true);
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.ports.grpc, 8502);
    assert.equal(config.raft.multiplier, 1);
    assert.equal(config.raft.electionTimeoutMs, 52);
    assert.equal(config.gossipLan.probeIntervalMs, 100);
    assert.equal(config.gossipLan.suspicionMult, 3);
  });

  test('-dev settings still yield to explicit flags', () => {
    const { config } = load(['-dev', '-log-level=warn', '-bind=127.0.0.2']);
    assert.equal(config.logLevel, 'warn');
    assert.equal(config.bindAddr, '127.0.0.2');
  });

  test('the configuration is frozen', () => {
    const { config } = load(BASE);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.ports));
    assert.throws(() => {
      (config as { datacenter: string }).datacenter = 'x';
    }, TypeError);
  });
});

describe('flags', () => {
  const cases: [string[], (loaded: LoadedConfig) => unknown, unknown][] = [
    [['-server'], (l) => l.config.serverMode, true],
    [['--server'], (l) => l.config.serverMode, true],
    [['-server=false'], (l) => l.config.serverMode, false],
    [['-server=t'], (l) => l.config.serverMode, true],
    [['-server', '-bootstrap'], (l) => l.config.bootstrap, true],
    [['-server', '-bootstrap-expect', '3'], (l) => l.config.bootstrapExpect, 3],
    [['-server', '--bootstrap-expect=5'], (l) => l.config.bootstrapExpect, 5],
    [['-node', 'web-1'], (l) => l.config.nodeName, 'web-1'],
    [['-node-id=ADFE3A2C-0000-4000-8000-000000000001'], (l) => l.config.nodeId, 'adfe3a2c-0000-4000-8000-000000000001'],
    [['-datacenter=East-1'], (l) => l.config.datacenter, 'east-1'],
    [['-domain', 'example'], (l) => l.config.domain, 'example.'],
    [['-alt-domain=alt.'], (l) => l.config.altDomain, 'alt.'],
    [['-advertise', '10.0.0.9'], (l) => l.config.advertiseAddrLan, '10.0.0.9'],
    [['-advertise-wan', '192.0.2.7'], (l) => l.config.advertiseAddrWan, '192.0.2.7'],
    [['-client', '127.0.0.1 ::1'], (l) => l.config.clientAddrs, ['127.0.0.1', '::1']],
    [['-retry-join', 'a', '-retry-join=b:8301'], (l) => l.config.retryJoinLan, ['a', 'b:8301']],
    [['-retry-join-wan', 'w'], (l) => l.config.retryJoinWan, ['w']],
    [['-retry-interval', '1m30s'], (l) => l.config.retryIntervalLanMs, 90_000],
    [['-retry-interval-wan=15.5s'], (l) => l.config.retryIntervalWanMs, 15_500],
    [['-retry-max=4'], (l) => l.config.retryMaxAttemptsLan, 4],
    [['-http-port', '18500'], (l) => l.config.ports.http, 18500],
    [['-https-port=8501'], (l) => l.config.ports.https, 8501],
    [['-dns-port=8653'], (l) => l.config.ports.dns, 8653],
    [['-dns-port=0'], (l) => l.config.ports.dns, -1],
    [['-server-port=9300'], (l) => l.config.ports.server, 9300],
    [['-serf-lan-port=9301'], (l) => l.config.ports.serfLan, 9301],
    [['-serf-wan-port=9302'], (l) => l.config.ports.serfWan, 9302],
    [['-grpc-port=8502'], (l) => l.config.ports.grpc, 8502],
    [['-log-level', 'TRACE'], (l) => l.config.logLevel, 'trace'],
    [['-log-level=Warn'], (l) => l.config.logLevel, 'warn'],
    [['-log-json'], (l) => l.config.logJson, true],
    [['-encrypt', 'pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s='], (l) => l.config.encryptKey, 'pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s='],
    [['-ui'], (l) => l.config.uiEnabled, true],
    [['-recursor', '8.8.8.8', '-recursor=[2001:db8::1]:5353'], (l) => l.config.dns.recursors, ['8.8.8.8:53', '[2001:db8::1]:5353']],
    [['-node-meta', 'rack:r1', '-node-meta=zone:z:1'], (l) => l.config.nodeMeta, { rack: 'r1', zone: 'z:1' }],
    [['-rejoin'], (l) => l.config.rejoinAfterLeave, true],
    [['-default-query-time=30s'], (l) => l.config.defaultQueryTimeMs, 30_000],
    [['-enable-script-checks'], (l) => l.config.enableRemoteScriptChecks, true],
    [['-ui-content-path=/consul/ui'], (l) => l.config.uiContentPath, '/consul/ui/'],
  ];
  for (const [args, read, expected] of cases) {
    test(`${args.join(' ')}`, () => assert.deepEqual(read(load([...BASE, ...args])), expected));
  }

  test('a leading "agent" word is skipped, as in `consul agent -server`', () => {
    assert.equal(load(['agent', ...BASE, '-server']).config.serverMode, true);
  });

  test('-join is the deprecated spelling of -retry-join', () => {
    const loaded = load([...BASE, '-join=10.0.0.1', '-retry-join=10.0.0.2']);
    assert.deepEqual(loaded.config.retryJoinLan, ['10.0.0.1', '10.0.0.2']);
    assert.ok(loaded.warnings.includes("The 'start_join' field is deprecated. Use the 'retry_join' field instead."));
  });

  test('network segments are refused as Consul CE refuses them (flag or file); an empty segment is the default', () => {
    const refusal = 'Network segments are not supported in this version of Consul';
    assert.deepEqual(problemsOf([...BASE, '-segment=alpha']), [refusal]);
    assert.deepEqual(problemsOf([...BASE, '-config-file', writeConfig({ segments: [{ name: 'alpha', bind: '127.0.0.1', port: 8303 }] })]), [refusal]);
    assert.deepEqual(problemsOf([...BASE, '-config-file', writeConfig({ segment: 'beta' })]), [refusal]);
    assert.equal(load([...BASE, '-config-file', writeConfig({ segment: '', segments: [] })]).warnings.length, 0);
  });

  test('-bootstrap-expect=1 is bootstrap mode, with Consul\'s warning', () => {
    const loaded = load([...BASE, '-server', '-bootstrap-expect=1']);
    assert.equal(loaded.config.bootstrap, true);
    assert.equal(loaded.config.bootstrapExpect, 0);
    assert.ok(loaded.warnings.includes('BootstrapExpect is set to 1; this is the same as Bootstrap mode.'));
  });

  test('flags Consul has but consul-ts does not act on are accepted with a warning', () => {
    const loaded = load([...BASE, '-pid-file=/tmp/x.pid']);
    assert.ok(loaded.warnings.includes('flag -pid-file is not supported by consul-ts and is ignored'));
  });

  test('-help asks for usage', () => {
    assert.throws(() => load(['-help']), HelpRequested);
    assert.throws(() => load(['--h']), HelpRequested);
    assert.match(new HelpRequested().message, /-bootstrap-expect <int>/);
  });

  test('binding to 0.0.0.0 advertises the one private address', () => {
    const { config } = load(['-data-dir', scratch]);
    assert.equal(config.bindAddr, '0.0.0.0');
    assert.equal(config.advertiseAddrLan, '10.1.2.3');
    assert.equal(config.advertiseAddrWan, '10.1.2.3');
  });

  test('go-sockaddr templates for interfaces resolve', () => {
    const { config } = load(['-data-dir', scratch, '-bind', '{{ GetInterfaceIP "eth0" }}', '-client', '{{ GetPrivateIP }}']);
    assert.equal(config.bindAddr, '10.1.2.3');
    assert.deepEqual(config.clientAddrs, ['10.1.2.3']);
  });
});

describe('config files', () => {
  test('later files win for scalars, lists append, maps merge', () => {
    const first = writeConfig({ datacenter: 'one', retry_join: ['a'], node_meta: { rack: 'r1', zone: 'z1' }, ports: { http: 9500, dns: 9600 } });
    const second = writeConfig({ datacenter: 'two', retry_join: ['b'], node_meta: { zone: 'z2' }, ports: { http: 9501 } });
    const { config } = load([...BASE, '-config-file', first, '-config-file', second]);
    assert.equal(config.datacenter, 'two');
    assert.deepEqual(config.retryJoinLan, ['a', 'b']);
    assert.deepEqual(config.nodeMeta, { rack: 'r1', zone: 'z2' });
    assert.equal(config.ports.http, 9501);
    assert.equal(config.ports.dns, 9600);
  });

  test('telemetry: prometheus retention, host name and prefix are read; sink keys are accepted with a warning', () => {
    const file = writeConfig({ telemetry: { prometheus_retention_time: '60s', disable_hostname: true, metrics_prefix: 'svc', statsd_address: '127.0.0.1:8125' } });
    const loaded = load([...BASE, '-config-file', file]);
    assert.deepEqual(loaded.config.telemetry, { disableHostname: true, prometheusRetentionMs: 60_000, metricsPrefix: 'svc' });
    assert.ok(loaded.warnings.includes('config key "telemetry.statsd_address" is not supported by consul-ts and is ignored'));
    assert.deepEqual(load(BASE).config.telemetry, { disableHostname: false, prometheusRetentionMs: 0, metricsPrefix: 'consul' });
    assert.deepEqual(problemsOf([...BASE, '-config-file', writeConfig({ telemetry: { prometheus_retention_time: 'soon' } })]).length, 1);
  });

  test('scalar flags override files; list flags come before file lists', () => {
    const file = writeConfig({ datacenter: 'fromfile', retry_join: ['file'] });
    const { config } = load([...BASE, '-datacenter=fromflag', '-retry-join=flag', '-config-file', file]);
    assert.equal(config.datacenter, 'fromflag');
    assert.deepEqual(config.retryJoinLan, ['flag', 'file']);
  });

  test('a config dir is read in byte order, skipping other extensions and subdirectories', () => {
    const dir = join(scratch, 'dir');
    mkdirSync(join(dir, 'nested'), { recursive: true });
    writeConfig({ node_name: 'from-b', retry_join: ['b'] }, 'b.json', dir);
    writeConfig({ node_name: 'from-a', retry_join: ['a'] }, 'a.json', dir);
    writeConfig({ node_name: 'from-upper' }, 'Z.json', dir);
    writeConfig('not json at all', 'notes.txt', dir);
    writeConfig({ node_name: 'nested' }, 'x.json', join(dir, 'nested'));
    const loaded = load([...BASE, '-config-dir', dir]);
    // "Z" sorts before "a" in byte order, so b.json is read last.
    assert.equal(loaded.config.nodeName, 'from-b');
    assert.deepEqual(loaded.config.retryJoinLan, ['a', 'b']);
    assert.deepEqual(loaded.config.configFiles, [join(dir, 'Z.json'), join(dir, 'a.json'), join(dir, 'b.json')]);
    assert.ok(loaded.warnings.includes(`skipping file ${join(dir, 'notes.txt')}, extension must be .hcl or .json, or config format must be set`));
  });

  test('keys match case-insensitively, as mapstructure does', () => {
    const file = writeConfig({ Datacenter: 'mixed', BootstrapExpect: 3, Server: true });
    const { config } = load([...BASE, '-config-file', file]);
    assert.equal(config.datacenter, 'mixed');
    assert.equal(config.bootstrapExpect, 3);
  });

  test('service and check definitions are read in every spelling', () => {
    const file = writeConfig({
      service: { name: 'web', port: 80, tags: ['v1'], check: { http: 'http://localhost/health', interval: '10s', timeout: 1000000000 } },
      services: [{ Name: 'db', ID: 'db-1', EnableTagOverride: true, Weights: { Passing: 3, Warning: 1 }, Checks: [{ ScriptArgs: ['/bin/true'], Interval: '5s' }] }],
      check: { id: 'mem', name: 'Memory', ttl: '30s', status: 'passing' },
    });
    const second = writeConfig({ services: [{ name: 'cache' }] });
    const { config } = load([...BASE, '-config-file', file, '-config-file', second]);
    assert.deepEqual(config.services.map((service) => service.name), ['web', 'db', 'cache']);
    const [web, db] = config.services;
    assert.equal(web?.checks[0]?.intervalNanos, 10e9);
    assert.equal(web?.checks[0]?.timeoutNanos, 1e9);
    assert.equal(db?.id, 'db-1');
    assert.equal(db?.enableTagOverride, true);
    assert.deepEqual(db?.weights, { passing: 3, warning: 1 });
    assert.deepEqual(db?.checks[0]?.args, ['/bin/true']);
    assert.equal(config.checks[0]?.ttlNanos, 30e9);
    assert.equal(config.checks[0]?.status, 'passing');
  });

  test('an empty file is skipped', () => {
    const file = writeConfig('   \n');
    assert.deepEqual(load([...BASE, '-config-file', file]).config.configFiles, [file]);
  });

  test('Consul keys not implemented yet are accepted with a warning', () => {
    const file = writeConfig({ tls: { defaults: { verify_incoming: false } } });
    assert.ok(load([...BASE, '-config-file', file]).warnings.includes('config key "tls" is not supported by consul-ts and is ignored'));
  });
});

describe('malformed input gets Consul\'s message', () => {
  const dataDir = BASE.slice(0, 2);
  const cases: [string, () => string[], string][] = [
    ['unknown flag', () => [...BASE, '-foo'], 'error parsing flags: flag provided but not defined: -foo'],
    ['bad flag syntax', () => [...BASE, '---server'], 'error parsing flags: bad flag syntax: ---server'],
    ['non-numeric port', () => [...BASE, '-http-port=abc'], 'error parsing flags: invalid value "abc" for flag -http-port: strconv.Atoi: parsing "abc": invalid syntax'],
    ['port out of range', () => [...BASE, '-http-port=70000'], 'ports.http: invalid port: 70000'],
    ['bad duration', () => [...BASE, '-retry-interval=5x'], 'retry_interval: invalid duration: "5x": time: unknown unit "x" in duration "5x"'],
    ['duration without unit', () => [...BASE, '-retry-interval=30'], 'retry_interval: invalid duration: "30": time: missing unit in duration "30"'],
    ['flag without its value', () => [...BASE, '-node'], 'error parsing flags: flag needs an argument: -node'],
    ['bad boolean', () => [...BASE, '-server=maybe'], 'error parsing flags: invalid boolean value "maybe" for -server: strconv.ParseBool: parsing "maybe": invalid syntax'],
    ['negative bootstrap-expect', () => [...BASE, '-server', '-bootstrap-expect=-1'], 'bootstrap_expect cannot be -1. Must be greater than or equal to zero'],
    ['bootstrap-expect on a client', () => [...BASE, '-bootstrap-expect=3'], "'bootstrap_expect > 0' requires 'server = true'"],
    ['bootstrap-expect=1 on a client', () => [...BASE, '-bootstrap-expect=1'], "'bootstrap = true' requires 'server = true'"],
    ['bootstrap with bootstrap-expect', () => [...BASE, '-server', '-bootstrap', '-bootstrap-expect=3'], "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive"],
    ['bootstrap-expect in dev mode', () => ['-dev', '-bootstrap-expect=3'], "'bootstrap_expect > 0' not allowed in dev mode"],
    ['missing data dir', () => ['-bind=127.0.0.1'], 'data_dir cannot be empty'],
    ['data dir is a file', () => ['-bind=127.0.0.1', '-data-dir', writeConfig({}, 'plain-file.json')], `data_dir ${JSON.stringify(join(scratch, 'plain-file.json'))} is not a directory`],
    ['invalid datacenter', () => [...BASE, '-datacenter=dc 1'], 'datacenter can only contain lowercase alphanumeric, - or _ characters. received: "dc 1"'],
    ['unknown log level', () => [...BASE, '-log-level=foo'], 'Invalid log level: "foo". Valid log levels are: [TRACE DEBUG INFO WARN ERR ERROR]'],
    ['gossip key not base64', () => [...BASE, '-encrypt=abc!defg'], 'encrypt has invalid key: illegal base64 data at input byte 3'],
    ['gossip key of the wrong size', () => [...BASE, '-encrypt=AAAAAAAA'], 'encrypt has invalid key: key size must be 16, 24 or 32 bytes, got 6'],
    ['bind is not an IP', () => [...dataDir, '-bind=foo'], 'bind_addr: invalid ip address: foo'],
    ['advertise 0.0.0.0', () => [...BASE, '-advertise=0.0.0.0'], 'Advertise address cannot be 0.0.0.0, :: or [::]'],
    ['client is not an IP', () => [...BASE, '-client=localhost'], 'client_addr: invalid ip address: localhost'],
    ['node ID too short', () => [...BASE, '-node-id=abc'], 'failed to setup node ID: uuid string is wrong length'],
    ['node ID not hex', () => [...BASE, '-node-id=zzzzzzzz-0000-4000-8000-000000000001'], 'failed to setup node ID: uuid is improperly formatted'],
    ['reserved node meta key', () => [...BASE, '-node-meta=consul-x:y'], "node_meta invalid: Couldn't load metadata pair ('consul-x', 'y'): Key prefix 'consul-' is reserved for internal use"],
    ['HTTP on the DNS port', () => [...BASE, '-http-port=8600'], 'HTTP address 127.0.0.1:8600 already configured for DNS'],
    ['extra arguments', () => [...BASE, 'foo', 'bar'], 'Unexpected extra arguments: [foo bar]'],
    ['old raft protocol', () => [...BASE, '-raft-protocol=2'], 'raft_protocol version 2 is not supported by this version of Consul'],
    ['missing config file', () => [...BASE, '-config-file=/nonexistent/x.json'], 'config: Open failed on /nonexistent/x.json. open /nonexistent/x.json: no such file or directory'],
    ['config file with another extension', () => [...BASE, '-config-file', writeConfig({}, 'agent.conf')], `file ${join(scratch, 'agent.conf')} has unknown extension; must be .hcl or .json, or config format must be set`],
    ['HCL file', () => [...BASE, '-config-file', writeConfig('server = true', 'agent.hcl')], `failed to parse ${join(scratch, 'agent.hcl')}: HCL configuration is not supported by consul-ts; use JSON config files`],
    ['unknown config key', () => [...BASE, '-config-file', writeConfig({ foo: 1 }, 'unknown.json')], `failed to parse ${join(scratch, 'unknown.json')}: invalid config key foo`],
    ['unknown nested key', () => [...BASE, '-config-file', writeConfig({ ports: { htp: 1 } }, 'nested.json')], `failed to parse ${join(scratch, 'nested.json')}: invalid config key ports.htp`],
    ['wrong type', () => [...BASE, '-config-file', writeConfig({ bootstrap_expect: '3' }, 'type.json')], `failed to parse ${join(scratch, 'type.json')}: 'bootstrap_expect' expected type 'int', got unconvertible type 'string', value: '3'`],
    ['wrong type for a bool', () => [...BASE, '-config-file', writeConfig({ server: 'yes' }, 'bool.json')], `failed to parse ${join(scratch, 'bool.json')}: 'server' expected type 'bool', got unconvertible type 'string', value: 'yes'`],
    ['top-level array', () => [...BASE, '-config-file', writeConfig([1], 'array.json')], `failed to parse ${join(scratch, 'array.json')}: '' expected type 'map[string]interface {}', got unconvertible type '[]interface {}', value: '[1]'`],
    ['unknown key in a service', () => [...BASE, '-config-file', writeConfig({ services: [{ name: 'a', prot: 1 }] }, 'svc.json')], `failed to parse ${join(scratch, 'svc.json')}: invalid config key services[0].prot`],
    ['service without a name', () => [...BASE, '-config-file', writeConfig({ service: { port: 80 } })], 'Failed to register service "": Service name missing'],
    ['TTL-less check', () => [...BASE, '-config-file', writeConfig({ check: { id: 'c1' } })], 'check "c1": TTL must be > 0 for TTL checks'],
    ['HTTP check without interval', () => [...BASE, '-config-file', writeConfig({ service: { name: 'web', check: { http: 'http://x' } } })], 'service "web": check "": Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks'],
    ['check with interval and TTL', () => [...BASE, '-config-file', writeConfig({ check: { id: 'c2', ttl: '10s', interval: '10s' } })], 'check "c2": Interval and TTL cannot both be specified'],
    ['bad check duration', () => [...BASE, '-config-file', writeConfig({ check: { id: 'c3', ttl: 'soon' } }, 'ttl.json')], `failed to parse ${join(scratch, 'ttl.json')}: check.ttl: invalid duration: "soon": time: invalid duration "soon"`],
    ['bad service weights', () => [...BASE, '-config-file', writeConfig({ service: { name: 'w', weights: { passing: 0 } } })], 'Invalid weight definition for service w: Passing must be greater than 0'],
    ['negative udp answer limit', () => [...BASE, '-config-file', writeConfig({ dns_config: { udp_answer_limit: -1 } })], 'dns_config.udp_answer_limit cannot be -1. Must be greater than or equal to zero'],
    ['raft multiplier out of range', () => [...BASE, '-config-file', writeConfig({ performance: { raft_multiplier: 11 } })], 'performance.raft_multiplier cannot be 11. Must be between 1 and 10'],
    ['bad config format', () => [...BASE, '-config-format=yaml'], "config: -config-format must be either 'hcl' or 'json'"],
  ];
  for (const [name, args, expected] of cases) {
    test(name, () => {
      const problems = problemsOf(args());
      assert.ok(problems.includes(expected), `expected ${JSON.stringify(expected)} in:\n${problems.join('\n')}`);
    });
  }

  test('invalid JSON names the file', () => {
    const file = writeConfig('{"server": tru}', 'broken.json');
    const problems = problemsOf([...BASE, '-config-file', file]);
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', new RegExp(`^failed to parse ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .+`));
  });

  test('every problem is reported at once, one per line', () => {
    const file = writeConfig({ foo: 1, ports: { dns: 'x' } }, 'many.json');
    const problems = problemsOf(['-bind=127.0.0.1', '-datacenter=a b', '-http-port=99999', '-config-file', file]);
    assert.deepEqual(new Set(problems), new Set([
      `failed to parse ${file}: invalid config key foo`,
      `failed to parse ${file}: 'ports.dns' expected type 'int', got unconvertible type 'string', value: 'x'`,
      'data_dir cannot be empty',
      'datacenter can only contain lowercase alphanumeric, - or _ characters. received: "a b"',
      'ports.http: invalid port: 99999',
    ]));
    assert.equal(formatProblems(['one']), 'one');
    assert.equal(formatProblems(['one', 'two']), '2 errors occurred:\n\t* one\n\t* two\n');
  });

  test('several private addresses make 0.0.0.0 ambiguous', () => {
    const host = hostWith({ eth0: [iface('10.0.0.1')], eth1: [iface('192.168.1.1')] });
    assert.ok(problemsOf(['-data-dir', scratch], host).includes("Multiple private IPv4 addresses found. Please configure one with 'bind' and/or 'advertise'."));
    assert.ok(problemsOf(['-data-dir', scratch], hostWith({ eth0: [iface('8.8.8.8')] })).includes('No private IPv4 address found'));
  });

  test('flag parsing stops at the first error, as Go\'s flag package does', () => {
    assert.deepEqual(problemsOf(['-foo', '-bar']), ['error parsing flags: flag provided but not defined: -foo']);
  });
});
