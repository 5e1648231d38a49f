import type { JsonValue } from '@pifleet/protocol';
import type { Query } from './ast.js';
import { Compiler, Env, rootScope, type SelectOutput } from './compile.js';
import type { EvalContext, IotMessage, PreparedMessage } from './message.js';
import { prepareMessage } from './message.js';
import { Parser } from './parser.js';
import { toBoolean } from './values.js';

/** The only SQL version this engine implements. */
export const IOT_SQL_VERSION = '2016-03-23';

/**
 * A rule's output: a JSON value (an object unless SELECT VALUE), the raw payload bytes for `SELECT *`
 * of a payload that is not JSON, or `undefined` when SELECT VALUE produced Undefined (AWS serializes
 * that as an empty payload). Outputs share nested values with the prepared message: treat as read-only.
 */
export type RuleOutput = JsonValue | Uint8Array | undefined;

export type RuleResult = { readonly matched: false } | { readonly matched: true; readonly output: RuleOutput };

export interface CompiledRule {
  readonly sql: string;
  /** The FROM topic filter. */
  readonly topicFilter: string;
  readonly ast: Query;
  matchesTopic(topic: string): boolean;
  /**
   * Runs the rule on one message: `matched: false` when the topic is outside FROM or WHERE is not
   * true (false, Undefined, or not a Boolean). Never throws for a message's content.
   */
  evaluate(message: IotMessage | PreparedMessage, ctx?: EvalContext): RuleResult;
}

const NO_MATCH: RuleResult = Object.freeze({ matched: false });
const NO_CONTEXT: EvalContext = Object.freeze({});

/** How `#` treats the level it follows. */
export interface TopicFilterOptions {
  /**
   * MQTT (3.1.1 §4.7.1.2) lets `a/#` match `a` itself; a rule's FROM does not (AWS IoT: `FROM 'a/#'`
   * is not triggered by a message on `a`). Default true, the MQTT reading.
   */
  readonly hashMatchesParent?: boolean;
}

/** An MQTT topic filter as a function, honouring `+`, `#` and the `$`-topic rule of MQTT 3.1.1 §4.7.2. */
export function compileTopicFilter(filter: string, options: TopicFilterOptions = {}): (topic: string) => boolean {
  if (!filter.includes('+') && !filter.includes('#')) return (topic) => topic === filter;
  const levels = filter.split('/');
  const wildFirst = levels[0] === '+' || levels[0] === '#';
  const parentToo = options.hashMatchesParent ?? true;
  return (topic) => {
    if (wildFirst && topic.charCodeAt(0) === 36) return false;
    let pos = 0;
    for (const level of levels) {
      // pos past the end means the topic ran out of levels before `#`: it is the parent.
      if (level === '#') return parentToo || pos <= topic.length;
      if (pos > topic.length) return false;
      let end = topic.indexOf('/', pos);
      if (end < 0) end = topic.length;
      if (level !== '+' && (end - pos !== level.length || !topic.startsWith(level, pos))) return false;
      pos = end + 1;
    }
    return pos === topic.length + 1;
  };
}

/**
 * Compiles `SELECT … FROM 'filter' [WHERE …]` (AWS IoT SQL 2016-03-23). Throws {@link IotSqlError}
 * with line and column for lexical, syntax and semantic errors (unknown function, wrong arity,
 * bad cast type, bad topic filter).
 */
export function compileRule(sql: string): CompiledRule {
  const ast = new Parser(sql).parseStatement();
  if (ast.from.kind !== 'topic') throw new Error('unreachable: top-level FROM is a topic filter');
  const topicFilter = ast.from.filter;
  const { where, select } = new Compiler(sql).compileQuery(ast);
  // The rules engine's `#` does not match the parent level (see TopicFilterOptions).
  const matchesTopic = compileTopicFilter(topicFilter, { hashMatchesParent: false });
  return {
    sql,
    topicFilter,
    ast,
    matchesTopic,
    evaluate(message, ctx = NO_CONTEXT) {
      if (!matchesTopic(message.topic)) return NO_MATCH;
      const msg = prepareMessage(message);
      const env = new Env(msg, ctx);
      const scope = rootScope(msg);
      if (where !== undefined && toBoolean(where(env, scope)) !== true) return NO_MATCH;
      const output: SelectOutput = select(env, scope);
      return { matched: true, output };
    },
  };
}

/**
 * The bytes an action sends for a rule output: JSON for values, the raw bytes for a binary
 * payload, and an empty payload for Undefined.
 */
export function serializeOutput(output: RuleOutput): Uint8Array {
  if (output instanceof Uint8Array) return output;
  if (output === undefined) return new Uint8Array(0);
  return Buffer.from(JSON.stringify(output), 'utf8');
}
