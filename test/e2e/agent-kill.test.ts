import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { simulatedConfigInput } from '@pifleet/simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionDevice, type RunningCore, startCore } from './agent-harness.js';

/**
 * An agent process killed with SIGKILL at random moments, again and again, then left to run: every
 * reading it sampled before a kill is stored exactly once in the core's telemetry store.
 *
 * The agent is a real process running the agent runtime (`pifleet-sim agent`: createAgent, the
 * SQLite outbox with its journal, aws-iot-device-sdk-v2 over mutual TLS, IotShadowClientv2 — the
 * composition of `pifleet-agent run` with simulated chips in place of /dev/i2c-1, which `pifleet-agent`
 * itself refuses). "Sampled" is what the agent says at trace level: its `reading` line, written once
 * the reading is persisted (in the journal, or in the batch it completed). The local core runs
 * in-process and is not killed here.
 */

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const KILLS = 12;
const SEED = Number(process.env.PIFLEET_KILL_SEED ?? Date.now() % 2 ** 31);

let dir: string;
let core: RunningCore;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'pifleet-e2e-kill-'));
  core = await startCore(path.join(dir, 'core'));
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await core?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** mulberry32: a small seeded generator, so a failing sequence of kill moments can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface LogLine {
  readonly msg?: string;
  readonly sensor?: string;
  readonly ts?: number;
}

/** One agent process: its log lines as they arrive, and waiting on a line. */
function spawnAgent(configFile: string) {
  const child = spawn(process.execPath, ['simulator/bin/pifleet-sim.js', 'agent', '--config', configFile], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const lines: LogLine[] = [];
  const waiters = new Set<() => void>();
  let partial = '';
  let stderr = '';
  child.stdout?.on('data', (b: Buffer) => {
    const text = partial + b.toString();
    const complete = text.split('\n');
    partial = complete.pop() ?? '';
    for (const l of complete) {
      try {
        lines.push(JSON.parse(l) as LogLine);
      } catch {
        // not a log line
      }
    }
    for (const w of [...waiters]) w();
  });
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const waitFor = (match: (l: LogLine) => boolean, ms: number, what: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!lines.some(match)) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`agent did not log ${what} in ${ms} ms; stderr: ${stderr.slice(-2000)}`));
      }, ms);
      waiters.add(check);
      check();
    });
  return { child, lines, exited, waitFor, stderr: () => stderr };
}

const key = (sensor: string, ts: number) => `${sensor}@${ts}`;
const sampledBy = (lines: readonly LogLine[]) =>
  lines.filter((l) => l.msg === 'reading' && l.sensor !== undefined).map((l) => key(l.sensor ?? '', l.ts ?? -1));

/** Every reading the core's telemetry store holds for a thing, one entry per stored row. */
async function storedKeys(thingName: string): Promise<string[]> {
  const out: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await core.core.services.telemetry.query({
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

describe('agent killed with SIGKILL at random moments', () => {
  it(`stores every reading sampled before each of ${KILLS} kills exactly once (seed ${SEED})`, async () => {
    const thing = 'kill-loop';
    const files = await provisionDevice(core, thing, dir);
    const configFile = path.join(dir, 'agent.json');
    writeFileSync(
      configFile,
      JSON.stringify(
        simulatedConfigInput({
          ...files,
          endpoint: core.info.mqtt.host,
          port: core.info.mqtt.port,
          samplingMs: 100,
          outboxPath: path.join(dir, 'outbox.db'),
          overrides: {
            // Batches seal often and by age, so kills land mid-batch, mid-seal and mid-publish.
            batch: { maxReadings: 20, maxAgeMs: 1_000 },
            mqtt: { protocol: '3.1.1', reconnectMinMs: 100, reconnectMaxMs: 1_000 },
            publish: { ackTimeoutMs: 2_000, maxPerSecond: 50, maxInFlight: 8 },
            logLevel: 'trace',
          },
        }),
      ),
    );

    const next = random(SEED);
    const sampled: string[] = [];
    const moments: string[] = [];
    for (let run = 0; run < KILLS; run++) {
      const agent = spawnAgent(configFile);
      if (run % 3 === 2) {
        // Right as it starts: while it seals and sends what the previous kill left in the journal.
        await agent.waitFor((l) => l.msg === 'agent starting', 60_000, 'agent starting');
        const ms = Math.floor(next() * 300);
        moments.push(`start+${ms}`);
        await new Promise((r) => setTimeout(r, ms));
      } else {
        await agent.waitFor((l) => l.msg === 'reading', 60_000, 'a reading');
        const ms = Math.floor(next() * 2_500);
        moments.push(`sampling+${ms}`);
        await new Promise((r) => setTimeout(r, ms));
      }
      agent.child.kill('SIGKILL');
      await agent.exited;
      sampled.push(...sampledBy(agent.lines));
    }
    expect(new Set(sampled).size, 'a reading logged twice').toBe(sampled.length);
    expect(sampled.length).toBeGreaterThan(KILLS * 5);

    // One more run, left alone: it seals the last killed run's journal and drains the outbox.
    const last = spawnAgent(configFile);
    const deadline = Date.now() + 90_000;
    let stored: string[] = [];
    let missing: string[] = sampled;
    while (missing.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      stored = await storedKeys(thing);
      const have = new Set(stored);
      missing = sampled.filter((k) => !have.has(k));
    }
    last.child.kill('SIGKILL');
    await last.exited;
    stored = await storedKeys(thing);

    const context = `seed ${SEED}, kill moments ${moments.join(', ')}`;
    expect(missing, `sampled before a kill but never stored (${context})`).toEqual([]);
    const counts = new Map<string, number>();
    for (const k of stored) counts.set(k, (counts.get(k) ?? 0) + 1);
    const twice = [...counts].filter(([, n]) => n > 1).map(([k]) => k);
    expect(twice, `stored more than once (${context})`).toEqual([]);
    // A reading is persisted just before its line is written: a kill between the two leaves at most
    // one stored reading per killed run that no line announced.
    const announced = new Set([...sampled, ...sampledBy(last.lines)]);
    const unannounced = stored.filter((k) => !announced.has(k));
    expect(unannounced.length, `stored without a line (${context})`).toBeLessThanOrEqual(KILLS);
  }, 600_000);
});
