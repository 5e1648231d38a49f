import path from 'node:path';
import { CreateJobCommand, DescribeJobExecutionCommand } from '@aws-sdk/client-iot';
import {
  type AgentRuntime,
  createAgentRuntime,
  createSystemClock,
  loadConfig,
  type RuntimeTransport,
} from '@pifleet/device-agent';
import { configDocument, type MqttProtocol } from '@pifleet/protocol';
import { desire, provisionDevice, until } from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LimitedCore, startLimitedCore } from './suite-core.js';

/**
 * Agents that connect while the account's subscriptions per second are spent (a rollout restarting
 * a minute's wave of agents at once) get some of their SUBSCRIBEs refused: QUOTA_EXCEEDED (0x97) on
 * MQTT 5, 0x80 on 3.1.1. The agent must still end up with every subscription it needs: it reads
 * its desired state, becomes healthy (what an agent update waits for before it confirms the new
 * release), takes a desired change from the delta stream, and runs a job to SUCCEEDED. One agent
 * per client and protocol connects at the same moment against a core whose account may subscribe
 * 4 topic filters a second (IoT Core's is 200; each agent asks for about ten).
 */

let limited: LimitedCore;
const runtimes: AgentRuntime[] = [];

beforeAll(async () => {
  limited = await startLimitedCore('e2e-subscribe-throttled', { subscriptionsPerSecondPerAccount: 4 });
});

afterAll(async () => {
  for (const r of runtimes.splice(0)) await r.stop().catch(() => undefined);
  await limited?.stop();
});

const CASES: { transport: 'crt' | 'mqtt'; protocol: MqttProtocol }[] = [
  { transport: 'crt', protocol: '5' },
  { transport: 'crt', protocol: '3.1.1' },
  { transport: 'mqtt', protocol: '5' },
  { transport: 'mqtt', protocol: '3.1.1' },
];

describe('agents connecting over the account subscription rate', () => {
  it('every client and protocol ends with its subscriptions: desired state read, healthy, delta applied, job SUCCEEDED', async () => {
    const { withCore, core, info, clients, dir } = limited;
    const devices = await Promise.all(
      CASES.map(async (c) => {
        const thing = `sub-throttled-${c.transport}-${c.protocol.replaceAll('.', '')}`;
        const files = await provisionDevice(withCore, thing, dir);
        // Read at the first shadow get: only an agent that got its get answer applies it.
        await desire(withCore, thing, { batch: { maxReadings: 20 } });
        const loaded = loadConfig({
          fileText: JSON.stringify({
            thingName: thing,
            endpoint: '127.0.0.1',
            port: info.mqtt.port,
            certFile: files.certFile,
            keyFile: files.keyFile,
            caFile: files.caFile,
            hardware: 'none',
            mqtt: { protocol: c.protocol, reconnectMinMs: 100, reconnectMaxMs: 1_000 },
            outbox: { path: path.join(dir, thing, 'outbox.db') },
            shadow: { requestTimeoutMs: 3_000 },
            jobs: { requestTimeoutMs: 3_000 },
            shutdownTimeoutMs: 500,
          }),
        });
        if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
        const runtime = createAgentRuntime({
          config: loaded.value,
          clock: createSystemClock(),
          transport: c.transport as RuntimeTransport,
        });
        runtimes.push(runtime);
        return { c, thing, runtime };
      }),
    );
    const refusedBefore = core.services.throttles.snapshot().subscriptionsPerSecondPerAccount ?? 0;
    // All at once, as a rollout's wave restarts.
    await Promise.all(devices.map((d) => d.runtime.start()));

    for (const { runtime } of devices) {
      await until(() => runtime.status().actual.batch.maxReadings === 20, {
        within: 40_000,
        what: 'the desired state read at connect',
      });
    }
    await Promise.all(devices.map((d) => d.runtime.agent?.whenHealthy()));
    // The subscriptions were throttled: without that, this test shows nothing.
    expect((core.services.throttles.snapshot().subscriptionsPerSecondPerAccount ?? 0) - refusedBefore).toBeGreaterThan(
      0,
    );

    for (const { thing } of devices) await desire(withCore, thing, { batch: { maxReadings: 30 } });
    for (const { runtime } of devices) {
      await until(() => runtime.status().actual.batch.maxReadings === 30, {
        within: 40_000,
        what: 'the delta applied',
      });
    }

    const thingArn = (thing: string) => `arn:aws:iot:${info.region}:${info.accountId}:thing/${thing}`;
    for (const { thing } of devices) {
      await clients.iot.send(
        new CreateJobCommand({
          jobId: `${thing}-cfg`,
          targets: [thingArn(thing)],
          document: JSON.stringify(configDocument({ batch: { maxAgeMs: 9_000 } })),
        }),
      );
    }
    for (const { thing, runtime } of devices) {
      let status: string | undefined;
      await until(
        async () => {
          const r = await clients.iot.send(
            new DescribeJobExecutionCommand({ thingName: thing, jobId: `${thing}-cfg` }),
          );
          status = r.execution?.status;
          return status === 'SUCCEEDED' || status === 'FAILED' || status === 'REJECTED';
        },
        { within: 60_000, what: `${thing}'s job ended` },
      );
      expect(status).toBe('SUCCEEDED');
      expect(runtime.status().actual.batch.maxAgeMs).toBe(9_000);
    }
  }, 180_000);
});
