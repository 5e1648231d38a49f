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
  process.exitCode = code;
  // The device SDK's native event loop can outlive a clean stop by a few seconds (pending
  // unsubscribes of the shadow client); nothing is left to flush by then.
  setTimeout(() => process.exit(code), 2_000).unref();
}
