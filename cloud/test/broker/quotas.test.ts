/**
 * The message broker's IoT Core quotas (AWS General Reference, "AWS IoT Core endpoints and quotas",
 * message broker), each below, at and over a small limit so the suite stays fast, over MQTT 5
 * (reason codes) and MQTT 3.1.1 (what that protocol can say), with mqtt.js and aws-crt's
 * Mqtt5Client against the real TLS broker. Every breach is counted in the throttle counters, and
 * `--limits off` lifts the rates and counts.
 */
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import { MQTT5_REASON } from '@pifleet/protocol';
import type { IPublishPacket, MqttClient, Packet } from 'mqtt';
import { connectAsync } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { BusMessage } from '../../src/broker/index.js';
import {
  createThrottleCounters,
  type LimitOverrides,
  resolveLimits,
  type ThrottleCounters,
} from '../../src/limits/index.js';
import { silentLogger } from '../../src/logger.js';
import {
  allowAll,
  connectCrt5,
  connectMqttjs,
  type DeviceEndpoint,
  Inbox,
  mqttjsOptions,
  startTlsBroker,
  type TlsBroker,
  within,
} from './fixtures.js';

type Version = 4 | 5;

interface QuotaBroker extends TlsBroker {
  readonly throttles: ThrottleCounters;
  /** Every message the bus sees on `q/#`. */
  readonly inbox: Inbox;
}

const brokers: QuotaBroker[] = [];
const clients: MqttClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
  for (const b of brokers.splice(0)) {
    await b.broker.stop();
    b.throttles.close();
  }
});

/** A broker with IoT Core's quotas, some changed, and counters to read. */
async function quotaBroker(overrides: LimitOverrides, mode: 'aws' | 'off' = 'aws'): Promise<QuotaBroker> {
  const throttles = createThrottleCounters({ logger: silentLogger() });
  const started = await startTlsBroker({ limits: resolveLimits(mode, overrides), throttles });
  const inbox = new Inbox();
  await started.broker.bus.subscribe('q/#', inbox.push);
  const b = { ...started, throttles, inbox };
  brokers.push(b);
  return b;
}

/** A device certificate allowed everything, for `clientId`. */
async function device(b: TlsBroker, clientId: string): Promise<DeviceEndpoint> {
  const cert = await b.pki.issue(clientId);
  b.identities.put(cert.certificateId, { policies: [allowAll] });
  return { port: b.port, caCertPem: b.pki.caCertPem, cert, clientId };
}

async function connected(d: DeviceEndpoint, protocolVersion: Version): Promise<MqttClient> {
  const c = await connectMqttjs(d, { protocolVersion });
  clients.push(c);
  return c;
}

/** The CONNACK code a refused connect gets (MQTT 5 reason code or 3.1.1 return code). */
async function refusedConnect(d: DeviceEndpoint, protocolVersion: Version): Promise<number> {
  try {
    const c = await within(connectAsync(mqttjsOptions(d, { protocolVersion })), 10_000, 'connect');
    clients.push(c);
  } catch (err) {
    return (err as { code: number }).code;
  }
  throw new Error('the connect was accepted');
}

/** The reason code of a QoS 1 PUBLISH's PUBACK: 0 when accepted, the failure code otherwise. */
async function pubackCode(c: MqttClient, topic: string, payload: string | Buffer = 'x', retain = false) {
  try {
    await within(c.publishAsync(topic, payload, { qos: 1, retain }), 5_000, `PUBACK for ${topic}`);
    return 0;
  } catch (err) {
    return (err as { code: number }).code;
  }
}

/** The SUBACK's granted codes for a SUBSCRIBE of `filters` (mqtt.js rejects a partial refusal). */
async function suback(c: MqttClient, filters: string[]): Promise<number[]> {
  const seen = new Promise<number[]>((resolve) => {
    const on = (p: Packet) => {
      if (p.cmd !== 'suback') return;
      c.off('packetreceive', on);
      resolve(p.granted.map(Number));
    };
    c.on('packetreceive', on);
  });
  c.subscribe(filters, { qos: 1 }, () => undefined);
  return within(seen, 5_000, 'SUBACK');
}

