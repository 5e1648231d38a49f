import {
  consoleFeedFilters,
  decodeTelemetryBatch,
  isValidThingName,
  parseAppTopic,
  parsePresenceTopic,
  parseShadowTopic,
} from '@pifleet/protocol';
import { isJsonObject } from '../core/shadow/json.js';
import type { Logger } from '../logger.js';
import type { ConsoleBackend, ConsoleMessage } from './backend.js';
import type { ThingCatalog } from './catalog.js';
import type { SseHub } from './sse.js';
import { parseOutsideJson } from './wire.js';

/**
 * The console's live feed: what crosses the broker's in-process bus (presence, telemetry, shadow
 * documents, alerts) updates the fleet picture and goes out on the event streams — a followed
 * thing's readings, shadow and alerts at once, fleet summaries coalesced every `flushMs`.
 */

export interface LiveFeedDeps {
  readonly bus: Pick<ConsoleBackend, 'subscribe' | 'session'>;
  readonly catalog: ThingCatalog;
  readonly hub: SseHub;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  readonly log: Logger;
  /** Fleet summaries are sent at most this often. */
  readonly flushMs: number;
}

export interface LiveFeed {
  /** Subscribes to the bus. */
  start(): Promise<void>;
  /** Unsubscribes; nothing is sent after it. */
  stop(): Promise<void>;
}

const MAX_ALERT_BYTES = 16 * 1024;

export function createLiveFeed(deps: LiveFeedDeps): LiveFeed {
  const { bus, catalog, hub, now, log, flushMs } = deps;
  const { fleet, known } = catalog;
  let unsubscribes: Array<() => Promise<void>> = [];
  let flushTimer: NodeJS.Timeout | undefined;
  let running = false;
  /** Things whose shadow is being read for their followers, and whether another read is due after. */
  const shadowReads = new Map<string, boolean>();

  function scheduleFlush(): void {
    if (flushTimer !== undefined || !running) return;
    flushTimer = setTimeout(() => {
      flushTimer = undefined;
      // Summaries are built only for someone: all of them for a fleet view, else the followed things'.
      const changed = hub.fleetClients > 0 ? fleet.takeDirty() : fleet.takeDirty(hub.watched());
      if (changed.length === 0) return;
      hub.toFleet('things', changed);
      for (const s of changed) hub.toThing(s.thingName, 'summary', s);
    }, flushMs);
    flushTimer.unref();
  }

  /** Sends the thing's whole shadow document to its followers; coalesces bursts of updates. */
  function pushShadow(thingName: string): void {
    if (shadowReads.has(thingName)) {
      shadowReads.set(thingName, true);
      return;
    }
    shadowReads.set(thingName, false);
    catalog
      .readShadow(thingName)
      .then((doc) => hub.toThing(thingName, 'shadow', { thingName, document: doc, at: now() }))
      .catch((err: unknown) => log.warn({ err, thingName }, 'shadow not read for the console'))
      .finally(() => {
        const again = shadowReads.get(thingName) === true;
        shadowReads.delete(thingName);
        if (again && running) pushShadow(thingName);
      });
  }

  function onPresence(message: ConsoleMessage): void {
    const parsed = parsePresenceTopic(message.topic);
    if (parsed === undefined) return;
    const session = bus.session?.(parsed.clientId);
    const thingName = session?.thingName ?? parsed.clientId;
    if (!isValidThingName(thingName) || !known(thingName)) return;
    const event = parseOutsideJson(message.payload);
    const at = isJsonObject(event) && typeof event.timestamp === 'number' ? event.timestamp : now();
    const reason =
      isJsonObject(event) && typeof event.disconnectReason === 'string' ? event.disconnectReason : undefined;
    const connected = parsed.eventType === 'connected';
    const current = fleet.summary(thingName);
    // A late disconnect of an older session must not mark a reconnected thing offline: the local
    // core knows the session connected now; elsewhere the events' own times order them.
    if (!connected && current?.connected && session !== undefined) return;
    if (!connected && current?.connected && (reason === 'DUPLICATE_CLIENTID' || (current.presenceAt ?? 0) > at)) return;
    // The session that is connected now (presence events carry no protocol).
    const protocol = connected ? (session?.protocol ?? null) : null;
    fleet.presence(thingName, connected, at, reason, protocol ?? undefined);
    const update = { thingName, connected, at, reason: reason ?? null, protocol };
    hub.toFleet('presence', update);
    hub.toThing(thingName, 'presence', update);
    scheduleFlush();
  }

  function onTelemetry(message: ConsoleMessage): void {
    const topic = parseAppTopic(message.topic);
    if (topic === undefined || !known(topic.thingName)) return;
    const decoded = decodeTelemetryBatch(message.payload);
    if (!decoded.ok || decoded.value.thingName !== topic.thingName) return;
    fleet.telemetry(topic.thingName, decoded.value, now());
    hub.toThing(topic.thingName, 'telemetry', { thingName: topic.thingName, readings: decoded.value.readings });
    scheduleFlush();
  }

  function onAlert(message: ConsoleMessage): void {
    const topic = parseAppTopic(message.topic);
    if (topic === undefined || message.payload.length > MAX_ALERT_BYTES || !known(topic.thingName)) return;
    const alert = parseOutsideJson(message.payload);
    if (alert === undefined) return;
    const at = now();
    fleet.alert(topic.thingName, alert, at);
    hub.toThing(topic.thingName, 'alert', { thingName: topic.thingName, alert: { receivedAt: at, alert } });
    scheduleFlush();
  }

  function onShadow(message: ConsoleMessage): void {
    const parsed = parseShadowTopic(message.topic);
    if (parsed === undefined || parsed.shadowName !== undefined || !known(parsed.thingName)) return;
    if (parsed.operation === 'delete' && parsed.response === 'accepted') {
      fleet.shadowDeleted(parsed.thingName);
    } else if (parsed.operation === 'update' && parsed.response === 'documents') {
      const event = parseOutsideJson(message.payload);
      if (!isJsonObject(event) || !isJsonObject(event.current)) return;
      const current = event.current;
      const version = typeof current.version === 'number' ? current.version : 0;
      const timestamp = typeof event.timestamp === 'number' ? event.timestamp : Math.floor(now() / 1000);
      fleet.shadow(parsed.thingName, { version, timestamp, state: current.state }, now());
    } else {
      return;
    }
    if (hub.watched().has(parsed.thingName)) pushShadow(parsed.thingName);
    scheduleFlush();
  }

  return {
    async start() {
      running = true;
      try {
        const subscribe = (filter: string, handler: (m: ConsoleMessage) => void) =>
          bus.subscribe(filter, (m) => {
            if (running) handler(m);
          });
        unsubscribes = await Promise.all([
          subscribe(consoleFeedFilters.presence, onPresence),
          subscribe(consoleFeedFilters.telemetry, onTelemetry),
          subscribe(consoleFeedFilters.alerts, onAlert),
          subscribe(consoleFeedFilters.shadowDocuments, onShadow),
          subscribe(consoleFeedFilters.shadowDeleted, onShadow),
        ]);
      } catch (err) {
        running = false;
        throw err;
      }
    },

    async stop() {
      running = false;
      if (flushTimer !== undefined) clearTimeout(flushTimer);
      flushTimer = undefined;
      const steps = unsubscribes;
      unsubscribes = [];
      await Promise.all(steps.map((u) => u().catch((err: unknown) => log.warn({ err }, 'console unsubscribe failed'))));
    },
  };
}
