import { checkTopicFilter, type JsonValue } from '@pifleet/protocol';
import type { BinaryOp, Expr, FromClause, Query, SelectItem } from './ast.js';
import { IotSqlError, type IotSqlErrorKind, positionAt } from './errors.js';
import { Lexer, type Token } from './lexer.js';

/** Words that cannot name a field (use get(*, 'word') for such a key). */
const RESERVED = new Set([
  'SELECT',
  'FROM',
  'WHERE',
  'AS',
  'AND',
  'OR',
  'NOT',
  'IN',
  'IS',
  'NULL',
  'TRUE',
  'FALSE',
  'CASE',
  'WHEN',
  'THEN',
  'ELSE',
  'END',
  'EXISTS',
]);

const MAX_DEPTH = 200;

const COMPARISON: ReadonlySet<string> = new Set(['=', '<>', '<', '<=', '>', '>=']);

function describe(tok: Token): string {
  switch (tok.kind) {
    case 'eof':
      return 'end of input';
    case 'string':
      return `string ${JSON.stringify(tok.text)}`;
    case 'number':
      return `number ${tok.text}`;
    case 'ident':
      return RESERVED.has(tok.upper) ? `keyword ${tok.upper}` : `identifier ${JSON.stringify(tok.text)}`;
    case 'punct':
      return `'${tok.text}'`;
  }
}

/** Recursive-descent parser for AWS IoT SQL 2016-03-23 over the on-demand {@link Lexer}. */
export class Parser {
  private readonly lexer: Lexer;
  private readonly buf: Token[] = [];
  private depth = 0;

  constructor(
    private readonly src: string,
    start = 0,
  ) {
    this.lexer = new Lexer(src, start);
  }

  error(kind: IotSqlErrorKind, reason: string, offset: number): IotSqlError {
    return new IotSqlError(kind, reason, positionAt(this.src, offset), this.src);
  }

  peek(k = 0): Token {
    while (this.buf.length <= k) this.buf.push(this.lexer.next());
    return this.buf[k] as Token;
  }

  take(): Token {
    const t = this.peek();
    this.buf.shift();
    return t;
  }

  private isWord(tok: Token, word: string): boolean {
    return tok.kind === 'ident' && tok.upper === word;
  }

  private isPunct(tok: Token, p: string): boolean {
    return tok.kind === 'punct' && tok.text === p;
  }

  private unexpected(tok: Token, expected?: string): IotSqlError {
    const what = `unexpected ${describe(tok)}`;
    return this.error('syntax', expected ? `${what}, expected ${expected}` : what, tok.start);
  }

  private expectPunct(p: string): Token {
    const t = this.peek();
    if (!this.isPunct(t, p)) throw this.unexpected(t, `'${p}'`);
    return this.take();
  }

  private expectWord(word: string): Token {
    const t = this.peek();
    if (!this.isWord(t, word)) throw this.unexpected(t, word);
    return this.take();
  }

  /** `SELECT … FROM 'filter' [WHERE …]` and nothing after it. */
  parseStatement(): Query {
    const first = this.peek();
    if (!this.isWord(first, 'SELECT')) throw this.unexpected(first, 'SELECT');
    const query = this.parseQuery(true);
    const rest = this.peek();
    if (rest.kind !== 'eof')
      throw this.error('syntax', `unexpected ${describe(rest)} after the end of the statement`, rest.start);
    return query;
  }

  /** One expression, for substitution templates; the caller checks what follows. */
  parseStandaloneExpr(): Expr {
    return this.parseExpr();
  }

  private parseQuery(top: boolean): Query {
    const selectTok = this.expectWord('SELECT');
    let value = false;
    const v = this.peek();
    if (v.kind === 'ident' && v.upper === 'VALUE' && this.startsExpression(this.peek(1))) {
      this.take();
      value = true;
    }
    const items: SelectItem[] = [];
    do {
      items.push(this.parseSelectItem(value));
    } while (this.isPunct(this.peek(), ',') && this.take());
    if (value && items.length !== 1) {
      const second = items[1] as SelectItem;
      throw this.error('semantic', 'SELECT VALUE takes exactly one expression', second.start);
    }
    const fromTok = this.peek();
    if (!this.isWord(fromTok, 'FROM')) {
      if (fromTok.kind === 'eof') throw this.error('syntax', 'missing FROM clause', fromTok.start);
      throw this.unexpected(fromTok, top ? "',' or FROM" : "',' or FROM");
    }
    this.take();
    const from = top ? this.parseTopicFrom() : this.parseNestedFrom();
    let where: Expr | undefined;
    if (this.isWord(this.peek(), 'WHERE')) {
      this.take();
      where = this.parseExpr();
    }
    const end = where ? where.end : from.end;
    return { value, items, from, where, start: selectTok.start, end };
  }

