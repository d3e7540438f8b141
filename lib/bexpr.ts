// The `?filter=` expression language of Consul's list endpoints: a parser and evaluator compatible
// with hashicorp/go-bexpr v0.1.2, the version Consul still pins (every Consul RPC endpoint calls the
// v0.1.2 API `bexpr.CreateFilter(args.Filter, nil, reply.X)`).
//
// What it does:
// - Parses with a small PEG interpreter that walks the same grammar go-bexpr's pigeon-generated
//   parser is built from (grammar.peg at v0.1.2), with pigeon's error bookkeeping: the farthest
//   failure position and the set of expectations there, rule display names, semantic-predicate
//   errors ("Invalid number literal", "Unterminated string literal", "Unmatched parentheses",
//   "Invalid index", "Unclosed index expression", "Invalid selector") and strconv.Unquote errors in
//   string literals. Parse errors are therefore exact: `1:4 (3): no match found, expected: "!=",
//   ".", "==", "[", [ \t\r\n] or [a-zA-Z0-9_]` (line:column (byte offset), columns in runes).
//   The interpreter memoizes (rule, position), which pigeon does not do; results are identical
//   but nested parentheses cost linear instead of exponential time.
// - Validates at creation, as go-bexpr does against the Go type Consul passes to CreateFilter:
//   the caller names the type (lib/bexprtypes.ts describes Consul's structs as data and derives
//   go-bexpr's field table from them), and every selector, operator and literal is checked
//   before any data is seen, in the tree's left-to-right order, with go-bexpr's texts:
//   `Selector "Nmae" is not valid`, `Invalid match operator "In" for selector "Port"`,
//   `Failed to coerce value "abc" for selector "Port": strconv.ParseInt: parsing "abc": invalid
//   syntax`, then `Failed to compile regular expression ...`. A misspelt struct field is therefore
//   an error, while an unknown key of a map (Meta.foo) is a missing key, as in Consul.
// - Evaluates the rendered JSON guided by that type, with evaluate.go's semantics: a selector
//   step into a slice applies the rest to every element and is true if any element is (so
//   `Checks.Status != passing` means "some check is not passing"; an empty slice is false for
//   every operator); a missing map key makes ==, is not empty and in false, and every other
//   operator (including matches!) true; `in`/`contains` is key membership on maps, element
//   equality on slices and substring on strings; `==` compares the literal coerced to the field's
//   kind (Go's strconv.ParseInt / ParseUint base 0 with the kind's bit size, ParseFloat,
//   ParseBool). A field absent from the JSON (omitempty) reads as its Go zero value.
// - `matches` uses our own RE2-syntax regex engine (a Pike VM: linear time, no backtracking), since
//   JS RegExp backtracks exponentially on patterns RE2 accepts. Unsupported syntax is an error.
//
// What it does not do (approximations, all documented in the report):
// - A JSON value whose shape does not fit its declared Go type (only possible for opaque data our
//   renderers pass through, such as a registered Proxy) reads as the zero value, where Go could
//   not hold it at all. A nil pointer met at the end of a selector reads as the zero value (go-bexpr
//   would panic); none of the filtered types has a pointer there.
// - Regex error texts are exact for the common cases (missing ), missing ], unexpected ), invalid
//   escape, repetition errors); case folding is JS toLowerCase/toUpperCase, not Go's fold orbits.
// - Limits below are ours (Go has none beyond memory); exceeding one is an error whose text is ours.
//
// Invariants: compileFilter (given a well-formed type; a malformed one is an assertion) and
// Filter.matches throw only FilterError; a compiled filter's
// selectors, operators and literals are valid for its type, so matching reports an error only for
// a nil pointer inside a selector (go-bexpr's one evaluation-time error); parsing and matching are
// linear in input size with the bounds below; nothing recurses deeper than BEXPR_PARSE_DEPTH_MAX.
//
// References: hashicorp/go-bexpr v0.1.2 grammar.peg, grammar.go, evaluate.go, validate.go,
// field_config.go, coerce.go, filter.go (lib/bexprtypes.ts holds the type side); Go regexp/syntax
// (parse.go error codes); Consul agent/http.go (a bexpr error is not an HTTPError, so Consul
// answers 500 with the error text).

import assert from 'node:assert/strict';
import {
  bexprFields, deref, goQuote, isPrimitiveKind, structFieldNamed, validateMatch,
  type CoercedValue, type FieldConfigs, type GoPrimitiveKind, type GoType, type MatchOp,
} from './bexprtypes.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** A filter that does not compile or cannot be applied. `message` is the body Consul sends. */
export class FilterError extends Error {
  override readonly name = 'FilterError';
  /** Consul answers a bad filter with 500 (agent/http.go default branch), not 400. */
  readonly statusCode = 500;
}

