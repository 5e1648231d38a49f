import { createHash, createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CertificateStateException,
  CreateCertificateFromCsrCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  DeleteCertificateCommand,
  DeleteConflictException,
  DeletePolicyCommand,
  DeleteThingCommand,
  DescribeCertificateCommand,
  DescribeEndpointCommand,
  DescribeThingCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  GetPolicyCommand,
  InvalidRequestException,
  IoTClient,
  type IoTServiceException,
  ListAttachedPoliciesCommand,
  ListCertificatesCommand,
  ListPoliciesCommand,
  ListThingPrincipalsCommand,
  ListThingsCommand,
  MalformedPolicyException,
  paginateListCertificates,
  paginateListPolicies,
  paginateListThings,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
  UpdateCertificateCommand,
  UpdateThingCommand,
  VersionConflictException,
} from '@aws-sdk/client-iot';
import { recommendedDevicePolicy } from '@pifleet/protocol';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as x509 from '../../src/ca/x509.js';
import { resolveLimits } from '../../src/limits/index.js';
import { credentialsFrom, iotClient, type RunningCore, removeDir, startCore, tempDir } from './harness.js';

/** The IoT control plane, driven only through the real @aws-sdk/client-iot. */

/**
 * Rates and counts off (sizes stay): this file is about the operations' semantics, and its calls
 * come faster than IoT's API rates allow (CreateThing was throttled in a CI run on Node 22). The
 * quotas have their own suites (limits/api-rates.test.ts, broker/quotas-api.test.ts).
 */
const SEMANTICS_ONLY = { limits: resolveLimits('off') };

let dir: string;
let run: RunningCore;
let iot: IoTClient;

beforeAll(async () => {
  dir = tempDir('control-plane');
  run = await startCore(dir, SEMANTICS_ONLY);
  iot = run.iot;
});

afterAll(async () => {
  await run?.stop();
  removeDir(dir);
});

/** A middleware that rewrites the serialized request body (and its content-length). */
function rewriteBody(rewrite: (body: string) => string | Uint8Array): never {
  type Args = { request: { body?: unknown; headers: Record<string, string> } };
  const middleware = (next: (args: Args) => Promise<unknown>) => async (args: Args) => {
    const body = rewrite(String(args.request.body ?? ''));
    args.request.body = body;
    args.request.headers['content-length'] = String(Buffer.byteLength(body));
    return next(args);
  };
  // Typed as never: the SDK's middleware types are overloaded per step; this one fits build and finalize.
  return middleware as never;
}

type ErrorClass = abstract new (...args: never[]) => IoTServiceException;

async function expectAwsError(promise: Promise<unknown>, type: ErrorClass | string, status: number): Promise<Error> {
  const err = await promise.then(
    () => {
      throw new Error('expected the request to fail');
    },
    (e: unknown) => e as IoTServiceException,
  );
  if (typeof type === 'string') expect(err.name).toBe(type);
  else expect(err).toBeInstanceOf(type);
  expect(err.$metadata.httpStatusCode).toBe(status);
  expect(err.message.length).toBeGreaterThan(0);
  return err;
}

const policyText = JSON.stringify(recommendedDevicePolicy('us-east-1', '000000000000'));
let uniq = 0;
const name = (prefix: string) => `${prefix}-${++uniq}`;

async function newCert(active = true) {
  return iot.send(new CreateKeysAndCertificateCommand({ setAsActive: active }));
}

