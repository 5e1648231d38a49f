import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * What the agent reads about the device it runs on, as the template parameters the pifleet claim
 * template names (CONTRACT: `SerialNumber`, `Model`, `MacAddress`). Each is absent when the device
 * does not say (a Pi 3 on an older kernel has no `Model` line; a board that is not a Pi may have no
 * `Serial`); the config and the command line may set any of them.
 */
export interface DeviceFacts {
  readonly SerialNumber?: string;
  readonly Model?: string;
  readonly MacAddress?: string;
}

/** Where the facts are read from: the Pi's files by default, fixture files in tests. */
export interface FactSources {
  readonly cpuinfo: string;
  readonly deviceTreeModel: string;
  readonly netDir: string;
}

export const PI_FACT_SOURCES: FactSources = {
  cpuinfo: '/proc/cpuinfo',
  deviceTreeModel: '/proc/device-tree/model',
  netDir: '/sys/class/net',
};

/** The files are small; anything larger is not what we look for and is not read whole. */
const MAX_FACT_FILE_BYTES = 64 * 1024;

/**
 * The Pi's serial: 16 hex digits (`Serial : 10000000a3b4c5d6` on a Pi 3/4, `Serial : 2c1f3e4d5a6b7c8d`
 * on a Pi 5), lower-cased. All zeros is what kernels print for a board without one (QEMU, some
 * non-Pi boards): it names no device, and a fleet of them would all claim the same thing.
 */
const SERIAL = /^[0-9a-f]{16}$/;

/** The `key : value` lines of /proc/cpuinfo that hold for the whole board (outside the per-core blocks too). */
function cpuinfoField(text: string, key: string): string | undefined {
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    if (line.slice(0, colon).trim() !== key) continue;
    const value = line.slice(colon + 1).trim();
    if (value !== '') return value;
  }
  return undefined;
}

/** A model name as printed: printable ASCII only, at most 128 characters; undefined for anything else. */
function cleanModel(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  // /proc/device-tree/model ends with a NUL.
  const text = raw.replace(/\0+$/, '').trim();
  if (text === '' || text.length > 128 || !/^[\x20-\x7e]+$/.test(text)) return undefined;
  return text;
}

/** SerialNumber and Model from the text of /proc/cpuinfo; a garbled value is left out, not guessed at. */
export function parseCpuinfo(text: string): Pick<DeviceFacts, 'SerialNumber' | 'Model'> {
  const serial = cpuinfoField(text, 'Serial')?.toLowerCase();
  const model = cleanModel(cpuinfoField(text, 'Model'));
  return {
    ...(serial !== undefined && SERIAL.test(serial) && !/^0+$/.test(serial) ? { SerialNumber: serial } : {}),
    ...(model !== undefined ? { Model: model } : {}),
  };
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * The MAC address of the first interface (by name, so the same one every boot) that is not the
 * loopback and has a real address: `eth0` before `wlan0` on a Pi. Interfaces whose address is all
 * zeros (tunnels, `lo`) or not a MAC (`ip6tnl0`'s 16 bytes) are skipped.
 */
export function pickMacAddress(addresses: ReadonlyMap<string, string>): string | undefined {
  for (const name of [...addresses.keys()].sort()) {
    if (name === 'lo') continue;
    const mac = addresses.get(name)?.trim().toLowerCase();
    if (mac === undefined || !MAC.test(mac) || mac === '00:00:00:00:00:00') continue;
    return mac;
  }
  return undefined;
}

async function readSmall(file: string): Promise<string | undefined> {
  try {
    const buf = await readFile(file);
    return buf.subarray(0, MAX_FACT_FILE_BYTES).toString('latin1');
  } catch {
    return undefined;
  }
}

/** Reads the device's facts from `sources`; a file that is missing or unreadable leaves its facts out. */
export async function readDeviceFacts(sources: FactSources = PI_FACT_SOURCES): Promise<DeviceFacts> {
  const cpuinfo = parseCpuinfo((await readSmall(sources.cpuinfo)) ?? '');
  const model = cpuinfo.Model ?? cleanModel(await readSmall(sources.deviceTreeModel));
  const names = await readdir(sources.netDir).catch(() => [] as string[]);
  const addresses = new Map<string, string>();
  for (const name of names) {
    const address = await readSmall(path.join(sources.netDir, name, 'address'));
    if (address !== undefined) addresses.set(name, address);
  }
  const mac = pickMacAddress(addresses);
  return {
    ...(cpuinfo.SerialNumber !== undefined ? { SerialNumber: cpuinfo.SerialNumber } : {}),
    ...(model !== undefined ? { Model: model } : {}),
    ...(mac !== undefined ? { MacAddress: mac } : {}),
  };
}
