import type { Command } from 'commander';
import { type Runner, withCommonOptions } from '../app/command.js';
import { parseThingName } from '../core/args.js';
import { NotFoundError } from '../errors.js';

export function registerShadowGet(shadow: Command, run: Runner): void {
  withCommonOptions(
    shadow.command('get').description("print a thing's classic shadow document").argument('<name>', 'thing name'),
  ).action(
    run(async (ctx, [rawName]) => {
      const thingName = parseThingName(rawName ?? '');
      ctx.about(thingName);
      const { shadows } = await ctx.services();
      const doc = await shadows.get(thingName);
      if (!doc) {
        throw new NotFoundError(`thing ${thingName} has no shadow`, {
          hint: `pifleet shadow desire ${thingName} key=value creates it; pifleet things list shows the things`,
        });
      }
      return { data: doc, text: JSON.stringify(doc, null, 2) };
    }),
  );
}
