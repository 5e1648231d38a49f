import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CpuTicks, HostSample, HostStats } from '../ports/host-stats.js';

/**
 * HostStats from Linux's procfs and sysfs: `/proc/stat`, `/proc/meminfo`, `/proc/loadavg`,
 * `/proc/uptime`, `/proc/self/stat`, `/proc/self/status` and `/sys/class/thermal/thermal_zone*`.
 *
 * `root` is where those paths start (default `/`), so tests read a directory of sample files in
 * the same formats. A file that is missing (macOS, a container without sysfs, a Pi without a
 * thermal zone) or malformed leaves its fields out; nothing here throws.
 */
export interface LinuxHostStatsOptions {
  readonly root?: string;
}

/** The thermal zone of the SoC on a Raspberry Pi (Pi 3, 4 and 5 alike); other machines name theirs otherwise. */
export const SOC_THERMAL_TYPE = 'cpu-thermal';

export function createLinuxHostStats(options: LinuxHostStatsOptions = {}): HostStats {
  const root = options.root ?? '/';
  const read = (...parts: string[]) => readFile(join(root, ...parts), 'utf8').catch(() => undefined);

  return {
    async sample() {
      const [stat, meminfo, loadavg, uptime, selfStat, selfStatus, temp] = await Promise.all([
        read('proc', 'stat'),
        read('proc', 'meminfo'),
        read('proc', 'loadavg'),
        read('proc', 'uptime'),
        read('proc', 'self', 'stat'),
        read('proc', 'self', 'status'),
        socTemperature(root),
      ]);
      const out: {
        -readonly [K in keyof HostSample]: HostSample[K];
      } = {};
      const cpu = stat === undefined ? undefined : parseProcStatCpu(stat);
      if (cpu) out.cpu = cpu;
      const processCpuTicks = selfStat === undefined ? undefined : parseSelfStatCpuTicks(selfStat);
      if (processCpuTicks !== undefined) out.processCpuTicks = processCpuTicks;
      const rssKb = selfStatus === undefined ? undefined : kbField(selfStatus, 'VmRSS');
      if (rssKb !== undefined) out.processRssBytes = rssKb * 1024;
      if (meminfo !== undefined) {
        const total = kbField(meminfo, 'MemTotal');
        const available = kbField(meminfo, 'MemAvailable');
        if (total !== undefined) out.memTotalBytes = total * 1024;
        if (available !== undefined) out.memAvailableBytes = available * 1024;
      }
      if (temp !== undefined) out.socTempMilliC = temp;
      const loads = loadavg === undefined ? undefined : parseLoadavg(loadavg);
      if (loads) out.load = loads;
      const up = uptime === undefined ? undefined : parseUptime(uptime);
      if (up !== undefined) out.uptimeS = up;
      return out;
    },
  };
}

const DECIMAL = /^\d+$/;
const FLOAT = /^\d+(?:\.\d+)?$/;

/**
 * The aggregate `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq steal guest
 * guest_nice. Busy is everything but idle and iowait; guest and guest_nice are left out because
 * the kernel already counts them in user and nice. Kernels before 2.6.33 write fewer columns: the
 * first four are required, the rest count as 0.
 */
export function parseProcStatCpu(text: string): CpuTicks | undefined {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return undefined;
  const fields = line.trim().split(/\s+/).slice(1, 9);
  if (fields.length < 4 || !fields.every((f) => DECIMAL.test(f))) return undefined;
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields.map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/**
 * utime + stime of `/proc/self/stat` (fields 14 and 15). The command name (field 2) is in
 * parentheses and may itself hold spaces and parentheses, so the fields are counted from the last
 * `)`: state is then the first.
 */
export function parseSelfStatCpuTicks(text: string): number | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const utime = rest[11];
  const stime = rest[12];
  if (utime === undefined || stime === undefined || !DECIMAL.test(utime) || !DECIMAL.test(stime)) return undefined;
  return Number(utime) + Number(stime);
}

/**
 * A `Name:   123 kB` line of `/proc/meminfo` or `/proc/self/status`, in kB. RSS is read here rather
 * than from `/proc/self/statm`, which counts pages: a Pi 5's kernel uses 16 KiB pages, a Pi 4's 4 KiB.
 */
export function kbField(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB\\s*$`, 'm').exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** `/proc/loadavg`: `0.52 0.58 0.59 1/389 12345`. */
export function parseLoadavg(text: string): HostSample['load'] {
  const [one, five, fifteen] = text.trim().split(/\s+/);
  if (one === undefined || five === undefined || fifteen === undefined) return undefined;
  if (![one, five, fifteen].every((f) => FLOAT.test(f))) return undefined;
  return { one: Number(one), five: Number(five), fifteen: Number(fifteen) };
}

/** `/proc/uptime`: seconds since boot, then idle seconds summed over the CPUs. */
export function parseUptime(text: string): number | undefined {
  const first = text.trim().split(/\s+/)[0];
  return first !== undefined && FLOAT.test(first) ? Number(first) : undefined;
}

/**
 * The SoC's temperature in millidegrees: the `cpu-thermal` zone when there is one (every Pi), else
 * the first zone that reads (lowest number; what a Pi-like board without that name most likely
 * has). No zone at all (a VM, most containers): undefined.
 */
async function socTemperature(root: string): Promise<number | undefined> {
  const base = join(root, 'sys', 'class', 'thermal');
  let entries: string[];
  try {
    entries = await readdir(base);
  } catch {
    return undefined;
  }
  const zones = entries
    .map((name) => /^thermal_zone(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map((m) => m[0]);
  const readZone = async (zone: string) => {
    const [type, temp] = await Promise.all([
      readFile(join(base, zone, 'type'), 'utf8').catch(() => undefined),
      readFile(join(base, zone, 'temp'), 'utf8').catch(() => undefined),
    ]);
    const t = temp?.trim();
    // A zone whose sensor is off answers EINVAL or ENODATA (the catch above), or nothing.
    return { type: type?.trim(), milliC: t !== undefined && /^-?\d+$/.test(t) ? Number(t) : undefined };
  };
  const read = await Promise.all(zones.map(readZone));
  const soc = read.find((z) => z.type === SOC_THERMAL_TYPE && z.milliC !== undefined);
  return (soc ?? read.find((z) => z.milliC !== undefined))?.milliC;
}
