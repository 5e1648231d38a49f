import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  createSimulatedDevice,
  parseAgentConfig,
  type SimulatedDevice,
  simulatedConfigInput,
} from '@pifleet/simulator';
import { provisionDevice, type RunningCore } from '@pifleet/testkit';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

/**
 * Debian's Chromium for the console's browser test. `ensureChromium()` installs the `chromium`
 * package with apt-get when the binary is missing and the process may (root, apt-get present);
 * it returns why not otherwise, so the suite can skip with that message. Playwright's own browser
 * download is never used (no binaries from outside the package registries).
 */

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Flags for a headless, quiet, offline Chromium in a container (no sandbox: we run as root). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const INSTALL_TIMEOUT_MS = 9 * 60_000;

function apt(args: string[]): { ok: boolean; output: string } {
  const r = spawnSync('apt-get', args, {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    encoding: 'utf8',
    timeout: INSTALL_TIMEOUT_MS,
  });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-3).join(' | ');
  return { ok: r.status === 0, output: r.error ? r.error.message : output };
}

/** The Chromium binary's path, installing it if needed; or `{ skip }` with the reason it cannot be had. */
export function ensureChromium(): { path: string } | { skip: string } {
  if (existsSync(CHROMIUM_PATH)) return { path: CHROMIUM_PATH };
  if (process.env.PIFLEET_NO_BROWSER_INSTALL === '1') {
    return { skip: `${CHROMIUM_PATH} missing and PIFLEET_NO_BROWSER_INSTALL=1` };
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return { skip: `${CHROMIUM_PATH} missing; run 'apt-get install -y chromium' as root to enable the browser test` };
  }
  let install = apt(['install', '-y', '-q', 'chromium']);
  if (!install.ok) {
    // A fresh machine may have no package lists yet.
    apt(['update', '-q']);
    install = apt(['install', '-y', '-q', 'chromium']);
  }
  if (!install.ok || !existsSync(CHROMIUM_PATH)) {
    return { skip: `could not install Debian's chromium (${install.output || 'apt-get failed'})` };
  }
  return { path: CHROMIUM_PATH };
}

/** The little of the page's globals the functions run in the page use (no DOM library here). */
export interface PageGlobals {
  document: { querySelector(selector: string): { textContent: string | null } | null };
}

/** Waits until the fleet view shows every one of `names` connected, with a reading in its telemetry cell. */
export async function waitForFleetOnline(page: Page, names: readonly string[]): Promise<void> {
  for (const name of names) {
    await page.waitForSelector(`.row[data-thing="${name}"][data-connected="true"]`, { timeout: 30_000 });
  }
  await page.waitForFunction(
    (shown) =>
      shown.every((n) => {
        const cell = (globalThis as unknown as PageGlobals).document.querySelector(
          `.row[data-thing="${n}"] .telemetry`,
        );
        return cell !== null && cell.textContent !== '—';
      }),
    names,
    { timeout: 30_000 },
  );
}

/** Headless Chromium with a profile in `profileDir`, a 1400×900 window, and its first page. */
export async function launchConsoleBrowser(
  browserPath: string,
  profileDir: string,
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: browserPath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page };
}

/**
 * A simulated device for a console test: provisioned on the core (its own policy), the real agent on
 * simulated hardware with the bench sensors and a relay, batches sealed every `batchMaxAgeMs`.
 */
export async function consoleTestDevice(
  run: RunningCore,
  devicesDir: string,
  thingName: string,
  options: { policyPrefix: string; samplingMs: number; batchMaxAgeMs: number },
): Promise<SimulatedDevice> {
  const files = await provisionDevice(run, thingName, devicesDir, {
    policyName: `${options.policyPrefix}-${thingName}`,
  });
  const config = parseAgentConfig(
    simulatedConfigInput({
      ...files,
      endpoint: run.info.mqtt.host,
      port: run.info.mqtt.port,
      samplingMs: options.samplingMs,
      sensors: 'bench',
      relay: true,
      overrides: { batch: { maxAgeMs: options.batchMaxAgeMs } },
    }),
  );
  return createSimulatedDevice({ config, seed: thingName });
}
