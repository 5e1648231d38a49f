// Hardware layer (issue 5): ports, errors, drivers, adapters (native modules load lazily), factory, test kit.
export * from './adapters/aws-iot-sdk.js';
export * from './adapters/i2c-bus.js';
export * from './adapters/onoff.js';
export * from './adapters/sysfs-gpio.js';
export * from './adapters/transport-kit.js';
export * from './app/agent.js';
export * from './app/publisher.js';
export * from './app/transport.js';
export * from './config/index.js';
export {
  Backoff,
  type BackoffOptions as JitterBackoffOptions,
  backoffDelay as jitteredBackoffDelay,
} from './core/backoff.js';
export * from './core/batcher.js';
export * from './core/rate-limiter.js';
export * from './core/reconciler.js';
export * from './core/reported.js';
export * from './drivers/ads1115.js';
export * from './drivers/bh1750.js';
export * from './drivers/bme280.js';
export * from './drivers/bme280-compensation.js';
export * from './drivers/digital.js';
export * from './drivers/supervisor.js';
export * from './drivers/types.js';
export * from './errors.js';
export * from './hardware/errors.js';
export * from './hardware/i2c-errors.js';
export * from './hardware/open.js';
export * from './hardware/spec.js';
export * from './logger.js';
export * from './outbox/outbox.js';
export * from './ports/clock.js';
export * from './ports/gpio.js';
export * from './ports/i2c.js';
export * from './ports/transport.js';
export * from './process-exit.js';
export * from './shadow/iot-shadow-v2.js';
export * from './shadow/port.js';
export * from './systemd/index.js';
export * from './testing/gpio-behaviour.js';
export * from './testing/i2c-behaviour.js';
export * from './testing/outbox-behaviour.js';
export * from './testing/virtual-clock.js';
