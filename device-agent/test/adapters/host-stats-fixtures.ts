import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HealthReport } from '@pifleet/protocol';

/** Directories of sample /proc and /sys files in the kernel's formats, one per machine. */
export const HOST_STATS_FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/host-stats');

/** A Raspberry Pi 4 (4 GB, Raspberry Pi OS Bookworm). */
export const PI4_FILES = path.join(HOST_STATS_FIXTURES, 'pi4');

/** What {@link PI4_FILES} say, as `reported.health.host` carries it; the CPU share takes two samples. */
export const PI4_HOST = {
  load1: 0.31,
  load5: 0.22,
  load15: 0.18,
  memTotalMiB: 3791,
  memAvailableMiB: 3302,
  tempC: 49,
  uptimeS: 175012,
} as const satisfies NonNullable<HealthReport['host']>;
