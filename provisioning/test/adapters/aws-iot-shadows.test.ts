import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { describe, expect, it } from 'vitest';
import { createAwsShadowClient } from '../../src/adapters/aws-iot-shadows.js';

/** A data-plane client that answers every command with this payload (the SDK's client is the seam). */
function answering(payload: string) {
  const client = { send: async () => ({ payload: new TextEncoder().encode(payload) }) };
  return createAwsShadowClient({ client: async () => client as unknown as IoTDataPlaneClient });
}

describe('shadow client over the data plane', () => {
  it('returns the document', async () => {
    expect(await answering('{"state":{"desired":{"a":1}},"version":3}').get('t')).toEqual({
      state: { desired: { a: 1 } },
      version: 3,
    });
  });

  it('refuses a response nested too deeply before a command walks it', async () => {
    const deep = `{"state":{"reported":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}}`;
    await expect(answering(deep).get('t')).rejects.toThrow(/nested more than \d+ levels/);
    await expect(answering(deep).update('t', { state: {} })).rejects.toThrow(/nested more than/);
  });

  it('refuses a response that is not an object', async () => {
    await expect(answering('[1]').get('t')).rejects.toThrow(/not a JSON object/);
  });
});
