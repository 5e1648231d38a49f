import { SILENT_AFTER_MINUTES, silentAfterMs } from '@pifleet/protocol';
import { createEmfMetrics, withMetrics } from '../adapters/emf-metrics.js';
import { mapLimited } from '../core/map-limited.js';
import {
  lastReadingTime,
  type SilenceReason,
  type SilenceVerdict,
  silenceFromConnectivity,
  silenceFromTelemetry,
} from '../core/telemetry/silence.js';
import { CloudError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { CloudMetrics } from '../ports/metrics.js';
import type { ConnectivityRecord, TelemetryStore } from '../ports/telemetry-store.js';
import { type Env, HandlerConfigError, lambdaLogger, lazyHandler, telemetryStoreFromEnv } from './aws-env.js';

/**
 * Silent-devices check, run on a schedule (EventBridge, every 5 minutes in the CDK stack): pages
 * through every thing's connectivity record, asks the store for the newest reading of the things
 * connected for longer than the threshold, and counts the silent ones (`core/telemetry/silence.ts`
 * decides). It publishes the count as `SilentDevices` and logs the first
 * {@link LOGGED_SILENT_THINGS} silent things at warn. A store failure throws: the run publishes
 * nothing, so the alarm on a missing `SilentDevices` notices a check that keeps failing.
 */
export interface SilentDevicesHandlerDeps {
  readonly store: Pick<TelemetryStore, 'listConnectivity' | 'latest'>;
  /** Milliseconds since the epoch; read once per run, so every thing is judged at the same instant. */
  readonly now: () => number;
  /** A thing quiet for longer than this is silent. */
  readonly thresholdMs: number;
  readonly metrics: CloudMetrics;
  readonly logger: Logger;
  /** `latest` calls in flight at once (default {@link DEFAULT_CONCURRENCY}). */
  readonly concurrency?: number;
  /** Records per listing page (default 1000, the store's largest). */
  readonly pageSize?: number;
}

export interface SilentThing {
  readonly thingName: string;
  readonly reason: SilenceReason;
  readonly silentForMs: number;
}

export interface SilentDevicesOutcome {
  /** Things with a connectivity record. */
  readonly checked: number;
  readonly silent: number;
  readonly byReason: Readonly<Record<SilenceReason, number>>;
  /** The first {@link LOGGED_SILENT_THINGS} silent things in thing-name order. */
  readonly first: readonly SilentThing[];
}

export type SilentDevicesHandler = (event: unknown) => Promise<SilentDevicesOutcome>;

/** Silent things named in the warning; past this, only the count (a log line stays readable and small). */
export const LOGGED_SILENT_THINGS = 100;

/**
 * 16 newest-reading queries at once: each is one small DynamoDB Query (~10 ms from Lambda), so
 * 10,000 connected things take ~6 s, well inside the function's timeout, without a burst that
 * would compete with ingest for the table's throughput.
 */
export const DEFAULT_CONCURRENCY = 16;

export function createSilentDevicesHandler(deps: SilentDevicesHandlerDeps): SilentDevicesHandler {
  const concurrency = deps.concurrency ?? DEFAULT_CONCURRENCY;
  const pageSize = deps.pageSize ?? 1000;
  if (!(Number.isFinite(deps.thresholdMs) && deps.thresholdMs > 0)) {
    throw new CloudError('SILENT_DEVICES_CONFIG', 'thresholdMs must be a positive number of milliseconds', {
      data: { thresholdMs: deps.thresholdMs },
    });
  }
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) {
    throw new CloudError('SILENT_DEVICES_CONFIG', 'concurrency must be a positive integer', { data: { concurrency } });
  }
  const log = deps.logger.child({ component: 'silent-devices' });

  const judge = async (record: ConnectivityRecord, now: number): Promise<SilenceVerdict> => {
    const verdict = silenceFromConnectivity(record, now, deps.thresholdMs);
    if (verdict !== 'needs-telemetry') return verdict;
    const latest = await deps.store.latest(record.thingName);
    return silenceFromTelemetry(record, lastReadingTime(latest), now, deps.thresholdMs);
  };

  return async () => {
    const now = deps.now();
    let checked = 0;
    const byReason: Record<SilenceReason, number> = { disconnected: 0, 'no-telemetry': 0 };
    const first: SilentThing[] = [];
    let token: string | undefined;
    do {
      const page = await deps.store.listConnectivity(
        token === undefined ? { limit: pageSize } : { limit: pageSize, nextToken: token },
      );
      // A store that hands back the token it was given would loop for ever.
      if (page.nextToken !== undefined && page.nextToken === token) {
        throw new CloudError('LISTING_STUCK', 'the connectivity listing returned the token it was given', {
          data: { checked },
        });
      }
      token = page.nextToken;
      const verdicts = await mapLimited(page.items, concurrency, (record) => judge(record, now));
      for (const [i, verdict] of verdicts.entries()) {
        checked++;
        if (!verdict.silent) continue;
        byReason[verdict.reason]++;
        const record = page.items[i] as ConnectivityRecord;
        if (first.length < LOGGED_SILENT_THINGS) {
          first.push({ thingName: record.thingName, reason: verdict.reason, silentForMs: verdict.silentForMs });
        }
      }
    } while (token !== undefined);

    const silent = byReason.disconnected + byReason['no-telemetry'];
    deps.metrics.add('SilentDevices', silent);
    if (silent > 0) {
      log.warn(
        { checked, silent, byReason, thresholdMs: deps.thresholdMs, things: first, more: silent - first.length },
        'silent devices',
      );
    } else {
      log.info({ checked, thresholdMs: deps.thresholdMs }, 'no silent devices');
    }
    return { checked, silent, byReason, first };
  };
}

/** `SILENT_AFTER_MINUTES` (default `SILENT_AFTER_MINUTES.default` of the protocol) as milliseconds. */
export function silenceThresholdFromEnv(env: Env): number {
  const raw = env.SILENT_AFTER_MINUTES;
  const ms = silentAfterMs(raw === undefined || raw.trim() === '' ? SILENT_AFTER_MINUTES.default : Number(raw));
  if (ms === undefined) {
    throw new HandlerConfigError(
      'SILENT_AFTER_MINUTES',
      `must be a positive number of minutes, at most ${SILENT_AFTER_MINUTES.max}`,
    );
  }
  return ms;
}

/**
 * AWS Lambda entry point, invoked by the EventBridge schedule: DynamoDB store from `TABLE_NAME`,
 * threshold from `SILENT_AFTER_MINUTES`, `SilentDevices` as EMF (service `silent-devices`) flushed
 * after every run. Built on the first invocation.
 */
export const handler: SilentDevicesHandler = lazyHandler(() => {
  const metrics = createEmfMetrics({ serviceName: 'silent-devices' });
  return withMetrics(
    metrics,
    createSilentDevicesHandler({
      store: telemetryStoreFromEnv(process.env),
      now: Date.now,
      thresholdMs: silenceThresholdFromEnv(process.env),
      metrics,
      logger: lambdaLogger('silent-devices', process.env),
    }),
  );
});
