/**
 * The web console's live feed under telemetry (issue 21): BENCH_THINGS things × BENCH_BATCHES
 * telemetry batches of 10 readings (one a second: a BME280's three numbers, a door's boolean every
 * fifth reading) published on the bus of an in-process local IoT Core, through a live feed of the
 * console (live-feed.ts, catalog.ts, fleet-state.ts) subscribed to that bus. Nobody has the
 * console open, as in the 10,000-device fleet run (or, with BENCH_FLEET_VIEW=1, a fleet view is).
 *
 * Measures, per implementation:
 * - µs per message: time spent inside the feed's telemetry handler (decode, summary, history),
 *   summed around each call; and, for comparison, `decodeTelemetryBatch` alone on the same payloads.
 * - µs per flush: the fleet-summary flush that runs every 250 ms (timed around the feed's timer).
 * - retained heap per thing: V8 heap plus ArrayBuffer memory after a full GC with the feed's picture
 *   alive, minus the same once it is dropped, over the number of things (the history is full: 300 readings).
 * - µs per history read: building one thing's 300 readings when someone asks (a thing view opens).
 *
 *   npx -y pnpm@10 bench console
 *   BENCH_THINGS=2000 BENCH_BATCHES=40 npx -y pnpm@10 bench console
 *   BENCH_BASELINE=b7ccdef npx -y pnpm@10 bench console   also the console at that commit, same run
 *   BENCH_FLEET_VIEW=1 npx -y pnpm@10 bench console       with a fleet view open (an event stream)
 *
 * The baseline's console files are taken from git into a temporary directory (their imports of
 * the rest of the tree point at this checkout), so both run against the same core and protocol.
 * Writes bench/results/console.json. Talks only to 127.0.0.1.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { BusMessage } from '../cloud/src/broker/index.js';
import type * as CatalogModule from '../cloud/src/console/catalog.js';
import type * as FleetStateModule from '../cloud/src/console/fleet-state.js';
import type * as LiveFeedModule from '../cloud/src/console/live-feed.js';
import { createLocalConsoleBackend } from '../cloud/src/console/local-backend.js';
import { createSseHub } from '../cloud/src/console/sse.js';
import { silentLogger } from '../cloud/src/logger.js';
import { type InProcessCore, removeDir, startInProcessCore, tempDir } from '../cloud/src/testing/in-process-core.js';
import { appTopicFilters, appTopics, decodeTelemetryBatch } from '../protocol/src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.dirname(here);
const THINGS = positive('BENCH_THINGS', 1_000);
const BATCHES = positive('BENCH_BATCHES', 40);
const READINGS = 10;
const baseline = process.env.BENCH_BASELINE;
/** BENCH_FLEET_VIEW=1: a fleet view is open (an event stream on 127.0.0.1 that reads and drops what it gets). */
const FLEET_VIEW = process.env.BENCH_FLEET_VIEW === '1';
const T0 = 1_700_000_000_000;

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
}

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

interface ConsoleModules {
  readonly fleetState: typeof FleetStateModule;
  readonly catalog: typeof CatalogModule;
  readonly liveFeed: typeof LiveFeedModule;
}

const thingName = (i: number) => `bench-${String(i).padStart(5, '0')}`;

function payload(thing: number, batch: number): Buffer {
  const readings = Array.from({ length: READINGS }, (_, r) => {
    const ts = T0 + (batch * READINGS + r) * 1_000;
    return r % 5 === 4
      ? { sensor: 'door', ts, metrics: { open: (batch + r) % 2 === 0 } }
      : {
          sensor: 'bme280',
          ts,
          metrics: { temperature: 20 + ((thing + r) % 70) / 10, humidity: 40 + (r % 3), pressure: 1013.2 },
        };
  });
  const last = readings[readings.length - 1]?.ts ?? T0;
  return Buffer.from(
    JSON.stringify({
      v: 1,
      thingName: thingName(thing),
      bootId: 'boot-bench-01',
      seq: batch + 1,
      sealedAt: last,
      readings,
    }),
  );
}

