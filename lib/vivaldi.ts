// Vivaldi network coordinates, as serf's coordinate package computes them, and the ping-ack
// payload that carries them (serf ping_delegate.go).
//
// Each node keeps a coordinate (a Euclidean vector plus a height, an error estimate and an
// adjustment term). When a direct UDP ping to a peer is acked, the ack carries the peer's
// coordinate; the RTT is passed through a per-peer median filter and then moves our coordinate
// like a spring (Vivaldi), learns an adjustment term from the last AdjustmentWindowSize residuals,
// and is pulled gently towards the origin (gravity) so the whole system does not drift.
//
// Go's time.Duration is an int64 count of nanoseconds, and serf converts distances to Durations
// and back (DistanceTo(...).Seconds()); the truncation this causes is reproduced here so our
// numbers follow serf's to the last bit where the arithmetic is the same.
//
// Not here: the coordinate cache per member and Consul's coordinate batching (serf.ts, agent).
//
// Invariants: the client's coordinate is always valid (finite components) and has
// `dimensionality` components; an update that would make it invalid resets it (counted).
//
// References: hashicorp/serf v0.9.4 coordinate/{config,coordinate,client}.go,
// serf/ping_delegate.go; Dabek et al., "Vivaldi: A Decentralized Network Coordinate System"
// (SIGCOMM 2004); Ledlie et al., "Network Coordinates in the Wild" (NSDI 2007, latency filter).

import assert from 'node:assert/strict';
import { float64, MsgpackReader, type MsgpackValue } from './msgpack.js';
import { asWireError, encodeGoMessage, GossipWireError, RAW_STRINGS } from './gossipwire.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** coordinate.Config. */
export interface VivaldiConfig {
  readonly dimensionality: number;
  readonly errorMax: number;
  readonly ce: number;
  readonly cc: number;
  readonly adjustmentWindowSize: number;
  readonly heightMin: number;
  readonly latencyFilterSize: number;
  readonly gravityRho: number;
}

/** coordinate.Coordinate; `vec`, `height` and `adjustment` are in seconds. */
export interface Coordinate {
  readonly vec: readonly number[];
  readonly error: number;
  readonly adjustment: number;
  readonly height: number;
}

/** Why an update was refused (coordinate.Client.Update errors). */
export type VivaldiErrorCode = 'ERR_VIVALDI_DIMENSIONS' | 'ERR_VIVALDI_INVALID' | 'ERR_VIVALDI_RTT_RANGE';

