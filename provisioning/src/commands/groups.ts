import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { type RunContext, type Runner, withCommonOptions } from '../app/command.js';
import { parseRegistryName, parseThingName } from '../core/args.js';
import { thingNotFound } from '../core/error-map.js';
import { ConflictError, NotFoundError } from '../errors.js';
import type { DeviceRegistry, ThingGroupRecord } from '../ports/registry.js';

/**
 * `groups …`: static thing groups (AWS IoT's, or the local core's). Policies attached to a group
 * apply to the things in it and in its child groups, on connections whose client id is the thing name.
 */

const groupName = (raw: string) => parseRegistryName('thing group', raw);

/** The group, or exit 65 with how to see the groups there are. */
async function existingGroup(ctx: RunContext, registry: DeviceRegistry, name: string): Promise<ThingGroupRecord> {
  const group = await registry.describeThingGroup(name);
  if (!group) throw new NotFoundError(`thing group ${name} not found`, { hint: ctx.hints.pifleet('groups list') });
  return group;
}

async function existingThing(ctx: RunContext, registry: DeviceRegistry, name: string): Promise<void> {
  if (!(await registry.describeThing(name))) throw thingNotFound(name, ctx.hints);
}

const pathOf = (g: ThingGroupRecord) => [...g.path, g.thingGroupName].join(' / ');

