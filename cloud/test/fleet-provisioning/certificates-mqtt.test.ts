import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { certificateTopics, type JsonObject } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCa, loadOrCreateCa } from '../../src/ca/local-ca.js';
import * as x509 from '../../src/ca/x509.js';
import {
  type CertificatesMqtt,
  createCertificatesMqtt,
  MAX_CSR_LENGTH,
} from '../../src/fleet-provisioning/certificates-mqtt.js';
import {
  createOwnershipTokens,
  OWNERSHIP_TOKEN_TTL_MS,
  type OwnershipTokens,
} from '../../src/fleet-provisioning/ownership-tokens.js';
import { RegistryError } from '../../src/registry/errors.js';
import { openSqliteRegistry, type Registry } from '../../src/registry/sqlite-registry.js';
import { removeDir, tempDir } from '../../src/testing/in-process-core.js';

/**
 * The certificate requests' adapter against the real local CA and SQLite registry (no broker):
 * what each payload is answered with, that nothing is created for a refused request, that no
 * payload crashes it, and the expiry of pending certificates with their tokens.
 */

const crypto = webcrypto;
let dir: string;
let ca: LocalCa;
let registry: Registry;
let clock = 1_700_000_000_000;

beforeAll(async () => {
  dir = tempDir('fleet-prov-adapter');
  ca = await loadOrCreateCa({ dir: join(dir, 'ca'), now: () => clock });
  registry = openSqliteRegistry({
    file: join(dir, 'registry.sqlite'),
    account: { region: 'eu-west-1', accountId: '123456789012' },
    now: () => clock,
  });
});

afterAll(() => {
  registry?.close();
  removeDir(dir);
});

interface Answer {
  readonly clientId: string;
  readonly topic: string;
  readonly body: JsonObject;
}

function bed(options: { tokens?: OwnershipTokens } = {}) {
  const answers: Answer[] = [];
  const tokens = options.tokens ?? createOwnershipTokens({ now: () => clock });
  const mqtt: CertificatesMqtt = createCertificatesMqtt({
    ca,
    registry,
    tokens,
    async reply(clientId, topic, payload) {
      answers.push({ clientId, topic, body: JSON.parse(payload) as JsonObject });
    },
    certificateOf: (clientId) => (clientId === 'gone' ? undefined : `claim-of-${clientId}`),
  });
  async function ask(topic: string, payload: string | Uint8Array, clientId = 'device-1'): Promise<Answer> {
    const before = answers.length;
    await mqtt.handle({ topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, clientId });
    expect(answers.length).toBe(before + 1);
    return answers[before] as Answer;
  }
  return { mqtt, tokens, answers, ask };
}

async function csrPem(
  algorithm: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams | webcrypto.Algorithm,
  signing: webcrypto.Algorithm | webcrypto.EcdsaParams,
): Promise<string> {
  const keys = (await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: 'CN=claim-device', keys, signingAlgorithm: signing },
    crypto,
  );
  return csr.toString('pem');
}

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const EC_SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

const certificateCount = () => registry.listCertificates({ pageSize: 250 }).items.length;

describe('CreateKeysAndCertificate over MQTT', () => {
  it.each([
    ['{}', '{}'],
    ['an empty payload (the request has no fields)', ''],
    ['unknown fields', '{"clientToken":"x","extra":[1,2]}'],
  ])('answers %s on create/json/accepted with a pending certificate, its key and a token', async (_label, payload) => {
    const { ask, tokens } = bed();
    const answer = await ask(certificateTopics.create.request, payload);
    expect(answer.topic).toBe('$aws/certificates/create/json/accepted');
    expect(answer.clientId).toBe('device-1');
    expect(Object.keys(answer.body).sort()).toEqual([
      'certificateId',
      'certificateOwnershipToken',
      'certificatePem',
      'privateKey',
    ]);
    const { certificateId, certificatePem, privateKey, certificateOwnershipToken } = answer.body as Record<
      string,
      string
    >;
    const cert = new X509Certificate(certificatePem as string);
    // PKCS#1 (`BEGIN RSA PRIVATE KEY`), as the HTTP CreateKeysAndCertificate returns it, and the certificate's key.
    expect(privateKey).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
    expect(cert.checkPrivateKey(createPrivateKey(privateKey as string))).toBe(true);
    expect(cert.verify(new X509Certificate(ca.caCertPem).publicKey)).toBe(true);
    expect(registry.describeCertificate(certificateId as string).status).toBe('PENDING_ACTIVATION');
    expect(tokens.consumeOwnershipToken(certificateOwnershipToken as string)).toEqual({
      ok: true,
      certificateId,
      claimCertificateId: 'claim-of-device-1',
    });
  });
});