export interface Filter {
  /** Whether `datum` (one element of an endpoint's result, rendered as JSON, of the filter's Go type) passes. Throws FilterError only for go-bexpr's evaluation error (a nil pointer inside a selector), never a raw TypeError. */
  matches(datum: unknown): boolean;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Longest expression accepted, in UTF-8 bytes. Keeps an `or` chain within BEXPR_PARSE_DEPTH_MAX. */
export const BEXPR_EXPRESSION_BYTES_MAX = 4096;
/** Deepest grammar-rule nesting while parsing (4 rules per parenthesis, 1 per `not`, `or`, `and`): ~100 parentheses or ~395 `or` clauses. Measured: ~1150 levels overflow the default V8 stack from the top level, fewer under a deep caller. */
export const BEXPR_PARSE_DEPTH_MAX = 400;
/** Longest `matches` pattern, in UTF-8 bytes. */
export const BEXPR_REGEX_BYTES_MAX = 1024;
/** Most regex VM instructions after expanding counted repetitions (Go: "expression too large"). */
export const BEXPR_REGEX_PROGRAM_MAX = 5000;
/** Largest repetition count, as in Go's regexp/syntax. */
export const BEXPR_REGEX_REPEAT_MAX = 1000;
/** Deepest group nesting in a pattern. */
export const BEXPR_REGEX_NESTING_MAX = 200;

/** The prefix go-bexpr's CreateFilter puts on every error it returns. */
const CREATE_PREFIX = 'Failed to create boolean expression evaluator: ';

// ---------------------------------------------------------------------------------------------
// Exported API

/**
 * bexpr.CreateFilter(expression, nil, type): parses `expression` and validates it against the Go
 * element type the endpoint filters (GO_NODE, GO_SERVICE_NODE, ... in lib/bexprtypes.ts). Throws
 * FilterError with Consul's body text ("Failed to create boolean expression evaluator: ...") when
 * it does not parse or does not fit the type.
 */
export function compileFilter(expression: string, type: GoType): Filter {
  if (typeof expression !== 'string') throw new FilterError(`${CREATE_PREFIX}expression is not a string`);
  if (expression === '') return { matches: () => true }; // Consul: an empty filter is no filter.
  const bytes = Buffer.byteLength(expression, 'utf8');
  if (bytes > BEXPR_EXPRESSION_BYTES_MAX) {
    throw new FilterError(`${CREATE_PREFIX}expression is ${bytes} bytes, more than the ${BEXPR_EXPRESSION_BYTES_MAX} allowed`);
  }
  const fields = bexprFields(type);
  const ast = new PegParser(expression).run();
  validateAst(ast, fields);
  return { matches: (datum: unknown) => evaluate(ast, type, datum) };
}

/** Keeps the elements of a list that pass (Consul filters slices element-wise and maps value-wise). */
export function filterList<T>(filter: Filter, items: readonly T[]): T[] {
  const kept: T[] = [];
  for (const item of items) if (filter.matches(item)) kept.push(item);
  return kept;
}

export function filterMap<T>(filter: Filter, items: Readonly<Record<string, T>>): Record<string, T> {
  const kept: Array<[string, T]> = [];
  for (const [key, item] of Object.entries(items)) if (filter.matches(item)) kept.push([key, item]);
  return Object.fromEntries(kept) as Record<string, T>;
}

// ---------------------------------------------------------------------------------------------
// AST

type Ast =
  | { readonly kind: 'or' | 'and'; readonly left: Ast; readonly right: Ast }
  | { readonly kind: 'not'; readonly operand: Ast }
  | MatchNode;

interface MatchNode {
  readonly kind: 'match';
  readonly selector: readonly string[];
  readonly op: MatchOp;
  /** The literal as written (strings unquoted, selectors joined with '.'); null for is (not) empty. */
  readonly raw: string | null;
  /** The literal coerced to the field's kind at validation (null for is (not) empty). */
  value?: CoercedValue | null;
  /** Compiled once at validation, for matches / not matches. */
  regex?: Regex;
}

// ---------------------------------------------------------------------------------------------
// Grammar (the rules of go-bexpr v0.1.2 grammar.peg, as data for the interpreter below)

type Scope = Record<string, unknown>;
interface ActionResult { readonly value: unknown; readonly error?: string }
type Action = (scope: Scope, text: string) => ActionResult;

type Expr =
  | { readonly k: 'lit'; readonly s: string; readonly want: string }
  | { readonly k: 'cls'; readonly test: (cp: number) => boolean; readonly want: string }
  | { readonly k: 'any' }
  | { readonly k: 'seq' | 'choice'; readonly xs: readonly Expr[] }
  | { readonly k: 'opt' | 'star' | 'plus' | 'and' | 'not'; readonly x: Expr }
  | { readonly k: 'ref'; readonly name: string }
  | { readonly k: 'label'; readonly name: string; readonly x: Expr }
  | { readonly k: 'act'; readonly x: Expr; readonly run: Action }
  | { readonly k: 'pred'; readonly error: string };

interface Rule { readonly index: number; readonly name: string; readonly display: string | null; readonly expr: Expr }

const lit = (s: string): Expr => ({ k: 'lit', s, want: goQuote(s) });
const cls = (want: string, test: (cp: number) => boolean): Expr => ({ k: 'cls', test, want });
const seq = (...xs: Expr[]): Expr => ({ k: 'seq', xs });
const choice = (...xs: Expr[]): Expr => ({ k: 'choice', xs });
const opt = (x: Expr): Expr => ({ k: 'opt', x });
const star = (x: Expr): Expr => ({ k: 'star', x });
const plus = (x: Expr): Expr => ({ k: 'plus', x });
const and = (x: Expr): Expr => ({ k: 'and', x });
const not = (x: Expr): Expr => ({ k: 'not', x });
const ref = (name: string): Expr => ({ k: 'ref', name });
const label = (name: string, x: Expr): Expr => ({ k: 'label', name, x });
const act = (x: Expr, run: Action): Expr => ({ k: 'act', x, run });
const pred = (error: string): Expr => ({ k: 'pred', error });
const ok = (value: unknown): ActionResult => ({ value });
const opAction = (op: MatchOp): Action => () => ok(op);

const isAlpha = (cp: number): boolean => (cp >= 65 && cp <= 90) || (cp >= 97 && cp <= 122);
const isDigit = (cp: number): boolean => cp >= 48 && cp <= 57;

const GRAMMAR_RULES: ReadonlyArray<readonly [string, string | null, Expr]> = [
  ['Input', null, choice(
    act(seq(opt(ref('_')), lit('('), opt(ref('_')), label('expr', ref('OrExpression')), opt(ref('_')), lit(')'), opt(ref('_')), ref('EOF')), (s) => ok(s.expr)),
    act(seq(opt(ref('_')), label('expr', ref('OrExpression')), opt(ref('_')), ref('EOF')), (s) => ok(s.expr)),
  )],
  ['OrExpression', null, choice(
    act(seq(label('left', ref('AndExpression')), ref('_'), lit('or'), ref('_'), label('right', ref('OrExpression'))),
      (s) => ok({ kind: 'or', left: s.left, right: s.right })),
    act(label('expr', ref('AndExpression')), (s) => ok(s.expr)),
  )],
  ['AndExpression', null, choice(
    act(seq(label('left', ref('NotExpression')), ref('_'), lit('and'), ref('_'), label('right', ref('AndExpression'))),
      (s) => ok({ kind: 'and', left: s.left, right: s.right })),
    act(label('expr', ref('NotExpression')), (s) => ok(s.expr)),
  )],
  ['NotExpression', null, choice(
    act(seq(lit('not'), ref('_'), label('expr', ref('NotExpression'))), (s) => {
      const operand = s.expr as Ast;
      return ok(operand.kind === 'not' ? operand.operand : { kind: 'not', operand }); // not not x == x
    }),
    act(label('expr', ref('ParenthesizedExpression')), (s) => ok(s.expr)),
  )],
  ['ParenthesizedExpression', '"grouping"', choice(
    act(seq(lit('('), opt(ref('_')), label('expr', ref('OrExpression')), opt(ref('_')), lit(')')), (s) => ok(s.expr)),
    act(label('expr', ref('MatchExpression')), (s) => ok(s.expr)),
    seq(lit('('), opt(ref('_')), ref('OrExpression'), opt(ref('_')), not(lit(')')), pred('Unmatched parentheses')),
  )],
  ['MatchExpression', '"match"', choice(ref('MatchSelectorOpValue'), ref('MatchSelectorOp'), ref('MatchValueOpSelector'))],
  ['MatchSelectorOpValue', '"match"', act(seq(label('selector', ref('Selector')),
    label('operator', choice(ref('MatchEqual'), ref('MatchNotEqual'), ref('MatchContains'), ref('MatchNotContains'), ref('MatchMatches'), ref('MatchNotMatches'))),
    label('value', ref('Value'))), (s) => ok({ kind: 'match', selector: s.selector, op: s.operator, raw: s.value }))],
  ['MatchSelectorOp', '"match"', act(seq(label('selector', ref('Selector')), label('operator', choice(ref('MatchIsEmpty'), ref('MatchIsNotEmpty')))),
    (s) => ok({ kind: 'match', selector: s.selector, op: s.operator, raw: null }))],
  ['MatchValueOpSelector', '"match"', choice(
    act(seq(label('value', ref('Value')), label('operator', choice(ref('MatchIn'), ref('MatchNotIn'))), label('selector', ref('Selector'))),
      (s) => ok({ kind: 'match', selector: s.selector, op: s.operator, raw: s.value })),
    seq(ref('Value'), choice(ref('MatchIn'), ref('MatchNotIn')), not(ref('Selector')), pred('Invalid selector')),
  )],
  ['MatchEqual', null, act(seq(opt(ref('_')), lit('=='), opt(ref('_'))), opAction('Equal'))],
  ['MatchNotEqual', null, act(seq(opt(ref('_')), lit('!='), opt(ref('_'))), opAction('Not Equal'))],
  ['MatchIsEmpty', null, act(seq(ref('_'), lit('is'), ref('_'), lit('empty')), opAction('Is Empty'))],
  ['MatchIsNotEmpty', null, act(seq(ref('_'), lit('is'), ref('_'), lit('not'), ref('_'), lit('empty')), opAction('Is Not Empty'))],
  ['MatchIn', null, act(seq(ref('_'), lit('in'), ref('_')), opAction('In'))],
  ['MatchNotIn', null, act(seq(ref('_'), lit('not'), ref('_'), lit('in'), ref('_')), opAction('Not In'))],
  ['MatchContains', null, act(seq(ref('_'), lit('contains'), ref('_')), opAction('In'))],
  ['MatchNotContains', null, act(seq(ref('_'), lit('not'), ref('_'), lit('contains'), ref('_')), opAction('Not In'))],
  ['MatchMatches', null, act(seq(ref('_'), lit('matches'), ref('_')), opAction('Matches'))],
  ['MatchNotMatches', null, act(seq(ref('_'), lit('not'), ref('_'), lit('matches'), ref('_')), opAction('Not Matches'))],
  ['Selector', '"selector"', act(seq(label('first', ref('Identifier')), label('rest', star(ref('SelectorOrIndex')))),
    (s) => ok([s.first as string, ...(s.rest as string[])]))],
  ['Identifier', null, act(seq(cls('[a-zA-Z]', isAlpha), star(cls('[a-zA-Z0-9_]', (cp) => isAlpha(cp) || isDigit(cp) || cp === 95))), (_s, text) => ok(text))],
  ['SelectorOrIndex', null, choice(
    act(seq(lit('.'), label('ident', ref('Identifier'))), (s) => ok(s.ident)),
    act(label('expr', ref('IndexExpression')), (s) => ok(s.expr)),
  )],
  ['IndexExpression', '"index"', choice(
    act(seq(lit('['), opt(ref('_')), label('lit', ref('StringLiteral')), opt(ref('_')), lit(']')), (s) => ok(s.lit)),
    seq(lit('['), opt(ref('_')), not(ref('StringLiteral')), pred('Invalid index')),
    seq(lit('['), opt(ref('_')), ref('StringLiteral'), opt(ref('_')), not(lit(']')), pred('Unclosed index expression')),
  )],
  ['Value', '"value"', choice(
    act(label('selector', ref('Selector')), (s) => ok((s.selector as string[]).join('.'))),
    act(label('n', ref('NumberLiteral')), (s) => ok(s.n)),
    act(label('s', ref('StringLiteral')), (s) => ok(s.s)),
  )],
  ['NumberLiteral', '"number"', choice(
    act(seq(opt(lit('-')), ref('IntegerOrFloat'), and(ref('AfterNumbers'))), (_s, text) => ok(text)),
    seq(opt(lit('-')), ref('IntegerOrFloat'), not(ref('AfterNumbers')), pred('Invalid number literal')),
  )],
  ['AfterNumbers', null, and(choice(ref('_'), ref('EOF'), lit(')')))],
  ['IntegerOrFloat', null, seq(choice(lit('0'), seq(cls('[1-9]', (cp) => cp >= 49 && cp <= 57), star(cls('[0-9]', isDigit)))),
    opt(seq(lit('.'), plus(cls('[0-9]', isDigit)))))],
  ['StringLiteral', '"string"', choice(
    act(choice(seq(lit('`'), star(ref('RawStringChar')), lit('`')), seq(lit('"'), star(ref('DoubleStringChar')), lit('"'))), (_s, text) => goUnquote(text)),
    seq(choice(seq(lit('`'), star(ref('RawStringChar'))), seq(lit('"'), star(ref('DoubleStringChar')))), ref('EOF'), pred('Unterminated string literal')),
  )],
  ['RawStringChar', null, seq(not(lit('`')), { k: 'any' })],
  ['DoubleStringChar', null, seq(not(lit('"')), { k: 'any' })],
  ['_', '"whitespace"', plus(cls('[ \\t\\r\\n]', (cp) => cp === 32 || cp === 9 || cp === 13 || cp === 10))],
  ['EOF', null, not({ k: 'any' })],
];

const RULES: ReadonlyMap<string, Rule> = new Map(GRAMMAR_RULES.map(([name, display, expr], index) => [name, { index, name, display, expr }]));

// ---------------------------------------------------------------------------------------------
// PEG interpreter with pigeon's error reporting

const FAIL: unique symbol = Symbol('fail');
type Parsed = unknown | typeof FAIL;

class PegParser {
  private readonly cps: number[];
  private readonly line: Int32Array;
  private readonly col: Int32Array;
  private readonly offset: Int32Array;
  private pos = 0;
  private invert = false;
  private maxFailPos = 0;
  private maxFailExpected: string[] = [];
  private readonly errors: string[] = [];
  private readonly rstack: Rule[] = [];
  private readonly scopes: Scope[] = [{}];
  private readonly memo = new Map<number, { end: number; value: Parsed }>();

