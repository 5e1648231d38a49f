import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { type Runner, withCommonOptions } from '../app/command.js';
import { parseThingName } from '../core/args.js';
import { certificateIdFromArn } from '../core/bundle.js';
import { thingNotFound, toCliError } from '../core/error-map.js';

export interface ShadowSummary {
  readonly available: boolean;
  readonly exists?: boolean;
  readonly version?: number;
  readonly desiredKeys?: string[];
  readonly reportedKeys?: string[];
  readonly deltaKeys?: string[];
  readonly lastReportedAt?: string;
  readonly reason?: string;
}

const keysOf = (v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.keys(v) : []);

/** The newest timestamp anywhere in a metadata tree (seconds), as an ISO date. */
function newest(meta: unknown): number | undefined {
  if (!meta || typeof meta !== 'object') return undefined;
  let best: number | undefined;
  for (const [k, v] of Object.entries(meta)) {
    const t = k === 'timestamp' && typeof v === 'number' ? v : newest(v);
    if (t !== undefined && (best === undefined || t > best)) best = t;
  }
  return best;
}

export function registerThingsDescribe(things: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      things
        .command('describe')
        .description('show a thing: type, groups, attributes, certificates and their status, policies, shadow summary')
        .argument('<name>', 'thing name'),
    ),
    async (ctx, [rawName]) => {
      const thingName = parseThingName(rawName);
      ctx.about(thingName);
      const { registry, shadows, errorContext } = await ctx.services();
      const thing = await registry.describeThing(thingName);
      if (!thing) throw thingNotFound(thingName, ctx.hints);
      const thingGroups = await registry.listThingGroupsForThing(thingName);
      const principals = await registry.listThingPrincipals(thingName);
      const certificates = [];
      for (const arn of principals) {
        const id = certificateIdFromArn(arn);
        const cert = id ? await registry.describeCertificate(id) : undefined;
        const policies = await registry.listAttachedPolicies(arn);
        certificates.push({
          certificateId: id ?? arn,
          certificateArn: arn,
          status: cert?.status ?? 'UNKNOWN',
          ...(cert?.creationDate ? { creationDate: cert.creationDate.toISOString() } : {}),
          policies,
        });
      }
      let shadow: ShadowSummary;
      try {
        const doc = await shadows.get(thingName);
        if (!doc) shadow = { available: true, exists: false };
        else {
          const state = (doc.state ?? {}) as Record<string, unknown>;
          const last = newest((doc.metadata as Record<string, unknown> | undefined)?.reported);
          shadow = {
            available: true,
            exists: true,
            ...(typeof doc.version === 'number' ? { version: doc.version } : {}),
            desiredKeys: keysOf(state.desired),
            reportedKeys: keysOf(state.reported),
            deltaKeys: keysOf(state.delta),
            ...(last !== undefined ? { lastReportedAt: new Date(last * 1000).toISOString() } : {}),
          };
        }
      } catch (err) {
        // The data plane may be missing (an older local core) or unreachable: describe the rest anyway.
        shadow = { available: false, reason: toCliError(err, errorContext).message };
      }
      const data = {
        thingName,
        thingArn: thing.thingArn,
        ...(thing.thingTypeName !== undefined ? { thingTypeName: thing.thingTypeName } : {}),
        thingGroups,
        attributes: thing.attributes,
        version: thing.version,
        certificates,
        shadow,
      };
      const lines = [
        `thing ${thingName}${thing.thingArn ? `  ${thing.thingArn}` : ''}`,
        `type: ${thing.thingTypeName ?? '(none)'}`,
        `groups: ${thingGroups.join(', ') || '(none)'}`,
        `attributes: ${
          Object.entries(thing.attributes)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ') || '(none)'
        }`,
        `certificates: ${certificates.length === 0 ? '(none)' : ''}`,
        ...certificates.map((c) => `  ${c.certificateId}  ${c.status}  policies: ${c.policies.join(', ') || '(none)'}`),
        `shadow: ${
          !shadow.available
            ? `unavailable (${shadow.reason})`
            : !shadow.exists
              ? '(none)'
              : `version ${shadow.version}; desired ${shadow.desiredKeys?.join(', ') || '-'}; reported ${
                  shadow.reportedKeys?.join(', ') || '-'
                }; delta ${shadow.deltaKeys?.join(', ') || '-'}${shadow.lastReportedAt ? `; last report ${shadow.lastReportedAt}` : ''}`
        }`,
      ];
      return { data, text: lines.join('\n') };
    },
  );
}
