import type { JsonValue } from '@pifleet/protocol';
import type { BinaryOp, Expr, Query, SelectItem } from './ast.js';
import { IotSqlError, positionAt } from './errors.js';
import {
  CAST_TARGETS,
  encodeBase64,
  encodeBytes,
  FUNCTIONS,
  type FunctionEnv,
  getItem,
  MISNAMED_FUNCTIONS,
  UNSUPPORTED_FUNCTIONS,
} from './functions.js';
import type { EvalContext, PreparedMessage } from './message.js';
import {
  deepEqual,
  isObject,
  ownField,
  type SqlObject,
  type SqlValue,
  setField,
  sqlAdd,
  sqlArith,
  sqlCompare,
  sqlEquals,
  toBoolean,
  toNumber,
} from './values.js';

/** Name resolution: the payload at the top; inside a nested SELECT, the current element (and its alias). */
export interface Scope {
  readonly value: SqlValue;
  readonly alias: string | undefined;
  readonly parent: Scope | undefined;
}

/** Per-evaluation state: the message, the injected context, and timestamp() fixed once per message. */
export class Env implements FunctionEnv {
  private ts: number | undefined;
  private tsKnown = false;
  constructor(
    readonly msg: PreparedMessage,
    readonly ctx: EvalContext,
  ) {}
  timestamp(): number | undefined {
    if (!this.tsKnown) {
      this.ts = this.msg.timestamp ?? this.ctx.now?.();
      this.tsKnown = true;
    }
    return this.ts;
  }
}

export type Fn = (env: Env, scope: Scope) => SqlValue;
/** What a SELECT produces: a JSON value, the raw payload bytes (`SELECT *` of a non-JSON payload), or Undefined. */
export type SelectOutput = JsonValue | Uint8Array | undefined;
export type SelectFn = (env: Env, scope: Scope) => SelectOutput;

export function rootScope(msg: PreparedMessage): Scope {
  return { value: msg.body.json ? msg.body.value : undefined, alias: undefined, parent: undefined };
}

