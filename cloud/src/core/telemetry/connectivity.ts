import type { ConnectivityRecord } from '../../ports/telemetry-store.js';

/**
 * Presence events can arrive out of order (IoT Core delivers them at least once, and a quick
 * reconnect races the old session's disconnect). A stored record is replaced only by an event
 * that is not older: a later `timestamp`, or the same timestamp and a `versionNumber` at least as
 * high. Every store applies this rule.
 */
export function supersedes(incoming: ConnectivityRecord, stored: ConnectivityRecord | undefined): boolean {
  if (stored === undefined) return true;
  if (incoming.timestamp !== stored.timestamp) return incoming.timestamp > stored.timestamp;
  return (incoming.versionNumber ?? 0) >= (stored.versionNumber ?? 0);
}
