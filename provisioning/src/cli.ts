import { existsSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { EXIT, LOCAL_CREDENTIALS_FILE, LOCAL_ENDPOINT_FILE } from '@pifleet/protocol';
import { systemClock } from './adapters/system-clock.js';
import { type CommandOutput, LOCAL_OPTION_HELP, type RunContext, type Runner, rateFactor } from './app/command.js';
import {
  type CliIo,
  createServices,
  type GlobalOptions,
  hintsFor,
  type Services,
  type TextSink,
} from './app/context.js';
import { registerCertsRotate } from './commands/certs-rotate.js';
import { registerClaimsCommands } from './commands/claims.js';
import { registerConsole } from './commands/console.js';
import { registerFleetCommands } from './commands/fleet.js';
import { registerGroupsCommands } from './commands/groups.js';
import { registerJobsCommands } from './commands/jobs.js';
import { registerKeysCreate } from './commands/keys-create.js';
import { registerReleaseBuild } from './commands/release-build.js';
import { registerReleaseUpload } from './commands/release-upload.js';
import { registerShadowDesire } from './commands/shadow-desire.js';
import { registerShadowGet } from './commands/shadow-get.js';
import { registerTemplatesCommands } from './commands/templates.js';
import { registerThingsCreate } from './commands/things-create.js';
import { registerThingsDelete } from './commands/things-delete.js';
import { registerThingsDescribe } from './commands/things-describe.js';
import { registerThingsList } from './commands/things-list.js';
import { type ErrorContext, formatErrorLine, toCliError } from './core/error-map.js';
import { type HintCommands, INSTALLED_INVOCATION, type Invocation, splitLocalOption } from './core/hints.js';
import { type CliError, UsageError } from './errors.js';
import { createLogger } from './logger.js';

/** The version `pifleet --version` prints: @pifleet/provisioning's (a test keeps them equal). */
export const CLI_VERSION = '0.1.0';

/** Streams and environment for {@link runCli}; everything but stdout/stderr has a default. */
export interface RunCliOptions {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  readonly signal?: AbortSignal;
  readonly isTTY?: boolean;
  readonly clock?: CliIo['clock'];
  readonly random?: () => number;
  /** How the CLI was started (see `invocationOf`); the installed names by default. */
  readonly invocation?: Invocation;
  /** Whether a word names a local core's data directory (for `--local DIR`); the file system by default. */
  readonly isDataDir?: (dir: string) => boolean;
}

function globalsOf(cmd: CommandUnknownOpts): GlobalOptions {
  // Leaf options override the same options given before the command name.
  const merged: Record<string, unknown> = {};
  const chain: CommandUnknownOpts[] = [];
  for (let c: CommandUnknownOpts | null = cmd; c; c = c.parent) chain.unshift(c);
  for (const c of chain) for (const [k, v] of Object.entries(c.opts())) if (v !== undefined) merged[k] = v;
  const { local, rate } = merged;
  return {
    json: merged.json === true || merged.outputJson === true,
    verbose: merged.verbose === true,
    // `--local=` (a bare --local, see splitLocalOption) means the default directory, as `true` does.
    ...(typeof local === 'string' || typeof local === 'boolean' ? { local: local === '' ? true : local } : {}),
    ...(typeof merged.region === 'string' ? { region: merged.region } : {}),
    ...(typeof merged.profile === 'string' ? { profile: merged.profile } : {}),
    ...(typeof rate === 'number' ? { rate } : {}),
  };
}

/** Builds the `pifleet` program. `run` turns handlers into actions that record their output. */
export function buildProgram(
  run: Runner,
  out: { writeOut: (s: string) => void; writeErr: (s: string) => void },
): CommandUnknownOpts {
  const program = new Command('pifleet')
    .description(
      'pifleet operator CLI: things, certificates, policies, device bundles and fleets on AWS IoT Core or the local IoT Core',
    )
    .version(CLI_VERSION)
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeOut: out.writeOut, writeErr: out.writeErr, outputError: () => undefined })
    .option('--json', 'print JSON on stdout')
    .option('--local [dataDir]', LOCAL_OPTION_HELP)
    .option('--region <region>', 'AWS region')
    .option('--profile <profile>', 'AWS profile')
    .option('--rate <factor>', 'scale the client-side control-plane rate limits', rateFactor)
    .option('-v, --verbose', 'log details to stderr');
  const things = program.command('things').description('things: create, list, describe, delete');
  registerThingsCreate(things, run);
  registerThingsList(things, run);
  registerThingsDescribe(things, run);
  registerThingsDelete(things, run);
  const certs = program.command('certs').description('certificates: rotate');
  registerCertsRotate(certs, run);
  const fleet = program.command('fleet').description('bulk: create and delete fleets of things');
  registerFleetCommands(fleet, run);
  const shadow = program.command('shadow').description('Device Shadow: get, desire');
  registerShadowGet(shadow, run);
  registerShadowDesire(shadow, run);
  const groups = program
    .command('groups')
    .description('thing groups: create, list, describe, delete, add-thing, remove-thing, attach-policy, detach-policy');
  registerGroupsCommands(groups, run);
  const keys = program.command('keys').description('release signing keys: create');
  registerKeysCreate(keys, run);
  const release = program.command('release').description('agent releases: build, upload');
  registerReleaseBuild(release, run);
  registerReleaseUpload(release, run);
  const jobs = program
    .command('jobs')
    .description('IoT Jobs: create (agent-update, config, reboot), list, describe, cancel');
  registerJobsCommands(jobs, run);
  registerConsole(program, run);
  const templates = program.command('templates').description('fleet provisioning templates: list, describe, delete');
  registerTemplatesCommands(templates, run);
  const claims = program
    .command('claims')
    .description('fleet provisioning by claim: create (claim certificate and image bundle), revoke');
  registerClaimsCommands(claims, run);
  for (const group of [program, things, certs, fleet, shadow, groups, keys, release, jobs, templates, claims]) {
    group
      .exitOverride()
      .configureOutput({ writeOut: out.writeOut, writeErr: out.writeErr, outputError: () => undefined });
    for (const leaf of group.commands) {
      leaf
        .exitOverride()
        .configureOutput({ writeOut: out.writeOut, writeErr: out.writeErr, outputError: () => undefined });
    }
  }
  return program;
}

