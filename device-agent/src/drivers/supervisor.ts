import { exponentialBackoff } from '@pifleet/protocol';
import { SensorError } from '../hardware/errors.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../ports/clock.js';
import type { Metrics, Sensor, SensorHealth } from './types.js';

export interface BackoffOptions {
  /** Delay after the first failure, ms (default 1,000). */
  readonly initialMs?: number | undefined;
  /** Cap, ms (default 60,000). */
  readonly maxMs?: number | undefined;
  /** Growth per consecutive failure (default 2). */
  readonly factor?: number | undefined;
}

export interface SuperviseOptions {
  readonly clock: Clock;
  readonly backoff?: BackoffOptions;
  /**
   * Report SENSOR_STUCK after this many consecutive identical readings (off by default; the
   * hardware factory sets 20 for the BME280, whose 20-bit outputs always move a little).
   */
  readonly stuckAfter?: number;
  readonly logger?: Logger;
}

/** A sensor wrapped with health tracking. It is itself a {@link Sensor}. */
export interface SupervisedSensor extends Sensor {
  readonly inner: Sensor;
  health(): SensorHealth;
  /** The error behind the last failure (undefined once healthy). */
  lastError(): unknown;
  /** Called on every status change (init → ok, ok → unhealthy, unhealthy → ok). */
  onHealthChange(listener: (health: SensorHealth) => void): () => void;
}

const describeError = (err: unknown) => ({
  code: typeof (err as { code?: unknown })?.code === 'string' ? ((err as { code: string }).code as string) : 'ERROR',
  message: err instanceof Error ? err.message : String(err),
});

/**
 * Wraps a sensor so that a failure marks it unhealthy and further reads are refused with
 * SENSOR_BACKOFF (without touching the bus) until the backoff delay has passed; the next read
 * after that re-initialises the sensor (it may have been power-cycled) and reads again.
 * `init()` never throws: a sensor absent at boot simply starts unhealthy.
 */
export function superviseSensor(sensor: Sensor, options: SuperviseOptions): SupervisedSensor {
  const { clock } = options;
  const log = options.logger?.child({ component: 'sensor', sensor: sensor.id, driver: sensor.driver });
  const listeners = new Set<(h: SensorHealth) => void>();
  // Retry number `failures` (1-based) waits initial · factor^(failures−1), capped. No jitter: the
  // retries go to the device's own bus, not to a server that a fleet shares.
  const schedule = {
    baseMs: options.backoff?.initialMs ?? 1000,
    capMs: options.backoff?.maxMs ?? 60_000,
    factor: options.backoff?.factor ?? 2,
  };
  let health: SensorHealth = { sensor: sensor.id, status: 'init', failures: 0 };
  let lastErr: unknown;
  let initialised = false;
  let closed = false;
  let lastSignature: string | undefined;
  let repeats = 0;

  const setHealth = (next: SensorHealth) => {
    const changed = next.status !== health.status;
    health = next;
    if (changed) for (const l of [...listeners]) l(health);
  };

  const succeed = () => {
    if (health.status === 'unhealthy') log?.info({ failures: health.failures }, 'sensor recovered');
    lastErr = undefined;
    setHealth({ sensor: sensor.id, status: 'ok', failures: 0 });
  };

  const failWith = (err: unknown) => {
    initialised = false;
    lastErr = err;
    const failures = health.failures + 1;
    const delay = exponentialBackoff(failures - 1, schedule);
    const lastError = describeError(err);
    if (health.status !== 'unhealthy') {
      log?.warn({ err, code: lastError.code, retryInMs: delay }, 'sensor unhealthy');
    } else {
      log?.debug({ code: lastError.code, failures, retryInMs: delay }, 'sensor still failing');
    }
    setHealth({ sensor: sensor.id, status: 'unhealthy', failures, lastError, retryAt: clock.now() + delay });
  };

  const attemptInit = async () => {
    if (health.status === 'unhealthy') await sensor.close().catch(() => undefined);
    await sensor.init();
    initialised = true;
  };

  return {
    id: sensor.id,
    driver: sensor.driver,
    inner: sensor,
    health: () => health,
    lastError: () => lastErr,
    onHealthChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    async init() {
      closed = false;
      try {
        await attemptInit();
        succeed();
      } catch (err) {
        failWith(err);
      }
    },
    async read(): Promise<Metrics> {
      const data = { sensor: sensor.id, driver: sensor.driver };
      if (closed) throw new SensorError('SENSOR_CLOSED', `sensor ${sensor.id} is closed`, data);
      if (health.status === 'unhealthy' && health.retryAt !== undefined && clock.now() < health.retryAt) {
        throw new SensorError(
          'SENSOR_BACKOFF',
          `sensor ${sensor.id} is unhealthy (${health.lastError?.code ?? 'ERROR'}); next retry in ${health.retryAt - clock.now()} ms`,
          { ...data, retryAt: health.retryAt, lastCode: health.lastError?.code },
        );
      }
      try {
        if (!initialised) await attemptInit();
        const metrics = await sensor.read();
        if (options.stuckAfter !== undefined) {
          const signature = JSON.stringify(metrics);
          repeats = signature === lastSignature ? repeats + 1 : 1;
          lastSignature = signature;
          if (repeats >= options.stuckAfter) {
            throw new SensorError('SENSOR_STUCK', `sensor ${sensor.id} returned the same reading ${repeats} times`, {
              ...data,
              repeats,
            });
          }
        }
        succeed();
        return metrics;
      } catch (err) {
        failWith(err);
        throw err;
      }
    },
    async close() {
      closed = true;
      initialised = false;
      await sensor.close();
    },
  };
}
