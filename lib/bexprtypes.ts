// The Go types Consul's `?filter=` expressions are checked against, and go-bexpr v0.1.2's
// creation-time validation over them.
//
// Consul creates every filter with `bexpr.CreateFilter(args.Filter, nil, reply.X)`: go-bexpr takes
// the element type of X (a slice's or map's element, pointers removed), builds a table of field
// configurations from it by reflection (field_config.go), and validate.go checks every selector,
// operator and literal against that table before any data is read. We have no reflection, so the
// Go types are written down here as data in a small type language (GoType), and the table is
// derived from them by the same rules:
// - a struct contributes its exported fields under their Go names, or under the names of a
//   `bexpr:"a,b"` tag; `bexpr:"-"` hides a field. Embedded structs are not flattened in v0.1.2:
//   they would be selectable under their type name, but every one Consul embeds (RaftIndex,
//   acl.EnterpriseMeta) is tagged `bexpr:"-"`.
// - bool, ints, uints, floats and strings (named types by their underlying kind) support == and
//   !=; strings also in/contains, not in and (not) matches. The literal is coerced by kind
//   (coerce.go: strconv.ParseBool / ParseInt / ParseUint / ParseFloat with the kind's bit size).
// - map[string]T supports is (not) empty and (not) in on its keys, and any key selects into T;
//   maps with other keys support emptiness only.
// - []P of a primitive P supports (not) in on the elements (literal coerced as P) and emptiness;
//   []T of anything else supports emptiness only, and selectors continue into T's fields (a
//   selector through a slice means "any element").
// - a struct itself supports no operator; pointers are looked through; interfaces, funcs and
//   chans are not filterable (go-bexpr would crash on such an untagged struct field: our tables
//   must not contain one, and an assertion says so).
//
// What it does not do: custom MatchExpressionEvaluator types (Consul's filtered structs implement
// none), arrays (none are filtered), time.Duration fields (the only ones, in
// HealthCheckDefinition, are hidden by `bexpr:"-"`).
//
// Invariants: bexprFields(type) is computed once per type object and never changes; the names of
// struct fields are also their keys in the JSON our endpoints render (Consul's filterable fields
// carry no json renaming).
//
// References: hashicorp/go-bexpr v0.1.2 field_config.go, validate.go, coerce.go, evaluate.go,
// filter.go (getElementType); hashicorp/consul agent/structs/structs.go (Node, ServiceNode,
// NodeService, HealthCheck, CheckServiceNode, Weights, ServiceAddress, ServiceConnect),
// agent/structs/connect_proxy_config.go (ConnectProxyConfig, Upstream, ExposeConfig, ...),
// agent/structs/envoy_extension.go; agent/consul/catalog_endpoint.go and health_endpoint.go for
// which type each endpoint filters.

import assert from 'node:assert/strict';

// ---------------------------------------------------------------------------------------------
// Exported types

/** The reflect.Kinds go-bexpr treats as primitives (primitiveCoercionFns). */
export type GoPrimitiveKind =
  | 'bool' | 'string'
  | 'int' | 'int8' | 'int16' | 'int32' | 'int64'
  | 'uint' | 'uint8' | 'uint16' | 'uint32' | 'uint64'
  | 'float32' | 'float64';

/** A Go type as go-bexpr's reflection sees it. `name` is for messages and docs only. */
export type GoType =
  | { readonly kind: GoPrimitiveKind; readonly name?: string }
  | { readonly kind: 'struct'; readonly name: string; readonly fields: readonly GoField[] }
  | { readonly kind: 'map'; readonly key: GoType; readonly elem: GoType }
  | { readonly kind: 'slice'; readonly elem: GoType }
  | { readonly kind: 'ptr'; readonly elem: GoType }
  | { readonly kind: 'interface' | 'func' | 'chan'; readonly name?: string };

/** One struct field: its Go name (exported when capitalised), type and `bexpr:"..."` tag. */
export interface GoField {
  readonly name: string;
  readonly type: GoType;
  readonly bexprTag?: string;
}

/** go-bexpr's MatchOperator, spelled as its String() method prints it. */
export type MatchOp = 'Equal' | 'Not Equal' | 'In' | 'Not In' | 'Is Empty' | 'Is Not Empty' | 'Matches' | 'Not Matches';

/** FieldConfiguration: what a selector ending here may do, and where it may go on. */
export interface FieldConfig {
  /** The kind the literal is coerced to (CoerceFn); null when there is no coercion. */
  readonly coerceKind: GoPrimitiveKind | null;
  readonly operators: readonly MatchOp[];
  /** Selectable names below this one; FIELD_NAME_ANY matches any name (map keys). */
  readonly subFields: FieldConfigs;
}

