/**
 * How long a device may be quiet before it counts as silent: the one setting the console's flag
 * (`pifleet console --silent-after`), the silent-devices check (`SILENT_AFTER_MINUTES`, the local
 * core's schedule) and the CDK stack (`pifleet:silentAfterMinutes`) share, with its bounds.
 */
export const SILENT_AFTER_MINUTES = {
  default: 15,
  /** A week: beyond that a "silent" thing is a decommissioned one, not an alarm. */
  max: 10_080,
} as const;

/** The default threshold in milliseconds (what every user of the setting falls back to). */
export const DEFAULT_SILENT_AFTER_MS = SILENT_AFTER_MINUTES.default * 60_000;

/** A threshold in minutes (fractions allowed) as milliseconds; undefined outside 0 < minutes ≤ a week. */
export function silentAfterMs(minutes: number): number | undefined {
  if (!(Number.isFinite(minutes) && minutes > 0 && minutes <= SILENT_AFTER_MINUTES.max)) return undefined;
  return Math.round(minutes * 60_000);
}
