/**
 * The Linux HostStats adapter against directories of sample files in the kernel's formats: a
 * Raspberry Pi 4 (4 GB, Raspberry Pi OS Bookworm) a minute apart, a Pi 5 (8 GB, 16 KiB pages, a
 * fan as cooling device), machines without a thermal zone or with other zones, and files that are
 * missing, truncated or not what they should be. Fields go missing one by one; nothing throws.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { validateHealthReport } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createLinuxHostStats,
  kbField,
  parseLoadavg,
  parseProcStatCpu,
  parseSelfStatCpuTicks,
  parseUptime,
} from '../../src/adapters/linux-host-stats.js';
import { buildHealth } from '../../src/core/health.js';
import { HOST_STATS_FIXTURES, PI4_HOST } from './host-stats-fixtures.js';

const fixture = (name: string) => path.join(HOST_STATS_FIXTURES, name);

const scratch = mkdtempSync(path.join(os.tmpdir(), 'pifleet-host-stats-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let made = 0;
/** A copy of a fixture (or an empty root) with `files` written over it (`null` removes one). */
function rootWith(from: string | undefined, files: Record<string, string | null> = {}): string {
  const root = path.join(scratch, `root-${made++}`);
  if (from) cpSync(fixture(from), root, { recursive: true });
  else mkdirSync(root);
  for (const [rel, text] of Object.entries(files)) {
    const file = path.join(root, rel);
    if (text === null) rmSync(file, { recursive: true, force: true });
    else {
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, text);
    }
  }
  return root;
}

const MIB = 1024 * 1024;

describe('a Raspberry Pi 4', () => {
  it('reads every field from the real files', async () => {
    const s = await createLinuxHostStats({ root: fixture('pi4') }).sample();
    // /proc/stat's cpu line: busy = user+nice+system+irq+softirq+steal, total adds idle and iowait.
    expect(s.cpu).toEqual({
      busy: 412873 + 1021 + 98476 + 31562,
      total: 412873 + 1021 + 98476 + 31562 + 69441670 + 12398,
    });
    expect(s.processCpuTicks).toBe(2841 + 913);
    expect(s.processRssBytes).toBe(89060 * 1024);
    expect(s.memTotalBytes).toBe(3881580 * 1024);
    expect(s.memAvailableBytes).toBe(3380928 * 1024);
    expect(s.socTempMilliC).toBe(48686);
    expect(s.load).toEqual({ one: 0.31, five: 0.22, fifteen: 0.18 });
    expect(s.uptimeS).toBe(175012.37);
  });

  it('gives the CPU busy share between two samples a minute apart, the host and the agent', async () => {
    const before = await createLinuxHostStats({ root: fixture('pi4') }).sample();
    const after = await createLinuxHostStats({ root: fixture('pi4-60s-later') }).sample();
    // 4 cores × 60 s × 100 ticks = 24,000 ticks; 2,837 of them busy; the agent used 18.
    expect((after.cpu?.total ?? 0) - (before.cpu?.total ?? 0)).toBe(24_000);
    const health = buildHealth({ now: 1, previous: before, current: after, link: { reconnects: 0 } });
    expect(health.host?.cpuPct).toBe(12);
    expect(health.process?.cpuPct).toBe(0.1);
    // The second directory holds only the stat files: the rest is left out, not zero.
    expect(health.host?.memTotalMiB).toBeUndefined();
    expect(health.host?.tempC).toBeUndefined();
  });

  it('makes a health report the protocol accepts, rounded', async () => {
    const s = await createLinuxHostStats({ root: fixture('pi4') }).sample();
    const health = buildHealth({ now: 1_764_578_000_000, current: s, link: { reconnects: 0 } });
    expect(health.host).toEqual(PI4_HOST);
    // One sample: no CPU share yet (it takes two).
    expect(health.host?.cpuPct).toBeUndefined();
    expect(health.process).toEqual({ rssMiB: 87 });
    expect(validateHealthReport(health).ok).toBe(true);
  });
});

describe('a Raspberry Pi 5', () => {
  it('reads the cpu-thermal zone and ignores the fan, and RSS from kB whatever the page size', async () => {
    const s = await createLinuxHostStats({ root: fixture('pi5') }).sample();
    expect(s.socTempMilliC).toBe(51650);
    // The kernel_2712 image uses 16 KiB pages: statm would say 5,566 pages; status says kB.
    expect(s.processRssBytes).toBe(89056 * 1024);
    expect(Math.round((s.memTotalBytes ?? 0) / MIB)).toBe(8052);
    expect(s.load?.one).toBe(1.07);
    expect(s.uptimeS).toBe(12003.58);
  });
});

describe('thermal zones', () => {
  it('leaves the temperature out where there is no thermal zone (a VM, a container), the rest still read', async () => {
    const root = rootWith('pi4', { sys: null });
    const s = await createLinuxHostStats({ root }).sample();
    expect(s.socTempMilliC).toBeUndefined();
    expect(s).toHaveProperty('memTotalBytes');
    expect(s).toHaveProperty('cpu');
  });

  it('takes cpu-thermal wherever it is numbered, and the first zone that reads on a machine without one', async () => {
    const zones = (list: [string, string][]) =>
      Object.fromEntries(
        list.flatMap(([type, temp], i) => [
          [`sys/class/thermal/thermal_zone${i}/type`, `${type}\n`],
          [`sys/class/thermal/thermal_zone${i}/temp`, `${temp}\n`],
        ]),
      );
    const pi = rootWith(
      undefined,
      zones([
        ['gpu-thermal', '61000'],
        ['cpu-thermal', '57300'],
      ]),
    );
    expect((await createLinuxHostStats({ root: pi }).sample()).socTempMilliC).toBe(57300);
    // An x86 box: acpitz first; zone10 sorts after zone2 by number, not by text.
    const pc = rootWith(undefined, {
      ...zones([
        ['acpitz', '27800'],
        ['pch_skylake', '41500'],
        ['x86_pkg_temp', '45000'],
      ]),
      'sys/class/thermal/thermal_zone10/type': 'iwlwifi_1\n',
      'sys/class/thermal/thermal_zone10/temp': '39000\n',
    });
    expect((await createLinuxHostStats({ root: pc }).sample()).socTempMilliC).toBe(27800);
    // A zone whose sensor does not answer is skipped.
    const off = rootWith(
      undefined,
      zones([
        ['cpu-thermal', ''],
        ['soc-thermal', '44100'],
      ]),
    );
    expect((await createLinuxHostStats({ root: off }).sample()).socTempMilliC).toBe(44100);
  });
});

