import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { float32Shortest, formatGoFloat, Metrics, METRICS_SERIES_MAX, prometheusName, readRuntimeStats, startRuntimeStats } from '../lib/metrics.js';

const T0 = Date.UTC(2024, 0, 1, 0, 0, 10);

function clock(startMs = T0): { nowMs: () => number; set: (ms: number) => void } {
  let now = startMs;
  return { nowMs: () => now, set: (ms) => (now = ms) };
}

/** Every line of a Prometheus text exposition must be a HELP, a TYPE or a sample line. */
function parsePrometheus(text: string): { help: string[]; types: Map<string, string>; samples: { name: string; labels: string; value: string }[] } {
  assert.ok(text === '' || text.endsWith('\n'), 'exposition ends with a newline');
  const help: string[] = [];
  const types = new Map<string, string>();
  const samples: { name: string; labels: string; value: string }[] = [];
  for (const line of text.split('\n').slice(0, -1)) {
    let match = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (match) {
      help.push(match[1]!);
      continue;
    }
    match = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter|summary|histogram|untyped)$/.exec(line);
    if (match) {
      types.set(match[1]!, match[2]!);
      continue;
    }
    match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$/.exec(line);
    assert.ok(match, `not a valid exposition line: ${JSON.stringify(line)}`);
    assert.ok(/^(NaN|[+-]Inf|-?\d+(\.\d+)?(e[+-]\d+)?)$/.test(match[3]!), `bad value in ${line}`);
    samples.push({ name: match[1]!, labels: match[2] ?? '', value: match[3]! });
  }
  return { help, types, samples };
}