export type FieldConfigs = ReadonlyMap<string, FieldConfig>;

/** A literal after coercion: strings stay strings, ints are bigint, floats number. */
export type CoercedValue = string | boolean | bigint | number;

/** What validation of one match expression found: the coerced literal, or go-bexpr's error text. */
export type MatchValidation =
  | { readonly ok: true; readonly config: FieldConfig; readonly value: CoercedValue | null }
  | { readonly ok: false; readonly error: string };

// ---------------------------------------------------------------------------------------------
// Limits and constants

/** FieldNameAny: the wildcard entry of a map's sub-fields. */
export const FIELD_NAME_ANY = '';

/** Deepest type nesting walked when building field tables (Go has no bound; ours are ~6 deep). */
export const BEXPR_TYPE_DEPTH_MAX = 32;

// ---------------------------------------------------------------------------------------------
// The Consul types (agent/structs, the version our endpoints render)

const str = (name?: string): GoType => (name === undefined ? { kind: 'string' } : { kind: 'string', name });
const INT: GoType = { kind: 'int' };
const BOOL: GoType = { kind: 'bool' };
const STRING: GoType = str();
const mapOf = (elem: GoType): GoType => ({ kind: 'map', key: STRING, elem });
const sliceOf = (elem: GoType): GoType => ({ kind: 'slice', elem });
const ptrTo = (elem: GoType): GoType => ({ kind: 'ptr', elem });
const field = (name: string, type: GoType, bexprTag?: string): GoField => (bexprTag === undefined ? { name, type } : { name, type, bexprTag });
/** A field Consul hides with `bexpr:"-"`; its type never matters to go-bexpr. */
const hidden = (name: string, typeName: string): GoField => ({ name, type: { kind: 'interface', name: typeName }, bexprTag: '-' });
const struct = (name: string, fields: GoField[]): GoType => ({ kind: 'struct', name, fields });

const MAP_STRING_STRING = mapOf(STRING);
const MAP_STRING_ANY = mapOf({ kind: 'interface', name: 'interface{}' });

export const GO_WEIGHTS = struct('structs.Weights', [field('Passing', INT), field('Warning', INT)]);
export const GO_SERVICE_ADDRESS = struct('structs.ServiceAddress', [field('Address', STRING), field('Port', INT)]);
const GO_MESH_GATEWAY_CONFIG = struct('structs.MeshGatewayConfig', [field('Mode', str('structs.MeshGatewayMode'))]);
const GO_TRANSPARENT_PROXY_CONFIG = struct('structs.TransparentProxyConfig', [field('OutboundListenerPort', INT), field('DialedDirectly', BOOL)]);
const GO_ACCESS_LOGS_CONFIG = struct('structs.AccessLogsConfig', [
  field('Enabled', BOOL), field('DisableListenerLogs', BOOL), field('Type', str('structs.LogSinkType')),
  field('Path', STRING), field('JSONFormat', STRING), field('TextFormat', STRING),
]);
const GO_ENVOY_EXTENSION = struct('structs.EnvoyExtension', [
  field('Name', STRING), field('Required', BOOL), field('Arguments', MAP_STRING_ANY, '-'),
  field('ConsulVersion', STRING), field('EnvoyVersion', STRING),
]);
const GO_UPSTREAM = struct('structs.Upstream', [
  field('DestinationType', STRING), field('DestinationNamespace', STRING), field('DestinationPartition', STRING),
  field('DestinationPeer', STRING), field('DestinationName', STRING), field('Datacenter', STRING),
  field('LocalBindAddress', STRING), field('LocalBindPort', INT), field('LocalBindSocketPath', STRING),
  field('LocalBindSocketMode', STRING), field('Config', MAP_STRING_ANY, '-'), field('MeshGateway', GO_MESH_GATEWAY_CONFIG),
  field('IngressHosts', sliceOf(STRING), '-'), field('CentrallyConfigured', BOOL, '-'),
]);
const GO_EXPOSE_PATH = struct('structs.ExposePath', [
  field('ListenerPort', INT), field('Path', STRING), field('LocalPathPort', INT), field('Protocol', STRING), field('ParsedFromCheck', BOOL),
]);
const GO_EXPOSE_CONFIG = struct('structs.ExposeConfig', [field('Checks', BOOL), field('Paths', sliceOf(GO_EXPOSE_PATH))]);
export const GO_CONNECT_PROXY_CONFIG = struct('structs.ConnectProxyConfig', [
  field('EnvoyExtensions', sliceOf(GO_ENVOY_EXTENSION)), field('DestinationServiceName', STRING), field('DestinationServiceID', STRING),
  field('LocalServiceAddress', STRING), field('LocalServicePort', INT), field('LocalServiceSocketPath', STRING),
  field('Mode', str('structs.ProxyMode')), field('Config', MAP_STRING_ANY, '-'), field('Upstreams', sliceOf(GO_UPSTREAM)),
  field('MeshGateway', GO_MESH_GATEWAY_CONFIG), field('Expose', GO_EXPOSE_CONFIG), field('TransparentProxy', GO_TRANSPARENT_PROXY_CONFIG),
  field('MutualTLSMode', str('structs.MutualTLSMode'), '-'), field('AccessLogs', GO_ACCESS_LOGS_CONFIG),
]);
export const GO_SERVICE_CONNECT = struct('structs.ServiceConnect', [
  field('Native', BOOL), hidden('SidecarService', '*structs.ServiceDefinition'), hidden('PeerMeta', '*structs.PeeringServiceMeta'),
]);