/** Lets a token bucket refill: the quotas are per second of real time. */
const elapse = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const onTopic = (topic: string) => (m: BusMessage) => m.topic === topic;

describe('publishes per second per connection', () => {
  it('MQTT 5: up to the limit acknowledged, the next QoS 1 PUBLISH gets PUBACK 0x97 and the connection stays', async () => {
    const b = await quotaBroker({ publishesPerSecondPerConnection: 5 });
    const c = await connected(await device(b, 'pub5'), 5);
    const codes = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => pubackCode(c, `q/pub5/${i}`)));
    expect(codes).toEqual([0, 0, 0, 0, 0, MQTT5_REASON.QUOTA_EXCEEDED]);
    expect(c.connected).toBe(true);
    await b.inbox.next(onTopic('q/pub5/5'));
    expect(b.inbox.messages.some((m) => m.topic === 'q/pub5/6')).toBe(false);
    expect(b.throttles.snapshot().publishesPerSecondPerConnection).toBe(1);
    // A fifth of a second later one token is back: the same connection publishes again.
    await elapse(250);
    expect(await pubackCode(c, 'q/pub5/7')).toBe(0);
  });

  it('MQTT 3.1.1: the throttled QoS 1 PUBLISH gets no PUBACK, the connection stays, and the client sends it again', async () => {
    const b = await quotaBroker({ publishesPerSecondPerConnection: 3, connectsPerSecondPerClientId: null });
    const d = await device(b, 'pub311');
    const c = await connectMqttjs(d, { protocolVersion: 4, clean: false });
    clients.push(c);
    const accepted = [1, 2, 3].map((i) => c.publishAsync(`q/pub311/${i}`, 'x', { qos: 1 }));
    let throttledAcked = false;
    const throttled = c.publishAsync('q/pub311/4', 'x', { qos: 1 }).then(() => {
      throttledAcked = true;
    });
    await Promise.all(accepted);
    // The broker answers a connection's packets in order: once a later PUBLISH is acknowledged, a
    // PUBACK for the throttled one would have arrived before it.
    await elapse(400);
    await c.publishAsync('q/pub311/5', 'x', { qos: 1 });
    expect(throttledAcked).toBe(false);
    expect(c.connected).toBe(true);
    expect(b.inbox.messages.some((m) => m.topic === 'q/pub311/4')).toBe(false);
    expect(b.throttles.snapshot().publishesPerSecondPerConnection).toBe(1);
    // Nothing acknowledged was lost and nothing unacknowledged is: on reconnect the client sends
    // its unacknowledged message again, and this time it is taken.
    const closed = within(new Promise<void>((resolve) => c.once('close', () => resolve())), 5_000, 'connection closed');
    b.broker.disconnectClient('pub311');
    await closed;
    // mqtt.js's reconnect() starts from empty stores unless given the ones it had.
    c.reconnect({ incomingStore: c.incomingStore, outgoingStore: c.outgoingStore });
    await within(throttled, 5_000, 'the resent PUBLISH acknowledged');
    await b.inbox.next(onTopic('q/pub311/4'));
  });

  it('QoS 0 over the limit is dropped and counted (both versions)', async () => {
    const b = await quotaBroker({ publishesPerSecondPerConnection: 2 });
    for (const version of [4, 5] as const) {
      const c = await connected(await device(b, `qos0-${version}`), version);
      for (let i = 1; i <= 3; i++) c.publish(`q/qos0-${version}/${i}`, 'x', { qos: 0 });
      // Handled in order: once a later QoS 1 PUBLISH is acknowledged, the three were decided.
      await elapse(600);
      expect(await pubackCode(c, `q/qos0-${version}/marker`)).toBe(0);
    }
    await b.inbox.next(onTopic('q/qos0-5/marker'));
    expect(
      b.inbox.messages
        .filter((m) => /^q\/qos0-.\/\d$/.test(m.topic))
        .map((m) => m.topic)
        .sort(),
    ).toEqual(['q/qos0-4/1', 'q/qos0-4/2', 'q/qos0-5/1', 'q/qos0-5/2']);
    expect(b.throttles.snapshot().publishesPerSecondPerConnection).toBe(2);
  });

  it("aws-crt's Mqtt5Client sees the 0x97 PUBACK as a failed publish", async () => {
    const b = await quotaBroker({ publishesPerSecondPerConnection: 1 });
    const crt = await connectCrt5(await device(b, 'crt5'));
    try {
      const first = await crt.client.publish({ topicName: 'q/crt/1', qos: 1, payload: 'x' });
      const second = await crt.client.publish({ topicName: 'q/crt/2', qos: 1, payload: 'x' });
      expect((first as { reasonCode?: number }).reasonCode).toBe(0);
      expect((second as { reasonCode?: number }).reasonCode).toBe(MQTT5_REASON.QUOTA_EXCEEDED);
    } finally {
      await crt.stop();
    }
  });
});

