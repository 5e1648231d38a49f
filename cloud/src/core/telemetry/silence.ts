import type { ConnectivityRecord, LatestValue } from '../../ports/telemetry-store.js';

/**
 * Which things have gone silent: the pure half of the silent-devices check
 * (`handlers/silent-devices.ts` pages the fleet and asks the store; this decides).
 *
 * A thing is silent when it has been quiet for longer than the threshold:
 * - disconnected: since its disconnect (the connectivity record's time);
 * - connected, a hung agent: since the later of its connect and its newest stored reading. The
 *   connect counts so that a thing back from a long outage gets a whole threshold to send its
 *   first batch before it is called hung.
 *
 * A reading's time is the agent's sample time; a thing whose clock lags by more than the threshold
 * looks silent, which is worth a look too. Times after `now` (a clock ahead of ours) are never
 * silent. Exactly the threshold is not yet silent: "longer than".
 */
export type SilenceReason = 'disconnected' | 'no-telemetry';

export type SilenceVerdict =
  | { readonly silent: false }
  | {
      readonly silent: true;
      readonly reason: SilenceReason;
      /** When the thing went quiet, ms since the epoch. */
      readonly since: number;
      readonly silentForMs: number;
    };

/** The answer from a connectivity record alone, or `needs-telemetry` when its newest reading decides. */
export type ConnectivityVerdict = SilenceVerdict | 'needs-telemetry';

const live: SilenceVerdict = { silent: false };

function quietSince(since: number, reason: SilenceReason, now: number, thresholdMs: number): SilenceVerdict {
  const silentForMs = now - since;
  return silentForMs > thresholdMs ? { silent: true, reason, since, silentForMs } : live;
}

/**
 * Decides from the record alone where it can: a disconnected thing by its disconnect time, a thing
 * connected for no longer than the threshold is live whatever its readings. Only a thing connected
 * for longer needs its newest reading ({@link silenceFromTelemetry}), so the check asks the store
 * about those things only.
 */
export function silenceFromConnectivity(
  record: ConnectivityRecord,
  now: number,
  thresholdMs: number,
): ConnectivityVerdict {
  if (!record.connected) return quietSince(record.timestamp, 'disconnected', now, thresholdMs);
  return now - record.timestamp > thresholdMs ? 'needs-telemetry' : live;
}

/** A connected thing's verdict from its newest reading's time (undefined: it has stored none). */
export function silenceFromTelemetry(
  record: ConnectivityRecord,
  lastReadingAt: number | undefined,
  now: number,
  thresholdMs: number,
): SilenceVerdict {
  if (!record.connected) return quietSince(record.timestamp, 'disconnected', now, thresholdMs);
  const since = lastReadingAt === undefined ? record.timestamp : Math.max(record.timestamp, lastReadingAt);
  return quietSince(since, 'no-telemetry', now, thresholdMs);
}

/** Time of a thing's newest reading: the newest of its latest values (undefined when it has none). */
export function lastReadingTime(latest: readonly LatestValue[]): number | undefined {
  let newest: number | undefined;
  for (const value of latest) if (newest === undefined || value.ts > newest) newest = value.ts;
  return newest;
}
