// Reading untrusted JSON objects into typed values, with Consul's error texts.
//
// Consul decodes configuration files and HTTP bodies with mapstructure, which matches keys
// case-insensitively and reports a wrong type as
//   'ports.http' expected type 'int', got unconvertible type 'string', value: 'abc'
// and an unknown key as `invalid config key ports.foo` (config files) or
// `json: unknown field "foo"` (HTTP bodies). Real clients send every spelling: python-consul
// writes `enabletagoverride`, the Go api package `EnableTagOverride`, config files
// `enable_tag_override`. An ObjectReader gives each caller one place that accepts all three,
// checks each value's type, and collects every problem instead of stopping at the first, so an
// operator sees all mistakes in a file at once.
//
// A reader never throws on bad input: problems go into the list the caller passed in.

import { DurationError, parseDuration } from './duration.js';

/** How a reader names an unknown key in its problem message. */
export type UnknownKeyMessage = (path: string, key: string) => string;

/** Config files: `invalid config key services[0].foo` (Consul agent/config/builder.go). */
export const configKeyMessage: UnknownKeyMessage = (path) => `invalid config key ${path}`;

/** Limits on what one decoded object may contain. */
export const STRING_LIST_LENGTH_MAX = 4096;
export const STRING_MAP_SIZE_MAX = 4096;

/**
 * Reads the fields of one JSON object. Each accessor takes the canonical (snake_case) key and
 * optional aliases; it matches them exactly first, then ignoring case, `_` and `-`.
 * Invariant: every key of the object is consumed by an accessor or reported by finish().
 */
export class ObjectReader {
  private readonly remaining = new Map<string, string>();

  constructor(
    private readonly fields: Readonly<Record<string, unknown>>,
    /** Dotted path of this object for messages ("" at the top level). */
    readonly path: string,
    readonly problems: string[],
    private readonly unknownKeyMessage: UnknownKeyMessage = configKeyMessage,
  ) {
    for (const key of Object.keys(fields)) this.remaining.set(key, looseKey(key));
  }

  /** Wraps `value` if it is a JSON object; otherwise records a type problem at `path`. */
  static of(value: unknown, path: string, problems: string[], unknownKeyMessage?: UnknownKeyMessage): ObjectReader | undefined {
    if (!isPlainObject(value)) {
      problems.push(typeProblem(path, 'map[string]interface {}', value));
      return undefined;
    }
    return new ObjectReader(value, path, problems, unknownKeyMessage);
  }

  /** Every key of the object, for maps whose keys are data (node_meta, tagged_addresses). */
  keys(): string[] {
    return Object.keys(this.fields);
  }

  /** Whether any of the names is present (without consuming it). */
  has(...names: string[]): boolean {
    return this.findKey(names, false) !== undefined;
  }

  /** The raw value of a key, consumed but unchecked (for sections decoded elsewhere). */
  raw(...names: string[]): unknown {
    const key = this.take(names);
    return key === undefined ? undefined : this.fields[key];
  }

  string(...names: string[]): string | undefined {
    return this.typed(names, 'string', (value) => (typeof value === 'string' ? value : undefined));
  }

  bool(...names: string[]): boolean | undefined {
    return this.typed(names, 'bool', (value) => (typeof value === 'boolean' ? value : undefined));
  }

  /** A JSON number that is an integer. Fractions are refused rather than truncated silently. */
  int(...names: string[]): number | undefined {
    return this.typed(names, 'int', (value) => (typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined));
  }

  stringList(...names: string[]): string[] | undefined {
    return this.typed(names, '[]string', (value) => {
      if (!Array.isArray(value) || value.length > STRING_LIST_LENGTH_MAX) return undefined;
      return value.every((item) => typeof item === 'string') ? (value as string[]) : undefined;
    });
  }

  stringMap(...names: string[]): Record<string, string> | undefined {
    return this.typed(names, 'map[string]string', (value) => {
      if (!isPlainObject(value) || Object.keys(value).length > STRING_MAP_SIZE_MAX) return undefined;
      return Object.values(value).every((item) => typeof item === 'string') ? { ...(value as Record<string, string>) } : undefined;
    });
  }