describe('publish bytes per second per connection', () => {
  it.each([5, 4] as const)(
    'MQTT %s: payload bytes up to the limit pass, the one over it is throttled',
    async (version) => {
      const b = await quotaBroker({ publishBytesPerSecondPerConnection: 1_000 });
      const c = await connected(await device(b, `bytes${version}`), version);
      expect(await pubackCode(c, 'q/bytes/1', Buffer.alloc(600))).toBe(0);
      expect(await pubackCode(c, 'q/bytes/2', Buffer.alloc(400))).toBe(0);
      if (version === 5) {
        expect(await pubackCode(c, 'q/bytes/3', Buffer.alloc(300))).toBe(MQTT5_REASON.QUOTA_EXCEEDED);
      } else {
        c.publish('q/bytes/3', Buffer.alloc(300), { qos: 1 });
        await elapse(400);
        expect(await pubackCode(c, 'q/bytes/4', Buffer.alloc(300))).toBe(0);
        expect(b.inbox.messages.some((m) => m.topic === 'q/bytes/3')).toBe(false);
      }
      expect(b.throttles.snapshot().publishBytesPerSecondPerConnection).toBe(1);
    },
  );
});

describe('inbound publishes per second per account', () => {
  it('counts every connection together', async () => {
    const b = await quotaBroker({ inboundPublishesPerSecondPerAccount: 3 });
    const one = await connected(await device(b, 'acct-1'), 5);
    const two = await connected(await device(b, 'acct-2'), 5);
    expect(await pubackCode(one, 'q/acct/1')).toBe(0);
    expect(await pubackCode(two, 'q/acct/2')).toBe(0);
    expect(await pubackCode(one, 'q/acct/3')).toBe(0);
    expect(await pubackCode(two, 'q/acct/4')).toBe(MQTT5_REASON.QUOTA_EXCEEDED);
    expect(b.throttles.snapshot().inboundPublishesPerSecondPerAccount).toBe(1);
  });
});

describe('connect requests per second per client id', () => {
  it.each([
    [5, MQTT5_REASON.CONNECTION_RATE_EXCEEDED],
    [4, 3],
  ] as const)(
    'MQTT %s: a second CONNECT within a second is refused with %s; after a second it is accepted',
    async (version, code) => {
      const b = await quotaBroker({});
      const d = await device(b, `again-${version}`);
      const first = await connected(d, version);
      await first.endAsync();
      expect(await refusedConnect(d, version)).toBe(code);
      expect(b.throttles.snapshot().connectsPerSecondPerClientId).toBe(1);
      await elapse(1_050);
      await connected(d, version);
    },
  );
});

describe('connect requests per second per account', () => {
  it('refuses the CONNECT over the account rate, whatever its client id', async () => {
    const b = await quotaBroker({ connectsPerSecondPerAccount: 2 });
    const devices = await Promise.all(['rate-a', 'rate-b', 'rate-c'].map((id) => device(b, id)));
    await connected(devices[0] as DeviceEndpoint, 5);
    await connected(devices[1] as DeviceEndpoint, 4);
    expect(await refusedConnect(devices[2] as DeviceEndpoint, 5)).toBe(MQTT5_REASON.CONNECTION_RATE_EXCEEDED);
    expect(b.throttles.snapshot().connectsPerSecondPerAccount).toBe(1);
  });
});