  constructor(input: string) {
    this.cps = Array.from(input, (ch) => ch.codePointAt(0) ?? 0xfffd);
    const n = this.cps.length;
    this.line = new Int32Array(n + 1);
    this.col = new Int32Array(n + 1);
    this.offset = new Int32Array(n + 1);
    // pigeon's read(): every rune (and EOF) bumps the column; a newline starts a line at column 0.
    let line = 1, col = 0, offset = 0;
    for (let i = 0; i <= n; i++) {
      const cp = this.cps[i];
      col++;
      if (cp === 10) { line++; col = 0; }
      this.line[i] = line; this.col[i] = col; this.offset[i] = offset;
      if (cp !== undefined) offset += utf8Width(cp);
    }
  }

  /** Parses the whole input as Input; throws FilterError with pigeon's error list. */
  run(): Ast {
    const value = this.parseRule(RULES.get('Input')!);
    if (value === FAIL && this.errors.length === 0) this.addNoMatch();
    if (this.errors.length > 0) throw new FilterError(CREATE_PREFIX + [...new Set(this.errors)].join('\n'));
    assert.ok(value !== FAIL && typeof value === 'object', 'a successful parse yields an AST');
    return value as Ast;
  }

  private where(at: number): string {
    return `${this.line[at]}:${this.col[at]} (${this.offset[at]})`;
  }

  private addNoMatch(): void {
    const wanted = new Set(this.maxFailExpected);
    const eof = wanted.delete('!.');
    const list = [...wanted].sort();
    if (eof) list.push('EOF');
    const joined = list.length <= 1 ? (list[0] ?? '') : `${list.slice(0, -1).join(', ')} or ${list[list.length - 1]}`;
    this.errors.push(`${this.where(this.maxFailPos)}: no match found, expected: ${joined}`);
  }

  private addError(message: string, at: number): void {
    const rule = this.rstack[this.rstack.length - 1];
    const prefix = rule === undefined ? this.where(at) : `${this.where(at)}: rule ${rule.display ?? rule.name}`;
    this.errors.push(`${prefix}: ${message}`);
  }

