import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { type Runner, withCommonOptions } from '../app/command.js';
import { parsePositiveInt } from '../core/args.js';
import type { ThingRecord } from '../ports/registry.js';

export function registerThingsList(things: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      things
        .command('list')
        .description('list things (all pages, or one page with --page-size/--next-token)')
        .option('--page-size <n>', 'things per request (1-250)', '100')
        .option('--next-token <token>', 'start from this page token and print one page')
        .option('--max <n>', 'stop after this many things'),
    ),
    async (ctx, _args, o) => {
      const pageSize = parsePositiveInt('--page-size', o.pageSize, 250);
      const max = o.max !== undefined ? parsePositiveInt('--max', o.max) : undefined;
      const onePage = o.nextToken !== undefined;
      const { registry } = await ctx.services();
      const things: ThingRecord[] = [];
      let nextToken = o.nextToken;
      let pages = 0;
      do {
        const page = await registry.listThings({ maxResults: pageSize, ...(nextToken ? { nextToken } : {}) });
        things.push(...page.things);
        nextToken = page.nextToken;
        pages++;
      } while (nextToken && !onePage && (max === undefined || things.length < max));
      const shown = max !== undefined ? things.slice(0, max) : things;
      const more = nextToken !== undefined || shown.length < things.length;
      const text = [
        ...shown.map((t) => {
          const attrs = Object.entries(t.attributes)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ');
          return attrs ? `${t.thingName}  ${attrs}` : t.thingName;
        }),
        `${shown.length} thing${shown.length === 1 ? '' : 's'}${more && nextToken ? ` (more: --next-token ${nextToken})` : ''}`,
      ].join('\n');
      return {
        data: { things: shown, pages, ...(nextToken ? { nextToken } : {}) },
        text,
      };
    },
  );
}
