import path from 'node:path';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { type CommandOutput, collect, type RunContext, type Runner, withCommonOptions } from '../app/command.js';
import { type FleetDeps, type FleetSummary, fleetCreate, fleetDelete, renderSummary } from '../app/fleet.js';
import { parseAttributes, parsePositiveInt, parsePrefix, parseRegistryName } from '../core/args.js';
import { DEFAULT_BUNDLES_DIR } from '../core/bundle.js';
import { CliError, InterruptedError } from '../errors.js';

/** `fleet create` and `fleet delete`: bulk runs over PREFIX-<digits>, journaled and resumable. */
export function registerFleetCommands(fleet: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      fleet
        .command('create')
        .description('create PREFIX-0001 … PREFIX-N with bundles; resumable (re-run the same command)')
        .requiredOption('--count <n>', 'number of things')
        .requiredOption('--prefix <prefix>', 'thing name prefix')
        .option('--out <dir>', `directory of the bundles (default: ${DEFAULT_BUNDLES_DIR})`)
        .option('--concurrency <n>', 'things in flight at once', '8')
        .option(
          '--attr <key=value>',
          'attribute for every thing (repeatable; `fleet=PREFIX` is always set)',
          collect,
          [],
        )
        .option('--type <thingType>', 'thing type of every thing (created when missing)')
        .option('--group <thingGroup>', 'thing group every thing joins (created when missing)')
        .option('--journal <file>', 'journal file (default: OUT/.fleet-PREFIX.create.journal)'),
    ),
    async (ctx, _args, o) => {
      const prefix = parsePrefix(o.prefix);
      const count = parsePositiveInt('--count', o.count, 100_000);
      const concurrency = parsePositiveInt('--concurrency', o.concurrency, 256);
      const attributes = parseAttributes(o.attr);
      const thingTypeName = o.type === undefined ? undefined : parseRegistryName('thing type', o.type);
      const thingGroupName = o.group === undefined ? undefined : parseRegistryName('thing group', o.group);
      const outDir = path.resolve(ctx.io.cwd, o.out ?? DEFAULT_BUNDLES_DIR);
      const result = await fleetCreate(await fleetDeps(ctx), {
        prefix,
        count,
        outDir,
        concurrency,
        attributes,
        ...(thingTypeName !== undefined ? { thingTypeName } : {}),
        ...(thingGroupName !== undefined ? { thingGroupName } : {}),
        ...(o.journal !== undefined ? { journalPath: path.resolve(ctx.io.cwd, o.journal) } : {}),
      });
      return fleetOutput(result, 're-run the same command to resume; finished things are skipped');
    },
  );

  run(
    withCommonOptions(
      fleet
        .command('delete')
        .description('tear down every thing named PREFIX-<digits> (and leftover bundles); resumable')
        .requiredOption('--prefix <prefix>', 'thing name prefix')
        .option('--out <dir>', `directory of the bundles (default: ${DEFAULT_BUNDLES_DIR})`)
        .option('--concurrency <n>', 'things in flight at once', '8')
        .option('--keep-bundles', 'keep the bundle directories')
        .option('--journal <file>', 'journal file (default: OUT/.fleet-PREFIX.delete.journal)'),
    ),
    async (ctx, _args, o) => {
      const prefix = parsePrefix(o.prefix);
      const concurrency = parsePositiveInt('--concurrency', o.concurrency, 256);
      const outDir = path.resolve(ctx.io.cwd, o.out ?? DEFAULT_BUNDLES_DIR);
      const result = await fleetDelete(await fleetDeps(ctx), {
        prefix,
        outDir,
        concurrency,
        keepBundles: o.keepBundles === true,
        ...(o.journal !== undefined ? { journalPath: path.resolve(ctx.io.cwd, o.journal) } : {}),
      });
      return fleetOutput(result, 're-run the same command to resume');
    },
  );
}

/** The target's clients, with the run's clock, log, progress stream and interruption. */
async function fleetDeps(ctx: RunContext): Promise<FleetDeps> {
  const services = await ctx.services();
  return {
    provisioner: services.provisioner,
    registry: services.registry,
    clock: ctx.io.clock,
    log: ctx.log,
    stderr: ctx.io.stderr,
    isTTY: ctx.io.isTTY,
    errorContext: services.errorContext,
    ...(ctx.io.signal ? { signal: ctx.io.signal } : {}),
  };
}

/** The summary; a fatal error, an interruption or failed things make the run fail, with how to resume. */
function fleetOutput({ summary, fatal }: { summary: FleetSummary; fatal?: CliError }, rerun: string): CommandOutput {
  const error =
    fatal ??
    (summary.interrupted
      ? new InterruptedError(`fleet ${summary.operation} interrupted`, { hint: rerun })
      : summary.failed > 0
        ? new CliError('FLEET_PARTIAL', `${summary.failed} of ${summary.total} things failed`, 1, { hint: rerun })
        : undefined);
  return { data: summary, text: renderSummary(summary), ...(error ? { error } : {}) };
}