describe('things', () => {
  it('creates, describes, updates with merge and replace, and deletes a thing', async () => {
    const thingName = name('pi');
    const created = await iot.send(
      new CreateThingCommand({ thingName, attributePayload: { attributes: { room: 'lab', model: 'pi4' } } }),
    );
    expect(created.thingName).toBe(thingName);
    expect(created.thingArn).toBe(`arn:aws:iot:us-east-1:000000000000:thing/${thingName}`);
    expect(created.thingId).toMatch(/^[0-9a-f-]{36}$/);

    const described = await iot.send(new DescribeThingCommand({ thingName }));
    expect(described).toMatchObject({
      thingName,
      defaultClientId: thingName,
      thingId: created.thingId,
      thingArn: created.thingArn,
      attributes: { room: 'lab', model: 'pi4' },
      version: 1,
    });

    await iot.send(
      new UpdateThingCommand({
        thingName,
        attributePayload: { attributes: { room: 'attic', model: '' }, merge: true },
      }),
    );
    let after = await iot.send(new DescribeThingCommand({ thingName }));
    expect(after.attributes).toEqual({ room: 'attic' });
    expect(after.version).toBe(2);

    await iot.send(new UpdateThingCommand({ thingName, attributePayload: { attributes: { site: 'b' } } }));
    after = await iot.send(new DescribeThingCommand({ thingName }));
    expect(after.attributes).toEqual({ site: 'b' });
    expect(after.version).toBe(3);

    await expectAwsError(
      iot.send(new UpdateThingCommand({ thingName, expectedVersion: 1, attributePayload: { attributes: {} } })),
      VersionConflictException,
      409,
    );
    await expectAwsError(
      iot.send(new DeleteThingCommand({ thingName, expectedVersion: 2 })),
      VersionConflictException,
      409,
    );
    await iot.send(new DeleteThingCommand({ thingName, expectedVersion: 3 }));
    await expectAwsError(iot.send(new DescribeThingCommand({ thingName })), ResourceNotFoundException, 404);
  });

  it('is idempotent for the same attributes and refuses a duplicate with different ones', async () => {
    const thingName = name('dup');
    const first = await iot.send(new CreateThingCommand({ thingName, attributePayload: { attributes: { a: '1' } } }));
    const again = await iot.send(new CreateThingCommand({ thingName, attributePayload: { attributes: { a: '1' } } }));
    expect(again.thingId).toBe(first.thingId);
    await expectAwsError(
      iot.send(new CreateThingCommand({ thingName, attributePayload: { attributes: { a: '2' } } })),
      ResourceAlreadyExistsException,
      409,
    );
  });

  it.each([
    [
      'an unknown thing',
      () => new DescribeThingCommand({ thingName: 'no-such-thing' }),
      ResourceNotFoundException,
      404,
    ],
    ['an invalid thing name', () => new CreateThingCommand({ thingName: 'bad name!' }), InvalidRequestException, 400],
    [
      'an unknown thing type',
      () => new CreateThingCommand({ thingName: 'typed', thingTypeName: 'Sensor' }),
      ResourceNotFoundException,
      404,
    ],
    [
      'an update of an unknown thing',
      () => new UpdateThingCommand({ thingName: 'no-such-thing', attributePayload: { attributes: { a: 'b' } } }),
      ResourceNotFoundException,
      404,
    ],
    [
      'an invalid attribute value',
      () => new CreateThingCommand({ thingName: 'attr', attributePayload: { attributes: { a: 'has space' } } }),
      InvalidRequestException,
      400,
    ],
    ['a page size of 0', () => new ListThingsCommand({ maxResults: 0 }), InvalidRequestException, 400],
    ['a forged nextToken', () => new ListThingsCommand({ nextToken: 'garbage' }), InvalidRequestException, 400],
  ] as const)('rejects %s', async (_label, command, type, status) => {
    await expectAwsError(iot.send(command() as never), type, status);
  });

  it('succeeds deleting a thing that does not exist, as AWS does', async () => {
    await expect(iot.send(new DeleteThingCommand({ thingName: 'never-created' }))).resolves.toBeDefined();
  });

  it('pages through things with nextToken/maxResults and filters by attribute', async () => {
    const prefix = name('fleet');
    for (let i = 0; i < 7; i++) {
      await iot.send(
        new CreateThingCommand({
          thingName: `${prefix}-${i}`,
          attributePayload: { attributes: { fleet: prefix, parity: i % 2 === 0 ? 'even' : 'odd' } },
        }),
      );
    }
    const first = await iot.send(
      new ListThingsCommand({ maxResults: 3, attributeName: 'fleet', attributeValue: prefix }),
    );
    expect(first.things?.map((t) => t.thingName)).toEqual([`${prefix}-0`, `${prefix}-1`, `${prefix}-2`]);
    expect(first.nextToken).toBeTypeOf('string');

    const pages: string[][] = [];
    for await (const page of paginateListThings(
      { client: iot, pageSize: 3 },
      { attributeName: 'fleet', attributeValue: prefix },
    )) {
      pages.push((page.things ?? []).map((t) => t.thingName as string));
    }
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat()).toEqual(Array.from({ length: 7 }, (_, i) => `${prefix}-${i}`));

    const odd = await iot.send(
      new ListThingsCommand({ attributeName: 'parity', attributeValue: 'od', usePrefixAttributeValue: true }),
    );
    expect(odd.things?.filter((t) => t.thingName?.startsWith(prefix)).map((t) => t.thingName)).toEqual([
      `${prefix}-1`,
      `${prefix}-3`,
      `${prefix}-5`,
    ]);
    const thing = first.things?.[0];
    expect(thing).toMatchObject({ version: 1, thingArn: expect.stringContaining(':thing/') });
  });
});

