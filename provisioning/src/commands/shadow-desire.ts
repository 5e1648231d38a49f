import { randomUUID } from 'node:crypto';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import type { JsonObject } from '@pifleet/protocol';
import { type Runner, withTargetOptions } from '../app/command.js';
import { parseDesiredAssignments, parseDesiredJson, parseNonNegativeInt, parseThingName } from '../core/args.js';
import { thingNotFound } from '../core/error-map.js';
import { UsageError } from '../errors.js';

export function registerShadowDesire(shadow: CommandUnknownOpts, run: Runner): void {
  run(
    withTargetOptions(
      shadow
        .command('desire')
        .description(
          'set desired state: key=value ... (sampling.ID=ms, batch.K=n, outputs.ID=true, logLevel=x) or --json',
        )
        .argument('<name>', 'thing name')
        .argument('[assignments...]', 'key=value pairs; value is JSON when it parses, else a string; null clears')
        .option('--json <document>', 'the desired document as JSON instead of key=value pairs')
        .option('--output-json', 'print JSON on stdout')
        .option('--version <n>', 'apply only if the shadow is at this version (optimistic locking)'),
    ),
    async (ctx, [rawName, assignments], o) => {
      const thingName = parseThingName(rawName);
      ctx.about(thingName);
      let desired: JsonObject;
      if (o.json !== undefined) {
        if (assignments.length > 0) throw new UsageError('give key=value pairs or --json, not both');
        desired = parseDesiredJson(o.json);
      } else {
        desired = parseDesiredAssignments(assignments);
      }
      const version = o.version !== undefined ? parseNonNegativeInt('--version', o.version) : undefined;
      const clientToken = randomUUID();
      const { shadows, registry } = await ctx.services();
      // The shadow service makes a shadow for any name (AWS does too), so a typo would leave an
      // orphan shadow that no device ever reads. Only registered things are commanded (the command
      // API answers 404 the same way). A thing deleted between the two calls is not caught.
      if (!(await registry.describeThing(thingName))) throw thingNotFound(thingName, ctx.hints);
      const accepted = await shadows.update(thingName, {
        state: { desired },
        clientToken,
        ...(version !== undefined ? { version } : {}),
      });
      const newVersion = typeof accepted.version === 'number' ? accepted.version : undefined;
      return {
        data: accepted,
        text: `desired state of ${thingName} updated${newVersion !== undefined ? ` (version ${newVersion})` : ''}: ${JSON.stringify(desired)}`,
      };
    },
  );
}
