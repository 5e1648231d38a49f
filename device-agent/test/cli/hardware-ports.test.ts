import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { appTopics, EXIT } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliIo, runCli } from '../../src/main.js';
import type { Gpio, GpioLine } from '../../src/ports/gpio.js';
import { makePki, startTlsBroker, type TestPki, waitFor } from '../transport/tls-broker.js';

/**
 * `pifleet-agent run` with hardware ports from its caller (`CliIo.hardwarePorts`): how the agent
 * benchmark runs the deployed `run` on simulated chips where no GPIO or I2C exists.
 */

const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-cli-ports-'));
let pki: TestPki;
beforeAll(async () => {
  pki = await makePki('pi-ports');
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  pki?.cleanup();
});

/** A GPIO port whose lines read 1, counting what the agent opens and releases. */
function fakeGpio() {
  const opened: number[] = [];
  const released: number[] = [];
  const line = (n: number, direction: 'in' | 'out'): GpioLine => ({
    line: n,
    direction,
    read: async () => 1,
    write: async () => undefined,
    watch: () => () => undefined,
    release: async () => {
      released.push(n);
    },
  });
  const gpio: Gpio = {
    input: async (n) => {
      opened.push(n);
      return line(n, 'in');
    },
    output: async (n) => {
      opened.push(n);
      return line(n, 'out');
    },
    close: async () => undefined,
  };
  return { gpio, opened, released };
}

function config(name: string, fields: Record<string, unknown>): string {
  const file = path.join(dir, name);
  writeFileSync(
    file,
    JSON.stringify({
      thingName: 'pi-ports',
      endpoint: '127.0.0.1',
      certFile: pki.certFile,
      keyFile: pki.keyFile,
      caFile: pki.caFile,
      hardware: 'simulated',
      sensors: [{ id: 'door', driver: 'digital-input', line: 5, intervalMs: 200 }],
      outbox: { path: path.join(dir, `${name}.d`, 'outbox.db') },
      logLevel: 'warn',
      ...fields,
    }),
  );
  return file;
}

describe('pifleet-agent run with hardware ports from its caller', () => {
  it('refuses hardware "simulated" with 78, before connecting, when the caller passes no ports', async () => {
    const err: string[] = [];
    const io: CliIo = { stdout: () => undefined, stderr: (t) => err.push(t), env: {} };
    // Port 1: nothing listens there; the refusal comes before any connection is tried.
    const code = await runCli(['run', '--config', config('no-ports.json', { port: 1 })], io);
    expect(code).toBe(EXIT.config);
    expect(err.join('')).toMatch(/hardware "simulated" needs simulated ports/);
  });

  it('samples through the ports it is given, publishes their readings, and releases the lines at stop', async () => {
    const broker = await startTlsBroker(pki);
    const telemetry: Buffer[] = [];
    const first = waitFor<void>(
      'a telemetry batch',
      (done) =>
        broker.aedes.on('publish', (p) => {
          if (p.topic !== appTopics.telemetry('pi-ports')) return;
          telemetry.push(Buffer.from(p.payload));
          done();
        }),
      20_000,
    );
    const { gpio, opened, released } = fakeGpio();
    let stop: (signal: 'SIGTERM') => void = () => undefined;
    const stopped = new Promise<'SIGTERM'>((resolve) => {
      stop = resolve;
    });
    const err: string[] = [];
    const io: CliIo = {
      stdout: () => undefined,
      stderr: (t) => err.push(t),
      env: {},
      waitForStop: () => stopped,
      hardwarePorts: { gpio },
    };
    const file = config('ports.json', {
      port: broker.port,
      mqtt: { protocol: '3.1.1' },
      batch: { maxReadings: 1 },
      jobs: { enabled: false },
    });
    const exit = runCli(['run', '--config', file], io);
    try {
      await first;
    } finally {
      stop('SIGTERM');
    }
    expect(await exit, err.join('')).toBe(EXIT.ok);
    expect(opened).toEqual([5]);
    expect(released).toEqual([5]);
    expect(telemetry[0]?.toString()).toContain('door');
    await broker.close();
  });
});