function usageFromCommander(err: CommanderError, hints: HintCommands, notTaken: readonly string[]): CliError {
  const message = err.message.replace(/^error:\s*/, '');
  // A word after a bare --local that was not read as the directory, now an unknown command or an
  // excess argument: say how to name a directory that does not look like one.
  const word =
    err.code === 'commander.unknownCommand'
      ? notTaken.find((w) => message.includes(`'${w}'`))
      : err.code === 'commander.excessArguments'
        ? notTaken[0]
        : undefined;
  if (word !== undefined) {
    return new UsageError(message, {
      hint: `to use ${word} as the local core's data directory, write --local=${word} or --local ./${word}`,
    });
  }
  return new UsageError(message, { hint: `${hints.pifleet('--help')}, or ${hints.pifleet('COMMAND --help')}` });
}

/** A local core's data directory holds its credentials, and its endpoint file while it runs. */
function coreDataDirIn(cwd: string) {
  return (dir: string) => {
    const full = path.resolve(cwd, dir);
    return existsSync(path.join(full, LOCAL_CREDENTIALS_FILE)) || existsSync(path.join(full, LOCAL_ENDPOINT_FILE));
  };
}

/**
 * Runs the CLI in-process and returns the exit code (never calls process.exit). Data goes to
 * `stdout` (JSON with `--json`), logs, progress and the one-line error to `stderr`.
 */
export async function runCli(argv: readonly string[], options: RunCliOptions): Promise<number> {
  const io: CliIo = {
    stdout: options.stdout,
    stderr: options.stderr,
    env: options.env ?? {},
    cwd: options.cwd ?? process.cwd(),
    clock: options.clock ?? systemClock,
    isTTY: options.isTTY ?? false,
    invocation: options.invocation ?? INSTALLED_INVOCATION,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.random ? { random: options.random } : {}),
  };
  const split = splitLocalOption(argv, options.isDataDir ?? coreDataDirIn(io.cwd));
  let output: CommandOutput | undefined;
  let opts: GlobalOptions = { json: argv.includes('--json'), verbose: false };
  let hints = hintsFor(io, opts);
  let errorContext: ErrorContext = { target: 'aws', hints };
  let services: Services | undefined;

  const run: Runner = (cmd, handler) => {
    cmd.action(async () => {
      opts = globalsOf(cmd);
      hints = hintsFor(io, opts);
      errorContext = { ...errorContext, hints };
      const log = createLogger({
        level: opts.verbose ? 'info' : 'warn',
        destination: { write: (s: string) => void io.stderr.write(s) },
      });
      let thingName: string | undefined;
      const ctx: RunContext = {
        io,
        opts,
        log,
        services: async () => {
          if (!services) {
            services = await createServices(io, opts, log);
            errorContext = services.errorContext;
          }
          return services;
        },
        about: (name) => {
          thingName = name;
          errorContext = { ...errorContext, thingName: name };
        },
        hints,
      };
      try {
        output = await handler(ctx, cmd.processedArgs, cmd.opts());
      } catch (err) {
        throw toCliError(err, { ...errorContext, ...(thingName ? { thingName } : {}) });
      }
    });
  };

  const program = buildProgram(run, {
    writeOut: (s) => void io.stdout.write(s),
    writeErr: (s) => void io.stderr.write(s),
  });
  let failure: CliError | undefined;
  try {
    await program.parseAsync(split.argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        return EXIT.ok;
      }
      if (err.code === 'commander.executeSubCommandAsync' || err.exitCode === 0) return EXIT.ok;
      failure = usageFromCommander(err, hints, split.notTaken);
    } else {
      failure = toCliError(err, errorContext);
    }
  } finally {
    services?.close();
  }
  if (output) {
    io.stdout.write(opts.json ? `${JSON.stringify(output.data)}\n` : `${output.text}\n`);
    failure ??= output.error;
  }
  if (failure) {
    if (opts.json) {
      io.stderr.write(
        `${JSON.stringify({ error: { code: failure.code, message: failure.message, hint: failure.hint, exitCode: failure.exitCode } })}\n`,
      );
    } else io.stderr.write(`${formatErrorLine(failure)}\n`);
    return failure.exitCode;
  }
  return EXIT.ok;
}