  /** pigeon's failAt: `matched` is whether the matcher succeeded; inside `!` the sense flips. */
  private failAt(matched: boolean, at: number, want: string): void {
    if (matched !== this.invert) return;
    if (at < this.maxFailPos) return;
    if (at > this.maxFailPos) { this.maxFailPos = at; this.maxFailExpected = []; }
    this.maxFailExpected.push(this.invert ? `!${want}` : want);
  }

  private parseRule(rule: Rule): Parsed {
    const key = (rule.index * (this.cps.length + 1) + this.pos) * 2 + (this.invert ? 1 : 0);
    const hit = this.memo.get(key);
    if (hit !== undefined) { this.pos = hit.end; return hit.value; }
    if (this.rstack.length >= BEXPR_PARSE_DEPTH_MAX) {
      throw new FilterError(`${CREATE_PREFIX}${this.where(this.pos)}: expression nests too deeply (more than ${BEXPR_PARSE_DEPTH_MAX} grammar levels)`);
    }
    this.rstack.push(rule);
    const value = this.parse(rule.expr);
    this.rstack.pop();
    this.memo.set(key, { end: this.pos, value });
    return value;
  }

  private parse(expr: Expr): Parsed {
    switch (expr.k) {
      case 'lit': return this.parseLit(expr.s, expr.want);
      case 'cls': return this.parseClass(expr.test, expr.want);
      case 'any': return this.parseAny();
      case 'seq': return this.parseSeq(expr.xs);
      case 'choice': {
        for (const alt of expr.xs) { const v = this.parse(alt); if (v !== FAIL) return v; }
        return FAIL;
      }
      case 'opt': { const v = this.parse(expr.x); return v === FAIL ? null : v; }
      case 'star':
      case 'plus': return this.parseRepeat(expr.x, expr.k === 'plus');
      case 'and':
      case 'not': return this.parseLookahead(expr.x, expr.k === 'not');
      case 'ref': return this.parseRule(RULES.get(expr.name)!);
      case 'label': {
        const v = this.parse(expr.x);
        if (v !== FAIL) this.scopes[this.scopes.length - 1]![expr.name] = v;
        return v;
      }
      case 'act': return this.parseAction(expr.x, expr.run);
      case 'pred': this.addError(expr.error, this.pos); return FAIL;
      default: { const never: never = expr; throw new Error(`unknown expression ${String(never)}`); }
    }
  }

  private parseLit(s: string, want: string): Parsed {
    const start = this.pos;
    for (let i = 0; i < s.length; i++) {
      if (this.cps[start + i] !== s.charCodeAt(i)) { this.failAt(false, start, want); return FAIL; }
    }
    this.pos = start + s.length;
    this.failAt(true, start, want);
    return s;
  }

  private parseClass(test: (cp: number) => boolean, want: string): Parsed {
    const start = this.pos;
    const cp = this.cps[start];
    if (cp === undefined || !test(cp)) { this.failAt(false, start, want); return FAIL; }
    this.pos++;
    this.failAt(true, start, want);
    return String.fromCodePoint(cp);
  }

  private parseAny(): Parsed {
    const start = this.pos;
    const cp = this.cps[start];
    if (cp === undefined) { this.failAt(false, start, '.'); return FAIL; }
    this.pos++;
    this.failAt(true, start, '.');
    return String.fromCodePoint(cp);
  }

  private parseSeq(xs: readonly Expr[]): Parsed {
    const start = this.pos;
    const values: unknown[] = [];
    for (const x of xs) {
      const v = this.parse(x);
      if (v === FAIL) { this.pos = start; return FAIL; }
      values.push(v);
    }
    return values;
  }

  private parseRepeat(x: Expr, atLeastOne: boolean): Parsed {
    const values: unknown[] = [];
    for (;;) {
      const before = this.pos;
      const v = this.parse(x);
      if (v === FAIL) break;
      values.push(v);
      if (this.pos === before) break; // cannot happen in this grammar; guards an infinite loop
    }
    return atLeastOne && values.length === 0 ? FAIL : values;
  }

  private parseLookahead(x: Expr, negate: boolean): Parsed {
    const start = this.pos;
    if (negate) this.invert = !this.invert;
    const v = this.parse(x);
    if (negate) this.invert = !this.invert;
    this.pos = start;
    return (v === FAIL) === negate ? null : FAIL;
  }

  private parseAction(x: Expr, run: Action): Parsed {
    const start = this.pos;
    this.scopes.push({});
    const v = this.parse(x);
    const scope = this.scopes.pop()!;
    if (v === FAIL) return FAIL;
    const text = String.fromCodePoint(...this.cps.slice(start, this.pos));
    const result = run(scope, text);
    if (result.error !== undefined) this.addError(result.error, start);
    return result.value;
  }
}

function utf8Width(cp: number): number {
  if (cp < 0x80) return 1;
  if (cp < 0x800) return 2;
  if (cp < 0x10000) return 3; // lone surrogates become U+FFFD, also 3 bytes
  return 4;
}

// ---------------------------------------------------------------------------------------------
// Go strconv.Unquote (Quote and the number parsers are in lib/bexprtypes.ts, with coercion)

/** strconv.Unquote for the two literal forms the grammar admits. */
function goUnquote(text: string): ActionResult {
  if (text.startsWith('`')) return ok(text.slice(1, -1).replaceAll('\r', ''));
  const body = text.slice(1, -1);
  if (body.includes('\n')) return { value: '', error: 'invalid syntax' };
  const bytes: number[] = [];
  const cps = Array.from(body, (ch) => ch.codePointAt(0) ?? 0xfffd);
  for (let i = 0; i < cps.length;) {
    const cp = cps[i]!;
    if (cp !== 92) { pushUtf8(bytes, cp); i++; continue; }
    const consumed = unquoteEscape(cps, i + 1, bytes);
    if (consumed < 0) return { value: '', error: 'invalid syntax' };
    i += 1 + consumed;
  }
  return ok(new TextDecoder().decode(Uint8Array.from(bytes)));
}

const SIMPLE_ESCAPES: Readonly<Record<string, number>> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34 };

/** Decodes the escape after a backslash at `cps[at]`; returns code points consumed, or -1. */
function unquoteEscape(cps: readonly number[], at: number, out: number[]): number {
  const c = cps[at];
  if (c === undefined) return -1;
  const ch = String.fromCodePoint(c);
  const simple = SIMPLE_ESCAPES[ch];
  if (simple !== undefined) { out.push(simple); return 1; }
  const hexCount = ch === 'x' ? 2 : ch === 'u' ? 4 : ch === 'U' ? 8 : 0;
  if (hexCount > 0) {
    const digits = String.fromCodePoint(...cps.slice(at + 1, at + 1 + hexCount));
    if (!new RegExp(`^[0-9a-fA-F]{${hexCount}}$`).test(digits)) return -1;
    const value = parseInt(digits, 16);
    if (ch === 'x') out.push(value);
    else if (value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) return -1;
    else pushUtf8(out, value);
    return 1 + hexCount;
  }
  if (c >= 48 && c <= 55) {
    const digits = String.fromCodePoint(...cps.slice(at, at + 3));
    if (!/^[0-7]{3}$/.test(digits)) return -1;
    const value = parseInt(digits, 8);
    if (value > 255) return -1;
    out.push(value);
    return 3;
  }
  return -1;
}

