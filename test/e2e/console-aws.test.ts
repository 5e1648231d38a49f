import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LocalCoreInfo } from '@pifleet/cloud';
import { runCli } from '@pifleet/provisioning';
import { SIM_LINES, type SimulatedDevice } from '@pifleet/simulator';
import { type RunningCore, removeDir, startCore, tempDir } from '@pifleet/testkit';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleTestDevice, ensureChromium, launchConsoleBrowser, waitForFleetOnline } from './console-chromium.js';

/**
 * `pifleet console` against an AWS account, with the local IoT Core standing in for the account:
 * the CLI serves the console from its own process and reaches the core only the way it reaches
 * AWS — the IoT control and data planes (`AWS_ENDPOINT_URL_IOT`, `AWS_ENDPOINT_URL_IOT_DATA_PLANE`,
 * the SDK's own endpoint settings), the command/query API with SigV4 (`--api-url`), and MQTT 5 over
 * WebSocket presigned with SigV4 (`--ws-url`, trusting the core's CA with `--ca-file`). In Chromium
 * the page sees two devices' live telemetry, a relay command converge on one, and the other flagged
 * silent after it goes away.
 */

const browser = ensureChromium();
const skipReason = 'skip' in browser ? browser.skip : undefined;
if (skipReason) console.warn(`[console-aws browser test] skipped: ${skipReason}`);

const ARTIFACTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test-artifacts/console-aws');
const DEVICES = ['pi-aws-1', 'pi-aws-2'];
/** `--silent-after` in minutes: 3 s, so the test sees a device go silent. */
const SILENT_AFTER_MIN = '0.05';

let dir: string;
let run: RunningCore;
let info: LocalCoreInfo;
let context: BrowserContext;
let page: Page;
const devices = new Map<string, SimulatedDevice>();
const stopConsole = new AbortController();
let consoleRun: Promise<number> | undefined;
let consoleOut = '';
let consoleErr = '';
let consoleUrl = '';

