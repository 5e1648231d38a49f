import type { Command } from 'commander';
import { type Runner, withCommonOptions } from '../app/command.js';
import { parseThingName } from '../core/args.js';
import { defaultBundleDir } from './things-create.js';

export function registerThingsDelete(things: Command, run: Runner): void {
  withCommonOptions(
    things
      .command('delete')
      .description('tear a thing down: detach policy and certificate, deactivate and delete it, delete the thing')
      .argument('<name>', 'thing name')
      .option('--out <dir>', 'bundle directory (default: ./bundles/NAME); its certificate is retired too')
      .option('--keep-bundle', 'keep the bundle directory (it is removed by default: its certificate is gone)'),
  ).action(
    run(async (ctx, [rawName], o) => {
      const thingName = parseThingName(rawName ?? '');
      ctx.about(thingName);
      const { provisioner } = await ctx.services();
      const r = await provisioner.teardownThing({
        thingName,
        bundleDir: defaultBundleDir(ctx.io.cwd, thingName, o.out),
        removeBundle: o.keepBundle !== true,
      });
      const head =
        r.status === 'absent' ? `thing ${thingName} does not exist; nothing to delete` : `deleted thing ${thingName}`;
      return { data: r, text: [head, ...r.changes.map((c) => `  - ${c}`)].join('\n') };
    }),
  );
}
