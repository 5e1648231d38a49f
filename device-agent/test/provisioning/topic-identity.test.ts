import { certificateTopics, provisionTopics } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { ProvisioningError, ProvisioningRejectedError } from '../../src/provisioning/errors.js';
import { readRegisterAnswer } from '../../src/provisioning/port.js';
import { createTopicIdentity } from '../../src/provisioning/topic-identity.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';
import { MemoryTransport } from '../app/fakes.js';

/**
 * The reserved-topic adapter on an in-memory transport (a fake of the port): what it subscribes
 * before it publishes, and what it makes of hostile or missing answers. It runs against the local
 * core's real answers over mqtt.js in test/e2e/agent-provisioning.test.ts.
 */

function setup(requestTimeoutMs = 5_000) {
  const transport = new MemoryTransport();
  transport.start();
  const clock = createVirtualClock();
  const identity = createTopicIdentity({ transport, clock, requestTimeoutMs });
  /** Waits for the next request to be published (the adapter subscribes first). */
  const published = async (topic: string) => {
    for (let i = 0; i < 50; i++) {
      const s = transport.sent.find((x) => x.topic === topic);
      if (s) return s;
      await new Promise((r) => setImmediate(r));
    }
    throw new Error(`nothing published on ${topic}`);
  };
  return { transport, clock, identity, published };
}

const CERT = { certificateId: 'c1', certificatePem: 'PEM', certificateOwnershipToken: 't1' };

describe('createTopicIdentity', () => {
  it('subscribes to the accepted and rejected topics before it publishes, and reads the accepted answer', async () => {
    const { transport, identity, published } = setup();
    await new Promise((r) => setImmediate(r));
    const answer = identity.createCertificateFromCsr('CSR');
    const sent = await published(certificateTopics.createFromCsr.request);
    expect(transport.subscriptions.has(certificateTopics.createFromCsr.accepted)).toBe(true);
    expect(transport.subscriptions.has(certificateTopics.createFromCsr.rejected)).toBe(true);
    expect(JSON.parse(sent.payload)).toEqual({ certificateSigningRequest: 'CSR' });
    transport.deliver(certificateTopics.createFromCsr.accepted, JSON.stringify(CERT));
    expect(await answer).toEqual(CERT);
  });

  it('a rejection is a ProvisioningRejectedError with the service’s fields', async () => {
    const { transport, identity, published } = setup();
    await new Promise((r) => setImmediate(r));
    const topics = provisionTopics('pifleet-claim');
    const answer = identity.registerThing('pifleet-claim', { certificateOwnershipToken: 't', parameters: { A: 'b' } });
    expect(JSON.parse((await published(topics.request)).payload)).toEqual({
      certificateOwnershipToken: 't',
      parameters: { A: 'b' },
    });
    transport.deliver(
      topics.rejected,
      JSON.stringify({ statusCode: 403, errorCode: 'AccessDenied', errorMessage: 'hook said no' }),
    );
    const err = await answer.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProvisioningRejectedError);
    expect(err).toMatchObject({
      statusCode: 403,
      errorCode: 'AccessDenied',
      errorMessage: 'hook said no',
      retryable: false,
    });
  });

  it.each([
    ['not JSON', 'accepted', 'hello', 'PROVISIONING_BAD_ANSWER'],
    [
      'an accepted answer without the token',
      'accepted',
      JSON.stringify({ certificateId: 'c', certificatePem: 'p' }),
      'PROVISIONING_BAD_ANSWER',
    ],
    [
      'a token under __proto__',
      'accepted',
      '{"certificateId":"c","certificatePem":"p","__proto__":{"certificateOwnershipToken":"t"}}',
      'PROVISIONING_BAD_ANSWER',
    ],
    ['a rejection without a statusCode', 'rejected', JSON.stringify({ errorCode: 'X' }), 'PROVISIONING_BAD_ANSWER'],
    ['10,000-deep JSON', 'rejected', `${'['.repeat(10_000)}${']'.repeat(10_000)}`, 'PROVISIONING_BAD_ANSWER'],
  ])('%s is a ProvisioningError, not a certificate', async (_label, outcome, payload, code) => {
    const { transport, identity, published } = setup();
    await new Promise((r) => setImmediate(r));
    const answer = identity.createCertificateFromCsr('CSR');
    await published(certificateTopics.createFromCsr.request);
    transport.deliver(
      outcome === 'accepted' ? certificateTopics.createFromCsr.accepted : certificateTopics.createFromCsr.rejected,
      payload,
    );
    const err = await answer.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProvisioningError);
    expect(err).not.toBeInstanceOf(ProvisioningRejectedError);
    expect((err as ProvisioningError).code).toBe(code);
  });

  it('fails at once when the connection is lost, and times out on the clock when no answer comes', async () => {
    const { transport, identity, clock, published } = setup(5_000);
    await new Promise((r) => setImmediate(r));
    const lost = identity.createKeysAndCertificate();
    await published(certificateTopics.create.request);
    transport.drop();
    await expect(lost).rejects.toMatchObject({ code: 'PROVISIONING_REQUEST_FAILED' });
    transport.connect();
    // Caught at once: it rejects while the clock is advanced, before anything awaits it.
    const silent = identity.createKeysAndCertificate().catch((e: unknown) => e);
    await new Promise((r) => setImmediate(r));
    await clock.advance(5_000);
    expect(await silent).toMatchObject({ code: 'PROVISIONING_REQUEST_TIMEOUT' });
  });

  it('one request per topic pair at a time: the second is published after the first is answered', async () => {
    const { transport, identity, published } = setup();
    await new Promise((r) => setImmediate(r));
    const first = identity.createKeysAndCertificate();
    const second = identity.createKeysAndCertificate();
    await published(certificateTopics.create.request);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(transport.sent.filter((s) => s.topic === certificateTopics.create.request)).toHaveLength(1);
    const keys = { ...CERT, privateKey: 'KEY' };
    transport.deliver(certificateTopics.create.accepted, JSON.stringify(keys));
    expect(await first).toEqual(keys);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(transport.sent.filter((s) => s.topic === certificateTopics.create.request)).toHaveLength(2);
    transport.deliver(certificateTopics.create.accepted, JSON.stringify({ ...keys, certificateId: 'c2' }));
    expect((await second).certificateId).toBe('c2');
  });

  it('after close(), requests are refused', async () => {
    const { identity } = setup();
    identity.close();
    await expect(identity.createKeysAndCertificate()).rejects.toMatchObject({ code: 'PROVISIONING_CLOSED' });
  });
});

describe('readRegisterAnswer', () => {
  it('keeps the device configuration’s strings in a null-prototype map, a __proto__ key as data', () => {
    const doc = JSON.parse('{"thingName":"pi-1","deviceConfiguration":{"__proto__":"x","a":"b","n":1}}');
    const out = readRegisterAnswer(doc);
    expect(out.thingName).toBe('pi-1');
    expect(Object.getPrototypeOf(out.deviceConfiguration)).toBe(null);
    expect(Object.keys(out.deviceConfiguration).sort()).toEqual(['__proto__', 'a']);
  });

  it('an answer without a thing name is refused (the agent needs one to run as)', () => {
    expect(() => readRegisterAnswer({ deviceConfiguration: {} })).toThrow(/RegisterThing answered without thingName/);
  });
});
