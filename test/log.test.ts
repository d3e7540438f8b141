import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  createLogger,
  GATED_LINES_MAX,
  GatedSink,
  LOG_LEVELS,
  MemorySink,
  parseLogLevel,
  type Logger,
  type LogLevel,
} from '../lib/log.js';

// Expected lines are hashicorp/go-hclog's, as Consul writes them.

const NOW_MS = Date.UTC(2026, 0, 1, 0, 0, 0, 0);
const STAMP = '2026-01-01T00:00:00.000Z';
const JSON_STAMP = '2026-01-01T00:00:00.000000Z';

function textLogger(level: LogLevel = 'trace', name?: string): { logger: Logger; sink: MemorySink } {
  const sink = new MemorySink();
  const logger = createLogger({ level, json: false, sink, nowMs: () => NOW_MS, ...(name === undefined ? {} : { name }) });
  return { logger, sink };
}

function jsonLogger(level: LogLevel = 'trace', name?: string): { logger: Logger; sink: MemorySink } {
  const sink = new MemorySink();
  const logger = createLogger({ level, json: true, sink, nowMs: () => NOW_MS, ...(name === undefined ? {} : { name }) });
  return { logger, sink };
}

/** The one line a single call wrote, without its newline. */
function onlyLine(sink: MemorySink): string {
  assert.equal(sink.lines.length, 1, `expected one line, got ${JSON.stringify(sink.lines)}`);
  const line = sink.lines[0] ?? '';
  assert.ok(line.endsWith('\n'), 'every line ends with a newline');
  assert.equal(line.indexOf('\n'), line.length - 1, 'a line holds no other newline');
  return line.slice(0, -1);
}

/** The text line a root logger named "m" writes for `value` as field k. */
function fieldLine(value: unknown): string {
  const { logger, sink } = textLogger('trace', 'm');
  logger.info('msg', { k: value });
  return onlyLine(sink);
}

describe('text lines have hclog layout', () => {
  test('a named logger writes timestamp, padded level, module, message and fields', () => {
    const { logger, sink } = textLogger('info');
    logger.named('agent').named('server').named('raft').info('entering leader state', { term: 5, index: 812 });
    assert.equal(onlyLine(sink), `${STAMP} [INFO]  agent.server.raft: entering leader state: term=5 index=812`);
  });

  test('the level label is padded to one width: two spaces after INFO and WARN, one after the rest', () => {
    const { logger, sink } = textLogger('trace', 'm');
    logger.trace('t');
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    assert.deepEqual(sink.lines, [
      `${STAMP} [TRACE] m: t\n`,
      `${STAMP} [DEBUG] m: d\n`,
      `${STAMP} [INFO]  m: i\n`,
      `${STAMP} [WARN]  m: w\n`,
      `${STAMP} [ERROR] m: e\n`,
    ]);
  });

  test('no colon follows the message when there are no fields', () => {
    const { logger, sink } = textLogger('info', 'agent');
    logger.info('started');
    logger.info('started', {});
    assert.deepEqual(sink.lines, [`${STAMP} [INFO]  agent: started\n`, `${STAMP} [INFO]  agent: started\n`]);
  });

  test('a root logger with no name writes no module prefix', () => {
    const { logger, sink } = textLogger('info');
    logger.info('started', { port: 8500 });
    assert.equal(onlyLine(sink), `${STAMP} [INFO]  started: port=8500`);
  });

  test('named() joins names with "." and starts from the root name', () => {
    const { logger, sink } = textLogger('info', 'agent');
    logger.named('server').info('a');
    logger.named('server').named('raft').info('b');
    logger.info('c');
    const root = textLogger('info');
    root.logger.named('agent').info('d');
    assert.deepEqual(sink.lines, [
      `${STAMP} [INFO]  agent.server: a\n`,
      `${STAMP} [INFO]  agent.server.raft: b\n`,
      `${STAMP} [INFO]  agent: c\n`,
    ]);
    assert.deepEqual(root.sink.lines, [`${STAMP} [INFO]  agent: d\n`]);
  });

  test('fields keep the order they were given in', () => {
    const { logger, sink } = textLogger('info', 'm');
    logger.info('msg', { b: 1, a: 2, c: 3 });
    assert.equal(onlyLine(sink), `${STAMP} [INFO]  m: msg: b=1 a=2 c=3`);
  });

  test('the timestamp comes from the injected clock, in UTC with milliseconds', () => {
    const sink = new MemorySink();
    let now = NOW_MS;
    const logger = createLogger({ level: 'info', json: false, sink, nowMs: () => now });
    logger.info('a');
    now += 1234;
    logger.info('b');
    assert.deepEqual(sink.lines, [`${STAMP} [INFO]  a\n`, `2026-01-01T00:00:01.234Z [INFO]  b\n`]);
  });
});

