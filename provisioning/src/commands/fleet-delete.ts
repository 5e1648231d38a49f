import path from 'node:path';
import type { Command } from 'commander';
import { type Runner, withCommonOptions } from '../app/command.js';
import { fleetDelete, renderSummary } from '../app/fleet.js';
import { parsePositiveInt, parsePrefix } from '../core/args.js';
import { DEFAULT_BUNDLES_DIR } from '../core/bundle.js';
import { CliError, InterruptedError } from '../errors.js';

export function registerFleetDelete(fleet: Command, run: Runner): void {
  withCommonOptions(
    fleet
      .command('delete')
      .description('tear down every thing named PREFIX-<digits> (and leftover bundles); resumable')
      .requiredOption('--prefix <prefix>', 'thing name prefix')
      .option('--out <dir>', `directory of the bundles (default: ${DEFAULT_BUNDLES_DIR})`)
      .option('--concurrency <n>', 'things in flight at once', '8')
      .option('--keep-bundles', 'keep the bundle directories')
      .option('--journal <file>', 'journal file (default: OUT/.fleet-PREFIX.delete.journal)'),
  ).action(
    run(async (ctx, _args, o) => {
      const prefix = parsePrefix(String(o.prefix));
      const concurrency = parsePositiveInt('--concurrency', String(o.concurrency), 256);
      const outDir = path.resolve(ctx.io.cwd, typeof o.out === 'string' ? o.out : DEFAULT_BUNDLES_DIR);
      const services = await ctx.services();
      const { summary, fatal } = await fleetDelete(
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
          outDir,
          concurrency,
          keepBundles: o.keepBundles === true,
          ...(typeof o.journal === 'string' ? { journalPath: path.resolve(ctx.io.cwd, o.journal) } : {}),
        },
      );
      const rerun = 're-run the same command to resume';
      const error =
        fatal ??
        (summary.interrupted
          ? new InterruptedError('fleet delete interrupted', { hint: rerun })
          : summary.failed > 0
            ? new CliError('FLEET_PARTIAL', `${summary.failed} of ${summary.total} things failed`, 1, { hint: rerun })
            : undefined);
      return { data: summary, text: renderSummary(summary), ...(error ? { error } : {}) };
    }),
  );
}
