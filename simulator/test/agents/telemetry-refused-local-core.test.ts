import { appTopics, type IotPolicyDocument, recommendedDevicePolicy } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { createSimulatedDevice, parseAgentConfig, simulatedConfigInput } from '../../src/agents/simulated-device.js';
import type { FleetIdentity } from '../../src/fleet/provision.js';
import type { LocalTarget } from '../../src/fleet/target.js';
import { createLogger } from '../../src/logger.js';
import { localFleetForFile } from '../local-fleet.js';

/**
 * The real agent (aws-crt MQTT 5 client, the SQLite outbox, the IotShadowClientv2 shadow sync) on
 * the real local IoT Core, with a policy that does not allow iot:Publish on its telemetry topic:
 * the core answers every telemetry PUBLISH with PUBACK 0x87 and keeps the connection; the agent
 * keeps its batches, says why in its shadow, probes slowly instead of resending in a loop, and
 * delivers everything once a policy that allows the topic is attached (no restart).
 */
const THING = 'refused-1';
let target: LocalTarget;
let identity: FleetIdentity;
localFleetForFile('refused-core-', [THING], (fleet) => {
  target = fleet.target;
  identity = fleet.identities[0] as FleetIdentity;
});

/** The recommended device policy without the telemetry topic: the mistake an operator could make. */
function policyWithoutTelemetry(region: string, accountId: string): IotPolicyDocument {
  const doc = recommendedDevicePolicy(region, accountId);
  return {
    ...doc,
    Statement: doc.Statement.map((s) =>
      s.Sid === 'PublishOwnTopics' && Array.isArray(s.Resource)
        ? { ...s, Resource: s.Resource.filter((r) => !r.endsWith('/telemetry')) }
        : s,
    ),
  };
}

const until = async (what: string, check: () => boolean | Promise<boolean>, ms = 20_000) => {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('telemetry the policy does not allow, MQTT 5, on the local IoT Core', () => {
  it('batches are kept, the shadow says why, no resend loop; attaching a policy that allows the topic delivers them all', async () => {
    const { registry, account, broker, shadows } = target.services;
    const topic = appTopics.telemetry(THING);
    // The certificate's policy: everything the agent needs but iot:Publish on its telemetry topic.
    registry.createPolicy('no-telemetry', JSON.stringify(policyWithoutTelemetry(account.region, account.accountId)));
    registry.attachPolicy('no-telemetry', identity.certificateArn);
    registry.detachPolicy('pifleet-device', identity.certificateArn);

    const arrived: number[] = [];
    const unsubscribe = await broker.bus.subscribe(topic, (m) => {
      arrived.push((JSON.parse(m.payload.toString()) as { seq: number }).seq);
    });

    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: 'debug',
      destination: { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) },
    });
    const refusedRetryMs = 1_000;
    const config = parseAgentConfig(
      simulatedConfigInput({
        thingName: THING,
        endpoint: target.info.mqtt.host,
        port: target.info.mqtt.port,
        certFile: identity.certFile,
        keyFile: identity.keyFile,
        caFile: target.info.caFile,
        // Three sensors every 300 ms, three readings a batch: about 3 batches a second.
        samplingMs: 300,
        overrides: {
          batch: { maxReadings: 3, maxAgeMs: 1_000 },
          publish: { refusedRetryMs, maxInFlight: 4, maxPerSecond: 20 },
        },
      }),
    );
    expect(config.mqtt.protocol).toBe('5');
    const device = createSimulatedDevice({ config, seed: THING, logger });
    const startedAt = Date.now();
    await device.start();
    try {
      // The shadow says why, with what to fix.
      await until('the shadow to report blocked telemetry', async () => {
        const r = await shadows.getShadow(THING);
        return (r.body as { state?: { reported?: { telemetry?: unknown } } }).state?.reported?.telemetry != null;
      });
      const reported = (await shadows.getShadow(THING)).body as {
        state: { reported: { telemetry: Record<string, unknown> } };
      };
      expect(reported.state.reported.telemetry).toMatchObject({
        blocked: 'NOT_AUTHORIZED',
        reasonCode: 0x87,
        topic,
        fix: expect.stringMatching(/must allow iot:Publish on the telemetry topic pifleet\/refused-1\/telemetry/),
      });
      expect(device.transport.protocol).toBe('5');

      // Three seconds refused: batches pile up in the outbox; the agent offers one a second.
      await new Promise((r) => setTimeout(r, 3_000));
      const status = device.status();
      expect(status.sealedBatches).toBeGreaterThanOrEqual(5);
      expect(status.outbox.depth).toBe(status.sealedBatches);
      expect(arrived).toEqual([]);
      const errors = lines.filter((l) => l.level === 50);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ reason: 'NOT_AUTHORIZED', reasonCode: 0x87, topic });
      // Publishes the core refused after the first: at most the others in flight with it (4), then
      // one probe per refusedRetryMs. Resending every batch at the normal 1 s delay would be about
      // 4 a second and growing with the backlog. (Measured: 2 probes in 3.5 s.)
      const probes = lines.filter((l) => l.msg === 'telemetry still refused').length;
      const elapsedS = (Date.now() - startedAt) / 1000;
      expect(probes).toBeLessThanOrEqual(Math.ceil(elapsedS / (refusedRetryMs / 1000)) + 3);
      expect(lines.some((l) => l.msg === 'publish failed; will resend')).toBe(false);
      // The connection stayed up all along (MQTT 5: PUBACK 0x87, no disconnect).
      expect(lines.some((l) => l.msg === 'connection interrupted')).toBe(false);
      expect(device.transport.isConnected).toBe(true);

      // The fix, through the registry the control plane writes: attach a policy that allows it.
      const keptAtFix = device.status().sealedBatches;
      registry.attachPolicy('pifleet-device', identity.certificateArn);
      // Every batch kept while refused arrives, once, within a probe interval and the send time.
      const fixedAt = Date.now();
      await until('the kept batches to arrive', () => new Set(arrived).size >= keptAtFix);
      const deliveredInMs = Date.now() - fixedAt;
      expect(deliveredInMs).toBeLessThan(refusedRetryMs + 5_000);
      expect(new Set(arrived).size).toBe(arrived.length);
      const seqs = [...arrived].sort((a, b) => a - b);
      expect(seqs.slice(0, keptAtFix)).toEqual(Array.from({ length: keptAtFix }, (_, i) => i + 1));
      expect(lines.some((l) => l.msg === 'broker accepts telemetry again; sending the kept batches')).toBe(true);
      await until('the shadow to clear the telemetry block', async () => {
        const r = await shadows.getShadow(THING);
        const rep = (r.body as { state?: { reported?: Record<string, unknown> } }).state?.reported;
        return rep !== undefined && !('telemetry' in rep);
      });
    } finally {
      await device.stop();
      await unsubscribe();
    }
  });
});