describe('CreateCertificateFromCsr over MQTT', () => {
  it.each([
    ['EC P-256', EC, EC_SIGN],
    [
      'RSA-2048',
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      { name: 'RSASSA-PKCS1-v1_5' },
    ],
  ] as const)(
    'signs a %s CSR: accepted with the certificate for its key and a token, no private key',
    async (_l, alg, sign) => {
      const { ask, tokens } = bed();
      const pem = await csrPem(alg as never, sign as never);
      const answer = await ask(
        certificateTopics.createFromCsr.request,
        JSON.stringify({ certificateSigningRequest: pem }),
      );
      expect(answer.topic).toBe('$aws/certificates/create-from-csr/json/accepted');
      expect(Object.keys(answer.body).sort()).toEqual(['certificateId', 'certificateOwnershipToken', 'certificatePem']);
      const cert = new X509Certificate(answer.body.certificatePem as string);
      const csr = new x509.Pkcs10CertificateRequest(pem);
      expect(Buffer.from(cert.publicKey.export({ format: 'der', type: 'spki' }))).toEqual(
        Buffer.from(csr.publicKey.rawData),
      );
      expect(registry.describeCertificate(answer.body.certificateId as string).status).toBe('PENDING_ACTIVATION');
      const consumed = tokens.consumeOwnershipToken(answer.body.certificateOwnershipToken as string);
      expect(consumed.ok && consumed.certificateId).toBe(answer.body.certificateId);
    },
  );

  it('rejects a CSR whose key is neither RSA nor EC (Ed25519) with InvalidCSR, creating nothing', async () => {
    const { ask } = bed();
    const pem = await csrPem({ name: 'Ed25519' }, { name: 'Ed25519' });
    const before = certificateCount();
    const answer = await ask(
      certificateTopics.createFromCsr.request,
      JSON.stringify({ certificateSigningRequest: pem }),
    );
    expect(answer.topic).toBe('$aws/certificates/create-from-csr/json/rejected');
    expect(answer.body).toEqual({
      statusCode: 400,
      errorCode: 'InvalidCSR',
      errorMessage: expect.stringMatching(/RSA .* or ECDSA/),
    });
    expect(certificateCount()).toBe(before);
  });

  it('rejects a CSR whose signature does not match its content with InvalidCSR', async () => {
    const { ask } = bed();
    const der = Buffer.from(x509.PemConverter.decodeFirst(await csrPem(EC, EC_SIGN)));
    const at = der.indexOf(Buffer.from('claim-device'));
    der[at] = (der[at] as number) ^ 0x01;
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    const answer = await ask(
      certificateTopics.createFromCsr.request,
      JSON.stringify({ certificateSigningRequest: tampered }),
    );
    expect(answer.body).toMatchObject({ statusCode: 400, errorCode: 'InvalidCSR' });
    expect(answer.body.errorMessage).toMatch(/signature/);
  });

  it('rejects an RSA key shorter than 2048 bits with InvalidCSR', async () => {
    const { ask } = bed();
    const pem = await csrPem(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      { name: 'RSASSA-PKCS1-v1_5' },
    );
    const answer = await ask(
      certificateTopics.createFromCsr.request,
      JSON.stringify({ certificateSigningRequest: pem }),
    );
    expect(answer.body).toMatchObject({ statusCode: 400, errorCode: 'InvalidCSR' });
  });
});

