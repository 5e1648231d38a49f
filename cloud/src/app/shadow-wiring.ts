import { parseShadowTopic, shadowTopicFilters } from '@pifleet/protocol';
import type { Broker, BusMessage } from '../broker/index.js';
import { CloudError } from '../errors.js';
import type { ApiResponse, RouteGroup, UnmatchedRequest } from '../http/server.js';
import { type Limits, limitOf, type QuotaName, type ThrottleCounters } from '../limits/index.js';
import { type Logger, silentLogger } from '../logger.js';
import { createShadowHttpRoutes, type ShadowHttpRoutes } from '../shadow/http-routes.js';
import { createShadowService, type ShadowQuotas, type ShadowService } from '../shadow/service.js';
import { openSqliteShadowStore } from '../shadow/sqlite-store.js';
import type { ShadowStore } from '../shadow/store.js';

/**
 * The Device Shadow service inside the local IoT Core: a SQLite store in the data directory, an
 * in-process broker subscription that feeds shadow request topics to the service (responses go
 * back through the broker, so every delivery is still checked against the receiver's iot:Receive),
 * and the IoT data-plane route group (SigV4 service `iotdata`): shadows and Publish.
 */

/** Every shadow topic, classic and named; response topics are filtered out before the service. */
export const SHADOW_REQUEST_FILTER = shadowTopicFilters.all;

/** The SigV4 signing name of the IoT data plane (`@aws-sdk/client-iot-data-plane`). */
export const DATA_PLANE_SIGNING_NAME = 'iotdata';

export interface LocalShadowDeps {
  readonly broker: Broker;
  /** SQLite file of the shadow store (opened by start()); ignored when `store` is given. */
  readonly file: string;
  /** A store to use instead of the SQLite file (tests inject slow or failing stores). Closed by stop(). */
  readonly store?: ShadowStore;
  /**
   * SQLite `synchronous` of the store (WAL mode). NORMAL (default here): an accepted update
   * survives a crash or `kill -9` of the process, not a power loss; FULL also survives power loss
   * but fsyncs every update on the event loop, which caps the whole core (broker included) near
   * 200 updates/s on a CI-class disk (bench/shadow.bench.ts).
   */
  readonly synchronous?: 'FULL' | 'NORMAL';
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  readonly logger?: Logger;
  /** The core's quotas: the Device Shadow ones are enforced (absent: the service's defaults). */
  readonly limits?: Limits;
  /** Where each shadow quota breach is counted. */
  readonly throttles?: ThrottleCounters;
}

/** The Device Shadow quotas of the core's limits (null where the limits do not enforce one). */
export function shadowQuotasOf(limits: Limits): ShadowQuotas {
  const value = (name: QuotaName) => limitOf(limits, name) ?? null;
  return {
    requestsPerSecondPerThing: value('shadowRequestsPerSecondPerThing'),
    inFlightPerThing: value('shadowInFlightPerThing'),
    documentBytes: value('shadowDocumentBytes'),
    depth: value('shadowDepth'),
  };
}

export interface LocalShadow {
  start(): Promise<void>;
  /** Unsubscribes, waits for requests in flight, closes the store. */
  stop(): Promise<void>;
  /** The running service (for the command API and tests); throws before start(). */
  readonly service: ShadowService;
  /** The IoT data-plane route group; answers 503 until started. */
  readonly routes: RouteGroup;
}

export function createLocalShadow(deps: LocalShadowDeps): LocalShadow {
  const log = (deps.logger ?? silentLogger()).child({ component: 'shadow-wiring' });
  let service: ShadowService | undefined;
  let httpRoutes: ShadowHttpRoutes | undefined;
  let store: ShadowStore | undefined;
  let unsubscribe: (() => Promise<void>) | undefined;
  /** Requests handed to the service and not yet answered (waited for on stop). */
  const pending = new Set<Promise<void>>();

  function onMessage(message: BusMessage): void {
    const parsed = parseShadowTopic(message.topic);
    if (parsed === undefined || parsed.response !== undefined) return;
    // IoT Core's shadow service ignores LWT messages.
    if (message.lastWill) {
      log.debug({ topic: message.topic }, 'last-will message on a shadow topic ignored');
      return;
    }
    const running = service;
    if (running === undefined) return;
    // Not awaited: the bus would otherwise serialize every thing's requests behind each other.
    // The service queues per thing and answers 429 past its in-flight limit.
    const task = running
      .handleMqtt(message.topic, message.payload, { clientId: message.clientId ?? '' })
      .catch((err: unknown) => log.error({ err, topic: message.topic }, 'shadow request not answered'))
      .finally(() => pending.delete(task));
    pending.add(task);
  }

  async function fallback(request: UnmatchedRequest): Promise<ApiResponse | undefined> {
    const routes = httpRoutes;
    if (routes === undefined) {
      return {
        status: 503,
        headers: { 'x-amzn-ErrorType': 'ServiceUnavailableException' },
        json: { message: 'The shadow service is not running.' },
      };
    }
    const answer = await routes.handle({
      method: request.method,
      path: request.rawPath,
      query: request.query,
      headers: request.headers,
      body: request.body,
    });
    if (answer === undefined) return undefined;
    return { status: answer.status, headers: answer.headers, body: answer.body };
  }

  return {
    get service(): ShadowService {
      if (service === undefined) throw new CloudError('SHADOW_NOT_RUNNING', 'the shadow service is not running');
      return service;
    },

    routes: { name: 'iot-data-plane', signingNames: [DATA_PLANE_SIGNING_NAME], routes: [], fallback },

    async start() {
      if (service !== undefined) {
        throw new CloudError('SHADOW_ALREADY_STARTED', 'the shadow service is already started');
      }
      const { broker } = deps;
      const opened =
        deps.store ?? openSqliteShadowStore({ path: deps.file, synchronous: deps.synchronous ?? 'NORMAL' });
      store = opened;
      const created = createShadowService({
        store: opened,
        clock: { now: deps.now },
        publish: (topic, payload) => broker.bus.publish(topic, payload),
        logger: deps.logger ?? silentLogger(),
        ...(deps.limits ? { quotas: shadowQuotasOf(deps.limits) } : {}),
        ...(deps.throttles ? { throttles: deps.throttles } : {}),
      });
      await created.start();
      service = created;
      try {
        unsubscribe = await broker.bus.subscribe(SHADOW_REQUEST_FILTER, onMessage);
      } catch (err) {
        service = undefined;
        await opened.close();
        throw err;
      }
      httpRoutes = createShadowHttpRoutes({
        shadows: created,
        publish: (m) =>
          broker.bus.publish(m.topic, m.payload, { qos: m.qos, retain: m.retain, properties: m.properties }),
      });
      log.info({ file: deps.store ? undefined : deps.file }, 'shadow service started');
    },

    async stop() {
      httpRoutes = undefined;
      const running = service;
      const stopUnsubscribe = unsubscribe;
      unsubscribe = undefined;
      try {
        await stopUnsubscribe?.();
      } catch (err) {
        log.warn({ err }, 'shadow subscription not removed');
      }
      await running?.stop();
      await Promise.all([...pending]);
      service = undefined;
      const opened = store;
      store = undefined;
      await opened?.close();
    },
  };
}
