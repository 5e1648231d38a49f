import type { MetricsExposition } from '../adapters/prometheus-metrics.js';
import type { ApiResponse, RequestHead, Route, RouteGroup } from './server.js';

/**
 * `GET /metrics` on the local core's HTTP listener: the Prometheus text exposition of the core's
 * registry (adapters/prometheus-metrics.ts).
 *
 * Not SigV4: Prometheus cannot sign. Instead the request's Host must name this machine (the
 * console's check, `thisMachineHosts` in console/auth.ts): a scraper on this machine, or one that
 * addresses it by the name or address the core binds to, is answered; a page of another site that
 * rebinds its DNS name to this machine is not (its Host is its own name). The counts carry no
 * secret (no thing names, keys or payloads), which is why a Host check is enough here and not for
 * the console, which also needs its session cookie.
 */

export const METRICS_PATH = '/metrics';

export interface MetricsRoutesDeps {
  readonly scrape: () => Promise<MetricsExposition>;
  /** Whether a Host header names this machine. */
  readonly isThisMachine: (host: string | undefined) => boolean;
}

const plain = (status: number, message: string): ApiResponse => ({
  status,
  headers: { 'content-type': 'text/plain; charset=utf-8' },
  body: `${message}\n`,
});

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function metricsRoutes(deps: MetricsRoutesDeps): RouteGroup {
  const handle: Route['handle'] = async () => {
    const { contentType, body } = await deps.scrape();
    return { status: 200, headers: { 'content-type': contentType }, body };
  };
  return {
    name: 'metrics',
    signingNames: [],
    routes: [
      { method: 'GET', path: METRICS_PATH, operation: 'GetMetrics', handle },
      { method: 'HEAD', path: METRICS_PATH, operation: 'GetMetrics', handle },
    ],
    ownAuth: {
      prefix: METRICS_PATH,
      headers: { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' },
      // A scrape has no body.
      maxBodyBytes: 0,
      admit(request: RequestHead) {
        if (deps.isThisMachine(single(request.headers.host))) return undefined;
        request.logger.warn({ host: single(request.headers.host)?.slice(0, 256) }, 'metrics request refused');
        return plain(403, 'Forbidden: Host is not this machine.');
      },
      unmatched: ({ method, rawPath }) =>
        method === 'GET' || method === 'HEAD'
          ? plain(404, `Nothing at ${rawPath}.`)
          : plain(405, `Method ${method} is not allowed.`),
    },
  };
}
