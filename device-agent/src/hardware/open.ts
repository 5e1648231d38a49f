import { createAds1115 } from '../drivers/ads1115.js';
import { createBh1750 } from '../drivers/bh1750.js';
import { createBme280 } from '../drivers/bme280.js';
import { createDigitalInput, createDigitalOutput } from '../drivers/digital.js';
import { type SupervisedSensor, superviseSensor } from '../drivers/supervisor.js';
import type { DigitalInput, Output, Sensor } from '../drivers/types.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../ports/clock.js';
import type { Gpio } from '../ports/gpio.js';
import type { I2cBus } from '../ports/i2c.js';
import { HardwareError, HardwareUnavailableError } from './errors.js';
import { type HardwareSpec, type HardwareSpecInput, hardwareSpecSchema, type SensorSpec } from './spec.js';

/** Ports the caller already has (the simulator passes its GPIO chip and I2C buses). */
export interface HardwarePorts {
  readonly gpio?: Gpio;
  /** Returns the bus with that number (called once per bus in use). */
  readonly i2c?: (busNumber: number) => I2cBus | Promise<I2cBus>;
}

/** Seams of the real adapters (tests inject fake native modules; defaults import onoff/i2c-bus). */
export interface RealHardwareOptions {
  readonly loadOnoff?: () => Promise<unknown>;
  readonly loadI2cBus?: () => Promise<unknown>;
  readonly platform?: string;
  /** User named in permission fixes (default `pifleet`). */
  readonly user?: string;
}

export interface HardwareDeps {
  /** Parsed `hardware` config (or its input form, parsed here). */
  readonly spec: HardwareSpec | HardwareSpecInput;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Required for mode `simulated`; ignored otherwise. */
  readonly ports?: HardwarePorts;
  readonly real?: RealHardwareOptions;
}

export interface Hardware {
  /** Every configured sensor, supervised (see drivers/types.ts for the contract). */
  readonly sensors: readonly SupervisedSensor[];
  /** The digital inputs among them, unwrapped, for edge events. */
  readonly inputs: readonly DigitalInput[];
  readonly outputs: readonly Output[];
  /**
   * Opens the ports and initialises everything. Rejects only with a
   * {@link HardwareUnavailableError} (wrong machine, permission, I2C disabled, missing native
   * module), whose message names the fix and whose `exitCode` main should use. A sensor that
   * fails to initialise does not reject: it starts unhealthy and is retried with backoff.
   */
  start(): Promise<void>;
  /** Releases every line and closes every bus. */
  stop(): Promise<void>;
}

/**
 * Builds the hardware described by the config. No I/O until `start()`; the real adapters'
 * native modules are imported only in mode `real`, so a default (`none`) or simulated config
 * never loads onoff or i2c-bus.
 */
