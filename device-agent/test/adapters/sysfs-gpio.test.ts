import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gpioOpenError, listGpioChips, resolveHeaderChip, toSysfsLine } from '../../src/adapters/sysfs-gpio.js';
import { GpioError, HardwareUnavailableError } from '../../src/hardware/errors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-sysfs-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Builds a fake /sys/class/gpio with the given chips. */
function tree(name: string, chips: Array<{ chip: string; label: string; base: number; ngpio: number }>): string {
  const root = path.join(tmp, name);
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, 'export'), '');
  for (const c of chips) {
    const dir = path.join(root, c.chip);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'label'), `${c.label}\n`);
    fs.writeFileSync(path.join(dir, 'base'), `${c.base}\n`);
    fs.writeFileSync(path.join(dir, 'ngpio'), `${c.ngpio}\n`);
  }
  return root;
}

describe('sysfs GPIO offset resolution', () => {
  it.each([
    {
      board: 'Pi 4, kernel 6.6+ (Bookworm)',
      chips: [
        { chip: 'gpiochip512', label: 'pinctrl-bcm2711', base: 512, ngpio: 58 },
        { chip: 'gpiochip570', label: 'raspberrypi-exp-gpio', base: 570, ngpio: 8 },
      ],
      label: 'pinctrl-bcm2711',
      bcm17: 529,
    },
    {
      board: 'Pi 5, kernel 6.6+',
      chips: [
        { chip: 'gpiochip512', label: 'gpio-brcmstb@107d508500', base: 512, ngpio: 32 },
        { chip: 'gpiochip544', label: 'gpio-brcmstb@107d517c00', base: 544, ngpio: 15 },
        { chip: 'gpiochip559', label: 'pinctrl-bcm2712', base: 559, ngpio: 6 },
        { chip: 'gpiochip571', label: 'pinctrl-rp1', base: 571, ngpio: 54 },
      ],
      label: 'pinctrl-rp1',
      bcm17: 588,
    },
    {
      board: 'Pi 3, old kernel',
      chips: [
        { chip: 'gpiochip0', label: 'pinctrl-bcm2835', base: 0, ngpio: 54 },
        { chip: 'gpiochip504', label: 'raspberrypi-exp-gpio', base: 504, ngpio: 8 },
      ],
      label: 'pinctrl-bcm2835',
      bcm17: 17,
    },
  ])('$board: BCM 17 is sysfs $bcm17', async ({ board, chips, label, bcm17 }) => {
    const root = tree(board.replace(/\W+/g, '-'), chips);
    const chip = await resolveHeaderChip(root);
    expect(chip.label).toBe(label);
    expect(toSysfsLine(chip, 17)).toBe(bcm17);
  });

  it('skips chip directories it cannot read', async () => {
    const root = tree('partial', [{ chip: 'gpiochip512', label: 'pinctrl-bcm2711', base: 512, ngpio: 58 }]);
    fs.mkdirSync(path.join(root, 'gpiochip600'));
    fs.writeFileSync(path.join(root, 'gpiochip600', 'label'), 'broken');
    expect((await listGpioChips(root)).map((c) => c.chip)).toEqual(['gpiochip512']);
  });

  it('names the fix when no header chip exists', async () => {
    const root = tree('not-a-pi', [{ chip: 'gpiochip0', label: 'gpio-mockup-A', base: 0, ngpio: 8 }]);
    const err = await resolveHeaderChip(root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HardwareUnavailableError);
    expect(err).toMatchObject({ code: 'HW_NO_GPIO_CHIP', exitCode: 69 });
    expect((err as Error).message).toContain('gpiochip0=gpio-mockup-A');
    expect((err as Error).message).toMatch(/fix: .*hardware\.gpio\.base/);
  });

  it('reports a missing sysfs root as HW_NOT_A_PI', async () => {
    await expect(resolveHeaderChip(path.join(tmp, 'nope'))).rejects.toMatchObject({
      code: 'HW_NOT_A_PI',
      message: expect.stringMatching(/fix: .*simulated/),
    });
  });

  it.each([-1, 58, 1.5])('rejects BCM line %d beyond the chip', (line) => {
    expect(() => toSysfsLine({ base: 512, ngpio: 58, label: 'pinctrl-bcm2711' }, line)).toThrow(GpioError);
  });
});

describe('GPIO open error mapping', () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: boom, open '/sys/class/gpio/export'`), { code });

  it.each([
    ['EACCES', 'HW_GPIO_PERMISSION', /sudo usermod -aG gpio pifleet/, 77],
    ['EPERM', 'HW_GPIO_PERMISSION', /gpio group/, 77],
    ['ENOENT', 'HW_NOT_A_PI', /Raspberry Pi/, 69],
  ] as const)('%s → %s naming the fix', (code, expected, fix, exit) => {
    const err = gpioOpenError(errno(code), 17, 529);
    expect(err).toBeInstanceOf(HardwareUnavailableError);
    expect(err).toMatchObject({ code: expected, exitCode: exit, data: { line: 17, sysfsLine: 529, errno: code } });
    expect(err.message).toMatch(fix);
  });

  it.each([
    ['EBUSY', 'GPIO_BUSY'],
    ['EINVAL', 'GPIO_BAD_LINE'],
    ['EIO', 'GPIO_IO'],
  ])('%s → GpioError %s with the line numbers', (code, expected) => {
    const err = gpioOpenError(errno(code), 4, 516);
    expect(err).toBeInstanceOf(GpioError);
    expect(err).toMatchObject({ code: expected, data: { line: 4, sysfsLine: 516 } });
    expect(err.message).toContain('BCM 4');
  });

  it('names a different user when configured', () => {
    expect(gpioOpenError(errno('EACCES'), 1, 513, 'pi').message).toContain('usermod -aG gpio pi');
  });
});