describe('the in-memory sink (go-metrics InmemSink)', () => {
  test('displayMetrics has Consul\'s JSON shape and key order', () => {
    const time = clock(T0 + 3_000);
    const metrics = new Metrics({ nowMs: time.nowMs, hostName: 'host1', prometheusRetentionMs: 60_000 });
    metrics.setGauge(['runtime', 'alloc_bytes'], 1024);
    metrics.incrCounter(['catalog', 'register'], 1, { dc: 'dc1' });
    metrics.addSample(['raft', 'apply'], 1);
    metrics.addSample(['raft', 'apply'], 2);
    metrics.addSample(['raft', 'apply'], 3);
    // The only interval is the current one, and it is shown.
    assert.equal(
      JSON.stringify(metrics.displayMetrics()),
      '{"Timestamp":"2024-01-01 00:00:10 +0000 UTC",' +
        '"Gauges":[{"Name":"consul.host1.runtime.alloc_bytes","Value":1024,"Labels":{}}],' +
        '"Points":[],' +
        '"Counters":[{"Name":"consul.catalog.register","Count":1,"Rate":0.1,"Sum":1,"Min":1,"Max":1,"Mean":1,"Stddev":0,"Labels":{"dc":"dc1"}}],' +
        '"Samples":[{"Name":"consul.raft.apply","Count":3,"Rate":0.6,"Sum":6,"Min":1,"Max":3,"Mean":2,"Stddev":1,"Labels":{}}]}',
    );
  });

  test('once a newer interval exists, the last finished one is shown', () => {
    const time = clock();
    const metrics = new Metrics({ nowMs: time.nowMs });
    metrics.incrCounter(['a'], 2);
    time.set(T0 + 10_000);
    metrics.incrCounter(['a'], 5);
    const summary = metrics.displayMetrics();
    assert.equal(summary.Timestamp, '2024-01-01 00:00:10 +0000 UTC');
    assert.equal(summary.Counters[0]?.Sum, 2);
    assert.deepEqual(summary.Gauges, []);
    time.set(T0 + 20_000);
    assert.equal(metrics.displayMetrics().Counters[0]?.Sum, 5);
  });

  test('gauges carry the host name only with an external sink; counters and samples never do', () => {
    const metrics = new Metrics({ nowMs: clock().nowMs, hostName: 'h' });
    metrics.setGauge(['raft', 'peers'], 3);
    assert.equal(metrics.displayMetrics().Gauges[0]?.Name, 'consul.raft.peers');
    const disabled = new Metrics({ nowMs: clock().nowMs, hostName: '', prometheusRetentionMs: 1 });
    disabled.setGauge(['raft', 'peers'], 3);
    assert.equal(disabled.displayMetrics().Gauges[0]?.Name, 'consul.raft.peers');
    const prefixed = new Metrics({ nowMs: clock().nowMs, serviceName: 'svc', hostName: 'h', prometheusRetentionMs: 1 });
    prefixed.setGauge(['raft', 'peers'], 3);
    prefixed.incrCounter(['x'], 1);
    assert.equal(prefixed.displayMetrics().Gauges[0]?.Name, 'svc.h.raft.peers');
    assert.equal(prefixed.displayMetrics().Counters[0]?.Name, 'svc.x');
  });

  test('entries are sorted by key including labels, and spaces become underscores', () => {
    const metrics = new Metrics({ nowMs: clock().nowMs });
    metrics.incrCounter(['b'], 1);
    metrics.incrCounter(['a', 'x y'], 1, { z: '1' });
    metrics.incrCounter(['a', 'x y'], 1, { m: 'p q' });
    assert.deepEqual(metrics.displayMetrics().Counters.map((counter) => [counter.Name, counter.Labels]), [
      ['consul.a.x_y', { m: 'p q' }],
      ['consul.a.x_y', { z: '1' }],
      ['consul.b', {}],
    ]);
  });

  test('values are float32, rendered with float32\'s shortest digits', () => {
    const metrics = new Metrics({ nowMs: clock().nowMs });
    metrics.setGauge(['g1'], 0.1);
    metrics.setGauge(['g2'], 123456789);
    assert.equal(JSON.stringify(metrics.displayMetrics().Gauges.map((gauge) => gauge.Value)), '[0.1,123456790]');
    assert.equal(float32Shortest(16777217), 16777216);
  });

  test('series beyond the bound are dropped and counted', () => {
    const metrics = new Metrics({ nowMs: clock().nowMs });
    for (let index = 0; index <= METRICS_SERIES_MAX; index++) metrics.incrCounter(['c'], 1, { n: String(index) });
    assert.equal(metrics.displayMetrics().Counters.length, METRICS_SERIES_MAX);
    assert.ok(metrics.droppedSeries >= 1);
  });

  test('measureSince records elapsed milliseconds as a sample', () => {
    const time = clock();
    const metrics = new Metrics({ nowMs: time.nowMs });
    const start = time.nowMs();
    time.set(T0 + 250);
    metrics.measureSince(['leader', 'reconcileMember'], start);
    assert.equal(metrics.displayMetrics().Samples[0]?.Sum, 250);
  });
});

