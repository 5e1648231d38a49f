import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { type Runner, withCommonOptions } from '../app/command.js';
import { parseThingName } from '../core/args.js';
import { thingNotFound } from '../core/error-map.js';
import { NotFoundError } from '../errors.js';

export function registerShadowGet(shadow: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      shadow.command('get').description("print a thing's classic shadow document").argument('<name>', 'thing name'),
    ),
    async (ctx, [rawName]) => {
      const thingName = parseThingName(rawName);
      ctx.about(thingName);
      const { shadows, registry } = await ctx.services();
      const doc = await shadows.get(thingName);
      if (!doc) {
        // Both are a 404 of GetThingShadow; the registry tells a missing thing from a missing shadow.
        if (!(await registry.describeThing(thingName))) throw thingNotFound(thingName, ctx.hints);
        throw new NotFoundError(`thing ${thingName} has no shadow`, {
          hint: `${ctx.hints.pifleet(`shadow desire ${thingName} key=value`)} creates it`,
        });
      }
      return { data: doc, text: JSON.stringify(doc, null, 2) };
    },
  );
}