function lookup(scope: Scope, name: string): SqlValue {
  for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
    if (s.alias === name) return s.value;
    const v = s.value;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const found = ownField(v, name);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

function copyFields(from: SqlObject, to: SqlObject): void {
  for (const k in from) {
    if (Object.hasOwn(from, k)) setField(to, k, from[k] as JsonValue);
  }
}

/** Turns the syntax tree into closures, checking functions, arities and cast types on the way. */
export class Compiler {
  constructor(private readonly src: string) {}

  private semantic(reason: string, offset: number): IotSqlError {
    return new IotSqlError('semantic', reason, positionAt(this.src, offset), this.src);
  }

  /** WHERE (or Undefined) and SELECT of a query evaluated against one scope. */
  compileQuery(q: Query): { where: Fn | undefined; select: SelectFn } {
    return { where: q.where ? this.expr(q.where) : undefined, select: this.select(q) };
  }

  private select(q: Query): SelectFn {
    if (q.value) {
      const item = q.items[0] as SelectItem;
      if (item.kind === 'star') throw this.semantic('SELECT VALUE * is not supported', item.start);
      return this.expr(item.expr);
    }
    if (q.items.length === 1 && q.items[0]?.kind === 'star') {
      return (env, scope) => {
        if (scope.parent === undefined && !env.msg.body.json) return env.msg.bytes;
        const v = scope.value;
        if (isObject(v)) {
          const out: SqlObject = {};
          copyFields(v, out);
          return out;
        }
        return v;
      };
    }
    type Writer = (env: Env, scope: Scope, out: SqlObject) => void;
    const writers: Writer[] = q.items.map((item, i): Writer => {
      if (item.kind === 'star') {
        return (_env, scope, out) => {
          const v = scope.value;
          if (isObject(v)) copyFields(v, out);
        };
      }
      const fn = this.expr(item.expr);
      const path = item.alias ?? [outputName(item.expr, i)];
      if (path.length === 1) {
        const key = path[0] as string;
        return (env, scope, out) => {
          const v = fn(env, scope);
          if (v !== undefined) setField(out, key, v);
        };
      }
      return (env, scope, out) => {
        const v = fn(env, scope);
        if (v === undefined) return;
        let target = out;
        for (let k = 0; k < path.length - 1; k++) {
          const key = path[k] as string;
          const next = ownField(target, key);
          if (isObject(next)) target = next;
          else {
            const created: SqlObject = {};
            setField(target, key, created);
            target = created;
          }
        }
        setField(target, path[path.length - 1] as string, v);
      };
    });
    return (env, scope) => {
      const out: SqlObject = {};
      for (const w of writers) w(env, scope, out);
      return out;
    };
  }

  expr(e: Expr): Fn {
    switch (e.type) {
      case 'literal': {
        const v = e.value;
        return () => v;
      }
      case 'field': {
        const name = e.name;
        return (_env, scope) => {
          if (scope.parent === undefined) {
            const v = scope.value;
            return typeof v === 'object' && v !== null && !Array.isArray(v) ? ownField(v, name) : undefined;
          }
          return lookup(scope, name);
        };
      }
      case 'member': {
        const obj = this.expr(e.object);
        const name = e.name;
        return (env, scope) => {
          const v = obj(env, scope);
          return typeof v === 'object' && v !== null && !Array.isArray(v) ? ownField(v, name) : undefined;
        };
      }
      case 'index': {
        const obj = this.expr(e.object);
        const idx = this.expr(e.index);
        return (env, scope) => getItem(obj(env, scope), idx(env, scope));
      }
      case 'star':
        return (_env, scope) => scope.value;
      case 'call':
        return this.call(e);
      case 'cast': {
        const convert = CAST_TARGETS.get(e.target);
        if (!convert) {
          throw this.semantic(
            `unknown type ${e.target} in cast; use String, Int, Integer, Decimal, Double, Bool or Boolean`,
            e.targetStart,
          );
        }
        const value = this.expr(e.value);
        return (env, scope) => convert(value(env, scope));
      }
      case 'unary':
        return this.unary(e.op, this.expr(e.operand));
      case 'binary':
        return this.binary(e.op, this.expr(e.left), this.expr(e.right));
      case 'in': {
        const left = this.expr(e.left);
        const right = this.expr(e.right);
        return (env, scope) => {
          const l = left(env, scope);
          const r = right(env, scope);
          if (l === undefined || !Array.isArray(r)) return undefined;
          for (const item of r) if (deepEqual(l, item)) return true;
          return false;
        };
      }
      case 'array': {
        const items = e.items.map((i) => this.expr(i));
        return (env, scope) => {
          const out: JsonValue[] = [];
          for (const f of items) {
            const v = f(env, scope);
            if (v !== undefined) out.push(v);
          }
          return out;
        };
      }
      case 'object': {
        const entries = e.entries.map(([k, v]) => [k, this.expr(v)] as const);
        return (env, scope) => {
          const out: SqlObject = {};
          for (const [k, f] of entries) {
            const v = f(env, scope);
            if (v !== undefined) setField(out, k, v);
          }
          return out;
        };
      }
      case 'case': {
        const whens = e.whens.map(([t, r]) => [this.expr(t), this.expr(r)] as const);
        const otherwise = e.otherwise ? this.expr(e.otherwise) : undefined;
        if (e.subject) {
          const subject = this.expr(e.subject);
          return (env, scope) => {
            const v = subject(env, scope);
            if (v === undefined) return undefined;
            for (const [t, r] of whens) if (sqlEquals(v, t(env, scope)) === true) return r(env, scope);
            return otherwise ? otherwise(env, scope) : undefined;
          };
        }
        return (env, scope) => {
          for (const [t, r] of whens) if (toBoolean(t(env, scope)) === true) return r(env, scope);
          return otherwise ? otherwise(env, scope) : undefined;
        };
      }
      case 'subquery':
        return this.nested(e.query);
      case 'exists':
        return this.exists(e.query);
    }
  }

  /**
   * `(SELECT … FROM expr [alias] [WHERE …])`: one result per element of the array, in order. FROM
   * an object reads that one object and gives its one result unwrapped (Undefined when WHERE is
   * not true): the reference's third transform() example, `transform('enrichArray', (select a, b
   * from data2), (select value c from data2))` on an object `data2`, only gives its documented
   * output that way.
   */
  private nested(q: Query): Fn {
    if (q.from.kind !== 'expr') throw this.semantic('a nested SELECT reads from an expression', q.from.start);
    const from = this.expr(q.from.expr);
    const alias = q.from.alias;
    const { where, select } = this.compileQuery(q);
    return (env, scope) => {
      const source = from(env, scope);
      if (isObject(source)) {
        const inner: Scope = { value: source, alias, parent: scope };
        if (where && toBoolean(where(env, inner)) !== true) return undefined;
        const v = select(env, inner);
        return v instanceof Uint8Array ? undefined : v;
      }
      if (!Array.isArray(source)) return undefined;
      const out: JsonValue[] = [];
      for (const element of source) {
        const inner: Scope = { value: element, alias, parent: scope };
        if (where && toBoolean(where(env, inner)) !== true) continue;
        const v = select(env, inner);
        if (v !== undefined && !(v instanceof Uint8Array)) out.push(v);
      }
      return out;
    };
  }

  /** `EXISTS (SELECT …)`: true at the first element that passes WHERE and selects something. */
  private exists(q: Query): Fn {
    if (q.from.kind !== 'expr') throw this.semantic('a nested SELECT reads from an expression', q.from.start);
    const from = this.expr(q.from.expr);
    const alias = q.from.alias;
    const { where, select } = this.compileQuery(q);
    const selectsAnything = !q.value; // an object row exists even when all its keys are Undefined
    return (env, scope) => {
      const source = from(env, scope);
      if (!Array.isArray(source)) return false;
      for (const element of source) {
        const inner: Scope = { value: element, alias, parent: scope };
        if (where && toBoolean(where(env, inner)) !== true) continue;
        if (selectsAnything || select(env, inner) !== undefined) return true;
      }
      return false;
    };
  }

  private unary(op: '-' | '+' | 'NOT', operand: Fn): Fn {
    switch (op) {
      case '-':
        return (env, scope) => {
          const n = toNumber(operand(env, scope));
          return n === undefined ? undefined : n === 0 ? 0 : -n;
        };
      case '+':
        return (env, scope) => toNumber(operand(env, scope));
      case 'NOT':
        return (env, scope) => {
          const b = toBoolean(operand(env, scope));
          return b === undefined ? undefined : !b;
        };
    }
  }

  private binary(op: BinaryOp, l: Fn, r: Fn): Fn {
    switch (op) {
      case 'AND':
        return (env, scope) => {
          const a = toBoolean(l(env, scope));
          const b = toBoolean(r(env, scope));
          return a === undefined || b === undefined ? undefined : a && b;
        };
      case 'OR':
        return (env, scope) => {
          const a = toBoolean(l(env, scope));
          const b = toBoolean(r(env, scope));
          return a === undefined || b === undefined ? undefined : a || b;
        };
      case '=':
        return (env, scope) => sqlEquals(l(env, scope), r(env, scope));
      case '<>':
        return (env, scope) => {
          const eq = sqlEquals(l(env, scope), r(env, scope));
          return eq === undefined ? undefined : !eq;
        };
      case '<':
        return (env, scope) => {
          const c = sqlCompare(l(env, scope), r(env, scope));
          return c === undefined ? undefined : c < 0;
        };
      case '<=':
        return (env, scope) => {
          const c = sqlCompare(l(env, scope), r(env, scope));
          return c === undefined ? undefined : c <= 0;
        };
      case '>':
        return (env, scope) => {
          const c = sqlCompare(l(env, scope), r(env, scope));
          return c === undefined ? undefined : c > 0;
        };
      case '>=':
        return (env, scope) => {
          const c = sqlCompare(l(env, scope), r(env, scope));
          return c === undefined ? undefined : c >= 0;
        };
      case '+':
        return (env, scope) => sqlAdd(l(env, scope), r(env, scope));
      case '-':
      case '*':
      case '/':
      case '%':
        return (env, scope) => sqlArith(op, l(env, scope), r(env, scope));
    }
  }

  private call(e: Expr & { type: 'call' }): Fn {
    const name = e.name.toLowerCase();
    if (UNSUPPORTED_FUNCTIONS.has(name)) {
      throw this.semantic(`function ${e.name}() is not supported by the pifleet rules engine`, e.start);
    }
    const def = FUNCTIONS.get(name);
    if (!def) {
      const meant = MISNAMED_FUNCTIONS.get(name);
      throw this.semantic(
        meant === undefined ? `unknown function ${e.name}()` : `unknown function ${e.name}(); did you mean ${meant}()?`,
        e.start,
      );
    }
    const n = e.args.length;
    if (n < def.min || n > def.max) {
      const expected =
        def.min === def.max
          ? `${def.min}`
          : def.max === Number.POSITIVE_INFINITY
            ? `at least ${def.min}`
            : `${def.min} to ${def.max}`;
      throw this.semantic(`${e.name}() takes ${expected} argument${expected === '1' ? '' : 's'}, got ${n}`, e.start);
    }
    const problem = def.check?.(e.args);
    if (problem !== undefined) throw this.semantic(problem, e.args[0]?.start ?? e.start);
    if (name === 'encode' && e.args[0]?.type === 'star') {
      const scheme = this.expr(e.args[1] as Expr);
      return (env, scope) =>
        scope.parent === undefined
          ? encodeBytes(env.msg.bytes, scheme(env, scope))
          : encodeBase64(scope.value, scheme(env, scope));
    }
    const impl = def.impl;
    const args = e.args.map((a) => this.expr(a));
    switch (args.length) {
      case 0:
        return (env) => impl([], env);
      case 1: {
        const [a] = args as [Fn];
        return (env, scope) => impl([a(env, scope)], env);
      }
      case 2: {
        const [a, b] = args as [Fn, Fn];
        return (env, scope) => impl([a(env, scope), b(env, scope)], env);
      }
      default:
        return (env, scope) =>
          impl(
            args.map((f) => f(env, scope)),
            env,
          );
    }
  }
}

/** The output key of an unaliased SELECT item: a path's last name, a function's name, else `_N`. */
function outputName(e: Expr, index: number): string {
  switch (e.type) {
    case 'field':
    case 'member':
      return e.name;
    case 'call':
      return e.name.toLowerCase();
    default:
      return `_${index + 1}`;
  }
}
