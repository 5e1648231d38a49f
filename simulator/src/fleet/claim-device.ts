import { writeFile } from 'node:fs/promises';
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
import { CLAIM_CLIENT_ID_PREFIX, CodedError, type MqttProtocol } from '@pifleet/protocol';
import { simulatedPiFacts } from './claim-devices.js';

/**
 * One simulated Pi's first boot by claim, the device side only (no core, no registry), so that it
 * runs in this process or in a device-host child process alike.
 */

/** The claim bundle as a Pi's image carries it (read from the agent config `pifleet claims create` wrote). */
export interface ClaimBundle {
  readonly templateName: string;
  readonly endpoint: string;
  readonly port: number;
  readonly caFile: string;
  readonly claimCertFile: string;
  readonly claimKeyFile: string;
}

/** What every device of the run shares: plain data (it crosses to child processes). */
export interface ClaimDeviceSpec {
  readonly bundle: ClaimBundle;
  readonly seed: string;
  readonly protocol: MqttProtocol;
  /** Where each device's `{thing}.cert.pem` / `{thing}.key.pem` go. */
  readonly certDir: string;
}

/** One device's outcome: plain data. `retries`: requests sent again after a retryable failure. */
export type ClaimDeviceOutcome =
  | {
      readonly ok: true;
      readonly thingName: string;
      readonly certFile: string;
      readonly keyFile: string;
      readonly certificateId: string;
      /** The claim connection opened → its certificate and key written. */
      readonly latencyMs: number;
      readonly retries: number;
    }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly retries: number };

/**
 * One device's whole provisioning, retries included. The flow's backoff grows to 30 s, so a few
 * throttled rounds fit; a device still without an identity then has failed.
 */
export const DEVICE_TIMEOUT_MS = 180_000;

/** One request's answer: RegisterThing waits for the hook, which has 5 s (the agent's own default). */
const REQUEST_TIMEOUT_MS = 15_000;

/**
 * Device `index` provisions itself as the agent does on first boot: its own connection with the
 * claim certificate (mqtt.js, client id `pifleet-claim-<serial>`), device-agent's flow
 * (CreateCertificateFromCsr with an EC P-256 key made for it, RegisterThing with its serial, model
 * and MAC address, retries with backoff), then its certificate and key written. Never throws: a
 * failure is an outcome, with the service's errorCode when it said no.
 */
export async function provisionClaimDevice(
  spec: ClaimDeviceSpec,
  index: number,
  thingName: string,
): Promise<ClaimDeviceOutcome> {
  const { bundle } = spec;
  const clock = createSystemClock();
  const quiet = silentLogger();
  const parameters = simulatedPiFacts(spec.seed, index);
  const t0 = performance.now();
  const deadline = clock.now() + DEVICE_TIMEOUT_MS;
  let counted: ReturnType<typeof countingIdentity> | undefined;
  try {
    const session = await openMqttJsSession({
      mqtt: {
        protocol: spec.protocol,
        endpoint: bundle.endpoint,
        port: bundle.port,
        clientId: `${CLAIM_CLIENT_ID_PREFIX}${parameters.SerialNumber}`,
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
    counted = countingIdentity(session.identity);
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
      await session.close().catch(() => undefined);
    }
    if (made.thingName !== thingName) {
      return {
        ok: false,
        code: 'FLEET_CLAIM_THING',
        message: `RegisterThing named ${made.thingName}, not ${thingName}`,
        retries: counted.retries(),
      };
    }
    const certFile = path.join(spec.certDir, `${thingName}.cert.pem`);
    const keyFile = path.join(spec.certDir, `${thingName}.key.pem`);
    await writeFile(keyFile, made.privateKeyPem, { mode: 0o600 });
    await writeFile(certFile, made.certificatePem, { mode: 0o644 });
    return {
      ok: true,
      thingName,
      certFile,
      keyFile,
      certificateId: made.certificateId,
      latencyMs: performance.now() - t0,
      retries: counted.retries(),
    };
  } catch (err) {
    return { ok: false, code: failureCode(err), message: (err as Error).message, retries: counted?.retries() ?? 0 };
  }
}

/** A failure's code for the result: the service's errorCode for a rejection, else the error's own code. */
function failureCode(err: unknown): string {
  if (err instanceof ProvisioningRejectedError) return err.errorCode;
  if (err instanceof CodedError) return err.code;
  return 'Error';
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
