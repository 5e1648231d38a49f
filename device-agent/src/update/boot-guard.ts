import { parseArgs } from 'node:util';
import { runBootGuard } from './guard.js';

/**
 * `ExecStartPre=` of the unit: `node <factory>/dist/update/boot-guard.js --state-dir <dir>
 * --factory-dir <dir>`. It runs from the factory install, imports only the guard and `node:`
 * modules, and always exits 0: a guard that failed must not keep the service from starting (the
 * unit also prefixes it with `-`), since `current` then still names whatever ran last.
 */
async function main(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: { 'state-dir': { type: 'string' }, 'factory-dir': { type: 'string' } },
    strict: true,
  });
  const stateDir = values['state-dir'];
  const factoryDir = values['factory-dir'];
  if (!stateDir || !factoryDir) throw new Error('usage: boot-guard --state-dir DIR --factory-dir DIR');
  const line = (msg: string, data: Readonly<Record<string, unknown>> = {}) =>
    process.stderr.write(`${JSON.stringify({ component: 'boot-guard', msg, ...data })}\n`);
  const result = await runBootGuard({ stateDir, factoryDir, log: line });
  line('boot guard done', { current: result.current, actions: result.actions });
}

main(process.argv.slice(2)).then(
  () => {
    process.exitCode = 0;
  },
  (err: unknown) => {
    process.stderr.write(
      `${JSON.stringify({ component: 'boot-guard', msg: 'boot guard failed', err: err instanceof Error ? err.message : String(err) })}\n`,
    );
    process.exitCode = 0;
  },
);
