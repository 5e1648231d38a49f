/**
 * The Transport port's contract, run against an adapter over aedes on mutual TLS: PUBACK-gated
 * publish, retried first connect, reconnect with re-subscribe, last will on loss and not on stop.
 * Both adapters run it: the device SDK's (`aws-iot-sdk.test.ts`) and mqtt.js's (`mqttjs.test.ts`).
 */
import type { PublishPacket } from 'aedes';
import { describe, expect, it } from 'vitest';
import type { Transport, TransportEvents } from '../../src/ports/transport.js';
import { freePort, startTlsBroker, type TestPki, waitFor } from './tls-broker.js';

/** The connection options every adapter under the contract gets: the fixture PKI, short backoffs, an optional retained will. */
export function contractOptions(pki: TestPki, port: number, clientId: string, extra: { will?: boolean } = {}) {
  return {
    endpoint: 'localhost',
    port,
    clientId,
    certFile: pki.certFile,
    keyFile: pki.keyFile,
    caFile: pki.caFile,
    keepAliveS: 30,
    reconnectMinMs: 100,
    reconnectMaxMs: 1_000,
    connectTimeoutMs: 3_000,
    ...(extra.will
      ? { will: { topic: `pifleet/${clientId}/status`, payload: '{"state":"offline"}', qos: 1, retain: true } as const }
      : {}),
  };
}

export type MakeTransport = (port: number, clientId: string, extra?: { will?: boolean }) => Transport;

const nextEvent = <E extends keyof TransportEvents>(t: Transport, e: E, ms = 15_000) =>
  waitFor<TransportEvents[E]>(
    `transport ${e}`,
    (done) => {
      const off = t.on(e, (d) => {
        off();
        done(d);
      });
    },
    ms,
  );

export function describeTransportContract(name: string, pki: () => TestPki, make: MakeTransport): void {
  describe(`${name}, MQTT 3.1.1, against aedes over mutual TLS`, () => {
    it('connects, and publish resolves only when the broker acknowledges (PUBACK)', async () => {
      let onTelemetry: ((packet: PublishPacket, cb: (err: Error | null) => void) => void) | undefined;
      const broker = await startTlsBroker(pki(), 0, {
        authorizePublish: (_client, packet, cb) => {
          if (packet.topic === 'pifleet/pi-a/telemetry' && onTelemetry) onTelemetry(packet, cb);
          else cb(null);
        },
      });
      const held = waitFor<{ packet: PublishPacket; release: () => void }>('broker to receive', (done) => {
        onTelemetry = (packet, cb) => done({ packet, release: () => cb(null) });
      });
      const t = make(broker.port, 'pi-a');
      const connected = nextEvent(t, 'connected');
      t.start();
      expect(await connected).toEqual({ sessionPresent: false, first: true });
      let settled = false;
      const pub = t.publish('pifleet/pi-a/telemetry', '{"v":1}', { qos: 1 }).finally(() => {
        settled = true;
      });
      const { packet, release } = await held;
      expect(packet.payload.toString()).toBe('{"v":1}');
      await new Promise((r) => setImmediate(r));
      // The broker holds the PUBACK until authorizePublish answers: the publish must still be pending.
      expect(settled).toBe(false);
      release();
      await pub;
      expect(settled).toBe(true);
      await t.stop();
      await broker.close();
    });

    it('keeps retrying when the very first connect fails, then connects once the broker is up', async () => {
      const port = await freePort();
      const t = make(port, 'pi-b');
      const failed = nextEvent(t, 'connectFailed');
      t.start();
      const f = await failed;
      expect(f.attempt).toBe(1);
      const second = await nextEvent(t, 'connectFailed');
      expect(second.attempt).toBe(2);
      const connected = nextEvent(t, 'connected');
      const broker = await startTlsBroker(pki(), port);
      expect((await connected).first).toBe(true);
      await t.publish('pifleet/pi-b/telemetry', 'x', { qos: 1 });
      await t.stop();
      await broker.close();
    });

    it('reconnects after the broker restarts and re-subscribes', async () => {
      let broker = await startTlsBroker(pki());
      const port = broker.port;
      const t = make(port, 'pi-c');
      const got: string[] = [];
      const connected = nextEvent(t, 'connected');
      t.start();
      await connected;
      await t.subscribe('pifleet/pi-c/commands', 1, (_topic, payload) => got.push(Buffer.from(payload).toString()));
      const interrupted = nextEvent(t, 'interrupted');
      await broker.close();
      await interrupted;
      expect(t.isConnected).toBe(false);
      const reconnected = nextEvent(t, 'connected');
      broker = await startTlsBroker(pki(), port);
      expect((await reconnected).first).toBe(false);
      // The new broker knows nothing: delivery proves the transport subscribed again.
      const delivered = waitFor<void>('command delivery', (done) => {
        const poll = () => {
          if (got.length > 0) done();
          else {
            broker.aedes.publish(
              {
                cmd: 'publish',
                topic: 'pifleet/pi-c/commands',
                payload: Buffer.from('reboot'),
                qos: 0,
                retain: false,
                dup: false,
              },
              () => {},
            );
            setTimeout(poll, 50);
          }
        };
        poll();
      });
      await delivered;
      expect(got[0]).toBe('reboot');
      await t.publish('pifleet/pi-c/telemetry', 'after-restart', { qos: 1 });
      await t.stop();
      await broker.close();
    });

    it('leaves a retained last will that the broker publishes when the connection is lost, not on stop()', async () => {
      const broker = await startTlsBroker(pki());
      const wills: PublishPacket[] = [];
      broker.aedes.on('publish', (packet) => {
        if (packet.topic === 'pifleet/pi-d/status') wills.push(packet);
      });
      const t = make(broker.port, 'pi-d', { will: true });
      const connected = nextEvent(t, 'connected');
      t.start();
      await connected;
      const willSeen = waitFor<PublishPacket>('last will', (done) => {
        broker.aedes.on('publish', (p) => {
          if (p.topic === 'pifleet/pi-d/status') done(p);
        });
      });
      const back = nextEvent(t, 'connected');
      broker.dropClients();
      const will = await willSeen;
      expect(will.payload.toString()).toBe('{"state":"offline"}');
      expect(will.retain).toBe(true);
      await back;
      const before = wills.length;
      await t.stop();
      // A clean stop sends DISCONNECT: the broker must not publish the will again.
      await waitFor<void>('client gone', (done) => {
        const check = () => (broker.aedes.connectedClients === 0 ? done() : setTimeout(check, 20));
        check();
      });
      expect(wills.length).toBe(before);
      await expect(t.publish('x/y', 'z', { qos: 1 })).rejects.toMatchObject({ code: 'NOT_STARTED' });
      await broker.close();
    });
  });
}
