import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createOnoffGpio, type OnoffGpioInstance } from '../../src/adapters/onoff.js';
import { GpioError } from '../../src/hardware/errors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-onoff-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const chipDir = path.join(tmp, 'gpiochip512');
fs.mkdirSync(chipDir);
fs.writeFileSync(path.join(chipDir, 'label'), 'pinctrl-bcm2711\n');
fs.writeFileSync(path.join(chipDir, 'base'), '512\n');
fs.writeFileSync(path.join(chipDir, 'ngpio'), '58\n');

type Cb = (err: Error | null | undefined, value: 0 | 1) => void;

/** A stand-in for the onoff module that records what the adapter asks of it. */
function fakeOnoff(options: { throwOnConstruct?: Error } = {}) {
  const made: Array<{ gpio: number; direction: string; edge: unknown; opts: unknown; instance: FakeGpio }> = [];
  class FakeGpio implements OnoffGpioInstance {
    value: 0 | 1 = 0;
    callbacks: Cb[] = [];
    unexported = false;
    constructor(gpio: number, direction: string, edge?: unknown, opts?: unknown) {
      if (options.throwOnConstruct) throw options.throwOnConstruct;
      if (direction === 'high') this.value = 1;
      made.push({ gpio, direction, edge, opts, instance: this });
    }
    async read() {
      return this.value;
    }
    async write(v: 0 | 1) {
      this.value = v;
    }
    watch(cb: Cb) {
      this.callbacks.push(cb);
    }
    unwatch(cb?: Cb) {
      this.callbacks = this.callbacks.filter((c) => c !== cb);
    }
    unwatchAll() {
      this.callbacks = [];
    }
    unexport() {
      this.unexported = true;
    }
  }
  let loads = 0;
  return {
    made,
    loads: () => loads,
    load: async () => {
      loads += 1;
      return { default: { Gpio: FakeGpio } };
    },
  };
}

describe('onoff adapter', () => {
  it('loads onoff lazily and opens BCM lines at the resolved sysfs offset', async () => {
    const fake = fakeOnoff();
    const gpio = createOnoffGpio({ sysfsRoot: tmp, load: fake.load, platform: 'linux' });
    expect(fake.loads()).toBe(0); // constructing the adapter does nothing
    const line = await gpio.input(17, { edge: 'falling', debounceMs: 25, activeLow: true });
    expect(fake.loads()).toBe(1);
    expect(fake.made[0]).toMatchObject({
      gpio: 529,
      direction: 'in',
      edge: 'falling',
      opts: { debounceTimeout: 25, activeLow: true },
    });
    expect(line.line).toBe(17);
    await gpio.output(27);
    expect(fake.loads()).toBe(1);
    expect(fake.made[1]?.gpio).toBe(539);
  });

  it.each([
    { initial: 0, activeLow: false, direction: 'low' },
    { initial: 1, activeLow: false, direction: 'high' },
    { initial: 0, activeLow: true, direction: 'high' },
    { initial: 1, activeLow: true, direction: 'low' },
  ] as const)(
    'output initial=$initial activeLow=$activeLow sets direction $direction (raw level, no glitch)',
    async (c) => {
      const fake = fakeOnoff();
      const gpio = createOnoffGpio({ base: 0, load: fake.load, platform: 'linux' });
      await gpio.output(5, { initial: c.initial, activeLow: c.activeLow });
      expect(fake.made[0]).toMatchObject({ gpio: 5, direction: c.direction, opts: { activeLow: c.activeLow } });
    },
  );

  it('forwards edges to watchers and I/O errors to onError, and stops on unwatch', async () => {
    const fake = fakeOnoff();
    const gpio = createOnoffGpio({ base: 0, load: fake.load, platform: 'linux' });
    const line = await gpio.input(4);
    const values: number[] = [];
    const errors: unknown[] = [];
    const stop = line.watch(
      (v) => values.push(v),
      (e) => errors.push(e),
    );
    const inst = fake.made[0]?.instance;
    inst?.callbacks.forEach((cb) => {
      cb(null, 1);
      cb(new Error('EIO'), 0);
    });
    expect(values).toEqual([1]);
    expect(errors[0]).toBeInstanceOf(GpioError);
    expect(errors[0]).toMatchObject({ code: 'GPIO_IO', data: { line: 4, sysfsLine: 4 } });
    stop();
    expect(inst?.callbacks).toEqual([]);
  });

  it('refuses a line it already holds, releases with unexport, and closes everything', async () => {
    const fake = fakeOnoff();
    const gpio = createOnoffGpio({ base: 0, load: fake.load, platform: 'linux' });
    const a = await gpio.input(4);
    await expect(gpio.input(4)).rejects.toMatchObject({ code: 'GPIO_BUSY', data: { line: 4 } });
    await a.release();
    expect(fake.made[0]?.instance.unexported).toBe(true);
    await expect(a.read()).rejects.toMatchObject({ code: 'GPIO_RELEASED' });
    const b = await gpio.output(4);
    await b.write(1);
    await expect(b.read()).resolves.toBe(1);
    await gpio.close();
    expect(fake.made[1]?.instance.unexported).toBe(true);
  });

  it('maps a permission failure to the gpio group fix', async () => {
    const fake = fakeOnoff({
      throwOnConstruct: Object.assign(new Error("EACCES: permission denied, open '/sys/class/gpio/export'"), {
        code: 'EACCES',
      }),
    });
    const gpio = createOnoffGpio({ sysfsRoot: tmp, load: fake.load, platform: 'linux', user: 'pifleet' });
    await expect(gpio.output(17)).rejects.toMatchObject({
      code: 'HW_GPIO_PERMISSION',
      exitCode: 77,
      message: expect.stringContaining('sudo usermod -aG gpio pifleet'),
      data: { line: 17, sysfsLine: 529 },
    });
  });

  it('refuses to load anything off Linux, and reports a missing native module with the fix', async () => {
    const fake = fakeOnoff();
    await expect(createOnoffGpio({ base: 0, load: fake.load, platform: 'darwin' }).input(1)).rejects.toMatchObject({
      code: 'HW_NOT_A_PI',
    });
    expect(fake.loads()).toBe(0);
    const broken = createOnoffGpio({
      base: 0,
      platform: 'linux',
      load: async () => {
        throw new Error("Cannot find module 'epoll'");
      },
    });
    await expect(broken.input(1)).rejects.toMatchObject({
      code: 'HW_MODULE_MISSING',
      message: expect.stringContaining('npm rebuild onoff'),
    });
  });

  it.runIf(!fs.existsSync('/sys/class/gpio'))(
    'with the real onoff package on a machine without sysfs GPIO: a clear HW_NOT_A_PI',
    async () => {
      const gpio = createOnoffGpio({ base: 0 });
      const err = await gpio.input(17).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'HW_NOT_A_PI' });
      expect((err as Error).message).not.toMatch(/\n\s+at /);
    },
  );
});
