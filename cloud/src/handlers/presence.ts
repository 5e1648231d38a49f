import { isValidThingName } from '@pifleet/protocol';
import { InvalidPresenceEventError } from '../core/telemetry/errors.js';
import { connectivityFromPresenceEvent } from '../core/telemetry/presence.js';
import type { Logger } from '../logger.js';
import type { TelemetryStore } from '../ports/telemetry-store.js';
import { lambdaLogger, lazyHandler, telemetryStoreFromEnv } from './aws-env.js';

/**
 * Presence handler: the presence rule's Lambda action (IoT Core lifecycle events) → the thing's
 * connectivity record. Events older than the stored one are ignored (they arrive out of order).
 * Clients whose id is not a thing name (consoles, tools) are skipped, not errors; a malformed
 * event throws {@link InvalidPresenceEventError} so it reaches the error path.
 */
export interface PresenceHandlerDeps {
  readonly store: TelemetryStore;
  readonly logger: Logger;
}

export type PresenceOutcome =
  | { readonly status: 'recorded' | 'stale'; readonly thingName: string; readonly connected: boolean }
  | { readonly status: 'skipped'; readonly clientId: string };

export type PresenceHandler = (event: unknown) => Promise<PresenceOutcome>;

export function createPresenceHandler(deps: PresenceHandlerDeps): PresenceHandler {
  const log = deps.logger.child({ component: 'presence' });
  return async (event) => {
    const clientId =
      typeof event === 'object' && event !== null ? (event as { clientId?: unknown }).clientId : undefined;
    if (typeof clientId === 'string' && clientId !== '' && !isValidThingName(clientId)) {
      log.debug({ clientId }, 'presence of a client that is not a thing skipped');
      return { status: 'skipped', clientId };
    }
    const parsed = connectivityFromPresenceEvent(event);
    if (!parsed.ok) {
      log.warn({ issues: parsed.issues }, 'presence event rejected');
      throw new InvalidPresenceEventError(parsed.issues);
    }
    const record = parsed.value;
    const { applied } = await deps.store.putConnectivity(record);
    log.debug({ thingName: record.thingName, eventType: record.eventType, applied }, 'presence recorded');
    return { status: applied ? 'recorded' : 'stale', thingName: record.thingName, connected: record.connected };
  };
}

/** AWS Lambda entry point: DynamoDB store from `TABLE_NAME`, built on the first invocation. */
export const handler: PresenceHandler = lazyHandler(() =>
  createPresenceHandler({ store: telemetryStoreFromEnv(process.env), logger: lambdaLogger('presence', process.env) }),
);
