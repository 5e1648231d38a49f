import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCpuinfo, pickMacAddress, readDeviceFacts } from '../../src/provisioning/facts.js';

/**
 * The device's facts from real Raspberry Pi files: /proc/cpuinfo as each model's kernel prints it
 * (the per-core blocks, then the board's Hardware/Revision/Serial/Model lines), the device tree's
 * model (NUL-terminated) and /sys/class/net, laid out as fixture directories.
 */

/** A Pi 3 Model B on a 32-bit Raspberry Pi OS kernel (4.19): no Model line. */
const PI3 = `processor\t: 0
model name\t: ARMv7 Processor rev 4 (v7l)
BogoMIPS\t: 38.40
Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32
CPU implementer\t: 0x41
CPU architecture: 7
CPU variant\t: 0x0
CPU part\t: 0xd03
CPU revision\t: 4

processor\t: 1
model name\t: ARMv7 Processor rev 4 (v7l)
BogoMIPS\t: 38.40

Hardware\t: BCM2835
Revision\t: a02082
Serial\t\t: 00000000A3B4C5D6
`;

/** A Pi 4 Model B on 64-bit Raspberry Pi OS (6.1). */
const PI4 = `processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

processor\t: 3
BogoMIPS\t: 108.00

Revision\t: c03114
Serial\t\t: 10000000e1f2a3b4
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
`;

/** A Pi 5 (6.6, bookworm): a serial that is not 1000… padded. */
const PI5 = `processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU part\t: 0xd0b

Revision\t: d04170
Serial\t\t: 2c1f3e4d5a6b7c8d
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
`;

describe('parseCpuinfo', () => {
  it.each([
    ['Pi 3 (no Model line)', PI3, { SerialNumber: '00000000a3b4c5d6' }],
    ['Pi 4', PI4, { SerialNumber: '10000000e1f2a3b4', Model: 'Raspberry Pi 4 Model B Rev 1.4' }],
    ['Pi 5', PI5, { SerialNumber: '2c1f3e4d5a6b7c8d', Model: 'Raspberry Pi 5 Model B Rev 1.0' }],
    [
      'an x86 PC (no Serial, no Model)',
      'processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM)\n',
      {},
    ],
    ['a board that prints a zero serial (QEMU)', 'Hardware\t: Generic\nSerial\t\t: 0000000000000000\n', {}],
    ['a serial that is not 16 hex digits', 'Serial\t: 10000000e1f2a3b\nModel\t: x\n', { Model: 'x' }],
    ['a serial with a path in it', 'Serial\t: ../../etc/passwd\n', {}],
    [
      'an empty Serial',
      'Serial\t:\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n',
      { Model: 'Raspberry Pi 4 Model B Rev 1.4' },
    ],
    ['binary garbage', '\u0000\u0001\uffff:::\n:\nSerial', {}],
    ['a model with control characters', 'Model\t: Raspberry\u001b[31m Pi\n', {}],
    ['an empty file', '', {}],
  ])('%s', (_label, text, facts) => {
    expect(parseCpuinfo(text)).toEqual(facts);
  });

  it('takes the board line "Model", not the per-core "model name"', () => {
    expect(parseCpuinfo('model name\t: ARMv7 Processor rev 4 (v7l)\n')).toEqual({});
  });

  it('reads a 1 MB file of one line without trouble', () => {
    expect(parseCpuinfo(`Serial: ${'a'.repeat(1_000_000)}`)).toEqual({});
  });
});

describe('pickMacAddress', () => {
  it('skips the loopback, all-zero and non-MAC addresses, and takes the first by name', () => {
    const addresses = new Map([
      ['wlan0', 'DC:A6:32:00:00:02\n'],
      ['lo', '00:00:00:00:00:00\n'],
      ['tunl0', '00:00:00:00\n'],
      ['eth0', 'dc:a6:32:00:00:01\n'],
      ['docker0', '00:00:00:00:00:00\n'],
    ]);
    expect(pickMacAddress(addresses)).toBe('dc:a6:32:00:00:01');
  });

  it('lower-cases a wlan-only Pi Zero W address', () => {
    expect(pickMacAddress(new Map([['wlan0', 'B8:27:EB:12:34:56']]))).toBe('b8:27:eb:12:34:56');
  });

  it('is undefined with no interface but the loopback', () => {
    expect(pickMacAddress(new Map([['lo', '00:00:00:00:00:00']]))).toBeUndefined();
  });
});

describe('readDeviceFacts', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'pifleet-facts-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const board = (name: string, files: { cpuinfo?: string; model?: string; net?: Record<string, string> }) => {
    const dir = path.join(root, name);
    mkdirSync(path.join(dir, 'net'), { recursive: true });
    if (files.cpuinfo !== undefined) writeFileSync(path.join(dir, 'cpuinfo'), files.cpuinfo);
    if (files.model !== undefined) writeFileSync(path.join(dir, 'model'), files.model);
    for (const [iface, address] of Object.entries(files.net ?? {})) {
      mkdirSync(path.join(dir, 'net', iface));
      writeFileSync(path.join(dir, 'net', iface, 'address'), address);
    }
    return {
      cpuinfo: path.join(dir, 'cpuinfo'),
      deviceTreeModel: path.join(dir, 'model'),
      netDir: path.join(dir, 'net'),
    };
  };

  it('a Pi 3: the model from the device tree (NUL-terminated), since cpuinfo has none', async () => {
    const sources = board('pi3', {
      cpuinfo: PI3,
      model: 'Raspberry Pi 3 Model B Rev 1.2\0',
      net: { lo: '00:00:00:00:00:00\n', eth0: 'b8:27:eb:aa:bb:cc\n', wlan0: 'b8:27:eb:aa:bb:cd\n' },
    });
    expect(await readDeviceFacts(sources)).toEqual({
      SerialNumber: '00000000a3b4c5d6',
      Model: 'Raspberry Pi 3 Model B Rev 1.2',
      MacAddress: 'b8:27:eb:aa:bb:cc',
    });
  });

  it('a Pi 5: cpuinfo names the model', async () => {
    const sources = board('pi5', { cpuinfo: PI5, model: 'something else\0', net: { eth0: '2c:cf:67:00:00:01\n' } });
    expect(await readDeviceFacts(sources)).toEqual({
      SerialNumber: '2c1f3e4d5a6b7c8d',
      Model: 'Raspberry Pi 5 Model B Rev 1.0',
      MacAddress: '2c:cf:67:00:00:01',
    });
  });

  it('files that are missing leave their facts out, and nothing throws', async () => {
    expect(await readDeviceFacts(board('empty', {}))).toEqual({});
    expect(
      await readDeviceFacts({
        cpuinfo: '/nonexistent/cpuinfo',
        deviceTreeModel: '/nonexistent/model',
        netDir: '/nonexistent',
      }),
    ).toEqual({});
  });

  it('an interface without an address file is skipped', async () => {
    const sources = board('noaddr', { net: { eth1: 'dc:a6:32:00:00:09\n' } });
    mkdirSync(path.join(sources.netDir, 'eth0'));
    expect(await readDeviceFacts(sources)).toEqual({ MacAddress: 'dc:a6:32:00:00:09' });
  });
});
