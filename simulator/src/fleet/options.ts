import { MQTT_PROTOCOLS, type MqttProtocol } from '@pifleet/protocol';
import { SimulatorError } from '../errors.js';

export type FleetFault =
  | { readonly kind: 'restart-core' }
  | { readonly kind: 'drop-connections'; readonly fraction: number }
  | { readonly kind: 'sensor-failure'; readonly fraction: number };

/**
 * `--job`: a job rolled out over the connected fleet through CreateJob, followed until it
 * completes or is canceled (its abort criterion included), within `timeoutS`.
 */
export interface FleetJobOptions {
  /** `agent-update`, `config`, `reboot`, or a job document file. */
  readonly job: string;
  /** agent-update: the release's version (the devices start on {@link SIM_INITIAL_VERSION}). */
  readonly releaseVersion: string;
  /** `jobExecutionsRolloutConfig.maximumPerMinute` (IoT's range 1–1000); absent: IoT's default. */
  readonly rolloutPerMinute?: number;
  /** An abort criterion (`ALL` failures, CANCEL) at this percentage; absent: none. */
  readonly abortFailurePercent?: number;
  /** The criterion's `minNumberOfExecutedThings`; default one rollout minute's worth (or the fleet, if smaller). */
  readonly abortMinExecuted?: number;
  /** Percent of devices on which the release fails its health check (rolled back, FAILED). */
  readonly failPercent: number;
  /** Percent of devices that lose power once mid-install (they resume and go on). */
  readonly crashPercent: number;
  /** Percent of devices whose download is corrupt (REJECTED). */
  readonly corruptPercent: number;
  /** How long a new agent has to prove healthy before it is rolled back, ms. */
  readonly healthDeadlineMs: number;
  /** Simulated download + unpack time, ms. */
  readonly installMs: number;
  /** Most seconds to wait for the job to end. */
  readonly timeoutS: number;
}

/** The version every simulated device runs before a rollout. */
export const SIM_INITIAL_VERSION = '1.0.0';

export const JOB_DEFAULTS: Omit<FleetJobOptions, 'job'> = Object.freeze({
  releaseVersion: '1.1.0',
  failPercent: 0,
  crashPercent: 0,
  corruptPercent: 0,
  healthDeadlineMs: 30_000,
  installMs: 2_000,
  timeoutS: 600,
});

export interface FleetOptions {
  readonly devices: number;
  /** Device starts (TLS connects) per second. */
  readonly rampPerSecond: number;
  /** Measured window after the ramp, seconds. */
  readonly durationS: number;
  readonly sensors: 1 | 2 | 3;
  readonly intervalMs: number;
  readonly batchReadings: number;
  readonly batchAgeMs: number;
  /** Desired-state writes per second through the command API (0: none). */
  readonly commandRate: number;
  readonly target: 'local' | 'external' | 'aws';
  /** local: where the in-process core keeps its state (default: a fresh directory); external: the running core's data dir. */
  readonly dataDir?: string;
  /** aws */
  readonly region?: string;
  readonly profile?: string;
  readonly apiUrl?: string;
  /** aws: the MQTT endpoint `host[:port]` instead of DescribeEndpoint's (custom domain, VPC endpoint). */
  readonly mqttEndpoint?: string;
  /** aws: the CA devices trust instead of the bundle's (Amazon Root CA 1). */
  readonly caFile?: string;
  readonly keep: boolean;
  /** Worker threads holding devices; 0 runs them on the main thread. */
  readonly workers: number;
  /** Each device's MQTT client: the device SDK (aws-crt) or mqtt.js. */
  readonly transport: 'crt' | 'mqtt';
  /** The MQTT version every device speaks, with either client: `'5'` (the agent's default) or `'3.1.1'`. */
  readonly protocol: MqttProtocol;
  readonly faults: readonly FleetFault[];
  /** Also run the same fleet against a bare broker (no policy checks, rules, shadows, storage). */
  readonly baseline: boolean;
  readonly outDir: string;
  readonly prefix: string;
  readonly seed: string;
  /** Things whose every reading's latency is read back from the store. */
  readonly latencyThings: number;
  /** How long to wait for stored = published after the devices stopped, seconds. */
  readonly drainTimeoutS: number;
  readonly reconnectMaxMs: number;
  /**
   * local: the quotas the in-process core enforces (`--limits`: IoT Core's, or `off` for rates and
   * counts), with single values from `limitsFile` (`--limits-file`), as `pifleet-local-core` takes them.
   */
  readonly limits: 'aws' | 'off';
  readonly limitsFile?: string;
  /** Each agent's telemetry publishes per second (`publish.maxPerSecond`); default the agent's own. */
  readonly publishPerSecond?: number;
  /** A job rolled out over the fleet after the ramp; the measured window is the rollout. */
  readonly job?: FleetJobOptions;
  /**
   * How the devices get their identities: `in-process` (default: straight into the core's registry
   * and CA, fast) or `claim` (each device provisions itself over MQTT with a claim certificate, as
   * the agent does on first boot; measured).
   */
  readonly provision?: FleetProvisioning;
  /** `claim`: devices provisioning at once (default {@link DEFAULT_PROVISION_CONCURRENCY}). */
  readonly provisionConcurrency?: number;
}

