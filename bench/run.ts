/**
 * Runs every benchmark (`bench/*.bench.ts`, or those named on the command line) one after the
 * other in its own process, then prints one table of what they wrote to `bench/results/*.json`
 * and writes the combined results to `bench/results/all.json`.
 *
 *   npx -y pnpm@10 bench              # all
 *   npx -y pnpm@10 bench broker       # only bench/broker.bench.ts
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const resultsDir = path.join(here, 'results');
mkdirSync(resultsDir, { recursive: true });

const wanted = process.argv.slice(2);
const benches = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.slice(0, -'.bench.ts'.length))
  .filter((name) => wanted.length === 0 || wanted.includes(name))
  .sort();

if (benches.length === 0) {
  process.stderr.write(`no benchmark matches ${wanted.join(', ') || '(none found)'}\n`);
  process.exit(64);
}

const machine = {
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${os.platform()} ${os.arch()}`,
};

const failures: string[] = [];
for (const name of benches) {
  process.stderr.write(`\n=== ${name} ===\n`);
  const started = Date.now();
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--conditions=@pifleet/source', path.join(here, `${name}.bench.ts`)],
    { stdio: 'inherit', cwd: path.dirname(here) },
  );
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (run.status !== 0) failures.push(`${name} (exit ${run.status ?? run.signal})`);
  process.stderr.write(`=== ${name}: ${run.status === 0 ? 'ok' : 'FAILED'} in ${seconds}s ===\n`);
}

/** Flattens a result document into `path = value` rows of its numbers. */
function rows(prefix: string, value: unknown, out: [string, number | string][]): void {
  if (typeof value === 'number') out.push([prefix, value]);
  else if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) rows(`${prefix}[${i}]`, v, out);
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) rows(prefix ? `${prefix}.${k}` : k, v, out);
  }
}

const combined: Record<string, unknown> = { machine, ranAt: new Date().toISOString() };
const table: [string, number | string][] = [];
for (const name of benches) {
  const file = path.join(resultsDir, `${name}.json`);
  if (!existsSync(file)) continue;
  const doc = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  combined[name] = doc;
  rows(name, doc, table);
}
writeFileSync(path.join(resultsDir, 'all.json'), `${JSON.stringify(combined, null, 2)}\n`);

const width = Math.max(10, ...table.map(([k]) => k.length));
const fmt = (v: number | string) =>
  typeof v === 'number' ? (Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(3)) : v;
process.stdout.write(
  `\nmachine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}\n`,
);
for (const [k, v] of table) process.stdout.write(`${k.padEnd(width)}  ${fmt(v)}\n`);
if (failures.length > 0) {
  process.stderr.write(`\nfailed: ${failures.join(', ')}\n`);
  process.exit(1);
}
