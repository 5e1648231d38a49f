import { Compiler, Env, type Fn, rootScope } from './compile.js';
import { IotSqlError, positionAt } from './errors.js';
import type { EvalContext, IotMessage, PreparedMessage } from './message.js';
import { prepareMessage } from './message.js';
import { Parser } from './parser.js';
import { numberToString, type SqlValue } from './values.js';

/** An action parameter with `${expression}` substitutions, compiled once. */
export interface CompiledTemplate {
  readonly template: string;
  /** True when the template has at least one `${…}`. */
  readonly dynamic: boolean;
  /**
   * Evaluates every expression against the message (its payload, topic(), clientid(), …) and
   * joins the parts. Undefined renders as the empty string, Null as `null`, arrays/objects as JSON.
   */
  render(message: IotMessage | PreparedMessage, ctx?: EvalContext): string;
}

/** Renders one substituted value the way AWS serializes a value on its own. */
export function formatTemplateValue(v: SqlValue): string {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
      return numberToString(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'undefined':
      return '';
    default:
      return JSON.stringify(v);
  }
}

/**
 * Compiles a substitution template such as `pifleet/${topic(2)}/alerts`. Any IoT SQL expression
 * may appear inside `${…}` (no SELECT aliases: they are evaluated against the original payload).
 * Throws {@link IotSqlError} with line and column for a malformed expression or an unclosed `${`.
 */
export function compileTemplate(template: string): CompiledTemplate {
  const parts: (string | Fn)[] = [];
  const compiler = new Compiler(template);
  let literal = '';
  let i = 0;
  while (i < template.length) {
    if (template.charCodeAt(i) === 36 && template.charCodeAt(i + 1) === 123) {
      const parser = new Parser(template, i + 2);
      if (parser.peek().kind === 'punct' && parser.peek().text === '}') {
        throw new IotSqlError('syntax', 'empty substitution ${}', positionAt(template, i), template);
      }
      if (parser.peek().kind === 'eof') {
        throw new IotSqlError('syntax', 'unterminated substitution: missing }', positionAt(template, i), template);
      }
      const expr = parser.parseStandaloneExpr();
      const close = parser.peek();
      if (close.kind !== 'punct' || close.text !== '}') {
        const reason =
          close.kind === 'eof'
            ? 'unterminated substitution: missing }'
            : `unexpected '${close.text}' in substitution, expected '}'`;
        throw new IotSqlError('syntax', reason, positionAt(template, close.kind === 'eof' ? i : close.start), template);
      }
      if (literal) parts.push(literal);
      literal = '';
      parts.push(compiler.expr(expr));
      i = close.end;
    } else {
      literal += template[i];
      i++;
    }
  }
  if (literal || parts.length === 0) parts.push(literal);
  const dynamic = parts.some((p) => typeof p !== 'string');
  return {
    template,
    dynamic,
    render(message, ctx = {}) {
      if (!dynamic) return parts[0] as string;
      const msg = prepareMessage(message);
      const env = new Env(msg, ctx);
      const scope = rootScope(msg);
      let out = '';
      for (const p of parts) out += typeof p === 'string' ? p : formatTemplateValue(p(env, scope));
      return out;
    },
  };
}

/** One-shot {@link compileTemplate} + render. */
export function renderTemplate(template: string, message: IotMessage | PreparedMessage, ctx?: EvalContext): string {
  return compileTemplate(template).render(message, ctx);
}