  private parseSelectItem(value: boolean): SelectItem {
    const t = this.peek();
    if (this.isPunct(t, '*')) {
      const next = this.peek(1);
      if (this.isPunct(next, ',') || this.isWord(next, 'FROM') || next.kind === 'eof') {
        this.take();
        if (value) throw this.error('semantic', 'SELECT VALUE * is not supported; use SELECT *', t.start);
        return { kind: 'star', start: t.start, end: t.end };
      }
    }
    const expr = this.parseExpr();
    let alias: string[] | undefined;
    let end = expr.end;
    if (this.isWord(this.peek(), 'AS')) {
      const asTok = this.take();
      if (value) throw this.error('semantic', 'SELECT VALUE cannot have an alias', asTok.start);
      alias = [];
      for (;;) {
        const name = this.peek();
        if (name.kind !== 'ident' || RESERVED.has(name.upper)) throw this.unexpected(name, 'an alias name');
        this.take();
        alias.push(name.text);
        end = name.end;
        if (!this.isPunct(this.peek(), '.')) break;
        this.take();
      }
    }
    return { kind: 'expr', expr, alias, start: expr.start, end };
  }

  private parseTopicFrom(): FromClause {
    const t = this.peek();
    if (t.kind !== 'string' || t.quote !== "'") {
      throw this.error('syntax', `expected a topic filter in single quotes after FROM, found ${describe(t)}`, t.start);
    }
    this.take();
    const problem = checkTopicFilter(t.text);
    if (problem) throw this.error('semantic', `invalid topic filter in FROM: ${problem}`, t.start);
    return { kind: 'topic', filter: t.text, start: t.start, end: t.end };
  }

  private parseNestedFrom(): FromClause {
    const expr = this.parsePostfix();
    let alias: string | undefined;
    let end = expr.end;
    if (this.isWord(this.peek(), 'AS')) this.take();
    const a = this.peek();
    if (a.kind === 'ident' && !RESERVED.has(a.upper)) {
      this.take();
      alias = a.text;
      end = a.end;
    }
    return { kind: 'expr', expr, alias, start: expr.start, end };
  }

  private startsExpression(tok: Token): boolean {
    switch (tok.kind) {
      case 'number':
      case 'string':
        return true;
      case 'ident':
        return !RESERVED.has(tok.upper) || ['NOT', 'NULL', 'TRUE', 'FALSE', 'CASE', 'EXISTS'].includes(tok.upper);
      case 'punct':
        return ['(', '[', '{', '-', '+'].includes(tok.text);
      case 'eof':
        return false;
    }
  }

  parseExpr(): Expr {
    this.enter();
    const e = this.parseOr();
    this.depth--;
    return e;
  }

  /** Bounds nesting so that a pathological statement fails with a located error, not a stack overflow. */
  private enter(): void {
    if (++this.depth > MAX_DEPTH) {
      throw this.error('semantic', `expression nested more than ${MAX_DEPTH} levels deep`, this.peek().start);
    }
  }

  private parseOr(): Expr {
    let left = this.parseAnd();
    while (this.isWord(this.peek(), 'OR')) {
      this.take();
      const right = this.parseAnd();
      left = { type: 'binary', op: 'OR', left, right, start: left.start, end: right.end };
    }
    return left;
  }

  private parseAnd(): Expr {
    let left = this.parseNot();
    while (this.isWord(this.peek(), 'AND')) {
      this.take();
      const right = this.parseNot();
      left = { type: 'binary', op: 'AND', left, right, start: left.start, end: right.end };
    }
    return left;
  }

  private parseNot(): Expr {
    const t = this.peek();
    if (this.isWord(t, 'NOT')) {
      this.take();
      this.enter();
      const operand = this.parseNot();
      this.depth--;
      return { type: 'unary', op: 'NOT', operand, start: t.start, end: operand.end };
    }
    return this.parseComparison();
  }

