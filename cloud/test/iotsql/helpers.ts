import type { JsonValue } from '@pifleet/protocol';
import { compileRule, type EvalContext, IotSqlError, type RuleOutput } from '../../src/core/iotsql/index.js';

/** Ignores IoT SQL's Undefined vs a missing key only where the caller says so. */
export const TOPIC = 'pifleet/pi-01/telemetry';

/** Evaluates `SELECT VALUE <expr>` against a JSON payload; `undefined` stands for Undefined. */
export function value(expr: string, payload: JsonValue = {}, ctx?: EvalContext): RuleOutput {
  const rule = compileRule(`SELECT VALUE ${expr} FROM '${TOPIC}'`);
  const result = rule.evaluate({ topic: TOPIC, payload: JSON.stringify(payload), clientId: 'pi-01' }, ctx);
  if (!result.matched) throw new Error('rule did not match');
  return result.output;
}

/** Whether `WHERE <cond>` lets the message through. */
export function where(cond: string, payload: JsonValue = {}): boolean {
  const rule = compileRule(`SELECT * FROM '${TOPIC}' WHERE ${cond}`);
  return rule.evaluate({ topic: TOPIC, payload: JSON.stringify(payload) }).matched;
}

/** Runs a whole statement on a topic and payload; returns the output or 'no match'. */
export function run(
  sql: string,
  topic: string,
  payload: JsonValue | string | Uint8Array,
  extra: { clientId?: string; principal?: string; timestamp?: number; traceId?: string } = {},
  ctx?: EvalContext,
): RuleOutput | 'no match' {
  const body = typeof payload === 'string' || payload instanceof Uint8Array ? payload : JSON.stringify(payload);
  const result = compileRule(sql).evaluate({ topic, payload: body, ...extra }, ctx);
  return result.matched ? result.output : 'no match';
}

/** The IotSqlError compiling `sql` throws; fails the test when it compiles or throws something else. */
export function compileError(sql: string): IotSqlError {
  try {
    compileRule(sql);
  } catch (err) {
    if (err instanceof IotSqlError) return err;
    throw err;
  }
  throw new Error(`compiled without error: ${sql}`);
}