function pushUtf8(out: number[], cp: number): void {
  for (const byte of Buffer.from(String.fromCodePoint(cp), 'utf8')) out.push(byte);
}

// ---------------------------------------------------------------------------------------------
// Validation against the Go type (validate.go), in the order go-bexpr walks the tree

function validateAst(ast: Ast, fields: FieldConfigs): void {
  const pending: Ast[] = [ast];
  while (pending.length > 0) {
    const node = pending.pop()!;
    if (node.kind === 'or' || node.kind === 'and') pending.push(node.right, node.left); // left first, as validateRecurse
    else if (node.kind === 'not') pending.push(node.operand);
    else if (node.kind === 'match') validateMatchNode(node, fields);
  }
}

/** Selector, operator, literal coercion, then the regex: go-bexpr's checks and texts for one match. */
function validateMatchNode(node: MatchNode, fields: FieldConfigs): void {
  const checked = validateMatch(fields, node.selector, node.op, node.raw);
  if (!checked.ok) throw new FilterError(CREATE_PREFIX + checked.error);
  node.value = checked.value;
  if (node.op !== 'Matches' && node.op !== 'Not Matches') return;
  assert.ok(typeof checked.value === 'string', 'matches is only valid on string fields, whose literal stays a string');
  const compiled = compileRegex(checked.value);
  if (typeof compiled === 'string') {
    throw new FilterError(`${CREATE_PREFIX}Failed to compile regular expression ${goQuote(checked.value)}: ${compiled}`);
  }
  node.regex = compiled;
}

// ---------------------------------------------------------------------------------------------
// Evaluation (evaluate.go), guided by the Go type the selector was validated against

function evaluate(ast: Ast, type: GoType, datum: unknown): boolean {
  switch (ast.kind) {
    case 'or': return evaluate(ast.left, type, datum) || evaluate(ast.right, type, datum);
    case 'and': return evaluate(ast.left, type, datum) && evaluate(ast.right, type, datum);
    case 'not': return !evaluate(ast.operand, type, datum);
    case 'match': return evalMatch(ast, type, datum, 0);
    default: { const never: never = ast; throw new FilterError(`Invalid AST node ${String(never)}`); }
  }
}

/**
 * Walks `node.selector` from step `depth` over `value`, whose Go type is `type`
 * (evaluateMatchExpressionRecurse). A JSON value that is absent, null or of another shape reads as
 * the zero value of its Go type (encoding/json's omitempty leaves out exactly the zero values).
 * Recursion is bounded by the depth of the (finite, acyclic) type.
 */
function evalMatch(node: MatchNode, type: GoType, value: unknown, depth: number): boolean {
  if (type.kind === 'ptr' && (value === null || value === undefined) && depth < node.selector.length) {
    // reflect.Indirect of a nil pointer is the invalid Value, which cannot be selected into.
    throw new FilterError(`Value at selector ${goQuote(node.selector.slice(0, depth).join('.'))} with type invalid does not support nested field selection`);
  }
  const t = deref(type);
  if (depth >= node.selector.length) return evalLeaf(node, t, value);
  switch (t.kind) {
    case 'struct': {
      const goField = structFieldNamed(t, node.selector[depth]!);
      assert.ok(goField !== undefined, 'validation resolved every selector step');
      return evalMatch(node, goField.type, ownValue(value, goField.name), depth + 1);
    }
    case 'slice': {
      // Go does not index slices: the selector applies to every element, true if any is.
      if (!Array.isArray(value)) return false;
      for (const item of value) if (evalMatch(node, t.elem, item, depth)) return true;
      return false;
    }
    case 'map': {
      const key = node.selector[depth]!;
      const item = ownValue(value, key);
      const isPresent = item !== undefined && !(t.elem.kind === 'ptr' && item === null);
      return isPresent ? evalMatch(node, t.elem, item, depth + 1) : missingKeyResult(node.op);
    }
    default:
      throw new FilterError(`Value at selector ${goQuote(node.selector.slice(0, depth).join('.'))} with type ${t.kind} does not support nested field selection`);
  }
}

/** A key absent from a map: nothing equals it, is in it, or is non-empty; every other operator holds. */
function missingKeyResult(op: MatchOp): boolean {
  return !(op === 'Equal' || op === 'Is Not Empty' || op === 'In');
}

function evalLeaf(node: MatchNode, type: GoType, value: unknown): boolean {
  const negated = node.op === 'Not Equal' || node.op === 'Not In' || node.op === 'Is Not Empty' || node.op === 'Not Matches';
  return positiveLeaf(node, type, value) !== negated;
}

/** The operator on a value of `type`; validation guarantees the operator suits the type. */
function positiveLeaf(node: MatchNode, type: GoType, value: unknown): boolean {
  switch (node.op) {
    case 'Is Empty':
    case 'Is Not Empty':
      if (Array.isArray(value)) return value.length === 0;
      return !isJsonObject(value) || Object.keys(value).length === 0; // nil and zero-valued containers are empty
    case 'Equal':
    case 'Not Equal':
      assert.ok(isPrimitiveKind(type.kind), 'equality is only valid on primitives');
      return primitiveEquals(type.kind, node.value!, value);
    case 'In':
    case 'Not In': return containsLiteral(type, node.value!, value);
    case 'Matches':
    case 'Not Matches': return node.regex!.test(typeof value === 'string' ? value : '');
    default: { const never: never = node.op; throw new FilterError(`Invalid match operation ${String(never)}`); }
  }
}

/** doMatchIn: substring on strings, key membership on maps, element equality on slices of primitives. */
function containsLiteral(type: GoType, want: CoercedValue, value: unknown): boolean {
  if (type.kind === 'string') return (typeof value === 'string' ? value : '').includes(want as string);
  if (type.kind === 'map') return ownValue(value, want as string) !== undefined;
  assert.ok(type.kind === 'slice', 'in is only valid on strings, maps and slices');
  const itemKind = deref(type.elem).kind;
  assert.ok(isPrimitiveKind(itemKind), 'in on a slice needs primitive elements');
  if (!Array.isArray(value)) return false;
  return value.some((item) => primitiveEquals(itemKind, want, item));
}

/** The doEqual* functions: the data value, read as its Go kind, against the coerced literal. */
function primitiveEquals(kind: GoPrimitiveKind, want: CoercedValue, value: unknown): boolean {
  switch (kind) {
    case 'string': return (typeof value === 'string' ? value : '') === want;
    case 'bool': return (value === true) === want;
    case 'float32': return Math.fround(typeof value === 'number' ? value : 0) === want;
    case 'float64': return (typeof value === 'number' ? value : 0) === want;
    default: {
      let n = 0n;
      if (typeof value === 'bigint') n = value;
      else if (typeof value === 'number' && Number.isInteger(value)) n = BigInt(value);
      return n === want;
    }
  }
}

