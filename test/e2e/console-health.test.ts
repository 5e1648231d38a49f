import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UpdateThingShadowCommand } from '@aws-sdk/client-iot-data-plane';
import type { HealthReport } from '@pifleet/protocol';
import { provisionDevice, type RunningCore, removeDir, startCore, tempDir } from '@pifleet/testkit';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureChromium, launchConsoleBrowser } from './console-chromium.js';

/**
 * The thing view's Health panel in Chromium, against the local core: a `reported.health` written
 * through the IoT data plane (as the agent's reports arrive) shows as tiles, follows the shadow
 * live, colours a hot SoC, says what a device did not report, and prints hostile values as text.
 * The agent side of `reported.health` is `agent-health.test.ts`; this is the page.
 */

const browser = ensureChromium();
const skipReason = 'skip' in browser ? browser.skip : undefined;
if (skipReason) console.warn(`[console health test] skipped: ${skipReason}`);

const ARTIFACTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test-artifacts/console');
const THING = 'pi-health';

let dir: string;
let core: RunningCore;
let context: BrowserContext;
let page: Page;

const pi4: HealthReport = {
  sampledAt: 0,
  host: {
    cpuPct: 12,
    load1: 0.31,
    load5: 0.22,
    load15: 0.18,
    memTotalMiB: 3791,
    memAvailableMiB: 3302,
    tempC: 49,
    uptimeS: 175_012,
  },
  process: { cpuPct: 0.1, rssMiB: 87 },
  connection: { reconnects: 2, connectedS: 7_380, publishLatencyMs: { last: 48, p50: 45, p99: 180, samples: 256 } },
};

/** Merges `reported` into the thing's shadow through the data plane, as a device's report does. */
async function report(reported: Record<string, unknown>): Promise<void> {
  await core.data.send(
    new UpdateThingShadowCommand({
      thingName: THING,
      payload: new TextEncoder().encode(JSON.stringify({ state: { reported } })),
    }),
  );
}

const tile = (key: string) => `#panel-health .tile[data-health="${key}"]`;
const text = async (selector: string) => (await page.textContent(selector))?.trim();

describe.runIf(skipReason === undefined)('the Health panel', () => {
  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    dir = tempDir('console-health');
    core = await startCore(path.join(dir, 'core'));
    await provisionDevice(core, THING, path.join(dir, 'devices'));
    ({ context, page } = await launchConsoleBrowser(
      'path' in browser ? browser.path : '',
      path.join(dir, 'chromium-profile'),
    ));
    await page.goto(core.info.console);
    await page.waitForURL(/\/console\/$/);
  }, 120_000);

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await core?.stop();
    if (dir) removeDir(dir);
  });

  it('says so while the device has reported no health', async () => {
    await report({ logLevel: 'info' });
    await page.goto(`${new URL(core.info.console).origin}/console/#/thing/${THING}`);
    await page.waitForSelector('#thing-view:not([hidden])');
    await page.waitForSelector('#panel-health >> text=No health reported yet');
  });

  it('shows CPU, memory, temperature, publish latency and reconnects, and follows the shadow live', async () => {
    await report({ health: { ...pi4, sampledAt: Date.now() - 20_000 } });
    await page.waitForSelector(tile('cpu'));
    expect(await text(`${tile('cpu')} .value`)).toBe('12 %');
    expect(await text(`${tile('cpu')} .detail`)).toBe('agent 0.1 % · load 0.31');
    expect(await text(`${tile('memory')} .value`)).toBe('13 % used');
    expect(await text(`${tile('memory')} .detail`)).toBe('3302 of 3791 MiB free · agent 87 MiB');
    expect(await text(`${tile('temperature')} .value`)).toBe('49 °C');
    expect(await text(`${tile('latency')} .value`)).toBe('45 ms');
    expect(await text(`${tile('latency')} .detail`)).toBe('median · p99 180 ms · last 48 ms · 256 acks');
    expect(await text(`${tile('reconnects')} .value`)).toBe('2');
    expect(await text(`${tile('reconnects')} .detail`)).toBe('connected for 2 h 3 min');
    expect(await text('#panel-health small')).toMatch(/^sampled 2[01] s ago$/);
    expect(await page.getAttribute(tile('temperature'), 'data-level')).toBeNull();
    await page.screenshot({ path: path.join(ARTIFACTS, 'health-panel.png'), fullPage: true });

    // The next report: the SoC at 82 °C (a Pi 4 throttles at 80), the thermal zone of another gone.
    await report({ health: { host: { tempC: 82 }, sampledAt: Date.now() } });
    await page.waitForSelector(`${tile('temperature')}[data-level="bad"]`);
    expect(await text(`${tile('temperature')} .value`)).toBe('82 °C');
    await report({ health: { host: { tempC: null } } });
    await page.waitForSelector(`${tile('temperature')} >> text=no thermal zone reported`);
    expect(await text(`${tile('temperature')} .value`)).toBe('—');
  });

  it('prints what it cannot read as "—", and markup as text', async () => {
    await report({
      health: {
        host: { cpuPct: '<img src=x onerror="document.title=1">' },
        connection: { reconnects: { __proto__: 1 }, publishLatencyMs: null, connectedS: null },
      },
    });
    await page.waitForSelector(`${tile('latency')} >> text=no batch acknowledged yet`);
    expect(await text(`${tile('cpu')} .value`)).toBe('—');
    expect(await text(`${tile('reconnects')} .value`)).toBe('—');
    expect(await text(`${tile('reconnects')} .detail`)).toBe('not connected when sampled');
    expect(await page.$('#panel-health img')).toBeNull();
  });
});