/** The console files at a commit, in a temporary directory, importing the rest of this checkout. */
async function loadBaseline(rev: string, into: string): Promise<ConsoleModules> {
  const files = execFileSync('git', ['ls-tree', '--name-only', rev, 'cloud/src/console/'], {
    cwd: repo,
    encoding: 'utf8',
  })
    .split('\n')
    .filter((f) => f.endsWith('.ts'));
  const src = path.join(repo, 'cloud', 'src');
  for (const file of files) {
    const text = execFileSync('git', ['show', `${rev}:${file}`], { cwd: repo, encoding: 'utf8' })
      .replaceAll("from '../", `from '${pathToFileURL(src).href}/`)
      .replaceAll("from '@pifleet/protocol'", `from '${pathToFileURL(path.join(repo, 'protocol/src/index.ts')).href}'`);
    writeFileSync(path.join(into, path.basename(file)), text);
  }
  const load = (name: string) => import(pathToFileURL(path.join(into, name)).href);
  return {
    fleetState: (await load('fleet-state.ts')) as typeof FleetStateModule,
    catalog: (await load('catalog.ts')) as typeof CatalogModule,
    liveFeed: (await load('live-feed.ts')) as typeof LiveFeedModule,
  };
}

interface Result {
  readonly messages: number;
  readonly feedMicrosPerMessage: number;
  readonly decodeMicrosPerMessage: number;
  readonly flushMicros: number;
  readonly flushes: number;
  readonly retainedHeapBytesPerThing: number;
  readonly historyReadMicrosPerThing: number;
  readonly historyReadings: number;
}

type Feeding = Omit<Result, 'retainedHeapBytesPerThing'>;

/**
 * Feeds the core's bus through a live feed of these modules; returns the figures and a holder of
 * the feed's picture (the only reference to it), so the caller can measure the heap with and without.
 */
async function feedThrough(
  modules: ConsoleModules,
  core: InProcessCore,
): Promise<{ figures: Feeding; holder: { picture: unknown } }> {
  const { registry, broker, shadows } = core.core.services;
  let clock = T0;
  const now = () => clock;
  let feedMs = 0;
  let messages = 0;
  // The feed's bus, with its telemetry handler timed.
  const bus: typeof broker.bus = {
    ...broker.bus,
    subscribe: (filter, handler) =>
      broker.bus.subscribe(filter, (m: BusMessage) => {
        if (filter !== appTopicFilters.telemetry) return handler(m);
        const t = performance.now();
        const r = handler(m);
        feedMs += performance.now() - t;
        messages++;
        return r;
      }),
  };
  const fleet = modules.fleetState.createFleetState();
  // Both shapes of the catalog's deps: the baseline's files take the core's services, the current
  // ones a console backend (over the same services, its bus the timed one above).
  const backend = { ...createLocalConsoleBackend({ registry, broker, shadows }), subscribe: bus.subscribe };
  const catalogDeps = { registry, broker, shadows, backend, fleet, now };
  const catalog = modules.catalog.createThingCatalog(catalogDeps);
  const hub = createSseHub();
  const viewer = FLEET_VIEW ? await openFleetView(hub) : undefined;
  // The feed's flush runs in the only timer it starts: timed while the feed runs.
  let flushMs = 0;
  let flushes = 0;
  const realSetTimeout = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: () => void, ms: number) =>
    realSetTimeout(() => {
      const t = performance.now();
      fn();
      flushMs += performance.now() - t;
      flushes++;
    }, ms)) as unknown as typeof setTimeout;
  const feed = modules.liveFeed.createLiveFeed({ bus, catalog, hub, now, log: silentLogger(), flushMs: 250 });
  let decodeMs = 0;
  try {
    await feed.start();
    for (let b = 0; b < BATCHES; b++) {
      clock = T0 + (b + 1) * READINGS * 1_000;
      const round: Buffer[] = [];
      for (let i = 0; i < THINGS; i++) round.push(payload(i, b));
      for (let i = 0; i < THINGS; i += 250) {
        const chunk = round.slice(i, i + 250);
        await Promise.all(chunk.map((p, j) => broker.bus.publish(appTopics.telemetry(thingName(i + j)), p)));
      }
      const t = performance.now();
      for (const p of round) decodeTelemetryBatch(p);
      decodeMs += performance.now() - t;
      // Lets the feed's flush run between rounds, as it does every 250 ms in a running core.
      await new Promise((resolve) => realSetTimeout(resolve, 300));
    }
  } finally {
    globalThis.setTimeout = realSetTimeout;
    await feed.stop();
    await viewer?.close();
  }
  const t = performance.now();
  let readings = 0;
  for (let i = 0; i < THINGS; i++) readings += fleet.history(thingName(i), clock).length;
  const historyMs = performance.now() - t;
  return {
    figures: {
      messages,
      feedMicrosPerMessage: (feedMs * 1000) / messages,
      decodeMicrosPerMessage: (decodeMs * 1000) / (THINGS * BATCHES),
      flushMicros: flushes === 0 ? 0 : (flushMs * 1000) / flushes,
      flushes,
      historyReadMicrosPerThing: (historyMs * 1000) / THINGS,
      historyReadings: readings / THINGS,
    },
    holder: { picture: { fleet, catalog, feed } },
  };
}