describe('connections per account', () => {
  it('refuses a connection over the count (0x97, 3.1.1 return code 3) but lets a client id take over its own', async () => {
    const b = await quotaBroker({ connectionsPerAccount: 2, connectsPerSecondPerClientId: null });
    const [a, bee, c] = await Promise.all(['conn-a', 'conn-b', 'conn-c'].map((id) => device(b, id)));
    await connected(a as DeviceEndpoint, 5);
    await connected(bee as DeviceEndpoint, 5);
    expect(await refusedConnect(c as DeviceEndpoint, 5)).toBe(MQTT5_REASON.QUOTA_EXCEEDED);
    expect(await refusedConnect(c as DeviceEndpoint, 4)).toBe(3);
    // The same client id again replaces its connection: no new one.
    await connected(a as DeviceEndpoint, 5);
    expect(b.throttles.snapshot().connectionsPerAccount).toBe(2);
  });
});

describe('topic filters per SUBSCRIBE', () => {
  const filters = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `q/${prefix}/${i}`);

  it.each([
    [5, MQTT5_REASON.QUOTA_EXCEEDED],
    [4, 0x80],
  ] as const)(
    'MQTT %s: 8 filters are granted, 9 in one SUBSCRIBE are all refused (%s) and the connection stays',
    async (version, code) => {
      const b = await quotaBroker({});
      const c = await connected(await device(b, `filters-${version}`), version);
      expect(await suback(c, filters(8, 'eight'))).toEqual(Array(8).fill(1));
      expect(await suback(c, filters(9, 'nine'))).toEqual(Array(9).fill(code));
      expect(c.connected).toBe(true);
      expect(b.throttles.snapshot().topicFiltersPerSubscribe).toBe(1);
      // Nothing of the refused packet was subscribed: the first delivery is the later message.
      const got = within(
        new Promise<IPublishPacket>((resolve) => c.once('message', (_t, _p, packet) => resolve(packet))),
        5_000,
        'delivery',
      );
      await b.broker.bus.publish('q/nine/0', 'x', { qos: 1 });
      await b.broker.bus.publish('q/eight/0', 'x', { qos: 1 });
      expect((await got).topic).toBe('q/eight/0');
    },
  );
});

describe('subscriptions per connection', () => {
  it('grants up to the count; a held filter again is not counted; the ones over get 0x97', async () => {
    const b = await quotaBroker({ subscriptionsPerConnection: 3 });
    const c = await connected(await device(b, 'subs'), 5);
    expect(await suback(c, ['q/s/1', 'q/s/2'])).toEqual([1, 1]);
    expect(await suback(c, ['q/s/1', 'q/s/3', 'q/s/4'])).toEqual([1, 1, MQTT5_REASON.QUOTA_EXCEEDED]);
    expect(b.throttles.snapshot().subscriptionsPerConnection).toBe(1);
    await c.unsubscribeAsync('q/s/2');
    expect(await suback(c, ['q/s/4'])).toEqual([1]);
  });

  it('MQTT 3.1.1 says 0x80 for the filter over the count', async () => {
    const b = await quotaBroker({ subscriptionsPerConnection: 1 });
    const c = await connected(await device(b, 'subs311'), 4);
    expect(await suback(c, ['q/t/1', 'q/t/2'])).toEqual([1, 0x80]);
  });
});

describe('subscriptions per second per account', () => {
  it('counts topic filters, not SUBSCRIBE packets', async () => {
    const b = await quotaBroker({ subscriptionsPerSecondPerAccount: 4 });
    const c = await connected(await device(b, 'subrate'), 5);
    expect(await suback(c, ['q/r/1', 'q/r/2', 'q/r/3'])).toEqual([1, 1, 1]);
    expect(await suback(c, ['q/r/4', 'q/r/5'])).toEqual([1, MQTT5_REASON.QUOTA_EXCEEDED]);
    expect(b.throttles.snapshot().subscriptionsPerSecondPerAccount).toBe(1);
  });
});

