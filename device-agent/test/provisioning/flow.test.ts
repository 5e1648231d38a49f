import type {
  CreateCertificateFromCsrResponse,
  CreateKeysAndCertificateResponse,
  RegisterThingRequest,
  RegisterThingResponse,
} from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import {
  ProvisioningError,
  ProvisioningRejectedError,
  ProvisioningTimeoutError,
} from '../../src/provisioning/errors.js';
import { type ProvisionFlowRequest, provisionIdentity } from '../../src/provisioning/flow.js';
import type { DeviceKeyMaker } from '../../src/provisioning/keys.js';
import type { IdentityPort } from '../../src/provisioning/port.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';

/**
 * The provisioning flow over a scripted identity service (a fake of the port; the adapters are
 * tested against the local core in test/e2e/agent-provisioning.test.ts): what it retries, what it
 * starts over, what it gives up on, on a virtual clock.
 */

type Answer<T> = T | ProvisioningError;
const reject = (
  operation: 'CreateCertificateFromCsr' | 'CreateKeysAndCertificate' | 'RegisterThing',
  statusCode: number,
  errorCode: string,
) => new ProvisioningRejectedError(operation, { statusCode, errorCode, errorMessage: `${errorCode} (test)` });
const noAnswer = () => new ProvisioningError('PROVISIONING_REQUEST_TIMEOUT', 'no answer (test)');

/** An identity service that answers from scripts (the last answer repeats), and records the requests. */
function scripted(script: {
  csr?: Answer<CreateCertificateFromCsrResponse>[];
  keys?: Answer<CreateKeysAndCertificateResponse>[];
  register?: Answer<RegisterThingResponse>[];
}) {
  const calls: { op: string; arg?: unknown }[] = [];
  let issued = 0;
  const next = <T>(list: Answer<T>[] | undefined, fallback: () => T): T => {
    const a = list && list.length > 1 ? list.shift() : list?.[0];
    if (a === undefined) return fallback();
    if (a instanceof ProvisioningError) throw a;
    return a;
  };
  const port: IdentityPort = {
    async createCertificateFromCsr(csr) {
      calls.push({ op: 'csr', arg: csr });
      return next(script.csr, () => {
        issued += 1;
        return {
          certificateId: `c${issued}`,
          certificatePem: `CERT${issued}`,
          certificateOwnershipToken: `t${issued}`,
        };
      });
    },
    async createKeysAndCertificate() {
      calls.push({ op: 'keys' });
      return next(script.keys, () => {
        issued += 1;
        return {
          certificateId: `c${issued}`,
          certificatePem: `CERT${issued}`,
          privateKey: `KEY${issued}`,
          certificateOwnershipToken: `t${issued}`,
        };
      });
    },
    async registerThing(templateName: string, request: RegisterThingRequest) {
      calls.push({ op: 'register', arg: { templateName, ...request } });
      return next(script.register, () => ({ thingName: 'pi-0001', deviceConfiguration: {} }));
    },
    close() {},
  };
  return { port, calls };
}

let keys = 0;
const makeKey: DeviceKeyMaker = async ({ commonName }) => {
  keys += 1;
  return { privateKeyPem: `DEVKEY${keys}`, csrPem: `CSR(${commonName})#${keys}` };
};

const request: ProvisionFlowRequest = {
  method: 'csr',
  templateName: 'pifleet-claim',
  parameters: { SerialNumber: '10000000e1f2a3b4' },
};

function run(port: IdentityPort, req: ProvisionFlowRequest = request, timeoutMs = 300_000) {
  const clock = createVirtualClock({ auto: true });
  const started = clock.now();
  return {
    clock,
    elapsed: () => clock.now() - started,
    result: provisionIdentity(
      {
        identity: port,
        makeKey,
        clock,
        random: () => 0.5,
        log: silentLogger(),
        deadline: started + timeoutMs,
        timeoutMs,
      },
      req,
    ),
  };
}

