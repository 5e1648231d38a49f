import { type Issue, isValidThingName, type Validation } from '@pifleet/protocol';
import type { ConnectivityRecord } from '../../ports/telemetry-store.js';

/**
 * Turns one of IoT Core's lifecycle events (`$aws/events/presence/{connected|disconnected}/{clientId}`,
 * delivered by the presence rule as `SELECT *`) into a connectivity record. A device connects
 * with its thing name as client id (the recommended device policy requires it), so the client id
 * names the thing; a client id that cannot be a thing name (a console, a tool) is reported.
 */
export function connectivityFromPresenceEvent(event: unknown): Validation<ConnectivityRecord> {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    return { ok: false, issues: [{ path: '$', message: 'expected a presence event object' }] };
  }
  const e = event as Record<string, unknown>;
  const issues: Issue[] = [];
  const clientId = e.clientId;
  if (typeof clientId !== 'string' || !isValidThingName(clientId)) {
    issues.push({ path: 'clientId', message: 'must be a thing name (devices connect with their thing name)' });
  }
  const eventType = e.eventType;
  if (eventType !== 'connected' && eventType !== 'disconnected') {
    issues.push({ path: 'eventType', message: 'must be connected or disconnected' });
  }
  const timestamp = e.timestamp;
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0) {
    issues.push({ path: 'timestamp', message: 'must be milliseconds since the epoch' });
  }
  const optionalString = (key: string) => {
    const v = e[key];
    if (v !== undefined && typeof v !== 'string') issues.push({ path: key, message: 'must be a string' });
    return typeof v === 'string' ? v : undefined;
  };
  const versionNumber = e.versionNumber;
  if (versionNumber !== undefined && (typeof versionNumber !== 'number' || !Number.isSafeInteger(versionNumber))) {
    issues.push({ path: 'versionNumber', message: 'must be an integer' });
  }
  const clientInitiated = e.clientInitiatedDisconnect;
  if (clientInitiated !== undefined && typeof clientInitiated !== 'boolean') {
    issues.push({ path: 'clientInitiatedDisconnect', message: 'must be a boolean' });
  }
  const sessionIdentifier = optionalString('sessionIdentifier');
  const principalIdentifier = optionalString('principalIdentifier');
  const ipAddress = optionalString('ipAddress');
  const disconnectReason = optionalString('disconnectReason');
  if (issues.length > 0) return { ok: false, issues };

  const thingName = clientId as string;
  const type = eventType as 'connected' | 'disconnected';
  return {
    ok: true,
    value: {
      thingName,
      connected: type === 'connected',
      clientId: thingName,
      timestamp: timestamp as number,
      eventType: type,
      ...(typeof versionNumber === 'number' ? { versionNumber } : {}),
      ...(sessionIdentifier === undefined ? {} : { sessionIdentifier }),
      ...(principalIdentifier === undefined ? {} : { principalIdentifier }),
      ...(ipAddress === undefined ? {} : { ipAddress }),
      ...(type === 'disconnected' && disconnectReason !== undefined ? { disconnectReason } : {}),
      ...(type === 'disconnected' && typeof clientInitiated === 'boolean'
        ? { clientInitiatedDisconnect: clientInitiated }
        : {}),
    },
  };
}
