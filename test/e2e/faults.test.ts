import { existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type AgentConfigInput, Batcher, openOutbox } from '@pifleet/device-agent';
import type { MqttProtocol } from '@pifleet/protocol';
import { createLogger, createVirtualClock, simulatedConfigInput } from '@pifleet/simulator';
import {
  type DeviceFiles,
  driveUntil,
  killLaunched,
  launchSimAgent,
  type NetworkCut,
  part,
  portsOf,
  provisionDevice,
  type RunningCore,
  removeDir,
  startCore,
  startRelay,
  TelemetryLog,
  tempDir,
  until,
  waitForShadow,
  waitForStored,
} from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_CASES } from './protocols.js';
import { startSimulatedDevice, stopSimulatedDevices } from './simulated-devices.js';

/**
 * Faults end to end: the broker going away and coming back, the agent process killed with
 * SIGKILL, a damaged outbox file, the outbox disk bound. The local IoT Core runs in-process; the
 * killed agent is a real child process (`pifleet-sim agent`, the agent runtime on simulated hardware).
 *
 * The cases that connect, lose the connection, reconnect or restart (the broker outage, the kill,
 * the outbox bound reached while the first connect keeps failing) run over MQTT 5 and 3.1.1: the
 * SDK's two clients reconnect and resume differently. A damaged outbox file is the same on both,
 * so those cases run on the agent's default protocol (MQTT 5) only.
 */

let dir: string;
let core: RunningCore;
const telemetry = new TelemetryLog();
const relays: NetworkCut[] = [];

beforeAll(async () => {
  dir = tempDir('e2e-faults');
  core = await startCore(path.join(dir, 'core'), { telemetry });
});

afterAll(async () => {
  killLaunched();
  await stopSimulatedDevices();
  for (const r of relays) await r.close();
  await core?.stop();
  removeDir(dir);
});

function configFor(
  files: DeviceFiles,
  port: number,
  overrides: Partial<AgentConfigInput> = {},
  protocol: MqttProtocol = '5',
) {
  return simulatedConfigInput({
    ...files,
    mqttProtocol: protocol,
    endpoint: '127.0.0.1',
    port,
    samplingMs: 1_000,
    outboxPath: path.join(dir, `${files.thingName}.outbox.db`),
    overrides: {
      batch: { maxReadings: 6, maxAgeMs: 3_600_000 },
      mqtt: { reconnectMinMs: 100, reconnectMaxMs: 1_000 },
      publish: { ackTimeoutMs: 1_000, maxPerSecond: 50, maxInFlight: 8 },
      shadow: { requestTimeoutMs: 3_000 },
      ...overrides,
    },
  });
}

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

