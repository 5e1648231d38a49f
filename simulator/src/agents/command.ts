import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { ConfigError, readAndCheckConfigFile } from '@pifleet/device-agent';
import { EXIT, type ExitCode } from '@pifleet/protocol';
import { createLogger } from '../logger.js';
import { createSimulatedDevice } from './simulated-device.js';

/** What a subcommand may touch instead of `process` (main passes the real one). */
export interface SimCliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Resolves with the signal that asks a long-running command to stop. */
  readonly waitForStop: () => Promise<'SIGTERM' | 'SIGINT'>;
  /** Where a command's logs go (pino JSON lines); stdout when absent. */
  readonly logDestination?: { write(line: string): void };
  /** Sets the exit code of the command that ran. */
  exit(code: ExitCode): void;
}

/**
 * `pifleet-sim agent --config FILE [--seed S]`: one agent process like `pifleet-agent run`, but on
 * simulated hardware (the config's `hardware` must be `simulated`). Used by the fault tests (kill -9
 * mid-stream) and the agent benchmark; logs pino JSON on stdout; SIGTERM/SIGINT stop it cleanly.
 */
export function registerAgentCommand(program: CommandUnknownOpts, io: SimCliIo): void {
  program
    .command('agent')
    .description('run one device agent on simulated hardware (config hardware: "simulated")')
    .requiredOption('-c, --config <file>', 'agent config file (JSON)')
    .option('--seed <seed>', "seed of the simulated environment (default: the thing's name)")
    .action(async (o) => {
      io.exit(await runAgent(o.config, o.seed, io));
    });
}

async function runAgent(file: string, seed: string | undefined, io: SimCliIo): Promise<ExitCode> {
  // Listen for the stop signal from the start, so a SIGTERM while the agent is starting stops it
  // cleanly once started instead of killing the process.
  const stopAsked = io.waitForStop();
  let config: Awaited<ReturnType<typeof readAndCheckConfigFile>>;
  try {
    // The checks of `pifleet-agent run`: the credential files parse and match, the outbox path is usable.
    config = await readAndCheckConfigFile(file, io.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr(`invalid configuration:\n${err.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}\n`);
    return EXIT.config;
  }
  if (config.hardware !== 'simulated') {
    io.stderr('pifleet-sim agent needs hardware "simulated" in the config\n');
    return EXIT.config;
  }
  const logger = createLogger({
    level: config.logLevel,
    bindings: { thingName: config.thingName },
    ...(io.logDestination ? { destination: io.logDestination } : {}),
  });
  const device = createSimulatedDevice({ config, seed: seed ?? config.thingName, logger });
  await device.start();
  logger.info({ bootId: device.bootId, outbox: config.outbox.path }, 'simulated agent running');
  const signal = await stopAsked;
  logger.info({ signal }, 'stopping');
  await device.stop('shutdown');
  logger.flush?.();
  return signal === 'SIGINT' ? EXIT.interrupted : EXIT.ok;
}
