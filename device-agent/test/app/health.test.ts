/**
 * `reported.health` from the agent: the sampler on the virtual clock, the Linux adapter reading a
 * Raspberry Pi 4's files whose CPU counters the test moves minute by minute, the port fakes for the
 * transport and the shadow. What is asserted is what the shadow is sent: the first sample at once,
 * then nothing for noise, the newest sample riding along with the periodic report, a report of its
 * own for a real change and for a reconnect.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type HealthReport, validateReportedState } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { createLinuxHostStats } from '../../src/adapters/linux-host-stats.js';
import { createAgent } from '../../src/app/agent.js';
import { createLogger } from '../../src/logger.js';
import { openOutbox } from '../../src/outbox/outbox.js';
import type { HostStats } from '../../src/ports/host-stats.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';
import { PI4_FILES, PI4_HOST } from '../adapters/host-stats-fixtures.js';
import { agentConfig, countingSensor, MemoryShadow, MemoryTransport } from './fakes.js';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'pifleet-health-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let roots = 0;

const START = 1_700_000_000_000;
const MINUTE = 60_000;

/**
 * A Pi 4's files in a directory of the test's own; `busy(pct)` moves its CPU counters by one
 * minute of 4 cores at that load (the agent using 0.1 % of it).
 */
function pi4Root() {
  const root = path.join(scratch, `pi4-${roots++}`);
  cpSync(PI4_FILES, root, { recursive: true });
  let busy = 1_000;
  let total = 10_000;
  let agent = 100;
  const write = () => {
    writeFileSync(path.join(root, 'proc/stat'), `cpu  ${busy} 0 0 ${total - busy} 0 0 0 0 0 0\n`);
    writeFileSync(
      path.join(root, 'proc/self/stat'),
      `2410 (node) S 1 2410 2410 0 -1 4194560 1 0 0 0 ${agent} 0 0 0 20 0 11 0 1412 1 1\n`,
    );
  };
  write();
  return {
    root,
    busy(pct: number) {
      busy += Math.round(24_000 * (pct / 100));
      total += 24_000;
      agent += 24;
      write();
    },
  };
}

function setup(options: { health?: number; hostStats?: HostStats | 'none'; shadow?: boolean } = {}) {
  const config = agentConfig({
    sensors: [{ id: 'env', driver: 'bme280', intervalMs: 1000 }],
    batch: { maxReadings: 5, maxAgeMs: 60_000 },
    shadow: { reportIntervalMs: 5 * MINUTE, enabled: options.shadow ?? true },
    health: { intervalSeconds: options.health ?? 60 },
  });
  const clock = createVirtualClock({ start: START });
  const transport = new MemoryTransport();
  const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
  const shadow = new MemoryShadow();
  const pi = pi4Root();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const inner = options.hostStats ?? createLinuxHostStats({ root: pi.root });
  // The files are real I/O: the test waits for each sample to be read before virtual time moves on.
  let reading: Promise<unknown> = Promise.resolve();
  const hostStats: HostStats | 'none' =
    inner === 'none'
      ? 'none'
      : {
          sample() {
            const p = inner.sample();
            reading = p.catch(() => undefined);
            return p;
          },
        };
  const agent = createAgent({
    config,
    transport,
    outbox,
    sensors: [countingSensor('env')],
    outputs: [],
    clock,
    logger,
    bootId: 'boot-health',
    createShadow: () => shadow,
    ...(hostStats === 'none' ? {} : { hostStats }),
  });
  const settle = () => new Promise((r) => setImmediate(r));
  /** Advances to `START + ms`, a second at a time (the sensor samples, batches go out). */
  const until = async (ms: number) => {
    while (clock.now() < START + ms) {
      await clock.advance(Math.min(1_000, START + ms - clock.now()));
      await reading;
      await settle();
    }
  };
  const healthUpdates = () => shadow.updates.filter((u) => u.health !== undefined).map((u) => u.health as HealthReport);
  return { clock, transport, shadow, agent, pi, lines, until, healthUpdates };
}

