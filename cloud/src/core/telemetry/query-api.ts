import {
  type Issue,
  isValidThingName,
  METRIC_NAME_PATTERN,
  SENSOR_ID_PATTERN,
  type Validation,
} from '@pifleet/protocol';
import {
  type ConnectivityPage,
  type ConnectivityRecord,
  MAX_QUERY_LIMIT,
  type TelemetryQuery,
  type TelemetryStore,
} from '../../ports/telemetry-store.js';
import { mapLimited } from '../map-limited.js';
import { InvalidPageTokenError, InvalidTelemetryQueryError } from './errors.js';
import { decodeConnectivityPageToken, decodePageToken } from './page-token.js';
import { lastReadingTime } from './silence.js';

/**
 * The telemetry query API, as pure request → response logic (the Lambda handler and the local
 * HTTP endpoint are shells around it):
 *
 *   GET /things/{thing}/telemetry?from&to&sensor&metric&limit&nextToken
 *   GET /things/{thing}/latest
 *   GET /presence?limit&nextToken
 *
 * `from`/`to`: ms since the epoch or an ISO-8601 date-time, inclusive; `to` defaults to now and
 * `from` to 24 hours before `to`. `limit`: 1–1000, default 100. Responses echo the resolved
 * `from` and `to`; to page, repeat the request with those and the `nextToken` it returned.
 *
 * `/presence` pages the fleet's connectivity records in thing-name order (things with no presence
 * event yet are not listed), each with the time of the thing's newest reading:
 * `{items: [{thingName, connected, at, reason?, lastReadingAt?}], nextToken?}`, `limit` 1–250,
 * default 100. It is what `pifleet console` reads at start instead of two calls per thing.
 */

export interface QueryApiRequest {
  readonly method: string;
  /** Path without the stage prefix, for example `/things/pi-01/telemetry`. */
  readonly path: string;
  readonly query: Readonly<Record<string, string | undefined>>;
}

export interface QueryApiResponse {
  readonly statusCode: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface QueryApiDeps {
  readonly store: TelemetryStore;
  readonly clock: { now(): number };
}

export const DEFAULT_QUERY_LIMIT = 100;
export const DEFAULT_QUERY_WINDOW_MS = 24 * 60 * 60 * 1000;

/**
 * The largest presence page: each item costs one `latest` query, so 250 at
 * {@link PRESENCE_CONCURRENCY} in flight are ~16 rounds of one small DynamoDB Query (~10 ms from
 * Lambda), well inside the query function's 10 s timeout; and 250 is a page of ListThings, so the
 * console reads one presence page per page of the registry.
 */
export const MAX_PRESENCE_LIMIT = 250;
/** `latest` queries in flight for one presence page (as the silent-devices check runs them). */
export const PRESENCE_CONCURRENCY = 16;

/** One item of `GET /presence`: a thing's connectivity record and the time of its newest reading. */
export interface PresenceItem {
  readonly thingName: string;
  readonly connected: boolean;
  /** Time of the thing's last presence event (connect or disconnect), ms since the epoch. */
  readonly at: number;
  /** Why it disconnected (IoT's `disconnectReason`), when it is disconnected and IoT said. */
  readonly reason?: string;
  /** Time of its newest stored reading, when it has one. */
  readonly lastReadingAt?: number;
}

const TELEMETRY_PARAMS = new Set(['from', 'to', 'sensor', 'metric', 'limit', 'nextToken']);
const PRESENCE_PARAMS = new Set(['limit', 'nextToken']);
const ROUTE = /^\/things\/([^/]+)\/(telemetry|latest)\/?$/;
const PRESENCE_ROUTE = /^\/presence\/?$/;

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' } as const;

export function jsonResponse(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): QueryApiResponse {
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) };
}

export function badRequest(issues: readonly Issue[]): QueryApiResponse {
  return jsonResponse(400, { message: 'invalid request', issues });
}

function getOnly(method: string): QueryApiResponse {
  return jsonResponse(405, { message: `${method} is not allowed here; use GET` }, { allow: 'GET' });
}

export async function handleQueryRequest(req: QueryApiRequest, deps: QueryApiDeps): Promise<QueryApiResponse> {
  if (PRESENCE_ROUTE.test(req.path)) {
    return req.method === 'GET' ? listPresence(req.query, deps) : getOnly(req.method);
  }
  const match = ROUTE.exec(req.path);
  if (match === null) return jsonResponse(404, { message: `no route for ${req.path}` });
  if (req.method !== 'GET') return getOnly(req.method);
  const rawThing = match[1] ?? '';
  const resource = match[2];
  let thingName: string;
  try {
    thingName = decodeURIComponent(rawThing);
  } catch {
    thingName = rawThing;
  }

  if (resource === 'latest') {
    const issues = [...thingIssues(thingName), ...unknownParams(req.query, new Set())];
    if (issues.length > 0) return badRequest(issues);
    const values = await deps.store.latest(thingName);
    return jsonResponse(200, { thingName, values });
  }

  const parsed = parseTelemetryQuery(thingName, req.query, deps.clock.now());
  if (!parsed.ok) return badRequest(parsed.issues);
  const q = parsed.value;
  try {
    const page = await deps.store.query(q);
    return jsonResponse(200, {
      thingName,
      from: q.from,
      to: q.to,
      ...(q.sensor === undefined ? {} : { sensor: q.sensor }),
      ...(q.metric === undefined ? {} : { metric: q.metric }),
      items: page.items.map(({ thingName: _thing, ...rest }) => rest),
      ...(page.nextToken === undefined ? {} : { nextToken: page.nextToken }),
    });
  } catch (err) {
    // The parser checks all of this first; a store that disagrees still answers 400, not 500.
    if (err instanceof InvalidPageTokenError) return badRequest([{ path: 'query.nextToken', message: err.message }]);
    if (err instanceof InvalidTelemetryQueryError) return badRequest([{ path: 'query', message: err.message }]);
    throw err;
  }
}

