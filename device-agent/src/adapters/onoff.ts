import { GpioError } from '../hardware/errors.js';
import { loadNative } from '../hardware/native.js';
import type { Gpio, GpioEdge, GpioInputOptions, GpioLine, GpioOutputOptions, GpioValue } from '../ports/gpio.js';
import {
  DEFAULT_SYSFS_GPIO_ROOT,
  type GpioChipInfo,
  gpioOpenError,
  resolveHeaderChip,
  toSysfsLine,
} from './sysfs-gpio.js';

/**
 * The Gpio port on onoff (sysfs GPIO). onoff is loaded with a dynamic import the first time a
 * line is requested, so nothing native is touched unless the config asks for real hardware.
 */

/** The part of onoff's `Gpio` class this adapter uses (structural, so onoff's types are not needed to build). */
export interface OnoffGpioInstance {
  read(): Promise<GpioValue>;
  write(value: GpioValue): Promise<void>;
  watch(callback: (err: Error | null | undefined, value: GpioValue) => void): void;
  unwatch(callback?: (err: Error | null | undefined, value: GpioValue) => void): void;
  unwatchAll(): void;
  unexport(): void;
}

export interface OnoffModule {
  Gpio: new (
    gpio: number,
    direction: 'in' | 'out' | 'high' | 'low',
    edge?: GpioEdge,
    options?: { debounceTimeout?: number; activeLow?: boolean; reconfigureDirection?: boolean },
  ) => OnoffGpioInstance;
}

export interface OnoffGpioOptions {
  /** Where sysfs GPIO lives (default `/sys/class/gpio`; only used to resolve the chip base). */
  readonly sysfsRoot?: string;
  /** Skip resolution and use this base (sysfs number = base + BCM line). */
  readonly base?: number;
  /** Loads onoff; default `import('onoff')`. Tests inject a fake module. */
  readonly load?: () => Promise<unknown>;
  /** Default `process.platform`. */
  readonly platform?: string;
  /** User named in permission fixes (default `pifleet`). */
  readonly user?: string;
}

/** Module specifier kept in a variable so TypeScript does not need the optional package's types. */
const ONOFF: string = 'onoff';

export function createOnoffGpio(options: OnoffGpioOptions = {}): Gpio {
  const held = new Map<number, GpioLine>();
  let mod: OnoffModule | undefined;
  let chip: Pick<GpioChipInfo, 'base' | 'ngpio' | 'label'> | undefined;

  const prepare = async (line: number): Promise<{ onoff: OnoffModule; sysfsLine: number }> => {
    mod ??= await loadNative<OnoffModule>(
      'onoff',
      options.load ?? (() => import(ONOFF)),
      options.platform ?? process.platform,
    );
    chip ??=
      options.base === undefined
        ? await resolveHeaderChip(options.sysfsRoot ?? DEFAULT_SYSFS_GPIO_ROOT)
        : { base: options.base, ngpio: 58, label: `base ${options.base}` };
    if (held.has(line)) {
      throw new GpioError('GPIO_BUSY', `GPIO BCM ${line} is already in use by this agent`, { line });
    }
    return { onoff: mod, sysfsLine: toSysfsLine(chip, line) };
  };

  const wrap = (line: number, sysfsLine: number, direction: 'in' | 'out', g: OnoffGpioInstance): GpioLine => {
    let released = false;
    const data = { line, sysfsLine };
    const check = () => {
      if (released) throw new GpioError('GPIO_RELEASED', `GPIO BCM ${line} was released`, data);
    };
    const io = (err: unknown) =>
      new GpioError('GPIO_IO', `GPIO BCM ${line} (sysfs ${sysfsLine}) I/O failed`, data, { cause: err });
    const handle: GpioLine = {
      line,
      direction,
      async read() {
        check();
        try {
          return (await g.read()) === 1 ? 1 : 0;
        } catch (err) {
          throw io(err);
        }
      },
      async write(value) {
        check();
        if (direction !== 'out') throw new GpioError('GPIO_NOT_OUTPUT', `GPIO BCM ${line} is an input`, data);
        try {
          await g.write(value === 1 ? 1 : 0);
        } catch (err) {
          throw io(err);
        }
      },
      watch(watcher, onError) {
        check();
        if (direction !== 'in') throw new GpioError('GPIO_NOT_INPUT', `GPIO BCM ${line} is an output`, data);
        const cb = (err: Error | null | undefined, value: GpioValue) => {
          if (err) onError?.(io(err));
          else watcher(value === 1 ? 1 : 0);
        };
        g.watch(cb);
        return () => g.unwatch(cb);
      },
      async release() {
        if (released) return;
        released = true;
        held.delete(line);
        try {
          g.unwatchAll();
          g.unexport();
        } catch (err) {
          throw io(err);
        }
      },
    };
    held.set(line, handle);
    return handle;
  };

  const construct = (
    onoff: OnoffModule,
    line: number,
    sysfsLine: number,
    build: (o: OnoffModule) => OnoffGpioInstance,
  ) => {
    try {
      return build(onoff);
    } catch (err) {
      throw gpioOpenError(err, line, sysfsLine, options.user);
    }
  };

  return {
    async input(line, opts: GpioInputOptions = {}) {
      const { onoff, sysfsLine } = await prepare(line);
      const g = construct(
        onoff,
        line,
        sysfsLine,
        (o) =>
          new o.Gpio(sysfsLine, 'in', opts.edge ?? 'both', {
            debounceTimeout: opts.debounceMs ?? 0,
            activeLow: opts.activeLow ?? false,
          }),
      );
      return wrap(line, sysfsLine, 'in', g);
    },
    async output(line, opts: GpioOutputOptions = {}) {
      const { onoff, sysfsLine } = await prepare(line);
      const activeLow = opts.activeLow ?? false;
      // sysfs "high"/"low" set the *raw* level atomically with the direction, so the
      // initial logical value is converted here and the pin never glitches.
      const physical = ((opts.initial ?? 0) === 1) !== activeLow;
      const g = construct(
        onoff,
        line,
        sysfsLine,
        (o) => new o.Gpio(sysfsLine, physical ? 'high' : 'low', 'none', { activeLow }),
      );
      return wrap(line, sysfsLine, 'out', g);
    },
    async close() {
      const lines = [...held.values()];
      for (const l of lines) await l.release().catch(() => undefined);
    },
  };
}