describe('certificates', () => {
  it('creates keys and an ACTIVE certificate whose id is the SHA-256 of its DER', async () => {
    const created = await newCert(true);
    const cert = new X509Certificate(created.certificatePem as string);
    expect(created.certificateId).toBe(createHash('sha256').update(cert.raw).digest('hex'));
    expect(created.certificateArn).toBe(`arn:aws:iot:us-east-1:000000000000:cert/${created.certificateId}`);
    expect(created.keyPair?.PrivateKey).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
    expect(created.keyPair?.PublicKey).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(cert.checkPrivateKey(createPrivateKey(created.keyPair?.PrivateKey as string))).toBe(true);
    const ca = new X509Certificate(readFileSync(run.info.caFile));
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);

    const described = await iot.send(new DescribeCertificateCommand({ certificateId: created.certificateId }));
    const d = described.certificateDescription;
    expect(d?.status).toBe('ACTIVE');
    expect(d?.certificatePem).toBe(created.certificatePem);
    expect(d?.ownedBy).toBe('000000000000');
    expect(d?.creationDate).toBeInstanceOf(Date);
    expect(Math.abs((d?.creationDate?.getTime() ?? 0) - Date.now())).toBeLessThan(60_000);
    expect(d?.validity?.notAfter?.getUTCFullYear()).toBe(2049);
  });

  it('creates an INACTIVE certificate unless setAsActive, and moves it through the statuses', async () => {
    const created = await newCert(false);
    const certificateId = created.certificateId as string;
    const status = async () =>
      (await iot.send(new DescribeCertificateCommand({ certificateId }))).certificateDescription?.status;
    expect(await status()).toBe('INACTIVE');
    await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'ACTIVE' }));
    expect(await status()).toBe('ACTIVE');
    await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'REVOKED' }));
    expect(await status()).toBe('REVOKED');
    await expectAwsError(
      iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'ACTIVE' })),
      CertificateStateException,
      406,
    );
    await expectAwsError(
      iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'BOGUS' as never })),
      InvalidRequestException,
      400,
    );
  });

  it('enforces the delete constraints: ACTIVE, attached to a thing, policies attached', async () => {
    const created = await newCert(true);
    const certificateId = created.certificateId as string;
    const principal = created.certificateArn as string;
    await expectAwsError(iot.send(new DeleteCertificateCommand({ certificateId })), CertificateStateException, 406);

    const thingName = name('holder');
    await iot.send(new CreateThingCommand({ thingName }));
    await iot.send(new AttachThingPrincipalCommand({ thingName, principal }));
    await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
    await expectAwsError(iot.send(new DeleteCertificateCommand({ certificateId })), DeleteConflictException, 409);
    await expectAwsError(
      iot.send(new DeleteCertificateCommand({ certificateId, forceDelete: true })),
      DeleteConflictException,
      409,
    );
    await expectAwsError(iot.send(new DeleteThingCommand({ thingName })), InvalidRequestException, 400);
    await iot.send(new DetachThingPrincipalCommand({ thingName, principal }));

    const policyName = name('pol');
    await iot.send(new CreatePolicyCommand({ policyName, policyDocument: policyText }));
    await iot.send(new AttachPolicyCommand({ policyName, target: principal }));
    await expectAwsError(iot.send(new DeleteCertificateCommand({ certificateId })), DeleteConflictException, 409);
    await expectAwsError(iot.send(new DeletePolicyCommand({ policyName })), DeleteConflictException, 409);

    await iot.send(new DeleteCertificateCommand({ certificateId, forceDelete: true }));
    await expectAwsError(iot.send(new DescribeCertificateCommand({ certificateId })), ResourceNotFoundException, 404);
    await iot.send(new DeletePolicyCommand({ policyName }));
    await iot.send(new DeleteThingCommand({ thingName }));
  });

  it.each([
    [
      'an unknown certificate',
      () => new DescribeCertificateCommand({ certificateId: 'a'.repeat(64) }),
      ResourceNotFoundException,
      404,
    ],
    [
      'a malformed certificate id',
      () => new DescribeCertificateCommand({ certificateId: 'xyz' }),
      InvalidRequestException,
      400,
    ],
    [
      'deleting an unknown certificate',
      () => new DeleteCertificateCommand({ certificateId: 'b'.repeat(64) }),
      ResourceNotFoundException,
      404,
    ],
    ['a page size over 250', () => new ListCertificatesCommand({ pageSize: 251 }), InvalidRequestException, 400],
  ] as const)('rejects %s', async (_label, command, type, status) => {
    await expectAwsError(iot.send(command() as never), type, status);
  });

  it('lists certificates newest first by default, oldest first on request, page by page', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await newCert(false)).certificateId as string);
    const all: string[] = [];
    for await (const page of paginateListCertificates({ client: iot, pageSize: 2 }, {})) {
      expect((page.certificates ?? []).length).toBeLessThanOrEqual(2);
      for (const c of page.certificates ?? []) {
        expect(c).toMatchObject({ status: expect.any(String), certificateMode: 'DEFAULT' });
        expect(c.creationDate).toBeInstanceOf(Date);
        all.push(c.certificateId as string);
      }
    }
    expect(new Set(all).size).toBe(all.length);
    expect(all.slice(0, 3)).toEqual([...ids].reverse());
    const ascending = await iot.send(new ListCertificatesCommand({ ascendingOrder: true, pageSize: 250 }));
    expect(ascending.certificates?.map((c) => c.certificateId)).toEqual([...all].reverse());
  });
});

