import { HardwareUnavailableError } from './errors.js';

/**
 * Loads an optional native package (onoff, i2c-bus) on demand. Off Linux this fails with
 * HW_NOT_A_PI before anything is loaded; a package that is missing or failed to build fails
 * with HW_MODULE_MISSING naming the fix. Returns the CommonJS exports object.
 */
export async function loadNative<T>(name: string, load: () => Promise<unknown>, platform: string): Promise<T> {
  if (platform !== 'linux') {
    throw new HardwareUnavailableError(
      'HW_NOT_A_PI',
      `real ${name} hardware needs Linux on a Raspberry Pi (this is ${platform})`,
      "set hardware.mode to 'simulated' on this machine",
      { data: { module: name, platform } },
    );
  }
  let mod: unknown;
  try {
    mod = await load();
  } catch (err) {
    throw new HardwareUnavailableError(
      'HW_MODULE_MISSING',
      `the optional native package ${name} is not installed or did not build`,
      `install build tools and rebuild it: sudo apt install -y build-essential python3 && npm rebuild ${name}`,
      { cause: err, data: { module: name } },
    );
  }
  const m = mod as { default?: unknown };
  return (m.default ?? mod) as T;
}