  private parseComparison(): Expr {
    let left = this.parseAdditive();
    for (;;) {
      const t = this.peek();
      if (t.kind === 'punct' && COMPARISON.has(t.text)) {
        this.take();
        const right = this.parseAdditive();
        left = { type: 'binary', op: t.text as BinaryOp, left, right, start: left.start, end: right.end };
      } else if (this.isPunct(t, '!=')) {
        throw this.error('syntax', "'!=' is not an IoT SQL operator; use '<>'", t.start);
      } else if (this.isPunct(t, '==')) {
        throw this.error('syntax', "'==' is not an IoT SQL operator; use '='", t.start);
      } else if (this.isWord(t, 'IS')) {
        throw this.isTestError(t);
      } else if (this.isWord(t, 'IN')) {
        this.take();
        const right = this.parseAdditive();
        left = { type: 'in', left, right, start: left.start, end: right.end };
      } else if (this.isWord(t, 'NOT') && this.isWord(this.peek(1), 'IN')) {
        this.take();
        this.take();
        const right = this.parseAdditive();
        const inExpr: Expr = { type: 'in', left, right, start: left.start, end: right.end };
        left = { type: 'unary', op: 'NOT', operand: inExpr, start: left.start, end: right.end };
      } else {
        return left;
      }
    }
  }

  /**
   * `x IS [NOT] NULL` / `x IS [NOT] UNDEFINED` are ANSI SQL, not AWS IoT SQL: the operators page has
   * no IS, and CreateTopicRule rejects such a statement. Refused here so that a rule that loads
   * locally loads in AWS; the message names the construct and the documented function to use.
   */
  private isTestError(isTok: Token): IotSqlError {
    let k = 1;
    const negated = this.isWord(this.peek(k), 'NOT');
    if (negated) k++;
    const what = this.peek(k);
    const test = what.kind === 'ident' ? what.upper : '';
    const fn = test === 'NULL' ? 'isNull' : test === 'UNDEFINED' ? 'isUndefined' : undefined;
    if (fn === undefined) {
      return this.error('syntax', "'IS' is not an IoT SQL operator; use isNull(x) or isUndefined(x)", isTok.start);
    }
    const construct = `IS ${negated ? 'NOT ' : ''}${test}`;
    const instead = negated ? `NOT ${fn}(x)` : `${fn}(x)`;
    return this.error('syntax', `'x ${construct}' is not IoT SQL; use ${instead}`, isTok.start);
  }

  private parseAdditive(): Expr {
    let left = this.parseMultiplicative();
    for (;;) {
      const t = this.peek();
      if (!(this.isPunct(t, '+') || this.isPunct(t, '-'))) return left;
      this.take();
      const right = this.parseMultiplicative();
      left = { type: 'binary', op: t.text as BinaryOp, left, right, start: left.start, end: right.end };
    }
  }

  private parseMultiplicative(): Expr {
    let left = this.parseUnary();
    for (;;) {
      const t = this.peek();
      if (!(this.isPunct(t, '*') || this.isPunct(t, '/') || this.isPunct(t, '%'))) return left;
      this.take();
      const right = this.parseUnary();
      left = { type: 'binary', op: t.text as BinaryOp, left, right, start: left.start, end: right.end };
    }
  }

  private parseUnary(): Expr {
    const t = this.peek();
    if (this.isPunct(t, '-') || this.isPunct(t, '+')) {
      this.take();
      this.enter();
      const operand = this.parseUnary();
      this.depth--;
      if (operand.type === 'literal' && typeof operand.value === 'number') {
        const value = t.text === '-' ? -operand.value : operand.value;
        return { type: 'literal', value, start: t.start, end: operand.end };
      }
      return { type: 'unary', op: t.text as '-' | '+', operand, start: t.start, end: operand.end };
    }
    return this.parsePostfix();
  }

  private parsePostfix(): Expr {
    let expr = this.parsePrimary();
    for (;;) {
      const t = this.peek();
      if (this.isPunct(t, '.')) {
        this.take();
        const name = this.peek();
        if (name.kind === 'number') {
          throw this.error(
            'syntax',
            `a key that starts with a digit cannot follow '.'; use get(…, '${name.text}')`,
            name.start,
          );
        }
        if (name.kind !== 'ident' || RESERVED.has(name.upper)) throw this.unexpected(name, 'a field name after .');
        this.take();
        expr = { type: 'member', object: expr, name: name.text, start: expr.start, end: name.end };
      } else if (this.isPunct(t, '[')) {
        this.take();
        const index = this.parseExpr();
        const close = this.expectPunct(']');
        expr = { type: 'index', object: expr, index, start: expr.start, end: close.end };
      } else {
        return expr;
      }
    }
  }

  private parsePrimary(): Expr {
    const t = this.peek();
    switch (t.kind) {
      case 'number': {
        this.take();
        const value = Number(t.text);
        if (!Number.isFinite(value)) throw this.error('semantic', `number ${t.text} is out of range`, t.start);
        return { type: 'literal', value, start: t.start, end: t.end };
      }
      case 'string':
        this.take();
        return { type: 'literal', value: t.text, start: t.start, end: t.end };
      case 'punct':
        return this.parsePunctPrimary(t);
      case 'ident':
        return this.parseWordPrimary(t);
      case 'eof':
        throw this.unexpected(t, 'an expression');
    }
  }