export class VivaldiError extends Error {
  override readonly name = 'VivaldiError';
  constructor(
    readonly code: VivaldiErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** coordinate.DefaultConfig(). */
export const DEFAULT_VIVALDI_CONFIG: VivaldiConfig = {
  dimensionality: 8,
  errorMax: 1.5,
  ce: 0.25,
  cc: 0.25,
  adjustmentWindowSize: 20,
  heightMin: 10.0e-6,
  latencyFilterSize: 3,
  gravityRho: 150.0,
};

/** serf PingVersion: the first byte of the ack payload. */
export const PING_PAYLOAD_VERSION = 1;
/** Largest RTT serf feeds into Vivaldi (client.go maxRTT). */
export const VIVALDI_RTT_NS_MAX = 10_000_000_000;
/** Peers whose latency samples we keep; serf forgets reaped nodes, this bounds the rest. */
export const VIVALDI_FILTER_NODES_MAX = 65536;
/** Most vector components we accept in a peer's coordinate before rejecting it. */
export const VIVALDI_DIMENSIONS_MAX = 64;

// ---------------------------------------------------------------------------------------------
// Exported API: coordinate math

/** A coordinate at the origin with the maximal error (coordinate.NewCoordinate). */
export function newCoordinate(config: VivaldiConfig = DEFAULT_VIVALDI_CONFIG): Coordinate {
  return { vec: new Array<number>(config.dimensionality).fill(0), error: config.errorMax, adjustment: 0, height: config.heightMin };
}

/** All components finite (coordinate.IsValid). */
export function isValidCoordinate(c: Coordinate): boolean {
  return c.vec.every(Number.isFinite) && Number.isFinite(c.error) && Number.isFinite(c.adjustment) && Number.isFinite(c.height);
}

/** Same dimensionality (coordinate.IsCompatibleWith). */
export function isCompatible(a: Coordinate, b: Coordinate): boolean {
  return a.vec.length === b.vec.length;
}

/** Euclidean distance plus both heights, in seconds, without adjustments (rawDistanceTo). */
export function rawDistanceSeconds(a: Coordinate, b: Coordinate): number {
  assert(isCompatible(a, b), 'coordinate dimensionality does not match');
  return magnitude(diff(a.vec, b.vec)) + a.height + b.height;
}

/**
 * Estimated RTT in whole nanoseconds as serf's DistanceTo returns it: the raw distance plus both
 * adjustments, unless that sum is not positive; truncated to an integer as Go's Duration is.
 */
export function distanceNs(a: Coordinate, b: Coordinate): number {
  const dist = rawDistanceSeconds(a, b);
  const adjusted = dist + a.adjustment + b.adjustment;
  return Math.trunc((adjusted > 0 ? adjusted : dist) * SECONDS_TO_NS);
}

/** DistanceTo(...).Seconds(): the Duration converted back the way Go does it. */
export function distanceSeconds(a: Coordinate, b: Coordinate): number {
  return durationSeconds(distanceNs(a, b));
}

/** Go's Duration.Seconds() for an integer nanosecond count. */
export function durationSeconds(ns: number): number {
  const sec = Math.trunc(ns / SECONDS_TO_NS);
  return sec + (ns - sec * SECONDS_TO_NS) / SECONDS_TO_NS;
}

/**
 * Moves `c` by `force` seconds along the unit vector from `other` to `c` (coordinate.ApplyForce);
 * the height grows or shrinks in proportion and never goes below heightMin. When the two points
 * coincide, the direction is random (`rng`).
 */
export function applyForce(config: VivaldiConfig, c: Coordinate, force: number, other: Coordinate, rng: () => number): Coordinate {
  assert(isCompatible(c, other), 'coordinate dimensionality does not match');
  const { unit, mag } = unitVectorAt(c.vec, other.vec, rng);
  let height = c.height;
  if (mag > ZERO_THRESHOLD) height = Math.max((c.height + other.height) * force / mag + c.height, config.heightMin);
  return { vec: c.vec.map((value, i) => value + (unit[i] ?? 0) * force), error: c.error, adjustment: c.adjustment, height };
}

// ---------------------------------------------------------------------------------------------
// Exported API: the client (coordinate.Client)

/** One node's Vivaldi state. */
export class VivaldiClient {
  // Invariant: coord is valid and has config.dimensionality components.
  private coord: Coordinate;
  private readonly origin: Coordinate;
  private adjustmentIndex = 0;
  private readonly adjustmentSamples: number[];
  // Invariant: every list holds at most latencyFilterSize samples; at most VIVALDI_FILTER_NODES_MAX lists.
  private readonly latencySamples = new Map<string, number[]>();
  /** Times the coordinate went invalid and was reset (ClientStats.Resets). */
  resets = 0;

  constructor(
    readonly config: VivaldiConfig = DEFAULT_VIVALDI_CONFIG,
    private readonly rng: () => number,
  ) {
    assert(config.dimensionality > 0 && config.dimensionality <= VIVALDI_DIMENSIONS_MAX, 'dimensionality must be >0');
    this.coord = newCoordinate(config);
    this.origin = newCoordinate(config);
    this.adjustmentSamples = new Array<number>(config.adjustmentWindowSize).fill(0);
  }

  /** A copy of our coordinate. */
  getCoordinate(): Coordinate {
    return cloneCoordinate(this.coord);
  }

  /** Replaces our coordinate (e.g. restored from a snapshot); refuses invalid or alien ones. */
  setCoordinate(coord: Coordinate): VivaldiError | null {
    const problem = this.check(coord);
    if (problem !== null) return problem;
    this.coord = cloneCoordinate(coord);
    return null;
  }

  /** Drops a node's latency samples (serf calls it when the node is reaped). */
  forgetNode(node: string): void {
    this.latencySamples.delete(node);
  }

  /** Our estimate of the RTT to `other`, in nanoseconds. */
  distanceNs(other: Coordinate): number {
    return distanceNs(this.coord, other);
  }

  /**
   * Feeds one RTT observation (integer nanoseconds) to `node` whose coordinate is `other`;
   * returns our new coordinate, or an error (nothing changes then).
   */
  update(node: string, other: Coordinate, rttNs: number): Coordinate | VivaldiError {
    const problem = this.check(other);
    if (problem !== null) return problem;
    if (!(rttNs >= 0 && rttNs <= VIVALDI_RTT_NS_MAX)) {
      return new VivaldiError('ERR_VIVALDI_RTT_RANGE', `round trip time not in valid range, duration ${rttNs}ns is not a positive value less than 10s`);
    }
    const rttSeconds = this.latencyFilter(node, durationSeconds(Math.trunc(rttNs)));
    this.updateVivaldi(other, rttSeconds);
    this.updateAdjustment(other, rttSeconds);
    this.updateGravity();
    if (!isValidCoordinate(this.coord)) {
      this.resets++;
      this.coord = newCoordinate(this.config);
    }
    return cloneCoordinate(this.coord);
  }

  /** The median of the last latencyFilterSize samples for `node`, after adding `rttSeconds`. */
  latencyFilter(node: string, rttSeconds: number): number {
    let samples = this.latencySamples.get(node);
    if (samples === undefined) {
      if (this.latencySamples.size >= VIVALDI_FILTER_NODES_MAX) {
        const oldest = this.latencySamples.keys().next().value;
        if (oldest !== undefined) this.latencySamples.delete(oldest);
      }
      samples = [];
      this.latencySamples.set(node, samples);
    }
    samples.push(rttSeconds);
    if (samples.length > this.config.latencyFilterSize) samples.shift();
    const sorted = samples.slice().sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    assert(median !== undefined, 'latency filter holds at least one sample');
    return median;
  }

  private check(other: Coordinate): VivaldiError | null {
    if (!isCompatible(this.coord, other)) return new VivaldiError('ERR_VIVALDI_DIMENSIONS', "dimensions aren't compatible");
    if (!isValidCoordinate(other)) return new VivaldiError('ERR_VIVALDI_INVALID', 'coordinate is invalid');
    return null;
  }

  private updateVivaldi(other: Coordinate, rttIn: number): void {
    const dist = distanceSeconds(this.coord, other);
    const rtt = Math.max(rttIn, ZERO_THRESHOLD);
    const wrongness = Math.abs(dist - rtt) / rtt;
    const totalError = Math.max(this.coord.error + other.error, ZERO_THRESHOLD);
    const weight = this.coord.error / totalError;
    const error = Math.min(this.config.ce * weight * wrongness + this.coord.error * (1.0 - this.config.ce * weight), this.config.errorMax);
    const force = this.config.cc * weight * (rtt - dist);
    this.coord = applyForce(this.config, { ...this.coord, error }, force, other, this.rng);
  }

  private updateAdjustment(other: Coordinate, rttSeconds: number): void {
    const window = this.config.adjustmentWindowSize;
    if (window === 0) return;
    this.adjustmentSamples[this.adjustmentIndex] = rttSeconds - rawDistanceSeconds(this.coord, other);
    this.adjustmentIndex = (this.adjustmentIndex + 1) % window;
    let sum = 0;
    for (const sample of this.adjustmentSamples) sum += sample;
    this.coord = { ...this.coord, adjustment: sum / (2.0 * window) };
  }

  private updateGravity(): void {
    const dist = distanceSeconds(this.origin, this.coord);
    const force = -1.0 * Math.pow(dist / this.config.gravityRho, 2.0);
    this.coord = applyForce(this.config, this.coord, force, this.origin, this.rng);
  }
}

// ---------------------------------------------------------------------------------------------
// Exported API: the ack payload

/** `01` + msgpack {Adjustment, Error, Height, Vec} with every number as a float64 (`cb`). */
export function encodeCoordinatePayload(coord: Coordinate): Uint8Array {
  return encodeGoMessage(PING_PAYLOAD_VERSION, {
    Adjustment: float64(coord.adjustment),
    Error: float64(coord.error),
    Height: float64(coord.height),
    Vec: coord.vec.map(float64),
  });
}

/**
 * Reads an ack payload: null for an empty payload (serf ignores it); GossipWireError for another
 * version byte or a malformed body. Numbers may come as floats or integers, as Go accepts.
 */
export function decodeCoordinatePayload(payload: Uint8Array): Coordinate | null {
  if (payload.length === 0) return null;
  if (payload[0] !== PING_PAYLOAD_VERSION) throw new GossipWireError('ERR_GOSSIP_TYPE_UNSUPPORTED', `Unsupported ping version: ${payload[0] ?? -1}`);
  let value: MsgpackValue;
  try {
    value = new MsgpackReader(payload.subarray(1), RAW_STRINGS).read();
  } catch (error) {
    throw asWireError(error, 'coordinate');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    throw new GossipWireError('ERR_GOSSIP_MALFORMED', 'coordinate: expected a map');
  }
  const fields = value as { [key: string]: MsgpackValue };
  const rawVec = Object.hasOwn(fields, 'Vec') ? fields['Vec'] : null;
  if (rawVec !== null && rawVec !== undefined && !Array.isArray(rawVec)) throw new GossipWireError('ERR_GOSSIP_MALFORMED', 'coordinate.Vec: expected an array');
  const vecValues = rawVec ?? [];
  if (vecValues.length > VIVALDI_DIMENSIONS_MAX) throw new GossipWireError('ERR_GOSSIP_TOO_LARGE', `coordinate has ${vecValues.length} dimensions`);
  return {
    vec: vecValues.map((item) => asFloat(item, 'Vec')),
    error: asFloat(field(fields, 'Error'), 'Error'),
    adjustment: asFloat(field(fields, 'Adjustment'), 'Adjustment'),
    height: asFloat(field(fields, 'Height'), 'Height'),
  };
}

// ---------------------------------------------------------------------------------------------
// Private helpers

const SECONDS_TO_NS = 1.0e9;
/** Below this a vector is treated as zero (coordinate.go zeroThreshold). */
const ZERO_THRESHOLD = 1.0e-6;

function cloneCoordinate(c: Coordinate): Coordinate {
  return { vec: c.vec.slice(), error: c.error, adjustment: c.adjustment, height: c.height };
}

function diff(a: readonly number[], b: readonly number[]): number[] {
  return a.map((value, i) => value - (b[i] ?? 0));
}

function magnitude(vec: readonly number[]): number {
  let sum = 0;
  for (const value of vec) sum += value * value;
  return Math.sqrt(sum);
}

/** The unit vector from `b` to `a` and the distance; a random direction (mag 0) when they coincide. */
function unitVectorAt(a: readonly number[], b: readonly number[], rng: () => number): { unit: number[]; mag: number } {
  const d = diff(a, b);
  const mag = magnitude(d);
  if (mag > ZERO_THRESHOLD) return { unit: d.map((value) => value / mag), mag };
  const random = d.map(() => rng() - 0.5);
  const randomMag = magnitude(random);
  if (randomMag > ZERO_THRESHOLD) return { unit: random.map((value) => value / randomMag), mag: 0 };
  const unit = new Array<number>(d.length).fill(0);
  unit[0] = 1.0;
  return { unit, mag: 0 };
}

function field(fields: { [key: string]: MsgpackValue }, name: string): MsgpackValue {
  return Object.hasOwn(fields, name) ? (fields[name] ?? null) : null;
}

function asFloat(value: MsgpackValue | undefined, name: string): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  throw new GossipWireError('ERR_GOSSIP_MALFORMED', `coordinate.${name}: expected a number`);
}
