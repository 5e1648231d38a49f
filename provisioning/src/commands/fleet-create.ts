import path from 'node:path';
import type { Command } from 'commander';
import { collect, type Runner, withCommonOptions } from '../app/command.js';
import { fleetCreate, renderSummary } from '../app/fleet.js';
import { parseAttributes, parsePositiveInt, parsePrefix } from '../core/args.js';
import { DEFAULT_BUNDLES_DIR } from '../core/bundle.js';
import { CliError, InterruptedError } from '../errors.js';

export function registerFleetCreate(fleet: Command, run: Runner): void {
  withCommonOptions(
    fleet
      .command('create')
      .description('create PREFIX-0001 … PREFIX-N with bundles; resumable (re-run the same command)')
      .requiredOption('--count <n>', 'number of things')
      .requiredOption('--prefix <prefix>', 'thing name prefix')
      .option('--out <dir>', `directory of the bundles (default: ${DEFAULT_BUNDLES_DIR})`)
      .option('--concurrency <n>', 'things in flight at once', '8')
      .option('--attr <key=value>', 'attribute for every thing (repeatable; `fleet=PREFIX` is always set)', collect, [])
      .option('--journal <file>', 'journal file (default: OUT/.fleet-PREFIX.create.journal)'),
  ).action(
    run(async (ctx, _args, o) => {
      const prefix = parsePrefix(String(o.prefix));
      const count = parsePositiveInt('--count', String(o.count), 100_000);
      const concurrency = parsePositiveInt('--concurrency', String(o.concurrency), 256);
      const attributes = parseAttributes(o.attr as string[]);
      const outDir = path.resolve(ctx.io.cwd, typeof o.out === 'string' ? o.out : DEFAULT_BUNDLES_DIR);
      const services = await ctx.services();
      const { summary, fatal } = await fleetCreate(
        {
          provisioner: services.provisioner,
          registry: services.registry,
          clock: ctx.io.clock,
          log: ctx.log,
          stderr: ctx.io.stderr,
          isTTY: ctx.io.isTTY,
          errorContext: services.errorContext,
          ...(ctx.io.signal ? { signal: ctx.io.signal } : {}),
        },
        {
          prefix,
          count,
          outDir,
          concurrency,
          attributes,
          ...(typeof o.journal === 'string' ? { journalPath: path.resolve(ctx.io.cwd, o.journal) } : {}),
        },
      );
      const rerun = 're-run the same command to resume; finished things are skipped';
      const error =
        fatal ??
        (summary.interrupted
          ? new InterruptedError(`fleet create interrupted`, { hint: rerun })
          : summary.failed > 0
            ? new CliError('FLEET_PARTIAL', `${summary.failed} of ${summary.total} things failed`, 1, { hint: rerun })
            : undefined);
      return { data: summary, text: renderSummary(summary), ...(error ? { error } : {}) };
    }),
  );
}
