import { Command, CommanderError, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { EXIT, type ExitCode } from '@pifleet/protocol';
import { registerAgentCommand, type SimCliIo } from './agents/command.js';
import { registerDemoCommand } from './demo/command.js';
import { registerFleetCommand } from './fleet/command.js';

export type { SimCliIo };

/** The version `pifleet-sim --version` prints: @pifleet/simulator's (a test keeps them equal). */
export const SIM_VERSION = '0.1.0';

/**
 * The `pifleet-sim` program. Each folder registers its own subcommands here: `demo`
 * (demo/command.ts), `agent` (agents/command.ts); the fleet runner adds `fleet`.
 */
export function buildSimProgram(io: SimCliIo): CommandUnknownOpts {
  const program = new Command('pifleet-sim')
    .description('pifleet simulator: the local demo, simulated agents and fleets against a local IoT Core')
    .version(SIM_VERSION)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  registerDemoCommand(program, io);
  registerAgentCommand(program, io);
  registerFleetCommand(program, io);
  for (const c of program.commands) c.exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  return program;
}

/** Runs `pifleet-sim` in-process and resolves with the exit code. */
export async function runSimCli(argv: readonly string[], io: Omit<SimCliIo, 'exit'>): Promise<ExitCode> {
  let code: ExitCode = EXIT.ok;
  const program = buildSimProgram({
    ...io,
    exit: (c) => {
      code = c;
    },
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    io.stderr(`pifleet-sim: ${(err as Error).message}\n`);
    return EXIT.unexpected;
  }
}
