/**
 * Reading a synthesized CloudFormation template in tests: intrinsic functions rendered to
 * readable strings (`${AWS::Region}`, `${LogicalId.Arn}`, `${LogicalId}`), IAM statements
 * flattened to (effect, action, resource) triples, and the policies attached to a role.
 */
export type Resources = Record<string, { Type: string; Properties?: Record<string, unknown>; [k: string]: unknown }>;

/** Renders intrinsics: `Ref` → `${Id}`, `Fn::GetAtt` → `${Id.Attr}`, `Fn::Join` → the joined string. */
export function render(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(render);
  if (typeof value !== 'object' || value === null) return value;
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1) {
    if ('Ref' in o) return `\${${String(o.Ref)}}`;
    if ('Fn::GetAtt' in o) {
      const [id, attr] = o['Fn::GetAtt'] as [string, string];
      return `\${${id}.${attr}}`;
    }
    if ('Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map((p) => String(render(p))).join(sep);
    }
  }
  return Object.fromEntries(keys.map((k) => [k, render(o[k])]));
}

/** `${Id}` / `${Id.Arn}` of a rendered reference → `Id`. */
export function refId(rendered: unknown): string {
  const m = typeof rendered === 'string' ? /^\$\{([A-Za-z0-9]+)(\.[A-Za-z]+)?\}$/.exec(rendered) : null;
  if (m?.[1] === undefined) throw new Error(`not a reference: ${JSON.stringify(rendered)}`);
  return m[1];
}

export interface Grant {
  readonly effect: string;
  readonly action: string;
  readonly resource: string;
}

const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : [v]);

/** Every (effect, action, resource) a policy document's statements allow or deny, rendered and sorted. */
export function grantsOf(document: unknown): Grant[] {
  const statements = asList((render(document) as { Statement: unknown }).Statement) as Record<string, unknown>[];
  const grants: Grant[] = [];
  for (const st of statements) {
    for (const action of asList(st.Action)) {
      for (const resource of asList(st.Resource)) {
        grants.push({ effect: String(st.Effect), action: String(action), resource: String(resource) });
      }
    }
  }
  return sortGrants(grants);
}

export function sortGrants(grants: readonly Grant[]): Grant[] {
  const key = (g: Grant) => `${g.effect} ${g.action} ${g.resource}`;
  return [...grants].sort((a, b) => key(a).localeCompare(key(b)));
}

/** Grants of `actions` on each of `resources`, as {@link grantsOf} reports them. */
export function allow(actions: readonly string[], ...resources: string[]): Grant[] {
  return actions.flatMap((action) => resources.map((resource) => ({ effect: 'Allow', action, resource })));
}

/** What a role may do: its inline policies plus every `AWS::IAM::Policy` attached to it. Throws if it has managed policies. */
export function roleGrants(resources: Resources, roleId: string): Grant[] {
  const role = resources[roleId];
  if (role?.Type !== 'AWS::IAM::Role') throw new Error(`${roleId} is not a role`);
  if (role.Properties?.ManagedPolicyArns !== undefined) {
    throw new Error(`${roleId} has managed policies: ${JSON.stringify(role.Properties.ManagedPolicyArns)}`);
  }
  const docs: unknown[] = ((role.Properties?.Policies as { PolicyDocument: unknown }[] | undefined) ?? []).map(
    (p) => p.PolicyDocument,
  );
  for (const r of Object.values(resources)) {
    if (r.Type !== 'AWS::IAM::Policy') continue;
    const roles = (r.Properties?.Roles as unknown[] | undefined) ?? [];
    if (roles.some((ref) => render(ref) === `\${${roleId}}`)) docs.push(r.Properties?.PolicyDocument);
  }
  return sortGrants(docs.flatMap(grantsOf));
}

/** The logical id of every resource of a type. */
export function idsOfType(resources: Resources, type: string): string[] {
  return Object.entries(resources)
    .filter(([, r]) => r.Type === type)
    .map(([id]) => id);
}
