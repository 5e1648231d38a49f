/**
 * Agent runtime benchmark (issues 6, 21): one agent AS DEPLOYED ON A PI — protocol and device-agent
 * built to dist/ with tsc, then the README's `pnpm deploy --prod --offline` line into a temp
 * directory, run by plain node (no tsx, no workspace; with the systemd unit's NODE_OPTIONS, then
 * without) — sampling 5 sensors at 1 Hz
 * (BME280, BH1750, ADS1115 on I2C, two digital inputs) for 60 s against the local IoT Core in this
 * process: SQLite outbox, aws-iot-device-sdk-v2 over mutual TLS, shadow sync, jobs.
 *
 * This machine has no GPIO or I2C, and the deployed tree has no simulator. So the deployed
 * `pifleet-agent run` (dist/main.js's runCli, exactly what bin/pifleet-agent.js calls) runs through
 * a small launcher written into the deployed tree that passes it the simulator's chips as its
 * hardware ports (`hardware: "simulated"`): the simulator's hardware/ and env/ files, transpiled
 * here to JS (a few hundred lines, no dependencies beyond the agent's own dist). What differs from
 * a Pi: those chip models instead of onoff/i2c-bus and the kernel (on a Pi: two small native
 * modules and ioctl/sysfs calls instead of JS register maps), and x86-64 instead of arm64.
 *
 * Measures, from /proc: RSS (max over the whole run, at the end) and its breakdown (file-backed:
 * the node binary's pages, aws-crt's and SQLite's native libraries; anonymous: V8's heap and
 * malloc), CPU % of one core over the steady state, and from the core's side: spawn → connected
 * (presence event), → first message from the agent (the broker acknowledges it at once: the first
 * PUBACK), → first telemetry batch (its age limit, 10 s by default, included), and readings arrived.
 * The agent's own view (process.memoryUsage, V8 heap spaces) is asked for with SIGUSR2 before
 * stopping it.
 *
 *   npx -y pnpm@10 bench agent-runtime
 *   BENCH_SECONDS=10                     a quick run
 *   BENCH_NODE_FLAGS="--max-semi-space-size=1; --v8-pool-size=1 MALLOC_ARENA_MAX=2"   node flags
 *                                        (and NAME=VALUE environment) for the agent, each variant
 *                                        measured after the plain run, side by side
 *   BENCH_BASELINE_DIR=/tmp/old-deploy   also measure an earlier deployed tree first, in the same run
 *                                        (BENCH_BASELINE_LABEL names it in the results)
 * Writes bench/results/agent-runtime.json. Talks only to 127.0.0.1.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { AGENT_NODE_OPTIONS, appTopicFilters, presenceTopics } from '../protocol/src/index.js';
import { SIM_LINES, simulatedConfigInput } from '../simulator/src/agents/simulated-device.js';
import { provisionDevice, REPO, removeDir, startCore, tempDir } from '../testkit/src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const seconds = Number(process.env.BENCH_SECONDS ?? 60);
/**
 * Variants of node flags, `;` between variants: each is measured after the plain run, in the same
 * run. A word NAME=VALUE is set in the agent's environment instead (MALLOC_ARENA_MAX=2).
 */
const flagVariants = (process.env.BENCH_NODE_FLAGS ?? '')
  .split(';')
  .map((v) => v.split(/\s+/).filter((f) => f !== ''))
  .filter((v) => v.length > 0);
const baselineDir = process.env.BENCH_BASELINE_DIR;
const dir = tempDir('agent-runtime-bench');
const CLK_TCK = 100; // USER_HZ on Linux

// ── build and deploy, as the README's "Installing on a Raspberry Pi" does ─────────────────────────

