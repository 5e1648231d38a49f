import tls from 'node:tls';
import { LIMITS, presenceTopics } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, type BusMessage, createBroker } from '../../src/broker/index.js';
import { MAX_PACKET_REMAINING_LENGTH } from '../../src/broker/packet-guard.js';
import {
  ACCOUNT,
  createTestPki,
  type IssuedCertificate,
  MemoryIdentities,
  recommended,
  remainingLength,
  type TestPki,
} from './fixtures.js';

/**
 * An MQTT packet declaring more than the broker accepts is refused from its fixed header: the
 * connection closes after a few bytes instead of the broker buffering what the header promised.
 * Raw TLS sockets, so the test controls every byte.
 */

/** MQTT 3.1.1 CONNECT, clean session, keepalive 60 s. */
function connectPacket(clientId: string): Buffer {
  const id = Buffer.from(clientId, 'utf8');
  const body = Buffer.concat([
    Buffer.from([0x00, 0x04, ...Buffer.from('MQTT'), 0x04, 0x02, 0x00, 0x3c]),
    Buffer.from([id.length >> 8, id.length & 0xff]),
    id,
  ]);
  return Buffer.concat([Buffer.from([0x10, ...remainingLength(body.length)]), body]);
}

const DECLARED = 200 * 1024 * 1024;
const TRICKLE_CHUNK = 1024;
const TRICKLE_EVERY_MS = 5;
/** Long enough that a broker reading on would visibly keep the connection open. */
const PATIENCE_MS = 5_000;

interface Trickle {
  /** Bytes written before the connection closed. */
  readonly written: number;
  readonly closedAfterMs: number;
}

/**
 * Writes `first`, then a kilobyte every few milliseconds, until the broker closes the connection;
 * rejects if it is still open after PATIENCE_MS.
 */
function trickleUntilClosed(socket: tls.TLSSocket, first: Buffer): Promise<Trickle> {
  const started = Date.now();
  let written = 0;
  return new Promise<Trickle>((resolve, reject) => {
    const write = (chunk: Buffer) => {
      if (socket.destroyed || !socket.writable) return;
      socket.write(chunk);
      written += chunk.length;
    };
    const timer = setInterval(() => {
      if (Date.now() - started > PATIENCE_MS) {
        clearInterval(timer);
        socket.destroy();
        reject(new Error(`connection still open after ${written} bytes and ${PATIENCE_MS} ms`));
        return;
      }
      write(Buffer.alloc(TRICKLE_CHUNK, 0x41));
    }, TRICKLE_EVERY_MS);
    socket.once('close', () => {
      clearInterval(timer);
      resolve({ written, closedAfterMs: Date.now() - started });
    });
    socket.on('error', () => undefined);
    write(first);
  });
}

describe('MQTT packet size limit', () => {
  let pki: TestPki;
  let identities: MemoryIdentities;
  let broker: Broker;
  let port: number;
  const events: BusMessage[] = [];
  const waiters = new Set<() => void>();
  let n = 0;

  /** Resolves with the first presence event `match` accepts, waiting for it if needed (bounded). */
  function presenceEvent(match: (m: BusMessage) => boolean, ms = 5_000): Promise<BusMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error('timed out waiting for a presence event'));
      }, ms);
      const check = () => {
        const found = events.find(match);
        if (found === undefined) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(found);
      };
      waiters.add(check);
      check();
    });
  }

  beforeAll(async () => {
    pki = await createTestPki();
    identities = new MemoryIdentities();
    broker = createBroker({ identities, tls: pki.serverTls, host: '127.0.0.1', port: 0, account: ACCOUNT });
    ({ port } = await broker.start());
    await broker.bus.subscribe(presenceTopics.allFilter, (m) => {
      events.push(m);
      for (const check of [...waiters]) check();
    });
  });

  afterAll(async () => {
    await broker?.stop();
  });

  async function device(): Promise<{ thing: string; cert: IssuedCertificate }> {
    const thing = `big-${++n}`;
    const cert = await pki.issue(thing);
    identities.put(cert.certificateId, { thingNames: [thing], policies: [recommended()] });
    return { thing, cert };
  }

  function open(cert: IssuedCertificate): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.caCertPem, cert: cert.certPem, key: cert.keyPem });
      socket.once('secureConnect', () => resolve(socket));
      socket.once('error', reject);
    });
  }

  function connack(socket: tls.TLSSocket): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      socket.once('data', (data: Buffer) => resolve(data));
      socket.once('close', () => reject(new Error('closed before CONNACK')));
    });
  }

  it('closes a connected client whose PUBLISH declares 200 MB after a few bytes, with CLIENT_ERROR', async () => {
    const { thing, cert } = await device();
    const socket = await open(cert);
    const acked = connack(socket);
    socket.write(connectPacket(thing));
    expect([...(await acked)]).toEqual([0x20, 0x02, 0x00, 0x00]);

    const header = Buffer.from([0x30, ...remainingLength(DECLARED)]);
    const result = await trickleUntilClosed(socket, header);
    // Closed at once, not after the broker buffered the trickle (it read 32 MB of such a packet).
    expect(result.written).toBeLessThan(64 * 1024);

    const disconnected = await presenceEvent((m) => m.topic === presenceTopics.disconnected(thing));
    expect(JSON.parse(disconnected.payload.toString('utf8'))).toMatchObject({ disconnectReason: 'CLIENT_ERROR' });
  });

  it('closes a connection whose first packet, a CONNECT, declares 200 MB', async () => {
    const { cert } = await device();
    const socket = await open(cert);
    const result = await trickleUntilClosed(socket, Buffer.from([0x10, ...remainingLength(DECLARED)]));
    expect(result.written).toBeLessThan(64 * 1024);
  });

  it('still takes the largest message IoT Core accepts: a 128 KB payload', async () => {
    const { thing, cert } = await device();
    const socket = await open(cert);
    const acked = connack(socket);
    socket.write(connectPacket(thing));
    await acked;
    const topic = Buffer.from(`pifleet/${thing}/telemetry`);
    const body = Buffer.concat([
      Buffer.from([topic.length >> 8, topic.length & 0xff]),
      topic,
      Buffer.from([0x00, 0x01]),
      Buffer.alloc(LIMITS.maxMessageBytes, 0x20),
    ]);
    expect(body.length).toBeLessThanOrEqual(MAX_PACKET_REMAINING_LENGTH);
    const puback = new Promise<Buffer>((resolve, reject) => {
      socket.once('data', (data: Buffer) => resolve(data));
      socket.once('close', () => reject(new Error('closed instead of PUBACK')));
    });
    socket.write(Buffer.concat([Buffer.from([0x32, ...remainingLength(body.length)]), body]));
    expect([...(await puback)]).toEqual([0x40, 0x02, 0x00, 0x01]);
    socket.destroy();
  });
});