describe('text field values', () => {
  test('plain tokens are written bare', () => {
    assert.equal(fieldLine('leader'), `${STAMP} [INFO]  m: msg: k=leader`);
    assert.equal(fieldLine('10.0.0.1:8301'), `${STAMP} [INFO]  m: msg: k=10.0.0.1:8301`);
    assert.equal(fieldLine('/v1/kv/a'), `${STAMP} [INFO]  m: msg: k=/v1/kv/a`);
  });

  test('numbers, booleans and null render as Go %v does', () => {
    assert.equal(fieldLine(812), `${STAMP} [INFO]  m: msg: k=812`);
    assert.equal(fieldLine(-1.5), `${STAMP} [INFO]  m: msg: k=-1.5`);
    assert.equal(fieldLine(true), `${STAMP} [INFO]  m: msg: k=true`);
    assert.equal(fieldLine(null), `${STAMP} [INFO]  m: msg: k=<nil>`);
    assert.equal(fieldLine(12345678901234567890n), `${STAMP} [INFO]  m: msg: k=12345678901234567890`);
  });

  test('a value with a space is quoted', () => {
    assert.equal(fieldLine('no route to host'), `${STAMP} [INFO]  m: msg: k="no route to host"`);
  });

  test('a value with a double quote is quoted with the quote escaped', () => {
    assert.equal(fieldLine('say "hi"'), `${STAMP} [INFO]  m: msg: k="say \\"hi\\""`);
    assert.equal(fieldLine('"'), `${STAMP} [INFO]  m: msg: k="\\""`);
  });

  // hclog's bare range is '-'..'~': "=" stays bare, "," and "(" force quotes.
  test('values are bare exactly when every character is between "-" and "~"', () => {
    assert.equal(fieldLine('a=b'), `${STAMP} [INFO]  m: msg: k=a=b`);
    assert.equal(fieldLine('a,b'), `${STAMP} [INFO]  m: msg: k="a,b"`);
    assert.equal(fieldLine('f(x)'), `${STAMP} [INFO]  m: msg: k="f(x)"`);
  });

  test('the empty string is written as ""', () => {
    assert.equal(fieldLine(''), `${STAMP} [INFO]  m: msg: k=""`);
  });

  test('an Error renders as its message, quoted when it has spaces', () => {
    assert.equal(fieldLine(new Error('timeout')), `${STAMP} [INFO]  m: msg: k=timeout`);
    assert.equal(
      fieldLine(new Error('dial tcp 10.0.0.2:8300: connection refused')),
      `${STAMP} [INFO]  m: msg: k="dial tcp 10.0.0.2:8300: connection refused"`,
    );
  });

  test('a value with a newline stays on one line', () => {
    const line = fieldLine('one\ntwo');
    assert.equal(line, `${STAMP} [INFO]  m: msg: k="one\\ntwo"`);
  });
});

describe('level filtering', () => {
  test('a logger at warn drops trace, debug and info', () => {
    const { logger, sink } = textLogger('warn', 'm');
    logger.trace('t');
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    assert.deepEqual(sink.lines, [`${STAMP} [WARN]  m: w\n`, `${STAMP} [ERROR] m: e\n`]);
  });

  test('isEnabled reports exactly the levels at or above the configured one', () => {
    for (const configured of LOG_LEVELS) {
      const { logger } = textLogger(configured);
      const enabled = LOG_LEVELS.filter((level) => logger.isEnabled(level));
      assert.deepEqual(enabled, LOG_LEVELS.slice(LOG_LEVELS.indexOf(configured)), `configured ${configured}`);
    }
  });

  test('a named child inherits its parent level', () => {
    const { logger, sink } = textLogger('warn', 'agent');
    const child = logger.named('server');
    assert.equal(child.isEnabled('info'), false);
    assert.equal(child.isEnabled('warn'), true);
    child.info('dropped');
    child.warn('kept');
    assert.deepEqual(sink.lines, [`${STAMP} [WARN]  agent.server: kept\n`]);
  });

  test('a logger at trace writes every level', () => {
    const { logger, sink } = textLogger('trace');
    for (const level of LOG_LEVELS) logger[level]('x');
    assert.equal(sink.lines.length, LOG_LEVELS.length);
  });
});

