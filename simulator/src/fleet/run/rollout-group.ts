import { localCorePaths, openSqliteRegistry } from '@pifleet/cloud';
import type { LocalTarget } from '../target.js';

/**
 * The run's things in one static thing group, the job's target: CreateJob takes at most 100
 * targets ("AssociateTargetsWithJob": "The total number of targets associated with a job must not
 * exceed 100"), so a fleet is targeted as a group, as an operator would. Made in process, straight
 * into the core's registry, as the things themselves were provisioned.
 */
export function groupRunThings(opts: {
  readonly dataDir: string;
  readonly local: LocalTarget | undefined;
  readonly account: { readonly region: string; readonly accountId: string };
  readonly groupName: string;
  readonly names: readonly string[];
}): { readonly groupArn: string; readonly remove: () => void } {
  const open = () =>
    opts.local?.services.registry ??
    openSqliteRegistry({ file: localCorePaths(opts.dataDir).registryFile, account: opts.account, now: Date.now });
  const withRegistry = <T>(fn: (r: ReturnType<typeof open>) => T): T => {
    const registry = open();
    try {
      return fn(registry);
    } finally {
      if (!opts.local) registry.close();
    }
  };
  const group = withRegistry((registry) => {
    const g = registry.createThingGroup({
      thingGroupName: opts.groupName,
      description: "pifleet-sim fleet rollout: the run's things",
    });
    for (const thingName of opts.names) registry.addThingToThingGroup({ thingGroupName: opts.groupName, thingName });
    return g;
  });
  return {
    groupArn: group.thingGroupArn,
    remove: () =>
      withRegistry((registry) => {
        // The group goes; its things are removed with the rest of the run's provisioning.
        registry.deleteThingGroup({ thingGroupName: opts.groupName });
      }),
  };
}
