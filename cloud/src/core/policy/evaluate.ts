import type { IotPolicyDocument, IotPolicyStatement } from '@pifleet/protocol';
import { evaluateCondition, unsupportedOperators } from './conditions.js';
import { contextValues, IOT_ACTIONS, type IotAction, type PolicyContext, resolveVariables } from './context.js';
import { compileGlob, type Glob, globMatches, wildcardMatches } from './wildcard.js';

/** A policy with the name it is attached under (names appear in decisions, for logs). */
export interface NamedPolicy {
  readonly name: string;
  readonly document: IotPolicyDocument;
}

/** The outcome of one authorization question. */
export type PolicyDecision =
  | { readonly allowed: true; readonly reason: 'allow'; readonly policy: string; readonly sid: string | undefined }
  | {
      readonly allowed: false;
      readonly reason: 'explicit-deny';
      readonly policy: string;
      readonly sid: string | undefined;
    }
  | { readonly allowed: false; readonly reason: 'implicit-deny' };

/** Answers "may this connection do ACTION on RESOURCE?" for one connection's policies. */
export interface PolicyAuthorizer {
  authorize(action: IotAction, resourceArn: string): PolicyDecision;
}

/** Statements may also carry IAM's negated forms; the protocol type leaves them out. */
interface CompiledStatement {
  readonly policy: string;
  readonly sid: string | undefined;
  /** Resources named without wildcards (after variables resolved). */
  readonly exact: ReadonlySet<string>;
  /** Resource patterns with wildcards. */
  readonly globs: readonly Glob[];
  /** NotResource: the statement covers resources that this does NOT match. */
  readonly negated: boolean;
}

const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function statementCoversAction(s: IotPolicyStatement, action: IotAction): boolean {
  if (s.NotAction !== undefined) return !list(s.NotAction).some((p) => wildcardMatches(p, action, true));
  return list(s.Action).some((p) => wildcardMatches(p, action, true));
}

/**
 * Compiles a connection's policies against its context. Variables and conditions depend only on
 * the connection, so they are resolved here once; each `authorize` call is then a set lookup
 * and a few wildcard matches. Pure: no I/O, no clock.
 *
 * Semantics (IAM, as IoT Core applies them): an explicit Deny in any policy wins; otherwise an
 * Allow in any policy allows; otherwise the request is implicitly denied. `*` and `?` are
 * wildcards in Action (case-insensitive) and Resource (case-sensitive); MQTT `+`/`#` are
 * literal. A resource whose policy variable does not resolve matches nothing. A statement
 * with a condition operator this evaluator does not know grants nothing if it allows and
 * applies if it denies (fail closed).
 */
export function compilePolicies(policies: readonly NamedPolicy[], ctx: PolicyContext): PolicyAuthorizer {
  const values = contextValues(ctx);
  const byAction = new Map<IotAction, { deny: CompiledStatement[]; allow: CompiledStatement[] }>();
  for (const action of IOT_ACTIONS) byAction.set(action, { deny: [], allow: [] });

  for (const policy of policies) {
    for (const s of policy.document.Statement) {
      const deny = s.Effect === 'Deny';
      if (!deny && s.Effect !== 'Allow') continue;
      const conditionHolds = evaluateCondition(s.Condition, values);
      if (conditionHolds === false || (conditionHolds === undefined && !deny)) continue;
      const negated = s.NotResource !== undefined;
      const exact = new Set<string>();
      const globs: Glob[] = [];
      for (const resource of list(negated ? s.NotResource : s.Resource)) {
        const parts = resolveVariables(resource, values);
        if (parts === undefined) continue;
        const glob = compileGlob(parts);
        if (glob.exact !== undefined) exact.add(glob.exact);
        else globs.push(glob);
      }
      // A NotResource whose every entry failed to resolve excludes nothing, so it covers all.
      const compiled: CompiledStatement = { policy: policy.name, sid: s.Sid, exact, globs, negated };
      for (const action of IOT_ACTIONS) {
        if (!statementCoversAction(s, action)) continue;
        const bucket = byAction.get(action);
        if (bucket) (deny ? bucket.deny : bucket.allow).push(compiled);
      }
    }
  }

  const covers = (st: CompiledStatement, resource: string) => {
    const hit = st.exact.has(resource) || st.globs.some((g) => globMatches(g, resource));
    return st.negated ? !hit : hit;
  };

  return {
    authorize(action, resourceArn) {
      const bucket = byAction.get(action);
      if (!bucket) return { allowed: false, reason: 'implicit-deny' };
      for (const st of bucket.deny) {
        if (covers(st, resourceArn)) return { allowed: false, reason: 'explicit-deny', policy: st.policy, sid: st.sid };
      }
      for (const st of bucket.allow) {
        if (covers(st, resourceArn)) return { allowed: true, reason: 'allow', policy: st.policy, sid: st.sid };
      }
      return { allowed: false, reason: 'implicit-deny' };
    },
  };
}

/** One-shot evaluation (compiles, then asks once). Prefer {@link compilePolicies} per connection. */
export function evaluatePolicies(
  policies: readonly NamedPolicy[],
  ctx: PolicyContext,
  action: IotAction,
  resourceArn: string,
): PolicyDecision {
  return compilePolicies(policies, ctx).authorize(action, resourceArn);
}

/**
 * Problems this evaluator would have with a document: wrong version, missing parts, unknown
 * effects or condition operators. An empty list means it is evaluated exactly as written.
 */
export function policyProblems(document: unknown): string[] {
  const problems: string[] = [];
  if (!document || typeof document !== 'object') return ['policy document must be a JSON object'];
  const doc = document as { Version?: unknown; Statement?: unknown };
  if (doc.Version !== '2012-10-17') problems.push('Version must be "2012-10-17"');
  const statements = Array.isArray(doc.Statement) ? doc.Statement : doc.Statement ? [doc.Statement] : [];
  if (statements.length === 0) problems.push('Statement must be a non-empty array');
  statements.forEach((raw: unknown, i) => {
    const s = (raw ?? {}) as Partial<IotPolicyStatement>;
    const at = `Statement[${i}]`;
    if (s.Effect !== 'Allow' && s.Effect !== 'Deny') problems.push(`${at}.Effect must be Allow or Deny`);
    if (s.Action === undefined && s.NotAction === undefined) problems.push(`${at} needs Action or NotAction`);
    if (s.Resource === undefined && s.NotResource === undefined) problems.push(`${at} needs Resource or NotResource`);
    for (const op of unsupportedOperators(s.Condition))
      problems.push(`${at}.Condition operator ${op} is not supported`);
  });
  return problems;
}
