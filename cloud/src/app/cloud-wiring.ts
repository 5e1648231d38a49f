import { IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { DEFAULT_SILENT_AFTER_MS } from '@pifleet/protocol';
import { createSqliteTelemetryStore } from '../adapters/sqlite-telemetry-store.js';
import type { BrokerBus } from '../broker/broker.js';
import { type CommandHandler, createCommandHandler } from '../handlers/command.js';
import { createIngestHandler } from '../handlers/ingest.js';
import { createPresenceHandler } from '../handlers/presence.js';
import { createQueryHandler } from '../handlers/query.js';
import { createSilentDevicesHandler } from '../handlers/silent-devices.js';
import type { LocalCredentials } from '../http/credentials.js';
import type { RouteGroup } from '../http/server.js';
import type { Logger } from '../logger.js';
import type { AccountContext } from '../ports/identity.js';
import { type CloudMetrics, noMetrics } from '../ports/metrics.js';
import type { ManagedTelemetryStore, TelemetryStore } from '../ports/telemetry-store.js';
import type { ArchiveBuffering } from '../rules/actions/archive.js';
import { RULES, type RuleDefinition } from '../rules/definitions.js';
import { createRulesEngine, type RulesEngine } from '../rules/engine.js';
import { commandQueryApiRoutes } from './api-routes.js';

/**
 * The cloud half inside the local IoT Core: the SQLite telemetry store, the ingest/presence/
 * query/command handlers (the Lambda code, in process), the rules engine on the broker bus with
 * the shipped rule definitions, and the command/query API route group.
 *
 * The command handler talks to the shadow service and the registry the way it does in AWS:
 * through `@aws-sdk/client-iot-data-plane` and `@aws-sdk/client-iot` against the core's own
 * HTTP endpoint, with the generated local credentials. That endpoint is known only once the HTTP
 * server listens, so call {@link LocalCloud.bindEndpoint} then; requests before it answer 503.
 */
export interface LocalCloudDeps {
  readonly bus: BrokerBus;
  readonly account: AccountContext;
  readonly credentials: LocalCredentials;
  readonly telemetryFile: string;
  readonly archiveDir: string;
  /** How the archive stream buffers before it writes an object (default: the engine's, 60 s / 64 MiB). */
  readonly archiveBuffering?: ArchiveBuffering;
  readonly ruleLogDir: string;
  readonly now: () => number;
  readonly logger: Logger;
  /** Default: the shipped rules. */
  readonly rules?: readonly RuleDefinition[];
  /** Default: SQLite at `telemetryFile`. */
  readonly store?: ManagedTelemetryStore;
  /** Where the ingest and command handlers count (the core's Prometheus registry); default none. */
  readonly metrics?: CloudMetrics;
  /**
   * The silent-devices check, run as the stack's EventBridge schedule runs its Lambda: every
   * `everyMs` (default 5 minutes), things quiet for longer than `thresholdMs` (default 15 minutes)
   * counted into `SilentDevices`.
   */
  readonly silentCheck?: { readonly everyMs?: number; readonly thresholdMs?: number };
}

/** How often the local core runs the silent-devices check: the stack's schedule. */
export const SILENT_CHECK_EVERY_MS = 5 * 60_000;

export interface LocalCloud {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Points the command handler's SDK clients at the core's HTTP endpoint. */
  bindEndpoint(url: string): void;
  readonly store: TelemetryStore;
  readonly rules: RulesEngine;
  readonly routes: RouteGroup;
}

export function createLocalCloud(deps: LocalCloudDeps): LocalCloud {
  const logger = deps.logger;
  const clock = { now: deps.now };
  const store = deps.store ?? createSqliteTelemetryStore({ file: deps.telemetryFile, clock });
  const metrics = deps.metrics === undefined ? {} : { metrics: deps.metrics };
  const ingest = createIngestHandler({ store, logger, ...metrics });
  const presence = createPresenceHandler({ store, logger });
  const query = createQueryHandler({ store, logger, clock });
  const checkSilent = createSilentDevicesHandler({
    store,
    now: deps.now,
    thresholdMs: deps.silentCheck?.thresholdMs ?? DEFAULT_SILENT_AFTER_MS,
    metrics: deps.metrics ?? noMetrics,
    logger,
  });
  let silentTimer: NodeJS.Timeout | undefined;
  let silentRun: Promise<unknown> | undefined;
  const rules = createRulesEngine({
    rules: deps.rules ?? RULES,
    bus: deps.bus,
    handlers: { ingest, presence },
    archiveDir: deps.archiveDir,
    ...(deps.archiveBuffering === undefined ? {} : { archiveBuffering: deps.archiveBuffering }),
    logDir: deps.ruleLogDir,
    clock,
    logger,
    accountId: deps.account.accountId,
  });

  let command: CommandHandler | undefined;
  let clients: { destroy(): void }[] = [];
  let storeStarted = false;

  const routes = commandQueryApiRoutes({
    account: deps.account,
    now: deps.now,
    query,
    command: async (event) => {
      if (command === undefined) {
        return { statusCode: 503, headers: { 'content-type': 'application/json' }, body: '{"message":"starting"}' };
      }
      return command(event);
    },
  });

  return {
    store,
    rules,
    routes,

    async start() {
      await store.start();
      storeStarted = true;
      await rules.start();
      silentTimer = setInterval(() => {
        // One run at a time: a slow store skips a beat instead of piling runs up.
        silentRun ??= checkSilent({})
          .catch((err: unknown) => logger.warn({ err }, 'silent-devices check failed'))
          .finally(() => {
            silentRun = undefined;
          });
      }, deps.silentCheck?.everyMs ?? SILENT_CHECK_EVERY_MS);
      silentTimer.unref();
    },

    bindEndpoint(url) {
      const config = {
        endpoint: url,
        region: deps.account.region,
        credentials: { ...deps.credentials },
        maxAttempts: 2,
      };
      const dataPlane = new IoTDataPlaneClient(config);
      const controlPlane = new IoTClient(config);
      for (const c of clients) c.destroy();
      clients = [dataPlane, controlPlane];
      command = createCommandHandler({ dataPlane, controlPlane, store, logger, ...metrics });
    },

    async stop() {
      command = undefined;
      clearInterval(silentTimer);
      silentTimer = undefined;
      await silentRun;
      await rules.stop();
      for (const c of clients) c.destroy();
      clients = [];
      if (storeStarted) {
        storeStarted = false;
        await store.stop();
      }
    },
  };
}