describe('retained messages per account', () => {
  it('refuses a new retained topic over the count; replacing or clearing one is allowed', async () => {
    const b = await quotaBroker({ retainedMessagesPerAccount: 2 });
    const c = await connected(await device(b, 'retain'), 5);
    expect(await pubackCode(c, 'q/ret/1', 'a', true)).toBe(0);
    expect(await pubackCode(c, 'q/ret/2', 'b', true)).toBe(0);
    expect(await pubackCode(c, 'q/ret/3', 'c', true)).toBe(MQTT5_REASON.QUOTA_EXCEEDED);
    expect(b.broker.retained('q/ret/3')).toBeUndefined();
    expect(await pubackCode(c, 'q/ret/1', 'a2', true)).toBe(0);
    expect(b.broker.retained('q/ret/1')?.payload.toString()).toBe('a2');
    expect(await pubackCode(c, 'q/ret/2', '', true)).toBe(0);
    expect(await pubackCode(c, 'q/ret/3', 'c', true)).toBe(0);
    expect(b.throttles.snapshot().retainedMessagesPerAccount).toBe(1);
  });
});

describe('sizes from the limits', () => {
  it('a limits file changes the message size: over it MQTT 5 gets DISCONNECT 0x95, counted', async () => {
    const b = await quotaBroker({ messageBytes: 100 });
    const c = await connected(await device(b, 'size'), 5);
    expect(await pubackCode(c, 'q/size/1', Buffer.alloc(100))).toBe(0);
    const disconnect = within(
      new Promise<number | undefined>((resolve) => c.once('disconnect', (p) => resolve(p.reasonCode))),
      5_000,
      'DISCONNECT',
    );
    c.publish('q/size/2', Buffer.alloc(101), { qos: 1 });
    expect(await disconnect).toBe(MQTT5_REASON.PACKET_TOO_LARGE);
    expect(b.throttles.snapshot().messageBytes).toBe(1);
  });

  it('topic slashes: the limit counts, a Basic Ingest topic does not count its $aws/rules/{rule}/ prefix', async () => {
    const b = await quotaBroker({ topicSlashes: 3 });
    const c = await connected(await device(b, 'slashes'), 5);
    expect(await pubackCode(c, 'q/a/b/c')).toBe(0);
    expect(await pubackCode(c, 'q/a/b/c/d')).toBe(MQTT5_REASON.TOPIC_NAME_INVALID);
    expect(await pubackCode(c, '$aws/rules/r/a/b/c/d')).toBe(0);
    expect(await pubackCode(c, '$aws/rules/r/a/b/c/d/e')).toBe(MQTT5_REASON.TOPIC_NAME_INVALID);
    expect(b.throttles.snapshot().topicSlashes).toBe(2);
  });

  it('topic bytes from the limits, for topics and filters', async () => {
    const b = await quotaBroker({ topicBytes: 10 });
    const c = await connected(await device(b, 'topicbytes'), 5);
    expect(await pubackCode(c, 'q/12345678')).toBe(0);
    expect(await pubackCode(c, 'q/123456789')).toBe(MQTT5_REASON.TOPIC_NAME_INVALID);
    expect((await suback(c, ['q/123456789']))[0]).toBeGreaterThanOrEqual(0x80);
    expect(b.throttles.snapshot().topicBytes).toBe(2);
  });

  it.each([
    [5, 0x85],
    [4, 2],
  ] as const)('client id bytes: MQTT %s over the limit is refused with %s', async (version, code) => {
    const b = await quotaBroker({ clientIdBytes: 8 });
    await connected(await device(b, '12345678'), version);
    expect(await refusedConnect(await device(b, '123456789'), version)).toBe(code);
    expect(b.throttles.snapshot().clientIdBytes).toBe(1);
  });
});