/** structs.Node: Catalog.ListNodes filters []*Node. */
export const GO_NODE = struct('structs.Node', [
  field('ID', str('types.NodeID')), field('Node', STRING), field('Address', STRING), field('Datacenter', STRING),
  field('Partition', STRING), field('PeerName', STRING), field('TaggedAddresses', MAP_STRING_STRING), field('Meta', MAP_STRING_STRING),
  hidden('Locality', '*structs.Locality'), hidden('RaftIndex', 'structs.RaftIndex'),
]);

/** structs.ServiceNode: Catalog.ServiceNodes and Catalog.ListServices filter []*ServiceNode. */
export const GO_SERVICE_NODE = struct('structs.ServiceNode', [
  field('ID', str('types.NodeID')), field('Node', STRING), field('Address', STRING), field('Datacenter', STRING),
  field('TaggedAddresses', MAP_STRING_STRING), field('NodeMeta', MAP_STRING_STRING), field('ServiceKind', str('structs.ServiceKind')),
  field('ServiceID', STRING), field('ServiceName', STRING), field('ServiceTags', sliceOf(STRING)), field('ServiceAddress', STRING),
  field('ServiceTaggedAddresses', mapOf(GO_SERVICE_ADDRESS)), field('ServiceWeights', GO_WEIGHTS), field('ServiceMeta', MAP_STRING_STRING),
  field('ServicePort', INT), field('ServiceSocketPath', STRING), field('ServiceEnableTagOverride', BOOL),
  field('ServiceProxy', GO_CONNECT_PROXY_CONFIG), field('ServiceConnect', GO_SERVICE_CONNECT), hidden('ServiceLocality', '*structs.Locality'),
  field('PeerName', STRING), hidden('EnterpriseMeta', 'acl.EnterpriseMeta'), hidden('RaftIndex', 'structs.RaftIndex'),
]);

/** structs.NodeService: Catalog.NodeServices (map values) and Catalog.NodeServiceList filter it. */
export const GO_NODE_SERVICE = struct('structs.NodeService', [
  field('Kind', str('structs.ServiceKind')), field('ID', STRING), field('Service', STRING), field('Tags', sliceOf(STRING)),
  field('Address', STRING), field('TaggedAddresses', mapOf(GO_SERVICE_ADDRESS)), field('Meta', MAP_STRING_STRING), field('Port', INT),
  field('SocketPath', STRING), field('Weights', ptrTo(GO_WEIGHTS)), field('EnableTagOverride', BOOL), hidden('Locality', '*structs.Locality'),
  field('Proxy', GO_CONNECT_PROXY_CONFIG), field('Connect', GO_SERVICE_CONNECT), field('LocallyRegisteredAsSidecar', BOOL, '-'),
  hidden('EnterpriseMeta', 'acl.EnterpriseMeta'), field('PeerName', STRING), hidden('RaftIndex', 'structs.RaftIndex'),
]);

