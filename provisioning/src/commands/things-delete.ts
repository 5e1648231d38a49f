import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { type Runner, withCommonOptions } from '../app/command.js';
import { parseThingName } from '../core/args.js';
import { DEFAULT_BUNDLES_DIR } from '../core/bundle.js';
import { thingNotFound } from '../core/error-map.js';
import { defaultBundleDir } from './things-create.js';

export function registerThingsDelete(things: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      things
        .command('delete')
        .description('tear a thing down: detach policy and certificate, deactivate and delete it, delete the thing')
        .argument('<name>', 'thing name')
        .option(
          '--out <dir>',
          `bundle directory (default: ${DEFAULT_BUNDLES_DIR}/NAME); its certificate is retired too`,
        )
        .option('--keep-bundle', 'keep the bundle directory (it is removed by default: its certificate is gone)'),
    ),
    async (ctx, [rawName], o) => {
      const thingName = parseThingName(rawName);
      ctx.about(thingName);
      const { provisioner } = await ctx.services();
      const { dir: bundleDir, note } = defaultBundleDir(ctx.io.cwd, thingName, o.out);
      const r = await provisioner.teardownThing({
        thingName,
        bundleDir,
        removeBundle: o.keepBundle !== true,
      });
      // Nothing of the thing anywhere (a typo, or deleted before): say so with exit 65, as every
      // command that names a thing does. A re-run that still finds leftovers (a certificate, the
      // bundle) of an interrupted delete removes them and succeeds.
      if (r.status === 'absent' && r.changes.length === 0) throw thingNotFound(thingName, ctx.hints);
      const head =
        r.status === 'absent'
          ? `thing ${thingName} was already deleted; removed what was left`
          : `deleted thing ${thingName}`;
      const lines = [head, ...r.changes.map((c) => `  - ${c}`), ...(note ? [`note: ${note}`] : [])];
      return { data: r, text: lines.join('\n') };
    },
  );
}
