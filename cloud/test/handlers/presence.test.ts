import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteTelemetryStore } from '../../src/adapters/sqlite-telemetry-store.js';
import { compileRule } from '../../src/core/iotsql/index.js';
import { InvalidPresenceEventError } from '../../src/core/telemetry/errors.js';
import { createPresenceHandler, type PresenceHandler } from '../../src/handlers/presence.js';
import { silentLogger } from '../../src/logger.js';
import type { ManagedTelemetryStore } from '../../src/ports/telemetry-store.js';
import { RULES } from '../../src/rules/definitions.js';

const presenceRule = compileRule(RULES.find((r) => r.name === 'pifleet_presence')?.sql ?? '');

/** What the presence rule delivers for an IoT Core lifecycle event. */
function ruleEvent(eventType: 'connected' | 'disconnected', event: Record<string, unknown>): unknown {
  const result = presenceRule.evaluate({
    topic: `$aws/events/presence/${eventType}/${String(event.clientId)}`,
    payload: JSON.stringify({ eventType, ...event }),
  });
  if (!result.matched) throw new Error('presence rule did not match');
  return result.output;
}

const T0 = 1_700_000_000_000;
let store: ManagedTelemetryStore;
let handle: PresenceHandler;
beforeEach(async () => {
  store = createSqliteTelemetryStore({ file: ':memory:' });
  await store.start();
  handle = createPresenceHandler({ store, logger: silentLogger() });
});
afterEach(async () => {
  await store.stop();
});

describe('presence handler', () => {
  it('records connect and disconnect as IoT Core reports them', async () => {
    const session = { clientId: 'pi-01', sessionIdentifier: 's1', principalIdentifier: 'abc', versionNumber: 1 };
    await expect(
      handle(ruleEvent('connected', { ...session, timestamp: T0, ipAddress: '127.0.0.1' })),
    ).resolves.toEqual({ status: 'recorded', thingName: 'pi-01', connected: true });
    expect(await store.getConnectivity('pi-01')).toEqual({
      thingName: 'pi-01',
      connected: true,
      clientId: 'pi-01',
      timestamp: T0,
      eventType: 'connected',
      versionNumber: 1,
      sessionIdentifier: 's1',
      principalIdentifier: 'abc',
      ipAddress: '127.0.0.1',
    });
    await handle(
      ruleEvent('disconnected', {
        ...session,
        timestamp: T0 + 5000,
        clientInitiatedDisconnect: false,
        disconnectReason: 'MQTT_KEEP_ALIVE_TIMEOUT',
      }),
    );
    expect(await store.getConnectivity('pi-01')).toMatchObject({
      connected: false,
      disconnectReason: 'MQTT_KEEP_ALIVE_TIMEOUT',
      clientInitiatedDisconnect: false,
    });
  });

  it('keeps the newer state when the old session disconnect arrives after the reconnect', async () => {
    await handle(ruleEvent('connected', { clientId: 'pi-01', timestamp: T0 + 10, versionNumber: 2 }));
    await expect(
      handle(
        ruleEvent('disconnected', {
          clientId: 'pi-01',
          timestamp: T0,
          versionNumber: 1,
          disconnectReason: 'DUPLICATE_CLIENTID',
        }),
      ),
    ).resolves.toEqual({ status: 'stale', thingName: 'pi-01', connected: false });
    expect(await store.getConnectivity('pi-01')).toMatchObject({ connected: true, versionNumber: 2 });
  });

  it('skips clients that are not things', async () => {
    await expect(handle(ruleEvent('connected', { clientId: 'console ops-1', timestamp: T0 }))).resolves.toEqual({
      status: 'skipped',
      clientId: 'console ops-1',
    });
    expect(await store.getConnectivity('console ops-1')).toBeUndefined();
  });

  it.each([
    ['no event type', { clientId: 'pi-01', timestamp: T0 }, ['eventType']],
    ['a string timestamp', { clientId: 'pi-01', eventType: 'connected', timestamp: 'now' }, ['timestamp']],
    ['no client id', { eventType: 'connected', timestamp: T0 }, ['clientId']],
    [
      'a bad version',
      { clientId: 'pi-01', eventType: 'connected', timestamp: T0, versionNumber: 'x' },
      ['versionNumber'],
    ],
    ['not an object', 'connected', ['$']],
  ])('rejects an event with %s', async (_label, event, paths) => {
    const err = await handle(event).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidPresenceEventError);
    expect((err as InvalidPresenceEventError).issues.map((i) => i.path)).toEqual(paths);
  });
});
