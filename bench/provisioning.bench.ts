/**
 * `pifleet fleet create` / `fleet delete` throughput against the local IoT Core: 1,000 things with
 * certificates, policy attachments and bundles written to disk, through the real
 * @aws-sdk/client-iot over loopback. Prints a table and writes bench/results/provisioning.json.
 *
 *   npx -y pnpm@10 bench provisioning          # PIFLEET_BENCH_THINGS=N to change the count
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../provisioning/src/cli.js';
import { launchCoreProcess, removeDir, tempDir } from '../testkit/src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const COUNT = Number(process.env.PIFLEET_BENCH_THINGS ?? 1000);
const CONCURRENCY = [16, 4];

interface Summary {
  total: number;
  counts: Record<string, number>;
  failed: number;
  elapsedMs: number;
  thingsPerSecond: number;
}

async function pifleet(argv: string[], cwd: string): Promise<Summary> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    cwd,
    env: {},
  });
  if (code !== 0) throw new Error(`pifleet ${argv.join(' ')} exited ${code}: ${stderr.slice(-500)}`);
  return JSON.parse(stdout) as Summary;
}

const dataDir = tempDir('bench-core');
const work = tempDir('bench-work');
// The core writes its ready line to DATA_DIR/endpoint.json, where `pifleet --local DATA_DIR` finds it.
const core = await launchCoreProcess(dataDir, {
  args: ['--log-level', 'warn'],
  readyWithinMs: 30_000,
  stderr: 'inherit',
});
const results: Record<string, unknown> = { things: COUNT, runs: [] as unknown[] };
try {
  for (const concurrency of CONCURRENCY) {
    const prefix = `bench${concurrency}`;
    const local = ['--local', dataDir, '--json'];
    const create = await pifleet(
      [...local, 'fleet', 'create', '--count', String(COUNT), '--prefix', prefix, '--concurrency', String(concurrency)],
      work,
    );
    const rerun = await pifleet(
      [...local, 'fleet', 'create', '--count', String(COUNT), '--prefix', prefix, '--concurrency', String(concurrency)],
      work,
    );
    const del = await pifleet(
      [...local, 'fleet', 'delete', '--prefix', prefix, '--concurrency', String(concurrency)],
      work,
    );
    if (create.failed > 0 || del.failed > 0 || (rerun.counts.unchanged ?? 0) !== COUNT) {
      throw new Error(`unexpected results: ${JSON.stringify({ create, rerun, del })}`);
    }
    const run = {
      concurrency,
      createThingsPerSecond: create.thingsPerSecond,
      createSeconds: create.elapsedMs / 1000,
      idempotentRerunThingsPerSecond: rerun.thingsPerSecond,
      deleteThingsPerSecond: del.thingsPerSecond,
      deleteSeconds: del.elapsedMs / 1000,
    };
    (results.runs as unknown[]).push(run);
    process.stdout.write(
      `concurrency ${concurrency}: create ${COUNT} in ${run.createSeconds.toFixed(1)} s (${run.createThingsPerSecond} things/s), ` +
        `re-run ${run.idempotentRerunThingsPerSecond} things/s, delete ${run.deleteThingsPerSecond} things/s\n`,
    );
  }
} finally {
  await core.stop('SIGTERM', 3_000);
  removeDir(dataDir);
  removeDir(work);
}
mkdirSync(path.join(here, 'results'), { recursive: true });
writeFileSync(path.join(here, 'results', 'provisioning.json'), `${JSON.stringify(results, null, 2)}\n`);
