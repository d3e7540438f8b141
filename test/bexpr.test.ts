// go-bexpr v0.1.2 compatibility: operators, precedence, quoting, selectors, coercion, Consul's
// exact error texts, creation-time validation against the Go types of lib/bexprtypes.ts (field
// tables built by field_config.go's rules, validate.go's checks and their order), limits, and a
// seeded fuzz loop (compile and match never throw anything but FilterError, and stay fast).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BEXPR_EXPRESSION_BYTES_MAX, compileFilter as compileTyped, filterList, filterMap, FilterError, type Filter } from '../lib/bexpr.js';
import {
  bexprFields, coerceLiteral, FIELD_NAME_ANY, GO_CHECK_SERVICE_NODE, GO_HEALTH_CHECK, GO_NODE, GO_NODE_SERVICE, GO_SERVICE_NODE,
  type FieldConfigs, type GoType,
} from '../lib/bexprtypes.js';
import { mulberry32 } from './support.js';

const P = 'Failed to create boolean expression evaluator: ';

/** Most tables below filter CheckServiceNodes, as /v1/health/service does. */
const compileFilter = (expression: string, type: GoType = GO_CHECK_SERVICE_NODE): Filter => compileTyped(expression, type);

// A health/service element (CheckServiceNode) and an agent/services element (AgentService).
const csn = {
  Node: { ID: 'n1', Node: 'node-a', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.1' }, Meta: { rack: 'r1', 'with space': 'yes' } },
  Service: {
    ID: 'web-1', Service: 'web', Tags: ['v1', 'primary'], Address: '', Meta: { version: '1.2.3' }, Port: 8080,
    EnableTagOverride: false, Weights: { Passing: 1, Warning: 1 }, Proxy: { Upstreams: [] }, TaggedAddresses: null,
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
  ['Service.TaggedAddresses is empty', true],
  ['Service.TaggedAddresses is not empty', false],
  ['Service.Connect.Native == false', true],
  ['Service.Kind == ""', true],
  ['Service.SocketPath == ""', true],
  ['Service.Port != 0', true],
  ['Node.PeerName == ""', true],
  // map keys: dotted, indexed, with spaces; missing keys
  ['Service.Meta.version == "1.2.3"', true],
  ['Service.Meta["version"] == "1.2.3"', true],
  ['Node.Meta["with space"] == yes', true],
  ['Node.Meta[ "rack" ] == r1', true],
  ['Service.Meta.missing == x', false],
  ['Service.Meta.missing != x', true],
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
  for (const expression of ['Checks.Status == x', 'Checks.Status != x', 'Checks.ServiceTags is empty', 'x not in Checks.Status', 'Checks.ServiceTags not contains x']) {
    assert.equal(compileFilter(expression).matches(datum), false, expression);
  }
});

test('filterList and filterMap keep passing elements and map keys', () => {
  const filter = compileFilter('Service == web', GO_NODE_SERVICE);
  const items = [{ Service: 'web', Port: 1 }, { Service: 'api', Port: 2 }, { Service: 'web', Port: 3 }];
  assert.deepEqual(filterList(filter, items).map((item) => item.Port), [1, 3]);
  assert.deepEqual(Object.keys(filterMap(filter, { a: items[0]!, b: items[1]!, __proto__x: items[2]! })), ['a', '__proto__x']);
  assert.equal(filterList(compileFilter('', GO_NODE_SERVICE), items).length, 3, 'an empty filter is no filter');
  assert.equal(compileFilter('').matches(null), true, 'an empty filter is not even validated (CreateFilter returns the nil filter)');
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
  ['Service.Service matches "(abc"', 'Failed to compile regular expression "(abc": error parsing regexp: missing closing ): `(abc`'],
  ['Service.Service matches "abc)"', 'Failed to compile regular expression "abc)": error parsing regexp: unexpected ): `abc)`'],
  ['Service.Service matches "a**"', 'Failed to compile regular expression "a**": error parsing regexp: invalid nested repetition operator: `**`'],
  ['Service.Service matches "*a"', 'Failed to compile regular expression "*a": error parsing regexp: missing argument to repetition operator: `*`'],
  ['Service.Service matches "[a-"', 'Failed to compile regular expression "[a-": error parsing regexp: missing closing ]: `[a-`'],
  ['Service.Service matches "[z-a]"', 'Failed to compile regular expression "[z-a]": error parsing regexp: invalid character class range: `z-a`'],
  ['Service.Service matches "\\\\q"', 'Failed to compile regular expression "\\\\q": error parsing regexp: invalid escape sequence: `\\q`'],
  ['Service.Service matches "a{1001}"', 'Failed to compile regular expression "a{1001}": error parsing regexp: invalid repeat count: `{1001}`'],
  ['Service.Service matches "(?<n>a)(?P<m>b)"', ''],
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

const CREATION_ERRORS: ReadonlyArray<readonly [string, string]> = [
  // coercion of the literal to the field's kind
  ['Service.Port == abc', 'Failed to coerce value "abc" for selector "Service.Port": strconv.ParseInt: parsing "abc": invalid syntax'],
  ['Service.Port == 1.5', 'Failed to coerce value "1.5" for selector "Service.Port": strconv.ParseInt: parsing "1.5": invalid syntax'],
  ['Service.Port != 9223372036854775808', 'Failed to coerce value "9223372036854775808" for selector "Service.Port": strconv.ParseInt: parsing "9223372036854775808": value out of range'],
  ['Service.EnableTagOverride == yes', 'Failed to coerce value "yes" for selector "Service.EnableTagOverride": strconv.ParseBool: parsing "yes": invalid syntax'],
  ['Service.Weights.Warning != "1e3"', 'Failed to coerce value "1e3" for selector "Service.Weights.Warning": strconv.ParseInt: parsing "1e3": invalid syntax'],
  // operators each kind does not support
  ['Service.Port contains 8', 'Invalid match operator "In" for selector "Service.Port"'],
  ['Service.Port matches "8"', 'Invalid match operator "Matches" for selector "Service.Port"'],
  ['Service.Port is empty', 'Invalid match operator "Is Empty" for selector "Service.Port"'],
  ['Service.EnableTagOverride not matches "t"', 'Invalid match operator "Not Matches" for selector "Service.EnableTagOverride"'],
  ['Service.Service is empty', 'Invalid match operator "Is Empty" for selector "Service.Service"'],
  ['Service.Tags == v1', 'Invalid match operator "Equal" for selector "Service.Tags"'],
  ['Service.Tags matches v1', 'Invalid match operator "Matches" for selector "Service.Tags"'],
  ['Service.Meta == x', 'Invalid match operator "Equal" for selector "Service.Meta"'],
  ['Service.Meta matches x', 'Invalid match operator "Matches" for selector "Service.Meta"'],
  ['Service == web', 'Invalid match operator "Equal" for selector "Service"'],
  ['Service.Weights is empty', 'Invalid match operator "Is Empty" for selector "Service.Weights"'],
  ['x in Checks', 'Invalid match operator "In" for selector "Checks"'],
  ['Checks == x', 'Invalid match operator "Equal" for selector "Checks"'],
  ['x in Service.Proxy.Upstreams', 'Invalid match operator "In" for selector "Service.Proxy.Upstreams"'],
  ['Service.TaggedAddresses.lan == x', 'Invalid match operator "Equal" for selector "Service.TaggedAddresses.lan"'],
  // selectors the type does not have: misspelt, case-sensitive, hidden by bexpr:"-", or below a leaf
  ['Service.Service.Name == x', 'Selector "Service.Service.Name" is not valid'],
  ['Servcie.Service == web', 'Selector "Servcie" is not valid'],
  ['Node.node == a', 'Selector "Node.node" is not valid'],
  ['Service.CreateIndex == 1', 'Selector "Service.CreateIndex" is not valid'],
  ['Service.RaftIndex.CreateIndex == 1', 'Selector "Service.RaftIndex" is not valid'],
  ['Checks.Definition.HTTP == x', 'Selector "Checks.Definition" is not valid'],
  ['Service.Locality.Region == x', 'Selector "Service.Locality" is not valid'],
  ['Service.Proxy.Config.foo == x', 'Selector "Service.Proxy.Config" is not valid'],
  ['Service.Connect.SidecarService.Port == 1', 'Selector "Service.Connect.SidecarService" is not valid'],
  ['Service.Meta.version.major == 1', 'Selector "Service.Meta.version.major" is not valid'],
  ['Service.Tags.x == 1', 'Selector "Service.Tags.x" is not valid'],
  ['Service.Meta.missing is empty', 'Invalid match operator "Is Empty" for selector "Service.Meta.missing"'],
  ['Node.Meta["with space"].x == 1', 'Selector "Node.Meta.with space.x" is not valid'],
  ['x in Checks.Nope', 'Selector "Checks.Nope" is not valid'],
  ['Service.Weights.passing == 1', 'Selector "Service.Weights.passing" is not valid'],
  // go-bexpr checks the tree left to right and stops at the first error
  ['Bad == 1 and Service.Service matches "("', 'Selector "Bad" is not valid'],
  ['Service.Service matches "(" or Bad == 1', 'Failed to compile regular expression "(": error parsing regexp: missing closing ): `(`'],
  ['not (Service.Port == 1 or Service.Port == x)', 'Failed to coerce value "x" for selector "Service.Port": strconv.ParseInt: parsing "x": invalid syntax'],
  ['Service.Port == x and Nope == 1', 'Failed to coerce value "x" for selector "Service.Port": strconv.ParseInt: parsing "x": invalid syntax'],
];

test('selector, operator and coercion errors are reported at creation, before any data, with go-bexpr\'s texts', () => {
  for (const [expression, expected] of CREATION_ERRORS) {
    assert.throws(() => compileFilter(expression), (error: unknown) => {
      assert.ok(error instanceof FilterError, expression);
      assert.equal(error.message, P + expected, expression);
      assert.equal(error.statusCode, 500);
      return true;
    });
  }
});

test('each endpoint type rejects a misspelt field and accepts its real ones', () => {
  const cases: ReadonlyArray<readonly [GoType, string, string]> = [
    [GO_NODE, 'Meta.rack == r1 and Address != "" and lan in TaggedAddresses and Partition == "" and PeerName == "" and ID != x', 'Adress'],
    [GO_SERVICE_NODE, 'ServiceMeta.env == prod and NodeMeta.rack == r1 and ServiceWeights.Passing == 1 and ServiceTaggedAddresses.lan.Port == 1 and ServiceProxy.Upstreams.DestinationName == x', 'ServiceNmae'],
    [GO_NODE_SERVICE, 'Meta.env == prod and Weights.Passing == 1 and TaggedAddresses.wan.Address == x and Proxy.Expose.Paths.Path == x and Connect.Native == true', 'Serivce'],
    [GO_HEALTH_CHECK, 'Status == passing and ServiceTags contains x and ExposedPort == 0 and Interval == "" and Type == http', 'Stauts'],
    [GO_CHECK_SERVICE_NODE, 'Node.Meta.rack == r1 and Service.Meta.env == prod and Checks.Status == passing and x in Checks.ServiceTags', 'Nodes'],
  ];
  for (const [type, valid, misspelt] of cases) {
    compileFilter(valid, type);
    assert.throws(() => compileFilter(`${misspelt} == x`, type), { message: `${P}Selector "${misspelt}" is not valid` });
  }
});

test('the field tables hold exactly the exported, untagged fields of Consul\'s structs', () => {
  const names = (type: GoType): string[] => [...bexprFields(type).keys()].sort();
  assert.deepEqual(names(GO_NODE), ['Address', 'Datacenter', 'ID', 'Meta', 'Node', 'Partition', 'PeerName', 'TaggedAddresses']);
  assert.deepEqual(names(GO_SERVICE_NODE), ['Address', 'Datacenter', 'ID', 'Node', 'NodeMeta', 'PeerName', 'ServiceAddress', 'ServiceConnect',
    'ServiceEnableTagOverride', 'ServiceID', 'ServiceKind', 'ServiceMeta', 'ServiceName', 'ServicePort', 'ServiceProxy', 'ServiceSocketPath',
    'ServiceTaggedAddresses', 'ServiceTags', 'ServiceWeights', 'TaggedAddresses']);
  assert.deepEqual(names(GO_NODE_SERVICE), ['Address', 'Connect', 'EnableTagOverride', 'ID', 'Kind', 'Meta', 'PeerName', 'Port', 'Proxy', 'Service',
    'SocketPath', 'TaggedAddresses', 'Tags', 'Weights']);
  assert.deepEqual(names(GO_HEALTH_CHECK), ['CheckID', 'ExposedPort', 'Interval', 'Name', 'Node', 'Notes', 'Output', 'PeerName', 'ServiceID',
    'ServiceName', 'ServiceTags', 'Status', 'Timeout', 'Type']);
  assert.deepEqual(names(GO_CHECK_SERVICE_NODE), ['Checks', 'Node', 'Service']);
  const proxy = bexprFields(GO_NODE_SERVICE).get('Proxy')!.subFields;
  assert.deepEqual([...proxy.keys()].sort(), ['AccessLogs', 'DestinationServiceID', 'DestinationServiceName', 'EnvoyExtensions', 'Expose',
    'LocalServiceAddress', 'LocalServicePort', 'LocalServiceSocketPath', 'MeshGateway', 'Mode', 'TransparentProxy', 'Upstreams']);
  assert.deepEqual([...proxy.get('Upstreams')!.subFields.keys()].sort(), ['Datacenter', 'DestinationName', 'DestinationNamespace',
    'DestinationPartition', 'DestinationPeer', 'DestinationType', 'LocalBindAddress', 'LocalBindPort', 'LocalBindSocketMode',
    'LocalBindSocketPath', 'MeshGateway']);
  assert.deepEqual([...bexprFields(GO_NODE_SERVICE).get('Connect')!.subFields.keys()], ['Native']);
});

/** Every selector path in a field table, with the operators it allows (map keys spelt "k"). */
function selectorPaths(fields: FieldConfigs, prefix: string[] = []): Array<{ path: string; ops: readonly string[]; coerce: string | null }> {
  const out: Array<{ path: string; ops: readonly string[]; coerce: string | null }> = [];
  for (const [name, config] of fields) {
    const path = [...prefix, name === FIELD_NAME_ANY ? 'k' : name];
    out.push({ path: path.join('.'), ops: config.operators, coerce: config.coerceKind }, ...selectorPaths(config.subFields, path));
  }
  return out;
}

const LITERAL_BY_KIND: Readonly<Record<string, string>> = { string: '"x"', bool: 'true', int: '0' };

test('every declared field compiles with every operator its kind allows, and with no other', () => {
  const all = ['==', '!=', 'in', 'not in', 'is empty', 'is not empty', 'matches', 'not matches'];
  const opName: Readonly<Record<string, string>> = { '==': 'Equal', '!=': 'Not Equal', in: 'In', 'not in': 'Not In', 'is empty': 'Is Empty',
    'is not empty': 'Is Not Empty', matches: 'Matches', 'not matches': 'Not Matches' };
  let compiled = 0;
  for (const type of [GO_NODE, GO_SERVICE_NODE, GO_NODE_SERVICE, GO_HEALTH_CHECK, GO_CHECK_SERVICE_NODE]) {
    for (const { path, ops, coerce } of selectorPaths(bexprFields(type))) {
      const literal = coerce === null ? '"x"' : LITERAL_BY_KIND[coerce]!;
      for (const op of all) {
        const expression = op.endsWith('empty') ? `${path} ${op}` : op.endsWith('in') ? `${literal} ${op} ${path}` : `${path} ${op} ${literal}`;
        if (ops.includes(opName[op]!)) { compileFilter(expression, type); compiled++; } else {
          assert.throws(() => compileFilter(expression, type), { message: `${P}Invalid match operator "${opName[op]}" for selector "${path}"` }, expression);
        }
      }
    }
  }
  assert.ok(compiled > 300, `compiled ${compiled}`);
});

test('field tables follow field_config.go: tags, hidden and unexported fields, embedded structs, maps, slices, pointers', () => {
  const inner: GoType = { kind: 'struct', name: 'Inner', fields: [{ name: 'X', type: { kind: 'int8' } }] };
  const type: GoType = { kind: 'struct', name: 'T', fields: [
    { name: 'Renamed', type: { kind: 'string' }, bexprTag: 'a,b' },
    { name: 'Hidden', type: { kind: 'string' }, bexprTag: '-' },
    { name: 'unexported', type: { kind: 'string' } },
    { name: 'Inner', type: inner }, // embedded without a tag: selectable under its type name, not flattened (v0.1.2)
    { name: 'ByInt', type: { kind: 'map', key: { kind: 'int' }, elem: { kind: 'string' } } },
    { name: 'Any', type: { kind: 'map', key: { kind: 'string' }, elem: { kind: 'interface' } } },
    { name: 'PtrStrings', type: { kind: 'slice', elem: { kind: 'ptr', elem: { kind: 'string' } } } },
    { name: 'Uints', type: { kind: 'slice', elem: { kind: 'uint16' } } },
    { name: 'Nested', type: { kind: 'slice', elem: { kind: 'slice', elem: inner } } },
    { name: 'F32', type: { kind: 'float32' } },
    { name: 'U8', type: { kind: 'ptr', elem: { kind: 'uint8' } } },
  ] };
  const ok = (expression: string, datum: unknown, expected: boolean): void => assert.equal(compileFilter(expression, type).matches(datum), expected, expression);
  const fails = (expression: string, message: string): void => assert.throws(() => compileFilter(expression, type), { message: P + message }, expression);
  ok('a == v and b == v', { Renamed: 'v' }, true);
  fails('Renamed == v', 'Selector "Renamed" is not valid');
  fails('Hidden == v', 'Selector "Hidden" is not valid');
  fails('unexported == v', 'Selector "unexported" is not valid');
  ok('Inner.X == -128', { Inner: { X: -128 } }, true);
  fails('X == 1', 'Selector "X" is not valid');
  fails('Inner.X == 128', 'Failed to coerce value "128" for selector "Inner.X": strconv.ParseInt: parsing "128": value out of range');
  ok('ByInt is not empty', { ByInt: { 1: 'a' } }, true);
  fails('x in ByInt', 'Invalid match operator "In" for selector "ByInt"');
  fails('ByInt.x == y', 'Selector "ByInt.x" is not valid');
  ok('k in Any', { Any: { k: 1 } }, true);
  fails('Any.k == 1', 'Selector "Any.k" is not valid');
  ok('PtrStrings is empty', {}, true);
  fails('x in PtrStrings', 'Invalid match operator "In" for selector "PtrStrings"');
  ok('7 in Uints', { Uints: [1, 7] }, true);
  ok('"0x7" in Uints', { Uints: [1, 7] }, true);
  fails('"-1" in Uints', 'Failed to coerce value "-1" for selector "Uints": strconv.ParseUint: parsing "-1": invalid syntax');
  fails('"65536" in Uints', 'Failed to coerce value "65536" for selector "Uints": strconv.ParseUint: parsing "65536": value out of range');
  ok('Nested.X == 3', { Nested: [[{ X: 1 }], [{ X: 3 }]] }, true);
  ok('Nested.X == 3', { Nested: [[{ X: 1 }], []] }, false);
  ok('F32 == 0.1', { F32: Math.fround(0.1) }, true);
  ok('F32 == 0.1', { F32: 0.1 }, true); // float32(second.Float()) rounds the data too
  fails('F32 == "1e39"', 'Failed to coerce value "1e39" for selector "F32": strconv.ParseFloat: parsing "1e39": value out of range');
  ok('U8 == 255', { U8: 255 }, true);
  fails('U8 == 256', 'Failed to coerce value "256" for selector "U8": strconv.ParseUint: parsing "256": value out of range');
  // An unfilterable untagged field would crash go-bexpr; our tables refuse to be built.
  assert.throws(() => compileFilter('A == 1', { kind: 'struct', name: 'Bad', fields: [{ name: 'A', type: { kind: 'interface' } }] }), /not filterable/);
});

test('coercion follows strconv per kind', () => {
  assert.deepEqual(coerceLiteral('int', '0x1F90'), { value: 8080n });
  assert.deepEqual(coerceLiteral('int', '-0b101'), { value: -5n });
  assert.deepEqual(coerceLiteral('int', '0o17'), { value: 15n });
  assert.deepEqual(coerceLiteral('int', '017'), { value: 15n });
  assert.deepEqual(coerceLiteral('int', '1_000'), { value: 1000n });
  assert.deepEqual(coerceLiteral('int', '08'), { error: 'strconv.ParseInt: parsing "08": invalid syntax' });
  assert.deepEqual(coerceLiteral('int32', '2147483648'), { error: 'strconv.ParseInt: parsing "2147483648": value out of range' });
  assert.deepEqual(coerceLiteral('int32', '-2147483648'), { value: -2147483648n });
  assert.deepEqual(coerceLiteral('uint64', '18446744073709551615'), { value: 18446744073709551615n });
  assert.deepEqual(coerceLiteral('uint', '+1'), { error: 'strconv.ParseUint: parsing "+1": invalid syntax' });
  assert.deepEqual(coerceLiteral('float64', '1.5e3'), { value: 1500 });
  assert.deepEqual(coerceLiteral('float64', 'x'), { error: 'strconv.ParseFloat: parsing "x": invalid syntax' });
  assert.deepEqual(coerceLiteral('bool', 'T'), { value: true });
  assert.deepEqual(coerceLiteral('string', '0x1'), { value: '0x1' });
});

test('a nil pointer inside a selector is go-bexpr\'s one evaluation error', () => {
  const filter = compileFilter('Service.Weights.Passing == 1');
  assert.throws(() => filter.matches({ Service: { Weights: null } }), { message: 'Value at selector "Service.Weights" with type invalid does not support nested field selection' });
  assert.throws(() => compileFilter('Node.Node == a').matches({ Node: null }), { message: 'Value at selector "Node" with type invalid does not support nested field selection' });
  // A nil map, slice or absent (omitempty) field is simply empty or zero.
  assert.equal(compileFilter('Service.Meta.x != y').matches({ Service: { Meta: null } }), true);
  assert.equal(compileFilter('Service.Port == 0').matches({ Service: {} }), true);
});

test('limits: long expressions, deep nesting, long regexes are FilterErrors, quickly', () => {
  const started = Date.now();
  for (const expression of ['('.repeat(100_000), `${'('.repeat(5000)}a == 1${')'.repeat(5000)}`, 'not '.repeat(2000) + 'a == 1',
    'a == 1 or '.repeat(1000) + 'a == 1', `Service.Service matches "${'a'.repeat(2000)}"`]) {
    assert.throws(() => compileFilter(expression), FilterError);
  }
  assert.throws(() => compileFilter('a'.repeat(BEXPR_EXPRESSION_BYTES_MAX + 1)), /more than the 4096 allowed/);
  // the longest accepted or-chain and 100 nested parentheses still compile
  const chain = Array.from({ length: 150 }, (_, i) => `Service.Port == ${i}`).join(' or ');
  assert.equal(compileFilter(chain).matches(csn), false);
  assert.equal(compileFilter(`${'('.repeat(90)}Service.Port == 8080${')'.repeat(90)}`).matches(csn), true);
  assert.equal(compileFilter(`${'not '.repeat(300)}Service.Port == 8080`).matches(csn), true);
  // just under the depth limit, called from an already deep stack: a FilterError or a result, never a RangeError
  const tiny: GoType = { kind: 'struct', name: 'Tiny', fields: [{ name: 'A', type: { kind: 'int' } }, { name: 'X', type: { kind: 'string' } }] };
  const nearLimit = (n: number): void => {
    if (n > 0) { nearLimit(n - 1); return; }
    for (const levels of [95, 99, 100, 110, 300]) {
      try { compileFilter(`${'('.repeat(levels)}A == 1${')'.repeat(levels)}`, tiny); } catch (error) { assert.ok(error instanceof FilterError, String(error)); }
    }
    assert.equal(compileFilter(Array.from({ length: 390 }, () => 'A==1').join(' or '), tiny).matches({ A: 1 }), true);
  };
  nearLimit(500);
  // RE2 semantics: no catastrophic backtracking
  assert.equal(compileFilter('X matches "^(a+)+$"', tiny).matches({ X: `${'a'.repeat(5000)}b` }), false);
  assert.ok(Date.now() - started < 5000, 'limits are enforced fast');
});

function describe(datum: unknown): string {
  try { return JSON.stringify(datum) ?? typeof datum; } catch (error) { return `${typeof datum} (${String(error)})`; }
}

test('matches() never throws a raw error on odd data', () => {
  const odd: unknown[] = [null, undefined, 0, '', 'str', true, [], [null], [[[]]], {}, { Service: null }, { Service: [1, 'a', null, {}] },
    { Service: { Tags: [{}] } }, Object.create(null), { Service: { Port: 10n } }, { Service: () => 1 }, { constructor: 1 }];
  const expressions = ['Service.Port == 1', 'x in Service.Tags', 'Service.Tags is empty', 'Service.Service matches "a"', 'Service.Meta.constructor == 1',
    'Node.Meta.toString == x', 'Service.Meta["__proto__"] != x', 'Service.Meta is empty', 'constructor in Service.Meta', 'Checks.Status != passing',
    'Service.Weights.Passing == 1', 'Service.Proxy.Upstreams.DestinationName == x', 'x in Checks.ServiceTags', 'Service.EnableTagOverride == true'];
  // Prototype names are not fields: refused at creation, never looked up on data.
  for (const expression of ['constructor == 1', 'toString is empty', 'Service["__proto__"] == x', 'Service.hasOwnProperty == x']) {
    assert.throws(() => compileFilter(expression), /is not valid/, expression);
  }
  for (const expression of expressions) {
    const filter = compileFilter(expression);
    for (const datum of odd) {
      try { filter.matches(datum); } catch (error) { assert.ok(error instanceof FilterError, `${expression} on ${describe(datum)}: ${String(error)}`); }
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
    if (performance.now() - started >= 50) {
      // A slow compile is timed once more: a GC pause or a busy shared CPU does not repeat, a
      // genuinely slow expression does.
      const again = performance.now();
      try { compileFilter(expression); } catch (error) { assert.ok(error instanceof FilterError, String(error)); }
      assert.ok(performance.now() - again < 50, `SEED=${seed} i=${i} slow compile ${JSON.stringify(expression)}`);
    }
    if (filter === undefined) continue;
    for (const datum of data) {
      try { filter.matches(datum); } catch (error) {
        assert.ok(error instanceof FilterError, `SEED=${seed} i=${i} ${JSON.stringify(expression)} on ${JSON.stringify(datum)}: ${String(error)}`);
      }
    }
  }
  assert.ok(compiled > 500, `the fuzzer should produce some valid expressions (got ${compiled})`);
});
