/**
 * Shared subscriptions (`$share/{ShareName}/{TopicFilter}`): the pure parts (parsing, the renaming
 * aedes sees, the rotation) with tables, the group registry against a bus and clients that record,
 * and the whole path against the real broker over mutual TLS with mqtt.js (MQTT 5 and 3.1.1) and
 * aws-crt's Mqtt5Client.
 */
import { EventEmitter } from 'node:events';
import { MQTT5_REASON } from '@pifleet/protocol';
import type { AedesPublishPacket, Client, PublishPacket, Subscription } from 'aedes';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/index.js';
import {
  createSharedSubscriptions,
  fromInternalFilter,
  internalFilter,
  parseSharedFilter,
  pickMember,
  type Rotation,
  rewriteSubscribe,
  rewriteUnsubscribe,
  SHARED_SUBSCRIPTIONS_AVAILABLE,
  type SharedBus,
  type SharedFilter,
} from '../../src/broker/shared-subscriptions.js';
import { silentLogger } from '../../src/logger.js';
import type { AttachedPolicy } from '../../src/ports/identity.js';
import {
  arn,
  type Crt5Client,
  connectCrt5,
  connectMqttjs,
  type DeviceEndpoint,
  type MemoryIdentities,
  policy,
  startTlsBroker,
  type TestPki,
  within,
} from './fixtures.js';

const share = (topic: string): SharedFilter => {
  const parsed = parseSharedFilter(topic);
  if (!parsed || 'invalid' in parsed) throw new Error(`not a valid shared filter: ${topic}`);
  return parsed;
};

