import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TelemetryStore } from '@pifleet/cloud';
import { MQTT_PROTOCOLS, type MqttProtocol } from '@pifleet/protocol';
import { createRng, simulatedConfigInput } from '@pifleet/simulator';
import {
  type DeviceFiles,
  killLaunched,
  type LogLine,
  launchCoreProcess,
  launchSimAgent,
  portsOf,
  provisionDevice,
  type RunningCore,
  type RunningCoreProcess,
  removeDir,
  startCore,
  tempDir,
} from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_CASES } from './protocols.js';

/**
 * An agent process killed with SIGKILL at random moments, again and again, then left to run: every
 * reading it sampled before a kill is stored exactly once in the core's telemetry store.
 *
 * The agent is a real process running the agent runtime (`pifleet-sim agent`: createAgent, the
 * SQLite outbox with its journal, aws-iot-device-sdk-v2 over mutual TLS, IotShadowClientv2 — the
 * composition of `pifleet-agent run` with simulated chips in place of /dev/i2c-1, which `pifleet-agent`
 * itself refuses). "Sampled" is what the agent says at trace level: its `reading` line, written once
 * the reading is persisted (in the journal, or in the batch it completed). The first case kills
 * only the agent (the core runs in-process); the second kills the core process too — under a
 * running agent, and both at once — and restarts it on its data dir: a PUBACK promises the batch
 * is stored, so nothing acknowledged may be lost with the core.
 *
 * Protocols: the first case runs whole over MQTT 5 and over 3.1.1 (~25 s each). The second, ~40 s
 * and mostly core restarts, is not doubled: its rounds alternate the protocol, so each kind of crash
 * (core, agent, both) meets both, and a restarted agent may come back on the other protocol.
 */

const KILLS = 12;
/** Rounds of the core-and-agent case: three of each kind (a core restart costs ~1 s). */
const CRASH_ROUNDS = 9;
const SEED = Number(process.env.PIFLEET_KILL_SEED ?? Date.now() % 2 ** 31);

let dir: string;
let core: RunningCore;

beforeAll(async () => {
  dir = tempDir('e2e-kill');
  core = await startCore(path.join(dir, 'core'));
});

afterAll(async () => {
  // The agents and the core processes alike.
  killLaunched();
  await core?.stop();
  removeDir(dir);
});

const key = (sensor: string, ts: number) => `${sensor}@${ts}`;
const sampledBy = (lines: readonly LogLine[]) =>
  lines
    .filter((l) => l.msg === 'reading' && l.sensor !== undefined)
    .map((l) => key(String(l.sensor), Number(l.ts ?? -1)));

/** Every reading a telemetry store holds for a thing, one entry per stored row. */
async function storedKeys(thingName: string, store: TelemetryStore = core.core.services.telemetry): Promise<string[]> {
  const out: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await store.query({
      thingName,
      from: 0,
      to: Number.MAX_SAFE_INTEGER,
      limit: 1000,
      ...(nextToken ? { nextToken } : {}),
    });
    for (const r of page.items) out.push(key(r.sensor, r.ts));
    nextToken = page.nextToken;
  } while (nextToken);
  return out;
}

