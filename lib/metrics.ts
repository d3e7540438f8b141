// Telemetry: an in-memory metrics registry shaped like the one Consul exposes.
//
// Consul records its metrics through hashicorp/go-metrics into an in-memory sink that aggregates
// per 10-second interval and keeps one minute of intervals; GET /v1/agent/metrics shows the last
// finished interval. With `telemetry.prometheus_retention_time` > 0 it also feeds a Prometheus
// registry, which `?format=prometheus` renders in the text exposition format. This module does
// both from the same calls (setGauge, incrCounter, addSample, measureSince), with go-metrics'
// naming rules: keys are prefixed with the service name ("consul"), gauges also with the host
// name when an external sink is on and telemetry.disable_hostname is not set (Consul
// lib/telemetry.go InitTelemetry), and Prometheus names replace ` .=-/` with `_`.
//
// Values are float32 in go-metrics (the sink's API takes float32), so every recorded value is
// rounded to float32 first; the JSON renders gauge values with float32's shortest digits, as Go's
// encoder does, and Prometheus renders float64 with Go's `%g` rules.
//
// Runtime gauges: Consul (Go) reports consul.runtime.{num_goroutines, alloc_bytes, sys_bytes,
// malloc_count, free_count, heap_objects, total_gc_pause_ns, total_gc_runs} and the sample
// gc_pause_ns once a second. Node can report alloc_bytes (V8 heap used), sys_bytes (resident set
// size), total_gc_runs, total_gc_pause_ns and gc_pause_ns (from perf_hooks GC entries) honestly;
// num_goroutines, malloc_count, free_count and heap_objects have no Node equivalent and are
// omitted rather than faked.
//
// Not here: go-metrics' prefix filters (telemetry.prefix_filter), statsd/dogstatsd sinks,
// the Points type (EmitKey has no caller in Consul's HTTP-visible metrics), the metrics stream.
//
// Invariants: every interval's maps and the Prometheus registry are bounded (METRICS_SERIES_MAX);
// a series beyond the bound is dropped and counted in `droppedSeries`, never stored.
//
// Reference: hashicorp/go-metrics inmem.go, inmem_endpoint.go (DisplayMetrics), metrics.go
// (key prefixing, emitRuntimeStats), prometheus/prometheus.go; Consul lib/telemetry.go,
// agent/agent_endpoint.go (AgentMetrics); Prometheus text exposition format 0.0.4.

import assert from 'node:assert/strict';
import { PerformanceObserver } from 'node:perf_hooks';

// ---------------------------------------------------------------------------------------------
// Exported types

/** Labels of one series: name -> value. */
export type MetricLabels = Readonly<Record<string, string>>;

export interface MetricsOptions {
  /** Milliseconds since the epoch; drives intervals and Prometheus expiry. */
  readonly nowMs: () => number;
  /** telemetry.metrics_prefix; Consul's default is "consul". */
  readonly serviceName?: string;
  /**
   * The host name gauges are prefixed with: the machine's name, or "" when
   * telemetry.disable_hostname is set. Consul drops it anyway when no external sink (here:
   * Prometheus) is configured, since it is irrelevant on the host itself; so does this.
   */
  readonly hostName?: string;
  /** telemetry.prometheus_retention_time in ms; 0 (Consul's default) disables Prometheus. */
  readonly prometheusRetentionMs?: number;
  readonly intervalMs?: number;
  readonly retainMs?: number;
}

/** GET /v1/agent/metrics (go-metrics MetricsSummary). */
export interface MetricsSummary {
  readonly Timestamp: string;
  readonly Gauges: readonly GaugeValue[];
  readonly Points: readonly { readonly Name: string; readonly Points: readonly number[] }[];
  readonly Counters: readonly SampledValue[];
  readonly Samples: readonly SampledValue[];
}

export interface GaugeValue {
  readonly Name: string;
  readonly Value: number;
  readonly Labels: MetricLabels;
}

