import type { JobExecutionCounts, MqttProtocol } from '@pifleet/protocol';
import type { ClaimProvisioningResult } from './claim-result.js';
import type { CommandLoadResult } from './command-load.js';
import type { HostSnapshot } from './host.js';
import type { Histogram, Quantiles } from './metrics.js';
import type { FleetFault, FleetOptions } from './options.js';
import type { HostPool } from './pool.js';

/**
 * What a fleet run returns and writes as `fleet-result.json`: the shape the report
 * (`src/report/report.ts`) and the bench read. Bump FLEET_RESULT_VERSION when it changes.
 */
export const FLEET_RESULT_VERSION = 5;

/** One sample per second of a phase. */
export interface SeriesPoint {
  /** Seconds since the phase started. */
  readonly t: number;
  readonly connected: number;
  readonly generatedPerS: number;
  readonly publishedPerS: number;
  /** Readings stored in that second (filled in from the store after the run). */
  storedPerS: number;
  /** Percent of one core over the last second: the main thread (local IoT Core) and every other thread (fleet). */
  readonly coreCpuPct: number;
  readonly fleetCpuPct: number;
  /** RSS of this process (the local IoT Core, plus the devices when inline) and of the device-host processes. */
  readonly rssMB: number;
  readonly fleetRssMB: number;
}

export interface FaultOutcome {
  readonly kind: FleetFault['kind'];
  /** Seconds since the phase started. */
  readonly atS: number;
  readonly affected: number;
  readonly detail: Readonly<Record<string, unknown>>;
}

export interface PhaseResult {
  readonly name: 'local-core' | 'bare-broker' | 'external-core' | 'aws';
  readonly deviceHosts: {
    readonly mode: HostPool['mode'];
    readonly hosts: number;
    /** Each device's MQTT client: `crt` (aws-iot-device-sdk-v2) or `mqtt` (mqtt.js). */
    readonly transport: 'crt' | 'mqtt';
    /** The MQTT version the devices spoke (version 2 on). */
    readonly protocol: MqttProtocol;
  };
  readonly devices: number;
  readonly connect: {
    readonly everConnected: number;
    readonly connectedAtEnd: number;
    readonly maxConnected: number;
    /** First starts → last first CONNACK. */
    readonly seconds: number;
    readonly perSecond: number;
    readonly firstConnectMeanMs: number;
    readonly firstConnectMaxMs: number;
    readonly connectFailures: number;
    readonly reconnects: number;
    readonly interruptions: number;
  };
  readonly telemetry: {
    /**
     * Readings sampled by the agents (agent.status().readings, summed), from the ramp to the end of
     * the measured window: the devices stop sampling there and deliver their backlog before they stop.
     */
    readonly generated: number;
    /** Readings in batches the broker acknowledged (PUBACK). */
    readonly published: number;
    readonly publishedBatches: number;
    /** Readings read back from the telemetry store (deduplicated there); bare broker: delivered to its subscriber. */
    readonly stored: number;
    readonly storedBatches: number;
    readonly storedVia: string;
    /** generated − stored. */
    readonly lost: number;
    /** Of the lost: dropped by outbox bounds, and never acknowledged before the devices stopped. */
    readonly droppedByOutbox: number;
    readonly unsentAtStop: number;
    /** Readings per second over the measured window. */
    readonly generatedPerS: number;
    readonly publishedPerS: number;
    readonly publishedBytes: number;
  };
  readonly latency: {
    readonly sampleToStoredMs: Quantiles | undefined;
    readonly sealedToStoredMs: Quantiles | undefined;
    /**
     * Sealed → stored of the batches sealed inside the measured window (ramp end → end of the
     * duration): the fleet's steady state, without the ramp's connect load (version 5 on).
     */
    readonly sealedToStoredMeasuredMs: Quantiles | undefined;
    readonly sampleToStoredHistogram: Histogram;
    readonly sealedToStoredHistogram: Histogram;
    readonly sampledThings: number;
    /** What "stored" means for this phase. */
    readonly endpoint: string;
  };
  readonly commands: Omit<CommandLoadResult, 'roundTripSamples'> | undefined;
  readonly commandRoundTripHistogram: Histogram | undefined;
  readonly resources: {
    /** Measured window (ramp end → end of duration), percent of one core: this process, and the device hosts. */
    readonly coreCpuPct: number;
    readonly fleetCpuPct: number;
    readonly cpuSplit: string;
    /** This process: the local IoT Core (or bare broker), plus the devices when inline. */
    readonly coreRssMaxMB: number;
    readonly coreRssEndMB: number;
    /** The device-host processes together (0 when inline). */
    readonly fleetRssMaxMB: number;
    readonly fleetRssEndMB: number;
    readonly coreEventLoop: { readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number };
    readonly hostEventLoop: readonly HostSnapshot['eventLoop'][];
    readonly hostHeapUsedMB: readonly number[];
  };
  readonly faults: readonly FaultOutcome[];
  /** What IoT Core's quotas refused in this phase (version 3 on). */
  readonly throttled: PhaseThrottled;
  readonly sensorFailure?: {
    readonly failedDevices: number;
    readonly reportedUnhealthy: number;
    readonly reportedUnhealthyAmongFailed: number;
    readonly reportedUnhealthyAmongHealthy: number;
  };
  readonly windows: { readonly rampS: number; readonly measuredS: number; readonly drainS: number };
  readonly series: readonly SeriesPoint[];
  /** A `--job` run's rollout (version 4 on); the measured window is the rollout. */
  readonly rollout?: RolloutResult;
}

