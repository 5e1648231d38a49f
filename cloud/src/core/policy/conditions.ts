import { ownValue } from '@pifleet/protocol';
import { type ContextValue, resolveVariables } from './context.js';
import { compileGlob, globMatches } from './wildcard.js';

/**
 * IAM condition operators, as IoT Core evaluates them. A condition block is true when every
 * operator is true; an operator is true when every key under it is true; a key is true when the
 * request's value matches any of the listed values (for negated operators: matches none).
 */

type Comparison = 'string' | 'stringIgnoreCase' | 'like' | 'bool' | 'numeric';
interface OperatorSpec {
  readonly compare: Comparison;
  readonly negated: boolean;
  readonly numeric?: (a: number, b: number) => boolean;
}

const OPERATORS: Readonly<Record<string, OperatorSpec>> = {
  stringequals: { compare: 'string', negated: false },
  stringnotequals: { compare: 'string', negated: true },
  stringequalsignorecase: { compare: 'stringIgnoreCase', negated: false },
  stringnotequalsignorecase: { compare: 'stringIgnoreCase', negated: true },
  stringlike: { compare: 'like', negated: false },
  stringnotlike: { compare: 'like', negated: true },
  arnequals: { compare: 'like', negated: false },
  arnlike: { compare: 'like', negated: false },
  arnnotequals: { compare: 'like', negated: true },
  arnnotlike: { compare: 'like', negated: true },
  bool: { compare: 'bool', negated: false },
  numericequals: { compare: 'numeric', negated: false, numeric: (a, b) => a === b },
  numericnotequals: { compare: 'numeric', negated: true, numeric: (a, b) => a === b },
  numericlessthan: { compare: 'numeric', negated: false, numeric: (a, b) => a < b },
  numericlessthanequals: { compare: 'numeric', negated: false, numeric: (a, b) => a <= b },
  numericgreaterthan: { compare: 'numeric', negated: false, numeric: (a, b) => a > b },
  numericgreaterthanequals: { compare: 'numeric', negated: false, numeric: (a, b) => a >= b },
};

/**
 * The operator named in a policy, as an own key only: `OPERATORS['constructor']` is Object
 * itself, which made an operator named `constructor` a known one that matched nothing (so a Deny
 * using it never applied, where an unknown operator fails closed).
 */
function operatorSpec(name: string): OperatorSpec | undefined {
  return ownValue(OPERATORS, name);
}

interface ParsedOperator {
  readonly set: 'any' | 'all' | undefined;
  readonly ifExists: boolean;
  readonly name: string;
}

function parseOperator(raw: string): ParsedOperator {
  let name = raw.toLowerCase();
  let set: ParsedOperator['set'];
  if (name.startsWith('foranyvalue:')) {
    set = 'any';
    name = name.slice('foranyvalue:'.length);
  } else if (name.startsWith('forallvalues:')) {
    set = 'all';
    name = name.slice('forallvalues:'.length);
  }
  const ifExists = name.endsWith('ifexists');
  if (ifExists) name = name.slice(0, -'ifexists'.length);
  return { set, ifExists, name };
}

/** Operator names this evaluator does not know (a policy using one can be flagged at creation). */
export function unsupportedOperators(condition: Record<string, unknown> | undefined): string[] {
  if (!condition) return [];
  return Object.keys(condition).filter((op) => {
    const { name } = parseOperator(op);
    return name !== 'null' && operatorSpec(name) === undefined;
  });
}

function valueMatches(
  spec: OperatorSpec,
  policyValue: string,
  actual: string,
  values: ReadonlyMap<string, ContextValue>,
): boolean {
  const resolved = resolveVariables(policyValue, values);
  if (resolved === undefined) return false;
  switch (spec.compare) {
    case 'like':
      return globMatches(compileGlob(resolved), actual);
    case 'string':
      return resolved.map((p) => p.text).join('') === actual;
    case 'stringIgnoreCase':
      return (
        resolved
          .map((p) => p.text)
          .join('')
          .toLowerCase() === actual.toLowerCase()
      );
    case 'bool':
      return (
        resolved
          .map((p) => p.text)
          .join('')
          .toLowerCase() === actual.toLowerCase()
      );
    case 'numeric': {
      const a = Number(actual);
      const b = Number(resolved.map((p) => p.text).join(''));
      return Number.isFinite(a) && Number.isFinite(b) && (spec.numeric?.(a, b) ?? false);
    }
  }
}

/**
 * Evaluates one statement's Condition block against the connection's values. Returns
 * undefined when the block uses an operator this evaluator does not know; the caller decides
 * (fail closed: such an Allow grants nothing, such a Deny applies).
 */
export function evaluateCondition(
  condition: Record<string, Record<string, string | string[]>> | undefined,
  values: ReadonlyMap<string, ContextValue>,
): boolean | undefined {
  if (!condition) return true;
  for (const [rawOperator, keys] of Object.entries(condition)) {
    const op = parseOperator(rawOperator);
    for (const [key, listed] of Object.entries(keys)) {
      const policyValues = Array.isArray(listed) ? listed : [listed];
      const actual = values.get(key.toLowerCase());
      if (op.name === 'null') {
        const wantMissing = policyValues.some((v) => v.toLowerCase() === 'true');
        const missing = actual === undefined || (Array.isArray(actual) && actual.length === 0);
        if (wantMissing !== missing) return false;
        continue;
      }
      const spec = operatorSpec(op.name);
      if (!spec) return undefined;
      if (!keyMatches(spec, op, policyValues, actual, values)) return false;
    }
  }
  return true;
}

function keyMatches(
  spec: OperatorSpec,
  op: ParsedOperator,
  policyValues: readonly string[],
  actual: ContextValue,
  values: ReadonlyMap<string, ContextValue>,
): boolean {
  const anyListed = (v: string) => policyValues.some((p) => valueMatches(spec, p, v, values));
  const single = (v: string) => (spec.negated ? !anyListed(v) : anyListed(v));
  if (actual === undefined) return op.ifExists || spec.negated || op.set === 'all';
  const actualValues: readonly string[] = typeof actual === 'string' ? [actual] : actual;
  if (op.set === 'all') return actualValues.every(single);
  if (actualValues.length === 0) return op.set === 'any' ? false : op.ifExists || spec.negated;
  if (op.set === 'any' || typeof actual !== 'string') return actualValues.some(single);
  return single(actual);
}
