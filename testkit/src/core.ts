import { type InProcessCore, startInProcessCore } from '@pifleet/cloud';
import { appTopicFilters, UntilTimeoutError, until } from '@pifleet/protocol';
import { TelemetryLog } from './telemetry-log.js';

/**
 * The composed local IoT Core in-process (ephemeral ports unless given, a data dir of the test's),
 * the real `@aws-sdk/client-iot` and `@aws-sdk/client-iot-data-plane` clients of cloud's testing
 * entry, and every telemetry batch observed on the broker's bus.
 */
export interface RunningCore extends InProcessCore {
  readonly telemetry: TelemetryLog;
}

export interface StartCoreOptions {
  /** Ports to listen on (absent: ephemeral), e.g. a restarted core on the ports its devices know. */
  readonly mqttPort?: number;
  readonly httpPort?: number;
  /** The log to add telemetry to (one log can outlive a core restarted on the same data dir). */
  readonly telemetry?: TelemetryLog;
}

export async function startCore(dataDir: string, options: StartCoreOptions = {}): Promise<RunningCore> {
  const run = await startInProcessCore(dataDir, {
    ...(options.mqttPort !== undefined ? { mqttPort: options.mqttPort } : {}),
    ...(options.httpPort !== undefined ? { httpPort: options.httpPort } : {}),
    maxAttempts: 2,
  });
  const telemetry = options.telemetry ?? new TelemetryLog();
  const unsubscribe = await run.core.services.broker.bus.subscribe(appTopicFilters.telemetry, (m) => {
    telemetry.add(m.payload);
  });
  return {
    ...run,
    telemetry,
    async stop() {
      await unsubscribe().catch(() => undefined);
      await run.stop();
    },
  };
}

/** The ports a running core listens on, to start it again where its devices look for it. */
export function portsOf(core: Pick<InProcessCore, 'info'>): { mqttPort: number; httpPort: number } {
  return { mqttPort: core.info.mqtt.port, httpPort: Number(new URL(core.info.http).port) };
}

/** Readings the rules engine's ingest handler stored for a thing (SQLite, deduplicated by bootId and seq). */
export function storedReadings(core: Pick<InProcessCore, 'core'>, thingName: string): Promise<number> {
  return core.core.services.telemetry.countReadings(thingName);
}

/** Polls the telemetry store until it holds `n` readings of a thing (bounded). */
export async function waitForStored(
  core: Pick<InProcessCore, 'core'>,
  thingName: string,
  n: number,
  ms = 10_000,
): Promise<number> {
  let count = 0;
  try {
    await until(
      async () => {
        count = await storedReadings(core, thingName);
        return count >= n;
      },
      { within: ms, step: 50, what: `${n} stored readings of ${thingName}` },
    );
  } catch (err) {
    if (!(err instanceof UntilTimeoutError)) throw err;
    throw new Error(`store holds ${count} of ${n} readings of ${thingName} after ${ms} ms`, { cause: err });
  }
  return count;
}