describe('provisionIdentity', () => {
  it('csr: sends the CSR of a key made here, registers with its token and the parameters, and returns that key', async () => {
    const { port, calls } = scripted({});
    const out = await run(port).result;
    expect(calls.map((c) => c.op)).toEqual(['csr', 'register']);
    expect(calls[0]?.arg).toMatch(/^CSR\(10000000e1f2a3b4\)#\d+$/);
    expect(calls[1]?.arg).toEqual({
      templateName: 'pifleet-claim',
      certificateOwnershipToken: 't1',
      parameters: { SerialNumber: '10000000e1f2a3b4' },
    });
    expect(out).toMatchObject({ thingName: 'pi-0001', certificateId: 'c1', certificatePem: 'CERT1' });
    expect(out.privateKeyPem).toMatch(/^DEVKEY\d+$/);
  });

  it('create-keys: the key is the one the service sent', async () => {
    const { port, calls } = scripted({});
    const out = await run(port, { ...request, method: 'create-keys' }).result;
    expect(calls.map((c) => c.op)).toEqual(['keys', 'register']);
    expect(out.privateKeyPem).toBe('KEY1');
  });

  it('retries no answer, 429 and 503 with a growing backoff, then goes on', async () => {
    const { port, calls } = scripted({
      csr: [
        noAnswer(),
        reject('CreateCertificateFromCsr', 429, 'Throttling'),
        { certificateId: 'c1', certificatePem: 'CERT1', certificateOwnershipToken: 't1' },
      ],
      register: [reject('RegisterThing', 503, 'InternalFailure'), { thingName: 'pi-0001', deviceConfiguration: {} }],
    });
    const flow = run(port);
    await flow.result;
    expect(calls.map((c) => c.op)).toEqual(['csr', 'csr', 'csr', 'register', 'register']);
    // Three pauses (full jitter at 0.5): 500 + 1,000 + 2,000 ms.
    expect(flow.elapsed()).toBe(3_500);
  });

  it('a refused ownership token starts over with a new certificate (and a new key)', async () => {
    const { port, calls } = scripted({
      register: [
        reject('RegisterThing', 400, 'InvalidCertificateOwnershipToken'),
        { thingName: 'pi-0001', deviceConfiguration: {} },
      ],
    });
    const out = await run(port).result;
    expect(calls.map((c) => c.op)).toEqual(['csr', 'register', 'csr', 'register']);
    expect(calls[3]?.arg).toMatchObject({ certificateOwnershipToken: 't2' });
    expect(out.certificateId).toBe('c2');
    expect(calls[0]?.arg).not.toBe(calls[2]?.arg);
  });

  it.each([
    ['the hook denied it', reject('RegisterThing', 403, 'AccessDenied')],
    ['the template is missing', reject('RegisterThing', 404, 'ResourceNotFound')],
    ['the parameters do not fit the template', reject('RegisterThing', 400, 'ResourceRegistrationFailure')],
  ])('gives up at once when %s, with the service’s code and message', async (_label, rejection) => {
    const { port, calls } = scripted({ register: [rejection] });
    const flow = run(port);
    await expect(flow.result).rejects.toBe(rejection);
    expect(calls.map((c) => c.op)).toEqual(['csr', 'register']);
    expect(flow.elapsed()).toBe(0);
  });

  it('a final rejection of the certificate request is not retried either', async () => {
    const rejection = reject('CreateCertificateFromCsr', 400, 'InvalidCSR');
    const { port, calls } = scripted({ csr: [rejection] });
    await expect(run(port).result).rejects.toBe(rejection);
    expect(calls).toHaveLength(1);
  });

  it('stops at the deadline with a timeout naming the step and the last failure', async () => {
    const { port } = scripted({ csr: [reject('CreateCertificateFromCsr', 503, 'InternalFailure')] });
    const flow = run(port, request, 60_000);
    const err = await flow.result.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProvisioningTimeoutError);
    expect((err as Error).message).toMatch(/within 60 s \(CreateCertificateFromCsr; last failure: .*InternalFailure/);
    expect(flow.elapsed()).toBe(60_000);
  });

  it('a request that hangs past the deadline (its own timeout longer) ends at the deadline', async () => {
    const { port } = scripted({});
    const hung: IdentityPort = { ...port, registerThing: () => new Promise(() => undefined) };
    const flow = run(hung, request, 45_000);
    const err = await flow.result.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProvisioningTimeoutError);
    expect((err as Error).message).toMatch(/within 45 s \(RegisterThing\)/);
    expect(flow.elapsed()).toBe(45_000);
  });

  it('a token refused again and again ends at the deadline, not in a loop', async () => {
    const { port, calls } = scripted({ register: [reject('RegisterThing', 400, 'InvalidCertificateOwnershipToken')] });
    const err = await run(port, request, 30_000).result.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProvisioningTimeoutError);
    expect(calls.filter((c) => c.op === 'csr').length).toBeGreaterThan(1);
    expect(calls.filter((c) => c.op === 'csr').length).toBeLessThan(20);
  });
});
