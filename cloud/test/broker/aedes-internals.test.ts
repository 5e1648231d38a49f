/**
 * Pins what the broker reads of aedes's undeclared state (src/broker/aedes-internals.ts) against a
 * live aedes and real MQTT clients, so an aedes upgrade that moves any of it fails here by name.
 */
import type { AedesPublishPacket, Client, PublishPacket, Subscription } from 'aedes';
import { afterEach, describe, expect, it } from 'vitest';
import * as internals from '../../src/broker/aedes-internals.js';
import { type BareAedes, startBareAedes, within } from './fixtures.js';

/** The next time aedes emits `event` for the client with this id. */
function clientEvent(bare: BareAedes, event: 'client' | 'clientDisconnect', clientId: string): Promise<Client> {
  return within(
    new Promise<Client>((resolve) => {
      const on = (client: Client) => {
        if (client.id !== clientId) return;
        bare.aedes.off(event, on);
        resolve(client);
      };
      bare.aedes.on(event, on);
    }),
    5_000,
    `${event} ${clientId}`,
  );
}

describe('aedes internals the broker relies on', () => {
  let bare: BareAedes | undefined;

  afterEach(async () => {
    await bare?.close();
    bare = undefined;
  });

  it('registeredClient: the registered client by id, until its connection closes', async () => {
    bare = await startBareAedes();
    const registered = clientEvent(bare, 'client', 'c1');
    await bare.connect({ clientId: 'c1' });
    const client = await registered;
    expect(internals.registeredClient(bare.aedes, 'c1')).toBe(client);
    expect(internals.registeredClient(bare.aedes, 'nobody')).toBeUndefined();
    expect(internals.registeredClient(bare.aedes, 'constructor')).toBeUndefined();
    const gone = clientEvent(bare, 'clientDisconnect', 'c1');
    client.conn.destroy();
    await gone;
    expect(internals.registeredClient(bare.aedes, 'c1')).toBeUndefined();
  });

  it('lastWillOf: the CONNECT will from authentication on, published with the same payload buffer', async () => {
    const atAuthentication: unknown[] = [];
    bare = await startBareAedes({
      authenticate: (client, _u, _p, done) => {
        atAuthentication.push(internals.lastWillOf(client)?.topic);
        done(null, true);
      },
    });
    const registered = clientEvent(bare, 'client', 'w1');
    await bare.connect({ clientId: 'w1', will: { topic: 'status/w1', payload: 'offline', qos: 1 } });
    await bare.connect({ clientId: 'no-will' });
    const client = await registered;
    expect(atAuthentication).toEqual(['status/w1', undefined]);
    const will = internals.lastWillOf(client);
    expect(will).toMatchObject({ topic: 'status/w1', qos: 1, retain: false });
    expect(Buffer.isBuffer(will?.payload)).toBe(true);
    expect(String(will?.payload)).toBe('offline');

    const published = new Promise<AedesPublishPacket>((resolve) =>
      bare?.aedes.subscribe(
        'status/+',
        (packet, cb) => {
          resolve(packet);
          cb();
        },
        () => {},
      ),
    );
    client.conn.destroy();
    const packet = await within(published, 5_000, 'will published');
    // Identity, not equality: the broker recognises a will on the bus by this buffer.
    expect(packet.payload).toBe(will?.payload);
    expect(internals.publisherOf(packet)).toBe('w1');
  });

  it.each<[string, boolean]>([
    ['DISCONNECT', true],
    ['a dropped socket', false],
  ])('disconnectedCleanly after %s: %s', async (how, clean) => {
    bare = await startBareAedes();
    const registered = clientEvent(bare, 'client', 'd1');
    const mqttClient = await bare.connect({ clientId: 'd1' });
    const client = await registered;
    expect(internals.disconnectedCleanly(client)).toBe(false);
    const gone = clientEvent(bare, 'clientDisconnect', 'd1');
    if (how === 'DISCONNECT') await mqttClient.endAsync();
    else client.conn.destroy();
    expect(internals.disconnectedCleanly(await gone)).toBe(clean);
  });

  it('publisherOf: the MQTT client that published, undefined for an in-process publish', async () => {
    bare = await startBareAedes();
    const seen: (string | undefined)[] = [];
    let arrived: (() => void) | undefined;
    await new Promise<void>((resolve) =>
      bare?.aedes.subscribe(
        'p/#',
        (packet, cb) => {
          seen.push(internals.publisherOf(packet));
          if (seen.length === 2) arrived?.();
          cb();
        },
        resolve,
      ),
    );
    const both = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const publisher = await bare.connect({ clientId: 'pub-1' });
    await publisher.publishAsync('p/1', 'x', { qos: 1 });
    await new Promise<void>((resolve, reject) =>
      bare?.aedes.publish(
        { cmd: 'publish', topic: 'p/2', payload: Buffer.from('y'), qos: 0, retain: false, dup: false },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    await within(both, 5_000, 'two messages');
    expect(seen).toEqual(['pub-1', undefined]);
  });

  it('queuedMessages: what waits behind the in-flight slots (aedes concurrency)', async () => {
    bare = await startBareAedes({ concurrency: 2 });
    const aedes = bare.aedes;
    const held: (() => void)[] = [];
    let holding = true;
    await new Promise<void>((resolve) =>
      aedes.subscribe('q/#', (_packet, cb) => (holding ? held.push(cb) : cb()), resolve),
    );
    expect(internals.queuedMessages(aedes)).toBe(0);
    const publish = (i: number) =>
      new Promise<void>((resolve) =>
        aedes.publish(
          { cmd: 'publish', topic: `q/${i}`, payload: Buffer.from('z'), qos: 0, retain: false, dup: false },
          () => resolve(),
        ),
      );
    const all = Promise.all([0, 1, 2, 3, 4].map(publish));
    expect(held).toHaveLength(2);
    expect(internals.queuedMessages(aedes)).toBe(3);
    holding = false;
    for (const cb of held.splice(0)) cb();
    await within(all, 5_000, 'queued publishes delivered');
    expect(internals.queuedMessages(aedes)).toBe(0);
  });

  it('memoryPersistence: the in-memory persistence aedes itself creates, which aedes accepts', async () => {
    const persistence = internals.memoryPersistence();
    // aedes refuses a persistence whose setup is not an async function.
    expect(persistence.setup.constructor.name).toBe('AsyncFunction');
    expect(internals.memoryPersistence()).not.toBe(persistence);
    bare = await startBareAedes({ persistence });
    const client = await bare.connect({ clientId: 'm1' });
    await client.publishAsync('m/1', 'kept', { qos: 1, retain: true });
    const retained: string[] = [];
    for await (const packet of persistence.createRetainedStream('m/#'))
      retained.push((packet as { topic: string }).topic);
    expect(retained).toEqual(['m/1']);
  });

  it('beforeAedesHandles: the listener rewrites a SUBSCRIBE and an UNSUBSCRIBE before aedes handles them', async () => {
    const authorized: string[] = [];
    const rename = (topic: string) => topic.replace('before', 'after');
    bare = await startBareAedes({
      // After CONNECT and before the CONNACK: no SUBSCRIBE can have been read yet.
      preConnect: (client, _packet, done) => {
        internals.beforeAedesHandles(client, (packet) => {
          if (packet.cmd === 'subscribe') for (const sub of packet.subscriptions) sub.topic = rename(sub.topic);
          if (packet.cmd === 'unsubscribe') packet.unsubscriptions = packet.unsubscriptions.map(rename);
        });
        done(null, true);
      },
      authorizeSubscribe: (_client, sub, done) => {
        authorized.push(sub.topic);
        done(null, sub);
      },
    });
    const subscribed = new Promise<string[]>((resolve) =>
      bare?.aedes.once('subscribe', (subs: Subscription[]) => resolve(subs.map((s) => s.topic))),
    );
    const unsubscribed = new Promise<string[]>((resolve) =>
      bare?.aedes.once('unsubscribe', (topics: string[]) => resolve(topics)),
    );
    const client = await bare.connect({ clientId: 'r1' });
    const got: string[] = [];
    client.on('message', (topic) => got.push(topic));
    expect(await client.subscribeAsync('before/x', { qos: 1 })).toEqual([{ topic: 'before/x', qos: 1 }]);
    expect(authorized).toEqual(['after/x']);
    expect(await within(subscribed, 5_000, 'subscribe event')).toEqual(['after/x']);
    // The subscription aedes made is the renamed one.
    const delivered = new Promise<void>((resolve) => client.once('message', () => resolve()));
    await client.publishAsync('after/x', 'm', { qos: 1 });
    await within(delivered, 5_000, 'message on the renamed filter');
    expect(got).toEqual(['after/x']);
    await client.unsubscribeAsync('before/x');
    expect(await within(unsubscribed, 5_000, 'unsubscribe event')).toEqual(['after/x']);
  });

  it("onPublishWritten: each PUBLISH aedes writes to the client, its packet id assigned, client.publish's brokerId kept", async () => {
    bare = await startBareAedes();
    const registered = clientEvent(bare, 'client', 'p1');
    const mqttClient = await bare.connect({ clientId: 'p1' });
    const client = await registered;
    const written: internals.WrittenPublish[] = [];
    const acked: number[] = [];
    internals.onPublishWritten(client.conn, (packet) => written.push(packet));
    internals.beforeAedesHandles(client, (packet) => {
      if (packet.cmd === 'puback') acked.push(packet.messageId);
    });
    const received = new Promise<void>((resolve) => mqttClient.once('message', () => resolve()));
    const ack = new Promise<void>((resolve) => bare?.aedes.once('ack', () => resolve()));
    const packet = { cmd: 'publish', topic: 'w/x', payload: Buffer.from('hi'), qos: 1, retain: false, dup: false };
    // (aedes 2.0.0-beta.1 calls the callback unconditionally: it is not optional.)
    client.publish({ ...packet, brokerId: 'origin\u0000g', brokerCounter: 7 } as PublishPacket, () => {});
    await within(Promise.all([received, ack]), 5_000, 'delivered and acknowledged');
    expect(written).toEqual([
      expect.objectContaining({ topic: 'w/x', qos: 1, brokerId: 'origin\u0000g', brokerCounter: 7 }),
    ]);
    expect(written[0]?.messageId).toEqual(expect.any(Number));
    // The client's PUBACK names the packet id aedes wrote.
    expect(acked).toEqual([written[0]?.messageId]);
  });
});

describe('aedes 2 (MQTT 5) internals the broker relies on', () => {
  let bare: BareAedes | undefined;

  afterEach(async () => {
    await bare?.close();
    bare = undefined;
  });

  it('setServerKeepAlive from preConnect: the MQTT 5 CONNACK carries it, MQTT 3.1.1 is untouched', async () => {
    bare = await startBareAedes({
      preConnect: (client, packet, done) => {
        internals.setServerKeepAlive(client, packet.protocolVersion === 5 ? 45 : 0);
        done(null, true);
      },
    });
    await bare.connect({ clientId: 'k5', protocolVersion: 5 });
    await bare.connect({ clientId: 'k4' });
    expect(bare.connackOf('k5')?.properties?.serverKeepAlive).toBe(45);
    expect(bare.connackOf('k4')?.properties).toBeUndefined();
  });

  it('advertiseOnConnack: adds the capabilities to a registered stream’s successful MQTT 5 CONNACK only', async () => {
    let n = 0;
    bare = await startBareAedes(
      {
        // The second client is refused: its CONNACK must stay as aedes wrote it.
        authenticate: (client, _u, _p, done) =>
          client.id === 'refused' ? done(Object.assign(new Error('no'), { returnCode: 5 }), false) : done(null, true),
      },
      {
        onSocket: (socket) => {
          // Every other connection is registered, so an unregistered one shows aedes's own CONNACK.
          if (n++ % 2 === 0)
            internals.advertiseOnConnack(socket, () => ({ maximumQoS: 1, subscriptionIdentifiersAvailable: false }));
        },
      },
    );
    await bare.connect({ clientId: 'a5', protocolVersion: 5 });
    await bare.connect({ clientId: 'plain5', protocolVersion: 5 });
    expect(bare.connackOf('a5')?.properties).toMatchObject({ maximumQoS: 1, subscriptionIdentifiersAvailable: false });
    expect(bare.connackOf('plain5')?.properties?.maximumQoS).toBeUndefined();
    await bare.connect({ clientId: 'a4' });
    expect(bare.connackOf('a4')?.properties).toBeUndefined();
    await expect(bare.connect({ clientId: 'refused', protocolVersion: 5 })).rejects.toMatchObject({ code: 0x87 });
  });

  it('onDisconnectPacket: the reason code of the DISCONNECT the client sends (0 for 3.1.1)', async () => {
    const codes = new Map<string, number>();
    bare = await startBareAedes();
    bare.aedes.on('client', (client) => internals.onDisconnectPacket(client, (code) => codes.set(client.id, code)));
    const v5 = await bare.connect({ clientId: 'd5', protocolVersion: 5 });
    const v4 = await bare.connect({ clientId: 'd4' });
    const gone = new Promise<void>((resolve) => {
      let left = 2;
      bare?.aedes.on('clientDisconnect', () => {
        if (--left === 0) resolve();
      });
    });
    await v5.endAsync(false, { reasonCode: 0x04 });
    await v4.endAsync();
    await within(gone, 5_000, 'both disconnected');
    expect(Object.fromEntries(codes)).toEqual({ d5: 0x04, d4: 0 });
  });

  it('dropPublish + writeMqtt5Packet: the PUBLISH answered with our own PUBACK reason code, then neither acknowledged nor published by aedes', async () => {
    bare = await startBareAedes({
      authorizePublish: (client, packet, done) => {
        if (client && packet.topic.startsWith('bad/')) {
          internals.writeMqtt5Packet(client, { cmd: 'puback', messageId: packet.messageId, reasonCode: 0x90 });
          internals.dropPublish(packet);
        }
        done(null);
      },
    });
    const seen: string[] = [];
    await new Promise<void>((resolve) =>
      bare?.aedes.subscribe(
        '+/x',
        (packet, cb) => {
          seen.push(packet.topic);
          cb();
        },
        resolve,
      ),
    );
    const client = await bare.connect({ clientId: 'p5', protocolVersion: 5 });
    const refused = await client.publishAsync('bad/x', 'no', { qos: 1 }).then(
      () => undefined,
      (err: { code?: number }) => err.code,
    );
    expect(refused).toBe(0x90);
    await client.publishAsync('good/x', 'yes', { qos: 1 });
    expect(seen).toEqual(['good/x']);
    expect(client.connected).toBe(true);
  });

  it('subscriptionIdentifierOf: the SUBSCRIBE’s identifier on each subscription at authorization', async () => {
    const ids: (number | undefined)[] = [];
    bare = await startBareAedes({
      authorizeSubscribe: (_client, sub, done) => {
        ids.push(internals.subscriptionIdentifierOf(sub));
        done(null, sub);
      },
    });
    const client = await bare.connect({ clientId: 's5', protocolVersion: 5 });
    await client.subscribeAsync('a/1', { qos: 1, properties: { subscriptionIdentifier: 9 } });
    await client.subscribeAsync('a/2', { qos: 1 });
    expect(ids).toEqual([9, undefined]);
  });

  it('messageExpiryOf: the absolute expiry aedes stamps on a retained MQTT 5 message, none without an interval', async () => {
    const persistence = internals.memoryPersistence();
    bare = await startBareAedes({ persistence });
    const client = await bare.connect({ clientId: 'e5', protocolVersion: 5 });
    const before = Date.now();
    await client.publishAsync('e/1', 'x', { qos: 1, retain: true, properties: { messageExpiryInterval: 30 } });
    await client.publishAsync('e/2', 'y', { qos: 1, retain: true });
    const expiries = new Map<string, number | undefined>();
    for await (const packet of persistence.createRetainedStream('e/#')) {
      expiries.set((packet as { topic: string }).topic, internals.messageExpiryOf(packet as object));
    }
    expect(expiries.get('e/2')).toBeUndefined();
    expect(expiries.get('e/1')).toBeGreaterThanOrEqual(before + 30_000);
    expect(expiries.get('e/1')).toBeLessThanOrEqual(Date.now() + 30_000);
  });

  it('wipeSession: an MQTT 3.1.1 persistent session ends as an expired MQTT 5 one does', async () => {
    bare = await startBareAedes({ persistence: internals.memoryPersistence() });
    const ended: Record<string, Client> = {};
    for (const clientId of ['kept', 'wiped']) {
      const client = await bare.connect({ clientId, clean: false });
      await client.subscribeAsync(`w/${clientId}`, { qos: 1 });
      const gone = clientEvent(bare, 'clientDisconnect', clientId);
      await client.endAsync();
      ended[clientId] = await gone;
    }
    internals.wipeSession(bare.aedes, ended.wiped as Client);
    await bare.connect({ clientId: 'kept', clean: false });
    await bare.connect({ clientId: 'wiped', clean: false });
    expect(bare.connackOf('kept')?.sessionPresent).toBe(true);
    expect(bare.connackOf('wiped')?.sessionPresent).toBe(false);
  });
});
