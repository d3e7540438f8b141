// go-bexpr v0.1.2 compatibility: operators, precedence, quoting, selectors, coercion, Consul's
// exact error texts, limits, and a seeded fuzz loop (compile and match never throw anything but
// FilterError, and stay fast).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BEXPR_EXPRESSION_BYTES_MAX, compileFilter, filterList, filterMap, FilterError } from '../lib/bexpr.js';
import { mulberry32 } from './support.js';

const P = 'Failed to create boolean expression evaluator: ';

// A health/service element (CheckServiceNode) and an agent/services element (AgentService).
const csn = {
  Node: { ID: 'n1', Node: 'node-a', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.1' }, Meta: { rack: 'r1', 'with space': 'yes' } },
  Service: {
    ID: 'web-1', Service: 'web', Tags: ['v1', 'primary'], Address: '', Meta: { version: '1.2.3' }, Port: 8080,
    EnableTagOverride: false, Weights: { Passing: 1, Warning: 1 }, Proxy: { Upstreams: [] }, Empty: null,
  },
  Checks: [
    { CheckID: 'serfHealth', Status: 'passing', ServiceTags: [] },
    { CheckID: 'service:web-1', Status: 'critical', ServiceTags: ['v1'] },
  ],
};

const TABLE: ReadonlyArray<readonly [string, boolean]> = [
  // equality, with bare identifiers, strings, raw strings and coercion to the field's type
  ['Service.Service == web', true],
  ['Service.Service == "web"', true],
  ['Service.Service == `web`', true],
  ['Service.Service != web', false],
  ['Service.Service==web', true],
  ['Service.Port == 8080', true],
  ['Service.Port == "8080"', true],
  ['Service.Port == "0x1F90"', true],
  ['Service.Port != 80', true],
  ['Service.EnableTagOverride == false', true],
  ['Service.EnableTagOverride == F', true],
  ['Service.EnableTagOverride != true', true],
  ['Service.Weights.Passing == 1', true],
  ['Service.Address == ""', true],
  // in / contains on arrays, maps, strings
  ['v1 in Service.Tags', true],
  ['"v2" in Service.Tags', false],
  ['"v2" not in Service.Tags', true],
  ['Service.Tags contains primary', true],
  ['Service.Tags not contains primary', false],
  ['version in Service.Meta', true],
  ['"nope" in Service.Meta', false],
  ['Service.Meta contains version', true],
  ['eb in Service.Service', true],
  ['Service.Service contains "we"', true],
  ['Service.Service not contains "x"', true],
  // emptiness
  ['Service.Tags is not empty', true],
  ['Service.Proxy.Upstreams is empty', true],
  ['Service.Meta is empty', false],
  ['Service.Empty is empty', true],
  ['Service.Empty is not empty', false],
  // map keys: dotted, indexed, with spaces; missing keys
  ['Service.Meta.version == "1.2.3"', true],
  ['Service.Meta["version"] == "1.2.3"', true],
  ['Node.Meta["with space"] == yes', true],
  ['Node.Meta[ "rack" ] == r1', true],
  ['Service.Meta.missing == x', false],
  ['Service.Meta.missing != x', true],
  ['Service.Meta.missing is empty', true],
  ['Service.Meta.missing is not empty', false],
  ['x in Service.Meta.missing', false],
  ['x not in Service.Meta.missing', true],
  ['Service.Meta.missing matches "x"', true],
  ['Service.Meta.missing not matches "x"', true],
  // arrays in the middle of a selector: any element
  ['Checks.Status == critical', true],
  ['Checks.Status == warning', false],
  ['Checks.Status != passing', true],
  ['Checks.CheckID == serfHealth', true],
  ['v1 in Checks.ServiceTags', true],
  ['Checks.ServiceTags is empty', true],
  // matches (RE2 syntax)
  ['Service.Service matches "^w.b$"', true],
  ['Service.Service matches "^(?i)WEB$"', true],
  ['Service.Service not matches "^api"', true],
  ['Service.Meta.version matches `^\\d+\\.\\d+\\.\\d+$`', true],
  ['Node.Address matches "^10\\\\.0\\\\.[0-9]{1,3}\\\\.1$"', true],
  ['Service.Service matches "[[:alpha:]]+"', true],
  ['Service.Service matches "\\\\bweb\\\\b"', true],
  ['Service.Service matches "x|eb$"', true],
  ['Service.Service matches "a{2,}"', false],
  // boolean structure and precedence: not > and > or
  ['Service.Port == 1 or Service.Port == 8080 and Service.Service == web', true],
  ['Service.Port == 8080 or Service.Port == 1 and Service.Service == nope', true],
  ['(Service.Port == 8080 or Service.Port == 1) and Service.Service == nope', false],
  ['not Service.Service == web', false],
  ['not not Service.Service == web', true],
  ['not (Service.Service == api or Service.Port == 1)', true],
  ['not Service.Service == api and Service.Port == 8080', true],
  ['( Service.Service == web )', true],
  ['\n\tService.Service == web \r\n', true],
  ['((Service.Service == web)) and (Service.Port == 8080)', true],
  // string escapes
  ['Service.Service == "w\\x65b"', true],
  ['Service.Service == "w\\u0065b"', true],
  ['Service.Service == "w\\145b"', true],
];

test('expression table over a CheckServiceNode', () => {
  for (const [expression, expected] of TABLE) {
    assert.equal(compileFilter(expression).matches(csn), expected, expression);
  }
});

test('an empty array in a selector path is false for every operator', () => {
  const datum = { Checks: [] as unknown[] };
  for (const expression of ['Checks.Status == x', 'Checks.Status != x', 'Checks.Status is empty', 'x not in Checks.Status']) {
    assert.equal(compileFilter(expression).matches(datum), false, expression);
  }
});

test('filterList and filterMap keep passing elements and map keys', () => {
  const filter = compileFilter('Service == web');
  const items = [{ Service: 'web', Port: 1 }, { Service: 'api', Port: 2 }, { Service: 'web', Port: 3 }];
  assert.deepEqual(filterList(filter, items).map((item) => item.Port), [1, 3]);
  assert.deepEqual(Object.keys(filterMap(filter, { a: items[0]!, b: items[1]!, __proto__x: items[2]! })), ['a', '__proto__x']);
  assert.equal(filterList(compileFilter(''), items).length, 3, 'an empty filter is no filter');
});

const SYNTAX_ERRORS: ReadonlyArray<readonly [string, string]> = [
  // both texts below appear verbatim in Consul issues #7338 and #9441
  ['foo', '1:4 (3): no match found, expected: "!=", ".", "==", "[", [ \\t\\r\\n] or [a-zA-Z0-9_]'],
  ['Address == 10.10.10.10 ', '1:17 (16): rule "number": Invalid number literal'],
  ['Service == "abc', '1:16 (15): rule "string": Unterminated string literal'],
  ['a == 1 b', '1:8 (7): no match found, expected: "and", "or", [ \\t\\r\\n] or EOF'],
  ['(a == 1', '1:8 (7): rule "grouping": Unmatched parentheses'],
  ['a["x" == 1', '1:7 (6): rule "index": Unclosed index expression'],
  ['a[1] == 2', '1:3 (2): rule "index": Invalid index'],
  ['"x" in 5', '1:8 (7): rule "match": Invalid selector'],
  ['a == "\\q"', '1:6 (5): rule "string": invalid syntax'],
  ['a == "x\\"y"', '1:6 (5): rule "string": invalid syntax'],
  ['a = 1', '1:3 (2): no match found, expected: "!=", "==", "contains", "in", "is", "matches", "not" or [ \\t\\r\\n]'],
  ['A == 1 AND B == 2', '1:8 (7): no match found, expected: "and", "or", [ \\t\\r\\n] or EOF'],
  ['  ', '1:3 (2): no match found, expected: "(", "-", "0", "\\"", "`", "not", [ \\t\\r\\n], [1-9] or [a-zA-Z]'],
  ['a ==\nb ==', '2:3 (7): no match found, expected: "and", "or", [ \\t\\r\\n] or EOF'],
  ['Service.Port == 0x1f90', '1:18 (17): rule "number": Invalid number literal'],
  ['a == -', '1:7 (6): no match found, expected: "0" or [1-9]'],
  ['x matches "(abc"', 'Failed to compile regular expression "(abc": error parsing regexp: missing closing ): `(abc`'],
  ['x matches "abc)"', 'Failed to compile regular expression "abc)": error parsing regexp: unexpected ): `abc)`'],
  ['x matches "a**"', 'Failed to compile regular expression "a**": error parsing regexp: invalid nested repetition operator: `**`'],
  ['x matches "*a"', 'Failed to compile regular expression "*a": error parsing regexp: missing argument to repetition operator: `*`'],
  ['x matches "[a-"', 'Failed to compile regular expression "[a-": error parsing regexp: missing closing ]: `[a-`'],
  ['x matches "[z-a]"', 'Failed to compile regular expression "[z-a]": error parsing regexp: invalid character class range: `z-a`'],
  ['x matches "\\\\q"', 'Failed to compile regular expression "\\\\q": error parsing regexp: invalid escape sequence: `\\q`'],
  ['x matches "a{1001}"', 'Failed to compile regular expression "a{1001}": error parsing regexp: invalid repeat count: `{1001}`'],
  ['x matches "(?<n>a)(?P<m>b)"', ''],
];

test('syntax errors carry go-bexpr\'s exact text behind Consul\'s prefix', () => {
  for (const [expression, expected] of SYNTAX_ERRORS) {
    if (expected === '') { compileFilter(expression); continue; }
    assert.throws(() => compileFilter(expression), (error: unknown) => {
      assert.ok(error instanceof FilterError, expression);
      assert.equal(error.message, P + expected, expression);
      assert.equal(error.statusCode, 500);
      return true;
    });
  }
});

const EVAL_ERRORS: ReadonlyArray<readonly [string, string]> = [
  ['Service.Port == abc', 'Failed to coerce value "abc" for selector "Service.Port": strconv.ParseInt: parsing "abc": invalid syntax'],
  ['Service.Port == 1.5', 'Failed to coerce value "1.5" for selector "Service.Port": strconv.ParseInt: parsing "1.5": invalid syntax'],
  ['Service.EnableTagOverride == yes', 'Failed to coerce value "yes" for selector "Service.EnableTagOverride": strconv.ParseBool: parsing "yes": invalid syntax'],
  ['Service.Port contains 8', 'Invalid match operator "In" for selector "Service.Port"'],
  ['Service.Service is empty', 'Invalid match operator "Is Empty" for selector "Service.Service"'],
  ['Service.Tags == v1', 'Invalid match operator "Equal" for selector "Service.Tags"'],
  ['Service == web', 'Invalid match operator "Equal" for selector "Service"'],
  ['x in Checks', 'Invalid match operator "In" for selector "Checks"'],
  ['Service.Port matches "8"', 'Invalid match operator "Matches" for selector "Service.Port"'],
  ['Service.Service.Name == x', 'Selector "Service.Service.Name" is not valid'],
];

test('evaluation errors name the selector like go-bexpr\'s validation', () => {
  for (const [expression, expected] of EVAL_ERRORS) {
    const filter = compileFilter(expression);
    assert.throws(() => filter.matches(csn), (error: unknown) => error instanceof FilterError && error.message === P + expected, expression);
  }
});

test('limits: long expressions, deep nesting, long regexes are FilterErrors, quickly', () => {
  const started = Date.now();
  for (const expression of ['('.repeat(100_000), `${'('.repeat(5000)}a == 1${')'.repeat(5000)}`, 'not '.repeat(2000) + 'a == 1',
    'a == 1 or '.repeat(1000) + 'a == 1', `x matches "${'a'.repeat(2000)}"`]) {
    assert.throws(() => compileFilter(expression), FilterError);
  }
  assert.throws(() => compileFilter('a'.repeat(BEXPR_EXPRESSION_BYTES_MAX + 1)), /more than the 4096 allowed/);
  // the longest accepted or-chain and 100 nested parentheses still compile
  const chain = Array.from({ length: 150 }, (_, i) => `Service.Port == ${i}`).join(' or ');
  assert.equal(compileFilter(chain).matches(csn), false);
  assert.equal(compileFilter(`${'('.repeat(90)}Service.Port == 8080${')'.repeat(90)}`).matches(csn), true);
  assert.equal(compileFilter(`${'not '.repeat(300)}Service.Port == 8080`).matches(csn), true);
  // just under the depth limit, called from an already deep stack: a FilterError or a result, never a RangeError
  const nearLimit = (n: number): void => {
    if (n > 0) { nearLimit(n - 1); return; }
    for (const levels of [95, 99, 100, 110, 300]) {
      try { compileFilter(`${'('.repeat(levels)}a == 1${')'.repeat(levels)}`); } catch (error) { assert.ok(error instanceof FilterError, String(error)); }
    }
    assert.equal(compileFilter(Array.from({ length: 390 }, () => 'a==1').join(' or ')).matches({ a: 1 }), true);
  };
  nearLimit(500);
  // RE2 semantics: no catastrophic backtracking
  assert.equal(compileFilter('x matches "^(a+)+$"').matches({ x: `${'a'.repeat(5000)}b` }), false);
  assert.ok(Date.now() - started < 5000, 'limits are enforced fast');
});

test('matches() never throws a raw error on odd data', () => {
  const odd: unknown[] = [null, undefined, 0, '', 'str', true, [], [null], [[[]]], {}, { Service: null }, { Service: [1, 'a', null, {}] },
    { Service: { Tags: [{}] } }, Object.create(null), { Service: { Port: 10n } }, { Service: () => 1 }, { constructor: 1 }];
  const expressions = ['Service.Port == 1', 'x in Service.Tags', 'Service.Tags is empty', 'Service matches "a"', 'constructor == 1',
    'Service.Service.Deep.Path != "x"', 'Service contains a', 'toString is empty', 'Service["__proto__"] is empty', 'x in Service["constructor"]'];
  for (const expression of expressions) {
    const filter = compileFilter(expression);
    for (const datum of odd) {
      try { filter.matches(datum); } catch (error) { assert.ok(error instanceof FilterError, `${expression} on ${String(datum)}: ${String(error)}`); }
    }
  }
});

const FUZZ_ATOMS = ['Service', '.', 'Meta', '["k"]', '[', ']', 'Tags', 'Port', '==', '!=', ' ', ' is ', 'empty', ' not ', ' in ',
  ' contains ', ' matches ', ' and ', ' or ', 'not ', '(', ')', '"v"', '`r`', '"', '`', '8080', '-1', '1.5', '0x1', 'true',
  '"\\x41"', '"\\q"', '"(a|b)*"', '"[a-"', '"\\\\d+"', 'é', '\n', '\t', '\u0000', '\ud800', 'Checks', 'Status', 'passing'];

function randomExpression(random: () => number): string {
  const valid = ['Service.Port == 8080', '"v1" in Service.Tags', 'Service.Meta.version matches "^1"', 'Checks.Status != passing',
    'not Service.Tags is empty', '(Node.Meta["rack"] == r1 or Service.Service contains we)'];
  let text = random() < 0.5 ? valid[Math.floor(random() * valid.length)]! : '';
  const edits = 1 + Math.floor(random() * 8);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(random() * (text.length + 1));
    const roll = random();
    if (roll < 0.6) text = text.slice(0, at) + FUZZ_ATOMS[Math.floor(random() * FUZZ_ATOMS.length)]! + text.slice(at);
    else if (roll < 0.8) text = text.slice(0, at) + text.slice(at + 1 + Math.floor(random() * 4));
    else text = text.slice(0, at) + String.fromCharCode(Math.floor(random() * 128)) + text.slice(at);
  }
  return text;
}