export function registerGroupsCommands(groups: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      groups
        .command('create')
        .description('create a thing group, under --parent (the parent cannot change later); idempotent')
        .argument('<name>', 'thing group name')
        .option('--parent <group>', 'parent thing group (must exist)')
        .option('--description <text>', 'description'),
    ),
    async (ctx, [rawName], o) => {
      const name = groupName(rawName);
      const parent = o.parent === undefined ? undefined : groupName(o.parent);
      const { registry } = await ctx.services();
      const existing = await registry.describeThingGroup(name);
      if (existing) {
        if (existing.parentGroupName !== parent) {
          throw new ConflictError(
            'GROUP_EXISTS',
            `thing group ${name} exists ${existing.parentGroupName ? `under ${existing.parentGroupName}` : 'as a root group'}`,
            { hint: 'a group keeps the parent it was created with; choose another name' },
          );
        }
        return { data: { ...existing, created: false }, text: `thing group ${pathOf(existing)} already exists` };
      }
      if (parent !== undefined) await existingGroup(ctx, registry, parent);
      const group = await registry.createThingGroup(name, {
        ...(parent !== undefined ? { parentGroupName: parent } : {}),
        ...(o.description !== undefined ? { description: o.description } : {}),
      });
      return { data: { ...group, created: true }, text: `created thing group ${pathOf(group)}` };
    },
  );

  run(
    withCommonOptions(
      groups
        .command('list')
        .description('list thing groups: all, or the children of --parent (--recursive: all its descendants)')
        .option('--parent <group>', 'list the child groups of this group')
        .option('--recursive', 'with --parent: the descendants at every depth'),
    ),
    async (ctx, _args, o) => {
      const parent = o.parent === undefined ? undefined : groupName(o.parent);
      const { registry } = await ctx.services();
      if (parent !== undefined) await existingGroup(ctx, registry, parent);
      const names = await registry.listThingGroups({
        ...(parent !== undefined ? { parentGroup: parent } : {}),
        ...(o.recursive === true ? { recursive: true } : {}),
      });
      return { data: { groups: names }, text: names.length > 0 ? names.join('\n') : 'no thing groups' };
    },
  );

  run(
    withCommonOptions(
      groups
        .command('describe')
        .description('show a thing group: its place in the hierarchy, its things and the policies attached to it')
        .argument('<name>', 'thing group name')
        .option('--recursive', 'list the things of its child groups too'),
    ),
    async (ctx, [rawName], o) => {
      const name = groupName(rawName);
      const { registry } = await ctx.services();
      const group = await existingGroup(ctx, registry, name);
      const things = await registry.listThingsInThingGroup(name, o.recursive === true);
      const policies = await registry.listAttachedPolicies(group.thingGroupArn);
      const attributes = Object.entries(group.attributes).map(([k, v]) => `${k}=${v}`);
      const lines = [
        `thing group ${pathOf(group)}`,
        `arn ${group.thingGroupArn}`,
        ...(group.description ? [`description ${group.description}`] : []),
        ...(attributes.length > 0 ? [`attributes ${attributes.join(' ')}`] : []),
        `things (${things.length})${things.length > 0 ? `: ${things.join(', ')}` : ''}`,
        `policies${policies.length > 0 ? `: ${policies.join(', ')}` : ': none'}`,
      ];
      return { data: { ...group, things, policies }, text: lines.join('\n') };
    },
  );

  run(
    withCommonOptions(
      groups
        .command('delete')
        .description('delete a thing group (its things stay; a group with child groups cannot be deleted)')
        .argument('<name>', 'thing group name'),
    ),
    async (ctx, [rawName]) => {
      const name = groupName(rawName);
      const { registry } = await ctx.services();
      await existingGroup(ctx, registry, name);
      const children = await registry.listThingGroups({ parentGroup: name });
      if (children.length > 0) {
        throw new ConflictError('GROUP_HAS_CHILDREN', `thing group ${name} has child groups: ${children.join(', ')}`, {
          hint: 'delete its child groups first',
        });
      }
      if (!(await registry.deleteThingGroup(name))) {
        throw new NotFoundError(`thing group ${name} not found`, { hint: ctx.hints.pifleet('groups list') });
      }
      return { data: { thingGroupName: name, deleted: true }, text: `deleted thing group ${name}` };
    },
  );

  /** A command on a group and one other name (a thing's, a policy's): the add/remove and attach/detach pairs. */
  const groupAnd = <A extends string>(verb: string, description: string, arg: A, argDescription: string) =>
    withCommonOptions(
      groups
        .command(verb)
        .description(description)
        .argument('<group>', 'thing group name')
        .argument(arg, argDescription),
    );

  for (const [verb, description] of [
    ['add-thing', 'add a thing to a thing group (a thing is in at most 10 groups, one per hierarchy)'],
    ['remove-thing', 'remove a thing from a thing group'],
  ] as const) {
    run(groupAnd(verb, description, '<thing>', 'thing name'), async (ctx, [rawGroup, rawThing]) => {
      const name = groupName(rawGroup);
      const thingName = parseThingName(rawThing);
      const { registry } = await ctx.services();
      await existingGroup(ctx, registry, name);
      await existingThing(ctx, registry, thingName);
      const member = (await registry.listThingGroupsForThing(thingName)).includes(name);
      if (verb === 'add-thing') {
        if (!member) await registry.addThingToThingGroup(name, thingName);
        const text = member ? `thing ${thingName} is already in thing group ${name}` : `added ${thingName} to ${name}`;
        return { data: { thingGroupName: name, thingName, changed: !member }, text };
      }
      if (member) await registry.removeThingFromThingGroup(name, thingName);
      const text = member ? `removed ${thingName} from ${name}` : `thing ${thingName} is not in thing group ${name}`;
      return { data: { thingGroupName: name, thingName, changed: member }, text };
    });
  }

  for (const [verb, description] of [
    [
      'attach-policy',
      'attach an IoT policy to a thing group: it applies to the things in the group and its child groups',
    ],
    ['detach-policy', 'detach an IoT policy from a thing group'],
  ] as const) {
    run(groupAnd(verb, description, '<policy>', 'policy name'), async (ctx, [rawGroup, policyName]) => {
      const name = groupName(rawGroup);
      const { registry } = await ctx.services();
      const group = await existingGroup(ctx, registry, name);
      if (!(await registry.getPolicy(policyName))) {
        throw new NotFoundError(`policy ${policyName} not found`, {
          hint: 'create it first (aws iot create-policy, or the CDK app)',
        });
      }
      const attached = (await registry.listAttachedPolicies(group.thingGroupArn)).includes(policyName);
      if (verb === 'attach-policy') {
        if (!attached) await registry.attachPolicy(policyName, group.thingGroupArn);
        const text = attached
          ? `policy ${policyName} is already attached to ${name}`
          : `attached policy ${policyName} to ${name}`;
        return { data: { thingGroupName: name, policyName, changed: !attached }, text };
      }
      if (attached) await registry.detachPolicy(policyName, group.thingGroupArn);
      const text = attached
        ? `detached policy ${policyName} from ${name}`
        : `policy ${policyName} is not attached to ${name}`;
      return { data: { thingGroupName: name, policyName, changed: attached }, text };
    });
  }
}
