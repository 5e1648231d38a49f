import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  DEFAULT_CLAIM_TEMPLATE_NAME,
  DEFAULT_CLAIMED_THING_GROUP,
  isJsonObject,
  type MqttProtocol,
  parseJson,
  TokenBucket,
} from '@pifleet/protocol';
import { BUNDLE_FILES, runCli } from '@pifleet/provisioning';
import { SimulatorError } from '../../errors.js';
import type { ClaimBundle } from '../claim-device.js';
import { createClaimHosts } from '../claim-hosts.js';
import { summarizeClaim } from '../claim-result.js';
import type { FleetIdentity } from '../provision.js';
import { throttlesBetween } from '../quotas-readback.js';
import type { FleetResult } from '../result.js';
import { provisioningSummary } from '../summary.js';
import type { LocalTarget } from '../target.js';
import { sleep } from './wait.js';

/**
 * pifleet's pre-provisioning hook, built into the local core under its Lambda name: the template
 * names it, so every RegisterThing of the run goes through it (serial checked and lower-cased,
 * model made attribute-safe, MAC normalised, the core's PIFLEET_ALLOWED_SERIALS applied), as it
 * would in AWS. It is part of what is measured.
 */
const HOOK_FUNCTION = 'pifleet-provisioning-hook';

/**
 * Subscriptions one device makes to provision: the accepted and rejected answers of
 * CreateCertificateFromCsr and of RegisterThing (device-agent's topic identity subscribes each
 * pair before its first request). The account's subscription rate divided by this is how many
 * devices a second can start without being refused a subscription.
 */
const SUBSCRIPTIONS_PER_DEVICE = 4;

/** Outcome of {@link provisionByClaim}: the identities made (all of them, or those made before failing) and the figures. */
export interface ClaimedFleet {
  readonly identities: readonly FleetIdentity[];
  readonly provisioning: NonNullable<FleetResult['provisioning']>;
  /** Set when a device could not provision: the run fails with it, after its cleanup. */
  readonly error?: SimulatorError;
}

/**
 * `--provision claim`: the claim is set up on the in-process core with `pifleet claims create`
 * (the device policy, the `pifleet-claimed` thing group, pifleet's template created enabled with
 * pifleet's pre-provisioning hook, the claim policy, one ACTIVE claim certificate, and the claim
 * bundle), then every simulated device provisions itself over MQTT with that claim certificate,
 * as the agent does on first boot (`provisionClaimDevice`), in this process or in `workers`
 * device-host processes.
 *
 * At most `concurrency` devices at once, and with the core's quotas on, claim connections are
 * started no faster than the account's connect and subscription rates allow (throttling beyond
 * that is retried by the flow, and counted). Every device is tried; any failure is returned as
 * `error` with the failures by error code, so that the caller removes what was made first.
 */
