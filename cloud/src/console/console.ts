import type { MetricsSummary } from '../adapters/prometheus-metrics.js';
import { CloudError } from '../errors.js';
import type { RouteGroup } from '../http/server.js';
import type { QuotaReport } from '../limits/routes.js';
import { type Logger, silentLogger } from '../logger.js';
import type { Registry } from '../registry/sqlite-registry.js';
import { type Asset, loadAssets } from './assets.js';
import { CONSOLE_PREFIX, createConsoleAuth } from './auth.js';
import type { ConsoleBackend } from './backend.js';
import { createThingCatalog } from './catalog.js';
import { createFleetState, type FleetStateOptions } from './fleet-state.js';
import { type ConsoleJobsService, createConsoleJobs } from './jobs.js';
import { createLiveFeed } from './live-feed.js';
import { createLocalConsoleBackend, type LocalConsoleBackendDeps } from './local-backend.js';
import { consoleRoutes } from './routes.js';
import { createSseHub } from './sse.js';

/**
 * The web console: a fleet view and a thing view served at `/console/` on an HTTP listener (the
 * local IoT Core's, or `pifleet console`'s own for an AWS account), without SigV4 (see auth.ts for
 * the cookie scheme). It reads its backend (backend.ts: the core's services in process, or AWS's
 * APIs and MQTT over WebSocket), follows its live feed (live-feed.ts), keeps a bounded picture of the fleet in memory
 * (fleet-state.ts, catalog.ts), and pushes changes to browsers over Server-Sent Events (sse.ts);
 * its pages, files, JSON API and streams are routes of the HTTP server (routes.ts).
 *
 * Static files are plain HTML/JS/CSS in `assets/` (no build step); uPlot is served from its npm
 * package's dist file (assets.ts).
 */

export interface WebConsoleDeps extends Partial<LocalConsoleBackendDeps> {
  /** What the console reads and writes; default: the local core's registry, broker and shadows. */
  readonly backend?: ConsoleBackend;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  readonly logger?: Logger;
  /** Console token (default: random per start). */
  readonly token?: string;
  /** Host names besides the loopback names that a request's Host may carry (e.g. the bind address). */
  readonly allowedHosts?: readonly string[];
  /** Fleet summaries are sent at most this often (default 250 ms). */
  readonly flushMs?: number;
  readonly heartbeatMs?: number;
  readonly history?: FleetStateOptions;
  /** Directory of index.html, app.js, app.css (default: `assets/` beside this module). */
  readonly assetsDir?: string;
  /** The quota counters, for the header's throttled line (`GET /quotas`'s answer). */
  readonly quotas?: () => QuotaReport;
  /** The core's metrics in short, for the fleet view's metrics strip (`GET /metrics` in full). */
  readonly metrics?: () => Promise<MetricsSummary>;
  /** The jobs service, for the jobs view (without it the console has no jobs routes; needs `registry`). */
  readonly jobs?: ConsoleJobsService;
  /** A thing heard of longer ago than this is flagged silent in the fleet view (default 15 minutes). */
  readonly silentAfterMs?: number;
  /** The jobs view's refresh interval of open streams (default 1,000 ms) and its page bound (default 2,000 executions). */
  readonly jobsView?: { readonly pollMs?: number; readonly maxExecutions?: number };
}

export interface WebConsole {
  /** Loads the assets, reads the registry and the shadows, subscribes to the bus. */
  start(): Promise<void>;
  /** Unsubscribes and closes every event stream. */
  stop(): Promise<void>;
  /** The route group to give the HTTP server (its own session auth, under `/console`). */
  readonly routes: RouteGroup;
  readonly token: string;
  /** The URL that opens the console: `${httpBase}/console/?token=…`. */
  url(httpBase: string): string;
}

export function createWebConsole(deps: WebConsoleDeps): WebConsole {
  const log = (deps.logger ?? silentLogger()).child({ component: 'console' });
  const { now } = deps;
  const backend = deps.backend ?? localBackend(deps);
  const auth = createConsoleAuth({
    ...(deps.token !== undefined ? { token: deps.token } : {}),
    ...(deps.allowedHosts !== undefined ? { allowedHosts: deps.allowedHosts } : {}),
    now,
  });
  const fleet = createFleetState(deps.history ?? {});
  const catalog = createThingCatalog({
    backend,
    fleet,
    now,
    ...(deps.history?.historyWindowMs === undefined ? {} : { historyWindowMs: deps.history.historyWindowMs }),
  });
  const hub = createSseHub(deps.heartbeatMs !== undefined ? { heartbeatMs: deps.heartbeatMs } : {});
  const feed = createLiveFeed({ bus: backend, catalog, hub, now, log, flushMs: deps.flushMs ?? 250 });
  const jobs =
    deps.jobs === undefined
      ? undefined
      : createConsoleJobs({
          jobs: deps.jobs,
          registry: registryOf(deps),
          now,
          log,
          ...deps.jobsView,
          ...(deps.heartbeatMs === undefined ? {} : { heartbeatMs: deps.heartbeatMs }),
        });
  let assets: ReadonlyMap<string, Asset> = new Map();
  let running = false;

  return {
    routes: consoleRoutes({
      auth,
      catalog,
      hub,
      backend,
      assets: () => assets,
      running: () => running,
      now,
      log,
      ...(deps.quotas === undefined ? {} : { quotas: deps.quotas }),
      ...(deps.metrics === undefined ? {} : { metrics: deps.metrics }),
      ...(jobs === undefined ? {} : { jobRoutes: jobs.routes }),
      ...(deps.silentAfterMs === undefined ? {} : { silentAfterMs: deps.silentAfterMs }),
    }),
    token: auth.token,
    url: (httpBase) => `${httpBase.replace(/\/$/, '')}${CONSOLE_PREFIX}/?token=${encodeURIComponent(auth.token)}`,

    async start() {
      if (running) throw new CloudError('CONSOLE_ALREADY_STARTED', 'the console is already started');
      assets = await loadAssets({ assetsDir: deps.assetsDir, log });
      await catalog.load();
      running = true;
      try {
        await feed.start();
      } catch (err) {
        running = false;
        throw err;
      }
      log.info({ things: fleet.size }, 'console started');
    },

    async stop() {
      running = false;
      const unsubscribed = feed.stop();
      hub.closeAll();
      jobs?.stop();
      await unsubscribed;
      await backend.close?.();
    },
  };
}

function registryOf(deps: WebConsoleDeps): Registry {
  if (deps.registry === undefined) throw new CloudError('CONSOLE_DEPS', 'the console jobs view needs the registry');
  return deps.registry;
}

function localBackend(deps: WebConsoleDeps): ConsoleBackend {
  const { registry, broker, shadows } = deps;
  if (registry === undefined || broker === undefined || shadows === undefined) {
    throw new CloudError('CONSOLE_DEPS', 'the console needs a backend, or the registry, broker and shadows of a core');
  }
  return createLocalConsoleBackend({ registry, broker, shadows });
}