describe('CreateCertificateFromCsr', () => {
  const crypto = webcrypto;

  async function csrFor(
    algorithm: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams,
    signing: webcrypto.Algorithm | webcrypto.EcdsaParams,
  ) {
    const keys = (await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create(
      { name: 'CN=csr-device', keys, signingAlgorithm: signing },
      crypto,
    );
    const spki = Buffer.from(await crypto.subtle.exportKey('spki', keys.publicKey));
    return { pem: csr.toString('pem'), spki };
  }

  it.each([
    [
      'RSA-2048',
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      { name: 'RSASSA-PKCS1-v1_5' },
    ],
    ['EC P-256', { name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' }],
  ] as const)('signs a %s CSR with the local CA, keeping its public key', async (_label, alg, signing) => {
    const { pem, spki } = await csrFor(alg as never, signing as never);
    const out = await iot.send(
      new CreateCertificateFromCsrCommand({ certificateSigningRequest: pem, setAsActive: true }),
    );
    const cert = new X509Certificate(out.certificatePem as string);
    expect(cert.publicKey.export({ format: 'der', type: 'spki' }).equals(spki)).toBe(true);
    expect(cert.subject).toBe('CN=csr-device');
    expect(cert.verify(new X509Certificate(readFileSync(run.info.caFile)).publicKey)).toBe(true);
    expect(out.certificateId).toBe(createHash('sha256').update(cert.raw).digest('hex'));
    const d = await iot.send(new DescribeCertificateCommand({ certificateId: out.certificateId }));
    expect(d.certificateDescription?.status).toBe('ACTIVE');
  });

  it('rejects a CSR that is not PEM PKCS#10', async () => {
    await expectAwsError(
      iot.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: 'not a csr' })),
      InvalidRequestException,
      400,
    );
  });

  it('rejects a CSR whose signature does not match its content', async () => {
    const { pem } = await csrFor({ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' });
    const der = Buffer.from(x509.PemConverter.decodeFirst(pem));
    // Flip a bit inside the subject's CN (the signed part), keeping the DER well-formed.
    const at = der.indexOf(Buffer.from('csr-device'));
    der[at] = (der[at] as number) ^ 0x01;
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    const err = await expectAwsError(
      iot.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: tampered })),
      InvalidRequestException,
      400,
    );
    expect(err.message).toMatch(/signature/i);
  });

  it('rejects an RSA key shorter than 2048 bits', async () => {
    const { pem } = await csrFor(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      { name: 'RSASSA-PKCS1-v1_5' },
    );
    await expectAwsError(
      iot.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: pem })),
      InvalidRequestException,
      400,
    );
  });
});