/** V8's heap and the ArrayBuffers outside it (typed arrays' contents live there), after a full GC. */
/** A fleet event stream over HTTP on 127.0.0.1 whose reader drops what it receives. */
async function openFleetView(hub: ReturnType<typeof createSseHub>): Promise<{ close(): Promise<void> }> {
  const server = createServer((_req, res) => hub.open(res, undefined));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const request = get({ host: '127.0.0.1', port, path: '/' });
  await new Promise<void>((resolve, reject) => {
    request.on('response', (res) => {
      res.resume();
      resolve();
    });
    request.on('error', reject);
  });
  return {
    close: async () => {
      request.destroy();
      hub.closeAll();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function heapAfterGc(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function measure(label: string, modules: ConsoleModules): Promise<Result> {
  const dir = tempDir('console-bench');
  const core = await startInProcessCore(dir);
  try {
    const { registry } = core.core.services;
    for (let i = 0; i < THINGS; i++) registry.createThing({ thingName: thingName(i) });
    const { figures, holder } = await feedThrough(modules, core);
    await new Promise((resolve) => setImmediate(resolve));
    const alive = heapAfterGc();
    holder.picture = undefined;
    const dropped = heapAfterGc();
    const result: Result = { ...figures, retainedHeapBytesPerThing: (alive - dropped) / THINGS };
    process.stderr.write(`${label}: ${JSON.stringify(result)}\n`);
    return result;
  } finally {
    await core.stop();
    removeDir(dir);
  }
}

const results: Record<string, Result> = {};
const current: ConsoleModules = {
  fleetState: await import('../cloud/src/console/fleet-state.js'),
  catalog: await import('../cloud/src/console/catalog.js'),
  liveFeed: await import('../cloud/src/console/live-feed.js'),
};
let baselineDir: string | undefined;
try {
  if (baseline !== undefined) {
    baselineDir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-console-baseline-'));
    results[`baseline ${baseline}`] = await measure(`baseline ${baseline}`, await loadBaseline(baseline, baselineDir));
  }
  results.current = await measure('current', current);
} finally {
  if (baselineDir !== undefined) rmSync(baselineDir, { recursive: true, force: true });
}

const doc = { things: THINGS, batches: BATCHES, readingsPerBatch: READINGS, fleetView: FLEET_VIEW, results };
mkdirSync(path.join(here, 'results'), { recursive: true });
writeFileSync(path.join(here, 'results', 'console.json'), `${JSON.stringify(doc, null, 2)}\n`);

const rows = Object.entries(results);
const col = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1)).padStart(12);
process.stdout.write(
  `\nconsole live feed: ${THINGS.toLocaleString('en')} things × ${BATCHES} batches of ${READINGS} readings (${FLEET_VIEW ? 'a fleet view open' : 'nobody watching'})\n`,
);
process.stdout.write(
  `${'implementation'.padEnd(24)}${'feed µs/msg'.padStart(12)}${'decode µs'.padStart(12)}${'flush µs'.padStart(12)}${'heap B/thing'.padStart(14)}${'history µs'.padStart(12)}\n`,
);
for (const [name, r] of rows) {
  process.stdout.write(
    `${name.padEnd(24)}${col(r.feedMicrosPerMessage)}${col(r.decodeMicrosPerMessage)}${col(r.flushMicros)}${col(r.retainedHeapBytesPerThing).padStart(14)}${col(r.historyReadMicrosPerThing)}\n`,
  );
}
