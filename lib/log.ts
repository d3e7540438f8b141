// The one logger every module uses.
//
// Lines look like Consul's (hashicorp/go-hclog):
//   2026-01-01T00:00:00.000Z [INFO]  agent.server.raft: entering leader state: term=5 index=812
// or, with -log-json, one object per line:
//   {"@level":"info","@message":"entering leader state","@module":"agent.server.raft",
//    "@timestamp":"2026-01-01T00:00:00.000000Z","index":812,"term":5}
// Operators grep these and feed them to log shippers configured for Consul, so the shape is
// part of the compatibility contract.
//
// Messages are constant strings; variable parts go in fields, which keeps lines greppable
// and lets the JSON form carry typed values. Modules receive a Logger and name a child for
// their subsystem; they never touch the console.
//
// Not here: log files and rotation (`-log-file`), syslog. Time comes from an injected clock
// so tests get stable output.

/** Levels in increasing severity, with Consul's spellings. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Readonly<Record<string, unknown>>;

/** Where finished lines go (stdout in the agent, an array in tests). */
export interface LogSink {
  write(line: string): void;
}

export interface Logger {
  trace(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A child logger whose module name is `<this name>.<name>` (e.g. agent.server.raft). */
  named(name: string): Logger;
  /** Whether a line at `level` would be written: lets callers skip building costly fields. */
  isEnabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  readonly level: LogLevel;
  readonly json: boolean;
  readonly sink: LogSink;
  /** Milliseconds since the epoch; injected so tests produce stable timestamps. */
  readonly nowMs: () => number;
  readonly name?: string;
}

export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];

/** hclog pads the bracketed level to a fixed width so messages line up. */
const LEVEL_LABELS: Readonly<Record<LogLevel, string>> = {
  trace: '[TRACE] ',
  debug: '[DEBUG] ',
  info: '[INFO]  ',
  warn: '[WARN]  ',
  error: '[ERROR] ',
};

/**
 * Parses a -log-level value the way Consul does: TRACE, DEBUG, INFO, WARN, ERR or ERROR in any
 * case. Returns undefined for anything else.
 */
export function parseLogLevel(text: string): LogLevel | undefined {
  const lower = text.toLowerCase();
  if (lower === 'err') return 'error';
  return (LOG_LEVELS as readonly string[]).includes(lower) ? (lower as LogLevel) : undefined;
}

/** Creates a root logger. */
export function createLogger(options: LoggerOptions): Logger {
  return new LineLogger(options, options.name ?? '');
}

/**
 * Holds lines back until open(), then passes them through. Consul buffers start-up logs this
 * way so that they follow the banner instead of interleaving with it.
 */
export class GatedSink implements LogSink {
  private pending: string[] | undefined = [];
  constructor(private readonly target: LogSink) {}
  write(line: string): void {
    if (this.pending === undefined) this.target.write(line);
    else if (this.pending.length < GATED_LINES_MAX) this.pending.push(line);
  }
  open(): void {
    const lines = this.pending ?? [];
    this.pending = undefined;
    for (const line of lines) this.target.write(line);
  }
}

/** Start-up lines held by a GatedSink at most; the rest are dropped rather than grow memory. */
export const GATED_LINES_MAX = 10_000;

/** A sink that keeps lines in memory, for tests that assert on logging. */
export class MemorySink implements LogSink {
  readonly lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
}

/** A logger that drops everything, for tests and for code paths that have none. */
export function nullLogger(): Logger {
  return createLogger({ level: 'error', json: false, nowMs: () => 0, sink: { write: () => undefined } });
}

class LineLogger implements Logger {
  private readonly minSeverity: number;

  constructor(
    private readonly options: LoggerOptions,
    private readonly moduleName: string,
  ) {
    this.minSeverity = LOG_LEVELS.indexOf(options.level);
  }

  trace(message: string, fields?: LogFields): void {
    this.log('trace', message, fields);
  }
  debug(message: string, fields?: LogFields): void {
    this.log('debug', message, fields);
  }
  info(message: string, fields?: LogFields): void {
    this.log('info', message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    this.log('warn', message, fields);
  }
  error(message: string, fields?: LogFields): void {
    this.log('error', message, fields);
  }

  named(name: string): Logger {
    return new LineLogger(this.options, this.moduleName ? `${this.moduleName}.${name}` : name);
  }

  isEnabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= this.minSeverity;
  }

  private log(level: LogLevel, message: string, fields: LogFields | undefined): void {
    if (!this.isEnabled(level)) return;
    const nowMs = this.options.nowMs();
    const line = this.options.json
      ? formatJsonLine(nowMs, level, this.moduleName, message, fields)
      : formatTextLine(nowMs, level, this.moduleName, message, fields);
    this.options.sink.write(line + '\n');
  }
}

/** One hclog text line, without the newline. */
export function formatTextLine(
  nowMs: number,
  level: LogLevel,
  moduleName: string,
  message: string,
  fields: LogFields | undefined,
): string {
  let line = `${new Date(nowMs).toISOString()} ${LEVEL_LABELS[level]}`;
  if (moduleName) line += `${moduleName}: `;
  line += message;
  const pairs = Object.entries(fields ?? {});
  if (pairs.length > 0) {
    line += ':';
    for (const [key, value] of pairs) line += ` ${key}=${formatTextValue(value)}`;
  }
  return line;
}

/** One hclog JSON line, without the newline. Field names starting with @ are hclog's own. */
export function formatJsonLine(
  nowMs: number,
  level: LogLevel,
  moduleName: string,
  message: string,
  fields: LogFields | undefined,
): string {
  const record: Record<string, unknown> = {
    '@level': level,
    '@message': message,
  };
  if (moduleName) record['@module'] = moduleName;
  // hclog prints microseconds; JS clocks have milliseconds, so the last digits are zero.
  record['@timestamp'] = new Date(nowMs).toISOString().replace('Z', '000Z');
  // hclog's JSON is a Go map, so its keys come out sorted; log shippers see the same order.
  for (const [key, value] of Object.entries(fields ?? {})) record[key] = jsonValue(value);
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(record).sort()) sorted[key] = record[key];
  return JSON.stringify(sorted);
}

/**
 * hclog writes a value bare when every character lies between '-' and '~' (so paths, addresses
 * and durations stay unquoted) and quotes it otherwise.
 */
function formatTextValue(value: unknown): string {
  const text = textOf(value);
  if (text === '' || /[^\x2d-\x7e]/.test(text)) return JSON.stringify(text);
  return text;
}

function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return value.message;
  if (value === undefined) return '<nil>';
  if (typeof value === 'bigint' || typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  }
  if (value === null) return '<nil>';
  return JSON.stringify(value) ?? String(value);
}

function jsonValue(value: unknown): unknown {
  if (value instanceof Error) return value.message;
  if (typeof value === 'bigint') return value.toString();
  return value;
}