export async function provisionByClaim(opts: {
  readonly local: LocalTarget;
  readonly dataDir: string;
  readonly certDir: string;
  readonly seed: string;
  readonly names: readonly string[];
  readonly protocol: MqttProtocol;
  readonly concurrency: number;
  /** Device-host child processes the devices run in (0: this process). */
  readonly workers: number;
  readonly say: (line: string, final: boolean) => void;
  readonly signal?: AbortSignal | undefined;
}): Promise<ClaimedFleet> {
  const { local, names, say } = opts;
  const { region, accountId } = local.info;
  const hookArn = `arn:aws:lambda:${region}:${accountId}:function:${HOOK_FUNCTION}`;
  say(
    `setting up the claim (pifleet claims create, template ${DEFAULT_CLAIM_TEMPLATE_NAME}, hook ${HOOK_FUNCTION})`,
    true,
  );
  const setupStart = performance.now();
  const bundle = await createClaim({
    dataDir: opts.dataDir,
    bundleDir: path.join(opts.certDir, 'claim'),
    hookArn,
    protocol: opts.protocol,
  });
  const setupMs = performance.now() - setupStart;
  await mkdir(opts.certDir, { recursive: true, mode: 0o700 });

  const pacing = claimPacing(local);
  say(
    `provisioning ${names.length} devices by claim (MQTT, ${opts.concurrency} at once${pacing.perSecond === null ? '' : `, ≤ ${pacing.perSecond}/s`})`,
    true,
  );
  const hosts = createClaimHosts(
    { bundle, seed: opts.seed, protocol: opts.protocol, certDir: opts.certDir },
    opts.workers,
  );
  let retries = 0;
  const throttlesBefore = local.throttles();
  const identities: (FleetIdentity | undefined)[] = new Array(names.length);
  const latencies: number[] = [];
  const failures: { thingName: string; code: string; message: string }[] = [];
  const startedAt = performance.now();
  let next = 0;
  let done = 0;

  /** One of `concurrency` loops: the next device, when the pacing lets it start, on this loop's host. */
  const worker = async (w: number) => {
    for (;;) {
      if (opts.signal?.aborted) return;
      const i = next++;
      const name = names[i];
      if (name === undefined) return;
      await pacing.take();
      const outcome = await hosts.provision(w, i, name);
      retries += outcome.retries;
      if (outcome.ok) {
        latencies.push(outcome.latencyMs);
        identities[i] = {
          thingName: name,
          certFile: outcome.certFile,
          keyFile: outcome.keyFile,
          certificateId: outcome.certificateId,
          certificateArn: local.services.registry.describeCertificate(outcome.certificateId).certificateArn,
        };
      } else {
        failures.push({ thingName: name, code: outcome.code, message: outcome.message });
      }
      done += 1;
      if (done % 100 === 0 || done === names.length)
        say(`provisioned ${done - failures.length}/${names.length}`, done === names.length);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, (_, w) => worker(w)));
  } finally {
    hosts.close();
  }
  const endedAt = performance.now();

  const claim = summarizeClaim({
    setup: {
      templateName: bundle.templateName,
      hookArn,
      protocol: opts.protocol,
      concurrency: opts.concurrency,
      workers: hosts.mode === 'inline' ? 0 : hosts.hosts,
      pacedPerSecond: pacing.perSecond,
    },
    setupMs,
    devices: names.length,
    startedAt,
    endedAt,
    latenciesMs: latencies,
    failureCodes: failures.map((f) => f.code),
    retries,
    coreThrottles: throttlesBetween(throttlesBefore, local.throttles()).byQuota,
  });
  const made = identities.filter((id): id is FleetIdentity => id !== undefined);
  const provisioning = {
    ...provisioningSummary(
      (endedAt - startedAt) / 1000,
      names.length,
      'EC P-256 (CreateCertificateFromCsr)',
      opts.dataDir,
    ),
    claim,
  };
  const notTried = names.length - made.length - failures.length;
  if (failures.length === 0 && notTried === 0) return { identities: made, provisioning };
  const first = failures[0];
  const byCode = Object.entries(claim.failures)
    .map(([code, n]) => `${code} ×${n}`)
    .join(', ');
  const error =
    failures.length === 0
      ? new SimulatorError(
          'FLEET_INTERRUPTED',
          `provisioning by claim stopped after ${made.length} of ${names.length} devices`,
        )
      : new SimulatorError(
          'FLEET_PROVISION',
          `provisioning by claim failed for ${failures.length} of ${names.length} devices (${byCode}); first: ${first?.thingName}: ${first?.message}`,
          { data: { failures: claim.failures } },
        );
  return { identities: made, provisioning, error };
}

/**
 * How many devices a second may start provisioning under the core's quotas: the account's connect
 * rate, and its subscription rate over the {@link SUBSCRIPTIONS_PER_DEVICE} subscriptions each
 * device makes, whichever is lower; null when neither is enforced (`--limits off`).
 */