describe('policies and attachments', () => {
  it('creates, reads, lists, attaches, detaches and deletes policies', async () => {
    const policyName = name('device-policy');
    const created = await iot.send(new CreatePolicyCommand({ policyName, policyDocument: policyText }));
    expect(created).toMatchObject({
      policyName,
      policyArn: `arn:aws:iot:us-east-1:000000000000:policy/${policyName}`,
      policyDocument: policyText,
      policyVersionId: '1',
    });
    const got = await iot.send(new GetPolicyCommand({ policyName }));
    expect(got).toMatchObject({ policyName, policyDocument: policyText, defaultVersionId: '1' });
    expect(got.creationDate).toBeInstanceOf(Date);

    await expectAwsError(
      iot.send(new CreatePolicyCommand({ policyName, policyDocument: policyText })),
      ResourceAlreadyExistsException,
      409,
    );

    const cert = await newCert(true);
    const principal = cert.certificateArn as string;
    const second = name('extra-policy');
    await iot.send(new CreatePolicyCommand({ policyName: second, policyDocument: policyText }));
    await iot.send(new AttachPolicyCommand({ policyName, target: principal }));
    await iot.send(new AttachPolicyCommand({ policyName: second, target: principal }));
    await iot.send(new AttachPolicyCommand({ policyName, target: principal }));
    const attached = await iot.send(new ListAttachedPoliciesCommand({ target: principal, pageSize: 1 }));
    expect(attached.policies).toEqual([{ policyName, policyArn: created.policyArn }]);
    expect(attached.nextMarker).toBeTypeOf('string');
    const rest = await iot.send(new ListAttachedPoliciesCommand({ target: principal, marker: attached.nextMarker }));
    expect(rest.policies?.map((p) => p.policyName)).toEqual([second]);
    expect(rest.nextMarker).toBeUndefined();

    await iot.send(new DetachPolicyCommand({ policyName, target: principal }));
    const afterDetach = await iot.send(new ListAttachedPoliciesCommand({ target: principal }));
    expect(afterDetach.policies?.map((p) => p.policyName)).toEqual([second]);
    await iot.send(new DeletePolicyCommand({ policyName }));
    await expectAwsError(iot.send(new GetPolicyCommand({ policyName })), ResourceNotFoundException, 404);
  });

  it('pages through policies', async () => {
    const names = [name('pp'), name('pp'), name('pp')];
    for (const policyName of names) await iot.send(new CreatePolicyCommand({ policyName, policyDocument: policyText }));
    const seen: string[] = [];
    for await (const page of paginateListPolicies({ client: iot, pageSize: 2 }, { ascendingOrder: true })) {
      expect((page.policies ?? []).length).toBeLessThanOrEqual(2);
      seen.push(...(page.policies ?? []).map((p) => p.policyName as string));
    }
    expect(seen.filter((n) => names.includes(n))).toEqual(names);
    const newest = await iot.send(new ListPoliciesCommand({ pageSize: 1 }));
    expect(newest.policies?.[0]?.policyName).toBe(names[2]);
  });

  it.each([
    ['malformed JSON', '{"Version":', MalformedPolicyException],
    ['no statements', '{"Version":"2012-10-17","Statement":[]}', MalformedPolicyException],
    [
      'a bad Effect',
      '{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"iot:Connect","Resource":"*"}]}',
      MalformedPolicyException,
    ],
  ] as const)('rejects a policy document with %s', async (_label, policyDocument, type) => {
    await expectAwsError(iot.send(new CreatePolicyCommand({ policyName: name('bad'), policyDocument })), type, 400);
  });

  it.each([
    [
      'attaching an unknown policy',
      () =>
        new AttachPolicyCommand({
          policyName: 'nope',
          target: `arn:aws:iot:us-east-1:000000000000:cert/${'c'.repeat(64)}`,
        }),
      ResourceNotFoundException,
      404,
    ],
    [
      'listing the principals of an unknown thing',
      () => new ListThingPrincipalsCommand({ thingName: 'ghost' }),
      ResourceNotFoundException,
      404,
    ],
    [
      'attaching an unknown principal',
      () => new AttachThingPrincipalCommand({ thingName: 'ghost', principal: 'x' }),
      ResourceNotFoundException,
      404,
    ],
    [
      'an invalid endpoint type',
      () => new DescribeEndpointCommand({ endpointType: 'iot:Nope' }),
      InvalidRequestException,
      400,
    ],
  ] as const)('rejects %s', async (_label, command, type, status) => {
    await expectAwsError(iot.send(command() as never), type, status);
  });

  it('attaches, lists (paginated) and detaches thing principals', async () => {
    const thingName = name('multi');
    await iot.send(new CreateThingCommand({ thingName }));
    const arns = [(await newCert()).certificateArn, (await newCert()).certificateArn] as string[];
    for (const principal of arns) await iot.send(new AttachThingPrincipalCommand({ thingName, principal }));
    const first = await iot.send(new ListThingPrincipalsCommand({ thingName, maxResults: 1 }));
    expect(first.principals).toEqual([arns[0]]);
    const second = await iot.send(new ListThingPrincipalsCommand({ thingName, nextToken: first.nextToken }));
    expect(second.principals).toEqual([arns[1]]);
    expect(second.nextToken).toBeUndefined();
    await iot.send(new DetachThingPrincipalCommand({ thingName, principal: arns[0] }));
    const after = await iot.send(new ListThingPrincipalsCommand({ thingName }));
    expect(after.principals).toEqual([arns[1]]);
    await expectAwsError(
      iot.send(new AttachThingPrincipalCommand({ thingName, principal: 'not-an-arn' })),
      InvalidRequestException,
      400,
    );
  });

  it('DescribeEndpoint returns the broker host', async () => {
    const ats = await iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }));
    expect(ats.endpointAddress).toBe(run.info.mqtt.host);
    const legacy = await iot.send(new DescribeEndpointCommand({}));
    expect(legacy.endpointAddress).toBe(run.info.mqtt.host);
  });
});

