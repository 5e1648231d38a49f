import type { ServerResponse } from 'node:http';
import { DEFAULT_SILENT_AFTER_MS, desiredStateJsonSchema, isValidThingName } from '@pifleet/protocol';
import type { MetricsSummary } from '../adapters/prometheus-metrics.js';
import type { ApiResponse, RequestHead, Route, RouteGroup, RouteResponse } from '../http/server.js';
import type { QuotaReport } from '../limits/routes.js';
import type { Logger } from '../logger.js';
import type { Asset } from './assets.js';
import { CONSOLE_PREFIX, type ConsoleAuth } from './auth.js';
import type { ConsoleBackend } from './backend.js';
import type { ThingCatalog } from './catalog.js';
import { setDesired } from './desired.js';
import type { SseHub } from './sse.js';
import { CONSOLE_HEADERS, html, json, messagePage } from './wire.js';

/**
 * The console's route group on the core's HTTP server: not SigV4 but the console's own session
 * (auth.ts), checked by `admit` for every path under `/console` before any route; then the page,
 * its files, the JSON API and the event streams as routes.
 */

export interface ConsoleRoutesDeps {
  readonly auth: ConsoleAuth;
  readonly catalog: ThingCatalog;
  readonly hub: SseHub;
  readonly backend: Pick<ConsoleBackend, 'writeDesired' | 'history' | 'kind'>;
  /** The files loaded at start. */
  readonly assets: () => ReadonlyMap<string, Asset>;
  /** Between start and stop; otherwise every request gets 503. */
  readonly running: () => boolean;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  readonly log: Logger;
  /** The quota counters (`GET /quotas`'s answer); without it the console's quotas API answers 404. */
  readonly quotas?: () => QuotaReport;
  /** The core's metrics in short; without it the console's metrics API answers 404 (an AWS account's console). */
  readonly metrics?: () => Promise<MetricsSummary>;
  /** The jobs view's routes (jobs.ts), when the core has a jobs service. */
  readonly jobRoutes?: readonly Route[];
  /** A thing heard of longer ago than this is shown as silent (default {@link DEFAULT_SILENT_AFTER_MS}). */
  readonly silentAfterMs?: number;
}

/** Largest request body (a desired state is a few hundred bytes). */
export const MAX_BODY_BYTES = 64 * 1024;

const PAGE = `${CONSOLE_PREFIX}/`;

/** The page the token is traded on: a page (not a redirect) moves on, so the next request is same-site and carries the Strict cookie. */
const SIGNED_IN_PAGE =
  '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/console/">' +
  '<title>pifleet console</title></head><body><a href="/console/">Open the console</a></body></html>';

/** A GET route and its HEAD twin (Node sends no body for HEAD). */
function get(path: string, operation: string, handle: Route['handle']): Route[] {
  return [
    { method: 'GET', path, operation, handle },
    { method: 'HEAD', path, operation, handle },
  ];
}