function step(what: string, command: string, args: string[], cwd: string): void {
  const started = Date.now();
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  process.stderr.write(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

/** The README's deploy command line (the one test/e2e/deploy.test.ts runs), with our output directory. */
function readmeDeployWords(): string[] {
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const line = readme.split('\n').find((l) => l.startsWith('npx ') && / deploy .*--prod/.test(l));
  if (!line) throw new Error('README shows no pnpm deploy command');
  return line.split(/\s+/).filter((w) => w !== '');
}

const tsc = path.join(REPO, 'node_modules/typescript/bin/tsc');
for (const pkg of ['protocol', 'device-agent']) {
  step(`build ${pkg}`, process.execPath, [tsc, '-p', 'tsconfig.build.json'], path.join(REPO, pkg));
}
const deployed = path.join(dir, 'pifleet-agent');
const [npx, ...deployArgs] = readmeDeployWords();
step('pnpm deploy', npx as string, [...deployArgs.slice(0, -1), deployed], REPO);

/** Where the launcher and the transpiled simulator chips go inside a deployed tree. */
const SIM_DIR = 'bench-sim';

/**
 * The simulator's chips (hardware/, env/) as JS inside a deployed tree, and the launcher. The few
 * values they import from `@pifleet/device-agent` come from the same dist/ files the agent loads,
 * so their error classes are the agent's (its drivers test `instanceof`), and nothing else of the
 * package's index is loaded. A name missing here stops the launcher with Node's "does not provide
 * an export" error: nothing silently different.
 */
function addSimulatedChips(tree: string): string {
  const out = path.join(tree, SIM_DIR);
  rmSync(out, { recursive: true, force: true });
  const src = path.join(REPO, 'simulator/src');
  for (const sub of ['hardware', 'env']) {
    for (const rel of readdirSync(path.join(src, sub), { recursive: true, encoding: 'utf8' })) {
      const file = path.join(src, sub, rel);
      if (!rel.endsWith('.ts') || statSync(file).isDirectory()) continue;
      const js = ts.transpileModule(readFileSync(file, 'utf8'), {
        compilerOptions: {
          module: ts.ModuleKind.ESNext,
          target: ts.ScriptTarget.ES2023,
          verbatimModuleSyntax: true,
        },
      }).outputText;
      const target = path.join(out, sub, rel.replace(/\.ts$/, '.js'));
      const shim = path.relative(path.dirname(target), path.join(out, 'agent-exports.js'));
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, js.replaceAll("'@pifleet/device-agent'", `'${shim.startsWith('.') ? shim : `./${shim}`}'`));
    }
  }
  writeFileSync(
    path.join(out, 'agent-exports.js'),
    [
      "export { GpioError, I2cError } from '../dist/hardware/errors.js';",
      "export { checkI2cArgs, toI2cError } from '../dist/hardware/i2c-errors.js';",
      "export { encodeBme280Calibration } from '../dist/drivers/bme280-compensation.js';",
      '',
    ].join('\n'),
  );
  writeFileSync(
    path.join(out, 'agent.js'),
    `// The deployed \`pifleet-agent run\` (what bin/pifleet-agent.js runs) on the simulator's chips.
import { writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import { runCli } from '../dist/main.js';
import { createSystemClock } from '../dist/ports/clock.js';
import { exitWhenFlushed } from '../dist/process-exit.js';
import { createSimulatedHardware } from './hardware/simulated-device.js';

const hardware = createSimulatedHardware({ seed: 'bench', clock: createSystemClock() });
hardware.gpio.wire(${SIM_LINES.relay}, ${SIM_LINES.relayFeedback});
process.on('SIGUSR2', () => {
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
  writeFileSync(process.env.BENCH_MEMORY_FILE, JSON.stringify({ memoryUsage: process.memoryUsage(), heap: v8.getHeapStatistics(), spaces, code: v8.getHeapCodeStatistics() }));
});
const code = await runCli(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
  launcher: process.argv[1],
  hardwarePorts: hardware.ports,
});
exitWhenFlushed(code);
`,
  );
  return path.join(out, 'agent.js');
}

const trees: { label: string; launcher: string; flags: string[]; nodeOptions?: string }[] = [];
const launcher = addSimulatedChips(deployed);
// As the systemd unit runs it (its NODE_OPTIONS), then as plain `node` runs it, side by side.
trees.push({ label: "deployed, the unit's NODE_OPTIONS", launcher, flags: [], nodeOptions: AGENT_NODE_OPTIONS });
trees.push({ label: 'deployed, no NODE_OPTIONS', launcher, flags: [] });
for (const flags of flagVariants) trees.push({ label: `deployed ${flags.join(' ')}`, launcher, flags });
if (baselineDir) {
  // An earlier deploy, copied so this run's chips and launcher go into it without touching it.
  const copy = path.join(dir, 'baseline');
  cpSync(baselineDir, copy, { recursive: true, verbatimSymlinks: true });
  trees.unshift({
    label: process.env.BENCH_BASELINE_LABEL ?? 'baseline',
    launcher: addSimulatedChips(copy),
    flags: [],
  });
}

// ── measuring one agent process ────────────────────────────────────────────────────────────────

function procStat(pid: number): { cpuTicks: number; rssKiB: number; anonKiB: number; fileKiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuTicks = Number(fields[11]) + Number(fields[12]); // utime + stime
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { cpuTicks, rssKiB: kib('VmRSS'), anonKiB: kib('RssAnon'), fileKiB: kib('RssFile') + kib('RssShmem') };
}

/** RSS by mapping, grouped: the node binary, each native addon, other libraries, anonymous memory. */
function rssByMapping(pid: number): Record<string, number> {
  const groups: Record<string, number> = {};
  let group = 'anonymous (V8 heap, malloc, stacks)';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const name = m[1] ?? '';
      if (name === '' || name.startsWith('[')) group = 'anonymous (V8 heap, malloc, stacks)';
      else if (name === process.execPath || name.endsWith('/bin/node')) group = 'node binary';
      else if (name.includes('aws-crt')) group = 'aws-crt native';
      else if (name.includes('better-sqlite3') || name.includes('better_sqlite3')) group = 'better-sqlite3 native';
      else if (name.endsWith('.db') || name.endsWith('.db-wal') || name.endsWith('.db-shm')) group = 'outbox files';
      else group = 'other files (libc, libstdc++, …)';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) groups[group] = (groups[group] ?? 0) + Number(rss[1]);
  }
  return Object.fromEntries(Object.entries(groups).map(([k, v]) => [k, mib(v)]));
}

