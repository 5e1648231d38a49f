import {
  type Command,
  type CommandUnknownOpts,
  InvalidArgumentError,
  type OptionValues,
} from '@commander-js/extra-typings';
import type { HintCommands } from '../core/hints.js';
import type { CliError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { CliIo, GlobalOptions, Services } from './context.js';

/** What a command's handler gets. */
export interface RunContext {
  readonly io: CliIo;
  readonly opts: GlobalOptions;
  readonly log: Logger;
  /** The target's clients, built on first call (so usage errors never need a target). */
  services(): Promise<Services>;
  /** Names the thing the command is about, so an error can say "thing X not found". */
  about(thingName: string): void;
  /** Commands for hints, spelled so they run here against the same target. */
  readonly hints: HintCommands;
}

/** What a handler returns: data for `--json`, text for people; `error` makes the run fail after printing. */
export interface CommandOutput {
  readonly data: unknown;
  readonly text: string;
  readonly error?: CliError;
}

/** A command's work: its arguments and options come typed from the command's definition. */
export type Handler<Args extends unknown[], Opts extends OptionValues> = (
  ctx: RunContext,
  args: Args,
  options: Opts,
) => Promise<CommandOutput>;

/** Makes `handler` the action of `cmd`, run with the context of the CLI run. */
export type Runner = <Args extends unknown[], Opts extends OptionValues>(
  cmd: Command<Args, Opts, OptionValues>,
  handler: Handler<Args, Opts>,
) => void;

const collect = (value: string, previous: string[]) => [...previous, value];

/** Help of `--local`; see `splitLocalOption` for when the next word is the directory. */
export const LOCAL_OPTION_HELP =
  'use the local IoT Core whose data directory is DATA_DIR (default $PIFLEET_LOCAL, else .pifleet/local-core); ' +
  'write --local=DATA_DIR, or --local DATA_DIR when DATA_DIR is a path (has a /) or a core data directory';

/**
 * Adds the options every leaf command accepts (they are also accepted before the command). They
 * stay out of the command's option type: the CLI reads them from the whole command chain
 * (`globalsOf`), a handler gets the command's own.
 */
export function withCommonOptions<C extends CommandUnknownOpts>(cmd: C): C {
  cmd.option('--json', 'print JSON on stdout');
  return withTargetOptions(cmd);
}

/** The common options but `--json`, for a command whose `--json` takes a value (`shadow desire`). */
export function withTargetOptions<C extends CommandUnknownOpts>(cmd: C): C {
  cmd
    .option('--local [dataDir]', LOCAL_OPTION_HELP)
    .option('--region <region>', 'AWS region (default: AWS_REGION or the profile)')
    .option('--profile <profile>', 'AWS profile for credentials')
    .option('--rate <factor>', 'scale the client-side control-plane rate limits', rateFactor)
    .option('-v, --verbose', 'log progress details to stderr');
  return cmd;
}

/** `--rate`: a positive number (a usage error, exit 64, instead of a RangeError from the limiter later). */
export function rateFactor(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('--rate must be a positive number, e.g. 0.5 or 2');
  return n;
}

export { collect };