  private parsePunctPrimary(t: Token): Expr {
    if (t.text === '(') {
      this.take();
      if (this.isWord(this.peek(), 'SELECT')) {
        const query = this.parseQuery(false);
        const close = this.expectPunct(')');
        return { type: 'subquery', query, start: t.start, end: close.end };
      }
      const inner = this.parseExpr();
      this.expectPunct(')');
      return inner;
    }
    if (t.text === '[') {
      this.take();
      const items: Expr[] = [];
      if (!this.isPunct(this.peek(), ']')) {
        do {
          items.push(this.parseExpr());
        } while (this.isPunct(this.peek(), ',') && this.take());
      }
      const close = this.expectPunct(']');
      return { type: 'array', items, start: t.start, end: close.end };
    }
    if (t.text === '{') {
      this.take();
      const entries: [string, Expr][] = [];
      if (!this.isPunct(this.peek(), '}')) {
        do {
          const key = this.peek();
          if (key.kind !== 'string' && key.kind !== 'ident') throw this.unexpected(key, 'an object key');
          this.take();
          this.expectPunct(':');
          entries.push([key.text, this.parseExpr()]);
        } while (this.isPunct(this.peek(), ',') && this.take());
      }
      const close = this.expectPunct('}');
      return { type: 'object', entries, start: t.start, end: close.end };
    }
    if (t.text === '*') {
      throw this.error(
        'syntax',
        "'*' stands for the whole payload only as a SELECT item or a function argument",
        t.start,
      );
    }
    throw this.unexpected(t, 'an expression');
  }

  private parseWordPrimary(t: Token): Expr {
    switch (t.upper) {
      case 'TRUE':
      case 'FALSE':
      case 'NULL': {
        this.take();
        const value: JsonValue = t.upper === 'NULL' ? null : t.upper === 'TRUE';
        return { type: 'literal', value, start: t.start, end: t.end };
      }
      case 'CASE':
        return this.parseCase();
      case 'EXISTS': {
        this.take();
        this.expectPunct('(');
        if (!this.isWord(this.peek(), 'SELECT')) throw this.unexpected(this.peek(), 'SELECT after EXISTS (');
        const query = this.parseQuery(false);
        const close = this.expectPunct(')');
        return { type: 'exists', query, start: t.start, end: close.end };
      }
    }
    if (this.isPunct(this.peek(1), '(')) return this.parseCall();
    if (RESERVED.has(t.upper)) throw this.unexpected(t, 'an expression');
    this.take();
    return { type: 'field', name: t.text, start: t.start, end: t.end };
  }

  private parseCall(): Expr {
    const nameTok = this.take();
    this.take(); // (
    if (nameTok.upper === 'CAST') {
      const value = this.parseExpr();
      this.expectWord('AS');
      const type = this.peek();
      if (type.kind !== 'ident') throw this.unexpected(type, 'a type name after AS');
      this.take();
      const close = this.expectPunct(')');
      return { type: 'cast', value, target: type.upper, targetStart: type.start, start: nameTok.start, end: close.end };
    }
    const args: Expr[] = [];
    if (!this.isPunct(this.peek(), ')')) {
      do {
        const a = this.peek();
        const after = this.peek(1);
        if (this.isPunct(a, '*') && (this.isPunct(after, ',') || this.isPunct(after, ')'))) {
          this.take();
          args.push({ type: 'star', start: a.start, end: a.end });
        } else {
          args.push(this.parseExpr());
        }
      } while (this.isPunct(this.peek(), ',') && this.take());
    }
    const close = this.expectPunct(')');
    return { type: 'call', name: nameTok.text, args, start: nameTok.start, end: close.end };
  }

  private parseCase(): Expr {
    const caseTok = this.take();
    let subject: Expr | undefined;
    if (!this.isWord(this.peek(), 'WHEN')) subject = this.parseExpr();
    const whens: [Expr, Expr][] = [];
    while (this.isWord(this.peek(), 'WHEN')) {
      this.take();
      const test = this.parseExpr();
      this.expectWord('THEN');
      whens.push([test, this.parseExpr()]);
    }
    if (whens.length === 0) throw this.unexpected(this.peek(), 'WHEN');
    let otherwise: Expr | undefined;
    if (this.isWord(this.peek(), 'ELSE')) {
      this.take();
      otherwise = this.parseExpr();
    }
    const end = this.expectWord('END');
    return { type: 'case', subject, whens, otherwise, start: caseTok.start, end: end.end };
  }
}
