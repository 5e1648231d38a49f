import type {
  CreateCertificateFromCsrResponse,
  CreateKeysAndCertificateResponse,
  ProvisioningErrorResponse,
  RegisterThingRequest,
  RegisterThingResponse,
} from '@pifleet/protocol';
import { isJsonObject, setOwn } from '@pifleet/protocol';
import { type IdentityOperation, ProvisioningError } from './errors.js';

/**
 * Fleet provisioning's MQTT API as the agent uses it, whatever carries it (the device SDK's
 * `IotIdentityClientv2` on aws-crt, reserved topics on an mqtt.js transport). One request at a
 * time. Each method resolves with the service's accepted answer, checked; it rejects with a
 * `ProvisioningRejectedError` when the service said no and a `ProvisioningError` when no answer
 * came.
 */
export interface IdentityPort {
  createCertificateFromCsr(certificateSigningRequest: string): Promise<CreateCertificateFromCsrResponse>;
  createKeysAndCertificate(): Promise<CreateKeysAndCertificateResponse>;
  registerThing(templateName: string, request: RegisterThingRequest): Promise<RegisterThingResponse>;
  /** Fails any request in flight; later ones are refused. */
  close(): void;
}

const own = (doc: Record<string, unknown>, key: string): unknown => (Object.hasOwn(doc, key) ? doc[key] : undefined);

function badAnswer(operation: IdentityOperation, what: string): ProvisioningError {
  return new ProvisioningError('PROVISIONING_BAD_ANSWER', `${operation} answered without ${what}`, {
    data: { operation },
  });
}

function strings<K extends string>(operation: IdentityOperation, doc: unknown, keys: readonly K[]): Record<K, string> {
  if (!isJsonObject(doc)) throw badAnswer(operation, 'a JSON object');
  const out = {} as Record<K, string>;
  for (const key of keys) {
    const v = own(doc, key);
    if (typeof v !== 'string' || v === '') throw badAnswer(operation, key);
    out[key] = v;
  }
  return out;
}

/** The accepted answer of CreateCertificateFromCsr, from whatever decoded it; throws when it lacks a field. */
export function readCsrAnswer(doc: unknown): CreateCertificateFromCsrResponse {
  return strings('CreateCertificateFromCsr', doc, ['certificateId', 'certificatePem', 'certificateOwnershipToken']);
}

/** The accepted answer of CreateKeysAndCertificate; throws when it lacks a field. */
export function readKeysAnswer(doc: unknown): CreateKeysAndCertificateResponse {
  return strings('CreateKeysAndCertificate', doc, [
    'certificateId',
    'certificatePem',
    'privateKey',
    'certificateOwnershipToken',
  ]);
}

/**
 * The accepted answer of RegisterThing: the thing's name (required here: the agent needs one to run
 * as) and the device configuration's string values (others dropped; no key reaches a prototype).
 */
export function readRegisterAnswer(doc: unknown): RegisterThingResponse & { readonly thingName: string } {
  const { thingName } = strings('RegisterThing', doc, ['thingName']);
  const raw = own(doc as Record<string, unknown>, 'deviceConfiguration');
  const deviceConfiguration: Record<string, string> = Object.create(null);
  if (isJsonObject(raw)) {
    for (const key of Object.keys(raw)) {
      const v = raw[key];
      if (typeof v === 'string') setOwn(deviceConfiguration, key, v);
    }
  }
  return { thingName, deviceConfiguration };
}

/** A `/rejected` answer as the service sends it; undefined when it is not one (no numeric statusCode). */
export function readRejection(doc: unknown): ProvisioningErrorResponse | undefined {
  if (!isJsonObject(doc)) return undefined;
  const statusCode = own(doc, 'statusCode');
  if (typeof statusCode !== 'number' || !Number.isInteger(statusCode)) return undefined;
  const errorCode = own(doc, 'errorCode');
  const errorMessage = own(doc, 'errorMessage');
  return {
    statusCode,
    errorCode: typeof errorCode === 'string' ? errorCode.slice(0, 200) : 'Unknown',
    errorMessage: typeof errorMessage === 'string' ? errorMessage.slice(0, 1000) : '',
  };
}