/** structs.HealthCheck: Health.NodeChecks, ServiceChecks and ChecksInState filter HealthChecks. */
export const GO_HEALTH_CHECK = struct('structs.HealthCheck', [
  field('Node', STRING), field('CheckID', str('types.CheckID')), field('Name', STRING), field('Status', STRING), field('Notes', STRING),
  field('Output', STRING), field('ServiceID', STRING), field('ServiceName', STRING), field('ServiceTags', sliceOf(STRING)),
  field('Type', STRING), field('Interval', STRING), field('Timeout', STRING), field('ExposedPort', INT), field('PeerName', STRING),
  hidden('Definition', 'structs.HealthCheckDefinition'), hidden('EnterpriseMeta', 'acl.EnterpriseMeta'), hidden('RaftIndex', 'structs.RaftIndex'),
]);

/** structs.CheckServiceNode: Health.ServiceNodes filters CheckServiceNodes. */
export const GO_CHECK_SERVICE_NODE = struct('structs.CheckServiceNode', [
  field('Node', ptrTo(GO_NODE)), field('Service', ptrTo(GO_NODE_SERVICE)), field('Checks', sliceOf(ptrTo(GO_HEALTH_CHECK))),
]);

// ---------------------------------------------------------------------------------------------
// Exported API

const tableCache = new WeakMap<GoType, FieldConfigs>();

/**
 * generateFieldConfigurations for a filter's element type: the selectable top-level names. Only
 * structs and map[string]T are valid top-level types (go-bexpr's other answer is an error we never
 * provoke: the element types above are all structs).
 */
export function bexprFields(type: GoType): FieldConfigs {
  const cached = tableCache.get(type);
  if (cached !== undefined) return cached;
  const top = deref(type);
  let fields: FieldConfigs;
  if (top.kind === 'struct') fields = structFields(top, 0);
  else if (top.kind === 'map' && deref(top.key).kind === 'string') {
    const elem = fieldConfig(top.elem, 0);
    fields = new Map(elem === null ? [] : [[FIELD_NAME_ANY, elem]]);
  } else assert.fail(`bexpr: ${describeType(type)} is not a struct or map[string]T`);
  assert.ok(fields.size > 0, `bexpr: data type ${describeType(type)} has no evaluatable fields`);
  tableCache.set(type, fields);
  return fields;
}

/**
 * validate.go for one match expression: walks the selector through the field table, checks the
 * operator, and coerces the literal (null for is (not) empty). Errors carry go-bexpr's texts
 * (without CreateFilter's prefix); regex compilation is the caller's, after this succeeds.
 */
export function validateMatch(fields: FieldConfigs, selector: readonly string[], op: MatchOp, raw: string | null): MatchValidation {
  assert.ok(selector.length > 0, 'the grammar never yields an empty selector');
  let configs = fields;
  let last: FieldConfig | undefined;
  for (let i = 0; i < selector.length; i++) {
    last = configs.get(selector[i]!) ?? configs.get(FIELD_NAME_ANY);
    if (last === undefined) return { ok: false, error: `Selector ${goQuote(selector.slice(0, i + 1).join('.'))} is not valid` };
    configs = last.subFields;
  }
  assert.ok(last !== undefined, 'a non-empty selector resolves a configuration');
  const name = goQuote(selector.join('.'));
  if (!last.operators.includes(op)) return { ok: false, error: `Invalid match operator ${goQuote(op)} for selector ${name}` };
  if (raw === null || last.coerceKind === null) return { ok: true, config: last, value: raw };
  const coerced = coerceLiteral(last.coerceKind, raw);
  if ('error' in coerced) return { ok: false, error: `Failed to coerce value ${goQuote(raw)} for selector ${name}: ${coerced.error}` };
  return { ok: true, config: last, value: coerced.value };
}

/** Pointers looked through (derefType). */
export function deref(type: GoType): GoType {
  let current = type;
  while (current.kind === 'ptr') current = current.elem;
  return current;
}

/** Whether `kind` is one go-bexpr coerces and compares directly. */
export function isPrimitiveKind(kind: GoType['kind']): kind is GoPrimitiveKind {
  return PRIMITIVE_KINDS.has(kind);
}

/**
 * The struct field a selector name picks (by Go name, or a tag name), or undefined when hidden.
 * Evaluation only asks after validation, so undefined never reaches it for a valid selector.
 */
export function structFieldNamed(type: Extract<GoType, { kind: 'struct' }>, name: string): GoField | undefined {
  for (const candidate of type.fields) {
    if (!isExported(candidate.name)) continue;
    const names = bexprNames(candidate);
    if (names !== null && names.includes(name)) return candidate;
  }
  return undefined;
}