export function claimStartRate(
  values: Readonly<Record<'connectsPerSecondPerAccount' | 'subscriptionsPerSecondPerAccount', number | null>>,
): number | null {
  const connects = values.connectsPerSecondPerAccount;
  const subscriptions = values.subscriptionsPerSecondPerAccount;
  const rates = [connects, subscriptions === null ? null : subscriptions / SUBSCRIPTIONS_PER_DEVICE].filter(
    (r): r is number => r !== null && r > 0,
  );
  return rates.length === 0 ? null : Math.min(...rates);
}

/**
 * Start pacing of the claim connections at {@link claimStartRate}, so that the fleet does not
 * throttle itself by starting every device at once (a fleet powered on together would, and the
 * flow's backoff would spread it); what other clients' use of the quotas still gets refused is
 * retried by the flow and counted.
 */
function claimPacing(local: LocalTarget): { perSecond: number | null; take(): Promise<void> } {
  const perSecond = claimStartRate(local.services.limits.values);
  if (perSecond === null) return { perSecond: null, take: async () => undefined };
  // No burst: the core's buckets allow a second's worth, but the devices' later subscriptions
  // (RegisterThing's answers) come out of the same second.
  const bucket = new TokenBucket({ ratePerSecond: perSecond });
  return {
    perSecond: Math.round(perSecond * 10) / 10,
    async take() {
      const wait = bucket.reserve(Date.now());
      if (wait > 0) await sleep(wait);
    },
  };
}

/**
 * `pifleet claims create` against the in-process core (`--local <dataDir>`), as an operator sets up
 * an image: the CLI's own checks and control-plane calls. Returns the bundle's claim files, read
 * from the agent config it wrote (the file a Pi boots with).
 */
async function createClaim(o: {
  readonly dataDir: string;
  readonly bundleDir: string;
  readonly hookArn: string;
  readonly protocol: MqttProtocol;
}): Promise<ClaimBundle & { readonly certificateId: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(
    [
      '--local',
      o.dataDir,
      '--json',
      'claims',
      'create',
      '--template',
      DEFAULT_CLAIM_TEMPLATE_NAME,
      '--thing-group',
      DEFAULT_CLAIMED_THING_GROUP,
      '--hook-arn',
      o.hookArn,
      '--mqtt-protocol',
      o.protocol,
      '--out',
      o.bundleDir,
    ],
    {
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
      env: { ...process.env, PIFLEET_LOCAL: undefined },
      cwd: process.cwd(),
    },
  );
  const printed = parseJson(out.join(''));
  const certificateId =
    printed.ok && isJsonObject(printed.value) && typeof printed.value.certificateId === 'string'
      ? printed.value.certificateId
      : undefined;
  if (code !== 0 || certificateId === undefined) {
    throw new SimulatorError(
      'FLEET_CLAIM_SETUP',
      `pifleet claims create failed (exit ${code}): ${err.join('').trim().split('\n').slice(-2).join(' / ') || 'no output'}`,
    );
  }
  const configFile = path.join(o.bundleDir, BUNDLE_FILES.agentConfig);
  const config = parseJson(readFileSync(configFile, 'utf8'));
  const doc = config.ok && isJsonObject(config.value) ? config.value : undefined;
  const section = doc && isJsonObject(doc.provisioning) ? doc.provisioning : undefined;
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const bundle = {
    templateName: str(section?.templateName),
    endpoint: str(doc?.endpoint),
    port: typeof doc?.port === 'number' ? doc.port : undefined,
    caFile: str(doc?.caFile),
    claimCertFile: str(section?.claimCertFile),
    claimKeyFile: str(section?.claimKeyFile),
  };
  const missing = Object.entries(bundle)
    .filter(([, v]) => v === undefined)
    .map(([k]) => k);
  if (missing.length > 0) {
    throw new SimulatorError('FLEET_CLAIM_SETUP', `the claim bundle's ${configFile} lacks ${missing.join(', ')}`);
  }
  return { ...(bundle as ClaimBundle), certificateId };
}
