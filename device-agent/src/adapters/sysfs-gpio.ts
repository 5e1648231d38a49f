import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GpioError, HardwareUnavailableError } from '../hardware/errors.js';
import { errnoName } from '../hardware/i2c-errors.js';

/**
 * Resolves BCM line numbers to the kernel's sysfs GPIO numbers.
 *
 * The sysfs interface numbers lines globally: each gpiochip has a `base`. On kernels before
 * 6.6 the Pi's header chip started at 0, so BCM 17 was sysfs 17; from 6.6 (Raspberry Pi OS
 * Bookworm) bases are allocated dynamically from 512 upwards, so BCM 17 is sysfs 529 on a
 * Pi 4 and 588 on a Pi 5 (header on the RP1 chip, base 571). The config always names BCM
 * lines; this module reads `/sys/class/gpio/gpiochip{N}/{label,base,ngpio}` to find the header chip.
 */

/** Labels of the chip driving the 40-pin header, most specific first (Pi 5, Pi 4, Pi 0–3). */
export const HEADER_CHIP_LABELS: readonly string[] = ['pinctrl-rp1', 'pinctrl-bcm2711', 'pinctrl-bcm2835'];

export const DEFAULT_SYSFS_GPIO_ROOT = '/sys/class/gpio';

export interface GpioChipInfo {
  /** Directory name, e.g. `gpiochip512`. */
  readonly chip: string;
  readonly label: string;
  readonly base: number;
  readonly ngpio: number;
}

const notAPi = (root: string, cause?: unknown) =>
  new HardwareUnavailableError(
    'HW_NOT_A_PI',
    `no sysfs GPIO at ${root}: not a Raspberry Pi, or the kernel lacks CONFIG_GPIO_SYSFS`,
    "run the agent on a Raspberry Pi with Raspberry Pi OS, or set hardware.mode to 'simulated'",
    cause === undefined ? { data: { sysfsRoot: root } } : { cause, data: { sysfsRoot: root } },
  );

/** Lists the gpiochips under `sysfsRoot` (chips whose files cannot be read are skipped). */
export async function listGpioChips(sysfsRoot: string = DEFAULT_SYSFS_GPIO_ROOT): Promise<GpioChipInfo[]> {
  let entries: string[];
  try {
    entries = await readdir(sysfsRoot);
  } catch (err) {
    throw notAPi(sysfsRoot, err);
  }
  const chips: GpioChipInfo[] = [];
  for (const chip of entries.filter((e) => /^gpiochip\d+$/.test(e)).sort()) {
    try {
      const read = (f: string) => readFile(join(sysfsRoot, chip, f), 'utf8').then((s) => s.trim());
      const [label, base, ngpio] = await Promise.all([read('label'), read('base'), read('ngpio')]);
      const b = Number.parseInt(base, 10);
      const n = Number.parseInt(ngpio, 10);
      if (Number.isInteger(b) && Number.isInteger(n)) chips.push({ chip, label, base: b, ngpio: n });
    } catch {
      // not a chip directory we can read; ignore
    }
  }
  return chips;
}

/** Finds the header chip (see {@link HEADER_CHIP_LABELS}). */
export async function resolveHeaderChip(sysfsRoot: string = DEFAULT_SYSFS_GPIO_ROOT): Promise<GpioChipInfo> {
  const chips = await listGpioChips(sysfsRoot);
  for (const label of HEADER_CHIP_LABELS) {
    const found = chips.find((c) => c.label === label);
    if (found) return found;
  }
  const seen = chips.map((c) => `${c.chip}=${c.label}`).join(', ') || 'none';
  throw new HardwareUnavailableError(
    'HW_NO_GPIO_CHIP',
    `no Raspberry Pi header GPIO chip under ${sysfsRoot} (found: ${seen})`,
    "run on a Raspberry Pi, set hardware.gpio.base to the chip's base explicitly, or set hardware.mode to 'simulated'",
    { data: { sysfsRoot, chips: chips.map((c) => c.label) } },
  );
}

/** The sysfs number of BCM `line` on `chip`; GPIO_BAD_LINE if the chip has no such line. */
export function toSysfsLine(chip: Pick<GpioChipInfo, 'base' | 'ngpio' | 'label'>, line: number): number {
  if (!Number.isInteger(line) || line < 0 || line >= chip.ngpio) {
    throw new GpioError('GPIO_BAD_LINE', `BCM line ${line} does not exist on ${chip.label} (0–${chip.ngpio - 1})`, {
      line,
    });
  }
  return chip.base + line;
}

/** Maps a failure to export/configure a sysfs line to a typed error naming the fix. */
export function gpioOpenError(err: unknown, line: number, sysfsLine: number, user = 'pifleet'): Error {
  const errno = errnoName(err);
  const data = { line, sysfsLine, ...(errno === undefined ? {} : { errno }) };
  switch (errno) {
    case 'EACCES':
    case 'EPERM':
      return new HardwareUnavailableError(
        'HW_GPIO_PERMISSION',
        `no permission to use GPIO BCM ${line} (sysfs ${sysfsLine})`,
        `add the user to the gpio group: sudo usermod -aG gpio ${user} (then log in again or restart the service)`,
        { cause: err, data },
      );
    case 'EBUSY':
      return new GpioError(
        'GPIO_BUSY',
        `GPIO BCM ${line} (sysfs ${sysfsLine}) is in use by a kernel driver or another process; free it (check dtoverlays, pinctrl get ${line}) or choose another line`,
        data,
        { cause: err },
      );
    case 'EINVAL':
      return new GpioError(
        'GPIO_BAD_LINE',
        `the kernel rejected sysfs GPIO ${sysfsLine} for BCM ${line}; the chip base may be wrong (set hardware.gpio.base)`,
        data,
        { cause: err },
      );
    case 'ENOENT':
      return new HardwareUnavailableError(
        'HW_NOT_A_PI',
        `sysfs GPIO ${sysfsLine} (BCM ${line}) is missing`,
        "run the agent on a Raspberry Pi with sysfs GPIO enabled, or set hardware.mode to 'simulated'",
        { cause: err, data },
      );
    default:
      return new GpioError(
        'GPIO_IO',
        `GPIO BCM ${line} (sysfs ${sysfsLine}) failed${errno ? ` (${errno})` : ''}: ${err instanceof Error ? err.message : String(err)}`,
        data,
        { cause: err },
      );
  }
}
