import { createHash } from 'node:crypto';
import { CLAIM_TEMPLATE_PARAMETERS, DEFAULT_CLAIMED_THING_PREFIX } from '@pifleet/protocol';
import { SimulatorError } from '../errors.js';

/**
 * The facts a simulated Pi sends in RegisterThing, as the agent reads them on a real one
 * (`/proc/cpuinfo`'s Serial and Model, the first interface's MAC address). Pure: the same run seed
 * and device index give the same device, so a run can be repeated and an allow-list written ahead.
 */

/** Models of the simulated fleet, with the OUI their Ethernet interface has (Raspberry Pi Ltd's). */
const PI_MODELS = [
  { model: 'Raspberry Pi 3 Model B Plus Rev 1.3', oui: 'b8:27:eb' },
  { model: 'Raspberry Pi 4 Model B Rev 1.4', oui: 'dc:a6:32' },
  { model: 'Raspberry Pi 5 Model B Rev 1.0', oui: '2c:cf:67' },
] as const;

const digest = (seed: string, index: number) =>
  createHash('sha256').update(`pifleet-sim claim device\u0000${seed}\u0000${index}`).digest();

/** Device `index`'s serial number: 16 lower-case hex digits, as `/proc/cpuinfo` shows a Pi's. */
export function simulatedSerial(seed: string, index: number): string {
  return digest(seed, index).subarray(0, 8).toString('hex');
}

/** Device `index`'s template parameters: `SerialNumber`, `Model` (as the device tree spells it), `MacAddress`. */
export function simulatedPiFacts(seed: string, index: number): Readonly<Record<string, string>> {
  const d = digest(seed, index);
  const kind = PI_MODELS[(d[8] as number) % PI_MODELS.length] as (typeof PI_MODELS)[number];
  const mac = `${kind.oui}:${d.subarray(9, 12).toString('hex').match(/../g)?.join(':')}`;
  const p = CLAIM_TEMPLATE_PARAMETERS;
  return Object.freeze({
    [p.serialNumber]: d.subarray(0, 8).toString('hex'),
    [p.model]: kind.model,
    [p.macAddress]: mac,
  });
}

/**
 * The things a claimed fleet of `devices` becomes: `pi-<serial>` (pifleet's claim template), in
 * device order. Two devices of one seed with the same serial would be one thing: refused (with
 * 64 bits per serial, never seen).
 */
export function claimedThingNames(seed: string, devices: number): string[] {
  const names = Array.from({ length: devices }, (_, i) => `${DEFAULT_CLAIMED_THING_PREFIX}${simulatedSerial(seed, i)}`);
  if (new Set(names).size !== names.length) {
    throw new SimulatorError(
      'FLEET_USAGE',
      `seed ${JSON.stringify(seed)} gives two devices one serial: use another --seed`,
    );
  }
  return names;
}
