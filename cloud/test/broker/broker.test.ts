import { LIMITS, presenceTopics } from '@pifleet/protocol';
import { mqtt } from 'aws-iot-device-sdk-v2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Broker, BusMessage, DisconnectedEvent } from '../../src/broker/index.js';
import type { AttachedPolicy, CertificateStatus } from '../../src/index.js';
import {
  allowAll,
  arn,
  busJson,
  closeQuietly,
  createTestPki,
  deviceConnection,
  Inbox,
  type IssuedCertificate,
  type MemoryIdentities,
  once,
  policy,
  recommended,
  startTlsBroker,
  type TestPki,
  within,
} from './fixtures.js';

describe('TLS broker with IoT policies', () => {
  let pki: TestPki;
  let identities: MemoryIdentities;
  let broker: Broker;
  let port: number;
  const inbox = new Inbox();
  const open: mqtt.MqttClientConnection[] = [];
  let n = 0;

  beforeAll(async () => {
    ({ pki, identities, broker, port } = await startTlsBroker());
    await broker.bus.subscribe('#', inbox.push);
    await broker.bus.subscribe('$aws/events/presence/+/+', inbox.push);
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => closeQuietly(c)));
  });

  afterAll(async () => {
    await broker?.stop();
  });

  /** A fresh thing name, certificate and registry entry; `policies` default to the recommended one. */
  async function provision(
    options: { status?: CertificateStatus; policies?: AttachedPolicy[]; attach?: boolean } = {},
  ): Promise<{ thing: string; cert: IssuedCertificate }> {
    const thing = `pi-${++n}-${Date.now().toString(36)}`;
    const cert = await pki.issue(thing);
    identities.put(cert.certificateId, {
      status: options.status ?? 'ACTIVE',
      thingNames: options.attach === false ? [] : [thing],
      policies: options.policies ?? [recommended()],
    });
    return { thing, cert };
  }

  /** A device connection; `will` is its last will, retained, with the payload 'offline'. */
  function connection(cert: IssuedCertificate, clientId: string, will?: { topic: string }) {
    const c = deviceConnection({
      port,
      caCertPem: pki.caCertPem,
      cert,
      clientId,
      ...(will ? { will: { topic: will.topic, payload: 'offline', retain: true } } : {}),
    });
    open.push(c);
    return c;
  }

  async function connected(cert: IssuedCertificate, clientId: string, will?: { topic: string }) {
    const c = connection(cert, clientId, will);
    await within(c.connect(), 5_000, 'connect');
    return c;
  }

  const presence = (clientId: string, eventType: 'connected' | 'disconnected', after = 0) =>
    inbox.next(
      (m) => m.topic === `$aws/events/presence/${eventType}/${clientId}` && Number(busJson(m).versionNumber) >= after,
    );

  it('lets a thing with the recommended policy connect, publish telemetry and receive its commands', async () => {
    const { thing, cert } = await provision();
    const device = await connected(cert, thing);

    await device.publish(`pifleet/${thing}/telemetry`, JSON.stringify({ v: 1 }), mqtt.QoS.AtLeastOnce);
    const seen = await inbox.next((m) => m.topic === `pifleet/${thing}/telemetry`);
    expect(seen).toMatchObject({ clientId: thing, qos: 1 });
    expect(busJson(seen)).toEqual({ v: 1 });

    const commands: string[] = [];
    let resolveGot: () => void = () => undefined;
    const got = new Promise<void>((resolve) => (resolveGot = resolve));
    const suback = await within(
      device.subscribe(`pifleet/${thing}/commands`, mqtt.QoS.AtLeastOnce, (_topic, payload) => {
        commands.push(Buffer.from(payload).toString('utf8'));
        resolveGot();
      }),
      5_000,
      'suback',
    );
    expect(suback.qos).toBe(mqtt.QoS.AtLeastOnce);
    await broker.bus.publish(`pifleet/${thing}/commands`, 'reboot', { qos: 1 });
    await within(got, 5_000, 'command delivery');
    expect(commands).toEqual(['reboot']);
  });

  it('refuses a client certificate from an unknown CA at the TLS handshake', async () => {
    const stranger = await createTestPki({ name: 'some other CA' });
    const cert = await stranger.issue('intruder');
    identities.put(cert.certificateId, { thingNames: ['intruder'], policies: [allowAll] });
    // The client trusts the broker; the broker does not trust the client's issuer.
    const c = connection(cert, 'intruder');
    await expect(within(c.connect(), 5_000, 'connect')).rejects.toThrow(/Failed to connect/);
    expect(broker.bus.sessions().has('intruder')).toBe(false);
  });

  it.each<[string, CertificateStatus | 'UNREGISTERED']>([
    ['INACTIVE', 'INACTIVE'],
    ['REVOKED', 'REVOKED'],
    ['PENDING_TRANSFER', 'PENDING_TRANSFER'],
    ['not in the registry', 'UNREGISTERED'],
  ])('refuses CONNECT with a certificate that is %s', async (_name, status) => {
    const { thing, cert } = await provision(status === 'UNREGISTERED' ? {} : { status });
    if (status === 'UNREGISTERED') identities.delete(cert.certificateId);
    const c = connection(cert, thing);
    await expect(within(c.connect(), 5_000, 'connect')).rejects.toThrow(/Failed to connect/);
    expect(broker.bus.sessions().has(thing)).toBe(false);
  });

  it.each<[string, { attach?: boolean; policies?: AttachedPolicy[]; clientId?: (thing: string) => string }]>([
    ['with a client id other than its thing name', { clientId: (t) => `${t}-other` }],
    ['when no thing is attached to its certificate', { attach: false }],
    ['with no policy attached', { policies: [] }],
    [
      'when a Deny statement names its client',
      {
        policies: [
          recommended(),
          policy('deny', { Effect: 'Deny', Action: 'iot:Connect', Resource: arn('client', 'pi-*') }),
        ],
      },
    ],
  ])('refuses CONNECT %s', async (_name, options) => {
    const { thing, cert } = await provision(options);
    const clientId = options.clientId?.(thing) ?? thing;
    await expect(within(connection(cert, clientId).connect(), 5_000, 'connect')).rejects.toThrow(/Failed to connect/);
    expect(broker.bus.sessions().has(clientId)).toBe(false);
  });

  it.each<[string, (id: string) => void]>([
    ['made INACTIVE', (id) => identities.update(id, { status: 'INACTIVE' })],
    ['REVOKED', (id) => identities.update(id, { status: 'REVOKED' })],
    ['deleted', (id) => identities.delete(id)],
    ['stripped of its policies', (id) => identities.update(id, { policies: [] })],
  ])('closes an open connection when its certificate is %s', async (_name, change) => {
    const { thing, cert } = await provision();
    const device = await connected(cert, thing);
    const up = await presence(thing, 'connected');
    const interrupted = once(device, 'interrupt');
    change(cert.certificateId);
    await interrupted;
    const down = await presence(thing, 'disconnected');
    expect(busJson(down)).toMatchObject({
      disconnectReason: 'AUTH_ERROR',
      clientInitiatedDisconnect: false,
      sessionIdentifier: busJson(up).sessionIdentifier,
    });
    expect(broker.bus.sessions().has(thing)).toBe(false);
  });

  it("disconnects a thing that publishes to another thing's topic, and drops the message", async () => {
    const { thing, cert } = await provision();
    const device = await connected(cert, thing);
    const interrupted = once(device, 'interrupt');
    void device.publish('pifleet/somebody-else/telemetry', 'forged', mqtt.QoS.AtMostOnce).catch(() => undefined);
    await interrupted;
    await closeQuietly(device);
    const down = await presence(thing, 'disconnected');
    expect(busJson(down).disconnectReason).toBe('AUTH_ERROR');
    expect(inbox.messages.some((m) => m.topic === 'pifleet/somebody-else/telemetry')).toBe(false);
  });

  it.each<[string, string, boolean]>([
    ['$aws/events/presence/connected/x', 'a reserved lifecycle topic', false],
    ['$SYS/broker/x', 'the broker $SYS tree', false],
    ['$aws/things/x/shadow/update/accepted', "a shadow service's response topic", false],
    ['$pifleet/x', 'any other reserved topic', false],
    ['pifleet/x/telemetry', 'a topic its policy allows', true],
  ])('with an allow-all policy, publishing to %s (%s) is allowed: %s', async (topic, _what, allowed) => {
    const { thing, cert } = await provision({ policies: [allowAll] });
    const device = await connected(cert, thing);
    if (allowed) {
      await within(device.publish(topic, 'x', mqtt.QoS.AtLeastOnce), 5_000, 'puback');
      await inbox.next((m) => m.topic === topic && m.clientId === thing);
    } else {
      const interrupted = once(device, 'interrupt');
      void device.publish(topic, 'x', mqtt.QoS.AtMostOnce).catch(() => undefined);
      await interrupted;
      await closeQuietly(device);
      expect(inbox.messages.some((m) => m.topic === topic && m.clientId === thing)).toBe(false);
    }
  });

  it('requires iot:RetainPublish for a retained message', async () => {
    const { thing, cert } = await provision();
    const device = await connected(cert, thing);
    await within(
      device.publish(`pifleet/${thing}/status`, 'online', mqtt.QoS.AtLeastOnce, true),
      5_000,
      'retained status',
    );
    const interrupted = once(device, 'interrupt');
    void device.publish(`pifleet/${thing}/telemetry`, 'x', mqtt.QoS.AtMostOnce, true).catch(() => undefined);
    await interrupted;
    await closeQuietly(device);
    expect(busJson(await presence(thing, 'disconnected')).disconnectReason).toBe('AUTH_ERROR');
  });

  it('delivers retained messages to a later subscriber by exact filter and wildcard, and an empty payload clears them', async () => {
    const { thing, cert } = await provision({ policies: [allowAll] });
    const device = await connected(cert, thing);
    for (const t of [`rt/${thing}/a/status`, `rt/${thing}/b/status`]) {
      await within(device.publish(t, `on:${t}`, mqtt.QoS.AtLeastOnce, true), 5_000, 'retained publish');
    }
    const retainedOn = async (filter: string, count: number) => {
      const later = await connected((await provision({ policies: [allowAll] })).cert, `late-${++n}`);
      const got: string[] = [];
      let done: () => void = () => undefined;
      const all = new Promise<void>((resolve) => (done = resolve));
      await within(
        later.subscribe(filter, mqtt.QoS.AtLeastOnce, (topic, payload, _dup, _qos, retain) => {
          // An empty payload arrives as a detached buffer; only retained deliveries are counted.
          if (!retain || payload.byteLength === 0) return;
          got.push(`${topic}=${Buffer.from(payload).toString('utf8')}`);
          if (got.length >= count) done();
        }),
        5_000,
        'suback',
      );
      if (count > 0) await within(all, 5_000, `retained on ${filter}`);
      else await new Promise((r) => setTimeout(r, 200));
      return got.sort();
    };
    expect(await retainedOn(`rt/${thing}/a/status`, 1)).toEqual([`rt/${thing}/a/status=on:rt/${thing}/a/status`]);
    expect(await retainedOn(`rt/${thing}/+/status`, 2)).toEqual(
      [`rt/${thing}/a/status`, `rt/${thing}/b/status`].map((t) => `${t}=on:${t}`),
    );
    expect(await retainedOn(`rt/${thing}/#`, 2)).toHaveLength(2);
    await within(device.publish(`rt/${thing}/a/status`, '', mqtt.QoS.AtLeastOnce, true), 5_000, 'clear');
    expect(await retainedOn(`rt/${thing}/a/status`, 0)).toEqual([]);
    expect(await retainedOn(`rt/${thing}/+/status`, 1)).toEqual([`rt/${thing}/b/status=on:rt/${thing}/b/status`]);
  });

  it('looks a retained message up by topic, and forgets it when an empty payload clears it', async () => {
    const { thing, cert } = await provision();
    const device = await connected(cert, thing);
    const topic = `pifleet/${thing}/status`;
    expect(broker.retained(topic)).toBeUndefined();
    await within(device.publish(topic, 'online', mqtt.QoS.AtLeastOnce, true), 5_000, 'retained status');
    expect(broker.retained(topic)).toEqual({ topic, payload: Buffer.from('online'), qos: 1 });
    await broker.bus.publish(topic, 'offline', { retain: true });
    expect(broker.retained(topic)).toEqual({ topic, payload: Buffer.from('offline'), qos: 0 });
    await broker.bus.publish(topic, '', { retain: true });
    expect(broker.retained(topic)).toBeUndefined();
  });

  it('answers a SUBSCRIBE outside the policy with a failure return code and keeps the connection', async () => {
    const { thing, cert } = await provision();
    const device = await connected(cert, thing);
    const results = await Promise.allSettled([
      within(device.subscribe('pifleet/+/commands', mqtt.QoS.AtLeastOnce), 5_000, 'suback'),
      within(device.subscribe('#', mqtt.QoS.AtLeastOnce), 5_000, 'suback'),
      within(device.subscribe(`$aws/things/${thing}/shadow/update/delta`, mqtt.QoS.AtLeastOnce), 5_000, 'suback'),
    ]);
    const granted = results.map((r) => (r.status === 'fulfilled' ? r.value.qos : 'rejected'));
    // 0x80 is MQTT 3.1.1's SUBACK failure return code.
    expect(granted).toEqual([0x80, 0x80, mqtt.QoS.AtLeastOnce]);
    // still connected and usable
    await within(device.publish(`pifleet/${thing}/telemetry`, 'after', mqtt.QoS.AtLeastOnce), 5_000, 'puback');
    expect(broker.bus.sessions().has(thing)).toBe(true);
  });

  it('does not deliver messages the policy does not let the client receive', async () => {
    const { thing, cert } = await provision({
      policies: [
        policy(
          'wide-subscribe-narrow-receive',
          { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', '${iot:ClientId}') },
          { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', 'pifleet/+/commands') },
          { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic', 'pifleet/${iot:ClientId}/commands') },
        ),
      ],
    });
    const device = await connected(cert, thing);
    const received: string[] = [];
    let resolveOwn: () => void = () => undefined;
    const own = new Promise<void>((resolve) => (resolveOwn = resolve));
    await within(
      device.subscribe('pifleet/+/commands', mqtt.QoS.AtLeastOnce, (topic) => {
        received.push(topic);
        if (topic === `pifleet/${thing}/commands`) resolveOwn();
      }),
      5_000,
      'suback',
    );
    await broker.bus.publish('pifleet/neighbour/commands', 'not for you', { qos: 1 });
    await broker.bus.publish(`pifleet/${thing}/commands`, 'for you', { qos: 1 });
    await within(own, 5_000, 'own command');
    expect(received).toEqual([`pifleet/${thing}/commands`]);
  });

  it('applies a policy change to an open connection at once (decisions are not cached across changes)', async () => {
    const { thing, cert } = await provision();
    const device = await connected(cert, thing);
    const received: string[] = [];
    let arrived: (() => void) | undefined;
    await device.subscribe(`pifleet/${thing}/commands`, mqtt.QoS.AtLeastOnce, (_t, payload) => {
      received.push(Buffer.from(payload).toString('utf8'));
      arrived?.();
    });
    const wait = () => new Promise<void>((resolve) => (arrived = resolve));
    let next = wait();
    await broker.bus.publish(`pifleet/${thing}/commands`, 'one', { qos: 1 });
    await within(next, 5_000, 'first command');
    // Receive on commands is now explicitly denied; Connect still allowed.
    identities.update(cert.certificateId, {
      policies: [
        recommended(),
        policy('mute', { Effect: 'Deny', Action: 'iot:Receive', Resource: arn('topic', 'pifleet/*/commands') }),
      ],
    });
    await broker.bus.publish(`pifleet/${thing}/commands`, 'two', { qos: 1 });
    // Restore, then a third message proves the second was dropped rather than delayed.
    identities.update(cert.certificateId, { policies: [recommended()] });
    next = wait();
    await broker.bus.publish(`pifleet/${thing}/commands`, 'three', { qos: 1 });
    await within(next, 5_000, 'third command');
    expect(received).toEqual(['one', 'three']);
  });

  it('disconnects the older connection when a client id connects twice', async () => {
    const { thing, cert } = await provision();
    const first = await connected(cert, thing);
    const firstUp = busJson(await presence(thing, 'connected'));
    const interrupted = once(first, 'interrupt');
    const second = await connected(cert, thing);
    await interrupted;
    await closeQuietly(first);
    const down = busJson(await presence(thing, 'disconnected'));
    expect(down).toMatchObject({
      disconnectReason: 'DUPLICATE_CLIENTID',
      sessionIdentifier: firstUp.sessionIdentifier,
    });
    const secondUp = busJson(await presence(thing, 'connected', Number(firstUp.versionNumber) + 1));
    expect(secondUp.sessionIdentifier).not.toBe(firstUp.sessionIdentifier);
    await within(second.publish(`pifleet/${thing}/telemetry`, 'x', mqtt.QoS.AtLeastOnce), 5_000, 'puback');
    expect(broker.bus.sessions().get(thing)?.sessionIdentifier).toBe(secondUp.sessionIdentifier);
  });

  it('accepts a payload of exactly 128 KB and closes the connection on a larger one', async () => {
    const { thing, cert } = await provision();
    const device = await connected(cert, thing);
    const topic = `pifleet/${thing}/telemetry`;
    await within(device.publish(topic, Buffer.alloc(LIMITS.maxMessageBytes, 1), mqtt.QoS.AtLeastOnce), 5_000, 'puback');
    const ok = await inbox.next((m) => m.topic === topic);
    expect(ok.payload.length).toBe(LIMITS.maxMessageBytes);
    const interrupted = once(device, 'interrupt');
    void device.publish(topic, Buffer.alloc(LIMITS.maxMessageBytes + 1, 2), mqtt.QoS.AtMostOnce).catch(() => undefined);
    await interrupted;
    await closeQuietly(device);
    expect(busJson(await presence(thing, 'disconnected')).disconnectReason).toBe('CLIENT_ERROR');
    expect(inbox.messages.filter((m) => m.topic === topic)).toHaveLength(1);
  });

  it("publishes presence events with IoT Core's fields", async () => {
    const { thing, cert } = await provision();
    const watcher = await provision({ policies: [allowAll] });
    const watching = await connected(watcher.cert, watcher.thing);
    const seen: { topic: string; event: Record<string, unknown> }[] = [];
    let onEvent: (() => void) | undefined;
    await watching.subscribe(presenceTopics.allFilter, mqtt.QoS.AtLeastOnce, (topic, payload) => {
      seen.push({ topic, event: JSON.parse(Buffer.from(payload).toString('utf8')) });
      onEvent?.();
    });
    const arrived = (count: number) =>
      within(
        new Promise<void>((resolve) => {
          onEvent = () => seen.filter((s) => s.topic.endsWith(`/${thing}`)).length >= count && resolve();
          onEvent();
        }),
        5_000,
        'presence over MQTT',
      );

    const before = Date.now();
    const device = await connected(cert, thing);
    const up = busJson(await presence(thing, 'connected'));
    expect(up).toEqual({
      clientId: thing,
      timestamp: expect.any(Number),
      eventType: 'connected',
      sessionIdentifier: expect.stringMatching(/^[0-9a-f-]{36}$/),
      principalIdentifier: cert.certificateId,
      ipAddress: '127.0.0.1',
      versionNumber: 0,
    });
    expect(up.timestamp).toBeGreaterThanOrEqual(before);

    await within(device.disconnect(), 5_000, 'disconnect');
    open.splice(open.indexOf(device), 1);
    const down = busJson(await presence(thing, 'disconnected')) as unknown as DisconnectedEvent;
    expect(down).toEqual({
      clientId: thing,
      timestamp: expect.any(Number),
      eventType: 'disconnected',
      sessionIdentifier: up.sessionIdentifier,
      principalIdentifier: cert.certificateId,
      clientInitiatedDisconnect: true,
      disconnectReason: 'CLIENT_INITIATED_DISCONNECT',
      versionNumber: 0,
    });

    const again = await connected(cert, thing);
    const up2 = busJson(await presence(thing, 'connected', 1));
    expect(up2.versionNumber).toBe(1);
    expect(up2.sessionIdentifier).not.toBe(up.sessionIdentifier);
    await closeQuietly(again);

    // An MQTT subscriber allowed to receive them sees the same events.
    await arrived(3);
    expect(seen.filter((s) => s.topic.endsWith(`/${thing}`)).map((s) => s.topic)).toEqual([
      presenceTopics.connected(thing),
      presenceTopics.disconnected(thing),
      presenceTopics.connected(thing),
    ]);
  });

  it.each<[string, boolean]>([
    ['its own retained status', true],
    ["another thing's status", false],
  ])('publishes a will on %s only if the policy allows it (%s)', async (_name, allowed) => {
    const { thing, cert } = await provision();
    const topic = allowed ? `pifleet/${thing}/status` : 'pifleet/neighbour/status';
    await connected(cert, thing, { topic });
    await presence(thing, 'connected');
    expect(broker.disconnectClient(thing)).toBe(true);
    if (allowed) {
      const will = await inbox.next((m) => m.topic === topic && m.clientId === thing);
      expect(will).toMatchObject({ retain: true, payload: Buffer.from('offline'), lastWill: true });
      return;
    }
    // The will is authorized before the disconnected event is raised; once that event and a
    // marker published after it have arrived, a will that was allowed would have arrived too.
    await presence(thing, 'disconnected');
    await broker.bus.publish(`marker/${thing}`, 'x');
    await inbox.next((m) => m.topic === `marker/${thing}`);
    expect(inbox.messages.some((m) => m.topic === topic)).toBe(false);
  });

  it('reports CONNECTION_LOST when a socket drops without DISCONNECT', async () => {
    const { thing, cert } = await provision();
    await connected(cert, thing);
    await presence(thing, 'connected');
    expect(broker.disconnectClient(thing)).toBe(true);
    expect(busJson(await presence(thing, 'disconnected')).disconnectReason).toBe('CONNECTION_LOST');
    expect(broker.disconnectClient(thing)).toBe(false);
    expect(broker.disconnectClient('never-connected')).toBe(false);
  });

  it('marks a will on the bus as one, and a message on the same topic published live as none', async () => {
    const { thing, cert } = await provision();
    const topic = `pifleet/${thing}/status`;
    const c = await connected(cert, thing, { topic });
    await within(c.publish(topic, 'offline', mqtt.QoS.AtLeastOnce, true), 5_000, 'live status');
    const live = await inbox.next((m) => m.topic === topic);
    expect(live).toMatchObject({ clientId: thing, payload: Buffer.from('offline'), lastWill: false });
    await presence(thing, 'connected');
    expect(broker.disconnectClient(thing)).toBe(true);
    const will = await inbox.next((m) => m.topic === topic && m !== live);
    expect(will).toMatchObject({ clientId: thing, payload: Buffer.from('offline'), lastWill: true });
  });

  describe('the before-acknowledgement handler', () => {
    async function device() {
      const { thing, cert } = await provision();
      return { thing, c: await connected(cert, thing) };
    }

    /** Installs a handler that holds every message until the test settles it. */
    function holding() {
      const held: { message: BusMessage; settle: (err?: Error) => void }[] = [];
      let arrived: (() => void) | undefined;
      const remove = broker.bus.acceptBeforeAck((message) => {
        const done = new Promise<void>((resolve, reject) => {
          held.push({ message, settle: (err) => (err ? reject(err) : resolve()) });
        });
        arrived?.();
        return done;
      });
      const next = () =>
        held.length > 0
          ? Promise.resolve()
          : within(
              new Promise<void>((r) => {
                arrived = r;
              }),
              5_000,
              'before-ack handler',
            );
      return { held, next, remove };
    }

    it('sends PUBACK only once the handler has finished, and marks the delivered message as taken', async () => {
      const { thing, c } = await device();
      const hold = holding();
      try {
        let acked = false;
        const publish = c.publish(`pifleet/${thing}/telemetry`, '{"n":1}', mqtt.QoS.AtLeastOnce).then(() => {
          acked = true;
        });
        await hold.next();
        expect(hold.held[0]?.message).toMatchObject({ topic: `pifleet/${thing}/telemetry`, clientId: thing, qos: 1 });
        // The message has been authorized and handed over; nothing may acknowledge it yet.
        await new Promise((r) => setTimeout(r, 300));
        expect(acked).toBe(false);
        expect(inbox.messages.some((m) => m.topic === `pifleet/${thing}/telemetry`)).toBe(false);

        hold.held[0]?.settle();
        await within(publish, 5_000, 'PUBACK');
        // aedes wraps the packet between authorization and delivery: the bus still knows it was taken.
        const delivered = await inbox.next((m) => m.topic === `pifleet/${thing}/telemetry`);
        expect(delivered.acceptedBeforeAck).toBe(true);
      } finally {
        hold.remove();
      }
    });

    it('closes the connection without PUBACK when the handler fails, so the device still holds the message', async () => {
      const { thing, c } = await device();
      const hold = holding();
      try {
        const interrupted = once(c, 'interrupt');
        const outcome = c.publish(`pifleet/${thing}/telemetry`, '{"n":2}', mqtt.QoS.AtLeastOnce).then(
          () => 'acknowledged',
          () => 'failed',
        );
        await hold.next();
        hold.held[0]?.settle(new Error('disk full'));
        await interrupted;
        // A clean session drops the unacknowledged publish with the connection: the publish fails and
        // the agent keeps the batch in its outbox to send again (never deleted without a PUBACK).
        expect(await within(outcome, 10_000, 'publish outcome')).toBe('failed');
        expect(inbox.messages.some((m) => m.payload.toString() === '{"n":2}')).toBe(false);
      } finally {
        hold.remove();
      }
    });

    it('leaves QoS 0 messages and in-process publishes alone', async () => {
      const { thing, c } = await device();
      const hold = holding();
      try {
        await c.publish(`pifleet/${thing}/telemetry`, '{"q":0}', mqtt.QoS.AtMostOnce);
        await broker.bus.publish(`pifleet/${thing}/telemetry`, '{"in":"process"}', { qos: 1 });
        const q0 = await inbox.next((m) => m.payload.toString() === '{"q":0}');
        const inProcess = await inbox.next((m) => m.payload.toString() === '{"in":"process"}');
        expect([q0.acceptedBeforeAck, inProcess.acceptedBeforeAck]).toEqual([false, false]);
        expect(hold.held).toEqual([]);
      } finally {
        hold.remove();
      }
    });

    it('takes one handler at a time', () => {
      const remove = broker.bus.acceptBeforeAck(() => undefined);
      try {
        expect(() => broker.bus.acceptBeforeAck(() => undefined)).toThrow(/already installed/);
      } finally {
        remove();
      }
    });
  });
});

describe('bare broker (policyChecks: false)', () => {
  it('still needs a certificate from the CA, but not a registry entry or policy', async () => {
    const { pki, identities, broker, port } = await startTlsBroker({ policyChecks: false });
    const connections: mqtt.MqttClientConnection[] = [];
    try {
      const inbox = new Inbox();
      await broker.bus.subscribe('anything/#', inbox.push);
      const cert = await pki.issue('anyone');
      const c = deviceConnection({ port, caCertPem: pki.caCertPem, cert, clientId: 'anyone' });
      connections.push(c);
      await within(c.connect(), 5_000, 'connect');
      await within(c.publish('anything/goes', 'x', mqtt.QoS.AtLeastOnce), 5_000, 'puback');
      expect((await inbox.next((m) => m.topic === 'anything/goes')).clientId).toBe('anyone');
      expect(identities.lookups).toBe(0);

      const stranger = await createTestPki({ name: 'other CA' });
      const bad = deviceConnection({
        port,
        caCertPem: pki.caCertPem,
        cert: await stranger.issue('x'),
        clientId: 'x',
      });
      connections.push(bad);
      await expect(within(bad.connect(), 5_000, 'connect')).rejects.toThrow(/Failed to connect/);
    } finally {
      await Promise.all(connections.map((c) => closeQuietly(c)));
      await broker.stop();
    }
  });
});