/** The literal as go-bexpr's CoerceFn for `kind` would read it (coerce.go). */
export function coerceLiteral(kind: GoPrimitiveKind, raw: string): { readonly value: CoercedValue } | { readonly error: string } {
  switch (kind) {
    case 'string': return { value: raw };
    case 'bool': return goParseBool(raw);
    case 'int': case 'int64': return goParseInt(raw, 64);
    case 'int8': return goParseInt(raw, 8);
    case 'int16': return goParseInt(raw, 16);
    case 'int32': return goParseInt(raw, 32);
    case 'uint': case 'uint64': return goParseUint(raw, 64);
    case 'uint8': return goParseUint(raw, 8);
    case 'uint16': return goParseUint(raw, 16);
    case 'uint32': return goParseUint(raw, 32);
    case 'float32': return goParseFloat(raw, 32);
    case 'float64': return goParseFloat(raw, 64);
    default: { const never: never = kind; throw new Error(`unknown kind ${String(never)}`); }
  }
}

/** strconv.Quote (what Go's %q prints for a string). */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0xfffd;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (cp === 32 || (cp >= 0x21 && cp < 0x7f)) out += ch;
    else if (cp >= 0xd800 && cp <= 0xdfff) out += '\\ufffd';
    else if (cp >= 0x80 && /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u.test(ch)) out += ch;
    else out += goEscapeRune(cp);
  }
  return `${out}"`;
}

// ---------------------------------------------------------------------------------------------
// Private: field tables (field_config.go)

const PRIMITIVE_KINDS: ReadonlySet<string> = new Set(['bool', 'string', 'int', 'int8', 'int16', 'int32', 'int64',
  'uint', 'uint8', 'uint16', 'uint32', 'uint64', 'float32', 'float64']);

const EQUALITY_OPS: readonly MatchOp[] = ['Equal', 'Not Equal'];
const STRING_OPS: readonly MatchOp[] = ['Equal', 'Not Equal', 'In', 'Not In', 'Matches', 'Not Matches'];
const PRIMITIVE_SLICE_OPS: readonly MatchOp[] = ['In', 'Not In', 'Is Empty', 'Is Not Empty'];
const EMPTINESS_OPS: readonly MatchOp[] = ['Is Empty', 'Is Not Empty'];
const STRING_MAP_OPS: readonly MatchOp[] = ['Is Empty', 'Is Not Empty', 'In', 'Not In'];
const NO_FIELDS: FieldConfigs = new Map();

/** generateFieldConfigurationInternal: null for kinds that are not filterable. */
function fieldConfig(type: GoType, depth: number): FieldConfig | null {
  assert.ok(depth <= BEXPR_TYPE_DEPTH_MAX, `bexpr: type nests deeper than ${BEXPR_TYPE_DEPTH_MAX}`);
  const t = deref(type);
  if (isPrimitiveKind(t.kind)) return { coerceKind: t.kind, operators: t.kind === 'string' ? STRING_OPS : EQUALITY_OPS, subFields: NO_FIELDS };
  switch (t.kind) {
    case 'map': return mapConfig(deref(t.key), t.elem, depth);
    case 'slice': return sliceConfig(t.elem, depth);
    case 'struct': return { coerceKind: null, operators: [], subFields: structFields(t, depth + 1) };
    default: return null;
  }
}

/** generateSliceFieldConfiguration: the element's kind is tested before pointers are removed. */
function sliceConfig(elem: GoType, depth: number): FieldConfig {
  if (isPrimitiveKind(elem.kind)) return { coerceKind: elem.kind, operators: PRIMITIVE_SLICE_OPS, subFields: NO_FIELDS };
  const sub = fieldConfig(elem, depth + 1);
  return { coerceKind: null, operators: EMPTINESS_OPS, subFields: sub !== null && sub.subFields.size > 0 ? sub.subFields : NO_FIELDS };
}

/** generateMapFieldConfiguration. */
function mapConfig(key: GoType, elem: GoType, depth: number): FieldConfig {
  if (key.kind !== 'string') return { coerceKind: null, operators: EMPTINESS_OPS, subFields: NO_FIELDS };
  const sub = fieldConfig(elem, depth + 1);
  return { coerceKind: 'string', operators: STRING_MAP_OPS, subFields: sub === null ? NO_FIELDS : new Map([[FIELD_NAME_ANY, sub]]) };
}

/** generateStructFieldConfigurations. */
function structFields(type: Extract<GoType, { kind: 'struct' }>, depth: number): FieldConfigs {
  const fields = new Map<string, FieldConfig>();
  for (const candidate of type.fields) {
    if (!isExported(candidate.name)) continue;
    const names = bexprNames(candidate);
    if (names === null) continue;
    const config = fieldConfig(candidate.type, depth + 1);
    // go-bexpr dereferences the nil configuration of an unfilterable field and panics.
    assert.ok(config !== null, `bexpr: ${type.name}.${candidate.name} (${describeType(candidate.type)}) is not filterable; tag it "-"`);
    for (const name of names) fields.set(name, config);
  }
  return fields;
}