const mib = (kib: number) => Math.round((kib / 1024) * 10) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const core = await startCore(path.join(dir, 'core'));
const bus = core.core.services.broker.bus;
/** Per thing: when it connected, sent its first message, its first telemetry. */
const firsts = new Map<string, { connected?: number; message?: number; telemetry?: number }>();
const seen = (thing: string | undefined, key: 'connected' | 'message' | 'telemetry') => {
  if (!thing) return;
  const f = firsts.get(thing) ?? {};
  f[key] ??= Date.now();
  firsts.set(thing, f);
};
await bus.subscribe(presenceTopics.connectedFilter, (m) => seen(m.topic.split('/').pop(), 'connected'));
await bus.subscribe('$aws/things/+/shadow/#', (m) => seen(m.clientId, 'message'));
await bus.subscribe('#', (m) => seen(m.clientId, 'message'));
let wireBytes = 0;
await bus.subscribe(appTopicFilters.telemetry, (m) => {
  wireBytes += m.payload.length;
  seen(m.clientId, 'message');
  seen(m.clientId, 'telemetry');
});

async function measure(tree: (typeof trees)[number], index: number) {
  const thing = `bench-agent-${String(index + 1).padStart(2, '0')}`;
  const files = await provisionDevice(core, thing, dir);
  const configFile = path.join(dir, `${thing}.json`);
  writeFileSync(
    configFile,
    JSON.stringify(
      simulatedConfigInput({
        ...files,
        endpoint: core.info.mqtt.host,
        port: core.info.mqtt.port,
        samplingMs: 1_000,
        sensors: 'bench',
        relay: true,
        outboxPath: path.join(dir, thing, 'outbox.db'),
        // The Pi default log level (info): what a deployed agent logs, to a pipe here as to journald.
      }),
    ),
  );
  const memoryFile = path.join(dir, `${thing}-memory.json`);
  let stderr = '';
  const t0 = Date.now();
  // Only what a Pi's service has: no workspace conditions, and no NODE_OPTIONS (tsx, vitest) but
  // the unit's own.
  const isEnv = (word: string) => /^[A-Z_][A-Z0-9_]*=/.test(word);
  const flags = tree.flags.filter((f) => !isEnv(f));
  const extraEnv = Object.fromEntries(
    tree.flags.filter(isEnv).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]),
  );
  const child = spawn(process.execPath, [...flags, tree.launcher, 'run', '--config', configFile], {
    cwd: '/',
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      BENCH_MEMORY_FILE: memoryFile,
      ...(tree.nodeOptions === undefined ? {} : { NODE_OPTIONS: tree.nodeOptions }),
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logBytes = 0;
  child.stdout.on('data', (b: Buffer) => (logBytes += b.length));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const pid = child.pid ?? 0;
  const rss: number[] = [];
  const sample = () => {
    try {
      rss.push(procStat(pid).rssKiB);
    } catch {
      // exited
    }
  };
  // Cold start: until the first telemetry batch, sampling RSS often (the peak is in the start).
  while (firsts.get(thing)?.telemetry === undefined) {
    if (Date.now() - t0 > 60_000 || child.exitCode !== null) {
      throw new Error(`${tree.label}: no telemetry from the agent (exit ${child.exitCode}):\n${stderr}`);
    }
    sample();
    await sleep(100);
  }
  const start = procStat(pid);
  const startReadings = core.telemetry.readings(thing);
  const startBatches = core.telemetry.unique(thing).length;
  const startWire = wireBytes;
  const startedAt = Date.now();
  while (Date.now() - startedAt < seconds * 1000) {
    await sleep(1000);
    sample();
  }
  const end = procStat(pid);
  const wallS = (Date.now() - startedAt) / 1000;
  const breakdown = rssByMapping(pid);
  child.kill('SIGUSR2');
  for (let i = 0; i < 50 && !existsSync(memoryFile); i++) await sleep(100);
  const inside = existsSync(memoryFile)
    ? (JSON.parse(readFileSync(memoryFile, 'utf8')) as {
        memoryUsage: NodeJS.MemoryUsage;
        heap: { total_heap_size: number; used_heap_size: number };
        spaces: Record<string, { size: number; used: number }>;
        code: { code_and_metadata_size: number; bytecode_and_metadata_size: number };
      })
    : undefined;
  const readings = core.telemetry.readings(thing) - startReadings;
  const batches = core.telemetry.unique(thing).length - startBatches;
  child.kill('SIGTERM');
  const exitCode = await exited;
  const f = firsts.get(thing) ?? {};
  const b = (n: number) => mib(n / 1024);
  return {
    process: tree.label,
    nodeFlags: tree.flags,
    nodeOptions: tree.nodeOptions ?? null,
    coldStartMs: {
      toConnected: f.connected === undefined ? null : f.connected - t0,
      toFirstPuback: f.message === undefined ? null : f.message - t0,
      toFirstTelemetry: f.telemetry === undefined ? null : (f.telemetry as number) - t0,
    },
    rssMiB: {
      max: mib(Math.max(...rss)),
      end: mib(end.rssKiB),
      endAnonymous: mib(end.anonKiB),
      endFileBacked: mib(end.fileKiB),
      byMapping: breakdown,
    },
    agentView: inside
      ? {
          heapUsedMiB: b(inside.memoryUsage.heapUsed),
          heapTotalMiB: b(inside.memoryUsage.heapTotal),
          externalMiB: b(inside.memoryUsage.external),
          arrayBuffersMiB: b(inside.memoryUsage.arrayBuffers),
          heapSpacesMiB: Object.fromEntries(Object.entries(inside.spaces).map(([k, v]) => [k, b(v.size)])),
          codeMiB: b(inside.code.code_and_metadata_size),
          bytecodeMiB: b(inside.code.bytecode_and_metadata_size),
        }
      : null,
    cpu: {
      percentOfOneCore: Math.round(((end.cpuTicks - start.cpuTicks) / CLK_TCK / wallS) * 1000) / 10,
      msPerSecond: Math.round(((end.cpuTicks - start.cpuTicks) * (1000 / CLK_TCK)) / wallS),
      startupCpuMs: start.cpuTicks * (1000 / CLK_TCK),
    },
    delivered: {
      readings,
      readingsPerS: Math.round((readings / wallS) * 10) / 10,
      batches,
      payloadBytesPerReading: readings > 0 ? Math.round(((wireBytes - startWire) / readings) * 10) / 10 : null,
      logBytesPerS: Math.round(logBytes / ((Date.now() - t0) / 1000)),
    },
    cleanExit: exitCode === 0,
  };
}

const runs: Awaited<ReturnType<typeof measure>>[] = [];
try {
  for (const [i, tree] of trees.entries()) {
    process.stderr.write(`measuring ${tree.label} for ${seconds} s\n`);
    runs.push(await measure(tree, i));
  }
} finally {
  await core.stop();
  removeDir(dir);
}

const result = {
  setup: {
    sensors: 5,
    samplingHz: 1,
    seconds,
    process:
      'the deployed agent (tsc-built dist/ + pnpm deploy --prod, plain node): `pifleet-agent run` on simulated I2C/GPIO chips',
    node: process.version,
    mqtt: '5 over mutual TLS (aws-crt), QoS 1',
    outbox: 'SQLite WAL, synchronous=FULL',
    batch: 'defaults: maxReadings 500, maxAgeMs 10000 (the first batch leaves 10 s after the first reading)',
    logLevel: 'info (the default)',
    note: 'figures measured on a shared machine: compare runs of one result file, not across machines',
  },
  runs,
};
mkdirSync(path.join(here, 'results'), { recursive: true });
writeFileSync(path.join(here, 'results', 'agent-runtime.json'), `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
if (runs.some((r) => !r.cleanExit)) process.exitCode = 1;