describe('hostile payloads: rejected with a reason, nothing created, never a crash', () => {
  const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  const deepObject = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
  it.each([
    ['create', 'not JSON', certificateTopics.create.request, 'not json', 'InvalidPayload', /not valid JSON/],
    ['create', 'a JSON array', certificateTopics.create.request, '[]', 'InvalidPayload', /JSON object/],
    ['create', 'a JSON string', certificateTopics.create.request, '"{}"', 'InvalidPayload', /JSON object/],
    ['create', 'JSON null', certificateTopics.create.request, 'null', 'InvalidPayload', /JSON object/],
    ['create', '10,000-deep arrays', certificateTopics.create.request, deep(10_000), 'InvalidPayload', /too deeply/],
    [
      'create',
      '10,000-deep objects',
      certificateTopics.create.request,
      deepObject(10_000),
      'InvalidPayload',
      /too deeply/,
    ],
    [
      'create',
      'invalid UTF-8',
      certificateTopics.create.request,
      Buffer.from([0x7b, 0xff, 0x7d]),
      'InvalidPayload',
      /UTF-8/,
    ],
    ['csr', 'an empty payload', certificateTopics.createFromCsr.request, '', 'InvalidPayload', /not valid JSON/],
    ['csr', 'no CSR', certificateTopics.createFromCsr.request, '{}', 'InvalidPayload', /certificateSigningRequest/],
    [
      'csr',
      'a CSR that is a number',
      certificateTopics.createFromCsr.request,
      '{"certificateSigningRequest":5}',
      'InvalidPayload',
      /certificateSigningRequest/,
    ],
    [
      'csr',
      'an empty CSR',
      certificateTopics.createFromCsr.request,
      '{"certificateSigningRequest":""}',
      'InvalidPayload',
      /certificateSigningRequest/,
    ],
    [
      'csr',
      'the CSR only under __proto__',
      certificateTopics.createFromCsr.request,
      '{"__proto__":{"certificateSigningRequest":"x"}}',
      'InvalidPayload',
      /certificateSigningRequest/,
    ],
    [
      'csr',
      `a CSR over ${MAX_CSR_LENGTH} characters`,
      certificateTopics.createFromCsr.request,
      JSON.stringify({ certificateSigningRequest: 'A'.repeat(MAX_CSR_LENGTH + 1) }),
      'InvalidPayload',
      /1 to 4096/,
    ],
    [
      'csr',
      'a CSR that is not PEM',
      certificateTopics.createFromCsr.request,
      '{"certificateSigningRequest":"hello"}',
      'InvalidCSR',
      /PKCS#10/,
    ],
    [
      'csr',
      '100 KB of nothing',
      certificateTopics.createFromCsr.request,
      ' '.repeat(100_000),
      'InvalidPayload',
      /not valid JSON/,
    ],
  ] as const)('%s: %s', async (_kind, _label, topic, payload, errorCode, message) => {
    const { ask } = bed();
    const before = certificateCount();
    const answer = await ask(topic, payload);
    expect(answer.topic).toBe(`${topic}/rejected`);
    expect(answer.body).toEqual({ statusCode: 400, errorCode, errorMessage: expect.stringMatching(message) });
    expect(certificateCount()).toBe(before);
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).certificateSigningRequest).toBeUndefined();
  });

  it('ignores answers, other topics, last wills and in-process publishes', async () => {
    const { mqtt, answers } = bed();
    for (const topic of [
      certificateTopics.create.accepted,
      certificateTopics.createFromCsr.rejected,
      '$aws/certificates/create/cbor',
      '$aws/certificates/create',
      'pifleet/x/telemetry',
    ]) {
      await mqtt.handle({ topic, payload: Buffer.from('{}'), clientId: 'device-1' });
    }
    await mqtt.handle({
      topic: certificateTopics.create.request,
      payload: Buffer.from('{}'),
      clientId: 'd',
      lastWill: true,
    });
    await mqtt.handle({ topic: certificateTopics.create.request, payload: Buffer.from('{}'), clientId: undefined });
    expect(answers).toEqual([]);
  });

  it('throttles past the outstanding tokens with 429, and leaves no certificate behind', async () => {
    const tokens = createOwnershipTokens({ now: () => clock, maxOutstanding: 1 });
    const { ask } = bed({ tokens });
    expect((await ask(certificateTopics.create.request, '{}')).topic).toBe(certificateTopics.create.accepted);
    const before = certificateCount();
    const answer = await ask(certificateTopics.create.request, '{}');
    expect(answer.body).toEqual({ statusCode: 429, errorCode: 'Throttling', errorMessage: expect.any(String) });
    expect(certificateCount()).toBe(before);
  });

  it('answers 500 InternalFailure when the CA fails unexpectedly, and keeps answering', async () => {
    const answers: Answer[] = [];
    let fail = true;
    const mqtt = createCertificatesMqtt({
      ca: {
        async createKeysAndCertificate() {
          if (fail) throw new Error('disk on fire');
          return ca.createKeysAndCertificate();
        },
        certificateFromCsr: (pem) => ca.certificateFromCsr(pem),
      },
      registry,
      tokens: createOwnershipTokens({ now: () => clock }),
      async reply(clientId, topic, payload) {
        answers.push({ clientId, topic, body: JSON.parse(payload) as JsonObject });
      },
      certificateOf: () => undefined,
    });
    await mqtt.handle({ topic: certificateTopics.create.request, payload: Buffer.from('{}'), clientId: 'c' });
    fail = false;
    await mqtt.handle({ topic: certificateTopics.create.request, payload: Buffer.from('{}'), clientId: 'c' });
    expect(answers.map((a) => a.topic)).toEqual([certificateTopics.create.rejected, certificateTopics.create.accepted]);
    expect(answers[0]?.body).toEqual({
      statusCode: 500,
      errorCode: 'InternalFailure',
      errorMessage: expect.any(String),
    });
  });
});