describe('request bodies', () => {
  const nested = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
  const deep = nested(10_000);

  /** Sends `command` with its serialized body replaced by `body`, correctly signed. */
  async function sendWithBody(command: () => unknown, body: string | Uint8Array) {
    const client = iotClient(run.info);
    client.middlewareStack.add(
      rewriteBody(() => body),
      { step: 'build', priority: 'low', name: 'replaceBody' },
    );
    try {
      return await client.send(command() as never);
    } finally {
      client.destroy();
    }
  }

  it.each<[string, () => unknown, string, ErrorClass, number, string]>([
    [
      'a non-string thing type',
      () => new CreateThingCommand({ thingName: name('b') }),
      '{"thingTypeName":5}',
      InvalidRequestException,
      400,
      "'thingTypeName' must be a string.",
    ],
    [
      'a thing type before a malformed payload',
      () => new CreateThingCommand({ thingName: name('b') }),
      '{"thingTypeName":"Sensor","attributePayload":7}',
      ResourceNotFoundException,
      404,
      'Thing type Sensor cannot be found.',
    ],
    [
      'a thing type before a non-string billing group',
      () => new CreateThingCommand({ thingName: name('b') }),
      '{"thingTypeName":"Sensor","billingGroupName":5}',
      ResourceNotFoundException,
      404,
      'Thing type Sensor cannot be found.',
    ],
    [
      'a billing group',
      () => new CreateThingCommand({ thingName: name('b') }),
      '{"billingGroupName":"g"}',
      ResourceNotFoundException,
      404,
      'Billing group g cannot be found.',
    ],
    [
      'a payload that is a list',
      () => new CreateThingCommand({ thingName: name('b') }),
      '{"attributePayload":[]}',
      InvalidRequestException,
      400,
      "'attributePayload' must be an object.",
    ],
    [
      'a merge that is not a boolean (named first)',
      () => new CreateThingCommand({ thingName: name('b') }),
      '{"attributePayload":{"attributes":5,"merge":null}}',
      InvalidRequestException,
      400,
      "'attributePayload.merge' must be a boolean.",
    ],
    [
      'attributes that are a list',
      () => new CreateThingCommand({ thingName: name('b') }),
      '{"attributePayload":{"attributes":["a"]}}',
      InvalidRequestException,
      400,
      "'attributePayload.attributes' must be an object of strings.",
    ],
    [
      'an attribute that is not a string',
      () => new CreateThingCommand({ thingName: name('b') }),
      '{"attributePayload":{"attributes":{"a":"1","b":2,"c":3}}}',
      InvalidRequestException,
      400,
      "Attribute 'b' must be a string.",
    ],
    [
      'an attribute __proto__ holding an object',
      () => new CreateThingCommand({ thingName: name('b') }),
      '{"attributePayload":{"attributes":{"__proto__":{"polluted":"yes"}}}}',
      InvalidRequestException,
      400,
      "Attribute '__proto__' must be a string.",
    ],
    [
      'an attribute nested 10,000 levels deep',
      () => new CreateThingCommand({ thingName: name('b') }),
      `{"attributePayload":{"attributes":{"a":${deep}}}}`,
      InvalidRequestException,
      400,
      'JSON is nested more than 64 levels deep',
    ],
    [
      'an expectedVersion that is not an integer',
      () => new UpdateThingCommand({ thingName: name('b') }),
      '{"expectedVersion":"1.5"}',
      InvalidRequestException,
      400,
      "'expectedVersion' must be an integer.",
    ],
    [
      'an expectedVersion beyond 2^53',
      () => new UpdateThingCommand({ thingName: name('b') }),
      '{"expectedVersion":9007199254740993}',
      InvalidRequestException,
      400,
      "'expectedVersion' must be an integer.",
    ],
    [
      'no policy document',
      () => new CreatePolicyCommand({ policyName: name('b'), policyDocument: '{}' }),
      '{}',
      InvalidRequestException,
      400,
      "'policyDocument' is required.",
    ],
    [
      'a policy document that is not a string',
      () => new CreatePolicyCommand({ policyName: name('b'), policyDocument: '{}' }),
      '{"policyDocument":{"Version":"2012-10-17"}}',
      InvalidRequestException,
      400,
      "'policyDocument' must be a string.",
    ],
    [
      'an empty target',
      () => new AttachPolicyCommand({ policyName: 'p', target: 't' }),
      '{"target":""}',
      InvalidRequestException,
      400,
      "'target' is required.",
    ],
    [
      'a null CSR',
      () => new CreateCertificateFromCsrCommand({ certificateSigningRequest: 'x' }),
      '{"certificateSigningRequest":null}',
      InvalidRequestException,
      400,
      "'certificateSigningRequest' is required.",
    ],
  ])('refuses %s with its message', async (_label, command, body, type, status, message) => {
    const err = await expectAwsError(sendWithBody(command, body), type, status);
    expect(err.message).toBe(message);
    expect(Object.keys(Object.prototype)).toEqual([]);
  });

  it('keeps an attribute named __proto__ or constructor as data, through HTTP into the registry', async () => {
    const thingName = name('odd');
    await sendWithBody(
      () => new CreateThingCommand({ thingName }),
      '{"attributePayload":{"attributes":{"__proto__":"p","constructor":"c"}}}',
    );
    for (const [attributeName, attributeValue] of [
      ['__proto__', 'p'],
      ['constructor', 'c'],
    ]) {
      const listed = await iot.send(new ListThingsCommand({ attributeName, attributeValue }));
      expect(listed.things?.map((t) => t.thingName)).toEqual([thingName]);
    }
    expect(Object.keys(Object.prototype)).toEqual([]);
  });

  // Routes read the fields they know and ignore the rest, so the server's body parser is what
  // refuses depth for every operation (the jobs routes once had a check of their own).
  it.each([
    ['CreateThing', 10_000],
    ['CreateThing', 64],
    ['CreatePolicy', 10_000],
  ])('refuses a %s body with an unknown field %i levels under it, and creates nothing', async (operation, levels) => {
    const resource = name('deep');
    const body = `{"policyDocument":"{}","unknownField":${nested(levels)}}`;
    const command =
      operation === 'CreateThing'
        ? () => new CreateThingCommand({ thingName: resource })
        : () => new CreatePolicyCommand({ policyName: resource, policyDocument: '{}' });
    const err = await expectAwsError(sendWithBody(command, body), InvalidRequestException, 400);
    expect(err.message).toBe('JSON is nested more than 64 levels deep');
    if (operation === 'CreateThing') {
      await expectAwsError(iot.send(new DescribeThingCommand({ thingName: resource })), ResourceNotFoundException, 404);
    } else {
      await expectAwsError(iot.send(new GetPolicyCommand({ policyName: resource })), ResourceNotFoundException, 404);
    }
  });

  it('takes a body 64 levels deep (the body object is the first), ignoring the field it does not read', async () => {
    const thingName = name('ignored');
    await sendWithBody(() => new CreateThingCommand({ thingName }), `{"unknownField":${nested(63)}}`);
    expect((await iot.send(new DescribeThingCommand({ thingName }))).thingName).toBe(thingName);
  });

  it('refuses a body that is not UTF-8 (400) rather than store U+FFFD for its bytes', async () => {
    const thingName = name('latin1');
    const policyName = name('latin1');
    // é as its Latin-1 byte (0xE9), which is not UTF-8.
    const attributes = Buffer.from('{"attributePayload":{"attributes":{"city":"Li\u00e8ge"}}}', 'latin1');
    const policy = Buffer.from(`{"policyDocument":${JSON.stringify(policyText)},"note":"caf\u00e9"}`, 'latin1');
    for (const [command, body] of [
      [() => new CreateThingCommand({ thingName }), attributes],
      [() => new CreatePolicyCommand({ policyName, policyDocument: '{}' }), policy],
    ] as const) {
      const err = await expectAwsError(sendWithBody(command, body), InvalidRequestException, 400);
      expect(err.message).toBe('The request body is not valid UTF-8.');
    }
    await expectAwsError(iot.send(new DescribeThingCommand({ thingName })), ResourceNotFoundException, 404);
    await expectAwsError(iot.send(new GetPolicyCommand({ policyName })), ResourceNotFoundException, 404);
  });

  it('answers a policy document nested 10,000 levels (a string in the body) with MalformedPolicyException', async () => {
    const err = await expectAwsError(
      iot.send(new CreatePolicyCommand({ policyName: name('deep'), policyDocument: deep })),
      MalformedPolicyException,
      400,
    );
    expect(err.message).toBe('The policy document is nested more than 64 levels deep.');
  });
});