function randomDatum(random: () => number, depth = 0): unknown {
  const roll = random();
  if (depth > 3 || roll < 0.3) return [null, 0, 8080, 1.5, '', 'passing', 'v1', true, false][Math.floor(random() * 9)];
  if (roll < 0.5) return Array.from({ length: Math.floor(random() * 3) }, () => randomDatum(random, depth + 1));
  const keys = ['Service', 'Meta', 'Tags', 'Port', 'Checks', 'Status', 'Node', 'k', 'version'];
  return Object.fromEntries(keys.filter(() => random() < 0.5).map((key) => [key, randomDatum(random, depth + 1)]));
}

test('fuzz: 20k mutated expressions compile or throw FilterError within 50 ms, and match without raw errors', () => {
  const seed = Number(process.env.BEXPR_SEED ?? 20240611);
  const random = mulberry32(seed);
  const data = Array.from({ length: 8 }, () => randomDatum(random));
  data.push(csn);
  let compiled = 0;
  for (let i = 0; i < 20_000; i++) {
    const expression = randomExpression(random);
    const started = performance.now();
    let filter;
    try {
      filter = compileFilter(expression);
      compiled++;
    } catch (error) {
      assert.ok(error instanceof FilterError, `SEED=${seed} i=${i} ${JSON.stringify(expression)}: ${String(error)}`);
    }
    assert.ok(performance.now() - started < 50, `SEED=${seed} i=${i} slow compile ${JSON.stringify(expression)}`);
    if (filter === undefined) continue;
    for (const datum of data) {
      try { filter.matches(datum); } catch (error) {
        assert.ok(error instanceof FilterError, `SEED=${seed} i=${i} ${JSON.stringify(expression)} on ${JSON.stringify(datum)}: ${String(error)}`);
      }
    }
  }
  assert.ok(compiled > 500, `the fuzzer should produce some valid expressions (got ${compiled})`);
});