export interface SampledValue {
  readonly Name: string;
  readonly Count: number;
  readonly Rate: number;
  readonly Sum: number;
  readonly Min: number;
  readonly Max: number;
  readonly Mean: number;
  readonly Stddev: number;
  readonly Labels: MetricLabels;
}

/** What the runtime collector reads once a second (see readRuntimeStats). */
export interface RuntimeStats {
  readonly allocBytes: number;
  readonly sysBytes: number;
}

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** go-metrics' in-memory sink: 10 s aggregation intervals, one minute retained (lib/telemetry.go). */
export const METRICS_INTERVAL_MS = 10_000;
export const METRICS_RETAIN_MS = 60_000;
/** Distinct series (name + labels) one interval, or the Prometheus registry, may hold per kind. */
export const METRICS_SERIES_MAX = 4096;
/** Labels one series may carry; more are a programming error. */
export const METRICS_LABELS_MAX = 16;
/** Observations a Prometheus summary keeps for its quantiles (its window is PROMETHEUS_SUMMARY_MAX_AGE_MS). */
export const PROMETHEUS_SUMMARY_OBSERVATIONS_MAX = 2048;
/** go-metrics' Prometheus summaries use a 10 s max age and these objectives. */
export const PROMETHEUS_SUMMARY_MAX_AGE_MS = 10_000;
export const PROMETHEUS_QUANTILES: readonly number[] = [0.5, 0.9, 0.99];
/** How often the runtime gauges are refreshed (go-metrics ProfileInterval). */
export const RUNTIME_STATS_INTERVAL_MS = 1_000;

/** The Content-Type Consul's Prometheus handler answers with (text exposition 0.0.4). */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

// ---------------------------------------------------------------------------------------------
// The registry

/** The metrics registry: one per agent, shared by every module that records metrics. */
export class Metrics {
  readonly serviceName: string;
  readonly hostName: string;
  readonly prometheusRetentionMs: number;
  /** Series refused because a bound was reached (each refusal counts once). */
  droppedSeries = 0;
  private readonly nowMs: () => number;
  private readonly intervalMs: number;
  /** Invariant: at most maxIntervals entries, in increasing start order. */
  private readonly intervals: IntervalMetrics[] = [];
  private readonly maxIntervals: number;
  private readonly rateDenominator: number;
  private readonly prometheus = new PrometheusRegistry();

  constructor(options: MetricsOptions) {
    this.nowMs = options.nowMs;
    this.serviceName = options.serviceName ?? 'consul';
    this.prometheusRetentionMs = options.prometheusRetentionMs ?? 0;
    this.hostName = this.prometheusRetentionMs > 0 ? (options.hostName ?? '') : '';
    this.intervalMs = options.intervalMs ?? METRICS_INTERVAL_MS;
    const retainMs = options.retainMs ?? METRICS_RETAIN_MS;
    assert.ok(this.intervalMs > 0 && retainMs >= this.intervalMs, 'metrics interval must be positive and not exceed retention');
    this.maxIntervals = Math.floor(retainMs / this.intervalMs);
    this.rateDenominator = this.intervalMs / 1000;
  }

  /** Whether ?format=prometheus is served (Consul: prometheus_retention_time > 0). */
  get isPrometheusEnabled(): boolean {
    return this.prometheusRetentionMs > 0;
  }

  /** Sets a gauge (go-metrics SetGauge): the host name is part of the key unless disabled. */
  setGauge(key: readonly string[], value: number, labels: MetricLabels = {}): void {
    const parts = [this.serviceName, ...(this.hostName !== '' ? [this.hostName] : []), ...key];
    const series = seriesKey(parts, labels);
    const interval = this.currentInterval();
    const stored = boundedSet(interval.gauges, series.hash, () => ({ name: series.name, labels, value: 0 }), this);
    if (stored) stored.value = Math.fround(value);
    this.prometheus.gauge(parts, labels, Math.fround(value), this.nowMs(), this);
  }

