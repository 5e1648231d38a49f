import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLocalFleetProvisioning } from '../../src/app/fleet-provisioning-wiring.js';
import { OWNERSHIP_TOKEN_TTL_MS } from '../../src/fleet-provisioning/ownership-tokens.js';
import { RegistryError } from '../../src/registry/errors.js';
import { type Core, startCore } from '../conformance/harness.js';

/**
 * The wiring's life: certificates left PENDING_ACTIVATION by an earlier process (their tokens died
 * with it) are deleted an hour after they were made, at start or by the periodic sweep. A second
 * wiring on a running core's broker, registry and CA stands for the restarted core, with its own
 * clock; it is sent no requests (the core's own wiring would answer them too).
 */

let core: Core;

beforeAll(async () => {
  core = await startCore('fleet-prov-wiring');
});

afterAll(async () => {
  await core?.stop();
});

async function certificate(status: 'PENDING_ACTIVATION' | 'ACTIVE'): Promise<string> {
  const { ca, registry } = core.core.services;
  const issued = await ca.createKeysAndCertificate();
  return registry.registerCertificate({ certificatePem: issued.certificatePem, status }).certificateId;
}

const exists = (certificateId: string): boolean => {
  try {
    core.core.services.registry.describeCertificate(certificateId);
    return true;
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'ResourceNotFoundException') return false;
    throw err;
  }
};

/** These wirings run beside the core's own: they provision with no templates. */
const templates = { getTemplateForProvisioning: () => undefined };

describe('fleet provisioning wiring', () => {
  it('deletes, at start, the pending certificates of an earlier process older than an hour; keeps the rest', async () => {
    const pending = await certificate('PENDING_ACTIVATION');
    const active = await certificate('ACTIVE');
    const { broker, registry, ca } = core.core.services;
    const wiring = createLocalFleetProvisioning({
      broker,
      registry,
      ca,
      templates,
      now: () => Date.now() + OWNERSHIP_TOKEN_TTL_MS + 1_000,
    });
    await wiring.start();
    try {
      expect(exists(pending)).toBe(false);
      expect(exists(active)).toBe(true);
      await expect(wiring.start()).rejects.toMatchObject({ code: 'FLEET_PROVISIONING_ALREADY_STARTED' });
    } finally {
      await wiring.stop();
      await wiring.stop();
    }
  });

  it('deletes a younger one once its hour has passed, by the periodic sweep', async () => {
    const pending = await certificate('PENDING_ACTIVATION');
    let clock = Date.now();
    const { broker, registry, ca } = core.core.services;
    const wiring = createLocalFleetProvisioning({
      broker,
      registry,
      ca,
      templates,
      now: () => clock,
      sweepIntervalMs: 20,
    });
    await wiring.start();
    try {
      expect(exists(pending)).toBe(true);
      clock += OWNERSHIP_TOKEN_TTL_MS + 1_000;
      await vi.waitFor(() => expect(exists(pending)).toBe(false), { timeout: 5_000, interval: 20 });
    } finally {
      await wiring.stop();
    }
  });

  it('gives RegisterThing nothing for a token it never issued', () => {
    const { broker, registry, ca } = core.core.services;
    const wiring = createLocalFleetProvisioning({ broker, registry, ca, templates, now: Date.now });
    const result = wiring.ownershipTokens.consumeOwnershipToken('A'.repeat(43));
    expect(result.ok ? undefined : result.error.problem).toBe('unknown');
  });
});