describe('missing and malformed files', () => {
  it('an empty root (not Linux): an empty sample, no throw', async () => {
    await expect(createLinuxHostStats({ root: rootWith(undefined) }).sample()).resolves.toEqual({});
  });

  it('a root that does not exist: an empty sample', async () => {
    await expect(createLinuxHostStats({ root: path.join(scratch, 'nowhere') }).sample()).resolves.toEqual({});
  });

  it.each([
    ['proc/stat', 'cpu  12 x 3 4\n', ['cpu']],
    ['proc/stat', 'intr 1 2 3\nctxt 9\n', ['cpu']],
    ['proc/stat', 'cpu  1 2\n', ['cpu']],
    ['proc/self/stat', '2410 (node) S 1 2410', ['processCpuTicks']],
    ['proc/self/stat', 'garbage without parentheses', ['processCpuTicks']],
    ['proc/self/status', 'Name:\tnode\nVmRSS:\tlots kB\n', ['processRssBytes']],
    ['proc/meminfo', 'MemTotal: 3881580\nMemFree: 1 kB\n', ['memTotalBytes', 'memAvailableBytes']],
    ['proc/loadavg', 'nan 0.1 0.2 1/2 3\n', ['load']],
    ['proc/loadavg', '0.31\n', ['load']],
    ['proc/uptime', '\n', ['uptimeS']],
    ['sys/class/thermal/thermal_zone0/temp', 'hot\n', ['socTempMilliC']],
  ])('%s holding %j: %j left out, the other fields still read', async (file, text, fields) => {
    const s = await createLinuxHostStats({ root: rootWith('pi4', { [file]: text }) }).sample();
    for (const field of fields) expect(s).not.toHaveProperty(field);
    // Everything else of the Pi 4 is still there.
    const full: Record<string, unknown> = { ...(await createLinuxHostStats({ root: fixture('pi4') }).sample()) };
    for (const field of fields) delete full[field];
    expect(s).toMatchObject(full);
    expect(Object.keys(full).length).toBeGreaterThan(5);
  });

  it('a meminfo without MemAvailable (kernels before 3.14) keeps MemTotal', async () => {
    const s = await createLinuxHostStats({
      root: rootWith('pi4', { 'proc/meminfo': 'MemTotal:        3881580 kB\nMemFree:         2709312 kB\n' }),
    }).sample();
    expect(s.memTotalBytes).toBe(3881580 * 1024);
    expect(s).not.toHaveProperty('memAvailableBytes');
  });

  it('a directory where a file should be costs that field only', async () => {
    const root = rootWith('pi4', { 'proc/uptime': null, 'proc/uptime/x': 'not a file\n' });
    const s = await createLinuxHostStats({ root }).sample();
    expect(s).not.toHaveProperty('uptimeS');
    expect(s.load?.one).toBe(0.31);
  });
});

describe('the parsers', () => {
  it('counts /proc/self/stat fields from the last parenthesis: a command name may hold spaces and parentheses', () => {
    const line = '77 (tsx (worker) 1) R 1 77 77 0 -1 4194560 100 0 0 0 41 9 0 0 20 0 7 0 1 2 3';
    expect(parseSelfStatCpuTicks(line)).toBe(50);
  });

  it('reads a /proc/stat from a kernel older than 2.6.33 (no steal, guest columns)', () => {
    expect(parseProcStatCpu('cpu  10 0 5 100\ncpu0 10 0 5 100\n')).toEqual({ busy: 15, total: 115 });
  });

  it('leaves guest time out of busy: the kernel already counts it in user', () => {
    expect(parseProcStatCpu('cpu  100 0 0 900 0 0 0 0 60 0\n')).toEqual({ busy: 100, total: 1000 });
  });

  it('matches a meminfo name exactly, not a longer one', () => {
    expect(kbField('Active(anon):  5 kB\nActive:  7 kB\n', 'Active')).toBe(7);
    expect(kbField('MemTotalX:  5 kB\n', 'MemTotal')).toBeUndefined();
  });

  it('rejects loadavg and uptime that are not numbers', () => {
    expect(parseLoadavg('-1 0 0 1/1 1')).toBeUndefined();
    expect(parseUptime('up 5 days')).toBeUndefined();
    expect(parseUptime('5.5 1.0')).toBe(5.5);
  });
});

describe.runIf(process.platform === 'linux')('this machine', () => {
  it("parses the running kernel's own /proc (the formats the fixtures copy)", async () => {
    const s = await createLinuxHostStats().sample();
    expect(s.cpu?.total).toBeGreaterThan(0);
    expect(s.processCpuTicks).toBeGreaterThanOrEqual(0);
    expect(s.processRssBytes).toBeGreaterThan(MIB);
    expect(s.memAvailableBytes).toBeLessThanOrEqual(s.memTotalBytes ?? 0);
    expect(s.uptimeS).toBeGreaterThan(0);
  });
});
