import type { MqttProtocol } from '@pifleet/protocol';
import { type Quantiles, quantiles, round } from './metrics.js';

/**
 * `--provision claim`'s figures in the run's result (`provisioning.claim`): the fleet provisioned
 * itself over MQTT with one claim certificate, each device as the agent does on first boot.
 */
export interface ClaimProvisioningResult {
  readonly templateName: string;
  /** The template's pre-provisioning hook: the Lambda ARN the local core runs in process. */
  readonly hookArn: string;
  /** CreateCertificateFromCsr with a key made for the device (EC P-256), then RegisterThing. */
  readonly method: 'csr';
  readonly client: 'mqtt.js';
  readonly protocol: MqttProtocol;
  /** Devices provisioning at once. */
  readonly concurrency: number;
  /** Device-host processes the devices provisioned in (0: the core's process and thread). */
  readonly workers: number;
  /** Claim connections started per second at most (the core's quotas); null when not paced (`--limits off`). */
  readonly pacedPerSecond: number | null;
  /** `pifleet claims create` against the core: device policy, thing group, template, claim policy and certificate. */
  readonly setupSeconds: number;
  readonly devices: number;
  readonly provisioned: number;
  readonly failed: number;
  /** From the first claim connect to the last device's files written. */
  readonly seconds: number;
  readonly devicesPerSecond: number;
  /** One device: the claim connection opened → its certificate and key written, ms (provisioned devices). */
  readonly latencyMs: Quantiles | undefined;
  /** Devices that failed, by the error code of their last failure (`AccessDenied`, `PROVISIONING_TIMEOUT`, …). */
  readonly failures: Readonly<Record<string, number>>;
  /** Requests the flow sent again after a retryable failure (no answer, 429/5xx, a subscription refused for a quota). */
  readonly retries: number;
  /** The core's quota breaches while the fleet provisioned, by quota (only those breached). */
  readonly coreThrottles: Readonly<Record<string, number>>;
}

/** What the provisioning step observed, before it is summarised. */
export interface ClaimObservations {
  readonly setup: Pick<
    ClaimProvisioningResult,
    'templateName' | 'hookArn' | 'protocol' | 'concurrency' | 'workers' | 'pacedPerSecond'
  >;
  readonly setupMs: number;
  readonly devices: number;
  /** Start and end of the provisioning step (ms, any one clock). */
  readonly startedAt: number;
  readonly endedAt: number;
  /** Per provisioned device, ms. */
  readonly latenciesMs: readonly number[];
  /** The error code of each failed device. */
  readonly failureCodes: readonly string[];
  readonly retries: number;
  readonly coreThrottles: Readonly<Record<string, number>>;
}

/** The claim figures of a run (pure). */
export function summarizeClaim(o: ClaimObservations): ClaimProvisioningResult {
  const failures: Record<string, number> = {};
  for (const code of o.failureCodes) failures[code] = (failures[code] ?? 0) + 1;
  const seconds = Math.max(0, o.endedAt - o.startedAt) / 1000;
  const provisioned = o.latenciesMs.length;
  return {
    ...o.setup,
    method: 'csr',
    client: 'mqtt.js',
    setupSeconds: round(o.setupMs / 1000, 2),
    devices: o.devices,
    provisioned,
    failed: o.failureCodes.length,
    seconds: round(seconds, 2),
    devicesPerSecond: seconds > 0 ? round(provisioned / seconds, 1) : 0,
    latencyMs: quantiles(o.latenciesMs),
    failures,
    retries: o.retries,
    coreThrottles: o.coreThrottles,
  };
}

/** The console line of a claimed fleet. */
export function claimLine(c: ClaimProvisioningResult): string {
  const l = c.latencyMs;
  const failures = Object.entries(c.failures)
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
  const throttled = Object.entries(c.coreThrottles)
    .map(([q, n]) => `${q} ${n}`)
    .join(', ');
  return (
    `provisioned by claim (template ${c.templateName}, hook ${c.hookArn.slice(c.hookArn.lastIndexOf(':') + 1)}, MQTT ${c.protocol}, mqtt.js, ${c.concurrency} at once${c.workers > 0 ? ` in ${c.workers} device hosts` : ''}` +
    `${c.pacedPerSecond === null ? '' : `, ≤ ${c.pacedPerSecond} claim connects/s`}): ` +
    `${c.provisioned}/${c.devices} in ${c.seconds} s (${c.devicesPerSecond}/s)` +
    (l ? `; per device p50/p99/max ${l.p50}/${l.p99}/${l.max} ms` : '') +
    `; failed ${c.failed}${failures ? ` (${failures})` : ''}; retries ${c.retries}` +
    `; core throttled ${throttled || 'nothing'}; setup ${c.setupSeconds} s`
  );
}