describe('JSON lines have hclog -log-json shape', () => {
  test('one object per line with @level, @message, @module, @timestamp and fields', () => {
    const { logger, sink } = jsonLogger('info');
    logger.named('agent.server.raft').info('entering leader state', { term: 5, index: 812 });
    // hclog marshals a map, so keys come out sorted whatever order the fields were given in.
    assert.equal(
      onlyLine(sink),
      `{"@level":"info","@message":"entering leader state","@module":"agent.server.raft",` +
        `"@timestamp":"${JSON_STAMP}","index":812,"term":5}`,
    );
  });

  test('the timestamp has microseconds', () => {
    const sink = new MemorySink();
    const logger = createLogger({ level: 'info', json: true, sink, nowMs: () => NOW_MS + 1234 });
    logger.info('x');
    const record = JSON.parse(onlyLine(sink)) as Record<string, unknown>;
    assert.equal(record['@timestamp'], '2026-01-01T00:00:01.234000Z');
  });

  test('@module is absent when the logger has no name', () => {
    const { logger, sink } = jsonLogger('info');
    logger.warn('degraded');
    assert.deepEqual(JSON.parse(onlyLine(sink)), {
      '@level': 'warn',
      '@message': 'degraded',
      '@timestamp': JSON_STAMP,
    });
  });

  test('every level is spelled in lower case', () => {
    const { logger, sink } = jsonLogger('trace', 'm');
    for (const level of LOG_LEVELS) logger[level]('x');
    const levels = sink.lines.map((line) => (JSON.parse(line) as Record<string, unknown>)['@level']);
    assert.deepEqual(levels, ['trace', 'debug', 'info', 'warn', 'error']);
  });

  test('fields are top-level keys with numbers and booleans kept as JSON types', () => {
    const { logger, sink } = jsonLogger('info', 'agent');
    logger.info('joined', { peers: 3, ratio: 0.5, leader: true, node: 'n1 east', none: null });
    assert.deepEqual(JSON.parse(onlyLine(sink)), {
      '@level': 'info',
      '@message': 'joined',
      '@module': 'agent',
      '@timestamp': JSON_STAMP,
      peers: 3,
      ratio: 0.5,
      leader: true,
      node: 'n1 east',
      none: null,
    });
  });

  test('an Error field renders as its message', () => {
    const { logger, sink } = jsonLogger('info', 'agent');
    logger.error('failed', { error: new Error('connection refused') });
    const record = JSON.parse(onlyLine(sink)) as Record<string, unknown>;
    assert.equal(record['error'], 'connection refused');
  });

  test('a message with a newline or quote stays on one line', () => {
    const { logger, sink } = jsonLogger('info');
    logger.info('a "b"\nc');
    const record = JSON.parse(onlyLine(sink)) as Record<string, unknown>;
    assert.equal(record['@message'], 'a "b"\nc');
  });

  test('json mode filters levels the same way', () => {
    const { logger, sink } = jsonLogger('warn');
    logger.info('dropped');
    logger.debug('dropped');
    logger.warn('kept');
    assert.equal(sink.lines.length, 1);
  });
});

describe('parseLogLevel reads -log-level', () => {
  const accepted: ReadonlyArray<readonly [string, LogLevel]> = [
    ['TRACE', 'trace'],
    ['trace', 'trace'],
    ['debug', 'debug'],
    ['DEBUG', 'debug'],
    ['Info', 'info'],
    ['INFO', 'info'],
    ['WARN', 'warn'],
    ['warn', 'warn'],
    ['ERR', 'error'],
    ['err', 'error'],
    ['error', 'error'],
    ['ERROR', 'error'],
  ];
  for (const [text, level] of accepted) {
    test(`${JSON.stringify(text)} is ${level}`, () => {
      assert.equal(parseLogLevel(text), level);
    });
  }
  for (const text of ['foo', '', 'inf', 'fatal', 'off', 'warning', ' info']) {
    test(`${JSON.stringify(text)} is rejected`, () => {
      assert.equal(parseLogLevel(text), undefined);
    });
  }
});

describe('sinks', () => {
  test('MemorySink collects lines in order', () => {
    const sink = new MemorySink();
    sink.write('a\n');
    sink.write('b\n');
    assert.deepEqual(sink.lines, ['a\n', 'b\n']);
  });

  test('GatedSink holds lines until open(), then passes them through in order', () => {
    const target = new MemorySink();
    const gated = new GatedSink(target);
    const logger = createLogger({ level: 'info', json: false, sink: gated, nowMs: () => NOW_MS, name: 'agent' });
    logger.info('one');
    logger.warn('two');
    assert.deepEqual(target.lines, []);
    gated.open();
    assert.deepEqual(target.lines, [`${STAMP} [INFO]  agent: one\n`, `${STAMP} [WARN]  agent: two\n`]);
    logger.info('three');
    assert.deepEqual(target.lines, [
      `${STAMP} [INFO]  agent: one\n`,
      `${STAMP} [WARN]  agent: two\n`,
      `${STAMP} [INFO]  agent: three\n`,
    ]);
  });

  test('GatedSink open() is idempotent and open with nothing buffered writes nothing', () => {
    const target = new MemorySink();
    const gated = new GatedSink(target);
    gated.open();
    assert.deepEqual(target.lines, []);
    gated.write('x\n');
    gated.open();
    assert.deepEqual(target.lines, ['x\n']);
  });

  test(`GatedSink keeps at most ${GATED_LINES_MAX} lines before open(), the earliest ones`, () => {
    const target = new MemorySink();
    const gated = new GatedSink(target);
    for (let i = 0; i < GATED_LINES_MAX + 5; i++) gated.write(`${i}\n`);
    gated.open();
    assert.equal(target.lines.length, GATED_LINES_MAX);
    assert.equal(target.lines[0], '0\n');
    assert.equal(target.lines[GATED_LINES_MAX - 1], `${GATED_LINES_MAX - 1}\n`);
  });
});