describe.each(PROTOCOL_CASES)('faults end to end over MQTT $protocol', ({ protocol, tag }) => {
  it('broker down and back on the same ports: every sealed batch arrives, each reading exactly once', async () => {
    const thing = `fault-broker-${tag}`;
    const files = await provisionDevice(core, thing, dir);
    const clock = createVirtualClock();
    const d = await startSimulatedDevice(configFor(files, core.info.mqtt.port, {}, protocol), clock);
    await until(() => d.transport.isConnected, { within: 10_000, what: 'connected' });
    for (let i = 0; i < 6; i++) await clock.advance(1_000);
    // Time keeps going while the test waits: a publish the broker has not acknowledged within the
    // agent's ackTimeoutMs (of the virtual clock, which the loop above ran ahead of real time) is
    // resent after a backoff on that clock.
    await driveUntil(clock, () => telemetry.readings(thing) >= 12, 10_000, 'readings before the outage');

    const ports = portsOf(core);
    await core.stop();
    await until(() => !d.transport.isConnected, { within: 10_000, what: 'connection lost' });
    // Ten seconds of sampling with the broker gone: publishes fail or time out and stay in the outbox.
    for (let i = 0; i < 10; i++) await clock.advance(1_000);
    expect(d.status().outbox.depth).toBeGreaterThan(0);

    core = await startCore(path.join(dir, 'core'), { ...ports, telemetry });
    await until(() => d.transport.isConnected, { within: 20_000, what: 'reconnected' });
    await driveUntil(
      clock,
      () => d.status().outbox.depth === 0 && d.status().inFlight === 0 && d.status().sealedBatches >= 8,
      20_000,
      'outbox drained after the outage',
    );
    const sealed = d.status().sealedBatches;
    await telemetry.waitFor(() => telemetry.seqs(thing, d.bootId).length >= sealed, 10_000, 'every sealed batch');
    expect(telemetry.seqs(thing, d.bootId)).toEqual(range(1, sealed));
    const unique = telemetry.unique(thing);
    const readings = unique.flatMap((b) => b.readings.map((r) => `${r.sensor}@${r.ts}`));
    expect(new Set(readings).size).toBe(readings.length);
    expect(readings.length).toBe(sealed * 6);
    // The telemetry store (SQLite, kept across the restart) holds each reading once.
    expect(await waitForStored(core, thing, readings.length)).toBe(readings.length);
  });

  it('agent process killed with SIGKILL mid-stream and restarted: no sealed batch is lost, nor the open one', async () => {
    const thing = `fault-kill-${tag}`;
    const files = await provisionDevice(core, thing, dir);
    const configFile = path.join(dir, `${thing}.json`);
    const outboxPath = path.join(dir, `${thing}.outbox.db`);
    writeFileSync(
      configFile,
      JSON.stringify(
        configFor(
          files,
          core.info.mqtt.port,
          {
            sensors: simulatedConfigInput({ ...files, endpoint: 'x', port: 1, samplingMs: 200 }).sensors,
            batch: { maxReadings: 3, maxAgeMs: 3_600_000 },
            outbox: { path: outboxPath },
            logLevel: 'info',
          },
          protocol,
        ),
      ),
    );
    const spawnAgent = () => launchSimAgent(configFile);

    const first = spawnAgent();
    await telemetry.waitFor(() => telemetry.of(thing).length >= 6, 30_000, 'six batches from the first boot');
    const bootId = telemetry.of(thing)[0]?.bootId ?? '';
    first.child.kill('SIGKILL');
    await first.exited;
    const receivedMax = Math.max(...telemetry.seqs(thing, bootId));

    // What the killed process had sealed but not yet got acknowledged is in its outbox file.
    const opened = openOutbox({ path: outboxPath, maxBytes: 64 * 1024 ** 2 });
    const left = opened.outbox.next(100_000).filter((e) => e.bootId === bootId);
    // And the readings of its open batch are in the outbox's journal, sealed at the next start.
    const unsealed = opened.outbox.unsealed().filter((u) => u.bootId === bootId);
    opened.outbox.close();
    const sealedMax = Math.max(receivedMax, ...left.map((r) => r.seq), ...unsealed.map((u) => u.seq));

    const second = spawnAgent();
    await telemetry.waitFor(
      () => telemetry.seqs(thing, bootId).length >= sealedMax,
      30_000,
      `all ${sealedMax} batches of the killed boot`,
    );
    expect(telemetry.seqs(thing, bootId)).toEqual(range(1, sealedMax));
    // The restarted agent publishes under a new boot id from seq 1.
    await telemetry.waitFor(
      () => telemetry.of(thing).some((b) => b.bootId !== bootId),
      15_000,
      'a batch of the new boot',
    );
    const readings = telemetry.unique(thing).flatMap((b) => b.readings.map((r) => `${r.sensor}@${r.ts}`));
    expect(new Set(readings).size).toBe(readings.length);
    second.child.kill('SIGTERM');
    expect((await second.exited).code, second.output()).toBe(0);
  });

  it('outbox bound hit while offline: the oldest batches are dropped, counted and reported', async () => {
    const thing = `fault-bound-${tag}`;
    const files = await provisionDevice(core, thing, dir);
    const relay = await startRelay(core.info.mqtt.port);
    relays.push(relay);
    relay.down(); // offline from the start: the first connect keeps failing
    const clock = createVirtualClock();
    const d = await startSimulatedDevice(
      configFor(
        files,
        relay.port,
        {
          sensors: simulatedConfigInput({ ...files, endpoint: 'x', port: 1, samplingMs: 100 }).sensors,
          batch: { maxReadings: 100, maxAgeMs: 3_600_000 },
          outbox: { path: path.join(dir, `${thing}.outbox.db`), maxBytes: 256 * 1024 },
        },
        protocol,
      ),
      clock,
    );
    // 3 sensors at 10 Hz: ≈ 200 batches of 100 readings in 800 s, ≈ 2.5 KB each in v2 (≈ 10 KB in
    // v1): twice the 256 KiB bound in v2.
    for (let i = 0; i < 800; i++) await clock.advance(1_000);
    const offline = d.status();
    expect(offline.connected).toBe(false);
    expect(offline.outbox.dropped, JSON.stringify(offline)).toBeGreaterThan(0);
    expect(offline.outbox.droppedReadings).toBe(offline.outbox.dropped * 100);
    expect(offline.outbox.bytes).toBeLessThanOrEqual(256 * 1024);
    const sealed = offline.sealedBatches;
    const dropped = offline.outbox.dropped;

    relay.up();
    await until(() => d.transport.isConnected, { within: 20_000, what: 'connected' });
    await driveUntil(clock, () => d.status().outbox.depth === 0 && d.status().inFlight === 0, 20_000, 'drained');
    await telemetry.waitFor(() => telemetry.seqs(thing, d.bootId).length >= sealed - dropped, 10_000, 'kept batches');
    // The newest batches were kept; the oldest `dropped` ones never left the device.
    expect(telemetry.seqs(thing, d.bootId).slice(0, sealed - dropped)).toEqual(range(dropped + 1, sealed));
    const doc = await waitForShadow(
      core,
      thing,
      (s) => (part<{ dropped?: number }>(s, 'outbox').dropped ?? 0) >= dropped,
      15_000,
    );
    expect(part<{ droppedReadings: number }>(doc, 'outbox').droppedReadings).toBeGreaterThanOrEqual(dropped * 100);
  });
});