/** A job's executions by status (DescribeJob's jobProcessDetails), as the CLI reads them. */
export type RolloutCounts = JobExecutionCounts;

/** The job's executions by status at one poll (about once a second). */
export interface RolloutPoint extends RolloutCounts {
  /** Seconds since the job was created. */
  readonly t: number;
}

/** What a `--job` rollout did, from the job's side (the control plane) and the devices' side. */
export interface RolloutResult {
  readonly jobId: string;
  /** `agent-update`, `config`, `reboot`, or `file`. */
  readonly kind: string;
  readonly rolloutPerMinute: number | undefined;
  readonly abort: { readonly failurePercent: number; readonly minExecuted: number } | undefined;
  /** Devices planned to meet each release fault. */
  readonly plannedFaults: { readonly unhealthy: number; readonly crashInstall: number; readonly corrupt: number };
  /** The job's status when the run stopped following it, and why it stopped. */
  readonly status: string;
  readonly ended: 'completed' | 'canceled' | 'timeout' | 'interrupted';
  readonly reasonCode?: string;
  readonly comment?: string;
  /** CreateJob → the job ended with nothing in progress (or the timeout). */
  readonly seconds: number;
  /** Executions that reached SUCCEEDED, FAILED, REJECTED or TIMED_OUT. */
  readonly executed: number;
  /** executed ÷ seconds from creation to the last execution's end. */
  readonly executionsPerS: number;
  readonly counts: RolloutCounts;
  /** Each thing's latest execution by status (ListJobExecutionsForJob), when it could be read. */
  readonly executionStatuses: Readonly<Record<string, number>> | undefined;
  readonly series: readonly RolloutPoint[];
  readonly devices: {
    readonly total: number;
    /** Devices by the version they run at the end. */
    readonly versions: Readonly<Record<string, number>>;
    /** Devices whose running version does not work (0 is the guarantee). */
    readonly withoutWorkingVersion: number;
    /** Agent processes restarted (switches, rollbacks, power cuts, reboots). */
    readonly restarts: number;
  };
}

/** Requests refused for a quota, summed over the agents, since they started. */
export interface DevicesThrottled {
  /** Telemetry publishes refused with MQTT 5 PUBACK 0x97/0x96 (kept and resent after a backoff). */
  readonly publishes: number;
  /** Telemetry publishes not acknowledged in time with the connection up (a throttled publish on 3.1.1). */
  readonly unacknowledged: number;
  /** Connects refused or connections ended for a quota (0x9F, 0x97, 0x96). */
  readonly connects: number;
  /** Shadow requests answered 429. */
  readonly shadow: number;
}

/** A phase's throttled counts: from the devices, and from the core's own counters (`GET /quotas`). */
export interface PhaseThrottled {
  readonly devices: DevicesThrottled;
  /** The core's breaches in this phase; `not available` against AWS or a bare broker. */
  readonly core:
    | 'not available'
    | {
        readonly mode: string;
        readonly total: number;
        /** Quotas breached at least once, with their count. */
        readonly byQuota: Readonly<Record<string, number>>;
      };
}

export interface FleetResult {
  readonly version: typeof FLEET_RESULT_VERSION;
  readonly runId: string;
  readonly startedAt: string;
  readonly options: FleetOptions;
  readonly machine: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly memoryGiB: number;
    readonly node: string;
    readonly platform: string;
  };
  readonly provisioning:
    | {
        readonly seconds: number;
        readonly perDeviceMs: number;
        readonly keyType: string;
        readonly dataDir: string;
        /** `--provision claim`: the fleet provisioned itself over MQTT (absent on the in-process path). */
        readonly claim?: ClaimProvisioningResult;
      }
    | undefined;
  readonly phases: readonly PhaseResult[];
  /** local core ÷ bare broker, when both ran. */
  readonly overhead?: {
    readonly coreCpuRatio: number;
    readonly connectRateRatio: number;
    readonly sealedToStoredP99VsBrokerP99: number | undefined;
  };
  readonly cleanup: { readonly removed: number; readonly failed: number; readonly kept: boolean };
  /** true when every phase without faults lost nothing (and faulted phases lost nothing either). */
  readonly zeroLoss: boolean;
}
