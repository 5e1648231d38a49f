import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  createSystemClock,
  type IdentityPort,
  makeEcDeviceKey,
  openMqttJsSession,
  ProvisioningRejectedError,
  provisionIdentity,
  silentLogger,
} from '@pifleet/device-agent';
import {
  CLAIM_CLIENT_ID_PREFIX,
  CodedError,
  DEFAULT_CLAIM_TEMPLATE_NAME,
  DEFAULT_CLAIMED_THING_GROUP,
  isJsonObject,
  type MqttProtocol,
  parseJson,
  TokenBucket,
} from '@pifleet/protocol';
import { BUNDLE_FILES, runCli } from '@pifleet/provisioning';
import { SimulatorError } from '../../errors.js';
import { simulatedPiFacts } from '../claim-devices.js';
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

/**
 * One device's whole provisioning, retries included. The flow's backoff grows to 30 s, so a few
 * throttled rounds fit; a device still without an identity then has failed.
 */
const DEVICE_TIMEOUT_MS = 180_000;

/** One request's answer: RegisterThing waits for the hook, which has 5 s (the agent's own default). */
const REQUEST_TIMEOUT_MS = 15_000;

/** What `pifleet claims create` left: the claim bundle as a Pi's image would carry it. */
interface ClaimBundle {
  readonly templateName: string;
  readonly endpoint: string;
  readonly port: number;
  readonly caFile: string;
  readonly claimCertFile: string;
  readonly claimKeyFile: string;
  readonly certificateId: string;
}

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
 * as the agent does on first boot: its own connection (mqtt.js, client id `pifleet-claim-<serial>`),
 * device-agent's flow (CreateCertificateFromCsr with an EC P-256 key made for it, RegisterThing with
 * its serial, model and MAC address, retries with backoff), its certificate and key written.
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
  const clock = createSystemClock();
  const quiet = silentLogger();
  let retries = 0;
  const throttlesBefore = local.throttles();
  const identities: (FleetIdentity | undefined)[] = new Array(names.length);
  const latencies: number[] = [];
  const failures: { thingName: string; code: string; message: string }[] = [];
  const startedAt = performance.now();
  let next = 0;
  let done = 0;

  const one = async (i: number, thingName: string): Promise<FleetIdentity> => {
    const parameters = simulatedPiFacts(opts.seed, i);
    const serial = parameters.SerialNumber as string;
    const t0 = performance.now();
    const deadline = clock.now() + DEVICE_TIMEOUT_MS;
    const session = await openMqttJsSession({
      mqtt: {
        protocol: opts.protocol,
        endpoint: bundle.endpoint,
        port: bundle.port,
        clientId: `${CLAIM_CLIENT_ID_PREFIX}${serial}`,
        certFile: bundle.claimCertFile,
        keyFile: bundle.claimKeyFile,
        caFile: bundle.caFile,
        keepAliveS: 60,
        reconnectMinMs: 1_000,
        reconnectMaxMs: 30_000,
        clock,
        logger: quiet,
      },
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      clock,
      deadline,
      timeoutMs: DEVICE_TIMEOUT_MS,
    });
    const counted = countingIdentity(session.identity);
    let made: Awaited<ReturnType<typeof provisionIdentity>>;
    try {
      made = await provisionIdentity(
        {
          identity: counted.identity,
          makeKey: makeEcDeviceKey,
          clock,
          random: Math.random,
          log: quiet,
          deadline,
          timeoutMs: DEVICE_TIMEOUT_MS,
        },
        { method: 'csr', templateName: bundle.templateName, parameters },
      );
    } finally {
      retries += counted.retries();
      await session.close().catch(() => undefined);
    }
    if (made.thingName !== thingName) {
      throw new SimulatorError('FLEET_CLAIM_THING', `RegisterThing named ${made.thingName}, not ${thingName}`);
    }
    const certFile = path.join(opts.certDir, `${thingName}.cert.pem`);
    const keyFile = path.join(opts.certDir, `${thingName}.key.pem`);
    await writeFile(keyFile, made.privateKeyPem, { mode: 0o600 });
    await writeFile(certFile, made.certificatePem, { mode: 0o644 });
    latencies.push(performance.now() - t0);
    const cert = local.services.registry.describeCertificate(made.certificateId);
    return {
      thingName,
      certFile,
      keyFile,
      certificateId: made.certificateId,
      certificateArn: cert.certificateArn,
    };
  };

  const worker = async () => {
    for (;;) {
      if (opts.signal?.aborted) return;
      const i = next++;
      const name = names[i];
      if (name === undefined) return;
      await pacing.take();
      try {
        identities[i] = await one(i, name);
      } catch (err) {
        failures.push({ thingName: name, code: failureCode(err), message: (err as Error).message });
      }
      done += 1;
      if (done % 100 === 0 || done === names.length)
        say(`provisioned ${done - failures.length}/${names.length}`, done === names.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
  const endedAt = performance.now();

  const claim = summarizeClaim({
    setup: {
      templateName: bundle.templateName,
      hookArn,
      protocol: opts.protocol,
      concurrency: opts.concurrency,
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

/** A failure's code for the result: the service's errorCode for a rejection, else the error's own code. */
function failureCode(err: unknown): string {
  if (err instanceof ProvisioningRejectedError) return err.errorCode;
  if (err instanceof CodedError) return err.code;
  return 'Error';
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
 * The device's provisioning API, counting what is sent through it: a request the flow sends again
 * after a retryable failure (no answer, 429/5xx, a subscription refused for a quota) is a call
 * more than the steps it took, so `retries()` is exact whatever the flow logs.
 */
export function countingIdentity(identity: IdentityPort): { identity: IdentityPort; retries(): number } {
  let calls = 0;
  let registering = false;
  return {
    identity: {
      createCertificateFromCsr(csr) {
        calls += 1;
        return identity.createCertificateFromCsr(csr);
      },
      createKeysAndCertificate() {
        calls += 1;
        return identity.createKeysAndCertificate();
      },
      registerThing(templateName, request) {
        calls += 1;
        registering = true;
        return identity.registerThing(templateName, request);
      },
      close: () => identity.close(),
    },
    retries: () => Math.max(0, calls - (registering ? 2 : calls > 0 ? 1 : 0)),
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
}): Promise<ClaimBundle> {
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
  return { ...(bundle as Omit<ClaimBundle, 'certificateId'>), certificateId };
}
