import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../logger.js';
import { HTML, messagePage } from './wire.js';

/**
 * The console's static files: plain HTML/JS/CSS in `assets/` (no build step) and uPlot from its npm
 * package's dist file, read once at start and served from memory. Keys are the names the routes
 * serve: `index.html`, `app.js`, `app.css`, `vendor/uplot.js`, `vendor/uplot.css`.
 */

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

const PAGE_FILES: ReadonlyArray<readonly [string, string]> = [
  ['index.html', HTML],
  ['app.js', 'text/javascript; charset=utf-8'],
  ['app.css', 'text/css; charset=utf-8'],
];

/**
 * Reads the page files from `assetsDir`, or beside this module (the source tree, or a build that
 * copied them), else the source tree next to a build in the workspace. Never fails: without the
 * page files the page says what is missing; without uPlot it draws no charts.
 */
export async function loadAssets(options: {
  assetsDir?: string | undefined;
  log: Logger;
}): Promise<Map<string, Asset>> {
  const { log } = options;
  const assets = new Map<string, Asset>();
  const dirs = options.assetsDir
    ? [options.assetsDir]
    : [
        fileURLToPath(new URL('./assets/', import.meta.url)),
        fileURLToPath(new URL('../../src/console/assets/', import.meta.url)),
      ];
  let loaded = false;
  for (const dir of dirs) {
    try {
      const bodies = await Promise.all(PAGE_FILES.map(([name]) => readFile(join(dir, name))));
      PAGE_FILES.forEach(([name, type], i) => {
        assets.set(name, { type, body: bodies[i] as Buffer });
      });
      loaded = true;
      break;
    } catch {
      // try the next place
    }
  }
  if (!loaded) {
    // The core still runs; the console page explains what is missing.
    log.warn({ dirs }, 'console assets not found: the console is unavailable');
    assets.set('index.html', {
      type: HTML,
      body: Buffer.from(messagePage('Console unavailable', `Its files were not found in ${dirs.join(' or ')}.`)),
    });
  }
  try {
    const require = createRequire(import.meta.url);
    const js = require.resolve('uplot/dist/uPlot.iife.min.js');
    const css = require.resolve('uplot/dist/uPlot.min.css');
    assets.set('vendor/uplot.js', { type: 'text/javascript; charset=utf-8', body: await readFile(js) });
    assets.set('vendor/uplot.css', { type: 'text/css; charset=utf-8', body: await readFile(css) });
  } catch (err) {
    // The page draws no charts without it and says so; everything else works.
    log.warn({ err }, 'uPlot not found: the console shows no charts');
  }
  return assets;
}
