import { DescribeThingCommand, type IoTClient, ListThingsCommand } from '@aws-sdk/client-iot';
import { GetThingShadowCommand, type IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { isJsonObject, type JsonObject, type MetricValue, parseJson, type Reading, setOwn } from '@pifleet/protocol';
import type { CommandApiClient } from '../adapters/command-api-client.js';
import type { IotWebSocketConnection } from '../adapters/iot-websocket.js';
import { mapLimited } from '../core/map-limited.js';
import { CloudError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ConsoleBackend, ThingPresence } from './backend.js';

/**
 * The console's backend for a deployed stack in an AWS account (or the local IoT Core standing in
 * for one): things from the IoT control plane (ListThings, DescribeThing), shadows from the data
 * plane (GetThingShadow), desired-state writes, presence and stored readings through the stack's
 * command/query API (SigV4 `execute-api`), and the live feed over MQTT over WebSocket (SigV4), with
 * the caller's credentials. The browser sees none of them: they stay in this process.
 */

export interface AwsConsoleBackendDeps {
  readonly controlPlane: IoTClient;
  readonly dataPlane: IoTDataPlaneClient;
  readonly api: CommandApiClient;
  readonly live: IotWebSocketConnection;
  readonly log: Logger;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  /** How long a listing of the registry is reused (default 30 s: ListThings is rate-limited to 10 per second). */
  readonly listTtlMs?: number;
  /**
   * Requests in flight when reading every thing's presence one thing at a time (default 8): only
   * against a stack deployed before `GET /presence`.
   */
  readonly concurrency?: number;
}

/** Things per `GET /presence` page: the API's largest, so a 10,000-thing fleet is 40 calls. */
const PRESENCE_PAGE = 250;
/**
 * Presence pages read at most: 400 × 250 is 100,000 things, past the largest fleet IoT Core's
 * defaults serve a console; a listing longer than that (or one that never ends) stops here.
 */
const MAX_PRESENCE_PAGES = 400;

/** Pages of stored readings read for one thing view (1,000 readings each). */
const MAX_HISTORY_PAGES = 3;

function errorName(err: unknown): string {
  return typeof err === 'object' && err !== null && typeof (err as { name?: unknown }).name === 'string'
    ? (err as { name: string }).name
    : '';
}

/** An answer body of the API, checked like any outside JSON; undefined when it is not a JSON object. */
function answerObject(text: string): JsonObject | undefined {
  const parsed = parseJson(text);
  return parsed.ok && isJsonObject(parsed.value) ? parsed.value : undefined;
}

const utf8 = new TextDecoder();

function isMetricValue(v: unknown): v is MetricValue {
  return typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string';
}

/**
 * Presence items of a `GET /presence` page (outside input); malformed items are skipped, and so
 * are things not in `wanted` (the listing covers every thing with a presence record).
 */
export function presenceOfPage(page: JsonObject, wanted: ReadonlySet<string>): ThingPresence[] {
  const items = Array.isArray(page.items) ? page.items : [];
  const out: ThingPresence[] = [];
  for (const item of items) {
    if (!isJsonObject(item) || typeof item.thingName !== 'string' || typeof item.connected !== 'boolean') continue;
    if (!wanted.has(item.thingName)) continue;
    out.push({
      thingName: item.thingName,
      connected: item.connected,
      ...(typeof item.at === 'number' ? { at: item.at } : {}),
      ...(typeof item.reason === 'string' ? { reason: item.reason } : {}),
      ...(typeof item.lastReadingAt === 'number' ? { lastReadingAt: item.lastReadingAt } : {}),
    });
  }
  return out;
}

/** Readings of a query page (`items` of `GET /things/{thing}/telemetry`); malformed items are skipped. */
export function readingsOfPage(page: JsonObject): Reading[] {
  const items = Array.isArray(page.items) ? page.items : [];
  const out: Reading[] = [];
  for (const item of items) {
    if (!isJsonObject(item) || typeof item.sensor !== 'string' || typeof item.ts !== 'number') continue;
    if (!isJsonObject(item.metrics)) continue;
    const metrics: Record<string, MetricValue> = {};
    for (const [k, v] of Object.entries(item.metrics)) if (isMetricValue(v)) setOwn(metrics, k, v);
    out.push({ sensor: item.sensor, ts: item.ts, metrics });
  }
  return out;
}

export function createAwsConsoleBackend(deps: AwsConsoleBackendDeps): ConsoleBackend {
  const { controlPlane, dataPlane, api, live, log, now } = deps;
  const listTtlMs = deps.listTtlMs ?? 30_000;
  let listed: { at: number; names: string[] } | undefined;
  let listing: Promise<string[]> | undefined;
  let saidNoListing = false;

  async function listAll(): Promise<string[]> {
    const names: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await controlPlane.send(new ListThingsCommand({ maxResults: 250, nextToken }));
      for (const t of page.things ?? []) if (t.thingName !== undefined) names.push(t.thingName);
      nextToken = page.nextToken;
    } while (nextToken !== undefined && nextToken !== '');
    return names;
  }

  /**
   * Every listed thing's presence from `GET /presence`, kept for the things in `wanted`, into
   * `found`. Answers `unavailable` when the first page is refused with 404 (a stack deployed
   * before the route: API Gateway's own "Not Found") or 403 (an operator policy from before it);
   * any other failure throws, with what the pages before it gave already in `found`.
   */
  async function listPresence(
    wanted: ReadonlySet<string>,
    found: ThingPresence[],
  ): Promise<'listed' | { unavailable: number }> {
    let nextToken: string | undefined;
    for (let page = 0; page < MAX_PRESENCE_PAGES; page++) {
      const query: Record<string, string> = { limit: String(PRESENCE_PAGE) };
      if (nextToken !== undefined) query.nextToken = nextToken;
      const answer = await api.request('GET', '/presence', { query });
      if (page === 0 && (answer.status === 404 || answer.status === 403)) return { unavailable: answer.status };
      const doc = answer.status === 200 ? answerObject(answer.text) : undefined;
      if (doc === undefined) {
        throw new CloudError('PRESENCE_LISTING_FAILED', `the query API answered ${answer.status} to GET /presence`, {
          data: { status: answer.status, page },
        });
      }
      found.push(...presenceOfPage(doc, wanted));
      const next = typeof doc.nextToken === 'string' ? doc.nextToken : undefined;
      // An API that hands back the token it was given would loop until the page cap.
      if (next === undefined || next === nextToken) return 'listed';
      nextToken = next;
    }
    log.warn({ pages: MAX_PRESENCE_PAGES, found: found.length }, 'presence listing cut short');
    return 'listed';
  }

  async function presenceOf(thingName: string): Promise<ThingPresence | undefined> {
    const path = `/things/${encodeURIComponent(thingName)}`;
    const [conn, latest] = await Promise.all([
      api.request('GET', `${path}/connectivity`),
      api.request('GET', `${path}/latest`),
    ]);
    const record = conn.status === 200 ? answerObject(conn.text) : undefined;
    const event = record !== undefined && isJsonObject(record.lastEvent) ? record.lastEvent : undefined;
    const values = latest.status === 200 ? answerObject(latest.text)?.values : undefined;
    let lastReadingAt: number | undefined;
    for (const v of Array.isArray(values) ? values : []) {
      if (isJsonObject(v) && typeof v.ts === 'number') lastReadingAt = Math.max(lastReadingAt ?? 0, v.ts);
    }
    if (event === undefined && lastReadingAt === undefined) return undefined;
    return {
      thingName,
      connected: record?.connected === true,
      ...(event !== undefined && typeof event.timestamp === 'number' ? { at: event.timestamp } : {}),
      ...(event !== undefined && typeof event.disconnectReason === 'string' ? { reason: event.disconnectReason } : {}),
      ...(lastReadingAt === undefined ? {} : { lastReadingAt }),
    };
  }

  return {
    kind: 'aws',

    async listThings() {
      if (listed !== undefined && now() - listed.at < listTtlMs) return listed.names;
      listing ??= listAll()
        .then((names) => {
          listed = { at: now(), names };
          return names;
        })
        .finally(() => {
          listing = undefined;
        });
      return listing;
    },

    async hasThing(thingName) {
      try {
        await controlPlane.send(new DescribeThingCommand({ thingName }));
        return true;
      } catch (err) {
        if (errorName(err) === 'ResourceNotFoundException') return false;
        throw err;
      }
    },

    async readShadow(thingName) {
      try {
        const out = await dataPlane.send(new GetThingShadowCommand({ thingName }));
        const parsed = out.payload === undefined ? undefined : parseJson(utf8.decode(out.payload));
        return parsed?.ok && isJsonObject(parsed.value) ? parsed.value : null;
      } catch (err) {
        if (errorName(err) === 'ResourceNotFoundException') return null;
        throw err;
      }
    },

    async writeDesired(thingName, write) {
      const body = JSON.stringify({
        desired: write.desired,
        clientToken: write.clientToken,
        ...(write.version === undefined ? {} : { expectedVersion: write.version }),
      });
      const answer = await api.request('PUT', `/things/${encodeURIComponent(thingName)}/desired`, { body });
      const doc = answerObject(answer.text);
      if (answer.status === 200) {
        return { status: 200, version: typeof doc?.version === 'number' ? doc.version : undefined };
      }
      const message =
        typeof doc?.reason === 'string'
          ? doc.reason
          : typeof doc?.message === 'string'
            ? doc.message
            : `The command API answered ${answer.status}.`;
      return { status: answer.status, message };
    },

    async presence(things) {
      if (things.length === 0) return [];
      const listed: ThingPresence[] = [];
      try {
        const outcome = await listPresence(new Set(things), listed);
        if (outcome === 'listed') return listed;
        if (!saidNoListing) {
          saidNoListing = true;
          log.info(
            { status: outcome.unavailable, things: things.length },
            'stack or operator policy predates GET /presence: reading presence thing by thing',
          );
        }
      } catch (err) {
        // As a failed per-thing read leaves that thing out, a failed page leaves its things out.
        log.warn({ err, found: listed.length }, 'presence listing not read for the console');
        return listed;
      }
      const found = await mapLimited(things, deps.concurrency ?? 8, (name) =>
        presenceOf(name).catch((err: unknown) => {
          log.warn({ err, thingName: name }, 'presence not read for the console');
          return undefined;
        }),
      );
      return found.filter((p): p is ThingPresence => p !== undefined);
    },

    subscribe: (filter, handler) => live.subscribe(filter, handler),

    async history(thingName, from, to) {
      const readings: Reading[] = [];
      let nextToken: string | undefined;
      for (let page = 0; page < MAX_HISTORY_PAGES; page++) {
        const query: Record<string, string> = { from: String(from), to: String(to), limit: '1000' };
        if (nextToken !== undefined) query.nextToken = nextToken;
        const answer = await api.request('GET', `/things/${encodeURIComponent(thingName)}/telemetry`, { query });
        const doc = answer.status === 200 ? answerObject(answer.text) : undefined;
        if (doc === undefined) {
          log.warn({ thingName, status: answer.status }, 'stored readings not read for the console');
          break;
        }
        readings.push(...readingsOfPage(doc));
        nextToken = typeof doc.nextToken === 'string' ? doc.nextToken : undefined;
        if (nextToken === undefined) break;
      }
      return readings;
    },

    async close() {
      await live.close();
      controlPlane.destroy();
      dataPlane.destroy();
    },
  };
}
