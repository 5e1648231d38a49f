/**
 * HostStats port: what the device and the agent's process use (CPU, memory, temperature, load,
 * uptime), read as raw counters. The adapter (`adapters/linux-host-stats.ts`) reads Linux's procfs
 * and sysfs; percentages between two samples are pure arithmetic in `core/health.ts`.
 *
 * Contract: `sample()` never rejects. A value the machine does not offer (no thermal zone, not
 * Linux) or that cannot be parsed is left out, so one malformed file costs one field, never the
 * sample.
 */

/** Cumulative CPU time, in the kernel's clock ticks (USER_HZ); only differences mean anything. */
export interface CpuTicks {
  /** Time spent on anything but idle and waiting for I/O, summed over every CPU. */
  readonly busy: number;
  /** All time, summed over every CPU (busy + idle + iowait). */
  readonly total: number;
}

export interface HostSample {
  /** The whole host since boot (`/proc/stat`'s `cpu` line). */
  readonly cpu?: CpuTicks;
  /** The agent's process since it started (user + system, `/proc/self/stat`), same ticks as `cpu`. */
  readonly processCpuTicks?: number;
  readonly processRssBytes?: number;
  readonly memTotalBytes?: number;
  readonly memAvailableBytes?: number;
  /** SoC temperature in millidegrees Celsius, as the kernel reports it. */
  readonly socTempMilliC?: number;
  readonly load?: { readonly one: number; readonly five: number; readonly fifteen: number };
  readonly uptimeS?: number;
}

export interface HostStats {
  sample(): Promise<HostSample>;
}