describe('a damaged outbox file (MQTT 5, the default: the file is the same whatever the protocol)', () => {
  it.each([
    { damage: 'truncated to 60 % of its size', salvages: true },
    { damage: 'overwritten with garbage', salvages: false },
  ])(
    'an outbox file $damage: the agent starts, keeps what is readable, says what it lost',
    async ({ damage, salvages }) => {
      const thing = salvages ? 'fault-truncated' : 'fault-garbage';
      const files = await provisionDevice(core, thing, dir);
      const outboxPath = path.join(dir, `${thing}.outbox.db`);
      // A previous run left 400 batches behind.
      const { outbox } = openOutbox({ path: outboxPath, maxBytes: 64 * 1024 ** 2 });
      const batcher = new Batcher({
        thingName: thing,
        bootId: 'previous-boot',
        limits: { maxReadings: 5, maxBytes: 64 * 1024, maxAgeMs: 60_000 },
      });
      for (let i = 0; i < 200; i++) {
        for (const b of batcher.add(
          { sensor: 'env', ts: 1_700_000_000_000 + i * 1000, metrics: { temperature: i } },
          0,
        )) {
          outbox.put(b);
        }
      }
      outbox.close();
      if (salvages) truncateSync(outboxPath, Math.floor(statSync(outboxPath).size * 0.6));
      else writeFileSync(outboxPath, Buffer.alloc(8192, 0x5a));

      const lines: Record<string, unknown>[] = [];
      const logger = createLogger({
        level: 'info',
        destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
      });
      const clock = createVirtualClock();
      const d = await startSimulatedDevice(
        configFor(files, core.info.mqtt.port, { outbox: { path: outboxPath } }),
        clock,
        logger,
      );
      const report = lines.find((l) => l.msg === 'outbox file was damaged; moved aside and kept what was readable');
      expect(report, JSON.stringify(lines)).toBeDefined();
      expect(d.outboxRecovery?.movedTo).toMatch(/\.corrupt-\d+$/);
      expect(existsSync(d.outboxRecovery?.movedTo ?? '')).toBe(true);
      const kept = d.outboxRecovery?.salvagedBatches ?? -1;
      expect(report?.salvagedBatches).toBe(kept);
      if (salvages) {
        expect(kept).toBeGreaterThan(0);
        expect(kept).toBeLessThan(400);
        expect(d.outboxRecovery?.salvagedReadings).toBeGreaterThanOrEqual(kept);
        expect(d.outboxRecovery?.salvagedReadings).toBeLessThanOrEqual(kept * 10);
        expect(report?.incomplete).toBe(true);
        // What was kept is sent, as it was sealed.
        await until(() => d.transport.isConnected, { within: 10_000, what: 'connected' });
        // Virtual time has to pass: the publisher's rate limit spaces more than a burst of batches.
        await driveUntil(
          clock,
          () => telemetry.of(thing).filter((b) => b.bootId === 'previous-boot').length >= kept,
          15_000,
          'the salvaged batches',
        );
      } else {
        expect(kept).toBe(0);
        expect(String(report?.reason)).toMatch(/not a database|malformed|corrupt/i);
      }
      // And the agent runs on with a fresh outbox.
      await until(() => d.transport.isConnected, { within: 10_000, what: 'connected' });
      // Virtual time passes while waiting, as for the salvaged batches: the new batch is sealed by
      // age and then paced behind the salvaged backlog by the publisher's rate limit. A fixed 2.2 s
      // of virtual time was not always enough (CI, 1 run in many on Node 22).
      await driveUntil(
        clock,
        () => telemetry.of(thing).some((b) => b.bootId === d.bootId),
        15_000,
        `new telemetry after the damage (${damage})`,
      );
      expect(readFileSync(outboxPath).subarray(0, 15).toString()).toBe('SQLite format 3');
    },
  );
});