  /** Adds to a counter (go-metrics IncrCounter). */
  incrCounter(key: readonly string[], value = 1, labels: MetricLabels = {}): void {
    const parts = [this.serviceName, ...key];
    const series = seriesKey(parts, labels);
    const aggregate = boundedSet(this.currentInterval().counters, series.hash, () => newAggregate(series.name, labels), this);
    if (aggregate) ingest(aggregate, Math.fround(value), this.rateDenominator);
    this.prometheus.counter(parts, labels, Math.fround(value), this.nowMs(), this);
  }

  /** Records one observation of a sample (go-metrics AddSample). */
  addSample(key: readonly string[], value: number, labels: MetricLabels = {}): void {
    const parts = [this.serviceName, ...key];
    const series = seriesKey(parts, labels);
    const aggregate = boundedSet(this.currentInterval().samples, series.hash, () => newAggregate(series.name, labels), this);
    if (aggregate) ingest(aggregate, Math.fround(value), this.rateDenominator);
    this.prometheus.summary(parts, labels, Math.fround(value), this.nowMs(), this);
  }

  /** Records the milliseconds since `startMs` as a sample (go-metrics MeasureSince, ms granularity). */
  measureSince(key: readonly string[], startMs: number, labels: MetricLabels = {}): void {
    this.addSample(key, this.nowMs() - startMs, labels);
  }

  /**
   * The last finished interval in Consul's JSON shape, or the current one when it is the only
   * one (go-metrics DisplayMetrics). Entries are sorted by their key including labels.
   */
  displayMetrics(): MetricsSummary {
    this.currentInterval();
    const shown = this.intervals.length === 1 ? this.intervals[0] : this.intervals[this.intervals.length - 2];
    assert.ok(shown, 'currentInterval always leaves at least one interval');
    return {
      Timestamp: goTimeString(shown.startMs),
      Gauges: sortedByHash(shown.gauges).map((gauge) => ({ Name: gauge.name, Value: float32Shortest(gauge.value), Labels: sortedLabels(gauge.labels) })),
      Points: [],
      Counters: sortedByHash(shown.counters).map(sampledValue),
      Samples: sortedByHash(shown.samples).map(sampledValue),
    };
  }

  /** Every live Prometheus series in the text exposition format; "" when Prometheus is off. */
  prometheusText(): string {
    if (!this.isPrometheusEnabled) return '';
    return this.prometheus.render(this.nowMs(), this.prometheusRetentionMs);
  }

  /** Sets the runtime gauges Node can report honestly (see the header). */
  emitRuntimeStats(stats: RuntimeStats): void {
    this.setGauge(['runtime', 'alloc_bytes'], stats.allocBytes);
    this.setGauge(['runtime', 'sys_bytes'], stats.sysBytes);
  }

  /** Records one garbage collection's pause, as go-metrics does from runtime.MemStats. */
  recordGcPause(pauseNs: number, totals: { runs: number; pauseNs: number }): void {
    this.addSample(['runtime', 'gc_pause_ns'], pauseNs);
    this.setGauge(['runtime', 'total_gc_runs'], totals.runs);
    this.setGauge(['runtime', 'total_gc_pause_ns'], totals.pauseNs);
  }

  private currentInterval(): IntervalMetrics {
    const startMs = Math.floor(this.nowMs() / this.intervalMs) * this.intervalMs;
    const last = this.intervals[this.intervals.length - 1];
    if (last && last.startMs === startMs) return last;
    const created: IntervalMetrics = { startMs, gauges: new Map(), counters: new Map(), samples: new Map() };
    this.intervals.push(created);
    if (this.intervals.length > this.maxIntervals) this.intervals.splice(0, this.intervals.length - this.maxIntervals);
    return created;
  }
}

/** Reads the process figures behind the runtime gauges. */
export function readRuntimeStats(): RuntimeStats {
  const usage = process.memoryUsage();
  return { allocBytes: usage.heapUsed, sysBytes: usage.rss };
}

