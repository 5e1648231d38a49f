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
  // Exit explicitly once stdout/stderr are flushed, never by letting the event loop run dry: a
  // natural exit tears the Node environment down and aws-crt aborts on the way (exit 255) when a
  // shadow delta stream was open (see exitWhenFlushed in @pifleet/device-agent's main.ts).
  let pending = 2;
  const done = () => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
  setTimeout(() => process.exit(code), 2_000);
}