/** The names a field is selectable under, or null for `bexpr:"-"`. */
function bexprNames(candidate: GoField): readonly string[] | null {
  const tag = candidate.bexprTag ?? '';
  if (tag === '') return [candidate.name];
  const parts = tag.split(',');
  return parts[0] === '-' ? null : parts;
}

/** Go exports identifiers that start with an upper-case letter. */
function isExported(name: string): boolean {
  const first = name.charAt(0);
  return first !== '' && first !== first.toLowerCase() && first === first.toUpperCase();
}

function describeType(type: GoType): string {
  switch (type.kind) {
    case 'struct': return type.name;
    case 'map': return `map[${describeType(type.key)}]${describeType(type.elem)}`;
    case 'slice': return `[]${describeType(type.elem)}`;
    case 'ptr': return `*${describeType(type.elem)}`;
    default: return type.name ?? type.kind;
  }
}

// ---------------------------------------------------------------------------------------------
// Private: Go strconv equivalents

type Parsed = { readonly value: CoercedValue } | { readonly error: string };

const INTEGER_SYNTAX = /^(0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|0(?:_?[0-7])+|[1-9](?:_?[0-9])*|0)$/;

/** The magnitude of an unsigned Go integer literal in base 0, or null for a syntax error. */
function parseMagnitude(digitsText: string): bigint | null {
  if (!INTEGER_SYNTAX.test(digitsText)) return null;
  let digits = digitsText.replaceAll('_', '');
  if (/^0[0-7]/.test(digits)) digits = `0o${digits.slice(1)}`;
  return BigInt(digits.replace(/^0[OXB]/, (p) => p.toLowerCase()));
}

/** strconv.ParseInt(s, 0, bits). */
function goParseInt(s: string, bits: number): Parsed {
  const m = /^([+-]?)(.*)$/s.exec(s)!;
  const magnitude = parseMagnitude(m[2]!);
  if (magnitude === null) return { error: `strconv.ParseInt: parsing ${goQuote(s)}: invalid syntax` };
  const value = m[1] === '-' ? -magnitude : magnitude;
  const limit = 1n << BigInt(bits - 1);
  if (value >= limit || value < -limit) return { error: `strconv.ParseInt: parsing ${goQuote(s)}: value out of range` };
  return { value };
}

/** strconv.ParseUint(s, 0, bits): no sign accepted. */
function goParseUint(s: string, bits: number): Parsed {
  const magnitude = parseMagnitude(s);
  if (magnitude === null) return { error: `strconv.ParseUint: parsing ${goQuote(s)}: invalid syntax` };
  if (magnitude >= 1n << BigInt(bits)) return { error: `strconv.ParseUint: parsing ${goQuote(s)}: value out of range` };
  return { value: magnitude };
}

/** strconv.ParseFloat(s, bits), decimal forms plus inf/infinity/nan (hex floats are not accepted). */
function goParseFloat(s: string, bits: 32 | 64): Parsed {
  if (/^[+-]?(inf|infinity)$/i.test(s)) return { value: s.startsWith('-') ? -Infinity : Infinity };
  if (/^[+-]?nan$/i.test(s)) return { value: NaN };
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return { error: `strconv.ParseFloat: parsing ${goQuote(s)}: invalid syntax` };
  const value = bits === 32 ? Math.fround(Number(s)) : Number(s);
  if (!Number.isFinite(value)) return { error: `strconv.ParseFloat: parsing ${goQuote(s)}: value out of range` };
  return { value };
}

/** strconv.ParseBool. */
function goParseBool(s: string): Parsed {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return { value: true };
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return { value: false };
  return { error: `strconv.ParseBool: parsing ${goQuote(s)}: invalid syntax` };
}

function goEscapeRune(cp: number): string {
  const named: Record<number, string> = { 7: '\\a', 8: '\\b', 12: '\\f', 10: '\\n', 13: '\\r', 9: '\\t', 11: '\\v' };
  const name = named[cp];
  if (name !== undefined) return name;
  if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (cp < 0x10000) return `\\u${cp.toString(16).padStart(4, '0')}`;
  return `\\U${cp.toString(16).padStart(8, '0')}`;
}