/**
 * Refreshes the runtime gauges every second and records GC pauses as they happen; returns the
 * function that stops both. The timer is unref'd: telemetry never keeps the process alive.
 */
export function startRuntimeStats(metrics: Metrics, read: () => RuntimeStats = readRuntimeStats): () => void {
  const totals = { runs: 0, pauseNs: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const pauseNs = Math.round(entry.duration * 1e6);
      totals.runs += 1;
      totals.pauseNs += pauseNs;
      metrics.recordGcPause(pauseNs, totals);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  metrics.emitRuntimeStats(read());
  const timer = setInterval(() => metrics.emitRuntimeStats(read()), RUNTIME_STATS_INTERVAL_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    observer.disconnect();
  };
}

/** The Prometheus metric name for a key: parts joined by "_", forbidden characters replaced. */
export function prometheusName(parts: readonly string[]): string {
  return parts.join('_').replace(/[^a-zA-Z0-9_:]/g, '_');
}

/** Go's strconv.FormatFloat(value, 'g', -1, 64), which the Prometheus text format uses. */
export function formatGoFloat(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  if (value === 0) return Object.is(value, -0) ? '-0' : '0';
  const [mantissa = '0', exponentText = '0'] = value.toExponential().split('e');
  const exponent = Number(exponentText);
  // Shortest 'g' in Go uses exponent form when the decimal exponent is below -4 or at least 6
  // (not JavaScript's 21), with at least two exponent digits.
  if (exponent < -4 || exponent >= 6) {
    const sign = exponent < 0 ? '-' : '+';
    return `${mantissa}e${sign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  // In this range JavaScript's shortest round-trip decimal is plain notation, as Go's is.
  return String(value);
}

/** The shortest decimal that reads back as the same float32 (how Go encodes a float32). */
export function float32Shortest(value: number): number {
  const target = Math.fround(value);
  if (!Number.isFinite(target) || Number.isInteger(target) && Math.abs(target) < 2 ** 24) return target;
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(target.toPrecision(digits));
    if (Math.fround(candidate) === target) return candidate;
  }
  return target;
}

// ---------------------------------------------------------------------------------------------
// Private helpers: the in-memory sink

interface IntervalMetrics {
  readonly startMs: number;
  readonly gauges: Map<string, { readonly name: string; readonly labels: MetricLabels; value: number }>;
  readonly counters: Map<string, Aggregate>;
  readonly samples: Map<string, Aggregate>;
}

/** go-metrics AggregateSample plus the series identity. */
interface Aggregate {
  readonly name: string;
  readonly labels: MetricLabels;
  count: number;
  rate: number;
  sum: number;
  sumSq: number;
  min: number;
  max: number;
}

function newAggregate(name: string, labels: MetricLabels): Aggregate {
  return { name, labels, count: 0, rate: 0, sum: 0, sumSq: 0, min: 0, max: 0 };
}

function ingest(aggregate: Aggregate, value: number, rateDenominator: number): void {
  aggregate.count += 1;
  aggregate.sum += value;
  aggregate.sumSq += value * value;
  if (aggregate.count === 1 || value < aggregate.min) aggregate.min = value;
  if (aggregate.count === 1 || value > aggregate.max) aggregate.max = value;
  aggregate.rate = aggregate.sum / rateDenominator;
}

function sampledValue(aggregate: Aggregate): SampledValue {
  const { count, sum, sumSq } = aggregate;
  const divisor = count * (count - 1);
  // go-metrics' Stddev: sqrt((n*sumSq - sum^2) / (n*(n-1))), 0 for fewer than two values.
  const stddev = divisor === 0 ? 0 : Math.sqrt((count * sumSq - sum * sum) / divisor);
  return {
    Name: aggregate.name,
    Count: count,
    Rate: aggregate.rate,
    Sum: sum,
    Min: aggregate.min,
    Max: aggregate.max,
    Mean: count === 0 ? 0 : sum / count,
    Stddev: Number.isNaN(stddev) ? 0 : stddev,
    Labels: sortedLabels(aggregate.labels),
  };
}

/** The series key go-metrics' in-memory sink uses: dotted name, then `;label=value` pairs, spaces as "_". */
function seriesKey(parts: readonly string[], labels: MetricLabels): { name: string; hash: string } {
  const entries = Object.entries(labels);
  assert.ok(entries.length <= METRICS_LABELS_MAX, `a metric may carry at most ${METRICS_LABELS_MAX} labels`);
  const name = parts.join('.').replaceAll(' ', '_');
  const hash = name + entries.map(([label, value]) => `;${label}=${value}`.replaceAll(' ', '_')).join('');
  return { name, hash };
}

/** Gets or creates an entry, refusing new entries once the map is at METRICS_SERIES_MAX. */
function boundedSet<V>(map: Map<string, V>, key: string, create: () => V, owner: { droppedSeries: number }): V | undefined {
  const existing = map.get(key);
  if (existing !== undefined) return existing;
  if (map.size >= METRICS_SERIES_MAX) {
    owner.droppedSeries += 1;
    return undefined;
  }
  const created = create();
  map.set(key, created);
  return created;
}

function sortedByHash<V>(map: ReadonlyMap<string, V>): V[] {
  return [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, value]) => value);
}

/** Go encodes map[string]string with sorted keys. */
function sortedLabels(labels: MetricLabels): MetricLabels {
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Go's time.Time.String() for a UTC instant on a whole second: "2024-01-01 00:00:10 +0000 UTC". */
function goTimeString(ms: number): string {
  const iso = new Date(Math.round(ms / 1000) * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} +0000 UTC`;
}

// ---------------------------------------------------------------------------------------------
// Private helpers: the Prometheus registry

type PrometheusKind = 'gauge' | 'counter' | 'summary';

interface PrometheusSeries {
  readonly labels: MetricLabels;
  lastUpdatedMs: number;
  value: number;
  /** Summaries: every observation in the max-age window, oldest first. */
  readonly observations: { atMs: number; value: number }[];
  count: number;
}

interface PrometheusFamily {
  readonly kind: PrometheusKind;
  readonly series: Map<string, PrometheusSeries>;
}

/**
 * The Prometheus side of go-metrics: gauges keep their last value, counters accumulate, samples
 * become summaries with 0.5/0.9/0.99 quantiles over the last 10 s plus _sum and _count. A series
 * not updated within the retention time disappears, as go-metrics' expiry does.
 */
class PrometheusRegistry {
  private readonly families = new Map<string, PrometheusFamily>();
  private seriesCount = 0;

  gauge(parts: readonly string[], labels: MetricLabels, value: number, nowMs: number, owner: { droppedSeries: number }): void {
    const series = this.series('gauge', parts, labels, nowMs, owner);
    if (series) series.value = value;
  }

  counter(parts: readonly string[], labels: MetricLabels, value: number, nowMs: number, owner: { droppedSeries: number }): void {
    const series = this.series('counter', parts, labels, nowMs, owner);
    if (series) series.value += value;
  }

  summary(parts: readonly string[], labels: MetricLabels, value: number, nowMs: number, owner: { droppedSeries: number }): void {
    const series = this.series('summary', parts, labels, nowMs, owner);
    if (!series) return;
    series.value += value;
    series.count += 1;
    series.observations.push({ atMs: nowMs, value });
    pruneObservations(series.observations, nowMs);
  }

  render(nowMs: number, retentionMs: number): string {
    this.expire(nowMs, retentionMs);
    const lines: string[] = [];
    const names = [...this.families.keys()].sort();
    for (const name of names) {
      const family = this.families.get(name);
      assert.ok(family, 'family names come from the map');
      lines.push(`# HELP ${name} ${name}`, `# TYPE ${name} ${family.kind}`);
      const ordered = [...family.series.values()].sort((a, b) => compareStrings(labelText(a.labels), labelText(b.labels)));
      for (const series of ordered) lines.push(...seriesLines(name, family.kind, series, nowMs));
    }
    return lines.length === 0 ? '' : lines.join('\n') + '\n';
  }

  private series(kind: PrometheusKind, parts: readonly string[], labels: MetricLabels, nowMs: number, owner: { droppedSeries: number }): PrometheusSeries | undefined {
    const name = prometheusName(parts);
    let family = this.families.get(name);
    if (family === undefined) {
      family = { kind, series: new Map() };
      this.families.set(name, family);
    }
    // One name keeps one type (Prometheus refuses a family with mixed types); a clash is dropped.
    if (family.kind !== kind) {
      owner.droppedSeries += 1;
      return undefined;
    }
    const sanitized = sanitizeLabels(labels);
    const key = labelText(sanitized);
    let series = family.series.get(key);
    if (series === undefined) {
      if (this.seriesCount >= METRICS_SERIES_MAX) {
        owner.droppedSeries += 1;
        return undefined;
      }
      series = { labels: sanitized, lastUpdatedMs: nowMs, value: 0, observations: [], count: 0 };
      family.series.set(key, series);
      this.seriesCount += 1;
    }
    series.lastUpdatedMs = nowMs;
    return series;
  }

  private expire(nowMs: number, retentionMs: number): void {
    for (const [name, family] of this.families) {
      for (const [key, series] of family.series) {
        if (nowMs - series.lastUpdatedMs > retentionMs) {
          family.series.delete(key);
          this.seriesCount -= 1;
        }
      }
      if (family.series.size === 0) this.families.delete(name);
    }
  }
}

function seriesLines(name: string, kind: PrometheusKind, series: PrometheusSeries, nowMs: number): string[] {
  if (kind !== 'summary') return [`${name}${labelText(series.labels)} ${formatGoFloat(series.value)}`];
  pruneObservations(series.observations, nowMs);
  const sorted = series.observations.map((observation) => observation.value).sort((a, b) => a - b);
  const lines = PROMETHEUS_QUANTILES.map((quantile) => {
    const labels = { ...series.labels, quantile: String(quantile) };
    return `${name}${labelText(labels)} ${formatGoFloat(quantileOf(sorted, quantile))}`;
  });
  lines.push(`${name}_sum${labelText(series.labels)} ${formatGoFloat(series.value)}`);
  lines.push(`${name}_count${labelText(series.labels)} ${series.count}`);
  return lines;
}

/** Drops observations older than the summary's max age, and the oldest beyond the bound. */
function pruneObservations(observations: { atMs: number; value: number }[], nowMs: number): void {
  let stale = 0;
  while (stale < observations.length && nowMs - (observations[stale]?.atMs ?? nowMs) > PROMETHEUS_SUMMARY_MAX_AGE_MS) stale++;
  stale = Math.max(stale, observations.length - PROMETHEUS_SUMMARY_OBSERVATIONS_MAX);
  if (stale > 0) observations.splice(0, stale);
}

/** The rank-based quantile of sorted values; NaN when there are none, as Prometheus shows. */
function quantileOf(sorted: readonly number[], quantile: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(quantile * sorted.length) - 1));
  return sorted[rank] ?? NaN;
}

function sanitizeLabels(labels: MetricLabels): MetricLabels {
  const entries = Object.entries(labels).map(([label, value]) => [label.replace(/[^a-zA-Z0-9_]/g, '_'), value] as const);
  return Object.fromEntries(entries.sort(([a], [b]) => compareStrings(a, b)));
}

/** `{a="x",b="y"}` with the exposition format's escapes, or "" without labels. */
function labelText(labels: MetricLabels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  const escaped = entries.map(([label, value]) => `${label}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return `{${escaped.join(',')}}`;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