describe('shared subscription filters', () => {
  it.each([
    ['$share/workers/jobs/#', { shareName: 'workers', filter: 'jobs/#', resource: '$share/workers/jobs/#' }],
    ['$share/w/a/+/c', { shareName: 'w', filter: 'a/+/c', resource: '$share/w/a/+/c' }],
    ['$share/w/#', { shareName: 'w', filter: '#', resource: '$share/w/#' }],
    ['$share/w/$aws/things/t/shadow/update', { shareName: 'w', filter: '$aws/things/t/shadow/update' }],
  ])('%s is a share name and a filter', (topic, expected) => {
    expect(parseSharedFilter(topic)).toMatchObject(expected);
  });

  it.each([
    ['$share/g', 'needs a share name and a topic filter'],
    ['$share//jobs', 'share name is empty'],
    ['$share/+/jobs', 'wildcard'],
    ['$share/#/jobs', 'wildcard'],
    ['$share/g+/jobs', 'wildcard'],
    ['$share/g/', 'topic filter is empty'],
    ['$share/g/a#', "'#' must be a whole level"],
    ['$share/g/a/b/c/d/e/f/g/h/i', 'forward slashes'],
  ])('%s is invalid (%s)', (topic, reason) => {
    const parsed = parseSharedFilter(topic);
    expect(parsed).toHaveProperty('invalid');
    expect((parsed as { invalid: string }).invalid).toContain(reason);
  });

  it.each(['jobs/#', '$aws/things/t/shadow/get', '$SHARE/g/x', 'share/g/x', '$shared/g/x'])(
    '%s is not a shared subscription',
    (topic) => {
      expect(parseSharedFilter(topic)).toBeUndefined();
      expect(fromInternalFilter(topic)).toBeUndefined();
    },
  );

  it('renames a valid one to an internal filter that maps back to it', () => {
    const s = share('$share/workers/jobs/+/done');
    const internal = internalFilter(s);
    expect(internal.startsWith('$')).toBe(false);
    expect(internal).toContain('\u0000');
    expect(fromInternalFilter(internal)).toEqual(s);
  });

  it('rewrites SUBSCRIBE entries in place: shared ones at most QoS 1, invalid ones carry the failure code', () => {
    const entries = [
      { topic: 'jobs/plain', qos: 1 },
      { topic: '$share/g/jobs/#', qos: 2 },
      { topic: '$share/g/jobs/x', qos: 0 },
      { topic: '$share/+/jobs', qos: 1 },
      { topic: '$share/g/a#', qos: 1 },
      { topic: '\u0000share/g/forged', qos: 1 },
    ];
    expect(rewriteSubscribe(entries, 5)).toBe(5);
    expect(entries[0]).toEqual({ topic: 'jobs/plain', qos: 1 });
    expect(entries[1]).toEqual({ topic: internalFilter(share('$share/g/jobs/#')), qos: 1 });
    expect(entries[2]).toEqual({ topic: internalFilter(share('$share/g/jobs/x')), qos: 0 });
    for (const [i, original] of [
      [3, '$share/+/jobs'],
      [4, '$share/g/a#'],
      [5, '\u0000share/g/forged'],
    ] as const) {
      expect(entries[i]?.qos).toBe(MQTT5_REASON.TOPIC_FILTER_INVALID);
      // The renamed entry passes aedes's own filter check (no wildcard left) and says what it was.
      expect(entries[i]?.topic).not.toMatch(/[+#]/);
      expect(fromInternalFilter(entries[i]?.topic as string)).toEqual({ invalid: original });
    }
    const v311 = [{ topic: '$share/g', qos: 1 }];
    rewriteSubscribe(v311, 4);
    expect(v311[0]?.qos).toBe(0x80);
  });

  it('rewrites UNSUBSCRIBE entries in place and names the groups left', () => {
    const topics = ['jobs/plain', '$share/g/jobs/#', '$share/+/bad'];
    const left = rewriteUnsubscribe(topics);
    expect(left).toEqual([share('$share/g/jobs/#')]);
    expect(topics[0]).toBe('jobs/plain');
    expect(topics[1]).toBe(internalFilter(share('$share/g/jobs/#')));
    expect(fromInternalFilter(topics[2] as string)).toEqual({ invalid: '$share/+/bad' });
  });

  it('takes members in turn, skipping those that do not accept, and leaves the turn alone when none does', () => {
    const rotation: Rotation<string> = { members: ['a', 'b', 'c'], next: 0 };
    const all = () => true;
    expect([1, 2, 3, 4].map(() => pickMember(rotation, all))).toEqual(['a', 'b', 'c', 'a']);
    expect(pickMember(rotation, (m) => m !== 'b')).toBe('c');
    expect(rotation.next).toBe(0);
    expect(pickMember(rotation, () => false)).toBeUndefined();
    expect(rotation.next).toBe(0);
    expect(pickMember({ members: [], next: 0 }, all)).toBeUndefined();
  });

  it('is advertised', () => {
    expect(SHARED_SUBSCRIPTIONS_AVAILABLE).toBe(true);
  });
});

// ---- the registry, against a recording bus and recording clients --------------------------------

type Listener = (packet: AedesPublishPacket, cb: () => void) => void;

/** aedes's bus as the registry uses it: listeners by filter, exact-topic dispatch. */
class RecordingBus implements SharedBus {
  readonly listeners = new Map<string, Set<Listener>>();
  subscribe(filter: string, fn: Listener, done?: () => void): void {
    let set = this.listeners.get(filter);
    if (!set) {
      set = new Set();
      this.listeners.set(filter, set);
    }
    set.add(fn);
    done?.();
  }
  unsubscribe(filter: string, fn: Listener, done?: () => void): void {
    this.listeners.get(filter)?.delete(fn);
    if (this.listeners.get(filter)?.size === 0) this.listeners.delete(filter);
    done?.();
  }
  /** Runs the listeners of `filter` on a message, as mqemitter would for a matching topic. */
  emit(filter: string, topic: string, qos: 0 | 1 = 1): void {
    const packet = {
      cmd: 'publish',
      topic,
      payload: Buffer.from(topic),
      qos,
      retain: true,
      dup: false,
      brokerId: 'b',
      brokerCounter: 7,
    } as unknown as AedesPublishPacket;
    for (const fn of this.listeners.get(filter) ?? []) fn(packet, () => {});
  }
}

/** The parts of an aedes Client the registry touches, recording what it is sent. */
function recordingClient(id: string): Client & { sent: PublishPacket[]; closed: boolean } {
  const client = {
    id,
    version: 5,
    closed: false,
    conn: new EventEmitter(),
    sent: [] as PublishPacket[],
    publish(packet: PublishPacket, cb?: () => void) {
      client.sent.push(packet);
      cb?.();
    },
  };
  return client as unknown as Client & { sent: PublishPacket[]; closed: boolean };
}

/** Attaches the registry to a recording client; returns the parser it listens on. */
function attach(shares: ReturnType<typeof createSharedSubscriptions>, client: Client): EventEmitter {
  const parser = new EventEmitter();
  (client as unknown as { _parser: EventEmitter })._parser = parser;
  shares.attach(client);
  return parser;
}

describe('shared subscription groups', () => {
  const sub = (s: SharedFilter, qos: 0 | 1 = 1): Subscription => ({ topic: internalFilter(s), qos });

  function registry(canReceive: (client: Client, topic: string) => boolean = () => true) {
    const bus = new RecordingBus();
    const shares = createSharedSubscriptions({ bus, canReceive, logger: silentLogger() });
    return { bus, shares };
  }

  it('gives each message to one member in turn, at the lower of its QoS and the granted one, not retained', () => {
    const { bus, shares } = registry();
    const s = share('$share/g/jobs/#');
    const [a, b] = [recordingClient('a'), recordingClient('b')];
    expect(shares.authorize(a, sub(s, 1), () => true)).toEqual(sub(s, 1));
    expect(shares.authorize(b, sub(s, 0), () => true)).toEqual(sub(s, 0));
    expect([...bus.listeners.keys()]).toEqual(['jobs/#']);
    for (const n of [1, 2, 3]) bus.emit('jobs/#', `jobs/${n}`);
    expect(a.sent.map((p) => p.topic)).toEqual(['jobs/1', 'jobs/3']);
    expect(b.sent.map((p) => p.topic)).toEqual(['jobs/2']);
    expect(a.sent[0]).toMatchObject({ qos: 1, retain: false });
    expect(b.sent[0]).toMatchObject({ qos: 0, retain: false });
    expect(shares.groups()).toEqual(new Map([['$share/g/jobs/#', ['a', 'b']]]));
  });

  it('refuses the subscription when iot:Subscribe on the $share resource is denied, and is not ours otherwise', () => {
    const { bus, shares } = registry();
    const asked: string[] = [];
    const a = recordingClient('a');
    expect(
      shares.authorize(a, sub(share('$share/g/jobs/x')), (resource) => {
        asked.push(resource);
        return false;
      }),
    ).toBeNull();
    expect(asked).toEqual(['$share/g/jobs/x']);
    expect(bus.listeners.size).toBe(0);
    expect(shares.authorize(a, { topic: 'jobs/x', qos: 1 }, () => true)).toBeUndefined();
  });

  it('answers an invalid shared filter with the subscription as rewritten, making no member', () => {
    const { bus, shares } = registry();
    const entries = [{ topic: '$share/+/x', qos: 1 }];
    rewriteSubscribe(entries, 5);
    const invalid = entries[0] as Subscription;
    expect(shares.authorize(recordingClient('a'), invalid, () => true)).toBe(invalid);
    expect(bus.listeners.size).toBe(0);
  });

  it('skips members that may not receive the topic or whose connection is closed; drops a message no one may take', () => {
    const deny = new Set<string>();
    const { bus, shares } = registry((client, topic) => !deny.has(`${client.id} ${topic}`));
    const s = share('$share/g/jobs/+');
    const [a, b, c] = [recordingClient('a'), recordingClient('b'), recordingClient('c')];
    for (const m of [a, b, c]) shares.authorize(m, sub(s), () => true);
    deny.add('b jobs/1');
    c.closed = true;
    for (const n of [1, 1, 1]) bus.emit('jobs/+', `jobs/${n}`);
    expect(a.sent).toHaveLength(3);
    expect(b.sent).toHaveLength(0);
    deny.add('a jobs/2');
    deny.add('b jobs/2');
    bus.emit('jobs/+', 'jobs/2');
    expect(a.sent).toHaveLength(3);
    expect(b.sent).toHaveLength(0);
  });

  it('a filter starting with a wildcard matches no $ topic', () => {
    const { bus, shares } = registry();
    const a = recordingClient('a');
    shares.authorize(a, sub(share('$share/g/#')), () => true);
    bus.emit('#', '$aws/things/t/shadow/update/delta');
    bus.emit('#', 'jobs/1');
    expect(a.sent.map((p) => p.topic)).toEqual(['jobs/1']);
  });

  it('a member leaves on UNSUBSCRIBE or when its connection closes; the last one out removes the bus subscription', () => {
    const { bus, shares } = registry();
    const s = share('$share/g/jobs/#');
    const [a, b] = [recordingClient('a'), recordingClient('b')];
    // attach() puts a listener on the parser aedes reads from; the test emits packets on it.
    const parser = attach(shares, a);
    attach(shares, b);
    const unsubscribe = (packet: { cmd: string; unsubscriptions: string[] }) => parser.emit('packet', packet);
    shares.authorize(a, sub(s), () => true);
    shares.authorize(b, sub(s), () => true);
    // Joining twice keeps one membership (a SUBSCRIBE repeated, or a session restored).
    shares.authorize(b, sub(s, 0), () => true);
    expect(shares.groups().get(s.resource)).toEqual(['a', 'b']);

    const packet = { cmd: 'unsubscribe', unsubscriptions: ['$share/g/jobs/#'] };
    unsubscribe(packet);
    expect(packet.unsubscriptions).toEqual([internalFilter(s)]);
    expect(shares.groups().get(s.resource)).toEqual(['b']);
    bus.emit('jobs/#', 'jobs/1');
    expect(a.sent).toHaveLength(0);
    expect(b.sent).toEqual([expect.objectContaining({ topic: 'jobs/1', qos: 0 })]);

    b.conn.emit('close');
    expect(shares.groups().size).toBe(0);
    expect(bus.listeners.size).toBe(0);
  });

  it('a closing connection is not made a member', () => {
    const { bus, shares } = registry();
    const a = recordingClient('a');
    a.closed = true;
    expect(shares.authorize(a, sub(share('$share/g/x')), () => true)).not.toBeNull();
    expect(bus.listeners.size).toBe(0);
  });
});

// ---- the real broker, real clients, mutual TLS -----------------------------------------------------

/** Connect; subscribe to `jobs/*` and to `$share/workers/jobs/*`; receive and publish on `jobs/*`. */
const worker = policy(
  'worker',
  { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', '*') },
  {
    Effect: 'Allow',
    Action: 'iot:Subscribe',
    Resource: [arn('topicfilter', 'jobs/*'), arn('topicfilter', '$share/workers/jobs/*')],
  },
  { Effect: 'Allow', Action: ['iot:Receive', 'iot:Publish'], Resource: arn('topic', 'jobs/*') },
);
/** As `worker`, without iot:Receive. */
const deaf = policy(
  'deaf',
  { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', '*') },
  { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', '$share/workers/jobs/*') },
);
/** Subscribes to `jobs/*` only: `$share/...` is another resource. */
const plain = policy(
  'plain',
  { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', '*') },
  { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', 'jobs/*') },
  { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic', 'jobs/*') },
);

/** What each member of a test's group received, by client id. */
class Tally {
  readonly byMember = new Map<string, string[]>();
  readonly retainedFlags: boolean[] = [];
  readonly #waiters = new Set<{ count: number; resolve: () => void }>();

  record(member: string, payload: string, retain = false): void {
    const list = this.byMember.get(member) ?? [];
    list.push(payload);
    this.byMember.set(member, list);
    this.retainedFlags.push(retain);
    const total = this.total();
    for (const w of this.#waiters) {
      if (total >= w.count) {
        this.#waiters.delete(w);
        w.resolve();
      }
    }
  }

  total(): number {
    let n = 0;
    for (const list of this.byMember.values()) n += list.length;
    return n;
  }

  all(): string[] {
    return [...this.byMember.values()].flat();
  }

  of(member: string): string[] {
    return this.byMember.get(member) ?? [];
  }

  /** Resolves once `count` messages have arrived across the members. */
  reach(count: number, ms = 10_000): Promise<void> {
    if (this.total() >= count) return Promise.resolve();
    return within(new Promise<void>((resolve) => this.#waiters.add({ count, resolve })), ms, `${count} messages`);
  }
}

const payloads = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe('shared subscriptions on the broker (mutual TLS, mqtt.js 5 and 3.1.1, aws-crt Mqtt5Client)', () => {
  let pki: TestPki;
  let identities: MemoryIdentities;
  let broker: Broker;
  let port: number;
  const mqttjs: MqttClient[] = [];
  const crt: Crt5Client[] = [];
  let n = 0;

  beforeAll(async () => {
    ({ pki, identities, broker, port } = await startTlsBroker());
  });

  afterEach(async () => {
    await Promise.all(mqttjs.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
    await Promise.all(crt.splice(0).map((c) => c.stop()));
  });

  afterAll(async () => {
    await broker?.stop();
  });

  async function device(attached: AttachedPolicy): Promise<DeviceEndpoint> {
    const clientId = `sh-${++n}-${Date.now().toString(36)}`;
    const cert = await pki.issue(clientId);
    identities.put(cert.certificateId, { thingNames: [], policies: [attached] });
    return { port, caCertPem: pki.caCertPem, cert, clientId };
  }

  /** An mqtt.js client whose messages go to `tally` under its client id. */
  async function member(tally: Tally, options: { version?: 4 | 5; attached?: AttachedPolicy } = {}) {
    const endpoint = await device(options.attached ?? worker);
    const client = await connectMqttjs(endpoint, { protocolVersion: options.version ?? 5 });
    mqttjs.push(client);
    client.on('message', (_topic, payload, packet) =>
      tally.record(endpoint.clientId, payload.toString('utf8'), packet.retain),
    );
    return { client, id: endpoint.clientId };
  }

  async function subscribe(client: MqttClient, filter: string, qos: 0 | 1 = 1): Promise<number> {
    const granted = await within(client.subscribeAsync(filter, { qos }), 5_000, `subscribe ${filter}`);
    return granted[0]?.qos as number;
  }

  /** The SUBACK's codes in request order (mqtt.js rejects when one is a failure, with the packet). */
  async function subackCodes(client: MqttClient, filters: readonly string[]): Promise<number[]> {
    try {
      const request = Object.fromEntries(filters.map((f) => [f, { qos: 1 as const }]));
      const granted = await within(client.subscribeAsync(request), 5_000, 'subscribe');
      return granted.map((g) => g.qos);
    } catch (err) {
      const codes = (err as { packet?: { granted?: number[] } }).packet?.granted;
      if (!codes) throw err;
      return codes;
    }
  }

  async function publishAll(topic: string, messages: readonly string[]): Promise<void> {
    for (const m of messages) await broker.bus.publish(topic, m, { qos: 1 });
  }

  it('delivers each message once across a group of three MQTT 5 members, spread over all of them', async () => {
    const tally = new Tally();
    const members = [await member(tally), await member(tally), await member(tally)];
    for (const m of members) expect(await subscribe(m.client, '$share/workers/jobs/#')).toBe(1);
    const sent = payloads('spread', 30);
    await publishAll('jobs/a', sent);
    await tally.reach(sent.length);
    expect(tally.all().sort()).toEqual([...sent].sort());
    // Taken in turn: ten each.
    for (const m of members) expect(tally.of(m.id)).toHaveLength(10);
  });

  it('a member that may not receive the topic gets nothing; the others take its share', async () => {
    const tally = new Tally();
    const members = [await member(tally), await member(tally), await member(tally, { attached: deaf })];
    for (const m of members) expect(await subscribe(m.client, '$share/workers/jobs/+')).toBe(1);
    const sent = payloads('deaf', 12);
    await publishAll('jobs/b', sent);
    await tally.reach(sent.length);
    expect(tally.all().sort()).toEqual([...sent].sort());
    expect(tally.of(members[2]?.id as string)).toEqual([]);
    expect(tally.of(members[0]?.id as string)).toHaveLength(6);
  });

  it.each([
    [5, MQTT5_REASON.NOT_AUTHORIZED],
    [4, 0x80],
  ] as const)(
    'MQTT %s: iot:Subscribe denied on $share/... refuses that filter (%s) and grants the others',
    async (version, code) => {
      const tally = new Tally();
      const { client } = await member(tally, { version, attached: plain });
      expect(await subackCodes(client, ['$share/workers/jobs/x', 'jobs/x'])).toEqual([code, 1]);
      // The connection stays usable: the plain subscription gets the next message.
      await broker.bus.publish('jobs/x', 'after', { qos: 1 });
      await tally.reach(1);
      expect(tally.all()).toEqual(['after']);
    },
  );

  it.each([
    [5, MQTT5_REASON.TOPIC_FILTER_INVALID],
    [4, 0x80],
  ] as const)(
    'MQTT %s: an invalid share name or a missing filter is refused (%s), the connection stays',
    async (version, code) => {
      const tally = new Tally();
      const { client } = await member(tally, { version });
      // ('$share/#/x' is refused by mqtt.js itself before sending; the table above covers it.)
      const invalid = ['$share/+/jobs/x', '$share//jobs/x', '$share/workers', '$share/workers/'];
      expect(await subackCodes(client, invalid)).toEqual(invalid.map(() => code));
      expect(await subscribe(client, '$share/workers/jobs/x')).toBe(1);
      await broker.bus.publish('jobs/x', 'still-here', { qos: 1 });
      await tally.reach(1);
      expect(tally.all()).toEqual(['still-here']);
    },
  );

  it('mixes protocol versions in one group: MQTT 5, 3.1.1 and aws-crt; user properties reach the MQTT 5 members only', async () => {
    const tally = new Tally();
    const v5 = await member(tally, { version: 5 });
    const v311 = await member(tally, { version: 4 });
    const crtEndpoint = await device(worker);
    const crtClient = await connectCrt5(crtEndpoint);
    crt.push(crtClient);
    // The CONNACK says so (Shared Subscription Available), as IoT Core's does.
    expect(crtClient.connack.sharedSubscriptionsAvailable).toBe(SHARED_SUBSCRIPTIONS_AVAILABLE);
    expect(crtClient.settings.sharedSubscriptionsAvailable).toBe(true);
    expect(await subscribe(v5.client, '$share/workers/jobs/mixed')).toBe(1);
    expect(await subscribe(v311.client, '$share/workers/jobs/mixed')).toBe(1);
    const suback = await within(
      crtClient.client.subscribe({
        subscriptions: [{ topicFilter: '$share/workers/jobs/mixed', qos: 1 }],
      }),
      5_000,
      'crt subscribe',
    );
    expect(suback.reasonCodes).toEqual([1]);

    const properties = new Map<string, unknown>();
    v5.client.on('message', (_t, payload, packet) => properties.set(payload.toString(), packet.properties));
    v311.client.on('message', (_t, payload, packet) => properties.set(payload.toString(), packet.properties));
    crtClient.client.on('messageReceived', (e) =>
      tally.record(crtEndpoint.clientId, Buffer.from(e.message.payload as ArrayBuffer).toString('utf8')),
    );

    // Published by a real MQTT 5 client, with a user property.
    const publisher = await member(new Tally());
    const sent = payloads('mixed', 9);
    for (const m of sent) {
      await publisher.client.publishAsync('jobs/mixed', m, { qos: 1, properties: { userProperties: { k: 'v' } } });
    }
    await tally.reach(sent.length);
    expect(tally.all().sort()).toEqual([...sent].sort());
    for (const id of [v5.id, v311.id, crtEndpoint.clientId]) expect(tally.of(id)).toHaveLength(3);
    for (const m of tally.of(v5.id)) expect(properties.get(m)).toMatchObject({ userProperties: { k: 'v' } });
    for (const m of tally.of(v311.id)) expect(properties.get(m)).toBeUndefined();
    for (const m of crtClient.received) expect(m.userProperties).toEqual([{ name: 'k', value: 'v' }]);
  });

  it('a member that disconnects mid-stream gets no more; the others receive everything after, QoS 1, none lost', async () => {
    const tally = new Tally();
    const members = [await member(tally), await member(tally), await member(tally)];
    for (const m of members) expect(await subscribe(m.client, '$share/workers/jobs/#')).toBe(1);
    const first = payloads('before', 9);
    await publishAll('jobs/d', first);
    await tally.reach(first.length);

    const leaving = members[0] as (typeof members)[number];
    const gone = new Promise<void>((resolve) => {
      const off = broker.bus.onClientDisconnected((session) => {
        if (session.clientId !== leaving.id) return;
        off();
        resolve();
      });
    });
    await leaving.client.endAsync();
    await within(gone, 5_000, 'member disconnected');

    const second = payloads('after', 20);
    await publishAll('jobs/d', second);
    await tally.reach(first.length + second.length);
    expect(tally.all().sort()).toEqual([...first, ...second].sort());
    expect(tally.of(leaving.id).filter((p) => p.startsWith('after'))).toEqual([]);
    expect(tally.of(members[1]?.id as string).filter((p) => p.startsWith('after'))).toHaveLength(10);
  });

  it.each([
    [4, { clean: false }],
    [5, { clean: false, properties: { sessionExpiryInterval: 300 } }],
  ] as const)(
    'MQTT %s: a persistent session rejoins its group when it reconnects, without subscribing again',
    async (version, session) => {
      const tally = new Tally();
      const endpoint = await device(worker);
      const first = await connectMqttjs(endpoint, { protocolVersion: version, ...session });
      mqttjs.push(first);
      expect(await subscribe(first, '$share/workers/jobs/p')).toBe(1);
      await first.endAsync();

      const again = await connectMqttjs(endpoint, { protocolVersion: version, ...session });
      mqttjs.push(again);
      again.on('message', (_topic, payload) => tally.record(endpoint.clientId, payload.toString('utf8')));
      const other = await member(tally);
      expect(await subscribe(other.client, '$share/workers/jobs/p')).toBe(1);
      const sent = payloads('persistent', 6);
      await publishAll('jobs/p', sent);
      await tally.reach(sent.length);
      expect(tally.all().sort()).toEqual([...sent].sort());
      expect(tally.of(endpoint.clientId)).toHaveLength(3);
    },
  );

  /** A member whose client never acknowledges a QoS 1 message (nor reads past the first one). */
  async function stuckMember(options: { clean: boolean }) {
    const endpoint = await device(worker);
    const first: string[] = [];
    const session = options.clean ? {} : { clean: false, properties: { sessionExpiryInterval: 300 } };
    const client = await connectMqttjs(endpoint, {
      ...session,
      customHandleAcks: (_topic, payload) => first.push(payload.toString('utf8')),
    });
    mqttjs.push(client);
    expect(await subscribe(client, '$share/workers/jobs/stuck')).toBe(1);
    return { client, endpoint, first };
  }

  it('a member whose session ends with QoS 1 messages unacknowledged: they go to the other members, none lost', async () => {
    const tally = new Tally();
    const others = [await member(tally), await member(tally)];
    for (const m of others) expect(await subscribe(m.client, '$share/workers/jobs/stuck')).toBe(1);
    const stuck = await stuckMember({ clean: true });
    const sent = payloads('stuck', 12);
    await publishAll('jobs/stuck', sent);
    // The stuck member holds its third (written, never acknowledged); the others have the rest.
    await tally.reach(8);
    expect(stuck.first).toHaveLength(1);
    await stuck.client.endAsync(true);
    await tally.reach(sent.length);
    expect(tally.all().sort()).toEqual([...sent].sort());
  });

  it('a persistent member keeps its unacknowledged QoS 1 messages: they are sent again when it resumes', async () => {
    const tally = new Tally();
    const other = await member(tally);
    expect(await subscribe(other.client, '$share/workers/jobs/stuck')).toBe(1);
    const stuck = await stuckMember({ clean: false });
    const sent = payloads('kept', 6);
    await publishAll('jobs/stuck', sent);
    await tally.reach(3);
    const gone = new Promise<void>((resolve) => {
      const off = broker.bus.onClientDisconnected((session) => {
        if (session.clientId !== stuck.endpoint.clientId) return;
        off();
        resolve();
      });
    });
    await stuck.client.endAsync(true);
    await within(gone, 5_000, 'stuck member disconnected');
    // Published after: the other member takes it; nothing of the stuck member's went elsewhere.
    await publishAll('jobs/stuck', ['later']);
    await tally.reach(4);
    expect(tally.of(other.id)).toHaveLength(4);
    const resumed = await connectMqttjs(stuck.endpoint, { clean: false, properties: { sessionExpiryInterval: 300 } });
    mqttjs.push(resumed);
    resumed.on('message', (_topic, payload) => tally.record(stuck.endpoint.clientId, payload.toString('utf8')));
    await tally.reach(sent.length + 1);
    expect(tally.all().sort()).toEqual([...sent, 'later'].sort());
    expect(tally.of(stuck.endpoint.clientId)).toHaveLength(3);
  });

  it('a member that unsubscribes gets no more (UNSUBACK success); the others take everything', async () => {
    const tally = new Tally();
    const members = [await member(tally), await member(tally)];
    for (const m of members) expect(await subscribe(m.client, '$share/workers/jobs/u')).toBe(1);
    const [quitter, stayer] = members as [(typeof members)[number], (typeof members)[number]];
    const unsuback = await within(quitter.client.unsubscribeAsync('$share/workers/jobs/u'), 5_000, 'unsubscribe');
    // MQTT 5 UNSUBACK: one reason code per filter, 0x00 success (not 0x11 no subscription existed).
    expect((unsuback as { granted?: number[] } | undefined)?.granted).toEqual([0]);
    const sent = payloads('unsub', 6);
    await publishAll('jobs/u', sent);
    await tally.reach(sent.length);
    expect(tally.of(stayer.id).sort()).toEqual([...sent].sort());
    expect(tally.of(quitter.id)).toEqual([]);
  });

  it('sends no retained message to a shared subscription, and live messages arrive without the retain flag', async () => {
    await broker.bus.publish('jobs/r', 'kept', { qos: 1, retain: true });
    const tally = new Tally();
    const shared = await member(tally);
    expect(await subscribe(shared.client, '$share/workers/jobs/r')).toBe(1);
    // An ordinary subscription on the same topic does get it: the retained message is there.
    const ordinary = new Tally();
    const plainMember = await member(ordinary);
    expect(await subscribe(plainMember.client, 'jobs/r')).toBe(1);
    await ordinary.reach(1);
    expect(ordinary.all()).toEqual(['kept']);

    await broker.bus.publish('jobs/r', 'live', { qos: 1, retain: true });
    await tally.reach(1);
    await ordinary.reach(2);
    // Retained messages reach a subscriber before later live ones on its connection; only 'live' came.
    expect(tally.all()).toEqual(['live']);
    expect(tally.retainedFlags).toEqual([false]);
    await broker.bus.publish('jobs/r', '', { qos: 1, retain: true });
  });

  it('an ordinary subscription and a shared one on the same filter both get every message', async () => {
    const group = new Tally();
    const ordinary = new Tally();
    const members = [await member(group), await member(group)];
    for (const m of members) expect(await subscribe(m.client, '$share/workers/jobs/both')).toBe(1);
    const watcher = await member(ordinary);
    expect(await subscribe(watcher.client, 'jobs/both')).toBe(1);
    // A member with its own ordinary subscription too gets the message on each (MQTT 5.0 4.8.2).
    expect(await subscribe(members[0]?.client as MqttClient, 'jobs/both')).toBe(1);
    const sent = payloads('both', 4);
    await publishAll('jobs/both', sent);
    await ordinary.reach(sent.length);
    await group.reach(sent.length + sent.length);
    expect(ordinary.all().sort()).toEqual([...sent].sort());
    const first = members[0]?.id as string;
    const second = members[1]?.id as string;
    // The first member: every message on its ordinary subscription and half on the shared one.
    expect(group.of(first)).toHaveLength(sent.length + sent.length / 2);
    expect(group.of(second)).toHaveLength(sent.length / 2);
    expect(group.all().sort()).toEqual([...sent, ...sent].sort());
  });
});
