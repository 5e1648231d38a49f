import type { IotPolicyDocument, IotPolicyStatement } from '@pifleet/protocol';
import { compileCondition, conditionProblems, unsupportedOperators, variableProblems } from './conditions.js';
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
  /**
   * false when a statement depends on the time of the request (aws:CurrentTime, aws:EpochTime):
   * then a decision holds for that moment only, and a caller must not keep it for later requests.
   */
  readonly cacheable: boolean;
}

export interface CompileOptions {
  /** The clock the time keys read, in milliseconds since the epoch (the broker passes its own). */
  readonly now?: () => number;
}

interface CompiledStatement {
  readonly policy: string;
  readonly sid: string | undefined;
  /** Resources named without wildcards (after variables resolved). */
  readonly exact: ReadonlySet<string>;
  /** Resource patterns with wildcards. */
  readonly globs: readonly Glob[];
  /** NotResource: the statement covers resources that this does NOT match. */
  readonly negated: boolean;
  /** The part of its condition that depends on the request time; the rest held when compiled. */
  readonly when: ((now: number) => boolean) | undefined;
}

const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function statementCoversAction(s: IotPolicyStatement, action: IotAction): boolean {
  if (s.NotAction !== undefined) return !list(s.NotAction).some((p) => wildcardMatches(p, action, true));
  return list(s.Action).some((p) => wildcardMatches(p, action, true));
}

/**
 * Compiles a connection's policies against its context. Variables and conditions depend only on
 * the connection, so they are resolved here once; each `authorize` call is then a set lookup
 * and a few wildcard matches, plus the time conditions of the statements that have them. Pure:
 * no I/O; the time comes from `options.now`.
 *
 * Semantics (IAM, as IoT Core applies them): an explicit Deny in any policy wins; otherwise an
 * Allow in any policy allows; otherwise the request is implicitly denied. `*` and `?` are
 * wildcards in Action (case-insensitive) and Resource (case-sensitive); MQTT `+`/`#` are
 * literal. `NotAction` covers every action but those listed, `NotResource` every resource but
 * those listed. A resource whose policy variable does not resolve matches nothing. A statement
 * with a condition operator this evaluator does not know grants nothing if it allows and
 * applies if it denies (fail closed); so does a NotResource entry whose variable does not
 * resolve (an Allow would otherwise grant everything, a Deny exempt nothing).
 */
export function compilePolicies(
  policies: readonly NamedPolicy[],
  ctx: PolicyContext,
  options: CompileOptions = {},
): PolicyAuthorizer {
  const now = options.now ?? Date.now;
  const values = contextValues(ctx);
  const byAction = new Map<IotAction, { deny: CompiledStatement[]; allow: CompiledStatement[] }>();
  for (const action of IOT_ACTIONS) byAction.set(action, { deny: [], allow: [] });
  let cacheable = true;

  for (const policy of policies) {
    for (const s of policy.document.Statement) {
      const deny = s.Effect === 'Deny';
      if (!deny && s.Effect !== 'Allow') continue;
      const condition = compileCondition(s.Condition, values);
      if (condition === false || (condition === undefined && !deny)) continue;
      const negated = s.NotResource !== undefined;
      const exact = new Set<string>();
      const globs: Glob[] = [];
      let unresolved = false;
      for (const resource of list(negated ? s.NotResource : s.Resource)) {
        const parts = resolveVariables(resource, values);
        if (parts === undefined) {
          unresolved = true;
          continue;
        }
        const glob = compileGlob(parts);
        if (glob.exact !== undefined) exact.add(glob.exact);
        else globs.push(glob);
      }
      if (negated && unresolved && !deny) continue;
      const when = typeof condition === 'function' ? condition : undefined;
      if (when) cacheable = false;
      const compiled: CompiledStatement = { policy: policy.name, sid: s.Sid, exact, globs, negated, when };
      for (const action of IOT_ACTIONS) {
        if (!statementCoversAction(s, action)) continue;
        const bucket = byAction.get(action);
        if (bucket) (deny ? bucket.deny : bucket.allow).push(compiled);
      }
    }
  }

  const covers = (st: CompiledStatement, resource: string, at: () => number) => {
    const hit = st.exact.has(resource) || st.globs.some((g) => globMatches(g, resource));
    if (st.negated ? hit : !hit) return false;
    return st.when === undefined || st.when(at());
  };

  return {
    cacheable,
    authorize(action, resourceArn) {
      const bucket = byAction.get(action);
      if (!bucket) return { allowed: false, reason: 'implicit-deny' };
      // One reading of the clock per question, so every statement sees the same moment.
      let moment: number | undefined;
      const at = () => {
        moment ??= now();
        return moment;
      };
      for (const st of bucket.deny) {
        if (covers(st, resourceArn, at)) {
          return { allowed: false, reason: 'explicit-deny', policy: st.policy, sid: st.sid };
        }
      }
      for (const st of bucket.allow) {
        if (covers(st, resourceArn, at)) return { allowed: true, reason: 'allow', policy: st.policy, sid: st.sid };
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
  options: CompileOptions = {},
): PolicyDecision {
  return compilePolicies(policies, ctx, options).authorize(action, resourceArn);
}

/** A problem with one statement of a policy document. */
export interface StatementProblem {
  readonly statement: number;
  readonly message: string;
}

/**
 * What in a parsed document the local IoT Core would not evaluate as AWS IoT Core does (see
 * {@link conditionProblems}, {@link variableProblems}): the registry refuses such a document at
 * CreatePolicy. Empty: evaluated exactly as written.
 */
export function documentProblems(document: IotPolicyDocument): StatementProblem[] {
  const problems: StatementProblem[] = [];
  document.Statement.forEach((s, statement) => {
    for (const resource of list(s.Resource ?? s.NotResource)) {
      for (const message of variableProblems(resource)) {
        problems.push({ statement, message: `${s.Resource ? 'Resource' : 'NotResource'} ${resource}: ${message}` });
      }
    }
    for (const message of conditionProblems(s.Condition)) problems.push({ statement, message });
  });
  return problems;
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
    if ((s.Action === undefined) === (s.NotAction === undefined)) problems.push(`${at} needs Action or NotAction`);
    if ((s.Resource === undefined) === (s.NotResource === undefined)) {
      problems.push(`${at} needs Resource or NotResource`);
    }
    for (const op of unsupportedOperators(s.Condition))
      problems.push(`${at}.Condition operator ${op} is not supported`);
  });
  return problems;
}
