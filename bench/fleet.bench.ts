/**
 * Fleet load test: simulated devices (the real agent core over MQTT 3.1.1 + mutual TLS with
 * aws-crt, on simulated hardware) against the in-process local IoT Core, with the bare-broker
 * baseline in the same run, and a smaller fleet under command load. Not a test.
 *
 *   npx tsx --conditions=@pifleet/source bench/fleet.bench.ts [--devices 3000] [--ramp 100] [--duration 60]
 *        [--workers 2] [--transport crt|mqtt] [--command-devices 1000] [--command-rate 20] [--no-baseline]
 *
 * Each device samples one sensor every second and seals a batch of 10 readings (or every 10 s):
 * 10,000 devices ≈ 10,000 readings/s, 1,000 batches/s — issue 9's target, which runs here with
 * `--devices 10000 --ramp 80 --workers 4 --transport mqtt` (≈ 10 min with the baseline). The
 * default stays 3,000 devices on aws-crt, so `pnpm bench` finishes in minutes. Writes
 * bench/results/fleet.json and the
 * HTML reports under bench/results/fleet/. Talks only to 127.0.0.1; a watchdog ends it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FLEET_DEFAULTS, type FleetOptions } from '../simulator/src/fleet/options.js';
import { createFleetRunner, type FleetResult } from '../simulator/src/fleet/runner.js';
import { writeReport } from '../simulator/src/report/report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? Number(process.argv[i + 1]) : fallback;
  return Number.isFinite(v) && v >= 0 ? v : fallback;
};
const DEVICES = arg('devices', 3_000);
const RAMP = arg('ramp', 100);
const DURATION = arg('duration', 60);
const WORKERS = arg('workers', 2);
const COMMAND_DEVICES = arg('command-devices', 1_000);
const COMMAND_RATE = arg('command-rate', 20);
const BASELINE = !process.argv.includes('--no-baseline');
const TRANSPORT: FleetOptions['transport'] =
  process.argv[process.argv.indexOf('--transport') + 1] === 'mqtt' && process.argv.includes('--transport')
    ? 'mqtt'
    : 'crt';

const watchdog = setTimeout(() => {
  process.stderr.write('fleet bench: watchdog fired after 15 minutes\n');
  process.exit(1);
}, 15 * 60_000);
watchdog.unref();

const progress = (line: string, final: boolean) => {
  if (final || /\b\d*0s connected/.test(line)) process.stderr.write(`${line}\n`);
};

const base: FleetOptions = {
  ...FLEET_DEFAULTS,
  sensors: 1,
  intervalMs: 1_000,
  batchReadings: 10,
  batchAgeMs: 10_000,
  workers: WORKERS,
  transport: TRANSPORT,
  prefix: 'bench',
};

async function runOne(label: string, options: FleetOptions): Promise<FleetResult> {
  process.stderr.write(`\n--- ${label}: ${options.devices} devices ---\n`);
  const result = await createFleetRunner({ options, progress }).run();
  await writeReport(result, path.join(here, 'results', 'fleet', label));
  return result;
}

const pickPhase = (r: FleetResult, name: string) => {
  const p = r.phases.find((x) => x.name === name);
  if (!p) return undefined;
  return {
    devices: p.devices,
    deviceHosts: `${p.deviceHosts.mode} × ${p.deviceHosts.hosts}, ${p.deviceHosts.transport}`,
    connected: p.connect.everConnected,
    connectsPerSecond: p.connect.perSecond,
    generated: p.telemetry.generated,
    published: p.telemetry.published,
    stored: p.telemetry.stored,
    lost: p.telemetry.lost,
    readingsPerSecond: p.telemetry.publishedPerS,
    sampleToStoredMs: p.latency.sampleToStoredMs,
    sealedToStoredMs: p.latency.sealedToStoredMs,
    commandRoundTripMs: p.commands?.roundTripMs,
    commandsConverged: p.commands ? `${p.commands.converged}/${p.commands.sent}` : undefined,
    coreCpuPct: p.resources.coreCpuPct,
    fleetCpuPct: p.resources.fleetCpuPct,
    coreRssMaxMB: p.resources.coreRssMaxMB,
    fleetRssMaxMB: p.resources.fleetRssMaxMB,
    coreEventLoopP99Ms: p.resources.coreEventLoop.p99Ms,
    hostEventLoopP99Ms: Math.max(...p.resources.hostEventLoop.map((e) => e.p99Ms)),
  };
};

async function main() {
  const big = await runOne('telemetry', {
    ...base,
    devices: DEVICES,
    rampPerSecond: RAMP,
    durationS: DURATION,
    baseline: BASELINE,
  });
  const cmd = await runOne('commands', {
    ...base,
    devices: COMMAND_DEVICES,
    rampPerSecond: RAMP,
    durationS: Math.min(DURATION, 45),
    commandRate: COMMAND_RATE,
  });
  const result = {
    config: {
      devices: DEVICES,
      ramp: RAMP,
      durationS: DURATION,
      workers: WORKERS,
      transport: TRANSPORT,
      commandDevices: COMMAND_DEVICES,
      commandRate: COMMAND_RATE,
    },
    provisioning: big.provisioning,
    telemetry: {
      localCore: pickPhase(big, 'local-core'),
      bareBroker: pickPhase(big, 'bare-broker'),
      overhead: big.overhead,
    },
    commands: pickPhase(cmd, 'local-core'),
    zeroLoss: big.zeroLoss && cmd.zeroLoss,
  };
  mkdirSync(path.join(here, 'results'), { recursive: true });
  writeFileSync(path.join(here, 'results', 'fleet.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  // aws-crt's native threads can keep the process alive after a clean stop.
  setTimeout(() => process.exit(result.zeroLoss ? 0 : 1), 1_000).unref();
}

main().catch((err: unknown) => {
  process.stderr.write(`fleet bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
