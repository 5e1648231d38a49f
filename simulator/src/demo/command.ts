import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { type CommandUnknownOpts, InvalidArgumentError } from '@commander-js/extra-typings';
import { EXIT } from '@pifleet/protocol';
import { pino } from 'pino';
import type { SimCliIo } from '../agents/command.js';
import { createLogger } from '../logger.js';

/** Default data directory of the demo (its own, apart from a `pifleet-local-core` one). */
export const DEMO_DATA_DIR = '.pifleet/demo';

const intOption = (name: string, min: number, max: number) => (raw: string) => {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max)
    throw new InvalidArgumentError(`${name} must be an integer ${min}–${max}`);
  return n;
};

/**
 * `pifleet-sim demo`: the local IoT Core, three provisioned things and three agents on simulated
 * hardware, with telemetry and shadow changes printed as they cross the broker. Runs until Ctrl-C
 * (or `--duration`), then stops everything and exits 0.
 */
export function registerDemoCommand(program: CommandUnknownOpts, io: SimCliIo): void {
  program
    .command('demo')
    .description('run the local demo: local IoT Core + three simulated devices')
    .option('--data-dir <dir>', 'state directory', DEMO_DATA_DIR)
    .option('--mqtt-port <port>', 'MQTT over TLS port (0 = a free one)', intOption('--mqtt-port', 0, 65_535), 0)
    .option('--http-port <port>', 'HTTP API port (0 = a free one)', intOption('--http-port', 0, 65_535), 0)
    .option('--duration <seconds>', 'stop by itself after this many seconds', intOption('--duration', 1, 86_400))
    .action(async (o) => {
      const cwd = process.cwd();
      const logFile = path.resolve(cwd, o.dataDir, 'demo.log');
      mkdirSync(path.dirname(logFile), { recursive: true });
      const logger = createLogger({
        level: 'info',
        bindings: { service: 'pifleet-demo' },
        destination: pino.destination({ dest: logFile, sync: true }),
      });
      // Loaded here, not at the top: the core, the AWS SDK and the provisioning CLI stay out of
      // other subcommands' processes (a `pifleet-sim agent` is measured for its memory).
      const { createDemo } = await import('./demo.js');
      const demo = createDemo({
        options: { dataDir: o.dataDir, mqttPort: o.mqttPort, httpPort: o.httpPort },
        print: (line) => io.stdout(`${line}\n`),
        cwd,
        env: io.env,
        logger,
      });
      try {
        await demo.start();
      } catch (err) {
        io.stderr(`pifleet demo: could not start: ${(err as Error).message}\nhint: details in ${logFile}\n`);
        await demo.stop().catch(() => undefined);
        const code = (err as NodeJS.ErrnoException).code;
        io.exit(code === 'EADDRINUSE' ? EXIT.unavailable : EXIT.unexpected);
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const stops: Promise<'SIGTERM' | 'SIGINT' | 'duration'>[] = [io.waitForStop()];
      const duration = o.duration;
      if (duration !== undefined) {
        stops.push(new Promise((resolve) => (timer = setTimeout(() => resolve('duration'), duration * 1000))));
      }
      const reason = await Promise.race(stops);
      if (timer) clearTimeout(timer);
      io.stdout(
        `\nstopping (${reason === 'duration' ? `after ${o.duration} s` : reason}): agents drain their outboxes, then the core stops\n`,
      );
      await demo.stop();
      io.stdout('demo stopped cleanly\n');
      io.exit(EXIT.ok);
    });
}
