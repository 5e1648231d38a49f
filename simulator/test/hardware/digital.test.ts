import { createDigitalInput, createDigitalOutput, createVirtualClock, type InputEvent } from '@pifleet/device-agent';
import { describe, expect, it } from 'vitest';
import { SimGpioChip } from '../../src/hardware/gpio-chip.js';

function rig() {
  const clock = createVirtualClock();
  const chip = new SimGpioChip({ clock });
  return { clock, chip };
}

describe('digital input on the simulated GPIO chip', () => {
  it('turns a bouncing button press into one event and one count', async () => {
    const { clock, chip } = rig();
    const button = createDigitalInput({ id: 'button', gpio: chip, clock, line: 17, debounceMs: 20 });
    await button.init();
    const events: InputEvent[] = [];
    button.onEvent((e) => events.push(e));

    const pressAt = clock.now();
    const press = chip.bounce(17, [1, 0, 1, 0, 1], 2); // 8 ms of contact bounce, settles high
    await clock.advance(10);
    await press;
    expect(events).toEqual([]);
    await clock.advance(30);
    expect(events).toEqual([{ sensor: 'button', state: true, count: 1, ts: pressAt + 8 + 20 }]);

    void chip.bounce(17, [0, 1, 0], 3); // release with bounce
    await clock.advance(50);
    expect(events.map((e) => [e.state, e.count])).toEqual([
      [true, 1],
      [false, 1],
    ]);
    await expect(button.read()).resolves.toEqual({ state: false, count: 1 });
  });

  it.each([
    { name: 'a glitch shorter than the window that returns to rest', levels: [1, 0], events: 0, count: 0 },
    { name: 'three clean presses', levels: [1, 0, 1, 0, 1, 0], events: 6, count: 3, spacing: 50 },
  ])('$name', async ({ levels, events: expected, count, spacing }) => {
    const { clock, chip } = rig();
    const input = createDigitalInput({ id: 'pir', gpio: chip, clock, line: 4, debounceMs: 20 });
    await input.init();
    const events: InputEvent[] = [];
    input.onEvent((e) => events.push(e));
    void chip.bounce(4, levels as (0 | 1)[], spacing ?? 5);
    await clock.advance((spacing ?? 5) * levels.length + 100);
    expect(events).toHaveLength(expected);
    expect(input.count()).toBe(count);
  });

  it('reads an active-low button (to GND, pull-up) as active when the pin is low', async () => {
    const { clock, chip } = rig();
    chip.drive(22, 1); // pulled up at rest
    const button = createDigitalInput({ id: 'door', gpio: chip, clock, line: 22, activeLow: true, debounceMs: 0 });
    await button.init();
    expect(button.state()).toBe(false);
    chip.drive(22, 0);
    expect(button.state()).toBe(true);
    expect(button.count()).toBe(1);
    await expect(button.read()).resolves.toEqual({ state: true, count: 1 });
  });

  it('releases its line on close and can be opened again', async () => {
    const { clock, chip } = rig();
    const input = createDigitalInput({ id: 'b', gpio: chip, clock, line: 5 });
    await input.init();
    expect(chip.claimed()).toEqual([5]);
    await input.close();
    expect(chip.claimed()).toEqual([]);
    await expect(input.read()).rejects.toMatchObject({ code: 'GPIO_RELEASED', data: { line: 5 } });
    await input.init();
    expect(chip.claimed()).toEqual([5]);
  });
});

describe('digital output on the simulated GPIO chip', () => {
  it.each([
    { activeLow: false, initial: false, pinAtStart: 0, pinOn: 1 },
    { activeLow: false, initial: true, pinAtStart: 1, pinOn: 1 },
    { activeLow: true, initial: false, pinAtStart: 1, pinOn: 0 },
    { activeLow: true, initial: true, pinAtStart: 0, pinOn: 0 },
  ])('activeLow=$activeLow initial=$initial drives the pin $pinAtStart, then $pinOn when on', async (c) => {
    const { chip } = rig();
    const relay = createDigitalOutput({
      id: 'relay',
      gpio: chip,
      line: 23,
      activeLow: c.activeLow,
      initial: c.initial,
    });
    await relay.init();
    expect(chip.level(23)).toBe(c.pinAtStart);
    expect(relay.get()).toBe(c.initial);
    // The pin went straight to its initial level: no glitch through the other level.
    expect(chip.history(23).map((h) => h.level)).toEqual([c.pinAtStart]);
    await relay.set(true);
    expect(chip.level(23)).toBe(c.pinOn);
    expect(relay.get()).toBe(true);
    await relay.set(false);
    expect(chip.level(23)).toBe(1 - c.pinOn);
    expect(relay.get()).toBe(false);
  });

  it('rejects set() before init and after close', async () => {
    const { chip } = rig();
    const led = createDigitalOutput({ id: 'led', gpio: chip, line: 18 });
    await expect(led.set(true)).rejects.toMatchObject({ code: 'GPIO_RELEASED' });
    await led.init();
    await led.close();
    await expect(led.set(true)).rejects.toMatchObject({ code: 'GPIO_RELEASED' });
  });

  it('fails to claim a line another driver holds', async () => {
    const { chip, clock } = rig();
    await createDigitalInput({ id: 'in', gpio: chip, clock, line: 6 }).init();
    await expect(createDigitalOutput({ id: 'out', gpio: chip, line: 6 }).init()).rejects.toMatchObject({
      code: 'GPIO_BUSY',
      data: { line: 6 },
    });
  });

  it('a stuck pin is visible through the input (fault injection)', async () => {
    const { chip, clock } = rig();
    const input = createDigitalInput({ id: 'in', gpio: chip, clock, line: 12, debounceMs: 0 });
    await input.init();
    chip.stick(12, 1);
    chip.drive(12, 0);
    expect(input.state()).toBe(true);
    chip.stick(12, undefined);
    expect(input.state()).toBe(false);
  });
});
