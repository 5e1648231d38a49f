import { type CommandUnknownOpts, InvalidArgumentError } from '@commander-js/extra-typings';
import { EXIT, MQTT_PROTOCOLS } from '@pifleet/protocol';
import type { SimCliIo } from '../agents/command.js';
import { SimulatorError } from '../errors.js';
import { claimLine } from './claim-result.js';
import {
  checkOptions,
  DEFAULT_PROVISION_CONCURRENCY,
  FLEET_DEFAULTS,
  FLEET_PROVISIONINGS,
  type FleetFault,
  type FleetFlags,
  type FleetOptions,
  JOB_DEFAULTS,
  parseFault,
} from './options.js';
import type { FleetResult, PhaseResult } from './runner.js';

const num = (flag: string) => (v: string) => {
  const n = Number(v);
  // Commander reports it as a usage error (exit 64) naming the option and the value.
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${flag} must be a number`);
  return n;
};

const oneOf = <T>(values: readonly T[], value: unknown): value is T => values.some((v) => v === value);
const SENSORS: readonly FleetOptions['sensors'][] = [1, 2, 3];
const TARGETS: readonly FleetOptions['target'][] = ['local', 'external', 'aws'];
const TRANSPORTS: readonly FleetOptions['transport'][] = ['crt', 'mqtt'];
const LIMITS: readonly FleetOptions['limits'][] = ['aws', 'off'];

/** One-line summary of a result, for stdout. */
export function summaryLines(r: FleetResult): string[] {
  const lines: string[] = [];
  if (r.provisioning?.claim) lines.push(claimLine(r.provisioning.claim));
  for (const p of r.phases) {
    const l = p.latency.sampleToStoredMs;
    const s = p.latency.sealedToStoredMs;
    const w = p.latency.sealedToStoredMeasuredMs;
    lines.push(
      `${p.name} (MQTT ${p.deviceHosts.protocol}, ${p.deviceHosts.transport === 'mqtt' ? 'mqtt.js' : 'aws-crt'}): ${p.connect.everConnected}/${p.devices} connected (${p.connect.perSecond}/s), generated ${p.telemetry.generated}, published ${p.telemetry.published}, stored ${p.telemetry.stored}, lost ${p.telemetry.lost}` +
        (l ? `; sampling→stored p50/p99 ${l.p50}/${l.p99} ms` : '') +
        (s ? `; sealed→stored p50/p99/max ${s.p50}/${s.p99}/${s.max} ms` : '') +
        (w ? ` (sealed in the measured window: p99 ${w.p99} ms)` : '') +
        `; core CPU ${p.resources.coreCpuPct}%, fleet CPU ${p.resources.fleetCpuPct}%` +
        (p.commands?.roundTripMs
          ? `; commands ${p.commands.converged}/${p.commands.sent} converged, round trip p50/p95/p99 ${p.commands.roundTripMs.p50}/${p.commands.roundTripMs.p95}/${p.commands.roundTripMs.p99} ms`
          : ''),
    );
  }
  for (const p of r.phases) lines.push(throttledLine(p));
  for (const p of r.phases) if (p.rollout) lines.push(rolloutLine(p.rollout));
  if (r.overhead) lines.push(`local core CPU ÷ bare broker CPU: ${r.overhead.coreCpuRatio}`);
  lines.push(r.zeroLoss ? 'nothing lost' : 'READINGS LOST');
  return lines;
}

/** A rollout in one line: how the job ended, its executions, and the versions the devices run. */
export function rolloutLine(r: NonNullable<PhaseResult['rollout']>): string {
  const c = r.counts;
  const versions = Object.entries(r.devices.versions)
    .map(([v, n]) => `${v} ×${n}`)
    .join(', ');
  return (
    `job ${r.jobId} (${r.kind}) ${r.ended} after ${r.seconds} s${r.reasonCode ? ` (${r.reasonCode})` : ''}: ` +
    `${r.executed} executed at ${r.executionsPerS}/s; succeeded ${c.succeeded}, failed ${c.failed}, rejected ${c.rejected}, timed out ${c.timedOut}, canceled ${c.canceled}; ` +
    `devices run ${versions}; without a working version: ${r.devices.withoutWorkingVersion}`
  );
}

/** The phase's throttled counts: what the devices were refused for a quota, and what the core counted. */
export function throttledLine(p: PhaseResult): string {
  const d = p.throttled.devices;
  const core = p.throttled.core;
  const byQuota =
    core === 'not available'
      ? 'not available'
      : `${core.total}${
          core.total > 0
            ? ` (${Object.entries(core.byQuota)
                .map(([q, n]) => `${q} ${n}`)
                .join(', ')})`
            : ''
        }`;
  return `${p.name} throttled: devices: publishes ${d.publishes}, unacknowledged ${d.unacknowledged}, connects ${d.connects}, shadow ${d.shadow}; core (limits ${core === 'not available' ? 'n/a' : core.mode}): ${byQuota}`;
}

/** `pifleet-sim fleet`: a load test of simulated devices against the local IoT Core (or another target). */
export function registerFleetCommand(program: CommandUnknownOpts, io: SimCliIo & { readonly isTTY?: boolean }): void {
  const d = FLEET_DEFAULTS;
  program
    .command('fleet')
    .description(
      'run a fleet of simulated devices (the real agent over MQTT 5 or 3.1.1 + mutual TLS) and report what was generated, published, stored and lost',
    )
    .option('--devices <n>', 'number of devices', num('--devices'), d.devices)
    .option('--ramp <n>', 'device connections started per second', num('--ramp'), d.rampPerSecond)
    .option('--duration <s>', 'measured seconds after the ramp', num('--duration'), d.durationS)
    .option('--sensors <n>', 'sensors per device: 1 bme280, 2 + bh1750, 3 + ads1115', num('--sensors'), d.sensors)
    .option('--interval-ms <ms>', 'sampling interval of every sensor', num('--interval-ms'), d.intervalMs)
    .option('--batch-readings <n>', 'seal a batch at this many readings', num('--batch-readings'), d.batchReadings)
    .option('--batch-age-ms <ms>', 'seal a batch at this age', num('--batch-age-ms'), d.batchAgeMs)
    .option('--command-rate <n>', 'desired-state writes per second through the command API', num('--command-rate'), 0)
    .option('--target <t>', 'local (in-process core) | external (a running core: --data-dir) | aws', d.target)
    .option('--data-dir <dir>', 'local: the core state dir (default a fresh tmpfs dir); external: the running core’s')
    .option('--region <r>', 'aws: region')
    .option('--profile <p>', 'aws: credentials profile')
    .option('--api-url <url>', 'aws: the command API base URL (API Gateway stage)')
    .option('--mqtt-endpoint <host[:port]>', 'aws: connect devices here instead of the DescribeEndpoint address')
    .option('--ca-file <file>', 'aws: the CA devices trust instead of Amazon Root CA 1')
    .option('--keep', 'keep the things, certificates and data dir afterwards', false)
    .option('--workers <k>', 'device-host processes (0: devices in this process)', num('--workers'), d.workers)
    .option(
      '--transport <t>',
      "each device's MQTT client: crt (the device SDK, as on a Pi) | mqtt (mqtt.js, ~8× less CPU per connection)",
      d.transport,
    )
    .option('--protocol <v>', 'the MQTT version every device speaks, with either client: 5 | 3.1.1', d.protocol)
    .option(
      '--fault <spec>',
      'restart-core | drop-connections:F | sensor-failure:F (repeatable; injected mid-run)',
      (v: string, acc: FleetFault[]) => [...acc, parseFault(v)],
      [],
    )
    .option('--baseline', 'also run the same fleet against a bare broker (no policies, rules, shadows, storage)', false)
    .option('--out <dir>', 'where fleet-result.json and fleet-report.html go', d.outDir)
    .option('--prefix <p>', 'thing name prefix', d.prefix)
    .option('--seed <s>', 'environment seed (device i gets SEED-i)', d.seed)
    .option(
      '--latency-things <n>',
      'things whose every reading is timed from the store',
      num('--latency-things'),
      d.latencyThings,
    )
    .option(
      '--drain-timeout <s>',
      'seconds to wait for stored = published at the end',
      num('--drain-timeout'),
      d.drainTimeoutS,
    )
    .option('--limits <mode>', "local: IoT Core's quotas enforced (aws) or rates and counts lifted (off)", d.limits)
    .option('--limits-file <file>', 'local: JSON object of quota name -> value (as pifleet-local-core --limits-file)')
    .option(
      '--publish-rate <n>',
      "each agent's telemetry publishes per second (1-50; default the agent's 10)",
      num('--publish-rate'),
    )
    .option(
      '--job <type|file>',
      'roll a job out over the connected fleet: agent-update | config | reboot | a job document file (the measured window is the rollout)',
    )
    .option('--release-version <v>', 'agent-update: the release version', JOB_DEFAULTS.releaseVersion)
    .option('--rollout-per-minute <n>', "job: maximumPerMinute (1-1000; default IoT's)", num('--rollout-per-minute'))
    .option(
      '--abort-failure-percent <p>',
      'job: cancel it when this % of executed things failed, were rejected or timed out',
      num('--abort-failure-percent'),
    )
    .option(
      '--abort-min-executed <n>',
      "job: the abort's minNumberOfExecutedThings (default one rollout minute's worth)",
      num('--abort-min-executed'),
    )
    .option(
      '--fail-percent <f>',
      'agent-update: % of devices whose new release fails its health check (rolled back)',
      num('--fail-percent'),
      JOB_DEFAULTS.failPercent,
    )
    .option(
      '--crash-percent <f>',
      'agent-update: % of devices that lose power once mid-install (resumed)',
      num('--crash-percent'),
      JOB_DEFAULTS.crashPercent,
    )
    .option(
      '--corrupt-percent <f>',
      'agent-update: % of devices whose download is corrupt (rejected)',
      num('--corrupt-percent'),
      JOB_DEFAULTS.corruptPercent,
    )
    .option(
      '--health-deadline-ms <ms>',
      'agent-update: how long a new agent has to prove healthy',
      num('--health-deadline-ms'),
      JOB_DEFAULTS.healthDeadlineMs,
    )
    .option(
      '--install-ms <ms>',
      'agent-update: simulated download + unpack time',
      num('--install-ms'),
      JOB_DEFAULTS.installMs,
    )
    .option('--job-timeout <s>', 'job: most seconds to wait for it to end', num('--job-timeout'), JOB_DEFAULTS.timeoutS)
    .option(
      '--provision <how>',
      'in-process (default: straight into the core, fast) | claim (every device provisions itself over MQTT with a claim certificate, measured; local target)',
      'in-process',
    )
    .option(
      '--provision-concurrency <n>',
      `claim: devices provisioning at once (default ${DEFAULT_PROVISION_CONCURRENCY})`,
      num('--provision-concurrency'),
    )
    .option('--json', 'print the JSON result on stdout instead of the summary', false)
    .action(async (raw) => {
      const flags: FleetFlags = {
        ...d,
        devices: raw.devices,
        rampPerSecond: raw.ramp,
        durationS: raw.duration,
        sensors: raw.sensors,
        intervalMs: raw.intervalMs,
        batchReadings: raw.batchReadings,
        batchAgeMs: raw.batchAgeMs,
        commandRate: raw.commandRate,
        target: raw.target,
        ...(raw.dataDir ? { dataDir: raw.dataDir } : {}),
        ...(raw.region ? { region: raw.region } : {}),
        ...(raw.profile ? { profile: raw.profile } : {}),
        ...(raw.apiUrl ? { apiUrl: raw.apiUrl } : {}),
        ...(raw.mqttEndpoint ? { mqttEndpoint: raw.mqttEndpoint } : {}),
        ...(raw.caFile ? { caFile: raw.caFile } : {}),
        keep: raw.keep,
        workers: raw.workers,
        transport: raw.transport,
        protocol: raw.protocol,
        faults: raw.fault,
        baseline: raw.baseline,
        outDir: raw.out,
        prefix: raw.prefix,
        seed: raw.seed,
        latencyThings: raw.latencyThings,
        drainTimeoutS: raw.drainTimeout,
        limits: raw.limits,
        ...(raw.limitsFile ? { limitsFile: raw.limitsFile } : {}),
        ...(raw.publishRate !== undefined ? { publishPerSecond: raw.publishRate } : {}),
        provision: raw.provision,
        ...(raw.provisionConcurrency !== undefined ? { provisionConcurrency: raw.provisionConcurrency } : {}),
        ...(raw.job !== undefined
          ? {
              job: {
                job: raw.job,
                releaseVersion: raw.releaseVersion,
                ...(raw.rolloutPerMinute !== undefined ? { rolloutPerMinute: raw.rolloutPerMinute } : {}),
                ...(raw.abortFailurePercent !== undefined ? { abortFailurePercent: raw.abortFailurePercent } : {}),
                ...(raw.abortMinExecuted !== undefined ? { abortMinExecuted: raw.abortMinExecuted } : {}),
                failPercent: raw.failPercent,
                crashPercent: raw.crashPercent,
                corruptPercent: raw.corruptPercent,
                healthDeadlineMs: raw.healthDeadlineMs,
                installMs: raw.installMs,
                timeoutS: raw.jobTimeout,
              },
            }
          : {}),
      };
      const { sensors, target, transport, protocol, limits, provision } = flags;
      const issues = [
        ...(oneOf(TARGETS, target) ? [] : ['--target must be local, external or aws']),
        ...checkOptions(flags),
      ];
      // checkOptions reports a bad choice too; the oneOf checks narrow the types.
      if (
        issues.length > 0 ||
        !oneOf(SENSORS, sensors) ||
        !oneOf(TARGETS, target) ||
        !oneOf(TRANSPORTS, transport) ||
        !oneOf(MQTT_PROTOCOLS, protocol) ||
        !oneOf(LIMITS, limits) ||
        !oneOf(FLEET_PROVISIONINGS, provision)
      ) {
        for (const i of issues) io.stderr(`pifleet-sim fleet: ${i}\n`);
        io.exit(EXIT.usage);
        return;
      }
      const options: FleetOptions = { ...flags, sensors, target, transport, protocol, limits, provision };
      // A live progress line on a terminal; plain lines every 5 s otherwise.
      const tty = io.isTTY ?? process.stderr.isTTY === true;
      let live = false;
      const progress = (line: string, final: boolean) => {
        if (tty) {
          io.stderr(`\r\x1b[2K${line}${final ? '\n' : ''}`);
          live = !final;
        } else if (final || /\b\d*[05]s connected/.test(line)) io.stderr(`${line}\n`);
      };
      const stop = new AbortController();
      void io.waitForStop().then(() => stop.abort());
      try {
        // Loaded when the command runs: the runner pulls in the local core and the AWS SDK, which
        // would otherwise add ~2 s of CPU to every start of `pifleet-sim agent` and `demo`.
        const [{ createFleetRunner }, { writeReport }] = await Promise.all([
          import('./runner.js'),
          import('../report/report.js'),
        ]);
        const result = await createFleetRunner({ options, progress, signal: stop.signal }).run();
        if (live) io.stderr('\n');
        const files = await writeReport(result, options.outDir);
        if (raw.json) io.stdout(`${JSON.stringify(result)}\n`);
        else io.stdout(`${[...summaryLines(result), `report: ${files.html}`, `result: ${files.json}`].join('\n')}\n`);
        // A rollout that leaves a device without a working agent fails the run, as lost readings do.
        const stranded = result.phases.some((p) => (p.rollout?.devices.withoutWorkingVersion ?? 0) > 0);
        io.exit(result.zeroLoss && !stranded ? EXIT.ok : EXIT.unexpected);
      } catch (err) {
        if (live) io.stderr('\n');
        io.stderr(`pifleet-sim fleet: ${(err as Error).message}\n`);
        io.exit(err instanceof SimulatorError && err.code === 'FLEET_USAGE' ? EXIT.usage : EXIT.unavailable);
      }
    });
}