async function provision(thingName: string) {
  const device = await consoleTestDevice(run, path.join(dir, 'devices'), thingName, {
    policyPrefix: 'console-aws',
    samplingMs: 500,
    batchMaxAgeMs: 500,
  });
  devices.set(thingName, device);
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** The console's URL once the CLI printed it (it prints it when it is serving). */
async function printedUrl(): Promise<string> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const m = /^console: (\S+)$/m.exec(consoleOut);
    if (m?.[1]) return m[1];
    if (consoleRun !== undefined && (await Promise.race([consoleRun, Promise.resolve(undefined)])) !== undefined) {
      throw new Error(`pifleet console ended early:\n${consoleErr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`pifleet console printed no URL in 30 s:\n${consoleOut}\n${consoleErr}`);
}

describe.runIf(skipReason === undefined)(
  'pifleet console against AWS (the local core standing in), in Chromium',
  () => {
    beforeAll(async () => {
      mkdirSync(ARTIFACTS, { recursive: true });
      dir = tempDir('console-aws');
      run = await startCore(path.join(dir, 'core'));
      info = run.info;
      for (const name of DEVICES) await provision(name);
      const { accessKeyId, secretAccessKey } = run.core.services.credentials;
      const env = {
        PATH: process.env.PATH,
        HOME: dir,
        AWS_ACCESS_KEY_ID: accessKeyId,
        AWS_SECRET_ACCESS_KEY: secretAccessKey,
        AWS_REGION: info.region,
        AWS_ENDPOINT_URL_IOT: info.http,
        AWS_ENDPOINT_URL_IOT_DATA_PLANE: info.http,
      };
      consoleRun = runCli(
        [
          'console',
          '--api-url',
          `${info.http}/api`,
          '--ws-url',
          info.ws,
          '--ca-file',
          info.caFile,
          '--port',
          '0',
          '--silent-after',
          SILENT_AFTER_MIN,
        ],
        {
          stdout: { write: (s: string) => (consoleOut += s) },
          stderr: { write: (s: string) => (consoleErr += s) },
          env,
          cwd: dir,
          signal: stopConsole.signal,
        },
      );
      consoleUrl = await printedUrl();
      ({ context, page } = await launchConsoleBrowser(
        'path' in browser ? browser.path : '',
        path.join(dir, 'chromium-profile'),
      ));
    }, 120_000);

    afterAll(async () => {
      await context?.close().catch(() => undefined);
      stopConsole.abort();
      await consoleRun?.catch(() => undefined);
      await Promise.all([...devices.values()].map((d) => d.stop().catch(() => undefined)));
      await run?.stop();
      if (dir) removeDir(dir);
    });

    it('is served by the CLI, not the core, and the page says it shows AWS', async () => {
      const url = new URL(consoleUrl);
      expect(url.hostname).toBe('127.0.0.1');
      expect(url.origin).not.toBe(new URL(info.http).origin);
      await page.goto(consoleUrl);
      await page.waitForURL(/\/console\/$/);
      await page.waitForSelector('#stream[data-state="live"]');
      for (const name of DEVICES) await page.waitForSelector(`.row[data-thing="${name}"][data-connected="false"]`);
      expect(await page.textContent('#counts')).toMatch(/^AWS · 2 things · 0 connected/);
      expect(await page.isHidden('.views a[data-view="jobs"]')).toBe(true);
      expect(await page.textContent('.brand span')).toBe('console · AWS account');
      // The session cookie is not readable by scripts, and no AWS credential reached the page.
      expect(await page.evaluate('document.cookie')).toBe('');
      const html = await page.content();
      expect(html).not.toContain(run.core.services.credentials.secretAccessKey);
    });

    it('sees the devices connect and their telemetry arrive over the WebSocket feed', async () => {
      await Promise.all([...devices.values()].map((d) => d.start()));
      await waitForFleetOnline(page, DEVICES);
      await shot('fleet-online');
    }, 60_000);

    it('changes a relay from the form through the command API and shows the reported state converging', async () => {
      await page.click('.row[data-thing="pi-aws-1"] a');
      await page.waitForSelector('#thing-view:not([hidden])');
      await page.waitForSelector('#panel-reported tr[data-path="outputs.relay"]', { timeout: 20_000 });
      await page.waitForSelector('.chart[data-series="env.temperature"] canvas', { timeout: 30_000 });
      const relay = page.locator('#desired-form [data-path="outputs.relay"]');
      expect(await relay.isChecked()).toBe(false);
      const device = devices.get('pi-aws-1') as SimulatedDevice;
      expect(device.hardware.gpio.level(SIM_LINES.relay)).toBe(0);
      await relay.check();
      await page.click('#apply');
      await page.waitForSelector('#convergence[data-state="converged"]', { timeout: 30_000 });
      expect(await page.textContent('#convergence')).toMatch(/Converged: pi-aws-1 reported the new state/);
      await page.waitForSelector('#panel-reported tr[data-path="outputs.relay"] td.v:text-is("true")');
      expect(device.hardware.gpio.level(SIM_LINES.relay)).toBe(1);
      // The write went through the command API: the core's shadow holds it.
      const doc = await run.core.services.shadows.getShadow('pi-aws-1');
      expect(doc.body).toMatchObject({
        state: { desired: { outputs: { relay: true } }, reported: { outputs: { relay: true } } },
      });
      await shot('thing-converged');
    }, 90_000);

    it('flags a device silent once nothing was heard of it for --silent-after', async () => {
      await page.goto(`${new URL(consoleUrl).origin}/console/#/`);
      await page.waitForSelector('.row[data-thing="pi-aws-2"][data-connected="true"]');
      expect(await page.getAttribute('.row[data-thing="pi-aws-2"]', 'data-silent')).toBe('false');
      await devices.get('pi-aws-2')?.stop();
      await page.waitForSelector('.row[data-thing="pi-aws-2"][data-connected="false"]', { timeout: 15_000 });
      await page.waitForSelector('.row[data-thing="pi-aws-2"][data-silent="true"] .pill.silent', { timeout: 15_000 });
      // The device still sending is not silent.
      expect(await page.getAttribute('.row[data-thing="pi-aws-1"]', 'data-silent')).toBe('false');
      expect(await page.textContent('#counts')).toMatch(/· 1 silent$/);
      await shot('fleet-silent');
    }, 45_000);

    it('stops on the abort (Ctrl-C in the bin) with exit 0', async () => {
      stopConsole.abort();
      expect(await consoleRun).toBe(0);
      expect(consoleOut).toMatch(/console stopped\n$/);
    }, 20_000);
  },
);