describe('--limits off', () => {
  it('lifts the rates and counts: no throttle at many times the AWS values used above', async () => {
    const b = await quotaBroker({}, 'off');
    const d = await device(b, 'off');
    const first = await connected(d, 5);
    await first.endAsync();
    const c = await connected(d, 5); // within a second of the first: not refused
    const codes = await Promise.all(Array.from({ length: 150 }, (_, i) => pubackCode(c, `q/off/${i}`)));
    expect(codes.every((code) => code === 0)).toBe(true);
    expect(
      await suback(
        c,
        Array.from({ length: 9 }, (_, i) => `q/offsub/${i}`),
      ),
    ).toEqual(Array(9).fill(1));
    expect(b.throttles.total()).toBe(0);
  });
});

/**
 * Splits the bytes arriving on a socket into MQTT packets: `onPacket` gets each complete one's type
 * (the fixed header's high nibble) and its body, in order, as the last of its bytes arrives.
 */
function onMqttPackets(socket: Readable, onPacket: (type: number, body: Buffer) => void): void {
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (;;) {
      // The remaining length: 1 to 4 bytes, 7 bits each, least significant first.
      let length = 0;
      let multiplier = 1;
      let i = 1;
      for (; i < buffered.length && i <= 4; i++) {
        const byte = buffered[i] as number;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) break;
      }
      if (i >= buffered.length) return;
      const start = i + 1;
      if (buffered.length < start + length) return;
      const body = buffered.subarray(start, start + length);
      const type = (buffered[0] as number) >> 4;
      buffered = buffered.subarray(start + length);
      onPacket(type, body);
    }
  });
}

/**
 * Counts the PUBLISH packets arriving on a client's socket, whatever the client does with them:
 * mqtt.js handles one packet at a time, so while it holds a PUBACK the later ones wait in its
 * buffer, and only the wire shows how many the broker has sent.
 */
function publishesOnWire(c: MqttClient) {
  let count = 0;
  const waiters = new Set<() => void>();
  onMqttPackets(c.stream, (type) => {
    if (type === 3) count++;
    for (const wake of waiters) wake();
  });
  return {
    get count() {
      return count;
    },
    reach(n: number) {
      return within(
        new Promise<void>((resolve) => {
          const wake = () => {
            if (count < n) return;
            waiters.delete(wake);
            resolve();
          };
          waiters.add(wake);
          wake();
        }),
        5_000,
        `${n} PUBLISH packets on the wire`,
      );
    },
  };
}

describe('in-flight messages per client', () => {
  // MQTT 5 here: mqtt.js acknowledges a 3.1.1 delivery itself (customHandleAcks holds only MQTT 5
  // PUBACKs, measured); the 3.1.1 case below uses a raw client.
  it.each([5] as const)(
    'MQTT %s: QoS 1 deliveries past the window wait for PUBACKs, in order, none dropped',
    async (version) => {
      const b = await quotaBroker({ inFlightMessagesPerClient: 3 });
      // The client holds its PUBACKs until the test releases them.
      const held: Array<() => void> = [];
      const received: string[] = [];
      const c = await connectMqttjs(await device(b, `inflight-${version}`), {
        protocolVersion: version,
        customHandleAcks: (_topic, message, _packet, done) => {
          received.push(message.toString());
          held.push(() => done(0));
        },
      });
      clients.push(c);
      const wire = publishesOnWire(c);
      await c.subscribeAsync('q/window', { qos: 1 });
      for (let i = 1; i <= 5; i++) await b.broker.bus.publish('q/window', String(i), { qos: 1 });
      await wire.reach(3);
      // The broker writes one connection's packets in order: a fourth would follow the third.
      await elapse(200);
      expect(wire.count).toBe(3);
      held.shift()?.();
      await wire.reach(4);
      await elapse(200);
      expect(wire.count).toBe(4);
      while (received.length < 5 || held.length > 0) {
        const ack = held.shift();
        if (ack) ack();
        else await elapse(20);
      }
      await wire.reach(5);
      expect(received).toEqual(['1', '2', '3', '4', '5']);
      expect(b.throttles.snapshot().inFlightMessagesPerClient).toBe(2);
    },
  );
});

