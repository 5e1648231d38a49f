/**
 * `pifleet fleet create` / `fleet delete` throughput against the local IoT Core: 1,000 things with
 * certificates, policy attachments and bundles written to disk, through the real
 * @aws-sdk/client-iot over loopback. Prints a table and writes bench/results/provisioning.json.
 *
 *   npx -y pnpm@10 bench provisioning          # PIFLEET_BENCH_THINGS=N to change the count
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeIssues, type LocalEndpoint, parseLocalEndpoint } from '../protocol/src/index.js';
import { runCli } from '../provisioning/src/cli.js';

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

async function startCore(dataDir: string): Promise<{ child: ChildProcess; info: LocalEndpoint }> {
  const child = spawn(
    process.execPath,
    [
      path.join(here, '../cloud/bin/pifleet-local-core.js'),
      '--data-dir',
      dataDir,
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const info = await new Promise<LocalEndpoint>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('local core not ready in 30 s')), 30_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        // The ready line, which the core has also written to DATA_DIR/endpoint.json for `--local`.
        const ready = parseLocalEndpoint(out.slice(0, nl));
        if (ready.ok) resolve(ready.value);
        else reject(new Error(`not a ready line: ${describeIssues(ready.issues)}`));
      }
    });
    child.once('exit', (code) => reject(new Error(`local core exited ${code}`)));
  });
  return { child, info };
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

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-bench-core-'));
const work = mkdtempSync(path.join(os.tmpdir(), 'pifleet-bench-work-'));
const { child } = await startCore(dataDir);
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
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await new Promise((r) => child.once('exit', r));
  clearTimeout(killer);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
mkdirSync(path.join(here, 'results'), { recursive: true });
writeFileSync(path.join(here, 'results', 'provisioning.json'), `${JSON.stringify(results, null, 2)}\n`);
