import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createCommandApiClient, localProfileCredentials } from '@pifleet/cloud';
import { EXIT, type HealthReport, validateHealthReport } from '@pifleet/protocol';
import { simulatedConfigInput } from '@pifleet/simulator';
import {
  killLaunched,
  launchSimAgent,
  type NetworkCut,
  provisionDevice,
  type RunningCore,
  startRelay,
  until,
} from '@pifleet/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { coreForFile } from './suite-core.js';

/**
 * `reported.health` end to end: a real agent process (`pifleet-sim agent`: the agent runtime, the
 * device SDK and its shadow client, the Linux host stats of this machine, simulated sensors) whose
 * health interval comes from `PIFLEET_HEALTH_INTERVAL_SECONDS`, against the local core; its health
 * read as an operator reads it, through the command API (`GET /api/things/{thing}/shadow`, SigV4).
 * The numbers are this machine's and this link's, so they are checked for plausibility, not value;
 * then the network is cut and the reconnect shows in the next report.
 */

let dir: string;
let core: RunningCore;
const relays: NetworkCut[] = [];
coreForFile(
  'agent-health',
  (suite) => {
    ({ core, dir } = suite);
  },
  killLaunched,
);
afterAll(async () => {
  for (const r of relays) await r.close();
});

/** Whether this machine has a thermal zone the adapter could read (containers and VMs mostly do not). */
function hasThermalZone(): boolean {
  try {
    return readdirSync('/sys/class/thermal').some((z) => z.startsWith('thermal_zone'));
  } catch {
    return false;
  }
}

describe('reported.health', () => {
  it('appears in the shadow the command API returns, with plausible values, and counts a reconnect', async () => {
    const thing = 'health-e2e';
    const files = await provisionDevice(core, thing, dir);
    const relay = await startRelay(core.info.mqtt.port);
    relays.push(relay);
    const configFile = path.join(dir, `${thing}.json`);
    const config = simulatedConfigInput({
      ...files,
      endpoint: '127.0.0.1',
      port: relay.port,
      samplingMs: 500,
      outboxPath: path.join(dir, `${thing}.outbox.db`),
      overrides: {
        logLevel: 'info',
        batch: { maxReadings: 6, maxAgeMs: 2_000 },
        mqtt: { reconnectMinMs: 100, reconnectMaxMs: 1_000 },
      },
    });
    writeFileSync(configFile, JSON.stringify(config));
    const api = createCommandApiClient({
      baseUrl: `${core.info.http}/api`,
      region: core.info.region,
      credentials: localProfileCredentials(core.info),
    });
    /** `reported.health` as `GET /things/{thing}/shadow` answers it (undefined before the first). */
    const health = async (): Promise<HealthReport | undefined> => {
      const answer = await api.request('GET', `/things/${thing}/shadow`);
      if (answer.status === 404) return undefined;
      expect(answer.status, answer.text).toBe(200);
      const doc = JSON.parse(answer.text) as { thingName: string; state?: { reported?: { health?: HealthReport } } };
      expect(doc.thingName).toBe(thing);
      return doc.state?.reported?.health;
    };
    let last: HealthReport | undefined;
    const waitForHealth = async (what: string, match: (h: HealthReport) => boolean) => {
      await until(
        async () => {
          last = await health();
          return last !== undefined && match(last);
        },
        { within: 30_000, step: 250, what },
      );
      return last as HealthReport;
    };

    const agent = launchSimAgent(configFile, {
      env: { ...process.env, PIFLEET_HEALTH_INTERVAL_SECONDS: '2' },
      name: thing,
    });
    try {
      // A CPU share takes two samples; a latency, one acknowledged batch before a sample.
      const h = await waitForHealth(
        'health with CPU and publish latency',
        (x) => x.host?.cpuPct !== undefined && x.connection.publishLatencyMs !== undefined,
      );
      expect(validateHealthReport(h).ok, JSON.stringify(h)).toBe(true);
      expect(Math.abs(h.sampledAt - Date.now())).toBeLessThan(60_000);
      const host = h.host ?? {};
      expect(host.cpuPct).toBeGreaterThanOrEqual(0);
      expect(host.cpuPct).toBeLessThanOrEqual(100);
      expect(host.memTotalMiB).toBeGreaterThan(64);
      expect(host.memAvailableMiB).toBeLessThanOrEqual(host.memTotalMiB ?? 0);
      expect(host.uptimeS).toBeGreaterThan(0);
      expect(host.load1).toBeGreaterThanOrEqual(0);
      if (hasThermalZone()) expect(host.tempC).toEqual(expect.any(Number));
      else expect(host).not.toHaveProperty('tempC');
      // The agent process itself: a Node process with the device SDK is tens of MiB.
      expect(h.process?.rssMiB).toBeGreaterThan(20);
      expect(h.process?.rssMiB).toBeLessThan(2_048);
      expect(h.process?.cpuPct).toBeGreaterThanOrEqual(0);
      expect(h.connection.reconnects).toBe(0);
      expect(h.connection.connectedS).toBeGreaterThanOrEqual(0);
      const latency = h.connection.publishLatencyMs;
      expect(latency?.samples).toBeGreaterThanOrEqual(1);
      // On loopback a PUBACK takes milliseconds; a second would mean something is wrong.
      expect(latency?.p99).toBeLessThan(1_000);
      expect(latency?.p50).toBeLessThanOrEqual(latency?.p99 ?? 0);

      // The network goes away and comes back: the reconnect is reported at the next sample.
      relay.down();
      await agent.log.waitFor((l) => l.msg === 'connection lost; telemetry stays in the outbox', 20_000, 'the loss');
      relay.up();
      const after = await waitForHealth('the reconnect in health', (x) => x.connection.reconnects >= 1);
      expect(after.connection.reconnects).toBe(1);
      expect(after.sampledAt).toBeGreaterThan(h.sampledAt);
      expect(validateHealthReport(after).ok).toBe(true);
    } catch (err) {
      throw new Error(
        `${String(err)}\nlast health: ${JSON.stringify(last)}\nthe agent printed:\n${agent.output().slice(-4000)}`,
        {
          cause: err,
        },
      );
    } finally {
      agent.child.kill('SIGTERM');
    }
    expect((await agent.exited).code, agent.output()).toBe(EXIT.ok);
  }, 90_000);
});