export function consoleRoutes(deps: ConsoleRoutesDeps): RouteGroup {
  const { auth, catalog, hub, now, log } = deps;
  const { fleet } = catalog;

  function admit(request: RequestHead): ApiResponse | undefined {
    const { method, rawPath, query } = request;
    if (!deps.running()) return json(503, { message: 'The console is not running.' });
    if (rawPath === CONSOLE_PREFIX) {
      const search = new URL(`${CONSOLE_PREFIX}?${request.rawQuery}`, 'http://console.invalid').search;
      return { status: 308, headers: { 'content-type': 'text/plain', location: `${PAGE}${search}` }, body: '' };
    }
    const isPage = rawPath === PAGE;
    const origin = auth.checkOrigin(request.headers, {
      navigation: isPage && method === 'GET',
      needsOrigin: method === 'POST',
    });
    if (!origin.ok) {
      log.warn({ path: rawPath, reason: origin.reason }, 'console request refused');
      return json(origin.status, { message: `Forbidden: ${origin.reason}.` });
    }
    if (isPage && method === 'GET' && query.has('token')) {
      if (!auth.tokenMatches(query.get('token'))) {
        log.warn('console token refused');
        return html(
          401,
          messagePage('Console token not valid', 'Open the console URL the local IoT Core printed at start-up.'),
        );
      }
      return html(200, SIGNED_IN_PAGE, { 'set-cookie': auth.openSession() });
    }
    if (auth.hasSession(request.headers)) return undefined;
    if (isPage) {
      return html(
        401,
        messagePage(
          'Sign-in needed',
          'Open the console URL with its token, as the local IoT Core printed it at start-up (…/console/?token=…).',
        ),
      );
    }
    return json(401, { message: 'No console session: open the console URL printed at start-up.' });
  }

  function asset(name: string): ApiResponse {
    const found = deps.assets().get(name);
    if (found === undefined) return json(404, { message: 'No such file.' });
    return { status: 200, headers: { 'content-type': found.type }, body: found.body };
  }

  /** A registered (or already seen) thing named by a path label; undefined for anything else. */
  function thing(name: string | undefined): string | undefined {
    return name !== undefined && isValidThingName(name) && catalog.known(name) ? name : undefined;
  }

  function openEvents(res: ServerResponse, thingName: string | undefined): void {
    const client = hub.open(res, thingName);
    if (thingName === undefined) {
      catalog
        .syncWithRegistry()
        .catch((err: unknown) => log.warn({ err }, 'things not listed for the console'))
        .finally(() => client.send('snapshot', fleetPage()));
      return;
    }
    const backfilled = catalog.backfill(thingName).catch((err: unknown) => {
      log.warn({ err, thing: thingName }, 'stored readings not read for the console');
    });
    Promise.all([catalog.readShadow(thingName), backfilled])
      .then(([doc]) => doc)
      .then(
        (doc) => client.send('detail', catalog.detail(thingName, doc)),
        (err: unknown) => {
          log.warn({ err, thing: thingName }, 'shadow not read for the console');
          client.send('detail', catalog.detail(thingName, null));
        },
      );
  }

  const noSuchThing = () => json(404, { message: 'No such thing.' });

  /** The fleet as a view starts from: every summary, the server's time, the silence threshold, the target. */
  const fleetPage = () => ({
    things: fleet.list(),
    now: now(),
    silentAfterMs: deps.silentAfterMs ?? DEFAULT_SILENT_AFTER_MS,
    target: deps.backend.kind,
  });

  const routes: Route[] = [
    ...get(PAGE, 'ConsolePage', () => asset('index.html')),
    ...get(`${CONSOLE_PREFIX}/assets/{name}`, 'ConsoleAsset', (r) => {
      const name = r.params.name as string;
      return name.includes('/') ? json(404, { message: 'No such file.' }) : asset(name);
    }),
    ...get(`${CONSOLE_PREFIX}/vendor/{name}`, 'ConsoleVendorAsset', (r) => asset(`vendor/${r.params.name}`)),
    ...get(`${CONSOLE_PREFIX}/events`, 'ConsoleEvents', (r): RouteResponse => {
      const thingName = r.query.get('thing');
      if (thingName !== undefined && !isValidThingName(thingName)) {
        return json(400, { message: 'Not a valid thing name.' });
      }
      return { stream: (res) => openEvents(res, thingName) };
    }),
    ...get(`${CONSOLE_PREFIX}/api/things`, 'ConsoleListThings', async () => {
      await catalog.syncWithRegistry();
      return json(200, fleetPage());
    }),
    ...get(`${CONSOLE_PREFIX}/api/things/{thingName}`, 'ConsoleDescribeThing', async (r) => {
      const name = thing(r.params.thingName);
      if (name === undefined) return noSuchThing();
      await catalog.backfill(name).catch((err: unknown) => log.warn({ err, thing: name }, 'stored readings not read'));
      return json(200, catalog.detail(name, await catalog.readShadow(name)));
    }),
    ...get(`${CONSOLE_PREFIX}/api/schema/desired`, 'ConsoleDesiredSchema', () => json(200, desiredStateJsonSchema())),
    ...get(`${CONSOLE_PREFIX}/api/quotas`, 'ConsoleQuotas', () => {
      const report = deps.quotas?.();
      return report === undefined ? json(404, { message: 'This core reports no quotas.' }) : json(200, report);
    }),
    ...get(`${CONSOLE_PREFIX}/api/metrics`, 'ConsoleMetrics', async () =>
      deps.metrics === undefined
        ? json(404, { message: 'This console reports no metrics.' })
        : json(200, await deps.metrics()),
    ),
    {
      method: 'POST',
      path: `${CONSOLE_PREFIX}/api/things/{thingName}/desired`,
      operation: 'ConsoleSetDesired',
      handle(r) {
        const name = thing(r.params.thingName);
        if (name === undefined) return noSuchThing();
        return setDesired({ catalog, backend: deps.backend, now, log }, name, r.body);
      },
    },
    ...(deps.jobRoutes ?? []),
  ];

  return {
    name: 'console',
    signingNames: [],
    routes,
    ownAuth: {
      prefix: CONSOLE_PREFIX,
      headers: CONSOLE_HEADERS,
      maxBodyBytes: MAX_BODY_BYTES,
      admit,
      unmatched: ({ method, rawPath }) =>
        method === 'GET' || method === 'HEAD'
          ? json(404, { message: `Nothing at ${rawPath}.` })
          : json(405, { message: `Method ${method} is not allowed.` }),
    },
  };
}
