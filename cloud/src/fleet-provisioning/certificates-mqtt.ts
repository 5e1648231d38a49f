import {
  type CertificateRequestKind,
  certificateRequestOf,
  certificateResponseTopic,
  createCertificateFromCsrBodySchema,
  type JsonObject,
  validateWith,
} from '@pifleet/protocol';
import { CsrError, type LocalCa } from '../ca/local-ca.js';
import { type Logger, silentLogger } from '../logger.js';
import { RegistryError } from '../registry/errors.js';
import type { Registry } from '../registry/sqlite-registry.js';
import { type Answering, createAnswering, ProvisioningRejection, parseRequestObject } from './answering.js';
import type { OwnershipTokens } from './ownership-tokens.js';

/**
 * CreateKeysAndCertificate and CreateCertificateFromCsr over MQTT ("Device provisioning MQTT
 * API"): a request on `$aws/certificates/create/json` or `…/create-from-csr/json` is answered on
 * the request topic + `/accepted` with the new certificate (and, for create, its private key) and a
 * certificate ownership token, or + `/rejected` with `{statusCode, errorCode, errorMessage}`.
 *
 * What AWS documents and this does: the certificate is created PENDING_ACTIVATION (RegisterThing
 * sets it ACTIVE or INACTIVE as the template says); the token expires after one hour, and a
 * certificate still pending then is deleted; the answer goes "through the same MQTT connection used
 * to publish the API request" (`reply` addresses the requesting client id only, which matters: all
 * devices of a fleet share the claim certificate and its right to receive these topics).
 *
 * What AWS does not document, chosen here: the error codes. Every rejection is `statusCode` 400
 * with `InvalidPayload` (not UTF-8, not JSON, not an object, nested past the limit, a missing or
 * oversize field) or `InvalidCSR` (the CSR cannot be read, its signature is wrong, its key is not
 * RSA ≥ 2048 or EC on P-256/384/521, the CA's rule for the HTTP CreateCertificateFromCsr too);
 * 429 `Throttling` when too many tokens are outstanding; 500 `InternalFailure` for anything else.
 * An empty payload on `create` is read as `{}` (the request has no fields).
 */

/** AWS IoT API Reference, CreateCertificateFromCsr: certificateSigningRequest is 1 to 4096 characters. */
export const MAX_CSR_LENGTH = 4096;

/** The depth a request may nest: both requests are flat objects; anything deeper is refused unwalked. */
const MAX_REQUEST_DEPTH = 2;

export interface CertificatesMqttDeps {
  readonly ca: Pick<LocalCa, 'createKeysAndCertificate' | 'certificateFromCsr'>;
  readonly registry: Pick<Registry, 'registerCertificate' | 'deleteCertificate' | 'describeCertificate'>;
  readonly tokens: OwnershipTokens;
  /** Publishes an answer to the one client that asked (QoS 0, see the broker bus's `to`). */
  readonly reply: (clientId: string, topic: string, payload: string) => Promise<void>;
  /** The certificate a connected client id connected with; undefined when it is gone. */
  readonly certificateOf: (clientId: string) => string | undefined;
  readonly logger?: Logger;
}

export interface CertificatesMqtt extends Answering {
  /** Deletes the certificates whose token expired while they were still pending (AWS deletes them). */
  sweep(): void;
}

const invalidPayload = (message: string) => new ProvisioningRejection(400, 'InvalidPayload', message);

/** The request object, read as hostile input: UTF-8, JSON, an object, at most two levels deep. */
export function parseCertificateRequest(kind: CertificateRequestKind, payload: Uint8Array): JsonObject {
  if (kind === 'create' && payload.length === 0) return {};
  return parseRequestObject(payload, MAX_REQUEST_DEPTH);
}

/** certificateSigningRequest of a create-from-csr request: the protocol's schema (as the HTTP API reads it) plus AWS's length. */
export function csrOf(doc: JsonObject): string {
  const result = validateWith(createCertificateFromCsrBodySchema, doc);
  if (!result.ok) throw invalidPayload(result.issues[0]?.message ?? 'certificateSigningRequest is required.');
  const csr = result.value.certificateSigningRequest;
  if (csr.length === 0 || csr.length > MAX_CSR_LENGTH) {
    throw invalidPayload(`certificateSigningRequest must be 1 to ${MAX_CSR_LENGTH} characters.`);
  }
  return csr;
}

export function createCertificatesMqtt(deps: CertificatesMqttDeps): CertificatesMqtt {
  const log = (deps.logger ?? silentLogger()).child({ component: 'fleet-provisioning-mqtt' });

  function sweep(): void {
    for (const certificateId of deps.tokens.sweep()) {
      try {
        // Only a certificate nobody activated: RegisterThing may have set it ACTIVE or INACTIVE
        // (then it is the thing's), and one attached since is kept (deleteCertificate refuses it).
        if (deps.registry.describeCertificate(certificateId).status !== 'PENDING_ACTIVATION') continue;
        deps.registry.deleteCertificate(certificateId);
        log.info({ certificateId }, 'pending certificate deleted: its ownership token expired');
      } catch (err) {
        if (err instanceof RegistryError && err.code === 'ResourceNotFoundException') continue;
        log.warn({ err, certificateId }, 'pending certificate with an expired token not deleted');
      }
    }
  }

  /** Registers the certificate PENDING_ACTIVATION with a token; throttled (and nothing registered) past the bound. */
  function register(certificatePem: string, clientId: string) {
    sweep();
    const cert = deps.registry.registerCertificate({ certificatePem, status: 'PENDING_ACTIVATION' });
    const token = deps.tokens.issue(cert.certificateId, deps.certificateOf(clientId));
    if (token === undefined) {
      deps.registry.deleteCertificate(cert.certificateId);
      throw new ProvisioningRejection(429, 'Throttling', 'Too many certificates are waiting to be provisioned.');
    }
    return { cert, token };
  }

  async function perform(kind: CertificateRequestKind, payload: Uint8Array, clientId: string): Promise<JsonObject> {
    const doc = parseCertificateRequest(kind, payload);
    if (kind === 'create') {
      const issued = await deps.ca.createKeysAndCertificate();
      const { cert, token } = register(issued.certificatePem, clientId);
      return {
        certificateId: cert.certificateId,
        certificatePem: cert.certificatePem,
        privateKey: issued.privateKeyPem,
        certificateOwnershipToken: token,
      };
    }
    let pem: string;
    try {
      pem = await deps.ca.certificateFromCsr(csrOf(doc));
    } catch (err) {
      if (err instanceof CsrError) throw new ProvisioningRejection(400, 'InvalidCSR', err.message);
      throw err;
    }
    const { cert, token } = register(pem, clientId);
    return { certificateOwnershipToken: token, certificateId: cert.certificateId, certificatePem: cert.certificatePem };
  }

  const answering = createAnswering<CertificateRequestKind>({
    log,
    what: 'certificate request',
    route: certificateRequestOf,
    answerTopics: (kind) => ({
      accepted: certificateResponseTopic(kind, 'accepted'),
      rejected: certificateResponseTopic(kind, 'rejected'),
    }),
    perform,
    reply: deps.reply,
  });

  return {
    handle: answering.handle,
    idle: answering.idle,
    sweep,
  };
}
