import assert from 'node:assert/strict';
import { GpioError } from '../hardware/errors.js';
import type { Gpio, GpioValue } from '../ports/gpio.js';
import { type TestApi, until } from './test-api.js';

/**
 * What a GPIO adapter under test provides: two lines wired together (a jumper wire on a Pi,
 * `chip.wire()` in the simulator), so writing `outLine` drives `inLine`.
 */
export interface GpioFixture {
  readonly gpio: Gpio;
  readonly outLine: number;
  readonly inLine: number;
  /** Lets `ms` pass: advances a virtual clock, or really waits on hardware. */
  wait(ms: number): Promise<void>;
  close(): Promise<void>;
}

export type GpioFixtureFactory = () => Promise<GpioFixture>;

/**
 * The behaviour every `Gpio` adapter must have. Run it with a factory per adapter:
 * `describeGpioBehaviour({ describe, it, beforeEach, afterEach }, 'simulated', factory)`.
 */
export function describeGpioBehaviour(t: TestApi, name: string, factory: GpioFixtureFactory): void {
  t.describe(`Gpio behaviour: ${name}`, () => {
    let f: GpioFixture;
    t.beforeEach(async () => {
      f = await factory();
    });
    t.afterEach(async () => {
      await f.gpio.close();
      await f.close();
    });

    const within = { within: 500 };

    t.it('an output reads back what it drives, and the wired input follows', async () => {
      const out = await f.gpio.output(f.outLine);
      const inp = await f.gpio.input(f.inLine);
      for (const v of [1, 0, 1] as GpioValue[]) {
        await out.write(v);
        assert.equal(await out.read(), v);
        await f.wait(5);
        assert.equal(await inp.read(), v);
      }
    });

    t.it('drives the initial value from the moment the line is claimed', async () => {
      const out = await f.gpio.output(f.outLine, { initial: 1 });
      const inp = await f.gpio.input(f.inLine);
      await f.wait(5);
      assert.equal(await out.read(), 1);
      assert.equal(await inp.read(), 1);
    });

    t.it('inverts logical values on active-low lines', async () => {
      const out = await f.gpio.output(f.outLine, { activeLow: true, initial: 0 });
      const plain = await f.gpio.input(f.inLine);
      await f.wait(5);
      assert.equal(await plain.read(), 1, 'active-low output off = pin high');
      await out.write(1);
      await f.wait(5);
      assert.equal(await plain.read(), 0, 'active-low output on = pin low');
      await plain.release();
      const inverted = await f.gpio.input(f.inLine, { activeLow: true });
      assert.equal(await inverted.read(), 1, 'active-low input reads a low pin as 1');
    });

    t.it('reports both edges in order without debounce', async () => {
      const out = await f.gpio.output(f.outLine, { initial: 0 });
      const inp = await f.gpio.input(f.inLine, { edge: 'both' });
      const seen: GpioValue[] = [];
      inp.watch((v) => seen.push(v));
      await out.write(1);
      await until(() => seen.length >= 1, f.wait, { ...within, what: 'rising edge' });
      await out.write(0);
      await until(() => seen.length >= 2, f.wait, { ...within, what: 'falling edge' });
      assert.deepEqual(seen, [1, 0]);
    });

    t.it('reports only the requested edge', async () => {
      const out = await f.gpio.output(f.outLine, { initial: 0 });
      const inp = await f.gpio.input(f.inLine, { edge: 'rising' });
      const seen: GpioValue[] = [];
      inp.watch((v) => seen.push(v));
      for (const v of [1, 0, 1, 0] as GpioValue[]) {
        await out.write(v);
        await f.wait(10);
      }
      await until(() => seen.length >= 2, f.wait, { ...within, what: 'two rising edges' });
      await f.wait(20);
      assert.deepEqual(seen, [1, 1]);
    });

    t.it('collapses a bounce into one debounced event with the settled value', async () => {
      const out = await f.gpio.output(f.outLine, { initial: 0 });
      const inp = await f.gpio.input(f.inLine, { edge: 'both', debounceMs: 30 });
      const seen: GpioValue[] = [];
      inp.watch((v) => seen.push(v));
      for (const v of [1, 0, 1, 0, 1] as GpioValue[]) await out.write(v);
      await until(() => seen.length >= 1, f.wait, { ...within, what: 'debounced edge' });
      await f.wait(60);
      assert.deepEqual(seen, [1]);
    });

    t.it('stops delivering after unwatch', async () => {
      const out = await f.gpio.output(f.outLine, { initial: 0 });
      const inp = await f.gpio.input(f.inLine, { edge: 'both' });
      const seen: GpioValue[] = [];
      const stop = inp.watch((v) => seen.push(v));
      await out.write(1);
      await until(() => seen.length >= 1, f.wait, { ...within, what: 'first edge' });
      stop();
      await out.write(0);
      await f.wait(30);
      assert.deepEqual(seen, [1]);
    });

    t.it('refuses writes to an input and watches on an output', async () => {
      const inp = await f.gpio.input(f.inLine);
      await assert.rejects(inp.write(1), (e: unknown) => e instanceof GpioError && e.code === 'GPIO_NOT_OUTPUT');
      const out = await f.gpio.output(f.outLine);
      assert.throws(
        () => out.watch(() => undefined),
        (e: unknown) => e instanceof GpioError && e.code === 'GPIO_NOT_INPUT',
      );
    });

    t.it('refuses a line already held, and frees it on release', async () => {
      const first = await f.gpio.input(f.inLine);
      await assert.rejects(f.gpio.input(f.inLine), (e: unknown) => e instanceof GpioError && e.code === 'GPIO_BUSY');
      await first.release();
      await first.release(); // idempotent
      await assert.rejects(first.read(), (e: unknown) => e instanceof GpioError && e.code === 'GPIO_RELEASED');
      const again = await f.gpio.input(f.inLine);
      assert.equal(typeof (await again.read()), 'number');
    });
  });
}
