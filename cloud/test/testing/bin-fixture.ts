/**
 * A program for launch-bin's tests, run as a `.ts` entry: prints what its arguments say, in order.
 *   out:TEXT  a stdout line     err:TEXT  a stderr line     wait:MS  a pause
 *   exit:N    exit with N       hang      stay alive, ignoring SIGTERM
 */
for (const step of process.argv.slice(2)) {
  const [verb, arg = ''] = step.split(/:(.*)/s);
  if (verb === 'out') process.stdout.write(`${arg}\n`);
  else if (verb === 'err') process.stderr.write(`${arg}\n`);
  else if (verb === 'wait') await new Promise((r) => setTimeout(r, Number(arg)));
  else if (verb === 'exit') process.exit(Number(arg));
  else if (verb === 'hang') {
    process.on('SIGTERM', () => process.stderr.write('ignoring SIGTERM\n'));
    setInterval(() => undefined, 1_000);
  }
}
