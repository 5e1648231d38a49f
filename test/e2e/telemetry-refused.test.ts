import path from 'node:path';
import {
  AttachPolicyCommand,
  CreatePolicyCommand,
  DetachPolicyCommand,
  ListThingPrincipalsCommand,
} from '@aws-sdk/client-iot';
import { appTopics, MQTT5_REASON } from '@pifleet/protocol';
import { createLogger, createVirtualClock } from '@pifleet/simulator';
import { driveUntil, getShadow, provisionDevice, type RunningCore, until, waitForShadow } from '@pifleet/testkit';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_CASES } from './protocols.js';
import { startDeviceOnCore, stopSimulatedDevices } from './simulated-devices.js';
import { coreForFile } from './suite-core.js';

/**
 * Telemetry the policy does not allow, end to end: the real agent runtime on simulated hardware
 * against the local core's real policy checks. An operator attaches a policy that denies
 * iot:Publish on the device's telemetry topic (an explicit Deny beats the device policy's Allow),
 * then detaches it again.
 *
 * MQTT 5: IoT Core answers the QoS 1 PUBLISH with PUBACK NOT_AUTHORIZED (0x87) and keeps the
 * connection ("MQTT reason codes", AWS IoT Developer Guide). The agent treats that as a
 * configuration problem: one error line saying what to fix, `reported.telemetry` in the shadow,
 * every batch kept, no resending at the normal retry rate but a slow probe, which resumes delivery
 * once the policy allows it, without a restart. MQTT 3.1.1 has no way to say why: IoT Core closes
 * the connection, the agent reconnects and resends as for any loss. On both, once the policy is
 * fixed, every batch arrives, each once.
 */

let dir: string;
let core: RunningCore;
coreForFile(
  'e2e-refused',
  (suite) => {
    ({ core, dir } = suite);
  },
  stopSimulatedDevices,
);

/** Every JSON line an agent logs, for the test to read. */
function captured() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  });
  return { lines, logger, count: (msg: string) => lines.filter((l) => l.msg === msg).length };
}

const REFUSED =
  'broker refuses the telemetry topic: a configuration problem, not resent until it is fixed (retried slowly)';
/** The slow probe of a refused topic (virtual time): longer than the refused phase below, so no probe falls in it. */
const PROBE_MS = 20_000;

describe.each(PROTOCOL_CASES)('telemetry the policy denies, over MQTT $protocol', ({ protocol, tag }) => {
  it('keeps every batch while the policy denies the topic, and delivers each once after the fix', async () => {
    const thing = `refused-${tag}`;
    const files = await provisionDevice(core, thing, dir);
    const topic = appTopics.telemetry(thing);
    const { principals } = await core.iot.send(new ListThingPrincipalsCommand({ thingName: thing }));
    const certificateArn = principals?.[0] ?? '';
    const denyName = `deny-telemetry-${tag}`;
    await core.iot.send(
      new CreatePolicyCommand({
        policyName: denyName,
        policyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Deny',
              Action: 'iot:Publish',
              Resource: `arn:aws:iot:${core.info.region}:${core.info.accountId}:topic/${topic}`,
            },
          ],
        }),
      }),
    );
    await core.iot.send(new AttachPolicyCommand({ policyName: denyName, target: certificateArn }));

    const log = captured();
    const clock = createVirtualClock();
    const d = await startDeviceOnCore(core, files, protocol, clock, {
      outboxPath: path.join(dir, `${thing}.outbox.db`),
      overrides: {
        batch: { maxReadings: 6, maxAgeMs: 3_600_000 },
        publish: { ackTimeoutMs: 2_000, maxPerSecond: 50, maxInFlight: 8, refusedRetryMs: PROBE_MS },
        shadow: { requestTimeoutMs: 5_000 },
      },
      logger: log.logger,
    });

    // 3 sensors × 2 s = one batch of 6 readings, refused.
    for (let i = 0; i < 2; i++) await clock.advance(1_000);
    await clock.advance(200);

    if (protocol === '5') {
      await until(() => log.count(REFUSED) > 0, { within: 10_000, what: 'the refusal logged' });
      const refused = log.lines.find((l) => l.msg === REFUSED);
      expect(refused).toMatchObject({
        level: 50,
        topic,
        reasonCode: MQTT5_REASON.NOT_AUTHORIZED,
        reason: 'NOT_AUTHORIZED',
        fix: expect.stringContaining(`iot:Publish on the telemetry topic ${topic}`),
      });
      // Said in the shadow too, where an operator looks.
      const doc = await waitForShadow(core, thing, (s) => s.state.reported?.telemetry != null);
      expect(doc.state.reported?.telemetry).toMatchObject({
        blocked: 'NOT_AUTHORIZED',
        reasonCode: MQTT5_REASON.NOT_AUTHORIZED,
        topic,
      });
      // Less than one probe interval later: more batches sealed, none sent, the connection kept,
      // the refusal not logged again.
      for (let i = 0; i < 4; i++) await clock.advance(1_000);
      await clock.advance(200);
      expect(d.status().sealedBatches).toBeGreaterThanOrEqual(3);
      expect(d.status().outbox.depth).toBe(d.status().sealedBatches);
      expect(d.transport.isConnected).toBe(true);
      expect(log.count('connection interrupted')).toBe(0);
      expect(log.count(REFUSED)).toBe(1);
      expect(log.count('publish failed; will resend')).toBe(0);
      // Not one batch offered again before the probe interval (each would be refused again).
      expect(log.count('telemetry still refused')).toBe(0);
    } else {
      // 3.1.1: the broker closes the connection on the denied PUBLISH; the batch stays.
      await until(() => log.count('connection interrupted') > 0, { within: 10_000, what: 'the connection closed' });
      expect(log.count(REFUSED)).toBe(0);
      for (let i = 0; i < 4; i++) await clock.advance(1_000);
      await clock.advance(200);
      expect(d.status().sealedBatches).toBeGreaterThanOrEqual(3);
      expect(d.status().outbox.depth).toBe(d.status().sealedBatches);
    }
    expect(core.telemetry.of(thing)).toEqual([]);

    // The operator removes the Deny: the next probe (or resend) goes through, and so does the rest.
    await core.iot.send(new DetachPolicyCommand({ policyName: denyName, target: certificateArn }));
    await driveUntil(
      clock,
      () => d.transport.isConnected && d.status().outbox.depth === 0 && d.status().inFlight === 0,
      30_000,
      'the kept batches delivered',
    );
    const sealed = d.status().sealedBatches;
    await core.telemetry.waitFor(() => core.telemetry.seqs(thing, d.bootId).length >= sealed, 10_000, 'every batch');
    expect(core.telemetry.seqs(thing, d.bootId)).toEqual(Array.from({ length: sealed }, (_, i) => i + 1));
    const readings = core.telemetry.unique(thing).flatMap((b) => b.readings.map((r) => `${r.sensor}@${r.ts}`));
    expect(new Set(readings).size).toBe(readings.length);
    expect(readings.length).toBe(sealed * 6);

    if (protocol === '5') {
      expect(log.count('broker accepts telemetry again; sending the kept batches')).toBe(1);
      // The shadow no longer says the topic is refused.
      await waitForShadow(core, thing, (s) => s.state.reported?.telemetry === undefined, 10_000);
    } else {
      expect((await getShadow(core, thing))?.state.reported?.telemetry).toBeUndefined();
    }
  });
});