export type FleetProvisioning = 'in-process' | 'claim';
export const FLEET_PROVISIONINGS: readonly FleetProvisioning[] = ['in-process', 'claim'];

/**
 * `--provision claim`'s devices at once. Without `--workers` the devices (TLS, key pairs, CSRs)
 * provision on the thread the core runs on (TLS, CA signatures, SQLite) and keep it busy, so more
 * at once only queues them: 300 devices on 2 cores, `--limits off`, provisioned at the same rate
 * from 2 to 64 at once (18-47/s, as the machine's other load allowed) while each device's p50 grew
 * from 47 ms (2) and 76-135 ms (4) to 455-772 ms (16) and 3.1 s (64).
 */
export const DEFAULT_PROVISION_CONCURRENCY = 4;

export const FLEET_DEFAULTS: FleetOptions = Object.freeze({
  devices: 100,
  rampPerSecond: 200,
  durationS: 60,
  sensors: 1,
  intervalMs: 1_000,
  batchReadings: 10,
  batchAgeMs: 10_000,
  commandRate: 0,
  target: 'local',
  keep: false,
  workers: 0,
  transport: 'crt',
  protocol: '5',
  faults: [],
  baseline: false,
  outDir: 'fleet-report',
  prefix: 'fleet',
  seed: 'pifleet',
  latencyThings: 200,
  drainTimeoutS: 60,
  reconnectMaxMs: 8_000,
  limits: 'aws',
});

/** Parses `restart-core`, `drop-connections:0.1`, `sensor-failure:0.05`. */
export function parseFault(text: string): FleetFault {
  const [kind, arg] = text.split(':');
  const fraction = () => {
    const f = Number(arg ?? '0.1');
    if (!Number.isFinite(f) || f <= 0 || f > 1) {
      throw new SimulatorError('FLEET_USAGE', `fault ${JSON.stringify(text)}: the fraction must be in (0, 1]`);
    }
    return f;
  };
  switch (kind) {
    case 'restart-core':
      if (arg !== undefined) throw new SimulatorError('FLEET_USAGE', 'restart-core takes no argument');
      return { kind: 'restart-core' };
    case 'drop-connections':
      return { kind: 'drop-connections', fraction: fraction() };
    case 'sensor-failure':
      return { kind: 'sensor-failure', fraction: fraction() };
    default:
      throw new SimulatorError(
        'FLEET_USAGE',
        `unknown fault ${JSON.stringify(text)}: use restart-core, drop-connections:F or sensor-failure:F`,
      );
  }
}

/** Fleet options as the flags give them: the choices not yet checked. */
export type FleetFlags = Omit<
  FleetOptions,
  'sensors' | 'target' | 'transport' | 'protocol' | 'limits' | 'provision'
> & {
  readonly provision?: string;
  readonly sensors: number;
  readonly target: string;
  readonly transport: string;
  readonly protocol: string;
  readonly limits: string;
};

/** Every problem with a set of options, as messages naming the flag. */
export function checkOptions(o: FleetFlags): string[] {
  const issues: string[] = [];
  const int = (v: number, flag: string, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) issues.push(`${flag} must be an integer in [${min}, ${max}]`);
  };
  int(o.devices, '--devices', 1, 100_000);
  if (!(o.rampPerSecond > 0)) issues.push('--ramp must be > 0');
  if (!(o.durationS > 0)) issues.push('--duration must be > 0');
  int(o.sensors, '--sensors', 1, 3);
  int(o.intervalMs, '--interval-ms', 100, 86_400_000);
  int(o.batchReadings, '--batch-readings', 1, 10_000);
  int(o.batchAgeMs, '--batch-age-ms', 100, 3_600_000);
  if (!(o.commandRate >= 0)) issues.push('--command-rate must be ≥ 0');
  int(o.workers, '--workers', 0, 64);
  if (o.transport !== 'crt' && o.transport !== 'mqtt') issues.push('--transport must be crt or mqtt');
  if (!MQTT_PROTOCOLS.some((p) => p === o.protocol)) issues.push('--protocol must be 5 or 3.1.1');
  if (o.target === 'external' && !o.dataDir)
    issues.push('--target external needs --data-dir of the running local core');
  if (o.target === 'aws' && !o.region) issues.push('--target aws needs --region');
  if (o.target === 'aws' && !o.apiUrl)
    issues.push('--target aws needs --api-url (the command and query API stage URL)');
  if (o.target !== 'local') {
    for (const f of o.faults) {
      if (f.kind !== 'sensor-failure')
        issues.push(`fault ${f.kind} needs --target local (the core runs in this process)`);
    }
    if (o.baseline) issues.push('--baseline needs --target local');
  }
  if (!/^[a-zA-Z0-9_-]{1,40}$/.test(o.prefix)) issues.push('--prefix: 1–40 of [a-zA-Z0-9_-]');
  if (o.limits !== 'aws' && o.limits !== 'off') issues.push('--limits must be aws or off');
  if (o.target !== 'local' && (o.limits !== 'aws' || o.limitsFile)) {
    issues.push('--limits and --limits-file need --target local (the core runs in this process)');
  }
  // The agent's own bound (publish.maxPerSecond): it keeps the agent under IoT Core's 100/s.
  if (o.publishPerSecond !== undefined) int(o.publishPerSecond, '--publish-rate', 1, 50);
  if (o.job) issues.push(...checkJobOptions(o.job, o));
  issues.push(...checkProvisionOptions(o));
  return issues;
}

