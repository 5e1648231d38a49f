import type { IoTClient } from '@aws-sdk/client-iot';
import { recommendedDevicePolicy } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { createAwsIotRegistry } from '../../src/adapters/aws-iot-registry.js';
import { systemClock } from '../../src/adapters/system-clock.js';
import { ApiRateLimiter } from '../../src/core/rate-limiter.js';
import { ConflictError } from '../../src/errors.js';

/** A control-plane client whose GetPolicy answers with this document (the SDK's client is the seam). */
function answering(policyDocument: string | undefined) {
  const client = { send: async () => ({ policyDocument }) };
  return createAwsIotRegistry({
    client: client as unknown as IoTClient,
    limiter: new ApiRateLimiter({ rates: {}, clock: systemClock }),
    clock: systemClock,
  });
}

describe('getPolicy reads the document back through the policy schema', () => {
  it('returns the document as the schema reads it', async () => {
    const doc = recommendedDevicePolicy('eu-west-1', '123456789012');
    expect(await answering(JSON.stringify(doc)).getPolicy('p')).toEqual(doc);
    const single = '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}';
    expect(await answering(single).getPolicy('p')).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 'iot:*', Resource: '*' }],
    });
  });

  it('returns undefined for a policy without a document', async () => {
    expect(await answering(undefined).getPolicy('p')).toBeUndefined();
  });

  it.each([
    ['not JSON', '{"Version":', /policy p holds a document pifleet cannot read: /],
    ['nested 10,000 levels', `${'['.repeat(10_000)}${']'.repeat(10_000)}`, /nested more than 64 levels/],
    [
      'outside the grammar',
      '{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"a","Resource":"r"}]}',
      /Statement\[0\]\.Effect: Effect must be 'Allow' or 'Deny'\./,
    ],
  ])('refuses a document %s with a ConflictError naming the policy', async (_label, text, message) => {
    const err = await answering(text)
      .getPolicy('p')
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ConflictError);
    expect(err).toMatchObject({ code: 'POLICY_UNREADABLE', data: { policyName: 'p' } });
    expect((err as Error).message).toMatch(message);
  });
});