describe('HTTP security', () => {
  it('rejects an unsigned request with 403 MissingAuthenticationTokenException', async () => {
    const res = await fetch(`${run.info.http}/things`);
    expect(res.status).toBe(403);
    expect(res.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException');
    expect(await res.json()).toEqual({ message: 'Missing Authentication Token' });
  });

  it('rejects a request signed with the wrong secret (InvalidSignatureException)', async () => {
    const good = await credentialsFrom(run.info.credentialsFile);
    const bad = iotClient(run.info, { accessKeyId: good.accessKeyId, secretAccessKey: `${good.secretAccessKey}x` });
    await expectAwsError(bad.send(new ListThingsCommand({})), 'InvalidSignatureException', 403);
    bad.destroy();
  });

  it('rejects an unknown access key (UnrecognizedClientException)', async () => {
    const bad = iotClient(run.info, { accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'x'.repeat(40) });
    await expectAwsError(bad.send(new ListThingsCommand({})), 'UnrecognizedClientException', 403);
    bad.destroy();
  });

  it('rejects a request whose body changed after signing', async () => {
    const client = iotClient(run.info);
    client.middlewareStack.addRelativeTo(
      // Same length, so only the signature can tell.
      rewriteBody((body) => body.replace('alice', 'mally')),
      { relation: 'after', toMiddleware: 'httpSigningMiddleware', name: 'tamper' },
    );
    const thingName = name('tampered');
    await expectAwsError(
      client.send(new CreateThingCommand({ thingName, attributePayload: { attributes: { owner: 'alice' } } })),
      'InvalidSignatureException',
      403,
    );
    await expectAwsError(iot.send(new DescribeThingCommand({ thingName })), ResourceNotFoundException, 404);
    client.destroy();
  });

  it('rejects a signature from a skewed clock, another region or another service', async () => {
    const creds = await credentialsFrom(run.info.credentialsFile);
    const skewed = new IoTClient({
      region: 'us-east-1',
      endpoint: run.info.http,
      credentials: creds,
      maxAttempts: 1,
      systemClockOffset: -20 * 60 * 1000,
    });
    const err = await expectAwsError(skewed.send(new ListThingsCommand({})), 'InvalidSignatureException', 403);
    expect(err.message).toMatch(/expired/i);
    skewed.destroy();

    const elsewhere = new IoTClient({
      region: 'eu-west-1',
      endpoint: run.info.http,
      credentials: creds,
      maxAttempts: 1,
    });
    await expectAwsError(elsewhere.send(new ListThingsCommand({})), 'InvalidSignatureException', 403);
    elsewhere.destroy();

    // A request signed for another service (here the data plane's `iotdata`) is refused by the
    // control-plane routes, which accept only `iot`.
    const signer = new SignatureV4({
      service: 'iotdata',
      region: 'us-east-1',
      credentials: creds,
      sha256: Hash.bind(null, 'sha256'),
    });
    const url = new URL('/things', run.info.http);
    const signed = await signer.sign({
      method: 'GET',
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      headers: { host: url.host },
      query: {},
    });
    const res = await fetch(url, { headers: signed.headers as Record<string, string> });
    expect(res.status).toBe(403);
    expect(res.headers.get('x-amzn-errortype')).toMatch(/^InvalidSignatureException/);
  });

  it.each([
    ['not JSON', '{"thingName":', /^The request body is not valid JSON: /],
    ['not an object', '[]', /^The request body must be a JSON object\.$/],
  ])(
    'refuses a signed CreateThing body %s with 400 InvalidRequestException, and creates nothing',
    async (_n, body, message) => {
      const creds = await credentialsFrom(run.info.credentialsFile);
      const signer = new SignatureV4({
        service: 'iot',
        region: 'us-east-1',
        credentials: creds,
        sha256: Hash.bind(null, 'sha256'),
      });
      const url = new URL('/things/hostile-body', run.info.http);
      const signed = await signer.sign({
        method: 'POST',
        protocol: 'http:',
        hostname: url.hostname,
        port: Number(url.port),
        path: url.pathname,
        headers: { host: url.host, 'content-type': 'application/json' },
        query: {},
        body,
      });
      const res = await fetch(url, { method: 'POST', headers: signed.headers as Record<string, string>, body });
      expect(res.status).toBe(400);
      expect(res.headers.get('x-amzn-errortype')).toMatch(/^InvalidRequestException/);
      expect(((await res.json()) as { message: string }).message).toMatch(message);
      await expectAwsError(
        iot.send(new DescribeThingCommand({ thingName: 'hostile-body' })),
        'ResourceNotFoundException',
        404,
      );
    },
  );

  it('answers a body over 1 MiB with 413 before reading it all', async () => {
    const res = await fetch(`${run.info.http}/things/big`, {
      method: 'POST',
      body: Buffer.alloc(1024 * 1024 + 1, 0x20),
    });
    expect(res.status).toBe(413);
    expect(res.headers.get('x-amzn-errortype')).toBe('RequestEntityTooLargeException');
  });

  it('answers malformed JSON (correctly signed) with 400 InvalidRequestException', async () => {
    const client = iotClient(run.info);
    client.middlewareStack.add(
      rewriteBody(() => '{"attributePayload": '),
      { step: 'build', priority: 'low', name: 'breakJson' },
    );
    const err = await expectAwsError(
      client.send(new CreateThingCommand({ thingName: name('json') })),
      InvalidRequestException,
      400,
    );
    expect(err.message).toMatch(/not valid JSON/);
    client.destroy();
  });
});

describe('persistence', () => {
  it('keeps things, certificates, policies, attachments and credentials across a restart', async () => {
    const thingName = name('durable');
    const policyName = name('durable-policy');
    await iot.send(new CreateThingCommand({ thingName, attributePayload: { attributes: { k: 'v' } } }));
    const cert = await newCert(true);
    await iot.send(new CreatePolicyCommand({ policyName, policyDocument: policyText }));
    await iot.send(new AttachPolicyCommand({ policyName, target: cert.certificateArn }));
    await iot.send(new AttachThingPrincipalCommand({ thingName, principal: cert.certificateArn }));
    const caBefore = readFileSync(run.info.caFile, 'utf8');

    await run.stop();
    run = await startCore(dir, SEMANTICS_ONLY);
    iot = run.iot;

    expect(readFileSync(run.info.caFile, 'utf8')).toBe(caBefore);
    expect((await iot.send(new DescribeThingCommand({ thingName }))).attributes).toEqual({ k: 'v' });
    const d = await iot.send(new DescribeCertificateCommand({ certificateId: cert.certificateId }));
    expect(d.certificateDescription?.status).toBe('ACTIVE');
    expect((await iot.send(new ListThingPrincipalsCommand({ thingName }))).principals).toEqual([cert.certificateArn]);
    const attached = await iot.send(new ListAttachedPoliciesCommand({ target: cert.certificateArn }));
    expect(attached.policies?.map((p) => p.policyName)).toEqual([policyName]);
    const identity = run.core.services.registry.identityOf(cert.certificateId as string);
    expect(identity).toMatchObject({ status: 'ACTIVE', thingNames: [thingName] });
    expect(identity?.policies.map((p) => p.name)).toEqual([policyName]);
  });
});
