// Go durations, as Consul reads and writes them.
//
// Consul's configuration files, HTTP bodies and query parameters carry durations in the
// syntax of Go's time.ParseDuration ("10s", "1m30s", "1.5h", "250ms", "-2us"), and its JSON
// output renders them with Go's Duration.String(). Clients depend on both: python-consul sends
// "15.0s", node-consul sends "120000ms", and some tools read "Interval":"10s" back. This
// module parses and formats that syntax exactly, error texts included, so every subsystem
// agrees on one reading.
//
// Values are integer nanoseconds held in a JS number. Go's limit is int64 nanoseconds
// (about 292 years); numbers are exact up to 2^53 ns (about 104 days), which is more
// precision than any timer here has, so the loss past that point is harmless.

/** A parse failure, with Go's exact message (for example `time: invalid duration "x"`). */
export class DurationError extends Error {
  override readonly name = 'DurationError';
}

export const NANOS_PER_MICRO = 1e3;
export const NANOS_PER_MILLI = 1e6;
export const NANOS_PER_SECOND = 1e9;
export const NANOS_PER_MINUTE = 60e9;
export const NANOS_PER_HOUR = 3600e9;

/** Go's math.MaxInt64: the largest duration Go can represent. */
const DURATION_NANOS_MAX = 9223372036854775807;

/** Unit suffixes of time.ParseDuration; "µ" (U+00B5) and "μ" (U+03BC) are both micro. */
const UNIT_NANOS: ReadonlyMap<string, number> = new Map([
  ['ns', 1],
  ['us', NANOS_PER_MICRO],
  ['\u00b5s', NANOS_PER_MICRO],
  ['\u03bcs', NANOS_PER_MICRO],
  ['ms', NANOS_PER_MILLI],
  ['s', NANOS_PER_SECOND],
  ['m', NANOS_PER_MINUTE],
  ['h', NANOS_PER_HOUR],
]);

/**
 * Parses a Go duration string into nanoseconds. Accepts exactly what time.ParseDuration
 * accepts: an optional sign, then one or more `<decimal><unit>` groups, or a bare "0".
 * Throws DurationError with Go's message otherwise.
 */
export function parseDuration(text: string): number {
  const quoted = timeQuote(text);
  let rest = text;
  let isNegative = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    isNegative = rest[0] === '-';
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw new DurationError(`time: invalid duration ${quoted}`);
  let total = 0;
  while (rest !== '') {
    const number = /^(\d*)(?:\.(\d*))?/.exec(rest);
    const whole = number?.[1] ?? '';
    const fraction = number?.[2] ?? '';
    // Go requires a digit on at least one side of the point: "." and ".s" are invalid.
    if (whole === '' && fraction === '') throw new DurationError(`time: invalid duration ${quoted}`);
    rest = rest.slice(number?.[0].length ?? 0);
    const unitMatch = /^[^\d.]*/.exec(rest);
    const unit = unitMatch?.[0] ?? '';
    if (unit === '') throw new DurationError(`time: missing unit in duration ${quoted}`);
    const unitNanos = UNIT_NANOS.get(unit);
    if (unitNanos === undefined) {
      throw new DurationError(`time: unknown unit ${timeQuote(unit)} in duration ${quoted}`);
    }
    rest = rest.slice(unit.length);
    total += Number(whole || '0') * unitNanos + fractionNanos(fraction, unitNanos);
    if (total > DURATION_NANOS_MAX) throw new DurationError(`time: invalid duration ${quoted}`);
  }
  // Never -0: callers compare durations with ===, and Go has no negative zero.
  return isNegative && total !== 0 ? -total : total;
}

/**
 * Formats nanoseconds the way Go's Duration.String() does: "0s", "250ms", "1.5s",
 * "1m30s", "72h0m0s", "1µs". Fractions are rounded to whole nanoseconds first.
 */
export function formatDuration(nanos: number): string {
  let n = Math.round(nanos);
  if (n === 0) return '0s';
  const sign = n < 0 ? '-' : '';
  n = Math.abs(n);
  if (n < NANOS_PER_SECOND) {
    // Below one second Go picks the largest unit that keeps an integer part.
    if (n < NANOS_PER_MICRO) return `${sign}${n}ns`;
    if (n < NANOS_PER_MILLI) return `${sign}${decimal(n, NANOS_PER_MICRO)}\u00b5s`;
    return `${sign}${decimal(n, NANOS_PER_MILLI)}ms`;
  }
  const hours = Math.floor(n / NANOS_PER_HOUR);
  const minutes = Math.floor((n % NANOS_PER_HOUR) / NANOS_PER_MINUTE);
  const seconds = decimal(n % NANOS_PER_MINUTE, NANOS_PER_SECOND);
  if (hours > 0) return `${sign}${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${sign}${minutes}m${seconds}s`;
  return `${sign}${seconds}s`;
}

/** Converts nanoseconds to whole milliseconds for timers (rounding toward zero, like Go's Milliseconds()). */
export function nanosToMillis(nanos: number): number {
  return Math.trunc(nanos / NANOS_PER_MILLI);
}

/** `value / unit` written with the shortest exact decimal fraction, as Go prints it. */
function decimal(value: number, unit: number): string {
  const whole = Math.floor(value / unit);
  const remainder = value % unit;
  if (remainder === 0) return String(whole);
  const digits = String(unit).length - 1;
  const fraction = String(remainder).padStart(digits, '0').replace(/0+$/, '');
  return `${whole}.${fraction}`;
}

/**
 * The nanoseconds that a decimal fraction of `unitNanos` contributes (".5" of 1s = 5e8).
 * Go reads the fraction's digits as an integer (as many as fit in int64), converts it to a
 * float64 and multiplies by unit/scale, truncating; doing the same arithmetic here gives the
 * same nanosecond in every case, where dividing first would land one short.
 */
function fractionNanos(fraction: string, unitNanos: number): number {
  if (fraction === '') return 0;
  let digits = fraction.slice(0, 19);
  if (BigInt(digits) > BigInt(DURATION_NANOS_MAX)) digits = digits.slice(0, 18);
  return Math.trunc(Number(digits) * (unitNanos / 10 ** digits.length));
}

/**
 * Quotes text the way Go's time package does in its errors: printable ASCII as is (with `"`
 * and `\\` escaped), every byte of a control or non-ASCII character as `\xNN`.
 */
function timeQuote(text: string): string {
  let quoted = '"';
  for (const character of text) {
    const code = character.codePointAt(0) ?? 0;
    if (code < 0x20 || code >= 0x80) {
      for (const byte of Buffer.from(character, 'utf8')) quoted += `\\x${byte.toString(16).padStart(2, '0')}`;
    } else {
      quoted += character === '"' || character === '\\' ? `\\${character}` : character;
    }
  }
  return `${quoted}"`;
}
