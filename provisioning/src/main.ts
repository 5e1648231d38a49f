import { existsSync } from 'node:fs';
import { EXIT } from '@pifleet/protocol';
import { runCli } from './cli.js';
import { invocationOf } from './core/hints.js';

/** Process entry of `pifleet`: wires argv, env, streams and SIGINT into {@link runCli}, and sets the exit code. */
export async function main(): Promise<void> {
  const controller = new AbortController();
  let interrupts = 0;
  process.on('SIGINT', () => {
    interrupts++;
    if (interrupts > 1) process.exit(EXIT.interrupted);
    process.stderr.write('\npifleet: stopping after the things in flight (Ctrl-C again to quit now)\n');
    controller.abort();
  });
  // A command whose work never settles (a library that stops on an event it never emits) would
  // otherwise end the process with 0 and no output once the event loop empties: fail until it returns.
  process.exitCode = EXIT.unexpected;
  const code = await runCli(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    signal: controller.signal,
    isTTY: process.stderr.isTTY === true,
    // Hints repeat the command as it was started: `node provisioning/bin/pifleet.js` in a checkout.
    invocation: invocationOf(process.argv[1], process.cwd(), existsSync),
  });
  process.exitCode = code;
}