/** Every problem with `--provision` and `--provision-concurrency`. */
function checkProvisionOptions(o: FleetFlags): string[] {
  const issues: string[] = [];
  const provision = o.provision ?? 'in-process';
  if (!FLEET_PROVISIONINGS.some((p) => p === provision)) {
    issues.push('--provision must be in-process or claim');
    return issues;
  }
  const c = o.provisionConcurrency;
  if (c !== undefined && !(Number.isInteger(c) && c >= 1 && c <= 1_000))
    issues.push('--provision-concurrency must be an integer in [1, 1000]');
  if (provision !== 'claim') {
    if (c !== undefined) issues.push('--provision-concurrency needs --provision claim');
    return issues;
  }
  // The claimed things are named pi-<serial> by the template, not after the run, so the run's
  // readings are told apart from other runs' only in a store of its own: a fresh core.
  if (o.target !== 'local' || o.dataDir !== undefined) {
    issues.push(
      '--provision claim needs --target local without --data-dir (a fresh core: claimed things are named pi-<serial>, not after the run)',
    );
  }
  return issues;
}

/** Every problem with `--job` and its flags (IoT's ranges for CreateJob's configurations). */
function checkJobOptions(j: FleetJobOptions, o: Pick<FleetFlags, 'target' | 'faults' | 'baseline'>): string[] {
  const issues: string[] = [];
  const percent = (v: number, flag: string) => {
    if (!(v >= 0 && v <= 100)) issues.push(`${flag} must be a percentage in [0, 100]`);
  };
  if (o.target === 'aws')
    issues.push('--job needs --target local or external (the simulated updater trusts a key made for the run)');
  if (o.faults.length > 0) issues.push('--job and --fault do not combine (the rollout is the measured window)');
  if (o.baseline) issues.push('--job and --baseline do not combine (the bare broker has no jobs)');
  if (
    j.rolloutPerMinute !== undefined &&
    !(Number.isInteger(j.rolloutPerMinute) && j.rolloutPerMinute >= 1 && j.rolloutPerMinute <= 1000)
  ) {
    issues.push("--rollout-per-minute must be an integer in [1, 1000] (IoT's maximumPerMinute)");
  }
  if (j.abortFailurePercent !== undefined) {
    percent(j.abortFailurePercent, '--abort-failure-percent');
    // IoT takes at most two digits after the decimal point.
    if (Math.round(j.abortFailurePercent * 100) !== j.abortFailurePercent * 100) {
      issues.push('--abort-failure-percent takes at most two digits after the decimal point');
    }
  }
  if (j.abortMinExecuted !== undefined && !(Number.isInteger(j.abortMinExecuted) && j.abortMinExecuted >= 1)) {
    issues.push('--abort-min-executed must be an integer ≥ 1');
  }
  if (j.abortMinExecuted !== undefined && j.abortFailurePercent === undefined) {
    issues.push('--abort-min-executed needs --abort-failure-percent');
  }
  percent(j.failPercent, '--fail-percent');
  percent(j.crashPercent, '--crash-percent');
  percent(j.corruptPercent, '--corrupt-percent');
  if (j.failPercent + j.crashPercent + j.corruptPercent > 100) {
    issues.push('--fail-percent, --crash-percent and --corrupt-percent together must not exceed 100');
  }
  if (!(Number.isInteger(j.healthDeadlineMs) && j.healthDeadlineMs >= 100))
    issues.push('--health-deadline-ms must be an integer ≥ 100');
  if (!(Number.isInteger(j.installMs) && j.installMs >= 0)) issues.push('--install-ms must be an integer ≥ 0');
  if (!(j.timeoutS > 0)) issues.push('--job-timeout must be > 0');
  return issues;
}
