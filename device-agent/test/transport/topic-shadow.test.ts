import { shadowTopics } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMqttJsTransport } from '../../src/adapters/mqttjs.js';
import { createSystemClock } from '../../src/ports/clock.js';
import { createTopicShadowService } from '../../src/shadow/topic-shadow.js';
import { describeShadowClientContract } from './shadow-contract.js';
import { type ShadowBroker, startShadowBroker } from './shadow-responder.js';
import { waitFor } from './tls-broker.js';

/**
 * The topic shadow client (the classic shadow over its reserved topics on any Transport) over the
 * mqtt.js transport, against a broker that answers shadow requests the way IoT Core does. The
 * simulator runs it against the local IoT Core's real shadow service too.
 */
let fixture: ShadowBroker;
beforeAll(async () => {
  fixture = await startShadowBroker('pi-topic-shadow');
});
afterAll(() => fixture?.close());

async function connect(thing: string, requestTimeoutMs: number) {
  const transport = createMqttJsTransport({
    ...fixture.target(thing),
    reconnectMinMs: 100,
    reconnectMaxMs: 1_000,
  });
  const shadow = createTopicShadowService({
    transport,
    thingName: thing,
    requestTimeoutMs,
    clock: createSystemClock(),
  });
  const connected = waitFor('connected', (done) => transport.on('connected', () => done(undefined)));
  transport.start();
  await connected;
  return {
    transport,
    shadow,
    close: async () => {
      shadow.close();
      await transport.stop();
    },
  };
}

describeShadowClientContract('topic shadow over the mqtt.js transport', () => fixture.responder, connect);

describe('topic shadow over the mqtt.js transport', () => {
  it('fails a request in flight at once when the connection is lost, not after its timeout', async () => {
    fixture.responder.silent.add('ts-lost');
    const { transport, shadow, close } = await connect('ts-lost', 30_000);
    try {
      // Subscribed to the response topics and waiting for an answer that will not come.
      const pending = shadow.get().catch((e: unknown) => e);
      await waitFor('the request to be published', (done) => {
        const seen = (packet: { topic: string }) => {
          if (packet.topic !== shadowTopics('ts-lost').get) return;
          fixture.broker.aedes.off('publish', seen);
          done(undefined);
        };
        fixture.broker.aedes.on('publish', seen);
      });
      const lost = waitFor('interrupted', (done) => transport.on('interrupted', () => done(undefined)));
      const started = Date.now();
      fixture.broker.dropClients();
      await lost;
      expect(await pending).toMatchObject({ name: 'ShadowError', code: 'SHADOW_REQUEST_FAILED' });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await close();
    }
  });
});