describe('health sampling', () => {
  it('reports the first sample, then waits out noise, rides along with the periodic report, and reports a real change', async () => {
    const { agent, shadow, pi, until, healthUpdates } = setup();
    await agent.start();
    await until(1_000);
    // The connect report carries no health yet: nothing was sampled.
    expect(shadow.updates).toHaveLength(1);
    expect(shadow.updates[0]).not.toHaveProperty('health');

    pi.busy(6);
    await until(MINUTE + 500);
    expect(healthUpdates()).toHaveLength(1);
    const first = healthUpdates()[0] as HealthReport;
    expect(first).toEqual({
      sampledAt: START + MINUTE,
      host: { cpuPct: 6, ...PI4_HOST },
      process: { cpuPct: 0.1, rssMiB: 87 },
      connection: {
        reconnects: 0,
        connectedS: 60,
        // The fake broker acknowledges at once: 0 ms on the virtual clock.
        publishLatencyMs: { last: 0, p50: 0, p99: 0, samples: expect.any(Number) },
      },
    });
    // A batch every 5 s: 11 or 12 acknowledged by the first minute (the 60 s one may come after).
    expect(first.connection.publishLatencyMs?.samples).toBeGreaterThanOrEqual(11);
    expect(validateReportedState(shadow.reported).ok).toBe(true);
    expect(agent.status().health).toEqual(first);

    // Minutes 2 to 4: the load wanders by a few points; no shadow update at all.
    const before = shadow.updates.length;
    for (const [minute, pct] of [
      [2, 9],
      [3, 4],
      [4, 8],
    ] as const) {
      pi.busy(pct);
      await until(minute * MINUTE + 500);
    }
    expect(shadow.updates.length).toBe(before);

    // Minute 5: the periodic report carries the newest sample, for no extra message.
    pi.busy(7);
    await until(5 * MINUTE + 500);
    expect(shadow.updates.length).toBe(before + 1);
    const periodic = shadow.updates.at(-1)?.health as HealthReport;
    expect(periodic.sampledAt).toBeGreaterThanOrEqual(START + 4 * MINUTE);
    expect(periodic.host?.cpuPct).toBeGreaterThanOrEqual(7);

    // Minute 6: the Pi gets busy (7 % → 55 %): reported within that sample, not at the next periodic one.
    pi.busy(55);
    await until(6 * MINUTE + 500);
    expect(shadow.updates.length).toBe(before + 2);
    expect(healthUpdates().at(-1)?.host?.cpuPct).toBe(55);
    expect(healthUpdates().at(-1)?.sampledAt).toBe(START + 6 * MINUTE);
  });

  it('reports a reconnect at the next sample, and the connection time of the new connection', async () => {
    const { agent, transport, pi, until, healthUpdates, clock } = setup();
    await agent.start();
    pi.busy(5);
    await until(MINUTE + 500);
    expect(healthUpdates().at(-1)?.connection).toMatchObject({ reconnects: 0, connectedS: 60 });
    transport.drop();
    await until(MINUTE + 20_000);
    transport.connect();
    const reconnectedAt = clock.now();
    pi.busy(5);
    await until(2 * MINUTE + 500);
    const last = healthUpdates().at(-1) as HealthReport;
    expect(last.sampledAt).toBe(START + 2 * MINUTE);
    expect(last.connection.reconnects).toBe(1);
    expect(last.connection.connectedS).toBe(Math.floor((START + 2 * MINUTE - reconnectedAt) / 1000));
  });

  it('without host stats (not Linux, or none given) reports the connection only', async () => {
    const { agent, until, healthUpdates } = setup({ hostStats: 'none' });
    await agent.start();
    await until(MINUTE + 500);
    const h = healthUpdates()[0] as HealthReport;
    expect(h).not.toHaveProperty('host');
    expect(h).not.toHaveProperty('process');
    expect(h.connection).toMatchObject({ reconnects: 0, connectedS: 60 });
  });

  it('a host stats port that rejects costs the host fields, logs once, and sampling goes on', async () => {
    const failing: HostStats = { sample: () => Promise.reject(new Error('EIO')) };
    const { agent, until, healthUpdates, lines } = setup({ hostStats: failing });
    await agent.start();
    await until(3 * MINUTE + 500);
    expect(healthUpdates()[0]).not.toHaveProperty('host');
    expect(agent.status().health?.sampledAt).toBe(START + 3 * MINUTE);
    expect(lines.filter((l) => l.msg === 'host stats sample failed')).toHaveLength(1);
  });

  it('0 turns health off: no sample, no health in any report', async () => {
    const { agent, shadow, until } = setup({ health: 0 });
    await agent.start();
    await until(6 * MINUTE);
    expect(shadow.updates.length).toBeGreaterThanOrEqual(2);
    expect(shadow.updates.filter((u) => 'health' in u)).toHaveLength(0);
    expect(agent.status().health).toBeUndefined();
  });

  it('no shadow, no health sampling (there is nobody to tell)', async () => {
    let sampled = 0;
    const counting: HostStats = {
      sample: async () => {
        sampled += 1;
        return {};
      },
    };
    const { agent, until } = setup({ shadow: false, hostStats: counting });
    await agent.start();
    await until(3 * MINUTE);
    expect(sampled).toBe(0);
    expect(agent.status().health).toBeUndefined();
  });

  it('stops sampling when the agent stops', async () => {
    let sampled = 0;
    const counting: HostStats = {
      sample: async () => {
        sampled += 1;
        return {};
      },
    };
    const { agent, clock, until } = setup({ hostStats: counting });
    await agent.start();
    await until(2 * MINUTE + 500);
    const stopping = agent.stop();
    while (clock.pending() > 0 && sampled < 100) await clock.advance(100);
    await stopping;
    const after = sampled;
    await clock.advance(10 * MINUTE);
    expect(sampled).toBe(after);
  });
});