/** `GET /presence`: one page of connectivity records, each with the thing's newest reading time. */
async function listPresence(
  params: Readonly<Record<string, string | undefined>>,
  deps: QueryApiDeps,
): Promise<QueryApiResponse> {
  const issues = unknownParams(params, PRESENCE_PARAMS);
  const limit = parseLimit(params.limit, DEFAULT_QUERY_LIMIT, MAX_PRESENCE_LIMIT, issues);
  const nextToken = params.nextToken;
  if (nextToken !== undefined) {
    const decoded = decodeConnectivityPageToken(nextToken);
    if (!decoded.ok) issues.push({ path: 'query.nextToken', message: decoded.reason });
  }
  if (issues.length > 0) return badRequest(issues);
  let page: ConnectivityPage;
  try {
    page = await deps.store.listConnectivity(nextToken === undefined ? { limit } : { limit, nextToken });
  } catch (err) {
    // The token was checked above; a store that still refuses it answers 400, not 500.
    if (err instanceof InvalidPageTokenError) return badRequest([{ path: 'query.nextToken', message: err.message }]);
    throw err;
  }
  const items = await mapLimited(page.items, PRESENCE_CONCURRENCY, async (record) =>
    presenceItem(record, lastReadingTime(await deps.store.latest(record.thingName))),
  );
  return jsonResponse(200, { items, ...(page.nextToken === undefined ? {} : { nextToken: page.nextToken }) });
}

function presenceItem(record: ConnectivityRecord, lastReadingAt: number | undefined): PresenceItem {
  return {
    thingName: record.thingName,
    connected: record.connected,
    at: record.timestamp,
    ...(record.connected || record.disconnectReason === undefined ? {} : { reason: record.disconnectReason }),
    ...(lastReadingAt === undefined ? {} : { lastReadingAt }),
  };
}

/** Parses and checks the telemetry query parameters; reports every problem, each with its path. */
export function parseTelemetryQuery(
  thingName: string,
  params: Readonly<Record<string, string | undefined>>,
  now: number,
): Validation<TelemetryQuery> {
  const issues: Issue[] = [...thingIssues(thingName), ...unknownParams(params, TELEMETRY_PARAMS)];

  const to = parseTime(params.to, 'query.to', issues) ?? now;
  const from = parseTime(params.from, 'query.from', issues) ?? Math.max(0, to - DEFAULT_QUERY_WINDOW_MS);
  if (from > to && params.from !== undefined) issues.push({ path: 'query.from', message: 'must not be after to' });

  const limit = parseLimit(params.limit, DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT, issues);

  const sensor = params.sensor;
  if (sensor !== undefined && !SENSOR_ID_PATTERN.test(sensor)) {
    issues.push({ path: 'query.sensor', message: 'must be 1-64 characters of a-z A-Z 0-9 _ . : -' });
  }
  const metric = params.metric;
  if (metric !== undefined && !METRIC_NAME_PATTERN.test(metric)) {
    issues.push({ path: 'query.metric', message: 'must match [a-zA-Z][a-zA-Z0-9_]{0,63}' });
  }

  const nextToken = params.nextToken;
  if (nextToken !== undefined && issues.length === 0) {
    const decoded = decodePageToken(nextToken, { thingName, from, to });
    if (!decoded.ok)
      issues.push({ path: 'query.nextToken', message: `${decoded.reason}; repeat the from and to of the first page` });
  }

  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    value: {
      thingName,
      from,
      to,
      limit,
      ...(sensor === undefined ? {} : { sensor }),
      ...(metric === undefined ? {} : { metric }),
      ...(nextToken === undefined ? {} : { nextToken }),
    },
  };
}

/** A `limit` parameter: an integer from 1 to `max`; `fallback` when absent. */
function parseLimit(raw: string | undefined, fallback: number, max: number, issues: Issue[]): number {
  if (raw === undefined) return fallback;
  const n = /^\d{1,7}$/.test(raw) ? Number(raw) : Number.NaN;
  if (Number.isInteger(n) && n >= 1 && n <= max) return n;
  issues.push({ path: 'query.limit', message: `must be an integer from 1 to ${max}` });
  return fallback;
}

function thingIssues(thingName: string): Issue[] {
  return isValidThingName(thingName)
    ? []
    : [{ path: 'path.thing', message: 'must be 1-128 characters of a-z A-Z 0-9 : _ -' }];
}

function unknownParams(params: Readonly<Record<string, string | undefined>>, allowed: ReadonlySet<string>): Issue[] {
  return Object.keys(params)
    .filter((k) => !allowed.has(k))
    .sort()
    .map((k) => ({
      path: `query.${k}`,
      message: allowed.size > 0 ? `unknown parameter; expected one of ${[...allowed].join(', ')}` : 'unknown parameter',
    }));
}

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/** A time parameter: ms since the epoch, or an ISO-8601 date / date-time with a zone. */
function parseTime(raw: string | undefined, path: string, issues: Issue[]): number | undefined {
  if (raw === undefined) return undefined;
  if (/^\d{1,16}$/.test(raw)) {
    const n = Number(raw);
    if (Number.isSafeInteger(n)) return n;
  } else if (ISO_DATE_TIME.test(raw)) {
    const n = Date.parse(raw);
    if (Number.isFinite(n) && n >= 0) return n;
  }
  issues.push({
    path,
    message: 'must be milliseconds since the epoch or an ISO-8601 date-time with a zone (2024-05-01T12:00:00Z)',
  });
  return undefined;
}