/** An own property of a JSON object (never an inherited one such as `constructor`). */
function ownValue(value: unknown, key: string): unknown {
  if (!isJsonObject(value) || !Object.prototype.hasOwnProperty.call(value, key)) return undefined;
  return value[key];
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// RE2-syntax regular expressions: parser to AST, AST to Pike VM program, linear-time search.

/** A compiled Go (RE2) regular expression; test() is Go's unanchored MatchString. */
export interface Regex { test(input: string): boolean }

type CharTest = (cp: number) => boolean;
type AssertKind = 'bol' | 'eol' | 'bot' | 'eot' | 'word' | 'nonword';

type ReNode =
  | { readonly t: 'char'; readonly test: CharTest }
  | { readonly t: 'empty' }
  | { readonly t: 'assert'; readonly kind: AssertKind }
  | { readonly t: 'cat' | 'alt'; readonly xs: readonly ReNode[] }
  | { readonly t: 'repeat'; readonly x: ReNode; readonly min: number; readonly max: number }; // max -1: unbounded

type Inst =
  | { op: 'char'; test: CharTest }
  | { op: 'split'; x: number; y: number }
  | { op: 'jmp'; x: number }
  | { op: 'assert'; kind: AssertKind }
  | { op: 'match' };

interface ReFlags { i: boolean; m: boolean; s: boolean }

class RegexSyntaxError extends Error {}

const reError = (code: string, fragment: string): RegexSyntaxError =>
  new RegexSyntaxError(`error parsing regexp: ${code}: \`${fragment}\``);

/**
 * Compiles a Go regexp (RE2 syntax, linear-time matching); returns Go's error text on failure.
 * Also what Consul's event filters and serf's tag filters compile with (lib/userevents.ts,
 * lib/serfquery.ts), so every regular expression a Consul user writes means what it means in Go.
 */
export function compileRegex(source: string): Regex | string {
  if (Buffer.byteLength(source, 'utf8') > BEXPR_REGEX_BYTES_MAX) {
    return `error parsing regexp: expression too large: pattern is longer than ${BEXPR_REGEX_BYTES_MAX} bytes`;
  }
  try {
    const ast = new ReParser(source).parseAll();
    const program: Inst[] = [];
    emit(ast, program);
    program.push({ op: 'match' });
    return { test: (input: string) => runPike(program, input) };
  } catch (error) {
    if (error instanceof RegexSyntaxError) return error.message;
    throw error;
  }
}

class ReParser {
  private readonly cps: number[];
  private pos = 0;
  private depth = 0;

  constructor(private readonly source: string) {
    this.cps = Array.from(source, (ch) => ch.codePointAt(0) ?? 0xfffd);
  }

  parseAll(): ReNode {
    const node = this.parseAlt({ i: false, m: false, s: false });
    if (this.pos < this.cps.length) throw reError('unexpected )', this.source);
    return node;
  }

  private peek(offset = 0): number | undefined { return this.cps[this.pos + offset]; }
  private text(from: number, to = this.pos): string { return String.fromCodePoint(...this.cps.slice(from, to)); }

  private parseAlt(flags: ReFlags): ReNode {
    const branches: ReNode[] = [this.parseConcat(flags)];
    while (this.peek() === 0x7c /* | */) { this.pos++; branches.push(this.parseConcat(flags)); }
    return branches.length === 1 ? branches[0]! : { t: 'alt', xs: branches };
  }

  private parseConcat(flags: ReFlags): ReNode {
    const items: ReNode[] = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === 0x7c || c === 0x29 /* ) */) break;
      if (c === 0x2a || c === 0x2b || c === 0x3f /* * + ? */ || (c === 0x7b && this.repeatAhead() !== null)) {
        const start = this.pos;
        const [min, max] = this.parseRepeatOp();
        const last = items.pop();
        if (last === undefined) throw reError('missing argument to repetition operator', this.text(start));
        // Perl syntax forbids stacking repetitions (a**); the fragment spans both operators.
        if (this.lastWasRepeat) throw reError('invalid nested repetition operator', this.text(this.lastRepeatStart));
        if (max > BEXPR_REGEX_REPEAT_MAX || min > BEXPR_REGEX_REPEAT_MAX || (max !== -1 && max < min)) throw reError('invalid repeat count', this.text(start));
        items.push({ t: 'repeat', x: last, min, max });
        this.lastWasRepeat = true;
        this.lastRepeatStart = start;
        continue;
      }
      this.lastWasRepeat = false;
      const atom = this.parseAtom(flags);
      if (atom !== null) items.push(atom);
    }
    this.lastWasRepeat = false;
    if (items.length === 0) return { t: 'empty' };
    return items.length === 1 ? items[0]! : { t: 'cat', xs: items };
  }

  private lastWasRepeat = false;
  private lastRepeatStart = 0;

  /** `{n}`, `{n,}` or `{n,m}` at the cursor, else null (then `{` is a literal, as in Go). */
  private repeatAhead(): [number, number, number] | null {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(this.text(this.pos, Math.min(this.cps.length, this.pos + 24)));
    if (m === null) return null;
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === '' ? -1 : Number(m[3]);
    return [min, max, m[0].length];
  }

  private parseRepeatOp(): [number, number] {
    const c = this.peek()!;
    let result: [number, number];
    if (c === 0x7b) {
      const [min, max, length] = this.repeatAhead()!;
      this.pos += length;
      result = [min, max];
    } else {
      this.pos++;
      result = c === 0x2a ? [0, -1] : c === 0x2b ? [1, -1] : [0, 1];
    }
    if (this.peek() === 0x3f) this.pos++; // non-greedy: same language, same boolean answer
    return result;
  }

  private parseAtom(flags: ReFlags): ReNode | null {
    const c = this.peek()!;
    switch (c) {
      case 0x28: return this.parseGroup(flags);
      case 0x5b: return this.parseClass(flags);
      case 0x2e: this.pos++; return { t: 'char', test: flags.s ? () => true : (cp) => cp !== 10 };
      case 0x5e: this.pos++; return { t: 'assert', kind: flags.m ? 'bol' : 'bot' };
      case 0x24: this.pos++; return { t: 'assert', kind: flags.m ? 'eol' : 'eot' };
      case 0x5c: return this.parseEscape(flags);
      default: this.pos++; return literal(c, flags);
    }
  }

  private parseGroup(flags: ReFlags): ReNode | null {
    const start = this.pos;
    this.pos++;
    if (++this.depth > BEXPR_REGEX_NESTING_MAX) throw reError('expression nests too deeply', this.source);
    let inner = flags;
    if (this.peek() === 0x3f /* ? */) {
      const rest = this.text(this.pos, this.cps.length);
      const named = /^\?P?<([A-Za-z0-9_]*)>/.exec(rest);
      if (named !== null) {
        if (named[1] === '' || !/^\w+$/.test(named[1]!)) throw reError('invalid named capture', this.text(start, this.pos + named[0].length));
        this.pos += named[0].length;
      } else {
        const flagged = /^\?([imsU]*)(?:-([imsU]*))?([:)])/.exec(rest);
        if (flagged === null || (flagged[2] === '' && flagged[0].includes('-'))) {
          throw reError('invalid or unsupported Perl syntax', this.text(start, Math.min(this.cps.length, this.pos + 2)));
        }
        inner = applyFlags(flags, flagged[1] ?? '', flagged[2] ?? '');
        this.pos += flagged[0].length;
        if (flagged[3] === ')') { Object.assign(flags, inner); this.depth--; return null; } // (?i) sets flags for the rest of the group
      }
    }
    const node = this.parseAlt({ ...inner });
    if (this.peek() !== 0x29) throw reError('missing closing )', this.source);
    this.pos++;
    this.depth--;
    return node;
  }

  private parseEscape(flags: ReFlags): ReNode {
    const start = this.pos;
    const c = this.peek(1);
    if (c === undefined) throw reError('trailing backslash at end of expression', '');
    const ch = String.fromCodePoint(c);
    if (ch === 'A' || ch === 'z') { this.pos += 2; return { t: 'assert', kind: ch === 'A' ? 'bot' : 'eot' }; }
    if (ch === 'b' || ch === 'B') { this.pos += 2; return { t: 'assert', kind: ch === 'b' ? 'word' : 'nonword' }; }
    if (ch === 'Q') {
      const end = this.text(this.pos + 2, this.cps.length).indexOf('\\E');
      const body = Array.from(end === -1 ? this.text(this.pos + 2, this.cps.length) : this.text(this.pos + 2, this.cps.length).slice(0, end));
      this.pos = end === -1 ? this.cps.length : this.pos + 2 + body.length + 2;
      return { t: 'cat', xs: body.map((s) => literal(s.codePointAt(0)!, flags)) };
    }
    const test = this.parseClassEscape();
    if (test === null) throw reError('invalid escape sequence', this.text(start, Math.min(this.cps.length, start + 2)));
    return { t: 'char', test: foldTest(test, flags) };
  }

  /** An escape usable both inside and outside brackets: returns a code point test or null. */
  private parseClassEscape(): CharTest | null {
    const start = this.pos;
    this.pos++; // backslash
    const c = this.cps[this.pos++];
    if (c === undefined) throw reError('trailing backslash at end of expression', '');
    const ch = String.fromCodePoint(c);
    const perl = PERL_CLASSES[ch.toLowerCase()];
    if (perl !== undefined) return ch === ch.toLowerCase() ? perl : (cp) => !perl(cp);
    if (ch === 'p' || ch === 'P') return this.parseUnicodeClass(start, ch === 'P');
    const single = this.parseEscapedCodePoint(c, start);
    return single === null ? null : (cp) => cp === single;
  }

  private parseEscapedCodePoint(c: number, start: number): number | null {
    const ch = String.fromCodePoint(c);
    const named: Record<string, number> = { a: 7, f: 12, t: 9, n: 10, r: 13, v: 11 };
    if (named[ch] !== undefined) return named[ch]!;
    if (c < 0x80 && /[!-\/:-@\[-`{-~]/.test(ch)) return c; // escaped ASCII punctuation
    if (c >= 0x30 && c <= 0x37) { // octal: \0 and up to two more digits (Go rejects \1-\7 as backreferences unless followed)
      if (c !== 0x30 && !(this.peek() !== undefined && this.peek()! >= 0x30 && this.peek()! <= 0x37)) return null;
      let value = c - 0x30;
      for (let n = 0; n < 2 && this.peek() !== undefined && this.peek()! >= 0x30 && this.peek()! <= 0x37; n++) value = value * 8 + (this.cps[this.pos++]! - 0x30);
      return value;
    }
    if (ch === 'x') {
      const rest = this.text(this.pos, this.cps.length);
      const m = /^\{([0-9a-fA-F]{1,8})\}|^([0-9a-fA-F]{2})/.exec(rest);
      if (m === null) throw reError('invalid escape sequence', this.text(start, Math.min(this.cps.length, this.pos + 2)));
      const value = parseInt(m[1] ?? m[2]!, 16);
      if (value > 0x10ffff) throw reError('invalid escape sequence', this.text(start, this.pos + m[0].length));
      this.pos += m[0].length;
      return value;
    }
    return null;
  }

  private parseUnicodeClass(start: number, negated: boolean): CharTest {
    let name: string;
    if (this.peek() === 0x7b) {
      const close = this.cps.indexOf(0x7d, this.pos);
      if (close === -1) throw reError('invalid character class range', this.text(start, this.cps.length));
      name = this.text(this.pos + 1, close);
      this.pos = close + 1;
    } else {
      const c = this.cps[this.pos++];
      if (c === undefined) throw reError('invalid character class range', this.text(start));
      name = String.fromCodePoint(c);
    }
    if (name.startsWith('^')) { negated = !negated; name = name.slice(1); }
    const pattern = unicodePattern(name);
    if (pattern === null) throw reError('invalid character class range', this.text(start));
    return negated ? (cp) => !pattern.test(String.fromCodePoint(cp)) : (cp) => pattern.test(String.fromCodePoint(cp));
  }

  private parseClass(flags: ReFlags): ReNode {
    const start = this.pos;
    this.pos++;
    let negated = false;
    if (this.peek() === 0x5e) { negated = true; this.pos++; }
    const tests: CharTest[] = [];
    let first = true;
    for (;;) {
      const c = this.peek();
      if (c === undefined) throw reError('missing closing ]', this.text(start, this.cps.length));
      if (c === 0x5d && !first) { this.pos++; break; }
      first = false;
      const posix = /^\[:(\^?)([a-z]+):\]/.exec(this.text(this.pos, Math.min(this.cps.length, this.pos + 16)));
      if (posix !== null) {
        const test = POSIX_CLASSES[posix[2]!];
        if (test === undefined) throw reError('invalid character class range', posix[0]);
        tests.push(posix[1] === '^' ? (cp) => !test(cp) : test);
        this.pos += posix[0].length;
        continue;
      }
      tests.push(this.parseClassItem());
    }
    const any: CharTest = (cp) => tests.some((test) => test(cp));
    const folded = foldTest(any, flags);
    // Perl mode sets ClassNL in Go, so a negated class may match \n.
    return { t: 'char', test: negated ? (cp) => !folded(cp) : folded };
  }

  private parseClassItem(): CharTest {
    const start = this.pos;
    const low = this.classAtom();
    if (typeof low !== 'number') return low;
    if (this.peek() === 0x2d /* - */ && this.peek(1) !== undefined && this.peek(1) !== 0x5d) {
      this.pos++;
      const high = this.classAtom();
      if (typeof high !== 'number' || high < low) throw reError('invalid character class range', this.text(start));
      return (cp) => cp >= low && cp <= high;
    }
    return (cp) => cp === low;
  }

  /** One bracket item: a code point (may start a range) or a class test (\d, \pL...). */
  private classAtom(): number | CharTest {
    const c = this.peek()!;
    if (c !== 0x5c) { this.pos++; return c; }
    const start = this.pos;
    const next = this.peek(1);
    if (next !== undefined && (PERL_CLASSES[String.fromCodePoint(next).toLowerCase()] !== undefined || next === 0x70 || next === 0x50)) {
      const test = this.parseClassEscape();
      assert.ok(test !== null, 'perl and unicode class escapes always yield a test');
      return test;
    }
    this.pos++;
    const escaped = this.cps[this.pos++];
    if (escaped === undefined) throw reError('trailing backslash at end of expression', '');
    const single = this.parseEscapedCodePoint(escaped, start);
    if (single === null) throw reError('invalid escape sequence', this.text(start, Math.min(this.cps.length, start + 2)));
    return single;
  }
}

function applyFlags(flags: ReFlags, on: string, off: string): ReFlags {
  const next = { ...flags };
  for (const f of on) if (f === 'i' || f === 'm' || f === 's') next[f] = true;
  for (const f of off) if (f === 'i' || f === 'm' || f === 's') next[f] = false;
  return next;
}

function literal(cp: number, flags: ReFlags): ReNode {
  return { t: 'char', test: foldTest((c) => c === cp, flags) };
}

/** Case-insensitive matching: also try the simple lower and upper case of the input code point. */
function foldTest(test: CharTest, flags: ReFlags): CharTest {
  if (!flags.i) return test;
  return (cp) => test(cp) || test(simpleCase(cp, 'lower')) || test(simpleCase(cp, 'upper'));
}

function simpleCase(cp: number, which: 'lower' | 'upper'): number {
  const ch = String.fromCodePoint(cp);
  const mapped = which === 'lower' ? ch.toLowerCase() : ch.toUpperCase();
  const out = mapped.codePointAt(0);
  return out !== undefined && String.fromCodePoint(out) === mapped ? out : cp;
}

const isWordChar = (cp: number): boolean => isAlpha(cp) || isDigit(cp) || cp === 95;
const isSpaceChar = (cp: number): boolean => cp === 9 || cp === 10 || cp === 12 || cp === 13 || cp === 32;

const PERL_CLASSES: Readonly<Record<string, CharTest>> = { d: isDigit, s: isSpaceChar, w: isWordChar };

const POSIX_CLASSES: Readonly<Record<string, CharTest>> = {
  alnum: (cp) => isAlpha(cp) || isDigit(cp), alpha: isAlpha, ascii: (cp) => cp <= 0x7f,
  blank: (cp) => cp === 9 || cp === 32, cntrl: (cp) => cp < 32 || cp === 0x7f, digit: isDigit,
  graph: (cp) => cp > 32 && cp < 0x7f, lower: (cp) => cp >= 97 && cp <= 122, print: (cp) => cp >= 32 && cp < 0x7f,
  punct: (cp) => cp > 32 && cp < 0x7f && !isAlpha(cp) && !isDigit(cp), space: (cp) => isSpaceChar(cp) || cp === 11,
  upper: (cp) => cp >= 65 && cp <= 90, word: isWordChar, xdigit: (cp) => isDigit(cp) || (cp >= 65 && cp <= 70) || (cp >= 97 && cp <= 102),
};

/** A JS pattern testing one code point for a Go \p{Name}: general categories, scripts, Any. */
function unicodePattern(name: string): RegExp | null {
  if (!/^[A-Za-z_]+$/.test(name)) return null;
  if (name === 'Any') return /^[\s\S]$/u;
  for (const candidate of [`\\p{${name}}`, `\\p{Script=${name}}`]) {
    try { return new RegExp(`^${candidate}$`, 'u'); } catch (error) { if (!(error instanceof SyntaxError)) throw error; }
  }
  return null;
}

/** Thompson construction; counted repetitions are expanded, bounded by BEXPR_REGEX_PROGRAM_MAX. */
function emit(node: ReNode, program: Inst[]): void {
  if (program.length > BEXPR_REGEX_PROGRAM_MAX) throw reError('expression too large', '');
  switch (node.t) {
    case 'char': program.push({ op: 'char', test: node.test }); return;
    case 'empty': return;
    case 'assert': program.push({ op: 'assert', kind: node.kind }); return;
    case 'cat': for (const x of node.xs) emit(x, program); return;
    case 'alt': emitAlt(node.xs, program); return;
    case 'repeat': emitRepeat(node.x, node.min, node.max, program); return;
    default: { const never: never = node; throw new Error(`unknown regex node ${String(never)}`); }
  }
}

function emitAlt(xs: readonly ReNode[], program: Inst[]): void {
  const jumps: Array<{ op: 'jmp'; x: number }> = [];
  xs.forEach((x, index) => {
    if (index === xs.length - 1) { emit(x, program); return; }
    const split: Inst = { op: 'split', x: program.length + 1, y: 0 };
    program.push(split);
    emit(x, program);
    const jump = { op: 'jmp' as const, x: 0 };
    program.push(jump);
    jumps.push(jump);
    split.y = program.length;
  });
  for (const jump of jumps) jump.x = program.length;
}

function emitRepeat(x: ReNode, min: number, max: number, program: Inst[]): void {
  for (let i = 0; i < min; i++) emit(x, program);
  if (max === -1) {
    const split: Inst = { op: 'split', x: program.length + 1, y: 0 };
    const loop = program.length;
    program.push(split);
    emit(x, program);
    program.push({ op: 'jmp', x: loop });
    split.y = program.length;
    return;
  }
  const splits: Array<{ op: 'split'; x: number; y: number }> = [];
  for (let i = min; i < max; i++) {
    const split = { op: 'split' as const, x: program.length + 1, y: 0 };
    program.push(split);
    splits.push(split);
    emit(x, program);
  }
  for (const split of splits) split.y = program.length;
}

/** Pike VM: unanchored search, true as soon as any thread reaches `match`. */
function runPike(program: readonly Inst[], input: string): boolean {
  const cps = Array.from(input, (ch) => ch.codePointAt(0) ?? 0xfffd);
  const seen = new Int32Array(program.length).fill(-1);
  let current: number[] = [];
  for (let i = 0; i <= cps.length; i++) {
    if (addThread(program, 0, i, cps, seen, current)) return true; // a new thread at every position
    const next: number[] = [];
    const cp = cps[i];
    if (cp !== undefined) {
      for (const pc of current) {
        const inst = program[pc]!;
        if (inst.op === 'char' && inst.test(cp) && addThread(program, pc + 1, i + 1, cps, seen, next)) return true;
      }
    }
    current = next;
    if (cp === undefined) break;
  }
  return false;
}

/** Follows empty transitions from `start` at text position `at`; true if `match` is reachable. */
function addThread(program: readonly Inst[], start: number, at: number, cps: readonly number[], seen: Int32Array, list: number[]): boolean {
  const stack = [start];
  while (stack.length > 0) {
    const pc = stack.pop()!;
    if (seen[pc] === at) continue;
    seen[pc] = at;
    const inst = program[pc]!;
    switch (inst.op) {
      case 'match': return true;
      case 'jmp': stack.push(inst.x); break;
      case 'split': stack.push(inst.y, inst.x); break;
      case 'assert': if (assertHolds(inst.kind, at, cps)) stack.push(pc + 1); break;
      case 'char': list.push(pc); break;
      default: { const never: never = inst; throw new Error(`unknown instruction ${String(never)}`); }
    }
  }
  return false;
}

function assertHolds(kind: AssertKind, at: number, cps: readonly number[]): boolean {
  const before = cps[at - 1];
  const after = cps[at];
  switch (kind) {
    case 'bot': return at === 0;
    case 'eot': return at === cps.length;
    case 'bol': return at === 0 || before === 10;
    case 'eol': return at === cps.length || after === 10;
    case 'word':
    case 'nonword': {
      const boundary = (before !== undefined && isWordChar(before)) !== (after !== undefined && isWordChar(after));
      return boundary === (kind === 'word');
    }
    default: { const never: never = kind; throw new Error(`unknown assertion ${String(never)}`); }
  }
}