/** An MQTT 3.1.1 packet: fixed header byte, remaining length, body. */
function packet311(first: number, body: Buffer): Buffer {
  const length: number[] = [];
  let n = body.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    length.push(byte);
  } while (n > 0);
  return Buffer.concat([Buffer.from([first, ...length]), body]);
}

const utf8Field = (s: string) => {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};

/**
 * A bare MQTT 3.1.1 client on raw TLS that never acknowledges by itself: every client library at
 * hand sends 3.1.1 PUBACKs on its own, so the in-flight window over 3.1.1 is tested with this.
 */
async function raw311(d: DeviceEndpoint) {
  const socket = tls.connect({
    host: '127.0.0.1',
    port: d.port,
    ca: d.caCertPem,
    cert: d.cert.certPem,
    key: d.cert.keyPem,
  });
  socket.on('error', () => undefined);
  const publishes: Array<{ messageId: number; payload: string }> = [];
  const waiters = new Set<() => void>();
  let connack = false;
  let subacks = 0;
  onMqttPackets(socket, (type, body) => {
    if (type === 2) connack = true;
    if (type === 9) subacks++;
    if (type === 3) {
      const topicLength = body.readUInt16BE(0);
      const messageId = body.readUInt16BE(2 + topicLength);
      publishes.push({ messageId, payload: body.subarray(4 + topicLength).toString() });
    }
    for (const wake of waiters) wake();
  });
  const until = (what: string, done: () => boolean) =>
    within(
      new Promise<void>((resolve) => {
        const wake = () => {
          if (!done()) return;
          waiters.delete(wake);
          resolve();
        };
        waiters.add(wake);
        wake();
      }),
      5_000,
      what,
    );
  await within(new Promise((resolve) => socket.once('secureConnect', resolve)), 5_000, 'TLS');
  const connectBody = Buffer.concat([utf8Field('MQTT'), Buffer.from([0x04, 0x02, 0x00, 0x3c]), utf8Field(d.clientId)]);
  socket.write(packet311(0x10, connectBody));
  await until('CONNACK', () => connack);
  return {
    publishes,
    until,
    async subscribe(filter: string) {
      const before = subacks;
      socket.write(packet311(0x82, Buffer.concat([Buffer.from([0x00, 0x01]), utf8Field(filter), Buffer.from([0x01])])));
      await until('SUBACK', () => subacks > before);
    },
    puback(messageId: number) {
      socket.write(packet311(0x40, Buffer.from([messageId >> 8, messageId & 0xff])));
    },
    close: () => socket.destroy(),
  };
}

describe('in-flight messages per client over MQTT 3.1.1', () => {
  it('QoS 1 deliveries past the window wait for PUBACKs, in order, none dropped', async () => {
    const b = await quotaBroker({ inFlightMessagesPerClient: 2 });
    const c = await raw311(await device(b, 'inflight-311'));
    try {
      await c.subscribe('q/window311');
      for (let i = 1; i <= 4; i++) await b.broker.bus.publish('q/window311', String(i), { qos: 1 });
      await c.until('2 deliveries', () => c.publishes.length >= 2);
      await elapse(200);
      expect(c.publishes.map((p) => p.payload)).toEqual(['1', '2']);
      c.puback((c.publishes[0] as { messageId: number }).messageId);
      await c.until('3 deliveries', () => c.publishes.length >= 3);
      c.puback((c.publishes[1] as { messageId: number }).messageId);
      c.puback((c.publishes[2] as { messageId: number }).messageId);
      await c.until('4 deliveries', () => c.publishes.length >= 4);
      expect(c.publishes.map((p) => p.payload)).toEqual(['1', '2', '3', '4']);
      expect(b.throttles.snapshot().inFlightMessagesPerClient).toBe(2);
    } finally {
      c.close();
    }
  });
});