describe('the Prometheus exposition', () => {
  test('names join with underscores and replace forbidden characters', () => {
    assert.equal(prometheusName(['consul', 'raft', 'apply']), 'consul_raft_apply');
    assert.equal(prometheusName(['consul', 'my-host.example', 'a b=c/d']), 'consul_my_host_example_a_b_c_d');
  });

  test('Go %g float formatting', () => {
    assert.deepEqual([1, 0, 0.5, 123456, 1234567, 0.0001, 0.00001, 1e21, NaN, Infinity, -2.5].map(formatGoFloat), [
      '1', '0', '0.5', '123456', '1.234567e+06', '0.0001', '1e-05', '1e+21', 'NaN', '+Inf', '-2.5',
    ]);
  });

  test('gauges, counters and summaries render as valid text, sorted by name', () => {
    const time = clock();
    const metrics = new Metrics({ nowMs: time.nowMs, prometheusRetentionMs: 60_000, hostName: 'h1' });
    metrics.addSample(['raft', 'apply'], 2, { dc: 'dc1' });
    metrics.addSample(['raft', 'apply'], 4, { dc: 'dc1' });
    metrics.incrCounter(['catalog', 'register'], 1);
    metrics.incrCounter(['catalog', 'register'], 1);
    metrics.setGauge(['runtime', 'alloc_bytes'], 1_000_000);
    const text = metrics.prometheusText();
    assert.equal(
      text,
      [
        '# HELP consul_catalog_register consul_catalog_register',
        '# TYPE consul_catalog_register counter',
        'consul_catalog_register 2',
        '# HELP consul_h1_runtime_alloc_bytes consul_h1_runtime_alloc_bytes',
        '# TYPE consul_h1_runtime_alloc_bytes gauge',
        'consul_h1_runtime_alloc_bytes 1e+06',
        '# HELP consul_raft_apply consul_raft_apply',
        '# TYPE consul_raft_apply summary',
        'consul_raft_apply{dc="dc1",quantile="0.5"} 2',
        'consul_raft_apply{dc="dc1",quantile="0.9"} 4',
        'consul_raft_apply{dc="dc1",quantile="0.99"} 4',
        'consul_raft_apply_sum{dc="dc1"} 6',
        'consul_raft_apply_count{dc="dc1"} 2',
        '',
      ].join('\n'),
    );
    const parsed = parsePrometheus(text);
    assert.equal(parsed.types.get('consul_raft_apply'), 'summary');
    assert.equal(parsed.samples.length, 7);
  });

  test('label values are escaped and the output still parses', () => {
    const metrics = new Metrics({ nowMs: clock().nowMs, prometheusRetentionMs: 1 });
    metrics.setGauge(['g'], 1, { path: 'a"b\\c\nd', 'bad-name': 'x' });
    const parsed = parsePrometheus(metrics.prometheusText());
    assert.equal(parsed.samples[0]?.labels, '{bad_name="x",path="a\\"b\\\\c\\nd"}');
  });

  test('summary quantiles age out after 10 s; series expire after the retention time', () => {
    const time = clock();
    const metrics = new Metrics({ nowMs: time.nowMs, prometheusRetentionMs: 30_000 });
    metrics.addSample(['s'], 7);
    time.set(T0 + 11_000);
    assert.match(metrics.prometheusText(), /consul_s\{quantile="0.5"\} NaN\n/);
    assert.match(metrics.prometheusText(), /consul_s_count 1\n/);
    time.set(T0 + 31_000);
    assert.equal(metrics.prometheusText(), '');
  });

  test('Prometheus is off unless a retention time is set', () => {
    const metrics = new Metrics({ nowMs: clock().nowMs });
    metrics.setGauge(['g'], 1);
    assert.equal(metrics.isPrometheusEnabled, false);
    assert.equal(metrics.prometheusText(), '');
  });

  test('runtime gauges are the ones Node can report', () => {
    const metrics = new Metrics({ nowMs: clock().nowMs, hostName: 'h', prometheusRetentionMs: 60_000 });
    metrics.emitRuntimeStats({ allocBytes: 10, sysBytes: 20 });
    metrics.recordGcPause(1500, { runs: 1, pauseNs: 1500 });
    const summary = metrics.displayMetrics();
    assert.deepEqual(summary.Gauges.map((gauge) => gauge.Name), [
      'consul.h.runtime.alloc_bytes',
      'consul.h.runtime.sys_bytes',
      'consul.h.runtime.total_gc_pause_ns',
      'consul.h.runtime.total_gc_runs',
    ]);
    assert.deepEqual(summary.Samples.map((sample) => sample.Name), ['consul.runtime.gc_pause_ns']);
  });

  test('startRuntimeStats emits at once and stops cleanly', () => {
    const metrics = new Metrics({ nowMs: clock().nowMs });
    const stop = startRuntimeStats(metrics, () => ({ allocBytes: 5, sysBytes: 6 }));
    stop();
    assert.deepEqual(metrics.displayMetrics().Gauges.map((gauge) => [gauge.Name, gauge.Value]), [['consul.runtime.alloc_bytes', 5], ['consul.runtime.sys_bytes', 6]]);
    const real = readRuntimeStats();
    assert.ok(real.allocBytes > 0 && real.sysBytes >= real.allocBytes);
  });
});