  /**
   * A Go duration: a string such as "10s" or "1m30s", or a JSON number of nanoseconds (how
   * Go clients serialize time.Duration). Returns nanoseconds.
   */
  durationNanos(...names: string[]): number | undefined {
    const key = this.take(names);
    if (key === undefined) return undefined;
    const value = this.fields[key];
    const path = this.childPath(names[0] ?? key);
    if (value === null) return undefined;
    if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
    if (typeof value !== 'string') {
      this.problems.push(typeProblem(path, 'string', value));
      return undefined;
    }
    try {
      return parseDuration(value);
    } catch (error) {
      if (!(error instanceof DurationError)) throw error;
      this.problems.push(durationProblem(path, value, error));
      return undefined;
    }
  }

  /** A nested object, as a reader whose messages carry `<path>.<key>`. */
  object(...names: string[]): ObjectReader | undefined {
    const key = this.take(names);
    if (key === undefined) return undefined;
    return ObjectReader.of(this.fields[key], this.childPath(names[0] ?? key), this.problems, this.unknownKeyMessage);
  }

  /** A list of objects, each as a reader whose messages carry `<path>.<key>[i]`. */
  objectList(...names: string[]): ObjectReader[] | undefined {
    const key = this.take(names);
    if (key === undefined) return undefined;
    const value = this.fields[key];
    const path = this.childPath(names[0] ?? key);
    if (!Array.isArray(value)) {
      this.problems.push(typeProblem(path, '[]map[string]interface {}', value));
      return undefined;
    }
    const readers: ObjectReader[] = [];
    value.forEach((item, index) => {
      const reader = ObjectReader.of(item, `${path}[${index}]`, this.problems, this.unknownKeyMessage);
      if (reader) readers.push(reader);
    });
    return readers;
  }

  /** Consumes keys that are accepted but not acted on; returns those that were present. */
  ignore(names: readonly string[]): string[] {
    const present: string[] = [];
    for (const name of names) {
      if (this.take([name]) !== undefined) present.push(this.childPath(name));
    }
    return present;
  }

  /** Reports every key no accessor consumed. Call once, after reading all fields. */
  finish(): void {
    for (const key of this.remaining.keys()) this.problems.push(this.unknownKeyMessage(this.childPath(key), key));
    this.remaining.clear();
  }

  /** `<path>.<key>` for messages. */
  childPath(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  private typed<T>(names: string[], goType: string, accept: (value: unknown) => T | undefined): T | undefined {
    const key = this.take(names);
    if (key === undefined) return undefined;
    const value = this.fields[key];
    // JSON null means "not set", as a nil pointer does in Consul's decoding.
    if (value === null) return undefined;
    const accepted = accept(value);
    if (accepted === undefined) this.problems.push(typeProblem(this.childPath(names[0] ?? key), goType, value));
    return accepted;
  }

  private take(names: string[]): string | undefined {
    return this.findKey(names, true);
  }

  private findKey(names: string[], consume: boolean): string | undefined {
    for (const name of names) {
      if (this.remaining.has(name)) {
        if (consume) this.remaining.delete(name);
        return name;
      }
    }
    const wanted = new Set(names.map(looseKey));
    for (const [key, loose] of this.remaining) {
      if (wanted.has(loose)) {
        if (consume) this.remaining.delete(key);
        return key;
      }
    }
    return undefined;
  }
}

/** Consul's message for a bad duration: `retry_interval: invalid duration: "x": time: invalid duration "x"`. */
export function durationProblem(path: string, text: string, error: DurationError): string {
  return `${path}: invalid duration: ${JSON.stringify(text)}: ${error.message}`;
}

/** mapstructure's wrong-type message. */
export function typeProblem(path: string, goType: string, value: unknown): string {
  return `'${path}' expected type '${goType}', got unconvertible type '${goTypeOf(value)}', value: '${goValueText(value)}'`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Keys compare equal ignoring case, underscores and dashes (EnableTagOverride = enable_tag_override). */
function looseKey(key: string): string {
  return key.toLowerCase().replace(/[_-]/g, '');
}

/** The Go type encoding/json gives a decoded value, as mapstructure names it. */
function goTypeOf(value: unknown): string {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'number') return 'float64';
  if (typeof value === 'boolean') return 'bool';
  if (Array.isArray(value)) return '[]interface {}';
  if (value === null) return 'nil';
  return 'map[string]interface {}';
}

function goValueText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return `[${value.map(goValueText).join(' ')}]`;
  if (isPlainObject(value)) return `map[${Object.entries(value).map(([k, v]) => `${k}:${goValueText(v)}`).join(' ')}]`;
  return String(value);
}
