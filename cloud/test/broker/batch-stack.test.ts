/**
 * Regression: `RangeError: Maximum call stack size exceeded` under load.
 *
 * aedes hands every message to mqemitter, which runs at most 100 (aedes's `concurrency`) at a
 * time and queues the rest. When a running message completes, mqemitter starts the next queued
 * one from inside that completion callback; if that one completes synchronously too (no
 * listener, or only synchronous ones such as a sync bus subscriber), its completion — aedes's
 * `published` hook, the publishing client's `nextBatch`, and mqemitter's `released` — starts the
 * next one, and so on: the stack grows by a dozen frames per queued message. An in-process
 * subscriber under backpressure (a handler returning a promise) fills the 100 slots, thousands
 * of messages from MQTT clients queue behind it, and the process died when it caught up.
 */
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { until } from '@pifleet/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, createBroker } from '../../src/broker/index.js';
import {
  ACCOUNT,
  createTestPki,
  type IssuedCertificate,
  MemoryIdentities,
  remainingLength,
  type TestPki,
  within,
} from './fixtures.js';

/** aedes's default mqemitter concurrency: messages in flight before the rest queue. */
const CONCURRENCY = 100;

// ---- a minimal MQTT 3.1.1 encoder, so a test controls exactly what one write carries ----------

const varint = (n: number): Buffer => Buffer.from(remainingLength(n));

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

const packet = (firstByte: number, body: Buffer) =>
  Buffer.concat([Buffer.from([firstByte]), varint(body.length), body]);
/** CONNECT, clean session, keepalive 60 s. */
const connectPacket = (clientId: string) =>
  packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 0x02, 0, 60]), str(clientId)]));
/** PUBLISH at QoS 0. */
const publishPacket = (topic: string, payload: Buffer) => packet(0x30, Buffer.concat([str(topic), payload]));
const PINGREQ = Buffer.from([0xc0, 0]);

/** A gate an in-process subscriber waits on, to hold the broker's in-flight slots. */
class Gate {
  #open!: () => void;
  readonly opened = new Promise<void>((resolve) => {
    this.#open = resolve;
  });
  open(): void {
    this.#open();
  }
}

describe('broker with thousands of messages queued behind a slow in-process subscriber', () => {
  let pki: TestPki;
  let identities: MemoryIdentities;
  let cert: IssuedCertificate;
  let broker: Broker;
  let port: number;
  let gate = new Gate();
  let slow = 0;
  let fast = 0;
  let onFast: (() => void) | undefined;
  const sockets: TLSSocket[] = [];
  const unhandled: unknown[] = [];
  let onCrash: ((err: unknown) => void) | undefined;
  // Before the fix the overflow surfaced as an unhandled rejection (thrown inside the slow
  // subscriber's promise callback), which would have ended a production process.
  const onUnhandled = (err: unknown) => {
    unhandled.push(err);
    onCrash?.(err);
  };

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    pki = await createTestPki();
    identities = new MemoryIdentities();
    cert = await pki.issue('burst-thing');
    identities.put(cert.certificateId, {
      thingNames: ['burst-thing'],
      policies: [
        {
          name: 'allow-all',
          document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'iot:*', Resource: '*' }] },
        },
      ],
    });
    broker = createBroker({ identities, tls: pki.serverTls, host: '127.0.0.1', port: 0, account: ACCOUNT });
    ({ port } = await broker.start());
    // Backpressure: the next message for this subscriber waits for the promise.
    await broker.bus.subscribe('slow/#', async () => {
      await gate.opened;
      slow++;
    });
    // A synchronous subscriber, like the rules engine's fast path.
    await broker.bus.subscribe('burst/#', () => {
      fast++;
      onFast?.();
    });
  });

  afterEach(() => {
    for (const s of sockets.splice(0)) s.destroy();
    gate.open();
    onFast = undefined;
    onCrash = undefined;
  });

  afterAll(async () => {
    await broker?.stop();
    process.off('unhandledRejection', onUnhandled);
  });

  /** A raw mutual-TLS MQTT connection, CONNECTed (CONNACK accepted). */
  async function mqttConnection(clientId: string): Promise<TLSSocket> {
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: pki.caCertPem, cert: cert.certPem, key: cert.keyPem });
      s.once('secureConnect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
    sockets.push(socket);
    socket.on('error', () => {});
    const connack = new Promise<Buffer>((resolve) => socket.once('data', resolve));
    socket.write(connectPacket(clientId));
    const ack = await within(connack, 5_000, 'CONNACK');
    expect([...ack.subarray(0, 4)]).toEqual([0x20, 2, 0, 0]);
    return socket;
  }

  const queued = () => broker.queuedMessages();
  const payload = Buffer.from('{"t":1}');

  it.each<[string, number, number]>([
    // Each connection's burst fits one TLS record, so it arrives as one read and aedes
    // dispatches all of it at once.
    ['from MQTT clients, each writing its burst in one socket write', 12, 600],
    ['from in-process publishes', 1, 7_200],
  ])('delivers every message once the slow subscriber catches up: %s', async (source, senders, perSender) => {
    gate = new Gate();
    slow = 0;
    fast = 0;
    unhandled.length = 0;
    const total = senders * perSender;
    const all = new Promise<void>((resolve, reject) => {
      onFast = () => {
        if (fast >= total) resolve();
      };
      onCrash = reject;
    });

    const connections = source.startsWith('from MQTT')
      ? await Promise.all(Array.from({ length: senders }, (_, i) => mqttConnection(`burst-${i}`)))
      : [];
    // Fill every in-flight slot with messages the slow subscriber holds.
    const held = Array.from({ length: CONCURRENCY }, (_, i) => broker.bus.publish(`slow/${i}`, payload));
    if (connections.length > 0) {
      const burst = Buffer.concat(Array.from({ length: perSender }, () => publishPacket('burst/x', payload)));
      expect(burst.length).toBeLessThan(16_384);
      for (const socket of connections) socket.write(burst);
    } else {
      for (let i = 0; i < total; i++) void broker.bus.publish('burst/x', payload);
    }
    await until(() => queued() >= total, {
      within: 10_000,
      what: `${total} messages queued behind the slow subscriber`,
      step: 5,
    });
    expect(fast).toBe(0);

    gate.open();
    await within(all, 10_000, `${total} burst messages delivered`);
    await within(Promise.all(held), 10_000, 'slow subscriber caught up');
    expect(unhandled).toEqual([]);
    expect({ slow, fast }).toEqual({ slow: CONCURRENCY, fast: total });
    expect(queued()).toBe(0);

    // The publishing connections are still served.
    for (const socket of connections) {
      const pingresp = new Promise<Buffer>((resolve) => {
        const onData = (b: Buffer) => {
          if (b.includes(Buffer.from([0xd0, 0]))) {
            socket.off('data', onData);
            resolve(b);
          }
        };
        socket.on('data', onData);
      });
      socket.write(PINGREQ);
      await within(pingresp, 5_000, 'PINGRESP');
    }
  });
});
