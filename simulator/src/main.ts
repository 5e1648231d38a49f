import { exitWhenFlushed } from '@pifleet/device-agent';
import { runSimCli } from './cli.js';

/** Process entry of `pifleet-sim`: the only module of the simulator's CLI that touches `process`. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const code = await runSimCli(argv, {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    env: process.env,
    waitForStop: () =>
      new Promise((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      }),
  });
  // Never a natural exit: aws-crt aborts on the way out once a shadow delta stream was open.
  exitWhenFlushed(code);
}