describe('pending certificates and their tokens', () => {
  it('deletes a certificate still pending when its token expires; keeps one that was activated', async () => {
    const { ask, mqtt, tokens } = bed();
    const abandoned = (await ask(certificateTopics.create.request, '{}')).body;
    const registered = (await ask(certificateTopics.create.request, '{}')).body;
    // What RegisterThing does with a good token: the certificate becomes ACTIVE.
    const used = tokens.consumeOwnershipToken(registered.certificateOwnershipToken as string);
    expect(used.ok).toBe(true);
    registry.updateCertificate(registered.certificateId as string, 'ACTIVE');

    clock += OWNERSHIP_TOKEN_TTL_MS - 1;
    mqtt.sweep();
    expect(registry.describeCertificate(abandoned.certificateId as string).status).toBe('PENDING_ACTIVATION');
    clock += 1;
    mqtt.sweep();
    expect(() => registry.describeCertificate(abandoned.certificateId as string)).toThrow(RegistryError);
    expect(registry.describeCertificate(registered.certificateId as string).status).toBe('ACTIVE');
    const late = tokens.consumeOwnershipToken(abandoned.certificateOwnershipToken as string);
    expect(late.ok ? undefined : late.error.problem).toBe('unknown');
  });

  it('keeps an expired pending certificate someone attached a policy to (deleteCertificate refuses it)', async () => {
    const { ask, mqtt } = bed();
    const body = (await ask(certificateTopics.create.request, '{}')).body;
    const cert = registry.describeCertificate(body.certificateId as string);
    registry.createPolicy(
      'kept-by-policy',
      JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
      }),
    );
    registry.attachPolicy('kept-by-policy', cert.certificateArn);
    clock += OWNERSHIP_TOKEN_TTL_MS;
    mqtt.sweep();
    expect(registry.describeCertificate(cert.certificateId).status).toBe('PENDING_ACTIVATION');
  });
});