/** An agent config for the kill loops: sampling every 100 ms, batches sealed often, fast reconnects. */
function writeAgentConfig(
  file: string,
  files: DeviceFiles,
  port: number,
  outboxPath: string,
  protocol: MqttProtocol,
): void {
  writeFileSync(
    file,
    JSON.stringify(
      simulatedConfigInput({
        ...files,
        mqttProtocol: protocol,
        endpoint: '127.0.0.1',
        port,
        samplingMs: 100,
        outboxPath,
        overrides: {
          // Batches seal often and by age, so kills land mid-batch, mid-seal and mid-publish.
          batch: { maxReadings: 20, maxAgeMs: 1_000 },
          mqtt: { reconnectMinMs: 100, reconnectMaxMs: 1_000 },
          publish: { ackTimeoutMs: 2_000, maxPerSecond: 50, maxInFlight: 8 },
          logLevel: 'trace',
        },
      }),
    ),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One more agent run, left alone until everything `sampled` is stored (it seals the last killed
 * run's journal and drains the outbox), then: nothing missing, nothing twice, and at most one
 * stored reading per killed run that no line announced (a reading is persisted just before its
 * line is written, so a kill between the two can leave one).
 */
async function expectEachStoredOnce(o: {
  thing: string;
  configFile: string;
  sampled: readonly string[];
  kills: number;
  context: string;
  store: TelemetryStore;
}): Promise<void> {
  expect(new Set(o.sampled).size, 'a reading logged twice').toBe(o.sampled.length);
  expect(o.sampled.length).toBeGreaterThan(o.kills * 5);
  const last = launchSimAgent(o.configFile);
  const deadline = Date.now() + 90_000;
  let missing: readonly string[] = o.sampled;
  while (missing.length > 0 && Date.now() < deadline) {
    await sleep(250);
    const have = new Set(await storedKeys(o.thing, o.store));
    missing = o.sampled.filter((k) => !have.has(k));
  }
  last.child.kill('SIGKILL');
  await last.exited;
  const stored = await storedKeys(o.thing, o.store);

  expect(missing, `sampled before a kill but never stored (${o.context})`).toEqual([]);
  const counts = new Map<string, number>();
  for (const k of stored) counts.set(k, (counts.get(k) ?? 0) + 1);
  const twice = [...counts].filter(([, n]) => n > 1).map(([k]) => k);
  expect(twice, `stored more than once (${o.context})`).toEqual([]);
  const announced = new Set([...o.sampled, ...sampledBy(last.log.lines())]);
  const unannounced = stored.filter((k) => !announced.has(k));
  expect(unannounced.length, `stored without a line (${o.context})`).toBeLessThanOrEqual(o.kills);
}

describe('agent killed with SIGKILL at random moments', () => {
  it.each(PROTOCOL_CASES)(
    `stores every reading sampled before each of ${KILLS} kills exactly once, over MQTT $protocol (seed ${SEED})`,
    async ({ protocol, tag }) => {
      const thing = `kill-loop-${tag}`;
      const files = await provisionDevice(core, thing, dir);
      const configFile = path.join(dir, `${thing}.json`);
      writeAgentConfig(configFile, files, core.info.mqtt.port, path.join(dir, `${thing}.outbox.db`), protocol);

      const next = createRng(SEED);
      const sampled: string[] = [];
      const moments: string[] = [];
      for (let run = 0; run < KILLS; run++) {
        const agent = launchSimAgent(configFile);
        if (run % 3 === 2) {
          // Right as it starts: while it seals and sends what the previous kill left in the journal.
          await agent.log.waitFor((l) => l.msg === 'agent starting', 60_000, 'agent starting');
          const ms = Math.floor(next() * 300);
          moments.push(`start+${ms}`);
          await new Promise((r) => setTimeout(r, ms));
        } else {
          await agent.log.waitFor((l) => l.msg === 'reading', 60_000, 'a reading');
          const ms = Math.floor(next() * 2_500);
          moments.push(`sampling+${ms}`);
          await new Promise((r) => setTimeout(r, ms));
        }
        agent.child.kill('SIGKILL');
        await agent.exited;
        sampled.push(...sampledBy(agent.log.lines()));
      }
      await expectEachStoredOnce({
        thing,
        configFile,
        sampled,
        kills: KILLS,
        context: `seed ${SEED}, kill moments ${moments.join(', ')}`,
        store: core.core.services.telemetry,
      });
    },
    600_000,
  );

  it(`stores every reading exactly once when the core is killed too: ${CRASH_ROUNDS} rounds of core, agent or both (seed ${SEED})`, async () => {
    // The core is a process here, so it can be killed; it restarts on its data dir and its ports.
    const thing = 'crash-anywhere';
    const coreDir = path.join(dir, 'core-crash');
    const setup = await startCore(coreDir);
    const files = await provisionDevice(setup, thing, dir);
    const ports = portsOf(setup);
    await setup.stop();
    const configFile = path.join(dir, 'crash-agent.json');
    const outboxPath = path.join(dir, 'crash-outbox.db');

    /** The core on its ports again (the OS may hold a port a moment after a kill). */
    const restartCore = async (): Promise<RunningCoreProcess> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await launchCoreProcess(coreDir, ports);
        } catch (err) {
          if (attempt >= 20) throw err;
          await sleep(250);
        }
      }
    };
    let coreProcess = await restartCore();
    const killCore = async () => {
      coreProcess.child.kill('SIGKILL');
      await coreProcess.exited;
    };

    const next = createRng(SEED ^ 0x5eed);
    const sampled: string[] = [];
    const moments: string[] = [];
    for (let round = 0; round < CRASH_ROUNDS; round++) {
      // The protocol alternates by round (the kind of crash cycles by 3), so each kind of crash
      // meets both protocols, and a restart may come back on the other one: the outbox and the
      // core's deduplication do not depend on it.
      const protocol = MQTT_PROTOCOLS[round % MQTT_PROTOCOLS.length] ?? '5';
      writeAgentConfig(configFile, files, ports.mqttPort, outboxPath, protocol);
      const agent = launchSimAgent(configFile);
      await agent.log.waitFor((l) => l.msg === 'reading', 60_000, 'a reading');
      const first = Math.floor(next() * 2_000);
      await sleep(first);
      const victim = (['core', 'agent', 'both'] as const)[round % 3];
      const context = `${victim}/MQTT ${protocol}`;
      if (victim === 'core') {
        // The core dies under a running agent (acknowledgements in flight), stays down a while
        // (the agent keeps sampling and retrying), comes back, and the agent is killed later.
        await killCore();
        const down = Math.floor(next() * 1_500);
        await sleep(down);
        coreProcess = await restartCore();
        const after = Math.floor(next() * 2_000);
        await sleep(after);
        moments.push(`${context}@${first}+${down}+${after}`);
      } else if (victim === 'both') {
        // Both at once, as in a power cut of a machine running both.
        coreProcess.child.kill('SIGKILL');
        moments.push(`${context}@${first}`);
      } else {
        moments.push(`${context}@${first}`);
      }
      agent.child.kill('SIGKILL');
      await agent.exited;
      sampled.push(...sampledBy(agent.log.lines()));
      if (victim === 'both') {
        await coreProcess.exited;
        coreProcess = await restartCore();
      }
    }

    // The last core is stopped cleanly and read in-process on the same data dir and ports.
    coreProcess.child.kill('SIGTERM');
    expect((await coreProcess.exited).code).toBe(0);
    const final = await startCore(coreDir, ports);
    try {
      await expectEachStoredOnce({
        thing,
        configFile,
        sampled,
        kills: CRASH_ROUNDS,
        context: `seed ${SEED}, rounds ${moments.join(', ')}`,
        store: final.core.services.telemetry,
      });
    } finally {
      await final.stop();
    }
  }, 600_000);
});