export function createHardware(deps: HardwareDeps): Hardware {
  const spec = hardwareSpecSchema.parse(deps.spec);
  const { clock } = deps;
  const log = deps.logger?.child({ component: 'hardware' });
  const buses = new Map<number, I2cBus>();
  let gpio: Gpio | undefined;
  let opened: Promise<void> | undefined;

  // Ports are resolved lazily through these proxies, so drivers can be built before start().
  const gpioProxy: Gpio = {
    input: (line, o) => requireGpio().input(line, o),
    output: (line, o) => requireGpio().output(line, o),
    close: async () => gpio?.close(),
  };
  const requireGpio = (): Gpio => {
    if (!gpio) throw new HardwareError('HW_NOT_STARTED', 'hardware not started');
    return gpio;
  };
  const busProxy = (n: number): I2cBus => {
    const get = () => {
      const b = buses.get(n);
      if (!b) throw new HardwareError('HW_NOT_STARTED', `I2C bus ${n} not open`, { data: { bus: n } });
      return b;
    };
    return {
      busNumber: n,
      readByte: (a, c) => get().readByte(a, c),
      writeByte: (a, c, b) => get().writeByte(a, c, b),
      readWord: (a, c) => get().readWord(a, c),
      writeWord: (a, c, w) => get().writeWord(a, c, w),
      readI2cBlock: (a, c, l, b) => get().readI2cBlock(a, c, l, b),
      writeI2cBlock: (a, c, l, b) => get().writeI2cBlock(a, c, l, b),
      i2cRead: (a, l, b) => get().i2cRead(a, l, b),
      i2cWrite: (a, l, b) => get().i2cWrite(a, l, b),
      close: async () => undefined,
    };
  };

  const busOf = (s: { bus?: number | undefined }) => s.bus ?? spec.i2cBus;
  const inputs: DigitalInput[] = [];
  const build = (s: SensorSpec): { sensor: Sensor; stuckAfter: number } => {
    switch (s.driver) {
      case 'bme280':
        return {
          sensor: createBme280({
            id: s.id,
            bus: busProxy(busOf(s)),
            clock,
            address: s.address,
            ...(s.oversampling ? { oversampling: s.oversampling } : {}),
            ...(s.filter === undefined ? {} : { filter: s.filter }),
          }),
          stuckAfter: s.stuckAfter,
        };
      case 'ads1115':
        return {
          sensor: createAds1115({
            id: s.id,
            bus: busProxy(busOf(s)),
            clock,
            address: s.address,
            channels: s.channels.map((c) => ({
              name: c.name,
              input: c.input,
              ...(c.range === undefined ? {} : { range: c.range }),
              ...(c.scale === undefined ? {} : { scale: c.scale }),
              ...(c.offset === undefined ? {} : { offset: c.offset }),
            })),
            ...(s.rate === undefined ? {} : { rate: s.rate }),
          }),
          stuckAfter: s.stuckAfter,
        };
      case 'bh1750':
        return {
          sensor: createBh1750({ id: s.id, bus: busProxy(busOf(s)), clock, address: s.address }),
          stuckAfter: s.stuckAfter,
        };
      case 'digital-input': {
        const input = createDigitalInput({
          id: s.id,
          gpio: gpioProxy,
          clock,
          line: s.line,
          debounceMs: s.debounceMs,
          activeLow: s.activeLow,
        });
        inputs.push(input);
        return { sensor: input, stuckAfter: 0 };
      }
    }
  };

  const sensors = spec.sensors.map((s) => {
    const { sensor, stuckAfter } = build(s);
    return superviseSensor(sensor, {
      clock,
      backoff: spec.backoff,
      ...(stuckAfter > 0 ? { stuckAfter } : {}),
      ...(deps.logger ? { logger: deps.logger } : {}),
    });
  });
  const outputs = spec.outputs.map((o) =>
    createDigitalOutput({ id: o.id, gpio: gpioProxy, line: o.line, activeLow: o.activeLow, initial: o.initial }),
  );

  const busNumbers = [
    ...new Set(spec.sensors.filter((s) => s.driver !== 'digital-input').map((s) => busOf(s as { bus?: number }))),
  ];
  const needsGpio = outputs.length > 0 || inputs.length > 0;

  const openPorts = async () => {
    if (spec.mode === 'simulated') {
      if (needsGpio && !deps.ports?.gpio) throw new HardwareError('HW_NO_PORTS', 'simulated mode needs a GPIO port');
      if (busNumbers.length > 0 && !deps.ports?.i2c)
        throw new HardwareError('HW_NO_PORTS', 'simulated mode needs I2C buses');
      gpio = deps.ports?.gpio;
      for (const n of busNumbers) buses.set(n, await (deps.ports?.i2c?.(n) as I2cBus | Promise<I2cBus>));
      return;
    }
    if (spec.mode !== 'real') return;
    const real = deps.real ?? {};
    // Imported here, not at the top: loading these modules is cheap, but keeping them out of
    // the default import graph documents that only mode `real` reaches native code.
    const { createOnoffGpio } = await import('../adapters/onoff.js');
    const { openI2cBus } = await import('../adapters/i2c-bus.js');
    for (const n of busNumbers) {
      buses.set(
        n,
        await openI2cBus(n, {
          ...(real.loadI2cBus ? { load: real.loadI2cBus } : {}),
          ...(real.platform ? { platform: real.platform } : {}),
          ...(real.user ? { user: real.user } : {}),
        }),
      );
    }
    if (needsGpio) {
      gpio = createOnoffGpio({
        ...(spec.gpio.sysfsRoot ? { sysfsRoot: spec.gpio.sysfsRoot } : {}),
        ...(spec.gpio.base === undefined ? {} : { base: spec.gpio.base }),
        ...(real.loadOnoff ? { load: real.loadOnoff } : {}),
        ...(real.platform ? { platform: real.platform } : {}),
        ...(real.user ? { user: real.user } : {}),
      });
    }
  };

  return {
    sensors,
    inputs,
    outputs,
    async start() {
      opened ??= openPorts();
      await opened;
      for (const o of outputs) {
        try {
          await o.init();
        } catch (err) {
          if (err instanceof HardwareUnavailableError) throw err;
          log?.error({ err, output: o.id }, 'output unavailable');
        }
      }
      for (const s of sensors) {
        await s.init();
        const err = s.lastError();
        if (err instanceof HardwareUnavailableError) throw err;
      }
      log?.info(
        { mode: spec.mode, sensors: sensors.map((s) => s.health()), outputs: outputs.map((o) => o.id) },
        'hardware started',
      );
    },
    async stop() {
      for (const s of sensors) await s.close().catch(() => undefined);
      for (const o of outputs) await o.close().catch(() => undefined);
      await gpio?.close().catch(() => undefined);
      if (spec.mode === 'real') for (const b of buses.values()) await b.close().catch(() => undefined);
      buses.clear();
      gpio = undefined;
      opened = undefined;
    },
  };
}

/** `createHardware(deps)` then `start()`: the one call the agent's composition root makes. */
export async function openHardware(deps: HardwareDeps): Promise<Hardware> {
  const hw = createHardware(deps);
  await hw.start();
  return hw;
}
